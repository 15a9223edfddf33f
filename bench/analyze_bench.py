#!/usr/bin/env python3
"""`transship analyze` of the whole benchmark fleet, side by side with the floor for
"read every layer once": `skopeo copy` of every image into one OCI layout (each distinct
blob downloaded once) plus `tar -tv` over every distinct layer blob.

    python bench/fleet.py build                      # once (cached)
    python bench/analyze_bench.py [--runs 3] [--scale 1.0] [--workers 2] [--keep-json FILE]

Each run starts from the same registry (the fleet is pushed once); runs alternate between
the contenders. Peak RSS is GNU time's %M: the largest process of each run's tree.
Target: analyze within 1.5x of the floor, peak RSS below 200 MB.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from fleet import default_out, load_fleet, push  # noqa: E402
from harness import (  # noqa: E402
    Measurement,
    Registry,
    Tool,
    format_table,
    run_alternating,
    summarize,
    timed_run,
)

TARGET_RATIO = 1.5
TARGET_RSS_KIB = 200 * 1000 * 1000 // 1024


def analyze_command(registry: str, images: list[str], workers: int, output: Path) -> list[str]:
    args = " ".join(shlex.quote(f"docker://{registry}/{name}") for name in images)
    return [
        "bash",
        "-c",
        f"{shlex.quote(sys.executable)} -m transship analyze {args} --insecure "
        f"--workers {workers} --json > {shlex.quote(str(output))}",
    ]


def floor_script(registry: str, fleet: dict, layout: Path, parallel: int, path: Path) -> list[str]:
    """skopeo copy every image into one OCI layout, then list every distinct layer."""
    lines = ["set -euo pipefail", f"rm -rf {shlex.quote(str(layout))}"]
    for image in fleet["images"]:
        ref = image["ref_name"]
        lines.append(
            "skopeo copy --quiet --src-tls-verify=false "
            f"docker://{registry}/{image['name']} oci:{shlex.quote(str(layout))}:{ref}"
        )
    blobs = layout / "blobs" / "sha256"
    layers = sorted({layer["digest"] for image in fleet["images"] for layer in image["layers"]})
    listing = path.with_suffix(".layers")
    listing.write_text("".join(f"{blobs / d.split(':', 1)[1]}\n" for d in layers))
    # tar picks the decompressor itself (-a does not apply to reading): name it per layer.
    lines.append(
        f"xargs -a {shlex.quote(str(listing))} -P {parallel} -I{{}} "
        'sh -c \'if [ "$(head -c2 {} | od -An -tx1 | tr -d " ")" = 1f8b ]; '
        "then tar -tvzf {} >/dev/null; else tar --zstd -tvf {} >/dev/null; fi'"
    )
    path.write_text("\n".join(lines) + "\n")
    return ["bash", str(path)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="which built fleet")
    parser.add_argument("--out", type=Path, help="fleet directory (default from --scale)")
    parser.add_argument("--workers", type=int, default=2, help="analyze --workers")
    parser.add_argument("--keep-json", type=Path, help="keep the last analyze report here")
    args = parser.parse_args(argv)
    if not shutil.which("skopeo"):
        raise SystemExit("skopeo not found: apt-get install skopeo")
    out = (args.out or default_out(args.scale)).resolve()
    fleet = load_fleet(out)
    names = [image["name"] for image in fleet["images"]]
    work = Path(tempfile.mkdtemp(prefix="analyze-bench-"))
    try:
        with Registry() as registry:
            print(f"pushing {len(names)} images to {registry.address} ...", flush=True)
            push(out, registry.address, with_large=False, quiet=True)
            report_path = work / "report.json"
            commands = {
                "transship analyze": analyze_command(
                    registry.address, names, args.workers, report_path
                ),
                "floor: skopeo + tar -tv": floor_script(
                    registry.address, fleet, work / "layout", 1, work / "floor1.sh"
                ),
                "floor: skopeo + tar -tv, 2 at a time": floor_script(
                    registry.address, fleet, work / "layout", 2, work / "floor2.sh"
                ),
            }

            def trial(tool: Tool) -> Measurement:
                r = timed_run(commands[tool.name])
                return Measurement.of(r)

            tools = [Tool(name) for name in commands]
            results = run_alternating(tools, args.runs, trial)
        rows = summarize(results, baseline="floor: skopeo + tar -tv")
        print()
        print(format_table(f"analyze of the fleet ({len(names)} images)", rows, " (vs floor)"))
        _print_fleet_figures(fleet, report_path)
        _print_verdict(rows)
        if args.keep_json and report_path.exists():
            shutil.copy(report_path, args.keep_json)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _print_fleet_figures(fleet: dict, report_path: Path) -> None:
    totals = fleet["totals"]
    print()
    print(
        f"fleet: {totals['unique_compressed_blobs']} distinct blobs, "
        f"{totals['unique_compressed_bytes'] / 1e9:.2f} GB compressed, "
        f"{totals['unique_uncompressed_bytes'] / 1e9:.2f} GB in {totals['unique_uncompressed_layers']} distinct layer tars"
    )
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return
    f = report.get("fleet") or {}
    offload = report.get("offload") or {}
    est = offload.get("compressed_estimate") or {}
    print(
        f"analyze found: {len(report['images'])} images, {len(report['errors'])} errors; "
        f"{(f.get('compressed_unique') or 0) / 1e9:.2f} GB unique compressed; "
        f"cross-image duplicates {(f.get('duplicates') or {}).get('redundant_bytes', 0) / 1e6:.0f} MB; "
        f"offload layer {offload.get('file_count', 0)} files, {(offload.get('layer_bytes') or 0) / 1e6:.0f} MB, "
        f"saves {(est.get('saved_per_release') or 0) / 1e6:.0f} MB per release"
    )


def _print_verdict(rows: list[dict]) -> None:
    by_name = {r["tool"]: r for r in rows}
    ours = by_name.get("transship analyze") or {}
    ratio = ours.get("ratio")
    rss = ours.get("peak_rss_kib")
    if ratio is None or rss is None:
        print("\nverdict: analyze did not complete")
        return
    time_ok = "meets" if ratio <= TARGET_RATIO else "MISSES"
    rss_ok = "meets" if rss <= TARGET_RSS_KIB else "MISSES"
    print(
        f"\nverdict: {ratio:.2f}x the floor ({time_ok} the {TARGET_RATIO}x target); "
        f"peak RSS {rss / 1024:.0f} MiB ({rss_ok} the 200 MB target)"
    )


if __name__ == "__main__":
    sys.exit(main())
