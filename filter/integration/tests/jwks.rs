//! Remote JWKS through the real scopegate.wasm: fetch, pause and resume,
//! failures, stale keys, rotation, several workers sharing one fetch.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use proxy_wasm_harness::{Callout, Host, Outcome, Vm};
use scopegate_integration::{configured_vm as start, module};

fn host() -> Host {
    let host = scopegate_integration::host();
    host.cluster("auth");
    host
}
use scopegate_testkit::*;
use serde_json::{Value, json};

fn remote_config(extra: Value) -> Value {
    let mut c = config(default_rules());
    let p = &mut c["providers"][0];
    p.as_object_mut().unwrap().remove("jwks");
    let mut remote =
        json!({"cluster": "auth", "authority": "auth.test", "path": "/jwks", "timeout_ms": 2000});
    for (k, v) in extra.as_object().unwrap() {
        remote[k] = v.clone();
    }
    p["remote_jwks"] = remote;
    c
}

/// The JWKS with the RSA key renamed, for rotation tests.
fn jwks_with_rsa_kid(kid: &str) -> String {
    let mut j = jwks();
    j["keys"][0]["kid"] = json!(kid);
    j.to_string()
}

fn headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "GET".into()),
        (":path", "/orders".into()),
        (":authority", "svc-a".into()),
        ("authorization", format!("Bearer {token}")),
    ]
}

fn open(vm: &Vm, token: &str) -> (proxy_wasm_harness::HttpStream, Outcome) {
    let h = headers(token);
    let hs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut s = vm.http_stream();
    let out = s.request_headers(&hs, true);
    (s, out)
}

#[track_caller]
fn one_callout(host: &Host) -> Callout {
    let mut c = host.pending_callouts();
    assert_eq!(c.len(), 1, "expected exactly one JWKS fetch in flight");
    c.remove(0)
}

#[track_caller]
fn reply_reason(out: &Outcome) -> (u32, String) {
    match out {
        Outcome::LocalReply { status, body, .. } => {
            let v: Value = serde_json::from_slice(body).unwrap();
            (*status, v["reason"].as_str().unwrap_or_default().to_owned())
        }
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn token() -> String {
    sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read"))
}

#[test]
fn a_request_before_the_first_fetch_is_paused_and_resumed_when_keys_arrive() {
    let host = host();
    let vm = start(&host, &remote_config(json!({})));
    let (s, out) = open(&vm, &token());
    assert_eq!(out, Outcome::Paused);
    host.advance(Duration::from_millis(250)); // the root's tick starts the fetch
    let fetch = one_callout(&host);
    assert_eq!(fetch.cluster(), "auth");
    assert_eq!(fetch.header(":path"), Some("/jwks"));
    assert_eq!(fetch.header(":authority"), Some("auth.test"));
    assert!(fetch.respond(&[(":status", "200")], jwks().to_string().as_bytes()));
    assert_eq!(
        s.request_outcome(),
        Outcome::Continue,
        "{:?}",
        vm.log_messages()
    );
    assert_eq!(
        s.request_header("x-scopegate-sub").as_deref(),
        Some("alice")
    );
    assert_eq!(host.metric_value("scopegate.jwks.main.fetch_ok"), Some(1));
    // Later requests need no fetch.
    let (_s2, out) = open(&vm, &token());
    assert_eq!(out, Outcome::Continue);
    assert!(host.pending_callouts().is_empty());
    assert!(vm.logged("loaded 5 key(s)"), "{:?}", vm.log_messages());
}

#[test]
fn a_failed_first_fetch_answers_503_and_recovers_when_the_auth_server_is_back() {
    let host = host();
    let vm = start(&host, &remote_config(json!({})));
    let (s, out) = open(&vm, &token());
    assert_eq!(out, Outcome::Paused);
    host.advance(Duration::from_millis(250));
    assert!(one_callout(&host).connect_failure());
    assert_eq!(
        reply_reason(&s.request_outcome()),
        (503, "jwks_unavailable".into())
    );
    assert_eq!(
        host.metric_value("scopegate.jwks.main.fetch_failed"),
        Some(1)
    );
    // While it keeps failing, requests are answered at once, never allowed.
    let (_s, out) = open(&vm, &token());
    assert_eq!(reply_reason(&out), (503, "jwks_unavailable".into()));
    // Backoff: the retry comes about a second later.
    host.advance(Duration::from_millis(1200));
    let retry = one_callout(&host);
    assert!(retry.respond(&[(":status", "500")], b"oops"));
    host.advance(Duration::from_millis(2200));
    let retry = one_callout(&host);
    assert!(retry.respond(&[(":status", "200")], jwks().to_string().as_bytes()));
    let (_s, out) = open(&vm, &token());
    assert_eq!(out, Outcome::Continue);
}

#[test]
fn a_wait_is_bounded_by_the_fetch_timeout() {
    let host = host();
    let vm = start(&host, &remote_config(json!({})));
    let (s, _) = open(&vm, &token());
    host.advance(Duration::from_millis(250));
    let _hanging = one_callout(&host);
    // The callout times out after 2 s (Envoy synthesizes a 504).
    host.advance(Duration::from_millis(2100));
    assert_eq!(
        reply_reason(&s.request_outcome()),
        (503, "jwks_unavailable".into())
    );
}

#[test]
fn stale_keys_are_used_while_refreshes_fail() {
    let host = host();
    let vm = start(&host, &remote_config(json!({"cache_duration_seconds": 60})));
    host.advance(Duration::from_millis(250));
    assert!(one_callout(&host).respond(&[(":status", "200")], jwks().to_string().as_bytes()));
    // Refresh is due before the 60 s expire: fail it, and the next ones.
    host.advance(Duration::from_secs(55));
    assert!(one_callout(&host).timeout());
    host.advance(Duration::from_secs(30));
    for c in host.pending_callouts() {
        assert!(c.connect_failure());
    }
    let (_s, out) = open(&vm, &token());
    assert_eq!(out, Outcome::Continue, "stale keys beat an outage");
    assert!(
        vm.logged("keeping the keys we have"),
        "{:?}",
        vm.log_messages()
    );
    assert!(
        host.metric_value("scopegate.jwks.main.fetch_failed")
            .unwrap()
            >= 2
    );
}

#[test]
fn an_unknown_kid_triggers_one_rate_limited_refetch() {
    let host = host();
    let vm = start(&host, &remote_config(json!({})));
    host.advance(Duration::from_millis(250));
    assert!(one_callout(&host).respond(
        &[(":status", "200")],
        jwks_with_rsa_kid("rsa-old").as_bytes()
    ));
    // The auth server rotated: tokens now name rsa-1, which we don't have.
    let (s, out) = open(&vm, &token());
    assert_eq!(out, Outcome::Paused);
    // The refetch starts on the next tick (at most a second when idle).
    host.advance(Duration::from_millis(1100));
    assert!(one_callout(&host).respond(&[(":status", "200")], jwks().to_string().as_bytes()));
    assert_eq!(s.request_outcome(), Outcome::Continue);
    // Within 30 s of that refetch another unknown kid gets no refetch.
    let bogus = sign("RS256", Some("rsa-bogus"), &claims("svc-a:orders:read"));
    let (_s, out) = open(&vm, &bogus);
    assert_eq!(reply_reason(&out), (401, "unknown_kid".into()));
    assert!(host.pending_callouts().is_empty());
    // After it, one refetch, then refused at once again.
    host.advance(Duration::from_secs(31));
    let (s, out) = open(&vm, &bogus);
    assert_eq!(out, Outcome::Paused);
    host.advance(Duration::from_millis(1100));
    assert!(one_callout(&host).respond(&[(":status", "200")], jwks().to_string().as_bytes()));
    assert_eq!(
        reply_reason(&s.request_outcome()),
        (401, "unknown_kid".into())
    );
    let (_s, out) = open(&vm, &bogus);
    assert_eq!(
        reply_reason(&out),
        (401, "unknown_kid".into()),
        "rate limited: no second refetch"
    );
    assert!(host.pending_callouts().is_empty());
}

#[test]
fn discovery_finds_the_jwks() {
    let host = host();
    let mut c = remote_config(json!({"discovery": true}));
    c["providers"][0]["remote_jwks"]
        .as_object_mut()
        .unwrap()
        .remove("path");
    let vm = start(&host, &c);
    let (s, _) = open(&vm, &token());
    host.advance(Duration::from_millis(250));
    let d = one_callout(&host);
    assert_eq!(d.header(":path"), Some("/.well-known/openid-configuration"));
    let doc = json!({"issuer": ISS, "jwks_uri": "https://auth.test/oauth2/keys"});
    assert!(d.respond(&[(":status", "200")], doc.to_string().as_bytes()));
    let j = one_callout(&host);
    assert_eq!(j.header(":path"), Some("/oauth2/keys"));
    assert!(j.respond(&[(":status", "200")], jwks().to_string().as_bytes()));
    assert_eq!(s.request_outcome(), Outcome::Continue);
}

#[test]
fn several_workers_share_one_fetch_through_shared_data() {
    let host = host();
    let vms = host
        .vm(module())
        .plugin_name("scopegate")
        .vm_id("sg")
        .plugin_config(remote_config(json!({})).to_string())
        .start_workers(3)
        .unwrap();
    assert!(vms.iter().all(Vm::configured));
    let mut paused: Vec<_> = vms.iter().map(|vm| open(vm, &token())).collect();
    assert!(paused.iter().all(|(_, o)| *o == Outcome::Paused));
    host.advance(Duration::from_millis(250));
    // One fetch for all the workers (the lease in shared data).
    let fetch = one_callout(&host);
    assert!(fetch.respond(&[(":status", "200")], jwks().to_string().as_bytes()));
    // The others adopt the published JWKS on their next tick.
    host.advance(Duration::from_millis(250));
    for (s, _) in &mut paused {
        assert_eq!(s.request_outcome(), Outcome::Continue);
    }
    assert_eq!(host.metric_value("scopegate.jwks.main.fetch_ok"), Some(1));
    assert_eq!(host.metric_value("scopegate.jwks.main.adopted"), Some(2));
    assert!(host.shared_data("sg", "scopegate.jwks.main").is_some());
}

#[test]
fn garbage_from_the_jwks_endpoint_never_allows() {
    let host = host();
    let vm = start(&host, &remote_config(json!({})));
    let bodies: [&[u8]; 5] = [
        b"<html>",
        b"{\"keys\": \"x\"}",
        b"{\"keys\": [{\"kty\": \"RSA\"}]}",
        b"[]",
        b"",
    ];
    for (i, body) in bodies.iter().enumerate() {
        let (s, out) = open(&vm, &token());
        assert!(
            matches!(out, Outcome::Paused | Outcome::LocalReply { .. }),
            "{i}: {out:?}"
        );
        host.advance(Duration::from_secs(70));
        for c in host.pending_callouts() {
            assert!(c.respond(&[(":status", "200")], body));
        }
        let out = s.request_outcome();
        assert_eq!(reply_reason(&out).0, 503, "{i}: {out:?}");
    }
    assert!(vm.alive());
}
