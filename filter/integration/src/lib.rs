//! Locating the built `scopegate.wasm` for the integration tests.
//!
//! The tests never skip: if the module is missing they fail and say how to
//! build it (`make wasm`).

use std::path::PathBuf;
use std::sync::OnceLock;

use proxy_wasm_harness::Module;

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
