//! The JSON path of a config parse error (`parse_json`, which recovers it
//! from serde_json's error position: src/json_path.rs) against
//! serde_path_to_error's, which tracks it while decoding (what scopegate
//! used before): the same path and the same message for every error, over
//! hand-picked cases and thousands of mutations of real configs (bytes
//! deleted, inserted and replaced, values of the wrong type, duplicate and
//! unknown members, truncations, deep nesting), compact and pretty-printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
// (filter/scripts/test-core-wasm.sh).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use scopegate_core::config::Config;
use scopegate_core::parse_json;

const CONFIGS: [&[u8]; 7] = [
    include_bytes!("../../../examples/configs/svc-a.json"),
    include_bytes!("../../../examples/mesh/svc-a.json"),
    include_bytes!("../../../examples/mesh/svc-b.json"),
    include_bytes!("../../fuzz/corpus/config_json/api-keys.json"),
    include_bytes!("../../fuzz/corpus/config_json/hosts-regex.json"),
    include_bytes!("../../fuzz/corpus/config_json/public-only.json"),
    include_bytes!("../../fuzz/corpus/config_json/svc-a.json"),
];

/// What serde_path_to_error says of `bytes`: `None` if it decodes, else the
/// path and message as compile_json printed them before.
fn reference(bytes: &[u8]) -> Option<(String, String)> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, Config>(&mut de) {
        Err(e) => {
            // As compile_json printed it: `.` for an empty path.
            let path = e.path().to_string();
            let path = if path.is_empty() {
                ".".to_owned()
            } else {
                path
            };
            Some((path, e.into_inner().to_string()))
        }
        Ok(_) => de.end().err().map(|e| (".".to_owned(), e.to_string())),
    }
}

/// What `parse_json` says, in the same form (`None`: it decodes).
fn ours(bytes: &[u8]) -> Option<(String, String)> {
    match parse_json(bytes) {
        Ok(_) => None,
        Err(errs) => {
            assert_eq!(errs.len(), 1, "one JSON error at a time: {errs:?}");
            let e = &errs[0];
            Some((e.path.clone(), e.problem.to_string()))
        }
    }
}

/// Inputs that parse_json refuses before decoding (empty, not an object).
fn decoded_at_all(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The config's enum-valued members (`"bypass"`, `"enforce"`, ...).
const ENUM_MEMBERS: [&str; 3] = ["cors_preflight", "on_stale", "tokens"];

fn same(bytes: &[u8]) -> bool {
    if !decoded_at_all(bytes) {
        return true;
    }
    let (r, mut o) = (reference(bytes), ours(bytes));
    // The one difference, by design: an enum member written as an object
    // without a readable member name (`"cors_preflight": {}` or `{,`) is
    // at `cors_preflight.?` for us, at `cors_preflight` for
    // serde_path_to_error (serde_json reads an enum's object apart from
    // other objects; the JSON alone does not say which member is an enum).
    if let (Some((rp, rm)), Some((op, om))) = (&r, &mut o)
        && rm == om
        && op.strip_suffix(".?") == Some(rp.as_str())
        && ENUM_MEMBERS.iter().any(|m| rp.ends_with(m))
    {
        *op = rp.clone();
    }
    assert_eq!(o, r, "input: {}", String::from_utf8_lossy(bytes));
    r.is_some()
}

#[test]
fn hand_picked_errors_have_the_paths_operators_read() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"rules":[{"name":"r","match":{"prefx":"/a"},"require":"public"}]}"#,
            "rules[0].match.prefx",
        ),
        (r#"{"providers":[{"name":"p"}]}"#, "providers[0]"),
        (
            r#"{"providers":[{"name":"p","issuer":5}]}"#,
            "providers[0].issuer",
        ),
        (r#"{"rules":[{"name":"r","name":"s"}]}"#, "rules[0]"),
        (r#"{"rules":[1,]}"#, "rules[0]"),
        (r#"{"roles":{"a":["x",]}}"#, "roles.a"),
        (r#"{"roles":{"a":["x" "y"]}}"#, "roles.a"),
        (r#"{"rules":[{"name":"r",}]}"#, "rules[0].?"),
        (r#"{"rules":[{"name":"r" "x":1}]}"#, "rules[0].?"),
        (r#"{"rules":[{"name" "r"}]}"#, "rules[0]"),
        (r#"{"rules":[x]}"#, "rules[0]"),
        (r#"{"roles":{"a":["x"], {]}}"#, "roles.?"),
        (r#"{"roles":{"a":["x"],"b":[1]}}"#, "roles.b[0]"),
        (r#"{"rules":["#, "rules"),
        (
            r#"{"rules":[{"name":"r","match":{"prefix":"/a\q"}}]}"#,
            "rules[0].match.prefix",
        ),
        (r#"{"clock_skew_seconds": 1.5e}"#, "clock_skew_seconds"),
        (r#"{"clock_skew_seconds": 01}"#, "clock_skew_seconds"),
        (r#"{"clock_skew_seconds": tru}"#, "clock_skew_seconds"),
        (r#"{"realm": {}}"#, "realm"),
        (r#"{"pre\u0066x": 1}"#, "prefx"),
        (
            "{\n  \"rules\": [\n    {\"name\": \"r\",\n     \"match\": {\"prefix\": 7}}]}",
            "rules[0].match.prefix",
        ),
        (r#"{"realm":"x",}"#, "?"),
        (r#"{"realm":"x"} x"#, "."),
    ];
    for (input, want) in cases {
        assert_eq!(
            ours(input.as_bytes()).map(|(p, _)| p).as_deref(),
            Some(*want),
            "input: {input}"
        );
        same(input.as_bytes());
    }
}

#[test]
fn nesting_past_the_recursion_limit_has_the_same_path() {
    for depth in [126, 127, 128, 129, 200] {
        let mut s = String::from(r#"{"rules":[{"name":"r","match":{"prefix":"/"},"require":"#);
        s.push_str(&"[".repeat(depth));
        s.push_str(&"]".repeat(depth));
        s.push_str("}]}");
        same(s.as_bytes());
        let mut s = String::from(r#"{"rules":[{"name":"r","require":"#);
        s.push_str(&r#"{"all_of":"#.repeat(depth));
        same(s.as_bytes());
    }
}

/// A deterministic generator (xorshift64*): the same cases natively and in wasm.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
}

const SNIPPETS: [&str; 24] = [
    ",",
    "}",
    "]",
    "{",
    "[",
    "\"",
    ":",
    "x",
    "1",
    " ",
    "\n",
    "\\",
    "-",
    ".",
    "e",
    "null",
    r#""name":"x","#,
    r#""typo":1,"#,
    "[]",
    "{}",
    "1.5e",
    "01",
    "tru",
    ",,",
];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 if !b.is_empty() => {
                b.remove(at.min(b.len() - 1));
            }
            1 => {
                let s = SNIPPETS[rng.below(SNIPPETS.len())];
                b.splice(at..at, s.bytes());
            }
            2 if !b.is_empty() => {
                let s = SNIPPETS[rng.below(SNIPPETS.len())];
                let end = (at + 1 + rng.below(8)).min(b.len());
                b.splice(at.min(end)..end, s.bytes());
            }
            3 => b.truncate(at),
            // A value of another type: replace what follows a ':' up to the
            // next ',' or '}'.
            4 => {
                if let Some(c) = b
                    .iter()
                    .skip(at)
                    .position(|&c| c == b':')
                    .map(|p| p + at + 1)
                {
                    let end = b
                        .iter()
                        .skip(c)
                        .position(|&c| c == b',' || c == b'}')
                        .map_or(b.len(), |p| p + c);
                    let v =
                        ["7", "\"s\"", "[1]", "{\"k\":1}", "true", "null", "-0.5"][rng.below(7)];
                    b.splice(c..end, v.bytes());
                }
            }
            // A member name changed (unknown field) or doubled (duplicate).
            _ => {
                if let Some(q) = b
                    .iter()
                    .skip(at)
                    .position(|&c| c == b'"')
                    .map(|p| p + at + 1)
                {
                    b.insert(q.min(b.len()), b"zq"[rng.below(2)]);
                }
            }
        }
    }
    b
}

#[test]
fn mutated_configs_have_serde_path_to_errors_paths() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut bases: Vec<Vec<u8>> = Vec::new();
    for c in CONFIGS {
        let v: serde_json::Value = serde_json::from_slice(c).unwrap();
        bases.push(serde_json::to_vec(&v).unwrap());
        bases.push(serde_json::to_vec_pretty(&v).unwrap());
    }
    let pretty_default =
        serde_json::to_vec_pretty(&common::config(common::default_rules())).unwrap();
    bases.push(pretty_default);
    let mut errors = 0;
    let per_base = 600;
    for base in &bases {
        assert!(!same(base), "the base config decodes");
        for _ in 0..per_base {
            if same(&mutate(&mut rng, base)) {
                errors += 1;
            }
        }
    }
    // Most mutations break the config: the comparison is over errors.
    assert!(errors > bases.len() * per_base / 2, "{errors} errors");
}
