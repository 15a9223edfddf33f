"""Writing bundles: blobs into N data files in parallel, the meta file last.

`BlobStoreWriter` is the engine room: N writer slots, each owning one open data file;
`put` takes a free slot, streams the blob into it as tar members (never holding it in
memory), verifies size and digest, then journals it. Any failure cuts the data
file back to where the blob began.

Volumes: with `volume_size`, a data file stays below it (by at least one byte: FAT32 holds
files of at most 4 GiB - 1, so `4G` must give files that fit). A member that does not fit
in the current file starts a new one; a blob larger than a whole volume is split into
members `blobs/sha256/<hex>.part001`, `.part002`, ... that fill the current volume and
the next ones (the meta lists every part in order). So each data file stays a plain,
complete tar archive.

Resume: a run that stops (crash, ^C, disk full) leaves its data files and journals. The
next run with the same folder and name re-reads each journaled blob, keeps those whose
bytes still hash right, cuts everything after the last good member, and reports those
blobs as present so they are not fetched again. A codec that is not `resumable` (dedup:
its blobs need the content store, written only at commit) makes the next run start over.

`BundleWriter` adds the bundle around it: naming, the in-progress state file, single-file
mode (one data file that is also an OCI layout and docker-archive), and the meta.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from transship import __version__
from transship.bundle.codecs import (
    BlobCodec,
    EncodedBlob,
    ParentBundle,
    PieceSink,
    RawCodec,
    get_codec,
)
from transship.bundle.datafile import (
    ChunkTaker,
    DataFile,
    Mark,
    append_journal,
    as_taker,
    io_error,
    journal_path,
    read_journal,
    write_verified_file,
)
from transship.bundle.layout import LayoutImage, default_platform, layout_members
from transship.bundle.meta import (
    FORMAT,
    META_SUFFIX,
    VERSION,
    BlobEntry,
    BundleMeta,
    DataFileEntry,
    ImageEntry,
    ParentEntry,
    Piece,
    now_iso,
    write_atomically,
    write_meta,
)
from transship.bundle.reader import FilePieceSource
from transship.bundle.tarfmt import BLOCK, EOF_MARKER, member_header, member_span, padding
from transship.errors import BundleError, ConfigError, DigestMismatchError
from transship.oci.descriptor import Descriptor, Platform
from transship.oci.digest import DigestVerifier

T = TypeVar("T")

MIN_VOLUME_SIZE = 64 * 1024
# Offset-based reads check the plain 512-byte header before each piece, which holds
# names up to 100 bytes; keep room for a `.partNNN` suffix.
MAX_MEMBER_NAME = 88
PARTIAL_SUFFIX = ".partial.json"


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """`4G`, `4GiB`, `700M`, `1.5g`, `65536` → bytes (K, M, G, T are powers of 1024)."""
    if isinstance(text, int):
        return text
    m = _SIZE_RE.match(text)
    if not m:
        raise ConfigError(f"not a size: {text!r} (use e.g. 4G, 700M, 65536)")
    factor = 1024 ** " kmgt".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * factor)


@dataclass(frozen=True)
class DataFileNaming:
    """How the data files of one bundle are named: `<stem>.000.tar`, `<stem>.001.tar`...
    (`<stem>.tar` in single-file mode)."""

    stem: str
    single: bool = False
    separator: str = "."
    suffix: str = ".tar"

    def name(self, number: int) -> str:
        if self.single:
            return f"{self.stem}{self.suffix}"
        return f"{self.stem}{self.separator}{number:03d}{self.suffix}"

    def number_of(self, file_name: str) -> int | None:
        if self.single:
            return 0 if file_name == f"{self.stem}{self.suffix}" else None
        pattern = re.escape(self.stem + self.separator) + r"(\d{3,})" + re.escape(self.suffix)
        m = re.fullmatch(pattern, file_name)
        return int(m.group(1)) if m else None


def _verifying(
    chunks: Iterable[bytes], verifier: DigestVerifier, progress: Callable[[int], None] | None
) -> Iterator[bytes]:
    limit = verifier.size
    for chunk in chunks:
        verifier.update(chunk)
        if limit is not None and verifier.count > limit:
            raise DigestMismatchError(
                f"blob {verifier.expected}: source sent more than the {limit} bytes expected"
            )
        if progress:
            progress(len(chunk))
        yield chunk


class _Slot:
    """One writer's current data file (opened on first use)."""

    def __init__(self, number: int):
        self.number = number
        self.current: DataFile | None = None


class _Transaction:
    """The pieces of one blob being written through one slot; a `PieceSink`."""

    def __init__(self, store: BlobStoreWriter, slot: _Slot):
        self.store = store
        self.slot = slot
        self.start_file = slot.current
        self.touched: list[tuple[DataFile, Mark | None]] = []  # None: created here
        self.full: list[DataFile] = []

    def _file(self) -> DataFile:
        if self.slot.current is None:
            self.slot.current = self.store._new_data_file()
            self.touched.append((self.slot.current, None))
        current = self.slot.current
        if not any(f is current for f, _ in self.touched):
            self.touched.append((current, current.mark()))
        return current

    def _roll(self) -> DataFile:
        """The current volume is full: continue in a new data file."""
        assert self.slot.current is not None
        self.full.append(self.slot.current)
        self.slot.current = None
        return self._file()

    def _free(self, df: DataFile) -> int:
        assert self.store.volume_limit is not None
        return self.store.volume_limit - df.size - len(EOF_MARKER)

    def _member(self, df: DataFile, name: str, size: int, taker: ChunkTaker) -> Piece:
        offset = df.write_member(name, size, taker)
        return Piece(file=df.path.name, member=name, offset=offset, length=size)

    def write_piece(self, member: str, size: int, chunks: Iterable[bytes]) -> list[Piece]:
        if len(member.encode()) > MAX_MEMBER_NAME:
            raise BundleError(f"tar member name {member!r} is too long for a bundle")
        taker = as_taker(chunks)
        df = self._file()
        volume = self.store.volume_limit
        span = member_span(member, size)
        if volume is None or span <= self._free(df):
            return [self._member(df, member, size, taker)]
        if span + len(EOF_MARKER) <= volume:
            return [self._member(self._roll(), member, size, taker)]
        # Larger than a whole volume: fill this one, then as many more as needed.
        pieces: list[Piece] = []
        left, part = size, 1
        min_part = min(left, max(BLOCK, volume // 16))
        while left:
            name = f"{member}.part{part:03d}"
            room = (self._free(df) - len(member_header(name, left))) // BLOCK * BLOCK
            if room < min_part and df.size > 0:
                df = self._roll()
                continue
            if room <= 0:
                raise BundleError(f"volume size {volume} is too small to hold any data")
            n = min(left, room)
            pieces.append(self._member(df, name, n, taker))
            left -= n
            part += 1
            if left:
                df = self._roll()
        return pieces

    def find_piece(self, member: str) -> list[Piece] | None:
        return self.store._members.get(member)

    def commit(self, records: list[dict[str, Any]]) -> None:
        current = self.slot.current
        for df in self.full:
            self.store._retire(df)
        if records:
            target = current or (self.full[-1] if self.full else None)
            if target is not None:
                append_journal(target.path, records)

    def rollback(self) -> None:
        for df, mark in reversed(self.touched):
            if mark is None:
                df.remove()
            else:
                df.rollback(mark)
        self.slot.current = self.start_file


class BlobStoreWriter:
    """N data files written in parallel; thread-safe."""

    def __init__(
        self,
        directory: Path,
        naming: DataFileNaming,
        workers: int = 1,
        volume_size: int | None = None,
        journal: bool = True,
        spool_when_busy: bool = False,
    ):
        if workers < 1:
            raise ConfigError("the number of parallel data files must be at least 1")
        if volume_size is not None and volume_size < MIN_VOLUME_SIZE:
            raise ConfigError(
                f"volume size {volume_size} is too small (at least {MIN_VOLUME_SIZE} bytes)"
            )
        self.directory = directory
        self.naming = naming
        self.volume_size = volume_size
        # Largest file size allowed: below volume_size, whole tar blocks.
        self.volume_limit = (volume_size - 1) // BLOCK * BLOCK if volume_size else None
        self.journal = journal  # off for archives, which are never resumed
        # When every data file is busy, download into a temporary file meanwhile rather
        # than wait (single-file mode: one data file, many parallel downloads).
        self.spool_when_busy = spool_when_busy
        if directory.is_dir():  # spool files a crashed run left
            for stale in directory.glob(f".{naming.stem}.*.spool"):
                stale.unlink(missing_ok=True)
        self.workers = 1 if naming.single else workers
        self._lock = threading.Lock()
        self._done_cv = threading.Condition(self._lock)
        self._next_number = 0
        self._slots: list[_Slot] = [_Slot(i) for i in range(self.workers)]
        self._free: queue.Queue[_Slot] = queue.Queue()
        for slot in self._slots:
            self._free.put(slot)
        self._retired: list[DataFile] = []
        self._entries: dict[str, BlobEntry] = {}
        self._members: dict[str, list[Piece]] = {}
        self._inflight: set[str] = set()

    # -- files -----------------------------------------------------------------------------

    def existing_files(self) -> dict[int, Path]:
        found = {}
        for path in self.directory.iterdir() if self.directory.exists() else []:
            number = self.naming.number_of(path.name)
            if number is not None and path.is_file():
                found[number] = path
        return dict(sorted(found.items()))

    def _new_data_file(self) -> DataFile:
        with self._lock:
            number = 0 if self.naming.single else self._next_number
            self._next_number += 1
        path = self.directory / self.naming.name(number)
        journal_path(path).unlink(missing_ok=True)
        return DataFile(path, number)

    def _retire(self, df: DataFile) -> None:
        df.finish()
        with self._lock:
            self._retired.append(df)

    # -- blobs -----------------------------------------------------------------------------

    def get(self, digest: str) -> BlobEntry | None:
        with self._lock:
            return self._entries.get(digest)

    def entries(self) -> list[BlobEntry]:
        with self._lock:
            return list(self._entries.values())

    def put(
        self,
        desc: Descriptor,
        chunks: Iterable[bytes],
        codec: BlobCodec,
        progress: Callable[[int], None] | None = None,
    ) -> BlobEntry:
        """Store a blob (once: a digest already stored returns its entry)."""
        if desc.size < 0:
            raise BundleError(f"blob {desc.digest} has no known size; cannot store it")
        with self._lock:
            while desc.digest in self._inflight:
                self._done_cv.wait()
            if desc.digest in self._entries:
                return self._entries[desc.digest]
            self._inflight.add(desc.digest)
        try:
            entry = self._put_new(desc, chunks, codec, progress)
            with self._lock:
                self._entries[desc.digest] = entry
                for piece in entry.pieces:
                    self._members.setdefault(piece.member, [piece])
            return entry
        finally:
            with self._lock:
                self._inflight.discard(desc.digest)
                self._done_cv.notify_all()

    def _put_new(
        self,
        desc: Descriptor,
        chunks: Iterable[bytes],
        codec: BlobCodec,
        progress: Callable[[int], None] | None,
    ) -> BlobEntry:
        try:
            slot = self._free.get_nowait()
        except queue.Empty:
            if not self.spool_when_busy:
                slot = self._free.get()
            else:
                return self._put_spooled(desc, chunks, codec, progress)
        return self._put_in_slot(slot, desc, chunks, codec, progress)

    def _put_spooled(
        self,
        desc: Descriptor,
        chunks: Iterable[bytes],
        codec: BlobCodec,
        progress: Callable[[int], None] | None,
    ) -> BlobEntry:
        try:
            fd, name = tempfile.mkstemp(
                prefix=f".{self.naming.stem}.", suffix=".spool", dir=self.directory
            )
            os.close(fd)
        except OSError as e:
            raise io_error(self.directory, e, "spooling a blob in") from None
        spool = Path(name)
        try:
            write_verified_file(spool, desc, chunks, progress, sync=False)
            slot = self._free.get()
            with open(spool, "rb") as f:
                return self._put_in_slot(
                    slot, desc, iter(lambda: f.read(1 << 20), b""), codec, None
                )
        finally:
            spool.unlink(missing_ok=True)

    def _put_in_slot(
        self,
        slot: _Slot,
        desc: Descriptor,
        chunks: Iterable[bytes],
        codec: BlobCodec,
        progress: Callable[[int], None] | None,
    ) -> BlobEntry:
        txn = _Transaction(self, slot)
        try:
            verifier = DigestVerifier(desc.digest, desc.size)
            taker = ChunkTaker(_verifying(chunks, verifier, progress))
            encoded = codec.encode(desc, taker, txn)
            taker.drain()
            verifier.verify("blob")
            entry = BlobEntry(
                digest=desc.digest,
                size=desc.size,
                media_type=desc.media_type,
                encoding=encoded.encoding or codec.encoding,
                pieces=encoded.pieces,
                params=encoded.params,
            )
            txn.commit([{"blob": entry.model_dump(mode="json")}] if self.journal else [])
            return entry
        except BaseException:
            txn.rollback()
            raise
        finally:
            self._free.put(slot)

    def settle(self, settled: dict[str, EncodedBlob], encoding: str) -> None:
        """Give deferred blobs (`BlobCodec.settle_blobs`) their final pieces."""
        with self._lock:
            for digest, blob in settled.items():
                entry = self._entries[digest]
                self._entries[digest] = entry.model_copy(
                    update={
                        "encoding": blob.encoding or encoding,
                        "pieces": blob.pieces,
                        "params": blob.params,
                    }
                )

    def write_members(self, write: Callable[[PieceSink], T]) -> T:
        """Let `write` store members that belong to no blob (a codec's bundle-level data)
        through one slot; all of them are cut again if it fails."""
        slot = self._free.get()
        txn = _Transaction(self, slot)
        try:
            result = write(txn)
            txn.commit([])
            return result
        except BaseException:
            txn.rollback()
            raise
        finally:
            self._free.put(slot)

    def put_extra_member(self, name: str, data: bytes) -> None:
        """A small file that is not a blob (index.json...): single-file mode, at the end."""
        slot = self._free.get()
        txn = _Transaction(self, slot)
        try:
            txn.write_piece(name, len(data), [data])
            txn.commit([])
        except BaseException:
            txn.rollback()
            raise
        finally:
            self._free.put(slot)

    # -- resume ----------------------------------------------------------------------------

    def resume(self) -> int:
        """Take up the data files a stopped run left: keep the journaled blobs whose bytes
        still verify, cut the rest. Returns how many blobs were kept."""
        files = self.existing_files()
        if not files:
            return 0
        records: list[tuple[int, BlobEntry]] = []
        for number, path in files.items():
            for record in read_journal(path):
                try:
                    records.append((number, BlobEntry.model_validate(record["blob"])))
                except (KeyError, ValueError):
                    continue
        names = {p.name for p in files.values()}
        source = FilePieceSource(self.directory)

        def still_good(entry: BlobEntry) -> bool:
            if any(p.file not in names for p in entry.pieces):
                return False
            verifier = DigestVerifier(entry.digest, entry.size)
            try:
                for chunk in get_codec(entry.encoding).decode(entry, source):
                    verifier.update(chunk)
                verifier.verify()
            except (BundleError, DigestMismatchError, OSError):
                return False
            return True

        with ThreadPoolExecutor(max_workers=self.workers + 1) as pool:
            good = list(pool.map(lambda r: still_good(r[1]), records))
        kept: dict[str, BlobEntry] = {}
        for (_, entry), ok in zip(records, good, strict=True):
            if ok and entry.digest not in kept:
                kept[entry.digest] = entry

        # Where each file's last good member ends; journals re-grouped by last piece.
        keep_end: dict[str, int] = {}
        journals: dict[str, list[dict[str, Any]]] = {}
        for entry in kept.values():
            for piece in entry.pieces:
                end = piece.offset + piece.length + padding(piece.length)
                keep_end[piece.file] = max(keep_end.get(piece.file, 0), end)
            last = entry.pieces[-1].file if entry.pieces else None
            if last:
                journals.setdefault(last, []).append({"blob": entry.model_dump(mode="json")})

        reopened: list[DataFile] = []
        for number, path in files.items():
            journal_path(path).unlink(missing_ok=True)
            if path.name not in keep_end:
                path.unlink(missing_ok=True)
                continue
            try:
                df = DataFile(path, number, keep=keep_end[path.name])
            except OSError as e:
                raise io_error(path, e, "reopening") from None
            if path.name in journals:
                append_journal(path, journals[path.name])
            reopened.append(df)

        with self._lock:
            self._next_number = max(files) + 1
            self._entries.update(kept)
            for entry in kept.values():
                for piece in entry.pieces:
                    self._members.setdefault(piece.member, [piece])
        # The first files become the slots' current files again; the others are done.
        for slot, df in zip(self._slots, reopened, strict=False):
            slot.current = df
        for df in reopened[len(self._slots) :]:
            self._retire(df)
        return len(kept)

    # -- end -------------------------------------------------------------------------------

    def finish(self) -> list[DataFileEntry]:
        """Close every data file; their names, sizes and sha256 in file order."""
        files = list(self._retired)
        for slot in self._slots:
            if slot.current is not None:
                slot.current.finish()
                files.append(slot.current)
        out = []
        for df in sorted(files, key=lambda f: f.number):
            size, sha = df.finish()
            out.append(DataFileEntry(name=df.path.name, size=size, sha256=sha))
        return out

    def remove_journals(self) -> None:
        for path in self.existing_files().values():
            journal_path(path).unlink(missing_ok=True)

    def close(self) -> None:
        """Stop without finishing: data files and journals stay for a later run."""
        for slot in self._slots:
            if slot.current is not None:
                slot.current.close()


class BundleWriter:
    """A transship bundle being written into `directory` as `<name>.meta.json` plus data
    files. Call `put_blob` from any number of threads, then `commit` once."""

    def __init__(
        self,
        directory: str | Path,
        name: str = "bundle",
        *,
        workers: int = 4,
        volume_size: int | None = None,
        single_file: bool = False,
        codec: BlobCodec | None = None,
        options: dict[str, Any] | None = None,
        platform: Platform | None = None,
        overwrite: bool = False,
        parents: Sequence[ParentBundle] = (),
    ):
        if single_file and volume_size is not None:
            raise ConfigError(
                "--single-file and --volume-size cannot be combined: a single-file bundle "
                "is one archive"
            )
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"bad bundle name {name!r}")
        self.directory = Path(directory)
        self.name = name
        self.single_file = single_file
        self.codec = codec or RawCodec()
        if single_file and not isinstance(self.codec, RawCodec):
            raise ConfigError("a single-file bundle stores blobs as they are (raw encoding)")
        self.platform = platform
        self.id = uuid.uuid4().hex
        self.options = {
            "workers": 1 if single_file else workers,
            "volume_size": volume_size,
            "single_file": single_file,
            "encoding": self.codec.encoding,
            **(options or {}),
        }
        self.meta_path = self.directory / f"{name}{META_SUFFIX}"
        self.partial_path = self.directory / f"{name}{PARTIAL_SUFFIX}"
        # Temporary files of the codec (dedup's spilled contents), removed at the end.
        self.work_dir = self.directory / f".{name}.work"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise io_error(self.directory, e, "creating") from None
        self.store = BlobStoreWriter(
            self.directory,
            DataFileNaming(name, single=single_file),
            workers=workers,
            volume_size=volume_size,
            spool_when_busy=single_file,
        )
        self.resumed = self._start(overwrite)
        self._committed = False
        self._codec_ended = False
        self.notes: list[str] = []  # what other tools will not see in a single-file bundle
        shutil.rmtree(self.work_dir, ignore_errors=True)  # left by a crashed run
        try:
            self.codec.begin_bundle(self.work_dir, parents)  # creates it if it needs it
        except BaseException:
            self.store.close()
            shutil.rmtree(self.work_dir, ignore_errors=True)
            raise

    def _signature(self) -> dict[str, Any]:
        # What must not change between a run and its resumption.
        return {
            "single_file": self.single_file,
            "volume_size": self.store.volume_size,
            "encoding": self.codec.encoding,
        }

    def _start(self, overwrite: bool) -> int:
        if self.meta_path.exists():
            if not overwrite:
                raise BundleError(
                    f"{self.meta_path} already exists: the bundle is complete; "
                    "choose another name or folder, or allow overwriting"
                )
            self.meta_path.unlink()
            self._discard()
        state = self._read_partial()
        leftovers = self.store.existing_files()
        if state is not None and state.get("signature") == self._signature():
            self.id = state.get("id", self.id)
            if self.codec.resumable:
                return self.store.resume()
            # Not resumable: the earlier run's files are ours (the state says so); start over.
        if leftovers and state is None and not overwrite:
            names = ", ".join(p.name for p in list(leftovers.values())[:3])
            raise BundleError(
                f"{self.directory} already holds data files of a bundle named {self.name!r} "
                f"({names}) but no record of an unfinished save; remove them or choose "
                "another name"
            )
        self._discard()
        try:
            write_atomically(
                self.partial_path,
                json.dumps({"id": self.id, "signature": self._signature()}).encode(),
            )
        except OSError as e:
            raise io_error(self.partial_path, e) from None
        return 0

    def _read_partial(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.partial_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def _discard(self) -> None:
        for path in self.store.existing_files().values():
            path.unlink(missing_ok=True)
            journal_path(path).unlink(missing_ok=True)
        self.partial_path.unlink(missing_ok=True)

    # -- blobs -----------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return self.store.get(digest) is not None

    def put_blob(
        self,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: Callable[[int], None] | None = None,
    ) -> BlobEntry:
        if self._committed:
            raise BundleError(f"bundle {self.name} is already complete")
        return self.store.put(desc, chunks, self.codec, progress)

    def blobs(self) -> list[BlobEntry]:
        return self.store.entries()

    # -- end -------------------------------------------------------------------------------

    def commit(self, images: list[ImageEntry], parents: list[ParentEntry]) -> BundleMeta:
        """Finish the data files and write the meta file, last."""
        if self.single_file:
            self._write_layout(images)
        settled = self.store.write_members(self.codec.settle_blobs)
        self.store.settle(settled, self.codec.encoding)
        codec_data = self.store.write_members(self.codec.finish_bundle)
        files = self.store.finish()
        meta = BundleMeta(
            format=FORMAT,
            version=VERSION,
            id=self.id,
            created=now_iso(),
            tool_version=__version__,
            options=self.options,
            images=images,
            blobs=sorted(self.store.entries(), key=lambda b: b.digest),
            data_files=files,
            parents=parents,
            codec_data={self.codec.encoding: codec_data} if codec_data else {},
        )
        write_meta(self.meta_path, meta)
        self._committed = True
        self.store.remove_journals()
        self.partial_path.unlink(missing_ok=True)
        self._end_codec()
        return meta

    def _end_codec(self) -> None:
        if not self._codec_ended:
            self._codec_ended = True
            try:
                self.codec.end_bundle()
            finally:
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def _write_layout(self, images: list[ImageEntry]) -> None:
        layout_images = []
        for image in images:
            manifests = [m.raw() for m in image.manifests()]
            for manifest in manifests:
                self.store.put(
                    Descriptor(manifest.media_type, manifest.digest, len(manifest.data)),
                    [manifest.data],
                    self.codec,
                )
            layout_images.append(
                LayoutImage(
                    image.tag and image.target,
                    manifests[0],
                    {m.digest: m for m in manifests[1:]},
                )
            )
        members = layout_members(
            layout_images, self.platform or default_platform(), self.has_blob, self.notes
        )
        for name, data in members:
            self.store.put_extra_member(name, data)

    def abort(self) -> None:
        """Stop: no meta is written; data files and journals stay so a re-run resumes."""
        self.store.close()
        self._end_codec()

    def close(self) -> None:
        if not self._committed:
            self.store.close()
        self._end_codec()
