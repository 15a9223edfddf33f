//! Block writer, ported from Go's `compress/flate/huffman_bit_writer.go`.
//!
//! The choice between stored, fixed and dynamic blocks, the code-length run-length
//! encoding and the size estimates follow Go exactly; only the byte buffering differs,
//! which does not change the bit stream.

use super::huffman::{HCode, HuffmanEncoder, MAX_NUM_LIT};
use super::token::{is_literal, length_code, offset_code, token_length, token_offset, Token};
use crate::deflate_format::{
    DIST_EXTRA as OFFSET_EXTRA_BITS, LEN_EXTRA as LENGTH_EXTRA_BITS, PRECODE_ORDER as CODEGEN_ORDER,
};
use std::sync::OnceLock;

const OFFSET_CODE_COUNT: usize = 30;
const END_BLOCK_MARKER: usize = 256;
const LENGTH_CODES_START: usize = 257;
const CODEGEN_CODE_COUNT: usize = 19;
const BAD_CODE: u8 = 255;
pub const MAX_STORE_BLOCK_SIZE: usize = 65535;

static LENGTH_BASE: [u32; 29] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128,
    160, 192, 224, 255,
];
static OFFSET_BASE: [u32; 30] = [
    0x000000, 0x000001, 0x000002, 0x000003, 0x000004, 0x000006, 0x000008, 0x00000c, 0x000010,
    0x000018, 0x000020, 0x000030, 0x000040, 0x000060, 0x000080, 0x0000c0, 0x000100, 0x000180,
    0x000200, 0x000300, 0x000400, 0x000600, 0x000800, 0x000c00, 0x001000, 0x001800, 0x002000,
    0x003000, 0x004000, 0x006000,
];

struct StaticCodes {
    fixed_literal: HuffmanEncoder,
    fixed_offset: HuffmanEncoder,
    /// Offset code used by Huffman-only blocks (a single code of length 1).
    huff_offset: HuffmanEncoder,
}

fn static_codes() -> &'static StaticCodes {
    static CODES: OnceLock<StaticCodes> = OnceLock::new();
    CODES.get_or_init(|| {
        let mut offset_freq = [0i32; OFFSET_CODE_COUNT];
        offset_freq[0] = 1;
        let mut huff_offset = HuffmanEncoder::new(OFFSET_CODE_COUNT);
        huff_offset.generate(&offset_freq, 15);
        StaticCodes {
            fixed_literal: HuffmanEncoder::fixed_literal(),
            fixed_offset: HuffmanEncoder::fixed_offset(),
            huff_offset,
        }
    })
}

#[derive(Clone)]
pub struct HuffmanBitWriter {
    bits: u64,
    nbits: u32,
    /// Finished output bytes, drained by the owner.
    pub out: Vec<u8>,
    codegen_freq: [i32; CODEGEN_CODE_COUNT],
    literal_freq: Vec<i32>,
    offset_freq: Vec<i32>,
    codegen: Vec<u8>,
    literal_encoding: HuffmanEncoder,
    offset_encoding: HuffmanEncoder,
    codegen_encoding: HuffmanEncoder,
}

/// The bit writer's state while a block of tokens is written: bits in a register and
/// the output written through a pointer into space reserved up front.
///
/// Invariant between calls: `nbits < 48` (as in `write_bits`).
struct BitSink {
    bits: u64,
    nbits: u32,
    ptr: *mut u8,
    len: usize,
    /// End of the reserved space (checked in debug builds).
    end: usize,
}

impl BitSink {
    /// Reserves room for `tokens` tokens of at most 48 bits each, the end-of-block code,
    /// the pending bits and the 8-byte stores.
    fn new(w: &mut HuffmanBitWriter, tokens: usize) -> Self {
        let room = tokens * 6 + 32;
        w.out.reserve(room);
        BitSink {
            bits: w.bits,
            nbits: w.nbits,
            ptr: w.out.as_mut_ptr(),
            len: w.out.len(),
            end: w.out.len() + room,
        }
    }

    /// Stores the 8 bytes of the bit buffer at the output position.
    #[inline(always)]
    fn store(&mut self) {
        debug_assert!(self.len + 8 <= self.end);
        // SAFETY: the output advances by the bits written (at most 48 per token plus
        // the end-of-block code plus fewer than 48 pending bits at the start), so
        // len + 8 <= start + tokens * 6 + 32 = end, inside the space reserved in `new`.
        unsafe {
            self.ptr
                .add(self.len)
                .cast::<[u8; 8]>()
                .write_unaligned(self.bits.to_le_bytes())
        };
    }

    /// Adds at most 15 bits (one code).
    #[inline(always)]
    fn put_code(&mut self, c: HCode) {
        self.bits |= (c.code as u64) << self.nbits;
        self.nbits += c.len as u32;
        if self.nbits >= 48 {
            self.store();
            self.len += 6;
            self.bits >>= 48;
            self.nbits -= 48;
        }
    }

    /// Adds a match: `a` (`na` <= 20 bits: length code and extra bits), then `b`
    /// (`nb` <= 28 bits: offset code and extra bits).
    #[inline(always)]
    fn put_match(&mut self, a: u64, na: u32, b: u64, nb: u32) {
        debug_assert!(na <= 20 && nb <= 28);
        // Write out the whole bytes first so that the 48 bits fit in the buffer.
        self.store();
        let whole = self.nbits >> 3;
        self.len += whole as usize;
        self.bits >>= whole * 8;
        self.nbits &= 7;
        self.bits |= a << self.nbits;
        self.nbits += na;
        self.bits |= b << self.nbits;
        self.nbits += nb;
        if self.nbits >= 48 {
            self.store();
            self.len += 6;
            self.bits >>= 48;
            self.nbits -= 48;
        }
    }

    fn finish(self, w: &mut HuffmanBitWriter) {
        debug_assert!(self.len <= self.end);
        // SAFETY: bytes up to self.len were written above, within the reserved capacity.
        unsafe { w.out.set_len(self.len) };
        w.bits = self.bits;
        w.nbits = self.nbits;
    }
}

enum Which {
    Fixed,
    Dynamic,
}

impl HuffmanBitWriter {
    pub fn new() -> Self {
        HuffmanBitWriter {
            bits: 0,
            nbits: 0,
            out: Vec::with_capacity(1 << 16),
            codegen_freq: [0; CODEGEN_CODE_COUNT],
            literal_freq: vec![0; MAX_NUM_LIT],
            offset_freq: vec![0; OFFSET_CODE_COUNT],
            codegen: vec![0; MAX_NUM_LIT + OFFSET_CODE_COUNT + 1],
            literal_encoding: HuffmanEncoder::new(MAX_NUM_LIT),
            offset_encoding: HuffmanEncoder::new(OFFSET_CODE_COUNT),
            codegen_encoding: HuffmanEncoder::new(CODEGEN_CODE_COUNT),
        }
    }

    /// Whether the bits not yet taken out are the same.
    pub fn same_pending(&self, o: &HuffmanBitWriter) -> bool {
        self.bits == o.bits && self.nbits == o.nbits && self.out == o.out
    }

    /// Writes out any pending bits, padding to a byte boundary.
    pub fn flush(&mut self) {
        while self.nbits > 0 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.bits = 0;
    }

    #[inline(always)]
    fn write_bits(&mut self, b: u32, nb: u32) {
        self.bits |= (b as u64) << self.nbits;
        self.nbits += nb;
        if self.nbits >= 48 {
            // Store all 8 bytes (a single move) and keep the 6 that are complete.
            let len = self.out.len();
            self.out.extend_from_slice(&self.bits.to_le_bytes());
            self.out.truncate(len + 6);
            self.bits >>= 48;
            self.nbits -= 48;
        }
    }

    #[inline(always)]
    fn write_code(&mut self, c: HCode) {
        self.write_bits(c.code as u32, c.len as u32);
    }

    pub fn write_bytes_pub(&mut self, bytes: &[u8]) {
        self.write_bytes(bytes)
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        debug_assert!(self.nbits & 7 == 0, "writeBytes with unfinished bits");
        while self.nbits != 0 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits -= 8;
        }
        self.out.extend_from_slice(bytes);
    }

    /// RFC 1951 3.2.7 run-length encoding of the code lengths (Go's `generateCodegen`).
    fn generate_codegen(&mut self, num_literals: usize, num_offsets: usize, huff_offsets: bool) {
        self.codegen_freq = [0; CODEGEN_CODE_COUNT];
        let codegen = &mut self.codegen;
        for (slot, code) in codegen
            .iter_mut()
            .zip(&self.literal_encoding.codes[..num_literals])
        {
            *slot = code.len as u8;
        }
        let off_codes = if huff_offsets {
            &static_codes().huff_offset.codes
        } else {
            &self.offset_encoding.codes
        };
        for i in 0..num_offsets {
            codegen[num_literals + i] = off_codes[i].len as u8;
        }
        codegen[num_literals + num_offsets] = BAD_CODE;

        let mut size = codegen[0];
        let mut count: i32 = 1;
        let mut out_index = 0usize;
        let mut in_index = 1usize;
        while size != BAD_CODE {
            let next_size = codegen[in_index];
            in_index += 1;
            if next_size == size {
                count += 1;
                continue;
            }
            if size != 0 {
                codegen[out_index] = size;
                out_index += 1;
                self.codegen_freq[size as usize] += 1;
                count -= 1;
                while count >= 3 {
                    let n = count.min(6);
                    codegen[out_index] = 16;
                    codegen[out_index + 1] = (n - 3) as u8;
                    out_index += 2;
                    self.codegen_freq[16] += 1;
                    count -= n;
                }
            } else {
                while count >= 11 {
                    let n = count.min(138);
                    codegen[out_index] = 18;
                    codegen[out_index + 1] = (n - 11) as u8;
                    out_index += 2;
                    self.codegen_freq[18] += 1;
                    count -= n;
                }
                if count >= 3 {
                    codegen[out_index] = 17;
                    codegen[out_index + 1] = (count - 3) as u8;
                    out_index += 2;
                    self.codegen_freq[17] += 1;
                    count = 0;
                }
            }
            count -= 1;
            while count >= 0 {
                codegen[out_index] = size;
                out_index += 1;
                self.codegen_freq[size as usize] += 1;
                count -= 1;
            }
            size = next_size;
            count = 1;
        }
        codegen[out_index] = BAD_CODE;
    }

    fn dynamic_size(&self, huff_offsets: bool, extra_bits: i64) -> (i64, usize) {
        let mut num_codegens = self.codegen_freq.len();
        while num_codegens > 4 && self.codegen_freq[CODEGEN_ORDER[num_codegens - 1]] == 0 {
            num_codegens -= 1;
        }
        let header = 3
            + 5
            + 5
            + 4
            + 3 * num_codegens as i64
            + self.codegen_encoding.bit_length(&self.codegen_freq)
            + self.codegen_freq[16] as i64 * 2
            + self.codegen_freq[17] as i64 * 3
            + self.codegen_freq[18] as i64 * 7;
        let off_enc = if huff_offsets {
            &static_codes().huff_offset
        } else {
            &self.offset_encoding
        };
        let size = header
            + self.literal_encoding.bit_length(&self.literal_freq)
            + off_enc.bit_length(&self.offset_freq)
            + extra_bits;
        (size, num_codegens)
    }

    fn fixed_size(&self, extra_bits: i64) -> i64 {
        let s = static_codes();
        3 + s.fixed_literal.bit_length(&self.literal_freq)
            + s.fixed_offset.bit_length(&self.offset_freq)
            + extra_bits
    }

    fn stored_size(input: Option<&[u8]>) -> Option<i64> {
        match input {
            Some(b) if b.len() <= MAX_STORE_BLOCK_SIZE => Some((b.len() as i64 + 5) * 8),
            _ => None,
        }
    }

    fn write_dynamic_header(
        &mut self,
        num_literals: usize,
        num_offsets: usize,
        num_codegens: usize,
        is_eof: bool,
    ) {
        let first_bits = if is_eof { 5 } else { 4 };
        self.write_bits(first_bits, 3);
        self.write_bits((num_literals - 257) as u32, 5);
        self.write_bits((num_offsets - 1) as u32, 5);
        self.write_bits((num_codegens - 4) as u32, 4);
        for &order in &CODEGEN_ORDER[..num_codegens] {
            let value = self.codegen_encoding.codes[order].len as u32;
            self.write_bits(value, 3);
        }
        let mut i = 0usize;
        loop {
            let code_word = self.codegen[i];
            i += 1;
            if code_word == BAD_CODE {
                break;
            }
            let c = self.codegen_encoding.codes[code_word as usize];
            self.write_code(c);
            match code_word {
                16 => {
                    self.write_bits(self.codegen[i] as u32, 2);
                    i += 1;
                }
                17 => {
                    self.write_bits(self.codegen[i] as u32, 3);
                    i += 1;
                }
                18 => {
                    self.write_bits(self.codegen[i] as u32, 7);
                    i += 1;
                }
                _ => {}
            }
        }
    }

    pub fn write_stored_header(&mut self, length: usize, is_eof: bool) {
        self.write_bits(is_eof as u32, 3);
        self.flush();
        self.write_bits(length as u32, 16);
        self.write_bits(!(length as u16) as u32, 16);
    }

    fn write_fixed_header(&mut self, is_eof: bool) {
        self.write_bits(if is_eof { 3 } else { 2 }, 3);
    }

    /// Writes a block of tokens with the smallest encoding (Go's `writeBlock`). With
    /// `input`, a stored block is chosen when it is smaller.
    pub fn write_block(&mut self, tokens: &[Token], eof: bool, input: Option<&[u8]>) {
        let (num_literals, num_offsets) = self.index_tokens(tokens);

        let mut extra_bits: i64 = 0;
        let stored_size = Self::stored_size(input);
        if stored_size.is_some() {
            for lc in LENGTH_CODES_START + 8..num_literals {
                extra_bits += self.literal_freq[lc] as i64
                    * LENGTH_EXTRA_BITS[lc - LENGTH_CODES_START] as i64;
            }
            for (freq, &extra) in self.offset_freq[..num_offsets]
                .iter()
                .zip(&OFFSET_EXTRA_BITS)
                .skip(4)
            {
                extra_bits += *freq as i64 * extra as i64;
            }
        }

        let mut which = Which::Fixed;
        let mut size = self.fixed_size(extra_bits);

        self.generate_codegen(num_literals, num_offsets, false);
        let codegen_freq = self.codegen_freq;
        self.codegen_encoding.generate(&codegen_freq, 7);
        let (dynamic_size, num_codegens) = self.dynamic_size(false, extra_bits);
        if dynamic_size < size {
            size = dynamic_size;
            which = Which::Dynamic;
        }

        if let Some(ss) = stored_size {
            if ss < size {
                let input = input.unwrap();
                self.write_stored_header(input.len(), eof);
                self.write_bytes(input);
                return;
            }
        }

        match which {
            Which::Fixed => {
                self.write_fixed_header(eof);
                let s = static_codes();
                self.write_tokens(tokens, &s.fixed_literal.codes, &s.fixed_offset.codes);
            }
            Which::Dynamic => {
                self.write_dynamic_header(num_literals, num_offsets, num_codegens, eof);
                let lit = std::mem::take(&mut self.literal_encoding.codes);
                let off = std::mem::take(&mut self.offset_encoding.codes);
                self.write_tokens(tokens, &lit, &off);
                self.literal_encoding.codes = lit;
                self.offset_encoding.codes = off;
            }
        }
    }

    /// Dynamic-Huffman block, or a stored one when compression gains less than 1/16
    /// (Go's `writeBlockDynamic`, used by BestSpeed).
    pub fn write_block_dynamic(&mut self, tokens: &[Token], eof: bool, input: Option<&[u8]>) {
        let (num_literals, num_offsets) = self.index_tokens(tokens);
        self.generate_codegen(num_literals, num_offsets, false);
        let codegen_freq = self.codegen_freq;
        self.codegen_encoding.generate(&codegen_freq, 7);
        let (size, num_codegens) = self.dynamic_size(false, 0);

        if let Some(ss) = Self::stored_size(input) {
            if ss < size + (size >> 4) {
                let input = input.unwrap();
                self.write_stored_header(input.len(), eof);
                self.write_bytes(input);
                return;
            }
        }
        self.write_dynamic_header(num_literals, num_offsets, num_codegens, eof);
        let lit = std::mem::take(&mut self.literal_encoding.codes);
        let off = std::mem::take(&mut self.offset_encoding.codes);
        self.write_tokens(tokens, &lit, &off);
        self.literal_encoding.codes = lit;
        self.offset_encoding.codes = off;
    }

    /// Counts symbol frequencies (the end-of-block marker included) and builds both codes.
    fn index_tokens(&mut self, tokens: &[Token]) -> (usize, usize) {
        self.literal_freq.fill(0);
        self.offset_freq.fill(0);
        {
            let lf: &mut [i32; MAX_NUM_LIT] = (&mut self.literal_freq[..]).try_into().unwrap();
            let of = &mut self.offset_freq[..];
            for &t in tokens {
                if is_literal(t) {
                    // A literal token is the byte itself (< 256).
                    lf[t as u8 as usize] += 1;
                    continue;
                }
                // Stored lengths are length - 3 <= 255.
                lf[LENGTH_CODES_START + length_code(token_length(t) & 0xFF) as usize] += 1;
                of[offset_code(token_offset(t)) as usize] += 1;
            }
            lf[END_BLOCK_MARKER] += 1;
        }
        let mut num_literals = self.literal_freq.len();
        while self.literal_freq[num_literals - 1] == 0 {
            num_literals -= 1;
        }
        let mut num_offsets = self.offset_freq.len();
        while num_offsets > 0 && self.offset_freq[num_offsets - 1] == 0 {
            num_offsets -= 1;
        }
        if num_offsets == 0 {
            // At least one offset code, so that the offset tree can be encoded.
            self.offset_freq[0] = 1;
            num_offsets = 1;
        }
        let lf = std::mem::take(&mut self.literal_freq);
        self.literal_encoding.generate(&lf, 15);
        self.literal_freq = lf;
        let of = std::mem::take(&mut self.offset_freq);
        self.offset_encoding.generate(&of, 15);
        self.offset_freq = of;
        (num_literals, num_offsets)
    }

    fn write_tokens(&mut self, tokens: &[Token], le_codes: &[HCode], oe_codes: &[HCode]) {
        let le_codes: &[HCode; MAX_NUM_LIT] = le_codes.try_into().unwrap();
        let mut sink = BitSink::new(self, tokens.len());
        for &t in tokens {
            if is_literal(t) {
                // A literal token is the byte itself (< 256).
                sink.put_code(le_codes[t as u8 as usize]);
                continue;
            }
            // Each code goes out with its extra bits in one write: the same bits in the
            // same order.
            let length = token_length(t) & 0xFF;
            let lc = length_code(length) as usize;
            let lcode = le_codes[lc + LENGTH_CODES_START];
            let lextra = (length - LENGTH_BASE[lc]) as u64;
            let offset = token_offset(t);
            let oc = offset_code(offset) as usize;
            let ocode = oe_codes[oc];
            let oextra = (offset - OFFSET_BASE[oc]) as u64;
            sink.put_match(
                lcode.code as u64 | lextra << lcode.len,
                lcode.len as u32 + LENGTH_EXTRA_BITS[lc] as u32,
                ocode.code as u64 | oextra << ocode.len,
                ocode.len as u32 + OFFSET_EXTRA_BITS[oc] as u32,
            );
        }
        sink.put_code(le_codes[END_BLOCK_MARKER]);
        sink.finish(self);
    }

    /// Huffman-only block of literals, or stored when that gains little
    /// (Go's `writeBlockHuff`).
    pub fn write_block_huff(&mut self, eof: bool, input: &[u8]) {
        self.literal_freq.fill(0);
        for &b in input {
            self.literal_freq[b as usize] += 1;
        }
        self.literal_freq[END_BLOCK_MARKER] = 1;
        const NUM_LITERALS: usize = END_BLOCK_MARKER + 1;
        self.offset_freq[0] = 1;
        const NUM_OFFSETS: usize = 1;

        let lf = std::mem::take(&mut self.literal_freq);
        self.literal_encoding.generate(&lf, 15);
        self.literal_freq = lf;

        self.generate_codegen(NUM_LITERALS, NUM_OFFSETS, true);
        let codegen_freq = self.codegen_freq;
        self.codegen_encoding.generate(&codegen_freq, 7);
        let (size, num_codegens) = self.dynamic_size(true, 0);

        if let Some(ss) = Self::stored_size(Some(input)) {
            if ss < size + (size >> 4) {
                self.write_stored_header(input.len(), eof);
                self.write_bytes(input);
                return;
            }
        }

        self.write_dynamic_header(NUM_LITERALS, NUM_OFFSETS, num_codegens, eof);
        let codes = std::mem::take(&mut self.literal_encoding.codes);
        for &b in input {
            self.write_code(codes[b as usize]);
        }
        self.write_code(codes[END_BLOCK_MARKER]);
        self.literal_encoding.codes = codes;
    }
}
