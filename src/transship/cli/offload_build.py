"""`transship offload build`: the offload layer that `analyze` recommends, as a real image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from transship.cli.common import fail, get_config, handle_errors
from transship.cli.offload import offload_app
from transship.errors import ConfigError
from transship.i18n import t

# Image reading and building load when the command runs, not on every start.
if TYPE_CHECKING:
    from transship.cli.image_sources import SourceOpener
    from transship.slim.analyze.model import ImageSource
    from transship.transports.base import Destination, Source


@offload_app.command("build")
@handle_errors
def build(
    from_recommendation: Path = typer.Option(
        ...,
        "--from-recommendation",
        help="JSON from `transship analyze --json` (or its `offload` object).",
    ),
    to: str = typer.Option(
        ..., "--to", help="Where to push the image: docker://host/repo:tag (or oci:DIR:tag)."
    ),
    platform: str = typer.Option(
        "linux/amd64", "--platform", help="Platform of the analyzed images, and of the new one."
    ),
    shared_dir: str = typer.Option(
        None,
        "--shared-dir",
        help="Put the files below this directory (e.g. /app/lib_shared, for `offload link`) "
        "instead of at the paths the images have them.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    config: str = typer.Option(
        None, "--config", "-c", help="Config file (registries, credentials)."
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Registries speak plain http."),
    skip_verify: bool = typer.Option(
        False, "--skip-tls-verify", help="Do not verify TLS certificates."
    ),
) -> None:
    """Build the recommended offload base layer (layer tar, gzip, config, manifest) from the
    analyzed images' own layers and push it, to put under the services."""
    from transship.cli.image_sources import SourceOpener
    from transship.oci.descriptor import Platform
    from transship.slim.analyze.formatting import human_bytes, short_digest
    from transship.slim.analyze.offload_image import (
        build_offload_image,
        cleanup,
        load_recommendation,
        push_offload_image,
    )

    try:
        wanted_platform = Platform.parse(platform)
    except ValueError as e:
        raise fail(t("analyze.cli.bad_platform", reason=str(e))) from None
    recommendation = load_recommendation(from_recommendation)
    if not recommendation.files:
        raise fail(t("offload.build.no_files", path=from_recommendation))
    opener = SourceOpener(get_config(config), insecure=insecure, skip_verify=skip_verify)
    sources: dict[str, Source] = {}

    def open_source(where: ImageSource) -> Source:
        if where.spec not in sources:
            inputs = opener.images(where.spec)
            sources[where.spec] = inputs[0].source
        return sources[where.spec]

    destination, repository, tag = _destination(to, opener)
    try:
        image, spool = build_offload_image(
            recommendation, open_source, platform=wanted_platform, shared_dir=shared_dir
        )
        try:
            push_offload_image(image, spool, destination, repository, tag)
        finally:
            cleanup(spool)
    finally:
        destination.close()
        opener.close()
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "target": to,
                    "manifest_digest": image.manifest.digest,
                    "layer_digest": image.layer.digest,
                    "layer_size": image.layer.size,
                    "diff_id": image.diff_id,
                    "config_digest": image.config.digest,
                    "files": image.file_count,
                    "content_bytes": image.content_bytes,
                },
                indent=2,
            )
        )
        return
    typer.echo(
        t(
            "offload.build.pushed",
            target=to,
            files=image.file_count,
            size=human_bytes(image.layer.size),
            digest=short_digest(image.layer.digest),
            manifest=image.manifest.digest,
        )
    )


def _destination(spec: str, opener: SourceOpener) -> tuple[Destination, str, str]:
    """The destination transport, repository and tag for `--to`."""
    from transship.cli.image_sources import looks_like_registry_reference
    from transship.reference import ImageReference
    from transship.transports.factory import open_destination, parse_spec

    text = spec.strip()
    parsed = parse_spec(f"docker://{text}" if looks_like_registry_reference(text) else text)
    if parsed.kind == "docker":
        ref = ImageReference.parse(parsed.path)
        if not ref.registry:
            raise ConfigError(
                f"--to {spec}: name the registry, e.g. docker://host:5000/team/offload:1"
            )
        if ref.digest:
            raise ConfigError(f"--to {spec}: give a tag, not a digest")
        destination = open_destination(parsed, client_factory=opener.client)
        return destination, ref.repository, ref.tag or "latest"
    destination = open_destination(parsed)
    return destination, "", parsed.ref or "latest"
