import json

import pytest

from transship.errors import DigestMismatchError, UnsupportedError
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Platform
from transship.oci.digest import DigestVerifier, digest_bytes, verify_bytes
from transship.oci.manifest import ImageIndex, ImageManifest, RawManifest, build_index, detect_media_type


def _manifest(media_type=mt.OCI_MANIFEST):
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "1" * 64, "size": 10},
            "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "2" * 64, "size": 20}],
        },
        indent=3,
    ).encode()


def test_raw_manifest_keeps_bytes_and_digest():
    data = _manifest()
    raw = RawManifest(data, mt.OCI_MANIFEST)
    assert raw.digest == digest_bytes(data)
    parsed = raw.parse()
    assert isinstance(parsed, ImageManifest)
    assert [d.size for d in parsed.blobs] == [10, 20]


def test_detect_media_type_from_content():
    assert detect_media_type(_manifest(mt.DOCKER_MANIFEST), "text/plain") == mt.DOCKER_MANIFEST
    index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert detect_media_type(index, None) == mt.OCI_INDEX
    assert detect_media_type(b'{"schemaVersion": 1, "fsLayers": []}', None) == mt.DOCKER_SCHEMA1


def test_schema1_refused_clearly():
    with pytest.raises(UnsupportedError, match="schema 1"):
        RawManifest(b'{"schemaVersion":1}', mt.DOCKER_SCHEMA1).parse()


def test_index_with_platforms_and_rebuild():
    children = [
        {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "3" * 64, "size": 5,
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "4" * 64, "size": 6,
         "platform": {"os": "linux", "architecture": "amd64"}},
    ]
    data = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": children}).encode()
    parsed = RawManifest(data, mt.OCI_INDEX).parse()
    assert isinstance(parsed, ImageIndex)
    arm = Platform.parse("linux/arm64")
    assert arm.matches(parsed.manifests[0].platform)
    assert not arm.matches(parsed.manifests[1].platform)
    assert not Platform.parse("linux/arm64/v7").matches(parsed.manifests[0].platform)
    rebuilt = json.loads(build_index([parsed.manifests[1]]))
    assert rebuilt["manifests"] == [children[1]]


def test_digest_verifier_checks_size_and_hash():
    data = b"hello"
    v = DigestVerifier(digest_bytes(data), 5)
    v.update(data)
    v.verify()
    with pytest.raises(DigestMismatchError, match="expected 6"):
        bad = DigestVerifier(digest_bytes(data), 6)
        bad.update(data)
        bad.verify()
    with pytest.raises(DigestMismatchError, match="hashes to"):
        verify_bytes(b"hellO", digest_bytes(data))
