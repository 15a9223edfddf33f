"""image-transmit tar bundles: read bundles made from the format's description, write them,
and refuse bad ones."""

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.bundle_helpers import save, sha256_file
from tests.transport_driver import copy_all
from transship.bundle.reader import BundleVerificationError
from transship.errors import BundleError, UnsupportedError
from transship.transports.image_transmit import (
    ImageTransmitDestination,
    ImageTransmitSource,
    split_url,
)
from transship.transports.oci_layout import OCILayoutDestination

NAMES = ["tiny", "oci-single", "docker-single", "zstd"]


def make_bundle(directory: Path, sample_images, names=NAMES, files: int = 2) -> Path:
    """An image-transmit bundle written by hand from the format's description: blobs spread
    over `files` tar data files as <hex>.tar.gz / <hex>.json members."""
    directory.mkdir(parents=True, exist_ok=True)
    layout = sample_images.layout
    manifests, blobs, placed = {}, {}, {}
    for name in names:
        built = sample_images[name]
        url = f"http://registry.example:5000/samples/{name}:v1"
        manifests[url] = built.manifest.raw.decode()
        doc = json.loads(built.manifest.raw)
        for i, desc in enumerate([doc["config"], *doc["layers"]]):
            hex_part = desc["digest"][7:]
            blobs.setdefault(hex_part, []).append(url)
            placed[hex_part] = f"{hex_part}.json" if i == 0 else f"{hex_part}.tar.gz"
    items = sorted(placed.items())
    for n in range(files):
        with tarfile.open(directory / f"it_{n}.tar", "w") as tar:
            for hex_part, member in items[n::files]:
                tar.add(layout.blob_path(f"sha256:{hex_part}"), arcname=member)
    meta = {
        "datafiles": {
            f"it_{n}.tar": (directory / f"it_{n}.tar").stat().st_size for n in range(files)
        },
        "compressor": "tar",
        "blobs": blobs,
        "manifests": manifests,
    }
    path = directory / "it_meta.yaml"
    path.write_text(yaml.safe_dump(meta))
    return path


def test_reads_a_tar_bundle_and_loads_exact_images(sample_images, tmp_path):
    meta = make_bundle(tmp_path / "it", sample_images)
    source = ImageTransmitSource(meta)
    locations = {(loc.repository, loc.tag) for loc in source.locations()}
    assert locations == {(f"samples/{n}", "v1") for n in NAMES}
    assert source.hosts[("samples/tiny", "v1")] == "registry.example:5000"
    target = tmp_path / "site"
    copy_all(
        source,
        OCILayoutDestination(target),
        [(f"samples/{n}", "v1", f"samples/{n}", "v1") for n in NAMES],
    )
    index = json.loads((target / "index.json").read_text())
    got = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
    }
    assert got == {f"samples/{n}:v1": sample_images[n].digest for n in NAMES}
    for name in NAMES:
        for digest in sample_images[name].blobs:
            assert sha256_file(target / "blobs" / "sha256" / digest[7:]) == digest


def test_writes_the_format_and_reads_it_back(sample_images, tmp_path):
    dst = ImageTransmitDestination(tmp_path / "out" / "fleet_meta.yaml", workers=2)
    dst.record_source("samples/tiny", "v1", "registry.example:5000/samples/tiny:v1")
    save(sample_images.layout.path, dst, NAMES)
    doc = yaml.safe_load((tmp_path / "out" / "fleet_meta.yaml").read_text())
    assert doc["compressor"] == "tar"
    assert set(doc["datafiles"]) == {"fleet_000.tar", "fleet_001.tar"}
    for name, size in doc["datafiles"].items():
        assert (tmp_path / "out" / name).stat().st_size == size
    assert "http://registry.example:5000/samples/tiny:v1" in doc["manifests"]
    assert "http://localhost/samples/zstd:v1" in doc["manifests"]
    for url, text in doc["manifests"].items():
        name = split_url(url)[1].split("/")[-1]
        assert text.encode() == sample_images[name].manifest.raw
    members = set()
    for name in doc["datafiles"]:
        with tarfile.open(tmp_path / "out" / name) as tar:
            members |= set(tar.getnames())
    for name in NAMES:
        config = json.loads(sample_images[name].manifest.raw)["config"]["digest"][7:]
        assert f"{config}.json" in members
        assert set(doc["blobs"][config]) >= {u for u in doc["manifests"] if f"/{name}:" in u}
    layers = {m for m in members if m.endswith(".tar.gz")}
    assert layers and all(len(m) == 64 + 7 for m in layers)
    # And back again.
    source = ImageTransmitSource(tmp_path / "out" / "fleet_meta.yaml")
    target = tmp_path / "site"
    copy_all(source, OCILayoutDestination(target), [(f"samples/{n}", "v1", "x", n) for n in NAMES])
    index = json.loads((target / "index.json").read_text())
    assert {m["digest"] for m in index["manifests"]} == {sample_images[n].digest for n in NAMES}


def test_index_cannot_be_written(sample_images, tmp_path):
    dst = ImageTransmitDestination(tmp_path / "x_meta.yaml")
    with pytest.raises(UnsupportedError, match="multi-platform index"):
        save(sample_images.layout.path, dst, ["oci-multi"])
    assert not (tmp_path / "x_meta.yaml").exists()


def test_missing_and_wrong_size_data_files_are_all_named(sample_images, tmp_path):
    meta = make_bundle(tmp_path / "it", sample_images, files=3)
    (tmp_path / "it" / "it_0.tar").unlink()
    with open(tmp_path / "it" / "it_2.tar", "ab") as f:
        f.write(b"\0" * 512)
    with pytest.raises(BundleVerificationError) as info:
        ImageTransmitSource(meta)
    assert info.value.missing == ["it_0.tar"]
    assert info.value.damaged == ["it_2.tar"]


def test_flipped_byte_never_reaches_the_target(sample_images, tmp_path):
    meta = make_bundle(tmp_path / "it", sample_images, names=["oci-single"], files=1)
    source = ImageTransmitSource(meta)
    layer = json.loads(sample_images["oci-single"].manifest.raw)["layers"][0]["digest"]
    name, member = source._members[layer]
    with open(tmp_path / "it" / name, "r+b") as f:
        f.seek(member.offset + 1000)
        f.write(b"\xff")
    target = tmp_path / "site"
    with pytest.raises(Exception, match="hashes to|bundle is damaged"):
        copy_all(source, OCILayoutDestination(target), [("samples/oci-single", "v1", "a", "b")])
    assert not (target / "blobs" / "sha256" / layer[7:]).exists()


@pytest.mark.parametrize("member", ["../../x", "/tmp/transship-it-abs"])
def test_unsafe_member_is_refused(sample_images, tmp_path, member):
    meta = make_bundle(tmp_path / "it", sample_images, names=["tiny"], files=1)
    with tarfile.open(tmp_path / "it" / "it_0.tar", "a", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(member)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    doc = yaml.safe_load(meta.read_text())
    doc["datafiles"]["it_0.tar"] = (tmp_path / "it" / "it_0.tar").stat().st_size
    meta.write_text(yaml.safe_dump(doc))
    with pytest.raises(BundleVerificationError, match="unsafe tar member"):
        ImageTransmitSource(meta)
    assert not (tmp_path / "x").exists() and not Path("/tmp/transship-it-abs").exists()


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("datafiles: {a.tar: 1\nmanifests: [", BundleError, "not valid YAML at line"),
        ("- just\n- a list\n", BundleError, "expected a mapping"),
        ("datafiles: {}\nmanifests: {}\ncompressor: squashfs\n", UnsupportedError, "squashfs"),
        ("datafiles: {../a.tar: 1}\nmanifests: {}\n", BundleError, "plain file name"),
        ("datafiles: {a.tar: big}\nmanifests: {}\n", BundleError, "map file names to sizes"),
    ],
)
def test_bad_meta_is_a_clear_error(tmp_path, text, error, match):
    path = tmp_path / "bad_meta.yaml"
    path.write_text(text)
    with pytest.raises(error, match=match) as info:
        ImageTransmitSource(path)
    assert str(info.value).startswith("bad_meta.yaml")


def test_existing_bundle_is_not_overwritten_by_accident(sample_images, tmp_path):
    save(sample_images.layout.path, ImageTransmitDestination(tmp_path / "a_meta.yaml"), ["tiny"])
    with pytest.raises(BundleError, match="already exists"):
        ImageTransmitDestination(tmp_path / "a_meta.yaml")
    ImageTransmitSource(tmp_path / "a_meta.yaml")  # still whole


def test_interrupted_image_transmit_save_resumes(sample_images, tmp_path):
    from tests.bundle_helpers import sample_jobs
    from tests.test_bundle_writer import CountingSource

    layout = sample_images.layout.path
    first = CountingSource(layout, fail_after=3)
    with pytest.raises(ConnectionError):
        copy_all(
            first, ImageTransmitDestination(tmp_path / "r_meta.yaml"), sample_jobs(NAMES), workers=1
        )
    assert not (tmp_path / "r_meta.yaml").exists()
    second = CountingSource(layout)
    copy_all(second, ImageTransmitDestination(tmp_path / "r_meta.yaml"), sample_jobs(NAMES))
    assert not set(first.opened) & set(second.opened)
    source = ImageTransmitSource(tmp_path / "r_meta.yaml")
    assert {loc.repository for loc in source.locations()} == {f"samples/{n}" for n in NAMES}
