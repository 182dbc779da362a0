//! Token parsing and verification dispatch, through the whole decision.
//!
//! A policy trusting a key of every algorithm; tokens either raw bytes or
//! built from parts (algorithm, kid, claims) signed honestly and then mutated.
//! Invariants:
//! - a token that is not byte-for-byte an honestly signed one never yields a
//!   principal, and a non-public rule never allows without one;
//! - an honest, unmutated token with valid claims (and the right kid) is
//!   accepted: the target would notice if verification refused everything;
//! - the verified-token cache never changes a decision (asked twice, the
//!   second answer comes from the cache).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use scopegate_core::{Decision, Reason, Request};
use scopegate_fuzz::*;

#[derive(Debug, Arbitrary)]
enum Presented {
    Raw(String),
    Built(BuiltToken),
}

#[derive(Debug, Arbitrary)]
struct Input {
    token: Presented,
    /// 0: Authorization header, 1: query parameter, 2: cookie.
    location: u8,
    /// Which path: one per rule.
    path: u8,
}

const PATHS: [&str; 4] = ["/healthz", "/orders/7", "/admin/3", "/me"];

fn summary(d: &Decision) -> (u8, Reason, bool) {
    match d {
        Decision::Allow(a) => (0, a.reason, a.principal.is_some()),
        Decision::Deny(d) => (1, d.reason, false),
        Decision::Pending(p) => (2, p.fallback.reason, false),
    }
}

fuzz_target!(
    // Key generation (RSA-2048) before the first unit, not in its time budget.
    init: { policy(); },
    |input: Input| {
    let policy = policy();
    let (token, minted, built) = match &input.token {
        Presented::Raw(s) => (s.clone(), None, None),
        Presented::Built(b) => {
            let m = b.mint();
            (m.token.clone(), Some(m), Some(b))
        }
    };
    let path_base = PATHS[usize::from(input.path) % PATHS.len()];
    let bearer = format!("Bearer {token}");
    let with_query;
    let cookie;
    let (path, headers): (&str, Vec<(&str, &str)>) = match input.location % 3 {
        0 => (path_base, vec![("authorization", bearer.as_str())]),
        1 => {
            with_query = format!("{path_base}?access_token={token}");
            (with_query.as_str(), vec![])
        }
        _ => {
            cookie = format!("session={token}");
            (path_base, vec![("cookie", cookie.as_str())])
        }
    };
    let req = Request {
        method: "GET",
        path,
        headers: &headers,
        now_unix_seconds: scopegate_testkit::NOW,
        route_name: None,
    };
    let plain = policy.decide(&req);
    check_decision(&plain);

    let honest = minted.as_ref().is_some_and(|m| m.token == m.honest && m.alg != "none");
    if let Decision::Allow(a) = &plain {
        if a.principal.is_some() {
            assert!(honest, "a principal from a token that is not honestly signed: {token:?} -> {a:?}");
        }
        if path_base != "/healthz" {
            assert!(a.principal.is_some(), "non-public rule allowed without a principal: {a:?}");
        }
    }
    // Liveness: honest tokens with valid claims, presented where a token is
    // read (the query and cookie values must survive their decoding), verify.
    if let (Some(m), Some(b)) = (&minted, built)
        && honest
        && b.claims_valid()
        && matches!(b.kid, Choice::Expected)
        && input.location % 3 == 0
        && path_base == "/me"
    {
        assert!(
            matches!(&plain, Decision::Allow(a) if a.principal.is_some()),
            "honest {} token with valid claims refused: {plain:?} claims {:?}",
            m.alg,
            m.claims
        );
    }

    // The cache must not change the decision.
    let cached = Cached::new(8);
    let first = policy.decide_with(&req, &cached);
    let second = policy.decide_with(&req, &cached);
    assert_eq!(summary(&plain), summary(&first));
    assert_eq!(summary(&plain), summary(&second));
});
