"""Analysis of the planted fleet through a Source: exactly the planted waste, duplicates,
sharing and offload bytes (expected figures are sums of the planted sizes)."""

from __future__ import annotations

import pytest

from tests.analyze_images import (
    SIZES,
    File,
    MemorySource,
    Step,
    build_image,
    planted_fleet,
    sha256_hex,
    svc_a,
)
from transship.oci.descriptor import Platform
from transship.slim.analyze import AnalysisReport, AnalyzeOptions, ImageInput, analyze_images

S = SIZES
BASE_CONTENT = S["sh"] + S["cfg-base"] + S["conf-a"] + S["conf-b"] + 2 * S["copyright"]
JARS = S["guava"] + S["jackson"] + S["netty"]


@pytest.fixture(scope="module")
def source() -> MemorySource:
    src = MemorySource()
    for name, image in planted_fleet().items():
        repository, tag = name.split(":")
        src.add(repository, tag, image)
    return src


def run(source: MemorySource, names: list[str], **options: object) -> AnalysisReport:
    inputs = [ImageInput(n, source, *n.split(":")) for n in names]
    return analyze_images(inputs, AnalyzeOptions(**options))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def release(source: MemorySource) -> AnalysisReport:
    return run(source, ["svc-a:1", "svc-b:1", "svc-c:1"])


def test_layers_sizes_and_history(release: AnalysisReport) -> None:
    a = release.images[0]
    built = planted_fleet()["svc-a:1"]
    assert [layer.digest for layer in a.layers] == built.layer_digests
    assert [layer.compressed_size for layer in a.layers] == built.layer_sizes
    assert a.compressed_size == sum(built.layer_sizes)
    assert [layer.diff_id for layer in a.layers] == built.diff_ids
    # Empty-layer steps (ENV, CMD) are skipped when matching history to layers.
    assert [layer.created_by for layer in a.layers] == [
        "ADD rootfs.tar /",
        "RUN apt-get update && apt-get install -y libbig",
        "RUN rm -rf /var/lib/apt/lists",
        "COPY lib/ /app/lib/",
        "COPY app.jar /app/app.jar",
    ]
    assert [layer.content_bytes for layer in a.layers] == [
        BASE_CONTENT,
        S["libbig"] + S["lists1"] + S["lists2"],
        0,
        JARS + S["a-only"],
        S["app-a"] + S["cfg-a"],
    ]
    assert [layer.file_count for layer in a.layers] == [7, 3, 0, 4, 2]
    assert a.manifest_digest == "sha256:" + sha256_hex(built.manifest)
    assert a.platform == "linux/amd64"


def test_waste_is_exactly_what_was_planted(release: AnalysisReport) -> None:
    a, b, c = release.images
    assert a.waste.wasted_bytes == S["lists1"] + S["lists2"] + S["cfg-base"]
    assert {(w.path, w.size, w.added_by, w.removed_by, w.reason) for w in a.waste.files} == {
        ("var/lib/apt/lists/index1", S["lists1"], 1, 2, "deleted"),
        ("var/lib/apt/lists/index2", S["lists2"], 1, 2, "deleted"),
        ("etc/config", S["cfg-base"], 0, 4, "overwritten"),
    }
    assert [layer.wasted_bytes for layer in a.layers] == [
        S["cfg-base"],
        S["lists1"] + S["lists2"],
        0,
        0,
        0,
    ]
    assert b.waste.wasted_bytes == S["conf-a"] + S["conf-b"]
    assert {w.reason for w in b.waste.files} == {"hidden_by_opaque"}
    assert c.waste.wasted_bytes == 0 and c.waste.efficiency == 1.0
    for image in (a, b, c):
        w = image.waste
        assert w.shipped_bytes == sum(layer.content_bytes for layer in image.layers)
        assert w.final_bytes + w.wasted_bytes == w.shipped_bytes
        assert w.efficiency == pytest.approx(w.final_bytes / w.shipped_bytes)


def test_biggest_files_and_directories(release: AnalysisReport) -> None:
    a = release.images[0]
    assert [(f.path, f.size, f.layer) for f in a.biggest_files[:3]] == [
        ("usr/lib/libbig.so", S["libbig"], 1),
        ("app/lib/netty.jar", S["netty"], 3),
        ("app/lib/guava.jar", S["guava"], 3),
    ]
    dirs = {d.path: (d.size, d.file_count) for d in a.biggest_dirs}
    app_bytes = JARS + S["a-only"] + S["app-a"] + S["conf-a"] + S["conf-b"]
    assert dirs["app"] == (app_bytes, 7)
    assert dirs["app/lib"] == (JARS + S["a-only"], 4)
    assert a.biggest_dirs[0].path == "app"
    assert a.file_count == 13  # the deleted lists are gone; empty.conf counts


def test_duplicates_within_each_image(release: AnalysisReport) -> None:
    a, b, c = release.images
    for image in (a, b):
        assert image.duplicates.redundant_bytes == S["copyright"]
        assert image.duplicates.group_count == 1
    assert c.duplicates.redundant_bytes == S["copyright"] + S["guava"]
    guava = c.duplicates.groups[0]
    assert guava.size == S["guava"] and guava.redundant_bytes == S["guava"]
    assert {(x.path, x.layer_index) for x in guava.copies} == {
        ("app/lib/guava.jar", 1),
        ("app/app-copy.jar", 2),
    }


def test_sharing_and_duplicates_across_images(
    release: AnalysisReport, source: MemorySource
) -> None:
    fleet = release.fleet
    assert fleet is not None and fleet.image_count == 3
    # svc-c's base is the same tar compressed with zstd: same diff_id, so the same layer.
    assert len(fleet.shared_layers) == 1
    assert set(fleet.shared_layers[0].images) == {"svc-a:1", "svc-b:1", "svc-c:1"}
    images = release.images
    assert fleet.compressed_total == sum(i.compressed_size for i in images)
    blob_sizes = {layer.digest: layer.compressed_size for i in images for layer in i.layers}
    assert fleet.compressed_unique == sum(blob_sizes.values())
    # guava x4 (a, b, c, c's copy), netty x3 (one renamed), jackson x3, copyright x2 once.
    assert fleet.duplicates.redundant_bytes == (
        3 * S["guava"] + 2 * S["netty"] + 2 * S["jackson"] + S["copyright"]
    )
    top = fleet.duplicates.groups[0]
    assert top.size == S["guava"] and len(top.copies) == 4
    assert {tuple(c.images) for c in top.copies} == {("svc-a:1",), ("svc-b:1",), ("svc-c:1",)}


def test_each_distinct_layer_is_read_once(source: MemorySource) -> None:
    source.blob_reads.clear()
    report = run(source, ["svc-a:1", "svc-b:1", "svc-c:1", "svc-a:2"])
    assert not report.errors
    layer_digests = {layer.digest for i in report.images for layer in i.layers}
    diff_ids = {layer.diff_id for i in report.images for layer in i.layers}
    layer_reads = {d: n for d, n in source.blob_reads.items() if d in layer_digests}
    assert all(n == 1 for n in layer_reads.values())
    assert len(layer_reads) == len(diff_ids) < len(layer_digests)
    zstd_base = planted_fleet()["svc-c:1"].layer_digests[0]
    assert zstd_base not in source.blob_reads


def test_offload_recommendation_exact(release: AnalysisReport) -> None:
    offload = release.offload
    assert offload is not None and offload.min_images == 2
    # etc/config (svc-a only) and the renamed netty are not candidates; a-only is in one image.
    assert {(f.path, f.size, tuple(f.images)) for f in offload.files} == {
        ("app/lib/guava.jar", S["guava"], ("svc-a:1", "svc-b:1", "svc-c:1")),
        ("app/lib/jackson.jar", S["jackson"], ("svc-a:1", "svc-b:1", "svc-c:1")),
        ("app/lib/netty.jar", S["netty"], ("svc-a:1", "svc-b:1")),
    }
    assert offload.layer_bytes == JARS
    assert [d.path for d in offload.directories] == ["app", "app/lib"]
    per_image = {p.image: p for p in offload.per_image}
    assert per_image["svc-a:1"].saved_bytes == JARS
    assert per_image["svc-b:1"].saved_bytes == JARS
    assert per_image["svc-c:1"].saved_bytes == S["guava"] + S["jackson"]
    assert (per_image["svc-c:1"].foreign_files, per_image["svc-c:1"].foreign_bytes) == (
        1,
        S["netty"],
    )
    saved = 3 * S["guava"] + 3 * S["jackson"] + 2 * S["netty"]
    math = offload.content
    assert math.apps == 3 and math.releases == 10
    assert math.base_bytes == BASE_CONTENT
    own = sum(i.waste.shipped_bytes - BASE_CONTENT for i in release.images)
    assert math.app_bytes == own
    assert math.offload_bytes == JARS
    assert math.app_bytes_after == own - saved
    assert math.saved_per_release == saved - JARS
    assert math.saved_total == 10 * saved - JARS
    assert math.total_before == BASE_CONTENT + 10 * own
    est = offload.compressed_estimate
    assert est.base_bytes == release.images[0].layers[0].compressed_size
    assert est.saved_total > 0 and abs(est.offload_bytes - JARS) < JARS * 0.05


def test_offload_threshold_and_conflicts(source: MemorySource) -> None:
    report = run(source, ["svc-a:1", "svc-b:1", "svc-c:1"], min_images=3)
    assert report.offload is not None
    assert [f.path for f in report.offload.files] == ["app/lib/guava.jar", "app/lib/jackson.jar"]
    # With both versions of svc-a, etc/config (1200 B, in svc-a's own layers twice) qualifies
    # by count but would shadow the base's etc/config in svc-b and svc-c: never offloaded.
    both = run(source, ["svc-a:1", "svc-a:2", "svc-b:1"])
    assert both.offload is not None
    paths = {f.path for f in both.offload.files}
    assert "etc/config" not in paths
    assert "app/lib/a-only.jar" in paths  # in svc-a:1 and svc-a:2, own layers


def test_hot_cold_between_versions(source: MemorySource) -> None:
    report = run(source, ["svc-a:1", "svc-a:2"], compare=("svc-a:1", "svc-a:2"))
    cmp = report.compare
    assert cmp is not None
    assert [layer.status for layer in cmp.layers] == ["same", "same", "same", "changed", "changed"]
    assert cmp.hot_bytes == S["jackson-2"] + S["app-a2"]
    assert cmp.hot_file_count == 2
    assert cmp.removed_bytes == S["jackson"]
    assert cmp.cold_bytes_in_changed_layers == S["guava"] + S["netty"] + S["a-only"] + S["cfg-a"]
    new = report.images[1]
    assert (
        cmp.update_compressed_bytes == new.layers[3].compressed_size + new.layers[4].compressed_size
    )
    assert cmp.cold_bytes + cmp.hot_bytes == new.waste.final_bytes
    assert {(f.path, f.status) for f in cmp.changed_files} == {
        ("app/lib/jackson-2.jar", "added"),
        ("app/lib/jackson.jar", "removed"),
        ("app/app.jar", "changed"),
    }


def test_missing_image_is_reported_and_others_go_on(source: MemorySource) -> None:
    report = run(source, ["svc-a:1", "svc-x:1", "svc-b:1"])
    assert [i.name for i in report.images] == ["svc-a:1", "svc-b:1"]
    assert len(report.errors) == 1
    assert report.errors[0].image == "svc-x:1"
    assert "not found" in report.errors[0].message


def test_missing_layer_fails_only_its_images(source: MemorySource) -> None:
    broken = MemorySource()
    broken.blobs.update(source.blobs)
    broken.manifests.update(source.manifests)
    del broken.blobs[planted_fleet()["svc-b:1"].layer_digests[1]]
    report = run(broken, ["svc-a:1", "svc-b:1"])
    assert [i.name for i in report.images] == ["svc-a:1"]
    assert report.errors[0].image == "svc-b:1" and "not found" in report.errors[0].message


def test_multi_arch_index_picks_the_platform() -> None:
    src = MemorySource()
    amd = svc_a(1)
    arm = build_image([Step("ADD arm", [File("arm-only", b"x" * 123)])], architecture="arm64")
    src.add_index("multi", "1", {"linux/amd64": amd, "linux/arm64": arm})
    inputs = [ImageInput("multi:1", src, "multi", "1")]
    default = analyze_images(inputs)
    assert default.images[0].manifest_digest == amd.digest
    chosen = analyze_images(inputs, AnalyzeOptions(platform=Platform("linux", "arm64")))
    assert chosen.images[0].manifest_digest == arm.digest
    assert chosen.images[0].waste.shipped_bytes == 123
    missing = analyze_images(inputs, AnalyzeOptions(platform=Platform("linux", "s390x")))
    assert "linux/amd64" in missing.errors[0].message and "--platform" in missing.errors[0].message


def test_report_round_trips_as_json(release: AnalysisReport) -> None:
    again = AnalysisReport.model_validate_json(release.model_dump_json())
    assert again == release


def test_history_missing_or_mismatched_leaves_gaps() -> None:
    src = MemorySource()
    image = build_image(
        [Step("a", [File("x", b"1")]), Step("b", [File("y", b"2")])], write_history=False
    )
    src.add("nohist", "1", image)
    report = analyze_images([ImageInput("nohist:1", src, "nohist", "1")])
    assert [layer.created_by for layer in report.images[0].layers] == [None, None]


def test_progress_reports_each_distinct_layer_once(source: MemorySource) -> None:
    from transship.slim.analyze import LayerScanned

    events: list[LayerScanned] = []
    inputs = [ImageInput(n, source, *n.split(":")) for n in ["svc-a:1", "svc-a:2", "svc-b:1"]]
    report = analyze_images(inputs, AnalyzeOptions(workers=3), events.append)
    distinct = {layer.diff_id for i in report.images for layer in i.layers}
    assert len(events) == len(distinct)
    assert sorted(e.done for e in events) == list(range(1, len(distinct) + 1))
    assert all(e.total == len(distinct) and e.error is None for e in events)
