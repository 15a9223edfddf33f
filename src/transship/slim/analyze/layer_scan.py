"""Stream one layer blob (gzip, zstd or plain tar) and list what it holds.

Nothing is written to disk and nothing bigger than a read chunk is held in memory: the
blob is decompressed chunk by chunk, the tar headers are parsed by `tarfile` reading a
forward-only view of the decompressed stream, and every regular file's content is hashed
with sha256 as it passes. The compressed bytes are hashed too and checked against the
layer's digest.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from typing import BinaryIO

import zstandard

try:  # ISA-L inflates the same streams about twice as fast as zlib
    from isal import isal_zlib as inflate_lib
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    inflate_lib = zlib  # type: ignore[no-redef]
from transship.errors import UnsupportedError
from transship.oci.digest import DigestVerifier

READ_CHUNK = 1 << 20  # compressed bytes read per call
MAX_INFLATE = 4 << 20  # cap on decompressed bytes produced per call (bounds memory)

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"

# Entry kinds.
FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
WHITEOUT = "whiteout"  # path is what it deletes
OPAQUE = "opaque"  # path is the directory whose lower contents it hides
OTHER = "other"  # devices, fifos

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(slots=True)
class FileEntry:
    """One tar entry, with the content hash (raw sha256 bytes) of regular files."""

    path: str  # normalised: no leading "/" or "./", no trailing "/"
    kind: str
    size: int = 0
    mode: int = 0
    link: str | None = None
    sha256: bytes | None = None


@dataclass(slots=True)
class LayerScan:
    digest: str
    media_type: str
    compressed_size: int
    uncompressed_size: int = 0
    compression: str = "none"
    entries: list[FileEntry] = field(default_factory=list)
    file_count: int = 0  # regular files
    content_bytes: int = 0  # their sizes summed

    def count_files(self) -> LayerScan:
        files = [e.size for e in self.entries if e.kind == FILE]
        self.file_count, self.content_bytes = len(files), sum(files)
        return self


def normalise_path(name: str) -> str:
    """Tar member names come as `./a/b`, `a/b/`, `/a/b`: reduce them to `a/b`."""
    parts = [p for p in name.split("/") if p and p != "."]
    return "/".join(parts)


ContentSink = Callable[[str], BinaryIO | None]


def scan_layer(
    stream: BinaryIO,
    digest: str,
    media_type: str = "",
    size: int = -1,
    copy_files: ContentSink | None = None,
) -> LayerScan:
    """Read a layer blob to its end and return its entries; raises DigestMismatchError when
    the bytes do not hash to `digest`, UnsupportedError when they are not a tar layer.

    `copy_files(path)` may return a writable file for a regular file's path: its content is
    written there as it streams past (the caller checks the entry's sha256 afterwards)."""
    verifier = DigestVerifier(digest, size if size >= 0 else None)
    source = _VerifyingReader(stream, verifier)
    head = source.peek(4)
    compression, chunks = _decompressed_chunks(source, head)
    tar_stream = ForwardStream(chunks)
    result = LayerScan(digest, media_type, compressed_size=0, compression=compression)
    try:
        _read_entries(tar_stream, result.entries, copy_files)
    except (tarfile.TarError, zlib.error, inflate_lib.error, zstandard.ZstdError, EOFError) as e:
        raise UnsupportedError(f"layer {digest} is not a readable tar stream: {e}") from None
    tar_stream.drain()
    source.drain()
    verifier.verify(f"layer {digest}")
    result.compressed_size = verifier.count
    result.uncompressed_size = tar_stream.tell()
    return result.count_files()


def _read_entries(
    tar_stream: ForwardStream, out: list[FileEntry], copy_files: ContentSink | None
) -> None:
    try:
        tar = tarfile.TarFile(fileobj=tar_stream, mode="r")  # type: ignore[arg-type]
    except tarfile.ReadError as e:
        if tar_stream.tell() <= tarfile.BLOCKSIZE and "empty file" in str(e):
            return  # a zero-byte layer: nothing in it
        raise
    while True:
        member = tar.next()
        if member is None:
            return
        tar.members.clear()  # tarfile keeps every member otherwise; we stream
        out.append(_entry_of(tar, tar_stream, member, copy_files))


def _entry_of(
    tar: tarfile.TarFile,
    tar_stream: ForwardStream,
    m: tarfile.TarInfo,
    copy_files: ContentSink | None,
) -> FileEntry:
    path = normalise_path(m.name)
    directory, _, base = path.rpartition("/")
    if base == OPAQUE_WHITEOUT:
        return FileEntry(directory, OPAQUE)
    if base.startswith(WHITEOUT_PREFIX):
        target = base[len(WHITEOUT_PREFIX) :]
        return FileEntry(f"{directory}/{target}" if directory else target, WHITEOUT)
    if m.isreg():
        sink = copy_files(path) if copy_files is not None else None
        return FileEntry(path, FILE, m.size, m.mode, None, _hash_member(tar, tar_stream, m, sink))
    if m.isdir():
        return FileEntry(path, DIR, 0, m.mode)
    if m.issym():
        return FileEntry(path, SYMLINK, 0, m.mode, m.linkname)
    if m.islnk():
        return FileEntry(path, HARDLINK, 0, m.mode, normalise_path(m.linkname))
    return FileEntry(path, OTHER, 0, m.mode)


def _hash_member(
    tar: tarfile.TarFile, tar_stream: ForwardStream, m: tarfile.TarInfo, sink: BinaryIO | None
) -> bytes:
    h = sha256()
    if m.issparse():  # rare in layers: let tarfile expand the holes
        member_file = tar.extractfile(m)
        assert member_file is not None
        while chunk := member_file.read(READ_CHUNK):
            h.update(chunk)
            if sink is not None:
                sink.write(chunk)
        return h.digest()
    tar_stream.seek(m.offset_data)
    remaining = m.size
    while remaining:
        view = tar_stream.read_view(min(remaining, READ_CHUNK))
        if not view:
            raise tarfile.ReadError(f"unexpected end of data in {m.name}")
        h.update(view)
        if sink is not None:
            sink.write(view)
        remaining -= len(view)
    return h.digest()


class _VerifyingReader:
    """Reads the compressed blob in big chunks, hashing and counting every byte."""

    def __init__(self, stream: BinaryIO, verifier: DigestVerifier):
        self._stream = stream
        self._verifier = verifier
        self._pending = b""

    def peek(self, n: int) -> bytes:
        while len(self._pending) < n:
            chunk = self._stream.read(READ_CHUNK)
            if not chunk:
                break
            self._verifier.update(chunk)
            self._pending += chunk
        return self._pending[:n]

    def read(self, n: int = READ_CHUNK) -> bytes:
        if self._pending:
            out, self._pending = self._pending, b""
            return out
        chunk = self._stream.read(n)
        if chunk:
            self._verifier.update(chunk)
        return chunk

    def drain(self) -> None:
        while self.read():
            pass


def _decompressed_chunks(source: _VerifyingReader, head: bytes) -> tuple[str, Iterator[bytes]]:
    if head.startswith(_GZIP_MAGIC):
        return "gzip", _gunzip(source)
    if head.startswith(_ZSTD_MAGIC):
        return "zstd", _unzstd(source)
    return "none", iter(source.read, b"")


def _gunzip(source: _VerifyingReader) -> Iterator[bytes]:
    inflater = inflate_lib.decompressobj(wbits=31)
    while True:
        data = source.read()
        if not data:
            break
        while data:
            out = inflater.decompress(data, MAX_INFLATE)
            if out:
                yield out
            if inflater.eof:
                # Concatenated gzip members are one valid stream; zero padding is not a member.
                data = inflater.unused_data
                if not data.strip(b"\0"):
                    data = b""
                else:
                    inflater = inflate_lib.decompressobj(wbits=31)
            else:
                data = inflater.unconsumed_tail
    tail = inflater.flush()
    if tail:
        yield tail
    if not inflater.eof:
        raise EOFError("compressed stream ended early")


def _unzstd(source: _VerifyingReader) -> Iterator[bytes]:
    reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    while chunk := reader.read(MAX_INFLATE):
        yield chunk


class ForwardStream:
    """A read-only, forward-only file over a sequence of chunks: enough for `tarfile`'s
    random-access mode as long as it never looks back (it does not when reading members in
    order), and cheaper than its stream mode, which copies its buffer on every header."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buf = memoryview(b"")
        self._at = 0  # read position inside _buf
        self._pos = 0  # absolute position of _buf[_at]

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buf, self._at = memoryview(chunk), 0
                return True
        return False

    def read_view(self, n: int) -> memoryview:
        """Up to n bytes, without copying (may return fewer; empty at the end)."""
        if self._at >= len(self._buf) and not self._fill():
            return memoryview(b"")
        view = self._buf[self._at : self._at + n]
        self._at += len(view)
        self._pos += len(view)
        return view

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = []
            while view := self.read_view(READ_CHUNK):
                parts.append(bytes(view))
            return b"".join(parts)
        first = self.read_view(n)
        if len(first) == n or not first:
            return bytes(first)
        parts = [bytes(first)]
        missing = n - len(first)
        while missing:
            view = self.read_view(missing)
            if not view:
                break
            parts.append(bytes(view))
            missing -= len(view)
        return b"".join(parts)

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self._pos
        elif whence != 0:
            raise OSError("forward-only stream cannot seek from the end")
        if offset < self._pos:
            raise OSError(f"forward-only stream cannot seek back from {self._pos} to {offset}")
        while self._pos < offset:
            if not self.read_view(offset - self._pos):
                break
        return self._pos

    def drain(self) -> None:
        while self.read_view(READ_CHUNK):
            pass
