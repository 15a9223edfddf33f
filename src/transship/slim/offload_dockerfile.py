"""The multi-stage Dockerfile pattern for `transship offload link`, as text.

Three stages: the shared image (the offload layer, built once and used as the final
base), a link stage holding the application's full lib directory where the link step
runs, and the final stage that copies the linked lib directory. Comments are in the
current language.
"""

from __future__ import annotations

from dataclasses import dataclass

from transship.i18n import t


@dataclass(frozen=True)
class OffloadLayout:
    lib: str = "/app/lib"  # the application's lib directory in the image
    shared: str = "/app/lib_shared"  # the offload tree in the shared image
    shared_image: str = "registry.example.com/team/app-shared-libs:1.0"
    app_lib: str = "target/lib"  # where the build puts the full lib directory (build context)
    link_image: str = "python:3.12-slim"  # any image with Python, to run the link step
    install: str = "pip install --no-cache-dir transship"


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()]


def render_offload_dockerfile(layout: OffloadLayout | None = None) -> str:
    layout = layout or OffloadLayout()
    lib, shared = layout.lib.rstrip("/"), layout.shared.rstrip("/")
    fields = {"lib": lib, "shared": shared, "app_lib": layout.app_lib.rstrip("/")}
    lines = ["# syntax=docker/dockerfile:1"]
    lines += _comment(t("offload.dockerfile.intro", **fields))
    lines += ["#"]
    lines += _comment(t("offload.dockerfile.shared_image", **fields))
    lines += ["#   FROM eclipse-temurin:21-jre", f"#   COPY lib_shared/ {shared}/"]
    lines += [f"ARG SHARED_IMAGE={layout.shared_image}", ""]
    lines += _comment(t("offload.dockerfile.stage_shared", **fields))
    lines += ["FROM ${SHARED_IMAGE} AS shared", ""]
    lines += _comment(t("offload.dockerfile.stage_link", **fields))
    lines += [
        f"FROM {layout.link_image} AS link",
        f"RUN {layout.install}",
        f"COPY --from=shared {shared}/ {shared}/",
        f"COPY {fields['app_lib']}/ {lib}/",
        f"RUN transship offload link --lib {lib} --shared {shared}",
        "",
    ]
    lines += _comment(t("offload.dockerfile.stage_final", **fields))
    lines += ["FROM ${SHARED_IMAGE}", f"COPY --from=link {lib}/ {lib}/", ""]
    lines += _comment(t("offload.dockerfile.note_stale", **fields))
    lines += ["#"]
    lines += _comment(t("offload.dockerfile.note_links", **fields))
    return "\n".join(lines) + "\n"
