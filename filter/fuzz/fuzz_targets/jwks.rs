//! JWKS parsing (inline config and fetched bodies), the remote-JWKS state
//! machine's answer handling, the duplicate-member guard, and the
//! shared-data publication format.
//!
//! Invariants: every key of a set is either parsed or reported skipped;
//! never more than MAX_JWKS_KEYS; each parsed key supports some algorithm;
//! a fetched body that fails leaves the keys already held in place (kept when
//! the auth server misbehaves) and a success never brings an HMAC key or an
//! empty set; a publication reads back exactly; reading arbitrary bytes as a
//! publication never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_core::json_guard::is_unambiguous;
use scopegate_core::jwks::{Fetch, RemoteJwks, RemoteKeys, publication, read_publication};
use scopegate_core::keys::{AlgSet, KeyFamily, MAX_JWKS_KEYS, key_from_jwk, parse_jwks};
use serde_json::Value;

fn remote(discovery: bool) -> RemoteKeys {
    RemoteKeys::new(
        RemoteJwks {
            cluster: "auth".into(),
            authority: "auth.test".into(),
            path: (!discovery).then(|| "/jwks".into()),
            discovery_path: discovery.then(|| "/.well-known/openid-configuration".into()),
            timeout_ms: 1000,
            cache_duration_seconds: 300,
            min_refetch_interval_seconds: 5,
        },
        "https://auth.test".into(),
        AlgSet::all(),
    )
}

fuzz_target!(
    // Key generation (RSA-2048) before the first unit, not in its time budget.
    init: { scopegate_testkit::keys(); },
    |data: &[u8]| {
    let _ = is_unambiguous(data);
    let _ = read_publication(data);
    if std::str::from_utf8(data).is_ok() {
        let at = i64::from(data.first().copied().unwrap_or(0)) * 1_000_003 - 7;
        assert_eq!(read_publication(&publication(at, data)), Some((at, data.to_vec())));
    }

    // The fetched-body path: first a good set, then this body.
    let mut r = remote(false);
    r.started(Fetch::Jwks { path: "/jwks".into() }, 100);
    static GOOD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let good = GOOD.get_or_init(|| scopegate_testkit::jwks().to_string());
    assert!(matches!(r.answered(100, 200, good.as_bytes()), Ok(Some(_))));
    let before = r.keys().cloned().expect("keys after a good fetch");
    r.started(Fetch::Jwks { path: "/jwks".into() }, 200);
    match r.answered(200, 200, data) {
        Ok(Some(loaded)) => {
            let keys = r.keys().expect("keys after success");
            assert!(!keys.is_empty() && loaded.keys == keys.len());
            assert!(keys.iter().all(|k| k.material().family() != KeyFamily::Hmac));
        }
        Ok(None) => panic!("a JWKS fetch answered as discovery"),
        Err(_) => {
            let after = r.keys().expect("keys kept after a failed fetch");
            assert_eq!(after.len(), before.len());
            assert!(r.failures() > 0);
        }
    }
    // And as a discovery document.
    let mut d = remote(true);
    if let Some(fetch) = d.next_fetch(0) {
        d.started(fetch, 0);
        let _ = d.answered(0, 200, data);
    }

    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(parsed) = parse_jwks(&doc) {
        let inner = match &doc {
            Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
            other => other.clone(),
        };
        let n = inner.get("keys").and_then(Value::as_array).map_or(0, Vec::len);
        assert_eq!(parsed.keys.len() + parsed.skipped.len(), n);
        assert!(n <= MAX_JWKS_KEYS);
        for k in &parsed.keys {
            assert!(k.algs().iter().next().is_some(), "a key for no algorithm: {k:?}");
        }
    }
    if let Ok(k) = key_from_jwk(&doc) {
        assert!(k.algs().iter().next().is_some());
    }
});
