"""A layer's recipe: everything except its file contents, checksummed.

Per layer: the tar skeleton (zstd-compressed), the contents in tar order (for each: the
skeleton bytes before it, its size, its sha256), the size of the whole tar and its
sha256 (left out, null, for a gzip layer: the layer's digest, checked at load, covers its
tar), and an opaque slot for the data that rebuilds the layer's exact compression (gzip).

Serialized form::

    magic | u32 header length | header (JSON) | sha256(header)
          | gzip section | refs section | skeleton section

The header names the layer and gives each section's length and sha256, so a flipped
byte anywhere is found before anything is rebuilt, and reported with the layer's digest.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

import zstandard

from transship.dedup.tarsplit import ContentRef
from transship.errors import BundleError

_MAGIC = b"TSLAYER1"
_LEN = struct.Struct("<I")
_SPOOL_LIMIT = 8 << 20  # skeletons bigger than this (compressed) go to a temporary file
_COPY_CHUNK = 1 << 20
_MAX_HEADER = 1 << 20


def _le(values: array) -> bytes:
    out = array(values.typecode, values)
    if sys.byteorder != "little":  # pragma: no cover
        out.byteswap()
    return out.tobytes()


def _from_le(typecode: str, data: bytes) -> array:
    out = array(typecode)
    out.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover
        out.byteswap()
    return out


def new_spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=_SPOOL_LIMIT)  # noqa: SIM115


@dataclass
class LayerRecipe:
    """The non-content part of one layer. `skeleton` holds the compressed skeleton."""

    layer_digest: str
    tar_size: int
    tar_sha256: bytes | None  # None: the layer's own digest covers the tar
    skeleton_size: int
    skeleton: IO[bytes]
    skeleton_before: array  # 'Q': skeleton bytes before each content
    sizes: array  # 'Q': each content's size
    digests: bytes  # 32 bytes per content, tar order
    gzip_recipe: bytes = b""

    def __len__(self) -> int:
        return len(self.sizes)

    def refs(self) -> Iterator[ContentRef]:
        d = self.digests
        for i, (before, size) in enumerate(zip(self.skeleton_before, self.sizes, strict=True)):
            yield ContentRef(before, size, d[32 * i : 32 * i + 32])

    def content_digests(self) -> Iterator[bytes]:
        d = self.digests
        return (d[i : i + 32] for i in range(0, len(d), 32))

    def content_sizes(self) -> dict[bytes, int]:
        return dict(zip(self.content_digests(), self.sizes, strict=True))

    @property
    def skeleton_compressed_size(self) -> int:
        pos = self.skeleton.tell()
        end = self.skeleton.seek(0, 2)
        self.skeleton.seek(pos)
        return end

    def open_skeleton(self) -> BinaryIO:
        """A reader of the decompressed skeleton."""
        self.skeleton.seek(0)
        return zstandard.ZstdDecompressor().stream_reader(self.skeleton, closefd=False)  # type: ignore[return-value]

    # -- serialization ------------------------------------------------------------------

    def _refs_section(self) -> bytes:
        raw = _le(self.skeleton_before) + _le(self.sizes) + self.digests
        return zstandard.ZstdCompressor(level=9).compress(raw)

    def write(self, out: BinaryIO) -> int:
        """Serialize to `out`; returns the number of bytes written."""
        refs = self._refs_section()
        skeleton_sha = hashlib.sha256()
        skeleton_len = 0
        self.skeleton.seek(0)
        while piece := self.skeleton.read(_COPY_CHUNK):
            skeleton_sha.update(piece)
            skeleton_len += len(piece)
        header = json.dumps(
            {
                "layer": self.layer_digest,
                "tar_size": self.tar_size,
                "tar_sha256": None if self.tar_sha256 is None else self.tar_sha256.hex(),
                "skeleton_size": self.skeleton_size,
                "contents": len(self),
                "sections": {
                    "gzip": [len(self.gzip_recipe), hashlib.sha256(self.gzip_recipe).hexdigest()],
                    "refs": [len(refs), hashlib.sha256(refs).hexdigest()],
                    "skeleton": [skeleton_len, skeleton_sha.hexdigest()],
                },
            },
            sort_keys=True,
        ).encode()
        out.write(_MAGIC + _LEN.pack(len(header)) + header + hashlib.sha256(header).digest())
        out.write(self.gzip_recipe)
        out.write(refs)
        self.skeleton.seek(0)
        while piece := self.skeleton.read(_COPY_CHUNK):
            out.write(piece)
        return (
            len(_MAGIC)
            + _LEN.size
            + len(header)
            + 32
            + len(self.gzip_recipe)
            + len(refs)
            + skeleton_len
        )

    def to_bytes(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.write(buf)
        return buf.getvalue()

    @classmethod
    def read(cls, inp: BinaryIO, layer_digest: str) -> LayerRecipe:
        """Read and verify a recipe; every problem is a BundleError naming `layer_digest`."""

        def corrupt(what: str) -> BundleError:
            return BundleError(f"layer {layer_digest}: recipe is corrupt ({what})")

        def read_exact(n: int, what: str) -> bytes:
            data = inp.read(n)
            if len(data) != n:
                raise corrupt(f"{what} truncated")
            return data

        if read_exact(len(_MAGIC), "magic") != _MAGIC:
            raise corrupt("not a layer recipe")
        (header_len,) = _LEN.unpack(read_exact(_LEN.size, "header length"))
        if header_len > _MAX_HEADER:
            raise corrupt("header length out of range")
        header_bytes = read_exact(header_len, "header")
        if hashlib.sha256(header_bytes).digest() != read_exact(32, "header checksum"):
            raise corrupt("header checksum mismatch")
        try:
            header = json.loads(header_bytes)
            if header["layer"] != layer_digest:
                raise corrupt(f"it belongs to layer {header['layer']}")
            sections = header["sections"]
            gzip_len, gzip_sha = sections["gzip"]
            refs_len, refs_sha = sections["refs"]
            skel_len, skel_sha = sections["skeleton"]
            count = int(header["contents"])
            tar_size = int(header["tar_size"])
            tar_sha = header["tar_sha256"]
            tar_sha256 = None if tar_sha is None else bytes.fromhex(tar_sha)
            skeleton_size = int(header["skeleton_size"])
        except BundleError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise corrupt(f"bad header: {exc}") from exc

        gzip_recipe = read_exact(gzip_len, "gzip section")
        if hashlib.sha256(gzip_recipe).hexdigest() != gzip_sha:
            raise corrupt("gzip section checksum mismatch")
        refs = read_exact(refs_len, "refs section")
        if hashlib.sha256(refs).hexdigest() != refs_sha:
            raise corrupt("content list checksum mismatch")
        try:
            raw = zstandard.ZstdDecompressor().decompress(refs)
        except zstandard.ZstdError as exc:
            raise corrupt(f"content list: {exc}") from exc
        if len(raw) != 48 * count:
            raise corrupt("content list has the wrong length")
        before = _from_le("Q", raw[: 8 * count])
        sizes = _from_le("Q", raw[8 * count : 16 * count])
        digests = raw[16 * count :]

        skeleton = new_spool()
        sha = hashlib.sha256()
        left = skel_len
        while left:
            piece = inp.read(min(left, _COPY_CHUNK))
            if not piece:
                raise corrupt("skeleton truncated")
            sha.update(piece)
            skeleton.write(piece)
            left -= len(piece)
        if sha.hexdigest() != skel_sha:
            raise corrupt("skeleton checksum mismatch")
        skeleton.seek(0)
        if sum(before) + sum(sizes) > tar_size or sum(before) > skeleton_size:
            raise corrupt("sizes do not add up")
        if sum(sizes) + skeleton_size != tar_size:
            raise corrupt("sizes do not add up")
        return cls(
            layer_digest=layer_digest,
            tar_size=tar_size,
            tar_sha256=tar_sha256,
            skeleton_size=skeleton_size,
            skeleton=skeleton,
            skeleton_before=before,
            sizes=sizes,
            digests=digests,
            gzip_recipe=gzip_recipe,
        )

    @classmethod
    def from_bytes(cls, data: bytes, layer_digest: str) -> LayerRecipe:
        import io

        return cls.read(io.BytesIO(data), layer_digest)

    def close(self) -> None:
        self.skeleton.close()
