"""Transport specs → Source / Destination objects.

    bundle:DIR/NAME.meta.json[:repo:tag]  (or a bare path ending in .meta.json)  transship bundle
    bundle:DIR/NAME_meta.yaml   (or a bare path ending in _meta.yaml)   image-transmit bundle
    image-transmit:DIR/NAME_meta.yaml                                    same, explicitly
    oci:DIR[:ref]               OCI image layout folder
    oci-archive:FILE[:ref]      OCI image layout in a tar
    docker-archive:FILE[:name:tag]                                        docker save format
    docker-daemon:[name:tag]    Docker Engine (destination only)
    containerd:[name:tag]       containerd via ctr (destination only)
    docker://host/repo:tag      a registry (transports/registry.py)

As with skopeo, the path of `oci:` / `*-archive:` specs ends at the first colon.
Keyword options are handed to the transport that accepts them (e.g. `workers`,
`volume_size`, `since` for a bundle; `namespace` for containerd); others are ignored, so a
caller can pass one set of options whatever the transport.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transship.bundle.meta import META_SUFFIX
from transship.errors import ConfigError, UnsupportedError
from transship.transports.base import Destination, Source
from transship.transports.image_transmit import META_SUFFIX as IMAGE_TRANSMIT_SUFFIX

FILE_KINDS = ("oci", "oci-archive", "docker-archive")
KINDS = (
    "bundle",
    "image-transmit",
    *FILE_KINDS,
    "docker-daemon",
    "containerd",
    "docker",
)


@dataclass(frozen=True)
class TransportSpec:
    kind: str
    path: str  # a file or folder; for docker://, the image reference
    ref: str | None = None  # image name inside the transport, if the spec gave one


def parse_spec(spec: str) -> TransportSpec:
    text = spec.strip()
    if not text:
        raise ConfigError("empty transport spec")
    if text.startswith("docker://"):
        return TransportSpec("docker", text[len("docker://") :])
    kind, sep, rest = text.partition(":")
    if sep and kind in ("bundle", "image-transmit"):
        if not rest:
            raise ConfigError(f"{spec!r}: give the path of the bundle meta file")
        path, ref = _split_meta_ref(rest)
        if kind == "bundle" and path.endswith(IMAGE_TRANSMIT_SUFFIX):
            kind = "image-transmit"
        return TransportSpec(kind, path, ref)
    if sep and kind in FILE_KINDS:
        path, _, ref = rest.partition(":")
        if not path:
            raise ConfigError(f"{spec!r}: give a path after {kind}:")
        return TransportSpec(kind, path, ref or None)
    if sep and kind in ("docker-daemon", "containerd"):
        return TransportSpec(kind, "", rest or None)
    path, ref = _split_meta_ref(text)
    if path.endswith(META_SUFFIX):
        return TransportSpec("bundle", path, ref)
    if path.endswith(IMAGE_TRANSMIT_SUFFIX):
        return TransportSpec("image-transmit", path, ref)
    raise ConfigError(
        f"unknown transport in {spec!r}: use one of "
        + ", ".join(f"{k}:" for k in KINDS if k != "docker")
        + ", docker://, or a path ending in .meta.json / _meta.yaml"
    )


def _split_meta_ref(text: str) -> tuple[str, str | None]:
    """`x.meta.json:repo:tag` → (`x.meta.json`, `repo:tag`): one image of a bundle."""
    for suffix in (META_SUFFIX, IMAGE_TRANSMIT_SUFFIX):
        cut = text.find(suffix + ":")
        if cut >= 0:
            end = cut + len(suffix)
            return text[:end], text[end + 1 :] or None
    return text, None


def _call(factory: Callable[..., Any], *args: Any, **options: Any) -> Any:
    """Call with the options `factory` accepts."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return factory(*args, **options)
    return factory(*args, **{k: v for k, v in options.items() if k in params})


def open_source(spec: str | TransportSpec, **options: Any) -> Source:
    s = spec if isinstance(spec, TransportSpec) else parse_spec(spec)
    if s.kind == "bundle":
        from transship.transports.bundle import BundleSource

        return _call(BundleSource, s.path, **options)
    if s.kind == "image-transmit":
        from transship.transports.image_transmit import ImageTransmitSource

        return _call(ImageTransmitSource, s.path, **options)
    if s.kind == "oci":
        from transship.transports.oci_layout import OCILayoutSource

        return OCILayoutSource(s.path, s.ref)
    if s.kind == "oci-archive":
        from transship.transports.archive import OCIArchiveSource

        return OCIArchiveSource(s.path, s.ref)
    if s.kind == "docker-archive":
        from transship.transports.archive import DockerArchiveSource

        return DockerArchiveSource(s.path, s.ref)
    if s.kind == "docker":
        return _open_registry(s.path, "source", **options)
    raise UnsupportedError(f"{s.kind}: can only be written to, not read from")


def open_destination(spec: str | TransportSpec, **options: Any) -> Destination:
    s = spec if isinstance(spec, TransportSpec) else parse_spec(spec)
    if s.kind == "bundle":
        from transship.transports.bundle import BundleDestination

        return _call(BundleDestination, s.path, **options)
    if s.kind == "image-transmit":
        from transship.transports.image_transmit import ImageTransmitDestination

        return _call(ImageTransmitDestination, s.path, **options)
    if s.kind == "oci":
        from transship.transports.oci_layout import OCILayoutDestination

        return OCILayoutDestination(s.path, s.ref)
    if s.kind in ("oci-archive", "docker-archive"):
        from transship.transports.archive import ArchiveDestination

        return _call(ArchiveDestination, s.path, ref=s.ref, kind=s.kind, **options)
    if s.kind == "docker-daemon":
        from transship.transports.docker_daemon import DockerDaemonDestination

        return _call(DockerDaemonDestination, ref=s.ref, **options)
    if s.kind == "containerd":
        from transship.transports.containerd import ContainerdDestination

        return _call(ContainerdDestination, ref=s.ref, **options)
    if s.kind == "docker":
        return _open_registry(s.path, "destination", **options)
    raise UnsupportedError(f"{s.kind}: cannot be written to")


# --- registry hook -------------------------------------------------------------------------
# `docker://` belongs to the registry transport (transports/registry.py), imported lazily so
# that file-only use never loads the HTTP client. It needs a RegistryClient for the host,
# which the caller builds from its configuration (credentials, TLS): pass
# `client_factory=lambda host: RegistryClient(...)`.


def _open_registry(reference: str, role: str, **options: Any) -> Any:
    from transship.transports.registry import RegistryDestination, RegistrySource

    client_factory = options.get("client_factory")
    if client_factory is None:
        raise ConfigError(
            f"docker://{reference}: opening a registry needs a client_factory(host) option"
        )
    host = reference.split("/", 1)[0]
    client = client_factory(host)
    return RegistrySource(client) if role == "source" else RegistryDestination(client)
