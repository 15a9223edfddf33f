"""`transship analyze` and `transship offload build` against a real registry: the planted
fleet is pushed with skopeo, analyzed through the command line, and the offload image the
recommendation leads to is built, pushed, put under the services and analyzed again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.analyze_images import (
    SIZES,
    BuiltImage,
    RawLayer,
    planted_fleet,
    sha256_hex,
    svc_a,
    svc_b,
    svc_c,
    write_oci_layout,
)
from tests.conftest import require_tools
from tests.support.registry import RegistryServer
from transship.cli.main import app

S = SIZES
JARS = S["guava"] + S["jackson"] + S["netty"]
REPO = "analyze-test"


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def transship(*args: str, lang: str = "en") -> Ran:
    """The command line, in this process (the real entry point is checked once, below)."""
    runner = CliRunner()
    result = runner.invoke(app, list(args), env={"TRANSSHIP_LANG": lang, "COLUMNS": "160"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def transship_process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRANSSHIP_LANG": "en", "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "transship", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def push(image: BuiltImage, registry: RegistryServer, destination: str, workdir: Path) -> None:
    layout = write_oci_layout(workdir / destination.replace("/", "_").replace(":", "_"), "t", image)
    result = subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--preserve-digests",
            *registry.skopeo_flags("dest-"),
            f"oci:{layout}:t",
            f"docker://{registry.host}/{destination}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def fleet(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Image name -> docker:// reference in the registry."""
    require_tools("skopeo")
    workdir = tmp_path_factory.mktemp("analyze-layouts")
    refs = {}
    for name, image in planted_fleet().items():
        push(image, registry, f"{REPO}/{name}", workdir)
        refs[name] = f"docker://{registry.host}/{REPO}/{name}"
    return refs


@pytest.fixture(scope="module")
def release_json(
    fleet: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("analyze-out")
    html = out / "report.html"
    result = transship(
        "analyze",
        fleet["svc-a:1"],
        fleet["svc-b:1"],
        fleet["svc-c:1"],
        "--json",
        "--html",
        str(html),
    )
    assert result.returncode == 0, result.stderr
    (out / "report.json").write_text(result.stdout)
    return json.loads(result.stdout), out


def test_analyze_from_registry_finds_the_planted_bytes(
    release_json: tuple[dict, Path], fleet: dict[str, str]
) -> None:
    report, out = release_json
    a, b, c = report["images"]
    assert a["name"] == fleet["svc-a:1"]
    assert a["manifest_digest"] == planted_fleet()["svc-a:1"].digest
    assert a["waste"]["wasted_bytes"] == S["lists1"] + S["lists2"] + S["cfg-base"]
    assert b["waste"]["wasted_bytes"] == S["conf-a"] + S["conf-b"]
    assert c["waste"]["wasted_bytes"] == 0
    assert c["layers"][0]["compression"] == "zstd"
    assert c["duplicates"]["redundant_bytes"] == S["copyright"] + S["guava"]
    assert report["fleet"]["duplicates"]["redundant_bytes"] == (
        3 * S["guava"] + 2 * S["netty"] + 2 * S["jackson"] + S["copyright"]
    )
    offload = report["offload"]
    assert offload["layer_bytes"] == JARS
    assert sorted(f["path"] for f in offload["files"]) == [
        "app/lib/guava.jar",
        "app/lib/jackson.jar",
        "app/lib/netty.jar",
    ]
    assert (
        offload["content"]["saved_total"]
        == 10 * (3 * S["guava"] + 3 * S["jackson"] + 2 * S["netty"]) - JARS
    )
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and fleet["svc-b:1"] in html


def test_terminal_tables(fleet: dict[str, str]) -> None:
    result = transship("analyze", fleet["svc-a:1"], fleet["svc-b:1"], "--top", "5")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "var/lib/apt/lists/index1" in text and "deleted" in text
    assert "RUN rm -rf /var/lib/apt/lists" in text
    assert "Offload recommendation" in text
    zh = transship("analyze", fleet["svc-b:1"], lang="zh_CN.UTF-8")
    assert zh.returncode == 0 and "镜像层" in zh.stdout and "被隐藏" in zh.stdout


def test_compare_two_versions_from_registry(fleet: dict[str, str]) -> None:
    result = transship("analyze", "--compare", fleet["svc-a:1"], fleet["svc-a:2"], "--json")
    assert result.returncode == 0, result.stderr
    cmp = json.loads(result.stdout)["compare"]
    assert [layer["status"] for layer in cmp["layers"]] == ["same"] * 3 + ["changed"] * 2
    assert cmp["hot_bytes"] == S["jackson-2"] + S["app-a2"]
    assert cmp["cold_bytes_in_changed_layers"] == S["guava"] + S["netty"] + S["a-only"] + S["cfg-a"]
    assert json.loads(result.stdout)["offload"] is None  # two versions are not a release
    # With a release given, the old version is compared but stays out of the release views.
    mixed = transship(
        "analyze",
        fleet["svc-a:2"],
        fleet["svc-b:1"],
        "--compare",
        fleet["svc-a:1"],
        fleet["svc-a:2"],
        "--json",
    )
    report = json.loads(mixed.stdout)
    assert {i["name"] for i in report["images"]} == {
        fleet["svc-a:1"],
        fleet["svc-a:2"],
        fleet["svc-b:1"],
    }
    assert report["offload"]["images"] == [fleet["svc-a:2"], fleet["svc-b:1"]]
    assert report["fleet"]["image_count"] == 2
    assert report["compare"]["hot_bytes"] == S["jackson-2"] + S["app-a2"]


def test_missing_image_is_a_clear_error(fleet: dict[str, str], registry: RegistryServer) -> None:
    missing = f"docker://{registry.host}/{REPO}/does-not-exist:1"
    result = transship_process("analyze", fleet["svc-a:1"], missing, "--json")
    assert result.returncode == 1
    assert missing in result.stderr
    assert "manifest unknown" in result.stderr or "not found" in result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)  # the image that exists is still analyzed
    assert [i["name"] for i in report["images"]] == [fleet["svc-a:1"]]
    assert report["errors"][0]["image"] == missing
    wrong_tag = transship("analyze", f"docker://{registry.host}/{REPO}/svc-a:404")
    assert wrong_tag.returncode == 1 and "svc-a:404" in wrong_tag.stderr


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    for args, words in (
        ((), "at least one image"),
        (("docker://127.0.0.1:5000/x:1", "--platform", "linux"), "--platform"),
        ((f"oci:{tmp_path}",), "not an OCI image layout"),
        (("no-registry/image:1",), "unknown transport"),
    ):
        result = transship("analyze", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert words in result.stderr and "Traceback" not in result.stderr
    bad = tmp_path / "rec.json"
    bad.write_text('{"hello": 1}')
    result = transship(
        "offload", "build", "--from-recommendation", str(bad), "--to", "docker://127.0.0.1:5000/x:1"
    )
    assert result.returncode == 2 and "not an analyze report" in result.stderr


def test_offload_build_then_analyze(
    release_json: tuple[dict, Path], fleet: dict[str, str], registry: RegistryServer, tmp_path: Path
) -> None:
    report, out = release_json
    target = f"docker://{registry.host}/{REPO}/offload:1"
    built = transship(
        "offload",
        "build",
        "--from-recommendation",
        str(out / "report.json"),
        "--to",
        target,
        "--json",
    )
    assert built.returncode == 0, built.stderr
    result = json.loads(built.stdout)
    assert result["files"] == 3 and result["content_bytes"] == JARS
    # Deterministic: the same recommendation gives the same image.
    again = transship(
        "offload",
        "build",
        "--from-recommendation",
        str(out / "report.json"),
        "--to",
        target + "-again",
        "--json",
    )
    assert json.loads(again.stdout)["manifest_digest"] == result["manifest_digest"]

    analyzed = transship("analyze", target, "--json")
    assert analyzed.returncode == 0, analyzed.stderr
    image = json.loads(analyzed.stdout)["images"][0]
    assert len(image["layers"]) == 1
    layer = image["layers"][0]
    assert layer["digest"] == result["layer_digest"] and layer["diff_id"] == result["diff_id"]
    assert layer["content_bytes"] == JARS and layer["file_count"] == 3
    assert "transship offload build" in layer["created_by"]
    files = {f["path"]: f["size"] for f in image["biggest_files"]}
    assert files == {
        "app/lib/guava.jar": S["guava"],
        "app/lib/jackson.jar": S["jackson"],
        "app/lib/netty.jar": S["netty"],
    }
    expected = {f["path"]: f["sha256"] for f in report["offload"]["files"]}
    # The layer's bytes are exactly the recommended contents: compare hashes via skopeo's copy.
    layout = tmp_path / "pulled"
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            *registry.skopeo_flags("src-"),
            target,
            f"oci:{layout}:x",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    blob = layout / "blobs" / "sha256" / result["layer_digest"].split(":", 1)[1]
    with tarfile.open(blob) as tar:
        members = tar.getmembers()
        got = {
            m.name: "sha256:" + sha256_hex(tar.extractfile(m).read()) for m in members if m.isfile()
        }  # type: ignore[union-attr]
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
        assert [m.name for m in members] == sorted(m.name for m in members)
    assert got == expected

    # Put it under the services: base, offload layer, then each app without its shared jars.
    offload_blob = blob.read_bytes()
    slim = _slim_release(offload_blob, result["diff_id"])
    workdir = tmp_path / "slim"
    refs = []
    for name, image in slim.items():
        push(image, registry, f"{REPO}/slim-{name}", workdir)
        refs.append(f"docker://{registry.host}/{REPO}/slim-{name}")
    after = transship("analyze", *refs, "--json")
    assert after.returncode == 0, after.stderr
    after_report = json.loads(after.stdout)
    assert after_report["offload"]["files"] == []  # nothing left to offload
    shared = {layer["digest"] for layer in after_report["fleet"]["shared_layers"]}
    assert result["layer_digest"] in shared
    before_unique = report["fleet"]["compressed_unique"]
    after_unique = after_report["fleet"]["compressed_unique"]
    predicted = report["offload"]["compressed_estimate"]["saved_per_release"]
    assert after_unique < before_unique
    assert abs((before_unique - after_unique) - predicted) < 0.05 * before_unique


def _slim_release(offload_blob: bytes, diff_id: str) -> dict[str, BuiltImage]:
    """The release rebuilt on the offload image (same steps, offloaded jars left out)."""
    layer = RawLayer("FROM offload image", offload_blob, diff_id)
    return {"svc-a:1": svc_a(1, layer), "svc-b:1": svc_b(layer), "svc-c:1": svc_c(layer)}


def test_file_transports_give_the_same_figures(tmp_path: Path) -> None:
    """An OCI layout holding several images stands for all of them; a docker-archive
    written by skopeo (manifest rebuilt, layers kept) analyzes to the same bytes."""
    require_tools("skopeo")
    layout = tmp_path / "layout"
    images = planted_fleet()
    for name in ("svc-a:1", "svc-b:1"):
        write_oci_layout(layout, name.replace(":", "-"), images[name])
    result = transship("analyze", f"oci:{layout}", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_digest = {i["manifest_digest"]: i for i in report["images"]}
    a = by_digest[images["svc-a:1"].digest]
    b = by_digest[images["svc-b:1"].digest]
    assert a["waste"]["wasted_bytes"] == S["lists1"] + S["lists2"] + S["cfg-base"]
    assert b["waste"]["wasted_bytes"] == S["conf-a"] + S["conf-b"]
    assert report["offload"]["layer_bytes"] == JARS

    archive = tmp_path / "svc-a.tar"
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            f"oci:{layout}:svc-a-1",
            f"docker-archive:{archive}:svc-a:1",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    result = transship("analyze", f"docker-archive:{archive}", "--json")
    assert result.returncode == 0, result.stderr
    image = json.loads(result.stdout)["images"][0]
    assert image["waste"]["wasted_bytes"] == a["waste"]["wasted_bytes"]
    assert image["waste"]["final_bytes"] == a["waste"]["final_bytes"]
    assert [layer["created_by"] for layer in image["layers"]] == [
        layer["created_by"] for layer in a["layers"]
    ]
