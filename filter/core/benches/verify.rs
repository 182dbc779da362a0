//! Token verification cost per algorithm: `cargo bench -p scopegate-core --bench verify`.
//!
//! - `decide/<alg>`: a whole decision for `GET /orders/7` with a valid token
//!   (parse, signature, claims, scope check, header edits), no cache;
//! - `decide/cached/<alg>`: the same request answered from the verified-token
//!   cache (the common case: clients reuse a token);
//! - `decide/deny/*`: no token, bad signature, insufficient scope.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use scopegate_core::cache::TokenCache;
use scopegate_core::keys::Key;
use scopegate_core::verify::KeySource;
use scopegate_core::{Decision, Policy, Request, compile_json};
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

const ALGS: &[(&str, &str)] = &[
    ("RS256", "rsa-1"),
    ("PS256", "rsa-1"),
    ("ES256", "ec-1"),
    ("ES384", "ec384-1"),
    ("ES512", "ec521-1"),
    ("EdDSA", "ed-1"),
    ("HS256", "hs-1"),
];

fn decide(p: &Policy, auth: Option<&str>, keys: &dyn KeySource) -> Decision {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let req = Request {
        method: "GET",
        path: "/orders/7",
        headers: &headers,
        now_unix_seconds: NOW,
        ..Request::default()
    };
    p.decide_with(black_box(&req), keys)
}

fn bench(c: &mut Criterion) {
    let p = compile_json(config(default_rules()).to_string().as_bytes()).unwrap();
    let mut g = c.benchmark_group("verify");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    let none = scopegate_core::verify::StaticKeysOnly;
    for (alg, kid) in ALGS {
        let auth = format!(
            "Bearer {}",
            sign(alg, Some(kid), &claims("svc-a:orders:read"))
        );
        assert!(
            matches!(decide(&p, Some(&auth), &none), Decision::Allow(_)),
            "{alg}"
        );
        g.bench_function(format!("decide/{alg}"), |b| {
            b.iter(|| black_box(decide(&p, Some(&auth), &none)))
        });
        let cache = WithCache(RefCell::new(TokenCache::new(4096)));
        assert!(matches!(decide(&p, Some(&auth), &cache), Decision::Allow(_)));
        // Checked before the benchmark: with a name filter (`-- ES256`) the
        // benchmark may not run.
        assert!(matches!(decide(&p, Some(&auth), &cache), Decision::Allow(_)));
        assert!(cache.0.borrow().stats().0 > 0, "the cache was hit");
        g.bench_function(format!("decide/cached/{alg}"), |b| {
            b.iter(|| black_box(decide(&p, Some(&auth), &cache)))
        });
    }
    g.bench_function("decide/deny/no-token", |b| {
        b.iter(|| black_box(decide(&p, None, &none)))
    });
    let t = sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read"));
    let mut bad = t.into_bytes();
    let i = bad.len() - 10;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = format!("Bearer {}", String::from_utf8(bad).unwrap());
    assert!(matches!(decide(&p, Some(&bad), &none), Decision::Deny(_)));
    g.bench_function("decide/deny/bad-signature-RS256", |b| {
        b.iter(|| black_box(decide(&p, Some(&bad), &none)))
    });
    let low = format!(
        "Bearer {}",
        sign("RS256", Some("rsa-1"), &claims("svc-a:profile:read"))
    );
    let cache = WithCache(RefCell::new(TokenCache::new(4096)));
    assert!(matches!(decide(&p, Some(&low), &cache), Decision::Deny(_)));
    g.bench_function("decide/deny/insufficient-scope-cached", |b| {
        b.iter(|| black_box(decide(&p, Some(&low), &cache)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
