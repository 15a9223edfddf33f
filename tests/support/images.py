"""Test images built without transship: OCI image layouts on disk, pushed with skopeo.

Everything here is deterministic (fixed mtimes, seeded contents, gzip with mtime 0), so the
same call gives the same digests every run. Layouts are written to temporary directories;
real layers are read from ../shared/fixtures/layers and never copied into the repository.

    layout = OCILayout.create(tmp_path / "layout")
    base = layout.add_layer_file(SHARED_LAYERS / "layer-pax.tar.go-stdlib-default.gz")
    app = layout.add_layer({"app/hello.txt": b"hi"}, compression="gzip")
    image = layout.add_image([base, app], Platform("linux", "amd64"), family="docker")
    layout.tag(image, "v1")
    pushed = push_image(layout, "v1", registry, "team/app:v1")
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import zstandard

from .registry import RegistryServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
FIXED_TIME = "2024-01-01T00:00:00Z"
_FIXED_MTIME = 1704067200  # FIXED_TIME as a Unix timestamp

Family = Literal["oci", "docker"]
Compression = Literal["gzip", "zstd", "none"]

_HASH_CHUNK = 1 << 20


# -- data returned to tests ----------------------------------------------------------------------
@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def as_json(self) -> dict[str, str]:
        platform = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            platform["variant"] = self.variant
        return platform

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str

    def descriptor(self, media_type: str | None = None) -> dict[str, Any]:
        return {
            "mediaType": media_type or self.media_type,
            "digest": self.digest,
            "size": self.size,
        }


@dataclass(frozen=True)
class Layer:
    """A layer blob in a layout. media_type is the OCI one; Docker images map it."""

    blob: Blob
    diff_id: str
    compression: Compression

    @property
    def digest(self) -> str:
        return self.blob.digest

    @property
    def size(self) -> int:
        return self.blob.size

    @property
    def media_type(self) -> str:
        return self.blob.media_type

    def media_type_for(self, family: Family) -> str:
        if family == "docker":
            if self.compression != "gzip":
                raise ValueError("Docker schema 2 images have gzip layers only")
            return DOCKER_LAYER_GZIP
        return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}[self.compression]


@dataclass(frozen=True)
class Manifest:
    """Exact bytes of a manifest or index as stored, with its digest."""

    digest: str
    size: int
    media_type: str
    raw: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.raw)


@dataclass(frozen=True)
class BuiltImage:
    """One single-platform image: manifest, config and layers."""

    manifest: Manifest
    config: Blob
    layers: tuple[Layer, ...]
    platform: Platform

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    @property
    def blobs(self) -> dict[str, int]:
        """digest -> size of the config and every layer."""
        blobs = {self.config.digest: self.config.size}
        blobs.update({layer.digest: layer.size for layer in self.layers})
        return blobs


@dataclass(frozen=True)
class BuiltIndex:
    """A multi-platform image: an OCI index or a Docker manifest list, and its children."""

    manifest: Manifest
    images: tuple[BuiltImage, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    @property
    def blobs(self) -> dict[str, int]:
        blobs: dict[str, int] = {}
        for image in self.images:
            blobs.update(image.blobs)
        return blobs


Built = BuiltImage | BuiltIndex


def child_images(built: Built) -> tuple[BuiltImage, ...]:
    return built.images if isinstance(built, BuiltIndex) else (built,)


def all_manifests(built: Built) -> dict[str, Manifest]:
    """digest -> manifest for the top-level manifest and every child manifest."""
    manifests = {built.digest: built.manifest}
    for image in child_images(built):
        manifests[image.digest] = image.manifest
    return manifests


@dataclass(frozen=True)
class PushedImage:
    """What push_image put into a registry, for comparing against what a copy produced."""

    registry_host: str
    repository: str
    tag: str
    built: Built

    @property
    def reference(self) -> str:
        """host:port/repository:tag"""
        return f"{self.registry_host}/{self.repository}:{self.tag}"

    @property
    def digest_reference(self) -> str:
        return f"{self.registry_host}/{self.repository}@{self.digest}"

    @property
    def digest(self) -> str:
        return self.built.digest

    @property
    def media_type(self) -> str:
        return self.built.media_type

    @property
    def manifest(self) -> Manifest:
        return self.built.manifest

    @property
    def images(self) -> tuple[BuiltImage, ...]:
        return child_images(self.built)

    @property
    def manifests(self) -> dict[str, Manifest]:
        return all_manifests(self.built)

    @property
    def blobs(self) -> dict[str, int]:
        """digest -> size of every config and layer blob (manifests excluded)."""
        return self.built.blobs

    @property
    def total_blob_bytes(self) -> int:
        return sum(self.blobs.values())


# -- layer contents --------------------------------------------------------------------------------
def make_tar(
    files: Mapping[str, bytes],
    symlinks: Mapping[str, str] | None = None,
    directories: Iterable[str] = (),
) -> bytes:
    """A deterministic PAX tar: parent directories first, entries sorted, mtime fixed."""
    entries: dict[str, tuple[str, bytes | str | None]] = {}
    all_paths = list(files) + list(symlinks or {}) + list(directories)
    for path in all_paths:
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            entries.setdefault("/".join(parts[:depth]), ("dir", None))
    for path in directories:
        entries[path.strip("/")] = ("dir", None)
    for path, data in files.items():
        entries[path.strip("/")] = ("file", data)
    for path, target in (symlinks or {}).items():
        entries[path.strip("/")] = ("symlink", target)

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            kind, payload = entries[path]
            info = tarfile.TarInfo(path)
            info.mtime = _FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = str(payload)
                info.mode = 0o777
                tar.addfile(info)
            else:
                assert isinstance(payload, bytes)
                info.size = len(payload)
                info.mode = 0o755 if path.startswith(("bin/", "usr/bin/")) else 0o644
                tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def compress(data: bytes, compression: Compression) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3, write_content_size=True).compress(data)
    return data


def seeded_bytes(seed: int | str, size: int) -> bytes:
    """Incompressible but reproducible content."""
    return random.Random(str(seed)).randbytes(size)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _diff_id_of_file(path: Path, compression: Compression) -> str:
    """sha256 of the uncompressed tar, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        if compression == "gzip":
            decompressor = zlib.decompressobj(wbits=31)
            while chunk := file.read(_HASH_CHUNK):
                digest.update(decompressor.decompress(chunk))
            digest.update(decompressor.flush())
        elif compression == "zstd":
            reader = zstandard.ZstdDecompressor().stream_reader(file)
            while chunk := reader.read(_HASH_CHUNK):
                digest.update(chunk)
        else:
            while chunk := file.read(_HASH_CHUNK):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _compression_of_file(path: Path) -> Compression:
    with open(path, "rb") as file:
        magic = file.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return "none"


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=3).encode()


# -- the layout writer -----------------------------------------------------------------------------
@dataclass
class OCILayout:
    """An OCI image layout directory (oci-layout, index.json, blobs/sha256/...)."""

    path: Path
    tags: dict[str, Built] = field(default_factory=dict)

    @classmethod
    def create(cls, path: Path) -> OCILayout:
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        layout = cls(path)
        layout._write_index()
        return layout

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        return self.path / "blobs" / algorithm / hex_digest

    # -- blobs
    def add_blob_bytes(self, data: bytes, media_type: str) -> Blob:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        target = self.blob_path(digest)
        if not target.exists():
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        return Blob(digest, len(data), media_type)

    def add_blob_file(self, source: Path, media_type: str) -> Blob:
        """Add a file as a blob: hard-linked when possible, else copied."""
        digest = _sha256_file(source)
        target = self.blob_path(digest)
        if not target.exists():
            _link_or_copy(source, target)
        return Blob(digest, source.stat().st_size, media_type)

    def add_layer(
        self,
        files: Mapping[str, bytes],
        compression: Compression = "gzip",
        symlinks: Mapping[str, str] | None = None,
    ) -> Layer:
        """A generated layer from file contents."""
        tar = make_tar(files, symlinks)
        data = compress(tar, compression)
        blob = self.add_blob_bytes(data, "")
        layer = Layer(blob, "sha256:" + hashlib.sha256(tar).hexdigest(), compression)
        return Layer(
            Blob(blob.digest, blob.size, layer.media_type_for("oci")), layer.diff_id, compression
        )

    def add_layer_file(self, path: Path, compression: Compression | None = None) -> Layer:
        """A layer from an existing tar / tar.gz / tar.zst file (compression is sniffed)."""
        compression = compression or _compression_of_file(path)
        diff_id = _diff_id_of_file(path, compression)
        blob = self.add_blob_file(path, "")
        layer = Layer(blob, diff_id, compression)
        return Layer(
            Blob(blob.digest, blob.size, layer.media_type_for("oci")), diff_id, compression
        )

    # -- images
    def add_image(
        self,
        layers: Iterable[Layer],
        platform: Platform = Platform("linux", "amd64"),
        family: Family = "oci",
        *,
        history: list[dict[str, Any]] | None = None,
        env: Iterable[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
        cmd: Iterable[str] = ("/bin/sh",),
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> BuiltImage:
        """Config + manifest for one platform; history defaults to one entry per layer."""
        layers = tuple(layers)
        config = {
            "architecture": platform.architecture,
            "os": platform.os,
            **({"variant": platform.variant} if platform.variant else {}),
            "created": FIXED_TIME,
            "config": {
                "Env": list(env),
                "Cmd": list(cmd),
                "Labels": dict(labels or {}),
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": history if history is not None else default_history(layers),
        }
        config_type = DOCKER_CONFIG if family == "docker" else OCI_CONFIG
        config_blob = self.add_blob_bytes(_json_bytes(config), config_type)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if family == "docker" else OCI_MANIFEST,
            "config": config_blob.descriptor(),
            "layers": [layer.blob.descriptor(layer.media_type_for(family)) for layer in layers],
        }
        if annotations:
            if family == "docker":
                raise ValueError("Docker schema 2 manifests have no annotations")
            manifest["annotations"] = dict(annotations)
        built_manifest = self._add_manifest(manifest)
        typed_layers = tuple(
            Layer(
                Blob(lay.digest, lay.size, lay.media_type_for(family)), lay.diff_id, lay.compression
            )
            for lay in layers
        )
        return BuiltImage(built_manifest, config_blob, typed_layers, platform)

    def add_index(self, images: Iterable[BuiltImage], family: Family = "oci") -> BuiltIndex:
        """An OCI image index or a Docker manifest list over single-platform images."""
        images = tuple(images)
        index = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_LIST if family == "docker" else OCI_INDEX,
            "manifests": [
                {
                    "mediaType": image.media_type,
                    "digest": image.digest,
                    "size": image.manifest.size,
                    "platform": image.platform.as_json(),
                }
                for image in images
            ],
        }
        return BuiltIndex(self._add_manifest(index), images)

    def _add_manifest(self, manifest: dict[str, Any]) -> Manifest:
        raw = _json_bytes(manifest)
        blob = self.add_blob_bytes(raw, manifest["mediaType"])
        return Manifest(blob.digest, blob.size, manifest["mediaType"], raw)

    def tag(self, built: Built, tag: str) -> Built:
        """Name an image in index.json (skopeo reads it as oci:DIR:TAG)."""
        self.tags[tag] = built
        self._write_index()
        return built

    def export_dir(self, tag: str) -> Path:
        """The tagged image in skopeo's dir: layout (blobs hard-linked), next to the layout."""
        built = self.tags[tag]
        target = self.path.parent / f"{self.path.name}.dir" / tag
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        (target / "version").write_text("Directory Transport Version: 1.1\n")
        (target / "manifest.json").write_bytes(built.manifest.raw)
        children = built.images if isinstance(built, BuiltIndex) else ()
        for image in children:
            (target / f"{image.digest[7:]}.manifest.json").write_bytes(image.manifest.raw)
        for digest in built.blobs:
            _link_or_copy(self.blob_path(digest), target / digest[7:])
        return target

    def _write_index(self) -> None:
        manifests = []
        for tag, built in self.tags.items():
            manifests.append(
                {
                    "mediaType": built.media_type,
                    "digest": built.digest,
                    "size": built.manifest.size,
                    "annotations": {REF_NAME_ANNOTATION: tag},
                }
            )
        index = {"schemaVersion": 2, "manifests": manifests}
        tmp = self.path / "index.json.tmp"
        tmp.write_text(json.dumps(index, indent=2))
        tmp.replace(self.path / "index.json")


def default_history(layers: tuple[Layer, ...]) -> list[dict[str, Any]]:
    """One history entry per layer, then two empty-layer entries, like a Dockerfile build."""
    history: list[dict[str, Any]] = [
        {
            "created": FIXED_TIME,
            "created_by": f"/bin/sh -c #(nop) ADD file:{layer.diff_id[7:19]} in /",
            "comment": f"layer {number}",
        }
        for number, layer in enumerate(layers, start=1)
    ]
    history += [
        {"created": FIXED_TIME, "created_by": "/bin/sh -c #(nop)  ENV APP=1", "empty_layer": True},
        {
            "created": FIXED_TIME,
            "created_by": '/bin/sh -c #(nop)  CMD ["/bin/sh"]',
            "empty_layer": True,
        },
    ]
    return history


# -- pushing ------------------------------------------------------------------------------------------
class PushError(RuntimeError):
    pass


def push_image(
    layout: OCILayout,
    tag: str,
    registry: RegistryServer,
    destination: str,
    *,
    timeout: float = 300,
) -> PushedImage:
    """skopeo copy --all --preserve-digests oci:LAYOUT:TAG docker://HOST/DESTINATION.

    destination is "repository:tag"; credentials and TLS trust come from the registry.
    """
    repository, _, dest_tag = destination.rpartition(":")
    if not repository or "/" in dest_tag:
        raise ValueError(f"destination must be repository:tag, not {destination!r}")
    built = layout.tags[tag]
    if built.media_type in (OCI_MANIFEST, OCI_INDEX):
        source = f"oci:{layout.path}:{tag}"
    else:
        # skopeo's oci: transport only resolves tags of OCI-typed manifests; its dir:
        # transport takes any manifest type as it is.
        source = f"dir:{layout.export_dir(tag)}"
    command = [
        "skopeo",
        "--insecure-policy",
        "copy",
        "--all",
        "--preserve-digests",
        "--retry-times=2",
        *registry.skopeo_flags("dest-"),
        source,
        f"docker://{registry.host}/{destination}",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise PushError(f"skopeo copy to {registry.host}/{destination} failed:\n{result.stderr}")
    return PushedImage(registry.host, repository, dest_tag, built)


def skopeo_inspect(
    registry: RegistryServer, reference: str, *, raw: bool = False, config: bool = False
) -> tuple[int, bytes, str]:
    """(returncode, stdout bytes, stderr) of skopeo inspect on docker://HOST/REFERENCE.

    With raw=True stdout holds the manifest exactly as the registry serves it.
    """
    command = ["skopeo", "inspect", *registry.skopeo_flags()]
    if raw:
        command.append("--raw")
    if config:
        command.append("--config")
    command.append(f"docker://{registry.host}/{reference}")
    result = subprocess.run(command, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout, result.stderr.decode(errors="replace")
