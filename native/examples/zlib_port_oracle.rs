//! Compares the Rust zlib port with the bundled C zlib, byte for byte:
//! `zlib_port_oracle check FILE...` (plus built-in synthetic inputs) at levels 1-9,
//! memLevel 8 and 9, whole and randomly split writes; `zlib_port_oracle speed LEVEL FILE...`
//! times both encoders (CPU seconds of this thread, best of 3).

mod support;

use _native::zlib_enc::ZlibDeflater;
use _native::zlib_port::{ZlibEncoder, ZlibPortDeflater};
use support::cpu_seconds;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Write sizes: whole input, fixed sizes, or random ones (seeded).
fn chunks(len: usize, mode: u64) -> Vec<usize> {
    let mut v = Vec::new();
    let mut rng = Rng(0x9E3779B97F4A7C15 ^ mode.wrapping_mul(0x2545F4914F6CDD1D) | 1);
    let mut left = len;
    while left > 0 {
        let n = match mode {
            0 => left,
            1 => 1,
            2 => 4096,
            3 => 65536,
            _ => {
                let r = rng.next();
                match r % 4 {
                    0 => (r >> 8) as usize % 16 + 1,
                    1 => (r >> 8) as usize % 1000 + 1,
                    2 => (r >> 8) as usize % 70000 + 1,
                    _ => (r >> 8) as usize % 300000 + 1,
                }
            }
        }
        .min(left);
        v.push(n);
        left -= n;
    }
    v
}

/// The C zlib at these settings.
fn c_zlib(level: i32, mem: i32) -> ZlibEncoder {
    ZlibEncoder::C(ZlibDeflater::new(level, mem, 15, 0).unwrap())
}

/// The port at these settings.
fn port(level: i32, mem: i32) -> ZlibEncoder {
    ZlibEncoder::Port(Box::new(ZlibPortDeflater::new(level, mem).unwrap()))
}

/// The whole output of `e` for `data` written in pieces of `sizes`.
fn run(mut e: ZlibEncoder, data: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for &n in sizes {
        e.write(&data[at..at + n]);
        out.extend(e.take_output());
        at += n;
    }
    e.close();
    out.extend(e.take_output());
    out
}

fn synthetic() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let mut rng = Rng(12345);
    v.push(("empty".into(), Vec::new()));
    v.push(("one".into(), vec![7]));
    v.push(("two".into(), vec![7, 7]));
    v.push(("zeros-3M".into(), vec![0; 3 << 20]));
    v.push((
        "random-2M".into(),
        (0..2 << 20).map(|_| rng.next() as u8).collect(),
    ));
    let words = [
        "the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog\n", "zlib ",
        "deflate ",
    ];
    let text: Vec<u8> = (0..400_000)
        .flat_map(|_| words[(rng.next() % 10) as usize].bytes())
        .collect();
    v.push(("text".into(), text));
    // Low-entropy bytes: many short matches and far-distance length-3 matches.
    v.push((
        "lowent".into(),
        (0..3 << 20).map(|_| (rng.next() % 5) as u8 * 17).collect(),
    ));
    // Mixed: runs, random, repeats with long distances.
    let mut mixed = Vec::new();
    while mixed.len() < 4 << 20 {
        let r = rng.next();
        match r % 4 {
            0 => mixed.extend(std::iter::repeat_n(
                (r >> 8) as u8,
                (r >> 16) as usize % 1000,
            )),
            1 => mixed.extend((0..(r >> 16) as usize % 5000).map(|_| rng.next() as u8)),
            _ => {
                if mixed.len() > 40000 {
                    let d = (r >> 16) as usize % 40000 + 1;
                    let n = (r >> 32) as usize % 600 + 3;
                    for _ in 0..n {
                        let b = mixed[mixed.len() - d];
                        mixed.push(b);
                    }
                }
            }
        }
    }
    v.push(("mixed".into(), mixed));
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("check") => {
            let mut inputs = if std::env::var("NO_SYNTH").is_ok() {
                Vec::new()
            } else {
                synthetic()
            };
            for f in &args[2..] {
                inputs.push((f.clone(), std::fs::read(f).expect("read")));
            }
            let modes: Vec<u64> = std::env::var("MODES")
                .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
                .unwrap_or_else(|_| vec![0, 4, 5]);
            let mems: Vec<i32> = std::env::var("MEMS")
                .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
                .unwrap_or_else(|_| vec![8, 9]);
            let mut bad = 0;
            let mut n = 0;
            for (name, data) in &inputs {
                for level in 1..=9 {
                    for &mem in &mems {
                        for &mode in &modes {
                            if mode == 1 && data.len() > 300_000 {
                                continue;
                            }
                            let sizes = chunks(data.len(), mode);
                            let a = run(c_zlib(level, mem), data, &sizes);
                            let b = run(port(level, mem), data, &sizes);
                            n += 1;
                            if a != b {
                                bad += 1;
                                let d = a
                                    .iter()
                                    .zip(&b)
                                    .position(|(x, y)| x != y)
                                    .unwrap_or(a.len().min(b.len()));
                                println!("MISMATCH {name} level={level} mem={mem} mode={mode} c_len={} port_len={} first_diff={d}", a.len(), b.len());
                            }
                        }
                    }
                }
                println!("done {name} ({} bytes)", data.len());
            }
            println!("comparisons={n} mismatches={bad}");
            if bad > 0 {
                std::process::exit(1);
            }
        }
        Some("speed") => {
            let level: i32 = args[2].parse().unwrap();
            for f in &args[3..] {
                let data = std::fs::read(f).expect("read");
                let sizes = chunks(data.len(), 3);
                let mut tc = f64::MAX;
                let mut tp = f64::MAX;
                let mut same = true;
                for _ in 0..3 {
                    let t0 = cpu_seconds();
                    let a = run(c_zlib(level, 8), &data, &sizes);
                    let t1 = cpu_seconds();
                    let b = run(port(level, 8), &data, &sizes);
                    let t2 = cpu_seconds();
                    tc = tc.min(t1 - t0);
                    tp = tp.min(t2 - t1);
                    same &= a == b;
                }
                let mb = data.len() as f64 / 1e6;
                println!(
                    "{f}: {:.1} MB  C {:.1} MB/s  port {:.1} MB/s  identical={same}",
                    mb,
                    mb / tc,
                    mb / tp
                );
            }
        }
        _ => {
            eprintln!("usage: zlib_port_oracle check FILE... | speed LEVEL FILE...");
            std::process::exit(2);
        }
    }
}
