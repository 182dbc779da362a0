//! Counters, defined in `on_configure` (Envoy traps host calls during module start).
//!
//! Names as they appear in Envoy's `/stats`: `scopegate.allowed`,
//! `scopegate.denied`, and `scopegate.decision.<reason>` for every stable
//! reason (see `scopegate_core::Reason`); per rule
//! `scopegate.rule.<name>.allowed` / `.denied`; `scopegate.superadmin_used`;
//! `scopegate.dry_run.would_deny`; for remote JWKS providers
//! `scopegate.jwks.<provider>.fetch_ok`, `.fetch_failed` and `.adopted`.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use scopegate_core::{Decision, Reason};

pub struct Metrics {
    allowed: Option<u32>,
    denied: Option<u32>,
    by_reason: Vec<(Reason, Option<u32>)>,
    /// Per provider: (fetch_ok, fetch_failed, adopted) for remote JWKS.
    jwks: Vec<(Option<u32>, Option<u32>, Option<u32>)>,
    /// Per rule name (and the default rule): (allowed, denied), by the
    /// decision taken, so dry-run would-denials count as denied.
    rules: std::collections::BTreeMap<String, (Option<u32>, Option<u32>)>,
    superadmin_used: Option<u32>,
    dry_run_would_deny: Option<u32>,
    /// Per provider name: (allowed, denied) of requests whose token it verified or chose.
    providers: std::collections::BTreeMap<String, (Option<u32>, Option<u32>)>,
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
        Metrics {
            jwks: policy
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
                .collect(),
            providers: policy
                .providers()
                .iter()
                .map(|p| {
                    let n = p.name();
                    (
                        n.to_owned(),
                        (
                            counter(&format!("scopegate.provider.{n}.allowed")),
                            counter(&format!("scopegate.provider.{n}.denied")),
                        ),
                    )
                })
                .collect(),
            rules: policy
                .rules()
                .iter()
                .chain(policy.authz().default_rule())
                .map(|r| {
                    let n = r.name();
                    (
                        n.to_owned(),
                        (
                            counter(&format!("scopegate.rule.{n}.allowed")),
                            counter(&format!("scopegate.rule.{n}.denied")),
                        ),
                    )
                })
                .collect(),
            superadmin_used: counter("scopegate.superadmin_used"),
            dry_run_would_deny: counter("scopegate.dry_run.would_deny"),
            allowed: counter("scopegate.allowed"),
            denied: counter("scopegate.denied"),
            by_reason: Reason::ALL
                .into_iter()
                .map(|r| (r, counter(&format!("scopegate.decision.{}", r.as_str()))))
                .collect(),
        }
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
            bump(if decision.would_deny().is_some() {
                *denied
            } else {
                *allowed
            });
        }
        match decision {
            Decision::Allow(_) => bump(self.allowed),
            Decision::Deny(_) | Decision::Pending(_) => bump(self.denied),
        }
        let would_deny = decision.would_deny().is_some();
        if let Some((allowed, denied)) = decision.rule().and_then(|r| self.rules.get(r)) {
            bump(if would_deny { *denied } else { *allowed });
        }
        if let Decision::Allow(a) = decision {
            if a.dry_run.is_some() {
                bump(self.dry_run_would_deny);
            } else if a.reason == Reason::SuperAdmin {
                bump(self.superadmin_used);
            }
        }
        let reason = decision.reason();
        if let Some((_, id)) = self.by_reason.iter().find(|(r, _)| *r == reason) {
            bump(*id);
        }
    }
}
