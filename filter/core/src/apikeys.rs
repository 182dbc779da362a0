//! API keys for bots: a key presented in a header becomes the same kind of
//! [`Principal`] a JWT does, and meets the same rules.
//!
//! Keys are configured only as SHA-256 digests (never the key itself), each
//! with a name (the principal's subject), scopes, local roles (expanded at
//! configure time) and an optional expiry. A presented key is hashed and
//! compared with every configured digest in constant time, with no early
//! exit, so the time taken says nothing about which digest came close. Keys
//! never appear in logs: details name the key's configured name only.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::principal::Principal;
use crate::reason::Reason;
use crate::verify::Failure;

/// Default provider name of API-key principals (rules may restrict to it).
pub const DEFAULT_NAME: &str = "api-keys";

/// One configured key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub(crate) name: String,
    pub(crate) digest: [u8; 32],
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: Option<i64>,
}

/// The compiled `api_keys` section.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    pub(crate) name: String,
    /// Indices into the policy's token sources.
    pub(crate) sources: Vec<usize>,
    pub(crate) keys: Vec<ApiKey>,
}

impl ApiKeys {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a token found at `sources` is an API key.
    pub(crate) fn claims_sources(&self, sources: &[usize]) -> bool {
        sources.iter().any(|s| self.sources.contains(s))
    }

    /// The principal of a presented key at time `now`.
    pub(crate) fn verify(&self, presented: &str, now: i64) -> Result<Principal, Failure> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&ApiKey> = None;
        for key in &self.keys {
            if constant_time_eq(&key.digest, &digest) {
                found = Some(key);
            }
        }
        let Some(key) = found else {
            return Err(Failure {
                reason: Reason::ApiKeyInvalid,
                detail: "the presented API key matches no configured key".into(),
                provider: None,
            });
        };
        if key.expires_at.is_some_and(|t| now >= t) {
            return Err(Failure {
                reason: Reason::ApiKeyExpired,
                detail: format!("API key {:?} expired at {:?}", key.name, key.expires_at),
                provider: None,
            });
        }
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::String(key.name.clone()));
        claims.insert("scope".into(), Value::String(key.scopes.join(" ")));
        Ok(Principal {
            provider: self.name.clone(),
            issuer: self.name.clone(),
            subject: Some(key.name.clone()),
            scopes: key.scopes.clone(),
            claims,
            memo: Default::default(),
        })
    }
}

/// Equality of two digests without data-dependent branches or early exit.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// Parses a 64-hex-digit SHA-256 digest.
pub(crate) fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn digests_parse_and_compare() {
        let d = parse_digest(&"ab".repeat(32)).unwrap();
        assert_eq!(d, [0xab; 32]);
        assert!(parse_digest("ab").is_none());
        assert!(parse_digest(&"zz".repeat(32)).is_none());
        assert!(constant_time_eq(&d, &[0xab; 32]));
        let mut e = d;
        e[31] ^= 1;
        assert!(!constant_time_eq(&d, &e));
    }
}
