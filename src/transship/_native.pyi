"""Type stubs for the Rust extension built from native/ (see transship.gzip_rebuild).

Encoder specs are tuples: ("go", level, early_slides) or ("zlib", level, mem_level,
strategy). Byte arguments accept any contiguous bytes-like object; the calls release
the GIL, so the object must not change while a call runs.
"""

from collections.abc import Buffer, Sequence

ZLIB_VERSION: str

EncoderSpec = tuple[str, int, list[int]] | tuple[str, int, int, int]

class Deflater:
    """A raw-deflate encoder described by an encoder spec."""

    def __init__(self, spec: Sequence[object]) -> None: ...
    def compress(self, data: Buffer) -> bytes: ...
    def finish(self) -> bytes: ...

class Inflater:
    """Streaming raw-deflate decompressor (zlib-rs); ValueError on corrupt data."""

    def __init__(self) -> None: ...
    @property
    def eof(self) -> bool: ...
    def decompress(self, data: Buffer, max_length: int) -> tuple[bytes, int]:
        """(plain bytes, up to max_length; bytes of `data` used)."""

class TokenInflater:
    """Streaming raw-deflate decompressor that can also record the stream's transcript
    (block headers and matches)."""

    def __init__(self, transcript: bool = False) -> None: ...
    @property
    def eof(self) -> bool: ...
    @property
    def canonical(self) -> bool:
        """False once a match was coded in a way no Go or zlib encoder writes."""
    def decompress(self, data: Buffer, max_length: int) -> tuple[bytes, int]:
        """(plain bytes, up to max_length; bytes of `data` used)."""
    def take_transcript(self) -> bytes:
        """The transcript records decoded since the last call, packed (needs
        `transcript`)."""

class TranscriptCheck:
    """Checks, as a stream is decoded, that its transcript writes it back bit for bit."""

    def __init__(self) -> None: ...
    @property
    def ok(self) -> bool: ...
    def feed(self, plain: Buffer, compressed: Buffer, packed: Buffer) -> None: ...
    def finish(self) -> bool:
        """True when the transcript wrote exactly the stream."""

class TranscriptWriter:
    """Writes a deflate stream from its transcript and its plain data."""

    def __init__(self) -> None: ...
    @property
    def horizon(self) -> int:
        """Every record before this plain position is known."""
    def add(self, packed: Buffer) -> None:
        """Packed records (any cut); ValueError when damaged."""
    def end_records(self) -> None: ...
    def write(self, plain: Buffer) -> bytes:
        """ValueError when the transcript does not fit the data."""
    def finish(self) -> bytes: ...

class Verifier:
    """Candidate encoders run over a stream's plain data, compared with its original
    compressed bytes."""

    def __init__(self, specs: Sequence[Sequence[object]]) -> None: ...
    @property
    def alive(self) -> int: ...
    def retain_best(self, n: int) -> None: ...
    def feed(self, plain: Buffer, compressed: Buffer) -> None: ...
    def finish(self) -> list[EncoderSpec]: ...

class PreflateSplitter:
    """preflate-rs over a raw deflate stream, in chunks; ValueError when it cannot."""

    def __init__(self) -> None: ...
    def feed(self, compressed: Buffer) -> None: ...
    def finish(self) -> None: ...
    def take_chunks(self) -> list[tuple[int, bytes]]: ...

class PreflateRebuilder:
    """Rebuilds PreflateSplitter chunks, in order."""

    def __init__(self) -> None: ...
    def rebuild_chunk(self, plain: Buffer, corrections: Buffer) -> bytes: ...
