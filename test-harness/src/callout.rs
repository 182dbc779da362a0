//! HTTP callouts (`proxy_http_call`) and their answers.

use crate::host::Host;
use std::time::{Duration, SystemTime};

/// What the filter sent upstream, as Envoy would send it (with
/// `x-envoy-internal`, `x-envoy-expected-rq-timeout-ms` and `content-length` added).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CalloutRequest {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// `None` when the filter passed 0 (no timeout).
    pub timeout: Option<Duration>,
}

impl CalloutRequest {
    /// First value of a request header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How an upstream answers a callout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamReply {
    /// A response. `headers` should include `:status`.
    Response {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        trailers: Vec<(String, String)>,
        /// Upstream latency on the virtual clock (0: right after the callback).
        delay: Duration,
    },
    /// Stream reset: Envoy calls `on_http_call_response` with 0 headers, 0 body,
    /// 0 trailers, and `proxy_get_status` gives BrokenConnection / "reset".
    Reset,
    /// Envoy's synthesized 503 "upstream connect error ..." (3 headers).
    ConnectFailure,
    /// Never answer: the callout times out (synthesized 504) if it has a timeout.
    Hang,
}

impl UpstreamReply {
    /// A response with `status`, optional extra headers and a body.
    pub fn status(status: u16, headers: &[(&str, &str)], body: &[u8]) -> UpstreamReply {
        let mut h = vec![(":status".to_string(), status.to_string())];
        h.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())),
        );
        UpstreamReply::Response {
            headers: h,
            body: body.to_vec(),
            trailers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// The same reply, delivered after `d` on the virtual clock.
    pub fn after(self, d: Duration) -> UpstreamReply {
        match self {
            UpstreamReply::Response {
                headers,
                body,
                trailers,
                ..
            } => UpstreamReply::Response {
                headers,
                body,
                trailers,
                delay: d,
            },
            other => other,
        }
    }
}

/// What the filter receives in `proxy_on_http_call_response`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CalloutResponse {
    pub(crate) headers: crate::headers::HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: crate::headers::HeaderMap,
    pub(crate) status_code: u32,
    pub(crate) status_message: String,
}

pub(crate) fn synthesized(status: u16, body: &str) -> CalloutResponse {
    let headers = crate::headers::HeaderMap::from_pairs(&[
        (":status", status.to_string()),
        ("content-length", body.len().to_string()),
        ("content-type", "text/plain".to_string()),
    ]);
    CalloutResponse {
        headers,
        body: body.as_bytes().to_vec(),
        trailers: Default::default(),
        status_code: 0,
        status_message: String::new(),
    }
}

pub(crate) const TIMEOUT_BODY: &str = "upstream request timeout";
/// What Envoy 1.40 sends when the cluster's endpoint refuses the connection.
pub(crate) const CONNECT_FAILURE_BODY: &str = "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";

#[derive(Debug, Clone)]
pub(crate) struct PendingCallout {
    pub(crate) seq: u64,
    pub(crate) vm_index: usize,
    pub(crate) token: u32,
    pub(crate) context_id: u32,
    pub(crate) request: CalloutRequest,
    pub(crate) dispatched_at: SystemTime,
    pub(crate) deadline: Option<SystemTime>,
    /// A scripted reply scheduled for a time.
    pub(crate) scheduled: Option<(SystemTime, UpstreamReply)>,
}

/// A callout waiting for an answer. Answer it with [`Callout::respond`],
/// [`Callout::fail`], [`Callout::timeout`] or [`Callout::connect_failure`].
#[derive(Debug, Clone)]
pub struct Callout {
    host: Host,
    seq: u64,
    /// The token handed to the filter.
    pub token: u32,
    /// The context that dispatched the call (the effective context at that time).
    pub context_id: u32,
    /// The request as sent upstream.
    pub request: CalloutRequest,
    /// When it was dispatched (virtual time).
    pub dispatched_at: SystemTime,
}

impl Callout {
    pub(crate) fn new(host: Host, p: &PendingCallout) -> Callout {
        Callout {
            host,
            seq: p.seq,
            token: p.token,
            context_id: p.context_id,
            request: p.request.clone(),
            dispatched_at: p.dispatched_at,
        }
    }

    /// Target cluster.
    pub fn cluster(&self) -> &str {
        &self.request.cluster
    }

    /// First value of a request header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }

    /// Answers with headers (include `:status`) and a body.
    /// Returns false if the callout was no longer pending.
    pub fn respond(self, headers: &[(&str, &str)], body: &[u8]) -> bool {
        let h: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.deliver(UpstreamReply::Response {
            headers: h,
            body: body.to_vec(),
            trailers: Vec::new(),
            delay: Duration::ZERO,
        })
    }

    /// Answers with a status and body (no other headers).
    pub fn respond_status(self, status: u16, body: &[u8]) -> bool {
        self.deliver(UpstreamReply::status(status, &[], body))
    }

    /// Answers with any [`UpstreamReply`] (delay ignored: delivered now).
    pub fn reply(self, reply: UpstreamReply) -> bool {
        self.deliver(reply)
    }

    /// Resets the upstream stream: the filter sees 0 headers and no body,
    /// and `proxy_get_status` returns BrokenConnection ("reset").
    pub fn fail(self) -> bool {
        self.deliver(UpstreamReply::Reset)
    }

    /// Fires the timeout now: Envoy's synthesized 504 "upstream request timeout".
    pub fn timeout(self) -> bool {
        let host = self.host.clone();
        match take(&host, self.seq) {
            Some(p) => {
                crate::scheduler::deliver(&host, p, crate::scheduler::Delivery::Timeout);
                host.run_pending();
                true
            }
            None => false,
        }
    }

    /// Envoy's synthesized 503 for a connection failure.
    pub fn connect_failure(self) -> bool {
        self.deliver(UpstreamReply::ConnectFailure)
    }

    fn deliver(self, reply: UpstreamReply) -> bool {
        let host = self.host.clone();
        match take(&host, self.seq) {
            Some(p) => {
                crate::scheduler::deliver(&host, p, crate::scheduler::Delivery::Reply(reply));
                host.run_pending();
                true
            }
            None => false,
        }
    }
}

pub(crate) fn take(host: &Host, seq: u64) -> Option<PendingCallout> {
    let mut st = host.state.borrow_mut();
    let pos = st.callouts.iter().position(|p| p.seq == seq)?;
    Some(st.callouts.remove(pos))
}
