"""`oci-archive:` and `docker-archive:`: archives we write are read by skopeo; archives
skopeo (or `docker save`) writes are read by us."""

import io
import json
import tarfile

import pytest

from tests.bundle_helpers import run, sample_jobs, save, sha256_file
from tests.conftest import require_tools
from tests.transport_driver import copy_all
from transship.errors import BundleError, NotFoundError
from transship.oci.descriptor import Platform
from transship.transports.archive import (
    ArchiveDestination,
    DockerArchiveSource,
    OCIArchiveSource,
)
from transship.transports.archive_images import ArchiveImages
from transship.transports.oci_layout import OCILayoutDestination, OCILayoutSource


@pytest.fixture(autouse=True)
def _skopeo():
    require_tools("skopeo")


def test_written_archive_is_read_by_skopeo_both_ways(sample_images, tmp_path):
    path = tmp_path / "images.tar"
    dst = ArchiveDestination(path, platform=Platform("linux", "arm64", "v8"))
    save(sample_images.layout.path, dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.tar"]
    assert sorted(dst.notes) == [
        f"samples/{n}:v1: a docker-archive cannot hold an index; manifest.json has its "
        "linux/arm64/v8 image only (index.json has every platform)"
        for n in ("docker-multi", "oci-multi")
    ]
    raw = run("skopeo", "inspect", "--raw", f"oci-archive:{path}:samples/oci-multi:v1").stdout
    assert raw.encode() == sample_images["oci-multi"].manifest.raw
    run(
        "skopeo",
        "copy",
        "--quiet",
        "--all",
        f"oci-archive:{path}:samples/oci-multi:v1",
        f"oci:{tmp_path}/o:x",
    )
    # The docker-archive view of the index is the chosen platform's child.
    config = json.loads(
        run(
            "skopeo", "inspect", "--config", f"docker-archive:{path}:samples/docker-multi:v1"
        ).stdout
    )
    assert (config["architecture"], config.get("variant")) == ("arm64", "v8")
    run(
        "skopeo",
        "copy",
        "--quiet",
        f"docker-archive:{path}:samples/docker-single:v1",
        f"dir:{tmp_path}/d",
    )


def test_spec_ref_names_the_image(sample_images, tmp_path):
    path = tmp_path / "one.tar"
    copy_all(
        OCILayoutSource(sample_images.layout.path),
        ArchiveDestination(path, ref="myimage:1.0", kind="docker-archive"),
        [("", "oci-single", "samples/oci-single", "v1")],
    )
    with tarfile.open(path) as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))
    assert entry["RepoTags"] == ["myimage:1.0"]
    run("skopeo", "inspect", f"docker-archive:{path}:myimage:1.0")
    raw = run("skopeo", "inspect", "--raw", f"oci-archive:{path}:myimage:1.0").stdout
    assert raw.encode() == sample_images["oci-single"].manifest.raw


def test_failed_write_leaves_no_archive(sample_images, tmp_path):
    path = tmp_path / "images.tar"
    with pytest.raises(NotFoundError):
        copy_all(
            OCILayoutSource(sample_images.layout.path),
            ArchiveDestination(path),
            [*sample_jobs(["tiny"]), ("", "missing", "x", "1")],
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["tiny", "oci-single", "oci-multi", "zstd"])
def test_reads_an_oci_archive_written_by_skopeo(sample_images, tmp_path, name):
    archive = tmp_path / "sk.tar"
    run(
        "skopeo", "copy", "--quiet", "--all", "--preserve-digests",
        f"oci:{sample_images.layout.path}:{name}", f"oci-archive:{archive}:img",
    )  # fmt: skip
    source = OCIArchiveSource(archive, ref="img")
    assert source.get_manifest("", "").digest == sample_images[name].digest
    target = tmp_path / "out"
    copy_all(source, OCILayoutDestination(target), [("", "img", "x/y", "1")])
    for digest in sample_images[name].blobs:
        assert sha256_file(target / "blobs" / "sha256" / digest[7:]) == digest


def test_reads_a_docker_archive_written_by_skopeo(sample_images, tmp_path):
    archive = tmp_path / "docker.tar"
    layout = sample_images.layout.path
    run(
        "skopeo",
        "copy",
        "--quiet",
        f"oci:{layout}:oci-single",
        f"docker-archive:{archive}:team/app:2.0",
    )
    source = DockerArchiveSource(archive)
    assert [(loc.repository, loc.tag) for loc in source.locations()] == [("team/app", "2.0")]
    manifest = source.get_manifest("team/app", "2.0")
    assert source.get_manifest("docker.io/team/app", "2.0").digest == manifest.digest
    copy_all(
        source, OCILayoutDestination(tmp_path / "out"), [("team/app", "2.0", "team/app", "2.0")]
    )
    # skopeo copies the result on, checking layers against the config's diff_ids.
    config = json.loads(
        run("skopeo", "inspect", "--config", f"oci:{tmp_path}/out:team/app:2.0").stdout
    )
    assert config["config"]["Labels"]["sample"] == "oci-single"
    run(
        "skopeo",
        "copy",
        "--quiet",
        f"oci:{tmp_path}/out:team/app:2.0",
        f"docker-archive:{tmp_path}/again.tar:a:b",
    )


def test_our_docker_archive_gives_back_the_exact_manifest(sample_images, tmp_path):
    path = tmp_path / "images.tar"
    save(sample_images.layout.path, ArchiveDestination(path, kind="docker-archive"))
    source = DockerArchiveSource(path)
    for name in ("docker-single", "oci-single"):
        assert source.get_manifest(f"samples/{name}", "v1").data == sample_images[name].manifest.raw


def _legacy_docker_save(path, layer_bytes: bytes, config: bytes, link_target: str) -> None:
    """The layout of `docker save` before Docker 25: <id>/layer.tar, a repeated layer as a
    symlink to the first."""
    with tarfile.open(path, "w") as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("aaa/layer.tar", layer_bytes)
        link = tarfile.TarInfo("bbb/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = link_target
        tar.addfile(link)
        add("cfg.json", config)
        manifest = [
            {
                "Config": "cfg.json",
                "RepoTags": ["old:1"],
                "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
            }
        ]
        add("manifest.json", json.dumps(manifest).encode())


def test_legacy_docker_save_with_symlinked_layers(tmp_path):
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        t.addfile(info, io.BytesIO(b"hi"))
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    good = tmp_path / "good.tar"
    _legacy_docker_save(good, layer.getvalue(), config, "../aaa/layer.tar")
    manifest = DockerArchiveSource(good).get_manifest("old", "1").parse()
    assert manifest.layers[0].digest == manifest.layers[1].digest
    assert manifest.layers[0].media_type == "application/vnd.oci.image.layer.v1.tar"

    evil = tmp_path / "evil.tar"
    _legacy_docker_save(evil, layer.getvalue(), config, "../../../etc/passwd")
    with pytest.raises(BundleError, match="points outside the archive"):
        DockerArchiveSource(evil)


@pytest.mark.parametrize("name", ["../../x", "/abs/x"])
def test_archive_with_unsafe_member_is_refused(tmp_path, name):
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(BundleError, match="unsafe tar member"):
        OCIArchiveSource(path)
    assert not (tmp_path.parent.parent / "x").exists()


def test_truncated_archive_is_refused(sample_images, tmp_path):
    path = tmp_path / "images.tar"
    save(sample_images.layout.path, ArchiveDestination(path), ["oci-single"])
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(BundleError):
        OCIArchiveSource(path)


def test_parallel_blobs_are_spooled_not_serialized(tmp_path):
    import os
    import threading

    from transship.oci.descriptor import Descriptor
    from transship.oci.digest import digest_bytes

    dst = ArchiveDestination(tmp_path / "p.tar")
    gate, started = threading.Event(), threading.Event()
    slow = os.urandom(300_000)

    def slow_chunks():
        yield slow[:1000]
        started.set()
        assert gate.wait(10)
        yield slow[1000:]

    def put_slow():
        dst.put_blob("r", Descriptor("x", digest_bytes(slow), len(slow)), slow_chunks())

    thread = threading.Thread(target=put_slow)
    thread.start()
    assert started.wait(10)
    # While the slow blob holds the archive, another one is downloaded all the same
    # (spooled beside the archive), and appended once the archive is free.
    fast = os.urandom(100_000)
    consumed = threading.Event()

    def fast_chunks():
        yield fast
        consumed.set()

    other = threading.Thread(
        target=dst.put_blob,
        args=("r", Descriptor("x", digest_bytes(fast), len(fast)), fast_chunks()),
    )
    other.start()
    assert consumed.wait(10)
    gate.set()
    thread.join()
    other.join()
    assert dst.has_blob("r", Descriptor("x", digest_bytes(fast), len(fast)))
    dst.commit()
    with tarfile.open(tmp_path / "p.tar") as tar:
        for data in (slow, fast):
            assert tar.extractfile(f"blobs/sha256/{digest_bytes(data)[7:]}").read() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tar"]


def test_archive_lists_untagged_images_but_not_children_of_an_index(sample_images):
    src = OCILayoutSource(sample_images.layout.path)
    index = src.get_manifest("", "oci-multi")
    children = [src.get_manifest("", d.digest) for d in index.parse().manifests]
    tiny, single = src.get_manifest("", "tiny"), src.get_manifest("", "oci-single")
    images = ArchiveImages(Platform("linux", "amd64"))
    for child in children:  # children arrive by digest, as the engine sends them
        images.add(None, child)
        images.add_untagged(child)
    images.add("samples/multi:v1", index)
    images.add(None, tiny)
    images.add_untagged(tiny)
    images.add("samples/single:v1", tiny)
    images.add("samples/single:v1", single)  # the last manifest under a name wins
    members = dict(images.index_members(lambda digest: True))
    listed = {
        m["digest"]: (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        for m in json.loads(members["index.json"])["manifests"]
    }
    assert listed == {
        index.digest: "samples/multi:v1",
        tiny.digest: None,
        single.digest: "samples/single:v1",
    }
    tags = [e["RepoTags"] for e in json.loads(members["manifest.json"])]
    assert sorted(tags, key=len) == [[], ["samples/multi:v1"], ["samples/single:v1"]]
    assert any("manifest.json has its linux/amd64" in note for note in images.notes)
