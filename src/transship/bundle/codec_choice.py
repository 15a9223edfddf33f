"""The blob codec a save writes with, and what it says it did: one place for
`transship save --codec/--dedup-effort` and the web UI's "Bundle contents".

Kept small and importing the codecs only when called, so callers that merely name a
codec (the CLI's options) pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from transship.errors import ConfigError

if TYPE_CHECKING:
    from transship.bundle.codecs import BlobCodec
    from transship.bundle.dedup_stats import DedupStats

CODEC_NAMES = ("raw", "dedup")
DEDUP_EFFORTS = ("max", "balanced", "fast")  # transship.dedup.payoff.EFFORT_MIN_GAIN


def make_codec(name: str, dedup_effort: str = "balanced") -> BlobCodec:
    """A fresh codec for one save: `raw`, or `dedup` tuned by `dedup_effort` (see
    transship.dedup.payoff) and remembering its gzip checks in the user's cache."""
    if name not in CODEC_NAMES:
        raise ConfigError(f"unknown codec {name!r}: choose one of {', '.join(CODEC_NAMES)}")
    if dedup_effort not in DEDUP_EFFORTS:
        raise ConfigError(
            f"unknown dedup effort {dedup_effort!r}: choose one of {', '.join(DEDUP_EFFORTS)}"
        )
    from transship.bundle.codecs import get_codec

    codec = get_codec(name)
    if name == "dedup":
        from transship.dedup.payoff import EFFORT_MIN_GAIN
        from transship.dedup.recipe_cache import default_recipe_dir

        codec.min_gain = EFFORT_MIN_GAIN[dedup_effort]  # type: ignore[attr-defined]
        codec.recipe_cache = default_recipe_dir()  # type: ignore[attr-defined]
    return codec


def codec_summary(
    meta_path: Path, human_bytes: Callable[[float], str] = str, language: str | None = None
) -> list[str]:
    """What the codec did with the bundle at `meta_path`, in a few lines for people (dedup:
    layers split or kept as they are, and why) in `language` (default: the environment's);
    nothing for plain bundles."""
    stats = codec_stats(meta_path)
    return stats.summary_lines(human_bytes, language) if stats else []


def codec_stats(meta_path: Path) -> DedupStats | None:
    """The dedup statistics of the bundle at `meta_path`; None for other bundles."""
    from transship.bundle.meta import META_SUFFIX

    if not meta_path.name.endswith(META_SUFFIX):
        return None
    from transship.bundle.meta import load_meta

    meta = load_meta(meta_path)
    if "dedup" not in meta.codec_data:
        return None
    from transship.bundle.dedup_codec import bundle_stats

    return bundle_stats(meta)
