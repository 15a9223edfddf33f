"""The index files that make a tar of `blobs/sha256/<hex>` members loadable by other tools.

One archive is at the same time:
- an OCI image layout (`oci-layout`, `index.json` naming each image with
  `org.opencontainers.image.ref.name` and containerd's `io.containerd.image.name`),
  read by `skopeo copy oci-archive:`, `podman load`, `ctr import`, `docker load` (25+);
- a docker-archive (`manifest.json` with `Config`, `RepoTags`, `Layers` pointing at the
  same blob files), read by `docker load` and `skopeo copy docker-archive:`.

A docker-archive cannot carry an index: for a multi-platform image its `manifest.json`
entry is the one child matching the chosen platform (the OCI index keeps them all).
Layers stay byte-identical (gzip included): `docker load` and skopeo accept them.
"""

from __future__ import annotations

import json
import platform as host_platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from transship.errors import ReferenceError_
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor, Platform
from transship.oci.manifest import ImageIndex, ImageManifest, RawManifest
from transship.reference import DOCKER_HUB, ImageReference

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def blob_path(digest: str) -> str:
    algorithm, hex_part = digest.split(":", 1)
    return f"blobs/{algorithm}/{hex_part}"


def default_platform() -> Platform:
    machine = host_platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return Platform("linux", arch)


def full_image_name(target: str) -> str:
    """`app:1` → `docker.io/library/app:1`, as containerd and Docker name images."""
    try:
        return str(ImageReference.parse(target, default_registry=DOCKER_HUB).tagged_or_latest)
    except ReferenceError_:
        return target


@dataclass
class LayoutImage:
    """One image to list: its name (repository:tag, or None for an untagged image), its
    top manifest, and the children of an index by digest."""

    name: str | None
    manifest: RawManifest
    children: dict[str, RawManifest] = field(default_factory=dict)


def select_platform(image: LayoutImage, want: Platform) -> RawManifest | None:
    """The image manifest a docker-archive gets: the manifest itself, or the child of an
    index matching `want` (else the first child with a known platform, else the first)."""
    parsed = image.manifest.parse()
    if isinstance(parsed, ImageManifest):
        return image.manifest
    assert isinstance(parsed, ImageIndex)
    candidates = [d for d in parsed.manifests if mt.is_image_manifest(d.media_type)]
    chosen = next((d for d in candidates if want.matches(d.platform)), None)
    if chosen is None:
        chosen = next(
            (d for d in candidates if d.platform and d.platform.os != "unknown"), None
        ) or (candidates[0] if candidates else None)
    if chosen is None:
        return None
    return image.children.get(chosen.digest)


def index_json(images: Iterable[LayoutImage]) -> bytes:
    entries = []
    for image in images:
        desc = image.manifest.descriptor.to_json()
        if image.name:
            desc["annotations"] = {
                CONTAINERD_NAME: full_image_name(image.name),
                REF_NAME: image.name,
            }
        entries.append(desc)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    return json.dumps(doc, indent=2).encode()


def docker_manifest_json(
    images: Iterable[LayoutImage],
    platform: Platform,
    has_blob: Callable[[str], bool],
    notes: list[str] | None = None,
) -> bytes:
    """`manifest.json` of a docker-archive; images whose blobs are not all in the archive
    (left to a parent bundle) or that are not container images are left out. What a
    docker-archive reader will not see is said in `notes`."""
    notes = notes if notes is not None else []
    by_manifest: dict[str, dict[str, object]] = {}
    for image in images:
        manifest = select_platform(image, platform)
        if manifest is None:
            notes.append(f"{image.name}: no image manifest in its index; not in manifest.json")
            continue
        if manifest is not image.manifest:
            chosen = next(
                (str(d.platform) for d in _children(image) if d.digest == manifest.digest), "?"
            )
            notes.append(
                f"{image.name}: a docker-archive cannot hold an index; manifest.json has its "
                f"{chosen} image only (index.json has every platform)"
            )
        parsed = manifest.parse()
        if not isinstance(parsed, ImageManifest):
            continue
        if parsed.config.media_type not in (mt.DOCKER_CONFIG, mt.OCI_CONFIG):
            notes.append(f"{image.name}: not a container image; not in manifest.json")
            continue
        if not all(has_blob(d.digest) for d in parsed.blobs):
            continue
        entry = by_manifest.setdefault(
            manifest.digest,
            {
                "Config": blob_path(parsed.config.digest),
                "RepoTags": [],
                "Layers": [blob_path(d.digest) for d in parsed.layers],
            },
        )
        tags = entry["RepoTags"]
        assert isinstance(tags, list)
        if image.name and "@" not in image.name and image.name not in tags:
            tags.append(image.name)
    return json.dumps(list(by_manifest.values()), indent=2).encode()


def layout_members(
    images: list[LayoutImage],
    platform: Platform,
    has_blob: Callable[[str], bool],
    notes: list[str] | None = None,
) -> list[tuple[str, bytes]]:
    """The small files that end the archive, after all blobs."""
    notes = notes if notes is not None else []
    complete = []
    for image in images:
        if _complete(image, has_blob):
            complete.append(image)
        else:
            notes.append(
                f"{image.name or image.manifest.digest}: some of its blobs are left to a parent "
                "bundle; other tools cannot load it from this file"
            )
    return [
        ("oci-layout", OCI_LAYOUT),
        ("index.json", index_json(complete)),
        ("manifest.json", docker_manifest_json(complete, platform, has_blob, notes)),
    ]


def _children(image: LayoutImage) -> tuple[Descriptor, ...]:
    parsed = image.manifest.parse()
    return parsed.manifests if isinstance(parsed, ImageIndex) else ()


def _complete(image: LayoutImage, has_blob: Callable[[str], bool]) -> bool:
    """All manifests and blobs of the image are in the archive (an OCI layout may not
    reference blobs it lacks)."""
    manifests = [image.manifest, *image.children.values()]
    for manifest in manifests:
        if not has_blob(manifest.digest):
            return False
        parsed = manifest.parse()
        if isinstance(parsed, ImageManifest) and not all(has_blob(d.digest) for d in parsed.blobs):
            return False
        if isinstance(parsed, ImageIndex) and not all(has_blob(d.digest) for d in parsed.manifests):
            return False
    return True
