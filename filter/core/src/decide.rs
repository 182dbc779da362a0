//! Request facts x policy -> decision.

use crate::cache::TokenCache;
use crate::compile::{Access, Policy, Rule};
use std::sync::Arc;

use crate::principal::{ClaimPath, Principal};
use crate::reason::Reason;
use crate::revocation::Check;
use crate::routes::{normalize_cow, parse_authority};
use crate::rules::{DRY_RUN_HEADER, RouteFacts, Verdict};
use crate::token::{Found, TokenSource, cookies_without, extract, path_without_query_param};
use crate::verify::{Failure, KeySource, StaticKeysOnly, verify_with_keys};

/// The facts about one request that the decision needs. The shim gathers them
/// from the host; tests and the CLI build them directly.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path` as received (normalised here).
    pub path: &'a str,
    /// Request headers (lower-case names, first value of each), `:authority`
    /// included when listed. The shim passes those of
    /// [`Policy::headers_for`]; others are ignored.
    pub headers: &'a [(&'a str, &'a str)],
    /// Current time, Unix seconds, from the host clock.
    pub now_unix_seconds: i64,
    /// Envoy's route name (`xds.route_name`), when [`Policy::wants_route_name`].
    pub route_name: Option<&'a str>,
}

/// The outcome for one request.
#[derive(Debug, Clone)]
pub enum Decision {
    Allow(Allow),
    Deny(Deny),
    /// The decision needs keys the shim must fetch first (remote JWKS not
    /// fetched yet, or an unknown `kid` that a refetch may bring). The shim
    /// pauses the request and decides again when the fetch ends, or answers
    /// with `fallback` if it cannot wait.
    Pending(Pending),
}

/// See [`Decision::Pending`].
#[derive(Debug, Clone)]
pub struct Pending {
    /// Index of the provider whose keys are needed.
    pub provider: usize,
    /// `true`: keys exist but none has the token's `kid`; a refetch may help.
    pub unknown_kid: bool,
    /// The denial if waiting is not possible (503 `jwks_unavailable`, or 401 `unknown_kid`).
    pub fallback: Deny,
    /// What to do then: `Deny(fallback)`, or in dry-run an `Allow` carrying it.
    /// For a revocation wait: the decision on a stale list (the 503 denial,
    /// or with `on_stale: fail_open` the allow).
    pub otherwise: Box<Decision>,
    /// `true`: waiting for the provider's first revocation poll, not for keys.
    pub revocation: bool,
    /// `Some`: not keys but an RFC 7662 introspection of the token by
    /// `provider` is needed (fallback 503 `introspection_unavailable`). The
    /// shim calls out, pauses, and decides again with the answer.
    pub introspect: Option<crate::introspection::IntrospectionNeed>,
}

impl Decision {
    pub fn reason(&self) -> Reason {
        match self {
            Decision::Allow(a) => a.reason,
            Decision::Deny(d) => d.reason,
            Decision::Pending(p) => p.fallback.reason,
        }
    }
    pub fn rule(&self) -> Option<&str> {
        match self {
            Decision::Allow(a) => a.rule.as_deref(),
            Decision::Deny(d) => d.rule.as_deref(),
            Decision::Pending(p) => p.fallback.rule.as_deref(),
        }
    }
    /// The denial this request got, or in dry-run would have got.
    pub fn would_deny(&self) -> Option<&Deny> {
        match self {
            Decision::Allow(a) => a.dry_run.as_deref(),
            Decision::Deny(d) => Some(d),
            Decision::Pending(p) => Some(&p.fallback),
        }
    }
}

/// Let the request through, after editing its headers.
#[derive(Debug, Clone)]
pub struct Allow {
    /// The matched rule (or the default rule); `None` for a CORS preflight
    /// bypass, and in dry-run for a request no rule matched.
    pub rule: Option<Arc<str>>,
    /// The decided reason: [`Reason::Allowed`], [`Reason::Public`],
    /// [`Reason::SuperAdmin`], [`Reason::CorsPreflight`]; in dry-run, the
    /// reason of the denial that was not enforced (see `dry_run`).
    pub reason: Reason,
    pub principal: Option<Arc<Principal>>,
    /// Headers to remove before forwarding (lower case): inbound copies of
    /// every header the filter writes, and the token unless forwarded.
    pub remove_headers: Vec<Arc<str>>,
    /// Headers to set (lower case name, value), after the removals.
    pub set_headers: Vec<(Arc<str>, Arc<str>)>,
    /// Why a token on a public route was ignored, for the debug log.
    pub ignored_token: Option<Failure>,
    /// Dry-run: the denial that was decided but not enforced.
    pub dry_run: Option<Box<Deny>>,
    /// Allowed although the provider's revocation list is stale
    /// (`on_stale: fail_open`): counted and logged by the shim.
    pub revocation_stale: bool,
}

/// Refuse the request with a local reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    /// 400, 401, 403, or 503 (keys or revocation list unavailable).
    pub status: u16,
    pub reason: Reason,
    pub rule: Option<String>,
    pub realm: String,
    /// For 403 insufficient_scope: the scopes that would satisfy the rule.
    pub required_scopes: Vec<String>,
    /// Detail for the debug log; never sent to the client.
    pub detail: String,
    /// The provider that verified (or chose, by `iss`) the token, if any: for per-provider counters.
    pub provider: Option<String>,
}

impl Allow {
    /// Whether `name` (lower case) is removed before forwarding.
    pub fn removes(&self, name: &str) -> bool {
        self.remove_headers.iter().any(|h| &**h == name)
    }

    /// The value header `name` (lower case) is set to, if it is.
    pub fn sets(&self, name: &str) -> Option<&str> {
        self.set_headers
            .iter()
            .find(|(h, _)| &**h == name)
            .map(|(_, v)| &**v)
    }
}

impl<'a> Request<'a> {
    fn header(&self, name: &str) -> Option<&'a str> {
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

/// A verified token whose provider's revocation list is stale.
#[derive(Clone, Copy)]
struct StaleRevocation {
    provider: usize,
    never_polled: bool,
    open: bool,
}

/// Where the principal comes from.
enum Identity<'k> {
    /// The request's token, verified with these keys.
    FromRequest(&'k dyn KeySource),
    /// Already established (the CLI's `--claims`).
    Given(Option<Principal>),
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
fn is_preflight(req: &Request<'_>) -> bool {
    req.method == "OPTIONS"
        && req.header("origin").is_some()
        && req.header("access-control-request-method").is_some()
}

/// The token a request carries, and every source it was found at.
struct Presented<'r> {
    /// Borrowed from the request unless decoded from a query string.
    token: std::borrow::Cow<'r, str>,
    sources: Places,
}

/// The token sources (indices into the policy's) one token was found at:
/// up to four in place, so a request allocates nothing for them.
#[derive(Default)]
struct Places {
    inline: [usize; 4],
    len: usize,
    spilled: Vec<usize>,
}

impl Places {
    fn one(i: usize) -> Places {
        Places {
            inline: [i, 0, 0, 0],
            len: 1,
            spilled: Vec::new(),
        }
    }

    fn push(&mut self, i: usize) {
        if self.spilled.is_empty()
            && let Some(slot) = self.inline.get_mut(self.len)
        {
            *slot = i;
            self.len += 1;
            return;
        }
        if self.spilled.is_empty() {
            self.spilled.extend_from_slice(self.inline.get(..self.len).unwrap_or(&[]));
        }
        self.spilled.push(i);
    }
}

impl std::ops::Deref for Places {
    type Target = [usize];

    fn deref(&self) -> &[usize] {
        if self.spilled.is_empty() {
            self.inline.get(..self.len).unwrap_or(&[])
        } else {
            &self.spilled
        }
    }
}

impl Policy {
    /// Looks at every configured token source. Several different tokens, or a
    /// location holding nothing usable, is a failure.
    fn presented_token<'r>(&self, req: &Request<'r>) -> Result<Option<Presented<'r>>, Failure> {
        let mut found: Option<Presented> = None;
        for (i, source) in self.sources.iter().enumerate() {
            match extract(source, |n| req.header(n)) {
                Found::Absent => {}
                Found::Empty => {
                    return Err(Failure {
                        reason: Reason::Malformed,
                        detail: format!("token location {source:?} is present but empty"),
                        provider: None,
                    });
                }
                Found::Token(t) => match &mut found {
                    None => {
                        found = Some(Presented {
                            token: t,
                            sources: Places::one(i),
                        })
                    }
                    Some(p) if p.token == t => p.sources.push(i),
                    Some(_) => {
                        return Err(Failure {
                            reason: Reason::MultipleTokens,
                            detail: "different tokens in several locations".into(),
                            provider: None,
                        });
                    }
                },
            }
        }
        Ok(found)
    }

    /// Decides one request with the policy's static keys only.
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        self.decide_with(req, &StaticKeysOnly)
    }

    /// Decides one request, with run-time fetched keys. Deterministic: same
    /// policy, facts, keys and time, same decision.
    pub fn decide_with(&self, req: &Request<'_>, keys: &dyn KeySource) -> Decision {
        self.decide_inner(req, Identity::FromRequest(keys))
    }

    /// Decides one request for an already established principal (or none),
    /// skipping token extraction and verification: `scopegate explain
    /// --claims`. Everything else is as in [`Policy::decide`].
    pub fn decide_as(&self, req: &Request<'_>, principal: Option<Principal>) -> Decision {
        self.decide_inner(req, Identity::Given(principal))
    }

    fn decide_inner(&self, req: &Request<'_>, identity: Identity<'_>) -> Decision {

        let deny = |status, reason, rule: Option<&Rule>, detail: String| Deny {
            status,
            reason,
            rule: rule.map(|r| r.name.to_string()),
            realm: self.realm.clone(),
            required_scopes: Vec::new(),
            detail,
            provider: None,
        };
        let path = match normalize_cow(req.path) {
            Ok(p) => p,
            Err(e) => {
                let d = deny(
                    400,
                    Reason::InvalidPath,
                    None,
                    format!("path {:?}: {e}", req.path),
                );
                return self.settle(req, None, Err(d), None, &[], None);
            }
        };

        if self.authz.cors_bypass && is_preflight(req) {
            // Preflights carry no credentials (Fetch standard); a token on one
            // is removed, unverified.
            let found = self
                .presented_token(req)
                .ok()
                .flatten()
                .map(|p| p.sources)
                .unwrap_or_default();
            return Decision::Allow(self.allow(
                req,
                None,
                Reason::CorsPreflight,
                None,
                &found,
                None,
            ));
        }
        let host = if self.authz.uses_hosts {
            req.header(":authority").and_then(parse_authority)
        } else {
            None
        };
        let facts = RouteFacts {
            method: req.method,
            path: &path,
            host: host.as_ref().map(|(h, p)| (h.as_str(), *p)),
            route_name: req.route_name,
        };
        let Some((rule_index, rule)) = self.authz.find_indexed(&facts) else {
            let d = deny(
                403,
                Reason::NoMatchingRule,
                None,
                format!("{} {path} matches no rule", req.method),
            );
            return self.settle(req, None, Err(d), None, &[], None);
        };

        let mut stale: Option<StaleRevocation> = None;
        let (presented, token) = match identity {
            Identity::Given(p) => (
                Ok(None),
                p.map(|p| Ok(self.with_configured_scopes(Arc::new(p)))),
            ),
            Identity::FromRequest(keys) => {
                let presented = self.presented_token(req);
                let token = match &presented {
                    Ok(None) => None,
                    Err(f) => Some(Err(f.clone())),
                    Ok(Some(p)) => Some(
                        self.verify_cached(p, req.now_unix_seconds, keys)
                            .and_then(|pr| {
                                self.revocation_check(
                                    pr,
                                    rule,
                                    req.now_unix_seconds,
                                    keys,
                                    &mut stale,
                                )
                            }),
                    ),
                };
                (presented, token)
            }
        };
        let found_at: &[usize] = match &presented {
            Ok(Some(p)) => &p.sources,
            _ => &[],
        };

        let decision = match (&rule.access, token) {
            (Access::Public, None) => {
                self.settle(req, Some(rule), Ok(Reason::Public), None, found_at, None)
            }
            (Access::Public, Some(Ok(p))) => {
                self.settle(req, Some(rule), Ok(Reason::Public), Some(p), found_at, None)
            }
            (Access::Public, Some(Err(f))) => {
                self.settle(req, Some(rule), Ok(Reason::Public), None, found_at, Some(f))
            }
            (_, None) => {
                let d = deny(
                    401,
                    Reason::TokenMissing,
                    Some(rule),
                    "no bearer token".into(),
                );
                self.settle(req, Some(rule), Err(d), None, found_at, None)
            }
            (_, Some(Err(f))) => self.token_refused(req, rule, f, found_at),
            (_, Some(Ok(p))) => match self.evaluate(rule_index, rule, &p) {
                Verdict::Allow(reason) => {
                    self.settle(req, Some(rule), Ok(reason), Some(p), found_at, None)
                }
                Verdict::Deny {
                    reason,
                    required_scopes,
                    detail,
                } => {
                    let d = Deny {
                        required_scopes,
                        provider: Some(p.provider.clone()),
                        ..deny(403, reason, Some(rule), detail)
                    };
                    self.settle(req, Some(rule), Err(d), Some(p), found_at, None)
                }
            },
        };
        match stale {
            None => decision,
            Some(s) => self.on_stale_revocation(decision, s, rule),
        }
    }

    /// [`Authz::evaluate`], remembered on the principal when it allows: a
    /// principal from the token cache is evaluated once per rule.
    fn evaluate(&self, rule_index: usize, rule: &Rule, p: &Principal) -> Verdict {
        if let Some(super_admin) = p.memo.rules.allowed(self.id, rule_index) {
            return Verdict::Allow(if super_admin {
                Reason::SuperAdmin
            } else {
                Reason::Allowed
            });
        }
        let verdict = self.authz.evaluate(rule, p);
        if let Verdict::Allow(reason) = &verdict {
            p.memo.rules
                .remember(self.id, rule_index, *reason == Reason::SuperAdmin);
        }
        verdict
    }

    /// Refuses a verified token its provider revoked; notes a stale list
    /// (refused here when the rule or `on_stale` fails closed).
    fn revocation_check(
        &self,
        p: Arc<Principal>,
        rule: &Rule,
        now: i64,
        keys: &dyn KeySource,
        stale: &mut Option<StaleRevocation>,
    ) -> Result<Arc<Principal>, Failure> {
        let Some((index, rev)) = self
            .providers
            .iter()
            .enumerate()
            .find(|(_, pr)| pr.name == p.provider)
            .and_then(|(i, pr)| pr.revocation.as_ref().map(|r| (i, r)))
        else {
            return Ok(p);
        };
        match rev.check(keys.revocations(index), &p.claims, now, rule.sensitive) {
            Check::Clear => Ok(p),
            Check::Revoked(detail) => Err(Failure {
                reason: Reason::TokenRevoked,
                detail,
                provider: Some(index),
            }),
            Check::Unavailable {
                never_polled,
                closed,
                detail,
            } => {
                if rule.access != Access::Public {
                    *stale = Some(StaleRevocation {
                        provider: index,
                        never_polled,
                        open: !closed,
                    });
                }
                if closed {
                    Err(Failure {
                        reason: Reason::RevocationUnavailable,
                        detail,
                        provider: Some(index),
                    })
                } else {
                    Ok(p)
                }
            }
        }
    }

    /// A decision taken on a stale revocation list: an allow is marked (fail
    /// open); before the first poll, a decision the poll could change waits
    /// for it ([`Decision::Pending`] with `revocation`).
    fn on_stale_revocation(&self, decision: Decision, s: StaleRevocation, rule: &Rule) -> Decision {
        let mut decision = decision;
        if let Decision::Allow(a) = &mut decision
            && s.open
        {
            a.revocation_stale = true;
        }
        if !s.never_polled {
            return decision;
        }
        let fallback = match &decision {
            Decision::Deny(d) if d.reason == Reason::RevocationUnavailable => d.clone(),
            Decision::Allow(a) => match &a.dry_run {
                Some(d) if d.reason != Reason::RevocationUnavailable => return decision,
                Some(d) => (**d).clone(),
                None => Deny {
                    status: 503,
                    reason: Reason::RevocationUnavailable,
                    rule: Some(rule.name.to_string()),
                    realm: self.realm.clone(),
                    required_scopes: Vec::new(),
                    detail: "waiting for the first revocation poll".into(),
                    provider: self.providers.get(s.provider).map(|p| p.name.clone()),
                },
            },
            // Refused for another reason: the poll cannot change that.
            _ => return decision,
        };
        Decision::Pending(Pending {
            provider: s.provider,
            unknown_kid: false,
            fallback,
            otherwise: Box::new(decision),
            revocation: true,
            introspect: None,
        })
    }

    /// Verifies a presented token, through the verified-token cache when the
    /// shim provides one (see [`crate::cache`]).
    fn verify_cached(
        &self,
        p: &Presented,
        now: i64,
        keys: &dyn KeySource,
    ) -> Result<Arc<Principal>, Failure> {
        if let Some(api) = self
            .api_keys
            .as_ref()
            .filter(|a| a.claims_sources(&p.sources))
        {
            // Put the key's scopes where the policy reads scopes from.
            return api.verify(&p.token, now).map(|mut principal| {
                if let Some(path) = &self.authz.grants.scope_claim {
                    path.insert(
                        &mut principal.claims,
                        serde_json::Value::from(principal.scopes.clone()),
                    );
                }
                self.with_configured_scopes(Arc::new(principal))
            });
        }
        if let Some(result) =
            crate::introspection::resolve(&self.providers, &p.sources, &p.token, now, keys)
        {
            return result.map(|p| self.with_configured_scopes(Arc::new(p)));
        }
        let cache = keys.token_cache();
        // A cached principal already has this policy's scopes.
        let key = cache.map(|_| TokenCache::key(&p.token, &p.sources, self.id));
        if let (Some(cache), Some(key)) = (cache, &key)
            && let Ok(mut c) = cache.try_borrow_mut()
            && let Some(principal) = c.get(key, now, |i| keys.epoch(i))
        {
            return Ok(principal);
        }
        let result = verify_with_keys(
            &self.providers,
            |provider| p.sources.iter().any(|s| provider.sources.contains(s)),
            &p.token,
            now,
            self.max_token_bytes,
            keys,
        )
        .map(|p| self.with_configured_scopes(Arc::new(p)));
        if let (Ok(principal), Some(cache), Some(key)) = (&result, cache, key)
            && let Some((index, provider)) = self
                .providers
                .iter()
                .enumerate()
                .find(|(_, pr)| pr.name == principal.provider)
            && let Ok(mut c) = cache.try_borrow_mut()
        {
            let skew = provider.clock_skew_seconds;
            let at = |name: &str| {
                principal
                    .claims
                    .get(name)
                    .and_then(serde_json::Value::as_i64)
            };
            let from = at("nbf")
                .into_iter()
                .chain(at("iat"))
                .max()
                .map_or(i64::MIN, |t| t.saturating_sub(skew));
            let until = at("exp").map_or(i64::MAX, |t| t.saturating_add(skew));
            c.put(
                &key,
                Arc::clone(principal),
                index,
                keys.epoch(index),
                from,
                until,
            );
        }
        result
    }

    /// With `scope_claim` configured, the principal's scopes are read from it.
    fn with_configured_scopes(&self, mut p: Arc<Principal>) -> Arc<Principal> {
        if self.authz.grants.scope_claim.is_some() {
            let scopes = self.authz.grants.token_scopes(&p.claims);
            if scopes != p.scopes {
                Arc::make_mut(&mut p).scopes = scopes;
            }
        }
        p
    }

    /// Enforces the outcome; in dry-run (global or the rule's) lets the
    /// request through instead, with the would-be decision in
    /// [`DRY_RUN_HEADER`].
    fn settle(
        &self,
        req: &Request<'_>,
        rule: Option<&Rule>,
        outcome: Result<Reason, Deny>,
        principal: Option<Arc<Principal>>,
        found_at: &[usize],
        ignored_token: Option<Failure>,
    ) -> Decision {
        let dry_run = self.authz.dry_run || rule.is_some_and(|r| r.dry_run);
        let rule_attr = || {
            rule.map(|r| format!("; rule={}", r.name))
                .unwrap_or_default()
        };
        match outcome {
            Ok(reason) => {
                let mut a = self.allow(req, rule, reason, principal, found_at, ignored_token);
                if dry_run {
                    a.set_headers.push((
                        Arc::from(DRY_RUN_HEADER),
                        Arc::from(format!("allow; reason={reason}{}", rule_attr())),
                    ));
                }
                Decision::Allow(a)
            }
            Err(d) if dry_run => {
                let mut a = self.allow(req, rule, d.reason, principal, found_at, ignored_token);
                a.set_headers.push((
                    Arc::from(DRY_RUN_HEADER),
                    Arc::from(format!(
                        "deny; status={}; reason={}{}",
                        d.status,
                        d.reason,
                        rule_attr()
                    )),
                ));
                a.dry_run = Some(Box::new(d));
                Decision::Allow(a)
            }
            Err(d) => Decision::Deny(d),
        }
    }

    /// A refused token on a rule that needs one: 401, or pending when the
    /// failure is one a JWKS fetch may cure.
    fn token_refused(
        &self,
        req: &Request<'_>,
        rule: &Rule,
        f: Failure,
        found_at: &[usize],
    ) -> Decision {
        let remote = f
            .provider
            .filter(|i| self.providers.get(*i).is_some_and(|p| p.remote.is_some()));
        let status = if matches!(
            f.reason,
            Reason::JwksUnavailable | Reason::RevocationUnavailable
        ) {
            503
        } else {
            401
        };
        let deny = Deny {
            status,
            reason: f.reason,
            rule: Some(rule.name.to_string()),
            realm: self.realm.clone(),
            required_scopes: Vec::new(),
            detail: f.detail,
            provider: f
                .provider
                .and_then(|i| self.providers.get(i))
                .map(|p| p.name.clone()),
        };
        let deny = match f.reason {
            Reason::IntrospectionUnavailable => Deny {
                status: 503,
                ..deny
            },
            _ => deny,
        };
        let settled = self.settle(req, Some(rule), Err(deny.clone()), None, found_at, None);
        if f.reason == Reason::IntrospectionUnavailable
            && let Some(provider) = f.provider
            && let Some(token) = self
                .presented_token(req)
                .ok()
                .flatten()
                .map(|p| p.token.into_owned())
        {
            return Decision::Pending(Pending {
                provider,
                unknown_kid: false,
                fallback: deny,
                otherwise: Box::new(settled),
                revocation: false,
                introspect: Some(crate::introspection::IntrospectionNeed {
                    digest: crate::introspection::digest(&token),
                    token,
                }),
            });
        }
        match (remote, f.reason) {
            (Some(provider), Reason::JwksUnavailable | Reason::UnknownKid) => {
                Decision::Pending(Pending {
                    provider,
                    unknown_kid: f.reason == Reason::UnknownKid,
                    fallback: deny,
                    otherwise: Box::new(settled),
                    revocation: false,
                    introspect: None,
                })
            }
            _ => settled,
        }
    }

    fn allow(
        &self,
        req: &Request<'_>,
        rule: Option<&Rule>,
        reason: Reason,
        principal: Option<Arc<Principal>>,
        found_at: &[usize],
        ignored_token: Option<Failure>,
    ) -> Allow {
        let mut remove_headers = Vec::with_capacity(self.managed_headers.len() + 1);
        remove_headers.extend_from_slice(&self.managed_headers);
        let mut set_headers: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        let provider = principal
            .as_ref()
            .and_then(|p| self.providers.iter().find(|pr| pr.name == p.provider));
        // The token is forwarded only if the provider that verified it says so;
        // an unverified token is never forwarded.
        if !provider.is_some_and(|p| p.forward_token) {
            // The path and cookies are copied only when a token came from them.
            let mut path: Option<String> = None;
            let mut cookie: Option<Option<String>> = None;
            for i in found_at {
                let (Some(source), header) = (
                    self.sources.get(*i),
                    self.source_headers.get(*i).and_then(Option::as_ref),
                ) else {
                    continue;
                };
                match source {
                    TokenSource::Header { .. } => {
                        if let Some(name) = header
                            && !remove_headers.contains(name)
                        {
                            remove_headers.push(name.clone());
                        }
                    }
                    TokenSource::Query(param) => {
                        path = Some(path_without_query_param(
                            path.as_deref().unwrap_or(req.path),
                            param,
                        ));
                    }
                    TokenSource::Cookie(name) => {
                        let now = cookie.take().unwrap_or_else(|| req.header("cookie").map(str::to_owned));
                        cookie = Some(now.and_then(|c| cookies_without(&c, name)));
                    }
                }
            }
            if let Some(path) = path.filter(|p| p != req.path) {
                set_headers.push((Arc::from(":path"), Arc::from(path)));
            }
            if let Some(cookie) = cookie.filter(|c| c.as_deref() != req.header("cookie")) {
                match cookie {
                    Some(c) => set_headers.push((Arc::from("cookie"), Arc::from(c))),
                    None => remove_headers.push(Arc::from("cookie")),
                }
            }
        }
        if let (Some(p), Some(provider)) = (&principal, provider) {
            if !provider.claims_to_headers.is_empty() {
                // Worked out once per principal: a cached one forwards the same.
                let forwarded = p.memo.claim_headers(self.id, || {
                    provider
                        .claims_to_headers
                        .iter()
                        .filter_map(|(claim, header)| {
                            // A claim of that exact name, else the dotted path
                            // into nested objects.
                            let value = p.claims.get(claim).or_else(|| {
                                ClaimPath::from_json(&serde_json::Value::String(claim.clone()))
                                    .ok()
                                    .and_then(|path| path.get(&p.claims))
                            });
                            value
                                .and_then(header_value)
                                .map(|v| (header.clone(), Arc::from(v)))
                        })
                        .collect()
                });
                set_headers.extend(forwarded.iter().cloned());
            }
            // The token is looked up again only when its payload is forwarded.
            if let Some(header) = &provider.payload_header
                && let Some(payload) = self
                    .presented_token(req)
                    .ok()
                    .flatten()
                    .and_then(|t| t.token.split('.').nth(1).map(Arc::from))
            {
                set_headers.push((header.clone(), payload));
            }
        }
        Allow {
            rule: rule.map(|r| r.name.clone()),
            reason,
            principal,
            remove_headers,
            set_headers,
            ignored_token,
            dry_run: None,
            revocation_stale: false,
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

#[cfg(test)]
mod tests {
    use super::Places;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh).
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn places_keep_every_index_in_order_in_place_and_past_four() {
        let mut p = Places::one(3);
        assert_eq!(&*p, &[3]);
        for i in [5, 7, 9] {
            p.push(i);
        }
        assert_eq!(&*p, &[3, 5, 7, 9]);
        assert!(p.spilled.is_empty(), "four stay in place");
        p.push(11);
        p.push(12);
        assert_eq!(&*p, &[3, 5, 7, 9, 11, 12]);
        assert_eq!(&*Places::default(), &[] as &[usize]);
    }
}
