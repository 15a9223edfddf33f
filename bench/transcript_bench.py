#!/usr/bin/env python3
"""Search-based against transcript gzip checks and rebuilds, per fleet layer.

For the first layer of each role and compressor of the benchmark fleet
(`python bench/fleet.py build` makes it), and that first libs layer's tar compressed
again by GNU gzip and pigz (encoders no search can reproduce: preflate does), side by
side in one run:

- the check as a `--dedup-effort max` save makes it (the encoders search: `analyze`),
  and as a balanced save makes it (`analyze(check=False, transcript=True)`: the
  stream's transcript is written back and compared as the stream is decoded);
- what the transcript costs (zstd-compressed, share of the tar);
- the rebuild from each recipe, checked against the blob's digest.

MB/s are MB (10^6 bytes) of tar per second of process CPU time (all threads), best of
`--repeat` runs.

    python bench/transcript_bench.py [--repeat 3] [--roles libs,app] [--no-other-gzips]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from transship import gzip_rebuild  # noqa: E402

FLEET = REPO / "bench" / ".work" / "fleet" / "fleet.json"
ROLES = ("os", "jre", "libs", "app")


def first_layers(roles: list[str]) -> list[tuple[str, str, Path, str]]:
    """(role, compressor, blob path, digest) of the first layer of each pair."""
    if not FLEET.exists():
        raise SystemExit(f"{FLEET} not found: run `python bench/fleet.py build` first")
    fleet = json.loads(FLEET.read_text())
    blobs = Path(fleet["layout"]) / "blobs" / "sha256"
    chosen: dict[tuple[str, str], tuple[Path, str]] = {}
    for image in fleet["images"]:
        for layer in image["layers"]:
            key = (layer["role"], layer["compressor"])
            if key[0] in roles and key not in chosen:
                digest = layer["digest"]
                chosen[key] = (blobs / digest.removeprefix("sha256:"), digest)
    return [(r, c, *chosen[(r, c)]) for r in roles for c in ("go", "zlib") if (r, c) in chosen]


def best_cpu(repeat: int, work: Callable[[], object]) -> tuple[float, object]:
    """The least CPU seconds of `repeat` runs of `work`, and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        result = work()
        best = min(best, time.process_time() - start)
    return best, result


def other_gzips(path: Path, work: Path) -> list[tuple[str, str, Path, str]]:
    """The layer's tar compressed by GNU gzip -6 and pigz -6, where installed."""
    plain: list[bytes] = []
    with path.open("rb") as f:
        gzip_rebuild.analyze(f, plain.append, check=False)
    tar = b"".join(plain)
    out = []
    for tool in ("gzip", "pigz"):
        if shutil.which(tool) is None:
            continue
        blob = subprocess.run([tool, "-6", "-n", "-c"], input=tar, capture_output=True).stdout
        target = work / f"libs.{tool}.gz"
        target.write_bytes(blob)
        out.append(("libs", f"GNU {tool}" if tool == "gzip" else tool, target, digest_of(blob)))
    return out


def digest_of(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def measure(path: Path, digest: str, repeat: int) -> dict:
    plain: list[bytes] = []
    with path.open("rb") as f:
        gzip_rebuild.analyze(f, plain.append, check=False)

    def check(**options: object) -> gzip_rebuild.Recipe:
        with path.open("rb") as f:
            return gzip_rebuild.analyze(f, lambda _: None, **options)

    def rebuilt_ok(recipe: gzip_rebuild.Recipe) -> bool:
        h = hashlib.sha256()
        for piece in gzip_rebuild.rebuild(plain, recipe):
            h.update(piece)
        return "sha256:" + h.hexdigest() == digest

    search_s, searched = best_cpu(repeat, check)
    transcript_s, transcribed = best_cpu(repeat, lambda: check(check=False, transcript=True))
    mb = searched.plain_size / 1e6
    row = {
        "tar_mb": mb,
        "search_way": searched.describe(),
        "check_search_mb_s": mb / search_s,
        "check_transcript_mb_s": mb / transcript_s,
        "transcript_share": transcribed.transcript_size / transcribed.plain_size,
    }
    for name, recipe in (("search", searched), ("transcript", transcribed)):
        seconds, ok = best_cpu(repeat, lambda r=recipe: rebuilt_ok(r))
        row[f"rebuild_{name}_mb_s"] = mb / seconds
        row[f"rebuild_{name}_exact"] = ok
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--roles", default=",".join(ROLES))
    parser.add_argument(
        "--no-other-gzips", action="store_true", help="skip the GNU gzip and pigz rows"
    )
    args = parser.parse_args()
    print("| layer | tar | check: search | check: transcript | transcript "
          "| rebuild: search | rebuild: transcript | exact |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as work:
        layers = first_layers(args.roles.split(","))
        libs = [layer for layer in layers if layer[0] == "libs"]
        if libs and not args.no_other_gzips:
            layers += other_gzips(libs[0][2], Path(work))
        for role, compressor, path, digest in layers:
            r = measure(path, digest, args.repeat)
            exact = r["rebuild_search_exact"] and r["rebuild_transcript_exact"]
            print(
                f"| {role} / {compressor} | {r['tar_mb']:.1f} MB "
                f"| {r['check_search_mb_s']:.0f} MB/s ({r['search_way'].split(',')[0]}) "
                f"| {r['check_transcript_mb_s']:.0f} MB/s "
                f"({r['check_transcript_mb_s'] / r['check_search_mb_s']:.2f}x) "
                f"| {100 * r['transcript_share']:.1f} % "
                f"| {r['rebuild_search_mb_s']:.0f} MB/s "
                f"| {r['rebuild_transcript_mb_s']:.0f} MB/s "
                f"({r['rebuild_transcript_mb_s'] / r['rebuild_search_mb_s']:.2f}x) "
                f"| {'yes' if exact else 'NO'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
