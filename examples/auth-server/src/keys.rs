//! Signing keys: RSA 2048 generated at start-up or loaded from PEM, the JWKS
//! (current and previous key), rotation, and verification of our own tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_compact::alg::Rsa;
use jwt_compact::{AlgorithmExt, Claims, Header, UntrustedToken};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub const RSA_BITS: usize = 2048;
/// The JWS `typ` of our access tokens (RFC 9068).
pub const TOKEN_TYPE: &str = "at+jwt";

#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    private: RsaPrivateKey,
    public: RsaPublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate() -> Result<Self, String> {
        let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
            .map_err(|e| format!("RSA key generation: {e}"))?;
        Ok(Self::from_private(private))
    }

    /// A private key in PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let private = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|e| format!("not an RSA private key in PEM (PKCS#8 or PKCS#1): {e}"))?;
        if private.size() * 8 < RSA_BITS {
            return Err(format!(
                "RSA key of {} bits: at least {RSA_BITS} required",
                private.size() * 8
            ));
        }
        Ok(Self::from_private(private))
    }

    fn from_private(private: RsaPrivateKey) -> Self {
        let public = private.to_public_key();
        let kid = thumbprint(&public);
        SigningKey {
            kid,
            private,
            public,
        }
    }

    /// The public JWK (RFC 7517) with `kid`, `use`, `alg`.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(self.public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(self.public.e().to_bytes_be()),
        })
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url): a stable `kid`.
fn thumbprint(public: &RsaPublicKey) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        URL_SAFE_NO_PAD.encode(public.n().to_bytes_be())
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The current key (signs) and the previous one (still published, still verifies).
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: SigningKey,
    previous: Option<SigningKey>,
}

impl KeyRing {
    pub fn new(current: SigningKey, previous: Option<SigningKey>) -> Self {
        KeyRing { current, previous }
    }

    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    pub fn previous(&self) -> Option<&SigningKey> {
        self.previous.as_ref()
    }

    /// The new key signs from now on; the current one stays published as the
    /// previous; the previous one is dropped (tokens it signed stop verifying,
    /// so rotate less often than the token lifetime).
    pub fn rotate(&mut self, new: SigningKey) {
        let old = std::mem::replace(&mut self.current, new);
        self.previous = Some(old);
    }

    pub fn jwks(&self) -> Value {
        let mut keys = vec![self.current.jwk()];
        if let Some(p) = &self.previous {
            keys.push(p.jwk());
        }
        json!({ "keys": keys })
    }

    /// An RS256 JWT with `kid` and `typ: at+jwt` in the header and exactly these claims.
    pub fn sign(&self, claims: Map<String, Value>) -> Result<String, String> {
        let header = Header::empty()
            .with_key_id(self.current.kid.clone())
            .with_token_type(TOKEN_TYPE);
        Rsa::rs256()
            .token(&header, &Claims::new(claims), &self.current.private)
            .map_err(|e| format!("signing: {e}"))
    }

    /// The claims of a JWT signed by one of our published keys (signature only:
    /// the caller checks times and revocation). `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Map<String, Value>> {
        let untrusted = UntrustedToken::new(token).ok()?;
        if untrusted.algorithm() != "RS256" {
            return None;
        }
        let kid = untrusted.header().key_id.as_deref()?;
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.kid == kid)?;
        Rsa::rs256()
            .validator::<Map<String, Value>>(&key.public)
            .validate(&untrusted)
            .ok()?;
        // Our claims are plain JSON numbers: read them all as one map.
        let claims = untrusted
            .deserialize_claims_unchecked::<Map<String, Value>>()
            .ok()?;
        let mut all = claims.custom;
        for (name, t) in [
            ("exp", claims.expiration),
            ("nbf", claims.not_before),
            ("iat", claims.issued_at),
        ] {
            if let Some(t) = t {
                all.insert(name.into(), json!(t.timestamp()));
            }
        }
        Some(all)
    }
}
