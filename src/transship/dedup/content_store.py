"""The deduplicated content store: every distinct file content once, zstd-compressed.

Saving happens in two phases. While layers are split, a `ContentCollector` receives each
content (from any number of threads, one `CollectorSession` per layer) and appends the
ones it has not seen to spill files in a temporary directory, so nothing big stays in
memory. Once every layer of every image has been split, `write_store` orders the unique
contents so that similar files sit next to each other (same kind of file, same name
without version numbers, then size) and compresses them with zstd (long-distance
matching, multithreaded) into a few frames.

The store file is self-contained::

    frame 0 | frame 1 | ... | index (zstd) | footer

The index lists frames and, in store order, each content's digest and length; a
content never spans two frames, so its offset inside its frame is the sum of the lengths
before it. The footer carries the index's position and sha256.

Loading decompresses each needed frame once, sequentially, into a temporary file, checking
every content's sha256 on the way; contents are then read at random from those files by
any number of threads. A corrupt frame or index does not raise at once: the contents it
held are reported unavailable, with the reason, so that each layer needing them fails with
an error naming it and the layers that do not need them still load.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import struct
import sys
import tempfile
import threading
from array import array
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import zstandard

from transship.dedup.similarity import (
    ZIP_MAGIC,
    ContentInfo,
    pread_exact,
    similarity_order,
    zip_entry_keys,
)
from transship.errors import BundleError

# Level 3 by measurement (bench/dedup_store_bench.py, 24-image Java fleet, 881 MB of unique
# contents, 2 threads): level 1 342 MB in 3.7 s CPU, 3 329 MB in 5.6 s, 9 317 MB in 18.5 s,
# 15 312 MB in 133 s (545 MiB RSS), 19 300 MB in 452 s (748 MiB RSS).
DEFAULT_LEVEL = 3
DEFAULT_WINDOW_LOG = 27  # 128 MiB: also zstd's default decoder limit, so any zstd reads it
DEFAULT_FRAME_SIZE = 512 << 20  # decompressed bytes per frame (contents never span frames)
_IO_CHUNK = 1 << 20
_MEMORY_THRESHOLD = 1 << 20  # contents up to this size are held in memory until hashed

_STORE_MAGIC = b"TSCSTOR1"
_FOOTER = struct.Struct("<8sQQ32s8s")  # magic, index offset, index size, index sha256, magic
_INDEX_MAGIC = b"TSIX"
_INDEX_HEAD = struct.Struct("<4sBIQ")  # magic, version, frames, contents
_FRAME = struct.Struct("<QQQQ")  # compressed offset, compressed size, plain size, contents
_INDEX_VERSION = 1


def digest_str(digest: bytes) -> str:
    return f"sha256:{digest.hex()}"


# -- collecting ------------------------------------------------------------------------


class ContentCollector:
    """Collects each distinct content once, across all layers, into spill files.

    `skip` holds digests that must not be stored (contents a parent bundle carries).
    Thread-safe: each thread splitting a layer uses its own `session()`.
    """

    def __init__(
        self,
        spill_dir: str | os.PathLike[str],
        *,
        skip: Container[bytes] = frozenset(),
        memory_threshold: int = _MEMORY_THRESHOLD,
    ) -> None:
        self._dir = Path(spill_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._skip = skip
        self._threshold = memory_threshold
        self._lock = threading.Lock()
        self._index: dict[bytes, int] = {}
        self._spill_id = array("I")
        self._offset = array("Q")
        self._length = array("Q")
        self._names: list[str] = []
        self._is_zip = bytearray()
        self._zip_keys: dict[int, array] = {}  # position → zip_entry_keys, once read
        self._spill_paths: list[Path] = []
        self._open_sessions = 0
        self.stored_bytes = 0
        self.seen_bytes = 0
        self.seen_count = 0
        self.skipped_count = 0

    def session(self) -> CollectorSession:
        with self._lock:
            spill_id = len(self._spill_paths)
            path = self._dir / f"spill-{spill_id:05d}.bin"
            self._spill_paths.append(path)
            self._open_sessions += 1
        return CollectorSession(self, spill_id, path)

    def _session_closed(self) -> None:
        with self._lock:
            self._open_sessions -= 1

    def __contains__(self, digest: object) -> bool:
        return digest in self._index

    def __len__(self) -> int:
        return len(self._index)

    def digests(self) -> Iterator[bytes]:
        return iter(self._index)

    def _claim(
        self, digest: bytes, name: str, size: int, spill_id: int, offset: int, is_zip: bool
    ) -> bool:
        """Record a content as stored at (spill_id, offset) unless known; True if new."""
        with self._lock:
            self.seen_count += 1
            self.seen_bytes += size
            if digest in self._index:
                return False
            if digest in self._skip:
                self.skipped_count += 1
                return False
            self._index[digest] = len(self._names)
            self._spill_id.append(spill_id)
            self._offset.append(offset)
            self._length.append(size)
            self._names.append(name)
            self._is_zip.append(is_zip)
            self.stored_bytes += size
            return True

    def size_of(self, digest: bytes) -> int | None:
        """A collected content's size (None when it was not collected here)."""
        pos = self._index.get(digest)
        return None if pos is None else self._length[pos]

    def zip_entries(self, digests: Iterable[bytes]) -> Iterator[tuple[bytes, array]]:
        """For each collected zip archive among `digests` (once each): its entries, as
        `zip_entry_keys` gives them (crc32 << 32 | compressed size)."""
        done: set[bytes] = set()
        with self._spill_reader() as read:
            for digest in digests:
                pos = self._index.get(digest)
                if pos is None or not self._is_zip[pos] or digest in done:
                    continue
                done.add(digest)
                yield digest, self._entry_keys(pos, read)

    def _entry_keys(self, pos: int, read: Callable[[int, int, int], bytes]) -> array:
        """A zip archive's entries, read once (the payoff and the store order need them)."""
        keys = self._zip_keys.get(pos)
        if keys is None:
            keys = zip_entry_keys(
                lambda offset, length: read(pos, offset, length), self._length[pos]
            )
            self._zip_keys[pos] = keys
        return keys

    @contextlib.contextmanager
    def _spill_reader(self) -> Iterator[Callable[[int, int, int], bytes]]:
        """(content position, offset in it, length) → bytes, from the spill files."""
        fds: dict[int, int] = {}

        def read(pos: int, offset: int, length: int) -> bytes:
            spill = self._spill_id[pos]
            if spill not in fds:
                fds[spill] = os.open(self._spill_paths[spill], os.O_RDONLY)
            return pread_exact(fds[spill], length, self._offset[pos] + offset)

        try:
            yield read
        finally:
            for fd in fds.values():
                os.close(fd)

    def ordered(self) -> list[int]:
        """Positions of the collected contents in store order (see similarity.py)."""
        infos = [
            ContentInfo(
                name, self._length[i], bool(self._is_zip[i]), (self._spill_id[i], self._offset[i])
            )
            for i, name in enumerate(self._names)
        ]
        with self._spill_reader() as read:
            return similarity_order(infos, lambda pos: self._entry_keys(pos, read))

    def write_store(
        self,
        out: BinaryIO,
        *,
        level: int = DEFAULT_LEVEL,
        threads: int = 2,
        window_log: int = DEFAULT_WINDOW_LOG,
        frame_size: int = DEFAULT_FRAME_SIZE,
        order: list[int] | None = None,
        keep: Container[bytes] | None = None,
    ) -> StoreIndex:
        """Compress every collected content (or those in `keep`), in similarity order,
        into `out` (a store file: frames, index, footer). Returns the index. All sessions
        must be closed."""
        if self._open_sessions:
            raise BundleError(
                f"cannot write the content store: {self._open_sessions} layer(s) still being split"
            )
        params = zstandard.ZstdCompressionParameters.from_level(
            level,
            window_log=window_log,
            enable_ldm=True,
            threads=threads,
            write_checksum=True,
        )
        cctx = zstandard.ZstdCompressor(compression_params=params)
        order = self.ordered() if order is None else order
        digest_of = [b""] * len(self._names)
        for digest, pos in self._index.items():
            digest_of[pos] = digest
        if keep is not None:
            order = [pos for pos in order if digest_of[pos] in keep]
        counter = _CountingWriter(out)
        frames: list[FrameInfo] = []
        digests = bytearray()
        lengths = array("Q")
        fds = [os.open(p, os.O_RDONLY) for p in self._spill_paths]
        try:
            for group in _frame_groups(order, self._length, frame_size):
                start = counter.count
                plain = sum(self._length[pos] for pos in group)
                # The frame's size goes in its header: any zstd can then list and check it.
                writer = cctx.stream_writer(
                    counter, size=plain, closefd=False, write_return_read=True
                )
                for pos in group:
                    length = self._length[pos]
                    _copy_range(fds[self._spill_id[pos]], self._offset[pos], length, writer)
                    digests += digest_of[pos]
                    lengths.append(length)
                writer.flush(zstandard.FLUSH_FRAME)
                frames.append(FrameInfo(start, counter.count - start, plain, len(group)))
        finally:
            for fd in fds:
                os.close(fd)
        index = StoreIndex(frames, bytes(digests), lengths)
        index_bytes = index.to_bytes()
        index_offset = counter.count
        counter.write(index_bytes)
        counter.write(
            _FOOTER.pack(
                _STORE_MAGIC,
                index_offset,
                len(index_bytes),
                hashlib.sha256(index_bytes).digest(),
                _STORE_MAGIC,
            )
        )
        return index

    def close(self) -> None:
        """Remove the spill files."""
        for path in self._spill_paths:
            path.unlink(missing_ok=True)


class CollectorSession:
    """The content half of a tar `SplitSink` for one layer: keeps new contents in the
    collector's spill files. Not thread-safe: one per thread."""

    def __init__(self, collector: ContentCollector, spill_id: int, path: Path) -> None:
        self._collector = collector
        self._spill_id = spill_id
        self._file = open(path, "wb", buffering=_IO_CHUNK)  # noqa: SIM115 - closed in close()
        self._end = 0
        self._name = ""
        self._head = b""
        self._buffer = bytearray()
        self._streaming = False
        self.new_contents = 0
        self.new_bytes = 0

    def content_begin(self, name: str, declared_size: int) -> None:
        self._name = name
        self._head = b""
        self._buffer.clear()
        # The file position is always self._end between contents.
        self._streaming = declared_size > self._collector._threshold

    def content_data(self, data: memoryview) -> None:
        if len(self._head) < 4:
            self._head += bytes(data[: 4 - len(self._head)])
        if self._streaming:
            self._file.write(data)
            return
        self._buffer += data
        if len(self._buffer) > self._collector._threshold:  # longer than declared
            self._file.write(self._buffer)
            self._buffer.clear()
            self._streaming = True

    def content_end(self, digest: bytes, size: int) -> bool:
        """True when the content was new and is now stored."""
        new = self._collector._claim(
            digest, self._name, size, self._spill_id, self._end, self._head == ZIP_MAGIC
        )
        if new:
            if not self._streaming:
                self._file.write(self._buffer)
            self._end += size
            self.new_contents += 1
            self.new_bytes += size
        elif self._streaming:
            self._file.seek(self._end)
            self._file.truncate()
        self._buffer.clear()
        self._streaming = False
        return new

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            self._collector._session_closed()

    def __enter__(self) -> CollectorSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frame_groups(order: list[int], lengths: array, frame_size: int) -> Iterator[list[int]]:
    """Consecutive runs of contents of about `frame_size` bytes (a content never splits)."""
    group: list[int] = []
    plain = 0
    for pos in order:
        group.append(pos)
        plain += lengths[pos]
        if plain >= frame_size:
            yield group
            group, plain = [], 0
    if group:
        yield group


def _copy_range(fd: int, offset: int, length: int, writer: object) -> None:
    while length:
        piece = os.pread(fd, min(length, _IO_CHUNK), offset)
        if not piece:
            raise BundleError(f"spill file ended early at offset {offset}")
        writer.write(piece)  # type: ignore[attr-defined]
        offset += len(piece)
        length -= len(piece)


class _CountingWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._out.write(data)
        n = len(data)
        self.count += n
        return n

    def flush(self) -> None:
        self._out.flush()


# -- index ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameInfo:
    offset: int  # of the compressed frame in the store file
    size: int  # compressed
    plain_size: int
    count: int  # contents in the frame


@dataclass
class StoreIndex:
    """Frames and, in store order, each content's digest (32 bytes each) and length."""

    frames: list[FrameInfo]
    digests: bytes
    lengths: array
    _position: dict[bytes, int] = field(default_factory=dict, repr=False)
    _offsets: array = field(default_factory=lambda: array("Q"), repr=False)
    _frame_of: array = field(default_factory=lambda: array("I"), repr=False)

    def __post_init__(self) -> None:
        if len(self.digests) != 32 * len(self.lengths):
            raise BundleError("content store index: digests and lengths disagree")
        if sum(f.count for f in self.frames) != len(self.lengths):
            raise BundleError("content store index: frames do not add up to the contents")
        pos = 0
        for frame_no, frame in enumerate(self.frames):
            offset = 0
            for _ in range(frame.count):
                self._offsets.append(offset)
                self._frame_of.append(frame_no)
                offset += self.lengths[pos]
                pos += 1
            if offset != frame.plain_size:
                raise BundleError(f"content store index: frame {frame_no} size disagrees")
        d = self.digests
        self._position = {d[i : i + 32]: i // 32 for i in range(0, len(d), 32)}

    def __len__(self) -> int:
        return len(self.lengths)

    def __contains__(self, digest: object) -> bool:
        return digest in self._position

    def __iter__(self) -> Iterator[bytes]:
        d = self.digests
        return (d[i : i + 32] for i in range(0, len(d), 32))

    def locate(self, digest: bytes) -> tuple[int, int, int] | None:
        """(frame number, offset in the frame's plain data, length), or None."""
        pos = self._position.get(digest)
        if pos is None:
            return None
        return self._frame_of[pos], self._offsets[pos], self.lengths[pos]

    def frame_entries(self, frame_no: int) -> range:
        start = sum(f.count for f in self.frames[:frame_no])
        return range(start, start + self.frames[frame_no].count)

    def digest_at(self, pos: int) -> bytes:
        return self.digests[32 * pos : 32 * pos + 32]

    def to_bytes(self) -> bytes:
        lengths = array("Q", self.lengths)
        if lengths.itemsize != 8:  # pragma: no cover - every platform we run on
            raise BundleError("unsupported platform: array('Q') is not 64-bit")
        if sys.byteorder != "little":  # pragma: no cover
            lengths.byteswap()
        raw = b"".join(
            [
                _INDEX_HEAD.pack(_INDEX_MAGIC, _INDEX_VERSION, len(self.frames), len(self)),
                *(_FRAME.pack(f.offset, f.size, f.plain_size, f.count) for f in self.frames),
                lengths.tobytes(),
                self.digests,
            ]
        )
        return zstandard.ZstdCompressor(level=9).compress(raw)

    @classmethod
    def from_bytes(cls, data: bytes) -> StoreIndex:
        try:
            raw = zstandard.ZstdDecompressor().decompress(data)
        except zstandard.ZstdError as exc:
            raise BundleError(f"content store index cannot be decompressed: {exc}") from exc
        if len(raw) < _INDEX_HEAD.size:
            raise BundleError("content store index is truncated")
        magic, version, nframes, count = _INDEX_HEAD.unpack_from(raw)
        if magic != _INDEX_MAGIC or version != _INDEX_VERSION:
            raise BundleError("content store index has an unknown format")
        pos = _INDEX_HEAD.size
        expected = pos + nframes * _FRAME.size + count * 40
        if len(raw) != expected:
            raise BundleError("content store index is truncated")
        frames = []
        for _ in range(nframes):
            frames.append(FrameInfo(*_FRAME.unpack_from(raw, pos)))
            pos += _FRAME.size
        lengths = array("Q")
        lengths.frombytes(raw[pos : pos + 8 * count])
        if sys.byteorder != "little":  # pragma: no cover
            lengths.byteswap()
        pos += 8 * count
        return cls(frames, raw[pos : pos + 32 * count], lengths)


# -- reading --------------------------------------------------------------------------


class ContentStoreReader:
    """Reads a store file: the index at once, contents after `materialize()`.

    Never raises for a corrupt store: `problem` (whole store) and `unavailable`
    (digest → reason) say what cannot be served, and `read_content` raises BundleError
    with that reason for such contents.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | StoreSource,
        temp_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.source: StoreSource = (
            source if isinstance(source, StoreSource) else FileStoreSource(source)
        )
        self.name = self.source.name
        self._temp_root = temp_dir
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()
        self._frame_files: dict[int, int] = {}  # frame number → fd of its plain data
        self.unavailable: dict[bytes, str] = {}
        self.problem: str | None = None
        self.index: StoreIndex | None = None
        try:
            self.index = self._read_index()
        except (OSError, BundleError) as exc:
            self.problem = f"content store {self.name} is unreadable: {exc}"

    def _read_index(self) -> StoreIndex:
        size = self.source.size
        if isinstance(self.source, FileStoreSource) and not self.source.path.exists():
            raise BundleError("the file is missing")
        if size < _FOOTER.size:
            raise BundleError("file too short")
        footer = self.source.read_range(size - _FOOTER.size, _FOOTER.size)
        magic, offset, length, checksum, magic2 = _FOOTER.unpack(footer)
        if magic != _STORE_MAGIC or magic2 != _STORE_MAGIC:
            raise BundleError("not a content store (bad footer)")
        if offset + length + _FOOTER.size != size:
            raise BundleError("index position is wrong (truncated or corrupt file)")
        data = self.source.read_range(offset, length)
        if hashlib.sha256(data).digest() != checksum:
            raise BundleError("index checksum mismatch")
        index = StoreIndex.from_bytes(data)
        end = 0
        for n, frame in enumerate(index.frames):
            if frame.offset != end:
                raise BundleError(f"frame {n} is not where the index says")
            end += frame.size
        if end != offset:
            raise BundleError("frames do not end where the index starts")
        return index

    def __contains__(self, digest: object) -> bool:
        return self.index is not None and digest in self.index

    def digests(self) -> Iterator[bytes]:
        return iter(self.index) if self.index is not None else iter(())

    def materialize(self, wanted: Iterable[bytes] | None = None) -> set[bytes]:
        """Decompress the frames holding `wanted` contents (all when None), once each,
        into temporary files, verifying every content. Returns the wanted digests that
        can now be read."""
        if self.index is None:
            return set()
        index = self.index
        if wanted is None:
            frames = set(range(len(index.frames)))
            wanted_set = set(index)
        else:
            wanted_set = {d for d in wanted if d in index}
            frames = {index.locate(d)[0] for d in wanted_set}  # type: ignore[index]
        with self._lock:
            if self._temp is None:
                self._temp = tempfile.TemporaryDirectory(
                    prefix="transship-store-", dir=self._temp_root
                )
            for frame_no in sorted(frames - self._frame_files.keys()):
                self._materialize_frame(frame_no)
        return {d for d in wanted_set if d not in self.unavailable}

    def _materialize_frame(self, frame_no: int) -> None:
        index = self.index
        assert index is not None and self._temp is not None
        out_path = os.path.join(self._temp.name, f"frame-{frame_no:05d}.bin")
        fd = os.open(out_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._frame_files[frame_no] = fd
        entries = index.frame_entries(frame_no)
        progress = [entries.start]  # the first content not yet written out
        try:
            self._decompress_frame(frame_no, fd, progress)
        except (zstandard.ZstdError, BundleError, OSError) as exc:
            reason = f"frame {frame_no} of {self.name} is corrupt ({exc})"
            for pos in range(progress[0], entries.stop):
                self.unavailable.setdefault(index.digest_at(pos), reason)

    def _decompress_frame(self, frame_no: int, fd: int, progress: list[int]) -> None:
        """Decompress one frame into `fd`, hashing each content on the way."""
        index = self.index
        assert index is not None
        frame = index.frames[frame_no]
        compressed = _ChunkReader(self.source.iter_range(frame.offset, frame.size))
        dctx = zstandard.ZstdDecompressor()
        with (
            dctx.stream_reader(compressed, read_across_frames=False) as zstd_reader,
            _ReadAhead(zstd_reader, _IO_CHUNK) as reader,
        ):
            offset = 0
            for pos in index.frame_entries(frame_no):
                hasher = hashlib.sha256()
                left = index.lengths[pos]
                while left:
                    piece = reader.read(min(left, _IO_CHUNK))
                    if not piece:
                        raise BundleError("frame ends early")
                    hasher.update(piece)
                    os.pwrite(fd, piece, offset)
                    offset += len(piece)
                    left -= len(piece)
                digest = index.digest_at(pos)
                if hasher.digest() != digest:
                    self.unavailable[digest] = (
                        f"content {digest_str(digest)} in {self.name} is corrupt "
                        "(checksum mismatch)"
                    )
                progress[0] = pos + 1
            if reader.read(1):
                raise BundleError("frame holds more data than the index says")

    def why_unavailable(self, digest: bytes) -> str | None:
        """None when the content can be read (after materialize), else the reason."""
        if self.problem:
            return self.problem
        if self.index is None or digest not in self.index:
            return f"content {digest_str(digest)} is not in {self.name}"
        if digest in self.unavailable:
            return self.unavailable[digest]
        frame_no = self.index.locate(digest)[0]  # type: ignore[index]
        if frame_no not in self._frame_files:
            return f"frame {frame_no} of {self.name} was not decompressed"
        return None

    def read_content(self, digest: bytes, size: int | None = None) -> Iterator[bytes]:
        """The bytes of a materialized content, in chunks. Thread-safe."""
        reason = self.why_unavailable(digest)
        if reason:
            raise BundleError(reason)
        frame_no, offset, length = self.index.locate(digest)  # type: ignore[union-attr,misc]
        if size is not None and size != length:
            raise BundleError(
                f"content {digest_str(digest)} has {length} bytes in the store, "
                f"the layer expects {size}"
            )
        return _read_range(self._frame_files[frame_no], offset, length)

    def close(self) -> None:
        with self._lock:
            for fd in self._frame_files.values():
                os.close(fd)
            self._frame_files.clear()
            if self._temp is not None:
                self._temp.cleanup()
                self._temp = None

    def __enter__(self) -> ContentStoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_range(
    fd: int, offset: int, length: int, short: str = "materialized content is shorter than recorded"
) -> Iterator[bytes]:
    while length:
        piece = os.pread(fd, min(length, _IO_CHUNK), offset)
        if not piece:
            raise BundleError(short)
        offset += len(piece)
        length -= len(piece)
        yield piece


@runtime_checkable
class StoreSource(Protocol):
    """Random access to a store's bytes, wherever they are (a file, pieces of a bundle)."""

    name: str
    size: int

    def read_range(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes (small reads: footer and index)."""
        ...

    def iter_range(self, offset: int, length: int) -> Iterator[bytes]:
        """`length` bytes from `offset`, in chunks (frames)."""
        ...


class FileStoreSource:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.size = self.path.stat().st_size if self.path.exists() else 0

    def read_range(self, offset: int, length: int) -> bytes:
        return b"".join(self.iter_range(offset, length))

    def iter_range(self, offset: int, length: int) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            yield from _read_range(f.fileno(), offset, length, "store file ended early")


class _ReadAhead:
    """`read` over a stream that a thread reads a few chunks ahead: the zstd decoder of
    one frame then runs beside the hashing and writing of its contents (each releases
    the GIL), on another core."""

    _DEPTH = 4

    def __init__(self, stream: BinaryIO, chunk: int) -> None:
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(self._DEPTH)
        self._data = b""
        self._pos = 0
        self._ended = False
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, args=(stream, chunk), name="store-read-ahead", daemon=True
        )
        self._thread.start()

    def _run(self, stream: BinaryIO, chunk: int) -> None:
        try:
            while not self._stopping:
                data = stream.read(chunk)
                self._chunks.put(data)
                if not data:
                    return
        except BaseException as exc:  # raised again by read()
            self._chunks.put(exc)

    def read(self, n: int) -> bytes:
        """Up to `n` bytes (fewer at a chunk's end); b"" at the end of the stream."""
        if self._pos == len(self._data) and not self._ended:
            item = self._chunks.get()
            if isinstance(item, BaseException):
                self._ended = True
                raise item
            self._data, self._pos, self._ended = item, 0, not item
        start, self._pos = self._pos, min(len(self._data), self._pos + n)
        if start == 0 and self._pos == len(self._data):
            return self._data  # the whole chunk: no copy
        return self._data[start : self._pos]

    def __enter__(self) -> _ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        while self._thread.is_alive():  # unblock a reader waiting for room
            with contextlib.suppress(queue.Empty):
                self._chunks.get(timeout=0.05)
        self._thread.join()


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of chunks (what zstd's stream reader reads from)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buf), len(self._pending))
        buf[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
