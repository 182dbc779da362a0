//! The `env.proxy_*` host functions, with Envoy 1.40 / proxy-wasm-cpp-host
//! semantics. No host function panics or traps on bad guest input: bad
//! pointers give InvalidMemoryAccess, unknown enums BadArgument. The only
//! traps are the ones Envoy (V8) produces: host calls during module start,
//! and traps of the guest's own allocator.

use crate::abi::{BufferType, LogLevel, MapType, MetricKind, Status};
use crate::callout::{CalloutRequest, PendingCallout};
use crate::headers::HeaderMap;
use crate::host::{Metric, Queue, SharedEntry};
use crate::stream::{LocalReplySpec, StreamState};
use crate::vm::{Callback, LogLine, Phase, ROOT_CONTEXT_ID, VmData};
use std::time::Duration;
use wasmtime::{Caller, Extern, Linker};

type C<'a> = Caller<'a, VmData>;
type R = wasmtime::Result<i32>;

fn ok() -> R {
    Ok(Status::Ok.code())
}

fn st(s: Status) -> R {
    Ok(s.code())
}

/// Envoy's V8 traps on any host call but `proxy_log` during module start.
fn guard(c: &C<'_>, name: &str) -> wasmtime::Result<()> {
    if c.data().phase == Phase::Start {
        return Err(wasmtime::Error::msg(format!(
            "{name} called during module start (_initialize/main): Envoy only allows proxy_log there"
        )));
    }
    Ok(())
}

fn memory(c: &mut C<'_>) -> Option<wasmtime::Memory> {
    c.get_export("memory").and_then(Extern::into_memory)
}

fn read(c: &mut C<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len == 0 {
        return Ok(Vec::new());
    }
    let mem = memory(c).ok_or(Status::InvalidMemoryAccess)?;
    let end = ptr.checked_add(len).ok_or(Status::InvalidMemoryAccess)?;
    mem.data(&*c)
        .get(ptr..end)
        .map(|s| s.to_vec())
        .ok_or(Status::InvalidMemoryAccess)
}

fn read_str(c: &mut C<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    read(c, ptr, len).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn write(c: &mut C<'_>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let ptr = ptr as u32 as usize;
    let mem = memory(c).ok_or(Status::InvalidMemoryAccess)?;
    let end = ptr
        .checked_add(bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    let dst = mem
        .data_mut(&mut *c)
        .get_mut(ptr..end)
        .ok_or(Status::InvalidMemoryAccess)?;
    dst.copy_from_slice(bytes);
    Ok(())
}

fn write_u32(c: &mut C<'_>, ptr: i32, v: u32) -> Result<(), Status> {
    write(c, ptr, &v.to_le_bytes())
}

/// Copies `bytes` into guest memory allocated with the guest's `malloc`
/// (or `proxy_on_memory_allocate`) and writes pointer and size.
/// Empty data writes a null pointer and size 0 (like cpp-host).
fn write_out(c: &mut C<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> R {
    let mut ptr: u32 = 0;
    if !bytes.is_empty() {
        let f = c
            .get_export("malloc")
            .and_then(Extern::into_func)
            .or_else(|| {
                c.get_export("proxy_on_memory_allocate")
                    .and_then(Extern::into_func)
            });
        let Some(f) = f else {
            return st(Status::InvalidMemoryAccess);
        };
        let Ok(f) = f.typed::<i32, i32>(&*c) else {
            return st(Status::InvalidMemoryAccess);
        };
        let p = f.call(&mut *c, bytes.len() as i32)? as u32;
        if p == 0 {
            return st(Status::InvalidMemoryAccess);
        }
        if write(c, p as i32, bytes).is_err() {
            return st(Status::InvalidMemoryAccess);
        }
        ptr = p;
    }
    if write_u32(c, ptr_ptr, ptr).is_err() || write_u32(c, size_ptr, bytes.len() as u32).is_err() {
        return st(Status::InvalidMemoryAccess);
    }
    ok()
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(s) => return st(s),
        }
    };
}

pub(crate) fn define(l: &mut Linker<VmData>) -> anyhow::Result<()> {
    macro_rules! def {
        ($name:literal, $f:expr) => {
            l.func_wrap("env", $name, $f).map_err(anyhow::Error::from)?;
        };
    }
    def!("proxy_log", proxy_log);
    def!("proxy_get_log_level", proxy_get_log_level);
    def!(
        "proxy_get_current_time_nanoseconds",
        proxy_get_current_time_nanoseconds
    );
    def!(
        "proxy_set_tick_period_milliseconds",
        proxy_set_tick_period_milliseconds
    );
    def!("proxy_get_buffer_bytes", proxy_get_buffer_bytes);
    def!("proxy_set_buffer_bytes", proxy_set_buffer_bytes);
    def!("proxy_get_buffer_status", proxy_get_buffer_status);
    def!("proxy_get_header_map_pairs", proxy_get_header_map_pairs);
    def!("proxy_set_header_map_pairs", proxy_set_header_map_pairs);
    def!("proxy_get_header_map_size", proxy_get_header_map_size);
    def!("proxy_get_header_map_value", proxy_get_header_map_value);
    def!(
        "proxy_remove_header_map_value",
        proxy_remove_header_map_value
    );
    def!(
        "proxy_replace_header_map_value",
        proxy_replace_header_map_value
    );
    def!("proxy_add_header_map_value", proxy_add_header_map_value);
    def!("proxy_get_property", proxy_get_property);
    def!("proxy_set_property", proxy_set_property);
    def!("proxy_get_shared_data", proxy_get_shared_data);
    def!("proxy_set_shared_data", proxy_set_shared_data);
    def!("proxy_register_shared_queue", proxy_register_shared_queue);
    def!("proxy_resolve_shared_queue", proxy_resolve_shared_queue);
    def!("proxy_dequeue_shared_queue", proxy_dequeue_shared_queue);
    def!("proxy_enqueue_shared_queue", proxy_enqueue_shared_queue);
    def!("proxy_continue_stream", proxy_continue_stream);
    def!("proxy_close_stream", proxy_close_stream);
    def!("proxy_send_local_response", proxy_send_local_response);
    def!("proxy_http_call", proxy_http_call);
    def!("proxy_grpc_call", proxy_grpc_call);
    def!("proxy_grpc_stream", proxy_grpc_stream);
    def!("proxy_grpc_send", proxy_grpc_send);
    def!("proxy_grpc_cancel", proxy_grpc_cancel);
    def!("proxy_grpc_close", proxy_grpc_close);
    def!("proxy_get_status", proxy_get_status);
    def!("proxy_set_effective_context", proxy_set_effective_context);
    def!("proxy_call_foreign_function", proxy_call_foreign_function);
    def!("proxy_done", proxy_done);
    def!("proxy_define_metric", proxy_define_metric);
    def!("proxy_get_metric", proxy_get_metric);
    def!("proxy_record_metric", proxy_record_metric);
    def!("proxy_increment_metric", proxy_increment_metric);
    Ok(())
}

fn proxy_log(mut c: C<'_>, level: i32, ptr: i32, size: i32) -> R {
    let Some(level) = LogLevel::from_abi(level as u32) else {
        return st(Status::BadArgument);
    };
    let msg = tri!(read_str(&mut c, ptr, size));
    let d = c.data_mut();
    let ctx = d.target_context();
    let emitted = level >= d.cfg.log_level;
    let envoy_line = format!("{}: {msg}", d.log_prefix(ctx));
    d.logs.push(LogLine {
        level,
        message: msg,
        context_id: ctx,
        emitted,
        envoy_line,
    });
    ok()
}

fn proxy_get_log_level(mut c: C<'_>, ret: i32) -> R {
    guard(&c, "proxy_get_log_level")?;
    let lvl = c.data().cfg.log_level as u32;
    tri!(write_u32(&mut c, ret, lvl));
    ok()
}

fn proxy_get_current_time_nanoseconds(mut c: C<'_>, ret: i32) -> R {
    guard(&c, "proxy_get_current_time_nanoseconds")?;
    let n = crate::property::now_nanos(c.data());
    tri!(write(&mut c, ret, &n.to_le_bytes()));
    ok()
}

fn proxy_set_tick_period_milliseconds(mut c: C<'_>, ms: i32) -> R {
    guard(&c, "proxy_set_tick_period_milliseconds")?;
    let d = c.data_mut();
    if d.target_context() != ROOT_CONTEXT_ID {
        d.violation(
            "proxy_set_tick_period_milliseconds",
            "tick period set from a stream context: Envoy sets it on the root context",
            Status::Ok,
        );
    }
    let now = d.now();
    if ms == 0 {
        d.tick_period = None;
        d.next_tick = None;
    } else {
        let p = Duration::from_millis(u64::from(ms as u32));
        d.tick_period = Some(p);
        d.next_tick = Some(now + p);
    }
    ok()
}

/// The stream the target context designates, if any.
fn stream_mut(d: &mut VmData) -> Option<&mut StreamState> {
    let ctx = d.target_context();
    d.streams.get_mut(&ctx).filter(|s| !s.deleted || s.created)
}

fn stream_ref(d: &VmData) -> Option<&StreamState> {
    let ctx = d.target_context();
    d.streams.get(&ctx)
}

fn buffer_bytes(d: &mut VmData, bt: BufferType) -> Option<Vec<u8>> {
    let cb = d.callback;
    match bt {
        BufferType::PluginConfiguration => {
            if d.phase == Phase::Configure {
                Some(d.cfg.plugin_config.clone())
            } else {
                d.violation(
                    "proxy_get_buffer_bytes",
                    "plugin configuration is readable only during proxy_on_configure",
                    Status::NotFound,
                );
                None
            }
        }
        // Envoy serves the VM configuration at any time.
        BufferType::VmConfiguration => Some(d.cfg.vm_config.clone()),
        BufferType::HttpCallResponseBody => match &d.callout_response {
            Some(r) => Some(r.body.clone()),
            None => {
                d.violation(
                    "proxy_get_buffer_bytes",
                    "http call response body is readable only during proxy_on_http_call_response",
                    Status::NotFound,
                );
                None
            }
        },
        BufferType::RequestBody | BufferType::ResponseBody => {
            let request = bt == BufferType::RequestBody;
            let in_cb = cb
                == Some(if request {
                    Callback::RequestBody
                } else {
                    Callback::ResponseBody
                });
            let r = stream_ref(d).and_then(|s| {
                let dir = if request { &s.request } else { &s.response };
                if in_cb || dir.buffering || dir.in_body_callback {
                    Some(dir.body.clone())
                } else {
                    None
                }
            });
            if r.is_none() {
                d.violation(
                    "proxy_get_buffer_bytes",
                    "body buffer is available only in the body callback or while buffering",
                    Status::NotFound,
                );
            }
            r
        }
        _ => None,
    }
}

fn proxy_get_buffer_bytes(mut c: C<'_>, bt: i32, start: i32, max: i32, pp: i32, sp: i32) -> R {
    guard(&c, "proxy_get_buffer_bytes")?;
    let Some(bt) = BufferType::from_abi(bt as u32) else {
        return st(Status::BadArgument);
    };
    let Some(buf) = buffer_bytes(c.data_mut(), bt) else {
        return st(Status::NotFound);
    };
    let (start, max) = (start as u32 as usize, max as u32 as usize);
    if start.checked_add(max).is_none() {
        return st(Status::BadArgument);
    }
    let end = start.saturating_add(max).min(buf.len());
    let slice = buf.get(start..end).unwrap_or(&[]);
    if slice.is_empty() {
        // cpp-host writes a null pointer and size 0.
        tri!(write_u32(&mut c, pp, 0));
        tri!(write_u32(&mut c, sp, 0));
        return ok();
    }
    let slice = slice.to_vec();
    write_out(&mut c, &slice, pp, sp)
}

fn proxy_get_buffer_status(mut c: C<'_>, bt: i32, len_ptr: i32, flags_ptr: i32) -> R {
    guard(&c, "proxy_get_buffer_status")?;
    let Some(bt) = BufferType::from_abi(bt as u32) else {
        return st(Status::BadArgument);
    };
    let Some(buf) = buffer_bytes(c.data_mut(), bt) else {
        return st(Status::NotFound);
    };
    tri!(write_u32(&mut c, len_ptr, buf.len() as u32));
    tri!(write_u32(&mut c, flags_ptr, 0));
    ok()
}

fn proxy_set_buffer_bytes(mut c: C<'_>, bt: i32, start: i32, size: i32, ptr: i32, len: i32) -> R {
    guard(&c, "proxy_set_buffer_bytes")?;
    let Some(bt) = BufferType::from_abi(bt as u32) else {
        return st(Status::BadArgument);
    };
    let data = tri!(read(&mut c, ptr, len));
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    let d = c.data_mut();
    let cb = d.callback;
    let request = match bt {
        BufferType::RequestBody => true,
        BufferType::ResponseBody => false,
        BufferType::HttpCallResponseBody => {
            let Some(r) = d.callout_response.as_mut() else {
                return st(Status::NotFound);
            };
            return st(copy_from(&mut r.body, start, size, &data));
        }
        _ => return st(Status::NotFound),
    };
    let Some(s) = stream_mut(d) else {
        return st(Status::NotFound);
    };
    let dir = if request {
        &mut s.request
    } else {
        &mut s.response
    };
    let in_cb = cb
        == Some(if request {
            Callback::RequestBody
        } else {
            Callback::ResponseBody
        });
    if !(in_cb || dir.buffering || dir.in_body_callback) {
        d.violation(
            "proxy_set_buffer_bytes",
            "body buffer is available only in the body callback or while buffering",
            Status::NotFound,
        );
        return st(Status::NotFound);
    }
    st(copy_from(&mut dir.body, start, size, &data))
}

/// Envoy's `Buffer::copyFrom`: start 0 replaces the first `size` bytes
/// (prepends when size is 0), start >= len appends, anything else is BadArgument.
fn copy_from(buf: &mut Vec<u8>, start: usize, size: usize, data: &[u8]) -> Status {
    if start == 0 {
        let drain = size.min(buf.len());
        buf.drain(..drain);
        let mut v = data.to_vec();
        v.append(buf);
        *buf = v;
        Status::Ok
    } else if start >= buf.len() {
        buf.extend_from_slice(data);
        Status::Ok
    } else {
        Status::BadArgument
    }
}

/// Which header map a call designates, or the status Envoy returns.
fn map_mut(d: &mut VmData, mt: i32) -> Result<&mut HeaderMap, Status> {
    let Some(mt) = MapType::from_abi(mt as u32) else {
        return Err(Status::BadArgument);
    };
    match mt {
        MapType::HttpCallResponseHeaders => d
            .callout_response
            .as_mut()
            .map(|r| &mut r.headers)
            .ok_or(Status::BadArgument),
        MapType::HttpCallResponseTrailers => d
            .callout_response
            .as_mut()
            .map(|r| &mut r.trailers)
            .ok_or(Status::BadArgument),
        MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => {
            Err(Status::BadArgument)
        }
        MapType::RequestHeaders
        | MapType::RequestTrailers
        | MapType::ResponseHeaders
        | MapType::ResponseTrailers => {
            // In on_log Envoy serves the access-log copies (no request trailers).
            let log = d.callback == Some(Callback::Log);
            let s = stream_mut(d).ok_or(Status::BadArgument)?;
            let m = match mt {
                MapType::RequestHeaders if log || s.request.headers_visible => {
                    s.request.headers.as_mut()
                }
                MapType::RequestTrailers if !log && s.request.trailers_visible => {
                    s.request.trailers.as_mut()
                }
                MapType::ResponseHeaders if log || s.response.headers_visible => {
                    s.response.headers.as_mut()
                }
                MapType::ResponseTrailers if log || s.response.trailers_visible => {
                    s.response.trailers.as_mut()
                }
                _ => None,
            };
            m.ok_or(Status::BadArgument)
        }
    }
}

fn map_name(mt: i32) -> &'static str {
    match mt {
        0 => "request headers",
        1 => "request trailers",
        2 => "response headers",
        3 => "response trailers",
        6 => "http call response headers",
        7 => "http call response trailers",
        _ => "map",
    }
}

fn map_unavailable(d: &mut VmData, hostcall: &'static str, mt: i32, status: Status) {
    let detail = format!(
        "{} not available here (Envoy returns {:?})",
        map_name(mt),
        status
    );
    d.violation(hostcall, detail, status);
}

/// Envoy ignores changes to headers already sent on: record it.
fn note_late_write(d: &mut VmData, hostcall: &'static str, mt: i32) {
    let late = match stream_ref(d) {
        Some(s) => match mt {
            0 => s.request.headers_forwarded,
            1 => s.request.forwarded.trailers.is_some(),
            2 => s.response.headers_forwarded,
            3 => s.response.forwarded.trailers.is_some(),
            _ => false,
        },
        None => false,
    };
    if late {
        let detail = format!("{} already sent on: the change has no effect", map_name(mt));
        d.violation(hostcall, detail, Status::Ok);
    }
}

/// Envoy's wasm filter clears the route cache whenever it changes the request
/// headers, so the router looks the route up again when the headers reach it.
fn note_request_headers_changed(d: &mut VmData, mt: i32) {
    if mt == 0
        && d.callback != Some(Callback::Log)
        && let Some(s) = stream_mut(d)
        && !s.request.headers_forwarded
    {
        s.route_cache_cleared = true;
    }
}

fn in_log_phase(d: &VmData) -> bool {
    d.callback == Some(Callback::Log)
}

fn proxy_get_header_map_pairs(mut c: C<'_>, mt: i32, pp: i32, sp: i32) -> R {
    guard(&c, "proxy_get_header_map_pairs")?;
    let d = c.data_mut();
    // Envoy: an unavailable map reads as empty (Ok, null pointer).
    let bytes = match map_mut(d, mt) {
        Ok(m) if m.is_empty() => Vec::new(),
        Ok(m) => m.serialize(),
        Err(s) => {
            if !in_log_phase(d) {
                map_unavailable(d, "proxy_get_header_map_pairs", mt, Status::Ok);
            }
            let _ = s;
            Vec::new()
        }
    };
    write_out(&mut c, &bytes, pp, sp)
}

fn proxy_get_header_map_size(mut c: C<'_>, mt: i32, ret: i32) -> R {
    guard(&c, "proxy_get_header_map_size")?;
    let d = c.data_mut();
    let n = match map_mut(d, mt) {
        // Envoy's HeaderMap::byteSize: the sum of name and value lengths.
        Ok(m) => m
            .entries()
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>() as u32,
        Err(s) => {
            map_unavailable(d, "proxy_get_header_map_size", mt, s);
            return st(s);
        }
    };
    tri!(write_u32(&mut c, ret, n));
    ok()
}

fn proxy_set_header_map_pairs(mut c: C<'_>, mt: i32, ptr: i32, len: i32) -> R {
    guard(&c, "proxy_set_header_map_pairs")?;
    let bytes = tri!(read(&mut c, ptr, len));
    // cpp-host PairsUtil::toPairs: malformed input reads as no pairs.
    let pairs = crate::abi::deserialize_map(&bytes).unwrap_or_default();
    let d = c.data_mut();
    note_late_write(d, "proxy_set_header_map_pairs", mt);
    match map_mut(d, mt) {
        Ok(m) => {
            *m = HeaderMap::new();
            for (k, v) in pairs {
                m.add(&String::from_utf8_lossy(&k), &v);
            }
            note_request_headers_changed(d, mt);
            ok()
        }
        Err(s) => {
            map_unavailable(d, "proxy_set_header_map_pairs", mt, s);
            st(s)
        }
    }
}

fn proxy_get_header_map_value(mut c: C<'_>, mt: i32, kp: i32, ks: i32, pp: i32, sp: i32) -> R {
    guard(&c, "proxy_get_header_map_value")?;
    let key = tri!(read_str(&mut c, kp, ks));
    let d = c.data_mut();
    // Envoy's request header map resolves the legacy name `host` to `:authority`
    // (HeaderMapImpl's static lookup table), so a lookup of `host` finds the authority.
    let key = if mt == 0 && key.eq_ignore_ascii_case("host") {
        ":authority".to_string()
    } else {
        key
    };
    let value = match map_mut(d, mt) {
        Ok(m) => m.get_bytes(&key).map(|v| v.to_vec()),
        Err(s) => {
            if in_log_phase(d) && s == Status::BadArgument {
                return st(Status::NotFound);
            }
            map_unavailable(d, "proxy_get_header_map_value", mt, s);
            return st(s);
        }
    };
    match value {
        Some(v) => write_out(&mut c, &v, pp, sp),
        None => st(Status::NotFound),
    }
}

fn proxy_remove_header_map_value(mut c: C<'_>, mt: i32, kp: i32, ks: i32) -> R {
    guard(&c, "proxy_remove_header_map_value")?;
    let key = tri!(read_str(&mut c, kp, ks));
    let d = c.data_mut();
    note_late_write(d, "proxy_remove_header_map_value", mt);
    match map_mut(d, mt) {
        Ok(m) => {
            m.remove(&key);
            note_request_headers_changed(d, mt);
            ok()
        }
        Err(s) => {
            map_unavailable(d, "proxy_remove_header_map_value", mt, s);
            st(s)
        }
    }
}

fn proxy_replace_header_map_value(mut c: C<'_>, mt: i32, kp: i32, ks: i32, vp: i32, vs: i32) -> R {
    guard(&c, "proxy_replace_header_map_value")?;
    let key = tri!(read_str(&mut c, kp, ks));
    let val = tri!(read(&mut c, vp, vs));
    let d = c.data_mut();
    note_late_write(d, "proxy_replace_header_map_value", mt);
    match map_mut(d, mt) {
        Ok(m) => {
            m.replace(&key, &val);
            note_request_headers_changed(d, mt);
            ok()
        }
        Err(s) => {
            map_unavailable(d, "proxy_replace_header_map_value", mt, s);
            st(s)
        }
    }
}

fn proxy_add_header_map_value(mut c: C<'_>, mt: i32, kp: i32, ks: i32, vp: i32, vs: i32) -> R {
    guard(&c, "proxy_add_header_map_value")?;
    let key = tri!(read_str(&mut c, kp, ks));
    let val = tri!(read(&mut c, vp, vs));
    let d = c.data_mut();
    note_late_write(d, "proxy_add_header_map_value", mt);
    match map_mut(d, mt) {
        Ok(m) => {
            m.add(&key, &val);
            note_request_headers_changed(d, mt);
            ok()
        }
        Err(s) => {
            map_unavailable(d, "proxy_add_header_map_value", mt, s);
            st(s)
        }
    }
}

fn proxy_get_property(mut c: C<'_>, pp: i32, ps: i32, rp: i32, rs: i32) -> R {
    guard(&c, "proxy_get_property")?;
    let raw = tri!(read(&mut c, pp, ps));
    let path = crate::abi::split_path(&raw);
    match crate::property::lookup(c.data(), &path) {
        Some(v) => write_out(&mut c, &v, rp, rs),
        None => st(Status::NotFound),
    }
}

fn proxy_set_property(mut c: C<'_>, pp: i32, ps: i32, vp: i32, vs: i32) -> R {
    guard(&c, "proxy_set_property")?;
    let raw = tri!(read(&mut c, pp, ps));
    let val = tri!(read(&mut c, vp, vs));
    let path = crate::abi::split_path(&raw);
    let d = c.data_mut();
    match stream_mut(d) {
        Some(s) => {
            s.filter_state.insert(path, val);
            ok()
        }
        None => {
            d.violation(
                "proxy_set_property",
                "no stream: Envoy has no filter state to write to",
                Status::NotFound,
            );
            st(Status::NotFound)
        }
    }
}

fn proxy_get_shared_data(mut c: C<'_>, kp: i32, ks: i32, rp: i32, rs: i32, cas_ptr: i32) -> R {
    guard(&c, "proxy_get_shared_data")?;
    let key = tri!(read_str(&mut c, kp, ks));
    let vm_id = c.data().cfg.vm_id.clone();
    let entry = c.data().host.borrow().shared.get(&(vm_id, key)).cloned();
    match entry {
        Some(e) => {
            let r = write_out(&mut c, &e.value, rp, rs)?;
            if r != Status::Ok.code() {
                return Ok(r);
            }
            tri!(write_u32(&mut c, cas_ptr, e.cas));
            ok()
        }
        None => st(Status::NotFound),
    }
}

fn proxy_set_shared_data(mut c: C<'_>, kp: i32, ks: i32, vp: i32, vs: i32, cas: i32) -> R {
    guard(&c, "proxy_set_shared_data")?;
    let key = tri!(read_str(&mut c, kp, ks));
    let val = tri!(read(&mut c, vp, vs));
    let cas = cas as u32;
    let vm_id = c.data().cfg.vm_id.clone();
    let host = c.data().host.clone();
    let mut h = host.borrow_mut();
    let key = (vm_id, key);
    // Fault injection (Host::race_shared_data): another VM writes first.
    if cas != 0
        && h.shared.contains_key(&key)
        && let Some(n) = h.shared_races.get_mut(&key)
        && *n > 0
    {
        *n -= 1;
        let bumped = h.take_cas();
        if let Some(ent) = h.shared.get_mut(&key) {
            ent.cas = bumped;
        }
    }
    if let Some(ent) = h.shared.get(&key)
        && cas != 0
        && cas != ent.cas
    {
        return st(Status::CasMismatch);
    }
    // cpp-host: the CAS value comes from one process-wide counter; a
    // conditional set on a missing key still stores it.
    let cas = h.take_cas();
    h.shared.insert(key, SharedEntry { value: val, cas });
    ok()
}

fn proxy_register_shared_queue(mut c: C<'_>, np: i32, ns: i32, ret: i32) -> R {
    guard(&c, "proxy_register_shared_queue")?;
    let name = tri!(read_str(&mut c, np, ns));
    let (vm_id, vm_index, ctx) = {
        let d = c.data();
        (d.cfg.vm_id.clone(), d.vm_index, d.target_context())
    };
    let host = c.data().host.clone();
    let id = {
        let mut h = host.borrow_mut();
        let existing = h
            .queues
            .iter()
            .find(|(_, q)| q.vm_id == vm_id && q.name == name)
            .map(|(id, _)| *id);
        match existing {
            Some(id) => {
                // cpp-host: the last registrant receives on_queue_ready.
                if let Some(q) = h.queues.get_mut(&id) {
                    q.owner_vm = vm_index;
                    q.owner_context = ctx;
                }
                id
            }
            None => {
                let id = h.next_queue_id;
                h.next_queue_id += 1;
                h.queues.insert(
                    id,
                    Queue {
                        vm_id,
                        name,
                        owner_vm: vm_index,
                        owner_context: ctx,
                        items: Default::default(),
                    },
                );
                id
            }
        }
    };
    tri!(write_u32(&mut c, ret, id));
    ok()
}

fn proxy_resolve_shared_queue(mut c: C<'_>, vp: i32, vs: i32, np: i32, ns: i32, ret: i32) -> R {
    guard(&c, "proxy_resolve_shared_queue")?;
    let vm_id = tri!(read_str(&mut c, vp, vs));
    let name = tri!(read_str(&mut c, np, ns));
    let found = c
        .data()
        .host
        .borrow()
        .queues
        .iter()
        .find(|(_, q)| q.vm_id == vm_id && q.name == name)
        .map(|(id, _)| *id);
    match found {
        Some(id) => {
            tri!(write_u32(&mut c, ret, id));
            ok()
        }
        None => st(Status::NotFound),
    }
}

fn proxy_dequeue_shared_queue(mut c: C<'_>, qid: i32, rp: i32, rs: i32) -> R {
    guard(&c, "proxy_dequeue_shared_queue")?;
    let item = {
        let host = c.data().host.clone();
        let mut h = host.borrow_mut();
        match h.queues.get_mut(&(qid as u32)) {
            None => return st(Status::NotFound),
            Some(q) => q.items.pop_front(),
        }
    };
    match item {
        Some(v) => write_out(&mut c, &v, rp, rs),
        None => st(Status::Empty),
    }
}

fn proxy_enqueue_shared_queue(mut c: C<'_>, qid: i32, vp: i32, vs: i32) -> R {
    guard(&c, "proxy_enqueue_shared_queue")?;
    let val = tri!(read(&mut c, vp, vs));
    let my_index = c.data().vm_index;
    let target = {
        let host = c.data().host.clone();
        let mut h = host.borrow_mut();
        match h.queues.get_mut(&(qid as u32)) {
            None => return st(Status::NotFound),
            Some(q) => {
                q.items.push_back(val);
                (q.owner_vm, q.owner_context)
            }
        }
    };
    if target.0 == my_index {
        c.data_mut()
            .pending_queue_ready
            .push((target.1, qid as u32));
    } else {
        // Another VM: notify it after this callback, through the host.
        let host = c.data().host.clone();
        let vm = host.borrow().vms.get(target.0).and_then(|w| w.upgrade());
        if let Some(vm) = vm
            && let Ok(mut i) = vm.try_borrow_mut()
        {
            i.data_mut()
                .pending_queue_ready
                .push((target.1, qid as u32));
        }
    }
    ok()
}

fn proxy_continue_stream(mut c: C<'_>, t: i32) -> R {
    guard(&c, "proxy_continue_stream")?;
    let d = c.data_mut();
    if t != 0 && t != 1 {
        return st(Status::BadArgument);
    }
    match stream_mut(d) {
        Some(s) => {
            if t == 0 {
                s.pending_continue_request = true;
            } else {
                s.pending_continue_response = true;
            }
            ok()
        }
        None => {
            d.violation(
                "proxy_continue_stream",
                "no stream in this context: ignored",
                Status::Ok,
            );
            ok()
        }
    }
}

fn proxy_close_stream(mut c: C<'_>, t: i32) -> R {
    guard(&c, "proxy_close_stream")?;
    let d = c.data_mut();
    if t != 0 && t != 1 {
        return st(Status::BadArgument);
    }
    match stream_mut(d) {
        Some(s) => {
            s.pending_reset = Some(if t == 0 {
                "filter reset the request (proxy_close_stream)".into()
            } else {
                "filter reset the response (proxy_close_stream)".into()
            });
            ok()
        }
        None => {
            d.violation(
                "proxy_close_stream",
                "no stream in this context: ignored",
                Status::Ok,
            );
            ok()
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn proxy_send_local_response(
    mut c: C<'_>,
    status: i32,
    _dp: i32,
    _ds: i32,
    bp: i32,
    bs: i32,
    hp: i32,
    hs: i32,
    _grpc: i32,
) -> R {
    guard(&c, "proxy_send_local_response")?;
    let body = tri!(read(&mut c, bp, bs));
    let hbytes = tri!(read(&mut c, hp, hs));
    // cpp-host PairsUtil::toPairs: malformed input reads as no pairs.
    let pairs = crate::abi::deserialize_map(&hbytes).unwrap_or_default();
    let d = c.data_mut();
    let Some(s) = stream_mut(d) else {
        d.violation(
            "proxy_send_local_response",
            "no stream in this context: ignored",
            Status::Ok,
        );
        return ok();
    };
    if s.local_reply_sent || s.pending_local_reply.is_some() {
        // Envoy returns Ok and queues a second sendLocalReply, which the
        // stream ignores: the first reply wins.
        d.violation(
            "proxy_send_local_response",
            "a local reply was already sent on this stream: ignored",
            Status::Ok,
        );
        return ok();
    }
    s.pending_local_reply = Some(LocalReplySpec {
        status: status as u32,
        headers: pairs
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).to_ascii_lowercase(), v))
            .collect(),
        body,
    });
    ok()
}

#[allow(clippy::too_many_arguments)]
fn proxy_http_call(
    mut c: C<'_>,
    up: i32,
    us: i32,
    hp: i32,
    hs: i32,
    bp: i32,
    bs: i32,
    tp: i32,
    ts: i32,
    timeout: i32,
    token_ptr: i32,
) -> R {
    guard(&c, "proxy_http_call")?;
    let cluster = tri!(read_str(&mut c, up, us));
    let hbytes = tri!(read(&mut c, hp, hs));
    let body = tri!(read(&mut c, bp, bs));
    let tbytes = tri!(read(&mut c, tp, ts));
    // cpp-host PairsUtil::toPairs: malformed input reads as no pairs.
    let hpairs = crate::abi::deserialize_map(&hbytes).unwrap_or_default();
    // cpp-host PairsUtil::toPairs: malformed input reads as no pairs.
    let tpairs = crate::abi::deserialize_map(&tbytes).unwrap_or_default();
    let host = c.data().host.clone();
    let responder = {
        let h = host.borrow();
        match h.clusters.get(&cluster) {
            Some(cl) => cl.responder.clone(),
            None => {
                drop(h);
                c.data_mut().violation(
                    "proxy_http_call",
                    format!("unknown cluster {cluster:?}"),
                    Status::BadArgument,
                );
                return st(Status::BadArgument);
            }
        }
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &hpairs {
        headers.add(&String::from_utf8_lossy(k), v);
    }
    if !(headers.contains(":path") && headers.contains(":method") && headers.contains(":authority"))
    {
        c.data_mut().violation(
            "proxy_http_call",
            "missing :method, :path or :authority",
            Status::BadArgument,
        );
        return st(Status::BadArgument);
    }
    // Envoy's inline-header setters (setContentLength, ...): values change in place.
    if !body.is_empty() {
        headers.set_inline("content-length", body.len().to_string().as_bytes());
    }
    headers.set_inline("x-envoy-internal", b"true");
    let timeout_ms = timeout as u32;
    if timeout_ms > 0 {
        headers.set_inline(
            "x-envoy-expected-rq-timeout-ms",
            timeout_ms.to_string().as_bytes(),
        );
    }
    let mut trailers = HeaderMap::new();
    for (k, v) in &tpairs {
        trailers.add(&String::from_utf8_lossy(k), v);
    }
    let request = CalloutRequest {
        cluster,
        headers: headers.pairs(),
        body,
        trailers: trailers.pairs(),
        timeout: (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms))),
    };
    let token = {
        let d = c.data_mut();
        d.next_http_token = d.next_http_token.wrapping_add(4);
        if d.next_http_token == 0 {
            d.next_http_token = 4;
        }
        d.next_http_token
    };
    if write_u32(&mut c, token_ptr, token).is_err() {
        return st(Status::InvalidMemoryAccess);
    }
    let now = c.data().now();
    let scheduled = responder.map(|f| f(&request)).and_then(|r| match r {
        crate::callout::UpstreamReply::Hang => None,
        crate::callout::UpstreamReply::Response { delay, .. } => Some((now + delay, r)),
        other => Some((now, other)),
    });
    let (vm_index, ctx) = (c.data().vm_index, c.data().target_context());
    let mut h = host.borrow_mut();
    let seq = h.next_callout_seq;
    h.next_callout_seq += 1;
    h.callouts.push(PendingCallout {
        seq,
        vm_index,
        token,
        context_id: ctx,
        deadline: request.timeout.map(|t| now + t),
        request,
        dispatched_at: now,
        scheduled,
    });
    ok()
}

#[allow(clippy::too_many_arguments)]
fn proxy_grpc_call(
    mut c: C<'_>,
    _a: i32,
    _b: i32,
    _cc: i32,
    _d: i32,
    _e: i32,
    _f: i32,
    _g: i32,
    _h: i32,
    _i: i32,
    _j: i32,
    _k: i32,
    _l: i32,
) -> R {
    guard(&c, "proxy_grpc_call")?;
    c.data_mut().violation(
        "proxy_grpc_call",
        "gRPC callouts are not simulated by the harness",
        Status::InternalFailure,
    );
    st(Status::InternalFailure)
}

#[allow(clippy::too_many_arguments)]
fn proxy_grpc_stream(
    mut c: C<'_>,
    _a: i32,
    _b: i32,
    _cc: i32,
    _d: i32,
    _e: i32,
    _f: i32,
    _g: i32,
    _h: i32,
    _i: i32,
) -> R {
    guard(&c, "proxy_grpc_stream")?;
    c.data_mut().violation(
        "proxy_grpc_stream",
        "gRPC streams are not simulated by the harness",
        Status::InternalFailure,
    );
    st(Status::InternalFailure)
}

fn proxy_grpc_send(c: C<'_>, _t: i32, _p: i32, _s: i32, _e: i32) -> R {
    guard(&c, "proxy_grpc_send")?;
    st(Status::NotFound)
}

fn proxy_grpc_cancel(c: C<'_>, _t: i32) -> R {
    guard(&c, "proxy_grpc_cancel")?;
    st(Status::NotFound)
}

fn proxy_grpc_close(c: C<'_>, _t: i32) -> R {
    guard(&c, "proxy_grpc_close")?;
    st(Status::NotFound)
}

fn proxy_get_status(mut c: C<'_>, code_ptr: i32, mp: i32, ms: i32) -> R {
    guard(&c, "proxy_get_status")?;
    let (code, msg) = c.data().status.clone();
    tri!(write_u32(&mut c, code_ptr, code));
    write_out(&mut c, msg.as_bytes(), mp, ms)
}

fn proxy_set_effective_context(mut c: C<'_>, id: i32) -> R {
    guard(&c, "proxy_set_effective_context")?;
    let id = id as u32;
    let d = c.data_mut();
    let exists =
        id == ROOT_CONTEXT_ID || d.streams.get(&id).is_some_and(|s| s.created && !s.deleted);
    if !exists {
        d.violation(
            "proxy_set_effective_context",
            format!("no context {id}"),
            Status::BadArgument,
        );
        return st(Status::BadArgument);
    }
    d.effective_context = id;
    ok()
}

fn proxy_call_foreign_function(
    mut c: C<'_>,
    np: i32,
    ns: i32,
    _ap: i32,
    _as: i32,
    _rp: i32,
    _rs: i32,
) -> R {
    guard(&c, "proxy_call_foreign_function")?;
    let name = tri!(read_str(&mut c, np, ns));
    c.data_mut().violation(
        "proxy_call_foreign_function",
        format!("foreign function {name:?} is not provided by the harness"),
        Status::NotFound,
    );
    st(Status::NotFound)
}

fn proxy_done(mut c: C<'_>) -> R {
    guard(&c, "proxy_done")?;
    let d = c.data_mut();
    let ctx = d.target_context();
    if ctx == ROOT_CONTEXT_ID {
        d.root_done_called = true;
        return ok();
    }
    match d.streams.get_mut(&ctx) {
        Some(s) => {
            s.done_called = true;
            ok()
        }
        None => st(Status::NotFound),
    }
}

fn metric_kind(id: u32) -> Option<MetricKind> {
    match id & 3 {
        0 => Some(MetricKind::Counter),
        1 => Some(MetricKind::Gauge),
        2 => Some(MetricKind::Histogram),
        _ => None,
    }
}

fn proxy_define_metric(mut c: C<'_>, kind: i32, np: i32, ns: i32, ret: i32) -> R {
    guard(&c, "proxy_define_metric")?;
    let name = tri!(read_str(&mut c, np, ns));
    let kind = match kind {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Histogram,
        _ => return st(Status::BadArgument),
    };
    let id = {
        let d = c.data_mut();
        let k = kind as usize;
        let Some(seq) = d.next_metric_seq.get_mut(k) else {
            return st(Status::BadArgument);
        };
        *seq += 1;
        let id = (*seq << 2) | (kind as u32);
        d.metric_ids.insert(id, name.clone());
        let mut h = d.host.borrow_mut();
        h.metrics.entry(name).or_insert(Metric {
            kind,
            value: 0,
            samples: Vec::new(),
        });
        id
    };
    tri!(write_u32(&mut c, ret, id));
    ok()
}

fn with_metric(c: &mut C<'_>, id: i32, f: impl FnOnce(&mut Metric) -> Status) -> R {
    let d = c.data();
    let Some(name) = d.metric_ids.get(&(id as u32)).cloned() else {
        return st(Status::NotFound);
    };
    let host = d.host.clone();
    let mut h = host.borrow_mut();
    match h.metrics.get_mut(&name) {
        Some(m) => st(f(m)),
        None => st(Status::NotFound),
    }
}

fn proxy_get_metric(mut c: C<'_>, id: i32, ret: i32) -> R {
    guard(&c, "proxy_get_metric")?;
    let mut value: Option<u64> = None;
    let r = with_metric(&mut c, id, |m| match m.kind {
        MetricKind::Histogram => Status::BadArgument,
        _ => {
            value = Some(m.value as u64);
            Status::Ok
        }
    })?;
    if let Some(v) = value {
        tri!(write(&mut c, ret, &v.to_le_bytes()));
    }
    Ok(r)
}

fn proxy_record_metric(mut c: C<'_>, id: i32, value: i64) -> R {
    guard(&c, "proxy_record_metric")?;
    let v = value as u64;
    let _ = metric_kind(id as u32);
    with_metric(&mut c, id, |m| {
        match m.kind {
            MetricKind::Counter => m.value = m.value.wrapping_add(v as i64),
            MetricKind::Gauge => m.value = v as i64,
            MetricKind::Histogram => {
                m.samples.push(v);
                m.value = m.samples.len() as i64;
            }
        }
        Status::Ok
    })
}

fn proxy_increment_metric(mut c: C<'_>, id: i32, offset: i64) -> R {
    guard(&c, "proxy_increment_metric")?;
    with_metric(&mut c, id, |m| match m.kind {
        MetricKind::Counter => {
            if offset > 0 {
                m.value = m.value.wrapping_add(offset);
                Status::Ok
            } else {
                Status::BadArgument
            }
        }
        MetricKind::Gauge => {
            m.value = m.value.wrapping_add(offset);
            Status::Ok
        }
        MetricKind::Histogram => Status::BadArgument,
    })
}
