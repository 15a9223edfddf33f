"""Tests of the bundle benchmark's pure helpers (run: python -m pytest bench/tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bundle_metrics import (  # noqa: E402
    changed_digests,
    decompressor_for,
    evaluate_targets,
    image_blob_sizes,
    layout_ref_digests,
    markdown_table,
    new_blob_bytes,
    new_blobs,
    unique_layers,
)


def _layer(digest: str, size: int, diff_id: str | None = None) -> dict:
    return {"digest": digest, "size": size, "diff_id": diff_id or f"diff-{digest}"}


def _image(config: str, *layers: dict) -> dict:
    return {"config_digest": config, "layers": list(layers)}


CONFIGS = {"c1": 100, "c2": 200, "c3": 300}


def test_new_blob_bytes_counts_only_blobs_the_old_images_lack_once_each() -> None:
    os_layer = _layer("os", 1000)
    old = [_image("c1", os_layer, _layer("lib-a", 50))]
    new = [
        _image("c2", os_layer, _layer("lib-a", 50), _layer("app-2", 7)),
        _image("c3", os_layer, _layer("app-2", 7), _layer("lib-b", 11)),
    ]
    # configs c2 and c3, app-2 (shared by both new images: once), lib-b
    assert new_blob_bytes(old, new, CONFIGS) == 200 + 300 + 7 + 11
    assert new_blobs(old, new, CONFIGS) == {"c2": 200, "c3": 300, "app-2": 7, "lib-b": 11}


def test_new_blob_bytes_a_recompressed_layer_is_new_even_with_the_same_diff_id() -> None:
    old = [_image("c1", _layer("os-go", 1000, diff_id="os-tar"))]
    new = [_image("c1", _layer("os-zlib", 990, diff_id="os-tar"))]
    assert new_blob_bytes(old, new, CONFIGS) == 990
    assert new_blob_bytes(new, new, CONFIGS) == 0


def test_image_blob_sizes_needs_the_config_size() -> None:
    image = _image("c1", _layer("a", 5))
    assert image_blob_sizes(image, CONFIGS) == {"c1": 100, "a": 5}
    with pytest.raises(KeyError):
        image_blob_sizes(_image("unknown", _layer("a", 5)), CONFIGS)


def test_unique_layers_keeps_the_first_blob_of_each_tar() -> None:
    first = _layer("os-go", 10, diff_id="os")
    images = [
        _image("c1", first, _layer("app", 3)),
        _image("c2", _layer("os-zlib", 11, diff_id="os"), _layer("app", 3)),
    ]
    assert [layer["digest"] for layer in unique_layers(images)] == ["os-go", "app"]


def test_decompressor_for_reads_the_magic_bytes() -> None:
    assert decompressor_for(b"\x1f\x8b\x08\x00") == ["gzip", "-dc"]
    assert decompressor_for(b"\x28\xb5\x2f\xfd") == ["zstd", "-dc"]
    assert decompressor_for(b"ustar") == ["cat"]


def test_layout_ref_digests_and_changed_digests() -> None:
    index = {
        "manifests": [
            {"digest": "sha256:old", "mediaType": "x"},  # untagged: ignored
            {"digest": "sha256:a", "annotations": {"org.opencontainers.image.ref.name": "a-v1"}},
            {"digest": "sha256:b2", "annotations": {"org.opencontainers.image.ref.name": "b-v1"}},
        ]
    }
    refs = layout_ref_digests(index)
    assert refs == {"a-v1": "sha256:a", "b-v1": "sha256:b2"}
    expected = {"a:v1": "sha256:a", "b:v1": "sha256:b", "c:v1": "sha256:c"}
    actual = {"a:v1": refs["a-v1"], "b:v1": refs["b-v1"], "c:v1": None}
    assert changed_digests(expected, actual) == ["b:v1", "c:v1"]


def _targets(**numbers: float | None) -> dict[str, bool | None]:
    return {t.goal: t.met for t in evaluate_targets(numbers)}


def test_targets_are_judged_at_their_limits() -> None:
    met = _targets(
        raw_size=100, archive_size=300,  # exactly 1/3
        raw_save_s=10, archive_save_s=19.9,  # 1.99x faster: not enough
        raw_load_s=5, oci_load_s=5,  # equal: no slower
        incr_size=1001, new_v2_bytes=1000,  # one byte over
        raw_peak_rss=149e6, dedup_peak_rss=300e6,  # dedup exactly 300 MB: not below
        dedup_size=55, dedup_save_s=25, dedup_load_s=10.1, dedup_incr_size=301,  # 0.3007x
    )  # fmt: skip
    assert met == {
        "full bundle ≤ 1/3 of the docker-save|gzip total": True,
        "save ≥ 2x faster than docker-save|gzip": False,
        "load no slower than skopeo from an OCI layout": True,
        "incremental bundle ≤ the blobs new in v2": False,
        "peak RSS < 150 MB (save and load)": True,
        "dedup bundle ≤ 0.55x plain": True,
        "dedup save ≤ 2.5x plain save time": True,
        "dedup load ≤ 2x plain load time": False,
        "dedup peak RSS < 300 MB": False,
        "file-level incremental ≤ 0.3x layer-level": False,
    }


def test_targets_without_numbers_are_not_measured() -> None:
    targets = evaluate_targets({"raw_size": 100, "archive_size": None, "raw_save_s": 0})
    assert all(t.met is None and t.measured == "not measured" for t in targets)


def test_markdown_table_pads_and_escapes_pipes() -> None:
    text = markdown_table(["a", "bb"], [["x|y", 1], ["long cell", ""]])
    lines = text.splitlines()
    assert lines[0] == "| a         | bb |"
    assert lines[2] == "| x\\|y      | 1  |"
    assert len({len(line) for line in lines}) == 1
    with pytest.raises(ValueError):
        markdown_table(["a"], [["1", "2"]])


def test_incremental_target_says_how_much_of_the_bundle_is_blobs() -> None:
    (target,) = [
        t
        for t in evaluate_targets(
            {"incr_size": 1010, "incr_blob_bytes": 1000, "new_v2_bytes": 1000}
        )
        if t.goal.startswith("incremental")
    ]
    assert target.met is False
    assert target.measured.startswith("1.0100x (the blobs it holds: 1.0000x")
