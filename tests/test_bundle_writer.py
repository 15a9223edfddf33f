"""Writing bundles: parallel data files, plain tar, each blob once, volumes, failures,
resume, disk full."""

import errno
import json
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from tests.bundle_helpers import big_layout, run, sample_jobs, save, sha256_file, tar_names
from tests.transport_driver import copy_all
from transship.bundle import datafile
from transship.bundle.reader import BundleReader
from transship.bundle.writer import BlobStoreWriter, BundleWriter, DataFileNaming, parse_size
from transship.errors import BundleError, ConfigError, DigestMismatchError
from transship.oci.descriptor import Descriptor
from transship.oci.digest import digest_bytes
from transship.transports.bundle import BundleDestination, BundleSource
from transship.transports.oci_layout import OCILayoutSource


def blob(data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
    return Descriptor(media_type, digest_bytes(data), len(data))


def chunks_of(data: bytes, size: int = 7000):
    return [data[i : i + size] for i in range(0, len(data), size)]


def members_by_digest(directory: Path) -> dict[str, list[str]]:
    """digest of each blob member's content -> the data files holding it."""
    found: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.tar")):
        with tarfile.open(path) as tar:
            for info in tar:
                if info.name.startswith("blobs/sha256/"):
                    data = tar.extractfile(info).read()
                    assert info.name == "blobs/sha256/" + digest_bytes(data)[7:]
                    found.setdefault(digest_bytes(data), []).append(path.name)
    return found


def test_parallel_data_files_hold_each_blob_once_byte_identical(sample_images, tmp_path):
    layout = sample_images.layout.path
    dst = BundleDestination(tmp_path / "out" / "fleet.meta.json", workers=3)
    save(layout, dst)
    meta = dst.meta
    assert meta is not None
    data_files = sorted((tmp_path / "out").glob("fleet.*.tar"))
    assert [p.name for p in data_files] == ["fleet.000.tar", "fleet.001.tar", "fleet.002.tar"]
    # Plain tar archives, OCI layout paths.
    for path in data_files:
        names = tar_names(path)
        assert names and all(n.startswith("blobs/sha256/") for n in names)
    # Every blob once, however many images share it, and byte-identical to the source.
    stored = members_by_digest(tmp_path / "out")
    assert all(len(files) == 1 for files in stored.values())
    for digest in stored:
        assert sha256_file(layout / "blobs" / "sha256" / digest[7:]) == digest
    needed = set()
    for image in meta.images:
        for entry in image.manifests():
            parsed = entry.raw().parse()
            needed.update(d.digest for d in getattr(parsed, "blobs", ()))
    assert set(stored) == needed == {b.digest for b in meta.blobs}
    # The meta's data file sizes and sha256 are those of the files.
    for entry in meta.data_files:
        path = tmp_path / "out" / entry.name
        assert path.stat().st_size == entry.size
        assert sha256_file(path) == "sha256:" + entry.sha256
    # No journals or in-progress state left behind.
    leftovers = {p.name for p in (tmp_path / "out").iterdir()} - {p.name for p in data_files}
    assert leftovers == {"fleet.meta.json"}


def test_meta_lists_images_with_sources_and_exact_manifests(sample_images, tmp_path):
    dst = BundleDestination(tmp_path / "b.meta.json", workers=2)
    dst.record_source("samples/tiny", "v1", "registry.example:5000/library/tiny:latest")
    save(sample_images.layout.path, dst, ["tiny", "oci-multi"])
    doc = json.loads((tmp_path / "b.meta.json").read_text())
    assert doc["format"] == "transship-bundle" and doc["version"] == 1
    assert doc["id"] and doc["created"].endswith("Z") and doc["tool_version"]
    assert doc["options"]["workers"] == 2
    by_target = {i["target"]: i for i in doc["images"]}
    assert by_target["samples/tiny:v1"]["source"] == "registry.example:5000/library/tiny:latest"
    multi = by_target["samples/oci-multi:v1"]
    built = sample_images["oci-multi"]
    assert multi["manifest"]["digest"] == built.digest
    assert multi["manifest"]["text"].encode() == built.manifest.raw
    assert [c["platform"] for c in multi["children"]] == [
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
    ]
    for blob_entry in doc["blobs"]:
        (piece,) = blob_entry["pieces"]
        assert set(piece) == {"file", "member", "offset", "length"}
        assert blob_entry["encoding"] == "raw"
    for data_file in doc["data_files"]:
        assert set(data_file) == {"name", "size", "sha256"}


def test_many_threads_share_the_writer(tmp_path):
    writer = BundleWriter(tmp_path, "t", workers=4)
    payloads = [os.urandom(10_000 + i) for i in range(40)]
    errors = []

    def put(data):
        try:
            # The same blob from two threads at once is stored once.
            writer.put_blob(blob(data), chunks_of(data))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=put, args=(d,)) for d in payloads + payloads[:10]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    meta = writer.commit([], [])
    assert len(meta.blobs) == 40
    assert len(meta.data_files) == 4
    reader = BundleReader(tmp_path / "t.meta.json")
    reader.verify()
    for data in payloads:
        assert b"".join(reader.read_blob(digest_bytes(data))) == data


def test_volumes_never_exceed_the_size_and_split_big_blobs(tmp_path):
    layout = big_layout(tmp_path / "layout", {"small": 40_000, "mid": 150_000, "huge": 700_000})
    volume = 256 * 1024
    dst = BundleDestination(tmp_path / "out" / "v.meta.json", workers=2, volume_size=volume)
    copy_all(OCILayoutSource(layout.path), dst, [("", n, f"big/{n}", "1") for n in layout.tags])
    files = sorted((tmp_path / "out").glob("v.*.tar"))
    assert len(files) >= 4  # 900 kB of blobs in 256 KiB volumes
    for path in files:
        assert path.stat().st_size <= volume
        assert tar_names(path)  # each volume is a complete tar on its own
    meta = dst.meta
    huge_layer = next(b for b in meta.blobs if b.size > volume and b.media_type.endswith("gzip"))
    assert len(huge_layer.pieces) >= 3
    assert [p.member for p in huge_layer.pieces] == [
        f"blobs/sha256/{huge_layer.digest[7:]}.part{i:03d}"
        for i in range(1, len(huge_layer.pieces) + 1)
    ]
    assert sum(p.length for p in huge_layer.pieces) == huge_layer.size
    # Read back through the bundle source: byte-identical.
    src = BundleSource(dst.meta_path)
    with src.open_blob("big/huge", huge_layer.descriptor) as f:
        assert digest_bytes(f.read()) == huge_layer.digest
    with src.open_blob("big/huge", huge_layer.descriptor, offset=300_000) as f:
        tail = f.read()
    assert tail == (layout.path / "blobs" / "sha256" / huge_layer.digest[7:]).read_bytes()[300_000:]


def test_volume_size_too_small_or_combined_with_single_file(tmp_path):
    with pytest.raises(ConfigError, match="too small"):
        BundleWriter(tmp_path, "x", volume_size=1000)
    with pytest.raises(ConfigError, match="cannot be combined"):
        BundleWriter(tmp_path, "x", volume_size=1 << 30, single_file=True)


def test_bad_digest_or_failing_source_leaves_nothing_behind(tmp_path):
    writer = BundleWriter(tmp_path, "t", workers=1)
    good = os.urandom(50_000)
    writer.put_blob(blob(good), chunks_of(good))
    size_after_good = (tmp_path / "t.000.tar").stat().st_size

    wrong = os.urandom(30_000)
    with pytest.raises(DigestMismatchError):
        writer.put_blob(blob(wrong), chunks_of(os.urandom(30_000)))
    with pytest.raises(DigestMismatchError, match="more than"):
        writer.put_blob(blob(wrong), chunks_of(wrong + b"x"))
    with pytest.raises(DigestMismatchError, match="early"):
        writer.put_blob(blob(wrong), chunks_of(wrong[:-1]))

    def broken():
        yield wrong[:10_000]
        raise ConnectionError("source went away")

    with pytest.raises(ConnectionError):
        writer.put_blob(blob(wrong), broken())
    assert (tmp_path / "t.000.tar").stat().st_size == size_after_good
    assert not writer.has_blob(blob(wrong).digest)
    # It still works afterwards, and the bundle is sound.
    writer.put_blob(blob(wrong), chunks_of(wrong))
    writer.commit([], [])
    reader = BundleReader(tmp_path / "t.meta.json")
    reader.verify()
    assert {b.digest for b in reader.meta.blobs} == {blob(good).digest, blob(wrong).digest}


class CountingSource(OCILayoutSource):
    """Counts blob reads; fails after `fail_after` of them when set."""

    def __init__(self, root, fail_after=None):
        super().__init__(root)
        self.opened: list[str] = []
        self.fail_after = fail_after
        self._lock = threading.Lock()

    def open_blob(self, repository, desc, offset=0):
        with self._lock:
            if self.fail_after is not None and len(self.opened) >= self.fail_after:
                raise ConnectionError("network down")
            self.opened.append(desc.digest)
        return super().open_blob(repository, desc, offset)


def test_interrupted_save_resumes_without_fetching_again(sample_images, tmp_path):
    layout = sample_images.layout.path
    out = tmp_path / "out" / "r.meta.json"
    first = CountingSource(layout, fail_after=4)
    with pytest.raises(ConnectionError):
        copy_all(first, BundleDestination(out, workers=2), sample_jobs(), workers=1)
    assert not out.exists()  # no meta: nothing looks complete
    written = set(first.opened)
    assert len(written) == 4

    # A crash can also leave a torn member at the end of a data file.
    data_file = next(out.parent.glob("r.*.tar"))
    with open(data_file, "ab") as f:
        f.write(b"half a header")

    second = CountingSource(layout)
    dst = BundleDestination(out, workers=2)
    assert dst.resumed_blobs == 4
    copy_all(second, dst, sample_jobs(), workers=2)
    assert not written & set(second.opened), "blobs already written were fetched again"
    src = BundleSource(out)  # verifies every data file
    assert {i.target for i in src.images()} == {f"samples/{n}:v1" for n in sample_images.names}
    for b in src.meta.blobs:
        with src.open_blob("", b.descriptor) as f:
            assert digest_bytes(f.read()) == b.digest


def test_resume_refetches_a_journaled_blob_whose_bytes_changed(tmp_path):
    writer = BundleWriter(tmp_path, "t", workers=1)
    a, b = os.urandom(20_000), os.urandom(20_000)
    writer.put_blob(blob(a), [a])
    entry_b = writer.put_blob(blob(b), [b])
    writer.abort()
    with open(tmp_path / "t.000.tar", "r+b") as f:
        f.seek(entry_b.pieces[0].offset + 5)
        f.write(b"XX")
    again = BundleWriter(tmp_path, "t", workers=1)
    assert again.resumed == 1
    assert again.has_blob(blob(a).digest) and not again.has_blob(blob(b).digest)
    again.put_blob(blob(b), [b])
    again.commit([], [])
    reader = BundleReader(tmp_path / "t.meta.json")
    reader.verify()
    assert b"".join(reader.read_blob(blob(b).digest)) == b


def test_changed_options_start_over_and_leftovers_are_not_taken_blindly(tmp_path):
    data = os.urandom(5000)
    writer = BundleWriter(tmp_path, "t", workers=1)
    writer.put_blob(blob(data), [data])
    writer.abort()
    # Another volume size: the old partial files are not reused.
    other = BundleWriter(tmp_path, "t", workers=1, volume_size=1 << 20)
    assert other.resumed == 0 and not other.has_blob(blob(data).digest)
    other.abort()
    # Data files without a record of an unfinished save are someone else's: refuse.
    (tmp_path / "t.partial.json").unlink()
    (tmp_path / "t.000.tar").write_bytes(b"x" * 1024)
    with pytest.raises(BundleError, match="no record of an unfinished save"):
        BundleWriter(tmp_path, "t")


def test_complete_bundle_is_not_overwritten_by_accident(tmp_path):
    data = os.urandom(100)
    writer = BundleWriter(tmp_path, "t")
    writer.put_blob(blob(data), [data])
    writer.commit([], [])
    with pytest.raises(BundleError, match="already exists"):
        BundleWriter(tmp_path, "t")
    fresh = BundleWriter(tmp_path, "t", overwrite=True)
    assert not (tmp_path / "t.meta.json").exists()
    assert not fresh.has_blob(blob(data).digest)


def test_disk_full_is_a_clear_error_and_leaves_no_meta(tmp_path, monkeypatch):
    budget = {"left": 120_000}
    real_write = datafile._write_some

    def write_until_full(file, data):
        budget["left"] -= len(data)
        if budget["left"] < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(file, data)

    monkeypatch.setattr(datafile, "_write_some", write_until_full)
    writer = BundleWriter(tmp_path, "t", workers=1)
    small, big = os.urandom(50_000), os.urandom(200_000)
    writer.put_blob(blob(small), [small])
    with pytest.raises(BundleError, match=r"disk full while writing .*t\.000\.tar"):
        writer.put_blob(blob(big), chunks_of(big))
    writer.abort()
    assert not (tmp_path / "t.meta.json").exists()
    # The data file was cut back to the last complete blob, which a re-run keeps.
    assert (tmp_path / "t.000.tar").stat().st_size < 60_000
    monkeypatch.setattr(datafile, "_write_some", real_write)
    again = BundleWriter(tmp_path, "t", workers=1)
    assert again.resumed == 1 and again.has_blob(blob(small).digest)


def _try_mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode == 0


def test_disk_full_on_a_real_small_filesystem_then_resume(sample_images, tmp_path):
    """A 1 MiB tmpfs fills up during the save: clear error, no meta; given room, a re-run
    finishes without fetching again what was written."""
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or not _try_mount_tmpfs(disk, "1m"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        out = disk / "full.meta.json"
        first = CountingSource(sample_images.layout.path)
        with pytest.raises(BundleError, match=r"disk full while writing .*full\.00\d\.tar"):
            copy_all(first, BundleDestination(out, workers=1), sample_jobs(), workers=1)
        assert not out.exists()
        assert not list(disk.glob("*.meta.json"))
        run("mount", "-o", "remount,size=32m", disk)
        second = CountingSource(sample_images.layout.path)
        dst = BundleDestination(out, workers=1)
        assert dst.resumed_blobs >= 1
        copy_all(second, dst, sample_jobs(), workers=1)
        assert len(second.opened) == len(dst.meta.blobs) - dst.resumed_blobs
        BundleSource(out).verify()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4G", 4 << 30),
        ("4GiB", 4 << 30),
        ("700m", 700 << 20),
        ("1.5G", 3 << 29),
        ("65536", 65536),
        (1024, 1024),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_parse_size_rejects_junk():
    with pytest.raises(ConfigError, match="not a size"):
        parse_size("four gigs")


def test_4g_volumes_fit_fat32():
    store = BlobStoreWriter(Path("/nonexistent"), DataFileNaming("x"), volume_size=parse_size("4G"))
    assert store.volume_limit == (4 << 30) - 512  # FAT32's limit is 4 GiB - 1


def test_resume_across_volumes_and_fewer_workers(tmp_path):
    layout = big_layout(tmp_path / "layout", {"a": 300_000, "b": 90_000, "c": 200_000})
    jobs = [("", n, f"big/{n}", "1") for n in ("a", "b", "c")]
    out = tmp_path / "out" / "v.meta.json"
    first = CountingSource(layout.path, fail_after=4)
    with pytest.raises(ConnectionError):
        copy_all(first, BundleDestination(out, workers=3, volume_size=128 * 1024), jobs, workers=1)
    second = CountingSource(layout.path)
    dst = BundleDestination(out, workers=1, volume_size=128 * 1024)
    assert dst.resumed_blobs == 4
    copy_all(second, dst, jobs, workers=1)
    assert not set(first.opened) & set(second.opened)
    for path in out.parent.glob("v.*.tar"):
        assert path.stat().st_size < 128 * 1024
        assert tar_names(path)
    src = BundleSource(out)
    for b in src.meta.blobs:
        with src.open_blob("", b.descriptor) as f:
            assert digest_bytes(f.read()) == b.digest
