"""SARIF 2.1.0 output, for CI code-scanning (GitHub, GitLab, Azure DevOps).

One run, one tool (``transship``) that lists every rule with its title, description, fix
and configured level; one result per finding, located by file and line. Files that could
not be linted appear as error notifications of the invocation, which is then marked
unsuccessful.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from transship import __version__
from transship.i18n import t
from transship.slim.lint.config import LintSettings
from transship.slim.lint.report import LintReport
from transship.slim.lint.rules import Severity, iter_rules

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def artifact_uri(path: str, base: Path | None = None) -> str:
    """A relative URI for files under `base` (the working directory), else a file:// URI."""
    if path == "-":
        return "stdin"
    base = (base or Path.cwd()).resolve()
    absolute = Path(path).resolve()
    try:
        relative = absolute.relative_to(base)
    except ValueError:
        return absolute.as_uri()
    return quote(PurePosixPath(*relative.parts).as_posix() if relative.parts else path)


def render_sarif(report: LintReport, settings: LintSettings | None = None) -> str:
    settings = settings or LintSettings()
    rules = list(iter_rules())
    rule_index = {rule.id: index for index, rule in enumerate(rules)}
    descriptors = [
        {
            "id": rule.id,
            "name": rule.name,
            "shortDescription": {"text": rule.title},
            "fullDescription": {"text": rule.summary},
            "help": {"text": f"{rule.summary} (docs/lint-rules.md#{rule.id.lower()})"},
            "defaultConfiguration": {
                "level": _LEVELS[settings.severity_of(rule.id)],
                "enabled": rule.id not in settings.disable,
            },
            "properties": {"tags": ["dockerfile", "image-size"]},
        }
        for rule in rules
    ]
    results = [
        {
            "ruleId": finding.rule_id,
            "ruleIndex": rule_index[finding.rule_id],
            "level": _LEVELS[finding.severity],
            "message": {"text": f"{finding.message}. {t('lint.text.fix', fix=finding.fix)}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": artifact_uri(finding.path)},
                        "region": {"startLine": finding.line, "endLine": finding.end_line},
                    }
                }
            ],
        }
        for finding in report.findings
    ]
    notifications = [
        {
            "level": "error",
            "message": {"text": file_report.error or ""},
            "locations": [
                {"physicalLocation": {"artifactLocation": {"uri": artifact_uri(file_report.path)}}}
            ],
        }
        for file_report in report.errors
    ]
    run = {
        "tool": {
            "driver": {
                "name": "transship",
                "semanticVersion": __version__,
                "rules": descriptors,
            }
        },
        "invocations": [
            {
                "executionSuccessful": not notifications,
                "toolExecutionNotifications": notifications,
                "workingDirectory": {"uri": Path.cwd().resolve().as_uri() + "/"},
            }
        ],
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    document = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
