"""Test driver: a minimal stand-in for the copy engine, for transport tests only.

It calls a Source and a Destination in the order the engine does: manifest, children of
an index, each blob (has_blob → mount_blob → put_blob, several at once on a thread pool),
children manifests by digest, the top manifest under its tag (each after has_manifest),
and `commit()` at the end (`abort()` on failure).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from transship.oci.descriptor import Descriptor
from transship.oci.manifest import ImageIndex, ImageManifest, RawManifest
from transship.transports.base import Destination, Source, iter_stream


@dataclass
class CopyReport:
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)


def _copy_blob(
    src: Source,
    dst: Destination,
    src_repo: str,
    dst_repo: str,
    desc: Descriptor,
    report: CopyReport,
) -> None:
    if dst.has_blob(dst_repo, desc):
        report.skipped.append(desc.digest)
        return
    if dst.mount_blob(dst_repo, desc, src_repo):
        report.mounted.append(desc.digest)
        return
    with src.open_blob(src_repo, desc) as stream:
        dst.put_blob(dst_repo, desc, iter_stream(stream, 64 * 1024))
    report.copied.append(desc.digest)


def copy_image(
    src: Source,
    dst: Destination,
    src_repo: str,
    src_ref: str,
    dst_repo: str,
    dst_tag: str | None,
    workers: int = 3,
    report: CopyReport | None = None,
) -> RawManifest:
    report = report if report is not None else CopyReport()
    top = src.get_manifest(src_repo, src_ref)
    parsed = top.parse()
    children: list[RawManifest] = []
    if isinstance(parsed, ImageIndex):
        children = [src.get_manifest(src_repo, d.digest) for d in parsed.manifests]
    blobs: dict[str, Descriptor] = {}
    for manifest in children or [top]:
        image = manifest.parse()
        assert isinstance(image, ImageManifest)
        for desc in image.blobs:
            blobs.setdefault(desc.digest, desc)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_copy_blob, src, dst, src_repo, dst_repo, d, report) for d in blobs.values()
        ]
        for f in futures:
            f.result()
    for child in children:
        if not dst.has_manifest(dst_repo, child.digest, child.digest):
            dst.put_manifest(dst_repo, child.digest, child)
    reference = dst_tag or top.digest
    if not dst.has_manifest(dst_repo, reference, top.digest):
        dst.put_manifest(dst_repo, reference, top)
    return top


def copy_all(
    src: Source,
    dst: Destination,
    images: list[tuple[str, str, str, str | None]],
    workers: int = 3,
) -> CopyReport:
    """Copy (src_repo, src_ref, dst_repo, dst_tag) images, then commit; abort on error."""
    report = CopyReport()
    try:
        for src_repo, src_ref, dst_repo, dst_tag in images:
            copy_image(src, dst, src_repo, src_ref, dst_repo, dst_tag, workers, report)
    except BaseException:
        dst.abort()
        raise
    dst.commit()
    return report
