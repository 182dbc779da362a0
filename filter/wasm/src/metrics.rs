//! Counters, defined in `on_configure` (Envoy traps host calls during module start).
//!
//! Names as they appear in Envoy's `/stats`: `scopegate.allowed`,
//! `scopegate.denied`, and `scopegate.decision.<reason>` for every stable
//! reason (see `scopegate_core::Reason`).

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use scopegate_core::{Decision, Reason};

pub struct Metrics {
    allowed: Option<u32>,
    denied: Option<u32>,
    by_reason: Vec<(Reason, Option<u32>)>,
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
    pub fn define() -> Metrics {
        Metrics {
            allowed: counter("scopegate.allowed"),
            denied: counter("scopegate.denied"),
            by_reason: Reason::ALL
                .into_iter()
                .map(|r| (r, counter(&format!("scopegate.decision.{}", r.as_str()))))
                .collect(),
        }
    }

    pub fn record(&self, decision: &Decision) {
        match decision {
            Decision::Allow(_) => bump(self.allowed),
            Decision::Deny(_) => bump(self.denied),
        }
        let reason = decision.reason();
        if let Some((_, id)) = self.by_reason.iter().find(|(r, _)| *r == reason) {
            bump(*id);
        }
    }
}
