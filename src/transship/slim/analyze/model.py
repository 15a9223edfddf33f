"""The result of `transship analyze`: plain data, JSON in and out (pydantic).

Sizes are bytes. "content" bytes are the sizes of regular files as tar records them
(exact); "compressed" bytes are layer blob sizes as the registry stores them (exact per
layer; anything split below a layer is an estimate and says so in its name).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

REPORT_VERSION = 1

WasteReason = Literal["overwritten", "deleted", "hidden_by_opaque", "replaced_by_dir"]


class LayerInfo(BaseModel):
    index: int
    digest: str
    diff_id: str | None = None
    media_type: str = ""
    compression: str = ""
    compressed_size: int
    uncompressed_size: int  # bytes of the tar stream
    content_bytes: int  # bytes of regular files in it
    file_count: int
    entry_count: int
    created_by: str | None = None  # the Dockerfile step (history) that made it
    created: str | None = None
    comment: str | None = None
    wasted_bytes: int = 0  # bytes of this layer that never reach the final filesystem
    shared_with: list[str] = Field(default_factory=list)  # other given images using it


class WastedFile(BaseModel):
    path: str
    size: int
    added_by: int  # layer index
    removed_by: int  # layer index
    reason: WasteReason


class WasteSummary(BaseModel):
    shipped_bytes: int  # content bytes summed over the image's layers
    final_bytes: int  # content bytes in the final filesystem
    wasted_bytes: int
    efficiency: float  # final_bytes / shipped_bytes (1.0 for an empty image)
    wasted_file_count: int
    files: list[WastedFile] = Field(default_factory=list)  # biggest first, all of them


class SizedPath(BaseModel):
    path: str
    size: int
    file_count: int = 1
    layer: int | None = None  # for files: the layer the final version comes from


class DuplicateCopy(BaseModel):
    path: str
    layer: str  # layer digest
    layer_index: int | None = None  # within one image
    images: list[str] = Field(default_factory=list)


class DuplicateGroup(BaseModel):
    sha256: str
    size: int
    copies: list[DuplicateCopy]
    redundant_bytes: int  # (copies - 1) * size


class DuplicateSummary(BaseModel):
    group_count: int
    redundant_bytes: int
    groups: list[DuplicateGroup] = Field(default_factory=list)  # most redundant first


class ImageSource(BaseModel):
    """Where an image was read from, so that `offload build` can read it again."""

    spec: str  # transport spec: docker://host/repo:tag, oci:DIR:ref, bundle:META.json, ...
    repository: str
    reference: str


class ImageReport(BaseModel):
    name: str
    source: ImageSource
    manifest_digest: str
    config_digest: str
    platform: str | None = None
    compressed_size: int
    uncompressed_size: int
    file_count: int  # regular files in the final filesystem
    layers: list[LayerInfo]
    waste: WasteSummary
    biggest_files: list[SizedPath]
    biggest_dirs: list[SizedPath]
    duplicates: DuplicateSummary


class SharedLayer(BaseModel):
    digest: str
    diff_id: str | None = None
    compressed_size: int
    uncompressed_size: int
    created_by: str | None = None
    images: list[str]


class FleetSummary(BaseModel):
    image_count: int
    compressed_total: int  # summed over images, as if each were shipped alone
    compressed_unique: int  # each distinct layer once
    uncompressed_total: int
    uncompressed_unique: int
    shared_layers: list[SharedLayer]  # layers used by two or more of the images
    duplicates: DuplicateSummary  # content stored more than once across distinct layers


class OffloadFile(BaseModel):
    path: str
    size: int
    sha256: str
    mode: int
    images: list[str]  # images carrying this exact file in a layer of their own
    source_image: str  # where `offload build` can read it from
    source_layer: str  # layer digest in source_image


class OffloadDirectory(BaseModel):
    path: str
    mode: int


class ReleaseMath(BaseModel):
    """Per release: the shared base once plus every app's own layers; the offload layer,
    like the base, is shipped once and reused by later releases."""

    apps: int
    releases: int
    base_bytes: int  # layers shared by two or more images, once
    app_bytes: int  # every image's own layers, summed
    offload_bytes: int
    app_bytes_after: int
    per_release_before: int
    per_release_after: int
    saved_per_release: int
    total_before: int  # for `releases` releases
    total_after: int
    saved_total: int


class ImageOffload(BaseModel):
    image: str
    saved_bytes: int  # content bytes its own layers would no longer carry
    saved_files: int
    foreign_files: int  # offload files this image does not have today (would appear)
    foreign_bytes: int


class OffloadRecommendation(BaseModel):
    min_images: int
    images: list[str]
    sources: dict[str, ImageSource]  # image name -> where to read its layers
    file_count: int
    layer_bytes: int  # content bytes of the offload layer
    files: list[OffloadFile]  # sorted by path
    directories: list[OffloadDirectory]
    per_image: list[ImageOffload]
    content: ReleaseMath  # exact, in content bytes
    compressed_estimate: ReleaseMath  # in compressed bytes; split layers estimated by ratio


class ChangedFile(BaseModel):
    path: str
    size: int
    status: Literal["added", "changed", "removed"]
    layer: int | None = None  # layer index in the new image (old for removed)


class HotColdLayer(BaseModel):
    index: int
    digest: str
    status: Literal["same", "changed"]
    compressed_size: int
    created_by: str | None = None
    hot_bytes: int  # content that differs from the old version
    cold_bytes: int  # unchanged content carried again


class HotColdReport(BaseModel):
    old: str
    new: str
    layers: list[HotColdLayer]
    update_compressed_bytes: int  # what pulling the new version over the old one costs
    update_content_bytes: int
    hot_bytes: int
    cold_bytes: int
    removed_bytes: int
    cold_bytes_in_changed_layers: int  # re-shipped although unchanged
    hot_file_count: int
    changed_files: list[ChangedFile]  # biggest first


class ImageError(BaseModel):
    image: str
    message: str


class AnalysisReport(BaseModel):
    version: int = REPORT_VERSION
    platform: str
    images: list[ImageReport] = Field(default_factory=list)
    fleet: FleetSummary | None = None
    offload: OffloadRecommendation | None = None
    compare: HotColdReport | None = None
    errors: list[ImageError] = Field(default_factory=list)
