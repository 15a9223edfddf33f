"""Build the fleet: generated jars, then layers (in parallel), then the OCI layout.

Every generated jar and layer is cached under its plan key, so a second build with the
same scale and seed on the same machine only re-plans and re-writes the small JSON files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from fleetgen import GENERATOR_VERSION
from fleetgen.layers import LayerResult, build_layer
from fleetgen.layout import LayoutWriter, WrittenImage
from fleetgen.plan import FleetPlan, JarSpec, LayerSpec, make_plan
from fleetgen.zipcopy import write_jar

BENCH_DIR = Path(__file__).resolve().parent.parent
GOGZIP_SOURCE = BENCH_DIR / "gogzip"
ROLE_ORDER = {"large": 0, "jre": 1, "os": 2, "app": 3, "libs": 4}


def ensure_gogzip(bin_dir: Path) -> str:
    """Build bench/gogzip once into `bin_dir` (rebuilt when its source is newer)."""
    binary = bin_dir / "gogzip"
    sources = sorted(GOGZIP_SOURCE.glob("*.go")) + [GOGZIP_SOURCE / "go.mod"]
    newest = max(p.stat().st_mtime for p in sources)
    if binary.exists() and binary.stat().st_mtime >= newest:
        return str(binary)
    if not shutil.which("go"):
        raise SystemExit("`go` is needed to build bench/gogzip: apt-get install golang-go")
    bin_dir.mkdir(parents=True, exist_ok=True)
    tmp = bin_dir / f".gogzip-{os.getpid()}"
    subprocess.run(["go", "build", "-trimpath", "-o", str(tmp), "."], cwd=GOGZIP_SOURCE, check=True)
    os.replace(tmp, binary)
    return str(binary)


def _make_jar(spec: JarSpec, path: str) -> str:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        write_jar(
            fh, list(spec.sources), spec.manifest.encode(), spec.keep_seed, spec.keep,
            spec.target_bytes, spec.drop_seed, spec.drop,
        )  # fmt: skip
    os.replace(tmp, path)
    return path


def _make_layer(layer: LayerSpec, blobs: str, gogzip: str) -> LayerResult:
    return build_layer(layer.members, layer.compressor, layer.mtime, Path(blobs), gogzip)


def _cached_layer(meta: Path, blobs: Path) -> LayerResult | None:
    if not meta.exists():
        return None
    result = LayerResult(**json.loads(meta.read_text()))
    blob = blobs / result.digest.split(":", 1)[1]
    if blob.exists() and blob.stat().st_size == result.size:
        return result
    return None


def _build_jars(plan: FleetPlan, pool: ProcessPoolExecutor) -> int:
    plan.jars_dir.mkdir(parents=True, exist_ok=True)
    todo = {
        key: spec for key, spec in plan.jars.items() if not (plan.jars_dir / f"{key}.jar").exists()
    }
    futures = [pool.submit(_make_jar, s, str(plan.jars_dir / f"{k}.jar")) for k, s in todo.items()]
    for future in as_completed(futures):
        future.result()
    return len(todo)


def _build_layers(
    plan: FleetPlan, cache: Path, blobs: Path, gogzip: str, pool: ProcessPoolExecutor
) -> tuple[dict[str, LayerResult], int]:
    meta_dir = cache / "layers"
    meta_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, LayerResult] = {}
    todo: list[LayerSpec] = []
    for key, layer in plan.layers.items():
        cached = _cached_layer(meta_dir / f"{key}.json", blobs)
        if cached:
            results[key] = cached
        else:
            todo.append(layer)
    todo.sort(key=lambda layer: ROLE_ORDER[layer.role])
    futures = {pool.submit(_make_layer, layer, str(blobs), gogzip): layer for layer in todo}
    for future in as_completed(futures):
        layer = futures[future]
        result = future.result()
        (meta_dir / f"{layer.key}.json").write_text(json.dumps(asdict(result)))
        results[layer.key] = result
    return results, len(todo)


def totals(images: list[WrittenImage]) -> dict[str, int]:
    unique_blobs: dict[str, int] = {}
    unique_tars: dict[str, int] = {}
    summed_compressed = summed_uncompressed = 0
    for image in images:
        for layer in image.layers:
            unique_blobs[layer.digest] = layer.size
            unique_tars[layer.diff_id] = layer.tar_size
            summed_compressed += layer.size
            summed_uncompressed += layer.tar_size
    return {
        "images": len(images),
        "unique_compressed_blobs": len(unique_blobs),
        "unique_compressed_bytes": sum(unique_blobs.values()),
        "unique_uncompressed_layers": len(unique_tars),
        "unique_uncompressed_bytes": sum(unique_tars.values()),
        "summed_compressed_bytes": summed_compressed,
        "summed_uncompressed_bytes": summed_uncompressed,
    }


def _image_record(w: WrittenImage, layout_dir: Path, dir_copy: str | None = None) -> dict:
    return {
        "skopeo_source": f"dir:{dir_copy}" if dir_copy else f"oci:{layout_dir}:{w.spec.ref_name}",
        "name": f"{w.spec.repository}:{w.spec.tag}",
        "ref_name": w.spec.ref_name,
        "service": w.spec.service,
        "version": w.spec.version,
        "flavour": w.spec.flavour,
        "manifest_media_type": w.media_type,
        "manifest_digest": w.digest,
        "manifest_size": w.size,
        "config_digest": w.config_digest,
        "layers": [
            {"role": spec.role, "compressor": spec.compressor, **asdict(result)}
            for spec, result in zip(w.spec.layers, w.layers, strict=True)
        ],
    }


def _reusable(out: Path, scale: float, seed: str, with_large: bool) -> dict | None:
    """The fleet already built in `out` with these parameters, if all its blobs are there."""
    path = out / "fleet.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    wanted = (GENERATOR_VERSION, scale, seed)
    if (summary.get("generator_version"), summary["scale"], summary["seed"]) != wanted:
        return None
    if with_large and not summary["large"]:
        return None
    blobs = Path(summary["layout"]) / "blobs" / "sha256"
    for image in summary["images"] + summary["large"]:
        for layer in image["layers"]:
            blob = blobs / layer["digest"].split(":", 1)[1]
            if not blob.exists() or blob.stat().st_size != layer["size"]:
                return None
    return summary


def _collect_garbage(out: Path, plan: FleetPlan, written: list[WrittenImage]) -> None:
    """Drop blobs, jars, layer records and dir copies that the current fleet does not use."""
    layout_blobs = out / "layout" / "blobs" / "sha256"
    used = set()
    for w in written:
        used.update({w.digest, w.config_digest, *(r.digest for r in w.layers)})
    used_hex = {d.split(":", 1)[1] for d in used}
    for blob in layout_blobs.iterdir():
        if blob.name not in used_hex and not blob.name.startswith("."):
            blob.unlink()
    for jar in plan.jars_dir.glob("*.jar"):
        if jar.stem not in plan.jars:
            jar.unlink()
    for meta in (out / "cache" / "layers").glob("*.json"):
        if meta.stem not in plan.layers:
            meta.unlink()
    refs = {w.spec.ref_name for w in written if w.spec.flavour == "docker"}
    dirs = out / "dirs"
    if dirs.is_dir():
        for d in dirs.iterdir():
            if d.name not in refs:
                shutil.rmtree(d)


def build_fleet(
    out: Path, scale: float, seed: str, with_large: bool, jobs: int, refresh: bool = False
) -> dict:
    """Build (or reuse) the fleet in `out`; returns the summary also written to fleet.json.

    A fleet built before with the same scale and seed is reused as it is, even if files on
    the machine changed since (so its digests stay stable); `refresh` re-reads the machine
    and rebuilds whatever changed.
    """
    started = time.monotonic()
    if not refresh and (summary := _reusable(out, scale, seed, with_large)):
        summary.update(reused=True, jars_built=0, layers_built=0)
        summary.update(build_seconds=round(time.monotonic() - started, 1), plan_seconds=0.0)
        return summary
    cache, layout_dir = out / "cache", out / "layout"
    layout = LayoutWriter(layout_dir)
    gogzip = ensure_gogzip(out.parent / "bin")
    plan = make_plan(scale, seed, cache, with_large)
    planned = time.monotonic()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        jars_built = _build_jars(plan, pool)
        results, layers_built = _build_layers(plan, cache, layout.blobs, gogzip, pool)
    written = [
        layout.write_image(image, [results[layer.key] for layer in image.layers])
        for image in plan.images
    ]
    layout.write_index(written)
    dir_copies = {
        w.spec.ref_name: str(layout.write_dir_copy(w, out / "dirs"))
        for w in written
        if w.spec.flavour == "docker"
    }
    fleet = [w for w in written if w.spec.service != "large"]
    large = [w for w in written if w.spec.service == "large"]
    (out / "images.txt").write_text("".join(f"{w.spec.repository}:{w.spec.tag}\n" for w in fleet))
    if large:
        (out / "large.txt").write_text(
            "".join(f"{w.spec.repository}:{w.spec.tag}\n" for w in large)
        )
    _collect_garbage(out, plan, written)
    summary = {
        "generator_version": GENERATOR_VERSION,
        "reused": False,
        "scale": scale,
        "seed": seed,
        "jdk": plan.jdk,
        "real_jars_usable": plan.real_jar_count,
        "generated_lib_jars": plan.generated_lib_jars,
        "layout": str(layout_dir),
        "totals": totals(fleet),
        "build_seconds": round(time.monotonic() - started, 1),
        "plan_seconds": round(planned - started, 1),
        "jars_built": jars_built,
        "layers_built": layers_built,
        "images": [_image_record(w, layout_dir, dir_copies.get(w.spec.ref_name)) for w in fleet],
        "large": [_image_record(w, layout_dir, dir_copies.get(w.spec.ref_name)) for w in large],
    }
    tmp = out / ".fleet.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, out / "fleet.json")
    return summary
