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

/// Whether `path` is its own normal form (what [`normalize`] would return
/// unchanged): absolute, no query or fragment, no escapes, backslashes or
/// control characters, no empty, `.` or `..` segment. Config paths and most
/// request paths are; they skip the decoding and the segment vector.
fn is_plainly_normal(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    path.bytes()
        .all(|b| !matches!(b, b'?' | b'#' | b'%' | b'\\') && !b.is_ascii_control())
        && (rest.is_empty() || rest.split('/').all(|s| !matches!(s, "" | "." | "..")))
}

/// [`is_plainly_normal`] for `/{seg}`, without building it.
fn is_plainly_normal_segment(seg: &str) -> bool {
    !matches!(seg, "" | "." | "..")
        && seg
            .bytes()
            .all(|b| !matches!(b, b'/' | b'?' | b'#' | b'%' | b'\\') && !b.is_ascii_control())
}

/// Normalises a request path (`:path`) as described in the module docs.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if is_plainly_normal(raw) {
        return Ok(raw.to_owned());
    }
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

/// [`normalize`], without a copy when the path is already normal (no query
/// or fragment aside): no escape, backslash or control character, and no
/// empty, `.` or `..` segment. The common case on every request.
pub fn normalize_cow(raw: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    match already_normal(raw.as_bytes()).and_then(|end| raw.get(..end)) {
        Some(path) => Ok(std::borrow::Cow::Borrowed(path)),
        None => normalize(raw).map(std::borrow::Cow::Owned),
    }
}

/// The length of `raw`'s path (before `?` or `#`) if it is already normal,
/// in one pass over the bytes.
fn already_normal(raw: &[u8]) -> Option<usize> {
    let (&b'/', rest) = raw.split_first()? else {
        return None;
    };
    // The current segment's length and how many of its bytes are dots: a
    // segment that is empty, "." or ".." is not normal.
    let (mut len, mut dots) = (0usize, 0usize);
    let odd = |len: usize, dots: usize| len == 0 || (len == dots && dots <= 2);
    for (i, &b) in rest.iter().enumerate() {
        match b {
            b'?' | b'#' => {
                return (i == 0 || !odd(len, dots)).then_some(i + 1);
            }
            b'/' => {
                if odd(len, dots) {
                    return None;
                }
                (len, dots) = (0, 0);
            }
            b'%' | b'\\' => return None,
            c if c.is_ascii_control() => return None,
            b'.' => (len, dots) = (len + 1, dots + 1),
            _ => len += 1,
        }
    }
    (rest.is_empty() || !odd(len, dots)).then_some(raw.len())
}

/// The segments of a normalised path (`/` has none).
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// One segment of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSegment {
    /// This exact (normalised) segment.
    Literal(String),
    /// `{name}`: any one segment.
    Param(String),
    /// `{*name}`, last only: one or more segments.
    Rest(String),
}

/// A path template such as `/orders/{id}` or `/files/{*rest}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<TemplateSegment>,
}

/// Why a template is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    NotAbsolute,
    /// An empty, `.` or `..` segment, or a literal that normalises differently.
    NotNormalised(String),
    /// `{` or `}` inside a segment with other text, or a bad parameter name.
    BadParameter(String),
    /// `{*name}` not in the last segment.
    RestNotLast,
    DuplicateParameter(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::NotAbsolute => f.write_str("a template starts with /"),
            TemplateError::NotNormalised(s) => {
                write!(
                    f,
                    "segment {s:?} is not normalised (no empty, . or .. segments, no escapes of unreserved characters)"
                )
            }
            TemplateError::BadParameter(s) => write!(
                f,
                "segment {s:?}: a parameter is a whole segment {{name}} or {{*name}}, name of letters, digits and _"
            ),
            TemplateError::RestNotLast => f.write_str("{*name} must be the last segment"),
            TemplateError::DuplicateParameter(n) => write!(f, "parameter {n:?} appears twice"),
        }
    }
}

fn param_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let Some(rest) = source.strip_prefix('/') else {
            return Err(TemplateError::NotAbsolute);
        };
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let count = parts.len();
        for (i, seg) in parts.into_iter().enumerate() {
            let parsed = if let Some(inner) =
                seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
            {
                let (name, is_rest) = match inner.strip_prefix('*') {
                    Some(n) => (n, true),
                    None => (inner, false),
                };
                if !param_name(name) {
                    return Err(TemplateError::BadParameter(seg.to_owned()));
                }
                if names.contains(&name) {
                    return Err(TemplateError::DuplicateParameter(name.to_owned()));
                }
                names.push(name);
                if is_rest {
                    if i + 1 != count {
                        return Err(TemplateError::RestNotLast);
                    }
                    TemplateSegment::Rest(name.to_owned())
                } else {
                    TemplateSegment::Param(name.to_owned())
                }
            } else if seg.contains(['{', '}']) {
                return Err(TemplateError::BadParameter(seg.to_owned()));
            } else {
                let normal = !seg.is_empty()
                    && (is_plainly_normal_segment(seg) || {
                        let as_path = format!("/{seg}");
                        normalize(&as_path).ok().as_deref() == Some(as_path.as_str())
                    });
                if !normal {
                    return Err(TemplateError::NotNormalised(seg.to_owned()));
                }
                TemplateSegment::Literal(seg.to_owned())
            };
            segments.push(parsed);
        }
        Ok(Template {
            source: source.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn segments(&self) -> &[TemplateSegment] {
        &self.segments
    }

    /// Whether the normalised `path` fits the template.
    pub fn matches(&self, path: &str) -> bool {
        let mut parts = segments(path);
        for seg in &self.segments {
            match seg {
                TemplateSegment::Rest(_) => return parts.next().is_some(),
                TemplateSegment::Param(_) => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                TemplateSegment::Literal(l) => {
                    if parts.next() != Some(l.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

/// Bound on the compiled size of one route regex.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// The size limits a route regex is compiled under, smallest first.
const REGEX_SIZE_TIERS: [usize; 3] = [4 * 1024, 32 * 1024, REGEX_SIZE_LIMIT];
/// Longest route regex accepted, in bytes.
pub const REGEX_MAX_LEN: usize = 1024;
/// Deepest nesting of groups/repetitions accepted in a route regex.
pub const REGEX_NEST_LIMIT: u32 = 32;

/// A route regex: the regex crate's syntax (RE2-like: no backreferences or
/// lookaround), matched against the whole normalised path (implicitly
/// anchored) in linear time by `regex-lite`, the regex crate authors'
/// small engine; ASCII-only classes (`\d`, `\w`, `\s`, `\b`, `[[:alpha:]]`,
/// `(?i)`), `.` any character but `\n`; bounded in length, nesting and
/// compiled size.
#[derive(Debug, Clone)]
pub struct PathRegex {
    source: String,
    regex: regex_lite::Regex,
    /// The leading path segments every match starts with (the route table
    /// files the rule under them): see [`literal_segments`].
    literal_segments: Vec<String>,
    /// The size tier it compiled under ([`REGEX_SIZE_TIERS`]).
    charge: usize,
}

/// A regex error message on one line (they come with a caret diagram).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The complete path segments that every string matching the (anchored)
/// regex `source` starts with: a lower bound, never more than is certain,
/// used only to file the rule in the route table's trie (the regex still
/// decides). Read off the pattern's start: the longest run of plain literal
/// characters before any metacharacter (`\ . + * ? ( ) | [ ] { } ^ $`), less
/// its last character when a repetition (`? * + {`) follows it; nothing at
/// all if the pattern has a `|` anywhere (an alternation at the top level
/// would make the start optional). Of that literal prefix, the segments
/// followed by a `/` are complete: `/v2/items/[0-9]+` gives `["v2",
/// "items"]`, `/v[0-9]/x` and `(?i)/admin` give none. Flags (`(?i)`,
/// `(?x)`) only start with `(`, so they end the run before they apply.
pub(crate) fn literal_segments(source: &str) -> Vec<String> {
    if source.contains('|') {
        return Vec::new();
    }
    let is_meta = |c: char| "\\.+*?()|[]{}^$".contains(c);
    let run_end = source.find(is_meta).unwrap_or(source.len());
    let (run, after) = source.split_at(run_end);
    let run = if after.starts_with(['?', '*', '+', '{']) {
        run.char_indices()
            .next_back()
            .and_then(|(i, _)| run.get(..i))
            .unwrap_or("")
    } else {
        run
    };
    match run.rfind('/').and_then(|last| run.get(..last)) {
        Some(complete) => segments(complete).map(str::to_owned).collect(),
        None => Vec::new(),
    }
}

impl PathRegex {
    /// The anchored form every route regex is compiled as.
    pub fn anchored(source: &str) -> String {
        format!("^(?:{source})$")
    }

    pub fn parse(source: &str) -> Result<PathRegex, String> {
        if source.is_empty() {
            return Err("empty regex".into());
        }
        if source.len() > REGEX_MAX_LEN {
            return Err(format!("longer than {REGEX_MAX_LEN} bytes"));
        }
        let build = |pattern: &str, limit: usize| {
            regex_lite::RegexBuilder::new(pattern)
                .size_limit(limit)
                .nest_limit(REGEX_NEST_LIMIT)
                .build()
                .map_err(|e| one_line(&e.to_string()))
        };
        // Compiled anchored, under the smallest size tier it fits: the tier
        // is what the regex is charged against the table's total
        // (`table::REGEX_SET_SIZE_LIMIT`), a bound on its real size. Route
        // regexes are small: nearly all compile at the first tier, once.
        let anchored = PathRegex::anchored(source);
        let mut last = String::new();
        for charge in REGEX_SIZE_TIERS {
            match build(&anchored, charge) {
                Ok(regex) => {
                    return Ok(PathRegex {
                        source: source.to_owned(),
                        regex,
                        literal_segments: literal_segments(source),
                        charge,
                    });
                }
                Err(e) => last = e,
            }
        }
        // On an error the operator's own pattern is compiled again so that
        // the message points into what they wrote.
        Err(match build(source, REGEX_SIZE_LIMIT) {
            Err(e) => e,
            Ok(_) => last,
        })
    }

    /// The size tier the regex compiled under: at least its compiled size.
    pub(crate) fn charge(&self) -> usize {
        self.charge
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The leading segments every matching path starts with.
    pub fn literal_segments(&self) -> &[String] {
        &self.literal_segments
    }

    /// Whether the whole `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }
}

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
impl Eq for PathRegex {}

/// How a rule matches the normalised path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// Stored normalised and without a trailing `/` (the root prefix is `""`).
    Prefix(String),
    Template(Template),
    Regex(PathRegex),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => match path.strip_prefix(p.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            },
            PathMatch::Template(t) => t.matches(path),
            PathMatch::Regex(r) => r.matches(path),
        }
    }

    /// Matches every path (`prefix: "/"`).
    pub fn is_everything(&self) -> bool {
        matches!(self, PathMatch::Prefix(p) if p.is_empty())
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathMatch::Exact(p) => write!(f, "exact {p}"),
            PathMatch::Prefix(p) if p.is_empty() => f.write_str("prefix /"),
            PathMatch::Prefix(p) => write!(f, "prefix {p}"),
            PathMatch::Template(t) => write!(f, "template {}", t.as_str()),
            PathMatch::Regex(r) => write!(f, "regex {}", r.as_str()),
        }
    }
}

/// A host name pattern for `:authority`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower case. For a wildcard, the suffix including its leading dot
    /// (`.example.com` for `*.example.com`).
    name: String,
    wildcard: bool,
    /// `None`: any port (or none).
    port: Option<u16>,
}

impl HostPattern {
    /// `api.example.com`, `*.example.com`, `[::1]`, each with optional `:port`.
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let lower = s.to_ascii_lowercase();
        let (host, port) =
            split_host_port(&lower).ok_or_else(|| format!("{s:?} is not a host[:port]"))?;
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let valid_name = if name.starts_with('[') {
            !wildcard
                && name.ends_with(']')
                && name.len() > 2
                && name
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b"[]:.".contains(&b))
        } else {
            !name.is_empty()
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        };
        if !valid_name {
            return Err(format!(
                "{s:?} is not a host name (letters, digits, - and . labels; `*.` only as the first label)"
            ));
        }
        Ok(HostPattern {
            name: if wildcard {
                format!(".{name}")
            } else {
                name.to_owned()
            },
            wildcard,
            port,
        })
    }

    /// The exact host name (lower case), if this is not a wildcard.
    pub fn exact_name(&self) -> Option<&str> {
        (!self.wildcard).then_some(self.name.as_str())
    }

    /// Whether a request `(host, port)` from [`parse_authority`] fits.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let name_ok = if self.wildcard {
            host.len() > self.name.len() && host.ends_with(self.name.as_str())
        } else {
            host == self.name
        };
        name_ok && (self.port.is_none() || self.port == port)
    }

    /// Every request this pattern matches is matched by `other` too.
    pub fn covered_by(&self, other: &HostPattern) -> bool {
        let port_ok = other.port.is_none() || other.port == self.port;
        let name_ok = match (other.wildcard, self.wildcard) {
            (false, false) => other.name == self.name,
            (false, true) => false,
            (true, false) => self.name.len() > other.name.len() && self.name.ends_with(&other.name),
            (true, true) => self.name.ends_with(&other.name),
        };
        port_ok && name_ok
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            write!(f, "*{}", self.name)?;
        } else {
            f.write_str(&self.name)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (h, rest) = s.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if rest.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// A request's `:authority` as (lower-case host without a trailing dot, port).
/// `None` if it is not a plausible `host[:port]`.
pub fn parse_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let lower = authority.trim().to_ascii_lowercase();
    let (host, port) = split_host_port(&lower)?;
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.contains(['@', '/', ' ']) {
        return None;
    }
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh).
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
    fn the_copy_free_normalisation_agrees_with_the_full_one() {
        for p in [
            "/orders", "/orders/7", "/", "/orders?x=/admin", "/orders#f", "/admin/../orders",
            "//orders", "/orders/", "/./x", "/x/.", "/x/..", "/x/.y", "/x/..y", "/%6Frders",
            "/a%2fb", "/a\\b", "/a\u{7f}", "/a\tb", "orders", "", "?x", "/caf\u{e9}", "/a//b",
            "/...", "/a/./b", "/ a",
        ] {
            let cow = normalize_cow(p);
            assert_eq!(cow.as_deref().map_err(Clone::clone), normalize(p).as_deref().map_err(Clone::clone), "{p:?}");
            if let Ok(std::borrow::Cow::Borrowed(b)) = cow {
                assert_eq!(Ok(b.to_owned()), normalize(p), "{p:?} borrowed");
            }
        }
        assert!(matches!(normalize_cow("/orders/7?x=1"), Ok(std::borrow::Cow::Borrowed("/orders/7"))));
        assert!(matches!(normalize_cow("/orders//7"), Ok(std::borrow::Cow::Owned(_))));
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
