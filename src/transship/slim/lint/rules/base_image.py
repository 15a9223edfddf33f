"""SZ013: a base image outside the approved list.

The base decides most of an image's size and what every image built on it shares.
Teams keep a short list of bases (slim, distroless, their own) so that layers are shared
across images and patched in one place.
"""

from __future__ import annotations

import fnmatch

from transship.slim.lint.rules.base import Hit, LintContext, Severity, hit, rule
from transship.slim.lint.rules.installs import split_image


def _spellings(image: str) -> set[str]:
    """``debian:12`` also as ``docker.io/library/debian:12``, and the other way round."""
    registry, repository, tag, digest = split_image(image)
    suffix = (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    long_name = f"{registry}/{repository}"
    names = {image, long_name + suffix, long_name}
    if registry == "docker.io":
        short_name = repository.removeprefix("library/")
        names |= {short_name + suffix, short_name}
    return names


def _untagged(pattern: str) -> bool:
    return "@" not in pattern and ":" not in pattern.rsplit("/", 1)[-1]


def _without_tag(spelling: str) -> str:
    name = spelling.split("@", 1)[0]
    head, slash, last = name.rpartition("/")
    return head + slash + last.split(":", 1)[0]


def is_approved(image: str, patterns: list[str]) -> bool:
    """True when `image` matches an approved pattern (globs allowed; no tag means any tag)."""
    if image == "scratch":
        return True
    spellings = _spellings(image)
    for pattern in patterns:
        for spelling in spellings:
            if fnmatch.fnmatchcase(spelling, pattern):
                return True
            if _untagged(pattern) and fnmatch.fnmatchcase(_without_tag(spelling), pattern):
                return True
    return False


@rule("SZ013", "base-not-approved", Severity.ERROR)
def base_not_approved(context: LintContext) -> list[Hit]:
    if not context.approved_bases:
        return []
    root = context.model.target.lineage()[0]
    image = root.base
    if not image or "$" in image or is_approved(image, context.approved_bases):
        return []
    approved = ", ".join(context.approved_bases[:5]) + (
        ", …" if len(context.approved_bases) > 5 else ""
    )
    return [
        hit(
            root.from_instruction.line,
            "lint.SZ013.message",
            "lint.SZ013.fix",
            image=image,
            approved=approved,
            config=context.config_name,
        )
    ]
