//! Request facts -> decisions, and config -> errors with JSON paths.
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

use scopegate_core::{Decision, Reason, Request, compile_json};
use serde_json::json;

fn decide(method: &str, path: &str, token: Option<&str>) -> Decision {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    policy().decide(&Request {
        method,
        path,
        headers: &headers,
        now_unix_seconds: NOW,
        route_name: None,
    })
}

fn deny(d: Decision) -> scopegate_core::Deny {
    match d {
        Decision::Deny(d) => d,
        other => panic!("not a denial: {other:?}"),
    }
}

fn allow(d: Decision) -> scopegate_core::Allow {
    match d {
        Decision::Allow(a) => a,
        other => panic!("not allowed: {other:?}"),
    }
}

#[test]
fn scoped_route_allows_with_the_scope_and_forwards_claims() {
    let t = sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read other"));
    let a = allow(decide("GET", "/orders/7", Some(&t)));
    assert_eq!(a.rule.as_deref(), Some("orders-read"));
    assert_eq!(a.reason, Reason::Allowed);
    assert!(a.removes("authorization"));
    assert!(a.removes("x-scopegate-sub"));
    assert!(a.removes("x-scopegate-scope"));
    assert!(
        a.set_headers
            .contains(&("x-scopegate-sub".into(), "alice".into()))
    );
    assert!(
        a.set_headers
            .contains(&("x-scopegate-scope".into(), "svc-a:orders:read other".into()))
    );
}

#[test]
fn missing_token_is_401_without_error_code() {
    let d = deny(decide("GET", "/orders", None));
    assert_eq!((d.status, d.reason), (401, Reason::TokenMissing));
    assert_eq!(d.www_authenticate().unwrap(), "Bearer realm=\"svc-a\"");
    let body: serde_json::Value = serde_json::from_str(&d.body()).unwrap();
    assert_eq!(body["reason"], "token_missing");
    assert_eq!(body["rule"], "orders-read");
    // Another scheme is no bearer token.
    let headers = [("authorization", "Basic dXNlcjpwYXNz")];
    let d = policy().decide(&Request {
        method: "GET",
        path: "/orders",
        headers: &headers,
        now_unix_seconds: NOW,
        route_name: None,
    });
    assert_eq!(deny(d).reason, Reason::TokenMissing);
}

#[test]
fn invalid_token_is_401_invalid_token() {
    let mut c = claims("svc-a:orders:read");
    c.insert("exp".into(), json!(NOW - 3600));
    let d = deny(decide("GET", "/orders", Some(&sign("HS256", None, &c))));
    assert_eq!((d.status, d.reason), (401, Reason::TokenExpired));
    assert_eq!(
        d.www_authenticate().unwrap(),
        "Bearer realm=\"svc-a\", error=\"invalid_token\", error_description=\"the access token expired\""
    );
}

#[test]
fn insufficient_scope_is_403_naming_the_scopes() {
    let t = sign("HS256", None, &claims("svc-a:other"));
    let d = deny(decide("GET", "/orders", Some(&t)));
    assert_eq!((d.status, d.reason), (403, Reason::InsufficientScope));
    assert_eq!(d.required_scopes, vec!["svc-a:orders:read"]);
    let w = d.www_authenticate().unwrap();
    assert!(
        w.starts_with("Bearer realm=\"svc-a\", error=\"insufficient_scope\""),
        "{w}"
    );
    assert!(w.ends_with("scope=\"svc-a:orders:read\""), "{w}");
    // any_of: the alternative needing the fewest extra grants is named.
    let t = sign("HS256", None, &claims("svc-a:admin"));
    let d = deny(decide("POST", "/orders", Some(&t)));
    assert_eq!(d.required_scopes, vec!["svc-a:orders:write"]);
    // A tie (one grant missing either way) goes to the alternative with fewer scopes.
    let t = sign("HS256", None, &claims("svc-a:orders:read"));
    let d = deny(decide("POST", "/orders", Some(&t)));
    assert_eq!(d.required_scopes, vec!["svc-a:orders:write"]);
}

#[test]
fn nested_any_of_all_of_is_satisfied_either_way() {
    for scope in ["svc-a:orders:write", "svc-a:admin svc-a:orders:read"] {
        let t = sign("HS256", None, &claims(scope));
        assert_eq!(
            allow(decide("POST", "/orders", Some(&t))).rule.as_deref(),
            Some("orders-write"),
            "{scope}"
        );
    }
}

#[test]
fn scopes_match_exactly_and_case_sensitively() {
    for scope in [
        "svc-a:orders:READ",
        "svc-a:orders:read-all",
        "svc-a:orders",
        "svc-a:orders:rea",
    ] {
        let t = sign("HS256", None, &claims(scope));
        assert_eq!(
            deny(decide("GET", "/orders", Some(&t))).reason,
            Reason::InsufficientScope,
            "{scope}"
        );
    }
}

#[test]
fn public_route_needs_no_token_and_ignores_a_bad_one() {
    let a = allow(decide("GET", "/healthz", None));
    assert_eq!(
        (a.rule.as_deref(), a.reason),
        (Some("health"), Reason::Public)
    );
    assert!(a.principal.is_none());
    assert!(
        a.removes("x-scopegate-sub"),
        "spoofed claims stripped"
    );
    let a = allow(decide("GET", "/healthz", Some("garbage")));
    assert!(a.principal.is_none());
    assert_eq!(a.ignored_token.unwrap().reason, Reason::Malformed);
    assert!(a.set_headers.is_empty());
    let t = sign("HS256", None, &claims(""));
    let a = allow(decide("GET", "/healthz", Some(&t)));
    assert_eq!(a.principal.unwrap().subject.as_deref(), Some("alice"));
}

#[test]
fn authenticated_route_takes_any_valid_token() {
    let t = sign("EdDSA", Some("ed-1"), &claims(""));
    assert_eq!(
        allow(decide("DELETE", "/me/sessions", Some(&t)))
            .rule
            .as_deref(),
        Some("me")
    );
    assert_eq!(deny(decide("GET", "/me", Some("x.y.z"))).status, 401);
}

#[test]
fn unmatched_routes_are_denied_and_prefixes_respect_segments() {
    let t = sign("HS256", None, &claims("svc-a:orders:read"));
    for (m, p) in [
        ("GET", "/ordersx"),
        ("GET", "/"),
        ("PUT", "/orders"),
        ("GET", "/healthz/x"),
    ] {
        let d = deny(decide(m, p, Some(&t)));
        assert_eq!(
            (d.status, d.reason),
            (403, Reason::NoMatchingRule),
            "{m} {p}"
        );
        assert!(d.www_authenticate().is_none());
    }
}

#[test]
fn normalisation_traps_cannot_slip_past_rules() {
    let t = sign("HS256", None, &claims("svc-a:other"));
    for p in [
        "/healthz/../orders",
        "/%6Frders",
        "//orders",
        "/./orders/",
        "/orders?x=1",
    ] {
        let d = deny(decide("GET", p, Some(&t)));
        assert_eq!(
            d.reason,
            Reason::InsufficientScope,
            "{p} reached the orders rule"
        );
    }
    let d = deny(decide("GET", "/orders%2F..%2Fhealthz", None));
    assert_eq!((d.status, d.reason), (400, Reason::InvalidPath));
}

#[test]
fn invalid_configs_name_the_field() {
    let err = |cfg: serde_json::Value| -> Vec<String> {
        compile_json(cfg.to_string().as_bytes())
            .err()
            .unwrap_or_else(|| panic!("config accepted: {cfg}"))
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let has = |errs: &[String], needle: &str| {
        assert!(
            errs.iter().any(|e| e.contains(needle)),
            "{needle:?} not in {errs:?}"
        )
    };

    let mut c = config(default_rules());
    c["rules"][1]["match"]["prefx"] = json!("/x");
    has(&err(c), "rules[1].match.prefx");

    let mut c = config(default_rules());
    c["providers"][0].as_object_mut().unwrap().remove("issuer");
    has(&err(c), "missing field `issuer`");

    let mut c = config(default_rules());
    c["providers"][0]["algorithms"] = json!(["RS256", "none"]);
    has(
        &err(c),
        "providers[0].algorithms[1]: unknown algorithm \"none\"",
    );

    let mut c = config(default_rules());
    c["providers"][0]["audiences"] = json!([]);
    has(&err(c), "providers[0].audiences: at least one audience");

    let mut c = config(default_rules());
    c["rules"][2]["require"] = json!({"any_of": ["ok", {"one_of": ["x"]}]});
    has(&err(c), "rules[2].require.any_of[1].one_of");

    let mut c = config(default_rules());
    c["rules"][0]["require"] = json!("svc-a:orders:read");
    has(&err(c), "rules[0].require: invalid requirement");

    let mut c = config(default_rules());
    c["rules"][0]["match"] = json!({"exact": "/a", "prefix": "/b"});
    has(&err(c), "rules[0].match: exactly one of");

    let mut c = config(default_rules());
    c["rules"][0]["match"] = json!({"prefix": "/a/../b"});
    has(&err(c), "rules[0].match.prefix: invalid path");

    let mut c = config(default_rules());
    c["rules"][1]["match"]["methods"] = json!(["get"]);
    has(&err(c), "rules[1].match.methods[0]");

    let mut c = config(default_rules());
    c["rules"][3]["name"] = json!("health");
    has(&err(c), "rules[3].name: duplicate rule name");

    let mut c = config(default_rules());
    c["providers"][0]["jwks"] = json!({"keys": [{"kty": "oct", "k": "c2hvcnQ"}]});
    has(
        &err(c),
        "providers[0].jwks: no usable key: HMAC secret of 5 bytes",
    );

    let mut c = config(default_rules());
    c["providers"][0]["claims_to_headers"] = json!({"sub": "bad header"});
    has(
        &err(c),
        "providers[0].claims_to_headers.sub: invalid header name",
    );

    let c = json!({"rules": default_rules()});
    has(&err(c), "providers: rules need tokens");

    has(
        &err(json!([1])),
        ".: the configuration must be a JSON object",
    );
    has(
        &err(json!(["svc-a", [], []])),
        ".: the configuration must be a JSON object",
    );
    has(&err(json!("text")), "must be a JSON object");
    let e = compile_json(b"").unwrap_err();
    assert!(e[0].to_string().contains("StringValue"));
    let e = compile_json(b"{\"rules\": [}").unwrap_err();
    assert!(!e.is_empty());
    let e = compile_json(b"{} {}").unwrap_err();
    assert!(e[0].to_string().contains("trailing"), "{e:?}");
}

#[test]
fn all_errors_are_reported_at_once() {
    let mut c = config(default_rules());
    c["providers"][0]["algorithms"] = json!(["XS1"]);
    c["rules"][0]["require"] = json!(42);
    c["rules"][1]["match"] = json!({});
    let errs = compile_json(c.to_string().as_bytes()).unwrap_err();
    assert!(errs.len() >= 3, "{errs:?}");
}

#[test]
fn skipped_jwks_keys_are_warnings_not_errors() {
    let mut c = config(default_rules());
    c["providers"][0]["jwks"]["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "XYZ", "kid": "odd"}));
    let p = compile_json(c.to_string().as_bytes()).unwrap();
    assert_eq!(p.warnings().len(), 1);
    assert!(
        p.warnings()[0]
            .to_string()
            .contains("providers[0].jwks.keys[6]")
    );
}
