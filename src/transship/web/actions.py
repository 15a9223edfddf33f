"""What the UI's buttons do: validate a request, then run it as a background job.

Each `prepare_*` function checks the request at once (so a mistake is answered with a 400
before anything starts) and returns the job's parameters for the history and the function
the job thread runs. The work itself is done by the same library functions the CLI calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from transship.config import Config
from transship.engine import events as ev
from transship.engine.copy import CopyOptions
from transship.engine.jobs import InvalidLine
from transship.engine.session import (
    ListPlan,
    check_images,
    find_bundle_meta,
    open_cache,
    open_client,
    plan_list,
    plan_save,
    run_copy,
    run_load,
    run_save,
)
from transship.errors import ConfigError, UnsupportedError
from transship.oci.descriptor import Platform
from transship.reference import parse_image_list
from transship.web.jobs import Job

Runner = Callable[[Job], None]


class JobRequest(BaseModel):
    """The form: registries by their config name, the image list, tuning."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = None  # empty: every line names its registry
    target: str | None = None
    images: str = ""
    maxconn: int | None = Field(default=None, ge=1, le=64)
    retries: int | None = Field(default=None, ge=0, le=20)
    platforms: list[str] = Field(default_factory=list)
    bundle: str | None = None  # bundle path, for save and load
    # Save only: how layers are stored (`transship save --codec/--dedup-effort`).
    codec: Literal["raw", "dedup"] = "raw"
    dedup_effort: Literal["max", "balanced", "fast"] = "balanced"


@dataclass(frozen=True)
class PreparedJob:
    kind: str
    params: dict[str, Any]
    runner: Runner


@dataclass(frozen=True)
class Feature:
    available: bool
    note: str = ""  # why it is not available
    code: str = ""  # the note's message key on the page: web.feature.<code>


def features() -> dict[str, Feature]:
    """Which actions this build can run; the page disables the others and says why."""
    try:
        import transship.transports.bundle  # noqa: F401
        import transship.transports.factory  # noqa: F401

        bundles = Feature(True)
    except ImportError:
        bundles = Feature(False, "bundles are not available in this build yet", "bundles_pending")
    try:
        import transship.slim.analyze  # noqa: F401

        analyze = Feature(True)
    except ImportError:
        analyze = Feature(False, "image analysis is not available in this build", "analyze_missing")
    return {
        "check": Feature(True),
        "copy": Feature(True),
        "save": bundles,
        "load": bundles,
        "analyze": analyze,
    }


def prepare(kind: str, cfg: Config, request: JobRequest) -> PreparedJob:
    feature = features().get(kind)
    if feature is None:
        raise UnsupportedError(f"unknown action {kind!r}")
    if not feature.available:
        raise UnsupportedError(f"{kind}: {feature.note}")
    return _PREPARERS[kind](cfg, request)


# -- check and copy ----------------------------------------------------------------------------
def _plan(cfg: Config, request: JobRequest) -> ListPlan:
    if not request.target:
        raise ConfigError("choose a target registry")
    lines = parse_image_list(request.images)
    if not lines:
        raise ConfigError("the image list is empty: paste one image per line")
    return plan_list(cfg, lines, source=request.source or None, target=request.target)


def _params(request: JobRequest, plan: ListPlan) -> dict[str, Any]:
    return {
        "source": request.source or "",
        "target": request.target or "",
        "images": len(plan.planned) + len(plan.invalid),
    }


def _report_invalid_lines(job: Job, invalid: list[InvalidLine]) -> None:
    for line in invalid:
        job.emit(
            ev.ImageFailed(
                image=line.text,
                target="",
                reason=f"line {line.line_number}: {line.reason}",
                invalid=True,
            )
        )


def prepare_check(cfg: Config, request: JobRequest) -> PreparedJob:
    plan = _plan(cfg, request)
    _copy_options(cfg, request)  # the same form copies next: refuse what copy would refuse

    def run(job: Job) -> None:
        job.stats.set_total(len(plan.planned) + len(plan.invalid))
        _report_invalid_lines(job, plan.invalid)
        job.emit(ev.RunStarted(images=len(plan.planned)))
        started = time.monotonic()
        ok = failed = invalid = 0
        failures: list[tuple[str, str]] = []
        for result in check_images(cfg, plan.planned, plan.target.host, cancel=job.cancel):
            label = result.planned.job.label
            if result.ok:
                ok += 1
                job.emit(ev.ImageDone(image=label, target=result.target, digest=result.digest))
                continue
            invalid += result.invalid
            failed += not result.invalid
            failures.append((label, result.error))
            job.emit(
                ev.ImageFailed(
                    image=label, target=result.target, reason=result.error, invalid=result.invalid
                )
            )
        job.emit(
            ev.RunDone(
                ok=ok,
                failed=failed,
                invalid=invalid,
                blobs_copied=0,
                blobs_skipped=0,
                blobs_mounted=0,
                bytes_sent=0,
                seconds=time.monotonic() - started,
                failures=tuple(failures),
            )
        )

    return PreparedJob("check", _params(request, plan), run)


def _copy_options(cfg: Config, request: JobRequest) -> CopyOptions:
    try:
        platforms = tuple(Platform.parse(p) for p in request.platforms if p.strip())
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return CopyOptions(
        maxconn=request.maxconn or cfg.maxconn,
        retries=cfg.retries if request.retries is None else request.retries,
        platforms=platforms,
        backoff_base=cfg.retry_backoff,
    )


def prepare_copy(cfg: Config, request: JobRequest) -> PreparedJob:
    plan = _plan(cfg, request)
    options = _copy_options(cfg, request)

    def run(job: Job) -> None:
        options.cancel = job.cancel
        job.stats.set_total(len(plan.planned) + len(plan.invalid))
        _report_invalid_lines(job, plan.invalid)
        run_copy(
            cfg, plan.planned, plan.target, options, job.emit, blob_cache=open_cache(cfg, None)
        )

    return PreparedJob("copy", _params(request, plan), run)


# -- bundles ------------------------------------------------------------------------------------
def _bundle_path(request: JobRequest) -> str:
    if not request.bundle or not request.bundle.strip():
        raise ConfigError("give the bundle directory")
    return request.bundle.strip()


def prepare_save(cfg: Config, request: JobRequest) -> PreparedJob:
    """Registry -> bundle (image-transmit's "download"), its layers as they are or, with
    the dedup codec, as file contents stored once."""
    from transship.bundle.codec_choice import make_codec

    bundle = _bundle_path(request)
    lines = parse_image_list(request.images)
    if not lines:
        raise ConfigError("the image list is empty: paste one image per line")
    plan = plan_save(cfg, lines, source=request.source or None)
    options = _copy_options(cfg, request)
    codec = make_codec(request.codec, request.dedup_effort)

    def run(job: Job) -> None:
        options.cancel = job.cancel
        job.stats.set_total(len(plan.planned) + len(plan.invalid))
        _report_invalid_lines(job, plan.invalid)
        _, written = run_save(
            cfg,
            plan.planned,
            bundle,
            options,
            job.emit,
            blob_cache=open_cache(cfg, None),
            codec=codec,
        )
        if written is not None:
            _report_bundle_written(job, written)

    params = {
        "source": request.source or "",
        "bundle": bundle,
        "images": len(plan.planned) + len(plan.invalid),
        "codec": request.codec,
    }
    if request.codec == "dedup":
        params["dedup_effort"] = request.dedup_effort
    return PreparedJob("save", params, run)


def _report_bundle_written(job: Job, meta_path: Path) -> None:
    """Where the bundle is, and what the codec did (the lines `transship save` prints)."""
    from transship.bundle.codec_choice import codec_stats
    from transship.i18n import LANGUAGES
    from transship.slim.analyze.formatting import human_bytes  # as the CLI shows sizes

    stats = codec_stats(meta_path)  # read once, told in every language
    job.record(
        {
            "event": "BundleWritten",
            "time": time.time(),
            "path": str(meta_path),
            # The page picks the language it shows.
            "summary": {
                lang: stats.summary_lines(human_bytes, lang) if stats else [] for lang in LANGUAGES
            },
        }
    )


def prepare_load(cfg: Config, request: JobRequest) -> PreparedJob:
    """Bundle -> registry (image-transmit's "upload"); the image list, if any, picks images."""
    bundle = str(find_bundle_meta(_bundle_path(request)))
    if not request.target:
        raise ConfigError("choose a target registry")
    target = cfg.registry(request.target)
    only = [line.source for line in parse_image_list(request.images)]
    options = _copy_options(cfg, request)

    def run(job: Job) -> None:
        options.cancel = job.cancel

        def emit(event: ev.Event) -> None:
            if isinstance(event, ev.RunStarted):
                job.stats.set_total(event.images)
            job.emit(event)

        run_load(cfg, bundle, target, options, emit, only=only)

    params = {"bundle": bundle, "target": request.target, "images": len(only)}
    return PreparedJob("load", params, run)


# -- analyze --------------------------------------------------------------------------------------
REPORT_ROWS = 15


def prepare_analyze(cfg: Config, request: JobRequest) -> PreparedJob:
    """Why the listed images are big; the job keeps the HTML report (`job.report_html`)."""
    from transship.slim.analyze import AnalyzeOptions, ImageInput, LayerScanned, analyze_images
    from transship.slim.analyze.report_html import render_html
    from transship.transports.registry import RegistrySource

    lines = parse_image_list(request.images)
    if not lines:
        raise ConfigError("the image list is empty: paste one image per line")
    plan = plan_save(cfg, lines, source=request.source or None)
    options = _copy_options(cfg, request)
    analyze_options = AnalyzeOptions(
        platform=options.platforms[0] if options.platforms else AnalyzeOptions().platform,
        limit=REPORT_ROWS,
        workers=max(1, min(options.maxconn, 4)),
    )

    def run(job: Job) -> None:
        job.stats.set_total(len(plan.planned) + len(plan.invalid))
        _report_invalid_lines(job, plan.invalid)
        job.emit(ev.RunStarted(images=len(plan.planned)))
        started = time.monotonic()
        sources: dict[str, RegistrySource] = {}
        try:
            inputs = []
            for p in plan.planned:
                if p.source_registry not in sources:
                    client = open_client(cfg.registry(p.source_registry), options.maxconn)
                    sources[p.source_registry] = RegistrySource(client)
                inputs.append(
                    ImageInput(
                        p.job.label,
                        sources[p.source_registry],
                        p.job.source_repository,
                        p.job.source_reference,
                        f"docker://{p.job.source_label}",
                    )
                )

            def on_layer(scanned: LayerScanned) -> None:
                job.record(
                    {
                        "event": "LayerScanned",
                        "time": time.time(),
                        "digest": scanned.digest,
                        "size": scanned.compressed_size,
                        "done": scanned.done,
                        "total": scanned.total,
                        "error": scanned.error or "",
                    }
                )

            report = analyze_images(inputs, analyze_options, on_layer)
        finally:
            for source in sources.values():
                source.close()
        for image in report.images:
            job.emit(ev.ImageDone(image=image.name, target="", digest=image.manifest_digest))
        for error in report.errors:
            job.emit(ev.ImageFailed(image=error.image, target="", reason=error.message))
        job.report_html = render_html(report, REPORT_ROWS)
        job.record(
            {"event": "ReportReady", "time": time.time(), "url": f"/api/jobs/{job.id}/report"}
        )
        job.emit(
            ev.RunDone(
                ok=len(report.images),
                failed=len(report.errors),
                invalid=0,
                blobs_copied=0,
                blobs_skipped=0,
                blobs_mounted=0,
                bytes_sent=0,
                seconds=time.monotonic() - started,
                failures=tuple((e.image, e.message) for e in report.errors),
            )
        )

    params = {"source": request.source or "", "images": len(plan.planned) + len(plan.invalid)}
    return PreparedJob("analyze", params, run)


_PREPARERS: dict[str, Callable[[Config, JobRequest], PreparedJob]] = {
    "check": prepare_check,
    "copy": prepare_copy,
    "save": prepare_save,
    "load": prepare_load,
    "analyze": prepare_analyze,
}
