"""`transship lint`: size-focused checks of Dockerfiles.

Parse (parser.py) → resolve stages and variables (stages.py) → run the rules (rules/) →
apply config and inline comments (engine.py) → render as text, JSON or SARIF.
Rules are listed with their reasons in docs/lint-rules.md.
"""

from transship.slim.lint.config import LintSettings, load_lint_settings, parse_lint_settings
from transship.slim.lint.engine import Finding, LintOptions, lint_path, lint_text, read_dockerfile
from transship.slim.lint.parser import DockerfileError, parse_dockerfile
from transship.slim.lint.report import FileReport, LintReport, render_json, render_text
from transship.slim.lint.rules import RULES, Severity
from transship.slim.lint.sarif import render_sarif

__all__ = [
    "RULES",
    "DockerfileError",
    "FileReport",
    "Finding",
    "LintOptions",
    "LintReport",
    "LintSettings",
    "Severity",
    "lint_path",
    "lint_text",
    "load_lint_settings",
    "parse_dockerfile",
    "parse_lint_settings",
    "read_dockerfile",
    "render_json",
    "render_sarif",
    "render_text",
]
