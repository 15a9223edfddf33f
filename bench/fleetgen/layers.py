"""Write a layer: a deterministic tar streamed through a compressor, hashed on both sides.

Two compressors, as real registries see them:
- "go":   Go's compress/gzip at DefaultCompression (Docker, BuildKit, containerd push),
          run as the small program in bench/gogzip.
- "zlib": zlib level 6 with a zero mtime, OS byte 255 (Jib, via java.util.zip).
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

COPY_CHUNK = 1 << 20
_JAVA_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@dataclass(frozen=True)
class TarMember:
    """One tar entry: `arcname` in the layer, content from `source` on this machine."""

    arcname: str
    kind: str  # "f", "l", "d"
    mode: int
    source: str = ""
    linkname: str = ""


@dataclass(frozen=True)
class LayerResult:
    digest: str  # of the compressed blob
    size: int
    diff_id: str  # of the uncompressed tar
    tar_size: int


class _ZlibGzipSink:
    """gzip framing around a raw zlib level 6 deflate stream, as java.util.zip writes it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 8, 0)
        self._crc = 0
        self._size = 0
        self.hasher = hashlib.sha256()
        self.written = 0
        self._emit(_JAVA_GZIP_HEADER)

    def _emit(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self.hasher.update(data)
            self.written += len(data)

    def write(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._emit(self._deflate.compress(data))

    def close(self) -> None:
        self._emit(self._deflate.flush())
        self._emit(struct.pack("<LL", self._crc, self._size & 0xFFFFFFFF))


class _GoGzipSink:
    """Pipes the tar into the gogzip program; the blob is hashed after it is written."""

    def __init__(self, out_path: Path, gogzip: str) -> None:
        self._out_path = out_path
        self._fh = open(out_path, "wb")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            [gogzip, "-level=-1"], stdin=subprocess.PIPE, stdout=self._fh, bufsize=COPY_CHUNK
        )

    def write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        rc = self._proc.wait()
        self._fh.close()
        if rc != 0:
            raise RuntimeError(f"gogzip exited with status {rc}")


class _HashingTee:
    """The file object tarfile writes to: hashes the tar, forwards it to the compressor."""

    def __init__(self, sink: _ZlibGzipSink | _GoGzipSink) -> None:
        self._sink = sink
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        self._sink.write(bytes(data))
        return len(data)

    def tell(self) -> int:
        return self.size


def _tarinfo(member: TarMember, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member.arcname)
    info.mtime = mtime
    info.mode = member.mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if member.kind == "d":
        info.type = tarfile.DIRTYPE
    elif member.kind == "l":
        info.type = tarfile.SYMTYPE
        info.linkname = member.linkname
    else:
        info.type = tarfile.REGTYPE
    return info


def write_tar(fileobj: _HashingTee, members: list[TarMember], mtime: int) -> None:
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        tar.copybufsize = COPY_CHUNK
        for member in members:
            info = _tarinfo(member, mtime)
            if member.kind == "f":
                with open(member.source, "rb") as fh:
                    info.size = os.fstat(fh.fileno()).st_size
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(COPY_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def build_layer(
    members: list[TarMember], compressor: str, mtime: int, blobs_dir: Path, gogzip: str
) -> LayerResult:
    """Write the compressed layer into `blobs_dir` under its digest; return its identity."""
    tmp = blobs_dir / f".tmp-{os.getpid()}-{id(members)}"
    try:
        if compressor == "zlib":
            with open(tmp, "wb") as fh:
                zsink = _ZlibGzipSink(fh)
                tee = _HashingTee(zsink)
                write_tar(tee, members, mtime)
                zsink.close()
            digest = zsink.hasher.hexdigest()
        elif compressor == "go":
            gsink = _GoGzipSink(tmp, gogzip)
            tee = _HashingTee(gsink)
            try:
                write_tar(tee, members, mtime)
            finally:
                gsink.close()
            digest = _sha256_file(tmp)
        else:
            raise ValueError(f"unknown compressor {compressor!r}")
        size = tmp.stat().st_size
        os.replace(tmp, blobs_dir / digest)
    finally:
        tmp.unlink(missing_ok=True)
    return LayerResult(f"sha256:{digest}", size, f"sha256:{tee.hasher.hexdigest()}", tee.size)
