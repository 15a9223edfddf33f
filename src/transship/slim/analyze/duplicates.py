"""The same file content (by sha256) stored more than once among a set of layers.

Callers pass each distinct layer once: a layer two images share is stored once by a
registry and is not a duplicate of itself.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from transship.slim.analyze.layer_scan import FILE, FileEntry
from transship.slim.analyze.model import DuplicateCopy, DuplicateGroup, DuplicateSummary


@dataclass(frozen=True)
class LayerContents:
    digest: str
    entries: Sequence[FileEntry]
    index: int | None = None  # position in an image, when looking inside one image
    images: Sequence[str] = field(default_factory=tuple)


def find_duplicates(layers: Sequence[LayerContents], limit: int) -> DuplicateSummary:
    counts: Counter[bytes] = Counter()
    sizes: dict[bytes, int] = {}
    for layer in layers:
        for entry in layer.entries:
            if entry.kind == FILE and entry.size and entry.sha256 is not None:
                counts[entry.sha256] += 1
                sizes[entry.sha256] = entry.size
    repeated = {h: n for h, n in counts.items() if n > 1}
    redundant_total = sum((n - 1) * sizes[h] for h, n in repeated.items())
    # Only the biggest groups are listed; collect copies for those alone.
    listed = set(heapq.nlargest(limit, repeated, key=lambda h: ((repeated[h] - 1) * sizes[h], h)))
    copies: dict[bytes, list[DuplicateCopy]] = {h: [] for h in listed}
    for layer in layers:
        for entry in layer.entries:
            if entry.kind == FILE and entry.sha256 in copies:
                copies[entry.sha256].append(
                    DuplicateCopy(
                        path=entry.path,
                        layer=layer.digest,
                        layer_index=layer.index,
                        images=list(layer.images),
                    )
                )
    groups = [
        DuplicateGroup(
            sha256=f"sha256:{h.hex()}",
            size=sizes[h],
            copies=found,
            redundant_bytes=(len(found) - 1) * sizes[h],
        )
        for h, found in copies.items()
    ]
    groups.sort(key=lambda g: (-g.redundant_bytes, g.sha256))
    return DuplicateSummary(
        group_count=len(repeated), redundant_bytes=redundant_total, groups=groups
    )
