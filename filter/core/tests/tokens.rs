//! Token locations, several tokens, and the provider's extra claim checks.
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

use scopegate_core::{Decision, Policy, Reason, Request, compile_json};
use serde_json::{Value, json};

fn policy_with(provider_extra: Value) -> Policy {
    let mut c = config(default_rules());
    for (k, v) in provider_extra.as_object().unwrap() {
        c["providers"][0][k] = v.clone();
    }
    compile_json(c.to_string().as_bytes()).unwrap()
}

fn run(p: &Policy, path: &str, headers: &[(&str, &str)]) -> Decision {
    p.decide(&Request {
        method: "GET",
        path,
        headers,
        now_unix_seconds: NOW,
        route_name: None,
    })
}

fn denied(d: Decision) -> Reason {
    match d {
        Decision::Deny(d) => d.reason,
        other => panic!("not a denial: {other:?}"),
    }
}

#[test]
fn tokens_from_query_and_cookie_are_found_and_cut_out_before_forwarding() {
    let p = policy_with(
        json!({"from": [{"header": "authorization"}, {"query": "access_token"}, {"cookie": "session"}]}),
    );
    assert_eq!(
        p.wanted_headers(),
        [":method", ":path", "authorization", "cookie"]
    );
    let t = sign("HS256", None, &claims("svc-a:orders:read"));

    let path = format!("/orders?x=1&access_token={t}");
    let Decision::Allow(a) = run(&p, &path, &[]) else {
        panic!("query token refused")
    };
    assert!(
        a.set_headers
            .contains(&(":path".into(), "/orders?x=1".into())),
        "{:?}",
        a.set_headers
    );

    let cookie = format!("theme=dark; session={t}");
    let Decision::Allow(a) = run(&p, "/orders", &[("cookie", &cookie)]) else {
        panic!("cookie token refused")
    };
    assert!(
        a.set_headers
            .contains(&("cookie".into(), "theme=dark".into())),
        "{:?}",
        a.set_headers
    );

    let only = format!("session={t}");
    let Decision::Allow(a) = run(&p, "/orders", &[("cookie", &only)]) else {
        panic!()
    };
    assert!(a.removes("cookie"));

    // Not configured: a query token is not looked at.
    let default = policy();
    assert_eq!(denied(run(&default, &path, &[])), Reason::TokenMissing);
}

#[test]
fn the_same_token_twice_is_one_token_but_two_different_tokens_are_refused() {
    let p = policy_with(json!({"from": [{"header": "authorization"}, {"query": "access_token"}]}));
    let t = sign("HS256", None, &claims("svc-a:orders:read"));
    let u = sign("HS256", None, &claims("svc-a:orders:read svc-a:admin"));
    let bearer = format!("Bearer {t}");
    let same = format!("/orders?access_token={t}");
    assert!(matches!(
        run(&p, &same, &[("authorization", &bearer)]),
        Decision::Allow(_)
    ));
    let other = format!("/orders?access_token={u}");
    assert_eq!(
        denied(run(&p, &other, &[("authorization", &bearer)])),
        Reason::MultipleTokens
    );
}

#[test]
fn a_custom_header_without_prefix_and_an_empty_bearer() {
    let p = policy_with(json!({"from": [{"header": "X-Auth-Token"}]}));
    let t = sign("HS256", None, &claims("svc-a:orders:read"));
    let Decision::Allow(a) = run(&p, "/orders", &[("x-auth-token", &t)]) else {
        panic!()
    };
    assert!(a.removes("x-auth-token"));
    // The Authorization header is not a source of this provider.
    let bearer = format!("Bearer {t}");
    assert_eq!(
        denied(run(&p, "/orders", &[("authorization", &bearer)])),
        Reason::TokenMissing
    );
    assert_eq!(
        denied(run(&policy(), "/orders", &[("authorization", "Bearer ")])),
        Reason::Malformed
    );
}

#[test]
fn required_claims_typ_and_max_lifetime() {
    let p = policy_with(json!({"required_claims": {"tenant": "acme", "email_verified": true}}));
    let mut c = claims("svc-a:orders:read");
    let t = sign("HS256", None, &c);
    let bearer = format!("Bearer {t}");
    assert_eq!(
        denied(run(&p, "/orders", &[("authorization", &bearer)])),
        Reason::ClaimInvalid
    );
    c.insert("tenant".into(), json!("acme"));
    c.insert("email_verified".into(), json!("true"));
    let bearer = format!("Bearer {}", sign("HS256", None, &c));
    assert_eq!(
        denied(run(&p, "/orders", &[("authorization", &bearer)])),
        Reason::ClaimInvalid,
        "string is not bool"
    );
    c.insert("email_verified".into(), json!(true));
    let bearer = format!("Bearer {}", sign("HS256", None, &c));
    assert!(matches!(
        run(&p, "/orders", &[("authorization", &bearer)]),
        Decision::Allow(_)
    ));

    let p = policy_with(json!({"require_typ": "at+jwt"}));
    let payload = Value::Object(claims("svc-a:orders:read"));
    for (typ, ok) in [
        (Some("at+jwt"), true),
        (Some("application/AT+JWT"), true),
        (Some("JWT"), false),
        (None, false),
    ] {
        let mut header = json!({"alg": "HS256"});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        let bearer = format!("Bearer {}", hs256_with(&HMAC_SECRET, &header, &payload));
        let d = run(&p, "/orders", &[("authorization", &bearer)]);
        assert_eq!(matches!(d, Decision::Allow(_)), ok, "typ {typ:?}: {d:?}");
    }

    let p = policy_with(json!({"max_lifetime_seconds": 600}));
    let mut c = claims("svc-a:orders:read"); // iat NOW-10, exp NOW+300
    let bearer = format!("Bearer {}", sign("HS256", None, &c));
    assert!(matches!(
        run(&p, "/orders", &[("authorization", &bearer)]),
        Decision::Allow(_)
    ));
    c.insert("exp".into(), json!(NOW + 3600));
    let bearer = format!("Bearer {}", sign("HS256", None, &c));
    assert_eq!(
        denied(run(&p, "/orders", &[("authorization", &bearer)])),
        Reason::ClaimInvalid
    );
    c.remove("iat");
    let bearer = format!("Bearer {}", sign("HS256", None, &c));
    assert_eq!(
        denied(run(&p, "/orders", &[("authorization", &bearer)])),
        Reason::ClaimInvalid
    );
}

#[test]
fn duplicate_member_names_in_header_or_payload_are_refused() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","scope":"x","scope":"svc-a:orders:read","exp":{}}}"#,
        NOW + 60
    );
    let header = r#"{"alg":"HS256"}"#;
    // Sign the exact bytes, duplicates and all, with the real secret.
    use jwt_compact::{Algorithm, AlgorithmSignature};
    let input = format!("{}.{}", b64(header), b64(&payload));
    let sig = jwt_compact::alg::Hs256.sign(
        &jwt_compact::alg::Hs256Key::new(HMAC_SECRET),
        input.as_bytes(),
    );
    let token = format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_bytes())
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        denied(run(&policy(), "/orders", &[("authorization", &bearer)])),
        Reason::Malformed
    );
}

#[test]
fn token_source_config_errors_name_the_field() {
    let mut c = config(default_rules());
    c["providers"][0]["from"] = json!([{"header": "authorization", "query": "x"}, {"cookie": "a=b"}, {"query": "q", "prefix": "x"}]);
    let errs: Vec<String> = compile_json(c.to_string().as_bytes())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errs.iter()
            .any(|e| e.starts_with("providers[0].from[0]: exactly one of")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("providers[0].from[1].cookie")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("providers[0].from[2]: exactly one of")),
        "{errs:?}"
    );
}

#[test]
fn nested_claims_time_claims_and_the_payload_are_forwarded() {
    let p = policy_with(json!({
        "claims_to_headers": {"org.id": "x-org", "exp": "x-exp", "https://example.com/tier": "x-tier", "groups": "x-groups"},
        "payload_header": "X-JWT-Payload",
    }));
    let mut c = claims("svc-a:orders:read");
    c.insert("org".into(), json!({"id": "acme", "name": "Acme"}));
    c.insert("https://example.com/tier".into(), json!("gold"));
    c.insert("groups".into(), json!(["a", "b"]));
    let t = sign("HS256", None, &c);
    let bearer = format!("Bearer {t}");
    let Decision::Allow(a) = run(
        &p,
        "/orders",
        &[("authorization", &bearer), ("x-jwt-payload", "spoofed")],
    ) else {
        panic!("refused")
    };
    let get = |h: &str| a.sets(h);
    assert_eq!(get("x-org"), Some("acme"));
    assert_eq!(get("x-tier"), Some("gold"));
    assert_eq!(get("x-groups"), Some(r#"["a","b"]"#));
    assert_eq!(get("x-exp"), Some((NOW + 300).to_string().as_str()));
    assert_eq!(get("x-jwt-payload"), t.split('.').nth(1));
    assert!(
        a.removes("x-jwt-payload"),
        "inbound copy stripped"
    );
}
