"""Rendering engine events: rich progress bars on a terminal, a plain status line every few
seconds elsewhere, or one JSON object per line with `--json`."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from transship.engine import events as ev
from transship.engine.copy import RunSummary
from transship.i18n import current_language

LARGE_BLOB = 8 << 20  # blobs at least this big get a bar of their own
PLAIN_INTERVAL = 5.0


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class _Tally:
    """Running totals shared by the renderers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.images_total = 0
        self.images_ok = 0
        self.images_failed = 0
        self.planned: dict[str, int] = {}  # digest -> size, each blob once
        self.done_bytes = 0
        self.accounted: set[str] = set()
        self.started = time.monotonic()

    @property
    def total_bytes(self) -> int:
        return sum(self.planned.values())

    def apply(self, event: ev.Event) -> None:
        with self.lock:
            if isinstance(event, ev.RunStarted):
                self.images_total = event.images
            elif isinstance(event, ev.BlobStarted):
                self.planned.setdefault(event.digest, max(event.size, 0))
            elif isinstance(event, ev.BlobProgress):
                self.done_bytes += event.nbytes
            elif isinstance(event, ev.BlobDone):
                self.planned.setdefault(event.digest, max(event.size, 0))
                if event.how != "copied" and event.digest not in self.accounted:
                    self.done_bytes += max(event.size, 0)
                self.accounted.add(event.digest)
            elif isinstance(event, ev.ImageDone):
                self.images_ok += 1
            elif isinstance(event, ev.ImageFailed):
                self.images_failed += 1


class JsonRenderer:
    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.lock = threading.Lock()

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.BlobProgress):
            return  # too chatty for a log; BlobDone carries the totals
        with self.lock:
            self.out.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
            self.out.flush()

    def close(self) -> None:
        pass


class PlainRenderer:
    """One status line every few seconds, and a line per failure; for logs and CI."""

    def __init__(self, console: Console, interval: float = PLAIN_INTERVAL):
        self.console = console
        self.tally = _Tally()
        self.interval = interval
        self._last = time.monotonic()

    def __call__(self, event: ev.Event) -> None:
        self.tally.apply(event)
        if isinstance(event, ev.ImageFailed):
            self.console.print(
                f"FAILED {event.image}: {event.reason}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        elif isinstance(event, ev.ImageDone):
            for note in event.notes:
                self.console.print(
                    f"note: {event.image}: {note}", markup=False, highlight=False, soft_wrap=True
                )
        elif isinstance(event, ev.Finishing):
            self.console.print(self.status_line(), markup=False, highlight=False, soft_wrap=True)
            self.console.print(
                f"{event.text(current_language())} ...",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.console.print(self.status_line(), markup=False, highlight=False, soft_wrap=True)

    def status_line(self) -> str:
        t = self.tally
        elapsed = max(time.monotonic() - t.started, 1e-6)
        return (
            f"images {t.images_ok + t.images_failed}/{t.images_total} "
            f"(ok {t.images_ok}, failed {t.images_failed}) | "
            f"{human_bytes(t.done_bytes)} of {human_bytes(t.total_bytes)} | "
            f"{human_bytes(t.done_bytes / elapsed)}/s"
        )

    def close(self) -> None:
        pass


class RichRenderer:
    """Overall bytes with speed and ETA, a bar per large blob in flight, images done."""

    def __init__(self, console: Console):
        self.console = console
        self.tally = _Tally()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.images = self.progress.add_task("images", total=None)
        self.overall = self.progress.add_task("bytes ", total=None)
        self.blobs: dict[str, TaskID] = {}
        self.lock = threading.Lock()
        self.progress.start()

    def __call__(self, event: ev.Event) -> None:
        self.tally.apply(event)
        with self.lock:
            p = self.progress
            if isinstance(event, ev.RunStarted):
                p.update(self.images, total=event.images)
            elif isinstance(event, ev.BlobStarted) and event.size >= LARGE_BLOB:
                self.blobs[event.digest] = p.add_task(f"  {event.digest[7:19]}", total=event.size)
            elif isinstance(event, ev.BlobProgress) and event.digest in self.blobs:
                p.advance(self.blobs[event.digest], event.nbytes)
            elif isinstance(event, ev.BlobDone) and event.digest in self.blobs:
                p.remove_task(self.blobs.pop(event.digest))
            elif isinstance(event, (ev.ImageDone, ev.ImageFailed)):
                p.update(self.images, completed=self.tally.images_ok + self.tally.images_failed)
                if isinstance(event, ev.ImageFailed):
                    p.console.print(
                        f"[red]FAILED[/] {event.image}: {event.reason}", highlight=False
                    )
                else:
                    for note in event.notes:
                        p.console.print(f"[yellow]note[/] {event.image}: {note}", highlight=False)
            elif isinstance(event, ev.Finishing):
                p.console.print(
                    f"{event.text(current_language())} ...", markup=False, highlight=False
                )
            p.update(
                self.overall, total=self.tally.total_bytes or None, completed=self.tally.done_bytes
            )

    def close(self) -> None:
        self.progress.stop()


def make_renderer(json_output: bool, console: Console):
    if json_output:
        return JsonRenderer()
    if console.is_terminal:
        return RichRenderer(console)
    return PlainRenderer(console)


def print_summary(
    console: Console, summary: RunSummary, invalid_lines: list[tuple[str, str]] = ()
) -> None:
    """The end-of-run summary: counts, bytes, time, speed, and every failure with its reason."""
    invalid = len(summary.invalid) + len(invalid_lines)
    speed = summary.bytes_sent / summary.seconds if summary.seconds else 0.0
    console.print(
        f"images: {summary.ok} ok ({summary.up_to_date} already up to date), "
        f"{len(summary.failed)} failed, {invalid} invalid | "
        f"blobs: {summary.blobs_copied} copied, {summary.blobs_skipped} already there, "
        f"{summary.blobs_mounted} mounted | {human_bytes(summary.bytes_sent)} sent in "
        f"{summary.seconds:.1f} s ({human_bytes(speed)}/s)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for text, reason in invalid_lines:
        console.print(f"  invalid: {text}: {reason}", markup=False, highlight=False, soft_wrap=True)
    for result in summary.invalid:
        console.print(
            f"  invalid: {result.job.label}: {result.error}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for result in summary.failed:
        console.print(
            f"  failed: {result.job.label}: {result.error}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
