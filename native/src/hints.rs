//! A decoded match: one back-reference (LZ77 match) of a deflate stream, by plain-data
//! position, as the token inflater reports it and the deflate transcript records it
//! (see transcript.rs).

pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 258;
pub const MAX_DIST: usize = 32768;

/// One match: `len` bytes at plain position `pos` copy those `dist` bytes back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hint {
    pub pos: u64,
    pub len: u16,
    pub dist: u16,
}

impl Hint {
    pub fn at(pos: u64, len: u16, dist: u16) -> Hint {
        Hint { pos, len, dist }
    }

    /// The plain position after the match.
    pub fn end(&self) -> u64 {
        self.pos + self.len as u64
    }
}
