//! The verified-token cache: a repeated valid token skips signature
//! verification and claim parsing.
//!
//! Clients reuse a token for minutes, so most requests carry a token already
//! verified. An entry is keyed by the SHA-256 of the token and of where it was
//! found (never the token itself), holds the principal it produced, and is
//! used only while:
//! - the token is still within `exp` (+ skew) and past `nbf`/`iat` (− skew)
//!   at the caller's clock (checked on every hit);
//! - the key set that verified it is unchanged (the provider's key epoch: a
//!   fetched JWKS replacing the old one invalidates every entry of that
//!   provider).
//!
//! The cache lives with one compiled policy (a new configuration starts an
//! empty cache), is bounded (oldest entries go first), and stores only
//! successes: a refused token is verified again each time, so no failure can
//! stick.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// Default bound on entries.
pub const DEFAULT_MAX_ENTRIES: usize = 4096;

type Key = [u8; 32];

#[derive(Debug, Clone)]
struct Entry {
    principal: Principal,
    provider: usize,
    epoch: u64,
    /// Valid from (nbf/iat − skew) to (exp + skew), Unix seconds.
    from: i64,
    until: i64,
}

/// A bounded map from token digest to verified principal.
#[derive(Debug, Clone)]
pub struct TokenCache {
    max_entries: usize,
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    hits: u64,
    misses: u64,
}

impl TokenCache {
    pub fn new(max_entries: usize) -> TokenCache {
        TokenCache {
            max_entries,
            entries: HashMap::with_capacity(max_entries.min(DEFAULT_MAX_ENTRIES)),
            order: VecDeque::with_capacity(max_entries.min(DEFAULT_MAX_ENTRIES)),
            hits: 0,
            misses: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    pub(crate) fn key(token: &str, sources: &[usize]) -> Key {
        let mut h = Sha256::new();
        h.update(token.as_bytes());
        for s in sources {
            h.update(u32::try_from(*s).unwrap_or(u32::MAX).to_le_bytes());
        }
        h.finalize().into()
    }

    /// The principal for `key` if it is still valid at `now` with the
    /// provider's current key `epoch` (given by `epoch_of`).
    pub(crate) fn get(
        &mut self,
        key: &Key,
        now: i64,
        epoch_of: impl Fn(usize) -> u64,
    ) -> Option<Principal> {
        let hit = self
            .entries
            .get(key)
            .filter(|e| e.from <= now && now <= e.until && e.epoch == epoch_of(e.provider))
            .map(|e| e.principal.clone());
        if hit.is_some() {
            self.hits = self.hits.saturating_add(1);
        } else {
            self.misses = self.misses.saturating_add(1);
            // A stale entry is dropped at once; its slot in `order` goes when
            // it reaches the front.
            self.entries.remove(key);
        }
        hit
    }

    pub(crate) fn put(
        &mut self,
        key: Key,
        principal: Principal,
        provider: usize,
        epoch: u64,
        from: i64,
        until: i64,
    ) {
        if self.max_entries == 0 || until < from {
            return;
        }
        while self.entries.len() >= self.max_entries
            || self.order.len() >= self.max_entries.saturating_mul(2)
        {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        if self
            .entries
            .insert(
                key,
                Entry {
                    principal,
                    provider,
                    epoch,
                    from,
                    until,
                },
            )
            .is_none()
        {
            self.order.push_back(key);
        }
    }

    /// Drops every entry (e.g. when revocation data changes).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}
