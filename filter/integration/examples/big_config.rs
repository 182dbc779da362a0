//! Prints the configure benchmark's policy ([`big_config`]) as JSON, to profile
//! `scopegate_core::compile_json` natively on the same input
//! (`filter/core/examples/compile_config.rs`):
//!
//!   cargo run -p scopegate-integration --example big_config -- 1000 20 regex > /tmp/c.json
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use scopegate_integration::fuel::big_config;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let routes = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let keys = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let regex = args.get(2).is_none_or(|a| a == "regex");
    println!("{}", big_config(routes, keys, regex));
}
