//! Config parsing and compiling from raw JSON bytes.
//!
//! Invariants: compiling never panics and is deterministic; an accepted
//! config, asked about requests without a token or with a forged one, never
//! allows except on a public rule or a CORS preflight (or in dry-run, where
//! the would-be denial is carried), and every decision keeps
//! `check_decision`. A JSON error has the path and message that
//! serde_path_to_error gives (parse_json recovers the path from the error's
//! position), but for the one documented difference (tests/json_path.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_core::config::Config;
use scopegate_core::{Decision, Request, compile_json, parse_json};
use scopegate_fuzz::check_decision;

/// serde_path_to_error's path and message for `data`, as compile_json
/// printed them when it used it; `None` if the config decodes.
fn reference(data: &[u8]) -> Option<(String, String)> {
    let mut de = serde_json::Deserializer::from_slice(data);
    match serde_path_to_error::deserialize::<_, Config>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            let path = if path.is_empty() { ".".to_owned() } else { path };
            Some((path, e.into_inner().to_string()))
        }
        Ok(_) => de.end().err().map(|e| (".".to_owned(), e.to_string())),
    }
}

fn check_json_error_path(data: &[u8]) {
    if data.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return;
    }
    let want = reference(data);
    let got = parse_json(data).err().map(|errs| {
        assert_eq!(errs.len(), 1, "{errs:?}");
        let e = &errs[0];
        (e.path.clone(), e.problem.to_string())
    });
    let enum_object = match (&want, &got) {
        (Some((wp, wm)), Some((gp, gm))) => {
            wm == gm
                && gp.strip_suffix(".?") == Some(wp.as_str())
                && ["cors_preflight", "on_stale", "tokens"].iter().any(|m| wp.ends_with(m))
        }
        _ => false,
    };
    assert!(enum_object || got == want, "parse_json: {got:?}, serde_path_to_error: {want:?}");
}

const FORGED: &str = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJodHRwczovL2F1dGgudGVzdCIsImF1ZCI6InN2Yy1hIiwic2NvcGUiOiJzdmMtYToqIn0.AAAA";

fuzz_target!(|data: &[u8]| {
    check_json_error_path(data);
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
