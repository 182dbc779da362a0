//! Fast ECDSA verification (ES256, ES384, ES512) with precomputed comb tables.
//!
//! The curve crates' own verifier (`ecdsa::hazmat::verify_prehashed`) computes
//! `u1·G + u2·Q` as two constant-time 4-bit-window scalar multiplications
//! (primeorder's default `lincomb`): per scalar, one doubling per bit and a
//! constant-time scan of a 16-entry table per window, and the table of `Q` is
//! rebuilt on every call. Everything a verifier handles is public (key,
//! message, signature), so constant time buys nothing here. This module keeps
//! the crates' field, scalar and group arithmetic (complete projective
//! formulas, so no special cases) and changes only the scalar-multiplication
//! strategy:
//!
//! - a fixed-base **comb** (Lim–Lee) table with `TEETH` teeth for each point:
//!   entry `b` (a `TEETH`-bit mask) is `Σ_{k ∈ b} 2^(k·D)·P`,
//!   `D = ⌈bits(n) / TEETH⌉`; `2^TEETH − 1` points per table, kept in
//!   projective form: the crates expose no batch inversion for these curves
//!   (their field elements lack the `Invert` bound primeorder's
//!   `BatchNormalize` needs), and a complete projective addition costs only
//!   one field multiplication more than a mixed one, while normalizing each
//!   entry alone would cost an inversion per entry;
//! - one table for the generator `G`, built once per VM on first use
//!   ([`OnceLock`]), and one for each public key `Q`, built on the key's first
//!   use and shared by its clones ([`Arc`]);
//! - `u1·G + u2·Q` evaluated column by column with the doublings shared by the
//!   two scalars: `D` doublings and at most `2·D` additions (P-256: 32 and
//!   64, against the crates' ~512 doublings and ~128 additions).
//!
//! The verification equation is exactly ECDSA's (FIPS 186-5 §6.4.2, SEC1
//! §4.1.4), with the same steps as the `ecdsa` crate: `r`, `s` in `[1, n−1]`
//! (guaranteed by [`ecdsa::Signature`], which refuses anything else: the
//! CVE-2022-21449 defence), `e` = the curve's SHA-2 of the message through
//! `bits2field` and `Reduce`, `w = s⁻¹`, `u1 = e·w`, `u2 = r·w`,
//! `R = u1·G + u2·Q`, the identity refused, accepted iff `x(R) mod n = r`.
//! High-S signatures are accepted, as the crates accept them.
//!
//! Memory: a table is `2^TEETH − 1` projective points; see [`table_bytes`].
//! Building one costs about `bits(n)` doublings and `2^TEETH` additions (no
//! inversion), a few verifications' worth.

use std::fmt;
use std::sync::{Arc, OnceLock};

use ecdsa::Signature;
use ecdsa::hazmat::bits2field;
#[allow(deprecated)] // generic-array 0.14, as the curve crates use it
use elliptic_curve::generic_array::ArrayLength;
use elliptic_curve::ops::{Invert, Reduce};
use elliptic_curve::{FieldBytes, Group, PrimeField};
use primeorder::{AffinePoint, PrimeCurveParams, ProjectivePoint};
use sha2::Digest;

/// A curve this module verifies on: its hash, its order's bit length and the
/// comb parameters, and its generator table.
pub trait FastCurve: PrimeCurveParams + ecdsa::PrimeCurve + Sized {
    /// The JWS hash for the curve (RFC 7518 §3.4).
    type Hash: Digest;
    /// Bit length of the group order `n`.
    const ORDER_BITS: usize;
    /// Comb teeth: a table holds `2^TEETH − 1` points.
    const TEETH: usize;
    /// The generator's comb table (built once, on first use); `None` only if
    /// building it failed, which cannot happen for a valid curve.
    fn generator_table() -> Option<&'static Comb<Self>>;
}

/// Comb spacing: the number of columns (and of doublings per verification).
const fn spacing<C: FastCurve>() -> usize {
    C::ORDER_BITS.div_ceil(C::TEETH)
}

/// Heap bytes of one comb table of the curve (the per-key and the per-VM cost).
pub const fn table_bytes<C: FastCurve>() -> usize {
    ((1 << C::TEETH) - 1) * std::mem::size_of::<ProjectivePoint<C>>()
}

/// A comb table of one point: entry `b − 1` is `Σ_{k: bit k of b} 2^(k·D)·P`.
pub struct Comb<C: FastCurve> {
    entries: Vec<ProjectivePoint<C>>,
}

impl<C: FastCurve> Comb<C> {
    /// Builds the table of `p`. Every entry is `c·P` with `0 < c < n` (the
    /// comb's largest multiple is `Σ 2^(k·D) < 2^((TEETH−1)·D + 1) ≤ n`), so
    /// never the identity for a key or `G`; and since the entries stay
    /// projective and the additions are complete, an identity entry would
    /// still give the right sums. (No per-entry identity check: primeorder's
    /// `is_identity` on a projective point costs a field inversion.)
    /// `None` only on an internal indexing inconsistency.
    pub fn new(p: &ProjectivePoint<C>) -> Option<Comb<C>> {
        let d = spacing::<C>();
        let mut teeth = Vec::with_capacity(C::TEETH);
        let mut t = *p;
        for k in 0..C::TEETH {
            teeth.push(t);
            if k + 1 < C::TEETH {
                for _ in 0..d {
                    t = t.double();
                }
            }
        }
        let size = (1usize << C::TEETH) - 1;
        let mut proj: Vec<ProjectivePoint<C>> = Vec::with_capacity(size);
        for b in 1..=size {
            let top = usize::BITS - 1 - b.leading_zeros();
            let tooth = teeth.get(top as usize)?;
            let rest = b ^ (1 << top);
            let point = if rest == 0 {
                *tooth
            } else {
                *proj.get(rest - 1)? + tooth
            };
            proj.push(point);
        }
        (proj.len() == size).then_some(Comb { entries: proj })
    }

    fn entry(&self, index: usize) -> Option<&ProjectivePoint<C>> {
        index.checked_sub(1).and_then(|i| self.entries.get(i))
    }
}

/// Bit `pos` of a big-endian scalar encoding (0 past its end).
fn bit(be: &[u8], pos: usize) -> usize {
    let byte = pos / 8;
    be.len()
        .checked_sub(1 + byte)
        .and_then(|i| be.get(i))
        .map_or(0, |b| usize::from((b >> (pos % 8)) & 1))
}

/// Column `i` of a scalar's comb: bits `i + k·D` for `k` in `0..TEETH`.
fn column<C: FastCurve>(be: &[u8], i: usize) -> usize {
    let d = spacing::<C>();
    (0..C::TEETH).fold(0, |acc, k| acc | (bit(be, i + k * d) << k))
}

/// `a·A + b·B` from the two points' comb tables, variable time.
/// `None` only on an internal inconsistency (a column past the table).
fn comb2<C: FastCurve>(
    ta: &Comb<C>,
    a: &C::Scalar,
    tb: &Comb<C>,
    b: &C::Scalar,
) -> Option<ProjectivePoint<C>> {
    let (a, b) = (a.to_repr(), b.to_repr());
    let mut acc = ProjectivePoint::<C>::IDENTITY;
    for i in (0..spacing::<C>()).rev() {
        acc = acc.double();
        let ia = column::<C>(&a, i);
        if ia != 0 {
            acc += ta.entry(ia)?;
        }
        let ib = column::<C>(&b, i);
        if ib != 0 {
            acc += tb.entry(ib)?;
        }
    }
    Some(acc)
}

/// A public key for fast verification: the point, and its comb table, built
/// on first use and shared by clones.
pub struct EcKey<C: FastCurve> {
    point: AffinePoint<C>,
    table: Arc<OnceLock<Option<Comb<C>>>>,
}

impl<C: FastCurve> Clone for EcKey<C> {
    fn clone(&self) -> Self {
        EcKey {
            point: self.point,
            table: Arc::clone(&self.table),
        }
    }
}

impl<C: FastCurve> fmt::Debug for EcKey<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcKey")
            .field("table_built", &self.table.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<C: FastCurve> EcKey<C> {
    /// From a curve crate's public key (checked by the crate to be on the
    /// curve and not the identity).
    pub fn new(key: &elliptic_curve::PublicKey<C>) -> EcKey<C> {
        EcKey::from_checked_affine(*key.as_affine())
    }

    /// From the point of a curve crate's `VerifyingKey` (on the curve, not the
    /// identity: the crates' constructors check both).
    pub(crate) fn from_checked_affine(point: AffinePoint<C>) -> EcKey<C> {
        EcKey {
            point,
            table: Arc::new(OnceLock::new()),
        }
    }
}

impl<C: FastCurve> EcKey<C> {
    /// The key's affine point.
    pub fn point(&self) -> &AffinePoint<C> {
        &self.point
    }

    /// Builds the comb table now (otherwise it is built on first use).
    pub fn precompute(&self) -> bool {
        self.table().is_some()
    }

    /// Whether the table has been built.
    pub fn is_precomputed(&self) -> bool {
        self.table.get().is_some()
    }

    fn table(&self) -> Option<&Comb<C>> {
        self.table
            .get_or_init(|| Comb::new(&ProjectivePoint::<C>::from(self.point)))
            .as_ref()
    }

    /// ECDSA verification of `sig` over `message` (hashed here with the
    /// curve's SHA-2).
    #[allow(deprecated)] // generic-array 0.14's ArrayLength, as the curve crates use it
    pub fn verify(&self, message: &[u8], sig: &Signature<C>) -> bool
    where
        C::Scalar: Reduce<C::Uint, Bytes = FieldBytes<C>>,
        ecdsa::SignatureSize<C>: ArrayLength<u8>,
    {
        let digest = C::Hash::digest(message);
        let Ok(field) = bits2field::<C>(&digest) else {
            return false;
        };
        let e = <C::Scalar as Reduce<C::Uint>>::reduce_bytes(&field);
        // `Signature` holds r and s in [1, n−1] only.
        let (r, s) = sig.split_scalars();
        let w = *s.invert_vartime();
        let u1 = e * w;
        let u2 = *r * w;
        let point = match (C::generator_table(), self.table()) {
            (Some(g), Some(q)) => comb2(g, &u1, q, &u2),
            // Unreachable for valid keys; the slow generic path then.
            _ => Some(
                ProjectivePoint::<C>::generator() * u1
                    + ProjectivePoint::<C>::from(self.point) * u2,
            ),
        };
        let Some(point) = point else {
            return false;
        };
        // R = identity: refused. (`to_affine` maps it to the affine identity,
        // whose flag is cheap to read; primeorder's projective `is_identity`
        // would cost a second inversion.)
        let affine = point.to_affine();
        if bool::from(affine.is_identity()) {
            return false;
        }
        let x = elliptic_curve::point::AffineCoordinates::x(&affine);
        <C::Scalar as Reduce<C::Uint>>::reduce_bytes(&x) == *r
    }
}

macro_rules! fast_curve {
    ($curve:ty, $hash:ty, $bits:literal, $teeth:literal) => {
        impl FastCurve for $curve {
            type Hash = $hash;
            const ORDER_BITS: usize = $bits;
            const TEETH: usize = $teeth;
            fn generator_table() -> Option<&'static Comb<Self>> {
                static TABLE: OnceLock<Option<Comb<$curve>>> = OnceLock::new();
                TABLE
                    .get_or_init(|| Comb::new(&ProjectivePoint::<$curve>::GENERATOR))
                    .as_ref()
            }
        }
    };
}

fast_curve!(p256::NistP256, sha2::Sha256, 256, 8);
fast_curve!(p384::NistP384, sha2::Sha384, 384, 8);
fast_curve!(p521::NistP521, sha2::Sha512, 521, 8);
