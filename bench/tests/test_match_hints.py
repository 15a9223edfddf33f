"""The deflate token decoder of bench/match_hints.py (run: python -m pytest bench/tests)."""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from match_hints import tokens  # noqa: E402


def _replay(stream) -> bytes:
    out = bytearray()
    for token in stream:
        if isinstance(token, int):
            out.append(token)
        else:
            length, distance = token
            for _ in range(length):  # byte by byte: a match may overlap its own output
                out.append(out[-distance])
    return bytes(out)


@pytest.mark.parametrize(("level", "strategy"), [(0, 0), (1, 0), (6, 0), (9, zlib.Z_FIXED)])
def test_tokens_rebuild_the_data_from_every_block_kind(level, strategy):
    data = os.urandom(20_000) + b"abcabcabc" * 3000 + bytes(range(256)) * 40
    encoder = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
    deflate = encoder.compress(data) + encoder.flush()
    found = list(tokens(deflate, len(data)))
    assert _replay(found) == data
    matches = [t for t in found if not isinstance(t, int)]
    assert bool(matches) == (level > 0)
