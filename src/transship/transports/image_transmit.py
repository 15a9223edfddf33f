"""image-transmit tar bundles, read (`load`) and written (`save --format image-transmit`).

The format: `<name>_meta.yaml` with

    datafiles: {<data file name>: <size>, ...}
    compressor: tar
    blobs: {<hex digest>: [<image URL>, ...], ...}
    manifests: {<image URL>: <manifest JSON as a string>, ...}

where an image URL is `http://host/ns/img:tag`, and plain tar data files whose members
are `<hex>.tar.gz` (layers) and `<hex>.json` (configs). The format has no checksums of its
data files: sizes are checked before anything is read, member names are checked (no `../`,
absolute paths or links), and every blob's digest is verified as it streams. It has no
indexes: an image-transmit bundle holds one manifest per image.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import yaml

from transship.bundle.codecs import BlobCodec, EncodedBlob, PieceSink, RawCodec
from transship.bundle.meta import write_atomically
from transship.bundle.reader import BundleVerificationError, ChunkStream, DataFileProblem
from transship.bundle.tarfmt import TarMember, scan_archive
from transship.bundle.writer import BlobStoreWriter, DataFileNaming
from transship.errors import BundleError, DigestMismatchError, NotFoundError, UnsupportedError
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor
from transship.oci.digest import DigestVerifier, digest_bytes, is_digest
from transship.oci.manifest import ImageManifest, RawManifest, detect_media_type
from transship.reference import ImageReference
from transship.transports.archive import FileSlice
from transship.transports.base import Destination, ImageLocation, ProgressCallback, Source

META_SUFFIX = "_meta.yaml"
CHUNK = 1 << 20
_MEMBER_RE = re.compile(r"^(?:.*/)?([0-9a-f]{64})\.(tar\.gz|json)$")
_CONFIG_TYPES = {mt.DOCKER_CONFIG, mt.OCI_CONFIG}


def split_url(url: str) -> tuple[str, str, str]:
    """`http://host/ns/img:tag` → (host, `ns/img`, `tag`)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    path = parts.path.strip("/")
    repository, sep, tag = path.rpartition(":")
    if not sep or "/" in tag or not repository:
        repository, tag = path, "latest"
    return parts.netloc, repository, tag


def _load_yaml_meta(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: bundle meta file not found") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise BundleError(f"{path.name}: not valid YAML{at}; the meta file is damaged") from None
    except (OSError, UnicodeError) as e:
        raise BundleError(f"{path.name}: cannot read the meta file ({e})") from None
    if not isinstance(doc, dict):
        raise BundleError(f"{path.name}: not an image-transmit meta file (expected a mapping)")
    problems = []
    datafiles = doc.get("datafiles")
    if not isinstance(datafiles, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in datafiles.items()
    ):
        problems.append("`datafiles` must map file names to sizes")
    else:
        for name in datafiles:
            if not name or "/" in name or "\\" in name or name in (".", ".."):
                problems.append(f"data file name {name!r} must be a plain file name")
    if not isinstance(doc.get("manifests"), dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc["manifests"].items()
    ):
        problems.append("`manifests` must map image URLs to manifest text")
    if not isinstance(doc.get("blobs", {}), dict):
        problems.append("`blobs` must map digests to image URLs")
    if problems:
        raise BundleError(f"{path.name}: invalid image-transmit meta: {'; '.join(problems)}")
    compressor = doc.get("compressor", "tar")
    if compressor != "tar":
        raise UnsupportedError(
            f"{path.name}: image-transmit bundles compressed with {compressor!r} are not "
            "supported; only `compressor: tar`"
        )
    return doc


class ImageTransmitSource(Source):
    name = "image-transmit"

    def __init__(self, meta_path: str | Path, verify: bool = True):
        self.meta_path = Path(meta_path)
        self.directory = self.meta_path.parent
        self.doc = _load_yaml_meta(self.meta_path)
        self._images: dict[tuple[str, str], RawManifest] = {}
        self._by_digest: dict[str, RawManifest] = {}
        self._locations: list[ImageLocation] = []
        self.hosts: dict[tuple[str, str], str] = {}
        for url, text in self.doc["manifests"].items():
            host, repository, tag = split_url(url)
            data = text.encode("utf-8")
            manifest = RawManifest(data, detect_media_type(data))
            self._images[(repository, tag)] = manifest
            self._by_digest[manifest.digest] = manifest
            self._locations.append(ImageLocation(repository, tag))
            self.hosts[(repository, tag)] = host
        self._members: dict[str, tuple[str, TarMember]] = {}
        if verify:
            self.verify()

    def verify(self) -> None:
        """Every data file present with its size and safe members; every blob the images
        need found in them. All problems reported at once."""
        problems: list[DataFileProblem] = []
        members: dict[str, tuple[str, TarMember]] = {}
        for name, size in self.doc["datafiles"].items():
            path = self.directory / name
            try:
                actual = path.stat().st_size
            except FileNotFoundError:
                problems.append(DataFileProblem(name, "missing"))
                continue
            if actual != size:
                kind = "truncated" if actual < size else "wrong size"
                problems.append(DataFileProblem(name, kind, f"{actual} bytes, expected {size}"))
                continue
            try:
                for member in scan_archive(path):
                    m = _MEMBER_RE.match(member.name)
                    if m and member.kind == "file":
                        members.setdefault(f"sha256:{m.group(1)}", (name, member))
            except BundleError as e:
                problems.append(DataFileProblem(name, "bad member", str(e).split(": ", 1)[-1]))
        if problems:
            raise BundleVerificationError(self.meta_path.name, problems)
        missing = []
        for (repository, tag), manifest in self._images.items():
            parsed = manifest.parse()
            if not isinstance(parsed, ImageManifest):
                raise UnsupportedError(f"{self.meta_path.name}: {repository}:{tag} is not an image")
            for desc in parsed.blobs:
                if desc.digest not in members:
                    missing.append(f"{desc.digest} ({repository}:{tag})")
        if missing:
            raise BundleError(
                f"{self.meta_path.name}: {len(missing)} blob(s) are in no data file: "
                + ", ".join(missing[:5])
            )
        self._members = members

    def locations(self) -> list[ImageLocation]:
        return list(self._locations)

    def get_manifest(self, repository: str, reference: str) -> RawManifest:
        manifest = (
            self._by_digest.get(reference)
            if is_digest(reference)
            else self._images.get((repository, reference))
        )
        if manifest is None:
            raise NotFoundError(f"{self.meta_path.name} has no image {repository}:{reference}")
        return manifest

    def _verified(
        self, path: Path, member: TarMember, desc: Descriptor, offset: int
    ) -> Iterator[bytes]:
        verifier = DigestVerifier(desc.digest, member.size)
        with FileSlice(path, member.offset, member.size) as f:
            position = 0
            while chunk := f.read(CHUNK):
                verifier.update(chunk)
                if position + len(chunk) > offset:
                    yield chunk[max(0, offset - position) :]
                position += len(chunk)
        try:
            verifier.verify(f"blob in {path.name}")
        except DigestMismatchError as e:
            raise DigestMismatchError(f"{e}; the bundle is damaged") from None

    @contextmanager
    def _open(self, desc: Descriptor, offset: int) -> Iterator[BinaryIO]:
        found = self._members.get(desc.digest)
        if found is None:
            raise NotFoundError(f"{self.meta_path.name}: no blob {desc.digest}")
        name, member = found
        stream = ChunkStream(self._verified(self.directory / name, member, desc, offset))
        try:
            yield stream  # type: ignore[misc]
        finally:
            stream.close()

    def open_blob(
        self, repository: str, desc: Descriptor, offset: int = 0
    ) -> AbstractContextManager[BinaryIO]:
        return self._open(desc, offset)

    def list_tags(self, repository: str) -> list[str]:
        return [tag for repo, tag in self._images if repo == repository]

    def prepare_load(
        self, destination: Destination, repository_map: object = None, blobs: object = None
    ) -> Destination:
        """As BundleSource.prepare_load; image-transmit bundles have no parents nor codecs."""
        return destination


class _ImageTransmitCodec(BlobCodec):
    """Blobs as they are, named the image-transmit way: `<hex>.json` for configs,
    `<hex>.tar.gz` for the rest."""

    encoding = "raw"

    def encode(self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink) -> EncodedBlob:
        hex_part = desc.digest.split(":", 1)[1]
        suffix = "json" if desc.media_type in _CONFIG_TYPES else "tar.gz"
        return EncodedBlob(sink.write_piece(f"{hex_part}.{suffix}", desc.size, chunks))

    def decode(self, entry, source, offset=0):  # type: ignore[no-untyped-def]
        return RawCodec().decode(entry, source, offset)


class ImageTransmitDestination(Destination):
    """Writes `<name>_meta.yaml` and data files `<name>_000.tar`... beside it."""

    name = "image-transmit"

    def __init__(
        self,
        meta_path: str | Path,
        workers: int = 4,
        default_host: str = "localhost",
        overwrite: bool = False,
    ):
        self.meta_path = Path(meta_path)
        if not self.meta_path.name.endswith(META_SUFFIX):
            raise BundleError(f"an image-transmit meta file name ends in {META_SUFFIX}")
        if self.meta_path.exists():
            if not overwrite:
                raise BundleError(
                    f"{self.meta_path} already exists: choose another name, or allow overwriting"
                )
            self.meta_path.unlink()
        stem = self.meta_path.name[: -len(META_SUFFIX)]
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        self.store = BlobStoreWriter(
            self.meta_path.parent, DataFileNaming(stem, separator="_"), workers=workers
        )
        # Data files and journals of an interrupted save are taken up again.
        self.store.resume()
        self.default_host = default_host
        self._codec = _ImageTransmitCodec()
        self._lock = threading.Lock()
        self._images: dict[tuple[str, str], RawManifest] = {}
        self._hosts: dict[tuple[str, str], str] = {}

    def record_source(self, repository: str, tag: str | None, source: str) -> None:
        """The source registry becomes the host part of the image URL."""
        try:
            registry = ImageReference.parse(source).registry
        except Exception:
            registry = ""
        if registry and tag:
            self._hosts[(repository, tag)] = registry

    def has_blob(self, repository: str, desc: Descriptor) -> bool:
        return self.store.get(desc.digest) is not None

    def put_blob(
        self,
        repository: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: ProgressCallback | Callable[[int], None] | None = None,
    ) -> None:
        self.store.put(desc, chunks, self._codec, progress)

    def has_manifest(self, repository: str, reference: str, digest: str) -> bool:
        with self._lock:
            found = self._images.get((repository, reference))
        return found is not None and found.digest == digest

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> None:
        if mt.is_index(manifest.media_type):
            raise UnsupportedError(
                f"{repository}:{reference} is a multi-platform index; image-transmit bundles "
                "hold one manifest per image: choose a platform"
            )
        if is_digest(reference):
            return  # image-transmit names images by tag only
        with self._lock:
            self._images[(repository, reference)] = manifest

    def commit(self) -> None:
        files = self.store.finish()
        urls: dict[tuple[str, str], str] = {
            key: f"http://{self._hosts.get(key, self.default_host)}/{key[0]}:{key[1]}"
            for key in self._images
        }
        blobs: dict[str, list[str]] = {}
        for key, manifest in self._images.items():
            parsed = manifest.parse()
            assert isinstance(parsed, ImageManifest)
            for desc in parsed.blobs:
                if self.store.get(desc.digest) is None:
                    raise BundleError(
                        f"image {key[0]}:{key[1]} needs blob {desc.digest}, not saved"
                    )
                blobs.setdefault(desc.digest.split(":", 1)[1], []).append(urls[key])
        manifests = {}
        for key, manifest in self._images.items():
            text = manifest.data.decode("utf-8")
            manifests[urls[key]] = text
        doc = {
            "datafiles": {f.name: f.size for f in files},
            "compressor": "tar",
            "blobs": blobs,
            "manifests": manifests,
        }
        data = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=1 << 30)
        back = yaml.safe_load(data)["manifests"]
        for url, text in manifests.items():
            if digest_bytes(back[url].encode()) != digest_bytes(text.encode()):
                raise BundleError(f"manifest of {url} does not survive YAML unchanged")
        write_atomically(self.meta_path, data.encode("utf-8"))
        self.store.remove_journals()

    def abort(self) -> None:
        self.store.close()
