"""Tar archives for the dedup tests, made by real tar writers (Python tarfile, GNU tar, Go)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import textwrap
from pathlib import Path

LONG_DIR = "deeply-nested-directory-name/" * 5
LONG_NAME = LONG_DIR + "a-file-whose-full-path-is-longer-than-one-hundred-characters.properties"


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def _add_entry(tar: tarfile.TarFile, name: str, kind: bytes, **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = 1_700_000_000
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o777
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info)


def python_tar(fmt: int, *, extra_files: dict[str, bytes] | None = None) -> bytes:
    """Every kind of entry Python's tarfile writes, in the given format."""
    buf = io.BytesIO()
    random_bytes = os.urandom(70_000)
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        _add_entry(tar, "app", tarfile.DIRTYPE)
        _add_entry(tar, "app/lib", tarfile.DIRTYPE)
        _add_file(tar, "app/lib/a.jar", random_bytes)
        _add_file(tar, "app/lib/copy-of-a.jar", random_bytes)  # same content, other name
        _add_file(tar, "app/empty.conf", b"")
        _add_file(tar, "app/tiny.txt", b"x")
        _add_file(tar, "app/block.bin", b"\x07" * 512)  # exactly one block: no padding
        _add_file(tar, "app/text.txt", b"hello world\n" * 300)
        _add_entry(tar, "app/link", tarfile.SYMTYPE, linkname="lib/a.jar")
        _add_entry(tar, "app/hard", tarfile.LNKTYPE, linkname="app/lib/a.jar")
        _add_file(tar, "app/.wh.removed-file", b"")
        _add_file(tar, "app/lib/.wh..wh..opq", b"")
        _add_entry(tar, "dev", tarfile.DIRTYPE)
        _add_entry(tar, "dev/fifo", tarfile.FIFOTYPE)
        if fmt != tarfile.USTAR_FORMAT:
            _add_file(tar, "app/" + LONG_NAME, b"long=name\n" * 20)
            _add_entry(tar, "app/long-link", tarfile.SYMTYPE, linkname="x/" * 80 + "target")
            _add_file(tar, "app/配置-中文名.yml", "ключ: значение\n".encode() * 5)
            _add_file(tar, "app/big-uid", b"uid\n" * 100, uid=10_000_000, gid=10_000_000)
        else:
            _add_file(tar, ("p" * 90) + "/" + ("n" * 90), b"prefix and name\n" * 9)
        if fmt == tarfile.PAX_FORMAT:
            info = tarfile.TarInfo("usr/bin/ping-like")
            info.size = 200
            info.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
            tar.addfile(info, io.BytesIO(b"\x7fELF" + bytes(196)))
        for name, data in (extra_files or {}).items():
            _add_file(tar, name, data)
    return buf.getvalue()


def make_tree(root: Path) -> Path:
    """A directory with the interesting file kinds, for tar tools to archive."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lib").mkdir(exist_ok=True)
    (root / "lib" / "a.jar").write_bytes(os.urandom(50_000))
    (root / "lib" / "b.jar").write_bytes((root / "lib" / "a.jar").read_bytes())
    (root / "empty").write_bytes(b"")
    (root / "text.txt").write_text("line\n" * 1000)
    (root / "名前.txt").write_text("non-ascii\n")
    long_dir = root / LONG_DIR.rstrip("/")
    long_dir.mkdir(parents=True, exist_ok=True)
    (long_dir / "file-with-a-rather-long-name-to-go-over-the-limit.txt").write_text("deep\n")
    link = root / "link"
    if not link.is_symlink():
        link.symlink_to("text.txt")
    hard = root / "hard"
    if not hard.exists():
        os.link(root / "text.txt", hard)
    # A sparse file with more data islands than an old GNU header holds (4), so that
    # GNU tar writes sparse extension blocks.
    with open(root / "sparse.img", "wb") as f:
        for island in range(30):
            f.seek(island << 18)
            f.write(b"data%02d" % island * 700)
        f.truncate(31 << 18)
    return root


def gnu_tar(tree: Path, fmt: str, *, sparse: bool = False) -> bytes:
    """`tar` (GNU) of a directory in one of its formats (gnu, oldgnu, posix, ustar, v7)."""
    cmd = ["tar", "-c", f"--format={fmt}", "--sort=name", "--mtime=@1700000000", "-C", str(tree)]
    if sparse:
        cmd.append("--sparse")
    cmd.append(".")
    return subprocess.run(cmd, check=True, capture_output=True).stdout


_GO_PROGRAM = textwrap.dedent(
    """
    package main

    import (
        "archive/tar"
        "bytes"
        "os"
        "strings"
        "time"
    )

    func main() {
        w := tar.NewWriter(os.Stdout)
        t := time.Unix(1700000000, 0)
        add := func(h *tar.Header, data []byte) {
            h.ModTime = t
            h.Size = int64(len(data))
            if h.Typeflag != tar.TypeReg { h.Size = 0 }
            if err := w.WriteHeader(h); err != nil { panic(err) }
            if len(data) > 0 && h.Typeflag == tar.TypeReg { w.Write(data) }
        }
        add(&tar.Header{Name: "app/", Typeflag: tar.TypeDir, Mode: 0755}, nil)
        add(&tar.Header{Name: "app/a.txt", Typeflag: tar.TypeReg, Mode: 0644},
            bytes.Repeat([]byte("go tar\\n"), 500))
        add(&tar.Header{Name: "app/" + strings.Repeat("long/", 40) + "file.txt",
            Typeflag: tar.TypeReg, Mode: 0644}, []byte("long name content\\n"))
        add(&tar.Header{Name: "app/日本.txt", Typeflag: tar.TypeReg, Mode: 0644,
            PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}}, []byte("utf8 name data\\n"))
        add(&tar.Header{Name: "app/link", Typeflag: tar.TypeSymlink, Linkname: "a.txt"}, nil)
        add(&tar.Header{Name: "app/hard", Typeflag: tar.TypeLink, Linkname: "app/a.txt"}, nil)
        add(&tar.Header{Name: "app/empty", Typeflag: tar.TypeReg, Mode: 0644}, nil)
        add(&tar.Header{Name: "app/.wh..wh..opq", Typeflag: tar.TypeReg}, nil)
        add(&tar.Header{Name: "app/big-uid", Typeflag: tar.TypeReg, Uid: 1 << 30, Mode: 0644,
            Format: tar.FormatGNU}, []byte("gnu base-256 uid\\n"))
        w.Close()
    }
    """
)


def go_tar(workdir: Path) -> bytes | None:
    """A tar written by Go's archive/tar (as Docker and BuildKit write layers), or None
    when Go is not installed."""
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None
    )
    if go is None:
        return None
    src = workdir / "main.go"
    src.write_text(_GO_PROGRAM)
    env = dict(os.environ, GO111MODULE="off", GOFLAGS="")
    if "HOME" not in env and "GOCACHE" not in env:
        env["GOCACHE"] = str(workdir / "gocache")
    return subprocess.run(
        [go, "run", str(src)], check=True, capture_output=True, env=env, cwd=workdir, timeout=300
    ).stdout
