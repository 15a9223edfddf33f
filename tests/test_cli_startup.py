"""Starting `transship` must stay cheap: the command modules load typer and rich only, and each
command imports the engine, the registry client, the analyzer or the linter when it runs.

The check is on which modules get imported (deterministic), not on how long it takes."""

from __future__ import annotations

import subprocess
import sys

import pytest

# What `transship --version` and `--help` must not pay for.
HEAVY = (
    "httpx",
    "httpcore",
    "pydantic",
    "yaml",
    "zstandard",
    "isal",
    "transship.config",
    "transship.registry",
    "transship.engine.copy",
    "transship.engine.session",
    "transship.transports.factory",
    "transship.slim.analyze",
    "transship.slim.lint",
    "transship.bundle",
    "transship.web",
)


def imported_modules(*python_args: str) -> list[str]:
    """The modules imported by `python -X importtime ARGS`, leaving out the interpreter's own
    start-up (everything `site` imports comes before `site` itself in the output)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *python_args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = [
        line.rsplit("|", 1)[1].rstrip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    ]
    # A top-level import is written with one space after the bar, nested ones indented more.
    start = names.index(" site") + 1 if " site" in names else 0
    return [n.strip() for n in names[start:]]


def heavy_among(modules: list[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy))


def test_importing_the_app_loads_no_heavy_module() -> None:
    modules = imported_modules("-c", "import transship.cli.main")
    # The app and every command module are there: the commands are still registered.
    assert "transship.cli.main" in modules
    assert {"transship.cli.copy", "transship.cli.lint", "transship.cli.analyze"} <= set(modules)
    assert heavy_among(modules) == []


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_help_load_no_heavy_module(argv: list[str]) -> None:
    modules = imported_modules("-m", "transship", *argv)
    assert "transship.cli.main" in modules
    assert heavy_among(modules) == []


def test_command_help_does_not_load_the_engine() -> None:
    # typer itself may use pydantic to coerce a command's parameters; the rest stays unloaded.
    modules = imported_modules("-m", "transship", "copy", "--help")
    assert "transship.cli.copy" in modules
    assert heavy_among(modules, tuple(h for h in HEAVY if h != "pydantic")) == []


def test_the_check_sees_heavy_imports() -> None:
    # The same parsing finds the engine when it is imported, so the tests above can fail.
    modules = imported_modules("-c", "import transship.cli.main, transship.engine.copy")
    assert "transship.engine.copy" in heavy_among(modules)
