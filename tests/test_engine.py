"""The copy engine against in-memory transports: planning, single-flight, mounts, retries,
resume, failure isolation, platform selection."""

import os
import threading
import time

import pytest

from tests.memory_transports import MemoryDestination, MemorySource, MemoryStore
from transship.engine import events as ev
from transship.engine.copy import CopyJob, CopyOptions, copy_images
from transship.oci.descriptor import Platform
from transship.oci.digest import digest_bytes
from transship.oci.manifest import ImageIndex


def job(repo, tag, target_repo=None, target_tag=None):
    return CopyJob(repo + ":" + tag, repo, tag, target_repo or repo, target_tag or tag)


def fleet(n_images=6, shared=2, own=1, size=50_000):
    store = MemoryStore()
    shared_layers = [os.urandom(size) for _ in range(shared)]
    jobs = []
    for i in range(n_images):
        store.add_image(f"svc{i}", "1.0", shared_layers + [os.urandom(size) for _ in range(own)])
        jobs.append(job(f"svc{i}", "1.0"))
    return store, jobs, shared_layers


def run(source, dest, jobs, **options):
    events = []
    summary = copy_images(
        source, dest, jobs, CopyOptions(backoff_base=0.001, **options), events.append
    )
    return summary, events


def test_copies_every_image_with_exact_manifests():
    store, jobs, _ = fleet()
    dest = MemoryDestination()
    summary, events = run(MemorySource(store), dest, jobs)
    assert summary.ok == len(jobs) and not summary.failed
    for j in jobs:
        assert (
            dest.store.manifests[(j.target_repository, "1.0")]
            == store.manifests[(j.source_repository, "1.0")]
        )
    assert dest.committed
    assert isinstance(events[0], ev.RunStarted) and isinstance(events[-1], ev.RunDone)


def test_shared_blobs_sent_once_then_mounted():
    store, jobs, shared = fleet(n_images=6, shared=2)
    dest = MemoryDestination()
    summary, _ = run(MemorySource(store), dest, jobs, maxconn=4)
    for layer in shared:
        assert dest.puts[digest_bytes(layer)] == 1
    # each of the other 5 repositories got the 2 shared layers by mount
    assert summary.blobs_mounted == 2 * 5
    assert summary.blobs_copied == 2 + 6 * 2  # shared once; per image its own layer + config


def test_second_run_sends_nothing():
    store, jobs, _ = fleet()
    dest = MemoryDestination()
    run(MemorySource(store), dest, jobs)
    puts_before = sum(dest.puts.values())
    manifests_before = len(dest.manifest_puts)
    summary, _ = run(MemorySource(store), dest, jobs)
    assert summary.bytes_sent == 0 and summary.blobs_copied == 0
    assert (
        summary.up_to_date == 6 and summary.blobs_skipped == 0
    )  # manifests present: blobs not even checked
    assert sum(dest.puts.values()) == puts_before
    assert len(dest.manifest_puts) == manifests_before


def test_source_breaking_off_resumes_from_the_byte_reached():
    store = MemoryStore()
    layer = os.urandom(200_000)
    store.add_image("app", "1", [layer])
    digest = digest_bytes(layer)
    source = MemorySource(store, break_after={digest: [50_000, 120_000]})
    dest = MemoryDestination()
    summary, events = run(source, dest, [job("app", "1")])
    assert summary.ok == 1
    assert [o for d, o in source.opens if d == digest] == [0, 50_000, 120_000]
    retries = [e for e in events if isinstance(e, ev.BlobRetry)]
    assert [r.resume_from for r in retries] == [50_000, 120_000]
    assert dest.store.blobs[digest] == layer


def test_destination_failure_retried_then_succeeds():
    store = MemoryStore()
    layer = os.urandom(100_000)
    store.add_image("app", "1", [layer])
    dest = MemoryDestination(fail_puts={digest_bytes(layer): 2})
    summary, _ = run(MemorySource(store), dest, [job("app", "1")], retries=3)
    assert summary.ok == 1 and dest.puts[digest_bytes(layer)] == 3


def test_destination_failing_past_retries_fails_only_that_image():
    store = MemoryStore()
    bad = os.urandom(10_000)
    store.add_image("bad", "1", [bad])
    store.add_image("good", "1", [os.urandom(10_000)])
    dest = MemoryDestination(fail_puts={digest_bytes(bad): 10})
    summary, events = run(
        MemorySource(store), dest, [job("bad", "1"), job("good", "1"), job("nope", "1")], retries=1
    )
    assert summary.ok == 1
    assert [r.job.label for r in summary.failed] == ["bad:1"]
    assert [r.job.label for r in summary.invalid] == ["nope:1"]
    assert ("good", "1") in dest.store.manifests and ("bad", "1") not in dest.store.manifests
    done = events[-1]
    assert isinstance(done, ev.RunDone) and done.failed == 1 and done.invalid == 1


def test_corrupt_source_blob_is_never_stored():
    store = MemoryStore()
    layer = os.urandom(10_000)
    store.add_image("app", "1", [layer])
    store.blobs[digest_bytes(layer)] = layer[:-1] + bytes([layer[-1] ^ 1])
    dest = MemoryDestination()
    summary, _ = run(MemorySource(store), dest, [job("app", "1")], retries=1)
    assert summary.ok == 0 and "hashes to" in summary.failed[0].error
    assert digest_bytes(layer) not in dest.store.blobs
    assert dest.aborted and not dest.committed


def _multiarch():
    store = MemoryStore()
    amd = store.add_image("multi", "amd", [os.urandom(1000)], {"architecture": "amd64"})
    arm = store.add_image("multi", "arm", [os.urandom(1000)], {"architecture": "arm64"})
    s390 = store.add_image("multi", "s390", [os.urandom(1000)], {"architecture": "s390x"})
    index = store.add_index(
        "multi",
        "1",
        [
            (amd, {"os": "linux", "architecture": "amd64"}),
            (arm, {"os": "linux", "architecture": "arm64"}),
            (s390, {"os": "linux", "architecture": "s390x"}),
        ],
    )
    return store, index, (amd, arm, s390)


def test_index_copied_whole_children_first():
    store, index, children = _multiarch()
    dest = MemoryDestination()
    summary, _ = run(MemorySource(store), dest, [job("multi", "1")])
    assert summary.ok == 1 and summary.images[0].digest == index.digest
    assert dest.store.manifests[("multi", "1")] == index
    order = [ref for _, ref in dest.manifest_puts]
    assert order[-1] == "1" and set(order[:-1]) == {c.digest for c in children}


def test_platform_selection_rewrites_index_and_says_so():
    store, index, (amd, arm, _) = _multiarch()
    dest = MemoryDestination()
    summary, _ = run(
        MemorySource(store),
        dest,
        [job("multi", "1")],
        platforms=(Platform.parse("linux/amd64"), Platform.parse("linux/arm64")),
    )
    pushed = dest.store.manifests[("multi", "1")]
    assert pushed.digest != index.digest
    parsed = pushed.parse()
    assert isinstance(parsed, ImageIndex) and {d.digest for d in parsed.manifests} == {
        amd.digest,
        arm.digest,
    }
    assert "kept 2 of 3 platforms" in summary.images[0].notes[0]

    dest1 = MemoryDestination()
    summary1, _ = run(
        MemorySource(store), dest1, [job("multi", "1")], platforms=(Platform.parse("linux/arm64"),)
    )
    assert dest1.store.manifests[("multi", "1")] == arm
    assert "instead of the index" in summary1.images[0].notes[0]

    summary2, _ = run(
        MemorySource(store),
        MemoryDestination(),
        [job("multi", "1")],
        platforms=(Platform.parse("linux/ppc64le"),),
    )
    assert summary2.invalid and "no manifest for platform" in summary2.invalid[0].error


@pytest.mark.parametrize("maxconn", [1, 5])
def test_bounded_concurrency(maxconn):
    store, jobs, _ = fleet(n_images=8, shared=1, own=2)
    active = 0
    peak = 0
    lock = threading.Lock()

    class CountingDestination(MemoryDestination):
        def put_blob(self, repository, desc, chunks, progress=None):
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            try:
                time.sleep(0.005)
                super().put_blob(repository, desc, chunks, progress)
            finally:
                with lock:
                    active -= 1

    summary, _ = run(MemorySource(store), CountingDestination(), jobs, maxconn=maxconn)
    assert summary.ok == 8
    assert 1 <= peak <= maxconn
