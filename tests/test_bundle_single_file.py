"""A single-file bundle is also an OCI archive and a docker-archive: skopeo reads it as both."""

import json
import tarfile

import pytest

from tests.bundle_helpers import SAMPLE_NAMES, run, save, tar_names
from tests.conftest import require_tools
from transship.oci.descriptor import Platform
from transship.transports.bundle import BundleDestination, BundleSource


@pytest.fixture
def single(sample_images, tmp_path):
    require_tools("skopeo")
    dst = BundleDestination(
        tmp_path / "out" / "one.meta.json", single_file=True, platform=Platform("linux", "amd64")
    )
    save(sample_images.layout.path, dst)
    return tmp_path / "out" / "one.tar", dst


def test_one_plain_tar_beside_its_meta(single):
    archive, dst = single
    assert sorted(p.name for p in archive.parent.iterdir()) == ["one.meta.json", "one.tar"]
    names = tar_names(archive)
    assert names[-3:] == ["oci-layout", "index.json", "manifest.json"]
    assert all(n.startswith("blobs/sha256/") for n in names[:-3])
    assert len(names) == len(set(names))
    (entry,) = dst.meta.data_files
    assert entry.name == "one.tar"
    BundleSource(dst.meta_path).verify()


# skopeo 1.9 skips index.json entries with Docker media types (newer skopeo, containerd and
# podman read them); those images are checked through the docker-archive view below.
@pytest.mark.parametrize("name", ["tiny", "oci-single", "oci-multi", "zstd"])
def test_skopeo_reads_it_as_an_oci_archive(single, sample_images, tmp_path, name):
    archive, _ = single
    ref = f"oci-archive:{archive}:samples/{name}:v1"
    raw = run("skopeo", "inspect", "--raw", ref).stdout.encode()
    assert raw == sample_images[name].manifest.raw
    # A full copy reads and verifies every blob.
    run("skopeo", "copy", "--quiet", "--all", "--preserve-digests", ref, f"oci:{tmp_path}/copy:x")
    copied = json.loads((tmp_path / "copy" / "index.json").read_text())
    assert copied["manifests"][0]["digest"] == sample_images[name].digest


@pytest.mark.parametrize("name", ["tiny", "docker-single", "oci-multi", "docker-multi", "zstd"])
def test_skopeo_reads_it_as_a_docker_archive(single, sample_images, tmp_path, name):
    archive, _ = single
    ref = f"docker-archive:{archive}:samples/{name}:v1"
    config = json.loads(run("skopeo", "inspect", "--config", ref).stdout)
    # An index becomes its linux/amd64 child: docker-archive cannot carry an index.
    assert config["architecture"] == "amd64"
    assert config["config"]["Labels"]["sample"] == name
    # Copying decompresses every layer and checks it against the config's diff_ids.
    run("skopeo", "copy", "--quiet", ref, f"dir:{tmp_path}/dir")


def test_manifest_json_points_at_the_blob_files(single):
    archive, _ = single
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        entries = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    assert {t for e in entries for t in e["RepoTags"]} == {f"samples/{n}:v1" for n in SAMPLE_NAMES}
    for entry in entries:
        assert entry["Config"] in names
        assert all(layer in names for layer in entry["Layers"])
    annotations = [m["annotations"] for m in index["manifests"]]
    assert {a["org.opencontainers.image.ref.name"] for a in annotations} == {
        f"samples/{n}:v1" for n in SAMPLE_NAMES
    }
    assert {a["io.containerd.image.name"] for a in annotations} == {
        f"docker.io/samples/{n}:v1" for n in SAMPLE_NAMES
    }
