//! The CLI prints the outcome of one request as JSON.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

fn wasm() -> String {
    proxy_wasm_harness::wasm_path("fixture_probe")
        .unwrap_or_else(|e| panic!("{e}"))
        .display()
        .to_string()
}

fn run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_proxy-wasm-harness"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn cli_reports_a_local_reply() {
    let w = wasm();
    let v = run(&[
        "run",
        "--wasm",
        &w,
        "--config-str",
        "a=1",
        "--request",
        r#"{"headers": {":method": "GET", ":path": "/", ":authority": "svc", "x-probe": "deny"}}"#,
    ]);
    assert_eq!(v["configured"], true);
    assert_eq!(v["outcome"]["outcome"], "local_reply");
    assert_eq!(v["outcome"]["status"], 403);
    assert_eq!(v["outcome"]["body"], "denied by probe");
    assert!(v["fuel"].as_u64().unwrap() > 0);
}

#[test]
fn cli_runs_callouts_and_the_response_path() {
    let w = wasm();
    let v = run(&[
        "run",
        "--wasm",
        &w,
        "--request",
        r#"{"headers": [[":method","GET"],[":path","/"],[":authority","svc"],["x-probe","callout:auth"]],
            "clusters": {"auth": {"status": 200}},
            "response": {"headers": {":status": "200"}, "body": "hello"}}"#,
    ]);
    assert_eq!(v["outcome"]["outcome"], "continue");
    let up = v["upstream_request"]["headers"].as_array().unwrap();
    assert!(up.iter().any(|p| p[0] == "x-probe-auth" && p[1] == "ok"));
    assert_eq!(v["downstream_response"]["body"], "hello");
}

#[test]
fn cli_clusters_can_fail_to_connect() {
    let w = wasm();
    let v = run(&[
        "run",
        "--wasm",
        &w,
        "--request",
        r#"{"headers": {":method": "GET", ":path": "/", ":authority": "svc", "x-probe": "callout:auth"},
            "clusters": {"auth": {"reply": "connect_failure"}}}"#,
    ]);
    assert_eq!(v["outcome"]["outcome"], "local_reply");
    assert_eq!(v["outcome"]["status"], 503);
    assert_eq!(v["outcome"]["body"], "auth unavailable");
}

#[test]
fn cli_lists_imports() {
    let w = wasm();
    let v = run(&["imports", "--wasm", &w]);
    assert_eq!(v["non_proxy_imports"].as_array().unwrap().len(), 0);
    assert!(
        v["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "proxy_log")
    );
}
