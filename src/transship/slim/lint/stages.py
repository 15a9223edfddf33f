"""The build as BuildKit sees it: stages, and each step with its ARG/ENV values resolved.

Scoping follows the Dockerfile reference: ARGs before the first FROM are visible only to
FROM lines (and to a stage that re-declares them with a bare ``ARG NAME``); an ARG or ENV
declared in a stage is visible from there on; ENV wins over an ARG of the same name and is
inherited by a stage built ``FROM`` that stage, ARG is not. ``--build-arg`` values override
ARG defaults.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from transship.i18n import t
from transship.slim.lint.parser import (
    DockerfileError,
    Instruction,
    ParsedDockerfile,
    heredoc_marker,
    split_words,
)
from transship.slim.lint.shell import SHELLS, ShellCommand, split_commands
from transship.slim.lint.substitution import expand

_POSIX_SHELL = ["/bin/sh", "-c"]


@dataclass
class Step:
    """One instruction inside a stage, with what the rules need already worked out."""

    instruction: Instruction
    stage: Stage
    workdir: str  # working directory when the step runs
    variables: dict[str, str | None]  # ARG and ENV values visible to the step
    text: str = ""  # the arguments after the flags, variables substituted
    # RUN
    commands: list[ShellCommand] = field(default_factory=list)
    shell_analysed: bool = False  # False when the script is not POSIX shell (python heredoc…)
    mounts: list[dict[str, str]] = field(default_factory=list)
    # COPY / ADD
    sources: list[str] = field(default_factory=list)
    destination: str = ""

    @property
    def keyword(self) -> str:
        return self.instruction.keyword

    @property
    def line(self) -> int:
        return self.instruction.line

    def resolve(self, path: str) -> str:
        """An absolute, normalised path as seen from this step's working directory."""
        return resolve_path(self.workdir, path)


@dataclass
class Stage:
    index: int
    name: str | None
    base: str  # the FROM image (variables substituted), or the parent stage's name
    from_instruction: Instruction
    parent: Stage | None = None  # set when FROM names an earlier stage
    steps: list[Step] = field(default_factory=list)
    env: dict[str, str | None] = field(default_factory=dict)  # ENV at the end of the stage
    workdir: str = "/"
    shell: list[str] = field(default_factory=lambda: list(_POSIX_SHELL))

    @property
    def label(self) -> str:
        return self.name or str(self.index)

    def lineage(self) -> list[Stage]:
        """This stage and the stages it is built FROM, oldest first."""
        chain: list[Stage] = []
        stage: Stage | None = self
        while stage is not None:
            chain.append(stage)
            stage = stage.parent
        return chain[::-1]

    @property
    def external_base(self) -> str:
        """The image at the root of this stage's FROM chain."""
        return self.lineage()[0].base

    def steps_in_lineage(self) -> list[Step]:
        """Every step whose layer this stage's image carries, in build order."""
        return [step for stage in self.lineage() for step in stage.steps]


@dataclass
class BuildModel:
    parsed: ParsedDockerfile
    stages: list[Stage]
    target: Stage  # the stage that becomes the image (the last, or --target)
    global_args: dict[str, str | None]

    @property
    def shipped(self) -> list[Stage]:
        """Stages whose layers end up in the image: the target and what it is built FROM."""
        return self.target.lineage()

    def stage_named(self, name: str) -> Stage | None:
        lowered = name.lower()
        for stage in self.stages:
            if stage.name == lowered or str(stage.index) == name:
                return stage
        return None


def resolve_path(workdir: str, path: str) -> str:
    joined = path if path.startswith("/") else posixpath.join(workdir or "/", path)
    normalised = posixpath.normpath(joined)
    return "/" + normalised.lstrip("/") if normalised != "/" else "/"


def build_model(
    parsed: ParsedDockerfile,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
) -> BuildModel:
    """Resolve stages and variables; raises DockerfileError for an unknown --target."""
    return _ModelBuilder(parsed, dict(build_args or {})).build(target)


class _ModelBuilder:
    def __init__(self, parsed: ParsedDockerfile, build_args: dict[str, str]):
        self.parsed = parsed
        self.build_args = build_args
        self.escape = parsed.escape
        self.global_args: dict[str, str | None] = {}
        self.stages: list[Stage] = []

    def build(self, target: str | None) -> BuildModel:
        stage: Stage | None = None
        args: dict[str, str | None] = {}
        for instruction in self.parsed.instructions:
            if instruction.keyword == "FROM":
                stage = self._start_stage(instruction)
                args = {}
                continue
            if stage is None:  # ARG before the first FROM
                self._declare_args(
                    instruction, self.global_args, self.global_args, global_scope=True
                )
                continue
            self._add_step(stage, instruction, args)
        model = BuildModel(self.parsed, self.stages, self.stages[-1], self.global_args)
        if target is not None:
            chosen = model.stage_named(target)
            if chosen is None:
                raise DockerfileError(
                    self.parsed.path, None, t("lint.parse.no_target", name=target)
                )
            model.target = chosen
        return model

    def _start_stage(self, instruction: Instruction) -> Stage:
        words = split_words(instruction.rest)
        base = expand(words[0], self.global_args, escape=self.escape, strict=True)
        name = words[2].lower() if len(words) == 3 else None
        parent = next((s for s in self.stages if s.name and s.name == base.lower()), None)
        stage = Stage(len(self.stages), name, base, instruction, parent=parent)
        if parent is not None:
            stage.env = dict(parent.env)
            stage.workdir = parent.workdir
            stage.shell = list(parent.shell)
        self.stages.append(stage)
        return stage

    def _declare_args(
        self,
        instruction: Instruction,
        scope: dict[str, str | None],
        visible: Mapping[str, str | None],
        global_scope: bool = False,
    ) -> None:
        for word in split_words(instruction.rest):
            name, has_default, default = _unquote(word).partition("=")
            if name in self.build_args:
                scope[name] = self.build_args[name]
            elif has_default:
                scope[name] = expand(default, visible, escape=self.escape, strict=global_scope)
            elif not global_scope and name in self.global_args:
                scope[name] = self.global_args[name]
            else:
                scope[name] = None

    def _add_step(
        self, stage: Stage, instruction: Instruction, args: dict[str, str | None]
    ) -> None:
        variables = {**args, **stage.env}
        step = Step(instruction, stage, stage.workdir, variables)
        keyword = instruction.keyword
        if keyword != "RUN" and instruction.json_args is None:
            step.text = expand(instruction.rest, variables, escape=self.escape)
        if keyword == "ARG":
            self._declare_args(instruction, args, variables)
        elif keyword == "ENV":
            stage.env.update(_parse_env(step.text))
        elif keyword == "WORKDIR":
            stage.workdir = resolve_path(stage.workdir, _unquote(step.text))
        elif keyword == "SHELL" and instruction.json_args:
            stage.shell = list(instruction.json_args)
        elif keyword == "RUN":
            self._analyse_run(step)
        elif keyword in ("COPY", "ADD"):
            words = instruction.json_args or _shell_words(step.text)
            step.sources, step.destination = words[:-1], words[-1]
        stage.steps.append(step)

    def _analyse_run(self, step: Step) -> None:
        instruction = step.instruction
        step.mounts = [_parse_mount(value) for value in instruction.flags.get("mount", [])]
        if instruction.json_args is not None:
            step.text = " ".join(instruction.json_args)
            step.commands, step.shell_analysed = _commands_from_argv(instruction.json_args), True
            return
        step.text = expand(instruction.rest, step.variables, escape=self.escape)
        if posix_shell_name(step.stage.shell[0]) is None:
            return  # SHELL ["powershell", ...]: not ours to read
        words = split_words(instruction.rest)
        if instruction.heredocs and words and heredoc_marker(words[0]):
            # RUN <<EOF [interpreter]: the heredoc body is the script.
            interpreter = [w for w in words if heredoc_marker(w) is None]
            body = instruction.heredocs[0].body
            if _is_shell_script(interpreter, body):
                step.commands = split_commands(expand(body, step.variables, escape=self.escape))
                step.shell_analysed = True
            return
        step.commands = split_commands(step.text)
        step.shell_analysed = True
        bodies = {doc.name: doc.body for doc in instruction.heredocs}
        fed_scripts: list[ShellCommand] = []
        for command in step.commands:
            if command.name in SHELLS:  # `bash <<EOF`: the heredoc is a script too
                for redirect in command.redirects:
                    body = bodies.get(redirect.target.strip("'\""))
                    if redirect.operator.startswith("<<") and body is not None:
                        fed_scripts.extend(split_commands(expand(body, step.variables)))
        step.commands.extend(fed_scripts)


def posix_shell_name(program: str) -> str | None:
    name = posixpath.basename(program)
    return name if name in SHELLS else None


def _is_shell_script(interpreter: list[str], body: str) -> bool:
    if interpreter and posix_shell_name(interpreter[0]) is None:
        return False
    first_line = body.split("\n", 1)[0]
    if first_line.startswith("#!"):
        program = first_line[2:].split()
        if program and posixpath.basename(program[0]) == "env" and len(program) > 1:
            program = program[1:]
        return bool(program) and posix_shell_name(program[0]) is not None
    return True


def _commands_from_argv(argv: list[str]) -> list[ShellCommand]:
    if len(argv) >= 3 and posix_shell_name(argv[0]) and argv[1].startswith("-") and "c" in argv[1]:
        return split_commands(argv[2])
    return [ShellCommand(list(argv))]


def _parse_mount(value: str) -> dict[str, str]:
    fields: dict[str, str] = {"type": "bind"}
    for part in value.split(","):
        key, _, item = part.partition("=")
        key = key.strip().lower()
        if key in ("dst", "destination"):
            key = "target"
        fields[key] = item.strip()
    return fields


def _parse_env(text: str) -> dict[str, str | None]:
    words = split_words(text)
    if words and "=" not in words[0]:
        # Legacy form: ENV NAME value with spaces
        return {words[0]: text.split(None, 1)[1].strip() if len(words) > 1 else ""}
    values: dict[str, str | None] = {}
    for word in words:
        name, _, value = word.partition("=")
        values[name] = _unquote(value)
    return values


def _unquote(text: str) -> str:
    try:
        parts = shlex.split(text)
    except ValueError:
        return text
    return " ".join(parts) if parts else ""


def _shell_words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return [_unquote(word) for word in split_words(text)]
