"""SZ006, SZ007: copying more of the build context than the image needs.

``COPY . /app`` takes everything the context holds: version-control history, caches,
build output, editor backups. Without a .dockerignore all of it is sent to the builder
and lands in the layer.
"""

from __future__ import annotations

import os
from pathlib import Path

from transship.i18n import t
from transship.slim.lint.dockerignore import DockerIgnore, find_dockerignore
from transship.slim.lint.parser import heredoc_marker
from transship.slim.lint.rules.base import Hit, LintContext, Severity, hit, rule
from transship.slim.lint.rules.files import is_url
from transship.slim.lint.stages import Step

VCS_NAMES = frozenset({".git", ".svn", ".hg", ".bzr", "CVS", ".gitmodules"})
BUILD_OUTPUT_NAMES = frozenset(
    {
        "node_modules",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".venv",
        "venv",
        ".gradle",
        ".cache",
        "htmlcov",
        ".coverage",
        ".eggs",
        ".next",
        ".terraform",
    }
)
BUILD_OUTPUT_SUFFIXES = (".pyc", ".pyo", ".o", ".obj", ".egg-info")
# Intermediate build trees that only count when copied whole ("target/app.jar" is fine).
# dist/ and build/ are left alone: in many projects they hold exactly the finished artefact.
WHOLE_BUILD_DIRS = frozenset({"target", "obj"})
TEMP_NAMES = frozenset({"tmp", "temp", ".DS_Store", "Thumbs.db"})
TEMP_SUFFIXES = (".tmp", ".temp", ".swp", ".swo", "~", ".bak", ".orig", ".rej", ".log")
# Hidden files that builds commonly need.
HIDDEN_ALLOWED = frozenset(
    {
        ".npmrc",
        ".yarnrc",
        ".yarnrc.yml",
        ".yarn",
        ".pnpmfile.cjs",
        ".nvmrc",
        ".python-version",
        ".babelrc",
        ".browserslistrc",
        ".dockerignore",
        ".tool-versions",
        ".ruby-version",
        ".bundle",
        ".mvn",
        ".htaccess",
        ".well-known",
    }
)
_WHOLE_CONTEXT = frozenset({"", ".", "*", "**", "/"})


def unwanted_category(path: str, whole_dir: bool = False) -> str | None:
    """Why a context path does not belong in an image: vcs, temp, build or hidden; or None."""
    parts = [p for p in path.replace("\\", "/").split("/") if p and p != "."]
    if not parts:
        return None
    for part in parts:
        if part in VCS_NAMES:
            return "vcs"
    for part in parts:
        if part in BUILD_OUTPUT_NAMES or part.endswith(BUILD_OUTPUT_SUFFIXES):
            return "build"
    if whole_dir and len(parts) == 1 and parts[0] in WHOLE_BUILD_DIRS:
        return "build"
    for part in parts:
        if part in TEMP_NAMES or part.endswith(TEMP_SUFFIXES):
            return "temp"
    for part in parts:
        if part.startswith(".") and part not in ("..",) and part not in HIDDEN_ALLOWED:
            return "hidden"
    return None


def _context_sources(step: Step) -> list[str]:
    """Sources read from the build context (not heredocs, URLs or other stages)."""
    if step.keyword not in ("COPY", "ADD") or step.instruction.flag("from") is not None:
        return []
    return [s for s in step.sources if heredoc_marker(s) is None and not is_url(s)]


def is_whole_context(source: str) -> bool:
    cleaned = source.strip()
    while cleaned.startswith("./"):
        cleaned = cleaned[2:]
    cleaned = cleaned.rstrip("/")
    return cleaned in _WHOLE_CONTEXT or cleaned in ("*", ".")


def _all_steps(context: LintContext) -> list[Step]:
    return [step for stage in context.model.stages for step in stage.steps]


def _context_entries(context_dir: Path) -> list[tuple[str, bool]]:
    try:
        with os.scandir(context_dir) as entries:
            return sorted((entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries)
    except OSError:
        return []


def _unwanted_entries(context: LintContext, ignore: DockerIgnore | None) -> list[str]:
    if context.context_dir is None:
        return []
    names = []
    for name, is_dir in _context_entries(context.context_dir):
        if unwanted_category(name, whole_dir=is_dir) and not (ignore and ignore.excludes(name)):
            names.append(name + ("/" if is_dir else ""))
    return names


def _format_names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … (+{len(names) - limit})" if len(names) > limit else "")


@rule("SZ006", "context-copy-without-dockerignore", Severity.WARNING)
def context_copy_without_dockerignore(context: LintContext) -> list[Hit]:
    if context.context_dir is None:
        return []  # context unknown (standard input): cannot tell
    if find_dockerignore(context.context_dir, context.dockerfile) is not None:
        return []
    hits: list[Hit] = []
    unwanted = _unwanted_entries(context, None)
    for step in _all_steps(context):
        whole = [s for s in _context_sources(step) if is_whole_context(s)]
        if not whole:
            continue
        extra = t("lint.SZ006.holds", names=_format_names(unwanted)) if unwanted else ""
        hits.append(
            hit(
                step,
                "lint.SZ006.message",
                "lint.SZ006.fix",
                keyword=step.keyword,
                source=whole[0],
                extra=extra,
            )
        )
    return hits


@rule("SZ007", "unwanted-files-copied", Severity.WARNING)
def unwanted_files_copied(context: LintContext) -> list[Hit]:
    hits: list[Hit] = []
    ignore_file = (
        find_dockerignore(context.context_dir, context.dockerfile) if context.context_dir else None
    )
    ignore = DockerIgnore.load(ignore_file) if ignore_file else None
    for step in _all_steps(context):
        for source in _context_sources(step):
            if is_whole_context(source):
                if ignore is None:
                    continue  # SZ006 already says it
                names = _unwanted_entries(context, ignore)
                if names:
                    hits.append(
                        hit(
                            step,
                            "lint.SZ007.message.context",
                            "lint.SZ007.fix.context",
                            names=_format_names(names),
                            ignore_file=ignore_file.name if ignore_file else "",
                        )
                    )
                continue
            is_dir = source.endswith("/") or (
                context.context_dir is not None
                and (context.context_dir / source.strip("/")).is_dir()
            )
            category = unwanted_category(
                source.rstrip("/"), whole_dir=is_dir or "/" not in source.rstrip("/")
            )
            if category is None or (
                category == "build" and not _is_whole_build_dir(source, is_dir)
            ):
                continue
            hits.append(
                hit(step, f"lint.SZ007.message.{category}", "lint.SZ007.fix", source=source)
            )
    return hits


def _is_whole_build_dir(source: str, is_dir: bool) -> bool:
    """A named cache/output path, or a top-level build directory copied whole."""
    cleaned = source.strip("/").removeprefix("./")
    if unwanted_category(cleaned, whole_dir=False) == "build":
        return True
    return "/" not in cleaned and (is_dir or source.endswith("/") or "." not in cleaned)
