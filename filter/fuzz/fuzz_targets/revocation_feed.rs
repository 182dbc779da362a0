//! The revocation feed: a poll answer (arbitrary status, ETag and body)
//! applied to a held list, as the wasm shim does (`RemoteRevocations::answered`).
//!
//! Invariants: never a panic; a refused answer leaves the held list, its
//! version, cursor and ETag exactly as they were (known revoked jti/sub
//! still revoked, lookups unchanged); an accepted one never holds more than
//! the cap (max_entries minus the inline entries); an incremental
//! (`complete: false`) update or a 304 never un-revokes an entry; what an
//! accepted poll publishes reads back identically on another worker;
//! `parse_feed` agrees with `answered` on what a 200 body is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_core::compile_json;
use scopegate_core::revocation::{Polled, RemoteRevocations, RevocationList, Revoked, parse_feed};
use serde_json::json;

const NOW: i64 = 1_767_225_600;
/// Cap 8, one inline entry: 7 fetched entries may be held.
const MAX_ENTRIES: usize = 8;

fn state() -> RemoteRevocations {
    static P: std::sync::OnceLock<scopegate_core::Policy> = std::sync::OnceLock::new();
    let p = P.get_or_init(|| {
        let mut c = scopegate_testkit::config(scopegate_testkit::default_rules());
        c["providers"][0]["revocation"] = json!({
            "remote": {"cluster": "auth", "authority": "auth.test"},
            "max_entries": MAX_ENTRIES,
            "jti": [{"jti": "inline-1"}],
        });
        compile_json(c.to_string().as_bytes()).expect("the fuzz policy compiles")
    });
    RemoteRevocations::new(p.providers()[0].revocation().expect("revocation"))
        .expect("a remote feed")
}

/// The held list before the fuzzed answer: two jti, two subjects, a cursor, an ETag.
const HELD: &str = r#"{"cursor": "c-1", "complete": true,
  "jti": [{"jti": "known-1", "exp": 1767312000}, {"jti": "known-2"}],
  "subjects": [{"sub": "alice", "revoked_before": 1767225000}, {"sub": "bob", "revoked_before": 1767225500, "exp": 1767312000}]}"#;

/// (jti, sub, iat) probes: the known entries, and tokens that are not revoked.
const PROBES: [(Option<&str>, Option<&str>, Option<i64>); 7] = [
    (Some("known-1"), None, None),
    (Some("known-2"), None, None),
    (None, Some("alice"), Some(1_767_224_000)),
    (None, Some("bob"), Some(1_767_225_000)),
    (None, Some("alice"), Some(NOW)),
    (Some("other"), Some("carol"), Some(NOW - 10)),
    (Some("inline-1"), None, None),
];

fn lookups(list: &RevocationList, now: i64) -> Vec<Option<Revoked>> {
    PROBES.iter().map(|(j, s, t)| list.lookup(*j, *s, *t, now)).collect()
}

fn apply(status: u16, etag: Option<&str>, body: &[u8], now: i64) {
    let mut r = state();
    let held = r.answered(NOW, 200, Some("\"v1\""), HELD.as_bytes());
    assert!(matches!(held, Ok(Polled::Updated { entries: 4, changed: true })), "{held:?}");
    let before = r.view().list().clone();
    let before_lookups = lookups(&before, now);
    let (version, cursor) = (r.version(), r.cursor().map(str::to_owned));
    let poll = r.next_poll(i64::MAX).expect("a poll is due at some point");
    assert_eq!(poll.if_none_match.as_deref(), Some("\"v1\""));
    assert_eq!(poll.path, "/revocations?since=c-1");
    r.started(now);

    let result = r.answered(now, status, etag, body);
    let after = r.view().list();
    assert!(!r.in_flight());
    match &result {
        Err(_) => {
            assert_eq!(after, &before, "a refused answer changed the list: {result:?}");
            assert_eq!(lookups(after, now), before_lookups);
            assert!(after.jti_until("known-1").is_some() && after.subject("alice").is_some());
            assert_eq!((r.version(), r.cursor().map(str::to_owned)), (version, cursor));
            assert_eq!(r.next_poll(i64::MAX).and_then(|p| p.if_none_match).as_deref(), Some("\"v1\""));
            assert_eq!(r.failures(), 1);
        }
        Ok(polled) => {
            assert!(status == 200 || status == 304, "status {status} accepted");
            assert_eq!(r.failures(), 0);
            assert!(after.len() <= MAX_ENTRIES - 1, "{} entries over the cap", after.len());
            if let Polled::Updated { entries, .. } = polled {
                assert_eq!(*entries, after.len());
            }
            let complete = parse_feed(body, r.max_body()).map(|f| f.complete);
            assert!(status == 304 || complete.is_ok(), "a 200 body accepted that parse_feed refuses");
            if status == 304 || complete == Ok(false) {
                // Nothing held may come back to life.
                for (was, now_) in before_lookups.iter().zip(lookups(after, now)) {
                    if was.is_some() {
                        assert!(now_.is_some(), "an incremental update un-revoked an entry");
                    }
                }
            }
            // Another worker adopts what this one publishes, exactly.
            let mut other = state();
            assert_eq!(other.adopt_publication(&r.publication(), now), Ok(true));
            assert_eq!(other.view().list(), after);
            assert_eq!(other.cursor(), r.cursor());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_feed(data, 4096);
    // The body as a 200 (later, and at the same time as the held list),
    // as a 304, and with a status and ETag taken from its first bytes.
    apply(200, None, data, NOW + 60);
    apply(200, Some("\"v2\""), data, NOW);
    apply(304, None, data, NOW + 60);
    let status = u16::from_le_bytes([
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
    ]);
    let etag = data.get(2..).and_then(|d| std::str::from_utf8(d.get(..d.len().min(40))?).ok());
    apply(status % 1000, etag, data, NOW + 1);
});
