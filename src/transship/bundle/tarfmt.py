"""Plain tar, written and read by hand so blobs stream through without being buffered.

Writing: a member is a header (built by `tarfile`), the data streamed as it arrives, then
zero padding to the next 512-byte block. The archive ends with two zero blocks.

Reading: archives made by other tools (image-transmit, docker save, skopeo) are indexed
by walking their headers; every member name is checked so that a crafted archive cannot
make us read or write outside the place it belongs (`../`, absolute paths, links).
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from transship.errors import BundleError

BLOCK = 512
EOF_MARKER = b"\0" * (2 * BLOCK)
# Fixed metadata keeps data files reproducible: same blobs, same bytes.
_MTIME = 0
_MODE = 0o644


def padding(size: int) -> int:
    """Zero bytes that follow `size` bytes of member data."""
    return -size % BLOCK


def member_header(name: str, size: int) -> bytes:
    """The header (plus a PAX header when the size or name needs one) of a regular file."""
    check_member_name(name)
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = _MTIME
    info.mode = _MODE
    info.type = tarfile.REGTYPE
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def member_span(name: str, size: int) -> int:
    """Bytes a member occupies in the archive: header, data, padding."""
    return len(member_header(name, size)) + size + padding(size)


def unsafe_name_reason(name: str) -> str | None:
    """Why a member name could escape the folder it is read into, or None if it is safe."""
    if not name:
        return "empty name"
    if "\0" in name:
        return "NUL byte in name"
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "parent directory reference (..)"
    return None


def check_member_name(name: str, where: str = "archive") -> None:
    reason = unsafe_name_reason(name)
    if reason:
        raise BundleError(f"{where}: unsafe tar member {name!r}: {reason}")


def normalize_member_name(name: str) -> str:
    """`./blobs/sha256/x` and `blobs//sha256/x` both name `blobs/sha256/x`."""
    cleaned = posixpath.normpath(name.replace("\\", "/"))
    return "" if cleaned == "." else cleaned


@dataclass(frozen=True)
class TarMember:
    name: str  # normalized
    offset: int  # where the data starts in the archive
    size: int
    kind: str  # "file" | "dir" | "symlink" | "hardlink" | "other"
    link_target: str = ""  # normalized, for links


def _kind_of(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "other"


def _link_target(name: str, linkname: str, symbolic: bool) -> str | None:
    """The member a link points to, or None when it would leave the archive."""
    if not linkname or linkname.startswith("/"):
        return None
    # A symlink is relative to its own folder, a hard link to the archive root.
    joined = posixpath.join(posixpath.dirname(name), linkname) if symbolic else linkname
    target = normalize_member_name(joined)
    if not target or target == ".." or target.startswith("../"):
        return None
    return target


def scan_archive(path: Path, allow_links: bool = False) -> Iterator[TarMember]:
    """Every member of a tar archive, names checked. Links are refused unless
    `allow_links`; then their targets must stay inside the archive too."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            for info in archive:
                name = normalize_member_name(info.name)
                reason = unsafe_name_reason(info.name) or unsafe_name_reason(name)
                if reason:
                    raise BundleError(f"{path.name}: unsafe tar member {info.name!r}: {reason}")
                kind = _kind_of(info)
                target = ""
                if kind in ("symlink", "hardlink"):
                    if not allow_links:
                        raise BundleError(
                            f"{path.name}: tar member {info.name!r} is a link; "
                            "bundle data files hold only regular files"
                        )
                    target = _link_target(name, info.linkname, symbolic=kind == "symlink")
                    if target is None:
                        raise BundleError(
                            f"{path.name}: link {info.name!r} -> {info.linkname!r} "
                            "points outside the archive"
                        )
                yield TarMember(name, info.offset_data, info.size, kind, target)
    except tarfile.TarError as e:
        raise BundleError(f"{path.name}: not a valid tar archive ({e})") from None
    except FileNotFoundError:
        raise BundleError(f"{path}: file not found") from None


def index_archive(path: Path, allow_links: bool = False) -> dict[str, TarMember]:
    """Regular files by normalized name; links resolved to the file they point to."""
    files: dict[str, TarMember] = {}
    links: list[TarMember] = []
    for member in scan_archive(path, allow_links=allow_links):
        if member.kind == "file":
            files[member.name] = member
        elif member.kind in ("symlink", "hardlink"):
            links.append(member)
    for link in links:
        target, seen = link.link_target, set()
        while target not in files and target not in seen:
            seen.add(target)
            nxt = next((m for m in links if m.name == target), None)
            if nxt is None:
                break
            target = nxt.link_target
        if target in files:
            found = files[target]
            files[link.name] = TarMember(link.name, found.offset, found.size, "file")
    return files


def check_header_before(data: bytes, expected_name: str, expected_size: int, where: str) -> None:
    """`data` is the 512-byte block just before a member's data: it must be the header of
    a regular file with the expected name (and size, where the header carries it)."""
    try:
        info = tarfile.TarInfo.frombuf(data, "utf-8", "surrogateescape")
    except tarfile.HeaderError as e:
        raise BundleError(f"{where}: no valid tar header before {expected_name!r} ({e})") from None
    name = info.name
    reason = unsafe_name_reason(name)
    if reason:
        raise BundleError(f"{where}: unsafe tar member {name!r}: {reason}")
    if not info.isreg():
        raise BundleError(f"{where}: tar member {name!r} is not a regular file")
    if normalize_member_name(name) != normalize_member_name(expected_name):
        raise BundleError(f"{where}: expected tar member {expected_name!r}, found {name!r}")
    # A PAX header carries sizes over 8 GiB; the plain header then says 0.
    if info.size not in (expected_size, 0):
        raise BundleError(
            f"{where}: tar member {name!r} has {info.size} bytes, meta says {expected_size}"
        )
