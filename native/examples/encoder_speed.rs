//! Times the Go and zlib re-encoders on plain files and checks the output against the
//! original deflate bytes: `encoder_speed go|zlib PLAIN DEFLATE [repeats]`.
//! Only finished bytes are compared (the stream is not closed), so DEFLATE may be the
//! deflate data of a longer stream whose plain data starts with PLAIN.

mod support;
use support::cpu_seconds;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: encoder_speed go|zlib PLAIN DEFLATE [repeats]");
        std::process::exit(2);
    }
    let plain = std::fs::read(&args[2]).expect("read plain");
    let deflate = std::fs::read(&args[3]).expect("read deflate");
    let repeats: usize = args.get(4).map_or(3, |s| s.parse().unwrap());
    let mut rates = Vec::new();
    for _ in 0..repeats {
        let start = cpu_seconds();
        let out = match args[1].as_str() {
            "go" => {
                let mut e = _native::goflate::GoDeflater::new(6).unwrap();
                e.write(&plain);
                e.take_output()
            }
            "zlib" => {
                let mut e = _native::zlib_enc::ZlibDeflater::new(6, 8, 15, 0).unwrap();
                e.write(&plain);
                e.take_output()
            }
            other => panic!("unknown encoder {other}"),
        };
        let secs = cpu_seconds() - start;
        assert!(
            out.len() > plain.len() / 20 && deflate[..out.len()] == out[..],
            "output differs from the original stream"
        );
        rates.push(plain.len() as f64 / secs / 1e6);
    }
    // The fastest run is the one least disturbed by other work on the machine.
    let best = rates.iter().cloned().fold(0.0, f64::max);
    println!("{best:.1}");
}
