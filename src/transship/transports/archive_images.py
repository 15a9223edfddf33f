"""What an image archive lists, and the index files that end it.

Both archive writers — the file of `oci-archive:` / `docker-archive:` (archive.py) and the
stream sent to the Docker daemon (docker_daemon.py) — record here every manifest they put
in and the name of each image, then ask for the files that follow the blobs: `oci-layout`,
`index.json` and `manifest.json` (see bundle/layout.py for what they hold).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from transship.bundle.layout import LayoutImage, default_platform, layout_members
from transship.oci.descriptor import Platform
from transship.oci.manifest import ImageIndex, RawManifest


class ArchiveImages:
    """The manifests and images of one archive; thread-safe."""

    def __init__(self, platform: Platform | None = None):
        # The platform a docker-archive's manifest.json gets of a multi-platform image.
        self.platform = platform or default_platform()
        self.notes: list[str] = []  # e.g. which platform of an index manifest.json got
        self._lock = threading.Lock()
        self._manifests: dict[str, RawManifest] = {}
        self._images: dict[str, LayoutImage] = {}  # by name (or digest for untagged)

    def add(self, name: str | None, manifest: RawManifest) -> None:
        """A manifest put in the archive; with a name it is an image (the last manifest
        given a name wins)."""
        with self._lock:
            self._manifests[manifest.digest] = manifest
            if name is not None:
                self._images[name] = LayoutImage(name, manifest)

    def add_untagged(self, manifest: RawManifest) -> None:
        """An image without a name (listed unless it is named or a child of an index)."""
        with self._lock:
            self._images.setdefault(manifest.digest, LayoutImage(None, manifest))

    def index_members(self, has_blob: Callable[[str], bool]) -> list[tuple[str, bytes]]:
        """The files that end the archive, after all blobs, as (member name, bytes)."""
        with self._lock:
            images = list(self._images.values())
            manifests = dict(self._manifests)
        children_of_indexes: set[str] = set()
        for image in images:
            parsed = image.manifest.parse()
            if isinstance(parsed, ImageIndex):
                image.children = {
                    d.digest: manifests[d.digest] for d in parsed.manifests if d.digest in manifests
                }
                children_of_indexes.update(d.digest for d in parsed.manifests)
        named = {i.manifest.digest for i in images if i.name}
        images = [
            i for i in images if i.name or (i.manifest.digest not in children_of_indexes | named)
        ]
        return layout_members(images, self.platform, has_blob, self.notes)
