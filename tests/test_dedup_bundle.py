"""`transship save --codec dedup` and loading such bundles, end to end with real registries.

Every real layer of ../shared/fixtures/layers (the PAX tar gzipped by Go, GNU gzip, pigz
and zlib at several levels, the 27 MB Go-gzipped jar layer, the plain tars) goes into a
dedup bundle and comes back out of it into an empty registry with the same digests.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.support.images import BuiltImage, OCILayout, push_image, seeded_bytes
from tests.test_copy_integration import raw_manifest, run_done, transship
from tests.transport_driver import copy_all
from transship.bundle.dedup_codec import DedupCodec
from transship.bundle.dedup_io import PieceStoreSource, ReplayableStream
from transship.bundle.dedup_load import read_recipe
from transship.bundle.dedup_save import CONTENTS_MEMBER, STORE_MEMBER, layer_member
from transship.bundle.dedup_stats import (
    REASON_BAD_GZIP,
    REASON_LOW_GAIN,
    REASON_ZSTD,
    DedupStats,
)
from transship.bundle.meta import Piece, load_meta
from transship.bundle.reader import FilePieceSource
from transship.bundle.writer import BundleWriter
from transship.dedup.content_store import ContentStoreReader
from transship.dedup.incremental import ParentContents
from transship.errors import DigestMismatchError
from transship.i18n import translate
from transship.oci.descriptor import Descriptor
from transship.oci.digest import digest_bytes as digest_of
from transship.transports.bundle import BundleDestination, BundleSource
from transship.transports.oci_layout import OCILayoutSource

pytest.importorskip("transship.gzip_rebuild")

GZIP_FIXTURES = [
    "layer-pax.tar.go-stdlib-default.gz",
    "layer-pax.tar.go-stdlib-best.gz",
    "layer-pax.tar.go-stdlib-bestspeed.gz",
    "layer-pax.tar.gnu-gzip-6.gz",
    "layer-pax.tar.gnu-gzip-9.gz",
    "layer-pax.tar.pigz-6.gz",
    "layer-pax.tar.python-zlib-1.gz",
    "layer-pax.tar.python-zlib-6.gz",
    "layer-pax.tar.python-zlib-9.gz",
    "layer-jars.tar.go-stdlib-default.gz",
]
TAR_FIXTURES = ["layer-pax.tar", "layer-gnu.tar"]
BROKEN = "broken-gzip"  # a layer whose gzip is truncated: stored as it is
ZSTD = "zstd-layer"


def image_name(file_name: str) -> str:
    return file_name.replace(".", "-").replace("_", "-").lower()


@pytest.fixture(scope="module")
def fixture_images(
    tmp_path_factory: pytest.TempPathFactory, shared_layers: Path
) -> tuple[OCILayout, dict[str, BuiltImage]]:
    """One image per fixture layer (plus a truncated-gzip and a zstd one), each with a
    small generated layer on top, in one OCI layout."""
    root = tmp_path_factory.mktemp("dedup-fixtures")
    layout = OCILayout.create(root / "layout")
    images: dict[str, BuiltImage] = {}
    for file_name in GZIP_FIXTURES + TAR_FIXTURES:
        base = layout.add_layer_file(shared_layers / file_name)
        top = layout.add_layer({"etc/image-name": file_name.encode()})
        images[image_name(file_name)] = layout.add_image([base, top], labels={"f": file_name})
    whole = (shared_layers / "layer-pax.tar.go-stdlib-default.gz").read_bytes()
    broken = root / "broken.tar.gz"
    broken.write_bytes(whole[: len(whole) // 2])  # registries take any bytes
    images[BROKEN] = layout.add_image([layout.add_layer_file(broken, "gzip")])
    zstd = layout.add_layer({"opt/data.bin": seeded_bytes("zstd-dedup", 50_000)}, "zstd")
    images[ZSTD] = layout.add_image([zstd])
    for name, built in images.items():
        layout.tag(built, name)
    return layout, images


@pytest.fixture(scope="module")
def fixture_registry(registry_session_factory, fixture_images):
    layout, images = fixture_images
    server = registry_session_factory()
    for name in images:
        push_image(layout, name, server, f"fx/{name}:v1")
    return server


def save(registry, out: Path, names: list[str], *extra: str) -> tuple[Path, str]:
    result = transship(
        "save", "--from", registry.host, "-o", str(out), *[f"fx/{n}:v1" for n in names], *extra
    )
    assert result.returncode == 0, result.stdout + result.stderr
    written = [
        line.split("bundle written: ", 1)[1].strip()
        for line in result.stdout.splitlines()
        if line.startswith("bundle written: ")
    ]
    assert len(written) == 1, result.stdout
    return Path(written[0]).absolute(), result.stdout


def load(meta: Path, registry, *extra: str):
    return transship("load", str(meta), "--to", registry.host, "--json", *extra)


def bundle_bytes(meta_path: Path) -> int:
    return sum(f.size for f in load_meta(meta_path).data_files)


def assert_loaded(target, source, images: dict[str, BuiltImage], names: list[str]) -> None:
    """Same manifest bytes as the source, and every blob there with its digest."""
    with httpx.Client(base_url=target.url, timeout=60) as client:
        for name in names:
            assert raw_manifest(target, f"fx/{name}:v1") == raw_manifest(source, f"fx/{name}:v1")
            for digest in images[name].blobs:
                head = client.head(f"/v2/fx/{name}/blobs/{digest}")
                assert head.status_code == 200, (name, digest)
                body = client.get(f"/v2/fx/{name}/blobs/{digest}").content
                assert "sha256:" + hashlib.sha256(body).hexdigest() == digest


def store_source(meta_path: Path) -> PieceStoreSource:
    data = load_meta(meta_path).codec_data["dedup"]
    pieces = [p for p in data.pieces if p.member == STORE_MEMBER]
    return PieceStoreSource(pieces, FilePieceSource(meta_path.parent), meta_path.name)


def stored_blobs(registry) -> list[Path]:
    return list(registry.storage_dir.rglob("blobs/sha256/*/*/data"))


# -- every fixture layer, both ways --------------------------------------------------------------


def test_every_fixture_layer_comes_back_bit_exact(
    fixture_registry, fixture_images, fresh_registry, tmp_path
):
    layout, images = fixture_images
    names = list(images)
    meta_path, output = save(
        fixture_registry, tmp_path / "out", names, "--codec", "dedup", "--dedup-effort", "max"
    )
    # Each fixture layer with a small generated one on top, the broken and zstd layers.
    split = 2 * len(GZIP_FIXTURES + TAR_FIXTURES)
    assert f"dedup: {split} of {split + 2} layers split into file contents" in output, output
    assert f"2 layers stored as they are: 1 {REASON_BAD_GZIP}" in output, output

    meta = load_meta(meta_path)
    blobs = meta.blob_index()
    for file_name in GZIP_FIXTURES:
        layer = images[image_name(file_name)].layers[0]
        entry = blobs[layer.digest]
        assert entry.encoding == "dedup" and entry.params["compression"] == "gzip", file_name
    for file_name in TAR_FIXTURES:
        entry = blobs[images[image_name(file_name)].layers[0].digest]
        assert entry.encoding == "dedup" and entry.params["compression"] == "none"
    broken = blobs[images[BROKEN].layers[0].digest]
    assert broken.encoding == "raw" and broken.params["dedup_skipped"] == REASON_BAD_GZIP
    zstd = blobs[images[ZSTD].layers[0].digest]
    assert zstd.encoding == "raw" and zstd.params["dedup_skipped"] == REASON_ZSTD
    configs = [images[n].config.digest for n in names]
    assert all(blobs[d].encoding == "raw" and not blobs[d].params for d in configs)
    assert STORE_MEMBER in {p.member for p in meta.codec_data["dedup"].pieces}

    target = fresh_registry()
    loaded = load(meta_path, target)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert run_done(loaded.stdout)["ok"] == len(names)
    assert_loaded(target, fixture_registry, images, names)

    report = transship("inspect", str(meta_path))
    assert report.returncode == 0 and f"dedup: {split} of {split + 2} layers split" in report.stdout
    figures = json.loads(transship("inspect", str(meta_path), "--json").stdout)
    stats = DedupStats.from_dict(figures["dedup"])
    assert stats.split_layers.count == split and stats.raw_layer_total.count == 2
    # Ten layers hold the same PAX tar: its contents are stored once.
    assert stats.contents_stored < stats.contents_seen / 5


def test_balanced_effort_keeps_layers_not_worth_rebuilding_and_loads_them_all(
    fixture_registry, fixture_images, fresh_registry, tmp_path
):
    """The default effort: each layer is rebuilt or kept as it is (reason given), the
    store holds only what rebuilt layers need, and every digest comes back."""
    layout, images = fixture_images
    names = list(images)
    meta_path, output = save(fixture_registry, tmp_path / "out", names, "--codec", "dedup")
    meta = load_meta(meta_path)
    blobs = meta.blob_index()
    ways = {"dedup": 0, REASON_LOW_GAIN: 0}
    for file_name in GZIP_FIXTURES:
        entry = blobs[images[image_name(file_name)].layers[0].digest]
        if entry.encoding == "dedup":
            assert entry.params["compression"] == "gzip" and entry.pieces, file_name
            ways["dedup"] += 1
        else:
            assert entry.encoding == "raw" and entry.params["dedup_skipped"] == REASON_LOW_GAIN
            ways[REASON_LOW_GAIN] += 1
    assert ways["dedup"] and ways[REASON_LOW_GAIN], ways
    assert f"{REASON_LOW_GAIN} (" in output, output
    # The fixture jar layer's transcript costs 2 % of its tar: it is rebuilt from it.
    assert re.search(r"[1-9]\d* transcript\b", output), output
    finishing = translate(DedupCodec.finishing_note, "en")
    assert finishing.startswith("dedup: checking"), finishing
    assert finishing + " ..." in output, output  # no silent wait at the end
    checked = [b for b in meta.blobs if b.params.get("compression") == "gzip"]
    assert f"dedup: {len(checked)} layers checked, " in output, output
    stats = DedupStats.from_dict(meta.codec_data["dedup"].params["stats"])
    needed = set()
    source = FilePieceSource(meta_path.parent)
    for entry in meta.blobs:
        if entry.encoding == "dedup":
            recipe = read_recipe(entry, source)
            needed |= set(recipe.content_digests())
            # A gzip layer's digest covers its tar; an uncompressed layer's is its tar's.
            gzipped = entry.params.get("compression") == "gzip"
            tar_sha256 = None if gzipped else bytes.fromhex(entry.digest.split(":")[1])
            assert recipe.tar_sha256 == tar_sha256, entry.digest
            recipe.close()
    assert stats.contents_stored == len(needed)

    target = fresh_registry()
    loaded = load(meta_path, target)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert_loaded(target, fixture_registry, images, names)


def test_a_second_save_reuses_the_gzip_checks_of_the_first(
    fixture_registry, fixture_images, fresh_registry, tmp_path
):
    layout, images = fixture_images
    names = [image_name(f) for f in GZIP_FIXTURES[:3]]
    args = ("--codec", "dedup", "--dedup-effort", "max")
    _, first = save(fixture_registry, tmp_path / "first", names, *args)
    assert "checked by an earlier save" not in first, first
    meta_path, second = save(fixture_registry, tmp_path / "second", names, *args)
    rebuilt = [b for b in load_meta(meta_path).blobs if b.params.get("compression") == "gzip"]
    assert len(rebuilt) >= 3
    assert f"({len(rebuilt)} checked by an earlier save)" in second, second

    target = fresh_registry()
    loaded = load(meta_path, target)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert_loaded(target, fixture_registry, images, names)


def test_the_config_can_make_dedup_the_default_codec(fixture_registry, fixture_images, tmp_path):
    config = tmp_path / "transship.yaml"
    config.write_text("codec: dedup\ndedup_effort: max\n")
    names = [image_name(GZIP_FIXTURES[0])]
    meta_path, output = save(fixture_registry, tmp_path / "out", names, "--config", str(config))
    blobs = load_meta(meta_path).blob_index()
    assert blobs[fixture_images[1][names[0]].layers[0].digest].encoding == "dedup", output
    raw, _ = save(
        fixture_registry, tmp_path / "raw", names, "--config", str(config), "--codec", "raw"
    )
    assert "dedup" not in load_meta(raw).codec_data


def test_sample_images_round_trip_through_a_dedup_bundle(source_registry, fresh_registry, tmp_path):
    """Indexes, Docker manifest lists, shared layers, a zstd layer: all as with raw."""
    names = ["tiny", "oci-single", "docker-single", "oci-multi", "docker-multi", "zstd"]
    result = transship(
        "save",
        "--from",
        source_registry.host,
        "-o",
        str(tmp_path / "out"),
        "--codec",
        "dedup",
        "--dedup-effort",
        "max",
        *[f"samples/{n}:v1" for n in names],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    meta_path = Path(result.stdout.split("bundle written: ", 1)[1].split()[0]).absolute()
    target = fresh_registry()
    loaded = load(meta_path, target)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    for name in names:
        assert raw_manifest(target, f"samples/{name}:v1") == raw_manifest(
            source_registry.server, f"samples/{name}:v1"
        )
        for digest in source_registry[name].manifests:
            assert raw_manifest(target, f"samples/{name}@{digest}") == raw_manifest(
                source_registry.server, f"samples/{name}@{digest}"
            )


def test_dedup_bundle_is_smaller_when_images_share_files_but_not_layers(fixture_registry, tmp_path):
    # The same tar gzipped by Go and by GNU gzip: two different layers, the same files.
    names = [image_name(GZIP_FIXTURES[0]), image_name(GZIP_FIXTURES[3])]
    raw, _ = save(fixture_registry, tmp_path / "raw", names)
    dedup, _ = save(
        fixture_registry, tmp_path / "dedup", names, "--codec", "dedup", "--dedup-effort", "max"
    )
    assert load_meta(raw).options["encoding"] == "raw"
    assert bundle_bytes(dedup) < 0.62 * bundle_bytes(raw), (bundle_bytes(dedup), bundle_bytes(raw))


# -- damage ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_dedup_bundle(fixture_registry, fixture_images, tmp_path_factory) -> Path:
    names = [
        image_name(GZIP_FIXTURES[0]),
        image_name(GZIP_FIXTURES[5]),
        image_name(TAR_FIXTURES[1]),
    ]
    meta_path, _ = save(
        fixture_registry,
        tmp_path_factory.mktemp("small"),
        names,
        "--codec",
        "dedup",
        "--dedup-effort",
        "max",
    )
    return meta_path


def _flip_byte(meta_path: Path, piece: Piece, where: int, fix_checksum: bool) -> None:
    """Flip one byte of a piece; with `fix_checksum`, update the data file's sha256 in the
    meta as if the damage had happened before the bundle was finished."""
    data_file = meta_path.parent / piece.file
    with open(data_file, "r+b") as f:
        f.seek(piece.offset + where)
        byte = f.read(1)
        f.seek(piece.offset + where)
        f.write(bytes([byte[0] ^ 0x5A]))
    if fix_checksum:
        doc = json.loads(meta_path.read_text())
        sha = hashlib.sha256(data_file.read_bytes()).hexdigest()
        for entry in doc["data_files"]:
            if entry["name"] == piece.file:
                entry["sha256"] = sha
        meta_path.write_text(json.dumps(doc))


@pytest.mark.parametrize("damage", ["store", "recipe", "skeleton", "data file"])
def test_damaged_bundle_is_refused_naming_the_layer_and_nothing_is_pushed(
    small_dedup_bundle, fresh_registry, tmp_path, damage
):
    copy = tmp_path / "bundle"
    shutil.copytree(small_dedup_bundle.parent, copy)
    meta_path = copy / small_dedup_bundle.name
    meta = load_meta(meta_path)
    dedup_layers = [b for b in meta.blobs if b.encoding == "dedup"]
    if damage in ("store", "data file"):
        store = [p for p in meta.codec_data["dedup"].pieces if p.member == STORE_MEMBER][0]
        _flip_byte(meta_path, store, store.length // 3, fix_checksum=damage == "store")
    else:
        recipe = dedup_layers[0].pieces[0]
        assert recipe.member == layer_member(dedup_layers[0].digest)
        where = 60 if damage == "recipe" else recipe.length - 2  # header / end of skeleton
        _flip_byte(meta_path, recipe, where, fix_checksum=True)

    target = fresh_registry()
    result = load(meta_path, target)
    assert result.returncode != 0
    error = result.stderr + result.stdout
    if damage == "data file":
        assert store.file in error and "damaged" in error
    else:
        assert any(layer.digest in error for layer in dedup_layers), error
        assert "nothing was pushed" in error
        if damage != "store":
            assert dedup_layers[0].digest in error and "recipe is corrupt" in error
            assert ("skeleton" in error) == (damage == "skeleton")
    assert stored_blobs(target) == []


def test_a_damaged_transcript_is_refused_naming_the_layer(
    fixture_registry, fresh_registry, tmp_path
):
    """The jar layer's recipe (balanced effort) carries its gzip transcript: a byte
    flipped in it stops the load before anything is pushed."""
    jars = image_name(GZIP_FIXTURES[-1])
    meta_path, output = save(fixture_registry, tmp_path / "out", [jars], "--codec", "dedup")
    assert "1 transcript" in output, output
    meta = load_meta(meta_path)
    (layer,) = [b for b in meta.blobs if b.params.get("compression") == "gzip"]
    recipe = layer.pieces[0]
    assert recipe.member == layer_member(layer.digest) and recipe.length > 100_000
    _flip_byte(meta_path, recipe, recipe.length // 2, fix_checksum=True)

    target = fresh_registry()
    result = load(meta_path, target)
    error = result.stderr + result.stdout
    assert result.returncode != 0
    assert layer.digest in error and "recipe is corrupt" in error, error
    assert "nothing was pushed" in error
    assert stored_blobs(target) == []


def test_loading_one_image_needs_only_its_own_layers(
    small_dedup_bundle, fixture_registry, fixture_images, fresh_registry, tmp_path
):
    """`--image`: the other images' layers are neither checked nor unpacked, so a damaged
    layer elsewhere in the bundle does not stop it (a full load still refuses)."""
    layout, images = fixture_images
    copy = tmp_path / "bundle"
    shutil.copytree(small_dedup_bundle.parent, copy)
    meta_path = copy / small_dedup_bundle.name
    blobs = load_meta(meta_path).blob_index()
    damaged = blobs[images[image_name(TAR_FIXTURES[1])].layers[0].digest]
    assert damaged.encoding == "dedup"
    _flip_byte(meta_path, damaged.pieces[0], 60, fix_checksum=True)

    wanted = image_name(GZIP_FIXTURES[0])
    target = fresh_registry()
    assert load(meta_path, target, "--check").returncode != 0
    loaded = load(meta_path, target, "--image", f"fx/{wanted}:v1")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert_loaded(target, fixture_registry, images, [wanted])
    refused = load(meta_path, target)
    assert refused.returncode != 0 and damaged.digest in refused.stderr + refused.stdout


# -- incremental -------------------------------------------------------------------------------


def test_incremental_dedup_bundle_stores_only_new_contents_and_loads_after_its_parent(
    fixture_registry, fixture_images, fresh_registry, tmp_path
):
    layout, images = fixture_images
    first = image_name(GZIP_FIXTURES[0])  # the PAX tar, Go gzip
    second = image_name(GZIP_FIXTURES[5])  # the same tar, pigz: a new layer, no new file
    third = image_name(GZIP_FIXTURES[9])  # jars: new files
    out = tmp_path / "out"
    parent, _ = save(
        fixture_registry, out, [first], "--codec", "dedup", "--dedup-effort", "max", "--prefix", "p"
    )
    child, output = save(
        fixture_registry,
        out,
        [second, third],
        "--codec",
        "dedup",
        "--dedup-effort",
        "max",
        "--prefix",
        "c",
        "--since",
        str(parent),
    )
    assert "left to parent bundles" in output, output
    parent_stats = DedupStats.from_dict(load_meta(parent).codec_data["dedup"].params["stats"])
    child_meta = load_meta(child)
    child_stats = DedupStats.from_dict(child_meta.codec_data["dedup"].params["stats"])
    assert child_stats.contents_in_parents > 0
    # Only contents the parent lacks are stored: the PAX tar's files are not stored again.
    parent_contents = ParentContents.from_bytes(
        base64.b64decode(load_meta(parent).codec_data["dedup"].params["contents"])
    )
    store = ContentStoreReader(store_source(child))
    assert store.problem is None and len(store.index) == child_stats.contents_stored
    assert not any(digest in parent_contents for digest in store.digests())
    alone, _ = save(
        fixture_registry, tmp_path / "alone", [third], "--codec", "dedup", "--dedup-effort", "max"
    )
    alone_stats = DedupStats.from_dict(load_meta(alone).codec_data["dedup"].params["stats"])
    # The jar layer's files are new (a few were in the PAX tar already); the pigz
    # layer's are all in the parent.
    assert child_stats.contents_stored_bytes <= alone_stats.contents_stored_bytes
    assert child_stats.contents_seen_bytes > alone_stats.contents_seen_bytes
    assert parent_stats.contents_stored > 0
    external = child_meta.codec_data["dedup"].params["external_layers"]
    assert [e["digest"] for e in external] == [images[first].layers[0].digest]

    # Parent files next to the child: contents come from the parent's store.
    target = fresh_registry()
    assert load(parent, target).returncode == 0
    loaded = load(child, target)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert_loaded(target, fixture_registry, images, [first, second, third])

    # The child alone: contents come from the layers the target already holds.
    elsewhere = tmp_path / "elsewhere" / "bundle"
    elsewhere.mkdir(parents=True)
    for f in child.parent.glob(child.name.removesuffix(".meta.json") + ".*"):
        shutil.copy(f, elsewhere / f.name)
    second_target = fresh_registry()
    assert load(parent, second_target).returncode == 0
    loaded = load(elsewhere / child.name, second_target)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert_loaded(second_target, fixture_registry, images, [second, third])

    # Neither the parent's files nor its images: refused, naming the layer; --check
    # says so too.
    empty = fresh_registry()
    checked = load(elsewhere / child.name, empty, "--check")
    assert checked.returncode != 0
    assert images[second].layers[0].digest in checked.stderr, checked.stderr
    refused = load(elsewhere / child.name, empty)
    assert refused.returncode != 0
    assert images[second].layers[0].digest in refused.stderr + refused.stdout
    assert parent.name in refused.stderr + refused.stdout
    assert stored_blobs(empty) == []


def test_a_long_content_list_lies_in_the_data_files_and_since_reads_it_there(
    fixture_images, tmp_path, monkeypatch
):
    import transship.bundle.dedup_save as dedup_save

    monkeypatch.setattr(dedup_save, "_INLINE_CONTENTS", 0)  # every list counts as long
    layout, images = fixture_images
    first, second = image_name(GZIP_FIXTURES[0]), image_name(GZIP_FIXTURES[5])

    def save_in_process(meta_path: Path, name: str, since: list[Path]) -> DedupStats:
        dst = BundleDestination(meta_path, codec=DedupCodec(min_gain=0), since=since)
        copy_all(OCILayoutSource(layout.path), dst, [("", name, f"fx/{name}", "v1")])
        return DedupStats.from_dict(load_meta(meta_path).codec_data["dedup"].params["stats"])

    parent = tmp_path / "p" / "p.meta.json"
    save_in_process(parent, first, [])
    data = load_meta(parent).codec_data["dedup"]
    assert "contents" not in data.params and data.params["contents_member"] == CONTENTS_MEMBER
    child = save_in_process(tmp_path / "c" / "c.meta.json", second, [parent])
    assert child.contents_in_parents > 0 and child.notes == []

    alone = tmp_path / "alone"  # the parent's meta without its data files
    alone.mkdir()
    shutil.copy(parent, alone / parent.name)
    orphan = save_in_process(tmp_path / "o" / "o.meta.json", second, [alone / parent.name])
    assert orphan.contents_in_parents == 0 and orphan.contents_stored > child.contents_stored
    assert "not next to its meta" in orphan.notes[0]
    assert any(line.endswith(orphan.notes[0]) for line in orphan.summary_lines())


# -- interrupted saves, and the parts --------------------------------------------------------------


def test_interrupted_dedup_save_starts_over_and_never_looks_complete(fixture_images, tmp_path):
    layout, images = fixture_images
    name = image_name(GZIP_FIXTURES[0])
    meta_path = tmp_path / "b" / "b.meta.json"
    first = BundleDestination(meta_path, codec=DedupCodec(min_gain=0))
    layer = images[name].layers[0]
    desc = Descriptor(layer.media_type, layer.digest, layer.size)
    with open(layout.blob_path(layer.digest), "rb") as f:
        first.put_blob("fx", desc, iter(lambda: f.read(65536), b""))
    first.abort()
    first.close()
    assert not meta_path.exists()
    assert not (tmp_path / "b" / ".b.work").exists()  # spilled contents are not left behind

    second = BundleDestination(meta_path, codec=DedupCodec(min_gain=0))
    assert second.resumed_blobs == 0 and not second.has_blob("fx", desc)
    copy_all(OCILayoutSource(layout.path), second, [("", name, f"fx/{name}", "v1")])
    second.close()
    source = BundleSource(meta_path)
    try:
        source.reader.prepare_codecs()
        for digest in images[name].blobs:
            data = b"".join(source.reader.read_blob(digest))
            assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    finally:
        source.close()


def test_dedup_bundle_split_into_volumes_loads(fixture_images, tmp_path):
    layout, images = fixture_images
    names = [image_name(GZIP_FIXTURES[0]), image_name(GZIP_FIXTURES[3])]
    volume = 512 * 1024
    meta_path = tmp_path / "v.meta.json"
    dst = BundleDestination(meta_path, codec=DedupCodec(min_gain=0), volume_size=volume)
    copy_all(OCILayoutSource(layout.path), dst, [("", n, f"fx/{n}", "v1") for n in names])
    meta = load_meta(meta_path)
    store = [p for p in meta.codec_data["dedup"].pieces if p.member.startswith(STORE_MEMBER)]
    assert len(store) > 1 and all(p.member.startswith(STORE_MEMBER + ".part") for p in store)
    assert all(f.size < volume for f in meta.data_files)
    source = BundleSource(meta_path)
    try:
        # No prepare_codecs(): the reader prepares the codec on the first blob.
        for name in names:
            for digest in images[name].blobs:
                data = b"".join(source.reader.read_blob(digest))
                assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    finally:
        source.close()


def test_a_blob_tried_again_counts_once_as_it_ended_up(tmp_path, shared_layers):
    good = (shared_layers / GZIP_FIXTURES[0]).read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # the source sent damaged bytes: not even valid gzip
    desc = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest_of(good), len(good))
    writer = BundleWriter(tmp_path, "t", codec=DedupCodec(min_gain=0))
    with pytest.raises(DigestMismatchError):
        writer.put_blob(desc, [bytes(bad)])
    writer.put_blob(desc, [good[:1000], good[1000:]])
    meta = writer.commit([], [])
    stats = DedupStats.from_dict(meta.codec_data["dedup"].params["stats"])
    assert stats.split_layers.count == 1 and stats.raw_layer_total.count == 0
    assert meta.blobs[0].encoding == "dedup"


def test_raw_bundles_have_no_codec_data(fixture_images, tmp_path):
    layout, images = fixture_images
    name = image_name(TAR_FIXTURES[0])
    dst = BundleDestination(tmp_path / "r.meta.json")
    copy_all(OCILayoutSource(layout.path), dst, [("", name, f"fx/{name}", "v1")])
    assert "codec_data" not in json.loads((tmp_path / "r.meta.json").read_text())


def test_replayable_stream_seeks_back_and_replays_everything(tmp_path):
    data = seeded_bytes("replay", 300_000)
    chunks = [data[i : i + 70_000] for i in range(0, len(data), 70_000)]
    with ReplayableStream(chunks, tmp_path / "spool") as stream:
        assert stream.read(100_000) == data[:70_000]  # a whole chunk at a time
        assert stream.read(50_000) == data[70_000:120_000]
        stream.seek(10)
        assert stream.read(100_000) == data[10:100_010]  # from the spool
        assert stream.tell() == 100_010
        with pytest.raises(OSError):
            stream.seek(250_000)  # not received yet
        assert stream.read(1000) + stream.read() == data[100_010:]
        stream.seek(299_990)
        assert stream.read(100) == data[299_990:] and stream.read(100) == b""
        assert b"".join(stream.replay()) == data
    assert not (tmp_path / "spool").exists()


def test_piece_store_source_reads_ranges_across_pieces(tmp_path):
    data = gzip.compress(seeded_bytes("pieces", 5000))  # any bytes
    dst = BundleDestination(tmp_path / "p.meta.json", volume_size=64 * 1024)
    pieces: list[Piece] = []

    def write(sink):
        nonlocal pieces
        pieces = sink.write_piece("dedup/x", len(data), [data])
        return None

    dst.writer.store.write_members(write)
    dst.writer.store.finish()
    source = PieceStoreSource(pieces * 3, FilePieceSource(tmp_path), "x")
    whole = data * 3
    assert source.size == len(whole)
    for offset, length in [(0, 10), (len(data) - 3, 7), (5, 2 * len(data)), (0, len(whole))]:
        assert source.read_range(offset, length) == whole[offset : offset + length]
