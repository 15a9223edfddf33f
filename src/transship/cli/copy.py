"""`transship copy`: registry to registry, one image or a whole list."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

from transship.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    fail,
    get_config,
    handle_errors,
    open_cache,
    read_list,
)
from transship.cli.main import app

# The engine loads when the command runs, not on every start.
if TYPE_CHECKING:
    from transship.engine.copy import CopyJob
    from transship.engine.jobs import InvalidLine, PlannedJob


def _single_image_jobs(source: str, target: str) -> tuple[list[PlannedJob], str]:
    from transship.engine.copy import CopyJob
    from transship.engine.jobs import PlannedJob
    from transship.reference import ImageReference

    src = ImageReference.parse(source).tagged_or_latest
    dst = ImageReference.parse(target)
    if not src.registry or not dst.registry:
        raise typer.BadParameter(
            "both images must name their registry, e.g. docker://host:5000/team/app:1.0"
        )
    job = CopyJob(
        label=source,
        source_repository=src.repository,
        source_reference=src.reference,
        target_repository=dst.repository,
        target_tag=dst.tag or (src.tag if not dst.digest else None),
        source_label=str(src),
    )
    return [PlannedJob(job, src.registry)], dst.registry


@app.command()
@handle_errors
def copy(
    images: list[str] = typer.Argument(
        None, help="SOURCE TARGET image references (docker://host/repo:tag)."
    ),
    from_: str = typer.Option(
        None, "--from", help="Source registry: a name from the config, or host[:port]."
    ),
    to: str = typer.Option(
        None, "--to", help="Target registry: a name from the config, or host[:port]."
    ),
    list_file: str = typer.Option(
        None, "--list", "-l", help="Image list file ('-' or piped stdin too)."
    ),
    config: str = typer.Option(
        None, "--config", "-c", help="Config file (default ./transship.yaml, ./cfg.yaml)."
    ),
    maxconn: int = typer.Option(None, help="Blobs transferred in parallel (default 5)."),
    retries: int = typer.Option(None, help="Retries per transfer (default 3)."),
    platform: list[str] = typer.Option(
        None, "--platform", help="Copy only this platform, os/arch or os/arch/variant (repeatable)."
    ),
    check: bool = typer.Option(
        False, "--check", help="Resolve every image and print the mapping; copy nothing."
    ),
    json_output: bool = typer.Option(False, "--json", help="One JSON event per line on stdout."),
    src_insecure: bool = typer.Option(False, help="Source speaks plain http."),
    dst_insecure: bool = typer.Option(False, help="Target speaks plain http."),
    skip_verify: bool = typer.Option(
        False, "--skip-tls-verify", help="Do not verify TLS certificates."
    ),
    cache: str = typer.Option(
        None, "--cache", help="Blob cache directory: blobs fetched once are read from it next time."
    ),
) -> None:
    """Copy images from one registry to another, sending only the layers the target lacks.

    \b
    transship copy docker://src.example/team/app:1.0 docker://dst.example/team/app:1.0
    transship copy --from company --to site --list images.txt
    """
    from transship.cli.render import make_renderer, print_summary
    from transship.engine.copy import CopyOptions
    from transship.engine.session import plan_list, run_copy
    from transship.oci.descriptor import Platform
    from transship.reference import parse_image_list

    cfg = get_config(config)
    opts = CopyOptions(
        maxconn=maxconn or cfg.maxconn,
        retries=cfg.retries if retries is None else retries,
        platforms=tuple(Platform.parse(p) for p in platform or ()),
        backoff_base=cfg.retry_backoff,
    )
    console = Console(stderr=json_output, highlight=False)
    invalid: list[InvalidLine] = []
    if images and len(images) == 2 and any(_is_file_transport(i) for i in images):
        if check:
            raise fail("--check works between registries")
        code = _copy_between_transports(
            cfg,
            images[0],
            images[1],
            opts,
            json_output,
            console,
            src_insecure,
            dst_insecure,
            skip_verify,
        )
        raise typer.Exit(code)
    if images:
        if len(images) != 2 or from_ or list_file:
            raise fail("give either SOURCE TARGET, or --from/--to with --list")
        planned, target_host = _single_image_jobs(images[0], images[1])
        target = cfg.registry(target_host)
    else:
        if not to:
            raise fail("--to is required with an image list")
        cfg.registry(to)  # an unknown name fails before stdin is read
        text = read_list(list_file)
        lines = parse_image_list(text)
        if not lines:
            raise fail("no images given: pass --list FILE or pipe the list on stdin")
        plan = plan_list(cfg, lines, source=from_, target=to)
        planned, invalid, target = plan.planned, plan.invalid, plan.target
    if check:
        code = _check(cfg, planned, invalid, target.host, opts, src_insecure, skip_verify, console)
        raise typer.Exit(code)
    blob_cache = open_cache(cfg, cache)
    renderer = make_renderer(json_output, console)
    try:
        summary = run_copy(
            cfg,
            planned,
            target,
            opts,
            renderer,
            src_insecure=src_insecure,
            dst_insecure=dst_insecure,
            skip_verify=skip_verify,
            blob_cache=blob_cache,
        )
    finally:
        renderer.close()
    if not json_output:
        print_summary(console, summary, [(i.text, i.reason) for i in invalid])
    failed = summary.failed or summary.invalid or invalid
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


FILE_TRANSPORTS = (
    "oci:",
    "oci-archive:",
    "docker-archive:",
    "bundle:",
    "image-transmit:",
    "docker-daemon:",
    "containerd:",
)


def _is_file_transport(spec: str) -> bool:
    return spec.startswith(FILE_TRANSPORTS) or spec.endswith((".meta.json", "_meta.yaml"))


def _copy_between_transports(
    cfg,
    source_spec: str,
    target_spec: str,
    opts,
    json_output: bool,
    console,
    src_insecure: bool,
    dst_insecure: bool,
    skip_verify: bool,
) -> int:
    """Any transport to any other, e.g. `oci:DIR:tag` to `docker://host/repo:tag` (import)
    or a registry image to `oci-archive:FILE` (export)."""
    from transship.cli.render import make_renderer, print_summary
    from transship.engine.copy import copy_images
    from transship.engine.session import open_client
    from transship.transports.factory import open_destination, open_source, parse_spec

    def registry_options(spec: str, insecure: bool) -> dict:
        """How to reach a registry, for docker:// specs only (files take no such option)."""
        if parse_spec(spec).kind != "docker":
            return {}
        return {
            "client_factory": lambda host: open_client(
                cfg.registry(host), opts.maxconn, insecure=insecure, skip_verify=skip_verify
            )
        }

    source = open_source(source_spec, **registry_options(source_spec, src_insecure))
    try:
        jobs = _transport_jobs(source, parse_spec(source_spec), parse_spec(target_spec))
        destination = open_destination(target_spec, **registry_options(target_spec, dst_insecure))
        renderer = make_renderer(json_output, console)
        try:
            summary = copy_images(source, destination, jobs, opts, renderer)
        finally:
            renderer.close()
            destination.close()
    finally:
        source.close()
    if not json_output:
        print_summary(console, summary)
    return EXIT_FAILED if summary.failed or summary.invalid else EXIT_OK


def _transport_jobs(source, src, dst) -> list[CopyJob]:
    """Which images to copy and under which names. A registry or a named image in a file
    gives one image; a file transport without a name gives all of its images."""
    from transship.engine.copy import CopyJob
    from transship.errors import ConfigError
    from transship.reference import ImageReference
    from transship.transports.base import ImageLocation

    if src.kind == "docker":
        ref = ImageReference.parse(src.path).tagged_or_latest
        locations = [ImageLocation(ref.repository, ref.tag, ref.digest)]
    else:
        locations = source.locations()
        if src.ref:
            wanted = ImageReference.parse(src.ref) if ":" in src.ref or "/" in src.ref else None
            locations = [
                loc
                for loc in locations
                if str(loc) == src.ref
                or loc.tag == src.ref
                or (
                    wanted
                    and loc.repository == wanted.repository
                    and loc.tag == (wanted.tag or "latest")
                )
            ] or [ImageLocation("", src.ref)]
    if dst.kind == "docker":
        if len(locations) != 1:
            raise ConfigError(
                f"the source holds {len(locations)} images: name one to copy it to a registry"
            )
        target = ImageReference.parse(dst.path)
        names = [(target.repository, target.tag or locations[0].tag)]
    elif dst.ref:
        if len(locations) != 1:
            raise ConfigError(
                f"the source holds {len(locations)} images: name one to give it the name {dst.ref!r}"
            )
        name, _, tag = dst.ref.rpartition(":") if ":" in dst.ref else (dst.ref, "", "latest")
        names = [(name, tag)]
    else:
        names = [(loc.repository or "image", loc.tag) for loc in locations]
    return [
        CopyJob(
            label=str(loc) or loc.reference,
            source_repository=loc.repository,
            source_reference=loc.reference,
            target_repository=repo,
            target_tag=tag,
            source_label=str(loc),
        )
        for loc, (repo, tag) in zip(locations, names, strict=True)
    ]


def _check(
    cfg,
    planned: list[PlannedJob],
    invalid: list[InvalidLine],
    target_host: str,
    opts,
    src_insecure,
    skip_verify,
    console,
) -> int:
    """Resolve every source image and print `source -> target`; copy nothing."""
    from transship.engine.session import check_images

    problems = [(i.text, i.reason) for i in invalid]
    for result in check_images(
        cfg, planned, target_host, insecure=src_insecure, skip_verify=skip_verify
    ):
        if result.ok:
            console.print(
                f"{result.source} -> {result.target}  ({result.digest[:19]})",
                markup=False,
                highlight=False,
            )
        else:
            problems.append((result.planned.job.label, result.error))
    for text, reason in problems:
        console.print(f"invalid: {text}: {reason}", markup=False, highlight=False)
    console.print(
        f"{len(planned) - (len(problems) - len(invalid))} images ok, {len(problems)} invalid",
        markup=False,
        highlight=False,
    )
    return EXIT_FAILED if problems else EXIT_OK
