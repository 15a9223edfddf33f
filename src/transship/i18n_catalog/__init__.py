"""Message catalogues for transship.i18n.

Each area keeps its messages in modules of its own, one per language:
``<area>_en.py`` and ``<area>_zh.py``, each with a ``MESSAGES`` dict (``lint_en.py``,
``offload_zh.py``…). ``en.py`` and ``zh.py`` merge every such module of their language, so
adding an area means adding its two files, nothing else. A key defined by two modules is
an error, so areas cannot silently overwrite each other.
"""

from __future__ import annotations

import importlib
import pkgutil


def merged_messages(language: str) -> dict[str, str]:
    """Every ``<area>_<language>`` module's MESSAGES, merged."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    suffix = f"_{language}"
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module_info.name.endswith(suffix):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for key, text in module.MESSAGES.items():
            if key in owner and owner[key] != module_info.name:
                raise ValueError(
                    f"message key {key!r} is defined in both {owner[key]} and {module_info.name}"
                )
            owner[key] = module_info.name
            merged[key] = text
    return merged
