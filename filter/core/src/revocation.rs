//! Token revocation (logout): which tokens are refused although their
//! signature and claims are good.
//!
//! A provider's `revocation` section holds inline entries (always applied) and
//! optionally a feed polled from the auth server (`filter/PROTOCOLS.md`,
//! "Revocation feed"). This is the pure part:
//! - [`RevocationList`]: revoked `jti`s and subjects, each with the time after
//!   which the entry is dropped (the revoked token is dead anyway), bounded;
//! - [`parse_feed`]: the feed document, refused whole on any wrong type,
//!   unknown member, duplicate member, or over the size bound (never a
//!   partial apply);
//! - [`RemoteRevocations`]: one provider's feed state in one worker: when to
//!   poll, what to send (`since`, `If-None-Match`), merge (complete replaces,
//!   incremental merges), the `max_entries` cap, and the records the shim
//!   publishes in shared data for the other workers;
//! - [`Revocation::check`]: the lookup the decision makes for a verified
//!   token (also on verified-token cache hits), with the feed's staleness.
//!
//! Entries are dropped `clock_skew_seconds` after their `exp`; without `exp`,
//! a `jti` lives `max_token_lifetime_seconds` from when it was first seen, a
//! subject until `revoked_before + max_token_lifetime_seconds` (+ skew).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::compile::{ConfigError, Problem};
use crate::config::{OnStaleConfig, RevocationConfig, RevokedJtiConfig, RevokedSubjectConfig};

/// Default feed path.
pub const DEFAULT_PATH: &str = "/revocations";
/// Default seconds between polls.
pub const DEFAULT_POLL_INTERVAL_SECONDS: u64 = 10;
/// Default per-poll timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Default staleness bound.
pub const DEFAULT_MAX_STALENESS_SECONDS: u64 = 300;
/// Default cap on entries per provider.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Largest `max_entries` an operator may set.
pub const MAX_MAX_ENTRIES: usize = 1_000_000;
/// Default life of an entry without `exp`.
pub const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS: u64 = 86_400;
/// Longest `jti`, `sub`, cursor or ETag accepted.
pub const MAX_ID_BYTES: usize = 1024;

/// Largest feed body accepted for a cap of `max_entries`: 256 bytes an entry
/// (plus 4 KiB), at least 64 KiB, at most 64 MiB.
pub fn max_feed_bytes(max_entries: usize) -> usize {
    max_entries
        .saturating_mul(256)
        .saturating_add(4096)
        .clamp(64 * 1024, 64 * 1024 * 1024)
}

/// What a stale feed means (see [`Revocation::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStale {
    FailClosed,
    FailOpen,
}

/// Compiled `revocation.remote`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFeed {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub poll_interval_seconds: i64,
    pub timeout_ms: u64,
}

/// A provider's compiled `revocation` section.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub(crate) inline: RevocationList,
    pub(crate) remote: Option<RemoteFeed>,
    pub(crate) max_staleness_seconds: i64,
    pub(crate) on_stale: Option<OnStale>,
    pub(crate) max_entries: usize,
    pub(crate) max_token_lifetime_seconds: i64,
    pub(crate) clock_skew_seconds: i64,
}

/// How current the fetched list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// A poll succeeded within `max_staleness_seconds` (or there is no feed).
    Fresh,
    /// The last successful poll is older than `max_staleness_seconds`.
    Stale,
    /// No poll has succeeded yet.
    NeverPolled,
}

/// The outcome of [`Revocation::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Not revoked, and the list is fresh.
    Clear,
    /// Revoked; the detail says by which entry.
    Revoked(String),
    /// Not in the list, but the list is stale or was never fetched. `closed`:
    /// the request must be refused (`on_stale: fail_closed` or a sensitive rule).
    Unavailable {
        never_polled: bool,
        closed: bool,
        detail: String,
    },
}

impl Revocation {
    pub fn inline(&self) -> &RevocationList {
        &self.inline
    }
    pub fn remote(&self) -> Option<&RemoteFeed> {
        self.remote.as_ref()
    }
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }
    pub fn max_staleness_seconds(&self) -> i64 {
        self.max_staleness_seconds
    }
    pub fn on_stale(&self) -> Option<OnStale> {
        self.on_stale
    }
    /// How many fetched entries may be held besides the inline ones.
    pub fn remote_capacity(&self) -> usize {
        self.max_entries.saturating_sub(self.inline.len())
    }

    /// The feed's freshness at `now`, given what the shim holds.
    pub fn freshness(&self, view: Option<&RevocationView>, now: i64) -> Freshness {
        if self.remote.is_none() {
            return Freshness::Fresh;
        }
        match view.and_then(|v| v.last_ok) {
            None => Freshness::NeverPolled,
            Some(t) if now.saturating_sub(t) > self.max_staleness_seconds => Freshness::Stale,
            Some(_) => Freshness::Fresh,
        }
    }

    /// Whether a verified token with `claims` is revoked at `now`: the inline
    /// list and the fetched one (`view`) are looked up first (a stale list
    /// still refuses what it holds), then the feed's freshness decides.
    pub fn check(
        &self,
        view: Option<&RevocationView>,
        claims: &Map<String, Value>,
        now: i64,
        sensitive: bool,
    ) -> Check {
        let jti = match claims.get("jti") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let sub = claims.get("sub").and_then(Value::as_str);
        let iat = claims.get("iat").and_then(Value::as_i64);
        for (list, origin) in [
            (Some(&self.inline), "inline"),
            (view.map(|v| &v.list), "fetched"),
        ] {
            if let Some(hit) = list.and_then(|l| l.lookup(jti.as_deref(), sub, iat, now)) {
                return Check::Revoked(match hit {
                    Revoked::Jti => format!("jti {jti:?} is in the {origin} revocation list"),
                    Revoked::Subject { revoked_before } => format!(
                        "subject {sub:?} revoked before {revoked_before} ({origin}), token iat {iat:?}"
                    ),
                });
            }
        }
        let freshness = self.freshness(view, now);
        if freshness == Freshness::Fresh {
            return Check::Clear;
        }
        let detail = match view.and_then(|v| v.last_ok) {
            None => "the revocation list has not been fetched yet".to_owned(),
            Some(t) => format!(
                "the revocation list is stale: last successful poll {}s ago (max_staleness_seconds {})",
                now.saturating_sub(t),
                self.max_staleness_seconds
            ),
        };
        Check::Unavailable {
            never_polled: freshness == Freshness::NeverPolled,
            closed: sensitive || self.on_stale == Some(OnStale::FailClosed),
            detail,
        }
    }
}

/// Which entry revoked a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Jti,
    Subject { revoked_before: i64 },
}

/// Revoked token ids and subjects, each with its drop time (Unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    /// jti -> drop after.
    jti: BTreeMap<String, i64>,
    /// sub -> (revoked_before, drop after).
    subjects: BTreeMap<String, (i64, i64)>,
}

impl RevocationList {
    pub fn len(&self) -> usize {
        self.jti.len().saturating_add(self.subjects.len())
    }
    pub fn is_empty(&self) -> bool {
        self.jti.is_empty() && self.subjects.is_empty()
    }

    /// Adds a revoked `jti`, kept until `drop_after` (the later one wins).
    pub fn add_jti(&mut self, jti: String, drop_after: i64) {
        let e = self.jti.entry(jti).or_insert(drop_after);
        *e = (*e).max(drop_after);
    }

    /// Adds a revoked subject (the later `revoked_before` and drop time win).
    pub fn add_subject(&mut self, sub: String, revoked_before: i64, drop_after: i64) {
        let e = self
            .subjects
            .entry(sub)
            .or_insert((revoked_before, drop_after));
        *e = (e.0.max(revoked_before), e.1.max(drop_after));
    }

    /// Drops the entries whose time is over; returns how many.
    pub fn prune(&mut self, now: i64) -> usize {
        let before = self.len();
        self.jti.retain(|_, until| *until >= now);
        self.subjects.retain(|_, (_, until)| *until >= now);
        before.saturating_sub(self.len())
    }

    /// The earliest drop time of any entry.
    pub fn next_expiry(&self) -> Option<i64> {
        self.jti
            .values()
            .copied()
            .chain(self.subjects.values().map(|(_, u)| *u))
            .min()
    }

    /// Whether a token (`jti`, `sub`, `iat` claims) is revoked at `now`.
    /// Entries whose time is over no longer apply, pruned or not.
    pub fn lookup(
        &self,
        jti: Option<&str>,
        sub: Option<&str>,
        iat: Option<i64>,
        now: i64,
    ) -> Option<Revoked> {
        if let Some(until) = jti.and_then(|j| self.jti.get(j))
            && *until >= now
        {
            return Some(Revoked::Jti);
        }
        if let Some((revoked_before, until)) = sub.and_then(|s| self.subjects.get(s))
            && *until >= now
            && iat.is_none_or(|t| t < *revoked_before)
        {
            return Some(Revoked::Subject {
                revoked_before: *revoked_before,
            });
        }
        None
    }

    /// The drop time of a held `jti`.
    pub fn jti_until(&self, jti: &str) -> Option<i64> {
        self.jti.get(jti).copied()
    }

    /// The (revoked_before, drop time) of a held subject.
    pub fn subject(&self, sub: &str) -> Option<(i64, i64)> {
        self.subjects.get(sub).copied()
    }
}

/// A feed document, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub cursor: Option<String>,
    pub complete: bool,
    pub jti: Vec<(String, Option<i64>)>,
    /// (sub, revoked_before, exp).
    pub subjects: Vec<(String, i64, Option<i64>)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedDoc {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    complete: Option<bool>,
    #[serde(default)]
    jti: Vec<RevokedJtiConfig>,
    #[serde(default)]
    subjects: Vec<RevokedSubjectConfig>,
}

/// Why a poll brought nothing usable. The held list is kept in every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    /// A status other than 200/304 (0: no response, e.g. a reset; Envoy's own
    /// 503 for a connection failure, 504 for a timeout).
    Status(u16),
    TooLarge {
        bytes: usize,
        limit: usize,
    },
    /// Not the feed's JSON: syntax, a wrong type, an unknown or repeated member.
    Invalid(String),
    /// The update would hold more than the cap.
    Overflow {
        entries: usize,
        max: usize,
    },
    /// An answer that makes no sense for what was asked.
    Unexpected(&'static str),
    /// The callout could not be dispatched.
    Dispatch(String),
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedError::Status(0) => f.write_str("no response (connection reset)"),
            FeedError::Status(s) => write!(f, "HTTP status {s}"),
            FeedError::TooLarge { bytes, limit } => {
                write!(f, "body of {bytes} bytes exceeds the limit of {limit}")
            }
            FeedError::Invalid(e) => write!(f, "not a revocation feed document: {e}"),
            FeedError::Overflow { entries, max } => write!(
                f,
                "the update would hold {entries} entries, more than max_entries allows ({max})"
            ),
            FeedError::Unexpected(why) => f.write_str(why),
            FeedError::Dispatch(e) => write!(f, "cannot dispatch the poll: {e}"),
        }
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_BYTES
}

/// Parses a feed body: the whole document or an error, never a part.
pub fn parse_feed(body: &[u8], max_bytes: usize) -> Result<Feed, FeedError> {
    if body.len() > max_bytes {
        return Err(FeedError::TooLarge {
            bytes: body.len(),
            limit: max_bytes,
        });
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(FeedError::Invalid("not a JSON object".into()));
    }
    let doc: FeedDoc =
        serde_json::from_slice(body).map_err(|e| FeedError::Invalid(e.to_string()))?;
    if !crate::json_guard::is_unambiguous(body) {
        return Err(FeedError::Invalid("a member name is repeated".into()));
    }
    if let Some(c) = &doc.cursor
        && (!valid_id(c) || c.chars().any(char::is_control))
    {
        return Err(FeedError::Invalid(format!(
            "cursor must be 1 to {MAX_ID_BYTES} bytes without control characters"
        )));
    }
    if let Some((i, _)) = doc.jti.iter().enumerate().find(|(_, e)| !valid_id(&e.jti)) {
        return Err(FeedError::Invalid(format!(
            "jti[{i}].jti must be 1 to {MAX_ID_BYTES} bytes"
        )));
    }
    if let Some((i, _)) = doc
        .subjects
        .iter()
        .enumerate()
        .find(|(_, e)| !valid_id(&e.sub))
    {
        return Err(FeedError::Invalid(format!(
            "subjects[{i}].sub must be 1 to {MAX_ID_BYTES} bytes"
        )));
    }
    Ok(Feed {
        cursor: doc.cursor,
        complete: doc.complete.unwrap_or(true),
        jti: doc.jti.into_iter().map(|e| (e.jti, e.exp)).collect(),
        subjects: doc
            .subjects
            .into_iter()
            .map(|e| (e.sub, e.revoked_before, e.exp))
            .collect(),
    })
}

/// A subject entry's drop time.
fn subject_until(revoked_before: i64, exp: Option<i64>, lifetime: i64, skew: i64) -> i64 {
    exp.unwrap_or_else(|| revoked_before.saturating_add(lifetime))
        .saturating_add(skew)
}

/// What the shim holds for one provider's feed, as the decision sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationView {
    list: RevocationList,
    /// Last successful poll (200 or 304) by any worker.
    last_ok: Option<i64>,
}

impl RevocationView {
    pub fn new(list: RevocationList, last_ok: Option<i64>) -> RevocationView {
        RevocationView { list, last_ok }
    }
    pub fn list(&self) -> &RevocationList {
        &self.list
    }
    pub fn last_ok(&self) -> Option<i64> {
        self.last_ok
    }
}

/// The poll to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRequest {
    /// Path and query (`since=<cursor>` when a cursor is held).
    pub path: String,
    /// `If-None-Match` value, when the last 200 carried an `ETag`.
    pub if_none_match: Option<String>,
}

/// A successful poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    NotModified,
    Updated {
        /// Entries now held (fetched ones).
        entries: usize,
        /// Whether the list, cursor or ETag changed (a new version to publish).
        changed: bool,
    },
}

/// One provider's feed in one worker.
#[derive(Debug, Clone)]
pub struct RemoteRevocations {
    feed: RemoteFeed,
    capacity: usize,
    max_body: usize,
    lifetime: i64,
    skew: i64,
    view: RevocationView,
    /// Bumped on every change; 0: nothing fetched yet.
    version: u64,
    cursor: Option<String>,
    etag: Option<String>,
    in_flight: Option<i64>,
    next_poll_at: i64,
    failures: u32,
}

#[derive(serde::Serialize, Deserialize)]
struct Publication {
    version: u64,
    cursor: Option<String>,
    etag: Option<String>,
    jti: Vec<(String, i64)>,
    subjects: Vec<(String, i64, i64)>,
}

#[derive(serde::Serialize, Deserialize)]
struct SharedState {
    version: u64,
    last_ok: Option<i64>,
    next_poll_at: i64,
    /// Failed polls in a row, by whichever worker polled.
    #[serde(default)]
    failures: u32,
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RemoteRevocations {
    /// The feed state of a provider's `revocation`, if it has a feed.
    pub fn new(r: &Revocation) -> Option<RemoteRevocations> {
        let feed = r.remote.clone()?;
        Some(RemoteRevocations {
            feed,
            capacity: r.remote_capacity(),
            max_body: max_feed_bytes(r.max_entries),
            lifetime: r.max_token_lifetime_seconds,
            skew: r.clock_skew_seconds,
            view: RevocationView::default(),
            version: 0,
            cursor: None,
            etag: None,
            in_flight: None,
            next_poll_at: i64::MIN,
            failures: 0,
        })
    }

    pub fn feed(&self) -> &RemoteFeed {
        &self.feed
    }
    pub fn view(&self) -> &RevocationView {
        &self.view
    }
    pub fn version(&self) -> u64 {
        self.version
    }
    /// Failed polls in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }
    /// Largest body accepted.
    pub fn max_body(&self) -> usize {
        self.max_body
    }
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// The poll to start now, if one is due. The caller dispatches it and
    /// calls [`RemoteRevocations::started`] (or `failed` if it could not).
    pub fn next_poll(&self, now: i64) -> Option<PollRequest> {
        if let Some(since) = self.in_flight {
            // An answer that never came (the host lost it): give up on it
            // after twice the timeout.
            let timeout = i64::try_from(self.feed.timeout_ms.div_ceil(1000)).unwrap_or(60);
            if now < since.saturating_add(2 * timeout.max(1)) {
                return None;
            }
        }
        if now < self.next_poll_at {
            return None;
        }
        let mut path = self.feed.path.clone();
        if let Some(c) = &self.cursor {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str("since=");
            path.push_str(&query_escape(c));
        }
        Some(PollRequest {
            path,
            if_none_match: self.etag.clone(),
        })
    }

    pub fn started(&mut self, now: i64) {
        self.in_flight = Some(now);
    }

    /// A poll failed (not dispatched, or an answer refused): the held list
    /// is kept, the next poll is at the normal interval.
    pub fn failed(&mut self, now: i64) {
        self.in_flight = None;
        self.failures = self.failures.saturating_add(1);
        self.next_poll_at = now.saturating_add(self.feed.poll_interval_seconds);
    }

    /// The answer to the poll in flight: `status`, the reply's `ETag`, body.
    pub fn answered(
        &mut self,
        now: i64,
        status: u16,
        etag: Option<&str>,
        body: &[u8],
    ) -> Result<Polled, FeedError> {
        let result = self.accept(now, status, etag, body);
        self.in_flight = None;
        self.next_poll_at = now.saturating_add(self.feed.poll_interval_seconds);
        match &result {
            Ok(_) => {
                self.failures = 0;
                self.view.last_ok = Some(self.view.last_ok.map_or(now, |t| t.max(now)));
            }
            Err(_) => self.failures = self.failures.saturating_add(1),
        }
        result
    }

    fn accept(
        &mut self,
        now: i64,
        status: u16,
        etag: Option<&str>,
        body: &[u8],
    ) -> Result<Polled, FeedError> {
        match status {
            304 if self.version == 0 => Err(FeedError::Unexpected(
                "304 Not Modified, but no list is held (none was asked for)",
            )),
            304 => {
                self.view.list.prune(now);
                Ok(Polled::NotModified)
            }
            200 => {
                let feed = parse_feed(body, self.max_body)?;
                if !feed.complete && (self.version == 0 || self.cursor.is_none()) {
                    return Err(FeedError::Unexpected(
                        "an incremental document (complete: false), but no cursor was sent",
                    ));
                }
                let list = self.merged(&feed, now)?;
                let etag = etag
                    .filter(|e| valid_id(e) && e.bytes().all(|b| (0x20..0x7f).contains(&b)))
                    .map(str::to_owned);
                let changed = self.version == 0
                    || list != self.view.list
                    || feed.cursor != self.cursor
                    || etag != self.etag;
                let entries = list.len();
                self.view.list = list;
                if changed {
                    self.cursor = feed.cursor;
                    self.etag = etag;
                    self.version = self.version.saturating_add(1);
                }
                Ok(Polled::Updated { entries, changed })
            }
            other => Err(FeedError::Status(other)),
        }
    }

    /// The list after applying `feed` at `now`, pruned, within the cap.
    fn merged(&self, feed: &Feed, now: i64) -> Result<RevocationList, FeedError> {
        let old = &self.view.list;
        let mut list = if feed.complete {
            RevocationList::default()
        } else {
            old.clone()
        };
        for (jti, exp) in &feed.jti {
            // Without exp: from when it was first seen, kept across documents.
            let until = match exp {
                Some(exp) => exp.saturating_add(self.skew),
                None => old
                    .jti_until(jti)
                    .unwrap_or_else(|| now.saturating_add(self.lifetime).saturating_add(self.skew)),
            };
            list.add_jti(jti.clone(), until);
        }
        for (sub, before, exp) in &feed.subjects {
            list.add_subject(
                sub.clone(),
                *before,
                subject_until(*before, *exp, self.lifetime, self.skew),
            );
        }
        list.prune(now);
        if list.len() > self.capacity {
            return Err(FeedError::Overflow {
                entries: list.len(),
                max: self.capacity,
            });
        }
        Ok(list)
    }

    /// Drops entries whose time is over (cheap when none is due).
    pub fn prune(&mut self, now: i64) -> usize {
        if self.view.list.next_expiry().is_some_and(|t| t < now) {
            self.view.list.prune(now)
        } else {
            0
        }
    }

    /// The list record the poller publishes for the other workers (compact JSON).
    pub fn publication(&self) -> Vec<u8> {
        let p = Publication {
            version: self.version,
            cursor: self.cursor.clone(),
            etag: self.etag.clone(),
            jti: self
                .view
                .list
                .jti
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            subjects: self
                .view
                .list
                .subjects
                .iter()
                .map(|(k, (b, u))| (k.clone(), *b, *u))
                .collect(),
        };
        serde_json::to_vec(&p).unwrap_or_default()
    }

    /// The small record every worker reads each tick: list version, last
    /// successful poll, when the next poll is due.
    pub fn shared_state(&self) -> Vec<u8> {
        serde_json::to_vec(&SharedState {
            version: self.version,
            last_ok: self.view.last_ok,
            next_poll_at: self.next_poll_at,
            failures: self.failures,
        })
        .unwrap_or_default()
    }

    /// Takes in another worker's [`RemoteRevocations::shared_state`]: its
    /// last successful poll, next poll time and failure count (so that no
    /// worker waits for a first poll that failed elsewhere). Returns the
    /// published list version if it is newer than ours (then read and adopt
    /// the list).
    pub fn adopt_state(&mut self, bytes: &[u8], now: i64) -> Option<u64> {
        let s: SharedState = serde_json::from_slice(bytes).ok()?;
        if !self.in_flight() {
            self.failures = s.failures;
        }
        if let Some(t) = s.last_ok {
            // Never in the future: a record cannot make a list fresher than now.
            let t = t.min(now);
            self.view.last_ok = Some(self.view.last_ok.map_or(t, |o| o.max(t)));
        }
        let next = s
            .next_poll_at
            .min(now.saturating_add(self.feed.poll_interval_seconds));
        self.next_poll_at = self.next_poll_at.max(next);
        (s.version > self.version).then_some(s.version)
    }

    /// Adopts another worker's [`RemoteRevocations::publication`] if it is
    /// newer than ours; `Ok(true)` if adopted.
    pub fn adopt_publication(&mut self, bytes: &[u8], now: i64) -> Result<bool, FeedError> {
        let p: Publication =
            serde_json::from_slice(bytes).map_err(|e| FeedError::Invalid(e.to_string()))?;
        if p.version <= self.version {
            return Ok(false);
        }
        let mut list = RevocationList::default();
        for (jti, until) in p.jti {
            list.add_jti(jti, until);
        }
        for (sub, before, until) in p.subjects {
            list.add_subject(sub, before, until);
        }
        list.prune(now);
        if list.len() > self.capacity {
            return Err(FeedError::Overflow {
                entries: list.len(),
                max: self.capacity,
            });
        }
        self.view.list = list;
        self.cursor = p.cursor;
        self.etag = p.etag;
        self.version = p.version;
        Ok(true)
    }
}

/// Compiles a provider's `revocation` section (errors with their JSON path).
pub(crate) fn compile(
    at: &str,
    r: &RevocationConfig,
    clock_skew_seconds: i64,
    provider_max_lifetime: Option<u64>,
    errors: &mut Vec<ConfigError>,
) -> Option<Revocation> {
    let start = errors.len();
    let mut err = |path: String, why: String| {
        errors.push(ConfigError {
            path,
            problem: Problem::OutOfRange(why),
        });
    };
    let max_entries = r.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    if !(1..=MAX_MAX_ENTRIES).contains(&max_entries) {
        err(
            format!("{at}.max_entries"),
            format!("must be between 1 and {MAX_MAX_ENTRIES}"),
        );
    }
    let lifetime = r
        .max_token_lifetime_seconds
        .or(provider_max_lifetime)
        .unwrap_or(DEFAULT_MAX_TOKEN_LIFETIME_SECONDS);
    if !(1..=30 * 86_400).contains(&lifetime) {
        err(
            format!("{at}.max_token_lifetime_seconds"),
            "must be between 1 and 2592000".into(),
        );
    }
    let lifetime = i64::try_from(lifetime).unwrap_or(i64::MAX);
    let staleness = r
        .max_staleness_seconds
        .unwrap_or(DEFAULT_MAX_STALENESS_SECONDS);
    if !(1..=7 * 86_400).contains(&staleness) {
        err(
            format!("{at}.max_staleness_seconds"),
            "must be between 1 and 604800".into(),
        );
    }
    let remote = r.remote.as_ref().map(|rm| {
        let here = format!("{at}.remote");
        if rm.cluster.is_empty() {
            err(format!("{here}.cluster"), "must not be empty".into());
        }
        if rm.authority.is_empty() || !rm.authority.bytes().all(|b| b.is_ascii_graphic()) {
            err(
                format!("{here}.authority"),
                "must be a host name (and optional port)".into(),
            );
        }
        let path = rm.path.clone().unwrap_or_else(|| DEFAULT_PATH.to_owned());
        if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
            err(
                format!("{here}.path"),
                "must start with / and be printable ASCII".into(),
            );
        }
        let interval = rm
            .poll_interval_seconds
            .unwrap_or(DEFAULT_POLL_INTERVAL_SECONDS);
        if !(1..=3600).contains(&interval) {
            err(
                format!("{here}.poll_interval_seconds"),
                "must be between 1 and 3600".into(),
            );
        } else if interval > staleness {
            err(
                format!("{here}.poll_interval_seconds"),
                format!(
                    "must not exceed max_staleness_seconds ({staleness}), or the list is stale between polls"
                ),
            );
        }
        let timeout_ms = rm.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(100..=60_000).contains(&timeout_ms) {
            err(
                format!("{here}.timeout_ms"),
                "must be between 100 and 60000".into(),
            );
        }
        RemoteFeed {
            cluster: rm.cluster.clone(),
            authority: rm.authority.clone(),
            path,
            poll_interval_seconds: i64::try_from(interval).unwrap_or(i64::MAX),
            timeout_ms,
        }
    });
    let mut inline = RevocationList::default();
    for (j, e) in r.jti.iter().enumerate() {
        if !valid_id(&e.jti) {
            err(
                format!("{at}.jti[{j}].jti"),
                format!("must be 1 to {MAX_ID_BYTES} bytes"),
            );
        }
        // Inline without exp: as long as this configuration is in force.
        let until = e
            .exp
            .map_or(i64::MAX, |x| x.saturating_add(clock_skew_seconds));
        inline.add_jti(e.jti.clone(), until);
    }
    for (j, e) in r.subjects.iter().enumerate() {
        if !valid_id(&e.sub) {
            err(
                format!("{at}.subjects[{j}].sub"),
                format!("must be 1 to {MAX_ID_BYTES} bytes"),
            );
        }
        inline.add_subject(
            e.sub.clone(),
            e.revoked_before,
            subject_until(e.revoked_before, e.exp, lifetime, clock_skew_seconds),
        );
    }
    if inline.len() > max_entries {
        err(
            format!("{at}.jti"),
            format!(
                "{} inline entries exceed max_entries ({max_entries})",
                inline.len()
            ),
        );
    }
    if errors.len() > start {
        return None;
    }
    Some(Revocation {
        inline,
        remote,
        max_staleness_seconds: i64::try_from(staleness).unwrap_or(i64::MAX),
        on_stale: r.on_stale.map(|o| match o {
            OnStaleConfig::FailClosed => OnStale::FailClosed,
            OnStaleConfig::FailOpen => OnStale::FailOpen,
        }),
        max_entries,
        max_token_lifetime_seconds: lifetime,
        clock_skew_seconds,
    })
}
