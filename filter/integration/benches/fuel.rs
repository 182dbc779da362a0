//! scopegate.wasm in the harness, per scenario: fuel (wasm instructions),
//! host calls and wall time per request, linear memory after the run; and
//! the cost of configuring 10 / 100 / 1000 routes with 20 keys.
//!
//!   cargo bench -p scopegate-integration --bench fuel [-- REQUESTS]
//!
//! Wall times are wasmtime's (Cranelift), not V8's, and move with the
//! machine's load; fuel and host calls are exact counts (the regression test
//! `tests/fuel.rs` checks them against `fuel-baseline.json`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use scopegate_integration::fuel::{
    SCENARIOS, first_requests, measure, measure_configure, memory_with_full_cache,
};

fn main() {
    let requests: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# harness (wasmtime) cost per request, {requests} requests per scenario after warm-up; load average {}",
        load.split_whitespace().next().unwrap_or("?")
    );
    println!("| scenario | fuel/request | host calls/request | wall µs/request | linear memory KiB |");
    println!("|---|---|---|---|---|");
    for name in SCENARIOS {
        let m = measure(name, requests);
        println!(
            "| {} | {} | {} | {:.1} | {} |",
            m.name,
            m.fuel_per_request,
            m.hostcalls_per_request,
            m.wall_per_request.as_secs_f64() * 1e6,
            m.memory_bytes / 1024
        );
    }
    println!();
    println!("| first requests of a fresh VM | fuel of requests 1, 2, 3 |");
    println!("|---|---|");
    for name in ["distinct_ES256", "distinct_ES384", "distinct_ES512", "distinct_EdDSA"] {
        let f = first_requests(name, 3);
        println!("| {name} | {f:?} |");
    }
    println!();
    println!("| configure | fuel | wall ms (on_configure in wasmtime, fuel metering on) |");
    println!("|---|---|---|");
    for (routes, keys, regex) in [
        (10usize, 20usize, true),
        (100, 20, true),
        (1000, 20, true),
        (1000, 1, true),
        (1000, 20, false),
        (10, 1, true),
    ] {
        let (fuel, wall) = measure_configure(routes, keys, regex);
        let what = if regex { "10% regex" } else { "no regex" };
        println!(
            "| {routes} routes ({what}), {keys} keys | {fuel} | {:.1} |",
            wall.as_secs_f64() * 1e3
        );
    }
    let (before, after) = memory_with_full_cache(5000);
    println!();
    println!(
        "linear memory per VM: {} KiB after configure, {} KiB with a full token cache (5000 distinct tokens, 4096 kept)",
        before / 1024,
        after / 1024
    );
}
