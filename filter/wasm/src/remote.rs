//! Remote JWKS I/O: callouts, shared data between workers, paused requests.
//!
//! The scheduling rules live in `scopegate_core::jwks::RemoteKeys`; this file
//! only performs what it decides:
//! - the root context's tick asks each remote provider what to fetch and
//!   dispatches it through the configured cluster (root callouts only, so the
//!   answer never depends on a stream still existing);
//! - one VM fetches, all adopt: a short lease in shared data picks the VM that
//!   fetches, and the JWKS it got is published in shared data, which every
//!   VM's tick adopts (`scopegate.jwks.<provider>`);
//! - a request that needs keys that are not there yet is paused and decided
//!   again when the fetch ends, or answered with its fallback (503
//!   `jwks_unavailable`, or 401 `unknown_kid`) when the fetch fails or
//!   its wait (the fetch timeout rounded up to seconds, plus two) runs out.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};
use scopegate_core::cache::TokenCache;
use scopegate_core::jwks::{RemoteKeys, publication, read_publication};
use scopegate_core::keys::Key;
use scopegate_core::{Decision, KeySource, Policy};

use crate::facts::Facts;
use crate::log;
use crate::metrics::Metrics;

/// Bound on paused requests per VM; beyond it, requests get their fallback at once.
const MAX_WAITERS: usize = 1024;
/// Root tick period while any provider uses a remote JWKS.
const TICK_MS: u64 = 200;

/// A request paused until its provider's keys arrive.
pub struct Waiter {
    pub context_id: u32,
    pub provider: usize,
    pub facts: Facts,
    pub deadline: i64,
}

/// A decision to render on a paused stream, outside any borrow of the state.
pub struct Settle {
    pub context_id: u32,
    pub decision: Decision,
    pub facts: Facts,
}

pub struct Remote {
    providers: Vec<Option<RemoteKeys>>,
    /// Per provider, bumped whenever its fetched keys change.
    epochs: Vec<u64>,
    /// The verified-token cache (lives with this configuration).
    cache: RefCell<TokenCache>,
    names: Vec<String>,
    seen_cas: Vec<Option<u32>>,
    calls: Vec<(u32, usize)>,
    waiters: Vec<Waiter>,
    /// Revocation feeds (see [`crate::revocation`]).
    revocations: crate::revocation::Revocations,
    /// RFC 7662 introspection state (see [`crate::introspection`]).
    pub introspection: crate::introspection::Introspector,
    /// Per provider that can pause requests (remote JWKS or a revocation
    /// feed): `scopegate.provider.<name>.paused_overflow`, requests answered
    /// at once because [`MAX_WAITERS`] already wait.
    overflow: Vec<Option<u32>>,
}

impl KeySource for Remote {
    fn fetched(&self, index: usize) -> Option<&[Key]> {
        self.providers
            .get(index)?
            .as_ref()?
            .keys()
            .map(|k| k.as_slice())
    }

    fn epoch(&self, index: usize) -> u64 {
        self.epochs.get(index).copied().unwrap_or(0)
    }

    fn token_cache(&self) -> Option<&RefCell<TokenCache>> {
        Some(&self.cache)
    }

    fn revocations(&self, index: usize) -> Option<&scopegate_core::revocation::RevocationView> {
        self.revocations.view(index)
    }

    fn introspected(
        &self,
        index: usize,
        digest: &scopegate_core::introspection::Digest,
        now: i64,
    ) -> Option<scopegate_core::introspection::Introspected> {
        self.introspection.lookup(index, digest, now)
    }
}

fn publication_key(name: &str) -> String {
    format!("scopegate.jwks.{name}")
}

fn lease_key(name: &str) -> String {
    format!("scopegate.jwks-lease.{name}")
}

impl Remote {
    pub fn new(policy: &Policy) -> Remote {
        let providers: Vec<Option<RemoteKeys>> = policy
            .providers()
            .iter()
            .map(|p| {
                p.remote()
                    .map(|r| RemoteKeys::new(r.clone(), p.issuer().to_owned(), p.algorithms()))
            })
            .collect();
        let revocations = crate::revocation::Revocations::new(policy);
        let overflow = policy
            .providers()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if p.remote().is_some() || revocations.timeout_ms(i).is_some() {
                    hostcalls::define_metric(
                        proxy_wasm::types::MetricType::Counter,
                        &format!("scopegate.provider.{}.paused_overflow", p.name()),
                    )
                    .ok()
                } else {
                    None
                }
            })
            .collect();
        Remote {
            overflow,
            epochs: vec![0; providers.len()],
            cache: RefCell::new(TokenCache::new(policy.token_cache_entries())),
            seen_cas: vec![None; providers.len()],
            names: policy
                .providers()
                .iter()
                .map(|p| p.name().to_owned())
                .collect(),
            providers,
            calls: Vec::new(),
            waiters: Vec::new(),
            revocations,
            introspection: crate::introspection::Introspector::new(policy),
        }
    }

    pub fn any(&self) -> bool {
        self.providers.iter().any(Option::is_some) || self.revocations.any()
    }

    /// Whether a request pending on provider `provider`'s first revocation
    /// poll may wait for it.
    pub fn may_wait_revocation(&self, provider: usize) -> bool {
        if !self.revocations.may_wait(provider) {
            return false;
        }
        if self.waiters.len() >= MAX_WAITERS {
            self.refuse_wait(provider, "the revocation feed's first poll (the stale-list rules apply)");
            return false;
        }
        true
    }

    /// A request that would wait but cannot (the cap is reached): counted and
    /// logged; it is answered now.
    fn refuse_wait(&self, provider: usize, what: &str) {
        if let Some(Some(id)) = self.overflow.get(provider) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
        let name = self.names.get(provider).map_or("?", String::as_str);
        log(
            LogLevel::Warn,
            &format!(
                "scopegate: provider {name}: {MAX_WAITERS} requests already wait on this worker; answering at once instead of waiting for {what}"
            ),
        );
    }

    /// Tick period. A paused request can only be helped by a root callback,
    /// and the root cannot be woken from a stream, so the tick stays short:
    /// each tick costs one shared-data read per remote provider.
    pub fn tick_period(&self) -> Duration {
        Duration::from_millis(TICK_MS)
    }

    /// Whether a request pending on `provider` may wait (and records an
    /// unknown-`kid` refetch wish).
    pub fn may_wait(&mut self, provider: usize, unknown_kid: bool, now: i64) -> bool {
        let full = self.waiters.len() >= MAX_WAITERS;
        let Some(Some(r)) = self.providers.get_mut(provider) else {
            return false;
        };
        if full {
            // Would it have waited? (An unknown kid would ask for a refetch.)
            if unknown_kid || r.failures() == 0 || r.in_flight() {
                self.refuse_wait(provider, "its keys");
            }
            return false;
        }
        if unknown_kid {
            r.want_refetch_for_unknown_kid(now)
        } else {
            // Never fetched yet, or a fetch is under way: wait. Fetches
            // failing and no keys at all: answer now.
            r.failures() == 0 || r.in_flight()
        }
    }

    pub fn wait(&mut self, context_id: u32, provider: usize, facts: Facts, now: i64) {
        // Wait for the fetch to start (next tick), to run its full timeout,
        // and for the clock's whole-second resolution.
        let timeout_ms = self
            .providers
            .get(provider)
            .and_then(Option::as_ref)
            .map(|r| r.config().timeout_ms)
            .into_iter()
            .chain(self.revocations.timeout_ms(provider))
            .max()
            .unwrap_or(5000);
        let wait = i64::try_from(timeout_ms.div_ceil(1000)).unwrap_or(60) + 2;
        self.waiters.push(Waiter {
            context_id,
            provider,
            facts,
            deadline: now.saturating_add(wait),
        });
    }

    pub fn forget(&mut self, context_id: u32) {
        self.waiters.retain(|w| w.context_id != context_id);
    }

    /// Adopts keys other VMs published, starts due fetches, and returns the
    /// paused requests whose wait ran out.
    pub fn tick(&mut self, policy: &Policy, metrics: &Metrics, now: i64) -> Vec<Settle> {
        let mut settled = Vec::new();
        for i in 0..self.providers.len() {
            if let (Some(Some(r)), Some(name)) = (self.providers.get_mut(i), self.names.get(i))
                && r.notice_clock(now)
            {
                log(
                    LogLevel::Warn,
                    &format!("scopegate: provider {name}: the clock went back to {now}; JWKS fetch timers reset"),
                );
            }
            if self.adopt_published(i, now, metrics) {
                settled.extend(self.settle(policy, i, now));
            }
            if self.start_fetch(i, now, metrics) {
                // The host refused the callout: no answer will come, so the
                // requests waiting for it get their fallback now.
                settled.extend(self.settle(policy, i, now));
            }
        }
        for i in self.revocations.tick(metrics, now) {
            settled.extend(self.settle(policy, i, now));
        }
        let (expired, kept): (Vec<Waiter>, Vec<Waiter>) =
            self.waiters.drain(..).partition(|w| now >= w.deadline);
        self.waiters = kept;
        settled.extend(expired.into_iter().map(|w| Settle {
            decision: self.final_decision(policy, &w.facts, now),
            context_id: w.context_id,
            facts: w.facts,
        }));
        settled
    }

    /// Adopts what another VM published; `true` if new keys were loaded.
    fn adopt_published(&mut self, i: usize, now: i64, metrics: &Metrics) -> bool {
        let (Some(Some(r)), Some(name)) = (self.providers.get_mut(i), self.names.get(i)) else {
            return false;
        };
        let Ok((Some(bytes), cas)) = hostcalls::get_shared_data(&publication_key(name)) else {
            return false;
        };
        if self.seen_cas.get(i).copied().flatten() == cas && cas.is_some() {
            return false;
        }
        if let Some(slot) = self.seen_cas.get_mut(i) {
            *slot = cas;
        }
        let Some((fetched_at, body)) = read_publication(&bytes) else {
            return false;
        };
        match r.adopt(fetched_at, &body) {
            Ok(Some(loaded)) => {
                if let Some(e) = self.epochs.get_mut(i) {
                    *e = e.wrapping_add(1);
                }
                metrics.jwks_adopted(i);
                log(
                    LogLevel::Info,
                    &format!(
                        "scopegate: provider {name}: adopted {} key(s) fetched by another worker at {fetched_at}",
                        loaded.keys
                    ),
                );
                true
            }
            Ok(None) => false,
            Err(e) => {
                log(
                    LogLevel::Warn,
                    &format!("scopegate: provider {name}: published JWKS unusable at {now}: {e}"),
                );
                false
            }
        }
    }

    /// Starts provider `i`'s due fetch, if any; `true` if the host refused
    /// to dispatch it.
    fn start_fetch(&mut self, i: usize, now: i64, metrics: &Metrics) -> bool {
        let (Some(Some(r)), Some(name)) = (self.providers.get_mut(i), self.names.get(i)) else {
            return false;
        };
        let Some(fetch) = r.next_fetch(now) else {
            return false;
        };
        let timeout_ms = r.config().timeout_ms;
        if !take_lease(name, now, timeout_ms) {
            return false;
        }
        let cluster = r.config().cluster.clone();
        let authority = r.config().authority.clone();
        let headers = vec![
            (":method", "GET"),
            (":path", fetch.path()),
            (":authority", authority.as_str()),
            ("accept", "application/json"),
        ];
        match hostcalls::dispatch_http_call(
            &cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(timeout_ms),
        ) {
            Ok(token) => {
                r.started(fetch, now);
                self.calls.push((token, i));
                false
            }
            Err(status) => {
                release_lease(name);
                r.failed(now);
                metrics.jwks_failed(i);
                log(
                    LogLevel::Warn,
                    &format!(
                        "scopegate: provider {name}: cannot fetch {} from cluster {}: {status:?}",
                        fetch.path(),
                        cluster
                    ),
                );
                true
            }
        }
    }

    /// Handles a callout answer. `None` if the token is not ours.
    pub fn answered(
        &mut self,
        policy: &Policy,
        metrics: &Metrics,
        token: u32,
        body_size: usize,
        now: i64,
    ) -> Option<Vec<Settle>> {
        if let Some(i) = self.revocations.answered(metrics, token, body_size, now) {
            return Some(self.settle(policy, i, now));
        }
        let pos = self.calls.iter().position(|(t, _)| *t == token)?;
        let (_, i) = self.calls.swap_remove(pos);
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| String::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let body = if body_size > scopegate_core::jwks::MAX_DOCUMENT_BYTES {
            vec![0; body_size.min(scopegate_core::jwks::MAX_DOCUMENT_BYTES + 1)]
        } else {
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        let name = self.names.get(i).cloned().unwrap_or_default();
        release_lease(&name);
        let r = self.providers.get_mut(i)?.as_mut()?;
        match r.answered(now, status, &body) {
            Ok(Some(loaded)) => {
                metrics.jwks_ok(i);
                if let Some(e) = self.epochs.get_mut(i) {
                    *e = e.wrapping_add(1);
                }
                for (j, kid, why) in &loaded.skipped {
                    log(
                        LogLevel::Warn,
                        &format!(
                            "scopegate: provider {name}: JWKS key {j} (kid {kid:?}) skipped: {why}"
                        ),
                    );
                }
                log(
                    LogLevel::Info,
                    &format!(
                        "scopegate: provider {name}: loaded {} key(s) from the remote JWKS",
                        loaded.keys
                    ),
                );
                let _ = hostcalls::set_shared_data(
                    &publication_key(&name),
                    Some(&publication(now, &body)),
                    None,
                );
                // Our own publication need not be adopted again.
                if let Ok((_, cas)) = hostcalls::get_shared_data(&publication_key(&name))
                    && let Some(slot) = self.seen_cas.get_mut(i)
                {
                    *slot = cas;
                }
            }
            Ok(None) => {
                log(
                    LogLevel::Info,
                    &format!("scopegate: provider {name}: discovery gave the JWKS location"),
                );
                let _ = self.start_fetch(i, now, metrics);
            }
            Err(e) => {
                metrics.jwks_failed(i);
                let stale = r.keys().is_some();
                log(
                    LogLevel::Warn,
                    &format!(
                        "scopegate: provider {name}: JWKS fetch failed: {e}{}",
                        if stale {
                            "; keeping the keys we have"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        Some(self.settle(policy, i, now))
    }

    /// Decides again every request waiting on provider `i`, now that its
    /// fetch has ended (or moved on to the next step).
    fn settle(&mut self, policy: &Policy, i: usize, now: i64) -> Vec<Settle> {
        let in_flight = self
            .providers
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(RemoteKeys::in_flight);
        if in_flight {
            return Vec::new();
        }
        let (mine, others): (Vec<Waiter>, Vec<Waiter>) =
            self.waiters.drain(..).partition(|w| w.provider == i);
        self.waiters = others;
        let mut settled = Vec::new();
        for w in mine {
            let decision = self.final_decision(policy, &w.facts, now);
            // Keys arrived but the first revocation poll has not answered
            // yet, or a revocation poll ended before the first JWKS fetch did.
            // (A decision that now needs introspection is not waited for
            // here: it gets its fallback, 503 `introspection_unavailable`.)
            if let Decision::Pending(p) = &decision
                && p.introspect.is_none()
                && (if p.revocation {
                    self.may_wait_revocation(p.provider)
                } else {
                    !p.unknown_kid
                        && self.waiters.len() < MAX_WAITERS
                        && self
                            .providers
                            .get(p.provider)
                            .and_then(Option::as_ref)
                            .is_some_and(|r| r.in_flight() || r.failures() == 0)
                })
            {
                let provider = p.provider;
                self.wait(w.context_id, provider, w.facts, now);
                continue;
            }
            settled.push(Settle {
                decision,
                context_id: w.context_id,
                facts: w.facts,
            });
        }
        settled
    }

    /// A decision that no longer waits: a Pending one becomes its fallback
    /// (rendered by `apply`).
    fn final_decision(&self, policy: &Policy, facts: &Facts, now: i64) -> Decision {
        facts.with_request(now, |req| policy.decide_with(req, self))
    }
}

/// Takes the fetch lease for a provider: `true` if this VM should fetch now.
/// A VM holds it for twice the timeout; if it dies, the lease runs out.
fn take_lease(name: &str, now: i64, timeout_ms: u64) -> bool {
    take_lease_at(&lease_key(name), now, timeout_ms)
}

/// [`take_lease`] for any shared-data key (also the revocation poll's lease).
pub(crate) fn take_lease_at(key: &str, now: i64, timeout_ms: u64) -> bool {
    let until = now.saturating_add(2 * i64::try_from(timeout_ms / 1000).unwrap_or(5).max(1));
    let value = until.to_string();
    match hostcalls::get_shared_data(key) {
        Ok((Some(bytes), cas)) => {
            // A lease ending after `until` was taken before the clock went
            // back: it is not honoured (it would stop every fetch for as
            // long as the jump).
            let held = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .is_some_and(|t| t > now && t <= until);
            !held && hostcalls::set_shared_data(key, Some(value.as_bytes()), cas).is_ok()
        }
        Ok((None, cas)) => hostcalls::set_shared_data(key, Some(value.as_bytes()), cas).is_ok(),
        Err(_) => true,
    }
}

/// Gives the lease back once our fetch has ended, so the next fetch (a
/// retry, a refetch, the JWKS after discovery) need not wait for it to run out.
fn release_lease(name: &str) {
    release_lease_at(&lease_key(name));
}

/// [`release_lease`] for any shared-data key.
pub(crate) fn release_lease_at(key: &str) {
    let _ = hostcalls::set_shared_data(key, Some(b"0"), None);
}

/// Renders settled decisions on their streams. Called with no borrow of the
/// shared state held: a local reply may end the stream synchronously.
pub fn render(settled: Vec<Settle>, root_context_id: u32) {
    for s in settled {
        if hostcalls::set_effective_context(s.context_id).is_err() {
            continue; // the stream is gone
        }
        if crate::apply::apply(&s.decision, &s.facts) == crate::apply::Applied::Continue {
            let _ = hostcalls::resume_http_request();
        }
    }
    let _ = hostcalls::set_effective_context(root_context_id);
}

/// Shared between the root and its streams (one VM is one thread).
pub type SharedRemote = Rc<std::cell::RefCell<Remote>>;
