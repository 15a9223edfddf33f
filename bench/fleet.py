#!/usr/bin/env python3
"""The benchmark fleet: 12 Java-style services x 2 versions, built from real files.

    python bench/fleet.py build [--out bench/.work/fleet] [--scale 1.0] [--large]
    python bench/fleet.py push --registry 127.0.0.1:PORT [--out ...] [--large]

See bench/README.md for what the fleet contains and why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetgen.build import build_fleet  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
DEFAULT_SEED = "transship-fleet-1"


def default_out(scale: float) -> Path:
    return WORK_DIR / ("fleet" if scale == 1.0 else f"fleet-scale{scale:g}")


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


def print_summary(summary: dict) -> None:
    t = summary["totals"]
    print(f"fleet: {t['images']} images in {summary['layout']}")
    print(f"  JDK: {summary['jdk']}; usable real jars: {summary['real_jars_usable']}, "
          f"generated library jars: {summary['generated_lib_jars']}")  # fmt: skip
    print(f"  unique compressed blobs:    {t['unique_compressed_blobs']:4d}  "
          f"{human(t['unique_compressed_bytes'])}")  # fmt: skip
    print(f"  unique uncompressed layers: {t['unique_uncompressed_layers']:4d}  "
          f"{human(t['unique_uncompressed_bytes'])}")  # fmt: skip
    print(f"  summed over images: {human(t['summed_compressed_bytes'])} compressed, "
          f"{human(t['summed_uncompressed_bytes'])} uncompressed")  # fmt: skip
    for image in summary["large"]:
        layer = image["layers"][0]
        print(f"  large image {image['name']}: one layer, {human(layer['size'])} compressed, "
              f"{human(layer['tar_size'])} uncompressed")  # fmt: skip
    if summary.get("reused"):
        print("  reused the fleet built before (--refresh rebuilds it from this machine's files)")
        return
    print(f"  built {summary['jars_built']} jars and {summary['layers_built']} layers in "
          f"{summary['build_seconds']} s (planning {summary['plan_seconds']} s)")  # fmt: skip


def load_fleet(out: Path) -> dict:
    path = out / "fleet.json"
    if not path.exists():
        raise SystemExit(f"{path} not found: run `python bench/fleet.py build` first")
    return json.loads(path.read_text())


def push(out: Path, registry: str, with_large: bool, quiet: bool = False) -> float:
    """skopeo copy --preserve-digests of every image of the layout; returns seconds."""
    fleet = load_fleet(out)
    images = fleet["images"] + (fleet["large"] if with_large else [])
    if with_large and not fleet["large"]:
        raise SystemExit("the fleet was built without --large")
    started = time.monotonic()
    for image in images:
        cmd = [
            "skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
            image["skopeo_source"],
            f"docker://{registry}/{image['name']}",
        ]  # fmt: skip
        if not quiet:
            print(f"push {image['name']}", flush=True)
        subprocess.run(cmd, check=True)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate the fleet as an OCI layout (cached)")
    b.add_argument("--out", type=Path)
    b.add_argument(
        "--scale", type=float, default=1.0, help="size factor (0.1: a quick small fleet)"
    )
    b.add_argument("--seed", default=DEFAULT_SEED)
    b.add_argument("--large", action="store_true", help="also build the one-big-layer image")
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    b.add_argument(
        "--refresh",
        action="store_true",
        help="re-read this machine's files and rebuild what changed (default: reuse the fleet)",
    )
    p = sub.add_parser("push", help="push the built fleet to a registry with skopeo")
    p.add_argument("--registry", required=True, help="host:port of a plain-HTTP registry")
    p.add_argument("--out", type=Path)
    p.add_argument("--scale", type=float, default=1.0, help="which fleet, when --out is not given")
    p.add_argument("--large", action="store_true", help="also push the one-big-layer image")
    args = parser.parse_args(argv)
    out = (args.out or default_out(args.scale)).resolve()
    if args.command == "build":
        out.mkdir(parents=True, exist_ok=True)
        print_summary(build_fleet(out, args.scale, args.seed, args.large, args.jobs, args.refresh))
    else:
        seconds = push(out, args.registry, args.large)
        print(f"pushed in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
