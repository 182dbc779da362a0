//! Finding the token in a request: header (with a scheme prefix), query
//! parameter, or cookie, per provider.
//!
//! More than one distinct token in one request is refused
//! (`multiple_tokens`): which one a backend would honour is anybody's guess.
//! The same token in several places counts once.

/// Where a provider's tokens may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A request header (lower-case name) whose value starts with `prefix`
    /// (compared case-insensitively, so `Bearer ` matches `bearer `, per RFC
    /// 7235 §2.1). An empty prefix takes the whole value.
    Header { name: String, prefix: String },
    /// A query parameter of `:path`.
    Query(String),
    /// A cookie of the `cookie` header.
    Cookie(String),
}

impl TokenSource {
    /// The default: `Authorization: Bearer <token>` (RFC 6750 §2.1).
    pub fn authorization_bearer() -> TokenSource {
        TokenSource::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }
    }

    /// The request header this source reads (`:path` for a query parameter).
    pub fn header_name(&self) -> &str {
        match self {
            TokenSource::Header { name, .. } => name,
            TokenSource::Query(_) => ":path",
            TokenSource::Cookie(_) => "cookie",
        }
    }
}

/// What one source yielded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    Absent,
    /// The location is there but holds nothing usable (`Bearer` alone).
    Empty,
    /// Borrowed from the header or cookie; decoded from a query string.
    Token(std::borrow::Cow<'a, str>),
}

/// Looks for a token at `source`, given a header lookup.
pub fn extract<'a>(source: &TokenSource, header: impl Fn(&str) -> Option<&'a str>) -> Found<'a> {
    match source {
        TokenSource::Header { name, prefix } => {
            let Some(value) = header(name) else {
                return Found::Absent;
            };
            let value = value.trim_matches([' ', '\t']);
            if prefix.is_empty() {
                return non_empty(value);
            }
            let scheme = prefix.trim_end();
            match value.get(..scheme.len()) {
                Some(head) if head.eq_ignore_ascii_case(scheme) => {
                    let rest = value.get(scheme.len()..).unwrap_or("");
                    if rest.is_empty() {
                        Found::Empty
                    } else if scheme.len() < prefix.len() && !rest.starts_with([' ', '\t']) {
                        // "Bearerabc" is not the Bearer scheme.
                        Found::Absent
                    } else {
                        non_empty(rest.trim_matches([' ', '\t']))
                    }
                }
                // Another scheme (e.g. Basic) is not our token.
                _ => Found::Absent,
            }
        }
        TokenSource::Query(param) => {
            let Some(query) = header(":path")
                .and_then(|p| p.split_once('?'))
                .map(|(_, q)| q)
            else {
                return Found::Absent;
            };
            let query = query.split('#').next().unwrap_or("");
            match query
                .split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .find(|(k, _)| percent_decode(k).as_deref() == Some(param.as_str()))
            {
                None => Found::Absent,
                // Undecodable: treat as a present but unusable token.
                Some((_, v)) => percent_decode(v).map_or(Found::Empty, |v| {
                    if v.is_empty() {
                        Found::Empty
                    } else {
                        Found::Token(std::borrow::Cow::Owned(v))
                    }
                }),
            }
        }
        TokenSource::Cookie(name) => {
            let Some(cookies) = header("cookie") else {
                return Found::Absent;
            };
            cookies
                .split(';')
                .filter_map(|c| c.trim().split_once('='))
                .find(|(k, _)| k.trim() == name)
                .map_or(Found::Absent, |(_, v)| {
                    non_empty(v.trim().trim_matches('"'))
                })
        }
    }
}

fn non_empty(s: &str) -> Found<'_> {
    if s.is_empty() {
        Found::Empty
    } else {
        Found::Token(std::borrow::Cow::Borrowed(s))
    }
}

/// Decodes `%XX` escapes and `+` (as a space, form encoding). `None` if an
/// escape is malformed or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `:path` without query parameter `param` (for not forwarding a query token).
pub fn path_without_query_param(path: &str, param: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            let k = kv.split_once('=').map_or(*kv, |(k, _)| k);
            percent_decode(k).as_deref() != Some(param)
        })
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// The `cookie` header without cookie `name`; `None` if nothing is left.
pub fn cookies_without(cookies: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = cookies
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.split_once('=').map_or(*c, |(k, _)| k.trim()) != name)
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh).
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn from_header(value: Option<&str>) -> Found<'_> {
        extract(&TokenSource::authorization_bearer(), |n| {
            if n == "authorization" { value } else { None }
        })
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_absent() {
        let t = |s: &str| Found::Token(s.to_owned().into());
        assert_eq!(from_header(None), Found::Absent);
        assert_eq!(from_header(Some("Bearer abc")), t("abc"));
        assert_eq!(from_header(Some("bearer  abc ")), t("abc"));
        assert_eq!(from_header(Some("BEARER abc")), t("abc"));
        assert_eq!(from_header(Some("Basic dXNlcjpwYXNz")), Found::Absent);
        assert_eq!(from_header(Some("Bearer")), Found::Empty);
        assert_eq!(from_header(Some("Bearer   ")), Found::Empty);
        assert_eq!(from_header(Some("Bearerabc")), Found::Absent);
        assert_eq!(from_header(Some("Bear")), Found::Absent);
    }

    #[test]
    fn query_and_cookie_sources() {
        let path = "/x?a=1&access_token=abc%2Edef&b=2";
        let q = TokenSource::Query("access_token".into());
        let lookup = |n: &str| if n == ":path" { Some(path) } else { None };
        assert_eq!(extract(&q, lookup), Found::Token("abc.def".into()));
        assert_eq!(path_without_query_param(path, "access_token"), "/x?a=1&b=2");
        assert_eq!(
            path_without_query_param("/x?access_token=1", "access_token"),
            "/x"
        );
        let bad = |n: &str| {
            if n == ":path" {
                Some("/x?access_token=%zz")
            } else {
                None
            }
        };
        assert_eq!(extract(&q, bad), Found::Empty);

        let c = TokenSource::Cookie("session".into());
        let cookies = "theme=dark; session=tok.en.x; other=1";
        let lookup = |n: &str| if n == "cookie" { Some(cookies) } else { None };
        assert_eq!(extract(&c, lookup), Found::Token("tok.en.x".into()));
        assert_eq!(
            cookies_without(cookies, "session").as_deref(),
            Some("theme=dark; other=1")
        );
        assert_eq!(cookies_without("session=x", "session"), None);
        let none = |n: &str| {
            if n == "cookie" {
                Some("sessionx=1")
            } else {
                None
            }
        };
        assert_eq!(extract(&c, none), Found::Absent);
    }

    #[test]
    fn custom_header_without_prefix_takes_the_value() {
        let s = TokenSource::Header {
            name: "x-jwt".into(),
            prefix: String::new(),
        };
        let lookup = |n: &str| if n == "x-jwt" { Some(" a.b.c ") } else { None };
        assert_eq!(extract(&s, lookup), Found::Token("a.b.c".into()));
    }
}
