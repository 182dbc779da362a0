//! The route table: first match wins, found without trying every rule.
//!
//! Each rule is filed once, under the most selective thing it matches on:
//! - exact paths, prefixes and templates in a trie of path segments (a
//!   literal segment is a map key, a `{param}` a wildcard child, a prefix or
//!   `{*rest}` a list at the node where it starts);
//! - regexes in the same trie, under the literal segments every match
//!   starts with (`/v2/items/[0-9]+` under `v2/items`, `/[a-z]+/x` at the
//!   root), run only for paths that reach their node;
//! - rules on every path (`prefix: "/"`) under their Envoy route names, or
//!   else their exact host names, or else in a short list of rules that are
//!   candidates for every request.
//!
//! A lookup walks the trie along the request's segments (one map lookup per
//! segment and live node), runs the regexes filed along the path's literal
//! walk, and looks up the route name and host: that yields the candidates,
//! every one of which matches the path.
//! The candidates are tried in rule order on the remaining conditions
//! (method, host, route name), so the first that passes is the first rule
//! of the table that matches. The cost depends on the path's length and the
//! rules that share it, not on the number of rules.

use std::collections::BTreeMap;

use crate::routes::{PathMatch, TemplateSegment, segments};
use crate::rules::{RouteFacts, Rule};

/// Bound on the compiled size of all route regexes together (each charged
/// what [`crate::routes::PathRegex::charge`] says).
pub const REGEX_SET_SIZE_LIMIT: usize = 4 * 1024 * 1024;

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
    /// Regex rules whose matches all start with this node's literal
    /// segments: tried for paths at or below it.
    regex: Vec<u32>,
}

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    root: Node,
    /// Whether any rule is a regex (the literal walk is skipped otherwise).
    has_regex: bool,
    by_route_name: BTreeMap<String, Vec<u32>>,
    by_host: BTreeMap<String, Vec<u32>>,
    everywhere: Vec<u32>,
}

impl RouteTable {
    /// Files every rule. Fails only if the regexes together exceed the size bound.
    pub(crate) fn build(rules: &[Rule]) -> Result<RouteTable, String> {
        let mut t = RouteTable::default();
        let mut regex_bytes: usize = 0;
        for (i, rule) in rules.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| "too many rules".to_owned())?;
            match &rule.path {
                PathMatch::Regex(r) => {
                    regex_bytes = regex_bytes.saturating_add(r.charge());
                    node_at(&mut t.root, r.literal_segments().iter().map(String::as_str))
                        .regex
                        .push(i);
                    t.has_regex = true;
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
        if regex_bytes > REGEX_SET_SIZE_LIMIT {
            return Err(format!(
                "compiled regexes exceed the size limit of {REGEX_SET_SIZE_LIMIT} bytes together"
            ));
        }
        Ok(t)
    }

    /// Indices of the regex rules whose regex matches `path` (in rule
    /// order; `path` a normalised path).
    pub(crate) fn regex_rules_matching(&self, rules: &[Rule], path: &str) -> Vec<usize> {
        let segs: Vec<&str> = segments(path).collect();
        let mut out = Vec::new();
        self.matching_regexes(rules, path, &segs, &mut out);
        out.sort_unstable();
        out.into_iter().filter_map(|i| usize::try_from(i).ok()).collect()
    }

    /// Files the regex rules along the literal walk of `segs` (the root and
    /// each literal child in turn) whose regex matches `path`.
    fn matching_regexes(&self, rules: &[Rule], path: &str, segs: &[&str], out: &mut Vec<u32>) {
        if !self.has_regex {
            return;
        }
        let file = |list: &[u32], out: &mut Vec<u32>| {
            for &i in list {
                let hit = usize::try_from(i)
                    .ok()
                    .and_then(|k| rules.get(k))
                    .is_some_and(|r| r.path.matches(path));
                if hit {
                    out.push(i);
                }
            }
        };
        let mut node = &self.root;
        file(&node.regex, out);
        for seg in segs {
            let Some(child) = node.children.get(*seg) else {
                break;
            };
            node = child;
            file(&node.regex, out);
        }
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
        self.matching_regexes(rules, facts.path, segs, candidates);
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
        out.push("/café".as_bytes().to_vec());
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

    /// Each route regex (regex-lite) against the regex crate's
    /// `regex::bytes::Regex` with Unicode off (what scopegate ran before) on
    /// the same anchored patterns, over every ASCII path of the list (paths
    /// are normalised: percent-encoded unless unreserved ASCII); and the
    /// literal segments a regex is filed under are a prefix of the segments
    /// of every path it matches.
    #[test]
    fn route_regexes_match_what_the_regex_crate_matches_and_are_filed_soundly() {
        let mut patterns: Vec<&str> = PATTERNS.to_vec();
        patterns.extend([
            "/ab?/c", "/ab*/c", "/ab+/c", "/ab{2}/c", "/a/b+/c/d", "/x(/y)?", "/a|/b/c", "/ab/cd[0-9]/e",
            "(?i)/admin/x", "/a.b/c/.*", "/v2/items/\\d+", "/a/b/", "/a b/c", "/#/c", "/a{1}/b",
        ]);
        let mut matched = 0;
        for p in &patterns {
            let ours = PathRegex::parse(p).unwrap();
            let reference = regex::bytes::RegexBuilder::new(&PathRegex::anchored(p)).unicode(false).build().unwrap();
            let literal = ours.literal_segments();
            for path in paths() {
                let Ok(s) = std::str::from_utf8(&path) else { continue };
                if !s.is_ascii() {
                    continue;
                }
                let hit = ours.matches(s);
                assert_eq!(hit, reference.is_match(&path), "{p} on {s:?}");
                if hit {
                    matched += 1;
                    let segs: Vec<&str> = segments(s).collect();
                    assert!(
                        segs.len() >= literal.len() && segs.iter().zip(literal).all(|(a, b)| a == b),
                        "{p} matches {s:?}, which is not under {literal:?}"
                    );
                }
            }
        }
        assert!(matched > 500, "the cases match something: {matched}");
    }

    #[test]
    fn a_regex_is_filed_under_the_literal_segments_all_its_matches_start_with() {
        for (p, want) in [
            ("/v2/items/[0-9]+", &["v2", "items"][..]),
            ("/v2/items", &["v2"]),
            ("/v2/items/", &["v2", "items"]),
            ("/ab?/c", &[]),
            ("/a/b?/c", &["a"]),
            ("/a/bc*/d", &["a"]),
            ("/a/b{2}/c", &["a"]),
            ("/a/b+/c", &["a"]),
            ("/a|/b/c", &[]),
            ("/(a|b)/c", &[]),
            ("(?i)/admin/x", &[]),
            ("/a/(?i)b/c", &["a"]),
            ("/a.b/c", &[]),
            ("/a/b.c/d", &["a"]),
            ("/a/\\d+/b", &["a"]),
            ("/x[/]y/z", &[]),
            ("^/a/b/c$", &[]),
            ("//a//b/c", &["a", "b"]),
            ("/é/x", &["é"]),
        ] {
            assert_eq!(crate::routes::literal_segments(p), want, "{p}");
        }
    }

    /// Outside ASCII the engine works on characters: `.` and `[^/]` take one
    /// character, the classes stay ASCII, `\xE9` is the character é.
    #[test]
    fn route_regexes_read_characters_with_ascii_classes() {
        let m = |p: &str, s: &str| PathRegex::parse(p).unwrap().matches(s);
        assert!(m("/caf.", "/café") && m("/caf[^/]", "/café") && m("/caf\\xE9", "/café"));
        assert!(!m("/caf\\w", "/café") && !m("/caf\\W{2}", "/café"));
        assert!(m("/x/.{2}", "/x/éé") && !m("/x/.{4}", "/x/éé"));
        assert!(m("(?i)/admin", "/ADMIN") && !m("(?i)/admin", "/ADMİN"));
        // Unicode classes are not supported: a config error, not a surprise.
        assert!(PathRegex::parse("/\\p{L}+").is_err());
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
