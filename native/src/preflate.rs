//! Chunked use of preflate-rs: the general (slower) way to split a deflate stream made
//! by an unknown encoder into plain data plus small "corrections", and to rebuild it.

use preflate_rs::{ExitCode, PreflateConfig, PreflateStreamProcessor, RecreateStreamProcessor};
use std::io::Cursor;

/// Compressed bytes handed to preflate at a time.
const CHUNK: usize = 4 << 20;
/// Most compressed bytes buffered while waiting for a block to end.
const MAX_PENDING: usize = 64 << 20;
/// Most plain bytes preflate decodes per chunk (bounds memory on very compressible data).
const PLAIN_LIMIT: usize = 32 << 20;
/// preflate-rs counts positions in 32-bit signed integers.
pub const MAX_PLAIN_TOTAL: u64 = (i32::MAX as u64) - (PLAIN_LIMIT as u64);

/// preflate-rs keeps its hash chains behind `Box<dyn HashChainHolder>` without a `Send`
/// bound, although they are plain owned tables (no Rc, Cell or thread-locals). This
/// wrapper lets the state move to the thread that runs a call with the GIL released;
/// it is only ever used through `&mut`, one call at a time.
struct OwnedState<T>(T);
// SAFETY: see above: the wrapped values own all their data and have no interior
// mutability, so moving them between threads or sharing `&` references is sound.
unsafe impl<T> Send for OwnedState<T> {}
unsafe impl<T> Sync for OwnedState<T> {}

pub struct PreflateSplitter {
    processor: OwnedState<PreflateStreamProcessor>,
    pending: Vec<u8>,
    /// (plain length, corrections) per chunk, in stream order.
    pub chunks: Vec<(u64, Vec<u8>)>,
    plain_total: u64,
}

impl PreflateSplitter {
    pub fn new() -> Self {
        let config = PreflateConfig {
            plain_text_limit: PLAIN_LIMIT,
            verify_compression: true,
            ..PreflateConfig::default()
        };
        PreflateSplitter {
            processor: OwnedState(PreflateStreamProcessor::new(&config)),
            pending: Vec::new(),
            chunks: Vec::new(),
            plain_total: 0,
        }
    }

    pub fn feed(&mut self, compressed: &[u8]) -> Result<(), String> {
        self.pending.extend_from_slice(compressed);
        while self.pending.len() >= CHUNK && !self.processor.0.is_done() {
            if !self.step(false)? {
                break;
            }
        }
        if self.pending.len() > MAX_PENDING {
            return Err("preflate: a deflate block is too large".into());
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<(), String> {
        while !self.processor.0.is_done() {
            if !self.step(true)? {
                return Err("preflate: the deflate stream is truncated".into());
            }
        }
        if !self.pending.is_empty() {
            return Err(format!(
                "preflate: {} bytes after the deflate stream",
                self.pending.len()
            ));
        }
        Ok(())
    }

    /// One call into preflate. Returns false when more data is needed.
    fn step(&mut self, at_end: bool) -> Result<bool, String> {
        match self.processor.0.decompress(&self.pending) {
            Ok(r) => {
                let plain_len = self.processor.0.plain_text().text().len() as u64;
                self.processor.0.shrink_to_dictionary();
                if r.compressed_size == 0 && plain_len == 0 && !self.processor.0.is_done() {
                    return Ok(false);
                }
                self.plain_total += plain_len;
                if self.plain_total > MAX_PLAIN_TOTAL {
                    return Err("preflate: stream too large (over 2 GiB of plain data)".into());
                }
                self.pending.drain(..r.compressed_size);
                self.chunks.push((plain_len, r.corrections));
                Ok(true)
            }
            Err(e) if e.exit_code() == ExitCode::ShortRead && !at_end => Ok(false),
            Err(e) => Err(describe(&e)),
        }
    }
}

impl Default for PreflateSplitter {
    fn default() -> Self {
        Self::new()
    }
}

pub struct PreflateRebuilder {
    recreator: OwnedState<RecreateStreamProcessor>,
}

impl PreflateRebuilder {
    pub fn new() -> Self {
        PreflateRebuilder {
            recreator: OwnedState(RecreateStreamProcessor::new()),
        }
    }

    /// Rebuilds the compressed bytes of one chunk from its plain data and corrections.
    pub fn rebuild_chunk(&mut self, plain: &[u8], corrections: &[u8]) -> Result<Vec<u8>, String> {
        self.recreator
            .0
            .recompress(&mut Cursor::new(plain), corrections)
            .map(|(out, _)| out)
            .map_err(|e| describe(&e))
    }
}

/// One line: the error kind and the first line of its message (the rest is a trace of
/// source locations).
fn describe(e: &preflate_rs::PreflateError) -> String {
    let first = e.message().lines().next().unwrap_or("");
    format!("preflate: {:?}: {}", e.exit_code(), first)
}

impl Default for PreflateRebuilder {
    fn default() -> Self {
        Self::new()
    }
}
