"""One data file being written: an append-only tar archive with a running sha256, plus
its journal of completed members.

Blobs are written inside transactions: `mark()` before, `rollback(mark)` to cut the file
back if the blob fails (bad digest, source error, disk full), so a data file never holds
a half-written member once the writer moves on. After a blob is complete, its record goes
to the journal (a JSON line): a later run reads the journals to know which blobs are
already there.

Neither is fsynced per blob (that cost ~8 ms a blob here): a later run re-reads and
re-verifies every journaled blob before trusting it, so a record whose bytes did not reach
the disk, or a torn last line, only means that blob is fetched again. Data files are
fsynced when finished, before the meta file is written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from transship.bundle.tarfmt import EOF_MARKER, member_header, padding
from transship.errors import BundleError, DigestMismatchError
from transship.oci.descriptor import Descriptor
from transship.oci.digest import DigestVerifier

JOURNAL_SUFFIX = ".journal"


def io_error(path: Path, error: OSError, doing: str = "writing") -> BundleError:
    """A typed error naming the file; disk full gets its own clear words."""
    if error.errno == errno.ENOSPC:
        return BundleError(f"disk full while {doing} {path}: no space left on device")
    if error.errno == errno.EDQUOT:
        return BundleError(f"disk quota exceeded while {doing} {path}")
    return BundleError(f"error while {doing} {path}: {error.strerror or error}")


def _write_some(file: BinaryIO, data: memoryview) -> int:
    """One write call (a seam for tests that simulate a full disk)."""
    return file.write(data) or 0


@dataclass(frozen=True)
class Mark:
    size: int
    hash_state: Any  # hashlib object copy


class DataFile:
    """An open data file; not thread-safe (one writer slot owns it at a time)."""

    def __init__(self, path: Path, number: int, keep: int | None = None):
        """Open `path` for appending. `keep`: bytes of an existing file to keep (the rest is
        cut off); None creates a new, empty file."""
        self.path = path
        self.number = number
        self.finished = False
        self._hash = hashlib.sha256()
        try:
            if keep is None:
                # Unbuffered: a failed write (disk full) must fail here, not in a later flush.
                self._file = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed in finish()/close()
                self.size = 0
            else:
                self._file = open(path, "r+b", buffering=0)  # noqa: SIM115
                self._file.truncate(keep)
                self._rehash(keep)
                self._file.seek(keep)
                self.size = keep
        except OSError as e:
            raise io_error(path, e, "opening") from None

    def _rehash(self, upto: int) -> None:
        self._file.seek(0)
        left = upto
        while left:
            chunk = self._file.read(min(left, 1 << 20))
            if not chunk:
                raise BundleError(f"{self.path}: shorter than its journal says")
            self._hash.update(chunk)
            left -= len(chunk)

    # -- writing ---------------------------------------------------------------------------

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[_write_some(self._file, view) :]
        except OSError as e:
            raise io_error(self.path, e) from None
        self._hash.update(data)
        self.size += len(data)

    def mark(self) -> Mark:
        return Mark(self.size, self._hash.copy())

    def rollback(self, mark: Mark) -> None:
        try:
            self._file.truncate(mark.size)
            self._file.seek(mark.size)
        except OSError as e:
            raise io_error(self.path, e, "truncating") from None
        self.size = mark.size
        self._hash = mark.hash_state.copy()

    def write_member(self, name: str, size: int, source: ChunkTaker) -> int:
        """Append a member of exactly `size` bytes taken from `source`; returns the offset
        of its data. The caller rolls back on any error."""
        self._write(member_header(name, size))
        offset = self.size
        for chunk in source.take(size):
            self._write(chunk)
        self._write(b"\0" * padding(size))
        return offset

    def write_bytes_member(self, name: str, data: bytes) -> int:
        return self.write_member(name, len(data), ChunkTaker([data]))

    def sync(self) -> None:
        try:
            os.fsync(self._file.fileno())
        except OSError as e:
            raise io_error(self.path, e) from None

    def finish(self) -> tuple[int, str]:
        """Write the end-of-archive marker and close; returns (size, sha256 hex)."""
        if not self.finished:
            self._write(EOF_MARKER)
            self.sync()
            self._file.close()
            self.finished = True
        return self.size, self._hash.hexdigest()

    def close(self) -> None:
        """Close without finishing (abort: the journal lets a later run pick up)."""
        if not self.finished:
            self._file.close()
            self.finished = True

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        journal_path(self.path).unlink(missing_ok=True)


class ChunkTaker:
    """Hands out exactly-sized runs of bytes from a stream of chunks of any size."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._leftover = b""

    def take(self, size: int) -> Iterator[bytes]:
        left = size
        while left:
            chunk = self._leftover or next(self._chunks, None)
            self._leftover = b""
            if chunk is None:
                raise DigestMismatchError(f"stream ended {left} bytes early")
            if not chunk:
                continue
            if len(chunk) > left:
                chunk, self._leftover = chunk[:left], chunk[left:]
            left -= len(chunk)
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        if self._leftover:
            chunk, self._leftover = self._leftover, b""
            yield chunk
        yield from self._chunks

    def drain(self) -> int:
        """Consume what is left; returns how many bytes that was."""
        extra = len(self._leftover)
        self._leftover = b""
        for chunk in self._chunks:
            extra += len(chunk)
        return extra


def as_taker(chunks: Iterable[bytes]) -> ChunkTaker:
    return chunks if isinstance(chunks, ChunkTaker) else ChunkTaker(chunks)


# -- journal -----------------------------------------------------------------------------


def journal_path(data_path: Path) -> Path:
    return data_path.with_name(data_path.name + JOURNAL_SUFFIX)


def append_journal(data_path: Path, records: list[dict[str, Any]], sync: bool = False) -> None:
    """Append records (fsynced if asked; see the module docstring for why not by default)."""
    path = journal_path(data_path)
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if sync:
                os.fsync(f.fileno())
    except OSError as e:
        raise io_error(path, e) from None


def read_journal(data_path: Path) -> list[dict[str, Any]]:
    """The complete records of a journal; a torn last line (crash mid-write) is ignored."""
    path = journal_path(data_path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


# -- verified files ------------------------------------------------------------------------


def write_verified_file(
    path: Path,
    desc: Descriptor,
    chunks: Iterable[bytes],
    progress: Callable[[int], None] | None = None,
    sync: bool = True,
) -> None:
    """Stream into a temporary file beside `path`; rename only once size and digest match
    (after an fsync, unless `sync` is off: temporary spool files need none)."""
    verifier = DigestVerifier(desc.digest, desc.size if desc.size >= 0 else None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:16]}.", suffix=".partial", dir=path.parent)
    except OSError as e:
        raise io_error(path, e, "creating") from None
    try:
        with os.fdopen(fd, "wb") as f:
            # Errors raised by `chunks` (the source) pass through unchanged; only our
            # own writes become BundleError (e.g. disk full).
            for chunk in chunks:
                verifier.update(chunk)
                if desc.size >= 0 and verifier.count > desc.size:
                    raise DigestMismatchError(
                        f"blob {desc.digest}: source sent more than the {desc.size} bytes expected"
                    )
                _write_file(f, chunk, path)
                if progress:
                    progress(len(chunk))
            verifier.verify("blob")
            try:
                f.flush()
                if sync:
                    os.fsync(f.fileno())
            except OSError as e:
                raise io_error(path, e) from None
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_file(f: BinaryIO, chunk: bytes, path: Path) -> None:
    try:
        f.write(chunk)
    except OSError as e:
        raise io_error(path, e) from None
