"""`oci:DIR[:ref]`: layouts written by skopeo are read; layouts we write are read by skopeo."""

import json

import pytest

from tests.bundle_helpers import run, sample_jobs, save
from tests.conftest import require_tools
from tests.transport_driver import copy_all
from transship.errors import DigestMismatchError, NotFoundError
from transship.oci.descriptor import Descriptor
from transship.oci.digest import digest_bytes
from transship.transports.oci_layout import OCILayoutDestination, OCILayoutSource

OCI_SAMPLES = ["tiny", "oci-single", "oci-multi", "zstd"]


@pytest.mark.parametrize("name", OCI_SAMPLES)
def test_reads_a_layout_written_by_skopeo(sample_images, tmp_path, name):
    require_tools("skopeo")
    src_ref = f"oci:{sample_images.layout.path}:{name}"
    run(
        "skopeo",
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        src_ref,
        f"oci:{tmp_path}/sk:img",
    )
    source = OCILayoutSource(tmp_path / "sk")
    manifest = source.get_manifest("", "img")
    assert manifest.digest == sample_images[name].digest
    assert manifest.data == sample_images[name].manifest.raw
    # Copy it on into a layout of ours, then let skopeo read that one.
    copy_all(source, OCILayoutDestination(tmp_path / "mine"), [("", "img", "team/app", "1.0")])
    raw = run("skopeo", "inspect", "--raw", f"oci:{tmp_path}/mine:team/app:1.0").stdout.encode()
    assert raw == sample_images[name].manifest.raw
    run(
        "skopeo",
        "copy",
        "--quiet",
        "--all",
        f"oci:{tmp_path}/mine:team/app:1.0",
        f"dir:{tmp_path}/d",
    )


def test_destination_merges_index_and_honours_a_spec_ref(sample_images, tmp_path):
    target = tmp_path / "layout"
    save(sample_images.layout.path, OCILayoutDestination(target), ["tiny", "zstd"])
    save(sample_images.layout.path, OCILayoutDestination(target), ["tiny"])  # again: replaced
    copy_all(
        OCILayoutSource(sample_images.layout.path),
        OCILayoutDestination(target, ref="special"),
        [("", "oci-single", "ignored", "x")],
    )
    index = json.loads((target / "index.json").read_text())
    names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert sorted(names) == ["samples/tiny:v1", "samples/zstd:v1", "special"]
    assert json.loads((target / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    source = OCILayoutSource(target, ref="special")
    assert source.get_manifest("", "").digest == sample_images["oci-single"].digest
    assert source.get_manifest("samples/zstd", "v1").digest == sample_images["zstd"].digest
    assert sorted(source.list_tags("samples/tiny")) == ["v1"]


def test_a_lone_image_needs_no_name_and_a_wrong_name_lists_what_is_there(sample_images, tmp_path):
    save(sample_images.layout.path, OCILayoutDestination(tmp_path / "one"), ["tiny"])
    source = OCILayoutSource(tmp_path / "one")
    assert source.get_manifest("", "latest").digest == sample_images["tiny"].digest
    with pytest.raises(NotFoundError, match=r"no image named 'nope:1'.*samples/tiny:v1"):
        source.get_manifest("nope", "1")
    with pytest.raises(NotFoundError, match="not an OCI image layout"):
        OCILayoutSource(tmp_path / "missing")


def test_blob_writes_are_verified_and_atomic(tmp_path):
    dst = OCILayoutDestination(tmp_path / "l")
    data = b"x" * 100_000
    desc = Descriptor("application/octet-stream", digest_bytes(data), len(data))
    with pytest.raises(DigestMismatchError):
        dst.put_blob("r", desc, [data[:50_000], b"y" * 50_000])

    def failing():
        yield data[:1000]
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        dst.put_blob("r", desc, failing())
    assert not dst.has_blob("r", desc)
    assert list((tmp_path / "l" / "blobs" / "sha256").iterdir()) == []  # no partial files
    dst.put_blob("r", desc, [data])
    assert dst.has_blob("r", desc)
    source_blob = OCILayoutSource.__new__(OCILayoutSource)
    source_blob.root, source_blob.where = tmp_path / "l", "t"
    with source_blob.open_blob("r", desc, offset=99_990) as f:
        assert f.read() == b"x" * 10


def test_abort_leaves_no_image_behind(sample_images, tmp_path):
    dst = OCILayoutDestination(tmp_path / "l")
    with pytest.raises(NotFoundError):
        copy_all(
            OCILayoutSource(sample_images.layout.path),
            dst,
            [*sample_jobs(["tiny"]), ("", "no-such-image", "x", "1")],
        )
    assert not (tmp_path / "l" / "index.json").exists()


def test_same_image_under_two_tags(sample_images, tmp_path):
    target = tmp_path / "l"
    jobs = [("", "tiny", "samples/tiny", "a"), ("", "tiny", "samples/tiny", "b")]
    copy_all(OCILayoutSource(sample_images.layout.path), OCILayoutDestination(target), jobs)
    # The engine asks has_manifest before each push; a second tag is still written.
    dst = OCILayoutDestination(target)
    digest = sample_images["tiny"].digest
    assert dst.has_manifest("samples/tiny", "a", digest)
    assert not dst.has_manifest("samples/tiny", "c", digest)
    source = OCILayoutSource(target)
    assert source.get_manifest("samples/tiny", "b").digest == digest
