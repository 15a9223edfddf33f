"""Registry-to-registry runs from the configuration: the wiring `transship copy` and the web
UI share.

Given the config, an image list and the names of a source and a target registry, this
plans the jobs, opens the registries, runs the engine once per source registry (a list may
mix registries) and merges the results, or only resolves every image (`check_images`).
Callers render the events; nothing here prints.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from transship.config import CacheConfig, Config, RegistryConfig
from transship.engine import events as ev
from transship.engine.copy import CopyJob, CopyOptions, RunSummary, copy_images
from transship.engine.jobs import InvalidLine, PlannedJob, plan_jobs
from transship.errors import NotFoundError, ReferenceError_, UnsupportedError
from transship.reference import MappingLine
from transship.registry.client import RegistryClient
from transship.transports.cache import BlobCache, CachingSource
from transship.transports.registry import RegistryDestination, RegistrySource

Emit = Callable[[ev.Event], None]


def open_client(
    registry: RegistryConfig, maxconn: int, *, insecure: bool = False, skip_verify: bool = False
) -> RegistryClient:
    if insecure or skip_verify:
        registry = registry.model_copy(
            update={
                "insecure": registry.insecure or insecure,
                "skip_verify": registry.skip_verify or skip_verify,
            }
        )
    return RegistryClient(registry.endpoint(), max_connections=maxconn * 2 + 4)


def open_cache(cfg: Config, path: str | None) -> BlobCache | None:
    """The blob cache at `path` (e.g. --cache), else the config's `cache:`, else none."""
    if path:
        settings = (
            cfg.cache.model_copy(update={"path": path}) if cfg.cache else CacheConfig(path=path)
        )
    elif cfg.cache:
        settings = cfg.cache
    else:
        return None
    return BlobCache(settings.path, settings.keep_days, settings.keep_size_gb)


@dataclass(frozen=True)
class ListPlan:
    planned: list[PlannedJob]
    invalid: list[InvalidLine]
    target: RegistryConfig


def plan_list(
    cfg: Config, lines: Sequence[MappingLine], *, source: str | None, target: str
) -> ListPlan:
    """Jobs for an image list copied from registry `source` (None: each line names its
    registry) to registry `target`, both names from the config or `host[:port]`."""
    target_cfg = cfg.registry(target)
    source_cfg = cfg.registry(source) if source else None
    planned, invalid = plan_jobs(
        list(lines),
        source_registry=source_cfg.host if source_cfg else None,
        source_prefix=source_cfg.path_prefix if source_cfg else "",
        target_rewrite=target_cfg.repository,
    )
    return ListPlan(planned, invalid, target_cfg)


def run_copy(
    cfg: Config,
    planned: Sequence[PlannedJob],
    target: RegistryConfig,
    options: CopyOptions,
    emit: Emit,
    *,
    src_insecure: bool = False,
    dst_insecure: bool = False,
    skip_verify: bool = False,
    blob_cache: BlobCache | None = None,
) -> RunSummary:
    """Copy `planned` to `target`: one engine run per source registry, one summary.

    Listeners see one RunStarted and one RunDone for the whole list, however many source
    registries it names (none too).
    """
    by_source: dict[str, list[CopyJob]] = defaultdict(list)
    for p in planned:
        by_source[p.source_registry].append(p.job)
    # One engine run reports its own RunStarted/RunDone; for none or several, we do.
    one_run = len(by_source) == 1
    inner_emit = emit if one_run else _without_run_events(emit)
    if not one_run:
        emit(ev.RunStarted(images=len(planned)))
    destination = RegistryDestination(
        open_client(target, options.maxconn, insecure=dst_insecure, skip_verify=skip_verify)
    )
    total: RunSummary | None = None
    try:
        for source_host, jobs in by_source.items():
            source_cfg = cfg.registry(source_host)
            source = RegistrySource(
                open_client(
                    source_cfg, options.maxconn, insecure=src_insecure, skip_verify=skip_verify
                )
            )
            if blob_cache:
                source = CachingSource(source, blob_cache)
            options.same_registry = source_cfg.host == target.host
            try:
                summary = copy_images(source, destination, jobs, options, inner_emit)
            finally:
                source.close()
            total = summary if total is None else merge_summaries(total, summary)
    finally:
        destination.close()
        if blob_cache:
            blob_cache.evict()
    total = total or RunSummary([])
    if not one_run:
        emit(run_done_event(total))
    return total


def _without_run_events(emit: Emit) -> Emit:
    def forward(event: ev.Event) -> None:
        if not isinstance(event, (ev.RunStarted, ev.RunDone)):
            emit(event)

    return forward


def run_done_event(summary: RunSummary) -> ev.RunDone:
    return ev.RunDone(
        ok=summary.ok,
        failed=len(summary.failed),
        invalid=len(summary.invalid),
        blobs_copied=summary.blobs_copied,
        blobs_skipped=summary.blobs_skipped,
        blobs_mounted=summary.blobs_mounted,
        bytes_sent=summary.bytes_sent,
        seconds=summary.seconds,
        failures=tuple((r.job.label, r.error) for r in summary.images if not r.ok),
    )


def merge_summaries(a: RunSummary, b: RunSummary) -> RunSummary:
    return RunSummary(
        a.images + b.images,
        a.blobs_copied + b.blobs_copied,
        a.blobs_skipped + b.blobs_skipped,
        a.blobs_mounted + b.blobs_mounted,
        a.bytes_sent + b.bytes_sent,
        a.seconds + b.seconds,
    )


@dataclass(frozen=True)
class CheckResult:
    planned: PlannedJob
    source: str  # registry/repository:reference the image is read from
    target: str  # registry/repository[:tag] it would be copied to
    digest: str = ""
    error: str = ""
    invalid: bool = False  # missing image or bad reference, rather than a registry failure

    @property
    def ok(self) -> bool:
        return not self.error


def check_images(
    cfg: Config,
    planned: Sequence[PlannedJob],
    target_host: str,
    *,
    insecure: bool = False,
    skip_verify: bool = False,
    cancel: threading.Event | None = None,
) -> Iterator[CheckResult]:
    """Resolve every source manifest, in list order; copies nothing.

    Yields one result per job; a registry failure is reported in its result, not raised
    (a configuration error is). Stops early when `cancel` is set.
    """
    clients: dict[str, RegistryClient] = {}
    try:
        for p in planned:
            if cancel is not None and cancel.is_set():
                return
            job = p.job
            source = f"{p.source_registry}/{job.source_repository}:{job.source_reference}"
            target = f"{target_host}/{job.target_label}"
            if p.source_registry not in clients:
                clients[p.source_registry] = open_client(
                    cfg.registry(p.source_registry), 2, insecure=insecure, skip_verify=skip_verify
                )
            try:
                manifest = clients[p.source_registry].get_manifest(
                    job.source_repository, job.source_reference
                )
                yield CheckResult(p, source, target, digest=manifest.digest)
            except (NotFoundError, ReferenceError_, UnsupportedError) as e:
                yield CheckResult(p, source, target, error=str(e), invalid=True)
            except Exception as e:  # report every problem, keep checking
                yield CheckResult(p, source, target, error=str(e) or type(e).__name__)
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                client.close()
