#!/usr/bin/env python3
"""Benchmark of bit-exact gzip reconstruction (transship.gzip_rebuild).

For every layer it measures two ways of splitting a gzip blob into plain data plus
"corrections" and rebuilding the exact blob:

- preflate-rs 0.7.6 alone (the general method, on the raw deflate stream);
- transship's `analyze`/`rebuild` (Go or zlib re-encoding when one reproduces the
  stream, preflate-rs otherwise).

Layers: the fixtures in ../shared/fixtures/layers, plus a ~100 MB layer of real jars
(from /usr/share/java, ~/.m2, the JDKs in /usr/lib/jvm, and other installed tools)
that Go's compress/gzip compresses at its default level, writing the tar straight
into the gzip writer (bench/gogzip -tar), as Docker/BuildKit do. Use --layer to add
more .gz files.

Each measurement runs in its own process, so "peak RSS" is that process's peak
(Python itself is about 20 MiB of it). Plain data goes to / comes from a temporary
file, never memory. MB/s are MB (10^6 bytes) of *plain* data per second; "cpu" uses
the process CPU time (all threads), "wall" the elapsed time.

    python bench/gzip_rebuild_bench.py              # fixtures + generated jar layer
    python bench/gzip_rebuild_bench.py --no-generate --layer some.tar.gz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "layers"
WORK = REPO / "bench" / ".work"
READ_SIZE = 1 << 20
JAR_LAYER_TARGET = 100_000_000


# -- one measurement (child process) ---------------------------------------------------


def gzip_header_length(blob_head: bytes) -> int:
    flags, pos = blob_head[3], 10
    if flags & 4:
        pos += 2 + int.from_bytes(blob_head[pos : pos + 2], "little")
    for flag in (8, 16):
        if flags & flag:
            pos = blob_head.index(b"\x00", pos) + 1
    return pos + (2 if flags & 2 else 0)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(READ_SIZE):
            h.update(data)
    return h.hexdigest()


def read_chunks(path: Path):
    with path.open("rb") as f:
        while data := f.read(READ_SIZE):
            yield data


class Clock:
    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def measure_transship(path: Path, tmp: Path) -> dict:
    from transship.gzip_rebuild import RebuildImpossible, analyze, rebuild

    plain_path = tmp / "plain"
    with plain_path.open("wb") as plain_out, path.open("rb") as gz, Clock() as split:
        try:
            recipe = analyze(gz, plain_out.write)
        except RebuildImpossible as exc:
            return {"exact": False, "error": str(exc)}
    recipe_bytes = recipe.to_bytes()
    h = hashlib.sha256()
    with Clock() as build:
        for chunk in rebuild(read_chunks(plain_path), recipe_bytes):
            h.update(chunk)
    return {
        "method": recipe.describe(),
        "plain": recipe.plain_size,
        "corrections": len(recipe_bytes),
        "exact": h.hexdigest() == file_sha256(path),
        "split": split,
        "rebuild": build,
    }


def measure_preflate(path: Path, tmp: Path) -> dict:
    from transship import _native

    blob_head = path.open("rb").read(1 << 16)
    start = gzip_header_length(blob_head)
    # The plain data for the rebuild, made beforehand (not timed).
    plain_path = tmp / "plain"
    inflater = zlib.decompressobj(-15)
    deflate_size = 0
    with path.open("rb") as f, plain_path.open("wb") as out:
        f.seek(start)
        while not inflater.eof and (data := f.read(READ_SIZE)):
            out.write(inflater.decompress(data))
            deflate_size += len(data) - len(inflater.unused_data)
    splitter = _native.PreflateSplitter()
    chunks: list[tuple[int, bytes]] = []
    with path.open("rb") as f, Clock() as split:
        f.seek(start)
        remaining = deflate_size
        try:
            while remaining:
                data = f.read(min(READ_SIZE, remaining))
                remaining -= len(data)
                splitter.feed(data)
                chunks += splitter.take_chunks()
            splitter.finish()
            chunks += splitter.take_chunks()
        except ValueError as exc:
            return {"exact": False, "error": str(exc), "split": split}
    h_orig, h_new = hashlib.sha256(), hashlib.sha256()
    with path.open("rb") as f:
        f.seek(start)
        remaining = deflate_size
        while remaining:
            data = f.read(min(READ_SIZE, remaining))
            remaining -= len(data)
            h_orig.update(data)
    rebuilder = _native.PreflateRebuilder()
    with plain_path.open("rb") as plain, Clock() as build:
        for length, corrections in chunks:
            h_new.update(rebuilder.rebuild_chunk(plain.read(length), corrections))
    return {
        "method": "preflate-rs",
        "plain": sum(n for n, _ in chunks),
        "corrections": sum(len(c) for _, c in chunks),
        "exact": h_orig.digest() == h_new.digest(),
        "split": split,
        "rebuild": build,
    }


def child(method: str, path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="gzbench-") as tmp:
        measure = measure_transship if method == "transship" else measure_preflate
        result = measure(path, Path(tmp))
    for key in ("split", "rebuild"):
        if isinstance(result.get(key), Clock):
            result[key] = {"wall": result[key].wall, "cpu": result[key].cpu}
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(result))


# -- layers ----------------------------------------------------------------------------


def build_gogzip() -> Path:
    tool = WORK / "gogzip"
    if not tool.exists():
        if shutil.which("go") is None:
            raise SystemExit("Go is needed to build bench/gogzip (or pass --no-generate)")
        subprocess.run(
            ["go", "build", "-o", str(tool), "."], cwd=REPO / "bench" / "gogzip", check=True
        )
    return tool


def find_jars() -> list[Path]:
    roots = [
        Path("/usr/share/java"),
        Path.home() / ".m2",
        *Path("/usr/lib/jvm").glob("*"),
        # More real jars, where installed tools keep them.
        Path("/usr/share/maven"),
        Path("/usr/lib/google-cloud-sdk"),
        Path("/opt"),
    ]
    seen: set[tuple[int, int]] = set()
    jars: list[Path] = []
    for root in roots:
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            if path.suffix not in (".jar", ".jmod") or path.is_symlink() or not path.is_file():
                continue
            st = path.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                jars.append(path)
    return jars


def generated_jar_layer() -> Path:
    """~100 MB tar of real jars, gzipped by Go at the default level."""
    out = WORK / "jars-100MB.tar.go-default.gz"
    if out.exists():
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    picked, total = [], 0
    for jar in find_jars():
        size = jar.stat().st_size
        if size > 20_000_000 or total + size > JAR_LAYER_TARGET:
            continue
        picked.append(str(jar))
        total += size
    if total < 50_000_000:
        raise SystemExit(f"only {total} bytes of jars found; pass --no-generate or --layer")
    subprocess.run([str(build_gogzip()), "-tar", "-o", str(out), *picked], check=True)
    return out


# -- table -----------------------------------------------------------------------------


def run_child(method: str, path: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", method, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    if proc.returncode != 0:
        return {"exact": False, "error": proc.stderr.strip().splitlines()[-1][:200]}
    return json.loads(proc.stdout)


def mb_s(plain: int, seconds: float) -> str:
    return f"{plain / seconds / 1e6:.0f}" if seconds > 0 else "-"


def row(name: str, size: int, method: str, r: dict) -> str:
    if "error" in r and "corrections" not in r:
        return f"| {name} | {size:,} | {method} | - | - | no ({r['error'][:70]}) | - | - | - |"
    plain = r["plain"]
    pct = 100 * r["corrections"] / size
    split, build = r["split"], r["rebuild"]
    return (
        f"| {name} | {size:,} | {r['method']} | {r['corrections']:,} | {pct:.3f} % | "
        f"{'yes' if r['exact'] else 'NO'} | {mb_s(plain, split['cpu'])} / {mb_s(plain, split['wall'])} | "
        f"{mb_s(plain, build['cpu'])} / {mb_s(plain, build['wall'])} | "
        f"{r['peak_rss'] / 2**20:.0f} MiB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--layer", type=Path, action="append", default=[], help="extra .gz")
    parser.add_argument("--no-generate", action="store_true", help="skip the 100 MB jar layer")
    parser.add_argument("--methods", default="preflate,transship")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return

    layers = sorted(args.fixtures.glob("*.gz")) if args.fixtures.is_dir() else []
    if not args.no_generate:
        layers.append(generated_jar_layer())
    layers += args.layer
    print(
        "| layer | compressed bytes | method | corrections / recipe bytes | of compressed "
        "| exact | split MB/s cpu / wall | rebuild MB/s cpu / wall | peak RSS |"
    )
    print("|---|---:|---|---:|---:|---|---:|---:|---:|")
    for path in layers:
        size = path.stat().st_size
        for method in args.methods.split(","):
            print(row(path.name, size, method, run_child(method, path)), flush=True)


if __name__ == "__main__":
    main()
