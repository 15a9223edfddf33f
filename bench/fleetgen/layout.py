"""Image configs, manifests and the OCI image layout that holds the whole fleet.

The Docker-built half looks like what `docker push` / BuildKit sends (Docker schema 2
media types, manifest indented by three spaces, buildkit history); the Jib half looks
like what Jib sends (OCI media types, compact JSON, epoch timestamps).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from fleetgen.layers import LayerResult
from fleetgen.plan import JRE_HOME, ImageSpec

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

BASE_CREATED = "2023-11-14T22:13:20Z"
DOCKER_CREATED = "2024-01-01T00:00:00Z"
JIB_CREATED = "1970-01-01T00:00:00Z"
PATH_ENV = f"PATH=/{JRE_HOME}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _link(source: Path, target: Path) -> None:
    if target.exists():
        if os.path.samefile(source, target):
            return
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


@dataclass(frozen=True)
class WrittenImage:
    spec: ImageSpec
    media_type: str
    digest: str
    size: int
    config_digest: str
    layers: list[LayerResult]


def _base_history(image: ImageSpec, results: list[LayerResult]) -> list[dict]:
    history = [
        {
            "created": BASE_CREATED,
            "created_by": f"/bin/sh -c #(nop) ADD file:{results[0].diff_id[7:]} in / ",
        },
        {
            "created": BASE_CREATED,
            "created_by": '/bin/sh -c #(nop)  CMD ["bash"]',
            "empty_layer": True,
        },
    ]
    if len(image.layers) > 1:
        history += [
            {
                "created": BASE_CREATED,
                "created_by": f"ENV JAVA_HOME=/{JRE_HOME}",
                "comment": "buildkit.dockerfile.v0",
                "empty_layer": True,
            },
            {
                "created": BASE_CREATED,
                "created_by": f"COPY /{JRE_HOME} /{JRE_HOME} # buildkit",
                "comment": "buildkit.dockerfile.v0",
            },
        ]
    return history


def _docker_config(image: ImageSpec, results: list[LayerResult]) -> dict:
    history = _base_history(image, results)
    entrypoint = ["java", "-jar", f"/{image.app_path}"] if image.app_path else ["bash"]
    if image.app_path:
        workdir = os.path.dirname(f"/{image.app_path}")
        history += [
            {
                "created": DOCKER_CREATED,
                "created_by": f"WORKDIR {workdir}",
                "comment": "buildkit.dockerfile.v0",
                "empty_layer": True,
            },
            {
                "created": DOCKER_CREATED,
                "created_by": f"COPY lib/ {workdir}/lib/ # buildkit",
                "comment": "buildkit.dockerfile.v0",
            },
            {
                "created": DOCKER_CREATED,
                "created_by": f"COPY {image.service}.jar /{image.app_path} # buildkit",
                "comment": "buildkit.dockerfile.v0",
            },
            {
                "created": DOCKER_CREATED,
                "created_by": "ENTRYPOINT " + json.dumps(entrypoint, separators=(",", ":")),
                "comment": "buildkit.dockerfile.v0",
                "empty_layer": True,
            },
        ]
    return {
        "architecture": "amd64",
        "config": {
            "Env": [PATH_ENV, f"JAVA_HOME=/{JRE_HOME}", "LANG=C.UTF-8"],
            "Entrypoint": entrypoint,
            "WorkingDir": os.path.dirname(f"/{image.app_path}") if image.app_path else "/",
            "Labels": {"org.opencontainers.image.version": image.version},
        },
        "created": DOCKER_CREATED,
        "history": history,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [r.diff_id for r in results]},
    }


def _jib_config(image: ImageSpec, results: list[LayerResult]) -> dict:
    history = _base_history(image, results)
    for comment in ("dependencies", "classes"):
        history.append(
            {
                "created": JIB_CREATED,
                "author": "Jib",
                "created_by": "jib-maven-plugin:3.4.0",
                "comment": comment,
            }
        )
    main_class = f"com.example.{image.service}.Application"
    return {
        "created": JIB_CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": [PATH_ENV, f"JAVA_HOME=/{JRE_HOME}", "LANG=C.UTF-8"],
            "Entrypoint": ["java", "-cp", f"/{image.app_path}:/app/libs/*", main_class],
            "Labels": {"org.opencontainers.image.version": image.version},
            "WorkingDir": "/app",
        },
        "history": history,
        "rootfs": {"type": "layers", "diff_ids": [r.diff_id for r in results]},
    }


class LayoutWriter:
    """Writes configs and manifests into an OCI layout whose layer blobs are already there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.blobs / digest
        if not path.exists() or path.stat().st_size != len(data):
            tmp = path.with_name(f".tmp-{digest}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return f"sha256:{digest}"

    def write_image(self, image: ImageSpec, results: list[LayerResult]) -> WrittenImage:
        docker = image.flavour == "docker"
        if docker:
            config = json.dumps(_docker_config(image, results), separators=(",", ":")).encode()
        else:
            config = json.dumps(_jib_config(image, results), separators=(",", ":")).encode()
        config_digest = self.put(config)
        layer_type = DOCKER_LAYER if docker else OCI_LAYER
        if docker:
            manifest = {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {
                    "mediaType": DOCKER_CONFIG,
                    "size": len(config),
                    "digest": config_digest,
                },
                "layers": [
                    {"mediaType": layer_type, "size": r.size, "digest": r.digest} for r in results
                ],
            }
            data = json.dumps(manifest, indent=3).encode()
        else:
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [
                    {"mediaType": layer_type, "digest": r.digest, "size": r.size} for r in results
                ],
            }
            data = json.dumps(manifest, separators=(",", ":")).encode()
        digest = self.put(data)
        media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        return WrittenImage(image, media_type, digest, len(data), config_digest, results)

    def write_dir_copy(self, image: WrittenImage, root: Path) -> Path:
        """The image in skopeo's `dir:` format, hard-linked to the layout's blobs.

        skopeo 1.9 only resolves OCI-typed entries of an OCI layout's index, so the
        Docker-typed images are pushed from this form (same bytes, same digests).
        """
        target = root / image.spec.ref_name
        target.mkdir(parents=True, exist_ok=True)
        links = {"manifest.json": image.digest, image.config_digest[7:]: image.config_digest}
        links.update({r.digest[7:]: r.digest for r in image.layers})
        for stale in target.iterdir():
            if stale.name not in links and stale.name != "version":
                stale.unlink()
        for name, digest in links.items():
            _link(self.blobs / digest.split(":", 1)[1], target / name)
        (target / "version").write_text("Directory Transport Version: 1.1\n")
        return target

    def write_index(self, images: list[WrittenImage]) -> None:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": w.media_type,
                    "digest": w.digest,
                    "size": w.size,
                    "annotations": {REF_NAME: w.spec.ref_name},
                }
                for w in images
            ],
        }
        (self.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        tmp = self.root / ".index.json.tmp"
        tmp.write_text(json.dumps(index, indent=2))
        os.replace(tmp, self.root / "index.json")
