//! Checks candidate encoders against the original compressed bytes while the plain data
//! streams by, so that at the end we know which encoder (if any) rebuilds the stream.

use crate::goflate::GoDeflater;
use crate::zlib_port::ZlibEncoder;

/// At most this many Go variants (different early-slide histories) are followed at once.
const MAX_GO_VARIANTS: usize = 8;
/// A candidate lagging this far behind the original stream is dropped, which bounds the
/// buffered original bytes.
const MAX_LAG: usize = 64 << 20;
/// Plain bytes given to each candidate between comparisons.
const STEP: usize = 16 << 10;

/// What a candidate encoder is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncoderSpec {
    /// Go compress/flate at `level`, sliding early at the given frames.
    Go { level: i32, early_slides: Vec<u64> },
    /// zlib deflate with windowBits -15 (raw) and these parameters.
    Zlib {
        level: i32,
        mem_level: i32,
        strategy: i32,
    },
}

struct GoVariant {
    enc: GoDeflater,
    early: Vec<u64>,
    matched: u64,
}

enum Candidate {
    Go {
        level: i32,
        variants: Vec<GoVariant>,
    },
    Zlib {
        spec: EncoderSpec,
        enc: ZlibEncoder,
        matched: u64,
        alive: bool,
    },
}

/// Compares `out` with the original bytes available from absolute offset `*matched`;
/// consumes the common part. False on a difference or when output runs past the end.
fn check(out: &[u8], expected: &[u8], base: u64, matched: &mut u64) -> (bool, usize) {
    let start = (*matched - base) as usize;
    let avail = &expected[start..];
    let n = out.len().min(avail.len());
    if out[..n] != avail[..n] {
        return (false, 0);
    }
    *matched += n as u64;
    (true, n)
}

pub struct Verifier {
    candidates: Vec<Candidate>,
    expected: Vec<u8>,
    /// Absolute offset of expected[0] in the original compressed stream.
    base: u64,
    total_expected: u64,
    finished: bool,
}

impl Verifier {
    pub fn new(specs: &[EncoderSpec]) -> Result<Self, String> {
        let mut candidates = Vec::new();
        for spec in specs {
            candidates.push(match spec {
                EncoderSpec::Go {
                    level,
                    early_slides,
                } => {
                    let mut enc = GoDeflater::new(*level)?;
                    enc.set_early_slides(early_slides);
                    Candidate::Go {
                        level: *level,
                        variants: vec![GoVariant {
                            enc,
                            early: early_slides.clone(),
                            matched: 0,
                        }],
                    }
                }
                EncoderSpec::Zlib {
                    level,
                    mem_level,
                    strategy,
                } => Candidate::Zlib {
                    spec: spec.clone(),
                    enc: ZlibEncoder::new(*level, *mem_level, 15, *strategy)?,
                    matched: 0,
                    alive: true,
                },
            });
        }
        Ok(Verifier {
            candidates,
            expected: Vec::new(),
            base: 0,
            total_expected: 0,
            finished: false,
        })
    }

    /// Number of candidates that still match.
    pub fn alive(&self) -> usize {
        self.candidates
            .iter()
            .filter(|c| match c {
                Candidate::Go { variants, .. } => !variants.is_empty(),
                Candidate::Zlib { alive, .. } => *alive,
            })
            .count()
    }

    /// Keeps only the first `n` candidates (in the order given to `new`) that still match.
    /// Bounds the cost when many encoders agree for a long time (incompressible data).
    pub fn retain_best(&mut self, n: usize) {
        let mut kept = 0;
        for c in self.candidates.iter_mut() {
            let alive = match c {
                Candidate::Go { variants, .. } => !variants.is_empty(),
                Candidate::Zlib { alive, .. } => *alive,
            };
            if !alive {
                continue;
            }
            if kept < n {
                kept += 1;
                continue;
            }
            match c {
                Candidate::Go { variants, .. } => variants.clear(),
                Candidate::Zlib { alive, .. } => *alive = false,
            }
        }
        self.trim();
    }

    /// Feeds the next plain bytes and the next original compressed bytes (the two need
    /// not correspond exactly; they only have to be the same streams in order).
    pub fn feed(&mut self, plain: &[u8], compressed: &[u8]) {
        assert!(!self.finished, "feed after finish");
        self.expected.extend_from_slice(compressed);
        self.total_expected += compressed.len() as u64;
        // Small steps, so that a wrong candidate stops costing soon after it differs.
        for piece in plain
            .chunks(STEP)
            .chain(plain.is_empty().then_some(&plain[..0]))
        {
            let (expected, base) = (&self.expected[..], self.base);
            for cand in self.candidates.iter_mut() {
                match cand {
                    Candidate::Go { variants, .. } => feed_go(variants, piece, expected, base),
                    Candidate::Zlib {
                        enc,
                        matched,
                        alive,
                        ..
                    } => {
                        if *alive {
                            enc.write(piece);
                            let (ok, n) = check(enc.output(), expected, base, matched);
                            *alive = ok;
                            if ok {
                                enc.drain_output(n);
                            }
                        }
                    }
                }
            }
        }
        self.drop_laggards();
        self.trim();
    }

    /// Ends the streams; returns the encoders that reproduce the original exactly.
    pub fn finish(&mut self) -> Vec<EncoderSpec> {
        self.finished = true;
        let mut ok = Vec::new();
        let total = self.total_expected;
        let (expected, base) = (&self.expected[..], self.base);
        for cand in self.candidates.iter_mut() {
            match cand {
                Candidate::Go { level, variants } => {
                    variants.sort_by_key(|v| v.early.len());
                    for v in variants.iter_mut() {
                        v.enc.close();
                        let out_len = v.enc.output().len();
                        let (good, n) = check(v.enc.output(), expected, base, &mut v.matched);
                        if good && n == out_len && v.matched == total {
                            ok.push(EncoderSpec::Go {
                                level: *level,
                                early_slides: v.early.clone(),
                            });
                            break;
                        }
                    }
                }
                Candidate::Zlib {
                    spec,
                    enc,
                    matched,
                    alive,
                } => {
                    if *alive {
                        enc.close();
                        let out_len = enc.output().len();
                        let (good, n) = check(enc.output(), expected, base, matched);
                        if good && n == out_len && *matched == total {
                            ok.push(spec.clone());
                        }
                    }
                }
            }
        }
        ok
    }

    fn min_matched(&self) -> Option<u64> {
        let mut m: Option<u64> = None;
        for c in &self.candidates {
            match c {
                Candidate::Go { variants, .. } => {
                    for v in variants {
                        m = Some(m.map_or(v.matched, |x| x.min(v.matched)));
                    }
                }
                Candidate::Zlib { matched, alive, .. } => {
                    if *alive {
                        m = Some(m.map_or(*matched, |x| x.min(*matched)));
                    }
                }
            }
        }
        m
    }

    fn drop_laggards(&mut self) {
        let limit = self.total_expected.saturating_sub(MAX_LAG as u64);
        for c in self.candidates.iter_mut() {
            match c {
                Candidate::Go { variants, .. } => variants.retain(|v| v.matched >= limit),
                Candidate::Zlib { matched, alive, .. } => {
                    if *matched < limit {
                        *alive = false;
                    }
                }
            }
        }
    }

    /// Forgets original bytes every live candidate has already matched.
    fn trim(&mut self) {
        let upto = self.min_matched().unwrap_or(self.total_expected);
        let n = (upto - self.base) as usize;
        if n > 0 && (n >= self.expected.len() / 2 || n >= 1 << 20) {
            self.expected.drain(..n);
            self.base = upto;
        }
    }
}

/// Runs every Go variant over `plain`, forking at slide decisions that matter and
/// dropping variants whose output differs from the original. Variants advance in
/// lockstep (the one furthest behind goes next) so that wrong forks die before new ones
/// are made.
fn feed_go(variants: &mut Vec<GoVariant>, plain: &[u8], expected: &[u8], base: u64) {
    let mut live: Vec<(GoVariant, usize)> = variants.drain(..).map(|v| (v, 0)).collect();
    let mut done: Vec<GoVariant> = Vec::new();
    while !live.is_empty() {
        let i = (0..live.len()).min_by_key(|&i| live[i].1).unwrap();
        let (mut v, mut pos) = live.swap_remove(i);
        pos += v.enc.write_some(&plain[pos..]);
        let (ok, n) = check(v.enc.output(), expected, base, &mut v.matched);
        if !ok {
            continue;
        }
        v.enc.drain_output(n);
        if !v.enc.paused() {
            done.push(v);
            continue;
        }
        if v.enc.slide_would_matter() && done.len() + live.len() + 1 < MAX_GO_VARIANTS {
            let mut fork = GoVariant {
                enc: v.enc.clone(),
                early: v.early.clone(),
                matched: v.matched,
            };
            fork.early.push(fork.enc.slides());
            fork.enc.resolve_slide(true);
            live.push((fork, pos));
        }
        v.enc.resolve_slide(false);
        live.push((v, pos));
    }
    done.sort_by_key(|v| v.early.len());
    // Variants that reached the same state have the same future: keep the first.
    let mut kept: Vec<GoVariant> = Vec::with_capacity(done.len());
    for v in done {
        if !kept
            .iter()
            .any(|k| k.matched == v.matched && k.enc.same_state(&v.enc))
        {
            kept.push(v);
        }
    }
    *variants = kept;
}
