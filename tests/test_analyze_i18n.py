"""Every message analyze and offload build show exists in English and Chinese, with the
same fields."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from transship.i18n import template_fields
from transship.i18n_catalog.analyze_en import MESSAGES as EN
from transship.i18n_catalog.analyze_zh import MESSAGES as ZH
from transship.slim.analyze.model import ChangedFile, HotColdLayer, WasteReason

SRC = Path(__file__).resolve().parent.parent / "src" / "transship"
SOURCES = [
    *sorted((SRC / "slim" / "analyze").glob("*.py")),
    SRC / "cli" / "analyze.py",
    SRC / "cli" / "offload_build.py",
]


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        keys.update(
            re.findall(r"""\bt\(\s*["']((?:analyze|offload\.build)\.[a-z0-9_.]+)["']""", text)
        )
    keys.update(f"analyze.reason.{r}" for r in get_args(WasteReason))
    for model in (ChangedFile, HotColdLayer):
        keys.update(
            f"analyze.status.{s}" for s in get_args(model.model_fields["status"].annotation)
        )
    return keys


def test_every_used_key_is_in_both_catalogues() -> None:
    keys = used_keys()
    assert len(keys) > 60
    assert keys - EN.keys() == set()
    assert keys - ZH.keys() == set()


def test_catalogues_agree() -> None:
    assert EN.keys() == ZH.keys()
    for key in EN:
        assert template_fields(EN[key]) == template_fields(ZH[key]), key
