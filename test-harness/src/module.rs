//! A compiled proxy-wasm module.

use anyhow::{Context as _, Result};
use std::path::Path;
use std::sync::Arc;

/// One import of a module.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Import {
    pub module: String,
    pub name: String,
    /// `func`, `memory`, `table` or `global`.
    pub kind: &'static str,
}

pub(crate) struct ModuleInner {
    pub(crate) engine: wasmtime::Engine,
    pub(crate) module: wasmtime::Module,
    pub(crate) name: String,
}

/// A compiled proxy-wasm module. Compile once; `Clone` is cheap (an `Arc`),
/// and it is `Send + Sync`, so tests running in parallel can share one.
#[derive(Clone)]
pub struct Module {
    pub(crate) inner: Arc<ModuleInner>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.inner.name)
            .finish()
    }
}

impl Module {
    /// Compiles a `.wasm` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Module> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading wasm module {}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "module".to_string());
        Module::from_bytes(&name, &bytes)
    }

    /// Compiles a module from its binary.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Module> {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let engine = wasmtime::Engine::new(&config).map_err(anyhow::Error::from)?;
        let module = match cache::load(&engine, bytes) {
            Some(m) => m,
            None => {
                let m = wasmtime::Module::new(&engine, bytes)
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("compiling wasm module {name}"))?;
                cache::store(&m, bytes);
                m
            }
        };
        Ok(Module {
            inner: Arc::new(ModuleInner {
                engine,
                module,
                name: name.to_string(),
            }),
        })
    }

    /// The module's name (file stem).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Every import the module declares, in order.
    pub fn imports(&self) -> Vec<Import> {
        self.inner
            .module
            .imports()
            .map(|i| Import {
                module: i.module().to_string(),
                name: i.name().to_string(),
                kind: match i.ty() {
                    wasmtime::ExternType::Func(_) => "func",
                    wasmtime::ExternType::Memory(_) => "memory",
                    wasmtime::ExternType::Table(_) => "table",
                    wasmtime::ExternType::Global(_) => "global",
                    _ => "other",
                },
            })
            .collect()
    }

    /// Imports that are not `env.proxy_*` functions (e.g. WASI, JS glue).
    /// Empty for a filter that only needs the proxy-wasm ABI.
    pub fn non_proxy_imports(&self) -> Vec<Import> {
        self.imports()
            .into_iter()
            .filter(|i| !(i.module == "env" && i.name.starts_with("proxy_") && i.kind == "func"))
            .collect()
    }

    /// Names of the exported functions.
    pub fn exports(&self) -> Vec<String> {
        self.inner
            .module
            .exports()
            .map(|e| e.name().to_string())
            .collect()
    }
}

/// A small on-disk cache of compiled modules, so every test binary doesn't
/// pay for a Cranelift compile (seconds in debug builds). Keyed by a hash of
/// the wasm bytes; wasmtime itself rejects artifacts from another version or
/// configuration, and then we compile again. Disable with
/// `PROXY_WASM_HARNESS_NO_CACHE=1`; relocate with `PROXY_WASM_HARNESS_CACHE_DIR`.
mod cache {
    use std::hash::{Hash, Hasher};
    use std::path::PathBuf;

    fn dir() -> Option<PathBuf> {
        if std::env::var_os("PROXY_WASM_HARNESS_NO_CACHE").is_some() {
            return None;
        }
        Some(match std::env::var_os("PROXY_WASM_HARNESS_CACHE_DIR") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("proxy-wasm-harness-cache"),
        })
    }

    fn path(bytes: &[u8]) -> Option<PathBuf> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        "wasmtime-48.0.8+fuel".hash(&mut h);
        let key = format!("{:016x}-{}.cwasm", h.finish(), bytes.len());
        dir().map(|d| d.join(key))
    }

    pub(super) fn load(engine: &wasmtime::Engine, bytes: &[u8]) -> Option<wasmtime::Module> {
        let p = path(bytes)?;
        if !p.is_file() {
            return None;
        }
        // SAFETY: the file was written by `store` below from
        // `wasmtime::Module::serialize` (renamed into place atomically), and
        // wasmtime verifies that it matches this engine's version and
        // configuration before using it.
        unsafe { wasmtime::Module::deserialize_file(engine, &p) }.ok()
    }

    pub(super) fn store(module: &wasmtime::Module, bytes: &[u8]) {
        let Some(p) = path(bytes) else {
            return;
        };
        let Ok(data) = module.serialize() else {
            return;
        };
        let Some(parent) = p.parent() else {
            return;
        };
        if std::fs::create_dir_all(parent).is_err() {
            return;
        }
        let thread = format!("{:?}", std::thread::current().id())
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>();
        let tmp = p.with_extension(format!("tmp{}-{thread}", std::process::id()));
        if std::fs::write(&tmp, data).is_ok() && std::fs::rename(&tmp, &p).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
