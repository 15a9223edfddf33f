"""Image references: parsing, normalisation and rename rules.

`[registry[:port]/]repository[:tag][@digest]`, as Docker and the distribution spec define it.
A reference without a registry part has none here (`registry == ""`): callers decide
whether that means Docker Hub or a registry named by `--from`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from transship.errors import ReferenceError_

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
DOCKER_HUB = "docker.io"


def _looks_like_registry(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost" or part != part.lower()


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, default_registry: str = "") -> ImageReference:
        """Parse a reference; `docker://` prefixes are accepted and ignored."""
        raw = text.strip()
        if raw.startswith("docker://"):
            raw = raw[len("docker://") :]
        if not raw:
            raise ReferenceError_("empty image reference")
        if any(c.isspace() for c in raw):
            raise ReferenceError_(f"invalid image reference {text!r}: contains white space")
        name, digest = raw, None
        if "@" in raw:
            name, digest = raw.split("@", 1)
            if not _DIGEST_RE.match(digest):
                raise ReferenceError_(f"invalid image reference {text!r}: bad digest {digest!r}")
        registry, rest = "", name
        first, sep, remainder = name.partition("/")
        if sep and _looks_like_registry(first):
            registry, rest = first, remainder
        tag = None
        if ":" in rest:
            rest, tag = rest.rsplit(":", 1)
            if not _TAG_RE.match(tag):
                raise ReferenceError_(f"invalid image reference {text!r}: bad tag {tag!r}")
        if not rest or not _REPO_RE.match(rest):
            raise ReferenceError_(
                f"invalid image reference {text!r}: repository must be lowercase "
                "letters, digits and separators (. _ - /)"
            )
        if len(rest) > 255:
            raise ReferenceError_(f"invalid image reference {text!r}: repository name too long")
        registry = registry or default_registry
        if registry == DOCKER_HUB and "/" not in rest:
            rest = f"library/{rest}"
        return cls(registry, rest, tag, digest)

    @property
    def reference(self) -> str:
        """What goes after /manifests/ in the API: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_registry(self, registry: str) -> ImageReference:
        return replace(self, registry=registry)

    def with_tag(self, tag: str | None) -> ImageReference:
        return replace(self, tag=tag)

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def tagged_or_latest(self) -> ImageReference:
        return self if (self.tag or self.digest) else replace(self, tag="latest")


def rewrite_repository(repository: str, rewrite: str | None) -> str:
    """Apply a target `repository:` rewrite: `src/xxxx/image` with `dst/yyyy` → `dst/yyyy/image`.

    The last path component (the image name) is kept; everything before it is replaced.
    An empty rewrite keeps the repository as it is.
    """
    if not rewrite:
        return repository
    image = repository.rsplit("/", 1)[-1]
    return f"{rewrite.strip('/')}/{image}"


@dataclass(frozen=True)
class MappingLine:
    """One line of an image list: a source and, after `->`, an optional new name."""

    source: str
    target: str | None
    line_number: int


def parse_image_list(text: str) -> list[MappingLine]:
    """Lines of `image` or `image -> newname`; blank lines and `#` comments are skipped."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not line:
            continue
        if "->" in line:
            src, dst = (p.strip() for p in line.split("->", 1))
            out.append(MappingLine(src, dst or None, number))
        else:
            out.append(MappingLine(line, None, number))
    return out


def apply_rename(source: ImageReference, rename: str | None) -> tuple[str, str | None]:
    """Target repository and tag for `source` given the right side of `a -> b`.

    `b` may be `repo`, `repo:tag` or `ns/repo:tag` (with or without a registry part, which
    is ignored: the target registry is chosen by `--to`).
    """
    if not rename:
        return source.repository, source.tag
    ref = ImageReference.parse(rename)
    return ref.repository, ref.tag or source.tag
