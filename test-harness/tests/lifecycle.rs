//! VM start, configuration, logs, stream lifecycle, failures.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use proxy_wasm_harness::{Host, LogLevel, Module, Outcome};

#[test]
fn probe_imports_only_proxy_functions() {
    let m = probe();
    assert!(
        m.non_proxy_imports().is_empty(),
        "{:?}",
        m.non_proxy_imports()
    );
    assert!(m.imports().iter().any(|i| i.name == "proxy_log"));
    assert!(m.exports().iter().any(|e| e == "proxy_abi_version_0_2_1"));
}

#[test]
fn startup_runs_vm_start_then_configure_with_their_buffers() {
    let host = Host::new();
    let vm = host
        .vm(&probe())
        .vm_config("vmcfg")
        .plugin_config("a=1")
        .start()
        .unwrap();
    assert!(vm.configured());
    let logs = vm.log_messages();
    assert_eq!(logs[0], "vm_start size=5 config=vmcfg");
    assert_eq!(logs[1], "configure size=3 present=true config=a=1");
}

#[test]
fn no_plugin_configuration_has_size_zero_and_reads_as_none() {
    let host = Host::new();
    let vm = host.vm(&probe()).start().unwrap();
    assert!(vm.logged("configure size=0 present=false config="));
}

#[test]
fn configure_returning_false_is_reported() {
    let host = Host::new();
    let vm = probe_vm(&host, "configure=false");
    assert!(!vm.configured());
    assert!(vm.alive());
}

#[test]
fn panic_in_configure_rejects_the_config_and_kills_the_vm() {
    let host = Host::new();
    let vm = probe_vm(&host, "panic-configure");
    assert!(!vm.configured());
    let f = vm.failure().expect("failure recorded");
    assert!(f.contains("probe: panic in on_configure"), "{f}");
}

#[test]
fn host_call_during_module_start_fails_like_v8() {
    let host = Host::new();
    let m = load("fixture_init_hostcall");
    let err = host.vm(&m).start().expect_err("must fail").to_string();
    assert!(err.contains("module start"), "{err}");
    assert!(err.contains("proxy_define_metric"), "{err}");
}

#[test]
fn module_without_abi_version_is_rejected() {
    // A minimal hand-written module: (module (memory (export "memory") 1))
    let bytes: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x05, 0x03, 0x01, 0x00, 0x01, 0x07, 0x0a,
        0x01, 0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00,
    ];
    let m = Module::from_bytes("empty", bytes).unwrap();
    let err = Host::new()
        .vm(&m)
        .start()
        .expect_err("rejected")
        .to_string();
    assert!(err.contains("proxy_abi_version"), "{err}");
}

#[test]
fn logs_are_filtered_by_level_and_formatted_like_envoy() {
    let host = Host::new();
    let vm = host
        .vm(&probe())
        .plugin_name("probe")
        .root_id("r")
        .vm_id("v")
        .log_level(LogLevel::Warn)
        .start()
        .unwrap();
    vm.request(&probe_headers("log"));
    let lines: Vec<_> = vm
        .logs()
        .into_iter()
        .filter(|l| l.message.starts_with("probe "))
        .collect();
    assert_eq!(
        lines.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
        vec!["probe warn", "probe error"]
    );
    assert_eq!(lines[0].envoy_line, "wasm log probe r v: probe warn");
    assert_eq!(
        vm.all_logs()
            .iter()
            .filter(|l| l.message == "probe trace")
            .count(),
        1
    );
    // Root-context lines carry no plugin name.
    let root = vm
        .all_logs()
        .into_iter()
        .find(|l| l.context_id == 1)
        .unwrap();
    assert!(
        root.envoy_line.starts_with("wasm log r v: "),
        "{}",
        root.envoy_line
    );
}

#[test]
fn stream_ids_are_sequential_and_never_reused() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut a = vm.http_stream();
    let mut b = vm.http_stream();
    assert_eq!((a.id(), b.id()), (2, 3));
    a.finish();
    b.finish();
    assert_eq!(vm.http_stream().id(), 4);
}

#[test]
fn stream_end_runs_log_done_delete_in_order() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&GET, true);
    s.finish();
    let cbs: Vec<String> = s.callback_stats().into_iter().map(|c| c.callback).collect();
    assert_eq!(
        cbs,
        vec![
            "on_context_create",
            "on_request_headers",
            "on_log",
            "on_done",
            "on_delete"
        ]
    );
    assert!(s.finished());
    assert!(vm.logged("on_log ctx=2"));
}

#[test]
fn drop_finishes_the_stream() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    {
        let mut s = vm.http_stream();
        s.request_headers(&GET, true);
    }
    assert!(vm.logged("on_log ctx=2"));
}

#[test]
fn a_dropped_finished_stream_is_forgotten_but_a_live_handle_keeps_its_state() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut kept = vm.http_stream();
    kept.request_headers(&GET, true);
    kept.finish();
    for _ in 0..100 {
        vm.request(&GET);
    }
    // Only the stream whose handle is alive is held (finished, inspectable).
    assert_eq!(vm.streams_held(), 1);
    assert!(kept.finished());
    assert!(!kept.callback_stats().is_empty());
    drop(kept);
    assert_eq!(vm.streams_held(), 0);
    assert_eq!(vm.http_stream().id(), 103, "ids are still never reused");
}

#[test]
fn panic_in_a_stream_fails_it_and_every_later_stream_gets_503() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let out = vm.request(&probe_headers("panic"));
    match &out {
        Outcome::Failed { message } => {
            assert!(message.contains("probe: asked to panic"), "{message}")
        }
        other => panic!("expected failure, got {other:?}"),
    }
    assert_eq!(out.http_status(), Some(503));
    assert!(!vm.alive());
    let later = vm.request(&GET);
    assert!(matches!(later, Outcome::Failed { .. }));
    assert_eq!(later.http_status(), Some(503));
    // The filter is never called again.
    assert!(!vm.all_logs().iter().any(|l| l.message.contains("ctx=3")));
}

#[test]
fn separate_hosts_are_independent() {
    let h1 = Host::new();
    let h2 = Host::new();
    let v1 = probe_vm(&h1, "");
    let v2 = probe_vm(&h2, "");
    v1.request(&probe_headers("metric"));
    assert_eq!(h1.metric_value("probe_requests"), Some(1));
    assert_eq!(h2.metric_value("probe_requests"), Some(0));
    drop(v2);
}

#[test]
fn module_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Module>();
    let m = probe();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                let host = Host::new();
                let vm = host.vm(&m).start().unwrap();
                vm.request(&probe_headers("metric"));
                host.metric_value("probe_requests")
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Some(1));
    }
}

#[test]
fn shutdown_runs_on_done_and_on_delete_on_the_root_context() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    assert!(vm.shutdown());
    let cbs: Vec<(String, u32)> = vm
        .callback_stats()
        .into_iter()
        .map(|c| (c.callback, c.context_id))
        .collect();
    assert!(cbs.contains(&("on_done".to_string(), 1)));
    assert!(cbs.contains(&("on_delete".to_string(), 1)));
}
