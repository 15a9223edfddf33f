"""Layer recipes: serialization round trip, and every corruption found and named."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.support import tar_samples
from transship.dedup.layer_codec import split_layer
from transship.dedup.layer_recipe import LayerRecipe
from transship.errors import BundleError

LAYER = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def layer_tar() -> bytes:
    return tar_samples.python_tar(tarfile.PAX_FORMAT)


@pytest.fixture
def recipe_bytes(layer_tar: bytes) -> bytes:
    recipe = split_layer(LAYER, [layer_tar])
    recipe.gzip_recipe = b"opaque gzip rebuild data \x00\xff"
    return recipe.to_bytes()


def test_round_trip_keeps_everything(layer_tar: bytes, recipe_bytes: bytes) -> None:
    original = split_layer(LAYER, [layer_tar])
    again = LayerRecipe.from_bytes(recipe_bytes, LAYER)
    assert again.gzip_recipe == b"opaque gzip rebuild data \x00\xff"
    assert list(again.refs()) == list(original.refs())
    assert again.tar_size == len(layer_tar)
    assert again.skeleton_size == original.skeleton_size
    with again.open_skeleton() as skeleton:
        skeleton_bytes = skeleton.read()
    assert len(skeleton_bytes) == again.skeleton_size
    # Skeleton plus contents in order is the tar.
    assert skeleton_bytes.startswith(layer_tar[: again.skeleton_before[0]])
    assert again.skeleton_size + sum(again.sizes) == len(layer_tar)


def test_write_reports_its_size(layer_tar: bytes) -> None:
    recipe = split_layer(LAYER, [layer_tar])
    out = io.BytesIO()
    assert recipe.write(out) == len(out.getvalue())


def test_recipe_of_another_layer_is_refused(recipe_bytes: bytes) -> None:
    other = "sha256:" + "cd" * 32
    with pytest.raises(BundleError, match=f"^layer {other}: .*belongs to layer {LAYER}"):
        LayerRecipe.from_bytes(recipe_bytes, other)


def test_every_flipped_byte_is_detected(recipe_bytes: bytes) -> None:
    """Flip each byte in turn (stride over the body): always a BundleError naming the layer."""
    positions = sorted(set(range(0, len(recipe_bytes), 7)) | {len(recipe_bytes) - 1})
    for pos in positions:
        damaged = bytearray(recipe_bytes)
        damaged[pos] ^= 0x01
        with pytest.raises(BundleError, match=f"^layer {LAYER}: recipe is corrupt"):
            LayerRecipe.from_bytes(bytes(damaged), LAYER)


@pytest.mark.parametrize("cut", [0, 5, 12, 40, -1, -100])
def test_truncated_recipe_is_detected(recipe_bytes: bytes, cut: int) -> None:
    with pytest.raises(BundleError, match=f"^layer {LAYER}: recipe is corrupt"):
        LayerRecipe.from_bytes(recipe_bytes[:cut], LAYER)


def test_section_checksums_name_the_section(layer_tar: bytes) -> None:
    recipe = split_layer(LAYER, [layer_tar])
    data = bytearray(recipe.to_bytes())
    # The skeleton is the last section: damage its last byte.
    data[-1] ^= 0xFF
    with pytest.raises(BundleError, match="skeleton checksum mismatch"):
        LayerRecipe.from_bytes(bytes(data), LAYER)


def test_empty_layer_recipe() -> None:
    recipe = split_layer(LAYER, [])
    again = LayerRecipe.from_bytes(recipe.to_bytes(), LAYER)
    assert again.tar_size == 0 and len(again) == 0
