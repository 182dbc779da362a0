//! The limb of scopegate's own big-number and field arithmetic (`rsa_fast`,
//! `ec_fast`): the target's word, with products in the double word. wasm32
//! has a 32 x 32 -> 64-bit multiply (`i64.mul` of two zero-extended words)
//! but no 64 x 64 -> 128-bit one, so there the limbs are 32 bits; natively 64.

#[cfg(target_pointer_width = "64")]
pub(crate) type Word = u64;
#[cfg(target_pointer_width = "64")]
pub(crate) type Wide = u128;
#[cfg(not(target_pointer_width = "64"))]
pub(crate) type Word = u32;
#[cfg(not(target_pointer_width = "64"))]
pub(crate) type Wide = u64;

/// Octets of a [`Word`].
pub(crate) const WORD_BYTES: usize = (Word::BITS / 8) as usize;
