//! ES384 and ES512 for jwt-compact, which ships only ES256 (and ES256K); and
//! `FastEs256`/`FastEs384`/`FastEs512`, the algorithms scopegate verifies
//! with (`verify.rs`): the same names, signature types and validator
//! machinery, verification by [`crate::ec_fast`] (comb tables). `Es384` and
//! `Es512` (the curve crates' own verify) stay as the reference.
//!
//! Implemented through jwt-compact's `Algorithm` trait over the RustCrypto
//! `p384` and `p521` crates, so the validator machinery (algorithm name check,
//! fixed signature length, claims parsing) is jwt-compact's own. Signatures are
//! the JWS raw `r || s` form (RFC 7518 §3.4); `Signature::from_slice` refuses
//! `r` or `s` equal to zero or not below the group order, which is the
//! "psychic signature" (CVE-2022-21449) defence.

use std::borrow::Cow;
use std::num::NonZeroUsize;

use jwt_compact::{Algorithm, AlgorithmSignature};
use p384::ecdsa::signature::Verifier as _;

/// The filter only verifies: these algorithms have no signing key type, so
/// `sign` cannot be called (tests sign with the curve crates directly).
#[derive(Debug, Clone, Copy)]
pub enum VerifyOnly {}

macro_rules! ecdsa_alg {
    ($alg:ident, $sig:ident, $curve:ident, $name:literal, $len:literal) => {
        #[doc = concat!("`", $name, "`: ECDSA over ", stringify!($curve), " with the curve's SHA-2.")]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $alg;

        #[doc = concat!("A raw `r || s` ", $name, " signature.")]
        #[derive(Debug, Clone)]
        pub struct $sig($curve::ecdsa::Signature);

        impl AlgorithmSignature for $sig {
            const LENGTH: Option<NonZeroUsize> = NonZeroUsize::new($len);

            fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
                $curve::ecdsa::Signature::from_slice(slice)
                    .map($sig)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }

            fn as_bytes(&self) -> Cow<'_, [u8]> {
                Cow::Owned(self.0.to_bytes().to_vec())
            }
        }

        impl Algorithm for $alg {
            type SigningKey = VerifyOnly;
            type VerifyingKey = $curve::ecdsa::VerifyingKey;
            type Signature = $sig;

            fn name(&self) -> Cow<'static, str> {
                Cow::Borrowed($name)
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
                verifying_key.verify(message, &signature.0).is_ok()
            }
        }
    };
}

ecdsa_alg!(Es384, Es384Signature, p384, "ES384", 96);
ecdsa_alg!(Es512, Es512Signature, p521, "ES512", 132);

/// `Es256` signature (raw `r || s`), for [`FastEs256`].
#[derive(Debug, Clone)]
pub struct Es256Signature(p256::ecdsa::Signature);

impl AlgorithmSignature for Es256Signature {
    const LENGTH: Option<NonZeroUsize> = NonZeroUsize::new(64);

    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        p256::ecdsa::Signature::from_slice(slice)
            .map(Es256Signature)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.to_bytes().to_vec())
    }
}

// The algorithms scopegate verifies with: the same names, signature types and
// validator machinery, verification by `crate::ec_fast` (precomputed comb
// tables for G and for each key, variable time over public inputs).
macro_rules! fast_ecdsa_alg {
    ($alg:ident, $sig:ident, $curve:ty, $name:literal) => {
        #[doc = concat!("`", $name, "` verified by [`crate::ec_fast`].")]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $alg;

        impl Algorithm for $alg {
            type SigningKey = VerifyOnly;
            type VerifyingKey = crate::ec_fast::EcKey<$curve>;
            type Signature = $sig;

            fn name(&self) -> Cow<'static, str> {
                Cow::Borrowed($name)
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
                verifying_key.verify(message, &signature.0)
            }
        }
    };
}

fast_ecdsa_alg!(FastEs256, Es256Signature, p256::NistP256, "ES256");
fast_ecdsa_alg!(FastEs384, Es384Signature, p384::NistP384, "ES384");
fast_ecdsa_alg!(FastEs512, Es512Signature, p521::NistP521, "ES512");
