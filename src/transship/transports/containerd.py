"""`containerd:` — import images into containerd with `ctr images import`.

The images are written to a temporary OCI archive (index.json names each image with its
full name in `io.containerd.image.name`, which `ctr import` uses), then imported with
`ctr -n NAMESPACE [--address SOCKET] images import [--all-platforms] ARCHIVE` at
`commit()`. Kubernetes' images live in namespace `k8s.io`, the default here.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from transship.errors import TransshipError
from transship.oci.descriptor import Descriptor, Platform
from transship.oci.manifest import RawManifest
from transship.transports.archive import ArchiveDestination
from transship.transports.base import Destination, ProgressCallback


class ContainerdError(TransshipError):
    """`ctr` is missing or failed to import the images."""


class ContainerdDestination(Destination):
    name = "containerd"

    def __init__(
        self,
        namespace: str = "k8s.io",
        address: str | None = None,
        ctr: str = "ctr",
        all_platforms: bool = False,
        ref: str | None = None,
        platform: Platform | None = None,
        work_dir: str | Path | None = None,
    ):
        self.namespace = namespace
        self.address = address
        self.ctr = ctr
        self.all_platforms = all_platforms
        self._tmp = Path(tempfile.mkdtemp(prefix="transship-ctr.", dir=work_dir))
        self.archive_path = self._tmp / "images.tar"
        self._archive = ArchiveDestination(self.archive_path, ref=ref, platform=platform)
        self.output = ""

    def has_blob(self, repository: str, desc: Descriptor) -> bool:
        return self._archive.has_blob(repository, desc)

    def put_blob(
        self,
        repository: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: ProgressCallback | Callable[[int], None] | None = None,
    ) -> None:
        self._archive.put_blob(repository, desc, chunks, progress)

    def has_manifest(self, repository: str, reference: str, digest: str) -> bool:
        return False

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> None:
        self._archive.put_manifest(repository, reference, manifest)

    def command(self) -> list[str]:
        cmd = [self.ctr, "-n", self.namespace]
        if self.address:
            cmd += ["--address", self.address]
        cmd += ["images", "import"]
        if self.all_platforms:
            cmd.append("--all-platforms")
        return [*cmd, str(self.archive_path)]

    def commit(self) -> None:
        self._archive.commit()
        if shutil.which(self.ctr) is None:
            raise ContainerdError(
                f"{self.ctr!r} not found: install containerd's ctr to import into containerd"
            )
        try:
            result = subprocess.run(
                self.command(), capture_output=True, text=True, stdin=subprocess.DEVNULL
            )
        finally:
            self.close()
        self.output = result.stdout
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise ContainerdError(
                f"ctr images import failed (exit {result.returncode}): "
                f"{detail[-1] if detail else 'no output'}"
            )

    def abort(self) -> None:
        self._archive.abort()
        self.close()

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
