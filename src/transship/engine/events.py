"""Typed events: the one stream through which the engine reports progress and results.

The engine never prints. The CLI renders events as progress bars or JSON lines, the web UI
forwards them to the browser, notifiers summarise them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    def to_json(self) -> dict[str, Any]:
        return {"event": type(self).__name__, "time": time.time(), **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    images: int


@dataclass(frozen=True)
class ImagePlanned(Event):
    image: str  # source, as the user wrote it
    target: str
    blobs: int
    bytes: int


@dataclass(frozen=True)
class BlobStarted(Event):
    digest: str
    size: int
    repository: str


@dataclass(frozen=True)
class BlobProgress(Event):
    digest: str
    nbytes: int  # new bytes since the last progress event of this blob


@dataclass(frozen=True)
class BlobDone(Event):
    digest: str
    size: int
    how: str  # "copied" | "skipped" (already there) | "mounted" | "reused" (same run)
    bytes_sent: int = 0


@dataclass(frozen=True)
class BlobRetry(Event):
    digest: str
    attempt: int
    reason: str
    resume_from: int = 0


@dataclass(frozen=True)
class ImageDone(Event):
    image: str
    target: str
    digest: str
    notes: tuple[str, ...] = ()
    up_to_date: bool = False  # the target already had it: nothing was sent


@dataclass(frozen=True)
class ImageFailed(Event):
    image: str
    target: str
    reason: str
    invalid: bool = False  # bad reference / missing image, as opposed to a transfer failure


@dataclass(frozen=True)
class Finishing(Event):
    """Every transfer is done; the destination is finishing: what it does, in English
    (`what`) and as a message of transship.i18n (`key`, `fields`) for other languages."""

    what: str
    key: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, key: str, **fields: Any) -> Finishing:
        from transship.i18n import translate

        return cls(translate(key, "en", **fields), key, fields)

    def text(self, language: str) -> str:
        """What the destination does, in `language`."""
        from transship.i18n import translate

        return translate(self.key, language, **self.fields) if self.key else self.what


@dataclass(frozen=True)
class RunDone(Event):
    ok: int
    failed: int
    invalid: int
    blobs_copied: int
    blobs_skipped: int
    blobs_mounted: int
    bytes_sent: int
    seconds: float
    failures: tuple[tuple[str, str], ...] = field(default=())
    images_up_to_date: int = 0


Listener = Callable[[Event], None]


class EventBus:
    """Fans events out to listeners; thread-safe, listeners are called in order."""

    def __init__(self, *listeners: Listener):
        self._listeners = list(listeners)
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event) -> None:
        with self._lock:
            for listener in self._listeners:
                listener(event)
