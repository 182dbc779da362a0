//! Where an ECDSA verification's time goes, per curve: `cargo bench -p
//! scopegate-core --bench ecdsa [-- P-256]`.
//!
//! - `<curve>/crate-verify`: the curve crate's `VerifyingKey::verify` (what
//!   scopegate used before `ec_fast`; a dev-dependency now), and its parts: `lincomb` (u1·G + u2·Q
//!   as two constant-time scalar multiplications), `scalar-invert` (s⁻¹,
//!   variable time), `to-affine` (one field inversion), `hash` (the curve's
//!   SHA-2 of a 300-byte signing input), `key-decode` (a SEC1 point, checked on
//!   the curve: once per key, at configure);
//! - `<curve>/fast-verify`: `ec_fast::EcKey::verify` with both comb tables
//!   built (scopegate's own field arithmetic); `<curve>/fast-key-decode`: a
//!   SEC1 point checked on the curve by `ec_fast`; `<curve>/key-table`:
//!   building one key's comb table (once per key, at its first use).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

macro_rules! curve_bench {
    ($fn:ident, $curve:ident, $name:literal, $hash:ty, $sig:ty) => {
        fn $fn(c: &mut Criterion) {
            use jwt_compact::AlgorithmSignature as _;
            use scopegate_core::ec_fast::{self, EcKey};
            use sha2::Digest as _;
            use $curve::ecdsa::signature::{Signer as _, Verifier as _};
            use $curve::ecdsa::{Signature, SigningKey, VerifyingKey};
            use $curve::elliptic_curve::ops::{Invert as _, LinearCombination as _};
            use $curve::elliptic_curve::sec1::ToEncodedPoint as _;
            use $curve::ProjectivePoint;

            let mut g = c.benchmark_group($name);
            g.warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(2))
                .sample_size(20);
            let sk = SigningKey::from_slice(&[0x5a; 32]).unwrap();
            let vk = VerifyingKey::from(&sk);
            let msg = vec![b'e'; 300];
            let sig: Signature = sk.sign(&msg);
            let sec1 = vk.as_affine().to_encoded_point(false);
            let curve = ec_fast::$curve().unwrap();
            let fast = EcKey::from_sec1(curve, sec1.as_bytes()).unwrap();
            let fast_sig = <$sig>::try_from_slice(&sig.to_bytes()).unwrap().0;
            assert!(vk.verify(&msg, &sig).is_ok() && fast.verify(&msg, &fast_sig));
            let (r, s) = sig.split_scalars();
            let w = *s.invert_vartime();
            let (u1, u2) = (*r * w, *r * w);
            let q = ProjectivePoint::from(*vk.as_affine());

            g.bench_function("crate-verify", |b| {
                b.iter(|| black_box(vk.verify(black_box(&msg), &sig)))
            });
            g.bench_function("lincomb", |b| {
                b.iter(|| {
                    black_box(ProjectivePoint::lincomb(
                        &ProjectivePoint::GENERATOR,
                        black_box(&u1),
                        &q,
                        &u2,
                    ))
                })
            });
            g.bench_function("scalar-invert", |b| {
                b.iter(|| black_box(black_box(&s).invert_vartime()))
            });
            g.bench_function("to-affine", |b| {
                b.iter(|| black_box(black_box(&q).to_affine()))
            });
            g.bench_function("hash", |b| {
                b.iter(|| black_box(<$hash>::digest(black_box(&msg))))
            });
            g.bench_function("key-decode", |b| {
                b.iter(|| black_box(VerifyingKey::from_sec1_bytes(black_box(sec1.as_bytes()))))
            });
            g.bench_function("fast-verify", |b| {
                b.iter(|| black_box(fast.verify(black_box(&msg), &fast_sig)))
            });
            g.bench_function("fast-key-decode", |b| {
                b.iter(|| black_box(EcKey::from_sec1(curve, black_box(sec1.as_bytes()))))
            });
            g.bench_function("key-table", |b| {
                b.iter(|| {
                    let k = EcKey::from_sec1(curve, sec1.as_bytes()).unwrap();
                    black_box(k.precompute())
                })
            });
            g.finish();
        }
    };
}

curve_bench!(p256_bench, p256, "P-256", sha2::Sha256, scopegate_core::ecdsa_ext::Es256Signature);
curve_bench!(p384_bench, p384, "P-384", sha2::Sha384, scopegate_core::ecdsa_ext::Es384Signature);
curve_bench!(p521_bench, p521, "P-521", sha2::Sha512, scopegate_core::ecdsa_ext::Es512Signature);

criterion_group!(benches, p256_bench, p384_bench, p521_bench);
criterion_main!(benches);
