"""Helpers shared by the bundle and file-transport tests."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from tests.support.images import OCILayout, seeded_bytes
from tests.transport_driver import copy_all
from transship.transports.base import Destination
from transship.transports.oci_layout import OCILayoutSource

SAMPLE_NAMES = ("tiny", "oci-single", "docker-single", "oci-multi", "docker-multi", "zstd")


def sample_jobs(names=SAMPLE_NAMES, tag: str = "v1") -> list[tuple[str, str, str, str]]:
    """(source repository, source reference, target repository, target tag) per sample."""
    return [("", name, f"samples/{name}", tag) for name in names]


def save(layout: Path, dst: Destination, names=SAMPLE_NAMES, workers: int = 3):
    return copy_all(OCILayoutSource(layout), dst, sample_jobs(names), workers=workers)


def run(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{command[0]} failed: {result.stderr or result.stdout}")
    return result


def tar_names(path: Path) -> list[str]:
    """Member names as GNU tar lists them: proves the file is a plain tar."""
    return run("tar", "tf", path).stdout.split()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def big_layout(root: Path, sizes: dict[str, int]) -> OCILayout:
    """A layout with one image per entry, each a single incompressible layer of about
    `size` bytes (tagged by the entry's name)."""
    layout = OCILayout.create(root)
    for name, size in sizes.items():
        layer = layout.add_layer({f"{name}.bin": seeded_bytes(name, size)}, compression="gzip")
        layout.tag(layout.add_image([layer], labels={"name": name}), name)
    return layout


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
