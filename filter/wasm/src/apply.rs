//! Rendering a decision on the current (effective) stream.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType};
use scopegate_core::{Decision, Deny, Reason};

use crate::facts::Facts;
use crate::log;

/// What the stream should do after a decision was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Headers edited: let the request go upstream.
    Continue,
    /// A local reply was sent: the request stays stopped.
    Replied,
}

thread_local! {
    /// (second, debug on) of the last log-level read.
    static DEBUG: core::cell::Cell<Option<(i64, bool)>> = const { core::cell::Cell::new(None) };
}

/// Whether Envoy logs at debug level. Read from the host at most once per
/// second of the host clock (a host call per request cost 1.2 k instructions
/// in Envoy: BENCHMARKS.md); a change of Envoy's log level
/// (`/logging?level=debug`) takes effect from the next second.
fn debug_enabled() -> bool {
    let second = crate::facts::last_second();
    if let Some((at, on)) = DEBUG.get()
        && at == second
        && second != i64::MIN
    {
        return on;
    }
    let on = hostcalls::get_log_level().is_ok_and(|l| l as u32 <= LogLevel::Debug as u32);
    DEBUG.set(Some((second, on)));
    on
}

/// Applies an Allow or Deny. (Waiting on a Pending decision is the caller's
/// business; here it gets what it would get if it could not wait.)
pub fn apply(decision: &Decision, facts: &Facts) -> Applied {
    match decision {
        Decision::Allow(allow) => {
            if let Some(d) = &allow.dry_run {
                log(
                    LogLevel::Info,
                    &format!(
                        "scopegate: dry-run: would deny {} {} status={} reason={} rule={:?} sub={:?}: {}; let through",
                        facts.method,
                        facts.path,
                        d.status,
                        d.reason,
                        d.rule,
                        allow.principal.as_ref().and_then(|p| p.subject.as_deref()),
                        d.detail
                    ),
                );
            } else if allow.reason == Reason::SuperAdmin {
                log(
                    LogLevel::Info,
                    &format!(
                        "scopegate: super-admin scope used: {} {} rule={:?} provider={:?} sub={:?}",
                        facts.method,
                        facts.path,
                        allow.rule,
                        allow.principal.as_ref().map(|p| p.provider.as_str()),
                        allow.principal.as_ref().and_then(|p| p.subject.as_deref()),
                    ),
                );
            }
            if debug_enabled() {
                log(
                    LogLevel::Debug,
                    &format!(
                        "scopegate: allow {} {} rule={} reason={} sub={:?}{}",
                        facts.method,
                        facts.path,
                        allow.rule.as_deref().unwrap_or("-"),
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
            // A header that is set next needs no removal first: a replace
            // drops every value of the name (one host call instead of two).
            // A managed header the request does not carry has nothing to
            // strip.
            let mut names: Option<Option<Vec<&[u8]>>> = None;
            for name in &allow.remove_headers {
                if allow.set_headers.iter().any(|(n, _)| n == name) {
                    continue;
                }
                if facts.is_managed(name)
                    && names
                        .get_or_insert_with(|| facts.header_names())
                        .as_ref()
                        .is_some_and(|ns| !ns.iter().any(|k| k.eq_ignore_ascii_case(name.as_bytes())))
                {
                    continue;
                }
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
            }
            for (name, value) in &allow.set_headers {
                if hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).is_err()
                {
                    internal_error("could not set a forwarded header");
                    return Applied::Replied;
                }
            }
            Applied::Continue
        }
        Decision::Deny(deny) => {
            deny_reply(deny, facts);
            Applied::Replied
        }
        // Waiting is over or impossible: the denial, or in dry-run the allow.
        Decision::Pending(p) => apply(&p.otherwise, facts),
    }
}

/// Sends the local reply of a denial.
pub fn deny_reply(deny: &Deny, facts: &Facts) {
    if debug_enabled() {
        log(
            LogLevel::Debug,
            &format!(
                "scopegate: deny {} {} status={} reason={} rule={:?}: {}",
                facts.method, facts.path, deny.status, deny.reason, deny.rule, deny.detail
            ),
        );
    }
    send_reply(u32::from(deny.status), &deny.headers(), &deny.body());
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

/// Refuses the request with 500 when the filter itself cannot decide.
pub fn internal_error(detail: &str) {
    log(
        LogLevel::Error,
        &format!("scopegate: {detail}; refusing the request"),
    );
    send_reply(
        500,
        &[("content-type", "application/json".to_owned())],
        r#"{"status":500,"reason":"filter_error","message":"the authorization filter could not decide"}"#,
    );
}
