"""Blob codecs: how a blob's bytes are stored in a bundle's data files and read back.

A codec turns a blob stream into *pieces* (tar members in data files, written through a
`PieceSink`) plus codec-specific `params`, and turns those back into the blob stream
(reading pieces through a `PieceSource`). The meta file records the codec's name as the
blob's `encoding`. `raw` stores the blob as it is, one member `blobs/sha256/<hex>`.

A new codec (e.g. file-level dedup) subclasses `BlobCodec`, sets `encoding`, and calls
`register_codec`. It may store pieces shared by many blobs: `PieceSink.find_piece` tells
whether a member was already written in this bundle, so it is stored once.

The writer verifies the blob's digest on the stream it hands to `encode`, and the reader
verifies the stream `decode` returns: codecs need not check digests themselves.

A codec with per-bundle state (dedup: one content store for the whole bundle) overrides
the optional bundle-level hooks, which do nothing by default:

- save: `begin_bundle(work_dir, parents)` before the first blob; `settle_blobs(sink)`
  once every blob is in (stores the blobs `encode` deferred); `finish_bundle(sink)`
  then (it writes its own members, e.g. a content store, and returns the `CodecData`
  the meta keeps under `codec_data[encoding]`); `end_bundle()` on abort or after
  commit (drop temporary files).
- load: `prepare(meta, source, context)` once before the first `decode` (the reader
  calls it lazily, `BundleSource.prepare_load` at once so that a bad bundle fails before
  anything is pushed); `close()` at the end.

`encode` may store a blob as another codec would (dedup keeps configs and layers it
cannot split as they are): it then names that codec in `EncodedBlob.encoding`.
A codec whose blobs cannot be re-verified without its bundle-level data sets
`resumable = False`: an interrupted save then starts over instead of resuming.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from transship.bundle.meta import BlobEntry, BundleMeta, CodecData, Piece
from transship.errors import BundleError
from transship.oci.descriptor import Descriptor
from transship.oci.digest import algorithm_of, hex_of


class PieceSink(Protocol):
    def write_piece(self, member: str, size: int, chunks: Iterable[bytes]) -> list[Piece]:
        """Store exactly `size` bytes as tar member `member` (split over several members
        `member.partNNN` when a volume is too small). Returns where they lie."""
        ...

    def find_piece(self, member: str) -> list[Piece] | None:
        """Where a member written earlier in this bundle lies, or None."""
        ...


class PieceSource(Protocol):
    def read_piece(self, piece: Piece, offset: int = 0) -> Iterator[bytes]:
        """The bytes of one stored piece from `offset`, header checked."""
        ...


@dataclass
class EncodedBlob:
    pieces: list[Piece]
    params: dict[str, Any] = field(default_factory=dict)
    encoding: str | None = None  # when stored as another codec would (None: this codec)


@dataclass(frozen=True)
class ParentBundle:
    """A `--since` parent bundle: its meta file and what it says."""

    path: Path
    meta: BundleMeta


TargetBlobOpener = Callable[[str, Sequence[str]], Iterator[bytes]]
"""(blob digest, repositories named in the bundle) -> the blob's bytes as the load target
holds them; raises (NotFoundError...) when it does not."""


@dataclass(frozen=True)
class LoadContext:
    """What a codec may use at load beyond the bundle itself."""

    directory: Path  # the bundle's folder: parent bundles are looked for here
    bundle_name: str
    open_target_blob: TargetBlobOpener | None = None  # None: the target cannot be read
    temp_dir: Path | None = None
    blobs: frozenset[str] | None = None  # the blobs this load reads (None: all of them)


class BlobCodec(ABC):
    encoding: ClassVar[str]
    resumable: ClassVar[bool] = True

    @abstractmethod
    def encode(self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink) -> EncodedBlob:
        """Store the blob; `chunks` yields exactly `desc.size` bytes (or raises)."""

    @abstractmethod
    def decode(self, entry: BlobEntry, source: PieceSource, offset: int = 0) -> Iterator[bytes]:
        """The blob's bytes from `offset`."""

    # -- optional bundle-level hooks (see the module docstring) ----------------------------

    def begin_bundle(self, work_dir: Path, parents: Sequence[ParentBundle]) -> None:
        """Save: called once before the first blob; `work_dir` is free for temporary files."""

    # What settle/finish do, when that takes a while: a message key of transship.i18n.
    finishing_note: ClassVar[str] = ""
    # Told, now and then, how far settle/finish have got: progress(message key, **fields).
    progress: Callable[..., None] | None = None

    def settle_blobs(self, sink: PieceSink) -> dict[str, EncodedBlob]:
        """Save: every blob is in; store the blobs whose `encode` left their pieces to
        the end (returned with no pieces: dedup decides then which layers to rebuild).
        Returns them by digest; called once, before `finish_bundle`."""
        return {}

    def finish_bundle(self, sink: PieceSink) -> CodecData | None:
        """Save: every blob is in; store bundle-level members, say what the meta keeps."""
        return None

    def end_bundle(self) -> None:
        """Save: the bundle was committed or given up; release temporary files."""

    def prepare(self, meta: BundleMeta, source: PieceSource, context: LoadContext) -> None:
        """Load: called once before the first `decode` of this bundle."""

    def close(self) -> None:
        """Load: the bundle is no longer read."""


def blob_member_name(digest: str) -> str:
    """OCI layout path of a blob: `blobs/sha256/<hex>`."""
    return f"blobs/{algorithm_of(digest)}/{hex_of(digest)}"


class RawCodec(BlobCodec):
    """The blob exactly as the registry serves it, under its OCI layout path."""

    encoding = "raw"

    def encode(self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink) -> EncodedBlob:
        return EncodedBlob(sink.write_piece(blob_member_name(desc.digest), desc.size, chunks))

    def decode(self, entry: BlobEntry, source: PieceSource, offset: int = 0) -> Iterator[bytes]:
        total = sum(p.length for p in entry.pieces)
        if total != entry.size:
            raise BundleError(
                f"blob {entry.digest}: its pieces hold {total} bytes, the blob has {entry.size}"
            )
        for piece in entry.pieces:
            if offset >= piece.length:
                offset -= piece.length
                continue
            yield from source.read_piece(piece, offset)
            offset = 0


_CODECS: dict[str, type[BlobCodec]] = {}
# Codecs whose module is imported only when a bundle uses them (they pull in native code).
_LAZY_CODECS = {"dedup": "transship.bundle.dedup_codec"}


def register_codec(codec: type[BlobCodec]) -> type[BlobCodec]:
    """Make a codec known by its `encoding` name (usable as a class decorator)."""
    _CODECS[codec.encoding] = codec
    return codec


def get_codec(encoding: str) -> BlobCodec:
    if encoding not in _CODECS and encoding in _LAZY_CODECS:
        import importlib

        importlib.import_module(_LAZY_CODECS[encoding])  # registers it
    try:
        return _CODECS[encoding]()
    except KeyError:
        known = ", ".join(known_encodings())
        raise BundleError(
            f"blob encoding {encoding!r} is not known to this transship (knows: {known}); "
            "upgrade transship to read this bundle"
        ) from None


def known_encodings() -> Sequence[str]:
    return sorted({*_CODECS, *_LAZY_CODECS})


register_codec(RawCodec)
