"""Codecs plug into the bundle: a toy content-addressed chunk codec (pieces shared between
blobs, stored once) goes through writer, meta, verification, reader and resume; a toy codec
with bundle-level data (a dictionary written at commit) goes through the bundle hooks."""

import hashlib
import os
from collections.abc import Iterable, Iterator

import pytest

from transship.bundle.codecs import (
    BlobCodec,
    EncodedBlob,
    LoadContext,
    PieceSink,
    PieceSource,
    get_codec,
    known_encodings,
    register_codec,
)
from transship.bundle.meta import BlobEntry, BundleMeta, CodecData, load_meta, write_meta
from transship.bundle.reader import BundleReader, BundleVerificationError
from transship.bundle.writer import BundleWriter
from transship.errors import BundleError
from transship.oci.descriptor import Descriptor
from transship.oci.digest import digest_bytes

CHUNK = 8192


@register_codec
class ChunkCodec(BlobCodec):
    """Fixed-size chunks, each stored once under `chunks/<sha256>` (a dedup in miniature)."""

    encoding = "test-chunks"

    def encode(self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink) -> EncodedBlob:
        data = b"".join(chunks)  # a toy: small blobs only
        pieces = []
        for start in range(0, len(data), CHUNK):
            part = data[start : start + CHUNK]
            member = "chunks/" + hashlib.sha256(part).hexdigest()
            pieces += sink.find_piece(member) or sink.write_piece(member, len(part), [part])
        return EncodedBlob(pieces, {"chunk_size": CHUNK})

    def decode(self, entry: BlobEntry, source: PieceSource, offset: int = 0) -> Iterator[bytes]:
        assert entry.params["chunk_size"] == CHUNK
        for piece in entry.pieces:
            yield from source.read_piece(piece)


def blob(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", digest_bytes(data), len(data))


def test_codec_is_registered_and_unknown_encodings_are_clear():
    assert "raw" in known_encodings() and "test-chunks" in known_encodings()
    assert isinstance(get_codec("test-chunks"), ChunkCodec)
    with pytest.raises(BundleError, match="'dedup-v9' is not known.*upgrade"):
        get_codec("dedup-v9")


def test_shared_pieces_are_stored_once_and_read_back(tmp_path):
    common = os.urandom(CHUNK * 3)
    a, b = common + os.urandom(5000), os.urandom(CHUNK) + common
    writer = BundleWriter(tmp_path, "c", workers=2, codec=ChunkCodec())
    writer.put_blob(blob(a), [a])
    writer.put_blob(blob(b), [b])
    meta = writer.commit([], [])
    entries = {e.digest: e for e in meta.blobs}
    assert entries[blob(a).digest].encoding == "test-chunks"
    members = [p.member for e in meta.blobs for p in e.pieces]
    assert len(members) == 4 + 4 and len(set(members)) == 5  # 3 shared chunks stored once
    stored = sum(f.size for f in meta.data_files)
    assert stored < len(a) + len(b) - CHUNK * 2
    reader = BundleReader(tmp_path / "c.meta.json")
    reader.verify()
    assert b"".join(reader.read_blob(blob(a).digest)) == a
    assert b"".join(reader.read_blob(blob(b).digest, offset=100)) == b[100:]


def test_resume_with_a_codec(tmp_path):
    a = os.urandom(CHUNK * 2 + 10)
    writer = BundleWriter(tmp_path, "c", codec=ChunkCodec())
    writer.put_blob(blob(a), [a])
    writer.abort()
    again = BundleWriter(tmp_path, "c", codec=ChunkCodec())
    assert again.resumed == 1 and again.has_blob(blob(a).digest)


def test_meta_naming_an_unknown_encoding_fails_clearly_on_read(tmp_path):
    data = os.urandom(1000)
    writer = BundleWriter(tmp_path, "c")
    writer.put_blob(blob(data), [data])
    meta = writer.commit([], [])
    changed = meta.model_copy(
        update={"blobs": [meta.blobs[0].model_copy(update={"encoding": "zz-future"})]}
    )
    write_meta(tmp_path / "c.meta.json", changed)
    reader = BundleReader(tmp_path / "c.meta.json")
    reader.verify()  # the files are fine
    with pytest.raises(BundleError, match="'zz-future' is not known"):
        b"".join(reader.read_blob(blob(data).digest))
    assert load_meta(tmp_path / "c.meta.json").blobs[0].encoding == "zz-future"


@register_codec
class XorCodec(BlobCodec):
    """Each blob XORed with one key chosen per bundle; the key is bundle-level data,
    written once at commit and read once before the first blob."""

    encoding = "test-xor"
    resumable = False
    events: list[str] = []

    def begin_bundle(self, work_dir, parents) -> None:
        self.events.append(f"begin {len(parents)}")
        self.key = os.urandom(1)[0] | 1

    def encode(self, desc: Descriptor, chunks: Iterable[bytes], sink: PieceSink) -> EncodedBlob:
        data = bytes(b ^ self.key for b in b"".join(chunks))
        if not data.startswith(bytes([ord("R") ^ self.key])):
            return EncodedBlob(sink.write_piece(f"x/{desc.digest[7:]}", len(data), [data]))
        raw = bytes(b ^ self.key for b in data)  # blobs starting with R: as the raw codec
        return EncodedBlob(sink.write_piece(f"r/{desc.digest[7:]}", len(raw), [raw]), {}, "raw")

    def finish_bundle(self, sink: PieceSink) -> CodecData:
        self.events.append("finish")
        return CodecData(pieces=sink.write_piece("x/key", 1, [bytes([self.key])]))

    def end_bundle(self) -> None:
        self.events.append("end")

    def prepare(self, meta: BundleMeta, source: PieceSource, context: LoadContext) -> None:
        self.events.append("prepare")
        self.key = b"".join(source.read_piece(meta.codec_data["test-xor"].pieces[0]))[0]

    def decode(self, entry: BlobEntry, source: PieceSource, offset: int = 0) -> Iterator[bytes]:
        for piece in entry.pieces:
            yield bytes(b ^ self.key for b in b"".join(source.read_piece(piece)))


def test_bundle_level_codec_data_is_written_at_commit_verified_and_prepared_once(tmp_path):
    XorCodec.events.clear()
    a, b = b"A" + os.urandom(3000), b"R" + os.urandom(100)  # only b starts with R
    writer = BundleWriter(tmp_path, "x", codec=XorCodec(), parents=[])
    writer.put_blob(blob(a), [a])
    writer.put_blob(blob(b), [b])
    meta = writer.commit([], [])
    assert XorCodec.events == ["begin 0", "finish", "end"]
    assert meta.codec_data["test-xor"].pieces[0].member == "x/key"
    entries = meta.blob_index()
    assert entries[blob(a).digest].encoding == "test-xor"
    assert entries[blob(b).digest].encoding == "raw"  # stored as another codec would

    reader = BundleReader(tmp_path / "x.meta.json")
    reader.verify()
    assert b"".join(reader.read_blob(blob(a).digest)) == a
    assert b"".join(reader.read_blob(blob(a).digest, offset=7)) == a[7:]
    assert b"".join(reader.read_blob(blob(b).digest)) == b
    assert XorCodec.events.count("prepare") == 1
    reader.close()

    # The key's piece is checked like any blob's: a data file that lost it is damaged.
    key = meta.codec_data["test-xor"].pieces[0]
    with open(tmp_path / key.file, "r+b") as f:
        f.seek(key.offset)
        f.write(b"\0")
    with pytest.raises(BundleVerificationError):
        BundleReader(tmp_path / "x.meta.json").verify()


def test_a_codec_that_cannot_resume_starts_over(tmp_path):
    data = os.urandom(5000)
    writer = BundleWriter(tmp_path, "x", codec=XorCodec())
    writer.put_blob(blob(data), [data])
    writer.abort()
    assert not (tmp_path / "x.meta.json").exists()
    again = BundleWriter(tmp_path, "x", codec=XorCodec())
    assert again.resumed == 0 and not again.has_blob(blob(data).digest)
    again.put_blob(blob(data), [data])
    again.commit([], [])
    assert b"".join(BundleReader(tmp_path / "x.meta.json").read_blob(blob(data).digest)) == data
