"""Build the recommended offload layer as a real image and push it.

The files are read from the layers the recommendation names (streamed, each layer once),
checked against their sha256, spooled to a temporary directory, then written as one
deterministic layer: entries sorted by path, mtime 0, uid/gid 0, gzip without a name or
timestamp. The same recommendation therefore always gives the same layer digest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from transship.errors import ConfigError, NotFoundError, TransshipError
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor, Platform
from transship.oci.manifest import RawManifest
from transship.slim.analyze.image_reader import DEFAULT_PLATFORM, ImageInput, resolve_image
from transship.slim.analyze.layer_scan import FILE, scan_layer
from transship.slim.analyze.model import (
    AnalysisReport,
    ImageSource,
    OffloadDirectory,
    OffloadFile,
    OffloadRecommendation,
)
from transship.transports.base import CHUNK, Destination, Source

FIXED_CREATED = "1970-01-01T00:00:00Z"
GZIP_LEVEL = 6
SourceOpener = Callable[[ImageSource], Source]


class OffloadBuildError(TransshipError):
    """The recommendation cannot be turned into an image (files gone, bad file)."""


@dataclass(frozen=True)
class OffloadImage:
    layer: Descriptor
    diff_id: str
    config: Descriptor
    manifest: RawManifest
    file_count: int
    content_bytes: int


def load_recommendation(path: Path) -> OffloadRecommendation:
    """An offload recommendation from an `analyze --json` report or from the recommendation
    object alone."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except ValueError as e:
        raise ConfigError(f"{path}: not JSON: {e}") from None
    try:
        if isinstance(doc, dict) and "offload" in doc:
            report = AnalysisReport.model_validate(doc)
            if report.offload is None:
                raise ConfigError(
                    f"{path}: the report has no offload recommendation (it needs two or more images)"
                )
            return report.offload
        return OffloadRecommendation.model_validate(doc)
    except ValueError as e:
        first = str(e).splitlines()
        raise ConfigError(
            f"{path}: not an analyze report or offload recommendation ({first[0] if first else e})"
        ) from None


def relocate(files: list[OffloadFile], shared_dir: str | None) -> dict[str, str]:
    """Path in the offload layer for each file: where it is in the images, or, with
    `shared_dir`, below that directory, relative to the files' deepest common directory
    (the layout `offload link` links into)."""
    if not shared_dir:
        return {f.path: f.path for f in files}
    target = shared_dir.strip("/")
    parents = [PurePosixPath(f.path).parent.parts for f in files]
    common: tuple[str, ...] = parents[0] if parents else ()
    for parts in parents[1:]:
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    out = {}
    for f in files:
        rel = PurePosixPath(*PurePosixPath(f.path).parts[len(common) :])
        out[f.path] = f"{target}/{rel}" if target else str(rel)
    return out


def build_offload_image(
    recommendation: OffloadRecommendation,
    open_source: SourceOpener,
    *,
    platform: Platform = DEFAULT_PLATFORM,
    shared_dir: str | None = None,
    workdir: Path | None = None,
) -> tuple[OffloadImage, Path]:
    """Write the offload layer and its config/manifest; returns them and the layer file
    (inside a temporary directory the caller removes with `cleanup`)."""
    if not recommendation.files:
        raise OffloadBuildError("the recommendation has no files to offload")
    spool = Path(tempfile.mkdtemp(prefix="transship-offload-", dir=workdir))
    try:
        _collect_files(recommendation, open_source, platform, spool)
        paths = relocate(recommendation.files, shared_dir)
        directories = _directories(recommendation, paths, shared_dir)
        layer_path = spool / "layer.tar.gz"
        layer, diff_id = _write_layer(recommendation.files, paths, directories, spool, layer_path)
    except BaseException:
        cleanup(spool)
        raise
    config_bytes = _config(recommendation, diff_id, platform)
    config = Descriptor(
        mt.OCI_CONFIG, "sha256:" + hashlib.sha256(config_bytes).hexdigest(), len(config_bytes)
    )
    manifest_bytes = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json()],
        },
        indent=2,
    ).encode()
    (spool / "config.json").write_bytes(config_bytes)
    image = OffloadImage(
        layer=layer,
        diff_id=diff_id,
        config=config,
        manifest=RawManifest(manifest_bytes, mt.OCI_MANIFEST),
        file_count=len(recommendation.files),
        content_bytes=sum(f.size for f in recommendation.files),
    )
    return image, spool


def push_offload_image(
    image: OffloadImage, spool: Path, destination: Destination, repository: str, tag: str
) -> None:
    """Blobs first, then the manifest: a registry never sees a manifest without its blobs."""
    for desc, path in (
        (image.layer, spool / "layer.tar.gz"),
        (image.config, spool / "config.json"),
    ):
        if destination.has_blob(repository, desc):
            continue
        destination.put_blob(repository, desc, iter_file(path))
    destination.put_manifest(repository, tag, image.manifest)
    destination.commit()


def cleanup(spool: Path) -> None:
    for child in spool.iterdir():
        child.unlink()
    spool.rmdir()


# -- reading the files ---------------------------------------------------------------------------
def _collect_files(
    rec: OffloadRecommendation, open_source: SourceOpener, platform: Platform, spool: Path
) -> None:
    by_layer: dict[tuple[str, str], dict[str, OffloadFile]] = {}
    for f in rec.files:
        by_layer.setdefault((f.source_image, f.source_layer), {})[f.path] = f
    missing: list[str] = []
    for (image_name, layer_digest), wanted in by_layer.items():
        where = rec.sources.get(image_name)
        if where is None:
            raise OffloadBuildError(
                f"the recommendation does not say where {image_name} was read from"
            )
        source = open_source(where)
        resolved = resolve_image(
            ImageInput(image_name, source, where.repository, where.reference, where.spec), platform
        )
        desc = next((d for d in resolved.layers if d.digest == layer_digest), None)
        if desc is None:
            raise NotFoundError(
                f"{image_name} no longer has layer {layer_digest}; run analyze again"
            )
        found = _extract(source, where.repository, desc, wanted, spool)
        missing += [path for path in wanted if path not in found]
    if missing:
        raise OffloadBuildError(
            f"{len(missing)} files of the recommendation were not found in their source layers "
            f"(first: {missing[0]}); run analyze again"
        )


def _extract(
    source: Source, repository: str, desc: Descriptor, wanted: dict[str, OffloadFile], spool: Path
) -> set[str]:
    """Stream one layer, spooling the wanted files; the ones that arrived intact."""
    open_files: list[BinaryIO] = []

    def sink(path: str) -> BinaryIO | None:
        f = wanted.get(path)
        if f is None:
            return None
        handle = _part_file(spool, path).open("wb")
        open_files.append(handle)
        return handle

    try:
        with source.open_blob(repository, desc) as stream:
            scan = scan_layer(stream, desc.digest, desc.media_type, desc.size, copy_files=sink)
    finally:
        for handle in open_files:
            handle.close()
    found = set()
    for entry in scan.entries:
        f = wanted.get(entry.path)
        if f is None or entry.kind != FILE or entry.sha256 is None:
            continue
        part = _part_file(spool, entry.path)
        if f"sha256:{entry.sha256.hex()}" == f.sha256 and part.exists():
            os.replace(part, _blob_file(spool, f.sha256))
            found.add(entry.path)
    for leftover in spool.glob("*.part"):
        leftover.unlink()
    return found


def _part_file(spool: Path, path: str) -> Path:
    return spool / f"{hashlib.sha256(path.encode()).hexdigest()}.part"


def _blob_file(spool: Path, digest: str) -> Path:
    return spool / f"{digest.split(':', 1)[1]}.blob"


# -- writing the layer ---------------------------------------------------------------------------
class _HashingWriter:
    def __init__(self, target: BinaryIO):
        self.target = target
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.count += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def _directories(
    rec: OffloadRecommendation, paths: dict[str, str], shared_dir: str | None
) -> dict[str, int]:
    modes = {d.path: d.mode for d in rec.directories} if not shared_dir else {}
    for target in paths.values():
        parts = target.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            modes.setdefault("/".join(parts[:i]), 0o755)
    return modes


def _write_layer(
    files: list[OffloadFile],
    paths: dict[str, str],
    directories: dict[str, int],
    spool: Path,
    layer_path: Path,
) -> tuple[Descriptor, str]:
    entries: list[tuple[str, OffloadFile | OffloadDirectory]] = [
        (p, OffloadDirectory(path=p, mode=m)) for p, m in directories.items()
    ]
    entries += [(paths[f.path], f) for f in files]
    entries.sort(key=lambda e: e[0])
    with layer_path.open("wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=compressed, compresslevel=GZIP_LEVEL, mtime=0
        ) as gz:  # type: ignore[arg-type]
            plain = _HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for path, item in entries:
                    info = _member(path, item)
                    if isinstance(item, OffloadDirectory):
                        tar.addfile(info)
                        continue
                    with _blob_file(spool, item.sha256).open("rb") as content:
                        tar.addfile(info, content)
    layer = Descriptor(mt.OCI_LAYER_GZIP, "sha256:" + compressed.hash.hexdigest(), compressed.count)
    return layer, "sha256:" + plain.hash.hexdigest()


def _member(path: str, item: OffloadFile | OffloadDirectory) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = item.mode & 0o7777
    if isinstance(item, OffloadDirectory):
        info.type = tarfile.DIRTYPE
    else:
        info.size = item.size
    return info


def _config(rec: OffloadRecommendation, diff_id: str, platform: Platform) -> bytes:
    doc = {
        "architecture": platform.architecture,
        "os": platform.os,
        **({"variant": platform.variant} if platform.variant else {}),
        "created": FIXED_CREATED,
        "config": {
            "Labels": {
                "io.transship.offload.files": str(len(rec.files)),
                "io.transship.offload.min-images": str(rec.min_images),
            }
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {
                "created": FIXED_CREATED,
                "created_by": f"transship offload build: {len(rec.files)} files shared by at least {rec.min_images} of {len(rec.images)} images",
            }
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def iter_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk
