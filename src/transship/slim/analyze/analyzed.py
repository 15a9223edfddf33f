"""One image after its layers were scanned and applied: the input of the cross-image views
(sharing, duplicates, offload, hot/cold)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from transship.slim.analyze.filesystem import FinalFilesystem
from transship.slim.analyze.image_reader import ResolvedImage
from transship.slim.analyze.layer_scan import LayerScan


@dataclass
class AnalyzedImage:
    resolved: ResolvedImage
    scans: list[LayerScan]  # per layer index (a layer used twice appears twice)
    fs: FinalFilesystem

    @property
    def name(self) -> str:
        return self.resolved.name

    @cached_property
    def keys(self) -> list[str]:
        return self.resolved.keys

    def compression_ratio(self, index: int) -> float:
        """Compressed bytes per content byte of a layer, to estimate what part of a layer's
        blob a subset of its files accounts for."""
        scan = self.scans[index]
        content = scan.content_bytes
        return self.resolved.layers[index].size / content if content else 1.0
