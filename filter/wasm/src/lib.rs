//! scopegate's proxy-wasm shim.
//!
//! Thin by design: it reads the plugin configuration and hands it to the core
//! compiler; per request it gathers the facts (method, path, Authorization,
//! host time), asks the core for a decision, and renders it (edit headers and
//! continue, or send the local reply). No policy logic lives here.
//!
//! Host calls go through `proxy_wasm::hostcalls` directly and every error is
//! handled: the SDK's convenience methods unwrap internally (for example on a
//! header value that is not UTF-8), and a panic kills the VM in Envoy.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use scopegate_core::{Decision, Policy, Request};

mod metrics;
use metrics::Metrics;

#[cfg(target_arch = "wasm32")]
fn no_randomness(_: &mut [u8]) -> Result<(), getrandom::Error> {
    // Verification never needs randomness; anything that asks gets an error
    // instead of an import of JavaScript glue.
    Err(getrandom::Error::UNSUPPORTED)
}
#[cfg(target_arch = "wasm32")]
getrandom::register_custom_getrandom!(no_randomness);

proxy_wasm::main! {{
    // Only proxy_log may be called during module start in Envoy: no metrics here.
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

#[derive(Default)]
struct Root {
    policy: Option<Rc<Policy>>,
    metrics: Option<Rc<Metrics>>,
}

impl Context for Root {}

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
                self.metrics = Some(Rc::new(Metrics::define()));
                self.policy = Some(Rc::new(policy));
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

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            policy: self.policy.clone(),
            metrics: self.metrics.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    /// `None` only if Envoy created a stream for a root that never configured:
    /// every request is then refused (fail closed).
    policy: Option<Rc<Policy>>,
    metrics: Option<Rc<Metrics>>,
}

impl Context for Stream {}

/// A request header as text. Not-UTF-8 values are treated as absent for
/// matching purposes but never crash the VM.
fn header(name: &str) -> Result<Option<String>, ()> {
    match hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => String::from_utf8(bytes).map(Some).map_err(|_| ()),
        Err(_) => Ok(None),
    }
}

fn now_unix_seconds() -> Option<i64> {
    let t = hostcalls::get_current_time().ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

fn send_reply(status: u32, headers: &[(&str, String)], body: &str) {
    let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if let Err(status_code) = hostcalls::send_http_response(status, hs, Some(body.as_bytes())) {
        log(
            LogLevel::Error,
            &format!("scopegate: send_http_response failed: {status_code:?}"),
        );
    }
}

fn internal_error(detail: &str) -> Action {
    log(
        LogLevel::Error,
        &format!("scopegate: {detail}; refusing the request"),
    );
    send_reply(
        500,
        &[("content-type", "application/json".to_owned())],
        r#"{"status":500,"reason":"filter_error","message":"the authorization filter could not decide"}"#,
    );
    Action::Pause
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(policy) = self.policy.clone() else {
            return internal_error("no policy is configured");
        };
        let (Ok(method), Ok(path)) = (header(":method"), header(":path")) else {
            return internal_error("request pseudo-headers are not UTF-8");
        };
        let (Some(method), Some(path)) = (method, path) else {
            return internal_error("request has no :method or :path");
        };
        // Only the headers the policy reads: each is one host call.
        let mut owned: Vec<(&str, String)> = Vec::new();
        for name in policy.wanted_headers() {
            if name.starts_with(':') {
                continue;
            }
            match header(name) {
                Ok(Some(v)) => owned.push((name.as_str(), v)),
                Ok(None) => {}
                // Not UTF-8: cannot hold a valid token; present it as garbage
                // so that it is refused rather than ignored.
                Err(()) => owned.push((name.as_str(), String::from("\u{fffd}"))),
            }
        }
        let headers: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let Some(now) = now_unix_seconds() else {
            return internal_error("host clock unavailable");
        };
        let decision = policy.decide(&Request {
            method: &method,
            path: &path,
            headers: &headers,
            now_unix_seconds: now,
        });
        if let Some(m) = &self.metrics {
            m.record(&decision);
        }
        match decision {
            Decision::Allow(allow) => {
                if hostcalls::get_log_level().is_ok_and(|l| l as u32 <= LogLevel::Debug as u32) {
                    log(
                        LogLevel::Debug,
                        &format!(
                            "scopegate: allow {method} {path} rule={} reason={} sub={:?}{}",
                            allow.rule,
                            allow.reason,
                            allow.principal.as_ref().and_then(|p| p.subject.as_deref()),
                            allow
                                .ignored_token
                                .as_ref()
                                .map(|f| format!(" ignored_token={} ({})", f.reason, f.detail))
                                .unwrap_or_default()
                        ),
                    );
                }
                for name in &allow.remove_headers {
                    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
                }
                for (name, value) in &allow.set_headers {
                    if hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
                        .is_err()
                    {
                        return internal_error("could not set a forwarded header");
                    }
                }
                Action::Continue
            }
            Decision::Deny(deny) => {
                log(
                    LogLevel::Debug,
                    &format!(
                        "scopegate: deny {method} {path} status={} reason={} rule={:?}: {}",
                        deny.status, deny.reason, deny.rule, deny.detail
                    ),
                );
                send_reply(u32::from(deny.status), &deny.headers(), &deny.body());
                Action::Pause
            }
        }
    }
}
