//! Fault injection through the harness, for the remote JWKS and the host
//! calls around it (jwks.rs covers the plain cases: connection refused, a
//! 500, a first fetch timing out, stale keys through timeouts, non-JSON and
//! wrongly typed bodies without recovery, workers sharing a fetch).
//!
//! Every fault here is checked for the same four things: no trap (the VM
//! stays alive), no allow that should be a deny (a forged token is refused
//! at all times; a valid one is refused while there are no keys), a counted
//! and logged error, and recovery once the fault ends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm_harness::{Callout, Host, HttpStream, Outcome, UpstreamReply, Vm};
use scopegate_integration::{configured_vm as start, module};
use scopegate_testkit::*;
use serde_json::{Value, json};

fn host() -> Host {
    let host = scopegate_integration::host();
    host.cluster("auth");
    host
}

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

fn open(vm: &Vm, token: &str) -> (HttpStream, Outcome) {
    let auth = format!("Bearer {token}");
    let mut s = vm.http_stream();
    let out = s.request_headers(
        &[
            (":method", "GET"),
            (":path", "/orders"),
            (":authority", "svc-a"),
            ("authorization", &auth),
        ],
        true,
    );
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

/// Signed by a key nobody configured, with the kid of a real one.
fn forged() -> String {
    hs256_with(
        b"an attacker's secret, long enough to be accepted",
        &json!({"alg": "HS256", "kid": "hs-1"}),
        &Value::Object(claims("svc-a:orders:read")),
    )
}

/// Advances the clock a quarter second at a time until a fetch is in flight
/// (at most two minutes).
#[track_caller]
fn next_fetch(host: &Host) -> Callout {
    for _ in 0..480 {
        if !host.pending_callouts().is_empty() {
            return one_callout(host);
        }
        host.advance(Duration::from_millis(250));
    }
    panic!("no fetch within two minutes");
}

fn failed(host: &Host) -> i64 {
    host.metric_value("scopegate.jwks.main.fetch_failed").unwrap_or(0)
}

/// A request now: `Continue` must mean a valid token, and a forged token must
/// be refused whatever the state of the keys.
#[track_caller]
fn assert_forged_refused(vm: &Vm) {
    let (_s, out) = open(vm, &forged());
    assert!(
        matches!(&out, Outcome::LocalReply { status, .. } if *status == 401 || *status == 503),
        "forged token: {out:?}"
    );
}

fn good_jwks() -> Vec<u8> {
    jwks().to_string().into_bytes()
}

/// Bodies (and headers) no JWKS can be had from, each with the error the
/// log must name.
/// (name, response headers, body, what the log must say)
type BadAnswer = (&'static str, Vec<(&'static str, &'static str)>, Vec<u8>, &'static str);

fn bad_answers() -> Vec<BadAnswer> {
    let good = good_jwks();
    let truncated = good[..good.len() / 2].to_vec();
    // Valid JSON, a real key, padded beyond the 256 KiB document bound.
    let mut huge = jwks();
    huge["padding"] = json!("x".repeat(300 * 1024));
    let bad_rsa = json!({"keys": [{"kty": "RSA", "kid": "rsa-1", "n": "AQAB", "e": "AQAB"}]});
    let wrong_types = json!({"keys": [{"kty": ["RSA"], "kid": 7, "n": {}, "e": null}]});
    let only_hmac = json!({"keys": [jwks()["keys"][5].clone()]});
    vec![
        ("truncated", vec![(":status", "200"), ("content-type", "application/json")], truncated, "not JSON"),
        ("huge", vec![(":status", "200")], huge.to_string().into_bytes(), "exceeds"),
        ("html error page", vec![(":status", "200"), ("content-type", "text/html")], b"<html><body>502 Bad Gateway</body></html>".to_vec(), "not JSON"),
        ("wrong types", vec![(":status", "200")], wrong_types.to_string().into_bytes(), "no usable signing key"),
        ("key that does not parse", vec![(":status", "200")], bad_rsa.to_string().into_bytes(), "no usable signing key"),
        ("only a shared secret", vec![(":status", "200")], only_hmac.to_string().into_bytes(), "no usable signing key"),
        ("503 from the auth server", vec![(":status", "503")], b"busy".to_vec(), "HTTP status 503"),
        ("302 redirect", vec![(":status", "302"), ("location", "https://elsewhere/jwks")], Vec::new(), "HTTP status 302"),
    ]
}

#[test]
fn each_bad_jwks_answer_without_keys_is_a_counted_503_and_a_good_one_recovers() {
    for (name, headers, body, why) in bad_answers() {
        let host = host();
        let vm = start(&host, &remote_config(json!({})));
        let (s, out) = open(&vm, &token());
        assert_eq!(out, Outcome::Paused, "{name}");
        host.advance(Duration::from_millis(250));
        assert!(one_callout(&host).respond(&headers, &body), "{name}");
        assert_eq!(reply_reason(&s.request_outcome()), (503, "jwks_unavailable".into()), "{name}");
        assert_eq!(failed(&host), 1, "{name}: counted");
        assert!(vm.logged("JWKS fetch failed: ") && vm.logged(why), "{name}: logged {why:?}: {:?}", vm.log_messages());
        assert_forged_refused(&vm);
        // The fault ends: the retry after the backoff brings the keys.
        host.advance(Duration::from_millis(1200));
        assert!(one_callout(&host).respond(&[(":status", "200")], &good_jwks()), "{name}");
        let (_s, out) = open(&vm, &token());
        assert_eq!(out, Outcome::Continue, "{name}: recovered");
        assert_forged_refused(&vm);
        assert!(vm.alive(), "{name}");
    }
}

#[test]
fn each_bad_jwks_answer_on_refresh_keeps_the_keys_we_have() {
    let host = host();
    let vm = start(&host, &remote_config(json!({"cache_duration_seconds": 60})));
    host.advance(Duration::from_millis(250));
    assert!(one_callout(&host).respond(&[(":status", "200")], &good_jwks()));
    let mut expected_failures = 0i64;
    for (name, headers, body, why) in bad_answers() {
        // The next fetch (a refresh, or a retry after the backoff).
        assert!(next_fetch(&host).respond(&headers, &body), "{name}");
        expected_failures += 1;
        assert!(vm.logged(why), "{name}: {:?}", vm.log_messages());
        assert!(vm.logged("keeping the keys we have"), "{name}");
        let (_s, out) = open(&vm, &token());
        assert_eq!(out, Outcome::Continue, "{name}: stale keys still verify");
        assert_forged_refused(&vm);
    }
    assert!(expected_failures >= i64::try_from(bad_answers().len()).unwrap());
    assert_eq!(failed(&host), expected_failures);
    assert!(vm.alive());
}

#[test]
fn a_jwks_served_with_a_wrong_content_type_is_still_parsed_strictly() {
    // Content types are not trusted either way: the body decides.
    let host = host();
    let vm = start(&host, &remote_config(json!({})));
    let (s, _) = open(&vm, &token());
    host.advance(Duration::from_millis(250));
    assert!(one_callout(&host).respond(&[(":status", "200"), ("content-type", "text/plain")], &good_jwks()));
    assert_eq!(s.request_outcome(), Outcome::Continue);
    assert_forged_refused(&vm);
}

#[test]
fn a_reset_and_a_slow_auth_server_beyond_the_timeout_fail_then_recover() {
    let host = host();
    let vm = start(&host, &remote_config(json!({})));
    let (s, _) = open(&vm, &token());
    host.advance(Duration::from_millis(250));
    assert!(one_callout(&host).fail()); // reset
    assert_eq!(reply_reason(&s.request_outcome()), (503, "jwks_unavailable".into()));
    assert_eq!(failed(&host), 1);
    // Now the auth server answers, but after 5 s: beyond the 2 s timeout.
    host.cluster("auth").respond_with(|_| {
        UpstreamReply::status(200, &[], jwks().to_string().as_bytes()).after(Duration::from_secs(5))
    });
    host.advance(Duration::from_secs(4));
    assert_eq!(failed(&host), 2, "the slow answer timed out: {:?}", vm.log_messages());
    assert!(vm.logged("HTTP status 504"), "{:?}", vm.log_messages());
    let (_s, out) = open(&vm, &token());
    assert_eq!(reply_reason(&out), (503, "jwks_unavailable".into()));
    assert_forged_refused(&vm);
    // Fast again: recovered within the backoff.
    host.cluster("auth").respond_with(|_| UpstreamReply::status(200, &[], jwks().to_string().as_bytes()));
    host.advance(Duration::from_secs(5));
    let (_s, out) = open(&vm, &token());
    assert_eq!(out, Outcome::Continue, "{:?}", vm.log_messages());
    assert!(vm.alive());
}

#[test]
fn http_call_refused_by_the_host_is_counted_and_logged_and_recovers() {
    // Envoy answers proxy_http_call with BadArgument when the cluster is gone
    // (e.g. removed by a CDS update).
    let host = host();
    assert!(host.remove_cluster("auth"));
    let vm = start(&host, &remote_config(json!({})));
    let (s, _) = open(&vm, &token());
    host.advance(Duration::from_millis(250));
    assert!(host.pending_callouts().is_empty());
    assert_eq!(reply_reason(&s.request_outcome()), (503, "jwks_unavailable".into()));
    assert_eq!(failed(&host), 1);
    assert!(vm.logged("cannot fetch /jwks from cluster auth: BadArgument"), "{:?}", vm.log_messages());
    assert_forged_refused(&vm);
    // Retries are backed off, not one per tick.
    host.advance(Duration::from_secs(3));
    assert!(failed(&host) <= 3, "retried {} times in 3 s", failed(&host));
    // The cluster is back.
    host.cluster("auth");
    assert!(next_fetch(&host).respond(&[(":status", "200")], &good_jwks()));
    let (_s, out) = open(&vm, &token());
    assert_eq!(out, Outcome::Continue, "{:?}", vm.log_messages());
    assert!(vm.alive());
}

#[test]
fn lost_shared_data_races_on_the_fetch_lease_delay_the_fetch_but_never_duplicate_it() {
    let host = host();
    let vms = host
        .vm(module())
        .plugin_name("scopegate")
        .vm_id("sg")
        .plugin_config(remote_config(json!({})).to_string())
        .start_workers(3)
        .unwrap();
    // The lease exists from the discarded main-thread VM's or a first tick;
    // make sure it exists, expired, then make the next 4 conditional writes
    // of it lose their race.
    host.set_shared_data("sg", "scopegate.jwks-lease.main", b"0");
    host.race_shared_data("sg", "scopegate.jwks-lease.main", 4);
    let mut paused: Vec<_> = vms.iter().map(|vm| open(vm, &token())).collect();
    assert!(paused.iter().all(|(_, o)| *o == Outcome::Paused));
    // First tick: every worker loses its race for the lease; nobody fetches.
    host.advance(Duration::from_millis(210));
    assert!(host.pending_callouts().is_empty(), "a VM fetched without the lease");
    // The next ticks: one VM wins; exactly one fetch.
    host.advance(Duration::from_millis(400));
    let fetch = one_callout(&host);
    assert!(fetch.respond(&[(":status", "200")], &good_jwks()));
    host.advance(Duration::from_millis(250));
    for (s, _) in &mut paused {
        assert_eq!(s.request_outcome(), Outcome::Continue);
    }
    assert_eq!(host.metric_value("scopegate.jwks.main.fetch_ok"), Some(1));
    for vm in &vms {
        assert_forged_refused(vm);
        assert!(vm.alive());
    }
}

/// An NTP step of the wall clock: timers keep their remaining time.
fn set_clock(host: &Host, unix: i64) {
    host.step_wall_clock(UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap()));
}

#[test]
fn clock_jumps_forward_expire_tokens_and_cached_verifications_and_refresh_keys() {
    let host = host();
    let vm = start(&host, &remote_config(json!({"cache_duration_seconds": 300})));
    host.advance(Duration::from_millis(250));
    assert!(one_callout(&host).respond(&[(":status", "200")], &good_jwks()));
    let t = token();
    assert_eq!(open(&vm, &t).1, Outcome::Continue); // verified and cached
    assert_eq!(open(&vm, &t).1, Outcome::Continue);
    // A day later the token is expired: the cached verification is not reused.
    set_clock(&host, NOW + 86_400);
    assert_eq!(reply_reason(&open(&vm, &t).1), (401, "token_expired".into()));
    // And the keys are refreshed at the next tick (which publishes the counters).
    host.advance(Duration::from_millis(250));
    assert!(host.metric_value("scopegate.decision.token_expired").unwrap() >= 1);
    let refresh = one_callout(&host);
    assert!(refresh.respond(&[(":status", "200")], &good_jwks()));
    let fresh = {
        let mut c = claims("svc-a:orders:read");
        c.insert("iat".into(), json!(NOW + 86_400));
        c.insert("exp".into(), json!(NOW + 86_400 + 300));
        sign("RS256", Some("rsa-1"), &c)
    };
    assert_eq!(open(&vm, &fresh).1, Outcome::Continue);
    assert_forged_refused(&vm);
    assert!(vm.alive());
}

#[test]
fn clock_jumps_back_refuse_future_tokens_even_when_cached_and_do_not_stall_fetches() {
    let host = host();
    let vm = start(&host, &remote_config(json!({"cache_duration_seconds": 300})));
    host.advance(Duration::from_millis(250));
    assert!(one_callout(&host).respond(&[(":status", "200")], &good_jwks()));
    let t = token();
    assert_eq!(open(&vm, &t).1, Outcome::Continue); // cached
    // The clock goes back a day: the token is not valid yet (iat in the future).
    set_clock(&host, NOW - 86_400);
    assert_eq!(reply_reason(&open(&vm, &t).1), (401, "token_not_yet_valid".into()));
    assert_forged_refused(&vm);
    // The keys were fetched "in the future", so their age is unknown: the
    // refresh comes at the next tick, not a day later.
    host.advance(Duration::from_millis(250));
    assert_eq!(host.pending_callouts().len(), 1, "no refresh after the clock went back: {:?}", vm.log_messages());
    // Fail that refresh (backoff from the new clock), jump back again, and
    // the retry must come within the backoff, not after the jump.
    assert!(one_callout(&host).connect_failure());
    set_clock(&host, NOW - 2 * 86_400);
    host.advance(Duration::from_secs(5));
    let mut retry = host.pending_callouts();
    assert_eq!(retry.len(), 1, "retry stalled after the clock went back: {:?}", vm.log_messages());
    assert!(retry.remove(0).respond(&[(":status", "200")], &good_jwks()));
    let old = {
        let mut c = claims("svc-a:orders:read");
        c.insert("iat".into(), json!(NOW - 2 * 86_400));
        c.insert("exp".into(), json!(NOW - 2 * 86_400 + 300));
        sign("RS256", Some("rsa-1"), &c)
    };
    assert_eq!(open(&vm, &old).1, Outcome::Continue);
    assert!(vm.logged("clock went back"), "the jump is logged: {:?}", vm.log_messages());
    assert!(vm.alive());
}
