#!/usr/bin/env python3
"""How big would the matches of each fleet layer's gzip be, stored beside its recipe?

A bit-exact re-encode spends most of its time finding the matches its encoder chose. The
gzip stream itself says which matches those were. This measures what storing them would
cost: for the first --mb MB of tar of one layer per (role, compressor) of the benchmark
fleet (bench/.work/fleet, built by `python bench/fleet.py build`), it counts literals and
matches, and writes every match as (bytes since the previous match ends: varint, length -
3: one byte, distance - 1: two bytes) compressed with zstd level 19.

The deflate decoder here is a plain Python one that yields tokens (no library exposes
them). It is slow (about 0.5 MB/s), hence the prefixes.

    python bench/match_hints.py [--mb 3]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_speed import fleet_layers  # noqa: E402  (bench/ is not a package)

_LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67,
                83, 99, 115, 131, 163, 195, 227, 258]  # fmt: skip
_LENGTH_EXTRA = [0] * 8 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [0]
_DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
              1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]  # fmt: skip
_DIST_EXTRA = [0, 0, 0, 0] + [n for n in range(1, 14) for _ in range(2)]
_CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]


class _Bits:
    """Deflate's bit order: least significant bit of each byte first."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.bit = data, 0, 0

    def take(self, n: int) -> int:
        value = 0
        for i in range(n):
            value |= ((self.data[self.pos] >> self.bit) & 1) << i
            self.bit += 1
            if self.bit == 8:
                self.bit, self.pos = 0, self.pos + 1
        return value

    def align(self) -> None:
        if self.bit:
            self.bit, self.pos = 0, self.pos + 1


def _huffman(lengths: list[int]) -> dict[tuple[int, int], int]:
    """Canonical code -> symbol, keyed by (code, length)."""
    counts = [0] * (max(lengths, default=0) + 2)
    for n in lengths:
        if n:
            counts[n] += 1
    next_code, code = [0] * len(counts), 0
    for n in range(1, len(counts)):
        code = (code + counts[n - 1]) << 1
        next_code[n] = code
    table = {}
    for symbol, n in enumerate(lengths):
        if n:
            table[(next_code[n], n)] = symbol
            next_code[n] += 1
    return table


def _symbol(bits: _Bits, table: dict[tuple[int, int], int]) -> int:
    code = length = 0
    while True:
        code, length = (code << 1) | bits.take(1), length + 1
        if (code, length) in table:
            return table[(code, length)]


def _dynamic_tables(bits: _Bits) -> tuple[dict, dict]:
    literals, distances, code_lengths = bits.take(5) + 257, bits.take(5) + 1, bits.take(4) + 4
    lengths_code = [0] * 19
    for i in range(code_lengths):
        lengths_code[_CODE_LENGTH_ORDER[i]] = bits.take(3)
    table = _huffman(lengths_code)
    lengths: list[int] = []
    while len(lengths) < literals + distances:
        symbol = _symbol(bits, table)
        if symbol < 16:
            lengths.append(symbol)
        elif symbol == 16:
            lengths += [lengths[-1]] * (3 + bits.take(2))
        else:
            lengths += [0] * ((3 + bits.take(3)) if symbol == 17 else (11 + bits.take(7)))
    return _huffman(lengths[:literals]), _huffman(lengths[literals:])


def tokens(deflate: bytes, limit: int) -> Iterator[int | tuple[int, int]]:
    """The tokens of a raw deflate stream until `limit` plain bytes: a literal as its
    byte value, a match as (length, distance)."""
    bits, done, final = _Bits(deflate), 0, False
    fixed = (_huffman([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8), _huffman([5] * 30))
    while done < limit and not final:
        final, kind = bool(bits.take(1)), bits.take(2)
        if kind == 0:
            bits.align()
            size = bits.data[bits.pos] | bits.data[bits.pos + 1] << 8
            start = bits.pos + 4
            bits.pos = start + size
            done += size
            yield from bits.data[start : start + size]
            continue
        lit_table, dist_table = fixed if kind == 1 else _dynamic_tables(bits)
        while (symbol := _symbol(bits, lit_table)) != 256:
            if symbol < 256:
                done += 1
                yield symbol
                continue
            i = symbol - 257
            length = _LENGTH_BASE[i] + bits.take(_LENGTH_EXTRA[i])
            d = _symbol(bits, dist_table)
            done += length
            yield length, _DIST_BASE[d] + bits.take(_DIST_EXTRA[d])


def measure(blob: Path, mb: int) -> dict[str, float]:
    raw = blob.read_bytes()
    if raw[:2] != b"\x1f\x8b" or raw[3] != 0:
        raise SystemExit(f"{blob}: not a gzip stream with a plain 10-byte header")
    hints, plain, matches, matched, last_end = bytearray(), 0, 0, 0, 0
    for token in tokens(raw[10:], mb << 20):
        if isinstance(token, int):
            plain += 1
            continue
        length, distance = token
        gap = plain - last_end
        while gap >= 0x80:
            hints.append(gap & 0x7F | 0x80)
            gap >>= 7
        hints += bytes([gap, length - 3]) + (distance - 1).to_bytes(2, "little")
        matches, matched, plain = matches + 1, matched + length, plain + length
        last_end = plain
    packed = zstandard.ZstdCompressor(level=19).compress(bytes(hints))
    per_mb = plain / (1 << 20)
    return {
        "plain_mb": per_mb,
        "matches_per_mb": matches / per_mb,
        "matched_share": matched / plain,
        "hints_kib_per_mb": len(packed) / 1024 / per_mb,
        "hints_share": len(packed) / plain,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=3, help="plain MB per layer (default 3)")
    args = parser.parse_args()
    print("| layer | matches per MB | bytes in matches | stored matches, zstd | share of the tar |")
    print("|---|---:|---:|---:|---:|")
    for role, compressor, blob in fleet_layers():
        r = measure(blob, args.mb)
        print(
            f"| {role} / {compressor} | {r['matches_per_mb']:,.0f} | {r['matched_share']:.1%} "
            f"| {r['hints_kib_per_mb']:.1f} KiB per MB | {r['hints_share']:.2%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
