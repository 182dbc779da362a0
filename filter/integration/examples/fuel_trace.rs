//! Where a request's wasm instructions go, between host calls:
//! `cargo run -p scopegate-integration --example fuel_trace [PATH] [REQUESTS]`
//! (default `/orders/7`, 4 requests with one RS256 token: the first verifies
//! it, the later ones are cache hits). For the last request it prints each
//! stretch of wasm work and the host call that ended it, as counted by the
//! harness's `PROXY_WASM_HARNESS_TRACE_FUEL` trace (set here for a child
//! run of this same program). `SCOPEGATE_WASM` measures another build.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use scopegate_testkit::{claims, config, default_rules, sign};

fn run(path: &str, requests: usize) {
    let host = scopegate_integration::host();
    let vm = scopegate_integration::fuel::bench_vm(&host, &config(default_rules()));
    let t = format!("Bearer {}", sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read")));
    for i in 0..requests {
        let headers = scopegate_integration::fuel::request_headers(path, Some(&t));
        if i + 1 == requests {
            eprintln!("fuel-trace measured");
        }
        let mut s = vm.http_stream();
        let _ = s.request_headers(&headers, true);
        s.finish();
        eprintln!("fuel-trace total {}", s.fuel_used());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).cloned().unwrap_or_else(|| "/orders/7".into());
    let requests: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(4);
    if std::env::var_os("FUEL_TRACE_CHILD").is_some() {
        run(&path, requests);
        return;
    }
    let out = Command::new(&args[0])
        .args(&args[1..])
        .env("FUEL_TRACE_CHILD", "1")
        .env("PROXY_WASM_HARNESS_TRACE_FUEL", "1")
        .output()
        .expect("runs itself");
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "fuel-trace measured")
        .filter_map(|l| l.strip_prefix("fuel-trace "))
        .collect();
    // Nested depth: callbacks (CallingWasm at depth 0), host calls, and the
    // host's calls back into the module for memory.
    let (mut last, mut depth, mut host_calls) = (None::<u64>, 0usize, 0usize);
    println!("wasm fuel | ends at");
    for l in &lines {
        if let Some(total) = l.strip_prefix("total ") {
            println!("total {total} fuel, {host_calls} host calls");
            continue;
        }
        let mut w = l.split_whitespace();
        let (Some(kind), Some(fuel)) = (w.next(), w.next().and_then(|f| f.parse::<u64>().ok())) else {
            if let Some(total) = l.strip_prefix("total ") {
                println!("total {total} fuel, {host_calls} host calls");
            }
            continue;
        };
        let spent = last.map_or(0, |prev| prev.saturating_sub(fuel));
        match kind {
            "CallingWasm" => {
                if depth > 0 {
                    println!("{spent:>9} | host call #{host_calls}, which asks the module for memory:");
                }
                depth += 1;
            }
            "ReturningFromWasm" => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    println!("{spent:>9} | return to the host");
                } else {
                    println!("{spent:>9} |   the module's allocator");
                }
            }
            "CallingHost" => {
                host_calls += 1;
                println!("{spent:>9} | host call #{host_calls}");
            }
            _ => {}
        }
        // Each callback starts with a fresh fuel budget.
        last = Some(fuel);
    }
    if !out.status.success() {
        eprintln!("{}", text);
        std::process::exit(1);
    }
}
