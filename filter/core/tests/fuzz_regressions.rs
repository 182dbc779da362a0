//! Inputs the fuzz targets (filter/fuzz) found, kept as regression tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use scopegate_core::introspection::{self as i, Introspected};
use serde_json::Value;

/// introspection_reply: an answer shared between workers (shared_value ->
/// read_shared) must read back exactly, numbers included. serde_json's
/// default float parsing is not correctly rounded, so a claim such as
/// 900000000000000000000000300 became 9e26 on the worker that introspected
/// and 9.000000000000001e26 on the workers reading the shared slot (a
/// `required_claims` on it, or its header, could then differ by worker).
#[test]
fn a_shared_introspection_answer_reads_back_exactly_with_large_numbers() {
    let now = 1_800_000_000;
    let d = i::digest("the-token");
    for body in [
        r#"{"active": true, "cl97": 900000000000000000000000300}"#,
        r#"{"active": true, "x": 1.0000000000000002, "y": 2.2250738585072011e-308, "z": 123456789012345678901234567890}"#,
    ] {
        let answer = i::parse_object(body.as_bytes()).unwrap();
        assert!(matches!(answer, Introspected::Active(_)));
        let slot = i::shared_value(&d, now + 1, &answer);
        assert_eq!(
            i::read_shared(&slot, &d, now),
            Some((answer, now + 1)),
            "{body}"
        );
    }
    // And the parse itself is correctly rounded (as std's).
    for n in [
        "900000000000000000000000300",
        "2.2250738585072011e-308",
        "0.3",
    ] {
        let v: Value = serde_json::from_str(n).unwrap();
        assert_eq!(v.as_f64(), n.parse::<f64>().ok(), "{n}");
    }
}
