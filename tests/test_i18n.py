"""The message catalogues: same keys and fields in every language, and the language switch."""

from __future__ import annotations

import pytest

from transship.i18n import LANGUAGES, catalog, current_language, t, template_fields, translate


def test_every_language_has_every_key_with_the_same_fields() -> None:
    english = catalog("en")
    assert english, "the English catalogue is empty"
    for language in LANGUAGES:
        messages = catalog(language)
        assert sorted(set(english) ^ set(messages)) == [], language
        differing = [
            k for k in english if template_fields(english[k]) != template_fields(messages[k])
        ]
        assert differing == [], language


def test_every_template_formats() -> None:
    for language in LANGUAGES:
        for key, template in catalog(language).items():
            fields = dict.fromkeys(template_fields(template), "x")
            assert translate(key, language, **fields), key


@pytest.mark.parametrize(
    ("environment", "language"),
    [
        ({}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_TW.UTF-8"}, "zh"),
        ({"LANG": "zh_CN.UTF-8", "TRANSSHIP_LANG": "en"}, "en"),
        ({"LC_ALL": "C", "TRANSSHIP_LANG": "zh"}, "zh"),
    ],
)
def test_language_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], language: str
) -> None:
    for name in ("TRANSSHIP_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert current_language() == language


def test_t_uses_the_current_language_and_fills_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSSHIP_LANG", "en")
    assert t("lint.text.clean", files=3) == "no findings in 3 files"
    monkeypatch.setenv("TRANSSHIP_LANG", "zh")
    assert t("lint.text.clean", files=3) == "3 个文件中没有发现问题"


def test_unknown_key_is_returned_as_is_and_unknown_language_is_refused() -> None:
    assert translate("no.such.key", "zh") == "no.such.key"
    with pytest.raises(ValueError):
        catalog("xx")
