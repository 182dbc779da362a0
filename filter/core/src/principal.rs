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
    /// What was already worked out for this principal (internal; start
    /// with `Default::default()`).
    pub memo: Memo,
}

/// Work done once per principal and reused while it is served from the
/// verified-token cache: which rules allowed it, and the claim headers it
/// forwards. Both depend only on the principal and the compiled policy, and
/// both are bound to one policy (its compile id). Not part of the
/// principal's value: equality ignores it and a clone starts empty.
#[derive(Default)]
pub struct Memo {
    pub(crate) rules: RuleMemo,
    forwarded: std::sync::OnceLock<(u64, ClaimHeaders)>,
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

/// `claims_to_headers` of the principal's provider: (header, value).
pub(crate) type ClaimHeaders = std::sync::Arc<[(std::sync::Arc<str>, std::sync::Arc<str>)]>;

impl Memo {
    /// The claim headers computed under policy `policy`, computing them
    /// with `make` the first time. A principal first seen by another policy
    /// gets them computed on every call.
    pub(crate) fn claim_headers(&self, policy: u64, make: impl FnOnce() -> ClaimHeaders) -> ClaimHeaders {
        if let Some((id, h)) = self.forwarded.get() {
            if *id == policy {
                return h.clone();
            }
            return make();
        }
        let h = make();
        let _ = self.forwarded.set((policy, h.clone()));
        h
    }
}

/// Which rules of which compiled policy already allowed a principal, so that
/// a principal served from the verified-token cache skips the scope and claim
/// evaluation on its next requests to those rules. The evaluation depends
/// only on the principal, the rule and the policy, all fixed for the life of
/// a cache entry; the memo is bound to one policy (its compile id), holds at
/// most four rules, and remembers only allows. It is not part of the
/// principal's value: equality ignores it and a clone starts empty.
#[derive(Default)]
pub struct RuleMemo([std::sync::atomic::AtomicU64; 4]);

impl RuleMemo {
    /// Packed slot: policy id (32 bits) | rule index + 1 (31 bits) | super-admin (1 bit).
    fn slot(policy: u64, rule: usize) -> Option<u64> {
        let rule = u64::try_from(rule).ok()?.checked_add(1).filter(|r| *r < 1 << 31)?;
        Some(((policy & 0xffff_ffff) << 32) | (rule << 1))
    }

    /// How rule `rule` of policy `policy` allowed this principal before:
    /// `Some(super_admin)`, or `None` if it is not remembered.
    pub(crate) fn allowed(&self, policy: u64, rule: usize) -> Option<bool> {
        let want = Self::slot(policy, rule)?;
        self.0
            .iter()
            .map(|s| s.load(std::sync::atomic::Ordering::Relaxed))
            .find(|v| v & !1 == want)
            .map(|v| v & 1 == 1)
    }

    /// Remembers that rule `rule` of policy `policy` allowed this principal.
    pub(crate) fn remember(&self, policy: u64, rule: usize, super_admin: bool) {
        let Some(v) = Self::slot(policy, rule) else {
            return;
        };
        let v = v | u64::from(super_admin);
        let slots = &self.0;
        // An empty slot or one of another policy, else by rule index.
        let free = slots.iter().find(|s| {
            let old = s.load(std::sync::atomic::Ordering::Relaxed);
            old == 0 || old >> 32 != v >> 32
        });
        if let Some(s) = free.or_else(|| slots.get(rule % 4)) {
            s.store(v, std::sync::atomic::Ordering::Relaxed);
        }
    }
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

/// A path to a (possibly nested) claim: `["realm_access", "roles"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(Vec<String>);

impl ClaimPath {
    /// From config: a dot-separated string (`"org.id"`) or an array of
    /// segments (`["https://example.com/roles"]`, for names with dots).
    pub fn from_json(v: &Value) -> Result<ClaimPath, String> {
        let segments: Vec<String> = match v {
            Value::String(s) => s.split('.').map(str::to_owned).collect(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or("a claim path array holds strings only")?,
            _ => return Err("a claim path is a string or an array of strings".into()),
        };
        if segments.is_empty() || segments.iter().any(String::is_empty) {
            return Err("a claim path has no empty segments".into());
        }
        Ok(ClaimPath(segments))
    }

    /// A one-segment path.
    pub fn single(name: &str) -> ClaimPath {
        ClaimPath(vec![name.to_owned()])
    }

    /// Sets the claim at this path, creating nested objects on the way
    /// (replacing non-objects in the way).
    pub fn insert(&self, claims: &mut Map<String, Value>, value: Value) {
        let Some((last, parents)) = self.0.split_last() else {
            return;
        };
        let mut cur = claims;
        for s in parents {
            let slot = cur
                .entry(s.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(next) = slot else {
                return;
            };
            cur = next;
        }
        cur.insert(last.clone(), value);
    }

    pub fn get<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let mut segs = self.0.iter();
        let mut cur = claims.get(segs.next()?)?;
        for s in segs {
            cur = cur.as_object()?.get(s)?;
        }
        Some(cur)
    }
}

impl core::fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.iter().any(|s| s.contains('.')) {
            write!(f, "{:?}", self.0)
        } else {
            f.write_str(&self.0.join("."))
        }
    }
}

/// Words of a claim that is a space-delimited string or an array of strings
/// (other array items are ignored). Duplicates dropped, order kept.
fn words(v: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    };
    match v {
        Some(Value::String(s)) => s.split(' ').for_each(&mut push),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(&mut push),
        _ => {}
    }
    out
}

/// Where scopes and roles come from, and what local roles mean. Compiled from
/// the top-level `scope_claim`, `roles_claim` and `roles`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantConfig {
    /// `None`: `scope` (space-delimited), or if absent `scp` (array or string).
    pub(crate) scope_claim: Option<ClaimPath>,
    pub(crate) roles_claim: Option<ClaimPath>,
    /// Role name -> scopes (may carry a trailing `*` wildcard segment).
    pub(crate) roles: std::collections::BTreeMap<String, Vec<String>>,
}

impl GrantConfig {
    /// Scopes the token itself carries.
    pub fn token_scopes(&self, claims: &Map<String, Value>) -> Vec<String> {
        match &self.scope_claim {
            Some(path) => words(path.get(claims)),
            None => match claims.get("scope") {
                Some(v @ Value::String(_)) => words(Some(v)),
                _ => words(claims.get("scp")),
            },
        }
    }

    /// What a principal is granted: its scopes and those of its local roles.
    pub fn grants(&self, principal: &Principal) -> Grants {
        let scopes = self.token_scopes(&principal.claims);
        let mut roles = Vec::new();
        let mut effective: std::collections::BTreeSet<String> = scopes.iter().cloned().collect();
        if let Some(path) = self.roles_claim.as_ref().filter(|_| !self.roles.is_empty()) {
            for role in words(path.get(&principal.claims)) {
                if let Some(granted) = self.roles.get(&role) {
                    effective.extend(granted.iter().cloned());
                    roles.push(role);
                }
            }
        }
        Grants {
            scopes,
            roles,
            effective,
        }
    }
}

/// The scopes a principal holds, after local role expansion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// From the token, in token order.
    pub scopes: Vec<String>,
    /// Role names from the token that this service defines (others are ignored).
    pub roles: Vec<String>,
    effective: std::collections::BTreeSet<String>,
}

impl Grants {
    /// Every granted scope (token scopes and role scopes), sorted.
    pub fn effective(&self) -> impl Iterator<Item = &str> {
        self.effective.iter().map(String::as_str)
    }

    /// Whether `required` is granted: exactly (case-sensitive), or by a
    /// wildcard grant `P:*` where `required` is `P:` followed by at least one
    /// more character (`svc-a:orders:*` grants `svc-a:orders:read` and
    /// `svc-a:orders:read:own`; `svc-a:*` grants all of `svc-a:`). A `*` that is
    /// not a whole trailing segment after a prefix (`*`, `svc-a:or*`) is just a
    /// literal scope.
    pub fn covers(&self, required: &str) -> bool {
        if self.effective.contains(required) {
            return true;
        }
        let mut candidate = String::with_capacity(required.len() + 2);
        for (i, _) in required.match_indices(':') {
            let (Some(prefix), Some(rest)) = (required.get(..i), required.get(i + 1..)) else {
                continue;
            };
            if prefix.is_empty() || rest.is_empty() {
                continue;
            }
            candidate.clear();
            candidate.push_str(prefix);
            candidate.push_str(":*");
            if self.effective.contains(&candidate) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh).
    use serde_json::json;
    use std::sync::Arc;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn principal(claims: Value) -> Principal {
        Principal {
            provider: "main".into(),
            issuer: "https://auth.test".into(),
            subject: None,
            scopes: Vec::new(),
            claims: claims.as_object().unwrap().clone(),
            memo: Default::default(),
        }
    }

    #[test]
    fn the_rule_memo_is_bound_to_a_policy_and_a_rule() {
        let m = RuleMemo::default();
        assert_eq!(m.allowed(1, 0), None);
        m.remember(1, 0, false);
        m.remember(1, 7, true);
        assert_eq!(m.allowed(1, 0), Some(false));
        assert_eq!(m.allowed(1, 7), Some(true));
        assert_eq!(m.allowed(1, 1), None, "another rule");
        assert_eq!(m.allowed(2, 0), None, "another policy");
        assert_eq!(m.allowed(1 + (1 << 32), 0), Some(false), "ids agree in their low 32 bits");
        // Four slots: more rules overwrite, never confuse.
        for r in 10..20 {
            m.remember(1, r, false);
        }
        for r in 0..30 {
            assert!(m.allowed(1, r).is_none_or(|sa| !sa || r == 7), "rule {r}");
        }
        assert!(m.allowed(1, 19).is_some(), "the last one is kept");
        // Another policy takes the slots of the old one.
        m.remember(2, 3, false);
        assert_eq!(m.allowed(2, 3), Some(false));
        // Rule indexes beyond the packing are never remembered.
        m.remember(1, 1 << 31, false);
        assert_eq!(m.allowed(1, 1 << 31), None);
        // Not part of the principal's value: a principal's memo (rules and
        // claim headers) starts empty in a clone, and equality ignores it.
        let memo = Memo {
            rules: m,
            ..Memo::default()
        };
        let headers: ClaimHeaders = vec![(Arc::from("x-sub"), Arc::from("alice"))].into();
        assert_eq!(memo.claim_headers(2, || headers.clone()), headers);
        let cloned = memo.clone();
        assert_eq!(cloned.rules.allowed(2, 3), None);
        assert!(cloned.forwarded.get().is_none());
        assert!(cloned == memo);
    }

    fn grants_of(scopes: &[&str]) -> Grants {
        GrantConfig::default().grants(&principal(json!({"scp": scopes})))
    }

    #[test]
    fn wildcard_grants_cover_what_they_name_and_never_more() {
        let g = grants_of(&["svc-a:orders:*"]);
        assert!(g.covers("svc-a:orders:read"));
        assert!(g.covers("svc-a:orders:read:own"));
        assert!(
            !g.covers("svc-a:orders"),
            "the wildcard needs a segment after the prefix"
        );
        assert!(!g.covers("svc-a:ordersx:read"));
        assert!(!g.covers("svc-a:invoices:read"));
        assert!(!g.covers("svc-b:orders:read"));
        let g = grants_of(&["svc-a:*"]);
        assert!(g.covers("svc-a:orders:read"));
        assert!(g.covers("svc-a:read"));
        assert!(!g.covers("svc-a"));
        assert!(!g.covers("svc-ab:read"));
    }

    #[test]
    fn plain_grants_match_exactly_and_case_sensitively() {
        let g = grants_of(&["svc-a:read"]);
        assert!(g.covers("svc-a:read"));
        for other in [
            "svc-a:read-all",
            "svc-a:read:all",
            "svc-a:READ",
            "svc-a:rea",
            "svc-a",
        ] {
            assert!(!g.covers(other), "{other}");
        }
    }

    #[test]
    fn malformed_wildcards_are_literal_scopes() {
        let g = grants_of(&["*", "svc-a:or*", ":*"]);
        assert!(!g.covers("svc-a:orders"));
        assert!(!g.covers("svc-a:x"));
        assert!(!g.covers("a:b"));
        assert!(
            g.covers("*"),
            "a literal scope named * still matches itself"
        );
    }

    #[test]
    fn scopes_come_from_scope_then_scp_or_a_configured_claim() {
        let cfg = GrantConfig::default();
        let p = principal(json!({"scope": "a:x b:y a:x", "scp": ["c:z"]}));
        assert_eq!(cfg.token_scopes(&p.claims), ["a:x", "b:y"]);
        let p = principal(json!({"scp": ["c:z", 3, "d:w"]}));
        assert_eq!(cfg.token_scopes(&p.claims), ["c:z", "d:w"]);
        let p = principal(json!({"scp": "c:z d:w"}));
        assert_eq!(
            cfg.token_scopes(&p.claims),
            ["c:z", "d:w"],
            "Azure AD puts scp as a string"
        );
        let cfg = GrantConfig {
            scope_claim: Some(ClaimPath::from_json(&json!("realm_access.scopes")).unwrap()),
            ..GrantConfig::default()
        };
        let p = principal(json!({"scope": "ignored:x", "realm_access": {"scopes": ["k:1"]}}));
        assert_eq!(cfg.token_scopes(&p.claims), ["k:1"]);
        let cfg = GrantConfig {
            scope_claim: Some(ClaimPath::from_json(&json!(["https://x.example/perms"])).unwrap()),
            ..GrantConfig::default()
        };
        let p = principal(json!({"https://x.example/perms": "p:1 p:2"}));
        assert_eq!(cfg.token_scopes(&p.claims), ["p:1", "p:2"]);
    }

    #[test]
    fn local_roles_expand_into_their_scopes_and_unknown_roles_grant_nothing() {
        let cfg = GrantConfig {
            scope_claim: None,
            roles_claim: Some(ClaimPath::single("roles")),
            roles: [
                (
                    "orders-admin".to_owned(),
                    vec![
                        "svc-a:orders:read".to_owned(),
                        "svc-a:orders:write".to_owned(),
                    ],
                ),
                ("auditor".to_owned(), vec!["svc-a:audit:*".to_owned()]),
            ]
            .into_iter()
            .collect(),
        };
        let g = cfg.grants(&principal(
            json!({"scope": "svc-a:me", "roles": ["orders-admin", "root"]}),
        ));
        assert_eq!(g.roles, ["orders-admin"]);
        assert!(g.covers("svc-a:orders:write") && g.covers("svc-a:me"));
        assert!(!g.covers("svc-a:audit:read"));
        let g = cfg.grants(&principal(json!({"roles": "auditor"})));
        assert!(g.covers("svc-a:audit:read"), "a role may grant a wildcard");
        let g = cfg.grants(&principal(json!({"roles": {"orders-admin": true}})));
        assert!(
            g.roles.is_empty(),
            "a roles claim that is an object grants nothing"
        );
    }

    #[test]
    fn claim_paths_walk_nested_objects() {
        let p = ClaimPath::from_json(&json!("org.id")).unwrap();
        let c = json!({"org": {"id": 7}, "org.id": 8});
        assert_eq!(p.get(c.as_object().unwrap()), Some(&json!(7)));
        let p = ClaimPath::from_json(&json!(["org.id"])).unwrap();
        assert_eq!(p.get(c.as_object().unwrap()), Some(&json!(8)));
        assert!(ClaimPath::from_json(&json!("a..b")).is_err());
        assert!(ClaimPath::from_json(&json!([])).is_err());
        assert!(ClaimPath::from_json(&json!(5)).is_err());
    }
}
