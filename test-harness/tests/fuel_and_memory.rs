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
    let s = finished_stream(&vm, "mutate,dump");
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
fn a_streams_figures_are_its_own_callbacks_among_interleaved_streams() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    // Two streams open at once, their callbacks interleaved, then a third.
    let mut a = vm.http_stream();
    let mut b = vm.http_stream();
    a.request_headers(&probe_headers("mutate"), false);
    b.request_headers(&probe_headers("mutate,dump"), true);
    a.request_body(b"x", true);
    b.finish();
    a.finish();
    let c = finished_stream(&vm, "dump");
    let all = vm.callback_stats();
    for s in [&a, &b, &c] {
        let want: Vec<_> = all.iter().filter(|x| x.context_id == s.id()).cloned().collect();
        assert!(!want.is_empty());
        assert_eq!(s.callback_stats(), want, "stream {}", s.id());
        assert_eq!(s.fuel_used(), want.iter().map(|x| x.fuel).sum::<u64>());
        assert_eq!(s.hostcalls_used(), want.iter().map(|x| x.hostcalls).sum::<u64>());
    }
    let names: Vec<_> = a.callback_stats().into_iter().map(|x| x.callback).collect();
    assert!(names.contains(&"on_request_body".to_string()), "{names:?}");
}

#[test]
fn callback_stats_can_be_drained_and_streams_count_from_there() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let done = finished_stream(&vm, "dump");
    let mut open = vm.http_stream();
    open.request_headers(&probe_headers("mutate"), false);
    let before = open.fuel_used();
    assert!(before > 0);
    let taken = vm.take_callback_stats();
    assert!(taken.iter().any(|x| x.context_id == done.id()));
    assert!(taken.iter().any(|x| x.context_id == open.id()));
    assert!(vm.callback_stats().is_empty());
    assert_eq!((done.fuel_used(), open.fuel_used()), (0, 0));
    open.request_body(b"x", true);
    open.finish();
    let after = open.callback_stats();
    assert!(!after.is_empty());
    assert!(after.iter().all(|x| x.callback != "on_request_headers"), "{after:?}");
    assert_eq!(vm.callback_stats(), after);
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
