"""Retries with backoff, and a source stream that resumes from the byte it reached."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

from transship.errors import DigestMismatchError, TransientError
from transship.transports.base import CHUNK

RETRYABLE = (TransientError, DigestMismatchError, OSError)
MAX_RESUMES = 100  # a source that keeps breaking off, even with progress, is given up


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 20.0) -> float:
    """Exponential backoff with full jitter, so retrying workers do not move in step."""
    return random.uniform(0, min(cap, base * (2**attempt)))


class ResumingReader:
    """Yields a blob's bytes; when the source breaks off, reopens it at the byte reached.

    `on_retry(attempt, reason, offset)` is told about each resume; after `retries`
    resumes without progress the last error is raised.
    """

    def __init__(
        self,
        open_at: Callable[[int], AbstractContextManager[BinaryIO]],
        size: int,
        retries: int,
        on_retry: Callable[[int, str, int], None] | None = None,
        backoff_base: float = 0.5,
    ):
        self._open_at = open_at
        self.size = size
        self.retries = retries
        self.on_retry = on_retry
        self.offset = 0
        self.backoff_base = backoff_base

    def __iter__(self) -> Iterator[bytes]:
        failures = 0
        resumes = 0
        while True:
            reached = self.offset
            try:
                with self._open_at(self.offset) as stream:
                    while True:
                        chunk = stream.read(CHUNK)
                        if not chunk:
                            break
                        if self.size >= 0 and self.offset + len(chunk) > self.size:
                            raise DigestMismatchError(
                                f"source sent more than the {self.size} bytes the descriptor says"
                            )
                        self.offset += len(chunk)
                        yield chunk
                if self.size < 0 or self.offset >= self.size:
                    return
                raise TransientError(f"source stream ended at byte {self.offset} of {self.size}")
            except TransientError as e:
                failures = 0 if self.offset > reached else failures + 1
                resumes += 1
                if failures > self.retries or resumes > MAX_RESUMES:
                    raise
                if self.on_retry:
                    self.on_retry(failures, str(e), self.offset)
                time.sleep(backoff_delay(failures, self.backoff_base))
