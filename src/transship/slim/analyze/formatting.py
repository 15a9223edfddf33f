"""Numbers as people read them, shared by the terminal and HTML renderers."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """Decimal units, as registries and `docker images` show sizes: 1.2 MB = 1 200 000 B."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1000
    return f"{sign}{n:.1f} TB"  # pragma: no cover - loop always returns


def percent(ratio: float) -> str:
    return f"{ratio * 100:.1f} %"


def short_digest(digest: str | None, length: int = 12) -> str:
    if not digest:
        return "-"
    return digest.split(":", 1)[-1][:length]


def one_line(text: str | None, width: int = 80) -> str:
    """A history step on one line, cut to `width` characters."""
    if not text:
        return ""
    flat = " ".join(text.replace("/bin/sh -c #(nop) ", "").replace("/bin/sh -c ", "RUN ").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def short_names(names: list[str]) -> dict[str, str]:
    """Names without the part they all share up to a `/` (e.g. `docker://host:5000/team/`),
    for labels where every character counts."""
    if len(names) < 2:
        return {n: n.rsplit("/", 1)[-1] or n for n in names}
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    cut = prefix.rfind("/") + 1
    return {n: n[cut:] or n for n in names}
