"""Real gzip layers through the whole dedup path: gzip analysis feeding the tar splitter,
one content store for all of them, then tar rebuild feeding the gzip rebuild: every blob
comes back with its digest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import SHARED_LAYERS_DIR
from transship.dedup.layer_recipe import LayerRecipe
from transship.dedup.session import DedupLoadSession, DedupSaveSession

gzip_rebuild = pytest.importorskip("transship.gzip_rebuild")


def test_fixture_blobs_rebuild_to_their_digests(tmp_path: Path) -> None:
    blobs = sorted(SHARED_LAYERS_DIR.glob("*.gz"))
    if not blobs:
        pytest.skip(f"no gzip layers in {SHARED_LAYERS_DIR}")
    save = DedupSaveSession(tmp_path / "work")
    recipes: dict[str, bytes] = {}
    for path in blobs:
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        layer = save.open_layer(digest)
        with open(path, "rb") as gz:
            gzip_recipe = gzip_rebuild.analyze(gz, layer.write)
        recipes[digest] = layer.finish(gzip_recipe.to_bytes()).to_bytes()
    store = tmp_path / "contents.store"
    with open(store, "wb") as out:
        save.write_store(out)
    save.close()
    # The PAX layer gzipped nine ways is stored once: the store is far smaller than the blobs.
    assert store.stat().st_size < 0.75 * sum(p.stat().st_size for p in blobs)

    load = DedupLoadSession(store, temp_dir=tmp_path)
    parsed = {d: LayerRecipe.from_bytes(b, d) for d, b in recipes.items()}
    load.prepare(parsed.values())
    for digest, recipe in parsed.items():
        plan = gzip_rebuild.Recipe.from_bytes(recipe.gzip_recipe)
        sha = hashlib.sha256()
        for chunk in gzip_rebuild.rebuild(load.rebuild(recipe), plan):
            sha.update(chunk)
        assert f"sha256:{sha.hexdigest()}" == digest
    load.close()
