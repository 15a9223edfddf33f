//! Times the token decoder (plain bytes and matches) against zlib-rs on gzip files:
//! `token_inflate_speed FILE.gz ...`. Both decode the first member in 512 KiB input
//! pieces with 2 MiB of output per call, as the Python caller does. A first run checks
//! that both give the same bytes (CRC-32); of three more runs the fastest counts. Prints
//! plain MB/s of each, their ratio and matches per MB of plain data.

mod support;
use _native::inflate::Inflater;
use _native::token_inflate::TokenInflater;
use support::cpu_seconds;

const PIECE: usize = 512 << 10;
const MAX_OUT: usize = 2 << 20;

/// Where the deflate data of a gzip member starts.
fn body_start(gz: &[u8]) -> usize {
    assert!(
        gz.len() > 18 && gz[..3] == [0x1f, 0x8b, 8],
        "not a gzip file"
    );
    let flags = gz[3];
    let mut at = 10;
    if flags & 4 != 0 {
        at += 2 + u16::from_le_bytes([gz[at], gz[at + 1]]) as usize;
    }
    for bit in [8, 16] {
        if flags & bit != 0 {
            at += gz[at..].iter().position(|&b| b == 0).expect("header") + 1;
        }
    }
    if flags & 2 != 0 {
        at += 2;
    }
    at
}

/// Runs one decoder over `deflate`: (plain bytes, CRC-32 of them if `check`, seconds).
fn run(
    deflate: &[u8],
    check: bool,
    mut step: impl FnMut(&[u8]) -> (usize, bool),
    mut output: impl FnMut(Option<&mut crc32fast::Hasher>) -> usize,
) -> (u64, u32, f64) {
    let mut crc = crc32fast::Hasher::new();
    let (mut pos, mut plain) = (0usize, 0u64);
    let start = cpu_seconds();
    loop {
        let piece = &deflate[pos..(pos + PIECE).min(deflate.len())];
        let (used, eof) = step(piece);
        pos += used;
        plain += output(check.then_some(&mut crc)) as u64;
        if eof {
            break;
        }
        assert!(used > 0 || plain > 0 || !piece.is_empty(), "stuck");
    }
    (plain, crc.finalize(), cpu_seconds() - start)
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: token_inflate_speed FILE.gz ...");
        std::process::exit(2);
    }
    println!(
        "{:>12} {:>10} {:>10} {:>7} {:>10}  file",
        "plain MB", "zlib MB/s", "token MB/s", "ratio", "matches/MB"
    );
    for file in files {
        let gz = std::fs::read(&file).expect("read file");
        let deflate = &gz[body_start(&gz)..];
        let (mut best_z, mut best_t) = (f64::MAX, f64::MAX);
        let (mut plain, mut matches) = (0u64, 0usize);
        for round in 0..4 {
            let check = round == 0;
            let mut z = Inflater::new();
            let zr = std::cell::RefCell::new(&mut z);
            let (zplain, zcrc, zsecs) = run(
                deflate,
                check,
                |p| {
                    let mut z = zr.borrow_mut();
                    (z.decompress(p, MAX_OUT).expect("zlib"), z.eof())
                },
                |crc| {
                    let z = zr.borrow();
                    if let Some(crc) = crc {
                        crc.update(z.output());
                    }
                    z.output().len()
                },
            );
            let mut t = TokenInflater::new();
            let tr = std::cell::RefCell::new(&mut t);
            let mut taken = Vec::new();
            let mut count = 0usize;
            let (tplain, tcrc, tsecs) = run(
                deflate,
                check,
                |p| {
                    let mut t = tr.borrow_mut();
                    (t.decompress(p, MAX_OUT).expect("token"), t.eof())
                },
                |crc| {
                    let mut t = tr.borrow_mut();
                    if let Some(crc) = crc {
                        crc.update(t.output());
                    }
                    // Taking the matches is part of the work the caller does.
                    taken.clear();
                    t.take_matches(&mut taken);
                    count += taken.len();
                    t.output().len()
                },
            );
            assert!(zplain == tplain && zcrc == tcrc, "{file}: outputs differ");
            if !check {
                best_z = best_z.min(zsecs);
                best_t = best_t.min(tsecs);
            }
            (plain, matches) = (tplain, count);
        }
        let mb = plain as f64 / 1e6;
        println!(
            "{:>12.1} {:>10.1} {:>10.1} {:>7.2} {:>10.0}  {}",
            mb,
            mb / best_z,
            mb / best_t,
            best_z / best_t,
            matches as f64 / mb,
            file
        );
    }
}
