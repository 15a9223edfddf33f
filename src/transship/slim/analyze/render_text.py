"""The analysis as tables on a terminal (rich)."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from transship.i18n import t
from transship.slim.analyze.formatting import human_bytes, one_line, percent, short_digest
from transship.slim.analyze.model import (
    AnalysisReport,
    DuplicateGroup,
    FleetSummary,
    HotColdReport,
    ImageReport,
    OffloadRecommendation,
    ReleaseMath,
)

COPIES_SHOWN = 4  # per duplicate group; the JSON has them all


def render_report(report: AnalysisReport, console: Console, limit: int = 20) -> None:
    for image in report.images:
        console.print(render_image(image, limit))
        console.print()
    if report.fleet:
        console.print(render_overview(report.images))
        console.print()
        console.print(render_fleet(report.fleet, limit))
        console.print()
    if report.offload:
        console.print(render_offload(report.offload, limit))
        console.print()
    if report.compare:
        console.print(render_compare(report.compare, limit))
        console.print()


def _table(title: str, *columns: tuple[str, str]) -> Table:
    table = Table(
        title=title, title_justify="left", title_style="bold", show_edge=False, pad_edge=False
    )
    for header, justify in columns:
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    return table


def render_image(image: ImageReport, limit: int) -> RenderableType:
    waste = image.waste
    header = Text.assemble(
        (image.name, "bold cyan"),
        f"  {short_digest(image.manifest_digest)}  {image.platform or ''}\n",
        t(
            "analyze.image.summary",
            layers=len(image.layers),
            compressed=human_bytes(image.compressed_size),
            content=human_bytes(waste.shipped_bytes),
            files=image.file_count,
            efficiency=percent(waste.efficiency),
        ),
    )
    layers = _table(
        t("analyze.layers.title"),
        ("#", "right"),
        (t("analyze.col.compressed"), "right"),
        (t("analyze.col.uncompressed"), "right"),
        (t("analyze.col.files"), "right"),
        (t("analyze.col.wasted"), "right"),
        (t("analyze.col.shared"), "right"),
        (t("analyze.col.step"), "left"),
    )
    for layer in image.layers:
        layers.add_row(
            str(layer.index),
            human_bytes(layer.compressed_size),
            human_bytes(layer.uncompressed_size),
            str(layer.file_count),
            human_bytes(layer.wasted_bytes) if layer.wasted_bytes else "",
            str(len(layer.shared_with)) if layer.shared_with else "",
            one_line(layer.created_by, 70) or short_digest(layer.digest),
        )
    parts: list[RenderableType] = [header, layers]
    parts.append(
        Text(
            t(
                "analyze.waste.summary",
                wasted=human_bytes(waste.wasted_bytes),
                files=waste.wasted_file_count,
                final=human_bytes(waste.final_bytes),
                shipped=human_bytes(waste.shipped_bytes),
                efficiency=percent(waste.efficiency),
            ),
            style="yellow" if waste.wasted_bytes else "green",
        )
    )
    if waste.files:
        table = _table(
            t("analyze.waste.title"),
            (t("analyze.col.path"), "left"),
            (t("analyze.col.size"), "right"),
            (t("analyze.col.added_by"), "right"),
            (t("analyze.col.removed_by"), "right"),
            (t("analyze.col.how"), "left"),
        )
        for w in waste.files[:limit]:
            table.add_row(
                w.path,
                human_bytes(w.size),
                f"#{w.added_by}",
                f"#{w.removed_by}",
                t(f"analyze.reason.{w.reason}"),
            )
        parts.append(table)
    files = _table(
        t("analyze.biggest_files.title"),
        (t("analyze.col.path"), "left"),
        (t("analyze.col.size"), "right"),
        (t("analyze.col.layer"), "right"),
    )
    for f in image.biggest_files[:limit]:
        files.add_row(f.path, human_bytes(f.size), f"#{f.layer}")
    dirs = _table(
        t("analyze.biggest_dirs.title"),
        (t("analyze.col.path"), "left"),
        (t("analyze.col.size"), "right"),
        (t("analyze.col.files"), "right"),
    )
    for d in image.biggest_dirs[:limit]:
        dirs.add_row(d.path + "/", human_bytes(d.size), str(d.file_count))
    parts += [files, dirs]
    dup = image.duplicates
    parts.append(
        Text(
            t(
                "analyze.duplicates.image_summary",
                redundant=human_bytes(dup.redundant_bytes),
                groups=dup.group_count,
            )
        )
    )
    if dup.groups:
        parts.append(_duplicates_table(dup.groups[:limit], by_index=True))
    return Group(*parts)


def _duplicates_table(groups: list[DuplicateGroup], by_index: bool) -> Table:
    table = _table(
        t("analyze.duplicates.title"),
        (t("analyze.col.size"), "right"),
        (t("analyze.col.copies"), "right"),
        (t("analyze.col.redundant"), "right"),
        (t("analyze.col.where"), "left"),
    )
    for g in groups:
        where = "\n".join(
            f"#{c.layer_index} {c.path}" if by_index else f"{c.path}  ({', '.join(c.images)})"
            for c in g.copies[:COPIES_SHOWN]
        )
        if len(g.copies) > COPIES_SHOWN:
            where += "\n" + t("analyze.duplicates.more", count=len(g.copies) - COPIES_SHOWN)
        table.add_row(
            human_bytes(g.size), str(len(g.copies)), human_bytes(g.redundant_bytes), where
        )
    return table


def render_overview(images: list[ImageReport]) -> RenderableType:
    """One line per image, to compare them at a glance."""
    table = _table(
        t("analyze.overview.title"),
        (t("analyze.col.image"), "left"),
        (t("analyze.col.layers"), "right"),
        (t("analyze.col.compressed"), "right"),
        (t("analyze.col.content"), "right"),
        (t("analyze.col.wasted"), "right"),
        (t("analyze.col.efficiency"), "right"),
        (t("analyze.col.redundant"), "right"),
    )
    for image in images:
        table.add_row(
            image.name,
            str(len(image.layers)),
            human_bytes(image.compressed_size),
            human_bytes(image.waste.shipped_bytes),
            human_bytes(image.waste.wasted_bytes),
            percent(image.waste.efficiency),
            human_bytes(image.duplicates.redundant_bytes),
        )
    return table


def render_fleet(fleet: FleetSummary, limit: int) -> RenderableType:
    head = Text(
        t(
            "analyze.fleet.summary",
            images=fleet.image_count,
            total=human_bytes(fleet.compressed_total),
            unique=human_bytes(fleet.compressed_unique),
        ),
        style="bold",
    )
    shared = _table(
        t("analyze.shared.title"),
        (t("analyze.col.layer"), "left"),
        (t("analyze.col.compressed"), "right"),
        (t("analyze.col.images"), "right"),
        (t("analyze.col.step"), "left"),
    )
    for layer in fleet.shared_layers[:limit]:
        shared.add_row(
            short_digest(layer.digest),
            human_bytes(layer.compressed_size),
            str(len(layer.images)),
            one_line(layer.created_by, 60),
        )
    dup = fleet.duplicates
    parts: list[RenderableType] = [head, shared]
    parts.append(
        Text(
            t(
                "analyze.duplicates.fleet_summary",
                redundant=human_bytes(dup.redundant_bytes),
                groups=dup.group_count,
            )
        )
    )
    if dup.groups:
        parts.append(_duplicates_table(dup.groups[:limit], by_index=False))
    return Group(*parts)


def release_sentence(math: ReleaseMath) -> str:
    """The arithmetic as teams say it: base + per-app × apps per release, and for N."""
    apps = max(math.apps, 1)
    return t(
        "analyze.offload.release_sentence",
        base=human_bytes(math.base_bytes),
        app=human_bytes(math.app_bytes / apps),
        apps=math.apps,
        before=human_bytes(math.per_release_before),
        offload=human_bytes(math.offload_bytes),
        app_after=human_bytes(math.app_bytes_after / apps),
        after=human_bytes(math.per_release_after),
        releases=math.releases,
        total_before=human_bytes(math.total_before),
        total_after=human_bytes(math.total_after),
        saved=human_bytes(math.saved_total),
    )


def render_offload(offload: OffloadRecommendation, limit: int) -> RenderableType:
    if not offload.files:
        return Text(t("analyze.offload.none", k=offload.min_images), style="bold")
    head = Text(
        t(
            "analyze.offload.summary",
            files=offload.file_count,
            size=human_bytes(offload.layer_bytes),
            k=offload.min_images,
        ),
        style="bold",
    )
    files = _table(
        t("analyze.offload.files_title"),
        (t("analyze.col.path"), "left"),
        (t("analyze.col.size"), "right"),
        (t("analyze.col.images"), "right"),
    )
    for f in sorted(offload.files, key=lambda f: (-f.size * len(f.images), f.path))[:limit]:
        files.add_row(f.path, human_bytes(f.size), str(len(f.images)))
    per_image = _table(
        t("analyze.offload.per_image_title"),
        (t("analyze.col.image"), "left"),
        (t("analyze.col.saved"), "right"),
        (t("analyze.col.files"), "right"),
        (t("analyze.col.foreign"), "right"),
    )
    for p in offload.per_image:
        per_image.add_row(
            p.image,
            human_bytes(p.saved_bytes),
            str(p.saved_files),
            f"{p.foreign_files} ({human_bytes(p.foreign_bytes)})" if p.foreign_files else "",
        )
    return Group(
        head,
        files,
        per_image,
        Text(t("analyze.offload.compressed_label")),
        Text(release_sentence(offload.compressed_estimate), style="green"),
        Text(t("analyze.offload.content_label")),
        Text(release_sentence(offload.content)),
    )


def render_compare(compare: HotColdReport, limit: int) -> RenderableType:
    head = Text(
        t(
            "analyze.compare.summary",
            old=compare.old,
            new=compare.new,
            update=human_bytes(compare.update_compressed_bytes),
            hot=human_bytes(compare.hot_bytes),
            cold=human_bytes(compare.cold_bytes_in_changed_layers),
        ),
        style="bold",
    )
    layers = _table(
        t("analyze.compare.layers_title"),
        ("#", "right"),
        (t("analyze.col.status"), "left"),
        (t("analyze.col.compressed"), "right"),
        (t("analyze.col.hot"), "right"),
        (t("analyze.col.cold"), "right"),
        (t("analyze.col.step"), "left"),
    )
    for layer in compare.layers:
        layers.add_row(
            str(layer.index),
            t(f"analyze.status.{layer.status}"),
            human_bytes(layer.compressed_size),
            human_bytes(layer.hot_bytes),
            human_bytes(layer.cold_bytes),
            one_line(layer.created_by, 60),
        )
    changed = _table(
        t("analyze.compare.files_title"),
        (t("analyze.col.path"), "left"),
        (t("analyze.col.size"), "right"),
        (t("analyze.col.status"), "left"),
    )
    for f in compare.changed_files[:limit]:
        changed.add_row(f.path, human_bytes(f.size), t(f"analyze.status.{f.status}"))
    return Group(head, layers, changed)
