"""What the dedup codec did with a bundle's blobs, kept in the meta and shown by
`transship save` and `transship inspect`: which layers were split into file contents
(and how their gzip is rebuilt), which were stored as they are and why, and how many
file contents and bytes the content store holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Why a layer is stored as it is, in words a summary can group by.
REASON_ZSTD = "zstd-compressed"
REASON_NOT_LAYER = "neither gzip nor tar"
REASON_BAD_GZIP = "not a valid gzip stream"
REASON_NO_ENCODER = "gzip not reproducible"
REASON_LOW_GAIN = "rebuilding would save too little"
# Their message keys: metas keep the English words, summaries show the reader's language.
_REASON_KEYS = {
    REASON_ZSTD: "dedup.reason.zstd",
    REASON_NOT_LAYER: "dedup.reason.not_layer",
    REASON_BAD_GZIP: "dedup.reason.bad_gzip",
    REASON_NO_ENCODER: "dedup.reason.no_encoder",
    REASON_LOW_GAIN: "dedup.reason.low_gain",
}


@dataclass
class Tally:
    count: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.count += 1
        self.bytes += size


@dataclass
class DedupStats:
    split: dict[str, Tally] = field(default_factory=dict)  # how the layer is rebuilt → tally
    raw_layers: dict[str, Tally] = field(default_factory=dict)  # reason → tally
    other_blobs: Tally = field(default_factory=Tally)  # configs and other non-layers
    tar_bytes: int = 0  # uncompressed size of the split layers
    recipe_bytes: int = 0
    contents_seen: int = 0  # file contents referenced by split layers (with repeats)
    contents_seen_bytes: int = 0
    contents_stored: int = 0
    contents_stored_bytes: int = 0
    contents_in_parents: int = 0  # left out: a parent bundle carries them
    store_bytes: int = 0  # compressed content store
    checks_reused: int = 0  # gzip rebuilds proven by an earlier save (recipe cache)
    notes: list[str] = field(default_factory=list)

    def add_split(self, how: str, size: int, tar_size: int, recipe_size: int) -> None:
        self.split.setdefault(how, Tally()).add(size)
        self.tar_bytes += tar_size
        self.recipe_bytes += recipe_size

    def add_raw_layer(self, reason: str, size: int) -> None:
        self.raw_layers.setdefault(reason, Tally()).add(size)

    def add_other(self, size: int) -> None:
        self.other_blobs.add(size)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["split"] = {k: asdict(v) for k, v in out["split"].items()}
        out["raw_layers"] = {k: asdict(v) for k, v in out["raw_layers"].items()}
        out["other_blobs"] = asdict(out["other_blobs"])
        out["notes"] = list(out["notes"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DedupStats:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        stats = cls(**known)
        stats.split = {k: Tally(**v) for k, v in stats.split.items()}  # type: ignore[arg-type]
        stats.raw_layers = {k: Tally(**v) for k, v in stats.raw_layers.items()}  # type: ignore[arg-type]
        if isinstance(stats.other_blobs, dict):
            stats.other_blobs = Tally(**stats.other_blobs)
        return stats

    # -- figures for summaries ----------------------------------------------------------------

    @property
    def split_layers(self) -> Tally:
        return Tally(
            sum(t.count for t in self.split.values()), sum(t.bytes for t in self.split.values())
        )

    @property
    def raw_layer_total(self) -> Tally:
        return Tally(
            sum(t.count for t in self.raw_layers.values()),
            sum(t.bytes for t in self.raw_layers.values()),
        )

    def summary_lines(self, human_bytes: Any = str, language: str | None = None) -> list[str]:
        """Two or three lines for people (`human_bytes` formats a byte count), in
        `language` (default: the environment's, see transship.i18n)."""
        from transship.i18n import current_language, translate

        lang = language or current_language()

        def say(key: str, **fields: object) -> str:
            return translate(f"dedup.summary.{key}", lang, **fields)

        split, raw = self.split_layers, self.raw_layer_total
        ways = ", ".join(f"{t.count} {how}" for how, t in sorted(self.split.items()))
        lines = [
            say(
                "split",
                split=split.count,
                layers=split.count + raw.count,
                split_bytes=human_bytes(split.bytes),
                total_bytes=human_bytes(split.bytes + raw.bytes),
                ways=say("ways", ways=ways) if ways else "",
                reused=say("reused", count=self.checks_reused) if self.checks_reused else "",
            )
        ]
        if raw.count:
            reasons = say("separator").join(
                say(
                    "reason",
                    count=t.count,
                    reason=translate(_REASON_KEYS[reason], lang)
                    if reason in _REASON_KEYS
                    else reason,  # a reason this version does not know: as the meta says
                    bytes=human_bytes(t.bytes),
                )
                for reason, t in sorted(self.raw_layers.items())
            )
            lines.append(say("raw", count=raw.count, reasons=reasons))
        lines.append(
            say(
                "contents",
                seen=self.contents_seen,
                seen_bytes=human_bytes(self.contents_seen_bytes),
                stored=self.contents_stored,
                stored_bytes=human_bytes(self.contents_stored_bytes),
                parents=say("parents", count=self.contents_in_parents)
                if self.contents_in_parents
                else "",
                store_bytes=human_bytes(self.store_bytes),
                recipe_bytes=human_bytes(self.recipe_bytes),
            )
        )
        lines += [say("note", note=note) for note in self.notes]
        return lines
