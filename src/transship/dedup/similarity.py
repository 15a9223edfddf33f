"""The order the content store writes contents in, so that similar ones sit together.

zstd (long-distance matching, a 128 MiB window) finds what two contents share only when
they are close to each other in the stream. Measured on a fleet of Java images and on
real system trees, two rules do best:

* **Zip archives (jars, wars, ...) by shared entries.** Jars share compressed entries
  byte for byte (a library and its next version, a shaded jar and its sources), whatever
  their names. Each archive's central directory gives the (crc32, size) of its entries;
  a 64-bin one-permutation min-hash of that set (each entry hashed once, the least hash
  kept per bin) estimates how much two archives share, and a greedy chain goes from
  each archive to the one most like it. Beats ordering by name or by size.
* **Everything else by path.** Keeps a directory's files together (as in the tar) and puts
  the same file of two layers (libssl.so.3 of two OS versions) next to each other; grouping
  by file type across directories does worse.
"""

from __future__ import annotations

import heapq
import os
import struct
from array import array
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

ZIP_MAGIC = b"PK\x03\x04"
_EOCD = b"PK\x05\x06"
_EOCD_SEARCH = 22 + 0xFFFF  # the end record plus the longest comment
_CD_ENTRY = b"PK\x01\x02"
_CD_LIMIT = 64 << 20  # central directories beyond this are not read
# More bins estimate the sharing better, at no cost per entry: on the benchmark fleet 64
# bins gave a 2 % smaller content store than 16 (7 % for a release's incremental bundle);
# 128 and 256 gave the same as 64.
_BINS = 64
_BIN_SHIFT = 58  # the top 6 bits of a hash pick its bin
_BUSY_BUCKET = 64  # a min-hash shared by more archives than this tells nothing
_MASK64 = (1 << 64) - 1
_MIX = 0x9E3779B97F4A7C15  # odd: multiplying by it permutes 64-bit values


@dataclass(frozen=True)
class ContentInfo:
    name: str
    size: int
    is_zip: bool
    tie: tuple[int, int]  # where it was first seen: a stable tie-breaker


def zip_entry_keys(read: Callable[[int, int], bytes], size: int) -> array:
    """The entries of a zip's central directory, each as its crc32 << 32 | its
    compressed size; empty when the directory cannot be read."""
    keys = array("Q")
    tail_len = min(size, _EOCD_SEARCH)
    tail = read(size - tail_len, tail_len)
    end = tail.rfind(_EOCD)
    if end < 0 or end + 22 > len(tail):
        return keys
    cd_size, cd_offset = struct.unpack_from("<II", tail, end + 12)
    if cd_offset + cd_size > size or cd_size > _CD_LIMIT:
        return keys
    cd = read(cd_offset, cd_size)
    entry = struct.Struct("<4s12xQ4xHHH")  # signature, crc32 and compressed size, lengths
    pos = 0
    while pos + 46 <= len(cd):
        magic, crc_csize, name_len, extra_len, comment_len = entry.unpack_from(cd, pos)
        if magic != _CD_ENTRY:
            break
        keys.append((crc_csize & 0xFFFFFFFF) << 32 | crc_csize >> 32)
        pos += 46 + name_len + extra_len + comment_len
    return keys


def _signature(keys: array) -> tuple[int | None, ...]:
    """Per bin, the least hash of the keys that fall in it (None: none did)."""
    least: list[int | None] = [None] * _BINS
    for key in keys:
        h = key * _MIX & _MASK64
        b, v = h >> _BIN_SHIFT, h & ((1 << _BIN_SHIFT) - 1)
        m = least[b]
        if m is None or v < m:
            least[b] = v
    return tuple(least) if keys else ()


def _chain_by_similarity(
    items: list[int], signature: dict[int, tuple[int | None, ...]], sizes: dict[int, int]
) -> list[int]:
    """Greedy: start from the biggest archive, always go on to the unvisited one that
    agrees on the most min-hashes (ties: the bigger), else to the biggest left."""
    buckets: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i in items:
        for band, value in enumerate(signature[i]):
            if value is not None:
                buckets[(band, value)].add(i)
    by_size = [(-sizes[i], i) for i in items]
    heapq.heapify(by_size)
    left = set(items)
    order: list[int] = []
    current: int | None = None
    while left:
        if current is None:
            while by_size[0][1] not in left:
                heapq.heappop(by_size)
            current = by_size[0][1]
        left.discard(current)
        order.append(current)
        votes: dict[int, int] = defaultdict(int)
        for band, value in enumerate(signature[current]):
            if value is None:
                continue
            bucket = buckets[(band, value)]
            bucket.discard(current)
            if len(bucket) <= _BUSY_BUCKET:
                for other in bucket:
                    votes[other] += 1
        current = max(votes, key=lambda j: (votes[j], sizes[j], -j)) if votes else None
    return order


def similarity_order(infos: Sequence[ContentInfo], keys_of: Callable[[int], array]) -> list[int]:
    """Positions of `infos` in store order: zip archives chained by shared entries
    (`keys_of(position)`: `zip_entry_keys` of that archive), then everything else by
    path."""
    archives = [i for i, info in enumerate(infos) if info.is_zip]
    signature = {i: _signature(keys_of(i)) for i in archives}
    chained = _chain_by_similarity(
        [i for i in archives if signature[i]], signature, {i: infos[i].size for i in archives}
    )
    unreadable = [i for i in archives if not signature[i]]
    rest = [i for i, info in enumerate(infos) if not info.is_zip] + unreadable
    rest.sort(key=lambda i: (infos[i].name, infos[i].tie))
    return chained + rest


def pread_exact(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    while len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data
