"""English messages: the reference catalogue, merged from every ``<area>_en.py`` module."""

from transship.i18n_catalog import merged_messages

MESSAGES: dict[str, str] = merged_messages("en")
