//! Streaming raw-deflate decompression that also reports the matches (back-references)
//! it decodes, as `Hint`s, for the stream's transcript (see transcript.rs).
//!
//! Table-driven like libdeflate: a 10-bit primary table for literal/length codes
//! (8 bits for distances) with subtables for longer codes, a 64-bit bit buffer refilled
//! with unaligned 8-byte loads, and a fast loop that runs while at least 16 input bytes
//! and room for a few literals plus a longest match are left. Near the end of the input
//! or of the output room a slow path decodes one unit at a time (a symbol with its
//! extra bits and distance, or a whole block header) from a checkpoint: when the input
//! runs out inside a unit, the reader goes back to the checkpoint and the unit's bytes
//! are kept (the caller never sends them again). The next call decodes that unit from
//! the kept bytes joined with the start of the new input, then goes on in the new input.
//!
//! Output goes to one buffer that starts with the last 32 KiB of earlier output (the
//! window matches copy from); `output()` is the part this call added.

use crate::deflate_format::{
    DIST_BASE, DIST_EXTRA, FIXED_LITLEN_LENGTHS, LEN_BASE, LEN_EXTRA, PRECODE_ORDER,
};
use crate::hints::Hint;
use crate::transcript::{self, RawBits};

const WINDOW: usize = 32768;
/// Bytes past the output limit the fast loop may overwrite (match copies go by words).
const SLACK: usize = 64;
/// Input bytes the fast loop needs ahead of its position (two 8-byte refills).
const FAST_IN_MARGIN: usize = 16;
/// Output room the fast loop needs: up to three literals and a longest match.
const FAST_OUT_MARGIN: usize = 3 + 258 + 3;
/// Bytes of new input joined to the kept bytes of an unfinished unit; a unit (at most a
/// dynamic block header, about 300 bytes) always finishes within them.
const JOIN_MAX: usize = 512;

const LITLEN_BITS: u32 = 10;
const DIST_BITS: u32 = 8;
const PRECODE_BITS: u32 = 7;
/// Largest tables the primary sizes above need for any valid code (zlib's `enough`;
/// 2342 is the bound for an 11-bit primary table, more than the 10-bit one needs).
const LITLEN_ENOUGH: usize = 2342;
const DIST_ENOUGH: usize = 402;
const PRECODE_SIZE: usize = 1 << PRECODE_BITS;

// A table entry (u32):
//   bits 0-7   bits to consume: code length + extra bits (for a subtable pointer:
//              the primary table bits)
//   bits 8-11  code length (for a subtable pointer: the subtable's index bits)
//   bits 12-15 flags below
//   bits 16-31 literal byte, length or distance base, precode symbol, or subtable start
const LIT: u32 = 0x8000;
/// Not a literal, length or distance: a subtable pointer, end of block or invalid code.
const EXC: u32 = 0x4000;
const SUB: u32 = 0x2000;
const EOB: u32 = 0x1000;
/// What a slot no code reaches holds (only an incomplete code, or none, leaves them).
const INVALID: u32 = EXC | (1 << 8) | 1;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Code {
    Precode,
    LitLen,
    Dist,
}

/// Entry for `sym` without its lengths, and its number of extra bits.
fn template(code: Code, sym: usize) -> (u32, u32) {
    match code {
        Code::Precode => ((sym as u32) << 16, 0),
        Code::LitLen => match sym {
            0..=255 => (((sym as u32) << 16) | LIT, 0),
            256 => (EXC | EOB, 0),
            257..=285 => (
                (LEN_BASE[sym - 257] as u32) << 16,
                LEN_EXTRA[sym - 257] as u32,
            ),
            _ => (EXC, 0), // 286, 287: only the fixed code has them; invalid
        },
        Code::Dist => match sym {
            0..=29 => ((DIST_BASE[sym] as u32) << 16, DIST_EXTRA[sym] as u32),
            _ => (EXC, 0), // 30, 31: invalid
        },
    }
}

/// Fills `table` (primary part of `1 << tbits` entries, then subtables) for the code
/// lengths `lens`. Rejects what zlib rejects: over-subscribed codes and incomplete ones,
/// except a literal/length or distance code with a single code of length 1 (and a code
/// with no codes at all, whose use is the error).
fn build_table(lens: &[u8], code: Code, tbits: u32, table: &mut [u32]) -> Result<(), String> {
    // Four counters per length: runs of one length do not wait on one memory cell.
    let mut counts = [[0i32; 16]; 4];
    let mut chunks = lens.chunks_exact(4);
    for c in &mut chunks {
        for k in 0..4 {
            counts[k][c[k] as usize & 15] += 1;
        }
    }
    for &l in chunks.remainder() {
        counts[0][l as usize & 15] += 1;
    }
    let mut count = [0i32; 16];
    for (l, n) in count.iter_mut().enumerate().skip(1) {
        *n = counts[0][l] + counts[1][l] + counts[2][l] + counts[3][l];
    }
    let primary = 1usize << tbits;
    let max = match (1..16).rev().find(|&l| count[l] > 0) {
        Some(m) => m,
        None => {
            table[..primary].fill(INVALID);
            return Ok(());
        }
    };
    let mut left = 1i32;
    for &c in &count[1..] {
        left = (left << 1) - c;
        if left < 0 {
            return Err("invalid code: over-subscribed".into());
        }
    }
    if left > 0 {
        if code == Code::Precode || max != 1 {
            return Err("invalid code: incomplete".into());
        }
        table[..primary].fill(INVALID);
    }
    let mut next = [0u32; 16];
    let mut c = 0u32;
    for l in 1..16 {
        c = (c + count[l - 1] as u32) << 1;
        next[l] = c;
    }
    let mut rev = [0u16; 320];
    // Primary slots that lead to a subtable, and each one's index bits.
    let mut sub_bits = [0u8; 1 << LITLEN_BITS];
    let mut sub_slots = [0u16; 320];
    let mut n_sub = 0;
    for (s, &l) in lens.iter().enumerate() {
        if l == 0 {
            continue;
        }
        let l = l as u32;
        let r = ((next[l as usize] as u16).reverse_bits() >> (16 - l)) as usize;
        next[l as usize] += 1;
        rev[s] = r as u16;
        if l > tbits {
            let idx = r & (primary - 1);
            if sub_bits[idx] == 0 {
                sub_slots[n_sub] = idx as u16;
                n_sub += 1;
            }
            sub_bits[idx] = sub_bits[idx].max((l - tbits) as u8);
        }
    }
    let mut off = primary;
    for &idx in &sub_slots[..n_sub] {
        let sb = sub_bits[idx as usize] as u32;
        if off + (1 << sb) > table.len() {
            return Err("invalid code: table overflow".into());
        }
        table[idx as usize] = ((off as u32) << 16) | EXC | SUB | (sb << 8) | tbits;
        off += 1 << sb;
    }
    let (prim, _) = table.split_at_mut(primary);
    for (s, &l) in lens.iter().enumerate() {
        if l == 0 || l as u32 > tbits {
            continue;
        }
        let l = l as u32;
        let (t, extra) = template(code, s);
        let e = t | (l << 8) | (l + extra);
        let mut i = rev[s] as usize;
        while i < primary {
            prim[i] = e;
            i += 1 << l;
        }
    }
    if n_sub == 0 {
        return Ok(());
    }
    for (s, &l) in lens.iter().enumerate() {
        let l = l as u32;
        if l > tbits {
            let (t, extra) = template(code, s);
            let r = rev[s] as usize;
            let ptr = table[r & (primary - 1)];
            let start = (ptr >> 16) as usize;
            let size = 1usize << ((ptr >> 8) & 0xf);
            let cl = l - tbits;
            let e = t | (cl << 8) | (cl + extra);
            let mut i = r >> tbits;
            while i < size {
                table[start + i] = e;
                i += 1 << cl;
            }
        }
    }
    Ok(())
}

#[inline(always)]
fn mask(n: u32) -> u64 {
    !(u64::MAX << n)
}

/// LSB-first bit reader over one input slice. `left` bits of `buf` are unread; bits
/// above them are zero or the real next input bits (the fast refill loads whole words).
#[derive(Clone, Copy)]
struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
    buf: u64,
    left: u32,
}

impl<'a> Reader<'a> {
    fn at(src: &'a [u8], bit: u64) -> Self {
        let mut r = Reader {
            src,
            pos: (bit / 8) as usize,
            buf: 0,
            left: 0,
        };
        let skip = (bit % 8) as u32;
        if skip > 0 {
            r.fill();
            r.drop(skip);
        }
        r
    }

    fn bitpos(&self) -> u64 {
        self.pos as u64 * 8 - self.left as u64
    }

    #[inline]
    fn fill(&mut self) {
        while self.left <= 56 && self.pos < self.src.len() {
            self.buf |= (self.src[self.pos] as u64) << self.left;
            self.pos += 1;
            self.left += 8;
        }
    }

    #[inline]
    fn drop(&mut self, n: u32) {
        self.buf >>= n;
        self.left -= n;
    }

    /// The next `n` bits, or None if the input ends first.
    fn bits(&mut self, n: u32) -> Option<u32> {
        self.fill();
        if self.left < n {
            return None;
        }
        let v = (self.buf & mask(n)) as u32;
        self.drop(n);
        Some(v)
    }

    /// Decodes one symbol and its extra bits: the resolved entry and the extra bits'
    /// value. None if the input ends first (the reader is then partly advanced).
    fn symbol(
        &mut self,
        table: &[u32],
        tbits: u32,
        what: &str,
    ) -> Result<Option<(u32, u32)>, String> {
        self.fill();
        let mut e = table[(self.buf & mask(tbits)) as usize];
        let mut skip = 0;
        if e & SUB != 0 {
            if self.left < tbits {
                return Ok(None);
            }
            skip = tbits;
            let sub = (self.buf >> tbits) & mask((e >> 8) & 0xf);
            e = table[(e >> 16) as usize + sub as usize];
        }
        let total = e & 0xff;
        if self.left < skip + total {
            return Ok(None);
        }
        if e & (EXC | EOB) == EXC {
            return Err(format!("invalid {what} code"));
        }
        self.drop(skip);
        let saved = self.buf;
        self.drop(total);
        let extra = ((saved & mask(total)) >> ((e >> 8) & 0xf)) as u32;
        Ok(Some((e, extra)))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Before a block header.
    Header,
    /// Inside a stored block, with this many bytes left.
    Stored(usize),
    /// Inside a Huffman-coded block.
    Huffman,
    Done,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    NeedInput,
    OutputFull,
    StreamEnd,
    /// Reached a unit boundary at or past the requested bit position.
    Limit,
}

struct Tables {
    litlen: Box<[u32]>,
    dist: Box<[u32]>,
    fixed_litlen: Box<[u32]>,
    fixed_dist: Box<[u32]>,
    /// The current Huffman block uses the fixed code.
    fixed: bool,
}

impl Tables {
    fn new() -> Self {
        let mut fixed_litlen = vec![0u32; LITLEN_ENOUGH].into_boxed_slice();
        build_table(
            &FIXED_LITLEN_LENGTHS,
            Code::LitLen,
            LITLEN_BITS,
            &mut fixed_litlen,
        )
        .expect("fixed code");
        let mut fixed_dist = vec![0u32; DIST_ENOUGH].into_boxed_slice();
        build_table(&[5u8; 32], Code::Dist, DIST_BITS, &mut fixed_dist).expect("fixed code");
        Tables {
            litlen: vec![0u32; LITLEN_ENOUGH].into_boxed_slice(),
            dist: vec![0u32; DIST_ENOUGH].into_boxed_slice(),
            fixed_litlen,
            fixed_dist,
            fixed: false,
        }
    }

    fn current(&self) -> (&[u32], &[u32]) {
        if self.fixed {
            (&self.fixed_litlen, &self.fixed_dist)
        } else {
            (&self.litlen, &self.dist)
        }
    }
}

pub struct TokenInflater {
    /// Window (up to 32 KiB of earlier output) then this call's output; valid up to `end`.
    buf: Vec<u8>,
    end: usize,
    out_start: usize,
    /// Plain position of `buf[0]`.
    buf_base: u64,
    state: State,
    last_block: bool,
    tables: Tables,
    /// A match cut by the output limit: bytes still to copy, and its distance.
    pending_len: usize,
    pending_dist: usize,
    /// Used input bytes not decoded yet (an unfinished unit); decoding resumes at bit
    /// `start_bit` of the first one.
    stash: Vec<u8>,
    start_bit: u64,
    matches: Vec<Hint>,
    noncanonical: bool,
    /// With `record_transcript`: the raw bits decoded since the last `take_transcript`
    /// (block headers; after the final block, the last byte's remaining bits).
    raw_bits: Option<Vec<RawBits>>,
    /// Where the last packed transcript record ended.
    packed_until: u64,
    /// The hot loop compiled for this CPU.
    fast_loop: FastLoop,
}

impl Default for TokenInflater {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenInflater {
    pub fn new() -> Self {
        TokenInflater {
            buf: Vec::new(),
            end: 0,
            out_start: 0,
            buf_base: 0,
            state: State::Header,
            last_block: false,
            tables: Tables::new(),
            pending_len: 0,
            pending_dist: 0,
            stash: Vec::new(),
            start_bit: 0,
            matches: Vec::new(),
            noncanonical: false,
            raw_bits: None,
            packed_until: 0,
            fast_loop: pick_fast_loop(),
        }
    }

    pub fn output(&self) -> &[u8] {
        &self.buf[self.out_start..self.end]
    }

    pub fn eof(&self) -> bool {
        self.state == State::Done
    }

    /// Moves the matches decoded so far (in position order) to `out`.
    pub fn take_matches(&mut self, out: &mut Vec<Hint>) {
        out.append(&mut self.matches);
    }

    /// Records the raw bits of the stream that a transcript needs besides the matches.
    pub fn record_transcript(&mut self) {
        self.raw_bits.get_or_insert_with(Vec::new);
    }

    /// The transcript records decoded since the last call, packed (see transcript.rs);
    /// empty unless `record_transcript` was called first. Takes the matches too.
    pub fn take_transcript(&mut self) -> Vec<u8> {
        let mut packed = Vec::new();
        if let Some(raw) = self.raw_bits.as_mut() {
            transcript::pack(&self.matches, raw, &mut self.packed_until, &mut packed);
            raw.clear();
            self.matches.clear();
        }
        packed
    }

    fn record_bits(&mut self, src: &[u8], from: u64, to: u64) {
        let pos = self.total_out();
        if let Some(raw) = self.raw_bits.as_mut() {
            raw.push(RawBits::from_stream(src, from, to, pos));
        }
    }

    pub fn total_out(&self) -> u64 {
        self.buf_base + self.end as u64
    }

    /// False once a length of 258 came as symbol 284 with extra bits 31, which neither
    /// zlib nor Go's compress/flate write.
    pub fn canonical(&self) -> bool {
        !self.noncanonical
    }

    /// Decodes from `input` until `max_out` plain bytes are out (`output`), the input is
    /// used up or the stream ends. Returns how many input bytes were used; at the end of
    /// the stream, none past its last byte.
    pub fn decompress(&mut self, input: &[u8], max_out: usize) -> Result<usize, String> {
        let max_out = max_out.min(usize::MAX / 4); // no overflow below
        self.make_room(max_out);
        if self.state == State::Done {
            return Ok(0);
        }
        let out_limit = self.end + max_out;
        let mut start_bit = self.start_bit;
        if !self.stash.is_empty() {
            let stash_len = self.stash.len();
            let take = input.len().min(JOIN_MAX);
            let mut joined = std::mem::take(&mut self.stash);
            joined.extend_from_slice(&input[..take]);
            let (at, stop) =
                self.run(&joined, start_bit, false, stash_len as u64 * 8, out_limit)?;
            if stop != Stop::Limit {
                if stop == Stop::NeedInput {
                    // The unit needs more input than given. (With more than JOIN_MAX
                    // bytes given, no valid unit does; keeping them all is still right.)
                    self.stash = joined.split_off((at / 8) as usize);
                    self.stash.extend_from_slice(&input[take..]);
                    self.start_bit = at % 8;
                    return Ok(input.len());
                }
                return Ok(self.finish(&joined, stash_len, at, stop));
            }
            start_bit = at - stash_len as u64 * 8;
        }
        let (at, stop) = self.run(input, start_bit, true, u64::MAX, out_limit)?;
        Ok(self.finish(input, 0, at, stop))
    }

    /// Keeps what the next call needs after a run over `src` (whose first `stash_len`
    /// bytes were kept from earlier calls) stopped at bit `at`; returns the input used.
    fn finish(&mut self, src: &[u8], stash_len: usize, at: u64, stop: Stop) -> usize {
        let whole = (at / 8) as usize;
        let partial = at.div_ceil(8) as usize;
        match stop {
            Stop::NeedInput => {
                self.stash.clear();
                self.stash.extend_from_slice(&src[whole..]);
                self.start_bit = at % 8;
                src.len() - stash_len
            }
            Stop::OutputFull => {
                // Keep the bytes from the stop on that are used already: a partly read
                // byte, or kept bytes not reached yet.
                let keep_end = partial.max(stash_len);
                self.stash.clear();
                self.stash.extend_from_slice(&src[whole..keep_end]);
                self.start_bit = at % 8;
                keep_end - stash_len
            }
            Stop::StreamEnd | Stop::Limit => {
                debug_assert!(partial >= stash_len, "stream ended inside kept bytes");
                self.stash.clear();
                self.start_bit = 0;
                partial.max(stash_len) - stash_len
            }
        }
    }

    /// Makes room for `max_out` more bytes after `end`, keeping a 32 KiB window.
    fn make_room(&mut self, max_out: usize) {
        let need = max_out + SLACK;
        if self.end > WINDOW && self.end + need > self.buf.len() {
            let cut = self.end - WINDOW;
            self.buf.copy_within(cut..self.end, 0);
            self.buf_base += cut as u64;
            self.end = WINDOW;
        }
        if self.end + need > self.buf.len() {
            // At least three windows, so that small calls slide only now and then.
            let size = (self.end + need).max(3 * WINDOW + SLACK);
            self.buf.resize(size, 0);
        }
        self.out_start = self.end;
    }

    /// Decodes `src` from bit `start_bit` until the output reaches `out_limit`, the input
    /// ends, the stream ends, or (at a unit boundary) bit `stop_bit` is passed. Returns
    /// the bit position where decoding stopped; for `NeedInput`, the start of the
    /// unfinished unit.
    fn run(
        &mut self,
        src: &[u8],
        start_bit: u64,
        fast: bool,
        stop_bit: u64,
        out_limit: usize,
    ) -> Result<(u64, Stop), String> {
        let mut r = Reader::at(src, start_bit);
        loop {
            if self.pending_len > 0 {
                let n = self.pending_len.min(out_limit - self.end);
                copy_slow(&mut self.buf, self.end, self.pending_dist, n);
                self.end += n;
                self.pending_len -= n;
                if self.pending_len > 0 {
                    return Ok((r.bitpos(), Stop::OutputFull));
                }
            }
            let at = r.bitpos();
            if at >= stop_bit {
                return Ok((at, Stop::Limit));
            }
            match self.state {
                State::Done => {
                    // The bits after the final block, up to the end of its last byte.
                    self.record_bits(src, at, at.next_multiple_of(8));
                    return Ok((at, Stop::StreamEnd));
                }
                State::Header => {
                    let checkpoint = r;
                    if !self.header(&mut r)? {
                        return Ok((checkpoint.bitpos(), Stop::NeedInput));
                    }
                }
                State::Stored(remaining) => {
                    // Stored data starts on a byte boundary: read it from the input
                    // directly, not from the bit buffer.
                    debug_assert!(r.left.is_multiple_of(8));
                    r.pos -= (r.left / 8) as usize;
                    r.left = 0;
                    r.buf = 0;
                    let n = remaining.min(out_limit - self.end).min(src.len() - r.pos);
                    self.buf[self.end..self.end + n].copy_from_slice(&src[r.pos..r.pos + n]);
                    self.end += n;
                    r.pos += n;
                    if n == remaining {
                        self.state = self.after_block();
                    } else {
                        self.state = State::Stored(remaining - n);
                        let stop = if self.end == out_limit {
                            Stop::OutputFull
                        } else if r.bitpos() >= stop_bit {
                            Stop::Limit
                        } else {
                            Stop::NeedInput
                        };
                        return Ok((r.bitpos(), stop));
                    }
                }
                State::Huffman => {
                    if fast {
                        let (lt, dt) = self.tables.current();
                        let mut out_pos = self.end;
                        // SAFETY: `buf` has SLACK bytes past `out_limit` (make_room).
                        let end_of_block = unsafe {
                            (self.fast_loop)(FastArgs {
                                r: &mut r,
                                lt,
                                dt,
                                out: &mut self.buf,
                                out_pos: &mut out_pos,
                                out_limit,
                                base: self.buf_base,
                                matches: &mut self.matches,
                                noncanonical: &mut self.noncanonical,
                            })
                        };
                        self.end = out_pos;
                        if end_of_block? {
                            self.state = self.after_block();
                            continue;
                        }
                    }
                    let checkpoint = r;
                    match self.symbol(&mut r, out_limit)? {
                        Stop::Limit => {}
                        Stop::NeedInput => return Ok((checkpoint.bitpos(), Stop::NeedInput)),
                        _ => return Ok((checkpoint.bitpos(), Stop::OutputFull)),
                    }
                }
            }
        }
    }

    fn after_block(&self) -> State {
        if self.last_block {
            State::Done
        } else {
            State::Header
        }
    }

    /// Decodes one symbol (with its match, if any). `Limit` when done; `OutputFull`
    /// when there is no room for it (nothing is consumed then).
    fn symbol(&mut self, r: &mut Reader, out_limit: usize) -> Result<Stop, String> {
        let (lt, dt) = self.tables.current();
        let Some((e, extra)) = r.symbol(lt, LITLEN_BITS, "literal/length")? else {
            return Ok(Stop::NeedInput);
        };
        if e & LIT != 0 {
            if self.end == out_limit {
                return Ok(Stop::OutputFull);
            }
            self.buf[self.end] = (e >> 16) as u8;
            self.end += 1;
            return Ok(Stop::Limit);
        }
        if e & EOB != 0 {
            self.state = self.after_block();
            return Ok(Stop::Limit);
        }
        let len = (e >> 16) as usize + extra as usize;
        let nonstandard = len == 258 && (e & 0xff) != ((e >> 8) & 0xf);
        let Some((d, dextra)) = r.symbol(dt, DIST_BITS, "distance")? else {
            return Ok(Stop::NeedInput);
        };
        let dist = (d >> 16) as usize + dextra as usize;
        if dist > self.end {
            return Err("invalid distance too far back".into());
        }
        let room = out_limit - self.end;
        if room == 0 {
            return Ok(Stop::OutputFull);
        }
        self.matches.push(Hint {
            pos: self.buf_base + self.end as u64,
            len: len as u16,
            dist: dist as u16,
        });
        self.noncanonical |= nonstandard;
        let n = len.min(room);
        copy_slow(&mut self.buf, self.end, dist, n);
        self.end += n;
        self.pending_len = len - n;
        self.pending_dist = dist;
        Ok(Stop::Limit)
    }

    /// Reads a block header (for a dynamic block, with its code description). False if
    /// the input ends first.
    fn header(&mut self, r: &mut Reader) -> Result<bool, String> {
        let start = r.bitpos();
        let Some(h) = r.bits(3) else {
            return Ok(false);
        };
        let state = match h >> 1 {
            0 => {
                r.drop(r.left % 8);
                let (Some(len), Some(nlen)) = (r.bits(16), r.bits(16)) else {
                    return Ok(false);
                };
                if len != !nlen & 0xffff {
                    return Err("invalid stored block lengths".into());
                }
                State::Stored(len as usize)
            }
            1 => {
                self.tables.fixed = true;
                State::Huffman
            }
            2 => {
                if !self.dynamic_header(r)? {
                    return Ok(false);
                }
                self.tables.fixed = false;
                State::Huffman
            }
            _ => return Err("invalid block type".into()),
        };
        self.last_block = h & 1 == 1;
        self.state = state;
        self.record_bits(r.src, start, r.bitpos());
        Ok(true)
    }

    fn dynamic_header(&mut self, r: &mut Reader) -> Result<bool, String> {
        let (Some(hlit), Some(hdist), Some(hclen)) = (r.bits(5), r.bits(5), r.bits(4)) else {
            return Ok(false);
        };
        let (nlen, ndist, ncode) = (hlit as usize + 257, hdist as usize + 1, hclen as usize + 4);
        if nlen > 286 || ndist > 30 {
            return Err("too many length or distance symbols".into());
        }
        let mut pre_lens = [0u8; 19];
        for &i in &PRECODE_ORDER[..ncode] {
            let Some(l) = r.bits(3) else {
                return Ok(false);
            };
            pre_lens[i] = l as u8;
        }
        let mut pre = [0u32; PRECODE_SIZE];
        build_table(&pre_lens, Code::Precode, PRECODE_BITS, &mut pre)
            .map_err(|e| format!("{e} (code lengths code)"))?;
        let mut lens = [0u8; 286 + 30];
        let total = nlen + ndist;
        let mut i = 0;
        while i < total {
            let Some((e, _)) = r.symbol(&pre, PRECODE_BITS, "code lengths")? else {
                return Ok(false);
            };
            let sym = e >> 16;
            if sym < 16 {
                lens[i] = sym as u8;
                i += 1;
                continue;
            }
            let (value, count) = match sym {
                16 => {
                    if i == 0 {
                        return Err("invalid bit length repeat".into());
                    }
                    let Some(n) = r.bits(2) else {
                        return Ok(false);
                    };
                    (lens[i - 1], 3 + n as usize)
                }
                17 => {
                    let Some(n) = r.bits(3) else {
                        return Ok(false);
                    };
                    (0, 3 + n as usize)
                }
                _ => {
                    let Some(n) = r.bits(7) else {
                        return Ok(false);
                    };
                    (0, 11 + n as usize)
                }
            };
            if i + count > total {
                return Err("invalid bit length repeat".into());
            }
            lens[i..i + count].fill(value);
            i += count;
        }
        if lens[256] == 0 {
            return Err("invalid code -- missing end-of-block".into());
        }
        build_table(
            &lens[..nlen],
            Code::LitLen,
            LITLEN_BITS,
            &mut self.tables.litlen,
        )
        .map_err(|e| format!("{e} (literal/lengths)"))?;
        build_table(
            &lens[nlen..total],
            Code::Dist,
            DIST_BITS,
            &mut self.tables.dist,
        )
        .map_err(|e| format!("{e} (distances)"))?;
        Ok(true)
    }
}

/// Copies a match of `n` bytes from `dist` back, byte by byte (they may overlap).
fn copy_slow(buf: &mut [u8], at: usize, dist: usize, n: usize) {
    for i in at..at + n {
        buf[i] = buf[i - dist];
    }
}

/// Copies a match with word moves; may write up to 15 bytes past `len`.
///
/// # Safety
/// `out` must be valid for `op + len + 16` bytes and `1 <= dist <= op`.
#[inline(always)]
unsafe fn copy_match(out: *mut u8, op: usize, dist: usize, len: usize) {
    let mut d = out.add(op);
    let end = d.add(len);
    let mut s = d.sub(dist);
    if dist >= 16 {
        loop {
            let a = (s as *const u64).read_unaligned();
            let b = (s.add(8) as *const u64).read_unaligned();
            (d as *mut u64).write_unaligned(a);
            (d.add(8) as *mut u64).write_unaligned(b);
            s = s.add(16);
            d = d.add(16);
            if d >= end {
                break;
            }
        }
    } else if dist >= 8 {
        loop {
            (d as *mut u64).write_unaligned((s as *const u64).read_unaligned());
            s = s.add(8);
            d = d.add(8);
            if d >= end {
                break;
            }
        }
    } else if dist == 1 {
        let v = (*s as u64).wrapping_mul(0x0101_0101_0101_0101);
        loop {
            (d as *mut u64).write_unaligned(v);
            d = d.add(8);
            if d >= end {
                break;
            }
        }
    } else {
        while d < end {
            *d = *s;
            d = d.add(1);
            s = s.add(1);
        }
    }
}

/// What the fast loop works on: the reader, the code tables, the output buffer with
/// its position and limit, the output's stream position and where matches go.
struct FastArgs<'a, 'b> {
    r: &'a mut Reader<'b>,
    lt: &'a [u32],
    dt: &'a [u32],
    out: &'a mut [u8],
    out_pos: &'a mut usize,
    out_limit: usize,
    base: u64,
    matches: &'a mut Vec<Hint>,
    noncanonical: &'a mut bool,
}

type FastLoop = unsafe fn(FastArgs) -> Result<bool, String>;

/// `fast_loop` with BMI2 where the CPU has it (shifts by a variable count without the
/// count register: shorter dependency chains from one code to the next).
fn pick_fast_loop() -> FastLoop {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("bmi2") {
            return fast_loop_bmi2;
        }
    }
    fast_loop_plain
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2")]
unsafe fn fast_loop_bmi2(args: FastArgs) -> Result<bool, String> {
    fast_loop(args)
}

unsafe fn fast_loop_plain(args: FastArgs) -> Result<bool, String> {
    fast_loop(args)
}

/// The hot loop: decodes symbols while at least FAST_IN_MARGIN input bytes and
/// FAST_OUT_MARGIN bytes of output room are left. Returns true at the end of the block.
///
/// # Safety
/// `out` must have at least `out_limit + SLACK` bytes, `lt`/`dt` must be tables built
/// by `build_table` with LITLEN_ENOUGH / DIST_ENOUGH entries.
#[inline(always)]
unsafe fn fast_loop(args: FastArgs) -> Result<bool, String> {
    let FastArgs {
        r,
        lt,
        dt,
        out,
        out_pos,
        out_limit,
        base,
        matches,
        noncanonical,
    } = args;
    debug_assert!(out.len() >= out_limit + SLACK);
    debug_assert!(lt.len() == LITLEN_ENOUGH && dt.len() == DIST_ENOUGH);
    let src = r.src;
    if src.len() < FAST_IN_MARGIN || out_limit < FAST_OUT_MARGIN {
        return Ok(false);
    }
    let in_last = src.len() - FAST_IN_MARGIN;
    let out_last = out_limit - FAST_OUT_MARGIN;
    let sp = src.as_ptr();
    let outp = out.as_mut_ptr();
    let ltp = lt.as_ptr();
    let dtp = dt.as_ptr();
    let lmask = mask(LITLEN_BITS);
    let dmask = mask(DIST_BITS);
    let mut bb = r.buf;
    let mut left = r.left;
    let mut ip = r.pos;
    let mut op = *out_pos;
    let mut result = Ok(false);

    macro_rules! refill {
        () => {
            bb |= (sp.add(ip) as *const u64).read_unaligned().to_le() << left;
            ip += 7 - ((left >> 3) & 7) as usize;
            left |= 56;
        };
    }
    macro_rules! consume {
        ($n:expr) => {
            let n = $n;
            bb >>= n;
            left -= n;
        };
    }
    macro_rules! literal {
        ($e:expr) => {
            consume!($e & 0xff);
            *outp.add(op) = ($e >> 16) as u8;
            op += 1;
        };
    }

    if ip > in_last || op > out_last {
        return Ok(false);
    }
    // The next literal/length entry is looked up ahead (overlapping the lookup with the
    // refill or a match copy). Right after a refill all 64 bits of `bb` are input bits,
    // and at most 50 are consumed before the next one, so 10 index bits are always real.
    refill!();
    let mut e = *ltp.add((bb & lmask) as usize);
    while ip <= in_last && op <= out_last {
        refill!();
        // At least 56 bits: four primary-table literals (10 bits each), or three and
        // a length code with its extra bits (up to 20: a subtable code of 15 bits and 5).
        if e & LIT != 0 {
            literal!(e);
            e = *ltp.add((bb & lmask) as usize);
            if e & LIT != 0 {
                literal!(e);
                e = *ltp.add((bb & lmask) as usize);
                if e & LIT != 0 {
                    literal!(e);
                    e = *ltp.add((bb & lmask) as usize);
                    if e & LIT != 0 {
                        literal!(e);
                        e = *ltp.add((bb & lmask) as usize);
                        continue;
                    }
                }
            }
        }
        if e & EXC != 0 {
            if e & SUB != 0 {
                consume!(LITLEN_BITS);
                e = *ltp.add((e >> 16) as usize + (bb & mask((e >> 8) & 0xf)) as usize);
                if e & LIT != 0 {
                    literal!(e);
                    e = *ltp.add((bb & lmask) as usize);
                    continue;
                }
            }
            if e & EXC != 0 {
                if e & EOB != 0 {
                    consume!(e & 0xff);
                    result = Ok(true);
                } else {
                    result = Err("invalid literal/length code".to_string());
                }
                break;
            }
        }
        let saved = bb;
        let total = e & 0xff;
        let cl = (e >> 8) & 0xf;
        consume!(total);
        let len = (e >> 16) as usize + ((saved & mask(total)) >> cl) as usize;
        if len == 258 && total != cl {
            *noncanonical = true;
        }
        refill!();
        let mut d = *dtp.add((bb & dmask) as usize);
        if d & EXC != 0 {
            if d & SUB != 0 {
                consume!(DIST_BITS);
                d = *dtp.add((d >> 16) as usize + (bb & mask((d >> 8) & 0xf)) as usize);
            }
            if d & EXC != 0 {
                result = Err("invalid distance code".to_string());
                break;
            }
        }
        let saved = bb;
        let total = d & 0xff;
        consume!(total);
        let dist = (d >> 16) as usize + ((saved & mask(total)) >> ((d >> 8) & 0xf)) as usize;
        if dist > op {
            result = Err("invalid distance too far back".to_string());
            break;
        }
        e = *ltp.add((bb & lmask) as usize);
        matches.push(Hint {
            pos: base + op as u64,
            len: len as u16,
            dist: dist as u16,
        });
        copy_match(outp, op, dist, len);
        op += len;
    }
    r.buf = bb;
    r.left = left;
    r.pos = ip;
    *out_pos = op;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::DeflateEncoder;
    use flate2::{Compression, Decompress, FlushDecompress, Status};
    use std::io::{Read, Write};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed);
        (0..n).map(|_| rng.next() as u8).collect()
    }

    fn text(n: usize, seed: u64) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "the",
            "layer",
            "image",
            "registry",
            "manifest",
            "blob",
            "digest",
            "sha256",
            "config",
            "java",
            "class",
            "org/apache/commons",
            "META-INF/MANIFEST.MF",
            "a",
            "of",
            "and",
            "compression",
            "deflate",
            "window",
            "match",
            "\n",
            "    ",
        ];
        let mut rng = Rng(seed);
        let mut out = Vec::with_capacity(n + 32);
        while out.len() < n {
            out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
            out.push(if rng.below(9) == 0 { b'\n' } else { b' ' });
        }
        out.truncate(n);
        out
    }

    /// Runs of one byte and short periods (distances below 8 and 16), then long repeats.
    fn repetitive(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed);
        let mut out = Vec::with_capacity(n + 600);
        while out.len() < n {
            let period = 1 + rng.below(20);
            let unit: Vec<u8> = (0..period).map(|_| rng.next() as u8).collect();
            let reps = 1 + rng.below(600 / period + 1);
            for _ in 0..reps {
                out.extend_from_slice(&unit);
            }
            if rng.below(4) == 0 && out.len() > 1000 {
                let from = rng.below(out.len() - 900);
                let piece = out[from..from + 300 + rng.below(600)].to_vec();
                out.extend_from_slice(&piece);
            }
        }
        out.truncate(n);
        out
    }

    fn big(seed: u64) -> Vec<u8> {
        let mut out = text(500_000, seed);
        out.extend(random_bytes(300_000, seed + 1));
        out.extend(repetitive(400_000, seed + 2));
        out.extend(text(100_000, seed + 3));
        out
    }

    fn zlib_deflate(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn go_deflate(data: &[u8], level: i32) -> Vec<u8> {
        let mut e = crate::goflate::GoDeflater::new(level).unwrap();
        e.write(data);
        e.close();
        e.take_output()
    }

    struct Decoded {
        plain: Vec<u8>,
        matches: Vec<Hint>,
        used: usize,
        eof: bool,
        canonical: bool,
    }

    /// Decodes `stream` in pieces of `piece()` bytes with `max_out` per call, as the
    /// Python caller does: unused input is offered again.
    fn decode(
        stream: &[u8],
        mut piece: impl FnMut() -> usize,
        max_out: usize,
    ) -> Result<Decoded, String> {
        let mut inf = TokenInflater::new();
        let (mut plain, mut matches, mut pos) = (Vec::new(), Vec::new(), 0usize);
        let mut idle = 0;
        while !inf.eof() {
            let end = pos.saturating_add(piece()).min(stream.len());
            let used = inf.decompress(&stream[pos..end], max_out)?;
            assert!(used <= end - pos);
            assert!(inf.output().len() <= max_out);
            plain.extend_from_slice(inf.output());
            assert_eq!(inf.total_out(), plain.len() as u64);
            inf.take_matches(&mut matches);
            pos += used;
            if used == 0 && inf.output().is_empty() && !inf.eof() {
                if pos == stream.len() {
                    break; // truncated: needs more input
                }
                idle += 1;
                assert!(idle < 3, "no progress");
            } else {
                idle = 0;
            }
        }
        Ok(Decoded {
            plain,
            matches,
            used: pos,
            eof: inf.eof(),
            canonical: inf.canonical(),
        })
    }

    /// Checks the matches against the plain data: in order, not overlapping, in range,
    /// and the plain data rebuilt from them and the literals between them is the same.
    fn check_matches(plain: &[u8], matches: &[Hint]) {
        let mut rebuilt = Vec::with_capacity(plain.len());
        for h in matches {
            let pos = h.pos as usize;
            assert!(
                pos >= rebuilt.len(),
                "matches out of order or overlapping: {h:?}"
            );
            assert!((3..=258).contains(&h.len), "bad length {h:?}");
            assert!(
                h.dist >= 1 && h.dist as usize <= pos.min(32768),
                "bad distance {h:?}"
            );
            rebuilt.extend_from_slice(&plain[rebuilt.len()..pos]);
            for _ in 0..h.len {
                rebuilt.push(rebuilt[rebuilt.len() - h.dist as usize]);
            }
        }
        rebuilt.extend_from_slice(&plain[rebuilt.len().min(plain.len())..]);
        assert!(
            rebuilt == plain,
            "plain data rebuilt from the matches differs"
        );
    }

    /// Decodes `stream` (followed by other bytes) in many ways; all must give `plain`,
    /// the same matches, and stop using input at the end of the stream.
    fn check_stream(stream: &[u8], plain: &[u8], seed: u64) {
        let mut with_trailer = stream.to_vec();
        with_trailer.extend_from_slice(b"TRAILER-next member");
        let mut rng = Rng(seed | 1);
        let mut ways: Vec<(usize, usize)> = vec![(usize::MAX, 1 << 21), (usize::MAX, 4096)];
        ways.extend([
            (512 << 10, 2 << 20),
            (5000, 1 << 20),
            (100, 70_000),
            (2000, 300),
        ]);
        if stream.len() < 20_000 {
            ways.extend([(1, 1 << 20), (1, 7), (usize::MAX, 1)]);
        }
        let mut first_matches: Option<Vec<Hint>> = None;
        for (max_piece, max_out) in ways {
            let d = decode(
                &with_trailer,
                || 1 + rng.below(max_piece.min(1 << 30)),
                max_out,
            )
            .unwrap_or_else(|e| panic!("error {e} (pieces {max_piece}, max_out {max_out})"));
            assert!(d.eof);
            assert!(
                d.plain == plain,
                "plain differs (pieces {max_piece}, max_out {max_out})"
            );
            assert_eq!(
                d.used,
                stream.len(),
                "input used up to the end of the stream"
            );
            assert!(d.canonical);
            match &first_matches {
                None => {
                    check_matches(plain, &d.matches);
                    first_matches = Some(d.matches);
                }
                Some(h) => assert!(*h == d.matches, "matches depend on the cuts"),
            }
        }
    }

    fn data_kinds() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("empty", Vec::new()),
            ("one byte", vec![b'x']),
            ("small text", text(3000, 1)),
            ("random", random_bytes(200_000, 2)),
            ("text", text(300_000, 3)),
            ("repetitive", repetitive(300_000, 4)),
            ("big", big(5)),
        ]
    }

    #[test]
    fn zlib_streams_decode_like_zlib() {
        for (name, plain) in data_kinds() {
            for level in [0, 1, 6, 9] {
                let stream = zlib_deflate(&plain, level);
                println!("{name} zlib -{level}: {} -> {}", plain.len(), stream.len());
                check_stream(&stream, &plain, level as u64 + 10);
            }
        }
    }

    #[test]
    fn go_streams_decode_like_zlib() {
        for (name, plain) in data_kinds() {
            for level in [-2, 0, 1, 6, 9] {
                let stream = go_deflate(&plain, level);
                println!("{name} go {level}: {} -> {}", plain.len(), stream.len());
                check_stream(&stream, &plain, (level + 20) as u64);
            }
        }
    }

    /// LSB-first bit writer for hand-made streams.
    #[derive(Default)]
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }

    impl Bits {
        fn put(&mut self, v: u32, n: u32) {
            self.acc |= (v as u64) << self.n;
            self.n += n;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u32, len: u32) {
            let rev = (code as u16).reverse_bits() >> (16 - len);
            self.put(rev as u32, len);
        }
        fn fixed_litlen(&mut self, sym: u32) {
            match sym {
                0..=143 => self.code(0x30 + sym, 8),
                144..=255 => self.code(0x190 + sym - 144, 9),
                256..=279 => self.code(sym - 256, 7),
                _ => self.code(0xc0 + sym - 280, 8),
            }
        }
        fn fixed_match(&mut self, len: usize, dist: usize, len_258_as_284: bool) {
            if len == 258 && len_258_as_284 {
                self.fixed_litlen(284);
                self.put(31, 5);
            } else {
                let i = LEN_BASE.iter().rposition(|&b| b as usize <= len).unwrap();
                self.fixed_litlen(257 + i as u32);
                self.put((len - LEN_BASE[i] as usize) as u32, LEN_EXTRA[i] as u32);
            }
            let i = DIST_BASE.iter().rposition(|&b| b as usize <= dist).unwrap();
            self.code(i as u32, 5);
            self.put((dist - DIST_BASE[i] as usize) as u32, DIST_EXTRA[i] as u32);
        }
        fn finish(mut self) -> Vec<u8> {
            if self.n > 0 {
                self.out.push(self.acc as u8);
            }
            self.out
        }
    }

    enum Tok {
        Lit(u8),
        Match(usize, usize),
    }

    /// A fixed-code block (final or not) of `tokens`; returns the plain data it makes.
    fn fixed_block(w: &mut Bits, tokens: &[Tok], last: bool, odd_258: bool, plain: &mut Vec<u8>) {
        w.put(last as u32 | 2, 3);
        for t in tokens {
            match *t {
                Tok::Lit(b) => {
                    w.fixed_litlen(b as u32);
                    plain.push(b);
                }
                Tok::Match(len, dist) => {
                    w.fixed_match(len, dist, odd_258);
                    for _ in 0..len {
                        plain.push(plain[plain.len() - dist]);
                    }
                }
            }
        }
        w.fixed_litlen(256);
    }

    fn hand_made(odd_258: bool) -> (Vec<u8>, Vec<u8>, Vec<Hint>) {
        use Tok::*;
        let mut w = Bits::default();
        let mut plain = Vec::new();
        let first = [
            Lit(b'a'),
            Lit(b'b'),
            Lit(b'c'),
            Match(3, 3),
            Lit(0xff),
            Match(258, 1),
            Match(10, 7),
            Lit(b'z'),
            Match(258, 100),
        ];
        fixed_block(&mut w, &first, false, odd_258, &mut plain);
        // A stored block in between: its bytes are literals.
        w.put(0, 3);
        let n = w.n;
        w.put(0, (8 - n % 8) % 8);
        w.put(5, 16);
        w.put(!5 & 0xffff, 16);
        for &b in b"hello" {
            w.put(b as u32, 8);
            plain.push(b);
        }
        let mut have = plain.len();
        let second: Vec<Tok> = (0..40)
            .map(|i| {
                if i % 3 == 0 {
                    have += 1;
                    Lit(i as u8)
                } else {
                    let (len, dist) = (3 + i * 6, 1 + (i * 700) % have);
                    have += len;
                    Match(len, dist)
                }
            })
            .collect();
        fixed_block(&mut w, &second, true, odd_258, &mut plain);
        // The expected matches, from the tokens.
        let matches_of = |tokens: &[Tok], pos: &mut u64| -> Vec<Hint> {
            let mut found = Vec::new();
            for t in tokens {
                match *t {
                    Lit(_) => *pos += 1,
                    Match(len, dist) => {
                        found.push(Hint::at(*pos, len as u16, dist as u16));
                        *pos += len as u64;
                    }
                }
            }
            found
        };
        let mut pos = 0u64;
        let mut matches = matches_of(&first, &mut pos);
        pos += 5; // the stored block's bytes
        matches.extend(matches_of(&second, &mut pos));
        assert_eq!(pos as usize, plain.len());
        (w.finish(), plain, matches)
    }

    #[test]
    fn hand_made_stream_gives_its_matches() {
        let (stream, plain, matches) = hand_made(false);
        // zlib agrees on the plain data.
        let mut zplain = Vec::new();
        flate2::read::DeflateDecoder::new(&stream[..])
            .read_to_end(&mut zplain)
            .unwrap();
        assert!(zplain == plain);
        check_stream(&stream, &plain, 7);
        let d = decode(&stream, || usize::MAX, 1 << 20).unwrap();
        assert_eq!(d.matches, matches);
        assert_eq!(
            d.matches.len(),
            2 + 2 + 26,
            "the matches of both Huffman blocks, none of the stored block"
        );
        assert!(d.canonical);
    }

    #[test]
    fn length_258_as_284_is_not_canonical() {
        let (stream, plain, matches) = hand_made(true);
        let mut zplain = Vec::new();
        flate2::read::DeflateDecoder::new(&stream[..])
            .read_to_end(&mut zplain)
            .unwrap();
        assert!(zplain == plain);
        for (piece, max_out) in [(usize::MAX, 1 << 20), (1, 3)] {
            let d = decode(&stream, || piece, max_out).unwrap();
            assert!(d.plain == plain);
            assert_eq!(d.matches, matches);
            assert!(!d.canonical);
        }
        // Before the odd match, the stream still counts as canonical.
        let mut inf = TokenInflater::new();
        inf.decompress(&stream, 3).unwrap();
        assert!(inf.canonical());
    }

    /// Whether the stream's transcript, checked as it is decoded in `piece`-byte cuts,
    /// writes it back.
    fn transcript_checks(stream: &[u8], piece: usize) -> bool {
        let mut inf = TokenInflater::new();
        inf.record_transcript();
        let mut check = transcript::TranscriptCheck::new();
        let mut input = stream;
        while !inf.eof() {
            let take = input.len().min(piece);
            let used = inf.decompress(&input[..take], 5).unwrap();
            let packed = inf.take_transcript();
            check.feed(inf.output(), &input[..used], &packed);
            input = &input[used..];
        }
        check.finish()
    }

    #[test]
    fn hand_made_streams_come_back_from_their_transcripts_unless_odd() {
        for piece in [1, 3, usize::MAX] {
            assert!(
                transcript_checks(&hand_made(false).0, piece),
                "piece {piece}"
            );
            // 258 coded as 284 with extra bits 31 is written back as 285: a mismatch,
            // never a wrong success.
            assert!(
                !transcript_checks(&hand_made(true).0, piece),
                "piece {piece}"
            );
        }
    }

    #[test]
    fn max_out_zero_makes_no_output_but_finishes_headers() {
        let stream = zlib_deflate(b"", 6);
        let mut inf = TokenInflater::new();
        let used = inf.decompress(&stream, 0).unwrap();
        assert!(inf.eof() && used == stream.len() && inf.output().is_empty());
        let stream = zlib_deflate(b"abc", 6);
        let mut inf = TokenInflater::new();
        inf.decompress(&stream, 0).unwrap();
        assert!(!inf.eof() && inf.output().is_empty());
    }

    fn expect_err(stream: &[u8], what: &str) {
        for piece in [usize::MAX, 1] {
            let r = decode(stream, || piece, 1 << 16);
            assert!(r.is_err(), "{what}: not an error (pieces {piece})");
        }
        let mut z = Vec::new();
        assert!(
            flate2::read::DeflateDecoder::new(stream)
                .read_to_end(&mut z)
                .is_err(),
            "{what}: zlib takes it"
        );
    }

    #[test]
    fn corrupt_streams_are_errors() {
        expect_err(&[0xff; 64], "garbage");
        expect_err(&[0x07, 0, 0, 0], "block type 3");
        expect_err(
            &[0x01, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5],
            "stored LEN/NLEN mismatch",
        );
        // A match before the start of the stream.
        let mut w = Bits::default();
        w.put(3, 3);
        w.fixed_litlen(b'a' as u32);
        w.fixed_match(3, 2, false);
        w.fixed_litlen(256);
        expect_err(&w.finish(), "distance too far back");
        // Symbols 286 and 287, distance codes 30 and 31 of the fixed code.
        for sym in [286, 287] {
            let mut w = Bits::default();
            w.put(3, 3);
            w.fixed_litlen(sym);
            w.put(0, 16);
            expect_err(&w.finish(), "literal/length symbol 286/287");
        }
        for dsym in [30, 31] {
            let mut w = Bits::default();
            w.put(3, 3);
            w.fixed_litlen(b'a' as u32);
            w.fixed_litlen(257);
            w.code(dsym, 5);
            w.put(0, 16);
            expect_err(&w.finish(), "distance symbol 30/31");
        }
        // Dynamic header whose code lengths code is over-subscribed (three of length 1).
        let mut w = Bits::default();
        w.put(5, 3);
        w.put(0, 5);
        w.put(0, 5);
        w.put(0, 4);
        w.put(1, 3);
        w.put(1, 3);
        w.put(1, 3);
        w.put(0, 3);
        w.put(0, 32);
        expect_err(&w.finish(), "over-subscribed code lengths code");
        // Too many length symbols (HLIT 30 -> 287).
        let mut w = Bits::default();
        w.put(5, 3);
        w.put(30, 5);
        w.put(0, 32);
        expect_err(&w.finish(), "too many length symbols");
    }

    /// Builds a dynamic block with the given literal/length and distance code lengths
    /// (described with a flat code lengths code of 5 bits: all 16 lengths 0..15 plus
    /// three unused symbols would be over-subscribed, so 16 symbols of length 4).
    fn dynamic_block(litlen: &[u8], dist: &[u8], body: impl FnOnce(&mut Bits)) -> Vec<u8> {
        let mut w = Bits::default();
        w.put(5, 3);
        w.put(litlen.len() as u32 - 257, 5);
        w.put(dist.len() as u32 - 1, 5);
        w.put(19 - 4, 4);
        // Code lengths 0..15 get 4-bit codes (complete), 16/17/18 none.
        for &sym in &PRECODE_ORDER {
            w.put(if sym < 16 { 4 } else { 0 }, 3);
        }
        for &l in litlen.iter().chain(dist) {
            // Canonical code of symbol l among 16 symbols of length 4 is l itself.
            w.code(l as u32, 4);
        }
        body(&mut w);
        w.finish()
    }

    /// Code lengths giving a complete code: literals 0..255 and 256..=257 in one code.
    fn litlen_lengths() -> Vec<u8> {
        // 256 symbols of length 9 use half the code space; EOB and 257 take length 2.
        let mut l = vec![9u8; 258];
        l[256] = 2;
        l[257] = 2;
        l
    }

    #[test]
    fn single_distance_code_of_length_one_is_accepted() {
        // Go writes a distance code with one code of length 1 when a block has only one
        // distance code in use; zlib accepts that incomplete code.
        let lit = litlen_lengths();
        let mut dist = vec![0u8; 30];
        dist[0] = 1; // distance 1
        let stream = dynamic_block(&lit, &dist, |w| {
            // 'a' (9-bit code: canonical codes of length 9 start at 0b100000000 after
            // the two 2-bit codes 00 and 01), then 257 (length 3, code 01) + dist code 0.
            w.code(0b1_0000_0000 + b'a' as u32, 9);
            w.code(0b01, 2);
            w.code(0, 1);
            w.code(0b00, 2);
        });
        let mut z = Vec::new();
        flate2::read::DeflateDecoder::new(&stream[..])
            .read_to_end(&mut z)
            .unwrap();
        assert_eq!(z, b"aaaa");
        check_stream(&stream, b"aaaa", 3);
        let d = decode(&stream, || usize::MAX, 100).unwrap();
        assert_eq!(
            d.matches,
            vec![Hint {
                pos: 1,
                len: 3,
                dist: 1,
            }]
        );
        // The unused code (bit 1) is invalid, as in zlib.
        let bad = dynamic_block(&lit, &dist, |w| {
            w.code(0b1_0000_0000 + b'a' as u32, 9);
            w.code(0b01, 2);
            w.code(1, 1);
            w.code(0b00, 2);
        });
        expect_err(&bad, "unused code of an incomplete distance code");
        // An incomplete code with two codes is rejected, as by zlib.
        let mut dist2 = vec![0u8; 30];
        dist2[0] = 1;
        dist2[1] = 2;
        expect_err(
            &dynamic_block(&lit, &dist2, |w| w.code(0, 2)),
            "incomplete distance code",
        );
        // No distance codes at all is fine for a block of literals only.
        let stream = dynamic_block(&lit, &[0], |w| {
            w.code(0b1_0000_0000 + b'q' as u32, 9);
            w.code(0b00, 2);
        });
        check_stream(&stream, b"q", 4);
    }

    #[test]
    fn truncated_streams_need_more_input() {
        let plain = text(6000, 9);
        for stream in [
            zlib_deflate(&plain, 6),
            go_deflate(&plain, 6),
            zlib_deflate(&plain, 0),
        ] {
            for cut in 0..stream.len() {
                for piece in [usize::MAX, 1, 13] {
                    let d = decode(&stream[..cut], || piece, 1000).unwrap();
                    assert!(!d.eof, "eof on a truncated stream");
                    assert_eq!(d.used, cut);
                    assert!(plain.starts_with(&d.plain));
                }
            }
        }
    }

    /// Decompresses with zlib (zlib-rs): Ok(Some(plain)) at the stream end, Ok(None) if
    /// truncated, Err if corrupt.
    fn zlib_inflate(stream: &[u8]) -> Result<Option<Vec<u8>>, ()> {
        let mut d = Decompress::new(false);
        let mut out = Vec::with_capacity(1 << 22);
        loop {
            let before = (d.total_in(), d.total_out());
            let st = d
                .decompress_vec(
                    &stream[d.total_in() as usize..],
                    &mut out,
                    FlushDecompress::None,
                )
                .map_err(|_| ())?;
            if st == Status::StreamEnd {
                return Ok(Some(out));
            }
            if out.len() == out.capacity() {
                out.reserve(1 << 22);
            } else if (d.total_in(), d.total_out()) == before {
                return Ok(None);
            }
        }
    }

    #[test]
    fn damaged_streams_behave_like_zlib() {
        let mut rng = Rng(77);
        let sources = [
            zlib_deflate(&text(20_000, 1), 6),
            zlib_deflate(&repetitive(20_000, 2), 9),
            go_deflate(&text(20_000, 3), 6),
            go_deflate(&random_bytes(3000, 4), 1),
            hand_made(false).0,
        ];
        let (mut errors, mut ends) = (0, 0);
        // TOKEN_INFLATE_FUZZ_ROUNDS=N runs more rounds.
        let rounds =
            std::env::var("TOKEN_INFLATE_FUZZ_ROUNDS").map_or(3000, |v| v.parse().unwrap());
        for round in 0..rounds {
            let mut s = sources[round % sources.len()].clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(s.len().min(if round % 2 == 0 { 200 } else { s.len() }));
                s[i] ^= 1 << rng.below(8);
            }
            let max_out = 1 + rng.below(70_000);
            let ours = decode(&s, || 1 + rng.below(3000), max_out);
            match zlib_inflate(&s) {
                Err(()) => {
                    errors += 1;
                    assert!(ours.is_err(), "round {round}: zlib rejects, we accept");
                }
                Ok(Some(plain)) => {
                    ends += 1;
                    let d =
                        ours.unwrap_or_else(|e| panic!("round {round}: zlib accepts, we say {e}"));
                    assert!(
                        d.eof && d.plain == plain,
                        "round {round}: differs from zlib"
                    );
                    check_matches(&plain, &d.matches);
                }
                Ok(None) => {
                    let d = ours
                        .unwrap_or_else(|e| panic!("round {round}: zlib wants more, we say {e}"));
                    assert!(!d.eof);
                }
            }
        }
        println!("{errors} errors, {ends} ends");
        assert!(errors > rounds / 30 && ends > rounds / 30);
    }

    /// Where the deflate data of a gzip member starts.
    fn gzip_body_start(gz: &[u8]) -> usize {
        assert!(gz[0] == 0x1f && gz[1] == 0x8b && gz[2] == 8);
        let flags = gz[3];
        let mut at = 10;
        if flags & 4 != 0 {
            at += 2 + u16::from_le_bytes([gz[at], gz[at + 1]]) as usize;
        }
        for bit in [8, 16] {
            if flags & bit != 0 {
                at += gz[at..].iter().position(|&b| b == 0).unwrap() + 1;
            }
        }
        if flags & 2 != 0 {
            at += 2;
        }
        at
    }

    #[test]
    fn fixture_layers_decode_like_zlib() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/layers");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("fixture layers") {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "gz") {
                continue;
            }
            let gz = std::fs::read(&path).unwrap();
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut plain)
                .unwrap();
            let start = gzip_body_start(&gz);
            let mut rng = Rng(seen + 5);
            for (max_piece, max_out) in [(512 << 10, 2 << 20), (10_000, 100_000)] {
                let d = decode(&gz[start..], || 1 + rng.below(max_piece), max_out).unwrap();
                assert!(d.eof && d.plain == plain, "{}", path.display());
                assert_eq!(
                    start + d.used,
                    gz.len() - 8,
                    "{}: trailer left",
                    path.display()
                );
                assert!(d.canonical);
                check_matches(&plain, &d.matches);
            }
            seen += 1;
        }
        assert!(seen >= 10, "only {seen} fixture layers");
    }
}
