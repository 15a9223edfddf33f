"""Who may drive the UI: the holder of the per-start token, from the UI's own origin.

The server listens on loopback, but every local user and every web page open in a local
browser can reach loopback too. So every API call must carry the random token printed at
start (header `X-Transship-Token`; the `token` query parameter too for the event stream,
which browsers open without custom headers), must come from the same origin (checked on
`Origin` and `Sec-Fetch-Site`), and must name an expected `Host` (against DNS rebinding).
Every response carries headers that forbid framing, inline scripts and foreign resources.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_HEADER = "x-transship-token"
API_PREFIX = "/api/"

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


def new_token() -> str:
    return secrets.token_urlsafe(24)


def loopback_hosts(port: int) -> set[str]:
    """The Host headers a browser sends for the loopback addresses on `port`."""
    return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}


class AccessGuard:
    """ASGI middleware enforcing the token, the origin and the host (see module docstring).

    allowed_hosts: Host header values accepted; None accepts any (remote access, tests).
    """

    def __init__(self, app: ASGIApp, token: str, allowed_hosts: Iterable[str] | None = None):
        self.app = app
        self.token = token
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "").lower()
        problem = self._host_problem(host)
        if problem is None and scope["path"].startswith(API_PREFIX):
            problem = self._api_problem(scope, headers, host)
        if problem is not None:
            status, message = problem
            await _send_json(send, status, {"error": message})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                # A response may set its own policy (a report page); the rest get ours.
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _host_problem(self, host: str) -> tuple[int, str] | None:
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return 421, "unexpected Host header: open the address transship ui printed"
        return None

    def _api_problem(self, scope: Scope, headers: Headers, host: str) -> tuple[int, str] | None:
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scope.get('scheme', 'http')}://{host}":
            return 403, "cross-origin request refused"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "cross-site request refused"
        given = headers.get(TOKEN_HEADER)
        if given is None and scope["method"] == "GET":
            given = QueryParams(scope.get("query_string", b"")).get("token")
        if not given or not secrets.compare_digest(given.encode(), self.token.encode()):
            return 401, "missing or wrong access token: open the address transship ui printed"
        return None


async def _send_json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
