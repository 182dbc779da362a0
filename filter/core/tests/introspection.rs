//! RFC 7662 introspection in the core: the callout request, the reply, the
//! principal, the cache, which provider introspects, and config errors.
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

use std::cell::RefCell;

use scopegate_core::introspection::{
    self as i, CallError, Digest, Introspected, IntrospectionCache, Tokens,
};
use scopegate_core::keys::Key;
use scopegate_core::{Decision, KeySource, Policy, Reason, Request, compile_json};
use serde_json::{Map, Value, json};

fn intro_config(extra: Value) -> Value {
    let mut c = config(default_rules());
    let mut intro = json!({
        "cluster": "auth", "authority": "auth.test",
        "client_id": "svc a", "client_secret": "p@ss:w rd",
    });
    for (k, v) in extra.as_object().unwrap() {
        intro[k] = v.clone();
    }
    c["providers"][0]["introspection"] = intro;
    c
}

fn policy_of(c: &Value) -> Policy {
    compile_json(c.to_string().as_bytes()).unwrap()
}

fn errors_of(c: &Value) -> Vec<String> {
    compile_json(c.to_string().as_bytes())
        .expect_err("the config is refused")
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn cfg(policy: &Policy) -> &i::Introspection {
    policy.providers()[0].introspection().unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// A KeySource with fixed introspection answers by digest.
struct Answers {
    answers: Vec<(usize, Digest, Introspected)>,
    asked: RefCell<Vec<(usize, Digest)>>,
}

impl Answers {
    fn none() -> Answers {
        Answers {
            answers: Vec::new(),
            asked: RefCell::new(Vec::new()),
        }
    }
    fn with(token: &str, answer: Introspected) -> Answers {
        Answers {
            answers: vec![(0, i::digest(token), answer)],
            asked: RefCell::new(Vec::new()),
        }
    }
}

impl KeySource for Answers {
    fn fetched(&self, _index: usize) -> Option<&[Key]> {
        None
    }
    fn introspected(&self, index: usize, digest: &Digest, _now: i64) -> Option<Introspected> {
        self.asked.borrow_mut().push((index, *digest));
        self.answers
            .iter()
            .find(|(p, d, _)| *p == index && d == digest)
            .map(|(_, _, a)| a.clone())
    }
}

fn decide(policy: &Policy, token: &str, keys: &dyn KeySource) -> Decision {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    policy.decide_with(
        &Request {
            method: "GET",
            path: "/orders",
            headers: &headers,
            now_unix_seconds: NOW,
            route_name: None,
        },
        keys,
    )
}

fn active(extra: Value) -> Introspected {
    let mut o = obj(
        json!({"active": true, "scope": "svc-a:orders:read", "sub": "bob", "aud": AUD, "exp": NOW + 60}),
    );
    for (k, v) in extra.as_object().unwrap() {
        o.insert(k.clone(), v.clone());
    }
    Introspected::Active(o)
}

#[track_caller]
fn denied(d: &Decision) -> (u16, Reason) {
    match d {
        Decision::Deny(d) => (d.status, d.reason),
        other => panic!("expected a denial, got {other:?}"),
    }
}

// ---- request building ----

#[test]
fn the_request_form_encodes_the_token_and_authenticates_with_basic() {
    let p = policy_of(&intro_config(json!({})));
    let call = i::request(cfg(&p), "a b+c/d=e&f%g~h\u{e9}");
    assert_eq!(call.cluster, "auth");
    assert_eq!(call.timeout_ms, 2000);
    let h = |n: &str| {
        call.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(h(":method"), Some("POST"));
    assert_eq!(h(":path"), Some("/oauth/introspect"));
    assert_eq!(h(":authority"), Some("auth.test"));
    assert_eq!(h("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(h("accept"), Some("application/json"));
    // RFC 6749 §2.3.1: id and secret are form-urlencoded, then base64.
    // base64("svc+a:p%40ss%3Aw+rd")
    assert_eq!(
        h("authorization"),
        Some("Basic c3ZjK2E6cCU0MHNzJTNBdytyZA==")
    );
    assert_eq!(
        String::from_utf8(call.body.clone()).unwrap(),
        "token=a+b%2Bc%2Fd%3De%26f%25g%7Eh%C3%A9&token_type_hint=access_token"
    );
    let debug = format!("{call:?} {:?}", cfg(&p));
    assert!(
        !debug.contains("p@ss") && !debug.contains("c3Zj") && !debug.contains("a+b"),
        "{debug}"
    );
}

#[test]
fn a_bearer_token_or_nothing_authenticates_the_call() {
    let mut c = intro_config(json!({"bearer_token": "tok-123"}));
    let o = c["providers"][0]["introspection"].as_object_mut().unwrap();
    o.remove("client_id");
    o.remove("client_secret");
    let p = policy_of(&c);
    let call = i::request(cfg(&p), "t");
    assert!(
        call.headers
            .contains(&("authorization".to_owned(), "Bearer tok-123".to_owned()))
    );
    c["providers"][0]["introspection"]
        .as_object_mut()
        .unwrap()
        .remove("bearer_token");
    let p = policy_of(&c);
    assert!(
        !i::request(cfg(&p), "t")
            .headers
            .iter()
            .any(|(k, _)| k == "authorization")
    );
    assert!(
        p.warnings()
            .iter()
            .any(|w| w.path == "providers[0].introspection"
                && w.to_string().contains("unauthenticated")),
        "{:?}",
        p.warnings()
    );
}

// ---- reply parsing ----

#[test]
fn replies_are_parsed_strictly() {
    let p = policy_of(&intro_config(json!({"max_body_bytes": 256})));
    let c = cfg(&p);
    let parse = |status: Option<u16>, body: &[u8]| i::parse_reply(c, status, body, body.len());
    assert_eq!(
        parse(Some(200), br#"{"active": false, "scope": 5}"#),
        Ok(Introspected::Inactive),
        "an inactive answer needs nothing else"
    );
    assert!(matches!(
        parse(Some(200), br#"{"active": true, "scope": "a b"}"#),
        Ok(Introspected::Active(_))
    ));
    let kind = |r: Result<Introspected, CallError>| r.unwrap_err().kind();
    assert_eq!(kind(parse(Some(500), b"{}")), "status");
    assert_eq!(kind(parse(Some(401), br#"{"active":true}"#)), "status");
    assert_eq!(
        kind(parse(Some(504), b"upstream request timeout")),
        "timeout"
    );
    assert_eq!(
        kind(parse(
            Some(503),
            b"upstream connect error or disconnect/reset before headers"
        )),
        "connect"
    );
    assert_eq!(kind(parse(None, b"")), "connect");
    for bad in [
        &b"<html>"[..],
        b"",
        b"[]",
        br#"{"scope": "a"}"#,
        br#"{"active": "true"}"#,
        br#"{"active": true, "active": false}"#,
        br#"{"active": true, "scope": ["a"]}"#,
        br#"{"active": true, "exp": "1"}"#,
        br#"{"active": true, "exp": 1.5}"#,
        br#"{"active": true, "sub": 7}"#,
        br#"{"active": true, "iss": null}"#,
        br#"{"active": true, "aud": [1]}"#,
    ] {
        assert_eq!(
            kind(parse(Some(200), bad)),
            "invalid",
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let big = format!(r#"{{"active": true, "pad": "{}"}}"#, "x".repeat(300));
    assert_eq!(kind(parse(Some(200), big.as_bytes())), "too_large");
    assert_eq!(
        i::parse_reply(c, Some(200), b"", 100_000).unwrap_err(),
        CallError::TooLarge(100_000),
        "the announced size counts even when the body was not read"
    );
}

// ---- mapping and checks, through the decision ----

#[test]
fn an_active_answer_becomes_the_principal_with_its_scopes() {
    let p = policy_of(&intro_config(json!({})));
    let answers = Answers::with("opaque-1", active(json!({"client_id": "web"})));
    let Decision::Allow(a) = decide(&p, "opaque-1", &answers) else {
        panic!("allowed")
    };
    let principal = a.principal.clone().unwrap();
    assert_eq!(principal.provider, "main");
    assert_eq!(principal.issuer, ISS);
    assert_eq!(principal.subject.as_deref(), Some("bob"));
    assert_eq!(principal.scopes, ["svc-a:orders:read"]);
    assert_eq!(principal.claims["client_id"], "web");
    assert!(
        a.set_headers
            .contains(&("x-scopegate-sub".into(), "bob".into()))
    );
    assert!(a.removes("authorization"));
    let answers = Answers::with("opaque-1", active(json!({"scope": "svc-a:me other"})));
    let d = decide(&p, "opaque-1", &answers);
    assert_eq!(denied(&d), (403, Reason::InsufficientScope));
}

#[test]
fn refusals_from_the_answer() {
    let p = policy_of(&intro_config(json!({})));
    let cases = [
        (Introspected::Inactive, (401, Reason::TokenInactive)),
        (
            active(json!({"iss": "https://other.test"})),
            (401, Reason::IssuerNotAllowed),
        ),
        (active(json!({"iss": ISS})), (0, Reason::Allowed)),
        (
            active(json!({"aud": "svc-b"})),
            (401, Reason::AudienceNotAllowed),
        ),
        (active(json!({"aud": ["svc-b", AUD]})), (0, Reason::Allowed)),
        (
            active(json!({"exp": NOW - 61})),
            (401, Reason::TokenExpired),
        ),
        (active(json!({"exp": NOW - 59})), (0, Reason::Allowed)),
        (
            active(json!({"nbf": NOW + 61})),
            (401, Reason::TokenNotYetValid),
        ),
    ];
    for (answer, want) in cases {
        let d = decide(&p, "opaque-1", &Answers::with("opaque-1", answer.clone()));
        match d {
            Decision::Allow(a) => assert_eq!((0, a.reason), want, "{answer:?}"),
            other => assert_eq!(denied(&other), want, "{answer:?}"),
        }
    }
    let mut o = obj(json!({"active": true, "scope": "svc-a:orders:read", "aud": AUD}));
    let d = decide(
        &p,
        "opaque-1",
        &Answers::with("opaque-1", Introspected::Active(o.clone())),
    );
    assert!(
        matches!(d, Decision::Allow(_)),
        "exp is optional in RFC 7662: {d:?}"
    );
    o.remove("aud");
    let d = decide(
        &p,
        "opaque-1",
        &Answers::with("opaque-1", Introspected::Active(o)),
    );
    assert_eq!(denied(&d), (401, Reason::AudienceNotAllowed));
    let d = decide(
        &p,
        "opaque-1",
        &Answers::with("opaque-1", Introspected::Inactive),
    );
    let Decision::Deny(deny) = d else {
        unreachable!()
    };
    assert!(deny.www_authenticate().unwrap().contains("invalid_token"));
    assert_eq!(deny.provider.as_deref(), Some("main"));
}

#[test]
fn without_an_answer_the_decision_asks_the_shim_to_introspect() {
    let p = policy_of(&intro_config(json!({})));
    let answers = Answers::none();
    let d = decide(&p, "opaque-1", &answers);
    let Decision::Pending(pending) = &d else {
        panic!("pending: {d:?}")
    };
    assert_eq!(pending.provider, 0);
    let need = pending.introspect.as_ref().unwrap();
    assert_eq!(need.token, "opaque-1");
    assert_eq!(need.digest, sha256(b"opaque-1"));
    assert_eq!(pending.fallback.status, 503);
    assert_eq!(pending.fallback.reason, Reason::IntrospectionUnavailable);
    assert!(
        !format!("{d:?}").contains("opaque-1"),
        "the token stays out of debug output"
    );
    assert_eq!(
        answers.asked.borrow().as_slice(),
        &[(0, sha256(b"opaque-1"))]
    );
}

// ---- which provider ----

#[test]
fn jwts_take_the_jwt_path_and_opaque_tokens_are_introspected() {
    let p = policy_of(&intro_config(json!({})));
    let answers = Answers::none();
    let jwt = sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read"));
    assert!(matches!(decide(&p, &jwt, &answers), Decision::Allow(_)));
    assert!(
        answers.asked.borrow().is_empty(),
        "a JWT is not introspected"
    );
    // A JWT-shaped token that fails verification stays a JWT failure.
    let d = decide(&p, "aaa.bbb.ccc", &answers);
    assert_eq!(denied(&d).0, 401);
    assert!(answers.asked.borrow().is_empty());
    assert!(matches!(
        decide(&p, "not-a-jwt", &answers),
        Decision::Pending(_)
    ));

    // tokens: "all": the JWT is introspected too.
    let p = policy_of(&intro_config(json!({"tokens": "all"})));
    assert_eq!(cfg(&p).tokens, Tokens::All);
    let d = decide(&p, &jwt, &answers);
    assert!(
        matches!(&d, Decision::Pending(x) if x.introspect.is_some()),
        "{d:?}"
    );

    // Without introspection a non-JWT is malformed, as before.
    let p = policy_of(&config(default_rules()));
    assert_eq!(
        denied(&decide(&p, "not-a-jwt", &answers)),
        (401, Reason::Malformed)
    );
    assert!(!i::looks_like_jwt("a.b"));
    assert!(!i::looks_like_jwt("a..c"));
    assert!(!i::looks_like_jwt("a.b.c.d.e"));
    assert!(!i::looks_like_jwt("a+.b.c"));
    assert!(i::looks_like_jwt("a.b.c"));
    assert!(i::looks_like_jwt("a.b."));
}

#[test]
fn a_provider_may_only_introspect_and_other_sources_keep_their_provider() {
    let c = json!({
        "providers": [
            {"name": "jwt", "issuer": ISS, "audiences": [AUD], "jwks": jwks()},
            {"name": "opaque", "issuer": "https://opaque.test", "audience_check": false,
             "from": [{"header": "x-token"}],
             "introspection": {"cluster": "auth", "authority": "auth.test", "bearer_token": "b"}},
        ],
        "rules": default_rules(),
    });
    let p = policy_of(&c);
    assert!(p.providers()[1].keys().is_empty());
    let answers = Answers::none();
    let headers = [("x-token", "opaque-2")];
    let req = Request {
        method: "GET",
        path: "/orders",
        headers: &headers,
        now_unix_seconds: NOW,
        route_name: None,
    };
    let d = p.decide_with(&req, &answers);
    let Decision::Pending(x) = d else {
        panic!("pending")
    };
    assert_eq!(x.provider, 1);
    // The opaque token in the JWT provider's header is still malformed.
    assert_eq!(
        denied(&decide(&p, "opaque-2", &answers)),
        (401, Reason::Malformed)
    );
}

// ---- the cache ----

#[test]
fn the_cache_keeps_answers_until_their_time_and_is_bounded() {
    let mut cache = IntrospectionCache::new(2);
    let (a, b, c) = (i::digest("a"), i::digest("b"), i::digest("c"));
    cache.put(0, a, Introspected::Inactive, NOW, NOW + 10);
    assert_eq!(cache.get(0, &a, NOW + 9), Some(Introspected::Inactive));
    assert_eq!(cache.get(1, &a, NOW), None, "per provider");
    assert_eq!(cache.get(0, &a, NOW + 10), None, "expired at until");
    assert!(cache.is_empty(), "a stale entry is dropped");
    cache.put(0, a, Introspected::Inactive, NOW, NOW + 10);
    cache.put(0, b, Introspected::Inactive, NOW, NOW + 10);
    cache.put(0, c, Introspected::Inactive, NOW, NOW + 10);
    assert_eq!(cache.len(), 2, "bounded");
    assert_eq!(cache.get(0, &a, NOW), None, "the oldest went first");
    assert!(cache.get(0, &c, NOW).is_some());
    for n in 0..100 {
        cache.put(
            0,
            i::digest(&n.to_string()),
            Introspected::Inactive,
            NOW,
            NOW + 10,
        );
    }
    assert_eq!(cache.len(), 2);
    let mut off = IntrospectionCache::new(0);
    off.put(0, a, Introspected::Inactive, NOW, NOW + 10);
    assert!(off.is_empty(), "0 entries disables it");
    off.put(0, a, Introspected::Inactive, NOW, NOW);
    assert!(off.is_empty());
}

#[test]
fn answers_live_until_exp_capped_by_the_ttls() {
    let p = policy_of(&intro_config(
        json!({"cache_ttl_seconds": 100, "negative_cache_ttl_seconds": 7}),
    ));
    let c = cfg(&p);
    let with_exp = |exp: i64| Introspected::Active(obj(json!({"active": true, "exp": exp})));
    assert_eq!(i::cache_until(c, &with_exp(NOW + 30), NOW), NOW + 30);
    assert_eq!(i::cache_until(c, &with_exp(NOW + 3000), NOW), NOW + 100);
    assert_eq!(
        i::cache_until(c, &Introspected::Active(obj(json!({"active": true}))), NOW),
        NOW + 100
    );
    assert_eq!(i::cache_until(c, &Introspected::Inactive, NOW), NOW + 7);
    let p = policy_of(&intro_config(json!({})));
    let c = cfg(&p);
    assert_eq!(
        (
            c.cache_ttl_seconds,
            c.negative_cache_ttl_seconds,
            c.cache_entries,
            c.max_body_bytes,
            c.timeout_ms
        ),
        (300, 10, 4096, 65536, 2000),
        "defaults"
    );
    assert_eq!(c.shared_slots(), 1024);
}

#[test]
fn shared_slots_hold_the_digest_not_the_token_and_check_it() {
    let d = i::digest("secret-token");
    let v = i::shared_value(&d, NOW + 10, &active(json!({})));
    let text = String::from_utf8(v.clone()).unwrap();
    assert!(!text.contains("secret-token"));
    assert!(matches!(
        i::read_shared(&v, &d, NOW),
        Some((Introspected::Active(_), t)) if t == NOW + 10
    ));
    assert_eq!(i::read_shared(&v, &d, NOW + 10), None, "expired");
    assert_eq!(
        i::read_shared(&v, &i::digest("other"), NOW),
        None,
        "another token's slot"
    );
    assert_eq!(i::read_shared(b"garbage", &d, NOW), None);
    let v = i::shared_value(&d, NOW + 10, &Introspected::Inactive);
    assert_eq!(
        i::read_shared(&v, &d, NOW),
        Some((Introspected::Inactive, NOW + 10))
    );
    assert!(i::slot_of(&d, 16) < 16);
    assert_eq!(i::slot_of(&d, 0), 0);
}

// ---- config errors ----

#[test]
fn config_errors_name_the_field_and_never_the_secret() {
    let both = intro_config(json!({"bearer_token": "tok"}));
    let e = errors_of(&both);
    assert!(
        e.iter()
            .any(|e| e.starts_with("providers[0].introspection.bearer_token: use either")),
        "{e:?}"
    );
    let mut half = intro_config(json!({}));
    half["providers"][0]["introspection"]
        .as_object_mut()
        .unwrap()
        .remove("client_secret");
    let e = errors_of(&half);
    assert!(
        e.iter()
            .any(|e| e.starts_with("providers[0].introspection.client_secret:")),
        "{e:?}"
    );
    for (field, value) in [
        ("timeout_ms", json!(50)),
        ("cache_ttl_seconds", json!(100_000)),
        ("negative_cache_ttl_seconds", json!(7200)),
        ("cache_entries", json!(2_000_000)),
        ("max_body_bytes", json!(10)),
        ("path", json!("oauth")),
        ("cluster", json!("")),
        ("authority", json!("")),
    ] {
        let e = errors_of(&intro_config(json!({ field: value })));
        assert!(
            e.iter()
                .any(|e| e.starts_with(&format!("providers[0].introspection.{field}:"))),
            "{field}: {e:?}"
        );
    }
    let e = errors_of(&intro_config(json!({"tokens": "some"})));
    assert!(
        e.iter()
            .any(|e| e.contains("providers[0].introspection.tokens")),
        "{e:?}"
    );
    let e = errors_of(&intro_config(
        json!({"bearer_token": "has space", "client_id": null}),
    ));
    assert!(e.iter().all(|e| !e.contains("has space")), "{e:?}");
    let e = errors_of(&intro_config(json!({"client_secret": ""})));
    assert!(
        e.iter()
            .any(|e| e.starts_with("providers[0].introspection.client_secret: must not be empty")),
        "{e:?}"
    );
    // Keyless without introspection is still refused.
    let mut keyless = config(default_rules());
    keyless["providers"][0]
        .as_object_mut()
        .unwrap()
        .remove("jwks");
    let e = errors_of(&keyless);
    assert!(
        e.iter().any(|e| e.starts_with("providers[0].jwks:")),
        "{e:?}"
    );
}

#[test]
fn two_providers_introspecting_the_same_location_are_refused() {
    let intro = json!({"cluster": "auth", "authority": "auth.test", "bearer_token": "b"});
    let two = json!({
        "providers": [
            {"name": "a", "issuer": "https://a.test", "audience_check": false, "introspection": intro},
            {"name": "b", "issuer": "https://b.test", "audience_check": false, "introspection": intro},
        ],
        "rules": default_rules(),
    });
    let e = errors_of(&two);
    assert!(
        e.iter().any(|e| e
            .starts_with("providers[1].introspection: duplicate introspecting provider")
            && e.contains("\"a\"")
            && e.contains("\"b\"")),
        "{e:?}"
    );
    // tokens "all" next to a JWT provider at the same place is ambiguous too.
    let mut all = intro.clone();
    all["tokens"] = json!("all");
    let mixed = json!({
        "providers": [
            {"name": "jwt", "issuer": ISS, "audiences": [AUD], "jwks": jwks()},
            {"name": "b", "issuer": "https://b.test", "audience_check": false, "introspection": all},
        ],
        "rules": default_rules(),
    });
    let e = errors_of(&mixed);
    assert!(
        e.iter()
            .any(|e| e.starts_with("providers[1].introspection: duplicate")),
        "{e:?}"
    );
    // Opaque introspection next to a JWT provider at the same place is fine:
    // the token's shape decides.
    let fine = json!({
        "providers": [
            {"name": "jwt", "issuer": ISS, "audiences": [AUD], "jwks": jwks()},
            {"name": "b", "issuer": "https://b.test", "audience_check": false, "introspection": intro},
        ],
        "rules": default_rules(),
    });
    policy_of(&fine);
    // Different locations: fine too.
    let mut apart = two.clone();
    apart["providers"][1]["from"] = json!([{"header": "x-token"}]);
    policy_of(&apart);
}

#[test]
fn digests_and_hex_round_trip() {
    let d = i::digest("x");
    assert_eq!(d, sha256(b"x"));
    assert_eq!(i::parse_hex_digest(&i::hex(&d)), Some(d));
    assert_eq!(i::parse_hex_digest("zz"), None);
    assert_eq!(i::form_urlencode("AZaz09*-._ ~"), "AZaz09*-._+%7E");
}
