"""SZ003, SZ004, SZ008: files that one step adds and a later step deletes, changes or unpacks.

Each step's layer stores the files it changed. Deleting a file in a later step only adds a
"whiteout" marker; changing its owner, mode or place copies the whole file into the new
layer. Either way the image carries the bytes twice or for nothing.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from transship.slim.lint.parser import heredoc_marker
from transship.slim.lint.rules.base import (
    Hit,
    LintContext,
    Severity,
    covers,
    hit,
    is_under,
    rule,
)
from transship.slim.lint.rules.caches import cache_kind_of_path
from transship.slim.lint.shell import ShellCommand
from transship.slim.lint.stages import Step, resolve_path

# Directories too broad to say "this path came from that COPY" when something under them goes.
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/tmp",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/lib",
        "/usr/local/share",
        "/usr/sbin",
        "/usr/share",
        "/var",
        "/var/lib",
        "/var/tmp",
        "/var/cache",
        "/var/log",
        "/var/www",
    }
)
ARCHIVE_SUFFIXES = (
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tar.zst",
    ".tzst",
    ".tar",
    ".zip",
    ".7z",
    ".rar",
    ".gz",
    ".bz2",
    ".xz",
    ".zst",
    ".deb",
    ".rpm",
    ".whl",
)
# ADD unpacks a local tar (plain, gzip, bzip2, xz) by itself: nothing is kept packed.
ADD_UNPACKS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
_GLOB_CHARS = "*?["


@dataclass
class Added:
    """A path some step put into the image."""

    path: str
    step: Step
    is_dir: bool
    context_source: str | None = None  # the local source, relative to the build context
    is_glob: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_glob = any(c in self.path for c in _GLOB_CHARS)


def is_url(text: str) -> bool:
    return "://" in text or text.startswith("git@")


def archive_suffix(path: str) -> str | None:
    lowered = path.lower().rstrip("/")
    return next((s for s in ARCHIVE_SUFFIXES if lowered.endswith(s)), None)


def copy_additions(step: Step, context_dir: Path | None) -> list[Added]:
    """What a COPY or ADD puts where (Docker copies a directory's contents, not the directory)."""
    destination = step.destination
    into_dir = destination.endswith("/") or len(step.sources) > 1 or destination in (".", "./")
    base = step.resolve(destination)
    local = step.instruction.flag("from") is None
    added: list[Added] = []
    for source in step.sources:
        marker = heredoc_marker(source)
        if marker is not None:
            path = posixpath.join(base, marker[0]) if into_dir else base
            added.append(Added(path, step, False))
            continue
        if is_url(source):
            name = posixpath.basename(source.split("?", 1)[0].rstrip("/"))
            added.append(Added(posixpath.join(base, name) if into_dir else base, step, False))
            continue
        suffix = archive_suffix(source)
        if step.keyword == "ADD" and local and suffix in ADD_UNPACKS:
            added.append(Added(base, step, True))
            continue
        context_source = source if local else None
        if _is_directory_source(source, context_dir if local else None):
            added.append(Added(base, step, True, context_source))
        elif into_dir:
            path = posixpath.join(base, posixpath.basename(source.rstrip("/")))
            added.append(Added(path, step, False, context_source))
        else:
            added.append(Added(base, step, False, context_source))
    return added


def _is_directory_source(source: str, context_dir: Path | None) -> bool:
    cleaned = source.rstrip("/")
    if cleaned in ("", ".", "*", "./*") or source.endswith("/"):
        return True
    if context_dir is not None and not any(c in source for c in _GLOB_CHARS):
        return (context_dir / cleaned.lstrip("/")).is_dir()
    return False


def commands_with_cwd(step: Step) -> Iterator[tuple[str, ShellCommand]]:
    """Each command of a RUN with the directory it runs in, following `cd`."""
    cwd = step.workdir
    for command in step.commands:
        if command.name == "cd" and len(command.argv) > 1 and "$" not in command.argv[1]:
            cwd = resolve_path(cwd, command.argv[1])
        yield cwd, command


def _positional(argv: list[str], value_options: tuple[str, ...] = ()) -> list[str]:
    words: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in value_options:
            skip = True
        elif not word.startswith("-") or word == "-":
            words.append(word)
    return words


def _option_value(argv: list[str], short: str, long: str) -> str | None:
    """The value of an option: ``-o F``, ``-oF``, ``-fsSLo F`` (bundled flags), ``--output=F``."""
    letter = short[1:] if short else ""
    for index, word in enumerate(argv):
        following = argv[index + 1] if index + 1 < len(argv) else None
        if word in (short, long):
            return following
        if word.startswith(long + "="):
            return word[len(long) + 1 :]
        if not letter or word.startswith("--") or not word.startswith("-") or len(word) < 3:
            continue
        bundle = word[1:]
        if bundle.endswith(letter) and bundle[:-1].isalpha():
            return following  # bundled flags ending in the option letter: value follows
        if word.startswith(short):
            return word[len(short) :]  # value attached: -o/tmp/file
    return None


def _url_name(argv: list[str]) -> str | None:
    url = next((w for w in argv if "://" in w), None)
    if not url:
        return None
    return posixpath.basename(url.split("?", 1)[0].rstrip("/")) or None


def run_productions(step: Step) -> list[tuple[str, bool]]:
    """Paths a RUN creates that a later step might delete: downloads, clones, unpacked trees."""
    produced: list[tuple[str, bool]] = []
    for cwd, command in commands_with_cwd(step):
        argv, name = command.argv, command.name
        found: list[tuple[str, bool]] = []
        if name == "curl":
            output = _option_value(argv[1:], "-o", "--output")
            if output:
                found.append((output, False))
            elif ("-O" in argv or "--remote-name" in argv) and _url_name(argv):
                found.append((_url_name(argv) or "", False))
        elif name == "wget":
            output = _option_value(argv[1:], "-O", "--output-document")
            prefix = _option_value(argv[1:], "-P", "--directory-prefix") or "."
            if output and output != "-":
                found.append((output, False))
            elif not output and _url_name(argv):
                found.append((posixpath.join(prefix, _url_name(argv) or ""), False))
        elif name == "git" and len(argv) > 2 and argv[1] == "clone":
            words = _positional(
                argv[2:],
                (
                    "-b",
                    "--branch",
                    "--depth",
                    "-c",
                    "--config",
                    "-o",
                    "--origin",
                    "--reference",
                    "-j",
                    "--jobs",
                    "--filter",
                ),
            )
            if len(words) >= 2:
                found.append((words[1], True))
            elif words:
                found.append((posixpath.basename(words[0].rstrip("/")).removesuffix(".git"), True))
        elif name == "unzip":
            target = _option_value(argv[1:], "-d", "--directory")
            if target:
                found.append((target, True))
        elif name == "tar" and _tar_extracts(argv[1:]):
            target = _option_value(argv[1:], "-C", "--directory")
            if target:
                found.append((target, True))
        elif name in ("cp", "mv"):
            words = _positional(argv[1:], ("-t", "--target-directory"))
            if len(words) >= 2:
                *sources, destination = words
                recursive = any(
                    opt in argv for opt in ("-r", "-R", "-a", "--recursive", "--archive")
                )
                for source in sources:
                    into = destination.endswith("/") or len(sources) > 1
                    path = (
                        posixpath.join(destination, posixpath.basename(source.rstrip("/")))
                        if into
                        else destination
                    )
                    found.append((path, recursive or name == "mv"))
        for redirect in command.redirects:
            if (
                redirect.operator in (">", ">>", "&>", ">|")
                and redirect.target
                and not redirect.target.startswith("/dev/")
            ):
                found.append((redirect.target, False))
        produced.extend(
            (resolve_path(cwd, path), is_dir) for path, is_dir in found if path and "$" not in path
        )
    return produced


def _tar_extracts(args: list[str]) -> bool:
    if not args:
        return False
    first = args[0]
    if not first.startswith("-") and "x" in first:
        return True  # old-style `tar xzf file`
    return any(
        word in ("--extract", "--get")
        or (word.startswith("-") and not word.startswith("--") and "x" in word)
        for word in args
    )


@dataclass
class _Match:
    added: Added
    whole: bool  # True when the path is gone entirely, False when a part of a tree goes


class _Tracker:
    """Paths added so far in the shipped stages, and which later steps touch them."""

    def __init__(self, context: LintContext):
        self.context = context
        self.added: list[Added] = []

    def match(self, path: str) -> _Match | None:
        for item in self.added:
            if covers(path, item.path) or (item.is_glob and fnmatch.fnmatchcase(path, item.path)):
                return _Match(item, True)
        for item in self.added:
            if (
                item.is_dir
                and item.path not in SYSTEM_DIRS
                and is_under(path, item.path)
                and self._exists_in_source(item, path)
            ):
                return _Match(item, False)
        return None

    def _exists_in_source(self, item: Added, path: str) -> bool:
        """With the build context at hand, check the copied tree really had that path."""
        context_dir = self.context.context_dir
        if context_dir is None or item.context_source is None:
            return True
        relative = path[len(item.path.rstrip("/")) + 1 :]
        if any(c in relative for c in _GLOB_CHARS):
            return True
        source_root = context_dir / item.context_source.strip("/").removeprefix("./")
        if item.context_source.strip("/") in ("", ".", "*", "./*"):
            source_root = context_dir
        return (source_root / relative).exists()

    def forget(self, path: str) -> None:
        self.added = [item for item in self.added if not covers(path, item.path)]


def _paths_of(command: ShellCommand, cwd: str, skip_first: bool = False) -> list[tuple[str, str]]:
    words = _positional(command.argv[1:], ("--reference",))
    if skip_first:
        words = words[1:]
    return [
        (word, resolve_path(cwd, word)) for word in words if "$" not in word and "`" not in word
    ]


def _recursive(argv: list[str]) -> bool:
    return any(
        word == "--recursive"
        or (word.startswith("-") and not word.startswith("--") and "R" in word)
        for word in argv[1:]
    )


def _analyse(context: LintContext) -> tuple[list[Hit], list[Hit]]:
    memo = context.memo.get("files")
    if memo is not None:
        return memo
    deleted: list[Hit] = []
    modified: list[Hit] = []
    tracker = _Tracker(context)
    for step in context.shipped_steps():
        if step.keyword in ("COPY", "ADD"):
            tracker.added.extend(copy_additions(step, context.context_dir))
            continue
        if step.keyword != "RUN":
            continue
        removed_here: list[str] = []
        for cwd, command in commands_with_cwd(step):
            if command.name == "rm":
                for word, path in _paths_of(command, cwd):
                    removed_here.append(path)
                    if cache_kind_of_path(path):
                        continue  # package caches are SZ001's business
                    found = tracker.match(path)
                    if found is not None:
                        deleted.append(_hit(step, "SZ003", word, found.added))
                        if found.whole:
                            tracker.forget(path)
            elif command.name in ("chown", "chgrp", "chmod"):
                recursive = _recursive(command.argv)
                for word, path in _paths_of(command, cwd, skip_first=True):
                    found = tracker.match(path)
                    if found is None:
                        continue
                    if recursive or (
                        found.whole and not found.added.is_dir and path == found.added.path
                    ):
                        modified.append(
                            _hit(step, "SZ004", word, found.added, command=command.name)
                        )
                        break
            elif command.name == "mv":
                words = _paths_of(command, cwd)
                for word, path in words[:-1]:
                    found = tracker.match(path)
                    if found is not None:
                        modified.append(_hit(step, "SZ004", word, found.added, command="mv"))
                        tracker.forget(path)
                        break
        for path, is_dir in run_productions(step):
            tracker.added.append(Added(path, step, is_dir))
        for path in removed_here:
            tracker.added = [
                item
                for item in tracker.added
                if item.step is not step or not covers(path, item.path)
            ]
    context.memo["files"] = (deleted, modified)
    return deleted, modified


def _hit(step: Step, rule_id: str, word: str, added: Added, command: str = "") -> Hit:
    return hit(
        step,
        f"lint.{rule_id}.message",
        f"lint.{rule_id}.fix",
        path=word,
        line=added.step.line,
        keyword=added.step.keyword,
        command=command,
    )


@rule("SZ003", "delete-in-later-step", Severity.WARNING)
def delete_in_later_step(context: LintContext) -> list[Hit]:
    return _analyse(context)[0]


@rule("SZ004", "modify-in-later-step", Severity.WARNING)
def modify_in_later_step(context: LintContext) -> list[Hit]:
    return _analyse(context)[1]


@rule("SZ008", "archive-copied", Severity.WARNING)
def archive_copied(context: LintContext) -> list[Hit]:
    hits: list[Hit] = []
    steps = context.shipped_steps()
    for position, step in enumerate(steps):
        if step.keyword not in ("COPY", "ADD"):
            continue
        local = step.instruction.flag("from") is None
        additions = copy_additions(step, context.context_dir)
        for source, added in zip(step.sources, additions, strict=False):
            suffix = archive_suffix(source)
            if suffix is None or heredoc_marker(source) is not None:
                continue
            if step.keyword == "ADD" and local and not is_url(source) and suffix in ADD_UNPACKS:
                continue  # ADD unpacks it; nothing stays packed
            name = posixpath.basename(source.rstrip("/"))
            user = _later_user(steps[position + 1 :], added.path, name)
            fields = {"source": source, "name": name}
            if user is not None:
                hits.append(
                    hit(
                        step,
                        "lint.SZ008.message.unpacked",
                        "lint.SZ008.fix",
                        line=user.line,
                        **fields,
                    )
                )
            else:
                hits.append(hit(step, "lint.SZ008.message.runtime", "lint.SZ008.fix", **fields))
    return hits


def _later_user(steps: list[Step], path: str, name: str) -> Step | None:
    """The first later RUN that names the archive (to unpack or install it)."""
    for step in steps:
        if step.keyword != "RUN":
            continue
        for cwd, command in commands_with_cwd(step):
            for word in command.argv[1:]:
                if "$" in word:
                    continue
                if resolve_path(cwd, word) == path or posixpath.basename(word) == name:
                    return step
    return None
