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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// The rule for requests no rule matches. Default: none, such requests
    /// are denied (403 `no_matching_rule`).
    #[serde(default)]
    pub default_rule: Option<DefaultRuleConfig>,
    /// Where a token's scopes are: a claim path (a string, dot-separated, or
    /// an array of path segments) holding a space-delimited string or an array
    /// of strings. Default: the `scope` claim (space-delimited), or if absent `scp`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("anyOf" = [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}])))]
    pub scope_claim: Option<Value>,
    /// Where a token's role names are (claim path as for `scope_claim`).
    /// Default `"roles"`. Only read when `roles` is not empty.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("anyOf" = [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}])))]
    pub roles_claim: Option<Value>,
    /// Local roles: role name -> the scopes it grants. A token whose roles
    /// claim names a role gets its scopes. Default: none.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// A scope that passes every non-public rule of this service (bootstrap
    /// of the first admin). Default: none.
    #[serde(default)]
    pub super_admin_scope: Option<String>,
    /// CORS preflight requests (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`): `"bypass"` (default) lets them through
    /// without a token; `"enforce"` puts them through the route table.
    #[serde(default)]
    pub cors_preflight: Option<CorsPreflightConfig>,
    /// Decide, log and count, but let every request through, with the would-be
    /// decision in `x-scopegate-dry-run` upstream. Default `false`.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// The service prefix scopes are expected to carry (`svc-a` for
    /// `svc-a:orders:read`); scopes without it are reported as warnings.
    #[serde(default)]
    pub scope_prefix: Option<String>,
    /// Entries of the verified-token cache per worker (0 disables it). Default 4096.
    #[serde(default)]
    pub token_cache_entries: Option<usize>,
    /// API keys for bots, checked against SHA-256 digests.
    #[serde(default)]
    pub api_keys: Option<ApiKeysConfig>,
}

/// The `api_keys` section.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// Provider name of API-key principals (rules' `providers` may name it). Default `api-keys`.
    #[serde(default)]
    pub name: Option<String>,
    /// Where keys are presented. Default: `[{"header": "x-api-key"}]`; e.g.
    /// `{"header": "authorization", "prefix": "ApiKey "}` also works.
    #[serde(default)]
    pub from: Option<Vec<TokenSourceConfig>>,
    /// The keys.
    pub keys: Vec<ApiKeyConfig>,
}

/// One API key.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The principal's subject (a bot's name). Unique.
    pub name: String,
    /// SHA-256 of the key, 64 hex digits (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// Scopes granted to the key.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Local roles (from the top-level `roles`) granted to the key.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Unix time from which the key is refused.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// See [`Config::cors_preflight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CorsPreflightConfig {
    Bypass,
    Enforce,
}

/// One trusted issuer and its keys.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    #[cfg_attr(feature = "schema", schemars(extend("anyOf" = [{"type": "object", "properties": {"keys": {"type": "array", "items": {"type": "object"}}}}, {"type": "string"}, {"type": "null"}])))]
    pub jwks: Option<Value>,
    /// Public keys in PEM (SubjectPublicKeyInfo: RSA, P-256/384/521, Ed25519).
    #[serde(default)]
    pub pem_keys: Vec<PemKeyConfig>,
    /// HMAC secrets (base64 or base64url), at least 32 bytes.
    #[serde(default)]
    pub hmac_secrets: Vec<HmacSecretConfig>,
    /// A JWKS fetched from the auth server through an Envoy cluster, cached and refreshed.
    #[serde(default)]
    pub remote_jwks: Option<RemoteJwksConfig>,
    /// Claims copied to upstream request headers: claim name -> header name.
    /// Inbound copies of these headers are always removed first.
    #[serde(default)]
    pub claims_to_headers: BTreeMap<String, String>,
    /// Header to carry the verified token's payload, base64url as in the
    /// token. Inbound copies are always removed first.
    #[serde(default)]
    pub payload_header: Option<String>,
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
    /// Revoked tokens (logout): inline entries and an optional feed polled
    /// from the auth server. See `filter/CONFIG.md`, `revocation`.
    #[serde(default)]
    pub revocation: Option<RevocationConfig>,
    /// RFC 7662 token introspection through an Envoy cluster: opaque tokens
    /// found at this provider's sources (or all of them, `tokens: "all"`) are
    /// sent to the auth server. A provider with it may have no keys at all.
    #[serde(default)]
    pub introspection: Option<IntrospectionConfig>,
}

/// A provider's `revocation` section.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// Revoked token ids, always applied (same shape as the feed's `jti`).
    #[serde(default)]
    pub jti: Vec<RevokedJtiConfig>,
    /// Revoked subjects ("log out everywhere"), always applied.
    #[serde(default)]
    pub subjects: Vec<RevokedSubjectConfig>,
    /// The revocation feed, polled through an Envoy cluster (`filter/PROTOCOLS.md`).
    #[serde(default)]
    pub remote: Option<RevocationRemoteConfig>,
    /// The feed is stale when no poll succeeded (200 or 304) for this long,
    /// and before the first successful poll. Default 300.
    #[serde(default)]
    pub max_staleness_seconds: Option<u64>,
    /// What a stale feed means for this provider's tokens: `"fail_closed"`
    /// (503 `revocation_unavailable`) or `"fail_open"` (allowed, counted,
    /// logged). Default: fail open, except on `sensitive` rules, which always
    /// fail closed.
    #[serde(default)]
    pub on_stale: Option<OnStaleConfig>,
    /// Most entries held for this provider (inline and fetched). A feed update
    /// beyond it is refused. Default 100000.
    #[serde(default)]
    pub max_entries: Option<usize>,
    /// How long an entry without `exp` is kept (from first seen for a `jti`,
    /// from `revoked_before` for a subject). Default: the provider's
    /// `max_lifetime_seconds`, else 86400.
    #[serde(default)]
    pub max_token_lifetime_seconds: Option<u64>,
}

/// One revoked token id.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokedJtiConfig {
    /// The token's `jti` claim.
    pub jti: String,
    /// The revoked token's own expiry (Unix seconds): the entry is dropped after it (plus clock skew).
    #[serde(default)]
    pub exp: Option<i64>,
}

/// One revoked subject: its tokens issued before `revoked_before`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokedSubjectConfig {
    /// The tokens' `sub` claim.
    pub sub: String,
    /// Tokens with `iat` before this (Unix seconds), or without `iat`, are refused.
    pub revoked_before: i64,
    /// When the last such token expires (Unix seconds): the entry is dropped after it (plus clock skew).
    #[serde(default)]
    pub exp: Option<i64>,
}

/// Where and how often to poll the revocation feed.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RevocationRemoteConfig {
    /// The Envoy cluster that reaches the auth server. Required.
    pub cluster: String,
    /// `:authority` of the request. Required.
    pub authority: String,
    /// Path of the feed. Default `/revocations`.
    #[serde(default)]
    pub path: Option<String>,
    /// Seconds between polls. Default 10.
    #[serde(default)]
    pub poll_interval_seconds: Option<u64>,
    /// Per-poll timeout. Default 2000 ms.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// See [`RevocationConfig::on_stale`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnStaleConfig {
    FailClosed,
    FailOpen,
}

/// The `introspection` object of a provider (RFC 7662).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The Envoy cluster that reaches the auth server. Required.
    pub cluster: String,
    /// `:authority` of the request (the auth server's host name). Required.
    pub authority: String,
    /// Path of the introspection endpoint. Default `/oauth/introspect`.
    #[serde(default)]
    pub path: Option<String>,
    /// Client id for HTTP Basic authentication (with `client_secret`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Client secret for HTTP Basic authentication (with `client_id`). Never logged.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Instead of Basic: sent as `Authorization: Bearer <bearer_token>`. Never logged.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Which tokens are introspected: `"opaque"` (default): those that are not
    /// JWTs (three base64url parts); `"all"`: every token at this provider's sources.
    #[serde(default)]
    pub tokens: Option<IntrospectTokensConfig>,
    /// Per-call timeout. Default 2000 ms.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Longest an active answer is reused, capped by the token's `exp`. Default 300 s.
    #[serde(default)]
    pub cache_ttl_seconds: Option<u64>,
    /// How long an inactive answer is reused. Default 10 s (0: not cached).
    #[serde(default)]
    pub negative_cache_ttl_seconds: Option<u64>,
    /// Answers kept per worker (0 disables caching, local and shared). Default 4096.
    #[serde(default)]
    pub cache_entries: Option<usize>,
    /// Largest reply body accepted. Default 65536 bytes.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
}

/// See [`IntrospectionConfig::tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum IntrospectTokensConfig {
    Opaque,
    All,
}

/// A PEM public key.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PemKeyConfig {
    /// Matched against the token's `kid`; without it the key is tried for tokens without `kid` too.
    #[serde(default)]
    pub kid: Option<String>,
    /// `-----BEGIN PUBLIC KEY----- ...`
    pub pem: String,
    /// Restrict the key to this algorithm (must fit its type).
    #[serde(default)]
    pub alg: Option<String>,
}

/// An HMAC secret.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HmacSecretConfig {
    #[serde(default)]
    pub kid: Option<String>,
    /// The secret, base64 (standard or URL-safe, padding optional).
    pub secret: String,
    #[serde(default)]
    pub alg: Option<String>,
}

/// Where and how to fetch the provider's JWKS.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RemoteJwksConfig {
    /// The Envoy cluster that reaches the auth server. Required.
    pub cluster: String,
    /// `:authority` of the request (the auth server's host name). Required.
    pub authority: String,
    /// Path of the JWKS. Default `/.well-known/jwks.json`; with `discovery`, taken from `jwks_uri`.
    #[serde(default)]
    pub path: Option<String>,
    /// Fetch OpenID Connect discovery (`/.well-known/openid-configuration`) first and use its `jwks_uri`.
    #[serde(default)]
    pub discovery: Option<bool>,
    /// Per-request timeout. Default 5000 ms.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// How long fetched keys are fresh. Default 600 s. Refreshed ahead of expiry;
    /// if a refresh fails the old keys stay in use.
    #[serde(default)]
    pub cache_duration_seconds: Option<u64>,
    /// Least time between two refetches triggered by an unknown `kid`. Default 30 s.
    #[serde(default)]
    pub min_refetch_interval_seconds: Option<u64>,
}

/// One token location: exactly one of `header`, `query`, `cookie`.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name used in replies, logs and metrics. Required, unique; letters,
    /// digits, `-` and `_`, at most 64.
    pub name: String,
    /// Which requests this rule covers.
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
    /// What the request needs: `"public"`, `"authenticated"`, or a scope
    /// expression `{"all_of": [...]}` / `{"any_of": [...]}` whose items are scope
    /// strings or nested expressions. Checked by the compiler.
    #[cfg_attr(feature = "schema", schemars(extend("anyOf" = [{"enum": ["public", "authenticated"]}, {"type": "object", "properties": {"all_of": {"type": "array", "minItems": 1, "items": {"type": ["string", "object"]}}, "any_of": {"type": "array", "minItems": 1, "items": {"type": ["string", "object"]}}}, "additionalProperties": false, "minProperties": 1, "maxProperties": 1}])))]
    pub require: Value,
    /// Only tokens of these providers (by name) are accepted. Default: any provider.
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    /// Conditions on the token's claims, all of which must hold. Default: none.
    #[serde(default)]
    pub claims: Vec<ClaimConditionConfig>,
    /// Decide and report, but do not enforce, this rule. Default `false`.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// A sensitive rule never lets a token through on a stale revocation
    /// list: 503 `revocation_unavailable`, whatever `on_stale` says. Default `false`.
    #[serde(default)]
    pub sensitive: Option<bool>,
}

/// The rule applied when no rule matches: a rule without `match`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DefaultRuleConfig {
    /// Default `"default"`.
    #[serde(default)]
    pub name: Option<String>,
    #[cfg_attr(feature = "schema", schemars(extend("anyOf" = [{"enum": ["public", "authenticated"]}, {"type": "object", "properties": {"all_of": {"type": "array", "minItems": 1, "items": {"type": ["string", "object"]}}, "any_of": {"type": "array", "minItems": 1, "items": {"type": ["string", "object"]}}}, "additionalProperties": false, "minProperties": 1, "maxProperties": 1}])))]
    pub require: Value,
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    #[serde(default)]
    pub claims: Vec<ClaimConditionConfig>,
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// As a rule's `sensitive`. Default `false`.
    #[serde(default)]
    pub sensitive: Option<bool>,
}

/// One claim condition: `claim` and exactly one of `equals`, `contains`, `one_of`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimConditionConfig {
    /// Claim path: `"tenant"`, `"org.id"` (dot-separated), or
    /// `["https://example.com/roles"]` (segments, for names with dots).
    #[cfg_attr(feature = "schema", schemars(extend("anyOf" = [{"type": "string"}, {"type": "array", "items": {"type": "string"}}])))]
    pub claim: Value,
    /// The claim equals this JSON value.
    #[serde(default)]
    pub equals: Option<Value>,
    /// The claim is an array holding this value (or a string equal to it).
    #[serde(default)]
    pub contains: Option<Value>,
    /// The claim equals one of these values.
    #[serde(default)]
    pub one_of: Option<Vec<Value>>,
}

/// Request matching. Exactly one of `exact`, `prefix`, `template` and `regex`
/// is required; `methods`, `hosts` and `route_names` narrow it further.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// The normalised path equals this.
    #[serde(default)]
    pub exact: Option<String>,
    /// The normalised path is this or below it, by whole segments
    /// (`/orders` matches `/orders` and `/orders/1`, not `/ordersx`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// A path template: `/orders/{id}` (`{name}` is one segment),
    /// `/files/{*rest}` (one or more trailing segments).
    #[serde(default)]
    pub template: Option<String>,
    /// A regular expression (RE2 syntax) the whole normalised path must match.
    #[serde(default)]
    pub regex: Option<String>,
    /// HTTP methods (upper case). Default: any method.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// `:authority` host names (`api.example.com`, `*.example.com`, optional
    /// `:port`). Default: any host.
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// Envoy route names (`xds.route_name`). Default: any route.
    #[serde(default)]
    pub route_names: Option<Vec<String>>,
}
