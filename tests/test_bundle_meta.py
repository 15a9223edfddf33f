"""The meta file: schema, validation with clear errors, exact manifest bytes, atomic write."""

import json

import pytest

from transship.bundle.meta import (
    BundleMeta,
    ManifestEntry,
    load_meta,
    now_iso,
    parse_meta,
    write_meta,
)
from transship.errors import BundleError
from transship.oci.digest import digest_bytes
from transship.oci.manifest import RawManifest

HEX = "ab" * 32


def minimal(**extra):
    doc = {
        "format": "transship-bundle",
        "version": 1,
        "id": "b1",
        "created": now_iso(),
        "tool_version": "0.1.0",
        "data_files": [{"name": "x.000.tar", "size": 2048, "sha256": HEX}],
        "blobs": [
            {
                "digest": f"sha256:{HEX}",
                "size": 3,
                "media_type": "application/octet-stream",
                "encoding": "raw",
                "pieces": [
                    {
                        "file": "x.000.tar",
                        "member": f"blobs/sha256/{HEX}",
                        "offset": 512,
                        "length": 3,
                    }
                ],
            }
        ],
    }
    doc.update(extra)
    return doc


def test_round_trip_keeps_everything(tmp_path):
    manifest = RawManifest(b'{"schemaVersion": 2,  "odd spacing":  true}\n', "application/x")
    meta = BundleMeta.model_validate(
        {
            **minimal(),
            "images": [
                {
                    "source": "reg.example/ns/app:1",
                    "target": "ns/app:1",
                    "repository": "ns/app",
                    "tag": "1",
                    "manifest": ManifestEntry.of(manifest).model_dump(),
                }
            ],
            "options": {"workers": 3},
        }
    )
    path = tmp_path / "x.meta.json"
    write_meta(path, meta)
    again = load_meta(path)
    assert again == meta
    assert again.images[0].manifest.raw().data == manifest.data
    assert again.images[0].manifest.raw().digest == manifest.digest
    # Human-readable: the manifest is stored as text, not base64.
    assert '"odd spacing"' in json.loads(path.read_text())["images"][0]["manifest"]["text"]
    # Only the meta file is left: the temporary name was renamed.
    assert [p.name for p in tmp_path.iterdir()] == ["x.meta.json"]


def test_non_utf8_manifest_bytes_survive_as_base64():
    data = b'{"a": "\xff\xfe"}'
    entry = ManifestEntry.of(RawManifest(data, "application/x"))
    assert entry.text is None and entry.base64
    assert entry.raw().data == data


def test_edited_manifest_text_is_detected():
    entry = ManifestEntry.of(RawManifest(b'{"a": 1}', "application/x"))
    edited = entry.model_copy(update={"text": '{"a": 2}'})
    with pytest.raises(BundleError, match="does not match its digest"):
        edited.raw()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{ not json", "not valid JSON"),
        ("[]", "not a transship bundle meta"),
        (json.dumps({"format": "something-else", "version": 1}), "format is 'something-else'"),
        (json.dumps({**minimal(), "version": 7}), "newer than this transship"),
        (json.dumps({**minimal(), "version": "1"}), "no valid version"),
        (json.dumps({k: v for k, v in minimal().items() if k != "id"}), "id: Field required"),
        (
            json.dumps({**minimal(), "blobs": [{**minimal()["blobs"][0], "digest": "sha256:xyz"}]}),
            "blobs.0.digest",
        ),
        (
            json.dumps(
                {**minimal(), "data_files": [{"name": "../x.000.tar", "size": 1, "sha256": HEX}]}
            ),
            "plain file name",
        ),
        (json.dumps({**minimal(), "data_files": []}), "not a listed data file"),
        (
            json.dumps(
                {
                    **minimal(),
                    "blobs": [
                        {
                            **minimal()["blobs"][0],
                            "pieces": [
                                {
                                    "file": "x.000.tar",
                                    "member": "../../x",
                                    "offset": 512,
                                    "length": 3,
                                }
                            ],
                        }
                    ],
                }
            ),
            "unsafe tar member",
        ),
        (json.dumps({**minimal(), "surprise": 1}), "surprise"),
    ],
)
def test_bad_meta_gives_one_clear_line_naming_the_file(text, expected):
    with pytest.raises(BundleError) as info:
        parse_meta(text, "mybundle.meta.json")
    message = str(info.value)
    assert message.startswith("mybundle.meta.json: ")
    assert expected in message
    assert "\n" not in message


def test_missing_meta_file(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        load_meta(tmp_path / "nope.meta.json")


def test_blob_listed_twice_is_rejected():
    doc = minimal()
    doc["blobs"] = doc["blobs"] * 2
    with pytest.raises(BundleError, match="listed twice"):
        parse_meta(json.dumps(doc), "m.meta.json")


def test_digest_of_manifest_entry_is_checked_against_bytes():
    data = b"{}"
    entry = ManifestEntry.of(RawManifest(data, "application/x"))
    assert entry.digest == digest_bytes(data)
    assert entry.size == 2
