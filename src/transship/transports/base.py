"""The transport interface: every place an image can live is a Source and/or a Destination.

The copy engine knows nothing else about a transport. All methods are synchronous and
thread-safe: the engine calls them from a pool of worker threads (network and disk I/O,
hashing and compression release the GIL, so threads give real parallelism here).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

from transship.oci.descriptor import Descriptor
from transship.oci.manifest import RawManifest

CHUNK = 1 << 20  # bytes read per call when streaming blobs


@dataclass(frozen=True)
class ImageLocation:
    """Where an image lives inside a transport: repository plus tag and/or digest.

    For transports without repositories (an OCI layout, an archive) `repository` is the
    image name used for `org.opencontainers.image.ref.name` / `RepoTags`.
    """

    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


class Source(ABC):
    """Somewhere images can be read from."""

    name: str = "source"

    @abstractmethod
    def get_manifest(self, repository: str, reference: str) -> RawManifest:
        """The manifest or index under a tag or digest, exact bytes, digest verified
        when `reference` is a digest. Raises NotFoundError."""

    @abstractmethod
    def open_blob(
        self, repository: str, desc: Descriptor, offset: int = 0
    ) -> AbstractContextManager[BinaryIO]:
        """A readable stream of the blob's bytes from `offset`. The caller verifies."""

    def list_tags(self, repository: str) -> list[str]:
        raise NotImplementedError(f"{self.name} cannot list tags")

    def close(self) -> None:
        """Release connections and files."""


class Destination(ABC):
    """Somewhere images can be written to."""

    name: str = "destination"

    @abstractmethod
    def has_blob(self, repository: str, desc: Descriptor) -> bool: ...

    @abstractmethod
    def put_blob(
        self,
        repository: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: ProgressCallback | None = None,
    ) -> None:
        """Store a blob from a stream of chunks; must verify size and digest before the
        blob becomes visible. `chunks` may raise while being read (the source failed);
        the destination must then leave nothing half-written behind."""

    def mount_blob(self, repository: str, desc: Descriptor, from_repository: str) -> bool:
        """Make a blob the destination already holds in another repository available in
        `repository` without sending it. Returns False when not possible."""
        return False

    def blob_written_size(self, repository: str, desc: Descriptor) -> int:
        """How many bytes of an interrupted upload of this blob the destination kept
        (0 where it cannot resume)."""
        return 0

    @abstractmethod
    def has_manifest(self, repository: str, reference: str, digest: str) -> bool: ...

    @abstractmethod
    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> None:
        """Store a manifest under a tag or its digest, exact bytes."""

    def commit(self) -> None:
        """Called once after every image was copied (archives write their index here)."""

    def abort(self) -> None:
        """Called instead of commit when the run is given up; leave nothing that looks
        complete."""

    def close(self) -> None:
        """Release connections and files."""


class ProgressCallback:
    """Called with the number of new bytes each time some are written."""

    def __call__(self, nbytes: int) -> None:  # pragma: no cover - protocol
        raise NotImplementedError


def iter_stream(stream: BinaryIO, chunk_size: int = CHUNK) -> Iterator[bytes]:
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            return
        yield chunk
