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

/// The error of [`parse_object`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// Some object repeats a member name.
    Duplicate,
    /// Not JSON, or not an object at the top.
    NotAnObject(String),
}

/// Parses `json` into an object in one pass, refusing a repeated member name
/// at any depth: [`is_unambiguous`] and `serde_json::from_slice::<Map<..>>`
/// together, without reading the input twice.
pub fn parse_object(json: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ObjectError> {
    match serde_json::from_slice::<Strict>(json) {
        Ok(Strict(serde_json::Value::Object(map))) => Ok(map),
        Ok(_) => Err(ObjectError::NotAnObject("not a JSON object".to_owned())),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(ObjectError::Duplicate),
        Err(e) => Err(ObjectError::NotAnObject(e.to_string())),
    }
}

const DUPLICATE: &str = "duplicate member name";

/// A JSON value whose objects never repeat a member name.
struct Strict(serde_json::Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<serde_json::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value::<Strict>()?;
            if out.insert(key, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(serde_json::Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<serde_json::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(v)) = seq.next_element::<Strict>()? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }

    fn visit_bool<E>(self, v: bool) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }
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

    #[test]
    fn parse_object_reads_what_serde_json_reads_and_refuses_duplicates() {
        for json in [
            r#"{"a":1,"b":{"c":[{"d":1},{"d":2}]},"e":"\u0061x","f":1.5,"g":-3,"h":null,"i":true}"#,
            r#"{}"#,
            r#"{"n":18446744073709551615,"m":-9223372036854775808,"x":1e400}"#,
        ] {
            let want: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(json).unwrap_or_default();
            if json.contains("1e400") {
                // serde_json refuses an out-of-range float; so must we.
                assert!(matches!(parse_object(json.as_bytes()), Err(ObjectError::NotAnObject(_))));
                continue;
            }
            assert_eq!(parse_object(json.as_bytes()), Ok(want), "{json}");
        }
        assert_eq!(parse_object(br#"{"a":1,"a":2}"#), Err(ObjectError::Duplicate));
        assert_eq!(parse_object(br#"{"x":{"y":1,"y":1}}"#), Err(ObjectError::Duplicate));
        assert_eq!(parse_object(br#"{"x":[{"d":1,"d":1}]}"#), Err(ObjectError::Duplicate));
        assert_eq!(parse_object(br#"{"a":1,"\u0061":2}"#), Err(ObjectError::Duplicate));
        for bad in [&b"{"[..], b"[1]", b"\"s\"", b"1", b"", b"{\"a\":1} x"] {
            assert!(matches!(parse_object(bad), Err(ObjectError::NotAnObject(_))), "{bad:?}");
        }
        // serde_json's depth limit holds.
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(parse_object(deep.as_bytes()), Err(ObjectError::NotAnObject(_))));
    }
}
