"""Run an analysis: resolve the images, scan each distinct layer once (in parallel: zlib
and hashlib release the GIL), then build the per-image and cross-image views."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from transship.oci.descriptor import Descriptor, Platform
from transship.slim.analyze.analyzed import AnalyzedImage
from transship.slim.analyze.duplicates import LayerContents, find_duplicates
from transship.slim.analyze.filesystem import LayerStackCache
from transship.slim.analyze.image_reader import (
    DEFAULT_PLATFORM,
    ImageInput,
    ResolvedImage,
    resolve_image,
)
from transship.slim.analyze.image_report import build_image_report
from transship.slim.analyze.layer_scan import LayerScan, scan_layer
from transship.slim.analyze.model import (
    AnalysisReport,
    FleetSummary,
    ImageError,
    SharedLayer,
)
from transship.slim.analyze.offload import hot_cold, layer_users, recommend_offload
from transship.transports.base import Source


@dataclass(frozen=True)
class AnalyzeOptions:
    platform: Platform = DEFAULT_PLATFORM
    min_images: int = 2
    releases: int = 10
    limit: int = 20  # rows in each "biggest" list
    workers: int = 2
    compare: tuple[str, str] | None = None  # names of two of the inputs: old, new
    # Names of the inputs that ship together (sharing, duplicates across images, offload);
    # None: all of them. Images given only to --compare stay out of it.
    release: frozenset[str] | None = None


@dataclass(frozen=True)
class LayerScanned:
    """Progress: one distinct layer finished (or failed)."""

    digest: str
    compressed_size: int
    done: int
    total: int
    error: str | None = None


ProgressCallback = Callable[[LayerScanned], None]


def analyze_images(
    inputs: Sequence[ImageInput],
    options: AnalyzeOptions | None = None,
    progress: ProgressCallback | None = None,
) -> AnalysisReport:
    options = options or AnalyzeOptions()
    report = AnalysisReport(platform=str(options.platform))
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        resolved = _resolve_all(inputs, options.platform, pool, report)
        scans = _scan_all(resolved, pool, progress)
    analyzed: list[AnalyzedImage] = []
    stacks = LayerStackCache()
    for image in resolved:
        try:
            layer_scans = [scans[image.layer_key(i)].result() for i in range(len(image.layers))]
        except Exception as e:  # one failing image does not stop the others
            report.errors.append(ImageError(image=image.name, message=_message(e)))
            continue
        fs = stacks.build(image.keys, [s.entries for s in layer_scans])
        analyzed.append(AnalyzedImage(image, layer_scans, fs))
    users = layer_users(analyzed)
    report.images = [build_image_report(image, users, options.limit) for image in analyzed]
    release = [a for a in analyzed if options.release is None or a.name in options.release]
    if len(release) > 1:
        report.fleet = _fleet(release, layer_users(release), options.limit)
        report.offload = recommend_offload(release, options.min_images, options.releases)
    if options.compare:
        by_name = {image.name: image for image in analyzed}
        old, new = (by_name.get(name) for name in options.compare)
        if old is not None and new is not None:
            report.compare = hot_cold(old, new, options.limit)
    return report


def _resolve_all(
    inputs: Sequence[ImageInput],
    platform: Platform,
    pool: ThreadPoolExecutor,
    report: AnalysisReport,
) -> list[ResolvedImage]:
    futures = [(image, pool.submit(resolve_image, image, platform)) for image in inputs]
    resolved = []
    for image, future in futures:
        try:
            resolved.append(future.result())
        except Exception as e:  # reported per image, the others go on
            report.errors.append(ImageError(image=image.name, message=_message(e)))
    return resolved


def _scan_all(
    images: Sequence[ResolvedImage], pool: ThreadPoolExecutor, progress: ProgressCallback | None
) -> dict[str, Future[LayerScan]]:
    """One scan per distinct layer content, however many images share it."""
    wanted: dict[str, tuple[Source, str, Descriptor]] = {}
    for image in images:
        for index, desc in enumerate(image.layers):
            wanted.setdefault(image.layer_key(index), (image.source, image.repository, desc))
    futures: dict[str, Future[LayerScan]] = {}
    done = 0
    lock = threading.Lock()
    for key, (source, repository, desc) in wanted.items():
        future = pool.submit(_scan_one, source, repository, desc)
        futures[key] = future
        if progress is not None:

            def report_done(f: Future[LayerScan], desc: Descriptor = desc) -> None:
                nonlocal done
                with lock:  # callbacks run in the worker threads
                    done += 1
                    count = done
                error = f.exception()
                progress(
                    LayerScanned(
                        desc.digest,
                        desc.size,
                        count,
                        len(wanted),
                        _message(error) if error else None,
                    )
                )

            future.add_done_callback(report_done)
    for future in futures.values():
        future.exception()  # wait for all, failures are collected per image later
    return futures


def _scan_one(source: Source, repository: str, desc: Descriptor) -> LayerScan:
    with source.open_blob(repository, desc) as stream:
        return scan_layer(stream, desc.digest, desc.media_type, desc.size)


def _fleet(
    images: Sequence[AnalyzedImage], users: dict[str, list[str]], limit: int
) -> FleetSummary:
    distinct: dict[str, tuple[AnalyzedImage, int]] = {}
    blob_sizes: dict[str, int] = {}  # the same tar compressed twice is two blobs
    compressed_total = uncompressed_total = 0
    for image in images:
        for index, key in enumerate(image.keys):
            distinct.setdefault(key, (image, index))
            blob_sizes[image.resolved.layers[index].digest] = image.resolved.layers[index].size
            compressed_total += image.resolved.layers[index].size
            uncompressed_total += image.scans[index].uncompressed_size
    shared = []
    contents = []
    for key, (image, index) in distinct.items():
        desc = image.resolved.layers[index]
        scan = image.scans[index]
        contents.append(LayerContents(desc.digest, scan.entries, None, users[key]))
        if len(users[key]) > 1:
            history = image.resolved.history[index]
            shared.append(
                SharedLayer(
                    digest=desc.digest,
                    diff_id=image.resolved.diff_ids[index],
                    compressed_size=desc.size,
                    uncompressed_size=scan.uncompressed_size,
                    created_by=history.created_by if history else None,
                    images=users[key],
                )
            )
    shared.sort(key=lambda s: (-s.compressed_size * len(s.images), s.digest))
    return FleetSummary(
        image_count=len(images),
        compressed_total=compressed_total,
        compressed_unique=sum(blob_sizes.values()),
        uncompressed_total=uncompressed_total,
        uncompressed_unique=sum(i.scans[x].uncompressed_size for i, x in distinct.values()),
        shared_layers=shared,
        duplicates=find_duplicates(contents, limit),
    )


def _message(error: BaseException) -> str:
    return str(error) or type(error).__name__
