"""Rules that depend on the build context, config, inline comments, build args and --target."""

from __future__ import annotations

from pathlib import Path

import pytest

from transship.errors import ConfigError
from transship.slim.lint import (
    LintOptions,
    LintSettings,
    Severity,
    lint_path,
    lint_text,
    load_lint_settings,
    parse_lint_settings,
)
from transship.slim.lint.dockerignore import DockerIgnore
from transship.slim.lint.rules.base_image import is_approved


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSSHIP_LANG", "en")


def rules_of(findings) -> list[tuple[int, str]]:
    return [(f.line, f.rule_id) for f in findings]


def make_context(root: Path, dockerfile: str, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (root / "Dockerfile").write_text(dockerfile)
    return root / "Dockerfile"


WHOLE_COPY = "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\n"


def test_whole_context_copy_without_dockerignore_names_what_the_context_holds(
    tmp_path: Path,
) -> None:
    path = make_context(
        tmp_path, WHOLE_COPY, {".git/HEAD": "ref", "node_modules/x.js": "", "app.py": ""}
    )
    findings = lint_path(path)
    assert rules_of(findings) == [(3, "SZ006")]
    assert ".git/" in findings[0].message and "node_modules/" in findings[0].message


def test_dockerignore_that_misses_entries_is_reported_and_a_complete_one_is_not(
    tmp_path: Path,
) -> None:
    path = make_context(tmp_path, WHOLE_COPY, {".git/HEAD": "", "build.log": "", "app.py": ""})
    (tmp_path / ".dockerignore").write_text("*.log\n")
    findings = lint_path(path)
    assert rules_of(findings) == [(3, "SZ007")]
    assert ".git/" in findings[0].message and "build.log" not in findings[0].message
    (tmp_path / ".dockerignore").write_text("*.log\n.git\n")
    assert lint_path(path) == []


def test_dockerfile_specific_ignore_file_wins_over_the_context_one(tmp_path: Path) -> None:
    path = make_context(tmp_path, WHOLE_COPY, {".git/HEAD": "", "app.py": ""})
    (tmp_path / ".dockerignore").write_text(".git\n")
    (tmp_path / "Dockerfile.dockerignore").write_text("*.log\n")
    assert rules_of(lint_path(path)) == [(3, "SZ007")]


def test_deleting_part_of_a_copied_tree_is_checked_against_the_context(tmp_path: Path) -> None:
    dockerfile = WHOLE_COPY + "RUN rm -rf /app/tests\nENV A=1\nRUN rm -rf /app/docs\n"
    path = make_context(tmp_path, dockerfile, {"tests/test_x.py": "", "app.py": ""})
    (tmp_path / ".dockerignore").write_text(".git\n")
    # tests/ came with COPY . and is deleted later; docs/ was never in the context.
    assert rules_of(lint_path(path)) == [(4, "SZ003")]


def test_without_a_known_context_whole_copies_are_not_judged() -> None:
    assert lint_text(WHOLE_COPY) == []


def test_config_disables_rules_and_changes_severity() -> None:
    text = "FROM debian:12-slim\nRUN apt-get update && apt-get install -y curl\n"
    assert [f.rule_id for f in lint_text(text)] == ["SZ002", "SZ010"]
    settings = parse_lint_settings(
        "lint:\n  disable: [recommended-packages]\n  severity: {sz002: error}\n", "t.yaml"
    )
    findings = lint_text(text, options=LintOptions(settings=settings))
    assert [(f.rule_id, f.severity) for f in findings] == [("SZ002", Severity.ERROR)]


def test_inline_comments_disable_by_id_name_or_all() -> None:
    text = (
        "FROM debian:12-slim\n"
        "# transship-lint disable=package-cache-kept\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends curl\n"
        "\n"
        "# transship-lint disable=SZ002\n"
        "\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends jq\n"
        "EXPOSE 22\n"
        "RUN pip install flask # transship-lint disable=all\n"
    )
    # A blank line cuts the comment off from the instruction below it.
    assert rules_of(lint_text(text)) == [(3, "SZ005"), (7, "SZ002"), (8, "SZ009")]
    assert rules_of(lint_text("# transship-lint disable-file=all\n" + text)) == []


def test_approved_bases_check_the_base_of_the_shipped_stage() -> None:
    settings = LintSettings(approved_bases=["debian:12-slim", "gcr.io/distroless/*"])
    options = LintOptions(settings=settings)
    text = "FROM golang:1.22 AS build\nRUN echo\nFROM gcr.io/distroless/static-debian12\n"
    assert lint_text(text, options=options) == []
    findings = lint_text("FROM ubuntu:24.04\n", options=options)
    assert rules_of(findings) == [(1, "SZ013")]
    assert "ubuntu:24.04" in findings[0].message and "debian:12-slim" in findings[0].message
    assert lint_text("FROM scratch\n", options=options) == []


@pytest.mark.parametrize(
    ("image", "patterns", "approved"),
    [
        ("debian:12-slim", ["docker.io/library/debian:12-slim"], True),
        ("docker.io/library/debian:12-slim", ["debian:12-slim"], True),
        ("debian:12", ["debian"], True),
        ("debian@sha256:" + "a" * 64, ["debian"], True),
        ("debian:12", ["debian:12-slim"], False),
        ("registry.example.com/base/jre:21", ["registry.example.com/base/*"], True),
        ("evil.example.com/base/jre:21", ["registry.example.com/base/*"], False),
        ("library/ubuntu", ["debian*"], False),
    ],
)
def test_base_image_matching(image: str, patterns: list[str], approved: bool) -> None:
    assert is_approved(image, patterns) is approved


def test_build_args_decide_the_base_image() -> None:
    text = "ARG VARIANT=-slim\nFROM python:3.12${VARIANT}\n"
    assert lint_text(text) == []
    findings = lint_text(text, options=LintOptions(build_args={"VARIANT": ""}))
    assert rules_of(findings) == [(2, "SZ012")]


def test_target_makes_another_stage_the_shipped_one() -> None:
    text = (
        "FROM debian:12-slim AS debug\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends gdb && rm -rf /var/lib/apt/lists/*\n"
        "FROM debian:12-slim\n"
        'CMD ["app"]\n'
    )
    assert lint_text(text) == []
    assert rules_of(lint_text(text, options=LintOptions(target="debug"))) == [(2, "SZ009")]


def test_dockerignore_patterns_match_like_docker() -> None:
    ignore = DockerIgnore(
        ["# comment", ".git", "**/node_modules", "*.log", "!keep.log", "/build/", "tmp?"]
    )
    excluded = [
        ".git",
        ".git/HEAD",
        "node_modules",
        "a/b/node_modules/x",
        "x.log",
        "build/x",
        "tmp1",
    ]
    kept = ["keep.log", "app.py", "sub/x.log", "tmp12", "src/build"]
    assert [p for p in excluded if not ignore.excludes(p)] == []
    assert [p for p in kept if ignore.excludes(p)] == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("lint: [a, b]\n", "t.yaml: lint: expected a mapping"),
        ("lint:\n  disable: [SZ999]\n", "t.yaml: lint.disable: unknown rule 'SZ999'"),
        (
            "lint:\n  severity: {SZ001: fatal}\n",
            "t.yaml: lint.severity.SZ001: Input should be 'error', 'warning' or 'info'",
        ),
        ("lint:\n  severity: {nope: error}\n", "t.yaml: lint.severity: unknown rule 'nope'"),
        (
            "lint:\n  approved_base: [debian]\n",
            "t.yaml: lint.approved_base: Extra inputs are not permitted",
        ),
        (
            "lint:\n  approved_bases: debian\n",
            "t.yaml: lint.approved_bases: Input should be a valid list",
        ),
        ("lint: {disable: [\n", "t.yaml: not valid YAML"),
        ("- just a list\n", "t.yaml: expected a mapping of sections"),
    ],
)
def test_bad_config_gives_one_line_naming_file_key_and_problem(content: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_lint_settings(content, "t.yaml")
    message = str(caught.value)
    assert message.startswith(words), message
    assert "\n" not in message


def test_config_file_default_and_other_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_lint_settings(None) == (LintSettings(), None)
    (tmp_path / "transship.yaml").write_text("registries: {}\nlint:\n  disable: [SZ005]\n")
    settings, path = load_lint_settings(None)
    assert settings.disable == ["SZ005"] and path == Path("transship.yaml")
    with pytest.raises(ConfigError, match="missing.yaml: cannot read the config file"):
        load_lint_settings(tmp_path / "missing.yaml")


def test_rules_doc_describes_every_rule() -> None:
    from transship.slim.lint import RULES

    doc = (Path(__file__).parent.parent / "docs" / "lint-rules.md").read_text()
    for rule in RULES.values():
        assert f"### {rule.id}\n" in doc and f"**{rule.name}**" in doc, rule.id
        assert f"| [{rule.id}](#{rule.id.lower()}) | {rule.name} | {rule.severity.value}" in doc
