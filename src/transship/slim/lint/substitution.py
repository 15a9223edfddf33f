"""ARG/ENV substitution as Dockerfile instructions do it: ``$NAME``, ``${NAME}`` and modifiers.

Supported: ``${NAME:-word}``, ``${NAME-word}``, ``${NAME:+word}``, ``${NAME+word}``,
``${NAME#pattern}``, ``${NAME##pattern}``, ``${NAME%pattern}``, ``${NAME%%pattern}``.
Single-quoted text is left alone, and the escape character before ``$`` keeps it literal.

A variable the Dockerfile never declares may still come from the base image's
environment (``$PATH``, ``$JAVA_HOME``), so by default it is left as written; with
``strict=True`` (FROM lines, where only ARGs before the first FROM count) it is empty.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODIFIERS = (":-", ":+", "##", "%%", "-", "+", "#", "%")


def expand(
    text: str,
    variables: Mapping[str, str | None],
    *,
    escape: str = "\\",
    strict: bool = False,
) -> str:
    """Substitute the variables in `text`; a value of None means declared but unset (empty)."""
    out: list[str] = []
    i = 0
    in_single_quote = False
    while i < len(text):
        char = text[i]
        if char == "'" and not in_single_quote:
            in_single_quote = "'" in text[i + 1 :]
            out.append(char)
            i += 1
        elif char == "'" and in_single_quote:
            in_single_quote = False
            out.append(char)
            i += 1
        elif in_single_quote:
            out.append(char)
            i += 1
        elif char == escape and i + 1 < len(text):
            out.append(text[i : i + 2])
            i += 2
        elif char == "$":
            replacement, i = _expand_reference(text, i, variables, strict)
            out.append(replacement)
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _expand_reference(
    text: str, start: int, variables: Mapping[str, str | None], strict: bool
) -> tuple[str, int]:
    """Expand the reference at ``text[start] == '$'``; returns the text and the next index."""
    if start + 1 < len(text) and text[start + 1] == "{":
        end = _matching_brace(text, start + 1)
        if end < 0:
            return text[start:], len(text)
        inner = text[start + 2 : end]
        return _expand_braced(inner, text[start : end + 1], variables, strict), end + 1
    match = _NAME_RE.match(text, start + 1)
    if not match:
        return "$", start + 1
    name = match.group(0)
    if name in variables:
        return variables[name] or "", match.end()
    return ("" if strict else text[start : match.end()]), match.end()


def _matching_brace(text: str, open_index: int) -> int:
    depth = 0
    for index in range(open_index, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _expand_braced(
    inner: str, original: str, variables: Mapping[str, str | None], strict: bool
) -> str:
    match = _NAME_RE.match(inner)
    if not match:
        return original
    name, tail = match.group(0), inner[match.end() :]
    known = name in variables
    if not known and not strict:
        return original
    value = variables.get(name)
    if not tail:
        return value or ""
    operator = next((op for op in _MODIFIERS if tail.startswith(op)), None)
    if operator is None:
        return original
    word = expand(tail[len(operator) :], variables, strict=strict)
    is_set = value is not None
    if operator == ":-":
        return value if value else word
    if operator == "-":
        return value if is_set else word
    if operator == ":+":
        return word if value else ""
    if operator == "+":
        return word if is_set else ""
    return _trim(value or "", operator, word)


def _trim(value: str, operator: str, pattern: str) -> str:
    """Shell prefix/suffix removal: ``#`` shortest prefix, ``##`` longest, ``%``/``%%`` suffix."""
    lengths = range(len(value) + 1)
    if operator in ("#", "##"):
        order = lengths if operator == "#" else reversed(lengths)
        for n in order:
            if fnmatch.fnmatchcase(value[:n], pattern):
                return value[n:]
    else:
        order = reversed(lengths) if operator == "%" else lengths
        for n in order:
            if fnmatch.fnmatchcase(value[n:], pattern):
                return value[:n]
    return value
