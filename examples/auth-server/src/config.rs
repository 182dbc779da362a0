//! The clients / users / scopes file (`--clients FILE`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Default access-token lifetime.
pub const DEFAULT_TTL_SECONDS: u64 = 600;
/// Revocation entries are kept this long after the revoked token's expiry by
/// default: a full revocation list replaces what the filter held, so an entry
/// must outlive the token by at least the filter's clock skew (60 s default).
pub const DEFAULT_REVOCATION_RETENTION_SECONDS: u64 = 120;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Free text, e.g. the "DEMO ONLY" warning.
    #[serde(rename = "_comment", default)]
    pub comment: Option<Value>,
    /// `iss` of every token; base of the URLs in the discovery document.
    pub issuer: String,
    #[serde(default = "default_ttl")]
    pub access_token_ttl_seconds: u64,
    #[serde(default = "default_retention")]
    pub revocation_retention_seconds: u64,
    pub clients: Vec<ClientConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

fn default_ttl() -> u64 {
    DEFAULT_TTL_SECONDS
}
fn default_retention() -> u64 {
    DEFAULT_REVOCATION_RETENTION_SECONDS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
    Password,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFormat {
    #[default]
    Jwt,
    Opaque,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    #[serde(rename = "_comment", default)]
    pub comment: Option<Value>,
    pub client_id: String,
    /// Plain secret (demo files only).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Hex SHA-256 of the secret, for files that should not hold it.
    #[serde(default)]
    pub client_secret_sha256: Option<String>,
    pub grant_types: Vec<GrantType>,
    /// Scopes this client may obtain (for the password grant: intersected with the user's).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences this client may obtain tokens for. Default: the service
    /// prefixes of its scopes (`svc-a` for `svc-a:orders:read`).
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// `roles` claim of its client_credentials tokens.
    #[serde(default)]
    pub roles: Vec<String>,
    /// `sub` of its client_credentials tokens (default: the client_id).
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub token_format: TokenFormat,
    #[serde(default)]
    pub access_token_ttl_seconds: Option<u64>,
    /// May call `/oauth/introspect` (resource servers, sidecars).
    #[serde(default)]
    pub may_introspect: bool,
    /// May call `/admin/*` (key rotation).
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    #[serde(rename = "_comment", default)]
    pub comment: Option<Value>,
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_sha256: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Extra claims copied into the user's tokens (e.g. `{"tenant": "acme"}`).
    #[serde(default)]
    pub claims: Map<String, Value>,
}

/// A secret as configured: its SHA-256, compared in constant time.
#[derive(Debug, Clone)]
pub struct Secret([u8; 32]);

impl Secret {
    /// The digest of a plain secret.
    pub fn of(plain: &str) -> Self {
        Secret(Sha256::digest(plain.as_bytes()).into())
    }

    fn from_config(
        plain: Option<&str>,
        sha256_hex: Option<&str>,
        what: &str,
    ) -> Result<Self, String> {
        match (plain, sha256_hex) {
            (Some(p), None) => {
                if p.is_empty() {
                    return Err(format!("{what}: empty secret"));
                }
                Ok(Secret(Sha256::digest(p.as_bytes()).into()))
            }
            (None, Some(h)) => {
                let bytes =
                    hex_decode(h).ok_or_else(|| format!("{what}: sha256 must be 64 hex digits"))?;
                let arr: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| format!("{what}: sha256 must be 64 hex digits"))?;
                Ok(Secret(arr))
            }
            (Some(_), Some(_)) => Err(format!("{what}: give the secret or its sha256, not both")),
            (None, None) => Err(format!("{what}: a secret (or its sha256) is required")),
        }
    }

    /// Constant-time comparison of the digests.
    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: Secret,
    pub grant_types: Vec<GrantType>,
    pub scopes: BTreeSet<String>,
    pub audiences: BTreeSet<String>,
    pub roles: Vec<String>,
    pub subject: String,
    pub token_format: TokenFormat,
    pub ttl_seconds: u64,
    pub may_introspect: bool,
    pub admin: bool,
}

#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub password: Secret,
    pub scopes: BTreeSet<String>,
    pub roles: Vec<String>,
    pub claims: Map<String, Value>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Registry {
    pub issuer: String,
    pub revocation_retention_seconds: u64,
    pub clients: BTreeMap<String, Client>,
    pub users: BTreeMap<String, User>,
    /// The longest access-token lifetime of any client: how long a "log out
    /// everywhere" entry must live.
    pub max_ttl_seconds: u64,
}

/// The service prefix of a scope: `svc-a` for `svc-a:orders:read`; `None` for `openid`.
pub fn scope_service(scope: &str) -> Option<&str> {
    scope
        .split_once(':')
        .map(|(svc, _)| svc)
        .filter(|s| !s.is_empty())
}

/// RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
pub fn valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

impl Registry {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg: ServerConfig =
            serde::Deserialize::deserialize(de).map_err(|e| format!("clients file: {e}"))?;
        Self::from_config(cfg)
    }

    pub fn from_config(cfg: ServerConfig) -> Result<Self, String> {
        if cfg.issuer.is_empty() {
            return Err("issuer: must not be empty".into());
        }
        if cfg.access_token_ttl_seconds == 0 || cfg.access_token_ttl_seconds > 86_400 {
            return Err("access_token_ttl_seconds: must be 1..86400".into());
        }
        let mut clients = BTreeMap::new();
        let mut max_ttl = cfg.access_token_ttl_seconds;
        for (i, c) in cfg.clients.into_iter().enumerate() {
            let at = format!("clients[{i}] ({})", c.client_id);
            if c.client_id.is_empty() || c.client_id.contains(':') {
                return Err(format!("{at}: client_id must be non-empty and without ':'"));
            }
            let secret = Secret::from_config(
                c.client_secret.as_deref(),
                c.client_secret_sha256.as_deref(),
                &at,
            )?;
            for s in &c.scopes {
                if !valid_scope_token(s) {
                    return Err(format!("{at}: invalid scope {s:?}"));
                }
            }
            let scopes: BTreeSet<String> = c.scopes.into_iter().collect();
            let audiences: BTreeSet<String> = match c.audiences {
                Some(a) => a.into_iter().collect(),
                None => scopes
                    .iter()
                    .filter_map(|s| scope_service(s))
                    .map(str::to_owned)
                    .collect(),
            };
            if c.grant_types.is_empty() {
                return Err(format!("{at}: grant_types must not be empty"));
            }
            let ttl = c
                .access_token_ttl_seconds
                .unwrap_or(cfg.access_token_ttl_seconds);
            if ttl == 0 || ttl > 86_400 {
                return Err(format!("{at}: access_token_ttl_seconds must be 1..86400"));
            }
            max_ttl = max_ttl.max(ttl);
            let client = Client {
                subject: c.subject.unwrap_or_else(|| c.client_id.clone()),
                id: c.client_id.clone(),
                secret,
                grant_types: c.grant_types,
                scopes,
                audiences,
                roles: c.roles,
                token_format: c.token_format,
                ttl_seconds: ttl,
                may_introspect: c.may_introspect,
                admin: c.admin,
            };
            if clients.insert(c.client_id, client).is_some() {
                return Err(format!("{at}: duplicate client_id"));
            }
        }
        let mut users = BTreeMap::new();
        for (i, u) in cfg.users.into_iter().enumerate() {
            let at = format!("users[{i}] ({})", u.username);
            if u.username.is_empty() {
                return Err(format!("{at}: username must not be empty"));
            }
            let password =
                Secret::from_config(u.password.as_deref(), u.password_sha256.as_deref(), &at)?;
            for s in &u.scopes {
                if !valid_scope_token(s) {
                    return Err(format!("{at}: invalid scope {s:?}"));
                }
            }
            for reserved in [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "jti",
                "scope",
                "client_id",
                "roles",
            ] {
                if u.claims.contains_key(reserved) {
                    return Err(format!("{at}: claims must not set {reserved:?}"));
                }
            }
            let user = User {
                username: u.username.clone(),
                password,
                scopes: u.scopes.into_iter().collect(),
                roles: u.roles,
                claims: u.claims,
            };
            if users.insert(u.username, user).is_some() {
                return Err(format!("{at}: duplicate username"));
            }
        }
        Ok(Registry {
            issuer: cfg.issuer,
            revocation_retention_seconds: cfg.revocation_retention_seconds,
            clients,
            users,
            max_ttl_seconds: max_ttl,
        })
    }
}
