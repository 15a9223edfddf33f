"""Build the per-image part of the report from an analyzed image."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from transship.slim.analyze.analyzed import AnalyzedImage
from transship.slim.analyze.duplicates import LayerContents, find_duplicates
from transship.slim.analyze.model import (
    ImageReport,
    ImageSource,
    LayerInfo,
    SizedPath,
    WastedFile,
    WasteSummary,
)


def build_image_report(
    image: AnalyzedImage, users: Mapping[str, Sequence[str]], limit: int
) -> ImageReport:
    resolved = image.resolved
    fs = image.fs
    keys = image.keys
    wasted_by_layer = [0] * len(image.scans)
    for waste in fs.waste:
        wasted_by_layer[waste.added_by] += waste.size
    layers = []
    for index, scan in enumerate(image.scans):
        desc = resolved.layers[index]
        history = resolved.history[index]
        layers.append(
            LayerInfo(
                index=index,
                digest=desc.digest,
                diff_id=resolved.diff_ids[index],
                media_type=desc.media_type,
                compression=_compression(desc.media_type, scan.compression),
                compressed_size=desc.size,
                uncompressed_size=scan.uncompressed_size,
                content_bytes=scan.content_bytes,
                file_count=scan.file_count,
                entry_count=len(scan.entries),
                created_by=history.created_by if history else None,
                created=history.created if history else None,
                comment=history.comment if history else None,
                wasted_bytes=wasted_by_layer[index],
                shared_with=[n for n in users.get(keys[index], ()) if n != image.name],
            )
        )
    shipped = sum(scan.content_bytes for scan in image.scans)
    files = list(fs.iter_files())
    final = sum(node.size for _, node in files)
    wasted = sorted(fs.waste, key=lambda w: (-w.size, w.path))
    biggest = heapq.nlargest(limit, files, key=lambda item: (item[1].size, item[0]))
    distinct_layers = {}
    for index, key in enumerate(keys):
        distinct_layers.setdefault(
            key, LayerContents(resolved.layers[index].digest, image.scans[index].entries, index)
        )
    return ImageReport(
        name=image.name,
        source=ImageSource(
            spec=resolved.spec, repository=resolved.repository, reference=resolved.reference
        ),
        manifest_digest=resolved.manifest_digest,
        config_digest=resolved.config_digest,
        platform=resolved.platform,
        compressed_size=sum(layer.compressed_size for layer in layers),
        uncompressed_size=sum(layer.uncompressed_size for layer in layers),
        file_count=len(files),
        layers=layers,
        waste=WasteSummary(
            shipped_bytes=shipped,
            final_bytes=final,
            wasted_bytes=sum(w.size for w in wasted),
            efficiency=final / shipped if shipped else 1.0,
            wasted_file_count=len(wasted),
            files=[
                WastedFile(
                    path=w.path,
                    size=w.size,
                    added_by=w.added_by,
                    removed_by=w.removed_by,
                    reason=w.reason,  # type: ignore[arg-type]
                )
                for w in wasted
            ],
        ),
        biggest_files=[
            SizedPath(path=path, size=node.size, layer=node.layer) for path, node in biggest
        ],
        biggest_dirs=[
            SizedPath(path=path, size=size, file_count=count)
            for path, size, count in fs.biggest_dirs(limit)
        ],
        duplicates=find_duplicates(list(distinct_layers.values()), limit),
    )


def _compression(media_type: str, scanned: str) -> str:
    """This image's blob compression: the scan may have read another blob of the same
    content (same diff_id, other compression)."""
    if media_type.endswith("zstd"):
        return "zstd"
    if media_type.endswith("gzip"):
        return "gzip"
    if media_type.endswith(".tar"):
        return "none"
    return scanned
