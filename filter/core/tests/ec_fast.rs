//! scopegate's ECDSA verifier (`scopegate_core::ec_fast`: its own field
//! arithmetic, comb tables) against the curve crates' own
//! `VerifyingKey::verify`, for P-256, P-384 and P-521: the
//! same verdict on valid signatures over many keys and messages, on every
//! single-bit flip of signature and signing input, on edge scalars (0, n−1, n,
//! above n), on high-S, on wrong keys, on keys that are small multiples of G
//! and on a signature whose R is the identity.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
// (filter/scripts/test-core-wasm.sh).
// (The tests are in the per-curve modules, which import it again.)
#[cfg(target_arch = "wasm32")]
#[allow(unused_imports)]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// In wasm32 (debug build, Node) a verification by the crates costs ~10x
/// native: the wasm run checks fewer keys and every `WASM_STRIDE`-th bit
/// flip for P-384 and P-521, so filter/scripts/test-core-wasm.sh stays short.
/// Natively every case runs.
const IN_WASM: bool = cfg!(target_arch = "wasm32");

fn scaled(native: usize, wasm: usize) -> usize {
    if IN_WASM { wasm } else { native }
}

mod common;
use common::bytes;
use jwt_compact::AlgorithmSignature as _;
use sha2::Digest as _;

/// `a + b` of two big-endian numbers of the same length (carry dropped).
fn add_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut carry = 0u16;
    for i in (0..a.len()).rev() {
        let v = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

/// `a − b` of two big-endian numbers of the same length, `a ≥ b`.
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let v = i16::from(a[i]) - i16::from(b[i]) - borrow;
        out[i] = v.rem_euclid(256) as u8;
        borrow = i16::from(v < 0);
    }
    out
}

/// `a − 1` of a big-endian number > 0.
fn dec_be(a: &[u8]) -> Vec<u8> {
    let mut out = a.to_vec();
    for b in out.iter_mut().rev() {
        if *b == 0 {
            *b = 0xff;
        } else {
            *b -= 1;
            break;
        }
    }
    out
}

macro_rules! curve_tests {
    ($modname:ident, $curve:ident, $Curve:ty, $l:ident, $ours:ident, $FastSig:ty, $size:literal, $keys:literal, $flip_stride:literal, $wasm_stride:literal) => {
        mod $modname {
            use super::*;
            // The glob above makes `test` ambiguous on wasm32: name it again.
            #[cfg(target_arch = "wasm32")]
            use wasm_bindgen_test::wasm_bindgen_test as test;
            use $curve::ecdsa::signature::{Signer as _, Verifier as _};
            use $curve::ecdsa::{Signature, SigningKey, VerifyingKey};
            use $curve::elliptic_curve::ops::Reduce;
            use $curve::elliptic_curve::{PrimeField as _, sec1::ToEncodedPoint as _};
            use $curve::{ProjectivePoint, PublicKey, Scalar};
            use scopegate_core::ec_fast::{EcKey, $l};

            const SIZE: usize = $size;

            fn signing_key(i: u64) -> SigningKey {
                (0..)
                    .find_map(|t| SigningKey::from_slice(&bytes(stringify!($curve), i * 1000 + t, SIZE)).ok())
                    .unwrap()
            }

            fn signing_key_of(d: Scalar) -> SigningKey {
                SigningKey::from_slice(&d.to_repr()).unwrap()
            }

            fn fast_key(vk: &VerifyingKey) -> EcKey<$l> {
                let point = PublicKey::from_affine(*vk.as_affine()).unwrap().to_encoded_point(false);
                let key = EcKey::from_sec1(scopegate_core::ec_fast::$ours().unwrap(), point.as_bytes()).unwrap();
                assert_eq!(key.to_sec1(), point.as_bytes(), "the key round-trips");
                key
            }

            /// Our verdict on a signature the crate parsed.
            fn fast_verify(fast: &EcKey<$l>, msg: &[u8], sig: &Signature) -> bool {
                let ours = <$FastSig>::try_from_slice(&sig.to_bytes()).expect("a signature the crate parsed");
                assert_eq!(ours.0.to_bytes(), sig.to_bytes().to_vec());
                fast.verify(msg, &ours.0)
            }

            /// Both verdicts over raw signature bytes: the crates' and ours.
            /// A signature refused at parsing (r or s out of [1, n−1]) is a
            /// rejection for both; parsing must agree too.
            fn verdicts(vk: &VerifyingKey, fast: &EcKey<$l>, msg: &[u8], sig: &[u8]) -> (bool, bool) {
                let theirs = Signature::from_slice(sig).map(|s| vk.verify(msg, &s).is_ok());
                let ours = <$FastSig>::try_from_slice(sig);
                assert_eq!(theirs.is_ok(), ours.is_ok(), "parsing differs on {sig:02x?}");
                match Signature::from_slice(sig) {
                    Ok(s) => (theirs.unwrap(), fast_verify(fast, msg, &s)),
                    Err(_) => (false, false),
                }
            }

            fn order_be() -> Vec<u8> {
                // n = (n − 1) + 1, with n − 1 = −1 in the scalar field.
                let n_minus_1 = (-Scalar::ONE).to_repr();
                let mut one = vec![0u8; SIZE];
                one[SIZE - 1] = 1;
                add_be(&n_minus_1, &one)
            }

            #[test]
            fn same_verdict_as_the_crate_over_many_keys_and_messages() {
                let mut accepted = 0;
                let keys = scaled($keys, 4) as u64;
                for i in 0..keys {
                    let sk = signing_key(i);
                    let vk = VerifyingKey::from(&sk);
                    let fast = fast_key(&vk);
                    let other = fast_key(&VerifyingKey::from(&signing_key(i + 100)));
                    for m in 0..4u64 {
                        let msg = bytes("message", i * 10 + m, (m as usize) * 37);
                        let sig: Signature = sk.sign(&msg);
                        let raw = sig.to_bytes();
                        assert_eq!(verdicts(&vk, &fast, &msg, &raw), (true, true), "key {i} msg {m}");
                        accepted += 1;
                        // Another message, another key, a mangled signature.
                        let other_msg = bytes("other", i * 10 + m, 20);
                        assert_eq!(verdicts(&vk, &fast, &other_msg, &raw), (false, false));
                        assert!(!fast_verify(&other, &msg, &sig), "another key accepted it");
                        let mut swapped = raw.to_vec();
                        swapped.rotate_left(SIZE);
                        let v = verdicts(&vk, &fast, &msg, &swapped);
                        assert_eq!(v.0, v.1);
                        assert!(!v.1, "s || r accepted");
                    }
                }
                assert_eq!(accepted, keys * 4);
            }

            #[test]
            fn every_single_bit_flip_is_rejected_by_both() {
                let sk = signing_key(7);
                let vk = VerifyingKey::from(&sk);
                let fast = fast_key(&vk);
                let msg = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSIsInNjb3BlIjoicmVhZCJ9".to_vec();
                let sig: Signature = sk.sign(&msg);
                let raw = sig.to_bytes().to_vec();
                assert_eq!(verdicts(&vk, &fast, &msg, &raw), (true, true));
                let mut checked = 0;
                // Every bit of the signature; of the signing input every
                // `$flip_stride`-th bit (1 for P-256; P-384 and P-521 through the
                // crates' generic code in debug builds are slow, natively and
                // in wasm).
                let sig_stride = scaled(1, $wasm_stride);
                let input_stride = scaled($flip_stride, $wasm_stride * $flip_stride);
                for bit in (0..raw.len() * 8).step_by(sig_stride) {
                    let mut s = raw.clone();
                    s[bit / 8] ^= 1 << (bit % 8);
                    assert_eq!(verdicts(&vk, &fast, &msg, &s), (false, false), "signature bit {bit}");
                    checked += 1;
                }
                for bit in (0..msg.len() * 8).step_by(input_stride) {
                    let mut m = msg.clone();
                    m[bit / 8] ^= 1 << (bit % 8);
                    assert_eq!(verdicts(&vk, &fast, &m, &raw), (false, false), "input bit {bit}");
                    checked += 1;
                }
                assert!(checked >= raw.len() * 8 / sig_stride + msg.len() * 8 / input_stride);
            }

            #[test]
            fn r_and_s_out_of_range_or_at_the_edges() {
                let sk = signing_key(3);
                let vk = VerifyingKey::from(&sk);
                let fast = fast_key(&vk);
                let msg = b"edge scalars";
                let sig: Signature = sk.sign(msg);
                let raw = sig.to_bytes().to_vec();
                let (r, s) = raw.split_at(SIZE);
                let n = order_be();
                let zero = vec![0u8; SIZE];
                let n_minus_1 = dec_be(&n);
                let mut n_plus_1 = n.clone();
                *n_plus_1.last_mut().unwrap() += 1;
                let all_ones = vec![0xffu8; SIZE];
                for (what, bad) in [("0", &zero), ("n", &n), ("n+1", &n_plus_1), ("max", &all_ones)] {
                    for (pos, sig) in [("r", [bad.as_slice(), s].concat()), ("s", [r, bad.as_slice()].concat())] {
                        assert!(<$FastSig>::try_from_slice(&sig).is_err(), "{pos} = {what} parsed");
                        assert!(Signature::from_slice(&sig).is_err(), "{pos} = {what} parsed by the crate");
                        assert_eq!(verdicts(&vk, &fast, msg, &sig), (false, false));
                    }
                }
                // n − 1 is a valid scalar: parsed, then rejected by both.
                for sig in [[n_minus_1.as_slice(), s].concat(), [r, n_minus_1.as_slice()].concat(), [n_minus_1.as_slice(), n_minus_1.as_slice()].concat()] {
                    assert!(<$FastSig>::try_from_slice(&sig).is_ok());
                    assert_eq!(verdicts(&vk, &fast, msg, &sig), (false, false));
                }
                // r = s = 1.
                let mut one = zero.clone();
                one[SIZE - 1] = 1;
                assert_eq!(verdicts(&vk, &fast, msg, &[one.as_slice(), one.as_slice()].concat()), (false, false));
                // Wrong lengths are refused at parsing.
                assert!(<$FastSig>::try_from_slice(&raw[..raw.len() - 1]).is_err());
                assert!(<$FastSig>::try_from_slice(&[raw.as_slice(), &[0]].concat()).is_err());
            }

            #[test]
            fn high_s_gets_the_crates_verdict() {
                for i in 0..4 {
                    let sk = signing_key(20 + i);
                    let vk = VerifyingKey::from(&sk);
                    let fast = fast_key(&vk);
                    let msg = bytes("high-s", i, 50);
                    let sig: Signature = sk.sign(&msg);
                    let (r, s) = sig.split_scalars();
                    let flipped = Signature::from_scalars(*r, -*s).unwrap();
                    let theirs = vk.verify(&msg, &flipped).is_ok();
                    assert_eq!(fast_verify(&fast, &msg, &flipped), theirs);
                    // ECDSA accepts (r, n − s); the crates do not require low-S.
                    assert!(theirs, "the crate refused high-S");
                }
            }

            #[test]
            fn keys_that_are_small_multiples_of_g() {
                // d = 1 (Q = G), 2, 3, 5 and n − 1 (Q = −G).
                for d in [Scalar::ONE, Scalar::from(2u64), Scalar::from(3u64), Scalar::from(5u64), -Scalar::ONE] {
                    let sk = signing_key_of(d);
                    let vk = VerifyingKey::from(&sk);
                    let expected = (ProjectivePoint::GENERATOR * d).to_affine();
                    assert_eq!(vk.as_affine().to_encoded_point(false), expected.to_encoded_point(false));
                    let fast = fast_key(&vk);
                    for m in 0..3 {
                        let msg = bytes("small", m, 40);
                        let sig: Signature = sk.sign(&msg);
                        assert_eq!(verdicts(&vk, &fast, &msg, &sig.to_bytes()), (true, true));
                        // Signed by another key: rejected by both.
                        let foreign: Signature = signing_key(m + 50).sign(&msg);
                        assert_eq!(verdicts(&vk, &fast, &msg, &foreign.to_bytes()), (false, false));
                    }
                }
            }

            #[test]
            fn a_signature_whose_r_point_is_the_identity_is_rejected() {
                // R = w·(e + r·d)·G, the identity when d = −e/r: pick r, derive
                // the key from the message's e; any s then gives R = 0.
                let msg = b"identity";
                let digest = <$Curve as HashOf>::hash(msg);
                let field = ecdsa::hazmat::bits2field::<$Curve>(&digest).unwrap();
                let e = <Scalar as Reduce<<$Curve as $curve::elliptic_curve::Curve>::Uint>>::reduce_bytes(&field);
                let r = Scalar::from(123_456_789u64);
                let d = -(e * r.invert().unwrap());
                let sk = signing_key_of(d);
                let vk = VerifyingKey::from(&sk);
                let fast = fast_key(&vk);
                for s in [Scalar::ONE, Scalar::from(7u64), -Scalar::from(11u64)] {
                    let w = s.invert().unwrap();
                    let q = ProjectivePoint::from(*vk.as_affine());
                    let point = ProjectivePoint::GENERATOR * (e * w) + q * (r * w);
                    assert_eq!(point, ProjectivePoint::IDENTITY, "the construction is right");
                    let sig = Signature::from_scalars(r, s).unwrap();
                    assert_eq!(verdicts(&vk, &fast, msg, &sig.to_bytes()), (false, false));
                }
                // The same key still verifies its genuine signatures.
                let good: Signature = sk.sign(msg);
                assert_eq!(verdicts(&vk, &fast, msg, &good.to_bytes()), (true, true));
            }

            #[test]
            fn an_r_point_whose_x_is_above_n_verifies_through_r_plus_n() {
                // x(R) mod n = r with x(R) in [n, p): the rare case the check
                // `X = (r + n)·Z²` exists for. No discrete log is needed: take
                // the first x > n with a point R, any s, and solve the
                // verification equation for the key, Q = u2⁻¹·(R − u1·G).
                use $curve::elliptic_curve::sec1::FromEncodedPoint as _;
                let n = order_be();
                let one = {
                    let mut one = vec![0u8; SIZE];
                    one[SIZE - 1] = 1;
                    one
                };
                // From n + 1: r = x − n must be at least 1.
                let mut x = add_be(&n, &one);
                let point = loop {
                    let encoded = $curve::EncodedPoint::from_bytes([&[0x02u8][..], &x].concat()).unwrap();
                    let candidate = $curve::AffinePoint::from_encoded_point(&encoded);
                    if bool::from(candidate.is_some()) {
                        break candidate.expect("decompressed");
                    }
                    x = add_be(&x, &one);
                };
                let r_be = sub_be(&x, &n);
                let mut r_bytes = $curve::FieldBytes::default();
                r_bytes.copy_from_slice(&r_be);
                let r = Scalar::from_repr(r_bytes).expect("r");
                let msg = b"x(R) above n";
                let digest = <$Curve as HashOf>::hash(msg);
                let field = ecdsa::hazmat::bits2field::<$Curve>(&digest).unwrap();
                let e = <Scalar as Reduce<<$Curve as $curve::elliptic_curve::Curve>::Uint>>::reduce_bytes(&field);
                for s in [Scalar::from(7u64), -Scalar::from(3u64)] {
                    let w = s.invert().expect("w");
                    let (u1, u2) = (e * w, r * w);
                    let q = (ProjectivePoint::from(point) - ProjectivePoint::GENERATOR * u1) * u2.invert().expect("u2");
                    let vk = VerifyingKey::from_affine(q.to_affine()).unwrap();
                    let fast = fast_key(&vk);
                    let sig = Signature::from_scalars(r, s).unwrap();
                    assert_eq!(verdicts(&vk, &fast, msg, &sig.to_bytes()), (true, true));
                    // r itself is not x(R): the other candidate, x(R) − n + 1, is refused by both.
                    let r1 = Signature::from_scalars(r + Scalar::ONE, s).unwrap();
                    assert_eq!(verdicts(&vk, &fast, msg, &r1.to_bytes()), (false, false));
                }
            }

            #[test]
            fn the_table_is_built_on_first_use_and_shared_by_clones() {
                let sk = signing_key(40);
                let vk = VerifyingKey::from(&sk);
                let fast = fast_key(&vk);
                let clone = fast.clone();
                assert!(!fast.is_precomputed() && !clone.is_precomputed());
                let sig: Signature = sk.sign(b"x");
                assert!(fast_verify(&clone, b"x", &sig));
                assert!(fast.is_precomputed(), "the clone's table is the original's");
                assert!(fast.precompute());
                // Memory per table stays bounded (reported in BENCHMARKS.md).
                let bytes = scopegate_core::ec_fast::table_bytes::<$l>();
                eprintln!("{}: {bytes} bytes per comb table", stringify!($curve));
                assert!(bytes <= 64 * 1024, "{bytes} bytes per table");
            }
        }
    };
}

/// The curve's JWS hash, to build the identity-R signature by hand.
trait HashOf {
    fn hash(msg: &[u8]) -> Vec<u8>;
}

impl HashOf for ::p256::NistP256 {
    fn hash(msg: &[u8]) -> Vec<u8> {
        sha2::Sha256::digest(msg).to_vec()
    }
}
impl HashOf for ::p384::NistP384 {
    fn hash(msg: &[u8]) -> Vec<u8> {
        sha2::Sha384::digest(msg).to_vec()
    }
}
impl HashOf for ::p521::NistP521 {
    fn hash(msg: &[u8]) -> Vec<u8> {
        sha2::Sha512::digest(msg).to_vec()
    }
}

curve_tests!(
    es256,
    p256,
    ::p256::NistP256,
    L256,
    p256,
    scopegate_core::ecdsa_ext::Es256Signature,
    32,
    24,
    1,
    2
);
curve_tests!(
    es384,
    p384,
    ::p384::NistP384,
    L384,
    p384,
    scopegate_core::ecdsa_ext::Es384Signature,
    48,
    8,
    2,
    8
);
curve_tests!(
    es512,
    p521,
    ::p521::NistP521,
    L521,
    p521,
    scopegate_core::ecdsa_ext::Es512Signature,
    66,
    8,
    3,
    8
);
