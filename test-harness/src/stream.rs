//! HTTP streams: the request/response state machine, with Envoy's rules for
//! Pause/Continue, buffering, local replies and stream end.

use crate::headers::HeaderMap;
use crate::vm::{CallError, Callback, ROOT_CONTEXT_ID, Vm, VmInner};
use std::collections::BTreeMap;
use wasmtime::Val;

/// What a stream step led to, as the client or upstream would see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The filter let the data through (request: forwarded upstream;
    /// response: sent to the client).
    Continue,
    /// The filter returned Pause and hasn't resumed (yet).
    Paused,
    /// A local reply (`proxy_send_local_response`), after it passed through
    /// the filter's own response callbacks, as the client receives it.
    LocalReply {
        status: u32,
        headers: Vec<(String, String)>,
        #[serde(serialize_with = "ser_body")]
        body: Vec<u8>,
    },
    /// The stream was reset (`proxy_close_stream`, buffer limit exceeded).
    Reset { reason: String },
    /// The guest trapped (panic, out of fuel, ...). Envoy answers 503 with an
    /// empty body, and the VM is dead: later streams fail the same way.
    Failed { message: String },
}

fn ser_body<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}

impl Outcome {
    /// The HTTP status the client gets, when this outcome decides it
    /// (local reply, or 503 for a failed VM).
    pub fn http_status(&self) -> Option<u32> {
        match self {
            Outcome::LocalReply { status, .. } => Some(*status),
            Outcome::Failed { .. } => Some(503),
            _ => None,
        }
    }

    pub fn is_continue(&self) -> bool {
        matches!(self, Outcome::Continue)
    }

    pub fn is_paused(&self) -> bool {
        matches!(self, Outcome::Paused)
    }

    /// For a local reply: first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            Outcome::LocalReply { headers, .. } => headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    /// For a local reply: the body as text.
    pub fn body_text(&self) -> Option<String> {
        match self {
            Outcome::LocalReply { body, .. } => Some(String::from_utf8_lossy(body).into_owned()),
            _ => None,
        }
    }
}

/// What reached the upstream (or the client) so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    pub headers: Option<Vec<(String, String)>>,
    #[serde(serialize_with = "ser_body")]
    pub body: Vec<u8>,
    pub trailers: Option<Vec<(String, String)>>,
    /// End of stream was forwarded.
    pub complete: bool,
}

impl Message {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.as_ref().and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        })
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct LocalReplySpec {
    pub(crate) status: u32,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) body: Vec<u8>,
}

/// Per-direction flow state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Direction {
    pub(crate) headers: Option<HeaderMap>,
    pub(crate) trailers: Option<HeaderMap>,
    /// Body data visible to the filter (current chunk, or everything buffered).
    pub(crate) body: Vec<u8>,
    /// A body callback returned Pause: data accumulates in `body`.
    pub(crate) buffering: bool,
    /// The filter stopped iteration; nothing is forwarded until it resumes.
    pub(crate) paused: bool,
    pub(crate) headers_forwarded: bool,
    pub(crate) end_seen: bool,
    pub(crate) in_body_callback: bool,
    /// Envoy keeps its pointer to the header map only while the filter holds
    /// the headers: it is cleared when the headers callback returns Continue.
    pub(crate) headers_visible: bool,
    pub(crate) trailers_visible: bool,
    /// Pause from a headers callback is StopAllIterationAndWatermark in
    /// Envoy (ABI 0.2.x): later body/trailers are held, not given to the
    /// filter, until it continues.
    pub(crate) stopped_all: bool,
    pub(crate) held_body: Vec<u8>,
    pub(crate) held_body_seen: bool,
    pub(crate) held_trailers: Option<HeaderMap>,
    pub(crate) forwarded: Message,
}

/// Everything the host knows about one HTTP stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamState {
    pub(crate) id: u32,
    pub(crate) created: bool,
    pub(crate) deleted: bool,
    pub(crate) request: Direction,
    pub(crate) response: Direction,
    /// Properties set by the test for this stream.
    pub(crate) properties: BTreeMap<Vec<String>, Vec<u8>>,
    /// Properties set by the filter (`proxy_set_property`).
    pub(crate) filter_state: BTreeMap<Vec<String>, Vec<u8>>,
    pub(crate) pending_local_reply: Option<LocalReplySpec>,
    pub(crate) local_reply_sent: bool,
    pub(crate) pending_continue_request: bool,
    pub(crate) pending_continue_response: bool,
    pub(crate) pending_reset: Option<String>,
    pub(crate) terminal: Option<Outcome>,
    pub(crate) awaiting_done: bool,
    pub(crate) done_called: bool,
    pub(crate) request_id: String,
    pub(crate) start_nanos: u64,
    /// The filter changed the request headers: Envoy cleared the route cache.
    pub(crate) route_cache_cleared: bool,
}

impl StreamState {
    pub(crate) fn new(id: u32) -> StreamState {
        StreamState {
            id,
            created: false,
            deleted: false,
            request: Direction::default(),
            response: Direction::default(),
            properties: BTreeMap::new(),
            filter_state: BTreeMap::new(),
            pending_local_reply: None,
            local_reply_sent: false,
            pending_continue_request: false,
            pending_continue_response: false,
            pending_reset: None,
            terminal: None,
            awaiting_done: false,
            done_called: false,
            request_id: String::new(),
            start_nanos: 0,
            route_cache_cleared: false,
        }
    }

    pub(crate) fn fail(&mut self, message: String) {
        if self.terminal.is_none() {
            self.terminal = Some(Outcome::Failed { message });
        }
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.pending_local_reply.is_some()
            || self.pending_reset.is_some()
            || self.pending_continue_request
            || self.pending_continue_response
            || (self.awaiting_done && self.done_called)
    }

    fn request_outcome(&self) -> Outcome {
        if let Some(t) = &self.terminal {
            return t.clone();
        }
        if self.request.paused || self.request.buffering {
            Outcome::Paused
        } else {
            Outcome::Continue
        }
    }

    fn response_outcome(&self) -> Outcome {
        if let Some(t) = &self.terminal {
            return t.clone();
        }
        if self.response.paused || self.response.buffering {
            Outcome::Paused
        } else {
            Outcome::Continue
        }
    }
}

/// Envoy's request header normalisation: pseudo-headers first in the order
/// `:authority, :path, :method, :scheme`, then the client's headers, then
/// `x-forwarded-proto` and `x-request-id`; `host` becomes `:authority`;
/// `transfer-encoding` is hidden; names are lowercase.
pub(crate) fn envoy_request_headers(input: &[(&str, &str)], request_id: &str) -> HeaderMap {
    let mut m = HeaderMap::new();
    let lower: Vec<(String, &str)> = input
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    let find = |name: &str| lower.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let authority = find(":authority").or_else(|| find("host"));
    if let Some(a) = authority {
        m.add(":authority", a.as_bytes());
    }
    for p in [":path", ":method"] {
        if let Some(v) = find(p) {
            m.add(p, v.as_bytes());
        }
    }
    let scheme = find(":scheme").unwrap_or("http");
    m.add(":scheme", scheme.as_bytes());
    for (k, v) in &lower {
        if k.starts_with(':') {
            if ![":authority", ":path", ":method", ":scheme"].contains(&k.as_str()) {
                m.add(k, v.as_bytes());
            }
            continue;
        }
        if k == "host"
            || k == "transfer-encoding"
            || k == "x-request-id"
            || k == "x-forwarded-proto"
        {
            continue;
        }
        m.add(k, v.as_bytes());
    }
    m.add("x-forwarded-proto", scheme.as_bytes());
    let rid = find("x-request-id").unwrap_or(request_id);
    m.add("x-request-id", rid.as_bytes());
    m
}

/// A handle on one HTTP stream of a VM. Dropping it finishes the stream
/// (`on_log`, `on_done`, `on_delete`).
pub struct HttpStream {
    vm: Vm,
    id: u32,
    normalize: bool,
}

impl std::fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStream").field("id", &self.id).finish()
    }
}

impl Drop for HttpStream {
    fn drop(&mut self) {
        if let Ok(mut i) = self.vm.inner.try_borrow_mut() {
            finish_stream(&mut i, self.id);
            // Envoy forgets a context once it is deleted; with its handle
            // gone nothing can look at it any more. Keeping every stream
            // made each later call walk them all (quadratic over a long run)
            // and grew the host's memory per request.
            if i.data().streams.get(&self.id).is_some_and(|s| s.deleted) {
                i.data_mut().streams.remove(&self.id);
                // Its callbacks stay in `Vm::callback_stats`; only the
                // per-context index that its handle used goes.
                i.stats_by_context.remove(&self.id);
            }
        }
    }
}

impl HttpStream {
    pub(crate) fn new(vm: Vm, id: u32) -> HttpStream {
        HttpStream {
            vm,
            id,
            normalize: true,
        }
    }

    /// The stream's context id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The VM this stream runs on.
    pub fn vm(&self) -> &Vm {
        &self.vm
    }

    /// Pass request headers exactly as given (lowercased names only), without
    /// Envoy's normalisation (`:scheme`, `x-forwarded-proto`, `x-request-id`, order).
    pub fn raw_headers(mut self) -> Self {
        self.normalize = false;
        self
    }

    /// Sets a property for this stream (e.g. `&["xds","route_name"]`).
    /// Strings are raw bytes; use [`crate::property`] helpers for ints/bools.
    pub fn set_property(&mut self, path: &[&str], value: impl AsRef<[u8]>) -> &mut Self {
        {
            let mut i = self.vm.inner.borrow_mut();
            if let Some(s) = i.data_mut().streams.get_mut(&self.id) {
                s.properties.insert(
                    path.iter().map(|p| p.to_string()).collect(),
                    value.as_ref().to_vec(),
                );
            }
        }
        self
    }

    /// Client request headers arrive (`proxy_on_request_headers`).
    fn request_headers_inner(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Outcome {
        let mut i = self.vm.inner.borrow_mut();
        let start_nanos = crate::property::now_nanos(i.data());
        let rid = {
            let mut h = i.data().host.borrow_mut();
            let n = h.next_request_id;
            h.next_request_id += 1;
            format!("00000000-0000-4000-8000-{n:012x}")
        };
        let map = if self.normalize {
            envoy_request_headers(headers, &rid)
        } else {
            HeaderMap::from_pairs(headers)
        };
        let id = self.id;
        let Some(s) = i.data_mut().streams.get_mut(&id) else {
            return Outcome::Reset {
                reason: "no such stream".into(),
            };
        };
        if let Some(t) = &s.terminal {
            return t.clone();
        }
        s.request_id = map.get("x-request-id").unwrap_or(rid);
        let n = map.len() as i32;
        s.request.headers = Some(map);
        s.request.end_seen = end_of_stream;
        s.request.paused = false;
        s.request.headers_visible = true;
        s.start_nanos = start_nanos;
        let r = i.call(
            Callback::RequestHeaders,
            id,
            &[
                Val::I32(id as i32),
                Val::I32(n),
                Val::I32(i32::from(end_of_stream)),
            ],
        );
        after_callback(&mut i, id, true, Kind::Headers, r);
        outcome(&i, id, true)
    }

    /// A request body chunk (`proxy_on_request_body`). While the filter
    /// returns Pause, Envoy buffers and each call carries the cumulative size.
    fn request_body_inner(&mut self, data: &[u8], end_of_stream: bool) -> Outcome {
        let mut i = self.vm.inner.borrow_mut();
        body_event(&mut i, self.id, true, data, end_of_stream);
        outcome(&i, self.id, true)
    }

    /// A whole request body as Envoy delivers it from a client: one call per
    /// chunk, then a final empty call with end_of_stream.
    pub fn send_request_body(&mut self, chunks: &[&[u8]]) -> Outcome {
        send_chunks(chunks, |d, eos| self.request_body(d, eos))
    }

    /// Request trailers (`proxy_on_request_trailers`); ends the request.
    fn request_trailers_inner(&mut self, trailers: &[(&str, &str)]) -> Outcome {
        let mut i = self.vm.inner.borrow_mut();
        trailers_event(&mut i, self.id, true, trailers);
        outcome(&i, self.id, true)
    }

    /// Upstream response headers (`proxy_on_response_headers`).
    fn response_headers_inner(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Outcome {
        let mut i = self.vm.inner.borrow_mut();
        let id = self.id;
        let Some(s) = i.data_mut().streams.get_mut(&id) else {
            return Outcome::Continue;
        };
        if let Some(t) = &s.terminal {
            return t.clone();
        }
        let map = HeaderMap::from_pairs(headers);
        let n = map.len() as i32;
        s.response.headers = Some(map);
        s.response.end_seen = end_of_stream;
        s.response.headers_visible = true;
        let r = i.call(
            Callback::ResponseHeaders,
            id,
            &[
                Val::I32(id as i32),
                Val::I32(n),
                Val::I32(i32::from(end_of_stream)),
            ],
        );
        after_callback(&mut i, id, false, Kind::Headers, r);
        outcome(&i, id, false)
    }

    /// An upstream response body chunk (`proxy_on_response_body`).
    fn response_body_inner(&mut self, data: &[u8], end_of_stream: bool) -> Outcome {
        let mut i = self.vm.inner.borrow_mut();
        body_event(&mut i, self.id, false, data, end_of_stream);
        outcome(&i, self.id, false)
    }

    /// A whole response body: one call per chunk, then a final empty call.
    pub fn send_response_body(&mut self, chunks: &[&[u8]]) -> Outcome {
        send_chunks(chunks, |d, eos| self.response_body(d, eos))
    }

    /// Upstream response trailers (`proxy_on_response_trailers`).
    fn response_trailers_inner(&mut self, trailers: &[(&str, &str)]) -> Outcome {
        let mut i = self.vm.inner.borrow_mut();
        trailers_event(&mut i, self.id, false, trailers);
        outcome(&i, self.id, false)
    }

    /// The request direction's state now (changes when a callout answer resumes it).
    pub fn request_outcome(&self) -> Outcome {
        self.with_state(|s| s.request_outcome())
            .unwrap_or(Outcome::Continue)
    }

    /// The response direction's state now.
    pub fn response_outcome(&self) -> Outcome {
        self.with_state(|s| s.response_outcome())
            .unwrap_or(Outcome::Continue)
    }

    /// The request headers as the filter left them (what goes upstream when it continues).
    pub fn request_headers_now(&self) -> Vec<(String, String)> {
        self.with_state(|s| s.request.headers.as_ref().map(|h| h.pairs()))
            .flatten()
            .unwrap_or_default()
    }

    /// First value of a request header as the filter left it.
    pub fn request_header(&self, name: &str) -> Option<String> {
        self.with_state(|s| s.request.headers.as_ref().and_then(|h| h.get(name)))
            .flatten()
    }

    /// The response headers as the filter left them.
    pub fn response_headers_now(&self) -> Vec<(String, String)> {
        self.with_state(|s| s.response.headers.as_ref().map(|h| h.pairs()))
            .flatten()
            .unwrap_or_default()
    }

    /// First value of a response header as the filter left it.
    pub fn response_header(&self, name: &str) -> Option<String> {
        self.with_state(|s| s.response.headers.as_ref().and_then(|h| h.get(name)))
            .flatten()
    }

    /// What was forwarded upstream so far.
    pub fn upstream_request(&self) -> Message {
        self.with_state(|s| s.request.forwarded.clone())
            .unwrap_or_default()
    }

    /// What the client received so far.
    pub fn downstream_response(&self) -> Message {
        self.with_state(|s| s.response.forwarded.clone())
            .unwrap_or_default()
    }

    /// Properties the filter set with `proxy_set_property`, by dotted path.
    pub fn filter_state(&self) -> BTreeMap<String, Vec<u8>> {
        self.with_state(|s| {
            s.filter_state
                .iter()
                .map(|(k, v)| (k.join("."), v.clone()))
                .collect()
        })
        .unwrap_or_default()
    }

    /// Log lines emitted from this stream's context.
    pub fn logs(&self) -> Vec<crate::vm::LogLine> {
        self.vm.logs_where(|l| l.context_id == self.id)
    }

    /// Fuel consumed by this stream's callbacks (context id == stream id).
    pub fn fuel_used(&self) -> u64 {
        self.vm.fold_context_stats(self.id, 0, |n, s| n + s.fuel)
    }

    /// Host calls made by this stream's callbacks.
    pub fn hostcalls_used(&self) -> u64 {
        self.vm.fold_context_stats(self.id, 0, |n, s| n + s.hostcalls)
    }

    /// Per-callback stats of this stream.
    pub fn callback_stats(&self) -> Vec<crate::vm::CallbackStat> {
        self.vm.fold_context_stats(self.id, Vec::new(), |mut v, s| {
            v.push(s.clone());
            v
        })
    }

    /// Whether the stream ended (on_log / on_done / on_delete ran, or it was
    /// terminated on a dead VM).
    pub fn finished(&self) -> bool {
        self.with_state(|s| s.deleted).unwrap_or(true)
    }

    /// Ends the stream: `proxy_on_log`, `proxy_on_done`, `proxy_on_delete`
    /// (Envoy's HTTP order). Idempotent; also done on drop.
    pub fn finish(&mut self) {
        let mut i = self.vm.inner.borrow_mut();
        finish_stream(&mut i, self.id);
    }

    fn with_state<T>(&self, f: impl FnOnce(&StreamState) -> T) -> Option<T> {
        let i = self.vm.inner.borrow();
        i.data().streams.get(&self.id).map(f)
    }
}

impl HttpStream {
    /// Client request headers arrive (`proxy_on_request_headers`).
    pub fn request_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Outcome {
        let out = self.request_headers_inner(headers, end_of_stream);
        self.vm.host.run_pending();
        out
    }

    /// A request body chunk (`proxy_on_request_body`). While the filter
    /// returns Pause, Envoy buffers and each call carries the cumulative size.
    /// Behind a paused headers callback the data is held until it continues.
    pub fn request_body(&mut self, data: &[u8], end_of_stream: bool) -> Outcome {
        let out = self.request_body_inner(data, end_of_stream);
        self.vm.host.run_pending();
        out
    }

    /// Request trailers (`proxy_on_request_trailers`); ends the request.
    pub fn request_trailers(&mut self, trailers: &[(&str, &str)]) -> Outcome {
        let out = self.request_trailers_inner(trailers);
        self.vm.host.run_pending();
        out
    }

    /// Upstream response headers (`proxy_on_response_headers`).
    pub fn response_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Outcome {
        let out = self.response_headers_inner(headers, end_of_stream);
        self.vm.host.run_pending();
        out
    }

    /// An upstream response body chunk (`proxy_on_response_body`).
    pub fn response_body(&mut self, data: &[u8], end_of_stream: bool) -> Outcome {
        let out = self.response_body_inner(data, end_of_stream);
        self.vm.host.run_pending();
        out
    }

    /// Upstream response trailers (`proxy_on_response_trailers`).
    pub fn response_trailers(&mut self, trailers: &[(&str, &str)]) -> Outcome {
        let out = self.response_trailers_inner(trailers);
        self.vm.host.run_pending();
        out
    }
}

fn dir(s: &mut StreamState, request: bool) -> &mut Direction {
    if request {
        &mut s.request
    } else {
        &mut s.response
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Headers,
    Body,
    Trailers,
}

/// Applies a callback's returned action (and Envoy's overrides), then settles.
pub(crate) fn after_callback(
    i: &mut VmInner,
    id: u32,
    request: bool,
    kind: Kind,
    r: Result<Option<i32>, CallError>,
) {
    match r {
        Err(e) => {
            if let Some(s) = i.data_mut().streams.get_mut(&id) {
                s.fail(e.message());
            }
            i.fail_all_streams(&e.message());
            return;
        }
        Ok(action) => {
            let cont = action.unwrap_or(0) == 0;
            let limit = i.data().cfg.buffer_limit;
            let allow_stop_iteration = i.data().cfg.allow_on_headers_stop_iteration;
            let Some(s) = i.data_mut().streams.get_mut(&id) else {
                return;
            };
            {
                let d = dir(s, request);
                d.in_body_callback = false;
                if cont {
                    match kind {
                        Kind::Headers => d.headers_visible = false,
                        Kind::Trailers => d.trailers_visible = false,
                        Kind::Body => {}
                    }
                }
            }
            if s.pending_local_reply.is_some() || s.pending_reset.is_some() {
                // Envoy overrides the callback's action to Stop.
                dir(s, request).paused = true;
            } else if cont {
                forward(s, request);
            } else {
                let d = dir(s, request);
                d.paused = true;
                match kind {
                    Kind::Headers => d.stopped_all = !allow_stop_iteration,
                    Kind::Body => {
                        d.buffering = true;
                        if d.body.len() > limit {
                            s.pending_reset = Some("buffer limit exceeded".into());
                        }
                    }
                    Kind::Trailers => {}
                }
            }
        }
    }
    i.settle();
}

/// The router takes the route when the request headers reach it. After the filter
/// changed them (route cache cleared) Envoy looks the route up again, and a request
/// without `x-forwarded-proto` matches no route (`VirtualHostImpl::getRouteFromEntries`):
/// the router answers 404 (`route_not_found`, empty body) back through the filter.
/// The harness assumes Envoy's route table otherwise matches every request.
/// Returns true when that reply was queued instead of forwarding the headers.
fn route_lost(s: &mut StreamState, request: bool) -> bool {
    let lost = request
        && s.route_cache_cleared
        && !s.request.headers_forwarded
        && s.request
            .headers
            .as_ref()
            .is_some_and(|h| !h.contains("x-forwarded-proto"));
    if lost && s.pending_local_reply.is_none() && !s.local_reply_sent {
        s.pending_local_reply = Some(LocalReplySpec {
            status: 404,
            headers: Vec::new(),
            body: Vec::new(),
        });
    }
    lost
}

/// Forwards everything held in a direction (headers, buffered body, trailers).
fn forward(s: &mut StreamState, request: bool) {
    if route_lost(s, request) {
        s.request.paused = true;
        return;
    }
    let d = dir(s, request);
    d.paused = false;
    d.buffering = false;
    if !d.headers_forwarded
        && let Some(h) = &d.headers
    {
        d.forwarded.headers = Some(h.pairs());
        d.headers_forwarded = true;
    }
    let body = std::mem::take(&mut d.body);
    d.forwarded.body.extend_from_slice(&body);
    if let Some(t) = &d.trailers {
        d.forwarded.trailers = Some(t.pairs());
    }
    if d.end_seen {
        d.forwarded.complete = true;
    }
}

/// The stream's current outcome on one side (Continue once it is gone).
fn outcome(i: &VmInner, id: u32, request: bool) -> Outcome {
    i.data().streams.get(&id).map_or(Outcome::Continue, |s| {
        if request {
            s.request_outcome()
        } else {
            s.response_outcome()
        }
    })
}

/// Feeds a body as Envoy does: one call per chunk (stopping at a final
/// outcome), then an empty call with end_of_stream.
fn send_chunks(chunks: &[&[u8]], mut body: impl FnMut(&[u8], bool) -> Outcome) -> Outcome {
    for c in chunks {
        let o = body(c, false);
        if matches!(
            o,
            Outcome::LocalReply { .. } | Outcome::Reset { .. } | Outcome::Failed { .. }
        ) {
            return o;
        }
    }
    body(b"", true)
}

fn body_event(i: &mut VmInner, id: u32, request: bool, data: &[u8], eos: bool) {
    let limit = i.data().cfg.buffer_limit;
    let Some(s) = i.data_mut().streams.get_mut(&id) else {
        return;
    };
    if s.terminal.is_some() || s.deleted {
        return;
    }
    let d = dir(s, request);
    if d.stopped_all {
        // Envoy buffers behind a paused headers callback; the filter sees
        // the data when it continues.
        d.held_body.extend_from_slice(data);
        d.held_body_seen = true;
        d.end_seen = eos;
        if d.held_body.len() > limit {
            s.pending_reset = Some("buffer limit exceeded".into());
            i.settle();
        }
        return;
    }
    if d.buffering {
        d.body.extend_from_slice(data);
    } else {
        d.body = data.to_vec();
    }
    d.end_seen = eos;
    if d.buffering && d.body.len() > limit {
        s.pending_reset = Some("buffer limit exceeded".into());
        i.settle();
        return;
    }
    let size = d.body.len() as i32;
    d.in_body_callback = true;
    let cb = if request {
        Callback::RequestBody
    } else {
        Callback::ResponseBody
    };
    let r = i.call(
        cb,
        id,
        &[
            Val::I32(id as i32),
            Val::I32(size),
            Val::I32(i32::from(eos)),
        ],
    );
    after_callback(i, id, request, Kind::Body, r);
}

fn trailers_event(i: &mut VmInner, id: u32, request: bool, trailers: &[(&str, &str)]) {
    let Some(s) = i.data_mut().streams.get_mut(&id) else {
        return;
    };
    if s.terminal.is_some() || s.deleted {
        return;
    }
    let map = HeaderMap::from_pairs(trailers);
    let n = map.len() as i32;
    let d = dir(s, request);
    d.end_seen = true;
    if d.stopped_all {
        d.held_trailers = Some(map);
        return;
    }
    d.trailers = Some(map);
    d.trailers_visible = true;
    let cb = if request {
        Callback::RequestTrailers
    } else {
        Callback::ResponseTrailers
    };
    let r = i.call(cb, id, &[Val::I32(id as i32), Val::I32(n)]);
    after_callback(i, id, request, Kind::Trailers, r);
}

/// Runs one stream's deferred actions. Returns true if it did anything.
pub(crate) fn process_deferred(i: &mut VmInner, id: u32) -> bool {
    let Some(s) = i.data_mut().streams.get_mut(&id) else {
        return false;
    };
    if s.deleted || !s.has_pending() {
        return false;
    }
    if s.awaiting_done && s.done_called {
        s.awaiting_done = false;
        let _ = i.call(Callback::Delete, id, &[Val::I32(id as i32)]);
        if let Some(s) = i.data_mut().streams.get_mut(&id) {
            s.deleted = true;
        }
        return true;
    }
    if let Some(reason) = s.pending_reset.take() {
        s.pending_local_reply = None;
        s.pending_continue_request = false;
        s.pending_continue_response = false;
        if s.terminal.is_none() {
            s.terminal = Some(Outcome::Reset { reason });
        }
        finish_stream(i, id);
        return true;
    }
    if let Some(spec) = s.pending_local_reply.take() {
        s.pending_continue_request = false;
        s.pending_continue_response = false;
        local_reply(i, id, spec);
        return true;
    }
    if s.pending_continue_request {
        s.pending_continue_request = false;
        resume(i, id, true);
        return true;
    }
    if s.pending_continue_response {
        s.pending_continue_response = false;
        resume(i, id, false);
        return true;
    }
    false
}

/// `continueDecoding` / `continueEncoding`: forward what is held; after a
/// paused headers callback, hand the held body and trailers to the filter.
fn resume(i: &mut VmInner, id: u32, request: bool) {
    let Some(s) = i.data_mut().streams.get_mut(&id) else {
        return;
    };
    if s.terminal.is_some() {
        return;
    }
    let d = dir(s, request);
    if !d.stopped_all {
        if d.paused || d.buffering {
            forward(s, request);
        }
        return;
    }
    if route_lost(s, request) {
        return;
    }
    let d = dir(s, request);
    d.stopped_all = false;
    d.paused = false;
    if !d.headers_forwarded
        && let Some(h) = &d.headers
    {
        d.forwarded.headers = Some(h.pairs());
        d.headers_forwarded = true;
    }
    let held = std::mem::take(&mut d.held_body);
    let seen = std::mem::take(&mut d.held_body_seen);
    let trailers = d.held_trailers.take();
    if !seen && trailers.is_none() {
        if d.end_seen {
            d.forwarded.complete = true;
        }
        return;
    }
    if seen {
        let eos = d.end_seen && trailers.is_none();
        let size = held.len() as i32;
        d.body = held;
        d.in_body_callback = true;
        let cb = if request {
            Callback::RequestBody
        } else {
            Callback::ResponseBody
        };
        let r = i.call(
            cb,
            id,
            &[
                Val::I32(id as i32),
                Val::I32(size),
                Val::I32(i32::from(eos)),
            ],
        );
        after_callback(i, id, request, Kind::Body, r);
    }
    if let Some(t) = trailers {
        let pairs: Vec<(String, String)> = t.pairs();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        trailers_event(i, id, request, &refs);
    }
}

/// Builds and sends a local reply the way Envoy does after the callback returned.
fn local_reply(i: &mut VmInner, id: u32, spec: LocalReplySpec) {
    let Some(s) = i.data_mut().streams.get_mut(&id) else {
        return;
    };
    let mut h = HeaderMap::new();
    h.add(":status", spec.status.to_string().as_bytes());
    for (k, v) in &spec.headers {
        h.add(k, v);
    }
    // Envoy's prepareLocalReply: content-length and a default content-type
    // for a body; both removed for an empty body.
    if !spec.body.is_empty() {
        h.set_inline("content-length", spec.body.len().to_string().as_bytes());
        if !h.contains("content-type") {
            h.add("content-type", b"text/plain");
        }
    } else {
        h.remove("content-length");
        h.remove("content-type");
    }
    // The codec closes the connection when the request body never arrived; and
    // Envoy's connection manager drains an HTTP/1 connection after any local reply
    // with status 400 (`onLocalReply(BadRequest)`), which adds `connection: close`.
    let close_connection = !s.request.end_seen || spec.status == 400;
    // HEAD: Envoy encodes the reply's headers only (end of stream), keeping content-length.
    let head = s
        .request
        .headers
        .as_ref()
        .and_then(|h| h.get(":method"))
        .is_some_and(|m| m == "HEAD");
    s.local_reply_sent = true;
    if s.response.headers_forwarded {
        // Envoy: too late for a reply once response headers went downstream;
        // the stream is reset.
        s.terminal = Some(Outcome::Reset {
            reason: "local reply after response headers were sent".into(),
        });
        finish_stream(i, id);
        return;
    }
    // Envoy: once the upstream response started, the reply is sent directly,
    // without passing through the filter chain.
    let direct = s.response.headers.is_some();
    s.response.headers = Some(h);
    let spec = LocalReplySpec {
        body: if head { Vec::new() } else { spec.body },
        ..spec
    };
    s.response.body = spec.body.clone();
    s.response.end_seen = true;
    s.response.paused = false;
    s.response.buffering = false;
    s.request.paused = true;
    s.response.headers_visible = true;
    if !direct && s.created {
        // Through the filter's own encoder callbacks.
        let n = s.response.headers.as_ref().map(|h| h.len()).unwrap_or(0) as i32;
        let eos = spec.body.is_empty();
        let r = i.call(
            Callback::ResponseHeaders,
            id,
            &[Val::I32(id as i32), Val::I32(n), Val::I32(i32::from(eos))],
        );
        if let Err(e) = r {
            if let Some(s) = i.data_mut().streams.get_mut(&id) {
                s.fail(e.message());
            }
            i.fail_all_streams(&e.message());
            return;
        }
        if !eos {
            let size = spec.body.len() as i32;
            if let Some(s) = i.data_mut().streams.get_mut(&id) {
                s.response.in_body_callback = true;
            }
            let r = i.call(
                Callback::ResponseBody,
                id,
                &[Val::I32(id as i32), Val::I32(size), Val::I32(1)],
            );
            if let Err(e) = r {
                if let Some(s) = i.data_mut().streams.get_mut(&id) {
                    s.fail(e.message());
                }
                i.fail_all_streams(&e.message());
                return;
            }
        }
    }
    let Some(s) = i.data_mut().streams.get_mut(&id) else {
        return;
    };
    s.response.in_body_callback = false;
    let mut final_headers = s.response.headers.clone().unwrap_or_default();
    if close_connection {
        final_headers.replace("connection", b"close");
    }
    let headers = final_headers.pairs();
    let body = std::mem::take(&mut s.response.body);
    let status = headers
        .iter()
        .find(|(k, _)| k == ":status")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(spec.status);
    s.response.forwarded = Message {
        headers: Some(headers.clone()),
        body: body.clone(),
        trailers: None,
        complete: true,
    };
    s.response.headers_forwarded = true;
    s.terminal = Some(Outcome::LocalReply {
        status,
        headers,
        body,
    });
    finish_stream(i, id);
}

/// on_log -> on_done -> on_delete, once.
pub(crate) fn finish_stream(i: &mut VmInner, id: u32) {
    let dead = i.dead.is_some();
    let Some(s) = i.data_mut().streams.get_mut(&id) else {
        return;
    };
    if s.deleted || s.awaiting_done {
        return;
    }
    if !s.created || dead {
        s.deleted = true;
        return;
    }
    let _ = ROOT_CONTEXT_ID;
    let arg = [Val::I32(id as i32)];
    if let Err(e) = i.call(Callback::Log, id, &arg) {
        i.fail_all_streams(&e.message());
        mark_deleted(i, id);
        return;
    }
    match i.call(Callback::Done, id, &arg) {
        Err(e) => {
            i.fail_all_streams(&e.message());
            mark_deleted(i, id);
            return;
        }
        Ok(Some(0)) => {
            if let Some(s) = i.data_mut().streams.get_mut(&id)
                && !s.done_called
            {
                s.awaiting_done = true;
                return;
            }
        }
        Ok(_) => {}
    }
    let _ = i.call(Callback::Delete, id, &arg);
    mark_deleted(i, id);
}

fn mark_deleted(i: &mut VmInner, id: u32) {
    if let Some(s) = i.data_mut().streams.get_mut(&id) {
        s.deleted = true;
    }
}
