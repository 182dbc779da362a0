//! The JSON the operator writes, as serde types.
//!
//! These types are deliberately "raw": they accept what JSON can express and
//! reject only unknown fields and wrong JSON types, with the JSON path of the
//! problem. Everything semantic (is this an algorithm we know, is this key
//! usable, is this requirement well-formed) is checked by [`crate::compile`],
//! which turns a [`Config`] into a [`crate::Policy`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The whole plugin configuration (Envoy: a `StringValue` holding this JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `realm` in `WWW-Authenticate` replies. Default: `"scopegate"`.
    #[serde(default)]
    pub realm: Option<String>,
    /// Token issuers this service trusts. At least one is required unless every rule is public.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// The route table: first match wins; a request no rule matches is denied.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One trusted issuer and its keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name used in logs, metrics and the principal. Required, unique.
    pub name: String,
    /// Exact `iss` value of this provider's tokens. Required, unique across providers.
    pub issuer: String,
    /// Accepted `aud` values (any of). Required unless `audience_check` is `false`.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Set to `false` to accept tokens without checking `aud` (not recommended). Default `true`.
    #[serde(default)]
    pub audience_check: Option<bool>,
    /// JWS algorithms accepted from this provider, e.g. `["RS256"]`. Default: every
    /// algorithm its keys support. A key is only ever used with algorithms of its own type.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Allowed clock difference for `exp`, `nbf` and `iat`, in seconds. Default 60.
    #[serde(default)]
    pub clock_skew_seconds: Option<u64>,
    /// Whether a token without `exp` is refused. Default `true`.
    #[serde(default)]
    pub require_exp: Option<bool>,
    /// Largest token accepted, in bytes. Default 8192.
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    /// Inline JWKS: a JSON object `{"keys": [...]}` or a string holding one.
    #[serde(default)]
    pub jwks: Option<Value>,
    /// Claims copied to upstream request headers: claim name -> header name.
    /// Inbound copies of these headers are always removed first.
    #[serde(default)]
    pub claims_to_headers: BTreeMap<String, String>,
    /// Keep the token where it was found when forwarding upstream. Default
    /// `false`: the token is removed (header dropped, query parameter or
    /// cookie cut out).
    #[serde(default)]
    pub forward_token: Option<bool>,
    /// Where this provider's tokens are looked for. Default:
    /// `[{"header": "authorization", "prefix": "Bearer "}]`.
    #[serde(default)]
    pub from: Option<Vec<TokenSourceConfig>>,
    /// Claims that must be present with exactly these JSON values.
    #[serde(default)]
    pub required_claims: BTreeMap<String, Value>,
    /// Refuse tokens whose `exp - iat` exceeds this many seconds (then `iat` is required).
    #[serde(default)]
    pub max_lifetime_seconds: Option<u64>,
    /// Require this JOSE `typ` header, e.g. `"at+jwt"` for RFC 9068 access
    /// tokens (`application/at+jwt` is accepted too; case-insensitive).
    #[serde(default)]
    pub require_typ: Option<String>,
}

/// One token location: exactly one of `header`, `query`, `cookie`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSourceConfig {
    /// Header name (case-insensitive).
    #[serde(default)]
    pub header: Option<String>,
    /// With `header`: the scheme prefix, e.g. `"Bearer "` (compared
    /// case-insensitively). Default for `authorization`: `"Bearer "`; for other
    /// headers: none (the whole value is the token).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Query parameter name.
    #[serde(default)]
    pub query: Option<String>,
    /// Cookie name.
    #[serde(default)]
    pub cookie: Option<String>,
}

/// One route rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name used in replies, logs and metrics. Required, unique.
    pub name: String,
    /// Which requests this rule covers.
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
    /// What the request needs: `"public"`, `"authenticated"`, or a scope
    /// expression `{"all_of": [...]}` / `{"any_of": [...]}` whose items are scope
    /// strings or nested expressions. Checked by the compiler.
    pub require: Value,
}

/// Request matching. Exactly one of `exact` and `prefix` is required.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// The normalised path equals this.
    #[serde(default)]
    pub exact: Option<String>,
    /// The normalised path is this or below it, by whole segments
    /// (`/orders` matches `/orders` and `/orders/1`, not `/ordersx`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// HTTP methods (upper case). Default: any method.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}
