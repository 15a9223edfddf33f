"""SZ001, SZ002: package-manager caches that stay in a layer.

A layer is a diff: what one RUN writes stays in the image even when a later RUN deletes
it. So a cache (apt lists, pip's downloads, npm's tarballs) must be avoided or removed in
the same RUN that wrote it, or kept out of layers altogether with a cache mount.
"""

from __future__ import annotations

from dataclasses import dataclass

from transship.i18n import t
from transship.slim.lint.packages import CLEAN, INSTALL, UPDATE, PackageCommand, classify
from transship.slim.lint.rules.base import (
    Hit,
    LintContext,
    Severity,
    covers,
    hit,
    home_normalised,
    rule,
)
from transship.slim.lint.shell import ShellCommand
from transship.slim.lint.stages import Step


@dataclass(frozen=True)
class CacheKind:
    key: str
    directories: tuple[str, ...]  # where the cache lives (~ is the home directory)


CACHE_KINDS = {
    kind.key: kind
    for kind in (
        CacheKind("apt", ("/var/lib/apt/lists",)),
        CacheKind("apk", ("/var/cache/apk", "/etc/apk/cache")),
        CacheKind("dnf", ("/var/cache/dnf", "/var/cache/yum", "/var/cache/libdnf5")),
        CacheKind("zypper", ("/var/cache/zypp",)),
        CacheKind("pip", ("~/.cache/pip",)),
        CacheKind("uv", ("~/.cache/uv",)),
        CacheKind("npm", ("~/.npm",)),
        CacheKind("yarn", ("/usr/local/share/.cache/yarn", "~/.cache/yarn")),
        CacheKind("pnpm", ("~/.local/share/pnpm/store", "~/.cache/pnpm")),
    )
}
_TRUE_WORDS = ("1", "true", "yes", "on")


def cache_kind_of_path(path: str) -> str | None:
    """The cache kind that deleting `path` cleans, if any."""
    normalised = home_normalised(path)
    for kind in CACHE_KINDS.values():
        if any(covers(normalised, directory) for directory in kind.directories):
            return kind.key
    return None


def package_commands(step: Step) -> list[PackageCommand]:
    """The package-manager commands of a RUN step (memoised on the step)."""
    cached = getattr(step, "_package_commands", None)
    if cached is None:
        cached = [p for p in (classify(c) for c in step.commands) if p is not None]
        step._package_commands = cached  # type: ignore[attr-defined]
    return cached


def _kind_of(command: PackageCommand) -> str:
    if command.family == "pip" and command.program == "uv":
        return "uv"
    if command.family == "npm":
        return command.program  # npm, yarn or pnpm
    return command.family


def _writes_cache(command: PackageCommand, step: Step) -> bool:
    family, action = command.family, command.action
    if family == "apt":
        # Debian/Ubuntu images delete downloaded .debs themselves; the lists stay.
        return action == UPDATE
    if family == "apk":
        return action == UPDATE or (action == INSTALL and not command.has_option("--no-cache"))
    if family in ("dnf", "zypper"):
        return action in (INSTALL, UPDATE)
    if family == "pip":
        if action != INSTALL or command.has_option("--no-cache-dir", "--no-cache"):
            return False
        variable = "UV_NO_CACHE" if command.program == "uv" else "PIP_NO_CACHE_DIR"
        return not _is_set(variable, step, command.command)
    if family == "npm":
        return action == INSTALL
    return False


def _is_set(name: str, step: Step, command: ShellCommand | None) -> bool:
    value = (command.assignments.get(name) if command else None) or step.variables.get(name)
    if not value:
        return False
    # pip turns its cache off for any value of PIP_NO_CACHE_DIR; uv wants a true-ish one.
    return name == "PIP_NO_CACHE_DIR" or value.lower() in _TRUE_WORDS


def _cleans(command: ShellCommand, package: PackageCommand | None) -> set[str]:
    """The cache kinds one command removes."""
    if package is not None and package.action == CLEAN:
        if package.family == "apt":
            return set()  # `apt-get clean` empties /var/cache/apt, not the lists
        if package.family == "dnf" and "all" not in (
            package.command.argv if package.command else []
        ):
            return set()
        return {_kind_of(package)}
    if command.name == "uv" and command.argv[1:3] == ["cache", "clean"]:
        return {"uv"}
    if command.name != "rm":
        return set()
    return {
        kind
        for word in command.argv[1:]
        if not word.startswith("-")
        for kind in [cache_kind_of_path(word)]
        if kind
    }


def _mount_exempt(step: Step, kind: str) -> bool:
    for mount in step.mounts:
        if mount.get("type") not in ("cache", "tmpfs"):
            continue
        target = home_normalised(mount.get("target", ""))
        if any(covers(target, directory) for directory in CACHE_KINDS[kind].directories):
            return True
    return False


@dataclass
class _OpenCache:
    kind: str
    step: Step
    program: str


def _analyse(context: LintContext) -> tuple[list[Hit], list[Hit]]:
    memo = context.memo.get("caches")
    if memo is not None:
        return memo
    later_cleanup: list[Hit] = []
    open_caches: dict[str, list[_OpenCache]] = {}
    for step in context.shipped_steps():
        if step.keyword != "RUN":
            continue
        produced: dict[str, str] = {}
        for package in package_commands(step):
            kind = _kind_of(package)
            if _writes_cache(package, step) and not _mount_exempt(step, kind):
                produced.setdefault(kind, package.program)
        cleaned: set[str] = set()
        for command in step.commands:
            cleaned |= _cleans(command, classify(command))
        for kind in sorted(cleaned):
            if kind in produced:
                # A step that cleans its own cache is fine; earlier layers keep theirs (SZ002).
                continue
            earlier = open_caches.pop(kind, [])
            if earlier:
                lines = ", ".join(str(item.step.line) for item in earlier)
                later_cleanup.append(
                    hit(
                        step,
                        "lint.SZ001.message",
                        "lint.SZ001.fix",
                        lines=lines,
                        tool=earlier[0].program,
                        what=t(f"lint.cache.what.{kind}"),
                        cache_fix=_cache_fix(kind, earlier[0].program),
                    )
                )
        for kind, program in produced.items():
            if kind not in cleaned:
                open_caches.setdefault(kind, []).append(_OpenCache(kind, step, program))
    never_cleaned = [
        hit(
            item.step,
            "lint.SZ002.message",
            "lint.SZ002.fix",
            tool=item.program,
            what=t(f"lint.cache.what.{kind}"),
            cache_fix=_cache_fix(kind, item.program),
            directory=CACHE_KINDS[kind].directories[0].replace("~", "/root"),
        )
        for kind, items in open_caches.items()
        for item in items
    ]
    never_cleaned.sort(key=lambda h: h.line)
    context.memo["caches"] = (later_cleanup, never_cleaned)
    return later_cleanup, never_cleaned


def _cache_fix(kind: str, program: str) -> str:
    return t(f"lint.cache.fix.{kind}", tool=program)


@rule("SZ001", "cache-cleanup-in-later-step", Severity.WARNING)
def cache_cleanup_in_later_step(context: LintContext) -> list[Hit]:
    return _analyse(context)[0]


@rule("SZ002", "package-cache-kept", Severity.WARNING)
def package_cache_kept(context: LintContext) -> list[Hit]:
    return _analyse(context)[1]
