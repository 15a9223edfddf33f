"""Every command's --help renders (help texts pass through rich markup)."""

import subprocess
import sys

import pytest

COMMANDS = [
    [],
    ["copy"],
    ["save"],
    ["load"],
    ["inspect"],
    ["analyze"],
    ["lint"],
    ["offload"],
    ["offload", "link"],
    ["offload", "dockerfile"],
    ["offload", "build"],
    ["ui"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_renders(command):
    result = subprocess.run(
        [sys.executable, "-m", "transship", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage" in result.stdout
