"""`oci:DIR[:ref]` — an OCI image layout directory, as Source and Destination.

Images are named by the `org.opencontainers.image.ref.name` annotation of `index.json`.
Written as `repository:tag` unless the spec gave a ref (`oci:DIR:ref`, as skopeo does).
Read by trying, in order: `repository:tag`, the bare tag, containerd's full image name;
and, when the layout holds a single image, that image.

Blobs are written to a temporary file beside their final place and renamed once their
digest is verified; `index.json` is rewritten atomically at `commit()`, merged with the
entries already there (an entry of the same name is replaced).
"""

from __future__ import annotations

import json
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from transship.bundle.datafile import io_error, write_verified_file
from transship.bundle.layout import CONTAINERD_NAME, OCI_LAYOUT, REF_NAME, full_image_name
from transship.bundle.meta import fsync_dir, write_atomically
from transship.errors import BundleError, DigestMismatchError, NotFoundError
from transship.oci.descriptor import Descriptor
from transship.oci.digest import is_digest, verify_bytes
from transship.oci.manifest import RawManifest, detect_media_type
from transship.transports.base import Destination, ImageLocation, ProgressCallback, Source


def blob_file(root: Path, digest: str) -> Path:
    if not is_digest(digest):
        raise DigestMismatchError(f"not a valid digest: {digest!r}")
    algorithm, hex_part = digest.split(":", 1)
    return root / "blobs" / algorithm / hex_part


def name_candidates(repository: str, reference: str) -> list[str]:
    names = []
    if repository:
        names.append(f"{repository}:{reference}")
    names.append(reference)
    if repository:
        names.append(full_image_name(f"{repository}:{reference}"))
    return names


def image_name(ref: str | None, repository: str, tag: str) -> str:
    """The name an image is written under in a layout or archive: the spec's ref when it
    gave one, else `repository:tag` (the bare tag when there is no repository)."""
    if ref:
        return ref
    return f"{repository}:{tag}" if repository else tag


def find_in_index(
    entries: list[dict[str, Any]], repository: str, reference: str, where: str
) -> dict[str, Any]:
    """The index.json entry for an image, by name; a lone image when nothing is named."""
    wanted = name_candidates(repository, reference)
    for name in wanted:
        for entry in entries:
            annotations = entry.get("annotations") or {}
            if name in (annotations.get(REF_NAME), annotations.get(CONTAINERD_NAME)):
                return entry
    if len(entries) == 1 and reference in ("", "latest"):
        return entries[0]
    names = [
        (e.get("annotations") or {}).get(REF_NAME) or e.get("digest", "?") for e in entries[:5]
    ]
    raise NotFoundError(
        f"{where} has no image named {wanted[0]!r} (it holds: {', '.join(names) or 'nothing'})"
    )


def locations_of(entries: list[dict[str, Any]]) -> list[ImageLocation]:
    out = []
    for entry in entries:
        name = (entry.get("annotations") or {}).get(REF_NAME)
        if name and ":" in name.rsplit("/", 1)[-1]:
            repo, tag = name.rsplit(":", 1)
            out.append(ImageLocation(repo, tag))
        elif name:
            out.append(ImageLocation("", name))
        else:
            out.append(ImageLocation("", None, entry.get("digest")))
    return out


def read_index_entries(data: bytes, where: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(data)
        entries = doc["manifests"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"{where}: index.json is not a valid OCI image index") from None
    return entries


def manifest_from_entry(entry: dict[str, Any], data: bytes, where: str) -> RawManifest:
    digest = entry.get("digest", "")
    verify_bytes(data, digest, f"manifest in {where}")
    return RawManifest(data, detect_media_type(data, entry.get("mediaType")), digest)


class LayoutSourceBase(Source):
    """Reading an OCI layout, wherever its files are (a folder, a tar archive)."""

    where: str
    ref: str | None
    _entries: list[dict[str, Any]]

    @abstractmethod
    def read_blob_bytes(self, digest: str) -> bytes:
        """A small blob (a manifest) whole; NotFoundError if absent."""

    def locations(self) -> list[ImageLocation]:
        return locations_of(self._entries)

    def index_entry(self, repository: str, reference: str) -> dict[str, Any]:
        if is_digest(reference):
            entry = next((e for e in self._entries if e.get("digest") == reference), {})
            return {**entry, "digest": reference}
        if self.ref is not None and reference in ("", "latest") and not repository:
            return find_in_index(self._entries, "", self.ref, self.where)
        return find_in_index(self._entries, repository, reference, self.where)

    def get_manifest(self, repository: str, reference: str) -> RawManifest:
        entry = self.index_entry(repository, reference)
        data = self.read_blob_bytes(entry["digest"])
        return manifest_from_entry(entry, data, self.where)

    def list_tags(self, repository: str) -> list[str]:
        return [loc.tag for loc in self.locations() if loc.repository == repository and loc.tag]


class OCILayoutSource(LayoutSourceBase):
    name = "oci"

    def __init__(self, root: str | Path, ref: str | None = None):
        self.root = Path(root)
        self.ref = ref
        self.where = f"oci:{self.root}"
        if not (self.root / "index.json").is_file():
            raise NotFoundError(f"{self.root} is not an OCI image layout (no index.json)")
        self._entries = read_index_entries((self.root / "index.json").read_bytes(), self.where)

    def read_blob_bytes(self, digest: str) -> bytes:
        try:
            return blob_file(self.root, digest).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"{self.where}: blob {digest} is missing") from None

    @contextmanager
    def _open(self, desc: Descriptor, offset: int) -> Iterator[BinaryIO]:
        path = blob_file(self.root, desc.digest)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise NotFoundError(f"{self.where}: blob {desc.digest} is missing") from None
        try:
            f.seek(offset)
            yield f
        finally:
            f.close()

    def open_blob(
        self, repository: str, desc: Descriptor, offset: int = 0
    ) -> AbstractContextManager[BinaryIO]:
        return self._open(desc, offset)


class OCILayoutDestination(Destination):
    name = "oci"

    def __init__(self, root: str | Path, ref: str | None = None):
        self.root = Path(root)
        self.ref = ref
        self._lock = threading.Lock()
        self._new_entries: list[dict[str, Any]] = []
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise io_error(self.root, e, "creating") from None

    def has_blob(self, repository: str, desc: Descriptor) -> bool:
        path = blob_file(self.root, desc.digest)
        try:
            return path.stat().st_size == desc.size or desc.size < 0
        except FileNotFoundError:
            return False

    def put_blob(
        self,
        repository: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: ProgressCallback | Callable[[int], None] | None = None,
    ) -> None:
        write_verified_file(blob_file(self.root, desc.digest), desc, chunks, progress)

    def has_manifest(self, repository: str, reference: str, digest: str) -> bool:
        if not self.has_blob(repository, Descriptor("", digest, -1)):
            return False
        if is_digest(reference):
            return True
        name = image_name(self.ref, repository, reference)
        with self._lock:
            entries = list(self._new_entries)
        index_path = self.root / "index.json"
        if index_path.exists():
            entries += read_index_entries(index_path.read_bytes(), str(self.root))
        return any(
            e.get("digest") == digest and (e.get("annotations") or {}).get(REF_NAME) == name
            for e in entries
        )

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> None:
        path = blob_file(self.root, manifest.digest)
        if not path.exists():
            write_verified_file(path, manifest.descriptor, [manifest.data])
        if is_digest(reference):
            return
        name = image_name(self.ref, repository, reference)
        entry = manifest.descriptor.to_json()
        entry["annotations"] = {REF_NAME: name}
        with self._lock:
            self._new_entries = [e for e in self._new_entries if e["annotations"][REF_NAME] != name]
            self._new_entries.append(entry)

    def commit(self) -> None:
        index_path = self.root / "index.json"
        existing: list[dict[str, Any]] = []
        if index_path.exists():
            existing = read_index_entries(index_path.read_bytes(), str(self.root))
        new_names = {e["annotations"][REF_NAME] for e in self._new_entries}
        kept = [e for e in existing if (e.get("annotations") or {}).get(REF_NAME) not in new_names]
        doc = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": kept + self._new_entries,
        }
        try:
            write_atomically(self.root / "oci-layout", OCI_LAYOUT)
            write_atomically(index_path, json.dumps(doc, indent=2).encode())
            fsync_dir(self.root)
        except OSError as e:
            raise io_error(index_path, e) from None

    def abort(self) -> None:
        """Blobs already renamed are complete and content-addressed: harmless. The index
        is not touched, so no image appears."""
