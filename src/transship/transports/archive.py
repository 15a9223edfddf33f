"""`oci-archive:FILE[:ref]` and `docker-archive:FILE[:name:tag]`, as Source and Destination.

Writing: both kinds produce the same tar — `blobs/sha256/<hex>` members (blobs and
manifests, byte-identical), then `oci-layout`, `index.json` and `manifest.json` — so the
file is an OCI archive and a docker-archive at once (as `docker save` 25+ writes).
A docker-archive cannot carry an index: for a multi-platform image, `manifest.json`
lists the child for the chosen platform (default: this machine's); the OCI index keeps
every child. The archive is written under a temporary name and renamed at `commit()`.

Reading: the tar is indexed once (member names checked; links followed only within the
archive) and blobs are read in place. An OCI archive is read through its `index.json`. A
docker-archive is read through `manifest.json`; when the archive is also an OCI layout
(ours are), the exact original manifest is used, else one is built from the files, as
every docker-archive reader must (its digest is then new).
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from transship.bundle.codecs import RawCodec
from transship.bundle.datafile import io_error
from transship.bundle.layout import blob_path, full_image_name
from transship.bundle.meta import fsync_dir
from transship.bundle.tarfmt import TarMember, index_archive, normalize_member_name
from transship.bundle.writer import BlobStoreWriter, DataFileNaming
from transship.errors import BundleError, NotFoundError
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor, Platform
from transship.oci.digest import DigestVerifier, is_digest
from transship.oci.manifest import ImageIndex, ImageManifest, RawManifest
from transship.reference import DOCKER_HUB, ImageReference
from transship.transports.archive_images import ArchiveImages
from transship.transports.base import CHUNK, Destination, ImageLocation, ProgressCallback, Source
from transship.transports.oci_layout import (
    LayoutSourceBase,
    find_in_index,
    image_name,
    read_index_entries,
)

_SMALL = 64 << 20  # largest member read whole (manifests, configs, index files)


class FileSlice(io.RawIOBase):
    """A readable window [start, start+length) of a file."""

    def __init__(self, path: Path, start: int, length: int):
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._file.seek(start)
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        n = self._file.readinto(memoryview(buffer)[: min(len(buffer), self._left)])
        if not n:
            raise BundleError(f"{self._file.name}: archive ends inside a member (truncated)")
        self._left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


class TarView:
    """A tar archive indexed for reading members in place."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise NotFoundError(f"{path}: archive not found")
        self.members: dict[str, TarMember] = index_archive(path, allow_links=True)
        size = path.stat().st_size
        for member in self.members.values():
            if member.offset + member.size > size:
                raise BundleError(f"{path.name}: archive is truncated inside {member.name!r}")

    def has(self, name: str) -> bool:
        return normalize_member_name(name) in self.members

    def member(self, name: str) -> TarMember:
        try:
            return self.members[normalize_member_name(name)]
        except KeyError:
            raise NotFoundError(f"{self.path.name}: no {name!r} in the archive") from None

    def read(self, name: str) -> bytes:
        m = self.member(name)
        if m.size > _SMALL:
            raise BundleError(f"{self.path.name}: {name!r} is too large to be metadata")
        with self.open(name) as f:
            return f.read()

    def open(self, name: str, offset: int = 0) -> BinaryIO:
        m = self.member(name)
        raw = FileSlice(self.path, m.offset + offset, m.size - offset)
        return io.BufferedReader(raw, CHUNK)  # type: ignore[return-value]


class OCIArchiveSource(LayoutSourceBase):
    name = "oci-archive"

    def __init__(self, path: str | Path, ref: str | None = None):
        self.path = Path(path)
        self.ref = ref
        self.where = f"oci-archive:{self.path}"
        self.tar = TarView(self.path)
        if not self.tar.has("index.json"):
            raise BundleError(f"{self.path}: not an OCI archive (no index.json)")
        self._entries = read_index_entries(self.tar.read("index.json"), self.where)

    def read_blob_bytes(self, digest: str) -> bytes:
        if not is_digest(digest):
            raise NotFoundError(f"{self.where}: not a digest: {digest!r}")
        return self.tar.read(blob_path(digest))

    @contextmanager
    def _open(self, desc: Descriptor, offset: int) -> Iterator[BinaryIO]:
        stream = self.tar.open(blob_path(desc.digest), offset)
        try:
            yield stream
        finally:
            stream.close()

    def open_blob(
        self, repository: str, desc: Descriptor, offset: int = 0
    ) -> AbstractContextManager[BinaryIO]:
        if not is_digest(desc.digest):
            raise NotFoundError(f"{self.where}: not a digest: {desc.digest!r}")
        return self._open(desc, offset)


def _layer_media_type(head: bytes, oci: bool) -> str:
    if head.startswith(b"\x1f\x8b"):
        return mt.OCI_LAYER_GZIP if oci else mt.DOCKER_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return mt.OCI_LAYER_ZSTD
    return mt.OCI_LAYER


def _same_name(a: str, b: str) -> bool:
    return a == b or full_image_name(a) == full_image_name(b)


class DockerArchiveSource(Source):
    """A `docker save` archive (any version) or one written by transship."""

    name = "docker-archive"

    def __init__(self, path: str | Path, ref: str | None = None):
        self.path = Path(path)
        self.ref = ref
        self.where = f"docker-archive:{self.path}"
        self.tar = TarView(self.path)
        try:
            entries = json.loads(self.tar.read("manifest.json"))
            if not isinstance(entries, list):
                raise TypeError
            self._entries: list[dict[str, Any]] = [
                {
                    "Config": str(e["Config"]),
                    "RepoTags": [str(t) for t in e.get("RepoTags") or []],
                    "Layers": [str(x) for x in e["Layers"]],
                }
                for e in entries
            ]
        except NotFoundError:
            raise BundleError(f"{self.path}: not a docker-archive (no manifest.json)") from None
        except (ValueError, KeyError, TypeError):
            raise BundleError(f"{self.path}: manifest.json is not a docker-archive index") from None
        self._oci_entries: list[dict[str, Any]] = []
        if self.tar.has("oci-layout") and self.tar.has("index.json"):
            self._oci_entries = read_index_entries(self.tar.read("index.json"), self.where)
        self._lock = threading.Lock()
        self._blob_members: dict[str, str] = {}  # digest -> member name
        self._manifests: dict[int, RawManifest] = {}  # by position in manifest.json

    def locations(self) -> list[ImageLocation]:
        out = []
        for entry in self._entries:
            for tag in entry["RepoTags"]:
                ref = ImageReference.parse(tag)
                # docker.io is what docker writes when no registry was named: leave it out.
                keep = ref.registry and ref.registry != DOCKER_HUB
                repo = f"{ref.registry}/{ref.repository}" if keep else ref.repository
                out.append(ImageLocation(repo, ref.tag))
        return out

    def _find_entry(self, repository: str, reference: str) -> dict[str, Any]:
        if self.ref and reference in ("", "latest") and not repository:
            repository, reference = "", self.ref
        wanted = f"{repository}:{reference}" if repository else reference
        for entry in self._entries:
            if any(_same_name(tag, wanted) for tag in entry["RepoTags"]):
                return entry
        if len(self._entries) == 1 and reference in ("", "latest"):
            return self._entries[0]
        known = ", ".join(t for e in self._entries for t in e["RepoTags"][:1]) or "untagged images"
        raise NotFoundError(f"{self.where} has no image {wanted!r} (it holds {known})")

    def _hash_member(self, name: str) -> tuple[Descriptor, bytes]:
        """A member as a blob: its descriptor (sha256 of its bytes) and first bytes."""
        member = self.tar.member(name)
        verifier = DigestVerifier("sha256:" + "0" * 64)
        head = b""
        with self.tar.open(name) as f:
            while chunk := f.read(CHUNK):
                head = head or chunk[:8]
                verifier.update(chunk)
        digest = verifier.actual
        with self._lock:
            self._blob_members[digest] = member.name
        return Descriptor("", digest, member.size), head

    def _oci_manifest_for(self, entry: dict[str, Any]) -> RawManifest | None:
        """The exact manifest, when the archive is also an OCI layout that has it."""
        for tag in entry["RepoTags"] or [""]:
            try:
                found = find_in_index(self._oci_entries, "", tag, self.where) if tag else None
            except NotFoundError:
                continue
            if not found:
                continue
            data = self.tar.read(blob_path(found["digest"]))
            top = RawManifest(data, found.get("mediaType") or mt.OCI_MANIFEST, found["digest"])
            candidates = [top]
            parsed = top.parse()
            if isinstance(parsed, ImageIndex):
                candidates = [
                    RawManifest(self.tar.read(blob_path(d.digest)), d.media_type, d.digest)
                    for d in parsed.manifests
                    if self.tar.has(blob_path(d.digest))
                ]
            for manifest in candidates:
                image = manifest.parse()
                if isinstance(image, ImageManifest) and blob_path(
                    image.config.digest
                ) == normalize_member_name(entry["Config"]):
                    manifest_digest = DigestVerifier(manifest.digest, len(manifest.data))
                    manifest_digest.update(manifest.data)
                    manifest_digest.verify("manifest")
                    for desc, path in zip(
                        image.blobs, [entry["Config"], *entry["Layers"]], strict=False
                    ):
                        with self._lock:
                            self._blob_members[desc.digest] = normalize_member_name(path)
                    return manifest
        return None

    def get_manifest(self, repository: str, reference: str) -> RawManifest:
        if is_digest(reference):
            for entry in self._entries:
                manifest = self._manifest_of(entry)
                if manifest.digest == reference:
                    return manifest
            raise NotFoundError(f"{self.where} has no manifest {reference}")
        return self._manifest_of(self._find_entry(repository, reference))

    def _manifest_of(self, entry: dict[str, Any]) -> RawManifest:
        """The entry's manifest, built (hashing every layer file) once."""
        key = next(i for i, e in enumerate(self._entries) if e is entry)
        with self._lock:
            cached = self._manifests.get(key)
        if cached is None:
            cached = self._build_manifest(entry)
            with self._lock:
                self._manifests[key] = cached
        return cached

    def _build_manifest(self, entry: dict[str, Any]) -> RawManifest:
        if self._oci_entries:
            exact = self._oci_manifest_for(entry)
            if exact is not None:
                return exact
        config, _ = self._hash_member(entry["Config"])
        hashed = [self._hash_member(path) for path in entry["Layers"]]
        layers = [d for d, _ in hashed]
        heads = [h for _, h in hashed]
        all_gzip = all(h.startswith(b"\x1f\x8b") for h in heads)
        oci = not all_gzip
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG,
                "size": config.size,
                "digest": config.digest,
            },
            "layers": [
                {"mediaType": _layer_media_type(h, oci), "size": d.size, "digest": d.digest}
                for d, h in zip(layers, heads, strict=True)
            ],
        }
        data = json.dumps(doc, indent=3).encode()
        return RawManifest(data, doc["mediaType"])

    @contextmanager
    def _open(self, desc: Descriptor, offset: int) -> Iterator[BinaryIO]:
        with self._lock:
            name = self._blob_members.get(desc.digest)
        if name is None and is_digest(desc.digest) and self.tar.has(blob_path(desc.digest)):
            name = blob_path(desc.digest)
        if name is None:
            raise NotFoundError(f"{self.where}: no blob {desc.digest} (read its manifest first)")
        stream = self.tar.open(name, offset)
        try:
            yield stream
        finally:
            stream.close()

    def open_blob(
        self, repository: str, desc: Descriptor, offset: int = 0
    ) -> AbstractContextManager[BinaryIO]:
        return self._open(desc, offset)

    def list_tags(self, repository: str) -> list[str]:
        return [loc.tag for loc in self.locations() if loc.repository == repository and loc.tag]


class ArchiveWriter:
    """Writes the tar that is both an OCI archive and a docker-archive into `path`
    (under a temporary name until `finish()`); thread-safe."""

    def __init__(self, path: Path, platform: Platform | None = None, keep_partial: bool = False):
        self.path = path
        partial_stem = f".{path.name}.partial"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise io_error(path.parent, e, "creating") from None
        self.store = BlobStoreWriter(
            path.parent,
            DataFileNaming(partial_stem, single=True, suffix=""),
            workers=1,
            journal=False,
            spool_when_busy=True,
        )
        self._discard_partial()
        self._codec = RawCodec()
        self.images = ArchiveImages(platform)
        self.notes = self.images.notes  # e.g. which platform of an index manifest.json got

    def _discard_partial(self) -> None:
        for partial in self.store.existing_files().values():
            partial.unlink(missing_ok=True)
            Path(str(partial) + ".journal").unlink(missing_ok=True)

    def has_blob(self, digest: str) -> bool:
        return self.store.get(digest) is not None

    def put_blob(
        self,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        # One blob at a time enters the archive; others are spooled meanwhile (see
        # BlobStoreWriter.spool_when_busy), so parallel downloads do not wait.
        self.store.put(desc, chunks, self._codec, progress)

    def put_manifest(self, name: str | None, manifest: RawManifest) -> None:
        self.store.put(manifest.descriptor, [manifest.data], self._codec)
        self.images.add(name, manifest)

    def add_untagged(self, manifest: RawManifest) -> None:
        self.images.add_untagged(manifest)

    def finish(self) -> None:
        for name, data in self.images.index_members(self.has_blob):
            self.store.put_extra_member(name, data)
        self.store.finish()
        self.store.remove_journals()
        (partial,) = self.store.existing_files().values()
        try:
            os.replace(partial, self.path)
            fsync_dir(self.path.parent)
        except OSError as e:
            raise io_error(self.path, e) from None

    def abort(self) -> None:
        self.store.close()
        self._discard_partial()


class ArchiveDestination(Destination):
    """`oci-archive:FILE[:ref]` / `docker-archive:FILE[:name:tag]`: images are named `ref`
    when the spec gave one, else `repository:tag`."""

    def __init__(
        self, path: str | Path, ref: str | None = None, kind: str = "oci-archive", **kwargs: Any
    ):
        self.name = kind
        self.path = Path(path)
        self.ref = ref
        self.writer = ArchiveWriter(self.path, **kwargs)

    @property
    def notes(self) -> list[str]:
        """Said after commit(): e.g. the platform an index was reduced to in manifest.json."""
        return self.writer.notes

    def has_blob(self, repository: str, desc: Descriptor) -> bool:
        return self.writer.has_blob(desc.digest)

    def put_blob(
        self,
        repository: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: ProgressCallback | Callable[[int], None] | None = None,
    ) -> None:
        self.writer.put_blob(desc, chunks, progress)

    def has_manifest(self, repository: str, reference: str, digest: str) -> bool:
        return False

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> None:
        if is_digest(reference):
            self.writer.put_manifest(None, manifest)
            self.writer.add_untagged(manifest)
            return
        self.writer.put_manifest(image_name(self.ref, repository, reference), manifest)

    def commit(self) -> None:
        self.writer.finish()

    def abort(self) -> None:
        self.writer.abort()
