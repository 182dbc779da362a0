//! Server state that changes: opaque tokens and the revocation list.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// An opaque token's record, keyed by the SHA-256 of the token (never the token).
#[derive(Debug, Clone)]
pub struct OpaqueRecord {
    pub claims: Map<String, Value>,
    pub exp: i64,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JtiEntry {
    pub seq: u64,
    pub jti: String,
    pub exp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectEntry {
    pub seq: u64,
    pub sub: String,
    pub revoked_before: i64,
    pub exp: i64,
}

/// The revocation list behind `GET /revocations` (filter/PROTOCOLS.md).
///
/// Every change gets a sequence number; the cursor is `<epoch>.<seq>`, where
/// the epoch is random per server start, so a cursor from before a restart (or
/// from another server) is not mistaken for a position in this list: it gets
/// the complete list. Entries are dropped `retention` seconds after they
/// expire.
#[derive(Debug)]
pub struct Revocations {
    epoch: String,
    seq: u64,
    /// Bumped when entries are dropped: part of the ETag (the full list changed).
    drops: u64,
    retention: i64,
    jti: Vec<JtiEntry>,
    subjects: Vec<SubjectEntry>,
}

/// What `GET /revocations` answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Feed {
    NotModified { etag: String },
    Document { etag: String, body: Value },
}

impl Revocations {
    pub fn new(epoch: String, retention_seconds: u64) -> Self {
        Revocations {
            epoch,
            seq: 0,
            drops: 0,
            retention: i64::try_from(retention_seconds).unwrap_or(i64::MAX),
            jti: Vec::new(),
            subjects: Vec::new(),
        }
    }

    pub fn cursor(&self) -> String {
        format!("{}.{}", self.epoch, self.seq)
    }

    pub fn etag(&self) -> String {
        format!("\"{}.{}.{}\"", self.epoch, self.seq, self.drops)
    }

    /// Revoke one token. Revoking it again keeps the first entry (nothing changes).
    pub fn revoke_jti(&mut self, jti: &str, exp: i64) {
        if self.jti.iter().any(|e| e.jti == jti) {
            return;
        }
        self.seq += 1;
        self.jti.push(JtiEntry {
            seq: self.seq,
            jti: jti.to_owned(),
            exp,
        });
    }

    /// Revoke every token of `sub` issued before `revoked_before`. A later
    /// logout of the same subject replaces the entry (a feed reader merging an
    /// incremental document gets the new entry, which supersedes the old one).
    pub fn revoke_subject(&mut self, sub: &str, revoked_before: i64, exp: i64) {
        if let Some(e) = self.subjects.iter().find(|e| e.sub == sub)
            && e.revoked_before >= revoked_before
            && e.exp >= exp
        {
            return;
        }
        self.subjects.retain(|e| e.sub != sub);
        self.seq += 1;
        self.subjects.push(SubjectEntry {
            seq: self.seq,
            sub: sub.to_owned(),
            revoked_before,
            exp,
        });
    }

    pub fn is_jti_revoked(&self, jti: &str) -> bool {
        self.jti.iter().any(|e| e.jti == jti)
    }

    /// The `revoked_before` of `sub`, if it logged out.
    pub fn subject_revoked_before(&self, sub: &str) -> Option<i64> {
        self.subjects
            .iter()
            .find(|e| e.sub == sub)
            .map(|e| e.revoked_before)
    }

    /// Drop entries whose tokens are dead (`exp + retention` passed).
    pub fn expire(&mut self, now: i64) {
        let keep = |exp: i64| exp.saturating_add(self.retention) >= now;
        let before = self.jti.len() + self.subjects.len();
        let (jti, subjects) = (
            std::mem::take(&mut self.jti),
            std::mem::take(&mut self.subjects),
        );
        self.jti = jti.into_iter().filter(|e| keep(e.exp)).collect();
        self.subjects = subjects.into_iter().filter(|e| keep(e.exp)).collect();
        if self.jti.len() + self.subjects.len() != before {
            self.drops += 1;
        }
    }

    /// The position a `since` cursor names in this list, if it is one of ours.
    fn position(&self, since: &str) -> Option<u64> {
        let (epoch, seq) = since.split_once('.')?;
        let seq: u64 = seq.parse().ok()?;
        (epoch == self.epoch && seq <= self.seq).then_some(seq)
    }

    /// The reply to `GET /revocations[?since=C]` with `If-None-Match` values.
    pub fn feed(&mut self, now: i64, since: Option<&str>, if_none_match: &[&str]) -> Feed {
        self.expire(now);
        let etag = self.etag();
        if if_none_match.iter().any(|t| etag_matches(t, &etag)) {
            return Feed::NotModified { etag };
        }
        let from = since.and_then(|s| self.position(s));
        let after = from.unwrap_or(0);
        let jti: Vec<Value> = self
            .jti
            .iter()
            .filter(|e| e.seq > after)
            .map(|e| json!({"jti": e.jti, "exp": e.exp}))
            .collect();
        let subjects: Vec<Value> = self
            .subjects
            .iter()
            .filter(|e| e.seq > after)
            .map(|e| json!({"sub": e.sub, "revoked_before": e.revoked_before, "exp": e.exp}))
            .collect();
        let body = json!({
            "cursor": self.cursor(),
            "complete": from.is_none(),
            "jti": jti,
            "subjects": subjects,
        });
        Feed::Document { etag, body }
    }
}

/// One `If-None-Match` list member against our (strong) ETag; weak comparison
/// (RFC 9110 13.1.2), `*` matches.
fn etag_matches(candidate: &str, etag: &str) -> bool {
    let c = candidate.trim();
    c == "*" || c.strip_prefix("W/").unwrap_or(c) == etag
}

/// Opaque tokens issued by this server.
#[derive(Debug, Default)]
pub struct OpaqueTokens {
    by_hash: HashMap<[u8; 32], OpaqueRecord>,
}

impl OpaqueTokens {
    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    pub fn insert(&mut self, token: &str, claims: Map<String, Value>, exp: i64) {
        self.by_hash.insert(
            Self::key(token),
            OpaqueRecord {
                claims,
                exp,
                revoked: false,
            },
        );
    }

    pub fn get(&self, token: &str) -> Option<&OpaqueRecord> {
        self.by_hash.get(&Self::key(token))
    }

    pub fn revoke(&mut self, token: &str) -> bool {
        match self.by_hash.get_mut(&Self::key(token)) {
            Some(r) => {
                r.revoked = true;
                true
            }
            None => false,
        }
    }

    /// Forget expired tokens.
    pub fn expire(&mut self, now: i64) {
        self.by_hash.retain(|_, r| r.exp >= now);
    }
}
