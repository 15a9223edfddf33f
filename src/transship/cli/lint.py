"""`transship lint`: size-focused checks of Dockerfiles, as text, JSON or SARIF.

Exit codes: 0 no finding at or above --fail-on; 1 such findings; 2 a Dockerfile could not
be read or parsed, or the config is wrong (the other files are still linted).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from transship.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, handle_errors
from transship.cli.main import app
from transship.i18n import t

# The linter and its rules load when the command runs, not on every start.
if TYPE_CHECKING:
    from transship.slim.lint import FileReport, LintOptions


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


class FailOn(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    NONE = "none"


def _build_args(values: list[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for value in values:
        name, sep, item = value.partition("=")
        if not sep or not name:
            raise typer.BadParameter(
                t("lint.cli.bad_build_arg", value=value), param_hint="--build-arg"
            )
        args[name] = item
    return args


def _lint_one(path: str, options: LintOptions) -> FileReport:
    from transship.slim.lint import DockerfileError, FileReport, lint_path, lint_text

    try:
        if path == "-":
            findings = lint_text(sys.stdin.read(), "-", options)
        else:
            findings = lint_path(Path(path), options)
    except DockerfileError as error:
        return FileReport(path, error=str(error))
    return FileReport(path, findings)


@app.command("lint", help=t("lint.cli.help"))
@handle_errors
def lint(
    dockerfiles: list[str] = typer.Argument(
        ..., help=t("lint.cli.help.dockerfiles"), metavar="DOCKERFILE..."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TEXT, "--format", "-f", help=t("lint.cli.help.format")
    ),
    as_json: bool = typer.Option(False, "--json", help=t("lint.cli.help.json")),
    as_sarif: bool = typer.Option(False, "--sarif", help=t("lint.cli.help.sarif")),
    output: Path | None = typer.Option(None, "--output", "-o", help=t("lint.cli.help.output")),
    fail_on: FailOn = typer.Option(FailOn.WARNING, "--fail-on", help=t("lint.cli.help.fail_on")),
    config: Path | None = typer.Option(None, "--config", "-c", help=t("lint.cli.help.config")),
    context: Path | None = typer.Option(None, "--context", help=t("lint.cli.help.context")),
    target: str | None = typer.Option(None, "--target", help=t("lint.cli.help.target")),
    build_arg: list[str] = typer.Option([], "--build-arg", help=t("lint.cli.help.build_arg")),
) -> None:
    from transship.slim.lint import (
        LintOptions,
        LintReport,
        Severity,
        load_lint_settings,
        render_json,
        render_sarif,
        render_text,
    )

    if as_json and as_sarif:
        raise typer.BadParameter(t("lint.cli.one_format"), param_hint="--json/--sarif")
    chosen = OutputFormat.JSON if as_json else OutputFormat.SARIF if as_sarif else output_format
    settings, config_path = load_lint_settings(config)
    options = LintOptions(
        settings=settings,
        config_name=str(config_path) if config_path else "transship.yaml",
        context_dir=context,
        build_args=_build_args(build_arg),
        target=target,
    )
    report = LintReport([_lint_one(path, options) for path in dockerfiles])
    if chosen is OutputFormat.JSON:
        rendered = render_json(report)
    elif chosen is OutputFormat.SARIF:
        rendered = render_sarif(report, settings)
    else:
        rendered = render_text(report)
    if output is not None:
        try:
            output.write_text(rendered, encoding="utf-8")
        except OSError as error:
            raise fail(
                t("lint.cli.cannot_write", path=str(output), reason=error.strerror)
            ) from None
    else:
        typer.echo(rendered, nl=False)
    for file_report in report.errors:
        typer.echo(t("lint.cli.file_error", message=file_report.error), err=True)
    if report.errors:
        raise typer.Exit(EXIT_USAGE)
    threshold = None if fail_on is FailOn.NONE else Severity(fail_on.value)
    raise typer.Exit(EXIT_FAILED if report.fails(threshold) else EXIT_OK)
