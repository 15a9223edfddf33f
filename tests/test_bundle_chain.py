"""Incremental bundles: --since parents at save, the parent check at load."""

import json

import pytest

from tests.bundle_helpers import sample_jobs, save
from tests.test_bundle_writer import CountingSource
from tests.transport_driver import copy_all
from transship.bundle.chain import MissingParentError, blobs_of_image
from transship.errors import BundleError
from transship.oci.manifest import RawManifest
from transship.transports.bundle import BundleDestination, BundleSource
from transship.transports.oci_layout import OCILayoutDestination


def image_blobs(meta, names):
    out = set()
    for image in meta.images:
        if image.repository.split("/")[-1] in names:
            out |= {d.digest for d in blobs_of_image(image)}
    return out


def load(meta_path, target_dir):
    src = BundleSource(meta_path)
    dst = OCILayoutDestination(target_dir)
    src.check_parents(dst.has_blob)
    copy_all(src, dst, [(i.repository, i.tag, i.repository, i.tag) for i in src.images()])


@pytest.fixture
def chain(sample_images, tmp_path):
    layout = sample_images.layout.path
    v1 = BundleDestination(tmp_path / "v1.meta.json", workers=2)
    save(layout, v1, ["oci-single", "tiny"])
    source = CountingSource(layout)
    v2 = BundleDestination(tmp_path / "v2.meta.json", workers=2, since=[v1.meta_path])
    copy_all(source, v2, sample_jobs(["docker-single", "oci-multi"]))
    return v1, v2, source


def test_incremental_bundle_leaves_out_what_the_parent_carries(chain):
    v1, v2, source = chain
    v1_blobs = {b.digest for b in v1.meta.blobs}
    needed = image_blobs(v2.meta, {"docker-single", "oci-multi"})
    stored = {b.digest for b in v2.meta.blobs}
    assert stored == needed - v1_blobs
    assert stored and needed & v1_blobs  # something shared, something new
    # What the parent carries was not even fetched.
    assert not set(source.opened) & v1_blobs
    (parent,) = v2.meta.parents
    assert parent.id == v1.meta.id and parent.file == "v1.meta.json"
    assert {b.digest for b in parent.blobs} == needed & v1_blobs
    assert all(b.size > 0 and b.media_type for b in parent.blobs)
    assert v2.meta.options["since"] == ["v1.meta.json"]


def test_several_parents_and_grandparents(chain, sample_images, tmp_path):
    v1, v2, _ = chain
    layout = sample_images.layout.path
    # --since given twice: blobs are left to whichever parent carries them.
    v3 = BundleDestination(tmp_path / "v3.meta.json", since=[v1.meta_path, v2.meta_path])
    save(layout, v3, ["oci-multi", "oci-single", "docker-multi"])
    files = {p.file: {b.digest for b in p.blobs} for p in v3.meta.parents}
    assert set(files) == {"v1.meta.json", "v2.meta.json"}
    assert files["v1.meta.json"] <= {b.digest for b in v1.meta.blobs}
    assert files["v2.meta.json"] <= {b.digest for b in v2.meta.blobs}
    # --since v2 only: what v2 left to v1 is at the site too, and is recorded as v1's.
    v4 = BundleDestination(tmp_path / "v4.meta.json", since=[v2.meta_path])
    save(layout, v4, ["oci-single"])
    left_by_v2 = {b.digest for b in v2.meta.parents[0].blobs}
    needed = image_blobs(v4.meta, {"oci-single"})
    v4_parents = {p.file: {b.digest for b in p.blobs} for p in v4.meta.parents}
    assert v4_parents["v1.meta.json"] == needed & left_by_v2 != set()
    assert {b.digest for b in v4.meta.blobs} == needed - left_by_v2 - {
        b.digest for b in v2.meta.blobs
    }


def test_loading_without_the_parent_names_it_and_pushes_nothing(chain, tmp_path):
    v1, v2, _ = chain
    target = tmp_path / "site"
    with pytest.raises(MissingParentError) as info:
        load(v2.meta_path, target)
    message = str(info.value)
    assert "Load v1.meta.json first" in message
    assert v1.meta.id in message
    assert info.value.parents[0].file == "v1.meta.json"
    assert not list((target / "blobs" / "sha256").glob("*")) if target.exists() else True
    assert not (target / "index.json").exists()
    # In the right order it works, and every image is complete.
    load(v1.meta_path, target)
    load(v2.meta_path, target)
    index = json.loads((target / "index.json").read_text())
    names = {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]}
    assert names == {
        f"samples/{n}:v1" for n in ("oci-single", "tiny", "docker-single", "oci-multi")
    }
    for digest in image_blobs(v2.meta, {"docker-single", "oci-multi"}):
        assert (target / "blobs" / "sha256" / digest[7:]).exists()


def test_save_refuses_to_commit_an_image_missing_blobs(sample_images, tmp_path):
    dst = BundleDestination(tmp_path / "x.meta.json")
    built = sample_images["tiny"]
    dst.put_manifest("samples/tiny", "v1", RawManifest(built.manifest.raw, built.media_type))
    with pytest.raises(BundleError, match=r"samples/tiny:v1 needs blob .* neither in this bundle"):
        dst.commit()
    assert not dst.meta_path.exists()


def test_parent_meta_that_cannot_be_read_is_a_clear_error(tmp_path):
    bad = tmp_path / "old.meta.json"
    bad.write_text("format: yaml?")
    with pytest.raises(BundleError, match=r"old\.meta\.json: not valid JSON"):
        BundleDestination(tmp_path / "new.meta.json", since=[bad])
