"""`transship analyze`: why images are big, what they share, what an offload layer saves."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from transship.cli.common import EXIT_FAILED, fail, get_config, handle_errors, stderr
from transship.cli.main import app
from transship.i18n import t

# The analyzer and its renderers load when the command runs, not on every start.
if TYPE_CHECKING:
    from transship.slim.analyze import AnalyzeOptions
    from transship.slim.analyze.image_reader import ImageInput
    from transship.slim.analyze.model import AnalysisReport


@app.command()
@handle_errors
def analyze(
    images: list[str] = typer.Argument(
        None,
        help="Images: docker://host/repo:tag, oci:DIR[:ref], oci-archive:FILE, "
        "docker-archive:FILE[:name:tag], bundle:META.json (all its images).",
    ),
    platform: str = typer.Option(
        "linux/amd64",
        "--platform",
        help="Platform to analyze in multi-arch images (os/arch or os/arch/variant).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report to FILE."),
    min_images: int = typer.Option(
        2, "--min-images", min=1, help="Offload files carried by at least K images (K)."
    ),
    releases: int = typer.Option(
        10, "--releases", min=1, help="Releases to project the offload savings over (N)."
    ),
    compare: tuple[str, str] | None = typer.Option(
        None, "--compare", help="OLD NEW: what changed between two versions (hot/cold)."
    ),
    top: int = typer.Option(15, "--top", min=1, help="Rows in each 'biggest' list."),
    workers: int = typer.Option(2, "--workers", min=1, help="Layers read in parallel."),
    config: str = typer.Option(
        None, "--config", "-c", help="Config file (registries, credentials)."
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Registries speak plain http."),
    skip_verify: bool = typer.Option(
        False, "--skip-tls-verify", help="Do not verify TLS certificates."
    ),
) -> None:
    """Analyze images: layer sizes and the steps that made them, wasted bytes, biggest files,
    duplicates, layers shared across images, an offload-layer recommendation and, with
    --compare, what changed between two versions."""
    from transship.cli.image_sources import SourceOpener
    from transship.oci.descriptor import Platform
    from transship.slim.analyze import AnalyzeOptions
    from transship.slim.analyze.render_text import render_report
    from transship.slim.analyze.report_html import render_html

    try:
        wanted_platform = Platform.parse(platform)
    except ValueError as e:
        raise fail(t("analyze.cli.bad_platform", reason=str(e))) from None
    compare_pair = compare if compare and all(compare) else None
    specs = list(images or [])
    if not specs and not compare_pair:
        raise fail(t("analyze.cli.no_images"))
    opener = SourceOpener(
        get_config(config), maxconn=workers, insecure=insecure, skip_verify=skip_verify
    )
    try:
        release = [i for spec in dict.fromkeys(specs) for i in opener.images(spec)]
        extra = [
            i
            for spec in dict.fromkeys(compare_pair or ())
            if spec not in specs
            for i in opener.images(spec)
        ]
        options = AnalyzeOptions(
            platform=wanted_platform,
            min_images=min_images,
            releases=releases,
            limit=top,
            workers=workers,
            compare=compare_pair,
            release=frozenset(i.name for i in release),
        )
        report = _run([*release, *extra], options)
    finally:
        opener.close()
    if html:
        try:
            html.write_text(render_html(report, top), encoding="utf-8")
        except OSError as e:
            raise fail(t("analyze.cli.cannot_write", path=html, reason=e.strerror or e)) from None
    if json_output:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        render_report(report, Console(highlight=False, soft_wrap=False), top)
        if html:
            stderr.print(t("analyze.cli.html_written", path=html))
    _finish(report, compare_pair)


def _run(inputs: list[ImageInput], options: AnalyzeOptions) -> AnalysisReport:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from transship.slim.analyze import LayerScanned, analyze_images

    if not stderr.is_terminal:
        return analyze_images(inputs, options)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task(t("analyze.cli.progress"), total=None)

        def on_layer(event: LayerScanned) -> None:
            progress.update(task, completed=event.done, total=event.total)

        return analyze_images(inputs, options, on_layer)


def _finish(report: AnalysisReport, compare: tuple[str, str] | None) -> None:
    """One failing image does not stop the others, but the run says so and exits non-zero."""
    failed = {e.image for e in report.errors}
    for error in report.errors:
        stderr.print(
            f"error: {t('analyze.error.image', image=error.image, message=error.message)}",
            markup=False,
            soft_wrap=True,
        )
    if compare:
        for name in compare:
            if name in failed:
                stderr.print(
                    f"error: {t('analyze.cli.compare_missing', image=name)}",
                    markup=False,
                    soft_wrap=True,
                )
    if failed:
        total = len(report.images) + len(failed)
        stderr.print(
            t("analyze.cli.failed", count=len(failed), total=total), markup=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_FAILED)
