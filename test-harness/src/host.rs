//! The simulated Envoy process: virtual clock, clusters, shared data, queues,
//! metrics, and the VMs started in it.

use crate::abi::MetricKind;
use crate::callout::{Callout, CalloutRequest, PendingCallout, UpstreamReply};
use crate::module::Module;
use crate::vm::{VmBuilder, VmInner};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::{Rc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default virtual time: 2023-11-14T22:13:20Z.
pub const DEFAULT_TIME_SECS: u64 = 1_700_000_000;

/// A scripted upstream: answers every callout made to its cluster.
pub type Responder = Rc<dyn Fn(&CalloutRequest) -> UpstreamReply>;

#[derive(Clone)]
pub(crate) struct ClusterState {
    pub(crate) responder: Option<Responder>,
}

/// A value in shared data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedEntry {
    pub value: Vec<u8>,
    pub cas: u32,
}

/// A metric as Envoy's stats would show it (name without `wasmcustom.`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Metric {
    pub kind: MetricKind,
    /// Counter or gauge value; for histograms, the number of samples.
    pub value: i64,
    /// Recorded histogram samples.
    pub samples: Vec<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub(crate) vm_id: String,
    pub(crate) name: String,
    pub(crate) owner_vm: usize,
    pub(crate) owner_context: u32,
    pub(crate) items: std::collections::VecDeque<Vec<u8>>,
}

pub(crate) struct HostState {
    pub(crate) now: SystemTime,
    pub(crate) clusters: BTreeMap<String, ClusterState>,
    pub(crate) shared: HashMap<(String, String), SharedEntry>,
    pub(crate) queues: BTreeMap<u32, Queue>,
    pub(crate) next_queue_id: u32,
    pub(crate) metrics: BTreeMap<String, Metric>,
    pub(crate) vms: Vec<Weak<RefCell<VmInner>>>,
    pub(crate) callouts: Vec<PendingCallout>,
    pub(crate) next_callout_seq: u64,
    pub(crate) next_request_id: u64,
    /// proxy-wasm-cpp-host's shared-data CAS counter: process-wide, starts at 1.
    pub(crate) next_cas: u32,
    /// Monotonic clock: moves only forward, with `advance`.
    pub(crate) monotonic: Duration,
    pub(crate) random_state: u64,
    /// Log lines of VMs that were dropped (e.g. Envoy's discarded startup VMs).
    pub(crate) retired_logs: Vec<crate::vm::LogLine>,
    /// Fault injection: (vm_id, key) -> how many more conditional sets of it
    /// lose a race to another VM's write (see [`Host::race_shared_data`]).
    pub(crate) shared_races: HashMap<(String, String), usize>,
}

/// One simulated Envoy process. Cheap to clone (a shared handle); not `Send`:
/// create one per test.
#[derive(Clone)]
pub struct Host {
    pub(crate) state: Rc<RefCell<HostState>>,
}

impl Default for Host {
    fn default() -> Self {
        Host::new()
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("now", &self.now()).finish()
    }
}

/// Handle to configure a cluster.
pub struct ClusterHandle {
    host: Host,
    name: String,
}

impl ClusterHandle {
    /// Answers every callout to this cluster with `f(request)`, as a real
    /// upstream would: the response is delivered after the current callback
    /// returns (or after `UpstreamReply::after` delay on the virtual clock).
    pub fn respond_with(self, f: impl Fn(&CalloutRequest) -> UpstreamReply + 'static) -> Self {
        if let Some(c) = self.host.state.borrow_mut().clusters.get_mut(&self.name) {
            c.responder = Some(Rc::new(f));
        }
        self
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl HostState {
    /// Moves the wall clock forward to `t` (never back) and the monotonic clock with it.
    pub(crate) fn move_to(&mut self, t: SystemTime) {
        if let Ok(d) = t.duration_since(self.now) {
            self.monotonic += d;
            self.now = t;
        }
    }

    pub(crate) fn take_cas(&mut self) -> u32 {
        let c = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1);
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        c
    }
}

impl Host {
    /// A new process with the clock at [`DEFAULT_TIME_SECS`] and no clusters.
    pub fn new() -> Host {
        Host {
            state: Rc::new(RefCell::new(HostState {
                now: UNIX_EPOCH + Duration::from_secs(DEFAULT_TIME_SECS),
                clusters: BTreeMap::new(),
                shared: HashMap::new(),
                queues: BTreeMap::new(),
                next_queue_id: 1,
                metrics: BTreeMap::new(),
                vms: Vec::new(),
                callouts: Vec::new(),
                next_callout_seq: 1,
                next_request_id: 1,
                next_cas: 1,
                monotonic: Duration::from_secs(1),
                random_state: 0x9e37_79b9_7f4a_7c15,
                retired_logs: Vec::new(),
                shared_races: HashMap::new(),
            })),
        }
    }

    /// Starts building a VM of `module` in this process.
    pub fn vm(&self, module: &Module) -> VmBuilder {
        VmBuilder::new(self.clone(), module.clone())
    }

    /// Current virtual time.
    pub fn now(&self) -> SystemTime {
        self.state.borrow().now
    }

    /// Sets the virtual clock (no timers fire; use [`Host::advance`] for that).
    pub fn set_time(&self, t: SystemTime) {
        self.state.borrow_mut().now = t;
    }

    /// Steps the wall clock to `t`, forward or back, as an NTP step or an
    /// operator's `date -s` does under a running Envoy: what the filter reads
    /// (`proxy_get_current_time_nanoseconds`) jumps, but Envoy's timers run on
    /// the monotonic clock, so ticks, callout timeouts and delayed replies
    /// keep the time they had left. Nothing fires. (Contrast
    /// [`Host::set_time`], which moves the wall clock and leaves timers at
    /// their old wall-clock instants.)
    pub fn step_wall_clock(&self, t: SystemTime) {
        let from = self.now();
        let shift = |x: SystemTime| -> SystemTime {
            match t.duration_since(from) {
                Ok(d) => x + d,
                Err(e) => x.checked_sub(e.duration()).unwrap_or(UNIX_EPOCH),
            }
        };
        let vms: Vec<_> = {
            let mut st = self.state.borrow_mut();
            for c in &mut st.callouts {
                if let Some((at, _)) = &mut c.scheduled {
                    *at = shift(*at);
                }
                if let Some(d) = &mut c.deadline {
                    *d = shift(*d);
                }
            }
            st.now = t;
            st.vms.iter().filter_map(std::rc::Weak::upgrade).collect()
        };
        for vm in vms {
            if let Ok(mut inner) = vm.try_borrow_mut() {
                let data = inner.data_mut();
                data.next_tick = data.next_tick.map(shift);
            }
        }
    }

    /// Moves the clock forward by `d`, firing ticks, callout timeouts and
    /// delayed upstream replies in time order (across every VM of the host).
    pub fn advance(&self, d: Duration) {
        let target = self.now() + d;
        crate::scheduler::run_until(self, target);
        self.state.borrow_mut().move_to(target);
    }

    /// Registers a cluster: callouts to it are accepted (to unknown clusters
    /// Envoy returns BadArgument). Without a responder they stay pending
    /// until the test answers them.
    pub fn cluster(&self, name: &str) -> ClusterHandle {
        self.state
            .borrow_mut()
            .clusters
            .entry(name.to_string())
            .or_insert(ClusterState { responder: None });
        ClusterHandle {
            host: self.clone(),
            name: name.to_string(),
        }
    }

    /// Removes a cluster, as a CDS update does: from now on `proxy_http_call`
    /// to it returns BadArgument (Envoy's answer for an unknown cluster) until
    /// [`Host::cluster`] adds it again. Callouts already in flight are kept.
    /// `true` if the cluster existed.
    pub fn remove_cluster(&self, name: &str) -> bool {
        self.state.borrow_mut().clusters.remove(name).is_some()
    }

    /// Fault injection: the next `n` conditional `proxy_set_shared_data`
    /// calls (CAS given, not 0) on `key` of `vm_id` lose a race with another
    /// VM, as they can in Envoy where workers run in parallel: just before
    /// each, another writer stores the entry's current value again (a new
    /// CAS), so the call returns CasMismatch. Unconditional sets are not
    /// affected and do not use up `n`.
    pub fn race_shared_data(&self, vm_id: &str, key: &str, n: usize) {
        self.state
            .borrow_mut()
            .shared_races
            .insert((vm_id.to_string(), key.to_string()), n);
    }

    /// Callouts that no one answered yet, from every VM, in dispatch order.
    pub fn pending_callouts(&self) -> Vec<Callout> {
        let st = self.state.borrow();
        st.callouts
            .iter()
            .map(|p| Callout::new(self.clone(), p))
            .collect()
    }

    /// Shared data entry of `vm_id`.
    pub fn shared_data(&self, vm_id: &str, key: &str) -> Option<SharedEntry> {
        self.state
            .borrow()
            .shared
            .get(&(vm_id.to_string(), key.to_string()))
            .cloned()
    }

    /// Sets shared data as another VM would (cas increments).
    pub fn set_shared_data(&self, vm_id: &str, key: &str, value: &[u8]) {
        let mut st = self.state.borrow_mut();
        let cas = st.take_cas();
        st.shared.insert(
            (vm_id.to_string(), key.to_string()),
            SharedEntry {
                value: value.to_vec(),
                cas,
            },
        );
    }

    /// Delivers notifications between VMs (shared queue `on_queue_ready`
    /// for a VM other than the enqueuer). Runs after every stream step and
    /// callout answer; call it yourself after driving VMs by other means.
    pub fn run_pending(&self) {
        let vms: Vec<_> = self
            .state
            .borrow()
            .vms
            .iter()
            .filter_map(|w| w.upgrade())
            .collect();
        for vm in vms {
            if let Ok(mut i) = vm.try_borrow_mut()
                && !i.store.data().pending_queue_ready.is_empty()
            {
                i.settle();
            }
        }
    }

    /// A metric by its name.
    pub fn metric(&self, name: &str) -> Option<Metric> {
        self.state.borrow().metrics.get(name).cloned()
    }

    /// Counter or gauge value by name (`None` if undefined).
    pub fn metric_value(&self, name: &str) -> Option<i64> {
        self.metric(name).map(|m| m.value)
    }

    /// Every metric defined so far.
    pub fn metrics(&self) -> BTreeMap<String, Metric> {
        self.state.borrow().metrics.clone()
    }

    /// Log lines of VMs that are gone (dropped or discarded).
    pub fn retired_logs(&self) -> Vec<crate::vm::LogLine> {
        self.state.borrow().retired_logs.clone()
    }

    pub(crate) fn vm_by_index(&self, index: usize) -> Option<Rc<RefCell<VmInner>>> {
        self.state.borrow().vms.get(index).and_then(|w| w.upgrade())
    }
}
