"""Tests of the benchmark harness (run: python -m pytest bench/tests)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import (  # noqa: E402
    Measurement,
    Registry,
    Results,
    Tool,
    format_table,
    run_alternating,
    summarize,
    timed_run,
    verify_images,
)


def _put_blob(registry: Registry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"{registry.url}/v2/{repo}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = registry.url + location
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT")
    put.add_header("Content-Type", "application/octet-stream")
    urllib.request.urlopen(put).close()
    return digest


@pytest.mark.skipif(not shutil.which("docker-registry"), reason="docker-registry not installed")
def test_registry_counts_stored_and_uploaded_bytes_and_checks_digests() -> None:
    with Registry() as registry:
        before = registry.written_bytes()
        layer = bytes(range(256)) * 4096  # 1 MiB
        layer_digest = _put_blob(registry, "t/app", layer)
        config = b"{}"
        config_digest = _put_blob(registry, "t/app", config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest,
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        request = urllib.request.Request(
            f"{registry.url}/v2/t/app/manifests/v1", data=manifest, method="PUT"
        )
        request.add_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        urllib.request.urlopen(request).close()
        uploaded = registry.written_bytes() - before  # type: ignore[operator]
        assert len(layer) <= uploaded < len(layer) + 64 * 1024
        assert len(layer) <= registry.stored_bytes() < len(layer) + 64 * 1024
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        assert verify_images(registry, {"t/app:v1": digest}) == "ok"
        assert verify_images(registry, {"t/app:v1": "sha256:" + "0" * 64}) == "1 digests changed"
        assert verify_images(registry, {"t/app:v2": digest}) == "1 missing"
        storage = registry.storage
    assert not storage.exists()  # a temporary storage is removed


def test_timed_run_reports_time_rss_and_exit_code() -> None:
    grow = "x = bytearray(80 << 20); x[::4096] = b'1' * len(x[::4096])"
    result = timed_run([sys.executable, "-c", grow])
    assert result.exit_code == 0
    assert result.peak_rss_kib is not None and result.peak_rss_kib > 80 * 1024
    failed = timed_run(["bash", "-c", "echo boom; exit 3"])
    assert failed.exit_code == 3 and "boom" in failed.output_tail


def test_alternation_medians_ratios_and_unavailable_tools() -> None:
    order: list[str] = []
    times = {"a": iter([1.0, 3.0, 2.0]), "b": iter([4.0, 4.0, 8.0])}

    def trial(tool: Tool) -> Measurement:
        order.append(tool.name)
        return Measurement(next(times[tool.name]), 1024, 0, stored_bytes=10)

    tools = [Tool("a"), Tool("b"), Tool("c", reason="not installed")]
    results: Results = run_alternating(tools, 3, trial, log=False)
    assert order == ["a", "b", "b", "a", "a", "b"]
    rows = {r["tool"]: r for r in summarize(results, baseline="a")}
    assert rows["a"]["seconds"] == 2.0 and rows["b"]["seconds"] == 4.0
    assert rows["b"]["ratio"] == 2.0
    assert rows["c"]["available"] is False
    table = format_table("t", list(rows.values()))
    assert "not available" in table and "not installed" in table and "2.00x" in table
