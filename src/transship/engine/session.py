"""Runs from the configuration: the wiring the CLI commands and the web UI share.

Given the config, an image list and the names of a source and a target registry, this
plans the jobs, opens the registries, runs the engine once per source registry (a list may
mix registries) and merges the results (`run_copy`), only resolves every image
(`check_images`), saves the images into a bundle (`run_save`) or loads a bundle into a
registry (`run_load`). Callers render the events; nothing here prints.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from transship.config import CacheConfig, Config, RegistryConfig
from transship.engine import events as ev
from transship.engine.copy import CopyEngine, CopyJob, CopyOptions, RunSummary, copy_images
from transship.engine.jobs import InvalidLine, PlannedJob, plan_jobs
from transship.errors import ConfigError, NotFoundError, ReferenceError_, UnsupportedError
from transship.reference import ImageReference, MappingLine, apply_rename, rewrite_repository
from transship.registry.client import RegistryClient
from transship.transports.base import Destination, Source
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
            total = summary if total is None else total.merged(summary)
    finally:
        destination.close()
        if blob_cache:
            blob_cache.evict()
    total = total or RunSummary([])
    if not one_run:
        emit(total.done_event())
    return total


def _without_run_events(emit: Emit) -> Emit:
    def forward(event: ev.Event) -> None:
        if not isinstance(event, (ev.RunStarted, ev.RunDone)):
            emit(event)

    return forward


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


# -- bundles -------------------------------------------------------------------------------------
def plan_save(cfg: Config, lines: Sequence[MappingLine], *, source: str | None) -> ListPlan:
    """Jobs for saving an image list into a bundle: images keep their repository (renames
    with `->` apply); a target registry's rewrite applies later, when the bundle is loaded."""
    source_cfg = cfg.registry(source) if source else None
    planned, invalid = plan_jobs(
        list(lines),
        source_registry=source_cfg.host if source_cfg else None,
        source_prefix=source_cfg.path_prefix if source_cfg else "",
    )
    return ListPlan(planned, invalid, RegistryConfig(url="bundle"))


def run_save(
    cfg: Config,
    planned: Sequence[PlannedJob],
    bundle: str | Path,
    options: CopyOptions,
    emit: Emit,
    *,
    src_insecure: bool = False,
    skip_verify: bool = False,
    blob_cache: BlobCache | None = None,
    bundle_format: str = "transship",
    **bundle_options: object,
) -> tuple[RunSummary, Path | None]:
    """Copy `planned` from their registries into the bundle at `bundle` (a folder, or
    DIR/NAME.meta.json); returns the summary and the meta file written (None when no
    image could be saved or a transfer failed: then nothing is committed and a re-run
    resumes).

    bundle_options go to BundleDestination (since=[parent meta files], volume_size, ...).
    """
    destination = open_bundle_destination(bundle, bundle_format, **bundle_options)
    record_source = getattr(destination, "record_source", None)
    for p in planned:
        if record_source is not None:
            record_source(p.job.target_repository, p.job.target_tag, p.job.source_label)

    def open_source(host: str) -> Source:
        client = open_client(
            cfg.registry(host), options.maxconn, insecure=src_insecure, skip_verify=skip_verify
        )
        source: Source = RegistrySource(client)
        return CachingSource(source, blob_cache) if blob_cache else source

    try:
        summary = _run_groups(planned, destination, options, emit, open_source)
        # Missing images are left out (and listed), as image-transmit does; but a transfer
        # that failed leaves the save unfinished, to be resumed, never a bundle that
        # looks complete without it.
        complete = summary.ok and not summary.failed
        if complete:
            note = getattr(destination, "finishing_note", "")
            if note:
                emit(ev.Finishing.of(note))
                destination.report_finishing(  # type: ignore[attr-defined]
                    lambda key, **fields: emit(ev.Finishing.of(key, **fields))
                )
            destination.commit()
        else:
            destination.abort()
    finally:
        destination.close()
        if blob_cache:
            blob_cache.evict()
    return summary, destination.meta_path if complete else None


def open_bundle_destination(
    bundle: str | Path, bundle_format: str, **bundle_options: object
) -> Destination:
    """A transship bundle, or (`image-transmit`) a bundle that image-transmit can upload."""
    # Bundle code is imported only when a bundle is written.
    if bundle_format == "image-transmit":
        from transship.transports.image_transmit import ImageTransmitDestination

        workers = int(bundle_options.get("workers", 4))  # type: ignore[arg-type]
        return ImageTransmitDestination(bundle, workers=workers)
    if bundle_format != "transship":
        raise ConfigError(f"unknown bundle format {bundle_format!r} (transship or image-transmit)")
    from transship.transports.bundle import BundleDestination

    return BundleDestination(bundle, **bundle_options)  # type: ignore[arg-type]


def _run_groups(
    planned: Sequence[PlannedJob],
    destination: Destination,
    options: CopyOptions,
    emit: Emit,
    open_source: Callable[[str], Source],
) -> RunSummary:
    """One engine run per source registry into one destination, reported as one run; the
    caller commits the destination once."""
    by_source: dict[str, list[CopyJob]] = defaultdict(list)
    for p in planned:
        by_source[p.source_registry].append(p.job)
    emit(ev.RunStarted(images=len(planned)))
    quiet = _without_run_events(emit)
    total = RunSummary([])
    for host, jobs in by_source.items():
        source = open_source(host)
        try:
            summary = CopyEngine(source, destination, options, quiet).run(jobs)
        finally:
            source.close()
        total = total.merged(summary)
    emit(total.done_event())
    return total


def find_bundle_meta(path: str | Path) -> Path:
    """The meta file of the bundle at `path`: the file itself, or the only one in a folder
    (transship's NAME.meta.json or image-transmit's NAME_meta.yaml)."""
    from transship.bundle.meta import META_SUFFIX
    from transship.transports.image_transmit import META_SUFFIX as IMAGE_TRANSMIT_SUFFIX

    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"{path}: no such bundle (give its folder or its meta file)")
    found = sorted(
        p
        for p in path.iterdir()
        if p.name.endswith((META_SUFFIX, IMAGE_TRANSMIT_SUFFIX)) and p.is_file()
    )
    if not found:
        raise ConfigError(f"{path}: no bundle meta file (*{META_SUFFIX}) in this folder")
    if len(found) > 1:
        names = ", ".join(p.name for p in found[:5])
        raise ConfigError(f"{path}: holds several bundles ({names}); give the meta file to load")
    return found[0]


def load_jobs(
    source: Source,
    rewrite: str | None,
    only: Sequence[str] = (),
    renames: Mapping[str, str] | None = None,
) -> list[CopyJob]:
    """One job per image of a bundle source. `renames` maps an image's name in the bundle
    (repository:tag) to a new name (`repo`, `repo:tag` or `ns/repo:tag`); other images
    get the target's repository rewrite. `only` (repository:tag names) keeps just those."""
    wanted = {ImageReference.parse(name).tagged_or_latest for name in only}
    renames = dict(renames or {})
    jobs = []
    for location in source.locations():  # type: ignore[attr-defined]
        name = str(location)
        if wanted and not any(
            w.repository == location.repository and w.reference in (location.tag, location.digest)
            for w in wanted
        ):
            continue
        if name in renames:
            ref = ImageReference("", location.repository, location.tag, location.digest)
            repository, tag = apply_rename(ref, renames.pop(name))
        else:
            repository, tag = rewrite_repository(location.repository, rewrite), location.tag
        jobs.append(
            CopyJob(
                label=name,
                source_repository=location.repository,
                source_reference=location.reference,
                target_repository=repository,
                target_tag=tag,
                source_label=name,
            )
        )
    if wanted and len(jobs) < len(wanted):
        held = {(j.source_repository, j.source_reference) for j in jobs}
        missing = [str(w) for w in wanted if (w.repository, w.reference) not in held]
        raise NotFoundError(f"not in the bundle: {', '.join(sorted(missing))}")
    if renames:
        raise NotFoundError(f"--map names images not in the bundle: {', '.join(sorted(renames))}")
    return jobs


def run_load(
    cfg: Config,
    bundle: str | Path,
    target: RegistryConfig | Destination,
    options: CopyOptions,
    emit: Emit,
    *,
    only: Sequence[str] = (),
    renames: Mapping[str, str] | None = None,
    dst_insecure: bool = False,
    skip_verify: bool = False,
) -> RunSummary:
    """Push the images of the bundle at `bundle` (verified first) into a registry (its
    config) or any other destination.

    An incremental bundle's parents must have been loaded there before: if not, this
    raises naming the parent to load first, before anything is pushed.
    """
    with _prepared_load(
        bundle, target, options.maxconn, only, renames, dst_insecure, skip_verify
    ) as (source, destination, jobs):
        return copy_images(source, destination, jobs, options, emit)


def check_load(
    bundle: str | Path,
    target: RegistryConfig | Destination,
    *,
    only: Sequence[str] = (),
    renames: Mapping[str, str] | None = None,
    dst_insecure: bool = False,
    skip_verify: bool = False,
) -> list[CopyJob]:
    """Everything `run_load` checks before it pushes, and nothing more: the data files,
    the parents the target must already hold, every dedup layer's recipe and contents.
    Returns what would be loaded where; raises (one line) on the first problem."""
    with _prepared_load(bundle, target, 1, only, renames, dst_insecure, skip_verify) as (
        _,
        _,
        jobs,
    ):
        return jobs


@contextlib.contextmanager
def _prepared_load(
    bundle: str | Path,
    target: RegistryConfig | Destination,
    maxconn: int,
    only: Sequence[str],
    renames: Mapping[str, str] | None,
    dst_insecure: bool,
    skip_verify: bool,
) -> Iterator[tuple[Source, Destination, list[CopyJob]]]:
    from transship.transports.factory import open_source

    source = open_source(str(find_bundle_meta(bundle)), verify=False)
    try:
        if isinstance(target, RegistryConfig):
            rewrite = target.repository
            destination: Destination = RegistryDestination(
                open_client(target, maxconn, insecure=dst_insecure, skip_verify=skip_verify)
            )
        else:
            rewrite, destination = None, target
        # The data files are hashed while the target is checked and the codecs prepare
        # (the dedup codec unpacks its content store on one core): both only read them.
        with ThreadPoolExecutor(1, thread_name_prefix="verify") as pool:
            verified = pool.submit(source.verify)  # type: ignore[attr-defined]
            try:
                destination, jobs = _prepare_destination(
                    source, destination, rewrite, only, renames
                )
            except Exception:
                verified.result()  # a damaged data file explains any failure best
                raise
            try:
                verified.result()
            except BaseException:
                destination.close()
                raise
        try:
            yield source, destination, jobs
        finally:
            destination.close()
    finally:
        source.close()


def _prepare_destination(
    source: Source,
    destination: Destination,
    rewrite: str | None,
    only: Sequence[str],
    renames: Mapping[str, str] | None,
) -> tuple[Destination, list[CopyJob]]:
    """The jobs that load `source`, and the destination to load it into, its parents
    checked and its codecs prepared. Closes `destination` on failure."""
    try:
        jobs = load_jobs(source, rewrite, only, renames)
        prepare = getattr(source, "prepare_load", None)
        if prepare is not None:  # bundles: check the parents, prepare the codecs
            repository_of = {j.source_repository: j.target_repository for j in jobs}
            blobs_of = getattr(source, "blobs_of", None)
            blobs = (
                blobs_of((j.source_repository, j.source_reference) for j in jobs)
                if only and blobs_of is not None
                else None
            )
            destination = prepare(
                destination,
                lambda repository: repository_of.get(
                    repository, rewrite_repository(repository, rewrite)
                ),
                blobs,
            )
    except BaseException:
        destination.close()
        raise
    return destination, jobs
