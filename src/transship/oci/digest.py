"""Content digests (`sha256:<hex>`) and streaming verification."""

from __future__ import annotations

import hashlib
import re

from transship.errors import DigestMismatchError

_DIGEST_RE = re.compile(r"^(sha256|sha512):([a-f0-9]{64}|[a-f0-9]{128})$")


def is_digest(text: str) -> bool:
    return bool(_DIGEST_RE.match(text))


def validate_digest(text: str) -> str:
    m = _DIGEST_RE.match(text)
    if not m or (m.group(1) == "sha256") != (len(m.group(2)) == 64):
        raise DigestMismatchError(f"not a valid digest: {text!r}")
    return text


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def hex_of(digest: str) -> str:
    """The hex part of `sha256:<hex>`."""
    return digest.split(":", 1)[1]


def algorithm_of(digest: str) -> str:
    return digest.split(":", 1)[0]


class DigestVerifier:
    """Hashes a stream as it passes and checks it against the expected digest and size."""

    def __init__(self, expected: str, size: int | None = None):
        self.expected = expected
        self.size = size
        self._hash = hashlib.new(algorithm_of(expected))
        self.count = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.count += len(chunk)

    @property
    def actual(self) -> str:
        return f"{algorithm_of(self.expected)}:{self._hash.hexdigest()}"

    def verify(self, what: str = "blob") -> None:
        if self.size is not None and self.size >= 0 and self.count != self.size:
            raise DigestMismatchError(
                f"{what} {self.expected}: got {self.count} bytes, expected {self.size}"
            )
        if self.actual != self.expected:
            raise DigestMismatchError(f"{what} {self.expected}: content hashes to {self.actual}")

    def copy(self) -> DigestVerifier:
        clone = DigestVerifier.__new__(DigestVerifier)
        clone.expected, clone.size, clone.count = self.expected, self.size, self.count
        clone._hash = self._hash.copy()
        return clone


def verify_bytes(data: bytes, expected: str, what: str = "content") -> None:
    v = DigestVerifier(expected, len(data))
    v.update(data)
    v.verify(what)
