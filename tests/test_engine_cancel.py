"""Cooperative cancel: CopyOptions.cancel stops a run between blobs and images."""

import os
import threading

from tests.memory_transports import MemoryDestination, MemorySource, MemoryStore
from transship.engine import events as ev
from transship.engine.copy import CopyJob, CopyOptions, copy_images


def _fleet(n_images: int, layers_per_image: int = 3) -> tuple[MemoryStore, list[CopyJob]]:
    store = MemoryStore()
    jobs = []
    for i in range(n_images):
        store.add_image(f"svc{i}", "1.0", [os.urandom(20_000) for _ in range(layers_per_image)])
        jobs.append(CopyJob(f"svc{i}:1.0", f"svc{i}", "1.0", f"svc{i}", "1.0"))
    return store, jobs


def test_cancel_before_start_copies_nothing_and_reports_every_image():
    store, jobs = _fleet(3)
    dest = MemoryDestination()
    cancel = threading.Event()
    cancel.set()
    events: list[ev.Event] = []
    summary = copy_images(
        MemorySource(store), dest, jobs, CopyOptions(cancel=cancel), events.append
    )
    assert summary.ok == 0
    assert [r.error for r in summary.failed] == ["cancelled"] * 3
    assert not dest.puts and not dest.manifest_puts
    assert isinstance(events[-1], ev.RunDone) and events[-1].failed == 3
    assert dest.aborted and not dest.committed


def test_cancel_mid_run_stops_between_blobs():
    store, jobs = _fleet(4)
    dest = MemoryDestination()
    cancel = threading.Event()

    def emit(event: ev.Event) -> None:
        if isinstance(event, ev.BlobDone):
            cancel.set()  # the user presses "cancel" once the first blob is in

    summary = copy_images(
        MemorySource(store), dest, jobs, CopyOptions(maxconn=1, cancel=cancel), emit
    )
    blobs_total = 4 * 4  # config + 3 layers per image
    assert 1 <= sum(dest.puts.values()) < blobs_total
    assert summary.ok == 0
    assert all(r.error == "cancelled" for r in summary.failed)
    assert not dest.manifest_puts  # no image is pushed with missing blobs


def test_unset_cancel_event_changes_nothing():
    store, jobs = _fleet(2)
    dest = MemoryDestination()
    summary = copy_images(
        MemorySource(store), dest, jobs, CopyOptions(cancel=threading.Event()), None
    )
    assert summary.ok == 2 and not summary.failed
