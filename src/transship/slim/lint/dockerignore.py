""".dockerignore patterns, matched as Docker does.

One pattern a line; ``#`` starts a comment line; a leading ``!`` re-includes; the last
matching pattern wins. Patterns are cleaned paths relative to the context root (a leading
``/`` is dropped); ``*`` and ``?`` do not cross ``/``, ``**`` matches any number of
directories, and a pattern that matches a directory excludes everything in it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool  # a `!pattern` that puts files back


class DockerIgnore:
    def __init__(self, lines: list[str]):
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            cleaned = posixpath.normpath(line).lstrip("/")
            if cleaned in ("", "."):
                cleaned = "."
            self.patterns.append(_Pattern(re.compile(_to_regex(cleaned)), exclusion))

    @classmethod
    def load(cls, path: Path) -> DockerIgnore:
        return cls(path.read_text(encoding="utf-8", errors="replace").splitlines())

    def excludes(self, relative_path: str) -> bool:
        """True when the context file or directory at `relative_path` is left out."""
        path = posixpath.normpath(relative_path).lstrip("/")
        candidates = _self_and_parents(path)
        excluded = False
        for pattern in self.patterns:
            if any(pattern.regex.fullmatch(candidate) for candidate in candidates):
                excluded = not pattern.exclusion
        return excluded


def _self_and_parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:count]) for count in range(1, len(parts) + 1)]


def _to_regex(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def find_dockerignore(context_dir: Path, dockerfile: Path | None) -> Path | None:
    """The ignore file BuildKit would use: ``<Dockerfile>.dockerignore`` first, then the context's."""
    if dockerfile is not None:
        beside = dockerfile.with_name(dockerfile.name + ".dockerignore")
        if beside.is_file():
            return beside
    candidate = context_dir / ".dockerignore"
    return candidate if candidate.is_file() else None
