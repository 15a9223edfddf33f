"""Parsed views of manifests and indexes that always keep their exact original bytes.

We never re-serialize a manifest we copy: its digest is the sha256 of its bytes, and any
reformatting would change it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from transship.errors import UnsupportedError
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor
from transship.oci.digest import digest_bytes


@dataclass(frozen=True)
class RawManifest:
    """A manifest or index exactly as a source served it."""

    data: bytes
    media_type: str
    digest: str = ""

    def __post_init__(self) -> None:
        if not self.digest:
            object.__setattr__(self, "digest", digest_bytes(self.data))

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))

    def parse(self) -> ImageManifest | ImageIndex:
        return parse_manifest(self.data, self.media_type)


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config first, then layers: the order a registry expects them pushed."""
        return (self.config, *self.layers)


@dataclass(frozen=True)
class ImageIndex:
    media_type: str
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def detect_media_type(data: bytes, declared: str | None = None) -> str:
    """The media type of a manifest: the declared one, else its `mediaType`, else its shape."""
    declared = (declared or "").split(";")[0].strip()
    if declared in mt.MANIFEST_TYPES or declared in mt.SCHEMA1_TYPES:
        return declared
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise UnsupportedError(f"manifest is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise UnsupportedError("manifest is not a JSON object")
    inner = doc.get("mediaType")
    if inner:
        return inner
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_SCHEMA1
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mt.OCI_MANIFEST
    return declared or "application/octet-stream"


def parse_manifest(data: bytes, media_type: str) -> ImageManifest | ImageIndex:
    if media_type in mt.SCHEMA1_TYPES:
        raise UnsupportedError(
            "Docker schema 1 manifests are deprecated and not supported; "
            "push the image again with a current Docker or buildah"
        )
    try:
        doc: dict[str, Any] = json.loads(data)
    except ValueError as e:
        raise UnsupportedError(f"manifest is not valid JSON: {e}") from None
    if doc.get("schemaVersion") == 1:
        return parse_manifest(data, mt.DOCKER_SCHEMA1)
    subject = Descriptor.from_json(doc["subject"]) if doc.get("subject") else None
    annotations = dict(doc.get("annotations") or {})
    if media_type in mt.INDEX_TYPES:
        return ImageIndex(
            media_type,
            tuple(Descriptor.from_json(d) for d in doc.get("manifests", [])),
            subject,
            annotations,
        )
    if media_type in mt.IMAGE_MANIFEST_TYPES or "config" in doc:
        return ImageManifest(
            media_type,
            Descriptor.from_json(doc["config"]),
            tuple(Descriptor.from_json(d) for d in doc.get("layers") or []),
            subject,
            annotations,
        )
    raise UnsupportedError(f"unsupported manifest media type {media_type!r}")


def build_index(children: list[Descriptor], media_type: str = mt.OCI_INDEX) -> bytes:
    """Serialize a new index (used when --platform keeps only some children)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [d.to_json() for d in children],
    }
    return json.dumps(doc, indent=2).encode()
