"""Tests of the fleet generator's building blocks (run: python -m pytest bench/tests)."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))

from fleetgen.layers import TarMember, build_layer  # noqa: E402
from fleetgen.zipcopy import read_raw_entries, write_jar  # noqa: E402


@pytest.fixture
def source_jar(tmp_path: Path) -> Path:
    path = tmp_path / "source.jar"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        zf.writestr("META-INF/OLD.SF", "signature")
        for i in range(200):
            zf.writestr(f"com/example/C{i}.class", bytes([i % 7]) * (100 + i * 13))
        zf.writestr("stored.txt", b"kept as stored", compress_type=zipfile.ZIP_STORED)
    return path


def test_write_jar_copies_selected_entries_exactly(source_jar: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jar"
    with open(out, "wb") as fh:
        count = write_jar(fh, [str(source_jar)], b"Manifest-Version: 1.0\r\n\r\n", "s", 0.5)
    with zipfile.ZipFile(out) as new, zipfile.ZipFile(source_jar) as old:
        assert new.testzip() is None
        names = new.namelist()
        assert names[0] == "META-INF/MANIFEST.MF"
        assert "META-INF/OLD.SF" not in names  # signatures no longer match: dropped
        copied = [n for n in names if n != "META-INF/MANIFEST.MF"]
        assert count == len(names) and 40 < len(copied) < 160  # about half of 201
        for name in copied:
            assert new.read(name) == old.read(name)
    raw_old = {e.name: e.data for e in read_raw_entries(str(source_jar))}
    raw_new = {e.name: e.data for e in read_raw_entries(str(out))}
    assert all(raw_new[n] == raw_old[n] for n in copied)  # compressed bytes untouched


def test_write_jar_is_deterministic_and_drop_seed_makes_a_near_copy(
    source_jar: Path, tmp_path: Path
) -> None:
    def make(name: str, **kw: object) -> bytes:
        with open(tmp_path / name, "wb") as fh:
            write_jar(fh, [str(source_jar)], b"M\r\n\r\n", "seed", 0.9, **kw)  # type: ignore[arg-type]
        return (tmp_path / name).read_bytes()

    assert make("a.jar") == make("b.jar")
    v2 = make("c.jar", drop_seed="v2", drop=0.1)
    assert v2 != make("a.jar")
    with zipfile.ZipFile(tmp_path / "a.jar") as a, zipfile.ZipFile(tmp_path / "c.jar") as c:
        assert set(c.namelist()) < set(a.namelist())
        assert len(c.namelist()) > 0.75 * len(a.namelist())


def test_write_jar_stops_at_target(source_jar: Path, tmp_path: Path) -> None:
    with open(tmp_path / "small.jar", "wb") as fh:
        write_jar(fh, [str(source_jar)], b"M\r\n\r\n", "s", 1.0, target_bytes=100)
    with zipfile.ZipFile(tmp_path / "small.jar") as zf:
        assert 1 < len(zf.namelist()) < 50  # of 201


def _members(root: Path) -> list[TarMember]:
    (root / "dir").mkdir()
    (root / "dir" / "a.txt").write_bytes(b"hello " * 1000)
    (root / "dir" / "b.bin").write_bytes(bytes(range(256)) * 64)
    return [
        TarMember("opt", "d", 0o755),
        TarMember("opt/a.txt", "f", 0o644, source=str(root / "dir" / "a.txt")),
        TarMember("opt/b.bin", "f", 0o600, source=str(root / "dir" / "b.bin")),
        TarMember("opt/link", "l", 0o777, linkname="a.txt"),
    ]


def test_zlib_layer_is_java_style_gzip_with_right_digests(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    result = build_layer(_members(tmp_path), "zlib", 1, blobs, gogzip="unused")
    blob = (blobs / result.digest[7:]).read_bytes()
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # mtime 0, OS 255
    assert result.size == len(blob)
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == result.digest
    tar_bytes = gzip.decompress(blob)
    assert "sha256:" + hashlib.sha256(tar_bytes).hexdigest() == result.diff_id
    assert len(tar_bytes) == result.tar_size
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        infos = tar.getmembers()
        assert [i.name for i in infos] == ["opt", "opt/a.txt", "opt/b.bin", "opt/link"]
        assert {(i.mtime, i.uid, i.gid) for i in infos} == {(1, 0, 0)}
        assert tar.extractfile("opt/a.txt").read() == b"hello " * 1000  # type: ignore[union-attr]
        assert infos[2].mode == 0o600 and infos[3].linkname == "a.txt"


def test_layers_are_reproducible_and_compressors_share_the_tar(tmp_path: Path) -> None:
    gogzip = shutil.which("gogzip") or str(BENCH / ".work" / "bin" / "gogzip")
    if not Path(gogzip).exists():
        pytest.skip("gogzip not built (python bench/fleet.py build builds it)")
    members = _members(tmp_path)
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    first = build_layer(members, "go", 5, tmp_path / "one", gogzip)
    again = build_layer(members, "go", 5, tmp_path / "two", gogzip)
    zlib_result = build_layer(members, "zlib", 5, tmp_path / "two", gogzip)
    assert first == again
    assert zlib_result.diff_id == first.diff_id and zlib_result.digest != first.digest
