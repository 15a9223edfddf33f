"""`transship inspect`: what a bundle holds, what it needs, and what sharing saved."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from transship.cli.common import handle_errors
from transship.cli.main import app


def bundle_report(meta_path: Path) -> dict:
    """Figures about a bundle, from its meta file alone (data files are not read)."""
    from transship.bundle.meta import load_meta
    from transship.oci.manifest import ImageManifest

    meta = load_meta(meta_path)
    sizes = {b.digest: b.size for b in meta.blobs}
    for parent in meta.parents:
        for blob in parent.blobs:
            sizes.setdefault(blob.digest, blob.size)
    stored = {b.digest for b in meta.blobs}
    images = []
    summed = 0
    for image in meta.images:
        blobs: dict[str, int] = {}
        for entry in image.manifests():
            parsed = entry.raw().parse()
            if isinstance(parsed, ImageManifest):
                for desc in parsed.blobs:
                    blobs[desc.digest] = desc.size
        size = sum(blobs.values())
        summed += size
        images.append(
            {
                "target": image.target,
                "source": image.source,
                "digest": image.manifest.digest,
                "media_type": image.manifest.media_type,
                "platforms": [c.platform for c in image.children if c.platform],
                "blobs": len(blobs),
                "bytes": size,
                "bytes_in_this_bundle": sum(s for d, s in blobs.items() if d in stored),
            }
        )
    dedup = None
    if "dedup" in meta.codec_data:
        from transship.bundle.dedup_codec import bundle_stats

        stats = bundle_stats(meta)
        dedup = stats.to_dict() if stats else None
    data_bytes = sum(f.size for f in meta.data_files)
    blob_bytes = sum(b.size for b in meta.blobs)
    return {
        "bundle": str(meta_path),
        "id": meta.id,
        "created": meta.created,
        "tool_version": meta.tool_version,
        "options": meta.options,
        "images": images,
        "blobs": len(meta.blobs),
        "blob_bytes": blob_bytes,
        "data_files": [{"name": f.name, "size": f.size} for f in meta.data_files],
        "data_bytes": data_bytes,
        "bytes_summed_over_images": summed,
        "saved_by_sharing": max(
            0, summed - blob_bytes - sum(b.size for p in meta.parents for b in p.blobs)
        ),
        "dedup": dedup,
        "parents": [
            {
                "id": p.id,
                "file": p.file,
                "blobs": len(p.blobs),
                "bytes": sum(b.size for b in p.blobs),
            }
            for p in meta.parents
        ],
    }


@app.command()
@handle_errors
def inspect(
    bundle: Path = typer.Argument(..., help="The bundle's meta file (or its folder)."),
    json_output: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Show a bundle's images, sizes, parents and how much sharing saved."""
    from rich.table import Table

    from transship.cli.render import human_bytes
    from transship.engine.session import find_bundle_meta

    report = bundle_report(find_bundle_meta(bundle))
    if json_output:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    console = Console(highlight=False)
    console.print(
        f"bundle {report['bundle']}  (id {report['id'][:12]}, {report['created']}, transship {report['tool_version']})",
        markup=False,
        soft_wrap=True,
    )
    table = Table("image", "source", "platforms", "blobs", "size", "in this bundle")
    for image in report["images"]:
        table.add_row(
            image["target"],
            image["source"],
            ", ".join(image["platforms"]) or "-",
            str(image["blobs"]),
            human_bytes(image["bytes"]),
            human_bytes(image["bytes_in_this_bundle"]),
        )
    console.print(table)
    console.print(
        f"{len(report['images'])} images, {report['blobs']} blobs, {human_bytes(report['blob_bytes'])} of blobs "
        f"in {len(report['data_files'])} data files ({human_bytes(report['data_bytes'])}); "
        f"summed over images {human_bytes(report['bytes_summed_over_images'])}: "
        f"sharing saved {human_bytes(report['saved_by_sharing'])}",
        markup=False,
        soft_wrap=True,
    )
    if report["dedup"]:
        from transship.bundle.dedup_stats import DedupStats

        for line in DedupStats.from_dict(report["dedup"]).summary_lines(human_bytes):
            console.print(line, markup=False, soft_wrap=True)
    for parent in report["parents"]:
        console.print(
            f"needs parent bundle {parent['file']} (id {parent['id'][:12]}) loaded first: "
            f"{parent['blobs']} blobs, {human_bytes(parent['bytes'])} left to it",
            markup=False,
            soft_wrap=True,
        )
