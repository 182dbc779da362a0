//! Token extraction from header values (scheme prefixes), query strings and
//! cookies, and their removal before forwarding.
//!
//! Invariants: a found token is never empty and never starts or ends with
//! blanks; a header without the scheme yields nothing; after removing the
//! token's query parameter or cookie, extraction finds nothing there and the
//! rest of the path (before `?`) is untouched.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use scopegate_core::token::{Found, TokenSource, cookies_without, extract, path_without_query_param};

#[derive(Debug, Arbitrary)]
struct Input {
    value: String,
    prefix: u8,
    name: String,
}

const PREFIXES: [&str; 4] = ["Bearer ", "", "DPoP ", "Token"];

fuzz_target!(|input: Input| {
    let value = input.value.as_str();
    let prefix = PREFIXES[usize::from(input.prefix) % PREFIXES.len()];
    let header = TokenSource::Header {
        name: "authorization".into(),
        prefix: prefix.into(),
    };
    match extract(&header, |n| (n == "authorization").then_some(value)) {
        Found::Token(t) => {
            assert!(!t.is_empty());
            assert_eq!(t.trim_matches([' ', '\t']), t, "blanks around {t:?}");
            let scheme = prefix.trim_end();
            assert!(
                value.trim_start_matches([' ', '\t']).get(..scheme.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(scheme)),
                "token without the scheme {scheme:?} in {value:?}"
            );
        }
        Found::Empty | Found::Absent => {}
    }
    assert_eq!(extract(&header, |_| None), Found::Absent);

    // Query strings: the value as a path.
    let name = if input.name.is_empty() { "access_token" } else { input.name.as_str() };
    let q = TokenSource::Query(name.into());
    let found = extract(&q, |n| (n == ":path").then_some(value));
    if let Found::Token(t) = &found {
        assert!(!t.is_empty());
    }
    let stripped = path_without_query_param(value, name);
    assert_eq!(
        stripped.split_once('?').map_or(stripped.as_str(), |(b, _)| b),
        value.split_once('?').map_or(value, |(b, _)| b),
        "the path before ? changed"
    );
    if !value.contains('#') {
        assert!(
            matches!(extract(&q, |n| (n == ":path").then_some(stripped.as_str())), Found::Absent),
            "{name:?} still in {stripped:?}"
        );
    }

    // Cookies: the value as a cookie header.
    let c = TokenSource::Cookie(name.into());
    if let Found::Token(t) = extract(&c, |n| (n == "cookie").then_some(value)) {
        assert!(!t.is_empty());
    }
    if !name.contains([';', '=']) && name.trim() == name {
        let rest = cookies_without(value, name);
        let after = extract(&c, |n| (n == "cookie").then_some(rest.as_deref().unwrap_or("")));
        assert!(matches!(after, Found::Absent), "cookie {name:?} still in {rest:?}");
    }
});
