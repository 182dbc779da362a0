//! Properties (`proxy_get_property`) with Envoy's encodings:
//! strings as raw bytes, integers as 8-byte little-endian, bools as one byte,
//! timestamps/durations as int64 nanoseconds, maps in the header-map format.

use crate::stream::StreamState;
use crate::vm::VmData;
use std::time::UNIX_EPOCH;

/// Envoy's encoding of an int64 property.
pub fn int(v: i64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Envoy's encoding of a uint64 property.
pub fn uint(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Envoy's encoding of a bool property.
pub fn bool(v: bool) -> Vec<u8> {
    vec![u8::from(v)]
}

/// Envoy's encoding of a string property (raw bytes).
pub fn string(v: &str) -> Vec<u8> {
    v.as_bytes().to_vec()
}

/// Decodes an int64 property.
pub fn decode_int(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some(i64::from_le_bytes(arr))
}

/// Looks a property up for the target context. `Ok(None)`: NotFound.
pub(crate) fn lookup(data: &VmData, path: &[String]) -> Option<Vec<u8>> {
    let ctx = data.target_context();
    let stream = data
        .streams
        .get(&ctx)
        .filter(|s| !s.deleted || data.callback.is_some());
    if let Some(s) = stream {
        // proxy_set_property writes filter state `wasm.<path>`; Envoy finds it
        // by the first path segment only (a plain value has no fields).
        if let Some(first) = path.first()
            && let Some(v) = s.filter_state.get(std::slice::from_ref(first))
        {
            return (path.len() == 1).then(|| v.clone());
        }
        if let Some(v) = s.properties.get(path) {
            return Some(v.clone());
        }
    }
    if let Some(v) = data.cfg.properties.get(path) {
        return Some(v.clone());
    }
    let parts: Vec<&str> = path.iter().map(|s| s.as_str()).collect();
    match parts.as_slice() {
        ["plugin_name"] => return Some(string(&data.cfg.plugin_name)),
        ["plugin_root_id"] => return Some(string(&data.cfg.root_id)),
        ["plugin_vm_id"] => return Some(string(&data.cfg.vm_id)),
        _ => {}
    }
    let s = stream?;
    computed(s, &parts)
}

fn computed(s: &StreamState, parts: &[&str]) -> Option<Vec<u8>> {
    let req = s.request.headers.as_ref();
    let resp = s.response.headers.as_ref();
    let rh = |name: &str| req.and_then(|h| h.get_bytes(name)).map(|v| v.to_vec());
    match parts {
        ["request", "path"] => rh(":path"),
        ["request", "url_path"] => {
            let p = rh(":path")?;
            let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
            p.get(..end).map(|x| x.to_vec())
        }
        ["request", "query"] => {
            let p = rh(":path")?;
            match p.iter().position(|b| *b == b'?') {
                Some(q) => p.get(q + 1..).map(|x| x.to_vec()),
                None => Some(Vec::new()),
            }
        }
        ["request", "host"] => rh(":authority"),
        ["request", "method"] => rh(":method"),
        ["request", "scheme"] => rh(":scheme"),
        ["request", "id"] => rh("x-request-id"),
        ["request", "useragent"] => rh("user-agent"),
        ["request", "referer"] => rh("referer"),
        ["request", "protocol"] => req.map(|_| string("HTTP/1.1")),
        ["request", "headers"] => req.map(|h| h.serialize()),
        ["request", "headers", name] => rh(name),
        ["request", "time"] => req.map(|_| int(s.start_nanos as i64)),
        ["response", "code"] => {
            let code: i64 = resp
                .and_then(|h| h.get(":status"))
                .and_then(|v| v.parse().ok())?;
            Some(int(code))
        }
        ["response", "headers"] => resp.map(|h| h.serialize()),
        ["response", "headers", name] => resp.and_then(|h| h.get_bytes(name)).map(|v| v.to_vec()),
        ["response", "trailers"] => s.response.trailers.as_ref().map(|h| h.serialize()),
        ["source", "address"] => Some(string("127.0.0.1:50000")),
        ["source", "port"] => Some(int(50000)),
        ["destination", "address"] => Some(string("127.0.0.1:10000")),
        ["destination", "port"] => Some(int(10000)),
        ["connection", "mtls"] => Some(bool(false)),
        ["connection", "id"] => Some(uint(u64::from(s.id))),
        _ => None,
    }
}

/// Nanoseconds since the epoch of the host clock.
pub(crate) fn now_nanos(data: &VmData) -> u64 {
    data.now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
