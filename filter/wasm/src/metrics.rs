//! Counters, defined in `on_configure` (Envoy traps host calls during module start).
//!
//! The counters a request bumps (decisions, per rule, per provider,
//! superadmin, dry-run, the revocation outcomes of a decision, and
//! introspection's) are counted in the VM's memory and published on the root
//! context's tick, at least once a second ([`FLUSH_TICK`]): a host call per
//! counter per request cost about 1 k Envoy instructions each, a quarter of a
//! cache hit's cost over an empty filter. Events of the root context (JWKS
//! fetches, revocation polls) are published at once.
//!
//! Names as they appear in Envoy's `/stats`: `scopegate.allowed`,
//! `scopegate.denied`, and `scopegate.decision.<reason>` for every stable
//! reason (see `scopegate_core::Reason`); per rule
//! `scopegate.rule.<name>.allowed` / `.denied`; `scopegate.superadmin_used`;
//! `scopegate.dry_run.would_deny`; for remote JWKS providers
//! `scopegate.jwks.<provider>.fetch_ok`, `.fetch_failed` and `.adopted`;
//! for providers with a `revocation` section
//! `scopegate.revocation.<provider>.poll_ok`, `.poll_not_modified`,
//! `.poll_failed`, `.overflow`, `.revoked`, `.stale_denied`, `.stale_allowed`
//! (counters) and `.entries` (gauge: fetched entries held).

use core::cell::Cell;
use core::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use scopegate_core::{Decision, Reason};

/// The root tick when nothing else needs one: batched counters are published
/// on it (remote JWKS and introspection tick faster, and publish on theirs).
pub const FLUSH_TICK: Duration = Duration::from_secs(1);

/// A counter of a [`Batch`]: its index there (`None`: the host refused to define it).
#[derive(Clone, Copy)]
pub struct Slot(Option<u32>);

/// Counters counted in wasm memory and published by [`Batch::flush`] (and
/// when the batch is dropped, with the configuration that defined it).
#[derive(Default)]
pub struct Batch {
    /// Per counter: its host metric id and the count not yet published.
    slots: Vec<(u32, Cell<u64>)>,
}

impl Batch {
    /// Defines counter `name` with the host.
    pub fn counter(&mut self, name: &str) -> Slot {
        let Ok(id) = hostcalls::define_metric(MetricType::Counter, name) else {
            return Slot(None);
        };
        let index = u32::try_from(self.slots.len()).ok();
        if index.is_some() {
            self.slots.push((id, Cell::new(0)));
        }
        Slot(index)
    }

    pub fn bump(&self, slot: Slot) {
        if let Some(i) = slot.0
            && let Some((_, n)) = self.slots.get(i as usize)
        {
            n.set(n.get().saturating_add(1));
        }
    }

    /// Publishes every count not yet published.
    pub fn flush(&self) {
        for (id, n) in &self.slots {
            let k = n.replace(0);
            if k > 0 {
                let _ = hostcalls::increment_metric(*id, i64::try_from(k).unwrap_or(i64::MAX));
            }
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.flush();
    }
}

pub struct Metrics {
    /// The counters bumped per request (see the module doc).
    batch: Batch,
    allowed: Slot,
    denied: Slot,
    by_reason: Vec<(Reason, Slot)>,
    /// Per provider: (fetch_ok, fetch_failed, adopted) for remote JWKS.
    jwks: Vec<(Option<u32>, Option<u32>, Option<u32>)>,
    /// Per rule name (and the default rule): (allowed, denied), by the
    /// decision taken, so dry-run would-denials count as denied.
    rules: std::collections::BTreeMap<String, (Slot, Slot)>,
    superadmin_used: Slot,
    dry_run_would_deny: Slot,
    /// Per provider name: (allowed, denied) of requests whose token it verified or chose.
    providers: std::collections::BTreeMap<String, (Slot, Slot)>,
    /// Per provider index: its revocation counters (`None` without a `revocation` section).
    revocation: Vec<(String, Option<RevocationIds>)>,
    /// Fail-open allows not yet logged, and when the last warning was logged.
    stale_allows: core::cell::Cell<(u64, i64)>,
}

/// See the module doc.
#[derive(Clone, Copy)]
pub struct RevocationIds {
    poll_ok: Option<u32>,
    poll_not_modified: Option<u32>,
    poll_failed: Option<u32>,
    overflow: Option<u32>,
    revoked: Slot,
    stale_denied: Slot,
    stale_allowed: Slot,
    entries: Option<u32>,
}

/// A poll's outcome, for [`Metrics::revocation_poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    Ok,
    NotModified,
    Failed,
    Overflow,
}

fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

fn bump(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

impl Metrics {
    pub fn define(policy: &scopegate_core::Policy) -> Metrics {
        let mut b = Batch::default();
        let revocation = policy
            .providers()
            .iter()
            .map(|p| {
                let n = p.name();
                let c = |what: &str| counter(&format!("scopegate.revocation.{n}.{what}"));
                let ids = p.revocation().map(|_| RevocationIds {
                    poll_ok: c("poll_ok"),
                    poll_not_modified: c("poll_not_modified"),
                    poll_failed: c("poll_failed"),
                    overflow: c("overflow"),
                    revoked: b.counter(&format!("scopegate.revocation.{n}.revoked")),
                    stale_denied: b.counter(&format!("scopegate.revocation.{n}.stale_denied")),
                    stale_allowed: b.counter(&format!("scopegate.revocation.{n}.stale_allowed")),
                    entries: hostcalls::define_metric(
                        MetricType::Gauge,
                        &format!("scopegate.revocation.{n}.entries"),
                    )
                    .ok(),
                });
                (n.to_owned(), ids)
            })
            .collect();
        let jwks = policy
            .providers()
            .iter()
            .map(|p| {
                if p.remote().is_none() {
                    return (None, None, None);
                }
                let n = p.name();
                (
                    counter(&format!("scopegate.jwks.{n}.fetch_ok")),
                    counter(&format!("scopegate.jwks.{n}.fetch_failed")),
                    counter(&format!("scopegate.jwks.{n}.adopted")),
                )
            })
            .collect();
        let providers = policy
            .providers()
            .iter()
            .map(|p| {
                let n = p.name();
                let allowed = b.counter(&format!("scopegate.provider.{n}.allowed"));
                let denied = b.counter(&format!("scopegate.provider.{n}.denied"));
                (n.to_owned(), (allowed, denied))
            })
            .collect();
        let rules = policy
            .rules()
            .iter()
            .chain(policy.authz().default_rule())
            .map(|r| {
                let n = r.name();
                let allowed = b.counter(&format!("scopegate.rule.{n}.allowed"));
                let denied = b.counter(&format!("scopegate.rule.{n}.denied"));
                (n.to_owned(), (allowed, denied))
            })
            .collect();
        Metrics {
            revocation,
            stale_allows: core::cell::Cell::new((0, i64::MIN)),
            jwks,
            providers,
            rules,
            superadmin_used: b.counter("scopegate.superadmin_used"),
            dry_run_would_deny: b.counter("scopegate.dry_run.would_deny"),
            allowed: b.counter("scopegate.allowed"),
            denied: b.counter("scopegate.denied"),
            by_reason: Reason::ALL
                .into_iter()
                .map(|r| (r, b.counter(&format!("scopegate.decision.{}", r.as_str()))))
                .collect(),
            batch: b,
        }
    }

    /// Publishes the per-request counts (on the root's tick).
    pub fn flush(&self) {
        self.batch.flush();
    }

    pub fn jwks_ok(&self, provider: usize) {
        bump(self.jwks.get(provider).and_then(|m| m.0));
    }

    pub fn jwks_failed(&self, provider: usize) {
        bump(self.jwks.get(provider).and_then(|m| m.1));
    }

    pub fn jwks_adopted(&self, provider: usize) {
        bump(self.jwks.get(provider).and_then(|m| m.2));
    }

    fn revocation_ids(&self, provider: usize) -> Option<RevocationIds> {
        self.revocation.get(provider).and_then(|(_, ids)| *ids)
    }

    /// Counts a revocation poll of `provider` (an overflow is a failed poll too).
    pub fn revocation_poll(&self, provider: usize, outcome: Poll) {
        let Some(ids) = self.revocation_ids(provider) else {
            return;
        };
        match outcome {
            Poll::Ok => bump(ids.poll_ok),
            Poll::NotModified => bump(ids.poll_not_modified),
            Poll::Failed => bump(ids.poll_failed),
            Poll::Overflow => {
                bump(ids.poll_failed);
                bump(ids.overflow);
            }
        }
    }

    /// Sets the gauge of fetched revocation entries held by `provider`.
    pub fn revocation_entries(&self, provider: usize, entries: usize) {
        if let Some(id) = self.revocation_ids(provider).and_then(|ids| ids.entries) {
            let _ = hostcalls::record_metric(id, u64::try_from(entries).unwrap_or(u64::MAX));
        }
    }

    /// Revocation counters of a decision: refused as revoked, refused or
    /// allowed on a stale list (fail-open allows also get a warning, at most
    /// one every 10 s per worker, with the count).
    fn record_revocation(&self, decision: &Decision) {
        let by_name = |name: Option<&str>| {
            name.and_then(|n| self.revocation.iter().find(|(p, _)| p == n))
                .and_then(|(_, ids)| *ids)
        };
        if let Some(d) = decision.would_deny() {
            let Some(ids) = by_name(d.provider.as_deref()) else {
                return;
            };
            match d.reason {
                Reason::TokenRevoked => self.batch.bump(ids.revoked),
                Reason::RevocationUnavailable => self.batch.bump(ids.stale_denied),
                _ => {}
            }
            return;
        }
        if let Decision::Allow(a) = decision
            && a.revocation_stale
        {
            let provider = a.principal.as_ref().map(|p| p.provider.as_str());
            if let Some(ids) = by_name(provider) {
                self.batch.bump(ids.stale_allowed);
            }
            let now = crate::facts::now_unix_seconds().unwrap_or(0);
            let (pending, last) = self.stale_allows.get();
            let pending = pending.saturating_add(1);
            if now >= last.saturating_add(10) {
                crate::log(
                    proxy_wasm::types::LogLevel::Warn,
                    &format!(
                        "scopegate: provider {}: {pending} request(s) allowed on a stale revocation list (on_stale: fail_open)",
                        provider.unwrap_or("-")
                    ),
                );
                self.stale_allows.set((0, now));
            } else {
                self.stale_allows.set((pending, last));
            }
        }
    }

    /// Counts a final decision (a pending one is counted when it settles).
    pub fn record(&self, decision: &Decision) {
        if let Decision::Pending(p) = decision {
            // Counted as what it became: the denial, or in dry-run the allow.
            return self.record(&p.otherwise);
        }
        let provider = match decision {
            Decision::Allow(a) => a.principal.as_ref().map(|p| p.provider.as_str()),
            _ => decision.would_deny().and_then(|d| d.provider.as_deref()),
        };
        if let Some((allowed, denied)) = provider.and_then(|p| self.providers.get(p)) {
            self.batch.bump(if decision.would_deny().is_some() {
                *denied
            } else {
                *allowed
            });
        }
        match decision {
            Decision::Allow(_) => self.batch.bump(self.allowed),
            Decision::Deny(_) | Decision::Pending(_) => self.batch.bump(self.denied),
        }
        let would_deny = decision.would_deny().is_some();
        if let Some((allowed, denied)) = decision.rule().and_then(|r| self.rules.get(r)) {
            self.batch.bump(if would_deny { *denied } else { *allowed });
        }
        if let Decision::Allow(a) = decision {
            if a.dry_run.is_some() {
                self.batch.bump(self.dry_run_would_deny);
            } else if a.reason == Reason::SuperAdmin {
                self.batch.bump(self.superadmin_used);
            }
        }
        let reason = decision.reason();
        if let Some((_, id)) = self.by_reason.iter().find(|(r, _)| *r == reason) {
            self.batch.bump(*id);
        }
        self.record_revocation(decision);
    }
}
