"""Small inline-SVG charts for the HTML report: no script, no network, sizes in the markup.

Every chart is a function from plain numbers to an `<svg>` string. Hover titles carry the
exact figures; colours come from the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

LABEL_WIDTH = 190
BAR_HEIGHT = 22
ROW_GAP = 8
CHART_WIDTH = 960


@dataclass(frozen=True)
class Segment:
    value: float
    color: str
    title: str  # hover text


@dataclass(frozen=True)
class BarRow:
    label: str
    segments: Sequence[Segment]
    note: str = ""  # printed after the bar


def color_for(key: str) -> str:
    """A stable colour per layer: the same layer looks the same in every image's bar."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return f"hsl({h % 360}, {50 + h // 360 % 25}%, {48 + h // 9000 % 14}%)"


def _text(x: float, y: float, content: str, *, anchor: str = "start", cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{attr}>{escape(content)}</text>'


def stacked_bars(
    rows: Sequence[BarRow],
    fmt: Callable[[float], str],
    *,
    aria_label: str,
    width: int = CHART_WIDTH,
) -> str:
    """Horizontal stacked bars, one row per label, on one shared scale."""
    note_width = 150
    plot = width - LABEL_WIDTH - note_width
    top = max((sum(s.value for s in r.segments) for r in rows), default=0) or 1
    height = len(rows) * (BAR_HEIGHT + ROW_GAP) + ROW_GAP
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(aria_label)}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet">'
    ]
    for i, row in enumerate(rows):
        y = ROW_GAP + i * (BAR_HEIGHT + ROW_GAP)
        out.append(
            _text(
                LABEL_WIDTH - 8,
                y + BAR_HEIGHT * 0.7,
                _cut_left(row.label, 28),
                anchor="end",
                cls="lbl",
            )
        )
        x = float(LABEL_WIDTH)
        for seg in row.segments:
            w = plot * seg.value / top
            if w <= 0:
                continue
            out.append(
                f'<rect x="{x:.2f}" y="{y}" width="{max(w, 0.6):.2f}" height="{BAR_HEIGHT}" '
                f'fill="{seg.color}" stroke="#fff" stroke-width="0.6">'
                f"<title>{escape(seg.title)}</title></rect>"
            )
            x += w
        total = sum(s.value for s in row.segments)
        out.append(_text(x + 6, y + BAR_HEIGHT * 0.7, row.note or fmt(total), cls="val"))
    out.append("</svg>")
    return "".join(out)


def presence_matrix(
    row_labels: Sequence[str],
    columns: Sequence[tuple[str, str, str]],  # (key, header, colour)
    present: Sequence[Sequence[bool]],
    *,
    aria_label: str,
) -> str:
    """Which image (row) uses which layer (column): the picture of sharing."""
    cell = 26 if len(columns) <= 16 else 18 if len(columns) <= 40 else 12
    header = 70
    width = LABEL_WIDTH + len(columns) * (cell + 2) + 10
    height = header + len(row_labels) * (cell + 2) + 6
    out = [
        f'<svg class="chart matrix" role="img" aria-label="{escape(aria_label)}" '
        f'viewBox="0 0 {width} {height}" width="{min(width, CHART_WIDTH)}" '
        'preserveAspectRatio="xMinYMin meet">'
    ]
    for j, (_, head, _) in enumerate(columns):
        x = LABEL_WIDTH + j * (cell + 2) + cell / 2
        out.append(
            f'<text class="col" transform="translate({x:.1f},{header - 6}) rotate(-55)">'
            f"{escape(_cut(head, 11))}</text>"
        )
    for i, label in enumerate(row_labels):
        y = header + i * (cell + 2)
        out.append(
            _text(LABEL_WIDTH - 8, y + cell * 0.75, _cut_left(label, 28), anchor="end", cls="lbl")
        )
        for j, (_key, head, colour) in enumerate(columns):
            x = LABEL_WIDTH + j * (cell + 2)
            fill = colour if present[i][j] else "#eef0f3"
            tip = f"{label} · {head}" if present[i][j] else ""
            out.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="3" fill="{fill}">'
                + (f"<title>{escape(tip)}</title>" if tip else "")
                + "</rect>"
            )
    out.append("</svg>")
    return "".join(out)


def line_chart(
    series: Sequence[tuple[str, str, Sequence[float]]],  # (name, colour, y per x=1..n)
    fmt: Callable[[float], str],
    *,
    x_label: Callable[[int], str],
    aria_label: str,
    width: int = CHART_WIDTH,
    height: int = 260,
) -> str:
    left, right, top_pad, bottom = 80, 150, 14, 34
    n = max((len(values) for _, _, values in series), default=0)
    top = max((max(values, default=0) for _, _, values in series), default=0) or 1
    plot_w, plot_h = width - left - right, height - top_pad - bottom

    def px(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top_pad + plot_h * (1 - v / top)

    out = [
        f'<svg class="chart" role="img" aria-label="{escape(aria_label)}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet">'
    ]
    for k in range(5):
        v = top * k / 4
        y = py(v)
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        out.append(_text(left - 6, y + 4, fmt(v), anchor="end", cls="axis"))
    for i in range(n):
        if n <= 12 or i % max(1, n // 10) == 0 or i == n - 1:
            out.append(
                _text(px(i), height - bottom + 18, x_label(i + 1), anchor="middle", cls="axis")
            )
    for name, colour, values in series:
        points = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(values))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="3"/>')
        for i, v in enumerate(values):
            out.append(
                f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(f'{name}: {x_label(i + 1)} → {fmt(v)}')}</title></circle>"
            )
        if values:
            out.append(
                _text(
                    px(len(values) - 1) + 8,
                    py(values[-1]) + 4,
                    f"{name}: {fmt(values[-1])}",
                    cls="val",
                )
            )
    out.append("</svg>")
    return "".join(out)


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _cut_left(text: str, length: int) -> str:
    """Image names differ at their end (repository and tag): keep that part."""
    return text if len(text) <= length else "…" + text[-(length - 1) :]
