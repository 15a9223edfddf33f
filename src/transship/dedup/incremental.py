"""Incremental dedup bundles: ship only the contents the site does not already have.

Saving: `ParentContents` holds the contents the parent bundles carry (every content
their layers reference, with a layer that has it); the save gives it to the
`ContentCollector` as `skip`, so only missing contents are stored, and
`external_layers()` says which parent layers to read the others from at load.

Loading: a `ContentProviderChain` finds each content a layer needs, asking in order:
this bundle's store, the parent bundles' stores (when the user points at them), and the
layers already in the target (pulled, split and indexed by content sha256 into a
temporary file, only the contents still wanted). `check()` names the layer and the
missing content before anything of that layer is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import zstandard

from transship.dedup.content_store import ContentStoreReader, StoreSource, digest_str
from transship.dedup.layer_recipe import LayerRecipe
from transship.dedup.tarsplit import TarSplitter
from transship.errors import BundleError, TransshipError

_IO_CHUNK = 1 << 20
_MEMORY_THRESHOLD = 1 << 20
_CONTENTS_MAGIC = b"TSCLIST1"


class ParentContents:
    """The contents parent bundles carry, each with a layer (digest) that holds it."""

    def __init__(self) -> None:
        self._layer_of: dict[bytes, str] = {}

    def add_layer(self, layer_digest: str, digests: Iterable[bytes]) -> None:
        for digest in digests:
            self._layer_of.setdefault(digest, layer_digest)

    def add_recipe(self, recipe: LayerRecipe) -> None:
        self.add_layer(recipe.layer_digest, recipe.content_digests())

    def update(self, other: ParentContents) -> None:
        """Add what `other` carries (contents already known keep their layer)."""
        for digest, layer in other._layer_of.items():
            self._layer_of.setdefault(digest, layer)

    def __contains__(self, digest: object) -> bool:
        return digest in self._layer_of

    def __len__(self) -> int:
        return len(self._layer_of)

    def layer_of(self, digest: bytes) -> str | None:
        return self._layer_of.get(digest)

    def to_bytes(self) -> bytes:
        """Compact form for a bundle's meta (what a child bundle's `--since` reads):
        zstd of a JSON list of layers with content counts, then the digests in order."""
        by_layer: dict[str, list[bytes]] = {}
        for digest, layer in self._layer_of.items():
            by_layer.setdefault(layer, []).append(digest)
        header = json.dumps([[layer, len(d)] for layer, d in by_layer.items()]).encode()
        body = b"".join(b"".join(sorted(d)) for d in by_layer.values())
        raw = _CONTENTS_MAGIC + struct.pack("<I", len(header)) + header + body
        raw += hashlib.sha256(raw).digest()
        return zstandard.ZstdCompressor(level=9).compress(raw)

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "parent bundle") -> ParentContents:
        def bad(reason: str) -> BundleError:
            return BundleError(f"{what}: list of file contents is corrupt ({reason})")

        try:
            raw = zstandard.ZstdDecompressor().decompress(data)
        except zstandard.ZstdError as exc:
            raise bad(str(exc)) from exc
        body, checksum = raw[:-32], raw[-32:]
        if hashlib.sha256(body).digest() != checksum or not body.startswith(_CONTENTS_MAGIC):
            raise bad("checksum mismatch")
        pos = len(_CONTENTS_MAGIC)
        (header_len,) = struct.unpack_from("<I", body, pos)
        pos += 4
        try:
            layers = json.loads(body[pos : pos + header_len])
        except ValueError as exc:
            raise bad(str(exc)) from exc
        pos += header_len
        if pos + 32 * sum(n for _, n in layers) != len(body):
            raise bad("length mismatch")
        out = cls()
        for layer, count in layers:
            out.add_layer(layer, (body[p : p + 32] for p in range(pos, pos + 32 * count, 32)))
            pos += 32 * count
        return out

    def external_layers(self, recipes: Iterable[LayerRecipe], shipped: object) -> list[str]:
        """Parent layers holding the contents `recipes` need but `shipped` (this bundle's
        store: anything supporting `in`) lacks, most useful first."""
        useful: Counter[str] = Counter()
        for recipe in recipes:
            for digest in recipe.content_digests():
                if digest in shipped:  # type: ignore[operator]
                    continue
                layer = self._layer_of.get(digest)
                if layer is not None:
                    useful[layer] += 1
        return [layer for layer, _ in useful.most_common()]


class ContentProvider(Protocol):
    name: str

    def prepare(self, wanted: dict[bytes, int]) -> set[bytes]:
        """Make the `wanted` contents (digest → size) readable where possible; returns
        the digests this provider can now serve."""
        ...

    def why_unavailable(self, digest: bytes) -> str | None: ...

    def read_content(self, digest: bytes, size: int) -> Iterable[bytes]: ...

    def close(self) -> None: ...


class StoreContents:
    """A content store (this bundle's or a parent's: a path or a StoreSource) as a provider."""

    def __init__(
        self,
        source: str | os.PathLike[str] | StoreSource,
        temp_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.reader = ContentStoreReader(source, temp_dir)
        self.name = f"content store {self.reader.name}"

    def prepare(self, wanted: dict[bytes, int]) -> set[bytes]:
        present = [d for d in wanted if d in self.reader]
        return self.reader.materialize(present) if present else set()

    def why_unavailable(self, digest: bytes) -> str | None:
        return self.reader.why_unavailable(digest)

    def read_content(self, digest: bytes, size: int) -> Iterable[bytes]:
        return self.reader.read_content(digest, size)

    def close(self) -> None:
        self.reader.close()


LayerOpener = Callable[[str], Iterable[bytes]]
"""Given a layer digest, the layer's uncompressed tar as chunks (see `plain_tar_chunks`)."""


class TargetLayerContents:
    """Contents taken from layers the target already holds: each candidate layer is
    streamed once, and only the wanted contents are kept, in a temporary file."""

    name = "layers in the target"

    def __init__(
        self,
        layers: Iterable[str],
        open_layer: LayerOpener,
        temp_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._layers = list(dict.fromkeys(layers))
        self._open_layer = open_layer
        self._temp_root = temp_dir
        self._fd: int | None = None
        self._end = 0
        self._found: dict[bytes, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self.layer_problems: dict[str, str] = {}
        self.scanned: list[str] = []

    def prepare(self, wanted: dict[bytes, int]) -> set[bytes]:
        with self._lock:
            remaining = {d: s for d, s in wanted.items() if d not in self._found}
            for layer in self._layers:
                if not remaining:
                    break
                if layer in self.scanned or layer in self.layer_problems:
                    continue
                try:
                    self._scan(layer, remaining)
                    self.scanned.append(layer)
                except (TransshipError, OSError, zlib.error, zstandard.ZstdError) as exc:
                    self.layer_problems[layer] = str(exc)
                for digest in [d for d in remaining if d in self._found]:
                    del remaining[digest]
            return {d for d in wanted if d in self._found}

    def _scan(self, layer: str, remaining: dict[bytes, int]) -> None:
        if self._fd is None:
            fd, path = tempfile.mkstemp(prefix="transship-target-", dir=self._temp_root)
            os.unlink(path)  # lives as long as the descriptor
            self._fd = fd
        sink = _WantedContentSink(self, remaining)
        splitter = TarSplitter(sink, hash_stream=False)
        chunks = self._open_layer(layer)
        try:
            for chunk in chunks:
                splitter.feed(chunk)
                if sink.missing == 0:
                    return  # everything wanted was found: no need to read further
            splitter.finish()
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _keep(self, digest: bytes, data: list[bytes], start: int, size: int) -> None:
        """Store a found content at the end of the temporary file."""
        assert self._fd is not None
        offset = start
        for piece in data:
            os.pwrite(self._fd, piece, offset)
            offset += len(piece)
        self._found[digest] = (start, size)
        self._end = start + size

    def why_unavailable(self, digest: bytes) -> str | None:
        if digest in self._found:
            return None
        tried = ", ".join(self.scanned) or "none"
        problems = "; ".join(f"{k}: {v}" for k, v in self.layer_problems.items())
        reason = f"content {digest_str(digest)} is in none of the target's layers read ({tried})"
        return f"{reason}; unreadable layers: {problems}" if problems else reason

    def read_content(self, digest: bytes, size: int) -> Iterator[bytes]:
        if digest not in self._found:
            raise BundleError(self.why_unavailable(digest) or "")
        offset, length = self._found[digest]
        if length != size:
            raise BundleError(f"content {digest_str(digest)}: size {length}, expected {size}")
        assert self._fd is not None
        while length:
            piece = os.pread(self._fd, min(length, _IO_CHUNK), offset)
            if not piece:
                raise BundleError(f"content {digest_str(digest)}: temporary copy is short")
            offset += len(piece)
            length -= len(piece)
            yield piece

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._found.clear()


class _WantedContentSink:
    """Keeps, of the contents of a layer being scanned, those still wanted. A content is
    only copied when its size is one of the wanted sizes; small ones are held in memory,
    big ones written to the file's end and dropped again if their digest is not wanted."""

    def __init__(self, owner: TargetLayerContents, remaining: dict[bytes, int]) -> None:
        self._owner = owner
        self._remaining = remaining
        self._sizes = set(remaining.values())
        self.missing = sum(1 for d in remaining if d not in owner._found)
        self._active = False
        self._pieces: list[bytes] = []
        self._written = 0
        self._streaming = False

    def skeleton(self, data: memoryview | bytes) -> None:
        pass

    def content_begin(self, name: str, declared_size: int) -> None:
        self._active = declared_size in self._sizes
        self._pieces = []
        self._written = 0
        self._streaming = declared_size > _MEMORY_THRESHOLD

    def content_data(self, data: memoryview) -> None:
        if not self._active:
            return
        if self._streaming:
            fd = self._owner._fd
            assert fd is not None
            os.pwrite(fd, data, self._owner._end + self._written)
            self._written += len(data)
        else:
            self._pieces.append(bytes(data))

    def content_end(self, digest: bytes, size: int) -> None:
        if not self._active:
            return
        wanted = self._remaining.get(digest) == size and digest not in self._owner._found
        if not wanted:
            return  # anything written past the file's end is overwritten later
        if self._streaming:
            self._owner._found[digest] = (self._owner._end, size)
            self._owner._end += size
        else:
            self._owner._keep(digest, self._pieces, self._owner._end, size)
        self._pieces = []
        self.missing -= 1


class ContentProviderChain:
    """Asks providers in order for the contents layers need; see the module docstring."""

    def __init__(self, providers: Iterable[ContentProvider]) -> None:
        self.providers = list(providers)
        self._served_by: dict[bytes, ContentProvider] = {}

    def prepare(self, recipes: Iterable[LayerRecipe]) -> None:
        wanted: dict[bytes, int] = {}
        for recipe in recipes:
            wanted.update(recipe.content_sizes())
        self.prepare_contents(wanted)

    def prepare_contents(self, wanted: dict[bytes, int]) -> None:
        remaining = {d: s for d, s in wanted.items() if d not in self._served_by}
        for provider in self.providers:
            if not remaining:
                break
            for digest in provider.prepare(remaining):
                self._served_by[digest] = provider
                del remaining[digest]

    def why_unavailable(self, digest: bytes) -> str | None:
        if digest in self._served_by:
            return None
        reasons = [r for p in self.providers if (r := p.why_unavailable(digest))]
        # The most telling reason: a corrupt copy beats "not there".
        for reason in reasons:
            if "corrupt" in reason or "unreadable" in reason:
                return reason
        return reasons[0] if reasons else f"content {digest_str(digest)} has no source"

    def check(self, recipe: LayerRecipe) -> None:
        """Raise BundleError naming the layer if any content it needs is unavailable."""
        missing = [d for d in dict.fromkeys(recipe.content_digests()) if d not in self._served_by]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            reason = self.why_unavailable(missing[0])
            raise BundleError(
                f"layer {recipe.layer_digest}: {len(missing)} file content(s) unavailable: "
                f"{reason}{more}"
            )

    def read_content(self, digest: bytes, size: int) -> Iterable[bytes]:
        provider = self._served_by.get(digest)
        if provider is None:
            raise BundleError(self.why_unavailable(digest) or "content unavailable")
        return provider.read_content(digest, size)

    def close(self) -> None:
        for provider in self.providers:
            provider.close()


def plain_tar_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a layer blob given as chunks: gzip (any number of members), zstd, or
    already plain, told apart by the first bytes."""
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= 4:
            break
    if head[:2] == b"\x1f\x8b":
        yield from _gunzip(_prepend(head, it))
    elif head[:4] == b"\x28\xb5\x2f\xfd":
        dobj = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
        for chunk in _prepend(head, it):
            out = dobj.decompress(chunk)
            if out:
                yield out
    else:
        yield from _prepend(head, it)


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Every gzip member in turn; what follows the last member (zero padding, garbage) is
    ignored, as gzip -d does."""
    d = zlib.decompressobj(31)
    after_member = False
    pending = b""
    for chunk in chunks:
        data = pending + chunk if pending else chunk
        pending = b""
        while data:
            if after_member:
                if len(data) < 2:
                    pending = data
                    break
                if data[:2] != b"\x1f\x8b":
                    return
                d = zlib.decompressobj(31)
                after_member = False
            out = d.decompress(data, _IO_CHUNK)
            if out:
                yield out
            while d.unconsumed_tail:
                out = d.decompress(d.unconsumed_tail, _IO_CHUNK)
                if out:
                    yield out
            data = b""
            if d.eof:
                data = d.unused_data
                after_member = True
    if not after_member:
        raise zlib.error("gzip stream is truncated")
