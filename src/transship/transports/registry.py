"""The registry transport (`docker://host/repo:tag`): a Source and a Destination over the
distribution API client."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from transship.oci.descriptor import Descriptor
from transship.oci.manifest import RawManifest
from transship.registry.client import RegistryClient
from transship.transports.base import Destination, Source


class RegistrySource(Source):
    def __init__(self, client: RegistryClient):
        self.client = client
        self.name = f"docker://{client.host}"

    def get_manifest(self, repository: str, reference: str) -> RawManifest:
        return self.client.get_manifest(repository, reference)

    @contextmanager
    def open_blob(self, repository: str, desc: Descriptor, offset: int = 0) -> Iterator[BinaryIO]:
        with self.client.open_blob(repository, desc.digest, offset) as stream:
            yield stream  # type: ignore[misc]

    def list_tags(self, repository: str) -> list[str]:
        return self.client.list_tags(repository)

    def close(self) -> None:
        self.client.close()


class RegistryDestination(Destination):
    def __init__(self, client: RegistryClient):
        self.client = client
        client.prepare_for_push()
        self.name = f"docker://{client.host}"

    def has_blob(self, repository: str, desc: Descriptor) -> bool:
        return self.client.head_blob(repository, desc.digest) is not None

    def put_blob(
        self,
        repository: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.client.upload_blob(repository, desc, chunks, progress)

    def mount_blob(self, repository: str, desc: Descriptor, from_repository: str) -> bool:
        return self.client.mount_blob(repository, desc.digest, from_repository)

    def has_manifest(self, repository: str, reference: str, digest: str) -> bool:
        found = self.client.head_manifest(repository, reference)
        return found is not None and found.digest == digest

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> None:
        self.client.put_manifest(repository, reference, manifest)

    def close(self) -> None:
        self.client.close()
