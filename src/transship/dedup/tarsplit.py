"""Split a tar byte stream into skeleton bytes and file contents, and join them back.

The splitter is a streaming parser fed in arbitrary chunks. Every input byte goes to
exactly one of two places, in order:

* **skeleton**: header blocks (including PAX 'x'/'g' and GNU 'L'/'K' records and old GNU
  sparse extension blocks), padding, end-of-archive blocks and anything that does not
  parse as tar (garbage, a truncated tail);
* **content**: the data of regular files (and the stored data of GNU sparse members,
  as is), each with its sha256 and size.

Because nothing is interpreted beyond where the byte boundaries lie, joining the two back
(`rebuild_tar`) gives the input byte for byte, whatever the input was: a misparsed or
corrupt tar only costs deduplication, never correctness.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_SKELETON_FLUSH = 1 << 20  # coalesce small skeleton pieces up to this size
_META_CAPTURE_LIMIT = 1 << 20  # PAX/GNU long-name records parsed only up to this size
_ZERO_SCAN = 64 << 10  # zero blocks are looked for this far ahead at a time
OUTPUT_CHUNK = 1 << 20

# Typeflags whose data is file content.
_REGULAR_TYPES = frozenset(b"0\x007")
_GNU_SPARSE = ord("S")
# Typeflags that never carry data (as Go's archive/tar reads them).
_HEADER_ONLY_TYPES = frozenset(b"123456")
_PAX_LOCAL = frozenset(b"xX")
_GNU_LONGNAME = ord("L")
_GNU_LONGLINK = ord("K")
_PAX_GLOBAL = ord("g")


class SplitSink(Protocol):
    """Receives the pieces of a tar stream, in stream order.

    Memoryviews passed in are only valid during the call: copy what must be kept.
    """

    def skeleton(self, data: memoryview | bytes) -> None: ...

    def content_begin(self, name: str, declared_size: int) -> None: ...

    def content_data(self, data: memoryview) -> None: ...

    def content_end(self, digest: bytes, size: int) -> None:
        """`digest` is the raw 32-byte sha256; `size` may be below the declared size
        when the stream ended early (a truncated tar)."""


# Parser states.
_HEADER = 0
_CONTENT = 1
_SKIP = 2  # skeleton bytes whose length is known (padding, non-content data)
_META = 3  # skeleton bytes that are also captured (PAX records, GNU long names)
_SPARSE_EXT = 4  # old GNU sparse extension headers
_GARBAGE = 5  # no longer a tar: everything is skeleton


def _parse_number(field: bytes | memoryview) -> int | None:
    """A tar numeric field: octal text, or GNU base-256 when the top bit is set."""
    raw = bytes(field)
    if raw and raw[0] & 0x80:
        if raw[0] == 0xFF:  # negative: never a valid size
            return None
        return int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
    text = raw.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _checksum_ok(block: bytes | memoryview) -> bool:
    stored = _parse_number(block[148:156])
    if stored is None:
        return False
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    if stored == unsigned:
        return True
    # Some old tars summed signed chars.
    signed = unsigned - 256 * sum(1 for b in bytes(block) if b >= 128)
    signed += 256 * sum(1 for b in bytes(block[148:156]) if b >= 128)
    return stored == signed


def _cstring(field: bytes | memoryview) -> str:
    return bytes(field).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes) -> dict[str, str]:
    """The records of a PAX extended header; best effort (used only to find sizes and names)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[space + 1 : pos + length]
        pos += length
        if not record.endswith(b"\n") or b"=" not in record:
            break
        key, _, value = record[:-1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return out


@dataclass(frozen=True)
class SplitStats:
    tar_size: int
    skeleton_size: int
    content_count: int
    content_size: int
    tar_sha256: bytes | None


class TarSplitter:
    """Streaming tar splitter: `feed()` chunks, then `finish()`.

    Contents smaller than `min_content_size` stay in the skeleton: below a few dozen
    bytes a reference costs more than the bytes it replaces.
    """

    def __init__(
        self, sink: SplitSink, *, min_content_size: int = 1, hash_stream: bool = True
    ) -> None:
        self._sink = sink
        self._min_content = max(1, min_content_size)
        self._stream_hash = hashlib.sha256() if hash_stream else None
        self._state = _HEADER
        self._header_buf = bytearray()
        self._skel_buf = bytearray()
        self._remaining = 0  # bytes left in the current _CONTENT/_SKIP/_META region
        self._pad_after = 0  # padding to skip once the current data region ends
        self._content_hash: hashlib._Hash | None = None
        self._content_done = 0
        self._meta_kind = 0
        self._meta_buf = bytearray()
        self._pending_pax: dict[str, str] = {}
        self._pending_longname: str | None = None
        self._sparse_then: tuple[str, int] | None = None
        self._tar_size = 0
        self._skeleton_size = 0
        self._content_count = 0
        self._content_size = 0
        self._finished = False

    # -- public -----------------------------------------------------------------------

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._finished:
            raise ValueError("feed() after finish()")
        mv = memoryview(chunk).cast("B")
        n = len(mv)
        if not n:
            return
        self._tar_size += n
        if self._stream_hash is not None:
            self._stream_hash.update(mv)
        pos = 0
        while pos < n:
            state = self._state
            if state == _CONTENT:
                take = min(self._remaining, n - pos)
                piece = mv[pos : pos + take]
                self._content_hash.update(piece)  # type: ignore[union-attr]
                self._sink.content_data(piece)
                self._content_done += take
                self._remaining -= take
                pos += take
                if not self._remaining:
                    self._end_content()
                    self._begin_skip(self._pad_after)
            elif state == _HEADER:
                if self._header_buf or n - pos < BLOCK:
                    take = min(BLOCK - len(self._header_buf), n - pos)
                    self._header_buf += mv[pos : pos + take]
                    pos += take
                    if len(self._header_buf) < BLOCK:
                        break
                    block: bytes | memoryview = bytes(self._header_buf)
                    self._header_buf.clear()
                else:
                    block = mv[pos : pos + BLOCK]
                    if block == _ZERO_BLOCK:
                        # A run of zero blocks (end of archive, record padding): in bulk.
                        window = bytes(mv[pos : min(n, pos + _ZERO_SCAN)])
                        zeros = (len(window) - len(window.lstrip(b"\0"))) // BLOCK * BLOCK
                        self._emit_skeleton(mv[pos : pos + zeros])
                        pos += zeros
                        continue
                    pos += BLOCK
                self._on_header(block)
            elif state == _SKIP:
                take = min(self._remaining, n - pos)
                self._emit_skeleton(mv[pos : pos + take])
                self._remaining -= take
                pos += take
                if not self._remaining:
                    self._state = _HEADER
            elif state == _META:
                take = min(self._remaining, n - pos)
                piece = mv[pos : pos + take]
                self._emit_skeleton(piece)
                room = _META_CAPTURE_LIMIT - len(self._meta_buf)
                if room > 0:
                    self._meta_buf += piece[:room]
                self._remaining -= take
                pos += take
                if not self._remaining:
                    self._end_meta()
            elif state == _SPARSE_EXT:
                if self._header_buf or n - pos < BLOCK:
                    take = min(BLOCK - len(self._header_buf), n - pos)
                    self._header_buf += mv[pos : pos + take]
                    pos += take
                    if len(self._header_buf) < BLOCK:
                        break
                    block = bytes(self._header_buf)
                    self._header_buf.clear()
                else:
                    block = mv[pos : pos + BLOCK]
                    pos += BLOCK
                self._emit_skeleton(block)
                if not block[504]:  # no further extension block
                    name, size = self._sparse_then  # type: ignore[misc]
                    self._sparse_then = None
                    self._begin_data(name, size, is_content=True)
            else:  # _GARBAGE
                self._emit_skeleton(mv[pos:])
                pos = n

    def finish(self) -> SplitStats:
        """End of input: whatever is pending (a partial header, a truncated content)
        is closed so that the pieces still add up to the input."""
        if self._finished:
            raise ValueError("finish() called twice")
        self._finished = True
        if self._state == _CONTENT:
            self._end_content()  # truncated: the content is what was there
        if self._header_buf:
            self._emit_skeleton(bytes(self._header_buf))
            self._header_buf.clear()
        self._flush_skeleton()
        return SplitStats(
            tar_size=self._tar_size,
            skeleton_size=self._skeleton_size,
            content_count=self._content_count,
            content_size=self._content_size,
            tar_sha256=self._stream_hash.digest() if self._stream_hash is not None else None,
        )

    # -- internals ----------------------------------------------------------------------

    def _emit_skeleton(self, data: bytes | memoryview) -> None:
        self._skeleton_size += len(data)
        if len(data) >= _SKELETON_FLUSH:
            self._flush_skeleton()
            self._sink.skeleton(data)
            return
        self._skel_buf += data
        if len(self._skel_buf) >= _SKELETON_FLUSH:
            self._flush_skeleton()

    def _flush_skeleton(self) -> None:
        if self._skel_buf:
            self._sink.skeleton(bytes(self._skel_buf))
            self._skel_buf.clear()

    def _begin_skip(self, count: int) -> None:
        if count:
            self._state = _SKIP
            self._remaining = count
        else:
            self._state = _HEADER

    def _begin_data(self, name: str, size: int, *, is_content: bool) -> None:
        pad = -size % BLOCK
        if not size:
            self._state = _HEADER
        elif is_content and size >= self._min_content:
            self._flush_skeleton()
            self._sink.content_begin(name, size)
            self._content_hash = hashlib.sha256()
            self._content_done = 0
            self._remaining = size
            self._pad_after = pad
            self._state = _CONTENT
        else:
            self._begin_skip(size + pad)

    def _end_content(self) -> None:
        digest = self._content_hash.digest()  # type: ignore[union-attr]
        self._content_hash = None
        self._content_count += 1
        self._content_size += self._content_done
        self._sink.content_end(digest, self._content_done)

    def _end_meta(self) -> None:
        data = bytes(self._meta_buf)
        self._meta_buf.clear()
        if len(data) < _META_CAPTURE_LIMIT:
            if self._meta_kind in _PAX_LOCAL:
                self._pending_pax.update(_parse_pax(data))
            elif self._meta_kind == _GNU_LONGNAME:
                self._pending_longname = _cstring(data)
        self._begin_skip(self._pad_after)

    def _on_header(self, block: bytes | memoryview) -> None:
        self._emit_skeleton(block)
        if block == _ZERO_BLOCK:
            return  # end-of-archive marker (or padding): stay in header state
        if not _checksum_ok(block):
            self._state = _GARBAGE
            return
        size = _parse_number(block[124:136])
        if size is None:
            self._state = _GARBAGE
            return
        typeflag = block[156]
        if typeflag in _PAX_LOCAL or typeflag in (_GNU_LONGNAME, _GNU_LONGLINK, _PAX_GLOBAL):
            if not size:
                return
            self._meta_kind = typeflag
            self._meta_buf.clear()
            self._remaining = size
            self._pad_after = -size % BLOCK
            self._state = _META
            return

        pax, self._pending_pax = self._pending_pax, {}
        longname, self._pending_longname = self._pending_longname, None
        if "size" in pax:
            with contextlib.suppress(ValueError):
                size = max(0, int(pax["size"]))
        if typeflag in _HEADER_ONLY_TYPES:
            return
        is_content = typeflag in _REGULAR_TYPES or typeflag == _GNU_SPARSE
        name = ""
        if is_content:
            name = pax.get("path") or longname or self._ustar_name(block)
        if typeflag == _GNU_SPARSE and block[482]:
            self._sparse_then = (name, size)
            self._state = _SPARSE_EXT
            return
        self._begin_data(name, size, is_content=is_content)

    @staticmethod
    def _ustar_name(block: bytes | memoryview) -> str:
        name = _cstring(block[0:100])
        if bytes(block[257:265]) == b"ustar\x0000":
            prefix = _cstring(block[345:500])
            if prefix:
                return f"{prefix}/{name}"
        return name


# -- rebuilding ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentRef:
    """One content in tar order: the skeleton bytes that precede it, then the content."""

    skeleton_before: int
    size: int
    digest: bytes


ContentReader = Callable[[bytes, int], Iterable[bytes]]
"""Returns the bytes of a content (raw sha256 digest, size) as a stream of chunks."""


def rebuild_tar(
    skeleton: BinaryIO,
    refs: Iterable[ContentRef],
    read_content: ContentReader,
    *,
    chunk_size: int = OUTPUT_CHUNK,
) -> Iterator[bytes]:
    """The original tar bytes from a skeleton stream, the contents in tar order and a
    way to read each content. Raises ValueError when a piece is shorter than recorded."""
    out = bytearray()

    def skeleton_bytes(count: int) -> Iterator[bytes]:
        while count:
            piece = skeleton.read(min(count, chunk_size))
            if not piece:
                raise ValueError(f"skeleton ended {count} bytes early")
            count -= len(piece)
            yield piece

    for ref in refs:
        for piece in skeleton_bytes(ref.skeleton_before):
            out += piece
            if len(out) >= chunk_size:
                yield bytes(out)
                out.clear()
        got = 0
        for piece in read_content(ref.digest, ref.size):
            got += len(piece)
            if len(piece) >= chunk_size:
                if out:
                    yield bytes(out)
                    out.clear()
                yield bytes(piece)
                continue
            out += piece
            if len(out) >= chunk_size:
                yield bytes(out)
                out.clear()
        if got != ref.size:
            raise ValueError(
                f"content sha256:{ref.digest.hex()} has {got} bytes, expected {ref.size}"
            )
    while True:
        piece = skeleton.read(chunk_size)
        if not piece:
            break
        out += piece
        if len(out) >= chunk_size:
            yield bytes(out)
            out.clear()
    if out:
        yield bytes(out)
