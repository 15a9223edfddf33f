"""Streaming layer scans: every entry, every content hash, every compression, bounded memory."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import pytest
import zstandard

from tests.analyze_images import Dir, File, Hardlink, Opaque, Symlink, Whiteout, layer_tar
from tests.conftest import SHARED_LAYERS_DIR
from transship.errors import DigestMismatchError, UnsupportedError
from transship.slim.analyze.layer_scan import (
    DIR,
    FILE,
    HARDLINK,
    OPAQUE,
    SYMLINK,
    WHITEOUT,
    LayerScan,
    normalise_path,
    scan_layer,
)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _scan_bytes(data: bytes) -> LayerScan:
    return scan_layer(io.BytesIO(data), _digest(data), size=len(data))


def _shared(name: str) -> Path:
    path = SHARED_LAYERS_DIR / name
    if not path.exists():
        pytest.skip(f"shared fixture {name} not present")
    return path


def _expected_from_tarfile(tar_path: Path) -> dict[str, tuple[int, str | None]]:
    """Regular files and their sha256, read the ordinary (non-streaming) way."""
    out: dict[str, tuple[int, str | None]] = {}
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if member.isreg() and "/.wh." not in f"/{member.name}":
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                out[normalise_path(member.name)] = (len(data), hashlib.sha256(data).hexdigest())
    return out


@pytest.mark.parametrize("tar_name", ["layer-pax.tar", "layer-gnu.tar"])
def test_scan_matches_tarfile_on_real_layers(tar_name: str) -> None:
    path = _shared(tar_name)
    data = path.read_bytes()
    scan = _scan_bytes(data)
    files = {
        e.path: (e.size, e.sha256.hex() if e.sha256 else None)
        for e in scan.entries
        if e.kind == FILE
    }
    assert files == _expected_from_tarfile(path)
    assert scan.uncompressed_size == len(data) == scan.compressed_size
    assert scan.compression == "none"
    assert scan.file_count == len(files)
    assert scan.content_bytes == sum(size for size, _ in files.values())
    kinds = {e.kind for e in scan.entries}
    assert {DIR, FILE, SYMLINK, HARDLINK, WHITEOUT, OPAQUE} <= kinds
    whiteouts = [e.path for e in scan.entries if e.kind == WHITEOUT]
    opaques = [e.path for e in scan.entries if e.kind == OPAQUE]
    assert all(not p.rsplit("/", 1)[-1].startswith(".wh.") for p in whiteouts)
    assert whiteouts and opaques
    assert any(len(e.path) > 100 for e in scan.entries)  # long names survive
    assert any(not e.path.isascii() for e in scan.entries)


def test_every_gzip_of_the_same_tar_scans_the_same() -> None:
    plain = _scan_bytes(_shared("layer-pax.tar").read_bytes())
    variants = sorted(SHARED_LAYERS_DIR.glob("layer-pax.tar.*.gz"))
    assert len(variants) >= 5
    for path in variants:
        data = path.read_bytes()
        scan = _scan_bytes(data)
        assert scan.compression == "gzip"
        assert scan.compressed_size == len(data)
        assert scan.uncompressed_size == plain.uncompressed_size
        assert scan.entries == plain.entries, path.name


def test_zstd_and_concatenated_gzip_members() -> None:
    tar = layer_tar([Dir("a"), File("a/x", os.urandom(300_000)), File("a/y", b"hello")])
    reference = _scan_bytes(tar)
    assert _scan_bytes(zstandard.ZstdCompressor().compress(tar)).entries == reference.entries
    half = len(tar) // 2
    two_members = gzip.compress(tar[:half]) + gzip.compress(tar[half:])
    scan = _scan_bytes(two_members)
    assert scan.entries == reference.entries
    assert scan.uncompressed_size == len(tar)


def test_entries_are_normalised_and_typed() -> None:
    tar = layer_tar(
        [
            Dir("./etc/"),
            File("./etc/hosts", b"127.0.0.1 localhost\n", 0o600),
            Symlink("etc/link", "/etc/hosts"),
            Hardlink("etc/hard", "./etc/hosts"),
            Whiteout("etc/gone"),
            Opaque("var/cache"),
        ]
    )
    entries = _scan_bytes(tar).entries
    assert [(e.path, e.kind) for e in entries] == [
        ("etc", DIR),
        ("etc/hosts", FILE),
        ("etc/link", SYMLINK),
        ("etc/hard", HARDLINK),
        ("etc/gone", WHITEOUT),
        ("var/cache", OPAQUE),
    ]
    hosts = entries[1]
    assert hosts.mode == 0o600 and hosts.size == 20
    assert hosts.sha256 == hashlib.sha256(b"127.0.0.1 localhost\n").digest()
    assert entries[2].link == "/etc/hosts"
    assert entries[3].link == "etc/hosts"


def test_wrong_digest_is_refused() -> None:
    data = gzip.compress(layer_tar([File("a", b"x")]))
    with pytest.raises(DigestMismatchError):
        scan_layer(io.BytesIO(data), _digest(data + b"!"), size=len(data))
    with pytest.raises(DigestMismatchError):
        scan_layer(io.BytesIO(data), _digest(data), size=len(data) + 1)


def test_not_a_tar_and_truncated_layers_fail_clearly() -> None:
    garbage = os.urandom(4096)
    with pytest.raises(UnsupportedError, match="not a readable tar"):
        _scan_bytes(garbage)
    data = gzip.compress(layer_tar([File("big", os.urandom(200_000))]))
    with pytest.raises(UnsupportedError, match="not a readable tar"):
        _scan_bytes(data[: len(data) // 2])


def test_empty_layer() -> None:
    for data in (b"", layer_tar([]), gzip.compress(layer_tar([]))):
        scan = _scan_bytes(data)
        assert scan.entries == [] and scan.file_count == 0


class _GeneratedLayer(io.RawIOBase):
    """A gzip layer of one big file, produced while it is read: never in memory whole."""

    def __init__(self, file_size: int):
        self._chunks = self._generate(file_size)
        self._pending = b""
        self.hasher = hashlib.sha256()
        self.content_hash = hashlib.sha256()

    def _generate(self, file_size: int):
        deflate = zlib.compressobj(1, zlib.DEFLATED, 31)
        info = tarfile.TarInfo("big.bin")
        info.size = file_size
        yield deflate.compress(info.tobuf(tarfile.PAX_FORMAT))
        block = bytes(range(256)) * 4096  # 1 MiB
        left = file_size
        while left:
            piece = block[: min(left, len(block))]
            self.content_hash.update(piece)
            left -= len(piece)
            yield deflate.compress(piece)
        yield deflate.compress(b"\0" * (-file_size % 512) + b"\0" * 1024)
        yield deflate.flush()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while len(self._pending) < max(n, 1):
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        out, self._pending = (
            (self._pending, b"") if n < 0 else (self._pending[:n], self._pending[n:])
        )
        self.hasher.update(out)
        return out


def test_memory_stays_bounded_on_a_big_layer() -> None:
    size = 256 << 20
    # First pass: learn the digest of the generated stream.
    probe = _GeneratedLayer(size)
    while probe.read(1 << 20):
        pass
    digest = "sha256:" + probe.hasher.hexdigest()
    layer = _GeneratedLayer(size)
    tracemalloc.start()
    try:
        scan = scan_layer(layer, digest)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scan.entries[0].size == size
    assert scan.entries[0].sha256 == layer.content_hash.digest()
    assert peak < 24 << 20, f"peak {peak} bytes while scanning a {size}-byte layer"
