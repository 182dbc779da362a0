//! The verified-token cache: a repeated valid token skips signature
//! verification and claim parsing.
//!
//! Clients reuse a token for minutes, so most requests carry a token already
//! verified. An entry holds the token itself and where it was found, the
//! principal it produced, and is used only while:
//! - the presented token is byte for byte the cached one (compared in full,
//!   in time that depends only on the lengths), found at the same places;
//! - the token is still within `exp` (+ skew) and past `nbf`/`iat` (− skew)
//!   at the caller's clock (checked on every hit);
//! - the key set that verified it is unchanged (the provider's key epoch: a
//!   fetched JWKS replacing the old one invalidates every entry of that
//!   provider).
//!
//! The map is indexed by a 64-bit multiplicative hash of the token's length,
//! its last 32 bytes (the end of its signature) and the places; a hash shared by two
//! tokens is only a miss (the comparison decides, never the hash), so no
//! token can be served another's principal, and a forged token that copies a
//! cached token's tail only costs itself a verification. A SHA-256 of the
//! token served as the key before: it cost a third of a hit in wasm32; then
//! a SipHash of the whole token. Tokens are the issuer's (only verified
//! tokens are stored), so the index needs no keyed hash: a collision, even a
//! contrived one, is a miss and a verification, never a wrong principal.
//!
//! The cache lives with one compiled policy (a new configuration starts an
//! empty cache), is bounded (oldest entries go first), and stores only
//! successes: a refused token is verified again each time, so no failure can
//! stick.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::principal::Principal;

/// Default bound on entries.
pub const DEFAULT_MAX_ENTRIES: usize = 4096;

/// Where a token goes in the map: a hash of the token and of where it was
/// found, and the two themselves for the comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key<'a> {
    hash: u64,
    token: &'a str,
    sources: &'a [usize],
    /// The compiled policy (its id) the principal was made under: its
    /// scopes are that policy's reading of the claims.
    policy: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    token: Box<str>,
    sources: Box<[usize]>,
    policy: u64,
    principal: Arc<Principal>,
    provider: usize,
    epoch: u64,
    /// Valid from (nbf/iat − skew) to (exp + skew), Unix seconds.
    from: i64,
    until: i64,
}

/// Equal bytes, in time that depends only on the lengths (no early exit on
/// the first difference).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // 32 bytes per step as four 64-bit words (wasm32 has 64-bit integers,
    // not a vectorised byte loop), then 8 at a time, then the rest. No early
    // exit: how long a guess matched a cached token must not show in time.
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c.get(..8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(w)
    };
    let (wa, wb) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ra, rb) = (wa.remainder(), wb.remainder());
    let mut acc = 0u64;
    for (x, y) in wa.zip(wb) {
        let (Some(x), Some(y)) = (x.first_chunk::<32>(), y.first_chunk::<32>()) else {
            return false;
        };
        let (x0, x1) = x.split_at(16);
        let (y0, y1) = y.split_at(16);
        acc |= (word(x0) ^ word(y0))
            | (word(x0.get(8..).unwrap_or(&[])) ^ word(y0.get(8..).unwrap_or(&[])))
            | (word(x1) ^ word(y1))
            | (word(x1.get(8..).unwrap_or(&[])) ^ word(y1.get(8..).unwrap_or(&[])));
    }
    let (wa, wb) = (ra.chunks_exact(8), rb.chunks_exact(8));
    let tail = wa
        .remainder()
        .iter()
        .zip(wb.remainder())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    for (x, y) in wa.zip(wb) {
        acc |= word(x) ^ word(y);
    }
    acc == 0 && tail == 0
}

impl Entry {
    fn holds(&self, key: &Key<'_>) -> bool {
        self.policy == key.policy
            && same_bytes(self.token.as_bytes(), key.token.as_bytes())
            && *self.sources == *key.sources
    }
}

/// The map's keys are already hashes: used as they are.
#[derive(Debug, Clone, Copy, Default)]
struct AsIs(u64);

impl Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for u64 keys (`write_u64`); a fold keeps it total.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A bounded map from token to verified principal.
#[derive(Debug, Clone)]
pub struct TokenCache {
    max_entries: usize,
    entries: HashMap<u64, Entry, BuildHasherDefault<AsIs>>,
    order: VecDeque<u64>,
    hits: u64,
    misses: u64,
}

impl TokenCache {
    pub fn new(max_entries: usize) -> TokenCache {
        TokenCache {
            max_entries,
            entries: HashMap::with_capacity_and_hasher(
                max_entries.min(DEFAULT_MAX_ENTRIES),
                BuildHasherDefault::default(),
            ),
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

    pub(crate) fn key<'a>(token: &'a str, sources: &'a [usize], policy: u64) -> Key<'a> {
        // A multiplicative hash of the token's length, its last 32 bytes
        // (its signature's end, which differs between any two tokens an
        // issuer signs) and the places: only an index, see the module doc.
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mix = |h: u64, w: u64| (h.rotate_left(23) ^ w).wrapping_mul(K);
        let bytes = token.as_bytes();
        let tail = bytes.get(bytes.len().saturating_sub(32)..).unwrap_or(bytes);
        let mut h = mix(0, token.len() as u64);
        for w in tail.chunks(8) {
            let mut word = [0u8; 8];
            for (d, s) in word.iter_mut().zip(w) {
                *d = *s;
            }
            h = mix(h, u64::from_le_bytes(word));
        }
        for s in sources {
            h = mix(h, *s as u64);
        }
        let h = h ^ (h >> 29);
        Key {
            hash: h,
            token,
            sources,
            policy,
        }
    }

    /// The principal for `key` if it is still valid at `now` with the
    /// provider's current key `epoch` (given by `epoch_of`).
    pub(crate) fn get(
        &mut self,
        key: &Key<'_>,
        now: i64,
        epoch_of: impl Fn(usize) -> u64,
    ) -> Option<Arc<Principal>> {
        let (hit, stale) = match self.entries.get(&key.hash) {
            Some(e) if e.holds(key) => {
                if e.from <= now && now <= e.until && e.epoch == epoch_of(e.provider) {
                    (Some(Arc::clone(&e.principal)), false)
                } else {
                    (None, true)
                }
            }
            // Another token's entry (or none): a miss that leaves it alone.
            _ => (None, false),
        };
        if hit.is_some() {
            self.hits = self.hits.saturating_add(1);
        } else {
            self.misses = self.misses.saturating_add(1);
        }
        if stale {
            // A stale entry is dropped at once; its slot in `order` goes when
            // it reaches the front.
            self.entries.remove(&key.hash);
        }
        hit
    }

    pub(crate) fn put(
        &mut self,
        key: &Key<'_>,
        principal: Arc<Principal>,
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
                key.hash,
                Entry {
                    token: key.token.into(),
                    sources: key.sources.into(),
                    policy: key.policy,
                    principal,
                    provider,
                    epoch,
                    from,
                    until,
                },
            )
            .is_none()
        {
            self.order.push_back(key.hash);
        }
    }

    /// Drops every entry (e.g. when revocation data changes).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn principal(sub: &str) -> Arc<Principal> {
        Arc::new(Principal {
            provider: "main".into(),
            issuer: "https://auth".into(),
            subject: Some(sub.into()),
            scopes: vec!["svc-a:orders:read".into()],
            claims: serde_json::Map::new(),
            memo: Default::default(),
        })
    }

    #[test]
    fn a_token_sharing_a_hash_with_a_cached_one_is_a_miss_and_leaves_it() {
        let mut c = TokenCache::new(8);
        let alice = TokenCache::key("aaa.bbb.ccc", &[0], 1);
        c.put(&alice, principal("alice"), 0, 0, 0, 100);
        // Forged: the same 64-bit hash, another token (or the same token
        // found elsewhere). The comparison decides, never the hash.
        for forged in [
            Key { token: "aaa.bbb.ccd", ..alice },
            Key { token: "aaa.bbb.cc", ..alice },
            Key { sources: &[1], ..alice },
        ] {
            assert!(c.get(&forged, 50, |_| 0).is_none());
        }
        let hit = c.get(&alice, 50, |_| 0).unwrap();
        assert_eq!(hit.subject.as_deref(), Some("alice"));
        assert_eq!(c.stats(), (1, 3));
    }

    #[test]
    fn hits_share_the_cached_principal_and_stale_entries_go() {
        let mut c = TokenCache::new(8);
        let k = TokenCache::key("t.o.k", &[0], 1);
        let p = principal("bob");
        c.put(&k, Arc::clone(&p), 0, 7, 10, 20);
        assert!(Arc::ptr_eq(&c.get(&k, 15, |_| 7).unwrap(), &p), "no copy per hit");
        assert!(c.get(&k, 15, |_| 8).is_none(), "another key epoch");
        assert_eq!(c.len(), 0, "dropped once stale");
        // An entry made under another compiled policy is not served, and
        // stays for its own policy.
        c.put(&k, Arc::clone(&p), 0, 7, 10, 20);
        let other_policy = TokenCache::key("t.o.k", &[0], 2);
        assert!(c.get(&other_policy, 15, |_| 7).is_none(), "another policy's entry");
        assert_eq!(c.len(), 1);
        assert!(c.get(&k, 15, |_| 7).is_some());
    }

    #[test]
    fn comparison_is_by_every_byte() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"ab"));
        assert!(same_bytes(b"", b""));
        // Every position of a long token, in the 8-byte words and in the rest.
        let t: Vec<u8> = (0..203u32).map(|i| b'A' + (i % 26) as u8).collect();
        assert!(same_bytes(&t, &t.clone()));
        for i in 0..t.len() {
            let mut u = t.clone();
            u[i] ^= 1;
            assert!(!same_bytes(&t, &u), "byte {i}");
        }
        // Around each step size: every byte, high bit and low bit.
        for len in [1, 7, 8, 9, 31, 32, 33, 40, 63, 64, 65, 71] {
            let t: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert!(same_bytes(&t, &t.clone()), "len {len}");
            for i in 0..len {
                for bit in [0x01, 0x80] {
                    let mut u = t.clone();
                    u[i] ^= bit;
                    assert!(!same_bytes(&t, &u), "len {len} byte {i} bit {bit:#x}");
                }
            }
        }
    }

    #[test]
    fn tokens_sharing_a_tail_share_an_index_slot_but_not_a_principal() {
        // The index hashes the length and the last 32 bytes: two tokens alike
        // there collide, and the comparison still tells them apart.
        let tail = "x".repeat(32);
        let (a, b) = (format!("aaaa.b.{tail}"), format!("bbbb.b.{tail}"));
        let (ka, kb) = (TokenCache::key(&a, &[0], 1), TokenCache::key(&b, &[0], 1));
        assert_eq!(ka.hash, kb.hash);
        let mut c = TokenCache::new(8);
        c.put(&ka, principal("alice"), 0, 7, 10, 20);
        assert!(c.get(&kb, 15, |_| 7).is_none(), "another token's entry");
        assert_eq!(c.get(&ka, 15, |_| 7).unwrap().subject.as_deref(), Some("alice"));
        // A different length or place is another slot.
        assert_ne!(TokenCache::key(&format!("a{a}"), &[0], 1).hash, ka.hash);
        assert_ne!(TokenCache::key(&a, &[1], 1).hash, ka.hash);
    }
}
