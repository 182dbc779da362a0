//! The route table: first match wins, found without trying every rule.
//!
//! Each rule is filed once, under the most selective thing it matches on:
//! - exact paths, prefixes and templates in a trie of path segments (a
//!   literal segment is a map key, a `{param}` a wildcard child, a prefix or
//!   `{*rest}` a list at the node where it starts);
//! - regexes in one [`regex::bytes::RegexSet`], run once per request;
//! - rules on every path (`prefix: "/"`) under their Envoy route names, or
//!   else their exact host names, or else in a short list of rules that are
//!   candidates for every request.
//!
//! A lookup walks the trie along the request's segments (one map lookup per
//! segment and live node), runs the regex set, and looks up the route name
//! and host: that yields the candidates, every one of which matches the path.
//! The candidates are tried in rule order on the remaining conditions
//! (method, host, route name), so the first that passes is the first rule
//! of the table that matches. The cost depends on the path's length and the
//! rules that share it, not on the number of rules.

use std::collections::BTreeMap;

use crate::routes::{PathMatch, TemplateSegment, regex_syntax_config, segments};
use crate::rules::{RouteFacts, Rule};

/// Bound on the compiled size of all route regexes together.
pub const REGEX_SET_SIZE_LIMIT: usize = 4 * 1024 * 1024;
/// Bound on the lazy-DFA cache of the regex set.
pub const REGEX_SET_DFA_SIZE_LIMIT: usize = 2 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
struct Node {
    children: BTreeMap<String, Node>,
    param: Option<Box<Node>>,
    /// Rules whose path ends exactly here (exact paths, templates).
    exact: Vec<u32>,
    /// Prefix rules: this node and everything below.
    prefix: Vec<u32>,
    /// `{*rest}` templates: one or more segments below this node.
    rest: Vec<u32>,
}

#[derive(Debug, Clone)]
struct RegexIndex {
    /// Every route regex (anchored), as `regex::bytes::RegexSet` builds them
    /// (match kind `All`, no captures), from the rules' parsed patterns.
    set: regex_automata::meta::Regex,
    rules: Vec<u32>,
}

impl RegexIndex {
    /// Calls `f` with the index (in the set) of every regex matching `path`,
    /// in order: what `regex::bytes::RegexSet::matches` yields.
    fn for_each_match(&self, path: &str, mut f: impl FnMut(usize)) {
        let mut found = regex_automata::PatternSet::new(self.set.pattern_len());
        self.set
            .which_overlapping_matches(&regex_automata::Input::new(path.as_bytes()), &mut found);
        for pid in found.iter() {
            f(pid.as_usize());
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    root: Node,
    regex: Option<RegexIndex>,
    by_route_name: BTreeMap<String, Vec<u32>>,
    by_host: BTreeMap<String, Vec<u32>>,
    everywhere: Vec<u32>,
}

impl RouteTable {
    /// Files every rule. Fails only if the regexes together exceed the size bound.
    pub(crate) fn build(rules: &[Rule]) -> Result<RouteTable, String> {
        let mut t = RouteTable::default();
        let mut patterns: Vec<&regex_syntax::hir::Hir> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| "too many rules".to_owned())?;
            match &rule.path {
                PathMatch::Regex(r) => {
                    patterns.push(r.hir());
                    if let Some(idx) = &mut t.regex {
                        idx.rules.push(i);
                    } else {
                        t.regex = Some(RegexIndex {
                            set: regex_automata::meta::Regex::new_many::<&str>(&[])
                                .map_err(|e| e.to_string())?,
                            rules: vec![i],
                        });
                    }
                }
                p if p.is_everything() => {
                    let exact_hosts: Option<Vec<&str>> =
                        rule.hosts.iter().map(|h| h.exact_name()).collect();
                    if !rule.route_names.is_empty() {
                        for n in &rule.route_names {
                            t.by_route_name.entry(n.clone()).or_default().push(i);
                        }
                    } else if let Some(hosts) = exact_hosts.filter(|h| !h.is_empty()) {
                        for h in hosts {
                            let list = t.by_host.entry(h.to_owned()).or_default();
                            if !list.contains(&i) {
                                list.push(i);
                            }
                        }
                    } else {
                        t.everywhere.push(i);
                    }
                }
                PathMatch::Exact(p) => node_at(&mut t.root, segments(p)).exact.push(i),
                PathMatch::Prefix(p) => node_at(&mut t.root, segments(p)).prefix.push(i),
                PathMatch::Template(tpl) => {
                    let mut node = &mut t.root;
                    let mut rest = false;
                    for seg in tpl.segments() {
                        node = match seg {
                            TemplateSegment::Literal(l) => {
                                node.children.entry(l.clone()).or_default()
                            }
                            TemplateSegment::Param(_) => {
                                node.param.get_or_insert_with(Box::default)
                            }
                            TemplateSegment::Rest(_) => {
                                rest = true;
                                break;
                            }
                        };
                    }
                    if rest {
                        node.rest.push(i);
                    } else {
                        node.exact.push(i);
                    }
                }
            }
        }
        if let Some(idx) = &mut t.regex {
            idx.set = regex_automata::meta::Builder::new()
                .configure(
                    regex_automata::meta::Config::new()
                        .match_kind(regex_automata::MatchKind::All)
                        .utf8_empty(false)
                        .which_captures(regex_automata::nfa::thompson::WhichCaptures::None)
                        .nfa_size_limit(Some(REGEX_SET_SIZE_LIMIT))
                        .hybrid_cache_capacity(REGEX_SET_DFA_SIZE_LIMIT),
                )
                .syntax(regex_syntax_config())
                .build_many_from_hir(&patterns)
                // As `regex::Error` prints them.
                .map_err(|e| match e.size_limit() {
                    Some(n) => format!("Compiled regex exceeds size limit of {n} bytes."),
                    None => match e.syntax_error() {
                        Some(syntax) => syntax.to_string(),
                        None => e.to_string(),
                    }
                    .replace('\n', " "),
                })?;
        }
        Ok(t)
    }

    /// Indices of the regex rules whose regex matches `path` (in rule
    /// order): one run of the regex set.
    pub(crate) fn regex_rules_matching(&self, path: &str) -> Vec<usize> {
        let Some(idx) = &self.regex else {
            return Vec::new();
        };
        let mut out = Vec::new();
        idx.for_each_match(path, |k| {
            out.extend(idx.rules.get(k).and_then(|&i| usize::try_from(i).ok()));
        });
        out
    }

    /// Index of the first rule matching `facts`.
    pub(crate) fn lookup(&self, rules: &[Rule], facts: &RouteFacts<'_>) -> Option<usize> {
        // The candidates go in a buffer kept between requests (a VM is one
        // thread): a lookup allocates nothing once it has grown.
        thread_local! {
            static CANDIDATES: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        CANDIDATES.with(|buf| match buf.try_borrow_mut() {
            Ok(mut c) => self.lookup_in(&mut c, rules, facts),
            Err(_) => self.lookup_in(&mut Vec::new(), rules, facts),
        })
    }

    fn lookup_in(&self, candidates: &mut Vec<u32>, rules: &[Rule], facts: &RouteFacts<'_>) -> Option<usize> {
        candidates.clear();
        candidates.extend_from_slice(&self.everywhere);
        if let Some(list) = facts.route_name.and_then(|n| self.by_route_name.get(n)) {
            candidates.extend_from_slice(list);
        }
        if let Some(list) = facts.host.and_then(|(h, _)| self.by_host.get(h)) {
            candidates.extend_from_slice(list);
        }
        if let Some(idx) = &self.regex {
            idx.for_each_match(facts.path, |k| candidates.extend(idx.rules.get(k)));
        }
        candidates.extend_from_slice(&self.root.prefix);
        // `routes::segments`, cloneable.
        self.root.visit(facts.path.split('/').filter(|s| !s.is_empty()), candidates);
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .iter()
            .filter_map(|i| usize::try_from(*i).ok())
            .find(|&i| rules.get(i).is_some_and(|r| r.matches_besides_path(facts)))
    }
}

impl Node {
    /// Files the rules of this node and below that match the remaining
    /// segments `segs`. Recurses only into existing child and parameter
    /// nodes: the depth is bounded by the deepest configured route, not by
    /// the request's path.
    fn visit<'p>(&self, mut segs: impl Iterator<Item = &'p str> + Clone, out: &mut Vec<u32>) {
        let Some(seg) = segs.next() else {
            out.extend_from_slice(&self.exact);
            return;
        };
        out.extend_from_slice(&self.rest);
        if let Some(child) = self.children.get(seg) {
            out.extend_from_slice(&child.prefix);
            child.visit(segs.clone(), out);
        }
        if let Some(p) = &self.param {
            out.extend_from_slice(&p.prefix);
            p.visit(segs, out);
        }
    }
}

fn node_at<'a, 'b>(mut node: &'a mut Node, segs: impl Iterator<Item = &'b str>) -> &'a mut Node {
    for s in segs {
        node = node.children.entry(s.to_owned()).or_default();
    }
    node
}
