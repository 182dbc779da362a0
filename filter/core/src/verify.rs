//! Token verification: untrusted text in, a [`Principal`] or a [`Failure`] out.
//!
//! The order matters and is fixed: size and shape first (cheap, before any
//! parsing), then the header (refusing `none`, untrusted key references and
//! unknown `crit`), then the issuer chooses the provider, the provider's
//! allowed algorithms and the key's own type choose the key, the signature is
//! checked (jwt-compact's `Algorithm`s or scopegate's faster ones behind the
//! same trait), and only then are the claims trusted and checked against the
//! caller's clock. Each segment is decoded once, here (`Untrusted` holds
//! what the header says).

use jwt_compact::{Algorithm, AlgorithmSignature};
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
    pub(crate) claims_to_headers: Vec<(String, std::sync::Arc<str>)>,
    /// Header carrying the token's payload segment (base64url of its JSON).
    pub(crate) payload_header: Option<std::sync::Arc<str>>,
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
    pub fn claims_to_headers(&self) -> &[(String, std::sync::Arc<str>)] {
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

/// Header fields that would let the token choose its own key (by URL: never
/// trusted; inline: not accepted), or that carry semantics we do not
/// implement. Keys come only from configuration.
const KEY_URL_HEADERS: [&str; 2] = ["jku", "x5u"];
const REFUSED_HEADERS: [&str; 3] = ["jwk", "x5c", "crit"];

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
    // Three non-empty segments of base64url characters (the shape check).
    let mut segments = token.splitn(3, '.');
    let (header_b64, payload_b64, signature_b64) = (
        segments.next().unwrap_or_default(),
        segments.next().unwrap_or_default(),
        segments.next().unwrap_or_default(),
    );
    // Each segment is decoded once, here, and nothing in it is trusted
    // until the signature holds: the header's members choose the algorithm
    // and the key, the payload's claims the provider (`check_provider`).
    let header = json_segment(header_b64, "token does not parse: the header")?;
    let mut claims = json_segment(payload_b64, "payload")?;
    let Some(signature) = decoded(signature_b64) else {
        return fail(Reason::Malformed, "token does not parse: the signature is not base64url");
    };
    let untrusted = Untrusted::from_header(&header, signature)?;
    let Some(alg) = Alg::from_name(&untrusted.alg) else {
        return fail(
            Reason::AlgorithmNotAllowed,
            format!("algorithm {:?} is not supported", untrusted.alg),
        );
    };
    let times = numeric_dates(&mut claims)?;

    // The issuer picks the provider. The claims are not trusted yet: they only
    // choose which configured keys to try.
    let iss = match claims.get("iss") {
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
        (claims, times),
    )
    .map_err(|mut f| {
        f.provider = Some(index);
        f
    })
}

fn check_provider(
    provider: &Provider,
    untrusted: &Untrusted,
    alg: Alg,
    token: &str,
    now: i64,
    fetched: Option<&[Key]>,
    (custom, times): (Obj, Times),
) -> Result<Principal, Failure> {
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
        let typ = untrusted.typ.as_deref().unwrap_or("");
        let typ = typ
            .get(..12)
            .filter(|p| p.eq_ignore_ascii_case("application/"))
            .map_or(typ, |_| typ.get(12..).unwrap_or(""));
        if !typ.eq_ignore_ascii_case(want) {
            return fail(
                Reason::ClaimInvalid,
                format!("typ {:?} is not {want:?}", untrusted.typ),
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

    let kid = untrusted.kid.as_deref();
    let mut tried = 0usize;
    let mut verified = false;
    if provider.remote.is_some() && provider.keys.is_empty() && fetched.is_none() {
        return fail(
            Reason::JwksUnavailable,
            format!("provider {}'s JWKS has not been fetched yet", provider.name),
        );
    }
    // What the signature covers: the header and payload segments as sent.
    let signed = token.rsplit_once('.').map_or("", |(data, _)| data);
    for key in provider
        .keys
        .iter()
        .chain(fetched.unwrap_or(&[]))
        .filter(|k| k.algs().contains(alg) && (kid.is_none() || k.kid() == kid))
    {
        tried += 1;
        if signature_ok(alg, key.material(), &untrusted.signature, signed.as_bytes()) {
            verified = true;
            break;
        }
    }
    if !verified {
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
    }

    // The signature holds: from here on the claims are the issuer's.
    let skew = provider.clock_skew_seconds;
    match times.exp {
        Some(exp) if now > exp.saturating_add(skew) => {
            return fail(
                Reason::TokenExpired,
                format!("exp {exp} is before now {now} (skew {skew}s)"),
            );
        }
        None if provider.require_exp => return fail(Reason::ClaimInvalid, "token has no exp"),
        _ => {}
    }
    if let Some(nbf) = times.nbf
        && nbf > now.saturating_add(skew)
    {
        return fail(
            Reason::TokenNotYetValid,
            format!("nbf {nbf} is after now {now} (skew {skew}s)"),
        );
    }
    if let Some(iat) = times.iat
        && iat > now.saturating_add(skew)
    {
        return fail(
            Reason::TokenNotYetValid,
            format!("iat {iat} is after now {now} (skew {skew}s)"),
        );
    }
    if let Some(max) = provider.max_lifetime_seconds {
        let (Some(iat), Some(exp)) = (times.iat, times.exp) else {
            return fail(Reason::ClaimInvalid, "max_lifetime needs both iat and exp");
        };
        let lifetime = exp.saturating_sub(iat);
        if lifetime > max {
            return fail(
                Reason::ClaimInvalid,
                format!("lifetime {lifetime}s exceeds max_lifetime_seconds {max}"),
            );
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
        memo: Default::default(),
    })
}

/// A base64url segment (no padding), decoded.
/// What verification reads of a token's header, and its signature's bytes;
/// nothing trusted. jwt-compact's `UntrustedToken` served before: it decoded
/// every segment a second time with base64ct's constant-time decoder (the
/// segments are public) and parsed the header through serde `flatten`
/// buffering: 13% of an HS256 decision natively.
struct Untrusted {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    signature: Vec<u8>,
}

impl Untrusted {
    /// The header's members, as jwt-compact's `Header` read them (`alg`
    /// required; `kid`, `typ`, `cty`, `x5t`, `x5t#S256` strings if present;
    /// `cty` only JSON), then the members that would point at keys or
    /// change the rules refused (`jku`, `x5u`, `jwk`, `x5c`, `crit`).
    fn from_header(header: &Obj, signature: Vec<u8>) -> Result<Untrusted, Failure> {
        let text = |name: &str| match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => fail(
                Reason::Malformed,
                format!("token does not parse: header member {name} is not a string"),
            ),
        };
        let Some(alg) = text("alg")? else {
            return fail(Reason::Malformed, "token does not parse: the header has no alg");
        };
        let kid = text("kid")?;
        let typ = text("typ")?;
        for thumbprint in ["x5t", "x5t#S256"] {
            text(thumbprint)?;
        }
        if let Some(cty) = text("cty")?
            && !cty.eq_ignore_ascii_case("json")
        {
            return fail(
                Reason::Malformed,
                format!("token does not parse: content type {cty:?} is not JSON"),
            );
        }
        for name in KEY_URL_HEADERS {
            if header.contains_key(name) {
                return fail(
                    Reason::HeaderNotAllowed,
                    format!("header field {name} is never trusted"),
                );
            }
        }
        if let Some(name) = REFUSED_HEADERS.iter().find(|n| header.contains_key(**n)) {
            return fail(
                Reason::HeaderNotAllowed,
                format!("header field {name} is not accepted"),
            );
        }
        Ok(Untrusted {
            alg,
            kid,
            typ,
            signature,
        })
    }
}

/// The JSON object of unique members a header or payload segment holds;
/// `what` names it in the failure.
fn json_segment(segment: &str, what: &str) -> Result<Obj, Failure> {
    match decoded(segment).map(|json| crate::json_guard::parse_object(&json)) {
        Some(Ok(object)) => Ok(object),
        Some(Err(crate::json_guard::ObjectError::Duplicate)) => fail(
            Reason::Malformed,
            "header or payload repeats a JSON member name",
        ),
        Some(Err(crate::json_guard::ObjectError::NotAnObject(e))) => fail(
            Reason::Malformed,
            format!("{what} is not a JSON object: {e}"),
        ),
        None => fail(Reason::Malformed, format!("{what} is not base64url")),
    }
}

fn decoded(segment: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    URL_SAFE_NO_PAD.decode(segment).ok()
}

/// The time claims, Unix seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Times {
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
}

/// Reads `exp`, `nbf` and `iat` as RFC 7519 NumericDates (a JSON number;
/// a fraction is truncated; a value outside the years ±262,000 is refused)
/// and writes them back as integers, as the principal carries them.
fn numeric_dates(claims: &mut Obj) -> Result<Times, Failure> {
    let mut times = Times::default();
    for (name, slot) in [
        ("exp", &mut times.exp),
        ("nbf", &mut times.nbf),
        ("iat", &mut times.iat),
    ] {
        let Some(value) = claims.get_mut(name) else {
            continue;
        };
        let seconds = match &*value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_u64().and_then(|u| i64::try_from(u).ok()))
                .or_else(|| {
                    n.as_f64()
                        .filter(|_| !n.is_u64())
                        .map(|f| f as i64)
                }),
            _ => None,
        }
        .filter(|s| chrono::DateTime::from_timestamp(*s, 0).is_some());
        let Some(seconds) = seconds else {
            return fail(
                Reason::Malformed,
                format!("payload is not a JSON object of claims: {name} is not a NumericDate"),
            );
        };
        *value = Value::from(seconds);
        *slot = Some(seconds);
    }
    Ok(times)
}

/// A compact JWS is exactly three base64url segments without padding; a JWE
/// (five segments), padding, or any other character is refused before parsing.
fn check_compact_shape(token: &str) -> Result<(), Failure> {
    let mut dots = 0usize;
    // An empty segment: the token starts with '.' or has "..".
    let mut empty = false;
    let mut after_dot = true;
    for b in token.bytes() {
        match BASE64URL.get(usize::from(b)).copied().unwrap_or(0) {
            1 => after_dot = false,
            2 => {
                empty |= after_dot;
                after_dot = true;
                dots += 1;
            }
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
    // Only the header and payload must be non-empty; an empty signature is
    // refused by the signature check.
    if empty {
        return fail(Reason::Malformed, "token has an empty header or payload");
    }
    Ok(())
}

/// 1 for a base64url character, 2 for '.', 0 for anything else.
// A constant evaluation: an index out of bounds would fail the build, not a request.
#[allow(clippy::indexing_slicing)]
static BASE64URL: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => 1,
            b'.' => 2,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// Whether `signature` over `signed` verifies with `key` for `alg`: RS*/PS*
/// and ES* through jwt-compact's `Algorithm` trait with scopegate's
/// precomputed verifiers (`rsa_fast`, `ec_fast`; signature length checked
/// first, as jwt-compact's validator does), EdDSA with `ed_fast` (ed25519-dalek's
/// verdict, 64 octets), HS* with the key's pre-hashed HMAC.
fn signature_ok(alg: Alg, key: &KeyMaterial, signature: &[u8], signed: &[u8]) -> bool {
    fn check<A: Algorithm>(a: &A, key: &A::VerifyingKey, signature: &[u8], signed: &[u8]) -> bool {
        if A::Signature::LENGTH.is_some_and(|n| n.get() != signature.len()) {
            return false;
        }
        A::Signature::try_from_slice(signature).is_ok_and(|s| a.verify_signature(&s, key, signed))
    }
    match (alg, key) {
        (Alg::Rs256, KeyMaterial::Rsa(k)) => check(&FastRsa::rs256(), k, signature, signed),
        (Alg::Rs384, KeyMaterial::Rsa(k)) => check(&FastRsa::rs384(), k, signature, signed),
        (Alg::Rs512, KeyMaterial::Rsa(k)) => check(&FastRsa::rs512(), k, signature, signed),
        (Alg::Ps256, KeyMaterial::Rsa(k)) => check(&FastRsa::ps256(), k, signature, signed),
        (Alg::Ps384, KeyMaterial::Rsa(k)) => check(&FastRsa::ps384(), k, signature, signed),
        (Alg::Ps512, KeyMaterial::Rsa(k)) => check(&FastRsa::ps512(), k, signature, signed),
        (Alg::Es256, KeyMaterial::P256(k)) => check(&FastEs256, k, signature, signed),
        (Alg::Es384, KeyMaterial::P384(k)) => check(&FastEs384, k, signature, signed),
        (Alg::Es512, KeyMaterial::P521(k)) => check(&FastEs512, k, signature, signed),
        (Alg::EdDsa, KeyMaterial::Ed25519(k)) => k.verify(signed, signature),
        (Alg::Hs256 | Alg::Hs384 | Alg::Hs512, KeyMaterial::Hmac(s)) => s.verifies(alg, signed, signature),
        // Unreachable through `Key::algs`, which only holds algorithms of the
        // key's own family; refused rather than trusted.
        _ => false,
    }
}
