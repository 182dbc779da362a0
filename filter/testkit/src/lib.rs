//! Test keys, JWKS and token minting for scopegate test suites (native only).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jwt_compact::alg::{
    Ed25519, Es256, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key, Rsa, RsaPrivateKey,
};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmExt, AlgorithmSignature, Claims, Header};
use serde_json::{Map, Value, json};

pub const ISS: &str = "https://auth.test";
pub const AUD: &str = "svc-a";
pub const NOW: i64 = 1_800_000_000;
pub const HMAC_SECRET: [u8; 64] = [0x42; 64];

pub struct Keys {
    pub rsa: RsaPrivateKey,
    pub p256: p256::ecdsa::SigningKey,
    pub ed: ed25519_dalek::SigningKey,
    pub p384: p384::ecdsa::SigningKey,
    pub p521: p521::ecdsa::SigningKey,
}

/// The test keys: generated once per process from a fixed seed, so every run
/// signs with the same keys (deterministic tokens for the fuel baselines;
/// ECDSA and PKCS#1 v1.5 signatures are deterministic, PSS salts are not).
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rand::SeedableRng as _;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5c09_e6a7_e000_0001);
        Keys {
            rsa: RsaPrivateKey::new(&mut rng, 2048).unwrap(),
            p256: p256::ecdsa::SigningKey::random(&mut rng),
            ed: ed25519_dalek::SigningKey::generate(&mut rng),
            p384: p384::ecdsa::SigningKey::random(&mut rng),
            p521: p521::ecdsa::SigningKey::random(&mut rng),
        }
    })
}

fn jwk(key: JsonWebKey<'_>, kid: &str, alg: &str) -> Value {
    let mut v = serde_json::to_value(&key).unwrap();
    v["kid"] = json!(kid);
    v["alg"] = json!(alg);
    v["use"] = json!("sig");
    v
}

fn ec_jwk(crv: &str, kid: &str, alg: &str, x: &[u8], y: &[u8]) -> Value {
    json!({"kty": "EC", "crv": crv, "kid": kid, "alg": alg, "use": "sig", "x": B64.encode(x), "y": B64.encode(y)})
}

/// A JWKS with one key of each family (kids: rsa-1, ec-1, ec384-1, ec521-1, ed-1, hs-1).
pub fn jwks() -> Value {
    let k = keys();
    let rsa_pub = k.rsa.to_public_key();
    let mut rsa = jwk(JsonWebKey::from(&rsa_pub), "rsa-1", "RS256");
    rsa.as_object_mut().unwrap().remove("alg"); // usable for RS* and PS*
    let p = k.p384.verifying_key().to_encoded_point(false);
    let ec384 = ec_jwk("P-384", "ec384-1", "ES384", p.x().unwrap(), p.y().unwrap());
    let p = p521::ecdsa::VerifyingKey::from(&k.p521).to_encoded_point(false);
    let ec521 = ec_jwk("P-521", "ec521-1", "ES512", p.x().unwrap(), p.y().unwrap());
    json!({"keys": [
        rsa,
        jwk(JsonWebKey::from(k.p256.verifying_key()), "ec-1", "ES256"),
        jwk(JsonWebKey::from(&k.ed.verifying_key()), "ed-1", "EdDSA"),
        ec384,
        ec521,
        {"kty": "oct", "kid": "hs-1", "k": B64.encode(HMAC_SECRET)},
    ]})
}

pub fn config(rules: Value) -> Value {
    json!({
        "realm": "svc-a",
        "providers": [{
            "name": "main",
            "issuer": ISS,
            "audiences": [AUD],
            "jwks": jwks(),
            "claims_to_headers": {"sub": "x-scopegate-sub", "scope": "x-scopegate-scope"},
        }],
        "rules": rules,
    })
}

pub fn default_rules() -> Value {
    json!([
        {"name": "health", "match": {"exact": "/healthz"}, "require": "public"},
        {"name": "orders-read", "match": {"prefix": "/orders", "methods": ["GET"]}, "require": {"all_of": ["svc-a:orders:read"]}},
        {"name": "orders-write", "match": {"prefix": "/orders", "methods": ["POST"]}, "require": {"any_of": ["svc-a:orders:write", {"all_of": ["svc-a:admin", "svc-a:orders:read"]}]}},
        {"name": "me", "match": {"prefix": "/me"}, "require": "authenticated"},
    ])
}

/// Standard claims valid at NOW, with the given scope string.
pub fn claims(scope: &str) -> Map<String, Value> {
    let v = json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "scope": scope,
        "iat": NOW - 10, "exp": NOW + 300,
    });
    v.as_object().unwrap().clone()
}

/// Signs `payload` (any JSON object) with `alg` and header `kid`, the honest way.
pub fn sign(alg: &str, kid: Option<&str>, payload: &Map<String, Value>) -> String {
    let mut header = Header::empty();
    if let Some(kid) = kid {
        header = header.with_key_id(kid);
    }
    let claims = Claims::new(payload.clone());
    let k = keys();
    match alg {
        "RS256" => Rsa::rs256().token(&header, &claims, &k.rsa),
        "RS384" => Rsa::rs384().token(&header, &claims, &k.rsa),
        "RS512" => Rsa::rs512().token(&header, &claims, &k.rsa),
        "PS256" => Rsa::ps256().token(&header, &claims, &k.rsa),
        "PS384" => Rsa::ps384().token(&header, &claims, &k.rsa),
        "PS512" => Rsa::ps512().token(&header, &claims, &k.rsa),
        "ES256" => Es256.token(&header, &claims, &k.p256),
        "EdDSA" => Ed25519.token(&header, &claims, &k.ed),
        "HS256" => Hs256.token(&header, &claims, &Hs256Key::new(HMAC_SECRET)),
        "HS384" => Hs384.token(&header, &claims, &Hs384Key::new(HMAC_SECRET)),
        "HS512" => Hs512.token(&header, &claims, &Hs512Key::new(HMAC_SECRET)),
        "ES384" | "ES512" => return sign_raw(alg, kid, payload),
        other => panic!("no signer for {other}"),
    }
    .unwrap()
}

/// ES384 / ES512: jwt-compact has no signer for these, so sign the JWS signing
/// input with the curve crates directly (raw r || s, RFC 7518 §3.4).
fn sign_raw(alg: &str, kid: Option<&str>, payload: &Map<String, Value>) -> String {
    use p384::ecdsa::signature::Signer as _;
    let mut header = json!({"alg": alg});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(Value::Object(payload.clone()).to_string())
    );
    let sig: Vec<u8> = match alg {
        "ES384" => {
            let s: p384::ecdsa::Signature = keys().p384.sign(input.as_bytes());
            s.to_bytes().to_vec()
        }
        _ => {
            let s: p521::ecdsa::Signature = keys().p521.sign(input.as_bytes());
            s.to_bytes().to_vec()
        }
    };
    format!("{input}.{}", B64.encode(sig))
}

/// Builds a token from raw header and payload JSON and raw signature bytes:
/// for attacks the honest signer would never produce.
pub fn forge(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string()),
        B64.encode(signature)
    )
}

/// HMAC-SHA256 over `header.payload` with an arbitrary key (for the confusion attack).
pub fn hs256_with(key: &[u8], header: &Value, payload: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string())
    );
    let sig = Hs256.sign(&Hs256Key::new(key), signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig.as_bytes()))
}

/// SHA-256 of `data` (for API key digests in test configs).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}
