//! Fuel and wall time of `on_configure` alone, for the configure benchmark's
//! policies ([`measure_configure`]) and a few variants that split the cost
//! (routes without keys, keys without routes, with and without regexes):
//!
//!   cargo run -p scopegate-integration --example configure_fuel
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use scopegate_integration::fuel::measure_configure;

fn main() {
    println!("| configure | fuel | wall ms (median of 5) |");
    println!("|---|---|---|");
    for (routes, keys, regex) in [
        (10usize, 20usize, true),
        (100, 20, true),
        (1000, 20, true),
        (1000, 20, false),
        (1000, 1, true),
        (1000, 1, false),
        (0, 20, false),
        (0, 1, false),
    ] {
        let mut runs: Vec<(u64, std::time::Duration)> =
            (0..5).map(|_| measure_configure(routes, keys, regex)).collect();
        runs.sort_by_key(|r| r.1);
        let what = if regex { "10% regex" } else { "no regex" };
        println!(
            "| {routes} routes ({what}), {keys} keys | {} | {:.1} |",
            runs[0].0,
            runs[2].1.as_secs_f64() * 1e3
        );
    }
}
