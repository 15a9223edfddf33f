#!/usr/bin/env python3
"""Speed of the bit-exact deflate re-encoders in transship._native (Go level 6, zlib level 6).

Takes one layer per (role, compressor) of the benchmark fleet (bench/.work/fleet, built by
`python bench/fleet.py build`), decompresses the first --mb MB of its tar and re-encodes
them with the encoder that made the layer ("go" = Go's compress/gzip level 6, "zlib" =
zlib level 6). Every run also checks that the bytes produced equal the layer's own deflate
bytes, so a faster encoder that changes the output fails loudly.

MB/s are MB (10^6 bytes) of plain data per second of CPU time of the encoding call.
Each measurement runs in its own process; with several --native builds the runs
alternate between them (the machine may be noisy) and the table shows medians.

    python bench/encoder_speed.py                          # the installed extension
    python bench/encoder_speed.py --native old.so --native new.so --repeat 5
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLEET = REPO / "bench" / ".work" / "fleet"
ROLES = ("os", "jre", "libs", "app")
SPECS = {"go": ("go", 6, []), "zlib": ("zlib", 6, 8, 0)}


def load_native(path: str | None):
    if path is None:
        from transship import _native

        return _native
    # The module's init function is named after the last dotted component.
    loader = importlib.machinery.ExtensionFileLoader("candidate._native", path)
    spec = importlib.util.spec_from_file_location("candidate._native", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def fleet_layers() -> list[tuple[str, str, Path]]:
    """(role, compressor, blob path): the first layer of each role and compressor."""
    fleet = json.loads((FLEET / "fleet.json").read_text())
    blobs = Path(fleet["layout"]) / "blobs" / "sha256"
    chosen: dict[tuple[str, str], Path] = {}
    for image in fleet["images"]:
        for layer in image["layers"]:
            key = (layer["role"], layer["compressor"])
            if key[0] in ROLES and key[1] in SPECS and key not in chosen:
                chosen[key] = blobs / layer["digest"].removeprefix("sha256:")
    return [
        (role, comp, chosen[(role, comp)])
        for role in ROLES
        for comp in SPECS
        if (role, comp) in chosen
    ]


def plain_prefix(blob: Path, size: int) -> tuple[bytes, bytes]:
    """The blob's raw deflate bytes (gzip header skipped) and up to `size` plain bytes."""
    raw = blob.read_bytes()
    if raw[3] != 0:
        raise SystemExit(f"{blob}: gzip header with optional fields, not handled here")
    plain = zlib.decompressobj(31).decompress(raw, size)
    return raw[10:], plain


def measure(native_path: str | None, blob: Path, compressor: str, size: int) -> float:
    native = load_native(native_path)
    deflate, plain = plain_prefix(blob, size)
    encoder = native.Deflater(SPECS[compressor])
    start = time.process_time()
    out = encoder.compress(plain)
    seconds = time.process_time() - start
    # Output of compress() holds only finished bytes: a prefix of the original stream.
    if deflate[: len(out)] != out or len(out) < len(plain) // 20:
        raise SystemExit(f"{blob.name[:12]} ({compressor}): output differs from the layer")
    return len(plain) / seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--native", action="append", help="extension .so to test (repeatable)")
    parser.add_argument("--mb", type=int, default=40, help="plain MB per layer (default 40)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--roles", default=",".join(ROLES))
    parser.add_argument("--compressors", default=",".join(SPECS))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.mb * 1_000_000

    if args.child:
        native_path, blob, compressor = args.child
        rate = measure(None if native_path == "-" else native_path, Path(blob), compressor, size)
        print(rate)
        return

    builds = args.native or ["-"]
    roles = set(args.roles.split(","))
    compressors = set(args.compressors.split(","))
    layers = [e for e in fleet_layers() if e[0] in roles and e[1] in compressors]
    results: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(args.repeat):
        for role, compressor, blob in layers:
            for build in builds:
                cmd = [
                    sys.executable,
                    __file__,
                    "--mb",
                    str(args.mb),
                    "--child",
                    build,
                    str(blob),
                    compressor,
                ]
                rate = float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                results.setdefault((role, compressor, build), []).append(rate)

    names = [Path(b).name if b != "-" else "installed" for b in builds]
    print(f"MB/s of plain data (median of {args.repeat}, first {args.mb} MB of each layer)")
    print("| layer | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(builds))
    for role, compressor, _blob in layers:
        cells = [f"{statistics.median(results[(role, compressor, b)]):.1f}" for b in builds]
        print(f"| {role} / {compressor}-6 | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
