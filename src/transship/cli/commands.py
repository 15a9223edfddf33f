"""Imports every command module so that each registers itself on the app."""

# One line per command module; keep sorted.
from transship.cli import analyze  # noqa: F401
from transship.cli import copy  # noqa: F401
from transship.cli import lint  # noqa: F401
from transship.cli import offload  # noqa: F401
from transship.cli import offload_build  # noqa: F401
from transship.cli import ui  # noqa: F401
