//! Huffman code construction, ported from Go's `compress/flate/huffman_code.go`.
//!
//! Every tie-break matters for bit-exactness: Go sorts by (frequency, literal) to build the
//! length-limited code and then assigns codes in literal order within each bit length.

pub const MAX_NUM_LIT: usize = 286;
const MAX_BITS_LIMIT: usize = 16;

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct HCode {
    pub code: u16,
    pub len: u16,
}

#[derive(Clone, Copy, Default)]
struct LiteralNode {
    literal: u16,
    freq: i32,
}

#[derive(Clone, Copy, Default)]
struct LevelInfo {
    level: i32,
    last_freq: i32,
    next_char_freq: i32,
    next_pair_freq: i32,
    needed: i32,
}

#[derive(Clone)]
pub struct HuffmanEncoder {
    pub codes: Vec<HCode>,
    freqcache: Vec<LiteralNode>,
    bit_count: [i32; 17],
}

#[inline]
pub fn reverse_bits(number: u16, bit_length: u32) -> u16 {
    (number << (16 - bit_length)).reverse_bits()
}

impl HuffmanEncoder {
    pub fn new(size: usize) -> Self {
        HuffmanEncoder {
            codes: vec![HCode::default(); size],
            freqcache: vec![LiteralNode::default(); MAX_NUM_LIT + 1],
            bit_count: [0; 17],
        }
    }

    pub fn fixed_literal() -> Self {
        let mut h = Self::new(MAX_NUM_LIT);
        for ch in 0..MAX_NUM_LIT as u16 {
            let (bits, size) = match ch {
                0..=143 => (ch + 48, 8),
                144..=255 => (ch + 400 - 144, 9),
                256..=279 => (ch - 256, 7),
                _ => (ch + 192 - 280, 8),
            };
            h.codes[ch as usize] = HCode {
                code: reverse_bits(bits, size as u32),
                len: size,
            };
        }
        h
    }

    pub fn fixed_offset() -> Self {
        let mut h = Self::new(30);
        for ch in 0..30u16 {
            h.codes[ch as usize] = HCode {
                code: reverse_bits(ch, 5),
                len: 5,
            };
        }
        h
    }

    pub fn bit_length(&self, freq: &[i32]) -> i64 {
        let mut total: i64 = 0;
        for (i, &f) in freq.iter().enumerate() {
            if f != 0 {
                total += f as i64 * self.codes[i].len as i64;
            }
        }
        total
    }

    /// Number of literals assigned to each bit length (Go's `bitCounts`).
    /// `list` holds the non-zero literals sorted by (freq, literal) and has room for one
    /// more element.
    fn bit_counts(&mut self, list: &mut [LiteralNode], n: usize, mut max_bits: i32) -> usize {
        assert!(
            (max_bits as usize) < MAX_BITS_LIMIT,
            "flate: maxBits too large"
        );
        let n = n as i32;
        list[n as usize] = LiteralNode {
            literal: u16::MAX,
            freq: i32::MAX,
        };

        if max_bits > n - 1 {
            max_bits = n - 1;
        }

        let mut levels = [LevelInfo::default(); MAX_BITS_LIMIT];
        let mut leaf_counts = [[0i32; MAX_BITS_LIMIT]; MAX_BITS_LIMIT];

        for level in 1..=max_bits {
            levels[level as usize] = LevelInfo {
                level,
                last_freq: list[1].freq,
                next_char_freq: list[2].freq,
                next_pair_freq: list[0].freq + list[1].freq,
                needed: 0,
            };
            leaf_counts[level as usize][level as usize] = 2;
            if level == 1 {
                levels[level as usize].next_pair_freq = i32::MAX;
            }
        }

        levels[max_bits as usize].needed = 2 * n - 4;

        let mut level = max_bits as usize;
        loop {
            let l = levels[level];
            if l.next_pair_freq == i32::MAX && l.next_char_freq == i32::MAX {
                levels[level].needed = 0;
                levels[level + 1].next_pair_freq = i32::MAX;
                level += 1;
                continue;
            }

            let prev_freq = l.last_freq;
            if l.next_char_freq < l.next_pair_freq {
                let nn = leaf_counts[level][level] + 1;
                levels[level].last_freq = l.next_char_freq;
                leaf_counts[level][level] = nn;
                levels[level].next_char_freq = list[nn as usize].freq;
            } else {
                levels[level].last_freq = l.next_pair_freq;
                // Go copies leafCounts[level-1][:level]; copying the whole fixed-size
                // row and restoring entry `level` is the same (the entries past it are
                // never read) and needs no memcpy call, which this hot loop noticed.
                let own = leaf_counts[level][level];
                leaf_counts[level] = leaf_counts[level - 1];
                leaf_counts[level][level] = own;
                levels[(l.level - 1) as usize].needed = 2;
            }

            levels[level].needed -= 1;
            if levels[level].needed == 0 {
                let lv = levels[level].level;
                if lv == max_bits {
                    break;
                }
                levels[(lv + 1) as usize].next_pair_freq = prev_freq + levels[level].last_freq;
                level += 1;
            } else {
                while levels[level - 1].needed > 0 {
                    level -= 1;
                }
            }
        }

        assert!(
            leaf_counts[max_bits as usize][max_bits as usize] == n,
            "leafCounts[maxBits][maxBits] != n"
        );

        self.bit_count = [0; 17];
        let mut bits = 1usize;
        let counts = &leaf_counts[max_bits as usize];
        let mut level = max_bits as usize;
        while level > 0 {
            self.bit_count[bits] = counts[level] - counts[level - 1];
            bits += 1;
            level -= 1;
        }
        max_bits as usize + 1
    }

    /// Assigns codes in literal order within each bit length (RFC 1951 3.2.2). `list`
    /// is sorted by (freq, literal): its last `bit_count[1]` literals get 1 bit, the
    /// ones before them 2 bits, and so on. Literals not in `list` have length 0.
    fn assign_encoding_and_size(&mut self, bit_count_len: usize, list: &[LiteralNode]) {
        // Lengths first, with the first code of each length; then the codes, in
        // literal order (Go sorts each length's literals instead: the same codes).
        let mut next_code = [0u16; MAX_BITS_LIMIT + 1];
        let mut code: u16 = 0;
        let mut remaining = list.len();
        let counts = self.bit_count.iter().zip(next_code.iter_mut());
        for (n, (&bits, first)) in counts.enumerate().take(bit_count_len) {
            let bits = bits as usize;
            code = code.wrapping_shl(1);
            if n == 0 || bits == 0 {
                continue;
            }
            *first = code;
            for node in &list[remaining - bits..remaining] {
                self.codes[node.literal as usize].len = n as u16;
            }
            code = code.wrapping_add(bits as u16);
            remaining -= bits;
        }
        for c in self.codes.iter_mut() {
            if c.len != 0 {
                let n = c.len as usize;
                c.code = reverse_bits(next_code[n], n as u32);
                next_code[n] = next_code[n].wrapping_add(1);
            }
        }
    }

    /// Makes this the minimum code for `freq` with at most `max_bits` bits per code.
    pub fn generate(&mut self, freq: &[i32], max_bits: i32) {
        let mut list = std::mem::take(&mut self.freqcache);
        let mut count = 0usize;
        for (i, &f) in freq.iter().enumerate() {
            if f != 0 {
                list[count] = LiteralNode {
                    literal: i as u16,
                    freq: f,
                };
                count += 1;
            } else {
                self.codes[i].len = 0;
            }
        }
        if count <= 2 {
            // With two or fewer literals, everything has bit length 1, in literal order.
            for (i, node) in list[..count].iter().enumerate() {
                self.codes[node.literal as usize] = HCode {
                    code: i as u16,
                    len: 1,
                };
            }
        } else {
            list[..count].sort_unstable_by_key(|node| (node.freq, node.literal));
            let bit_count_len = self.bit_counts(&mut list, count, max_bits);
            self.assign_encoding_and_size(bit_count_len, &list[..count]);
        }
        self.freqcache = list;
    }
}
