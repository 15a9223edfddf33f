"""Offload recommendation across a set of images, and the hot/cold split of one image
between two versions.

Offload: a file (exact path and content) that at least K images carry in layers of their
own (layers no other given image uses) can move into one shared base layer under all of
them: the registry then stores and ships it once instead of once per image. Only files
that reach each image's final filesystem count, since the base layer adds them to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from transship.slim.analyze.analyzed import AnalyzedImage
from transship.slim.analyze.layer_scan import DIR
from transship.slim.analyze.model import (
    ChangedFile,
    HotColdLayer,
    HotColdReport,
    ImageOffload,
    ImageSource,
    OffloadDirectory,
    OffloadFile,
    OffloadRecommendation,
    ReleaseMath,
)

DEFAULT_DIR_MODE = 0o755


@dataclass
class _Candidate:
    path: str
    sha256: bytes
    size: int
    mode: int
    source_image: str
    source_layer: str
    images: list[str] = field(default_factory=list)
    compressed_estimate: float = 0.0  # summed over images carrying it

    @property
    def saved(self) -> int:
        return self.size * len(self.images)


def layer_users(images: Sequence[AnalyzedImage]) -> dict[str, list[str]]:
    """Layer key -> the distinct images using that layer, in the order given."""
    users: dict[str, list[str]] = {}
    for image in images:
        for key in image.keys:
            names = users.setdefault(key, [])
            if image.name not in names:
                names.append(image.name)
    return users


def recommend_offload(
    images: Sequence[AnalyzedImage], min_images: int, releases: int
) -> OffloadRecommendation:
    users = layer_users(images)
    chosen = _choose(_candidates(images, users), images, users, min_images)
    files = sorted(chosen, key=lambda c: c.path)
    return OffloadRecommendation(
        min_images=min_images,
        images=[image.name for image in images],
        sources={
            image.name: ImageSource(
                spec=image.resolved.spec,
                repository=image.resolved.repository,
                reference=image.resolved.reference,
            )
            for image in images
        },
        file_count=len(files),
        layer_bytes=sum(c.size for c in files),
        files=[
            OffloadFile(
                path=c.path,
                size=c.size,
                sha256=f"sha256:{c.sha256.hex()}",
                mode=c.mode,
                images=c.images,
                source_image=c.source_image,
                source_layer=c.source_layer,
            )
            for c in files
        ],
        directories=_directories(files, images),
        per_image=_per_image(images, files),
        content=_release_math(images, users, files, releases, compressed=False),
        compressed_estimate=_release_math(images, users, files, releases, compressed=True),
    )


def _candidates(
    images: Sequence[AnalyzedImage], users: dict[str, list[str]]
) -> dict[tuple[str, bytes], _Candidate]:
    found: dict[tuple[str, bytes], _Candidate] = {}
    for image in images:
        keys = image.keys
        for path, node in image.fs.iter_files():
            if not node.size or node.sha256 is None or len(users[keys[node.layer]]) > 1:
                continue  # empty, or already in a layer shared with another image
            candidate = found.get((path, node.sha256))
            if candidate is None:
                candidate = _Candidate(
                    path,
                    node.sha256,
                    node.size,
                    node.mode,
                    image.name,
                    image.resolved.layers[node.layer].digest,
                )
                found[(path, node.sha256)] = candidate
            candidate.images.append(image.name)
            candidate.compressed_estimate += node.size * image.compression_ratio(node.layer)
    return found


def _choose(
    candidates: dict[tuple[str, bytes], _Candidate],
    images: Sequence[AnalyzedImage],
    users: dict[str, list[str]],
    min_images: int,
) -> list[_Candidate]:
    """Those carried by enough images that change no image's filesystem but by adding
    files; one content per path and no file where another needs a directory, preferring
    what saves the most."""
    eligible = [c for c in candidates.values() if len(c.images) >= min_images]
    eligible.sort(key=lambda c: (-c.saved, c.path, c.sha256))
    taken_files: set[str] = set()
    taken_dirs: set[str] = set()
    chosen = []
    for c in eligible:
        ancestors = _ancestors(c.path)
        if c.path in taken_files or c.path in taken_dirs:
            continue
        if any(a in taken_files for a in ancestors):
            continue
        if any(_would_change(image, users, c, ancestors) for image in images):
            continue
        taken_files.add(c.path)
        taken_dirs.update(ancestors)
        chosen.append(c)
    return chosen


def _would_change(
    image: AnalyzedImage, users: dict[str, list[str]], c: _Candidate, ancestors: list[str]
) -> bool:
    """Whether the offload layer, placed above the shared layers and below the image's own
    ones, would alter what the image has today (rather than only add to it)."""
    if image.name in c.images:
        return False
    keys = image.keys
    for directory in ancestors:
        node = image.fs.lookup(directory)
        if node is None:
            return False
        if node.kind != DIR:
            return True  # a file or symlink where the offload layer needs a directory
    node = image.fs.lookup(c.path)
    if node is None:
        return False
    own = len(users[keys[node.layer]]) == 1
    return not own  # a shared layer's version would be shadowed by the offload file


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _directories(
    files: Sequence[_Candidate], images: Sequence[AnalyzedImage]
) -> list[OffloadDirectory]:
    by_name = {image.name: image for image in images}
    modes: dict[str, int] = {}
    for c in files:
        source = by_name[c.source_image]
        for directory in _ancestors(c.path):
            if directory not in modes:
                node = source.fs.lookup(directory)
                modes[directory] = (
                    node.mode if node and node.kind == DIR and node.mode else DEFAULT_DIR_MODE
                )
    return [OffloadDirectory(path=p, mode=m) for p, m in sorted(modes.items())]


def _per_image(images: Sequence[AnalyzedImage], files: Sequence[_Candidate]) -> list[ImageOffload]:
    out = []
    for image in images:
        saved = [c.size for c in files if image.name in c.images]
        foreign = [c.size for c in files if image.fs.lookup(c.path) is None]
        out.append(
            ImageOffload(
                image=image.name,
                saved_bytes=sum(saved),
                saved_files=len(saved),
                foreign_files=len(foreign),
                foreign_bytes=sum(foreign),
            )
        )
    return out


def _release_math(
    images: Sequence[AnalyzedImage],
    users: dict[str, list[str]],
    files: Sequence[_Candidate],
    releases: int,
    *,
    compressed: bool,
) -> ReleaseMath:
    base = 0
    app = 0
    counted_base: set[str] = set()
    for image in images:
        counted_own: set[str] = set()
        for index, key in enumerate(image.keys):
            size = (
                image.resolved.layers[index].size
                if compressed
                else image.scans[index].content_bytes
            )
            if len(users[key]) > 1:
                if key not in counted_base:
                    counted_base.add(key)
                    base += size
            elif key not in counted_own:
                counted_own.add(key)
                app += size
    if compressed:
        saved = round(sum(c.compressed_estimate for c in files))
        offload = round(sum(c.compressed_estimate / len(c.images) for c in files))
    else:
        saved = sum(c.saved for c in files)
        offload = sum(c.size for c in files)
    app_after = app - saved
    before = base + app
    after = base + offload + app_after
    total_before = base + releases * app
    total_after = base + offload + releases * app_after
    return ReleaseMath(
        apps=len(images),
        releases=releases,
        base_bytes=base,
        app_bytes=app,
        offload_bytes=offload,
        app_bytes_after=app_after,
        per_release_before=before,
        per_release_after=after,
        saved_per_release=before - after,
        total_before=total_before,
        total_after=total_after,
        saved_total=total_before - total_after,
    )


def hot_cold(old: AnalyzedImage, new: AnalyzedImage, limit: int) -> HotColdReport:
    old_files = {path: node for path, node in old.fs.iter_files()}
    old_keys = set(old.keys)
    new_keys = new.keys
    hot_by_layer = [0] * len(new_keys)
    cold_by_layer = [0] * len(new_keys)
    changed: list[ChangedFile] = []
    seen: set[str] = set()
    for path, node in new.fs.iter_files():
        seen.add(path)
        before = old_files.get(path)
        if before is not None and before.sha256 == node.sha256:
            cold_by_layer[node.layer] += node.size
            continue
        hot_by_layer[node.layer] += node.size
        status = "added" if before is None else "changed"
        changed.append(ChangedFile(path=path, size=node.size, status=status, layer=node.layer))
    removed = [
        ChangedFile(path=p, size=n.size, status="removed", layer=n.layer)
        for p, n in old_files.items()
        if p not in seen
    ]
    layers = []
    update_compressed = update_content = cold_in_changed = 0
    counted: set[str] = set()
    for index, key in enumerate(new_keys):
        same = key in old_keys
        if not same:
            cold_in_changed += cold_by_layer[index]
            if key not in counted:
                counted.add(key)
                update_compressed += new.resolved.layers[index].size
                update_content += new.scans[index].content_bytes
        history = new.resolved.history[index]
        layers.append(
            HotColdLayer(
                index=index,
                digest=new.resolved.layers[index].digest,
                status="same" if same else "changed",
                compressed_size=new.resolved.layers[index].size,
                created_by=history.created_by if history else None,
                hot_bytes=hot_by_layer[index],
                cold_bytes=cold_by_layer[index],
            )
        )
    listed = sorted(changed + removed, key=lambda f: (-f.size, f.path))[:limit]
    return HotColdReport(
        old=old.name,
        new=new.name,
        layers=layers,
        update_compressed_bytes=update_compressed,
        update_content_bytes=update_content,
        hot_bytes=sum(hot_by_layer),
        cold_bytes=sum(cold_by_layer),
        removed_bytes=sum(f.size for f in removed),
        cold_bytes_in_changed_layers=cold_in_changed,
        hot_file_count=len(changed),
        changed_files=listed,
    )
