"""Find the real files the fleet is made of: OS files, a JDK and jars on this machine.

Everything returned is sorted so that the same machine always gives the same fleet.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

# Where a Debian base image's files live; only files owned by a Debian package are taken,
# so that what the generator picks is what `apt-get install` put there.
OS_ROOTS = ("/etc", "/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu", "/usr/share")
# Jars: Debian's Java packages, Maven, JDK modules, a local Maven repository, anything in /opt.
JAR_ROOTS = (
    "/usr/share/java",
    "/usr/share/maven/lib",
    "/usr/share/maven-repo",
    "/usr/lib",
    "/opt",
    str(Path.home() / ".m2" / "repository"),
)
JVM_DIR = "/usr/lib/jvm"
MAX_OS_FILE = 16 << 20  # one huge library would eat the OS layer's whole budget
JAR_SUFFIXES = (".jar", ".jmod")


@dataclass(frozen=True)
class FileEntry:
    """A file, symlink or directory to put in a layer; `path` is where it is on this machine."""

    path: str
    kind: str  # "f" regular file, "l" symlink, "d" directory
    size: int
    mtime_ns: int
    mode: int
    linkname: str = ""


@dataclass(frozen=True)
class JarFile:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    entries: int


def _entry(path: str, st: os.stat_result) -> FileEntry | None:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        return FileEntry(path, "f", st.st_size, st.st_mtime_ns, mode)
    if stat.S_ISLNK(st.st_mode):
        return FileEntry(path, "l", 0, st.st_mtime_ns, 0o777, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return FileEntry(path, "d", 0, st.st_mtime_ns, mode)
    return None


def walk_entries(root: str) -> list[FileEntry]:
    """Every file, symlink and directory under `root` (not following symlinks), sorted."""
    out: list[FileEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            try:
                entry = _entry(path, os.lstat(path))
            except OSError:
                continue
            if entry and (entry.kind != "f" or os.access(path, os.R_OK)):
                out.append(entry)
    out.sort(key=lambda e: e.path)
    return out


def dpkg_owned_paths() -> set[str] | None:
    """Paths that installed Debian packages own, or None on a system without dpkg."""
    info = Path("/var/lib/dpkg/info")
    if not info.is_dir():
        return None
    owned: set[str] = set()
    for listing in sorted(info.glob("*.list")):
        owned.update(line for line in listing.read_text(errors="replace").splitlines() if line)
    return owned


def os_candidates() -> list[FileEntry]:
    """Package-owned files and symlinks under the OS roots (no jars, no huge files)."""
    owned = dpkg_owned_paths()
    out = []
    for root in OS_ROOTS:
        if not os.path.isdir(root):
            continue
        for e in walk_entries(root):
            if e.kind == "d" or e.path.endswith(JAR_SUFFIXES) or e.size > MAX_OS_FILE:
                continue
            if owned is not None and e.path not in owned:
                continue
            out.append(e)
    return out


def hash_order(items: list[FileEntry], seed: str) -> list[FileEntry]:
    """A seeded order that spreads a sample over the whole tree (not just the first dirs)."""
    return sorted(items, key=lambda e: hashlib.sha256(f"{seed}\0{e.path}".encode()).digest())


def sample_to_budget(items: list[FileEntry], budget: int, seed: str) -> list[FileEntry]:
    """Files in seeded order until their sizes add up to `budget` bytes; result sorted by path."""
    chosen, total = [], 0
    for e in hash_order(items, seed):
        if total >= budget:
            break
        if total + e.size > budget * 1.02:
            continue  # one big file would overshoot: take smaller ones instead
        chosen.append(e)
        total += e.size
    return sorted(chosen, key=lambda e: e.path)


def _tree_size(root: str) -> int:
    return sum(e.size for e in walk_entries(root))


def pick_jdk(target_bytes: int) -> str:
    """The JDK under /usr/lib/jvm whose size is closest to `target_bytes`."""
    candidates = []
    if os.path.isdir(JVM_DIR):
        for name in sorted(os.listdir(JVM_DIR)):
            path = os.path.join(JVM_DIR, name)
            if not os.path.islink(path) and os.path.isfile(os.path.join(path, "bin", "java")):
                candidates.append((abs(_tree_size(path) - target_bytes), name, path))
    if not candidates:
        raise SystemExit(
            "no JDK found under /usr/lib/jvm: install one (apt-get install openjdk-17-jdk-headless)"
        )
    return min(candidates)[2]


def _zip_entry_count(path: str) -> int:
    try:
        with zipfile.ZipFile(path) as zf:
            return len(zf.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return 0


def find_jars(scan_cache: Path, exclude_under: str) -> list[JarFile]:
    """Distinct (by content) readable jars and jmods on this machine, sorted by content digest.

    Content digests are cached by (path, size, mtime) in `scan_cache`, so a re-run only stats.
    """
    cached: dict[str, dict] = {}
    if scan_cache.exists():
        cached = {j["path"]: j for j in json.loads(scan_cache.read_text())}
    seen_paths: set[str] = set()
    scanned: list[JarFile] = []
    found: dict[str, JarFile] = {}
    exclude = exclude_under.rstrip("/") + "/"
    for root in JAR_ROOTS:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            if (dirpath + "/").startswith(exclude):
                dirnames.clear()
                continue
            for name in sorted(filenames):
                if not name.endswith(JAR_SUFFIXES):
                    continue
                path = os.path.realpath(os.path.join(dirpath, name))
                if path in seen_paths or path.startswith(exclude):
                    continue
                seen_paths.add(path)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or not os.access(path, os.R_OK):
                    continue
                old = cached.get(path)
                if old and old["size"] == st.st_size and old["mtime_ns"] == st.st_mtime_ns:
                    jar = JarFile(**old)
                else:
                    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                    jar = JarFile(path, st.st_size, st.st_mtime_ns, digest, _zip_entry_count(path))
                scanned.append(jar)
                if jar.entries > 0 and jar.sha256 not in found:
                    found[jar.sha256] = jar
    jars = sorted(found.values(), key=lambda j: j.sha256)
    scan_cache.parent.mkdir(parents=True, exist_ok=True)
    scan_cache.write_text(json.dumps([asdict(j) for j in scanned]))
    return jars
