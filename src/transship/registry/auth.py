"""Registry authentication: Basic and the Docker/OCI bearer token flow.

The flow is the one in the distribution spec (docs/spec/auth/token.md): a request answered
401 carries `WWW-Authenticate: Bearer realm=...,service=...,scope=...`; we ask the realm for a
token for that scope (with Basic credentials when we have some), cache it per scope until it
expires, and send it as `Authorization: Bearer`. httpx has no such flow built in, so it is
here, as an `httpx.Auth` that works with the client's connection pool.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass

import httpx

from transship.errors import AuthError, RegistryError, TransientError
from transship.registry.credentials import Credentials

_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


# Request extension naming one more scope a request needs (pull on the repository a blob
# is mounted from).
EXTRA_SCOPE = "transship.extra_scope"


def basic_header(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode()


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic"
    params: dict[str, str]


def parse_www_authenticate(header: str) -> Challenge | None:
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _PARAM_RE.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def scope_for(path: str, method: str, push: bool = False) -> str | None:
    """The token scope a request to /v2/<name>/... needs: pull, or pull,push to write."""
    m = re.match(r"^/v2/(.+?)/(manifests|blobs|tags)/", path)
    if not m:
        return "registry:catalog:*" if path.startswith("/v2/_catalog") else None
    action = "pull" if method in ("GET", "HEAD") and not push else "pull,push"
    return f"repository:{m.group(1)}:{action}"


class RegistryAuth(httpx.Auth):
    """Adds credentials to requests; answers 401 challenges (Basic or Bearer) once."""

    requires_response_body = False  # blob GETs must stream

    def __init__(self, credentials: Credentials | None, token_client: httpx.Client):
        self.credentials = credentials
        self._token_client = token_client
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, expires_at)
        self._fetch_locks: dict[str, threading.Lock] = {}
        # Set for destinations: ask pull+push tokens up front, so HEADs and uploads share one.
        self.push_intent = False
        self._bearer: Challenge | None = None  # the realm/service learnt from a challenge
        self._basic = False  # the registry asked for Basic

    # -- httpx.Auth -------------------------------------------------------------------
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scope = self._scope_of(request)
        self._apply(request, scope)
        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_www_authenticate(response.headers.get("www-authenticate", ""))
        if challenge is None:
            raise AuthError(f"{request.url.host}: 401 Unauthorized without a challenge")
        if challenge.scheme == "basic":
            if not self.credentials:
                raise AuthError(
                    f"{request.url.host}: authentication required; give a user and password"
                )
            if self._basic:  # we already sent Basic credentials and they were refused
                raise AuthError(
                    f"{request.url.host}: user {self.credentials.username!r} was refused (wrong password?)"
                )
            self._basic = True
        elif challenge.scheme == "bearer":
            self._bearer = challenge
            asked = challenge.params.get("scope")
            if asked and asked not in (scope or "").split():
                scope = f"{scope} {asked}" if scope else asked
            self._token_for(scope, stale=request.headers.get("Authorization"))
        else:
            raise AuthError(f"{request.url.host}: unsupported auth scheme {challenge.scheme!r}")
        if not isinstance(request.stream, httpx.ByteStream):
            # A streamed body cannot be sent twice; the caller retries the whole upload.
            raise TransientError(
                f"{request.url.host}: credentials expired during a streamed upload"
            )
        self._apply(request, scope)
        response = yield request
        if response.status_code == 401:
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous access"
            raise AuthError(
                f"{request.url.host}: {who} is not authorized for {scope or request.url.path}"
            )

    # -- helpers ----------------------------------------------------------------------
    def _scope_of(self, request: httpx.Request) -> str | None:
        scope = scope_for(request.url.path, request.method, self.push_intent)
        extra = request.extensions.get(EXTRA_SCOPE)
        return f"{scope} {extra}" if scope and extra else scope

    @staticmethod
    def _key(scope: str | None) -> str:
        return scope or ""

    def _apply(self, request: httpx.Request, scope: str | None) -> None:
        if self._bearer is not None:
            token = self._token_for(scope)
            if token:
                request.headers["Authorization"] = f"Bearer {token}"
            return
        if self._basic and self.credentials:
            request.headers["Authorization"] = basic_header(self.credentials)

    def _token_for(self, scope: str | None, stale: str | None = None) -> str | None:
        """A valid token for the scope; fetched once even when many threads ask at once.
        `stale` is the Authorization header a 401 refused: a token other than that one,
        fetched meanwhile by another thread, is good."""
        with self._lock:
            scope_lock = self._fetch_locks.setdefault(self._key(scope), threading.Lock())
        with scope_lock:
            token = self._cached_token(scope)
            if token and f"Bearer {token}" != stale:
                return token
            return self._fetch_token(scope)

    def _cached_token(self, scope: str | None) -> str | None:
        with self._lock:
            entry = self._tokens.get(self._key(scope))
        if entry and entry[1] > time.monotonic() + 10:
            return entry[0]
        return None

    def _fetch_token(self, scope: str | None) -> str | None:
        assert self._bearer is not None
        realm = self._bearer.params.get("realm")
        if not realm:
            raise AuthError("bearer challenge without a realm")
        params: list[tuple[str, str]] = []
        if self._bearer.params.get("service"):
            params.append(("service", self._bearer.params["service"]))
        for s in (scope or "").split():
            params.append(("scope", s))
        auth = None
        if self.credentials and not self.credentials.identity_token:
            auth = httpx.BasicAuth(self.credentials.username, self.credentials.password)
        try:
            if self.credentials and self.credentials.identity_token:
                data = {
                    "grant_type": "refresh_token",
                    "refresh_token": self.credentials.password,
                    "service": self._bearer.params.get("service", ""),
                    "scope": scope or "",
                    "client_id": "transship",
                }
                response = self._token_client.post(realm, data=data)
            else:
                response = self._token_client.get(realm, params=params, auth=auth)
        except httpx.HTTPError as e:
            raise RegistryError(
                f"token service {httpx.URL(realm).host} unreachable: {type(e).__name__}"
            ) from None
        if response.status_code in (401, 403):
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous access"
            raise AuthError(
                f"token service {httpx.URL(realm).host} refused {who} (wrong password?)"
            )
        if response.status_code >= 400:
            raise RegistryError(
                f"token service {httpx.URL(realm).host} answered {response.status_code}",
                status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError:
            raise RegistryError(
                f"token service {httpx.URL(realm).host} answered something that is not JSON"
            ) from None
        token = body.get("token") or body.get("access_token")
        if not token:
            raise AuthError(f"token service {httpx.URL(realm).host} gave no token")
        expires_in = int(body.get("expires_in") or 60)
        with self._lock:
            self._tokens[self._key(scope)] = (token, time.monotonic() + expires_in)
        return token
