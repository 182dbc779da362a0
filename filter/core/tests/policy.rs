//! Authorization: route matching, requirements, scopes, roles, super-admin,
//! CORS, dry-run, and the config errors of the rule table.
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

use scopegate_core::rules::RouteFacts;
use scopegate_core::{Allow, Decision, Deny, Policy, Reason, Request, compile_json};
use serde_json::{Map, Value, json};

const PARTNER_ISS: &str = "https://partner.test";

fn two_providers(extra: Value) -> Value {
    let mut c = config(json!([]));
    let mut partner = c["providers"][0].clone();
    partner["name"] = json!("partner");
    partner["issuer"] = json!(PARTNER_ISS);
    c["providers"].as_array_mut().unwrap().push(partner);
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn compiled(c: &Value) -> Policy {
    compile_json(c.to_string().as_bytes()).unwrap_or_else(|e| {
        panic!(
            "config refused: {:?}",
            e.iter().map(ToString::to_string).collect::<Vec<_>>()
        )
    })
}

fn errors(c: &Value) -> Vec<String> {
    match compile_json(c.to_string().as_bytes()) {
        Ok(_) => panic!("config accepted: {c}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn warnings(c: &Value) -> Vec<String> {
    compiled(c)
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn has(list: &[String], needle: &str) {
    assert!(
        list.iter().any(|e| e.contains(needle)),
        "{needle:?} not in {list:#?}"
    );
}

fn token(scope: &str, extra: Value) -> String {
    let mut c = claims(scope);
    for (k, v) in extra.as_object().unwrap() {
        c.insert(k.clone(), v.clone());
    }
    sign("HS256", None, &c)
}

struct Req<'a> {
    method: &'a str,
    path: &'a str,
    token: Option<String>,
    host: Option<&'a str>,
    route: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
}

fn req(method: &'static str, path: &'static str) -> Req<'static> {
    Req {
        method,
        path,
        token: None,
        host: None,
        route: None,
        headers: Vec::new(),
    }
}

impl<'a> Req<'a> {
    fn token(mut self, t: String) -> Self {
        self.token = Some(t);
        self
    }
    fn host(mut self, h: &'a str) -> Self {
        self.host = Some(h);
        self
    }
    fn route(mut self, r: &'a str) -> Self {
        self.route = Some(r);
        self
    }
    fn header(mut self, k: &'a str, v: &'a str) -> Self {
        self.headers.push((k, v));
        self
    }
    fn run(&self, p: &Policy) -> Decision {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = self.headers.clone();
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        if let Some(h) = self.host {
            headers.push((":authority", h));
        }
        p.decide(&Request {
            method: self.method,
            path: self.path,
            headers: &headers,
            now_unix_seconds: NOW,
            route_name: self.route,
        })
    }
}

fn allowed(d: Decision) -> Allow {
    match d {
        Decision::Allow(a) if a.dry_run.is_none() => a,
        other => panic!("not allowed: {other:?}"),
    }
}

fn denied(d: Decision) -> Deny {
    match d {
        Decision::Deny(d) => d,
        other => panic!("not denied: {other:?}"),
    }
}

fn rule_of(d: &Decision) -> Option<String> {
    d.rule().map(str::to_owned)
}

// ------------------------------------------------------------------ matching

fn matching_policy() -> Policy {
    compiled(&two_providers(json!({"rules": [
        {"name": "order", "match": {"template": "/orders/{id}", "methods": ["GET"]}, "require": "public"},
        {"name": "order-lines", "match": {"template": "/orders/{id}/lines/{line}"}, "require": "public"},
        {"name": "files", "match": {"template": "/files/{*rest}"}, "require": "public"},
        {"name": "numeric", "match": {"regex": "/v[0-9]+/items/[0-9]+"}, "require": "public"},
        {"name": "tenant-host", "match": {"prefix": "/", "hosts": ["*.tenants.example"]}, "require": "public"},
        {"name": "api-host", "match": {"prefix": "/status", "hosts": ["api.example:8443"]}, "require": "public"},
        {"name": "by-route", "match": {"prefix": "/", "route_names": ["legacy"]}, "require": "public"},
        {"name": "orders", "match": {"prefix": "/orders"}, "require": "public"},
    ]})))
}

#[test]
fn templates_match_whole_segments() {
    let p = matching_policy();
    let cases = [
        ("GET", "/orders/7", Some("order")),
        ("POST", "/orders/7", Some("orders")),
        ("GET", "/orders/7/lines/2", Some("order-lines")),
        ("GET", "/orders/7/lines", Some("orders")),
        ("GET", "/orders", Some("orders")),
        ("GET", "/files/a", Some("files")),
        ("GET", "/files/a/b/c.txt", Some("files")),
        ("GET", "/files", None),
        ("GET", "/filesx/a", None),
    ];
    for (m, path, want) in cases {
        assert_eq!(
            rule_of(&req(m, path).run(&p)).as_deref(),
            want,
            "{m} {path}"
        );
    }
}

#[test]
fn regexes_match_the_whole_normalised_path() {
    let p = matching_policy();
    assert_eq!(
        rule_of(&req("GET", "/v2/items/42").run(&p)).as_deref(),
        Some("numeric")
    );
    assert_eq!(
        rule_of(&req("GET", "/v2//items/./42").run(&p)).as_deref(),
        Some("numeric")
    );
    assert_eq!(
        rule_of(&req("GET", "/v2/items/42x").run(&p)),
        None,
        "anchored at the end"
    );
    assert_eq!(
        rule_of(&req("GET", "/x/v2/items/42").run(&p)),
        None,
        "anchored at the start"
    );
    assert_eq!(
        rule_of(&req("GET", "/v2/items/%34%32").run(&p)).as_deref(),
        Some("numeric")
    );
}

#[test]
fn hosts_match_case_insensitively_with_optional_port_and_suffix_wildcards() {
    let p = matching_policy();
    let cases = [
        ("acme.tenants.example", Some("tenant-host")),
        ("ACME.Tenants.Example:8080", Some("tenant-host")),
        ("a.b.tenants.example.", Some("tenant-host")),
        ("tenants.example", None),
        ("eviltenants.example", None),
        ("api.example:8443", Some("api-host")),
        ("api.example:443", None),
        ("api.example", None),
    ];
    for (host, want) in cases {
        assert_eq!(
            rule_of(&req("GET", "/status").host(host).run(&p)).as_deref(),
            want,
            "{host}"
        );
    }
    assert_eq!(
        rule_of(&req("GET", "/status").run(&p)),
        None,
        "no authority, no host rule"
    );
}

#[test]
fn envoy_route_names_select_rules() {
    let p = matching_policy();
    assert!(p.wants_route_name());
    assert_eq!(
        rule_of(&req("GET", "/anything").route("legacy").run(&p)).as_deref(),
        Some("by-route")
    );
    assert_eq!(
        rule_of(&req("GET", "/anything").route("other").run(&p)),
        None
    );
    assert_eq!(rule_of(&req("GET", "/anything").run(&p)), None);
    // First match wins across indexes: the template rule comes before the route rule.
    assert_eq!(
        rule_of(&req("GET", "/orders/1").route("legacy").run(&p)).as_deref(),
        Some("order")
    );
}

#[test]
fn host_and_route_name_are_read_only_when_rules_use_them() {
    let plain = compiled(&config(default_rules()));
    assert!(!plain.wants_route_name());
    assert!(!plain.wanted_headers().iter().any(|h| h == ":authority"));
    assert!(!plain.headers_for("GET").any(|h| h == "origin"));
    assert!(
        plain.headers_for("OPTIONS").any(|h| h == "origin"),
        "CORS bypass reads Origin on OPTIONS only"
    );
    let p = matching_policy();
    assert!(p.wanted_headers().iter().any(|h| h == ":authority"));
}

#[test]
fn normalisation_traps_reach_the_rule_they_spell() {
    let p = compiled(&config(json!([
        {"name": "admin", "match": {"template": "/admin/{*rest}"}, "require": {"all_of": ["svc-a:admin"]}},
        {"name": "open", "match": {"prefix": "/"}, "require": "public"},
    ])));
    for path in [
        "/admin/x",
        "/public/../admin/x",
        "/%61dmin/x",
        "//admin//x",
        "/./admin/x?y=1",
        "/admin/x/",
    ] {
        let d = req("GET", path).run(&p);
        assert_eq!(
            denied(d).reason,
            Reason::TokenMissing,
            "{path} must reach the admin rule"
        );
    }
    assert_eq!(denied(req("GET", "/admin%2Fx").run(&p)).status, 400);
}

/// A small deterministic generator (no randomness source in the core).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn the_route_table_picks_the_same_rule_as_trying_every_rule_in_order() {
    let words = ["a", "b", "orders", "7", "x"];
    let mut g = Lcg(42);
    for round in 0..30 {
        let mut rules = Vec::new();
        for i in 0..40 {
            let depth = g.next(3) + 1;
            let segs: Vec<&str> = (0..depth).map(|_| words[g.next(5) as usize]).collect();
            let path = format!("/{}", segs.join("/"));
            let mut m = match g.next(6) {
                0 => json!({"exact": path}),
                1 => json!({"prefix": path}),
                2 => json!({"prefix": "/"}),
                3 => {
                    let t: Vec<String> = segs
                        .iter()
                        .enumerate()
                        .map(|(k, s)| {
                            if g.next(2) == 0 {
                                format!("{{p{k}}}")
                            } else {
                                (*s).to_owned()
                            }
                        })
                        .collect();
                    let mut t = format!("/{}", t.join("/"));
                    if g.next(3) == 0 {
                        t.push_str("/{*rest}");
                    }
                    json!({"template": t})
                }
                4 => json!({"regex": format!("{path}(/[0-9a-z]+)?")}),
                _ => json!({"template": "/{a}"}),
            };
            if g.next(3) == 0 {
                let v = ["GET", "POST"][g.next(2) as usize];
                m["methods"] = json!([v]);
            }
            if g.next(5) == 0 {
                let v = ["h1.test", "*.test"][g.next(2) as usize];
                m["hosts"] = json!([v]);
            }
            if g.next(5) == 0 {
                let v = ["r1", "r2"][g.next(2) as usize];
                m["route_names"] = json!([v]);
            }
            rules.push(json!({"name": format!("r{i}"), "match": m, "require": "public"}));
        }
        // Shadowed rules are refused; drop them until the table compiles.
        let mut cfg = config(Value::Array(rules));
        let policy = loop {
            match compile_json(cfg.to_string().as_bytes()) {
                Ok(p) => break p,
                Err(errs) => {
                    let idx: Vec<usize> = errs
                        .iter()
                        .filter(|e| e.to_string().contains("unreachable"))
                        .filter_map(|e| {
                            e.path
                                .strip_prefix("rules[")?
                                .strip_suffix(']')?
                                .parse()
                                .ok()
                        })
                        .collect();
                    assert!(!idx.is_empty(), "unexpected errors: {errs:?}");
                    let list = cfg["rules"].as_array_mut().unwrap();
                    for i in idx.into_iter().rev() {
                        list.remove(i);
                    }
                }
            }
        };
        for _ in 0..200 {
            let depth = g.next(5);
            let segs: Vec<&str> = (0..depth).map(|_| words[g.next(5) as usize]).collect();
            let path = format!("/{}", segs.join("/"));
            let method = ["GET", "POST", "PUT"][g.next(3) as usize];
            let host = [None, Some("h1.test"), Some("h2.test")][g.next(3) as usize];
            let route = [None, Some("r1"), Some("r2")][g.next(3) as usize];
            let facts = RouteFacts {
                method,
                path: &path,
                host: host.map(|h| (h, None)),
                route_name: route,
            };
            let fast = policy.authz().find(&facts).map(|r| r.name().to_owned());
            let slow = policy
                .authz()
                .find_linear(&facts)
                .map(|r| r.name().to_owned());
            assert_eq!(
                fast, slow,
                "round {round}: {method} {path} host={host:?} route={route:?}"
            );
        }
    }
}

// ------------------------------------------------------------------ requirements

fn authz_policy(extra: Value) -> Policy {
    let mut base = json!({
        "rules": [
            {"name": "health", "match": {"exact": "/healthz"}, "require": "public"},
            {"name": "reports", "match": {"prefix": "/reports"},
             "require": {"all_of": ["svc-a:reports:read", {"any_of": ["svc-a:eu", {"all_of": ["svc-a:us", "svc-a:export"]}]}]}},
            {"name": "partner-only", "match": {"prefix": "/partner"}, "require": "authenticated", "providers": ["partner"]},
            {"name": "tenant", "match": {"template": "/tenants/acme/{*rest}"}, "require": "authenticated",
             "claims": [{"claim": "tenant", "equals": "acme"}, {"claim": "groups", "contains": "staff"},
                        {"claim": "org.region", "one_of": ["eu", "ch"]}]},
            {"name": "orders", "match": {"prefix": "/orders", "methods": ["GET"]}, "require": {"all_of": ["svc-a:orders:read"]}},
            {"name": "orders-write", "match": {"prefix": "/orders", "methods": ["POST"]}, "require": {"all_of": ["svc-a:orders:write"]}},
        ],
        "roles": {"orders-admin": ["svc-a:orders:read", "svc-a:orders:write"], "reporter": ["svc-a:reports:*", "svc-a:eu"]},
        "super_admin_scope": "svc-a:superadmin",
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    compiled(&two_providers(base))
}

#[test]
fn nested_requirements_take_either_branch_and_name_the_cheapest_gap() {
    let p = authz_policy(json!({}));
    for scope in [
        "svc-a:reports:read svc-a:eu",
        "svc-a:reports:read svc-a:us svc-a:export",
    ] {
        allowed(
            req("GET", "/reports/q1")
                .token(token(scope, json!({})))
                .run(&p),
        );
    }
    let d = denied(
        req("GET", "/reports/q1")
            .token(token("svc-a:reports:read svc-a:us", json!({})))
            .run(&p),
    );
    assert_eq!((d.status, d.reason), (403, Reason::InsufficientScope));
    assert_eq!(d.required_scopes, ["svc-a:reports:read", "svc-a:eu"]);
    assert!(
        d.www_authenticate()
            .unwrap()
            .ends_with("scope=\"svc-a:reports:read svc-a:eu\"")
    );
    let body: Value = serde_json::from_str(&d.body()).unwrap();
    assert_eq!(body["rule"], "reports");
}

#[test]
fn wildcard_grants_pass_the_scopes_they_cover_only() {
    let p = authz_policy(json!({}));
    allowed(
        req("GET", "/orders/1")
            .token(token("svc-a:orders:*", json!({})))
            .run(&p),
    );
    allowed(
        req("POST", "/orders")
            .token(token("svc-a:*", json!({})))
            .run(&p),
    );
    for scope in [
        "svc-a:order:*",
        "svc-b:*",
        "svc-a:orders:read-all",
        "*",
        "svc-a:orders*",
    ] {
        let d = denied(
            req("GET", "/orders/1")
                .token(token(scope, json!({})))
                .run(&p),
        );
        assert_eq!(d.reason, Reason::InsufficientScope, "{scope}");
    }
}

#[test]
fn local_roles_expand_into_scopes() {
    let p = authz_policy(json!({}));
    let t = token("", json!({"roles": ["orders-admin"]}));
    allowed(req("GET", "/orders").token(t.clone()).run(&p));
    allowed(req("POST", "/orders").token(t).run(&p));
    let t = token("", json!({"roles": ["reporter"]}));
    allowed(req("GET", "/reports/x").token(t.clone()).run(&p));
    assert_eq!(
        denied(req("GET", "/orders").token(t).run(&p)).reason,
        Reason::InsufficientScope
    );
    let t = token("", json!({"roles": ["orders-admin-x", "ORDERS-ADMIN"]}));
    assert_eq!(
        denied(req("GET", "/orders").token(t).run(&p)).reason,
        Reason::InsufficientScope
    );
    // A configured roles claim (nested), and a scope claim.
    let p = authz_policy(json!({"roles_claim": "realm_access.roles", "scope_claim": ["perms"]}));
    let t = token(
        "svc-a:orders:write",
        json!({"realm_access": {"roles": ["reporter"]}, "perms": ["svc-a:orders:read"]}),
    );
    allowed(req("GET", "/reports/x").token(t.clone()).run(&p));
    let a = allowed(req("GET", "/orders").token(t.clone()).run(&p));
    assert_eq!(
        a.principal.unwrap().scopes,
        ["svc-a:orders:read"],
        "scopes read from the configured claim"
    );
    assert_eq!(
        denied(req("POST", "/orders").token(t).run(&p)).reason,
        Reason::InsufficientScope,
        "the default scope claim is not read when another is configured"
    );
}

#[test]
fn provider_restriction_refuses_other_issuers_with_403() {
    let p = authz_policy(json!({}));
    allowed(
        req("GET", "/partner/x")
            .token(token("", json!({"iss": PARTNER_ISS})))
            .run(&p),
    );
    let d = denied(
        req("GET", "/partner/x")
            .token(token("svc-a:superadmin", json!({})))
            .run(&p),
    );
    assert_eq!(
        (d.status, d.reason),
        (403, Reason::ProviderNotAllowed),
        "super-admin does not lift it"
    );
    let w = d.www_authenticate().unwrap();
    assert!(
        w.contains("error=\"insufficient_scope\"") && !w.contains("scope=\""),
        "{w}"
    );
}

#[test]
fn claim_conditions_all_have_to_hold() {
    let p = authz_policy(json!({}));
    let good = json!({"tenant": "acme", "groups": ["staff", "x"], "org": {"region": "ch"}});
    allowed(
        req("GET", "/tenants/acme/a")
            .token(token("", good.clone()))
            .run(&p),
    );
    let groups_as_string = json!({"tenant": "acme", "groups": "staff", "org": {"region": "eu"}});
    allowed(
        req("GET", "/tenants/acme/a")
            .token(token("", groups_as_string))
            .run(&p),
    );
    for (field, bad) in [
        ("tenant", json!("acme2")),
        ("tenant", json!(["acme"])),
        ("groups", json!(["staffer"])),
        ("org", json!({"region": "us"})),
        ("org", json!("eu")),
    ] {
        let mut c = good.clone();
        c[field] = bad;
        let d = denied(
            req("GET", "/tenants/acme/a")
                .token(token("", c.clone()))
                .run(&p),
        );
        assert_eq!((d.status, d.reason), (403, Reason::ClaimMismatch), "{c}");
    }
    let mut missing = good;
    missing.as_object_mut().unwrap().remove("tenant");
    assert_eq!(
        denied(
            req("GET", "/tenants/acme/a")
                .token(token("", missing))
                .run(&p)
        )
        .reason,
        Reason::ClaimMismatch
    );
}

#[test]
fn the_super_admin_scope_passes_every_non_public_rule_and_says_so() {
    let p = authz_policy(json!({}));
    let t = token("svc-a:superadmin", json!({}));
    for (m, path) in [
        ("GET", "/orders"),
        ("POST", "/orders"),
        ("GET", "/reports/x"),
        ("GET", "/tenants/acme/x"),
    ] {
        let a = allowed(req(m, path).token(t.clone()).run(&p));
        assert_eq!(a.reason, Reason::SuperAdmin, "{m} {path}");
    }
    // Not used when the token passes anyway, nor on public or unmatched routes.
    let t2 = token("svc-a:superadmin svc-a:orders:read", json!({}));
    assert_eq!(
        allowed(req("GET", "/orders").token(t2).run(&p)).reason,
        Reason::Allowed
    );
    assert_eq!(
        allowed(req("GET", "/healthz").token(t.clone()).run(&p)).reason,
        Reason::Public
    );
    assert_eq!(
        denied(req("GET", "/nowhere").token(t).run(&p)).reason,
        Reason::NoMatchingRule
    );
    // Without the setting the scope means nothing.
    let p = authz_policy(json!({"super_admin_scope": null}));
    let t = token("svc-a:superadmin", json!({}));
    assert_eq!(
        denied(req("GET", "/orders").token(t).run(&p)).reason,
        Reason::InsufficientScope
    );
}

#[test]
fn a_default_rule_applies_when_no_rule_matches() {
    let p = authz_policy(
        json!({"default_rule": {"name": "fallback", "require": {"all_of": ["svc-a:misc"]}}}),
    );
    let d = denied(req("GET", "/nowhere").token(token("", json!({}))).run(&p));
    assert_eq!(
        (d.reason, d.rule.as_deref()),
        (Reason::InsufficientScope, Some("fallback"))
    );
    let a = allowed(
        req("DELETE", "/nowhere")
            .token(token("svc-a:misc", json!({})))
            .run(&p),
    );
    assert_eq!(a.rule.as_deref(), Some("fallback"));
    assert_eq!(denied(req("GET", "/nowhere").run(&p)).status, 401);
}

#[test]
fn cors_preflights_bypass_the_rules_unless_enforced() {
    let p = authz_policy(json!({}));
    let pre = req("OPTIONS", "/orders")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST");
    let a = allowed(pre.run(&p));
    assert_eq!((a.rule, a.reason), (None, Reason::CorsPreflight));
    // An OPTIONS without the preflight headers is an ordinary request.
    let d = denied(
        req("OPTIONS", "/orders")
            .header("origin", "https://app.example")
            .run(&p),
    );
    assert_eq!(d.reason, Reason::NoMatchingRule);
    let p = authz_policy(json!({"cors_preflight": "enforce"}));
    assert_eq!(denied(pre.run(&p)).reason, Reason::NoMatchingRule);
    let e = errors(&two_providers(json!({"cors_preflight": "skip"})));
    has(&e, "cors_preflight");
}

fn dry_header(a: &Allow) -> Option<&str> {
    a.sets("x-scopegate-dry-run")
}

#[test]
fn dry_run_lets_denials_through_with_the_would_be_decision_upstream() {
    let p = authz_policy(json!({"dry_run": true}));
    let t = token("svc-a:other", json!({}));
    let d = req("GET", "/orders").token(t).run(&p);
    assert_eq!(d.reason(), Reason::InsufficientScope);
    let Decision::Allow(a) = d else {
        panic!("dry-run must let it through")
    };
    let would = a.dry_run.as_ref().unwrap();
    assert_eq!(
        (would.status, would.reason),
        (403, Reason::InsufficientScope)
    );
    assert_eq!(
        dry_header(&a),
        Some("deny; status=403; reason=insufficient_scope; rule=orders")
    );
    assert_eq!(
        a.principal.as_ref().unwrap().subject.as_deref(),
        Some("alice"),
        "valid principal still forwarded"
    );
    assert!(
        a.removes("x-scopegate-dry-run"),
        "inbound copies are stripped"
    );
    assert!(a.removes("authorization"));
    // No token, no rule, a bad path: all let through, none enforced.
    for (path, status, reason) in [
        ("/orders", 401, "token_missing"),
        ("/nowhere", 403, "no_matching_rule"),
        ("/a%2Fb", 400, "invalid_path"),
    ] {
        let Decision::Allow(a) = req("GET", path).run(&p) else {
            panic!("{path}")
        };
        assert_eq!(a.dry_run.as_ref().unwrap().status, status);
        assert!(
            dry_header(&a)
                .unwrap()
                .contains(&format!("reason={reason}")),
            "{path}: {:?}",
            dry_header(&a)
        );
    }
    // An allowed request says so too.
    let a = allowed(
        req("GET", "/orders")
            .token(token("svc-a:orders:read", json!({})))
            .run(&p),
    );
    assert_eq!(dry_header(&a), Some("allow; reason=allowed; rule=orders"));
}

#[test]
fn per_rule_dry_run_affects_that_rule_only() {
    let mut c = two_providers(json!({"rules": [
        {"name": "new", "match": {"prefix": "/new"}, "require": {"all_of": ["svc-a:new"]}, "dry_run": true},
        {"name": "old", "match": {"prefix": "/old"}, "require": {"all_of": ["svc-a:old"]}},
    ]}));
    let p = compiled(&c);
    let Decision::Allow(a) = req("GET", "/new").run(&p) else {
        panic!()
    };
    assert_eq!(a.dry_run.unwrap().reason, Reason::TokenMissing);
    assert_eq!(
        denied(req("GET", "/old").run(&p)).reason,
        Reason::TokenMissing
    );
    assert_eq!(
        denied(req("GET", "/other").run(&p)).reason,
        Reason::NoMatchingRule
    );
    // Without any dry-run the header is not managed (no removal per request).
    c["rules"][0]["dry_run"] = json!(false);
    assert!(
        !compiled(&c)
            .managed_headers()
            .iter()
            .any(|h| &**h == "x-scopegate-dry-run")
    );
}

#[test]
fn explain_can_decide_for_given_claims() {
    let p = authz_policy(json!({}));
    let claims: Map<String, Value> = claims("svc-a:orders:read");
    let principal = scopegate_core::Principal {
        provider: "main".into(),
        issuer: ISS.into(),
        subject: Some("alice".into()),
        scopes: vec!["svc-a:orders:read".into()],
        claims,
        memo: Default::default(),
    };
    let r = Request {
        method: "GET",
        path: "/orders",
        ..Request::default()
    };
    assert_eq!(
        allowed(p.decide_as(&r, Some(principal))).rule.as_deref(),
        Some("orders")
    );
    assert_eq!(denied(p.decide_as(&r, None)).reason, Reason::TokenMissing);
}

// ------------------------------------------------------------------ config errors

fn rules_cfg(rules: Value) -> Value {
    two_providers(json!({"rules": rules}))
}

#[test]
fn shadowed_rules_are_errors_naming_the_rule_that_shadows_them() {
    let e = errors(&rules_cfg(json!([
        {"name": "all-orders", "match": {"prefix": "/orders"}, "require": "authenticated"},
        {"name": "admin-orders", "match": {"exact": "/orders/admin"}, "require": {"all_of": ["svc-a:admin"]}},
    ])));
    has(
        &e,
        "rules[1]: unreachable rule: every request it matches is matched first by rules[0] (\"all-orders\")",
    );

    // Per method, by several earlier rules together.
    let e = errors(&rules_cfg(json!([
        {"name": "get", "match": {"template": "/orders/{id}", "methods": ["GET"]}, "require": "authenticated"},
        {"name": "post", "match": {"prefix": "/orders", "methods": ["POST"]}, "require": "authenticated"},
        {"name": "both", "match": {"exact": "/orders/7", "methods": ["GET", "POST"]}, "require": "authenticated"},
    ])));
    has(&e, "rules[2]: unreachable rule");
    has(&e, "rules[0] (\"get\"), rules[1] (\"post\")");

    for (first, second) in [
        (
            json!({"template": "/files/{*rest}"}),
            json!({"template": "/files/{a}/{b}"}),
        ),
        (json!({"regex": "/v[0-9]+"}), json!({"exact": "/v2"})),
        (
            json!({"prefix": "/", "hosts": ["*.example.com"]}),
            json!({"prefix": "/x", "hosts": ["a.example.com:80"]}),
        ),
        (
            json!({"prefix": "/", "route_names": ["r1", "r2"]}),
            json!({"exact": "/x", "route_names": ["r1"]}),
        ),
    ] {
        let e = errors(&rules_cfg(json!([
            {"name": "a", "match": first, "require": "public"},
            {"name": "b", "match": second, "require": "public"},
        ])));
        has(&e, "rules[1]: unreachable rule");
    }
}

#[test]
fn rules_that_only_overlap_are_not_shadowed() {
    for (first, second) in [
        (
            json!({"prefix": "/orders/admin"}),
            json!({"prefix": "/orders"}),
        ),
        (
            json!({"template": "/files/{*rest}"}),
            json!({"prefix": "/files"}),
        ),
        (
            json!({"prefix": "/orders", "methods": ["GET"]}),
            json!({"prefix": "/orders"}),
        ),
        (
            json!({"prefix": "/", "hosts": ["a.example.com"]}),
            json!({"prefix": "/x", "hosts": ["*.example.com"]}),
        ),
        (
            json!({"prefix": "/", "route_names": ["r1"]}),
            json!({"exact": "/x"}),
        ),
        (json!({"regex": "/orders/.*"}), json!({"prefix": "/orders"})),
    ] {
        compiled(&rules_cfg(json!([
            {"name": "a", "match": first, "require": "public"},
            {"name": "b", "match": second, "require": "public"},
        ])));
    }
    let w = warnings(&rules_cfg(json!([
        {"name": "a", "match": {"prefix": "/orders", "methods": ["GET"]}, "require": "public"},
        {"name": "b", "match": {"prefix": "/orders/x", "methods": ["GET", "DELETE"]}, "require": "public"},
    ])));
    has(
        &w,
        "rules[1]: methods GET of this rule are never reached: matched first by rules[0] (\"a\")",
    );
}

#[test]
fn bad_matches_and_requirements_are_errors_with_their_json_path() {
    let cases = [
        (
            json!({"regex": "/orders/("}),
            "rules[0].match.regex: invalid regex",
        ),
        (
            json!({"regex": "/(a{1000}){1000}"}),
            "rules[0].match.regex: invalid regex",
        ),
        (
            json!({"template": "/orders/{id"}),
            "rules[0].match.template: invalid template",
        ),
        (
            json!({"template": "/orders/{*rest}/x"}),
            "rules[0].match.template: invalid template: {*name} must be the last",
        ),
        (json!({"template": "/a/{x}/{x}"}), "appears twice"),
        (
            json!({"template": "/a/x{y}"}),
            "a parameter is a whole segment",
        ),
        (json!({"template": "/a//b"}), "not normalised"),
        (
            json!({"exact": "/a", "regex": "/b"}),
            "rules[0].match: exactly one of",
        ),
        (
            json!({"prefix": "/", "hosts": ["bad host"]}),
            "rules[0].match.hosts[0]: invalid host",
        ),
        (
            json!({"prefix": "/", "hosts": ["a.*.com"]}),
            "rules[0].match.hosts[0]",
        ),
        (
            json!({"prefix": "/", "hosts": []}),
            "rules[0].match.hosts: must not be empty",
        ),
        (
            json!({"prefix": "/", "route_names": [""]}),
            "rules[0].match.route_names[0]",
        ),
        (
            json!({"prefix": "/", "hostz": ["a"]}),
            "rules[0].match.hostz",
        ),
    ];
    for (m, needle) in cases {
        has(
            &errors(&rules_cfg(
                json!([{"name": "r", "match": m, "require": "public"}]),
            )),
            needle,
        );
    }
    let rule = |extra: Value| {
        let mut r = json!({"name": "r", "match": {"prefix": "/"}, "require": "authenticated"});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        rules_cfg(json!([r]))
    };
    let cases = [
        (
            json!({"providers": ["nobody"]}),
            "rules[0].providers[0]: no provider is named \"nobody\"",
        ),
        (
            json!({"require": "public", "providers": ["main"]}),
            "rules[0].providers: \"providers\" needs a token",
        ),
        (
            json!({"require": "public", "claims": [{"claim": "a", "equals": 1}]}),
            "rules[0].claims: \"claims\" needs a token",
        ),
        (
            json!({"claims": [{"claim": "a", "equals": 1, "one_of": [1]}]}),
            "rules[0].claims[0]: exactly one of",
        ),
        (
            json!({"claims": [{"claim": "a..b", "equals": 1}]}),
            "rules[0].claims[0].claim: invalid claim path",
        ),
        (
            json!({"claims": [{"claim": "a", "equals": null}]}),
            "rules[0].claims[0]",
        ),
        (
            json!({"claims": [{"claim": "a", "matches": "x"}]}),
            "rules[0].claims[0].matches",
        ),
        (
            json!({"require": {"all_of": ["svc-a:orders:*"]}}),
            "rules[0].require.all_of[0]: \"svc-a:orders:*\": '*' is a wildcard only in granted scopes",
        ),
        (
            json!({"name": "has space"}),
            "rules[0].name: invalid rule name",
        ),
        (json!({"dry_run": "yes"}), "rules[0].dry_run"),
    ];
    for (extra, needle) in cases {
        has(&errors(&rule(extra)), needle);
    }
    let top = [
        (
            json!({"roles": {"admin": ["*"]}}),
            "roles.admin[0]: \"*\": a wildcard needs a service prefix",
        ),
        (json!({"roles": {"admin": ["svc-a:or*"]}}), "roles.admin[0]"),
        (
            json!({"roles": {"admin": []}}),
            "roles.admin: must not be empty",
        ),
        (json!({"super_admin_scope": "svc-a:*"}), "super_admin_scope"),
        (json!({"scope_claim": 7}), "scope_claim: invalid claim path"),
        (
            json!({"default_rule": {"require": "nobody"}}),
            "default_rule.require",
        ),
        (
            json!({"default_rule": {"require": "public", "match": {"prefix": "/"}}}),
            "default_rule.match",
        ),
        (
            json!({"rules": [{"name": "default", "match": {"prefix": "/"}, "require": "public"}], "default_rule": {"require": "public"}}),
            "rules[0].name: rule name \"default\" is taken",
        ),
    ];
    for (extra, needle) in top {
        has(&errors(&two_providers(extra)), needle);
    }
}

#[test]
fn scope_names_that_break_the_convention_are_warnings() {
    let w = warnings(&two_providers(json!({
        "scope_prefix": "svc-a",
        "rules": [{"name": "r", "match": {"prefix": "/"},
                   "require": {"any_of": ["admin", "svc-b:orders:read", "svc-a:Orders", "svc-a:orders:read"]}}],
        "roles": {"x": ["svc-a::x"]},
    })));
    has(
        &w,
        "rules[0].require.any_of[0]: scope convention: \"admin\" is not service-prefixed",
    );
    has(
        &w,
        "rules[0].require.any_of[1]: scope convention: \"svc-b:orders:read\" does not belong to this service",
    );
    has(&w, "rules[0].require.any_of[2]");
    has(&w, "roles.x[0]");
    assert_eq!(w.len(), 4, "{w:#?}");
    let w = warnings(&two_providers(
        json!({"default_rule": {"require": "public"}}),
    ));
    has(&w, "default_rule: a public default rule");
}
