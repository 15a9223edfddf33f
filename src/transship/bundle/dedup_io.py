"""Byte plumbing for the dedup codec: a one-shot blob stream made re-readable, a content
store read out of bundle pieces, pieces read as one file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from transship.bundle.codecs import PieceSource
from transship.bundle.datafile import io_error
from transship.bundle.meta import Piece
from transship.bundle.reader import ChunkStream

_CHUNK = 1 << 20


class ReplayableStream(io.RawIOBase):
    """A seekable reader over a stream of chunks that can be read only once (a blob
    arriving from the source). Every byte pulled is also appended to a spool file, so the
    reader may seek back (gzip analysis does, rarely) and `replay()` gives the whole
    blob again (to store it as it is when it cannot be deduplicated)."""

    def __init__(self, chunks: Iterable[bytes], spool_path: Path):
        self._chunks = iter(chunks)
        self._path = spool_path
        try:
            self._fd = os.open(spool_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise io_error(spool_path, e, "creating") from None
        self._pulled = 0  # bytes taken from `chunks` (all of them are in the spool)
        self._pos = 0  # where the next read starts
        self._chunk = b""  # the last chunk pulled
        self._current = memoryview(b"")  # the end of it, not yet read
        self._ended = False
        self._kept = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("only seeks from the start or the current position")
        if not 0 <= offset <= self._pulled:
            raise io.UnsupportedOperation("cannot seek past the bytes received so far")
        self._pos = offset
        keep = self._pulled - offset
        if keep <= len(self._current):  # still inside the last chunk
            self._current = self._current[len(self._current) - keep :]
        else:
            self._current = memoryview(b"")
        return offset

    def _pull(self) -> bool:
        for chunk in self._chunks:
            if not chunk:
                continue
            self._write_spool(chunk)
            self._pulled += len(chunk)
            self._chunk = chunk
            self._current = memoryview(chunk)
            return True
        self._ended = True
        return False

    def _write_spool(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as e:
            raise io_error(self._path, e) from None

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = len(buffer)
        if want == 0:
            return 0
        behind = self._pulled - self._pos - len(self._current)
        if behind > 0:  # after a seek back: serve from the spool
            data = os.pread(self._fd, min(want, behind), self._pos)
            buffer[: len(data)] = data
            self._pos += len(data)
            return len(data)
        if not self._current and (self._ended or not self._pull()):
            return 0
        n = min(want, len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        # No copies through a buffer: each MiB-sized copy costs time and heap.
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_CHUNK), b""))
        if size == 0:
            return b""
        behind = self._pulled - self._pos - len(self._current)
        if behind > 0:
            data = os.pread(self._fd, min(size, behind), self._pos)
            self._pos += len(data)
            return data
        if not self._current and (self._ended or not self._pull()):
            return b""
        current = self._current
        whole = len(current) == len(self._chunk) and type(self._chunk) is bytes
        # The whole chunk as it came, else a copy of the part asked for.
        data = self._chunk if whole and size >= len(current) else bytes(current[:size])
        self._current = current[len(data) :]
        self._pos += len(data)
        return data

    def fill(self) -> None:
        """Receive the rest of the stream into the spool now (reads then come from it)."""
        while self._pull():
            pass
        self._current = memoryview(b"")

    def replay(self) -> Iterator[bytes]:
        """Every byte of the blob from its start: the spool, then the rest of the stream."""
        offset = 0
        while offset < self._pulled:
            data = os.pread(self._fd, min(_CHUNK, self._pulled - offset), offset)
            if not data:
                raise io_error(self._path, OSError("spool file is shorter than written"), "reading")
            offset += len(data)
            yield data
        self._current = memoryview(b"")
        yield from self._chunks

    def keep(self) -> Path:
        """Receive the rest of the stream and keep the spool file after `close` (the
        caller then owns it); returns its path."""
        self.fill()
        self._kept = True
        return self._path

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
            if not self._kept:
                self._path.unlink(missing_ok=True)
        super().close()


class PieceStoreSource:
    """A content store held in bundle pieces, as the store reader wants it
    (`transship.dedup.content_store.StoreSource`)."""

    def __init__(self, pieces: Sequence[Piece], source: PieceSource, name: str):
        self.pieces = list(pieces)
        self.source = source
        self.name = name
        self.size = sum(p.length for p in self.pieces)

    def read_range(self, offset: int, length: int) -> bytes:
        return b"".join(self.iter_range(offset, length))

    def iter_range(self, offset: int, length: int) -> Iterator[bytes]:
        for piece in self.pieces:
            if length <= 0:
                return
            if offset >= piece.length:
                offset -= piece.length
                continue
            chunks = self.source.read_piece(piece, offset)
            try:
                for chunk in chunks:
                    if len(chunk) >= length:
                        yield chunk[:length]
                        length = 0
                        break
                    length -= len(chunk)
                    yield chunk
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            offset = 0


def open_pieces(pieces: Sequence[Piece], source: PieceSource) -> BinaryIO:
    """The pieces, in order, as one readable file."""

    def chunks() -> Iterator[bytes]:
        for piece in pieces:
            yield from source.read_piece(piece)

    return io.BufferedReader(ChunkStream(chunks()), _CHUNK)  # type: ignore[return-value]


def pieces_of(pieces: Sequence[Piece], member: str) -> list[Piece]:
    """The pieces that hold member `member` (one, or its `.partNNN` parts in order)."""
    return [p for p in pieces if p.member == member or p.member.startswith(member + ".part")]


_libc: object = None


def _c_library() -> object:
    """glibc, or False where there is none (other platforms: the helpers do nothing)."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = False
        try:
            lib = ctypes.CDLL(None)  # the running process: its C library's symbols
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _libc = lib
        except (OSError, AttributeError):
            pass
    return _libc


_ARENAS = 4  # heaps shared by the threads, instead of up to 8 per core
_MMAP_THRESHOLD = 4 << 20
_TRIM_THRESHOLD = 16 << 20
_malloc_tuned = False


def tune_malloc() -> None:
    """Have glibc map each allocation of 4 MiB or more on its own (given back when freed),
    and keep it so. By default glibc raises that threshold each time such a block is
    freed (zstd's work areas, 4 MiB decompressed pieces), after which every big buffer
    stays in the heap of the thread that freed it. Measured on the 24-image benchmark
    save, with `release_free_memory`: peak RSS 401 -> 264 MiB at the same speed (a
    threshold of 256 KiB saved a little more memory but cost 30 % more time). Also at
    most 4 heaps for all threads: glibc's default (8 per core) let the threads that
    start and end with each gzip check leave freed memory behind (306 -> 221 MiB).
    And a heap keeps up to 16 MiB free at its top instead of 128 KiB: else the MiB-sized
    buffers of the blob streams went back to the system as soon as freed and came back
    as fresh pages. With these, `release_free_memory` is needed only where much was
    freed at once, not after each layer: 900 000 page faults in that save, 120 000
    now, 1.6 s less CPU in the kernel, peak RSS 169 -> 185 MiB."""
    global _malloc_tuned
    lib = _c_library()
    if lib and not _malloc_tuned:
        _malloc_tuned = True
        lib.mallopt(-3, _MMAP_THRESHOLD)  # type: ignore[attr-defined]  # M_MMAP_THRESHOLD
        lib.mallopt(-1, _TRIM_THRESHOLD)  # type: ignore[attr-defined]  # M_TRIM_THRESHOLD
        lib.mallopt(-8, _ARENAS)  # type: ignore[attr-defined]  # M_ARENA_MAX


def release_free_memory() -> None:
    """Give the memory glibc holds free in its per-thread heaps back to the system, where
    much was freed at once (the gzip checks, the payoff's estimate), and before the
    content store is compressed. Each call costs the page faults of reusing that memory
    later: not after each layer (see `tune_malloc`)."""
    lib = _c_library()
    if lib:
        lib.malloc_trim(0)  # type: ignore[attr-defined]
