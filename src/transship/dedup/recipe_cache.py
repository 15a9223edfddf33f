"""Checked gzip recipes remembered by layer digest, so a layer is analysed once per machine.

Proving that a gzip layer rebuilds bit for bit is the costly part of a dedup save (a
full re-encode). A layer's bytes are fixed by its digest, so the proof holds for every
later save of the same layer: the monthly full bundle after the daily ones, a save run
again after an interruption (dedup saves start over). A layer may have two: one that
re-encodes it by search (tens of bytes: what `--dedup-effort max` stores) in
`<dir>/<hex>`, one with its transcript (1.5-2.5 % of a jar layer's tar: what the other
efforts store) in `<dir>/<hex>.transcript`; each is written atomically.

A damaged or foreign file is a miss (recipes carry their own checksum). A recipe that
does not rebuild its layer can only come from someone writing into this folder; `load`
would then refuse the layer on its digest, never push a wrong one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from transship.gzip_rebuild import Recipe, RecipeError, TranscriptEncoder
from transship.oci.digest import hex_of

_ENV_DIR = "XDG_CACHE_HOME"


def default_recipe_dir() -> Path:
    """`$XDG_CACHE_HOME/transship/gzip-recipes`, by default under ~/.cache."""
    base = os.environ.get(_ENV_DIR) or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "transship" / "gzip-recipes"


class RecipeCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hits = 0

    def get(self, digest: str, size: int, transcript: bool) -> Recipe | None:
        """The remembered recipe of that kind (with a transcript, or by search)."""
        try:
            recipe = Recipe.from_bytes(self._path(digest, transcript).read_bytes())
        except (OSError, RecipeError):
            return None
        if recipe.compressed_size != size or _has_transcript(recipe) != transcript:
            return None
        self.hits += 1
        return recipe

    def put(self, digest: str, recipe: Recipe) -> None:
        """Remember a checked recipe; a cache that cannot be written is skipped."""
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(recipe.to_bytes())
                os.replace(tmp, self._path(digest, _has_transcript(recipe)))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def _path(self, digest: str, transcript: bool) -> Path:
        return self.directory / (hex_of(digest) + (".transcript" if transcript else ""))


def _has_transcript(recipe: Recipe) -> bool:
    return any(isinstance(m.encoder, TranscriptEncoder) for m in recipe.members)
