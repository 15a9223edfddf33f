"""Dockerfile parser: instructions with their lines, flags, JSON form and heredocs.

Why not a library: ``dockerfile-parse`` (the well-kept Python parser) handles line
continuations, ARG/ENV substitution and multi-stage builds, but not BuildKit heredocs
(``RUN <<EOF`` … ``EOF``): it turns each heredoc line into a bogus instruction (its
issue #145 is open). Heredocs are common in modern Dockerfiles, so this module parses
the syntax BuildKit accepts:

- parser directives at the top (``# syntax=``, ``# escape=`` with ``\\`` or a backtick);
- comments, also between continued lines (BuildKit drops those, as it drops empty ones);
- line continuations with the escape character, trailing blanks after it allowed;
- heredocs on RUN, COPY and ADD: ``<<EOF``, ``<<-EOF`` (leading tabs stripped),
  ``<<"EOF"`` / ``<<'EOF'`` (quoted: no expansion), several per instruction;
- exec (JSON) form, and leading ``--flag[=value]`` options of FROM, RUN, COPY and ADD.

Variable substitution and stages are resolved in ``stages.py``; this module only reads text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from transship.errors import TransshipError
from transship.i18n import t

INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})
FLAG_INSTRUCTIONS = frozenset({"FROM", "RUN", "COPY", "ADD"})
JSON_FORM_INSTRUCTIONS = frozenset(
    {"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME", "HEALTHCHECK"}
)
# Instructions that may stand without arguments (BuildKit accepts an empty CMD/ENTRYPOINT).
_NO_ARGS_OK = frozenset({"CMD", "ENTRYPOINT"})

_DIRECTIVE_RE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
_FLAG_RE = re.compile(r"^--([A-Za-z][A-Za-z0-9-]*)(?:=(\"[^\"]*\"|'[^']*'|\S*))?(?:\s+|$)")
_HEREDOC_WORD_RE = re.compile(r"^(\d*)<<(-?)([^<].*)$")
_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")


class DockerfileError(TransshipError):
    """A Dockerfile that cannot be read or does not parse."""

    def __init__(self, path: str, line: int | None, reason: str):
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Heredoc:
    """One here-document: ``<<NAME`` on the instruction line and the lines up to ``NAME``."""

    name: str
    body: str
    strip_tabs: bool
    quoted: bool
    start_line: int  # first body line (1-based)


@dataclass
class Instruction:
    """One Dockerfile instruction, continuation lines joined, heredoc bodies attached."""

    keyword: str  # upper case: RUN, COPY, ...
    line: int  # first line, 1-based
    end_line: int  # last line, heredoc bodies included
    source: str  # the original text of all its lines
    arguments: str  # everything after the keyword, continuations joined
    flags: dict[str, list[str]] = field(default_factory=dict)  # leading --name=value options
    rest: str = ""  # arguments without the leading flags
    json_args: list[str] | None = None  # exec form, when the arguments are a JSON string list
    heredocs: list[Heredoc] = field(default_factory=list)
    comments: list[tuple[int, str]] = field(default_factory=list)  # comments above and inside

    def flag(self, name: str) -> str | None:
        """The last value of ``--name``, or None when absent."""
        values = self.flags.get(name)
        return values[-1] if values else None


@dataclass
class ParsedDockerfile:
    path: str
    instructions: list[Instruction]
    directives: dict[str, str]
    escape: str
    comments: list[tuple[int, str]]  # every comment line of the file, with its line number


def parse_dockerfile(text: str, path: str = "Dockerfile") -> ParsedDockerfile:
    """Parse Dockerfile text; raises DockerfileError naming the line that is wrong."""
    return _Parser(text, path).parse()


def split_words(text: str) -> list[str]:
    """Split on blanks, keeping quoted parts together and the quotes in place."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"' and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == "\\" and i + 1 < len(text):
            current.extend((char, text[i + 1]))
            i += 1
        elif char.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
        i += 1
    if current:
        words.append("".join(current))
    return words


def heredoc_marker(word: str) -> tuple[str, bool, bool] | None:
    """``(name, strip_tabs, quoted)`` when a shell word opens a heredoc (``<<EOF``, ``<<-'EOF'``)."""
    match = _HEREDOC_WORD_RE.match(word)
    if not match:
        return None
    strip_tabs = match.group(2) == "-"
    name = match.group(3)
    quoted = False
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        name, quoted = name[1:-1], True
    if not name or any(c.isspace() for c in name):
        return None
    return name, strip_tabs, quoted


def parse_flags(arguments: str) -> tuple[dict[str, list[str]], str]:
    """Split leading ``--name[=value]`` options off an instruction's arguments."""
    flags: dict[str, list[str]] = {}
    rest = arguments.lstrip()
    while rest.startswith("--"):
        match = _FLAG_RE.match(rest)
        if not match:
            break
        value = match.group(2) or ""
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        flags.setdefault(match.group(1).lower(), []).append(value)
        rest = rest[match.end() :]
    return flags, rest.strip()


class _Parser:
    def __init__(self, text: str, path: str):
        self.path = path
        if text.startswith("\ufeff"):
            text = text[1:]
        self.lines = text.splitlines()
        self.escape = "\\"
        self.directives: dict[str, str] = {}
        self.all_comments: list[tuple[int, str]] = []

    def error(self, line: int | None, key: str, **fields: object) -> DockerfileError:
        return DockerfileError(self.path, line, t(key, **fields))

    def parse(self) -> ParsedDockerfile:
        index = self._read_directives()
        instructions: list[Instruction] = []
        pending_comments: list[tuple[int, str]] = []
        while index < len(self.lines):
            stripped = self.lines[index].strip()
            if not stripped:
                pending_comments = []  # a blank line ends the comment block above an instruction
                index += 1
            elif stripped.startswith("#"):
                pending_comments.append((index + 1, stripped))
                self.all_comments.append((index + 1, stripped))
                index += 1
            else:
                instruction, index = self._read_instruction(index, pending_comments)
                if instruction is not None:
                    instructions.append(instruction)
                pending_comments = []
        self._check_structure(instructions)
        return ParsedDockerfile(
            self.path, instructions, self.directives, self.escape, self.all_comments
        )

    def _read_directives(self) -> int:
        index = 0
        while index < len(self.lines):
            match = _DIRECTIVE_RE.match(self.lines[index].strip())
            if not match:
                break
            name, value = match.group(1).lower(), match.group(2)
            if name in self.directives:
                raise self.error(index + 1, "lint.parse.duplicate_directive", name=name)
            if name == "escape":
                if value not in ("\\", "`"):
                    raise self.error(index + 1, "lint.parse.bad_escape", value=value)
                self.escape = value
            self.directives[name] = value
            self.all_comments.append((index + 1, self.lines[index].strip()))
            index += 1
        return index

    def _continues(self, line: str) -> bool:
        stripped = line.rstrip(" \t")
        return stripped.endswith(self.escape)

    def _read_instruction(
        self, start: int, comments_above: list[tuple[int, str]]
    ) -> tuple[Instruction | None, int]:
        comments = list(comments_above)
        parts: list[str] = []
        index = start
        line = self.lines[index]
        while True:
            if not self._continues(line):
                parts.append(line)
                break
            parts.append(line.rstrip(" \t")[: -len(self.escape)])
            index += 1
            # BuildKit drops comment and empty lines between continued lines.
            while index < len(self.lines) and (
                not self.lines[index].strip() or self.lines[index].strip().startswith("#")
            ):
                if self.lines[index].strip():
                    comments.append((index + 1, self.lines[index].strip()))
                    self.all_comments.append((index + 1, self.lines[index].strip()))
                index += 1
            if index >= len(self.lines):
                index -= 1
                break
            line = self.lines[index]
        logical = "".join(parts).strip()
        if not logical:  # only continuation characters and blank lines: nothing to run
            return None, index + 1
        keyword_text, *tail = logical.split(None, 1)
        keyword = keyword_text.upper()
        arguments = tail[0].strip() if tail else ""
        if keyword not in INSTRUCTIONS:
            raise self.error(start + 1, "lint.parse.unknown_instruction", word=keyword_text)
        instruction = Instruction(
            keyword=keyword,
            line=start + 1,
            end_line=index + 1,
            source="",
            arguments=arguments,
            comments=comments,
        )
        self._split_arguments(instruction)
        index += 1
        if keyword in HEREDOC_INSTRUCTIONS and not instruction.json_args:
            index = self._read_heredocs(instruction, index)
        instruction.source = "\n".join(self.lines[start:index])
        return instruction, index

    def _split_arguments(self, instruction: Instruction) -> None:
        keyword, arguments = instruction.keyword, instruction.arguments
        if not arguments and keyword not in _NO_ARGS_OK:
            raise self.error(instruction.line, "lint.parse.needs_arguments", keyword=keyword)
        rest = arguments
        if keyword in FLAG_INSTRUCTIONS:
            instruction.flags, rest = parse_flags(arguments)
            if not rest:
                raise self.error(instruction.line, "lint.parse.needs_arguments", keyword=keyword)
        instruction.rest = rest
        if keyword in JSON_FORM_INSTRUCTIONS and rest.startswith("["):
            try:
                value = json.loads(rest)
            except ValueError:
                value = None  # BuildKit runs text that is not valid JSON in shell form
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                instruction.json_args = value

    def _read_heredocs(self, instruction: Instruction, index: int) -> int:
        for word in split_words(instruction.rest):
            marker = heredoc_marker(word)
            if marker is None:
                continue
            name, strip_tabs, quoted = marker
            body: list[str] = []
            body_start = index + 1
            while True:
                if index >= len(self.lines):
                    raise self.error(instruction.line, "lint.parse.heredoc_unterminated", name=name)
                line = self.lines[index]
                index += 1
                candidate = line.lstrip("\t") if strip_tabs else line
                if candidate.rstrip() == name:
                    break
                body.append(candidate)
            instruction.heredocs.append(
                Heredoc(
                    name, "\n".join(body) + ("\n" if body else ""), strip_tabs, quoted, body_start
                )
            )
        if instruction.heredocs:
            instruction.end_line = index
        return index

    def _check_structure(self, instructions: list[Instruction]) -> None:
        if not instructions:
            raise self.error(None, "lint.parse.empty")
        seen_from = False
        stage_names: set[str] = set()
        for instruction in instructions:
            if instruction.keyword == "FROM":
                seen_from = True
                self._check_from(instruction, stage_names)
            elif not seen_from and instruction.keyword != "ARG":
                raise self.error(
                    instruction.line, "lint.parse.before_from", keyword=instruction.keyword
                )
            elif instruction.keyword in ("COPY", "ADD"):
                words = instruction.json_args or split_words(instruction.rest)
                if len(words) < 2:
                    raise self.error(
                        instruction.line, "lint.parse.copy_arguments", keyword=instruction.keyword
                    )
            elif instruction.keyword == "ENV":
                words = split_words(instruction.rest)
                if len(words) == 1 and "=" not in words[0]:
                    raise self.error(instruction.line, "lint.parse.env_value", name=words[0])
            elif instruction.keyword == "ONBUILD":
                inner = instruction.rest.split(None, 1)[0].upper()
                if inner in ("ONBUILD", "FROM", "MAINTAINER") or inner not in INSTRUCTIONS:
                    raise self.error(instruction.line, "lint.parse.bad_onbuild", word=inner)
        if not seen_from:
            raise self.error(None, "lint.parse.no_from")

    def _check_from(self, instruction: Instruction, stage_names: set[str]) -> None:
        words = split_words(instruction.rest)
        if len(words) == 1:
            return
        if len(words) != 3 or words[1].upper() != "AS":
            raise self.error(instruction.line, "lint.parse.bad_from", text=instruction.rest)
        name = words[2].lower()
        if not _STAGE_NAME_RE.match(name):
            raise self.error(instruction.line, "lint.parse.bad_stage_name", name=words[2])
        if name in stage_names:
            raise self.error(instruction.line, "lint.parse.duplicate_stage", name=words[2])
        stage_names.add(name)
