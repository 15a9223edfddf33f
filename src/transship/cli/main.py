"""The `transship` command: one typer app, one module per command."""

from __future__ import annotations

import typer

from transship import __version__

app = typer.Typer(
    name="transship",
    help="Move container images where they are needed, and make them cheaper to move.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"transship {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Move container images where they are needed, and make them cheaper to move."""


def _register() -> None:
    # Each command module adds its commands to `app` when imported.
    from transship.cli import commands  # noqa: F401


_register()
