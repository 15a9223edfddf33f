"""Split a RUN step's shell script into simple commands, enough to see what each one does.

This is not a shell: it reads words (with quotes and escapes removed), the operators that
separate commands (``&&``, ``||``, ``;``, ``|``, ``&``, newlines, parentheses), redirections
and comments. ``$(...)``, backticks and ``${...}`` stay inside their word. Control keywords
(``if``, ``then``, ``do``, ``!``…) in front of a command are dropped, as are wrappers such as
``sudo`` and ``env``, and ``sh -c 'script'`` is split further.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

_OPERATOR_CHARS = "&|;()\n"
_LEADING_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time"}
)
_WHOLE_KEYWORDS = frozenset({"fi", "done", "esac", "}", "for", "case", "in"})
_WRAPPERS = frozenset({"sudo", "env", "nice", "nohup", "command", "exec", "doas", "stdbuf"})
SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "busybox"})


@dataclass
class Redirect:
    operator: str  # '>', '>>', '<', '<<', '<<-', '&>', '>&' ...
    target: str


@dataclass
class ShellCommand:
    """One simple command: ``VAR=x cmd arg... > file``."""

    argv: list[str]
    assignments: dict[str, str] = field(default_factory=dict)
    redirects: list[Redirect] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The program's base name (``/usr/bin/apt-get`` → ``apt-get``), or ``""``."""
        return os.path.basename(self.argv[0]) if self.argv else ""


@dataclass
class _Token:
    kind: str  # 'word' | 'op' | 'redirect'
    text: str
    target: str = ""


def split_commands(script: str) -> list[ShellCommand]:
    """The simple commands of a shell script, in order."""
    commands: list[ShellCommand] = []
    current: list[_Token] = []
    for token in _tokenize(script):
        if token.kind == "op":
            _flush(current, commands)
            current = []
        else:
            current.append(token)
    _flush(current, commands)
    return commands


def _flush(tokens: list[_Token], commands: list[ShellCommand]) -> None:
    words = [tok.text for tok in tokens if tok.kind == "word"]
    redirects = [Redirect(tok.text, tok.target) for tok in tokens if tok.kind == "redirect"]
    while words and words[0] in _LEADING_KEYWORDS:
        words = words[1:]
    if not words or words[0] in _WHOLE_KEYWORDS:
        if redirects and not words:
            commands.append(ShellCommand([], {}, redirects))
        return
    assignments: dict[str, str] = {}
    words = _strip_prefixes(words, assignments)
    if not words:
        return
    inner = _inner_script(words)
    if inner is not None:
        commands.extend(split_commands(inner))
        return
    commands.append(ShellCommand(words, assignments, redirects))


def _strip_prefixes(words: list[str], assignments: dict[str, str]) -> list[str]:
    """Drop ``VAR=value`` assignments and wrappers (sudo, env…) in front of the program."""
    changed = True
    while words and changed:
        changed = False
        while words and _is_assignment(words[0]):
            name, _, value = words[0].partition("=")
            assignments[name] = value
            words = words[1:]
            changed = True
        if words and os.path.basename(words[0]) in _WRAPPERS:
            words = words[1:]
            # Options of the wrapper itself (sudo -E, env -i, nice -n 5).
            while words and words[0].startswith("-"):
                takes_value = words[0] in ("-n", "-u", "-g", "-o", "-e")
                words = words[2:] if takes_value else words[1:]
            changed = True
    return words


def _is_assignment(word: str) -> bool:
    name, sep, _ = word.partition("=")
    return bool(sep) and name.isidentifier()


def _inner_script(words: list[str]) -> str | None:
    """The script of ``sh -c 'script'`` (any POSIX shell), or None."""
    if os.path.basename(words[0]) not in SHELLS:
        return None
    for index, word in enumerate(words[1:], start=1):
        if word.startswith("-") and "c" in word[1:] and not word.startswith("--"):
            return words[index + 1] if index + 1 < len(words) else None
        if not word.startswith("-"):
            return None
    return None


def _tokenize(script: str) -> list[_Token]:
    return _Lexer(script).tokens()


class _Lexer:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.result: list[_Token] = []

    def tokens(self) -> list[_Token]:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r":
                self.pos += 1
            elif char == "\\" and text.startswith("\\\n", self.pos):
                self.pos += 2  # line continuation inside a heredoc script
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif char in _OPERATOR_CHARS:
                doubled = text[self.pos : self.pos + 2]
                length = 2 if doubled in ("&&", "||", ";;") else 1
                if char == "&" and text.startswith("&>", self.pos):
                    self._redirect()
                    continue
                self.result.append(_Token("op", text[self.pos : self.pos + length]))
                self.pos += length
            elif char in "<>":
                self._redirect()
            else:
                word = self._word()
                if word is not None:
                    if self._at_redirect() and word.isdigit():
                        self._redirect()
                    else:
                        self.result.append(_Token("word", word))
        return self.result

    def _at_redirect(self) -> bool:
        return self.pos < len(self.text) and self.text[self.pos] in "<>"

    def _redirect(self) -> None:
        text = self.text
        start = self.pos
        while self.pos < len(text) and text[self.pos] in "<>&-|":
            self.pos += 1
            if self.pos - start >= 3:
                break
        operator = text[start : self.pos]
        while self.pos < len(text) and text[self.pos] in " \t":
            self.pos += 1
        target = ""
        if (
            self.pos < len(text)
            and text[self.pos] not in _OPERATOR_CHARS
            and text[self.pos] not in "<>"
        ):
            target = self._word() or ""
        self.result.append(_Token("redirect", operator, target))

    def _word(self) -> str | None:
        """Read one word, removing quotes and escapes; stops at blanks and operators."""
        text = self.text
        out: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r" or char in _OPERATOR_CHARS or char in "<>":
                break
            if char == "\\":
                if self.pos + 1 < len(text) and text[self.pos + 1] != "\n":
                    out.append(text[self.pos + 1])
                self.pos += 2
            elif char == "'":
                end = text.find("'", self.pos + 1)
                end = len(text) if end < 0 else end
                out.append(text[self.pos + 1 : end])
                self.pos = end + 1
            elif char == '"':
                self.pos += 1
                out.append(self._double_quoted())
            elif char == "$" and text.startswith("$(", self.pos):
                out.append(self._balanced("(", ")"))
            elif char == "$" and text.startswith("${", self.pos):
                out.append(self._balanced("{", "}"))
            elif char == "`":
                end = text.find("`", self.pos + 1)
                end = len(text) if end < 0 else end
                out.append(text[self.pos : end + 1])
                self.pos = end + 1
            else:
                out.append(char)
                self.pos += 1
        return "".join(out)

    def _double_quoted(self) -> str:
        text = self.text
        out: list[str] = []
        while self.pos < len(text) and text[self.pos] != '"':
            char = text[self.pos]
            if char == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in '"\\$`\n':
                if text[self.pos + 1] != "\n":
                    out.append(text[self.pos + 1])
                self.pos += 2
            elif text.startswith("$(", self.pos):
                out.append(self._balanced("(", ")"))
            else:
                out.append(char)
                self.pos += 1
        self.pos += 1
        return "".join(out)

    def _balanced(self, opening: str, closing: str) -> str:
        """``$(...)`` or ``${...}`` kept whole, nesting counted."""
        text = self.text
        start = self.pos
        depth = 0
        self.pos += 1  # the '$'
        while self.pos < len(text):
            char = text[self.pos]
            if char == opening:
                depth += 1
            elif char == closing:
                depth -= 1
                if depth == 0:
                    self.pos += 1
                    break
            elif char == "'":
                end = text.find("'", self.pos + 1)
                self.pos = len(text) - 1 if end < 0 else end
            self.pos += 1
        return text[start : self.pos]
