//! The route table: first match wins, found without trying every rule.
//!
//! Each rule is filed once, under the most selective thing it matches on:
//! - exact paths, prefixes and templates in a trie of path segments (a
//!   literal segment is a map key, a `{param}` a wildcard child, a prefix or
//!   `{*rest}` a list at the node where it starts);
//! - regexes in one regex set (a lazy DFA over all of them), run once per
//!   request;
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

use std::sync::Mutex;

use regex_automata::hybrid::dfa::{self as lazy, DFA};
use regex_automata::nfa::thompson::{self, pikevm::PikeVM};
use regex_automata::{Input, MatchKind, PatternSet};

use crate::routes::{PathMatch, TemplateSegment, nfa_config, segments};
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

/// Every route regex (anchored) in one automaton, as `regex::bytes::RegexSet`
/// runs them (regex-automata's meta regex with match kind `All`): a lazy DFA,
/// and the PikeVM on the same NFA when the DFA gives up (its cache cleared
/// too often) or could not be built.
#[derive(Debug)]
struct RegexIndex {
    dfa: Option<DFA>,
    vm: PikeVM,
    /// The lazy DFA's states and the PikeVM's scratch, kept between
    /// requests (bounded by [`REGEX_SET_DFA_SIZE_LIMIT`]).
    caches: Mutex<Caches>,
    /// The rule of each pattern.
    rules: Vec<u32>,
}

#[derive(Debug)]
struct Caches {
    dfa: Option<lazy::Cache>,
    vm: regex_automata::nfa::thompson::pikevm::Cache,
}

impl RegexIndex {
    fn new(patterns: &[&regex_syntax::hir::Hir], rules: Vec<u32>) -> Result<RegexIndex, String> {
        RegexIndex::with_dfa_cache(patterns, rules, REGEX_SET_DFA_SIZE_LIMIT)
    }

    fn with_dfa_cache(
        patterns: &[&regex_syntax::hir::Hir],
        rules: Vec<u32>,
        dfa_cache_bytes: usize,
    ) -> Result<RegexIndex, String> {
        let nfa = thompson::Compiler::new()
            .configure(nfa_config(REGEX_SET_SIZE_LIMIT))
            .build_many_from_hir(patterns)
            // As `regex::Error` prints them.
            .map_err(|e| match e.size_limit() {
                Some(n) => format!("Compiled regex exceeds size limit of {n} bytes."),
                None => e.to_string().replace('\n', " "),
            })?;
        // The lazy DFA as the meta regex configures it; it fails to build
        // only when its cache bound cannot hold a few states: then the
        // PikeVM serves every lookup.
        let dfa = lazy::Builder::new()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(dfa_cache_bytes)
                    .skip_cache_capacity_check(false)
                    .minimum_cache_clear_count(Some(3))
                    .minimum_bytes_per_state(Some(10)),
            )
            .build_from_nfa(nfa.clone())
            .ok();
        let vm = PikeVM::builder()
            .configure(PikeVM::config().match_kind(MatchKind::All))
            .build_from_nfa(nfa)
            .map_err(|e| e.to_string().replace('\n', " "))?;
        let caches = Mutex::new(Caches {
            dfa: dfa.as_ref().map(DFA::create_cache),
            vm: vm.create_cache(),
        });
        Ok(RegexIndex {
            dfa,
            vm,
            caches,
            rules,
        })
    }

    /// Calls `f` with the index (in the set) of every regex matching `path`,
    /// in order: what `regex::bytes::RegexSet::matches` yields.
    fn for_each_match(&self, path: &str, mut f: impl FnMut(usize)) {
        let input = Input::new(path.as_bytes());
        let mut found = PatternSet::new(self.vm.get_nfa().pattern_len());
        // A VM is one thread; a lookup never waits (a busy or poisoned
        // lock, which cannot happen there, gets fresh caches).
        let mut fresh;
        let mut guard = self.caches.try_lock().ok();
        let caches = match guard.as_deref_mut() {
            Some(c) => c,
            None => {
                fresh = Caches {
                    dfa: self.dfa.as_ref().map(DFA::create_cache),
                    vm: self.vm.create_cache(),
                };
                &mut fresh
            }
        };
        let fast = match (&self.dfa, caches.dfa.as_mut()) {
            (Some(dfa), Some(cache)) => dfa.try_which_overlapping_matches(cache, &input, &mut found).is_ok(),
            _ => false,
        };
        if !fast {
            found.clear();
            self.vm.which_overlapping_matches(&mut caches.vm, &input, &mut found);
        }
        for pid in found.iter() {
            f(pid.as_usize());
        }
    }
}

impl Clone for RegexIndex {
    /// The same automata (shared), fresh caches.
    fn clone(&self) -> RegexIndex {
        RegexIndex {
            dfa: self.dfa.clone(),
            vm: self.vm.clone(),
            caches: Mutex::new(Caches {
                dfa: self.dfa.as_ref().map(DFA::create_cache),
                vm: self.vm.create_cache(),
            }),
            rules: self.rules.clone(),
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
        let mut regex_rules: Vec<u32> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| "too many rules".to_owned())?;
            match &rule.path {
                PathMatch::Regex(r) => {
                    patterns.push(r.hir());
                    regex_rules.push(i);
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
        if !patterns.is_empty() {
            t.regex = Some(RegexIndex::new(&patterns, regex_rules)?);
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
        // `routes::segments`, split once: up to 16 in place, longer paths
        // in a vector.
        let mut inline = [""; 16];
        let mut n = 0;
        let mut spilled: Vec<&str> = Vec::new();
        for seg in facts.path.split('/').filter(|s| !s.is_empty()) {
            match inline.get_mut(n) {
                Some(slot) if spilled.is_empty() => {
                    *slot = seg;
                    n += 1;
                }
                _ => {
                    if spilled.is_empty() {
                        spilled.extend_from_slice(inline.get(..n).unwrap_or(&[]));
                    }
                    spilled.push(seg);
                }
            }
        }
        let segs = if spilled.is_empty() { inline.get(..n).unwrap_or(&[]) } else { spilled.as_slice() };
        self.root.visit(segs, candidates);
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
    fn visit(&self, segs: &[&str], out: &mut Vec<u32>) {
        let Some((seg, rest)) = segs.split_first() else {
            out.extend_from_slice(&self.exact);
            return;
        };
        out.extend_from_slice(&self.rest);
        if let Some(child) = self.children.get(*seg) {
            out.extend_from_slice(&child.prefix);
            child.visit(rest, out);
        }
        if let Some(p) = &self.param {
            out.extend_from_slice(&p.prefix);
            p.visit(rest, out);
        }
    }
}

fn node_at<'a, 'b>(mut node: &'a mut Node, segs: impl Iterator<Item = &'b str>) -> &'a mut Node {
    for s in segs {
        node = node.children.entry(s.to_owned()).or_default();
    }
    node
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::routes::PathRegex;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh).
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const PATTERNS: [&str; 16] = [
        "/v2/items/[0-9]+",
        "/v2/items/\\d+(/.*)?",
        "/(orders|carts)/[^/]+",
        "/[a-z]+/[a-z]+",
        "/a*",
        "(/.*)?",
        "/x/.+/y",
        "(?i)/ADMIN(/.*)?",
        "/w\\w{2,3}",
        "/\\bb[a-c]*\\b",
        "/caf\\xE9",
        "/(a|ab)(c|bcd)",
        "/[^a]",
        "/.",
        "/v[0-9]{1,2}/(?:x|y)+/z?",
        "/a/b",
    ];

    fn paths() -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = [
            "/", "", "/v2/items/42", "/v2/items/42/x", "/v2/items/", "/orders/1", "/carts/x/y",
            "/admin", "/Admin/x", "/wab", "/wabcd", "/bbc", "/caf", "/abcd", "/acd", "/x/1/y",
            "/x//y", "/v12/xyx/z", "/v123/x", "/a/b", "/aaaa", "/b",
        ]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
        out.push(b"/caf\xE9".to_vec());
        out.push(b"/\xFF".to_vec());
        // Every path of up to three pieces from a small alphabet.
        let pieces = ["/", "a", "b", "v2", "items", "1", "x", "y", "ADMIN", "c"];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    out.push(format!("/{a}{b}{c}").into_bytes());
                    out.push(format!("{a}/{b}/{c}").into_bytes());
                }
            }
        }
        out
    }

    /// The regex set against `regex::bytes::RegexSet` (what scopegate ran
    /// before: the regex crate's meta regex, Unicode off) on the same
    /// anchored patterns, with a lazy DFA of ample, tiny and no cache (the
    /// PikeVM fallback).
    #[test]
    fn the_regex_set_finds_what_the_regex_crates_set_finds() {
        let parsed: Vec<PathRegex> = PATTERNS.iter().map(|p| PathRegex::parse(p).unwrap()).collect();
        let hirs: Vec<&regex_syntax::hir::Hir> = parsed.iter().map(PathRegex::hir).collect();
        let reference = regex::bytes::RegexSetBuilder::new(PATTERNS.iter().map(|p| PathRegex::anchored(p)))
            .unicode(false)
            .build()
            .unwrap();
        let singles: Vec<regex::bytes::Regex> = PATTERNS
            .iter()
            .map(|p| regex::bytes::RegexBuilder::new(&PathRegex::anchored(p)).unicode(false).build().unwrap())
            .collect();
        let rules: Vec<u32> = (0..u32::try_from(PATTERNS.len()).unwrap()).collect();
        let indexes = [
            RegexIndex::new(&hirs, rules.clone()).unwrap(),
            RegexIndex::with_dfa_cache(&hirs, rules.clone(), 0).unwrap(),
        ];
        assert!(indexes[0].dfa.is_some() && indexes[1].dfa.is_none());
        let mut matched = 0;
        for path in paths() {
            let want: Vec<usize> = reference.matches(&path).into_iter().collect();
            matched += want.len();
            // Paths here are str (normalised); the byte paths go through the
            // automata directly.
            for idx in &indexes {
                let mut got = Vec::new();
                let input = Input::new(&path);
                let mut found = PatternSet::new(idx.vm.get_nfa().pattern_len());
                let mut caches = idx.caches.lock().unwrap();
                let fast = match (&idx.dfa, caches.dfa.as_mut()) {
                    (Some(dfa), Some(cache)) => dfa.try_which_overlapping_matches(cache, &input, &mut found).is_ok(),
                    _ => false,
                };
                if !fast {
                    found.clear();
                    idx.vm.which_overlapping_matches(&mut caches.vm, &input, &mut found);
                }
                got.extend(found.iter().map(|p| p.as_usize()));
                assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&path));
                if let Ok(s) = std::str::from_utf8(&path) {
                    drop(caches);
                    let mut via = Vec::new();
                    idx.for_each_match(s, |k| via.push(k));
                    assert_eq!(via, want, "{s:?}");
                }
            }
            if let Ok(s) = std::str::from_utf8(&path) {
                for (r, single) in parsed.iter().zip(&singles) {
                    assert_eq!(r.matches(s), single.is_match(&path), "{} on {s:?}", r.as_str());
                }
            }
        }
        assert!(matched > 500, "the cases match something: {matched}");
    }

    /// Paths longer than the 16 segments split in place take the vector:
    /// the same rules match either way, as the linear reference says.
    #[test]
    fn deep_paths_find_the_same_rule_as_the_linear_reference() {
        let seg = |n: usize| (0..n).map(|i| format!("/s{i}")).collect::<String>();
        let config = serde_json::json!({
            "providers": [],
            "rules": [
                {"name": "exact-17", "match": {"exact": seg(17)}, "require": "public"},
                {"name": "exact-16", "match": {"exact": seg(16)}, "require": "public"},
                {"name": "tpl-20", "match": {"template": format!("{}/{{id}}/s19", seg(18))}, "require": "public"},
                {"name": "prefix-15", "match": {"prefix": seg(15)}, "require": "public"},
                {"name": "rest", "match": {"template": "/s0/{*rest}"}, "require": "public"},
            ],
        });
        let p = crate::compile_json(config.to_string().as_bytes()).unwrap();
        let want = [
            (15, "prefix-15"),
            (16, "exact-16"),
            (17, "exact-17"),
            (18, "prefix-15"),
            (20, "tpl-20"),
            (40, "prefix-15"),
            (14, "rest"),
            (2, "rest"),
        ];
        for (n, rule) in want {
            let path = seg(n);
            let facts = RouteFacts { method: "GET", path: &path, host: None, route_name: None };
            let table = p.authz().find(&facts).map(|r| r.name().to_owned());
            let linear = p.authz().find_linear(&facts).map(|r| r.name().to_owned());
            assert_eq!(table, linear, "{path}");
            assert_eq!(table.as_deref(), Some(rule), "{path}");
        }
    }
}
