"""Replace files in an application's lib directory by relative symlinks into a shared tree.

For multi-stage builds: the shared (offload) tree ships once in a base layer that many
images share, and each image's own lib layer keeps only what differs plus small links.

Safety rules, which are what make a stale shared tree cost bytes but never break an image:

- a file is linked only when a file in the shared tree has the same bytes, the same
  permission bits and the same owner; anything else is left exactly as it was;
- symlinks are never followed: symlinked directories are not entered, symlinked files are
  not read; a lib symlink that already points into the shared tree counts as linked;
- the check happens again right before each file is replaced, and the replacement is an
  atomic rename of a new symlink over the file.

`plan_offload` only reads; `apply_offload` changes the lib tree.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from transship.errors import TransshipError
from transship.i18n import t

_CHUNK = 1024 * 1024


class OffloadError(TransshipError):
    """A lib or shared tree that cannot be used (missing, unreadable, overlapping)."""


@dataclass(frozen=True)
class FileState:
    """What a file looked like when planned, to notice a change before touching it."""

    size: int
    mtime_ns: int
    inode: int
    mode: int
    uid: int
    gid: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileState:
        return cls(
            info.st_size, info.st_mtime_ns, info.st_ino, info.st_mode, info.st_uid, info.st_gid
        )


@dataclass(frozen=True)
class LinkAction:
    lib_file: Path  # the regular file to replace
    shared_file: Path  # the identical file it will point to
    link_target: str  # relative path written into the symlink
    size: int
    lib_state: FileState
    shared_state: FileState


@dataclass
class OffloadPlan:
    lib_root: Path
    shared_root: Path
    links: list[LinkAction] = field(default_factory=list)
    already_linked: int = 0  # lib symlinks that already point into the shared tree
    different: int = 0  # regular files with no identical shared file
    metadata_differs: int = 0  # same bytes, but other mode or owner: left alone
    empty: int = 0  # empty files: a link would save nothing
    skipped_links: int = 0  # symlinks pointing elsewhere (never followed)
    skipped_special: int = 0  # sockets, fifos, devices

    @property
    def bytes_saved(self) -> int:
        return sum(action.size for action in self.links)


@dataclass
class OffloadResult:
    plan: OffloadPlan
    linked: int = 0
    bytes_saved: int = 0
    changed_since_plan: int = 0  # files that changed between planning and linking: left alone


def _real_directory(path: Path, role: str) -> Path:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise OffloadError(t("offload.error.missing", role=role, path=path)) from None
    except OSError as error:
        raise OffloadError(
            t("offload.error.unreadable", path=path, reason=error.strerror)
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise OffloadError(t("offload.error.not_directory", role=role, path=path))
    if not os.access(path, os.R_OK | os.X_OK):
        raise OffloadError(
            t("offload.error.unreadable", path=path, reason=os.strerror(errno.EACCES))
        )
    return path.resolve()


def _walk(root: Path) -> list[tuple[Path, os.stat_result]]:
    """Every entry under `root` with its lstat, never descending into symlinked directories."""
    entries: list[tuple[Path, os.stat_result]] = []

    def raise_error(error: OSError) -> None:
        raise OffloadError(
            t("offload.error.unreadable", path=error.filename, reason=error.strerror)
        )

    for directory, dirnames, filenames in os.walk(root, onerror=raise_error, followlinks=False):
        for name in sorted(filenames) + sorted(dirnames):
            path = Path(directory, name)
            try:
                info = path.lstat()
            except OSError as error:
                raise OffloadError(
                    t("offload.error.unreadable", path=path, reason=error.strerror)
                ) from None
            if stat.S_ISDIR(info.st_mode):
                continue
            entries.append((path, info))
        # os.walk lists symlinks to directories in dirnames; lstat above saw them as links.
    return entries


def _digest(path: Path, cache: dict[Path, str]) -> str:
    cached = cache.get(path)
    if cached is not None:
        return cached
    hasher = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as stream:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
    except OSError as error:
        raise OffloadError(
            t("offload.error.unreadable", path=path, reason=error.strerror)
        ) from None
    cache[path] = hasher.hexdigest()
    return cache[path]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _points_into(link: Path, shared_root: Path) -> bool:
    """True when a lib symlink resolves (lexically, nothing followed) to a file in the shared tree."""
    try:
        target = os.readlink(link)
    except OSError:
        return False
    resolved = Path(os.path.normpath(os.path.join(link.parent, target)))
    if not _inside(resolved, shared_root) or resolved == shared_root:
        return False
    try:
        # Every directory on the way must be a real directory: no detour through a link.
        for directory in resolved.relative_to(shared_root).parents:
            if directory != Path(".") and not stat.S_ISDIR(
                (shared_root / directory).lstat().st_mode
            ):
                return False
        return stat.S_ISREG(resolved.lstat().st_mode)
    except OSError:
        return False


def _same_metadata(a: os.stat_result, b: os.stat_result) -> bool:
    return (
        stat.S_IMODE(a.st_mode) == stat.S_IMODE(b.st_mode)
        and a.st_uid == b.st_uid
        and a.st_gid == b.st_gid
    )


def plan_offload(lib_dir: Path, shared_dir: Path) -> OffloadPlan:
    """Find the lib files that an identical shared file can replace. Reads only."""
    lib_root = _real_directory(Path(lib_dir), "lib")
    shared_root = _real_directory(Path(shared_dir), "shared")
    if _inside(lib_root, shared_root) or _inside(shared_root, lib_root):
        raise OffloadError(t("offload.error.overlap", lib=lib_root, shared=shared_root))
    by_size: dict[int, list[tuple[Path, os.stat_result]]] = defaultdict(list)
    for path, info in _walk(shared_root):
        if stat.S_ISREG(info.st_mode) and info.st_size > 0:
            by_size[info.st_size].append((path, info))
    plan = OffloadPlan(lib_root, shared_root)
    digests: dict[Path, str] = {}
    for path, info in _walk(lib_root):
        if stat.S_ISLNK(info.st_mode):
            if _points_into(path, shared_root):
                plan.already_linked += 1
            else:
                plan.skipped_links += 1
            continue
        if not stat.S_ISREG(info.st_mode):
            plan.skipped_special += 1
            continue
        if info.st_size == 0:
            plan.empty += 1
            continue
        match = _find_identical(
            path, info, by_size.get(info.st_size, []), lib_root, shared_root, digests
        )
        if match is None:
            plan.different += 1
            continue
        shared_path, shared_info = match
        if not _same_metadata(info, shared_info):
            plan.metadata_differs += 1
            continue
        plan.links.append(
            LinkAction(
                lib_file=path,
                shared_file=shared_path,
                link_target=os.path.relpath(shared_path, path.parent),
                size=info.st_size,
                lib_state=FileState.of(info),
                shared_state=FileState.of(shared_info),
            )
        )
    return plan


def _find_identical(
    path: Path,
    info: os.stat_result,
    candidates: list[tuple[Path, os.stat_result]],
    lib_root: Path,
    shared_root: Path,
    digests: dict[Path, str],
) -> tuple[Path, os.stat_result] | None:
    """An identical shared file: same relative path first, then same name, then any."""
    if not candidates:
        return None
    relative = path.relative_to(lib_root)

    def preference(candidate: tuple[Path, os.stat_result]) -> tuple[int, int, str]:
        shared_path, shared_info = candidate
        same_place = shared_path.relative_to(shared_root) == relative
        same_name = shared_path.name == path.name
        return (
            0 if same_place else 1 if same_name else 2,
            0 if _same_metadata(info, shared_info) else 1,
            str(shared_path),
        )

    wanted = _digest(path, digests)
    identical = [c for c in sorted(candidates, key=preference) if _digest(c[0], digests) == wanted]
    return identical[0] if identical else None


def _unchanged(path: Path, expected: FileState) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and FileState.of(info) == expected


def apply_offload(plan: OffloadPlan) -> OffloadResult:
    """Replace each planned file by its symlink; files changed since planning are skipped."""
    result = OffloadResult(plan)
    for action in plan.links:
        if not (
            _unchanged(action.lib_file, action.lib_state)
            and _unchanged(action.shared_file, action.shared_state)
        ):
            result.changed_since_plan += 1
            continue
        temporary = action.lib_file.with_name(f".{action.lib_file.name}.transship-link")
        try:
            if temporary.is_symlink() or temporary.exists():
                temporary.unlink()
            os.symlink(action.link_target, temporary)
            os.replace(temporary, action.lib_file)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise OffloadError(
                t("offload.error.replace", path=action.lib_file, reason=error.strerror)
            ) from None
        result.linked += 1
        result.bytes_saved += action.size
    return result


def offload_link(lib_dir: Path, shared_dir: Path, dry_run: bool = False) -> OffloadResult:
    """Plan, and unless `dry_run`, apply. The dry-run result reports what would be linked."""
    plan = plan_offload(lib_dir, shared_dir)
    if dry_run:
        return OffloadResult(plan, linked=len(plan.links), bytes_saved=plan.bytes_saved)
    return apply_offload(plan)
