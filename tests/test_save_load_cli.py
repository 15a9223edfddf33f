"""`transship save`, `load` and `inspect` end to end, with real registries and skopeo."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

from tests.support.images import skopeo_inspect
from tests.test_copy_integration import raw_manifest, run_done, transship

ALL = ["tiny", "oci-single", "docker-single", "oci-multi", "docker-multi", "zstd"]


def save(source_registry, out: Path, names, *extra: str):
    result = transship(
        "save",
        "--from",
        source_registry.host,
        "-o",
        str(out),
        *[f"samples/{n}:v1" for n in names],
        *extra,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    metas = [
        line.split("bundle written: ", 1)[1].strip()
        for line in result.stdout.splitlines()
        if line.startswith("bundle written: ")
    ]
    assert len(metas) == 1, result.stdout
    return Path(metas[0]) if Path(metas[0]).is_absolute() else Path.cwd() / metas[0]


def stored_manifests(registry) -> set[str]:
    return {
        str(p.relative_to(registry.storage_dir))
        for p in registry.storage_dir.rglob("_manifests/tags/*")
    }


def test_save_then_load_preserves_every_image(source_registry, fresh_registry, tmp_path):
    meta = save(source_registry, tmp_path / "out", ALL)
    assert (
        meta.parent.parent == tmp_path / "out"
        and meta.parent.name.isdigit()
        and len(meta.parent.name) == 8
    )
    assert meta.name.startswith("img_full_") and meta.name.endswith(".meta.json")
    data_files = sorted(meta.parent.glob("*.tar"))
    assert data_files
    members = set()
    for f in data_files:
        with tarfile.open(f) as t:  # plain tar, inspectable with tar tvf
            members |= {m.name for m in t.getmembers()}
    every_blob = set()
    for name in ALL:
        every_blob |= set(source_registry[name].blobs)
    assert {f"blobs/sha256/{d.split(':')[1]}" for d in every_blob} <= members

    target = fresh_registry()
    loaded = transship("load", str(meta), "--to", target.host, "--json")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert run_done(loaded.stdout)["ok"] == len(ALL)
    for name in ALL:
        assert raw_manifest(target, f"samples/{name}:v1") == raw_manifest(
            source_registry.server, f"samples/{name}:v1"
        )
        for digest in source_registry[name].manifests:
            assert raw_manifest(target, f"samples/{name}@{digest}") == raw_manifest(
                source_registry.server, f"samples/{name}@{digest}"
            )

    again = transship("load", str(meta), "--to", target.host, "--json")
    assert run_done(again.stdout)["blobs_copied"] == 0

    report = json.loads(transship("inspect", str(meta), "--json").stdout)
    assert len(report["images"]) == len(ALL)
    assert report["saved_by_sharing"] > 0  # the base layer is shared by four images
    assert report["bytes_summed_over_images"] - report["saved_by_sharing"] == report["blob_bytes"]


def test_incremental_bundle_needs_its_parent_first(source_registry, fresh_registry, tmp_path):
    full = save(source_registry, tmp_path / "out", ["oci-single"])
    inc = save(
        source_registry, tmp_path / "out", ["oci-single", "docker-single"], "--since", str(full)
    )
    assert "_inc_" in inc.name
    inc_meta = json.loads(inc.read_text())
    full_blobs = {b["digest"] for b in json.loads(full.read_text())["blobs"]}
    # only what the parent lacks is stored
    assert not full_blobs & {b["digest"] for b in inc_meta["blobs"]}
    assert {b["digest"] for b in inc_meta["blobs"]} == set(
        source_registry["docker-single"].blobs
    ) - full_blobs

    target = fresh_registry()
    checked = transship("load", str(inc), "--to", target.host, "--check")
    assert checked.returncode != 0 and full.name in checked.stderr, checked.stderr
    refused = transship("load", str(inc), "--to", target.host)
    assert refused.returncode != 0
    assert full.name in refused.stdout + refused.stderr
    assert not stored_manifests(target)  # nothing pushed

    assert transship("load", str(full), "--to", target.host).returncode == 0
    checked = transship("load", str(inc), "--to", target.host, "--check")
    assert checked.returncode == 0 and "verified: it loads into" in checked.stdout, checked.stderr
    assert not any("docker-single" in m for m in stored_manifests(target))  # nothing pushed
    ok = transship("load", str(inc), "--to", target.host)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert raw_manifest(target, "samples/docker-single:v1") == raw_manifest(
        source_registry.server, "samples/docker-single:v1"
    )


def test_corrupt_or_missing_data_file_is_refused_before_any_push(
    source_registry, fresh_registry, tmp_path
):
    meta = save(source_registry, tmp_path / "out", ["oci-single", "tiny"], "--maxconn", "2")
    data_files = sorted(meta.parent.glob("*.tar"))
    victim = max(data_files, key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    target = fresh_registry()
    result = transship("load", str(meta), "--to", target.host)
    assert result.returncode == 2
    assert victim.name in result.stderr and "Traceback" not in result.stderr
    assert not stored_manifests(target)

    victim.unlink()
    result = transship("load", str(meta), "--to", target.host)
    assert result.returncode == 2 and victim.name in result.stderr and "missing" in result.stderr
    assert not stored_manifests(target)


def test_single_file_bundle_is_read_by_skopeo_as_oci_and_docker_archive(
    source_registry, fresh_registry, tmp_path
):
    meta = save(source_registry, tmp_path / "out", ["oci-single", "docker-single"], "--single-file")
    data_files = list(meta.parent.glob("*.tar"))
    assert len(data_files) == 1
    archive = data_files[0]
    target = fresh_registry()
    for kind, ref, dest in (
        ("oci-archive", "samples/oci-single:v1", "viaoci/oci-single:v1"),
        ("docker-archive", "samples/docker-single:v1", "viadocker/docker-single:v1"),
    ):
        result = subprocess.run(
            [
                "skopeo",
                "--insecure-policy",
                "copy",
                "--preserve-digests",
                *target.skopeo_flags("dest-"),
                f"{kind}:{archive}:{ref}",
                f"docker://{target.host}/{dest}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    # an OCI archive keeps the manifest byte for byte
    assert raw_manifest(target, "viaoci/oci-single:v1") == raw_manifest(
        source_registry.server, "samples/oci-single:v1"
    )
    # skopeo reads docker-archive layers as plain tars: they arrive as the image's diff_ids
    code, out, _ = skopeo_inspect(target, "viadocker/docker-single:v1")
    config = json.loads(
        skopeo_inspect(source_registry.server, "samples/docker-single:v1", config=True)[1]
    )
    assert code == 0 and json.loads(out)["Layers"] == config["rootfs"]["diff_ids"]


def test_image_transmit_format_round_trips(source_registry, fresh_registry, tmp_path):
    meta = save(
        source_registry, tmp_path / "out", ["oci-single", "tiny"], "--format", "image-transmit"
    )
    assert meta.name.endswith("_meta.yaml")
    target = fresh_registry()
    result = transship("load", str(meta), "--to", target.host)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("oci-single", "tiny"):
        assert raw_manifest(target, f"samples/{name}:v1") == raw_manifest(
            source_registry.server, f"samples/{name}:v1"
        )


def test_load_renames_check_and_archive_destination(source_registry, fresh_registry, tmp_path):
    meta = save(source_registry, tmp_path / "out", ["tiny", "zstd"])
    target = fresh_registry()
    check = transship(
        "load",
        str(meta),
        "--to",
        target.host,
        "--check",
        "--map",
        "samples/tiny:v1 -> renamed/tiny:2",
    )
    assert check.returncode == 0, check.stderr
    assert f"samples/tiny:v1 -> {target.host}/renamed/tiny:2" in check.stdout
    assert not stored_manifests(target)

    loaded = transship(
        "load",
        str(meta),
        "--to",
        f"docker://{target.host}/site",
        "--map",
        "samples/tiny:v1 -> renamed/tiny:2",
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert raw_manifest(target, "renamed/tiny:2") == raw_manifest(
        source_registry.server, "samples/tiny:v1"
    )
    assert raw_manifest(target, "site/zstd:v1") == raw_manifest(
        source_registry.server, "samples/zstd:v1"
    )

    unknown = transship("load", str(meta), "--to", target.host, "--map", "samples/nope:v1 -> x:1")
    assert unknown.returncode == 2 and "samples/nope:v1" in unknown.stderr

    archive = tmp_path / "tiny.tar"
    out = transship(
        "load", str(meta), "--to", f"docker-archive:{archive}", "--image", "samples/tiny:v1"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    inspected = subprocess.run(
        ["skopeo", "inspect", f"docker-archive:{archive}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert inspected.returncode == 0, inspected.stderr


def test_copy_between_file_transports_and_a_registry(sample_images, fresh_registry, tmp_path):
    layout = sample_images.layout.path
    archive = tmp_path / "one.tar"
    result = transship("copy", f"oci:{layout}:oci-single", f"oci-archive:{archive}")
    assert result.returncode == 0, result.stdout + result.stderr
    inspected = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{archive}"], capture_output=True, timeout=60
    )
    assert inspected.returncode == 0, inspected.stderr
    assert (
        json.loads(inspected.stdout)["config"]["digest"]
        == json.loads(sample_images["oci-single"].manifest.raw)["config"]["digest"]
    )

    target = fresh_registry()
    result = transship("copy", f"oci-archive:{archive}", f"docker://{target.host}/from/archive:1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert raw_manifest(target, "from/archive:1") == sample_images["oci-single"].manifest.raw
