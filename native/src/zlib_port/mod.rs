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

use crate::hints::HintQueue;
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

/// Whether the next step of a deflate loop can run (see `fill_for_step`).
enum Step {
    Go,
    NeedInput,
    End,
}

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
    /// Matches come from `hints` instead of the search (see `use_hints`).
    hinted: bool,
    hints: HintQueue,
    /// Plain bytes slid out of the window: window index + slid = stream position.
    slid: u64,
    /// Stream position where the current search region ends (see hints.rs).
    region_end: u64,
    /// A hinted encoder's chains hold every position before this one (0: none yet).
    chains_until: u64,
    /// Stream position where the stored block being copied ends.
    copy_end: u64,
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
            hinted: false,
            hints: HintQueue::new(),
            slid: 0,
            region_end: 0,
            chains_until: 0,
            copy_end: 0,
        })
    }

    /// The stream position of `strstart` (what hints are keyed by).
    #[inline(always)]
    fn stream_pos(&self) -> u64 {
        self.slid + self.strstart as u64
    }

    /// Takes matches from `hints_mut()` instead of searching, except in search regions
    /// (levels 4-9: deflate_slow's): the stream the hints came from is rebuilt at a
    /// fraction of the cost. May start mid-stream (an encoder that found the level by
    /// searching).
    pub fn use_hints(&mut self) -> Result<(), String> {
        if self.level < 4 {
            return Err("match hints need a zlib level from 4 to 9".into());
        }
        self.hinted = true;
        Ok(())
    }

    pub fn hinted(&self) -> bool {
        self.hinted
    }

    /// The queue of match hints, to be filled ahead of the plain data (every hint that
    /// starts before the end of the data written must be in it).
    pub fn hints_mut(&mut self) -> &mut HintQueue {
        &mut self.hints
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
        if self.hinted {
            self.deflate_hinted(input, finish);
        } else if self.level <= 3 {
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
                self.slid += W_SIZE as u64;
                // A hinted encoder keeps chains only once it searched.
                if !self.hinted || self.chains_until > 0 {
                    self.slide_hash();
                }
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

    /// The top of zlib's deflate_fast and deflate_slow loops: input is pulled in when
    /// fewer than MIN_LOOKAHEAD bytes are left; may a step run now?
    fn fill_for_step(&mut self, input: &mut &[u8], finish: bool) -> Step {
        if self.lookahead < MIN_LOOKAHEAD {
            self.fill_window(input);
            if self.lookahead < MIN_LOOKAHEAD && !finish {
                return Step::NeedInput;
            }
            if self.lookahead == 0 {
                return Step::End;
            }
        }
        Step::Go
    }

    fn deflate_fast(&mut self, input: &mut &[u8], finish: bool) {
        loop {
            match self.fill_for_step(input, finish) {
                Step::Go => {}
                Step::NeedInput => return,
                Step::End => break,
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

    /// deflate_slow's decisions with the match at each position taken from the hints
    /// (no hash chains): the same tokens and blocks as the search that chose them.
    fn deflate_hinted(&mut self, input: &mut &[u8], finish: bool) {
        loop {
            if self.stream_pos() < self.copy_end {
                if !self.copy_stored(input, finish) {
                    return;
                }
                continue;
            }
            match self.fill_for_step(input, finish) {
                Step::Go => {}
                Step::NeedInput => return,
                Step::End => break,
            }
            let strstart = self.strstart;
            let pos = self.stream_pos();
            if self.match_length < MIN_MATCH && pos >= self.region_end {
                // Up to the next hint (while no fill is due), every step outputs the
                // pending byte as a literal, or only makes its byte pending.
                let ahead = self.hints.next_pos().saturating_sub(pos);
                let room = (self.lookahead + 1).saturating_sub(MIN_LOOKAHEAD) as u64;
                let run = ahead.min(room) as usize;
                if run > 0 {
                    self.literal_run(run);
                    continue;
                }
            }
            let mut hint = None;
            if pos >= self.region_end {
                match self.hints.take_at(pos) {
                    Some(h) if h.is_region() => {
                        if self.start_stored(h) {
                            continue;
                        }
                        self.enter_region(h.end())
                    }
                    h => hint = h,
                }
            }
            let searching = pos < self.region_end;
            let (prev_length, prev_match) = (self.match_length, self.match_start);
            self.match_length = MIN_MATCH - 1;
            if searching {
                self.prev_length = prev_length;
                self.search_slow();
            } else if let Some(h) = hint {
                let (len, dist) = (h.len as usize, h.dist as usize);
                // Only what zlib could have chosen; anything else stays a literal (the
                // rebuilt stream then differs, which the caller's checks catch).
                if len <= self.lookahead && dist <= strstart.min(W_SIZE) {
                    self.match_length = len;
                    self.match_start = strstart - dist;
                }
            }
            if prev_length >= MIN_MATCH && self.match_length <= prev_length {
                if searching {
                    // deflate_slow's chains hold every position of a match.
                    let max_insert = strstart + self.lookahead - MIN_MATCH;
                    for s in strstart + 1..=(strstart + prev_length - 2).min(max_insert) {
                        self.insert_string(s);
                    }
                }
                let bflush = self.tally_dist(strstart - 1 - prev_match, prev_length - MIN_MATCH);
                self.lookahead -= prev_length - 1;
                self.strstart += prev_length - 1;
                self.match_available = false;
                self.match_length = MIN_MATCH - 1;
                if bflush {
                    self.flush_block(false);
                }
            } else if self.match_available {
                let c = self.window[strstart - 1];
                if self.tally_lit(c) {
                    self.flush_block(false);
                }
                self.strstart += 1;
                self.lookahead -= 1;
            } else {
                self.match_available = true;
                self.strstart += 1;
                self.lookahead -= 1;
            }
            if searching {
                // Every position before the next step's is in the chains by now.
                self.chains_until = self.stream_pos();
            }
        }
        if self.match_available {
            let c = self.window[self.strstart - 1];
            self.tally_lit(c);
        }
        self.match_available = false;
        self.end_of_input(finish);
    }

    /// At the start of a search region (a stored block), writes the block's header and
    /// copies its bytes instead of searching for the matches it hides: those only
    /// decided where the block ends and that it is stored, which the stream says. Needs
    /// the tokens before it to fill the block before it exactly (the pending literal,
    /// if any, is the last); false (search instead) otherwise, or for the final block.
    fn start_stored(&mut self, h: crate::hints::Hint) -> bool {
        let pos = self.stream_pos();
        if h.last || h.pos != pos || self.match_length >= MIN_MATCH {
            return false;
        }
        if self.match_available {
            // The pending byte before the region is the last literal of its block.
            if self.syms.len() + 1 != self.sym_end {
                return false;
            }
            let c = self.window[self.strstart - 1];
            self.tally_lit(c);
            self.flush_block(false);
            self.match_available = false;
        } else if !self.syms.is_empty() {
            return false;
        }
        self.bits.send(0, 3);
        self.bits.windup();
        self.bits.out.extend_from_slice(&h.len.to_le_bytes());
        self.bits.out.extend_from_slice(&(!h.len).to_le_bytes());
        self.copy_end = h.end();
        true
    }

    /// Copies the next bytes of a stored block started by `start_stored`, pulling input
    /// when deflate_slow would; false when it needs more input first.
    fn copy_stored(&mut self, input: &mut &[u8], finish: bool) -> bool {
        match self.fill_for_step(input, finish) {
            Step::Go => {}
            Step::NeedInput => return false,
            Step::End => {
                self.copy_end = 0; // the data ended inside the block: not this stream
                return true;
            }
        }
        let left = self.copy_end - self.stream_pos();
        // As many bytes as deflate_slow's steps would take before it pulls input again.
        let room = if self.lookahead >= MIN_LOOKAHEAD {
            self.lookahead + 1 - MIN_LOOKAHEAD
        } else {
            self.lookahead // finishing
        };
        let n = left.min(room as u64) as usize;
        let at = self.strstart;
        self.bits.out.extend_from_slice(&self.window[at..at + n]);
        self.strstart += n;
        self.lookahead -= n;
        if n as u64 == left {
            self.block_start = self.strstart as isize;
            self.match_length = MIN_MATCH - 1;
        }
        true
    }

    /// `count` steps of deflate_hinted that find no match, with none pending.
    fn literal_run(&mut self, count: usize) {
        let end = self.strstart + count;
        if !self.match_available {
            self.match_available = true; // the first step only makes its byte pending
            self.strstart += 1;
        }
        while self.strstart < end {
            let c = self.window[self.strstart - 1];
            if self.tally_lit(c) {
                self.flush_block(false);
            }
            self.strstart += 1;
        }
        self.lookahead -= count;
    }

    /// deflate_slow's search at `strstart` (into match_length and match_start), for a
    /// search region of a hinted encoder.
    fn search_slow(&mut self) {
        let strstart = self.strstart;
        let hash_head = if self.lookahead >= MIN_MATCH {
            self.insert_string(strstart)
        } else {
            0
        };
        if hash_head != 0 && self.prev_length < self.max_lazy && strstart - hash_head <= MAX_DIST {
            self.match_length = self.longest_match(hash_head);
            if self.match_length == MIN_MATCH && strstart - self.match_start > TOO_FAR {
                self.match_length = MIN_MATCH - 1;
            }
        }
    }

    /// Starts a search region ending at stream position `end`: the hash chains get
    /// every window position before `strstart`, as deflate_slow had them: those since
    /// the last region when it was less than a window back (stored blocks come in
    /// runs), else the whole window afresh.
    fn enter_region(&mut self, end: u64) {
        let pos = self.stream_pos();
        let mut start = self.strstart.saturating_sub(W_SIZE);
        if self.chains_until > 0 && pos - self.chains_until < (self.strstart - start) as u64 {
            start = self.strstart - (pos - self.chains_until) as usize;
        } else {
            self.head.fill(0);
        }
        if start < self.strstart {
            self.ins_h = self.update_hash(self.window[start] as usize, self.window[start + 1]);
            for s in start..self.strstart {
                self.insert_string(s);
            }
        }
        self.region_end = end;
        self.chains_until = pos;
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

    /// See `ZlibPortDeflater::use_hints`; the C zlib (other settings) takes no hints.
    pub fn use_hints(&mut self) -> Result<(), String> {
        match self {
            ZlibEncoder::Port(e) => e.use_hints(),
            ZlibEncoder::C(_) => Err("match hints need zlib windowBits 15, memLevel 8 or 9".into()),
        }
    }

    /// The hint queue of an encoder that replays hints or can (`use_hints`).
    pub fn hints_mut(&mut self) -> Option<&mut HintQueue> {
        match self {
            ZlibEncoder::Port(e) if e.level >= 4 => Some(e.hints_mut()),
            _ => None,
        }
    }

    pub fn hinted(&self) -> bool {
        matches!(self, ZlibEncoder::Port(e) if e.hinted)
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

    /// Given the matches of a C zlib stream (and search regions where stored blocks
    /// hide them), the port replays it byte for byte at every level that takes hints.
    #[test]
    fn replays_c_zlib_from_its_matches() {
        let mut random = vec![0u8; 200_000];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in random.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for data in [sample(), random] {
            for level in 4..=9 {
                let mut c = ZlibDeflater::new(level, 8, 15, 0).unwrap();
                c.write(&data);
                c.close();
                let stream = c.output().to_vec();
                let mut inflater = crate::token_inflate::TokenInflater::new();
                inflater.decompress(&stream, 16 << 20).unwrap();
                let mut hints = Vec::new();
                inflater.take_hints(&mut hints);
                for split in [data.len(), 977] {
                    let mut port = ZlibPortDeflater::new(level, 8).unwrap();
                    port.use_hints().unwrap();
                    hints.iter().for_each(|h| port.hints_mut().push(*h));
                    port.hints_mut().finish();
                    for piece in data.chunks(split) {
                        port.write(piece);
                    }
                    port.close();
                    assert!(port.output() == stream, "level {level} split {split}");
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
