//! scopegate's EdDSA verifier (`scopegate_core::ed_fast`, a fixed-base table
//! of −A per key) against ed25519-dalek's `VerifyingKey::verify`, the
//! verifier it replaces.
//!
//! A key from the input's seed, a message, an honest signature of it, then a
//! mutation: none, XOR of a mask into the signature, a whole signature from
//! the input, S + ℓ, the message changed, another key, or a key from any 32
//! bytes that decompress (points of small or mixed order included: `EdKey`
//! itself takes any point; keys.rs refuses the small-order ones at load).
//! Invariant: both give the same verdict, and an unmutated honest signature
//! is accepted (liveness).
#![no_main]

use arbitrary::Arbitrary;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use scopegate_core::ed_fast::EdKey;

#[derive(Debug, Arbitrary)]
enum Mutation {
    None,
    Xor { at: u8, mask: Vec<u8> },
    Raw(Vec<u8>),
    AddOrder,
    Message(Vec<u8>),
    OtherKey(u8),
    KeyBytes([u8; 32]),
}

#[derive(Debug, Arbitrary)]
struct Input {
    seed: [u8; 32],
    message: Vec<u8>,
    mutation: Mutation,
}

/// ℓ, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fuzz_target!(|input: Input| {
    let signer = SigningKey::from_bytes(&input.seed);
    let mut key = signer.verifying_key();
    let mut msg = input.message.clone();
    let mut raw = signer.sign(&msg).to_bytes().to_vec();
    let honest = matches!(input.mutation, Mutation::None);
    match &input.mutation {
        Mutation::None => {}
        Mutation::Xor { at, mask } => scopegate_fuzz::xor_wrapping(&mut raw, *at, mask),
        Mutation::Raw(bytes) => raw = bytes.clone(),
        Mutation::AddOrder => {
            let mut carry = 0u16;
            for j in 0..32 {
                let v = u16::from(raw[32 + j]) + u16::from(ELL[j]) + carry;
                raw[32 + j] = v as u8;
                carry = v >> 8;
            }
        }
        Mutation::Message(m) => msg = m.clone(),
        Mutation::OtherKey(b) => {
            let mut seed = input.seed;
            seed[0] ^= b | 1;
            key = SigningKey::from_bytes(&seed).verifying_key();
        }
        Mutation::KeyBytes(bytes) => match VerifyingKey::from_bytes(bytes) {
            Ok(k) => key = k,
            Err(_) => return,
        },
    }
    let theirs = ed25519_dalek::Signature::from_slice(&raw).is_ok_and(|s| key.verify(&msg, &s).is_ok());
    let ours = EdKey::from(key).verify(&msg, &raw);
    assert_eq!(theirs, ours, "verdicts differ: ed25519-dalek {theirs}, ed_fast {ours}");
    if honest {
        assert!(ours, "an honest signature was refused");
    }
});
