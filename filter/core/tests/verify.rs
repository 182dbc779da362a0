//! Token verification through the public API: every algorithm, every refusal.
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

use scopegate_core::verify::verify;
use scopegate_core::{Reason, compile_json};
use serde_json::{Value, json};

fn check(token: &str) -> Result<scopegate_core::Principal, Reason> {
    let p = policy();
    verify(p.providers(), |_| true, token, NOW, 8192).map_err(|f| f.reason)
}

fn reason(token: &str) -> Reason {
    match check(token) {
        Ok(p) => panic!("token was accepted: {p:?}"),
        Err(r) => r,
    }
}

#[test]
fn every_supported_algorithm_verifies_with_its_own_key() {
    let kid = |alg: &str| match alg {
        a if a.starts_with('R') || a.starts_with('P') => "rsa-1",
        "ES256" => "ec-1",
        "ES384" => "ec384-1",
        "ES512" => "ec521-1",
        "EdDSA" => "ed-1",
        _ => "hs-1",
    };
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "EdDSA", "HS256", "HS384",
        "HS512",
    ] {
        let token = sign(alg, Some(kid(alg)), &claims("a b"));
        let principal = check(&token).unwrap_or_else(|r| panic!("{alg}: {r}"));
        assert_eq!(principal.subject.as_deref(), Some("alice"), "{alg}");
        assert_eq!(principal.scopes, vec!["a", "b"], "{alg}");
        assert_eq!(principal.provider, "main");
        // Without a kid every compatible key is tried.
        let token = sign(alg, None, &claims("a"));
        assert!(check(&token).is_ok(), "{alg} without kid");
    }
}

#[test]
fn rfc7515_appendix_a1_hs256_example_verifies() {
    // RFC 7515 A.1: header {"typ":"JWT",\r\n "alg":"HS256"}, payload with iss "joe", exp 1300819380.
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                 eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt\
                 cGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
                 dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let k =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    let cfg = json!({
        "providers": [{"name": "rfc", "issuer": "joe", "audience_check": false,
                       "jwks": {"keys": [{"kty": "oct", "k": k}]}}],
        "rules": [{"name": "all", "match": {"prefix": "/"}, "require": "authenticated"}],
    });
    let policy = compile_json(cfg.to_string().as_bytes()).unwrap();
    let p = verify(policy.providers(), |_| true, token, 1_300_819_000, 8192).unwrap();
    assert_eq!(p.claims["http://example.com/is_root"], json!(true));
    // One second past exp plus the default 60 s skew it is expired.
    let f = verify(
        policy.providers(),
        |_| true,
        token,
        1_300_819_380 + 61,
        8192,
    )
    .unwrap_err();
    assert_eq!(f.reason, Reason::TokenExpired);
    // Any change to the signed part breaks it.
    let tampered = token.replacen("eyJpc3MiOiJqb2Ui", "eyJpc3MiOiJqb2Uj", 1);
    assert!(verify(policy.providers(), |_| true, &tampered, 1_300_819_000, 8192).is_err());
}

#[test]
fn alg_none_in_any_spelling_is_refused() {
    let payload = Value::Object(claims("a"));
    for alg in ["none", "None", "NONE", "nOnE"] {
        let t = format!(
            "{}.",
            forge(&json!({"alg": alg}), &payload, b"").trim_end_matches('.')
        );
        // Unsigned JWTs end with an empty signature segment: refused as malformed or alg.
        let r = reason(&t);
        assert!(
            matches!(r, Reason::AlgorithmNotAllowed | Reason::Malformed),
            "{alg}: {r}"
        );
        let t = forge(&json!({"alg": alg}), &payload, b"sig");
        assert_eq!(reason(&t), Reason::AlgorithmNotAllowed, "{alg}");
    }
}

#[test]
fn hmac_signed_with_the_rsa_public_key_is_refused() {
    // Algorithm confusion: the attacker signs HS256 with the public key's bytes.
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::EncodePublicKey;
    use rsa::traits::PublicKeyParts;
    let public = keys().rsa.to_public_key();
    let pkcs1 = public.to_pkcs1_der().unwrap().as_bytes().to_vec();
    let spki = public.to_public_key_der().unwrap().as_bytes().to_vec();
    let modulus = public.n().to_bytes_be();
    let payload = Value::Object(claims("a"));
    for key_bytes in [pkcs1, spki, modulus] {
        let t = hs256_with(
            &key_bytes,
            &json!({"alg": "HS256", "kid": "rsa-1"}),
            &payload,
        );
        assert_eq!(reason(&t), Reason::UnknownKid);
    }
    // A provider restricted to RS256 refuses HS256 outright, whatever the key set holds.
    let mut cfg = config(default_rules());
    cfg["providers"][0]["algorithms"] = json!(["RS256"]);
    let policy = compile_json(cfg.to_string().as_bytes()).unwrap();
    let t = sign("HS256", Some("hs-1"), &claims("a"));
    let f = verify(policy.providers(), |_| true, &t, NOW, 8192).unwrap_err();
    assert_eq!(f.reason, Reason::AlgorithmNotAllowed);
}

#[test]
fn key_reference_and_critical_headers_are_never_trusted() {
    let payload = Value::Object(claims("a"));
    for (name, value) in [
        ("jku", json!("https://evil.test/jwks.json")),
        ("x5u", json!("https://evil.test/cert.pem")),
        ("jwk", json!({"kty": "oct", "k": "AAAA"})),
        ("x5c", json!(["MIIB"])),
        ("crit", json!(["exp"])),
    ] {
        let mut header = json!({"alg": "HS256", "kid": "hs-1"});
        header[name] = value;
        // Correctly signed with the real secret: the header alone must sink it.
        let t = hs256_with(&HMAC_SECRET, &header, &payload);
        assert_eq!(reason(&t), Reason::HeaderNotAllowed, "{name}");
    }
}

/// The header members verification reads, each of the wrong type or
/// value, in correctly signed tokens: the token is malformed (as
/// jwt-compact's `Header` refused them); a key reference of any type is
/// refused as a header; `cty` is JSON in any case or absent.
#[test]
fn header_members_of_the_wrong_type_make_a_malformed_token() {
    let payload = Value::Object(claims("a"));
    let signed = |header: Value| hs256_with(&HMAC_SECRET, &header, &payload);
    for (name, value) in [
        ("kid", json!(7)),
        ("typ", json!(["JWT"])),
        ("cty", json!(true)),
        ("cty", json!("cbor")),
        ("x5t", json!(1)),
        ("x5t#S256", json!({})),
    ] {
        let mut header = json!({"alg": "HS256"});
        header[name] = value.clone();
        assert_eq!(reason(&signed(header)), Reason::Malformed, "{name}: {value}");
    }
    assert_eq!(reason(&signed(json!({"kid": "hs-1"}))), Reason::Malformed, "no alg");
    assert_eq!(reason(&signed(json!({"alg": null}))), Reason::Malformed, "alg null");
    assert_eq!(reason(&signed(json!({"alg": "none"}))), Reason::AlgorithmNotAllowed);
    assert_eq!(reason(&signed(json!({"alg": "HS256", "jku": 5}))), Reason::HeaderNotAllowed);
    assert_eq!(reason(&signed(json!({"alg": "HS256", "x5u": null}))), Reason::HeaderNotAllowed);
    for cty in ["JSON", "json"] {
        assert!(check(&signed(json!({"alg": "HS256", "kid": "hs-1", "cty": cty}))).is_ok(), "{cty}");
    }
    // Hints nothing reads: accepted as strings.
    let t = signed(json!({"alg": "HS256", "kid": "hs-1", "x5t": "AAAA", "x5t#S256": "BBBB"}));
    assert!(check(&t).is_ok());
    // The header is a JSON object of unique members.
    let raw = |header: &str| {
        let (_, rest) = signed(json!({"alg": "HS256"})).split_once('.').map(|(h, r)| (h.to_owned(), r.to_owned())).unwrap();
        format!("{}.{rest}", b64(header.as_bytes()))
    };
    assert_eq!(reason(&raw(r#"["HS256"]"#)), Reason::Malformed);
    assert_eq!(reason(&raw(r#"{"alg":"HS256","alg":"HS256"}"#)), Reason::Malformed);
    assert_eq!(reason(&raw(r#"{"alg":"HS256""#)), Reason::Malformed);
}

/// A signature segment with non-zero trailing bits (another spelling of the
/// same bytes) is not base64url: one token has one spelling.
#[test]
fn a_signature_spelled_with_trailing_bits_is_malformed() {
    let t = sign("HS256", Some("hs-1"), &claims("a"));
    assert!(check(&t).is_ok());
    // 32 bytes = 43 characters; the last one carries 2 unused bits.
    let (input, sig) = t.rsplit_once('.').unwrap();
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let i = alphabet.find(last).unwrap();
    assert_eq!(i % 4, 0, "canonical: the unused bits are zero");
    let other = alphabet.chars().nth(i + 1).unwrap();
    let respelled = format!("{input}.{}{other}", &sig[..sig.len() - 1]);
    assert_eq!(reason(&respelled), Reason::Malformed);
}

#[test]
fn psychic_and_der_ecdsa_signatures_are_refused() {
    let payload = Value::Object(claims("a"));
    let header = json!({"alg": "ES256", "kid": "ec-1"});
    // CVE-2022-21449: r = s = 0.
    assert_eq!(
        reason(&forge(&header, &payload, &[0u8; 64])),
        Reason::BadSignature
    );
    // r = s = n (the group order) is out of range too.
    let n = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let sig = [n.clone(), n].concat();
    assert_eq!(
        reason(&forge(&header, &payload, &sig)),
        Reason::BadSignature
    );
    // A real signature re-encoded as DER is refused (JWS wants raw r||s).
    let good = sign("ES256", Some("ec-1"), &claims("a"));
    let raw = base64_decode(good.rsplit('.').next().unwrap());
    let der = p256::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
    let (signing_input, _) = good.rsplit_once('.').unwrap();
    let t = format!("{signing_input}.{}", b64(der.as_bytes()));
    assert_eq!(reason(&t), Reason::BadSignature);
    // The same for ES384 and ES512 (our own jwt-compact algorithms).
    for (alg, kid, len) in [("ES384", "ec384-1", 96), ("ES512", "ec521-1", 132)] {
        let header = json!({"alg": alg, "kid": kid});
        assert_eq!(
            reason(&forge(&header, &payload, &vec![0u8; len])),
            Reason::BadSignature,
            "{alg}"
        );
        assert_eq!(
            reason(&forge(&header, &payload, &vec![0xffu8; len])),
            Reason::BadSignature,
            "{alg}"
        );
        let good = sign(alg, Some(kid), &claims("a"));
        let (input, sig) = good.rsplit_once('.').unwrap();
        let mut raw = base64_decode(sig);
        raw[3] ^= 1;
        assert_eq!(
            reason(&format!("{input}.{}", b64(&raw))),
            Reason::BadSignature,
            "{alg}"
        );
        assert_eq!(
            reason(&format!("{input}.{}", b64(&raw[..len - 1]))),
            Reason::BadSignature,
            "{alg}"
        );
    }
}

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[test]
fn a_flipped_bit_anywhere_in_the_signed_part_fails() {
    let token = sign("RS256", Some("rsa-1"), &claims("a"));
    let (signing_input, _) = token.rsplit_once('.').unwrap();
    let bytes = token.as_bytes();
    for i in (0..signing_input.len()).step_by(7) {
        let c = bytes[i];
        if c == b'.' {
            continue;
        }
        let replacement = if c == b'A' { b'B' } else { b'A' };
        let mut t = bytes.to_vec();
        t[i] = replacement;
        let t = String::from_utf8(t).unwrap();
        assert!(check(&t).is_err(), "byte {i} changed and still accepted");
    }
    // And in the signature.
    let mut t = token.clone().into_bytes();
    let last = t.len() - 5;
    t[last] = if t[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(reason(&String::from_utf8(t).unwrap()), Reason::BadSignature);
}

#[test]
fn time_claims_honour_the_skew() {
    let mut c = claims("a");
    c.insert("exp".into(), json!(NOW - 59));
    assert!(
        check(&sign("HS256", None, &c)).is_ok(),
        "expired 59 s ago is within 60 s skew"
    );
    c.insert("exp".into(), json!(NOW - 61));
    assert_eq!(reason(&sign("HS256", None, &c)), Reason::TokenExpired);

    let mut c = claims("a");
    c.insert("nbf".into(), json!(NOW + 61));
    assert_eq!(reason(&sign("HS256", None, &c)), Reason::TokenNotYetValid);
    c.insert("nbf".into(), json!(NOW + 59));
    assert!(check(&sign("HS256", None, &c)).is_ok());

    let mut c = claims("a");
    c.insert("iat".into(), json!(NOW + 3600));
    assert_eq!(reason(&sign("HS256", None, &c)), Reason::TokenNotYetValid);

    let mut c = claims("a");
    c.remove("exp");
    assert_eq!(reason(&sign("HS256", None, &c)), Reason::ClaimInvalid);

    for bad in [
        json!("1900000000"),
        json!(true),
        json!([1]),
        json!({"a": 1}),
    ] {
        let mut c = claims("a");
        c.insert("exp".into(), bad.clone());
        assert_eq!(
            reason(&sign("HS256", None, &c)),
            Reason::Malformed,
            "exp {bad}"
        );
    }
    let mut c = claims("a");
    c.insert("exp".into(), json!(u64::MAX));
    assert_eq!(reason(&sign("HS256", None, &c)), Reason::Malformed);
    // Outside chrono's years (about ±262,000) or null: refused too.
    for bad in [json!(1e15), json!(-1e15), json!(9_000_000_000_000_i64), Value::Null] {
        let mut c = claims("a");
        c.insert("exp".into(), bad.clone());
        assert_eq!(reason(&sign("HS256", None, &c)), Reason::Malformed, "exp {bad}");
    }
    // A NumericDate may have a fraction (RFC 7519 §2): truncated, and the
    // principal carries the integer.
    let mut c = claims("a");
    c.insert("exp".into(), json!((NOW + 100) as f64 + 0.75));
    c.insert("nbf".into(), json!((NOW - 5) as f64 + 0.5));
    let p = check(&sign("HS256", None, &c)).unwrap();
    assert_eq!(p.claims["exp"], json!(NOW + 100));
    assert_eq!(p.claims["nbf"], json!(NOW - 5));
    assert_eq!(p.claims["iat"], json!(NOW - 10));
    c.insert("exp".into(), json!((NOW - 61) as f64 + 0.9));
    assert_eq!(reason(&sign("HS256", None, &c)), Reason::TokenExpired);
}

#[test]
fn issuer_and_audience_are_checked() {
    let mut c = claims("a");
    c.insert("iss".into(), json!("https://evil.test"));
    assert_eq!(reason(&sign("HS256", None, &c)), Reason::IssuerNotAllowed);
    c.remove("iss");
    assert_eq!(reason(&sign("HS256", None, &c)), Reason::IssuerNotAllowed);

    let mut c = claims("a");
    c.insert("aud".into(), json!("svc-b"));
    assert_eq!(reason(&sign("HS256", None, &c)), Reason::AudienceNotAllowed);
    c.insert("aud".into(), json!(["svc-b", "svc-a"]));
    assert!(check(&sign("HS256", None, &c)).is_ok());
    c.remove("aud");
    assert_eq!(reason(&sign("HS256", None, &c)), Reason::AudienceNotAllowed);
}

#[test]
fn malformed_shapes_are_refused_before_parsing() {
    let good = sign("HS256", None, &claims("a"));
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    for bad in [
        String::new(),
        "abc".into(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.x.y"), // JWE shape
        format!("{h}=.{p}.{s}"),    // padding
        format!("{h}.{p}.{s}+"),    // non-url alphabet
        format!("{h}..{s}"),
        format!(".{p}.{s}"),
        format!("{}.{p}.{s}", b64(b"[1,2]")), // header not an object
        format!("{h}.{}.{s}", b64(b"\"str\"")), // payload not an object
        format!("{h}.{p}.{s} "),
    ] {
        let r = reason(&bad);
        assert!(
            matches!(r, Reason::Malformed | Reason::BadSignature),
            "{bad:?}: {r}"
        );
    }
    let huge = format!("{h}.{}.{s}", "A".repeat(9000));
    assert_eq!(reason(&huge), Reason::TokenTooLarge);
}

#[test]
fn unknown_kid_is_its_own_reason() {
    assert_eq!(
        reason(&sign("RS256", Some("rsa-9"), &claims("a"))),
        Reason::UnknownKid
    );
}

#[test]
fn rfc8037_appendix_a4_ed25519_signature_verifies_with_the_parsed_jwk() {
    use jwt_compact::{Algorithm, AlgorithmSignature};
    use scopegate_core::keys::{KeyMaterial, key_from_jwk};
    // RFC 8037 A.1 public key and A.4 JWS (payload "Example of Ed25519 signing").
    let key = key_from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})).unwrap();
    let KeyMaterial::Ed25519(ed) = key.material() else {
        panic!("not an Ed25519 key")
    };
    let vk = ed.verifying_key();
    let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let sig = base64_decode(
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
    );
    let alg = jwt_compact::alg::Ed25519;
    let s = <jwt_compact::alg::Ed25519 as Algorithm>::Signature::try_from_slice(&sig).unwrap();
    assert!(alg.verify_signature(&s, vk, input));
    assert!(!alg.verify_signature(
        &s,
        vk,
        b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmd"
    ));
    // scopegate's own verifier (ed_fast) agrees.
    assert!(ed.verify(input, &sig));
    assert!(!ed.verify(b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmd", &sig));
    // The whole JWS is refused by scopegate: its payload is not a JSON claims set.
    let jws = format!("{}.{}", std::str::from_utf8(input).unwrap(), b64(&sig));
    assert_eq!(reason(&jws), Reason::Malformed);
}

#[test]
fn rfc7515_appendix_a3_es256_and_a4_es512_examples_verify_with_the_parsed_jwks() {
    use jwt_compact::{Algorithm, AlgorithmSignature};
    use scopegate_core::ecdsa_ext::{FastEs256, FastEs512};
    use scopegate_core::keys::{KeyMaterial, key_from_jwk};
    // RFC 7515 A.3: the P-256 key of A.3.1 and the JWS of A.3.1 (its JWT
    // payload {"iss":"joe", "exp":1300819380, ...}).
    let key = key_from_jwk(&json!({"kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}))
    .unwrap();
    let KeyMaterial::P256(p256) = key.material() else {
        panic!("not a P-256 key")
    };
    let input = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    let sig = base64_decode(
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
    );
    let s = <FastEs256 as Algorithm>::Signature::try_from_slice(&sig).unwrap();
    assert!(FastEs256.verify_signature(&s, p256, input.as_bytes()));
    assert!(!FastEs256.verify_signature(&s, p256, &input.as_bytes()[1..]));
    // RFC 7515 A.4: the P-521 key of A.4.1 and the JWS over "Payload".
    let key = key_from_jwk(&json!({"kty": "EC", "crv": "P-521",
        "x": "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
        "y": "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}))
    .unwrap();
    let KeyMaterial::P521(p521) = key.material() else {
        panic!("not a P-521 key")
    };
    let input = b"eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA";
    let sig = base64_decode(
        "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn",
    );
    let s = <FastEs512 as Algorithm>::Signature::try_from_slice(&sig).unwrap();
    assert!(FastEs512.verify_signature(&s, p521, input));
    assert!(!FastEs512.verify_signature(&s, p521, b"eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZB"));
}
