"""Which layers a dedup bundle rebuilds, and which it keeps as they are.

Rebuilding a gzip layer bit for bit costs a full re-encode (some 40 MB/s of plain data
per core at the usual levels), paid twice: at save, to prove that the rebuild gives the
digest, and at every load. What it saves is the layer's size minus what its files add
to the content store. For a layer that shares nothing with the others that is little:
zstd at the store's level packs a file tree about as well as gzip did. For a layer that
repeats files, or jar entries, of other layers, it is most of the layer.

`choose_rebuilt` keeps a layer as it is when rebuilding it would save fewer than
`min_gain` bytes per second of rebuilding (one core). Think of `min_gain` as the speed
of the medium the bundle travels on: below it, carrying the extra bytes is faster than
rebuilding them. 0 rebuilds every layer that can be (the smallest bundle).

What a layer adds to the store is estimated from `Item`s, each paid once however many
kept layers hold it: a content by its digest, and for jars (zip archives) each entry by
its (crc32, compressed size), since zstd finds an entry again when another jar holding it
sits nearby in the store (similarity.py puts it there).

Greedy, from the whole set: drop the layer with the lowest saving per rebuild second
while that is below `min_gain`. Dropping a layer leaves the items it shared with one
other layer to that layer alone, which lowers that layer's saving; the loop sees it.
Layers that share most of their items (one tar compressed by two tools, two versions
of a base layer) are also weighed as a group: each alone looks indispensable while the
other is kept, though together they may not be worth their rebuild.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field

# `--dedup-effort` levels, as bytes saved per second of rebuilding a layer needs to be
# rebuilt. balanced: about what a USB 2 stick or a 100 Mbit/s link moves in a second.
EFFORT_MIN_GAIN = {"max": 0.0, "balanced": 15e6, "fast": 30e6}
DEFAULT_EFFORT = "balanced"
DEFAULT_MIN_GAIN = EFFORT_MIN_GAIN[DEFAULT_EFFORT]
# Layers holding this share of another's item bytes are weighed together with it too.
_PARTNER_SHARE = 0.5
_PARTNER_MAX_HOLDERS = 16


@dataclass(frozen=True, slots=True)
class Item:
    key: Hashable
    stored_bytes: float  # what it costs in the content store, estimated


@dataclass
class LayerCost:
    digest: str
    size: int  # the layer as it is (compressed blob)
    rebuild_seconds: float  # 0: free to rebuild (an uncompressed tar), always kept
    own_bytes: float  # bundle bytes only this layer needs (its recipe)
    items: Sequence[Item] = field(default_factory=list)


def choose_rebuilt(layers: Sequence[LayerCost], min_gain: float) -> set[str]:
    """The digests of the layers worth rebuilding (see the module docstring)."""
    return _Choice(layers).run(min_gain) if min_gain > 0 else {x.digest for x in layers}


class _Choice:
    """The greedy's state. Who holds an item is a bit mask of layer indexes: some 100 000
    items for a fleet of Java images, so the state stays a few MB."""

    def __init__(self, layers: Sequence[LayerCost]) -> None:
        self.layers = layers
        self.cost: dict[Hashable, float] = {}
        self.holders: dict[Hashable, int] = {}
        self.keys_of: list[list[Hashable]] = []
        for index, layer in enumerate(layers):
            bit = 1 << index
            keys = list(dict.fromkeys(item.key for item in layer.items))
            for item in layer.items:
                known = self.cost.get(item.key)
                if known is None or item.stored_bytes < known:
                    self.cost[item.key] = item.stored_bytes
            for key in keys:
                self.holders[key] = self.holders.get(key, 0) | bit
            self.keys_of.append(keys)
        self.kept = {i for i, layer in enumerate(layers) if layer.rebuild_seconds > 0}
        self.partners = self._partners()
        # Bytes each layer alone needs: its own, and the items no other layer holds.
        self.alone = [
            layer.own_bytes
            + sum(self.cost[k] for k in self.keys_of[i] if self.holders[k].bit_count() == 1)
            for i, layer in enumerate(layers)
        ]

    def run(self, min_gain: float) -> set[str]:
        while self.kept:
            rate, drop = min(self._moves(), key=lambda move: move[0])
            if rate >= min_gain:
                break
            for i in drop:
                self._drop(i)
        fixed = (x.digest for x in self.layers if x.rebuild_seconds <= 0)
        return {self.layers[i].digest for i in self.kept} | set(fixed)

    def _moves(self) -> Iterator[tuple[float, frozenset[int]]]:
        """Each kept layer alone, and each with the kept layers most like it: two
        compressions of one tar, or two versions of a base layer, each look
        indispensable while the other is kept."""
        for i in self.kept:
            layer = self.layers[i]
            yield (layer.size - self.alone[i]) / layer.rebuild_seconds, frozenset((i,))
            group = self.partners[i] & self.kept
            if group:
                group = frozenset(group | {i})
                yield self._rate(group), group

    def _partners(self) -> list[set[int]]:
        """For each layer, the layers holding at least half of what its items cost."""
        shared: list[dict[int, float]] = [{} for _ in self.layers]
        for key, mask in self.holders.items():
            # An item nearly every layer holds (a common jar entry) tells little about
            # which layers are alike, and would cost the square of their number here.
            if 1 < mask.bit_count() <= _PARTNER_MAX_HOLDERS:
                holders = _indexes(mask)
                for i in holders:
                    for j in holders:
                        if j != i:
                            shared[i][j] = shared[i].get(j, 0.0) + self.cost[key]
        partners = []
        for i, keys in enumerate(self.keys_of):
            total = sum(self.cost[k] for k in keys)
            partners.append({j for j, cost in shared[i].items() if cost >= _PARTNER_SHARE * total})
        return partners

    def _rate(self, group: frozenset[int]) -> float:
        """Bytes saved per rebuild second by keeping `group` rather than dropping it."""
        alone = sum(self.alone[i] for i in group)
        mask = sum(1 << i for i in group)
        for key in set().union(*(self.keys_of[i] for i in group)):
            holders = self.holders[key]
            if holders.bit_count() > 1 and holders & ~mask == 0:
                alone += self.cost[key]
        saved = sum(self.layers[i].size for i in group) - alone
        return saved / sum(self.layers[i].rebuild_seconds for i in group)

    def _drop(self, i: int) -> None:
        self.kept.discard(i)
        for key in self.keys_of[i]:
            holders = self.holders[key] & ~(1 << i)
            self.holders[key] = holders
            if holders.bit_count() == 1:
                self.alone[holders.bit_length() - 1] += self.cost[key]


def _indexes(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]
