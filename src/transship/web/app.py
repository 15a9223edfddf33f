"""The web UI's ASGI app: one static page, a message catalogue and a small JSON API.

    GET  /                        the page (static/index.html, app.js, style.css)
    GET  /i18n/{lang}.json        the page's strings in English or Chinese
    GET  /api/registries          registry names and hosts from the config (never credentials)
    POST /api/{check,copy,save,load,analyze}   start a job; answers {"job": id}
    GET  /api/jobs                the recent jobs, newest first
    GET  /api/jobs/{id}           one job: status, statistics, failures
    GET  /api/jobs/{id}/events    its events as Server-Sent Events (replayed from the start)
    POST /api/jobs/{id}/cancel    stop it between blobs
    GET  /api/jobs/{id}/report    an analyze job's report (HTML)

Every /api call needs the per-start token (see security.py).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from transship import __version__
from transship.config import DEFAULT_FILES, Config, load_config
from transship.errors import TransshipError, UnsupportedError
from transship.i18n import LANGUAGES, catalog
from transship.web.actions import JobRequest, features, prepare
from transship.web.jobs import Job, JobConflict, JobManager
from transship.web.security import AccessGuard

STATIC_DIR = Path(__file__).parent / "static"
# The messages the page shows: its own, and those that events name by key (Finishing).
PAGE_KEY_PREFIXES = ("web.", "dedup.finishing.")
STATS_INTERVAL = 0.3  # seconds between statistics updates on the event stream
ACTIONS = ("check", "copy", "save", "load", "analyze")
# An analyze report is a page of its own: inline styles and SVG, no script at all.
REPORT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class ConfigSource:
    """The configuration, re-read when its file changes, so edits show without a restart."""

    def __init__(self, path: str | None = None, config: Config | None = None):
        self._path = path
        self._fixed = config  # given in code (tests): never re-read
        self._cached: Config | None = None
        self._stamp: tuple[str, int, int] | None = None

    def get(self) -> Config:
        if self._fixed is not None:
            return self._fixed
        stamp = self._file_stamp()
        if self._cached is None or stamp != self._stamp:
            self._cached, self._stamp = load_config(self._path), stamp
        return self._cached

    def _file_stamp(self) -> tuple[str, int, int] | None:
        for name in [self._path] if self._path else DEFAULT_FILES:
            try:
                st = os.stat(name)
            except OSError:
                continue
            return name, st.st_mtime_ns, st.st_size
        return None


@dataclass
class UIState:
    configs: ConfigSource
    jobs: JobManager = field(default_factory=JobManager)


def create_app(
    *,
    token: str,
    config_path: str | None = None,
    config: Config | None = None,
    allowed_hosts: set[str] | None = None,
) -> AccessGuard:
    """The UI app behind its access guard.

    config: use this configuration instead of reading one (tests); config_path: read this
    file (else ./transship.yaml, ./cfg.yaml). allowed_hosts: see AccessGuard.
    """
    state = UIState(ConfigSource(config_path, config))
    routes = [
        Route("/", _page, methods=["GET"]),
        Route("/i18n/{lang}.json", _messages, methods=["GET"]),
        Route("/api/registries", _with(state, _registries), methods=["GET"]),
        Route("/api/jobs", _with(state, _list_jobs), methods=["GET"]),
        Route("/api/jobs/{job_id}", _with(state, _job_details), methods=["GET"]),
        Route("/api/jobs/{job_id}/events", _with(state, _job_events), methods=["GET"]),
        Route("/api/jobs/{job_id}/cancel", _with(state, _cancel_job), methods=["POST"]),
        Route("/api/jobs/{job_id}/report", _with(state, _job_report), methods=["GET"]),
        *(
            Route(f"/api/{kind}", _with(state, _starter(kind)), methods=["POST"])
            for kind in ACTIONS
        ),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.ui = state
    return AccessGuard(app, token, allowed_hosts)


Handler = Callable[[UIState, Request], Any]


def _with(state: UIState, handler: Handler):
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(state, request)
        except TransshipError as e:
            return _error(400, str(e).splitlines()[0] if str(e) else type(e).__name__)

    return endpoint


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# -- the page and its strings ------------------------------------------------------------------
async def _page(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


async def _messages(request: Request) -> Response:
    lang = request.path_params["lang"]
    if lang not in LANGUAGES:
        return _error(404, f"no messages for language {lang!r}")
    english = catalog("en")
    own = catalog(lang)
    messages = {
        key: own.get(key, text)
        for key, text in english.items()
        if key.startswith(PAGE_KEY_PREFIXES)
    }
    return JSONResponse({"lang": lang, "languages": list(LANGUAGES), "messages": messages})


# -- the API -------------------------------------------------------------------------------------
async def _registries(state: UIState, request: Request) -> Response:
    cfg = state.configs.get()
    registries = [
        {"name": name, "host": reg.host, "rewrite": reg.repository or ""}
        for name, reg in cfg.registries.items()
    ]
    return JSONResponse(
        {
            "registries": registries,
            "defaults": {"maxconn": cfg.maxconn, "retries": cfg.retries, "lang": cfg.lang or ""},
            "config_file": cfg.source_file or "",
            "features": {
                kind: {"available": f.available, "note": f.note, "code": f.code}
                for kind, f in features().items()
            },
            "version": __version__,
        }
    )


def _starter(kind: str) -> Handler:
    async def start(state: UIState, request: Request) -> Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the request body must be JSON")
        try:
            job_request = JobRequest.model_validate(body)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _error(400, f"{where}: {first['msg']}")
        try:
            prepared = prepare(kind, state.configs.get(), job_request)
        except UnsupportedError as e:
            return _error(501, str(e))
        try:
            job = state.jobs.start(prepared.kind, prepared.params, prepared.runner)
        except JobConflict as e:
            return _error(409, str(e))
        return JSONResponse({"job": job.id, "kind": job.kind}, status_code=202)

    return start


async def _list_jobs(state: UIState, request: Request) -> Response:
    return JSONResponse({"jobs": [job.summary() for job in state.jobs.all()]})


def _find(state: UIState, request: Request) -> Job | None:
    return state.jobs.get(request.path_params["job_id"])


async def _job_details(state: UIState, request: Request) -> Response:
    job = _find(state, request)
    if job is None:
        return _error(404, "no such job")
    return JSONResponse(job.details())


async def _cancel_job(state: UIState, request: Request) -> Response:
    job = _find(state, request)
    if job is None:
        return _error(404, "no such job")
    job.cancel.set()
    return JSONResponse({"job": job.id, "status": job.status, "cancelling": job.running})


async def _job_report(state: UIState, request: Request) -> Response:
    job = _find(state, request)
    if job is None or job.report_html is None:
        return _error(404, "no report for this job")
    return HTMLResponse(job.report_html, headers={"content-security-policy": REPORT_POLICY})


async def _job_events(state: UIState, request: Request) -> Response:
    job = _find(state, request)
    if job is None:
        return _error(404, "no such job")
    start = 0
    last_id = request.headers.get("last-event-id")
    if last_id and last_id.isdigit():
        start = int(last_id) + 1  # the browser reconnected: continue after what it has
    return StreamingResponse(
        _event_stream(job, start),
        media_type="text/event-stream",
        headers={"x-accel-buffering": "no"},
    )


async def _event_stream(job: Job, index: int) -> AsyncIterator[str]:
    """Recorded events as they come (`id:` is their index), statistics every few tenths of
    a second as `event: stats`, and `event: end` with the job's status when it is over."""
    stats_sent_at = 0.0
    while True:
        events, finished = job.events_from(index)
        for offset, message in enumerate(events):
            yield _sse(message, event_id=index + offset)
        index += len(events)
        now = time.monotonic()
        if finished or now - stats_sent_at >= STATS_INTERVAL:
            yield _sse(job.stats.snapshot().to_json(), kind="stats")
            stats_sent_at = now
        if finished and not job.events_from(index)[0]:
            yield _sse(job.summary(), kind="end")
            return
        await job.wait(index, STATS_INTERVAL)


def _sse(data: dict[str, Any], *, event_id: int | None = None, kind: str | None = None) -> str:
    lines = []
    if kind:
        lines.append(f"event: {kind}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"
