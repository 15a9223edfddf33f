"""Background jobs of the web UI: each runs in a thread, records its events, can be cancelled.

The engine calls `Job.emit` from its worker threads; the web server reads the recorded events
from its event loop and is woken through `Job.wait` when new ones arrive. Byte-progress
events are folded into the live statistics instead of being recorded, so a job's memory
grows with its images and blobs, not with its bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transship.engine import events as ev
from transship.errors import TransshipError
from transship.web.stats import JobStats

log = logging.getLogger(__name__)

KEEP_FINISHED_JOBS = 20
MAX_RECORDED_EVENTS = 200_000

RUNNING = "running"
FINISHED = "finished"  # ran to the end (some images may have failed: see the counts)
FAILED = "failed"  # could not run: bad configuration, unreachable registry, ...
CANCELLED = "cancelled"


class JobConflict(TransshipError):
    """A job is already running; the UI runs one at a time."""


@dataclass
class Job:
    id: str
    kind: str  # check | copy | save | load | analyze
    params: dict[str, Any]  # what the history shows: source, target, bundle, image count
    created: float = field(default_factory=time.time)
    finished: float | None = None
    status: str = RUNNING
    error: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    stats: JobStats = field(default_factory=JobStats)
    events: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    dropped_events: int = 0
    thread: threading.Thread | None = None
    report_html: str | None = None  # what an analyze job found, as a self-contained page

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    # -- written by the job's threads ------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        self.stats.apply(event)
        if isinstance(event, ev.BlobProgress):
            return
        if isinstance(event, ev.ImageFailed):
            with self._lock:
                self.failures.append(
                    {
                        "image": event.image,
                        "target": event.target,
                        "reason": event.reason,
                        "invalid": event.invalid,
                    }
                )
        self.record(event.to_json())

    def record(self, message: dict[str, Any]) -> None:
        with self._lock:
            if len(self.events) >= MAX_RECORDED_EVENTS and message.get("event", "").startswith(
                "Blob"
            ):
                self.dropped_events += 1  # keep image-level events, shed blob detail
                return
            self.events.append(message)
        self._wake()

    def finish(self, status: str, error: str = "") -> None:
        self.stats.finish()
        with self._lock:
            self.status = status
            self.error = error
            self.finished = time.time()
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, flag in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(flag.set)

    # -- read by the server ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def events_from(self, index: int) -> tuple[list[dict[str, Any]], bool]:
        """Recorded events from `index` on, and whether the job has finished."""
        with self._lock:
            return self.events[index:], not self.running

    async def wait(self, index: int, timeout: float) -> None:
        """Until there are events past `index`, the job finishes, or `timeout` passes."""
        loop = asyncio.get_running_loop()
        flag = asyncio.Event()
        waiter = (loop, flag)
        with self._lock:
            if len(self.events) > index or not self.running:
                return
            self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flag.wait(), timeout)
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "id": self.id,
                "kind": self.kind,
                "status": self.status,
                "error": self.error,
                "created": self.created,
                "finished": self.finished,
                "params": self.params,
                "stats": self.stats.snapshot().to_json(),
            }

    def details(self) -> dict[str, Any]:
        out = self.summary()
        with self._lock:
            out["failures"] = list(self.failures)
            out["events"] = len(self.events)
        return out


Runner = Callable[[Job], None]


class JobManager:
    """Starts jobs one at a time in threads and keeps the recent ones for the history."""

    def __init__(self, keep: int = KEEP_FINISHED_JOBS):
        self._keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, kind: str, params: dict[str, Any], runner: Runner) -> Job:
        with self._lock:
            busy = next((j for j in self._jobs.values() if j.running), None)
            if busy is not None:
                raise JobConflict(f"job {busy.id} ({busy.kind}) is still running")
            job = Job(secrets.token_hex(6), kind, params)
            self._jobs[job.id] = job
            self._forget_old()
        thread = threading.Thread(
            target=self._run, args=(job, runner), name=f"job-{job.id}", daemon=True
        )
        job.thread = thread
        thread.start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def cancel_all(self) -> None:
        for job in self.all():
            job.cancel.set()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if not j.running]
        for job in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[job.id]

    @staticmethod
    def _run(job: Job, runner: Runner) -> None:
        try:
            runner(job)
        except TransshipError as e:
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            job.record({"event": "JobFailed", "time": time.time(), "reason": message})
            job.finish(FAILED, message)
            return
        except Exception as e:  # a bug: say so in the UI, keep the server up
            log.exception("job %s (%s) crashed", job.id, job.kind)
            message = f"internal error: {type(e).__name__}: {e}"
            job.record({"event": "JobFailed", "time": time.time(), "reason": message})
            job.finish(FAILED, message)
            return
        job.finish(CANCELLED if job.cancel.is_set() else FINISHED)
