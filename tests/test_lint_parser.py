"""Dockerfile parsing, variable substitution, shell splitting and stage resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transship.slim.lint import lint_text
from transship.slim.lint.packages import classify
from transship.slim.lint.parser import DockerfileError, parse_dockerfile
from transship.slim.lint.shell import split_commands
from transship.slim.lint.stages import build_model
from transship.slim.lint.substitution import expand


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSSHIP_LANG", "en")


def test_continuations_join_lines_and_skip_comment_and_empty_lines() -> None:
    parsed = parse_dockerfile(
        "FROM alpine\n"
        "RUN apk add \\\n"
        "# a comment inside the instruction\n"
        "\n"
        "      curl \\   \n"
        "  jq\n"
        'CMD ["sh"]\n'
    )
    run = parsed.instructions[1]
    assert (run.keyword, run.line, run.end_line) == ("RUN", 2, 6)
    assert run.rest.split() == ["apk", "add", "curl", "jq"]
    assert run.comments == [(3, "# a comment inside the instruction")]
    assert parsed.instructions[2].json_args == ["sh"]


def test_escape_directive_changes_the_continuation_character() -> None:
    parsed = parse_dockerfile("# escape=`\nFROM alpine\nRUN echo a `\n  b \\ c\n")
    assert parsed.escape == "`"
    assert parsed.instructions[1].rest.split() == ["echo", "a", "b", "\\", "c"]
    with pytest.raises(DockerfileError, match="escape directive"):
        parse_dockerfile("# escape=x\nFROM alpine\n")


def test_directives_are_only_read_at_the_top() -> None:
    parsed = parse_dockerfile("# syntax=docker/dockerfile:1\n\n# escape=`\nFROM alpine\n")
    assert parsed.directives == {"syntax": "docker/dockerfile:1"}
    assert parsed.escape == "\\"


def test_heredocs_several_per_instruction_with_tabs_stripped_and_quotes() -> None:
    text = (
        "FROM alpine\n"
        "COPY <<one <<-'two' /etc/\n"
        "first\n"
        "one\n"
        "\tsecond $HOME\n"
        "\ttwo\n"
        "RUN <<EOF\n"
        "apk add --no-cache curl\n"
        "EOF\n"
        "USER 1000\n"
    )
    parsed = parse_dockerfile(text)
    copy, run, user = parsed.instructions[1:]
    assert [(d.name, d.body, d.strip_tabs, d.quoted) for d in copy.heredocs] == [
        ("one", "first\n", False, False),
        ("two", "second $HOME\n", True, True),
    ]
    assert (copy.line, copy.end_line) == (2, 6)
    assert run.heredocs[0].body == "apk add --no-cache curl\n" and run.end_line == 9
    assert (user.keyword, user.line) == ("USER", 10)


def test_heredoc_markers_inside_quotes_or_arithmetic_are_not_heredocs() -> None:
    parsed = parse_dockerfile('FROM alpine\nRUN echo "<<EOF" $((1<<2))\nUSER 1\n')
    assert parsed.instructions[1].heredocs == []
    assert len(parsed.instructions) == 3


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("FROM alpine\nRUN <<EOF\necho never closed\n", 2, "never closed"),
        ("FROM alpine\nFOO bar\n", 2, "unknown instruction 'FOO'"),
        ("RUN echo hi\nFROM alpine\n", 1, "before the first FROM"),
        ("ARG A=1\n", None, "no FROM"),
        ("# only a comment\n\n", None, "no instructions"),
        ("FROM alpine\nRUN\n", 2, "RUN needs at least one argument"),
        ("FROM alpine\nCOPY onlyone\n", 2, "source and a destination"),
        ("FROM alpine AS\n", 1, "FROM takes"),
        ("FROM alpine AS 1bad\n", 1, "invalid stage name"),
        ("FROM alpine AS a\nFROM alpine AS A\n", 2, "used twice"),
        ("FROM alpine\nENV LONELY\n", 2, "has no value"),
        ("FROM alpine\nONBUILD FROM x\n", 2, "ONBUILD cannot trigger"),
        ("# syntax=a\n# syntax=b\nFROM alpine\n", 2, "given twice"),
    ],
)
def test_bad_dockerfiles_give_one_clear_line(text: str, line: int | None, words: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        parse_dockerfile(text, "Dockerfile.bad")
    message = str(caught.value)
    assert words in message and "\n" not in message
    assert message.startswith(f"Dockerfile.bad:{line}: " if line else "Dockerfile.bad: ")
    assert caught.value.line == line


def test_invalid_json_form_falls_back_to_shell_form() -> None:
    parsed = parse_dockerfile('FROM alpine\nCMD ["sh", oops]\nRUN ["apk", "add", "jq"]\n')
    assert parsed.instructions[1].json_args is None
    assert parsed.instructions[2].json_args == ["apk", "add", "jq"]


def test_flags_are_split_off() -> None:
    parsed = parse_dockerfile(
        "FROM --platform=$BUILDPLATFORM golang AS b\n"
        "RUN --mount=type=cache,target=/root/.cache --network=none go build\n"
        'COPY --from=b --chown="app:app" /out /out\n'
    )
    assert parsed.instructions[0].flags == {"platform": ["$BUILDPLATFORM"]}
    run = parsed.instructions[1]
    assert run.flags == {"mount": ["type=cache,target=/root/.cache"], "network": ["none"]}
    assert run.rest == "go build"
    assert parsed.instructions[2].flag("chown") == "app:app"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$A/${A}", "x/x"),
        ("${UNSET:-fallback}", "fallback"),
        ("${UNSET-fallback}", "fallback"),
        ("${A:+yes}${UNSET:+no}", "yes"),
        ("${V%.*} ${V%%.*} ${V#*.} ${V##*.}", "1.2 1 2.3 3"),
        ("'$A' \\$A", "'$A' \\$A"),
        ("$FROM_BASE_IMAGE ${FROM_BASE_IMAGE:-x}", "$FROM_BASE_IMAGE ${FROM_BASE_IMAGE:-x}"),
    ],
)
def test_substitution(text: str, expected: str) -> None:
    assert expand(text, {"A": "x", "V": "1.2.3", "UNSET": None}) == expected


def test_strict_substitution_empties_unknown_variables() -> None:
    assert expand("img:${TAG:-latest}$NOPE", {}, strict=True) == "img:latest"


def test_shell_splitting_handles_operators_quotes_wrappers_and_sh_c() -> None:
    script = (
        "set -eux; if [ -f /x ]; then sudo -E DEBIAN_FRONTEND=noninteractive apt-get install -y "
        "'lib foo' >/dev/null 2>&1; fi && sh -c \"pip install --no-cache-dir a && echo ok\" "
        "| tee /log # trailing comment && rm -rf /\n"
        "for p in a b; do echo $p; done"
    )
    argvs = [command.argv for command in split_commands(script)]
    assert argvs == [
        ["set", "-eux"],
        ["[", "-f", "/x", "]"],
        ["apt-get", "install", "-y", "lib foo"],
        ["pip", "install", "--no-cache-dir", "a"],
        ["echo", "ok"],
        ["tee", "/log"],
        ["echo", "$p"],
    ]
    install = split_commands(script)[2]
    assert install.assignments == {"DEBIAN_FRONTEND": "noninteractive"}
    assert [(r.operator, r.target) for r in install.redirects] == [(">", "/dev/null"), (">&", "1")]


def test_package_commands_are_recognised() -> None:
    def package(text: str):
        return classify(split_commands(text)[0])

    apt = package(
        "apt-get -y -o Dpkg::Options::=--force-confold install --no-install-recommends gcc=4:12 libc6:amd64"
    )
    assert (apt.family, apt.action, apt.packages) == ("apt", "install", ["gcc", "libc6"])
    assert apt.has_option("--no-install-recommends")
    apk = package("apk add --no-cache --virtual .deps gcc musl-dev")
    assert apk.packages == ["gcc", "musl-dev"] and apk.option_values("--virtual") == [".deps"]
    pip = package("python3 -m pip install -r requirements.txt debugpy==1.8 .")
    assert (pip.family, pip.packages) == ("pip", ["debugpy"])
    assert package("yarn").action == "install"
    assert package("dnf clean all").action == "clean"
    assert package("npm cache clean --force").action == "clean"
    assert package("ls -la") is None


def test_stages_scope_args_and_env_like_buildkit() -> None:
    text = (
        "ARG BASE=debian:12-slim\n"
        "ARG VERSION=1.0\n"
        "FROM ${BASE} AS base\n"
        "ENV APP_HOME=/srv/app\n"
        "ARG VERSION\n"
        "ARG LOCAL=x\n"
        "WORKDIR $APP_HOME\n"
        "RUN echo $VERSION $LOCAL $APP_HOME\n"
        "FROM base AS child\n"
        "WORKDIR sub\n"
        "RUN echo $VERSION $LOCAL $APP_HOME\n"
    )
    model = build_model(parse_dockerfile(text), {"VERSION": "2.0"})
    base, child = model.stages
    assert base.base == "debian:12-slim" and child.parent is base
    assert base.steps[-1].text == "echo 2.0 x /srv/app"
    # ARG does not cross into a child stage, ENV does; WORKDIR carries over and nests.
    assert child.steps[-1].text == "echo $VERSION $LOCAL /srv/app"
    assert child.steps[-1].workdir == "/srv/app/sub"
    assert model.target is child and [s.label for s in model.shipped] == ["base", "child"]
    assert child.external_base == "debian:12-slim"


def test_target_selects_the_shipped_stage_and_unknown_target_is_an_error() -> None:
    parsed = parse_dockerfile("FROM a AS one\nFROM b AS two\n")
    assert build_model(parsed, target="one").target.name == "one"
    with pytest.raises(DockerfileError, match="no stage named 'three'"):
        build_model(parsed, target="three")


def test_run_heredoc_scripts_are_read_as_shell_but_other_interpreters_are_not() -> None:
    text = (
        "FROM alpine\n"
        "RUN <<EOF\napk add curl\nEOF\n"
        "RUN <<EOF python3\nimport os\nEOF\n"
        "RUN <<EOF\n#!/usr/bin/env python3\nprint('apk add x')\nEOF\n"
        "RUN bash <<EOF\napk add jq\nEOF\n"
        'SHELL ["pwsh", "-Command"]\n'
        "RUN Write-Host hi\n"
    )
    steps = [s for s in build_model(parse_dockerfile(text)).target.steps if s.keyword == "RUN"]
    assert [c.argv for c in steps[0].commands] == [["apk", "add", "curl"]]
    assert steps[1].commands == [] and not steps[1].shell_analysed
    assert steps[2].commands == []
    assert ["apk", "add", "jq"] in [c.argv for c in steps[3].commands]
    assert not steps[4].shell_analysed


_CORPUS_TEXTS = [
    path.read_text()
    for path in sorted((Path(__file__).parent / "lint_corpus").glob("*/*.Dockerfile"))
]
_FRAGMENTS = [
    "RUN",
    "COPY x",
    "FROM",
    "RUN <<EOF",
    "EOF",
    "\\",
    "RUN rm -rf $",
    'RUN ["',
    "FROM a AS b",
    "WORKDIR",
    "RUN cd",
    "RUN chown -R",
    "RUN mv",
    "RUN curl -o",
    "RUN tar -C",
    "ARG",
    "ENV",
]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mangled_dockerfiles_lint_or_give_a_parse_error_never_a_crash(data: st.DataObject) -> None:
    lines = data.draw(st.sampled_from(_CORPUS_TEXTS)).split("\n")
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "insert", "garble", "truncate"]))
        if action == "delete" and len(lines) > 1:
            del lines[index]
        elif action == "insert":
            lines.insert(index, data.draw(st.sampled_from(_FRAGMENTS)))
        elif action == "garble" and lines[index]:
            cut = data.draw(st.integers(0, len(lines[index])))
            char = data.draw(st.sampled_from(list("\\'\"$`{}()<>|&;#*")))
            lines[index] = lines[index][:cut] + char + lines[index][cut:]
        elif action == "truncate":
            lines = lines[: index + 1]
    try:
        findings = lint_text("\n".join(lines))
    except DockerfileError as error:
        assert "\n" not in str(error)
    else:
        assert all(f.line >= 1 and f.end_line >= f.line for f in findings)


def test_a_lone_continuation_line_is_nothing() -> None:
    parsed = parse_dockerfile("FROM alpine\n\\\n\nRUN echo hi\n")
    assert [i.keyword for i in parsed.instructions] == ["FROM", "RUN"]
