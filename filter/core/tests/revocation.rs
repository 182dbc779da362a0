//! Revocation: the feed parser, merge, prune, lookup, the cap, the poll state
//! machine, and the decision on revoked tokens and stale lists.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
// On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
// (filter/scripts/test-core-wasm.sh).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::cell::RefCell;

use scopegate_core::cache::TokenCache;
use scopegate_core::keys::Key;
use scopegate_core::revocation::{
    FeedError, Freshness, PollRequest, Polled, RemoteRevocations, Revocation, RevocationList,
    RevocationView, Revoked, parse_feed,
};
use scopegate_core::{Decision, KeySource, Policy, Reason, Request, compile_json};
use serde_json::{Value, json};

fn policy_with(revocation: Value, rules: Value) -> Policy {
    let mut c = config(rules);
    c["providers"][0]["revocation"] = revocation;
    compile_json(c.to_string().as_bytes()).unwrap()
}

fn remote_policy(extra: Value) -> Policy {
    let mut r = json!({"remote": {"cluster": "auth", "authority": "auth.test"}});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    policy_with(r, default_rules())
}

fn revocation(p: &Policy) -> &Revocation {
    p.providers()[0].revocation().unwrap()
}

fn feed_state(p: &Policy) -> RemoteRevocations {
    RemoteRevocations::new(revocation(p)).unwrap()
}

fn token_with(extra: Value) -> String {
    let mut c = claims("svc-a:orders:read");
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.remove(k);
        } else {
            c.insert(k.clone(), v.clone());
        }
    }
    sign("RS256", Some("rsa-1"), &c)
}

/// What the shim provides: a fetched list, and a verified-token cache.
struct Source {
    view: Option<RevocationView>,
    cache: RefCell<TokenCache>,
}

impl Source {
    fn new(view: Option<RevocationView>) -> Source {
        Source {
            view,
            cache: RefCell::new(TokenCache::new(16)),
        }
    }
}

impl KeySource for Source {
    fn fetched(&self, _: usize) -> Option<&[Key]> {
        None
    }
    fn token_cache(&self) -> Option<&RefCell<TokenCache>> {
        Some(&self.cache)
    }
    fn revocations(&self, _: usize) -> Option<&RevocationView> {
        self.view.as_ref()
    }
}

fn decide_at(p: &Policy, src: &dyn KeySource, path: &str, token: &str, now: i64) -> Decision {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    p.decide_with(
        &Request {
            method: "GET",
            path,
            headers: &headers,
            now_unix_seconds: now,
            route_name: None,
        },
        src,
    )
}

fn decide(p: &Policy, src: &dyn KeySource, token: &str) -> Decision {
    decide_at(p, src, "/orders", token, NOW)
}

#[track_caller]
fn denied(d: &Decision) -> (u16, Reason) {
    match d {
        Decision::Deny(d) => (d.status, d.reason),
        other => panic!("not a denial: {other:?}"),
    }
}

#[track_caller]
fn allowed(d: &Decision) -> &scopegate_core::Allow {
    match d {
        Decision::Allow(a) => a,
        other => panic!("not allowed: {other:?}"),
    }
}

fn list_of(doc: Value, now: i64) -> RevocationList {
    let p = remote_policy(json!({}));
    let mut r = feed_state(&p);
    r.started(now);
    r.answered(now, 200, None, doc.to_string().as_bytes())
        .unwrap();
    r.view().list().clone()
}

// ---- the feed document ----

#[test]
fn a_feed_document_parses_with_defaults() {
    let f = parse_feed(
        br#"{"cursor": "1042", "jti": [{"jti": "a", "exp": 5}, {"jti": "b"}],
             "subjects": [{"sub": "alice", "revoked_before": 10}]}"#,
        1 << 20,
    )
    .unwrap();
    assert_eq!(f.cursor.as_deref(), Some("1042"));
    assert!(f.complete, "complete defaults to true");
    assert_eq!(f.jti, vec![("a".into(), Some(5)), ("b".into(), None)]);
    assert_eq!(f.subjects, vec![("alice".into(), 10, None)]);
    let empty = parse_feed(b"{}", 1 << 20).unwrap();
    assert!(empty.jti.is_empty() && empty.subjects.is_empty() && empty.complete);
}

#[test]
fn a_wrong_or_unknown_shape_is_refused_whole() {
    let bad: [&[u8]; 14] = [
        b"",
        b"[]",
        b"<html>",
        br#"{"jti": [{"jti": "a"}"#,                  // truncated
        br#"{"jti": "a"}"#,                           // not an array
        br#"{"jti": [{"jti": 7}]}"#,                  // jti not a string
        br#"{"jti": [{"jti": "a", "exp": "soon"}]}"#, // exp not a number
        br#"{"jti": [{"jti": "a", "exp": 1.5}]}"#,    // exp not an integer
        br#"{"subjects": [{"sub": "alice"}]}"#,       // revoked_before missing
        br#"{"jti": [{"jti": "a", "kind": "x"}]}"#,   // unknown member in an entry
        br#"{"sessions": [{"sid": "1"}]}"#,           // unknown top-level member
        br#"{"complete": "yes"}"#,                    // complete not a bool
        br#"{"jti": [{"jti": "a", "jti": "b"}]}"#,    // repeated member
        br#"{"jti": [{"jti": ""}]}"#,                 // empty id
    ];
    for (i, body) in bad.iter().enumerate() {
        let e = parse_feed(body, 1 << 20).unwrap_err();
        assert!(matches!(e, FeedError::Invalid(_)), "{i}: {e:?}");
    }
    let big = format!(r#"{{"jti": [{{"jti": "{}"}}]}}"#, "x".repeat(70_000));
    assert_eq!(
        parse_feed(big.as_bytes(), 65_536).unwrap_err(),
        FeedError::TooLarge {
            bytes: big.len(),
            limit: 65_536
        }
    );
}

// ---- the list: lookup, expiry ----

#[test]
fn lookup_matches_jti_exactly_and_subjects_by_iat() {
    let mut l = RevocationList::default();
    l.add_jti("3f7c1e9a".into(), NOW + 100);
    l.add_subject("alice".into(), NOW, NOW + 100);
    assert_eq!(
        l.lookup(Some("3f7c1e9a"), None, None, NOW),
        Some(Revoked::Jti)
    );
    assert_eq!(l.lookup(Some("3f7c1e9"), None, None, NOW), None);
    assert_eq!(l.lookup(Some("3F7C1E9A"), None, None, NOW), None);
    // A token issued before revoked_before is refused; at or after, not.
    assert_eq!(
        l.lookup(None, Some("alice"), Some(NOW - 1), NOW),
        Some(Revoked::Subject {
            revoked_before: NOW
        })
    );
    assert_eq!(l.lookup(None, Some("alice"), Some(NOW), NOW), None);
    assert_eq!(l.lookup(None, Some("alice"), Some(NOW + 5), NOW), None);
    // No iat: cannot be shown to be newer, refused.
    assert!(l.lookup(None, Some("alice"), None, NOW).is_some());
    assert_eq!(l.lookup(None, Some("bob"), None, NOW), None);
    // After its time an entry no longer applies, pruned or not.
    assert_eq!(l.lookup(Some("3f7c1e9a"), None, None, NOW + 101), None);
    assert_eq!(l.len(), 2);
    assert_eq!(l.prune(NOW + 101), 2);
    assert!(l.is_empty());
}

#[test]
fn entries_expire_at_exp_plus_skew_or_after_the_token_lifetime() {
    // Provider skew 60 s (default), lifetime 3600 s.
    let p = remote_policy(json!({"max_token_lifetime_seconds": 3600}));
    let mut r = feed_state(&p);
    r.started(NOW);
    let doc = json!({"cursor": "1",
        "jti": [{"jti": "with-exp", "exp": NOW + 100}, {"jti": "no-exp"}],
        "subjects": [{"sub": "alice", "revoked_before": NOW - 10, "exp": NOW + 200},
                     {"sub": "bob", "revoked_before": NOW - 10}]});
    r.answered(NOW, 200, None, doc.to_string().as_bytes())
        .unwrap();
    let l = r.view().list();
    assert_eq!(l.jti_until("with-exp"), Some(NOW + 160));
    assert_eq!(
        l.jti_until("no-exp"),
        Some(NOW + 3660),
        "first seen + lifetime + skew"
    );
    assert_eq!(l.subject("alice"), Some((NOW - 10, NOW + 260)));
    assert_eq!(l.subject("bob"), Some((NOW - 10, NOW - 10 + 3660)));
    // A complete document repeating "no-exp" later keeps its first-seen time.
    r.started(NOW + 1000);
    let doc2 = json!({"cursor": "2", "jti": [{"jti": "no-exp"}]});
    r.answered(NOW + 1000, 200, None, doc2.to_string().as_bytes())
        .unwrap();
    assert_eq!(r.view().list().jti_until("no-exp"), Some(NOW + 3660));
    assert_eq!(r.view().list().len(), 1, "complete replaces");
    // Pruned once over.
    assert_eq!(r.prune(NOW + 3000), 0);
    assert_eq!(r.prune(NOW + 3661), 1);
    assert!(r.view().list().is_empty());
    // Entries already over when they arrive are not held at all.
    let l = list_of(json!({"jti": [{"jti": "old", "exp": NOW - 61}]}), NOW);
    assert!(l.is_empty());
}

// ---- polling: merge, cursor, ETag, 304, faults ----

#[test]
fn incremental_polls_send_since_and_if_none_match_and_merge() {
    let p = remote_policy(json!({}));
    let mut r = feed_state(&p);
    assert_eq!(
        r.next_poll(NOW),
        Some(PollRequest {
            path: "/revocations".into(),
            if_none_match: None
        })
    );
    r.started(NOW);
    assert_eq!(r.next_poll(NOW), None, "one poll at a time");
    let doc = json!({"cursor": "10 20/x", "complete": true, "jti": [{"jti": "a"}]});
    let got = r
        .answered(NOW, 200, Some("\"v1\""), doc.to_string().as_bytes())
        .unwrap();
    assert_eq!(
        got,
        Polled::Updated {
            entries: 1,
            changed: true
        }
    );
    assert_eq!(r.version(), 1);
    assert_eq!(r.next_poll(NOW + 9), None, "poll interval 10 s");
    assert_eq!(
        r.next_poll(NOW + 10),
        Some(PollRequest {
            path: "/revocations?since=10%2020%2Fx".into(),
            if_none_match: Some("\"v1\"".into())
        })
    );
    r.started(NOW + 10);
    assert_eq!(
        r.answered(NOW + 10, 304, None, b"").unwrap(),
        Polled::NotModified
    );
    assert_eq!(r.version(), 1, "nothing new to publish");
    assert_eq!(r.view().last_ok(), Some(NOW + 10));
    // A delta merges.
    r.started(NOW + 20);
    let delta = json!({"cursor": "11", "complete": false, "jti": [{"jti": "b"}],
                       "subjects": [{"sub": "alice", "revoked_before": NOW}]});
    r.answered(NOW + 20, 200, None, delta.to_string().as_bytes())
        .unwrap();
    let l = r.view().list();
    assert!(l.jti_until("a").is_some() && l.jti_until("b").is_some());
    assert!(l.subject("alice").is_some());
    assert_eq!(r.version(), 2);
    let next = r.next_poll(NOW + 30).unwrap();
    assert_eq!(next.path, "/revocations?since=11");
    assert_eq!(next.if_none_match, None, "the last 200 had no ETag");
    // A complete document replaces.
    r.started(NOW + 30);
    r.answered(
        NOW + 30,
        200,
        None,
        br#"{"cursor": "12", "jti": [{"jti": "c"}]}"#,
    )
    .unwrap();
    assert_eq!(r.view().list().len(), 1);
    assert!(r.view().list().jti_until("c").is_some());
}

#[test]
fn a_failed_poll_keeps_the_list_and_retries_at_the_interval() {
    let p = remote_policy(json!({}));
    let mut r = feed_state(&p);
    r.started(NOW);
    r.answered(NOW, 200, None, br#"{"cursor": "1", "jti": [{"jti": "a"}]}"#)
        .unwrap();
    let held = r.view().clone();
    let faults: [(u16, &[u8]); 5] = [
        (500, b"oops"),
        (503, b"upstream connect error"),
        (0, b""),
        (200, br#"{"jti": [{"jti": "a"}"#),
        (200, br#"{"jti": [{"jti": 1}]}"#),
    ];
    let mut t = NOW;
    for (i, (status, body)) in faults.iter().enumerate() {
        t += 10;
        assert!(r.next_poll(t).is_some(), "{i}");
        r.started(t);
        assert!(r.answered(t, *status, None, body).is_err(), "{i}");
        assert_eq!(r.view().list(), held.list(), "{i}: held list kept");
        assert_eq!(r.view().last_ok(), Some(NOW), "{i}: not fresh");
        assert_eq!(r.failures(), u32::try_from(i + 1).unwrap());
        assert_eq!(r.next_poll(t + 9), None, "{i}: no retry storm");
    }
    assert_eq!(r.version(), 1);
    t += 10;
    r.started(t);
    r.answered(t, 304, None, b"").unwrap();
    assert_eq!(r.failures(), 0);
    assert_eq!(r.view().last_ok(), Some(t));
}

#[test]
fn answers_that_make_no_sense_are_failures() {
    let p = remote_policy(json!({}));
    let mut r = feed_state(&p);
    r.started(NOW);
    assert!(matches!(
        r.answered(NOW, 304, None, b""),
        Err(FeedError::Unexpected(_))
    ));
    r.started(NOW + 10);
    assert!(matches!(
        r.answered(
            NOW + 10,
            200,
            None,
            br#"{"complete": false, "jti": [{"jti": "a"}]}"#
        ),
        Err(FeedError::Unexpected(_))
    ));
    assert_eq!(r.view().last_ok(), None);
}

#[test]
fn an_update_over_max_entries_is_refused_and_the_held_list_kept() {
    let p = remote_policy(json!({"max_entries": 3, "jti": [{"jti": "inline"}]}));
    let mut r = feed_state(&p);
    r.started(NOW);
    r.answered(
        NOW,
        200,
        None,
        br#"{"cursor": "1", "jti": [{"jti": "a"}, {"jti": "b"}]}"#,
    )
    .unwrap();
    r.started(NOW + 10);
    let e = r
        .answered(
            NOW + 10,
            200,
            None,
            br#"{"cursor": "2", "complete": false, "jti": [{"jti": "c"}]}"#,
        )
        .unwrap_err();
    // Two fetched entries may be held besides the one inline.
    assert_eq!(e, FeedError::Overflow { entries: 3, max: 2 });
    assert!(e.to_string().contains("3 entries"));
    assert_eq!(r.view().list().len(), 2);
    assert_eq!(r.cursor(), Some("1"), "the cursor does not move on");
    assert_eq!(r.view().last_ok(), Some(NOW));
    // Expired entries do not count.
    let p = remote_policy(json!({"max_entries": 1}));
    let mut r = feed_state(&p);
    r.started(NOW);
    let doc = json!({"jti": [{"jti": "old", "exp": NOW - 100}, {"jti": "new"}]});
    r.answered(NOW, 200, None, doc.to_string().as_bytes())
        .unwrap();
}

#[test]
fn workers_share_the_list_through_publication_and_state() {
    let p = remote_policy(json!({}));
    let mut poller = feed_state(&p);
    let mut other = feed_state(&p);
    poller.started(NOW);
    poller
        .answered(
            NOW,
            200,
            Some("e1"),
            br#"{"cursor": "7", "jti": [{"jti": "a"}], "subjects": [{"sub": "bob", "revoked_before": 5}]}"#,
        )
        .unwrap();
    assert_eq!(other.adopt_state(&poller.shared_state(), NOW), Some(1));
    assert_eq!(
        other.next_poll(NOW + 5),
        None,
        "the poller's schedule is shared"
    );
    assert!(other.adopt_publication(&poller.publication(), NOW).unwrap());
    assert_eq!(other.view(), poller.view());
    assert_eq!(other.version(), 1);
    // It polls next with the poller's cursor and ETag.
    let next = other.next_poll(NOW + 10).unwrap();
    assert_eq!(next.path, "/revocations?since=7");
    assert_eq!(next.if_none_match.as_deref(), Some("e1"));
    // Old or repeated publications change nothing.
    assert!(!other.adopt_publication(&poller.publication(), NOW).unwrap());
    assert_eq!(other.adopt_state(&poller.shared_state(), NOW), None);
    assert!(other.adopt_publication(b"garbage", NOW).is_err());
    assert_eq!(other.version(), 1);
    // A failure elsewhere is known here too (no waiting for a poll that failed).
    poller.started(NOW + 10);
    assert!(poller.answered(NOW + 10, 500, None, b"").is_err());
    other.adopt_state(&poller.shared_state(), NOW + 10);
    assert_eq!(other.failures(), 1);
    assert_eq!(other.next_poll(NOW + 19), None);
    assert_eq!(other.view().last_ok(), Some(NOW));
}

// ---- config ----

#[test]
fn config_errors_name_their_path() {
    let bad = [
        (
            json!({"remote": {"cluster": "auth", "authority": "a", "poll_interval_seconds": 600}}),
            "providers[0].revocation.remote.poll_interval_seconds",
        ),
        (
            json!({"remote": {"cluster": "", "authority": "a"}}),
            "providers[0].revocation.remote.cluster",
        ),
        (
            json!({"remote": {"cluster": "auth", "authority": "a", "path": "revocations"}}),
            "providers[0].revocation.remote.path",
        ),
        (
            json!({"max_entries": 1, "jti": [{"jti": "a"}, {"jti": "b"}]}),
            "providers[0].revocation.jti",
        ),
        (
            json!({"max_entries": 0}),
            "providers[0].revocation.max_entries",
        ),
        (
            json!({"jti": [{"jti": ""}]}),
            "providers[0].revocation.jti[0].jti",
        ),
        (
            json!({"on_stale": "maybe"}),
            "providers[0].revocation.on_stale",
        ),
        (
            json!({"remote": {"cluster": "auth"}}),
            "providers[0].revocation.remote",
        ),
    ];
    for (r, path) in bad {
        let mut c = config(default_rules());
        c["providers"][0]["revocation"] = r.clone();
        let errors = compile_json(c.to_string().as_bytes()).unwrap_err();
        assert!(
            errors.iter().any(|e| e.path.starts_with(path)),
            "{r}: {errors:?}"
        );
    }
    let p = remote_policy(json!({}));
    let r = revocation(&p);
    assert_eq!(r.max_entries(), 100_000);
    assert_eq!(r.max_staleness_seconds(), 300);
    assert_eq!(r.on_stale(), None);
    let feed = r.remote().unwrap();
    assert_eq!(feed.path, "/revocations");
    assert_eq!(feed.poll_interval_seconds, 10);
    assert_eq!(feed.timeout_ms, 2000);
}

// ---- the decision ----

#[test]
fn decide_refuses_a_revoked_jti_with_401_token_revoked() {
    let p = policy_with(
        json!({"jti": [{"jti": "j-1", "exp": NOW + 300}]}),
        default_rules(),
    );
    let src = Source::new(None);
    let d = decide(&p, &src, &token_with(json!({"jti": "j-1"})));
    assert_eq!(denied(&d), (401, Reason::TokenRevoked));
    let Decision::Deny(deny) = &d else {
        unreachable!()
    };
    assert_eq!(deny.provider.as_deref(), Some("main"));
    assert_eq!(
        deny.www_authenticate().unwrap(),
        "Bearer realm=\"svc-a\", error=\"invalid_token\", error_description=\"the access token was revoked\""
    );
    assert!(deny.body().contains("\"reason\":\"token_revoked\""));
    // Another jti, or none, passes (inline-only: never stale).
    allowed(&decide(&p, &src, &token_with(json!({"jti": "j-2"}))));
    allowed(&decide(&p, &src, &token_with(json!({}))));
    // On a public route a revoked token is ignored, not honoured.
    let a = decide_at(
        &p,
        &src,
        "/healthz",
        &token_with(json!({"jti": "j-1"})),
        NOW,
    );
    let a = allowed(&a);
    assert!(a.principal.is_none());
    assert_eq!(
        a.ignored_token.as_ref().unwrap().reason,
        Reason::TokenRevoked
    );
}

#[test]
fn decide_refuses_a_revoked_subjects_older_token_and_allows_the_newer() {
    let p = remote_policy(json!({}));
    let mut r = feed_state(&p);
    r.started(NOW);
    let doc = json!({"subjects": [{"sub": "alice", "revoked_before": NOW - 5}]});
    r.answered(NOW, 200, None, doc.to_string().as_bytes())
        .unwrap();
    let src = Source::new(Some(r.view().clone()));
    let old = token_with(json!({"iat": NOW - 10}));
    let new = token_with(json!({"iat": NOW - 5}));
    let no_iat = token_with(json!({"iat": null}));
    let bob = token_with(json!({"sub": "bob", "iat": NOW - 10}));
    assert_eq!(denied(&decide(&p, &src, &old)), (401, Reason::TokenRevoked));
    assert_eq!(
        denied(&decide(&p, &src, &no_iat)),
        (401, Reason::TokenRevoked)
    );
    let a = decide(&p, &src, &new);
    assert!(!allowed(&a).revocation_stale);
    allowed(&decide(&p, &src, &bob));
}

#[test]
fn a_cached_token_is_refused_right_after_its_revocation() {
    let p = remote_policy(json!({}));
    let mut r = feed_state(&p);
    r.started(NOW);
    r.answered(NOW, 200, None, br#"{"cursor": "1"}"#).unwrap();
    let mut src = Source::new(Some(r.view().clone()));
    let t = token_with(json!({"jti": "j-9"}));
    allowed(&decide(&p, &src, &t));
    allowed(&decide(&p, &src, &t));
    assert_eq!(
        src.cache.borrow().stats().0,
        1,
        "the second was a cache hit"
    );
    r.started(NOW + 10);
    r.answered(
        NOW + 10,
        200,
        None,
        br#"{"cursor": "2", "complete": false, "jti": [{"jti": "j-9"}]}"#,
    )
    .unwrap();
    src.view = Some(r.view().clone());
    assert_eq!(
        denied(&decide_at(&p, &src, "/orders", &t, NOW + 10)),
        (401, Reason::TokenRevoked)
    );
    let (hits, _) = src.cache.borrow().stats();
    assert_eq!(hits, 2, "refused on a cache hit, without verifying again");
}

#[test]
fn a_stale_list_fails_open_by_default_and_closed_on_sensitive_rules() {
    let rules = json!([
        {"name": "orders", "match": {"prefix": "/orders"}, "require": "authenticated"},
        {"name": "admin", "match": {"prefix": "/admin"}, "require": "authenticated", "sensitive": true},
        {"name": "health", "match": {"exact": "/healthz"}, "require": "public"},
    ]);
    let stale_view = RevocationView::new(RevocationList::default(), Some(NOW - 301));
    let fresh_view = RevocationView::new(RevocationList::default(), Some(NOW - 300));
    let t = token_with(json!({}));
    for (on_stale, ordinary_closed) in [
        (None, false),
        (Some("fail_open"), false),
        (Some("fail_closed"), true),
    ] {
        let mut r = json!({"remote": {"cluster": "auth", "authority": "auth.test"}});
        if let Some(o) = on_stale {
            r["on_stale"] = json!(o);
        }
        let p = policy_with(r, rules.clone());
        assert_eq!(
            revocation(&p).freshness(Some(&stale_view), NOW),
            Freshness::Stale
        );
        let src = Source::new(Some(stale_view.clone()));
        let d = decide_at(&p, &src, "/orders", &t, NOW);
        if ordinary_closed {
            assert_eq!(
                denied(&d),
                (503, Reason::RevocationUnavailable),
                "{on_stale:?}"
            );
        } else {
            assert!(allowed(&d).revocation_stale, "{on_stale:?}");
        }
        // Sensitive always fails closed, even with on_stale: fail_open.
        let d = decide_at(&p, &src, "/admin", &t, NOW);
        assert_eq!(
            denied(&d),
            (503, Reason::RevocationUnavailable),
            "{on_stale:?}"
        );
        let Decision::Deny(deny) = &d else {
            unreachable!()
        };
        assert_eq!(deny.www_authenticate(), None);
        // Public routes are unaffected.
        let a = decide_at(&p, &src, "/healthz", &t, NOW);
        assert!(!allowed(&a).revocation_stale);
        // A fresh list (within max_staleness_seconds) allows everywhere.
        let src = Source::new(Some(fresh_view.clone()));
        assert!(!allowed(&decide_at(&p, &src, "/admin", &t, NOW)).revocation_stale);
    }
}

#[test]
fn before_the_first_poll_a_request_waits_with_the_stale_outcome_as_fallback() {
    let rules = json!([
        {"name": "orders", "match": {"prefix": "/orders"}, "require": "authenticated"},
        {"name": "admin", "match": {"prefix": "/admin"}, "require": "authenticated", "sensitive": true},
        {"name": "scoped", "match": {"prefix": "/scoped"}, "require": {"all_of": ["svc-a:nope"]}},
    ]);
    let p = policy_with(
        json!({"remote": {"cluster": "auth", "authority": "auth.test"}}),
        rules,
    );
    let t = token_with(json!({}));
    // Nothing fetched (the CLI's static keys, or the shim before any poll).
    for src in [
        Source::new(None),
        Source::new(Some(RevocationView::default())),
    ] {
        let d = decide_at(&p, &src, "/orders", &t, NOW);
        let Decision::Pending(pending) = &d else {
            panic!("{d:?}")
        };
        assert!(pending.revocation);
        assert_eq!(pending.provider, 0);
        assert_eq!(pending.fallback.reason, Reason::RevocationUnavailable);
        assert!(allowed(&pending.otherwise).revocation_stale, "fail open");
        let d = decide_at(&p, &src, "/admin", &t, NOW);
        let Decision::Pending(pending) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(
            denied(&pending.otherwise),
            (503, Reason::RevocationUnavailable)
        );
        // A denial the poll cannot change does not wait.
        assert_eq!(
            denied(&decide_at(&p, &src, "/scoped", &t, NOW)),
            (403, Reason::InsufficientScope)
        );
    }
    // Revoked inline while never polled: refused at once.
    let p = policy_with(
        json!({"remote": {"cluster": "auth", "authority": "auth.test"}, "jti": [{"jti": "x"}]}),
        default_rules(),
    );
    let d = decide(&p, &Source::new(None), &token_with(json!({"jti": "x"})));
    assert_eq!(denied(&d), (401, Reason::TokenRevoked));
}
