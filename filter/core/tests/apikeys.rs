//! API keys: hashed in config, one principal model, the same rules.
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

use scopegate_core::{Decision, Policy, Reason, Request, compile_json};
use serde_json::{Value, json};

const KEY: &str = "sk_test_billing_bot_0123456789";

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn with_keys(extra: Value) -> Value {
    let mut c = config(default_rules());
    c["roles"] = json!({"orders-admin": ["svc-a:orders:read", "svc-a:orders:write"]});
    c["api_keys"] = json!({"keys": [
        {"name": "billing-bot", "sha256": sha256_hex(KEY), "scopes": ["svc-a:orders:read"]},
        {"name": "ops-bot", "sha256": sha256_hex("ops-key-0123456789"), "roles": ["orders-admin"]},
        {"name": "old-bot", "sha256": sha256_hex("old-key-0123456789"), "scopes": ["svc-a:orders:read"], "expires_at": NOW - 1},
    ]});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn policy_of(c: &Value) -> Policy {
    compile_json(c.to_string().as_bytes()).unwrap()
}

fn run(p: &Policy, method: &str, headers: &[(&str, &str)]) -> Decision {
    p.decide(&Request {
        method,
        path: "/orders",
        headers,
        now_unix_seconds: NOW,
        ..Default::default()
    })
}

fn reason(d: &Decision) -> Reason {
    match d {
        Decision::Deny(d) => d.reason,
        other => panic!("not denied: {other:?}"),
    }
}

#[test]
fn a_bot_key_is_a_principal_that_meets_the_same_rules() {
    let p = policy_of(&with_keys(json!({})));
    let Decision::Allow(a) = run(&p, "GET", &[("x-api-key", KEY)]) else {
        panic!("refused")
    };
    let principal = a.principal.clone().unwrap();
    assert_eq!(
        (principal.provider.as_str(), principal.subject.as_deref()),
        ("api-keys", Some("billing-bot"))
    );
    assert!(
        a.removes("x-api-key"),
        "the key is not forwarded"
    );
    // Its scopes are checked like a token's.
    let d = run(&p, "POST", &[("x-api-key", KEY)]);
    assert_eq!(reason(&d), Reason::InsufficientScope);
    // Roles expand at configure time.
    assert!(matches!(
        run(&p, "POST", &[("x-api-key", "ops-key-0123456789")]),
        Decision::Allow(_)
    ));
}

#[test]
fn unknown_and_expired_keys_are_401_and_never_logged() {
    let p = policy_of(&with_keys(json!({})));
    let d = run(
        &p,
        "GET",
        &[("x-api-key", "sk_test_billing_bot_0123456780")],
    );
    assert_eq!(reason(&d), Reason::ApiKeyInvalid);
    let Decision::Deny(deny) = &d else {
        unreachable!()
    };
    assert_eq!(deny.status, 401);
    assert!(!deny.detail.contains("sk_test"), "{}", deny.detail);
    let d = run(&p, "GET", &[("x-api-key", "old-key-0123456789")]);
    assert_eq!(reason(&d), Reason::ApiKeyExpired);
    let Decision::Deny(deny) = &d else {
        unreachable!()
    };
    assert!(!deny.detail.contains("old-key"), "{}", deny.detail);
}

#[test]
fn a_key_and_a_token_together_are_refused() {
    let p = policy_of(&with_keys(json!({})));
    let bearer = format!(
        "Bearer {}",
        sign("HS256", None, &claims("svc-a:orders:read"))
    );
    let d = run(&p, "GET", &[("x-api-key", KEY), ("authorization", &bearer)]);
    assert_eq!(reason(&d), Reason::MultipleTokens);
}

#[test]
fn rules_can_admit_only_bots_and_keys_can_use_the_authorization_header() {
    let mut c = with_keys(json!({}));
    c["rules"][1]["providers"] = json!(["api-keys"]);
    c["api_keys"]["from"] = json!([{"header": "authorization", "prefix": "ApiKey "}]);
    // The provider reads only Bearer from authorization: no clash with "ApiKey ".
    c["providers"][0]["from"] = json!([{"header": "authorization", "prefix": "Bearer "}]);
    let err = compile_json(c.to_string().as_bytes()).err();
    assert!(err.is_none(), "{err:?}");
    let p = policy_of(&c);
    let key = format!("ApiKey {KEY}");
    assert!(matches!(
        run(&p, "GET", &[("authorization", &key)]),
        Decision::Allow(_)
    ));
    let bearer = format!(
        "Bearer {}",
        sign("HS256", None, &claims("svc-a:orders:read"))
    );
    assert_eq!(
        reason(&run(&p, "GET", &[("authorization", &bearer)])),
        Reason::ProviderNotAllowed
    );
}

#[test]
fn a_configured_scope_claim_still_sees_key_scopes() {
    let p = policy_of(&with_keys(json!({"scope_claim": "realm_access.scopes"})));
    assert!(matches!(
        run(&p, "GET", &[("x-api-key", KEY)]),
        Decision::Allow(_)
    ));
}

#[test]
fn api_key_config_errors_name_the_field() {
    let mut c = with_keys(json!({}));
    c["api_keys"]["keys"] = json!([
        {"name": "a", "sha256": "abc"},
        {"name": "a", "sha256": sha256_hex("x"), "roles": ["nope"]},
        {"name": "b", "sha256": sha256_hex("x"), "scopes": ["has space"]},
    ]);
    let errs: Vec<String> = compile_json(c.to_string().as_bytes())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    for want in [
        "api_keys.keys[0].sha256",
        "api_keys.keys[1].name",
        "api_keys.keys[1].roles[0]",
        "api_keys.keys[2].sha256",
        "api_keys.keys[2].scopes[0]",
    ] {
        assert!(errs.iter().any(|e| e.starts_with(want)), "{want}: {errs:?}");
    }
    let mut c = with_keys(json!({}));
    c["api_keys"]["from"] = json!([{"header": "authorization"}]);
    let errs: Vec<String> = compile_json(c.to_string().as_bytes())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errs.iter().any(|e| e.starts_with("api_keys.from")),
        "{errs:?}"
    );
    let c = json!({"api_keys": {"keys": [{"name": "a", "sha256": sha256_hex("k")}]},
                   "rules": [{"name": "r", "match": {"prefix": "/"}, "require": "authenticated"}]});
    assert!(
        compile_json(c.to_string().as_bytes()).is_ok(),
        "API keys alone are enough for non-public rules"
    );
}
