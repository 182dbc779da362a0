//! Gathering a request's facts from the host: only what the policy reads.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;
use scopegate_core::{Policy, Request};

/// The facts of one request, owned (a paused request is decided again later).
#[derive(Debug, Clone)]
pub struct Facts {
    pub method: String,
    pub path: String,
    /// (lower-case name, first value) of the headers the policy wants.
    pub headers: Vec<(String, String)>,
    /// Envoy's `xds.route_name`, read only when the policy keys rules on it.
    pub route_name: Option<String>,
}

/// A request header as text; `Err` if it is not UTF-8. Never panics (the
/// SDK's own helper unwraps on non-UTF-8 values).
fn header(name: &str) -> Result<Option<String>, ()> {
    match hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => text(bytes).map(Some).ok_or(()),
        Err(_) => Ok(None),
    }
}

/// `bytes` as a `String`, if UTF-8. Header values are nearly always ASCII
/// (a token is): that is checked eight bytes per step, which costs a
/// fraction of a full UTF-8 validation on wasm32 (whose fast path takes
/// four); anything else gets the full one.
fn text(bytes: Vec<u8>) -> Option<String> {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder().iter().fold(0u8, |acc, b| acc | b);
    let high = words.fold(0u64, |acc, w| {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        acc | u64::from_ne_bytes(word)
    });
    if high & 0x8080_8080_8080_8080 == 0 && rest & 0x80 == 0 {
        // SAFETY: every byte is below 0x80: ASCII, which is UTF-8.
        return Some(unsafe { String::from_utf8_unchecked(bytes) });
    }
    String::from_utf8(bytes).ok()
}

impl Facts {
    /// Reads `:method`, `:path` and the policy's wanted headers (one host
    /// call each). `Err` with a reason if the request cannot be decided.
    pub fn gather(policy: &Policy) -> Result<Facts, &'static str> {
        let (Ok(method), Ok(path)) = (header(":method"), header(":path")) else {
            return Err("request pseudo-headers are not UTF-8");
        };
        let (Some(method), Some(path)) = (method, path) else {
            return Err("request has no :method or :path");
        };
        let mut headers = Vec::new();
        // `:authority` only when rules match on hosts; the CORS preflight
        // headers only for OPTIONS.
        for name in policy.headers_for(&method) {
            if name == ":method" || name == ":path" {
                continue;
            }
            match header(name) {
                Ok(Some(v)) => headers.push((name.to_owned(), v)),
                Ok(None) => {}
                // Not UTF-8: cannot hold a valid token; present it as garbage
                // so that it is refused rather than ignored.
                Err(()) => headers.push((name.to_owned(), String::from("\u{fffd}"))),
            }
        }
        let route_name = if policy.wants_route_name() {
            route_name()
        } else {
            None
        };
        Ok(Facts {
            method,
            path,
            headers,
            route_name,
        })
    }

    /// Runs `f` with the core's view of these facts at time `now`.
    pub fn with_request<T>(&self, now: i64, f: impl FnOnce(&Request<'_>) -> T) -> T {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        f(&Request {
            method: &self.method,
            path: &self.path,
            headers: &headers,
            now_unix_seconds: now,
            route_name: self.route_name.as_deref(),
        })
    }
}

/// Envoy's route name for this request (`xds.route_name`). Missing, empty or
/// not UTF-8: none (rules keyed on route names then do not match).
fn route_name() -> Option<String> {
    match hostcalls::get_property(vec!["xds", "route_name"]) {
        Ok(Some(bytes)) => String::from_utf8(bytes).ok().filter(|s| !s.is_empty()),
        Ok(None) | Err(_) => None,
    }
}

/// The host clock in Unix seconds.
pub fn now_unix_seconds() -> Option<i64> {
    let t = hostcalls::get_current_time().ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::text;

    #[test]
    fn text_is_exactly_utf8() {
        for n in 0..40usize {
            let ascii: Vec<u8> = (0..n).map(|i| b' ' + (i % 90) as u8).collect();
            assert_eq!(text(ascii.clone()).as_deref().map(str::as_bytes), Some(&ascii[..]));
            for i in 0..n {
                // A high byte anywhere: checked in full (and refused, alone).
                let mut bad = ascii.clone();
                bad[i] = 0xff;
                assert_eq!(text(bad), None, "len {n} at {i}");
                let mut bad = ascii.clone();
                bad[i] = 0x80;
                assert_eq!(text(bad), None);
            }
        }
        let utf8 = "héllo wörld, ünïcode ✓ in a header".as_bytes().to_vec();
        assert_eq!(text(utf8).as_deref(), Some("héllo wörld, ünïcode ✓ in a header"));
        assert_eq!(text(vec![b'a'; 9].into_iter().chain([0xc3]).collect()), None, "truncated sequence");
    }
}
