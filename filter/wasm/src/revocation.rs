//! Revocation feed I/O: polls, shared data between workers, logs.
//!
//! The rules (when to poll, what to send, merge, cap, staleness) live in
//! `scopegate_core::revocation`; this file performs them:
//! - the root context's tick polls each provider's feed through its cluster
//!   when due, with `since=<cursor>` and `If-None-Match` once a list is held;
//! - one worker polls at a time (a lease in shared data, as for JWKS), and
//!   publishes what it got for the others: the list under
//!   `scopegate.revocations.<provider>` (compact JSON with a version) and a
//!   small record under `scopegate.revocations-state.<provider>` (version,
//!   last successful poll, next poll time) that every worker reads on each
//!   tick, reading the list only when its version is newer than its own;
//! - so a revocation is enforced on every worker within one poll interval
//!   plus one tick.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};
use scopegate_core::Policy;
use scopegate_core::revocation::{
    FeedError, Freshness, Polled, RemoteRevocations, Revocation, RevocationView,
};

use crate::log;
use crate::metrics::{Metrics, Poll};
use crate::remote::{release_lease_at, take_lease_at};

fn list_key(name: &str) -> String {
    format!("scopegate.revocations.{name}")
}

fn state_key(name: &str) -> String {
    format!("scopegate.revocations-state.{name}")
}

fn lease_key(name: &str) -> String {
    format!("scopegate.revocations-lease.{name}")
}

/// One provider's feed in this worker.
struct Feed {
    state: RemoteRevocations,
    settings: Revocation,
    name: String,
    /// CAS of the state record last read (or written) here.
    seen_cas: Option<u32>,
    /// Token of the poll in flight.
    call: Option<u32>,
    /// Freshness last logged.
    reported: Freshness,
}

/// Every provider's feed (index = provider index).
pub struct Revocations {
    feeds: Vec<Option<Feed>>,
}

impl Revocations {
    pub fn new(policy: &Policy) -> Revocations {
        Revocations {
            feeds: policy
                .providers()
                .iter()
                .map(|p| {
                    let settings = p.revocation()?;
                    Some(Feed {
                        state: RemoteRevocations::new(settings)?,
                        settings: settings.clone(),
                        name: p.name().to_owned(),
                        seen_cas: None,
                        call: None,
                        reported: Freshness::NeverPolled,
                    })
                })
                .collect(),
        }
    }

    /// Whether any provider polls a feed (then the root ticks).
    pub fn any(&self) -> bool {
        self.feeds.iter().any(Option::is_some)
    }

    fn feed(&self, i: usize) -> Option<&Feed> {
        self.feeds.get(i).and_then(Option::as_ref)
    }

    /// What the decision sees for provider `i`.
    pub fn view(&self, i: usize) -> Option<&RevocationView> {
        self.feed(i).map(|f| f.state.view())
    }

    pub fn timeout_ms(&self, i: usize) -> Option<u64> {
        self.feed(i).map(|f| f.state.feed().timeout_ms)
    }

    /// A request may wait for provider `i`'s first poll while it has not
    /// failed yet (or one is under way); after that, stale rules apply at once.
    pub fn may_wait(&self, i: usize) -> bool {
        self.feed(i).is_some_and(Feed::may_wait)
    }

    /// Adopts what other workers published, prunes, starts due polls, logs
    /// staleness changes. Returns the providers whose list became available
    /// (paused requests can be decided).
    pub fn tick(&mut self, metrics: &Metrics, now: i64) -> Vec<usize> {
        let mut changed = Vec::new();
        for (i, slot) in self.feeds.iter_mut().enumerate() {
            let Some(f) = slot else { continue };
            let waiting = f.may_wait();
            f.adopt(metrics, i, now);
            if f.state.prune(now) > 0 {
                metrics.revocation_entries(i, f.state.view().list().len());
            }
            f.start_poll(metrics, i, now);
            f.report(now);
            // The first poll ended (here or on another worker): paused
            // requests can be decided.
            if waiting && !f.may_wait() {
                changed.push(i);
            }
        }
        changed
    }

    /// Handles a callout answer; `Some(provider)` if it was one of our polls.
    pub fn answered(
        &mut self,
        metrics: &Metrics,
        token: u32,
        body_size: usize,
        now: i64,
    ) -> Option<usize> {
        let (i, f) = self
            .feeds
            .iter_mut()
            .enumerate()
            .find_map(|(i, f)| f.as_mut().filter(|f| f.call == Some(token)).map(|f| (i, f)))?;
        f.call = None;
        f.answered(metrics, i, body_size, now);
        f.report(now);
        Some(i)
    }
}

fn response_header(name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok())
}

impl Feed {
    fn may_wait(&self) -> bool {
        self.state.view().last_ok().is_none()
            && (self.state.failures() == 0 || self.state.in_flight())
    }

    /// Reads the shared state record; adopts a newer list.
    fn adopt(&mut self, metrics: &Metrics, i: usize, now: i64) {
        let Ok((Some(bytes), cas)) = hostcalls::get_shared_data(&state_key(&self.name)) else {
            return;
        };
        if cas.is_some() && cas == self.seen_cas {
            return;
        }
        self.seen_cas = cas;
        if self.state.adopt_state(&bytes, now).is_none() {
            return;
        }
        let Ok((Some(list), _)) = hostcalls::get_shared_data(&list_key(&self.name)) else {
            return;
        };
        match self.state.adopt_publication(&list, now) {
            Ok(true) => {
                metrics.revocation_entries(i, self.state.view().list().len());
                log(
                    LogLevel::Info,
                    &format!(
                        "scopegate: provider {}: adopted revocation list version {} ({} entries) polled by another worker",
                        self.name,
                        self.state.version(),
                        self.state.view().list().len()
                    ),
                );
            }
            Ok(false) => {}
            Err(e) => log(
                LogLevel::Warn,
                &format!(
                    "scopegate: provider {}: cannot adopt the published revocation list: {e}",
                    self.name
                ),
            ),
        }
    }

    fn start_poll(&mut self, metrics: &Metrics, i: usize, now: i64) {
        let Some(poll) = self.state.next_poll(now) else {
            return;
        };
        let feed = self.state.feed().clone();
        if !take_lease_at(&lease_key(&self.name), now, feed.timeout_ms) {
            return;
        }
        let mut headers = vec![
            (":method", "GET"),
            (":path", poll.path.as_str()),
            (":authority", feed.authority.as_str()),
            ("accept", "application/json"),
        ];
        if let Some(etag) = &poll.if_none_match {
            headers.push(("if-none-match", etag.as_str()));
        }
        match hostcalls::dispatch_http_call(
            &feed.cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(feed.timeout_ms),
        ) {
            Ok(token) => {
                self.state.started(now);
                self.call = Some(token);
            }
            Err(status) => {
                self.state.failed(now);
                self.failed(
                    metrics,
                    i,
                    &FeedError::Dispatch(format!("cluster {}: {status:?}", feed.cluster)),
                );
                self.publish(false);
                release_lease_at(&lease_key(&self.name));
            }
        }
    }

    fn answered(&mut self, metrics: &Metrics, i: usize, body_size: usize, now: i64) {
        self.handle_answer(metrics, i, body_size, now);
        // After publishing: the next poller sees this poll's schedule.
        release_lease_at(&lease_key(&self.name));
    }

    fn handle_answer(&mut self, metrics: &Metrics, i: usize, body_size: usize, now: i64) {
        let status = response_header(":status")
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let limit = self.state.max_body();
        let result = if body_size > limit {
            // Not even read: refused as a failed poll.
            self.state.failed(now);
            Err(FeedError::TooLarge {
                bytes: body_size,
                limit,
            })
        } else {
            let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default();
            let etag = response_header("etag");
            self.state.answered(now, status, etag.as_deref(), &body)
        };
        match result {
            Ok(Polled::NotModified) => {
                metrics.revocation_poll(i, Poll::NotModified);
                self.publish(false);
            }
            Ok(Polled::Updated { entries, changed }) => {
                metrics.revocation_poll(i, Poll::Ok);
                metrics.revocation_entries(i, entries);
                if changed {
                    log(
                        LogLevel::Info,
                        &format!(
                            "scopegate: provider {}: revocation list version {}: {entries} entries",
                            self.name,
                            self.state.version()
                        ),
                    );
                }
                self.publish(changed);
            }
            Err(e) => {
                self.failed(metrics, i, &e);
                self.publish(false);
            }
        }
    }

    fn failed(&self, metrics: &Metrics, i: usize, e: &FeedError) {
        metrics.revocation_poll(
            i,
            if matches!(e, FeedError::Overflow { .. }) {
                Poll::Overflow
            } else {
                Poll::Failed
            },
        );
        log(
            LogLevel::Warn,
            &format!(
                "scopegate: provider {}: revocation poll failed: {e}; keeping the {} entries held",
                self.name,
                self.state.view().list().len()
            ),
        );
    }

    /// Publishes the list (when it changed) and the state record.
    fn publish(&mut self, list: bool) {
        if list
            && let Err(status) = hostcalls::set_shared_data(
                &list_key(&self.name),
                Some(&self.state.publication()),
                None,
            )
        {
            log(
                LogLevel::Warn,
                &format!(
                    "scopegate: provider {}: cannot publish the revocation list to other workers: {status:?}",
                    self.name
                ),
            );
        }
        let key = state_key(&self.name);
        let _ = hostcalls::set_shared_data(&key, Some(&self.state.shared_state()), None);
        // Our own record need not be adopted again.
        if let Ok((_, cas)) = hostcalls::get_shared_data(&key) {
            self.seen_cas = cas;
        }
    }

    /// Logs a change of freshness (this worker's view).
    fn report(&mut self, now: i64) {
        let freshness = self.settings.freshness(Some(self.state.view()), now);
        if freshness == self.reported {
            return;
        }
        let was = self.reported;
        self.reported = freshness;
        match freshness {
            Freshness::Stale => log(
                LogLevel::Warn,
                &format!(
                    "scopegate: provider {}: revocation list is stale: no successful poll for {}s (max_staleness_seconds {}); {}",
                    self.name,
                    self.state
                        .view()
                        .last_ok()
                        .map_or(0, |t| now.saturating_sub(t)),
                    self.settings.max_staleness_seconds(),
                    match self.settings.on_stale() {
                        Some(scopegate_core::revocation::OnStale::FailClosed) => {
                            "refusing its tokens (fail_closed)"
                        }
                        _ => "allowing its tokens except on sensitive rules (fail_open)",
                    }
                ),
            ),
            Freshness::Fresh => log(
                LogLevel::Info,
                &format!(
                    "scopegate: provider {}: revocation list is fresh{} ({} entries)",
                    self.name,
                    if was == Freshness::Stale {
                        " again"
                    } else {
                        ""
                    },
                    self.state.view().list().len()
                ),
            ),
            Freshness::NeverPolled => {}
        }
    }
}
