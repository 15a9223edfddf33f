"""`transship offload`: keep shared libraries in one layer that many images share.

`offload link` replaces lib files by links into the shared tree (inside a Docker build);
`offload dockerfile` prints the multi-stage pattern that uses it. Other `offload`
commands register on `offload_app` from their own modules.
"""

from __future__ import annotations

from pathlib import Path

import typer

from transship.cli.common import handle_errors
from transship.cli.main import app
from transship.i18n import t
from transship.slim.offload_dockerfile import OffloadLayout, render_offload_dockerfile

offload_app = typer.Typer(
    name="offload",
    help=t("offload.cli.help"),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(offload_app, name="offload")

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


@offload_app.command("link", help=t("offload.cli.link.help"))
@handle_errors
def link(
    lib: Path = typer.Option(..., "--lib", help=t("offload.cli.link.help.lib")),
    shared: Path = typer.Option(..., "--shared", help=t("offload.cli.link.help.shared")),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help=t("offload.cli.link.help.dry_run")),
) -> None:
    from transship.slim.offload_link import offload_link

    result = offload_link(lib, shared, dry_run=dry_run)
    plan = result.plan
    key = "offload.link.would_link" if dry_run else "offload.link.linked"
    typer.echo(
        t(key, count=result.linked, saved=human_bytes(result.bytes_saved), bytes=result.bytes_saved)
    )
    typer.echo(
        t(
            "offload.link.details",
            already=plan.already_linked,
            different=plan.different,
            metadata=plan.metadata_differs,
            empty=plan.empty,
            links=plan.skipped_links,
            special=plan.skipped_special,
        )
    )
    if result.changed_since_plan:
        typer.echo(t("offload.link.changed", count=result.changed_since_plan), err=True)


@offload_app.command("dockerfile", help=t("offload.cli.dockerfile.help"))
@handle_errors
def dockerfile(
    lib: str = typer.Option(OffloadLayout.lib, "--lib", help=t("offload.cli.link.help.lib")),
    shared: str = typer.Option(
        OffloadLayout.shared, "--shared", help=t("offload.cli.link.help.shared")
    ),
    shared_image: str = typer.Option(
        OffloadLayout.shared_image,
        "--shared-image",
        help=t("offload.cli.dockerfile.help.shared_image"),
    ),
    app_lib: str = typer.Option(
        OffloadLayout.app_lib, "--app-lib", help=t("offload.cli.dockerfile.help.app_lib")
    ),
    link_image: str = typer.Option(
        OffloadLayout.link_image, "--link-image", help=t("offload.cli.dockerfile.help.link_image")
    ),
) -> None:
    layout = OffloadLayout(
        lib=lib, shared=shared, shared_image=shared_image, app_lib=app_lib, link_image=link_image
    )
    typer.echo(render_offload_dockerfile(layout), nl=False)
