"""What a lint rule is: an id, a name, a default severity, and a check over the build model."""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from transship.i18n import t
from transship.slim.lint.stages import BuildModel, Step


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 1, "warning": 2, "error": 3}[self.value]


@dataclass(frozen=True)
class Hit:
    """One problem a rule found, before config and inline comments are applied."""

    line: int
    end_line: int
    message: str
    fix: str


@dataclass
class LintContext:
    """Everything a rule may look at."""

    model: BuildModel
    dockerfile: Path | None  # None when read from standard input
    context_dir: Path | None  # the build context, when known
    approved_bases: list[str] = field(default_factory=list)
    config_name: str = "transship.yaml"
    memo: dict[str, Any] = field(default_factory=dict)  # results shared by related rules

    def shipped_steps(self) -> list[Step]:
        """Steps whose layers the final image carries, in build order."""
        return self.model.target.steps_in_lineage()


Check = Callable[[LintContext], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: Severity
    check: Check

    @property
    def title(self) -> str:
        return t(f"lint.{self.id}.title")

    @property
    def summary(self) -> str:
        return t(f"lint.{self.id}.summary")


RULES: dict[str, Rule] = {}


def rule(rule_id: str, name: str, severity: Severity) -> Callable[[Check], Check]:
    """Register a check function as a rule."""

    def register(check: Check) -> Check:
        if rule_id in RULES:
            raise ValueError(f"rule {rule_id} registered twice")
        RULES[rule_id] = Rule(rule_id, name, severity, check)
        return check

    return register


def hit(step_or_line: Step | int, message_key: str, fix_key: str, **fields: object) -> Hit:
    """A Hit with its message and fix looked up in the message catalogue."""
    if isinstance(step_or_line, int):
        line = end_line = step_or_line
    else:
        line, end_line = step_or_line.line, step_or_line.instruction.end_line
    return Hit(line, end_line, t(message_key, **fields), t(fix_key, **fields))


# --- small path helpers shared by rules ----------------------------------------------

HOME = "~"
_HOME_PREFIXES = ("$HOME", "${HOME}", "/root")


def home_normalised(path: str) -> str:
    """``/root/.npm``, ``$HOME/.npm``, ``/home/app/.npm`` → ``~/.npm``."""
    for prefix in _HOME_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return HOME + path[len(prefix) :]
    if path.startswith("/home/"):
        parts = path.split("/", 3)
        return HOME + ("/" + parts[3] if len(parts) > 3 else "")
    return path


@lru_cache(maxsize=4096)
def strip_globs(path: str) -> str:
    """``/var/lib/apt/lists/*`` → ``/var/lib/apt/lists``: a trailing "everything in" means the dir."""
    for suffix in ("/*", "/**", "/.*", "/"):
        while len(path) > 1 and path.endswith(suffix):
            path = path[: -len(suffix)]
    return path or "/"


_GLOB_CHARS = frozenset("*?[")


def covers(pattern: str, path: str) -> bool:
    """True when deleting `pattern` (maybe a glob) deletes `path` or everything in it."""
    pattern = strip_globs(pattern)
    if pattern in ("/", HOME, ""):
        return False
    if _GLOB_CHARS.isdisjoint(pattern):
        return path == pattern or path.startswith(pattern + "/")
    parts = path.split("/")
    for count in range(1, len(parts) + 1):
        prefix = "/".join(parts[:count])
        if prefix and fnmatch.fnmatchcase(prefix, pattern):
            return True
    return False


def is_under(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def iter_rules() -> Iterator[Rule]:
    return iter(sorted(RULES.values(), key=lambda r: r.id))
