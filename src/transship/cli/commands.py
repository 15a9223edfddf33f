"""Imports every command module so that each registers itself on the app."""

# One line per command module; keep sorted.
from transship.cli import (
    analyze,  # noqa: F401
    copy,  # noqa: F401
    inspect,  # noqa: F401
    lint,  # noqa: F401
    load,  # noqa: F401
    offload,  # noqa: F401
    offload_build,  # noqa: F401
    save,  # noqa: F401
    ui,  # noqa: F401
)
