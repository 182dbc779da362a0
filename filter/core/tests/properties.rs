//! Property tests of the core's security invariants (proptest, bounded case
//! counts so the suite stays fast):
//! - no config lets a request through a non-public rule without a verified
//!   principal (no token, a forged token, a token of another issuer);
//! - path normalisation is idempotent and its output is canonical;
//! - a wildcard scope `P:*` never grants outside `P:`;
//! - a token modified in any byte of its signed part (header or payload) or
//!   of its signature fails verification, for every key family.
//!
//! Native only: proptest does not run on wasm32-unknown-unknown (its RNG
//! seeding needs getrandom 0.3 with a JS backend), so this file is not part of
//! filter/scripts/test-core-wasm.sh.
#![cfg(not(target_arch = "wasm32"))]
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

use proptest::prelude::*;
use proptest::test_runner::Config as PtConfig;
use scopegate_core::principal::GrantConfig;
use scopegate_core::routes::normalize;
use scopegate_core::{Decision, Principal, Reason, Request, compile_json};
use serde_json::{Map, Value, json};

const SCOPES: [&str; 7] = [
    "svc-a:orders:read",
    "svc-a:orders:*",
    "svc-a:*",
    "svc-a:admin",
    "svc-b:orders:read",
    "*",
    "svc-a:or*",
];

fn scope() -> impl Strategy<Value = String> {
    prop::sample::select(&SCOPES[..]).prop_map(str::to_owned)
}

fn expr() -> impl Strategy<Value = Value> {
    let leaf = scope().prop_map(Value::String);
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"all_of": v})),
            prop::collection::vec(inner, 1..3).prop_map(|v| json!({"any_of": v})),
        ]
    })
}

fn require() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("public")),
        Just(json!("authenticated")),
        scope().prop_map(|s| json!({"all_of": [s]})),
        expr().prop_filter("an expression", Value::is_object),
    ]
}

fn path_seg() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["orders", "admin", "{id}", "a", "healthz", "x"][..])
}

fn rule(i: usize) -> impl Strategy<Value = Value> {
    (
        0..4u8,
        prop::collection::vec(path_seg(), 0..3),
        prop::option::of(prop::sample::select(&["GET", "POST"][..])),
        require(),
        any::<bool>(),
    )
        .prop_map(move |(kind, segs, method, require, dry)| {
            let p = format!("/{}", segs.join("/"));
            let lit = p.replace("{id}", "id");
            let mut m = match kind {
                0 => json!({"exact": lit}),
                1 => json!({"prefix": lit}),
                2 => json!({"template": p}),
                _ => json!({"regex": format!("{}(/.*)?", p.replace("{id}", "[^/]+").trim_end_matches('/'))}),
            };
            if let Some(method) = method {
                m["methods"] = json!([method]);
            }
            let mut r = json!({"name": format!("r{i}"), "match": m, "require": require});
            if dry {
                r["dry_run"] = json!(true);
            }
            r
        })
}

fn config() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(any::<()>(), 1..6)
            .prop_flat_map(|n| (0..n.len()).map(rule).collect::<Vec<_>>()),
        prop::option::of(require()),
        prop::option::of(scope()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(rules, default, super_admin, enforce_cors, no_aud)| {
            let mut c = common::config(Value::Array(rules));
            // HMAC and EdDSA only: fast to sign and verify.
            c["providers"][0]["jwks"] = json!({"keys": [
                scopegate_testkit::jwks()["keys"][2].clone(),
                scopegate_testkit::jwks()["keys"][5].clone(),
            ]});
            if let Some(d) = default {
                c["default_rule"] = json!({"require": d});
            }
            if let Some(s) = super_admin {
                c["super_admin_scope"] = json!(s);
            }
            if enforce_cors {
                c["cors_preflight"] = json!("enforce");
            }
            if no_aud {
                c["providers"][0]["audience_check"] = json!(false);
            }
            c
        })
}

/// Tokens that must never give a principal: forged, other issuer, expired,
/// `alg: none`, wrong key.
fn bad_tokens() -> Vec<String> {
    let all = claims("svc-a:* svc-a:orders:read svc-a:admin *");
    let mut other_iss = all.clone();
    other_iss.insert("iss".into(), json!("https://evil.test"));
    let mut expired = all.clone();
    expired.insert("exp".into(), json!(NOW - 3600));
    vec![
        hs256_with(
            b"some other secret entirely, 32+ bytes",
            &json!({"alg": "HS256", "kid": "hs-1"}),
            &Value::Object(all.clone()),
        ),
        sign("HS256", Some("hs-1"), &other_iss),
        sign("EdDSA", Some("ed-1"), &expired),
        forge(&json!({"alg": "none"}), &Value::Object(all.clone()), b""),
        forge(
            &json!({"alg": "EdDSA", "kid": "ed-1"}),
            &Value::Object(all),
            &[0u8; 64],
        ),
    ]
}

fn decide(
    p: &scopegate_core::Policy,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Decision {
    p.decide(&Request {
        method,
        path,
        headers,
        now_unix_seconds: NOW,
        route_name: None,
    })
}

proptest! {
    #![proptest_config(PtConfig { cases: 48, ..PtConfig::default() })]

    /// No config allows a non-public rule without a verified principal.
    #[test]
    fn no_config_allows_a_non_public_rule_without_a_valid_principal(
        c in config(),
        method in prop::sample::select(&["GET", "POST", "OPTIONS"][..]),
        segs in prop::collection::vec(path_seg(), 0..3),
    ) {
        let Ok(policy) = compile_json(c.to_string().as_bytes()) else {
            return Ok(()); // refused configs are the compiler's tests' business
        };
        let path = format!("/{}", segs.join("/").replace("{id}", "7"));
        let bad = bad_tokens();
        let mut cases: Vec<Vec<(&str, String)>> = vec![vec![]];
        for t in &bad {
            cases.push(vec![("authorization", format!("Bearer {t}"))]);
        }
        for headers in &cases {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let d = decide(&policy, method, &path, &h);
            if let Decision::Allow(a) = &d {
                prop_assert!(a.principal.is_none(), "a principal from a bad token: {:?}", a);
                prop_assert!(
                    a.dry_run.is_some() || matches!(a.reason, Reason::Public | Reason::CorsPreflight),
                    "allowed without a principal: {:?} for {} {} in {}", a, method, path, c
                );
            }
        }
    }

    /// Normalisation is idempotent; its output is absolute and canonical.
    #[test]
    fn normalisation_is_idempotent(
        parts in prop::collection::vec(
            prop::sample::select(&["/", "a", ".", "..", "%2e", "%2E%2e", "%41", "%7e", "%3a", "%3A", "~", "ü", "?", "#", "%", "%z", "//", "-_"][..]),
            0..12,
        ),
    ) {
        let raw = format!("/{}", parts.concat());
        // The copy-free variant the request path uses gives the same answer.
        prop_assert_eq!(
            scopegate_core::routes::normalize_cow(&raw).map(|c| c.into_owned()),
            normalize(&raw)
        );
        if let Ok(p) = normalize(&raw) {
            prop_assert_eq!(normalize(&p), Ok(p.clone()));
            prop_assert!(p.starts_with('/'));
            prop_assert!(p == "/" || !p.split('/').skip(1).any(|s| matches!(s, "" | "." | "..")), "{}", p);
            prop_assert!(!p.contains(['?', '#']));
            prop_assert!(!p.to_ascii_lowercase().contains("%2e") && !p.contains("%41"), "undecoded unreserved escape in {}", p);
        }
    }

    /// A wildcard grant `P:*` covers only scopes `P:` + at least one more
    /// character; it never reaches outside its prefix.
    #[test]
    fn wildcard_scopes_never_grant_outside_their_prefix(
        prefix in "[ab]{1,2}(:[ab]{1,2}){0,2}",
        required in "[ab:*]{0,8}",
    ) {
        let granted = format!("{prefix}:*");
        let mut claims = Map::new();
        claims.insert("scope".into(), json!(granted));
        let principal = Principal {
            provider: "main".into(),
            issuer: ISS.into(),
            subject: None,
            scopes: vec![granted.clone()],
            claims,
            memo: Default::default(),
        };
        let grants = GrantConfig::default().grants(&principal);
        let within = required.strip_prefix(&format!("{prefix}:")).is_some_and(|rest| !rest.is_empty());
        let covered = grants.covers(&required);
        if covered {
            prop_assert!(within || required == granted, "{} granted {}", granted, required);
        }
        if within {
            prop_assert!(covered, "{} did not grant {}", granted, required);
        }
    }

    /// Any change to any byte of a token (header, payload or signature)
    /// makes it fail verification, for every key family.
    #[test]
    fn a_token_modified_in_any_byte_fails_verification(
        alg in prop::sample::select(&["HS256", "EdDSA", "ES256", "RS256", "PS256", "ES384", "HS512"][..]),
        at in any::<prop::sample::Index>(),
        xor in 1..=255u8,
    ) {
        let kid = match alg { "HS256" | "HS512" => "hs-1", "EdDSA" => "ed-1", "ES256" => "ec-1", "ES384" => "ec384-1", _ => "rsa-1" };
        let policy = policy();
        let honest = sign(alg, Some(kid), &claims("svc-a:orders:read"));
        let auth = format!("Bearer {honest}");
        let ok = decide(&policy, "GET", "/me", &[("authorization", &auth)]);
        prop_assert!(matches!(&ok, Decision::Allow(a) if a.principal.is_some()), "honest {} token refused: {:?}", alg, ok);

        let mut bytes = honest.clone().into_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        let Ok(modified) = String::from_utf8(bytes) else { return Ok(()) };
        let auth = format!("Bearer {modified}");
        let d = decide(&policy, "GET", "/me", &[("authorization", &auth)]);
        match &d {
            Decision::Deny(deny) => prop_assert_eq!(deny.status, 401, "{:?}", deny),
            other => prop_assert!(false, "{} token modified at byte {} of {} (xor {:#x}) was not refused: {:?}", alg, i, honest.len(), xor, other),
        }
    }
}
