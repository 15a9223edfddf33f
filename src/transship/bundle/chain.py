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
            users = repositories_using(meta)
            for blob in meta.blobs:
                own = ParentBlob(
                    digest=blob.digest,
                    size=blob.size,
                    media_type=blob.media_type,
                    repositories=users.get(blob.digest, []),
                )
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
                repositories=known.repositories,
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


def repositories_using(meta: BundleMeta) -> dict[str, list[str]]:
    """digest -> repositories of the bundle's images that use the blob."""
    users: dict[str, list[str]] = {}
    for image in meta.images:
        for desc in blobs_of_image(image):
            repos = users.setdefault(desc.digest, [])
            if image.repository not in repos:
                repos.append(image.repository)
    return users


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
    repository_map: Callable[[str], str] = lambda repository: repository,
    workers: int = 4,
) -> dict[str, str]:
    """Raise MissingParentError unless the target holds every blob left to a parent.

    A registry keeps blobs per repository: a blob counts as present if the target has it
    in a repository of an image of this bundle that uses it, or in one where the parent
    bundle put it. Returns, for each left blob, the repository it was found in (loading
    mounts it from there). `repository_map` renames repositories as the load does.
    """
    if not meta.parents:
        return {}
    users: dict[str, list[ImageEntry]] = {}
    for image in meta.images:
        for desc in blobs_of_image(image):
            users.setdefault(desc.digest, []).append(image)

    checks: list[tuple[ParentEntry, ParentBlob]] = [
        (parent, blob) for parent in meta.parents for blob in parent.blobs
    ]

    def home(item: tuple[ParentEntry, ParentBlob]) -> str | None:
        _, blob = item
        if blob.digest not in users:
            return ""  # no image here uses it: nothing to check
        candidates = [repository_map(i.repository) for i in users[blob.digest]]
        candidates += [repository_map(r) for r in blob.repositories]
        for repository in dict.fromkeys(candidates):
            if has_blob(repository, blob.descriptor):
                return repository
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        homes = list(pool.map(home, checks))

    missing: dict[str, MissingParent] = {}
    found: dict[str, str] = {}
    for (parent, blob), where in zip(checks, homes, strict=True):
        if where is not None:
            if where:
                found[blob.digest] = where
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
    return found


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
