//! ECDSA verification (ES256, ES384, ES512) with precomputed comb tables, on
//! scopegate's own prime-field arithmetic.
//!
//! The RustCrypto curve crates (`p256`, `p384`, `p521`, with `primeorder`,
//! `elliptic-curve` and `ecdsa`) that this module replaces in
//! `scopegate.wasm` verify correctly but cost a lot there: 169 KB of the
//! module (1 492 938 -> 1 323 864 bytes without them), and `u1·G + u2·Q` by
//! their complete projective formulas on their field code made ES384/ES512
//! five to six times as slow as ES256 (BENCHMARKS.md). They remain the
//! reference, as dev-dependencies: `tests/ec_fast.rs` and the
//! `ecdsa_differential` fuzz target compare every verdict with theirs.
//!
//! What is here, all variable time (a verifier handles only public data: key,
//! message, signature):
//!
//! - **Fields.** One modular arithmetic ([`Modulus`]) for the three prime
//!   fields and the three group orders, in the target's words (32 bits in
//!   wasm32, which has a 32 x 32 -> 64-bit multiply and no wider one; 64
//!   natively), the number of words a const generic, so each curve's loops
//!   are unrolled: CIOS multiplication (the product and reduction rows fused,
//!   as in `rsa_fast`), additions with one conditional correction, and
//!   inversion by the binary extended Euclidean algorithm (HAC 14.61), far
//!   cheaper than Fermat's `a^(m−2)` in Montgomery steps. The three field primes
//!   have a reduction of their own, and there elements are plain (`R = 1`)
//!   and a multiplication is a 32-bit-word product and that reduction:
//!   P-256's and P-384's `p` by NIST's (FIPS 186-4 D.2.3, D.2.4: additions
//!   and subtractions of the product's words), P-521's `2^521 − 1` by
//!   folding (`2^521 ≡ 1`); measured against Montgomery on the same primes,
//!   ES256 −23%, ES384 −30% and ES512 −30% wasm instructions. All three are
//!   tested against Montgomery's products.
//! - **Points.** Jacobian coordinates with the `a = −3` doubling
//!   (dbl-2001-b: 3M + 5S) and the mixed Jacobian + affine addition
//!   (madd-2007-bl: 7M + 4S), both from the Explicit-Formulas Database. The
//!   addition is not complete: its two special cases (the same point: a
//!   doubling; opposite points: the identity) are tested for and handled,
//!   and the identity is `Z = 0`.
//! - **Scalar multiplication.** A fixed-base comb (Lim–Lee) with `TEETH`
//!   teeth for each point: entry `b` (a `TEETH`-bit mask) is
//!   `Σ_{k ∈ b} 2^(k·D)·P`, `D = ⌈bits(n) / TEETH⌉`, kept affine (the
//!   table's 255 points normalised with one inversion by Montgomery's
//!   trick); one table for `G` per VM, built on first use, and one per
//!   public key, built on the key's first use and shared by its clones.
//!   `u1·G + u2·Q` is then `D` doublings and at most `2·D` mixed additions
//!   (P-256: 32 and 64).
//!
//! The verification is ECDSA's (FIPS 186-5 §6.4.2, SEC1 §4.1.4), as the
//! `ecdsa` crate performs it: `r`, `s` in `[1, n−1]` (checked when the
//! signature is parsed: the CVE-2022-21449 "psychic signature" defence),
//! `e` the leftmost `bits(n)` bits of the curve's SHA-2 of the message
//! reduced mod `n`, `w = s⁻¹`, `u1 = e·w`, `u2 = r·w`, `R = u1·G + u2·Q`,
//! the identity refused, accepted iff `x(R) mod n = r`. That last test is
//! done without inverting `Z`: `x(R) = X / Z²` is `r` or `r + n` (the only
//! values below `p` that are `r` mod `n`, as `p < 2n`), so it is
//! `X = r·Z²` or `X = (r + n)·Z²` (the latter only when `r + n < p`).
//! High-S signatures are accepted, as the curve crates accept them.
//!
//! Public keys are checked when loaded: coordinates below `p`, on the curve
//! (`y² = x³ − 3x + b`); the identity has no affine encoding and SEC1's
//! `0x00` is refused. The three curves have cofactor 1, so a point on the
//! curve is in the group of order `n`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use sha2::Digest;

// The arithmetic's limb (32 bits in wasm32, 64 natively).
use crate::word::{WORD_BYTES, Wide, Word};
const WORD_BITS: usize = Word::BITS as usize;

/// Words of a P-256 field element or scalar on this target.
pub const L256: usize = 256usize.div_ceil(WORD_BITS);
/// Words of a P-384 field element or scalar on this target.
pub const L384: usize = 384usize.div_ceil(WORD_BITS);
/// Words of a P-521 field element or scalar on this target.
pub const L521: usize = 521usize.div_ceil(WORD_BITS);

/// Comb teeth: a table holds `2^TEETH − 1` points.
const TEETH: usize = 8;
const TABLE_LEN: usize = (1 << TEETH) - 1;

/// A number below some modulus, little-endian words.
type Fe<const L: usize> = [Word; L];

fn is_zero<const L: usize>(a: &Fe<L>) -> bool {
    a.iter().all(|w| *w == 0)
}

/// `a < b`, `a + b` and its carry out, `a − b` and its borrow out, on
/// little-endian words of one type: the arithmetic's words, and 32-bit words
/// for the special primes' reductions.
macro_rules! word_ops {
    ($less:ident, $add:ident, $sub:ident, $t:ty) => {
        fn $less<const L: usize>(a: &[$t; L], b: &[$t; L]) -> bool {
            for (x, y) in a.iter().rev().zip(b.iter().rev()) {
                if x != y {
                    return x < y;
                }
            }
            false
        }

        fn $add<const L: usize>(a: &[$t; L], b: &[$t; L]) -> ([$t; L], bool) {
            let mut out = [0; L];
            let mut carry = false;
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                let (s, c1) = x.overflowing_add(*y);
                let (s, c2) = s.overflowing_add(<$t>::from(carry));
                *o = s;
                carry = c1 || c2;
            }
            (out, carry)
        }

        fn $sub<const L: usize>(a: &[$t; L], b: &[$t; L]) -> ([$t; L], bool) {
            let mut out = [0; L];
            let mut borrow = false;
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                let (d, b1) = x.overflowing_sub(*y);
                let (d, b2) = d.overflowing_sub(<$t>::from(borrow));
                *o = d;
                borrow = b1 || b2;
            }
            (out, borrow)
        }
    };
}

word_ops!(less, add, sub, Word);
word_ops!(less32, add32, sub32, u32);

/// `a >> 1`, with `top` shifted into the highest bit.
fn shr1<const L: usize>(a: &mut Fe<L>, top: bool) {
    let mut carry = Word::from(top);
    for w in a.iter_mut().rev() {
        let next = *w & 1;
        *w = (*w >> 1) | (carry << (WORD_BITS - 1));
        carry = next;
    }
}

/// Big-endian octets (any length) as `L` words; `None` if the value does
/// not fit.
fn from_be<const L: usize>(be: &[u8]) -> Option<Fe<L>> {
    let spare = be.len().saturating_sub(L * WORD_BYTES);
    if be.get(..spare)?.iter().any(|b| *b != 0) {
        return None;
    }
    let mut out = [0; L];
    for (w, chunk) in out.iter_mut().zip(be.get(spare..)?.rchunks(WORD_BYTES)) {
        *w = chunk.iter().fold(0, |acc, b| (acc << 8) | Word::from(*b));
    }
    Some(out)
}

/// The low `len` octets of `a`, big-endian.
fn to_be<const L: usize>(a: &Fe<L>, len: usize) -> Vec<u8> {
    let mut le: Vec<u8> = a.iter().flat_map(|w| w.to_le_bytes()).collect();
    le.resize(len, 0);
    le.reverse();
    le
}

fn hex_to_bytes(hex: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16);
    hex.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [h, l] => Some((digit(*h)? * 16 + digit(*l)?) as u8),
            _ => None,
        })
        .collect()
}

/// The low `K` 32-bit words of `a` (a copy when words are 32 bits).
fn to_u32<const L: usize, const K: usize>(a: &Fe<L>) -> [u32; K] {
    let mut out = [0u32; K];
    let halves = a
        .iter()
        .flat_map(|w| (0..WORD_BITS / 32).map(move |k| (*w >> (32 * k)) as u32));
    for (o, h) in out.iter_mut().zip(halves) {
        *o = h;
    }
    out
}

/// `K` 32-bit words as `L` words.
fn from_u32<const L: usize, const K: usize>(a: &[u32; K]) -> Fe<L> {
    let mut out = [0 as Word; L];
    for (w, chunk) in out.iter_mut().zip(a.chunks(WORD_BITS / 32)) {
        *w = chunk
            .iter()
            .rev()
            .fold(0, |acc, h| (acc << 16 << 16) | Word::from(*h));
    }
    out
}

/// `a·b` (`N` words each) as `M = 2N` words, row by row (operand
/// scanning: `out[i+j] + a_i·b_j + carry < 2^64`). Measured in wasm32:
/// cheaper than column by column (Comba), whose loops have variable bounds.
// Every index is below N or M (i + j < 2N − 1, i + N < 2N ≤ M).
#[allow(clippy::indexing_slicing)]
#[inline]
fn product_words<const N: usize, const M: usize>(a: &[u32; N], b: &[u32; N]) -> [u32; M] {
    let mut out = [0u32; M];
    if N == 0 || M < 2 * N {
        return out;
    }
    for i in 0..N {
        let ai = u64::from(a[i]);
        let mut carry: u64 = 0;
        for j in 0..N {
            let t = u64::from(out[i + j]) + ai * u64::from(b[j]) + carry;
            out[i + j] = t as u32;
            carry = t >> 32;
        }
        out[i + N] = carry as u32;
    }
    out
}

/// `a²` (`N` words) as `M = 2N` words: each cross product `a_i·a_j` (i < j)
/// once, the sum doubled, then the squares `a_i²` added (N(N+1)/2 word
/// products instead of N²).
// Every index is below N or M (i + j < 2N − 1, i + N < 2N, 2i + 1 < 2N).
#[allow(clippy::indexing_slicing)]
#[inline]
fn square_words<const N: usize, const M: usize>(a: &[u32; N]) -> [u32; M] {
    let mut out = [0u32; M];
    if M < 2 * N {
        return out;
    }
    for i in 0..N {
        let ai = u64::from(a[i]);
        let mut carry: u64 = 0;
        for j in (i + 1)..N {
            let t = u64::from(out[i + j]) + ai * u64::from(a[j]) + carry;
            out[i + j] = t as u32;
            carry = t >> 32;
        }
        out[i + N] = carry as u32;
    }
    // Doubled: the cross products are below a²/2, no bit leaves 2N words.
    let mut top = 0u32;
    for w in out.iter_mut().take(2 * N) {
        let next = *w >> 31;
        *w = (*w << 1) | top;
        top = next;
    }
    let mut carry: u64 = 0;
    for i in 0..N {
        let sq = u64::from(a[i]) * u64::from(a[i]);
        let lo = u64::from(out[2 * i]) + (sq & 0xffff_ffff) + carry;
        out[2 * i] = lo as u32;
        let hi = u64::from(out[2 * i + 1]) + (sq >> 32) + (lo >> 32);
        out[2 * i + 1] = hi as u32;
        carry = hi >> 32;
    }
    out
}

/// P-256's prime as 32-bit words.
const P256_P: [u32; 8] = [
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
    0,
    0,
    0,
    1,
    0xffff_ffff,
];

/// `c mod p` for P-256's `p` and `c < p²` (16 words): NIST's fast reduction
/// (FIPS 186-4 D.2.3; Hankerson, Menezes, Vanstone, Algorithm 2.29):
/// `s1 + 2s2 + 2s3 + s4 + s5 − s6 − s7 − s8 − s9`, the `s_i` made of `c`'s
/// words, summed per word with signed carries, then brought into `[0, p)`
/// by adding or subtracting `p` (the sum is within `(−4p, 5p)`).
// Every index is a constant below 16 or 8.
#[allow(clippy::indexing_slicing)]
fn reduce_p256(c: &[u32; 16]) -> [u32; 8] {
    let w = |i: usize| i64::from(c[i]);
    let t = [
        w(0) + w(8) + w(9) - w(11) - w(12) - w(13) - w(14),
        w(1) + w(9) + w(10) - w(12) - w(13) - w(14) - w(15),
        w(2) + w(10) + w(11) - w(13) - w(14) - w(15),
        w(3) + 2 * w(11) + 2 * w(12) + w(13) - w(15) - w(8) - w(9),
        w(4) + 2 * w(12) + 2 * w(13) + w(14) - w(9) - w(10),
        w(5) + 2 * w(13) + 2 * w(14) + w(15) - w(10) - w(11),
        w(6) + w(13) + 3 * w(14) + 2 * w(15) - w(8) - w(9),
        w(7) + w(8) + 3 * w(15) - w(10) - w(11) - w(12) - w(13),
    ];
    settle(t, &P256_P)
}

/// P-384's prime as 32-bit words.
const P384_P: [u32; 12] = [
    0xffff_ffff,
    0,
    0,
    0xffff_ffff,
    0xffff_fffe,
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
];

/// `c mod p` for P-384's `p = 2^384 − 2^128 − 2^96 + 2^32 − 1` and `c < p²`
/// (24 words): NIST's fast reduction (FIPS 186-4 D.2.4; Hankerson, Menezes,
/// Vanstone, Algorithm 2.30): `s1 + 2s2 + s3 + s4 + s5 + s6 + s7 − s8 − s9 −
/// s10`, then into `[0, p)` (the sum is within `(−3p, 9p)`).
// Every index is a constant below 24.
#[allow(clippy::indexing_slicing)]
fn reduce_p384(c: &[u32; 24]) -> [u32; 12] {
    let w = |i: usize| i64::from(c[i]);
    let t = [
        w(0) + w(12) + w(20) + w(21) - w(23),
        w(1) + w(13) + w(22) + w(23) - w(12) - w(20),
        w(2) + w(14) + w(23) - w(13) - w(21),
        w(3) + w(15) + w(12) + w(20) + w(21) - w(14) - w(22) - w(23),
        w(4) + 2 * w(21) + w(16) + w(13) + w(12) + w(20) + w(22) - w(15) - 2 * w(23),
        w(5) + 2 * w(22) + w(17) + w(14) + w(13) + w(21) + w(23) - w(16),
        w(6) + 2 * w(23) + w(18) + w(15) + w(14) + w(22) - w(17),
        w(7) + w(19) + w(16) + w(15) + w(23) - w(18),
        w(8) + w(20) + w(17) + w(16) - w(19),
        w(9) + w(21) + w(18) + w(17) - w(20),
        w(10) + w(22) + w(19) + w(18) - w(21),
        w(11) + w(23) + w(20) + w(19) - w(22),
    ];
    settle(t, &P384_P)
}

/// Per-word signed sums `t` (word k weighs `2^(32k)`) as the residue in
/// `[0, p)`: the carries propagated, then `p` added while the value is
/// negative and subtracted while it is at least `p` (at most 12 times each:
/// the NIST sums stay within `(−4p, 9p)`).
#[inline(always)]
fn settle<const N: usize>(t: [i64; N], p: &[u32; N]) -> [u32; N] {
    let mut r = [0u32; N];
    let mut carry: i64 = 0;
    for (out, ti) in r.iter_mut().zip(t) {
        let v = ti + carry;
        *out = v as u32;
        carry = v >> 32;
    }
    // The value is r + top·2^(32N).
    let mut top = carry;
    for _ in 0..12 {
        if top >= 0 {
            break;
        }
        let (sum, c) = add32(&r, p);
        r = sum;
        top += i64::from(c);
    }
    for _ in 0..12 {
        if top == 0 && less32(&r, p) {
            break;
        }
        let (diff, b) = sub32(&r, p);
        r = diff;
        top -= i64::from(b);
    }
    r
}

/// `c mod p` for P-521's `p = 2^521 − 1` and `c < p²` (34 words): `c =
/// lo + hi·2^521` with `lo`, `hi < 2^521`, and `2^521 ≡ 1`, so `c ≡ lo + hi <
/// 2p + 2`; one subtraction of `p` ends below it.
// Every index is a constant or below 17 (+17 ≤ 33).
#[allow(clippy::indexing_slicing)]
fn reduce_p521(c: &[u32; 34]) -> [u32; 17] {
    let mut lo = [0u32; 17];
    lo.copy_from_slice(&c[..17]);
    lo[16] &= 0x1ff;
    let mut hi = [0u32; 17];
    for (k, h) in hi.iter_mut().enumerate() {
        *h = (c[16 + k] >> 9) | (c[17 + k] << 23);
    }
    let (mut r, _) = add32(&lo, &hi);
    let mut p = [0xffff_ffffu32; 17];
    p[16] = 0x1ff;
    if !less32(&r, &p) {
        r = sub32(&r, &p).0;
    }
    r
}

/// Montgomery arithmetic modulo an odd `m` of at most `L` words, `R =
/// 2^(L·w)`. Field elements handed to it are below `m`, and so are its
/// results.
struct Modulus<const L: usize> {
    m: Fe<L>,
    /// `−m⁻¹ mod 2^w`.
    neg_inv: Word,
    /// `R² mod m`: `mont(x) = mul(x, r2)`.
    r2: Fe<L>,
    /// `R mod m`, the Montgomery form of 1.
    one: Fe<L>,
    /// A prime with a fast reduction of its own: then elements are plain
    /// (`R = 1`: `r2` and `one` are 1, `mont` and `plain` change nothing) and
    /// [`Modulus::mul`] is a product and that reduction.
    special: Special,
}

/// The field primes that reduce without Montgomery's multiplications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    /// Any odd modulus: Montgomery.
    None,
    /// P-256's `p = 2^256 − 2^224 + 2^192 + 2^96 − 1`: NIST's reduction.
    P256,
    /// P-384's `p = 2^384 − 2^128 − 2^96 + 2^32 − 1`: NIST's reduction.
    P384,
    /// P-521's `p = 2^521 − 1`: a Mersenne prime, `2^521 ≡ 1`.
    P521,
}

impl<const L: usize> Modulus<L> {
    /// `None` unless `m` (big-endian) is odd, above 1 and fits `L` words
    /// (and, for a `special` prime, is that prime).
    fn new(m_be: &[u8], special: Special) -> Option<Self> {
        let m = from_be::<L>(m_be)?;
        let m0 = *m.first()?;
        if m0 & 1 == 0 || (m0 == 1 && m.iter().skip(1).all(|w| *w == 0)) {
            return None;
        }
        // Newton's iteration for m0⁻¹ mod 2^w: an odd m0 is its own inverse
        // mod 8, and each step doubles the correct low bits.
        let mut inv: Word = m0;
        for _ in 0..5 {
            inv = inv.wrapping_mul(m0.wrapping_mul(inv).wrapping_neg().wrapping_add(2));
        }
        if m0.wrapping_mul(inv) != 1 {
            return None;
        }
        let mut plain_one = [0; L];
        *plain_one.first_mut()? = 1;
        if special != Special::None {
            let (expected, width) = match special {
                Special::P256 => (P256_PARAMS.p, L256),
                Special::P384 => (P384_PARAMS.p, L384),
                _ => (P521_PARAMS.p, L521),
            };
            if width != L || from_be::<L>(&hex_to_bytes(expected)?)? != m {
                return None;
            }
            return Some(Modulus {
                m,
                neg_inv: inv.wrapping_neg(),
                r2: plain_one,
                one: plain_one,
                special,
            });
        }
        let r2 = from_be::<L>(&crate::rsa_fast::pow2_mod(2 * L * WORD_BITS, m_be)?)?;
        let mut modulus = Modulus {
            m,
            neg_inv: inv.wrapping_neg(),
            r2,
            one: [0; L],
            special,
        };
        modulus.one = modulus.mul(&plain_one, &modulus.r2);
        Some(modulus)
    }

    /// `a·b` in the field's form: Montgomery's `a·b·R⁻¹ mod m`, or for a
    /// special prime the plain product reduced by that prime's own rule.
    #[inline]
    fn mul(&self, a: &Fe<L>, b: &Fe<L>) -> Fe<L> {
        match self.special {
            Special::None => self.mont_mul(a, b),
            Special::P256 if L == L256 => {
                let c: [u32; 16] = product_words(&to_u32::<L, 8>(a), &to_u32::<L, 8>(b));
                from_u32::<L, 8>(&reduce_p256(&c))
            }
            Special::P384 if L == L384 => {
                let c: [u32; 24] = product_words(&to_u32::<L, 12>(a), &to_u32::<L, 12>(b));
                from_u32::<L, 12>(&reduce_p384(&c))
            }
            Special::P521 if L == L521 => {
                let c: [u32; 34] = product_words(&to_u32::<L, 17>(a), &to_u32::<L, 17>(b));
                from_u32::<L, 17>(&reduce_p521(&c))
            }
            // A special prime at another width: `Modulus::new` never makes
            // one. Zero everywhere: every point the identity, every
            // verification refused.
            _ => [0; L],
        }
    }

    /// `a·b·R⁻¹ mod m`, for `a`, `b` < m: CIOS, the product row and the
    /// reduction row fused. With `t < 2m` before a turn, `(t + a·b_i + q·m) /
    /// 2^w < 2m` after, so one word above `t` (`top`, 0 or 1) holds the
    /// excess and one conditional subtraction ends below `m`. No double word
    /// overflows: `t_j + a_j·b_i + c ≤ (2^w − 1) + (2^w − 1)² + (2^w − 1) =
    /// 2^2w − 1`, and likewise with `q·m_j`.
    // Every index is below the arrays' const length `L` (loops over `1..L`).
    #[allow(clippy::indexing_slicing)]
    #[inline]
    fn mont_mul(&self, a: &Fe<L>, b: &Fe<L>) -> Fe<L> {
        let mut t = [0 as Word; L];
        let mut top: Word = 0;
        if L == 0 {
            return t;
        }
        let a0 = Wide::from(a[0]);
        let m0 = Wide::from(self.m[0]);
        for &bi in b {
            let bi = Wide::from(bi);
            let x = Wide::from(t[0]) + a0 * bi;
            let mut c1 = x >> WORD_BITS;
            let q = Wide::from((x as Word).wrapping_mul(self.neg_inv));
            // The low word of this sum is zero by the choice of q.
            let y = Wide::from(x as Word) + q * m0;
            let mut c2 = y >> WORD_BITS;
            for j in 1..L {
                let x = Wide::from(t[j]) + Wide::from(a[j]) * bi + c1;
                c1 = x >> WORD_BITS;
                let y = Wide::from(x as Word) + q * Wide::from(self.m[j]) + c2;
                c2 = y >> WORD_BITS;
                t[j - 1] = y as Word;
            }
            let high = Wide::from(top) + c1 + c2;
            t[L - 1] = high as Word;
            top = (high >> WORD_BITS) as Word;
        }
        if top != 0 || !less(&t, &self.m) {
            t = sub(&t, &self.m).0;
        }
        t
    }

    fn sqr(&self, a: &Fe<L>) -> Fe<L> {
        match self.special {
            Special::None => self.mont_mul(a, a),
            Special::P256 if L == L256 => {
                let c: [u32; 16] = square_words(&to_u32::<L, 8>(a));
                from_u32::<L, 8>(&reduce_p256(&c))
            }
            Special::P384 if L == L384 => {
                let c: [u32; 24] = square_words(&to_u32::<L, 12>(a));
                from_u32::<L, 12>(&reduce_p384(&c))
            }
            // Measured: at 17 words the triangular loop costs more than the
            // products it saves (ES512 +12% fuel against the full product).
            Special::P521 => self.mul(a, a),
            _ => [0; L],
        }
    }

    fn add(&self, a: &Fe<L>, b: &Fe<L>) -> Fe<L> {
        let (s, carry) = add(a, b);
        if carry || !less(&s, &self.m) {
            sub(&s, &self.m).0
        } else {
            s
        }
    }

    fn sub(&self, a: &Fe<L>, b: &Fe<L>) -> Fe<L> {
        let (d, borrow) = sub(a, b);
        if borrow { add(&d, &self.m).0 } else { d }
    }

    fn mont(&self, a: &Fe<L>) -> Fe<L> {
        self.mul(a, &self.r2)
    }

    fn plain(&self, a: &Fe<L>) -> Fe<L> {
        let mut one = [0; L];
        if let Some(w) = one.first_mut() {
            *w = 1;
        }
        self.mul(a, &one)
    }

    /// `x / 2 mod m` for `x < m` (m odd): `x / 2` or `(x + m) / 2`.
    fn half(&self, x: &mut Fe<L>) {
        if x.first().is_some_and(|w| w & 1 == 1) {
            let (s, carry) = add(x, &self.m);
            *x = s;
            shr1(x, carry);
        } else {
            shr1(x, false);
        }
    }

    /// `a⁻¹ mod m` of a plain (not Montgomery) `0 < a < m`, for a prime `m`,
    /// by the binary extended Euclidean algorithm (HAC 14.61 with the
    /// invariants `x1·a ≡ u`, `x2·a ≡ v`). `None` for `a = 0` (or a
    /// non-invertible `a`, which a prime modulus has no other of).
    fn invert(&self, a: &Fe<L>) -> Option<Fe<L>> {
        let is_one = |x: &Fe<L>| x.first() == Some(&1) && x.iter().skip(1).all(|w| *w == 0);
        let is_even = |x: &Fe<L>| x.first().is_none_or(|w| w & 1 == 0);
        if is_zero(a) || !less(a, &self.m) {
            return None;
        }
        let (mut u, mut v) = (*a, self.m);
        let mut x1 = [0; L];
        *x1.first_mut()? = 1;
        let mut x2 = [0; L];
        // Each halving or subtraction takes at least one bit off u·v, which
        // starts below 2^(2·L·w): a bound, not a budget that is ever reached.
        let mut steps = 4 * L * WORD_BITS + 4;
        while !is_one(&u) && !is_one(&v) {
            if is_zero(&u) || is_zero(&v) {
                return None;
            }
            while is_even(&u) {
                shr1(&mut u, false);
                self.half(&mut x1);
                steps = steps.checked_sub(1)?;
            }
            while is_even(&v) {
                shr1(&mut v, false);
                self.half(&mut x2);
                steps = steps.checked_sub(1)?;
            }
            if less(&u, &v) {
                v = sub(&v, &u).0;
                x2 = self.sub(&x2, &x1);
            } else {
                u = sub(&u, &v).0;
                x1 = self.sub(&x1, &x2);
            }
            steps = steps.checked_sub(1)?;
        }
        Some(if is_one(&u) { x1 } else { x2 })
    }

    /// `a⁻¹` of a Montgomery-form `a`, in Montgomery form.
    fn invert_mont(&self, a: &Fe<L>) -> Option<Fe<L>> {
        Some(self.mont(&self.invert(&self.plain(a))?))
    }

    /// `a^e` (Montgomery form in and out), `e` big-endian octets, left to right.
    fn pow(&self, a: &Fe<L>, e_be: &[u8]) -> Fe<L> {
        let mut x = self.one;
        for byte in e_be {
            for i in (0..8).rev() {
                x = self.sqr(&x);
                if (byte >> i) & 1 == 1 {
                    x = self.mul(&x, a);
                }
            }
        }
        x
    }
}

/// The SHA-2 of a curve's JWS algorithm (RFC 7518 §3.4).
#[derive(Debug, Clone, Copy)]
enum CurveHash {
    Sha256,
    Sha384,
    Sha512,
}

/// An affine point (coordinates in the field's form: Montgomery, or plain
/// for a prime with its own reduction; see [`Modulus`]); never the identity.
#[derive(Clone, Copy)]
struct Affine<const L: usize> {
    x: Fe<L>,
    y: Fe<L>,
}

/// A Jacobian point `(X / Z², Y / Z³)`; the identity is `Z = 0`.
#[derive(Clone, Copy)]
struct Jacobian<const L: usize> {
    x: Fe<L>,
    y: Fe<L>,
    z: Fe<L>,
}

impl<const L: usize> Jacobian<L> {
    const IDENTITY: Jacobian<L> = Jacobian {
        x: [0; L],
        y: [0; L],
        z: [0; L],
    };

    fn is_identity(&self) -> bool {
        is_zero(&self.z)
    }
}

/// A comb table of one point: entry `b − 1` is `Σ_{k: bit k of b} 2^(k·D)·P`.
pub struct Comb<const L: usize> {
    entries: Vec<Affine<L>>,
}

/// One of the three NIST prime curves `y² = x³ − 3x + b` (FIPS 186-5,
/// SP 800-186), with its group order `n` and generator `G`.
pub struct Curve<const L: usize> {
    name: &'static str,
    /// Octets of a coordinate and of a scalar: 32, 48, 66.
    size: usize,
    /// Bit length of `n`.
    order_bits: usize,
    hash: CurveHash,
    p: Modulus<L>,
    n: Modulus<L>,
    /// `b`, in the field's form.
    b: Fe<L>,
    g: Affine<L>,
    /// `(p + 1) / 4` (`p ≡ 3 mod 4` for all three): the square-root exponent.
    sqrt_exp: Vec<u8>,
    g_table: OnceLock<Option<Comb<L>>>,
}

impl<const L: usize> fmt::Debug for Curve<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The curves' constants (SP 800-186 §3.2.1; the same values as the RustCrypto
/// crates'), checked by the tests: `G` on the curve, `n·G` the identity.
struct Params {
    name: &'static str,
    size: usize,
    order_bits: usize,
    hash: CurveHash,
    /// How the field multiplies.
    field: Special,
    p: &'static str,
    n: &'static str,
    b: &'static str,
    gx: &'static str,
    gy: &'static str,
}

const P256_PARAMS: Params = Params {
    name: "P-256",
    size: 32,
    order_bits: 256,
    hash: CurveHash::Sha256,
    field: Special::P256,
    p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    n: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
    b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    gx: "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
    gy: "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
};

const P384_PARAMS: Params = Params {
    name: "P-384",
    size: 48,
    order_bits: 384,
    hash: CurveHash::Sha384,
    field: Special::P384,
    p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    n: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    gx: "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
    gy: "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
};

const P521_PARAMS: Params = Params {
    name: "P-521",
    size: 66,
    order_bits: 521,
    hash: CurveHash::Sha512,
    field: Special::P521,
    p: "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    n: "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
    b: "0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00",
    gx: "00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66",
    gy: "011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650",
};

/// P-256 (ES256); `None` only if its constants failed to load, which the
/// tests rule out.
pub fn p256() -> Option<&'static Curve<L256>> {
    static CURVE: OnceLock<Option<Curve<L256>>> = OnceLock::new();
    CURVE.get_or_init(|| Curve::new(&P256_PARAMS)).as_ref()
}

/// P-384 (ES384).
pub fn p384() -> Option<&'static Curve<L384>> {
    static CURVE: OnceLock<Option<Curve<L384>>> = OnceLock::new();
    CURVE.get_or_init(|| Curve::new(&P384_PARAMS)).as_ref()
}

/// P-521 (ES512).
pub fn p521() -> Option<&'static Curve<L521>> {
    static CURVE: OnceLock<Option<Curve<L521>>> = OnceLock::new();
    CURVE.get_or_init(|| Curve::new(&P521_PARAMS)).as_ref()
}

/// Heap bytes of one comb table on a curve of `L` words (the per-key and the
/// per-VM cost).
pub const fn table_bytes<const L: usize>() -> usize {
    TABLE_LEN * std::mem::size_of::<Affine<L>>()
}

/// Why a public key's point is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointError {
    /// Not SEC1 (`04 || x || y` or `02/03 || x` with the curve's coordinate
    /// length), or the identity (`00`).
    Encoding,
    /// A coordinate is not below the field prime.
    Range,
    /// `y² ≠ x³ − 3x + b`, or (compressed) `x` has no point.
    NotOnCurve,
    /// The curve's constants failed to load (never, with the tested constants).
    Curve,
}

impl fmt::Display for PointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PointError::Encoding => "not a SEC1 point encoding of this curve",
            PointError::Range => "coordinate not below the field prime",
            PointError::NotOnCurve => "the point is not on the curve",
            PointError::Curve => "curve constants unavailable",
        })
    }
}

impl std::error::Error for PointError {}

impl<const L: usize> Curve<L> {
    fn new(params: &Params) -> Option<Curve<L>> {
        let p_be = hex_to_bytes(params.p)?;
        let p = Modulus::<L>::new(&p_be, params.field)?;
        let n = Modulus::<L>::new(&hex_to_bytes(params.n)?, Special::None)?;
        let field = |hex: &str| -> Option<Fe<L>> {
            let v = from_be::<L>(&hex_to_bytes(hex)?)?;
            less(&v, &p.m).then(|| p.mont(&v))
        };
        let b = field(params.b)?;
        let g = Affine {
            x: field(params.gx)?,
            y: field(params.gy)?,
        };
        // (p + 1) / 4: p + 1 has no carry out (p's top word is not all ones
        // for P-521; for P-256 and P-384 p + 1 < 2^(L·w) as p < 2^(L·w) − 1).
        let mut one = [0; L];
        *one.first_mut()? = 1;
        let (mut e, carry) = add(&p.m, &one);
        shr1(&mut e, carry);
        shr1(&mut e, false);
        let curve = Curve {
            name: params.name,
            size: params.size,
            order_bits: params.order_bits,
            hash: params.hash,
            p,
            n,
            b,
            g,
            sqrt_exp: to_be(&e, L * WORD_BYTES),
            g_table: OnceLock::new(),
        };
        curve.on_curve(&curve.g).then_some(curve)
    }

    /// The curve's name (`P-256`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Octets of a coordinate or a scalar.
    pub fn size(&self) -> usize {
        self.size
    }

    /// `x³ − 3x + b` (the field's form).
    fn rhs(&self, x: &Fe<L>) -> Fe<L> {
        let f = &self.p;
        let x3 = f.mul(&f.sqr(x), x);
        let three_x = f.add(&f.add(x, x), x);
        f.add(&f.sub(&x3, &three_x), &self.b)
    }

    fn on_curve(&self, pt: &Affine<L>) -> bool {
        self.p.sqr(&pt.y) == self.rhs(&pt.x)
    }

    /// A coordinate (big-endian, exactly the curve's size) below `p`, in
    /// the field's form.
    fn coordinate(&self, be: &[u8]) -> Result<Fe<L>, PointError> {
        if be.len() != self.size {
            return Err(PointError::Encoding);
        }
        let v = from_be::<L>(be).ok_or(PointError::Range)?;
        if !less(&v, &self.p.m) {
            return Err(PointError::Range);
        }
        Ok(self.p.mont(&v))
    }

    /// A public key's point from its affine coordinates (JWK `x`, `y`).
    fn point(&self, x: &[u8], y: &[u8]) -> Result<Affine<L>, PointError> {
        let pt = Affine {
            x: self.coordinate(x)?,
            y: self.coordinate(y)?,
        };
        if self.on_curve(&pt) {
            Ok(pt)
        } else {
            Err(PointError::NotOnCurve)
        }
    }

    /// A public key's point from SEC1 octets (SEC1 §2.3.4): uncompressed
    /// `04 || x || y`, or compressed `02/03 || x` (`y` the square root of
    /// `x³ − 3x + b` with the parity of the tag).
    fn sec1_point(&self, sec1: &[u8]) -> Result<Affine<L>, PointError> {
        let (&tag, rest) = sec1.split_first().ok_or(PointError::Encoding)?;
        match tag {
            0x04 if rest.len() == 2 * self.size => {
                let (x, y) = rest.split_at(self.size);
                self.point(x, y)
            }
            0x02 | 0x03 if rest.len() == self.size => {
                let x = self.coordinate(rest)?;
                let rhs = self.rhs(&x);
                let y = self.p.pow(&rhs, &self.sqrt_exp);
                if self.p.sqr(&y) != rhs {
                    return Err(PointError::NotOnCurve);
                }
                let odd = self.p.plain(&y).first().is_some_and(|w| w & 1 == 1);
                let y = if odd == (tag == 0x03) {
                    y
                } else {
                    self.p.sub(&[0; L], &y)
                };
                Ok(Affine { x, y })
            }
            _ => Err(PointError::Encoding),
        }
    }

    /// `2·P` (dbl-2001-b, a = −3): 3M + 5S. The identity doubles to itself
    /// (`Z3 = 2·Y·Z = 0`); the curves have no point of order 2.
    fn double(&self, pt: &Jacobian<L>) -> Jacobian<L> {
        let f = &self.p;
        let delta = f.sqr(&pt.z);
        let gamma = f.sqr(&pt.y);
        let beta = f.mul(&pt.x, &gamma);
        let t = f.mul(&f.sub(&pt.x, &delta), &f.add(&pt.x, &delta));
        let alpha = f.add(&f.add(&t, &t), &t);
        let beta2 = f.add(&beta, &beta);
        let beta4 = f.add(&beta2, &beta2);
        let beta8 = f.add(&beta4, &beta4);
        let x3 = f.sub(&f.sqr(&alpha), &beta8);
        let yz = f.add(&pt.y, &pt.z);
        let z3 = f.sub(&f.sub(&f.sqr(&yz), &gamma), &delta);
        let gamma2 = f.sqr(&gamma);
        let g2 = f.add(&gamma2, &gamma2);
        let g4 = f.add(&g2, &g2);
        let g8 = f.add(&g4, &g4);
        let y3 = f.sub(&f.mul(&alpha, &f.sub(&beta4, &x3)), &g8);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// `P + Q`, `Q` affine (madd-2007-bl): 7M + 4S, with the formula's two
    /// exceptions handled: `P` the identity, and `H = 0` (the same `x`):
    /// `P = Q` (a doubling) or `P = −Q` (the identity).
    fn add_affine(&self, pt: &Jacobian<L>, q: &Affine<L>) -> Jacobian<L> {
        let f = &self.p;
        if pt.is_identity() {
            return Jacobian {
                x: q.x,
                y: q.y,
                z: f.one,
            };
        }
        let z1z1 = f.sqr(&pt.z);
        let u2 = f.mul(&q.x, &z1z1);
        let s2 = f.mul(&q.y, &f.mul(&pt.z, &z1z1));
        let h = f.sub(&u2, &pt.x);
        let s = f.sub(&s2, &pt.y);
        if is_zero(&h) {
            return if is_zero(&s) {
                self.double(pt)
            } else {
                Jacobian::IDENTITY
            };
        }
        let rr = f.add(&s, &s);
        let hh = f.sqr(&h);
        let hh2 = f.add(&hh, &hh);
        let i = f.add(&hh2, &hh2);
        let j = f.mul(&h, &i);
        let v = f.mul(&pt.x, &i);
        let x3 = f.sub(&f.sub(&f.sqr(&rr), &j), &f.add(&v, &v));
        let y1j = f.mul(&pt.y, &j);
        let y3 = f.sub(&f.mul(&rr, &f.sub(&v, &x3)), &f.add(&y1j, &y1j));
        let zh = f.add(&pt.z, &h);
        let z3 = f.sub(&f.sub(&f.sqr(&zh), &z1z1), &hh);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// The points affine, with one inversion (Montgomery's trick); `None` if
    /// any is the identity.
    fn normalize(&self, points: &[Jacobian<L>]) -> Option<Vec<Affine<L>>> {
        let f = &self.p;
        // prefix[i] = Z_0 ··· Z_i
        let mut prefix = Vec::with_capacity(points.len());
        let mut acc = f.one;
        for pt in points {
            if pt.is_identity() {
                return None;
            }
            acc = f.mul(&acc, &pt.z);
            prefix.push(acc);
        }
        let mut inv = f.invert_mont(&acc)?;
        let mut out = vec![
            Affine {
                x: [0; L],
                y: [0; L]
            };
            points.len()
        ];
        for (i, (pt, slot)) in points.iter().zip(out.iter_mut()).enumerate().rev() {
            // inv = (Z_0 ··· Z_i)⁻¹ here.
            let z_inv = match i.checked_sub(1).and_then(|k| prefix.get(k)) {
                Some(before) => f.mul(&inv, before),
                None => inv,
            };
            inv = f.mul(&inv, &pt.z);
            let z_inv2 = f.sqr(&z_inv);
            *slot = Affine {
                x: f.mul(&pt.x, &z_inv2),
                y: f.mul(&pt.y, &f.mul(&z_inv2, &z_inv)),
            };
        }
        Some(out)
    }

    /// Comb spacing: columns, and doublings per verification.
    fn spacing(&self) -> usize {
        self.order_bits.div_ceil(TEETH)
    }

    /// The comb table of `pt`. Every entry is `c·P` with `0 < c < n` (the
    /// largest, `Σ_k 2^(k·D) < 2^((TEETH−1)·D + 1) ≤ n`), so none is the
    /// identity and no addition building them meets an exception.
    fn comb(&self, pt: &Affine<L>) -> Option<Comb<L>> {
        let d = self.spacing();
        let mut teeth = Vec::with_capacity(TEETH);
        let mut t = Jacobian {
            x: pt.x,
            y: pt.y,
            z: self.p.one,
        };
        for k in 0..TEETH {
            teeth.push(t);
            if k + 1 < TEETH {
                for _ in 0..d {
                    t = self.double(&t);
                }
            }
        }
        let teeth = self.normalize(&teeth)?;
        let mut jac: Vec<Jacobian<L>> = Vec::with_capacity(TABLE_LEN);
        for b in 1..=TABLE_LEN {
            let top = usize::BITS - 1 - b.leading_zeros();
            let tooth = teeth.get(top as usize)?;
            let rest = b ^ (1 << top);
            let point = match rest.checked_sub(1) {
                None => Jacobian {
                    x: tooth.x,
                    y: tooth.y,
                    z: self.p.one,
                },
                Some(i) => self.add_affine(jac.get(i)?, tooth),
            };
            jac.push(point);
        }
        Some(Comb {
            entries: self.normalize(&jac)?,
        })
    }

    fn generator_table(&self) -> Option<&Comb<L>> {
        self.g_table.get_or_init(|| self.comb(&self.g)).as_ref()
    }

    /// `a·A + b·B` (plain scalars) from the two points' comb tables.
    fn comb2(&self, ta: &Comb<L>, a: &Fe<L>, tb: &Comb<L>, b: &Fe<L>) -> Option<Jacobian<L>> {
        let d = self.spacing();
        let bit = |s: &Fe<L>, pos: usize| -> usize {
            s.get(pos / WORD_BITS)
                .map_or(0, |w| ((w >> (pos % WORD_BITS)) & 1) as usize)
        };
        let column = |s: &Fe<L>, i: usize| -> usize {
            (0..TEETH).fold(0, |acc, k| acc | (bit(s, i + k * d) << k))
        };
        let mut acc = Jacobian::IDENTITY;
        for i in (0..d).rev() {
            if !acc.is_identity() {
                acc = self.double(&acc);
            }
            for (table, scalar) in [(ta, a), (tb, b)] {
                if let Some(idx) = column(scalar, i).checked_sub(1) {
                    acc = self.add_affine(&acc, table.entries.get(idx)?);
                }
            }
        }
        Some(acc)
    }

    /// `e`: the leftmost `bits(n)` bits of the message's hash, mod `n`
    /// (`bits2int`, SEC1 §4.1.4 step 5; one subtraction reduces it).
    fn message_scalar(&self, message: &[u8]) -> Option<Fe<L>> {
        let digest: Vec<u8> = match self.hash {
            CurveHash::Sha256 => sha2::Sha256::digest(message).to_vec(),
            CurveHash::Sha384 => sha2::Sha384::digest(message).to_vec(),
            CurveHash::Sha512 => sha2::Sha512::digest(message).to_vec(),
        };
        let mut e = from_be::<L>(&digest)?;
        for _ in self.order_bits..digest.len() * 8 {
            shr1(&mut e, false);
        }
        if !less(&e, &self.n.m) {
            e = sub(&e, &self.n.m).0;
        }
        Some(e)
    }
}

/// A parsed ECDSA signature: `r`, `s` in `[1, n−1]` (plain integers).
#[derive(Clone, Copy)]
pub struct EcSignature<const L: usize> {
    curve: &'static Curve<L>,
    r: Fe<L>,
    s: Fe<L>,
}

impl<const L: usize> fmt::Debug for EcSignature<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EcSignature({})", self.curve.name)
    }
}

impl<const L: usize> EcSignature<L> {
    /// The JWS form `r || s` (RFC 7518 §3.4: each exactly the curve's size);
    /// `None` for another length or a scalar outside `[1, n−1]`.
    pub fn from_slice(curve: &'static Curve<L>, raw: &[u8]) -> Option<EcSignature<L>> {
        if raw.len() != 2 * curve.size {
            return None;
        }
        let (r, s) = raw.split_at(curve.size);
        let scalar = |be: &[u8]| -> Option<Fe<L>> {
            let v = from_be::<L>(be)?;
            (!is_zero(&v) && less(&v, &curve.n.m)).then_some(v)
        };
        Some(EcSignature {
            curve,
            r: scalar(r)?,
            s: scalar(s)?,
        })
    }

    /// `r || s`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = to_be(&self.r, self.curve.size);
        out.extend(to_be(&self.s, self.curve.size));
        out
    }
}

/// A public key for fast verification: the checked point, and its comb
/// table, built on first use and shared by clones.
pub struct EcKey<const L: usize> {
    curve: &'static Curve<L>,
    point: Affine<L>,
    table: Arc<OnceLock<Option<Comb<L>>>>,
}

impl<const L: usize> Clone for EcKey<L> {
    fn clone(&self) -> Self {
        EcKey {
            curve: self.curve,
            point: self.point,
            table: Arc::clone(&self.table),
        }
    }
}

impl<const L: usize> fmt::Debug for EcKey<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcKey")
            .field("curve", &self.curve.name)
            .field("table_built", &self.table.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<const L: usize> EcKey<L> {
    fn with_point(curve: &'static Curve<L>, point: Affine<L>) -> EcKey<L> {
        EcKey {
            curve,
            point,
            table: Arc::new(OnceLock::new()),
        }
    }

    /// From affine coordinates (JWK `x` and `y`, big-endian, each exactly the
    /// curve's size: RFC 7518 §6.2.1.2), checked to be on the curve.
    pub fn from_coordinates(
        curve: &'static Curve<L>,
        x: &[u8],
        y: &[u8],
    ) -> Result<EcKey<L>, PointError> {
        Ok(EcKey::with_point(curve, curve.point(x, y)?))
    }

    /// From SEC1 octets (uncompressed or compressed), checked to be on the curve.
    pub fn from_sec1(curve: &'static Curve<L>, sec1: &[u8]) -> Result<EcKey<L>, PointError> {
        Ok(EcKey::with_point(curve, curve.sec1_point(sec1)?))
    }

    /// The key's curve.
    pub fn curve(&self) -> &'static Curve<L> {
        self.curve
    }

    /// The uncompressed SEC1 encoding `04 || x || y`.
    pub fn to_sec1(&self) -> Vec<u8> {
        let f = &self.curve.p;
        let mut out = vec![0x04];
        out.extend(to_be(&f.plain(&self.point.x), self.curve.size));
        out.extend(to_be(&f.plain(&self.point.y), self.curve.size));
        out
    }

    /// Builds the comb table now (otherwise it is built on first use).
    pub fn precompute(&self) -> bool {
        self.table().is_some()
    }

    /// Whether the table has been built.
    pub fn is_precomputed(&self) -> bool {
        self.table.get().is_some()
    }

    fn table(&self) -> Option<&Comb<L>> {
        self.table
            .get_or_init(|| self.curve.comb(&self.point))
            .as_ref()
    }

    /// ECDSA verification of `sig` over `message` (hashed here with the
    /// curve's SHA-2). A signature parsed for another curve is refused.
    pub fn verify(&self, message: &[u8], sig: &EcSignature<L>) -> bool {
        if !std::ptr::eq(sig.curve, self.curve) {
            return false;
        }
        self.verify_inner(message, sig).unwrap_or(false)
    }

    fn verify_inner(&self, message: &[u8], sig: &EcSignature<L>) -> Option<bool> {
        let c = self.curve;
        let (n, f) = (&c.n, &c.p);
        let e = c.message_scalar(message)?;
        // w = s⁻¹ (plain); u1 = e·w, u2 = r·w (plain: a Montgomery product
        // carries R⁻¹, which the product with R² takes off).
        let w = n.invert(&sig.s)?;
        let u1 = n.mul(&n.mul(&e, &w), &n.r2);
        let u2 = n.mul(&n.mul(&sig.r, &w), &n.r2);
        let point = c.comb2(c.generator_table()?, &u1, self.table()?, &u2)?;
        if point.is_identity() {
            return Some(false);
        }
        // x(R) = X / Z² ≡ r (mod n) ⟺ X = r·Z² or, when r + n < p, X = (r + n)·Z².
        let z2 = f.sqr(&point.z);
        if f.mul(&f.mont(&sig.r), &z2) == point.x {
            return Some(true);
        }
        let (r_plus_n, carry) = add(&sig.r, &n.m);
        Some(!carry && less(&r_plus_n, &f.m) && f.mul(&f.mont(&r_plus_n), &z2) == point.x)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh), with 32-bit words.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// `k·P` by double-and-add over the plain scalar's bits, for the tests.
    fn mul_point<const L: usize>(c: &Curve<L>, pt: &Affine<L>, k_be: &[u8]) -> Jacobian<L> {
        let mut acc = Jacobian::IDENTITY;
        for byte in k_be {
            for i in (0..8).rev() {
                acc = c.double(&acc);
                if (byte >> i) & 1 == 1 {
                    acc = c.add_affine(&acc, pt);
                }
            }
        }
        acc
    }

    fn constants_hold<const L: usize>(c: &'static Curve<L>) {
        assert!(c.on_curve(&c.g), "{} G on the curve", c.name);
        let n_be = to_be(&c.n.m, c.size);
        assert!(
            mul_point(c, &c.g, &n_be).is_identity(),
            "{} n·G = 0",
            c.name
        );
        // (n − 1)·G = −G: same x, opposite y.
        let mut n1 = c.n.m;
        n1[0] -= 1;
        let minus_g = c
            .normalize(&[mul_point(c, &c.g, &to_be(&n1, c.size))])
            .unwrap();
        assert_eq!(minus_g[0].x, c.g.x);
        assert_eq!(c.p.add(&minus_g[0].y, &c.g.y), [0; L]);
        // The generator's table entries are the multiples they claim.
        let table = c.generator_table().unwrap();
        let d = c.spacing();
        for b in [1usize, 2, 3, 0x80, 0xff] {
            let mut k = vec![0u8; c.size];
            let mut scalar = [0 as Word; L];
            for t in 0..TEETH {
                if b & (1 << t) != 0 {
                    let pos = t * d;
                    scalar[pos / WORD_BITS] |= 1 << (pos % WORD_BITS);
                }
            }
            k.copy_from_slice(&to_be(&scalar, c.size));
            let expected = c.normalize(&[mul_point(c, &c.g, &k)]).unwrap();
            assert!(
                table.entries[b - 1].x == expected[0].x && table.entries[b - 1].y == expected[0].y
            );
        }
    }

    #[test]
    fn curve_constants_hold() {
        constants_hold(p256().unwrap());
        constants_hold(p384().unwrap());
        constants_hold(p521().unwrap());
    }

    fn inversion_agrees_with_fermat<const L: usize>(c: &'static Curve<L>) {
        for m in [&c.p, &c.n] {
            let mut m2 = to_be(&m.m, L * WORD_BYTES);
            // m − 2
            let last = m2.last_mut().unwrap();
            *last -= 2;
            for seed in 1u64..40 {
                let mut v = [0 as Word; L];
                for (i, w) in v.iter_mut().enumerate() {
                    *w = (seed
                        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        .rotate_left(i as u32 * 7)) as Word;
                }
                // Below m: the top word below m's.
                v[L - 1] %= m.m[L - 1];
                if is_zero(&v) {
                    continue;
                }
                let mont = m.mont(&v);
                let fermat = m.plain(&m.pow(&mont, &m2));
                assert_eq!(m.invert(&v).unwrap(), fermat);
                assert_eq!(m.plain(&m.mul(&mont, &m.invert_mont(&mont).unwrap())), {
                    let mut one = [0; L];
                    one[0] = 1;
                    one
                });
            }
            let mut one = [0; L];
            one[0] = 1;
            assert_eq!(m.invert(&one).unwrap(), one);
            assert!(m.invert(&[0; L]).is_none());
            assert!(m.invert(&m.m).is_none());
        }
    }

    /// The special primes' reductions against Montgomery's arithmetic on
    /// the same prime: the same products, edge values included.
    fn special_reduction_agrees_with_montgomery<const L: usize>(params: &Params) {
        let p_be = hex_to_bytes(params.p).unwrap();
        let special = Modulus::<L>::new(&p_be, params.field).unwrap();
        let generic = Modulus::<L>::new(&p_be, Special::None).unwrap();
        assert_ne!(special.special, Special::None);
        let mut p_minus_1 = special.m;
        p_minus_1[0] -= 1;
        let mut values = vec![[0 as Word; L], special.one, p_minus_1];
        let mut half = special.m;
        shr1(&mut half, false);
        values.push(half);
        for seed in 1u64..120 {
            let mut v = [0 as Word; L];
            for (i, w) in v.iter_mut().enumerate() {
                *w = (seed
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .rotate_left(i as u32 * 13)) as Word;
            }
            v[L - 1] %= special.m[L - 1];
            values.push(v);
        }
        // Words that stress the reductions' carries and borrows (all ones,
        // zero, a lone top bit, ...), in every combination a seed picks,
        // cut to p's bit length and then below p: values next to p, to
        // 2^k and to the primes' own word patterns, whose products give the
        // NIST sums their extreme terms.
        let edge_words: [Word; 6] = [0, 1, Word::MAX, Word::MAX - 1, 1 << (WORD_BITS - 1), Word::MAX / 3];
        let top = special.m[L - 1];
        let top_mask = Word::MAX >> top.leading_zeros();
        let edge_start = values.len();
        for seed in 0u64..240 {
            let mut v = [0 as Word; L];
            let mut r = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ seed;
            for w in v.iter_mut() {
                *w = edge_words[(r % 6) as usize];
                r = r / 6 + seed.rotate_left(17);
            }
            v[L - 1] &= top_mask;
            if !less(&v, &special.m) {
                v = sub(&v, &special.m).0;
            }
            values.push(v);
        }
        let product = |a: &Fe<L>, b: &Fe<L>| {
            generic.plain(&generic.mul(&generic.mont(a), &generic.mont(b)))
        };
        for (i, a) in values.iter().enumerate() {
            // Every pair among the edge values, a seventh of the others.
            for (j, b) in values.iter().enumerate() {
                if i < 4 || j < 4 || (i >= edge_start && j >= edge_start) || j % 7 == 0 {
                    assert_eq!(special.mul(a, b), product(a, b), "{a:x?} · {b:x?}");
                }
            }
            assert_eq!(special.sqr(a), product(a, a), "{a:x?}²");
        }
    }

    #[test]
    fn special_reductions_agree_with_montgomery() {
        special_reduction_agrees_with_montgomery::<L256>(&P256_PARAMS);
        special_reduction_agrees_with_montgomery::<L384>(&P384_PARAMS);
        special_reduction_agrees_with_montgomery::<L521>(&P521_PARAMS);
        // The wrong prime for the rule is refused.
        assert!(
            Modulus::<L256>::new(&hex_to_bytes(P256_PARAMS.n).unwrap(), Special::P256).is_none()
        );
    }

    #[test]
    fn inversion_agrees_with_fermat_on_every_modulus() {
        inversion_agrees_with_fermat(p256().unwrap());
        inversion_agrees_with_fermat(p384().unwrap());
        inversion_agrees_with_fermat(p521().unwrap());
    }

    #[test]
    fn compressed_and_uncompressed_encodings_give_the_same_point() {
        fn check<const L: usize>(c: &'static Curve<L>) {
            let g = EcKey::with_point(c, c.g).to_sec1();
            let x = &g[1..=c.size];
            let y_odd = g[2 * c.size] & 1 == 1;
            let tag = if y_odd { 0x03 } else { 0x02 };
            let k = EcKey::from_sec1(c, &[&[tag][..], x].concat()).unwrap();
            assert_eq!(k.to_sec1(), g);
            // The other tag: −G.
            let other = EcKey::from_sec1(c, &[&[tag ^ 1][..], x].concat()).unwrap();
            assert_ne!(other.to_sec1(), g);
            assert_eq!(&other.to_sec1()[..=c.size], &g[..=c.size]);
            assert_eq!(
                EcKey::from_sec1(c, &[0u8]).unwrap_err(),
                PointError::Encoding
            );
            assert_eq!(
                EcKey::from_sec1(c, &g[..g.len() - 1]).unwrap_err(),
                PointError::Encoding
            );
            let mut off = g.clone();
            *off.last_mut().unwrap() ^= 1;
            assert_eq!(
                EcKey::from_sec1(c, &off).unwrap_err(),
                PointError::NotOnCurve
            );
            let p = to_be(&c.p.m, c.size);
            assert_eq!(
                EcKey::from_coordinates(c, &p, &g[1 + c.size..]).unwrap_err(),
                PointError::Range
            );
        }
        check(p256().unwrap());
        check(p384().unwrap());
        check(p521().unwrap());
    }
}
