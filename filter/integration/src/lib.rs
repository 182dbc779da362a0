//! Locating the built `scopegate.wasm` for the integration tests.
//!
//! The tests never skip: if the module is missing they fail and say how to
//! build it (`make wasm`).

pub mod fuel;

use std::path::PathBuf;
use std::sync::OnceLock;

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm_harness::{Host, LogLevel, Module, Vm};

/// `$SCOPEGATE_WASM`, or the release build in the workspace target directory.
pub fn wasm_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SCOPEGATE_WASM") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-unknown-unknown/release/scopegate.wasm")
}

/// The compiled module, shared by every test in the binary.
///
/// # Panics
/// If the module is missing or does not compile: the test must fail, not skip.
#[allow(clippy::panic)]
pub fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        let path = wasm_path();
        Module::from_file(&path).unwrap_or_else(|e| {
            panic!(
                "cannot load {} ({e:#}); build it with `make wasm` (or set SCOPEGATE_WASM)",
                path.display()
            )
        })
    })
}

/// A simulated Envoy whose clock reads the testkit's `NOW`.
///
/// # Panics
/// Never in practice (`NOW` is positive).
#[allow(clippy::unwrap_used)]
pub fn host() -> Host {
    let host = Host::new();
    host.set_time(UNIX_EPOCH + Duration::from_secs(u64::try_from(scopegate_testkit::NOW).unwrap()));
    host
}

/// Lets a second of virtual time pass, so every VM's root tick publishes the
/// counters its requests counted (scopegate counts per-request counters in
/// the VM and publishes them on the tick, at least once a second).
pub fn publish_counters(host: &Host) {
    host.advance(Duration::from_secs(1));
}

/// A scopegate VM (plugin name `scopegate`, vm_id `sg`, debug logs) given
/// `config`, whether or not it accepts it.
///
/// # Panics
/// If the module cannot be instantiated.
#[allow(clippy::expect_used)]
pub fn vm(host: &Host, config: &serde_json::Value) -> Vm {
    host.vm(module())
        .plugin_name("scopegate")
        .vm_id("sg")
        .log_level(LogLevel::Debug)
        .plugin_config(config.to_string())
        .start()
        .expect("VM starts")
}

/// [`vm`], asserting that the configuration was accepted.
///
/// # Panics
/// If `on_configure` refused the configuration (with its log).
#[allow(clippy::panic)]
pub fn configured_vm(host: &Host, config: &serde_json::Value) -> Vm {
    let vm = vm(host, config);
    if !vm.configured() {
        panic!("configuration refused: {:?}", vm.log_messages());
    }
    vm
}
