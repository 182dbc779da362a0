//! One wasm VM (one worker's instance of a plugin) and its lifecycle.

use crate::Outcome;
use crate::abi::LogLevel;
use crate::callout::CalloutResponse;
use crate::host::{Host, HostState};
use crate::module::Module;
use crate::stream::{HttpStream, StreamState};
use anyhow::{Result, anyhow};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, SystemTime};
use wasmtime::{Instance, Linker, Store, Val};

/// The root context id Envoy uses.
pub const ROOT_CONTEXT_ID: u32 = 1;

/// Default fuel budget for one callback (wasmtime fuel units, ~1 per instruction).
pub const DEFAULT_FUEL_PER_CALLBACK: u64 = 20_000_000_000;

/// Default per-direction body buffer limit (Envoy's 1 MiB).
pub const DEFAULT_BUFFER_LIMIT: usize = 1 << 20;

/// One captured `proxy_log` line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
    /// The context the line was logged from (1 = root, 0 = module start).
    pub context_id: u32,
    /// Whether Envoy would print it at the configured log level.
    pub emitted: bool,
    /// The line as Envoy prints it: `wasm log <plugin>[ root_id][ vm_id]: message`
    /// (root-context lines have no plugin name).
    pub envoy_line: String,
}

/// A host call Envoy would refuse or ignore, with what it returned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The callback that was running (`on_request_headers`, ...).
    pub callback: String,
    pub context_id: u32,
    pub hostcall: &'static str,
    pub detail: String,
    pub status: crate::abi::Status,
}

/// Cost of one guest callback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallbackStat {
    pub callback: String,
    pub context_id: u32,
    /// Wasmtime fuel consumed (about one unit per wasm instruction).
    pub fuel: u64,
    /// Linear memory size after the callback, in bytes.
    pub memory_bytes: u64,
    /// Host calls the guest made during the callback (each is a crossing out
    /// of the VM, costly in V8).
    pub hostcalls: u64,
    /// Wall time of the callback in this host (Cranelift code with fuel
    /// metering, host calls included): an indication, not V8's figure.
    pub wall: std::time::Duration,
}

/// Which part of the VM lifecycle is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Start,
    VmStart,
    Configure,
    Running,
}

/// The callback being executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Callback {
    Initialize,
    ContextCreate,
    VmStart,
    Configure,
    Tick,
    QueueReady,
    HttpCallResponse,
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    Log,
    Done,
    Delete,
}

impl Callback {
    pub(crate) fn export(self) -> &'static str {
        match self {
            Callback::Initialize => "_initialize",
            Callback::ContextCreate => "proxy_on_context_create",
            Callback::VmStart => "proxy_on_vm_start",
            Callback::Configure => "proxy_on_configure",
            Callback::Tick => "proxy_on_tick",
            Callback::QueueReady => "proxy_on_queue_ready",
            Callback::HttpCallResponse => "proxy_on_http_call_response",
            Callback::RequestHeaders => "proxy_on_request_headers",
            Callback::RequestBody => "proxy_on_request_body",
            Callback::RequestTrailers => "proxy_on_request_trailers",
            Callback::ResponseHeaders => "proxy_on_response_headers",
            Callback::ResponseBody => "proxy_on_response_body",
            Callback::ResponseTrailers => "proxy_on_response_trailers",
            Callback::Log => "proxy_on_log",
            Callback::Done => "proxy_on_done",
            Callback::Delete => "proxy_on_delete",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        self.export().trim_start_matches("proxy_")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct VmConfig {
    pub(crate) plugin_name: String,
    pub(crate) root_id: String,
    pub(crate) vm_id: String,
    pub(crate) plugin_config: Vec<u8>,
    pub(crate) vm_config: Vec<u8>,
    pub(crate) log_level: LogLevel,
    pub(crate) fuel_per_callback: u64,
    pub(crate) buffer_limit: usize,
    pub(crate) allow_on_headers_stop_iteration: bool,
    pub(crate) properties: BTreeMap<Vec<String>, Vec<u8>>,
}

/// Store data: everything host functions can see.
pub(crate) struct VmData {
    pub(crate) host: Rc<RefCell<HostState>>,
    pub(crate) vm_index: usize,
    pub(crate) cfg: VmConfig,
    pub(crate) phase: Phase,
    pub(crate) callback: Option<Callback>,
    pub(crate) current_context: u32,
    pub(crate) effective_context: u32,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) streams: BTreeMap<u32, StreamState>,
    pub(crate) tick_period: Option<Duration>,
    pub(crate) next_tick: Option<SystemTime>,
    pub(crate) metric_ids: HashMap<u32, String>,
    pub(crate) next_metric_seq: [u32; 3],
    pub(crate) next_http_token: u32,
    pub(crate) callout_response: Option<CalloutResponse>,
    pub(crate) status: (u32, String),
    pub(crate) violations: Vec<Violation>,
    pub(crate) pending_queue_ready: Vec<(u32, u32)>,
    pub(crate) root_done_called: bool,
    /// Host calls made by the guest so far (counted by a call hook).
    pub(crate) hostcalls: u64,
}

impl VmData {
    /// The context host calls act on: the effective context if set, else the current one.
    pub(crate) fn target_context(&self) -> u32 {
        if self.effective_context != 0 {
            self.effective_context
        } else {
            self.current_context
        }
    }

    pub(crate) fn callback_name(&self) -> String {
        match self.callback {
            Some(c) => c.name().to_string(),
            None => "none".to_string(),
        }
    }

    pub(crate) fn violation(
        &mut self,
        hostcall: &'static str,
        detail: impl Into<String>,
        status: crate::abi::Status,
    ) {
        let v = Violation {
            callback: self.callback_name(),
            context_id: self.target_context(),
            hostcall,
            detail: detail.into(),
            status,
        };
        self.violations.push(v);
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.host.borrow().now
    }

    pub(crate) fn log_prefix(&self, context_id: u32) -> String {
        let mut p = String::from("wasm log");
        if context_id > ROOT_CONTEXT_ID && !self.cfg.plugin_name.is_empty() {
            p.push(' ');
            p.push_str(&self.cfg.plugin_name);
        }
        if !self.cfg.root_id.is_empty() {
            p.push(' ');
            p.push_str(&self.cfg.root_id);
        }
        if !self.cfg.vm_id.is_empty() {
            p.push(' ');
            p.push_str(&self.cfg.vm_id);
        }
        p
    }
}

pub(crate) struct VmInner {
    pub(crate) store: Store<VmData>,
    pub(crate) instance: Instance,
    pub(crate) dead: Option<String>,
    pub(crate) configured: bool,
    pub(crate) next_context_id: u32,
    pub(crate) stats: Vec<CallbackStat>,
    /// Indices into `stats` by context id, so that a stream's own figures
    /// (`HttpStream::fuel_used` and the like) cost its own callbacks, not
    /// every callback of the VM's life (which made a long run quadratic).
    pub(crate) stats_by_context: HashMap<u32, Vec<usize>>,
    pub(crate) settling: bool,
}

impl Drop for VmInner {
    fn drop(&mut self) {
        let logs = std::mem::take(&mut self.store.data_mut().logs);
        let idx = self.store.data().vm_index;
        if let Ok(mut st) = self.store.data().host.try_borrow_mut() {
            st.retired_logs.extend(logs);
            st.callouts.retain(|c| c.vm_index != idx);
        }
    }
}

/// Builder for a VM: configuration, then [`VmBuilder::start`].
#[derive(Clone)]
pub struct VmBuilder {
    host: Host,
    module: Module,
    cfg: VmConfig,
}

impl VmBuilder {
    pub(crate) fn new(host: Host, module: Module) -> VmBuilder {
        VmBuilder {
            host,
            module,
            cfg: VmConfig {
                plugin_name: "plugin".to_string(),
                root_id: String::new(),
                vm_id: String::new(),
                plugin_config: Vec::new(),
                vm_config: Vec::new(),
                log_level: LogLevel::Info,
                fuel_per_callback: DEFAULT_FUEL_PER_CALLBACK,
                buffer_limit: DEFAULT_BUFFER_LIMIT,
                allow_on_headers_stop_iteration: false,
                properties: BTreeMap::new(),
            },
        }
    }

    /// Plugin configuration bytes (what a `StringValue`/`BytesValue` carries).
    pub fn plugin_config(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.cfg.plugin_config = bytes.as_ref().to_vec();
        self
    }

    /// VM configuration bytes (given to `on_vm_start`).
    pub fn vm_config(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.cfg.vm_config = bytes.as_ref().to_vec();
        self
    }

    /// Envoy's log level for the wasm logger (default Info).
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.cfg.log_level = level;
        self
    }

    /// Plugin name (`plugin_name` property, log prefix). Default `plugin`.
    pub fn plugin_name(mut self, name: &str) -> Self {
        self.cfg.plugin_name = name.to_string();
        self
    }

    /// Root id (`plugin_root_id`). Default empty.
    pub fn root_id(mut self, id: &str) -> Self {
        self.cfg.root_id = id.to_string();
        self
    }

    /// VM id: scopes shared data and queues. Default empty.
    pub fn vm_id(mut self, id: &str) -> Self {
        self.cfg.vm_id = id.to_string();
        self
    }

    /// Fuel budget for a single callback; exceeding it traps (the VM fails).
    pub fn fuel_per_callback(mut self, fuel: u64) -> Self {
        self.cfg.fuel_per_callback = fuel;
        self
    }

    /// Body buffer limit per direction (default 1 MiB).
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.cfg.buffer_limit = bytes;
        self
    }

    /// Envoy's `allow_on_headers_stop_iteration` plugin option (default false):
    /// when true, Pause from a headers callback is StopIteration, so body
    /// data still reaches the filter while the headers are held.
    pub fn allow_on_headers_stop_iteration(mut self, allow: bool) -> Self {
        self.cfg.allow_on_headers_stop_iteration = allow;
        self
    }

    /// A property visible to every context of this VM (e.g. `xds.cluster_name`).
    /// Values are raw bytes in Envoy's encoding (see [`crate::property`]).
    pub fn property(mut self, path: &[&str], value: impl AsRef<[u8]>) -> Self {
        self.cfg.properties.insert(
            path.iter().map(|s| s.to_string()).collect(),
            value.as_ref().to_vec(),
        );
        self
    }

    /// Starts VMs the way Envoy does at startup with `workers` worker threads:
    /// a main-thread VM is fully started and configured, then discarded (its
    /// logs move to [`Host::retired_logs`]), then one VM per worker, all with
    /// the same configuration (so the same vm_id: shared data is common).
    pub fn start_workers(self, workers: usize) -> Result<Vec<Vm>> {
        let main = self.clone().start()?;
        drop(main);
        let mut out = Vec::with_capacity(workers);
        for _ in 0..workers {
            out.push(self.clone().start()?);
        }
        Ok(out)
    }

    /// Instantiates the module and runs Envoy's startup sequence:
    /// `_initialize` (only `proxy_log` allowed), `proxy_on_context_create(1, 0)`,
    /// `proxy_on_vm_start`, `proxy_on_configure`.
    ///
    /// Errors when the module cannot be instantiated (missing import, no ABI
    /// version export), or when module start / `on_vm_start` fails: Envoy
    /// would reject the VM. A false or trapping `on_configure` is not an
    /// error: check [`Vm::configured`] and [`Vm::failure`].
    pub fn start(self) -> Result<Vm> {
        let VmBuilder { host, module, cfg } = self;
        let m = &module.inner;
        let abi_ok = m.module.exports().any(|e| {
            matches!(
                e.name(),
                "proxy_abi_version_0_2_1" | "proxy_abi_version_0_2_0" | "proxy_abi_version_0_1_0"
            )
        });
        if !abi_ok {
            return Err(anyhow!(
                "Wasm module {} has no proxy_abi_version_* export (Envoy rejects it)",
                m.name
            ));
        }
        let vm_index = host.state.borrow().vms.len();
        let data = VmData {
            host: host.state.clone(),
            vm_index,
            cfg,
            phase: Phase::Start,
            callback: None,
            current_context: 0,
            effective_context: 0,
            logs: Vec::new(),
            streams: BTreeMap::new(),
            tick_period: None,
            next_tick: None,
            metric_ids: HashMap::new(),
            next_metric_seq: [0; 3],
            next_http_token: 0,
            callout_response: None,
            status: (0, String::new()),
            violations: Vec::new(),
            pending_queue_ready: Vec::new(),
            root_done_called: false,
            hostcalls: 0,
        };
        let mut store = Store::new(&m.engine, data);
        store.call_hook(|mut ctx, hook| {
            if matches!(hook, wasmtime::CallHook::CallingHost) {
                ctx.data_mut().hostcalls += 1;
            }
            if trace_fuel() {
                // Fuel left at every crossing: the differences between lines
                // are what the module spent between two host calls.
                eprintln!("fuel-trace {:?} {}", hook, ctx.get_fuel().unwrap_or(0));
            }
            Ok(())
        });
        let mut linker: Linker<VmData> = Linker::new(&m.engine);
        crate::hostcalls::define(&mut linker)?;
        crate::wasi::define(&mut linker)?;
        let instance = linker.instantiate(&mut store, &m.module).map_err(|e| {
            anyhow!(
                "Failed to load Wasm module {}: {:#}",
                m.name,
                anyhow::Error::from(e)
            )
        })?;
        let inner = Rc::new(RefCell::new(VmInner {
            store,
            instance,
            dead: None,
            configured: false,
            next_context_id: 2,
            stats: Vec::new(),
            stats_by_context: HashMap::new(),
            settling: false,
        }));
        host.state.borrow_mut().vms.push(Rc::downgrade(&inner));
        let vm = Vm {
            inner,
            host: host.clone(),
        };
        {
            let mut i = vm.inner.borrow_mut();
            for (export, cb) in [
                ("_start", Callback::Initialize),
                ("_initialize", Callback::Initialize),
            ] {
                if i.has_export(export) {
                    i.call_export(cb, 0, export, &[])
                        .map_err(|e| anyhow!("module start ({export}) failed: {e}"))?;
                }
            }
            i.store.data_mut().phase = Phase::VmStart;
            i.call(
                Callback::ContextCreate,
                ROOT_CONTEXT_ID,
                &[Val::I32(1), Val::I32(0)],
            )
            .map_err(|e| anyhow!("proxy_on_context_create(root) failed: {e}"))?;
            let size = i.store.data().cfg.vm_config.len() as i32;
            let ok = i
                .call(
                    Callback::VmStart,
                    ROOT_CONTEXT_ID,
                    &[Val::I32(1), Val::I32(size)],
                )
                .map_err(|e| anyhow!("proxy_on_vm_start failed: {e}"))?;
            if ok == Some(0) {
                return Err(anyhow!(
                    "proxy_on_vm_start returned false: Envoy rejects the VM"
                ));
            }
            i.store.data_mut().phase = Phase::Configure;
            let size = i.store.data().cfg.plugin_config.len() as i32;
            let res = i.call(
                Callback::Configure,
                ROOT_CONTEXT_ID,
                &[Val::I32(1), Val::I32(size)],
            );
            i.store.data_mut().phase = Phase::Running;
            i.configured = matches!(res, Ok(Some(v)) if v != 0) || matches!(res, Ok(None));
            if i.dead.is_none() {
                i.settle();
            }
        }
        Ok(vm)
    }
}

/// A running VM. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct Vm {
    pub(crate) inner: Rc<RefCell<VmInner>>,
    pub(crate) host: Host,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.inner.borrow();
        f.debug_struct("Vm")
            .field("configured", &i.configured)
            .field("dead", &i.dead)
            .finish()
    }
}

impl Vm {
    /// Whether `proxy_on_configure` returned true (Envoy accepts the config).
    pub fn configured(&self) -> bool {
        let i = self.inner.borrow();
        i.configured && i.dead.is_none()
    }

    /// The trap message if the VM failed (it is dead from then on).
    pub fn failure(&self) -> Option<String> {
        self.inner.borrow().dead.clone()
    }

    /// Whether the VM is alive.
    pub fn alive(&self) -> bool {
        self.inner.borrow().dead.is_none()
    }

    /// Log lines Envoy would print (at or above the configured level).
    pub fn logs(&self) -> Vec<LogLine> {
        self.logs_where(|_| true)
    }

    /// The emitted log lines that `keep` keeps, copying only those.
    pub(crate) fn logs_where(&self, keep: impl Fn(&LogLine) -> bool) -> Vec<LogLine> {
        self.inner
            .borrow()
            .store
            .data()
            .logs
            .iter()
            .filter(|l| l.emitted && keep(l))
            .cloned()
            .collect()
    }

    /// Removes and returns every log line held so far (long runs drain
    /// them, so the host's memory stays flat).
    pub fn take_logs(&self) -> Vec<LogLine> {
        std::mem::take(&mut self.inner.borrow_mut().store.data_mut().logs)
    }

    /// Every log line, including those below the configured level.
    pub fn all_logs(&self) -> Vec<LogLine> {
        self.inner.borrow().store.data().logs.clone()
    }

    /// Messages of the emitted log lines (convenience for assertions).
    pub fn log_messages(&self) -> Vec<String> {
        self.logs().into_iter().map(|l| l.message).collect()
    }

    /// True if an emitted log message contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs().iter().any(|l| l.message.contains(needle))
    }

    /// Host calls Envoy would refuse or ignore (out-of-phase access etc.).
    pub fn violations(&self) -> Vec<Violation> {
        self.inner.borrow().store.data().violations.clone()
    }

    /// A readable report: violations (out-of-phase or ignored host calls)
    /// and the cost of every callback. Handy in assertion messages.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let v = self.violations();
        out.push_str(&format!("violations: {}\n", v.len()));
        for x in &v {
            out.push_str(&format!(
                "  [{} ctx {}] {} -> {:?}: {}\n",
                x.callback, x.context_id, x.hostcall, x.status, x.detail
            ));
        }
        let stats = self.callback_stats();
        out.push_str(&format!("callbacks: {}\n", stats.len()));
        for s in &stats {
            out.push_str(&format!(
                "  {} ctx {}: fuel {} memory {} bytes\n",
                s.callback, s.context_id, s.fuel, s.memory_bytes
            ));
        }
        if let Some(f) = self.failure() {
            out.push_str(&format!("failed: {f}\n"));
        }
        out
    }

    /// Envoy's VM shutdown: `proxy_on_done(1)`; if it returns true (or the
    /// filter later calls `proxy_done`), `proxy_on_delete(1)`. Returns whether
    /// the root context finished at once.
    pub fn shutdown(&self) -> bool {
        let mut i = self.inner.borrow_mut();
        let arg = [Val::I32(ROOT_CONTEXT_ID as i32)];
        let done = match i.call(Callback::Done, ROOT_CONTEXT_ID, &arg) {
            Ok(Some(0)) => i.store.data().root_done_called,
            Ok(_) => true,
            Err(_) => return false,
        };
        if done {
            let _ = i.call(Callback::Delete, ROOT_CONTEXT_ID, &arg);
        }
        done
    }

    /// Fuel and memory for every callback so far.
    pub fn callback_stats(&self) -> Vec<CallbackStat> {
        self.inner.borrow().stats.clone()
    }

    /// Removes and returns every callback's stats held so far, as
    /// [`Vm::take_logs`] does for logs: long runs drain them, so the host's
    /// memory stays flat. A stream still open counts its figures
    /// ([`HttpStream::fuel_used`](crate::HttpStream::fuel_used) and the
    /// like) from here on.
    pub fn take_callback_stats(&self) -> Vec<CallbackStat> {
        let mut i = self.inner.borrow_mut();
        i.stats_by_context.clear();
        std::mem::take(&mut i.stats)
    }

    /// `f` over the stats of one context's callbacks, in order, without
    /// copying the VM's whole history.
    pub(crate) fn fold_context_stats<T>(
        &self,
        context_id: u32,
        init: T,
        f: impl FnMut(T, &CallbackStat) -> T,
    ) -> T {
        let i = self.inner.borrow();
        let Some(idx) = i.stats_by_context.get(&context_id) else {
            return init;
        };
        idx.iter()
            .filter_map(|k| i.stats.get(*k))
            .fold(init, f)
    }

    /// Streams the host holds: open ones, and finished ones whose
    /// [`HttpStream`] handle is still alive (a dropped handle's finished
    /// stream is forgotten, as Envoy forgets a deleted context).
    pub fn streams_held(&self) -> usize {
        self.inner.borrow().data().streams.len()
    }

    /// Current linear memory size in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.inner.borrow_mut().memory_bytes()
    }

    /// Current tick period set by the filter.
    pub fn tick_period(&self) -> Option<Duration> {
        self.inner.borrow().store.data().tick_period
    }

    /// The host this VM lives in.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Callouts of this VM not yet answered.
    pub fn pending_callouts(&self) -> Vec<crate::Callout> {
        let idx = self.inner.borrow().store.data().vm_index;
        self.host
            .pending_callouts()
            .into_iter()
            .filter(|c| {
                self.host
                    .state
                    .borrow()
                    .callouts
                    .iter()
                    .any(|p| p.token == c.token && p.vm_index == idx)
            })
            .collect()
    }

    /// A new HTTP stream: context id 2, 3, ... (never reused).
    /// Calls `proxy_on_context_create(id, 1)`.
    pub fn http_stream(&self) -> HttpStream {
        let id = self.inner.borrow_mut().create_stream();
        HttpStream::new(self.clone(), id)
    }

    /// Convenience: one GET-like request with headers only, finished at once.
    pub fn request(&self, headers: &[(&str, &str)]) -> Outcome {
        let mut s = self.http_stream();
        let out = s.request_headers(headers, true);
        s.finish();
        out
    }
}

pub(crate) enum CallError {
    Dead(String),
    Trap(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Dead(m) => write!(f, "VM already failed: {m}"),
            CallError::Trap(m) => write!(f, "{m}"),
        }
    }
}

impl CallError {
    pub(crate) fn message(&self) -> String {
        self.to_string()
    }
}

impl VmInner {
    pub(crate) fn has_export(&mut self, name: &str) -> bool {
        self.instance.get_func(&mut self.store, name).is_some()
    }

    pub(crate) fn memory_bytes(&mut self) -> u64 {
        match self.instance.get_memory(&mut self.store, "memory") {
            Some(m) => m.data_size(&self.store) as u64,
            None => 0,
        }
    }

    pub(crate) fn data(&self) -> &VmData {
        self.store.data()
    }

    pub(crate) fn data_mut(&mut self) -> &mut VmData {
        self.store.data_mut()
    }

    /// Calls a callback; `Ok(None)` if the module doesn't export it.
    pub(crate) fn call(
        &mut self,
        cb: Callback,
        context_id: u32,
        args: &[Val],
    ) -> Result<Option<i32>, CallError> {
        self.call_export(cb, context_id, cb.export(), args)
    }

    pub(crate) fn call_export(
        &mut self,
        cb: Callback,
        context_id: u32,
        export: &str,
        args: &[Val],
    ) -> Result<Option<i32>, CallError> {
        if let Some(d) = &self.dead {
            return Err(CallError::Dead(d.clone()));
        }
        let Some(func) = self.instance.get_func(&mut self.store, export) else {
            return Ok(None);
        };
        let ty = func.ty(&self.store);
        // Pad or truncate args to the export's arity (some SDKs declare fewer params).
        let params: Vec<Val> = ty
            .params()
            .enumerate()
            .map(|(n, p)| match (args.get(n), p) {
                (Some(Val::I32(v)), wasmtime::ValType::I64) => Val::I64(i64::from(*v)),
                (Some(v), _) => *v,
                (None, wasmtime::ValType::I64) => Val::I64(0),
                (None, _) => Val::I32(0),
            })
            .collect();
        let mut results: Vec<Val> = ty.results().map(|_| Val::I32(0)).collect();
        let (saved_cb, saved_ctx, saved_eff) = {
            let d = self.store.data();
            (d.callback, d.current_context, d.effective_context)
        };
        {
            let d = self.store.data_mut();
            d.callback = Some(cb);
            d.current_context = context_id;
            d.effective_context = 0;
        }
        let budget = self.store.data().cfg.fuel_per_callback;
        let _ = self.store.set_fuel(budget);
        let logs_before = self.store.data().logs.len();
        let hostcalls_before = self.store.data().hostcalls;
        let started = std::time::Instant::now();
        let r = func.call(&mut self.store, &params, &mut results);
        let wall = started.elapsed();
        let left = self.store.get_fuel().unwrap_or(0);
        {
            let d = self.store.data_mut();
            d.callback = saved_cb;
            d.current_context = saved_ctx;
            d.effective_context = saved_eff;
        }
        let memory_bytes = self.memory_bytes();
        self.stats_by_context
            .entry(context_id)
            .or_default()
            .push(self.stats.len());
        self.stats.push(CallbackStat {
            callback: cb.name().to_string(),
            context_id,
            fuel: budget.saturating_sub(left),
            memory_bytes,
            hostcalls: self.store.data().hostcalls - hostcalls_before,
            wall,
        });
        match r {
            Ok(()) => Ok(results.first().and_then(|v| match v {
                Val::I32(x) => Some(*x),
                Val::I64(x) => Some(*x as i32),
                _ => None,
            })),
            Err(e) => {
                let trap = describe_trap(e);
                let panic_msg = self
                    .store
                    .data()
                    .logs
                    .get(logs_before..)
                    .and_then(|l| l.iter().rev().find(|l| l.level == LogLevel::Critical))
                    .map(|l| l.message.clone());
                let msg = match panic_msg {
                    Some(p) => format!("{} trapped in {}: {p} ({trap})", export, cb.name()),
                    None => format!("{} trapped in {}: {trap}", export, cb.name()),
                };
                self.dead = Some(msg.clone());
                self.store.data_mut().logs.push(LogLine {
                    level: LogLevel::Critical,
                    message: format!("Function: {export} failed: {trap}"),
                    context_id,
                    emitted: true,
                    envoy_line: format!("wasm: Function: {export} failed: {trap}"),
                });
                Err(CallError::Trap(msg))
            }
        }
    }

    pub(crate) fn create_stream(&mut self) -> u32 {
        let id = self.next_context_id;
        self.next_context_id += 1;
        let st = StreamState::new(id);
        self.data_mut().streams.insert(id, st);
        if self.dead.is_none() {
            let r = self.call(
                Callback::ContextCreate,
                id,
                &[Val::I32(id as i32), Val::I32(ROOT_CONTEXT_ID as i32)],
            );
            if let Err(e) = r {
                if let Some(s) = self.data_mut().streams.get_mut(&id) {
                    s.fail(e.message());
                }
            } else if let Some(s) = self.data_mut().streams.get_mut(&id) {
                s.created = true;
            }
        }
        id
    }

    /// Runs Envoy's "after VM call" actions and scripted upstreams until quiet.
    pub(crate) fn settle(&mut self) {
        if self.settling {
            return;
        }
        self.settling = true;
        for _ in 0..10_000 {
            let mut progress = false;
            let ids: Vec<u32> = self.data().streams.keys().copied().collect();
            for id in ids {
                if crate::stream::process_deferred(self, id) {
                    progress = true;
                }
            }
            if crate::scheduler::deliver_immediate(self) {
                progress = true;
            }
            let queued = std::mem::take(&mut self.data_mut().pending_queue_ready);
            for (ctx, qid) in queued {
                progress = true;
                let _ = self.call(
                    Callback::QueueReady,
                    ctx,
                    &[Val::I32(ctx as i32), Val::I32(qid as i32)],
                );
            }
            if !progress {
                break;
            }
        }
        self.settling = false;
    }

    /// Delivers a callout response on the root context.
    pub(crate) fn deliver_http_call_response(&mut self, token: u32, resp: CalloutResponse) {
        if self.dead.is_some() {
            return;
        }
        let nh = resp.headers.len() as i32;
        let nb = resp.body.len() as i32;
        let nt = resp.trailers.len() as i32;
        {
            let d = self.data_mut();
            d.status = (resp.status_code, resp.status_message.clone());
            d.callout_response = Some(resp);
        }
        let r = self.call(
            Callback::HttpCallResponse,
            ROOT_CONTEXT_ID,
            &[
                Val::I32(ROOT_CONTEXT_ID as i32),
                Val::I32(token as i32),
                Val::I32(nh),
                Val::I32(nb),
                Val::I32(nt),
            ],
        );
        self.data_mut().callout_response = None;
        if let Err(e) = r {
            self.fail_all_streams(&e.message());
            return;
        }
        self.settle();
    }

    pub(crate) fn fire_tick(&mut self) {
        let now = self.data().now();
        let period = self.data().tick_period;
        self.data_mut().next_tick = period.map(|p| now + p);
        if self.dead.is_some() {
            return;
        }
        let r = self.call(
            Callback::Tick,
            ROOT_CONTEXT_ID,
            &[Val::I32(ROOT_CONTEXT_ID as i32)],
        );
        if let Err(e) = r {
            self.fail_all_streams(&e.message());
            return;
        }
        self.settle();
    }

    /// After a trap outside a stream callback: every open stream gets Envoy's 503.
    pub(crate) fn fail_all_streams(&mut self, msg: &str) {
        for s in self.data_mut().streams.values_mut() {
            if !s.deleted && s.terminal.is_none() {
                s.fail(msg.to_string());
            }
        }
    }
}

fn describe_trap(e: wasmtime::Error) -> String {
    let trap = e.downcast_ref::<wasmtime::Trap>().copied();
    let a = anyhow::Error::from(e);
    match trap {
        Some(t) => format!("{t}"),
        None => format!("{a:#}"),
    }
}

/// `PROXY_WASM_HARNESS_TRACE_FUEL=1`: print the fuel left at every call into
/// and out of the module and every host call (stderr), to see where a
/// callback spends its instructions. Read once per process.
fn trace_fuel() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("PROXY_WASM_HARNESS_TRACE_FUEL").is_some_and(|v| v == "1"))
}
