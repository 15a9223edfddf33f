"""The web UI's API without registries: access control, registries listing, validation,
job lifecycle, the message catalogue, live statistics."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from tests.web_support import AUTH, TOKEN, engine_events, parse_sse, ui_client
from transship.engine import events as ev
from transship.i18n import catalog, template_fields
from transship.web import actions
from transship.web.app import STATIC_DIR
from transship.web.jobs import CANCELLED, Job
from transship.web.security import loopback_hosts
from transship.web.stats import JobStats

REGISTRIES = {
    "company": {
        "url": "https://registry.company.example",
        "user": "deploy",
        "password": "s3cret-Pa55",
    },
    "site": {"url": "10.0.0.5:5000", "insecure": True, "repository": "site/apps"},
    "env": {"url": "other.example", "user": "ci", "password_env": "UI_TEST_UNSET_PASSWORD"},
}

API_ROUTES = [
    ("GET", "/api/registries"),
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/abc"),
    ("GET", "/api/jobs/abc/events"),
    ("POST", "/api/jobs/abc/cancel"),
    ("POST", "/api/check"),
    ("POST", "/api/copy"),
    ("POST", "/api/save"),
    ("POST", "/api/load"),
    ("POST", "/api/analyze"),
    ("GET", "/api/jobs/abc/report"),
]


@pytest.fixture
def client():
    with ui_client(REGISTRIES) as c:
        yield c


def _wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


# -- access control ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_every_api_route_refuses_a_missing_or_wrong_token(client, method, path):
    for headers in ({}, {"X-Transship-Token": "wrong"}, {"X-Transship-Token": TOKEN[:-1]}):
        response = client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path, headers)
        assert "token" in response.json()["error"]


def test_token_in_the_query_is_accepted_for_reading_only(client):
    assert client.get(f"/api/registries?token={TOKEN}").status_code == 200
    post = client.post(f"/api/check?token={TOKEN}", json={"target": "site", "images": "a/b:1"})
    assert post.status_code == 401


def test_cross_origin_and_cross_site_calls_are_refused(client):
    assert (
        client.get("/api/registries", headers={**AUTH, "Origin": "http://testserver"}).status_code
        == 200
    )
    for extra in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        response = client.post("/api/check", headers={**AUTH, **extra}, json={})
        assert response.status_code == 403, extra


def test_unexpected_host_header_is_refused():
    with ui_client(REGISTRIES, allowed_hosts=loopback_hosts(8080)) as c:
        c.base_url = "http://127.0.0.1:8080"
        assert c.get("/").status_code == 200
        assert c.get("/api/registries", headers=AUTH).status_code == 200
        rebound = c.get("/api/registries", headers={**AUTH, "Host": "attacker.example:8080"})
        assert rebound.status_code == 421
        assert c.get("/", headers={"Host": "127.0.0.1:9999"}).status_code == 421


def test_every_response_forbids_framing_and_foreign_code(client):
    for response in (client.get("/"), client.get("/api/registries"), client.get("/static/app.js")):
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"


# -- registries ------------------------------------------------------------------------------------
def test_registries_show_names_and_hosts_never_credentials(client):
    response = client.get("/api/registries", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert [(r["name"], r["host"], r["rewrite"]) for r in body["registries"]] == [
        ("company", "registry.company.example", ""),
        ("site", "10.0.0.5:5000", "site/apps"),
        ("env", "other.example", ""),
    ]
    assert all(set(r) == {"name", "host", "rewrite"} for r in body["registries"])
    for secret in ("s3cret-Pa55", "deploy", "UI_TEST_UNSET_PASSWORD", "password"):
        assert secret not in response.text
    assert body["defaults"]["maxconn"] == 3 and body["defaults"]["retries"] == 1
    assert body["features"]["copy"]["available"] is True


def test_config_file_is_reread_when_it_changes(tmp_path: Path):
    from starlette.testclient import TestClient

    from transship.web.app import create_app

    config = tmp_path / "transship.yaml"
    config.write_text("registries:\n  one: {url: one.example}\n")
    with TestClient(create_app(token=TOKEN, config_path=str(config))) as c:

        def names() -> list[str]:
            body = c.get("/api/registries", headers=AUTH).json()
            return [r["name"] for r in body["registries"]]

        assert names() == ["one"]
        config.write_text("registries:\n  one: {url: one.example}\n  two: {url: two.example}\n")
        assert names() == ["one", "two"]
        config.write_text("registries: [not, a, mapping\n")
        broken = c.get("/api/registries", headers=AUTH)
        assert broken.status_code == 400 and "transship.yaml" in broken.json()["error"]


# -- starting jobs: validation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"target": "site", "images": ""}, 400, "empty"),
        ({"target": "site", "images": "# only a comment\n\n"}, 400, "empty"),
        ({"images": "a/b:1"}, 400, "target"),
        ({"target": "nowhere", "images": "a/b:1"}, 400, "unknown registry name 'nowhere'"),
        ({"source": "nowhere", "target": "site", "images": "a/b:1"}, 400, "nowhere"),
        ({"target": "site", "images": "a/b:1", "maxconn": 0}, 400, "maxconn"),
        ({"target": "site", "images": "a/b:1", "surprise": 1}, 400, "surprise"),
        ({"target": "site", "images": "a/b:1", "platforms": ["linux"]}, 400, "os/arch"),
    ],
)
def test_bad_requests_are_answered_at_once(client, body, status, fragment):
    for kind in ("check", "copy"):
        response = client.post(f"/api/{kind}", headers=AUTH, json=body)
        assert response.status_code == status, response.text
        assert fragment in response.json()["error"]
    assert client.get("/api/jobs", headers=AUTH).json()["jobs"] == []


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"codec": "zstd"}, "codec: Input should be 'raw' or 'dedup'"),
        ({"codec": "dedup", "dedup_effort": "ultra"}, "dedup_effort: Input should be 'max'"),
        ({"codec": None}, "codec"),
    ],
)
def test_save_refuses_an_unknown_bundle_contents(client, tmp_path, extra, fragment):
    bundle = tmp_path / "bundle"
    body = {"source": "company", "images": "a/b:1", "bundle": str(bundle), **extra}
    response = client.post("/api/save", headers=AUTH, json=body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]
    assert client.get("/api/jobs", headers=AUTH).json()["jobs"] == []
    assert not bundle.exists()


def test_body_must_be_json(client):
    response = client.post(
        "/api/copy", headers={**AUTH, "Content-Type": "application/json"}, content=b"{nope"
    )
    assert response.status_code == 400 and "JSON" in response.json()["error"]


def test_unavailable_action_answers_501_with_its_note(client, monkeypatch):
    monkeypatch.setattr(
        actions,
        "features",
        lambda: {
            "check": actions.Feature(True),
            "copy": actions.Feature(True),
            "save": actions.Feature(False, "not built in"),
            "load": actions.Feature(False, "not built in"),
            "analyze": actions.Feature(True),
        },
    )
    response = client.post(
        "/api/save", headers=AUTH, json={"source": "company", "images": "a/b:1", "bundle": "/tmp/b"}
    )
    assert response.status_code == 501 and "not built in" in response.json()["error"]


def test_unknown_job_is_404(client):
    for method, path in (
        ("GET", "/api/jobs/nope"),
        ("GET", "/api/jobs/nope/events"),
        ("POST", "/api/jobs/nope/cancel"),
    ):
        assert client.request(method, path, headers=AUTH).status_code == 404


# -- job lifecycle with a scripted runner ----------------------------------------------------------------
def _blocking_runner(started: threading.Event):
    def run(job: Job) -> None:
        job.stats.set_total(2)
        job.emit(ev.RunStarted(images=2))
        job.emit(ev.ImageDone(image="a/b:1", target="a/b:1", digest="sha256:" + "a" * 64))
        started.set()
        job.cancel.wait(timeout=30)
        job.emit(ev.ImageFailed(image="c/d:1", target="c/d:1", reason="cancelled"))
        job.emit(
            ev.RunDone(
                ok=1,
                failed=1,
                invalid=0,
                blobs_copied=0,
                blobs_skipped=0,
                blobs_mounted=0,
                bytes_sent=0,
                seconds=0.1,
                failures=(("c/d:1", "cancelled"),),
            )
        )

    return run


def test_one_job_at_a_time_and_cancel_ends_it(client):
    jobs = client.app.app.state.ui.jobs
    started = threading.Event()
    job = jobs.start(
        "copy", {"source": "company", "target": "site", "images": 2}, _blocking_runner(started)
    )
    assert started.wait(10)

    busy = client.post("/api/check", headers=AUTH, json={"target": "site", "images": "a/b:1"})
    assert busy.status_code == 409 and job.id in busy.json()["error"]
    listed = client.get("/api/jobs", headers=AUTH).json()["jobs"]
    assert [(j["id"], j["status"]) for j in listed] == [(job.id, "running")]
    assert listed[0]["stats"]["success"] == 1 and listed[0]["stats"]["remaining"] == 1

    cancelled = client.post(f"/api/jobs/{job.id}/cancel", headers=AUTH)
    assert cancelled.status_code == 200 and cancelled.json()["cancelling"] is True
    stream = client.get(f"/api/jobs/{job.id}/events", headers=AUTH)
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(stream.text)
    assert [e["event"] for e in engine_events(events)] == [
        "RunStarted",
        "ImageDone",
        "ImageFailed",
        "RunDone",
    ]
    assert [e.id for e in events if e.kind == "message"] == [0, 1, 2, 3]
    assert events[-1].kind == "end" and events[-1].data["status"] == CANCELLED
    final_stats = [e for e in events if e.kind == "stats"][-1].data
    assert (final_stats["success"], final_stats["failed"], final_stats["running"]) == (1, 1, False)

    details = client.get(f"/api/jobs/{job.id}", headers=AUTH).json()
    assert details["status"] == CANCELLED
    assert details["failures"] == [
        {"image": "c/d:1", "target": "c/d:1", "reason": "cancelled", "invalid": False}
    ]
    # reconnecting with Last-Event-ID replays only what came after it
    again = parse_sse(
        client.get(f"/api/jobs/{job.id}/events", headers={**AUTH, "Last-Event-ID": "1"}).text
    )
    assert [e.data["event"] for e in again if e.kind == "message"] == ["ImageFailed", "RunDone"]


def test_a_job_that_cannot_run_says_why(client):
    jobs = client.app.app.state.ui.jobs

    def broken(job: Job) -> None:
        from transship.errors import ConfigError

        raise ConfigError("registry site: environment variable X is not set")

    job = jobs.start("copy", {}, broken)
    events = parse_sse(client.get(f"/api/jobs/{job.id}/events", headers=AUTH).text)
    messages = engine_events(events)
    assert messages[-1]["event"] == "JobFailed" and "variable X" in messages[-1]["reason"]
    assert events[-1].data["status"] == "failed"


# -- the page and its strings -------------------------------------------------------------------------
def test_page_is_served_without_a_token_and_holds_no_secret(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="images"' in page.text and TOKEN not in page.text
    assert "s3cret" not in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_messages_come_in_english_and_chinese(client):
    zh = client.get("/i18n/zh.json").json()
    en = client.get("/i18n/en.json").json()
    assert zh["lang"] == "zh" and en["lang"] == "en"
    assert zh["messages"]["web.form.target"] == catalog("zh")["web.form.target"] == "目标仓库"
    assert en["messages"]["web.form.target"] == "Target registry"
    assert set(zh["messages"]) == set(en["messages"]) and all(
        k.startswith(("web.", "dedup.finishing.")) for k in en["messages"]
    )
    # What a save says while it finishes comes by key in its events (Finishing).
    assert zh["messages"]["dedup.finishing.checked"] == catalog("zh")["dedup.finishing.checked"]
    assert client.get("/i18n/fr.json").status_code == 404


def _keys_used_by_the_page() -> set[str]:
    html = (STATIC_DIR / "index.html").read_text()
    script = (STATIC_DIR / "app.js").read_text()
    keys = set(re.findall(r'data-i18n(?:-placeholder|-title|-empty)?="(web\.[\w.]+)"', html))
    keys |= set(re.findall(r'"(web\.[\w.]+)"', script))
    # keys the script builds from a name
    keys |= {f"web.action.{k}" for k in ("check", "copy", "save", "load", "analyze")}
    keys |= {f"web.log.how.{h}" for h in ("copied", "skipped", "mounted", "reused")}
    keys |= {f"web.job_status.{s}" for s in ("running", "finished", "failed", "cancelled")}
    keys |= {f"web.status.{s}" for s in ("finished", "cancelled", "failed")}
    return keys


def test_every_string_the_page_uses_exists_in_both_languages():
    used = _keys_used_by_the_page()
    assert len(used) > 60
    for lang in ("en", "zh"):
        missing = sorted(k for k in used if k not in catalog(lang))
        assert not missing, (lang, missing)
    for key in (k for k in catalog("en") if k.startswith(("web.", "ui."))):
        assert template_fields(catalog("en")[key]) == template_fields(catalog("zh")[key]), key


# -- live statistics ------------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stats_count_images_blobs_and_speed():
    clock = FakeClock()
    stats = JobStats(clock)
    stats.set_total(5)
    for event in (
        ev.ImageFailed(image="bad", target="", reason="x", invalid=True),
        ev.BlobStarted(digest="d1", size=4000, repository="r"),
        ev.BlobStarted(digest="d2", size=4000, repository="r"),
        ev.BlobProgress(digest="d1", nbytes=1000),
    ):
        stats.apply(event)
    first = stats.snapshot()
    assert (first.total, first.invalid, first.remaining, first.blobs_active) == (5, 1, 4, 2)
    clock.now += 2
    stats.apply(ev.BlobProgress(digest="d1", nbytes=3000))
    stats.apply(ev.BlobDone(digest="d1", size=4000, how="copied", bytes_sent=4000))
    stats.apply(ev.BlobDone(digest="d2", size=4000, how="skipped"))
    stats.apply(ev.BlobRetry(digest="d3", attempt=1, reason="reset"))
    stats.apply(ev.ImageDone(image="a", target="a", digest="sha256:x"))
    stats.apply(ev.ImageFailed(image="b", target="b", reason="boom"))
    second = stats.snapshot()
    assert second.speed == pytest.approx(3000 / 2)
    assert second.average_speed == pytest.approx(4000 / 2)
    assert (second.success, second.failed, second.remaining) == (1, 1, 2)
    assert (second.blobs_copied, second.blobs_skipped, second.blobs_active, second.retries) == (
        1,
        1,
        0,
        1,
    )
    clock.now += 10  # nothing moved for longer than the speed window
    assert stats.snapshot().speed == 0.0
    stats.finish()
    clock.now += 100
    done = stats.snapshot()
    assert done.running is False and done.elapsed == pytest.approx(12)
