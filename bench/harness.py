#!/usr/bin/env python3
"""Side-by-side benchmark helpers: throwaway registries, timed runs, comparison tables.

    python bench/harness.py serve [--storage DIR] [--port N]
        run a plain-HTTP docker-registry on a free loopback port until ^C
    python bench/harness.py compare [--runs 3] [--fresh-registry] [--names a,b] 'CMD A' 'CMD B'
        run commands alternately; with --fresh-registry each run gets a new empty registry
        whose host:port replaces {registry} in the command

Measured per run: wall time, peak RSS of the whole process tree (GNU time's %M: the
largest process of the tree), and with a registry: bytes stored (sum of file sizes in
its storage directory) and bytes uploaded (bytes the registry process wrote, from
/proc/PID/io: uploads are written to disk once each, mounts and skipped blobs write nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_BINARY = "docker-registry"
GNU_TIME = "/usr/bin/time"

# ---------------------------------------------------------------------------------------
# registries


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _registry_config(storage: Path, port: int) -> str:
    # Debian's default config, minus auth, on loopback only, quiet.
    return textwrap.dedent(
        f"""\
        version: 0.1
        log:
          level: error
          accesslog:
            disabled: true
        storage:
          cache:
            blobdescriptor: inmemory
          filesystem:
            rootdirectory: {storage}
          delete:
            enabled: true
        http:
          addr: 127.0.0.1:{port}
          secret: bench-not-secret
        """
    )


class Registry:
    """A `docker-registry serve` on a free loopback port, storage in a (temporary) directory.

    Use as a context manager; a temporary storage directory is removed on exit.
    """

    def __init__(self, storage: Path | None = None, port: int | None = None) -> None:
        self._own_storage = storage is None
        self.storage = storage or Path(tempfile.mkdtemp(prefix="bench-registry-"))
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="bench-registry-conf-"))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 15.0) -> Registry:
        if not shutil.which(REGISTRY_BINARY):
            raise SystemExit("docker-registry not found: apt-get install docker-registry")
        self.storage.mkdir(parents=True, exist_ok=True)
        config = self._workdir / "config.yml"
        config.write_text(_registry_config(self.storage, self.port))
        log = open(self._workdir / "registry.log", "wb")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.address}")

    def log_tail(self, lines: int = 20) -> str:
        path = self._workdir / "registry.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stored_bytes(self) -> int:
        """Sum of the sizes of all files in the storage directory (blobs, links, manifests)."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.storage):
            for name in files:
                with contextlib.suppress(OSError):  # an upload may vanish meanwhile
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total

    def written_bytes(self) -> int | None:
        """Bytes the registry process has passed to write(2) so far: its uploads land on disk."""
        if not self.process:
            return None
        try:
            text = Path(f"/proc/{self.process.pid}/io").read_text()
        except OSError:
            return None
        fields = dict(line.split(": ") for line in text.splitlines() if ": " in line)
        return int(fields["wchar"]) if "wchar" in fields else None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)
        if self._own_storage:
            shutil.rmtree(self.storage, ignore_errors=True)

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def manifest_digest(registry: Registry, name: str) -> str | None:
    """The digest the registry serves for `repo:tag` (None when it has no such manifest)."""
    repo, tag = name.rsplit(":", 1)
    accept = ", ".join(
        [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ]
    )
    request = urllib.request.Request(
        f"{registry.url}/v2/{repo}/manifests/{tag}", method="HEAD", headers={"Accept": accept}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError:
        return None


def verify_images(registry: Registry, expected: dict[str, str]) -> str:
    """'ok' when every `name -> manifest digest` is served as expected, else what is wrong."""
    missing, changed = [], []
    for name, digest in expected.items():
        served = manifest_digest(registry, name)
        if served is None:
            missing.append(name)
        elif served != digest:
            changed.append(name)
    if not missing and not changed:
        return "ok"
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing")
    if changed:
        parts.append(f"{len(changed)} digests changed")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------
# timed runs


@dataclass
class RunResult:
    seconds: float
    peak_rss_kib: int | None
    exit_code: int
    output_tail: str


def timed_run(
    cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> RunResult:
    """Run `cmd`; wall time and the peak RSS of its process tree (largest single process)."""
    with tempfile.NamedTemporaryFile(prefix="bench-time-", mode="r") as stats:
        if os.path.exists(GNU_TIME):
            full = [GNU_TIME, "-f", "%e %M", "-o", stats.name, *cmd]
        else:  # same number from the kernel, through a fresh interpreter
            probe = (
                "import resource,subprocess,sys;"
                "rc=subprocess.call(sys.argv[2:]);"
                "open(sys.argv[1],'w').write('0 %d' % resource.getrusage("
                "resource.RUSAGE_CHILDREN).ru_maxrss);sys.exit(rc)"
            )
            full = [sys.executable, "-c", probe, stats.name, *cmd]
        started = time.monotonic()
        proc = subprocess.run(
            full,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        seconds = time.monotonic() - started
        fields = stats.read().split()
    rss = int(fields[-1]) if fields and fields[-1].isdigit() else None
    tail = "\n".join(proc.stdout.decode(errors="replace").splitlines()[-15:])
    return RunResult(seconds, rss, proc.returncode, tail)


@dataclass
class Measurement:
    seconds: float
    peak_rss_kib: int | None
    exit_code: int
    stored_bytes: int | None = None
    uploaded_bytes: int | None = None
    verified: str = ""
    output_tail: str = ""

    @classmethod
    def of(cls, run: RunResult, **fields: object) -> Measurement:
        """A command's time, memory, exit code and output tail, with `fields` added."""
        return cls(
            run.seconds, run.peak_rss_kib, run.exit_code, output_tail=run.output_tail, **fields
        )  # type: ignore[arg-type]


@dataclass
class Tool:
    """One contender. `reason` says why it cannot run here (then it is reported, not run)."""

    name: str
    reason: str = ""

    @property
    def available(self) -> bool:
        return not self.reason


@dataclass
class Results:
    tools: list[Tool]
    runs: dict[str, list[Measurement]] = field(default_factory=dict)


def run_alternating(
    tools: list[Tool], runs: int, trial: Callable[[Tool], Measurement], log: bool = True
) -> Results:
    """`runs` rounds; tools take turns, the order reversed every other round."""
    results = Results(tools, {t.name: [] for t in tools})
    available = [t for t in tools if t.available]
    for round_number in range(runs):
        order = available if round_number % 2 == 0 else list(reversed(available))
        for tool in order:
            m = trial(tool)
            results.runs[tool.name].append(m)
            if log:
                status = "" if m.exit_code == 0 else f"  EXIT {m.exit_code}"
                print(
                    f"  run {round_number + 1}/{runs} {tool.name}: {m.seconds:.2f} s"
                    f"  rss {fmt_kib(m.peak_rss_kib)}  {m.verified}{status}",
                    flush=True,
                )
                if m.exit_code != 0 and m.output_tail:
                    print(textwrap.indent(m.output_tail, "    | "), flush=True)
    return results


# ---------------------------------------------------------------------------------------
# tables


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return "-"


def fmt_kib(kib: int | float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f} MiB"


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results: Results, baseline: str | None = None) -> list[dict]:
    """One row per tool: medians, and the time ratio to `baseline` (default: the first tool)."""
    medians = {
        name: median([m.seconds for m in runs if m.exit_code == 0])
        for name, runs in results.runs.items()
    }
    base_name = baseline or next((t.name for t in results.tools if medians.get(t.name)), None)
    base = medians.get(base_name) if base_name else None
    rows = []
    for tool in results.tools:
        runs = results.runs.get(tool.name, [])
        ok_runs = [m for m in runs if m.exit_code == 0]
        row = {"tool": tool.name, "available": tool.available, "reason": tool.reason}
        if not tool.available:
            rows.append(row)
            continue
        seconds = medians[tool.name]
        row.update(
            runs=len(runs),
            failed=len(runs) - len(ok_runs),
            seconds=seconds,
            all_seconds=[round(m.seconds, 2) for m in runs],
            ratio=(seconds / base) if seconds and base else None,
            stored_bytes=median([m.stored_bytes for m in ok_runs]),
            uploaded_bytes=median([m.uploaded_bytes for m in ok_runs]),
            peak_rss_kib=median([m.peak_rss_kib for m in ok_runs]),
            verified=sorted({m.verified for m in runs if m.verified}),
        )
        rows.append(row)
    return rows


def format_table(title: str, rows: list[dict], baseline_label: str = "") -> str:
    headers = ["tool", "time (median)", "ratio" + baseline_label, "stored", "uploaded", "peak RSS", "check", "runs"]  # fmt: skip
    body = []
    for r in rows:
        if not r["available"]:
            body.append([r["tool"], "not available", "", "", "", "", r["reason"], ""])
            continue
        seconds = "failed" if r["seconds"] is None else f"{r['seconds']:.2f} s"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        runs = " ".join(f"{s:.1f}" for s in r["all_seconds"])
        if r["failed"]:
            runs += f" ({r['failed']} failed)"
        body.append([
            r["tool"], seconds, ratio, fmt_bytes(r["stored_bytes"]), fmt_bytes(r["uploaded_bytes"]),
            fmt_kib(r["peak_rss_kib"]), "; ".join(r["verified"]), runs,
        ])  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *body, strict=False)]
    lines = [f"## {title}", ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in body:
        lines.append(
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# command line


def _serve(args: argparse.Namespace) -> int:
    # `kill` (SIGTERM) stops the registry too, as ^C does, instead of leaving it running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    registry = Registry(args.storage, args.port)
    registry.start()
    print(f"registry on {registry.address}, storage {registry.storage} (^C to stop)", flush=True)
    try:
        while registry.process and registry.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        if args.storage:
            registry.stop()
        else:
            registry.cleanup()
    return 0


def _compare(args: argparse.Namespace) -> int:
    names = (
        args.names.split(",") if args.names else [f"cmd{i + 1}" for i in range(len(args.commands))]
    )
    if len(names) != len(args.commands):
        raise SystemExit("--names must name every command")
    commands = dict(zip(names, args.commands, strict=True))

    def trial(tool: Tool) -> Measurement:
        if not args.fresh_registry:
            r = timed_run(["bash", "-c", commands[tool.name]])
            return Measurement.of(r)
        with Registry() as registry:
            written_before = registry.written_bytes() or 0
            cmd = commands[tool.name].replace("{registry}", registry.address)
            r = timed_run(["bash", "-c", cmd])
            written = registry.written_bytes()
            return Measurement.of(
                r,
                stored_bytes=registry.stored_bytes(),
                uploaded_bytes=None if written is None else written - written_before,
            )

    results = run_alternating([Tool(n) for n in names], args.runs, trial)
    print()
    print(format_table("comparison", summarize(results), f" (vs {names[0]})"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run a throwaway registry until ^C")
    s.add_argument("--storage", type=Path, help="keep the storage here (default: a temp dir)")
    s.add_argument("--port", type=int)
    c = sub.add_parser("compare", help="time shell commands side by side")
    c.add_argument("commands", nargs="+")
    c.add_argument("--names", help="comma-separated names, one per command")
    c.add_argument("--runs", type=int, default=3)
    c.add_argument(
        "--fresh-registry", action="store_true", help="new empty registry per run: {registry}"
    )
    args = parser.parse_args(argv)
    return _serve(args) if args.command == "serve" else _compare(args)


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "Measurement", "Registry", "Results", "RunResult", "Tool", "format_table", "free_port",
    "manifest_digest", "run_alternating", "summarize", "timed_run", "verify_images",
]  # fmt: skip
