//! RFC 7662 token introspection: opaque tokens, the same principal.
//!
//! Pure: this module builds the callout request, parses and checks the reply,
//! maps it to a [`Principal`], chooses which provider introspects a token, and
//! holds the answer cache. The shim performs the callout (see
//! `filter/wasm/src/introspection.rs`) and hands answers back through
//! [`crate::KeySource::introspected`]. The wire contract is
//! `filter/PROTOCOLS.md`, "Token introspection".
//!
//! - Which provider: a token found at the sources of a provider whose
//!   `introspection.tokens` is `"all"` is introspected by it; otherwise a token
//!   that is not JWT-shaped (three base64url parts) found at the sources of a
//!   provider with `introspection` is introspected by it; anything else takes
//!   the JWT path (a non-JWT token there is `malformed`, as before).
//! - An answer is cached under the SHA-256 of the token (never the token):
//!   active ones until `min(exp, answered + cache_ttl_seconds)`, inactive ones
//!   for `negative_cache_ttl_seconds`; failures are never cached.
//! - The endpoint failing (status, timeout, connect failure, garbage, wrong
//!   types, too big) is 503 `introspection_unavailable`: never an allow.

use core::fmt;
use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::principal::{Principal, scopes_from_claims};
use crate::reason::Reason;
use crate::verify::{Failure, Provider};

/// SHA-256 of a token.
pub type Digest = [u8; 32];

/// Default `path`.
pub const DEFAULT_PATH: &str = "/oauth/introspect";
/// Default `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Default `cache_ttl_seconds`.
pub const DEFAULT_CACHE_TTL_SECONDS: u64 = 300;
/// Default `negative_cache_ttl_seconds`.
pub const DEFAULT_NEGATIVE_CACHE_TTL_SECONDS: u64 = 10;
/// Default `cache_entries`.
pub const DEFAULT_CACHE_ENTRIES: usize = 4096;
/// Default `max_body_bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 65536;
/// Bounds an operator may set.
pub const MAX_CACHE_TTL_SECONDS: u64 = 86_400;
pub const MAX_NEGATIVE_CACHE_TTL_SECONDS: u64 = 3600;
pub const MAX_CACHE_ENTRIES: usize = 1 << 20;
pub const MIN_MAX_BODY_BYTES: usize = 256;
pub const MAX_MAX_BODY_BYTES: usize = 1 << 20;
/// Most shared-data slots per provider (see [`Introspection::shared_slots`]).
pub const MAX_SHARED_SLOTS: usize = 1024;

/// Which tokens a provider introspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokens {
    /// Only tokens that are not JWT-shaped.
    Opaque,
    /// Every token found at the provider's sources.
    All,
}

/// How the callout authenticates to the auth server.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// The full `authorization` header value (`Basic ...` or `Bearer ...`).
    Header(String),
    /// No `authorization` header (warned about at compile time).
    None,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets never reach a log, not even a debug print.
        match self {
            ClientAuth::Header(_) => f.write_str("Header(<redacted>)"),
            ClientAuth::None => f.write_str("None"),
        }
    }
}

/// A provider's compiled `introspection` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub auth: ClientAuth,
    pub tokens: Tokens,
    pub timeout_ms: u64,
    pub cache_ttl_seconds: i64,
    pub negative_cache_ttl_seconds: i64,
    pub cache_entries: usize,
    pub max_body_bytes: usize,
}

impl Introspection {
    /// Shared-data slots the shim may use for this provider: at most
    /// [`MAX_SHARED_SLOTS`], and never more than `cache_entries` (0: none).
    pub fn shared_slots(&self) -> usize {
        self.cache_entries.min(MAX_SHARED_SLOTS)
    }
}

/// What the shim needs to introspect a token: the provider is in the
/// enclosing [`crate::Pending`].
#[derive(Clone, PartialEq, Eq)]
pub struct IntrospectionNeed {
    /// SHA-256 of the token: the key of caches, waiters and shared slots.
    pub digest: Digest,
    /// The token itself, for the callout body only.
    pub token: String,
}

impl fmt::Debug for IntrospectionNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntrospectionNeed({})", hex(&self.digest))
    }
}

/// An introspection answer, as the decision consumes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Introspected {
    /// `active: true`, with the whole reply object (types already checked).
    Active(Map<String, Value>),
    /// `active: false`.
    Inactive,
}

/// Why an introspection call gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The callout did not get an answer in time (Envoy's synthesized 504).
    Timeout,
    /// The auth server could not be reached or reset the call.
    Connect,
    /// A status other than 200.
    Status(u16),
    /// The body exceeds `max_body_bytes`.
    TooLarge(usize),
    /// The body is not an introspection object (not JSON, duplicate members, wrong types).
    Invalid(String),
}

impl CallError {
    /// Stable kind for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout => "timeout",
            CallError::Connect => "connect",
            CallError::Status(_) => "status",
            CallError::TooLarge(_) => "too_large",
            CallError::Invalid(_) => "invalid",
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout => f.write_str("the call timed out"),
            CallError::Connect => f.write_str("the auth server could not be reached"),
            CallError::Status(s) => write!(f, "status {s}"),
            CallError::TooLarge(n) => write!(f, "a body of {n} bytes exceeds max_body_bytes"),
            CallError::Invalid(why) => write!(f, "invalid reply: {why}"),
        }
    }
}

/// Every kind of [`CallError`], plus `dispatch` (the callout could not be
/// started) and `wait` (a paused request's wait ran out): one counter each.
pub const FAILURE_KINDS: [&str; 7] = [
    "timeout",
    "connect",
    "status",
    "too_large",
    "invalid",
    "dispatch",
    "wait",
];

/// SHA-256 of `token`.
pub fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 15] {
            s.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    s
}

/// Parses lower-case or upper-case hex of exactly 32 bytes.
pub fn parse_hex_digest(s: &str) -> Option<Digest> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// `application/x-www-form-urlencoded` encoding of one value (WHATWG URL
/// standard): `*-._` and alphanumerics as they are, space as `+`, every other
/// byte of the UTF-8 as `%XX`.
pub fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push_str(&hex(&[b]).to_ascii_uppercase());
            }
        }
    }
    out
}

/// The `authorization` value for HTTP Basic client authentication: RFC 6749
/// §2.3.1 form-urlencodes the id and the secret before base64.
pub fn basic_auth(client_id: &str, client_secret: &str) -> String {
    let pair = format!(
        "{}:{}",
        form_urlencode(client_id),
        form_urlencode(client_secret)
    );
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// One introspection callout, ready for `dispatch_http_call`.
#[derive(Clone, PartialEq, Eq)]
pub struct CallRequest {
    pub cluster: String,
    /// `:method`, `:path`, `:authority`, `content-type`, `accept`, and
    /// `authorization` when configured.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

impl fmt::Debug for CallRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body holds the token and the headers a secret.
        f.debug_struct("CallRequest")
            .field("cluster", &self.cluster)
            .field("body_bytes", &self.body.len())
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

/// Builds the callout for `token` (PROTOCOLS.md, "Token introspection").
pub fn request(cfg: &Introspection, token: &str) -> CallRequest {
    let mut headers = vec![
        (":method".to_owned(), "POST".to_owned()),
        (":path".to_owned(), cfg.path.clone()),
        (":authority".to_owned(), cfg.authority.clone()),
        (
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("accept".to_owned(), "application/json".to_owned()),
    ];
    if let ClientAuth::Header(value) = &cfg.auth {
        headers.push(("authorization".to_owned(), value.clone()));
    }
    let body = format!(
        "token={}&token_type_hint=access_token",
        form_urlencode(token)
    );
    CallRequest {
        cluster: cfg.cluster.clone(),
        headers,
        body: body.into_bytes(),
        timeout_ms: cfg.timeout_ms,
    }
}

/// Reads a callout answer: `status` is the `:status` header (`None`: the call
/// was reset, no headers), `body` what was read of it and `body_size` its full
/// size (the shim reads nothing past `max_body_bytes`).
pub fn parse_reply(
    cfg: &Introspection,
    status: Option<u16>,
    body: &[u8],
    body_size: usize,
) -> Result<Introspected, CallError> {
    let Some(status) = status else {
        return Err(CallError::Connect);
    };
    if status != 200 {
        // What Envoy synthesizes when the call itself fails.
        return Err(match (status, body) {
            (504, b) if b.starts_with(b"upstream request timeout") => CallError::Timeout,
            (503, b)
                if b.starts_with(b"upstream connect error")
                    || b.starts_with(b"no healthy upstream") =>
            {
                CallError::Connect
            }
            (s, _) => CallError::Status(s),
        });
    }
    if body_size > cfg.max_body_bytes || body.len() > cfg.max_body_bytes {
        return Err(CallError::TooLarge(body_size.max(body.len())));
    }
    parse_object(body)
}

/// The JSON object of an answer (also what the shim shares between workers).
pub fn parse_object(body: &[u8]) -> Result<Introspected, CallError> {
    let invalid = |why: &str| Err(CallError::Invalid(why.to_owned()));
    if !crate::json_guard::is_unambiguous(body) {
        return invalid("not JSON, or a member name repeats");
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return invalid("not a JSON object");
    };
    match obj.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Introspected::Inactive),
        Some(_) => return invalid("active is not a boolean"),
        None => return invalid("active is missing"),
    }
    for name in ["scope", "sub", "client_id", "iss", "token_type", "username"] {
        if obj.get(name).is_some_and(|v| !v.is_string()) {
            return Err(CallError::Invalid(format!("{name} is not a string")));
        }
    }
    for name in ["exp", "iat", "nbf"] {
        if obj.get(name).is_some_and(|v| v.as_i64().is_none()) {
            return Err(CallError::Invalid(format!("{name} is not an integer")));
        }
    }
    match obj.get("aud") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(_) => return invalid("aud is not a string or an array of strings"),
    }
    Ok(Introspected::Active(obj))
}

/// Until when (Unix seconds) an answer given at `now` may be reused.
pub fn cache_until(cfg: &Introspection, answer: &Introspected, now: i64) -> i64 {
    match answer {
        Introspected::Inactive => now.saturating_add(cfg.negative_cache_ttl_seconds),
        Introspected::Active(obj) => {
            let ttl = now.saturating_add(cfg.cache_ttl_seconds);
            obj.get("exp")
                .and_then(Value::as_i64)
                .map_or(ttl, |exp| exp.min(ttl))
        }
    }
}

fn fail<T>(provider: usize, reason: Reason, detail: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        reason,
        detail: detail.into(),
        provider: Some(provider),
    })
}

/// An answer -> the principal, with the provider's checks: `iss` (when
/// present) equals the issuer, `aud` as for a JWT, `exp`/`nbf`/`iat` with
/// the clock skew, `required_claims`, `max_lifetime_seconds`.
pub fn principal(
    index: usize,
    provider: &Provider,
    answer: &Introspected,
    now: i64,
) -> Result<Principal, Failure> {
    let claims = match answer {
        Introspected::Inactive => {
            return fail(
                index,
                Reason::TokenInactive,
                "the auth server says the token is not active",
            );
        }
        Introspected::Active(claims) => claims,
    };
    match claims.get("iss") {
        None => {}
        Some(Value::String(iss)) if *iss == provider.issuer => {}
        Some(other) => {
            return fail(
                index,
                Reason::IssuerNotAllowed,
                format!(
                    "introspection iss {other} is not provider {}'s issuer",
                    provider.name
                ),
            );
        }
    }
    let skew = provider.clock_skew_seconds;
    let at = |name: &str| claims.get(name).and_then(Value::as_i64);
    if let Some(exp) = at("exp")
        && now > exp.saturating_add(skew)
    {
        return fail(
            index,
            Reason::TokenExpired,
            format!("exp {exp} is before now {now} (skew {skew}s)"),
        );
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = at(name)
            && t > now.saturating_add(skew)
        {
            return fail(
                index,
                Reason::TokenNotYetValid,
                format!("{name} {t} is after now {now} (skew {skew}s)"),
            );
        }
    }
    if let Some(max) = provider.max_lifetime_seconds {
        let (Some(iat), Some(exp)) = (at("iat"), at("exp")) else {
            return fail(
                index,
                Reason::ClaimInvalid,
                "max_lifetime needs both iat and exp",
            );
        };
        let lifetime = exp.saturating_sub(iat);
        if lifetime > max {
            return fail(
                index,
                Reason::ClaimInvalid,
                format!("lifetime {lifetime}s exceeds max_lifetime_seconds {max}"),
            );
        }
    }
    if let Err((reason, detail)) = crate::verify::check_claims(provider, claims) {
        return fail(index, reason, detail);
    }
    Ok(Principal {
        provider: provider.name.clone(),
        issuer: provider.issuer.clone(),
        subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
        scopes: scopes_from_claims(claims),
        claims: claims.clone(),
        memo: Default::default(),
    })
}

/// A compact JWS's shape: three parts (header and payload not empty) of
/// base64url characters. Anything else is "opaque".
pub fn looks_like_jwt(token: &str) -> bool {
    let mut dots = 0usize;
    for b in token.bytes() {
        match b {
            b'.' => dots += 1,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {}
            _ => return false,
        }
    }
    dots == 2 && !token.starts_with('.') && !token.contains("..")
}

/// The provider that introspects a token found at `sources`, if any (see the
/// module docs for the rules; the compiler refuses configurations where two
/// providers could).
pub fn choose(providers: &[Provider], sources: &[usize], token: &str) -> Option<usize> {
    // The common case costs one pass over the providers, not over the token.
    if providers.iter().all(|p| p.introspection.is_none()) {
        return None;
    }
    let at_source = |p: &Provider| sources.iter().any(|s| p.sources.contains(s));
    let candidates = || {
        providers.iter().enumerate().filter_map(|(i, p)| {
            let cfg = p.introspection.as_ref()?;
            at_source(p).then_some((i, cfg.tokens))
        })
    };
    if let Some((i, _)) = candidates().find(|(_, t)| *t == Tokens::All) {
        return Some(i);
    }
    if looks_like_jwt(token) {
        return None;
    }
    candidates().map(|(i, _)| i).next()
}

/// The decision's side: a token to introspect -> its principal, its refusal,
/// or [`Reason::IntrospectionUnavailable`] when no answer is at hand (the
/// decision then asks the shim to call out). `None`: not an introspected token.
pub fn resolve(
    providers: &[Provider],
    sources: &[usize],
    token: &str,
    now: i64,
    keys: &dyn crate::KeySource,
) -> Option<Result<Principal, Failure>> {
    let index = choose(providers, sources, token)?;
    let provider = providers.get(index)?;
    if token.len() > provider.max_token_bytes {
        return Some(fail(
            index,
            Reason::TokenTooLarge,
            format!(
                "token of {} bytes exceeds provider {}'s bound of {}",
                token.len(),
                provider.name,
                provider.max_token_bytes
            ),
        ));
    }
    Some(match keys.introspected(index, &digest(token), now) {
        Some(answer) => principal(index, provider, &answer, now),
        None => fail(
            index,
            Reason::IntrospectionUnavailable,
            format!(
                "no introspection answer from provider {} yet",
                provider.name
            ),
        ),
    })
}

#[derive(Debug, Clone)]
struct Entry {
    provider: usize,
    answer: Introspected,
    until: i64,
}

/// Introspection answers by (provider, token digest), bounded: when full, the
/// oldest entry goes. An entry is used only while `now < until`.
#[derive(Debug, Clone)]
pub struct IntrospectionCache {
    max_entries: usize,
    entries: HashMap<(usize, Digest), Entry>,
    order: VecDeque<(usize, Digest)>,
}

impl IntrospectionCache {
    pub fn new(max_entries: usize) -> IntrospectionCache {
        IntrospectionCache {
            max_entries,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The answer for `digest` from `provider`, if still fresh at `now`; a
    /// stale entry is dropped.
    pub fn get(&mut self, provider: usize, digest: &Digest, now: i64) -> Option<Introspected> {
        let key = (provider, *digest);
        let hit = self
            .entries
            .get(&key)
            .filter(|e| e.provider == provider && now < e.until)
            .map(|e| e.answer.clone());
        if hit.is_none() {
            self.entries.remove(&key);
        }
        hit
    }

    /// Keeps `answer` until `until` (nothing if that is not after `now`, or
    /// the cache is disabled).
    pub fn put(
        &mut self,
        provider: usize,
        digest: Digest,
        answer: Introspected,
        now: i64,
        until: i64,
    ) {
        if self.max_entries == 0 || until <= now {
            return;
        }
        let key = (provider, digest);
        while self.entries.len() >= self.max_entries && !self.entries.contains_key(&key)
            || self.order.len() >= self.max_entries.saturating_mul(2)
        {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        if self
            .entries
            .insert(
                key,
                Entry {
                    provider,
                    answer,
                    until,
                },
            )
            .is_none()
        {
            self.order.push_back(key);
        }
    }
}

/// What one worker shares with the others in a shared-data slot: the digest
/// (so a reader knows the slot holds its token), the expiry, and the answer.
pub fn shared_value(digest: &Digest, until: i64, answer: &Introspected) -> Vec<u8> {
    let body = match answer {
        Introspected::Inactive => r#"{"active":false}"#.to_owned(),
        Introspected::Active(obj) => Value::Object(obj.clone()).to_string(),
    };
    format!("sg-introspect-1\n{}\n{until}\n{body}", hex(digest)).into_bytes()
}

/// Reads a shared slot: the answer if it is for `digest` and fresh at `now`,
/// with its expiry.
pub fn read_shared(value: &[u8], digest: &Digest, now: i64) -> Option<(Introspected, i64)> {
    let text = core::str::from_utf8(value).ok()?;
    let mut parts = text.splitn(4, '\n');
    if parts.next()? != "sg-introspect-1" {
        return None;
    }
    if parse_hex_digest(parts.next()?)? != *digest {
        return None;
    }
    let until: i64 = parts.next()?.parse().ok()?;
    if now >= until {
        return None;
    }
    let answer = parse_object(parts.next()?.as_bytes()).ok()?;
    Some((answer, until))
}

/// The shared-data slot of `digest` among `slots`.
pub fn slot_of(digest: &Digest, slots: usize) -> usize {
    let mut head = [0u8; 8];
    head.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    let n = u64::from_le_bytes(head);
    usize::try_from(n % u64::try_from(slots.max(1)).unwrap_or(1)).unwrap_or(0)
}
