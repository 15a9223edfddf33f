"""The `dedup` blob codec: layers stored as file contents, each distinct one once per
bundle, and rebuilt bit for bit at load (`transship save --codec dedup`).

Per blob, the meta says `encoding: dedup` with the layer's recipe as its piece (how its
tar and its gzip are rebuilt), or `encoding: raw` for blobs kept as they are (configs,
zstd layers, gzip that no known encoder reproduces; `params.dedup_skipped` says why).
The bundle's content store and the list of its contents are in `codec_data.dedup`.

Which layers are rebuilt is decided once every layer was split: those whose rebuilding
saves too few bytes per second of re-encoding are kept as they are (`min_gain`,
`transship save --dedup-effort`, see dedup/payoff.py).

The work is in dedup_save.py (save) and dedup_load.py (load); this class wires them to
the bundle writer's and reader's codec hooks. A dedup save is not resumed after an
interruption: the layers already written need the content store, which is written
only at the end, so the next run starts over (and never leaves a meta before the end).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from transship.bundle.codecs import (
    BlobCodec,
    EncodedBlob,
    LoadContext,
    ParentBundle,
    PieceSink,
    PieceSource,
    register_codec,
)
from transship.bundle.dedup_io import tune_malloc
from transship.bundle.dedup_load import DedupBundleLoad
from transship.bundle.dedup_save import ENCODING, DedupBundleSave
from transship.bundle.dedup_stats import DedupStats
from transship.bundle.meta import BlobEntry, BundleMeta, CodecData
from transship.dedup.payoff import DEFAULT_MIN_GAIN
from transship.errors import BundleError
from transship.oci.descriptor import Descriptor


@register_codec
class DedupCodec(BlobCodec):
    encoding = ENCODING
    resumable = False
    finishing_note = "dedup.finishing.checking"

    def __init__(self, min_gain: float = DEFAULT_MIN_GAIN, recipe_cache: Path | None = None):
        self.min_gain = min_gain  # see transship.dedup.payoff
        self.recipe_cache = recipe_cache  # see transship.dedup.recipe_cache
        self._save: DedupBundleSave | None = None
        self._load: DedupBundleLoad | None = None

    # -- save ----------------------------------------------------------------------------------

    def begin_bundle(self, work_dir: Path, parents: Sequence[ParentBundle]) -> None:
        self.end_bundle()
        tune_malloc()
        self._save = DedupBundleSave(
            work_dir, parents, min_gain=self.min_gain, recipe_cache=self.recipe_cache
        )

    def encode(self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink) -> EncodedBlob:
        if self._save is None:
            raise BundleError("the dedup codec stores blobs only inside a bundle being written")
        return self._save.encode(desc, chunks, sink)

    def settle_blobs(self, sink: PieceSink) -> dict[str, EncodedBlob]:
        if self._save is None:
            raise BundleError("the dedup codec has no bundle being written")
        return self._save.settle(sink, self.progress)

    def finish_bundle(self, sink: PieceSink) -> CodecData | None:
        if self._save is None:
            raise BundleError("the dedup codec has no bundle being written")
        return self._save.finish(sink)

    def end_bundle(self) -> None:
        if self._save is not None:
            self._save.close()
            self._save = None

    @property
    def stats(self) -> DedupStats | None:
        """What the save did so far (None outside a save)."""
        return self._save.stats if self._save else None

    # -- load ----------------------------------------------------------------------------------

    def prepare(self, meta: BundleMeta, source: PieceSource, context: LoadContext) -> None:
        self.close()
        tune_malloc()
        self._load = DedupBundleLoad(meta, source, context)

    def decode(self, entry: BlobEntry, source: PieceSource, offset: int = 0) -> Iterator[bytes]:
        if self._load is None:
            raise BundleError(f"layer {entry.digest}: the bundle was not prepared for reading")
        return self._load.decode(entry, source, offset)

    def close(self) -> None:
        if self._load is not None:
            self._load.close()
            self._load = None


def bundle_stats(meta: BundleMeta) -> DedupStats | None:
    """The dedup statistics a bundle's meta keeps (None for other bundles)."""
    data = meta.codec_data.get(ENCODING)
    if data is None or not isinstance(data.params.get("stats"), dict):
        return None
    return DedupStats.from_dict(data.params["stats"])
