"""A fixed catalogue of small test images in one OCI layout, for pushing into registries.

| name          | kind                          | platforms                         | layers                |
|---------------|-------------------------------|-----------------------------------|-----------------------|
| tiny          | OCI manifest                  | linux/amd64                       | 1 generated gzip      |
| oci-single    | OCI manifest                  | linux/amd64                       | base, app, etc        |
| docker-single | Docker schema 2 manifest      | linux/amd64                       | base, app, extra      |
| oci-multi     | OCI index                     | linux/amd64, arm64/v8, arm/v7     | base, app per arch    |
| docker-multi  | Docker manifest list          | linux/amd64, linux/arm64/v8       | base, app per arch    |
| zstd          | OCI manifest                  | linux/amd64                       | plain tar, zstd       |

`base` is the real Go-gzipped layer ../shared/fixtures/layers/layer-pax.tar.go-stdlib-default.gz
and is shared by every image but `tiny` and `zstd`; the per-arch `app` layers are shared between
oci-single/docker-single/oci-multi/docker-multi. Without the shared fixtures, generated layers
stand in (digests then differ, so compare against the returned objects, never constants).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .images import Built, Layer, OCILayout, Platform, PushedImage, push_image, seeded_bytes
from .registry import RegistryServer

SHARED_LAYERS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "layers"
BASE_LAYER_FILE = "layer-pax.tar.go-stdlib-default.gz"
PLAIN_TAR_LAYER_FILE = "layer-gnu.tar"

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
ARMV7 = Platform("linux", "arm", "v7")


@dataclass(frozen=True)
class SampleImages:
    layout: OCILayout
    images: dict[str, Built]
    uses_shared_fixtures: bool

    def __getitem__(self, name: str) -> Built:
        return self.images[name]

    @property
    def names(self) -> list[str]:
        return list(self.images)

    def push(self, registry: RegistryServer, name: str, destination: str) -> PushedImage:
        return push_image(self.layout, name, registry, destination)

    def push_all(
        self, registry: RegistryServer, prefix: str = "samples", tag: str = "v1"
    ) -> dict[str, PushedImage]:
        """Push every sample as PREFIX/NAME:TAG; returns name -> PushedImage."""
        return {name: self.push(registry, name, f"{prefix}/{name}:{tag}") for name in self.images}


def _app_layer(layout: OCILayout, platform: Platform) -> Layer:
    arch = str(platform)
    return layout.add_layer(
        {
            "app/bin/server": seeded_bytes(f"server-{arch}", 48_000),
            "app/VERSION": f"1.0.0 {arch}\n".encode(),
        }
    )


def build_sample_images(
    directory: Path, shared_layers_dir: Path = SHARED_LAYERS_DIR
) -> SampleImages:
    layout = OCILayout.create(directory)
    base_file = shared_layers_dir / BASE_LAYER_FILE
    plain_file = shared_layers_dir / PLAIN_TAR_LAYER_FILE
    uses_shared = base_file.is_file() and plain_file.is_file()
    if uses_shared:
        base = layout.add_layer_file(base_file)
        plain = layout.add_layer_file(plain_file)
    else:
        base = layout.add_layer({"usr/lib/base.bin": seeded_bytes("base", 300_000)})
        plain = layout.add_layer({"opt/plain.bin": seeded_bytes("plain", 100_000)}, "none")

    apps = {platform: _app_layer(layout, platform) for platform in (AMD64, ARM64, ARMV7)}
    etc = layout.add_layer(
        {"etc/app.conf": b"listen = 8080\n", "etc/motd": b"hello\n"},
        symlinks={"etc/app.link": "app.conf"},
    )
    extra = layout.add_layer({"srv/data.bin": seeded_bytes("docker-extra", 20_000)})
    tiny = layout.add_layer({"hello.txt": b"hello from a tiny image\n"})
    zstd = layout.add_layer({"opt/zstd.bin": seeded_bytes("zstd", 30_000)}, compression="zstd")

    images: dict[str, Built] = {
        "tiny": layout.add_image([tiny], AMD64, labels={"sample": "tiny"}),
        "oci-single": layout.add_image(
            [base, apps[AMD64], etc],
            AMD64,
            labels={"sample": "oci-single"},
            annotations={"org.opencontainers.image.title": "oci-single"},
        ),
        "docker-single": layout.add_image(
            [base, apps[AMD64], extra], AMD64, "docker", labels={"sample": "docker-single"}
        ),
        "oci-multi": layout.add_index(
            [
                layout.add_image([base, apps[p]], p, labels={"sample": "oci-multi"})
                for p in (AMD64, ARM64, ARMV7)
            ]
        ),
        "docker-multi": layout.add_index(
            [
                layout.add_image([base, apps[p]], p, "docker", labels={"sample": "docker-multi"})
                for p in (AMD64, ARM64)
            ],
            "docker",
        ),
        "zstd": layout.add_image([plain, zstd], AMD64, labels={"sample": "zstd"}),
    }
    for name, built in images.items():
        layout.tag(built, name)
    return SampleImages(layout, images, uses_shared)


@dataclass(frozen=True)
class SeededRegistry:
    """A running registry holding the sample images (name -> PushedImage)."""

    server: RegistryServer
    images: dict[str, PushedImage]

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def url(self) -> str:
        return self.server.url

    def __getitem__(self, name: str) -> PushedImage:
        return self.images[name]
