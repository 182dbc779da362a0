//! Gathering a request's facts from the host: the request header map in one
//! call, of which only what the policy reads is kept.

use proxy_wasm::hostcalls;
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
    /// The policy's managed headers (forwarded claims and payloads, the
    /// dry-run header): an allow strips only inbound copies that exist, so
    /// no host call removes an absent one (in Envoy that still costs ≈ 2.3 k
    /// instructions).
    managed: std::sync::Arc<[std::sync::Arc<str>]>,
    /// The request header map as the host serialised it, read again only
    /// for that (see [`Facts::header_names`]).
    raw: Vec<u8>,
}

/// The request headers, in one host call: `proxy_get_header_map_pairs`
/// copies the whole map into the module at once. Reading `:method`, `:path`
/// and the token header one by one cost three calls, each of which calls back
/// into the module for memory: measured in Envoy (instructions per request,
/// under callgrind: BENCHMARKS.md), three reads cost 21 k instructions more
/// than one, one read of every header 6.5 k. The SDK's own helpers panic on a
/// status other than Ok or on a name that is not UTF-8; this does not.
fn request_header_pairs() -> Result<Vec<u8>, &'static str> {
    #[cfg(target_arch = "wasm32")]
    {
        #[link(wasm_import_module = "env")]
        #[allow(clashing_extern_declarations)]
        unsafe extern "C" {
            fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        }
        let (mut data, mut size) = (std::ptr::null_mut::<u8>(), 0usize);
        // SAFETY: the host writes a pointer and a size through the two out
        // pointers, which live on this stack frame.
        let status = unsafe {
            proxy_get_header_map_pairs(
                proxy_wasm::types::MapType::HttpRequestHeaders as u32,
                &mut data,
                &mut size,
            )
        };
        if status != 0 {
            return Err("the host did not give the request headers");
        }
        if data.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: the host allocated `size` bytes through the module's
        // `proxy_on_memory_allocate` (the SDK's, a `Vec::<u8>::with_capacity`
        // it forgets) and hands them over: the proxy-wasm SDK takes these
        // bytes back the same way.
        Ok(unsafe { Vec::from_raw_parts(data, size, size) })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err("no proxy-wasm host outside wasm32")
    }
}

/// The (name, value) pairs of a serialised header map: a little-endian u32
/// count, then a u32 name length and a u32 value length per pair, then every
/// name and value, each followed by a NUL byte. `None` if `bytes` is not
/// that (nothing is read past its end). An empty buffer is an empty map.
fn parse_pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    fn len(word: &[u8; 4]) -> Option<usize> {
        usize::try_from(u32::from_le_bytes(*word)).ok()
    }
    /// `n` bytes, then a NUL; and what follows.
    fn field(rest: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
        let (field, rest) = rest.split_at_checked(n)?;
        match rest.split_first() {
            Some((0, rest)) => Some((field, rest)),
            _ => None,
        }
    }
    let Some((count, rest)) = bytes.split_first_chunk::<4>() else {
        return bytes.is_empty().then(Vec::new);
    };
    let (table, mut rest) = rest.split_at_checked(len(count)?.checked_mul(8)?)?;
    let mut out = Vec::with_capacity(table.len() / 8);
    for entry in table.chunks_exact(8) {
        let (name_len, value_len) = (entry.first_chunk::<4>()?, entry.last_chunk::<4>()?);
        let (name, r) = field(rest, len(name_len)?)?;
        let (value, r) = field(r, len(value_len)?)?;
        rest = r;
        out.push((name, value));
    }
    Some(out)
}

/// The first value of `name` (lower-case), as `proxy_get_header_map_value`
/// would give it: `Ok(None)` if absent, `Err` if not UTF-8.
fn first(pairs: &[(&[u8], &[u8])], name: &str) -> Result<Option<String>, ()> {
    match pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
    {
        None => Ok(None),
        Some((_, v)) => text(v.to_vec()).map(Some).ok_or(()),
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
    /// call for all of them). `Err` with a reason if the request cannot be
    /// decided.
    pub fn gather(policy: &Policy) -> Result<Facts, &'static str> {
        let raw = request_header_pairs()?;
        let Some(pairs) = parse_pairs(&raw) else {
            return Err("the host's request header map is malformed");
        };
        let header = |name: &str| first(&pairs, name);
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
        let managed = policy.managed_headers_shared().clone();
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
            managed,
            raw,
        })
    }

    /// Whether `name` is one of the policy's managed headers.
    pub fn is_managed(&self, name: &str) -> bool {
        self.managed.iter().any(|m| &**m == name)
    }

    /// The names of the request's headers (`None` if the map cannot be
    /// read again: then nothing may be assumed absent).
    pub fn header_names(&self) -> Option<Vec<&[u8]>> {
        parse_pairs(&self.raw).map(|pairs| pairs.into_iter().map(|(k, _)| k).collect())
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

thread_local! {
    /// The second the host clock last read (`i64::MIN` before the first read).
    static LAST_SECOND: core::cell::Cell<i64> = const { core::cell::Cell::new(i64::MIN) };
}

/// The host clock in Unix seconds.
pub fn now_unix_seconds() -> Option<i64> {
    let t = hostcalls::get_current_time().ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let secs = i64::try_from(secs).ok()?;
    LAST_SECOND.set(secs);
    Some(secs)
}

/// The second of the last [`now_unix_seconds`] read: every request reads the
/// clock first, so this is the current request's second.
pub fn last_second() -> i64 {
    LAST_SECOND.get()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::{first, parse_pairs, text};

    /// A header map serialised as the host does for `proxy_get_header_map_pairs`.
    fn serialise(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend(*k);
            out.push(0);
            out.extend(*v);
            out.push(0);
        }
        out
    }

    #[test]
    fn header_pairs_are_read_back_exactly() {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b":authority", b"svc-a"),
            (b":path", b"/orders/7"),
            (b":method", b"GET"),
            (b"authorization", b"Bearer first"),
            (b"x-empty", b""),
            (b"authorization", b"Bearer second"),
            (b"x-binary", b"\xff\x00\xfe"),
        ];
        let bytes = serialise(&pairs);
        assert_eq!(parse_pairs(&bytes), Some(pairs.clone()));
        assert_eq!(parse_pairs(&serialise(&[])), Some(vec![]));
        assert_eq!(parse_pairs(&[]), Some(vec![]), "an empty buffer is an empty map");
        let got = parse_pairs(&bytes).unwrap();
        // The first value of a repeated name, as proxy_get_header_map_value gives it.
        assert_eq!(first(&got, "authorization"), Ok(Some("Bearer first".to_owned())));
        assert_eq!(first(&got, ":method"), Ok(Some("GET".to_owned())));
        assert_eq!(first(&got, "x-empty"), Ok(Some(String::new())));
        assert_eq!(first(&got, "x-absent"), Ok(None));
        assert_eq!(first(&got, "x-binary"), Err(()), "not UTF-8");
        // Names compare without regard to ASCII case.
        let upper = serialise(&[(b"Authorization", b"Bearer t")]);
        assert_eq!(first(&parse_pairs(&upper).unwrap(), "authorization"), Ok(Some("Bearer t".to_owned())));
    }

    #[test]
    fn malformed_header_pairs_are_refused_without_reading_past_the_end() {
        let bytes = serialise(&[(b":path", b"/a"), (b"authorization", b"Bearer t")]);
        // Every truncation is refused (the empty one is an empty map).
        for n in 1..bytes.len() {
            assert_eq!(parse_pairs(&bytes[..n]), None, "truncated to {n}");
        }
        // A missing NUL terminator.
        let mut bad = bytes.clone();
        let at = 4 + 2 * 8 + b":path".len();
        bad[at] = b'x';
        assert_eq!(parse_pairs(&bad), None);
        // A count or a length beyond the buffer (also near u32::MAX).
        for count in [3u32, 1 << 29, u32::MAX] {
            let mut bad = bytes.clone();
            bad[..4].copy_from_slice(&count.to_le_bytes());
            assert_eq!(parse_pairs(&bad), None, "count {count}");
        }
        for len in [100u32, u32::MAX] {
            let mut bad = bytes.clone();
            bad[8..12].copy_from_slice(&len.to_le_bytes());
            assert_eq!(parse_pairs(&bad), None, "value length {len}");
        }
        // Arbitrary bytes never panic.
        let mut x = 0x9e37_79b9_u32;
        for len in 0..200usize {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 7) as u8
                })
                .collect();
            let _ = parse_pairs(&junk);
        }
    }

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
