//! Path normalisation and route matching.
//!
//! Every path is normalised before matching so that spellings a backend would
//! treat as the same resource cannot slip past a rule:
//! - the query string and fragment are dropped;
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded,
//!   other escapes are kept with upper-case hex;
//! - encoded `/` (`%2F`) and `\` (`%5C`), a raw `\`, NUL and control
//!   characters, and malformed escapes make the path invalid (the request is
//!   refused with 400), since backends disagree on what they mean;
//! - empty segments (`//`) and `.` segments are removed, `..` removes the
//!   segment before it (never above the root).

use core::fmt;

/// Why a path cannot be normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    BadEscape,
    EncodedSeparator,
    ForbiddenCharacter,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "path does not start with /",
            PathError::BadEscape => "path has a malformed percent escape",
            PathError::EncodedSeparator => "path has an encoded / or \\",
            PathError::ForbiddenCharacter => "path has a backslash or control character",
        })
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16)
        .unwrap_or('0')
        .to_ascii_uppercase()
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalises a request path (`:path`) as described in the module docs.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Decode unreserved escapes; canonicalise the rest.
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let c = h * 16 + l;
                if c == b'/' || c == b'\\' {
                    return Err(PathError::EncodedSeparator);
                }
                if is_unreserved(c) {
                    decoded.push(char::from(c));
                } else {
                    decoded.push('%');
                    decoded.push(hex_digit(h));
                    decoded.push(hex_digit(l));
                }
                i += 3;
            }
            b'\\' => return Err(PathError::ForbiddenCharacter),
            c if c.is_ascii_control() => return Err(PathError::ForbiddenCharacter),
            _ => {
                // Copy the whole UTF-8 character (the path came from a &str).
                let rest = path.get(i..).unwrap_or("");
                if let Some(ch) = rest.chars().next() {
                    decoded.push(ch);
                    i += ch.len_utf8();
                } else {
                    i += 1;
                }
                continue;
            }
        }
    }
    // Resolve dot segments and drop empty ones.
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// How a rule matches the normalised path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// Stored normalised and without a trailing `/` (the root prefix is `""`).
    Prefix(String),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => match path.strip_prefix(p.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn normalisation_closes_the_usual_traps() {
        let n = |p: &str| normalize(p);
        assert_eq!(n("/orders").unwrap(), "/orders");
        assert_eq!(n("/admin/../orders").unwrap(), "/orders");
        assert_eq!(n("/%6Frders").unwrap(), "/orders");
        assert_eq!(n("//orders//7/").unwrap(), "/orders/7");
        assert_eq!(n("/./orders/./7").unwrap(), "/orders/7");
        assert_eq!(n("/../../orders").unwrap(), "/orders");
        assert_eq!(n("/orders?x=/admin").unwrap(), "/orders");
        assert_eq!(n("/orders#frag").unwrap(), "/orders");
        assert_eq!(n("/a%20b").unwrap(), "/a%20b");
        assert_eq!(n("/a%2a").unwrap(), "/a%2A");
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("/%2E%2E/admin").unwrap(), "/admin");
        assert_eq!(n("/admin%2Fx"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/admin%5cx"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/admin\\x"), Err(PathError::ForbiddenCharacter));
        assert_eq!(n("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(n("/a%4"), Err(PathError::BadEscape));
        assert_eq!(n("orders"), Err(PathError::NotAbsolute));
        assert_eq!(n("/caf\u{e9}").unwrap(), "/caf\u{e9}");
    }

    #[test]
    fn normalisation_is_idempotent_on_samples() {
        for p in ["/a/../b", "/%7Euser", "//x/./y/", "/a%20b/%41", "/"] {
            let once = normalize(p).unwrap();
            assert_eq!(normalize(&once).unwrap(), once, "{p}");
        }
    }

    #[test]
    fn prefix_is_segment_aware() {
        let m = PathMatch::Prefix("/orders".into());
        assert!(m.matches("/orders"));
        assert!(m.matches("/orders/1"));
        assert!(!m.matches("/ordersx"));
        assert!(!m.matches("/order"));
        let root = PathMatch::Prefix(String::new());
        assert!(root.matches("/"));
        assert!(root.matches("/anything"));
        assert!(PathMatch::Exact("/healthz".into()).matches("/healthz"));
        assert!(!PathMatch::Exact("/healthz".into()).matches("/healthz/x"));
    }
}
