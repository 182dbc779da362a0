//! The real scopegate.wasm in the wasmtime harness: each outcome end to end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use proxy_wasm_harness::{Outcome, Vm};
use scopegate_integration::{host, module, publish_counters, vm as start};
use scopegate_testkit::*;
use serde_json::{Value, json};

fn get(
    vm: &Vm,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> (Outcome, Vec<(String, String)>) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        (":method", "GET"),
        (":path", path),
        (":authority", "svc-a"),
        (":scheme", "http"),
    ];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    headers.extend_from_slice(extra);
    let mut s = vm.http_stream();
    let out = s.request_headers(&headers, true);
    let upstream = s.request_headers_now();
    s.finish();
    (out, upstream)
}

fn local_reply(out: &Outcome) -> (u32, Value) {
    match out {
        Outcome::LocalReply { status, body, .. } => {
            (*status, serde_json::from_slice(body).expect("JSON body"))
        }
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn upstream_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_module_imports_only_proxy_wasm_abi_functions() {
    let imports = module().imports();
    assert!(!imports.is_empty());
    let foreign: Vec<_> = imports
        .iter()
        .filter(|i| i.module != "env" || !i.name.starts_with("proxy_"))
        .map(|i| format!("{}.{}", i.module, i.name))
        .collect();
    assert!(foreign.is_empty(), "non proxy-wasm imports: {foreign:?}");
}

#[test]
fn a_valid_token_with_the_scope_is_forwarded_with_claims_and_without_the_token() {
    let host = host();
    let vm = start(&host, &config(default_rules()));
    assert!(vm.configured(), "{:?}", vm.log_messages());
    let t = sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read"));
    let (out, upstream) = get(
        &vm,
        "/orders/7",
        Some(&t),
        &[("x-scopegate-sub", "mallory")],
    );
    assert_eq!(out, Outcome::Continue);
    assert_eq!(upstream_header(&upstream, "x-scopegate-sub"), Some("alice"));
    assert_eq!(
        upstream_header(&upstream, "x-scopegate-scope"),
        Some("svc-a:orders:read")
    );
    assert_eq!(upstream_header(&upstream, "authorization"), None);
    assert_eq!(
        upstream
            .iter()
            .filter(|(k, _)| k == "x-scopegate-sub")
            .count(),
        1,
        "spoofed copy removed"
    );
    // Counted in the VM, published on the root's tick within a second.
    assert_eq!(host.metric_value("scopegate.allowed"), Some(0));
    publish_counters(&host);
    assert_eq!(host.metric_value("scopegate.allowed"), Some(1));
    assert_eq!(host.metric_value("scopegate.decision.allowed"), Some(1));
}

#[test]
fn request_counters_are_published_on_the_next_tick_and_when_the_vm_shuts_down() {
    let host = host();
    let vm = start(&host, &config(default_rules()));
    assert_eq!(
        vm.tick_period(),
        Some(Duration::from_secs(1)),
        "without remote work the tick only publishes counters"
    );
    let denied = |n: i64| {
        assert_eq!(host.metric_value("scopegate.denied"), Some(n));
        assert_eq!(
            host.metric_value("scopegate.decision.token_missing"),
            Some(n)
        );
        assert_eq!(
            host.metric_value("scopegate.rule.orders-read.denied"),
            Some(n)
        );
    };
    get(&vm, "/orders", None, &[]);
    get(&vm, "/orders", None, &[]);
    denied(0);
    host.advance(Duration::from_millis(999));
    denied(0);
    host.advance(Duration::from_millis(1));
    denied(2);
    // A tick with nothing new publishes nothing more.
    host.advance(Duration::from_secs(3));
    denied(2);
    get(&vm, "/orders", None, &[]);
    denied(2);
    // Counted before the shutdown, published by it.
    assert!(vm.shutdown());
    denied(3);
}

#[test]
fn a_missing_token_gets_401_with_a_bare_bearer_challenge() {
    let host = host();
    let vm = start(&host, &config(default_rules()));
    let (out, _) = get(&vm, "/orders", None, &[]);
    let (status, body) = local_reply(&out);
    assert_eq!(status, 401);
    assert_eq!(
        out.header("www-authenticate"),
        Some("Bearer realm=\"svc-a\"")
    );
    assert_eq!(out.header("content-type"), Some("application/json"));
    assert_eq!(body["reason"], "token_missing");
    assert_eq!(body["rule"], "orders-read");
    publish_counters(&host);
    assert_eq!(host.metric_value("scopegate.denied"), Some(1));
    assert_eq!(
        host.metric_value("scopegate.decision.token_missing"),
        Some(1)
    );
}

#[test]
fn a_token_expires_on_the_host_clock() {
    let host = host();
    let vm = start(&host, &config(default_rules()));
    let t = sign("HS256", None, &claims("svc-a:orders:read")); // exp = NOW + 300
    assert_eq!(get(&vm, "/orders", Some(&t), &[]).0, Outcome::Continue);
    host.advance(Duration::from_secs(300 + 59));
    assert_eq!(
        get(&vm, "/orders", Some(&t), &[]).0,
        Outcome::Continue,
        "within the skew"
    );
    host.advance(Duration::from_secs(2));
    let (out, _) = get(&vm, "/orders", Some(&t), &[]);
    let (status, body) = local_reply(&out);
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("token_expired"))
    );
    assert_eq!(
        out.header("www-authenticate"),
        Some(
            "Bearer realm=\"svc-a\", error=\"invalid_token\", error_description=\"the access token expired\""
        )
    );
    assert!(
        vm.logged("reason=token_expired"),
        "debug log names the reason: {:?}",
        vm.log_messages()
    );
}

#[test]
fn insufficient_scope_gets_403_naming_the_scope() {
    let host = host();
    let vm = start(&host, &config(default_rules()));
    let t = sign("ES256", Some("ec-1"), &claims("svc-a:other"));
    let (out, _) = get(&vm, "/orders", Some(&t), &[]);
    let (status, body) = local_reply(&out);
    assert_eq!(status, 403);
    assert_eq!(body["reason"], "insufficient_scope");
    assert_eq!(body["required_scopes"], json!(["svc-a:orders:read"]));
    let w = out.header("www-authenticate").unwrap();
    assert!(
        w.contains("error=\"insufficient_scope\"") && w.ends_with("scope=\"svc-a:orders:read\""),
        "{w}"
    );
}

#[test]
fn attacks_and_garbage_are_401_never_a_crash() {
    let host = host();
    let vm = start(&host, &config(default_rules()));
    let payload = Value::Object(claims("svc-a:orders:read"));
    let cases = [
        (
            forge(&json!({"alg": "none"}), &payload, b""),
            "algorithm_not_allowed",
        ),
        (
            hs256_with(
                &HMAC_SECRET,
                &json!({"alg": "HS256", "jku": "https://x"}),
                &payload,
            ),
            "header_not_allowed",
        ),
        (
            forge(&json!({"alg": "ES256", "kid": "ec-1"}), &payload, &[0; 64]),
            "bad_signature",
        ),
        ("a.b".to_owned(), "malformed"),
        ("%%%".to_owned(), "malformed"),
        ("A".repeat(20_000), "token_too_large"),
    ];
    for (token, reason) in cases {
        let (out, _) = get(&vm, "/orders", Some(&token), &[]);
        let (status, body) = local_reply(&out);
        assert_eq!(
            (status, body["reason"].as_str().unwrap()),
            (401, reason),
            "{}",
            &token[..token.len().min(40)]
        );
    }
    assert!(vm.alive());
}

#[test]
fn public_routes_pass_without_a_token_and_unknown_routes_are_denied() {
    let host = host();
    let vm = start(&host, &config(default_rules()));
    let (out, upstream) = get(&vm, "/healthz", None, &[("x-scopegate-sub", "mallory")]);
    assert_eq!(out, Outcome::Continue);
    assert_eq!(
        upstream_header(&upstream, "x-scopegate-sub"),
        None,
        "spoofed header stripped on public routes too"
    );
    let (out, _) = get(&vm, "/admin", None, &[]);
    let (status, body) = local_reply(&out);
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("no_matching_rule"))
    );
    let (out, _) = get(&vm, "/healthz/../admin", None, &[]);
    assert_eq!(local_reply(&out).0, 403);
}

#[test]
fn an_invalid_config_is_refused_with_a_log_line_naming_the_field() {
    let host = host();
    let mut cfg = config(default_rules());
    cfg["rules"][1]["match"]["prefx"] = json!("/x");
    let vm = start(&host, &cfg);
    assert!(!vm.configured());
    assert!(vm.logged("rules[1].match.prefx"), "{:?}", vm.log_messages());

    let vm = host.vm(module()).plugin_config("").start().unwrap();
    assert!(!vm.configured(), "an empty configuration is refused");
    assert!(vm.logged("StringValue"), "{:?}", vm.log_messages());
}

#[test]
fn a_repeated_token_costs_far_less_than_its_first_verification() {
    let host = host();
    let vm = start(&host, &config(default_rules()));
    let t = sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read"));
    let auth = format!("Bearer {t}");
    let headers = [
        (":method", "GET"),
        (":path", "/orders"),
        (":authority", "svc-a"),
        ("authorization", auth.as_str()),
    ];
    let fuel = |vm: &Vm| {
        let mut s = vm.http_stream();
        assert_eq!(s.request_headers(&headers, true), Outcome::Continue);
        let f = s.fuel_used();
        s.finish();
        f
    };
    let first = fuel(&vm);
    let second = fuel(&vm);
    let third = fuel(&vm);
    assert!(
        second * 5 < first,
        "first {first}, second {second}: the cache did not skip the RSA verification"
    );
    assert!(third * 5 < first, "first {first}, third {third}");
    // With the cache disabled every request pays the verification.
    let mut cfg = config(default_rules());
    cfg["token_cache_entries"] = json!(0);
    let vm = start(&host, &cfg);
    let first = fuel(&vm);
    let second = fuel(&vm);
    assert!(second * 2 > first, "first {first}, second {second}");
}

#[test]
fn a_bot_with_an_api_key_is_let_through_and_its_key_is_not_forwarded() {
    let host = host();
    let mut cfg = config(default_rules());
    // sha256("bot-key-0123456789abcdef")
    cfg["api_keys"] = json!({"keys": [{"name": "billing-bot", "scopes": ["svc-a:orders:read"],
        "sha256": "7a6c1bd4dd0c13e8c2a4ea3a66fe6c2c4f0c0f1fb2e1ccf1e3d1e7c9f5b0a1d2"}]});
    let key = "bot-key-0123456789abcdef";
    let digest: String = {
        use std::fmt::Write as _;
        let d = scopegate_testkit::sha256(key.as_bytes());
        d.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    cfg["api_keys"]["keys"][0]["sha256"] = json!(digest);
    let vm = start(&host, &cfg);
    assert!(vm.configured(), "{:?}", vm.log_messages());
    let (out, upstream) = get(&vm, "/orders", None, &[("x-api-key", key)]);
    assert_eq!(out, Outcome::Continue);
    assert_eq!(
        upstream_header(&upstream, "x-scopegate-sub"),
        None,
        "claim headers are the JWT provider's"
    );
    assert_eq!(upstream_header(&upstream, "x-api-key"), None);
    let (out, _) = get(
        &vm,
        "/orders",
        None,
        &[("x-api-key", "bot-key-0123456789abcdeX")],
    );
    let (status, body) = local_reply(&out);
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("api_key_invalid"))
    );
    assert!(
        !vm.log_messages().iter().any(|l| l.contains("bot-key-")),
        "keys never appear in logs"
    );
    assert_eq!(
        host.metric_value("scopegate.provider.api-keys.allowed"),
        None,
        "API keys are not a JWT provider"
    );
}

#[test]
fn spoofed_claim_headers_are_stripped_and_absent_ones_cost_no_host_call() {
    // The config forwards `sub` and `scope` (x-scopegate-sub, x-scopegate-scope).
    let host = host();
    let vm = start(&host, &config(default_rules()));
    let calls = |path: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![(":method", "GET"), (":path", path), (":authority", "svc-a"), (":scheme", "http")];
        headers.extend_from_slice(extra);
        let mut s = vm.http_stream();
        let out = s.request_headers(&headers, true);
        let upstream = s.request_headers_now();
        let n = s.hostcalls_used();
        s.finish();
        (out, upstream, n)
    };
    // The first request of a second also reads the log level: not counted.
    let _ = calls("/healthz", &[]);
    let (out, upstream, clean) = calls("/healthz", &[]);
    assert_eq!(out, Outcome::Continue);
    assert_eq!(upstream_header(&upstream, "x-scopegate-sub"), None);
    let (out, upstream, one) = calls("/healthz", &[("x-scopegate-sub", "mallory")]);
    assert_eq!(out, Outcome::Continue);
    assert_eq!(upstream_header(&upstream, "x-scopegate-sub"), None, "a spoofed copy is removed");
    let (_, upstream, both) = calls(
        "/healthz",
        &[("X-Scopegate-Scope", "svc-a:admin"), ("x-scopegate-sub", "mallory"), ("x-scopegate-sub", "eve")],
    );
    assert_eq!(upstream_header(&upstream, "x-scopegate-sub"), None, "every value of it");
    assert_eq!(upstream_header(&upstream, "x-scopegate-scope"), None, "whatever its case");
    // One removal per spoofed header present; none for those absent.
    assert_eq!((one, both), (clean + 1, clean + 2), "host calls per request");

    // On an allow the forwarded claims replace whatever came in.
    let token = sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read"));
    let (out, upstream) = get(&vm, "/orders/7", Some(&token), &[("x-scopegate-sub", "mallory")]);
    assert_eq!(out, Outcome::Continue);
    assert_eq!(upstream_header(&upstream, "x-scopegate-sub"), Some("alice"));
    assert_eq!(upstream_header(&upstream, "x-scopegate-scope"), Some("svc-a:orders:read"));
    assert_eq!(upstream_header(&upstream, "authorization"), None);
}
