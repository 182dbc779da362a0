//! EdDSA (Ed25519) verification with a precomputed table for each public key.
//!
//! ed25519-dalek's `VerifyingKey::verify` computes `R' = [k](−A) + [s]B` with
//! curve25519-dalek's `vartime_double_scalar_mul_basepoint`: a width-5 NAF
//! of `k` over a table of `−A` built on every call, a width-8 NAF of `s` over
//! the static basepoint table, and one doubling per bit (~253). A public key
//! lives for hours and verifies millions of tokens, so here `−A` gets what
//! the basepoint already has: a radix-16 fixed-base table (curve25519-dalek's
//! `EdwardsBasepointTable::create`, 32 × 8 affine Niels points, 30 KiB), built
//! on the key's first use and shared by its clones ([`Arc`]). Both
//! multiplications are then fixed-base ones (`mul_base`: 64 additions and 4
//! doublings each) and no doubling chain is left. (`mul_base` selects its
//! table entries in constant time, which a verifier does not need; it is
//! still far cheaper than the doublings it replaces.)
//!
//! The equation and the checks are ed25519-dalek 2.2's `verify` (the one
//! jwt-compact's `Ed25519` calls), step for step (RFC 8032 §5.1.7 without the
//! cofactor, as there):
//!
//! - the signature is 64 octets `R ‖ S`; `S` must be canonical (below the group
//!   order ℓ: `Scalar::from_canonical_bytes`), which refuses `S + ℓ`
//!   malleability;
//! - `k = SHA-512(R ‖ A ‖ M) mod ℓ`, with `A` the key's 32 octets as given;
//! - accepted iff the encoding of `[k](−A) + [S]B` is the 32 octets `R`
//!   (`R` itself is never decompressed, as there; a non-canonical `R`
//!   encoding never matches, since compression is canonical).
//!
//! The result is the same group element as ed25519-dalek's, so the verdict is
//! the same for every input; `filter/core/tests/ed_fast.rs` checks that
//! against ed25519-dalek on RFC 8032 vectors, random keys and messages and
//! mutated signatures.

use std::fmt;
use std::sync::{Arc, OnceLock};

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::EdwardsBasepointTable;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::BasepointTable;
use sha2::{Digest, Sha512};

/// Octets of one key's table: 32 lookup tables of 8 affine Niels points.
pub const TABLE_BYTES: usize = core::mem::size_of::<EdwardsBasepointTable>();

/// An Ed25519 public key with its lazily built table of `−A`.
#[derive(Clone)]
pub struct EdKey {
    key: ed25519_dalek::VerifyingKey,
    table: Arc<OnceLock<Box<EdwardsBasepointTable>>>,
}

impl fmt::Debug for EdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdKey")
            .field("key", &self.key)
            .field("table_built", &self.is_precomputed())
            .finish()
    }
}

impl From<ed25519_dalek::VerifyingKey> for EdKey {
    fn from(key: ed25519_dalek::VerifyingKey) -> EdKey {
        EdKey {
            key,
            table: Arc::new(OnceLock::new()),
        }
    }
}

impl EdKey {
    /// The key as ed25519-dalek holds it (decompressed and checked at load).
    pub fn verifying_key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.key
    }

    /// Whether the table has been built.
    pub fn is_precomputed(&self) -> bool {
        self.table.get().is_some()
    }

    fn table(&self) -> &EdwardsBasepointTable {
        self.table
            .get_or_init(|| Box::new(EdwardsBasepointTable::create(&-self.key.to_edwards())))
    }

    /// Ed25519 verification of the 64-octet `sig` over `message`: ed25519-dalek's
    /// `verify` verdict (see the module's documentation). Any other length is
    /// refused.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <&[u8; 64]>::try_from(sig) else {
            return false;
        };
        let (r, s) = sig.split_at(32);
        let Ok(s) = <[u8; 32]>::try_from(s) else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
            return false;
        };
        let mut h = Sha512::new();
        h.update(r);
        h.update(self.key.as_bytes());
        h.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        // Both scalars are below ℓ < 2^253, as `mul_base`'s radix-16 recoding needs.
        let expected = self.table().mul_base(&k) + ED25519_BASEPOINT_TABLE.mul_base(&s);
        expected.compress().as_bytes() == r
    }
}
