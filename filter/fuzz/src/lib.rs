//! Shared pieces of scopegate's fuzz targets: a policy trusting a key of every
//! algorithm, structure-aware tokens built from mutated parts, and the
//! invariants every decision must keep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::cell::RefCell;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use scopegate_core::cache::TokenCache;
use scopegate_core::keys::Key;
use scopegate_core::{Decision, KeySource, Policy, Reason, compile_json};
use scopegate_testkit as tk;
use serde_json::{Map, Value, json};

/// Every algorithm the filter supports, and the kid of the testkit key for it.
pub const ALGS: [(&str, &str); 14] = [
    ("RS256", "rsa-1"),
    ("RS384", "rsa-1"),
    ("RS512", "rsa-1"),
    ("PS256", "rsa-1"),
    ("PS384", "rsa-1"),
    ("PS512", "rsa-1"),
    ("ES256", "ec-1"),
    ("ES384", "ec384-1"),
    ("ES512", "ec521-1"),
    ("EdDSA", "ed-1"),
    ("HS256", "hs-1"),
    ("HS384", "hs-1"),
    ("HS512", "hs-1"),
    ("none", "rsa-1"),
];

/// The rules of the fuzzed policy: one public, the others need a token.
pub fn rules() -> Value {
    json!([
        {"name": "health", "match": {"exact": "/healthz"}, "require": "public"},
        {"name": "orders-read", "match": {"prefix": "/orders", "methods": ["GET"]}, "require": {"all_of": ["svc-a:orders:read"]}},
        {"name": "admin", "match": {"template": "/admin/{id}"}, "require": {"any_of": ["svc-a:admin", {"all_of": ["svc-a:x", "svc-a:y"]}]}},
        {"name": "me", "match": {"prefix": "/me"}, "require": "authenticated"},
    ])
}

/// A policy whose one provider trusts the testkit JWKS (a key of every
/// family), every algorithm, tokens from the Authorization header, the
/// `access_token` query parameter and the `session` cookie.
pub fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let mut c = tk::config(rules());
        c["providers"][0]["algorithms"] = json!([
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
            "EdDSA", "HS256", "HS384", "HS512"
        ]);
        c["providers"][0]["from"] = json!([
            {"header": "authorization", "prefix": "Bearer "},
            {"query": "access_token"},
            {"cookie": "session"}
        ]);
        compile_json(c.to_string().as_bytes()).expect("fuzz policy compiles")
    })
}

/// A key source with no fetched keys but a verified-token cache, so the
/// cache path is fuzzed too.
pub struct Cached(pub RefCell<TokenCache>);

impl Cached {
    pub fn new(n: usize) -> Cached {
        Cached(RefCell::new(TokenCache::new(n)))
    }
}

impl KeySource for Cached {
    fn fetched(&self, _index: usize) -> Option<&[Key]> {
        None
    }
    fn token_cache(&self) -> Option<&RefCell<TokenCache>> {
        Some(&self.0)
    }
}

/// Reasons an Allow may carry without a verified principal.
pub fn allow_without_principal_ok(reason: Reason) -> bool {
    matches!(reason, Reason::Public | Reason::CorsPreflight)
}

/// The invariant every decision keeps: an enforced Allow without a
/// principal is only for a public rule or a CORS preflight; a Deny is
/// 400/401/403/503 with a reason that is not an allow reason.
pub fn check_decision(d: &Decision) {
    match d {
        Decision::Allow(a) => {
            if a.dry_run.is_none() && a.principal.is_none() {
                assert!(
                    allow_without_principal_ok(a.reason),
                    "allowed without a principal: {a:?}"
                );
            }
            if a.dry_run.is_none() {
                assert!(
                    matches!(
                        a.reason,
                        Reason::Allowed | Reason::Public | Reason::SuperAdmin | Reason::CorsPreflight
                    ),
                    "enforced allow with a deny reason: {a:?}"
                );
            }
        }
        Decision::Deny(d) => {
            assert!(matches!(d.status, 400 | 401 | 403 | 503), "status {d:?}");
            assert!(
                !matches!(
                    d.reason,
                    Reason::Allowed | Reason::Public | Reason::SuperAdmin | Reason::CorsPreflight
                ),
                "denied with an allow reason: {d:?}"
            );
        }
        Decision::Pending(p) => {
            assert!(matches!(p.fallback.status, 401 | 503));
        }
    }
}

/// A JSON value from a small, fuzzer-friendly grammar.
#[derive(Debug, Clone, Arbitrary)]
pub enum J {
    Null,
    Bool(bool),
    Int(i64),
    Small(i8),
    Str(String),
    Arr(Vec<J>),
}

impl J {
    pub fn to_value(&self) -> Value {
        match self {
            J::Null => Value::Null,
            J::Bool(b) => json!(b),
            J::Int(i) => json!(i),
            J::Small(i) => json!(i),
            J::Str(s) => json!(s),
            J::Arr(a) => Value::Array(a.iter().take(4).map(J::to_value).collect()),
        }
    }
}

/// A time claim relative to the testkit's NOW.
#[derive(Debug, Clone, Arbitrary)]
pub enum Time {
    Absent,
    Offset(i16),
    Raw(J),
}

impl Time {
    fn put(&self, claims: &mut Map<String, Value>, name: &str, default: Option<i64>) {
        match self {
            Time::Absent => {
                if let Some(d) = default {
                    claims.insert(name.into(), json!(tk::NOW + d));
                }
            }
            Time::Offset(o) => {
                claims.insert(name.into(), json!(tk::NOW + i64::from(*o)));
            }
            Time::Raw(j) => {
                claims.insert(name.into(), j.to_value());
            }
        }
    }
}

/// A string that is usually the expected one, sometimes anything.
#[derive(Debug, Clone, Arbitrary)]
pub enum Choice {
    Expected,
    Absent,
    Other(J),
}

/// What is done to an honestly signed token before it is presented.
#[derive(Debug, Clone, Arbitrary)]
pub enum Mutation {
    None,
    /// XOR one byte of the token text (index taken modulo its length).
    Xor { at: u16, with: u8 },
    /// Cut the text at this position.
    Truncate(u16),
    /// Insert a byte.
    Insert { at: u16, byte: u8 },
    /// Replace the signature segment with these bytes (base64url encoded).
    Signature(Vec<u8>),
    /// Replace the header segment with this JSON (alg confusion, jku, ...).
    Header(Vec<(String, J)>),
    /// Replace the payload with raw bytes (base64url encoded), signature kept.
    Payload(Vec<u8>),
    /// An all-zero ECDSA-style signature of the right length (psychic signatures).
    ZeroSignature,
}

/// A token built from parts: the fuzzer chooses the algorithm, the header
/// and the claims, the token is signed honestly, then maybe mutated.
#[derive(Debug, Clone, Arbitrary)]
pub struct BuiltToken {
    pub alg: u8,
    pub kid: Choice,
    pub iss: Choice,
    pub aud: Choice,
    pub exp: Time,
    pub nbf: Time,
    pub iat: Time,
    pub scope: Vec<u8>,
    pub extra: Vec<(String, J)>,
    pub mutation: Mutation,
}

const SCOPES: [&str; 6] = [
    "svc-a:orders:read",
    "svc-a:admin",
    "svc-a:x",
    "svc-a:y",
    "svc-a:*",
    "svc-b:orders:read",
];

pub struct Minted {
    pub token: String,
    /// The honest, unmutated token.
    pub honest: String,
    pub alg: &'static str,
    pub claims: Map<String, Value>,
}

fn choice(c: &Choice, expected: Value) -> Option<Value> {
    match c {
        Choice::Expected => Some(expected),
        Choice::Absent => None,
        Choice::Other(j) => Some(j.to_value()),
    }
}

impl BuiltToken {
    pub fn mint(&self) -> Minted {
        let (alg, kid) = ALGS[usize::from(self.alg) % ALGS.len()];
        let mut claims = Map::new();
        for (k, v) in self.extra.iter().take(4) {
            claims.insert(k.clone(), v.to_value());
        }
        if let Some(v) = choice(&self.iss, json!(tk::ISS)) {
            claims.insert("iss".into(), v);
        }
        if let Some(v) = choice(&self.aud, json!(tk::AUD)) {
            claims.insert("aud".into(), v);
        }
        self.exp.put(&mut claims, "exp", Some(300));
        self.nbf.put(&mut claims, "nbf", None);
        self.iat.put(&mut claims, "iat", Some(-10));
        let scope: Vec<&str> = self
            .scope
            .iter()
            .take(4)
            .map(|b| SCOPES[usize::from(*b) % SCOPES.len()])
            .collect();
        claims.insert("scope".into(), json!(scope.join(" ")));
        claims.insert("sub".into(), json!("alice"));
        let kid_value = choice(&self.kid, json!(kid));
        // Signing (RSA above all) dominates an execution; the fuzzer mostly
        // varies the mutation of a token it has already built, so remember them.
        thread_local! {
            static SIGNED: RefCell<std::collections::HashMap<String, String>> = RefCell::new(std::collections::HashMap::new());
        }
        let memo_key = format!("{alg}|{kid_value:?}|{}", Value::Object(claims.clone()));
        if let Some(honest) = SIGNED.with(|m| m.borrow().get(&memo_key).cloned()) {
            let token = mutate(&honest, &self.mutation);
            return Minted { token, honest, alg, claims };
        }
        let honest = if alg == "none" {
            tk::forge(&json!({"alg": "none", "kid": kid}), &Value::Object(claims.clone()), b"")
        } else {
            match &kid_value {
                Some(Value::String(k)) => tk::sign(alg, Some(k), &claims),
                None => tk::sign(alg, None, &claims),
                Some(other) => {
                    // A non-string kid: forge the header, sign with HMAC (the one
                    // signer taking raw header JSON).
                    tk::hs256_with(
                        &tk::HMAC_SECRET,
                        &json!({"alg": "HS256", "kid": other}),
                        &Value::Object(claims.clone()),
                    )
                }
            }
        };
        SIGNED.with(|m| {
            let mut m = m.borrow_mut();
            if m.len() > 4096 {
                m.clear();
            }
            m.insert(memo_key, honest.clone());
        });
        let token = mutate(&honest, &self.mutation);
        Minted {
            token,
            honest,
            alg,
            claims,
        }
    }

    /// Whether the honest token's claims are valid at NOW for the policy
    /// (iss/aud/exp/nbf/iat as the filter checks them, 60 s default skew).
    pub fn claims_valid(&self) -> bool {
        let t_ok = |t: &Time, required: bool, past: bool| match t {
            Time::Absent => true,
            Time::Offset(o) => {
                let o = i64::from(*o);
                if past { o <= 60 } else { o >= -60 }
            }
            Time::Raw(_) => !required && false,
        };
        matches!(self.iss, Choice::Expected)
            && matches!(self.aud, Choice::Expected)
            && t_ok(&self.exp, true, false)
            && t_ok(&self.nbf, false, true)
            && t_ok(&self.iat, false, true)
    }
}

/// Applies `m` to the compact token `t`.
pub fn mutate(t: &str, m: &Mutation) -> String {
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    while parts.len() < 3 {
        parts.push(String::new());
    }
    match m {
        Mutation::None => t.to_owned(),
        Mutation::Xor { at, with } => {
            let mut b = t.as_bytes().to_vec();
            if !b.is_empty() {
                let i = usize::from(*at) % b.len();
                b[i] ^= with;
            }
            String::from_utf8_lossy(&b).into_owned()
        }
        Mutation::Truncate(at) => {
            let i = usize::from(*at) % (t.len() + 1);
            t.get(..i).unwrap_or(t).to_owned()
        }
        Mutation::Insert { at, byte } => {
            let mut b = t.as_bytes().to_vec();
            let i = usize::from(*at) % (b.len() + 1);
            b.insert(i, *byte);
            String::from_utf8_lossy(&b).into_owned()
        }
        Mutation::Signature(sig) => format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig)),
        Mutation::Header(fields) => {
            let mut h = Map::new();
            for (k, v) in fields.iter().take(6) {
                h.insert(k.clone(), v.to_value());
            }
            format!(
                "{}.{}.{}",
                B64.encode(Value::Object(h).to_string()),
                parts[1],
                parts[2]
            )
        }
        Mutation::Payload(p) => format!("{}.{}.{}", parts[0], B64.encode(p), parts[2]),
        Mutation::ZeroSignature => {
            let n = B64.decode(&parts[2]).map(|s| s.len()).unwrap_or(64).max(1);
            format!("{}.{}.{}", parts[0], parts[1], B64.encode(vec![0u8; n]))
        }
    }
}

/// XORs `mask` into `buf` from position `at` on, wrapping around (the
/// differential targets' signature mutation). An empty `buf` is left alone.
pub fn xor_wrapping(buf: &mut [u8], at: u8, mask: &[u8]) {
    if buf.is_empty() {
        return;
    }
    let len = buf.len();
    for (i, m) in mask.iter().enumerate() {
        buf[(usize::from(at) + i) % len] ^= m;
    }
}
