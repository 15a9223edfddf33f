"""`containerd:`: an OCI archive handed to `ctr images import` (a fake ctr on PATH records
its arguments and keeps the archive, which skopeo then reads)."""

import json
import tarfile

import pytest

from tests.bundle_helpers import run, save
from tests.conftest import require_tools
from transship.transports.containerd import ContainerdDestination, ContainerdError

FAKE_CTR = """#!/bin/sh
printf '%s\\n' "$@" > "{record}/args"
for last; do :; done
cp "$last" "{record}/archive.tar"
echo "unpacking docker.io/samples/tiny:v1...done"
exit {code}
"""


@pytest.fixture
def fake_ctr(tmp_path, monkeypatch):
    def make(code: int = 0):
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        script = bin_dir / "ctr"
        body = FAKE_CTR.format(record=tmp_path, code=code)
        if code:
            body = body.replace("exit", "echo 'ctr: content digest mismatch' >&2\nexit")
        script.write_text(body)
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
        return tmp_path

    return make


def test_imports_an_oci_archive_with_full_image_names(sample_images, fake_ctr, tmp_path):
    require_tools("skopeo")
    record = fake_ctr()
    dst = ContainerdDestination(namespace="k8s.io", address="/run/containerd/containerd.sock")
    save(sample_images.layout.path, dst, ["tiny", "oci-multi"])
    args = (record / "args").read_text().split()
    assert args[:6] == [
        "-n",
        "k8s.io",
        "--address",
        "/run/containerd/containerd.sock",
        "images",
        "import",
    ]
    assert "unpacking" in dst.output
    archive = record / "archive.tar"
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
    names = {m["annotations"]["io.containerd.image.name"] for m in index["manifests"]}
    assert names == {"docker.io/samples/tiny:v1", "docker.io/samples/oci-multi:v1"}
    raw = run("skopeo", "inspect", "--raw", f"oci-archive:{archive}:samples/oci-multi:v1").stdout
    assert raw.encode() == sample_images["oci-multi"].manifest.raw
    # The temporary archive is gone.
    assert not dst.archive_path.exists()


def test_all_platforms_flag(sample_images, fake_ctr):
    record = fake_ctr()
    save(sample_images.layout.path, ContainerdDestination(all_platforms=True), ["tiny"])
    assert "--all-platforms" in (record / "args").read_text().split()


def test_ctr_failure_is_reported(sample_images, fake_ctr):
    fake_ctr(code=1)
    dst = ContainerdDestination()
    with pytest.raises(ContainerdError, match="exit 1.*content digest mismatch"):
        save(sample_images.layout.path, dst, ["tiny"])
    assert not dst.archive_path.exists()


def test_missing_ctr_is_reported(sample_images, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    dst = ContainerdDestination(ctr="ctr-not-installed")
    with pytest.raises(ContainerdError, match="not found"):
        save(sample_images.layout.path, dst, ["tiny"])
