//! The verified-token cache: hits skip verification, and nothing stale is served.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::cell::{Cell, RefCell};

use scopegate_core::cache::TokenCache;
use scopegate_core::keys::Key;
use scopegate_core::{Decision, KeySource, Policy, Reason, Request};
use serde_json::json;

struct WithCache {
    cache: RefCell<TokenCache>,
    epoch: Cell<u64>,
}

impl WithCache {
    fn new(n: usize) -> WithCache {
        WithCache {
            cache: RefCell::new(TokenCache::new(n)),
            epoch: Cell::new(0),
        }
    }
}

impl KeySource for WithCache {
    fn fetched(&self, _: usize) -> Option<&[Key]> {
        None
    }
    fn epoch(&self, _: usize) -> u64 {
        self.epoch.get()
    }
    fn token_cache(&self) -> Option<&RefCell<TokenCache>> {
        Some(&self.cache)
    }
}

fn decide(p: &Policy, k: &WithCache, token: &str, now: i64) -> Decision {
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];
    p.decide_with(
        &Request {
            method: "GET",
            path: "/orders",
            headers: &headers,
            now_unix_seconds: now,
            ..Default::default()
        },
        k,
    )
}

fn allowed(d: &Decision) -> bool {
    matches!(d, Decision::Allow(_))
}

#[test]
fn a_repeated_token_is_served_from_the_cache_with_the_same_outcome() {
    let p = policy();
    let k = WithCache::new(16);
    let t = sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read"));
    let first = decide(&p, &k, &t, NOW);
    let second = decide(&p, &k, &t, NOW + 1);
    assert!(allowed(&first) && allowed(&second));
    assert_eq!(k.cache.borrow().stats(), (1, 1), "one miss, then one hit");
    let (Decision::Allow(a), Decision::Allow(b)) = (&first, &second) else {
        unreachable!()
    };
    assert_eq!(a.principal, b.principal);
    assert_eq!(a.set_headers, b.set_headers);
    // Scopes are still checked per request: the cached principal lacks write.
    let bearer = format!("Bearer {t}");
    let headers = [("authorization", bearer.as_str())];
    let d = p.decide_with(
        &Request {
            method: "POST",
            path: "/orders",
            headers: &headers,
            now_unix_seconds: NOW,
            ..Default::default()
        },
        &k,
    );
    assert!(
        matches!(d, Decision::Deny(ref d) if d.reason == Reason::InsufficientScope),
        "{d:?}"
    );
}

#[test]
fn a_cached_token_still_expires() {
    let p = policy();
    let k = WithCache::new(16);
    let t = sign("HS256", None, &claims("svc-a:orders:read")); // exp NOW+300, skew 60
    assert!(allowed(&decide(&p, &k, &t, NOW)));
    assert!(allowed(&decide(&p, &k, &t, NOW + 359)));
    match decide(&p, &k, &t, NOW + 361) {
        Decision::Deny(d) => assert_eq!(d.reason, Reason::TokenExpired),
        other => panic!("{other:?}"),
    }
    // nbf in the future is not cached into validity either.
    let mut c = claims("svc-a:orders:read");
    c.insert("nbf".into(), json!(NOW + 100));
    let t = sign("HS256", None, &c);
    assert!(!allowed(&decide(&p, &k, &t, NOW)));
    assert!(allowed(&decide(&p, &k, &t, NOW + 41)));
    assert!(
        !allowed(&decide(&p, &k, &t, NOW)),
        "clock went back: not valid yet, cache or not"
    );
}

#[test]
fn a_key_change_invalidates_cached_verifications() {
    let p = policy();
    let k = WithCache::new(16);
    let t = sign("ES256", Some("ec-1"), &claims("svc-a:orders:read"));
    decide(&p, &k, &t, NOW);
    decide(&p, &k, &t, NOW);
    assert_eq!(k.cache.borrow().stats(), (1, 1));
    k.epoch.set(1);
    decide(&p, &k, &t, NOW);
    assert_eq!(
        k.cache.borrow().stats(),
        (1, 2),
        "new epoch: verified again"
    );
}

#[test]
fn the_cache_is_bounded_and_refusals_are_not_cached() {
    let p = policy();
    let k = WithCache::new(8);
    for i in 0..50 {
        let mut c = claims("svc-a:orders:read");
        c.insert("jti".into(), json!(i));
        decide(&p, &k, &sign("HS256", None, &c), NOW);
    }
    assert_eq!(k.cache.borrow().len(), 8);
    let k = WithCache::new(8);
    let mut bad = sign("HS256", None, &claims("svc-a:orders:read"));
    bad.push('A');
    for _ in 0..3 {
        assert!(!allowed(&decide(&p, &k, &bad, NOW)));
    }
    assert!(k.cache.borrow().is_empty());
    // Disabled: nothing kept.
    let k = WithCache::new(0);
    let t = sign("HS256", None, &claims("svc-a:orders:read"));
    decide(&p, &k, &t, NOW);
    assert!(k.cache.borrow().is_empty());
}

#[test]
fn a_cached_principal_is_evaluated_again_per_rule_and_per_policy() {
    // A hit skips the evaluation of a rule that already allowed the cached
    // principal (`RuleMemo`); the memo must never carry an allow to another
    // rule, or to a recompiled policy that reuses the cache.
    let open = policy();
    let k = WithCache::new(16);
    let t = sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read"));
    for now in [NOW, NOW + 1, NOW + 2] {
        assert!(allowed(&decide(&open, &k, &t, now)), "GET /orders at {now}");
    }
    assert_eq!(k.cache.borrow().stats(), (2, 1));
    let post = |p: &Policy| {
        let bearer = format!("Bearer {t}");
        let headers = [("authorization", bearer.as_str())];
        p.decide_with(
            &Request {
                method: "POST",
                path: "/orders",
                headers: &headers,
                now_unix_seconds: NOW + 3,
                ..Default::default()
            },
            &k,
        )
    };
    for _ in 0..3 {
        assert_eq!(post(&open).reason(), Reason::InsufficientScope, "another rule");
    }
    // Same rules, stricter scope on GET /orders: the same cache, a new policy.
    let mut rules = default_rules();
    rules[1]["require"] = json!({"all_of": ["svc-a:orders:read", "svc-a:orders:audit"]});
    let strict = scopegate_core::compile_json(config(rules).to_string().as_bytes()).unwrap();
    let misses = k.cache.borrow().stats().1;
    let d = decide(&strict, &k, &t, NOW + 4);
    assert_eq!(d.reason(), Reason::InsufficientScope, "{d:?}");
    assert_eq!(
        k.cache.borrow().stats().1,
        misses + 1,
        "another policy's principal is not served: verified and evaluated anew"
    );
    // And the first policy still allows from its memo.
    assert!(allowed(&decide(&open, &k, &t, NOW + 5)));
}

#[test]
fn a_cached_principal_carries_the_policys_scope_claim_reading() {
    // With `scope_claim`, the principal's scopes come from that claim; the
    // cached principal already holds them, so a hit is the same shared
    // principal (not a copy with scopes read again).
    let mut cfg = config(default_rules());
    cfg["scope_claim"] = json!("realm_access.scopes");
    let p = scopegate_core::compile_json(cfg.to_string().as_bytes()).unwrap();
    let k = WithCache::new(16);
    let mut c = claims("svc-a:orders:write");
    c.insert("realm_access".into(), json!({"scopes": ["svc-a:orders:read"]}));
    let t = sign("RS256", Some("rsa-1"), &c);
    let first = decide(&p, &k, &t, NOW);
    let second = decide(&p, &k, &t, NOW + 1);
    assert_eq!(k.cache.borrow().stats(), (1, 1));
    let (Decision::Allow(a), Decision::Allow(b)) = (&first, &second) else {
        panic!("refused: {first:?} / {second:?}")
    };
    let (pa, pb) = (a.principal.as_ref().unwrap(), b.principal.as_ref().unwrap());
    assert_eq!(pa.scopes, ["svc-a:orders:read"], "read from scope_claim, not `scope`");
    assert!(std::sync::Arc::ptr_eq(pa, pb), "the cached principal itself");
}
