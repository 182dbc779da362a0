//! The fixed-base-table EdDSA verifier (`scopegate_core::ed_fast`) against
//! ed25519-dalek's `VerifyingKey::verify` (what jwt-compact's `Ed25519` calls):
//! RFC 8032 §7.1 vectors, then the same verdict over many keys and messages on
//! the honest signature, on single-bit flips of the signature, on a
//! non-canonical S (S + ℓ), on a foreign R, on the identity and all-zero
//! signatures, on other messages and other keys, and on wrong lengths.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
// (filter/scripts/test-core-wasm.sh).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;
use common::{bytes, hex};

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use scopegate_core::ed_fast::EdKey;

/// In wasm32 (debug build, Node) fewer keys and every third bit flip.
const IN_WASM: bool = cfg!(target_arch = "wasm32");

fn dalek(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| key.verify(msg, &s).is_ok())
}

/// Same verdict as ed25519-dalek; returns it.
fn same(key: &VerifyingKey, ours: &EdKey, msg: &[u8], sig: &[u8], what: &str) -> bool {
    let want = dalek(key, msg, sig);
    assert_eq!(ours.verify(msg, sig), want, "{what}");
    want
}

#[test]
fn rfc8032_test_vectors() {
    // RFC 8032 §7.1 TEST 1, 2, 3: (public key, message, signature).
    let vectors = [
        (
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];
    for (pk, msg, sig) in vectors {
        let key = VerifyingKey::from_bytes(&hex(pk).try_into().unwrap()).unwrap();
        let ours = EdKey::from(key);
        let (msg, sig) = (hex(msg), hex(sig));
        assert!(same(&key, &ours, &msg, &sig, "RFC 8032 vector"));
        let mut other = msg.clone();
        other.push(0);
        assert!(!same(
            &key,
            &ours,
            &other,
            &sig,
            "RFC 8032 vector, another message"
        ));
    }
}

#[test]
fn same_verdict_as_ed25519_dalek_over_keys_messages_and_mutations() {
    // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    let ell = hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let keys = if IN_WASM { 4 } else { 24 };
    let stride = if IN_WASM { 3 } else { 1 };
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..keys {
        let signer = SigningKey::from_bytes(&bytes("key", i, 32).try_into().unwrap());
        let key = signer.verifying_key();
        let ours = EdKey::from(key);
        let other_key = EdKey::from(
            SigningKey::from_bytes(&bytes("other", i, 32).try_into().unwrap()).verifying_key(),
        );
        let msg = bytes("msg", i, (i as usize * 37) % 300);
        let sig = signer.sign(&msg).to_bytes();
        assert!(same(&key, &ours, &msg, &sig, "honest"));
        accepted += 1;
        assert!(!other_key.verify(&msg, &sig), "another key");
        assert!(!same(
            &key,
            &ours,
            b"another message",
            &sig,
            "another message"
        ));
        // Every bit of R and S flipped (in wasm every third).
        for bit in (0..512).step_by(stride) {
            let mut bad = sig;
            bad[bit / 8] ^= 1 << (bit % 8);
            if !same(&key, &ours, &msg, &bad, &format!("key {i}, bit {bit}")) {
                refused += 1;
            }
        }
        // S + ℓ (still below 2^256 for these S): the same group equation holds,
        // but a non-canonical S is refused by both.
        let mut s_plus_l = sig;
        let mut carry = 0u16;
        for j in 0..32 {
            let v = u16::from(sig[32 + j]) + u16::from(ell[j]) + carry;
            s_plus_l[32 + j] = v as u8;
            carry = v >> 8;
        }
        if carry == 0 {
            assert!(!same(&key, &ours, &msg, &s_plus_l, "S + l"));
        }
        // R of another signature by the same key.
        let mut r_other = sig;
        r_other[..32].copy_from_slice(&signer.sign(b"other").to_bytes()[..32]);
        assert!(!same(&key, &ours, &msg, &r_other, "foreign R"));
        // Wrong lengths.
        assert!(!ours.verify(&msg, &sig[..63]));
        let mut long = sig.to_vec();
        long.push(0);
        assert!(!ours.verify(&msg, &long));
        assert!(!ours.verify(&msg, &[]));
    }
    assert!(accepted > 0 && refused > 0);
}

#[test]
fn the_table_is_built_on_first_use_and_shared_by_clones() {
    let signer = SigningKey::from_bytes(&bytes("key", 7, 32).try_into().unwrap());
    let a = EdKey::from(signer.verifying_key());
    let b = a.clone();
    assert!(!a.is_precomputed() && !b.is_precomputed());
    let sig = signer.sign(b"m").to_bytes();
    assert!(b.verify(b"m", &sig));
    assert!(
        a.is_precomputed(),
        "a clone's first use builds the shared table"
    );
    // A table of 32 x 8 affine Niels points (three field elements each).
    // (40-byte field elements in both backends, u32 x 10 and u64 x 5.)
    const { assert!(scopegate_core::ed_fast::TABLE_BYTES == 32 * 8 * 3 * 40) };
}

#[test]
fn the_identity_and_the_all_zero_signature_are_refused_as_dalek_refuses_them() {
    // S = 0 and R = the identity's encoding (y = 1): [k](−A) + [0]B is the
    // identity only if k A is, which a key of prime order never gives.
    let signer = SigningKey::from_bytes(&bytes("key", 99, 32).try_into().unwrap());
    let key = signer.verifying_key();
    let ours = EdKey::from(key);
    let mut sig = [0u8; 64];
    sig[0] = 1;
    assert!(!same(&key, &ours, b"m", &sig, "identity R, zero S"));
    assert!(!same(&key, &ours, b"m", &[0u8; 64], "all zero"));
    assert!(!same(&key, &ours, b"m", &[0xffu8; 64], "all ones"));
}
