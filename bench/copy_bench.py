#!/usr/bin/env python3
"""Copy benchmark: the fleet from one local registry to an empty one, transship vs skopeo.

    python bench/copy_bench.py [--scale 1.0] [--runs 3] [--maxconn 5]
                               [--tools transship,skopeo-copy,skopeo-sync,curl-floor]
                               [--scenarios fresh,present,large]

Scenarios (each run gets a new, empty destination registry):
  fresh    copy the 24 fleet images into the empty registry
  present  the same copy again when the destination already has everything
  large    one image with a single ~1 GB layer

The source registry's storage is kept in bench/.work/ and filled once per fleet.
Tables go to the screen and to bench/out/copy-<time>.md / .json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import WORK_DIR, default_out, print_summary, push  # noqa: E402
from fleetgen.build import build_fleet  # noqa: E402
from harness import (  # noqa: E402
    Measurement,
    Registry,
    Tool,
    format_table,
    run_alternating,
    summarize,
    timed_run,
    verify_images,
)

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
ALL_TOOLS = ("transship", "skopeo-copy", "skopeo-sync", "curl-floor")
ALL_SCENARIOS = ("fresh", "present", "large")

# ---------------------------------------------------------------------------------------
# How each tool is invoked. A command builder gets the source and destination registries,
# the images ("repo:tag", same name on both sides) and a scratch directory.

CommandBuilder = Callable[[Registry, Registry, list[str], Path], list[str]]


def transship_command(
    src: Registry, dst: Registry, images: list[str], scratch: Path, maxconn: int
) -> list[str]:
    # The interface of `transship copy` this benchmark relies on (it was written against the
    # planned CLI; `transship copy --help` agrees): a config file naming the registries,
    # `--from`/`--to` naming entries of it, `--list` a file of images, `maxconn` in the
    # config. If the flags change, this function is the only place to change.
    config = scratch / "cfg.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            registries:
              src: {{url: "{src.url}", insecure: true}}
              dst: {{url: "{dst.url}", insecure: true}}
            maxconn: {maxconn}
            """
        )
    )
    listing = scratch / "images.txt"
    listing.write_text("".join(f"{name}\n" for name in images))
    return [
        sys.executable, "-m", "transship", "copy",
        "--config", str(config), "--from", "src", "--to", "dst", "--list", str(listing),
    ]  # fmt: skip


def skopeo_copy_command(
    src: Registry, dst: Registry, images: list[str], scratch: Path
) -> list[str]:
    """One `skopeo copy` per image, in one shell (so peak RSS covers every call)."""
    lines = ["set -e"]
    for name in images:
        lines.append(
            "skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false "
            f"--preserve-digests docker://{src.address}/{name} docker://{dst.address}/{name}"
        )
    script = scratch / "skopeo-copy.sh"
    script.write_text("\n".join(lines) + "\n")
    return ["bash", str(script)]


def skopeo_sync_command(
    src: Registry, dst: Registry, images: list[str], scratch: Path
) -> list[str]:
    """One `skopeo sync` of exactly these tags, listed in its YAML source format.

    `--src docker` syncs whole repositories (every tag); the YAML source lists tags, which
    is what an image list needs. Without --scoped the destination keeps the last path
    component of each repository, so `fleet/orders` lands as DST/fleet/orders.
    """
    repos: dict[str, list[str]] = {}
    for name in images:
        repo, tag = name.rsplit(":", 1)
        repos.setdefault(repo, []).append(tag)
    prefixes = {repo.rsplit("/", 1)[0] for repo in repos}
    if len(prefixes) != 1:
        raise ValueError("skopeo sync needs the images under one namespace")
    lines = [f"{src.address}:", "  tls-verify: false", "  images:"]
    lines += [f"    {repo}: [{', '.join(tags)}]" for repo, tags in repos.items()]
    config = scratch / "sync.yaml"
    config.write_text("\n".join(lines) + "\n")
    return [
        "skopeo", "sync", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
        "--preserve-digests", str(config), f"{dst.address}/{prefixes.pop()}",
    ]  # fmt: skip


def curl_floor_command(blob_paths: list[Path]) -> CommandBuilder:
    """The registry's ingest floor: each unique blob uploaded once, 6 at a time, by curl."""

    def build(src: Registry, dst: Registry, images: list[str], scratch: Path) -> list[str]:
        script = scratch / "floor.sh"
        script.write_text(
            textwrap.dedent(
                f"""\
                set -euo pipefail
                upload() {{
                  local file=$1 digest=sha256:$(basename "$1") location
                  location=$(curl -sS -f -X POST -D - -o /dev/null \\
                    "{dst.url}/v2/floor/blobs/blobs/uploads/" |
                    tr -d '\\r' | sed -n 's/^[Ll]ocation: //p')
                  case $location in http*) ;; *) location="{dst.url}$location" ;; esac
                  case $location in *\\?*) sep='&' ;; *) sep='?' ;; esac
                  curl -sS -f -T "$file" -H 'Content-Type: application/octet-stream' \\
                    "$location${{sep}}digest=$digest" -o /dev/null
                }}
                export -f upload
                xargs -a {scratch / "blobs.txt"} -P 6 -n 1 bash -c 'upload "$0"'
                """
            )
        )
        (scratch / "blobs.txt").write_text("".join(f"{p}\n" for p in blob_paths))
        return ["bash", str(script)]

    return build


def transship_unavailable_reason() -> str:
    """Empty when `python -m transship copy` exists here, else why not."""
    try:
        probe = subprocess.run(
            [sys.executable, "-m", "transship", "copy", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"transship copy: {exc}"
    if probe.returncode != 0:
        last = (probe.stderr or probe.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"`transship copy` not available yet ({last[0][:80]})"
    return ""


# ---------------------------------------------------------------------------------------
# the source registry, filled once per fleet


def fleet_fingerprint(fleet: dict) -> str:
    digests = sorted(i["manifest_digest"] for i in fleet["images"] + fleet["large"])
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]


def source_registry(fleet: dict, fleet_dir: Path) -> Registry:
    """A registry holding the fleet (pushed with skopeo the first time); started."""
    storage = WORK_DIR / f"src-registry-{fleet_dir.name}"
    marker = storage / f".pushed-{fleet_fingerprint(fleet)}"
    if storage.exists() and not marker.exists():
        shutil.rmtree(storage)  # a different fleet: start over
    registry = Registry(storage).start()
    if not marker.exists():
        print(f"filling the source registry {registry.address} (skopeo, once per fleet)...")
        seconds = push(fleet_dir, registry.address, with_large=bool(fleet["large"]), quiet=True)
        print(f"  pushed in {seconds:.1f} s")
        expected = {i["name"]: i["manifest_digest"] for i in fleet["images"] + fleet["large"]}
        check = verify_images(registry, expected)
        if check != "ok":
            registry.cleanup()
            raise SystemExit(f"source registry check failed: {check}")
        marker.write_text("")
    return registry


# ---------------------------------------------------------------------------------------
# scenarios


def run_scenario(
    title: str,
    src: Registry,
    images: list[dict],
    tools: list[Tool],
    builders: dict[str, CommandBuilder],
    runs: int,
    prefill: bool,
) -> tuple[str, list[dict]]:
    names = [i["name"] for i in images]
    expected = {i["name"]: i["manifest_digest"] for i in images}
    print(f"\n# {title}", flush=True)

    def trial(tool: Tool) -> Measurement:
        with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp, Registry() as dst:
            scratch = Path(tmp)
            cmd = builders[tool.name](src, dst, names, scratch)
            if prefill:
                first = timed_run(cmd)
                if first.exit_code != 0:
                    return Measurement(first.seconds, first.peak_rss_kib, first.exit_code,
                                       verified="prefill failed", output_tail=first.output_tail)  # fmt: skip
            written_before = dst.written_bytes()
            result = timed_run(cmd)
            written_after = dst.written_bytes()
            uploaded = (
                written_after - written_before
                if written_after is not None and written_before is not None
                else None
            )
            verified = (
                "n/a (blobs only)" if tool.name == "curl-floor" else verify_images(dst, expected)
            )
            return Measurement(
                result.seconds, result.peak_rss_kib, result.exit_code, dst.stored_bytes(),
                uploaded, verified, result.output_tail,
            )  # fmt: skip

    results = run_alternating(tools, runs, trial)
    # Ratios are against the peer (skopeo copy) when it ran, else the first tool that did.
    candidates = ["skopeo-copy"] + [t.name for t in tools if t.name != "curl-floor"]
    available = {t.name for t in tools if t.available}
    baseline = next((name for name in candidates if name in available), None)
    rows = summarize(results, baseline)
    table = format_table(title, rows, f" (vs {baseline})" if baseline else "")
    print("\n" + table, flush=True)
    for row, tool in zip(rows, tools, strict=True):
        row["measurements"] = [asdict(m) for m in results.runs.get(tool.name, [])]
    return table, rows


def unique_blob_paths(fleet: dict, images: list[dict]) -> list[Path]:
    blobs = Path(fleet["layout"]) / "blobs" / "sha256"
    digests: list[str] = []
    for image in images:
        for d in [image["config_digest"], *(layer["digest"] for layer in image["layers"])]:
            if d not in digests:
                digests.append(d)
    return [blobs / d.split(":", 1)[1] for d in digests]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--maxconn", type=int, default=5, help="transship's connection limit")
    parser.add_argument("--tools", default=",".join(ALL_TOOLS))
    parser.add_argument("--scenarios", default=",".join(ALL_SCENARIOS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="fleet build workers")
    args = parser.parse_args(argv)
    tool_names = [t for t in args.tools.split(",") if t]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for name in tool_names:
        if name not in ALL_TOOLS:
            raise SystemExit(f"unknown tool {name!r}; known: {', '.join(ALL_TOOLS)}")
    for name in scenarios:
        if name not in ALL_SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(ALL_SCENARIOS)}")

    fleet_dir = default_out(args.scale)
    fleet_dir.mkdir(parents=True, exist_ok=True)
    fleet = build_fleet(fleet_dir, args.scale, "transship-fleet-1", "large" in scenarios, args.jobs)
    print_summary(fleet)

    reasons = {name: "" for name in tool_names}
    if "transship" in reasons:
        reasons["transship"] = transship_unavailable_reason()
    for name, binary in (
        ("skopeo-copy", "skopeo"),
        ("skopeo-sync", "skopeo"),
        ("curl-floor", "curl"),
    ):
        if name in reasons and not shutil.which(binary):
            reasons[name] = f"{binary} not installed"
    tools = [Tool(name, reasons[name]) for name in tool_names]

    def builders(images: list[dict]) -> dict[str, CommandBuilder]:
        return {
            "transship": lambda s, d, n, p: transship_command(s, d, n, p, args.maxconn),
            "skopeo-copy": skopeo_copy_command,
            "skopeo-sync": skopeo_sync_command,
            "curl-floor": curl_floor_command(unique_blob_paths(fleet, images)),
        }

    load_at_start = os.getloadavg()  # other work on the machine skews the timings
    report: dict = {
        "load_average_at_start": load_at_start,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scale": args.scale,
        "runs": args.runs,
        "maxconn": args.maxconn,
        "fleet_totals": fleet["totals"],
        "fleet_build_seconds": fleet["build_seconds"],
        "scenarios": {},
    }
    tables = []
    src = source_registry(fleet, fleet_dir)
    try:
        plan = {
            "fresh": ("copy fleet registry → empty registry", fleet["images"], tools, False),
            "present": (
                "same copy again, everything already present",
                fleet["images"],
                [t for t in tools if t.name != "curl-floor"],
                True,
            ),
            "large": ("one image, one ~1 GB layer → empty registry", fleet["large"], tools, False),
        }
        for scenario in scenarios:
            title, images, scenario_tools, prefill = plan[scenario]
            table, rows = run_scenario(
                title, src, images, scenario_tools, builders(images), args.runs, prefill
            )
            tables.append(table)
            report["scenarios"][scenario] = rows
    finally:
        src.cleanup()  # keeps its storage for the next benchmark

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (OUT_DIR / f"copy-{stamp}.json").write_text(json.dumps(report, indent=1))
    report["load_average_at_end"] = os.getloadavg()
    header = (
        f"copy benchmark, scale {args.scale}, {args.runs} runs, {os.cpu_count()} cores, "
        f"load average {load_at_start[0]:.1f} at start and {os.getloadavg()[0]:.1f} at end; "
        f"fleet: {fleet['totals']['images']} images, "
        f"{fleet['totals']['unique_compressed_bytes'] / 1e9:.2f} GB unique blobs"
    )
    (OUT_DIR / f"copy-{stamp}.md").write_text(header + "\n\n" + "\n\n".join(tables) + "\n")
    print(f"\nwritten: {OUT_DIR / f'copy-{stamp}.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
