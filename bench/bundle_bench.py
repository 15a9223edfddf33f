#!/usr/bin/env python3
"""Offline-bundle benchmark: transship save/load against the ways people do it with skopeo.

    python bench/bundle_bench.py [--scale 1.0] [--runs 3] [--maxconn 5]
        [--tools transship,transship-dedup,transship-dedup-max,skopeo-archive,skopeo-oci]
        [--scenarios save,load,incremental,dedup]

Tools:
  transship        transship save/load, blobs as they are (--codec raw)
  transship-dedup  the same with --codec dedup (only with the dedup scenario): layers
                   whose rebuild saves too little per second of work stay as they are
  transship-dedup-max  --codec dedup --dedup-effort max: every layer rebuilt (smallest)
  skopeo-archive   route (a), "docker save | gzip": per image `skopeo copy docker://...
                   docker-archive:X.tar:name` then `gzip -6`; loaded back per image by
                   `gzip -dc` to a tar and `skopeo copy docker-archive:...`
  skopeo-oci       route (b): every image into one OCI layout (`skopeo copy ... oci:DIR:ref`,
                   blobs stored once); loaded back per image from the layout

Scenarios (tools alternate, medians of --runs; each load gets a new empty registry):
  save         the 24 fleet images from a local registry into a bundle / archives / layout
  load         that output into an empty registry (digests checked against the source)
  incremental  a full bundle of the v1 images, then a bundle of the v2 images --since it,
               next to the bytes of the blobs that are new in v2
  dedup        transship-dedup next to raw in the three scenarios above, and the reference
               `zstd -19 --long=31 -T2` of all unique layer tars (cached in bench/.work)

The source registry's storage is kept in bench/.work/ and filled once per fleet (shared
with copy_bench.py). Tables go to the screen and to bench/out/bundle-<time>.md / .json.
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bundle_metrics import (  # noqa: E402
    OCI_MANIFEST,
    changed_digests,
    decompressor_for,
    evaluate_targets,
    layout_ref_digests,
    markdown_table,
    met_label,
    new_blobs,
    unique_layers,
)
from copy_bench import source_registry  # noqa: E402
from fleet import WORK_DIR, default_out, print_summary  # noqa: E402
from fleetgen.build import build_fleet  # noqa: E402
from harness import (  # noqa: E402
    Measurement,
    Registry,
    Results,
    Tool,
    fmt_bytes,
    fmt_kib,
    format_table,
    median,
    run_alternating,
    summarize,
    timed_run,
    verify_images,
)

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
BENCH_WORK = WORK_DIR / "bundle-bench"
ALL_TOOLS = ("transship", "transship-dedup", "transship-dedup-max", "skopeo-archive", "skopeo-oci")
DEDUP_TOOLS = ("transship-dedup", "transship-dedup-max")
TRANSSHIP_TOOLS = ("transship", *DEDUP_TOOLS)
ALL_SCENARIOS = ("save", "load", "incremental", "dedup")
ZSTD_REFERENCE_ARGS = "-19 --long=31 -T2"
CODEC_ARGS = {
    "transship": ["--codec", "raw"],
    "transship-dedup": ["--codec", "dedup"],
    "transship-dedup-max": ["--codec", "dedup", "--dedup-effort", "max"],
}
ROUTE_LABELS = {
    "transship": "transship save (raw)",
    "transship-dedup": "transship save --codec dedup",
    "transship-dedup-max": "transship save --codec dedup --dedup-effort max",
    "skopeo-archive": "(a) skopeo → docker-archive + gzip -6, per image",
    "skopeo-oci": "(b) skopeo → one OCI layout",
}
LOAD_LABELS = {
    "transship": "transship load (raw)",
    "transship-dedup": "transship load (dedup)",
    "transship-dedup-max": "transship load (dedup, effort max)",
    "skopeo-archive": "(a) gzip -dc + skopeo copy docker-archive:, per image",
    "skopeo-oci": "(b) skopeo copy oci:DIR:ref, per image",
}

# ---------------------------------------------------------------------------------------
# the run's shared state


@dataclass
class Bench:
    fleet: dict
    src: Registry
    work: Path  # this invocation's scratch directory, removed at the end
    maxconn: int
    runs: int
    tools: dict[str, Tool]  # shared by every scenario: a tool that fails for good stays out
    saved: dict[str, Path] = field(default_factory=dict)  # tool -> latest full save output
    resaves: dict[str, list[float]] = field(default_factory=dict)  # dedup, recipes remembered
    counter: int = 0

    def fresh_dir(self, label: str) -> Path:
        self.counter += 1
        path = self.work / f"{self.counter:03d}-{label}"
        path.mkdir(parents=True)
        return path

    @property
    def images(self) -> list[dict]:
        return self.fleet["images"]

    def expected(self, images: list[dict] | None = None) -> dict[str, str]:
        return {i["name"]: i["manifest_digest"] for i in (images or self.images)}


def tree_bytes(path: Path) -> int:
    """Sum of the sizes of the files under `path`: what a bundle/archive/layout occupies."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def meta_file(out: Path) -> Path:
    metas = sorted(out.rglob("*.meta.json"))
    if len(metas) != 1:
        raise RuntimeError(f"expected one bundle meta under {out}, found {len(metas)}")
    return metas[0]


def last_line(text: str) -> str:
    """The last line of a command's output, as a short reason (`error: ` dropped)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1].removeprefix("error: ") if lines else "no output"
    return line if len(line) <= 100 else line[:99] + "…"


def disable(tool: Tool, why: str) -> None:
    """Take a tool out of the rest of the run; its columns say why."""
    if not tool.reason:
        tool.reason = why
        print(f"  {tool.name}: {why}", flush=True)


SKIPPED = Measurement(0.0, None, -1, verified="skipped")

# ---------------------------------------------------------------------------------------
# commands. Each save command writes everything into `out`, an empty directory.


def transship_save_command(
    bench: Bench, tool: str, images: list[dict], out: Path, since: Path | None = None
) -> list[str]:
    listing = out.parent / f"{out.name}.images.txt"
    listing.write_text("".join(f"{i['name']}\n" for i in images))
    cmd = [
        sys.executable,
        "-m",
        "transship",
        "save",
        "--from",
        bench.src.address,
        "-o",
        str(out),
        "--list",
        str(listing),
        "--maxconn",
        str(bench.maxconn),
        *CODEC_ARGS[tool],
    ]
    if since:
        cmd += ["--since", str(since)]
    return cmd


def archive_save_command(bench: Bench, images: list[dict], out: Path) -> list[str]:
    """Route (a): one docker-archive per image, then gzip -6 (as `docker save | gzip`)."""
    lines = ["set -euo pipefail"]
    for image in images:
        tar = out / f"{image['ref_name']}.tar"
        lines.append(
            "skopeo copy --quiet --src-tls-verify=false "
            f"docker://{bench.src.address}/{image['name']} docker-archive:{tar}:{image['name']}"
        )
        lines.append(f"gzip -6 {tar}")
    return _script(out.parent / f"{out.name}.sh", lines)


def oci_save_command(bench: Bench, images: list[dict], out: Path) -> list[str]:
    """Route (b): every image into one OCI layout; skopeo stores each blob once.

    --preserve-digests only for OCI-typed images: skopeo 1.9 writes a Docker-typed manifest
    into a layout with it, but cannot read such an entry back (`no descriptor found`), so
    Docker-typed images are converted to OCI manifests (new digests), the usable way.
    """
    lines = ["set -euo pipefail"]
    for image in images:
        keep = "--preserve-digests " if image["manifest_media_type"] == OCI_MANIFEST else ""
        lines.append(
            f"skopeo copy --quiet --src-tls-verify=false {keep}"
            f"docker://{bench.src.address}/{image['name']} oci:{out}/layout:{image['ref_name']}"
        )
    return _script(out.parent / f"{out.name}.sh", lines)


def save_command(bench: Bench, tool: str, images: list[dict], out: Path) -> list[str]:
    if tool in TRANSSHIP_TOOLS:
        return transship_save_command(bench, tool, images, out)
    if tool == "skopeo-archive":
        return archive_save_command(bench, images, out)
    return oci_save_command(bench, images, out)


def load_command(
    bench: Bench, tool: str, saved: Path, dst: Registry, images: list[dict], scratch: Path
) -> list[str]:
    if tool in TRANSSHIP_TOOLS:
        return [
            sys.executable,
            "-m",
            "transship",
            "load",
            str(meta_file(saved)),
            "--to",
            dst.address,
            "--maxconn",
            str(bench.maxconn),
        ]
    lines = ["set -euo pipefail"]
    for image in images:
        target = f"docker://{dst.address}/{image['name']}"
        if tool == "skopeo-archive":
            # skopeo 1.9 reads only uncompressed docker-archives (not .tar.gz, not a pipe)
            tar = scratch / "image.tar"
            lines.append(f"gzip -dc {saved / image['ref_name']}.tar.gz > {tar}")
            lines.append(
                f"skopeo copy --quiet --dest-tls-verify=false docker-archive:{tar} {target}"
            )
            lines.append(f"rm -f {tar}")
        else:
            lines.append(
                "skopeo copy --quiet --dest-tls-verify=false --preserve-digests "
                f"oci:{saved}/layout:{image['ref_name']} {target}"
            )
    return _script(scratch / "load.sh", lines)


def cold_cache_env() -> dict[str, str]:
    """The environment of a save: an empty ~/.cache, so that no dedup save reuses the
    gzip checks of an earlier run (a second save of the same layers skips them; this
    benchmark measures the first)."""
    folder = BENCH_WORK / "xdg-cache"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return {**os.environ, "XDG_CACHE_HOME": str(folder)}


def _script(path: Path, lines: list[str]) -> list[str]:
    path.write_text("\n".join(lines) + "\n")
    return ["bash", str(path)]


def transship_unavailable_reason() -> str:
    """Empty when `python -m transship save` and `load` exist here, else why not."""
    for command in ("save", "load"):
        try:
            probe = subprocess.run(
                [sys.executable, "-m", "transship", command, "--help"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"transship {command}: {exc}"
        if probe.returncode != 0:
            return f"`transship {command}` not available ({last_line(probe.stderr or probe.stdout)[:80]})"
    return ""


# ---------------------------------------------------------------------------------------
# checks of what a save wrote


def oci_layout_digests(out: Path) -> dict[str, str]:
    return layout_ref_digests(json.loads((out / "layout" / "index.json").read_text()))


def check_saved(bench: Bench, tool: str, out: Path, images: list[dict]) -> str:
    if tool == "skopeo-oci":
        by_ref = oci_layout_digests(out)
        actual = {i["name"]: by_ref.get(i["ref_name"]) for i in images}
        changed = changed_digests(bench.expected(images), actual)
        if not changed:
            return "digests kept"
        return f"{len(changed)} of {len(images)} manifests converted to OCI (new digests)"
    if tool == "skopeo-archive":
        return "manifests not kept (docker-archive)"
    return ""


# ---------------------------------------------------------------------------------------
# scenarios


def ensure_saved(bench: Bench, tool: Tool) -> Path | None:
    """The tool's full save of the fleet: the latest timed one, or made now (untimed)."""
    if tool.name in bench.saved:
        return bench.saved[tool.name]
    if not tool.available:
        return None
    print(f"  preparing {tool.name}'s output for loading (untimed)...", flush=True)
    out = bench.fresh_dir(f"save-{tool.name}")
    result = timed_run(save_command(bench, tool.name, bench.images, out), env=cold_cache_env())
    if result.exit_code != 0:
        disable(tool, f"save failed: {last_line(result.output_tail)}")
        shutil.rmtree(out, ignore_errors=True)
        return None
    bench.saved[tool.name] = out
    return out


def keep_saved(bench: Bench, tool: str, out: Path) -> None:
    """The latest output is what the load scenario loads; older ones only take space."""
    old = bench.saved.get(tool)
    bench.saved[tool] = out
    if old:
        shutil.rmtree(old, ignore_errors=True)


def scenario_save(bench: Bench, tools: list[Tool]) -> dict:
    title = f"save the fleet ({len(bench.images)} images) from a registry to files"
    print(f"\n# {title}", flush=True)

    def trial(tool: Tool) -> Measurement:
        if not tool.available:
            return SKIPPED
        out = bench.fresh_dir(f"save-{tool.name}")
        env = cold_cache_env()
        result = timed_run(save_command(bench, tool.name, bench.images, out), env=env)
        if result.exit_code == 0 and tool.name in DEDUP_TOOLS:
            resave(bench, tool.name, env)
        if result.exit_code != 0:
            if tool.name in DEDUP_TOOLS:  # report, go on with the others
                disable(tool, f"not available: {last_line(result.output_tail)}")
            shutil.rmtree(out, ignore_errors=True)
            return Measurement.of(result)
        measurement = Measurement.of(
            result,
            stored_bytes=tree_bytes(out),
            verified=check_saved(bench, tool.name, out, bench.images),
        )
        keep_saved(bench, tool.name, out)
        return measurement

    results = run_alternating(tools, bench.runs, trial)
    available = [t.name for t in tools if t.available]
    baseline = "skopeo-archive" if "skopeo-archive" in available else next(iter(available), None)
    rows = summarize(results, baseline)
    base = next((r for r in rows if r["tool"] == baseline and r.get("stored_bytes")), None)
    table = save_table(title, rows, base)
    print("\n" + table, flush=True)
    resaves = {tool: median(times) for tool, times in bench.resaves.items()}
    return {"title": title, "table": table, "rows": _with_runs(rows, results), "resaves": resaves}


def resave(bench: Bench, tool: str, env: dict[str, str]) -> None:
    """The same dedup save again, with the gzip checks the first one remembered (as the
    monthly full bundle after the daily ones): timed, output dropped."""
    out = bench.fresh_dir(f"resave-{tool}")
    result = timed_run(save_command(bench, tool, bench.images, out), env=env)
    if result.exit_code == 0:
        bench.resaves.setdefault(tool, []).append(result.seconds)
        print(f"  {tool}: saved again with its gzip checks remembered in {result.seconds:.1f} s")
    shutil.rmtree(out, ignore_errors=True)


def save_table(title: str, rows: list[dict], base: dict | None) -> str:
    short = {"skopeo-archive": "(a)", "transship": "raw"}
    vs = f" (vs {short.get(base['tool'], base['tool'])})" if base else ""
    headers = [
        "route",
        "time (median)",
        "time" + vs,
        "output",
        "size" + vs,
        "peak RSS",
        "check",
        "runs",
    ]
    body = []
    for r in rows:
        label = ROUTE_LABELS[r["tool"]]
        if not r["available"]:
            body.append([label, "not available", "", "", "", "", r["reason"], ""])
            continue
        size_ratio = (
            f"{r['stored_bytes'] / base['stored_bytes']:.3f}x"
            if base and r.get("stored_bytes")
            else "-"
        )
        body.append(
            [
                label,
                _seconds(r),
                _ratio_text(r),
                fmt_bytes(r["stored_bytes"]),
                size_ratio,
                fmt_kib(r["peak_rss_kib"]),
                "; ".join(r["verified"]),
                _runs_text(r),
            ]
        )
    return f"## {title}\n\n" + markdown_table(headers, body)


def scenario_load(bench: Bench, tools: list[Tool]) -> dict:
    title = "load the saved fleet into an empty registry"
    print(f"\n# {title}", flush=True)
    for tool in tools:
        ensure_saved(bench, tool)
    layout_expected: dict[str, str] = {}
    if "skopeo-oci" in bench.saved:
        by_ref = oci_layout_digests(bench.saved["skopeo-oci"])
        layout_expected = {i["name"]: by_ref.get(i["ref_name"], "") for i in bench.images}

    def trial(tool: Tool) -> Measurement:
        saved = bench.saved.get(tool.name)
        if not tool.available or saved is None:
            return SKIPPED
        scratch = bench.fresh_dir(f"load-{tool.name}")
        try:
            with Registry() as dst:
                cmd = load_command(bench, tool.name, saved, dst, bench.images, scratch)
                before = dst.written_bytes()
                result = timed_run(cmd)
                after = dst.written_bytes()
                check = verify_images(dst, bench.expected())
                if tool.name == "skopeo-oci" and check != "ok":
                    same = verify_images(dst, layout_expected) == "ok"
                    check += " from the source; all as in the layout" if same else ""
                if tool.name == "skopeo-archive" and check != "ok":
                    check += " (docker-archive keeps no manifests)"
                return Measurement(
                    result.seconds,
                    result.peak_rss_kib,
                    result.exit_code,
                    dst.stored_bytes(),
                    None if before is None or after is None else after - before,
                    check,
                    result.output_tail,
                )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    results = run_alternating(tools, bench.runs, trial)
    baseline = "skopeo-oci" if _ran(tools, "skopeo-oci") else None
    rows = summarize(results, baseline)
    for row in rows:
        row["label"] = LOAD_LABELS[row["tool"]]
    labelled = [dict(r, tool=r["label"]) for r in rows]
    table = format_table(title, labelled, " (vs (b))" if baseline else "")
    print("\n" + table, flush=True)
    return {"title": title, "table": table, "rows": _with_runs(rows, results)}


def scenario_incremental(bench: Bench, tools: list[Tool]) -> dict:
    v1 = [i for i in bench.images if i["version"] == "v1"]
    v2 = [i for i in bench.images if i["version"] == "v2"]
    new = new_blobs(v1, v2, config_sizes(bench.fleet))
    new_bytes = sum(new.values())
    title = f"incremental: the {len(v2)} v2 images --since a full bundle of the {len(v1)} v1 images"
    print(f"\n# {title}", flush=True)
    print(f"  blobs new in v2 (layers and configs that v1 lacks): {fmt_bytes(new_bytes)}")
    parents: dict[str, Path] = {}
    latest: dict[str, Path] = {}
    for tool in tools:
        if not tool.available:
            continue
        print(f"  {tool.name}: full bundle of v1 (untimed)...", flush=True)
        out = bench.fresh_dir(f"v1-{tool.name}")
        result = timed_run(transship_save_command(bench, tool.name, v1, out), env=cold_cache_env())
        if result.exit_code != 0:
            disable(tool, f"not available: v1 save failed: {last_line(result.output_tail)}")
            continue
        parents[tool.name] = meta_file(out)

    def trial(tool: Tool) -> Measurement:
        if not tool.available or tool.name not in parents:
            return SKIPPED
        out = bench.fresh_dir(f"v2-{tool.name}")
        cmd = transship_save_command(bench, tool.name, v2, out, since=parents[tool.name])
        result = timed_run(cmd, env=cold_cache_env())
        if result.exit_code != 0:
            shutil.rmtree(out, ignore_errors=True)
            return Measurement.of(result)
        old = latest.get(tool.name)
        latest[tool.name] = out
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return Measurement.of(result, stored_bytes=tree_bytes(out))

    results = run_alternating(tools, bench.runs, trial)
    rows = summarize(results)
    for row in rows:  # does the pair load? v1 first, then v2 on top, v2 digests checked
        if row["tool"] in latest and row["tool"] in parents:
            meta = meta_file(latest[row["tool"]])
            row["meta_bytes"] = meta.stat().st_size
            row["blobs_carried"] = blobs_carried(meta)
            row["verified"] = [
                check_incremental(bench, parents[row["tool"]], latest[row["tool"]], v2)
            ]
    table = incremental_table(title, rows, new)
    print("\n" + table, flush=True)
    return {
        "title": title,
        "table": table,
        "rows": _with_runs(rows, results),
        "new_v2_bytes": new_bytes,
    }


def blobs_carried(meta: Path) -> tuple[int, int] | None:
    """(count, bytes) of the blobs a bundle's meta lists as stored in it (None if unreadable)."""
    try:
        blobs = json.loads(meta.read_text())["blobs"]
        return len(blobs), sum(int(b["size"]) for b in blobs)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_incremental(bench: Bench, parent_meta: Path, child: Path, v2: list[dict]) -> str:
    """Load the v1 bundle, then the v2 one on top, into an empty registry; check v2."""
    with Registry() as dst:
        for meta in (parent_meta, meta_file(child)):
            cmd = [sys.executable, "-m", "transship", "load", str(meta), "--to", dst.address]
            result = timed_run(cmd)
            if result.exit_code != 0:
                return f"load failed: {last_line(result.output_tail)}"
        check = verify_images(dst, bench.expected(v2))
    return f"v1 then v2 loaded: {check}"


def _count_bytes(pair: tuple[int, int] | list[int] | None) -> str:
    return "-" if not pair else f"{pair[0]}, {fmt_bytes(pair[1])}"


def incremental_table(title: str, rows: list[dict], new: dict[str, int]) -> str:
    new_bytes = sum(new.values())
    headers = [
        "bundle",
        "time (median)",
        "size",
        "of which meta file",
        "blobs it holds",
        "vs new-in-v2 blobs",
        "vs layer-level",
        "peak RSS",
        "check",
        "runs",
    ]
    layer_level = next(
        (r.get("stored_bytes") for r in rows if r["tool"] == "transship" and r["available"]), None
    )
    body = []
    for r in rows:
        label = (
            "layer-level (raw)"
            if r["tool"] == "transship"
            else "file-level (" + " ".join(CODEC_ARGS[r["tool"]]) + ")"
        )
        if not r["available"]:
            body.append([label, "not available", "", "", "", "", "", "", r["reason"], ""])
            continue
        size = r.get("stored_bytes")
        body.append(
            [
                label,
                _seconds(r),
                fmt_bytes(size),
                fmt_bytes(r.get("meta_bytes")),
                _count_bytes(r.get("blobs_carried")),
                f"{size / new_bytes:.4f}x" if size and new_bytes else "-",
                f"{size / layer_level:.3f}x" if size and layer_level else "-",
                fmt_kib(r["peak_rss_kib"]),
                "; ".join(r["verified"]),
                _runs_text(r),
            ]
        )
    body.append(
        [
            "blobs new in v2 (from fleet.json)",
            "",
            fmt_bytes(new_bytes),
            "",
            _count_bytes((len(new), new_bytes)),
            "1.0000x",
            "",
            "",
            "",
            "",
        ]
    )
    return f"## {title}\n\n" + markdown_table(headers, body)


def config_sizes(fleet: dict) -> dict[str, int]:
    blobs = Path(fleet["layout"]) / "blobs" / "sha256"
    return {
        i["config_digest"]: (blobs / i["config_digest"].split(":", 1)[1]).stat().st_size
        for i in fleet["images"]
    }


# ---------------------------------------------------------------------------------------
# the compression reference (slow: cached)


def zstd_reference(bench: Bench) -> dict:
    """`zstd -19 --long=31 -T2` of every unique layer tar, concatenated (no dedup)."""
    layers = unique_layers(bench.images)
    key = hashlib.sha256(
        "\n".join([ZSTD_REFERENCE_ARGS, *(layer["diff_id"] for layer in layers)]).encode()
    ).hexdigest()[:16]
    cache = BENCH_WORK / f"zstd-reference-{key}.json"
    if cache.exists():
        result = json.loads(cache.read_text())
        print(f"  zstd reference: cached in {cache.name}", flush=True)
        return result | {"cached": True}
    print(
        f"  zstd {ZSTD_REFERENCE_ARGS} of {len(layers)} unique layer tars (slow, cached once)...",
        flush=True,
    )
    blobs = Path(bench.fleet["layout"]) / "blobs" / "sha256"
    lines = ["set -euo pipefail", "{"]
    for layer in layers:
        path = blobs / layer["digest"].split(":", 1)[1]
        with open(path, "rb") as fh:
            lines.append("  " + " ".join([*decompressor_for(fh.read(4)), str(path)]))
    lines.append(f"}} | zstd {ZSTD_REFERENCE_ARGS} -q -c | wc -c")
    script = bench.work / "zstd-reference.sh"
    result = timed_run(_script(script, lines))
    if result.exit_code != 0:
        return {"error": last_line(result.output_tail)}
    reference = {
        "args": ZSTD_REFERENCE_ARGS,
        "tars": len(layers),
        "tar_bytes": sum(layer["tar_size"] for layer in layers),
        "bytes": int(result.output_tail.split()[-1]),
        "seconds": round(result.seconds, 1),
        "peak_rss_kib": result.peak_rss_kib,
        "load_average": os.getloadavg()[0],
    }
    BENCH_WORK.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(reference, indent=1))
    return reference | {"cached": False}


def _resave_text(seconds: float | None) -> str:
    return "not measured" if seconds is None else f"{seconds:.2f} s"


def dedup_table(results: dict, reference: dict) -> str:
    def row(scenario: str, tool: str) -> dict | None:
        rows = results.get(scenario, {}).get("rows", [])
        return next((r for r in rows if r["tool"] == tool), None)

    reasons: dict[str, None] = {}  # each reason once, under the table

    def text(r: dict | None, key: str) -> str:
        if r is None:
            return "not measured"
        if not r["available"]:
            reasons[f"{r['tool']}: {r['reason']}"] = None
            return "not available"
        value = r.get(key)
        if key == "seconds":
            return "failed" if value is None else f"{value:.2f} s"
        return fmt_kib(value) if key == "peak_rss_kib" else fmt_bytes(value)

    def ratio(a: dict | None, b: dict | None, key: str) -> str:
        if a and b and a.get("available") and b.get("available") and a.get(key) and b.get(key):
            return f"{a[key] / b[key]:.2f}x{per_round(a, b) if key == 'seconds' else ''}"
        return "-"

    def per_round(a: dict, b: dict) -> str:
        """The ratio in each round (the tools take turns, so a round shares the machine's
        state of the moment): how much of the medians' ratio is noise."""
        runs_a, runs_b = a.get("all_seconds") or [], b.get("all_seconds") or []
        if len(runs_a) != len(runs_b) or len(runs_a) < 2:
            return ""
        pairs = list(zip(runs_a, runs_b, strict=True))
        if any(x is None or not y for x, y in pairs):
            return ""
        return " (rounds: " + " ".join(f"{x / y:.2f}" for x, y in pairs) + ")"

    body = []
    for scenario, key, what in (
        ("save", "stored_bytes", "bundle size"),
        ("save", "seconds", "save time"),
        ("save", "peak_rss_kib", "save peak RSS"),
        ("load", "seconds", "load time"),
        ("load", "peak_rss_kib", "load peak RSS"),
        ("incremental", "stored_bytes", "incremental v2 --since v1, size"),
        ("incremental", "seconds", "incremental save time"),
    ):
        raw, dedup = row(scenario, "transship"), row(scenario, "transship-dedup")
        most = row(scenario, "transship-dedup-max")
        body.append(
            [
                what,
                text(raw, key),
                text(dedup, key),
                ratio(dedup, raw, key),
                text(most, key),
                ratio(most, raw, key),
            ]
        )
    resaves = results.get("save", {}).get("resaves", {})
    raw_save = row("save", "transship")
    body.append(
        [
            "save again, gzip checks remembered",
            "",
            _resave_text(resaves.get("transship-dedup")),
            ratio(
                {"available": True, "seconds": resaves.get("transship-dedup")}, raw_save, "seconds"
            ),
            _resave_text(resaves.get("transship-dedup-max")),
            ratio(
                {"available": True, "seconds": resaves.get("transship-dedup-max")},
                raw_save,
                "seconds",
            ),
        ]
    )
    if "bytes" in reference:
        raw_size = (row("save", "transship") or {}).get("stored_bytes")
        body.append(
            [
                f"reference: zstd {reference['args']} of the {reference['tars']} unique layer tars "
                f"({fmt_bytes(reference['tar_bytes'])}) concatenated",
                "",
                f"{fmt_bytes(reference['bytes'])} in {reference['seconds']:.0f} s, "
                f"peak RSS {fmt_kib(reference['peak_rss_kib'])}"
                + (" (cached)" if reference.get("cached") else ""),
                f"{reference['bytes'] / raw_size:.2f}x plain" if raw_size else "-",
                "",
                "",
            ]
        )
    else:
        body.append(["reference: zstd", "", reference.get("error", "not run"), "", "", ""])
    title = "dedup codec next to raw (issue 4)"
    table = markdown_table(
        ["", "raw", "dedup (balanced)", "balanced / raw", "dedup --dedup-effort max", "max / raw"],
        body,
    )
    notes = "".join(f"\n\n{reason}" for reason in reasons)
    return f"## {title}\n\n{table}{notes}"


# ---------------------------------------------------------------------------------------
# targets


def target_numbers(results: dict, new_v2_bytes: int | None) -> dict[str, float | None]:
    def get(scenario: str, tool: str, key: str) -> float | None:
        for r in results.get(scenario, {}).get("rows", []):
            if r["tool"] == tool and r["available"]:
                return r.get(key)
        return None

    def rss(*values: float | None) -> float | None:
        known = [v * 1024 for v in values if v is not None]
        return max(known) if known else None

    return {
        "raw_size": get("save", "transship", "stored_bytes"),
        "raw_save_s": get("save", "transship", "seconds"),
        "raw_load_s": get("load", "transship", "seconds"),
        "raw_peak_rss": rss(
            get("save", "transship", "peak_rss_kib"), get("load", "transship", "peak_rss_kib")
        ),
        "archive_size": get("save", "skopeo-archive", "stored_bytes"),
        "archive_save_s": get("save", "skopeo-archive", "seconds"),
        "oci_load_s": get("load", "skopeo-oci", "seconds"),
        "incr_size": get("incremental", "transship", "stored_bytes"),
        "incr_blob_bytes": (get("incremental", "transship", "blobs_carried") or [0, None])[1],
        "new_v2_bytes": new_v2_bytes,
        "dedup_size": get("save", "transship-dedup", "stored_bytes"),
        "dedup_save_s": get("save", "transship-dedup", "seconds"),
        "dedup_load_s": get("load", "transship-dedup", "seconds"),
        "dedup_peak_rss": rss(
            get("save", "transship-dedup", "peak_rss_kib"),
            get("load", "transship-dedup", "peak_rss_kib"),
        ),
        "dedup_incr_size": get("incremental", "transship-dedup", "stored_bytes"),
    }


def targets_table(numbers: dict[str, float | None]) -> str:
    body = [[t.goal, t.measured, met_label(t.met)] for t in evaluate_targets(numbers)]
    return "## targets (issues 3 and 4)\n\n" + markdown_table(["target", "measured", "met"], body)


# ---------------------------------------------------------------------------------------
# helpers of the tables


def _ran(tools: list[Tool], name: str) -> bool:
    return any(t.name == name and t.available for t in tools)


def _seconds(r: dict) -> str:
    return "failed" if r["seconds"] is None else f"{r['seconds']:.2f} s"


def _ratio_text(r: dict) -> str:
    return "-" if r.get("ratio") is None else f"{r['ratio']:.3f}x"


def _runs_text(r: dict) -> str:
    text = " ".join(f"{s:.1f}" for s in r["all_seconds"])
    return text + (f" ({r['failed']} failed)" if r["failed"] else "")


def _with_runs(rows: list[dict], results: Results) -> list[dict]:
    for row in rows:
        row["measurements"] = [
            asdict(m) for m in results.runs.get(row["tool"], []) if m is not SKIPPED
        ]
    return rows


# ---------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="which fleet (0.1: quick)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--maxconn", type=int, default=5, help="transship's --maxconn")
    parser.add_argument("--tools", default=",".join(ALL_TOOLS))
    parser.add_argument("--scenarios", default=",".join(ALL_SCENARIOS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="fleet build workers")
    parser.add_argument("--keep", action="store_true", help="keep the saved outputs (bench/.work)")
    args = parser.parse_args(argv)
    args.tool_names = [t for t in args.tools.split(",") if t]
    args.scenario_names = [s for s in args.scenarios.split(",") if s]
    for name in args.tool_names:
        if name not in ALL_TOOLS:
            parser.error(f"unknown tool {name!r}; known: {', '.join(ALL_TOOLS)}")
    for name in args.scenario_names:
        if name not in ALL_SCENARIOS:
            parser.error(f"unknown scenario {name!r}; known: {', '.join(ALL_SCENARIOS)}")
    return args


def make_tools(names: list[str], with_dedup: bool) -> dict[str, Tool]:
    tools: dict[str, Tool] = {}
    transship_reason = (
        transship_unavailable_reason() if any(n in TRANSSHIP_TOOLS for n in names) else ""
    )
    for name in names:
        if name in DEDUP_TOOLS and not with_dedup:
            continue  # the dedup column belongs to the dedup scenario
        reason = transship_reason if name in TRANSSHIP_TOOLS else ""
        if name.startswith("skopeo") and not shutil.which("skopeo"):
            reason = "skopeo not installed"
        tools[name] = Tool(name, reason)
    return tools


def plan_scenarios(scenarios: list[str], tools: dict[str, Tool]) -> list[tuple[str, list[Tool]]]:
    """Which scenario runs with which tools. `dedup` alone still runs save, load and
    incremental, with the two transship tools only (its table compares them)."""
    plan = []
    everything = list(tools.values())
    transship = [t for t in everything if t.name in TRANSSHIP_TOOLS]
    for scenario in ("save", "load", "incremental"):
        if scenario in scenarios:
            chosen = transship if scenario == "incremental" else everything
        elif "dedup" in scenarios:
            chosen = transship
        else:
            continue
        if chosen:
            plan.append((scenario, chosen))
    return plan


SCENARIO_RUNNERS: dict[str, Callable[[Bench, list[Tool]], dict]] = {
    "save": scenario_save,
    "load": scenario_load,
    "incremental": scenario_incremental,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fleet_dir = default_out(args.scale)
    fleet_dir.mkdir(parents=True, exist_ok=True)
    fleet = build_fleet(fleet_dir, args.scale, "transship-fleet-1", False, args.jobs)
    print_summary(fleet)

    tools = make_tools(args.tool_names, "dedup" in args.scenario_names)
    plan = plan_scenarios(args.scenario_names, tools)
    load_at_start = os.getloadavg()  # other work on the machine skews the timings
    report: dict = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average_at_start": load_at_start,
        "scale": args.scale,
        "runs": args.runs,
        "maxconn": args.maxconn,
        "transship_commit": _git_head(),
        "skopeo": _version(["skopeo", "--version"]),
        "fleet_totals": fleet["totals"],
        "scenarios": {},
    }
    BENCH_WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"run-{fleet_dir.name}-", dir=BENCH_WORK))
    src = source_registry(fleet, fleet_dir)
    bench = Bench(fleet, src, work, args.maxconn, args.runs, tools)
    tables: list[str] = []
    try:
        for scenario, scenario_tools in plan:
            outcome = SCENARIO_RUNNERS[scenario](bench, scenario_tools)
            report["scenarios"][scenario] = outcome
            tables.append(outcome["table"])
        if "dedup" in args.scenario_names:
            print("\n# dedup reference", flush=True)
            reference = zstd_reference(bench)
            report["zstd_reference"] = reference
            table = dedup_table(report["scenarios"], reference)
            print("\n" + table, flush=True)
            tables.append(table)
    finally:
        src.cleanup()  # keeps its storage for the next benchmark
        if args.keep:
            print(f"outputs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    new_v2 = report["scenarios"].get("incremental", {}).get("new_v2_bytes")
    numbers = target_numbers(report["scenarios"], new_v2)
    report["target_numbers"] = numbers
    report["targets"] = [asdict(t) for t in evaluate_targets(numbers)]
    table = targets_table(numbers)
    print("\n" + table, flush=True)
    tables.append(table)

    report["load_average_at_end"] = os.getloadavg()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (OUT_DIR / f"bundle-{stamp}.json").write_text(json.dumps(report, indent=1))
    header = (
        f"bundle benchmark, scale {args.scale}, {args.runs} run(s), {os.cpu_count()} cores, "
        f"load average {load_at_start[0]:.1f} at start and {os.getloadavg()[0]:.1f} at end; "
        f"fleet: {fleet['totals']['images']} images, "
        f"{fleet['totals']['unique_compressed_bytes'] / 1e9:.2f} GB unique blobs; "
        f"transship {report['transship_commit']}, {report['skopeo']}"
    )
    (OUT_DIR / f"bundle-{stamp}.md").write_text(header + "\n\n" + "\n\n".join(tables) + "\n")
    print(f"\nwritten: {OUT_DIR / f'bundle-{stamp}.md'} and .json")
    return 0


def _git_head() -> str:
    out = _version(["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"])
    return out or "unknown commit"


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
