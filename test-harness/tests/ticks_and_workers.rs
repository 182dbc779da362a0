//! Ticks on the virtual clock, several VMs, shared data, metrics.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use proxy_wasm_harness::{Host, MetricKind};
use std::time::Duration;

fn tick_times(vm: &proxy_wasm_harness::Vm) -> Vec<u64> {
    vm.log_messages()
        .iter()
        .filter_map(|m| m.strip_prefix("tick at "))
        .map(|t| t.parse::<u64>().unwrap() / 1_000_000 - 1_700_000_000_000)
        .collect()
}

#[test]
fn ticks_fire_at_the_period_on_the_virtual_clock() {
    let host = Host::new();
    let vm = probe_vm(&host, "tick_ms=1000");
    assert_eq!(vm.tick_period(), Some(Duration::from_secs(1)));
    host.advance(Duration::from_millis(999));
    assert!(tick_times(&vm).is_empty());
    host.advance(Duration::from_millis(1));
    host.advance(Duration::from_secs(3));
    assert_eq!(tick_times(&vm), vec![1000, 2000, 3000, 4000]);
    assert_eq!(host.metric_value("probe_ticks"), Some(4));
}

#[test]
fn ticks_of_several_vms_interleave_in_time_order() {
    let host = Host::new();
    let a = probe_vm(&host, "tick_ms=300");
    let b = probe_vm(&host, "tick_ms=500");
    host.advance(Duration::from_secs(1));
    assert_eq!(tick_times(&a), vec![300, 600, 900]);
    assert_eq!(tick_times(&b), vec![500, 1000]);
    assert_eq!(host.metric_value("probe_ticks"), Some(5));
}

#[test]
fn shared_data_cas_rules() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(
        &probe_headers("shared-get:k,shared-set:k=v,shared-get:k,shared-set:k=w,shared-cas:k=x@1,shared-cas:k=y@2,shared-set:e=,shared-get:e"),
        true,
    );
    assert_eq!(s.request_header("x-probe-shared-k").as_deref(), Some("v;1"));
    assert!(vm.logged("shared-cas k Err(CasMismatch)"));
    assert!(vm.logged("shared-cas k Ok(())"));
    assert_eq!(
        host.shared_data("", "k").map(|e| (e.value, e.cas)),
        Some((b"y".to_vec(), 3))
    );
    // An empty value is stored, not deleted.
    assert_eq!(host.shared_data("", "e").map(|e| e.value), Some(Vec::new()));
}

#[test]
fn shared_data_is_process_wide_per_vm_id() {
    let host = Host::new();
    let workers = host.vm(&probe()).vm_id("auth").start_workers(2).unwrap();
    let other = host.vm(&probe()).vm_id("other").start().unwrap();
    workers[0].request(&probe_headers("shared-set:jwks=keys"));
    let mut s = workers[1].http_stream();
    s.request_headers(&probe_headers("shared-get:jwks"), true);
    assert_eq!(
        s.request_header("x-probe-shared-jwks").as_deref(),
        Some("keys;1")
    );
    let mut o = other.http_stream();
    o.request_headers(&probe_headers("shared-get:jwks"), true);
    assert_eq!(
        o.request_header("x-probe-shared-jwks").as_deref(),
        Some("none")
    );
    host.set_shared_data("other", "jwks", b"x");
    let mut o2 = other.http_stream();
    o2.request_headers(&probe_headers("shared-get:jwks"), true);
    assert_eq!(
        o2.request_header("x-probe-shared-jwks").as_deref(),
        Some("x;2"),
        "CAS is process-wide"
    );
}

#[test]
fn envoy_startup_runs_configure_on_a_discarded_main_thread_vm_first() {
    let host = Host::new();
    let workers = host
        .vm(&probe())
        .plugin_config("a=1")
        .start_workers(2)
        .unwrap();
    assert_eq!(workers.len(), 2);
    let retired = host.retired_logs();
    assert!(
        retired
            .iter()
            .any(|l| l.message.contains("configure size=3"))
    );
    assert!(workers.iter().all(|w| w.configured()));
}

#[test]
fn metrics_follow_envoy_rules() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    vm.request(&probe_headers("metric"));
    assert!(vm.logged("metric zero-increment Err(BadArgument) requests Ok(1)"));
    let m = host.metrics();
    assert_eq!(m["probe_requests"].value, 1);
    assert_eq!(m["probe_gauge"].value, 3);
    assert_eq!(m["probe_hist"].kind, MetricKind::Histogram);
    assert_eq!(m["probe_hist"].samples, vec![7]);
}

#[test]
fn metrics_with_the_same_name_are_shared_by_vms_of_a_process() {
    let host = Host::new();
    let a = probe_vm(&host, "");
    let b = probe_vm(&host, "");
    a.request(&probe_headers("metric"));
    b.request(&probe_headers("metric"));
    assert_eq!(host.metric_value("probe_requests"), Some(2));
}

#[test]
fn shared_queue_notifies_the_last_registrant_on_another_worker() {
    let host = Host::new();
    let workers = host
        .vm(&probe())
        .vm_id("q")
        .plugin_config("queue=events")
        .start_workers(2)
        .unwrap();
    // Both workers registered; the last one (worker 1) owns the notifications.
    workers[0].request(&probe_headers("enqueue:q/events=hello"));
    assert!(workers[0].logged("enqueue events Ok(())"));
    assert!(
        workers[1].logged("item hello"),
        "{:?}",
        workers[1].log_messages()
    );
    assert!(!workers[0].logged("item hello"));
    workers[0].request(&probe_headers("enqueue:other/events=x"));
    assert!(workers[0].logged("enqueue events not found"));
}

#[test]
fn shared_data_cas_is_one_process_wide_counter() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    vm.request(&probe_headers("shared-set:a=1,shared-set:b=2"));
    assert_eq!(host.shared_data("", "a").map(|e| e.cas), Some(1));
    assert_eq!(host.shared_data("", "b").map(|e| e.cas), Some(2));
}
