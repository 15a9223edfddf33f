"""`transship load`: a bundle into a registry, Docker, containerd or a standard archive."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from transship.cli.common import EXIT_FAILED, EXIT_OK, fail, get_config, handle_errors
from transship.cli.main import app

# Destinations that are not registries, as transport specs.
FILE_DESTINATIONS = ("docker-daemon:", "containerd:", "oci:", "oci-archive:", "docker-archive:")


def read_renames(maps: list[str], map_file: Path | None) -> dict[str, str]:
    """`a -> b` pairs from --map options and a list file (blank lines, # comments ignored)."""
    from transship.reference import parse_image_list

    text = "\n".join(maps or [])
    if map_file:
        try:
            text += "\n" + map_file.read_text(encoding="utf-8")
        except OSError as e:
            raise fail(f"{map_file}: cannot read: {e.strerror}") from None
    renames = {}
    for line in parse_image_list(text):
        if not line.target:
            raise fail(f"--map line {line.source!r}: expected 'name -> newname'")
        renames[line.source] = line.target
    return renames


@app.command()
@handle_errors
def load(
    bundle: Path = typer.Argument(..., help="The bundle's meta file (or its folder)."),
    to: str = typer.Option(
        ...,
        "--to",
        help="Registry (config name, host[:port], docker://host/namespace) or docker-daemon:, containerd:, oci:DIR, oci-archive:FILE, docker-archive:FILE.",
    ),
    maps: list[str] = typer.Option(
        None, "--map", help="Rename at load: 'repo:tag -> newrepo:newtag' (repeatable)."
    ),
    map_file: Path = typer.Option(None, "--map-file", help="File of 'a -> b' renames."),
    only: list[str] = typer.Option(
        None, "--image", help="Load only this image of the bundle (repeatable)."
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Verify everything a load needs (data files, parents in the target, every "
        "dedup layer's recipe and files) and print the mapping; push nothing.",
    ),
    config: str = typer.Option(None, "--config", "-c", help="Config file."),
    maxconn: int = typer.Option(None, help="Parallel uploads (default 5)."),
    retries: int = typer.Option(None, help="Retries per transfer (default 3)."),
    json_output: bool = typer.Option(False, "--json", help="One JSON event per line on stdout."),
    dst_insecure: bool = typer.Option(False, help="Target registry speaks plain http."),
    skip_verify: bool = typer.Option(
        False, "--skip-tls-verify", help="Do not verify TLS certificates."
    ),
) -> None:
    """Verify a bundle, then push what the target lacks.

    \b
    transship load /media/usb/20261127/img_full_202611270900.meta.json --to site
    transship load bundle.meta.json --to docker-daemon:
    """
    from transship.cli.render import make_renderer, print_summary
    from transship.engine.copy import CopyOptions
    from transship.engine.session import find_bundle_meta, run_load

    cfg = get_config(config)
    renames = read_renames(maps, map_file)
    meta = find_bundle_meta(bundle)
    console = Console(stderr=json_output, highlight=False)
    target = _target(cfg, to)
    if check:
        from transship.engine.session import check_load

        console.print(f"verifying {meta} for {to} ...", markup=False, soft_wrap=True)
        jobs = check_load(
            meta,
            target,
            only=only or (),
            renames=renames,
            dst_insecure=dst_insecure,
            skip_verify=skip_verify,
        )
        where = getattr(target, "host", to)
        for job in jobs:
            console.print(
                f"{job.label} -> {where}/{job.target_label}", markup=False, soft_wrap=True
            )
        console.print(f"bundle {meta.name} verified: it loads into {to}", markup=False)
        raise typer.Exit(EXIT_OK)
    opts = CopyOptions(
        maxconn=maxconn or cfg.maxconn,
        retries=cfg.retries if retries is None else retries,
        backoff_base=cfg.retry_backoff,
    )
    console.print(f"verifying {meta} ...", markup=False, soft_wrap=True)
    renderer = make_renderer(json_output, console)
    try:
        summary = run_load(
            cfg,
            meta,
            target,
            opts,
            renderer,
            only=only or (),
            renames=renames,
            dst_insecure=dst_insecure,
            skip_verify=skip_verify,
        )
    finally:
        renderer.close()
    if not json_output:
        print_summary(console, summary)
    raise typer.Exit(EXIT_FAILED if summary.failed or summary.invalid else EXIT_OK)


def _target(cfg, to: str):
    """A registry's config, or a Destination for the other kinds of target."""
    if to.startswith(FILE_DESTINATIONS):
        from transship.transports.factory import open_destination

        return open_destination(to)
    spec = to[len("docker://") :] if to.startswith("docker://") else to
    host, _, namespace = spec.partition("/")
    registry = cfg.registry(host)
    if namespace:  # docker://host/ns: everything goes under ns/
        registry = registry.model_copy(update={"repository": namespace.strip("/")})
    return registry
