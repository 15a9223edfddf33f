"""One layer through the dedup codec: split a tar stream into a recipe plus contents, and
rebuild the exact tar from a recipe and a content source.

`LayerSplitter` is the plain-data sink the decompressor feeds (`write(chunk)` or
`splitter(chunk)`); contents go to a content sink (a `CollectorSession` at save time),
the skeleton is compressed as it comes. `rebuild_layer_tar` gives the tar back, checks
its size and sha256 (when the recipe has it), and holds back its last chunk until the
check passed, so a consumer that verifies the stream never sees a complete wrong layer.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import zstandard

from transship.dedup.layer_recipe import LayerRecipe, new_spool
from transship.dedup.tarsplit import ContentRef, TarSplitter, rebuild_tar
from transship.errors import BundleError, TransshipError

DEFAULT_SKELETON_LEVEL = 9  # measured: level 12+ needs 45+ MB per compressor for 2% less
DEFAULT_MIN_CONTENT_SIZE = 64  # smaller contents stay in the skeleton (a reference costs ~50 B)


class ContentSink(Protocol):
    def content_begin(self, name: str, declared_size: int) -> None: ...

    def content_data(self, data: memoryview) -> None: ...

    def content_end(self, digest: bytes, size: int) -> object: ...


class _DiscardContents:
    def content_begin(self, name: str, declared_size: int) -> None:
        pass

    def content_data(self, data: memoryview) -> None:
        pass

    def content_end(self, digest: bytes, size: int) -> None:
        pass


class LayerSplitter:
    """Feed a layer's uncompressed tar bytes; `finish()` gives its recipe."""

    def __init__(
        self,
        layer_digest: str,
        contents: ContentSink | None = None,
        *,
        min_content_size: int = DEFAULT_MIN_CONTENT_SIZE,
        skeleton_level: int = DEFAULT_SKELETON_LEVEL,
        hash_tar: bool = True,
    ) -> None:
        """`hash_tar=False` leaves the tar's sha256 out of the recipe, for a compressed
        layer whose own digest covers it (hashing it costs some 0.6 s of CPU per GB)."""
        self.layer_digest = layer_digest
        self._contents = contents if contents is not None else _DiscardContents()
        self._skeleton_file = new_spool()
        self._compressor = zstandard.ZstdCompressor(
            compression_params=_skeleton_params(skeleton_level)
        ).compressobj()
        self._before = array("Q")
        self._sizes = array("Q")
        self._digests = bytearray()
        self._skeleton_run = 0
        self._splitter = TarSplitter(self, min_content_size=min_content_size, hash_stream=hash_tar)

    # -- the plain-data sink ------------------------------------------------------------

    def write(self, chunk: bytes | bytearray | memoryview) -> int:
        self._splitter.feed(chunk)
        return len(chunk)

    __call__ = write

    # -- SplitSink ------------------------------------------------------------------------

    def skeleton(self, data: memoryview | bytes) -> None:
        self._skeleton_run += len(data)
        out = self._compressor.compress(data)
        if out:
            self._skeleton_file.write(out)

    def content_begin(self, name: str, declared_size: int) -> None:
        self._before.append(self._skeleton_run)
        self._skeleton_run = 0
        self._contents.content_begin(name, declared_size)

    def content_data(self, data: memoryview) -> None:
        self._contents.content_data(data)

    def content_end(self, digest: bytes, size: int) -> None:
        self._sizes.append(size)
        self._digests += digest
        self._contents.content_end(digest, size)

    # -- end ------------------------------------------------------------------------------

    def finish(self, gzip_recipe: bytes = b"") -> LayerRecipe:
        stats = self._splitter.finish()
        self._skeleton_file.write(self._compressor.flush())
        self._skeleton_file.seek(0)
        # Free the compressor's tables now: the splitter and this object refer to each
        # other, and the garbage collector does not see the C memory behind them.
        self._compressor = None  # type: ignore[assignment]
        self._splitter = None  # type: ignore[assignment]
        return LayerRecipe(
            layer_digest=self.layer_digest,
            tar_size=stats.tar_size,
            tar_sha256=stats.tar_sha256,
            skeleton_size=stats.skeleton_size,
            skeleton=self._skeleton_file,
            skeleton_before=self._before,
            sizes=self._sizes,
            digests=bytes(self._digests),
            gzip_recipe=gzip_recipe,
        )


def split_layer(
    layer_digest: str,
    chunks: Iterable[bytes],
    contents: ContentSink | None = None,
    **options: int,
) -> LayerRecipe:
    """Split an uncompressed tar given as chunks (convenience over LayerSplitter)."""
    splitter = LayerSplitter(layer_digest, contents, **options)
    for chunk in chunks:
        splitter.write(chunk)
    return splitter.finish()


ReadContent = Callable[[bytes, int], Iterable[bytes]]


def rebuild_layer_tar(recipe: LayerRecipe, read_content: ReadContent) -> Iterator[bytes]:
    """The layer's exact uncompressed tar, in chunks. Raises BundleError naming the layer
    when a content cannot be read or the result is not the recorded tar; the last chunk
    is only yielded once the whole tar has been checked."""
    import hashlib

    layer = recipe.layer_digest
    sha = hashlib.sha256() if recipe.tar_sha256 is not None else None
    total = 0
    held: bytes | None = None
    try:
        with recipe.open_skeleton() as skeleton:
            refs: Iterable[ContentRef] = recipe.refs()
            for chunk in rebuild_tar(skeleton, refs, read_content):
                if sha is not None:
                    sha.update(chunk)
                total += len(chunk)
                if held is not None:
                    yield held
                held = chunk
    except BundleError as exc:
        raise BundleError(f"layer {layer}: {exc}") from exc
    except (TransshipError, ValueError, zstandard.ZstdError, OSError) as exc:
        raise BundleError(f"layer {layer}: cannot rebuild the tar ({exc})") from exc
    if total != recipe.tar_size:
        raise BundleError(
            f"layer {layer}: rebuilt tar has {total} bytes, expected {recipe.tar_size}"
        )
    if sha is not None and sha.digest() != recipe.tar_sha256:
        raise BundleError(
            f"layer {layer}: rebuilt tar does not match its recorded sha256 "
            f"(sha256:{recipe.tar_sha256.hex()})"
        )
    if held is not None:
        yield held


# Hash and chain tables of 2^17 entries: the skeleton (tar headers, 512 bytes a file) of
# a jar layer is some 100 KB, of an OS layer a few MB. On the fleet's layers this gave
# the same sizes as zstd's own tables for the level (up to 12 MB, cleared for each
# layer), and 1.4-60 times faster.
_SKELETON_TABLES_LOG = 17


def _skeleton_params(level: int) -> zstandard.ZstdCompressionParameters:
    default = zstandard.ZstdCompressionParameters.from_level(level)
    return zstandard.ZstdCompressionParameters.from_level(
        level,
        hash_log=min(default.hash_log, _SKELETON_TABLES_LOG),
        chain_log=min(default.chain_log, _SKELETON_TABLES_LOG),
        write_checksum=True,
    )
