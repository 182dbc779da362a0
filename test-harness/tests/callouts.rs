//! HTTP callouts: dispatch rules, answers, failures, timeouts on the virtual clock.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use proxy_wasm_harness::{Host, Outcome, UpstreamReply};
use std::time::Duration;

#[test]
fn unknown_cluster_is_bad_argument() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let out = vm.request(&probe_headers("callout:nope"));
    assert_eq!(out, Outcome::Continue);
    assert!(vm.logged("callout dispatch Err(BadArgument)"));
    assert!(vm.pending_callouts().is_empty());
}

#[test]
fn missing_path_is_bad_argument() {
    let host = Host::new();
    host.cluster("auth");
    let vm = probe_vm(&host, "");
    vm.request(&probe_headers("callout-bad:auth"));
    assert!(vm.logged("callout dispatch Err(BadArgument)"));
}

#[test]
fn pending_callout_answered_by_the_test_resumes_the_request() {
    let host = Host::new();
    host.cluster("auth");
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    assert_eq!(
        s.request_headers(&probe_headers("callout:auth"), true),
        Outcome::Paused
    );
    let calls = vm.pending_callouts();
    assert_eq!(calls.len(), 1);
    let c = calls.into_iter().next().unwrap();
    assert_eq!(c.token, 4);
    assert_eq!(c.cluster(), "auth");
    assert_eq!(c.header(":path"), Some("/check"));
    assert_eq!(c.header("x-envoy-internal"), Some("true"));
    assert_eq!(c.header("x-envoy-expected-rq-timeout-ms"), Some("500"));
    assert_eq!(c.header("content-length"), Some("4"));
    assert_eq!(c.request.body, b"ping");
    assert_eq!(c.request.timeout, Some(Duration::from_millis(500)));
    assert!(c.respond(&[(":status", "200"), ("x-a", "b")], b"fine"));
    assert_eq!(s.request_outcome(), Outcome::Continue);
    let up = s.upstream_request();
    assert_eq!(up.header("x-probe-auth"), Some("ok"));
    assert!(up.complete);
    assert!(vm.logged("callout response token=4 headers=2 body_size=4 trailers=0 status=200 body=fine get_status=0:"));
    // Delivered on the root context.
    assert!(
        vm.callback_stats()
            .iter()
            .any(|c| c.callback == "on_http_call_response" && c.context_id == 1)
    );
    assert!(vm.pending_callouts().is_empty());
}

#[test]
fn tokens_are_multiples_of_four() {
    let host = Host::new();
    host.cluster("auth");
    let vm = probe_vm(&host, "");
    let mut a = vm.http_stream();
    let mut b = vm.http_stream();
    a.request_headers(&probe_headers("callout:auth"), true);
    b.request_headers(&probe_headers("callout:auth"), true);
    let tokens: Vec<u32> = vm.pending_callouts().iter().map(|c| c.token).collect();
    assert_eq!(tokens, vec![4, 8]);
}

#[test]
fn reset_callout_gives_zero_headers_and_broken_connection_status() {
    let host = Host::new();
    host.cluster("auth");
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("callout:auth"), true);
    vm.pending_callouts().remove(0).fail();
    assert!(vm.logged("headers=0 body_size=0 trailers=0 status= body= get_status=11:reset"));
    let out = s.request_outcome();
    assert_eq!(out.http_status(), Some(503));
    assert_eq!(out.body_text().as_deref(), Some("auth unavailable"));
}

#[test]
fn timeout_fires_on_the_virtual_clock_with_a_synthesized_504() {
    let host = Host::new();
    host.cluster("auth");
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("callout:auth"), true);
    host.advance(Duration::from_millis(499));
    assert_eq!(vm.pending_callouts().len(), 1);
    assert_eq!(s.request_outcome(), Outcome::Paused);
    host.advance(Duration::from_millis(1));
    assert!(vm.pending_callouts().is_empty());
    assert!(
        vm.logged("headers=3 body_size=24 trailers=0 status=504 body=upstream request timeout")
    );
    assert_eq!(s.request_outcome().http_status(), Some(503));
}

#[test]
fn connect_failure_is_a_synthesized_503() {
    let host = Host::new();
    host.cluster("auth");
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("callout:auth"), true);
    vm.pending_callouts().remove(0).connect_failure();
    assert!(vm.logged("headers=3"));
    assert!(vm.logged("status=503 body=upstream connect error or disconnect/reset before headers"));
}

#[test]
fn scripted_upstream_answers_after_the_callback() {
    let host = Host::new();
    host.cluster("auth").respond_with(|req| {
        assert_eq!(req.header(":authority"), Some("auth.local"));
        UpstreamReply::status(200, &[("x-user", "alice")], b"{}")
    });
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    let out = s.request_headers(&probe_headers("callout:auth"), true);
    assert_eq!(out, Outcome::Continue);
    assert_eq!(s.upstream_request().header("x-probe-auth"), Some("ok"));
}

#[test]
fn scripted_upstream_latency_and_timeouts_race_on_the_clock() {
    let host = Host::new();
    host.cluster("fast")
        .respond_with(|_| UpstreamReply::status(200, &[], b"").after(Duration::from_millis(100)));
    host.cluster("slow")
        .respond_with(|_| UpstreamReply::status(200, &[], b"").after(Duration::from_millis(900)));
    let vm = probe_vm(&host, "");
    let mut fast = vm.http_stream();
    let mut slow = vm.http_stream();
    assert_eq!(
        fast.request_headers(&probe_headers("callout:fast"), true),
        Outcome::Paused
    );
    assert_eq!(
        slow.request_headers(&probe_headers("callout:slow"), true),
        Outcome::Paused
    );
    host.advance(Duration::from_millis(100));
    assert_eq!(fast.request_outcome(), Outcome::Continue);
    assert_eq!(slow.request_outcome(), Outcome::Paused);
    host.advance(Duration::from_secs(1));
    // The 500 ms timeout beat the 900 ms upstream.
    assert_eq!(slow.request_outcome().http_status(), Some(503));
    assert!(vm.logged("status=504"));
}

#[test]
fn answer_after_the_stream_is_gone_is_harmless() {
    let host = Host::new();
    host.cluster("auth");
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("callout:auth"), true);
    s.finish();
    assert!(
        vm.pending_callouts()
            .remove(0)
            .respond(&[(":status", "200")], b"")
    );
    assert!(vm.alive());
}

#[test]
fn root_context_callouts_from_ticks() {
    let host = Host::new();
    host.cluster("auth")
        .respond_with(|_| UpstreamReply::status(204, &[], b""));
    let vm = probe_vm(&host, "tick_ms=100;tick_callout=auth");
    host.advance(Duration::from_millis(100));
    assert!(vm.logged("tick callout Ok(4)"));
    assert!(
        vm.logged("root callout response token=4 headers=1 body=0 trailers=0 status=Some(\"204\")")
    );
}
