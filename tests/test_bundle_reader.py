"""Loading bundles: verification before anything moves, and every bad input named."""

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.bundle_helpers import flip_byte, sample_jobs, save
from tests.transport_driver import copy_all
from transship.bundle.chain import blobs_of_image
from transship.bundle.meta import (
    BlobEntry,
    BundleMeta,
    DataFileEntry,
    Piece,
    load_meta,
    now_iso,
    write_meta,
)
from transship.bundle.reader import BundleReader, BundleVerificationError
from transship.errors import BundleError, DigestMismatchError, NotFoundError
from transship.oci.digest import digest_bytes
from transship.transports.bundle import BundleDestination, BundleSource
from transship.transports.oci_layout import OCILayoutDestination


@pytest.fixture
def bundle(sample_images, tmp_path) -> Path:
    """A complete bundle of every sample in 3 data files; returns its meta path."""
    dst = BundleDestination(tmp_path / "b" / "fleet.meta.json", workers=3)
    save(sample_images.layout.path, dst)
    return dst.meta_path


def data_files(meta_path: Path) -> list[Path]:
    return [meta_path.parent / f.name for f in load_meta(meta_path).data_files]


def load_into_layout(meta_path: Path, target: Path) -> None:
    src = BundleSource(meta_path)
    jobs = [(i.repository, i.tag, i.repository, i.tag) for i in src.images()]
    copy_all(src, OCILayoutDestination(target), jobs)


def test_sound_bundle_loads_every_image_exactly(bundle, sample_images, tmp_path):
    target = tmp_path / "target"
    load_into_layout(bundle, target)
    index = json.loads((target / "index.json").read_text())
    digests = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
    }
    assert digests == {f"samples/{n}:v1": sample_images[n].digest for n in sample_images.names}


def test_flipped_byte_is_named_and_nothing_is_loaded(bundle, tmp_path):
    victim = data_files(bundle)[1]
    flip_byte(victim, victim.stat().st_size // 2)
    with pytest.raises(BundleVerificationError) as info:
        load_into_layout(bundle, tmp_path / "target")
    assert info.value.damaged == [victim.name]
    assert f"{victim.name} (corrupt: sha256 does not match)" in str(info.value)
    assert not (tmp_path / "target").exists()


def test_every_problem_is_reported_at_once(bundle, tmp_path):
    first, second, third = data_files(bundle)
    flip_byte(first, 700)
    with open(second, "r+b") as f:  # a volume cut short (copy interrupted)
        f.truncate(second.stat().st_size - 1000)
    third.unlink()
    with pytest.raises(BundleVerificationError) as info:
        BundleSource(bundle)
    error = info.value
    assert error.missing == [third.name]
    assert sorted(error.damaged) == sorted([first.name, second.name])
    message = str(error)
    assert "missing: " + third.name in message
    assert f"truncated: {second.name} (truncated: " in message
    assert "nothing was loaded" in message


def test_invalid_meta_is_a_clear_error(bundle):
    text = bundle.read_text()
    bundle.write_text(text[: len(text) // 2])
    with pytest.raises(BundleError, match=r"fleet\.meta\.json: not valid JSON"):
        BundleSource(bundle)


def test_edited_manifest_in_meta_is_caught_before_loading(bundle):
    doc = json.loads(bundle.read_text())
    text = doc["images"][0]["manifest"]["text"]
    doc["images"][0]["manifest"]["text"] = text.replace('"schemaVersion"', '"schemaversion"')
    bundle.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="does not match its digest"):
        BundleSource(bundle)


def test_bytes_changed_after_verification_never_reach_the_target(bundle, tmp_path):
    src = BundleSource(bundle)  # verified now
    layer = max(src.meta.blobs, key=lambda b: b.size)
    piece = layer.pieces[0]
    flip_byte(bundle.parent / piece.file, piece.offset + piece.length // 2)
    with pytest.raises(DigestMismatchError), src.open_blob("", layer.descriptor) as f:
        f.read()
    target = OCILayoutDestination(tmp_path / "target")
    image = next(i for i in src.images() if layer.digest in {d.digest for d in blobs_of_image(i)})
    with pytest.raises(DigestMismatchError):
        copy_all(src, target, [(image.repository, image.tag, image.repository, image.tag)])
    assert not (tmp_path / "target" / "blobs" / "sha256" / layer.digest[7:]).exists()
    assert not (tmp_path / "target" / "index.json").exists()


def crafted_bundle(directory: Path, name: str, kind: bytes = tarfile.REGTYPE) -> Path:
    """A bundle whose data file (listed with its right size and sha256) holds a member
    called `name` where the meta expects blobs/sha256/<hex>."""
    directory.mkdir(parents=True, exist_ok=True)
    data = b"payload of a crafted member\n"
    digest = digest_bytes(data)
    path = directory / "evil.000.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path) as tar:
        offset = tar.getmembers()[-1].offset_data
    meta = BundleMeta(
        version=1,
        id="evil",
        created=now_iso(),
        tool_version="0",
        blobs=[
            BlobEntry(
                digest=digest,
                size=len(data),
                pieces=[
                    Piece(
                        file=path.name,
                        member=f"blobs/sha256/{digest[7:]}",
                        offset=offset,
                        length=len(data),
                    )
                ],
            )
        ],
        data_files=[
            DataFileEntry(
                name=path.name,
                size=path.stat().st_size,
                sha256=digest_bytes(path.read_bytes())[7:],
            )
        ],
    )
    write_meta(directory / "evil.meta.json", meta)
    return directory / "evil.meta.json"


@pytest.mark.parametrize(
    ("member", "kind", "reason"),
    [
        ("../../x", tarfile.REGTYPE, "parent directory reference"),
        ("blobs/../../../x", tarfile.REGTYPE, "parent directory reference"),
        ("/tmp/transship-absolute-x", tarfile.REGTYPE, "absolute path"),
        ("blobs/sha256/link", tarfile.SYMTYPE, "is a link"),
    ],
)
def test_unsafe_members_are_refused_and_nothing_is_written_outside(tmp_path, member, kind, reason):
    meta_path = crafted_bundle(tmp_path / "bundle", member, kind)
    before = set(tmp_path.rglob("*"))
    with pytest.raises(BundleVerificationError) as info:
        BundleSource(meta_path)
    assert "evil.000.tar (bad member" in str(info.value)
    assert reason in str(info.value)
    # Even unverified, reading by offset checks the header in front of the data.
    reader = BundleReader(meta_path)
    with pytest.raises(BundleError):
        b"".join(reader.read_blob(reader.meta.blobs[0].digest))
    assert set(tmp_path.rglob("*")) == before
    assert not Path("/tmp/transship-absolute-x").exists()
    assert not (tmp_path.parent / "x").exists()


def test_blob_left_to_a_parent_is_not_read_from_this_bundle(sample_images, tmp_path):
    parent = BundleDestination(tmp_path / "p.meta.json", workers=1)
    save(sample_images.layout.path, parent, ["oci-single"])
    child = BundleDestination(tmp_path / "c.meta.json", workers=1, since=[parent.meta_path])
    save(sample_images.layout.path, child, ["docker-single"])
    src = BundleSource(child.meta_path)
    left = src.meta.parents[0].blobs[0]
    with (
        pytest.raises(NotFoundError, match=r"left to parent bundle .*\(p\.meta\.json\)"),
        src.open_blob("", left.descriptor),
    ):
        pass


def test_verification_runs_files_in_parallel_and_is_repeatable(bundle):
    reader = BundleReader(bundle, workers=3)
    reader.verify()
    reader.verify()
    assert reader.verified
    assert os.path.getsize(bundle) > 0
    assert sample_jobs()  # the helper list is what the fixture saved


def test_truncated_volume_of_a_split_bundle_is_named(tmp_path):
    from tests.bundle_helpers import big_layout
    from transship.transports.oci_layout import OCILayoutSource

    layout = big_layout(tmp_path / "layout", {"huge": 400_000})
    dst = BundleDestination(tmp_path / "v" / "v.meta.json", volume_size=128 * 1024)
    copy_all(OCILayoutSource(layout.path), dst, [("", "huge", "big/huge", "1")])
    volumes = data_files(dst.meta_path)
    assert len(volumes) >= 4
    cut = volumes[2]
    with open(cut, "r+b") as f:
        f.truncate(cut.stat().st_size // 2)
    with pytest.raises(BundleVerificationError) as info:
        BundleSource(dst.meta_path)
    assert [p.name for p in info.value.problems] == [cut.name]
    assert info.value.problems[0].kind == "truncated"
