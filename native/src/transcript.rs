//! A deflate stream's transcript: its block headers bit for bit and its matches by
//! plain-data position. Given the plain data, the transcript writes the stream back bit
//! for bit, whatever encoder made it. Every other token is a literal, and a header tells
//! the block's code.
//!
//! Writing a stream from its transcript needs no match search and no Huffman tree
//! building: only the bit packing. It is several times faster than re-encoding the
//! data, and it works for any encoder. For a stream that is mostly
//! literals (jar layers), the headers add some 0.3 % of the plain size to the 1-2 % the
//! matches take.
//!
//! Packed form (stored zstd-compressed in a gzip recipe), one record per match or raw
//! bits in stream order: varint(gap) then either a match, `len - 3` (1 byte) and
//! `dist - 1` (2 bytes, little endian, below 0x8000), or raw bits, a zero byte, 0xffff,
//! the number of bits (2 bytes) and the bits (LSB first). `gap` counts the plain bytes
//! between the end of the previous record (or the start) and this one. Raw bits are a
//! block header (a stored block's with its padding and lengths), or, after the final
//! block, the bits that fill up the stream's last byte.

use std::collections::VecDeque;

use crate::deflate_format::{
    DIST_BASE, DIST_EXTRA, FIXED_LITLEN_LENGTHS, LEN_BASE, LEN_EXTRA, PRECODE_ORDER,
};
use crate::hints::{Hint, MAX_DIST, MAX_LEN, MIN_LEN};

const BITS_MARK: u16 = 0xffff;
const EOB: usize = 256;
/// Plain bytes after which the checker drops what it compared (it keeps less than that).
const COMPACT_AFTER: usize = 1 << 20;

/// Bits of a stream copied as they are, at plain position `pos`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawBits {
    pub pos: u64,
    pub nbits: u32,
    pub bits: Vec<u8>,
}

impl RawBits {
    /// Bits `from..to` of `src` (LSB first, as deflate orders them).
    pub fn from_stream(src: &[u8], from: u64, to: u64, pos: u64) -> RawBits {
        let nbits = (to - from) as u32;
        let mut bits = vec![0u8; nbits.div_ceil(8) as usize];
        for k in 0..nbits as u64 {
            let b = from + k;
            if src[(b / 8) as usize] >> (b % 8) & 1 == 1 {
                bits[(k / 8) as usize] |= 1 << (k % 8);
            }
        }
        RawBits { pos, nbits, bits }
    }

    fn bit(&self, k: u32) -> u32 {
        (self.bits[(k / 8) as usize] >> (k % 8) & 1) as u32
    }

    /// `n` bits from bit `k`, the first one lowest.
    fn value(&self, k: u32, n: u32) -> u32 {
        (0..n).fold(0, |v, i| v | self.bit(k + i) << i)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends packed records for `matches` and `raw` (each in stream order, after
/// `*last_end`), merged by position; raw bits go first at a tie (a block's header comes
/// before its first match).
pub fn pack(matches: &[Hint], raw: &[RawBits], last_end: &mut u64, out: &mut Vec<u8>) {
    let mut m = matches.iter().peekable();
    let mut r = raw.iter().peekable();
    loop {
        let raw_first = match (m.peek(), r.peek()) {
            (None, None) => return,
            (Some(h), Some(b)) => b.pos <= h.pos,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        if raw_first {
            let b = r.next().expect("peeked");
            put_varint(out, b.pos - *last_end);
            out.push(0);
            out.extend_from_slice(&BITS_MARK.to_le_bytes());
            out.extend_from_slice(&(b.nbits as u16).to_le_bytes());
            out.extend_from_slice(&b.bits);
            *last_end = b.pos;
        } else {
            let h = m.next().expect("peeked");
            put_varint(out, h.pos - *last_end);
            out.push((h.len as usize - MIN_LEN) as u8);
            out.extend_from_slice(&(h.dist - 1).to_le_bytes());
            *last_end = h.end();
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Record {
    Match { len: u16, dist: u16 },
    Bits(RawBits),
}

impl Record {
    fn len(&self) -> u64 {
        match self {
            Record::Match { len, .. } => *len as u64,
            Record::Bits(_) => 0,
        }
    }
}

/// Records parsed from packed pieces (any cut of the packed form).
#[derive(Default)]
struct Records {
    queue: VecDeque<(u64, Record)>,
    partial: Vec<u8>,
    last_end: u64,
}

impl Records {
    fn add(&mut self, data: &[u8]) -> Result<(), String> {
        if self.partial.is_empty() {
            let used = self.parse(data)?;
            self.partial.extend_from_slice(&data[used..]);
        } else {
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(data);
            let used = self.parse(&joined)?;
            self.partial = joined.split_off(used);
        }
        Ok(())
    }

    /// Parses whole records; returns the bytes used.
    fn parse(&mut self, data: &[u8]) -> Result<usize, String> {
        let mut at = 0;
        'records: while at < data.len() {
            let (mut gap, mut shift, mut i) = (0u64, 0u32, at);
            loop {
                let Some(&b) = data.get(i) else {
                    break 'records;
                };
                i += 1;
                if shift >= 64 {
                    return Err("transcript: bad gap".into());
                }
                gap |= ((b & 0x7f) as u64) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            if i + 3 > data.len() {
                break;
            }
            let pos = self
                .last_end
                .checked_add(gap)
                .ok_or("transcript: bad gap")?;
            let mark = u16::from_le_bytes([data[i + 1], data[i + 2]]);
            let record = if mark == BITS_MARK {
                if i + 5 > data.len() {
                    break;
                }
                let nbits = u16::from_le_bytes([data[i + 3], data[i + 4]]) as u32;
                let end = i + 5 + nbits.div_ceil(8) as usize;
                if end > data.len() {
                    break;
                }
                let bits = data[i + 5..end].to_vec();
                at = end;
                Record::Bits(RawBits { pos, nbits, bits })
            } else {
                let dist = mark as usize + 1;
                if dist > MAX_DIST {
                    return Err("transcript: impossible match distance".into());
                }
                at = i + 3;
                Record::Match {
                    len: (data[i] as usize + MIN_LEN) as u16,
                    dist: dist as u16,
                }
            };
            self.last_end = pos + record.len();
            self.queue.push_back((pos, record));
        }
        Ok(at)
    }
}

/// A Huffman code for writing: per symbol, the bit-reversed code | its length << 16
/// (0 for a symbol the code leaves out).
#[derive(Clone)]
struct Code {
    lit: [u32; 288],
    dist: [u32; 32],
}

impl Code {
    fn fixed() -> Code {
        let mut code = Code {
            lit: [0; 288],
            dist: [0; 32],
        };
        canonical(&FIXED_LITLEN_LENGTHS, &mut code.lit);
        canonical(&[5u8; 32], &mut code.dist);
        code
    }

    /// The code a dynamic block header (its raw bits, type bits included) describes.
    fn from_header(h: &RawBits) -> Result<Code, String> {
        let bad = || "transcript: bad dynamic block header".to_string();
        let mut k = 3;
        let mut take = |n: u32| -> Result<u32, String> {
            if k + n > h.nbits {
                return Err(bad());
            }
            let v = h.value(k, n);
            k += n;
            Ok(v)
        };
        let nlen = take(5)? as usize + 257;
        let ndist = take(5)? as usize + 1;
        let ncode = take(4)? as usize + 4;
        let mut pre_lens = [0u8; 19];
        for &i in &PRECODE_ORDER[..ncode] {
            pre_lens[i] = take(3)? as u8;
        }
        let pre = Decoder::new(&pre_lens);
        let mut lens = [0u8; 286 + 32];
        let mut i = 0;
        while i < nlen + ndist {
            let sym = pre.decode(|| take(1))?;
            let (value, count) = match sym {
                0..=15 => (sym as u8, 1),
                16 if i > 0 => (lens[i - 1], 3 + take(2)? as usize),
                17 => (0, 3 + take(3)? as usize),
                18 => (0, 11 + take(7)? as usize),
                _ => return Err(bad()),
            };
            if i + count > nlen + ndist {
                return Err(bad());
            }
            lens[i..i + count].fill(value);
            i += count;
        }
        if k != h.nbits || nlen > 286 || ndist > 30 {
            return Err(bad());
        }
        let mut code = Code {
            lit: [0; 288],
            dist: [0; 32],
        };
        canonical(&lens[..nlen], &mut code.lit);
        canonical(&lens[nlen..nlen + ndist], &mut code.dist);
        Ok(code)
    }
}

/// Canonical codes for `lens` (deflate's rule), bit-reversed for LSB-first writing.
fn canonical(lens: &[u8], out: &mut [u32]) {
    let mut count = [0u32; 16];
    for &l in lens {
        count[l as usize] += 1;
    }
    count[0] = 0;
    let mut next = [0u32; 16];
    let mut code = 0u32;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    for (sym, &l) in lens.iter().enumerate() {
        if l > 0 {
            let c = next[l as usize];
            next[l as usize] += 1;
            out[sym] = (c.reverse_bits() >> (32 - l as u32)) | (l as u32) << 16;
        }
    }
}

/// A canonical code decoded bit by bit (puff's way): enough for block headers.
struct Decoder {
    count: [u16; 16],
    symbols: Vec<u16>,
}

impl Decoder {
    fn new(lens: &[u8]) -> Decoder {
        let mut count = [0u16; 16];
        for &l in lens {
            count[l as usize] += 1;
        }
        count[0] = 0;
        let mut symbols: Vec<u16> = (0..lens.len() as u16)
            .filter(|&s| lens[s as usize] > 0)
            .collect();
        symbols.sort_by_key(|&s| lens[s as usize]);
        Decoder { count, symbols }
    }

    fn decode(&self, mut bit: impl FnMut() -> Result<u32, String>) -> Result<u16, String> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bit()? as i32;
            let count = self.count[len] as i32;
            if code - first < count {
                return Ok(self.symbols[(index + code - first) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("transcript: bad code in a block header".into())
    }
}

const fn length_symbols() -> [u8; 259] {
    let mut t = [0u8; 259];
    let mut s = 0;
    while s < 29 {
        let base = LEN_BASE[s] as usize;
        let mut k = 0;
        while k < 1 << LEN_EXTRA[s] && base + k <= MAX_LEN {
            t[base + k] = s as u8;
            k += 1;
        }
        s += 1;
    }
    t[MAX_LEN] = 28; // symbol 285, not 284 with all extra bits set
    t
}

/// Distance symbol of `dist - 1`: below 256 directly, else at 256 + ((dist - 1) >> 7).
const fn distance_symbols() -> [u8; 512] {
    let mut t = [0u8; 512];
    let mut s = 0;
    while s < 30 {
        let base = DIST_BASE[s] as usize;
        let mut k = 0;
        while k < 1 << DIST_EXTRA[s] {
            let d = base + k - 1;
            if d < 256 {
                t[d] = s as u8;
            } else {
                t[256 + (d >> 7)] = s as u8;
            }
            k += 1;
        }
        s += 1;
    }
    t
}

static LENGTH_SYMBOL: [u8; 259] = length_symbols();
static DISTANCE_SYMBOL: [u8; 512] = distance_symbols();

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Block {
    /// Before the first header, or between blocks.
    Between,
    /// A stored block with this many bytes left.
    Stored(u64),
    Huffman,
    /// After the final block and its last bits.
    Done,
}

/// Writes a deflate stream from its transcript and plain data, as they come.
pub struct TranscriptWriter {
    records: Records,
    /// Every record before this position is known.
    horizon: u64,
    pos: u64,
    /// Plain bytes the current match still covers.
    skip: u64,
    block: Block,
    final_block: bool,
    code: Box<Code>,
    fixed: Box<Code>,
    bitbuf: u64,
    nbits: u32,
    out: Vec<u8>,
}

impl Default for TranscriptWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl TranscriptWriter {
    pub fn new() -> Self {
        let fixed = Box::new(Code::fixed());
        TranscriptWriter {
            records: Records::default(),
            horizon: 0,
            pos: 0,
            skip: 0,
            block: Block::Between,
            final_block: false,
            code: fixed.clone(),
            fixed,
            bitbuf: 0,
            nbits: 0,
            out: Vec::new(),
        }
    }

    /// Adds packed records (any cut of the packed form).
    pub fn add(&mut self, packed: &[u8]) -> Result<(), String> {
        self.records.add(packed)?;
        // More records may follow at the last one's position (an empty block, a match
        // after a header), none before it.
        if let Some((pos, _)) = self.records.queue.back() {
            self.horizon = self.horizon.max(*pos);
        }
        Ok(())
    }

    /// Every record before `pos` has been added.
    pub fn known_until(&mut self, pos: u64) {
        self.horizon = self.horizon.max(pos);
    }

    /// Every record has been added.
    pub fn end_records(&mut self) {
        self.horizon = u64::MAX;
    }

    /// Every record before this position is known.
    pub fn horizon(&self) -> u64 {
        self.horizon
    }

    /// The stream bytes written so far and not taken.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Drops the first `n` bytes of `output()`.
    pub fn consume(&mut self, n: usize) {
        self.out.drain(..n);
    }

    /// Writes the stream for the next plain bytes; the records before their end must
    /// be known (`horizon`).
    pub fn write(&mut self, plain: &[u8]) -> Result<(), String> {
        if self.pos + plain.len() as u64 > self.horizon {
            return Err("transcript: the plain data runs ahead of the records".into());
        }
        let mut i = 0;
        while i < plain.len() {
            if self.skip > 0 {
                let n = self.skip.min((plain.len() - i) as u64);
                self.skip -= n;
                self.pos += n;
                i += n as usize;
                continue;
            }
            self.apply_records_here()?;
            if self.skip > 0 {
                continue;
            }
            let next = self.records.queue.front().map_or(u64::MAX, |r| r.0);
            let n = (next - self.pos).min((plain.len() - i) as u64) as usize;
            self.literals(&plain[i..i + n])?;
            self.pos += n as u64;
            i += n;
        }
        Ok(())
    }

    /// After the last plain byte: the records at the end, then the last bits.
    pub fn finish(&mut self) -> Result<(), String> {
        self.end_records();
        if self.skip > 0 {
            return Err("transcript: the plain data ends inside a match".into());
        }
        self.apply_records_here()?;
        if !self.records.queue.is_empty() || !self.records.partial.is_empty() {
            return Err("transcript: records past the end of the plain data".into());
        }
        if self.block != Block::Done || self.nbits != 0 {
            return Err("transcript: the stream does not end".into());
        }
        Ok(())
    }

    fn apply_records_here(&mut self) -> Result<(), String> {
        while let Some(&(pos, _)) = self.records.queue.front() {
            if pos > self.pos {
                return Ok(());
            }
            if pos < self.pos {
                return Err("transcript: records out of order".into());
            }
            let (_, record) = self.records.queue.pop_front().expect("peeked");
            match record {
                Record::Match { len, dist } => {
                    self.write_match(len as usize, dist as usize)?;
                    self.skip = len as u64;
                    return Ok(());
                }
                Record::Bits(bits) => self.write_bits_record(&bits)?,
            }
        }
        Ok(())
    }

    fn write_bits_record(&mut self, raw: &RawBits) -> Result<(), String> {
        match self.block {
            Block::Huffman => {
                self.put_code(self.code.lit[EOB])?;
                self.block = Block::Between;
            }
            Block::Stored(0) | Block::Between => {}
            Block::Stored(_) => return Err("transcript: a stored block ends early".into()),
            Block::Done => return Err("transcript: bits after the end of the stream".into()),
        }
        self.put_raw(raw);
        if self.final_block {
            // The last byte's remaining bits.
            if self.nbits != 0 {
                return Err("transcript: the stream does not end on a byte".into());
            }
            self.block = Block::Done;
            return Ok(());
        }
        if raw.nbits < 3 {
            return Err("transcript: short block header".into());
        }
        self.final_block = raw.bit(0) == 1;
        self.block = match raw.value(1, 2) {
            0 => {
                if !self.nbits.is_multiple_of(8) || raw.nbits < 35 {
                    return Err("transcript: bad stored block header".into());
                }
                Block::Stored(raw.value(raw.nbits - 32, 16) as u64)
            }
            1 => {
                self.code.clone_from(&self.fixed);
                Block::Huffman
            }
            2 => {
                *self.code = Code::from_header(raw)?;
                Block::Huffman
            }
            _ => return Err("transcript: bad block type".into()),
        };
        Ok(())
    }

    fn literals(&mut self, data: &[u8]) -> Result<(), String> {
        match self.block {
            Block::Huffman => self.huffman_literals(data),
            Block::Stored(left) if left >= data.len() as u64 => {
                self.block = Block::Stored(left - data.len() as u64);
                self.flush_bytes();
                self.out.extend_from_slice(data);
                Ok(())
            }
            _ if data.is_empty() => Ok(()),
            _ => Err("transcript: plain data outside any block".into()),
        }
    }

    /// The hot loop: three literals' codes joined (independently of the bit buffer),
    /// then one unaligned 8-byte store, the whole bytes of the bit buffer moved out
    /// each time (no branch on its fill).
    fn huffman_literals(&mut self, data: &[u8]) -> Result<(), String> {
        self.flush_bytes();
        let lit = &self.code.lit;
        // At most 15 bits a literal, plus the 8-byte store's overhang.
        self.out.reserve(data.len() * 2 + 8);
        let (mut buf, mut n) = (self.bitbuf, self.nbits);
        let mut at = self.out.len();
        let mut missing = false;
        let dst = self.out.as_mut_ptr();
        let mut store = |buf: &mut u64, n: &mut u32| {
            // SAFETY: `at` stays at most the start + 2 * data.len() (15 bits a literal
            // at most), and 8 bytes from there are within the reserved capacity.
            unsafe { dst.add(at).cast::<u64>().write_unaligned(buf.to_le()) };
            at += (*n >> 3) as usize;
            *buf >>= *n & !7;
            *n &= 7;
        };
        let mut triples = data.chunks_exact(3);
        for t in &mut triples {
            let (a, b, c) = (lit[t[0] as usize], lit[t[1] as usize], lit[t[2] as usize]);
            missing |= a == 0 || b == 0 || c == 0;
            let (la, lb) = (a >> 16, b >> 16);
            let codes = (a & 0xffff) as u64
                | ((b & 0xffff) as u64) << la
                | ((c & 0xffff) as u64) << (la + lb);
            // Fewer than 8 bits were left, plus 45 at most: within 64.
            buf |= codes << n;
            n += la + lb + (c >> 16);
            store(&mut buf, &mut n);
        }
        for &b in triples.remainder() {
            let e = lit[b as usize];
            missing |= e == 0;
            buf |= ((e & 0xffff) as u64) << n;
            n += e >> 16;
            store(&mut buf, &mut n);
        }
        // SAFETY: the bytes up to `at` were written above.
        unsafe { self.out.set_len(at) };
        (self.bitbuf, self.nbits) = (buf, n);
        if missing {
            return Err("transcript: a literal the block's code leaves out".into());
        }
        Ok(())
    }

    fn write_match(&mut self, len: usize, dist: usize) -> Result<(), String> {
        if self.block != Block::Huffman {
            return Err("transcript: a match outside a Huffman block".into());
        }
        let ls = LENGTH_SYMBOL[len] as usize;
        self.put_code(self.code.lit[257 + ls])?;
        self.put((len - LEN_BASE[ls] as usize) as u32, LEN_EXTRA[ls] as u32);
        let d = dist - 1;
        let ds = DISTANCE_SYMBOL[if d < 256 { d } else { 256 + (d >> 7) }] as usize;
        self.put_code(self.code.dist[ds])?;
        self.put(
            (dist - DIST_BASE[ds] as usize) as u32,
            DIST_EXTRA[ds] as u32,
        );
        Ok(())
    }

    fn put_code(&mut self, e: u32) -> Result<(), String> {
        if e == 0 {
            return Err("transcript: a symbol the block's code leaves out".into());
        }
        self.put(e & 0xffff, e >> 16);
        Ok(())
    }

    #[inline]
    fn put(&mut self, v: u32, n: u32) {
        self.bitbuf |= (v as u64) << self.nbits;
        self.nbits += n;
        if self.nbits >= 32 {
            self.out
                .extend_from_slice(&(self.bitbuf as u32).to_le_bytes());
            self.bitbuf >>= 32;
            self.nbits -= 32;
        }
    }

    fn put_raw(&mut self, raw: &RawBits) {
        let whole = raw.nbits / 8;
        for &b in &raw.bits[..whole as usize] {
            self.put(b as u32, 8);
        }
        if !raw.nbits.is_multiple_of(8) {
            self.put(raw.value(whole * 8, raw.nbits % 8), raw.nbits % 8);
        }
        self.flush_bytes();
    }

    /// Moves the whole bytes of the bit buffer to the output.
    fn flush_bytes(&mut self) {
        while self.nbits >= 8 {
            self.out.push(self.bitbuf as u8);
            self.bitbuf >>= 8;
            self.nbits -= 8;
        }
    }
}

/// Proves that a transcript writes a stream back: writes it as the stream is decoded and
/// compares it with the stream's bytes.
pub struct TranscriptCheck {
    writer: TranscriptWriter,
    expected: Vec<u8>,
    /// Bytes of `expected` compared already.
    start: usize,
    ok: bool,
}

impl Default for TranscriptCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl TranscriptCheck {
    pub fn new() -> Self {
        TranscriptCheck {
            writer: TranscriptWriter::new(),
            expected: Vec::new(),
            start: 0,
            ok: true,
        }
    }

    pub fn ok(&self) -> bool {
        self.ok
    }

    /// The next plain and compressed bytes, with the packed records decoded with them
    /// (a decoder tells every record before the plain bytes it covers).
    pub fn feed(&mut self, plain: &[u8], compressed: &[u8], packed: &[u8]) {
        if !self.ok {
            return;
        }
        self.expected.extend_from_slice(compressed);
        let end = self.writer.pos + plain.len() as u64;
        let written = self.writer.add(packed).and_then(|_| {
            self.writer.known_until(end);
            self.writer.write(plain)
        });
        self.ok = written.is_ok() && self.compare();
    }

    /// True when the transcript wrote exactly the stream.
    pub fn finish(&mut self) -> bool {
        if self.ok {
            self.ok = self.writer.finish().is_ok()
                && self.compare()
                && self.writer.output().is_empty()
                && self.start == self.expected.len();
        }
        self.ok
    }

    fn compare(&mut self) -> bool {
        let out = self.writer.output();
        let n = out.len().min(self.expected.len() - self.start);
        if out[..n] != self.expected[self.start..self.start + n] {
            return false;
        }
        self.writer.consume(n);
        self.start += n;
        if self.start >= COMPACT_AFTER {
            self.expected.drain(..self.start);
            self.start = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token_inflate::TokenInflater;

    fn zlib_deflate(data: &[u8], level: u32) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn sample(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let words: Vec<&[u8]> = vec![b"alpha ", b"beta ", b"gamma\n", b"delta, ", b"{}\n"];
        let mut out = Vec::new();
        while out.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(5) {
                out.push((x >> 24) as u8);
            } else {
                out.extend_from_slice(words[(x >> 8) as usize % words.len()]);
            }
        }
        out.truncate(n);
        out
    }

    /// Decodes `stream` in `cut`-byte pieces, checking the transcript on the way; the
    /// packed transcript, or None when the check failed.
    fn check(stream: &[u8], cut: usize) -> Option<Vec<u8>> {
        let mut inf = TokenInflater::new();
        inf.record_transcript();
        let mut chk = TranscriptCheck::new();
        let mut all = Vec::new();
        let mut input = stream;
        while !inf.eof() {
            let take = input.len().min(cut);
            let used = inf.decompress(&input[..take], 1 << 16).unwrap();
            let packed = inf.take_transcript();
            all.extend_from_slice(&packed);
            chk.feed(inf.output(), &input[..used], &packed);
            input = &input[used..];
        }
        chk.finish().then_some(all)
    }

    #[test]
    fn zlib_streams_come_back_from_their_transcripts() {
        for level in [0, 1, 6, 9] {
            let plain = sample(300_000, level as u64 + 7);
            let stream = zlib_deflate(&plain, level);
            for cut in [1, 7, 4096, stream.len()] {
                let packed =
                    check(&stream, cut).unwrap_or_else(|| panic!("level {level} cut {cut}"));
                // And the writer alone, from the whole transcript.
                let mut w = TranscriptWriter::new();
                w.add(&packed).unwrap();
                w.end_records();
                for piece in plain.chunks(1000) {
                    w.write(piece).unwrap();
                }
                w.finish().unwrap();
                assert!(w.output() == stream, "level {level} cut {cut}");
            }
        }
    }

    #[test]
    fn a_changed_record_fails_the_check() {
        let plain = sample(50_000, 3);
        let stream = zlib_deflate(&plain, 6);
        let packed = check(&stream, stream.len()).unwrap();
        let mut w = TranscriptWriter::new();
        let mut bad = packed.clone();
        let last = bad.len() - 5;
        bad[last] ^= 1;
        let result = w
            .add(&bad)
            .and_then(|_| {
                w.end_records();
                w.write(&plain)
            })
            .and_then(|_| w.finish());
        assert!(result.is_err() || w.output() != stream);
    }

    #[test]
    fn plain_data_ahead_of_the_records_is_refused() {
        let mut w = TranscriptWriter::new();
        assert!(w.write(b"abc").is_err());
    }
}
