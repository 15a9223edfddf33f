"""Resolve an image in a Source to the parts analysis needs: one platform's manifest, its
config (diff_ids, history) and its layer descriptors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from transship.errors import NotFoundError, UnsupportedError
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor, Platform
from transship.oci.digest import verify_bytes
from transship.oci.manifest import ImageIndex, ImageManifest, RawManifest
from transship.transports.base import Source

MAX_CONFIG_BYTES = 64 << 20  # a config is JSON metadata; anything this big is not one
DEFAULT_PLATFORM = Platform("linux", "amd64")


@dataclass(frozen=True)
class ImageInput:
    """An image to analyze: its display name and where to read it."""

    name: str
    source: Source
    repository: str
    reference: str
    spec: str = ""  # how to open `source` again (a transport spec), for `offload build`


@dataclass(frozen=True)
class HistoryStep:
    created_by: str | None
    created: str | None
    comment: str | None


@dataclass(frozen=True)
class ResolvedImage:
    name: str
    source: Source
    repository: str
    reference: str
    spec: str
    manifest_digest: str
    config_digest: str
    platform: str | None
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str | None, ...]  # per layer, from the config
    history: tuple[HistoryStep | None, ...]  # per layer: the step that made it

    @property
    def keys(self) -> list[str]:
        return [self.layer_key(i) for i in range(len(self.layers))]

    def layer_key(self, index: int) -> str:
        """What identifies a layer's content: its diff_id (the same tar compressed twice
        is the same content), else its blob digest."""
        return self.diff_ids[index] or self.layers[index].digest


def resolve_image(image: ImageInput, platform: Platform = DEFAULT_PLATFORM) -> ResolvedImage:
    raw = image.source.get_manifest(image.repository, image.reference)
    manifest, raw = _pick_platform(image, raw, platform)
    config = _read_config(image, manifest.config)
    layers = manifest.layers
    diff_ids = _diff_ids(config, len(layers))
    history = _history_per_layer(config, len(layers))
    found_platform = None
    if config.get("os") or config.get("architecture"):
        found_platform = str(
            Platform(config.get("os", ""), config.get("architecture", ""), config.get("variant"))
        )
    return ResolvedImage(
        name=image.name,
        source=image.source,
        repository=image.repository,
        reference=image.reference,
        spec=image.spec or image.name,
        manifest_digest=raw.digest,
        config_digest=manifest.config.digest,
        platform=found_platform,
        layers=layers,
        diff_ids=diff_ids,
        history=history,
    )


def _pick_platform(
    image: ImageInput, raw: RawManifest, platform: Platform
) -> tuple[ImageManifest, RawManifest]:
    parsed = raw.parse()
    if isinstance(parsed, ImageManifest):
        return parsed, raw
    assert isinstance(parsed, ImageIndex)
    candidates = [
        d for d in parsed.manifests if mt.is_image_manifest(d.media_type) or not d.media_type
    ]
    chosen = next((d for d in candidates if platform.matches(d.platform)), None)
    if chosen is None:
        available = ", ".join(sorted({str(d.platform) for d in candidates if d.platform})) or "none"
        raise NotFoundError(
            f"{image.name}: no {platform} image in its index (available: {available}); "
            "choose one with --platform"
        )
    child = image.source.get_manifest(image.repository, chosen.digest)
    parsed_child = child.parse()
    if not isinstance(parsed_child, ImageManifest):
        raise UnsupportedError(f"{image.name}: index entry {chosen.digest} is not an image")
    return parsed_child, child


def _read_config(image: ImageInput, desc: Descriptor) -> dict[str, Any]:
    if desc.size > MAX_CONFIG_BYTES:
        raise UnsupportedError(f"{image.name}: config blob of {desc.size} bytes is too big")
    with image.source.open_blob(image.repository, desc) as stream:
        data = stream.read(MAX_CONFIG_BYTES + 1)
    verify_bytes(data, desc.digest, f"{image.name}: config")
    try:
        config = json.loads(data)
    except ValueError as e:
        raise UnsupportedError(f"{image.name}: config is not JSON: {e}") from None
    if not isinstance(config, dict):
        raise UnsupportedError(f"{image.name}: config is not a JSON object")
    return config


def _diff_ids(config: dict[str, Any], layer_count: int) -> tuple[str | None, ...]:
    rootfs = config.get("rootfs") or {}
    ids = [d for d in rootfs.get("diff_ids") or [] if isinstance(d, str)]
    if len(ids) != layer_count:  # a config that does not describe these layers: ignore it
        return (None,) * layer_count
    return tuple(ids)


def _history_per_layer(config: dict[str, Any], layer_count: int) -> tuple[HistoryStep | None, ...]:
    """History has one entry per build step; those without `empty_layer` made a layer, in
    order. Tools that write no history, or a different number of steps, leave gaps."""
    steps = [
        HistoryStep(h.get("created_by"), h.get("created"), h.get("comment"))
        for h in config.get("history") or []
        if isinstance(h, dict) and not h.get("empty_layer")
    ]
    steps = steps[:layer_count]
    return tuple(steps) + (None,) * (layer_count - len(steps))
