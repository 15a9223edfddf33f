"""Lint results for many Dockerfiles, and their text and JSON renderings (SARIF: sarif.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from transship.i18n import t
from transship.slim.lint.engine import Finding
from transship.slim.lint.rules import Severity

JSON_FORMAT_VERSION = 1


@dataclass
class FileReport:
    """What linting one Dockerfile gave: findings, or the error that stopped it."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None


@dataclass
class LintReport:
    files: list[FileReport] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [finding for report in self.files for finding in report.findings]

    @property
    def errors(self) -> list[FileReport]:
        return [report for report in self.files if report.error is not None]

    def counts(self) -> dict[str, int]:
        counts = {severity.value: 0 for severity in Severity}
        for finding in self.findings:
            counts[finding.severity.value] += 1
        return counts

    def fails(self, threshold: Severity | None) -> bool:
        """True when a finding is at or above `threshold` (None: never)."""
        if threshold is None:
            return False
        return any(finding.severity.rank >= threshold.rank for finding in self.findings)


def render_text(report: LintReport) -> str:
    lines: list[str] = []
    for file_report in report.files:
        for finding in file_report.findings:
            lines.append(
                t(
                    "lint.text.finding",
                    path=finding.path,
                    line=finding.line,
                    rule=finding.rule_id,
                    name=finding.rule_name,
                    severity=t(f"lint.severity.{finding.severity.value}"),
                    message=finding.message,
                )
            )
            lines.append("    " + t("lint.text.fix", fix=finding.fix))
    counts = report.counts()
    checked = len(report.files) - len(report.errors)
    if report.findings:
        lines.append(
            t(
                "lint.text.summary",
                total=len(report.findings),
                errors=counts["error"],
                warnings=counts["warning"],
                infos=counts["info"],
                files=checked,
            )
        )
    else:
        lines.append(t("lint.text.clean", files=checked))
    return "\n".join(lines) + "\n"


def render_json(report: LintReport) -> str:
    data = {
        "version": JSON_FORMAT_VERSION,
        "tool": "transship lint",
        "findings": [finding.to_dict() for finding in report.findings],
        "errors": [{"path": r.path, "message": r.error} for r in report.errors],
        "summary": {
            "files": len(report.files),
            "findings": len(report.findings),
            **report.counts(),
        },
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
