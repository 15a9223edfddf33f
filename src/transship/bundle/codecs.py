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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from transship.bundle.meta import BlobEntry, Piece
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


class BlobCodec(ABC):
    encoding: ClassVar[str]

    @abstractmethod
    def encode(self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink) -> EncodedBlob:
        """Store the blob; `chunks` yields exactly `desc.size` bytes (or raises)."""

    @abstractmethod
    def decode(self, entry: BlobEntry, source: PieceSource, offset: int = 0) -> Iterator[bytes]:
        """The blob's bytes from `offset`."""


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


def register_codec(codec: type[BlobCodec]) -> type[BlobCodec]:
    """Make a codec known by its `encoding` name (usable as a class decorator)."""
    _CODECS[codec.encoding] = codec
    return codec


def get_codec(encoding: str) -> BlobCodec:
    try:
        return _CODECS[encoding]()
    except KeyError:
        known = ", ".join(sorted(_CODECS))
        raise BundleError(
            f"blob encoding {encoding!r} is not known to this transship (knows: {known}); "
            "upgrade transship to read this bundle"
        ) from None


def known_encodings() -> Sequence[str]:
    return sorted(_CODECS)


register_codec(RawCodec)
