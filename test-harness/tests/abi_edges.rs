//! ABI edges: bad guest pointers, WASI, response-phase local replies.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use proxy_wasm_harness::{Host, LogLevel, Outcome};

#[test]
fn bad_pointers_get_invalid_memory_access_and_never_trap() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let out = vm.request(&probe_headers("badptr"));
    // The malformed pairs emptied the request header map: no x-forwarded-proto left,
    // so Envoy finds no route (404), as it does for this fixture.
    assert_eq!(out.http_status(), Some(404));
    // 6 = InvalidMemoryAccess, 2 = BadArgument, 0 = Ok (malformed pairs read as none).
    assert!(
        vm.logged("badptr log=6 prop_path=6 prop_ret=6 header_key=6 log_level=2 malformed_pairs=0"),
        "{:?}",
        vm.log_messages()
    );
    assert!(vm.alive());
}

#[test]
fn wasi_stdout_and_stderr_become_logs_and_clocks_use_the_virtual_time() {
    let host = Host::new();
    let m = load("fixture_wasi");
    assert!(
        m.imports()
            .iter()
            .any(|i| i.module == "wasi_snapshot_preview1")
    );
    assert_eq!(
        m.non_proxy_imports().len(),
        m.imports().iter().filter(|i| i.module != "env").count()
    );
    let vm = host.vm(&m).start().unwrap();
    let logs = vm.logs();
    // WASI is allowed during module start, as in Envoy.
    assert!(
        logs.iter()
            .any(|l| l.message == "stdout during start" && l.level == LogLevel::Info)
    );
    assert!(
        logs.iter()
            .any(|l| l.message == "oops stderr" && l.level == LogLevel::Error)
    );
    assert!(
        vm.logged("wasi fd_write=0/13 stderr=0 badfd=8 clock=0:1700000000000000000 random=0:true environ=0:0:0"),
        "{:?}",
        vm.log_messages()
    );
}

#[test]
fn local_reply_from_response_headers_is_sent_directly() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("resp-deny"), true);
    let out = s.response_headers(&[(":status", "200"), ("x-upstream", "1")], false);
    assert_eq!(out.http_status(), Some(502));
    assert_eq!(out.header("x-from"), Some("response"));
    assert_eq!(out.header("x-upstream"), None);
    assert_eq!(out.body_text().as_deref(), Some("bad gateway by probe"));
    // Not passed through the filter a second time.
    assert_eq!(
        vm.log_messages()
            .iter()
            .filter(|m| m.starts_with("response headers"))
            .count(),
        1
    );
}

#[test]
fn local_reply_after_response_headers_went_out_resets_the_stream() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("resp-body-deny"), true);
    assert_eq!(
        s.response_headers(&[(":status", "200")], false),
        Outcome::Continue
    );
    let out = s.response_body(b"data", true);
    assert!(matches!(out, Outcome::Reset { .. }), "{out:?}");
}
