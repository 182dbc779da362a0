//! The operators' CLI: what `check` and `explain` print and their exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

fn write(name: &str, v: &Value) -> PathBuf {
    let p = std::env::temp_dir().join(format!("scopegate-cli-{}-{name}.json", std::process::id()));
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn config(rules: Value) -> Value {
    json!({
        "realm": "svc-a",
        "scope_prefix": "svc-a",
        "providers": [{"name": "main", "issuer": "https://auth.test", "audiences": ["svc-a"],
                       "jwks": {"keys": [{"kty": "oct", "kid": "k", "k": "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI"}]}}],
        "roles": {"orders-admin": ["svc-a:orders:*"]},
        "rules": rules,
    })
}

#[test]
fn check_prints_every_problem_with_its_path_and_fails() {
    let p = write(
        "bad",
        &config(json!([
            {"name": "orders", "match": {"prefix": "/orders"}, "require": "authenticated"},
            {"name": "admin", "match": {"exact": "/orders/admin"}, "require": {"all_of": ["svc-a:admin"]}},
            {"name": "re", "match": {"regex": "/x("}, "require": "public"},
            {"name": "typo", "match": {"prefx": "/y"}, "require": "public"},
        ])),
    );
    let (code, out) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: rules[3].match.prefx: unknown field"),
        "{out}"
    );
    // The unknown field stops parsing: fix it and the rest is reported at once.
    let p = write(
        "bad2",
        &config(json!([
            {"name": "orders", "match": {"prefix": "/orders"}, "require": "authenticated"},
            {"name": "admin", "match": {"exact": "/orders/admin"}, "require": {"all_of": ["svc-a:admin"]}},
            {"name": "re", "match": {"regex": "/x("}, "require": "public"},
        ])),
    );
    let (code, out) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: rules[1]: unreachable rule"), "{out}");
    assert!(
        out.contains("error: rules[2].match.regex: invalid regex"),
        "{out}"
    );
    assert!(out.contains("invalid: 2 problem(s)"), "{out}");
}

#[test]
fn check_warns_on_scope_names_and_strict_fails_on_warnings() {
    let p = write(
        "warn",
        &config(json!([
            {"name": "a", "match": {"prefix": "/a"}, "require": {"all_of": ["Admin"]}},
        ])),
    );
    let (code, out) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: rules[0].require.all_of[0]: scope convention"),
        "{out}"
    );
    let (code, _) = run(&["check", "--strict", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(run(&["check"]).0, 2);
}

#[test]
fn explain_names_rule_requirement_grants_and_decision_with_exit_codes() {
    let p = write(
        "ok",
        &config(json!([
            {"name": "order", "match": {"template": "/orders/{id}", "methods": ["GET"]}, "require": {"all_of": ["svc-a:orders:read"]}},
            {"name": "legacy", "match": {"prefix": "/", "route_names": ["r1"]}, "require": "public"},
        ])),
    );
    let cfg = p.to_str().unwrap();
    let claims = r#"{"iss": "https://auth.test", "sub": "bob", "roles": ["orders-admin"]}"#;
    let (code, out) = run(&[
        "explain",
        "--config",
        cfg,
        "--method",
        "GET",
        "--path",
        "/orders/7",
        "--claims",
        claims,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("rule:     order (rules[0]: GET template /orders/{id})"),
        "{out}"
    );
    assert!(out.contains("requires: all_of(svc-a:orders:read)"), "{out}");
    assert!(
        out.contains("roles [\"orders-admin\"] -> [\"svc-a:orders:*\"]"),
        "{out}"
    );
    assert!(out.contains("decision: ALLOW (allowed)"), "{out}");
    let (code, out) = run(&[
        "explain",
        "--config",
        cfg,
        "--method",
        "GET",
        "--path",
        "/orders/7",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("decision: DENY 401 token_missing"), "{out}");
    let (code, out) = run(&[
        "explain",
        "--config",
        cfg,
        "--method",
        "GET",
        "--path",
        "/x",
        "--route-name",
        "r1",
    ]);
    assert_eq!((code, out.contains("rule:     legacy")), (0, true), "{out}");
    let (code, out) = run(&[
        "explain", "--config", cfg, "--method", "GET", "--path", "/x",
    ]);
    assert_eq!(
        (code, out.contains("rule:     none matched")),
        (1, true),
        "{out}"
    );
    let (code, out) = run(&[
        "explain", "--config", cfg, "--method", "GET", "--path", "/x", "--token", "a.b.c",
    ]);
    assert!(out.contains("token:    invalid: malformed"), "{out}");
    assert_eq!(code, 1);
    let bad = write("broken", &json!({"rules": 5}));
    assert_eq!(
        run(&[
            "explain",
            "--config",
            bad.to_str().unwrap(),
            "--method",
            "GET",
            "--path",
            "/"
        ])
        .0,
        3
    );
    assert_eq!(run(&["explain", "--config", cfg, "--method", "GET"]).0, 2);
}

#[test]
#[allow(clippy::indexing_slicing)]
fn check_warns_on_unauthenticated_introspection_and_never_prints_secrets() {
    let mut c = config(json!([
        {"name": "a", "match": {"prefix": "/a"}, "require": "authenticated"},
    ]));
    c["providers"][0]["introspection"] = json!({"cluster": "auth", "authority": "auth.test"});
    let p = write("intro-unauth", &c);
    let (code, out) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: providers[0].introspection: no client authentication"),
        "{out}"
    );
    assert_eq!(run(&["check", "--strict", p.to_str().unwrap()]).0, 1);
    c["providers"][0]["introspection"] = json!({"cluster": "auth", "authority": "auth.test",
        "client_id": "svc-a", "client_secret": "hunter2-secret", "bearer_token": "tok en-secret"});
    let p = write("intro-both", &c);
    let (code, out) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: providers[0].introspection.bearer_token: use either"),
        "{out}"
    );
    assert!(!out.contains("hunter2") && !out.contains("tok en"), "{out}");
    // An opaque token offline: the filter would introspect it.
    c["providers"][0]["introspection"] = json!({"cluster": "auth", "authority": "auth.test",
        "bearer_token": "b"});
    let p = write("intro-ok", &c);
    let (code, out) = run(&[
        "explain",
        "--config",
        p.to_str().unwrap(),
        "--method",
        "GET",
        "--path",
        "/a",
        "--token",
        "opaque-token",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("needs an RFC 7662 introspection answer from provider main"),
        "{out}"
    );
}
