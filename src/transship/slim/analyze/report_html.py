"""The analysis as one self-contained HTML page: inline CSS and SVG charts, no script, no
fonts or images from anywhere else, readable offline and attachable to a ticket."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from html import escape

from transship import __version__
from transship.i18n import current_language, t
from transship.slim.analyze.formatting import (
    human_bytes,
    one_line,
    percent,
    short_digest,
    short_names,
)
from transship.slim.analyze.model import (
    AnalysisReport,
    DuplicateGroup,
    FleetSummary,
    HotColdReport,
    ImageReport,
    LayerInfo,
    OffloadRecommendation,
)
from transship.slim.analyze.render_text import release_sentence
from transship.slim.analyze.svg_charts import (
    BarRow,
    Segment,
    color_for,
    line_chart,
    presence_matrix,
    stacked_bars,
)

GOOD = "#2e9d62"
BAD = "#d9534f"
HOT = "#f08c2e"
COLD = "#4f7fd6"
BASE = "#8a94a6"
OFFLOAD = "#7b5cc4"
APPS = "#4f7fd6"
MATRIX_COLUMNS = 60
COPIES_SHOWN = 6  # per duplicate group; the JSON has them all

CSS = """
:root { --fg:#1d2330; --muted:#5d6678; --line:#e3e6ec; --card:#f7f8fa; --accent:#3459c7; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "Noto Sans", "PingFang SC",
  "Microsoft YaHei", sans-serif; color:var(--fg); background:#fff; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
.sub { color: var(--muted); margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .k { color: var(--muted); font-size: 13px; }
.card .v { font-size: 24px; font-weight: 650; }
.card .v.good { color: #1f7a4a; } .card .v.bad { color: #b33a36; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 10px; }
.sentence { background: #eef7f1; border-left: 4px solid #2e9d62; padding: 10px 14px; border-radius: 6px; }
.chart { display: block; margin: 8px 0 4px; max-width: 100%; height: auto; }
.chart text { font-size: 12px; fill: var(--fg); }
.chart text.axis, .chart text.col { fill: var(--muted); font-size: 11px; }
.chart text.val { fill: var(--muted); }
.chart line.grid { stroke: var(--line); }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: 13px; color: var(--muted); margin: 4px 0; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 3px; margin-right: 5px;
  vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 13.5px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; background: var(--card); }
td.n, th.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.p { word-break: break-all; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12.5px; }
details { border: 1px solid var(--line); border-radius: 10px; padding: 4px 16px 10px; margin: 14px 0; }
summary { cursor: pointer; font-weight: 650; font-size: 16px; padding: 8px 0; }
.tag { display:inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; background:#e8ecf7;
  color: var(--accent); }
.hot { color: #b45f12; } .cold { color: #2f5bb0; }
.error { color: #b33a36; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def render_html(report: AnalysisReport, limit: int = 20) -> str:
    lang = current_language()
    names = short_names([i.name for i in report.images])
    body: list[str] = [_header(report, names)]
    body.append(_overview(report))
    if report.images:
        body.append(_layer_chart(report.images, names))
        body.append(_waste_chart(report.images, names))
    if report.fleet:
        body.append(_sharing(report, report.fleet, limit, names))
    if report.offload:
        body.append(_offload(report.offload, limit, names))
    if report.compare:
        body.append(_compare(report.compare, limit))
    if report.images:
        body.append(f"<h2>{escape(t('analyze.html.details'))}</h2>")
        body.extend(
            _image_details(image, limit, open_=i == 0) for i, image in enumerate(report.images)
        )
    if report.errors:
        body.append(f"<h2>{escape(t('analyze.html.errors'))}</h2><ul>")
        body.extend(
            f'<li class="error">{escape(t("analyze.error.image", image=e.image, message=e.message))}</li>'
            for e in report.errors
        )
        body.append("</ul>")
    body.append(
        f"<footer>transship {escape(__version__)} · {escape(t('analyze.html.footer'))}</footer>"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(t('analyze.html.title'))}</title>\n<style>{CSS}</style>\n</head>\n"
        f'<body><main id="report">\n' + "\n".join(body) + "\n</main></body>\n</html>\n"
    )


# -- sections ------------------------------------------------------------------------------------
def _header(report: AnalysisReport, short: dict[str, str]) -> str:
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(short[i.name] for i in report.images[:6]) + (
        " …" if len(report.images) > 6 else ""
    )
    return (
        f"<h1>{escape(t('analyze.html.title'))}</h1>"
        f'<p class="sub">{escape(t("analyze.html.subtitle", images=len(report.images), platform=report.platform, when=when))}'
        f"<br>{escape(names)}</p>"
    )


def _card(label: str, value: str, cls: str = "") -> str:
    return f'<div class="card"><div class="k">{escape(label)}</div><div class="v {cls}">{escape(value)}</div></div>'


def _overview(report: AnalysisReport) -> str:
    cards = []
    images = report.images
    if images:
        shipped = sum(i.waste.shipped_bytes for i in images)
        final = sum(i.waste.final_bytes for i in images)
        wasted = sum(i.waste.wasted_bytes for i in images)
        cards.append(_card(t("analyze.html.card.images"), str(len(images))))
        cards.append(
            _card(
                t("analyze.html.card.compressed"),
                human_bytes(sum(i.compressed_size for i in images)),
            )
        )
        cards.append(
            _card(
                t("analyze.html.card.efficiency"),
                percent(final / shipped if shipped else 1.0),
                "good" if not wasted else "",
            )
        )
        cards.append(
            _card(t("analyze.html.card.wasted"), human_bytes(wasted), "bad" if wasted else "good")
        )
    if report.fleet:
        cards.append(
            _card(t("analyze.html.card.unique"), human_bytes(report.fleet.compressed_unique))
        )
        cards.append(
            _card(
                t("analyze.html.card.duplicates"),
                human_bytes(report.fleet.duplicates.redundant_bytes),
            )
        )
    if report.offload and report.offload.files:
        cards.append(
            _card(
                t("analyze.html.card.offload_saves"),
                human_bytes(report.offload.compressed_estimate.saved_total),
                "good",
            )
        )
    return f'<section class="cards" id="overview">{"".join(cards)}</section>'


def _layer_key(layer: LayerInfo) -> str:
    return layer.diff_id or layer.digest


def _layer_chart(images: Sequence[ImageReport], names: dict[str, str]) -> str:
    rows = [
        BarRow(
            names[image.name],
            [
                Segment(
                    layer.compressed_size,
                    color_for(_layer_key(layer)),
                    f"#{layer.index} {human_bytes(layer.compressed_size)} · {one_line(layer.created_by, 90) or short_digest(layer.digest)}"
                    + (
                        f" · {t('analyze.html.shared_with', count=len(layer.shared_with))}"
                        if layer.shared_with
                        else ""
                    ),
                )
                for layer in image.layers
            ],
            human_bytes(image.compressed_size),
        )
        for image in images
    ]
    return (
        f'<section id="layers"><h2>{escape(t("analyze.html.layers_title"))}</h2>'
        f'<p class="note">{escape(t("analyze.html.layers_note"))}</p>'
        + stacked_bars(rows, human_bytes, aria_label=t("analyze.html.layers_title"))
        + "</section>"
    )


def _waste_chart(images: Sequence[ImageReport], names: dict[str, str]) -> str:
    rows = [
        BarRow(
            names[image.name],
            [
                Segment(
                    image.waste.final_bytes,
                    GOOD,
                    f"{t('analyze.html.final')}: {human_bytes(image.waste.final_bytes)}",
                ),
                Segment(
                    image.waste.wasted_bytes,
                    BAD,
                    f"{t('analyze.html.wasted')}: {human_bytes(image.waste.wasted_bytes)}",
                ),
            ],
            f"{percent(image.waste.efficiency)} · {human_bytes(image.waste.wasted_bytes)}",
        )
        for image in images
    ]
    return (
        f'<section id="waste"><h2>{escape(t("analyze.html.waste_title"))}</h2>'
        + _legend([(GOOD, t("analyze.html.final")), (BAD, t("analyze.html.wasted"))])
        + stacked_bars(rows, human_bytes, aria_label=t("analyze.html.waste_title"))
        + "</section>"
    )


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><i style="background:{c}"></i>{escape(label)}</span>' for c, label in items
        )
        + "</div>"
    )


def _sharing(report: AnalysisReport, fleet: FleetSummary, limit: int, names: dict[str, str]) -> str:
    images = report.images
    columns: dict[str, tuple[LayerInfo, set[int]]] = {}
    for i, image in enumerate(images):
        for layer in image.layers:
            columns.setdefault(_layer_key(layer), (layer, set()))[1].add(i)
    ordered = sorted(columns.items(), key=lambda kv: (-len(kv[1][1]), -kv[1][0].compressed_size))[
        :MATRIX_COLUMNS
    ]
    matrix = presence_matrix(
        [names[i.name] for i in images],
        [
            (
                key,
                f"{human_bytes(layer.compressed_size)} {short_digest(layer.digest, 6)}",
                color_for(key),
            )
            for key, (layer, _) in ordered
        ],
        [[i in users for _, (_, users) in ordered] for i in range(len(images))],
        aria_label=t("analyze.html.sharing_title"),
    )
    stored = [
        BarRow(
            t("analyze.html.stored.separate"),
            [Segment(fleet.compressed_total, BASE, human_bytes(fleet.compressed_total))],
        ),
        BarRow(
            t("analyze.html.stored.unique"),
            [Segment(fleet.compressed_unique, APPS, human_bytes(fleet.compressed_unique))],
        ),
    ]
    if report.offload and report.offload.files:
        after = fleet.compressed_unique - report.offload.compressed_estimate.saved_per_release
        stored.append(
            BarRow(t("analyze.html.stored.offload"), [Segment(after, GOOD, human_bytes(after))])
        )
    dup = fleet.duplicates
    return (
        f'<section id="sharing"><h2>{escape(t("analyze.html.sharing_title"))}</h2>'
        f'<p class="note">{escape(t("analyze.html.sharing_note"))}</p>'
        + matrix
        + stacked_bars(stored, human_bytes, aria_label=t("analyze.html.stored_title"))
        + f"<h3>{escape(t('analyze.duplicates.fleet_summary', redundant=human_bytes(dup.redundant_bytes), groups=dup.group_count))}</h3>"
        + _duplicates_table(dup.groups[:limit], by_index=False, names=names)
        + "</section>"
    )


def _offload(offload: OffloadRecommendation, limit: int, names: dict[str, str]) -> str:
    head = f'<section id="offload"><h2>{escape(t("analyze.html.offload_title"))}</h2>'
    if not offload.files:
        return head + f"<p>{escape(t('analyze.offload.none', k=offload.min_images))}</p></section>"
    math = offload.compressed_estimate
    per_release = stacked_bars(
        [
            BarRow(
                t("analyze.html.release.before"),
                [
                    Segment(
                        math.base_bytes,
                        BASE,
                        f"{t('analyze.html.base')}: {human_bytes(math.base_bytes)}",
                    ),
                    Segment(
                        math.app_bytes,
                        APPS,
                        f"{t('analyze.html.apps')}: {human_bytes(math.app_bytes)}",
                    ),
                ],
            ),
            BarRow(
                t("analyze.html.release.after"),
                [
                    Segment(
                        math.base_bytes,
                        BASE,
                        f"{t('analyze.html.base')}: {human_bytes(math.base_bytes)}",
                    ),
                    Segment(
                        math.offload_bytes,
                        OFFLOAD,
                        f"{t('analyze.html.offload')}: {human_bytes(math.offload_bytes)}",
                    ),
                    Segment(
                        math.app_bytes_after,
                        APPS,
                        f"{t('analyze.html.apps')}: {human_bytes(math.app_bytes_after)}",
                    ),
                ],
            ),
        ],
        human_bytes,
        aria_label=t("analyze.html.release_chart"),
    )
    releases = range(1, math.releases + 1)
    over_time = line_chart(
        [
            (
                t("analyze.html.release.before"),
                BAD,
                [math.base_bytes + n * math.app_bytes for n in releases],
            ),
            (
                t("analyze.html.release.after"),
                GOOD,
                [math.base_bytes + math.offload_bytes + n * math.app_bytes_after for n in releases],
            ),
        ],
        human_bytes,
        x_label=lambda n: t("analyze.html.release_n", n=n),
        aria_label=t("analyze.html.releases_chart", n=math.releases),
    )
    files = sorted(offload.files, key=lambda f: (-f.size * len(f.images), f.path))[:limit]
    file_rows = "".join(
        f'<tr><td class="p">{escape(f.path)}</td><td class="n">{human_bytes(f.size)}</td><td class="n">{len(f.images)}</td></tr>'
        for f in files
    )
    image_rows = "".join(
        f"<tr><td title='{escape(p.image)}'>{escape(names.get(p.image, p.image))}</td><td class='n'>{human_bytes(p.saved_bytes)}</td><td class='n'>{p.saved_files}</td>"
        f"<td class='n'>{p.foreign_files} ({human_bytes(p.foreign_bytes)})</td></tr>"
        for p in offload.per_image
    )
    return (
        head
        + f"<p>{escape(t('analyze.offload.summary', files=offload.file_count, size=human_bytes(offload.layer_bytes), k=offload.min_images))}</p>"
        + f'<p class="sentence">{escape(release_sentence(math))}</p>'
        + f'<p class="note">{escape(t("analyze.html.offload_note"))}</p>'
        + _legend(
            [
                (BASE, t("analyze.html.base")),
                (OFFLOAD, t("analyze.html.offload")),
                (APPS, t("analyze.html.apps")),
            ]
        )
        + per_release
        + f"<h3>{escape(t('analyze.html.releases_chart', n=math.releases))}</h3>"
        + over_time
        + f"<h3>{escape(t('analyze.offload.files_title'))}</h3>"
        + _table_html(
            [
                (t("analyze.col.path"), ""),
                (t("analyze.col.size"), "n"),
                (t("analyze.col.images"), "n"),
            ],
            file_rows,
        )
        + f"<h3>{escape(t('analyze.offload.per_image_title'))}</h3>"
        + _table_html(
            [
                (t("analyze.col.image"), ""),
                (t("analyze.col.saved"), "n"),
                (t("analyze.col.files"), "n"),
                (t("analyze.col.foreign"), "n"),
            ],
            image_rows,
        )
        + "</section>"
    )


def _compare(compare: HotColdReport, limit: int) -> str:
    rows = [
        BarRow(
            f"#{layer.index} {one_line(layer.created_by, 24) or short_digest(layer.digest)}",
            [
                Segment(
                    layer.hot_bytes, HOT, f"{t('analyze.col.hot')}: {human_bytes(layer.hot_bytes)}"
                ),
                Segment(
                    layer.cold_bytes,
                    COLD,
                    f"{t('analyze.col.cold')}: {human_bytes(layer.cold_bytes)}",
                ),
            ],
            t(f"analyze.status.{layer.status}"),
        )
        for layer in compare.layers
    ]
    changed = "".join(
        f'<tr><td class="p">{escape(f.path)}</td><td class="n">{human_bytes(f.size)}</td>'
        f'<td class="{"cold" if f.status == "removed" else "hot"}">{escape(t(f"analyze.status.{f.status}"))}</td></tr>'
        for f in compare.changed_files[:limit]
    )
    summary = t(
        "analyze.compare.summary",
        old=compare.old,
        new=compare.new,
        update=human_bytes(compare.update_compressed_bytes),
        hot=human_bytes(compare.hot_bytes),
        cold=human_bytes(compare.cold_bytes_in_changed_layers),
    )
    return (
        f'<section id="compare"><h2>{escape(t("analyze.html.compare_title"))}</h2>'
        f'<p class="sentence">{escape(summary)}</p>'
        + _legend([(HOT, t("analyze.col.hot")), (COLD, t("analyze.col.cold"))])
        + stacked_bars(rows, human_bytes, aria_label=t("analyze.html.compare_title"))
        + f"<h3>{escape(t('analyze.compare.files_title'))}</h3>"
        + _table_html(
            [
                (t("analyze.col.path"), ""),
                (t("analyze.col.size"), "n"),
                (t("analyze.col.status"), ""),
            ],
            changed,
        )
        + "</section>"
    )


def _image_details(image: ImageReport, limit: int, open_: bool) -> str:
    waste = image.waste
    layer_rows = "".join(
        f'<tr><td class="n">{layer.index}</td><td class="n">{human_bytes(layer.compressed_size)}</td>'
        f'<td class="n">{human_bytes(layer.uncompressed_size)}</td><td class="n">{layer.file_count}</td>'
        f'<td class="n">{human_bytes(layer.wasted_bytes) if layer.wasted_bytes else ""}</td>'
        f"<td>{'<span class=tag>' + escape(t('analyze.html.shared_with', count=len(layer.shared_with))) + '</span> ' if layer.shared_with else ''}"
        f"{escape(one_line(layer.created_by, 140) or short_digest(layer.digest))}</td></tr>"
        for layer in image.layers
    )
    waste_rows = "".join(
        f'<tr><td class="p">{escape(w.path)}</td><td class="n">{human_bytes(w.size)}</td><td class="n">#{w.added_by}</td>'
        f'<td class="n">#{w.removed_by}</td><td>{escape(t(f"analyze.reason.{w.reason}"))}</td></tr>'
        for w in waste.files[:limit]
    )
    file_rows = "".join(
        f'<tr><td class="p">{escape(f.path)}</td><td class="n">{human_bytes(f.size)}</td><td class="n">#{f.layer}</td></tr>'
        for f in image.biggest_files[:limit]
    )
    dir_rows = "".join(
        f'<tr><td class="p">{escape(d.path)}/</td><td class="n">{human_bytes(d.size)}</td><td class="n">{d.file_count}</td></tr>'
        for d in image.biggest_dirs[:limit]
    )
    summary = t(
        "analyze.image.summary",
        layers=len(image.layers),
        compressed=human_bytes(image.compressed_size),
        content=human_bytes(waste.shipped_bytes),
        files=image.file_count,
        efficiency=percent(waste.efficiency),
    )
    return (
        f'<details class="image"{" open" if open_ else ""}><summary>{escape(image.name)} '
        f'<span class="tag">{escape(percent(waste.efficiency))}</span></summary>'
        f'<p class="note">{escape(summary)} · {escape(short_digest(image.manifest_digest, 19))} · {escape(image.platform or "")}</p>'
        f"<h3>{escape(t('analyze.layers.title'))}</h3>"
        + _table_html(
            [
                ("#", "n"),
                (t("analyze.col.compressed"), "n"),
                (t("analyze.col.uncompressed"), "n"),
                (t("analyze.col.files"), "n"),
                (t("analyze.col.wasted"), "n"),
                (t("analyze.col.step"), ""),
            ],
            layer_rows,
        )
        + f"<h3>{escape(t('analyze.waste.summary', wasted=human_bytes(waste.wasted_bytes), files=waste.wasted_file_count, final=human_bytes(waste.final_bytes), shipped=human_bytes(waste.shipped_bytes), efficiency=percent(waste.efficiency)))}</h3>"
        + (
            _table_html(
                [
                    (t("analyze.col.path"), ""),
                    (t("analyze.col.size"), "n"),
                    (t("analyze.col.added_by"), "n"),
                    (t("analyze.col.removed_by"), "n"),
                    (t("analyze.col.how"), ""),
                ],
                waste_rows,
            )
            if waste_rows
            else ""
        )
        + f"<h3>{escape(t('analyze.biggest_files.title'))}</h3>"
        + _table_html(
            [
                (t("analyze.col.path"), ""),
                (t("analyze.col.size"), "n"),
                (t("analyze.col.layer"), "n"),
            ],
            file_rows,
        )
        + f"<h3>{escape(t('analyze.biggest_dirs.title'))}</h3>"
        + _table_html(
            [
                (t("analyze.col.path"), ""),
                (t("analyze.col.size"), "n"),
                (t("analyze.col.files"), "n"),
            ],
            dir_rows,
        )
        + f"<h3>{escape(t('analyze.duplicates.image_summary', redundant=human_bytes(image.duplicates.redundant_bytes), groups=image.duplicates.group_count))}</h3>"
        + _duplicates_table(image.duplicates.groups[:limit], by_index=True)
        + "</details>"
    )


def _duplicates_table(
    groups: Sequence[DuplicateGroup], by_index: bool, names: dict[str, str] | None = None
) -> str:
    names = names or {}
    if not groups:
        return ""
    rows = "".join(
        f'<tr><td class="n">{human_bytes(g.size)}</td><td class="n">{len(g.copies)}</td>'
        f'<td class="n">{human_bytes(g.redundant_bytes)}</td><td class="p">'
        + "<br>".join(
            escape(
                f"#{c.layer_index} {c.path}"
                if by_index
                else f"{c.path} ({', '.join(names.get(i, i) for i in c.images)})"
            )
            for c in g.copies[:COPIES_SHOWN]
        )
        + (
            "<br>" + escape(t("analyze.duplicates.more", count=len(g.copies) - COPIES_SHOWN))
            if len(g.copies) > COPIES_SHOWN
            else ""
        )
        + "</td></tr>"
        for g in groups
    )
    return _table_html(
        [
            (t("analyze.col.size"), "n"),
            (t("analyze.col.copies"), "n"),
            (t("analyze.col.redundant"), "n"),
            (t("analyze.col.where"), ""),
        ],
        rows,
    )


def _table_html(columns: Sequence[tuple[str, str]], rows: str) -> str:
    head = "".join(f'<th class="{cls}">{escape(name)}</th>' for name, cls in columns)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
