"""Live statistics of one job, folded from engine events: what the stats bar shows.

Image counts (total / invalid / success / failed / remaining), blob counts, bytes sent and
the transfer speed (over the last few seconds and over the whole run).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

from transship.engine import events as ev

SPEED_WINDOW_SECONDS = 5.0


@dataclass(frozen=True)
class StatsSnapshot:
    total: int
    invalid: int
    success: int
    failed: int
    remaining: int
    blobs_copied: int
    blobs_skipped: int
    blobs_mounted: int
    blobs_active: int
    retries: int
    bytes_sent: int
    speed: float  # bytes per second over the last few seconds
    average_speed: float  # bytes per second since the start
    elapsed: float
    running: bool

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class JobStats:
    """Thread-safe: the engine's worker threads apply events, the web server reads."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._finished: float | None = None
        self.total = 0
        self.invalid = self.success = self.failed = 0
        self.blobs_copied = self.blobs_skipped = self.blobs_mounted = 0
        self.retries = 0
        self.bytes_sent = 0
        self._active: set[str] = set()
        self._samples: deque[tuple[float, int]] = deque()

    def set_total(self, images: int) -> None:
        with self._lock:
            self.total = images

    def finish(self) -> None:
        with self._lock:
            self._finished = self._clock()
            self._active.clear()

    def apply(self, event: ev.Event) -> None:
        with self._lock:
            if isinstance(event, ev.BlobProgress):
                self.bytes_sent += event.nbytes
            elif isinstance(event, ev.BlobStarted):
                self._active.add(event.digest)
            elif isinstance(event, ev.BlobDone):
                self._active.discard(event.digest)
                if event.how == "copied":
                    self.blobs_copied += 1
                elif event.how == "mounted":
                    self.blobs_mounted += 1
                else:
                    self.blobs_skipped += 1
            elif isinstance(event, ev.BlobRetry):
                self.retries += 1
            elif isinstance(event, ev.ImageDone):
                self.success += 1
            elif isinstance(event, ev.ImageFailed):
                if event.invalid:
                    self.invalid += 1
                else:
                    self.failed += 1

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            now = self._clock() if self._finished is None else self._finished
            elapsed = max(now - self._started, 0.0)
            running = self._finished is None
            if running:
                self._samples.append((now, self.bytes_sent))
                while self._samples and now - self._samples[0][0] > SPEED_WINDOW_SECONDS:
                    self._samples.popleft()
            speed = 0.0
            if running and len(self._samples) > 1:
                (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
                speed = max(b1 - b0, 0) / max(t1 - t0, 1e-6)
            done = self.invalid + self.success + self.failed
            return StatsSnapshot(
                total=self.total,
                invalid=self.invalid,
                success=self.success,
                failed=self.failed,
                remaining=max(self.total - done, 0),
                blobs_copied=self.blobs_copied,
                blobs_skipped=self.blobs_skipped,
                blobs_mounted=self.blobs_mounted,
                blobs_active=len(self._active),
                retries=self.retries,
                bytes_sent=self.bytes_sent,
                speed=speed,
                average_speed=self.bytes_sent / elapsed if elapsed > 0 else 0.0,
                elapsed=elapsed,
                running=running,
            )
