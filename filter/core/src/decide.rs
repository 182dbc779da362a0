//! Request facts x policy -> decision.

use crate::compile::{Access, Policy, Rule, ScopeExpr};
use crate::principal::Principal;
use crate::reason::Reason;
use crate::routes::normalize;
use crate::token::{Found, TokenSource, cookies_without, extract, path_without_query_param};
use crate::verify::{Failure, verify};

/// The facts about one request that the decision needs. The shim gathers them
/// from the host; tests and the CLI build them directly.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path` as received (normalised here).
    pub path: &'a str,
    /// Request headers (lower-case names, first value of each). The shim
    /// passes those of [`Policy::wanted_headers`]; others are ignored.
    pub headers: &'a [(&'a str, &'a str)],
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

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        match name {
            ":method" => Some(self.method),
            ":path" => Some(self.path),
            _ => self
                .headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v),
        }
    }
}

/// The token a request carries, and every source it was found at.
struct Presented {
    token: String,
    sources: Vec<usize>,
}

impl Policy {
    /// Looks at every configured token source. Several different tokens, or a
    /// location holding nothing usable, is a failure.
    fn presented_token(&self, req: &Request<'_>) -> Result<Option<Presented>, Failure> {
        let mut found: Option<Presented> = None;
        for (i, source) in self.sources.iter().enumerate() {
            match extract(source, |n| req.header(n)) {
                Found::Absent => {}
                Found::Empty => {
                    return Err(Failure {
                        reason: Reason::Malformed,
                        detail: format!("token location {source:?} is present but empty"),
                    });
                }
                Found::Token(t) => match &mut found {
                    None => {
                        found = Some(Presented {
                            token: t,
                            sources: vec![i],
                        })
                    }
                    Some(p) if p.token == t => p.sources.push(i),
                    Some(_) => {
                        return Err(Failure {
                            reason: Reason::MultipleTokens,
                            detail: "different tokens in several locations".into(),
                        });
                    }
                },
            }
        }
        Ok(found)
    }

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
                    Reason::InvalidPath,
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

        let presented = self.presented_token(req);
        let token = match &presented {
            Ok(None) => None,
            Err(f) => Some(Err(f.clone())),
            Ok(Some(p)) => Some(verify(
                &self.providers,
                |provider| p.sources.iter().any(|s| provider.sources.contains(s)),
                &p.token,
                req.now_unix_seconds,
                self.max_token_bytes,
            )),
        };
        let found_at: &[usize] = match &presented {
            Ok(Some(p)) => &p.sources,
            _ => &[],
        };

        let principal = match (&rule.access, token) {
            (Access::Public, None) => None,
            (Access::Public, Some(Ok(p))) => Some(p),
            (Access::Public, Some(Err(f))) => {
                return Decision::Allow(self.allow(
                    req,
                    rule,
                    Reason::Public,
                    None,
                    found_at,
                    Some(f),
                ));
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
                None => {
                    Decision::Allow(self.allow(req, rule, Reason::Allowed, Some(p), found_at, None))
                }
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
            (Access::Public, p) => {
                Decision::Allow(self.allow(req, rule, Reason::Public, p, found_at, None))
            }
            (_, p) => Decision::Allow(self.allow(req, rule, Reason::Allowed, p, found_at, None)),
        }
    }

    fn allow(
        &self,
        req: &Request<'_>,
        rule: &Rule,
        reason: Reason,
        principal: Option<Principal>,
        found_at: &[usize],
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
            let mut path = req.path.to_owned();
            let mut cookie = req.header("cookie").map(str::to_owned);
            for source in found_at.iter().filter_map(|i| self.sources.get(*i)) {
                match source {
                    TokenSource::Header { name, .. } => {
                        if !remove_headers.contains(name) {
                            remove_headers.push(name.clone());
                        }
                    }
                    TokenSource::Query(param) => path = path_without_query_param(&path, param),
                    TokenSource::Cookie(name) => {
                        cookie = cookie.and_then(|c| cookies_without(&c, name));
                    }
                }
            }
            if path != req.path {
                set_headers.push((":path".to_owned(), path));
            }
            if cookie.as_deref() != req.header("cookie") {
                match cookie {
                    Some(c) => set_headers.push(("cookie".to_owned(), c)),
                    None => remove_headers.push("cookie".to_owned()),
                }
            }
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
