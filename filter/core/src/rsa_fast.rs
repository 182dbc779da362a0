//! RS256/384/512 and PS256/384/512 verification with the per-key work done
//! once, when the key is loaded.
//!
//! jwt-compact's `Rsa` verifies through the `rsa` crate, which recomputes the
//! Montgomery parameters of the modulus (a 2k-bit division) and allocates
//! big integers on every signature: in wasm32 that is ~15 M instructions per
//! RS256 token. Here an [`RsaVerifier`] holds the modulus's Montgomery
//! parameters (in words of the target: 32 bits in wasm32, 64 natively, as
//! many as the modulus needs), so a verification is only `s^e mod n` as
//! Montgomery squarings and multiplications (for e = 65537: 16 squarings and
//! one multiplication; [`Mont::mul`]) plus the padding check.
//!
//! The padding checks follow RFC 8017 with the JWA rules (RFC 7518 §3.3, §3.5):
//!
//! - `RS*`: EMSA-PKCS1-v1_5 by *encoding comparison* (RFC 8017 §8.2.2 steps 3-4,
//!   §9.2): the expected block `00 01 FF..FF 00 DigestInfo(hash) H` is built
//!   and compared with the whole decrypted block. The block is never parsed,
//!   so garbage after the hash, another DigestInfo or short padding (the
//!   Bleichenbacher'06 forgery class) cannot pass.
//! - `PS*`: EMSA-PSS-VERIFY (RFC 8017 §9.1.2), MGF1 over the same SHA-2 and a
//!   salt of exactly the hash length (RFC 7518 §3.5), as jwt-compact 0.8 asks
//!   of the `rsa` crate (`Pss::new_with_salt(hash length)`).
//!
//! Both refuse a signature whose length is not the modulus length in bytes or
//! whose value is not below `n` (RFC 8017 §5.2.2 step 1). Two differences from
//! the `rsa` 0.9.10 path it replaces, both stricter here: its PSS path
//! reduces `s` mod `n` without checking `s < n`, so `s + n` (when it fits in
//! the modulus length) verified as well as `s` (a malleable signature); and
//! for a modulus of 8k+1 bits it ignores the leading octet of the block, which
//! RFC 8017 §8.1.2 step 2c (I2OSP into emLen octets) requires to be zero.
//!
//! Keys are checked at load exactly as the `rsa` 0.9.10 crate checks them (it
//! is no longer linked into scopegate.wasm; the tests verify against it):
//! at most 4096 bits, an odd modulus, an odd exponent with 2 <= e < 2^33 and
//! e < n, so every key has Montgomery parameters.

use std::borrow::Cow;

use jwt_compact::{Algorithm, AlgorithmSignature};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::ecdsa_ext::VerifyOnly;
// The Montgomery arithmetic's limb (32 bits in wasm32, 64 natively).
use crate::word::{WORD_BYTES, Wide, Word};

/// The SHA-2 function of an RS*/PS* algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaHash {
    Sha256,
    Sha384,
    Sha512,
}

impl RsaHash {
    /// The DER `DigestInfo` prefix (RFC 8017 §9.2 note 1: the AlgorithmIdentifier
    /// with NULL parameters), followed by the hash value.
    const fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            RsaHash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            RsaHash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            RsaHash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            RsaHash::Sha256 => Sha256::digest(message).to_vec(),
            RsaHash::Sha384 => Sha384::digest(message).to_vec(),
            RsaHash::Sha512 => Sha512::digest(message).to_vec(),
        }
    }
}

/// The signature scheme of an RS*/PS* algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaPadding {
    /// RSASSA-PKCS1-v1_5 (`RS*`).
    Pkcs1v15,
    /// RSASSA-PSS with MGF1 and a salt of the hash length (`PS*`).
    Pss,
}

const WORD_BITS: u32 = Word::BITS;

/// Montgomery parameters of one modulus `n` of `L` words (R = 2^(L * word
/// bits)), for [`Mont::mul`]: the coarsely integrated operand scanning
/// (CIOS) Montgomery multiplication (Koç, Acar, Kaliski, "Analyzing and
/// comparing Montgomery multiplication algorithms", 1996), its two inner
/// loops (the product row and the reduction row) fused into one pass.
///
/// crypto-bigint's fixed-width `mul_wide` + `montgomery_reduction`, which this
/// replaces, spent about 30 wasm instructions per word product; the fused
/// loop spends about half as many per product and does two products per
/// turn, with the operands' words loaded once. Everything here is public
/// (modulus, signature), so nothing needs to be constant-time.
///
/// crypto-bigint's own `DynResidueParams::new` computes R mod n, R^2 mod n and
/// R^3 mod n by bit-serial division: in wasm32 ~40 M instructions per key,
/// more than a hundred verifications. Here R^2 mod n is a word-wise long
/// division ([`pow2_mod`], ~100 k instructions).
#[derive(Clone)]
struct Mont {
    /// The modulus, little-endian words, the last one non-zero.
    n: Vec<Word>,
    /// R^2 mod n: `mont(x) = mul(x, r2)`.
    r2: Vec<Word>,
    /// -n^-1 mod 2^(word bits).
    n_neg_inv: Word,
}

/// `be` (big-endian octets) as `len` little-endian words; `None` if it does
/// not fit.
fn words_le(be: &[u8], len: usize) -> Option<Vec<Word>> {
    let spare = be.len().saturating_sub(len * WORD_BYTES);
    if be.get(..spare)?.iter().any(|b| *b != 0) {
        return None;
    }
    let mut out = vec![0; len];
    for (w, chunk) in out.iter_mut().zip(be.get(spare..)?.rchunks(WORD_BYTES)) {
        *w = chunk.iter().fold(0, |acc, b| (acc << 8) | Word::from(*b));
    }
    Some(out)
}

/// `a < b`, for words of the same length (little-endian).
fn less(a: &[Word], b: &[Word]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// One column of [`Mont::mul`]'s fused loop: `t_j + a_j b_i + c1` (carry out
/// into `c1`), its low word plus `m n_j + c2` (carry out into `c2`); the low
/// word of that is the result.
#[inline(always)]
fn mac2(tj: Word, aj: Word, nj: Word, bi: Wide, m: Wide, c1: &mut Wide, c2: &mut Wide) -> Word {
    let x = Wide::from(tj) + Wide::from(aj) * bi + *c1;
    *c1 = x >> WORD_BITS;
    let y = Wide::from(x as Word) + m * Wide::from(nj) + *c2;
    *c2 = y >> WORD_BITS;
    y as Word
}

/// `acc += x y` over the words of `acc` and `x`, of the same length (both
/// callers' are), four words per turn; returns the carry out (below 2^w: each
/// step's `acc_j + x_j y + c` <= 2^2w - 1).
#[inline(always)]
fn mac_row(acc: &mut [Word], x: &[Word], y: Wide) -> Wide {
    let mut c: Wide = 0;
    let (acc4, acc1) = acc.as_chunks_mut::<4>();
    let (x4, x1) = x.as_chunks::<4>();
    for (a, b) in acc4.iter_mut().zip(x4) {
        for (ak, &bk) in a.iter_mut().zip(b) {
            let v = Wide::from(*ak) + Wide::from(bk) * y + c;
            *ak = v as Word;
            c = v >> WORD_BITS;
        }
    }
    for (ak, &bk) in acc1.iter_mut().zip(x1) {
        let v = Wide::from(*ak) + Wide::from(bk) * y + c;
        *ak = v as Word;
        c = v >> WORD_BITS;
    }
    c
}

impl Mont {
    /// `None` unless `n` (big-endian, no leading zero octet) is odd: the
    /// precondition of Montgomery reduction (gcd(n, R) = 1; n < R holds by
    /// the choice of L).
    fn new(n_be: &[u8]) -> Option<Self> {
        if n_be.last().is_none_or(|b| b & 1 == 0) {
            return None;
        }
        let n = words_le(n_be, n_be.len().div_ceil(WORD_BYTES))?;
        let n0 = *n.first()?;
        // Newton's iteration for n0^-1 mod 2^w: an odd n0 is its own inverse
        // mod 8, and each step doubles the correct low bits (3, 6, .., 96).
        let mut inv: Word = n0;
        for _ in 0..5 {
            inv = inv.wrapping_mul(n0.wrapping_mul(inv).wrapping_neg().wrapping_add(2));
        }
        if n0.wrapping_mul(inv) != 1 {
            return None;
        }
        // R^2 mod n = 2^(2 L w) mod n, by word-wise long division (once per key).
        let bits = 2 * n.len() * WORD_BITS as usize;
        let r2 = words_le(&pow2_mod(bits, n_be)?, n.len())?;
        Some(Mont {
            n,
            r2,
            n_neg_inv: inv.wrapping_neg(),
        })
    }

    /// `a b R^-1 mod n` into `t` (`u` is scratch), for `a`, `b` < n, all four
    /// of n's length.
    ///
    /// Each turn of the outer loop adds `a b_i` and `m n` (m chosen so that
    /// the sum is divisible by the word) to `t` and shifts it down a word:
    /// with `t` < 2n before, `(t + a b_i + m n) / 2^w` < 2n after, so one
    /// word above `t` (`top`, 0 or 1) holds the excess and one conditional
    /// subtraction ends it below n. In the fused inner loop neither sum can
    /// overflow the double word: `t_j + a_j b_i + c` <= (2^w - 1) + (2^w -
    /// 1)^2 + (2^w - 1) = 2^2w - 1, and likewise with `m n_j`.
    fn mul(&self, a: &[Word], b: &[Word], t: &mut Vec<Word>, u: &mut Vec<Word>) {
        let (Some((&a0, a_rest)), Some((&n0, n_rest))) = (a.split_first(), self.n.split_first())
        else {
            return;
        };
        let a0 = Wide::from(a0);
        let n0 = Wide::from(n0);
        t.fill(0);
        let mut top: Word = 0;
        for &bi in b {
            let bi = Wide::from(bi);
            let (Some(&t0), Some(t_rest)) = (t.first(), t.get(1..)) else {
                return;
            };
            let x = Wide::from(t0) + a0 * bi;
            let mut c1 = x >> WORD_BITS;
            let m = Wide::from((x as Word).wrapping_mul(self.n_neg_inv));
            // The low word of this sum is zero by the choice of m.
            let y = Wide::from(x as Word) + m * n0;
            let mut c2 = y >> WORD_BITS;
            // Words 1..L of t, a and n give words 0..L-1 of u; the last word
            // of u is the carries'. Four words per turn (array chunks: no
            // bounds checks, one pointer step per operand per turn), then the
            // rest one by one.
            let (u_body, u_last) = u.split_at_mut(t_rest.len());
            let (t4, t1) = t_rest.as_chunks::<4>();
            let (a4, a1) = a_rest.as_chunks::<4>();
            let (n4, n1) = n_rest.as_chunks::<4>();
            let (u4, u1) = u_body.as_chunks_mut::<4>();
            for ((out, tj), (aj, nj)) in u4.iter_mut().zip(t4).zip(a4.iter().zip(n4)) {
                for (o, ((&t, &a), &n)) in out.iter_mut().zip(tj.iter().zip(aj).zip(nj)) {
                    *o = mac2(t, a, n, bi, m, &mut c1, &mut c2);
                }
            }
            for ((out, &tj), (&aj, &nj)) in u1.iter_mut().zip(t1).zip(a1.iter().zip(n1)) {
                *out = mac2(tj, aj, nj, bi, m, &mut c1, &mut c2);
            }
            // top <= 1 and c1, c2 < 2^w: no overflow, and the new top <= 1.
            let high = Wide::from(top) + c1 + c2;
            if let Some(last) = u_last.first_mut() {
                *last = high as Word;
            }
            top = (high >> WORD_BITS) as Word;
            core::mem::swap(t, u);
        }
        self.below_n(t, top);
    }

    /// `a^2 R^-1 mod n` into `t`, for `a` < n (`w` is scratch): the square
    /// by separated operand scanning (SOS), each cross product `a_i a_j`
    /// (i < j) once, then doubled, plus the diagonal `a_i^2`: L(L+1)/2 word
    /// products instead of L^2; then a Montgomery reduction of the 2L-word
    /// square (L^2 products). 1.5 L^2 products in all, against 2 L^2 for
    /// [`Mont::mul`] (16 of the 17 steps of e = 65537 are squarings).
    fn square(&self, a: &[Word], t: &mut Vec<Word>, w: &mut Vec<Word>) {
        let len = a.len();
        w.clear();
        w.resize(2 * len, 0);
        // 1. The cross products: row i adds a_i a_j W^(i+j) for j > i into
        // w[2i+1 .. i+len] and its carry into w[i+len], which no earlier row
        // reached (row i' < i ends at i' + len).
        for (i, &ai) in a.iter().enumerate() {
            let (Some(rest), Some(row)) = (a.get(i + 1..), w.get_mut(2 * i + 1..i + len + 1)) else {
                continue;
            };
            let Some((last, row)) = row.split_last_mut() else {
                continue;
            };
            *last = mac_row(row, rest, Wide::from(ai)) as Word;
        }
        // 2. Doubled: the cross products sum to below a^2 / 2 < W^2L / 2, so
        // no bit leaves the 2L words.
        let mut carry: Word = 0;
        for wk in w.iter_mut() {
            let high = *wk >> (WORD_BITS - 1);
            *wk = (*wk << 1) | carry;
            carry = high;
        }
        // 3. Plus the diagonal a_i^2 at W^2i (the total, a^2, fits 2L words).
        let mut c: Wide = 0;
        let (pairs, _) = w.as_chunks_mut::<2>();
        for ([lo, hi], &ai) in pairs.iter_mut().zip(a) {
            let sq = Wide::from(ai) * Wide::from(ai);
            let x = Wide::from(*lo) + Wide::from(sq as Word) + c;
            *lo = x as Word;
            let y = Wide::from(*hi) + (sq >> WORD_BITS) + (x >> WORD_BITS);
            *hi = y as Word;
            c = y >> WORD_BITS;
        }
        // 4. Montgomery reduction (HAC 14.32): row i adds m n W^i, m chosen
        // to clear word i; its carry goes into word i + len, whose own carry
        // out (`top`, 0 or 1) is added one word up by the next row. The
        // result (w[len..] and top) is (a^2 + M n) / R < (n^2 + R n) / R < 2n.
        let mut top: Word = 0;
        for i in 0..len {
            let Some(window) = w.get_mut(i..i + len + 1) else {
                return;
            };
            let Some((next, row)) = window.split_last_mut() else {
                return;
            };
            let Some(&wi) = row.first() else {
                return;
            };
            let m = Wide::from(wi.wrapping_mul(self.n_neg_inv));
            let c = mac_row(row, &self.n, m);
            let x = Wide::from(*next) + c + Wide::from(top);
            *next = x as Word;
            top = (x >> WORD_BITS) as Word;
        }
        t.clear();
        t.extend_from_slice(w.get(len..).unwrap_or_default());
        self.below_n(t, top);
    }

    /// `(top, t)` < 2n (top the word above `t`) reduced below n: one
    /// conditional subtraction of n.
    fn below_n(&self, t: &mut [Word], top: Word) {
        if top != 0 || !less(t, &self.n) {
            let mut borrow = false;
            for (x, &y) in t.iter_mut().zip(&self.n) {
                let (d, b1) = x.overflowing_sub(y);
                let (d, b2) = d.overflowing_sub(Word::from(borrow));
                *x = d;
                borrow = b1 || b2;
            }
        }
    }

    /// `s^e mod n` as big-endian octets of the words' width, or `None` if
    /// `s >= n`.
    fn pow(&self, s_be: &[u8], e: u64) -> Option<Vec<u8>> {
        let len = self.n.len();
        let s = words_le(s_be, len)?;
        if !less(&s, &self.n) {
            return None;
        }
        let (mut t, mut u) = (vec![0; len], vec![0; len]);
        // Montgomery form: s R mod n.
        self.mul(&s, &self.r2, &mut t, &mut u);
        let base = t.clone();
        let mut x = base.clone();
        // Left-to-right square-and-multiply over e's bits below the top one;
        // e = 65537 = 2^16 + 1 is 16 squarings and one multiplication.
        //
        // An odd e ends with a multiplication: by s itself rather than by s R,
        // the last product x s R^-1 = s^e R R^-1 comes out of Montgomery form
        // already, which saves the final reduction. (x < n and s < n, as
        // `mul` needs.)
        let top = u64::BITS - 1 - e.leading_zeros();
        let mut plain = false;
        let mut wide = Vec::with_capacity(2 * len);
        for i in (0..top).rev() {
            self.square(&x, &mut t, &mut wide);
            core::mem::swap(&mut x, &mut t);
            if (e >> i) & 1 == 1 {
                if i == 0 {
                    self.mul(&x, &s, &mut t, &mut u);
                    plain = true;
                } else {
                    self.mul(&x, &base, &mut t, &mut u);
                }
                core::mem::swap(&mut x, &mut t);
            }
        }
        if !plain {
            let mut one = vec![0; len];
            if let Some(w) = one.first_mut() {
                *w = 1;
            }
            self.mul(&x, &one, &mut t, &mut u);
            core::mem::swap(&mut x, &mut t);
        }
        let mut out = Vec::with_capacity(len * WORD_BYTES);
        for w in x.iter().rev() {
            out.extend_from_slice(&w.to_be_bytes());
        }
        Some(out)
    }
}

/// `2^exp mod n` for `n` > 0 (big-endian octets), as big-endian octets of
/// n's length: the remainder of Knuth's long division (TAOCP vol. 2, 4.3.1,
/// algorithm D) in 32-bit words. A 4096-bit R^2 mod n takes ~100 k
/// instructions in wasm32, where Montgomery doublings and squarings took
/// ~1.2 M and crypto-bigint's bit-serial `rem` tens of millions. `None` only
/// on an internal inconsistency (never for n > 0).
pub(crate) fn pow2_mod(exp: usize, n_be: &[u8]) -> Option<Vec<u8>> {
    const B: u64 = 1 << 32;
    // The divisor as little-endian 32-bit words, without leading zero words.
    let mut v: Vec<u32> = n_be
        .rchunks(4)
        .map(|c| c.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)))
        .collect();
    while v.last() == Some(&0) {
        v.pop();
    }
    let k = v.len();
    // D1: normalize, the divisor's top bit set (the dividend shifted alike).
    let shift = v.last()?.leading_zeros();
    if shift > 0 {
        let mut carry = 0u32;
        for w in &mut v {
            let next = (*w << shift) | carry;
            carry = *w >> (32 - shift);
            *w = next;
        }
    }
    // The dividend 2^(exp + shift), with a spare zero word on top.
    let e = exp + shift as usize;
    let len = (e / 32 + 2).max(k + 1);
    let mut u = vec![0u32; len];
    *u.get_mut(e / 32)? = 1 << (e % 32);
    let v1 = u64::from(*v.last()?);
    let v2 = if k >= 2 { u64::from(*v.get(k - 2)?) } else { 0 };
    // D2-D7: one quotient word per position j, from the top.
    for j in (0..len - k).rev() {
        let top = (u64::from(*u.get(j + k)?) << 32) | u64::from(*u.get(j + k - 1)?);
        let mut qhat = top / v1;
        let mut rhat = top % v1;
        let u2 = if k >= 2 {
            u64::from(*u.get(j + k - 2)?)
        } else {
            0
        };
        // D3: at most two corrections make qhat the quotient word or one above.
        while qhat >= B || qhat * v2 > ((rhat << 32) | u2) {
            qhat -= 1;
            rhat += v1;
            if rhat >= B {
                break;
            }
        }
        // D4: u[j..=j+k] -= qhat * v.
        let window = u.get_mut(j..=j + k)?;
        let (low, high) = window.split_at_mut(k);
        let mut borrow = 0i64;
        let mut carry = 0u64;
        for (ui, vi) in low.iter_mut().zip(&v) {
            let p = qhat * u64::from(*vi) + carry;
            carry = p >> 32;
            let t = i64::from(*ui) - borrow - (p & 0xffff_ffff) as i64;
            *ui = t as u32;
            borrow = i64::from(t < 0);
        }
        let last = high.first_mut()?;
        let t = i64::from(*last) - borrow - carry as i64;
        *last = t as u32;
        // D6: qhat was one too large: add v back.
        if t < 0 {
            let mut c = 0u64;
            for (ui, vi) in low.iter_mut().zip(&v) {
                let s = u64::from(*ui) + u64::from(*vi) + c;
                *ui = s as u32;
                c = s >> 32;
            }
            *last = last.wrapping_add(c as u32);
        }
    }
    // D8: the remainder is u[..k] shifted back.
    let rem = u.get(..=k)?;
    let mut out = Vec::with_capacity(k * 4);
    for i in (0..k).rev() {
        let lo = *rem.get(i)?;
        let hi = *rem.get(i + 1)?;
        let w = if shift == 0 {
            lo
        } else {
            (lo >> shift) | (hi << (32 - shift))
        };
        out.extend_from_slice(&w.to_be_bytes());
    }
    Some(out)
}

/// Why an RSA public key (modulus and exponent) is refused at load. The
/// messages are the `rsa` 0.9.10 crate's, which checked keys before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaKeyError {
    /// More than 4096 bits.
    ModulusTooLarge,
    /// Even, or not above the exponent.
    InvalidModulus,
    /// Even exponent.
    InvalidExponent,
    /// Below 2.
    PublicExponentTooSmall,
    /// 2^33 or more.
    PublicExponentTooLarge,
}

impl core::fmt::Display for RsaKeyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RsaKeyError::ModulusTooLarge => "modulus too large",
            RsaKeyError::InvalidModulus => "invalid modulus",
            RsaKeyError::InvalidExponent => "invalid exponent",
            RsaKeyError::PublicExponentTooSmall => "public exponent too small",
            RsaKeyError::PublicExponentTooLarge => "public exponent too large",
        })
    }
}

impl std::error::Error for RsaKeyError {}

/// The widest modulus accepted (the `rsa` crate's `RsaPublicKey::MAX_SIZE`).
pub const MAX_MODULUS_BITS: usize = 4096;
/// The exponent bounds (the `rsa` crate's `MIN_PUB_EXPONENT`/`MAX_PUB_EXPONENT`).
const MIN_EXPONENT: u64 = 2;
const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// An RSA public key prepared for verification: its modulus and exponent
/// (checked at load: odd modulus, 2 <= e < 2^33 odd, e < n, at most 4096
/// bits) plus the Montgomery parameters of its modulus.
#[derive(Clone)]
pub struct RsaVerifier {
    /// The modulus, big-endian, without leading zero octets.
    n: Vec<u8>,
    engine: Mont,
    /// The public exponent.
    e: u64,
    /// Modulus length in octets (k in RFC 8017).
    k: usize,
    /// Modulus length in bits.
    mod_bits: usize,
}

impl core::fmt::Debug for RsaVerifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "RsaVerifier({} bits, e={}, montgomery {} x {WORD_BITS}-bit words)",
            self.mod_bits,
            self.e,
            self.engine.n.len()
        )
    }
}

/// Big-endian octets without their leading zeros.
fn strip_zeros(be: &[u8]) -> &[u8] {
    let first = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    be.get(first..).unwrap_or_default()
}

impl RsaVerifier {
    /// Checks the modulus `n` and exponent `e` (big-endian octets, leading
    /// zeros allowed) as the `rsa` crate did, in its order, and computes the
    /// Montgomery parameters of the modulus, once.
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<RsaVerifier, RsaKeyError> {
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let mod_bits = n
            .first()
            .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
        if mod_bits > MAX_MODULUS_BITS {
            return Err(RsaKeyError::ModulusTooLarge);
        }
        if e.len() > 8 {
            return Err(RsaKeyError::PublicExponentTooLarge);
        }
        let e_val = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // e >= n: n has more octets than e, or as many and is not above it.
        let e_not_below_n = e.len() > n.len() || (e.len() == n.len() && e >= n);
        if e_not_below_n || n.last().is_none_or(|b| b & 1 == 0) {
            return Err(RsaKeyError::InvalidModulus);
        }
        if e_val % 2 == 0 {
            return Err(RsaKeyError::InvalidExponent);
        }
        if e_val < MIN_EXPONENT {
            return Err(RsaKeyError::PublicExponentTooSmall);
        }
        if e_val > MAX_EXPONENT {
            return Err(RsaKeyError::PublicExponentTooLarge);
        }
        let k = n.len();
        // n odd and above e >= 3: `Mont::new`'s precondition holds and it
        // cannot fail.
        let engine = Mont::new(n).ok_or(RsaKeyError::InvalidModulus)?;
        Ok(RsaVerifier {
            n: n.to_vec(),
            engine,
            e: e_val,
            k,
            mod_bits,
        })
    }

    /// The modulus, big-endian, without leading zero octets.
    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    /// The public exponent.
    pub fn exponent(&self) -> u64 {
        self.e
    }

    /// Modulus length in octets.
    pub fn size(&self) -> usize {
        self.k
    }

    /// Modulus length in bits.
    pub fn bits(&self) -> usize {
        self.mod_bits
    }

    /// Whether verification uses precomputed Montgomery parameters: always,
    /// every key accepted gets them at load (kept for the tests that assert
    /// it).
    pub fn is_precomputed(&self) -> bool {
        true
    }

    /// RSAVP1 (RFC 8017 §5.2.2) and I2OSP into k octets: `None` if the
    /// signature is not exactly k octets or its value is not below n.
    fn public_op(&self, sig: &[u8]) -> Option<Vec<u8>> {
        if sig.len() != self.k {
            return None;
        }
        let full = self.engine.pow(sig, self.e)?;
        // The result is below n < 256^k: at most k significant octets.
        let lead = full.len().checked_sub(self.k);
        match lead {
            Some(lead) => {
                let (zeros, em) = full.split_at(lead);
                zeros.iter().all(|b| *b == 0).then(|| em.to_vec())
            }
            None => {
                let mut em = vec![0u8; self.k - full.len()];
                em.extend_from_slice(&full);
                Some(em)
            }
        }
    }

    /// RSASSA-PKCS1-V1_5-VERIFY / RSASSA-PSS-VERIFY of `message`'s `hash`.
    pub fn verify(&self, padding: RsaPadding, hash: RsaHash, message: &[u8], sig: &[u8]) -> bool {
        let Some(em) = self.public_op(sig) else {
            return false;
        };
        let m_hash = hash.digest(message);
        match padding {
            RsaPadding::Pkcs1v15 => {
                pkcs1v15_encode(hash, &m_hash, self.k).is_some_and(|expected| expected == em)
            }
            RsaPadding::Pss => match hash {
                RsaHash::Sha256 => pss_verify::<Sha256>(&m_hash, &em, self.mod_bits),
                RsaHash::Sha384 => pss_verify::<Sha384>(&m_hash, &em, self.mod_bits),
                RsaHash::Sha512 => pss_verify::<Sha512>(&m_hash, &em, self.mod_bits),
            },
        }
    }
}

/// EMSA-PKCS1-v1_5-ENCODE (RFC 8017 §9.2) into `em_len` octets:
/// `00 01 PS 00 T`, PS at least 8 octets of FF. `None` if `em_len` is too short.
fn pkcs1v15_encode(hash: RsaHash, m_hash: &[u8], em_len: usize) -> Option<Vec<u8>> {
    let prefix = hash.digest_info_prefix();
    let t_len = prefix.len() + m_hash.len();
    let ps_len = em_len.checked_sub(t_len + 3).filter(|ps| *ps >= 8)?;
    let mut em = Vec::with_capacity(em_len);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(2 + ps_len, 0xff);
    em.push(0x00);
    em.extend_from_slice(prefix);
    em.extend_from_slice(m_hash);
    Some(em)
}

/// MGF1 (RFC 8017 §B.2.1) with hash `D` over `seed`, XORed into `out`.
fn mgf1_xor<D: Digest>(out: &mut [u8], seed: &[u8]) {
    let h_len = <D as Digest>::output_size();
    for (counter, chunk) in (0u32..).zip(out.chunks_mut(h_len)) {
        let mut h = D::new();
        h.update(seed);
        h.update(counter.to_be_bytes());
        for (o, m) in chunk.iter_mut().zip(h.finalize().iter()) {
            *o ^= m;
        }
    }
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1-`D` and sLen = hLen, on the
/// k-octet block `block` = I2OSP(m, k) of a modulus of `mod_bits` bits.
fn pss_verify<D: Digest>(m_hash: &[u8], block: &[u8], mod_bits: usize) -> bool {
    let h_len = <D as Digest>::output_size();
    let s_len = h_len;
    // §8.1.2 step 2c: EM = I2OSP(m, emLen), emBits = modBits - 1. When emLen
    // is one octet shorter than k (modBits = 8j + 1), that octet must be zero.
    let Some(em_bits) = mod_bits.checked_sub(1) else {
        return false;
    };
    let em_len = em_bits.div_ceil(8);
    let Some(lead) = block.len().checked_sub(em_len) else {
        return false;
    };
    let (zeros, em) = block.split_at(lead);
    if zeros.iter().any(|b| *b != 0) || m_hash.len() != h_len {
        return false;
    }
    // 3. emLen < hLen + sLen + 2: inconsistent.
    let Some(db_len) = em_len.checked_sub(h_len + 1) else {
        return false;
    };
    if em_len < h_len + s_len + 2 {
        return false;
    }
    // 4. The rightmost octet is 0xbc.
    let Some((&0xbc, rest)) = em.split_last() else {
        return false;
    };
    // 5. maskedDB || H.
    let (masked_db, h) = rest.split_at(db_len);
    // 6. The leftmost 8emLen - emBits bits of maskedDB must be zero.
    let unused_bits = 8 * em_len - em_bits;
    let top_mask: u8 = 0xff >> unused_bits;
    let Some(first) = masked_db.first() else {
        return false;
    };
    if first & !top_mask != 0 {
        return false;
    }
    // 7-9. DB = maskedDB xor MGF1(H), its leftmost unused bits cleared.
    let mut db = masked_db.to_vec();
    mgf1_xor::<D>(&mut db, h);
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    // 10. DB = 00..00 01 salt, the zeros emLen - hLen - sLen - 2 octets long.
    let zeros_len = db_len - s_len - 1;
    let (ps, rest) = db.split_at(zeros_len);
    let Some((&0x01, salt)) = rest.split_first() else {
        return false;
    };
    if ps.iter().any(|b| *b != 0) {
        return false;
    }
    // 12-14. H' = Hash(00^8 || mHash || salt) must equal H.
    let mut hasher = D::new();
    hasher.update([0u8; 8]);
    hasher.update(m_hash);
    hasher.update(salt);
    hasher.finalize().iter().eq(h.iter())
}

/// An RSA signature: the octets as received (length and range checked at verification).
#[derive(Debug, Clone)]
pub struct RsaSig(Vec<u8>);

impl AlgorithmSignature for RsaSig {
    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        Ok(RsaSig(slice.to_vec()))
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
}

/// RS256/384/512 or PS256/384/512 for jwt-compact, verifying with an [`RsaVerifier`].
#[derive(Debug, Clone, Copy)]
pub struct FastRsa {
    padding: RsaPadding,
    hash: RsaHash,
}

impl FastRsa {
    pub const fn new(padding: RsaPadding, hash: RsaHash) -> FastRsa {
        FastRsa { padding, hash }
    }
    pub const fn rs256() -> FastRsa {
        FastRsa::new(RsaPadding::Pkcs1v15, RsaHash::Sha256)
    }
    pub const fn rs384() -> FastRsa {
        FastRsa::new(RsaPadding::Pkcs1v15, RsaHash::Sha384)
    }
    pub const fn rs512() -> FastRsa {
        FastRsa::new(RsaPadding::Pkcs1v15, RsaHash::Sha512)
    }
    pub const fn ps256() -> FastRsa {
        FastRsa::new(RsaPadding::Pss, RsaHash::Sha256)
    }
    pub const fn ps384() -> FastRsa {
        FastRsa::new(RsaPadding::Pss, RsaHash::Sha384)
    }
    pub const fn ps512() -> FastRsa {
        FastRsa::new(RsaPadding::Pss, RsaHash::Sha512)
    }
}

impl Algorithm for FastRsa {
    type SigningKey = VerifyOnly;
    type VerifyingKey = RsaVerifier;
    type Signature = RsaSig;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(match (self.padding, self.hash) {
            (RsaPadding::Pkcs1v15, RsaHash::Sha256) => "RS256",
            (RsaPadding::Pkcs1v15, RsaHash::Sha384) => "RS384",
            (RsaPadding::Pkcs1v15, RsaHash::Sha512) => "RS512",
            (RsaPadding::Pss, RsaHash::Sha256) => "PS256",
            (RsaPadding::Pss, RsaHash::Sha384) => "PS384",
            (RsaPadding::Pss, RsaHash::Sha512) => "PS512",
        })
    }

    fn sign(&self, signing_key: &Self::SigningKey, _message: &[u8]) -> Self::Signature {
        match *signing_key {}
    }

    fn verify_signature(
        &self,
        signature: &Self::Signature,
        verifying_key: &Self::VerifyingKey,
        message: &[u8],
    ) -> bool {
        verifying_key.verify(self.padding, self.hash, message, &signature.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh).
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn verifier(public: &rsa::RsaPublicKey) -> RsaVerifier {
        use rsa::traits::PublicKeyParts;
        RsaVerifier::from_components(&public.n().to_bytes_be(), &public.e().to_bytes_be()).unwrap()
    }

    #[test]
    fn the_montgomery_path_agrees_with_the_rsa_crates_big_integers() {
        use rsa::traits::PublicKeyParts;
        let private = &scopegate_testkit::keys().rsa;
        let public = private.to_public_key();
        let fast = verifier(&public);
        assert!(fast.is_precomputed());
        assert_eq!(fast.modulus(), &public.n().to_bytes_be()[..]);
        assert_eq!(fast.bits(), public.n().bits());
        let msg = b"header.payload";
        let digest = Sha256::digest(msg);
        let pkcs = private
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
            .unwrap();
        let pss = private
            .sign_with_rng(
                &mut rsa::rand_core::OsRng,
                rsa::Pss::new_with_salt::<Sha256>(32),
                &digest,
            )
            .unwrap();
        assert!(fast.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, msg, &pkcs));
        assert!(fast.verify(RsaPadding::Pss, RsaHash::Sha256, msg, &pss));
        assert!(!fast.verify(RsaPadding::Pss, RsaHash::Sha256, msg, &pkcs));
        assert!(!fast.verify(RsaPadding::Pkcs1v15, RsaHash::Sha384, msg, &pkcs));
        // n itself and a short signature are refused before any arithmetic.
        let n = public.n().to_bytes_be();
        assert!(!fast.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, msg, &n));
        assert!(!fast.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, msg, &pkcs[1..]));
        // The same block as the rsa crate's modpow for arbitrary values below n.
        for seed in 0u8..8 {
            let mut s: Vec<u8> = (0..256)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect();
            s[0] &= 0x7f;
            let reference = rsa::BigUint::from_bytes_be(&s).modpow(public.e(), public.n());
            let mut expected = vec![0u8; 256 - reference.to_bytes_be().len()];
            expected.extend_from_slice(&reference.to_bytes_be());
            assert_eq!(fast.public_op(&s), Some(expected), "seed {seed}");
        }
    }

    fn big(words: &[Word]) -> rsa::BigUint {
        let be: Vec<u8> = words.iter().rev().flat_map(|w| w.to_be_bytes()).collect();
        rsa::BigUint::from_bytes_be(&be)
    }

    /// Odd moduli of 2048 bits (the test key's), of every width up to 4096
    /// bits, and of a few words, built from the test key's modulus.
    fn moduli() -> Vec<rsa::BigUint> {
        use rsa::traits::PublicKeyParts;
        let base = scopegate_testkit::keys().rsa.to_public_key().n().clone();
        let mut out = vec![];
        for bits in [2048usize, 2047, 2049, 2500, 3072, 3073, 4000, 4096] {
            out.push(if bits == 2048 {
                base.clone()
            } else {
                let shaped = if bits > 2048 {
                    base.clone() << (bits - 2048)
                } else {
                    base.clone() >> (2048 - bits)
                };
                let top = rsa::BigUint::from(1u8) << (bits - 1);
                (shaped % &top) | top | rsa::BigUint::from(1u8)
            });
        }
        // A word or two, the top word small or full.
        for n in [5u128, 0xffff_fffb, 0x1_0000_0001, u64::MAX as u128 - 58, u128::MAX - 158] {
            out.push(rsa::BigUint::from(n));
        }
        out
    }

    #[test]
    fn r_squared_mod_n_is_the_rsa_crates_for_every_width() {
        for n in moduli() {
            let v = RsaVerifier::from_components(&n.to_bytes_be(), &[3]).unwrap();
            let words = v.engine.n.len();
            assert_eq!(words, n.to_bytes_be().len().div_ceil(WORD_BYTES));
            assert_eq!(big(&v.engine.n), n);
            let r = rsa::BigUint::from(1u8) << (words * WORD_BITS as usize);
            assert_eq!(big(&v.engine.r2), (&r * &r) % &n, "{} bits", n.bits());
            // -n^-1 mod 2^w
            let w = rsa::BigUint::from(1u8) << WORD_BITS as usize;
            let n0 = &n % &w;
            let inv = rsa::BigUint::from(v.engine.n_neg_inv);
            assert_eq!((n0 * inv + 1u8) % &w, rsa::BigUint::from(0u8));
        }
    }

    #[test]
    fn montgomery_products_are_the_rsa_crates() {
        // a b R^-1 mod n for a, b below n: random values, the extremes (0, 1,
        // n - 1, n - 2) and values with every word full, whose products push
        // the running sum to the top of its range (the conditional
        // subtraction taken and not taken).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in moduli() {
            let v = RsaVerifier::from_components(&n.to_bytes_be(), &[3]).unwrap();
            let m = &v.engine;
            let len = m.n.len();
            let r = rsa::BigUint::from(1u8) << (len * WORD_BITS as usize);
            let reduce = |v: rsa::BigUint| -> Vec<Word> {
                let v = v % &n;
                let mut be = vec![0u8; len * WORD_BYTES - v.to_bytes_be().len()];
                be.extend_from_slice(&v.to_bytes_be());
                words_le(&be, len).unwrap()
            };
            let mut values = vec![
                rsa::BigUint::from(0u8),
                rsa::BigUint::from(1u8),
                &n - 1u8,
                &n - 2u8,
                (&r - 1u8) % &n,
            ];
            for _ in 0..12 {
                let raw: Vec<u8> = (0..len * WORD_BYTES).map(|_| next() as u8).collect();
                values.push(rsa::BigUint::from_bytes_be(&raw));
            }
            let (mut t, mut u) = (vec![0; len], vec![0; len]);
            let mut wide = vec![];
            for (i, a) in values.iter().enumerate() {
                // The squaring gives what the multiplication gives.
                let aw = reduce(a.clone());
                m.square(&aw, &mut t, &mut wide);
                let squared = t.clone();
                m.mul(&aw, &aw, &mut t, &mut u);
                assert_eq!(squared, t, "{} bits: square", n.bits());
                for b in values.iter().skip(i) {
                    let (aw, bw) = (reduce(a.clone()), reduce(b.clone()));
                    m.mul(&aw, &bw, &mut t, &mut u);
                    let got = big(&t);
                    // got = a b R^-1 mod n  <=>  got R = a b (mod n), got < n.
                    assert!(got < n);
                    assert_eq!((&got * &r) % &n, (big(&aw) * big(&bw)) % &n, "{} bits", n.bits());
                }
            }
        }
    }

    #[test]
    fn long_division_remainders_are_the_rsa_crates() {
        // Divisors of 1 to 20 octets (one word, normalized or not, several
        // words), exponents below, at and far above the divisor's size.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 1..=20usize {
            for _ in 0..6 {
                let n: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let n_big = rsa::BigUint::from_bytes_be(&n);
                if n_big == rsa::BigUint::from(0u8) {
                    continue;
                }
                for exp in [
                    0usize,
                    1,
                    7,
                    31,
                    32,
                    33,
                    64,
                    100,
                    8 * len,
                    8 * len + 1,
                    300,
                    1000,
                ] {
                    let ours = pow2_mod(exp, &n).unwrap();
                    let theirs = (rsa::BigUint::from(1u8) << exp) % &n_big;
                    assert_eq!(
                        rsa::BigUint::from_bytes_be(&ours),
                        theirs,
                        "2^{exp} mod {n:02x?}"
                    );
                }
            }
        }
    }

    #[test]
    fn keys_are_checked_as_the_rsa_crate_checks_them() {
        use rsa::traits::PublicKeyParts;
        let n = scopegate_testkit::keys()
            .rsa
            .to_public_key()
            .n()
            .to_bytes_be();
        let cases: Vec<(Vec<u8>, Vec<u8>, Option<RsaKeyError>)> = vec![
            (n.clone(), vec![1, 0, 1], None),
            // Leading zeros are not part of the value.
            ([&[0u8, 0][..], &n].concat(), vec![0, 1, 0, 1], None),
            (n.clone(), vec![3], None),
            (n.clone(), vec![1, 0xff, 0xff, 0xff, 0xff], None),
            (
                n.clone(),
                vec![2, 0, 0, 0, 1],
                Some(RsaKeyError::PublicExponentTooLarge),
            ),
            (
                n.clone(),
                vec![1; 9],
                Some(RsaKeyError::PublicExponentTooLarge),
            ),
            (n.clone(), vec![1, 0, 0], Some(RsaKeyError::InvalidExponent)),
            (
                n.clone(),
                vec![1],
                Some(RsaKeyError::PublicExponentTooSmall),
            ),
            (n.clone(), vec![], Some(RsaKeyError::InvalidExponent)),
            (
                [&n[..255], &[n[255] & 0xfe][..]].concat(),
                vec![1, 0, 1],
                Some(RsaKeyError::InvalidModulus),
            ),
            (
                vec![0xff; 513],
                vec![1, 0, 1],
                Some(RsaKeyError::ModulusTooLarge),
            ),
            (vec![0xff; 512], vec![1, 0, 1], None),
            (vec![5], vec![7], Some(RsaKeyError::InvalidModulus)),
            (vec![], vec![1, 0, 1], Some(RsaKeyError::InvalidModulus)),
        ];
        for (n, e, want) in cases {
            let ours = RsaVerifier::from_components(&n, &e).err();
            let theirs = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            );
            assert_eq!(ours, want, "n {} octets, e {e:?}", n.len());
            match (ours, theirs) {
                (None, Ok(_)) => {}
                (Some(ours), Err(theirs)) => assert_eq!(ours.to_string(), theirs.to_string()),
                (ours, theirs) => panic!("ours {ours:?}, rsa {theirs:?}"),
            }
        }
    }

    #[test]
    fn pkcs1_encoding_needs_room_for_eight_padding_octets() {
        let h = [0u8; 32];
        // 3 + 19 + 32 = 54 octets of structure: 62 is the shortest block.
        assert!(pkcs1v15_encode(RsaHash::Sha256, &h, 61).is_none());
        let em = pkcs1v15_encode(RsaHash::Sha256, &h, 62).unwrap();
        assert_eq!(
            &em[..11],
            &[0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]
        );
        assert_eq!(em.len(), 62);
    }
}
