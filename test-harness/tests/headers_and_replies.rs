//! Request headers, mutation, local replies, time and properties.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use proxy_wasm_harness::{Host, Outcome, property};
use std::time::{Duration, UNIX_EPOCH};

#[test]
fn request_headers_are_normalised_like_envoy() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    let out = s.request_headers(
        &[
            ("x-probe", "dump"),
            (":method", "GET"),
            ("Host", "svc"),
            (":path", "/a"),
            ("Transfer-Encoding", "chunked"),
            ("X-Client", "1"),
        ],
        true,
    );
    assert_eq!(out, Outcome::Continue);
    let names: Vec<String> = s
        .request_headers_now()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        names,
        vec![
            ":authority",
            ":path",
            ":method",
            ":scheme",
            "x-probe",
            "x-client",
            "x-forwarded-proto",
            "x-request-id"
        ]
    );
    assert!(vm.logged("hdr :authority=svc"));
}

#[test]
fn header_mutations_reach_upstream() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    let mut h = probe_headers("mutate");
    h.push(("authorization", "Bearer x"));
    h.push(("x-replaced", "old"));
    h.push(("x-replaced", "older"));
    h.push(("x-multi", "first"));
    assert_eq!(s.request_headers(&h, true), Outcome::Continue);
    let up = s.upstream_request();
    assert!(up.complete);
    assert_eq!(up.header("x-added"), Some("1"));
    assert_eq!(up.header("authorization"), None);
    let headers = up.headers.clone().unwrap();
    assert_eq!(headers.iter().filter(|(k, _)| k == "x-replaced").count(), 1);
    assert_eq!(up.header("x-replaced"), Some("new"));
    let multi: Vec<_> = headers
        .iter()
        .filter(|(k, _)| k == "x-multi")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(multi, vec!["first", "second"]);
    // A pseudo-header added later still sits among the pseudo-headers.
    let pos_pseudo = headers
        .iter()
        .position(|(k, _)| k == ":pseudo-added")
        .unwrap();
    let first_regular = headers
        .iter()
        .position(|(k, _)| !k.starts_with(':'))
        .unwrap();
    assert!(pos_pseudo < first_regular);
}

#[test]
fn set_header_map_pairs_replaces_everything() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("set-all"), true);
    assert_eq!(
        s.request_headers_now(),
        vec![
            (":method".to_string(), "POST".to_string()),
            (":path".to_string(), "/replaced".to_string()),
            (":authority".to_string(), "svc".to_string()),
            ("x-only".to_string(), "yes".to_string()),
        ]
    );
}

#[test]
fn get_header_returns_the_first_value_and_none_when_missing() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    let mut h = probe_headers("get:x-dup,get:x-missing");
    h.push(("x-dup", "one"));
    h.push(("X-Dup", "two"));
    s.request_headers(&h, true);
    assert_eq!(
        s.request_header("x-probe-get-x-dup").as_deref(),
        Some("one")
    );
    assert_eq!(
        s.request_header("x-probe-get-x-missing").as_deref(),
        Some("none")
    );
}

#[test]
fn local_reply_is_built_after_the_callback_and_passes_through_response_callbacks() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    let out = s.request_headers(&probe_headers("deny"), true);
    let Outcome::LocalReply {
        status,
        headers,
        body,
    } = &out
    else {
        panic!("expected local reply, got {out:?}");
    };
    assert_eq!(*status, 403);
    assert_eq!(body, b"denied by probe");
    assert_eq!(headers[0], (":status".to_string(), "403".to_string()));
    // Names lowercased, values kept.
    assert_eq!(out.header("x-probe"), Some("denied"));
    assert_eq!(out.header("www-authenticate"), Some("Bearer realm=\"x\""));
    // Envoy adds content-length and content-type before the filter's on_response_headers.
    assert_eq!(out.header("content-length"), Some("15"));
    assert_eq!(out.header("content-type"), Some("text/plain"));
    assert!(vm.logged(
        "response headers n=5 eos=false status=403 content-type=text/plain content-length=15"
    ));
    assert!(vm.logged("response body size=15 eos=true"));
    // The filter's own response callback touched the reply.
    assert_eq!(out.header("x-probe-response"), Some("seen"));
    // Nothing went upstream; the stream ended.
    assert_eq!(s.upstream_request().headers, None);
    assert!(s.finished());
    assert!(vm.logged("on_log ctx=2"));
}

#[test]
fn local_reply_keeps_the_filters_content_type() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let out = vm.request(&probe_headers("deny-json"));
    assert_eq!(out.http_status(), Some(400));
    assert_eq!(out.header("content-type"), Some("application/json"));
    assert_eq!(out.body_text().as_deref(), Some("{\"error\":\"bad\"}"));
}

#[test]
fn local_reply_without_body_skips_the_body_callback() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let out = vm.request(&probe_headers("deny-empty"));
    assert_eq!(out.http_status(), Some(401));
    assert_eq!(out.header("content-type"), None);
    assert!(vm.logged("response headers n=1 eos=true status=401 content-type= content-length="));
    assert!(!vm.logged("response body"));
}

#[test]
fn local_reply_before_the_request_body_closes_the_connection() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    let out = s.request_headers(&probe_headers("deny"), false);
    assert_eq!(out.header("connection"), Some("close"));
}

#[test]
fn second_local_reply_is_ignored_and_the_first_wins() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let out = vm.request(&probe_headers("deny-twice"));
    assert_eq!(out.http_status(), Some(403));
    assert!(vm.logged("second local reply Ok(())"));
    assert!(
        vm.violations()
            .iter()
            .any(|v| v.hostcall == "proxy_send_local_response")
    );
}

#[test]
fn current_time_is_the_virtual_clock() {
    let host = Host::new();
    host.set_time(UNIX_EPOCH + Duration::from_secs(1_234));
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("time"), true);
    assert_eq!(
        s.request_header("x-probe-now").as_deref(),
        Some("1234000000000")
    );
    host.advance(Duration::from_millis(1500));
    let mut s2 = vm.http_stream();
    s2.request_headers(&probe_headers("time"), true);
    assert_eq!(
        s2.request_header("x-probe-now").as_deref(),
        Some("1235500000000")
    );
}

#[test]
fn properties_set_per_stream_and_missing_ones() {
    let host = Host::new();
    let vm = host
        .vm(&probe())
        .property(&["xds", "cluster_name"], "backend")
        .start()
        .unwrap();
    let mut s = vm.http_stream();
    s.set_property(&["xds", "route_name"], "r1");
    s.set_property(&["xds", "empty"], "");
    s.request_headers(
        &probe_headers(
            "prop:xds.route_name,prop:xds.cluster_name,prop:xds.empty,prop:route_name,prop:request.path,prop:plugin_name",
        ),
        true,
    );
    let hex = |s: &str| {
        format!(
            "hex:{}",
            s.bytes().map(|b| format!("{b:02x}")).collect::<String>()
        )
    };
    assert_eq!(
        s.request_header("x-probe-prop-xds.route_name"),
        Some(hex("r1"))
    );
    assert_eq!(
        s.request_header("x-probe-prop-xds.cluster_name"),
        Some(hex("backend"))
    );
    // Empty: Ok with no data, which the Rust SDK reports as None.
    assert_eq!(
        s.request_header("x-probe-prop-xds.empty").as_deref(),
        Some("none")
    );
    // Removed top-level name: NotFound.
    assert_eq!(
        s.request_header("x-probe-prop-route_name").as_deref(),
        Some("none")
    );
    assert_eq!(
        s.request_header("x-probe-prop-request.path"),
        Some(hex("/x"))
    );
    assert_eq!(
        s.request_header("x-probe-prop-plugin_name"),
        Some(hex("plugin"))
    );
}

#[test]
fn integer_properties_use_eight_byte_little_endian() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.set_property(&["my", "int"], property::int(200));
    s.request_headers(&probe_headers("prop:my.int,prop:source.port"), true);
    assert_eq!(
        s.request_header("x-probe-prop-my.int").as_deref(),
        Some("hex:c800000000000000")
    );
    assert_eq!(
        s.request_header("x-probe-prop-source.port").as_deref(),
        Some("hex:50c3000000000000")
    );
}

#[test]
fn set_property_is_readable_back_and_visible_to_the_test() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers("setprop:decision=allow,prop:decision"), true);
    assert_eq!(
        s.request_header("x-probe-prop-decision").as_deref(),
        Some("hex:616c6c6f77")
    );
    assert_eq!(
        s.filter_state().get("decision").map(|v| v.as_slice()),
        Some(&b"allow"[..])
    );
}

#[test]
fn pause_holds_the_request() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    assert_eq!(
        s.request_headers(&probe_headers("pause"), true),
        Outcome::Paused
    );
    assert_eq!(s.upstream_request().headers, None);
}

#[test]
fn reset_from_the_filter() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let out = vm.request(&probe_headers("reset"));
    assert!(matches!(out, Outcome::Reset { .. }), "{out:?}");
}

#[test]
fn local_reply_to_head_sends_headers_only() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let out = vm.request(&[
        (":method", "HEAD"),
        (":path", "/"),
        (":authority", "svc"),
        ("x-probe", "deny"),
    ]);
    assert_eq!(out.http_status(), Some(403));
    assert_eq!(out.header("content-length"), Some("15"));
    assert_eq!(out.body_text().as_deref(), Some(""));
    assert!(vm.logged("response headers n=5 eos=true status=403"));
    assert!(!vm.logged("response body"));
}

#[test]
fn report_lists_violations_and_costs() {
    let host = Host::new();
    let vm = probe_vm(&host, "a=1");
    vm.request(&probe_headers("cfg-late"));
    let r = vm.report();
    assert!(r.contains("proxy_get_buffer_bytes -> NotFound"), "{r}");
    assert!(r.contains("on_request_headers ctx 2: fuel"), "{r}");
}
