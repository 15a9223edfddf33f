"""`transship lint` on the command line: formats, exit codes, errors, languages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from transship.cli.main import app
from transship.slim.lint import RULES

runner = CliRunner()

NOISY = "FROM debian:12-slim\nRUN apt-get update && apt-get install -y --no-install-recommends curl\n"  # SZ002
INFO_ONLY = "FROM alpine:3.20\nRUN echo a\nRUN echo b\n"  # SZ005 (info)
CLEAN = "FROM alpine:3.20\nRUN apk add --no-cache curl\n"


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSSHIP_LANG", "en")


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "noisy.Dockerfile").write_text(NOISY)
    (tmp_path / "info.Dockerfile").write_text(INFO_ONLY)
    (tmp_path / "clean.Dockerfile").write_text(CLEAN)
    (tmp_path / "bad.Dockerfile").write_text("FROM alpine\nFOO bar\n")
    return tmp_path


def lint(*args: str, stdin: str | None = None):
    return runner.invoke(app, ["lint", *args], input=stdin)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["clean.Dockerfile"], 0),
        (["noisy.Dockerfile"], 1),
        (["noisy.Dockerfile", "--fail-on", "error"], 0),
        (["info.Dockerfile"], 0),
        (["info.Dockerfile", "--fail-on", "info"], 1),
        (["noisy.Dockerfile", "--fail-on", "none"], 0),
        (["clean.Dockerfile", "bad.Dockerfile"], 2),
    ],
)
def test_exit_codes(files: Path, args: list[str], code: int) -> None:
    assert lint(*args).exit_code == code


def test_text_output_names_file_line_rule_and_fix(files: Path) -> None:
    result = lint("noisy.Dockerfile", "clean.Dockerfile")
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "noisy.Dockerfile:2: SZ002 [warning] apt-get leaves the apt package lists"
    )
    assert (
        lines[1].strip().startswith("fix: end the same RUN with '&& rm -rf /var/lib/apt/lists/*'")
    )
    assert lines[-1] == "1 findings (0 errors, 1 warnings, 0 info) in 2 files"


def test_json_output(files: Path) -> None:
    result = lint("--json", "noisy.Dockerfile", "info.Dockerfile", "--fail-on", "none")
    data = json.loads(result.stdout)
    assert [(f["path"], f["line"], f["rule_id"], f["severity"]) for f in data["findings"]] == [
        ("noisy.Dockerfile", 2, "SZ002", "warning"),
        ("info.Dockerfile", 2, "SZ005", "info"),
    ]
    first = data["findings"][0]
    assert first["rule_name"] == "package-cache-kept" and first["fix"] and first["end_line"] == 2
    assert data["summary"] == {"files": 2, "findings": 2, "error": 0, "warning": 1, "info": 1}
    assert data["errors"] == []


def test_sarif_output_is_valid_sarif_2_1_0(files: Path) -> None:
    model = pytest.importorskip("pydantic_sarif.model")
    out = files / "report.sarif"
    result = lint(
        "--sarif", "-o", str(out), "noisy.Dockerfile", "info.Dockerfile", "bad.Dockerfile"
    )
    assert result.exit_code == 2 and result.stdout == ""
    document = json.loads(out.read_text())
    model.StaticAnalysisResultsFormatSarifVersion210JsonSchema.model_validate(document)
    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == sorted(RULES)
    results = [
        (
            r["ruleId"],
            rules[r["ruleIndex"]]["id"],
            r["level"],
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for r in run["results"]
    ]
    assert results == [
        ("SZ002", "SZ002", "warning", "noisy.Dockerfile", 2),
        ("SZ005", "SZ005", "note", "info.Dockerfile", 2),
    ]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert (
        "unknown instruction 'FOO'"
        in invocation["toolExecutionNotifications"][0]["message"]["text"]
    )


def test_sarif_rule_levels_follow_the_config(files: Path) -> None:
    (files / "transship.yaml").write_text("lint:\n  severity: {SZ005: error}\n  disable: [SZ002]\n")
    document = json.loads(lint("-f", "sarif", "info.Dockerfile", "noisy.Dockerfile").stdout)
    rules = {rule["id"]: rule for rule in document["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["SZ005"]["defaultConfiguration"]["level"] == "error"
    assert rules["SZ002"]["defaultConfiguration"]["enabled"] is False
    assert [r["level"] for r in document["runs"][0]["results"]] == ["error"]


def test_a_bad_dockerfile_is_one_line_and_the_others_are_still_linted(files: Path) -> None:
    result = lint("bad.Dockerfile", "noisy.Dockerfile", "missing.Dockerfile")
    assert result.exit_code == 2
    assert "noisy.Dockerfile:2: SZ002" in result.stdout
    errors = result.stderr.strip().splitlines()
    assert errors[0] == "error: bad.Dockerfile:2: unknown instruction 'FOO'"
    assert errors[1].startswith("error: missing.Dockerfile: cannot read: No such file")
    assert "Traceback" not in result.stderr


def test_bad_config_is_one_line(files: Path) -> None:
    (files / "cfg.yaml").write_text("lint:\n  disable: [NOPE]\n")
    result = lint("-c", "cfg.yaml", "clean.Dockerfile")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: cfg.yaml: lint.disable: unknown rule 'NOPE' "
        "(rule ids run from SZ001 to SZ013; names work too)"
    )


def test_standard_input_and_build_args(files: Path) -> None:
    text = "ARG BASE=alpine:3.20\nFROM $BASE\n"
    assert lint("-", stdin=text).exit_code == 0
    result = lint("-", "--build-arg", "BASE=golang:1.22", stdin=text)
    assert result.exit_code == 1 and "-:2: SZ012" in result.stdout
    assert lint("-", "--build-arg", "novalue", stdin=text).exit_code == 2


def test_chinese_messages(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSSHIP_LANG", "zh_CN.UTF-8")
    result = lint("noisy.Dockerfile")
    assert "SZ002 [警告]" in result.stdout and "修复：" in result.stdout
    assert "个问题" in result.stdout.splitlines()[-1]


def test_help_in_chinese_from_the_environment() -> None:
    env = {**os.environ, "TRANSSHIP_LANG": "", "LC_ALL": "", "LANG": "zh_CN.UTF-8"}
    result = subprocess.run(
        [sys.executable, "-m", "transship", "lint", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "检查 Dockerfile" in result.stdout
