"""A minimal Docker token-auth server for tests (the `realm` a registry sends clients to).

Speaks the token protocol distribution implements
(GET /token?service=...&scope=... with optional basic auth, and the OAuth2 form POST),
signs ES256 JWTs with a key whose certificate the registry trusts, and records every
request so tests can check that a client caches tokens and re-authenticates on expiry.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt

from .pki import TokenSigningKey

# distribution accepts a token up to this long after its `exp` claim (clock-skew leeway).
REGISTRY_EXPIRY_LEEWAY_SECONDS = 60


@dataclass(frozen=True)
class TokenRequest:
    """One request the issuer answered (or refused)."""

    method: str
    username: str | None  # None for anonymous requests
    service: str | None
    scopes: tuple[str, ...]
    granted: bool


@dataclass
class TokenIssuer:
    """Token server on 127.0.0.1 in a background thread.

    users: username -> password accepted via basic auth (GET) or the password grant (POST).
    allow_anonymous: requests without credentials get pull-only tokens instead of 401.
    expires_in: token lifetime in seconds, as told to the client.
    exact_expiry: shift the JWT `exp` claim back by the registry's 60 s leeway so the registry
        itself rejects the token after `expires_in` seconds (lets tests exercise re-auth fast).
    key_mode: "kid" puts the libtrust key ID in the JWT header, "x5c" embeds the certificate.
    """

    signing_key: TokenSigningKey
    service: str = "transship-test-registry"
    issuer: str = "transship-test-issuer"
    users: dict[str, str] = field(default_factory=lambda: {"tokenuser": "tokenpass"})
    allow_anonymous: bool = False
    expires_in: int = 300
    exact_expiry: bool = True
    key_mode: str = "kid"
    requests: list[TokenRequest] = field(default_factory=list, init=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> TokenIssuer:
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="token-issuer",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> TokenIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("token issuer is not running")
        return self._server.server_address[1]

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    # -- counters for tests ------------------------------------------------------------------
    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def count_by_scope(self) -> Counter[str]:
        """How many tokens were asked for each scope string (one request may ask several)."""
        with self._lock:
            counter: Counter[str] = Counter()
            for request in self.requests:
                counter.update(request.scopes or ("",))
            return counter

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- token making ----------------------------------------------------------------------
    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def make_token(self, subject: str, scopes: tuple[str, ...], anonymous: bool) -> str:
        now = int(time.time())
        expiry = now + self.expires_in
        if self.exact_expiry:
            expiry -= REGISTRY_EXPIRY_LEEWAY_SECONDS
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": expiry,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": _access_claims(scopes, pull_only=anonymous),
        }
        if self.key_mode == "kid":
            headers = {"kid": self.signing_key.key_id}
        elif self.key_mode == "x5c":
            headers = {"x5c": self.signing_key.x5c}
        else:
            raise ValueError(f"unknown key_mode {self.key_mode!r}")
        return jwt.encode(
            claims, self.signing_key.private_key_pem, algorithm="ES256", headers=headers
        )

    def authenticate(self, username: str | None, password: str | None) -> bool:
        if username is None:
            return self.allow_anonymous
        return self.users.get(username) == password and password is not None


def _access_claims(scopes: tuple[str, ...], pull_only: bool) -> list[dict[str, object]]:
    """Grant what each scope asks for ("repository:name:pull,push"; names may contain ':')."""
    access: list[dict[str, object]] = []
    for scope in scopes:
        for one_scope in scope.split(" "):
            parts = one_scope.split(":")
            if len(parts) < 3:
                continue
            resource_type, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
            wanted = [a for a in actions.split(",") if a]
            if pull_only:
                wanted = [a for a in wanted if a == "pull"]
            access.append({"type": resource_type, "name": name, "actions": wanted})
    return access


def _basic_credentials(header: str | None) -> tuple[str | None, str | None] | None:
    """(user, password) from an Authorization header; (None, None) if absent; None if malformed."""
    if not header:
        return None, None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not sep:
        return None
    return user, password


def _handler_for(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class TokenHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep test output clean

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path != "/token":
                self._send_json(404, {"error": "not found"})
                return
            query = parse_qs(url.query)
            credentials = _basic_credentials(self.headers.get("Authorization"))
            self._issue(
                "GET",
                credentials,
                service=_first(query.get("service")),
                scopes=tuple(query.get("scope", [])),
            )

        def do_POST(self) -> None:  # noqa: N802
            if urlsplit(self.path).path != "/token":
                self._send_json(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            if _first(form.get("grant_type")) != "password":
                # refresh_token grants are not supported: clients must fall back to GET.
                self._send_json(400, {"error": "unsupported_grant_type"})
                return
            credentials = (_first(form.get("username")), _first(form.get("password")))
            self._issue(
                "POST",
                credentials,
                service=_first(form.get("service")),
                scopes=tuple(s for s in _first(form.get("scope"), "").split(" ") if s),
            )

        def _issue(
            self,
            method: str,
            credentials: tuple[str | None, str | None] | None,
            service: str | None,
            scopes: tuple[str, ...],
        ) -> None:
            username, password = credentials if credentials else (None, None)
            granted = credentials is not None and issuer.authenticate(username, password)
            issuer._record(TokenRequest(method, username, service, scopes, granted))
            if not granted:
                self._send_json(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                    extra_headers={"WWW-Authenticate": 'Basic realm="token"'},
                )
                return
            if service is not None and service != issuer.service:
                self._send_json(400, {"error": f"unknown service {service!r}"})
                return
            token = issuer.make_token(username or "", scopes, anonymous=username is None)
            self._send_json(
                200,
                {
                    "token": token,
                    "access_token": token,
                    "expires_in": issuer.expires_in,
                    "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )

        def _send_json(
            self, status: int, body: object, extra_headers: dict[str, str] | None = None
        ) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (extra_headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return TokenHandler


def _first(values: list[str] | None, default: str | None = None) -> str | None:
    return values[0] if values else default
