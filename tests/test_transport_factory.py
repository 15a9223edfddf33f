"""Transport specs: parsing, and the transport each one opens."""

import pytest

from tests.bundle_helpers import save
from transship.errors import ConfigError, UnsupportedError
from transship.transports.archive import ArchiveDestination, DockerArchiveSource, OCIArchiveSource
from transship.transports.bundle import BundleDestination, BundleSource
from transship.transports.containerd import ContainerdDestination
from transship.transports.docker_daemon import DockerDaemonDestination
from transship.transports.factory import (
    TransportSpec,
    open_destination,
    open_source,
    parse_spec,
)
from transship.transports.image_transmit import ImageTransmitDestination
from transship.transports.oci_layout import OCILayoutDestination, OCILayoutSource


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("bundle:/b/x.meta.json", TransportSpec("bundle", "/b/x.meta.json")),
        ("bundle:/b/x.meta.json:ns/app:1", TransportSpec("bundle", "/b/x.meta.json", "ns/app:1")),
        ("/b/x.meta.json", TransportSpec("bundle", "/b/x.meta.json")),
        ("rel/x_meta.yaml", TransportSpec("image-transmit", "rel/x_meta.yaml")),
        ("bundle:/b/x_meta.yaml", TransportSpec("image-transmit", "/b/x_meta.yaml")),
        ("oci:/l", TransportSpec("oci", "/l")),
        ("oci:/l:v1", TransportSpec("oci", "/l", "v1")),
        ("oci-archive:/a.tar:ns/app:1", TransportSpec("oci-archive", "/a.tar", "ns/app:1")),
        ("docker-archive:a.tar", TransportSpec("docker-archive", "a.tar")),
        ("docker-daemon:app:1", TransportSpec("docker-daemon", "", "app:1")),
        ("containerd:", TransportSpec("containerd", "")),
        ("docker://reg:5000/ns/app:1", TransportSpec("docker", "reg:5000/ns/app:1")),
    ],
)
def test_parse(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "ftp:/x", "/just/a/dir", "oci:", "bundle:"])
def test_bad_specs(spec):
    with pytest.raises(ConfigError):
        parse_spec(spec)


def test_opens_the_right_transports(sample_images, tmp_path):
    options = {"workers": 2, "platform": None, "namespace": "k8s.io", "unknown": 1}
    meta = tmp_path / "b" / "x.meta.json"
    dst = open_destination(f"bundle:{meta}", **options)
    assert isinstance(dst, BundleDestination)
    assert dst.writer.store.workers == 2
    save(sample_images.layout.path, dst, ["tiny"])
    assert isinstance(open_source(str(meta)), BundleSource)
    assert isinstance(open_destination(f"{tmp_path}/i_meta.yaml"), ImageTransmitDestination)
    assert isinstance(open_destination(f"oci:{tmp_path}/l"), OCILayoutDestination)
    assert isinstance(open_source(f"oci:{sample_images.layout.path}:tiny"), OCILayoutSource)
    archive = open_destination(f"oci-archive:{tmp_path}/a.tar:n:1")
    assert isinstance(archive, ArchiveDestination) and archive.ref == "n:1"
    save(sample_images.layout.path, archive, ["tiny"])
    assert isinstance(open_source(f"oci-archive:{tmp_path}/a.tar"), OCIArchiveSource)
    assert isinstance(open_source(f"docker-archive:{tmp_path}/a.tar"), DockerArchiveSource)
    assert isinstance(
        open_destination("docker-daemon:", socket_path="/x.sock"), DockerDaemonDestination
    )
    ctr = open_destination("containerd:", **options)
    assert isinstance(ctr, ContainerdDestination) and ctr.namespace == "k8s.io"
    ctr.close()
    with pytest.raises(UnsupportedError, match="only be written"):
        open_source("docker-daemon:")
    with pytest.raises(ConfigError, match="client_factory"):
        open_source("docker://127.0.0.1:5000/a:b")
