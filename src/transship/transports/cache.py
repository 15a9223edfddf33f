"""A local content-addressed blob cache in front of any Source.

A blob fetched once is kept under `DIR/blobs/sha256/<hex>` so the next bundle or the next
target reads it from disk. Entries are verified as they are read (a damaged entry is
dropped and the read fails, so the engine retries from the real source), written under a
temporary name and renamed only once their digest checked out, and evicted by age and by
total size, least recently used first.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from transship.errors import DigestMismatchError, TransientError
from transship.oci.descriptor import Descriptor
from transship.oci.digest import DigestVerifier, algorithm_of, hex_of
from transship.oci.manifest import RawManifest
from transship.transports.base import Source


class BlobCache:
    def __init__(self, root: str | Path, keep_days: float = 7, keep_size_gb: float = 10):
        self.root = Path(root)
        self.keep_seconds = keep_days * 86400
        self.keep_bytes = int(keep_size_gb * (1 << 30))
        self._lock = threading.Lock()
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def path_of(self, digest: str) -> Path:
        return self.root / "blobs" / algorithm_of(digest) / hex_of(digest)

    def lookup(self, desc: Descriptor) -> Path | None:
        path = self.path_of(desc.digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        if desc.size >= 0 and size != desc.size:
            self.drop(desc.digest)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # mark as recently used for eviction
        return path

    def drop(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_of(digest).unlink()

    def begin(self, desc: Descriptor) -> PartialEntry:
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix=hex_of(desc.digest)[:16])
        return PartialEntry(self, desc, os.fdopen(fd, "wb"), Path(tmp))

    def evict(self, now: float | None = None) -> int:
        """Remove entries unused for longer than keep_days, then the least recently used
        ones until the cache fits keep_size_gb. Returns the number removed."""
        now = now or time.time()
        entries = []
        for path in (self.root / "blobs").glob("*/*"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime, st.st_size, path))
        entries.sort()
        removed = 0
        total = sum(size for _, size, _ in entries)
        for mtime, size, path in entries:
            if now - mtime > self.keep_seconds or total > self.keep_bytes:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
                total -= size
        return removed


class PartialEntry:
    """A blob being written into the cache; it becomes an entry only when complete and
    its digest checks out."""

    def __init__(self, cache: BlobCache, desc: Descriptor, file: BinaryIO, tmp: Path):
        self.cache, self.desc, self.file, self.tmp = cache, desc, file, tmp
        self.verifier = DigestVerifier(desc.digest, desc.size)

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.verifier.update(data)

    def commit(self) -> bool:
        self.file.close()
        try:
            self.verifier.verify("cached blob")
        except DigestMismatchError:
            self.discard()
            return False
        final = self.cache.path_of(self.desc.digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, final)
        return True

    def discard(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


class _VerifyingReader:
    """Reads a cached file and checks its digest at the end; drops a damaged entry."""

    def __init__(self, file: BinaryIO, desc: Descriptor, cache: BlobCache):
        self._file = file
        self._verifier = DigestVerifier(desc.digest, desc.size)
        self._desc = desc
        self._cache = cache

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(n)
        self._verifier.update(data)
        if not data or (n < 0):
            try:
                self._verifier.verify("cached blob")
            except DigestMismatchError as e:
                self._cache.drop(self._desc.digest)
                raise TransientError(f"{e}; dropped from the cache, fetching again") from None
        return data


class _TeeReader:
    """Passes a source stream through while writing a copy into the cache."""

    def __init__(self, stream: BinaryIO, sink: PartialEntry):
        self._stream = stream
        self._sink = sink
        self.at_end = False

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data:
            self._sink.write(data)
        if not data or n < 0:
            self.at_end = True
        return data


class CachingSource(Source):
    """Any Source, with blobs served from and kept in a BlobCache."""

    def __init__(self, inner: Source, cache: BlobCache):
        self.inner = inner
        self.cache = cache
        self.name = inner.name

    def get_manifest(self, repository: str, reference: str) -> RawManifest:
        return self.inner.get_manifest(repository, reference)

    def list_tags(self, repository: str) -> list[str]:
        return self.inner.list_tags(repository)

    @contextmanager
    def open_blob(self, repository: str, desc: Descriptor, offset: int = 0) -> Iterator[BinaryIO]:
        path = self.cache.lookup(desc)
        if path is not None:
            self.cache.hits += 1
            with open(path, "rb") as f:
                if offset:
                    f.seek(offset)
                    yield f  # a resumed read: the engine verifies the whole blob
                else:
                    yield _VerifyingReader(f, desc, self.cache)  # type: ignore[misc]
            return
        self.cache.misses += 1
        if offset:
            with self.inner.open_blob(repository, desc, offset) as stream:
                yield stream
            return
        with self.inner.open_blob(repository, desc) as stream:
            entry = self.cache.begin(desc)
            tee = _TeeReader(stream, entry)
            try:
                yield tee  # type: ignore[misc]
            except BaseException:
                entry.discard()
                raise
            # Keep the entry only if the reader took the whole blob and it verified.
            if tee.at_end:
                entry.commit()
            else:
                entry.discard()

    def close(self) -> None:
        self.inner.close()
