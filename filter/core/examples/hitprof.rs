#![allow(clippy::unwrap_used)]
use std::hint::black_box;
use scopegate_core::{Decision, Request, compile_json};
use scopegate_testkit::{NOW, claims, config, default_rules, sign};
fn main() {
    let p = compile_json(config(default_rules()).to_string().as_bytes()).unwrap();
    let alg = std::env::args().nth(2).unwrap_or("HS256".into());
    let kid = match alg.as_str() { "HS256" => "hs-1", "EdDSA" => "ed-1", "ES256" => "ec-1", _ => "rsa-1" };
    let auth = format!("Bearer {}", sign(&alg, Some(kid), &claims("svc-a:orders:read")));
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let headers: Vec<(&str, &str)> = vec![("authorization", auth.as_str())];
    for _ in 0..n {
        let req = Request { method: "GET", path: "/orders/7", headers: &headers, now_unix_seconds: NOW, ..Request::default() };
        let d = p.decide(black_box(&req));
        assert!(matches!(d, Decision::Allow(_)));
        black_box(d);
    }
}
