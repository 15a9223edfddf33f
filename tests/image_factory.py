"""Test images built by hand as OCI image layouts (plain file writes, no transship code),
so that transports can be tested against layouts every other tool agrees on.

Layers come from ../shared/fixtures/layers (real tars with edge cases, gzipped by real
compressors) plus small generated ones.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "layers"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def diff_id_of(path: Path) -> str:
    h = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def make_layer(files: dict[str, bytes], mtime: int = 0) -> bytes:
    """A small gzipped tar layer, deterministic."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


@dataclass
class Manifest:
    data: bytes
    media_type: str
    platform: dict[str, str] | None = None

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def descriptor(self) -> dict:
        d = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}
        if self.platform:
            d["platform"] = self.platform
        return d


@dataclass
class LayoutBuilder:
    """Writes an OCI image layout: blobs, then `index.json` on `finish()`."""

    root: Path
    entries: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def blob_bytes(self, data: bytes) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return digest, len(data)

    def blob_file(self, path: Path) -> tuple[str, int]:
        digest = sha256_file(path)
        shutil.copyfile(path, self.root / "blobs" / "sha256" / digest[7:])
        return digest, path.stat().st_size

    def image(
        self,
        layers: list[bytes | Path],
        docker: bool = False,
        arch: str = "amd64",
        label: str = "",
    ) -> Manifest:
        """An image manifest with its config and layers stored as blobs."""
        descs, diff_ids = [], []
        for layer in layers:
            if isinstance(layer, Path):
                digest, size = self.blob_file(layer)
                diff_ids.append(diff_id_of(layer))
            else:
                digest, size = self.blob_bytes(layer)
                diff_ids.append("sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest())
            descs.append(
                {
                    "mediaType": DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP,
                    "digest": digest,
                    "size": size,
                }
            )
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "config": {"Labels": {"test": label}} if label else {},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        config_digest, config_size = self.blob_bytes(config)
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": config_digest,
                "size": config_size,
            },
            "layers": descs,
        }
        manifest = Manifest(
            json.dumps(doc, indent=3).encode(),
            doc["mediaType"],
            {"architecture": arch, "os": "linux"},
        )
        self.blob_bytes(manifest.data)
        return manifest

    def index(self, children: list[Manifest]) -> Manifest:
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [c.descriptor for c in children],
        }
        manifest = Manifest(json.dumps(doc).encode(), OCI_INDEX)
        self.blob_bytes(manifest.data)
        return manifest

    def tag(self, manifest: Manifest, name: str) -> None:
        entry = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": len(manifest.data),
            "annotations": {"org.opencontainers.image.ref.name": name},
        }
        self.entries.append(entry)

    def finish(self) -> Path:
        (self.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        doc = {"schemaVersion": 2, "manifests": self.entries}
        (self.root / "index.json").write_text(json.dumps(doc))
        return self.root


def fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        import pytest

        pytest.skip(f"fixture {path} not available")
    return path


def standard_layout(root: Path) -> LayoutBuilder:
    """Three images sharing layers, one of them a two-platform index:
    - `app/one:1.0`  = fixture gzip layer (go) + small layer A
    - `app/two:2.0`  = same fixture layer + small layer B (docker media types)
    - `app/multi:3`  = index of amd64 (layer A + C) and arm64 (layer C) children
    """
    b = LayoutBuilder(root)
    shared = fixture("layer-pax.tar.go-stdlib-default.gz")
    layer_a = make_layer({"a.txt": b"A" * 1000})
    layer_b = make_layer({"b.txt": b"B" * 5000, "bin/x": bytes(range(256)) * 40})
    layer_c = make_layer({"c.txt": b"C" * 300})
    one = b.image([shared, layer_a], label="one")
    two = b.image([shared, layer_b], docker=True, label="two")
    amd = b.image([layer_a, layer_c], arch="amd64", label="multi")
    arm = b.image([layer_c], arch="arm64", label="multi")
    multi = b.index([amd, arm])
    b.tag(one, "app/one:1.0")
    b.tag(two, "app/two:2.0")
    b.tag(multi, "app/multi:3")
    b.finish()
    return b
