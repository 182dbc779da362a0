//! Fuel and wall time of `on_configure` alone, for the configure benchmark's
//! policies ([`measure_configure`]) and a few variants that split the cost
//! (routes without keys, keys without routes, with and without regexes):
//!
//!   cargo run -p scopegate-integration --example configure_fuel
//!
//! `SCOPEGATE_WASM=path/to/other.wasm` measures another build (e.g. main's), to
//! compare wall times under the same load.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use scopegate_integration::fuel::measure_configure_memory;

fn main() {
    // Wall times move with the machine's load: the minimum of the runs is the
    // closest to an idle machine, the median what a loaded one gives.
    println!(
        "| configure | fuel | wall ms, min of 9 | wall ms, median of 9 | linear memory KiB after |"
    );
    println!("|---|---|---|---|---|");
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
        let mut runs: Vec<(u64, std::time::Duration, u64)> = (0..9)
            .map(|_| measure_configure_memory(routes, keys, regex))
            .collect();
        runs.sort_by_key(|r| r.1);
        let what = if regex { "10% regex" } else { "no regex" };
        println!(
            "| {routes} routes ({what}), {keys} keys | {} | {:.1} | {:.1} | {} |",
            runs[0].0,
            runs[0].1.as_secs_f64() * 1e3,
            runs[4].1.as_secs_f64() * 1e3,
            runs[0].2 / 1024
        );
    }
}
