//! Runs one decision scenario N times, for instruction-count profiles:
//! `valgrind --tool=callgrind target/release/examples/profile_decide hs256 1000`.
//! Scenarios: `hit-<alg>` (verified-token cache hit), `miss-<alg>` (distinct
//! tokens, no cache), `public`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::RefCell;
use std::hint::black_box;

use scopegate_core::cache::TokenCache;
use scopegate_core::keys::Key;
use scopegate_core::verify::KeySource;
use scopegate_core::{Decision, Request, compile_json};
use scopegate_testkit::{NOW, claims, config, default_rules, sign};

struct WithCache(RefCell<TokenCache>);

impl KeySource for WithCache {
    fn fetched(&self, _index: usize) -> Option<&[Key]> {
        None
    }
    fn token_cache(&self) -> Option<&RefCell<TokenCache>> {
        Some(&self.0)
    }
}

fn kid(alg: &str) -> &'static str {
    match alg {
        "RS256" | "PS256" => "rsa-1",
        "ES256" => "ec-1",
        "ES384" => "ec384-1",
        "ES512" => "ec521-1",
        "EdDSA" => "ed-1",
        _ => "hs-1",
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scenario = args.get(1).map(String::as_str).unwrap_or("hit-RS256");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let p = compile_json(config(default_rules()).to_string().as_bytes()).unwrap();
    let (kind, alg) = scenario.split_once('-').unwrap_or((scenario, "RS256"));
    let tokens: Vec<String> = match kind {
        "hit" => vec![format!("Bearer {}", sign(alg, Some(kid(alg)), &claims("svc-a:orders:read")))],
        "miss" => (0..n)
            .map(|i| {
                let mut c = claims("svc-a:orders:read");
                c.insert("jti".into(), format!("t-{i}").into());
                format!("Bearer {}", sign(alg, Some(kid(alg)), &c))
            })
            .collect(),
        _ => vec![],
    };
    let cache = WithCache(RefCell::new(TokenCache::new(4096)));
    let mut allowed = 0usize;
    for i in 0..n {
        let headers: Vec<(&str, &str)> = match tokens.get(i % tokens.len().max(1)) {
            Some(t) => vec![("authorization", t.as_str())],
            None => vec![],
        };
        let req = Request {
            method: "GET",
            path: if kind == "public" { "/healthz" } else { "/orders/7" },
            headers: &headers,
            now_unix_seconds: NOW,
            ..Request::default()
        };
        if matches!(p.decide_with(black_box(&req), &cache), Decision::Allow(_)) {
            allowed += 1;
        }
    }
    println!("{scenario}: {allowed}/{n} allowed");
}
