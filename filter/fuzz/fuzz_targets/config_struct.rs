//! Structure-aware config fuzzing: an arbitrary-derived config (providers,
//! rules of every match kind, scope expressions, wildcards, super-admin,
//! dry-run, default rule) serialised to JSON, compiled, and asked about
//! requests carrying honest tokens with arbitrary scopes.
//!
//! Invariants: no config allows a non-public rule without a verified
//! principal; an Allow for a scope rule means the token's scopes really meet
//! it (exactly or by a trailing `:*` wildcard within its prefix), unless the
//! super-admin scope was held; forged tokens never give a principal.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use scopegate_core::{Decision, Reason, Request, compile_json};
use scopegate_fuzz::check_decision;
use scopegate_testkit as tk;
use serde_json::{Value, json};

const SCOPES: [&str; 8] = [
    "svc-a:orders:read",
    "svc-a:orders:write",
    "svc-a:orders:*",
    "svc-a:*",
    "svc-a:admin",
    "svc-b:orders:read",
    "*",
    "svc-a:or*",
];
const SEGS: [&str; 6] = ["orders", "admin", "{id}", "x", "healthz", "a"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

#[derive(Debug, Arbitrary)]
enum Expr {
    Scope(u8),
    AllOf(Vec<Expr>),
    AnyOf(Vec<Expr>),
}

#[derive(Debug, Arbitrary)]
enum Require {
    Public,
    Authenticated,
    Expr(Expr),
}

#[derive(Debug, Arbitrary)]
enum Kind {
    Exact,
    Prefix,
    Template,
    Regex,
}

#[derive(Debug, Arbitrary)]
struct RuleIn {
    kind: Kind,
    path: Vec<u8>,
    methods: Vec<u8>,
    require: Require,
    dry_run: bool,
    wrong_provider: bool,
}

#[derive(Debug, Arbitrary)]
struct ConfigIn {
    rules: Vec<RuleIn>,
    default_rule: Option<Require>,
    super_admin: Option<u8>,
    dry_run: bool,
    enforce_preflight: bool,
    audience_check: bool,
    algorithms: Vec<u8>,
    cache: Option<u8>,
}

#[derive(Debug, Arbitrary)]
struct RequestIn {
    method: u8,
    path: Vec<u8>,
    /// None: no token; Some: an honest token with these scopes.
    scopes: Option<Vec<u8>>,
    eddsa: bool,
    forged: bool,
}

#[derive(Debug, Arbitrary)]
struct Input {
    config: ConfigIn,
    requests: Vec<RequestIn>,
}

fn expr(e: &Expr, depth: usize) -> Value {
    let items = |v: &[Expr]| -> Vec<Value> {
        let mut out: Vec<Value> = v.iter().take(3).map(|e| expr(e, depth + 1)).collect();
        if out.is_empty() {
            out.push(json!(SCOPES[0]));
        }
        out
    };
    match e {
        Expr::Scope(i) => json!(SCOPES[usize::from(*i) % SCOPES.len()]),
        _ if depth > 3 => json!(SCOPES[1]),
        Expr::AllOf(v) => json!({"all_of": items(v)}),
        Expr::AnyOf(v) => json!({"any_of": items(v)}),
    }
}

fn require(r: &Require) -> Value {
    match r {
        Require::Public => json!("public"),
        Require::Authenticated => json!("authenticated"),
        Require::Expr(Expr::Scope(i)) => json!({"all_of": [SCOPES[usize::from(*i) % SCOPES.len()]]}),
        Require::Expr(e) => expr(e, 0),
    }
}

/// Whether `held` meets the expression the way the filter defines it.
fn meets(req: &Value, held: &[&str]) -> bool {
    let covers = |s: &str| {
        held.contains(&s)
            || s.match_indices(':').any(|(i, _)| {
                let (p, rest) = (&s[..i], &s[i + 1..]);
                !p.is_empty() && !rest.is_empty() && held.contains(&format!("{p}:*").as_str())
            })
    };
    match req {
        Value::String(s) => covers(s),
        Value::Object(o) => {
            if let Some(Value::Array(a)) = o.get("all_of") {
                a.iter().all(|e| meets(e, held))
            } else if let Some(Value::Array(a)) = o.get("any_of") {
                a.iter().any(|e| meets(e, held))
            } else {
                false
            }
        }
        _ => false,
    }
}

fn path(p: &[u8]) -> String {
    let mut s = String::new();
    for b in p.iter().take(4) {
        s.push('/');
        s.push_str(SEGS[usize::from(*b) % SEGS.len()]);
    }
    if s.is_empty() { "/".into() } else { s }
}

fn forged() -> &'static str {
    static F: OnceLock<String> = OnceLock::new();
    F.get_or_init(|| {
        // Signed with a key the policy does not have.
        tk::hs256_with(b"not the configured secret, not at all", &json!({"alg": "HS256", "kid": "hs-1"}), &Value::Object(tk::claims("svc-a:*")))
    })
}

fuzz_target!(
    // Key generation (RSA-2048) before the first unit, not in its time budget.
    init: { tk::keys(); forged(); },
    |input: Input| {
    let c = &input.config;
    let mut rules = Vec::new();
    let mut requires = Vec::new();
    for (i, r) in c.rules.iter().take(8).enumerate() {
        let p = path(&r.path);
        let mut m = match r.kind {
            Kind::Exact => json!({"exact": p.replace("{id}", "id")}),
            Kind::Prefix => json!({"prefix": p.replace("{id}", "id")}),
            Kind::Template => json!({"template": p}),
            Kind::Regex => json!({"regex": format!("{}(/.*)?", p.replace("{id}", "[^/]+"))}),
        };
        if !r.methods.is_empty() {
            m["methods"] = json!(r.methods.iter().take(2).map(|b| METHODS[usize::from(*b) % 4]).collect::<Vec<_>>());
        }
        let req = require(&r.require);
        let mut rule = json!({"name": format!("r{i}"), "match": m, "require": req});
        if r.dry_run {
            rule["dry_run"] = json!(true);
        }
        if r.wrong_provider {
            rule["providers"] = json!(["other"]);
        }
        requires.push(req);
        rules.push(rule);
    }
    let mut config = tk::config(Value::Array(rules));
    if let Some(d) = &c.default_rule {
        config["default_rule"] = json!({"require": require(d)});
    }
    if let Some(s) = c.super_admin {
        config["super_admin_scope"] = json!(SCOPES[usize::from(s) % SCOPES.len()]);
    }
    if c.dry_run {
        config["dry_run"] = json!(true);
    }
    if c.enforce_preflight {
        config["cors_preflight"] = json!("enforce");
    }
    if !c.audience_check {
        config["providers"][0]["audience_check"] = json!(false);
    }
    if !c.algorithms.is_empty() {
        let names = ["HS256", "EdDSA", "RS256", "ES256", "none", "HS512"];
        config["providers"][0]["algorithms"] = json!(c.algorithms.iter().take(3).map(|b| names[usize::from(*b) % names.len()]).collect::<Vec<_>>());
    }
    if let Some(n) = c.cache {
        config["token_cache_entries"] = json!(n);
    }
    let Ok(policy) = compile_json(config.to_string().as_bytes()) else {
        return;
    };
    for r in input.requests.iter().take(6) {
        let token = r.scopes.as_ref().map(|s| {
            if r.forged {
                forged().to_owned()
            } else {
                let scope: Vec<&str> = s.iter().take(4).map(|b| SCOPES[usize::from(*b) % SCOPES.len()]).collect();
                tk::sign(if r.eddsa { "EdDSA" } else { "HS256" }, None, &tk::claims(&scope.join(" ")))
            }
        });
        let auth = token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let p = path(&r.path);
        let d = policy.decide(&Request {
            method: METHODS[usize::from(r.method) % 4],
            path: &p,
            headers: &headers,
            now_unix_seconds: tk::NOW,
            route_name: None,
        });
        check_decision(&d);
        let Decision::Allow(a) = &d else { continue };
        if r.forged || token.is_none() {
            assert!(a.principal.is_none(), "principal from a forged or absent token: {a:?}");
        }
        if a.dry_run.is_some() || a.reason != Reason::Allowed {
            continue;
        }
        let principal = a.principal.as_ref().expect("Allowed has a principal");
        let held: Vec<&str> = principal.scopes.iter().map(String::as_str).collect();
        let req = match a.rule.as_deref() {
            Some("default") => c.default_rule.as_ref().map(require),
            Some(name) => name.strip_prefix('r').and_then(|i| i.parse::<usize>().ok()).and_then(|i| requires.get(i).cloned()),
            None => None,
        };
        if let Some(req) = req
            && req.is_object()
        {
            assert!(meets(&req, &held), "rule {:?} needs {req} but {held:?} was allowed", a.rule);
        }
    }
});
