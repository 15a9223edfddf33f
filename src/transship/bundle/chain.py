"""Incremental bundles: leaving blobs to the bundles a site already has.

At save, `ParentChain.load(--since metas)` says which blobs the parents carry — their own
blobs, and also the blobs they themselves left to their parents (a site that loaded a
parent had to load its ancestors first). The new bundle leaves those out and records, per
parent, exactly which blobs it left to it.

At load, `check_parents_loaded` asks the target whether it holds every blob left to a
parent, before anything is pushed; if not, it names the parent bundle to load first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from transship.bundle.meta import BundleMeta, ImageEntry, ParentBlob, ParentEntry, load_meta
from transship.errors import BundleError
from transship.oci.descriptor import Descriptor
from transship.oci.manifest import ImageManifest


@dataclass(frozen=True)
class _Carrier:
    id: str
    file: str


class ParentChain:
    """The blobs a set of parent bundles carry, and which bundle carries each."""

    def __init__(self, metas: Iterable[tuple[str, BundleMeta]] = ()):
        self._carrier: dict[str, _Carrier] = {}
        self._blob: dict[str, ParentBlob] = {}
        self.parents: list[_Carrier] = []
        for file_name, meta in metas:
            carrier = _Carrier(meta.id, file_name)
            self.parents.append(carrier)
            for blob in meta.blobs:
                own = ParentBlob(digest=blob.digest, size=blob.size, media_type=blob.media_type)
                self._add(blob.digest, own, carrier)
            # What the parent left to its own parents is at the site too.
            for grand in meta.parents:
                for blob in grand.blobs:
                    self._add(blob.digest, blob, _Carrier(grand.id, grand.file))

    def _add(self, digest: str, blob: ParentBlob, carrier: _Carrier) -> None:
        if digest not in self._carrier:  # first given wins
            self._carrier[digest] = carrier
            self._blob[digest] = blob

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> ParentChain:
        metas = []
        seen: set[str] = set()
        for path in paths:
            meta = load_meta(path)
            if meta.id in seen:
                continue
            seen.add(meta.id)
            metas.append((Path(path).name, meta))
        return cls(metas)

    def __bool__(self) -> bool:
        return bool(self.parents)

    def carries(self, digest: str) -> bool:
        return digest in self._carrier

    def entries_for(self, left: Iterable[Descriptor]) -> list[ParentEntry]:
        """The `parents` section of a new bundle that left `left` out."""
        grouped: dict[_Carrier, dict[str, ParentBlob]] = {}
        for desc in left:
            carrier = self._carrier.get(desc.digest)
            if carrier is None:
                raise BundleError(f"blob {desc.digest} is in no parent bundle")
            known = self._blob[desc.digest]
            grouped.setdefault(carrier, {})[desc.digest] = ParentBlob(
                digest=desc.digest,
                size=desc.size if desc.size >= 0 else known.size,
                media_type=desc.media_type or known.media_type,
            )
        return [
            ParentEntry(
                id=c.id, file=c.file, blobs=sorted(grouped[c].values(), key=lambda b: b.digest)
            )
            for c in sorted(grouped, key=lambda c: (c.file, c.id))
        ]


def blobs_of_image(image: ImageEntry) -> list[Descriptor]:
    """Config and layers of every image manifest of an image (all children of an index)."""
    out: list[Descriptor] = []
    for entry in image.manifests():
        parsed = entry.raw().parse()
        if isinstance(parsed, ImageManifest):
            out.extend(parsed.blobs)
    return out


@dataclass
class MissingParent:
    id: str
    file: str
    missing: list[str] = field(default_factory=list)  # digests
    needed_by: list[str] = field(default_factory=list)  # image targets


class MissingParentError(BundleError):
    """The target lacks blobs this bundle left to parent bundles."""

    def __init__(self, bundle: str, parents: list[MissingParent]):
        self.bundle = bundle
        self.parents = parents
        first = parents[0]
        names = "; ".join(
            f"{p.file} (bundle {p.id}): {len(p.missing)} blob(s) missing, e.g. {p.missing[0]} "
            f"used by {', '.join(p.needed_by[:3])}"
            for p in parents
        )
        super().__init__(
            f"bundle {bundle} is incremental and the target lacks blobs it left to its "
            f"parents — {names}. Load {first.file} first; nothing was pushed."
        )


def check_parents_loaded(
    meta: BundleMeta,
    bundle_name: str,
    has_blob: Callable[[str, Descriptor], bool],
    repository_for: Callable[[ImageEntry], str] = lambda image: image.repository,
    workers: int = 4,
) -> None:
    """Raise MissingParentError unless the target holds every blob left to a parent.
    A blob counts as present if any target repository of an image using it has it."""
    if not meta.parents:
        return
    users: dict[str, list[ImageEntry]] = {}
    for image in meta.images:
        for desc in blobs_of_image(image):
            users.setdefault(desc.digest, []).append(image)

    checks: list[tuple[ParentEntry, ParentBlob]] = [
        (parent, blob) for parent in meta.parents for blob in parent.blobs
    ]

    def present(item: tuple[ParentEntry, ParentBlob]) -> bool:
        _, blob = item
        repositories = dict.fromkeys(repository_for(i) for i in users.get(blob.digest, []))
        if not repositories:
            return True  # no image here uses it (a parent's own leftovers)
        return any(has_blob(repo, blob.descriptor) for repo in repositories)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(present, checks))

    missing: dict[str, MissingParent] = {}
    for (parent, blob), ok in zip(checks, results, strict=True):
        if ok:
            continue
        entry = missing.setdefault(parent.id, MissingParent(parent.id, parent.file))
        entry.missing.append(blob.digest)
        for image in users.get(blob.digest, []):
            if image.target not in entry.needed_by:
                entry.needed_by.append(image.target)
    if missing:
        order = [p.id for p in meta.parents]
        raise MissingParentError(
            bundle_name, sorted(missing.values(), key=lambda p: order.index(p.id))
        )


def left_to_parents(
    images: Iterable[ImageEntry], in_bundle: Callable[[str], bool], chain: ParentChain
) -> list[ParentEntry]:
    """Every blob the images need that this bundle does not carry must be carried by a
    parent; returns the `parents` section, or raises naming the first blob nowhere."""
    left: dict[str, Descriptor] = {}
    for image in images:
        for desc in blobs_of_image(image):
            if in_bundle(desc.digest) or desc.digest in left:
                continue
            if not chain.carries(desc.digest):
                raise BundleError(
                    f"image {image.target} needs blob {desc.digest}, which is neither in "
                    "this bundle nor in any parent bundle"
                )
            left[desc.digest] = desc
    return chain.entries_for(left.values())
