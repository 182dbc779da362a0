//! The authorization half of the policy: rules (match + requirement),
//! compiled from the operator's config, and their evaluation against a
//! verified principal.
//!
//! Compilation reports every problem with its JSON path, including rules
//! that can never match because an earlier rule takes every request they
//! would (first match wins), and scope names that break the
//! `service:resource:action` convention (warnings).

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::compile::{ConfigError, Problem};
use crate::config::{
    ClaimConditionConfig, Config, CorsPreflightConfig, DefaultRuleConfig, MatchConfig, RuleConfig,
};
use crate::principal::{ClaimPath, GrantConfig, Grants, Principal};
use crate::reason::Reason;
use crate::routes::{HostPattern, PathMatch, PathRegex, Template, TemplateSegment, normalize};
use crate::table::RouteTable;

/// Header carrying the would-be decision upstream in dry-run mode.
pub const DRY_RUN_HEADER: &str = "x-scopegate-dry-run";
/// Name of the default rule when the config gives none.
pub const DEFAULT_RULE_NAME: &str = "default";
/// Longest rule name.
pub const MAX_RULE_NAME_LEN: usize = 64;
/// Nesting bound for scope expressions.
pub const MAX_REQUIREMENT_DEPTH: usize = 8;

/// A scope expression: what a principal's scopes must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeExpr {
    Scope(String),
    AllOf(Vec<ScopeExpr>),
    AnyOf(Vec<ScopeExpr>),
}

impl ScopeExpr {
    /// `None` if `grants` satisfy the expression; otherwise the scopes of the
    /// alternative that needs the fewest extra grants (every scope of it, for
    /// the `scope` attribute of `WWW-Authenticate`).
    pub fn missing(&self, grants: &Grants) -> Option<Vec<String>> {
        fn walk(expr: &ScopeExpr, g: &Grants) -> (usize, Vec<String>) {
            match expr {
                ScopeExpr::Scope(s) => (usize::from(!g.covers(s)), vec![s.clone()]),
                ScopeExpr::AllOf(items) => {
                    let mut lacking = 0;
                    let mut scopes: Vec<String> = Vec::new();
                    for item in items {
                        let (l, s) = walk(item, g);
                        lacking += l;
                        for x in s {
                            if !scopes.contains(&x) {
                                scopes.push(x);
                            }
                        }
                    }
                    (lacking, scopes)
                }
                ScopeExpr::AnyOf(items) => items
                    .iter()
                    .map(|i| walk(i, g))
                    .min_by_key(|(l, s)| (*l, s.len()))
                    .unwrap_or((1, Vec::new())),
            }
        }
        let (lacking, scopes) = walk(self, grants);
        (lacking > 0).then_some(scopes)
    }

    fn scopes<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            ScopeExpr::Scope(s) => out.push(s),
            ScopeExpr::AllOf(items) | ScopeExpr::AnyOf(items) => {
                items.iter().for_each(|i| i.scopes(out));
            }
        }
    }
}

impl fmt::Display for ScopeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, items) = match self {
            ScopeExpr::Scope(s) => return f.write_str(s),
            ScopeExpr::AllOf(items) => ("all_of", items),
            ScopeExpr::AnyOf(items) => ("any_of", items),
        };
        write!(f, "{name}(")?;
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
        f.write_str(")")
    }
}

/// What a rule demands of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token needed. A token, if present, is verified: a valid one is
    /// forwarded as the principal, an invalid one is ignored (anonymous).
    Public,
    /// Any valid token of any (allowed) provider.
    Authenticated,
    /// A valid token whose scopes satisfy the expression.
    Scopes(ScopeExpr),
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Public => f.write_str("public"),
            Access::Authenticated => f.write_str("authenticated"),
            Access::Scopes(e) => write!(f, "{e}"),
        }
    }
}

/// The test of a [`ClaimCondition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimTest {
    /// The claim equals this JSON value.
    Equals(Value),
    /// The claim is an array with an element equal to this value, or is this value.
    Contains(Value),
    /// The claim equals one of these values.
    OneOf(Vec<Value>),
}

/// A condition on one claim of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCondition {
    pub(crate) claim: ClaimPath,
    pub(crate) test: ClaimTest,
}

impl ClaimCondition {
    /// Whether the claims satisfy the condition. A missing claim never does.
    pub fn holds(&self, claims: &Map<String, Value>) -> bool {
        let Some(v) = self.claim.get(claims) else {
            return false;
        };
        match &self.test {
            ClaimTest::Equals(want) => v == want,
            ClaimTest::Contains(want) => match v {
                Value::Array(items) => items.contains(want),
                other => other == want,
            },
            ClaimTest::OneOf(options) => options.contains(v),
        }
    }
}

impl fmt::Display for ClaimCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.test {
            ClaimTest::Equals(v) => write!(f, "{} equals {v}", self.claim),
            ClaimTest::Contains(v) => write!(f, "{} contains {v}", self.claim),
            ClaimTest::OneOf(vs) => write!(f, "{} one of {}", self.claim, Value::Array(vs.clone())),
        }
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) name: std::sync::Arc<str>,
    pub(crate) path: PathMatch,
    /// Upper-case method names; empty = any method.
    pub(crate) methods: Vec<String>,
    /// Empty = any host.
    pub(crate) hosts: Vec<HostPattern>,
    /// Envoy route names; empty = any route.
    pub(crate) route_names: Vec<String>,
    pub(crate) access: Access,
    /// Provider names whose tokens this rule accepts; empty = any provider.
    pub(crate) providers: Vec<String>,
    /// All must hold.
    pub(crate) claims: Vec<ClaimCondition>,
    pub(crate) dry_run: bool,
    /// Stale revocation data always refuses here (fail closed).
    pub(crate) sensitive: bool,
}

/// The facts a rule is matched on.
#[derive(Debug, Clone, Copy)]
pub struct RouteFacts<'a> {
    pub method: &'a str,
    /// Normalised.
    pub path: &'a str,
    /// From [`crate::routes::parse_authority`]; `None` if absent or unusable.
    pub host: Option<(&'a str, Option<u16>)>,
    /// Envoy's `xds.route_name`.
    pub route_name: Option<&'a str>,
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
    pub fn hosts(&self) -> &[HostPattern] {
        &self.hosts
    }
    pub fn route_names(&self) -> &[String] {
        &self.route_names
    }
    pub fn providers(&self) -> &[String] {
        &self.providers
    }
    pub fn claims(&self) -> &[ClaimCondition] {
        &self.claims
    }
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }
    /// Whether stale revocation data always refuses on this rule.
    pub fn sensitive(&self) -> bool {
        self.sensitive
    }

    /// Every condition but the path (which the route table has checked).
    pub(crate) fn matches_besides_path(&self, f: &RouteFacts<'_>) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == f.method))
            && (self.hosts.is_empty()
                || f.host
                    .is_some_and(|(h, p)| self.hosts.iter().any(|hp| hp.matches(h, p))))
            && (self.route_names.is_empty()
                || f.route_name
                    .is_some_and(|r| self.route_names.iter().any(|n| n == r)))
    }

    /// Whether the rule matches the request.
    pub fn matches(&self, f: &RouteFacts<'_>) -> bool {
        self.matches_besides_path(f) && self.path.matches(f.path)
    }

    /// What the rule matches, for people (`GET,POST prefix /orders host=... route=...`).
    pub fn describe_match(&self) -> String {
        let mut s = if self.methods.is_empty() {
            "any method".to_owned()
        } else {
            self.methods.join(",")
        };
        s.push(' ');
        s.push_str(&self.path.to_string());
        if !self.hosts.is_empty() {
            let hosts: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
            s.push_str(&format!(" hosts={}", hosts.join(",")));
        }
        if !self.route_names.is_empty() {
            s.push_str(&format!(" route_names={}", self.route_names.join(",")));
        }
        s
    }
}

/// The compiled authorization policy.
#[derive(Debug, Clone)]
pub struct Authz {
    pub(crate) rules: Vec<Rule>,
    pub(crate) table: RouteTable,
    pub(crate) default_rule: Option<Rule>,
    pub(crate) grants: GrantConfig,
    pub(crate) super_admin: Option<String>,
    pub(crate) cors_bypass: bool,
    pub(crate) dry_run: bool,
    /// Some rule has `hosts`: the decision reads `:authority`.
    pub(crate) uses_hosts: bool,
    /// Some rule has `route_names`: the decision reads `xds.route_name`.
    pub(crate) uses_route_names: bool,
}

/// The outcome of a non-public rule for a verified principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// [`Reason::Allowed`], or [`Reason::SuperAdmin`] when only the
    /// super-admin scope let it pass.
    Allow(Reason),
    /// Always 403.
    Deny {
        reason: Reason,
        required_scopes: Vec<String>,
        detail: String,
    },
}

impl Authz {
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    pub fn default_rule(&self) -> Option<&Rule> {
        self.default_rule.as_ref()
    }
    pub fn grant_config(&self) -> &GrantConfig {
        &self.grants
    }
    pub fn super_admin_scope(&self) -> Option<&str> {
        self.super_admin.as_deref()
    }
    pub fn cors_bypass(&self) -> bool {
        self.cors_bypass
    }
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }
    pub fn uses_hosts(&self) -> bool {
        self.uses_hosts
    }
    pub fn uses_route_names(&self) -> bool {
        self.uses_route_names
    }

    /// The rule for the request: the first matching rule, else the default
    /// rule, else none (deny).
    pub fn find(&self, facts: &RouteFacts<'_>) -> Option<&Rule> {
        self.table
            .lookup(&self.rules, facts)
            .and_then(|i| self.rules.get(i))
            .or(self.default_rule.as_ref())
    }

    /// [`Authz::find`] with the rule's index (`rules.len()` for the default rule).
    pub(crate) fn find_indexed(&self, facts: &RouteFacts<'_>) -> Option<(usize, &Rule)> {
        self.table
            .lookup(&self.rules, facts)
            .and_then(|i| self.rules.get(i).map(|r| (i, r)))
            .or_else(|| self.default_rule.as_ref().map(|r| (self.rules.len(), r)))
    }

    /// The same answer as [`Authz::find`] by trying every rule in order: the
    /// reference the route table is tested and benchmarked against.
    #[doc(hidden)]
    pub fn find_linear(&self, facts: &RouteFacts<'_>) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.matches(facts))
            .or(self.default_rule.as_ref())
    }

    /// Any rule (or the default rule) needs a token.
    pub(crate) fn needs_tokens(&self) -> bool {
        self.rules
            .iter()
            .chain(self.default_rule.as_ref())
            .any(|r| r.access != Access::Public)
    }

    /// Some rule (or the global switch) is in dry-run.
    pub(crate) fn any_dry_run(&self) -> bool {
        self.dry_run
            || self
                .rules
                .iter()
                .chain(self.default_rule.as_ref())
                .any(|r| r.dry_run)
    }

    /// A non-public rule against a verified principal.
    pub(crate) fn evaluate(&self, rule: &Rule, p: &Principal) -> Verdict {
        if !rule.providers.is_empty() && !rule.providers.contains(&p.provider) {
            return Verdict::Deny {
                reason: Reason::ProviderNotAllowed,
                required_scopes: Vec::new(),
                detail: format!(
                    "token of provider {:?}; rule {} accepts only {:?}",
                    p.provider, rule.name, rule.providers
                ),
            };
        }
        let grants = self.grants.grants(p);
        let scope_gap = match &rule.access {
            Access::Scopes(e) => e.missing(&grants),
            Access::Public | Access::Authenticated => None,
        };
        let failed_claim = rule.claims.iter().find(|c| !c.holds(&p.claims));
        if scope_gap.is_none() && failed_claim.is_none() {
            return Verdict::Allow(Reason::Allowed);
        }
        if self
            .super_admin
            .as_deref()
            .is_some_and(|s| grants.covers(s))
        {
            return Verdict::Allow(Reason::SuperAdmin);
        }
        if let Some(needed) = scope_gap {
            return Verdict::Deny {
                reason: Reason::InsufficientScope,
                detail: format!(
                    "subject {:?} has scopes {:?} (roles {:?}); rule {} needs {needed:?}",
                    p.subject,
                    grants.effective().collect::<Vec<_>>(),
                    grants.roles,
                    rule.name
                ),
                required_scopes: needed,
            };
        }
        let detail = failed_claim.map_or_else(String::new, |c| {
            format!(
                "subject {:?}: claim condition `{c}` of rule {} does not hold",
                p.subject, rule.name
            )
        });
        Verdict::Deny {
            reason: Reason::ClaimMismatch,
            required_scopes: Vec::new(),
            detail,
        }
    }
}

/// Rule-specific config problems (see [`Problem::Rule`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleProblem {
    InvalidName(String),
    ReservedName(String),
    InvalidTemplate(String),
    InvalidRegex(String),
    InvalidHost(String),
    InvalidRouteName(String),
    UnknownProvider(String),
    InvalidClaimPath(String),
    ClaimTestKind,
    InvalidClaimValue,
    /// `providers` / `claims` on a public rule, which takes no token.
    NotForPublic(&'static str),
    /// Every request the rule matches is taken by earlier rules.
    Shadowed(Vec<(usize, String)>),
    /// Warning: some of the rule's methods are taken by earlier rules.
    MethodsShadowed(Vec<String>, Vec<(usize, String)>),
    /// Warning: the default rule is never used.
    DefaultUnreachable(usize, String),
    /// Warning: a public default rule opens every unlisted route.
    PublicDefault,
    /// A `*` where it has no meaning (requirements; not a whole trailing segment).
    Wildcard(String),
    /// Warning: a scope name breaks the `service:resource:action` convention.
    ScopeConvention(String),
    /// The route regexes together exceed the size bound.
    RegexSetTooBig(String),
}

fn rule_refs(by: &[(usize, String)]) -> String {
    by.iter()
        .map(|(i, n)| format!("rules[{i}] ({n:?})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleProblem::InvalidName(n) => write!(
                f,
                "invalid rule name {n:?}: 1 to {MAX_RULE_NAME_LEN} letters, digits, '-' or '_' (it names metrics)"
            ),
            RuleProblem::ReservedName(n) => {
                write!(f, "rule name {n:?} is taken by the default rule")
            }
            RuleProblem::InvalidTemplate(e) => write!(f, "invalid template: {e}"),
            RuleProblem::InvalidRegex(e) => write!(f, "invalid regex: {e}"),
            RuleProblem::InvalidHost(e) => write!(f, "invalid host: {e}"),
            RuleProblem::InvalidRouteName(n) => write!(f, "invalid route name {n:?}"),
            RuleProblem::UnknownProvider(n) => write!(f, "no provider is named {n:?}"),
            RuleProblem::InvalidClaimPath(e) => write!(f, "invalid claim path: {e}"),
            RuleProblem::ClaimTestKind => {
                f.write_str("exactly one of \"equals\", \"contains\" and \"one_of\" is required")
            }
            RuleProblem::InvalidClaimValue => {
                f.write_str("claim condition values must not be null")
            }
            RuleProblem::NotForPublic(field) => {
                write!(f, "\"{field}\" needs a token; a public rule takes none")
            }
            RuleProblem::Shadowed(by) => write!(
                f,
                "unreachable rule: every request it matches is matched first by {}",
                rule_refs(by)
            ),
            RuleProblem::MethodsShadowed(methods, by) => write!(
                f,
                "methods {} of this rule are never reached: matched first by {}",
                methods.join(","),
                rule_refs(by)
            ),
            RuleProblem::DefaultUnreachable(i, n) => write!(
                f,
                "the default rule is never used: rules[{i}] ({n:?}) matches every request"
            ),
            RuleProblem::PublicDefault => f.write_str(
                "a public default rule lets every request no rule lists through without a token",
            ),
            RuleProblem::Wildcard(why) => f.write_str(why),
            RuleProblem::ScopeConvention(why) => write!(f, "scope convention: {why}"),
            RuleProblem::RegexSetTooBig(e) => {
                write!(f, "the route regexes together are too big: {e}")
            }
        }
    }
}

/// A JSON path, written out only when printed (in an error or a warning):
/// `parent.field`, `parent.field[index]`, or `field[index]` at the root.
/// Compiling a rule names many places and almost never reports one.
#[derive(Clone, Copy)]
struct At<'a> {
    parent: Option<&'a dyn fmt::Display>,
    field: &'a str,
    index: Option<usize>,
}

impl<'a> At<'a> {
    fn field(parent: &'a dyn fmt::Display, field: &'a str) -> At<'a> {
        At {
            parent: Some(parent),
            field,
            index: None,
        }
    }
    fn item(parent: Option<&'a dyn fmt::Display>, field: &'a str, index: usize) -> At<'a> {
        At {
            parent,
            field,
            index: Some(index),
        }
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.parent {
            write!(f, "{p}.")?;
        }
        f.write_str(self.field)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        Ok(())
    }
}

struct Sink<'a> {
    errors: &'a mut Vec<ConfigError>,
    warnings: &'a mut Vec<ConfigError>,
}

impl Sink<'_> {
    fn error(&mut self, path: impl Into<String>, problem: Problem) {
        self.errors.push(ConfigError {
            path: path.into(),
            problem,
        });
    }
    fn rule_error(&mut self, path: impl Into<String>, p: RuleProblem) {
        self.error(path, Problem::Rule(p));
    }
    fn warn(&mut self, path: impl Into<String>, p: RuleProblem) {
        self.warnings.push(ConfigError {
            path: path.into(),
            problem: Problem::Rule(p),
        });
    }
}

/// Compiles the rule-related parts of the config. Problems go to `errors`
/// and `warnings`; the returned value is only meaningful without errors.
pub(crate) fn compile_authz(
    config: &Config,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) -> Authz {
    let mut sink = Sink { errors, warnings };
    let providers: BTreeSet<&str> = config
        .providers
        .iter()
        .map(|p| p.name.as_str())
        .chain(
            config
                .api_keys
                .as_ref()
                .map(|a| a.name.as_deref().unwrap_or(crate::apikeys::DEFAULT_NAME)),
        )
        .collect();
    let default_name = config.default_rule.as_ref().map_or(DEFAULT_RULE_NAME, |d| {
        d.name.as_deref().unwrap_or(DEFAULT_RULE_NAME)
    });

    let mut rules: Vec<Rule> = Vec::new();
    // Index in `rules` -> index in config.rules (for paths), for rules that compiled.
    let mut origin: Vec<usize> = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in config.rules.iter().enumerate() {
        let at = At::item(None, "rules", i);
        if r.name.is_empty() {
            sink.error(format!("{at}.name"), Problem::Empty);
        } else if !names.insert(r.name.as_str()) {
            sink.error(
                format!("{at}.name"),
                Problem::Duplicate(format!("rule name {:?}", r.name)),
            );
        } else if !valid_rule_name(&r.name) {
            sink.rule_error(
                format!("{at}.name"),
                RuleProblem::InvalidName(r.name.clone()),
            );
        } else if config.default_rule.is_some() && r.name == default_name {
            sink.rule_error(
                format!("{at}.name"),
                RuleProblem::ReservedName(r.name.clone()),
            );
        }
        if let Some(rule) = compile_rule(&at, r, &providers, &mut sink) {
            rules.push(rule);
            origin.push(i);
        }
    }

    let default_rule = config
        .default_rule
        .as_ref()
        .and_then(|d| compile_default(d, default_name, &providers, &mut sink));

    let grants = compile_grants(config, &mut sink);
    let super_admin = config
        .super_admin_scope
        .as_ref()
        .and_then(|s| check_scope(&"super_admin_scope", s, false, &mut sink).then(|| s.clone()));
    if let Some(prefix) = &config.scope_prefix
        && (prefix.is_empty() || prefix.contains([':', ' ', '*']))
    {
        sink.error(
            "scope_prefix",
            Problem::OutOfRange(
                "a service prefix is a non-empty name without ':', '*' or spaces".into(),
            ),
        );
    }
    convention_warnings(config, &mut sink);

    // Rules that did not compile are left out: they shadow nothing.
    let table = RouteTable::build(&rules);
    shadow_check(
        &rules,
        &origin,
        default_rule.as_ref(),
        table.as_ref().ok(),
        &mut sink,
    );
    let table = match table {
        Ok(t) => t,
        Err(e) => {
            sink.rule_error("rules", RuleProblem::RegexSetTooBig(e));
            RouteTable::default()
        }
    };
    Authz {
        uses_hosts: rules.iter().any(|r| !r.hosts.is_empty()),
        uses_route_names: rules.iter().any(|r| !r.route_names.is_empty()),
        table,
        rules,
        default_rule,
        grants,
        super_admin,
        cors_bypass: config.cors_preflight != Some(CorsPreflightConfig::Enforce),
        dry_run: config.dry_run.unwrap_or(false),
    }
}

fn valid_rule_name(n: &str) -> bool {
    n.len() <= MAX_RULE_NAME_LEN
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn compile_rule(
    at: &dyn fmt::Display,
    r: &RuleConfig,
    providers: &BTreeSet<&str>,
    sink: &mut Sink<'_>,
) -> Option<Rule> {
    let start = sink.errors.len();
    let matcher = compile_match(&At::field(at, "match"), &r.matcher, sink);
    let access = compile_access(&At::field(at, "require"), &r.require, sink);
    let (rule_providers, claims) = compile_token_conditions(
        at,
        access.as_ref(),
        r.providers.as_deref(),
        &r.claims,
        providers,
        sink,
    );
    if sink.errors.len() > start {
        return None;
    }
    let (path, methods, hosts, route_names) = matcher?;
    Some(Rule {
        name: std::sync::Arc::from(r.name.as_str()),
        path,
        methods,
        hosts,
        route_names,
        access: access?,
        providers: rule_providers,
        claims,
        dry_run: r.dry_run.unwrap_or(false),
        sensitive: r.sensitive.unwrap_or(false),
    })
}

fn compile_default(
    d: &DefaultRuleConfig,
    name: &str,
    providers: &BTreeSet<&str>,
    sink: &mut Sink<'_>,
) -> Option<Rule> {
    let at = "default_rule";
    let start = sink.errors.len();
    if !valid_rule_name(name) {
        sink.rule_error(
            format!("{at}.name"),
            RuleProblem::InvalidName(name.to_owned()),
        );
    }
    let access = compile_access(&At::field(&at, "require"), &d.require, sink);
    if access == Some(Access::Public) {
        sink.warn(at, RuleProblem::PublicDefault);
    }
    let (rule_providers, claims) = compile_token_conditions(
        &at,
        access.as_ref(),
        d.providers.as_deref(),
        &d.claims,
        providers,
        sink,
    );
    if sink.errors.len() > start {
        return None;
    }
    Some(Rule {
        name: std::sync::Arc::from(name),
        path: PathMatch::Prefix(String::new()),
        methods: Vec::new(),
        hosts: Vec::new(),
        route_names: Vec::new(),
        access: access?,
        providers: rule_providers,
        claims,
        dry_run: d.dry_run.unwrap_or(false),
        sensitive: d.sensitive.unwrap_or(false),
    })
}

fn compile_token_conditions(
    at: &dyn fmt::Display,
    access: Option<&Access>,
    providers: Option<&[String]>,
    claims: &[ClaimConditionConfig],
    known: &BTreeSet<&str>,
    sink: &mut Sink<'_>,
) -> (Vec<String>, Vec<ClaimCondition>) {
    let public = access == Some(&Access::Public);
    let mut out_providers = Vec::new();
    if let Some(list) = providers {
        if public {
            sink.rule_error(
                format!("{at}.providers"),
                RuleProblem::NotForPublic("providers"),
            );
        }
        if list.is_empty() {
            sink.error(format!("{at}.providers"), Problem::Empty);
        }
        for (j, name) in list.iter().enumerate() {
            if !known.contains(name.as_str()) {
                sink.rule_error(
                    format!("{at}.providers[{j}]"),
                    RuleProblem::UnknownProvider(name.clone()),
                );
            } else if !out_providers.contains(name) {
                out_providers.push(name.clone());
            }
        }
    }
    if public && !claims.is_empty() {
        sink.rule_error(format!("{at}.claims"), RuleProblem::NotForPublic("claims"));
    }
    let mut out_claims = Vec::new();
    for (j, c) in claims.iter().enumerate() {
        let here = format!("{at}.claims[{j}]");
        let claim = match ClaimPath::from_json(&c.claim) {
            Ok(p) => Some(p),
            Err(e) => {
                sink.rule_error(format!("{here}.claim"), RuleProblem::InvalidClaimPath(e));
                None
            }
        };
        let test = match (&c.equals, &c.contains, &c.one_of) {
            (Some(v), None, None) => Some(ClaimTest::Equals(v.clone())),
            (None, Some(v), None) => Some(ClaimTest::Contains(v.clone())),
            (None, None, Some(vs)) if !vs.is_empty() => Some(ClaimTest::OneOf(vs.clone())),
            (None, None, Some(_)) => {
                sink.error(format!("{here}.one_of"), Problem::Empty);
                None
            }
            _ => {
                sink.rule_error(here.clone(), RuleProblem::ClaimTestKind);
                None
            }
        };
        let has_null = match &test {
            Some(ClaimTest::Equals(v) | ClaimTest::Contains(v)) => v.is_null(),
            Some(ClaimTest::OneOf(vs)) => vs.iter().any(Value::is_null),
            None => false,
        };
        if has_null {
            sink.rule_error(here, RuleProblem::InvalidClaimValue);
            continue;
        }
        if let (Some(claim), Some(test)) = (claim, test) {
            out_claims.push(ClaimCondition { claim, test });
        }
    }
    (out_providers, out_claims)
}

type Matcher = (PathMatch, Vec<String>, Vec<HostPattern>, Vec<String>);

fn compile_match(at: &dyn fmt::Display, m: &MatchConfig, sink: &mut Sink<'_>) -> Option<Matcher> {
    let start = sink.errors.len();
    let check = |p: &str, field: &str, sink: &mut Sink<'_>| -> Option<String> {
        match normalize(p) {
            Ok(n) if n == p || (field == "prefix" && n == p.trim_end_matches('/')) => Some(n),
            Ok(n) => {
                sink.error(
                    format!("{at}.{field}"),
                    Problem::InvalidPath(format!("{p:?} is not normalised (it means {n:?})")),
                );
                None
            }
            Err(e) => {
                sink.error(format!("{at}.{field}"), Problem::InvalidPath(e.to_string()));
                None
            }
        }
    };
    let path = match (&m.exact, &m.prefix, &m.template, &m.regex) {
        (Some(p), None, None, None) => check(p, "exact", sink).map(PathMatch::Exact),
        (None, Some(p), None, None) => {
            check(p, "prefix", sink).map(|n| PathMatch::Prefix(n.trim_end_matches('/').to_owned()))
        }
        (None, None, Some(t), None) => match Template::parse(t) {
            Ok(t) => Some(PathMatch::Template(t)),
            Err(e) => {
                sink.rule_error(
                    format!("{at}.template"),
                    RuleProblem::InvalidTemplate(e.to_string()),
                );
                None
            }
        },
        (None, None, None, Some(r)) => match PathRegex::parse(r) {
            Ok(r) => Some(PathMatch::Regex(r)),
            Err(e) => {
                sink.rule_error(format!("{at}.regex"), RuleProblem::InvalidRegex(e));
                None
            }
        },
        _ => {
            sink.error(at.to_string(), Problem::MatchKind);
            None
        }
    };
    let mut methods = Vec::new();
    if let Some(list) = &m.methods {
        if list.is_empty() {
            sink.error(format!("{at}.methods"), Problem::Empty);
        }
        for (j, meth) in list.iter().enumerate() {
            if meth.is_empty() || !meth.bytes().all(|b| b.is_ascii_uppercase()) {
                sink.error(
                    format!("{at}.methods[{j}]"),
                    Problem::InvalidMethod(meth.clone()),
                );
            } else if !methods.contains(meth) {
                methods.push(meth.clone());
            }
        }
    }
    let mut hosts = Vec::new();
    if let Some(list) = &m.hosts {
        if list.is_empty() {
            sink.error(format!("{at}.hosts"), Problem::Empty);
        }
        for (j, h) in list.iter().enumerate() {
            match HostPattern::parse(h) {
                Ok(p) if !hosts.contains(&p) => hosts.push(p),
                Ok(_) => {}
                Err(e) => sink.rule_error(format!("{at}.hosts[{j}]"), RuleProblem::InvalidHost(e)),
            }
        }
    }
    let mut route_names = Vec::new();
    if let Some(list) = &m.route_names {
        if list.is_empty() {
            sink.error(format!("{at}.route_names"), Problem::Empty);
        }
        for (j, n) in list.iter().enumerate() {
            if n.is_empty() || n.bytes().any(|b| b.is_ascii_control()) {
                sink.rule_error(
                    format!("{at}.route_names[{j}]"),
                    RuleProblem::InvalidRouteName(n.clone()),
                );
            } else if !route_names.contains(n) {
                route_names.push(n.clone());
            }
        }
    }
    if sink.errors.len() > start {
        return None;
    }
    Some((path?, methods, hosts, route_names))
}

fn compile_access(at: &dyn fmt::Display, v: &Value, sink: &mut Sink<'_>) -> Option<Access> {
    match v {
        Value::String(s) if s == "public" => Some(Access::Public),
        Value::String(s) if s == "authenticated" => Some(Access::Authenticated),
        Value::String(s) => {
            sink.error(
                at.to_string(),
                Problem::InvalidRequirement(format!(
                    "{s:?} is not \"public\" or \"authenticated\"; scopes go in {{\"all_of\": [...]}} or {{\"any_of\": [...]}}"
                )),
            );
            None
        }
        Value::Object(_) => compile_scope_expr(at, v, 0, sink).map(Access::Scopes),
        _ => {
            sink.error(
                at.to_string(),
                Problem::InvalidRequirement(
                    "expected \"public\", \"authenticated\", or an object with all_of / any_of"
                        .into(),
                ),
            );
            None
        }
    }
}

/// An RFC 6749 scope-token: printable ASCII without space, `"` or `\`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Checks one scope name; `grant`: it may carry a trailing `:*` wildcard.
/// Errors go to the sink; returns whether it is usable.
fn check_scope(at: &dyn fmt::Display, s: &str, grant: bool, sink: &mut Sink<'_>) -> bool {
    if !is_scope_token(s) {
        sink.error(
            at.to_string(),
            Problem::InvalidRequirement(format!(
                "{s:?} is not a valid scope (RFC 6749 scope-token: printable ASCII without space, '\"' or '\\')"
            )),
        );
        return false;
    }
    if !s.contains('*') {
        return true;
    }
    let why = if !grant {
        Some(format!(
            "{s:?}: '*' is a wildcard only in granted scopes (roles); a requirement or the super-admin scope names one exact scope"
        ))
    } else if s == "*" || s == ":*" || s.starts_with(":*") {
        Some(format!(
            "{s:?}: a wildcard needs a service prefix (\"svc-a:*\"); \"*\" alone would grant everything"
        ))
    } else if s
        .strip_suffix(":*")
        .is_none_or(|head| head.contains('*') || head.is_empty())
    {
        Some(format!(
            "{s:?}: '*' is only a whole trailing segment (\"svc-a:orders:*\")"
        ))
    } else {
        None
    };
    match why {
        Some(w) => {
            sink.rule_error(at.to_string(), RuleProblem::Wildcard(w));
            false
        }
        None => true,
    }
}

fn compile_scope_expr(at: &dyn fmt::Display, v: &Value, depth: usize, sink: &mut Sink<'_>) -> Option<ScopeExpr> {
    if depth > MAX_REQUIREMENT_DEPTH {
        sink.error(
            at.to_string(),
            Problem::InvalidRequirement(format!("nested deeper than {MAX_REQUIREMENT_DEPTH}")),
        );
        return None;
    }
    match v {
        Value::String(s) => check_scope(at, s, false, sink).then(|| ScopeExpr::Scope(s.clone())),
        Value::Object(obj) => {
            let mut entries = obj.iter();
            let (Some((key, items)), None) = (entries.next(), entries.next()) else {
                sink.error(
                    at.to_string(),
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
                    sink.error(
                        format!("{at}.{other}"),
                        Problem::InvalidRequirement(format!(
                            "unknown key {other:?}; expected all_of or any_of"
                        )),
                    );
                    return None;
                }
            };
            let Some(list) = items.as_array().filter(|l| !l.is_empty()) else {
                sink.error(
                    format!("{at}.{key}"),
                    Problem::InvalidRequirement("expected a non-empty array".into()),
                );
                return None;
            };
            let start = sink.errors.len();
            let children: Vec<ScopeExpr> = list
                .iter()
                .enumerate()
                .filter_map(|(j, item)| {
                    compile_scope_expr(&At::item(Some(at), key, j), item, depth + 1, sink)
                })
                .collect();
            (sink.errors.len() == start).then(|| make(children))
        }
        _ => {
            sink.error(
                at.to_string(),
                Problem::InvalidRequirement(
                    "expected a scope string or an all_of / any_of object".into(),
                ),
            );
            None
        }
    }
}

fn compile_grants(config: &Config, sink: &mut Sink<'_>) -> GrantConfig {
    let path = |field: &str, v: &Value, sink: &mut Sink<'_>| match ClaimPath::from_json(v) {
        Ok(p) => Some(p),
        Err(e) => {
            sink.rule_error(field.to_owned(), RuleProblem::InvalidClaimPath(e));
            None
        }
    };
    let scope_claim = config
        .scope_claim
        .as_ref()
        .and_then(|v| path("scope_claim", v, sink));
    let roles_claim = match &config.roles_claim {
        Some(v) => path("roles_claim", v, sink),
        None => Some(ClaimPath::single("roles")),
    };
    let mut roles = BTreeMap::new();
    for (name, scopes) in &config.roles {
        let at = format!("roles.{name}");
        if name.is_empty() || name.contains(' ') {
            sink.error(
                at.clone(),
                Problem::OutOfRange("a role name is non-empty and has no spaces".into()),
            );
        }
        if scopes.is_empty() {
            sink.error(at.clone(), Problem::Empty);
        }
        let mut ok = Vec::new();
        for (j, s) in scopes.iter().enumerate() {
            if check_scope(&format!("{at}[{j}]"), s, true, sink) && !ok.contains(s) {
                ok.push(s.clone());
            }
        }
        roles.insert(name.clone(), ok);
    }
    GrantConfig {
        scope_claim,
        roles_claim,
        roles,
    }
}

/// Convention: `service:resource[:action...]`, segments of lower-case
/// letters, digits, `-`, `_`, `.`; the first one `scope_prefix` if set.
pub fn convention_problem(scope: &str, prefix: Option<&str>) -> Option<String> {
    let body = scope.strip_suffix(":*").unwrap_or(scope);
    // (No vector of segments: this runs for every scope of every rule.)
    let segs = || body.split(':');
    if !body.contains(':') && !scope.ends_with(":*") {
        return Some(format!(
            "{scope:?} is not service-prefixed (expected service:resource[:action], e.g. \"svc-a:orders:read\")"
        ));
    }
    if segs().any(str::is_empty) {
        return Some(format!("{scope:?} has an empty segment"));
    }
    if let Some(bad) = segs().find(|s| {
        !s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    }) {
        return Some(format!(
            "{scope:?}: segment {bad:?} is not lower-case letters, digits, '-', '_' or '.'"
        ));
    }
    if let (Some(p), Some(first)) = (prefix, segs().next())
        && p != first
    {
        return Some(format!(
            "{scope:?} does not belong to this service (prefix {p:?})"
        ));
    }
    None
}

fn convention_warnings(config: &Config, sink: &mut Sink<'_>) {
    // Checked where found, in document order; the path is written out only
    // for a warning.
    fn check(at: &dyn fmt::Display, s: &str, prefix: Option<&str>, sink: &mut Sink<'_>) {
        if is_scope_token(s)
            && let Some(why) = convention_problem(s, prefix)
        {
            sink.warn(at.to_string(), RuleProblem::ScopeConvention(why));
        }
    }
    fn walk(at: &dyn fmt::Display, v: &Value, prefix: Option<&str>, sink: &mut Sink<'_>) {
        match v {
            Value::String(s) => check(at, s, prefix, sink),
            Value::Object(o) => {
                for (k, items) in o {
                    if let Some(list) = items.as_array() {
                        for (j, item) in list.iter().enumerate() {
                            walk(&At::item(Some(at), k, j), item, prefix, sink);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let prefix = config.scope_prefix.as_deref();
    for (i, r) in config.rules.iter().enumerate() {
        if r.require.is_object() {
            let rule = At::item(None, "rules", i);
            walk(&At::field(&rule, "require"), &r.require, prefix, sink);
        }
    }
    if let Some(d) = &config.default_rule
        && d.require.is_object()
    {
        walk(&"default_rule.require", &d.require, prefix, sink);
    }
    for (name, scopes) in &config.roles {
        for (j, s) in scopes.iter().enumerate() {
            check(&format!("roles.{name}[{j}]"), s, prefix, sink);
        }
    }
    if let Some(s) = &config.super_admin_scope {
        check(&"super_admin_scope", s, prefix, sink);
    }
}

// ------------------------------------------------------------------ shadowing

#[derive(Clone, Copy, PartialEq, Eq)]
enum Seg<'a> {
    Lit(&'a str),
    Any,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tail {
    End,
    OneOrMore,
    ZeroOrMore,
}

fn shape(p: &PathMatch) -> Option<(Vec<Seg<'_>>, Tail)> {
    fn lits(s: &str) -> Vec<Seg<'_>> {
        crate::routes::segments(s).map(Seg::Lit).collect()
    }
    match p {
        PathMatch::Exact(s) => Some((lits(s), Tail::End)),
        PathMatch::Prefix(s) => Some((lits(s), Tail::ZeroOrMore)),
        PathMatch::Template(t) => {
            let mut segs = Vec::new();
            for s in t.segments() {
                match s {
                    TemplateSegment::Literal(l) => segs.push(Seg::Lit(l)),
                    TemplateSegment::Param(_) => segs.push(Seg::Any),
                    TemplateSegment::Rest(_) => return Some((segs, Tail::OneOrMore)),
                }
            }
            Some((segs, Tail::End))
        }
        PathMatch::Regex(_) => None,
    }
}

/// Every path `b` matches, `a` matches too. Sound, not complete: `false`
/// when unsure.
pub(crate) fn path_covers(a: &PathMatch, b: &PathMatch) -> bool {
    if a.is_everything() {
        return true;
    }
    match (a, b) {
        (PathMatch::Regex(ra), PathMatch::Regex(rb)) => return ra == rb,
        (PathMatch::Regex(ra), PathMatch::Exact(e)) => return ra.matches(e),
        (PathMatch::Regex(_), _) | (_, PathMatch::Regex(_)) => return false,
        _ => {}
    }
    let (Some((sa, ta)), Some((sb, tb))) = (shape(a), shape(b)) else {
        return false;
    };
    let mut i = 0;
    loop {
        match (sa.get(i), sb.get(i)) {
            (Some(x), Some(y)) => {
                let ok = match (x, y) {
                    (Seg::Any, _) => true,
                    (Seg::Lit(p), Seg::Lit(q)) => p == q,
                    (Seg::Lit(_), Seg::Any) => false,
                };
                if !ok {
                    return false;
                }
            }
            // b goes on with at least one more segment.
            (None, Some(_)) => return ta != Tail::End,
            (None, None) => {
                return matches!(
                    (ta, tb),
                    (Tail::ZeroOrMore, _)
                        | (Tail::OneOrMore, Tail::OneOrMore)
                        | (Tail::End, Tail::End)
                );
            }
            (Some(_), None) => return false,
        }
        i += 1;
    }
}

/// `a` matches every host, route name and path `b` does (methods aside).
fn covers_besides_methods(a: &Rule, b: &Rule) -> bool {
    let hosts = a.hosts.is_empty()
        || (!b.hosts.is_empty()
            && b.hosts
                .iter()
                .all(|hb| a.hosts.iter().any(|ha| hb.covered_by(ha))));
    let routes = a.route_names.is_empty()
        || (!b.route_names.is_empty() && b.route_names.iter().all(|n| a.route_names.contains(n)));
    hosts && routes && path_covers(&a.path, &b.path)
}

/// The first path segment of `p` when it is a literal (`None` for regexes,
/// the root, a template starting with a parameter): a rule whose first
/// segment is the literal `x` can only cover rules whose first segment is `x`
/// too (see [`path_covers`]).
fn first_literal(p: &PathMatch) -> Option<&str> {
    match p {
        PathMatch::Exact(s) | PathMatch::Prefix(s) => crate::routes::segments(s).next(),
        PathMatch::Template(t) => match t.segments().first() {
            Some(TemplateSegment::Literal(l)) => Some(l.as_str()),
            _ => None,
        },
        PathMatch::Regex(_) => None,
    }
}

fn shadow_check(
    rules: &[Rule],
    origin: &[usize],
    default: Option<&Rule>,
    table: Option<&RouteTable>,
    sink: &mut Sink<'_>,
) {
    let cfg_index = |k: usize| origin.get(k).copied().unwrap_or(k);
    // Earlier rules that may cover a later one: those without a literal first
    // segment, and those with the later rule's first segment. Pairs pruned
    // here are pairs `path_covers` refuses; the check stays exact but near
    // linear in the number of rules (it was quadratic: 1000 rules cost ~0.9
    // billion wasm instructions at configure).
    // Regex rules cover only the same regex and the exact paths they match:
    // for an exact path, the earlier regex rules that match it come from the
    // route table (only the regexes filed along the path's literal walk run,
    // not one regex per pair).
    let mut wild: Vec<usize> = Vec::new();
    let mut regexes: Vec<usize> = Vec::new();
    let mut by_first: std::collections::HashMap<&str, Vec<usize>> =
        std::collections::HashMap::new();
    for (j, later) in rules.iter().enumerate() {
        let first = first_literal(&later.path);
        let same: &[usize] = first
            .and_then(|f| by_first.get(f))
            .map_or(&[], Vec::as_slice);
        let mut candidates: Vec<usize> = wild.iter().chain(same).copied().collect();
        match (&later.path, table) {
            (PathMatch::Regex(_), _) | (PathMatch::Exact(_), None) => {
                candidates.extend_from_slice(&regexes);
            }
            (PathMatch::Exact(e), Some(t)) if !regexes.is_empty() => {
                candidates.extend(t.regex_rules_matching(rules, e).into_iter().filter(|&i| i < j));
            }
            _ => {}
        }
        candidates.sort_unstable();
        let earlier: Vec<(usize, &Rule)> = candidates
            .into_iter()
            .filter_map(|i| rules.get(i).map(|a| (i, a)))
            .filter(|(_, a)| covers_besides_methods(a, later))
            .collect();
        match first {
            Some(f) => by_first.entry(f).or_default().push(j),
            None if matches!(later.path, PathMatch::Regex(_)) => regexes.push(j),
            None => wild.push(j),
        }
        if earlier.is_empty() {
            continue;
        }
        let at = format!("rules[{}]", cfg_index(j));
        if later.methods.is_empty() {
            if let Some((i, a)) = earlier.iter().find(|(_, a)| a.methods.is_empty()) {
                sink.rule_error(
                    at,
                    RuleProblem::Shadowed(vec![(cfg_index(*i), a.name.to_string())]),
                );
            }
            continue;
        }
        let mut by: Vec<(usize, String)> = Vec::new();
        let mut dead = Vec::new();
        for m in &later.methods {
            if let Some((i, a)) = earlier
                .iter()
                .find(|(_, a)| a.methods.is_empty() || a.methods.contains(m))
            {
                dead.push(m.clone());
                let r = (cfg_index(*i), a.name.to_string());
                if !by.contains(&r) {
                    by.push(r);
                }
            }
        }
        if dead.len() == later.methods.len() {
            sink.rule_error(at, RuleProblem::Shadowed(by));
        } else if !dead.is_empty() {
            sink.warn(at, RuleProblem::MethodsShadowed(dead, by));
        }
    }
    if default.is_some()
        && let Some((i, r)) = rules.iter().enumerate().find(|(_, r)| {
            r.path.is_everything()
                && r.methods.is_empty()
                && r.hosts.is_empty()
                && r.route_names.is_empty()
        })
    {
        sink.warn(
            "default_rule",
            RuleProblem::DefaultUnreachable(cfg_index(i), r.name.to_string()),
        );
    }
}

/// Scopes named anywhere in a requirement (for documentation and the CLI).
pub fn required_scopes(access: &Access) -> Vec<&str> {
    let mut out = Vec::new();
    if let Access::Scopes(e) = access {
        e.scopes(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh).
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn pm(kind: &str, v: &str) -> PathMatch {
        match kind {
            "exact" => PathMatch::Exact(v.into()),
            "prefix" => PathMatch::Prefix(v.trim_end_matches('/').into()),
            "template" => PathMatch::Template(Template::parse(v).unwrap()),
            _ => PathMatch::Regex(PathRegex::parse(v).unwrap()),
        }
    }

    #[test]
    fn path_coverage_is_sound_on_the_cases_that_matter() {
        let yes = [
            (("prefix", "/"), ("regex", "/x.*")),
            (("prefix", "/orders"), ("exact", "/orders")),
            (("prefix", "/orders"), ("prefix", "/orders/admin")),
            (("prefix", "/orders"), ("template", "/orders/{id}")),
            (("template", "/orders/{id}"), ("exact", "/orders/7")),
            (
                ("template", "/orders/{id}"),
                ("template", "/orders/{other}"),
            ),
            (("template", "/files/{*rest}"), ("prefix", "/files/a")),
            (
                ("template", "/files/{*rest}"),
                ("template", "/files/{a}/{*b}"),
            ),
            (("template", "/{a}/{b}"), ("template", "/x/{b}")),
            (("regex", "/orders/[0-9]+"), ("exact", "/orders/42")),
            (("regex", "/a|/b"), ("regex", "/a|/b")),
        ];
        for ((ka, a), (kb, b)) in yes {
            assert!(
                path_covers(&pm(ka, a), &pm(kb, b)),
                "{ka} {a} should cover {kb} {b}"
            );
        }
        let no = [
            (("prefix", "/orders"), ("exact", "/ordersx")),
            (("prefix", "/orders/admin"), ("prefix", "/orders")),
            (("exact", "/orders"), ("prefix", "/orders")),
            (("template", "/orders/{id}"), ("exact", "/orders")),
            (("template", "/orders/{id}"), ("exact", "/orders/7/lines")),
            (("template", "/orders/{id}"), ("prefix", "/orders")),
            (("template", "/files/{*rest}"), ("prefix", "/files")),
            (("template", "/files/{*rest}"), ("exact", "/files")),
            (
                ("template", "/orders/{id}"),
                ("template", "/orders/{*rest}"),
            ),
            (("template", "/x/{b}"), ("template", "/{a}/{b}")),
            (("regex", "/orders/[0-9]+"), ("exact", "/orders/x")),
            (("regex", "/.*"), ("prefix", "/orders")),
            (("prefix", "/orders"), ("regex", "/orders/.*")),
        ];
        for ((ka, a), (kb, b)) in no {
            assert!(
                !path_covers(&pm(ka, a), &pm(kb, b)),
                "{ka} {a} must not cover {kb} {b}"
            );
        }
    }

    #[test]
    fn conventions() {
        assert_eq!(convention_problem("svc-a:orders:read", Some("svc-a")), None);
        assert_eq!(convention_problem("svc-a:*", Some("svc-a")), None);
        assert!(convention_problem("admin", None).is_some());
        assert!(convention_problem("svc-a:Orders", None).is_some());
        assert!(convention_problem("svc-a::read", None).is_some());
        assert!(convention_problem("svc-b:orders:read", Some("svc-a")).is_some());
    }
}
