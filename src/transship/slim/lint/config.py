"""The ``lint:`` section of transship.yaml.

.. code-block:: yaml

    lint:
      approved_bases: ["debian:12-slim", "gcr.io/distroless/*", "registry.example.com/base/*"]
      disable: [SZ005]                  # rule ids or names
      severity: {SZ011: warning, package-cache-kept: error}

Other top-level sections belong to other commands and are ignored here.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from transship.errors import ConfigError
from transship.i18n import t
from transship.slim.lint.rules import RULES, Severity

DEFAULT_CONFIG_NAME = "transship.yaml"


def rule_id_for(name: str) -> str | None:
    """A rule's id from its id or name, any case (``sz002``, ``package-cache-kept``)."""
    wanted = name.strip()
    for rule in RULES.values():
        if wanted.upper() == rule.id or wanted.lower() == rule.name:
            return rule.id
    return None


def _known_rule(name: str) -> str:
    rule_id = rule_id_for(name)
    if rule_id is None:
        raise ValueError(
            t("lint.config.unknown_rule", name=name, first=min(RULES), last=max(RULES))
        )
    return rule_id


class LintSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approved_bases: list[str] = []
    disable: list[str] = []
    severity: dict[str, Severity] = {}

    @field_validator("approved_bases")
    @classmethod
    def _bases_not_empty(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip():
                raise ValueError(t("lint.config.empty_base"))
        return [item.strip() for item in value]

    @field_validator("disable")
    @classmethod
    def _disable_known(cls, value: list[str]) -> list[str]:
        return [_known_rule(name) for name in value]

    @field_validator("severity")
    @classmethod
    def _severity_known(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        return {_known_rule(name): level for name, level in value.items()}

    def severity_of(self, rule_id: str) -> Severity:
        return self.severity.get(rule_id, RULES[rule_id].severity)


def load_lint_settings(path: Path | None) -> tuple[LintSettings, Path | None]:
    """Settings from `path`, or from ./transship.yaml when present; raises ConfigError."""
    if path is None:
        default = Path(DEFAULT_CONFIG_NAME)
        if not default.is_file():
            return LintSettings(), None
        path = default
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"{path}: {t('lint.config.unreadable', reason=reason)}") from error
    return parse_lint_settings(text, str(path)), path


def parse_lint_settings(text: str, name: str) -> LintSettings:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(
            f"{name}: {t('lint.config.bad_yaml', where=where, problem=problem)}"
        ) from error
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: {t('lint.config.not_mapping')}")
    section = data.get("lint")
    if section is None:
        return LintSettings()
    if not isinstance(section, dict):
        raise ConfigError(f"{name}: lint: {t('lint.config.section_not_mapping')}")
    try:
        return LintSettings.model_validate(section)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in ("lint", *first["loc"]))
        message = str(first["msg"]).removeprefix("Value error, ")
        more = error.error_count() - 1
        suffix = t("lint.config.more_errors", count=more) if more else ""
        raise ConfigError(f"{name}: {key}: {message}{suffix}") from error
