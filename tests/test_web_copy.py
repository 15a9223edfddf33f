"""The web UI's API against real registries: copy and check jobs end to end, and cancel."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from tests.support.images import skopeo_inspect
from tests.web_support import AUTH, GateProxy, engine_events, parse_sse, ui_client
from transship.bundle.meta import load_meta

COPIED = ["tiny", "oci-single", "docker-multi"]


def _raw(registry, reference: str) -> bytes:
    code, out, err = skopeo_inspect(registry, reference, raw=True)
    assert code == 0, err
    return out


def _run_job(client, kind: str, body: dict) -> tuple[str, list]:
    started = client.post(f"/api/{kind}", headers=AUTH, json=body)
    assert started.status_code == 202, started.text
    job_id = started.json()["job"]
    stream = client.get(f"/api/jobs/{job_id}/events", headers=AUTH)
    assert stream.status_code == 200
    return job_id, parse_sse(stream.text)


def test_copy_job_streams_events_and_target_gets_identical_manifests(
    source_registry, fresh_registry
):
    target = fresh_registry()
    registries = {
        "src": {"url": f"http://{source_registry.host}"},
        "dst": {"url": f"http://{target.host}", "repository": "mirror"},
    }
    images = "\n".join(f"samples/{name}:v1" for name in COPIED)
    images += "\nsamples/does-not-exist:v1\nnot a reference!\n"
    with ui_client(registries) as client:
        job_id, events = _run_job(
            client, "copy", {"source": "src", "target": "dst", "images": images}
        )
        messages = engine_events(events)
        assert messages[-1]["event"] == "RunDone"
        assert events[-1].kind == "end" and events[-1].data["status"] == "finished"
        done = messages[-1]
        assert (done["ok"], done["invalid"], done["failed"]) == (len(COPIED), 1, 0)
        assert done["blobs_copied"] > 0 and done["bytes_sent"] > 0
        finished = {m["image"]: m for m in messages if m["event"] == "ImageDone"}
        assert set(finished) == {f"samples/{n}:v1" for n in COPIED}

        stats = [e.data for e in events if e.kind == "stats"][-1]
        assert (
            stats["total"],
            stats["success"],
            stats["invalid"],
            stats["failed"],
            stats["remaining"],
        ) == (
            len(COPIED) + 2,
            len(COPIED),
            2,
            0,
            0,
        )
        assert stats["bytes_sent"] == done["bytes_sent"]

        details = client.get(f"/api/jobs/{job_id}", headers=AUTH).json()
        reasons = {f["image"]: f for f in details["failures"]}
        assert set(reasons) == {"samples/does-not-exist:v1", "not a reference!"}
        assert all(f["invalid"] for f in reasons.values())
        assert "line 5" in reasons["not a reference!"]["reason"]

    for name in COPIED:
        source_ref, target_ref = f"samples/{name}:v1", f"mirror/{name}:v1"
        assert _raw(target, target_ref) == _raw(source_registry.server, source_ref)
        assert finished[source_ref]["digest"] == source_registry[name].digest
        for digest in source_registry[name].manifests:  # children of an index
            assert _raw(target, f"mirror/{name}@{digest}") == _raw(
                source_registry.server, f"samples/{name}@{digest}"
            )


def test_check_job_resolves_images_and_copies_nothing(source_registry, fresh_registry):
    target = fresh_registry()
    registries = {
        "src": {"url": f"http://{source_registry.host}"},
        "dst": {"url": f"http://{target.host}"},
    }
    images = "samples/tiny:v1\nsamples/oci-multi:v1\nsamples/nope:v1\n"
    with ui_client(registries) as client:
        _, events = _run_job(client, "check", {"source": "src", "target": "dst", "images": images})
    messages = engine_events(events)
    assert [m["event"] for m in messages] == [
        "RunStarted",
        "ImageDone",
        "ImageDone",
        "ImageFailed",
        "RunDone",
    ]
    assert messages[1]["digest"] == source_registry["tiny"].digest
    assert messages[1]["target"] == f"{target.host}/samples/tiny:v1"
    assert messages[3]["invalid"] is True
    assert (messages[-1]["ok"], messages[-1]["invalid"]) == (2, 1)
    code, _, _ = skopeo_inspect(target, "samples/tiny:v1", raw=True)
    assert code != 0  # nothing was copied


def test_unreachable_registry_fails_images_not_the_server(fresh_registry):
    target = fresh_registry()
    registries = {"gone": {"url": "http://127.0.0.1:9"}, "dst": {"url": f"http://{target.host}"}}
    with ui_client(registries) as client:
        _, events = _run_job(
            client, "copy", {"source": "gone", "target": "dst", "images": "a/b:1\n", "retries": 0}
        )
        messages = engine_events(events)
        assert messages[-1]["event"] == "RunDone" and messages[-1]["failed"] == 1
        failure = next(m for m in messages if m["event"] == "ImageFailed")
        assert failure["invalid"] is False and failure["reason"]
        assert client.get("/api/registries", headers=AUTH).status_code == 200


@pytest.fixture
def gate(source_registry):
    proxy = GateProxy(source_registry.server.port).start()
    yield proxy
    proxy.stop()


def test_cancel_stops_the_job_between_blobs(source_registry, fresh_registry, gate):
    """The first blob download is held at the gate; cancel; let it through: that blob
    completes, no other starts, no image is pushed."""
    target = fresh_registry()
    registries = {"src": {"url": f"http://{gate.host}"}, "dst": {"url": f"http://{target.host}"}}
    images = "samples/oci-single:v1\nsamples/docker-single:v1\nsamples/zstd:v1\n"
    with ui_client(registries) as client:
        started = client.post(
            "/api/copy",
            headers=AUTH,
            json={"source": "src", "target": "dst", "images": images, "maxconn": 1},
        )
        assert started.status_code == 202, started.text
        job_id = started.json()["job"]
        assert gate.blob_waiting.wait(30), "the copy never asked for a blob"

        second = client.post(
            "/api/copy", headers=AUTH, json={"source": "src", "target": "dst", "images": images}
        )
        assert second.status_code == 409

        assert client.post(f"/api/jobs/{job_id}/cancel", headers=AUTH).json()["cancelling"] is True
        gate.release()
        events = parse_sse(client.get(f"/api/jobs/{job_id}/events", headers=AUTH).text)

    messages = engine_events(events)
    done = messages[-1]
    assert done["event"] == "RunDone"
    assert (done["ok"], done["failed"], done["blobs_copied"]) == (0, 3, 1)
    assert all(reason == "cancelled" for _, reason in done["failures"])
    assert gate.blob_gets == 1
    assert events[-1].data["status"] == "cancelled"
    for name in ("oci-single", "docker-single", "zstd"):
        code, _, _ = skopeo_inspect(target, f"samples/{name}:v1", raw=True)
        assert code != 0


def test_events_arrive_while_the_job_runs(source_registry, fresh_registry, gate):
    """The stream is live: events are readable before the job ends (no buffering)."""
    target = fresh_registry()
    registries = {"src": {"url": f"http://{gate.host}"}, "dst": {"url": f"http://{target.host}"}}
    with ui_client(registries) as client:
        job_id = client.post(
            "/api/copy",
            headers=AUTH,
            json={"source": "src", "target": "dst", "images": "samples/tiny:v1", "maxconn": 1},
        ).json()["job"]
        assert gate.blob_waiting.wait(30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            details = client.get(f"/api/jobs/{job_id}", headers=AUTH).json()
            if details["stats"]["blobs_active"] == 1:
                break
            time.sleep(0.02)
        # RunStarted, ImagePlanned and BlobStarted are out while the job still runs
        assert details["status"] == "running" and details["events"] >= 2
        gate.release()
        events = parse_sse(client.get(f"/api/jobs/{job_id}/events", headers=AUTH).text)
    assert engine_events(events)[-1]["ok"] == 1


def test_save_then_load_a_bundle_through_the_api(source_registry, fresh_registry, tmp_path):
    """image-transmit's "download" then "upload": registry -> bundle folder -> registry."""
    target = fresh_registry()
    registries = {
        "src": {"url": f"http://{source_registry.host}"},
        "site": {"url": f"http://{target.host}", "repository": "site/apps"},
    }
    names = ["oci-multi", "docker-single"]
    bundle = tmp_path / "usb"
    with ui_client(registries) as client:
        features = client.get("/api/registries", headers=AUTH).json()["features"]
        assert features["save"]["available"] and features["load"]["available"]
        images = "\n".join(f"samples/{n}:v1" for n in names)
        _, events = _run_job(
            client, "save", {"source": "src", "images": images, "bundle": str(bundle)}
        )
        done, written = engine_events(events)[-2:]  # the bundle is committed after the run
        assert done["event"] == "RunDone" and done["ok"] == 2, engine_events(events)
        assert written["event"] == "BundleWritten", engine_events(events)
        assert events[-1].data["status"] == "finished"
        assert sorted(p.name for p in bundle.glob("*.meta.json")) == ["bundle.meta.json"]

        missing = client.post(
            "/api/load", headers=AUTH, json={"target": "site", "bundle": str(tmp_path / "nope")}
        )
        assert missing.status_code == 400 and "no such bundle" in missing.json()["error"]

        _, events = _run_job(client, "load", {"target": "site", "bundle": str(bundle)})
        messages = engine_events(events)
        assert messages[-1]["event"] == "RunDone" and messages[-1]["ok"] == 2, messages
        stats = [e.data for e in events if e.kind == "stats"][-1]
        assert (stats["total"], stats["success"]) == (2, 2)

    for name in names:
        source_ref = f"samples/{name}:v1"
        assert _raw(target, f"site/apps/{name}:v1") == _raw(source_registry.server, source_ref)
        for digest in source_registry[name].manifests:
            assert _raw(target, f"site/apps/{name}@{digest}") == _raw(
                source_registry.server, f"samples/{name}@{digest}"
            )


def test_save_with_files_stored_once_then_load_it_back(source_registry, fresh_registry, tmp_path):
    """ "Bundle contents: smallest": a dedup bundle (`--codec dedup --dedup-effort max`),
    its summary in the job's log, and images that load back with their digests."""
    target = fresh_registry()
    registries = {
        "src": {"url": f"http://{source_registry.host}"},
        "site": {"url": f"http://{target.host}"},
    }
    names = ["oci-multi", "docker-single"]
    bundle = tmp_path / "usb"
    with ui_client(registries) as client:
        images = "\n".join(f"samples/{n}:v1" for n in names)
        body = {"source": "src", "images": images, "bundle": str(bundle)}
        job_id, events = _run_job(client, "save", {**body, "codec": "dedup", "dedup_effort": "max"})
        messages = engine_events(events)
        assert events[-1].data["status"] == "finished", messages
        assert events[-1].data["params"]["codec"] == "dedup"
        assert events[-1].data["params"]["dedup_effort"] == "max"
        assert any(m["event"] == "Finishing" for m in messages), messages
        written = [m for m in messages if m["event"] == "BundleWritten"]
        assert len(written) == 1, messages
        meta_path = bundle / "bundle.meta.json"
        assert written[0]["path"] == str(meta_path)
        summary = written[0]["summary"]  # in every language: the page shows its own
        assert set(summary) == {"en", "zh"} and len(summary["en"]) == len(summary["zh"]), summary
        assert summary["en"] and all(line.startswith("dedup: ") for line in summary["en"])
        assert "layers split into file contents" in summary["en"][0]
        assert all(line.startswith("dedup：") for line in summary["zh"]), summary
        assert "拆分为文件内容" in summary["zh"][0]

        meta = load_meta(meta_path)
        assert "dedup" in meta.codec_data
        layers = {d for n in names for d in source_registry[n].blobs} & meta.blob_index().keys()
        rebuilt = [b for b in meta.blobs if b.encoding == "dedup"]
        assert rebuilt and {b.digest for b in rebuilt} <= layers

        _, events = _run_job(client, "load", {"target": "site", "bundle": str(bundle)})
        messages = engine_events(events)
        assert messages[-1]["event"] == "RunDone" and messages[-1]["ok"] == 2, messages

    for name in names:
        for digest in source_registry[name].manifests:
            assert _raw(target, f"samples/{name}@{digest}") == _raw(
                source_registry.server, f"samples/{name}@{digest}"
            )
        for digest in source_registry[name].blobs:  # layers, rebuilt ones too, by digest
            response = httpx.get(
                f"http://{target.host}/v2/samples/{name}/blobs/{digest}", follow_redirects=True
            )
            assert response.status_code == 200, digest
            assert hashlib.sha256(response.content).hexdigest() == digest.split(":", 1)[1]


def test_save_job_without_a_codec_writes_a_plain_bundle(source_registry, tmp_path):
    registries = {"src": {"url": f"http://{source_registry.host}"}}
    bundle = tmp_path / "usb"
    with ui_client(registries) as client:
        body = {"source": "src", "images": "samples/tiny:v1", "bundle": str(bundle)}
        _, events = _run_job(client, "save", body)
    assert events[-1].data["params"]["codec"] == "raw"
    written = [m for m in engine_events(events) if m["event"] == "BundleWritten"]
    assert len(written) == 1 and written[0]["summary"] == {"en": [], "zh": []}
    meta = load_meta(bundle / "bundle.meta.json")
    assert "dedup" not in meta.codec_data
    assert {b.encoding for b in meta.blobs} == {"raw"}


def test_analyze_job_offers_its_report_page(source_registry):
    registries = {"src": {"url": f"http://{source_registry.host}"}}
    images = "samples/tiny:v1\nsamples/oci-single:v1\n"
    with ui_client(registries) as client:
        job_id, events = _run_job(client, "analyze", {"source": "src", "images": images})
        messages = engine_events(events)
        assert messages[-1]["event"] == "RunDone" and messages[-1]["ok"] == 2, messages
        scanned = [m for m in messages if m["event"] == "LayerScanned"]
        assert scanned and scanned[-1]["done"] == scanned[-1]["total"]
        ready = next(m for m in messages if m["event"] == "ReportReady")
        assert ready["url"] == f"/api/jobs/{job_id}/report"

        assert client.get(ready["url"]).status_code == 401
        page = client.get(ready["url"], headers=AUTH)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "samples/oci-single:v1" in page.text and "<script" not in page.text
        policies = page.headers.get_list("content-security-policy")
        assert len(policies) == 1 and "style-src 'unsafe-inline'" in policies[0]
        assert "script-src" not in policies[0]  # default-src 'none': no script runs
        assert page.headers["x-frame-options"] == "DENY"
