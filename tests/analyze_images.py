"""Synthetic images for the analyze tests: layers written entry by entry (so every byte of
waste, duplication and sharing is planted on purpose), an in-memory Source that serves
them, and OCI layouts of them for pushing to a real registry with skopeo."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from transship.errors import NotFoundError
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor
from transship.oci.manifest import RawManifest
from transship.transports.base import Source


def blob(seed: str, size: int) -> bytes:
    """Deterministic incompressible bytes: content that only equals itself."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- layer entries ---------------------------------------------------------------------------
@dataclass(frozen=True)
class File:
    path: str
    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Dir:
    path: str
    mode: int = 0o755


@dataclass(frozen=True)
class Symlink:
    path: str
    target: str


@dataclass(frozen=True)
class Hardlink:
    path: str
    target: str


@dataclass(frozen=True)
class Whiteout:
    path: str  # what it deletes


@dataclass(frozen=True)
class Opaque:
    directory: str


Entry = File | Dir | Symlink | Hardlink | Whiteout | Opaque


def layer_tar(entries: Sequence[Entry]) -> bytes:
    """A tar with exactly these entries (no implicit parents), deterministic."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo()
            info.mtime = 0
            data = None
            if isinstance(entry, File):
                info.name, info.mode, info.size = entry.path, entry.mode, len(entry.content)
                data = io.BytesIO(entry.content)
            elif isinstance(entry, Dir):
                info.name, info.type, info.mode = entry.path, tarfile.DIRTYPE, entry.mode
            elif isinstance(entry, Symlink):
                info.name, info.type, info.linkname = entry.path, tarfile.SYMTYPE, entry.target
            elif isinstance(entry, Hardlink):
                info.name, info.type, info.linkname = entry.path, tarfile.LNKTYPE, entry.target
            elif isinstance(entry, Whiteout):
                parent, _, name = entry.path.rpartition("/")
                info.name = f"{parent}/.wh.{name}" if parent else f".wh.{name}"
            elif isinstance(entry, Opaque):
                info.name = f"{entry.directory}/.wh..wh..opq"
            tar.addfile(info, data)
    return out.getvalue()


# -- images ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """A build step: with entries it makes a layer, without it is a metadata step."""

    created_by: str
    entries: Sequence[Entry] | None = None


@dataclass(frozen=True)
class RawLayer:
    """A build step whose layer is an existing blob (e.g. one pulled from a registry)."""

    created_by: str
    blob: bytes
    diff_id: str
    media_type: str = mt.OCI_LAYER_GZIP


@dataclass
class BuiltImage:
    manifest: bytes
    config: bytes
    blobs: dict[str, bytes] = field(default_factory=dict)
    layer_digests: list[str] = field(default_factory=list)
    diff_ids: list[str] = field(default_factory=list)
    media_type: str = mt.OCI_MANIFEST

    @property
    def digest(self) -> str:
        return "sha256:" + sha256_hex(self.manifest)

    @property
    def layer_sizes(self) -> list[int]:
        return [len(self.blobs[d]) for d in self.layer_digests]


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    return data


_LAYER_TYPES = {"gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD, "none": mt.OCI_LAYER}


def build_image(
    steps: Sequence[Step | RawLayer],
    compression: str | Sequence[str] = "gzip",
    architecture: str = "amd64",
    write_history: bool = True,
) -> BuiltImage:
    layer_steps = [s for s in steps if isinstance(s, RawLayer) or s.entries is not None]
    compressions = (
        [compression] * len(layer_steps) if isinstance(compression, str) else list(compression)
    )
    blobs: dict[str, bytes] = {}
    layers = []
    diff_ids = []
    for step, kind in zip(layer_steps, compressions, strict=True):
        if isinstance(step, RawLayer):
            data, diff_id, media_type = step.blob, step.diff_id, step.media_type
        else:
            tar = layer_tar(step.entries or ())
            data, diff_id, media_type = (
                compress(tar, kind),
                "sha256:" + sha256_hex(tar),
                _LAYER_TYPES[kind],
            )
        digest = "sha256:" + sha256_hex(data)
        blobs[digest] = data
        diff_ids.append(diff_id)
        layers.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    config_doc = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if write_history:
        config_doc["history"] = [
            {"created": "2024-01-01T00:00:00Z", "created_by": s.created_by}
            | ({} if isinstance(s, RawLayer) or s.entries is not None else {"empty_layer": True})
            for s in steps
        ]
    config = json.dumps(config_doc, sort_keys=True).encode()
    config_digest = "sha256:" + sha256_hex(config)
    blobs[config_digest] = config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layers,
        },
        indent=2,
    ).encode()
    return BuiltImage(manifest, config, blobs, [x["digest"] for x in layers], diff_ids)


def index_of(images: dict[str, BuiltImage]) -> bytes:
    """An OCI index over images keyed by "os/arch"."""
    manifests = []
    for platform, image in images.items():
        os_name, arch = platform.split("/")
        manifests.append(
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": image.digest,
                "size": len(image.manifest),
                "platform": {"os": os_name, "architecture": arch},
            }
        )
    return json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}
    ).encode()


# -- serving them ----------------------------------------------------------------------------
class MemorySource(Source):
    """A Source over images held in memory; counts blob reads."""

    name = "memory"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], RawManifest] = {}
        self.blob_reads: dict[str, int] = {}

    def add(self, repository: str, tag: str, image: BuiltImage) -> None:
        self.blobs.update(image.blobs)
        raw = RawManifest(image.manifest, image.media_type)
        self.manifests[(repository, tag)] = raw
        self.manifests[(repository, raw.digest)] = raw

    def add_index(self, repository: str, tag: str, images: dict[str, BuiltImage]) -> None:
        for image in images.values():
            self.blobs.update(image.blobs)
            raw = RawManifest(image.manifest, image.media_type)
            self.manifests[(repository, raw.digest)] = raw
        index = RawManifest(index_of(images), mt.OCI_INDEX)
        self.manifests[(repository, tag)] = index

    def get_manifest(self, repository: str, reference: str) -> RawManifest:
        try:
            return self.manifests[(repository, reference)]
        except KeyError:
            raise NotFoundError(f"manifest {repository}:{reference} not found") from None

    @contextmanager
    def open_blob(self, repository: str, desc: Descriptor, offset: int = 0) -> Iterator[BinaryIO]:
        if desc.digest not in self.blobs:
            raise NotFoundError(f"blob {desc.digest} not found in {repository}")
        self.blob_reads[desc.digest] = self.blob_reads.get(desc.digest, 0) + 1
        yield io.BytesIO(self.blobs[desc.digest][offset:])


def write_oci_layout(directory: Path, tag: str, image: BuiltImage) -> Path:
    """An OCI image layout holding one image under `tag` (skopeo's `oci:DIR:TAG`)."""
    blobs_dir = directory / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    for digest, data in {**image.blobs, image.digest: image.manifest}.items():
        (blobs_dir / digest.split(":", 1)[1]).write_bytes(data)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = directory / "index.json"
    index = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "manifests": []}
    )
    index["manifests"] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ]
    index["manifests"].append(
        {
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": len(image.manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
    )
    index_path.write_text(json.dumps(index))
    return directory


# -- the planted fleet -----------------------------------------------------------------------
# A "release" of three services on one shared base, with every kind of waste, duplicate and
# shared jar placed on purpose; sizes are the figures the tests expect analyze to find.
SIZES = {
    "sh": 6000,
    "cfg-base": 1000,
    "conf-a": 700,
    "conf-b": 800,
    "copyright": 3000,
    "libbig": 100_000,
    "lists1": 30_000,
    "lists2": 20_000,
    "guava": 40_000,
    "jackson": 30_000,
    "netty": 50_000,
    "a-only": 10_000,
    "app-a": 25_000,
    "cfg-a": 1200,
    "b-only": 12_000,
    "app-b": 22_000,
    "conf-c": 900,
    "app-c": 18_000,
    "jackson-2": 31_000,
    "app-a2": 26_000,
}


def content(name: str) -> bytes:
    return blob(name, SIZES[name])


def base_entries() -> list[Entry]:
    return [
        Dir("bin"),
        File("bin/sh", content("sh"), 0o755),
        Hardlink("bin/sh-hard", "bin/sh"),
        Symlink("bin/bash", "sh"),
        Dir("etc"),
        File("etc/config", content("cfg-base")),
        Dir("app"),
        Dir("app/conf"),
        File("app/conf/a.yml", content("conf-a")),
        File("app/conf/b.yml", content("conf-b")),
        Dir("usr/share/doc/x"),
        File("usr/share/doc/x/copyright", content("copyright")),
        Dir("usr/share/doc/y"),
        File("usr/share/doc/y/copyright", content("copyright")),
        File("etc/empty.conf", b""),
    ]


BASE_STEP = Step("ADD rootfs.tar /", base_entries())


# The jars the release's offload recommendation moves into the offload layer.
OFFLOADED = frozenset({"app/lib/guava.jar", "app/lib/jackson.jar", "app/lib/netty.jar"})


def _on_offload(steps: list[Step | RawLayer], offload: RawLayer | None) -> list[Step | RawLayer]:
    """The same build FROM the offload image: its layer right above the base, and the
    offloaded jars no longer copied by the service."""
    if offload is None:
        return steps
    out: list[Step | RawLayer] = [steps[0], offload]
    for step in steps[1:]:
        if isinstance(step, Step) and step.entries is not None:
            kept = [e for e in step.entries if not (isinstance(e, File) and e.path in OFFLOADED)]
            step = Step(step.created_by, kept)
        out.append(step)
    return out


def svc_a(version: int = 1, offload: RawLayer | None = None) -> BuiltImage:
    if version == 1:
        libs = [
            Dir("app/lib"),
            File("app/lib/guava.jar", content("guava")),
            File("app/lib/jackson.jar", content("jackson")),
            File("app/lib/netty.jar", content("netty")),
            File("app/lib/a-only.jar", content("a-only")),
        ]
        app = [File("app/app.jar", content("app-a")), File("etc/config", content("cfg-a"))]
    else:
        libs = [
            Dir("app/lib"),
            File("app/lib/guava.jar", content("guava")),
            File("app/lib/jackson-2.jar", content("jackson-2")),
            File("app/lib/netty.jar", content("netty")),
            File("app/lib/a-only.jar", content("a-only")),
        ]
        app = [File("app/app.jar", content("app-a2")), File("etc/config", content("cfg-a"))]
    return build_image(
        _on_offload(
            [
                BASE_STEP,
                Step('ENV LANG="C.UTF-8"'),
                Step(
                    "RUN apt-get update && apt-get install -y libbig",
                    [
                        File("usr/lib/libbig.so", content("libbig"), 0o755),
                        Dir("var/lib/apt/lists"),
                        File("var/lib/apt/lists/index1", content("lists1")),
                        File("var/lib/apt/lists/index2", content("lists2")),
                    ],
                ),
                Step("RUN rm -rf /var/lib/apt/lists", [Whiteout("var/lib/apt/lists")]),
                Step("COPY lib/ /app/lib/", libs),
                Step("COPY app.jar /app/app.jar", app),
                Step('CMD ["java", "-jar", "/app/app.jar"]'),
            ],
            offload,
        )
    )


def svc_b(offload: RawLayer | None = None) -> BuiltImage:
    return build_image(
        _on_offload(
            [
                BASE_STEP,
                Step(
                    "COPY lib/ /app/lib/",
                    [
                        Dir("app/lib"),
                        File("app/lib/guava.jar", content("guava")),
                        File("app/lib/jackson.jar", content("jackson")),
                        File("app/lib/netty.jar", content("netty")),
                        File("app/lib/b-only.jar", content("b-only")),
                    ],
                ),
                Step(
                    "COPY app.jar conf/ /app/",
                    [
                        File("app/app.jar", content("app-b")),
                        Dir("app/conf"),
                        Opaque("app/conf"),
                        File("app/conf/c.yml", content("conf-c")),
                    ],
                ),
            ],
            offload,
        )
    )


def svc_c(offload: RawLayer | None = None) -> BuiltImage:
    """Its base is the same tar as the others', compressed with zstd instead of gzip."""
    compression = ["zstd", "gzip", "gzip"] + (["gzip"] if offload else [])
    return build_image(
        _on_offload(
            [
                BASE_STEP,
                Step(
                    "COPY lib/ /app/lib/",
                    [
                        Dir("app/lib"),
                        File("app/lib/guava.jar", content("guava")),
                        File("app/lib/jackson.jar", content("jackson")),
                        File("app/lib/netty-renamed.jar", content("netty")),
                    ],
                ),
                Step(
                    "COPY app.jar /app/",
                    [
                        File("app/app.jar", content("app-c")),
                        File("app/app-copy.jar", content("guava")),
                    ],
                ),
            ],
            offload,
        ),
        compression=compression,
    )


def planted_fleet() -> dict[str, BuiltImage]:
    """repository:tag -> image."""
    return {
        "svc-a:1": svc_a(1),
        "svc-a:2": svc_a(2),
        "svc-b:1": svc_b(),
        "svc-c:1": svc_c(),
    }
