"""The load side of the dedup codec: one `DedupBundleLoad` per bundle being read.

Preparing (once, before any layer is served) reads and checks every layer recipe
(checksummed: a flipped byte names its layer), decodes every gzip recipe, then makes
every file content those layers need readable: decompressed once from this bundle's
content store into temporary files (each content's sha256 checked), else from the stores
of the parent bundles, else from layers the load target already holds. A layer that
would lack anything fails here, by name, before anything is pushed.

Where the contents an incremental bundle left to its parents come from, in order:

1. the parents' own content stores, when their files are at hand: in the bundle's folder
   or in a sibling folder (`transship save` puts each bundle in a dated folder of the same
   output folder);
2. the layers the target already holds (a registry target): the parents' layers are
   streamed once from it and only the wanted contents kept.

Serving a layer rebuilds its tar from the skeleton and the contents (its size and sha256
checked), then its gzip from the tar and the gzip recipe; the reader checks the blob's
digest on the way out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transship.bundle.codecs import LoadContext, PieceSource
from transship.bundle.dedup_io import PieceStoreSource, open_pieces, pieces_of
from transship.bundle.dedup_save import ENCODING, STORE_MEMBER, LayerDigests
from transship.bundle.meta import BlobEntry, BundleMeta, load_meta
from transship.bundle.reader import FilePieceSource
from transship.dedup.content_store import StoreSource
from transship.dedup.incremental import TargetLayerContents, plain_tar_chunks
from transship.dedup.layer_recipe import LayerRecipe
from transship.dedup.session import DedupLoadSession
from transship.errors import BundleError

_MAX_REPORTED = 5


def read_recipe(entry: BlobEntry, source: PieceSource) -> LayerRecipe:
    """A dedup layer's recipe, checked; errors name the layer."""
    try:
        with open_pieces(entry.pieces, source) as f:
            return LayerRecipe.read(f, entry.digest)
    except BundleError as e:
        if entry.digest in str(e):
            raise
        raise BundleError(f"layer {entry.digest}: its recipe cannot be read ({e})") from None


def _parent_candidates(directory: Path, file_name: str) -> list[Path]:
    if not file_name or "/" in file_name or "\\" in file_name or file_name.startswith("."):
        return []  # a plain meta file name only, never a path
    if any(c in file_name for c in "*?["):
        return []
    near = directory / file_name
    siblings = sorted(directory.parent.glob(f"*/{file_name}")) if directory.parent else []
    return [p for p in dict.fromkeys([near, *siblings]) if p.is_file()]


def _find_parent_stores(
    params: dict[str, Any], directory: Path, seen: set[str]
) -> tuple[list[StoreSource], list[str]]:
    """The content stores of the dedup parents (and theirs) found next to the bundle, and
    the file names of those that were not found."""
    stores: list[StoreSource] = []
    missing: list[str] = []
    for parent in params.get("parents", []):
        parent_id, file_name = parent.get("id"), parent.get("file", "")
        if parent_id in seen:
            continue
        seen.add(parent_id)
        meta: BundleMeta | None = None
        for candidate in _parent_candidates(directory, file_name):
            with contextlib.suppress(BundleError):
                found = load_meta(candidate)
                if found.id == parent_id:
                    meta, path = found, candidate
                    break
        data = meta.codec_data.get(ENCODING) if meta else None
        if meta is None or data is None:
            missing.append(file_name)
            continue
        pieces = pieces_of(data.pieces, data.params.get("store", STORE_MEMBER))
        stores.append(
            PieceStoreSource(pieces, FilePieceSource(path.parent), f"content store of {path.name}")
        )
        more, lost = _find_parent_stores(data.params, path.parent, seen)
        stores += more
        missing += lost
    return stores, missing


class DedupBundleLoad:
    """One bundle's dedup layers, ready to be served (see the module docstring)."""

    def __init__(self, meta: BundleMeta, source: PieceSource, context: LoadContext):
        self.bundle = context.bundle_name
        # Only the layers this load reads are checked and get their contents unpacked.
        self.entries = [
            b
            for b in meta.blobs
            if b.encoding == ENCODING and (context.blobs is None or b.digest in context.blobs)
        ]
        self._prepared = {b.digest for b in self.entries}
        self.session: DedupLoadSession | None = None
        if not self.entries:
            return
        data = meta.codec_data.get(ENCODING)
        store_pieces = (
            pieces_of(data.pieces, data.params.get("store", STORE_MEMBER)) if data else []
        )
        if data is None or not store_pieces:
            raise BundleError(
                f"bundle {self.bundle}: {len(self.entries)} layers are stored as file contents "
                "but the meta names no content store; the meta file is damaged"
            )
        own = PieceStoreSource(store_pieces, source, f"content store of {self.bundle}")
        try:
            parent_stores, self.missing_parents = _find_parent_stores(
                data.params, context.directory, {meta.id}
            )
            self.external = {
                str(layer["digest"]): [str(r) for r in layer.get("repositories", [])]
                for layer in data.params.get("external_layers", [])
            }
        except (KeyError, TypeError, AttributeError, ValueError):
            raise BundleError(
                f"bundle {self.bundle}: the meta's dedup section is damaged "
                "(parents or external layers)"
            ) from None
        target = None
        opener = context.open_target_blob
        if self.external and opener is not None:
            homes = self.external
            target = TargetLayerContents(
                list(homes),
                lambda digest: plain_tar_chunks(opener(digest, homes[digest])),
                context.temp_dir,
            )
        self.can_read_target = target is not None
        self.session = DedupLoadSession(
            own, parent_stores=parent_stores, target=target, temp_dir=context.temp_dir
        )
        try:
            self._check_every_layer(source)
        except BaseException:
            self.close()
            raise

    def _check_every_layer(self, source: PieceSource) -> None:
        from transship.gzip_rebuild import Recipe, RecipeError

        assert self.session is not None
        problems: list[str] = []
        layers: list[LayerDigests] = []
        wanted: dict[bytes, int] = {}
        for entry in self.entries:
            try:
                recipe = read_recipe(entry, source)
            except BundleError as e:
                problems.append(str(e))
                continue
            try:
                if entry.params.get("compression") == "gzip":
                    Recipe.from_bytes(recipe.gzip_recipe)
                wanted.update(recipe.content_sizes())
                layers.append(LayerDigests(entry.digest, recipe.digests))
            except RecipeError as e:
                problems.append(f"layer {entry.digest}: its gzip recipe is corrupt ({e})")
            finally:
                recipe.close()
        if not problems:  # the store is decompressed only when every recipe is sound
            self.session.chain.prepare_contents(wanted)
            for layer in layers:
                try:
                    self.session.chain.check(layer)  # type: ignore[arg-type]
                except BundleError as e:
                    problems.append(str(e))
        if problems:
            raise BundleError(self._describe(problems))

    def _describe(self, problems: list[str]) -> str:
        shown = "; ".join(problems[:_MAX_REPORTED])
        more = len(problems) - _MAX_REPORTED
        text = (
            f"bundle {self.bundle}: {len(problems)} layer(s) cannot be rebuilt — {shown}"
            f"{f'; and {more} more' if more > 0 else ''}"
        )
        if self.external and any("unavailable" in p for p in problems):
            where = ", ".join(self.missing_parents) or "its parent bundles"
            text += (
                f". This incremental bundle relies on files of {where}: put those bundles' "
                "files next to it, or load into the registry that holds their images"
            )
            if not self.can_read_target:
                text += " (this target cannot be read back)"
        return text

    def decode(self, entry: BlobEntry, source: PieceSource, offset: int = 0) -> Iterator[bytes]:
        from transship.gzip_rebuild import Recipe, RecipeError, rebuild

        if self.session is None or entry.digest not in self._prepared:
            raise BundleError(f"layer {entry.digest}: the bundle was not prepared for reading it")
        recipe = read_recipe(entry, source)
        try:
            chunks = self.session.rebuild(recipe)
            if entry.params.get("compression") == "gzip":
                chunks = rebuild(chunks, Recipe.from_bytes(recipe.gzip_recipe))
            for chunk in chunks:
                if offset >= len(chunk):
                    offset -= len(chunk)
                    continue
                yield chunk[offset:] if offset else chunk
                offset = 0
        except RecipeError as e:
            raise BundleError(f"layer {entry.digest}: its gzip cannot be rebuilt ({e})") from None
        finally:
            recipe.close()

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
