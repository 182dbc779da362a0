//! Cost of scopegate.wasm per request in the harness: wasmtime fuel (about one
//! unit per wasm instruction, deterministic), host calls, wall time.
//!
//! Shared by the fuel regression test (`tests/fuel.rs`, which compares the
//! counts with `fuel-baseline.json`) and the benchmark (`benches/fuel.rs`,
//! which also prints wall time and memory).
//!
//! Every scenario is deterministic: the testkit's fixed-seed keys, the
//! testkit's virtual clock (`NOW`), tokens that differ only in a counter.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use proxy_wasm_harness::{Host, LogLevel, Outcome, Vm};
use scopegate_testkit::{AUD, ISS, claims, config, default_rules, jwks, sign};
use serde_json::{Value, json};

use crate::{host, module};

/// Every per-request scenario, in report order.
pub const SCENARIOS: &[&str] = &[
    "public_route",
    "cached_RS256",
    "cached_ES256",
    "distinct_RS256",
    "distinct_PS256",
    "distinct_ES256",
    "distinct_ES384",
    "distinct_ES512",
    "distinct_EdDSA",
    "distinct_HS256",
    "deny_no_token",
    "deny_bad_signature",
    "deny_insufficient_scope",
];

/// The algorithms of the `distinct_*` scenarios and their testkit kids.
pub const ALGS: &[(&str, &str)] = &[
    ("RS256", "rsa-1"),
    ("PS256", "rsa-1"),
    ("ES256", "ec-1"),
    ("ES384", "ec384-1"),
    ("ES512", "ec521-1"),
    ("EdDSA", "ed-1"),
    ("HS256", "hs-1"),
];

/// What one scenario cost, averaged over the measured requests.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    pub requests: usize,
    pub fuel_per_request: u64,
    pub hostcalls_per_request: u64,
    pub wall_per_request: Duration,
    /// Linear memory of the VM after the run.
    pub memory_bytes: u64,
}

/// A VM with the testkit's default policy, logging at `info` (Envoy's
/// default: debug lines are neither formatted nor emitted).
pub fn bench_vm(host: &Host, cfg: &Value) -> Vm {
    let vm = host
        .vm(module())
        .plugin_name("scopegate")
        .vm_id("sg")
        .log_level(LogLevel::Info)
        .plugin_config(cfg.to_string())
        .start()
        .expect("VM starts");
    assert!(vm.configured(), "config refused: {:?}", vm.log_messages());
    vm
}

/// A token for `alg` that differs from every other by its `jti` (`n`).
pub fn distinct_token(alg: &str, kid: &str, scope: &str, n: usize) -> String {
    let mut c = claims(scope);
    c.insert("jti".into(), json!(format!("bench-{n:08}")));
    sign(alg, Some(kid), &c)
}

struct Plan {
    path: &'static str,
    /// One `authorization` value per request (cycled), or none.
    tokens: Vec<Option<String>>,
    expect: Option<u32>,
}

fn plan(name: &str, requests: usize) -> Plan {
    let read = "svc-a:orders:read";
    let same = |t: String| vec![Some(t)];
    match name {
        "public_route" => Plan {
            path: "/healthz",
            tokens: vec![None],
            expect: None,
        },
        "cached_RS256" => Plan {
            path: "/orders/7",
            tokens: same(sign("RS256", Some("rsa-1"), &claims(read))),
            expect: None,
        },
        "cached_ES256" => Plan {
            path: "/orders/7",
            tokens: same(sign("ES256", Some("ec-1"), &claims(read))),
            expect: None,
        },
        "deny_no_token" => Plan {
            path: "/orders/7",
            tokens: vec![None],
            expect: Some(401),
        },
        "deny_bad_signature" => {
            let t = sign("RS256", Some("rsa-1"), &claims(read));
            // Flip a bit in the middle of the signature (the last character
            // may carry padding bits only).
            let mut b = t.into_bytes();
            let i = b.len() - 10;
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            Plan {
                path: "/orders/7",
                tokens: same(String::from_utf8(b).unwrap()),
                expect: Some(401),
            }
        }
        "deny_insufficient_scope" => Plan {
            path: "/orders/7",
            tokens: same(sign("RS256", Some("rsa-1"), &claims("svc-a:profile:read"))),
            expect: Some(403),
        },
        other => {
            let alg = other
                .strip_prefix("distinct_")
                .unwrap_or_else(|| panic!("unknown scenario {other}"));
            let kid = ALGS
                .iter()
                .find(|(a, _)| *a == alg)
                .map(|(_, k)| *k)
                .unwrap_or_else(|| panic!("unknown algorithm {alg}"));
            Plan {
                path: "/orders/7",
                tokens: (0..requests + WARMUP)
                    .map(|n| Some(distinct_token(alg, kid, read, n)))
                    .collect(),
                expect: None,
            }
        }
    }
}

/// Requests before measuring: fill the token cache, grow the heap.
pub const WARMUP: usize = 3;

/// A scenario's request headers: `GET path` with a browser-like set of
/// headers and, if given, `authorization: auth`.
pub fn request_headers<'a>(path: &'a str, auth: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![
        (":method", "GET"),
        (":path", path),
        (":authority", "svc-a"),
        (":scheme", "http"),
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
        ("x-request-id", "0f0e0d0c-0b0a-0908-0706-050403020100"),
    ];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    headers
}

fn one(vm: &Vm, path: &str, auth: Option<&str>) -> (Outcome, u64, u64, Duration) {
    let headers = request_headers(path, auth);
    let t0 = Instant::now();
    let mut s = vm.http_stream();
    let out = s.request_headers(&headers, true);
    s.finish();
    let wall = t0.elapsed();
    (out, s.fuel_used(), s.hostcalls_used(), wall)
}

/// Runs scenario `name` for `requests` measured requests (after [`WARMUP`]).
///
/// # Panics
/// If a request's outcome is not the scenario's (a scenario that measures
/// the wrong path is worse than none).
pub fn measure(name: &str, requests: usize) -> Measured {
    let host = host();
    let vm = bench_vm(&host, &config(default_rules()));
    let p = plan(name, requests);
    let auths: Vec<Option<String>> = p
        .tokens
        .iter()
        .map(|t| t.as_ref().map(|t| format!("Bearer {t}")))
        .collect();
    let (mut fuel, mut calls, mut wall) = (0u64, 0u64, Duration::ZERO);
    for i in 0..WARMUP + requests {
        let auth = auths[i % auths.len()].as_deref();
        let (out, f, c, w) = one(&vm, p.path, auth);
        match (p.expect, &out) {
            (None, Outcome::Continue) => {}
            (Some(want), Outcome::LocalReply { status, .. }) if *status == want => {}
            _ => panic!(
                "{name}: request {i}: expected {:?}, got {out:?}; logs {:?}",
                p.expect,
                vm.log_messages()
            ),
        }
        if i >= WARMUP {
            fuel += f;
            calls += c;
            wall += w;
        }
    }
    let n = requests as u64;
    Measured {
        name: name.to_owned(),
        requests,
        fuel_per_request: fuel / n,
        hostcalls_per_request: calls / n,
        wall_per_request: wall / u32::try_from(requests).unwrap(),
        memory_bytes: vm.memory_bytes(),
    }
}

/// A policy with `routes` rules (exact, prefix, template; with `regex`,
/// every tenth a regex) and `keys` static keys of every family (distinct kids).
pub fn big_config(routes: usize, keys: usize, regex: bool) -> Value {
    let mut rules = Vec::new();
    for i in 0..routes {
        let m = match i % 10 {
            9 if regex => json!({"regex": format!("/re{i}/[0-9]+")}),
            0 | 4 => json!({"exact": format!("/svc{i}/health")}),
            1 | 5 | 7 => json!({"prefix": format!("/svc{i}/admin")}),
            2 | 6 => json!({"template": format!("/svc{i}/items/{{id}}"), "methods": ["GET"]}),
            3 | 8 | 9 => json!({"template": format!("/svc{i}/files/{{*rest}}")}),
            _ => json!({"exact": format!("/svc{i}/health")}),
        };
        let require = match i % 3 {
            0 => json!("public"),
            1 => json!("authenticated"),
            _ => json!({"any_of": [format!("svc-a:r{i}:read"), {"all_of": ["svc-a:admin", "svc-a:ops"]}]}),
        };
        rules.push(json!({"name": format!("r{i}"), "match": m, "require": require}));
    }
    let base = jwks();
    let family: Vec<Value> = base["keys"].as_array().unwrap().clone();
    let mut ks = Vec::new();
    for i in 0..keys {
        let mut k = family[i % family.len()].clone();
        k["kid"] = json!(format!("k{i}"));
        ks.push(k);
    }
    json!({
        "realm": "svc-a",
        "providers": [{
            "name": "main",
            "issuer": ISS,
            "audiences": [AUD],
            "jwks": {"keys": ks},
            "claims_to_headers": {"sub": "x-scopegate-sub", "scope": "x-scopegate-scope"},
        }],
        "rules": rules,
    })
}

/// Fuel and wall time of `on_configure` for [`big_config`] (fresh VM each).
pub fn measure_configure(routes: usize, keys: usize, regex: bool) -> (u64, Duration) {
    let (fuel, wall, _) = measure_configure_memory(routes, keys, regex);
    (fuel, wall)
}

/// [`measure_configure`], and the VM's linear memory after `on_configure`.
pub fn measure_configure_memory(routes: usize, keys: usize, regex: bool) -> (u64, Duration, u64) {
    let host = host();
    let cfg = big_config(routes, keys, regex).to_string();
    let vm = host
        .vm(module())
        .plugin_name("scopegate")
        .vm_id("sg")
        .log_level(LogLevel::Info)
        .plugin_config(cfg)
        .start()
        .expect("VM starts");
    assert!(vm.configured(), "config refused: {:?}", vm.log_messages());
    let (fuel, wall) = vm
        .callback_stats()
        .iter()
        .filter(|s| s.callback == "on_configure")
        .fold((0, Duration::ZERO), |(f, w), s| (f + s.fuel, w + s.wall));
    (fuel, wall, vm.memory_bytes())
}

/// Linear memory of a VM (default policy and cache size) before any request,
/// and after `tokens` distinct valid HS256 tokens (more than the cache's
/// default 4096 entries: the cache is full, the oldest evicted).
pub fn memory_with_full_cache(tokens: usize) -> (u64, u64) {
    let host = host();
    let vm = bench_vm(&host, &config(default_rules()));
    let before = vm.memory_bytes();
    for n in 0..tokens {
        let auth = format!(
            "Bearer {}",
            distinct_token("HS256", "hs-1", "svc-a:orders:read", n)
        );
        let (out, ..) = one(&vm, "/orders/7", Some(&auth));
        assert_eq!(out, Outcome::Continue, "{:?}", vm.log_messages());
    }
    (before, vm.memory_bytes())
}

/// Fuel of the first `n` requests of a fresh VM of scenario `name`, one value
/// per request (no warm-up): what a VM pays once, e.g. building the ECDSA
/// comb tables of `G` and of the key at their first use (`ec_fast`).
///
/// # Panics
/// If a request's outcome is not the scenario's.
pub fn first_requests(name: &str, n: usize) -> Vec<u64> {
    let host = host();
    let vm = bench_vm(&host, &config(default_rules()));
    let p = plan(name, n);
    (0..n)
        .map(|i| {
            let auth = p.tokens[i % p.tokens.len()]
                .as_ref()
                .map(|t| format!("Bearer {t}"));
            let (out, fuel, _, _) = one(&vm, p.path, auth.as_deref());
            match (p.expect, &out) {
                (None, Outcome::Continue) => {}
                (Some(want), Outcome::LocalReply { status, .. }) if *status == want => {}
                _ => panic!("{name}: request {i}: expected {:?}, got {out:?}", p.expect),
            }
            fuel
        })
        .collect()
}
