//! The one identity model every authentication method produces.

use serde_json::{Map, Value};

/// Who is calling, as established by a verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The configured provider's name.
    pub provider: String,
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`, if any.
    pub subject: Option<String>,
    /// Granted scopes, in token order, without duplicates.
    pub scopes: Vec<String>,
    /// Every claim of the token's payload (for forwarding and claim conditions).
    pub claims: Map<String, Value>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Scopes from the space-delimited `scope` claim (RFC 8693 §4.2), or failing
/// that from an `scp` array of strings. Duplicates are dropped; order kept.
pub fn scopes_from_claims(claims: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    };
    match claims.get("scope") {
        Some(Value::String(s)) => s.split(' ').for_each(&mut push),
        _ => {
            if let Some(Value::Array(items)) = claims.get("scp") {
                items.iter().filter_map(Value::as_str).for_each(&mut push);
            }
        }
    }
    out
}
