//! Authorization through the real scopegate.wasm: every outcome, dry-run,
//! CORS preflight, super-admin, roles, hosts and Envoy route names.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proxy_wasm_harness::{Host, LogLevel, Outcome, Vm};
use scopegate_integration::{configured_vm as start, host, module, publish_counters};
use scopegate_testkit::*;
use serde_json::{Value, json};

fn policy_config(extra: Value) -> Value {
    let mut c = config(json!([
        {"name": "health", "match": {"exact": "/healthz"}, "require": "public"},
        {"name": "order", "match": {"template": "/orders/{id}", "methods": ["GET"]},
         "require": {"all_of": ["svc-a:orders:read"]}},
        {"name": "orders-write", "match": {"prefix": "/orders", "methods": ["POST"]},
         "require": {"any_of": ["svc-a:orders:write", {"all_of": ["svc-a:admin", "svc-a:orders:read"]}]}},
        {"name": "legacy", "match": {"prefix": "/", "route_names": ["r1"]}, "require": "authenticated"},
        {"name": "internal", "match": {"prefix": "/internal", "hosts": ["internal.svc-a"]}, "require": "public"},
        {"name": "beta", "match": {"prefix": "/beta"}, "require": {"all_of": ["svc-a:beta"]}, "dry_run": true},
    ]));
    c["roles"] = json!({"orders-admin": ["svc-a:orders:read", "svc-a:orders:write"]});
    c["super_admin_scope"] = json!("svc-a:superadmin");
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

struct Sent {
    out: Outcome,
    upstream: Vec<(String, String)>,
}

fn send(vm: &Vm, method: &str, path: &str, headers: &[(&str, &str)], route: Option<&str>) -> Sent {
    let mut all = vec![(":method", method), (":path", path), (":scheme", "http")];
    if !headers.iter().any(|(k, _)| *k == ":authority") {
        all.push((":authority", "svc-a"));
    }
    all.extend_from_slice(headers);
    let mut s = vm.http_stream();
    if let Some(r) = route {
        s.set_property(&["xds", "route_name"], r.as_bytes());
    }
    let out = s.request_headers(&all, true);
    let upstream = s.request_headers_now();
    s.finish();
    Sent { out, upstream }
}

fn bearer(scope: &str, extra: Value) -> String {
    let mut c = claims(scope);
    for (k, v) in extra.as_object().unwrap() {
        c.insert(k.clone(), v.clone());
    }
    format!("Bearer {}", sign("HS256", None, &c))
}

/// A counter, after the tick that publishes the per-request counts.
fn counted(host: &Host, name: &str) -> Option<i64> {
    publish_counters(host);
    host.metric_value(name)
}

fn reply(out: &Outcome) -> (u32, Value) {
    match out {
        Outcome::LocalReply { status, body, .. } => {
            (*status, serde_json::from_slice(body).unwrap())
        }
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    h.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn each_outcome_has_its_status_challenge_and_counters() {
    let host = host();
    let vm = start(&host, &policy_config(json!({})));
    let read = bearer("svc-a:orders:read", json!({}));

    let s = send(&vm, "GET", "/orders/7", &[("authorization", &read)], None);
    assert_eq!(s.out, Outcome::Continue);
    assert_eq!(counted(&host, "scopegate.rule.order.allowed"), Some(1));

    let s = send(&vm, "GET", "/orders/7", &[], None);
    let (status, body) = reply(&s.out);
    assert_eq!(
        (status, body["reason"].as_str(), body["rule"].as_str()),
        (401, Some("token_missing"), Some("order"))
    );
    assert_eq!(
        s.out.header("www-authenticate"),
        Some("Bearer realm=\"svc-a\"")
    );

    let s = send(&vm, "POST", "/orders", &[("authorization", &read)], None);
    let (status, body) = reply(&s.out);
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(body["rule"], "orders-write");
    assert_eq!(body["required_scopes"], json!(["svc-a:orders:write"]));
    assert_eq!(
        s.out.header("www-authenticate"),
        Some(
            "Bearer realm=\"svc-a\", error=\"insufficient_scope\", error_description=\"the access token lacks a required scope\", scope=\"svc-a:orders:write\""
        )
    );
    assert_eq!(
        counted(&host, "scopegate.rule.orders-write.denied"),
        Some(1)
    );

    let s = send(
        &vm,
        "GET",
        "/orders/7/lines",
        &[("authorization", &read)],
        None,
    );
    assert_eq!(
        reply(&s.out).1["reason"],
        "no_matching_rule",
        "a template is one segment per parameter"
    );

    assert_eq!(counted(&host, "scopegate.rule.order.denied"), Some(1));
    assert_eq!(counted(&host, "scopegate.allowed"), Some(1));
    assert_eq!(counted(&host, "scopegate.denied"), Some(3));
    assert!(
        vm.logged("scopegate: allow GET /orders/7 rule=order reason=allowed sub=Some(\"alice\")"),
        "the decision is logged at debug with rule and principal: {:?}",
        vm.log_messages()
    );
    assert!(vm.logged("scopegate: deny POST /orders status=403 reason=insufficient_scope rule=Some(\"orders-write\")"));
}

#[test]
fn local_roles_and_wildcard_grants_work_in_the_filter() {
    let host = host();
    let vm = start(&host, &policy_config(json!({})));
    let admin = bearer("", json!({"roles": ["orders-admin"]}));
    assert_eq!(
        send(&vm, "POST", "/orders", &[("authorization", &admin)], None).out,
        Outcome::Continue
    );
    let wildcard = bearer("svc-a:orders:*", json!({}));
    assert_eq!(
        send(
            &vm,
            "GET",
            "/orders/1",
            &[("authorization", &wildcard)],
            None
        )
        .out,
        Outcome::Continue
    );
    let other = bearer("svc-a:ordersx:*", json!({"roles": ["orders-reader"]}));
    assert_eq!(
        reply(&send(&vm, "GET", "/orders/1", &[("authorization", &other)], None).out).0,
        403
    );
}

#[test]
fn the_super_admin_scope_passes_is_counted_and_logged_at_info() {
    let host = host();
    let vm = start(&host, &policy_config(json!({})));
    let root = bearer("svc-a:superadmin", json!({}));
    assert_eq!(
        send(&vm, "POST", "/orders", &[("authorization", &root)], None).out,
        Outcome::Continue
    );
    assert_eq!(counted(&host, "scopegate.superadmin_used"), Some(1));
    assert_eq!(counted(&host, "scopegate.decision.super_admin"), Some(1));
    assert!(
        vm.logs().iter().any(|l| l.level == LogLevel::Info
            && l.message.contains("super-admin scope used: POST /orders")),
        "{:?}",
        vm.log_messages()
    );
    // Public route: not needed, not counted.
    assert_eq!(
        send(&vm, "GET", "/healthz", &[("authorization", &root)], None).out,
        Outcome::Continue
    );
    assert_eq!(counted(&host, "scopegate.superadmin_used"), Some(1));
}

#[test]
fn dry_run_rules_let_denials_through_and_tell_the_upstream() {
    let host = host();
    let vm = start(&host, &policy_config(json!({})));
    let s = send(
        &vm,
        "GET",
        "/beta/x",
        &[("x-scopegate-dry-run", "allow; spoofed")],
        None,
    );
    assert_eq!(s.out, Outcome::Continue);
    assert_eq!(
        header(&s.upstream, "x-scopegate-dry-run"),
        ["deny; status=401; reason=token_missing; rule=beta"],
        "the spoofed copy is replaced"
    );
    assert_eq!(counted(&host, "scopegate.dry_run.would_deny"), Some(1));
    assert_eq!(counted(&host, "scopegate.rule.beta.denied"), Some(1));
    assert_eq!(
        counted(&host, "scopegate.decision.token_missing"),
        Some(1)
    );
    assert_eq!(
        counted(&host, "scopegate.allowed"),
        Some(1),
        "it went upstream"
    );
    assert!(
        vm.logged("dry-run: would deny GET /beta/x status=401"),
        "{:?}",
        vm.log_messages()
    );
    // Other rules are enforced.
    assert_eq!(reply(&send(&vm, "GET", "/orders/1", &[], None).out).0, 401);

    // Global dry-run: even unmatched requests go through.
    let host = crate::host();
    let vm = start(&host, &policy_config(json!({"dry_run": true})));
    let s = send(&vm, "DELETE", "/nowhere", &[], None);
    assert_eq!(s.out, Outcome::Continue);
    assert_eq!(
        header(&s.upstream, "x-scopegate-dry-run"),
        ["deny; status=403; reason=no_matching_rule"]
    );
    let t = bearer("svc-a:orders:read", json!({}));
    let s = send(&vm, "GET", "/orders/1", &[("authorization", &t)], None);
    assert_eq!(
        header(&s.upstream, "x-scopegate-dry-run"),
        ["allow; reason=allowed; rule=order"]
    );
    assert_eq!(header(&s.upstream, "x-scopegate-sub"), ["alice"]);
}

#[test]
fn cors_preflights_pass_without_a_token_unless_enforced() {
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
    ];
    let host = host();
    let vm = start(&host, &policy_config(json!({})));
    let s = send(&vm, "OPTIONS", "/orders", &preflight, None);
    assert_eq!(s.out, Outcome::Continue);
    assert_eq!(
        counted(&host, "scopegate.decision.cors_preflight"),
        Some(1)
    );
    let s = send(
        &vm,
        "OPTIONS",
        "/orders",
        &[("origin", "https://app.example")],
        None,
    );
    assert_eq!(
        reply(&s.out).1["reason"],
        "no_matching_rule",
        "not a preflight without the request-method header"
    );

    let host = crate::host();
    let vm = start(&host, &policy_config(json!({"cors_preflight": "enforce"})));
    assert_eq!(
        reply(&send(&vm, "OPTIONS", "/orders", &preflight, None).out).1["reason"],
        "no_matching_rule"
    );
}

#[test]
fn envoy_route_names_come_from_the_xds_route_name_property() {
    let host = host();
    let vm = start(&host, &policy_config(json!({})));
    let t = bearer("", json!({}));
    let s = send(
        &vm,
        "GET",
        "/anything",
        &[("authorization", &t)],
        Some("r1"),
    );
    assert_eq!(s.out, Outcome::Continue);
    assert_eq!(counted(&host, "scopegate.rule.legacy.allowed"), Some(1));
    let (status, body) = reply(&send(&vm, "GET", "/anything", &[], Some("r1")).out);
    assert_eq!((status, body["rule"].as_str()), (401, Some("legacy")));
    for route in [Some("r2"), Some(""), None] {
        let s = send(&vm, "GET", "/anything", &[("authorization", &t)], route);
        assert_eq!(reply(&s.out).1["reason"], "no_matching_rule", "{route:?}");
    }
}

#[test]
fn hosts_come_from_the_authority() {
    let host = host();
    let vm = start(&host, &policy_config(json!({})));
    let s = send(
        &vm,
        "GET",
        "/internal/x",
        &[(":authority", "Internal.SVC-A:8080")],
        None,
    );
    assert_eq!(s.out, Outcome::Continue);
    let s = send(&vm, "GET", "/internal/x", &[(":authority", "svc-a")], None);
    assert_eq!(reply(&s.out).1["reason"], "no_matching_rule");
}

#[test]
fn a_shadowed_rule_or_a_bad_regex_refuses_the_config_naming_the_rule() {
    let host = host();
    let mut c = policy_config(json!({}));
    c["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "dead", "match": {"exact": "/orders/9", "methods": ["GET"]}, "require": "public"}));
    c["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "bad", "match": {"regex": "/x(("}, "require": "public"}));
    let vm = host
        .vm(module())
        .plugin_config(c.to_string())
        .start()
        .unwrap();
    assert!(!vm.configured());
    assert!(
        vm.logged("rules[6]: unreachable rule"),
        "{:?}",
        vm.log_messages()
    );
    assert!(
        vm.logged("rules[7].match.regex: invalid regex"),
        "{:?}",
        vm.log_messages()
    );
}

#[test]
fn a_repeated_token_header_is_decided_on_its_first_value_and_stripped_whole() {
    // The shim reads the request header map in one call; a name's first
    // value is the one `proxy_get_header_map_value` would give, and the
    // token header goes away with every value it has.
    let host = host();
    let vm = start(&host, &policy_config(json!({})));
    let read = bearer("svc-a:orders:read", json!({}));

    let s = send(
        &vm,
        "GET",
        "/orders/7",
        &[("authorization", &read), ("authorization", "Bearer not-a-token")],
        None,
    );
    assert_eq!(s.out, Outcome::Continue, "the first value holds a valid token");
    assert!(header(&s.upstream, "authorization").is_empty(), "{:?}", s.upstream);

    let s = send(
        &vm,
        "GET",
        "/orders/7",
        &[("authorization", "Bearer not-a-token"), ("authorization", &read)],
        None,
    );
    let (status, body) = reply(&s.out);
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("malformed")),
        "a valid token after a bad one is not looked for"
    );

    // Headers the policy does not read change nothing, however many.
    let many: Vec<(String, String)> = (0..200).map(|i| (format!("x-h{i}"), "v".repeat(i))).collect();
    let mut headers: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.push(("authorization", &read));
    let s = send(&vm, "GET", "/orders/7", &headers, None);
    assert_eq!(s.out, Outcome::Continue);
    assert_eq!(header(&s.upstream, "x-h199"), vec!["v".repeat(199).as_str()]);
}
