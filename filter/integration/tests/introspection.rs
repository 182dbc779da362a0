//! RFC 7662 introspection through the real scopegate.wasm: pause and resume,
//! the local cache, coalesced calls, the shared slots between workers,
//! failures, negative caching, expiry at the token's `exp`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use proxy_wasm_harness::{Callout, Host, HttpStream, Outcome, Vm};
use scopegate_integration::{configured_vm as start, module, publish_counters};
use scopegate_testkit::*;
use serde_json::{Value, json};

const OPAQUE: &str = "opaque-Token_1+/=";

fn host() -> Host {
    let host = scopegate_integration::host();
    host.cluster("auth");
    host
}

/// The default config, plus introspection for provider `main` (which keeps its JWKS).
fn intro_config(extra: Value) -> Value {
    let mut c = config(default_rules());
    let mut i = json!({
        "cluster": "auth", "authority": "auth.test", "path": "/oauth/introspect",
        "client_id": "svc-a", "client_secret": "s3cret&x", "timeout_ms": 2000,
    });
    for (k, v) in extra.as_object().unwrap() {
        i[k] = v.clone();
    }
    c["providers"][0]["introspection"] = i;
    c
}

fn open(vm: &Vm, token: &str) -> (HttpStream, Outcome) {
    let auth = format!("Bearer {token}");
    let hs = [
        (":method", "GET"),
        (":path", "/orders"),
        (":authority", "svc-a"),
        ("authorization", auth.as_str()),
    ];
    let mut s = vm.http_stream();
    let out = s.request_headers(&hs, true);
    (s, out)
}

#[track_caller]
fn one_callout(host: &Host) -> Callout {
    let mut c = host.pending_callouts();
    assert_eq!(
        c.len(),
        1,
        "expected exactly one introspection call in flight"
    );
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

fn active(scope: &str) -> Vec<u8> {
    json!({
        "active": true, "scope": scope, "sub": "alice", "client_id": "web",
        "iss": ISS, "aud": AUD, "exp": NOW + 300, "iat": NOW - 10,
    })
    .to_string()
    .into_bytes()
}

/// An introspection counter, after the tick that publishes it.
fn metric(host: &Host, what: &str) -> i64 {
    publish_counters(host);
    host.metric_value(&format!("scopegate.introspection.main.{what}"))
        .unwrap_or(0)
}

#[test]
fn an_opaque_token_is_paused_introspected_and_allowed_with_the_returned_scopes() {
    let host = host();
    let vm = start(&host, &intro_config(json!({})));
    let (s, out) = open(&vm, OPAQUE);
    assert_eq!(out, Outcome::Paused, "{:?}", vm.log_messages());
    let call = one_callout(&host);
    assert_eq!(call.cluster(), "auth");
    assert_eq!(call.header(":method"), Some("POST"));
    assert_eq!(call.header(":path"), Some("/oauth/introspect"));
    assert_eq!(call.header(":authority"), Some("auth.test"));
    assert_eq!(
        call.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(call.header("accept"), Some("application/json"));
    // base64("svc-a:s3cret%26x"): the secret is form-urlencoded first (RFC 6749 §2.3.1).
    assert_eq!(
        call.header("authorization"),
        Some("Basic c3ZjLWE6czNjcmV0JTI2eA==")
    );
    assert_eq!(
        std::str::from_utf8(&call.request.body).unwrap(),
        "token=opaque-Token_1%2B%2F%3D&token_type_hint=access_token"
    );
    assert!(call.respond(&[(":status", "200")], &active("svc-a:orders:read")));
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
    assert_eq!(
        s.request_header("x-scopegate-scope").as_deref(),
        Some("svc-a:orders:read")
    );
    assert_eq!(
        s.request_header("authorization"),
        None,
        "the token is not forwarded"
    );
    assert_eq!(metric(&host, "calls"), 1);
    assert_eq!(metric(&host, "active"), 1);
    assert_eq!(host.metric_value("scopegate.decision.allowed"), Some(1));
    assert!(
        !vm.log_messages()
            .iter()
            .any(|l| l.contains(OPAQUE) || l.contains("s3cret")),
        "neither the token nor the secret is logged"
    );
}

#[test]
fn scopes_from_introspection_are_enforced() {
    let host = host();
    let vm = start(&host, &intro_config(json!({})));
    let (s, _) = open(&vm, OPAQUE);
    assert!(one_callout(&host).respond(&[(":status", "200")], &active("svc-a:other")));
    assert_eq!(
        reply_reason(&s.request_outcome()),
        (403, "insufficient_scope".into())
    );
}

#[test]
fn the_second_request_with_the_same_token_is_served_from_the_cache() {
    let host = host();
    let vm = start(&host, &intro_config(json!({})));
    let (s, _) = open(&vm, OPAQUE);
    assert!(one_callout(&host).respond(&[(":status", "200")], &active("svc-a:orders:read")));
    assert_eq!(s.request_outcome(), Outcome::Continue);
    let (s2, out) = open(&vm, OPAQUE);
    assert_eq!(out, Outcome::Continue);
    assert_eq!(
        s2.request_header("x-scopegate-sub").as_deref(),
        Some("alice")
    );
    assert!(host.pending_callouts().is_empty(), "no second call");
    assert_eq!(metric(&host, "calls"), 1);
    assert_eq!(metric(&host, "cache_hit_local"), 1);
}

#[test]
fn concurrent_requests_with_the_same_token_share_one_call() {
    let host = host();
    let vm = start(&host, &intro_config(json!({})));
    let (s1, o1) = open(&vm, OPAQUE);
    let (s2, o2) = open(&vm, OPAQUE);
    let (s3, o3) = open(&vm, "another-opaque-token");
    assert_eq!(
        (o1, o2, o3),
        (Outcome::Paused, Outcome::Paused, Outcome::Paused)
    );
    let calls = host.pending_callouts();
    assert_eq!(calls.len(), 2, "one call per distinct token");
    assert_eq!(metric(&host, "coalesced"), 1);
    let (mine, other): (Vec<Callout>, Vec<Callout>) = calls.into_iter().partition(|c| {
        std::str::from_utf8(&c.request.body)
            .unwrap()
            .contains("opaque-Token")
    });
    assert!(
        mine.into_iter()
            .next()
            .unwrap()
            .respond(&[(":status", "200")], &active("svc-a:orders:read"))
    );
    assert_eq!(s1.request_outcome(), Outcome::Continue);
    assert_eq!(s2.request_outcome(), Outcome::Continue);
    assert_eq!(
        s3.request_outcome(),
        Outcome::Paused,
        "its own call is still out"
    );
    assert!(
        other
            .into_iter()
            .next()
            .unwrap()
            .respond(&[(":status", "200")], br#"{"active": false}"#)
    );
    assert_eq!(
        reply_reason(&s3.request_outcome()),
        (401, "token_inactive".into())
    );
}

#[test]
fn another_worker_finds_the_answer_in_the_shared_slot() {
    let host = host();
    let vms = host
        .vm(module())
        .plugin_name("scopegate")
        .vm_id("sg")
        .plugin_config(intro_config(json!({})).to_string())
        .start_workers(2)
        .unwrap();
    assert!(vms.iter().all(Vm::configured));
    let (s, _) = open(&vms[0], OPAQUE);
    assert!(one_callout(&host).respond(&[(":status", "200")], &active("svc-a:orders:read")));
    assert_eq!(s.request_outcome(), Outcome::Continue);
    let (s2, out) = open(&vms[1], OPAQUE);
    assert_eq!(out, Outcome::Continue, "{:?}", vms[1].log_messages());
    assert_eq!(
        s2.request_header("x-scopegate-sub").as_deref(),
        Some("alice")
    );
    assert!(host.pending_callouts().is_empty());
    assert_eq!(metric(&host, "calls"), 1);
    assert_eq!(metric(&host, "cache_hit_shared"), 1);
    // The slot holds the digest, never the token.
    let slot = (0..1024)
        .find_map(|i| host.shared_data("sg", &format!("scopegate.introspect.main.{i}")))
        .expect("one slot written");
    let text = String::from_utf8(slot.value.clone()).unwrap();
    assert!(!text.contains(OPAQUE), "{text}");
    let hex: String = sha256(OPAQUE.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(text.contains(&hex), "{text}");
}

#[test]
fn endpoint_failures_answer_503_and_are_counted() {
    type Fail = fn(Callout) -> bool;
    let cases: [(&str, Fail); 6] = [
        ("status", |c| {
            c.respond(&[(":status", "500")], b"{\"active\":true}")
        }),
        ("invalid", |c| c.respond(&[(":status", "200")], b"<html>")),
        ("invalid", |c| {
            c.respond(&[(":status", "200")], br#"{"active":true,"exp":"soon"}"#)
        }),
        ("too_large", |c| {
            let mut big = br#"{"active":true,"pad":""#.to_vec();
            big.extend(std::iter::repeat_n(b'x', 70_000));
            big.extend(b"\"}");
            c.respond(&[(":status", "200")], &big)
        }),
        ("connect", Callout::connect_failure),
        ("connect", Callout::fail),
    ];
    for (kind, fail) in cases {
        let host = host();
        let vm = start(&host, &intro_config(json!({})));
        let (s, _) = open(&vm, OPAQUE);
        assert!(fail(one_callout(&host)));
        assert_eq!(
            reply_reason(&s.request_outcome()),
            (503, "introspection_unavailable".into()),
            "{kind}"
        );
        assert_eq!(metric(&host, &format!("failed.{kind}")), 1, "{kind}");
        assert_eq!(
            host.metric_value("scopegate.decision.introspection_unavailable"),
            Some(1)
        );
        assert!(
            vm.logged("introspection failed"),
            "{kind}: {:?}",
            vm.log_messages()
        );
        // Failures are not cached: the next request calls again.
        let (_s, out) = open(&vm, OPAQUE);
        assert_eq!(out, Outcome::Paused, "{kind}");
    }
}

#[test]
fn a_call_that_times_out_answers_503() {
    let host = host();
    let vm = start(&host, &intro_config(json!({})));
    let (s, _) = open(&vm, OPAQUE);
    let _hanging = one_callout(&host);
    host.advance(Duration::from_millis(2100));
    assert_eq!(
        reply_reason(&s.request_outcome()),
        (503, "introspection_unavailable".into())
    );
    assert_eq!(metric(&host, "failed.timeout"), 1);
}

#[test]
fn an_unreachable_cluster_answers_503_at_once() {
    let host = scopegate_integration::host(); // no "auth" cluster
    let vm = start(&host, &intro_config(json!({})));
    let (_s, out) = open(&vm, OPAQUE);
    assert_eq!(
        reply_reason(&out),
        (503, "introspection_unavailable".into())
    );
    assert_eq!(metric(&host, "failed.dispatch"), 1);
}

#[test]
fn inactive_answers_are_cached_for_the_negative_ttl() {
    let host = host();
    let vm = start(
        &host,
        &intro_config(json!({"negative_cache_ttl_seconds": 5})),
    );
    let (s, _) = open(&vm, OPAQUE);
    assert!(one_callout(&host).respond(&[(":status", "200")], br#"{"active": false}"#));
    let out = s.request_outcome();
    assert_eq!(reply_reason(&out), (401, "token_inactive".into()));
    let Outcome::LocalReply { headers, .. } = &out else {
        unreachable!()
    };
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v.contains("error=\"invalid_token\"")),
        "{headers:?}"
    );
    let (_s, out) = open(&vm, OPAQUE);
    assert_eq!(reply_reason(&out), (401, "token_inactive".into()));
    assert!(host.pending_callouts().is_empty(), "inactive is cached");
    host.advance(Duration::from_secs(6));
    let (_s, out) = open(&vm, OPAQUE);
    assert_eq!(out, Outcome::Paused, "the negative entry expired");
    assert_eq!(metric(&host, "inactive"), 1);
    assert_eq!(metric(&host, "calls"), 2);
}

#[test]
fn a_cached_active_answer_expires_at_the_tokens_exp() {
    let host = host();
    let vm = start(&host, &intro_config(json!({"cache_ttl_seconds": 3600})));
    let (s, _) = open(&vm, OPAQUE);
    let body = json!({"active": true, "scope": "svc-a:orders:read", "aud": AUD, "exp": NOW + 30});
    assert!(one_callout(&host).respond(&[(":status", "200")], body.to_string().as_bytes()));
    assert_eq!(s.request_outcome(), Outcome::Continue);
    host.advance(Duration::from_secs(20));
    let (_s, out) = open(&vm, OPAQUE);
    assert_eq!(out, Outcome::Continue, "still cached before exp");
    host.advance(Duration::from_secs(11));
    let (s, out) = open(&vm, OPAQUE);
    assert_eq!(out, Outcome::Paused, "past exp the answer is asked again");
    assert!(one_callout(&host).respond(&[(":status", "200")], br#"{"active": false}"#));
    assert_eq!(
        reply_reason(&s.request_outcome()),
        (401, "token_inactive".into())
    );
}

#[test]
fn a_jwt_still_takes_the_jwt_path_and_an_issuer_mismatch_is_refused() {
    let host = host();
    let vm = start(&host, &intro_config(json!({})));
    let jwt = sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read"));
    let (_s, out) = open(&vm, &jwt);
    assert_eq!(out, Outcome::Continue);
    assert!(
        host.pending_callouts().is_empty(),
        "JWTs are not introspected"
    );
    let (s, _) = open(&vm, OPAQUE);
    let body = json!({"active": true, "scope": "svc-a:orders:read", "aud": AUD, "iss": "https://evil.test"});
    assert!(one_callout(&host).respond(&[(":status", "200")], body.to_string().as_bytes()));
    assert_eq!(
        reply_reason(&s.request_outcome()),
        (401, "issuer_not_allowed".into())
    );
}

#[test]
fn when_the_dispatching_stream_goes_away_the_others_still_get_an_answer() {
    let host = host();
    let vm = start(&host, &intro_config(json!({})));
    let (mut s1, _) = open(&vm, OPAQUE);
    let (s2, _) = open(&vm, OPAQUE);
    assert_eq!(one_callout(&host).context_id, s1.id());
    s1.finish(); // the client went away; Envoy cancels the stream's calls
    host.advance(Duration::from_millis(600)); // the root tick calls again
    // The harness does not cancel the finished stream's call as Envoy does;
    // the call the root made is the one that counts.
    let again = host
        .pending_callouts()
        .into_iter()
        .find(|c| c.context_id == 1)
        .expect("a call from the root context");
    assert!(again.respond(&[(":status", "200")], &active("svc-a:orders:read")));
    assert_eq!(
        s2.request_outcome(),
        Outcome::Continue,
        "{:?}",
        vm.log_messages()
    );
}

#[test]
fn the_shared_store_never_holds_more_than_its_slots() {
    let host = host();
    let vm = start(&host, &intro_config(json!({"cache_entries": 4})));
    for n in 0..20 {
        let (s, _) = open(&vm, &format!("opaque-{n}"));
        assert!(one_callout(&host).respond(&[(":status", "200")], &active("svc-a:orders:read")));
        assert_eq!(s.request_outcome(), Outcome::Continue);
    }
    let used: Vec<usize> = (0..1024)
        .filter(|i| {
            host.shared_data("sg", &format!("scopegate.introspect.main.{i}"))
                .is_some()
        })
        .collect();
    assert!(!used.is_empty() && used.iter().all(|i| *i < 4), "{used:?}");
    assert_eq!(metric(&host, "calls"), 20);
}

#[test]
fn with_caching_off_every_request_calls_but_still_gets_its_answer() {
    let host = host();
    let vm = start(&host, &intro_config(json!({"cache_entries": 0})));
    for _ in 0..2 {
        let (s, out) = open(&vm, OPAQUE);
        assert_eq!(out, Outcome::Paused);
        assert!(one_callout(&host).respond(&[(":status", "200")], &active("svc-a:orders:read")));
        assert_eq!(s.request_outcome(), Outcome::Continue);
    }
    assert_eq!(metric(&host, "calls"), 2);
    assert!(
        (0..1024).all(|i| host
            .shared_data("sg", &format!("scopegate.introspect.main.{i}"))
            .is_none()),
        "nothing shared"
    );
}
