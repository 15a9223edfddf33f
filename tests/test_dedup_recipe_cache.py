"""Checked gzip recipes remembered across saves (transship.dedup.recipe_cache)."""

from __future__ import annotations

import gzip
import io

import pytest

pytest.importorskip("transship.gzip_rebuild")

from transship.dedup.recipe_cache import RecipeCache, default_recipe_dir  # noqa: E402
from transship.gzip_rebuild import analyze  # noqa: E402
from transship.oci.digest import digest_bytes  # noqa: E402


def checked_recipe(seed: int = 1, transcript: bool = False):
    plain = b"".join(f"line {i} of layer {seed}\n".encode() for i in range(20000))
    blob = gzip.compress(plain, compresslevel=6, mtime=0)
    options = {"check": False, "transcript": True} if transcript else {}
    return digest_bytes(blob), len(blob), analyze(io.BytesIO(blob), lambda _: None, **options)


def test_a_checked_recipe_comes_back_for_its_digest_and_size(tmp_path):
    digest, size, recipe = checked_recipe()
    cache = RecipeCache(tmp_path / "recipes")
    assert cache.get(digest, size, transcript=False) is None
    cache.put(digest, recipe)
    assert cache.get(digest, size, transcript=False) == recipe
    assert cache.hits == 1
    assert cache.get(digest, size + 1, transcript=False) is None  # not this blob
    other, other_size, _ = checked_recipe(2)
    assert cache.get(other, other_size, transcript=False) is None


def test_each_layer_keeps_a_recipe_of_each_kind(tmp_path):
    """A balanced save wants the transcript, a max save the search: neither replaces
    the other."""
    digest, size, searched = checked_recipe()
    _, _, transcribed = checked_recipe(transcript=True)
    assert searched.transcript_size == 0 < transcribed.transcript_size
    cache = RecipeCache(tmp_path)
    cache.put(digest, transcribed)
    assert cache.get(digest, size, transcript=False) is None
    cache.put(digest, searched)
    assert cache.get(digest, size, transcript=True) == transcribed
    assert cache.get(digest, size, transcript=False) == searched


def test_a_damaged_recipe_file_is_a_miss(tmp_path):
    digest, size, recipe = checked_recipe()
    cache = RecipeCache(tmp_path)
    cache.put(digest, recipe)
    path = tmp_path / digest.split(":", 1)[1]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    assert cache.get(digest, size, transcript=False) is None


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path):
    digest, size, recipe = checked_recipe()
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cache = RecipeCache(blocked / "recipes")
    cache.put(digest, recipe)  # no error: the save goes on without it
    assert cache.get(digest, size, transcript=False) is None


def test_the_default_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_recipe_dir() == tmp_path / "transship" / "gzip-recipes"
