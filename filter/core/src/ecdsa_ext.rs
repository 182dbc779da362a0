//! `FastEs256`/`FastEs384`/`FastEs512`: the ES* algorithms scopegate
//! verifies with (`verify.rs`), through jwt-compact's `Algorithm` trait so
//! the validator machinery (algorithm name, fixed signature length) is
//! jwt-compact's own; verification by [`crate::ec_fast`].
//!
//! Signatures are the JWS raw `r || s` form (RFC 7518 §3.4); parsing refuses
//! another length and `r` or `s` equal to zero or not below the group order,
//! which is the "psychic signature" (CVE-2022-21449) defence.

use std::borrow::Cow;
use std::num::NonZeroUsize;

use jwt_compact::{Algorithm, AlgorithmSignature};

use crate::ec_fast::{self, EcKey, EcSignature, L256, L384, L521};

/// The filter only verifies: these algorithms have no signing key type, so
/// `sign` cannot be called (tests sign with the curve crates directly).
#[derive(Debug, Clone, Copy)]
pub enum VerifyOnly {}

macro_rules! fast_ecdsa_alg {
    ($alg:ident, $sig:ident, $l:ident, $curve:path, $name:literal, $len:literal) => {
        #[doc = concat!("A raw `r || s` ", $name, " signature, `r` and `s` in `[1, n−1]`.")]
        #[derive(Debug, Clone)]
        pub struct $sig(pub EcSignature<$l>);

        impl AlgorithmSignature for $sig {
            const LENGTH: Option<NonZeroUsize> = NonZeroUsize::new($len);

            fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
                let curve = $curve().ok_or_else(|| anyhow::anyhow!("curve unavailable"))?;
                EcSignature::from_slice(curve, slice)
                    .map($sig)
                    .ok_or_else(|| anyhow::anyhow!("signature error"))
            }

            fn as_bytes(&self) -> Cow<'_, [u8]> {
                Cow::Owned(self.0.to_bytes())
            }
        }

        #[doc = concat!("`", $name, "` verified by [`crate::ec_fast`].")]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $alg;

        impl Algorithm for $alg {
            type SigningKey = VerifyOnly;
            type VerifyingKey = EcKey<$l>;
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

fast_ecdsa_alg!(FastEs256, Es256Signature, L256, ec_fast::p256, "ES256", 64);
fast_ecdsa_alg!(FastEs384, Es384Signature, L384, ec_fast::p384, "ES384", 96);
fast_ecdsa_alg!(FastEs512, Es512Signature, L521, ec_fast::p521, "ES512", 132);
