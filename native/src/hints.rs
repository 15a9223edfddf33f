//! Match hints: the back-references (LZ77 matches) of a deflate stream, by plain-data
//! position. Given them, the Go and zlib encoders rebuild a stream without searching
//! for matches (most of their time): at each position they evaluate, they take the
//! hint that starts there instead of asking their match finder. For the lazy and greedy
//! loops of both encoders the matches a stream emitted reproduce the same token
//! sequence, so the block and Huffman logic, which the ports follow exactly, give the
//! same bytes.
//!
//! A stored block hides its matches, yet the encoder counted them towards the block's
//! end: such a block is a *search region*. There the encoder writes the stored block as
//! it is (its matches only decided where it ends and that it is stored, which the
//! stream says), or, when that cannot be (the final block; tokens before it that do
//! not end a block there), searches for its matches as it did originally, with its
//! hash chains rebuilt from the window. A stored block needs no region when it holds
//! exactly as many bytes as a full block has tokens (Go: 16384, zlib at memLevel 8:
//! 16383): all of them are literals.
//!
//! Packed form (stored zstd-compressed in a gzip recipe), one record per match or
//! region in position order: varint(gap) | len - 3 (1 byte) | dist - 1 (2 bytes, little
//! endian), where `gap` is the number of plain bytes between the end of the previous
//! record (or the start) and this one; a region is varint(gap) | flags (1: the final
//! block) | 0xffff | its length (2 bytes). Records never overlap, so the gap is never
//! negative.

use std::collections::VecDeque;

pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 258;
pub const MAX_DIST: usize = 32768;
/// Stored blocks of these sizes are full blocks of literals for Go (16384 tokens a
/// block) or zlib at memLevel 8 (16383): they hide no match.
const LITERAL_BLOCK_SIZES: [usize; 2] = [16383, 16384];
const REGION_MARK: u16 = 0xffff;

/// One match: `len` bytes at plain position `pos` copy those `dist` bytes back; or,
/// with `dist` 0, a search region of `len` bytes (`last`: the stream's final block).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hint {
    pub pos: u64,
    pub len: u16,
    pub dist: u16,
    pub last: bool,
}

impl Hint {
    pub fn end(&self) -> u64 {
        self.pos + self.len as u64
    }

    pub fn is_region(&self) -> bool {
        self.dist == 0
    }

    /// A match hint.
    pub fn at(pos: u64, len: u16, dist: u16) -> Hint {
        Hint {
            pos,
            len,
            dist,
            last: false,
        }
    }

    /// The search region for a stored block of `len` bytes at `pos` (`last`: the final
    /// block), if it needs one.
    pub fn region_for_stored(pos: u64, len: usize, last: bool) -> Option<Hint> {
        (len > 0 && !LITERAL_BLOCK_SIZES.contains(&len)).then_some(Hint {
            pos,
            len: len as u16,
            dist: 0,
            last,
        })
    }
}

/// Appends packed records for `hints` (in position order, after `*last_end`).
pub fn pack(hints: &[Hint], last_end: &mut u64, out: &mut Vec<u8>) {
    for h in hints {
        debug_assert!(h.pos >= *last_end, "hints overlap or are out of order");
        let mut gap = h.pos - *last_end;
        while gap >= 0x80 {
            out.push((gap as u8 & 0x7f) | 0x80);
            gap >>= 7;
        }
        out.push(gap as u8);
        if h.is_region() {
            out.push(h.last as u8);
            out.extend_from_slice(&REGION_MARK.to_le_bytes());
            out.extend_from_slice(&h.len.to_le_bytes());
        } else {
            out.push((h.len as usize - MIN_LEN) as u8);
            out.extend_from_slice(&(h.dist - 1).to_le_bytes());
        }
        *last_end = h.end();
    }
}

/// The hints an encoder consumes, in position order, filled ahead of the plain data
/// (from packed records or one by one). A record the encoder cannot use (out of
/// order, impossible length or distance) is dropped: the rebuilt stream then differs
/// from the original, which the digest check catches.
#[derive(Clone, Default)]
pub struct HintQueue {
    queue: VecDeque<Hint>,
    /// Bytes of a packed record cut between two `feed_packed` calls.
    partial: Vec<u8>,
    last_end: u64,
    /// Every hint that starts before this position is in the queue (or was used).
    horizon: u64,
    finished: bool,
    /// Position of the next queued hint, or u64::MAX: the encoders' per-position test.
    next_pos: u64,
}

impl HintQueue {
    pub fn new() -> Self {
        HintQueue {
            next_pos: u64::MAX,
            ..Default::default()
        }
    }

    /// Adds packed records (any cut of the packed stream).
    pub fn feed_packed(&mut self, mut data: &[u8]) {
        if !self.partial.is_empty() {
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(data);
            let used = self.parse(&joined);
            self.partial = joined[used..].to_vec();
            return;
        }
        let used = self.parse(data);
        data = &data[used..];
        self.partial.extend_from_slice(data);
    }

    /// Parses whole records; returns the bytes used.
    fn parse(&mut self, data: &[u8]) -> usize {
        let mut at = 0;
        'records: while at < data.len() {
            let (mut gap, mut shift, mut i) = (0u64, 0u32, at);
            loop {
                let Some(&b) = data.get(i) else {
                    break 'records;
                };
                i += 1;
                if shift < 64 {
                    gap |= ((b & 0x7f) as u64) << shift;
                }
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            if i + 3 > data.len() {
                break;
            }
            let pos = self.last_end.saturating_add(gap);
            let mark = u16::from_le_bytes([data[i + 1], data[i + 2]]);
            if mark == REGION_MARK {
                if i + 5 > data.len() {
                    break;
                }
                let len = u16::from_le_bytes([data[i + 3], data[i + 4]]);
                at = i + 5;
                self.push(Hint {
                    pos,
                    len,
                    dist: 0,
                    last: data[i] & 1 == 1,
                });
                continue;
            }
            let len = data[i] as usize + MIN_LEN;
            let dist = mark as usize + 1;
            at = i + 3;
            // An impossible distance becomes 1 with an impossible length: dropped.
            let (len, dist) = if dist <= MAX_DIST {
                (len, dist)
            } else {
                (0, 1)
            };
            self.push(Hint::at(pos, len as u16, dist as u16));
        }
        at
    }

    /// Adds one hint; it must start at or after the end of the previous one.
    pub fn push(&mut self, h: Hint) {
        let valid = if h.is_region() {
            h.len > 0
        } else {
            (MIN_LEN..=MAX_LEN).contains(&(h.len as usize)) && h.dist as usize <= MAX_DIST
        };
        if h.pos < self.last_end || !valid {
            return;
        }
        self.last_end = h.end();
        self.horizon = self.horizon.max(h.pos + 1);
        if self.queue.is_empty() {
            self.next_pos = h.pos;
        }
        self.queue.push_back(h);
    }

    /// No more hints will come: every position is known.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Every hint starting before this position is known.
    pub fn horizon(&self) -> u64 {
        if self.finished {
            u64::MAX
        } else {
            self.horizon
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The match starting at `pos` or the region holding it, consuming it and any
    /// unused hints before it. Positions must be asked in increasing order.
    #[inline(always)]
    pub fn take_at(&mut self, pos: u64) -> Option<Hint> {
        if self.next_pos > pos {
            return None;
        }
        self.take_slow(pos)
    }

    #[cold]
    fn take_slow(&mut self, pos: u64) -> Option<Hint> {
        while let Some(h) = self.queue.front().copied() {
            if h.pos > pos {
                break;
            }
            self.queue.pop_front();
            self.next_pos = self.queue.front().map_or(u64::MAX, |n| n.pos);
            if h.pos == pos || (h.is_region() && h.end() > pos) {
                return Some(h);
            }
        }
        None
    }

    /// Moves the queued hints to `out`.
    pub fn drain_into(&mut self, out: &mut Vec<Hint>) {
        out.extend(self.queue.drain(..));
        self.next_pos = u64::MAX;
    }

    /// Position of the next unused hint (u64::MAX if none is queued).
    #[inline(always)]
    pub fn next_pos(&self) -> u64 {
        self.next_pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Hint> {
        let mut v = Vec::new();
        let mut pos = 5u64;
        for i in 0..5000u64 {
            let len = 3 + (i * 37 % 256) as u16;
            let dist = 1 + (i * 7919 % 32768) as u16;
            v.push(Hint::at(pos, len, dist));
            pos += len as u64 + (i * i % 300);
            if i % 97 == 0 {
                v.push(Hint::region_for_stored(pos, 16385 + i as usize, i % 2 == 0).unwrap());
                pos += 16385 + i;
            }
        }
        v
    }

    #[test]
    fn packed_records_come_back_in_any_cut() {
        let hints = sample();
        let mut packed = Vec::new();
        let mut last = 0;
        pack(&hints, &mut last, &mut packed);
        for cut in [1usize, 2, 3, 7, 100, packed.len()] {
            let mut q = HintQueue::new();
            for piece in packed.chunks(cut) {
                q.feed_packed(piece);
            }
            q.finish();
            let got: Vec<Hint> = q.queue.iter().copied().collect();
            assert_eq!(got, hints, "cut {cut}");
        }
    }

    #[test]
    fn take_at_walks_in_order_and_skips_unused() {
        let mut q = HintQueue::new();
        for h in [(10, 4, 1), (20, 5, 2), (40, 3, 3)] {
            q.push(Hint {
                pos: h.0,
                len: h.1,
                dist: h.2,
                ..Default::default()
            });
        }
        let at = |q: &mut HintQueue, pos| q.take_at(pos).map(|h| (h.len, h.dist));
        assert_eq!(at(&mut q, 9), None);
        assert_eq!(at(&mut q, 10), Some((4, 1)));
        assert_eq!(
            at(&mut q, 21),
            None,
            "the hint at 20 was passed and is dropped"
        );
        assert_eq!(q.next_pos(), 40);
        assert_eq!(at(&mut q, 40), Some((3, 3)));
        assert_eq!(q.next_pos(), u64::MAX);

        // A region is found from any position inside it.
        q.push(Hint {
            pos: 50,
            len: 100,
            dist: 0,
            ..Default::default()
        });
        assert_eq!(q.take_at(70).map(|h| h.end()), Some(150));
    }

    #[test]
    fn impossible_records_are_dropped() {
        let mut q = HintQueue::new();
        q.push(Hint {
            pos: 10,
            len: 10,
            dist: 1,
            ..Default::default()
        });
        q.push(Hint {
            pos: 15,
            len: 4,
            dist: 1,
            ..Default::default()
        }); // overlaps the previous one
        q.push(Hint {
            pos: 30,
            len: 2,
            dist: 1,
            ..Default::default()
        }); // too short
        assert_eq!(q.len(), 1);
        assert_eq!(
            Hint::region_for_stored(0, 16384, false),
            None,
            "a full block of literals"
        );
        assert_eq!(Hint::region_for_stored(0, 0, true), None);
    }
}
