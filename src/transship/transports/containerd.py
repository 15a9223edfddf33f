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
from pathlib import Path

from transship.errors import TransshipError
from transship.oci.descriptor import Platform
from transship.transports.archive import ArchiveDestination


class ContainerdError(TransshipError):
    """`ctr` is missing or failed to import the images."""


class ContainerdDestination(ArchiveDestination):
    """An archive destination writing to a temporary file that `ctr` imports at commit."""

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
        super().__init__(self.archive_path, ref=ref, kind="containerd", platform=platform)
        self.output = ""

    def command(self) -> list[str]:
        cmd = [self.ctr, "-n", self.namespace]
        if self.address:
            cmd += ["--address", self.address]
        cmd += ["images", "import"]
        if self.all_platforms:
            cmd.append("--all-platforms")
        return [*cmd, str(self.archive_path)]

    def commit(self) -> None:
        super().commit()
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
        super().abort()
        self.close()

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
