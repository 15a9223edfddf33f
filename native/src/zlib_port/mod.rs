//! A Rust port of zlib 1.3.2's deflate (levels 1-9, windowBits 15, default strategy),
//! decision-for-decision identical to the C code so that it emits the same bytes as
//! the bundled zlib for any input split into any writes.
//!
//! Followed exactly: the configuration table, the rolling hash and chains, the window
//! slide in fill_window (its timing depends on how input arrives, and so does the C
//! output in rare cases, so input is pulled the same way), longest_match (including
//! which bytes it does and does not compare), deflate_fast / deflate_slow, and the
//! block flushes of trees.c. Speed comes from deflate_slow's state in locals, unchecked
//! indexing in the hot loops, the next chain link loaded before the candidate filter
//! (the walk is bound by that load), a prefetch of the next position's hash slot,
//! 8-byte compares when extending a match and a 64-bit bit writer.
//!
//! `examples/zlib_port_oracle.rs` compares it with the C zlib on any files.

mod trees;

use trees::{tables, BitOut, TreeState};

const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
const MIN_LOOKAHEAD: usize = MAX_MATCH + MIN_MATCH + 1;
const W_BITS: usize = 15;
const W_SIZE: usize = 1 << W_BITS;
const W_MASK: usize = W_SIZE - 1;
const MAX_DIST: usize = W_SIZE - MIN_LOOKAHEAD;
const WINDOW_SIZE: usize = 2 * W_SIZE;
const TOO_FAR: usize = 4096;
/// Slack after the window so that 8-byte compares never read past the allocation.
const WINDOW_PAD: usize = 16;

/// good, lazy, nice, chain per level; levels 1-3 use deflate_fast.
const CONFIG: [(usize, usize, usize, usize); 10] = [
    (0, 0, 0, 0),
    (4, 4, 8, 4),
    (4, 5, 16, 8),
    (4, 6, 32, 32),
    (4, 4, 16, 16),
    (8, 16, 32, 32),
    (8, 16, 128, 128),
    (8, 32, 128, 256),
    (32, 128, 258, 1024),
    (32, 258, 258, 4096),
];

pub struct ZlibPortDeflater {
    level: usize,
    window: Vec<u8>,
    prev: Vec<u16>,
    head: Vec<u16>,
    hash_mask: usize,
    hash_shift: usize,
    ins_h: usize,
    strstart: usize,
    block_start: isize,
    lookahead: usize,
    insert: usize,
    match_length: usize,
    prev_length: usize,
    match_available: bool,
    match_start: usize,
    good_match: usize,
    max_lazy: usize,
    nice_match: usize,
    max_chain: usize,
    syms: Vec<u32>,
    sym_end: usize,
    trees: Box<TreeState>,
    bits: BitOut,
    finished: bool,
}

#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline(always)]
unsafe fn rd16(p: *const u8) -> u16 {
    std::ptr::read_unaligned(p as *const u16)
}

#[inline(always)]
unsafe fn rd64(p: *const u8) -> u64 {
    std::ptr::read_unaligned(p as *const u64)
}

impl ZlibPortDeflater {
    /// Whether this port reproduces zlib for these parameters (windowBits 15 raw): the
    /// memLevels checked against the C zlib (8, everyone's default, and 9); others go to C.
    pub fn supports(level: i32, mem_level: i32, strategy: i32) -> bool {
        (1..=9).contains(&level) && (8..=9).contains(&mem_level) && strategy == 0
    }

    pub fn new(level: i32, mem_level: i32) -> Result<Self, String> {
        if !Self::supports(level, mem_level, 0) {
            return Err(format!(
                "zlib port does not handle level={level} mem_level={mem_level}"
            ));
        }
        let hash_bits = mem_level as usize + 7;
        let lit_bufsize = 1usize << (mem_level + 6);
        let (good, lazy, nice, chain) = CONFIG[level as usize];
        tables();
        Ok(ZlibPortDeflater {
            level: level as usize,
            window: vec![0; WINDOW_SIZE + WINDOW_PAD],
            prev: vec![0; W_SIZE],
            head: vec![0; 1 << hash_bits],
            hash_mask: (1 << hash_bits) - 1,
            hash_shift: hash_bits.div_ceil(MIN_MATCH),
            ins_h: 0,
            strstart: 0,
            block_start: 0,
            lookahead: 0,
            insert: 0,
            match_length: MIN_MATCH - 1,
            prev_length: MIN_MATCH - 1,
            match_available: false,
            match_start: 0,
            good_match: good,
            max_lazy: lazy,
            nice_match: nice,
            max_chain: chain,
            syms: Vec::with_capacity(lit_bufsize),
            sym_end: lit_bufsize - 1,
            trees: TreeState::new(),
            bits: BitOut {
                buf: 0,
                nbits: 0,
                out: Vec::with_capacity(1 << 16),
            },
            finished: false,
        })
    }

    pub fn write(&mut self, input: &[u8]) {
        assert!(!self.finished, "write after finish");
        // The C driver never calls deflate() for an empty write.
        if input.is_empty() {
            return;
        }
        let mut input = input;
        self.run(&mut input, false);
    }

    pub fn close(&mut self) {
        if !self.finished {
            let mut input: &[u8] = &[];
            self.run(&mut input, true);
            self.finished = true;
        }
    }

    pub fn output(&self) -> &[u8] {
        &self.bits.out
    }

    pub fn drain_output(&mut self, n: usize) {
        self.bits.out.drain(..n);
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bits.out)
    }

    fn run(&mut self, input: &mut &[u8], finish: bool) {
        if self.level <= 3 {
            self.deflate_fast(input, finish);
        } else {
            self.deflate_slow(input, finish);
        }
    }

    #[inline(always)]
    fn update_hash(&self, h: usize, c: u8) -> usize {
        ((h << self.hash_shift) ^ c as usize) & self.hash_mask
    }

    /// INSERT_STRING: returns the previous head of the chain.
    #[inline(always)]
    fn insert_string(&mut self, s: usize) -> usize {
        // SAFETY: s + 2 < WINDOW_SIZE + WINDOW_PAD; ins_h <= hash_mask; masks bound prev.
        unsafe {
            let c = *self.window.get_unchecked(s + MIN_MATCH - 1);
            self.ins_h = self.update_hash(self.ins_h, c);
            let head = self.head.get_unchecked_mut(self.ins_h);
            let h = *head;
            *head = s as u16;
            *self.prev.get_unchecked_mut(s & W_MASK) = h;
            h as usize
        }
    }

    fn slide_hash(&mut self) {
        // m >= wsize ? m - wsize : NIL, written so that it vectorises.
        for p in self.head.iter_mut() {
            *p = p.saturating_sub(W_SIZE as u16);
        }
        for p in self.prev.iter_mut() {
            *p = p.saturating_sub(W_SIZE as u16);
        }
    }

    fn fill_window(&mut self, input: &mut &[u8]) {
        loop {
            let mut more = WINDOW_SIZE - self.lookahead - self.strstart;
            if self.strstart >= W_SIZE + MAX_DIST {
                let keep = W_SIZE - more;
                self.window.copy_within(W_SIZE..W_SIZE + keep, 0);
                self.match_start = self.match_start.wrapping_sub(W_SIZE);
                self.strstart -= W_SIZE;
                self.block_start -= W_SIZE as isize;
                if self.insert > self.strstart {
                    self.insert = self.strstart;
                }
                self.slide_hash();
                more += W_SIZE;
            }
            if input.is_empty() {
                break;
            }
            let n = more.min(input.len());
            let at = self.strstart + self.lookahead;
            self.window[at..at + n].copy_from_slice(&input[..n]);
            *input = &input[n..];
            self.lookahead += n;
            if self.lookahead + self.insert >= MIN_MATCH {
                let mut s = self.strstart - self.insert;
                self.ins_h = self.window[s] as usize;
                self.ins_h = self.update_hash(self.ins_h, self.window[s + 1]);
                while self.insert > 0 {
                    self.ins_h = self.update_hash(self.ins_h, self.window[s + MIN_MATCH - 1]);
                    self.prev[s & W_MASK] = self.head[self.ins_h];
                    self.head[self.ins_h] = s as u16;
                    s += 1;
                    self.insert -= 1;
                    if self.lookahead + self.insert < MIN_MATCH {
                        break;
                    }
                }
            }
            if self.lookahead >= MIN_LOOKAHEAD || input.is_empty() {
                break;
            }
        }
        // zlib zeroes never-written window bytes past the data; ours start zeroed too.
    }

    #[inline(always)]
    fn longest_match(&mut self, cur_match: usize) -> usize {
        let chain = if self.prev_length >= self.good_match {
            self.max_chain >> 2
        } else {
            self.max_chain
        };
        let mut match_start = self.match_start;
        // SAFETY: deflate_fast calls this with strstart <= WINDOW_SIZE - MIN_LOOKAHEAD and
        // cur_match < strstart; the window has its padding and prev W_SIZE entries.
        let len = unsafe {
            longest_match(
                self.window.as_ptr(),
                self.prev.as_ptr(),
                self.strstart,
                cur_match,
                self.prev_length,
                self.lookahead,
                chain,
                self.nice_match,
                &mut match_start,
            )
        };
        self.match_start = match_start;
        len
    }

    #[inline(always)]
    fn tally_lit(&mut self, c: u8) -> bool {
        // SAFETY: the block is flushed when syms reaches sym_end < capacity.
        unsafe {
            let n = self.syms.len();
            *self.syms.as_mut_ptr().add(n) = c as u32;
            self.syms.set_len(n + 1);
            *self.trees.ltree.freq.get_unchecked_mut(c as usize) += 1;
        }
        self.syms.len() == self.sym_end
    }

    #[inline(always)]
    fn tally_dist(&mut self, dist: usize, lc: usize) -> bool {
        let t = tables();
        // SAFETY: as in tally_lit; lc < 256 and dist - 1 < 32768 index the code tables.
        unsafe {
            let n = self.syms.len();
            *self.syms.as_mut_ptr().add(n) = ((dist as u32) << 8) | lc as u32;
            self.syms.set_len(n + 1);
            let lcode = *t.length_code.get_unchecked(lc) as usize;
            *self.trees.ltree.freq.get_unchecked_mut(lcode + 257) += 1;
            let dc = trees::d_code(t, dist - 1);
            *self.trees.dtree.freq.get_unchecked_mut(dc) += 1;
        }
        self.syms.len() == self.sym_end
    }

    fn flush_block(&mut self, last: bool) {
        let stored_len = (self.strstart as isize - self.block_start) as usize;
        let buf = if self.block_start >= 0 {
            let b = self.block_start as usize;
            Some(&self.window[b..b + stored_len])
        } else {
            None
        };
        self.trees
            .flush_block(&self.syms, buf, last, &mut self.bits);
        self.syms.clear();
        self.block_start = self.strstart as isize;
    }

    fn deflate_fast(&mut self, input: &mut &[u8], finish: bool) {
        loop {
            if self.lookahead < MIN_LOOKAHEAD {
                self.fill_window(input);
                if self.lookahead < MIN_LOOKAHEAD && !finish {
                    return;
                }
                if self.lookahead == 0 {
                    break;
                }
            }
            let mut hash_head = 0;
            if self.lookahead >= MIN_MATCH {
                hash_head = self.insert_string(self.strstart);
            }
            if hash_head != 0 && self.strstart - hash_head <= MAX_DIST {
                self.match_length = self.longest_match(hash_head);
            }
            let bflush;
            if self.match_length >= MIN_MATCH {
                bflush = self.tally_dist(
                    self.strstart - self.match_start,
                    self.match_length - MIN_MATCH,
                );
                self.lookahead -= self.match_length;
                if self.match_length <= self.max_lazy && self.lookahead >= MIN_MATCH {
                    self.match_length -= 1;
                    loop {
                        self.strstart += 1;
                        self.insert_string(self.strstart);
                        self.match_length -= 1;
                        if self.match_length == 0 {
                            break;
                        }
                    }
                    self.strstart += 1;
                } else {
                    self.strstart += self.match_length;
                    self.match_length = 0;
                    self.ins_h = self.window[self.strstart] as usize;
                    self.ins_h = self.update_hash(self.ins_h, self.window[self.strstart + 1]);
                }
            } else {
                let c = self.window[self.strstart];
                bflush = self.tally_lit(c);
                self.lookahead -= 1;
                self.strstart += 1;
            }
            if bflush {
                self.flush_block(false);
            }
        }
        self.end_of_input(finish);
    }

    /// What deflate_fast and deflate_slow do once the input is used up (zlib repeats it
    /// in each): the last block when finishing, else the symbols so far as a block.
    fn end_of_input(&mut self, finish: bool) {
        self.insert = self.strstart.min(MIN_MATCH - 1);
        if finish {
            self.flush_block(true);
        } else if !self.syms.is_empty() {
            self.flush_block(false);
        }
    }

    fn deflate_slow(&mut self, input: &mut &[u8], finish: bool) {
        // Hot state lives in locals; it is written back around fill_window and at the end.
        let mut strstart = self.strstart;
        let mut lookahead = self.lookahead;
        let mut match_length = self.match_length;
        let mut prev_length;
        let mut match_start = self.match_start;
        let mut prev_match;
        let mut match_available = self.match_available;
        let mut ins_h = self.ins_h;
        let (shift, mask) = (self.hash_shift, self.hash_mask);
        let (max_lazy, good, nice, max_chain) = (
            self.max_lazy,
            self.good_match,
            self.nice_match,
            self.max_chain,
        );
        let mut w = self.window.as_mut_ptr();
        let mut head = self.head.as_mut_ptr();
        let mut prev = self.prev.as_mut_ptr();
        // SAFETY (whole loop): strstart + lookahead <= WINDOW_SIZE, strings are inserted
        // only with MIN_MATCH bytes ahead, ins_h <= mask < head.len(), prev is masked.
        macro_rules! insert_string {
            ($s:expr) => {{
                let s = $s;
                ins_h = ((ins_h << shift) ^ *w.add(s + MIN_MATCH - 1) as usize) & mask;
                let h = *head.add(ins_h);
                *head.add(ins_h) = s as u16;
                *prev.add(s & W_MASK) = h;
                // The next position's head slot: start its (likely L1-missing) load now.
                prefetch(head.add(((ins_h << shift) ^ *w.add(s + MIN_MATCH) as usize) & mask));
                h as usize
            }};
        }
        unsafe {
            loop {
                if lookahead < MIN_LOOKAHEAD {
                    self.strstart = strstart;
                    self.lookahead = lookahead;
                    self.match_start = match_start;
                    self.ins_h = ins_h;
                    self.fill_window(input);
                    strstart = self.strstart;
                    lookahead = self.lookahead;
                    match_start = self.match_start;
                    ins_h = self.ins_h;
                    w = self.window.as_mut_ptr();
                    head = self.head.as_mut_ptr();
                    prev = self.prev.as_mut_ptr();
                    if lookahead < MIN_LOOKAHEAD && !finish {
                        self.match_length = match_length;
                        self.match_available = match_available;
                        return;
                    }
                    if lookahead == 0 {
                        break;
                    }
                }
                let mut hash_head = 0;
                if lookahead >= MIN_MATCH {
                    hash_head = insert_string!(strstart);
                }
                prev_length = match_length;
                prev_match = match_start;
                match_length = MIN_MATCH - 1;
                if hash_head != 0 && prev_length < max_lazy && strstart - hash_head <= MAX_DIST {
                    match_length = longest_match(
                        w,
                        prev,
                        strstart,
                        hash_head,
                        prev_length,
                        lookahead,
                        if prev_length >= good {
                            max_chain >> 2
                        } else {
                            max_chain
                        },
                        nice,
                        &mut match_start,
                    );
                    if match_length == MIN_MATCH && strstart.wrapping_sub(match_start) > TOO_FAR {
                        match_length = MIN_MATCH - 1;
                    }
                }
                if prev_length >= MIN_MATCH && match_length <= prev_length {
                    let max_insert = strstart + lookahead - MIN_MATCH;
                    let bflush =
                        self.tally_dist(strstart - 1 - prev_match, prev_length - MIN_MATCH);
                    lookahead -= prev_length - 1;
                    prev_length -= 2;
                    if strstart + prev_length <= max_insert {
                        for _ in 0..prev_length {
                            strstart += 1;
                            insert_string!(strstart);
                        }
                    } else {
                        for _ in 0..prev_length {
                            strstart += 1;
                            if strstart <= max_insert {
                                insert_string!(strstart);
                            }
                        }
                    }
                    match_available = false;
                    match_length = MIN_MATCH - 1;
                    strstart += 1;
                    if bflush {
                        self.strstart = strstart;
                        self.flush_block(false);
                    }
                } else if match_available {
                    let c = *w.add(strstart - 1);
                    if self.tally_lit(c) {
                        self.strstart = strstart;
                        self.flush_block(false);
                    }
                    strstart += 1;
                    lookahead -= 1;
                } else {
                    match_available = true;
                    strstart += 1;
                    lookahead -= 1;
                }
            }
        }
        self.strstart = strstart;
        self.lookahead = lookahead;
        self.match_length = match_length;
        self.match_start = match_start;
        self.ins_h = ins_h;
        if match_available {
            let c = self.window[self.strstart - 1];
            self.tally_lit(c);
        }
        self.match_available = false;
        self.end_of_input(finish);
    }
}

/// zlib's longest_match over the chain from `cur_match`; updates `match_start` when a
/// longer match is found and returns the best length (at most `lookahead`).
///
/// # Safety
/// strstart <= WINDOW_SIZE - MIN_LOOKAHEAD, cur_match < strstart, `w` has WINDOW_PAD
/// bytes of slack and `prev` W_SIZE entries.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn longest_match(
    w: *const u8,
    prev: *const u16,
    strstart: usize,
    mut cur_match: usize,
    prev_length: usize,
    lookahead: usize,
    mut chain: usize,
    nice: usize,
    match_start: &mut usize,
) -> usize {
    let mut best_len = prev_length;
    let nice = nice.min(lookahead);
    let limit = strstart.saturating_sub(MAX_DIST);
    let scan = w.add(strstart);
    let scan_start = rd16(scan);
    let mut scan_end = rd16(scan.add(best_len - 1));
    loop {
        // Issue the next chain load before the (often mispredicted) filter.
        let next = *prev.add(cur_match & W_MASK) as usize;
        let m = w.add(cur_match);
        if ((rd16(m.add(best_len - 1)) ^ scan_end) | (rd16(m) ^ scan_start)) == 0 {
            // zlib skips index 2 (equal by the hash) and compares from 3.
            let mut i = 3;
            let len = loop {
                let x = rd64(scan.add(i)) ^ rd64(m.add(i));
                if x != 0 {
                    break (i + (x.trailing_zeros() as usize >> 3)).min(MAX_MATCH);
                }
                i += 8;
                if i > MAX_MATCH {
                    break MAX_MATCH;
                }
            };
            if len > best_len {
                *match_start = cur_match;
                best_len = len;
                if len >= nice {
                    break;
                }
                scan_end = rd16(scan.add(best_len - 1));
            }
        }
        cur_match = next;
        if cur_match <= limit {
            break;
        }
        chain -= 1;
        if chain == 0 {
            break;
        }
    }
    best_len.min(lookahead)
}

/// A zlib raw-deflate encoder: this port where it reproduces zlib (levels 1-9, default
/// strategy, windowBits 15), the bundled C zlib for every other setting.
pub enum ZlibEncoder {
    Port(Box<ZlibPortDeflater>),
    C(crate::zlib_enc::ZlibDeflater),
}

impl ZlibEncoder {
    pub fn new(
        level: i32,
        mem_level: i32,
        window_bits: i32,
        strategy: i32,
    ) -> Result<Self, String> {
        if window_bits == 15 && ZlibPortDeflater::supports(level, mem_level, strategy) {
            Ok(ZlibEncoder::Port(Box::new(ZlibPortDeflater::new(
                level, mem_level,
            )?)))
        } else {
            crate::zlib_enc::ZlibDeflater::new(level, mem_level, window_bits, strategy)
                .map(ZlibEncoder::C)
        }
    }

    pub fn write(&mut self, input: &[u8]) {
        match self {
            ZlibEncoder::Port(e) => e.write(input),
            ZlibEncoder::C(e) => e.write(input),
        }
    }

    pub fn close(&mut self) {
        match self {
            ZlibEncoder::Port(e) => e.close(),
            ZlibEncoder::C(e) => e.close(),
        }
    }

    pub fn output(&self) -> &[u8] {
        match self {
            ZlibEncoder::Port(e) => e.output(),
            ZlibEncoder::C(e) => e.output(),
        }
    }

    pub fn drain_output(&mut self, n: usize) {
        match self {
            ZlibEncoder::Port(e) => e.drain_output(n),
            ZlibEncoder::C(e) => e.drain_output(n),
        }
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        match self {
            ZlibEncoder::Port(e) => e.take_output(),
            ZlibEncoder::C(e) => e.take_output(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ZlibPortDeflater;
    use crate::zlib_enc::ZlibDeflater;

    fn sample() -> Vec<u8> {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut v: Vec<u8> = Vec::new();
        while v.len() < 300_000 {
            let r = next();
            match r % 4 {
                0 => v.extend(std::iter::repeat_n(
                    (r >> 8) as u8,
                    (r >> 16) as usize % 700,
                )),
                1 => v.extend((0..(r >> 16) as usize % 3000).map(|_| next() as u8 % 7)),
                _ if v.len() > 5000 => {
                    let d = (r >> 16) as usize % v.len().min(40_000) + 1;
                    for _ in 0..(r >> 32) as usize % 600 + 3 {
                        v.push(v[v.len() - d]);
                    }
                }
                _ => v.extend_from_slice(b"text text text "),
            }
        }
        v
    }

    /// Same bytes as the bundled C zlib at every level, whole and split into odd writes.
    #[test]
    fn matches_c_zlib() {
        let data = sample();
        for level in 1..=9 {
            for mem_level in [8, 9] {
                for split in [data.len(), 1 << 16, 977, 13] {
                    let mut c = ZlibDeflater::new(level, mem_level, 15, 0).unwrap();
                    let mut port = ZlibPortDeflater::new(level, mem_level).unwrap();
                    for piece in data.chunks(split) {
                        c.write(piece);
                        port.write(piece);
                    }
                    c.close();
                    port.close();
                    assert!(
                        c.output() == port.output(),
                        "level {level} mem_level {mem_level} split {split}"
                    );
                }
            }
        }
    }

    #[test]
    fn tiny_inputs() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"abcabcabc"] {
            let mut c = ZlibDeflater::new(6, 8, 15, 0).unwrap();
            let mut port = ZlibPortDeflater::new(6, 8).unwrap();
            c.write(data);
            port.write(data);
            c.close();
            port.close();
            assert_eq!(c.output(), port.output());
        }
    }
}
