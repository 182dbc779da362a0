//! `scopegate`: the operators' CLI over the same core the filter runs.
//!
//! ```text
//! scopegate check CONFIG.json
//! scopegate explain --config CONFIG.json --method GET --path /orders/7 [--token JWT] [--now UNIX_SECONDS]
//! ```
//! Exit codes: 0 ok / allowed, 1 config invalid / denied, 2 usage or I/O error.

use std::process::ExitCode;

use scopegate_core::{Decision, Request, compile_json};

const USAGE: &str = "usage:
  scopegate check CONFIG.json
  scopegate explain --config CONFIG.json --method METHOD --path PATH [--token JWT] [--now UNIX_SECONDS]

exit codes: 0 config valid / request allowed, 1 config invalid / request denied, 2 usage or I/O error";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check") => match args.get(1) {
            Some(path) if args.len() == 2 => check(path),
            _ => usage(),
        },
        Some("explain") => explain(args.get(1..).unwrap_or(&[])),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
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

fn check(path: &str) -> ExitCode {
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
                "ok: {} provider(s), {} rule(s)",
                policy.providers().len(),
                policy.rules().len()
            );
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

fn explain(args: &[String]) -> ExitCode {
    let mut config = None;
    let mut method = None;
    let mut path = None;
    let mut token = None;
    let mut now = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            return usage();
        };
        match flag.as_str() {
            "--config" => config = Some(value.clone()),
            "--method" => method = Some(value.clone()),
            "--path" => path = Some(value.clone()),
            "--token" => token = Some(value.clone()),
            "--now" => match value.parse::<i64>() {
                Ok(n) => now = Some(n),
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
    let (Some(config), Some(method), Some(path)) = (config, method, path) else {
        return usage();
    };
    let bytes = match read(&config) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let policy = match compile_json(&bytes) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                println!("error: {e}");
            }
            return ExitCode::from(1);
        }
    };
    let now = now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    let authorization = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|a| ("authorization", a.as_str()))
        .collect();
    let decision = policy.decide(&Request {
        method: &method,
        path: &path,
        headers: &headers,
        now_unix_seconds: now,
    });
    if let Some(rule) = decision
        .rule()
        .and_then(|name| policy.rules().iter().find(|r| r.name() == name))
    {
        println!(
            "rule:     {} ({:?} {:?})",
            rule.name(),
            rule.methods(),
            rule.path()
        );
        println!("requires: {:?}", rule.access());
    } else {
        println!("rule:     none matched");
    }
    match &decision {
        Decision::Allow(a) => {
            if let Some(p) = &a.principal {
                println!(
                    "token:    {} sub={:?} scopes={:?}",
                    p.provider, p.subject, p.scopes
                );
            }
            if let Some(f) = &a.ignored_token {
                println!("token:    ignored ({}: {})", f.reason, f.detail);
            }
            println!("decision: ALLOW ({})", a.reason);
            for (h, v) in &a.set_headers {
                println!("forward:  {h}: {v}");
            }
            ExitCode::SUCCESS
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
