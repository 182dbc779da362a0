//! Decision cost against the number of routes: `cargo bench -p scopegate-core`.
//!
//! For 10, 100 and 1000 rules (exact paths, prefixes, templates; and a
//! variant where one rule in ten is a regex) it measures
//! - `find/table`: the route table lookup the filter uses,
//! - `find/linear`: trying every rule in order (the reference),
//! - `decide/public`: a whole decision (normalisation, lookup, header edits)
//!   for a request that matches the last rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scopegate_core::rules::RouteFacts;
use scopegate_core::{Policy, Request, compile_json};
use serde_json::{Value, json};

/// `n` rules over distinct services; `regex_every`: every k-th rule is a regex.
fn policy(n: usize, regex_every: Option<usize>) -> (Policy, String) {
    let mut rules = Vec::new();
    let mut last_path = String::new();
    for i in 0..n {
        let (m, path) = match (regex_every, i % 4) {
            (Some(k), _) if i % k == k - 1 => (
                json!({"regex": format!("/re{i}/[0-9]+")}),
                format!("/re{i}/42"),
            ),
            (_, 0) => (
                json!({"exact": format!("/svc{i}/health")}),
                format!("/svc{i}/health"),
            ),
            (_, 1) => (
                json!({"prefix": format!("/svc{i}/admin")}),
                format!("/svc{i}/admin/users/7"),
            ),
            (_, 2) => (
                json!({"template": format!("/svc{i}/items/{{id}}"), "methods": ["GET"]}),
                format!("/svc{i}/items/42"),
            ),
            _ => (
                json!({"template": format!("/svc{i}/files/{{*rest}}")}),
                format!("/svc{i}/files/a/b"),
            ),
        };
        rules.push(json!({"name": format!("r{i}"), "match": m, "require": "public"}));
        last_path = path;
    }
    let cfg = json!({"rules": Value::Array(rules)});
    let p = compile_json(cfg.to_string().as_bytes()).expect("bench config compiles");
    (p, last_path)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("routes");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for (label, regex_every) in [("plain", None), ("regex10pct", Some(10))] {
        for n in [10usize, 100, 1000] {
            let (p, path) = policy(n, regex_every);
            let facts = RouteFacts {
                method: "GET",
                path: &path,
                host: None,
                route_name: None,
            };
            assert_eq!(
                p.authz().find(&facts).map(|r| r.name().to_owned()),
                Some(format!("r{}", n - 1))
            );
            g.bench_with_input(
                BenchmarkId::new(format!("find/table/{label}"), n),
                &n,
                |b, _| b.iter(|| black_box(p.authz().find(black_box(&facts))).is_some()),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("find/linear/{label}"), n),
                &n,
                |b, _| b.iter(|| black_box(p.authz().find_linear(black_box(&facts))).is_some()),
            );
            let miss = RouteFacts {
                path: "/nowhere/at/all",
                ..facts
            };
            g.bench_with_input(
                BenchmarkId::new(format!("find/table-miss/{label}"), n),
                &n,
                |b, _| b.iter(|| black_box(p.authz().find(black_box(&miss))).is_none()),
            );
            let req = Request {
                method: "GET",
                path: &path,
                ..Request::default()
            };
            g.bench_with_input(
                BenchmarkId::new(format!("decide/public/{label}"), n),
                &n,
                |b, _| b.iter(|| black_box(p.decide(black_box(&req)))),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
