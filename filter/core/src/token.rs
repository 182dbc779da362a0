//! Finding the token in a request.

/// Result of looking for a bearer token in an `Authorization` header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header, or one with another scheme (e.g. `Basic`).
    Absent,
    /// `Bearer` with nothing usable after it.
    Empty,
    /// The token text (not yet verified in any way).
    Token(&'a str),
}

/// Extracts the token from `Authorization: Bearer <token>`. The scheme is
/// case-insensitive (RFC 7235 §2.1); spaces around the token are ignored.
pub fn bearer(authorization: Option<&str>) -> Bearer<'_> {
    let Some(value) = authorization else {
        return Bearer::Absent;
    };
    let value = value.trim_start_matches([' ', '\t']);
    let Some((scheme, rest)) = value.split_once([' ', '\t']).or(Some((value, ""))) else {
        return Bearer::Absent;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Absent;
    }
    let token = rest.trim_matches([' ', '\t']);
    if token.is_empty() {
        Bearer::Empty
    } else {
        Bearer::Token(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_absent() {
        assert_eq!(bearer(None), Bearer::Absent);
        assert_eq!(bearer(Some("Bearer abc")), Bearer::Token("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Bearer::Token("abc"));
        assert_eq!(bearer(Some("BEARER abc")), Bearer::Token("abc"));
        assert_eq!(bearer(Some("Basic dXNlcjpwYXNz")), Bearer::Absent);
        assert_eq!(bearer(Some("Bearer")), Bearer::Empty);
        assert_eq!(bearer(Some("Bearer   ")), Bearer::Empty);
        assert_eq!(bearer(Some("Bearerabc")), Bearer::Absent);
    }
}
