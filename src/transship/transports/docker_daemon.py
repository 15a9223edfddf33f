"""`docker-daemon:` — load images into a Docker Engine by streaming a docker-archive to
`POST /images/load` over its unix socket.

The archive (see archive.py: also an OCI layout) is produced on the fly and sent as a
chunked request body while blobs arrive; nothing is written to disk but one blob at a
time: each blob is first spooled to a temporary file and verified, so only complete,
verified blobs enter the stream. `manifest.json` and `index.json` go last, at `commit()`,
then the daemon's answer is read. On `abort()` the request is cut off mid-archive, and
the daemon rejects the truncated archive: nothing is loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from transship.bundle.datafile import io_error, write_verified_file
from transship.bundle.layout import blob_path
from transship.bundle.tarfmt import EOF_MARKER, member_header, padding
from transship.errors import TransshipError
from transship.oci.descriptor import Descriptor, Platform
from transship.oci.digest import is_digest
from transship.oci.manifest import RawManifest
from transship.transports.archive_images import ArchiveImages
from transship.transports.base import Destination, ProgressCallback, iter_stream
from transship.transports.oci_layout import image_name

DEFAULT_SOCKET = "/var/run/docker.sock"
_END = object()


class DaemonError(TransshipError):
    """The Docker daemon could not be reached or refused the images."""


def socket_from_env() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://") :]
    return DEFAULT_SOCKET


class _BodyPipe:
    """Bytes handed from writer threads to the HTTP request body, with backpressure."""

    def __init__(self, depth: int = 8):
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)

    def send(self, data: bytes | object, alive: Callable[[], bool]) -> None:
        while True:
            try:
                self._queue.put(data, timeout=0.2)
                return
            except queue.Full:
                if not alive():
                    raise DaemonError(
                        "the Docker daemon stopped reading the image archive"
                    ) from None

    def body(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item


class DockerDaemonDestination(Destination):
    name = "docker-daemon"

    def __init__(
        self,
        socket_path: str | None = None,
        ref: str | None = None,
        platform: Platform | None = None,
        spool_dir: str | Path | None = None,
        timeout: float | None = None,
    ):
        self.socket_path = socket_path or socket_from_env()
        self.ref = ref
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self.timeout = timeout
        self._lock = threading.Lock()  # one member at a time enters the stream
        self._blobs: set[str] = set()
        self._images = ArchiveImages(platform)
        self._pipe = _BodyPipe()
        self._thread: threading.Thread | None = None
        self._response: dict[str, Any] = {}
        self.loaded: list[str] = []
        self.notes = self._images.notes  # e.g. the platform an index was reduced to

    # -- the request -----------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._post, name="docker-load", daemon=True)
        self._thread.start()

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _post(self) -> None:
        transport = httpx.HTTPTransport(uds=self.socket_path)
        try:
            # Loading big images takes a while: no read timeout unless asked, but a daemon
            # that is not there is noticed at once.
            timeout = httpx.Timeout(self.timeout, connect=10.0)
            with httpx.Client(transport=transport, timeout=timeout) as client:
                response = client.post(
                    "http://docker/images/load",
                    params={"quiet": "1"},
                    content=self._pipe.body(),
                    headers={"Content-Type": "application/x-tar"},
                )
                self._response = {"status": response.status_code, "text": response.text}
        except BaseException as e:  # reported by commit()
            self._response = {"error": e}

    def _send(self, data: bytes) -> None:
        self._start()
        self._pipe.send(data, self._alive)

    def _send_member(self, name: str, size: int, chunks: Iterable[bytes]) -> None:
        self._send(member_header(name, size))
        for chunk in chunks:
            self._send(chunk)
        if padding(size):
            self._send(b"\0" * padding(size))

    # -- Destination -----------------------------------------------------------------------

    def has_blob(self, repository: str, desc: Descriptor) -> bool:
        with self._lock:
            return desc.digest in self._blobs

    def put_blob(
        self,
        repository: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: ProgressCallback | Callable[[int], None] | None = None,
    ) -> None:
        # Spool and verify first: a blob that turns out bad never enters the stream.
        directory = self.spool_dir or Path(tempfile.gettempdir())
        try:
            fd, name = tempfile.mkstemp(prefix="transship-docker-load.", dir=directory)
            os.close(fd)
        except OSError as e:
            raise io_error(directory, e, "spooling a blob in") from None
        spool = Path(name)
        try:
            write_verified_file(spool, desc, chunks, progress, sync=False)
            with self._lock:
                if desc.digest in self._blobs:
                    return
                with open(spool, "rb") as f:
                    self._send_member(blob_path(desc.digest), desc.size, iter_stream(f))
                self._blobs.add(desc.digest)
        finally:
            spool.unlink(missing_ok=True)

    def has_manifest(self, repository: str, reference: str, digest: str) -> bool:
        return False

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> None:
        with self._lock:
            if manifest.digest not in self._blobs:
                self._send_member(blob_path(manifest.digest), len(manifest.data), [manifest.data])
                self._blobs.add(manifest.digest)
            # By digest only: in the stream, but not listed (docker load names images by tag).
            name = None if is_digest(reference) else image_name(self.ref, repository, reference)
            self._images.add(name, manifest)

    def commit(self) -> None:
        with self._lock:
            for name, data in self._images.index_members(self._blobs.__contains__):
                self._send_member(name, len(data), [data])
            self._send(EOF_MARKER)
            self._pipe.send(_END, self._alive)
        assert self._thread is not None
        self._thread.join()
        self._check_response()

    def _check_response(self) -> None:
        if "error" in self._response:
            error = self._response["error"]
            raise DaemonError(
                f"cannot load images into the Docker daemon at {self.socket_path}: {error}"
            )
        status, text = self._response.get("status"), self._response.get("text", "")
        if status != 200:
            raise DaemonError(f"the Docker daemon refused the images (HTTP {status}): {text[:300]}")
        for line in text.splitlines():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            if message.get("error") or message.get("errorDetail"):
                detail = message.get("errorDetail") or {}
                raise DaemonError(
                    "the Docker daemon refused the images: "
                    f"{detail.get('message') or message.get('error')}"
                )
            stream = message.get("stream", "")
            if stream.strip():
                self.loaded.append(stream.strip())

    def abort(self) -> None:
        if self._thread is None:
            return
        # Cut the body off: the daemon sees a broken archive and loads nothing.
        with contextlib.suppress(DaemonError):
            self._pipe.send(DaemonError("transfer aborted"), self._alive)
        self._thread.join(timeout=30)
