//! Compiles a plugin config from a file `n` times (default 1): a native
//! stand-in for `on_configure`, to profile with callgrind, e.g. on the
//! configure benchmark's policy (`filter/integration/examples/big_config.rs`):
//!
//!   cargo run -p scopegate-integration --example big_config -- 1000 20 regex > /tmp/c.json
//!   cargo build --release -p scopegate-core --example compile_config
//!   valgrind --tool=callgrind target/release/examples/compile_config /tmp/c.json
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: compile_config FILE [N]");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let bytes = std::fs::read(&path).expect("readable config file");
    let start = Instant::now();
    for _ in 0..n {
        let policy = scopegate_core::compile_json(&bytes);
        if let Err(errors) = &policy {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
        std::hint::black_box(policy).ok();
    }
    let each = start.elapsed() / u32::try_from(n).unwrap_or(u32::MAX);
    eprintln!("compile_json: {:.3} ms each ({n} runs)", each.as_secs_f64() * 1e3);
}
