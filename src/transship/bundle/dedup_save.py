"""The save side of the dedup codec: one `DedupBundleSave` per bundle being written.

Each blob the engine hands over (from any number of threads) goes one of three ways:

- a gzip layer, in two passes. First, as it arrives: decompressed with the plain tar
  going straight into the layer splitter (file contents into the bundle's content
  collector, the rest into the layer's recipe), the compressed bytes into a spool file.
  Meanwhile the stream's transcript (its block headers and matches: gzip_rebuild.py)
  proves that it rebuilds bit for bit, where the transcript is cheap to store (jar
  layers: 1.5-2.5 % of the tar; `MAX_TRANSCRIPT_SHARE`). A layer whose transcript costs
  more is, without parent bundles, stored as it is at once: rebuilding it would need
  the full re-encode, which hardly ever pays (dedup/payoff.py) but at
  `--dedup-effort max`, where no transcript is stored and every layer is split. Other
  gzip layers' entries stay open (`deferred`).
  Then `settle`, once
  every layer is split, chooses the layers worth rebuilding (dedup/payoff.py: the bytes
  a rebuild saves against the seconds of gzip re-encoding it costs at save and at
  load), waits for the proof of those no transcript checks (`gzip_rebuild.analyze`
  on the spool, the encoders searching; it starts in the background, at the lowest CPU
  priority, as soon as a layer is split, so that a slow link hides it), writes their
  recipes, and stores the others as they are (`dedup_skipped`: too little to gain, or
  gzip not reproducible);
- an uncompressed tar layer: split the same way, rebuilt for free, recipe written at once;
- anything else (configs, zstd layers, invalid gzip): stored as the raw codec would,
  `encoding: raw` in the meta, with the reason in its params.

Splitting costs some 50-70 MB per layer being split, so at most one layer per core (up
to 4) is split at a time. The engine's other workers meanwhile receive their layers into
spool files, so the source connections never wait on the CPU and memory stays bounded
however many transfers run in parallel. The spools of gzip layers stay until `settle`:
temporary disk space about the size of the layers.

Each rebuilt layer's recipe (skeleton, content list, gzip recipe) is one member
`dedup/layers/<hex>`. At commit, `finish` writes the zstd content store, every distinct
file content of the rebuilt layers once (`dedup/store.zst`), and returns what the meta
keeps: where the store is, the digests of every content this bundle's layers use (so
that a later `--since` save leaves them out: in the meta itself while that list is
small, so that a `--since` needs the parent's meta file only; else in a member
`dedup/contents.zst`), the parent bundles it relies on and which of their layers hold
the contents it left out, and the statistics.
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import os
import queue
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, BinaryIO

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
    REASON_LOW_GAIN,
    REASON_NO_ENCODER,
    REASON_NOT_LAYER,
    REASON_ZSTD,
    DedupStats,
)
from transship.bundle.meta import CodecData
from transship.bundle.reader import FilePieceSource
from transship.dedup.incremental import ParentContents
from transship.dedup.layer_recipe import LayerRecipe, new_spool
from transship.dedup.payoff import DEFAULT_MIN_GAIN, Item, LayerCost, choose_rebuilt
from transship.dedup.session import DedupSaveSession
from transship.errors import BundleError, Cancelled
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
# A layer's transcript may cost up to this share of its tar: jar layers need 1.5-2.5 %,
# binaries and text 12-25 %, which would grow the bundle by a fifth of such a layer.
MAX_TRANSCRIPT_SHARE = 0.05
_CHUNK = 1 << 20
_PROGRESS_EVERY = 5.0  # seconds between progress lines while layers are checked
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
        min_gain: float = DEFAULT_MIN_GAIN,
        recipe_cache: Path | None = None,
    ):
        self.work_dir = work_dir
        self.min_gain = min_gain
        self._recipes = _recipe_cache(recipe_cache)
        workers = max_splitting or min(4, max(1, os.cpu_count() or 1))
        self._splitting = threading.BoundedSemaphore(workers)
        self._check_workers = workers
        self._analyses = threading.BoundedSemaphore(workers)
        # The gzip checks start as soon as a layer is split, one at a time at the lowest
        # CPU priority: they take what the transfers leave idle (a slow link leaves
        # plenty) and little memory. `settle` cancels those not worth it and runs the
        # rest on every core.
        self._early_checks = _BackgroundChecks(self._check)
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
        self._pending: dict[str, _PendingLayer] = {}  # gzip layers waiting for `settle`
        self._contents_seen: dict[str, tuple[int, int]] = {}  # split layer → count, bytes

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
        """First pass: decompress and split only (the cheap part). Whether the layer is
        rebuilt, which needs the costly gzip analysis, is decided in `settle` when
        every layer's contents are known; the compressed blob waits in its spool."""
        from transship import gzip_rebuild

        spool = self.work_dir / f"blob-{next(self._spool_ids):06d}.spool"
        # Checked on the way by its transcript, where that is cheap to store; the
        # smallest bundles (`min_gain` 0) store none.
        transcribe = self.min_gain > 0
        known = self._known_recipe(desc, transcript=transcribe)
        transcript = known is None and transcribe
        with ReplayableStream(chunks, spool) as stream, self._split_turn(stream):
            layer = self.session.open_layer(desc.digest, hash_tar=False)
            try:
                layout = gzip_rebuild.analyze(
                    stream,
                    layer.write,
                    check=False,
                    transcript=transcript,
                    max_transcript_share=MAX_TRANSCRIPT_SHARE,
                    stop_when_transcript_costly=transcript and not self.parents,
                )
                if layout.compressed_size != desc.size:
                    raise gzip_rebuild.GzipFormatError(
                        f"the gzip data covers {layout.compressed_size} of {desc.size} bytes"
                    )
            except gzip_rebuild.TranscriptTooCostly:
                # Rebuilding would take the full re-encode at load. Without parent
                # bundles that pays only for a layer most of whose files other rebuilt
                # layers hold too, which the payoff (dedup/payoff.py) finds worth it at
                # no effort but max: keep it now, without splitting the rest of it.
                layer.abort()
                self._record(desc, "raw", REASON_LOW_GAIN)
                return self._raw(desc, stream.replay(), sink, REASON_LOW_GAIN)
            except gzip_rebuild.RebuildImpossible as exc:
                layer.abort()
                return self._raw_layer(desc, stream.replay(), sink, exc)
            except BaseException:
                layer.abort()
                raise
            recipe = layer.finish()
            try:
                stream.keep()
            except BaseException:
                recipe.close()
                raise
        if known is not None and known.plain_size != recipe.tar_size:
            known = None  # not this blob's after all: check it again
        checked = known or (layout if layout.checked else None)
        pending = _PendingLayer(desc, spool, recipe, (checked or layout).rebuild_seconds())
        with self._lock:
            # A blob sent again (its digest did not match the first time) replaces it.
            earlier = self._pending.pop(desc.digest, None)
            self._pending[desc.digest] = pending
        if earlier is not None:
            earlier.close()
        if checked is None:
            # Not a layer that the search checks early: one whose transcript costs too
            # much is text or binaries, which share little and are likely kept as they
            # are (balanced kept the fleet's base layers), and its search is slow.
            if not layout.costly_transcript:
                pending.check = self._early_checks.submit(pending)
        else:
            if known is None and self._recipes is not None:
                self._recipes.put(desc.digest, checked)
            pending.check.set_result(checked)
        return EncodedBlob([], {"deferred": True})

    def _raw_layer(
        self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink, exc: Exception
    ) -> EncodedBlob:
        """A gzip layer stored as it is because its gzip cannot be rebuilt."""
        from transship import gzip_rebuild

        short = (
            REASON_BAD_GZIP if isinstance(exc, gzip_rebuild.GzipFormatError) else REASON_NO_ENCODER
        )
        self._record(desc, "raw", short)
        encoded = self._raw(desc, chunks, sink, short)
        encoded.params["detail"] = str(exc)
        return encoded

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
            with self._lock:
                self._contents_seen[desc.digest] = (len(recipe), sum(recipe.sizes))
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

    def settle(
        self, sink: PieceSink, progress: Callable[..., None] | None = None
    ) -> dict[str, EncodedBlob]:
        """Second pass over the deferred gzip layers: choose those worth rebuilding, wait
        for the proof that each rebuilds to its digest, store their recipes and the
        others as they are. `progress(key, **fields)` hears how many checks are done, now
        and then."""
        with self._lock:
            pending = dict(self._pending)
            self._pending.clear()
        workers = ThreadPoolExecutor(self._check_workers, thread_name_prefix="dedup-check")
        try:
            rebuilt = self._choose(pending)
            settled: dict[str, EncodedBlob] = {}
            checks: dict[Future, _PendingLayer] = {}
            for digest, layer in pending.items():
                if digest in rebuilt:
                    if layer.check.cancel():  # not started: now, on every core
                        layer.check = workers.submit(self._check, layer)
                    checks[layer.check] = layer
                else:
                    layer.cancel()
                    settled[digest] = self._keep_as_is(layer, sink)
            told = time.monotonic()
            for count, done in enumerate(as_completed(checks), 1):
                layer = checks[done]
                settled[layer.desc.digest] = self._settle_checked(layer, done, sink)
                release_free_memory()  # what the finished analysis freed
                if progress is not None and time.monotonic() - told >= _PROGRESS_EVERY:
                    told = time.monotonic()
                    progress("dedup.finishing.checked", count=count, total=len(checks))
            if progress is not None:
                progress(
                    "dedup.finishing.writing_store",
                    checked=len(checks),
                    kept=len(pending) - len(checks),
                )
            return settled
        finally:
            for layer in pending.values():
                layer.close()
            workers.shutdown(wait=True, cancel_futures=True)

    def _choose(self, pending: dict[str, _PendingLayer]) -> set[str]:
        if self.min_gain <= 0:
            return set(pending)
        rebuilt = choose_rebuilt(self._layer_costs(pending.values()), self.min_gain)
        release_free_memory()  # the estimate's 100 000 small objects are gone
        return rebuilt

    def _known_recipe(self, desc: Descriptor, transcript: bool) -> Any:
        """The gzip recipe (with a transcript or by search) an earlier save checked for
        this blob, if remembered."""
        if self._recipes is None:
            return None
        return self._recipes.get(desc.digest, desc.size, transcript)

    def _check(self, layer: _PendingLayer) -> Any:
        """The checked gzip recipe of a spooled layer that no transcript checked in the
        first pass: the encoders search. Raises RebuildImpossible,
        or Cancelled once the layer is cancelled. At most one analysis per core runs
        (each holds some 30 MB), the one started in the background included."""
        from transship import gzip_rebuild

        known = self._known_recipe(layer.desc, transcript=False)
        if known is not None and known.plain_size == layer.recipe.tar_size:
            return known
        with self._analyses, open(layer.spool, "rb") as f:
            recipe = gzip_rebuild.analyze(_CancellableReader(f, layer.cancelled), _discard)
        if self._recipes is not None:
            self._recipes.put(layer.desc.digest, recipe)
        return recipe

    def _settle_checked(self, layer: _PendingLayer, check: Future, sink: PieceSink) -> EncodedBlob:
        from transship import gzip_rebuild

        try:
            gzip_recipe = check.result()
        except gzip_rebuild.RebuildImpossible as exc:
            with open(layer.spool, "rb") as f:
                return self._raw_layer(layer.desc, iter(lambda: f.read(_CHUNK), b""), sink, exc)
        layer.recipe.gzip_recipe = gzip_recipe.to_bytes()
        return self._store_recipe(layer.desc, layer.recipe, _gzip_method(gzip_recipe), sink, "gzip")

    def _keep_as_is(self, layer: _PendingLayer, sink: PieceSink) -> EncodedBlob:
        self._record(layer.desc, "raw", REASON_LOW_GAIN)
        with open(layer.spool, "rb") as f:
            return self._raw(layer.desc, iter(lambda: f.read(_CHUNK), b""), sink, REASON_LOW_GAIN)

    def _layer_costs(self, pending: Iterable[_PendingLayer]) -> list[LayerCost]:
        """What each deferred layer and each layer already split would cost (payoff.py)."""
        pending = list(pending)
        collector = self.session.collector
        zips = {
            digest: _ZipSummary(entries)
            for digest, entries in collector.zip_entries(
                digest for layer in pending for digest in layer.recipe.content_digests()
            )
        }
        with self._lock:
            split = dict(self._layer_digests)  # uncompressed tars: rebuilt for free
        costs = [
            LayerCost(digest, 0, 0.0, 0.0, [Item(d, 0.0) for d in _chunks32(digests)])
            for digest, digests in split.items()
        ]
        for layer in pending:
            costs.append(_layer_cost(layer, zips, collector.size_of))
        return costs

    def finish(self, sink: PieceSink) -> CodecData:
        """Write the content store; what the meta keeps about it."""
        store_path = self.work_dir / "store.zst"
        release_free_memory()  # compressing the store is when the most memory is needed
        with self._lock:
            layers = dict(self._layer_digests)
        kept = {d for digests in layers.values() for d in _chunks32(digests)}
        try:
            with open(store_path, "wb") as out:
                index = self.session.write_store(out, keep=kept)
            size = store_path.stat().st_size
            with open(store_path, "rb") as f:
                pieces = sink.write_piece(STORE_MEMBER, size, iter(lambda: f.read(_CHUNK), b""))
        except OSError as e:
            raise io_error(store_path, e) from None
        finally:
            store_path.unlink(missing_ok=True)

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
        with self._lock:
            seen = [self._contents_seen[d] for d in layers if d in self._contents_seen]
        stats.contents_seen = sum(count for count, _ in seen)
        stats.contents_seen_bytes = sum(size for _, size in seen)
        stats.checks_reused = self._recipes.hits if self._recipes is not None else 0
        stats.contents_stored = len(index)
        stats.contents_stored_bytes = sum(index.lengths)
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
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for layer in pending:
            layer.cancel()
        for layer in pending:
            layer.close()
        self._early_checks.close()
        self.session.close()


class _PendingLayer:
    """A gzip layer split in the first pass, waiting for `settle`; `check` is its gzip
    analysis under way."""

    def __init__(
        self, desc: Descriptor, spool: Path, recipe: LayerRecipe, rebuild_seconds: float
    ) -> None:
        self.desc = desc
        self.spool = spool
        self.recipe = recipe
        self.rebuild_seconds = rebuild_seconds
        self.cancelled = threading.Event()
        self.check: Future = Future()

    def cancel(self) -> None:
        self.cancelled.set()
        self.check.cancel()

    def close(self) -> None:
        """Once its check has stopped: the spool may go."""
        self.cancel()
        with contextlib.suppress(BaseException):
            self.check.exception()  # waits for a check that had started
        self.recipe.close()
        self.spool.unlink(missing_ok=True)


class _BackgroundChecks:
    """One thread, at the lowest CPU priority, checking split layers the quickest first:
    small layers (libraries, applications) are the likeliest to be rebuilt, big ones
    that nothing else shares (a base image's) the likeliest to be kept as they are."""

    _STOP = (float("-inf"), -1, None, None)

    def __init__(self, check: Callable[[_PendingLayer], Any]) -> None:
        self._check = check
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._run, name="dedup-check", daemon=True)
        self._thread.start()

    def submit(self, layer: _PendingLayer) -> Future:
        future: Future = Future()
        self._queue.put((layer.rebuild_seconds, next(self._order), layer, future))
        return future

    def _run(self) -> None:
        _lowest_priority()
        while True:
            _, _, layer, future = self._queue.get()
            if layer is None:
                return
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            try:
                future.set_result(self._check(layer))
            except BaseException as exc:  # handed to whoever waits for the check
                future.set_exception(exc)

    def close(self) -> None:
        """Stop after the check under way; the ones still waiting are cancelled."""
        self._queue.put(self._STOP)
        self._thread.join()
        while not self._queue.empty():
            _, _, layer, future = self._queue.get_nowait()
            if future is not None:
                future.cancel()


def _lowest_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # Linux: nice is per thread
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class _CancellableReader(io.RawIOBase):
    def __init__(self, f: BinaryIO, cancelled: threading.Event) -> None:
        self._f = f
        self._cancelled = cancelled

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def read(self, size: int = -1) -> bytes:
        if self._cancelled.is_set():
            raise Cancelled("gzip check no longer needed")
        return self._f.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _recipe_cache(directory: Path | None) -> Any:
    if directory is None:
        return None
    from transship.dedup.recipe_cache import RecipeCache

    return RecipeCache(directory)


def _discard(_: bytes) -> None:
    pass


def _chunks32(digests: bytes) -> Iterator[bytes]:
    return (digests[i : i + 32] for i in range(0, len(digests), 32))


# Estimated share of a jar's non-entry bytes (local headers, central directory: names)
# left after compression.
_ZIP_OVERHEAD_RATIO = 0.25
# Jar entries are counted by a sample, 1 in 8 by crc32, weighted 8: the same estimate
# of what layers share, for an eighth of the time and memory (a fleet of Java images
# has some 500 000 entries).
_ENTRY_SAMPLE = 8


class _ZipSummary:
    """What the payoff needs of a jar: its entries' compressed bytes, and a sample of its
    entries as (key, compressed size)."""

    __slots__ = ("entry_bytes", "sample")

    def __init__(self, entries: array) -> None:
        """`entries`: crc32 << 32 | compressed size, each (similarity.zip_entry_keys)."""
        self.entry_bytes = sum(key & 0xFFFFFFFF for key in entries)
        self.sample = [
            (key, key & 0xFFFFFFFF) for key in entries if (key >> 32) % _ENTRY_SAMPLE == 0
        ]


def _layer_cost(
    layer: _PendingLayer,
    zips: dict[bytes, _ZipSummary],
    size_of: Callable[[bytes], int | None],
) -> LayerCost:
    """A deferred layer as payoff.py sees it. Contents it shares with a parent bundle
    cost nothing; jars cost their entries; other files what gzip made of the layer's
    files that are not jars (zstd at the store's level does about as well)."""
    recipe = layer.recipe
    sizes = recipe.content_sizes()
    zip_bytes = sum(size for digest, size in sizes.items() if digest in zips)
    other_plain = recipe.tar_size - zip_bytes
    ratio = min(1.0, max(0.02, (layer.desc.size - zip_bytes) / max(1, other_plain)))
    items: list[Item] = []
    for digest, size in sizes.items():
        if size_of(digest) is None:
            continue  # a parent bundle holds it: free here
        jar = zips.get(digest)
        if jar is not None and jar.entry_bytes:
            items += [Item(key, float(csize * _ENTRY_SAMPLE)) for key, csize in jar.sample]
            items.append(Item(digest, max(0, size - jar.entry_bytes) * _ZIP_OVERHEAD_RATIO))
        else:
            items.append(Item(digest, size * (1.0 if digest in zips else ratio)))
    own = recipe.skeleton_compressed_size + 32 * len(recipe)
    return LayerCost(layer.desc.digest, layer.desc.size, layer.rebuild_seconds, own, items)


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
    """How a layer's gzip is rebuilt, for the summary: `transcript`, `go level 6`,
    `zlib level 9`, `preflate`; several members name each way once."""
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
