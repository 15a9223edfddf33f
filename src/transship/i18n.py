"""A tiny message catalogue so that what transship tells a person reads in English or Chinese.

Usage::

    from transship.i18n import t
    typer.echo(t("offload.link.linked", count=3, saved="1.2 MiB"))

Messages live as plain Python dicts (``MESSAGES``) in ``transship.i18n_catalog``, one module
per area and language: ``lint_en.py`` / ``lint_zh.py``, ``offload_en.py`` / ``offload_zh.py``…;
``en.py`` and ``zh.py`` merge them. Keys are dotted names that start with the command or
module they belong to (``lint.…``, ``offload.…``). Templates use ``str.format`` fields:
``"{count} files"``.

The language is chosen per call from the environment, first one set wins:
``TRANSSHIP_LANG``, then the POSIX ``LC_ALL``, ``LC_MESSAGES``, ``LANG``.
A value starting with ``zh`` (``zh``, ``zh_CN.UTF-8``, ``zh-TW``) gives Chinese; anything else English.

To add messages: put the keys in your area's ``<area>_en.py`` and ``<area>_zh.py`` (a new
area is just two new files; tests check that both languages have the same keys and the
same ``{fields}``). A key missing from a language falls back to
English; a key missing everywhere is returned as is, so a typo shows up instead of crashing.
"""

from __future__ import annotations

import importlib
import os
import string
from functools import cache

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
_ENV_ORDER = ("TRANSSHIP_LANG", "LC_ALL", "LC_MESSAGES", "LANG")


def current_language() -> str:
    """The language to speak now, from the environment (see module docstring)."""
    for name in _ENV_ORDER:
        value = os.environ.get(name, "").strip()
        if value:
            return "zh" if value.lower().startswith("zh") else DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


@cache
def catalog(language: str) -> dict[str, str]:
    """The message dict of one language (``MESSAGES`` in ``transship.i18n_catalog.<language>``)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")
    module = importlib.import_module(f"transship.i18n_catalog.{language}")
    return module.MESSAGES


def translate(key: str, language: str, **fields: object) -> str:
    """The message `key` in `language`, with `fields` filled in."""
    template = catalog(language).get(key)
    if template is None:
        template = catalog(DEFAULT_LANGUAGE).get(key, key)
    return template.format(**fields) if fields else template


def t(key: str, /, **fields: object) -> str:
    """The message `key` in the current language, with `fields` filled in."""
    return translate(key, current_language(), **fields)


def template_fields(template: str) -> set[str]:
    """The ``{field}`` names a template uses (for checking catalogues agree)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
