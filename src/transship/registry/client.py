"""A client for the OCI distribution API (registries: Docker Hub, Harbor, distribution, ...).

Written here rather than taken from a library because no maintained Python package covers
what a faithful copier needs all at once: exact manifest bytes, streamed blobs with Range
resume, chunked uploads that can resume, cross-repository mounts, the bearer token flow
with per-scope caching, and typed errors. It sits on httpx, which does the HTTP.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import urlencode

import httpcore
import httpx

from transship import __version__
from transship.errors import (
    AuthError,
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    TransientError,
    UnsupportedError,
)
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor
from transship.oci.digest import is_digest, verify_bytes
from transship.oci.manifest import RawManifest, detect_media_type
from transship.registry.auth import EXTRA_SCOPE, RegistryAuth
from transship.registry.credentials import Credentials

# httpcore reads responses 64 KiB at a time; blob downloads spend a third less CPU with
# 1 MiB reads (measured: 1.6 s -> 1.0 s of CPU per GB). It is a class attribute there,
# not an option, so it is set here if present.
if hasattr(httpcore, "HTTP11Connection") and hasattr(httpcore.HTTP11Connection, "READ_NUM_BYTES"):
    httpcore.HTTP11Connection.READ_NUM_BYTES = 1 << 20

SMALL_BLOB = 1 << 20  # blobs up to this size are uploaded in a single PUT
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
_MAX_MANIFEST = 4 << 20
_PROBE_TIMEOUT = 5.0  # seconds to wait for TLS from a loopback registry that may speak http  # registries refuse bigger manifests; so do we


@dataclass(frozen=True)
class RegistryEndpoint:
    """How to reach one registry."""

    host: str  # host[:port], as in image references
    insecure: bool = False  # plain http
    verify_tls: bool = True
    ca_file: str | None = None
    credentials: Credentials | None = None

    @property
    def scheme(self) -> str:
        return "http" if self.insecure else "https"


def is_loopback(host: str) -> bool:
    name = (
        host.rsplit(":", 1)[0].strip("[]") if not host.startswith("[") else host[1:].split("]")[0]
    )
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _ssl_context(endpoint: RegistryEndpoint) -> ssl.SSLContext | bool:
    if not endpoint.verify_tls:
        return False
    context = ssl.create_default_context(cafile=endpoint.ca_file) if endpoint.ca_file else True
    return context


def _error_detail(response: httpx.Response) -> tuple[str, str | None]:
    """The registry's own error code and message, from the spec's JSON error body."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        return str(first.get("message") or first.get("code")), first.get("code")
    except Exception:
        return response.reason_phrase or f"HTTP {response.status_code}", None


class RegistryClient:
    """Thread-safe; one per registry, shared by all workers."""

    def __init__(
        self,
        endpoint: RegistryEndpoint,
        *,
        max_connections: int = 16,
        timeout: float = 60.0,
    ):
        self.endpoint = endpoint
        self._scheme = endpoint.scheme
        verify = _ssl_context(endpoint)
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        headers = {"User-Agent": f"transship/{__version__}"}
        timeouts = httpx.Timeout(timeout, connect=min(timeout, 15.0))
        token_client = httpx.Client(
            verify=verify, timeout=timeouts, headers=headers, follow_redirects=True
        )
        self._auth = RegistryAuth(endpoint.credentials, token_client)
        self._http = httpx.Client(
            verify=verify,
            timeout=timeouts,
            limits=limits,
            headers=headers,
            auth=self._auth,
            # Redirects (to blob storage backends) are followed; httpx drops the
            # Authorization header when a redirect leaves the registry's origin.
            follow_redirects=True,
        )
        self._token_client = token_client
        self._ping_lock = threading.Lock()
        self._pinged = False

    # -- plumbing ---------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self.endpoint.host

    def url(self, path: str) -> str:
        return f"{self._scheme}://{self.endpoint.host}{path}"

    def close(self) -> None:
        self._http.close()
        self._token_client.close()

    def _request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        ok: Iterable[int] = (200,),
        stream: bool = False,
        **kwargs,
    ) -> httpx.Response:
        self.ping()
        if url.startswith("/"):  # a path: the scheme is known only after the ping
            url = self.url(url)
        try:
            request = self._http.build_request(method, url, **kwargs)
            response = self._http.send(request, stream=stream)
        except httpx.TimeoutException:
            raise TransientError(f"{self.host}: timed out during {what}") from None
        except (httpx.TransportError, httpx.StreamError) as e:
            raise TransientError(
                f"{self.host}: connection failed during {what}: {_short(e)}"
            ) from None
        if response.status_code in ok:
            return response
        if stream:
            response.read()
            response.close()
        self._raise_for(response, what)
        raise AssertionError("unreachable")

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        message, code = _error_detail(response)
        text = f"{self.host}: {what}: {message} (HTTP {status})"
        if status in (401, 403):
            raise AuthError(text, status, code)
        if code in ("DIGEST_INVALID", "SIZE_INVALID"):
            raise DigestMismatchError(text)
        if status == 404 or code in ("MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN"):
            raise NotFoundError(text, status, code)
        if status in _RETRYABLE_STATUS:
            raise TransientError(text, status, code)
        raise RegistryError(text, status, code)

    def ping(self) -> None:
        """Check the registry speaks the v2 API; for loopback hosts not marked insecure,
        fall back to plain http when the server does not speak TLS (as Docker does)."""
        if self._pinged:
            return
        with self._ping_lock:
            if self._pinged:
                return
            may_fall_back = self._scheme == "https" and is_loopback(self.host)
            # A plain-http server may never answer a TLS hello: do not wait long for it.
            timeout = _PROBE_TIMEOUT if may_fall_back else httpx.USE_CLIENT_DEFAULT
            try:
                response = self._http.get(self.url("/v2/"), timeout=timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as e:
                speaks_http = isinstance(e, httpx.TimeoutException) or _speaks_plain_http(e)
                if not (may_fall_back and speaks_http):
                    raise RegistryError(f"{self.host}: unreachable: {_short(e)}") from None
                self._scheme = "http"
                try:
                    response = self._http.get(self.url("/v2/"))
                except httpx.HTTPError as e2:
                    raise RegistryError(f"{self.host}: unreachable: {_short(e2)}") from None
            except httpx.TimeoutException:
                raise TransientError(f"{self.host}: timed out connecting") from None
            except httpx.HTTPError as e:
                raise RegistryError(f"{self.host}: unreachable: {_short(e)}") from None
            except AuthError:
                raise
            if response.status_code == 404:
                raise RegistryError(
                    f"{self.host}: does not speak the registry v2 API (/v2/ not found)"
                )
            if response.status_code >= 400:
                self._raise_for(response, "ping")
            self._pinged = True

    def prepare_for_push(self) -> None:
        """Ask for push rights from the first request on (one token instead of two)."""
        self._auth.push_intent = True

    # -- manifests --------------------------------------------------------------------
    def get_manifest(self, repository: str, reference: str) -> RawManifest:
        what = (
            f"manifest {repository}:{reference}"
            if not is_digest(reference)
            else f"manifest {repository}@{reference}"
        )
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            what=what,
            headers={"Accept": mt.MANIFEST_ACCEPT},
        )
        data = response.content
        if len(data) > _MAX_MANIFEST:
            raise UnsupportedError(f"{what}: manifest larger than {_MAX_MANIFEST} bytes")
        media_type = detect_media_type(data, response.headers.get("content-type"))
        if media_type in mt.SCHEMA1_TYPES:
            raise UnsupportedError(
                f"{what}: Docker schema 1 manifests are not supported; push the image again with a current Docker"
            )
        if is_digest(reference):
            verify_bytes(data, reference, what)
            return RawManifest(data, media_type, reference)
        raw = RawManifest(data, media_type)
        served = response.headers.get("docker-content-digest")
        if served and served.startswith("sha256:") and served != raw.digest:
            raise TransientError(
                f"{what}: registry says digest {served} but the bytes hash to {raw.digest}"
            )
        return raw

    def head_manifest(self, repository: str, reference: str) -> Descriptor | None:
        try:
            response = self._request(
                "HEAD",
                f"/v2/{repository}/manifests/{reference}",
                what=f"manifest {repository}:{reference}",
                headers={"Accept": mt.MANIFEST_ACCEPT},
            )
        except NotFoundError:
            return None
        digest = response.headers.get("docker-content-digest", "")
        return Descriptor(
            response.headers.get("content-type", ""),
            digest,
            int(response.headers.get("content-length", -1)),
        )

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> None:
        response = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            what=f"push manifest {repository}:{reference}",
            ok=(200, 201, 202),
            content=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        served = response.headers.get("docker-content-digest")
        if served and served != manifest.digest:
            raise RegistryError(
                f"{self.host}: registry stored manifest {repository}:{reference} as {served}, not {manifest.digest}"
            )

    # -- blobs ------------------------------------------------------------------------
    def head_blob(self, repository: str, digest: str) -> int | None:
        """The blob's size if the repository has it, else None."""
        try:
            response = self._request(
                "HEAD", f"/v2/{repository}/blobs/{digest}", what=f"blob {digest[:19]}"
            )
        except NotFoundError:
            return None
        return int(response.headers.get("content-length", -1))

    @contextmanager
    def open_blob(self, repository: str, digest: str, offset: int = 0) -> Iterator[BlobStream]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self._request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            what=f"blob {repository}@{digest[:19]}",
            ok=(200, 206),
            stream=True,
            headers=headers,
        )
        try:
            skip = offset if (offset and response.status_code == 200) else 0
            yield BlobStream(response, skip, self.host)
        finally:
            response.close()

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Ask the registry to link a blob it has in `from_repository`; True if it did."""
        query = urlencode({"mount": digest, "from": from_repository})
        response = self._request(
            "POST",
            f"/v2/{repository}/blobs/uploads/?{query}",
            what=f"mount {digest[:19]} from {from_repository}",
            ok=(201, 202),
            extensions={EXTRA_SCOPE: f"repository:{from_repository}:pull"},
        )
        if response.status_code == 201:
            return True
        # 202: the registry started an ordinary upload instead; do not leave it open.
        location = response.headers.get("location")
        if location:
            with suppress(httpx.HTTPError):
                self._http.delete(self._absolute(location))
        return False

    def _absolute(self, location: str) -> str:
        if location.startswith(("http://", "https://")):
            return location
        return self.url(location if location.startswith("/") else f"/{location}")

    def _start_upload(self, repository: str) -> str:
        response = self._request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            what=f"start upload to {repository}",
            ok=(202,),
        )
        location = response.headers.get("location")
        if not location:
            raise RegistryError(f"{self.host}: upload to {repository} started without a Location")
        return self._absolute(location)

    def upload_blob(
        self,
        repository: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Upload a blob; the registry checks its digest before it becomes visible.

        Small blobs go in one PUT; larger ones stream in one PATCH, as skopeo does, with
        nothing buffered. A PATCH that breaks off is not resumed: the distribution
        registry drops an upload whose request broke (its status then answers
        BLOB_UPLOAD_INVALID), so the caller starts the blob over; the source side of a
        transfer resumes from the byte reached (engine/retry.py).
        """
        location = self._start_upload(repository)
        if 0 <= desc.size <= SMALL_BLOB:
            data = b"".join(chunks)
            self._finish_upload(location, desc, data)
            if progress:
                progress(len(data))
            return
        location = self._patch(location, _CountingStream(chunks, progress), desc)
        self._finish_upload(location, desc, b"")

    def _patch(self, location: str, body: _CountingStream, desc: Descriptor) -> str:
        headers = {"Content-Type": "application/octet-stream"}
        if desc.size >= 0:
            headers["Content-Length"] = str(desc.size)
        response = self._request(
            "PATCH",
            location,
            what=f"upload of {desc.digest[:19]}",
            ok=(202, 204),
            content=body,
            headers=headers,
        )
        new_location = response.headers.get("location")
        return self._absolute(new_location) if new_location else location

    def _finish_upload(self, location: str, desc: Descriptor, body: bytes) -> None:
        separator = "&" if "?" in location else "?"
        self._request(
            "PUT",
            f"{location}{separator}{urlencode({'digest': desc.digest})}",
            what=f"finish upload of {desc.digest[:19]}",
            ok=(201, 204),
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )

    # -- listings ---------------------------------------------------------------------
    def _paginate(self, path: str, key: str, what: str) -> list[str]:
        out: list[str] = []
        url = path
        for _ in range(10000):
            response = self._request("GET", url, what=what)
            try:
                out.extend(response.json().get(key) or [])
            except ValueError:
                raise RegistryError(f"{self.host}: {what}: answer is not JSON") from None
            link = response.headers.get("link")
            m = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", link or "")
            if not m:
                return out
            url = self._absolute(m.group(1))
        return out

    def list_tags(self, repository: str, page_size: int = 1000) -> list[str]:
        return self._paginate(
            f"/v2/{repository}/tags/list?n={page_size}", "tags", f"tags of {repository}"
        )

    def catalog(self, page_size: int = 1000) -> list[str]:
        return self._paginate(f"/v2/_catalog?n={page_size}", "repositories", "catalog")


class _CountingStream:
    """A request body that reports the bytes it hands to the connection."""

    def __init__(self, chunks: Iterable[bytes], progress: Callable[[int], None] | None):
        self._chunks = chunks
        self._progress = progress

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self._progress:
                self._progress(len(chunk))
            yield chunk


class BlobStream:
    """A readable stream over a blob GET; `read(n)` like a file. The body is taken as the
    connection delivers it and `read` joins the pieces: one copy of each byte, where
    httpx's fixed-size chunking (`iter_raw(size)`) makes three, each into freshly
    allocated memory."""

    def __init__(self, response: httpx.Response, skip: int, host: str):
        self._response = response
        self._iter = response.iter_raw()
        self._buffer = b""
        self._skip = skip
        self._host = host

    def _next(self) -> bytes:
        try:
            return next(self._iter)
        except StopIteration:
            return b""
        except (httpx.TransportError, httpx.StreamError) as e:
            raise TransientError(f"{self._host}: blob download broke off: {_short(e)}") from None

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all that is left with -1); fewer only at the end."""
        while self._skip:
            piece = self._next()
            if not piece:
                return b""
            if len(piece) <= self._skip:
                self._skip -= len(piece)
                continue
            self._buffer = piece[self._skip :]
            self._skip = 0
        if 0 <= n <= len(self._buffer):
            out, self._buffer = self._buffer[:n], self._buffer[n:]
            return out
        parts = [self._buffer] if self._buffer else []
        have = len(self._buffer)
        self._buffer = b""
        while n < 0 or have < n:
            piece = self._next()
            if not piece:
                break
            if n >= 0 and have + len(piece) > n:
                cut = n - have
                piece, self._buffer = piece[:cut], piece[cut:]
            parts.append(piece)
            have += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self._response.close()


def _speaks_plain_http(error: Exception) -> bool:
    text = str(error).lower()
    return (
        "wrong version number" in text or "record layer failure" in text or "http_request" in text
    )


def _short(error: Exception) -> str:
    """An exception as a short phrase, without URLs that could carry tokens."""
    text = str(error) or type(error).__name__
    text = re.sub(r"https?://\S+", "<url>", text)
    return text.splitlines()[0][:200]
