//! Request/response bodies, buffering, trailers, response path.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use proxy_wasm_harness::{Host, Outcome};

fn body_logs(vm: &proxy_wasm_harness::Vm) -> Vec<String> {
    vm.log_messages()
        .into_iter()
        .filter(|m| m.starts_with("request body"))
        .collect()
}

#[test]
fn streaming_body_with_continue_ends_with_an_empty_call() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    assert_eq!(s.request_headers(&GET, false), Outcome::Continue);
    assert!(!s.upstream_request().complete);
    assert_eq!(s.send_request_body(&[b"ab", b"cd"]), Outcome::Continue);
    assert_eq!(
        body_logs(&vm),
        vec![
            "request body size=2 eos=false",
            "request body size=2 eos=false",
            "request body size=0 eos=true",
            "request body content="
        ]
    );
    let up = s.upstream_request();
    assert_eq!(up.body, b"abcd");
    assert!(up.complete);
}

#[test]
fn paused_body_is_buffered_with_cumulative_sizes() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("body-buffer"), false);
    assert_eq!(s.request_body(b"ab", false), Outcome::Paused);
    assert_eq!(s.request_body(b"cd", false), Outcome::Paused);
    assert!(s.upstream_request().body.is_empty());
    assert_eq!(s.request_body(b"", true), Outcome::Continue);
    assert_eq!(
        body_logs(&vm),
        vec![
            "request body size=2 eos=false",
            "request body size=4 eos=false",
            "request body size=4 eos=true",
            "request body content=abcd"
        ]
    );
    assert_eq!(s.upstream_request().body, b"abcd");
}

#[test]
fn buffered_body_can_be_replaced() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("body-buffer,body-replace"), false);
    s.send_request_body(&[b"secret", b"data"]);
    assert_eq!(s.upstream_request().body, b"replaced");
}

#[test]
fn local_reply_from_the_body_callback() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("body-buffer,body-deny"), false);
    let out = s.send_request_body(&[b"abc", b"de"]);
    assert_eq!(out.http_status(), Some(413));
    assert_eq!(out.body_text().as_deref(), Some("body of 5 bytes"));
    assert_eq!(out.header("connection"), None);
}

#[test]
fn body_behind_paused_headers_is_held_until_continue() {
    let host = Host::new();
    host.cluster("auth");
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    assert_eq!(
        s.request_headers(&probe_headers("callout:auth"), false),
        Outcome::Paused
    );
    s.send_request_body(&[b"ab", b"cd"]);
    assert!(body_logs(&vm).is_empty(), "{:?}", body_logs(&vm));
    vm.pending_callouts()
        .remove(0)
        .respond(&[(":status", "200")], b"");
    assert_eq!(
        body_logs(&vm),
        vec!["request body size=4 eos=true", "request body content=abcd"]
    );
    let up = s.upstream_request();
    assert_eq!(up.header("x-probe-auth"), Some("ok"));
    assert_eq!(up.body, b"abcd");
    assert!(up.complete);
}

#[test]
fn exceeding_the_buffer_limit_resets_the_stream() {
    let host = Host::new();
    let vm = host.vm(&probe()).buffer_limit(10).start().unwrap();
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("body-buffer"), false);
    s.request_body(b"12345678", false);
    let out = s.request_body(b"12345678", false);
    assert!(matches!(out, Outcome::Reset { .. }), "{out:?}");
    assert!(s.finished());
}

#[test]
fn trailers_end_the_request() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&GET, false);
    s.request_body(b"x", false);
    assert_eq!(
        s.request_trailers(&[("grpc-status", "0")]),
        Outcome::Continue
    );
    assert!(vm.logged("request trailers n=1"));
    let up = s.upstream_request();
    assert!(up.complete);
    assert_eq!(
        up.trailers,
        Some(vec![("grpc-status".to_string(), "0".to_string())])
    );
}

#[test]
fn response_path_reaches_the_client() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&GET, true);
    assert_eq!(
        s.response_headers(&[(":status", "200"), ("Content-Type", "text/html")], false),
        Outcome::Continue
    );
    s.send_response_body(&[b"<p>", b"hi"]);
    let down = s.downstream_response();
    assert_eq!(down.header("x-probe-response"), Some("seen"));
    assert_eq!(down.header("content-type"), Some("text/html"));
    assert_eq!(down.body, b"<p>hi");
    assert!(down.complete);
}

#[test]
fn paused_response_headers_hold_the_body_away_from_the_filter() {
    // Envoy maps Pause from a headers callback to StopAllIterationAndWatermark:
    // the body is buffered and the filter is not called until it continues.
    // A filter that waits for a body callback to resume never resumes.
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("resp-pause"), true);
    assert_eq!(
        s.response_headers(&[(":status", "200")], false),
        Outcome::Paused
    );
    assert_eq!(s.send_response_body(&[b"data"]), Outcome::Paused);
    assert!(!vm.logged("response body"));
    assert!(s.downstream_response().headers.is_none());
}

#[test]
fn request_headers_are_gone_once_the_headers_callback_continued() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("late-pairs"), true);
    s.response_headers(&[(":status", "200")], true);
    // get_header_map_pairs: Ok and empty.
    assert!(vm.logged("late request headers: 0"));
    assert!(
        vm.violations()
            .iter()
            .any(|v| v.hostcall == "proxy_get_header_map_pairs")
    );
    // get_header_map_value: BadArgument, on which the Rust SDK panics.
    let mut s2 = vm.http_stream();
    s2.request_headers(&probe_headers("late-read"), true);
    let out = s2.response_headers(&[(":status", "200")], true);
    match out {
        Outcome::Failed { message } => {
            assert!(message.contains("unexpected status: 2"), "{message}")
        }
        other => panic!("expected failure, got {other:?}"),
    }
}

#[test]
fn plugin_configuration_is_not_readable_outside_on_configure() {
    let host = Host::new();
    let vm = probe_vm(&host, "a=1");
    vm.request(&probe_headers("cfg-late"));
    assert!(vm.logged("late config Ok(None)"));
    assert!(
        vm.violations()
            .iter()
            .any(|v| v.detail.contains("plugin configuration"))
    );
}

#[test]
fn with_allow_on_headers_stop_iteration_the_body_reaches_the_paused_filter() {
    let host = Host::new();
    let vm = host
        .vm(&probe())
        .allow_on_headers_stop_iteration(true)
        .start()
        .unwrap();
    let mut s = vm.http_stream();
    assert_eq!(
        s.request_headers(&probe_headers("pause"), false),
        Outcome::Paused
    );
    // The probe's body callback returns Continue, which resumes the request.
    assert_eq!(s.request_body(b"xy", true), Outcome::Continue);
    assert!(vm.logged("request body size=2 eos=true"));
    let up = s.upstream_request();
    assert!(up.headers.is_some());
    assert_eq!(up.body, b"xy");
}
