//! scopegate's proxy-wasm shim.
//!
//! Thin by design: it reads the plugin configuration and hands it to the core
//! compiler; per request it gathers the facts (method, path, the headers the
//! policy reads, host time), asks the core for a decision, and renders it
//! (edit headers and continue, or send the local reply). Remote JWKS I/O lives
//! in [`remote`]. No policy logic lives here.
//!
//! Host calls go through `proxy_wasm::hostcalls` directly and every error is
//! handled: the SDK's convenience methods unwrap internally (for example on a
//! header value that is not UTF-8), and a panic kills the VM in Envoy.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};
use scopegate_core::{Decision, Policy};

mod apply;
mod facts;
mod introspection;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod mem;
mod metrics;
mod remote;
mod revocation;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod size_classes;

/// Small blocks come from per-size lists in front of dlmalloc (see
/// [`size_classes`]).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: size_classes::SizeClasses<std::alloc::System> =
    size_classes::SizeClasses::new(std::alloc::System);

use apply::{Applied, apply, internal_error};
use facts::{Facts, now_unix_seconds};
use metrics::Metrics;
use remote::{Remote, SharedRemote};

proxy_wasm::main! {{
    // Only proxy_log may be called during module start in Envoy: no metrics here.
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> {
        Box::new(Root { id, configured: None })
    });
}}

pub(crate) fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

/// What a successful configure produced, shared with every stream.
#[derive(Clone)]
struct Configured {
    policy: Rc<Policy>,
    metrics: Rc<Metrics>,
    remote: SharedRemote,
}

struct Root {
    id: u32,
    configured: Option<Configured>,
}

impl Context for Root {
    fn on_done(&mut self) -> bool {
        if let Some(c) = &self.configured {
            c.flush_counters();
        }
        true
    }

    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(c) = self.configured.clone() else {
            return;
        };
        if introspection::on_answer(&c, token, body_size, self.id) {
            return;
        }
        let now = now_unix_seconds().unwrap_or(0);
        let settled = match c.remote.try_borrow_mut() {
            Ok(mut r) => r.answered(&c.policy, &c.metrics, token, body_size, now),
            Err(_) => None,
        };
        if let Some(settled) = settled {
            for s in &settled {
                c.metrics.record(&s.decision);
            }
            remote::render(settled, self.id);
        }
        self.retune_tick(&c);
    }
}

impl Configured {
    /// Publishes the per-request counters counted since the last tick.
    fn flush_counters(&self) {
        self.metrics.flush();
        if let Ok(r) = self.remote.try_borrow() {
            r.introspection.flush();
        }
    }
}

impl Root {
    fn retune_tick(&self, c: &Configured) {
        if let Ok(r) = c.remote.try_borrow()
            && r.any()
        {
            let _ = hostcalls::set_tick_period(r.tick_period());
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            Ok(None) => Vec::new(),
            Err(status) => {
                log(
                    LogLevel::Error,
                    &format!("scopegate: cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        match scopegate_core::compile_json(&bytes) {
            Ok(policy) => {
                for w in policy.warnings() {
                    log(LogLevel::Warn, &format!("scopegate: config warning: {w}"));
                }
                log(
                    LogLevel::Info,
                    &format!(
                        "scopegate: configured {} provider(s), {} rule(s)",
                        policy.providers().len(),
                        policy.rules().len()
                    ),
                );
                let remote = Remote::new(&policy);
                let c = Configured {
                    metrics: Rc::new(Metrics::define(&policy)),
                    remote: Rc::new(RefCell::new(remote)),
                    policy: Rc::new(policy),
                };
                self.retune_tick(&c);
                if let Ok(r) = c.remote.try_borrow()
                    && !r.any()
                {
                    // Without remote work the tick only publishes counters
                    // (and, with introspection, expires waiters).
                    let period = if r.introspection.any() {
                        introspection::TICK
                    } else {
                        metrics::FLUSH_TICK
                    };
                    let _ = hostcalls::set_tick_period(period);
                }
                self.configured = Some(c);
                true
            }
            Err(errors) => {
                for e in &errors {
                    log(LogLevel::Error, &format!("scopegate: invalid config: {e}"));
                }
                log(
                    LogLevel::Error,
                    &format!(
                        "scopegate: configuration rejected ({} problem(s))",
                        errors.len()
                    ),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(c) = self.configured.clone() else {
            return;
        };
        let Some(now) = now_unix_seconds() else {
            c.flush_counters();
            return;
        };
        let settled = match c.remote.try_borrow_mut() {
            Ok(mut r) => r.tick(&c.policy, &c.metrics, now),
            Err(_) => Vec::new(),
        };
        for s in &settled {
            c.metrics.record(&s.decision);
        }
        remote::render(settled, self.id);
        introspection::tick(&c, self.id, now);
        self.retune_tick(&c);
        c.flush_counters();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            id: context_id,
            configured: self.configured.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    id: u32,
    /// `None` only if Envoy created a stream for a root that never configured:
    /// every request is then refused (fail closed).
    configured: Option<Configured>,
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        // Introspection calls are dispatched from the stream that needs them.
        if let Some(c) = self.configured.clone() {
            introspection::on_answer(&c, token, body_size, self.id);
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(c) = self.configured.clone() else {
            internal_error("no policy is configured");
            return Action::Pause;
        };
        let facts = match Facts::gather(&c.policy) {
            Ok(f) => f,
            Err(why) => {
                internal_error(why);
                return Action::Pause;
            }
        };
        let Some(now) = now_unix_seconds() else {
            internal_error("host clock unavailable");
            return Action::Pause;
        };
        let decision = match c.remote.try_borrow() {
            Ok(r) => facts.with_request(now, |req| c.policy.decide_with(req, &*r)),
            Err(_) => facts.with_request(now, |req| c.policy.decide(req)),
        };
        if let Decision::Pending(p) = &decision
            && let Some(need) = &p.introspect
        {
            let waiting = match c.remote.try_borrow_mut() {
                Ok(mut r) => r
                    .introspection
                    .wait(self.id, p.provider, need, facts.clone(), now),
                Err(_) => false,
            };
            if waiting {
                return Action::Pause;
            }
            c.metrics.record(&decision);
            return match apply(&decision, &facts) {
                Applied::Continue => Action::Continue,
                Applied::Replied => Action::Pause,
            };
        }
        if let Decision::Pending(p) = &decision
            && let Ok(mut r) = c.remote.try_borrow_mut()
            && (if p.revocation {
                r.may_wait_revocation(p.provider)
            } else {
                r.may_wait(p.provider, p.unknown_kid, now)
            })
        {
            r.wait(self.id, p.provider, facts, now);
            return Action::Pause;
        }
        c.metrics.record(&decision);
        match apply(&decision, &facts) {
            Applied::Continue => Action::Continue,
            Applied::Replied => Action::Pause,
        }
    }

    fn on_log(&mut self) {
        if let Some(c) = &self.configured
            && let Ok(mut r) = c.remote.try_borrow_mut()
        {
            r.forget(self.id);
            r.introspection.forget(self.id);
        }
    }
}
