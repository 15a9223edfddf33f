"""The copy engine: copies images from any Source to any Destination.

For each image: resolve the manifest, walk index → children → config and layers, transfer
the blobs the destination lacks with bounded concurrency, then push child manifests and
finally the top manifest under its tag. A blob shared by many images is transferred once
per run (single-flight); once it is in one repository of the destination, other
repositories get it by a cross-repository mount. Every blob is hashed on the way.
One failing image does not stop the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from transship.engine import events as ev
from transship.engine.retry import RETRYABLE, ResumingReader, backoff_delay
from transship.errors import (
    Cancelled,
    NotFoundError,
    ReferenceError_,
    TransshipError,
    UnsupportedError,
)
from transship.oci.descriptor import Descriptor, Platform
from transship.oci.manifest import ImageIndex, ImageManifest, RawManifest, build_index
from transship.transports.base import Destination, Source


@dataclass(frozen=True)
class CopyJob:
    """One image to copy: where it is in the source and where it goes."""

    label: str  # the image as the user named it, for messages
    source_repository: str
    source_reference: str  # tag or digest
    target_repository: str
    target_tag: str | None  # None: pushed by digest only
    source_label: str = ""  # full source reference, recorded by bundle destinations

    @property
    def target_label(self) -> str:
        return (
            f"{self.target_repository}:{self.target_tag}"
            if self.target_tag
            else self.target_repository
        )


@dataclass
class CopyOptions:
    maxconn: int = 5
    retries: int = 3
    platforms: Sequence[Platform] = ()
    # Source and destination are the same registry: blobs can be mounted from the source repo.
    same_registry: bool = False
    backoff_base: float = 0.5
    # Set it to stop the run: images and blobs not yet started fail as "cancelled";
    # transfers already running finish, so nothing is left half-written.
    cancel: threading.Event | None = None


@dataclass
class ImageResult:
    job: CopyJob
    digest: str = ""
    error: str = ""
    invalid: bool = False
    notes: list[str] = field(default_factory=list)
    up_to_date: bool = False  # the destination already had this manifest under this name

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class RunSummary:
    images: list[ImageResult]
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return sum(1 for r in self.images if r.ok)

    @property
    def failed(self) -> list[ImageResult]:
        return [r for r in self.images if not r.ok and not r.invalid]

    @property
    def invalid(self) -> list[ImageResult]:
        return [r for r in self.images if r.invalid]

    @property
    def up_to_date(self) -> int:
        return sum(1 for r in self.images if r.up_to_date)

    def done_event(self) -> ev.RunDone:
        return ev.RunDone(
            ok=self.ok,
            failed=len(self.failed),
            invalid=len(self.invalid),
            blobs_copied=self.blobs_copied,
            blobs_skipped=self.blobs_skipped,
            blobs_mounted=self.blobs_mounted,
            bytes_sent=self.bytes_sent,
            seconds=self.seconds,
            failures=tuple((r.job.label, r.error) for r in self.images if not r.ok),
            images_up_to_date=self.up_to_date,
        )

    def merged(self, other: RunSummary) -> RunSummary:
        """This run and another as one (lists that name several source registries)."""
        return RunSummary(
            self.images + other.images,
            self.blobs_copied + other.blobs_copied,
            self.blobs_skipped + other.blobs_skipped,
            self.blobs_mounted + other.blobs_mounted,
            self.bytes_sent + other.bytes_sent,
            self.seconds + other.seconds,
        )


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.copied = self.skipped = self.mounted = self.bytes_sent = 0

    def add(self, how: str, nbytes: int = 0) -> None:
        with self.lock:
            if how == "copied":
                self.copied += 1
            elif how == "skipped":
                self.skipped += 1
            elif how == "mounted":
                self.mounted += 1
            self.bytes_sent += nbytes


class CopyEngine:
    def __init__(
        self,
        source: Source,
        destination: Destination,
        options: CopyOptions | None = None,
        emit: Callable[[ev.Event], None] | None = None,
    ):
        self.source = source
        self.destination = destination
        self.options = options or CopyOptions()
        self.emit = emit or (lambda event: None)
        self._blob_pool = ThreadPoolExecutor(
            max(1, self.options.maxconn), thread_name_prefix="blob"
        )
        self._lock = threading.Lock()
        # (destination repository, digest) -> the one transfer of that blob there
        self._blob_tasks: dict[tuple[str, str], Future[str]] = {}
        # digest -> first destination repository the blob went to, and its transfer
        self._first_home: dict[str, tuple[str, Future[str]]] = {}
        self._counters = _Counters()
        # index digest -> its child manifests, learnt while planning, used when pushing
        self._manifest_tree: dict[str, list[RawManifest]] = {}

    # -- public -----------------------------------------------------------------------
    def run(self, jobs: Sequence[CopyJob]) -> RunSummary:
        started = time.monotonic()
        self.emit(ev.RunStarted(images=len(jobs)))
        workers = max(1, min(self.options.maxconn, len(jobs)))
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="image") as pool:
                results = list(pool.map(self._copy_image, jobs))
        finally:
            self._blob_pool.shutdown(wait=True)
        summary = RunSummary(
            results,
            self._counters.copied,
            self._counters.skipped,
            self._counters.mounted,
            self._counters.bytes_sent,
            time.monotonic() - started,
        )
        self.emit(summary.done_event())
        return summary

    # -- images -----------------------------------------------------------------------
    def _copy_image(self, job: CopyJob) -> ImageResult:
        result = ImageResult(job)
        try:
            self._raise_if_cancelled()
            top = self._get_manifest(job.source_repository, job.source_reference)
            top = self._select_platforms(job, top, result)
            if self._already_there(job, top):
                # A registry accepts a manifest only once everything it names is present.
                result.up_to_date = True
                blobs: list[Descriptor] = []
            else:
                blobs = self._plan_blobs(job, top)
            self.emit(
                ev.ImagePlanned(
                    image=job.label,
                    target=job.target_label,
                    blobs=len(blobs),
                    bytes=sum(max(d.size, 0) for d in blobs),
                )
            )
            if not result.up_to_date:
                self._transfer_blobs(job, blobs)
                self._push_manifests(job, top)
            result.digest = top.digest
            self.emit(
                ev.ImageDone(
                    image=job.label,
                    target=job.target_label,
                    digest=top.digest,
                    notes=tuple(result.notes),
                    up_to_date=result.up_to_date,
                )
            )
        except (NotFoundError, ReferenceError_, UnsupportedError) as e:
            result.error, result.invalid = str(e), True
        except TransshipError as e:
            result.error = str(e)
        except Exception as e:  # a bug or an unexpected OS error: report it, keep going
            result.error = f"{type(e).__name__}: {e}"
        if result.error:
            self.emit(
                ev.ImageFailed(
                    image=job.label,
                    target=job.target_label,
                    reason=result.error,
                    invalid=result.invalid,
                )
            )
        return result

    def _already_there(self, job: CopyJob, top: RawManifest) -> bool:
        reference = job.target_tag or top.digest
        return bool(
            self._with_retries(
                lambda: self.destination.has_manifest(job.target_repository, reference, top.digest),
                "manifest check",
            )
        )

    def _get_manifest(self, repository: str, reference: str) -> RawManifest:
        return self._with_retries(
            lambda: self.source.get_manifest(repository, reference), f"manifest {reference}"
        )

    def _select_platforms(self, job: CopyJob, top: RawManifest, result: ImageResult) -> RawManifest:
        """Keep only the chosen platforms of an index; say so, since the digest changes."""
        if not self.options.platforms:
            return top
        parsed = top.parse()
        if not isinstance(parsed, ImageIndex):
            return top
        kept = [
            d
            for d in parsed.manifests
            if any(p.matches(d.platform) for p in self.options.platforms)
        ]
        wanted = ", ".join(str(p) for p in self.options.platforms)
        if not kept:
            raise NotFoundError(f"{job.label}: no manifest for platform {wanted} in its index")
        if len(kept) == len(parsed.manifests):
            return top
        if len(kept) == 1:
            child = self._get_manifest(job.source_repository, kept[0].digest)
            result.notes.append(
                f"platform {kept[0].platform}: pushed its manifest {child.digest} instead of the index {top.digest}"
            )
            return child
        new = RawManifest(build_index(kept, top.media_type), top.media_type)
        result.notes.append(
            f"kept {len(kept)} of {len(parsed.manifests)} platforms: new index {new.digest} replaces {top.digest}"
        )
        return new

    def _children(self, job: CopyJob, raw: RawManifest) -> list[RawManifest]:
        parsed = raw.parse()
        if isinstance(parsed, ImageIndex):
            return [self._get_manifest(job.source_repository, d.digest) for d in parsed.manifests]
        return []

    def _plan_blobs(self, job: CopyJob, top: RawManifest) -> list[Descriptor]:
        """Every blob the image needs, each once, config before layers."""
        seen: dict[str, Descriptor] = {}
        pending = [top]
        while pending:
            raw = pending.pop(0)
            parsed = raw.parse()
            if isinstance(parsed, ImageIndex):
                children = self._children(job, raw)
                with self._lock:
                    self._manifest_tree[raw.digest] = children
                pending.extend(children)
            elif isinstance(parsed, ImageManifest):
                for desc in parsed.blobs:
                    seen.setdefault(desc.digest, desc)
        return list(seen.values())

    def _push_manifests(self, job: CopyJob, top: RawManifest) -> None:
        """Children first (by digest), then the top manifest under the tag."""
        order: list[RawManifest] = []

        def walk(raw: RawManifest) -> None:
            for child in self._manifest_tree.get(raw.digest, []):
                walk(child)
                order.append(child)

        walk(top)
        repo = job.target_repository
        for child in order:
            if not self.destination.has_manifest(repo, child.digest, child.digest):
                self._with_retries(
                    lambda c=child: self.destination.put_manifest(repo, c.digest, c), "manifest"
                )
        reference = job.target_tag or top.digest
        if not self.destination.has_manifest(repo, reference, top.digest):
            self._with_retries(
                lambda: self.destination.put_manifest(repo, reference, top), "manifest"
            )

    # -- blobs ------------------------------------------------------------------------
    def _transfer_blobs(self, job: CopyJob, blobs: list[Descriptor]) -> None:
        repo = job.target_repository
        futures: list[Future[str]] = []
        deferred: list[tuple[Descriptor, Future[str]]] = []
        with self._lock:
            for desc in blobs:
                key = (repo, desc.digest)
                if key in self._blob_tasks:
                    futures.append(self._blob_tasks[key])
                elif desc.digest in self._first_home:
                    # Being sent to another repository: wait for it, then mount.
                    deferred.append((desc, self._first_home[desc.digest][1]))
                    placeholder: Future[str] = Future()
                    self._blob_tasks[key] = placeholder
                else:
                    future = self._blob_pool.submit(self._transfer_blob, job, desc, None)
                    self._blob_tasks[key] = future
                    self._first_home[desc.digest] = (repo, future)
                    futures.append(future)
        for desc, other in deferred:
            placeholder = self._blob_tasks[(repo, desc.digest)]
            # Each mount starts as soon as its blob has arrived in its first repository.
            other.add_done_callback(
                lambda done, d=desc, p=placeholder: self._after_first_home(job, d, done, p)
            )
            futures.append(placeholder)
        errors = []
        for future in futures:
            try:
                future.result()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def _after_first_home(
        self, job: CopyJob, desc: Descriptor, done: Future[str], placeholder: Future[str]
    ) -> None:
        home = self._first_home[desc.digest][0] if done.exception() is None else None
        try:  # where it failed, this repository tries on its own
            inner = self._blob_pool.submit(self._transfer_blob, job, desc, home)
        except RuntimeError as e:  # the pool is shutting down
            placeholder.set_exception(e)
            return
        _chain(inner, placeholder)

    def _transfer_blob(self, job: CopyJob, desc: Descriptor, mount_from: str | None) -> str:
        self._raise_if_cancelled()
        repo = job.target_repository
        dst = self.destination
        if self._with_retries(lambda: dst.has_blob(repo, desc), "blob check"):
            return self._done(desc, "skipped")
        mount_sources = [mount_from] if mount_from else []
        if self.options.same_registry:
            mount_sources.append(job.source_repository)
        for other in mount_sources:
            if other != repo and self._try_mount(repo, desc, other):
                return self._done(desc, "mounted")
        sent = self._copy_blob_bytes(job, desc)
        return self._done(desc, "copied", sent)

    def _try_mount(self, repo: str, desc: Descriptor, from_repo: str) -> bool:
        """A mount is an optimisation: when it keeps failing, copy the bytes instead."""
        try:
            return bool(
                self._with_retries(
                    lambda: self.destination.mount_blob(repo, desc, from_repo), "mount"
                )
            )
        except TransshipError:
            return False

    def _copy_blob_bytes(self, job: CopyJob, desc: Descriptor) -> int:
        self.emit(
            ev.BlobStarted(digest=desc.digest, size=desc.size, repository=job.target_repository)
        )
        sent = 0

        def progress(nbytes: int) -> None:
            nonlocal sent
            sent += nbytes
            self.emit(ev.BlobProgress(digest=desc.digest, nbytes=nbytes))

        def on_retry(attempt: int, reason: str, offset: int) -> None:
            self.emit(
                ev.BlobRetry(digest=desc.digest, attempt=attempt, reason=reason, resume_from=offset)
            )

        for attempt in range(self.options.retries + 1):
            reader = ResumingReader(
                lambda offset: self.source.open_blob(job.source_repository, desc, offset),
                desc.size,
                self.options.retries,
                on_retry,
                self.options.backoff_base,
            )
            try:
                self.destination.put_blob(job.target_repository, desc, reader, progress)
                return sent
            except RETRYABLE as e:
                if attempt == self.options.retries:
                    raise
                on_retry(attempt + 1, str(e), 0)
                if sent:
                    progress(-sent)  # the upload starts over: so does its progress
                time.sleep(backoff_delay(attempt, self.options.backoff_base))
        raise AssertionError("unreachable")

    def _raise_if_cancelled(self) -> None:
        if self.options.cancel is not None and self.options.cancel.is_set():
            raise Cancelled("cancelled")

    def _done(self, desc: Descriptor, how: str, sent: int = 0) -> str:
        self._counters.add(how, sent)
        self.emit(ev.BlobDone(digest=desc.digest, size=desc.size, how=how, bytes_sent=sent))
        return how

    def _with_retries(self, action, what: str):
        for attempt in range(self.options.retries + 1):
            try:
                return action()
            except RETRYABLE:
                if attempt == self.options.retries:
                    raise
                time.sleep(backoff_delay(attempt, self.options.backoff_base))
        raise AssertionError("unreachable")


def _chain(inner: Future, outer: Future) -> None:
    def copy(done: Future) -> None:
        if done.exception() is not None:
            outer.set_exception(done.exception())
        else:
            outer.set_result(done.result())

    inner.add_done_callback(copy)


def copy_images(
    source: Source,
    destination: Destination,
    jobs: Sequence[CopyJob],
    options: CopyOptions | None = None,
    emit: Callable[[ev.Event], None] | None = None,
) -> RunSummary:
    """Copy `jobs` and commit the destination (or abort it when nothing succeeded)."""
    engine = CopyEngine(source, destination, options, emit)
    summary = engine.run(jobs)
    if summary.ok or not jobs:
        destination.commit()
    else:
        destination.abort()
    return summary
