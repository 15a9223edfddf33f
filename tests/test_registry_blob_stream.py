"""BlobStream: a blob GET's body read like a file, whatever pieces the connection gives."""

from __future__ import annotations

import random
from collections.abc import Iterator

import httpx
import pytest

from transship.errors import TransientError
from transship.registry.client import BlobStream


def stream_of(pieces: list[bytes], skip: int = 0, fail_after: int | None = None) -> BlobStream:
    def body() -> Iterator[bytes]:
        for i, piece in enumerate(pieces):
            if fail_after is not None and i == fail_after:
                raise httpx.ReadError("connection reset")
            yield piece

    return BlobStream(httpx.Response(200, content=body()), skip, "registry.example")


def test_reads_join_and_cut_pieces_into_the_sizes_asked() -> None:
    rng = random.Random(5)
    data = rng.randbytes(300_000)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    for skip in (0, 1, 12_345):
        stream = stream_of(pieces, skip)
        got = []
        ended = False
        while not ended:
            size = rng.choice([0, 1, 7, 1000, 65_536, 1 << 20])
            chunk = stream.read(size)
            assert len(chunk) <= size
            ended = len(chunk) < size  # short only at the end
            got.append(chunk)
        assert b"".join(got) == data[skip:]
        assert stream.read(10) == b""
    assert stream_of(pieces).read() == data
    whole = stream_of(pieces)
    assert len(whole.read(1 << 20)) == len(data)  # filled up to the end, not one piece


def test_a_broken_download_is_a_transient_error() -> None:
    stream = stream_of([b"a" * 100, b"b" * 100, b"c"], fail_after=2)
    assert stream.read(150) == b"a" * 100 + b"b" * 50
    with pytest.raises(TransientError, match="registry.example: blob download broke off"):
        stream.read(100)
