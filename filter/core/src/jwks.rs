//! Remote JWKS: when to fetch, what to do with the answer, what to keep when
//! the auth server is down.
//!
//! This is the pure part; the shim owns the I/O. Per provider, a
//! [`RemoteKeys`] state machine is told the time and the outcome of each
//! fetch, and says what to fetch next. Rules:
//! - keys are fresh for `cache_duration`; a refresh starts `refresh_ahead`
//!   before they go stale, so requests never wait for a routine refresh;
//! - a failed fetch keeps the keys we have (stale keys beat an outage) and is
//!   retried with exponential backoff (1 s doubling to 60 s, never more
//!   often than once a second);
//! - a token with an unknown `kid` may trigger one early refetch per
//!   `min_refetch_interval` (key rotation at the auth server);
//! - with discovery, the OpenID Connect document is fetched first and its
//!   `jwks_uri` path is used (its issuer must be the provider's issuer).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::keys::{AlgSet, Key, KeyFamily, parse_jwks};

/// Compiled `remote_jwks` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub cluster: String,
    pub authority: String,
    /// The JWKS path if known from config (`None` with discovery until fetched).
    pub path: Option<String>,
    pub discovery_path: Option<String>,
    pub timeout_ms: u64,
    pub cache_duration_seconds: i64,
    pub min_refetch_interval_seconds: i64,
}

/// Largest JWKS or discovery document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
const MAX_BACKOFF_SECONDS: i64 = 60;

/// What to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    Discovery { path: String },
    Jwks { path: String },
}

impl Fetch {
    pub fn path(&self) -> &str {
        match self {
            Fetch::Discovery { path } | Fetch::Jwks { path } => path,
        }
    }
}

/// Why a fetch produced no keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Timeout, reset, connection failure (the host's own reply, e.g. 503/504).
    Status(u16),
    TooLarge(usize),
    NotJson(String),
    Jwks(String),
    NoUsableKeys,
    Discovery(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Status(s) => write!(f, "HTTP status {s}"),
            FetchError::TooLarge(n) => {
                write!(f, "document of {n} bytes exceeds {MAX_DOCUMENT_BYTES}")
            }
            FetchError::NotJson(e) => write!(f, "not JSON: {e}"),
            FetchError::Jwks(e) => f.write_str(e),
            FetchError::NoUsableKeys => f.write_str("no usable signing key in the JWKS"),
            FetchError::Discovery(e) => write!(f, "discovery document: {e}"),
        }
    }
}

/// What a successful JWKS fetch brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub keys: usize,
    /// (index, kid, why) of keys that were skipped.
    pub skipped: Vec<(usize, Option<String>, String)>,
}

/// The remote key state of one provider in one VM.
#[derive(Debug, Clone)]
pub struct RemoteKeys {
    config: RemoteJwks,
    issuer: String,
    allowed: AlgSet,
    keys: Option<Arc<Vec<Key>>>,
    /// When the current keys were fetched (by whichever VM fetched them).
    fetched_at: Option<i64>,
    jwks_path: Option<String>,
    in_flight: Option<(Fetch, i64)>,
    failures: u32,
    retry_at: i64,
    /// An unknown `kid` asked for an early refetch.
    refetch_wanted: bool,
    last_kid_refetch: Option<i64>,
}

impl RemoteKeys {
    pub fn new(config: RemoteJwks, issuer: String, allowed: AlgSet) -> RemoteKeys {
        RemoteKeys {
            jwks_path: config.path.clone(),
            config,
            issuer,
            allowed,
            keys: None,
            fetched_at: None,
            in_flight: None,
            failures: 0,
            retry_at: i64::MIN,
            refetch_wanted: false,
            last_kid_refetch: None,
        }
    }

    pub fn config(&self) -> &RemoteJwks {
        &self.config
    }

    /// The keys in use, fresh or stale; `None` until the first successful fetch.
    pub fn keys(&self) -> Option<&Arc<Vec<Key>>> {
        self.keys.as_ref()
    }

    pub fn fetched_at(&self) -> Option<i64> {
        self.fetched_at
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Keys are present but older than `cache_duration`.
    pub fn is_stale(&self, now: i64) -> bool {
        self.fetched_at
            .is_some_and(|t| now >= t.saturating_add(self.config.cache_duration_seconds))
    }

    fn refresh_ahead(&self) -> i64 {
        (self.config.cache_duration_seconds / 10).clamp(1, 60)
    }

    /// Whether an unknown `kid` may trigger a refetch now; if so, records the
    /// wish (the next [`RemoteKeys::next_fetch`] returns a fetch).
    pub fn want_refetch_for_unknown_kid(&mut self, now: i64) -> bool {
        let allowed = self
            .last_kid_refetch
            .is_none_or(|t| now >= t.saturating_add(self.config.min_refetch_interval_seconds));
        if allowed {
            self.last_kid_refetch = Some(now);
            self.refetch_wanted = true;
        }
        allowed
    }

    /// Corrects for a wall clock that went back: timestamps in the future
    /// (when keys were fetched, a fetch started, a retry or kid refetch is
    /// allowed) would otherwise hold off refreshes and retries for as long as
    /// the jump. They are moved to `now`; keys fetched "in the future" are of
    /// unknown age, so a refresh is due at once (the keys are kept meanwhile).
    /// `true` if anything was moved (the caller logs it). Call before
    /// [`RemoteKeys::next_fetch`].
    pub fn notice_clock(&mut self, now: i64) -> bool {
        let mut moved = false;
        if self.fetched_at.is_some_and(|t| t > now) {
            self.fetched_at = Some(now.saturating_sub(self.config.cache_duration_seconds));
            moved = true;
        }
        if let Some((_, since)) = &mut self.in_flight
            && *since > now
        {
            *since = now;
            moved = true;
        }
        if self.retry_at > now.saturating_add(MAX_BACKOFF_SECONDS) {
            self.retry_at = now;
            moved = true;
        }
        if self.last_kid_refetch.is_some_and(|t| t > now) {
            self.last_kid_refetch = None;
            moved = true;
        }
        moved
    }

    /// The fetch to start now, if any. The caller dispatches it and calls
    /// [`RemoteKeys::started`] (or [`RemoteKeys::failed`] if dispatch failed).
    pub fn next_fetch(&self, now: i64) -> Option<Fetch> {
        if let Some((_, since)) = &self.in_flight {
            // A callout whose answer never came (the host lost it): give up
            // on it after twice the timeout.
            let timeout = i64::try_from(self.config.timeout_ms / 1000).unwrap_or(i64::MAX);
            if now < since.saturating_add(2 * timeout.max(1)) {
                return None;
            }
        }
        if now < self.retry_at {
            return None;
        }
        let due = match self.fetched_at {
            None => true,
            Some(t) => {
                self.refetch_wanted
                    || now
                        >= t.saturating_add(self.config.cache_duration_seconds)
                            .saturating_sub(self.refresh_ahead())
            }
        };
        if !due {
            return None;
        }
        Some(match (&self.jwks_path, &self.config.discovery_path) {
            (Some(path), _) => Fetch::Jwks { path: path.clone() },
            (None, Some(path)) => Fetch::Discovery { path: path.clone() },
            (None, None) => Fetch::Jwks {
                path: "/.well-known/jwks.json".into(),
            },
        })
    }

    pub fn started(&mut self, fetch: Fetch, now: i64) {
        self.in_flight = Some((fetch, now));
    }

    /// A fetch failed (dispatch refused, non-200, unusable body).
    pub fn failed(&mut self, now: i64) {
        self.in_flight = None;
        // An unknown kid buys one refetch, not a retry loop: a failed one is
        // not retried for its sake (a missing or due key set still is).
        self.refetch_wanted = false;
        self.failures = self.failures.saturating_add(1);
        let backoff = 1i64 << self.failures.min(6).saturating_sub(1);
        self.retry_at = now.saturating_add(backoff.min(MAX_BACKOFF_SECONDS));
    }

    /// The answer to the in-flight fetch. On success with a JWKS, the new keys
    /// replace the old ones; with discovery, the JWKS path is learnt and the
    /// JWKS fetch is due at once.
    pub fn answered(
        &mut self,
        now: i64,
        status: u16,
        body: &[u8],
    ) -> Result<Option<Loaded>, FetchError> {
        let Some((fetch, _)) = self.in_flight.take() else {
            return Err(FetchError::Jwks(
                "an answer arrived for no fetch in flight".into(),
            ));
        };
        let result = self.accept(&fetch, status, body);
        match &result {
            Ok(Some(_)) => {
                self.fetched_at = Some(now);
                self.failures = 0;
                self.retry_at = i64::MIN;
                self.refetch_wanted = false;
            }
            Ok(None) => {
                self.failures = 0;
                self.retry_at = i64::MIN;
            }
            Err(_) => self.failed(now),
        }
        result
    }

    fn accept(
        &mut self,
        fetch: &Fetch,
        status: u16,
        body: &[u8],
    ) -> Result<Option<Loaded>, FetchError> {
        if status != 200 {
            return Err(FetchError::Status(status));
        }
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::TooLarge(body.len()));
        }
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| FetchError::NotJson(e.to_string()))?;
        match fetch {
            Fetch::Discovery { .. } => {
                let issuer = doc.get("issuer").and_then(Value::as_str);
                if issuer != Some(self.issuer.as_str()) {
                    return Err(FetchError::Discovery(format!(
                        "issuer {issuer:?} is not the provider's {:?}",
                        self.issuer
                    )));
                }
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| FetchError::Discovery("no jwks_uri".into()))?;
                self.jwks_path = Some(path_of(uri).ok_or_else(|| {
                    FetchError::Discovery(format!(
                        "jwks_uri {uri:?} is not an absolute http(s) URL"
                    ))
                })?);
                Ok(None)
            }
            Fetch::Jwks { .. } => {
                let keys = self.load(&doc)?;
                Ok(Some(keys))
            }
        }
    }

    /// Parses a JWKS body fetched elsewhere (another VM published it) and
    /// adopts it if it is newer than what we have.
    pub fn adopt(&mut self, fetched_at: i64, body: &[u8]) -> Result<Option<Loaded>, FetchError> {
        if self.fetched_at.is_some_and(|t| t >= fetched_at) {
            return Ok(None);
        }
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| FetchError::NotJson(e.to_string()))?;
        let loaded = self.load(&doc)?;
        self.fetched_at = Some(fetched_at);
        self.failures = 0;
        self.retry_at = i64::MIN;
        self.refetch_wanted = false;
        Ok(Some(loaded))
    }

    fn load(&mut self, doc: &Value) -> Result<Loaded, FetchError> {
        let parsed = parse_jwks(doc).map_err(|e| FetchError::Jwks(e.to_string()))?;
        let mut skipped: Vec<(usize, Option<String>, String)> = parsed
            .skipped
            .into_iter()
            .map(|(i, kid, e)| (i, kid, e.to_string()))
            .collect();
        let mut keys = Vec::new();
        for (i, key) in parsed.keys.into_iter().enumerate() {
            // Shared secrets never come over the network.
            if key.material().family() == KeyFamily::Hmac {
                skipped.push((
                    i,
                    key.kid().map(str::to_owned),
                    "symmetric keys are not accepted from a remote JWKS".into(),
                ));
                continue;
            }
            if let Some(k) = key.restrict(self.allowed) {
                keys.push(k);
            }
        }
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys);
        }
        let loaded = Loaded {
            keys: keys.len(),
            skipped,
        };
        self.keys = Some(Arc::new(keys));
        Ok(loaded)
    }
}

/// The record one VM publishes in shared data for the others: when the
/// JWKS was fetched and its body.
pub fn publication(fetched_at: i64, body: &[u8]) -> Vec<u8> {
    serde_json::json!({
        "fetched_at": fetched_at,
        "body": String::from_utf8_lossy(body),
    })
    .to_string()
    .into_bytes()
}

/// Reads a [`publication`]; `None` if it is not one.
pub fn read_publication(bytes: &[u8]) -> Option<(i64, Vec<u8>)> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let at = v.get("fetched_at")?.as_i64()?;
    let body = v.get("body")?.as_str()?;
    Some((at, body.as_bytes().to_vec()))
}

/// The path (and query) of an absolute http(s) URL.
fn path_of(uri: &str) -> Option<String> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let slash = rest.find('/')?;
    let path = rest.get(slash..)?;
    (!path.is_empty()).then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh).
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn path_of_urls() {
        assert_eq!(path_of("https://auth.test/keys").as_deref(), Some("/keys"));
        assert_eq!(
            path_of("http://auth.test:8080/a/b?x=1").as_deref(),
            Some("/a/b?x=1")
        );
        assert_eq!(path_of("https://auth.test"), None);
        assert_eq!(path_of("/keys"), None);
        assert_eq!(path_of("ftp://x/y"), None);
    }
}
