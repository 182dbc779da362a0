//! Request facts x policy -> decision.

use crate::compile::{Access, Policy, Rule, ScopeExpr};
use crate::principal::Principal;
use crate::reason::Reason;
use crate::routes::normalize;
use crate::token::{Bearer, bearer};
use crate::verify::{Failure, verify};

/// The facts about one request that the decision needs. The shim gathers them
/// from the host; tests and the CLI build them directly.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path` as received (normalised here).
    pub path: &'a str,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// Current time, Unix seconds, from the host clock.
    pub now_unix_seconds: i64,
}

/// The outcome for one request.
#[derive(Debug, Clone)]
pub enum Decision {
    Allow(Allow),
    Deny(Deny),
}

impl Decision {
    pub fn reason(&self) -> Reason {
        match self {
            Decision::Allow(a) => a.reason,
            Decision::Deny(d) => d.reason,
        }
    }
    pub fn rule(&self) -> Option<&str> {
        match self {
            Decision::Allow(a) => Some(&a.rule),
            Decision::Deny(d) => d.rule.as_deref(),
        }
    }
}

/// Let the request through, after editing its headers.
#[derive(Debug, Clone)]
pub struct Allow {
    pub rule: String,
    /// [`Reason::Allowed`] or [`Reason::Public`].
    pub reason: Reason,
    pub principal: Option<Principal>,
    /// Headers to remove before forwarding (lower case): inbound copies of
    /// every header the filter writes, and the token unless forwarded.
    pub remove_headers: Vec<String>,
    /// Headers to set (lower case name, value), after the removals.
    pub set_headers: Vec<(String, String)>,
    /// Why a token on a public route was ignored, for the debug log.
    pub ignored_token: Option<Failure>,
}

/// Refuse the request with a local reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    /// 400, 401 or 403.
    pub status: u16,
    pub reason: Reason,
    pub rule: Option<String>,
    pub realm: String,
    /// For 403 insufficient_scope: the scopes that would satisfy the rule.
    pub required_scopes: Vec<String>,
    /// Detail for the debug log; never sent to the client.
    pub detail: String,
}

impl Policy {
    /// Decides one request. Deterministic: same policy, facts and time, same decision.
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        let deny = |status, reason, rule: Option<&Rule>, detail: String| {
            Decision::Deny(Deny {
                status,
                reason,
                rule: rule.map(|r| r.name.clone()),
                realm: self.realm.clone(),
                required_scopes: Vec::new(),
                detail,
            })
        };
        let path = match normalize(req.path) {
            Ok(p) => p,
            Err(e) => {
                return deny(
                    400,
                    Reason::Malformed,
                    None,
                    format!("path {:?}: {e}", req.path),
                );
            }
        };
        let Some(rule) = self.rules.iter().find(|r| r.matches(req.method, &path)) else {
            return deny(
                403,
                Reason::NoMatchingRule,
                None,
                format!("{} {path} matches no rule", req.method),
            );
        };

        let token = match bearer(req.authorization) {
            Bearer::Absent => None,
            Bearer::Empty => Some(Err(Failure {
                reason: Reason::Malformed,
                detail: "Authorization: Bearer with an empty token".into(),
            })),
            Bearer::Token(t) => Some(verify(
                &self.providers,
                t,
                req.now_unix_seconds,
                self.max_token_bytes,
            )),
        };

        let principal = match (&rule.access, token) {
            (Access::Public, None) => None,
            (Access::Public, Some(Ok(p))) => Some(p),
            (Access::Public, Some(Err(f))) => {
                return Decision::Allow(self.allow(rule, Reason::Public, None, Some(f)));
            }
            (_, None) => {
                return deny(
                    401,
                    Reason::TokenMissing,
                    Some(rule),
                    "no bearer token".into(),
                );
            }
            (_, Some(Err(f))) => return deny(401, f.reason, Some(rule), f.detail),
            (_, Some(Ok(p))) => Some(p),
        };

        match (&rule.access, principal) {
            (Access::Scopes(expr), Some(p)) => match missing(expr, &p) {
                None => Decision::Allow(self.allow(rule, Reason::Allowed, Some(p), None)),
                Some(needed) => Decision::Deny(Deny {
                    status: 403,
                    reason: Reason::InsufficientScope,
                    rule: Some(rule.name.clone()),
                    realm: self.realm.clone(),
                    detail: format!(
                        "subject {:?} has scopes {:?}; rule {} needs {needed:?}",
                        p.subject, p.scopes, rule.name
                    ),
                    required_scopes: needed,
                }),
            },
            (Access::Public, p) => Decision::Allow(self.allow(rule, Reason::Public, p, None)),
            (_, p) => Decision::Allow(self.allow(rule, Reason::Allowed, p, None)),
        }
    }

    fn allow(
        &self,
        rule: &Rule,
        reason: Reason,
        principal: Option<Principal>,
        ignored_token: Option<Failure>,
    ) -> Allow {
        let mut remove_headers = self.managed_headers.clone();
        let mut set_headers = Vec::new();
        let provider = principal
            .as_ref()
            .and_then(|p| self.providers.iter().find(|pr| pr.name == p.provider));
        // The token is forwarded only if the provider that verified it says so;
        // an unverified token is never forwarded.
        if !provider.is_some_and(|p| p.forward_token) {
            remove_headers.push("authorization".to_owned());
        }
        if let (Some(p), Some(provider)) = (&principal, provider) {
            for (claim, header) in &provider.claims_to_headers {
                if let Some(value) = p.claims.get(claim).and_then(header_value) {
                    set_headers.push((header.clone(), value));
                }
            }
        }
        Allow {
            rule: rule.name.clone(),
            reason,
            principal,
            remove_headers,
            set_headers,
            ignored_token,
        }
    }
}

/// A claim as a header value: strings as they are, other JSON as compact JSON.
/// Values that could split or corrupt a header (control characters) are dropped.
fn header_value(v: &serde_json::Value) -> Option<String> {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => return None,
        other => other.to_string(),
    };
    (!s.bytes().any(|b| b.is_ascii_control())).then_some(s)
}

/// `None` if the principal satisfies `expr`; otherwise the scopes of the
/// alternative that needs the fewest extra grants (every scope of it, for the
/// `scope` attribute of `WWW-Authenticate`).
fn missing(expr: &ScopeExpr, p: &Principal) -> Option<Vec<String>> {
    fn walk(expr: &ScopeExpr, p: &Principal) -> (usize, Vec<String>) {
        match expr {
            ScopeExpr::Scope(s) => (usize::from(!p.has_scope(s)), vec![s.clone()]),
            ScopeExpr::AllOf(items) => {
                let mut lacking = 0;
                let mut scopes = Vec::new();
                for item in items {
                    let (l, s) = walk(item, p);
                    lacking += l;
                    for x in s {
                        if !scopes.contains(&x) {
                            scopes.push(x);
                        }
                    }
                }
                (lacking, scopes)
            }
            ScopeExpr::AnyOf(items) => items
                .iter()
                .map(|i| walk(i, p))
                .min_by_key(|(l, s)| (*l, s.len()))
                .unwrap_or((1, Vec::new())),
        }
    }
    let (lacking, scopes) = walk(expr, p);
    (lacking > 0).then_some(scopes)
}
