//! Token revocation through the real scopegate.wasm: a feed polled by one
//! worker and enforced by all, incremental fetches, expiry, endpoint faults,
//! and the staleness bound.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm_harness::{CalloutRequest, Host, Outcome, UpstreamReply, Vm};
use scopegate_integration::{configured_vm, module, publish_counters};
use scopegate_testkit::*;
use serde_json::{Value, json};

/// A controllable revocation feed behind the `auth` cluster.
#[derive(Clone)]
struct Feed {
    reply: Rc<RefCell<UpstreamReply>>,
    seen: Rc<RefCell<Vec<CalloutRequest>>>,
}

impl Feed {
    fn serve(&self, reply: UpstreamReply) {
        *self.reply.borrow_mut() = reply;
    }
    fn doc(&self, doc: &Value) {
        self.serve(UpstreamReply::status(
            200,
            &[("content-type", "application/json")],
            doc.to_string().as_bytes(),
        ));
    }
    fn polls(&self) -> usize {
        self.seen.borrow().len()
    }
    fn last(&self) -> CalloutRequest {
        self.seen.borrow().last().cloned().expect("a poll was sent")
    }
}

fn host_with_feed() -> (Host, Feed) {
    let host = scopegate_integration::host();
    let feed = Feed {
        reply: Rc::new(RefCell::new(UpstreamReply::status(200, &[], b"{}"))),
        seen: Rc::new(RefCell::new(Vec::new())),
    };
    let f = feed.clone();
    host.cluster("auth").respond_with(move |req| {
        f.seen.borrow_mut().push(req.clone());
        f.reply.borrow().clone()
    });
    (host, feed)
}

fn rules() -> Value {
    let mut r = default_rules();
    r.as_array_mut().unwrap().push(json!(
        {"name": "admin", "match": {"prefix": "/admin"}, "require": "authenticated", "sensitive": true}
    ));
    r
}

fn revocation_config(extra: Value) -> Value {
    let mut c = config(rules());
    let mut r = json!({
        "remote": {"cluster": "auth", "authority": "auth.test", "poll_interval_seconds": 10, "timeout_ms": 2000},
    });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    c["providers"][0]["revocation"] = r;
    c
}

fn token(jti: &str, sub: &str, iat: i64) -> String {
    let mut c = claims("svc-a:orders:read");
    c.insert("jti".into(), json!(jti));
    c.insert("sub".into(), json!(sub));
    c.insert("iat".into(), json!(iat));
    c.insert("exp".into(), json!(NOW + 3000));
    sign("RS256", Some("rsa-1"), &c)
}

fn open(vm: &Vm, path: &str, token: &str) -> (proxy_wasm_harness::HttpStream, Outcome) {
    let auth = format!("Bearer {token}");
    let mut s = vm.http_stream();
    let out = s.request_headers(
        &[
            (":method", "GET"),
            (":path", path),
            (":authority", "svc-a"),
            ("authorization", &auth),
        ],
        true,
    );
    (s, out)
}

/// The outcome of one request: `(200, "")` for a request let through, else
/// the local reply's status and reason.
fn outcome(out: &Outcome) -> (u32, String) {
    match out {
        Outcome::Continue => (200, String::new()),
        Outcome::LocalReply { status, body, .. } => {
            let v: Value = serde_json::from_slice(body).unwrap();
            (*status, v["reason"].as_str().unwrap_or_default().to_owned())
        }
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[track_caller]
fn request(vm: &Vm, path: &str, token: &str) -> (u32, String) {
    let (_s, out) = open(vm, path, token);
    outcome(&out)
}

fn ok() -> (u32, String) {
    (200, String::new())
}

fn revoked() -> (u32, String) {
    (401, "token_revoked".into())
}

fn unavailable() -> (u32, String) {
    (503, "revocation_unavailable".into())
}

/// A revocation counter, after the tick that publishes the per-request ones.
fn metric(host: &Host, what: &str) -> i64 {
    publish_counters(host);
    host.metric_value(&format!("scopegate.revocation.main.{what}"))
        .unwrap_or_else(|| panic!("metric {what} is not defined"))
}

/// Starts one VM and lets its first poll answer with `doc`.
fn started(host: &Host, feed: &Feed, extra: Value, doc: &Value) -> Vm {
    feed.doc(doc);
    let vm = configured_vm(host, &revocation_config(extra));
    host.advance(Duration::from_millis(250));
    assert_eq!(feed.polls(), 1, "{:?}", vm.log_messages());
    vm
}

#[test]
fn a_revocation_mid_stream_is_enforced_on_every_worker_within_one_poll_interval() {
    let (host, feed) = host_with_feed();
    feed.serve(UpstreamReply::status(
        200,
        &[("etag", "\"v1\"")],
        json!({"cursor": "1", "complete": true})
            .to_string()
            .as_bytes(),
    ));
    let vms = host
        .vm(module())
        .plugin_name("scopegate")
        .vm_id("sg")
        .plugin_config(revocation_config(json!({})).to_string())
        .start_workers(3)
        .unwrap();
    assert!(vms.iter().all(Vm::configured));
    let t = token("j-1", "alice", NOW - 10);
    // Before the first poll, requests wait for it...
    let paused: Vec<_> = vms.iter().map(|vm| open(vm, "/orders", &t)).collect();
    assert!(paused.iter().all(|(_, o)| *o == Outcome::Paused));
    // ...which one worker sends, for all (the lease in shared data).
    host.advance(Duration::from_millis(500));
    assert_eq!(feed.polls(), 1);
    let first = feed.last();
    assert_eq!(first.cluster, "auth");
    assert_eq!(first.header(":path"), Some("/revocations"));
    assert_eq!(first.header(":authority"), Some("auth.test"));
    assert_eq!(first.header("if-none-match"), None);
    for (s, _) in &paused {
        assert_eq!(s.request_outcome(), Outcome::Continue);
    }
    assert!(
        host.shared_data("sg", "scopegate.revocations.main")
            .is_some()
    );
    // The auth server revokes j-1 while requests keep flowing.
    feed.doc(
        &json!({"cursor": "2", "complete": false, "jti": [{"jti": "j-1", "exp": NOW + 3000}]}),
    );
    let mut refused_at = None;
    for step in 0..60 {
        // 250 ms steps: up to 15 s
        let results: Vec<_> = vms.iter().map(|vm| request(vm, "/orders", &t)).collect();
        if results.iter().all(|r| *r == revoked()) {
            refused_at = Some(step);
            break;
        }
        // Never a mix beyond one tick after the poll: allowed, or refused.
        assert!(
            results.iter().all(|r| *r == ok() || *r == revoked()),
            "{results:?}"
        );
        host.advance(Duration::from_millis(250));
    }
    let step = refused_at.expect("refused on every worker");
    // The poll is due 10 s after the first; every worker within one tick more.
    assert!(step <= 42, "refused after {step} steps of 250 ms");
    assert_eq!(feed.polls(), 2, "one poll for all the workers");
    let second = feed.last();
    assert_eq!(second.header(":path"), Some("/revocations?since=1"));
    assert_eq!(second.header("if-none-match"), Some("\"v1\""));
    // Other tokens of the same subject still pass.
    let other = token("j-2", "alice", NOW - 10);
    for vm in &vms {
        assert_eq!(request(vm, "/orders", &other), ok());
    }
    assert_eq!(metric(&host, "poll_ok"), 2);
    assert!(metric(&host, "revoked") >= 3);
    assert_eq!(
        host.metric_value("scopegate.decision.token_revoked"),
        Some(metric(&host, "revoked"))
    );
    for vm in &vms {
        assert!(vm.alive());
    }
}

#[test]
fn a_first_poll_failing_on_one_worker_answers_the_requests_paused_on_all() {
    let (host, feed) = host_with_feed();
    feed.serve(UpstreamReply::ConnectFailure);
    let vms = host
        .vm(module())
        .plugin_name("scopegate")
        .vm_id("sg")
        .plugin_config(revocation_config(json!({"on_stale": "fail_closed"})).to_string())
        .start_workers(3)
        .unwrap();
    let t = token("j", "alice", NOW - 10);
    let paused: Vec<_> = vms.iter().map(|vm| open(vm, "/orders", &t)).collect();
    assert!(paused.iter().all(|(_, o)| *o == Outcome::Paused));
    // One poll fails; every worker learns it from shared data on its next
    // tick, well before the wait's own bound (timeout + 2 s).
    host.advance(Duration::from_millis(500));
    assert_eq!(feed.polls(), 1);
    for (s, _) in &paused {
        assert_eq!(outcome(&s.request_outcome()), unavailable());
    }
    for vm in &vms {
        assert_eq!(
            request(vm, "/orders", &t),
            unavailable(),
            "answered at once"
        );
    }
    assert_eq!(metric(&host, "poll_failed"), 1);
    assert_eq!(metric(&host, "stale_denied"), 6);
}

#[test]
fn a_revoked_subject_refuses_older_tokens_and_a_cached_token_is_refused_at_once() {
    let (host, feed) = host_with_feed();
    let vm = started(&host, &feed, json!({}), &json!({"cursor": "1"}));
    let old = token("a", "alice", NOW - 100);
    // Verified and cached before the revocation.
    assert_eq!(request(&vm, "/orders", &old), ok());
    assert_eq!(request(&vm, "/orders", &old), ok());
    feed.doc(&json!({"cursor": "2", "complete": false,
        "subjects": [{"sub": "alice", "revoked_before": NOW - 50}]}));
    host.advance(Duration::from_secs(10));
    assert_eq!(feed.polls(), 2);
    let (_s, out) = open(&vm, "/orders", &old);
    assert_eq!(outcome(&out), revoked());
    let Outcome::LocalReply { headers, .. } = &out else {
        unreachable!()
    };
    let www = headers
        .iter()
        .find(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(www.starts_with("Bearer realm=\"svc-a\""), "{www}");
    assert!(www.contains("error=\"invalid_token\""), "{www}");
    // A token issued after the logout passes; another subject too.
    assert_eq!(
        request(&vm, "/orders", &token("b", "alice", NOW - 10)),
        ok()
    );
    assert_eq!(request(&vm, "/orders", &token("c", "bob", NOW - 100)), ok());
}

#[test]
fn incremental_fetch_sends_since_and_if_none_match_and_304_keeps_the_list() {
    let (host, feed) = host_with_feed();
    feed.serve(UpstreamReply::status(
        200,
        &[("etag", "W/\"7\"")],
        json!({"cursor": "c 1/2", "jti": [{"jti": "gone"}]})
            .to_string()
            .as_bytes(),
    ));
    let vm = configured_vm(
        &host,
        &revocation_config(json!({"max_staleness_seconds": 30})),
    );
    host.advance(Duration::from_millis(250));
    assert_eq!(metric(&host, "poll_ok"), 1);
    assert_eq!(metric(&host, "entries"), 1);
    feed.serve(UpstreamReply::status(304, &[], b""));
    host.advance(Duration::from_secs(10));
    let poll = feed.last();
    assert_eq!(poll.header(":path"), Some("/revocations?since=c%201%2F2"));
    assert_eq!(poll.header("if-none-match"), Some("W/\"7\""));
    assert_eq!(metric(&host, "poll_not_modified"), 1);
    assert_eq!(
        request(&vm, "/orders", &token("gone", "alice", NOW - 10)),
        revoked()
    );
    assert_eq!(
        request(&vm, "/orders", &token("kept", "alice", NOW - 10)),
        ok()
    );
    // 304s keep the list fresh: not stale after 60 s of them (bound 30 s).
    host.advance(Duration::from_secs(60));
    assert_eq!(
        request(&vm, "/admin", &token("kept", "alice", NOW - 10)),
        ok()
    );
    assert!(metric(&host, "poll_not_modified") >= 6);
    assert_eq!(metric(&host, "poll_failed"), 0);
}

#[test]
fn the_list_grows_and_entries_expire_on_the_virtual_clock() {
    let (host, feed) = host_with_feed();
    // Clock skew 60 s: an entry is dropped 60 s after its exp.
    let vm = started(
        &host,
        &feed,
        json!({}),
        &json!({"cursor": "1", "jti": [{"jti": "a", "exp": NOW + 30}]}),
    );
    assert_eq!(metric(&host, "entries"), 1);
    feed.doc(&json!({"cursor": "2", "complete": false,
        "jti": [{"jti": "b", "exp": NOW + 100}, {"jti": "c", "exp": NOW + 100}]}));
    host.advance(Duration::from_secs(10));
    assert_eq!(metric(&host, "entries"), 3);
    feed.serve(UpstreamReply::status(304, &[], b""));
    host.advance(Duration::from_secs(90));
    assert_eq!(metric(&host, "entries"), 2, "a dropped after exp + skew");
    host.advance(Duration::from_secs(70));
    assert_eq!(metric(&host, "entries"), 0, "b and c after theirs");
    assert!(vm.alive());
}

#[test]
fn endpoint_faults_keep_the_held_list_are_counted_logged_and_recover() {
    let (host, feed) = host_with_feed();
    let good = json!({"cursor": "1", "jti": [{"jti": "bad"}]});
    let vm = started(&host, &feed, json!({"max_entries": 100}), &good);
    let revoked_token = token("bad", "alice", NOW - 10);
    let fine = token("fine", "alice", NOW - 10);
    let many: Vec<Value> = (0..150).map(|i| json!({"jti": format!("x{i}")})).collect();
    let faults: Vec<(&str, UpstreamReply, &str)> = vec![
        ("down", UpstreamReply::ConnectFailure, "HTTP status 503"),
        ("reset", UpstreamReply::Reset, "no response"),
        (
            "slow",
            UpstreamReply::status(200, &[], good.to_string().as_bytes())
                .after(Duration::from_secs(5)),
            "HTTP status 504",
        ),
        (
            "5xx",
            UpstreamReply::status(500, &[], b"oops"),
            "HTTP status 500",
        ),
        (
            "truncated",
            UpstreamReply::status(200, &[], br#"{"cursor": "2", "jti": [{"jti": "x"#),
            "not a revocation feed document",
        ),
        (
            "wrong types",
            UpstreamReply::status(200, &[], br#"{"jti": [{"jti": 42}]}"#),
            "not a revocation feed document",
        ),
        (
            "huge",
            UpstreamReply::status(200, &[], &vec![b' '; 100_000]),
            "body of 100000 bytes exceeds the limit of 65536",
        ),
        (
            "overflow",
            UpstreamReply::status(200, &[], json!({"jti": many}).to_string().as_bytes()),
            "the update would hold 150 entries",
        ),
    ];
    let mut failed = 0;
    let mut ok_polls = metric(&host, "poll_ok");
    for (name, reply, logged) in faults {
        feed.serve(reply);
        failed += 1;
        // The next poll is due within 10 s; a slow one fails 2 s later.
        for _ in 0..13 {
            host.advance(Duration::from_secs(1));
            if metric(&host, "poll_failed") == failed {
                break;
            }
        }
        assert_eq!(metric(&host, "poll_failed"), failed, "{name}");
        assert!(vm.alive(), "{name}: {:?}", vm.failure());
        assert!(
            vm.logged(&format!("revocation poll failed: {logged}")),
            "{name}: {:?}",
            vm.log_messages()
        );
        assert!(vm.logged("keeping the 1 entries held"), "{name}");
        // Held list kept: still refused; others still allowed (not stale yet).
        assert_eq!(request(&vm, "/orders", &revoked_token), revoked(), "{name}");
        assert_eq!(request(&vm, "/orders", &fine), ok(), "{name}");
        assert_eq!(metric(&host, "entries"), 1, "{name}");
        // Recovery when the fault ends, at the next poll.
        feed.doc(&good);
        ok_polls += 1;
        for _ in 0..11 {
            host.advance(Duration::from_secs(1));
            if metric(&host, "poll_ok") == ok_polls {
                break;
            }
        }
        assert_eq!(metric(&host, "poll_ok"), ok_polls, "{name}: recovered");
        assert_eq!(metric(&host, "poll_failed"), failed, "{name}: one failure");
    }
    assert_eq!(metric(&host, "overflow"), 1);
    assert!(
        vm.logged("150 entries, more than max_entries allows (100)"),
        "{:?}",
        vm.log_messages()
    );
}

#[test]
fn a_stale_list_fails_closed_when_configured() {
    let (host, feed) = host_with_feed();
    let vm = started(
        &host,
        &feed,
        json!({"max_staleness_seconds": 30, "on_stale": "fail_closed"}),
        &json!({"cursor": "1"}),
    );
    let t = token("j", "alice", NOW - 10);
    assert_eq!(request(&vm, "/orders", &t), ok());
    feed.serve(UpstreamReply::ConnectFailure);
    host.advance(Duration::from_secs(25));
    assert_eq!(request(&vm, "/orders", &t), ok(), "within the bound");
    host.advance(Duration::from_secs(10));
    assert_eq!(request(&vm, "/orders", &t), unavailable());
    assert_eq!(request(&vm, "/admin", &t), unavailable());
    assert!(metric(&host, "stale_denied") >= 2);
    assert!(
        vm.logged("revocation list is stale"),
        "{:?}",
        vm.log_messages()
    );
    // Public routes are not affected.
    assert_eq!(request(&vm, "/healthz", &t), ok());
    // Back once a poll succeeds.
    feed.doc(&json!({"cursor": "2"}));
    host.advance(Duration::from_secs(10));
    assert_eq!(request(&vm, "/orders", &t), ok());
    assert!(vm.logged("revocation list is fresh again"));
}

#[test]
fn a_stale_list_fails_open_by_default_but_never_on_sensitive_rules() {
    for on_stale in [None, Some("fail_open")] {
        let (host, feed) = host_with_feed();
        let extra = match on_stale {
            Some(o) => json!({"max_staleness_seconds": 30, "on_stale": o}),
            None => json!({"max_staleness_seconds": 30}),
        };
        let vm = started(
            &host,
            &feed,
            extra,
            &json!({"cursor": "1", "jti": [{"jti": "bad"}]}),
        );
        let t = token("j", "alice", NOW - 10);
        feed.serve(UpstreamReply::status(500, &[], b""));
        host.advance(Duration::from_secs(40));
        assert_eq!(request(&vm, "/orders", &t), ok(), "{on_stale:?}");
        assert_eq!(request(&vm, "/admin", &t), unavailable(), "{on_stale:?}");
        // What the stale list holds is still refused.
        assert_eq!(
            request(&vm, "/orders", &token("bad", "alice", NOW - 10)),
            revoked()
        );
        assert_eq!(metric(&host, "stale_allowed"), 1, "{on_stale:?}");
        assert_eq!(metric(&host, "stale_denied"), 1, "{on_stale:?}");
        assert!(
            vm.logged("1 request(s) allowed on a stale revocation list"),
            "{:?}",
            vm.log_messages()
        );
    }
}

#[test]
fn before_the_first_poll_answers_a_request_waits_then_on_stale_applies() {
    // The first poll fails: the paused request gets the stale outcome.
    let (host, feed) = host_with_feed();
    feed.serve(UpstreamReply::ConnectFailure);
    let vm = configured_vm(
        &host,
        &revocation_config(json!({"on_stale": "fail_closed"})),
    );
    let t = token("j", "alice", NOW - 10);
    let (s, out) = open(&vm, "/orders", &t);
    assert_eq!(out, Outcome::Paused);
    host.advance(Duration::from_millis(250));
    assert_eq!(outcome(&s.request_outcome()), unavailable());
    // While it keeps failing, requests are answered at once.
    assert_eq!(request(&vm, "/orders", &t), unavailable());
    // Fail open (default): let through after the failed first poll, but not
    // on a sensitive rule.
    let (host, feed) = host_with_feed();
    feed.serve(UpstreamReply::Hang);
    let vm = configured_vm(&host, &revocation_config(json!({})));
    let (s1, _) = open(&vm, "/orders", &t);
    let (s2, _) = open(&vm, "/admin", &t);
    host.advance(Duration::from_millis(2500)); // the 2 s timeout
    assert_eq!(outcome(&s1.request_outcome()), ok());
    assert_eq!(outcome(&s2.request_outcome()), unavailable());
    assert_eq!(metric(&host, "poll_failed"), 1);
    // A first poll that answers resumes the request with the list applied.
    let (host, feed) = host_with_feed();
    feed.doc(&json!({"jti": [{"jti": "j"}]}));
    let vm = configured_vm(&host, &revocation_config(json!({})));
    let (s, out) = open(&vm, "/orders", &t);
    assert_eq!(out, Outcome::Paused);
    host.advance(Duration::from_millis(250));
    assert_eq!(outcome(&s.request_outcome()), revoked());
}
