//! The events the agent exports, in Tetragon's JSON shape (protojson with proto field
//! names): one top-level key naming the event, plus `node_name` and `time`. Empty fields
//! are omitted, 64-bit counters are strings, timestamps are RFC 3339 with nanoseconds.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    clock::{Clock, Timestamp},
    process::{JsonCache, Process, cache::Lifecycle, flags},
    ringbuf::LossReport,
};

/// `--export-tetragon-strict`: lines carry only what Tetragon's protobuf definition has.
/// The tracer's additions (`seq`, `cgroup_id`, `script`, `host`, `policy_mode`, stack
/// traces on other events than `process_kprobe`, `process_loader`'s `policy_name`,
/// `rate_limit_info`'s `since`, the `event_loss` events, and `process_credentials`
/// without `--enable-process-cred`) are left out. Set once, at
/// the start, before any event is encoded (a process object's JSON is kept between
/// events, so the mode cannot change while the agent runs).
static TETRAGON_STRICT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns `--export-tetragon-strict` on or off (see [`TETRAGON_STRICT`]).
pub fn set_tetragon_strict(on: bool) {
    TETRAGON_STRICT.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether lines leave the tracer's additions out.
pub fn tetragon_strict() -> bool {
    TETRAGON_STRICT.load(std::sync::atomic::Ordering::Relaxed)
}

/// An addition that is absent, or left out in strict mode.
fn omit_none<T>(v: &Option<T>) -> bool {
    v.is_none() || tetragon_strict()
}

/// An addition that is empty, or left out in strict mode.
fn omit_empty<T>(v: &[T]) -> bool {
    v.is_empty() || tetragon_strict()
}

fn omit_no_env(v: &&crate::decode::EnvJson) -> bool {
    v.is_empty()
}

/// An addition that is false, or left out in strict mode.
fn omit_false(v: &bool) -> bool {
    !*v || tetragon_strict()
}

/// An addition, left out in strict mode.
fn omit_strict<T: ?Sized>(_: &T) -> bool {
    tetragon_strict()
}

/// `--enable-process-cred` and `--enable-process-ns`, as Tetragon's: what process objects
/// carry beyond the always-written fields. Set once, at the start.
pub mod process_fields {
    use std::sync::{
        OnceLock,
        atomic::{AtomicU8, Ordering},
    };

    /// `process_credentials` in full (saved and filesystem ids, `securebits`) and `cap`.
    pub const CRED: u8 = 1;
    /// `ns`.
    pub const NS: u8 = 2;

    static ENABLED: AtomicU8 = AtomicU8::new(0);
    static HOST_NS: OnceLock<[u32; tracer_common::event::NS_COUNT]> = OnceLock::new();

    /// Turns on the fields of `bits`; `host_ns` are the host's namespaces (init's), what
    /// `is_host` compares with.
    pub fn set(bits: u8, host_ns: [u32; tracer_common::event::NS_COUNT]) {
        ENABLED.store(bits, Ordering::Relaxed);
        let _ = HOST_NS.set(host_ns);
    }

    pub fn enabled(bit: u8) -> bool {
        ENABLED.load(Ordering::Relaxed) & bit != 0
    }

    pub(super) fn host_ns() -> [u32; tracer_common::event::NS_COUNT] {
        HOST_NS.get().copied().unwrap_or_default()
    }
}

/// `--cluster-name`: written as every line's `cluster_name`. Set once, at the start.
static CLUSTER_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets `--cluster-name` (the first call wins).
pub fn set_cluster_name(name: String) {
    let _ = CLUSTER_NAME.set(name);
}

/// `node_labels`: the labels of this node's Node object, where there is a cluster, as
/// the watcher (`pods::watcher`) last saw them; written at the top level of every line.
pub mod node_labels {
    use std::{
        collections::BTreeMap,
        sync::{Arc, RwLock},
    };

    static LABELS: RwLock<Option<Arc<BTreeMap<String, String>>>> = RwLock::new(None);

    /// Replaces them (none: left out).
    pub fn set(labels: BTreeMap<String, String>) {
        let labels = (!labels.is_empty()).then(|| Arc::new(labels));
        *LABELS
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = labels;
    }

    pub(super) fn get() -> Option<Arc<BTreeMap<String, String>>> {
        LABELS
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// `--enable-ancestors`: the kinds of events that carry `ancestors`, as bits of
/// [`ancestors::KINDS`]. Set once, at the start.
static ANCESTORS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// `--enable-ancestors TYPES`, as Tetragon's: `base` (exec and exit events), and with it
/// `kprobe`, `tracepoint`, `uprobe`, `lsm`, `usdt`, `loader`.
pub mod ancestors {
    /// The words of the flag, by bit.
    pub const KINDS: [&str; 7] = [
        "base",
        "kprobe",
        "tracepoint",
        "uprobe",
        "lsm",
        "usdt",
        "loader",
    ];

    /// The bits of a comma-separated list of [`KINDS`]; an error names what is wrong.
    pub fn parse(list: &str) -> Result<u8, String> {
        let mut bits = 0u8;
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let Some(i) = KINDS.iter().position(|k| *k == word) else {
                return Err(format!(
                    "--enable-ancestors: `{word}` is not an event type; the types are {}",
                    KINDS.join(", ")
                ));
            };
            bits |= 1 << i;
        }
        if bits > 1 && bits & 1 == 0 {
            return Err(
                "--enable-ancestors: the other types go with `base` (as in Tetragon): add `base`"
                    .into(),
            );
        }
        Ok(bits)
    }

    /// Turns them on for the kinds of `bits`.
    pub fn set(bits: u8) {
        super::ANCESTORS.store(bits, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether events of `kind` (a word of [`KINDS`]) carry them.
    pub fn enabled(kind: &str) -> bool {
        // Off (the default): no lookup on an event's path.
        let bits = super::ANCESTORS.load(std::sync::atomic::Ordering::Relaxed);
        bits != 0
            && KINDS
                .iter()
                .position(|k| *k == kind)
                .is_some_and(|i| bits & (1 << i) != 0)
    }

    /// The most ancestors an event carries: a guard against a cycle, far past any real
    /// process tree (Tetragon's walk has none: it stops at pid 1).
    pub const MAX: usize = 1024;
}

/// The ancestors of `process` beyond its parent, nearest first, for an event of `kind`
/// (see [`ancestors`]): as Tetragon, none for pids 1 and 2, and the walk stops at pid 1
/// (included) or at the first ancestor the cache does not know.
pub fn ancestors_of<'a>(process: &'a Process, kind: &str, clock: &Clock) -> Vec<ProcessOut<'a>> {
    let mut out = Vec::new();
    if process.pid <= 2 || !ancestors::enabled(kind) {
        return out;
    }
    let mut at = process.parent.as_deref();
    while let Some(p) = at
        && p.pid > 1
        && out.len() < ancestors::MAX
    {
        at = p.parent.as_deref();
        if let Some(a) = at {
            out.push(ProcessOut::kept(a, clock));
        }
    }
    out
}

/// The event types this agent writes: each event's top-level key ([`Event::kind`]).
pub const KINDS: [&str; 10] = [
    "process_exec",
    "process_exit",
    "process_kprobe",
    "process_tracepoint",
    "process_uprobe",
    "process_usdt",
    "process_lsm",
    "process_loader",
    "event_loss",
    "rate_limit_info",
];

/// One exported line.
#[derive(Debug)]
pub struct Event<'a> {
    pub body: Body<'a>,
    pub node_name: &'a str,
    pub time: Timestamp,
}

/// `{"<kind>": {body}, "node_name": ..., "time": ...}`, written straight out: serde's
/// `flatten` of an enum would first copy the body into a buffer of its own (tens of
/// allocations an event).
impl Serialize for Event<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let cluster = CLUSTER_NAME.get().filter(|c| !c.is_empty());
        let labels = node_labels::get();
        let mut m = s.serialize_map(Some(
            3 + usize::from(cluster.is_some()) + usize::from(labels.is_some()),
        ))?;
        m.serialize_entry(self.kind(), &self.body)?;
        m.serialize_entry("node_name", self.node_name)?;
        m.serialize_entry("time", &self.time)?;
        if let Some(c) = cluster {
            m.serialize_entry("cluster_name", c)?;
        }
        if let Some(labels) = labels {
            m.serialize_entry("node_labels", &*labels)?;
        }
        m.end()
    }
}

/// The body of each kind of event; its key is [`Event::kind`].
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Body<'a> {
    ProcessExec {
        #[serde(serialize_with = "cached_process")]
        process: ProcessOut<'a>,
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "cached_parent"
        )]
        parent: Option<ProcessOut<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "cached_list")]
        ancestors: Vec<ProcessOut<'a>>,
    },
    ProcessExit {
        #[serde(serialize_with = "cached_process")]
        process: ProcessOut<'a>,
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "cached_parent"
        )]
        parent: Option<ProcessOut<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "cached_list")]
        ancestors: Vec<ProcessOut<'a>>,
        #[serde(skip_serializing_if = "str::is_empty")]
        signal: &'static str,
        #[serde(skip_serializing_if = "is_zero")]
        status: u32,
        time: Timestamp,
    },
    /// A tracepoint hit that a policy's selector posted.
    ProcessTracepoint {
        #[serde(serialize_with = "cached_process")]
        process: ProcessOut<'a>,
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "cached_parent"
        )]
        parent: Option<ProcessOut<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "cached_list")]
        ancestors: Vec<ProcessOut<'a>>,
        subsys: &'a str,
        event: &'a str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        args: Vec<Arg<'a>>,
        policy_name: &'a str,
        action: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        tags: &'a [String],
        /// `monitor` when the policy is in monitor mode: `action` says what would have
        /// been done, and was not (not in Tetragon).
        /// Kernel and user stack traces (`kernelStackTrace`, `userStackTrace`); on a
        /// `process_tracepoint` an extension: Tetragon's has them on `process_kprobe` only.
        #[serde(skip_serializing_if = "omit_empty")]
        kernel_stack_trace: Vec<StackEntry>,
        #[serde(skip_serializing_if = "omit_empty")]
        user_stack_trace: Vec<StackEntry>,
        #[serde(skip_serializing_if = "omit_none")]
        policy_mode: Option<&'static str>,
    },
    /// A kprobe policy's hit (run on a tracepoint where `hook` says so).
    ProcessKprobe {
        #[serde(serialize_with = "cached_process")]
        process: ProcessOut<'a>,
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "cached_parent"
        )]
        parent: Option<ProcessOut<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "cached_list")]
        ancestors: Vec<ProcessOut<'a>>,
        function_name: &'a str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        args: Vec<Arg<'a>>,
        /// A return probe's return value.
        #[serde(rename = "return", skip_serializing_if = "Option::is_none")]
        ret: Option<Arg<'a>>,
        action: &'static str,
        /// The kernel stack trace (`kernelStackTrace`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        kernel_stack_trace: Vec<StackEntry>,
        policy_name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        tags: &'a [String],
        /// The user stack trace (`userStackTrace`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        user_stack_trace: Vec<StackEntry>,
        #[serde(skip_serializing_if = "omit_none")]
        policy_mode: Option<&'static str>,
    },
    /// A uprobe policy's hit: a function of a binary was called.
    ProcessUprobe {
        #[serde(serialize_with = "cached_process")]
        process: ProcessOut<'a>,
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "cached_parent"
        )]
        parent: Option<ProcessOut<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "cached_list")]
        ancestors: Vec<ProcessOut<'a>>,
        /// The binary, as the policy names it.
        path: &'a str,
        /// The function, where the policy names one ...
        #[serde(skip_serializing_if = "str::is_empty")]
        symbol: &'a str,
        /// ... else the probed instruction's file offset.
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ref_ctr_offset: Option<String>,
        policy_name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        args: Vec<Arg<'a>>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        tags: &'a [String],
        action: &'static str,
        /// Kernel and user stack traces (`kernelStackTrace`, `userStackTrace`); on a
        /// `process_uprobe` an extension: Tetragon's has them on `process_kprobe` only.
        #[serde(skip_serializing_if = "omit_empty")]
        kernel_stack_trace: Vec<StackEntry>,
        #[serde(skip_serializing_if = "omit_empty")]
        user_stack_trace: Vec<StackEntry>,
        #[serde(skip_serializing_if = "omit_none")]
        policy_mode: Option<&'static str>,
    },
    /// An LSM hook policy's hit (`spec.lsmhooks`).
    ProcessLsm {
        #[serde(serialize_with = "cached_process")]
        process: ProcessOut<'a>,
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "cached_parent"
        )]
        parent: Option<ProcessOut<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "cached_list")]
        ancestors: Vec<ProcessOut<'a>>,
        function_name: &'a str,
        policy_name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        args: Vec<Arg<'a>>,
        action: &'static str,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        tags: &'a [String],
        /// Kernel and user stack traces (`kernelStackTrace`, `userStackTrace`); on a
        /// `process_lsm` an extension: Tetragon's has them on `process_kprobe` only.
        #[serde(skip_serializing_if = "omit_empty")]
        kernel_stack_trace: Vec<StackEntry>,
        #[serde(skip_serializing_if = "omit_empty")]
        user_stack_trace: Vec<StackEntry>,
        #[serde(skip_serializing_if = "omit_none")]
        policy_mode: Option<&'static str>,
    },
    /// A USDT policy's hit: a binary's probe point was passed.
    ProcessUsdt {
        #[serde(serialize_with = "cached_process")]
        process: ProcessOut<'a>,
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "cached_parent"
        )]
        parent: Option<ProcessOut<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "cached_list")]
        ancestors: Vec<ProcessOut<'a>>,
        path: &'a str,
        provider: &'a str,
        name: &'a str,
        policy_name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        args: Vec<Arg<'a>>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        tags: &'a [String],
        action: &'static str,
        /// Kernel and user stack traces (`kernelStackTrace`, `userStackTrace`); on a
        /// `process_usdt` an extension: Tetragon's has them on `process_kprobe` only.
        #[serde(skip_serializing_if = "omit_empty")]
        kernel_stack_trace: Vec<StackEntry>,
        #[serde(skip_serializing_if = "omit_empty")]
        user_stack_trace: Vec<StackEntry>,
        #[serde(skip_serializing_if = "omit_none")]
        policy_mode: Option<&'static str>,
    },
    /// An executable mapping of a file (a binary, ld.so, a shared library) by a process,
    /// for a `loader: true` policy; fields in Tetragon's order (`ProcessLoader`).
    ProcessLoader {
        #[serde(serialize_with = "cached_process")]
        process: ProcessOut<'a>,
        /// The mapped file, as the kernel names it.
        path: &'a str,
        /// Its GNU build id, base64 (protojson's `bytes`).
        buildid: &'a str,
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "cached_parent"
        )]
        parent: Option<ProcessOut<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "cached_list")]
        ancestors: Vec<ProcessOut<'a>>,
        /// Not in Tetragon's `ProcessLoader`: the policy, as the other policy events have.
        #[serde(skip_serializing_if = "omit_strict")]
        policy_name: &'a str,
    },
    /// Events lost since the last report of the same place: records the kernel could
    /// not hand over (the ring buffer was full), malformed records, or events a sink
    /// could not take (a full disk, a collector down past its queue): visibility was
    /// lost, and the stream says how much, where and since when.
    EventLoss {
        /// `ring_buffer`, `mappings` (the perf rings of `process_loader`), `decode`, or
        /// the sink: `stdout`, `export_file`, `otlp`.
        #[serde(rename = "where")]
        place: &'static str,
        /// Why, and what to do about it.
        reason: String,
        /// Lost in this report, per kind (the kernel's record kinds, `exec`, ..., or the
        /// event types of a sink, `process_exec`, ...).
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        lost: BTreeMap<String, String>,
        /// Lost in this report.
        count: String,
        /// Lost at this place since the agent started.
        total_lost: String,
        /// The start of the period this report covers (the previous report, or the
        /// agent's start).
        since: String,
    },
    /// Events `--export-rate-limit` left out since the last such report (Tetragon's).
    RateLimitInfo {
        number_of_dropped_process_events: String,
        /// The start of the period (the previous report, or the agent's start); not in
        /// Tetragon.
        #[serde(skip_serializing_if = "omit_strict")]
        since: String,
    },
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl<'a> Event<'a> {
    /// The process objects of the event (`process`, `parent`), for the pod enrichment
    /// stage (`pods`).
    pub fn processes_mut(&mut self) -> impl Iterator<Item = &mut ProcessOut<'a>> {
        let (process, parent, ancestors) = match &mut self.body {
            Body::ProcessExec {
                process,
                parent,
                ancestors,
            }
            | Body::ProcessExit {
                process,
                parent,
                ancestors,
                ..
            }
            | Body::ProcessTracepoint {
                process,
                parent,
                ancestors,
                ..
            }
            | Body::ProcessKprobe {
                process,
                parent,
                ancestors,
                ..
            }
            | Body::ProcessUprobe {
                process,
                parent,
                ancestors,
                ..
            }
            | Body::ProcessUsdt {
                process,
                parent,
                ancestors,
                ..
            }
            | Body::ProcessLsm {
                process,
                parent,
                ancestors,
                ..
            }
            | Body::ProcessLoader {
                process,
                parent,
                ancestors,
                ..
            } => (Some(process), parent.as_mut(), ancestors.as_mut_slice()),
            Body::EventLoss { .. } | Body::RateLimitInfo { .. } => (None, None, &mut [][..]),
        };
        process
            .into_iter()
            .chain(parent)
            .chain(ancestors.iter_mut())
    }
}

/// A process object (`process`, `parent`).
#[derive(Debug, Serialize)]
pub struct ProcessOut<'a> {
    pub exec_id: &'a str,
    pub pid: u32,
    pub uid: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub cwd: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub binary: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub arguments: &'a str,
    #[serde(skip_serializing_if = "flags::Words::is_empty")]
    pub flags: flags::Words,
    /// Left out when the process's start was not seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    pub auid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_exec_id: Option<&'a str>,
    pub tid: u32,
    /// Always, but in strict mode only with `--enable-process-cred` (Tetragon's rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_credentials: Option<CredsOut>,
    /// In a `process_exec` only: a set-user-ID or set-group-ID file, file capabilities
    /// (`--enable-process-cred`), a binary with no link on disk (always).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary_properties: Option<BinaryPropertiesOut>,
    /// `--enable-process-environment-variables`: the environment at its exec.
    #[serde(skip_serializing_if = "omit_no_env")]
    pub environment_variables: &'a crate::decode::EnvJson,
    /// `--enable-process-cred`: the capability sets by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<CapsOut>,
    /// `--enable-process-ns`: each namespace's inode, and whether it is the host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns: Option<NsOut>,
    /// cgroup v2 id (the key pods are found by); a 64-bit counter, so a string. Not in
    /// Tetragon.
    #[serde(skip_serializing_if = "omit_none")]
    pub cgroup_id: Option<Decimal>,
    /// The same, for the enrichment stage.
    #[serde(skip)]
    pub cgroup: u64,
    /// The pid in the process's own pid namespace, for the pod's `container.pid`.
    #[serde(skip)]
    pub ns_pid: u32,
    /// The container's id, its first 31 characters (Tetragon's `docker`), set by the pod
    /// enrichment stage (`pods`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<String>,
    /// `{"name": ...}`: the user's name in the host's user database (`process::users`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserOut<'a>>,
    /// In the tree of its pid namespace's init ([`flags::IN_INIT_TREE`]); a wrapper in
    /// the proto, written when false too, as Tetragon writes it.
    pub in_init_tree: bool,
    /// The pod, set by the pod enrichment stage where there is a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<std::sync::Arc<crate::pods::pod::PodOut>>,
    /// Where there is a cluster: the process runs in no container (not in Tetragon).
    #[serde(skip_serializing_if = "omit_false")]
    pub host: bool,
    /// For a `#!` script, its absolute path (`binary` is the interpreter); not in
    /// Tetragon.
    #[serde(skip_serializing_if = "omit_none")]
    pub script: Option<&'a str>,
    /// The pod enrichment it was given, as a key (`pods`): 0 for none. The process's
    /// JSON kept from an earlier event serves only the same enrichment.
    #[serde(skip)]
    pub enrichment: u64,
    /// Where the process keeps its JSON object between events.
    #[serde(skip)]
    pub json: Option<&'a JsonCache>,
    /// Whether this event keeps the object in the cache when it is not there: a
    /// `parent` (a process with children is written for each of their events) and the
    /// process of a policy event do; a process's own exec and exit use it only.
    #[serde(skip)]
    pub keep_json: bool,
}

impl ProcessOut<'_> {
    /// Writes the object, copied from the process's cache when an earlier event wrote it
    /// with the same enrichment.
    fn write<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.json {
            Some(cache) => cache.write(self.enrichment, self.keep_json, self, s),
            None => self.serialize(s),
        }
    }
}

fn cached_process<S: serde::Serializer>(p: &ProcessOut<'_>, s: S) -> Result<S::Ok, S::Error> {
    p.write(s)
}

fn cached_parent<S: serde::Serializer>(
    p: &Option<ProcessOut<'_>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(&Cached(p)),
        None => s.serialize_none(),
    }
}

fn cached_list<S: serde::Serializer>(list: &[ProcessOut<'_>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(Cached))
}

/// A process object written through its cache.
struct Cached<'p, 'a>(&'p ProcessOut<'a>);

impl Serialize for Cached<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.write(s)
    }
}

/// Tetragon's `BinaryProperties`: `setuid`/`setgid` are wrappers (written at 0 too),
/// the inode's number a 64-bit integer (a string), its `links` a wrapper.
#[derive(Debug, Serialize)]
pub struct BinaryPropertiesOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setuid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setgid: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub privileges_changed: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FilePropertiesOut>,
}

#[derive(Debug, Serialize)]
pub struct FilePropertiesOut {
    pub inode: InodeOut,
}

#[derive(Debug, Serialize)]
pub struct InodeOut {
    pub number: Decimal,
    pub links: u32,
}

impl BinaryPropertiesOut {
    fn of(b: &crate::process::BinaryProperties) -> Option<Self> {
        (!b.is_empty()).then(|| Self {
            setuid: b.setuid,
            setgid: b.setgid,
            privileges_changed: b.privileges_changed.clone(),
            file: b.unlinked_inode.map(|number| FilePropertiesOut {
                inode: InodeOut {
                    number: Decimal(number.into()),
                    links: 0,
                },
            }),
        })
    }
}

/// Tetragon's `UserRecord`.
#[derive(Debug, Serialize)]
pub struct UserOut<'a> {
    pub name: &'a str,
}

/// `process_credentials`: the four ids always; with `--enable-process-cred` the saved and
/// filesystem ids and `securebits` too, as Tetragon's (wrappers: written at 0 too).
#[derive(Debug, Serialize)]
pub struct CredsOut {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sgid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsuid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsgid: Option<u32>,
    #[serde(skip_serializing_if = "SecureBits::is_empty")]
    pub securebits: SecureBits,
}

/// Tetragon's `Capabilities`: each set by the names of its `CapabilitiesType` enum.
#[derive(Debug, Serialize)]
pub struct CapsOut {
    #[serde(skip_serializing_if = "CapNames::is_empty")]
    pub permitted: CapNames,
    #[serde(skip_serializing_if = "CapNames::is_empty")]
    pub effective: CapNames,
    #[serde(skip_serializing_if = "CapNames::is_empty")]
    pub inheritable: CapNames,
}

/// A capability set, written as the list of its names (Tetragon's enum) while the line
/// is encoded: nothing is built for a process object whose JSON is already cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapNames(pub u64);

impl CapNames {
    fn names(self) -> impl Iterator<Item = &'static str> {
        use crate::policy::validate::names::CAPABILITIES;
        CAPABILITIES
            .iter()
            .enumerate()
            .filter(move |(bit, _)| self.0 & (1u64 << bit) != 0)
            .map(|(bit, name)| proto_capability(bit, name))
    }

    fn is_empty(&self) -> bool {
        self.names().next().is_none()
    }
}

impl Serialize for CapNames {
    /// A node has few distinct sets (root's full one, a container runtime's default):
    /// each is encoded once and copied after, as process objects are (`JsonCache`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde_json::value::RawValue;
        /// Sets kept, the oldest replaced first.
        const KEPT: usize = 16;
        /// The next to replace, and the sets kept with their JSON.
        type Kept = (usize, Vec<(u64, Box<RawValue>)>);
        thread_local! {
            static ENCODED: std::cell::RefCell<Kept> =
                const { std::cell::RefCell::new((0, Vec::new())) };
        }
        ENCODED.with_borrow_mut(|(next, kept)| {
            if let Some((_, json)) = kept.iter().find(|(set, _)| *set == self.0) {
                return json.serialize(s);
            }
            let json = serde_json::value::to_raw_value(&Names(*self))
                .map_err(serde::ser::Error::custom)?;
            let r = json.serialize(s);
            if kept.len() < KEPT {
                kept.push((self.0, json));
            } else {
                kept[*next] = (self.0, json);
                *next = (*next + 1) % KEPT;
            }
            r
        })
    }
}

/// A capability set's names, encoded.
struct Names(CapNames);

impl Serialize for Names {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.names())
    }
}

/// `securebits`, written as the list of their names (Tetragon's `SecureBitsType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecureBits(pub u32);

impl SecureBits {
    fn names(self) -> impl Iterator<Item = &'static str> {
        // include/uapi/linux/securebits.h, by bit.
        const SECUREBITS: [&str; 8] = [
            "SecBitNoRoot",
            "SecBitNoRootLocked",
            "SecBitNoSetUidFixup",
            "SecBitNoSetUidFixupLocked",
            "SecBitKeepCaps",
            "SecBitKeepCapsLocked",
            "SecBitNoCapAmbientRaise",
            "SecBitNoCapAmbientRaiseLocked",
        ];
        SECUREBITS
            .iter()
            .enumerate()
            .filter(move |(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, name)| *name)
    }

    fn is_empty(&self) -> bool {
        self.names().next().is_none()
    }
}

impl Serialize for SecureBits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// Tetragon's `Namespaces`: by name, `{"inum": ..., "is_host": ...}`; a namespace the
/// kernel does not have (time before Linux 5.6) is left out.
#[derive(Debug)]
pub struct NsOut([u32; tracer_common::event::NS_COUNT]);

impl Serialize for NsOut {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        #[derive(Serialize)]
        struct One {
            inum: u32,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            is_host: bool,
        }
        let host = process_fields::host_ns();
        let mut m = s.serialize_map(None)?;
        for (i, name) in crate::process::procfs::NS_FILES.iter().enumerate() {
            if self.0[i] != 0 {
                m.serialize_entry(
                    name,
                    &One {
                        inum: self.0[i],
                        is_host: host[i] == self.0[i],
                    },
                )?;
            }
        }
        m.end()
    }
}

impl<'a> ProcessOut<'a> {
    pub fn new(p: &'a Process, clock: &Clock) -> Self {
        let known = p.flags & flags::MISS == 0;
        ProcessOut {
            exec_id: &p.exec_id,
            pid: p.pid,
            uid: p.creds.uid,
            cwd: &p.cwd,
            binary: &p.binary,
            arguments: &p.arguments,
            flags: flags::Words(p.flags),
            start_time: known.then(|| clock.timestamp(p.ktime_ns, p.boottime)),
            auid: p.auid,
            parent_exec_id: p.parent_exec_id(),
            tid: p.tid,
            process_credentials: {
                let c = &p.creds;
                let full = process_fields::enabled(process_fields::CRED);
                (full || !tetragon_strict()).then(|| CredsOut {
                    uid: c.uid,
                    gid: c.gid,
                    euid: c.euid,
                    egid: c.egid,
                    suid: full.then_some(c.suid),
                    sgid: full.then_some(c.sgid),
                    fsuid: full.then_some(c.fsuid),
                    fsgid: full.then_some(c.fsgid),
                    securebits: SecureBits(if full { c.securebits } else { 0 }),
                })
            },
            binary_properties: None,
            environment_variables: &p.env,
            cap: p
                .creds
                .caps
                .filter(|_| process_fields::enabled(process_fields::CRED))
                .map(|[effective, permitted, inheritable]| CapsOut {
                    permitted: CapNames(permitted),
                    effective: CapNames(effective),
                    inheritable: CapNames(inheritable),
                }),
            ns: (process_fields::enabled(process_fields::NS) && p.ns.iter().any(|&n| n != 0))
                .then_some(NsOut(p.ns)),
            cgroup_id: (p.cgroup_id != 0).then(|| Decimal(p.cgroup_id.into())),
            cgroup: p.cgroup_id,
            ns_pid: p.ns_pid,
            docker: None,
            user: p.user.as_deref().map(|name| UserOut { name }),
            in_init_tree: p.flags & flags::IN_INIT_TREE != 0,
            pod: None,
            host: false,
            script: p.script.as_deref(),
            enrichment: 0,
            json: Some(&p.json),
            keep_json: false,
        }
    }

    /// With an exec's binary properties: an object of this event alone, not cached.
    pub fn with_binary_properties(mut self, b: &crate::process::BinaryProperties) -> Self {
        self.binary_properties = BinaryPropertiesOut::of(b);
        if self.binary_properties.is_some() {
            self.json = None;
        }
        self
    }

    /// The same, keeping its JSON in the process's cache (see `keep_json`).
    pub fn kept(p: &'a Process, clock: &Clock) -> Self {
        Self {
            keep_json: true,
            ..Self::new(p, clock)
        }
    }
}

/// The name of a signal number, as Tetragon writes it (`SIGKILL`).
pub fn signal_name(sig: u32) -> &'static str {
    i32::try_from(sig)
        .ok()
        .and_then(|s| nix::sys::signal::Signal::try_from(s).ok())
        .map_or("", |s| s.as_str())
}

/// Splits the kernel's exit code into (status, signal name).
pub fn exit_status(exit_code: u32) -> (u32, &'static str) {
    let signal = exit_code & 0x7f;
    (
        (exit_code >> 8) & 0xff,
        if signal == 0 { "" } else { signal_name(signal) },
    )
}

/// The event of a lifecycle change.
pub fn lifecycle<'a>(l: &'a Lifecycle, node: &'a str, clock: &Clock) -> Event<'a> {
    match l {
        Lifecycle::Exec { process, binary } => Event {
            body: Body::ProcessExec {
                process: ProcessOut::new(process, clock).with_binary_properties(binary),
                parent: process
                    .parent
                    .as_deref()
                    .map(|p| ProcessOut::kept(p, clock)),
                ancestors: ancestors_of(process, "base", clock),
            },
            node_name: node,
            time: clock.timestamp(process.ktime_ns, false),
        },
        Lifecycle::Exit {
            process,
            exit_code,
            ktime_ns,
        } => {
            let (status, signal) = exit_status(*exit_code);
            let time = clock.timestamp(*ktime_ns, false);
            Event {
                body: Body::ProcessExit {
                    process: ProcessOut::new(process, clock),
                    parent: process
                        .parent
                        .as_deref()
                        .map(|p| ProcessOut::kept(p, clock)),
                    ancestors: ancestors_of(process, "base", clock),
                    signal,
                    status,
                    time,
                },
                node_name: node,
                time,
            }
        }
    }
}

/// Tetragon's name of the action a selector took (`actions`: its `ACTION_*` bits, and
/// its socket action in bits 16 to 23).
pub fn action_name(actions: u32) -> &'static str {
    use tracer_common::policy::{
        ACTION_DNSLOOKUP, ACTION_GETURL, ACTION_NOTIFY_ENFORCER, ACTION_OVERRIDE, ACTION_SET,
        ACTION_SIGKILL, ACTION_SIGNAL, SOCK_RETURN, SOCK_TRACK, SOCK_UNTRACK,
    };
    let sock = (actions >> 16) as u8;
    let sock = if sock & SOCK_RETURN != 0 { 0 } else { sock };
    if actions & u32::from(ACTION_SIGKILL) != 0 {
        "KPROBE_ACTION_SIGKILL"
    } else if actions & u32::from(ACTION_OVERRIDE) != 0 {
        "KPROBE_ACTION_OVERRIDE"
    } else if actions & u32::from(ACTION_SIGNAL) != 0 {
        "KPROBE_ACTION_SIGNAL"
    } else if actions & u32::from(ACTION_GETURL) != 0 {
        "KPROBE_ACTION_GETURL"
    } else if actions & u32::from(ACTION_DNSLOOKUP) != 0 {
        "KPROBE_ACTION_DNSLOOKUP"
    } else if actions & u32::from(ACTION_NOTIFY_ENFORCER) != 0 {
        "KPROBE_ACTION_NOTIFYENFORCER"
    } else if actions & u32::from(ACTION_SET) != 0 {
        "KPROBE_ACTION_SET"
    } else if sock & SOCK_TRACK != 0 {
        "KPROBE_ACTION_TRACKSOCK"
    } else if sock & SOCK_UNTRACK != 0 {
        "KPROBE_ACTION_UNTRACKSOCK"
    } else {
        "KPROBE_ACTION_POST"
    }
}

/// One argument of a policy event as Tetragon writes it, `{"int_arg": -2}` with its
/// `label` if the policy gave one. Numbers are written straight out (no JSON value is
/// built for them), strings and paths hold their one string.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg<'a> {
    pub value: ArgOut,
    pub label: Option<&'a str>,
}

/// The value of an [`Arg`], under its Tetragon key.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgOut {
    /// `int_arg`.
    Int(i32),
    /// `uint_arg`.
    Uint(u32),
    /// `long_arg`, a 64-bit number: a string.
    Long(i64),
    /// `size_arg`, a string.
    Size(u64),
    /// `syscall_id`: a syscall's number, its 32-bit ABI marked by bit 31.
    SyscallId(u64),
    /// `string_arg`.
    String(String),
    /// `file_arg`, `path_arg`, `linux_binprm_arg`: `{"path": ...}`.
    Path { key: &'static str, path: String },
    /// `bytes_arg` (base64), or `truncated_bytes_arg` with `orig_size` when it was cut.
    Bytes {
        base64: String,
        orig_size: Option<u64>,
    },
    /// `sock_arg`, `skb_arg`, `cred_arg`: objects of many fields.
    Object {
        key: &'static str,
        value: serde_json::Value,
    },
}

impl Serialize for Arg<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        #[derive(Serialize)]
        struct PathArg<'p> {
            path: &'p str,
        }
        #[derive(Serialize)]
        struct Truncated<'b> {
            bytes_arg: &'b str,
            orig_size: Decimal,
        }
        let mut m = s.serialize_map(Some(1 + usize::from(self.label.is_some())))?;
        match &self.value {
            ArgOut::Int(v) => m.serialize_entry("int_arg", v)?,
            ArgOut::Uint(v) => m.serialize_entry("uint_arg", v)?,
            ArgOut::Long(v) => m.serialize_entry("long_arg", &Decimal(i128::from(*v)))?,
            ArgOut::Size(v) => m.serialize_entry("size_arg", &Decimal(i128::from(*v)))?,
            ArgOut::SyscallId(v) => m.serialize_entry("syscall_id", &SyscallId::of(*v))?,
            ArgOut::String(v) => m.serialize_entry("string_arg", v)?,
            ArgOut::Path { key, path } => m.serialize_entry(key, &PathArg { path })?,
            ArgOut::Bytes {
                base64,
                orig_size: None,
            } => m.serialize_entry("bytes_arg", base64)?,
            ArgOut::Bytes {
                base64,
                orig_size: Some(n),
            } => m.serialize_entry(
                "truncated_bytes_arg",
                &Truncated {
                    bytes_arg: base64,
                    orig_size: Decimal(i128::from(*n)),
                },
            )?,
            ArgOut::Object { key, value } => m.serialize_entry(
                key,
                &Message {
                    value,
                    wrappers: wrapper_fields(key),
                },
            )?,
        }
        if let Some(label) = self.label {
            m.serialize_entry("label", label)?;
        }
        m.end()
    }
}

/// The fields of an argument's message (by its key) that are wrappers
/// (`google.protobuf.UInt32Value` and such): protojson writes them whenever they are set,
/// zero too.
fn wrapper_fields(key: &str) -> &'static [&'static str] {
    match key {
        "process_credentials_arg" => &[
            "uid", "gid", "euid", "egid", "suid", "sgid", "fsuid", "fsgid",
        ],
        "capability_arg" => &["value"],
        "user_namespace_arg" => &["level", "owner", "group"],
        "user_ns_arg" | "user_ns" => &["level", "uid", "gid"],
        "module_arg" => &["signature_ok"],
        _ => &[],
    }
}

/// An object argument as protojson writes a message: fields at their zero value (0,
/// `""`, false, an empty list) left out, but for its wrapper fields.
struct Message<'v> {
    value: &'v serde_json::Value,
    wrappers: &'static [&'static str],
}

impl Serialize for Message<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap as _, SerializeSeq as _};
        use serde_json::Value;
        let zero = |v: &Value| match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(t) => t.is_empty() || t == "0",
            Value::Array(a) => a.is_empty(),
            Value::Object(_) => false,
        };
        match self.value {
            Value::Object(fields) => {
                let mut m = s.serialize_map(None)?;
                for (k, v) in fields {
                    if zero(v) && !self.wrappers.contains(&k.as_str()) {
                        continue;
                    }
                    m.serialize_entry(
                        k,
                        &Message {
                            value: v,
                            wrappers: wrapper_fields(k),
                        },
                    )?;
                }
                m.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Message {
                        value: v,
                        wrappers: &[],
                    })?;
                }
                seq.end()
            }
            v => v.serialize(s),
        }
    }
}

/// A number written as a JSON string, as protojson writes 64-bit integers, without
/// building the string first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal(pub i128);

impl Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(itoa::Buffer::new().format(self.0))
    }
}

/// One frame of a stack trace, as Tetragon's `StackTraceEntry`: the `symbol` the
/// address falls in, the `offset` into it, the `module` (the mapped file, for a user
/// address), and the `address` itself only with `--expose-stack-addresses`. Empty
/// fields are left out and 64-bit numbers are strings, as protojson writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackEntry {
    pub address: Option<u64>,
    pub offset: u64,
    pub symbol: String,
    pub module: String,
}

impl Serialize for StackEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let address = self.address.filter(|a| *a != 0);
        let len = usize::from(address.is_some())
            + usize::from(self.offset != 0)
            + usize::from(!self.symbol.is_empty())
            + usize::from(!self.module.is_empty());
        let mut m = s.serialize_map(Some(len))?;
        if let Some(a) = address {
            m.serialize_entry("address", &Decimal(i128::from(a)))?;
        }
        if self.offset != 0 {
            m.serialize_entry("offset", &Decimal(i128::from(self.offset)))?;
        }
        if !self.symbol.is_empty() {
            m.serialize_entry("symbol", &self.symbol)?;
        }
        if !self.module.is_empty() {
            m.serialize_entry("module", &self.module)?;
        }
        m.end()
    }
}

/// The typed arguments of a tracepoint event, as Tetragon writes them.
pub fn tracepoint_args<'a>(
    ev: &tracer_common::policy::TracepointEvent,
    metas: &'a [crate::policy::compile::ArgMeta],
) -> Vec<Arg<'a>> {
    use crate::policy::compile::ArgOut as Meta;
    metas
        .iter()
        .zip(ev.args.iter())
        .take(ev.nargs as usize)
        .map(|(meta, v)| {
            let n = (v.len as usize).min(v.str.len());
            let text = || String::from_utf8_lossy(&v.str[..n]).into_owned();
            let value = match meta.out {
                Meta::Int => ArgOut::Int(v.int as i64 as i32),
                Meta::Uint => ArgOut::Uint(v.int as u32),
                Meta::Long => ArgOut::Long(v.int as i64),
                Meta::Size => ArgOut::Size(v.int),
                Meta::SyscallId => ArgOut::SyscallId(v.int),
                Meta::String => ArgOut::String(text()),
                Meta::Sock => ArgOut::Object {
                    key: "sock_arg",
                    value: sock_arg(v),
                },
                Meta::Skb => ArgOut::Object {
                    key: "skb_arg",
                    value: skb_arg(v),
                },
                Meta::File => ArgOut::Path {
                    key: "file_arg",
                    path: text(),
                },
                Meta::Path => ArgOut::Path {
                    key: "path_arg",
                    path: text(),
                },
                Meta::LinuxBinprm => ArgOut::Path {
                    key: "linux_binprm_arg",
                    path: text(),
                },
                Meta::Cred => ArgOut::Object {
                    key: "process_credentials_arg",
                    value: cred_arg(v),
                },
                Meta::Sockaddr => ArgOut::Object {
                    key: "sockaddr_arg",
                    value: sockaddr_arg(v),
                },
                Meta::Capability => ArgOut::Object {
                    key: "capability_arg",
                    value: capability_arg(v.int as i64 as i32),
                },
                Meta::Struct(t) => {
                    let (key, value) = t.to_json(&v.str[..n]);
                    match value {
                        serde_json::Value::String(s) if key == "string_arg" => ArgOut::String(s),
                        value => ArgOut::Object { key, value },
                    }
                }
                Meta::Bytes => {
                    use base64::Engine as _;
                    ArgOut::Bytes {
                        base64: base64::engine::general_purpose::STANDARD.encode(&v.str[..n]),
                        orig_size: (v.int > n as u64).then_some(v.int),
                    }
                }
            };
            Arg {
                value,
                label: meta.label.as_deref(),
            }
        })
        .collect()
}

/// A capability as a value of Tetragon's `CapabilitiesType` enum: its name, but for
/// `CAP_DAC_OVERRIDE`, which the enum calls `DAC_OVERRIDE` (and Tetragon writes so).
fn proto_capability(bit: usize, name: &'static str) -> &'static str {
    if bit == 1 { "DAC_OVERRIDE" } else { name }
}

/// A syscall number as Tetragon's `syscall_id`: the number, and the ABI, the 32-bit one
/// where bit 31 is set (`__ia32_` syscalls in lists; `i386` on x86_64). Written straight
/// out: a `raw_syscalls` policy writes one an event.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct SyscallId {
    id: u32,
    abi: &'static str,
}

impl SyscallId {
    fn of(v: u64) -> Self {
        use crate::policy::validate::COMPAT_SYSCALL_BIT;
        let compat = v & u64::from(COMPAT_SYSCALL_BIT) != 0;
        let abi = match (std::env::consts::ARCH, compat) {
            ("x86_64", false) => "x64",
            ("x86_64", true) => "i386",
            ("aarch64", false) => "arm64",
            ("aarch64", true) => "arm32",
            _ => "unknown",
        };
        SyscallId {
            id: (v & !u64::from(COMPAT_SYSCALL_BIT)) as u32,
            abi,
        }
    }
}

/// A `cred` argument as Tetragon's `process_credentials_arg` (`ProcessCredentials`): the
/// ids, `securebits` and the capability sets by name.
fn cred_arg(v: &tracer_common::policy::ArgValue) -> serde_json::Value {
    let c = crate::decode::cred_value(v);
    let caps = CapNames;
    let securebits = SecureBits(c.securebits);
    serde_json::json!({
        "uid": c.uid,
        "gid": c.gid,
        "euid": c.euid,
        "egid": c.egid,
        "suid": c.suid,
        "sgid": c.sgid,
        "fsuid": c.fsuid,
        "fsgid": c.fsgid,
        "securebits": securebits,
        "caps": {
            "permitted": caps(c.cap_permitted),
            "effective": caps(c.cap_effective),
            "inheritable": caps(c.cap_inheritable),
        },
    })
}

/// A packet argument as Tetragon's `skb_arg`: the family and protocol, the addresses and
/// ports of its IP and TCP or UDP headers, and its length.
fn skb_arg(v: &tracer_common::policy::ArgValue) -> serde_json::Value {
    let mut out = sock_arg(v);
    if let serde_json::Value::Object(m) = &mut out {
        let s = crate::decode::sock_value(v);
        for k in ["cookie", "state", "type"] {
            m.remove(k);
        }
        m.insert("len".into(), s.word.into());
    }
    out
}

/// A `sockaddr` argument as Tetragon's `sockaddr_arg`: its family by name, and for an
/// IPv4 or IPv6 address the address and port (the kernel program writes them as a
/// socket's source).
fn sockaddr_arg(v: &tracer_common::policy::ArgValue) -> serde_json::Value {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let s = crate::decode::sock_value(v);
    let a = s.saddr;
    let addr = match s.family {
        2 => Ipv4Addr::new(a[12], a[13], a[14], a[15]).to_string(),
        10 => Ipv6Addr::from(a).to_string(),
        _ => String::new(),
    };
    let mut out = serde_json::json!({ "family": crate::policy::sock::family_name(s.family) });
    if !addr.is_empty() {
        out["addr"] = addr.into();
        out["port"] = s.sport.into();
    }
    out
}

/// A capability number as Tetragon's `capability_arg`: the number and its name.
fn capability_arg(cap: i32) -> serde_json::Value {
    use crate::policy::validate::names::CAPABILITIES;
    let mut out = serde_json::json!({ "value": cap });
    if let Some(name) = usize::try_from(cap).ok().and_then(|c| CAPABILITIES.get(c)) {
        out["name"] = (*name).into();
    }
    out
}

/// A socket argument as Tetragon's `sock_arg`: names for the family, type, protocol
/// and state, addresses as text, the socket's kernel address as its `cookie`.
fn sock_arg(v: &tracer_common::policy::ArgValue) -> serde_json::Value {
    use crate::policy::sock;
    use std::net::{Ipv4Addr, Ipv6Addr};
    let s = crate::decode::sock_value(v);
    let addr = |a: [u8; 16]| {
        let v6 = Ipv6Addr::from(a);
        if s.family == 2 {
            Ipv4Addr::new(a[12], a[13], a[14], a[15]).to_string()
        } else {
            v6.to_string()
        }
    };
    let ty = match s.protocol {
        6 => Some("SOCK_STREAM"),
        17 => Some("SOCK_DGRAM"),
        _ => None,
    };
    let mut out = serde_json::json!({
        "family": sock::family_name(s.family),
        "protocol": sock::protocol_name(s.protocol),
        "saddr": addr(s.saddr),
        "daddr": addr(s.daddr),
        "sport": s.sport,
        "dport": s.dport,
        "cookie": v.int.to_string(),
        "state": sock::state_name(s.state),
    });
    if let (Some(ty), serde_json::Value::Object(m)) = (ty, &mut out) {
        m.insert("type".into(), ty.into());
    }
    out
}

/// The event of a tracepoint hit.
pub fn tracepoint<'a>(
    ev: &tracer_common::policy::TracepointEvent,
    process: &'a Process,
    policy: &'a crate::policy::compile::Compiled,
    hook: &'a crate::policy::compile::Hook,
    node: &'a str,
    clock: &Clock,
) -> Event<'a> {
    use tracer_common::policy::EVENT_MONITOR;
    let policy_mode = (ev.flags & EVENT_MONITOR != 0).then_some("monitor");
    let parent = || {
        process
            .parent
            .as_deref()
            .map(|p| ProcessOut::kept(p, clock))
    };
    if let Some(h) = &hook.lsm {
        return Event {
            body: Body::ProcessLsm {
                process: ProcessOut::kept(process, clock),
                parent: parent(),
                ancestors: ancestors_of(process, "lsm", clock),
                function_name: h,
                policy_name: &policy.name,
                message: hook.message.as_deref(),
                args: tracepoint_args(ev, &hook.args),
                action: action_name(ev.action),
                tags: &hook.tags,
                kernel_stack_trace: Vec::new(),
                user_stack_trace: Vec::new(),
                policy_mode,
            },
            node_name: node,
            time: clock.timestamp(ev.header.ktime_ns, false),
        };
    }
    if let Some(crate::policy::place::UserProbe {
        usdt: Some((u, _)), ..
    }) = &hook.user
    {
        return Event {
            body: Body::ProcessUsdt {
                process: ProcessOut::kept(process, clock),
                parent: parent(),
                ancestors: ancestors_of(process, "usdt", clock),
                path: &u.path,
                provider: &u.provider,
                name: &u.name,
                policy_name: &policy.name,
                message: hook.message.as_deref(),
                args: tracepoint_args(ev, &hook.args),
                tags: &hook.tags,
                action: action_name(ev.action),
                kernel_stack_trace: Vec::new(),
                user_stack_trace: Vec::new(),
                policy_mode,
            },
            node_name: node,
            time: clock.timestamp(ev.header.ktime_ns, false),
        };
    }
    if let Some(u) = hook.user.as_ref().map(|u| &u.attach) {
        let (symbol, offset) = match &u.at {
            crate::policy::spec::UprobeAt::Symbol(s) => (s.as_str(), None),
            crate::policy::spec::UprobeAt::Offset(o) => ("", Some(o.to_string())),
        };
        return Event {
            body: Body::ProcessUprobe {
                process: ProcessOut::kept(process, clock),
                parent: parent(),
                ancestors: ancestors_of(process, "uprobe", clock),
                path: &u.path,
                symbol,
                offset,
                ref_ctr_offset: (u.ref_ctr_offset != 0).then(|| u.ref_ctr_offset.to_string()),
                policy_name: &policy.name,
                message: hook.message.as_deref(),
                args: tracepoint_args(ev, &hook.args),
                tags: &hook.tags,
                action: action_name(ev.action),
                kernel_stack_trace: Vec::new(),
                user_stack_trace: Vec::new(),
                policy_mode,
            },
            node_name: node,
            time: clock.timestamp(ev.header.ktime_ns, false),
        };
    }
    if let Some(crate::policy::compile::KprobeMeta {
        call: function_name,
        returns_value: has_return,
        ..
    }) = &hook.kprobe
    {
        let mut args = tracepoint_args(ev, &hook.args);
        // A return probe's value is its last argument.
        let ret = if *has_return { args.pop() } else { None };
        return Event {
            body: Body::ProcessKprobe {
                process: ProcessOut::kept(process, clock),
                parent: parent(),
                ancestors: ancestors_of(process, "kprobe", clock),
                function_name,
                args,
                ret,
                action: action_name(ev.action),
                policy_name: &policy.name,
                message: hook.message.as_deref(),
                tags: &hook.tags,
                kernel_stack_trace: Vec::new(),
                user_stack_trace: Vec::new(),
                policy_mode,
            },
            node_name: node,
            time: clock.timestamp(ev.header.ktime_ns, false),
        };
    }
    Event {
        body: Body::ProcessTracepoint {
            process: ProcessOut::kept(process, clock),
            parent: parent(),
            ancestors: ancestors_of(process, "tracepoint", clock),
            subsys: &hook.subsystem,
            event: &hook.event,
            args: tracepoint_args(ev, &hook.args),
            policy_name: &policy.name,
            action: action_name(ev.action),
            message: hook.message.as_deref(),
            tags: &hook.tags,
            kernel_stack_trace: Vec::new(),
            user_stack_trace: Vec::new(),
            policy_mode,
        },
        node_name: node,
        time: clock.timestamp(ev.header.ktime_ns, false),
    }
}

/// The event of an executable mapping (`process_loader`) for policy `policy_name`;
/// `buildid` is the build id in base64.
pub fn loader<'a>(
    m: &'a crate::mappings::record::Mapping,
    buildid: &'a str,
    process: &'a Process,
    policy_name: &'a str,
    node: &'a str,
    clock: &Clock,
) -> Event<'a> {
    Event {
        body: Body::ProcessLoader {
            process: ProcessOut::kept(process, clock),
            path: &m.path,
            buildid,
            parent: process
                .parent
                .as_deref()
                .map(|p| ProcessOut::kept(p, clock)),
            ancestors: ancestors_of(process, "loader", clock),
            policy_name,
        },
        node_name: node,
        time: clock.timestamp(m.time_ns, false),
    }
}

/// The event of mappings the kernel could not hand over (its perf ring was full).
pub fn mappings_loss<'a>(r: &crate::mappings::LossReport, node: &'a str) -> Event<'a> {
    Event {
        body: Body::EventLoss {
            place: "mappings",
            reason: "the kernel's perf ring of executable mappings was full: process_loader events were lost"
                .into(),
            lost: BTreeMap::from([("process_loader".to_owned(), r.lost.to_string())]),
            count: r.lost.to_string(),
            total_lost: r.total_lost.to_string(),
            since: r.since.clone(),
        },
        node_name: node,
        time: Timestamp::now(),
    }
}

/// The event of records lost in the kernel.
/// The kernel's losses since the previous report.
pub fn loss<'a>(r: &LossReport, node: &'a str) -> Event<'a> {
    let count: u64 = r.lost.iter().map(|(_, n)| n).sum();
    Event {
        body: Body::EventLoss {
            place: "ring_buffer",
            reason: "the kernel's ring buffer was full (raise --ring-buffer-size, or read faster)"
                .into(),
            lost: r
                .lost
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.name().to_owned(), n.to_string()))
                .collect(),
            count: count.to_string(),
            total_lost: r.total_lost.to_string(),
            since: r.since.clone(),
        },
        node_name: node,
        time: Timestamp::now(),
    }
}

impl Event<'_> {
    /// Puts the stack traces of a policy event in (an event of another type has none).
    pub fn set_stack_traces(&mut self, kernel: Vec<StackEntry>, user: Vec<StackEntry>) {
        match &mut self.body {
            Body::ProcessTracepoint {
                kernel_stack_trace,
                user_stack_trace,
                ..
            }
            | Body::ProcessKprobe {
                kernel_stack_trace,
                user_stack_trace,
                ..
            }
            | Body::ProcessUprobe {
                kernel_stack_trace,
                user_stack_trace,
                ..
            }
            | Body::ProcessUsdt {
                kernel_stack_trace,
                user_stack_trace,
                ..
            }
            | Body::ProcessLsm {
                kernel_stack_trace,
                user_stack_trace,
                ..
            } => {
                *kernel_stack_trace = kernel;
                *user_stack_trace = user;
            }
            _ => {}
        }
    }

    /// The event's type, its top-level key (`process_exec`).
    pub fn kind(&self) -> &'static str {
        match &self.body {
            Body::ProcessExec { .. } => "process_exec",
            Body::ProcessExit { .. } => "process_exit",
            Body::ProcessTracepoint { .. } => "process_tracepoint",
            Body::ProcessKprobe { .. } => "process_kprobe",
            Body::ProcessUprobe { .. } => "process_uprobe",
            Body::ProcessUsdt { .. } => "process_usdt",
            Body::ProcessLsm { .. } => "process_lsm",
            Body::ProcessLoader { .. } => "process_loader",
            Body::EventLoss { .. } => "event_loss",
            Body::RateLimitInfo { .. } => "rate_limit_info",
        }
    }

    /// The policy that posted it.
    pub fn policy(&self) -> Option<&str> {
        match &self.body {
            Body::ProcessTracepoint { policy_name, .. }
            | Body::ProcessKprobe { policy_name, .. }
            | Body::ProcessUprobe { policy_name, .. }
            | Body::ProcessUsdt { policy_name, .. }
            | Body::ProcessLsm { policy_name, .. }
            | Body::ProcessLoader { policy_name, .. } => Some(policy_name),
            _ => None,
        }
    }

    /// An event of the agent itself (a loss report), which filters never leave out.
    pub fn is_agents(&self) -> bool {
        matches!(
            self.body,
            Body::EventLoss { .. } | Body::RateLimitInfo { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;

    /// A capability set is encoded once and copied after: the same names whichever
    /// way, more sets than are kept included.
    #[test]
    fn capability_sets_are_encoded_once_and_copied() {
        let names = |set: u64| serde_json::to_value(CapNames(set)).unwrap();
        assert_eq!(names(0b11), json!(["CAP_CHOWN", "DAC_OVERRIDE"]));
        assert_eq!(names(0), json!([]));
        for round in 0..2 {
            for bit in 0..40u64 {
                let set = (1 << bit) | 1;
                let want: Vec<&str> = CapNames(set).names().collect();
                assert_eq!(names(set), json!(want), "bit {bit}, round {round}");
                let line = serde_json::to_string(&CapNames(set)).unwrap();
                assert_eq!(line, serde_json::to_string(&want).unwrap());
            }
        }
    }

    #[test]
    fn object_arguments_are_written_as_protojson_writes_messages() {
        let arg = |key: &'static str, value: Value| {
            serde_json::to_value(Arg {
                value: ArgOut::Object { key, value },
                label: None,
            })
            .unwrap()
        };
        // Zero scalars, empty strings and lists left out; nested messages kept.
        assert_eq!(
            arg(
                "sock_arg",
                json!({"family": "AF_INET", "sport": 0, "dport": 80, "cookie": "0", "state": ""})
            ),
            json!({"sock_arg": {"family": "AF_INET", "dport": 80}})
        );
        // Wrapper fields (`UInt32Value`) are written at zero too: root's uid is 0.
        assert_eq!(
            arg(
                "process_credentials_arg",
                json!({"uid": 0, "gid": 0, "securebits": [], "caps": {"permitted": [], "effective": ["CAP_CHOWN"]}})
            ),
            json!({"process_credentials_arg": {"uid": 0, "gid": 0, "caps": {"effective": ["CAP_CHOWN"]}}})
        );
        assert_eq!(
            arg("capability_arg", json!({"value": 0, "name": "CAP_CHOWN"})),
            json!({"capability_arg": {"value": 0, "name": "CAP_CHOWN"}})
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn syscall_ids_name_their_abi() {
        let arg = |v: u64| {
            serde_json::to_value(Arg {
                value: ArgOut::SyscallId(v),
                label: None,
            })
            .unwrap()
        };
        assert_eq!(arg(32), json!({"syscall_id": {"id": 32, "abi": "x64"}}));
        assert_eq!(
            arg(41 | u64::from(crate::policy::validate::COMPAT_SYSCALL_BIT)),
            json!({"syscall_id": {"id": 41, "abi": "i386"}})
        );
    }
    use crate::process::{Creds, exec_id};

    #[test]
    fn actions_are_named_as_tetragon_names_them() {
        use tracer_common::policy::{
            ACTION_POST, ACTION_SIGKILL, SOCK_RETURN, SOCK_TRACK, SOCK_UNTRACK,
        };
        let post = u32::from(ACTION_POST);
        let sock = |a: u8| u32::from(a) << 16;
        assert_eq!(action_name(post), "KPROBE_ACTION_POST");
        assert_eq!(
            action_name(post | u32::from(ACTION_SIGKILL)),
            "KPROBE_ACTION_SIGKILL"
        );
        assert_eq!(
            action_name(post | sock(SOCK_TRACK)),
            "KPROBE_ACTION_TRACKSOCK"
        );
        assert_eq!(
            action_name(post | sock(SOCK_UNTRACK | 2)),
            "KPROBE_ACTION_UNTRACKSOCK"
        );
        // `returnArgAction` is not an action the selector took.
        assert_eq!(
            action_name(post | sock(SOCK_TRACK | SOCK_RETURN | 1)),
            "KPROBE_ACTION_POST"
        );
    }

    fn process(pid: u32, parent: Option<Arc<Process>>) -> Arc<Process> {
        Arc::new(Process {
            exec_id: exec_id("node1", 5_000_000_000, pid),
            pid,
            tid: pid,
            creds: Creds::default(),
            auid: u32::MAX,
            binary: "/usr/bin/curl".into(),
            script: None,
            arguments: "-s \"a b\"".into(),
            cwd: "/".into(),
            flags: flags::EXECVE | flags::ROOT_CWD,
            ktime_ns: 5_000_000_000,
            boottime: false,
            task_start_ns: 1,
            cgroup_id: 1234,
            ns_pid: 0,
            ppid: parent.as_ref().map_or(0, |p| p.pid),
            user: None,
            ns: Default::default(),
            env: Arc::default(),
            parent,
            json: Default::default(),
        })
    }

    #[test]
    fn exec_event_is_tetragon_shaped() {
        let clock = Clock::fixed(1_696_629_832_000_000_000, 0);
        let parent = process(10, None);
        let child = process(11, Some(parent.clone()));
        let l = Lifecycle::Exec {
            process: child,
            binary: Default::default(),
        };
        let v: Value = serde_json::to_value(lifecycle(&l, "node1", &clock)).unwrap();
        assert_eq!(
            v,
            json!({
                "process_exec": {
                    "process": {
                        "exec_id": exec_id("node1", 5_000_000_000, 11),
                        "pid": 11,
                        "uid": 0,
                        "cwd": "/",
                        "binary": "/usr/bin/curl",
                        "arguments": "-s \"a b\"",
                        "flags": "execve rootcwd",
                        "start_time": "2023-10-06T22:03:57Z",
                        "auid": 4294967295u32,
                        "parent_exec_id": exec_id("node1", 5_000_000_000, 10),
                        "tid": 11,
                        "process_credentials": {"uid": 0, "gid": 0, "euid": 0, "egid": 0},
                        "cgroup_id": "1234",
                        "in_init_tree": false
                    },
                    "parent": {
                        "exec_id": exec_id("node1", 5_000_000_000, 10),
                        "pid": 10,
                        "uid": 0,
                        "cwd": "/",
                        "binary": "/usr/bin/curl",
                        "arguments": "-s \"a b\"",
                        "flags": "execve rootcwd",
                        "start_time": "2023-10-06T22:03:57Z",
                        "auid": 4294967295u32,
                        "tid": 10,
                        "process_credentials": {"uid": 0, "gid": 0, "euid": 0, "egid": 0},
                        "cgroup_id": "1234",
                        "in_init_tree": false
                    }
                },
                "node_name": "node1",
                "time": "2023-10-06T22:03:57Z"
            })
        );
    }

    /// `process_loader` in Tetragon's field order (`ProcessLoader`: process, path,
    /// buildid, parent), the build id in base64, with the tracer's `policy_name`.
    #[test]
    fn loader_event_is_tetragon_shaped() {
        let clock = Clock::fixed(0, 0);
        let parent = process(10, None);
        let child = process(11, Some(parent));
        let m = crate::mappings::record::Mapping {
            pid: 11,
            tid: 11,
            addr: 0x7f00_0000_0000,
            len: 0x1000,
            pgoff: 0,
            file: crate::mappings::record::FileId::BuildId(None),
            prot: 5,
            flags: 2,
            path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            time_ns: 7,
        };
        let id = crate::mappings::build_id::BuildId::new(&[0xde, 0xad, 0xbe, 0xef])
            .expect("4 bytes")
            .base64();
        let ev = loader(&m, &id, &child, "loader", "node1", &clock);
        assert_eq!(ev.kind(), "process_loader");
        assert_eq!(ev.policy(), Some("loader"));
        let v: Value = serde_json::to_value(&ev).unwrap();
        let body = v["process_loader"].as_object().unwrap();
        assert_eq!(
            body.keys().collect::<Vec<_>>(),
            ["process", "path", "buildid", "parent", "policy_name"]
        );
        assert_eq!(body["process"]["pid"], 11);
        assert_eq!(body["parent"]["pid"], 10);
        assert_eq!(body["path"], "/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert_eq!(body["buildid"], "3q2+7w==");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000000007Z");
    }

    /// Stack traces as Tetragon's `process_kprobe` has them: `kernel_stack_trace` after
    /// `action`, `user_stack_trace` after `tags`; entries in protojson (64-bit numbers as
    /// strings, empty fields left out); none, no key.
    #[test]
    fn stack_traces_are_tetragon_shaped() {
        let clock = Clock::fixed(0, 0);
        let p = process(11, None);
        let tags = vec!["net".to_owned()];
        let mut ev = Event {
            body: Body::ProcessKprobe {
                process: ProcessOut::new(&p, &clock),
                parent: None,
                ancestors: Vec::new(),
                function_name: "kfree_skb_reason",
                args: Vec::new(),
                ret: None,
                action: "KPROBE_ACTION_POST",
                kernel_stack_trace: Vec::new(),
                policy_name: "stacks",
                message: None,
                tags: &tags,
                user_stack_trace: Vec::new(),
                policy_mode: None,
            },
            node_name: "n",
            time: clock.timestamp(0, false),
        };
        let keys = |ev: &Event<'_>| -> Vec<String> {
            let v: Value = serde_json::to_value(ev).unwrap();
            v["process_kprobe"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert!(!keys(&ev).iter().any(|k| k.contains("stack")));
        ev.set_stack_traces(
            vec![
                StackEntry {
                    address: Some(0xffff_ffff_8190_0042),
                    offset: 0x42,
                    symbol: "do_syscall_64".into(),
                    module: String::new(),
                },
                StackEntry {
                    address: None,
                    offset: 0,
                    symbol: "entry_SYSCALL_64".into(),
                    module: String::new(),
                },
            ],
            vec![StackEntry {
                address: None,
                offset: 7,
                symbol: "getppid".into(),
                module: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            }],
        );
        assert_eq!(
            keys(&ev),
            [
                "process",
                "function_name",
                "action",
                "kernel_stack_trace",
                "policy_name",
                "tags",
                "user_stack_trace"
            ]
        );
        let v: Value = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            v["process_kprobe"]["kernel_stack_trace"],
            json!([
                {"address": "18446744071588282434", "offset": "66", "symbol": "do_syscall_64"},
                {"symbol": "entry_SYSCALL_64"}
            ])
        );
        assert_eq!(
            v["process_kprobe"]["user_stack_trace"],
            json!([{"offset": "7", "symbol": "getppid", "module": "/usr/lib/x86_64-linux-gnu/libc.so.6"}])
        );
        // Not a policy event: nothing to put them in.
        let l = Lifecycle::Exit {
            process: p,
            exit_code: 0,
            ktime_ns: 1,
        };
        let mut exit = lifecycle(&l, "n", &clock);
        exit.set_stack_traces(vec![StackEntry::default()], Vec::new());
        assert!(!serde_json::to_string(&exit).unwrap().contains("stack"));
    }

    #[test]
    fn exit_event_has_status_or_signal() {
        let clock = Clock::fixed(0, 0);
        let p = process(11, None);
        let killed = Lifecycle::Exit {
            process: p.clone(),
            exit_code: 9,
            ktime_ns: 1,
        };
        let v: Value = serde_json::to_value(lifecycle(&killed, "n", &clock)).unwrap();
        let exit = &v["process_exit"];
        assert_eq!(exit["signal"], "SIGKILL");
        assert!(exit.get("status").is_none(), "zero status is omitted");
        assert!(exit.get("parent").is_none());
        assert_eq!(exit["time"], "1970-01-01T00:00:00.000000001Z");
        let failed = Lifecycle::Exit {
            process: p,
            exit_code: 3 << 8,
            ktime_ns: 1,
        };
        let v: Value = serde_json::to_value(lifecycle(&failed, "n", &clock)).unwrap();
        assert_eq!(v["process_exit"]["status"], 3);
        assert!(v["process_exit"].get("signal").is_none());
    }

    #[test]
    fn a_process_object_is_encoded_once_per_enrichment() {
        let clock = Clock::fixed(0, 0);
        let mut p = Process::clone(&process(12, None));
        p.arguments = "-c \"echo\tx\\y\"\n\u{1}é".into();
        let p = Arc::new(p);
        let child = process(13, Some(p.clone()));
        let l = Lifecycle::Exec {
            process: child.clone(),
            binary: Default::default(),
        };
        let plain = serde_json::to_value(ProcessOut {
            json: None,
            ..ProcessOut::new(&p, &clock)
        })
        .unwrap();
        let first = serde_json::to_string(&lifecycle(&l, "n", &clock)).unwrap();
        // The parent keeps its object; the exec's own process does not (a process's exec
        // and exit use the cache, they do not fill it).
        assert!(!p.json.is_empty());
        assert!(child.json.is_empty());
        // The second time the parent is copied from the cache: the same bytes.
        let second = serde_json::to_string(&lifecycle(&l, "n", &clock)).unwrap();
        assert_eq!(first, second);
        let v: Value = serde_json::from_str(&second).unwrap();
        assert_eq!(v["process_exec"]["parent"], plain);
        // Another enrichment is encoded anew, not served the cached object.
        let mut ev = lifecycle(&l, "n", &clock);
        if let Body::ProcessExec {
            parent: Some(parent),
            ..
        } = &mut ev.body
        {
            parent.docker = Some("abc".into());
            parent.enrichment = 7;
        }
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["process_exec"]["parent"]["docker"], "abc");
        // Through a JSON value (the filters' path) the cached object reads the same.
        let v = serde_json::to_value(lifecycle(&l, "n", &clock)).unwrap();
        assert_eq!(v["process_exec"]["parent"], plain);
        // A copy (a fork starts as one of its parent) does not carry it.
        assert!(Process::clone(&p).json.is_empty());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_status(0), (0, ""));
        assert_eq!(exit_status(1 << 8), (1, ""));
        assert_eq!(exit_status(15), (0, "SIGTERM"));
        assert_eq!(
            exit_status(0x80 | 11),
            (0, "SIGSEGV"),
            "core dump bit ignored"
        );
    }
}
