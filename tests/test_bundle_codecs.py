"""Codecs plug into the bundle: a toy content-addressed chunk codec (pieces shared between
blobs, stored once) goes through writer, meta, verification, reader and resume."""

import hashlib
import os
from collections.abc import Iterable, Iterator

import pytest

from transship.bundle.codecs import (
    BlobCodec,
    EncodedBlob,
    PieceSink,
    PieceSource,
    get_codec,
    known_encodings,
    register_codec,
)
from transship.bundle.meta import BlobEntry, load_meta, write_meta
from transship.bundle.reader import BundleReader
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
