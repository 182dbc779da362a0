//! `filter/config.schema.json` is the JSON Schema `scopegate schema` generates
//! from the filter's config types, and every example config validates against it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

const REGENERATE: &str = "cargo run -q -p scopegate-cli -- schema > filter/config.schema.json";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn generated() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "scopegate schema failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn checked_in() -> String {
    let p = repo().join("filter/config.schema.json");
    std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; generate it with `{REGENERATE}`",
            p.display()
        )
    })
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&checked_in()).unwrap();
    jsonschema::draft202012::new(&schema).unwrap()
}

fn problems(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn checked_in_schema_is_the_generated_one() {
    let (want, have) = (generated(), checked_in());
    if want != have {
        let line = want
            .lines()
            .zip(have.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "one is a prefix of the other".to_owned(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "filter/config.schema.json is out of date with the config types in filter/core/src/config.rs \
             ({line}); regenerate it from the repository root with:\n    {REGENERATE}"
        );
    }
}

#[test]
fn schema_describes_every_top_level_field_and_refuses_unknown_ones() {
    let schema: Value = serde_json::from_str(&checked_in()).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["additionalProperties"], false);
    for field in [
        "realm",
        "providers",
        "rules",
        "default_rule",
        "scope_claim",
        "roles",
        "token_cache_entries",
    ] {
        let d = schema["properties"][field]["description"].as_str();
        assert!(
            d.is_some_and(|d| !d.is_empty()),
            "{field} has no description"
        );
    }
    for def in [
        "ProviderConfig",
        "RuleConfig",
        "MatchConfig",
        "RemoteJwksConfig",
        "TokenSourceConfig",
    ] {
        assert_eq!(schema["$defs"][def]["additionalProperties"], false, "{def}");
    }
    assert_eq!(
        schema["$defs"]["RuleConfig"]["required"],
        json!(["name", "match", "require"])
    );
}

#[test]
fn every_example_config_validates_against_the_schema() {
    let v = validator();
    let dir = repo().join("examples/configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no example configs in {}", dir.display());
    for f in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let errors = problems(&v, &doc);
        assert!(
            errors.is_empty(),
            "{} does not validate against filter/config.schema.json:\n{}",
            f.display(),
            errors.join("\n")
        );
    }
}

#[test]
fn schema_refuses_what_the_filter_refuses_for_shape() {
    let v = validator();
    let ok = json!({
        "providers": [{"name": "p", "issuer": "https://i", "audiences": ["a"], "jwks": {"keys": []},
                       "from": [{"cookie": "t"}], "required_claims": {"tenant": "acme"}}],
        "scope_claim": ["https://example.com/scope"],
        "rules": [
            {"name": "a", "match": {"prefix": "/a"}, "require": {"any_of": ["s:a", {"all_of": ["s:b", "s:c"]}]},
             "claims": [{"claim": "org.id", "one_of": [1, "2"]}]},
            {"name": "b", "match": {"exact": "/b"}, "require": "public"}
        ],
        "default_rule": {"require": "authenticated"},
        "cors_preflight": "enforce"
    });
    assert_eq!(problems(&v, &ok), Vec::<String>::new());
    for (bad, why) in [
        (
            json!({"rules": [{"name": "a", "match": {"prefx": "/a"}, "require": "public"}]}),
            "unknown field",
        ),
        (json!({"realm": "r", "rule": []}), "unknown top-level field"),
        (
            json!({"rules": [{"name": "a", "match": {"prefix": "/a"}}]}),
            "missing require",
        ),
        (
            json!({"rules": [{"name": "a", "match": {"prefix": "/a"}, "require": "nobody"}]}),
            "unknown access",
        ),
        (
            json!({"rules": [{"name": "a", "match": {"prefix": "/a"}, "require": {"all_of": []}}]}),
            "empty all_of",
        ),
        (
            json!({"rules": [{"name": "a", "match": {"prefix": "/a"}, "require": {"all_of": ["x"], "any_of": ["y"]}}]}),
            "two keys",
        ),
        (
            json!({"providers": [{"name": "p", "audiences": ["a"]}]}),
            "missing issuer",
        ),
        (
            json!({"providers": [{"name": "p", "issuer": "i", "clock_skew_seconds": -1}]}),
            "negative integer",
        ),
        (json!({"cors_preflight": "skip"}), "unknown enum value"),
        (
            json!({"scope_claim": 7}),
            "claim path not a string or array",
        ),
    ] {
        assert!(
            !problems(&v, &bad).is_empty(),
            "{why}: {bad} should not validate"
        );
    }
}
