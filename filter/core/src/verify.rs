//! Token verification: untrusted text in, a [`Principal`] or a [`Failure`] out.
//!
//! The order matters and is fixed: size and shape first (cheap, before any
//! parsing), then the header (refusing `none`, untrusted key references and
//! unknown `crit`), then the issuer chooses the provider, the provider's
//! allowed algorithms and the key's own type choose the key, jwt-compact checks
//! the signature, and only then are the claims trusted and checked against the
//! caller's clock.

use jwt_compact::alg::{Ed25519, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key};
use jwt_compact::{AlgorithmExt, Token, UntrustedToken, ValidationError};
use serde_json::{Map, Value};

use crate::ecdsa_ext::{FastEs256, FastEs384, FastEs512};
use crate::keys::{Alg, AlgSet, Key, KeyMaterial};
use crate::principal::{Principal, scopes_from_claims};
use crate::reason::Reason;
use crate::rsa_fast::FastRsa;

type Obj = Map<String, Value>;

/// A compiled, validated token provider (issuer).
#[derive(Debug, Clone)]
pub struct Provider {
    pub(crate) name: String,
    pub(crate) issuer: String,
    /// `None`: audience check disabled by the operator.
    pub(crate) audiences: Option<Vec<String>>,
    pub(crate) algorithms: AlgSet,
    pub(crate) clock_skew_seconds: i64,
    pub(crate) require_exp: bool,
    pub(crate) max_token_bytes: usize,
    pub(crate) keys: Vec<Key>,
    /// (claim name or dotted path, header name), header names lower-case.
    pub(crate) claims_to_headers: Vec<(String, String)>,
    /// Header carrying the token's payload segment (base64url of its JSON).
    pub(crate) payload_header: Option<String>,
    pub(crate) forward_token: bool,
    /// Indices into the policy's token sources.
    pub(crate) sources: Vec<usize>,
    /// (claim, exact JSON value).
    pub(crate) required_claims: Vec<(String, Value)>,
    pub(crate) max_lifetime_seconds: Option<i64>,
    pub(crate) require_typ: Option<String>,
    /// Keys fetched at run time (see [`crate::jwks`]), in addition to `keys`.
    pub(crate) remote: Option<crate::jwks::RemoteJwks>,
    /// Revoked tokens (see [`crate::revocation`]).
    pub(crate) revocation: Option<crate::revocation::Revocation>,
    /// RFC 7662 introspection (see [`crate::introspection`]).
    pub(crate) introspection: Option<crate::introspection::Introspection>,
}

impl Provider {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }
    pub fn algorithms(&self) -> AlgSet {
        self.algorithms
    }
    pub fn forward_token(&self) -> bool {
        self.forward_token
    }
    pub fn claims_to_headers(&self) -> &[(String, String)] {
        &self.claims_to_headers
    }
    pub fn remote(&self) -> Option<&crate::jwks::RemoteJwks> {
        self.remote.as_ref()
    }
    pub fn revocation(&self) -> Option<&crate::revocation::Revocation> {
        self.revocation.as_ref()
    }
    pub fn introspection(&self) -> Option<&crate::introspection::Introspection> {
        self.introspection.as_ref()
    }
}

/// Keys fetched at run time, by provider index (the shim's JWKS cache).
pub trait KeySource {
    /// The fetched keys of provider `index`; `None` if none have arrived yet.
    fn fetched(&self, index: usize) -> Option<&[Key]>;
    /// A number that changes whenever provider `index`'s fetched keys change
    /// (invalidates cached verifications). Static keys never change.
    fn epoch(&self, _index: usize) -> u64 {
        0
    }
    /// The verified-token cache to use, if any.
    fn token_cache(&self) -> Option<&core::cell::RefCell<crate::cache::TokenCache>> {
        None
    }
    /// Provider `index`'s fetched revocation list and when it was last
    /// polled successfully; `None`: nothing fetched (a provider with a
    /// revocation feed is then treated as never polled).
    fn revocations(&self, _index: usize) -> Option<&crate::revocation::RevocationView> {
        None
    }
    /// The introspection answer for the token with SHA-256 `digest` from
    /// provider `index`, if one is at hand at `now` (the shim's caches, or
    /// the answer just received); `None`: the shim must call out.
    fn introspected(
        &self,
        _index: usize,
        _digest: &crate::introspection::Digest,
        _now: i64,
    ) -> Option<crate::introspection::Introspected> {
        None
    }
}

/// No fetched keys at all: static keys only.
pub struct StaticKeysOnly;

impl KeySource for StaticKeysOnly {
    fn fetched(&self, _index: usize) -> Option<&[Key]> {
        None
    }
}

/// Why a token was refused: a stable reason and a detail for debug logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
    /// The provider chosen by the token's `iss`, once known.
    pub provider: Option<usize>,
}

/// The provider's `required_claims` and `audiences` against a principal's
/// claims: shared by JWTs and introspection answers.
pub(crate) fn check_claims(
    provider: &Provider,
    claims: &Map<String, Value>,
) -> Result<(), (Reason, String)> {
    for (claim, want) in &provider.required_claims {
        if claims.get(claim) != Some(want) {
            return Err((
                Reason::ClaimInvalid,
                format!(
                    "claim {claim:?} is {:?}, required {want}",
                    claims.get(claim)
                ),
            ));
        }
    }
    if let Some(audiences) = &provider.audiences {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => audiences.iter().any(|x| x == a),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .any(|a| audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !ok {
            return Err((
                Reason::AudienceNotAllowed,
                format!("aud {:?} names none of {audiences:?}", claims.get("aud")),
            ));
        }
    }
    Ok(())
}

fn fail<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        reason,
        detail: detail.into(),
        provider: None,
    })
}

/// Header fields that would let the token choose its own key, or that carry
/// semantics we do not implement. Keys come only from configuration.
const REFUSED_HEADERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

/// Verifies `token` against the providers at time `now` (Unix seconds).
/// `max_token_bytes` bounds the raw token before anything is parsed; only
/// providers for which `accepts` is true (those that look for tokens where
/// this one was found) are considered.
pub fn verify(
    providers: &[Provider],
    accepts: impl Fn(&Provider) -> bool,
    token: &str,
    now: i64,
    max_token_bytes: usize,
) -> Result<Principal, Failure> {
    verify_with_keys(
        providers,
        accepts,
        token,
        now,
        max_token_bytes,
        &StaticKeysOnly,
    )
}

/// [`verify`], with run-time fetched keys from `fetched`.
pub fn verify_with_keys(
    providers: &[Provider],
    accepts: impl Fn(&Provider) -> bool,
    token: &str,
    now: i64,
    max_token_bytes: usize,
    fetched: &dyn KeySource,
) -> Result<Principal, Failure> {
    if token.len() > max_token_bytes {
        return fail(
            Reason::TokenTooLarge,
            format!("token of {} bytes exceeds {max_token_bytes}", token.len()),
        );
    }
    check_compact_shape(token)?;
    let untrusted = UntrustedToken::<Obj>::try_from(token).map_err(|e| Failure {
        reason: Reason::Malformed,
        detail: format!("token does not parse: {e}"),
        provider: None,
    })?;

    if !segments_unambiguous(token) {
        return fail(
            Reason::Malformed,
            "header or payload repeats a JSON member name",
        );
    }
    let header = untrusted.header();
    if header.key_set_url.is_some() {
        return fail(
            Reason::HeaderNotAllowed,
            "header field jku is never trusted",
        );
    }
    if header.certificate_url.is_some() {
        return fail(
            Reason::HeaderNotAllowed,
            "header field x5u is never trusted",
        );
    }
    if let Some(name) = REFUSED_HEADERS
        .iter()
        .find(|n| header.other_fields.contains_key(**n))
    {
        return fail(
            Reason::HeaderNotAllowed,
            format!("header field {name} is not accepted"),
        );
    }
    let Some(alg) = Alg::from_name(untrusted.algorithm()) else {
        return fail(
            Reason::AlgorithmNotAllowed,
            format!("algorithm {:?} is not supported", untrusted.algorithm()),
        );
    };

    // The issuer picks the provider. The claims are not trusted yet: they only
    // choose which configured keys to try.
    let unchecked = untrusted
        .deserialize_claims_unchecked::<Obj>()
        .map_err(|e| Failure {
            reason: Reason::Malformed,
            detail: format!("payload is not a JSON object of claims: {e}"),
            provider: None,
        })?;
    let iss = match unchecked.custom.get("iss") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return fail(Reason::ClaimInvalid, "iss is not a string"),
        None => return fail(Reason::IssuerNotAllowed, "token has no iss"),
    };
    let Some((index, provider)) = providers
        .iter()
        .enumerate()
        .find(|(_, p)| p.issuer == iss && accepts(p))
    else {
        return fail(
            Reason::IssuerNotAllowed,
            format!("no provider for issuer {iss:?}"),
        );
    };
    check_provider(
        provider,
        &untrusted,
        alg,
        token,
        now,
        fetched.fetched(index),
    )
    .map_err(|mut f| {
        f.provider = Some(index);
        f
    })
}

fn check_provider(
    provider: &Provider,
    untrusted: &UntrustedToken<'_, Obj>,
    alg: Alg,
    token: &str,
    now: i64,
    fetched: Option<&[Key]>,
) -> Result<Principal, Failure> {
    let header = untrusted.header();
    if token.len() > provider.max_token_bytes {
        return fail(
            Reason::TokenTooLarge,
            format!(
                "token of {} bytes exceeds provider {}'s bound of {}",
                token.len(),
                provider.name,
                provider.max_token_bytes
            ),
        );
    }
    if let Some(want) = &provider.require_typ {
        let typ = header.token_type.as_deref().unwrap_or("");
        let typ = typ
            .get(..12)
            .filter(|p| p.eq_ignore_ascii_case("application/"))
            .map_or(typ, |_| typ.get(12..).unwrap_or(""));
        if !typ.eq_ignore_ascii_case(want) {
            return fail(
                Reason::ClaimInvalid,
                format!("typ {:?} is not {want:?}", header.token_type),
            );
        }
    }
    if !provider.algorithms.contains(alg) {
        return fail(
            Reason::AlgorithmNotAllowed,
            format!(
                "algorithm {alg} is not allowed for provider {}",
                provider.name
            ),
        );
    }

    let kid = header.key_id.as_deref();
    let mut tried = 0usize;
    let mut verified: Option<Token<Obj, Obj>> = None;
    if provider.remote.is_some() && provider.keys.is_empty() && fetched.is_none() {
        return fail(
            Reason::JwksUnavailable,
            format!("provider {}'s JWKS has not been fetched yet", provider.name),
        );
    }
    for key in provider
        .keys
        .iter()
        .chain(fetched.unwrap_or(&[]))
        .filter(|k| k.algs().contains(alg) && (kid.is_none() || k.kid() == kid))
    {
        tried += 1;
        match verify_with(alg, key.material(), untrusted) {
            Ok(token) => {
                verified = Some(token);
                break;
            }
            Err(
                ValidationError::InvalidSignature
                | ValidationError::InvalidSignatureLen { .. }
                | ValidationError::MalformedSignature(_)
                | ValidationError::AlgorithmMismatch { .. },
            ) => continue,
            Err(other) => {
                return fail(
                    Reason::Malformed,
                    format!("signature verified but: {other}"),
                );
            }
        }
    }
    let Some(verified) = verified else {
        return if tried == 0 {
            fail(
                Reason::UnknownKid,
                format!(
                    "provider {} has no {alg} key{}",
                    provider.name,
                    kid.map(|k| format!(" with kid {k:?}")).unwrap_or_default()
                ),
            )
        } else {
            fail(
                Reason::BadSignature,
                format!("{alg} signature did not verify with {tried} candidate key(s)"),
            )
        };
    };

    let (_, claims) = verified.into_parts();
    let skew = provider.clock_skew_seconds;
    match claims.expiration {
        Some(exp) if now > exp.timestamp().saturating_add(skew) => {
            return fail(
                Reason::TokenExpired,
                format!("exp {} is before now {now} (skew {skew}s)", exp.timestamp()),
            );
        }
        None if provider.require_exp => return fail(Reason::ClaimInvalid, "token has no exp"),
        _ => {}
    }
    if let Some(nbf) = claims.not_before
        && nbf.timestamp() > now.saturating_add(skew)
    {
        return fail(
            Reason::TokenNotYetValid,
            format!("nbf {} is after now {now} (skew {skew}s)", nbf.timestamp()),
        );
    }
    if let Some(iat) = claims.issued_at
        && iat.timestamp() > now.saturating_add(skew)
    {
        return fail(
            Reason::TokenNotYetValid,
            format!("iat {} is after now {now} (skew {skew}s)", iat.timestamp()),
        );
    }
    if let Some(max) = provider.max_lifetime_seconds {
        let (Some(iat), Some(exp)) = (claims.issued_at, claims.expiration) else {
            return fail(Reason::ClaimInvalid, "max_lifetime needs both iat and exp");
        };
        let lifetime = exp.timestamp().saturating_sub(iat.timestamp());
        if lifetime > max {
            return fail(
                Reason::ClaimInvalid,
                format!("lifetime {lifetime}s exceeds max_lifetime_seconds {max}"),
            );
        }
    }
    let mut custom = claims.custom;
    // jwt-compact keeps the time claims apart; the principal has them all.
    for (name, at) in [
        ("exp", claims.expiration),
        ("nbf", claims.not_before),
        ("iat", claims.issued_at),
    ] {
        if let Some(at) = at {
            custom.insert(name.to_owned(), Value::from(at.timestamp()));
        }
    }
    if let Err((reason, detail)) = check_claims(provider, &custom) {
        return fail(reason, detail);
    }
    let subject = match custom.get("sub") {
        Some(Value::String(s)) => Some(s.clone()),
        None => None,
        Some(_) => return fail(Reason::ClaimInvalid, "sub is not a string"),
    };
    Ok(Principal {
        provider: provider.name.clone(),
        issuer: provider.issuer.clone(),
        subject,
        scopes: scopes_from_claims(&custom),
        claims: custom,
    })
}

/// Decodes the header and payload segments and checks neither repeats a
/// member name (the shape check has already passed).
fn segments_unambiguous(token: &str) -> bool {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    token.split('.').take(2).all(|seg| {
        URL_SAFE_NO_PAD
            .decode(seg)
            .is_ok_and(|json| crate::json_guard::is_unambiguous(&json))
    })
}

/// A compact JWS is exactly three base64url segments without padding; a JWE
/// (five segments), padding, or any other character is refused before parsing.
fn check_compact_shape(token: &str) -> Result<(), Failure> {
    let mut dots = 0usize;
    for b in token.bytes() {
        match b {
            b'.' => dots += 1,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {}
            _ => {
                return fail(
                    Reason::Malformed,
                    "token has a character outside base64url and '.'",
                );
            }
        }
    }
    if dots != 2 {
        return fail(
            Reason::Malformed,
            format!("token has {} segments, a JWS has 3", dots + 1),
        );
    }
    if token.starts_with('.') || token.contains("..") {
        return fail(Reason::Malformed, "token has an empty header or payload");
    }
    Ok(())
}

fn verify_with(
    alg: Alg,
    key: &KeyMaterial,
    token: &UntrustedToken<'_, Obj>,
) -> Result<Token<Obj, Obj>, ValidationError> {
    match (alg, key) {
        (Alg::Rs256, KeyMaterial::Rsa(k)) => FastRsa::rs256().validator::<Obj>(k).validate(token),
        (Alg::Rs384, KeyMaterial::Rsa(k)) => FastRsa::rs384().validator::<Obj>(k).validate(token),
        (Alg::Rs512, KeyMaterial::Rsa(k)) => FastRsa::rs512().validator::<Obj>(k).validate(token),
        (Alg::Ps256, KeyMaterial::Rsa(k)) => FastRsa::ps256().validator::<Obj>(k).validate(token),
        (Alg::Ps384, KeyMaterial::Rsa(k)) => FastRsa::ps384().validator::<Obj>(k).validate(token),
        (Alg::Ps512, KeyMaterial::Rsa(k)) => FastRsa::ps512().validator::<Obj>(k).validate(token),
        (Alg::Es256, KeyMaterial::P256(k)) => FastEs256.validator::<Obj>(k).validate(token),
        (Alg::Es384, KeyMaterial::P384(k)) => FastEs384.validator::<Obj>(k).validate(token),
        (Alg::Es512, KeyMaterial::P521(k)) => FastEs512.validator::<Obj>(k).validate(token),
        (Alg::EdDsa, KeyMaterial::Ed25519(k)) => Ed25519.validator::<Obj>(k).validate(token),
        (Alg::Hs256, KeyMaterial::Hmac(s)) => Hs256
            .validator::<Obj>(&Hs256Key::new(s.bytes()))
            .validate(token),
        (Alg::Hs384, KeyMaterial::Hmac(s)) => Hs384
            .validator::<Obj>(&Hs384Key::new(s.bytes()))
            .validate(token),
        (Alg::Hs512, KeyMaterial::Hmac(s)) => Hs512
            .validator::<Obj>(&Hs512Key::new(s.bytes()))
            .validate(token),
        // Unreachable through `Key::algs`, which only holds algorithms of the
        // key's own family; refused rather than trusted.
        _ => Err(ValidationError::AlgorithmMismatch {
            expected: format!("{:?}", key.family()),
            actual: alg.name().to_owned(),
        }),
    }
}
