//! RFC 7662 introspection I/O: callouts, paused requests, caches.
//!
//! The core decides that a token needs introspection (a `Pending` with
//! `introspect`), builds the callout and reads the answer
//! (`scopegate_core::introspection`); this file only performs it:
//! - a request whose token has no answer at hand is paused and the callout
//!   dispatched from its stream; requests of the same VM with the same token
//!   wait on that one callout (waiters keyed by the token's SHA-256);
//! - the answer is kept in the VM's cache and published in a bounded set of
//!   shared-data slots (`scopegate.introspect.<provider>.<slot>`, slot =
//!   digest mod N, N = min(cache_entries, 1024)), so other workers find it
//!   without a callout; Envoy cannot delete shared keys, so the store never
//!   grows past N keys per provider;
//! - before calling out, the decision looks in the local cache, then in the
//!   shared slot ([`Introspector::lookup`], through `KeySource`);
//! - every waiter is decided again when the answer comes; a failed call, or a
//!   wait running out (the call's timeout plus two seconds, enforced by the
//!   root tick), answers 503 `introspection_unavailable`. If the stream that
//!   dispatched a call goes away (Envoy cancels its calls), the root tick
//!   calls out again for the requests still waiting.

use std::cell::RefCell;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};
use scopegate_core::Policy;
use scopegate_core::introspection::{
    self as core_i, Digest, FAILURE_KINDS, Introspected, Introspection, IntrospectionCache,
    IntrospectionNeed,
};

use crate::facts::Facts;
use crate::log;
use crate::metrics::{Batch, Slot};
use crate::remote::Settle;

/// Bound on paused requests per VM; beyond it, requests get 503 at once.
const MAX_WAITERS: usize = 1024;
/// Root tick period when only introspection needs one.
pub const TICK: Duration = Duration::from_millis(500);

/// Introspection's counters, bumped per request: published on the root's
/// tick with the others (see `metrics`).
struct Counters {
    batch: Batch,
    calls: Slot,
    hit_local: Slot,
    hit_shared: Slot,
    coalesced: Slot,
    active: Slot,
    inactive: Slot,
    failed: Vec<(&'static str, Slot)>,
}

impl Counters {
    fn define(provider: &str) -> Counters {
        let mut b = Batch::default();
        let mut c = |what: &str| b.counter(&format!("scopegate.introspection.{provider}.{what}"));
        let (calls, hit_local, hit_shared) =
            (c("calls"), c("cache_hit_local"), c("cache_hit_shared"));
        let (coalesced, active, inactive) = (c("coalesced"), c("active"), c("inactive"));
        let failed = FAILURE_KINDS
            .iter()
            .map(|k| (*k, c(&format!("failed.{k}"))))
            .collect();
        Counters {
            batch: b,
            calls,
            hit_local,
            hit_shared,
            coalesced,
            active,
            inactive,
            failed,
        }
    }

    fn bump(&self, slot: Slot) {
        self.batch.bump(slot);
    }

    fn failed(&self, kind: &str) {
        if let Some((_, slot)) = self.failed.iter().find(|(k, _)| *k == kind) {
            self.batch.bump(*slot);
        }
    }
}

struct Provider {
    name: String,
    cfg: Introspection,
    cache: RefCell<IntrospectionCache>,
    counters: Counters,
}

struct InFlight {
    token_id: u32,
    provider: usize,
    digest: Digest,
    /// The context the SDK delivers the answer to.
    owner: u32,
}

/// A request paused until its token's introspection answer arrives.
pub struct Waiter {
    pub context_id: u32,
    pub provider: usize,
    pub need: IntrospectionNeed,
    pub facts: Facts,
    pub deadline: i64,
}

/// The answer being handed to re-decided waiters (`None` inside: the call failed).
type Settling = Option<(usize, Digest, Option<Introspected>)>;

pub struct Introspector {
    providers: Vec<Option<Provider>>,
    inflight: Vec<InFlight>,
    waiters: Vec<Waiter>,
    settling: RefCell<Settling>,
}

fn slot_key(name: &str, slot: usize) -> String {
    format!("scopegate.introspect.{name}.{slot}")
}

impl Introspector {
    /// Called from `on_configure` (defines the counters).
    pub fn new(policy: &Policy) -> Introspector {
        Introspector {
            providers: policy
                .providers()
                .iter()
                .map(|p| {
                    p.introspection().map(|cfg| Provider {
                        name: p.name().to_owned(),
                        cache: RefCell::new(IntrospectionCache::new(cfg.cache_entries)),
                        cfg: cfg.clone(),
                        counters: Counters::define(p.name()),
                    })
                })
                .collect(),
            inflight: Vec::new(),
            waiters: Vec::new(),
            settling: RefCell::new(None),
        }
    }

    pub fn any(&self) -> bool {
        self.providers.iter().any(Option::is_some)
    }

    /// Publishes the counters' counts (on the root's tick).
    pub fn flush(&self) {
        for p in self.providers.iter().flatten() {
            p.counters.batch.flush();
        }
    }

    fn provider(&self, i: usize) -> Option<&Provider> {
        self.providers.get(i).and_then(Option::as_ref)
    }

    /// The answer at hand for `digest`: the one being handed out, the local
    /// cache, or another worker's shared slot (then adopted locally).
    pub fn lookup(&self, provider: usize, digest: &Digest, now: i64) -> Option<Introspected> {
        if let Ok(s) = self.settling.try_borrow()
            && let Some((p, d, answer)) = s.as_ref()
            && *p == provider
            && d == digest
        {
            return answer.clone();
        }
        let p = self.provider(provider)?;
        if let Ok(mut cache) = p.cache.try_borrow_mut()
            && let Some(hit) = cache.get(provider, digest, now)
        {
            p.counters.bump(p.counters.hit_local);
            return Some(hit);
        }
        let slots = p.cfg.shared_slots();
        if slots == 0 {
            return None;
        }
        let key = slot_key(&p.name, core_i::slot_of(digest, slots));
        let Ok((Some(value), _)) = hostcalls::get_shared_data(&key) else {
            return None;
        };
        let (answer, until) = core_i::read_shared(&value, digest, now)?;
        if let Ok(mut cache) = p.cache.try_borrow_mut() {
            cache.put(provider, *digest, answer.clone(), now, until);
        }
        p.counters.bump(p.counters.hit_shared);
        Some(answer)
    }

    /// Pauses the current request on `need`: joins a call in flight for the
    /// same token, or dispatches one. `false`: it cannot wait (answer now).
    pub fn wait(
        &mut self,
        context_id: u32,
        provider: usize,
        need: &IntrospectionNeed,
        facts: Facts,
        now: i64,
    ) -> bool {
        if self.waiters.len() >= MAX_WAITERS {
            if let Some(p) = self.provider(provider) {
                p.counters.failed("wait");
                log(
                    LogLevel::Warn,
                    &format!(
                        "scopegate: provider {}: {MAX_WAITERS} requests already wait for introspection; answering 503",
                        p.name
                    ),
                );
            }
            return false;
        }
        let Some(p) = self.provider(provider) else {
            return false;
        };
        if self
            .inflight
            .iter()
            .any(|f| f.provider == provider && f.digest == need.digest)
        {
            p.counters.bump(p.counters.coalesced);
        } else if !self.dispatch(provider, need, context_id) {
            return false;
        }
        let timeout_ms = self.provider(provider).map_or(5000, |p| p.cfg.timeout_ms);
        let wait = i64::try_from(timeout_ms.div_ceil(1000)).unwrap_or(60) + 2;
        self.waiters.push(Waiter {
            context_id,
            provider,
            need: need.clone(),
            facts,
            deadline: now.saturating_add(wait),
        });
        true
    }

    /// Starts a callout; the SDK delivers its answer to `owner` (the context
    /// whose callback this is).
    fn dispatch(&mut self, provider: usize, need: &IntrospectionNeed, owner: u32) -> bool {
        let Some(p) = self.provider(provider) else {
            return false;
        };
        let call = core_i::request(&p.cfg, &need.token);
        let headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match hostcalls::dispatch_http_call(
            &call.cluster,
            headers,
            Some(&call.body),
            vec![],
            Duration::from_millis(call.timeout_ms),
        ) {
            Ok(token_id) => {
                p.counters.bump(p.counters.calls);
                self.inflight.push(InFlight {
                    token_id,
                    provider,
                    digest: need.digest,
                    owner,
                });
                true
            }
            Err(status) => {
                p.counters.failed("dispatch");
                log(
                    LogLevel::Warn,
                    &format!(
                        "scopegate: provider {}: cannot call the introspection endpoint through cluster {}: {status:?}; answering 503",
                        p.name, call.cluster
                    ),
                );
                false
            }
        }
    }

    /// Reads the answer of callout `token_id`, caches and shares it.
    /// `None`: not one of ours.
    fn answered(&mut self, token_id: u32, body_size: usize, now: i64) -> Settling {
        let pos = self.inflight.iter().position(|f| f.token_id == token_id)?;
        let f = self.inflight.swap_remove(pos);
        let p = self.provider(f.provider)?;
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| String::from_utf8(s).ok())
            .and_then(|s| s.trim().parse::<u16>().ok());
        let body = if body_size > p.cfg.max_body_bytes {
            // Not read at all: too big.
            Vec::new()
        } else {
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        let answer = match core_i::parse_reply(&p.cfg, status, &body, body_size) {
            Ok(answer) => {
                p.counters.bump(match answer {
                    Introspected::Active(_) => p.counters.active,
                    Introspected::Inactive => p.counters.inactive,
                });
                let until = core_i::cache_until(&p.cfg, &answer, now);
                if let Ok(mut cache) = p.cache.try_borrow_mut() {
                    cache.put(f.provider, f.digest, answer.clone(), now, until);
                }
                let slots = p.cfg.shared_slots();
                if slots > 0 && until > now {
                    let _ = hostcalls::set_shared_data(
                        &slot_key(&p.name, core_i::slot_of(&f.digest, slots)),
                        Some(&core_i::shared_value(&f.digest, until, &answer)),
                        None,
                    );
                }
                Some(answer)
            }
            Err(e) => {
                p.counters.failed(e.kind());
                log(
                    LogLevel::Warn,
                    &format!(
                        "scopegate: provider {}: introspection failed: {e}; answering 503 introspection_unavailable",
                        p.name
                    ),
                );
                None
            }
        };
        Some((f.provider, f.digest, answer))
    }

    fn take_waiters(&mut self, provider: usize, digest: &Digest) -> Vec<Waiter> {
        let (mine, others): (Vec<Waiter>, Vec<Waiter>) = self
            .waiters
            .drain(..)
            .partition(|w| w.provider == provider && w.need.digest == *digest);
        self.waiters = others;
        mine
    }

    /// A stream ends: its waits end, and a call it dispatched is cancelled by
    /// Envoy (the root tick calls out again for the others still waiting).
    pub fn forget(&mut self, context_id: u32) {
        self.waiters.retain(|w| w.context_id != context_id);
        self.inflight.retain(|f| f.owner != context_id);
    }
}

/// Decides `waiters` again (with `settling` handed to the lookups) and
/// renders them, restoring `restore` as the effective context.
fn settle(c: &crate::Configured, waiters: Vec<Waiter>, settling: Settling, now: i64, restore: u32) {
    if waiters.is_empty() {
        return;
    }
    let settled: Vec<Settle> = match c.remote.try_borrow() {
        Ok(r) => {
            if let Ok(mut s) = r.introspection.settling.try_borrow_mut() {
                *s = settling;
            }
            let out = waiters
                .into_iter()
                .map(|w| Settle {
                    decision: w
                        .facts
                        .with_request(now, |req| c.policy.decide_with(req, &*r)),
                    context_id: w.context_id,
                    facts: w.facts,
                })
                .collect();
            if let Ok(mut s) = r.introspection.settling.try_borrow_mut() {
                *s = None;
            }
            out
        }
        // Unreachable in one thread; refuse rather than hang.
        Err(_) => waiters
            .into_iter()
            .map(|w| Settle {
                decision: w.facts.with_request(now, |req| c.policy.decide(req)),
                context_id: w.context_id,
                facts: w.facts,
            })
            .collect(),
    };
    for s in &settled {
        c.metrics.record(&s.decision);
    }
    crate::remote::render(settled, restore);
}

/// A callout answer arrived (on the stream that dispatched it, or the root).
/// `false`: not an introspection call.
pub fn on_answer(c: &crate::Configured, token_id: u32, body_size: usize, restore: u32) -> bool {
    let now = crate::facts::now_unix_seconds().unwrap_or(0);
    let (waiters, settling) = {
        let Ok(mut r) = c.remote.try_borrow_mut() else {
            return false;
        };
        let Some((provider, digest, answer)) = r.introspection.answered(token_id, body_size, now)
        else {
            return false;
        };
        (
            r.introspection.take_waiters(provider, &digest),
            Some((provider, digest, answer)),
        )
    };
    settle(c, waiters, settling, now, restore);
    true
}

/// The root tick: waits that ran out are answered, and tokens whose call was
/// cancelled (its stream went away) are introspected again from the root.
pub fn tick(c: &crate::Configured, root_id: u32, now: i64) {
    let expired = {
        let Ok(mut r) = c.remote.try_borrow_mut() else {
            return;
        };
        let i = &mut r.introspection;
        let (expired, kept): (Vec<Waiter>, Vec<Waiter>) =
            i.waiters.drain(..).partition(|w| now >= w.deadline);
        i.waiters = kept;
        for w in &expired {
            if let Some(p) = i.provider(w.provider) {
                p.counters.failed("wait");
                log(
                    LogLevel::Warn,
                    &format!(
                        "scopegate: provider {}: no introspection answer in time; answering 503",
                        p.name
                    ),
                );
            }
        }
        // Orphans: waiters without a call in flight.
        let mut orphans: Vec<(usize, IntrospectionNeed)> = Vec::new();
        for w in &i.waiters {
            let covered = i
                .inflight
                .iter()
                .any(|f| f.provider == w.provider && f.digest == w.need.digest)
                || orphans
                    .iter()
                    .any(|(p, n)| *p == w.provider && n.digest == w.need.digest);
            if !covered {
                orphans.push((w.provider, w.need.clone()));
            }
        }
        let mut failed = Vec::new();
        for (provider, need) in orphans {
            if !i.dispatch(provider, &need, root_id) {
                failed.extend(i.take_waiters(provider, &need.digest));
            }
        }
        expired.into_iter().chain(failed).collect::<Vec<Waiter>>()
    };
    // Decided again without a settling answer: a cache filled meanwhile (by
    // another worker) still helps; otherwise 503.
    settle(c, expired, None, now, root_id);
}
