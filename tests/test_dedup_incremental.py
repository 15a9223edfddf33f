"""Incremental dedup bundles: ship only new contents, find the rest at load time."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from transship.dedup.incremental import ParentContents, TargetLayerContents, plain_tar_chunks
from transship.dedup.layer_recipe import LayerRecipe
from transship.dedup.session import DedupLoadSession, DedupSaveSession
from transship.errors import BundleError, NotFoundError


def make_tar(files: dict[str, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def layer_digest(blob: bytes) -> str:
    return f"sha256:{hashlib.sha256(blob).hexdigest()}"


COMMON = {f"lib/dep-{i}.jar": os.urandom(20_000 + i) for i in range(6)}
BIG = {"lib/big.so": os.urandom(3 << 20)}  # over the in-memory threshold: streamed
V1 = {**COMMON, **BIG, "app/app.jar": b"v1 app " * 3000, "app/v1-only.bin": os.urandom(300_000)}
V2 = {**COMMON, **BIG, "app/app.jar": b"v2 app " * 3000, "lib/new-dep.jar": os.urandom(9000)}


def save(
    tmp_path: Path, name: str, layers: dict[str, bytes], parent: ParentContents | None = None
) -> tuple[Path, dict[str, LayerRecipe], DedupSaveSession]:
    session = DedupSaveSession(tmp_path / f"work-{name}", parent=parent)
    recipes = {}
    for digest, data in layers.items():
        layer = session.open_layer(digest)
        layer.write(data)
        recipe = layer.finish()
        recipes[digest] = LayerRecipe.from_bytes(recipe.to_bytes(), digest)
    store = tmp_path / f"{name}.store"
    with open(store, "wb") as out:
        session.write_store(out)
    return store, recipes, session


@pytest.fixture
def bundles(tmp_path: Path) -> dict[str, object]:
    v1_tar = make_tar(V1)
    # v2's layer also uses another tar format: same contents, other headers.
    v2_tar = make_tar(V2, fmt=tarfile.GNU_FORMAT)
    v1_gz = gzip.compress(v1_tar, mtime=0)
    v1_layers = {layer_digest(v1_gz): v1_tar}
    v2_layers = {layer_digest(gzip.compress(v2_tar, mtime=0)): v2_tar}
    v1_store, v1_recipes, v1_session = save(tmp_path, "v1", v1_layers)
    v1_session.close()
    parent = ParentContents()
    for recipe in v1_recipes.values():
        parent.add_recipe(recipe)
    v2_store, v2_recipes, v2_session = save(tmp_path, "v2", v2_layers, parent)
    external = v2_session.external_layers(v2_recipes.values())
    v2_session.close()
    return {
        "v1_store": v1_store,
        "v1_gz": {layer_digest(v1_gz): v1_gz},
        "v2_store": v2_store,
        "v2_recipes": v2_recipes,
        "v2_tars": v2_layers,
        "external": external,
        "v1_digest": layer_digest(v1_gz),
    }


def test_incremental_store_holds_only_new_contents(bundles: dict, tmp_path: Path) -> None:
    from transship.dedup.content_store import ContentStoreReader

    with ContentStoreReader(bundles["v2_store"]) as reader:
        stored = set(reader.digests())
    sha = lambda d: hashlib.sha256(d).digest()  # noqa: E731
    assert stored == {sha(V2["app/app.jar"]), sha(V2["lib/new-dep.jar"])}
    assert bundles["v2_store"].stat().st_size < 60_000  # not the 3 MiB + jars again
    assert bundles["external"] == [bundles["v1_digest"]]


def test_load_with_parent_bundle_store(bundles: dict, tmp_path: Path) -> None:
    load = DedupLoadSession(
        bundles["v2_store"], parent_stores=[bundles["v1_store"]], temp_dir=tmp_path
    )
    load.prepare(bundles["v2_recipes"].values())
    for digest, recipe in bundles["v2_recipes"].items():
        assert b"".join(load.rebuild(recipe)) == bundles["v2_tars"][digest]
    load.close()


def test_load_from_layers_in_the_target(bundles: dict, tmp_path: Path) -> None:
    opened: list[str] = []
    registry_blobs: dict[str, bytes] = bundles["v1_gz"]

    consumed = [0]

    def open_layer(digest: str) -> Iterator[bytes]:
        opened.append(digest)
        if digest not in registry_blobs:
            raise NotFoundError(f"blob {digest} not found")
        blob = registry_blobs[digest]
        for chunk in plain_tar_chunks(blob[i : i + 65536] for i in range(0, len(blob), 65536)):
            consumed[0] += len(chunk)
            yield chunk

    target = TargetLayerContents(
        ["sha256:" + "0" * 64, *bundles["external"]], open_layer, temp_dir=tmp_path
    )
    load = DedupLoadSession(bundles["v2_store"], target=target, temp_dir=tmp_path)
    load.prepare(bundles["v2_recipes"].values())
    for digest, recipe in bundles["v2_recipes"].items():
        assert b"".join(load.rebuild(recipe)) == bundles["v2_tars"][digest]
    assert opened == ["sha256:" + "0" * 64, bundles["v1_digest"]]
    # v1's last files are not wanted: the layer was not read to its end.
    assert consumed[0] < len(make_tar(V1)) - 200_000
    assert "not found" in target.layer_problems["sha256:" + "0" * 64]
    load.close()


def test_missing_contents_name_the_layer(bundles: dict, tmp_path: Path) -> None:
    load = DedupLoadSession(bundles["v2_store"], temp_dir=tmp_path)
    load.prepare(bundles["v2_recipes"].values())
    for digest, recipe in bundles["v2_recipes"].items():
        with pytest.raises(
            BundleError, match=f"^layer {digest}: 7 file content\\(s\\) unavailable"
        ):
            load.rebuild(recipe)
    load.close()


def test_missing_target_layer_is_explained(bundles: dict, tmp_path: Path) -> None:
    def open_layer(digest: str) -> Iterator[bytes]:
        raise NotFoundError(f"blob {digest} is not in the target registry")

    target = TargetLayerContents(bundles["external"], open_layer, temp_dir=tmp_path)
    load = DedupLoadSession(bundles["v2_store"], target=target, temp_dir=tmp_path)
    load.prepare(bundles["v2_recipes"].values())
    (recipe,) = bundles["v2_recipes"].values()
    with pytest.raises(BundleError, match="is not in the target registry"):
        load.check(recipe)
    load.close()


def test_corrupt_parent_store_falls_back_to_the_target(bundles: dict, tmp_path: Path) -> None:
    parent_store: Path = bundles["v1_store"]
    data = bytearray(parent_store.read_bytes())
    data[100] ^= 0xFF
    parent_store.write_bytes(bytes(data))

    def open_layer(digest: str) -> Iterator[bytes]:
        return plain_tar_chunks([bundles["v1_gz"][digest]])

    target = TargetLayerContents(bundles["external"], open_layer, temp_dir=tmp_path)
    load = DedupLoadSession(
        bundles["v2_store"], parent_stores=[parent_store], target=target, temp_dir=tmp_path
    )
    load.prepare(bundles["v2_recipes"].values())
    for digest, recipe in bundles["v2_recipes"].items():
        assert b"".join(load.rebuild(recipe)) == bundles["v2_tars"][digest]
    load.close()


def test_plain_tar_chunks_handles_gzip_zstd_and_plain() -> None:
    import zstandard

    data = make_tar({"a": b"a" * 5000})
    for blob in (
        data,
        gzip.compress(data[:3000]) + gzip.compress(data[3000:]) + bytes(100),
        zstandard.ZstdCompressor().compress(data),
    ):
        pieces = [blob[i : i + 1000] for i in range(0, len(blob), 1000)]
        assert b"".join(plain_tar_chunks(pieces)) == data
    with pytest.raises(zlib.error, match="truncated"):
        b"".join(plain_tar_chunks([gzip.compress(data)[:-20]]))


def test_parent_contents_serialize_compactly(bundles: dict) -> None:
    parent = ParentContents()
    for recipe in bundles["v2_recipes"].values():
        parent.add_recipe(recipe)
    parent.add_layer("sha256:other", [hashlib.sha256(b"x").digest()])
    data = parent.to_bytes()
    again = ParentContents.from_bytes(data)
    assert len(again) == len(parent) == 10
    for recipe in bundles["v2_recipes"].values():
        for d in recipe.content_digests():
            assert d in again and again.layer_of(d) == parent.layer_of(d)
    assert again.layer_of(hashlib.sha256(b"x").digest()) == "sha256:other"
    import zstandard

    raw = bytearray(zstandard.ZstdDecompressor().decompress(data))
    raw[20] ^= 1
    with pytest.raises(BundleError, match="^parent bundle: list of file contents is corrupt"):
        ParentContents.from_bytes(zstandard.ZstdCompressor().compress(bytes(raw)))
