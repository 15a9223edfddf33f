"""`bundle:PATH.meta.json` — a transship bundle as a Destination (save) and a Source (load).

Saving: the engine copies images into a `BundleDestination` as into any other target.
Blobs carried by `--since` parent bundles, or already written by an interrupted run of the
same save, count as present (`has_blob`), so they are neither fetched nor stored again.
Manifests are recorded as they arrive; `commit()` checks that every blob each image needs
is in the bundle or a parent, then writes the meta file — last, atomically.
`abort()` writes no meta, and leaves data files and journals for a re-run to resume.

The source reference of each image (what the user asked for) is not part of the
Destination interface; tell it with `record_source(repository, tag, source)` before or
after copying the image. Images without one get their target name as source.

Loading: `BundleSource` verifies every data file on opening (unless told not to) and
serves manifests from the meta and blobs from the data files, each digest verified as it
streams. `check_parents(destination)` must pass before an incremental bundle is loaded.
`prepare_load(destination)` does that and prepares the bundle's codecs (dedup: checks
every layer recipe and unpacks the content store) before anything is pushed. A dedup
bundle that left file contents to its parents reads them from the parents' files when
they are at hand, else from the target when it is a registry (read through the same
client); other targets need the parents' files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from transship.bundle.chain import ParentChain, check_parents_loaded, left_to_parents
from transship.bundle.codecs import BlobCodec, LoadContext, ParentBundle
from transship.bundle.meta import META_SUFFIX, BundleMeta, ImageEntry, ManifestEntry, load_meta
from transship.bundle.reader import BundleReader
from transship.bundle.writer import BundleWriter
from transship.errors import BundleError, ConfigError, NotFoundError
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor, Platform
from transship.oci.digest import is_digest
from transship.oci.manifest import ImageIndex, ImageManifest, RawManifest
from transship.transports.base import (
    Destination,
    ImageLocation,
    ProgressCallback,
    Source,
    iter_stream,
)


def split_meta_path(path: str | Path) -> tuple[Path, str]:
    """(folder, bundle name) of `DIR/NAME.meta.json`; a folder gives name `bundle`."""
    path = Path(path)
    if path.name.endswith(META_SUFFIX):
        return path.parent, path.name[: -len(META_SUFFIX)]
    if path.suffix:
        raise ConfigError(f"bundle path {path} must end in {META_SUFFIX} or be a folder")
    return path, "bundle"


class _ManifestRecorder:
    """What put_manifest received, turned into the meta's image list at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.manifests: dict[str, RawManifest] = {}
        self.tagged: dict[tuple[str, str], str] = {}  # (repository, tag) -> digest
        self.by_digest: dict[tuple[str, str], None] = {}  # (repository, digest), in order
        self.sources: dict[tuple[str, str | None], str] = {}

    def put(self, repository: str, reference: str, manifest: RawManifest) -> None:
        with self._lock:
            self.manifests[manifest.digest] = manifest
            if is_digest(reference):
                if reference != manifest.digest:
                    raise BundleError(
                        f"manifest stored under {reference} hashes to {manifest.digest}"
                    )
                self.by_digest[(repository, reference)] = None
            else:
                self.tagged[(repository, reference)] = manifest.digest

    def has(self, repository: str, reference: str, digest: str) -> bool:
        with self._lock:
            if is_digest(reference):
                return (repository, reference) in self.by_digest
            return self.tagged.get((repository, reference)) == digest

    def images(self) -> list[ImageEntry]:
        children: set[str] = set()
        for manifest in self.manifests.values():
            if mt.is_index(manifest.media_type):
                parsed = manifest.parse()
                assert isinstance(parsed, ImageIndex)
                children.update(d.digest for d in parsed.manifests)
        tops = [(repo, tag, digest) for (repo, tag), digest in self.tagged.items()]
        tagged_digests = {(repo, digest) for repo, _, digest in tops}
        tops += [
            (repo, None, digest)
            for repo, digest in self.by_digest
            if digest not in children and (repo, digest) not in tagged_digests
        ]
        return [self._image(repo, tag, digest) for repo, tag, digest in tops]

    def _image(self, repository: str, tag: str | None, digest: str) -> ImageEntry:
        manifest = self.manifests[digest]
        target = f"{repository}:{tag}" if tag else f"{repository}@{digest}"
        child_entries = []
        if mt.is_index(manifest.media_type):
            parsed = manifest.parse()
            assert isinstance(parsed, ImageIndex)
            for desc in parsed.manifests:
                child = self.manifests.get(desc.digest)
                if child is None:
                    raise BundleError(
                        f"image {target}: its index lists {desc.digest}"
                        f"{' (' + str(desc.platform) + ')' if desc.platform else ''}, "
                        "which was not copied into the bundle"
                    )
                platform = str(desc.platform) if desc.platform else None
                child_entries.append(ManifestEntry.of(child, platform))
        return ImageEntry(
            source=self.sources.get((repository, tag)) or target,
            target=target,
            repository=repository,
            tag=tag,
            manifest=ManifestEntry.of(manifest),
            children=child_entries,
        )


class BundleDestination(Destination):
    name = "bundle"

    def __init__(
        self,
        path: str | Path,
        *,
        workers: int = 4,
        volume_size: int | None = None,
        single_file: bool = False,
        since: Iterable[str | Path] = (),
        codec: BlobCodec | None = None,
        options: dict[str, object] | None = None,
        platform: Platform | None = None,
        overwrite: bool = False,
    ):
        directory, name = split_meta_path(path)
        parents = [ParentBundle(Path(p), load_meta(p)) for p in since]
        self.chain = ParentChain((p.path.name, p.meta) for p in _distinct(parents))
        self.writer = BundleWriter(
            directory,
            name,
            workers=workers,
            volume_size=volume_size,
            single_file=single_file,
            codec=codec,
            options={
                **(options or {}),
                "since": [Path(p).name for p in since],
            },
            platform=platform,
            overwrite=overwrite,
            parents=_distinct(parents),
        )
        self.meta_path = self.writer.meta_path
        self.meta: BundleMeta | None = None
        self._recorder = _ManifestRecorder()

    @property
    def notes(self) -> list[str]:
        """Said after commit(): what other tools will not see in a single-file bundle."""
        return self.writer.notes

    @property
    def finishing_note(self) -> str:
        """What commit() does that takes time, as a message key of transship.i18n ("" when
        it is quick)."""
        return self.writer.codec.finishing_note

    def report_finishing(self, progress: Callable[..., None]) -> None:
        """Have commit() say how far it has got, now and then: `progress(key, **fields)`."""
        self.writer.codec.progress = progress

    @property
    def resumed_blobs(self) -> int:
        """Blobs found complete and verified from an interrupted earlier run."""
        return self.writer.resumed

    def record_source(self, repository: str, tag: str | None, source: str) -> None:
        """Say where the image stored as `repository:tag` came from (kept in the meta)."""
        self._recorder.sources[(repository, tag)] = source

    def has_blob(self, repository: str, desc: Descriptor) -> bool:
        return self.writer.has_blob(desc.digest) or self.chain.carries(desc.digest)

    def put_blob(
        self,
        repository: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: ProgressCallback | Callable[[int], None] | None = None,
    ) -> None:
        self.writer.put_blob(desc, chunks, progress)

    def has_manifest(self, repository: str, reference: str, digest: str) -> bool:
        return self._recorder.has(repository, reference, digest)

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> None:
        self._recorder.put(repository, reference, manifest)

    def commit(self) -> None:
        images = self._recorder.images()
        parents = left_to_parents(images, self.writer.has_blob, self.chain)
        self.meta = self.writer.commit(images, parents)

    def abort(self) -> None:
        self.writer.abort()

    def close(self) -> None:
        self.writer.close()


class BundleSource(Source):
    name = "bundle"

    def __init__(self, meta_path: str | Path, *, verify: bool = True, workers: int = 4):
        self.reader = BundleReader(meta_path, workers=workers)
        self.meta = self.reader.meta
        self.workers = workers
        self._tagged: dict[tuple[str, str], ImageEntry] = {}
        self._manifests: dict[str, ManifestEntry] = {}
        for image in self.meta.images:
            if image.tag:
                self._tagged[(image.repository, image.tag)] = image
            for entry in image.manifests():
                self._manifests[entry.digest] = entry
        if verify:
            self.reader.verify()

    def verify(self) -> None:
        self.reader.verify()

    def images(self) -> list[ImageEntry]:
        return list(self.meta.images)

    def locations(self) -> list[ImageLocation]:
        return [
            ImageLocation(i.repository, i.tag, None if i.tag else i.manifest.digest)
            for i in self.meta.images
        ]

    def get_manifest(self, repository: str, reference: str) -> RawManifest:
        if is_digest(reference):
            entry = self._manifests.get(reference)
        else:
            image = self._tagged.get((repository, reference))
            entry = image.manifest if image else None
        if entry is None:
            known = ", ".join(i.target for i in self.meta.images[:5])
            raise NotFoundError(
                f"bundle {self.reader.name} has no image {repository}:{reference} "
                f"(it holds {known}{', ...' if len(self.meta.images) > 5 else ''})"
            )
        return entry.raw()

    @contextmanager
    def _open(self, desc: Descriptor, offset: int) -> Iterator[BinaryIO]:
        stream = self.reader.open_blob(desc.digest, offset)
        try:
            yield stream
        finally:
            stream.close()

    def open_blob(self, repository: str, desc: Descriptor, offset: int = 0):  # type: ignore[override]
        return self._open(desc, offset)

    def list_tags(self, repository: str) -> list[str]:
        return [i.tag for i in self.meta.images if i.repository == repository and i.tag]

    def check_parents(
        self,
        has_blob: Callable[[str, Descriptor], bool],
        repository_map: Callable[[str], str] = lambda repository: repository,
    ) -> dict[str, str]:
        """Raise MissingParentError, naming the parent bundle to load first, unless the
        target (`has_blob`, e.g. a Destination's) holds every blob this bundle left to its
        parents. Returns where each was found (blob digest -> repository)."""
        return check_parents_loaded(
            self.meta, self.reader.name, has_blob, repository_map, self.workers
        )

    def blobs_of(self, locations: Iterable[tuple[str, str]]) -> frozenset[str]:
        """Every blob (configs and layers, of every platform) the images at these
        (repository, tag or digest) locations use."""
        wanted = set(locations)
        blobs: set[str] = set()
        for image in self.meta.images:
            if (image.repository, image.tag or image.manifest.digest) not in wanted:
                continue
            for entry in image.manifests():
                parsed = entry.raw().parse()
                if isinstance(parsed, ImageManifest):
                    blobs.update(d.digest for d in parsed.blobs)
        return frozenset(blobs)

    def prepare_load(
        self,
        destination: Destination,
        repository_map: Callable[[str], str] = lambda repository: repository,
        blobs: frozenset[str] | None = None,
    ) -> Destination:
        """Check the parents and prepare the codecs (before anything is pushed) and
        return the destination to load into: for an incremental bundle, one that mounts
        blobs left to a parent from the repository where the target holds them.
        `blobs`: the only blobs the load reads (`--image`), when not all of them."""
        homes = self.check_parents(destination.has_blob, repository_map)
        context = LoadContext(
            self.reader.directory,
            self.reader.name,
            blobs=blobs,
            open_target_blob=_target_blob_opener(destination, repository_map),
        )
        try:
            self.reader.prepare_codecs(context)
        except BundleError as e:
            raise BundleError(f"{e}; nothing was pushed") from None
        return ParentBlobMounter(destination, homes) if homes else destination

    def close(self) -> None:
        self.reader.close()


def _distinct(parents: list[ParentBundle]) -> list[ParentBundle]:
    seen: set[str] = set()
    out = []
    for parent in parents:
        if parent.meta.id not in seen:
            seen.add(parent.meta.id)
            out.append(parent)
    return out


def _target_blob_opener(
    destination: Destination, repository_map: Callable[[str], str]
) -> Callable[[str, Sequence[str]], Iterator[bytes]] | None:
    """How to read a blob back from the load target: registries only."""
    from transship.transports.registry import RegistryDestination

    if not isinstance(destination, RegistryDestination):
        return None
    client = destination.client

    def open_blob(digest: str, repositories: Sequence[str]) -> Iterator[bytes]:
        tried = list(dict.fromkeys(repository_map(r) for r in repositories))
        for repository in tried:
            if client.head_blob(repository, digest) is None:
                continue
            with client.open_blob(repository, digest) as stream:
                yield from iter_stream(stream)
            return
        raise NotFoundError(
            f"the target holds layer {digest} in none of {', '.join(tried) or 'no repository'}"
        )

    return open_blob


class ParentBlobMounter(Destination):
    """A destination whose `has_blob` also mounts a blob left to a parent bundle from the
    repository where the target holds it, into the repository that needs it."""

    def __init__(self, inner: Destination, homes: dict[str, str]):
        self.inner = inner
        self.homes = homes
        self.name = inner.name

    def has_blob(self, repository: str, desc: Descriptor) -> bool:
        if self.inner.has_blob(repository, desc):
            return True
        home = self.homes.get(desc.digest)
        return bool(home) and home != repository and self.inner.mount_blob(repository, desc, home)

    def put_blob(self, repository, desc, chunks, progress=None):  # type: ignore[no-untyped-def]
        self.inner.put_blob(repository, desc, chunks, progress)

    def mount_blob(self, repository: str, desc: Descriptor, from_repository: str) -> bool:
        return self.inner.mount_blob(repository, desc, from_repository)

    def blob_written_size(self, repository: str, desc: Descriptor) -> int:
        return self.inner.blob_written_size(repository, desc)

    def has_manifest(self, repository: str, reference: str, digest: str) -> bool:
        return self.inner.has_manifest(repository, reference, digest)

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> None:
        self.inner.put_manifest(repository, reference, manifest)

    def commit(self) -> None:
        self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()

    def close(self) -> None:
        self.inner.close()
