//! Parse, then compile, then refuse: operator JSON -> [`Policy`].
//!
//! Every problem is reported with the JSON path where it sits
//! (`rules[2].match.prefix`), all at once, so an operator fixes a config in one
//! pass. A [`Policy`] only exists if there were no errors; its types cannot
//! hold an unchecked value (an algorithm name, a key of unknown type, a rule
//! without a requirement).

use core::fmt;
use std::collections::BTreeSet;

use crate::config::{Config, ProviderConfig, RemoteJwksConfig, TokenSourceConfig};
use crate::jwks::RemoteJwks;
use crate::keys::{
    Alg, AlgSet, JwksError, KeyError, key_from_base64_secret, key_from_pem, parse_jwks,
};
use crate::rules::{Authz, RuleProblem};
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
    /// Rules, requirements, roles, scopes (see [`crate::rules::RuleProblem`]).
    Rule(RuleProblem),
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
            Problem::NoKeys => f.write_str(
                "a provider needs keys: set \"jwks\", \"pem_keys\", \"hmac_secrets\" or \"remote_jwks\"",
            ),
            Problem::NoUsableKeys(why) => write!(f, "no usable key: {why}"),
            Problem::Key(e) => write!(f, "{e}"),
            Problem::Jwks(e) => write!(f, "{e}"),
            Problem::OutOfRange(why) => f.write_str(why),
            Problem::MatchKind => f.write_str(
                "exactly one of \"exact\", \"prefix\", \"template\" and \"regex\" is required",
            ),
            Problem::InvalidPath(why) => write!(f, "invalid path: {why}"),
            Problem::InvalidMethod(m) => write!(f, "invalid HTTP method {m:?}"),
            Problem::InvalidHeaderName(h) => write!(f, "invalid header name {h:?}"),
            Problem::InvalidRequirement(why) => write!(f, "invalid requirement: {why}"),
            Problem::NoProviders => f.write_str("rules need tokens but no provider is configured"),
            Problem::SourceKind => f.write_str(
                "exactly one of \"header\", \"query\" and \"cookie\" is required (\"prefix\" goes with \"header\")",
            ),
            Problem::Rule(p) => write!(f, "{p}"),
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

pub use crate::rules::{Access, Rule, ScopeExpr};

/// The validated, immutable policy the filter enforces.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Unique per compiled policy in this VM (from 1): binds memos kept on
    /// cached principals (`principal::RuleMemo`) to the policy that made them.
    pub(crate) id: u64,
    pub(crate) realm: String,
    pub(crate) providers: Vec<Provider>,
    /// Rules, route table, roles and the other authorization settings.
    pub(crate) authz: Authz,
    /// Largest `max_token_bytes` of any provider: the bound before parsing.
    pub(crate) max_token_bytes: usize,
    /// Every header the filter may write upstream (lower case): always removed
    /// from the inbound request first, so clients cannot spoof them.
    pub(crate) managed_headers: std::sync::Arc<[std::sync::Arc<str>]>,
    /// Every token location of every provider, without repeats; providers
    /// refer to them by index.
    pub(crate) sources: Vec<TokenSource>,
    /// For each of `sources`, its header name if it is a header (shared
    /// with every decision that removes it).
    pub(crate) source_headers: Vec<Option<std::sync::Arc<str>>>,
    /// Request headers the decision reads (lower case), so the shim fetches
    /// only these.
    pub(crate) wanted_headers: Vec<String>,
    /// Non-fatal findings (e.g. JWKS keys skipped), for the log.
    pub(crate) warnings: Vec<ConfigError>,
    /// Bound of the verified-token cache (0: no cache).
    pub(crate) token_cache_entries: usize,
    pub(crate) api_keys: Option<crate::apikeys::ApiKeys>,
}

/// Largest `token_cache_entries` an operator may set.
pub const MAX_TOKEN_CACHE_ENTRIES: usize = 1 << 20;

impl Policy {
    /// Bound of the verified-token cache the shim should keep (0: none).
    pub fn token_cache_entries(&self) -> usize {
        self.token_cache_entries
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }
    pub fn rules(&self) -> &[Rule] {
        self.authz.rules()
    }
    pub fn authz(&self) -> &Authz {
        &self.authz
    }
    /// Whether the decision reads Envoy's `xds.route_name` (then the shim
    /// passes it in [`crate::Request::route_name`]).
    pub fn wants_route_name(&self) -> bool {
        self.authz.uses_route_names()
    }
    /// The request headers the decision reads for a request with `method`:
    /// [`Policy::wanted_headers`], plus the CORS preflight headers for `OPTIONS`
    /// when preflights bypass the rules.
    pub fn headers_for<'a>(&'a self, method: &str) -> impl Iterator<Item = &'a str> + 'a {
        let preflight = self.authz.cors_bypass() && method == "OPTIONS";
        self.wanted_headers.iter().map(String::as_str).chain(
            preflight
                .then_some(["origin", "access-control-request-method"])
                .into_iter()
                .flatten(),
        )
    }
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }
    pub fn managed_headers(&self) -> &[std::sync::Arc<str>] {
        &self.managed_headers
    }
    /// [`Policy::managed_headers`], shared (a clone is a reference count).
    pub fn managed_headers_shared(&self) -> &std::sync::Arc<[std::sync::Arc<str>]> {
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
    compile(&parse_json(bytes)?)
}

/// Parses the plugin configuration bytes (JSON), unchecked beyond the JSON
/// types and field names: [`compile`] checks the rest.
pub fn parse_json(bytes: &[u8]) -> Result<Config, Vec<ConfigError>> {
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
    // Decoded without tracking the path (serde_path_to_error's generic
    // layer over every config type: ≈ 160 KB of scopegate.wasm, ≈ 8% of a
    // big config's configure); an error's path is recovered from its
    // position (json_path.rs).
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let config: Config = serde::Deserialize::deserialize(&mut de).map_err(|e| {
        vec![ConfigError {
            path: crate::json_path::error_path(bytes, &e),
            problem: Problem::Json(e.to_string()),
        }]
    })?;
    if let Err(e) = de.end() {
        return Err(vec![ConfigError {
            path: ".".into(),
            problem: Problem::Json(e.to_string()),
        }]);
    }
    Ok(config)
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

    let api_keys = config
        .api_keys
        .as_ref()
        .and_then(|a| compile_api_keys(a, config, &mut sources, &mut errors));
    if let Some(a) = &api_keys
        && config.providers.iter().any(|p| p.name == a.name)
    {
        errors.push(
            "api_keys.name",
            Problem::Duplicate(format!("provider name {:?}", a.name)),
        );
    }
    check_introspection_overlaps(config, &providers, &sources, &mut errors);
    let authz = crate::rules::compile_authz(config, &mut errors.0, &mut warnings);
    if config.providers.is_empty() && api_keys.is_none() && authz.needs_tokens() {
        errors.push("providers", Problem::NoProviders);
    }

    let token_cache_entries = config
        .token_cache_entries
        .unwrap_or(crate::cache::DEFAULT_MAX_ENTRIES);
    if token_cache_entries > MAX_TOKEN_CACHE_ENTRIES {
        errors.push(
            "token_cache_entries",
            Problem::OutOfRange(format!("must be at most {MAX_TOKEN_CACHE_ENTRIES}")),
        );
    }
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    let mut managed_headers: Vec<std::sync::Arc<str>> = providers
        .iter()
        .flat_map(|p: &Provider| {
            p.claims_to_headers
                .iter()
                .map(|(_, h)| h.clone())
                .chain(p.payload_header.clone())
        })
        .collect();
    if authz.any_dry_run() {
        managed_headers.push(std::sync::Arc::from(crate::rules::DRY_RUN_HEADER));
    }
    managed_headers.sort();
    managed_headers.dedup();
    let managed_headers: std::sync::Arc<[std::sync::Arc<str>]> = managed_headers.into();
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
    if authz.uses_hosts() && !wanted_headers.iter().any(|h| h == ":authority") {
        wanted_headers.push(":authority".to_owned());
    }
    let source_headers = sources
        .iter()
        .map(|s| match s {
            TokenSource::Header { name, .. } => Some(std::sync::Arc::from(name.as_str())),
            _ => None,
        })
        .collect();
    static COMPILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    Ok(Policy {
        id: COMPILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        realm,
        providers,
        authz,
        max_token_bytes,
        managed_headers,
        sources,
        source_headers,
        wanted_headers,
        warnings,
        token_cache_entries,
        api_keys,
    })
}

fn compile_api_keys(
    a: &crate::config::ApiKeysConfig,
    config: &Config,
    sources: &mut Vec<TokenSource>,
    errors: &mut Errors,
) -> Option<crate::apikeys::ApiKeys> {
    let start = errors.0.len();
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| crate::apikeys::DEFAULT_NAME.to_owned());
    if name.is_empty() {
        errors.push("api_keys.name", Problem::Empty);
    }
    let default = [TokenSourceConfig {
        header: Some("x-api-key".into()),
        ..TokenSourceConfig::default()
    }];
    let from = a.from.as_deref().unwrap_or(&default);
    let before = sources.len();
    let indices = compile_sources("api_keys", Some(from), sources, errors);
    if indices.iter().any(|i| *i < before) {
        errors.push(
            "api_keys.from",
            Problem::Duplicate("token location: a provider already reads JWTs there".into()),
        );
    }
    let mut keys: Vec<crate::apikeys::ApiKey> = Vec::new();
    let mut names = BTreeSet::new();
    for (j, k) in a.keys.iter().enumerate() {
        let at = format!("api_keys.keys[{j}]");
        if k.name.is_empty() {
            errors.push(format!("{at}.name"), Problem::Empty);
        } else if !names.insert(k.name.as_str()) {
            errors.push(
                format!("{at}.name"),
                Problem::Duplicate(format!("key name {:?}", k.name)),
            );
        }
        let Some(digest) = crate::apikeys::parse_digest(&k.sha256) else {
            errors.push(
                format!("{at}.sha256"),
                Problem::OutOfRange("must be the key's SHA-256 as 64 hex digits".into()),
            );
            continue;
        };
        if keys.iter().any(|x| x.digest == digest) {
            errors.push(
                format!("{at}.sha256"),
                Problem::Duplicate("key digest".into()),
            );
        }
        let mut scopes = k.scopes.clone();
        for (r, role) in k.roles.iter().enumerate() {
            match config.roles.get(role) {
                Some(granted) => scopes.extend(granted.iter().cloned()),
                None => errors.push(
                    format!("{at}.roles[{r}]"),
                    Problem::OutOfRange(format!("role {role:?} is not defined in \"roles\"")),
                ),
            }
        }
        for (s, scope) in scopes.iter().enumerate() {
            if scope.is_empty()
                || scope
                    .bytes()
                    .any(|b| !(0x21..0x7f).contains(&b) || b == b'"' || b == b'\\')
            {
                errors.push(
                    format!("{at}.scopes[{s}]"),
                    Problem::OutOfRange(format!("{scope:?} is not a valid scope")),
                );
            }
        }
        let mut unique = Vec::new();
        for s in scopes {
            if !unique.contains(&s) {
                unique.push(s);
            }
        }
        keys.push(crate::apikeys::ApiKey {
            name: k.name.clone(),
            digest,
            scopes: unique,
            expires_at: k.expires_at,
        });
    }
    if a.keys.is_empty() {
        errors.push("api_keys.keys", Problem::Empty);
    }
    (errors.0.len() == start).then_some(crate::apikeys::ApiKeys {
        name,
        sources: indices,
        keys,
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

fn compile_remote(at: &str, r: &RemoteJwksConfig, errors: &mut Errors) -> Option<RemoteJwks> {
    let start = errors.0.len();
    if r.cluster.is_empty() {
        errors.push(format!("{at}.cluster"), Problem::Empty);
    }
    if r.authority.is_empty() || !r.authority.bytes().all(|b| b.is_ascii_graphic()) {
        errors.push(
            format!("{at}.authority"),
            Problem::OutOfRange("must be a host name (and optional port)".into()),
        );
    }
    let discovery = r.discovery.unwrap_or(false);
    if let Some(path) = &r.path
        && !path.starts_with('/')
    {
        errors.push(
            format!("{at}.path"),
            Problem::InvalidPath("must start with /".into()),
        );
    }
    let timeout_ms = r.timeout_ms.unwrap_or(5000);
    if !(100..=60_000).contains(&timeout_ms) {
        errors.push(
            format!("{at}.timeout_ms"),
            Problem::OutOfRange("must be between 100 and 60000".into()),
        );
    }
    let cache = r.cache_duration_seconds.unwrap_or(600);
    if !(10..=7 * 86_400).contains(&cache) {
        errors.push(
            format!("{at}.cache_duration_seconds"),
            Problem::OutOfRange("must be between 10 and 604800".into()),
        );
    }
    let refetch = r.min_refetch_interval_seconds.unwrap_or(30);
    if !(1..=86_400).contains(&refetch) {
        errors.push(
            format!("{at}.min_refetch_interval_seconds"),
            Problem::OutOfRange("must be between 1 and 86400".into()),
        );
    }
    if errors.0.len() > start {
        return None;
    }
    Some(RemoteJwks {
        cluster: r.cluster.clone(),
        authority: r.authority.clone(),
        path: match (&r.path, discovery) {
            (Some(p), _) => Some(p.clone()),
            (None, true) => None,
            (None, false) => Some("/.well-known/jwks.json".into()),
        },
        discovery_path: discovery.then(|| "/.well-known/openid-configuration".to_owned()),
        timeout_ms,
        cache_duration_seconds: i64::try_from(cache).unwrap_or(i64::MAX),
        min_refetch_interval_seconds: i64::try_from(refetch).unwrap_or(i64::MAX),
    })
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
    let payload_header = match &p.payload_header {
        None => None,
        Some(h) => {
            let lower = h.to_ascii_lowercase();
            if !is_header_name(&lower) || lower == "authorization" {
                errors.push(
                    format!("{at}.payload_header"),
                    Problem::InvalidHeaderName(h.clone()),
                );
                None
            } else {
                Some(std::sync::Arc::from(lower))
            }
        }
    };
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
            claims_to_headers.push((claim.clone(), std::sync::Arc::from(lower)));
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

    let remote = p
        .remote_jwks
        .as_ref()
        .and_then(|r| compile_remote(&format!("{at}.remote_jwks"), r, errors));
    let revocation = p.revocation.as_ref().and_then(|r| {
        crate::revocation::compile(
            &format!("{at}.revocation"),
            r,
            i64::try_from(skew).unwrap_or(i64::MAX),
            p.max_lifetime_seconds,
            &mut errors.0,
        )
    });
    let mut keys = Vec::new();
    for (j, k) in p.pem_keys.iter().enumerate() {
        match key_from_pem(k.kid.clone(), &k.pem, k.alg.as_deref()) {
            Ok(key) => keys.extend(key.restrict(allowed)),
            Err(e) => errors.push(format!("{at}.pem_keys[{j}]"), Problem::Key(e)),
        }
    }
    for (j, k) in p.hmac_secrets.iter().enumerate() {
        match key_from_base64_secret(k.kid.clone(), &k.secret, k.alg.as_deref()) {
            Ok(key) => keys.extend(key.restrict(allowed)),
            Err(e) => errors.push(format!("{at}.hmac_secrets[{j}]"), Problem::Key(e)),
        }
    }
    let static_sources = !p.pem_keys.is_empty() || !p.hmac_secrets.is_empty();
    let introspection = p
        .introspection
        .as_ref()
        .and_then(|c| compile_introspection(&format!("{at}.introspection"), c, errors, warnings));
    match &p.jwks {
        None if p.introspection.is_some() => {}
        None if static_sources || p.remote_jwks.is_some() => {}
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
                let before = keys.len();
                keys.extend(parsed.keys.into_iter().filter_map(|k| k.restrict(allowed)));
                if keys.len() == before {
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
    if static_sources && keys.is_empty() {
        errors.push(
            format!("{at}.algorithms"),
            Problem::NoUsableKeys("no configured key supports the provider's algorithms".into()),
        );
        return None;
    }
    // Fetched keys may bring any asymmetric algorithm the provider allows;
    // static keys bring their own.
    let algorithms = if remote.is_some() {
        let asymmetric: AlgSet = allowed
            .iter()
            .filter(|a| a.family() != crate::keys::KeyFamily::Hmac)
            .collect();
        AlgSet::from_iter(
            asymmetric
                .iter()
                .chain(keys.iter().flat_map(|k| k.algs().iter())),
        )
    } else {
        keys.iter().fold(AlgSet::EMPTY, |acc, k| {
            AlgSet::from_iter(acc.iter().chain(k.algs().iter()))
        })
    };
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
        payload_header,
        forward_token: p.forward_token.unwrap_or(false),
        sources: source_indices,
        required_claims: p.required_claims.clone().into_iter().collect(),
        max_lifetime_seconds: p
            .max_lifetime_seconds
            .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        require_typ,
        remote,
        revocation,
        introspection,
    })
}

fn compile_introspection(
    at: &str,
    c: &crate::config::IntrospectionConfig,
    errors: &mut Errors,
    warnings: &mut Vec<ConfigError>,
) -> Option<crate::introspection::Introspection> {
    use crate::introspection as i;
    let start = errors.0.len();
    if c.cluster.is_empty() {
        errors.push(format!("{at}.cluster"), Problem::Empty);
    }
    if c.authority.is_empty() || !c.authority.bytes().all(|b| b.is_ascii_graphic()) {
        errors.push(
            format!("{at}.authority"),
            Problem::OutOfRange("must be a host name (and optional port)".into()),
        );
    }
    let path = c.path.clone().unwrap_or_else(|| i::DEFAULT_PATH.to_owned());
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        errors.push(
            format!("{at}.path"),
            Problem::InvalidPath("must start with / and hold printable ASCII only".into()),
        );
    }
    // Secrets are never echoed in a message.
    let header_safe = |s: &str| !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b));
    let auth = match (&c.client_id, &c.client_secret, &c.bearer_token) {
        (Some(id), Some(secret), None) => {
            if id.is_empty() {
                errors.push(format!("{at}.client_id"), Problem::Empty);
            }
            if secret.is_empty() {
                errors.push(format!("{at}.client_secret"), Problem::Empty);
            }
            i::ClientAuth::Header(i::basic_auth(id, secret))
        }
        (None, None, Some(token)) => {
            if !header_safe(token) || token.contains(' ') {
                errors.push(
                    format!("{at}.bearer_token"),
                    Problem::OutOfRange(
                        "must be printable ASCII without spaces (the value is not shown)".into(),
                    ),
                );
            }
            i::ClientAuth::Header(format!("Bearer {token}"))
        }
        (None, None, None) => {
            warnings.push(ConfigError {
                path: at.to_owned(),
                problem: Problem::OutOfRange(
                    "no client authentication: set \"client_id\" and \"client_secret\", or \"bearer_token\" \
                     (calls go out unauthenticated)"
                        .into(),
                ),
            });
            i::ClientAuth::None
        }
        (_, _, Some(_)) => {
            errors.push(
                format!("{at}.bearer_token"),
                Problem::OutOfRange(
                    "use either \"bearer_token\" or \"client_id\" with \"client_secret\", not both"
                        .into(),
                ),
            );
            i::ClientAuth::None
        }
        (Some(_), None, None) => {
            errors.push(
                format!("{at}.client_secret"),
                Problem::OutOfRange("\"client_id\" needs \"client_secret\"".into()),
            );
            i::ClientAuth::None
        }
        (None, Some(_), None) => {
            errors.push(
                format!("{at}.client_id"),
                Problem::OutOfRange("\"client_secret\" needs \"client_id\"".into()),
            );
            i::ClientAuth::None
        }
    };
    let timeout_ms = c.timeout_ms.unwrap_or(i::DEFAULT_TIMEOUT_MS);
    if !(100..=60_000).contains(&timeout_ms) {
        errors.push(
            format!("{at}.timeout_ms"),
            Problem::OutOfRange("must be between 100 and 60000".into()),
        );
    }
    let ttl = c.cache_ttl_seconds.unwrap_or(i::DEFAULT_CACHE_TTL_SECONDS);
    if ttl > i::MAX_CACHE_TTL_SECONDS {
        errors.push(
            format!("{at}.cache_ttl_seconds"),
            Problem::OutOfRange(format!("must be at most {}", i::MAX_CACHE_TTL_SECONDS)),
        );
    }
    let negative = c
        .negative_cache_ttl_seconds
        .unwrap_or(i::DEFAULT_NEGATIVE_CACHE_TTL_SECONDS);
    if negative > i::MAX_NEGATIVE_CACHE_TTL_SECONDS {
        errors.push(
            format!("{at}.negative_cache_ttl_seconds"),
            Problem::OutOfRange(format!(
                "must be at most {}",
                i::MAX_NEGATIVE_CACHE_TTL_SECONDS
            )),
        );
    }
    let cache_entries = c.cache_entries.unwrap_or(i::DEFAULT_CACHE_ENTRIES);
    if cache_entries > i::MAX_CACHE_ENTRIES {
        errors.push(
            format!("{at}.cache_entries"),
            Problem::OutOfRange(format!("must be at most {}", i::MAX_CACHE_ENTRIES)),
        );
    }
    let max_body_bytes = c.max_body_bytes.unwrap_or(i::DEFAULT_MAX_BODY_BYTES);
    if !(i::MIN_MAX_BODY_BYTES..=i::MAX_MAX_BODY_BYTES).contains(&max_body_bytes) {
        errors.push(
            format!("{at}.max_body_bytes"),
            Problem::OutOfRange(format!(
                "must be between {} and {}",
                i::MIN_MAX_BODY_BYTES,
                i::MAX_MAX_BODY_BYTES
            )),
        );
    }
    if errors.0.len() > start {
        return None;
    }
    Some(i::Introspection {
        cluster: c.cluster.clone(),
        authority: c.authority.clone(),
        path,
        auth,
        tokens: match c.tokens {
            None | Some(crate::config::IntrospectTokensConfig::Opaque) => i::Tokens::Opaque,
            Some(crate::config::IntrospectTokensConfig::All) => i::Tokens::All,
        },
        timeout_ms,
        cache_ttl_seconds: i64::try_from(ttl).unwrap_or(i64::MAX),
        negative_cache_ttl_seconds: i64::try_from(negative).unwrap_or(i64::MAX),
        cache_entries,
        max_body_bytes,
    })
}

/// Refuses configurations where the provider that introspects a token would
/// be ambiguous: two introspecting providers sharing a token location, or a
/// `tokens: "all"` provider sharing one with any other provider.
fn check_introspection_overlaps(
    config: &Config,
    providers: &[Provider],
    sources: &[TokenSource],
    errors: &mut Errors,
) {
    let index_of = |name: &str| config.providers.iter().position(|p| p.name == name);
    for (j, b) in providers.iter().enumerate() {
        for a in providers.iter().take(j) {
            let (ia, ib) = (a.introspection.as_ref(), b.introspection.as_ref());
            if ia.is_none() && ib.is_none() {
                continue;
            }
            let all = |i: Option<&crate::introspection::Introspection>| {
                i.is_some_and(|i| i.tokens == crate::introspection::Tokens::All)
            };
            let conflict = (ia.is_some() && ib.is_some()) || all(ia) || all(ib);
            if !conflict {
                continue;
            }
            let Some(shared) = a.sources.iter().find(|s| b.sources.contains(s)) else {
                continue;
            };
            let place = sources
                .get(*shared)
                .map(|s| format!("{s:?}"))
                .unwrap_or_default();
            let culprit = if ib.is_some() { b } else { a };
            let at = index_of(&culprit.name).map_or_else(
                || "providers".to_owned(),
                |k| format!("providers[{k}].introspection"),
            );
            errors.push(
                at,
                Problem::Duplicate(format!(
                    "introspecting provider: providers {:?} and {:?} both take tokens found at {place}; \
                     give them different \"from\" locations",
                    a.name, b.name
                )),
            );
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
