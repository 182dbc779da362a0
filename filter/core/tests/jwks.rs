//! The remote JWKS state machine, PEM keys and HMAC secrets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
// On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
// (filter/scripts/test-core-wasm.sh).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use scopegate_core::jwks::{Fetch, FetchError, RemoteJwks, RemoteKeys};
use scopegate_core::keys::{AlgSet, key_from_base64_secret, key_from_pem};
use scopegate_core::{Decision, KeySource, Policy, Reason, Request, compile_json};
use serde_json::json;

fn remote(discovery: bool) -> RemoteKeys {
    RemoteKeys::new(
        RemoteJwks {
            cluster: "auth".into(),
            authority: "auth.test".into(),
            path: (!discovery).then(|| "/jwks".into()),
            discovery_path: discovery.then(|| "/.well-known/openid-configuration".into()),
            timeout_ms: 2000,
            cache_duration_seconds: 600,
            min_refetch_interval_seconds: 30,
        },
        ISS.into(),
        AlgSet::all(),
    )
}

fn jwks_body() -> Vec<u8> {
    jwks().to_string().into_bytes()
}

#[test]
fn first_fetch_then_refresh_ahead_of_expiry() {
    let mut r = remote(false);
    assert_eq!(
        r.next_fetch(0),
        Some(Fetch::Jwks {
            path: "/jwks".into()
        })
    );
    r.started(
        Fetch::Jwks {
            path: "/jwks".into(),
        },
        0,
    );
    assert_eq!(r.next_fetch(1), None, "one fetch at a time");
    let loaded = r.answered(1, 200, &jwks_body()).unwrap().unwrap();
    // The oct key of the test JWKS is refused from a remote source.
    assert_eq!(loaded.keys, 5);
    assert!(
        loaded
            .skipped
            .iter()
            .any(|(_, kid, why)| kid.as_deref() == Some("hs-1") && why.contains("symmetric"))
    );
    assert_eq!(r.next_fetch(100), None, "fresh keys");
    // Refreshed 60 s (a tenth of 600, capped) before the cache expires.
    assert_eq!(r.next_fetch(1 + 600 - 61), None);
    assert!(r.next_fetch(1 + 600 - 60).is_some());
}

#[test]
fn failures_keep_stale_keys_and_back_off() {
    let mut r = remote(false);
    r.started(
        Fetch::Jwks {
            path: "/jwks".into(),
        },
        0,
    );
    r.answered(0, 200, &jwks_body()).unwrap();
    let at = 600;
    r.started(
        Fetch::Jwks {
            path: "/jwks".into(),
        },
        at,
    );
    assert_eq!(
        r.answered(at, 503, b"upstream connect error").unwrap_err(),
        FetchError::Status(503)
    );
    assert!(r.keys().is_some(), "stale keys beat an outage");
    assert!(r.is_stale(at));
    // Backoff 1, 2, 4 ... seconds.
    assert_eq!(r.next_fetch(at), None);
    assert!(r.next_fetch(at + 1).is_some());
    for (i, bad) in [&b"not json"[..], b"{\"keys\": 5}", b"{\"keys\": []}"]
        .iter()
        .enumerate()
    {
        r.started(
            Fetch::Jwks {
                path: "/jwks".into(),
            },
            at + 10,
        );
        assert!(r.answered(at + 10, 200, bad).is_err(), "{i}");
        assert!(r.keys().is_some());
    }
    assert_eq!(r.failures(), 4);
    assert_eq!(
        r.next_fetch(at + 10 + 7),
        None,
        "backoff 8 s after four failures"
    );
    assert!(r.next_fetch(at + 10 + 8).is_some());
    let huge = vec![b' '; 300 * 1024];
    r.started(
        Fetch::Jwks {
            path: "/jwks".into(),
        },
        at + 100,
    );
    assert!(matches!(
        r.answered(at + 100, 200, &huge),
        Err(FetchError::TooLarge(_))
    ));
}

#[test]
fn unknown_kid_refetch_is_rate_limited() {
    let mut r = remote(false);
    r.started(
        Fetch::Jwks {
            path: "/jwks".into(),
        },
        0,
    );
    r.answered(0, 200, &jwks_body()).unwrap();
    assert_eq!(r.next_fetch(10), None);
    assert!(r.want_refetch_for_unknown_kid(10));
    assert!(r.next_fetch(10).is_some(), "the wish makes a fetch due");
    assert!(
        !r.want_refetch_for_unknown_kid(20),
        "second wish within 30 s refused"
    );
    r.started(
        Fetch::Jwks {
            path: "/jwks".into(),
        },
        10,
    );
    r.answered(11, 200, &jwks_body()).unwrap();
    assert_eq!(r.next_fetch(12), None, "the wish was fulfilled");
    assert!(r.want_refetch_for_unknown_kid(40));
    // A failed refetch is not retried for the unknown kid's sake.
    r.started(
        Fetch::Jwks {
            path: "/jwks".into(),
        },
        40,
    );
    assert!(r.answered(40, 500, b"").is_err());
    assert_eq!(r.next_fetch(41), None);
    assert_eq!(r.next_fetch(100), None, "fresh keys, no retry loop");
}

#[test]
fn discovery_leads_to_the_jwks_and_checks_the_issuer() {
    let mut r = remote(true);
    let d = r.next_fetch(0).unwrap();
    assert_eq!(
        d,
        Fetch::Discovery {
            path: "/.well-known/openid-configuration".into()
        }
    );
    r.started(d.clone(), 0);
    let doc = json!({"issuer": "https://evil.test", "jwks_uri": "https://auth.test/keys"});
    assert!(matches!(
        r.answered(0, 200, doc.to_string().as_bytes()),
        Err(FetchError::Discovery(_))
    ));
    r.started(d, 2);
    let doc = json!({"issuer": ISS, "jwks_uri": "https://auth.test/oauth/keys?v=2"});
    assert_eq!(
        r.answered(2, 200, doc.to_string().as_bytes()).unwrap(),
        None
    );
    assert_eq!(
        r.next_fetch(2),
        Some(Fetch::Jwks {
            path: "/oauth/keys?v=2".into()
        })
    );
}

#[test]
fn adopting_a_publication_only_moves_forward() {
    let mut r = remote(false);
    assert!(r.adopt(100, &jwks_body()).unwrap().is_some());
    assert_eq!(r.fetched_at(), Some(100));
    assert!(
        r.adopt(50, &jwks_body()).unwrap().is_none(),
        "older is ignored"
    );
    assert!(
        r.adopt(100, &jwks_body()).unwrap().is_none(),
        "same is ignored"
    );
    assert_eq!(r.next_fetch(200), None, "adopted keys are fresh");
}

struct Fetched(Vec<scopegate_core::keys::Key>);
impl KeySource for Fetched {
    fn fetched(&self, index: usize) -> Option<&[scopegate_core::keys::Key]> {
        (index == 0).then_some(self.0.as_slice())
    }
}

#[test]
fn a_remote_provider_decides_pending_until_keys_arrive() {
    let mut c = config(default_rules());
    let p = &mut c["providers"][0];
    p.as_object_mut().unwrap().remove("jwks");
    p["remote_jwks"] = json!({"cluster": "auth", "authority": "auth.test"});
    let policy = compile_json(c.to_string().as_bytes()).unwrap();
    let t = format!(
        "Bearer {}",
        sign("RS256", Some("rsa-1"), &claims("svc-a:orders:read"))
    );
    let headers = [("authorization", t.as_str())];
    let req = Request {
        method: "GET",
        path: "/orders",
        headers: &headers,
        now_unix_seconds: NOW,
        route_name: None,
    };
    match policy.decide(&req) {
        Decision::Pending(p) => {
            assert_eq!((p.provider, p.unknown_kid), (0, false));
            assert_eq!(
                (p.fallback.status, p.fallback.reason),
                (503, Reason::JwksUnavailable)
            );
        }
        other => panic!("{other:?}"),
    }
    let mut r = remote(false);
    r.adopt(NOW, &jwks_body()).unwrap();
    let keys = Fetched(r.keys().unwrap().to_vec());
    assert!(matches!(
        policy.decide_with(&req, &keys),
        Decision::Allow(_)
    ));
    // A kid the fetched set lacks: pending with unknown_kid, fallback 401.
    let t = format!(
        "Bearer {}",
        sign("RS256", Some("rsa-new"), &claims("svc-a:orders:read"))
    );
    let headers = [("authorization", t.as_str())];
    let req = Request {
        method: "GET",
        path: "/orders",
        headers: &headers,
        now_unix_seconds: NOW,
        route_name: None,
    };
    match policy.decide_with(&req, &keys) {
        Decision::Pending(p) => {
            assert!(p.unknown_kid);
            assert_eq!(
                (p.fallback.status, p.fallback.reason),
                (401, Reason::UnknownKid)
            );
        }
        other => panic!("{other:?}"),
    }
    // HS256 is not accepted from a remote-only provider.
    let t = format!(
        "Bearer {}",
        sign("HS256", Some("hs-1"), &claims("svc-a:orders:read"))
    );
    let headers = [("authorization", t.as_str())];
    let req = Request {
        method: "GET",
        path: "/orders",
        headers: &headers,
        now_unix_seconds: NOW,
        route_name: None,
    };
    match policy.decide_with(&req, &keys) {
        Decision::Deny(d) => assert_eq!(d.reason, Reason::AlgorithmNotAllowed),
        other => panic!("{other:?}"),
    }
}

#[test]
fn remote_jwks_config_errors_name_the_field() {
    let mut c = config(default_rules());
    c["providers"][0]["remote_jwks"] = json!({"cluster": "", "authority": "a b", "path": "jwks", "timeout_ms": 5, "cache_duration_seconds": 1});
    let errs: Vec<String> = compile_json(c.to_string().as_bytes())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    for field in [
        "cluster",
        "authority",
        "path",
        "timeout_ms",
        "cache_duration_seconds",
    ] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("providers[0].remote_jwks.{field}"))),
            "{field}: {errs:?}"
        );
    }
    c["providers"][0]["remote_jwks"] = json!({"cluster": "auth"});
    let errs = compile_json(c.to_string().as_bytes()).unwrap_err();
    assert!(
        errs[0].to_string().contains("missing field `authority`"),
        "{errs:?}"
    );
}

/// The decision on `GET /orders` with this `authorization` header, at `NOW`.
fn get_orders(policy: &Policy, authorization: &str) -> Decision {
    let headers = [("authorization", authorization)];
    policy.decide(&Request {
        method: "GET",
        path: "/orders",
        headers: &headers,
        now_unix_seconds: NOW,
        route_name: None,
    })
}

#[test]
fn pem_keys_of_every_type_and_base64_secrets() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let k = keys();
    let pems = [
        (
            "RS256",
            k.rsa
                .to_public_key()
                .to_public_key_pem(Default::default())
                .unwrap(),
        ),
        (
            "ES256",
            k.p256
                .verifying_key()
                .to_public_key_pem(Default::default())
                .unwrap(),
        ),
        (
            "ES384",
            k.p384
                .verifying_key()
                .to_public_key_pem(Default::default())
                .unwrap(),
        ),
        (
            "EdDSA",
            k.ed.verifying_key()
                .to_public_key_pem(Default::default())
                .unwrap(),
        ),
    ];
    for (alg, pem) in &pems {
        let key =
            key_from_pem(Some("k".into()), pem, None).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert!(
            key.algs()
                .contains(scopegate_core::keys::Alg::from_name(alg).unwrap()),
            "{alg}"
        );
    }
    // Policy with PEM keys verifies tokens.
    let mut c = config(default_rules());
    let p = &mut c["providers"][0];
    p.as_object_mut().unwrap().remove("jwks");
    p["pem_keys"] = json!([{"kid": "rsa-1", "pem": pems[0].1}, {"pem": pems[3].1, "alg": "EdDSA"}]);
    p["hmac_secrets"] = json!([{"kid": "hs-1", "secret": base64_std(&HMAC_SECRET)}]);
    let policy = compile_json(c.to_string().as_bytes()).unwrap();
    for (alg, kid) in [
        ("RS256", Some("rsa-1")),
        ("EdDSA", None),
        ("HS512", Some("hs-1")),
    ] {
        let t = format!("Bearer {}", sign(alg, kid, &claims("svc-a:orders:read")));
        let d = get_orders(&policy, &t);
        assert!(matches!(d, Decision::Allow(_)), "{alg}: {d:?}");
    }
    // Errors: private key, garbage, short secret, wrong alg for the key.
    assert!(
        key_from_pem(
            None,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            None
        )
        .is_err()
    );
    assert!(key_from_pem(None, "hello", None).is_err());
    assert!(key_from_pem(None, &pems[0].1, Some("ES256")).is_err());
    assert!(key_from_base64_secret(None, "c2hvcnQ=", None).is_err());
    let mut c = config(default_rules());
    c["providers"][0]["pem_keys"] = json!([{"pem": "nope"}]);
    let errs = compile_json(c.to_string().as_bytes()).unwrap_err();
    assert!(
        errs[0].to_string().starts_with("providers[0].pem_keys[0]"),
        "{errs:?}"
    );
}

/// A DER TLV (short or long length form).
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n @ 0..=127 => out.push(n as u8),
        n @ 128..=255 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// A SubjectPublicKeyInfo PEM of an EC point: id-ecPublicKey with the
/// named curve's DER-encoded OID (RFC 5480).
fn ec_spki_pem(curve_oid_der: &[u8], point: &[u8]) -> String {
    const ID_EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let algorithm = der(0x30, &[&ID_EC_PUBLIC_KEY[..], curve_oid_der].concat());
    let bits = der(0x03, &[&[0u8][..], point].concat());
    let spki = der(0x30, &[algorithm, bits].concat());
    let b64 = base64_std(&spki);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

#[test]
fn ec_pem_keys_compressed_or_not_verify_their_tokens_on_their_curve_only() {
    use p256::pkcs8::EncodePublicKey as _;
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
    const SECP256K1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
    let k = keys();
    let p521 = p521::ecdsa::VerifyingKey::from(&k.p521);
    let points = [
        ("ES256", P256, k.p256.verifying_key().to_encoded_point(false).as_bytes().to_vec(), k.p256.verifying_key().to_encoded_point(true).as_bytes().to_vec()),
        ("ES384", P384, k.p384.verifying_key().to_encoded_point(false).as_bytes().to_vec(), k.p384.verifying_key().to_encoded_point(true).as_bytes().to_vec()),
        ("ES512", P521, p521.to_encoded_point(false).as_bytes().to_vec(), p521.to_encoded_point(true).as_bytes().to_vec()),
    ];
    // The hand-built SPKI is the curve crates' own encoding.
    assert_eq!(
        ec_spki_pem(P256, &points[0].2),
        k.p256.verifying_key().to_public_key_pem(Default::default()).unwrap()
    );
    assert_eq!(
        ec_spki_pem(P384, &points[1].2),
        k.p384.verifying_key().to_public_key_pem(Default::default()).unwrap()
    );
    for (alg, oid, uncompressed, compressed) in &points {
        let token = format!("Bearer {}", sign(alg, Some("pem"), &claims("svc-a:orders:read")));
        for (form, point) in [("uncompressed", uncompressed), ("compressed", compressed)] {
            let pem = ec_spki_pem(oid, point);
            let key = key_from_pem(Some("pem".into()), &pem, None).unwrap_or_else(|e| panic!("{alg} {form}: {e}"));
            assert_eq!(key.algs(), [scopegate_core::keys::Alg::from_name(alg).unwrap()].into_iter().collect::<AlgSet>(), "{alg} {form}");
            let mut c = config(default_rules());
            let p = &mut c["providers"][0];
            p.as_object_mut().unwrap().remove("jwks");
            p["pem_keys"] = json!([{"kid": "pem", "pem": pem}]);
            let policy = compile_json(c.to_string().as_bytes()).unwrap();
            let d = get_orders(&policy, &token);
            assert!(matches!(d, Decision::Allow(_)), "{alg} {form}: {d:?}");
        }
        // The same point under another curve's OID, or secp256k1's: refused.
        for other in [P256, P384, P521, SECP256K1].into_iter().filter(|o| o != oid) {
            assert!(key_from_pem(None, &ec_spki_pem(other, uncompressed), None).is_err(), "{alg} as {other:02x?}");
        }
        // Off the curve (y + 1), a truncated point, the identity: refused.
        let mut off = uncompressed.clone();
        *off.last_mut().unwrap() ^= 1;
        assert!(key_from_pem(None, &ec_spki_pem(oid, &off), None).is_err(), "{alg} off the curve");
        assert!(key_from_pem(None, &ec_spki_pem(oid, &uncompressed[..uncompressed.len() - 1]), None).is_err());
        assert!(key_from_pem(None, &ec_spki_pem(oid, &[0]), None).is_err());
    }
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Regression (fault injection, issue 9): after the wall clock went back, the
/// timestamps recorded before the jump held off refreshes and retries for as
/// long as the jump. `notice_clock` moves them to the new present.
#[test]
fn a_clock_that_went_back_does_not_stall_refreshes_or_retries() {
    let mut r = remote(false);
    let later = 1_000_000;
    r.started(r.next_fetch(later).unwrap(), later);
    assert!(r.answered(later, 200, &jwks_body()).unwrap().is_some());
    // A day back: the keys look fetched in the future.
    let now = later - 86_400;
    assert_eq!(
        r.next_fetch(now + 600),
        None,
        "stalled without the correction"
    );
    assert!(r.notice_clock(now));
    assert!(!r.notice_clock(now), "nothing left to correct");
    assert!(
        r.next_fetch(now).is_some(),
        "keys of unknown age: refreshed at once"
    );
    // A failure's backoff, then another jump back: the retry is not held off.
    r.started(r.next_fetch(now).unwrap(), now);
    r.failed(now);
    assert!(r.next_fetch(now).is_none(), "backing off");
    let back = now - 86_400;
    assert_eq!(r.next_fetch(back), None);
    assert!(r.notice_clock(back));
    assert!(r.next_fetch(back).is_some());
    // A kid refetch recorded in the future does not block new ones.
    assert!(r.want_refetch_for_unknown_kid(now));
    assert!(!r.want_refetch_for_unknown_kid(back));
    assert!(r.notice_clock(back));
    assert!(r.want_refetch_for_unknown_kid(back));
    // Keys are kept throughout.
    assert!(r.keys().is_some());
}
