"""The Dockerfile corpus: each rule file gives exactly the findings its `# expect:` comments
name, and each clean file gives none (see tests/lint_corpus/README.md)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from transship.slim.lint import RULES, LintOptions, lint_path, parse_lint_settings

CORPUS = Path(__file__).parent / "lint_corpus"
RULE_FILES = sorted((CORPUS / "rules").glob("*.Dockerfile"))
CLEAN_FILES = sorted((CORPUS / "clean").glob("*.Dockerfile"))
_EXPECT_RE = re.compile(r"^\s*#\s*expect:\s*(.+?)\s*$")


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSSHIP_LANG", "en")


def expected_findings(path: Path) -> Counter[tuple[int, str]]:
    """(line, rule) pairs from `# expect:` comments, each at the next instruction's line."""
    expected: Counter[tuple[int, str]] = Counter()
    pending: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECT_RE.match(line)
        if match:
            pending += [rule.strip() for rule in match.group(1).split(",")]
        elif line.strip() and not line.strip().startswith("#") and pending:
            expected.update((number, rule) for rule in pending)
            pending = []
    assert not pending, f"{path.name}: '# expect:' with no instruction after it"
    return expected


def lint_corpus_file(path: Path):
    config = path.with_suffix(".yaml")
    settings = parse_lint_settings(config.read_text(), str(config)) if config.exists() else None
    options = LintOptions(settings=settings) if settings else LintOptions()
    return lint_path(path, options)


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_rule_file_gives_exactly_the_expected_findings(path: Path) -> None:
    findings = lint_corpus_file(path)
    actual = Counter((finding.line, finding.rule_id) for finding in findings)
    expected = expected_findings(path)
    assert expected, f"{path.name} expects nothing: it belongs in clean/"
    assert actual == expected, "\n".join(f"{f.line}: {f.rule_id} {f.message}" for f in findings)
    for finding in findings:
        assert finding.message and finding.fix
        assert "{" not in finding.message + finding.fix, "unfilled template field"


@pytest.mark.parametrize("path", CLEAN_FILES, ids=[p.name for p in CLEAN_FILES])
def test_clean_file_gives_no_finding(path: Path) -> None:
    findings = lint_corpus_file(path)
    assert findings == [], "\n".join(f"{f.line}: {f.rule_id} {f.message}" for f in findings)


def test_corpus_exercises_every_rule() -> None:
    exercised = {rule for path in RULE_FILES for _, rule in expected_findings(path)}
    assert exercised == set(RULES)


def test_corpus_is_big_enough_to_mean_something() -> None:
    assert len(RULE_FILES) >= len(RULES) and len(CLEAN_FILES) >= 5
