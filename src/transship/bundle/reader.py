"""Reading a bundle: verify every data file first, then stream blobs out of them.

`BundleReader.verify()` checks that each data file the meta lists is present, has the
right size and sha256, and is a plain tar whose members are safe regular files where the
meta says they are; it reports every problem in one error before anything is read.
Blobs are read by (file, offset, length), the tar header in front of each piece checked,
and every blob's digest verified as it streams: a consumer sees the error before the end
of a wrong stream, so a destination that verifies on completion never keeps it.

A codec with bundle-level data (dedup) is prepared once per reader, before its first blob
is decoded: lazily, or at once with `prepare_codecs` (loads do that, so that a damaged
store or recipe stops the load before anything is pushed).
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from transship.bundle.codecs import BlobCodec, LoadContext, get_codec
from transship.bundle.meta import BlobEntry, BundleMeta, DataFileEntry, Piece, load_meta
from transship.bundle.tarfmt import BLOCK, check_header_before, scan_archive
from transship.errors import BundleError, DigestMismatchError, NotFoundError
from transship.oci.digest import DigestVerifier

CHUNK = 1 << 20


class FilePieceSource:
    """Reads pieces out of the data files of one folder."""

    def __init__(self, directory: Path):
        self.directory = directory

    def read_piece(self, piece: Piece, offset: int = 0) -> Iterator[bytes]:
        path = self.directory / piece.file
        if piece.offset < BLOCK:
            raise BundleError(f"{piece.file}: piece {piece.member!r} has no room for a tar header")
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed in the finally below
        except FileNotFoundError:
            raise BundleError(f"data file {piece.file} is missing") from None
        except OSError as e:
            raise BundleError(f"cannot read data file {piece.file}: {e.strerror}") from None
        try:
            f.seek(piece.offset - BLOCK)
            check_header_before(f.read(BLOCK), piece.member, piece.length, piece.file)
            f.seek(piece.offset + offset)
            left = piece.length - offset
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise BundleError(
                        f"data file {piece.file} is truncated: {piece.member!r} ends "
                        f"{left} bytes early"
                    )
                left -= len(chunk)
                yield chunk
        finally:
            f.close()


@dataclass
class DataFileProblem:
    name: str
    kind: str  # "missing" | "truncated" | "wrong size" | "corrupt" | "bad member"
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}{': ' + self.detail if self.detail else ''})"


@dataclass(eq=False)
class BundleVerificationError(BundleError):
    """Some data files are missing or damaged; `problems` lists each one."""

    bundle: str
    problems: list[DataFileProblem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        kinds: dict[str, list[DataFileProblem]] = {}
        for p in self.problems:
            kinds.setdefault(p.kind, []).append(p)
        parts = [
            f"{kind}: " + ", ".join(str(p) if p.detail else p.name for p in items)
            for kind, items in kinds.items()
        ]
        return (
            f"bundle {self.bundle} is incomplete or damaged, nothing was loaded — "
            + "; ".join(parts)
            + ". Copy these files again from the original bundle."
        )

    @property
    def missing(self) -> list[str]:
        return [p.name for p in self.problems if p.kind == "missing"]

    @property
    def damaged(self) -> list[str]:
        return [p.name for p in self.problems if p.kind != "missing"]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check_one_file(
    directory: Path, entry: DataFileEntry, pieces: list[Piece]
) -> DataFileProblem | None:
    path = directory / entry.name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return DataFileProblem(entry.name, "missing")
    if size < entry.size:
        return DataFileProblem(entry.name, "truncated", f"{size} of {entry.size} bytes")
    if size > entry.size:
        return DataFileProblem(entry.name, "wrong size", f"{size} bytes, expected {entry.size}")
    try:
        actual = file_sha256(path)
    except OSError as e:
        return DataFileProblem(entry.name, "unreadable", e.strerror or str(e))
    if actual != entry.sha256:
        return DataFileProblem(entry.name, "corrupt", "sha256 does not match")
    # Right bytes, but were they the right bytes to begin with? Check the tar structure.
    try:
        members = {m.offset: m for m in scan_archive(path)}
    except BundleError as e:
        return DataFileProblem(entry.name, "bad member", str(e).split(": ", 1)[-1])
    for piece in pieces:
        m = members.get(piece.offset)
        if m is None or m.name != piece.member or m.size != piece.length:
            return DataFileProblem(
                entry.name, "bad member", f"no member {piece.member!r} at offset {piece.offset}"
            )
    return None


def verify_data_files(
    directory: Path, entries: list[DataFileEntry], pieces: dict[str, list[Piece]], workers: int = 4
) -> list[DataFileProblem]:
    """Every problem with the listed data files; hashing runs in parallel."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda e: _check_one_file(directory, e, pieces.get(e.name, [])), entries)
        return [r for r in results if r is not None]


class ChunkStream(io.RawIOBase):
    """A readable file over a chunk iterator (errors the iterator raises surface in read)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = memoryview(chunk)
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close:
            close()
        super().close()


class BundleReader:
    """One bundle, opened from its meta file."""

    def __init__(self, meta_path: str | Path, workers: int = 4):
        self.meta_path = Path(meta_path)
        self.directory = self.meta_path.parent
        self.meta: BundleMeta = load_meta(self.meta_path)
        self.workers = workers
        self._blobs = self.meta.blob_index()
        self._parents = self.meta.parent_of_blob()
        self._source = FilePieceSource(self.directory)
        self.verified = False
        self._codecs: dict[str, BlobCodec] = {}
        self._codec_errors: dict[str, BundleError] = {}
        self._codec_lock = threading.Lock()
        self._context: LoadContext | None = None

    @property
    def name(self) -> str:
        return self.meta_path.name

    def verify(self) -> None:
        """Raise BundleVerificationError naming every missing or damaged data file."""
        pieces: dict[str, list[Piece]] = {}
        for piece in self.meta.all_pieces():
            pieces.setdefault(piece.file, []).append(piece)
        problems = verify_data_files(self.directory, self.meta.data_files, pieces, self.workers)
        if problems:
            raise BundleVerificationError(self.name, problems)
        for image in self.meta.images:
            for manifest in image.manifests():
                manifest.raw()  # raises if the meta's manifest bytes were edited
        self.verified = True

    def encodings(self) -> list[str]:
        return sorted({b.encoding for b in self.meta.blobs} | set(self.meta.codec_data))

    def prepare_codecs(self, context: LoadContext | None = None) -> None:
        """Prepare every codec the bundle uses now (raises BundleError naming what is
        wrong); `context` says where parent bundles and the load target are."""
        if context is not None:
            self._context = context
        for encoding in self.encodings():
            self._codec(encoding)

    def _codec(self, encoding: str) -> BlobCodec:
        with self._codec_lock:
            if encoding in self._codec_errors:  # preparing is costly: fail the same way
                raise self._codec_errors[encoding]
            codec = self._codecs.get(encoding)
            if codec is None:
                codec = get_codec(encoding)
                context = self._context or LoadContext(self.directory, self.name)
                try:
                    codec.prepare(self.meta, self._source, context)
                except BundleError as e:
                    codec.close()
                    self._codec_errors[encoding] = e
                    raise
                except BaseException:
                    codec.close()
                    raise
                self._codecs[encoding] = codec
            return codec

    def close(self) -> None:
        with self._codec_lock:
            codecs, self._codecs = list(self._codecs.values()), {}
        for codec in codecs:
            codec.close()

    def blob_entry(self, digest: str) -> BlobEntry | None:
        return self._blobs.get(digest)

    def read_blob(self, digest: str, offset: int = 0) -> Iterator[bytes]:
        """The blob's bytes from `offset`; raises DigestMismatchError at the end if they
        do not hash to `digest` (a data file changed after verification). A blob that is
        not here raises NotFoundError at once."""
        entry = self._blobs.get(digest)
        if entry is None:
            parent = self._parents.get(digest)
            if parent is not None:
                raise NotFoundError(
                    f"blob {digest} is not in bundle {self.name}: it was left to parent "
                    f"bundle {parent.id} ({parent.file}); load that bundle first"
                )
            raise NotFoundError(f"blob {digest} is not in bundle {self.name}")
        return self._stream(entry, offset)

    def _stream(self, entry: BlobEntry, offset: int) -> Iterator[bytes]:
        verifier = DigestVerifier(entry.digest, entry.size)
        chunks = self._codec(entry.encoding).decode(entry, self._source)
        for chunk in chunks:
            verifier.update(chunk)
            if offset >= len(chunk):
                offset -= len(chunk)
                continue
            yield chunk[offset:] if offset else chunk
            offset = 0
        try:
            verifier.verify(f"blob in bundle {self.name}")
        except DigestMismatchError as e:
            raise DigestMismatchError(f"{e}; the bundle is damaged") from None

    def open_blob(self, digest: str, offset: int = 0) -> BinaryIO:
        return io.BufferedReader(ChunkStream(self.read_blob(digest, offset)), CHUNK)  # type: ignore[return-value]
