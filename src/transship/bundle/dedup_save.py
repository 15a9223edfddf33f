"""The save side of the dedup codec: one `DedupBundleSave` per bundle being written.

Each blob the engine hands over (from any number of threads) goes one of three ways:

- a gzip layer: read once; `gzip_rebuild.analyze` decompresses it and finds how to
  recompress it bit for bit, while the plain tar goes straight into the layer splitter
  (file contents into the bundle's content collector, the rest into the layer's recipe).
  The compressed bytes are spooled to a temporary file as they come, because when the
  gzip turns out not to be reproducible (`RebuildImpossible`) the layer is stored as it
  is, and the source cannot be read twice;
- an uncompressed tar layer: split the same way, with no gzip to rebuild;
- anything else (configs, zstd layers, layers whose gzip cannot be rebuilt): stored as
  the raw codec would, `encoding: raw` in the meta, with the reason in its params.

Splitting is CPU work (the gzip analysis re-encodes the layer) and costs some 50-70 MB per
layer being split, so at most one layer per core (up to 4) is split at a time.
The engine's other workers meanwhile receive their layers into spool files, so the
source connections never wait on the CPU and memory stays bounded however many
transfers run in parallel.

Each split layer's recipe (skeleton, content list, gzip recipe) is one member
`dedup/layers/<hex>`. At commit, `finish` writes the zstd content store, every distinct
file content once (`dedup/store.zst`), and returns what the meta keeps: where the store
is, the digests of every content this bundle's layers use (so that a later `--since`
save leaves them out: in the meta itself while that list is small, so that a `--since`
needs the parent's meta file only; else in a member `dedup/contents.zst`), the parent
bundles it relies on and which of their layers hold the contents it left out, and the
statistics.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from transship.bundle.chain import repositories_using
from transship.bundle.codecs import EncodedBlob, ParentBundle, PieceSink, RawCodec
from transship.bundle.datafile import io_error
from transship.bundle.dedup_io import (
    ReplayableStream,
    open_pieces,
    pieces_of,
    release_free_memory,
)
from transship.bundle.dedup_stats import (
    REASON_BAD_GZIP,
    REASON_NO_ENCODER,
    REASON_NOT_LAYER,
    REASON_ZSTD,
    DedupStats,
)
from transship.bundle.meta import CodecData
from transship.bundle.reader import FilePieceSource
from transship.dedup.incremental import ParentContents
from transship.dedup.layer_recipe import LayerRecipe, new_spool
from transship.dedup.session import DedupSaveSession
from transship.errors import BundleError
from transship.oci.descriptor import Descriptor
from transship.oci.digest import hex_of

ENCODING = "dedup"
STORE_MEMBER = "dedup/store.zst"
CONTENTS_MEMBER = "dedup/contents.zst"
_INLINE_CONTENTS = 1 << 20  # content lists up to this size (packed) go in the meta
# The content store's zstd window: 64 MiB. On the benchmark fleet (881 MB of distinct
# contents) 128 MiB made the store 4 % smaller (328 vs 341 MB) but compressing it took
# 151 MB instead of 89 MB, on top of everything else a save holds: over the 300 MB the
# whole save must stay under. Loading needs a window's worth of memory too.
STORE_WINDOW_LOG = 26
LAYER_MEMBER_PREFIX = "dedup/layers/"
_CHUNK = 1 << 20
_SNIFF = 512  # bytes looked at to tell gzip, zstd and tar apart
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def layer_member(digest: str) -> str:
    return LAYER_MEMBER_PREFIX + hex_of(digest)


def _looks_like_tar(head: bytes) -> bool:
    if len(head) < _SNIFF:
        return False
    if head[257:262] == b"ustar":  # POSIX and GNU tars
        return True
    return head == bytes(_SNIFF)  # an empty tar is all zero blocks


def _is_json_type(media_type: str) -> bool:
    return media_type.endswith("json")  # configs, manifests, empty descriptors


class LayerDigests:
    """What `ParentContents.external_layers` needs of a recipe, without its skeleton."""

    def __init__(self, layer_digest: str, digests: bytes):
        self.layer_digest = layer_digest
        self.digests = digests

    def content_digests(self) -> Iterator[bytes]:
        d = self.digests
        return (d[i : i + 32] for i in range(0, len(d), 32))


def _packed_contents(parent: ParentBundle) -> bytes | None:
    """A dedup parent's list of file contents (packed), None when it is not at hand."""
    data = parent.meta.codec_data[ENCODING]
    if "contents" in data.params:
        try:
            return base64.b64decode(data.params["contents"], validate=True)
        except ValueError:
            raise BundleError(
                f"{parent.path.name}: its list of file contents is damaged (bad base64)"
            ) from None
    pieces = pieces_of(data.pieces, data.params.get("contents_member", CONTENTS_MEMBER))
    if not pieces:
        return None
    try:
        with open_pieces(pieces, FilePieceSource(parent.path.parent)) as f:
            return f.read()
    except BundleError:
        return None  # its data files are not next to its meta


def parent_contents(
    parents: Sequence[ParentBundle],
) -> tuple[ParentContents | None, list[ParentBundle], list[str]]:
    """Every file content the dedup parents' layers use (and their own parents'), or
    None when no parent is a dedup bundle; the parents whose lists were read; notes on
    those that could not be."""
    found: ParentContents | None = None
    used: list[ParentBundle] = []
    notes: list[str] = []
    for parent in parents:
        if ENCODING not in parent.meta.codec_data:
            continue  # a raw bundle: only whole blobs are left to it
        packed = _packed_contents(parent)
        if packed is None:
            notes.append(
                f"parent {parent.path.name}: its list of file contents lies in its data "
                "files, which are not next to its meta; no file content was left to it"
            )
            continue
        contents = ParentContents.from_bytes(packed, f"parent bundle {parent.path.name}")
        used.append(parent)
        if found is None:
            found = contents
        else:
            found.update(contents)
    return found, used, notes


def _parent_layer_homes(parents: Sequence[ParentBundle]) -> dict[str, list[str]]:
    """Layer digest → repositories where a site that loaded the parents holds it."""
    homes: dict[str, list[str]] = {}

    def add(digest: str, repositories: Iterable[str]) -> None:
        known = homes.setdefault(digest, [])
        known.extend(r for r in repositories if r not in known)

    for parent in parents:
        for digest, repositories in repositories_using(parent.meta).items():
            add(digest, repositories)
        for grand in parent.meta.parents:
            for blob in grand.blobs:
                add(blob.digest, blob.repositories)
        data = parent.meta.codec_data.get(ENCODING)
        for layer in data.params.get("external_layers", []) if data else []:
            add(layer["digest"], layer.get("repositories", []))
    return homes


class DedupBundleSave:
    """One bundle's dedup state while it is saved; thread-safe."""

    def __init__(
        self,
        work_dir: Path,
        parents: Sequence[ParentBundle] = (),
        max_splitting: int | None = None,
    ):
        self.work_dir = work_dir
        self._splitting = threading.BoundedSemaphore(
            max_splitting or min(4, max(1, os.cpu_count() or 1))
        )
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise io_error(work_dir, e, "creating") from None
        # The parents whose file contents this bundle may leave out.
        self.parent_contents, self.parents, notes = parent_contents(parents)
        self._parent_homes = _parent_layer_homes(parents)
        self.session = DedupSaveSession(
            work_dir / "session", parent=self.parent_contents, window_log=STORE_WINDOW_LOG
        )
        self._notes = notes
        self._lock = threading.Lock()
        self._layer_digests: dict[str, bytes] = {}  # split layer → its contents' digests
        # What became of each blob, by digest: a blob tried again (the engine retries
        # a failed transfer) counts once, as it ended up.
        self._outcomes: dict[str, tuple[str, str, int, int, int]] = {}
        self._spool_ids = itertools.count()

    # -- blobs ---------------------------------------------------------------------------------

    def encode(self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink) -> EncodedBlob:
        if _is_json_type(desc.media_type):
            self._record(desc, "other")
            return self._raw(desc, chunks, sink)
        head, rest = _sniff(chunks)
        if head.startswith(_GZIP_MAGIC):
            return self._gzip_layer(desc, rest, sink)
        if _looks_like_tar(head):
            return self._tar_layer(desc, rest, sink)
        reason = REASON_ZSTD if head.startswith(_ZSTD_MAGIC) else REASON_NOT_LAYER
        if "layer" in desc.media_type or "rootfs" in desc.media_type:
            self._record(desc, "raw", reason)
            return self._raw(desc, rest, sink, reason)
        self._record(desc, "other")
        return self._raw(desc, rest, sink)

    def _raw(
        self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink, reason: str = ""
    ) -> EncodedBlob:
        encoded = RawCodec().encode(desc, chunks, sink)
        encoded.encoding = RawCodec.encoding
        if reason:
            encoded.params = {"dedup_skipped": reason}
        return encoded

    def _gzip_layer(
        self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink
    ) -> EncodedBlob:
        from transship import gzip_rebuild

        spool = self.work_dir / f"blob-{next(self._spool_ids):06d}.spool"
        with ReplayableStream(chunks, spool) as stream, self._split_turn(stream):
            layer = self.session.open_layer(desc.digest)
            try:
                gzip_recipe = gzip_rebuild.analyze(stream, layer.write)
                if gzip_recipe.compressed_size != desc.size:
                    raise gzip_rebuild.RebuildImpossible(
                        f"the gzip data covers {gzip_recipe.compressed_size} of {desc.size} bytes"
                    )
            except gzip_rebuild.RebuildImpossible as exc:
                layer.abort()
                short = (
                    REASON_BAD_GZIP
                    if isinstance(exc, gzip_rebuild.GzipFormatError)
                    else REASON_NO_ENCODER
                )
                self._record(desc, "raw", short)
                encoded = self._raw(desc, stream.replay(), sink, short)
                encoded.params["detail"] = str(exc)
                return encoded
            except BaseException:
                layer.abort()
                raise
            recipe = layer.finish(gzip_recipe.to_bytes())
        return self._store_recipe(desc, recipe, _gzip_method(gzip_recipe), sink, "gzip")

    def _tar_layer(self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink) -> EncodedBlob:
        spool = self.work_dir / f"blob-{next(self._spool_ids):06d}.spool"
        with ReplayableStream(chunks, spool) as stream, self._split_turn(stream):
            layer = self.session.open_layer(desc.digest)
            try:
                while chunk := stream.read(_CHUNK):
                    layer.write(chunk)
            except BaseException:
                layer.abort()
                raise
            recipe = layer.finish(b"")
        return self._store_recipe(desc, recipe, "uncompressed tar", sink, "none")

    def _record(
        self,
        desc: Descriptor,
        kind: str,
        label: str = "",
        tar_size: int = 0,
        recipe_size: int = 0,
        digests: bytes | None = None,
    ) -> None:
        with self._lock:
            self._outcomes[desc.digest] = (kind, label, desc.size, tar_size, recipe_size)
            if digests is None:
                self._layer_digests.pop(desc.digest, None)
            else:
                self._layer_digests[desc.digest] = digests

    @property
    def stats(self) -> DedupStats:
        """The figures so far (the content figures once `finish` ran)."""
        stats = DedupStats(notes=list(self._notes))
        with self._lock:
            outcomes = list(self._outcomes.values())
        for kind, label, size, tar_size, recipe_size in outcomes:
            if kind == "split":
                stats.add_split(label, size, tar_size, recipe_size)
            elif kind == "raw":
                stats.add_raw_layer(label, size)
            else:
                stats.add_other(size)
        return stats

    @contextlib.contextmanager
    def _split_turn(self, stream: ReplayableStream) -> Iterator[None]:
        """Wait for a free splitting slot, receiving the blob into its spool meanwhile."""
        if not self._splitting.acquire(blocking=False):
            stream.fill()
            self._splitting.acquire()
        try:
            yield
        finally:
            self._splitting.release()
            release_free_memory()

    def _store_recipe(
        self, desc: Descriptor, recipe: LayerRecipe, how: str, sink: PieceSink, compression: str
    ) -> EncodedBlob:
        try:
            with new_spool() as out:
                size = recipe.write(out)
                out.seek(0)
                pieces = sink.write_piece(
                    layer_member(desc.digest), size, iter(lambda: out.read(_CHUNK), b"")
                )
            self._record(desc, "split", how, recipe.tar_size, size, recipe.digests)
            params: dict[str, Any] = {
                "compression": compression,
                "rebuild": how,
                "tar_size": recipe.tar_size,
                "contents": len(recipe),
            }
            return EncodedBlob(pieces, params)
        finally:
            recipe.close()

    # -- end -----------------------------------------------------------------------------------

    def finish(self, sink: PieceSink) -> CodecData:
        """Write the content store; what the meta keeps about it."""
        store_path = self.work_dir / "store.zst"
        release_free_memory()  # compressing the store is when the most memory is needed
        try:
            with open(store_path, "wb") as out:
                index = self.session.write_store(out)
            size = store_path.stat().st_size
            with open(store_path, "rb") as f:
                pieces = sink.write_piece(STORE_MEMBER, size, iter(lambda: f.read(_CHUNK), b""))
        except OSError as e:
            raise io_error(store_path, e) from None
        finally:
            store_path.unlink(missing_ok=True)

        with self._lock:
            layers = dict(self._layer_digests)
        contents = ParentContents()
        for digest, digests in layers.items():
            contents.add_layer(digest, LayerDigests(digest, digests).content_digests())
        if self.parent_contents is not None:
            contents.update(self.parent_contents)  # a child's --since sees the whole chain
        external = self.session.external_layers(
            [LayerDigests(d, digests) for d, digests in layers.items()]
        )
        collector = self.session.collector
        stats = self.stats
        stats.contents_seen = collector.seen_count
        stats.contents_seen_bytes = collector.seen_bytes
        stats.contents_stored = len(collector)
        stats.contents_stored_bytes = collector.stored_bytes
        stats.contents_in_parents = collector.skipped_count
        stats.store_bytes = size
        packed = contents.to_bytes()
        listed: dict[str, Any] = {"contents": base64.b64encode(packed).decode()}
        if len(packed) > _INLINE_CONTENTS:
            pieces += sink.write_piece(CONTENTS_MEMBER, len(packed), [packed])
            listed = {"contents_member": CONTENTS_MEMBER}
        params: dict[str, Any] = {
            "store": STORE_MEMBER,
            "store_frames": len(index.frames),
            "store_contents": len(index),
            **listed,
            "parents": [{"id": p.meta.id, "file": p.path.name} for p in self.parents],
            "external_layers": [
                {"digest": layer, "repositories": self._parent_homes.get(layer, [])}
                for layer in external
            ],
            "stats": stats.to_dict(),
        }
        return CodecData(pieces=pieces, params=params)

    def close(self) -> None:
        self.session.close()


def _sniff(chunks: Iterable[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The first bytes of a stream, and the whole stream again."""
    it = iter(chunks)
    head = b""
    taken: list[bytes] = []
    for chunk in it:
        taken.append(chunk)
        head += chunk[: _SNIFF - len(head)]
        if len(head) >= _SNIFF:
            break
    return head, itertools.chain(taken, it)


def _gzip_method(recipe: Any) -> str:
    """How a layer's gzip is rebuilt, for the summary: `go level 6`, `zlib level 9`,
    `preflate`; several members name each way once."""
    from transship.gzip_rebuild import PreflateEncoder

    ways = []
    for member in recipe.members:
        way = (
            "preflate"
            if isinstance(member.encoder, PreflateEncoder)
            else member.encoder.describe().split(",")[0]
        )
        if way not in ways:
            ways.append(way)
    return " + ".join(ways) or "gzip"
