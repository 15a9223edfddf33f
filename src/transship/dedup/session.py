"""The dedup codec's two sides, for the bundle writer and reader to drive.

Save (one `DedupSaveSession` per bundle)::

    save = DedupSaveSession(work_dir, parent=parent_contents)  # parent: incremental
    for each layer (any threads):
        layer = save.open_layer(layer_digest)
        gzip_recipe = analyze(gz_stream, layer.write)  # plain tar bytes into the splitter
        recipe = layer.finish(gzip_recipe)             # store recipe.write(...) in the bundle
    with open(store_path, "wb") as out:
        save.write_store(out)                          # once, after every layer
    save.close()

Load (one `DedupLoadSession` per bundle)::

    load = DedupLoadSession(store_path, parent_stores=[...], target=TargetLayerContents(...))
    load.prepare(recipes)                              # decompress the store once
    for each recipe: load.check(recipe); tar_chunks = load.rebuild(recipe)
    load.close()
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Container, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from transship.dedup.content_store import (
    DEFAULT_FRAME_SIZE,
    DEFAULT_LEVEL,
    DEFAULT_WINDOW_LOG,
    CollectorSession,
    ContentCollector,
    StoreIndex,
    StoreSource,
)
from transship.dedup.incremental import (
    ContentProvider,
    ContentProviderChain,
    ParentContents,
    StoreContents,
)
from transship.dedup.layer_codec import (
    DEFAULT_MIN_CONTENT_SIZE,
    DEFAULT_SKELETON_LEVEL,
    LayerSplitter,
    rebuild_layer_tar,
)
from transship.dedup.layer_recipe import LayerRecipe


class OpenLayer(LayerSplitter):
    """A layer being split within a save session; `finish()` also ends its spill session."""

    def __init__(self, session: CollectorSession, layer_digest: str, **options: Any) -> None:
        super().__init__(layer_digest, session, **options)
        self._session = session

    def finish(self, gzip_recipe: bytes = b"") -> LayerRecipe:
        try:
            return super().finish(gzip_recipe)
        finally:
            self._session.close()

    def abort(self) -> None:
        """Give the layer up (its stream failed): contents already stored stay valid."""
        self._session.close()


class DedupSaveSession:
    def __init__(
        self,
        work_dir: str | os.PathLike[str] | None = None,
        *,
        parent: ParentContents | None = None,
        level: int = DEFAULT_LEVEL,
        threads: int = 2,
        window_log: int = DEFAULT_WINDOW_LOG,
        frame_size: int = DEFAULT_FRAME_SIZE,
        min_content_size: int = DEFAULT_MIN_CONTENT_SIZE,
        skeleton_level: int = DEFAULT_SKELETON_LEVEL,
    ) -> None:
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="transship-dedup-"))
        self.parent = parent
        self.collector = ContentCollector(
            self.work_dir / "spill", skip=parent if parent is not None else frozenset()
        )
        self._store_options = dict(
            level=level, threads=threads, window_log=window_log, frame_size=frame_size
        )
        self._layer_options = dict(min_content_size=min_content_size, skeleton_level=skeleton_level)

    def open_layer(self, layer_digest: str, hash_tar: bool = True) -> OpenLayer:
        """`hash_tar` as for `LayerSplitter`."""
        return OpenLayer(
            self.collector.session(), layer_digest, hash_tar=hash_tar, **self._layer_options
        )

    def write_store(self, out: BinaryIO, keep: Container[bytes] | None = None) -> StoreIndex:
        """Write the content store (after every layer was split), with only the contents
        in `keep` when given; returns its index."""
        return self.collector.write_store(out, keep=keep, **self._store_options)

    def external_layers(self, recipes: Iterable[LayerRecipe]) -> list[str]:
        """Parent layers to read the contents this bundle does not ship from, at load."""
        if self.parent is None:
            return []
        return self.parent.external_layers(recipes, self.collector)

    def close(self) -> None:
        self.collector.close()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


class DedupLoadSession:
    def __init__(
        self,
        store: str | os.PathLike[str] | StoreSource | None,
        *,
        parent_stores: Iterable[str | os.PathLike[str] | StoreSource] = (),
        target: ContentProvider | None = None,
        temp_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        providers: list[ContentProvider] = []
        if store is not None:
            providers.append(StoreContents(store, temp_dir))
        providers.extend(StoreContents(p, temp_dir) for p in parent_stores)
        if target is not None:
            providers.append(target)
        self.chain = ContentProviderChain(providers)

    def prepare(self, recipes: Iterable[LayerRecipe]) -> None:
        self.chain.prepare(recipes)

    def check(self, recipe: LayerRecipe) -> None:
        self.chain.check(recipe)

    def rebuild(self, recipe: LayerRecipe) -> Iterator[bytes]:
        """The layer's exact uncompressed tar (call `check` first for an early error)."""
        self.check(recipe)
        return rebuild_layer_tar(recipe, self.chain.read_content)

    def close(self) -> None:
        self.chain.close()
