//! scopegate's ECDSA verifier (`scopegate_core::ec_fast`: its own field
//! arithmetic, comb tables, variable time) against the curve crates' own `VerifyingKey::verify`, for
//! P-256, P-384 and P-521.
//!
//! A key from the input's seed (or a small multiple of G), a message, an
//! honest signature of it, then a mutation: none, XOR of a mask into the
//! signature, a whole signature from the input, s → n − s, the message
//! changed, or another key's verifying key. Invariant: both verifiers give the
//! same verdict, parsing included (`r`/`s` out of `[1, n−1]` refused by both),
//! and an unmutated honest signature is accepted (liveness). The key reaches
//! scopegate as a compressed or an uncompressed SEC1 point (bit 2 of
//! `curve`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use scopegate_core::ec_fast::{self, EcKey};

#[derive(Debug, Arbitrary)]
enum Mutation {
    None,
    Xor { at: u8, mask: Vec<u8> },
    Raw(Vec<u8>),
    NegateS,
    Message(Vec<u8>),
    OtherKey(u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    curve: u8,
    /// Private scalar seed; 1..=4 mean d = that small number (Q = d·G).
    seed: [u8; 8],
    message: Vec<u8>,
    mutation: Mutation,
}

fn seed_bytes(seed: &[u8; 8], len: usize) -> Vec<u8> {
    use sha2::Digest as _;
    let mut out = Vec::new();
    let mut i = 0u8;
    while out.len() < len {
        out.extend_from_slice(&sha2::Sha256::new().chain_update(seed).chain_update([i]).finalize());
        i += 1;
    }
    out.truncate(len);
    out
}

macro_rules! check {
    ($curve:ident, $size:literal, $input:expr) => {{
        use jwt_compact::AlgorithmSignature as _;
        use $curve::ecdsa::signature::{Signer as _, Verifier as _};
        use $curve::ecdsa::{Signature, SigningKey, VerifyingKey};
        let input = $input;
        let key_of = |seed: &[u8; 8]| -> Option<SigningKey> {
            let small = u64::from_be_bytes(*seed);
            let bytes = if (1..=4).contains(&small) {
                let mut b = vec![0u8; $size];
                b[$size - 1] = small as u8;
                b
            } else {
                seed_bytes(seed, $size)
            };
            SigningKey::from_slice(&bytes).ok()
        };
        let Some(sk) = key_of(&input.seed) else { return };
        let mut vk = VerifyingKey::from(&sk);
        let mut msg = input.message.clone();
        let sig: Signature = sk.sign(&msg);
        let mut raw = sig.to_bytes().to_vec();
        let honest = matches!(input.mutation, Mutation::None);
        match &input.mutation {
            Mutation::None => {}
            Mutation::Xor { at, mask } => scopegate_fuzz::xor_wrapping(&mut raw, *at, mask),
            Mutation::Raw(bytes) => raw = bytes.clone(),
            Mutation::NegateS => {
                let (r, s) = sig.split_scalars();
                raw = Signature::from_scalars(*r, -*s).unwrap().to_bytes().to_vec();
            }
            Mutation::Message(m) => msg = m.clone(),
            Mutation::OtherKey(b) => {
                let mut seed = input.seed;
                seed[0] ^= b | 1;
                match key_of(&seed) {
                    Some(other) => vk = VerifyingKey::from(&other),
                    None => return,
                }
            }
        }
        use $curve::elliptic_curve::sec1::ToEncodedPoint as _;
        let point = vk.as_affine().to_encoded_point(input.curve & 4 != 0);
        let fast = EcKey::from_sec1(ec_fast::$curve().unwrap(), point.as_bytes()).unwrap();
        let theirs = Signature::from_slice(&raw).ok();
        let ours = <sig::$curve>::try_from_slice(&raw).ok();
        assert_eq!(theirs.is_some(), ours.is_some(), "parsing differs");
        let (a, b) = match (theirs, ours) {
            (Some(s), Some(o)) => (vk.verify(&msg, &s).is_ok(), fast.verify(&msg, &o.0)),
            _ => (false, false),
        };
        assert_eq!(a, b, "verdicts differ: crate {a}, ec_fast {b}");
        if honest {
            assert!(b, "an honest signature was refused");
        }
    }};
}

#[allow(non_camel_case_types)]
mod sig {
    pub type p256 = scopegate_core::ecdsa_ext::Es256Signature;
    pub type p384 = scopegate_core::ecdsa_ext::Es384Signature;
    pub type p521 = scopegate_core::ecdsa_ext::Es512Signature;
}

fuzz_target!(|input: Input| {
    match input.curve % 3 {
        0 => check!(p256, 32, &input),
        1 => check!(p384, 48, &input),
        _ => check!(p521, 66, &input),
    }
});
