//! Refusing JSON that different parsers would read differently.
//!
//! RFC 7515 §4 and RFC 7519 §4 say a JOSE header or claims set with duplicate
//! member names must be rejected (or the last one used); since a backend or
//! another gateway may pick the first one, scopegate rejects them, at every
//! nesting level.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

struct NoDuplicates;

/// A member name, borrowed from the input when it has no escapes (most
/// names): no allocation per name.
struct MemberName<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(MemberNameVisitor)
    }
}

struct MemberNameVisitor;

impl<'de> Visitor<'de> for MemberNameVisitor {
    type Value = MemberName<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<MemberName<'de>, E> {
        Ok(MemberName(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<MemberName<'de>, E> {
        Ok(MemberName(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<MemberName<'de>, E> {
        Ok(MemberName(Cow::Owned(v)))
    }
}

impl<'de> de::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(MemberName(key)) = map.next_key::<MemberName<'de>>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom("duplicate member name"));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
}

/// `true` if `json` parses and no object in it repeats a member name.
pub fn is_unambiguous(json: &[u8]) -> bool {
    serde_json::from_slice::<NoDuplicates>(json).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh).
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn duplicates_are_found_at_any_depth() {
        assert!(is_unambiguous(br#"{"a":1,"b":{"c":[{"d":1},{"d":2}]}}"#));
        assert!(!is_unambiguous(br#"{"a":1,"a":2}"#));
        assert!(!is_unambiguous(br#"{"sub":"alice","x":{"y":1,"y":1}}"#));
        assert!(!is_unambiguous(br#"[{"a":1,"a":1}]"#));
        // Escapes are compared decoded: "a" and "\u0061" are the same name.
        assert!(!is_unambiguous(br#"{"a":1,"\u0061":2}"#));
        assert!(!is_unambiguous(b"{"));
    }
}
