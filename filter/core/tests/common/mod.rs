#![allow(dead_code, clippy::unwrap_used)]
pub use scopegate_testkit::*;

pub fn policy() -> scopegate_core::Policy {
    scopegate_core::compile_json(config(default_rules()).to_string().as_bytes()).unwrap()
}

/// Hex digits (whitespace ignored) as bytes.
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Deterministic bytes from a label (the keys and messages of the
/// differential tests: reproducible, no RNG, the same natively and in wasm).
pub fn bytes(label: &str, i: u64, len: usize) -> Vec<u8> {
    use sha2::Digest as _;
    let mut out = Vec::with_capacity(len);
    let mut block = 0u64;
    while out.len() < len {
        let h = sha2::Sha256::new()
            .chain_update(label.as_bytes())
            .chain_update(i.to_be_bytes())
            .chain_update(block.to_be_bytes())
            .finalize();
        out.extend_from_slice(&h);
        block += 1;
    }
    out.truncate(len);
    out
}

