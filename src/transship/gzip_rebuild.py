"""Bit-exact gzip reconstruction: store a gzip layer decompressed, give back the same bytes.

A registry layer is a gzip stream; its digest covers the compressed bytes. To ship the
*uncompressed* tar (deduplicated, recompressed with something better) and still hand
the site the exact original blob, we must re-create the deflate stream bit for bit.
This module finds out how, while the blob is read once, and writes it down as a small
`Recipe`; later, `rebuild` turns the plain bytes plus the recipe back into the blob.

How a stream is rebuilt, tried in this order:

- ``go``: Go's compress/gzip (Docker, BuildKit, containerd, go-containerregistry push
  layers with it), levels 1-9, HuffmanOnly and NoCompression. A Rust port of Go's
  compress/flate re-encodes the plain data; the recipe holds the level and, rarely, the
  32 KiB "frames" where Go's window slid early because of how the writer cut its
  writes. Costs a few bytes.
- ``zlib``: zlib levels 1-9 (Python's gzip, Java's GZIPOutputStream as Jib uses, most
  tools that link zlib). Costs a few bytes. The encoder is compiled into
  ``transship._native``, so every site rebuilds with the same code: a Rust port of
  zlib's deflate, byte-identical to it, for memLevel 8 and 9 (what every tool uses),
  the bundled C zlib otherwise.
- ``preflate``: anything else (GNU gzip, pigz, ...) via preflate-rs, which records the
  differences between the stream and its own prediction ("corrections", typically
  0.01-0.2 % of the compressed size for those). The Go/zlib candidates fail within the
  first blocks, and preflate then takes over in the same pass from the first 8 MiB of
  compressed bytes kept for that; only if they fail later is the blob read a second
  time, which needs a seekable `gz_stream`. preflate-rs cannot parse Go-made streams
  (it rejects the incomplete Huffman codes Go writes).

Anything else raises `RebuildImpossible` and the caller stores the blob as it is.

- ``transcript`` (with `analyze(transcript=True)`): the stream's own block headers, bit
  for bit, and its matches (native/src/transcript.rs), zstd-compressed in the recipe.
  Given the plain data they write the stream back by bit packing alone, whatever
  encoder made it: no match search, no Huffman trees, several times faster than any
  re-encode. They cost 1.5-2.5 % of the tar for jar layers, whose streams are mostly
  literals, and 12-25 % for binaries and text, where a re-encode pays better.

Usage (save side)::

    with open(blob_path, "rb") as gz:
        try:
            recipe = analyze(gz, splitter.write)   # plain tar bytes go to the splitter
        except RebuildImpossible as exc:           # includes GzipFormatError
            ...store the blob raw; exc says why...
    recipe_bytes = recipe.to_bytes()               # small (bytes to kilobytes)

Usage (load side)::

    recipe = Recipe.from_bytes(recipe_bytes)       # RecipeError if corrupt
    for chunk in rebuild(tar_chunks, recipe):      # tar_chunks: any chunking of the tar
        out.write(chunk)                           # the exact original gzip bytes

`analyze` checks, before it returns, that the chosen way reproduces every compressed
byte (each candidate encoder runs alongside the decompression and is compared byte by
byte with the original; preflate checks each chunk). `rebuild` does not hash: the caller
verifies the result against the blob digest, as for any blob.

Memory stays bounded whatever the layer size: about 1 MiB per candidate encoder plus
a few MiB of buffers while analysing (peak RSS of a whole process analysing a 1.5 GB
layer: 60 MiB), a few MiB while rebuilding with go/zlib; preflate works in chunks of
at most 32 MiB of plain data. A transcript is held compressed, at most 64 MiB of it per
member (past that it is given up). Native calls release the GIL; `analyze` runs the encoders
in a worker thread so that they overlap with decompression and with `plain_sink`, and
any number of `analyze`/`rebuild` calls may run at once in different threads.

Speed, per core, of plain data (docs/benchmarks.md): Go level 6 re-encoding 75-90 MB/s
on jar layers and about 43 MB/s on binaries, level 1 at 150-450 MB/s; zlib level 6 about
55 MB/s on jar layers and 30 MB/s on binaries; writing a stream from its transcript
about 600 MB/s, checking it as the stream is decoded about the same; preflate at about
10 MB/s (analysis) and 30-40 MB/s (rebuild).
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import zstandard

from transship import _native
from transship.errors import BundleError, TransshipError

try:  # ISA-L's CRC-32 is several times faster than zlib's
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency, but optional here
    from zlib import crc32 as _crc32

__all__ = [
    "GoEncoder",
    "GzipFormatError",
    "Member",
    "PreflateEncoder",
    "RebuildImpossible",
    "Recipe",
    "RecipeError",
    "TranscriptEncoder",
    "TranscriptTooCostly",
    "UNCHECKED",
    "UncheckedEncoder",
    "ZlibEncoder",
    "analyze",
    "rebuild",
]


class RebuildImpossible(TransshipError):
    """No known way reproduces this gzip stream exactly; store the blob as it is."""


class GzipFormatError(RebuildImpossible):
    """The input is not a complete, valid gzip stream (truncated, corrupt, not gzip)."""


class TranscriptTooCostly(RebuildImpossible):
    """The stream's transcript would take more than allowed to store, and the caller
    asked to stop there rather than decompress the rest (`stop_when_transcript_costly`)."""


class RecipeError(BundleError):
    """Recipe bytes are corrupt or of an unknown version, or the plain data given to
    `rebuild` does not fit the recipe."""


# -- recipe model ---------------------------------------------------------------------


@dataclass(frozen=True)
class GoEncoder:
    """Go compress/flate at `level` (-2 HuffmanOnly, 0-9); `early_slides` lists the
    window frames where the original writer slid its window early."""

    level: int
    early_slides: tuple[int, ...] = ()

    def spec(self) -> tuple:
        return ("go", self.level, list(self.early_slides))

    def describe(self) -> str:
        extra = f", {len(self.early_slides)} early slides" if self.early_slides else ""
        return f"go level {self.level}{extra}"


@dataclass(frozen=True)
class ZlibEncoder:
    """zlib raw deflate with these parameters (window bits 15)."""

    level: int
    mem_level: int = 8
    strategy: int = 0

    def spec(self) -> tuple:
        return ("zlib", self.level, self.mem_level, self.strategy)

    def describe(self) -> str:
        return f"zlib level {self.level}"


@dataclass(frozen=True)
class TranscriptEncoder:
    """The stream's transcript (native/src/transcript.rs), zstd-compressed."""

    stored: bytes

    def describe(self) -> str:
        return "transcript"


@dataclass(frozen=True)
class PreflateEncoder:
    """preflate-rs corrections, one per chunk of `plain_length` plain bytes."""

    chunks: tuple[tuple[int, bytes], ...]

    @property
    def corrections_size(self) -> int:
        return sum(len(c) for _, c in self.chunks)

    def describe(self) -> str:
        return f"preflate, {self.corrections_size} bytes of corrections"


@dataclass(frozen=True)
class UncheckedEncoder:
    """A member decompressed by `analyze(check=False)`: how it is rebuilt is not known
    yet. Such a recipe cannot be stored. `costly_transcript`: its transcript would have
    taken more than `max_transcript_share` of it (text or binaries, rather than jars)."""

    costly_transcript: bool = False

    def describe(self) -> str:
        return "not analysed"


UNCHECKED = UncheckedEncoder()

Encoder = GoEncoder | ZlibEncoder | PreflateEncoder | TranscriptEncoder | UncheckedEncoder

# Rebuilding speed, plain bytes per second and core, on jar-heavy and binary layers
# (docs/benchmarks.md): level 1 (gzip header XFL 4) runs 3-4 times faster than the
# default and best levels, and a transcript far faster still.
_FAST_LEVEL_SPEED = 150e6
_DEFAULT_LEVEL_SPEED = 40e6
_TRANSCRIPT_SPEED = 500e6


@dataclass(frozen=True)
class Member:
    """One gzip member: its exact header and trailer bytes, how to re-create its deflate
    stream, and how many plain bytes it holds."""

    header: bytes
    encoder: Encoder
    plain_size: int
    trailer: bytes


@dataclass(frozen=True)
class Recipe:
    """How to rebuild one gzip blob from its plain bytes. `tail` holds any bytes after
    the last member (zero padding some tools add)."""

    members: tuple[Member, ...]
    tail: bytes = b""
    compressed_size: int = field(default=0, compare=False)

    @property
    def plain_size(self) -> int:
        return sum(m.plain_size for m in self.members)

    @property
    def checked(self) -> bool:
        return not any(isinstance(m.encoder, UncheckedEncoder) for m in self.members)

    @property
    def costly_transcript(self) -> bool:
        """A member was left unchecked because its transcript costs too much to store."""
        return any(
            isinstance(m.encoder, UncheckedEncoder) and m.encoder.costly_transcript
            for m in self.members
        )

    @property
    def transcript_size(self) -> int:
        """Bytes of stored transcripts."""
        return sum(
            len(m.encoder.stored) for m in self.members if isinstance(m.encoder, TranscriptEncoder)
        )

    def rebuild_seconds(self) -> float:
        """About how long rebuilding takes on one core: from the members' encoders, or
        for an unchecked member from its header's level hint."""
        return sum(m.plain_size / _rebuild_speed(m) for m in self.members)

    def describe(self) -> str:
        """Short human-readable summary, e.g. "go level 6"."""
        kinds = sorted({m.encoder.describe() for m in self.members})
        more = f" ({len(self.members)} members)" if len(self.members) > 1 else ""
        return "; ".join(kinds) + more

    def to_bytes(self) -> bytes:
        return _encode_recipe(self)

    def __bytes__(self) -> bytes:
        return _encode_recipe(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Recipe:
        """Decode recipe bytes; raises RecipeError when they are corrupt."""
        return _decode_recipe(data)


def _rebuild_speed(member: Member) -> float:
    if isinstance(member.encoder, TranscriptEncoder):
        return _TRANSCRIPT_SPEED
    return _FAST_LEVEL_SPEED if member.header[8] == 4 else _DEFAULT_LEVEL_SPEED


# -- analysis ---------------------------------------------------------------------------

_READ_SIZE = 1 << 19
# Largest plain piece decompressed at once (bounds memory on very compressible data).
# A check queues up to three pieces for its encoders: with 4 MiB pieces instead, the
# fleet save (bench/bundle_bench.py) peaked some 25 MiB higher at the same speed.
_PLAIN_PIECE = 2 << 20
# On incompressible or very repetitive data several levels give the same bytes for a
# long time and would all be paid for: after so many plain bytes, follow at most so
# many candidates (the likeliest; a wrong guess only means storing the blob raw).
_PRUNE_SCHEDULE = ((4 << 20, 2), (64 << 20, 1))
# Compressed bytes kept from a member's start so that preflate can take over without
# reading the blob again when every candidate encoder fails early.
_HEAD_KEEP = 8 << 20
# zstd level of stored transcripts: on the fleet's layers level 9 makes them at most 4 %
# smaller than this, at a fifth of the speed.
_TRANSCRIPT_ZSTD_LEVEL = 3
# Longest tail (bytes after the last member) kept in a recipe.
_MAX_TAIL = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def analyze(
    gz_stream: BinaryIO,
    plain_sink: Callable[[bytes], object],
    *,
    threaded: bool = True,
    allow_preflate: bool = True,
    check: bool = True,
    transcript: bool = False,
    max_transcript_share: float | None = None,
    stop_when_transcript_costly: bool = False,
) -> Recipe:
    """Read the gzip blob `gz_stream` once, pass its decompressed bytes to `plain_sink`
    in order as they come, and return the checked `Recipe` that rebuilds the blob.

    Raises GzipFormatError when the blob is not a complete valid gzip stream and
    RebuildImpossible when no known way reproduces it. `plain_sink` has then received
    some or all of the plain data; errors it raises propagate unchanged. Reading starts
    at the stream's current position; a seekable stream lets the rare late preflate
    fallback read the blob a second time.

    With `check=False` only the decompression runs (a fraction of the cost): the
    members' encoders are `UNCHECKED`, the recipe cannot be stored, but it tells the
    sizes and headers (`rebuild_seconds`) to decide whether a full analysis pays off.

    With `transcript` (and `check=False`) each member keeps its transcript where that
    writes the stream back, checked as the stream is decoded, and costs at most
    `max_transcript_share` of the member's plain size (if given; a few KiB always
    pass); other members come back
    `UNCHECKED`, or, with `stop_when_transcript_costly`, a transcript that costs too
    much raises TranscriptTooCostly at once.
    """
    if transcript and check:
        raise ValueError("a transcript is its own check: pass check=False with it")
    reader = _Reader(gz_stream)
    members: list[Member] = []
    checks = _Checks(
        threaded,
        allow_preflate,
        check,
        transcript,
        max_transcript_share,
        stop_when_transcript_costly,
    )
    while True:
        header = _read_header(reader, first=not members)
        members.append(_analyze_member(reader, header, plain_sink, checks))
        rest = reader.peek(2)
        if not rest:
            tail = b""
            break
        if rest == _GZIP_MAGIC:
            continue
        tail = reader.read_tail(_MAX_TAIL)
        if len(tail) > _MAX_TAIL:
            raise RebuildImpossible(f"more than {_MAX_TAIL} bytes of non-gzip data at the end")
        break
    return Recipe(members=tuple(members), tail=tail, compressed_size=reader.offset)


@dataclass(frozen=True)
class _Checks:
    """How `analyze` checks each member (see its parameters)."""

    threaded: bool
    allow_preflate: bool
    full: bool
    transcript: bool
    max_transcript_share: float | None
    stop_when_costly: bool = False


# Plain bytes after which a transcript is weighed against `max_transcript_share` before
# its end, and its size below which it is never too costly.
_TRANSCRIPT_WEIGHED_AFTER = 4 << 20
_TRANSCRIPT_ALWAYS_KEPT = 4 << 10
# A member's transcript stays in memory until its recipe is written: at most this much
# (a 3 GB jar layer's at 2 %).
_MAX_TRANSCRIPT = 64 << 20


def _analyze_member(
    reader: _Reader, header: bytes, plain_sink: Callable[[bytes], object], checks: _Checks
) -> Member:
    deflate_start = reader.offset
    check, threaded, allow_preflate = checks.full, checks.threaded, checks.allow_preflate
    candidates = _candidates_for(header) if check else []
    verify = _Verification(candidates, threaded)
    # The compressed bytes so far, kept while small: when every candidate encoder has
    # failed early, preflate starts on them and follows the stream (no second read).
    head: list[bytes] | None = [] if allow_preflate and check else None
    head_size = 0
    preflate: _PreflateSplit | None = None
    # zlib-rs is the fastest inflate on literal-heavy layers; ours also tells the
    # transcript.
    inflater = _native.TokenInflater(transcript=True) if checks.transcript else _native.Inflater()
    transcript = _Transcript(checks) if checks.transcript else None
    crc = 0
    size = 0
    data = b""
    try:
        while not inflater.eof:
            data = data or reader.read(_READ_SIZE)
            if not data:
                raise GzipFormatError("truncated gzip stream: the deflate data ends early")
            try:
                plain, taken = inflater.decompress(data, _PLAIN_PIECE)
            except ValueError as exc:
                raise GzipFormatError(f"corrupt deflate data: {exc}") from exc
            if not (plain or taken or inflater.eof):
                raise GzipFormatError("corrupt deflate data: the decoder makes no progress")
            used, data = data[:taken], data[taken:]
            if inflater.eof:
                reader.unread(data)
            if plain:
                crc = _crc32(plain, crc)
                size += len(plain)
            if transcript is not None:
                transcript.feed(plain, used, inflater.take_transcript(), size)
            verify.feed(plain, used)
            if preflate is not None:
                preflate.feed(used)
            elif head is not None:
                head.append(used)
                head_size += len(used)
                if head_size > _HEAD_KEEP:
                    head = None
                elif verify.failed:
                    preflate = _PreflateSplit(head, threaded)
                    head = None
            if plain:
                plain_sink(plain)
        deflate_end = reader.offset
        trailer = reader.read_exact(8)
        if len(trailer) < 8:
            raise GzipFormatError("truncated gzip stream: the 8-byte trailer is missing")
        if int.from_bytes(trailer[:4], "little") != crc:
            raise GzipFormatError("corrupt gzip stream: CRC-32 of the data does not match")
        if int.from_bytes(trailer[4:], "little") != size & 0xFFFFFFFF:
            raise GzipFormatError("corrupt gzip stream: data length does not match")
        if transcript is not None:
            kept = transcript.finish(size)
            if kept is not None:
                return Member(header, kept, size, trailer)
        matches = verify.finish() if candidates else []
        if matches:
            return Member(header, matches[0], size, trailer)
        if not check:
            costly = transcript is not None and transcript.costly
            return Member(header, UncheckedEncoder(costly), size, trailer)
        if not allow_preflate:
            raise RebuildImpossible("no known encoder reproduces this gzip stream")
        if preflate is None and head is not None:
            preflate = _PreflateSplit(head, threaded=False)
        if preflate is not None:
            return Member(header, preflate.finish(), size, trailer)
    finally:
        verify.close(cancel=True)  # no-ops once finished; on errors, skip queued work
        if preflate is not None:
            preflate.close(cancel=True)
    # The candidates failed late in a long stream: read it again for preflate.
    return Member(header, _preflate_pass(reader, deflate_start, deflate_end), size, trailer)


def _candidates_for(header: bytes) -> list[GoEncoder | ZlibEncoder]:
    """Encoders worth trying, most likely first, from the header's XFL hint
    (2: best compression, 4: fastest; Go and zlib-based writers both set it)."""
    xfl = header[8]
    if xfl == 4:
        return [GoEncoder(1), ZlibEncoder(1)]
    if xfl == 2:
        return [GoEncoder(9), ZlibEncoder(9)]
    go_first = header[9] == 255  # Go and Python write OS "unknown"; Java writes 0
    common: list[GoEncoder | ZlibEncoder] = (
        [GoEncoder(6), ZlibEncoder(6)] if go_first else [ZlibEncoder(6), GoEncoder(6)]
    )
    return [
        *common,
        *(GoEncoder(level) for level in (2, 3, 4, 5, 7, 8)),
        GoEncoder(-2),
        GoEncoder(0),
        *(ZlibEncoder(level) for level in (2, 3, 4, 5, 7, 8)),
        # Writers that ignore the XFL convention.
        GoEncoder(1),
        GoEncoder(9),
        ZlibEncoder(1),
        ZlibEncoder(9),
    ]


def _encoder_from_spec(spec: tuple) -> GoEncoder | ZlibEncoder:
    if spec[0] == "go":
        return GoEncoder(spec[1], tuple(spec[2]))
    return ZlibEncoder(spec[1], spec[2], spec[3])


class _Background:
    """Runs `work(item)` on each submitted item, in order: in a thread (bounded queue)
    when `threaded`, else at once. The first error is kept and raised by `join`; later
    items are then skipped."""

    _STOP = object()

    def __init__(self, work: Callable[..., None], threaded: bool, name: str) -> None:
        self._work = work
        self._error: BaseException | None = None
        self._cancelled = False
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            # Two items (a plain piece each) are enough slack to keep both sides busy.
            self._queue = queue.Queue(maxsize=2)
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def submit(self, *item: object) -> None:
        if self._queue is not None:
            self._queue.put(item)
        elif self._error is None and not self._cancelled:
            try:
                self._work(*item)
            except BaseException as exc:  # raised by join(), like the threaded case
                self._error = exc

    def _run(self) -> None:
        assert self._queue is not None
        while (item := self._queue.get()) is not self._STOP:
            if self._error is None and not self._cancelled:
                try:
                    self._work(*item)
                except BaseException as exc:  # raised by join()
                    self._error = exc

    def join(self) -> None:
        """Waits for the submitted work; raises its first error."""
        self.close()
        if self._error is not None:
            raise self._error

    def close(self, cancel: bool = False) -> None:
        self._cancelled = self._cancelled or cancel
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(self._STOP)
            self._thread.join()
            self._thread = None
        # `work` is usually a method of this object's owner, which holds this object: a
        # cycle that only the garbage collector frees, and with it the owner's native
        # encoders (some 5 MiB per analysis; the fleet save's RSS grew by 130 MiB).
        self._work = _no_work


def _no_work(*_: object) -> None:
    pass


class _Verification:
    """The candidate encoders (a native Verifier) following the stream; stops feeding
    them once none matches any more."""

    def __init__(self, candidates: list[GoEncoder | ZlibEncoder], threaded: bool) -> None:
        self._verifier = _native.Verifier([c.spec() for c in candidates])
        self._fed = 0
        self._schedule = list(_PRUNE_SCHEDULE)
        self.failed = not candidates  # no candidate matches (set from the worker thread)
        self._runner = _Background(self._feed, threaded and bool(candidates), "gzip-verify")

    def feed(self, plain: bytes, compressed: bytes) -> None:
        """The next plain and compressed bytes."""
        if not self.failed:
            self._runner.submit(plain, compressed)

    def _feed(self, plain: bytes, compressed: bytes) -> None:
        if self.failed:
            return
        self._verifier.feed(plain, compressed)
        self._fed += len(plain)
        while self._schedule and self._fed >= self._schedule[0][0]:
            self._verifier.retain_best(self._schedule.pop(0)[1])
        if self._verifier.alive == 0:
            self.failed = True

    def finish(self) -> list[GoEncoder | ZlibEncoder]:
        """The candidates that reproduce the stream exactly, most likely first."""
        self._runner.join()
        if self.failed:
            return []
        return [_encoder_from_spec(spec) for spec in self._verifier.finish()]

    def close(self, cancel: bool = False) -> None:
        self._runner.close(cancel)


class _Transcript:
    """A member's transcript, checked as the stream is decoded and kept zstd-compressed
    while it costs at most `max_transcript_share` of the plain bytes."""

    def __init__(self, checks: _Checks) -> None:
        self._checks = checks
        self._check: Any = _native.TranscriptCheck()
        self._compressor: Any = zstandard.ZstdCompressor(level=_TRANSCRIPT_ZSTD_LEVEL).compressobj()
        self._parts: list[bytes] = []
        self._size = 0  # compressed bytes so far (zstd holds back up to a block)
        self.costly = False  # given up as too big to store

    def feed(self, plain: bytes, compressed: bytes, packed: bytes, plain_so_far: int) -> None:
        if self._check is None:
            return
        self._check.feed(plain, compressed, packed)
        if not self._check.ok:
            self._give_up()
            return
        part = self._compressor.compress(packed)
        if part:
            self._parts.append(part)
            self._size += len(part)
        if self._size > _MAX_TRANSCRIPT or (
            plain_so_far >= _TRANSCRIPT_WEIGHED_AFTER and self._too_costly(plain_so_far)
        ):
            self._costly()

    def finish(self, plain_size: int) -> TranscriptEncoder | None:
        """The checked transcript, or None when it was given up or does not fit."""
        if self._check is None or not self._check.finish():
            return None
        self._parts.append(self._compressor.flush())
        self._size += len(self._parts[-1])
        if self._too_costly(plain_size):
            self._costly()
            return None
        return TranscriptEncoder(b"".join(self._parts))

    def _too_costly(self, plain_size: int) -> bool:
        share = self._checks.max_transcript_share
        return (
            share is not None
            and self._size > _TRANSCRIPT_ALWAYS_KEPT
            and self._size > share * plain_size
        )

    def _costly(self) -> None:
        share = self._checks.max_transcript_share
        if self._checks.stop_when_costly:
            limit = f"{share:.0%} of it" if share is not None else f"{_MAX_TRANSCRIPT >> 20} MiB"
            raise TranscriptTooCostly(f"its transcript would take more than {limit} to store")
        self._give_up()
        self.costly = True

    def _give_up(self) -> None:
        self._check = self._compressor = None
        self._parts = []


class _PreflateSplit:
    """preflate-rs following the stream from its start (`head`: the bytes so far)."""

    def __init__(self, head: list[bytes], threaded: bool) -> None:
        self._splitter = _native.PreflateSplitter()
        self._chunks: list[tuple[int, bytes]] = []
        self._runner = _Background(self._feed, threaded, "gzip-preflate")
        for piece in head:
            self.feed(piece)

    def feed(self, compressed: bytes) -> None:
        self._runner.submit(compressed)

    def _feed(self, compressed: bytes) -> None:
        self._splitter.feed(compressed)
        self._chunks += self._splitter.take_chunks()

    def finish(self) -> PreflateEncoder:
        try:
            self._runner.join()
            self._splitter.finish()
        except ValueError as exc:
            raise RebuildImpossible(
                f"no known encoder reproduces this gzip stream ({exc})"
            ) from exc
        self._chunks += self._splitter.take_chunks()
        return PreflateEncoder(tuple((int(n), bytes(c)) for n, c in self._chunks))

    def close(self, cancel: bool = False) -> None:
        self._runner.close(cancel)


def _preflate_pass(reader: _Reader, start: int, end: int) -> PreflateEncoder:
    """Second read of one member's deflate bytes through preflate-rs."""
    if not reader.seekable:
        raise RebuildImpossible(
            "no Go or zlib encoder reproduces this gzip stream, and the stream is not "
            "seekable for the preflate fallback"
        )
    splitter = _native.PreflateSplitter()
    chunks: list[tuple[int, bytes]] = []
    resume = reader.offset
    try:
        reader.seek(start)
        remaining = end - start
        while remaining > 0:
            data = reader.read_raw(min(_READ_SIZE, remaining))
            if not data:
                raise GzipFormatError("the gzip stream changed while it was being read")
            remaining -= len(data)
            splitter.feed(data)
            chunks.extend(splitter.take_chunks())
        splitter.finish()
        chunks.extend(splitter.take_chunks())
    except ValueError as exc:
        raise RebuildImpossible(f"no known encoder reproduces this gzip stream ({exc})") from exc
    finally:
        reader.seek(resume)
    return PreflateEncoder(tuple((int(n), bytes(c)) for n, c in chunks))


# -- rebuilding -------------------------------------------------------------------------


def rebuild(plain_chunks: Iterable[bytes], recipe: Recipe | bytes) -> Iterator[bytes]:
    """Yield the exact original gzip bytes from the plain bytes (any chunking) and the
    recipe. Raises RecipeError when the recipe is corrupt or the plain data is shorter
    or longer than the recipe says. The caller checks the result against the digest."""
    if not isinstance(recipe, Recipe):
        recipe = Recipe.from_bytes(recipe)
    plain = _PlainReader(plain_chunks)
    for member in recipe.members:
        yield member.header
        yield from _rebuild_deflate(plain, member)
        yield member.trailer
    if plain.has_more():
        raise RecipeError("the plain data is longer than the gzip recipe says")
    if recipe.tail:
        yield recipe.tail


def _rebuild_deflate(plain: _PlainReader, member: Member) -> Iterator[bytes]:
    encoder = member.encoder
    if isinstance(encoder, PreflateEncoder):
        rebuilder = _native.PreflateRebuilder()
        for length, corrections in encoder.chunks:
            data = plain.read_exact(length)
            try:
                yield rebuilder.rebuild_chunk(data, corrections)
            except ValueError as exc:
                raise RecipeError(f"preflate cannot rebuild this chunk: {exc}") from exc
        return
    if isinstance(encoder, TranscriptEncoder):
        yield from _write_transcript(plain, member.plain_size, encoder.stored)
        return
    try:
        deflater = _native.Deflater(encoder.spec())
    except ValueError as exc:
        raise RecipeError(f"corrupt gzip recipe: {exc}") from exc
    for piece in plain.pieces(member.plain_size):
        out = deflater.compress(piece)
        if out:
            yield out
    yield deflater.finish()


def _write_transcript(plain: _PlainReader, size: int, stored: bytes) -> Iterator[bytes]:
    writer = _native.TranscriptWriter()
    records = _TranscriptFeed(writer, stored)
    fed = 0
    try:
        for piece in plain.pieces(size):
            fed += len(piece)
            records.cover(fed)
            out = writer.write(piece)
            if out:
                yield out
        records.cover(None)
        yield writer.finish()
    except ValueError as exc:
        raise RecipeError(f"corrupt gzip recipe: transcript: {exc}") from exc


class _TranscriptFeed:
    """Unpacks a member's stored transcript into its writer, just ahead of the plain
    data: the whole unpacked transcript could take a tenth of the layer's size."""

    _READ = 1 << 14

    def __init__(self, writer: Any, stored: bytes) -> None:
        self._writer = writer
        self._stored = memoryview(stored)
        self._unpacker = zstandard.ZstdDecompressor().decompressobj()

    def cover(self, position: int | None) -> None:
        """Adds records until every one before `position` (None: every one) is in."""
        while position is None or self._writer.horizon < position:
            if not self._stored:
                if not self._unpacker.eof:
                    raise RecipeError("corrupt gzip recipe: the transcript is truncated")
                self._writer.end_records()
                return
            piece, self._stored = self._stored[: self._READ], self._stored[self._READ :]
            try:
                packed = self._unpacker.decompress(piece)
            except zstandard.ZstdError as exc:
                raise RecipeError(f"corrupt gzip recipe: transcript: {exc}") from exc
            self._writer.add(packed)


class _PlainReader:
    """Cuts an iterable of byte chunks into the pieces each member needs."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = memoryview(b"")

    def _next(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buf = memoryview(chunk)
                return True
        return False

    def pieces(self, size: int) -> Iterator[bytes | memoryview]:
        """Exactly `size` bytes, as they come."""
        while size > 0:
            if not self._buf and not self._next():
                raise RecipeError(f"the plain data is {size} bytes shorter than the recipe says")
            piece = self._buf[:size]
            self._buf = self._buf[len(piece) :]
            size -= len(piece)
            yield piece

    def read_exact(self, size: int) -> bytes:
        return b"".join(bytes(p) for p in self.pieces(size))

    def has_more(self) -> bool:
        return bool(self._buf) or self._next()


# -- gzip framing -----------------------------------------------------------------------


class _Reader:
    """Reads the blob with push-back, and knows its position (for the preflate pass)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pending = b""
        self.offset = 0  # bytes consumed from the start of the blob
        try:
            self.seekable = bool(stream.seekable())
            self._origin = stream.tell() if self.seekable else 0
        except (AttributeError, OSError, io.UnsupportedOperation):
            self.seekable = False
            self._origin = 0

    def read(self, n: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:n], self._pending[n:]
        else:
            data = self._stream.read(n)
        self.offset += len(data)
        return data

    def read_exact(self, n: int) -> bytes:
        parts = []
        while n > 0:
            data = self.read(n)
            if not data:
                break
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def peek(self, n: int) -> bytes:
        data = self.read_exact(n)
        self.unread(data)
        return data

    def unread(self, data: bytes) -> None:
        if data:
            self._pending = data + self._pending
            self.offset -= len(data)

    def read_tail(self, limit: int) -> bytes:
        return self.read_exact(limit + 1)

    def seek(self, offset: int) -> None:
        self._stream.seek(self._origin + offset)
        self._pending = b""
        self.offset = offset

    def read_raw(self, n: int) -> bytes:
        data = self._stream.read(n)
        self.offset += len(data)
        return data


_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 1, 2, 4, 8, 16


def _read_header(reader: _Reader, first: bool) -> bytes:
    """The exact bytes of one gzip member header (RFC 1952)."""
    fixed = reader.read_exact(10)
    if len(fixed) < 10:
        what = "empty input" if first and not fixed else "truncated gzip header"
        raise GzipFormatError(f"not a gzip stream: {what}")
    if fixed[:2] != _GZIP_MAGIC:
        raise GzipFormatError("not a gzip stream: wrong magic bytes")
    if fixed[2] != 8:
        raise GzipFormatError(f"unsupported gzip compression method {fixed[2]}")
    flags = fixed[3]
    if flags & 0xE0:
        raise GzipFormatError("corrupt gzip header: reserved flag bits are set")
    parts = [fixed]
    if flags & _FEXTRA:
        xlen = reader.read_exact(2)
        extra = reader.read_exact(int.from_bytes(xlen, "little")) if len(xlen) == 2 else b""
        if len(xlen) < 2 or len(extra) < int.from_bytes(xlen, "little"):
            raise GzipFormatError("truncated gzip header (extra field)")
        parts += [xlen, extra]
    for flag in (_FNAME, _FCOMMENT):
        if flags & flag:
            parts.append(_read_zero_terminated(reader))
    if flags & _FHCRC:
        hcrc = reader.read_exact(2)
        if len(hcrc) < 2:
            raise GzipFormatError("truncated gzip header (header CRC)")
        parts.append(hcrc)
    return b"".join(parts)


def _read_zero_terminated(reader: _Reader, limit: int = 1 << 16) -> bytes:
    out = bytearray()
    while len(out) <= limit:
        c = reader.read(1)
        if not c:
            raise GzipFormatError("truncated gzip header (file name or comment)")
        out += c
        if c == b"\x00":
            return bytes(out)
    raise GzipFormatError("corrupt gzip header: file name or comment too long")


# -- recipe serialisation ---------------------------------------------------------------
#
# "TSGZ" | version | members | tail | 8-byte BLAKE2b of everything before it.
# Integers are unsigned LEB128 varints (signed ones zigzag-encoded), byte strings are
# length-prefixed. Early-slide frame numbers are stored as deltas.
# Version 2 (read, not written) ended Go and zlib members with a flag for stored match
# hints, which this version no longer replays: such members are refused.

_MAGIC = b"TSGZ"
_VERSION = 3
_HINTED_VERSION = 2
_CHECK_SIZE = 8
_KIND_GO, _KIND_ZLIB, _KIND_PREFLATE, _KIND_TRANSCRIPT = 1, 2, 3, 4
# preflate chunks hold at most 32 MiB of plain data (see native/src/preflate.rs).
_MAX_PREFLATE_CHUNK = 64 << 20


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_CHECK_SIZE).digest()


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def uint(self, v: int) -> None:
        if v < 0:
            raise ValueError("negative varint")
        while True:
            byte = v & 0x7F
            v >>= 7
            if v:
                self.buf.append(byte | 0x80)
            else:
                self.buf.append(byte)
                return

    def sint(self, v: int) -> None:
        self.uint(v * 2 if v >= 0 else -v * 2 - 1)

    def blob(self, b: bytes) -> None:
        self.uint(len(b))
        self.buf += b


class _Parser:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def uint(self) -> int:
        v = shift = 0
        while True:
            if self.pos >= len(self.data) or shift > 63:
                raise RecipeError("corrupt gzip recipe: bad integer")
            byte = self.data[self.pos]
            self.pos += 1
            v |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return v

    def sint(self) -> int:
        v = self.uint()
        return v // 2 if v % 2 == 0 else -(v + 1) // 2

    def count(self) -> int:
        """A number of items, each of which takes at least one more byte."""
        n = self.uint()
        if n > len(self.data) - self.pos:
            raise RecipeError("corrupt gzip recipe: impossible item count")
        return n

    def blob(self) -> bytes:
        n = self.uint()
        if self.pos + n > len(self.data):
            raise RecipeError("corrupt gzip recipe: truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def _encode_recipe(recipe: Recipe) -> bytes:
    w = _Writer()
    w.buf += _MAGIC
    w.uint(_VERSION)
    w.uint(len(recipe.members))
    for m in recipe.members:
        w.blob(m.header)
        w.uint(m.plain_size)
        w.blob(m.trailer)
        enc = m.encoder
        if isinstance(enc, UncheckedEncoder):
            raise ValueError("a recipe from analyze(check=False) cannot be stored")
        if isinstance(enc, GoEncoder):
            w.uint(_KIND_GO)
            w.sint(enc.level)
            w.uint(len(enc.early_slides))
            previous = 0
            for frame in enc.early_slides:
                w.uint(frame - previous)
                previous = frame
        elif isinstance(enc, ZlibEncoder):
            w.uint(_KIND_ZLIB)
            w.uint(enc.level)
            w.uint(enc.mem_level)
            w.uint(enc.strategy)
        elif isinstance(enc, TranscriptEncoder):
            w.uint(_KIND_TRANSCRIPT)
            w.blob(enc.stored)
        else:
            w.uint(_KIND_PREFLATE)
            w.uint(len(enc.chunks))
            for length, corrections in enc.chunks:
                w.uint(length)
                w.blob(corrections)
    w.blob(recipe.tail)
    w.uint(recipe.compressed_size)
    body = bytes(w.buf)
    return body + _checksum(body)


def _decode_recipe(data: bytes) -> Recipe:
    data = bytes(data)
    if len(data) < len(_MAGIC) + _CHECK_SIZE or not data.startswith(_MAGIC):
        raise RecipeError("not a gzip recipe (wrong magic bytes)")
    body, check = data[:-_CHECK_SIZE], data[-_CHECK_SIZE:]
    if _checksum(body) != check:
        raise RecipeError("corrupt gzip recipe: checksum mismatch")
    p = _Parser(body)
    p.pos = len(_MAGIC)
    version = p.uint()
    if version not in (_VERSION, _HINTED_VERSION):
        raise RecipeError(f"gzip recipe version {version} is not supported (expected {_VERSION})")
    members = []
    for _ in range(p.count()):
        header = p.blob()
        plain_size = p.uint()
        trailer = p.blob()
        kind = p.uint()
        encoder: Encoder
        if kind == _KIND_GO:
            level = p.sint()
            frames: list[int] = []
            for _ in range(p.count()):
                frames.append((frames[-1] if frames else 0) + p.uint())
            encoder = GoEncoder(level, tuple(frames))
        elif kind == _KIND_ZLIB:
            level, mem_level, strategy = p.uint(), p.uint(), p.uint()
            encoder = ZlibEncoder(level, mem_level, strategy)
        elif kind == _KIND_TRANSCRIPT and version == _VERSION:
            encoder = TranscriptEncoder(p.blob())
        elif kind == _KIND_PREFLATE:
            encoder = PreflateEncoder(tuple((p.uint(), p.blob()) for _ in range(p.count())))
            if any(length > _MAX_PREFLATE_CHUNK for length, _ in encoder.chunks):
                raise RecipeError("corrupt gzip recipe: preflate chunk too large")
        else:
            raise RecipeError(f"corrupt gzip recipe: unknown encoder kind {kind}")
        if version == _HINTED_VERSION and kind in (_KIND_GO, _KIND_ZLIB) and p.uint() != 0:
            raise RecipeError(
                "gzip recipe version 2 with stored match hints is no longer supported: "
                "save the bundle again"
            )
        if not header.startswith(_GZIP_MAGIC) or len(header) < 10 or len(trailer) != 8:
            raise RecipeError("corrupt gzip recipe: bad member header or trailer")
        members.append(Member(header, encoder, plain_size, trailer))
    tail = p.blob()
    compressed_size = p.uint()
    if p.pos != len(body):
        raise RecipeError("corrupt gzip recipe: unexpected bytes at the end")
    return Recipe(tuple(members), tail, compressed_size)
