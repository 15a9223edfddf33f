"""Building the offload image from a recommendation: exact files, deterministic bytes,
relocation for `offload link`, and refusal when the sources changed."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.analyze_images import SIZES, MemorySource, content, planted_fleet
from transship.errors import ConfigError, NotFoundError
from transship.slim.analyze import AnalyzeOptions, ImageInput, analyze_images
from transship.slim.analyze.model import OffloadFile, OffloadRecommendation
from transship.slim.analyze.offload_image import (
    OffloadBuildError,
    build_offload_image,
    cleanup,
    load_recommendation,
    push_offload_image,
    relocate,
)
from transship.transports.oci_layout import OCILayoutDestination, OCILayoutSource


@pytest.fixture(scope="module")
def source() -> MemorySource:
    src = MemorySource()
    for name, image in planted_fleet().items():
        repository, tag = name.split(":")
        src.add(repository, tag, image)
    return src


@pytest.fixture(scope="module")
def recommendation(source: MemorySource) -> OffloadRecommendation:
    names = ["svc-a:1", "svc-b:1", "svc-c:1"]
    inputs = [ImageInput(n, source, *n.split(":")) for n in names]
    report = analyze_images(inputs, AnalyzeOptions())
    assert report.offload is not None
    return report.offload


def _tar_of(layer_gz: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_gz))) as tar:
        for member in tar:
            data = tar.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            out[member.name] = (member, data)
    return out


def test_layer_holds_exactly_the_recommended_files(
    source: MemorySource, recommendation: OffloadRecommendation
) -> None:
    image, spool = build_offload_image(recommendation, lambda where: source)
    try:
        layer_bytes = (spool / "layer.tar.gz").read_bytes()
    finally:
        cleanup(spool)
    assert image.layer.digest == "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    assert image.layer.size == len(layer_bytes)
    tar_bytes = gzip.decompress(layer_bytes)
    assert image.diff_id == "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    assert layer_bytes[4:8] == b"\0\0\0\0"  # gzip mtime 0
    members = _tar_of(layer_bytes)
    assert list(members) == sorted(members)
    assert {n for n, (m, _) in members.items() if m.isdir()} == {"app", "app/lib"}
    files = {n: data for n, (m, data) in members.items() if m.isfile()}
    assert files == {
        "app/lib/guava.jar": content("guava"),
        "app/lib/jackson.jar": content("jackson"),
        "app/lib/netty.jar": content("netty"),
    }
    assert all(
        m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m, _ in members.values()
    )
    config = json.loads(image.manifest.data)["config"]
    assert config["digest"] == image.config.digest
    assert image.content_bytes == SIZES["guava"] + SIZES["jackson"] + SIZES["netty"]


def test_same_recommendation_same_digests(
    source: MemorySource, recommendation: OffloadRecommendation
) -> None:
    first, spool1 = build_offload_image(recommendation, lambda where: source)
    second, spool2 = build_offload_image(recommendation, lambda where: source)
    cleanup(spool1)
    cleanup(spool2)
    assert first.manifest.digest == second.manifest.digest
    assert first.layer == second.layer and first.config == second.config


def test_shared_dir_relocates_below_it() -> None:
    files = [
        OffloadFile(
            path=p,
            size=1,
            sha256="sha256:" + "0" * 64,
            mode=0o644,
            images=[],
            source_image="x",
            source_layer="y",
        )
        for p in ("app/lib/a.jar", "app/lib/sub/b.jar")
    ]
    assert relocate(files, None) == {
        "app/lib/a.jar": "app/lib/a.jar",
        "app/lib/sub/b.jar": "app/lib/sub/b.jar",
    }
    assert relocate(files, "/app/lib_shared/") == {
        "app/lib/a.jar": "app/lib_shared/a.jar",
        "app/lib/sub/b.jar": "app/lib_shared/sub/b.jar",
    }


def test_push_to_an_oci_layout_and_read_back(
    source: MemorySource, recommendation: OffloadRecommendation, tmp_path: Path
) -> None:
    image, spool = build_offload_image(
        recommendation, lambda where: source, shared_dir="/app/lib_shared"
    )
    try:
        destination = OCILayoutDestination(tmp_path / "out", None)
        push_offload_image(image, spool, destination, "team/offload", "1")
    finally:
        cleanup(spool)
    assert not spool.exists()
    back = OCILayoutSource(tmp_path / "out")
    report = analyze_images([ImageInput("offload", back, "team/offload", "1")])
    assert not report.errors, report.errors
    analyzed = report.images[0]
    assert analyzed.manifest_digest == image.manifest.digest
    assert {f.path for f in analyzed.biggest_files} == {
        "app/lib_shared/guava.jar",
        "app/lib_shared/jackson.jar",
        "app/lib_shared/netty.jar",
    }
    assert analyzed.layers[0].created_by.startswith("transship offload build")  # type: ignore[union-attr]


def test_changed_sources_are_refused(
    source: MemorySource, recommendation: OffloadRecommendation
) -> None:
    tampered = recommendation.model_copy(deep=True)
    tampered.files[0].sha256 = "sha256:" + "1" * 64
    with pytest.raises(OffloadBuildError, match="not found in their source layers"):
        build_offload_image(tampered, lambda where: source)
    gone = recommendation.model_copy(deep=True)
    gone.files[0].source_layer = "sha256:" + "2" * 64
    with pytest.raises(NotFoundError, match="run analyze again"):
        build_offload_image(gone, lambda where: source)


def test_loading_recommendations(recommendation: OffloadRecommendation, tmp_path: Path) -> None:
    alone = tmp_path / "offload.json"
    alone.write_text(recommendation.model_dump_json())
    assert load_recommendation(alone) == recommendation
    for text, words in (("not json", "not JSON"), ('{"images": []}', "not an analyze report")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=words):
            load_recommendation(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_recommendation(tmp_path / "missing.json")
