"""Helpers for the web UI tests: a test client with a token, SSE parsing, and a gate proxy
that holds blob downloads of a real registry until the test lets them through."""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml
from starlette.testclient import TestClient

from transship.config import parse_config
from transship.web.app import create_app

TOKEN = "test-token-0123456789"
AUTH = {"X-Transship-Token": TOKEN}


def ui_client(registries: dict[str, Any], **app_options: Any) -> TestClient:
    text = yaml.safe_dump({"registries": registries, "maxconn": 3, "retries": 1}, sort_keys=False)
    app = create_app(token=TOKEN, config=parse_config(text, "ui-test.yaml"), **app_options)
    return TestClient(app)


@dataclass(frozen=True)
class ServerSentEvent:
    kind: str  # "message" for engine events, "stats", "end"
    data: dict[str, Any]
    id: int | None = None


def parse_sse(text: str) -> list[ServerSentEvent]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        kind, data, event_id = "message", [], None
        for line in block.splitlines():
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = int(value)
        if data:
            out.append(ServerSentEvent(kind, json.loads("\n".join(data)), event_id))
    return out


def engine_events(events: list[ServerSentEvent]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.kind == "message"]


class GateProxy:
    """A read-only HTTP proxy in front of a registry; blob GETs wait until `release()`.

    Only GET and HEAD are forwarded: enough for a copy source.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.blob_waiting = threading.Event()
        self._open = threading.Event()
        self.blob_gets = 0
        self._lock = threading.Lock()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                gate._forward(self)

            def do_HEAD(self) -> None:
                gate._forward(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> GateProxy:
        self._thread.start()
        return self

    def release(self) -> None:
        self._open.set()

    def stop(self) -> None:
        self._open.set()
        self._server.shutdown()
        self._server.server_close()

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.command == "GET" and "/blobs/" in handler.path:
            with self._lock:
                self.blob_gets += 1
            self.blob_waiting.set()
            self._open.wait(timeout=60)
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "connection"}
            upstream.request(handler.command, handler.path, headers=headers)
            response = upstream.getresponse()
            body = response.read()
        finally:
            upstream.close()
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() in ("transfer-encoding", "connection"):
                continue
            if key.lower() == "content-length" and handler.command != "HEAD":
                continue
            handler.send_header(key, value)
        if handler.command != "HEAD":
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)
