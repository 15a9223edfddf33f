//! Port of zlib's trees.c: Huffman tree construction and block output, kept
//! decision-for-decision identical to the C code (heap order, tie breaks, length
//! limiting) so that blocks come out bit for bit the same.

use crate::deflate_format::{
    DIST_EXTRA as EXTRA_DBITS, LEN_EXTRA as EXTRA_LBITS, PRECODE_ORDER as BL_ORDER,
};

pub const L_CODES: usize = 286;
pub const D_CODES: usize = 30;
pub const BL_CODES: usize = 19;
pub const HEAP_SIZE: usize = 2 * L_CODES + 1;
const MAX_BITS: usize = 15;
const MAX_BL_BITS: usize = 7;
const END_BLOCK: usize = 256;
const LITERALS: usize = 256;
const REP_3_6: usize = 16;
const REPZ_3_10: usize = 17;
const REPZ_11_138: usize = 18;

const EXTRA_BLBITS: [u8; 19] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7];

pub struct Tables {
    pub length_code: [u8; 256],
    pub base_length: [u16; 29],
    pub dist_code: [u8; 512],
    pub base_dist: [u16; 30],
    static_lcode: [u16; 288],
    static_llen: [u8; 288],
    static_dcode: [u16; 30],
}

fn bi_reverse(mut code: u32, mut len: u32) -> u32 {
    let mut res = 0;
    loop {
        res |= code & 1;
        code >>= 1;
        res <<= 1;
        len -= 1;
        if len == 0 {
            break;
        }
    }
    res >> 1
}

fn build_tables() -> Tables {
    let mut t = Tables {
        length_code: [0; 256],
        base_length: [0; 29],
        dist_code: [0; 512],
        base_dist: [0; 30],
        static_lcode: [0; 288],
        static_llen: [0; 288],
        static_dcode: [0; 30],
    };
    let mut length = 0usize;
    let mut code = 0usize;
    while code < 28 {
        t.base_length[code] = length as u16;
        for _ in 0..(1 << EXTRA_LBITS[code]) {
            t.length_code[length] = code as u8;
            length += 1;
        }
        code += 1;
    }
    t.length_code[length - 1] = code as u8;
    let mut dist = 0usize;
    code = 0;
    while code < 16 {
        t.base_dist[code] = dist as u16;
        for _ in 0..(1 << EXTRA_DBITS[code]) {
            t.dist_code[dist] = code as u8;
            dist += 1;
        }
        code += 1;
    }
    dist >>= 7;
    while code < D_CODES {
        t.base_dist[code] = (dist << 7) as u16;
        for _ in 0..(1 << (EXTRA_DBITS[code] - 7)) {
            t.dist_code[256 + dist] = code as u8;
            dist += 1;
        }
        code += 1;
    }
    let mut bl_count = [0u16; MAX_BITS + 1];
    for n in 0..288 {
        let l = match n {
            0..=143 => 8,
            144..=255 => 9,
            256..=279 => 7,
            _ => 8,
        };
        t.static_llen[n] = l;
        bl_count[l as usize] += 1;
    }
    let mut next = [0u16; MAX_BITS + 1];
    let mut c = 0u32;
    for bits in 1..=MAX_BITS {
        c = (c + bl_count[bits - 1] as u32) << 1;
        next[bits] = c as u16;
    }
    for n in 0..288 {
        let l = t.static_llen[n] as usize;
        t.static_lcode[n] = bi_reverse(next[l] as u32, l as u32) as u16;
        next[l] += 1;
    }
    for n in 0..D_CODES {
        t.static_dcode[n] = bi_reverse(n as u32, 5) as u16;
    }
    t
}

pub fn tables() -> &'static Tables {
    static T: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    T.get_or_init(build_tables)
}

#[inline(always)]
pub fn d_code(t: &Tables, dist: usize) -> usize {
    if dist < 256 {
        t.dist_code[dist] as usize
    } else {
        t.dist_code[256 + (dist >> 7)] as usize
    }
}

/// One dynamic tree (C's ct_data array with the Freq/Code and Dad/Len unions split).
pub struct Tree {
    pub freq: [u32; HEAP_SIZE],
    pub code: [u16; HEAP_SIZE],
    pub len: [u16; HEAP_SIZE],
    pub dad: [u16; HEAP_SIZE],
    pub max_code: i32,
}

impl Tree {
    fn new() -> Self {
        Tree {
            freq: [0; HEAP_SIZE],
            code: [0; HEAP_SIZE],
            len: [0; HEAP_SIZE],
            dad: [0; HEAP_SIZE],
            max_code: 0,
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Lit,
    Dist,
    Bl,
}

/// Bit writer: LSB first, like zlib's send_bits, into a growing Vec.
pub struct BitOut {
    pub buf: u64,
    pub nbits: u32,
    pub out: Vec<u8>,
}

impl BitOut {
    #[inline(always)]
    pub fn send(&mut self, value: u32, len: u32) {
        self.buf |= (value as u64) << self.nbits;
        self.nbits += len;
        if self.nbits >= 32 {
            self.out.extend_from_slice(&(self.buf as u32).to_le_bytes());
            self.buf >>= 32;
            self.nbits -= 32;
        }
    }
    pub fn windup(&mut self) {
        while self.nbits > 0 {
            self.out.push(self.buf as u8);
            self.buf >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.buf = 0;
        self.nbits = 0;
    }
}

pub struct TreeState {
    pub ltree: Tree,
    pub dtree: Tree,
    bltree: Tree,
    heap: [i32; HEAP_SIZE],
    heap_len: usize,
    heap_max: usize,
    depth: [u8; HEAP_SIZE],
    bl_count: [u16; MAX_BITS + 1],
    opt_len: u64,
    static_len: u64,
}

impl TreeState {
    pub fn new() -> Box<Self> {
        let mut s = Box::new(TreeState {
            ltree: Tree::new(),
            dtree: Tree::new(),
            bltree: Tree::new(),
            heap: [0; HEAP_SIZE],
            heap_len: 0,
            heap_max: 0,
            depth: [0; HEAP_SIZE],
            bl_count: [0; MAX_BITS + 1],
            opt_len: 0,
            static_len: 0,
        });
        s.init_block();
        s
    }

    pub fn init_block(&mut self) {
        self.ltree.freq[..L_CODES].fill(0);
        self.dtree.freq[..D_CODES].fill(0);
        self.bltree.freq[..BL_CODES].fill(0);
        self.ltree.freq[END_BLOCK] = 1;
        self.opt_len = 0;
        self.static_len = 0;
    }

    fn tree(&mut self, k: Kind) -> &mut Tree {
        match k {
            Kind::Lit => &mut self.ltree,
            Kind::Dist => &mut self.dtree,
            Kind::Bl => &mut self.bltree,
        }
    }

    #[inline]
    fn smaller(tree: &Tree, depth: &[u8; HEAP_SIZE], n: usize, m: usize) -> bool {
        tree.freq[n] < tree.freq[m] || (tree.freq[n] == tree.freq[m] && depth[n] <= depth[m])
    }

    fn pqdownheap(&mut self, k: Kind, mut k_idx: usize) {
        let heap_len = self.heap_len;
        let (tree, heap, depth) = match k {
            Kind::Lit => (&self.ltree, &mut self.heap, &self.depth),
            Kind::Dist => (&self.dtree, &mut self.heap, &self.depth),
            Kind::Bl => (&self.bltree, &mut self.heap, &self.depth),
        };
        let v = heap[k_idx] as usize;
        let mut j = k_idx << 1;
        while j <= heap_len {
            if j < heap_len && Self::smaller(tree, depth, heap[j + 1] as usize, heap[j] as usize) {
                j += 1;
            }
            if Self::smaller(tree, depth, v, heap[j] as usize) {
                break;
            }
            heap[k_idx] = heap[j];
            k_idx = j;
            j <<= 1;
        }
        heap[k_idx] = v as i32;
    }

    fn gen_bitlen(&mut self, k: Kind) {
        let t = tables();
        let (extra, base, max_length): (&[u8], usize, usize) = match k {
            Kind::Lit => (&EXTRA_LBITS, LITERALS + 1, MAX_BITS),
            Kind::Dist => (&EXTRA_DBITS, 0, MAX_BITS),
            Kind::Bl => (&EXTRA_BLBITS, 0, MAX_BL_BITS),
        };
        self.bl_count = [0; MAX_BITS + 1];
        let heap_max = self.heap_max;
        let heap = self.heap;
        let mut opt_len = self.opt_len;
        let mut static_len = self.static_len;
        let mut bl_count = self.bl_count;
        let tree = self.tree(k);
        let max_code = tree.max_code;
        let mut overflow = 0i32;
        tree.len[heap[heap_max] as usize] = 0;
        for &hn in heap.iter().take(HEAP_SIZE).skip(heap_max + 1) {
            let n = hn as usize;
            let mut bits = tree.len[tree.dad[n] as usize] as usize + 1;
            if bits > max_length {
                bits = max_length;
                overflow += 1;
            }
            tree.len[n] = bits as u16;
            if n as i32 > max_code {
                continue;
            }
            bl_count[bits] += 1;
            let xbits = if n >= base { extra[n - base] as u64 } else { 0 };
            let f = tree.freq[n] as u64;
            // Unsigned and wrapping like C's ulg: forced codes may have taken it below 0.
            opt_len = opt_len.wrapping_add(f * (bits as u64 + xbits));
            match k {
                Kind::Lit => {
                    static_len = static_len.wrapping_add(f * (t.static_llen[n] as u64 + xbits))
                }
                Kind::Dist => static_len = static_len.wrapping_add(f * (5 + xbits)),
                Kind::Bl => {}
            }
        }
        if overflow != 0 {
            loop {
                let mut bits = max_length - 1;
                while bl_count[bits] == 0 {
                    bits -= 1;
                }
                bl_count[bits] -= 1;
                bl_count[bits + 1] += 2;
                bl_count[max_length] -= 1;
                overflow -= 2;
                if overflow <= 0 {
                    break;
                }
            }
            let mut h = HEAP_SIZE;
            let mut bits = max_length;
            while bits != 0 {
                let mut n = bl_count[bits];
                while n != 0 {
                    h -= 1;
                    let m = heap[h] as usize;
                    if m as i32 > max_code {
                        continue;
                    }
                    if tree.len[m] as usize != bits {
                        opt_len = opt_len.wrapping_add(
                            (bits as u64)
                                .wrapping_sub(tree.len[m] as u64)
                                .wrapping_mul(tree.freq[m] as u64),
                        );
                        tree.len[m] = bits as u16;
                    }
                    n -= 1;
                }
                bits -= 1;
            }
        }
        self.bl_count = bl_count;
        self.opt_len = opt_len;
        self.static_len = static_len;
    }

    fn gen_codes(&mut self, k: Kind) {
        let bl_count = self.bl_count;
        let tree = self.tree(k);
        let mut next = [0u16; MAX_BITS + 1];
        let mut code = 0u32;
        for bits in 1..=MAX_BITS {
            code = (code + bl_count[bits - 1] as u32) << 1;
            next[bits] = code as u16;
        }
        for n in 0..=(tree.max_code.max(-1) as isize) {
            let n = n as usize;
            let len = tree.len[n] as usize;
            if len == 0 {
                continue;
            }
            tree.code[n] = bi_reverse(next[len] as u32, len as u32) as u16;
            next[len] = next[len].wrapping_add(1);
        }
    }

    fn build_tree(&mut self, k: Kind) {
        let elems = match k {
            Kind::Lit => L_CODES,
            Kind::Dist => D_CODES,
            Kind::Bl => BL_CODES,
        };
        let t = tables();
        self.heap_len = 0;
        self.heap_max = HEAP_SIZE;
        let mut max_code: i32 = -1;
        for n in 0..elems {
            if self.tree(k).freq[n] != 0 {
                self.heap_len += 1;
                self.heap[self.heap_len] = n as i32;
                max_code = n as i32;
                self.depth[n] = 0;
            } else {
                self.tree(k).len[n] = 0;
            }
        }
        while self.heap_len < 2 {
            let node = if max_code < 2 {
                max_code += 1;
                max_code as usize
            } else {
                0
            };
            self.heap_len += 1;
            self.heap[self.heap_len] = node as i32;
            self.tree(k).freq[node] = 1;
            self.depth[node] = 0;
            self.opt_len = self.opt_len.wrapping_sub(1);
            match k {
                Kind::Lit => {
                    self.static_len = self.static_len.wrapping_sub(t.static_llen[node] as u64)
                }
                Kind::Dist => self.static_len = self.static_len.wrapping_sub(5),
                Kind::Bl => {}
            }
        }
        self.tree(k).max_code = max_code;
        let mut n = self.heap_len / 2;
        while n >= 1 {
            self.pqdownheap(k, n);
            n -= 1;
        }
        let mut node = elems;
        loop {
            // pqremove
            let n = self.heap[1] as usize;
            self.heap[1] = self.heap[self.heap_len];
            self.heap_len -= 1;
            self.pqdownheap(k, 1);
            let m = self.heap[1] as usize;
            self.heap_max -= 1;
            self.heap[self.heap_max] = n as i32;
            self.heap_max -= 1;
            self.heap[self.heap_max] = m as i32;
            let dn = self.depth[n];
            let dm = self.depth[m];
            self.depth[node] = (if dn >= dm { dn } else { dm }).wrapping_add(1);
            let tree = self.tree(k);
            tree.freq[node] = tree.freq[n] + tree.freq[m];
            tree.dad[n] = node as u16;
            tree.dad[m] = node as u16;
            self.heap[1] = node as i32;
            node += 1;
            self.pqdownheap(k, 1);
            if self.heap_len < 2 {
                break;
            }
        }
        self.heap_max -= 1;
        self.heap[self.heap_max] = self.heap[1];
        self.gen_bitlen(k);
        self.gen_codes(k);
    }

    fn scan_tree(&mut self, k: Kind) {
        let max_code = self.tree(k).max_code;
        let (tree, bl) = match k {
            Kind::Lit => (&mut self.ltree, &mut self.bltree),
            Kind::Dist => (&mut self.dtree, &mut self.bltree),
            Kind::Bl => unreachable!(),
        };
        let mut prevlen: i32 = -1;
        let mut nextlen = tree.len[0] as i32;
        let mut count = 0;
        let (mut max_count, mut min_count) = (7, 4);
        if nextlen == 0 {
            max_count = 138;
            min_count = 3;
        }
        tree.len[(max_code + 1) as usize] = 0xffff;
        for n in 0..=max_code as usize {
            let curlen = nextlen;
            nextlen = tree.len[n + 1] as i32;
            count += 1;
            if count < max_count && curlen == nextlen {
                continue;
            } else if count < min_count {
                bl.freq[curlen as usize] += count as u32;
            } else if curlen != 0 {
                if curlen != prevlen {
                    bl.freq[curlen as usize] += 1;
                }
                bl.freq[REP_3_6] += 1;
            } else if count <= 10 {
                bl.freq[REPZ_3_10] += 1;
            } else {
                bl.freq[REPZ_11_138] += 1;
            }
            count = 0;
            prevlen = curlen;
            if nextlen == 0 {
                max_count = 138;
                min_count = 3;
            } else if curlen == nextlen {
                max_count = 6;
                min_count = 3;
            } else {
                max_count = 7;
                min_count = 4;
            }
        }
    }

    fn send_tree(&self, k: Kind, max_code: i32, w: &mut BitOut) {
        let tree = match k {
            Kind::Lit => &self.ltree,
            Kind::Dist => &self.dtree,
            Kind::Bl => unreachable!(),
        };
        let bl = &self.bltree;
        let send_code = |w: &mut BitOut, c: usize| w.send(bl.code[c] as u32, bl.len[c] as u32);
        let mut prevlen: i32 = -1;
        let mut nextlen = tree.len[0] as i32;
        let mut count = 0;
        let (mut max_count, mut min_count) = (7, 4);
        if nextlen == 0 {
            max_count = 138;
            min_count = 3;
        }
        for n in 0..=max_code as usize {
            let curlen = nextlen;
            nextlen = tree.len[n + 1] as i32;
            count += 1;
            if count < max_count && curlen == nextlen {
                continue;
            } else if count < min_count {
                loop {
                    send_code(w, curlen as usize);
                    count -= 1;
                    if count == 0 {
                        break;
                    }
                }
            } else if curlen != 0 {
                if curlen != prevlen {
                    send_code(w, curlen as usize);
                    count -= 1;
                }
                send_code(w, REP_3_6);
                w.send((count - 3) as u32, 2);
            } else if count <= 10 {
                send_code(w, REPZ_3_10);
                w.send((count - 3) as u32, 3);
            } else {
                send_code(w, REPZ_11_138);
                w.send((count - 11) as u32, 7);
            }
            count = 0;
            prevlen = curlen;
            if nextlen == 0 {
                max_count = 138;
                min_count = 3;
            } else if curlen == nextlen {
                max_count = 6;
                min_count = 3;
            } else {
                max_count = 7;
                min_count = 4;
            }
        }
    }

    fn build_bl_tree(&mut self) -> usize {
        self.scan_tree(Kind::Lit);
        self.scan_tree(Kind::Dist);
        self.build_tree(Kind::Bl);
        let mut max_blindex = BL_CODES - 1;
        while max_blindex >= 3 {
            if self.bltree.len[BL_ORDER[max_blindex]] != 0 {
                break;
            }
            max_blindex -= 1;
        }
        self.opt_len = self
            .opt_len
            .wrapping_add(3 * (max_blindex as u64 + 1) + 5 + 5 + 4);
        max_blindex
    }

    /// zlib's _tr_flush_block. `syms` holds (dist << 8 | lc) per symbol.
    pub fn flush_block(&mut self, syms: &[u32], buf: Option<&[u8]>, last: bool, w: &mut BitOut) {
        self.build_tree(Kind::Lit);
        self.build_tree(Kind::Dist);
        let max_blindex = self.build_bl_tree();
        let mut opt_lenb = (self.opt_len.wrapping_add(3 + 7)) >> 3;
        let static_lenb = (self.static_len.wrapping_add(3 + 7)) >> 3;
        if static_lenb <= opt_lenb {
            opt_lenb = static_lenb;
        }
        let lastb = last as u32;
        match buf {
            Some(data) if data.len() as u64 + 4 <= opt_lenb => {
                w.send(lastb, 3);
                w.windup();
                let n = data.len() as u16;
                w.out.extend_from_slice(&n.to_le_bytes());
                w.out.extend_from_slice(&(!n).to_le_bytes());
                w.out.extend_from_slice(data);
            }
            _ if static_lenb == opt_lenb => {
                w.send((1 << 1) + lastb, 3);
                let t = tables();
                compress_block(
                    syms,
                    w,
                    &t.static_lcode,
                    &t.static_llen,
                    &t.static_dcode,
                    None,
                );
            }
            _ => {
                w.send((2 << 1) + lastb, 3);
                let lcodes = self.ltree.max_code as usize + 1;
                let dcodes = self.dtree.max_code as usize + 1;
                let blcodes = max_blindex + 1;
                w.send(lcodes as u32 - 257, 5);
                w.send(dcodes as u32 - 1, 5);
                w.send(blcodes as u32 - 4, 4);
                for &o in BL_ORDER.iter().take(blcodes) {
                    w.send(self.bltree.len[o] as u32, 3);
                }
                self.send_tree(Kind::Lit, lcodes as i32 - 1, w);
                self.send_tree(Kind::Dist, dcodes as i32 - 1, w);
                let mut llen = [0u8; 288];
                for (d, s) in llen.iter_mut().zip(self.ltree.len.iter()).take(L_CODES) {
                    *d = *s as u8;
                }
                let mut dlen = [0u8; D_CODES];
                for (d, s) in dlen.iter_mut().zip(self.dtree.len.iter()) {
                    *d = *s as u8;
                }
                let lcode: &[u16] = &self.ltree.code[..L_CODES];
                compress_block(
                    syms,
                    w,
                    lcode,
                    &llen,
                    &self.dtree.code[..D_CODES],
                    Some(&dlen),
                );
            }
        }
        self.init_block();
        if last {
            w.windup();
        }
    }
}

/// zlib's compress_block, with per-block combined tables for lengths.
fn compress_block(
    syms: &[u32],
    w: &mut BitOut,
    lcode: &[u16],
    llen: &[u8],
    dcode: &[u16],
    dlen: Option<&[u8; D_CODES]>,
) {
    let t = tables();
    // Length symbol lc (0..255): code bits + extra bits in one send.
    let mut len_bits = [0u32; 256];
    let mut len_n = [0u8; 256];
    for lc in 0..256 {
        let code = t.length_code[lc] as usize;
        let sym = code + LITERALS + 1;
        let extra = EXTRA_LBITS[code] as u32;
        let l = llen[sym] as u32;
        let xv = if extra != 0 {
            (lc as u32) - t.base_length[code] as u32
        } else {
            0
        };
        len_bits[lc] = lcode[sym] as u32 | (xv << l);
        len_n[lc] = (l + extra) as u8;
    }
    let dl = |c: usize| -> u32 {
        match dlen {
            Some(d) => d[c] as u32,
            None => 5,
        }
    };
    let mut dist_len = [0u8; D_CODES];
    for (c, d) in dist_len.iter_mut().enumerate() {
        *d = dl(c) as u8;
    }
    w.out.reserve(syms.len() * 6 + 64);
    for &s in syms {
        let dist = (s >> 8) as usize;
        let lc = (s & 0xff) as usize;
        if dist == 0 {
            w.send(lcode[lc] as u32, llen[lc] as u32);
        } else {
            w.send(len_bits[lc], len_n[lc] as u32);
            let d = dist - 1;
            let code = d_code(t, d);
            let extra = EXTRA_DBITS[code] as u32;
            let l = dist_len[code] as u32;
            let v = dcode[code] as u32 | (((d - t.base_dist[code] as usize) as u32) << l);
            w.send(v, l + extra);
        }
    }
    w.send(lcode[END_BLOCK] as u32, llen[END_BLOCK] as u32);
}
