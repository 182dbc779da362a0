//! Config parsing and compiling from raw JSON bytes.
//!
//! Invariants: compiling never panics and is deterministic; an accepted
//! config, asked about requests without a token or with a forged one, never
//! allows except on a public rule or a CORS preflight (or in dry-run, where
//! the would-be denial is carried), and every decision keeps
//! `check_decision`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_core::{Decision, Request, compile_json};
use scopegate_fuzz::check_decision;

const FORGED: &str = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJodHRwczovL2F1dGgudGVzdCIsImF1ZCI6InN2Yy1hIiwic2NvcGUiOiJzdmMtYToqIn0.AAAA";

fuzz_target!(|data: &[u8]| {
    let first = compile_json(data);
    let again = compile_json(data);
    assert_eq!(first.is_ok(), again.is_ok(), "compile is not deterministic");
    if let (Err(a), Err(b)) = (&first, &again) {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
    let Ok(policy) = first else { return };
    for method in ["GET", "POST", "OPTIONS"] {
        for path in ["/", "/orders/1", "/healthz", "/admin/x?y=1", "/a/../b"] {
            for headers in [
                &[][..],
                &[("authorization", FORGED)][..],
                &[("origin", "https://x"), ("access-control-request-method", "GET")][..],
                &[(":authority", "api.example.com"), ("x-api-key", "k"), ("cookie", "session=a.b.c")][..],
            ] {
                let d = policy.decide(&Request {
                    method,
                    path,
                    headers,
                    now_unix_seconds: 1_800_000_000,
                    route_name: Some("r"),
                });
                check_decision(&d);
                if let Decision::Allow(a) = &d {
                    assert!(a.principal.is_none(), "a principal without a valid credential: {a:?}");
                }
            }
        }
    }
});
