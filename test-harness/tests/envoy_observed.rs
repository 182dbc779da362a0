//! Envoy 1.40 behaviours found by the differential test (`envoy/tests/test_differential.py`,
//! the same filter and request through the harness and through real Envoy), pinned here.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use proxy_wasm_harness::{Host, Outcome, UpstreamReply};

fn names(pairs: &[(String, String)]) -> Vec<&str> {
    pairs.iter().map(|(k, _)| k.as_str()).collect()
}

/// Envoy's `setCopy` removes every value and appends the new one: a replaced header
/// moves to the end, in the map the filter sees and in what goes upstream.
#[test]
fn replaced_header_moves_to_the_end() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    let mut h = probe_headers("mutate");
    h.push(("x-replaced", "old"));
    h.push(("x-multi", "first"));
    h.push(("x-replaced", "older"));
    h.push(("x-last", "1"));
    assert_eq!(s.request_headers(&h, true), Outcome::Continue);
    let up = s.upstream_request().headers.unwrap();
    let regular: Vec<&str> = names(&up)
        .into_iter()
        .filter(|k| !k.starts_with(':'))
        .collect();
    // Envoy: ... x-request-id, x-added, x-replaced, x-multi (the probe adds x-added,
    // replaces x-replaced, then adds a second x-multi).
    assert_eq!(
        regular,
        vec![
            "x-probe",
            "x-multi",
            "x-last",
            "x-forwarded-proto",
            "x-request-id",
            "x-added",
            "x-replaced",
            "x-multi"
        ]
    );
    assert_eq!(s.upstream_request().header("x-replaced"), Some("new"));
}

/// Envoy's request header map resolves `host` to `:authority`.
#[test]
fn host_lookup_finds_the_authority() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    let h = vec![
        (":method", "GET"),
        (":path", "/"),
        ("host", "svc.example"),
        ("x-probe", "get:host"),
    ];
    assert_eq!(s.request_headers(&h, true), Outcome::Continue);
    assert_eq!(
        s.request_header("x-probe-get-host").as_deref(),
        Some("svc.example")
    );
}

/// Any local reply with status 400 on an HTTP/1 connection drains it (Envoy's
/// `onLocalReply(BadRequest)`): `connection: close`, although the request had ended.
#[test]
fn local_reply_with_400_closes_the_connection() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let out = vm.request(&probe_headers("deny-json"));
    assert_eq!(out.http_status(), Some(400));
    assert_eq!(out.header("connection"), Some("close"));
    // Added by the connection manager after the filter: not in what the filter saw.
    assert!(vm.logged(
        "response headers n=3 eos=false status=400 content-type=application/json content-length=15"
    ));
    // Other statuses keep the connection when the request had ended.
    let out = vm.request(&probe_headers("deny"));
    assert_eq!(out.header("connection"), None);
}

/// A filter that changed the request headers cleared the route cache; Envoy looks the
/// route up again and, without `x-forwarded-proto`, finds none: the router's 404
/// (empty body) passes through the filter's response callbacks.
#[test]
fn replacing_the_header_map_without_x_forwarded_proto_loses_the_route() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream();
    let out = s.request_headers(&probe_headers("set-all"), true);
    let Outcome::LocalReply {
        status,
        headers,
        body,
    } = &out
    else {
        panic!("expected the router's 404, got {out:?}");
    };
    assert_eq!(*status, 404);
    assert!(body.is_empty());
    assert_eq!(
        headers,
        &vec![
            (":status".to_string(), "404".to_string()),
            ("x-probe-response".to_string(), "seen".to_string()),
        ]
    );
    assert!(vm.logged("response headers n=1 eos=true status=404 content-type= content-length="));
    assert_eq!(s.upstream_request().headers, None);

    // The same with malformed pairs (read as none: the map is emptied).
    let out = vm.request(&probe_headers("badptr"));
    assert_eq!(out.http_status(), Some(404));

    // Mutations that keep x-forwarded-proto are routed as before.
    assert_eq!(vm.request(&probe_headers("mutate")), Outcome::Continue);
}

/// Without mutations the route stays cached: headers passed as given (no
/// normalisation, so no x-forwarded-proto) still go upstream.
#[test]
fn unchanged_headers_keep_their_route() {
    let host = Host::new();
    let vm = probe_vm(&host, "");
    let mut s = vm.http_stream().raw_headers();
    assert_eq!(
        s.request_headers(&probe_headers("dump"), true),
        Outcome::Continue
    );
    assert!(s.upstream_request().complete);
}

/// A callout to an endpoint that refuses the connection: Envoy's synthesized 503 body.
#[test]
fn connect_failure_body_is_envoys() {
    let host = Host::new();
    host.cluster("auth")
        .respond_with(|_| UpstreamReply::ConnectFailure);
    let vm = probe_vm(&host, "");
    let out = vm.request(&probe_headers("callout:auth"));
    assert_eq!(out.http_status(), Some(503));
    assert!(
        vm.logged(
            "callout response token=4 headers=3 body_size=98 trailers=0 status=503 \
             body=upstream connect error or disconnect/reset before headers. \
             reset reason: remote connection failure get_status=0:"
        ),
        "{:?}",
        vm.log_messages()
    );
}
