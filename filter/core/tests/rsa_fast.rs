//! The precomputed RSA verifier (src/rsa_fast.rs) against the `rsa` crate's own
//! verification: every algorithm, every supported modulus width, odd sizes,
//! non-65537 exponents, bit flips, boundary signature values and forged
//! paddings. Keys: fixed OpenSSL-generated keys in tests/rsa_keys/ (no key
//! generation at test time).
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

use jwt_compact::alg::Rsa;
use jwt_compact::{Algorithm, AlgorithmExt, Claims, Header, UntrustedToken};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::rand_core::OsRng;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use scopegate_core::keys::{KeyMaterial, key_from_pem};
use scopegate_core::rsa_fast::{FastRsa, RsaHash, RsaPadding, RsaVerifier};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// (file, modulus bits, e)
const KEYS: &[(&str, &str, usize, u64)] = &[
    (
        "2048-e65537",
        include_str!("rsa_keys/rsa-2048-e65537.pem"),
        2048,
        65537,
    ),
    (
        "3072-e65537",
        include_str!("rsa_keys/rsa-3072-e65537.pem"),
        3072,
        65537,
    ),
    (
        "4096-e65537",
        include_str!("rsa_keys/rsa-4096-e65537.pem"),
        4096,
        65537,
    ),
    (
        "2047-e65537",
        include_str!("rsa_keys/rsa-2047-e65537.pem"),
        2047,
        65537,
    ),
    (
        "2049-e65537",
        include_str!("rsa_keys/rsa-2049-e65537.pem"),
        2049,
        65537,
    ),
    (
        "2560-e65537",
        include_str!("rsa_keys/rsa-2560-e65537.pem"),
        2560,
        65537,
    ),
    ("2048-e3", include_str!("rsa_keys/rsa-2048-e3.pem"), 2048, 3),
    (
        "2048-e65539",
        include_str!("rsa_keys/rsa-2048-e65539.pem"),
        2048,
        65539,
    ),
];

const ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

struct TestKey {
    name: &'static str,
    private: RsaPrivateKey,
    public: RsaPublicKey,
    /// Loaded as the filter loads keys (PEM through keys.rs).
    fast: RsaVerifier,
}

fn load(name: &'static str, pem: &str, bits: usize, e: u64) -> TestKey {
    let private = RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
    let public = private.to_public_key();
    assert_eq!(public.n().bits(), bits, "{name}");
    assert_eq!(public.e(), &BigUint::from(e), "{name}");
    let spki = public.to_public_key_pem(LineEnding::LF).unwrap();
    let key = key_from_pem(None, &spki, None).unwrap();
    let KeyMaterial::Rsa(fast) = key.material() else {
        panic!("{name}: not an RSA key");
    };
    assert!(fast.is_precomputed(), "{name}: {fast:?}");
    assert_eq!(fast.size(), public.size());
    TestKey {
        name,
        fast: fast.clone(),
        private,
        public,
    }
}

fn keys() -> Vec<TestKey> {
    KEYS.iter()
        .map(|(name, pem, bits, e)| load(name, pem, *bits, *e))
        .collect()
}

fn key(name: &str) -> TestKey {
    let (n, pem, bits, e) = KEYS.iter().find(|k| k.0 == name).unwrap();
    load(n, pem, *bits, *e)
}

fn scheme(alg: &str) -> (RsaPadding, RsaHash) {
    let padding = if alg.starts_with("RS") {
        RsaPadding::Pkcs1v15
    } else {
        RsaPadding::Pss
    };
    let hash = match &alg[2..] {
        "256" => RsaHash::Sha256,
        "384" => RsaHash::Sha384,
        _ => RsaHash::Sha512,
    };
    (padding, hash)
}

fn digest(alg: &str, msg: &[u8]) -> Vec<u8> {
    match &alg[2..] {
        "256" => Sha256::digest(msg).to_vec(),
        "384" => Sha384::digest(msg).to_vec(),
        _ => Sha512::digest(msg).to_vec(),
    }
}

fn sign(k: &TestKey, alg: &str, msg: &[u8]) -> Vec<u8> {
    let d = digest(alg, msg);
    match alg {
        "RS256" => k.private.sign(Pkcs1v15Sign::new::<Sha256>(), &d),
        "RS384" => k.private.sign(Pkcs1v15Sign::new::<Sha384>(), &d),
        "RS512" => k.private.sign(Pkcs1v15Sign::new::<Sha512>(), &d),
        "PS256" => k
            .private
            .sign_with_rng(&mut OsRng, Pss::new_with_salt::<Sha256>(32), &d),
        "PS384" => k
            .private
            .sign_with_rng(&mut OsRng, Pss::new_with_salt::<Sha384>(48), &d),
        "PS512" => k
            .private
            .sign_with_rng(&mut OsRng, Pss::new_with_salt::<Sha512>(64), &d),
        _ => unreachable!(),
    }
    .unwrap()
}

/// The `rsa` crate's verification, as jwt-compact 0.8 configures it.
fn reference(k: &TestKey, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
    let d = digest(alg, msg);
    let p = &k.public;
    match alg {
        "RS256" => p.verify(Pkcs1v15Sign::new::<Sha256>(), &d, sig),
        "RS384" => p.verify(Pkcs1v15Sign::new::<Sha384>(), &d, sig),
        "RS512" => p.verify(Pkcs1v15Sign::new::<Sha512>(), &d, sig),
        "PS256" => p.verify(Pss::new_with_salt::<Sha256>(32), &d, sig),
        "PS384" => p.verify(Pss::new_with_salt::<Sha384>(48), &d, sig),
        "PS512" => p.verify(Pss::new_with_salt::<Sha512>(64), &d, sig),
        _ => unreachable!(),
    }
    .is_ok()
}

fn fast(k: &TestKey, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
    let (padding, hash) = scheme(alg);
    k.fast.verify(padding, hash, msg, sig)
}

/// Both verifiers agree; returns their verdict.
fn both(k: &TestKey, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
    let ours = fast(k, alg, msg, sig);
    let theirs = reference(k, alg, msg, sig);
    assert_eq!(ours, theirs, "{} {alg}: ours {ours}, rsa {theirs}", k.name);
    ours
}

/// Raw RSA with the private key: a "signature" over an arbitrary block.
fn raw_sign(k: &TestKey, block: &[u8]) -> Vec<u8> {
    let m = BigUint::from_bytes_be(block);
    assert!(&m < k.public.n());
    to_k(&m.modpow(k.private.d(), k.public.n()), k.public.size())
}

/// Raw RSA with the public key: the block inside a signature.
fn raw_open(k: &TestKey, sig: &[u8]) -> Vec<u8> {
    let s = BigUint::from_bytes_be(sig);
    to_k(&s.modpow(k.public.e(), k.public.n()), k.public.size())
}

fn to_k(x: &BigUint, k: usize) -> Vec<u8> {
    let b = x.to_bytes_be();
    let mut out = vec![0u8; k - b.len()];
    out.extend_from_slice(&b);
    out
}

const MSG: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2F1dGgudGVzdCIsInN1YiI6ImFsaWNlIn0";

#[test]
fn valid_signatures_verify_for_every_algorithm_size_and_exponent() {
    for k in keys() {
        for alg in ALGS {
            let sig = sign(&k, alg, MSG);
            assert!(both(&k, alg, MSG, &sig), "{} {alg}", k.name);
            // Another algorithm's signature never verifies.
            for other in ALGS.iter().filter(|a| **a != alg) {
                assert!(!both(&k, other, MSG, &sig), "{} {alg} as {other}", k.name);
            }
        }
    }
}

#[test]
fn tokens_verify_through_jwt_compact_with_the_fast_algorithm() {
    type Obj = Map<String, Value>;
    let claims = Claims::new(serde_json::from_str::<Obj>(r#"{"sub":"alice"}"#).unwrap());
    for name in ["2048-e65537", "3072-e65537", "4096-e65537", "2049-e65537"] {
        let k = key(name);
        for (alg, reference, ours) in [
            ("RS256", Rsa::rs256(), FastRsa::rs256()),
            ("RS384", Rsa::rs384(), FastRsa::rs384()),
            ("RS512", Rsa::rs512(), FastRsa::rs512()),
            ("PS256", Rsa::ps256(), FastRsa::ps256()),
            ("PS384", Rsa::ps384(), FastRsa::ps384()),
            ("PS512", Rsa::ps512(), FastRsa::ps512()),
        ] {
            assert_eq!(ours.name(), alg);
            let token = reference
                .token(&Header::empty(), &claims, &k.private)
                .unwrap();
            let untrusted = UntrustedToken::new(&token).unwrap();
            let verified = ours.validator::<Obj>(&k.fast).validate(&untrusted).unwrap();
            assert_eq!(verified.claims().custom["sub"], "alice");
            // The algorithm name is checked by jwt-compact's validator.
            let other = if alg.starts_with('R') {
                FastRsa::ps256()
            } else {
                FastRsa::rs256()
            };
            assert!(
                other
                    .validator::<Obj>(&k.fast)
                    .validate(&untrusted)
                    .is_err()
            );
        }
    }
}

/// Flips bit `i` (0 = least significant bit of the last octet).
fn flip(bytes: &[u8], i: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let len = b.len();
    b[len - 1 - i / 8] ^= 1 << (i % 8);
    b
}

/// Every bit for RS256 and PS256 with the 2048-bit e = 65537 key (the
/// common case, both paddings); for the other algorithms and keys (larger,
/// odd sizes, other exponents) the first and last 32 bits and a stride of
/// 61, to keep the suite's time reasonable. In wasm32 (debug build in Node,
/// ~15x slower) a stride of 127 and the first and last 16 bits everywhere:
/// the wasm run shows the same code behaves the same there, the native run
/// is the exhaustive one.
fn bits_to_flip(k: &TestKey, alg: &str, bits: usize) -> Vec<usize> {
    let wasm = cfg!(target_arch = "wasm32");
    let every = !wasm && k.name == "2048-e65537" && matches!(alg, "RS256" | "PS256");
    let (stride, edge) = if wasm { (127, 16) } else { (61, 32) };
    (0..bits)
        .filter(|i| every || i.is_multiple_of(stride) || *i < edge || *i >= bits - edge)
        .collect()
}

#[test]
fn every_single_bit_flip_of_the_signature_is_rejected_by_both() {
    for k in keys() {
        let bits = 8 * k.public.size();
        for alg in ALGS {
            let sig = sign(&k, alg, MSG);
            for i in bits_to_flip(&k, alg, bits) {
                assert!(
                    !both(&k, alg, MSG, &flip(&sig, i)),
                    "{} {alg} bit {i}",
                    k.name
                );
            }
        }
    }
}

#[test]
fn every_single_bit_flip_of_the_signing_input_is_rejected_by_both() {
    for name in ["2048-e65537", "4096-e65537", "2048-e3"] {
        let k = key(name);
        for alg in ALGS {
            let sig = sign(&k, alg, MSG);
            for i in bits_to_flip(&k, alg, 8 * MSG.len()) {
                assert!(!both(&k, alg, &flip(MSG, i), &sig), "{name} {alg} bit {i}");
            }
        }
    }
}

#[test]
fn boundary_signature_values_and_wrong_lengths_are_rejected() {
    for k in keys() {
        let size = k.public.size();
        let n = k.public.n().clone();
        let one = BigUint::from(1u8);
        let mut values = vec![
            BigUint::from(0u8),
            one.clone(),
            BigUint::from(2u8),
            &n - &one,
            n.clone(),
        ];
        let max = (BigUint::from(1u8) << (8 * size)) - &one;
        if &n + &one <= max {
            values.push(&n + &one);
        }
        values.push(max);
        for alg in ALGS {
            for v in &values {
                let sig = to_k(v, size);
                assert_eq!(sig.len(), size);
                assert!(!both(&k, alg, MSG, &sig), "{} {alg} s={v:x}", k.name);
            }
            let good = sign(&k, alg, MSG);
            let mut long = vec![0u8];
            long.extend_from_slice(&good);
            for bad in [
                &good[1..],
                &good[..size - 1],
                &long[..],
                &[][..],
                &[0u8][..],
            ] {
                assert!(
                    !both(&k, alg, MSG, bad),
                    "{} {alg} len {}",
                    k.name,
                    bad.len()
                );
            }
        }
    }
}

#[test]
fn a_pkcs1_signature_plus_n_is_rejected_by_both_and_a_pss_one_by_us() {
    // The 2047-bit key leaves room for s + n in k octets.
    let k = key("2047-e65537");
    for alg in ALGS {
        let sig = sign(&k, alg, MSG);
        let shifted = to_k(
            &(BigUint::from_bytes_be(&sig) + k.public.n()),
            k.public.size(),
        );
        assert_eq!(shifted.len(), k.public.size());
        assert!(!fast(&k, alg, MSG, &shifted), "{alg}: s + n accepted");
        // rsa 0.9.10's PSS path reduces s mod n without checking s < n
        // (RFC 8017 §8.1.2 step 2a, RSAVP1 step 1): a malleable signature we refuse.
        assert_eq!(
            reference(&k, alg, MSG, &shifted),
            alg.starts_with("PS"),
            "{alg}"
        );
    }
}

fn pkcs1_block(size: usize, prefix: &[u8], hash: &[u8], ps_len: usize, tail: &[u8]) -> Vec<u8> {
    let mut em = vec![0x00, 0x01];
    em.extend(std::iter::repeat_n(0xff, ps_len));
    em.push(0x00);
    em.extend_from_slice(prefix);
    em.extend_from_slice(hash);
    em.extend_from_slice(tail);
    assert_eq!(em.len(), size, "block length");
    em
}

const SHA256_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

#[test]
fn pkcs1_blocks_other_than_the_exact_encoding_are_rejected() {
    for name in ["2048-e65537", "2048-e3", "3072-e65537"] {
        let k = key(name);
        let size = k.public.size();
        let h = Sha256::digest(MSG).to_vec();
        let full_ps = size - 3 - SHA256_INFO.len() - 32;
        // The exact encoding, signed raw: accepted (checks the helper itself).
        let good = pkcs1_block(size, &SHA256_INFO, &h, full_ps, &[]);
        assert!(both(&k, "RS256", MSG, &raw_sign(&k, &good)), "{name}");

        let sha1_info: [u8; 15] = [
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ];
        let sha1_of_msg = {
            // Not SHA-1 (not a dependency): any 20 octets make the point.
            h[..20].to_vec()
        };
        // DigestInfo without the NULL parameters (30 2f 30 0b 06 09 OID 04 20).
        let mut no_null = vec![0x30, 0x2f, 0x30, 0x0b];
        no_null.extend_from_slice(&SHA256_INFO[4..15]);
        no_null.extend_from_slice(&[0x04, 0x20]);
        let mut sha512_oid = SHA256_INFO;
        sha512_oid[14] = 0x03;
        let mut bad_ps = good.clone();
        bad_ps[10] = 0xfe;
        let mut bt2 = good.clone();
        bt2[1] = 0x02;
        let mut no_zero = good.clone();
        no_zero[2 + full_ps] = 0x01;
        let forged = [
            // Garbage after the hash (Bleichenbacher'06: short PS, trailing bytes).
            (
                "garbage after the hash",
                pkcs1_block(size, &SHA256_INFO, &h, 8, &vec![0xab; full_ps - 8]),
            ),
            (
                "zeros after the hash",
                pkcs1_block(size, &SHA256_INFO, &h, 8, &vec![0; full_ps - 8]),
            ),
            (
                "SHA-1 DigestInfo",
                pkcs1_block(size, &sha1_info, &sha1_of_msg, size - 3 - 15 - 20, &[]),
            ),
            (
                "SHA-512 OID with a SHA-256 hash",
                pkcs1_block(size, &sha512_oid, &h, full_ps, &[]),
            ),
            (
                "DigestInfo without NULL",
                pkcs1_block(size, &no_null, &h, full_ps + 2, &[]),
            ),
            ("a non-FF padding octet", bad_ps),
            ("block type 2", bt2),
            ("no zero separator", no_zero),
        ];
        for (what, block) in forged {
            assert!(
                !both(&k, "RS256", MSG, &raw_sign(&k, &block)),
                "{name}: {what}"
            );
        }
    }
}

#[test]
fn pss_accepts_only_a_salt_of_the_hash_length_and_the_same_hash() {
    // 4096-bit PSS signing is slow in the wasm32 debug run: native only.
    let names: &[&str] = if cfg!(target_arch = "wasm32") {
        &["2048-e65537", "2049-e65537"]
    } else {
        &["2048-e65537", "4096-e65537", "2049-e65537"]
    };
    for name in names {
        let k = key(name);
        for (alg, h_len) in [("PS256", 32), ("PS384", 48), ("PS512", 64)] {
            let d = digest(alg, MSG);
            for salt in [0usize, 20, h_len - 1, h_len + 1, 2 * h_len] {
                let sig = match alg {
                    "PS256" => {
                        k.private
                            .sign_with_rng(&mut OsRng, Pss::new_with_salt::<Sha256>(salt), &d)
                    }
                    "PS384" => {
                        k.private
                            .sign_with_rng(&mut OsRng, Pss::new_with_salt::<Sha384>(salt), &d)
                    }
                    _ => {
                        k.private
                            .sign_with_rng(&mut OsRng, Pss::new_with_salt::<Sha512>(salt), &d)
                    }
                }
                .unwrap();
                assert!(!both(&k, alg, MSG, &sig), "{name} {alg} salt {salt}");
            }
        }
        // A PSS signature over SHA-256 with MGF1/SHA-384 and a 32-octet salt... is
        // not expressible with the rsa crate; a PS384 signature checked as PS256
        // covers the wrong-hash case (hash and MGF1 both differ).
        let sig = sign(&k, "PS384", MSG);
        assert!(!both(&k, "PS256", MSG, &sig), "{name}");
    }
}

#[test]
fn pss_blocks_with_a_wrong_trailer_or_top_bits_are_rejected() {
    for name in ["2048-e65537", "2047-e65537", "2049-e65537", "2048-e65539"] {
        let k = key(name);
        let size = k.public.size();
        let sig = sign(&k, "PS256", MSG);
        let em = raw_open(&k, &sig);
        // Sanity: the re-signed block verifies.
        assert!(both(&k, "PS256", MSG, &raw_sign(&k, &em)), "{name}");
        let mut trailer = em.clone();
        trailer[size - 1] = 0xbd;
        assert!(
            !both(&k, "PS256", MSG, &raw_sign(&k, &trailer)),
            "{name} trailer"
        );
        // The leftmost 8 emLen - emBits bits must be zero (emBits = modBits - 1).
        let em_bits = k.public.n().bits() - 1;
        let top_bit = em_bits; // the first bit above emBits, counted from 0
        let mut top = em.clone();
        top[size - 1 - top_bit / 8] |= 1 << (top_bit % 8);
        // (At 2049 bits that bit is the octet above emLen: the next test.)
        if !em_bits.is_multiple_of(8) && BigUint::from_bytes_be(&top) < *k.public.n() {
            assert!(
                !both(&k, "PS256", MSG, &raw_sign(&k, &top)),
                "{name} top bit"
            );
        }
    }
}

#[test]
fn a_pss_block_with_a_nonzero_octet_above_em_len_is_refused() {
    // modBits = 2049: emLen = k - 1, so the block's leading octet is not part
    // of EM and must be zero (RFC 8017 §8.1.2 step 2c). rsa 0.9.10 skips it.
    let k = key("2049-e65537");
    let size = k.public.size();
    let mut tested = 0;
    for _ in 0..32 {
        let sig = sign(&k, "PS256", MSG);
        let mut em = raw_open(&k, &sig);
        assert_eq!(em[0], 0);
        em[0] = 1;
        if BigUint::from_bytes_be(&em) >= *k.public.n() {
            continue;
        }
        let forged = raw_sign(&k, &em);
        assert_eq!(forged.len(), size);
        assert!(!fast(&k, "PS256", MSG, &forged));
        assert!(
            reference(&k, "PS256", MSG, &forged),
            "rsa 0.9.10 ignores the octet"
        );
        tested += 1;
        if tested == 3 {
            break;
        }
    }
    assert!(tested > 0, "no block below n in 32 tries");
}

#[test]
fn the_precomputed_verifier_reports_its_key() {
    // Words of the target: 64 bits natively, 32 in wasm32; as many as the
    // modulus's octets need.
    let word_bytes = (usize::BITS / 8) as usize;
    let k = key("4096-e65537");
    let text = format!("{:?}", k.fast);
    let want = format!("montgomery {} x {}-bit words", 512 / word_bytes, usize::BITS);
    assert!(
        text.contains("4096 bits") && text.contains("e=65537") && text.contains(&want),
        "{text}"
    );
    let k = key("2049-e65537");
    let text = format!("{:?}", k.fast);
    let want = format!("montgomery {} x", 257usize.div_ceil(word_bytes));
    assert!(text.contains("2049 bits") && text.contains(&want), "{text}");
    assert_eq!(k.fast.modulus(), &k.public.n().to_bytes_be()[..]);
    assert_eq!(BigUint::from(k.fast.exponent()), *k.public.e());
    assert_eq!(k.fast.bits(), 2049);
}
