"""Turning an image list (`image` / `image -> newname` lines) into copy jobs."""

from __future__ import annotations

from dataclasses import dataclass

from transship.engine.copy import CopyJob
from transship.errors import ReferenceError_
from transship.reference import ImageReference, MappingLine, apply_rename, rewrite_repository


@dataclass(frozen=True)
class InvalidLine:
    line_number: int
    text: str
    reason: str


@dataclass(frozen=True)
class PlannedJob:
    job: CopyJob
    source_registry: str  # host the image is read from
    line_number: int = 0


def plan_jobs(
    lines: list[MappingLine],
    *,
    source_registry: str | None,
    source_prefix: str = "",
    target_rewrite: str | None = None,
) -> tuple[list[PlannedJob], list[InvalidLine]]:
    """Resolve each line against the `--from` registry and the target's rewrite rule.

    With `source_registry`, the registry part of each line is replaced by it (as
    image-transmit does); without it each line must name its registry.
    """
    planned: list[PlannedJob] = []
    invalid: list[InvalidLine] = []
    for line in lines:
        try:
            ref = ImageReference.parse(line.source)
            if source_registry:
                repository = ref.repository
                if source_prefix and not repository.startswith(source_prefix.strip("/") + "/"):
                    repository = f"{source_prefix.strip('/')}/{repository}"
                ref = ImageReference(source_registry, repository, ref.tag, ref.digest)
            elif not ref.registry:
                raise ReferenceError_(f"{line.source!r} names no registry; give --from")
            ref = ref.tagged_or_latest
            repository, tag = apply_rename(ref, line.target)
            if not line.target:
                repository = rewrite_repository(repository, target_rewrite)
            if not tag and ref.digest:
                tag = None  # pinned by digest: pushed by digest
            job = CopyJob(
                label=line.source,
                source_repository=ref.repository,
                source_reference=ref.reference,
                target_repository=repository,
                target_tag=tag,
                source_label=str(ref),
            )
            planned.append(PlannedJob(job, ref.registry, line.line_number))
        except ReferenceError_ as e:
            invalid.append(InvalidLine(line.line_number, line.source, str(e)))
    return planned, invalid
