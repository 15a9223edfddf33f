"""`transship save`: images from a registry into a bundle for sites no network reaches."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console

from transship.cli.common import EXIT_FAILED, EXIT_OK, fail, get_config, handle_errors, read_list
from transship.cli.main import app

BUNDLE_FORMATS = ("transship", "image-transmit")
DEDUP_EFFORTS = ("max", "balanced", "fast")  # transship.bundle.codec_choice.DEDUP_EFFORTS


def bundle_meta_path(
    out_dir: Path,
    prefix: str,
    incremental: bool,
    bundle_format: str,
    now: dt.datetime | None = None,
) -> Path:
    """`DIR/YYYYMMDD/P_full_YYYYMMDDHHMM.meta.json` (`_inc_` with --since), as image-transmit
    names its bundles. An unfinished save of the same kind from today is resumed instead."""
    from transship.bundle.meta import META_SUFFIX
    from transship.bundle.writer import PARTIAL_SUFFIX
    from transship.transports.image_transmit import META_SUFFIX as IT_SUFFIX

    now = now or dt.datetime.now()
    folder = out_dir / now.strftime("%Y%m%d")
    stem = f"{prefix}_{'inc' if incremental else 'full'}_"
    suffix = IT_SUFFIX if bundle_format == "image-transmit" else META_SUFFIX
    if bundle_format == "transship" and folder.is_dir():
        unfinished = sorted(p for p in folder.glob(f"{stem}*{PARTIAL_SUFFIX}"))
        if unfinished:
            name = unfinished[-1].name[: -len(PARTIAL_SUFFIX)]
            if not (folder / f"{name}{suffix}").exists():
                return folder / f"{name}{suffix}"
    name = f"{stem}{now.strftime('%Y%m%d%H%M')}"
    candidate = folder / f"{name}{suffix}"
    seconds = 0
    while candidate.exists():  # two saves in one minute: keep both
        seconds += 1
        candidate = folder / f"{name}{seconds:02d}{suffix}"
    return candidate


@app.command()
@handle_errors
def save(
    images: list[str] = typer.Argument(None, help="Images to save (or use --list)."),
    from_: str = typer.Option(
        None, "--from", help="Source registry: a config name or host[:port]."
    ),
    list_file: str = typer.Option(
        None, "--list", "-l", help="Image list file ('-' or piped stdin too)."
    ),
    output: Path = typer.Option(
        Path("."), "--output", "-o", help="Folder under which the dated bundle folder is made."
    ),
    prefix: str = typer.Option(
        None, "--prefix", help="Bundle name prefix (default from config, else 'img')."
    ),
    since: list[Path] = typer.Option(
        None, "--since", help="Parent bundle meta: leave out what it carries (repeatable)."
    ),
    single_file: bool = typer.Option(
        False, "--single-file", help="One data file, also an OCI archive and docker-archive."
    ),
    volume_size: str = typer.Option(
        None, "--volume-size", help="Split data files into volumes of at most this size, e.g. 4G."
    ),
    bundle_format: str = typer.Option(
        "transship", "--format", help="transship, or image-transmit (for sites that run it)."
    ),
    codec: str = typer.Option(
        None,
        "--codec",
        help="raw (blobs as they are; default, or the config's codec) or dedup (files "
        "stored once, zstd).",
    ),
    dedup_effort: str = typer.Option(
        None,
        "--dedup-effort",
        help="With --codec dedup: max rebuilds every layer it can (smallest bundle); "
        "balanced keeps layers whose rebuild saves under 15 MB per second of work; fast, 30.",
    ),
    platform: str = typer.Option(
        None, "--platform", help="Save only this platform of multi-arch images (os/arch)."
    ),
    config: str = typer.Option(None, "--config", "-c", help="Config file."),
    maxconn: int = typer.Option(None, help="Parallel transfers and data files (default 5)."),
    retries: int = typer.Option(None, help="Retries per transfer (default 3)."),
    cache: str = typer.Option(None, "--cache", help="Blob cache directory."),
    json_output: bool = typer.Option(False, "--json", help="One JSON event per line on stdout."),
    src_insecure: bool = typer.Option(False, help="Source speaks plain http."),
    skip_verify: bool = typer.Option(
        False, "--skip-tls-verify", help="Do not verify TLS certificates."
    ),
) -> None:
    """Save images into a bundle: one meta file plus data files, every blob once.

    \b
    transship save --from company --list release.txt -o /media/usb
    transship save --from company --list release.txt --since /media/usb/20261101/img_full_202611010900.meta.json
    """
    from transship.bundle.codec_choice import codec_summary, make_codec
    from transship.bundle.writer import parse_size
    from transship.cli.common import open_cache
    from transship.cli.render import human_bytes, make_renderer, print_summary
    from transship.engine.copy import CopyOptions
    from transship.engine.session import plan_save, run_save
    from transship.oci.descriptor import Platform
    from transship.reference import parse_image_list

    cfg = get_config(config)
    if bundle_format not in BUNDLE_FORMATS:
        raise fail(f"--format must be one of {', '.join(BUNDLE_FORMATS)}")
    if bundle_format == "image-transmit" and (
        since or single_file or volume_size or codec not in (None, "raw")
    ):
        raise fail(
            "--format image-transmit writes a plain full bundle: drop --since/--single-file/--volume-size/--codec"
        )
    # The config's codec is for transship bundles, --single-file ones being raw only.
    codec = codec or ("raw" if single_file else cfg.codec)
    dedup_effort = dedup_effort or cfg.dedup_effort
    if dedup_effort not in DEDUP_EFFORTS:
        raise fail(f"--dedup-effort must be one of {', '.join(DEDUP_EFFORTS)}")
    for parent in since or ():
        if not parent.is_file():
            raise fail(f"{parent}: parent bundle meta file not found")
    text = "\n".join(images) if images else read_list(list_file)
    lines = parse_image_list(text)
    if not lines:
        raise fail("no images given: name them, pass --list FILE, or pipe the list on stdin")
    plan = plan_save(cfg, lines, source=from_)
    opts = CopyOptions(
        maxconn=maxconn or cfg.maxconn,
        retries=cfg.retries if retries is None else retries,
        backoff_base=cfg.retry_backoff,
        platforms=(Platform.parse(platform),) if platform else (),
    )
    meta_path = bundle_meta_path(
        output, prefix or cfg.output_prefix or "img", bool(since), bundle_format
    )
    bundle_options: dict[str, object] = {"workers": opts.maxconn}
    if bundle_format == "transship":
        bundle_options.update(
            since=[str(p) for p in since or ()],
            single_file=single_file,
            volume_size=parse_size(volume_size) if volume_size else None,
            codec=make_codec(codec, dedup_effort),
            platform=Platform.parse(platform) if platform else None,
        )
    console = Console(stderr=json_output, highlight=False)
    console.print(f"saving {len(plan.planned)} images to {meta_path}", markup=False, soft_wrap=True)
    renderer = make_renderer(json_output, console)
    try:
        summary, written = run_save(
            cfg,
            plan.planned,
            meta_path,
            opts,
            renderer,
            src_insecure=src_insecure,
            skip_verify=skip_verify,
            blob_cache=open_cache(cfg, cache),
            bundle_format=bundle_format,
            **bundle_options,
        )
    finally:
        renderer.close()
    if not json_output:
        print_summary(console, summary, [(i.text, i.reason) for i in plan.invalid])
    if written:
        for line in codec_summary(written, human_bytes):
            console.print(line, markup=False, soft_wrap=True)
        console.print(f"bundle written: {written}", markup=False, soft_wrap=True)
    else:
        console.print(
            "no image could be saved: no bundle written; run again to resume", markup=False
        )
    failed = summary.failed or summary.invalid or plan.invalid
    raise typer.Exit(EXIT_FAILED if failed or not written else EXIT_OK)
