//! Shared helpers for the harness's own tests.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use proxy_wasm_harness::{Host, HttpStream, Module, Vm};
use std::sync::OnceLock;

/// The probe fixture, compiled once for all tests of a binary. Missing .wasm
/// fails the test with the command to run.
pub fn probe() -> Module {
    static M: OnceLock<Module> = OnceLock::new();
    M.get_or_init(|| load("fixture_probe")).clone()
}

pub fn load(name: &str) -> Module {
    let path = proxy_wasm_harness::wasm_path(name).unwrap_or_else(|e| panic!("{e}"));
    Module::from_file(&path).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A started probe VM with the given plugin configuration.
pub fn probe_vm(host: &Host, config: &str) -> Vm {
    host.vm(&probe())
        .plugin_config(config)
        .start()
        .unwrap_or_else(|e| panic!("{e:#}"))
}

pub const GET: [(&str, &str); 3] = [(":method", "GET"), (":path", "/x"), (":authority", "svc")];

/// GET headers plus `x-probe: <actions>`.
pub fn probe_headers(actions: &str) -> Vec<(&str, &str)> {
    let mut h: Vec<(&str, &str)> = GET.to_vec();
    h.push(("x-probe", actions));
    h
}

/// A stream whose request headers carry these probe actions, sent with end
/// of stream, then finished (on_log, on_done, on_delete).
pub fn finished_stream(vm: &Vm, actions: &str) -> HttpStream {
    let mut s = vm.http_stream();
    s.request_headers(&probe_headers(actions), true);
    s.finish();
    s
}
