"""The content store: each distinct content once, similar ones together, read back exactly;
and the whole save → load path of layers through the dedup session."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from tests.conftest import SHARED_LAYERS_DIR
from tests.support import tar_samples
from transship.dedup.content_store import (
    ContentCollector,
    ContentStoreReader,
    StoreIndex,
    similarity_key,
)
from transship.dedup.layer_recipe import LayerRecipe
from transship.dedup.session import DedupLoadSession, DedupSaveSession
from transship.errors import BundleError


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def add(collector: ContentCollector, name: str, data: bytes, chunk: int = 1000) -> bool:
    with collector.session() as session:
        session.content_begin(name, len(data))
        for i in range(0, len(data), chunk):
            session.content_data(memoryview(data[i : i + chunk]))
        return session.content_end(sha(data), len(data))


def test_collector_keeps_each_content_once(tmp_path: Path) -> None:
    collector = ContentCollector(tmp_path / "spill", memory_threshold=4096)
    small, big = b"small content", os.urandom(50_000)  # big: streamed to disk, rolled back
    assert add(collector, "a.txt", small)
    assert not add(collector, "copy.txt", small)
    assert add(collector, "big.bin", big)
    assert not add(collector, "big-again.bin", big)
    assert len(collector) == 2
    assert collector.stored_bytes == len(small) + len(big)
    # The duplicate that was streamed to disk was dropped again.
    spill_total = sum(p.stat().st_size for p in (tmp_path / "spill").iterdir())
    assert spill_total == len(small) + len(big)
    out = io.BytesIO()
    collector.write_store(out, level=1)
    store = tmp_path / "store"
    store.write_bytes(out.getvalue())
    with ContentStoreReader(store, tmp_path) as reader:
        assert reader.materialize() == {sha(small), sha(big)}
        assert b"".join(reader.read_content(sha(big), len(big))) == big
        assert b"".join(reader.read_content(sha(small))) == small
        with pytest.raises(BundleError, match="expects"):
            reader.read_content(sha(small), 3)
    collector.close()
    assert not list((tmp_path / "spill").iterdir())


def test_skip_set_is_not_stored(tmp_path: Path) -> None:
    parent_has = b"the parent bundle has this"
    collector = ContentCollector(tmp_path, skip={sha(parent_has)})
    assert not add(collector, "x", parent_has)
    assert add(collector, "y", b"new")
    assert sha(parent_has) not in collector and collector.skipped_count == 1


def test_similarity_key_groups_versions_and_kinds() -> None:
    names = [
        "app/lib/guava-31.1-jre.jar",
        "usr/lib/libssl.so.3",
        "app/README.txt",
        "other/lib/guava-32.0-jre.jar",
        "usr/lib/libssl.so.1.1",
        "app/lib/zstd-jni-1.5.jar",
        "app/lib/aaa-1.0.jar",
    ]
    ordered = sorted(names, key=lambda n: similarity_key(n, 1))
    assert (
        abs(
            ordered.index("app/lib/guava-31.1-jre.jar")
            - ordered.index("other/lib/guava-32.0-jre.jar")
        )
        == 1
    )
    assert abs(ordered.index("usr/lib/libssl.so.3") - ordered.index("usr/lib/libssl.so.1.1")) == 1
    jars = [ordered.index(n) for n in names if n.endswith(".jar")]
    assert max(jars) - min(jars) == len(jars) - 1  # archives sit together


def test_store_orders_by_similarity_and_splits_frames(tmp_path: Path) -> None:
    collector = ContentCollector(tmp_path / "spill")
    contents = {
        f"dir{i}/file-{i}.{ext}": os.urandom(3000) for i in range(12) for ext in ("jar", "txt")
    }
    for name, data in contents.items():
        add(collector, name, data)
    out = io.BytesIO()
    index = collector.write_store(out, level=3, frame_size=10_000, threads=0)
    assert len(index.frames) == 6  # 24 contents, 4 of 3000 bytes reach 10 000 bytes
    kinds = [
        next(n for n, d in contents.items() if sha(d) == digest).rsplit(".", 1)[1]
        for digest in index
    ]
    assert kinds == sorted(kinds, key=lambda k: similarity_key("x." + k, 0))
    # Every frame is a standalone zstd frame.
    raw = out.getvalue()
    for frame in index.frames:
        data = zstandard.ZstdDecompressor().decompress(
            raw[frame.offset : frame.offset + frame.size]
        )
        assert len(data) == frame.plain_size
    store = tmp_path / "store"
    store.write_bytes(raw)
    with ContentStoreReader(store, tmp_path) as reader:
        one = sha(contents["dir5/file-5.txt"])
        assert reader.materialize([one]) == {one}
        assert len(list((tmp_path).glob("transship-store-*/frame-*"))) == 1  # only its frame
        assert b"".join(reader.read_content(one, 3000)) == contents["dir5/file-5.txt"]
        other = sha(contents["dir0/file-0.jar"])
        assert "not decompressed" in (reader.why_unavailable(other) or "")
        reader.materialize()
        for data in contents.values():
            assert b"".join(reader.read_content(sha(data), len(data))) == data


def test_empty_store(tmp_path: Path) -> None:
    out = io.BytesIO()
    index = ContentCollector(tmp_path / "s").write_store(out)
    assert len(index) == 0 and not index.frames
    (tmp_path / "store").write_bytes(out.getvalue())
    with ContentStoreReader(tmp_path / "store") as reader:
        assert reader.materialize() == set() and reader.problem is None


def test_index_round_trip() -> None:
    from array import array

    from transship.dedup.content_store import FrameInfo

    digests = b"".join(sha(bytes([i])) for i in range(5))
    index = StoreIndex(
        [FrameInfo(0, 10, 6, 3), FrameInfo(10, 5, 9, 2)], digests, array("Q", [1, 2, 3, 4, 5])
    )
    again = StoreIndex.from_bytes(index.to_bytes())
    assert list(again) == list(index)
    assert again.locate(sha(bytes([4]))) == (1, 4, 5)
    with pytest.raises(BundleError):
        StoreIndex([FrameInfo(0, 10, 7, 3)], digests[:96], array("Q", [1, 2, 3]))


# -- layers through the whole dedup path ---------------------------------------------------


def layer_tars() -> dict[str, bytes]:
    tars = {
        "pax": tar_samples.python_tar(
            tarfile.PAX_FORMAT, extra_files={"shared/x.bin": b"X" * 9000}
        ),
        "gnu": tar_samples.python_tar(
            tarfile.GNU_FORMAT, extra_files={"shared/x.bin": b"X" * 9000}
        ),
        "empty": b"",
        "garbage": b"not a tar " * 300,
    }
    for name in ("layer-pax.tar", "layer-gnu.tar"):
        path = SHARED_LAYERS_DIR / name
        if path.exists():
            tars[name] = path.read_bytes()
    return {f"sha256:{hashlib.sha256(t).hexdigest()}-{k}": t for k, t in tars.items()}


def save_bundle(
    tmp_path: Path, tars: dict[str, bytes], **options: int
) -> tuple[Path, dict[str, bytes]]:
    """Split layers (two threads' worth of sessions), write store and recipes to files."""
    save = DedupSaveSession(tmp_path / "work", **options)
    recipes: dict[str, bytes] = {}
    for digest, data in tars.items():
        layer = save.open_layer(digest)
        for i in range(0, len(data), 70_000):
            layer.write(data[i : i + 70_000])
        recipes[digest] = layer.finish(gzip_recipe=b"gz:" + digest.encode()).to_bytes()
    store = tmp_path / "contents.store"
    with open(store, "wb") as out:
        save.write_store(out)
    save.close()
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work" / "spill").iterdir())
    return store, recipes


def test_save_and_load_layers_byte_exact(tmp_path: Path) -> None:
    tars = layer_tars()
    store, recipe_bytes = save_bundle(tmp_path, tars, frame_size=1 << 20)
    recipes = {d: LayerRecipe.from_bytes(b, d) for d, b in recipe_bytes.items()}
    load = DedupLoadSession(store, temp_dir=tmp_path)
    load.prepare(recipes.values())
    for digest, recipe in recipes.items():
        assert recipe.gzip_recipe == b"gz:" + digest.encode()
        assert b"".join(load.rebuild(recipe)) == tars[digest]
    load.close()
    # Deduplicated: the store is smaller than the contents it serves.
    unique = {
        d: n for r in recipes.values() for d, n in zip(r.content_digests(), r.sizes, strict=True)
    }
    assert sum(unique.values()) < sum(sum(r.sizes) for r in recipes.values())
    with ContentStoreReader(store) as reader:
        assert set(reader.digests()) == set(unique)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x55
    path.write_bytes(bytes(data))


def test_corrupt_store_frame_names_the_layer(tmp_path: Path) -> None:
    tars = layer_tars()
    store, recipe_bytes = save_bundle(tmp_path, tars, frame_size=1 << 20)
    with ContentStoreReader(store) as reader:
        assert reader.index is not None
        frame = reader.index.frames[0]
    flip_byte(store, frame.offset + frame.size // 2)
    recipes = {d: LayerRecipe.from_bytes(b, d) for d, b in recipe_bytes.items()}
    load = DedupLoadSession(store, temp_dir=tmp_path)
    load.prepare(recipes.values())
    failed, loaded = [], []
    for digest, recipe in recipes.items():
        try:
            data = b"".join(load.rebuild(recipe))
        except BundleError as exc:
            assert str(exc).startswith(f"layer {digest}:")
            assert "corrupt" in str(exc)
            failed.append(digest)
            continue
        assert data == tars[digest]  # never a wrong layer
        loaded.append(digest)
    load.close()
    assert failed
    assert any(k.endswith("-empty") for k in loaded)  # layers needing nothing still load


@pytest.mark.parametrize("where", ["index", "footer", "truncated"])
def test_corrupt_store_index_names_every_layer(tmp_path: Path, where: str) -> None:
    tars = layer_tars()
    store, recipe_bytes = save_bundle(tmp_path, tars)
    size = store.stat().st_size
    if where == "index":
        with ContentStoreReader(store) as reader:
            assert reader.index is not None
            index_at = sum(f.size for f in reader.index.frames)
        flip_byte(store, index_at + 5)
    elif where == "footer":
        flip_byte(store, size - 30)
    else:
        with open(store, "r+b") as f:
            f.truncate(size - 1)
    recipes = {d: LayerRecipe.from_bytes(b, d) for d, b in recipe_bytes.items()}
    load = DedupLoadSession(store, temp_dir=tmp_path)
    load.prepare(recipes.values())
    for digest, recipe in recipes.items():
        if not len(recipe):
            assert b"".join(load.rebuild(recipe)) == tars[digest]
            continue
        with pytest.raises(BundleError, match=f"^layer {digest}: .*content store .* unreadable"):
            load.rebuild(recipe)
    load.close()


def test_rebuild_never_yields_a_complete_wrong_tar(tmp_path: Path) -> None:
    """A content that is consistent with its digest but a recipe whose tar checksum is
    wrong: the rebuild fails before the last chunk."""
    data = tar_samples.python_tar(tarfile.PAX_FORMAT)
    store, recipe_bytes = save_bundle(tmp_path, {"sha256:l": data})
    recipe = LayerRecipe.from_bytes(recipe_bytes["sha256:l"], "sha256:l")
    recipe.tar_sha256 = bytes(32)
    load = DedupLoadSession(store, temp_dir=tmp_path)
    load.prepare([recipe])
    got = bytearray()
    with pytest.raises(BundleError, match="^layer sha256:l: rebuilt tar does not match"):
        for chunk in load.rebuild(recipe):
            got += chunk
    assert len(got) < len(data)
    load.close()
