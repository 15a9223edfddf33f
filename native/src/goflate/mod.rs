//! A deflate encoder that produces exactly the bytes of Go's `compress/flate`
//! (and so `compress/gzip`), ported from the Go standard library (Go 1.7 to at least
//! 1.26 produce the same streams).
//!
//! Go's output is a pure function of the input bytes and the level, with one exception:
//! for levels 2-9 the moment the 64 KiB window slides depends on how the input was cut
//! into `Write` calls. It only matters when the match search reaches window position
//! 65274 exactly while the window is not full; then the slide happens before that search
//! instead of after it ("early slide"). This encoder behaves like a writer that fills the
//! window completely before each slide (true for `io.Copy` with 32 KiB buffers and for
//! any larger writes) unless told, per window frame, to slide early: see
//! [`GoDeflater::set_early_slides`].

mod bitwriter;
mod fast;
mod huffman;
mod token;

use bitwriter::{HuffmanBitWriter, MAX_STORE_BLOCK_SIZE};
use fast::{common_prefix, DeflateFast};
use token::{literal_token, match_token, Token, BASE_MATCH_LENGTH, BASE_MATCH_OFFSET};

pub const NO_COMPRESSION: i32 = 0;
pub const BEST_SPEED: i32 = 1;
pub const HUFFMAN_ONLY: i32 = -2;
pub const DEFAULT_COMPRESSION: i32 = -1;

const LOG_WINDOW_SIZE: usize = 15;
const WINDOW_SIZE: usize = 1 << LOG_WINDOW_SIZE;
const WINDOW_MASK: usize = WINDOW_SIZE - 1;
const MIN_MATCH_LENGTH: usize = 4;
const MAX_MATCH_LENGTH: usize = 258;
const MAX_FLATE_BLOCK_TOKENS: usize = 1 << 14;
const HASH_BITS: u32 = 17;
const HASH_SIZE: usize = 1 << HASH_BITS;
const HASH_MASK: u32 = (1 << HASH_BITS) - 1;
const MAX_HASH_OFFSET: i64 = 1 << 24;
const SKIP_NEVER: i32 = i32::MAX;
const HASHMUL: u32 = 0x1e35a7bd;
/// Stands for any chain link of this many positions or more. Links longer than
/// WINDOW_SIZE already end every search (a chain position is before the search
/// position, the stop at most WINDOW_SIZE before it), so the exact value never matters.
const FAR: u16 = u16::MAX;
/// How many positions ahead hash-table slots are prefetched.
const PREFETCH_DISTANCE: usize = 8;

/// Window position at which a slide happens ("2*windowSize - (minMatchLength+maxMatchLength)").
pub const SLIDE_POINT: usize = 2 * WINDOW_SIZE - (MIN_MATCH_LENGTH + MAX_MATCH_LENGTH);

#[derive(Clone, Copy)]
struct CompressionLevel {
    #[allow(dead_code)] // kept so the table reads like Go's
    level: i32,
    good: usize,
    lazy: usize,
    nice: usize,
    chain: usize,
    fast_skip_hashing: i32,
}

const LEVELS: [CompressionLevel; 10] = [
    CompressionLevel {
        level: 0,
        good: 0,
        lazy: 0,
        nice: 0,
        chain: 0,
        fast_skip_hashing: 0,
    },
    CompressionLevel {
        level: 1,
        good: 0,
        lazy: 0,
        nice: 0,
        chain: 0,
        fast_skip_hashing: 0,
    },
    CompressionLevel {
        level: 2,
        good: 4,
        lazy: 0,
        nice: 16,
        chain: 8,
        fast_skip_hashing: 5,
    },
    CompressionLevel {
        level: 3,
        good: 4,
        lazy: 0,
        nice: 32,
        chain: 32,
        fast_skip_hashing: 6,
    },
    CompressionLevel {
        level: 4,
        good: 4,
        lazy: 4,
        nice: 16,
        chain: 16,
        fast_skip_hashing: SKIP_NEVER,
    },
    CompressionLevel {
        level: 5,
        good: 8,
        lazy: 16,
        nice: 32,
        chain: 32,
        fast_skip_hashing: SKIP_NEVER,
    },
    CompressionLevel {
        level: 6,
        good: 8,
        lazy: 16,
        nice: 128,
        chain: 128,
        fast_skip_hashing: SKIP_NEVER,
    },
    CompressionLevel {
        level: 7,
        good: 8,
        lazy: 32,
        nice: 128,
        chain: 256,
        fast_skip_hashing: SKIP_NEVER,
    },
    CompressionLevel {
        level: 8,
        good: 32,
        lazy: 128,
        nice: 258,
        chain: 1024,
        fast_skip_hashing: SKIP_NEVER,
    },
    CompressionLevel {
        level: 9,
        good: 32,
        lazy: 258,
        nice: 258,
        chain: 4096,
        fast_skip_hashing: SKIP_NEVER,
    },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Store,
    HuffOnly,
    Speed,
    Deflate,
}

fn zeroed_table<T: Copy + Default, const N: usize>() -> Box<[T; N]> {
    match vec![T::default(); N].into_boxed_slice().try_into() {
        Ok(table) => table,
        Err(_) => unreachable!("a vector of N elements"),
    }
}

#[inline(always)]
fn load_u32(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
}

#[inline(always)]
fn hash4(b: &[u8]) -> u32 {
    let v = u32::from_be_bytes(b[..4].try_into().unwrap());
    v.wrapping_mul(HASHMUL) >> (32 - HASH_BITS)
}

/// The per-position state of the deflate loop, kept in locals while it runs.
struct Cursor {
    index: usize,
    length: usize,
    offset: usize,
    byte_available: bool,
    chain_head: i64,
    num_tokens: usize,
}

/// Go's `compress/flate` compressor state.
#[derive(Clone)]
pub struct GoDeflater {
    cl: CompressionLevel,
    mode: Mode,
    w: HuffmanBitWriter,
    best_speed: Option<Box<DeflateFast>>,

    window: Vec<u8>,
    index: usize,
    window_end: usize,
    /// Window index where the current tokens start; i32::MAX once slid out.
    block_start: i64,
    byte_available: bool,
    sync: bool,
    /// Levels 2-9: the current block's tokens are `tokens[..num_tokens]` (`tokens` has a
    /// fixed length). BestSpeed: `tokens` is filled per block by push.
    tokens: Vec<Token>,
    num_tokens: usize,

    length: usize,
    offset: usize,
    max_insert_index: i64,
    chain_head: i64,
    hash_head: Box<[u32; HASH_SIZE]>,
    /// Chain links: for the position p in slot `p & WINDOW_MASK`, the distance back to
    /// the previous position with the same hash (Go keeps that position itself; a
    /// distance fits in half the space, so more of the table stays in the L1 cache).
    /// `FAR` stands for any distance too large to matter.
    hash_prev: Box<[u16; WINDOW_SIZE]>,
    hash_offset: i64,

    /// Number of window slides done so far (frame counter for early slides).
    slides: u64,
    /// Sorted frame numbers whose slide happens early; consumed from the front.
    early_slides: std::collections::VecDeque<u64>,
    /// Stopped at SLIDE_POINT with a full window, waiting for `resolve_slide`.
    paused: bool,
    /// Set while resuming past SLIDE_POINT after a "late" decision.
    pass_slide_point: bool,
    /// Set by an "early" decision: the next fill slides before any more searching.
    slide_now: bool,
    closed: bool,
}

impl GoDeflater {
    /// `level`: -2 (HuffmanOnly), -1 (default = 6), 0..=9, as Go's `flate.NewWriter`.
    pub fn new(level: i32) -> Result<Self, String> {
        let (mode, cl, window_len) = match level {
            NO_COMPRESSION => (Mode::Store, LEVELS[0], MAX_STORE_BLOCK_SIZE),
            HUFFMAN_ONLY => (Mode::HuffOnly, LEVELS[0], MAX_STORE_BLOCK_SIZE),
            BEST_SPEED => (Mode::Speed, LEVELS[1], MAX_STORE_BLOCK_SIZE),
            DEFAULT_COMPRESSION => (Mode::Deflate, LEVELS[6], 2 * WINDOW_SIZE),
            2..=9 => (Mode::Deflate, LEVELS[level as usize], 2 * WINDOW_SIZE),
            _ => return Err(format!("invalid Go compression level {level}: want -2..9")),
        };
        Ok(GoDeflater {
            cl,
            mode,
            w: HuffmanBitWriter::new(),
            best_speed: if mode == Mode::Speed {
                Some(Box::new(DeflateFast::new()))
            } else {
                None
            },
            window: vec![0; window_len],
            index: 0,
            window_end: 0,
            block_start: 0,
            byte_available: false,
            sync: false,
            tokens: if mode == Mode::Speed {
                Vec::with_capacity(MAX_STORE_BLOCK_SIZE)
            } else {
                vec![0; MAX_FLATE_BLOCK_TOKENS + 1]
            },
            num_tokens: 0,
            length: MIN_MATCH_LENGTH - 1,
            offset: 0,
            max_insert_index: 0,
            chain_head: -1,
            hash_head: zeroed_table(),
            hash_prev: zeroed_table(),
            hash_offset: 1,
            slides: 0,
            early_slides: Default::default(),
            paused: false,
            pass_slide_point: false,
            slide_now: false,
            closed: false,
        })
    }

    /// Frames (counted from 0 at the first slide) whose slide must happen early.
    pub fn set_early_slides(&mut self, frames: &[u64]) {
        let mut v = frames.to_vec();
        v.sort_unstable();
        v.dedup();
        self.early_slides = v.into();
    }

    /// Number of window slides so far: the frame number of the next slide decision.
    pub fn slides(&self) -> u64 {
        self.slides
    }

    /// Whether the encoder stopped at a slide decision (see `write_some`).
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Compressed bytes produced so far and not yet taken.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.w.out)
    }

    pub fn output(&self) -> &[u8] {
        &self.w.out
    }

    pub fn drain_output(&mut self, n: usize) {
        self.w.out.drain(..n);
    }

    /// Feeds input, sliding early exactly at the frames given to `set_early_slides`.
    /// The result does not depend on how the input is split into calls.
    pub fn write(&mut self, b: &[u8]) {
        let mut pos = 0;
        loop {
            pos += self.write_some(&b[pos..]);
            if !self.paused {
                break;
            }
            let frame = self.slides;
            while self.early_slides.front().is_some_and(|&f| f < frame) {
                self.early_slides.pop_front();
            }
            let early = self.early_slides.front() == Some(&frame);
            if early {
                self.early_slides.pop_front();
            }
            self.resolve_slide(early);
        }
    }

    /// Feeds input until it is consumed or the encoder pauses at a slide decision;
    /// returns how much was consumed. When paused, call `resolve_slide` and go on.
    pub fn write_some(&mut self, b: &[u8]) -> usize {
        assert!(!self.closed, "write after close");
        let mut consumed = 0;
        while !self.paused && consumed < b.len() {
            if self.window_end == self.window.len() && !self.slide_now {
                self.step();
                if self.paused {
                    break;
                }
            }
            consumed += self.fill(&b[consumed..]);
            self.slide_now = false;
        }
        consumed
    }

    /// Decides the pending slide: early (before the search at SLIDE_POINT, as a writer
    /// whose window was not full there) or late (after it, the usual case).
    pub fn resolve_slide(&mut self, early: bool) {
        assert!(self.paused, "no slide decision pending");
        self.paused = false;
        if early {
            // The next fill slides the window (index == SLIDE_POINT) before searching on.
            self.slide_now = true;
        } else {
            self.pass_slide_point = true;
            self.deflate();
            self.pass_slide_point = false;
        }
    }

    /// Whether early and late sliding give different searches at the pending decision.
    pub fn slide_would_matter(&self) -> bool {
        self.paused && self.slide_search_differs(self.window_end - self.index)
    }

    /// Whether two encoders are in the same state (their futures are identical).
    pub fn same_state(&self, o: &GoDeflater) -> bool {
        self.index == o.index
            && self.window_end == o.window_end
            && self.block_start == o.block_start
            && self.byte_available == o.byte_available
            && self.length == o.length
            && self.offset == o.offset
            && self.chain_head == o.chain_head
            && self.hash_offset == o.hash_offset
            && self.slides == o.slides
            && self.paused == o.paused
            && self.slide_now == o.slide_now
            && self.closed == o.closed
            && self.w.same_pending(&o.w)
            && self.tokens[..self.num_tokens] == o.tokens[..o.num_tokens]
            && self.window[..self.window_end] == o.window[..o.window_end]
            && self.hash_prev == o.hash_prev
            && self.hash_head == o.hash_head
            && self.best_speed.is_none()
            && o.best_speed.is_none()
    }

    /// Go's `Close`: flushes everything and writes the final (empty, stored) block.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        // A pending slide decision is moot: no more data means no slide.
        self.paused = false;
        self.slide_now = false;
        self.sync = true;
        self.step();
        self.w.write_stored_header(0, true);
        self.w.flush();
        self.closed = true;
    }

    fn fill(&mut self, b: &[u8]) -> usize {
        if self.mode == Mode::Deflate {
            self.fill_deflate(b)
        } else {
            let n = b.len().min(self.window.len() - self.window_end);
            self.window[self.window_end..self.window_end + n].copy_from_slice(&b[..n]);
            self.window_end += n;
            n
        }
    }

    fn step(&mut self) {
        match self.mode {
            Mode::Store => self.store(),
            Mode::HuffOnly => self.store_huff(),
            Mode::Speed => self.enc_speed(),
            Mode::Deflate => self.deflate(),
        }
    }

    fn fill_deflate(&mut self, b: &[u8]) -> usize {
        if self.index >= SLIDE_POINT {
            self.window.copy_within(WINDOW_SIZE..2 * WINDOW_SIZE, 0);
            self.index -= WINDOW_SIZE;
            self.window_end -= WINDOW_SIZE;
            if self.block_start >= WINDOW_SIZE as i64 {
                self.block_start -= WINDOW_SIZE as i64;
            } else {
                self.block_start = i32::MAX as i64;
            }
            self.hash_offset += WINDOW_SIZE as i64;
            if self.hash_offset > MAX_HASH_OFFSET {
                let delta = self.hash_offset - 1;
                self.hash_offset -= delta;
                self.chain_head -= delta;
                // hash_prev holds distances, which do not change.
                for v in self.hash_head.iter_mut() {
                    *v = if *v as i64 > delta {
                        (*v as i64 - delta) as u32
                    } else {
                        0
                    };
                }
            }
            self.slides += 1;
        }
        let n = b.len().min(self.window.len() - self.window_end);
        self.window[self.window_end..self.window_end + n].copy_from_slice(&b[..n]);
        self.window_end += n;
        n
    }

    /// Starts loading the hash-table slot that position `pos` will use (the table is
    /// too big for the fastest caches; this changes nothing but speed).
    #[inline(always)]
    fn prefetch_hash(&self, pos: usize) {
        if pos + 4 <= self.window_end {
            self.prefetch_slot(hash4(&self.window[pos..]));
        }
    }

    #[inline(always)]
    fn prefetch_slot(&self, hash: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let slot = &self.hash_head[(hash & HASH_MASK) as usize];
            // SAFETY: prefetching a valid address has no effect on memory.
            unsafe {
                std::arch::x86_64::_mm_prefetch(
                    slot as *const u32 as *const i8,
                    std::arch::x86_64::_MM_HINT_T0,
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    /// Go's hash of the 4 bytes at `pos`. `IN_RANGE`: the caller knows that
    /// `pos + 4 <= self.window_end`, so the bounds check is left out.
    #[inline(always)]
    fn hash_at<const IN_RANGE: bool>(&self, pos: usize) -> u32 {
        if IN_RANGE {
            debug_assert!(pos + 4 <= self.window_end && self.window_end <= self.window.len());
            // SAFETY: pos + 4 <= window_end <= window.len() (the caller's promise).
            let b = unsafe {
                self.window
                    .as_ptr()
                    .add(pos)
                    .cast::<[u8; 4]>()
                    .read_unaligned()
            };
            u32::from_be_bytes(b).wrapping_mul(HASHMUL) >> (32 - HASH_BITS)
        } else {
            hash4(&self.window[pos..])
        }
    }

    /// Writes the block of the first `num_tokens` tokens, ending at window index `index`.
    fn write_block(&mut self, index: usize, num_tokens: usize) {
        if index > 0 {
            let input = if self.block_start <= index as i64 {
                Some(&self.window[self.block_start as usize..index])
            } else {
                None
            };
            self.w.write_block(&self.tokens[..num_tokens], false, input);
            self.block_start = index as i64;
        }
    }

    /// Go's `findMatch`: best match at `pos` longer than `prev_length`, looking at most
    /// `chain` entries back. `floor` is the lowest window index that may be used.
    #[inline(always)]
    fn find_match(
        &self,
        pos: usize,
        prev_head: i64,
        prev_length: usize,
        lookahead: usize,
        floor: i64,
    ) -> Option<(usize, usize)> {
        let min_match_look = lookahead.min(MAX_MATCH_LENGTH);
        let win = &self.window[..pos + min_match_look];
        let nice = self.cl.nice.min(min_match_look);
        let mut tries = self.cl.chain;
        let mut length = prev_length;
        if length >= self.cl.good {
            tries >>= 2;
        }
        let w_pos = &win[pos..pos + min_match_look];
        // A longer match must agree on the 4 bytes ending at `length` (Go compares only
        // the last one; checking four rejects more candidates, same result).
        let mut w_end = load_u32(win, pos + length - 3);
        let min_index = pos as i64 - WINDOW_SIZE as i64;
        let stop = min_index.max(floor);
        let mut found = None;
        let mut i = prev_head;
        while tries > 0 {
            let iu = i as usize;
            // Every index on a chain is an earlier position than `pos` (and >= 0), and
            // length < min_match_look, so these 4 bytes are inside `win`.
            debug_assert!(iu < pos && iu + length < win.len());
            // SAFETY: see above: iu + length - 3 + 4 <= pos - 1 + min_match_look < win.len().
            let cand_end = unsafe {
                win.as_ptr()
                    .add(iu + length - 3)
                    .cast::<[u8; 4]>()
                    .read_unaligned()
            };
            if u32::from_le_bytes(cand_end) == w_end {
                let n = common_prefix(&win[iu..iu + min_match_look], w_pos);
                if n > length && (n > MIN_MATCH_LENGTH || pos - iu <= 4096) {
                    length = n;
                    found = Some((n, pos - iu));
                    if n >= nice {
                        break;
                    }
                    w_end = load_u32(win, pos + n - 3);
                }
            }
            if i == min_index {
                // The slot of min_index already holds the link of `pos` itself.
                break;
            }
            // A FAR distance lands below `stop` as Go's far-away position does.
            i -= self.hash_prev[iu & WINDOW_MASK] as i64;
            if i < stop {
                break;
            }
            tries -= 1;
        }
        found
    }

    fn deflate(&mut self) {
        if self.cl.fast_skip_hashing == SKIP_NEVER {
            self.deflate_with::<true>();
        } else {
            self.deflate_with::<false>();
        }
    }

    /// Inserts window position `index` into the hash chains; returns the previous head
    /// of its chain (Go's `hashHead[hash]` before the update).
    #[inline(always)]
    fn insert_hash(&mut self, index: usize, hash: u32, hash_offset: i64) -> u32 {
        let hh = &mut self.hash_head[(hash & HASH_MASK) as usize];
        let old = *hh;
        let raw = (index as i64 + hash_offset) as u32;
        // Table values grow with the position (slides and resets shift them all
        // alike), so raw > old.
        debug_assert!(raw > old);
        self.hash_prev[index & WINDOW_MASK] = (raw - old).min(FAR as u32) as u16;
        *hh = raw;
        old
    }

    /// Go's `deflate` loop; `LAZY` for levels 4-9 (lazy matching), not for levels 2-3.
    /// The state lives in a local cursor during the loop (in registers) and goes back
    /// to `self` on the way out.
    fn deflate_with<const LAZY: bool>(&mut self) {
        if self.window_end - self.index < MIN_MATCH_LENGTH + MAX_MATCH_LENGTH && !self.sync {
            return;
        }
        let window_end = self.window_end;
        self.max_insert_index = window_end as i64 - (MIN_MATCH_LENGTH as i64 - 1);
        let mut c = Cursor {
            index: self.index,
            length: self.length,
            offset: self.offset,
            byte_available: self.byte_available,
            chain_head: self.chain_head,
            num_tokens: self.num_tokens,
        };
        // Before `fast_end` every position has a full lookahead (so no end-of-data
        // handling and every position gets hashed) and is not the slide point: the
        // checks of the general loop are known to pass there.
        let fast_end = (window_end + 1)
            .saturating_sub(MIN_MATCH_LENGTH + MAX_MATCH_LENGTH)
            .min(SLIDE_POINT);
        while c.index < fast_end {
            self.deflate_step::<LAZY, true>(&mut c);
        }
        let stop_at_slide_point = !self.sync && !self.pass_slide_point;
        loop {
            debug_assert!(c.index <= window_end, "index > windowEnd");
            let lookahead = window_end - c.index;
            if lookahead < MIN_MATCH_LENGTH + MAX_MATCH_LENGTH {
                if !self.sync {
                    break;
                }
                if lookahead == 0 {
                    if LAZY && c.byte_available {
                        let lit = self.window[c.index - 1];
                        self.tokens[c.num_tokens] = literal_token(lit as u32);
                        c.num_tokens += 1;
                        c.byte_available = false;
                    }
                    if c.num_tokens > 0 {
                        self.write_block(c.index, c.num_tokens);
                        c.num_tokens = 0;
                    }
                    break;
                }
            }
            if c.index == SLIDE_POINT && stop_at_slide_point {
                // Stop for the caller to decide when the window slides.
                self.paused = true;
                break;
            }
            self.deflate_step::<LAZY, false>(&mut c);
        }
        self.index = c.index;
        self.length = c.length;
        self.offset = c.offset;
        self.byte_available = c.byte_available;
        self.chain_head = c.chain_head;
        self.num_tokens = c.num_tokens;
    }

    /// One position of Go's `deflate` loop (after its end-of-data and slide checks).
    /// `FAST`: the position is before the loop's `fast_end`.
    #[inline(always)]
    fn deflate_step<const LAZY: bool, const FAST: bool>(&mut self, c: &mut Cursor) {
        let window_end = self.window_end;
        let max_insert_index = self.max_insert_index;
        let hash_offset = self.hash_offset;
        let index = c.index;
        let lookahead = window_end - index;
        if FAST {
            // index + PREFETCH_DISTANCE + 4 <= window_end: the lookahead is full.
            self.prefetch_slot(self.hash_at::<true>(index + PREFETCH_DISTANCE));
        } else {
            self.prefetch_hash(index + PREFETCH_DISTANCE);
        }
        if FAST || (index as i64) < max_insert_index {
            let hash = self.hash_at::<true>(index);
            c.chain_head = self.insert_hash(index, hash, hash_offset) as i64;
        }
        let min_index = (index as i64 - WINDOW_SIZE as i64).max(0);
        if FAST && (!LAZY || c.length < MIN_MATCH_LENGTH) && c.chain_head - hash_offset < min_index
        {
            // No candidate in the window and no pending match (the common case in
            // incompressible data): the general code below would only add a literal.
            c.length = MIN_MATCH_LENGTH - 1;
            c.offset = 0;
            self.add_literal::<LAZY>(c);
            return;
        }
        let prev_length = c.length;
        let prev_offset = c.offset;
        c.length = MIN_MATCH_LENGTH - 1;
        c.offset = 0;

        let want_search = if LAZY {
            lookahead > prev_length && prev_length < self.cl.lazy
        } else {
            lookahead > MIN_MATCH_LENGTH - 1
        };
        if want_search && c.chain_head - hash_offset >= min_index {
            if let Some((new_length, new_offset)) = self.find_match(
                index,
                c.chain_head - hash_offset,
                MIN_MATCH_LENGTH - 1,
                lookahead,
                0,
            ) {
                c.length = new_length;
                c.offset = new_offset;
            }
        }
        let emit_match = if LAZY {
            prev_length >= MIN_MATCH_LENGTH && c.length <= prev_length
        } else {
            c.length >= MIN_MATCH_LENGTH
        };
        if emit_match {
            // There was a match at the previous step and the current one is not
            // better (lazy), or there is a match here (greedy): output it.
            let tok = if LAZY {
                match_token(
                    prev_length as u32 - BASE_MATCH_LENGTH,
                    prev_offset as u32 - BASE_MATCH_OFFSET,
                )
            } else {
                match_token(
                    c.length as u32 - BASE_MATCH_LENGTH,
                    c.offset as u32 - BASE_MATCH_OFFSET,
                )
            };
            self.tokens[c.num_tokens] = tok;
            c.num_tokens += 1;
            if LAZY || c.length as i64 <= self.cl.fast_skip_hashing as i64 {
                let new_index = if LAZY {
                    index + prev_length - 1
                } else {
                    index + c.length
                };
                // With FAST, new_index <= index + MAX_MATCH_LENGTH - 1 < window_end - 3:
                // every skipped position is hashed, and its 4 bytes are in the window.
                let mut i = index + 1;
                while i < new_index {
                    self.prefetch_hash(i + PREFETCH_DISTANCE);
                    if FAST || (i as i64) < max_insert_index {
                        let hash = self.hash_at::<true>(i);
                        self.insert_hash(i, hash, hash_offset);
                    }
                    i += 1;
                }
                c.index = i;
                if LAZY {
                    c.byte_available = false;
                    c.length = MIN_MATCH_LENGTH - 1;
                }
            } else {
                c.index = index + c.length;
            }
            if c.num_tokens == MAX_FLATE_BLOCK_TOKENS {
                self.write_block(c.index, c.num_tokens);
                c.num_tokens = 0;
            }
        } else {
            self.add_literal::<LAZY>(c);
        }
    }

    /// The step without a match to output: the pending byte (lazy) or the current one
    /// (greedy) becomes a literal, and the loop moves on by one.
    #[inline(always)]
    fn add_literal<const LAZY: bool>(&mut self, c: &mut Cursor) {
        let index = c.index;
        if !LAZY || c.byte_available {
            let i = if LAZY { index - 1 } else { index };
            self.tokens[c.num_tokens] = literal_token(self.window[i] as u32);
            c.num_tokens += 1;
            if c.num_tokens == MAX_FLATE_BLOCK_TOKENS {
                self.write_block(i + 1, c.num_tokens);
                c.num_tokens = 0;
            }
        }
        c.index = index + 1;
        if LAZY {
            c.byte_available = true;
        }
    }

    /// Whether the search at SLIDE_POINT can give a different result once the first
    /// WINDOW_SIZE bytes of the window are gone.
    fn slide_search_differs(&self, lookahead: usize) -> bool {
        if self.mode != Mode::Deflate || self.index + 4 > self.window_end {
            return false;
        }
        let hash = hash4(&self.window[self.index..]);
        let head = self.hash_head[(hash & HASH_MASK) as usize] as i64 - self.hash_offset;
        let lazy_mode = self.cl.fast_skip_hashing == SKIP_NEVER;
        let prev_length = self.length;
        if lazy_mode && !(lookahead > prev_length && prev_length < self.cl.lazy) {
            return false;
        }
        let late_floor = (self.index as i64 - WINDOW_SIZE as i64).max(0);
        if head < late_floor {
            return false;
        }
        let late = self.find_match(self.index, head, MIN_MATCH_LENGTH - 1, lookahead, 0);
        let early = if head >= WINDOW_SIZE as i64 {
            self.find_match(
                self.index,
                head,
                MIN_MATCH_LENGTH - 1,
                lookahead,
                WINDOW_SIZE as i64,
            )
        } else {
            None
        };
        late != early
    }

    fn store(&mut self) {
        if self.window_end > 0 && (self.window_end == MAX_STORE_BLOCK_SIZE || self.sync) {
            self.w.write_stored_header(self.window_end, false);
            let end = self.window_end;
            let window = std::mem::take(&mut self.window);
            self.w.write_bytes_pub(&window[..end]);
            self.window = window;
            self.window_end = 0;
        }
    }

    fn store_huff(&mut self) {
        if (self.window_end < self.window.len() && !self.sync) || self.window_end == 0 {
            return;
        }
        let end = self.window_end;
        self.w.write_block_huff(false, &self.window[..end]);
        self.window_end = 0;
    }

    fn enc_speed(&mut self) {
        if self.window_end < MAX_STORE_BLOCK_SIZE {
            if !self.sync {
                return;
            }
            if self.window_end < 128 {
                match self.window_end {
                    0 => return,
                    1..=16 => {
                        self.w.write_stored_header(self.window_end, false);
                        let end = self.window_end;
                        self.w.write_bytes_pub(&self.window[..end]);
                    }
                    _ => {
                        let end = self.window_end;
                        self.w.write_block_huff(false, &self.window[..end]);
                    }
                }
                self.window_end = 0;
                self.best_speed.as_mut().unwrap().reset();
                return;
            }
        }
        let end = self.window_end;
        self.tokens.clear();
        self.best_speed
            .as_mut()
            .unwrap()
            .encode(&mut self.tokens, &self.window[..end]);
        if self.tokens.len() > end - (end >> 4) {
            self.w.write_block_huff(false, &self.window[..end]);
        } else {
            self.w
                .write_block_dynamic(&self.tokens, false, Some(&self.window[..end]));
        }
        self.window_end = 0;
    }
}
