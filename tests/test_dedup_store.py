"""The content store: each distinct content once, similar ones together, read back exactly;
and the whole save → load path of layers through the dedup session."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest
import zstandard

from tests.conftest import SHARED_LAYERS_DIR
from tests.support import tar_samples
from transship.dedup.content_store import (
    ContentCollector,
    ContentStoreReader,
    StoreIndex,
    _ReadAhead,
)
from transship.dedup.layer_recipe import LayerRecipe
from transship.dedup.session import DedupLoadSession, DedupSaveSession
from transship.dedup.similarity import zip_entry_keys
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


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def test_store_order_chains_similar_zips_and_sorts_the_rest_by_path(tmp_path: Path) -> None:
    classes = {f"com/example/C{i}.class": os.urandom(2000) for i in range(40)}
    library_v1 = make_zip(classes)
    library_v2 = make_zip({**classes, "com/example/C3.class": os.urandom(2000)})
    unrelated = [make_zip({f"x/D{i}.class": os.urandom(2000) for i in range(30)}) for _ in range(4)]
    contents = {
        "opt/app/lib/zzz-library-1.0.jar": library_v1,
        "etc/b/config.txt": b"b" * 500,
        "opt/other/unrelated-0.jar": unrelated[0],
        "etc/a/config.txt": b"a" * 500,
        "opt/other/unrelated-1.jar": unrelated[1],
        "usr/lib/libz.so.1": os.urandom(3000),
        "opt/other/unrelated-2.jar": unrelated[2],
        "app/libs/renamed-aaa.jar": library_v2,  # same library, another name and place
        "opt/other/unrelated-3.jar": unrelated[3],
        "etc/a/not-a-zip.jar": b"jar by name only",
    }
    collector = ContentCollector(tmp_path / "spill")
    for name, data in contents.items():
        add(collector, name, data)
    index = collector.write_store(io.BytesIO(), level=1, threads=0)
    by_digest = {sha(d): n for n, d in contents.items()}
    order = [by_digest[d] for d in index]
    pos = {name: i for i, name in enumerate(order)}
    assert abs(pos["opt/app/lib/zzz-library-1.0.jar"] - pos["app/libs/renamed-aaa.jar"]) == 1
    zips = [n for n in order if contents[n].startswith(b"PK")]
    assert order[: len(zips)] == zips  # archives first, the rest after, by path
    rest = order[len(zips) :]
    assert rest == sorted(rest)
    assert "etc/a/not-a-zip.jar" in rest


def test_zip_entry_keys_reads_the_central_directory() -> None:
    data = make_zip({"a": b"1" * 100, "b": b"2" * 50})
    keys = zip_entry_keys(lambda off, n: data[off : off + n], len(data))
    assert [k >> 32 for k in keys] == [zlib.crc32(b"1" * 100), zlib.crc32(b"2" * 50)]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert [k & 0xFFFFFFFF for k in keys] == [i.compress_size for i in z.infolist()]
    assert len(zip_entry_keys(lambda off, n: b"PK\x03\x04junk"[off : off + n], 8)) == 0


def test_store_splits_frames_and_reads_one_frame(tmp_path: Path) -> None:
    collector = ContentCollector(tmp_path / "spill")
    contents = {f"dir{i}/file-{i}.{ext}": os.urandom(3000) for i in range(12) for ext in ("a", "b")}
    for name, data in contents.items():
        add(collector, name, data)
    out = io.BytesIO()
    index = collector.write_store(out, level=3, frame_size=10_000, threads=0)
    assert len(index.frames) == 6  # 24 contents, 4 of 3000 bytes reach 10 000 bytes
    names = [next(n for n, d in contents.items() if sha(d) == digest) for digest in index]
    assert names == sorted(contents)  # no zips here: by path
    # Every frame is a standalone zstd frame that knows its size.
    raw = out.getvalue()
    for frame in index.frames:
        data = zstandard.ZstdDecompressor().decompress(
            raw[frame.offset : frame.offset + frame.size]
        )
        assert len(data) == frame.plain_size
    store = tmp_path / "store"
    store.write_bytes(raw)
    with ContentStoreReader(store, tmp_path) as reader:
        one = sha(contents["dir5/file-5.b"])
        assert reader.materialize([one]) == {one}
        assert len(list(tmp_path.glob("transship-store-*/frame-*"))) == 1  # only its frame
        assert b"".join(reader.read_content(one, 3000)) == contents["dir5/file-5.b"]
        other = sha(contents["dir0/file-0.a"])
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


def test_recipe_without_the_tar_checksum_still_checks_the_size(tmp_path: Path) -> None:
    """A gzip layer's recipe leaves the tar's sha256 out (the layer digest covers it):
    it survives the round trip as None, the rebuild skips that check, and a rebuild of
    the wrong length still fails."""
    data = tar_samples.python_tar(tarfile.PAX_FORMAT)
    store, recipe_bytes = save_bundle(tmp_path, {"sha256:l": data})
    recipe = LayerRecipe.from_bytes(recipe_bytes["sha256:l"], "sha256:l")
    recipe.tar_sha256 = None
    recipe = LayerRecipe.from_bytes(recipe.to_bytes(), "sha256:l")
    assert recipe.tar_sha256 is None
    load = DedupLoadSession(store, temp_dir=tmp_path)
    load.prepare([recipe])
    assert b"".join(load.rebuild(recipe)) == data
    recipe.tar_size += 1
    with pytest.raises(BundleError, match="^layer sha256:l: rebuilt tar has"):
        b"".join(load.rebuild(recipe))
    load.close()


def test_store_is_not_written_while_a_layer_is_being_split(tmp_path: Path) -> None:
    collector = ContentCollector(tmp_path)
    session = collector.session()
    with pytest.raises(BundleError, match="1 layer\\(s\\) still being split"):
        collector.write_store(io.BytesIO())
    session.close()
    session.close()  # twice is harmless
    collector.write_store(io.BytesIO())


def test_missing_store_file_is_reported_per_layer(tmp_path: Path) -> None:
    tars = layer_tars()
    store, recipe_bytes = save_bundle(tmp_path, tars)
    store.unlink()
    load = DedupLoadSession(store, temp_dir=tmp_path)
    recipes = [LayerRecipe.from_bytes(b, d) for d, b in recipe_bytes.items()]
    load.prepare(recipes)
    recipe = next(r for r in recipes if len(r))
    with pytest.raises(BundleError, match=f"^layer {recipe.layer_digest}: .* is missing"):
        load.check(recipe)
    load.close()


def test_read_ahead_gives_the_stream_in_order_then_its_error(tmp_path: Path) -> None:
    data = os.urandom(300_000)

    class Failing(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            piece = super().read(n)
            if not piece:
                raise OSError("disk gone")
            return piece

    with _ReadAhead(io.BytesIO(data), 7_000) as reader:
        got = b"".join(iter(lambda: reader.read(5_000), b""))
    assert got == data
    with _ReadAhead(Failing(data), 7_000) as reader:
        got = bytearray()
        with pytest.raises(OSError, match="disk gone"):
            while True:
                got += reader.read(9_000)
    assert bytes(got) == data


def test_read_ahead_stops_its_thread_when_left_early() -> None:
    reader = _ReadAhead(io.BytesIO(bytes(10_000_000)), 1_000)  # far more than it queues
    with reader:
        assert reader.read(10) == bytes(10)
    assert not reader._thread.is_alive()
