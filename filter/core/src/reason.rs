//! Stable, machine-readable reasons. They appear verbatim in reply bodies, logs
//! and metric names, so they never change once released.

use core::fmt;

/// Why a request was allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Allowed: the rule's requirement was met.
    Allowed,
    /// Allowed: the matched rule is public.
    Public,
    /// No token where the rule needs one.
    TokenMissing,
    /// The token is larger than the configured bound.
    TokenTooLarge,
    /// The token is not a well-formed compact JWS.
    Malformed,
    /// The token's `alg` is `none`, unknown, or not allowed for its provider.
    AlgorithmNotAllowed,
    /// The token carries a header scopegate never trusts (`jku`, `x5u`, `jwk`, `x5c`) or a `crit` it does not understand.
    HeaderNotAllowed,
    /// No provider is configured for the token's `iss`.
    IssuerNotAllowed,
    /// No configured key matches the token's `kid` and algorithm.
    UnknownKid,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is in the past (beyond the clock skew).
    TokenExpired,
    /// `nbf` or `iat` is in the future (beyond the clock skew).
    TokenNotYetValid,
    /// A required claim is missing or has the wrong type (e.g. no `exp`).
    ClaimInvalid,
    /// `aud` does not name one of the provider's audiences.
    AudienceNotAllowed,
    /// The principal lacks the scopes the rule needs.
    InsufficientScope,
    /// Allowed: only the configured super-admin scope let the request pass.
    SuperAdmin,
    /// Allowed: a CORS preflight, which bypasses the rules.
    CorsPreflight,
    /// The rule accepts only tokens of other providers.
    ProviderNotAllowed,
    /// A claim condition of the rule does not hold.
    ClaimMismatch,
    /// No rule matched the request (deny by default).
    NoMatchingRule,
    /// Several different tokens were presented.
    MultipleTokens,
    /// The request path cannot be normalised safely (encoded `/`, backslash, bad escape).
    InvalidPath,
    /// The provider's remote JWKS could not be had (never fetched, fetch failing).
    JwksUnavailable,
    /// An API key matching no configured key.
    ApiKeyInvalid,
    /// A configured API key past its `expires_at`.
    ApiKeyExpired,
    /// The token was revoked (its `jti`, or its subject before its `iat`).
    TokenRevoked,
    /// The provider's revocation list is stale and the rule fails closed.
    RevocationUnavailable,
    /// The auth server's introspection says the (opaque) token is not active.
    TokenInactive,
    /// The token needs introspection and the endpoint gave no usable answer.
    IntrospectionUnavailable,
}

impl Reason {
    /// Every reason, for defining one metric each.
    pub const ALL: [Reason; 29] = [
        Reason::Allowed,
        Reason::Public,
        Reason::TokenMissing,
        Reason::TokenTooLarge,
        Reason::Malformed,
        Reason::AlgorithmNotAllowed,
        Reason::HeaderNotAllowed,
        Reason::IssuerNotAllowed,
        Reason::UnknownKid,
        Reason::BadSignature,
        Reason::TokenExpired,
        Reason::TokenNotYetValid,
        Reason::ClaimInvalid,
        Reason::AudienceNotAllowed,
        Reason::InsufficientScope,
        Reason::SuperAdmin,
        Reason::CorsPreflight,
        Reason::ProviderNotAllowed,
        Reason::ClaimMismatch,
        Reason::NoMatchingRule,
        Reason::MultipleTokens,
        Reason::InvalidPath,
        Reason::JwksUnavailable,
        Reason::ApiKeyInvalid,
        Reason::ApiKeyExpired,
        Reason::TokenRevoked,
        Reason::RevocationUnavailable,
        Reason::TokenInactive,
        Reason::IntrospectionUnavailable,
    ];

    /// The stable string for replies, logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::Public => "public",
            Reason::TokenMissing => "token_missing",
            Reason::TokenTooLarge => "token_too_large",
            Reason::Malformed => "malformed",
            Reason::AlgorithmNotAllowed => "algorithm_not_allowed",
            Reason::HeaderNotAllowed => "header_not_allowed",
            Reason::IssuerNotAllowed => "issuer_not_allowed",
            Reason::UnknownKid => "unknown_kid",
            Reason::BadSignature => "bad_signature",
            Reason::TokenExpired => "token_expired",
            Reason::TokenNotYetValid => "token_not_yet_valid",
            Reason::ClaimInvalid => "claim_invalid",
            Reason::AudienceNotAllowed => "audience_not_allowed",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::SuperAdmin => "super_admin",
            Reason::CorsPreflight => "cors_preflight",
            Reason::ProviderNotAllowed => "provider_not_allowed",
            Reason::ClaimMismatch => "claim_mismatch",
            Reason::NoMatchingRule => "no_matching_rule",
            Reason::MultipleTokens => "multiple_tokens",
            Reason::InvalidPath => "invalid_path",
            Reason::JwksUnavailable => "jwks_unavailable",
            Reason::ApiKeyInvalid => "api_key_invalid",
            Reason::ApiKeyExpired => "api_key_expired",
            Reason::TokenRevoked => "token_revoked",
            Reason::RevocationUnavailable => "revocation_unavailable",
            Reason::TokenInactive => "token_inactive",
            Reason::IntrospectionUnavailable => "introspection_unavailable",
        }
    }

    /// A short human description, safe for an RFC 6750 `error_description`
    /// (printable ASCII without `"` or `\`).
    pub const fn description(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::Public => "public route",
            Reason::TokenMissing => "no access token was presented",
            Reason::TokenTooLarge => "the access token is too large",
            Reason::Malformed => "the access token is malformed",
            Reason::AlgorithmNotAllowed => "the token's signing algorithm is not allowed",
            Reason::HeaderNotAllowed => "the token header carries a field that is not accepted",
            Reason::IssuerNotAllowed => "the token issuer is not trusted",
            Reason::UnknownKid => "no trusted key matches the token",
            Reason::BadSignature => "the token signature is invalid",
            Reason::TokenExpired => "the access token expired",
            Reason::TokenNotYetValid => "the access token is not valid yet",
            Reason::ClaimInvalid => "a required claim is missing or invalid",
            Reason::AudienceNotAllowed => "the token is not meant for this service",
            Reason::InsufficientScope => "the access token lacks a required scope",
            Reason::SuperAdmin => "allowed by the super-admin scope",
            Reason::CorsPreflight => "CORS preflight",
            Reason::ProviderNotAllowed => "tokens of this issuer are not accepted here",
            Reason::ClaimMismatch => "the access token does not meet a condition of this route",
            Reason::NoMatchingRule => "no rule allows this request",
            Reason::MultipleTokens => "more than one access token was presented",
            Reason::InvalidPath => "the request path is not acceptable",
            Reason::JwksUnavailable => "the keys to verify the token are not available",
            Reason::ApiKeyInvalid => "the API key is not valid",
            Reason::ApiKeyExpired => "the API key expired",
            Reason::TokenRevoked => "the access token was revoked",
            Reason::RevocationUnavailable => "the token revocation list is not available",
            Reason::TokenInactive => "the access token is not active",
            Reason::IntrospectionUnavailable => "the access token cannot be checked right now",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
