//! Every example config in the repository passes `scopegate check`, and a
//! broken one fails with exit code 1 and the JSON path of the problem.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn scopegate(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_checks_clean() {
    let files = examples();
    assert!(!files.is_empty());
    for f in files {
        let (code, text) = scopegate(&["check", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {text}", f.display());
        assert!(text.contains("ok:"), "{text}");
    }
}

#[test]
fn a_broken_config_exits_1_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("scopegate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.json");
    std::fs::write(&f, r#"{"providers": [{"name": "a", "issuer": "i", "audiences": ["x"], "jwks": {"keys": []}, "forward_tokn": true}]}"#).unwrap();
    let (code, text) = scopegate(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("providers[0].forward_tokn"), "{text}");
    let (code, _) = scopegate(&["check"]);
    assert_eq!(code, 2, "usage error");
    let (code, _) = scopegate(&["check", "/nonexistent/x.json"]);
    assert_eq!(code, 2, "I/O error");
}
