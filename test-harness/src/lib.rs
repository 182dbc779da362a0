//! A proxy-wasm (ABI 0.2.1) host on wasmtime that behaves like Envoy 1.40,
//! for testing filters. See `README.md` for a worked example.
//!
//! ```no_run
//! use proxy_wasm_harness::{Host, Module, Outcome};
//! let module = Module::from_file("filter.wasm")?;
//! let host = Host::new();
//! let vm = host.vm(&module).plugin_config(br#"{"k":1}"#).start()?;
//! assert!(vm.configured());
//! let mut stream = vm.http_stream();
//! match stream.request_headers(&[(":method", "GET"), (":path", "/"), (":authority", "svc")], true) {
//!     Outcome::Continue => println!("{:?}", stream.request_headers_now()),
//!     Outcome::LocalReply { status, .. } => println!("denied with {status}"),
//!     other => println!("{other:?}"),
//! }
//! stream.finish();
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod abi;
mod callout;
pub mod headers;
mod host;
mod hostcalls;
mod module;
pub mod property;
mod scheduler;
mod stream;
mod vm;
mod wasi;

pub use abi::{LogLevel, MetricKind, Status};
pub use callout::{Callout, CalloutRequest, UpstreamReply};
pub use headers::HeaderMap;
pub use host::{ClusterHandle, DEFAULT_TIME_SECS, Host, Metric, SharedEntry};
pub use module::{Import, Module};
pub use stream::{HttpStream, Message, Outcome};
pub use vm::{
    CallbackStat, DEFAULT_BUFFER_LIMIT, DEFAULT_FUEL_PER_CALLBACK, LogLine, ROOT_CONTEXT_ID,
    Violation, Vm, VmBuilder,
};

/// Locates a fixture or filter `.wasm` built by `make wasm`
/// (`filter/scripts/build-wasm.sh`): `$PROXY_WASM_HARNESS_WASM_DIR/<name>.wasm`
/// if that variable is set, else `<workspace>/target/wasm32-unknown-unknown/release/<name>.wasm`.
/// Errors (never silently skips) with the command to run when it is missing.
pub fn wasm_path(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = match std::env::var_os("PROXY_WASM_HARNESS_WASM_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("wasm32-unknown-unknown")
            .join("release"),
    };
    wasm_path_in(&dir, name)
}

fn wasm_path_in(dir: &std::path::Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let p = dir.join(format!("{name}.wasm"));
    if p.is_file() {
        Ok(p)
    } else {
        Err(anyhow::anyhow!(
            "{} not found: build the wasm modules first with `make wasm` \
             (or `filter/scripts/build-wasm.sh {}`), or set PROXY_WASM_HARNESS_WASM_DIR",
            p.display(),
            name.replace('_', "-")
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_wasm_names_make_wasm() {
        let err = super::wasm_path_in(std::path::Path::new("/nonexistent"), "fixture_x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("make wasm"), "{err}");
        assert!(err.contains("build-wasm.sh fixture-x"), "{err}");
    }
}
