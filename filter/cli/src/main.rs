//! `scopegate`: the operators' CLI over the same core the filter runs.
//!
//! ```text
//! scopegate check CONFIG.json [--strict]
//! scopegate explain --config CONFIG.json --method GET --path /orders/7
//!     [--host HOST] [--route-name ROUTE] [--token JWT | --claims JSON]
//!     [--header NAME:VALUE]... [--now UNIX_SECONDS]
//! scopegate schema
//! ```
//! Exit codes: see [`USAGE`].

use std::process::ExitCode;

use scopegate_core::compile::MAX_MAX_TOKEN_BYTES;
use scopegate_core::principal::scopes_from_claims;
use scopegate_core::{Decision, Policy, Principal, Request, compile_json};
use serde_json::Value;

const USAGE: &str = "usage:
  scopegate check CONFIG.json [--strict]
      Compiles the config as the filter does and prints every problem with its
      JSON path (unknown fields, unreachable rules, bad regexes, scope names
      breaking the convention, ...).
  scopegate explain --config CONFIG.json --method METHOD --path PATH
      [--host HOST] [--route-name ROUTE] [--token JWT | --claims JSON]
      [--header NAME:VALUE]... [--now UNIX_SECONDS]
      Prints which rule matches, what it requires, what the token grants and
      the decision. --claims takes the token's payload as JSON and skips
      signature checks (its iss picks the provider).
  scopegate schema
      Prints the JSON Schema (draft 2020-12) of the plugin config, generated
      from the filter's config types (checked in as filter/config.schema.json).

exit codes:
  check:   0 valid (warnings allowed unless --strict), 1 invalid (or warnings with --strict), 2 usage or I/O error
  explain: 0 allowed, 1 denied (also a denial dry-run would let through), 2 usage or I/O error, 3 config invalid";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check") => match args.get(1..).unwrap_or(&[]) {
            [path] => check(path, false),
            [path, flag] | [flag, path] if flag == "--strict" => check(path, true),
            _ => usage(),
        },
        Some("explain") => explain(args.get(1..).unwrap_or(&[])),
        Some("schema") if args.len() == 1 => {
            println!("{}", config_schema());
            ExitCode::SUCCESS
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

/// The JSON Schema of [`scopegate_core::config::Config`], pretty-printed.
fn config_schema() -> String {
    let mut schema = schemars::schema_for!(scopegate_core::config::Config);
    schema.insert("title".into(), "scopegate plugin configuration".into());
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn read(path: &str) -> Result<Vec<u8>, ExitCode> {
    std::fs::read(path).map_err(|e| {
        eprintln!("scopegate: cannot read {path}: {e}");
        ExitCode::from(2)
    })
}

fn check(path: &str, strict: bool) -> ExitCode {
    let bytes = match read(path) {
        Ok(b) => b,
        Err(code) => return code,
    };
    match compile_json(&bytes) {
        Ok(policy) => {
            for w in policy.warnings() {
                println!("warning: {w}");
            }
            println!(
                "ok: {} provider(s), {} rule(s){}, {} warning(s)",
                policy.providers().len(),
                policy.rules().len(),
                if policy.authz().default_rule().is_some() {
                    " and a default rule"
                } else {
                    ""
                },
                policy.warnings().len()
            );
            if strict && !policy.warnings().is_empty() {
                println!("invalid: warnings are errors with --strict");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                println!("error: {e}");
            }
            println!("invalid: {} problem(s)", errors.len());
            ExitCode::from(1)
        }
    }
}

#[derive(Default)]
struct ExplainArgs {
    config: Option<String>,
    method: Option<String>,
    path: Option<String>,
    host: Option<String>,
    route_name: Option<String>,
    token: Option<String>,
    claims: Option<String>,
    headers: Vec<(String, String)>,
    now: Option<i64>,
}

fn parse_explain(args: &[String]) -> Option<ExplainArgs> {
    let mut a = ExplainArgs::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next()?.clone();
        match flag.as_str() {
            "--config" => a.config = Some(value),
            "--method" => a.method = Some(value),
            "--path" => a.path = Some(value),
            "--host" => a.host = Some(value),
            "--route-name" => a.route_name = Some(value),
            "--token" => a.token = Some(value),
            "--claims" => a.claims = Some(value),
            "--header" => {
                let (k, v) = value.split_once(':')?;
                a.headers
                    .push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
            "--now" => a.now = Some(value.parse().ok()?),
            _ => return None,
        }
    }
    if a.token.is_some() && a.claims.is_some() {
        return None;
    }
    Some(a)
}

/// A principal from `--claims`: the provider is the one whose issuer is the
/// claims' `iss` (or the only provider, if `iss` is absent).
fn principal_from_claims(policy: &Policy, json: &str) -> Result<Principal, String> {
    let claims = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err("--claims must be a JSON object".into()),
        Err(e) => return Err(format!("--claims is not JSON: {e}")),
    };
    let provider = match claims.get("iss").and_then(Value::as_str) {
        Some(iss) => policy
            .providers()
            .iter()
            .find(|p| p.issuer() == iss)
            .ok_or_else(|| format!("no provider has issuer {iss:?}"))?,
        None => match policy.providers() {
            [only] => only,
            _ => return Err("--claims needs an \"iss\" to choose among the providers".into()),
        },
    };
    Ok(Principal {
        provider: provider.name().to_owned(),
        issuer: provider.issuer().to_owned(),
        subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
        scopes: scopes_from_claims(&claims),
        claims,
        memo: Default::default(),
    })
}

fn explain(args: &[String]) -> ExitCode {
    let Some(a) = parse_explain(args) else {
        return usage();
    };
    let (Some(config), Some(method), Some(path)) = (&a.config, &a.method, &a.path) else {
        return usage();
    };
    let bytes = match read(config) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let policy = match compile_json(&bytes) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                println!("error: {e}");
            }
            println!(
                "invalid: {} problem(s); run `scopegate check`",
                errors.len()
            );
            return ExitCode::from(3);
        }
    };
    let now = a.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    let mut owned: Vec<(String, String)> = a.headers.clone();
    if let Some(h) = &a.host {
        owned.push((":authority".into(), h.clone()));
    }
    if let Some(t) = &a.token {
        owned.push(("authorization".into(), format!("Bearer {t}")));
    }
    let headers: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = Request {
        method,
        path,
        headers: &headers,
        now_unix_seconds: now,
        route_name: a.route_name.as_deref(),
    };

    // Who the token says the caller is (shown whatever the decision).
    let principal = match (&a.token, &a.claims) {
        (_, Some(json)) => match principal_from_claims(&policy, json) {
            Ok(p) => Some(Ok(p)),
            Err(e) => {
                eprintln!("scopegate: {e}");
                return ExitCode::from(2);
            }
        },
        (Some(t), None) => Some(scopegate_core::verify::verify(
            policy.providers(),
            |_| true,
            t,
            now,
            MAX_MAX_TOKEN_BYTES,
        )),
        (None, None) => None,
    };
    let decision = match (&a.claims, &principal) {
        (Some(_), Some(Ok(p))) => policy.decide_as(&req, Some(p.clone())),
        _ => policy.decide(&req),
    };

    println!(
        "request:  {method} {path}{}{}",
        a.host
            .as_deref()
            .map(|h| format!(" host={h}"))
            .unwrap_or_default(),
        a.route_name
            .as_deref()
            .map(|r| format!(" route_name={r}"))
            .unwrap_or_default()
    );
    print_rule(&policy, &decision);
    match &principal {
        None => println!("token:    none"),
        Some(Err(f)) => println!("token:    invalid: {} ({})", f.reason, f.detail),
        Some(Ok(p)) => {
            let g = policy.authz().grant_config().grants(p);
            println!(
                "token:    provider {} sub={:?}{}",
                p.provider,
                p.subject,
                if a.claims.is_some() {
                    " (from --claims: signature and expiry not checked)"
                } else {
                    ""
                }
            );
            println!(
                "grants:   scopes {:?} roles {:?} -> {:?}",
                g.scopes,
                g.roles,
                g.effective().collect::<Vec<_>>()
            );
        }
    }
    match &decision {
        Decision::Allow(al) => {
            if let Some(f) = &al.ignored_token {
                println!(
                    "note:     token ignored on a public rule ({}: {})",
                    f.reason, f.detail
                );
            }
            for (h, v) in &al.set_headers {
                println!("forward:  {h}: {v}");
            }
            match &al.dry_run {
                Some(d) => {
                    println!(
                        "decision: DENY {} {} ({}) -- dry-run: the filter lets it through",
                        d.status, d.reason, d.detail
                    );
                    if let Some(w) = d.www_authenticate() {
                        println!("www-authenticate: {w}");
                    }
                    ExitCode::from(1)
                }
                None => {
                    println!("decision: ALLOW ({})", al.reason);
                    ExitCode::SUCCESS
                }
            }
        }
        Decision::Pending(p) if p.revocation => {
            let provider = policy
                .providers()
                .get(p.provider)
                .map_or("?", |pr| pr.name());
            let offline = match &*p.otherwise {
                Decision::Allow(a) if a.dry_run.is_none() => {
                    format!("ALLOW ({}, on_stale: fail_open)", a.reason)
                }
                other => other.would_deny().map_or_else(
                    || "DENY".to_owned(),
                    |d| format!("DENY {} {} ({})", d.status, d.reason, d.detail),
                ),
            };
            println!(
                "decision: needs the revocation list of provider {provider} (polled by the filter \
                 at run time); on a stale list this is {offline}"
            );
            ExitCode::from(1)
        }
        Decision::Pending(p) => {
            let d = &p.fallback;
            let needs = if p.introspect.is_some() {
                "an RFC 7662 introspection answer from provider"
            } else {
                "the remote JWKS of provider"
            };
            println!(
                "decision: needs {needs} {} (fetched by the filter at run time); \
                 offline this is DENY {} {} ({})",
                policy
                    .providers()
                    .get(p.provider)
                    .map_or("?", |pr| pr.name()),
                d.status,
                d.reason,
                d.detail
            );
            ExitCode::from(1)
        }
        Decision::Deny(d) => {
            println!("decision: DENY {} {} ({})", d.status, d.reason, d.detail);
            if let Some(w) = d.www_authenticate() {
                println!("www-authenticate: {w}");
            }
            ExitCode::from(1)
        }
    }
}

fn print_rule(policy: &Policy, decision: &Decision) {
    let authz = policy.authz();
    let found = decision.rule().and_then(|name| {
        authz
            .rules()
            .iter()
            .enumerate()
            .find(|(_, r)| r.name() == name)
            .map(|(i, r)| (format!("rules[{i}]"), r))
            .or_else(|| {
                authz
                    .default_rule()
                    .filter(|r| r.name() == name)
                    .map(|r| ("default_rule".to_owned(), r))
            })
    });
    let Some((at, rule)) = found else {
        if decision.reason() == scopegate_core::Reason::CorsPreflight {
            println!(
                "rule:     none: a CORS preflight bypasses the rules (cors_preflight: bypass)"
            );
        } else {
            println!("rule:     none matched");
        }
        return;
    };
    let at_text = if at == "default_rule" {
        "default_rule, no rule matched".to_owned()
    } else {
        format!("{at}: {}", rule.describe_match())
    };
    println!(
        "rule:     {} ({at_text}){}",
        rule.name(),
        if rule.dry_run() || authz.dry_run() {
            " [dry-run]"
        } else {
            ""
        }
    );
    let mut req = format!("requires: {}", rule.access());
    if !rule.providers().is_empty() {
        req.push_str(&format!("; providers {}", rule.providers().join(",")));
    }
    for c in rule.claims() {
        req.push_str(&format!("; claim {c}"));
    }
    println!("{req}");
    let needs_token = *rule.access() != scopegate_core::compile::Access::Public;
    if needs_token && let Some(s) = authz.super_admin_scope() {
        println!("          (or the super-admin scope {s})");
    }
}
