"""The bundle meta file: what a bundle holds and where each byte of it lies.

One JSON document, `<name>.meta.json`, written last and atomically, so that its presence
means the bundle is complete. It is meant to be read by people too: manifests are kept
as text (their exact bytes, as a JSON string), every blob says in which data file, at
which offset and how many bytes it lies, and every data file has its size and sha256.

    {
      "format": "transship-bundle", "version": 1,
      "id": "...", "created": "2024-05-01T12:00:00Z", "tool_version": "0.1.0",
      "options": {...},                               # how it was made (maxconn, volume size...)
      "images": [{source, target, repository, tag, manifest: {...}, children: [...]}],
      "blobs": [{digest, size, media_type, encoding: "raw",
                 pieces: [{file, member, offset, length}], params: {}}],
      "data_files": [{name, size, sha256}],
      "parents": [{id, file, blobs: [{digest, size, media_type}]}],
      "codec_data": {"dedup": {pieces: [...], params: {...}}}   # only when a codec has some
    }

`encoding` names the codec that turns a blob's stored pieces back into its bytes
(see codecs.py); `params` holds whatever that codec needs beyond the pieces.
`codec_data` holds, per encoding, what a codec stored once for the whole bundle (the
dedup codec's content store); its pieces are verified like every blob's.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from transship.bundle.tarfmt import unsafe_name_reason
from transship.errors import BundleError, DigestMismatchError
from transship.oci.descriptor import Descriptor
from transship.oci.digest import digest_bytes, validate_digest
from transship.oci.manifest import RawManifest

FORMAT = "transship-bundle"
VERSION = 1
META_SUFFIX = ".meta.json"


def _check_digest(value: str) -> str:
    try:
        return validate_digest(value)
    except DigestMismatchError as e:
        raise ValueError(str(e)) from None


def _check_file_name(value: str) -> str:
    # Data files lie in the bundle folder itself: a bare file name, nothing else.
    if not value or "/" in value or "\\" in value or value in (".", ".."):
        raise ValueError(f"data file name {value!r} must be a plain file name")
    return value


DigestStr = Annotated[str, AfterValidator(_check_digest)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Piece(_Model):
    """A run of bytes inside a data file: the data of one tar member."""

    file: str
    member: str
    offset: int = Field(ge=0)  # first data byte, after the member's header
    length: int = Field(ge=0)

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        return _check_file_name(v)

    @field_validator("member")
    @classmethod
    def _member(cls, v: str) -> str:
        reason = unsafe_name_reason(v)
        if reason:
            raise ValueError(f"unsafe tar member {v!r}: {reason}")
        return v


class BlobEntry(_Model):
    digest: DigestStr
    size: int = Field(ge=0)
    media_type: str = ""
    encoding: str = "raw"
    pieces: list[Piece]
    params: dict[str, Any] = Field(default_factory=dict)  # encoding-specific

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


class CodecData(_Model):
    """What a codec stored for the whole bundle rather than per blob."""

    pieces: list[Piece] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)


class ManifestEntry(_Model):
    """A manifest or index with its exact bytes: as text when they are UTF-8 (always, in
    practice), else base64."""

    digest: DigestStr
    media_type: str
    size: int = Field(ge=0)
    text: str | None = None
    base64: str | None = None
    platform: str | None = None  # of a child of an index

    @model_validator(mode="after")
    def _one_body(self) -> ManifestEntry:
        if (self.text is None) == (self.base64 is None):
            raise ValueError("a manifest needs exactly one of text or base64")
        return self

    @classmethod
    def of(cls, manifest: RawManifest, platform: str | None = None) -> ManifestEntry:
        try:
            text = manifest.data.decode("utf-8")
            if text.encode("utf-8") != manifest.data:
                raise UnicodeError
            body: dict[str, str] = {"text": text}
        except UnicodeError:
            body = {"base64": base64.b64encode(manifest.data).decode()}
        return cls(
            digest=manifest.digest,
            media_type=manifest.media_type,
            size=len(manifest.data),
            platform=platform,
            **body,
        )

    @property
    def data(self) -> bytes:
        if self.text is not None:
            return self.text.encode("utf-8")
        return base64.b64decode(self.base64 or "")

    def raw(self) -> RawManifest:
        data = self.data
        actual = digest_bytes(data, self.digest.split(":", 1)[0])
        if actual != self.digest or len(data) != self.size:
            raise BundleError(
                f"manifest {self.digest} in the meta file does not match its digest "
                f"(hashes to {actual}, {len(data)} bytes)"
            )
        return RawManifest(data, self.media_type, self.digest)


class ImageEntry(_Model):
    source: str  # where the image came from, as the user named it
    target: str  # repository:tag (or repository@digest) it is loaded as
    repository: str
    tag: str | None = None
    manifest: ManifestEntry
    children: list[ManifestEntry] = Field(default_factory=list)

    def manifests(self) -> list[ManifestEntry]:
        return [self.manifest, *self.children]


class DataFileEntry(_Model):
    name: str
    size: int = Field(ge=0)
    sha256: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_file_name(v)

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return v


class ParentBlob(_Model):
    digest: DigestStr
    size: int = Field(ge=0)
    media_type: str = ""
    # Where the parent put it: a registry keeps blobs per repository, so a load may have
    # to mount it from one of these into the repository that needs it.
    repositories: list[str] = Field(default_factory=list)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


class ParentEntry(_Model):
    """A bundle this one depends on, and the blobs it left to it."""

    id: str
    file: str  # the parent's meta file name, to tell the user what to load first
    blobs: list[ParentBlob] = Field(default_factory=list)


class BundleMeta(_Model):
    format: Literal["transship-bundle"] = FORMAT
    version: int
    id: str
    created: str
    tool_version: str
    options: dict[str, Any] = Field(default_factory=dict)
    images: list[ImageEntry] = Field(default_factory=list)
    blobs: list[BlobEntry] = Field(default_factory=list)
    data_files: list[DataFileEntry] = Field(default_factory=list)
    parents: list[ParentEntry] = Field(default_factory=list)
    codec_data: dict[str, CodecData] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> BundleMeta:
        files = {f.name for f in self.data_files}
        for encoding, data in self.codec_data.items():
            for piece in data.pieces:
                if piece.file not in files:
                    raise ValueError(
                        f"{encoding} data lies in {piece.file!r}, which is not a listed data file"
                    )
        seen: set[str] = set()
        for blob in self.blobs:
            if blob.digest in seen:
                raise ValueError(f"blob {blob.digest} is listed twice")
            seen.add(blob.digest)
            for piece in blob.pieces:
                if piece.file not in files:
                    raise ValueError(
                        f"blob {blob.digest} lies in {piece.file!r}, which is not a listed data file"
                    )
        return self

    def blob_index(self) -> dict[str, BlobEntry]:
        return {b.digest: b for b in self.blobs}

    def parent_of_blob(self) -> dict[str, ParentEntry]:
        return {b.digest: p for p in self.parents for b in p.blobs}

    def all_pieces(self) -> list[Piece]:
        """Every piece the meta points at: the blobs' and the codecs' own."""
        pieces = [p for blob in self.blobs for p in blob.pieces]
        pieces += [p for data in self.codec_data.values() for p in data.pieces]
        return pieces

    def to_json(self) -> str:
        doc = self.model_dump(mode="json", exclude_none=True)
        if not doc["codec_data"]:
            del doc["codec_data"]  # raw bundles read the same as before it existed
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe_validation_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        problems.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def parse_meta(text: str | bytes, name: str) -> BundleMeta:
    """Parse and validate a meta document; errors name the file and what is wrong."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise BundleError(f"{name}: not valid JSON ({e}); the meta file is damaged") from None
    if not isinstance(doc, dict):
        raise BundleError(f"{name}: not a transship bundle meta (expected a JSON object)")
    if doc.get("format") != FORMAT:
        raise BundleError(
            f"{name}: not a transship bundle meta (format is {doc.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    version = doc.get("version")
    if not isinstance(version, int):
        raise BundleError(f"{name}: bundle meta has no valid version number")
    if version > VERSION:
        raise BundleError(
            f"{name}: bundle format version {version} is newer than this transship "
            f"understands ({VERSION}); upgrade transship"
        )
    try:
        return BundleMeta.model_validate(doc)
    except ValidationError as e:
        raise BundleError(f"{name}: invalid bundle meta: {_describe_validation_error(e)}") from None


def load_meta(path: str | Path) -> BundleMeta:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: bundle meta file not found") from None
    except OSError as e:
        raise BundleError(f"{path}: cannot read bundle meta ({e.strerror})") from None
    return parse_meta(data, path.name)


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, fsync, rename, fsync the folder:
    the file is either absent or complete, even after a crash."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_meta(path: Path, meta: BundleMeta) -> None:
    try:
        write_atomically(path, meta.to_json().encode("utf-8"))
    except OSError as e:
        raise BundleError(f"{path}: cannot write bundle meta ({e.strerror or e})") from None
