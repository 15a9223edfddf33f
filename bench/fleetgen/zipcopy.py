"""Write jars out of other jars' entries, copying their compressed bytes as they are.

A jar made here holds real class files compressed by the tools that built the source jars;
only the selection of entries (and the manifest) is new. Entry dates are fixed, so the
same inputs always give the same bytes.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2LH")
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1  # 1980-01-01 00:00, the earliest zip date
_UTF8_FLAG = 0x800
_SIGNATURE_SUFFIXES = (".SF", ".RSA", ".DSA", ".EC")


@dataclass(frozen=True)
class RawEntry:
    name: str
    flags: int
    method: int
    crc: int
    usize: int
    data: bytes  # compressed bytes as stored in the source


def fraction(seed: str, name: str) -> float:
    """A stable pseudo-random number in [0, 1) for (seed, name)."""
    h = hashlib.blake2b(f"{seed}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def read_raw_entries(path: str) -> Iterator[RawEntry]:
    """Entries of a jar (or the classes of a jmod) with their compressed bytes."""
    is_jmod = path.endswith(".jmod")
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for info in zf.infolist():
            name = info.filename
            if is_jmod:
                if not name.startswith("classes/") or name.endswith("module-info.class"):
                    continue
                name = name[len("classes/") :]
            if not name or info.flag_bits & 0x1 or info.compress_type not in (0, 8):
                continue
            if info.compress_size >= 0xFFFFFFFF or info.file_size >= 0xFFFFFFFF:
                continue
            fh.seek(info.header_offset)
            header = fh.read(_LOCAL.size)
            if len(header) < _LOCAL.size or header[:4] != b"PK\x03\x04":
                continue
            name_len, extra_len = _LOCAL.unpack(header)[-2:]
            fh.seek(info.header_offset + _LOCAL.size + name_len + extra_len)
            data = fh.read(info.compress_size)
            flags = info.flag_bits & _UTF8_FLAG
            yield RawEntry(name, flags, info.compress_type, info.CRC, info.file_size, data)


class RawZipWriter:
    """A minimal zip writer that takes already-compressed entries (no zip64: jars are small)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._central: list[bytes] = []
        self._offset = 0
        self.names: set[str] = set()
        self.compressed_bytes = 0

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._offset += len(data)

    def add(self, entry: RawEntry) -> None:
        try:
            name = entry.name.encode("utf-8" if entry.flags & _UTF8_FLAG else "cp437")
            flags = entry.flags
        except UnicodeEncodeError:
            name, flags = entry.name.encode(), _UTF8_FLAG
        csize = len(entry.data)
        version = 20 if entry.method == 8 else 10
        local = _LOCAL.pack(
            b"PK\x03\x04", version, flags, entry.method, _DOS_TIME, _DOS_DATE,
            entry.crc, csize, entry.usize, len(name), 0,
        )  # fmt: skip
        central = _CENTRAL.pack(
            b"PK\x01\x02", 20, version, flags, entry.method, _DOS_TIME, _DOS_DATE,
            entry.crc, csize, entry.usize, len(name), 0, 0, 0, 0, 0, self._offset,
        )  # fmt: skip
        self._central.append(central + name)
        self._write(local + name)
        self._write(entry.data)
        self.names.add(entry.name)
        self.compressed_bytes += csize

    def add_deflated(self, name: str, content: bytes) -> None:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = comp.compress(content) + comp.flush()
        self.add(RawEntry(name, _UTF8_FLAG, 8, zlib.crc32(content), len(content), data))

    def close(self) -> None:
        start = self._offset
        for record in self._central:
            self._write(record)
        count = len(self._central)
        if count > 0xFFFF:
            raise ValueError("too many entries for a zip without zip64")
        self._write(_END.pack(b"PK\x05\x06", 0, 0, count, count, self._offset - start, start, 0))


def _skip(name: str) -> bool:
    upper = name.upper()
    return upper == "META-INF/MANIFEST.MF" or (
        upper.startswith("META-INF/") and upper.endswith(_SIGNATURE_SUFFIXES)
    )


def write_jar(
    out: BinaryIO,
    sources: list[str],
    manifest: bytes,
    keep_seed: str,
    keep: float,
    target_bytes: int | None = None,
    drop_seed: str = "",
    drop: float = 0.0,
) -> int:
    """Write a jar of the entries of `sources` (in order) that the seeds select.

    An entry is kept when fraction(keep_seed) < keep and not fraction(drop_seed) < drop,
    so a `drop_seed` makes a near copy (a new version) of the same selection.
    Stops once `target_bytes` of compressed entries are written. Returns the entry count.
    """
    writer = RawZipWriter(out)
    writer.add_deflated("META-INF/MANIFEST.MF", manifest)
    for source in sources:
        for entry in read_raw_entries(source):
            if target_bytes is not None and writer.compressed_bytes >= target_bytes:
                break
            if entry.name in writer.names or _skip(entry.name):
                continue
            if fraction(keep_seed, entry.name) >= keep:
                continue
            if drop and fraction(drop_seed, entry.name) < drop:
                continue
            writer.add(entry)
        if target_bytes is not None and writer.compressed_bytes >= target_bytes:
            break
    writer.close()
    return len(writer.names)
