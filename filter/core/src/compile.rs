//! Parse, then compile, then refuse: operator JSON -> [`Policy`].
//!
//! Every problem is reported with the JSON path where it sits
//! (`rules[2].match.prefix`), all at once, so an operator fixes a config in one
//! pass. A [`Policy`] only exists if there were no errors; its types cannot
//! hold an unchecked value (an algorithm name, a key of unknown type, a rule
//! without a requirement).

use core::fmt;
use std::collections::BTreeSet;

use serde_json::Value;

use crate::config::{Config, MatchConfig, ProviderConfig, RuleConfig, TokenSourceConfig};
use crate::keys::{Alg, AlgSet, JwksError, KeyError, parse_jwks};
use crate::routes::{PathMatch, normalize};
use crate::token::TokenSource;
use crate::verify::Provider;

/// Default `realm` in `WWW-Authenticate`.
pub const DEFAULT_REALM: &str = "scopegate";
/// Default clock skew for `exp`/`nbf`/`iat`, seconds.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
/// Default bound on a token's size, bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
/// Largest `max_token_bytes` an operator may set.
pub const MAX_MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Largest clock skew an operator may set (one day).
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 86_400;

/// What is wrong at one place in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The JSON does not parse or a field has the wrong JSON type / is unknown.
    Json(String),
    Empty,
    Duplicate(String),
    UnknownAlgorithm(String),
    AudiencesRequired,
    NoKeys,
    NoUsableKeys(String),
    Key(KeyError),
    Jwks(JwksError),
    OutOfRange(String),
    MatchKind,
    InvalidPath(String),
    InvalidMethod(String),
    InvalidHeaderName(String),
    InvalidRequirement(String),
    NoProviders,
    SourceKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Json(e) => f.write_str(e),
            Problem::Empty => f.write_str("must not be empty"),
            Problem::Duplicate(what) => write!(f, "duplicate {what}"),
            Problem::UnknownAlgorithm(a) => write!(
                f,
                "unknown algorithm {a:?} (expected one of {})",
                Alg::ALL.map(Alg::name).join(", ")
            ),
            Problem::AudiencesRequired => {
                f.write_str("at least one audience is required (or set \"audience_check\": false)")
            }
            Problem::NoKeys => f.write_str("a provider needs keys: set \"jwks\""),
            Problem::NoUsableKeys(why) => write!(f, "no usable key: {why}"),
            Problem::Key(e) => write!(f, "{e}"),
            Problem::Jwks(e) => write!(f, "{e}"),
            Problem::OutOfRange(why) => f.write_str(why),
            Problem::MatchKind => {
                f.write_str("exactly one of \"exact\" and \"prefix\" is required")
            }
            Problem::InvalidPath(why) => write!(f, "invalid path: {why}"),
            Problem::InvalidMethod(m) => write!(f, "invalid HTTP method {m:?}"),
            Problem::InvalidHeaderName(h) => write!(f, "invalid header name {h:?}"),
            Problem::InvalidRequirement(why) => write!(f, "invalid requirement: {why}"),
            Problem::NoProviders => f.write_str("rules need tokens but no provider is configured"),
            Problem::SourceKind => f.write_str(
                "exactly one of \"header\", \"query\" and \"cookie\" is required (\"prefix\" goes with \"header\")",
            ),
        }
    }
}

/// One config problem and its JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path, e.g. `providers[0].issuer`; `.` for the document itself.
    pub path: String,
    pub problem: Problem,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// A scope expression: what a principal's scopes must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeExpr {
    Scope(String),
    AllOf(Vec<ScopeExpr>),
    AnyOf(Vec<ScopeExpr>),
}

/// What a rule demands of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token needed. A token, if present, is verified: a valid one is
    /// forwarded as the principal, an invalid one is ignored (anonymous).
    Public,
    /// Any valid token of any provider.
    Authenticated,
    /// A valid token whose scopes satisfy the expression.
    Scopes(ScopeExpr),
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) name: String,
    pub(crate) path: PathMatch,
    /// Upper-case method names; empty = any method.
    pub(crate) methods: Vec<String>,
    pub(crate) access: Access,
}

impl Rule {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn access(&self) -> &Access {
        &self.access
    }
    pub fn path(&self) -> &PathMatch {
        &self.path
    }
    pub fn methods(&self) -> &[String] {
        &self.methods
    }
    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && self.path.matches(path)
    }
}

/// The validated, immutable policy the filter enforces.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) realm: String,
    pub(crate) providers: Vec<Provider>,
    pub(crate) rules: Vec<Rule>,
    /// Largest `max_token_bytes` of any provider: the bound before parsing.
    pub(crate) max_token_bytes: usize,
    /// Every header the filter may write upstream (lower case): always removed
    /// from the inbound request first, so clients cannot spoof them.
    pub(crate) managed_headers: Vec<String>,
    /// Every token location of every provider, without repeats; providers
    /// refer to them by index.
    pub(crate) sources: Vec<TokenSource>,
    /// Request headers the decision reads (lower case), so the shim fetches
    /// only these.
    pub(crate) wanted_headers: Vec<String>,
    /// Non-fatal findings (e.g. JWKS keys skipped), for the log.
    pub(crate) warnings: Vec<ConfigError>,
}

impl Policy {
    pub fn realm(&self) -> &str {
        &self.realm
    }
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }
    pub fn managed_headers(&self) -> &[String] {
        &self.managed_headers
    }
    /// The request headers the decision reads; `:method` and `:path` always.
    pub fn wanted_headers(&self) -> &[String] {
        &self.wanted_headers
    }
    pub fn sources(&self) -> &[TokenSource] {
        &self.sources
    }
}

/// Parses and compiles the plugin configuration bytes (JSON).
pub fn compile_json(bytes: &[u8]) -> Result<Policy, Vec<ConfigError>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(vec![ConfigError {
            path: ".".into(),
            problem: Problem::Json(
                "the plugin configuration is empty; scopegate needs its JSON config \
                 (in Envoy: a google.protobuf.StringValue)"
                    .into(),
            ),
        }]);
    }
    // serde would build the config struct from a JSON array too; only an
    // object is a configuration.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(vec![ConfigError {
            path: ".".into(),
            problem: Problem::Json("the configuration must be a JSON object".into()),
        }]);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let config: Config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        vec![ConfigError {
            path: if path.is_empty() { ".".into() } else { path },
            problem: Problem::Json(e.into_inner().to_string()),
        }]
    })?;
    if let Err(e) = de.end() {
        return Err(vec![ConfigError {
            path: ".".into(),
            problem: Problem::Json(e.to_string()),
        }]);
    }
    compile(&config)
}

struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, problem: Problem) {
        self.0.push(ConfigError {
            path: path.into(),
            problem,
        });
    }
}

/// Compiles a parsed config into a [`Policy`], or every problem found.
pub fn compile(config: &Config) -> Result<Policy, Vec<ConfigError>> {
    let mut errors = Errors(Vec::new());
    let mut warnings = Vec::new();
    let realm = match &config.realm {
        None => DEFAULT_REALM.to_owned(),
        Some(r) if r.is_empty() => {
            errors.push("realm", Problem::Empty);
            String::new()
        }
        Some(r) if !is_quotable(r) => {
            errors.push(
                "realm",
                Problem::OutOfRange("realm must be printable ASCII without '\"' or '\\'".into()),
            );
            String::new()
        }
        Some(r) => r.clone(),
    };

    let mut providers = Vec::new();
    let mut sources: Vec<TokenSource> = Vec::new();
    let mut names = BTreeSet::new();
    let mut issuers = BTreeSet::new();
    for (i, p) in config.providers.iter().enumerate() {
        let at = format!("providers[{i}]");
        if !names.insert(p.name.as_str()) {
            errors.push(
                format!("{at}.name"),
                Problem::Duplicate(format!("provider name {:?}", p.name)),
            );
        }
        if !issuers.insert(p.issuer.as_str()) {
            errors.push(
                format!("{at}.issuer"),
                Problem::Duplicate(format!("issuer {:?}", p.issuer)),
            );
        }
        if let Some(provider) = compile_provider(&at, p, &mut sources, &mut errors, &mut warnings) {
            providers.push(provider);
        }
    }

    let mut rules = Vec::new();
    let mut rule_names = BTreeSet::new();
    for (i, r) in config.rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        if r.name.is_empty() {
            errors.push(format!("{at}.name"), Problem::Empty);
        } else if !rule_names.insert(r.name.as_str()) {
            errors.push(
                format!("{at}.name"),
                Problem::Duplicate(format!("rule name {:?}", r.name)),
            );
        }
        if let Some(rule) = compile_rule(&at, r, &mut errors) {
            rules.push(rule);
        }
    }
    if config.providers.is_empty() && rules.iter().any(|r| r.access != Access::Public) {
        errors.push("providers", Problem::NoProviders);
    }

    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    let mut managed_headers: Vec<String> = providers
        .iter()
        .flat_map(|p: &Provider| p.claims_to_headers.iter().map(|(_, h)| h.clone()))
        .collect();
    managed_headers.sort();
    managed_headers.dedup();
    let max_token_bytes = providers
        .iter()
        .map(|p| p.max_token_bytes)
        .max()
        .unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    let mut wanted_headers = vec![":method".to_owned(), ":path".to_owned()];
    for s in &sources {
        let h = s.header_name().to_owned();
        if !wanted_headers.contains(&h) {
            wanted_headers.push(h);
        }
    }
    Ok(Policy {
        realm,
        providers,
        rules,
        max_token_bytes,
        managed_headers,
        sources,
        wanted_headers,
        warnings,
    })
}

fn compile_sources(
    at: &str,
    list: Option<&[TokenSourceConfig]>,
    all: &mut Vec<TokenSource>,
    errors: &mut Errors,
) -> Vec<usize> {
    let default = [TokenSourceConfig {
        header: Some("authorization".into()),
        ..TokenSourceConfig::default()
    }];
    let list = list.unwrap_or(&default);
    if list.is_empty() {
        errors.push(format!("{at}.from"), Problem::Empty);
    }
    let mut indices = Vec::new();
    for (j, s) in list.iter().enumerate() {
        let here = format!("{at}.from[{j}]");
        let source = match (&s.header, &s.query, &s.cookie) {
            (Some(h), None, None) => {
                let name = h.to_ascii_lowercase();
                if !is_header_name(&name) {
                    errors.push(
                        format!("{here}.header"),
                        Problem::InvalidHeaderName(h.clone()),
                    );
                    continue;
                }
                let prefix = s.prefix.clone().unwrap_or_else(|| {
                    if name == "authorization" {
                        "Bearer ".into()
                    } else {
                        String::new()
                    }
                });
                if !is_quotable(&prefix) {
                    errors.push(
                        format!("{here}.prefix"),
                        Problem::OutOfRange("prefix must be printable ASCII".into()),
                    );
                    continue;
                }
                TokenSource::Header { name, prefix }
            }
            (None, Some(q), None) if s.prefix.is_none() => {
                if q.is_empty() {
                    errors.push(format!("{here}.query"), Problem::Empty);
                    continue;
                }
                TokenSource::Query(q.clone())
            }
            (None, None, Some(c)) if s.prefix.is_none() => {
                if c.is_empty()
                    || !c
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"=;,\"".contains(&b))
                {
                    errors.push(
                        format!("{here}.cookie"),
                        Problem::OutOfRange(format!("{c:?} is not a valid cookie name")),
                    );
                    continue;
                }
                TokenSource::Cookie(c.clone())
            }
            _ => {
                errors.push(here, Problem::SourceKind);
                continue;
            }
        };
        let index = all.iter().position(|x| *x == source).unwrap_or_else(|| {
            all.push(source);
            all.len() - 1
        });
        if !indices.contains(&index) {
            indices.push(index);
        }
    }
    indices
}

fn compile_provider(
    at: &str,
    p: &ProviderConfig,
    sources: &mut Vec<TokenSource>,
    errors: &mut Errors,
    warnings: &mut Vec<ConfigError>,
) -> Option<Provider> {
    let start = errors.0.len();
    if p.name.is_empty() {
        errors.push(format!("{at}.name"), Problem::Empty);
    }
    if p.issuer.is_empty() {
        errors.push(format!("{at}.issuer"), Problem::Empty);
    }
    let audiences = if p.audience_check == Some(false) {
        None
    } else {
        if p.audiences.is_empty() {
            errors.push(format!("{at}.audiences"), Problem::AudiencesRequired);
        }
        for (j, a) in p.audiences.iter().enumerate() {
            if a.is_empty() {
                errors.push(format!("{at}.audiences[{j}]"), Problem::Empty);
            }
        }
        Some(p.audiences.clone())
    };
    let allowed = match &p.algorithms {
        None => AlgSet::all(),
        Some(list) => {
            if list.is_empty() {
                errors.push(format!("{at}.algorithms"), Problem::Empty);
            }
            list.iter()
                .enumerate()
                .filter_map(|(j, name)| {
                    let alg = Alg::from_name(name);
                    if alg.is_none() {
                        errors.push(
                            format!("{at}.algorithms[{j}]"),
                            Problem::UnknownAlgorithm(name.clone()),
                        );
                    }
                    alg
                })
                .collect()
        }
    };
    let skew = p.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS);
    if skew > MAX_CLOCK_SKEW_SECONDS {
        errors.push(
            format!("{at}.clock_skew_seconds"),
            Problem::OutOfRange(format!("must be at most {MAX_CLOCK_SKEW_SECONDS}")),
        );
    }
    let max_token_bytes = p.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    if !(64..=MAX_MAX_TOKEN_BYTES).contains(&max_token_bytes) {
        errors.push(
            format!("{at}.max_token_bytes"),
            Problem::OutOfRange(format!("must be between 64 and {MAX_MAX_TOKEN_BYTES}")),
        );
    }
    let mut claims_to_headers = Vec::new();
    for (claim, header) in &p.claims_to_headers {
        let path = format!("{at}.claims_to_headers.{claim}");
        if claim.is_empty() {
            errors.push(path.clone(), Problem::Empty);
        }
        let lower = header.to_ascii_lowercase();
        if !is_header_name(&lower) || lower == "authorization" || lower.starts_with(':') {
            errors.push(path, Problem::InvalidHeaderName(header.clone()));
        } else {
            claims_to_headers.push((claim.clone(), lower));
        }
    }

    let source_indices = compile_sources(at, p.from.as_deref(), sources, errors);
    let require_typ = match &p.require_typ {
        Some(t) if t.is_empty() => {
            errors.push(format!("{at}.require_typ"), Problem::Empty);
            None
        }
        other => other.clone(),
    };
    for claim in p.required_claims.keys() {
        if claim.is_empty() {
            errors.push(format!("{at}.required_claims"), Problem::Empty);
        }
    }
    if p.max_lifetime_seconds == Some(0) {
        errors.push(
            format!("{at}.max_lifetime_seconds"),
            Problem::OutOfRange("must be positive".into()),
        );
    }

    let mut keys = Vec::new();
    match &p.jwks {
        None => errors.push(format!("{at}.jwks"), Problem::NoKeys),
        Some(doc) => match parse_jwks(doc) {
            Err(e) => errors.push(format!("{at}.jwks"), Problem::Jwks(e)),
            Ok(parsed) => {
                let mut last_skip = None;
                for (j, _kid, why) in parsed.skipped {
                    warnings.push(ConfigError {
                        path: format!("{at}.jwks.keys[{j}]"),
                        problem: Problem::Key(why.clone()),
                    });
                    last_skip = Some(why);
                }
                keys = parsed
                    .keys
                    .into_iter()
                    .filter_map(|k| k.restrict(allowed))
                    .collect();
                if keys.is_empty() {
                    let why = last_skip.map_or_else(
                        || "no key supports the provider's algorithms".to_owned(),
                        |e| e.to_string(),
                    );
                    errors.push(format!("{at}.jwks"), Problem::NoUsableKeys(why));
                }
            }
        },
    }
    if errors.0.len() > start {
        return None;
    }
    let algorithms = keys.iter().fold(AlgSet::EMPTY, |acc, k| {
        AlgSet::from_iter(acc.iter().chain(k.algs().iter()))
    });
    Some(Provider {
        name: p.name.clone(),
        issuer: p.issuer.clone(),
        audiences,
        algorithms,
        clock_skew_seconds: i64::try_from(skew).unwrap_or(i64::MAX),
        require_exp: p.require_exp.unwrap_or(true),
        max_token_bytes,
        keys,
        claims_to_headers,
        forward_token: p.forward_token.unwrap_or(false),
        sources: source_indices,
        required_claims: p.required_claims.clone().into_iter().collect(),
        max_lifetime_seconds: p
            .max_lifetime_seconds
            .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        require_typ,
    })
}

fn compile_rule(at: &str, r: &RuleConfig, errors: &mut Errors) -> Option<Rule> {
    let start = errors.0.len();
    let path = compile_match(&format!("{at}.match"), &r.matcher, errors);
    let mut methods = Vec::new();
    if let Some(list) = &r.matcher.methods {
        if list.is_empty() {
            errors.push(format!("{at}.match.methods"), Problem::Empty);
        }
        for (j, m) in list.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                errors.push(
                    format!("{at}.match.methods[{j}]"),
                    Problem::InvalidMethod(m.clone()),
                );
            } else if !methods.contains(m) {
                methods.push(m.clone());
            }
        }
    }
    let access = compile_access(&format!("{at}.require"), &r.require, errors);
    if errors.0.len() > start {
        return None;
    }
    Some(Rule {
        name: r.name.clone(),
        path: path?,
        methods,
        access: access?,
    })
}

fn compile_match(at: &str, m: &MatchConfig, errors: &mut Errors) -> Option<PathMatch> {
    let check = |p: &str, field: &str, errors: &mut Errors| -> Option<String> {
        match normalize(p) {
            Ok(n) if n == p || (field == "prefix" && n == p.trim_end_matches('/')) => Some(n),
            Ok(n) => {
                errors.push(
                    format!("{at}.{field}"),
                    Problem::InvalidPath(format!("{p:?} is not normalised (it means {n:?})")),
                );
                None
            }
            Err(e) => {
                errors.push(format!("{at}.{field}"), Problem::InvalidPath(e.to_string()));
                None
            }
        }
    };
    match (&m.exact, &m.prefix) {
        (Some(p), None) => check(p, "exact", errors).map(PathMatch::Exact),
        (None, Some(p)) => check(p, "prefix", errors)
            .map(|n| PathMatch::Prefix(n.trim_end_matches('/').to_owned())),
        _ => {
            errors.push(at.to_owned(), Problem::MatchKind);
            None
        }
    }
}

/// Nesting bound for scope expressions.
const MAX_REQUIREMENT_DEPTH: usize = 8;

fn compile_access(at: &str, v: &Value, errors: &mut Errors) -> Option<Access> {
    match v {
        Value::String(s) if s == "public" => Some(Access::Public),
        Value::String(s) if s == "authenticated" => Some(Access::Authenticated),
        Value::String(s) => {
            errors.push(
                at.to_owned(),
                Problem::InvalidRequirement(format!(
                    "{s:?} is not \"public\" or \"authenticated\"; scopes go in {{\"all_of\": [...]}} or {{\"any_of\": [...]}}"
                )),
            );
            None
        }
        Value::Object(_) => compile_scope_expr(at, v, 0, errors).map(Access::Scopes),
        _ => {
            errors.push(
                at.to_owned(),
                Problem::InvalidRequirement(
                    "expected \"public\", \"authenticated\", or an object with all_of / any_of"
                        .into(),
                ),
            );
            None
        }
    }
}

fn compile_scope_expr(at: &str, v: &Value, depth: usize, errors: &mut Errors) -> Option<ScopeExpr> {
    if depth > MAX_REQUIREMENT_DEPTH {
        errors.push(
            at.to_owned(),
            Problem::InvalidRequirement(format!("nested deeper than {MAX_REQUIREMENT_DEPTH}")),
        );
        return None;
    }
    match v {
        Value::String(s) => {
            if s.is_empty()
                || s.bytes()
                    .any(|b| b == b' ' || b == b'"' || b == b'\\' || !(0x21..0x7f).contains(&b))
            {
                errors.push(
                    at.to_owned(),
                    Problem::InvalidRequirement(format!(
                        "{s:?} is not a valid scope (RFC 6749 scope-token: printable ASCII without space, '\"' or '\\')"
                    )),
                );
                return None;
            }
            Some(ScopeExpr::Scope(s.clone()))
        }
        Value::Object(obj) => {
            let mut entries = obj.iter();
            let (Some((key, items)), None) = (entries.next(), entries.next()) else {
                errors.push(
                    at.to_owned(),
                    Problem::InvalidRequirement(
                        "an object needs exactly one key: all_of or any_of".into(),
                    ),
                );
                return None;
            };
            let make: fn(Vec<ScopeExpr>) -> ScopeExpr = match key.as_str() {
                "all_of" => ScopeExpr::AllOf,
                "any_of" => ScopeExpr::AnyOf,
                other => {
                    errors.push(
                        format!("{at}.{other}"),
                        Problem::InvalidRequirement(format!(
                            "unknown key {other:?}; expected all_of or any_of"
                        )),
                    );
                    return None;
                }
            };
            let Some(list) = items.as_array().filter(|l| !l.is_empty()) else {
                errors.push(
                    format!("{at}.{key}"),
                    Problem::InvalidRequirement("expected a non-empty array".into()),
                );
                return None;
            };
            let start = errors.0.len();
            let children: Vec<ScopeExpr> = list
                .iter()
                .enumerate()
                .filter_map(|(j, item)| {
                    compile_scope_expr(&format!("{at}.{key}[{j}]"), item, depth + 1, errors)
                })
                .collect();
            (errors.0.len() == start).then(|| make(children))
        }
        _ => {
            errors.push(
                at.to_owned(),
                Problem::InvalidRequirement(
                    "expected a scope string or an all_of / any_of object".into(),
                ),
            );
            None
        }
    }
}

/// RFC 7230 token characters, lower case.
fn is_header_name(h: &str) -> bool {
    !h.is_empty()
        && h.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Printable ASCII without `"` and `\`: safe inside an RFC 7235 quoted-string as is.
pub(crate) fn is_quotable(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}
