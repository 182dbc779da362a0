//! Path normalisation and route matching.
//!
//! Invariants: a normalised path is absolute, has no empty, `.` or `..`
//! segment, no query or fragment, no backslash or control character, and
//! normalising it again changes nothing (idempotent); template and prefix
//! matching agree with their definition on segments; the compiled route
//! table picks exactly the rule a linear first-match scan picks, for every
//! method, path and host.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use scopegate_core::Policy;
use scopegate_core::routes::{Template, normalize, parse_authority, segments};
use scopegate_core::rules::RouteFacts;
use serde_json::json;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let rules = json!([
            {"name": "health", "match": {"exact": "/healthz"}, "require": "public"},
            {"name": "orders-get", "match": {"prefix": "/orders", "methods": ["GET", "HEAD"]}, "require": {"all_of": ["svc-a:orders:read"]}},
            {"name": "orders-item", "match": {"template": "/orders/{id}/items/{item}", "methods": ["PUT"]}, "require": {"all_of": ["svc-a:orders:write"]}},
            {"name": "files", "match": {"template": "/files/{*rest}"}, "require": "authenticated"},
            {"name": "api-host", "match": {"prefix": "/api", "hosts": ["api.example.com", "*.internal.example.com:8443"]}, "require": "authenticated"},
            {"name": "numbers", "match": {"regex": "/n/[0-9]+(/x)?"}, "require": "authenticated"},
            {"name": "v", "match": {"regex": "/v[12]/.*"}, "require": "authenticated"},
            {"name": "exact-deep", "match": {"exact": "/a/b/c"}, "require": "public"},
            {"name": "pre-a", "match": {"prefix": "/a"}, "require": "authenticated"},
            {"name": "posts", "match": {"prefix": "/", "methods": ["POST"]}, "require": {"all_of": ["svc-a:write"]}},
        ]);
        let c = scopegate_testkit::config(rules);
        scopegate_core::compile_json(c.to_string().as_bytes()).expect("route policy compiles")
    })
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    path: String,
    host: Option<String>,
    template: String,
}

const METHODS: [&str; 6] = ["GET", "HEAD", "PUT", "POST", "DELETE", "get"];

fuzz_target!(
    // Key generation (RSA-2048) before the first unit, not in its time budget.
    init: { policy(); },
    |input: Input| {
    if let Ok(p) = normalize(&input.path) {
        assert!(p.starts_with('/'), "{p:?}");
        assert!(!p.contains(['?', '#', '\\']), "{p:?}");
        assert!(!p.bytes().any(|b| b.is_ascii_control()), "{p:?}");
        assert!(p == "/" || !p.ends_with('/'), "{p:?}");
        for s in p.split('/').skip(1) {
            assert!(!matches!(s, "" | "." | "..") || p == "/", "segment {s:?} in {p:?}");
        }
        assert_eq!(normalize(&p).as_ref(), Ok(&p), "normalisation is not idempotent");

        // The route table against a linear scan.
        let host = input.host.as_deref().and_then(parse_authority);
        let facts = RouteFacts {
            method: METHODS[usize::from(input.method) % METHODS.len()],
            path: &p,
            host: host.as_ref().map(|(h, port)| (h.as_str(), *port)),
            route_name: None,
        };
        let authz = policy().authz();
        let fast = authz.find(&facts).map(|r| r.name().to_owned());
        let slow = authz.find_linear(&facts).map(|r| r.name().to_owned());
        assert_eq!(fast, slow, "route table disagrees with the linear scan for {facts:?}");

        // Templates: a match has the right number of segments.
        if let Ok(t) = Template::parse(&input.template)
            && t.matches(&p)
        {
            let n = segments(&p).count();
            let want = t.segments().len();
            let rest = matches!(
                t.segments().last(),
                Some(scopegate_core::routes::TemplateSegment::Rest(_))
            );
            assert!(if rest { n >= want } else { n == want }, "{t:?} matched {p:?}");
        }
    }
});
