#!/usr/bin/env python3
"""Benchmark of the dedup codec core: tar splitting, the deduplicated content store, and
rebuilding layers from it.

    python bench/dedup_store_bench.py [--levels 3,9,15,19] [--reference]
    python bench/dedup_store_bench.py --oci-layout bench/.work/fleet/layout --exclude large
    python bench/dedup_store_bench.py --tars a.tar b.tar.gz ...

Inputs: by default a set of real tars made once from files on this machine (two JDKs
from /usr/lib/jvm, the jars of /usr/share/java twice with changes, two overlapping halves
of /usr/lib/x86_64-linux-gnu written by different tar writers, the Python library), or
the unique layers of an OCI layout, or given tar / tar.gz files.

For each zstd level, one child process splits every layer (two threads, as a save would)
and writes the store, and another loads it: decompresses the store once and rebuilds every
layer, checking each against its sha256. Each phase reports wall time, CPU time and its
own peak RSS. Reported against: the sum of the layers as compressed blobs (the plain
bundle; pigz -6 for plain tars), and zstd of the concatenated tars (`--reference`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from transship.dedup.incremental import plain_tar_chunks  # noqa: E402
from transship.dedup.layer_recipe import LayerRecipe  # noqa: E402
from transship.dedup.session import DedupLoadSession, DedupSaveSession  # noqa: E402

WORK_DIR = BENCH_DIR / ".work" / "dedup-store"
CHUNK = 1 << 20


# -- inputs ---------------------------------------------------------------------------


def _files_under(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            out.append(Path(dirpath) / name)
    return out


def _python_tar(dest: Path, root: Path, files: list[Path], fmt: int) -> None:
    with tarfile.open(dest, "w", format=fmt) as tar:
        for path in files:
            tar.add(path, arcname=str(path.relative_to(root.parent)), recursive=False)


def _gnu_tar(dest: Path, root: Path, files: list[Path], fmt: str) -> None:
    listing = dest.with_suffix(".list")
    listing.write_text("".join(f"{p.relative_to(root.parent)}\n" for p in files))
    subprocess.run(
        ["tar", "-cf", str(dest), f"--format={fmt}", "-C", str(root.parent), "-T", str(listing)],
        check=True,
    )
    listing.unlink()


def build_default_tars(work: Path) -> list[Path]:
    """Real tars with the overlaps container layers have (made once, then reused)."""
    out_dir = work / "tars"
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = []
    jdk17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")
    temurin = next(Path("/usr/lib/jvm").glob("temurin-*"), None)
    if jdk17.exists():
        plans.append(("jdk17-pax.tar", jdk17, _files_under(jdk17), "py", tarfile.PAX_FORMAT))
    if temurin is not None:
        plans.append(("temurin-gnu.tar", temurin, _files_under(temurin), "gnu", "gnu"))
    java = Path("/usr/share/java")
    if java.exists():
        jars = _files_under(java)
        plans.append(("java-jars-v1.tar", java, jars, "py", tarfile.GNU_FORMAT))
        # v2: a few jars gone, the JDK's own jars added: same contents, other headers.
        extra = [p for p in _files_under(jdk17) if p.suffix == ".jar"] if jdk17.exists() else []
        plans.append(("java-jars-v2.tar", java, jars[3:], "gnu", "posix"))
        if extra:
            plans.append(("jdk-jars.tar", jdk17, extra, "py", tarfile.PAX_FORMAT))
    libs_root = Path("/usr/lib/x86_64-linux-gnu")
    if libs_root.exists():
        libs = _files_under(libs_root)
        cut_a, cut_b = int(len(libs) * 0.65), int(len(libs) * 0.35)
        plans.append(("usrlib-a-gnu.tar", libs_root, libs[:cut_a], "gnu", "gnu"))
        plans.append(("usrlib-b-pax.tar", libs_root, libs[cut_b:], "py", tarfile.PAX_FORMAT))
    for name in ("python3", "python3.11"):
        root = Path("/usr/lib") / name
        if root.exists():
            plans.append((f"{name}-pax.tar", root, _files_under(root), "py", tarfile.PAX_FORMAT))
    paths = []
    for name, root, files, writer, fmt in plans:
        dest = out_dir / name
        if not dest.exists():
            tmp = dest.with_suffix(".tmp")
            if writer == "py":
                _python_tar(tmp, root, files, fmt)  # type: ignore[arg-type]
            else:
                _gnu_tar(tmp, root, files, fmt)  # type: ignore[arg-type]
            tmp.rename(dest)
        paths.append(dest)
    return paths


def oci_layout_layers(layout: Path, exclude: str | None) -> list[Path]:
    """The unique layer blobs of the images in an OCI layout."""
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    seen: dict[str, Path] = {}

    def walk(desc: dict) -> None:
        name = desc.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
        if exclude and re.search(exclude, name):
            return
        doc = json.loads((blobs / desc["digest"].split(":", 1)[1]).read_text())
        for child in doc.get("manifests", []):
            walk(child)
        for layer in doc.get("layers", []):
            seen.setdefault(layer["digest"], blobs / layer["digest"].split(":", 1)[1])

    for desc in index["manifests"]:
        walk(desc)
    return list(seen.values())


def layer_chunks(path: Path):
    def raw():
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    return plain_tar_chunks(raw())


def plain_bundle_size(paths: list[Path], work: Path) -> tuple[int, str]:
    """What a plain bundle of these layers weighs: the blobs as they are when compressed,
    else `pigz -6` of each tar (cached)."""
    total = 0
    how = "compressed blobs as they are"
    for path in paths:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        if gz:
            total += path.stat().st_size
            continue
        how = "pigz -6 of each tar"
        cache = work / "pigz6" / (path.name + ".size")
        if not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            gzip_tool = ["pigz", "-6", "-p", "2"] if shutil.which("pigz") else ["gzip", "-6"]
            size = 0
            with (
                open(path, "rb") as f,
                subprocess.Popen([*gzip_tool, "-c"], stdin=f, stdout=subprocess.PIPE) as proc,
            ):
                assert proc.stdout is not None
                while chunk := proc.stdout.read(CHUNK):
                    size += len(chunk)
            cache.write_text(str(size))
        total += int(cache.read_text())
    return total, how


# -- child phases -----------------------------------------------------------------------


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_save(args: argparse.Namespace) -> dict:
    paths = [Path(p) for p in args.inputs]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save = DedupSaveSession(out / "work", level=args.level, threads=args.threads)
    if args.order == "tar":
        save.collector.ordered = lambda: list(range(len(save.collector._names)))  # type: ignore[method-assign]
    t0, c0 = time.perf_counter(), _cpu()

    def split(index_path: tuple[int, Path]) -> dict:
        i, path = index_path
        digest = f"layer-{i:03d}"
        layer = save.open_layer(digest)
        for chunk in layer_chunks(path):
            layer.write(chunk)
        recipe = layer.finish()
        with open(out / f"{digest}.recipe", "wb") as f:
            size = recipe.write(f)
        return {
            "layer": digest,
            "path": str(path),
            "tar_size": recipe.tar_size,
            "tar_sha256": recipe.tar_sha256.hex(),
            "contents": len(recipe),
            "content_bytes": sum(recipe.sizes),
            "skeleton_size": recipe.skeleton_size,
            "skeleton_compressed": recipe.skeleton_compressed_size,
            "recipe_bytes": size,
        }

    with ThreadPoolExecutor(args.threads) as pool:
        layers = list(pool.map(split, enumerate(paths)))
    split_wall, split_cpu = time.perf_counter() - t0, _cpu() - c0
    rss_after_split = _peak_rss_mib()
    t1, c1 = time.perf_counter(), _cpu()
    with open(out / "contents.store", "wb") as f:
        index = save.write_store(f)
    store_wall, store_cpu = time.perf_counter() - t1, _cpu() - c1
    result = {
        "layers": layers,
        "unique_contents": len(index),
        "unique_content_bytes": sum(index.lengths),
        "store_bytes": (out / "contents.store").stat().st_size,
        "frames": len(index.frames),
        "split_wall": split_wall,
        "split_cpu": split_cpu,
        "store_wall": store_wall,
        "store_cpu": store_cpu,
        "peak_rss_split_mib": rss_after_split,
        "peak_rss_mib": _peak_rss_mib(),
    }
    save.close()
    (out / "save.json").write_text(json.dumps(result))
    return result


def phase_load(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    saved = json.loads((out / "save.json").read_text())
    t0, c0 = time.perf_counter(), _cpu()
    recipes = []
    for layer in saved["layers"]:
        with open(out / f"{layer['layer']}.recipe", "rb") as f:
            recipes.append(LayerRecipe.read(f, layer["layer"]))
    load = DedupLoadSession(out / "contents.store", temp_dir=out)
    load.prepare(recipes)
    prepare_wall, prepare_cpu = time.perf_counter() - t0, _cpu() - c0
    t1, c1 = time.perf_counter(), _cpu()

    def rebuild(recipe: LayerRecipe) -> int:
        h = hashlib.sha256()
        n = 0
        for chunk in load.rebuild(recipe):
            h.update(chunk)
            n += len(chunk)
        expected = next(x for x in saved["layers"] if x["layer"] == recipe.layer_digest)
        if h.hexdigest() != expected["tar_sha256"] or n != expected["tar_size"]:
            raise SystemExit(f"{recipe.layer_digest}: rebuilt tar differs")
        return n

    with ThreadPoolExecutor(args.threads) as pool:
        total = sum(pool.map(rebuild, recipes))
    rebuild_wall, rebuild_cpu = time.perf_counter() - t1, _cpu() - c1
    load.close()
    result = {
        "rebuilt_bytes": total,
        "prepare_wall": prepare_wall,
        "prepare_cpu": prepare_cpu,
        "rebuild_wall": rebuild_wall,
        "rebuild_cpu": rebuild_cpu,
        "peak_rss_mib": _peak_rss_mib(),
    }
    (out / "load.json").write_text(json.dumps(result))
    return result


# -- driver ---------------------------------------------------------------------------


def run_child(
    phase: str, inputs: list[Path], out: Path, level: int, order: str, threads: int
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--out",
        str(out),
        "--level",
        str(level),
        "--order",
        order,
        "--threads",
        str(threads),
    ]
    if phase == "save":
        cmd += ["--inputs", *map(str, inputs)]
    subprocess.run(cmd, check=True)
    return json.loads((out / f"{phase}.json").read_text())


def zstd_reference(inputs: list[Path], args: str) -> tuple[int, float]:
    """Size and wall time of `zstd <args>` over the concatenated plain tars."""
    t0 = time.perf_counter()
    cat = subprocess.Popen(
        [sys.executable, __file__, "--phase", "cat", "--inputs", *map(str, inputs)],
        stdout=subprocess.PIPE,
    )
    size = 0
    with subprocess.Popen(
        ["zstd", *args.split(), "-c"], stdin=cat.stdout, stdout=subprocess.PIPE
    ) as z:
        assert cat.stdout is not None and z.stdout is not None
        cat.stdout.close()
        while chunk := z.stdout.read(CHUNK):
            size += len(chunk)
    cat.wait()
    return size, time.perf_counter() - t0


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tars", nargs="*", help="tar or tar.gz files to use")
    parser.add_argument("--oci-layout", help="use the unique layers of an OCI layout")
    parser.add_argument("--exclude", help="with --oci-layout: skip images whose ref name matches")
    parser.add_argument("--levels", default="3,9,15,19")
    parser.add_argument(
        "--order-compare", action="store_true", help="also run level 3 in tar order"
    )
    parser.add_argument(
        "--reference", action="store_true", help="zstd -19 --long=31 -T2 of the tars"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default=str(WORK_DIR))
    parser.add_argument("--json", help="write all results here")
    # child mode
    parser.add_argument("--phase", choices=["save", "load", "cat"])
    parser.add_argument("--out")
    parser.add_argument("--level", type=int, default=3)
    parser.add_argument("--order", default="similar", choices=["similar", "tar"])
    parser.add_argument("--inputs", nargs="*")
    args = parser.parse_args()
    if args.phase == "save":
        phase_save(args)
        return
    if args.phase == "load":
        phase_load(args)
        return
    if args.phase == "cat":  # the plain tars, concatenated, for the zstd reference
        for path in args.inputs:
            for chunk in layer_chunks(Path(path)):
                sys.stdout.buffer.write(chunk)
        return

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.oci_layout:
        inputs = oci_layout_layers(Path(args.oci_layout), args.exclude)
    elif args.tars:
        inputs = [Path(p) for p in args.tars]
    else:
        inputs = build_default_tars(work)
    plain, plain_how = plain_bundle_size(inputs, work)
    print(f"inputs: {len(inputs)} layers; plain bundle ({plain_how}): {mb(plain)}")

    runs = [(int(level), "similar") for level in args.levels.split(",") if level]
    if args.order_compare:
        runs.append((3, "tar"))
    results = []
    for level, order in runs:
        with tempfile.TemporaryDirectory(dir=work, prefix="run-") as tmp:
            out = Path(tmp)
            save = run_child("save", inputs, out, level, order, args.threads)
            load = run_child("load", inputs, out, level, order, args.threads)
        results.append({"level": level, "order": order, "save": save, "load": load})
        tar_bytes = sum(x["tar_size"] for x in save["layers"])
        content_bytes = sum(x["content_bytes"] for x in save["layers"])
        skeleton = sum(x["skeleton_size"] for x in save["layers"])
        recipes = sum(x["recipe_bytes"] for x in save["layers"])
        bundle = save["store_bytes"] + recipes
        if len(results) == 1:
            print(
                f"tars {mb(tar_bytes)}: contents {mb(content_bytes)} in "
                f"{sum(x['contents'] for x in save['layers'])} files, "
                f"unique {mb(save['unique_content_bytes'])} in {save['unique_contents']} "
                f"(dedup ratio {content_bytes / max(1, save['unique_content_bytes']):.2f}x); "
                f"skeleton {mb(skeleton)} -> recipes {mb(recipes)}"
            )
            print(
                f"split: {save['split_wall']:.1f} s wall, {save['split_cpu']:.1f} s CPU "
                f"({tar_bytes / save['split_cpu'] / 1e6:.0f} MB/s per core incl. decompression "
                f"and spill), peak RSS {save['peak_rss_split_mib']:.0f} MiB"
            )
        print(
            f"level {level:2d} {order:7s}: store {mb(save['store_bytes'])} + recipes "
            f"= {mb(bundle)} = {bundle / plain:.3f}x plain; "
            f"compress {save['store_wall']:.1f} s wall / {save['store_cpu']:.1f} s CPU "
            f"({save['unique_content_bytes'] / save['store_wall'] / 1e6:.0f} MB/s), "
            f"save peak RSS {save['peak_rss_mib']:.0f} MiB; "
            f"load: decompress {load['prepare_wall']:.1f} s / {load['prepare_cpu']:.1f} s CPU, "
            f"rebuild {load['rebuild_wall']:.1f} s / {load['rebuild_cpu']:.1f} s CPU "
            f"({load['rebuilt_bytes'] / max(1e-9, load['rebuild_wall']) / 1e6:.0f} MB/s), "
            f"load peak RSS {load['peak_rss_mib']:.0f} MiB"
        )
    report = {"inputs": [str(p) for p in inputs], "plain_bundle": plain, "runs": results}
    if args.reference:
        # Over the unique tars (a tar gzipped two ways is one tar), as the plain floor.
        by_tar = {x["tar_sha256"]: Path(x["path"]) for x in results[0]["save"]["layers"]}
        unique_tars = list(by_tar.values())
        for zargs in ("-3 --long=27 -T2", "-19 --long=31 -T2"):
            size, seconds = zstd_reference(unique_tars, zargs)
            print(
                f"reference zstd {zargs} of the {len(unique_tars)} unique tars concatenated: "
                f"{mb(size)} in {seconds:.0f} s"
            )
            report[f"zstd {zargs}"] = {"bytes": size, "seconds": seconds}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
