//! Fuel accounting, memory size, runaway guests, bad pointers.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use proxy_wasm_harness::{Host, Outcome};

#[test]
fn fuel_is_reported_per_callback_and_per_stream() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("mutate,dump"), true);
    s.finish();
    let stats = s.callback_stats();
    assert!(stats.iter().all(|c| c.memory_bytes > 0));
    let headers = stats
        .iter()
        .find(|c| c.callback == "on_request_headers")
        .unwrap();
    assert!(headers.fuel > 1000, "{headers:?}");
    assert_eq!(s.fuel_used(), stats.iter().map(|c| c.fuel).sum::<u64>());
}

#[test]
fn runaway_guest_runs_out_of_fuel_and_fails() {
    let host = Host::new();
    let vm = host
        .vm(&probe())
        .fuel_per_callback(50_000_000)
        .start()
        .unwrap();
    let out = vm.request(&probe_headers("loop"));
    match out {
        Outcome::Failed { message } => assert!(message.contains("fuel"), "{message}"),
        other => panic!("expected failure, got {other:?}"),
    }
    assert!(!vm.alive());
}

#[test]
fn memory_growth_is_visible() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let before = vm.memory_bytes();
    vm.request(&probe_headers("grow"));
    assert!(
        vm.memory_bytes() >= before + (4 << 20),
        "{before} -> {}",
        vm.memory_bytes()
    );
}
