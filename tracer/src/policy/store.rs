//! The policies running in the kernel: adds, replaces and removes them, and keeps what
//! the exporters need to write their events. A policy that cannot be installed is
//! refused whole and the policies already running keep running.
//!
//! Install order, so that the program never sees half a policy: string values, then the
//! hook configs, then the tracepoint attachments; removal in reverse.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    maps::ProgramArray,
    maps::{
        Array, HashMap as BpfHashMap, MapData, PerCpuArray,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{
        FEntry, KProbe, Lsm, RawTracePoint, TracePoint, fentry::FEntryLinkId, kprobe::KProbeLinkId,
        lsm::LsmLinkId, raw_trace_point::RawTracePointLinkId, trace_point::TracePointLinkId,
    },
};
use tracer_common::policy::{
    BinFollow, FOLLOW_BINARIES, HookConfig, KPROBE_RUNNER, KRETPROBE_RUNNER, LONG_PREFIX,
    MAX_BIN_FOLLOW, MAX_POLICIES, PIDS_IN, POLICY_COUNTERS_PER, POLICY_LOST, POLICY_MATCHED,
    POLICY_POSTED, POLICY_RATE_LIMITED, POLICY_SEEN, PREFIX_MAX, STRING_MAX, SYSCALL_IDS, ScopeKey,
    StrKey, StrPrefix, TP_SLOTS, TRACK_BINARIES,
};

use super::{
    compile::{self, Compiled, Hook, Ids, StrEntry, StrMap, SyscallRoute},
    model::TracingPolicy,
};

/// The `FOLLOW` bits a compiled policy uses.
fn follow_bits(c: &Compiled) -> u64 {
    c.follow
        .iter()
        .map(|f| match f {
            compile::Follow::Pids { bit, .. } => 1u64 << bit,
            compile::Follow::Binary(b) => 1u64 << b.bit,
        })
        .fold(0, |a, b| a | b)
}

/// `BPF_NOEXIST` of `bpf_map_update_elem`: insert only if absent.
const BPF_NOEXIST: u64 = 1;

/// An fentry or BPF LSM program: loaded for one function (or LSM hook) at a time.
trait BtfProgram {
    fn load_for(&mut self, target: &str, btf: &aya::Btf)
    -> Result<(), aya::programs::ProgramError>;
    fn unload_it(&mut self);
    fn link(&mut self) -> Result<Link, aya::programs::ProgramError>;
}

/// `BtfProgram` for a program type and the `Link` of its attachments.
macro_rules! btf_program {
    ($program:ty, $link:path) => {
        impl BtfProgram for $program {
            fn load_for(
                &mut self,
                target: &str,
                btf: &aya::Btf,
            ) -> Result<(), aya::programs::ProgramError> {
                self.load(target, btf)
            }
            fn unload_it(&mut self) {
                let _ = self.unload();
            }
            fn link(&mut self) -> Result<Link, aya::programs::ProgramError> {
                self.attach().map($link)
            }
        }
    };
}
btf_program!(FEntry, Link::Fentry);
btf_program!(Lsm, Link::Lsm);

/// The program of a slot: every slot runs the same code on its own `HOOKS` entry.
fn program_name(slot: u32) -> String {
    format!("policy_tp_{slot}")
}

/// The program that slot programs of one type tail-call (`hooks/policy.rs`).
#[derive(Debug, Clone, Copy)]
enum Runner {
    Tracepoint,
    Kprobe,
    Kretprobe,
}

impl Runner {
    fn program(self) -> &'static str {
        match self {
            Runner::Tracepoint => "policy_tp_run",
            Runner::Kprobe => "policy_kp_run",
            Runner::Kretprobe => "policy_krp_run",
        }
    }
}

/// The kprobe program of a slot.
fn kprobe_program_name(slot: u32, ret: bool) -> String {
    if ret {
        format!("policy_krp_{slot}")
    } else {
        format!("policy_kp_{slot}")
    }
}

fn load_error(name: &str, e: aya::programs::ProgramError) -> StoreError {
    match e {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            tracing::debug!("verifier log of {name}:\n{verifier_log}");
            StoreError::Program(format!(
                "the kernel refused {name} ({io_error}); --log-level debug shows the verifier log"
            ))
        }
        other => StoreError::Program(format!("{name}: {other}")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the policy program cannot be loaded, so no policy can run: {0}")]
    Program(String),
    #[error("the eBPF object has no map `{0}`")]
    NoMap(&'static str),
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(transparent)]
    Compile(#[from] compile::CompileError),
    #[error("policy {0}: all {TP_SLOTS} tracepoint slots are in use; remove a policy first")]
    NoSlot(String),
    #[error("policy {policy}: writing its filters to the kernel: {source}")]
    Write {
        policy: String,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("policy {policy}: no hook could be attached: {}", failed.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NoHook {
        policy: String,
        failed: Vec<FailedHook>,
    },
    #[error("policy {0}: {MAX_POLICIES} policies are loaded already")]
    Full(String),
    #[error(
        "policy {0}: a TracingPolicyNamespaced, a podSelector or a containerSelector applies to pods, and no Kubernetes API server is configured to learn them from (run the agent in the cluster, or give it a kubeconfig)"
    )]
    NoPods(String),
}

/// Counters of one policy, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyCounts {
    pub name: String,
    /// Hook hits the program looked at.
    pub seen: u64,
    /// Hits a selector matched.
    pub matched: u64,
    /// Events posted to the ring buffer.
    pub posted: u64,
    /// Posts the ring buffer could not take.
    pub lost: u64,
    /// Posts left out by `rateLimit`.
    pub rate_limited: u64,
}

/// How a slot's program is attached.
enum Link {
    Tracepoint(TracePointLinkId),
    /// A kprobe, or with `true` a kretprobe.
    Kprobe(KProbeLinkId, bool),
    Fentry(FEntryLinkId),
    Lsm(LsmLinkId),
}

struct Loaded {
    id: u32,
    compiled: Compiled,
    /// The slot of each hook, in `compiled.hooks` order.
    slots: Vec<u32>,
    links: Vec<(u32, Link)>,
    source: PathBuf,
    /// The hooks that did not attach: the policy is partly loaded.
    failed: Vec<FailedHook>,
}

/// A hook of a policy that is not running, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedHook {
    /// `syscalls/sys_enter_openat`, `kprobe tcp_connect`, `return of kprobe ...`.
    pub hook: String,
    pub reason: String,
}

impl std::fmt::Display for FailedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.hook, self.reason)
    }
}

/// How one hook was attached, and where it runs (for the log).
enum Attached {
    Linked(Link, String),
    /// On the raw syscall tracepoints, with the syscall hooks of other policies.
    Routed(SyscallRoute, String),
}

pub struct PolicyStore {
    tracefs: PathBuf,
    hooks: Array<MapData, HookConfig>,
    str_equal: BpfHashMap<MapData, StrKey, u8>,
    str_prefix: LpmTrie<MapData, StrPrefix, u8>,
    str_postfix: LpmTrie<MapData, StrPrefix, u8>,
    counters: PerCpuArray<MapData, u64>,
    policies: BTreeMap<String, Loaded>,
    /// Who holds each slot: (policy, hook index).
    slots: HashMap<u32, (String, usize)>,
    /// Programs loaded (verified) already.
    programs_loaded: Vec<String>,
    /// The program arrays of the slot runners (`TP_RUNNER`, `KPROBE_RUNNERS`), and the
    /// runners put in them.
    tp_runner: ProgramArray<MapData>,
    kprobe_runners: ProgramArray<MapData>,
    runners: Vec<&'static str>,
    /// Kprobe hooks run on kprobes (`Ok`), or on the tracepoints that stand for them, for
    /// the reason given.
    kprobes: Result<(), &'static str>,
    /// ... and on fentry and BPF LSM programs where the kernel runs them.
    kernel: compile::Kernel,
    /// The kernel's BTF, which fentry and BPF LSM programs are loaded against.
    btf: Option<aya::Btf>,
    /// The function each slot's fentry or BPF LSM program is loaded for.
    btf_targets: HashMap<String, String>,
    /// The cgroups each pod-scoped policy applies to (`POLICY_SCOPE`), as written.
    scope_map: BpfHashMap<MapData, ScopeKey, u8>,
    scopes: HashMap<u32, BTreeSet<u64>>,
    /// Pods can be known (a cluster is configured): pod-scoped policies can load.
    pub pods_known: bool,
    ids: Ids,
    exec_paths: Option<BpfHashMap<MapData, u32, StrKey>>,
    config: Array<MapData, u32>,
    follow: BpfHashMap<MapData, u32, u64>,
    bin_follow: Array<MapData, BinFollow>,
    syscalls: Option<SyscallDispatch>,
    /// Hooks on one syscall run on the raw syscall tracepoints too.
    raw_numbered: bool,
    /// Policies whose last load failed (and that do not run, or run an earlier version).
    refused: BTreeSet<String>,
}

/// The raw `sys_enter`/`sys_exit` programs that run every routable syscall hook
/// (`tracer-ebpf/src/hooks/syscall.rs`), attached only while a hook needs them.
struct SyscallDispatch {
    slots_map: Array<MapData, u32>,
    any_map: Array<MapData, u32>,
    gated_map: Array<MapData, u32>,
    pid_gate_map: BpfHashMap<MapData, u32, u32>,
    /// The routed hook of each slot.
    routes: HashMap<u32, RoutedHook>,
    /// What the maps hold now.
    slots: Vec<u32>,
    any: [u32; 2],
    gated: u32,
    pid_gate: HashMap<u32, u32>,
    links: [Option<RawTracePointLinkId>; 2],
    /// Kept alive for `SYSCALL_PROGS`.
    _progs: ProgramArray<MapData>,
}

/// A hook the raw syscall tracepoints run.
struct RoutedHook {
    route: SyscallRoute,
    /// The only processes (tgids) the hook's selectors can match, when every selector
    /// names them: the dispatcher skips the hook for every other process.
    pids: Option<Vec<u32>>,
}

impl RoutedHook {
    fn new(route: SyscallRoute, config: &HookConfig) -> Self {
        Self {
            route,
            pids: pid_gate(config),
        }
    }
}

/// The pids a hook can match when each of its selectors has `matchPIDs` `In` with plain
/// pids (not `followForks`, whose descendants are not listed, nor `isNamespacePID`).
fn pid_gate(config: &HookConfig) -> Option<Vec<u32>> {
    let selectors = config.selectors.get(..config.nsel as usize)?;
    if selectors.is_empty() {
        return None;
    }
    let mut pids = Vec::new();
    for sel in selectors {
        let p = &sel.pids;
        if p.op != PIDS_IN || p.follow != 0 || p.namespace != 0 || p.n == 0 {
            return None;
        }
        pids.extend_from_slice(p.values.get(..usize::from(p.n))?);
    }
    pids.sort_unstable();
    pids.dedup();
    Some(pids)
}

const DISPATCH_PROGRAMS: [(&str, &str); 2] =
    [("syscall_enter", "sys_enter"), ("syscall_exit", "sys_exit")];

impl SyscallDispatch {
    /// Loads the programs; `None` (syscall hooks then attach their own tracepoints) when
    /// the kernel refuses them.
    fn new(ebpf: &mut Ebpf) -> Result<Self, String> {
        for name in [
            "policy_syscall",
            DISPATCH_PROGRAMS[0].0,
            DISPATCH_PROGRAMS[1].0,
        ] {
            let p: &mut RawTracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| format!("no program `{name}` in the object"))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| e.to_string())?;
            p.load().map_err(|e| match e {
                aya::programs::ProgramError::LoadError {
                    io_error,
                    verifier_log,
                } => {
                    tracing::debug!("verifier log of {name}:\n{verifier_log}");
                    format!("the kernel refused {name} ({io_error}); --log-level debug shows the verifier log")
                }
                other => format!("loading {name}: {other}"),
            })?;
        }
        let mut map = |name: &'static str| {
            ebpf.take_map(name)
                .ok_or_else(|| format!("no map `{name}`"))
        };
        let mut progs = ProgramArray::try_from(map("SYSCALL_PROGS")?).map_err(|e| e.to_string())?;
        let slots_map = Array::try_from(map("SYSCALL_SLOTS")?).map_err(|e| e.to_string())?;
        let any_map = Array::try_from(map("SYSCALL_ANY")?).map_err(|e| e.to_string())?;
        let gated_map = Array::try_from(map("SYSCALL_GATED")?).map_err(|e| e.to_string())?;
        let pid_gate_map =
            BpfHashMap::try_from(map("SYSCALL_PID_GATE")?).map_err(|e| e.to_string())?;
        let fd = ebpf
            .program("policy_syscall")
            .and_then(|p| p.fd().ok())
            .ok_or("policy_syscall has no file descriptor")?;
        progs.set(0, fd, 0).map_err(|e| e.to_string())?;
        Ok(Self {
            slots_map,
            any_map,
            gated_map,
            pid_gate_map,
            routes: HashMap::new(),
            slots: vec![0; 2 * SYSCALL_IDS as usize],
            any: [0; 2],
            gated: 0,
            pid_gate: HashMap::new(),
            links: [None, None],
            _progs: progs,
        })
    }

    /// Writes the masks of `routes` to the kernel (only the entries that change) and
    /// attaches the raw tracepoint of a direction while some hook uses it.
    fn sync(&mut self, ebpf: &mut Ebpf) -> Result<(), String> {
        let mut slots = vec![0u32; self.slots.len()];
        let mut any = [0u32; 2];
        let mut gated = 0u32;
        let mut pid_gate: HashMap<u32, u32> = HashMap::new();
        for (slot, hook) in &self.routes {
            let r = hook.route;
            match r.nr {
                Some(nr) => slots[(r.dir * SYSCALL_IDS + nr) as usize] |= 1 << slot,
                None => any[r.dir as usize] |= 1 << slot,
            }
            if let Some(pids) = &hook.pids {
                gated |= 1 << slot;
                for pid in pids {
                    *pid_gate.entry(*pid).or_default() |= 1 << slot;
                }
            }
        }
        // The gate opens before a slot is routed and closes after it stops being: the
        // processes first, then the mask; at removal the mask first.
        for (pid, mask) in &pid_gate {
            if self.pid_gate.get(pid) != Some(mask) {
                self.pid_gate_map
                    .insert(pid, mask, 0)
                    .map_err(|e| format!("SYSCALL_PID_GATE: {e}"))?;
            }
        }
        if gated != self.gated {
            self.gated_map
                .set(0, gated, 0)
                .map_err(|e| format!("SYSCALL_GATED: {e}"))?;
            self.gated = gated;
        }
        for pid in self.pid_gate.keys() {
            if !pid_gate.contains_key(pid) {
                self.pid_gate_map
                    .remove(pid)
                    .map_err(|e| format!("SYSCALL_PID_GATE: {e}"))?;
            }
        }
        self.pid_gate = pid_gate;
        // Attach before the masks say so; detach after they stop saying so.
        for dir in 0..2 {
            let used = any[dir] != 0
                || slots[dir * SYSCALL_IDS as usize..(dir + 1) * SYSCALL_IDS as usize]
                    .iter()
                    .any(|m| *m != 0);
            if used && self.links[dir].is_none() {
                let (program, tracepoint) = DISPATCH_PROGRAMS[dir];
                let p: &mut RawTracePoint = ebpf
                    .program_mut(program)
                    .ok_or_else(|| format!("no program `{program}`"))?
                    .try_into()
                    .map_err(|e: aya::programs::ProgramError| e.to_string())?;
                let link = p
                    .attach(tracepoint)
                    .map_err(|e| format!("attaching to raw tracepoint {tracepoint}: {e}"))?;
                tracing::info!("raw tracepoint {tracepoint} attached for syscall hooks");
                self.links[dir] = Some(link);
            }
        }
        for (i, (new, old)) in slots.iter().zip(self.slots.iter_mut()).enumerate() {
            if new != old {
                self.slots_map
                    .set(i as u32, *new, 0)
                    .map_err(|e| e.to_string())?;
                *old = *new;
            }
        }
        for (dir, (new, old)) in any.iter().zip(self.any.iter_mut()).enumerate() {
            if new != old {
                self.any_map
                    .set(dir as u32, *new, 0)
                    .map_err(|e| e.to_string())?;
                *old = *new;
            }
        }
        for dir in 0..2 {
            let used = any[dir] != 0
                || slots[dir * SYSCALL_IDS as usize..(dir + 1) * SYSCALL_IDS as usize]
                    .iter()
                    .any(|m| *m != 0);
            if !used && let Some(link) = self.links[dir].take() {
                let (program, tracepoint) = DISPATCH_PROGRAMS[dir];
                if let Some(p) = ebpf
                    .program_mut(program)
                    .and_then(|p| <&mut RawTracePoint>::try_from(p).ok())
                {
                    if let Err(e) = p.detach(link) {
                        tracing::warn!("detaching raw tracepoint {tracepoint}: {e}");
                    } else {
                        tracing::info!(
                            "raw tracepoint {tracepoint} detached: no syscall hook left"
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, StoreError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(StoreError::NoMap(name))?;
    T::try_from(map).map_err(|source| StoreError::Map { name, source })
}

impl PolicyStore {
    /// Takes the policy maps out of `ebpf` and loads the first slot's program (so that a
    /// kernel that refuses it says so at start).
    /// `syscall_regs`: the kernel's `pt_regs` layout is known, so syscall hooks can share
    /// the raw syscall tracepoints: `raw_syscalls` hooks do, and with `raw_numbered`
    /// hooks on one syscall (`syscalls/*`) too.
    ///
    /// `placement.kprobes`: kprobe hooks run on the functions (on kprobes, fentry or BPF
    /// LSM programs), else on their tracepoint equivalents.
    pub fn new(
        ebpf: &mut Ebpf,
        tracefs: &Path,
        placement: &crate::kernel::features::Placement,
    ) -> Result<Self, StoreError> {
        let (syscall_regs, raw_numbered, kprobes) = (
            placement.syscall_regs,
            placement.raw_numbered,
            placement.kprobes,
        );
        let kernel = placement.kernel();
        let btf = if kernel.fentry || kernel.lsm {
            aya::Btf::from_sys_fs()
                .map_err(|e| tracing::warn!("no kernel BTF for fentry and BPF LSM programs: {e}"))
                .ok()
        } else {
            None
        };
        let syscalls = if syscall_regs {
            match SyscallDispatch::new(ebpf) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::warn!(
                        "syscall hooks attach one tracepoint each (raw_syscalls hooks too): the raw syscall tracepoints are not usable: {e}"
                    );
                    None
                }
            }
        } else {
            None
        };
        let mut store = Self {
            tracefs: tracefs.to_owned(),
            hooks: take(ebpf, "HOOKS")?,
            str_equal: take(ebpf, "STR_EQUAL")?,
            str_prefix: take(ebpf, "STR_PREFIX")?,
            str_postfix: take(ebpf, "STR_POSTFIX")?,
            counters: take(ebpf, "POLICY_COUNTERS")?,
            policies: BTreeMap::new(),
            slots: HashMap::new(),
            programs_loaded: Vec::new(),
            tp_runner: take(ebpf, "TP_RUNNER")?,
            kprobe_runners: take(ebpf, "KPROBE_RUNNERS")?,
            runners: Vec::new(),
            ids: Ids::default(),
            exec_paths: Some(take(ebpf, "EXEC_PATHS")?),
            config: take(ebpf, "CONFIG")?,
            follow: take(ebpf, "FOLLOW")?,
            bin_follow: take(ebpf, "BIN_FOLLOW")?,
            syscalls,
            raw_numbered,
            refused: BTreeSet::new(),
            kprobes,
            kernel,
            btf,
            btf_targets: HashMap::new(),
            scope_map: take(ebpf, "POLICY_SCOPE")?,
            scopes: HashMap::new(),
            pods_known: false,
        };
        store.program(ebpf, 0)?;
        // From now on the kernel keeps every process's binary, for `matchBinaries`.
        store.set_config(TRACK_BINARIES)?;
        Ok(store)
    }

    fn set_config(&mut self, bits: u32) -> Result<(), StoreError> {
        self.config
            .set(0, bits, 0)
            .map_err(|source| StoreError::Map {
                name: "CONFIG",
                source,
            })
    }

    /// Records the binaries of processes that were running before the kernel kept them
    /// (found in /proc at start).
    pub fn seed_binaries<'p>(&mut self, processes: impl IntoIterator<Item = (u32, &'p str)>) {
        let Some(map) = &mut self.exec_paths else {
            return;
        };
        for (pid, binary) in processes {
            if binary.is_empty() {
                continue;
            }
            let mut data = [0u8; STRING_MAX];
            let n = binary.len().min(STRING_MAX - 1);
            data[..n].copy_from_slice(&binary.as_bytes()[..n]);
            let key = StrKey {
                id: 0,
                len: n as u32,
                data,
            };
            // Exec or fork may have recorded it already, from the kernel: keep that one.
            let _ = map.insert(pid, key, BPF_NOEXIST);
        }
    }

    /// The program of `slot`, loaded, with the runner it tail-calls.
    fn program<'e>(
        &mut self,
        ebpf: &'e mut Ebpf,
        slot: u32,
    ) -> Result<&'e mut TracePoint, StoreError> {
        self.runner(ebpf, Runner::Tracepoint, TracePoint::load)?;
        self.loaded_program(ebpf, program_name(slot), TracePoint::load)
    }

    /// The kprobe (or with `ret` kretprobe) program of `slot`, loaded, with the runner it
    /// tail-calls.
    fn kprobe_program<'e>(
        &mut self,
        ebpf: &'e mut Ebpf,
        slot: u32,
        ret: bool,
    ) -> Result<&'e mut KProbe, StoreError> {
        let runner = if ret {
            Runner::Kretprobe
        } else {
            Runner::Kprobe
        };
        self.runner(ebpf, runner, KProbe::load)?;
        self.loaded_program(ebpf, kprobe_program_name(slot, ret), KProbe::load)
    }

    /// Loads `runner` (the selector code every slot of its type tail-calls, verified
    /// once) and puts it in its program array, the first time a slot of its type is
    /// asked for.
    fn runner<P>(
        &mut self,
        ebpf: &mut Ebpf,
        runner: Runner,
        load: fn(&mut P) -> Result<(), aya::programs::ProgramError>,
    ) -> Result<(), StoreError>
    where
        for<'e> &'e mut P:
            TryFrom<&'e mut aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        let name = runner.program();
        if self.runners.contains(&name) {
            return Ok(());
        }
        self.loaded_program::<P>(ebpf, name.to_owned(), load)?;
        let fd = ebpf
            .program(name)
            .ok_or_else(|| StoreError::Program(format!("no program `{name}` in the object")))?
            .fd()
            .map_err(|e| StoreError::Program(format!("{name}: {e}")))?;
        let (array, index, map) = match runner {
            Runner::Tracepoint => (&mut self.tp_runner, 0, "TP_RUNNER"),
            Runner::Kprobe => (&mut self.kprobe_runners, KPROBE_RUNNER, "KPROBE_RUNNERS"),
            Runner::Kretprobe => (&mut self.kprobe_runners, KRETPROBE_RUNNER, "KPROBE_RUNNERS"),
        };
        array
            .set(index, fd, 0)
            .map_err(|source| StoreError::Map { name: map, source })?;
        self.runners.push(name);
        Ok(())
    }

    /// The fentry (or BPF LSM) program of `slot`, loaded for `k`'s function (reloaded when
    /// the slot held another), attached.
    fn attach_btf(
        &mut self,
        ebpf: &mut Ebpf,
        slot: u32,
        k: &compile::KprobeHook,
    ) -> Result<Link, String> {
        let btf = self
            .btf
            .as_ref()
            .ok_or("the kernel's BTF could not be read")?;
        let lsm = k.program == compile::Probe::Lsm;
        let (name, target) = if lsm {
            (
                format!("policy_lsm_{slot}"),
                k.call.trim_start_matches("security_").to_owned(),
            )
        } else {
            (format!("policy_fe_{slot}"), k.call.clone())
        };
        let program = ebpf
            .program_mut(&name)
            .ok_or_else(|| format!("no program `{name}` in the object"))?;
        let refused = |e: aya::programs::ProgramError| match e {
            aya::programs::ProgramError::LoadError {
                io_error,
                verifier_log,
            } => {
                tracing::debug!("verifier log of {name} for {target}:\n{verifier_log}");
                format!("the kernel refused {name} for {target} ({io_error})")
            }
            other => format!("{name} for {target}: {other}"),
        };
        let loaded_for = self.btf_targets.get(&name).cloned();
        let p: &mut dyn BtfProgram = if lsm {
            <&mut Lsm>::try_from(program).map_err(refused)?
        } else {
            <&mut FEntry>::try_from(program).map_err(refused)?
        };
        if loaded_for.as_deref() != Some(target.as_str()) {
            if loaded_for.is_some() {
                p.unload_it();
            }
            self.btf_targets.remove(&name);
            p.load_for(&target, btf).map_err(refused)?;
            self.btf_targets.insert(name.clone(), target.clone());
        }
        p.link().map_err(|e| e.to_string())
    }

    /// Program `name` of type `P`, loaded (by `load`) the first time it is asked for.
    fn loaded_program<'e, P>(
        &mut self,
        ebpf: &'e mut Ebpf,
        name: String,
        load: fn(&mut P) -> Result<(), aya::programs::ProgramError>,
    ) -> Result<&'e mut P, StoreError>
    where
        &'e mut P: TryFrom<&'e mut aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        let program: &mut P = ebpf
            .program_mut(&name)
            .ok_or_else(|| StoreError::Program(format!("no program `{name}` in the object")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| StoreError::Program(e.to_string()))?;
        if !self.programs_loaded.contains(&name) {
            load(program).map_err(|e| load_error(&name, e))?;
            self.programs_loaded.push(name);
        }
        Ok(program)
    }

    /// Names of the loaded policies, with the file each came from.
    pub fn loaded(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.policies
            .iter()
            .map(|(name, l)| (name.as_str(), l.source.as_path()))
    }

    /// Installs `policy` (from `source`), replacing a loaded policy of the same name. On
    /// error nothing changes: a policy it would replace keeps running. A policy some of
    /// whose hooks cannot attach runs with the others: those are returned (and logged).
    pub fn add(
        &mut self,
        ebpf: &mut Ebpf,
        policy: &TracingPolicy,
        source: &Path,
    ) -> Result<Vec<FailedHook>, StoreError> {
        let name = policy.metadata.name.as_str().to_owned();
        let result = self.add_inner(ebpf, policy, source, &name);
        if result.is_ok() {
            self.refused.remove(&name);
        } else {
            self.refused.insert(name);
        }
        result
    }

    fn add_inner(
        &mut self,
        ebpf: &mut Ebpf,
        policy: &TracingPolicy,
        source: &Path,
        name: &str,
    ) -> Result<Vec<FailedHook>, StoreError> {
        let name = name.to_owned();
        let id = match self.policies.get(&name) {
            Some(old) => old.id,
            None => self
                .free_id()
                .ok_or_else(|| StoreError::Full(name.clone()))?,
        };
        // Compile with fresh ids, so the old policy's entries stay valid until the new one
        // is in.
        let mut ids = self.ids.clone();
        let compiled = compile::compile_for(policy, id, &mut ids, &self.tracefs, self.kernel)?;
        if compiled.scope.is_some() && !self.pods_known {
            return Err(StoreError::NoPods(name));
        }
        let mut old = self.policies.remove(&name);
        if let Some(old) = &mut old {
            self.uninstall(ebpf, old);
        }
        match self.install(ebpf, compiled, source) {
            Ok(loaded) => {
                self.reset_counters(id);
                self.ids = ids;
                if let Some(old) = &old {
                    self.ids.follow_used &= !follow_bits(&old.compiled);
                }
                let failed = loaded.failed.clone();
                self.policies.insert(name, loaded);
                Ok(failed)
            }
            Err(e) => {
                // Put the previous version back.
                if let Some(old) = old {
                    match self.install(ebpf, old.compiled, &old.source) {
                        Ok(again) => {
                            self.policies.insert(name, again);
                        }
                        Err(e2) => tracing::error!(
                            "policy {name}: restoring the previous version failed: {e2}"
                        ),
                    }
                }
                Err(e)
            }
        }
    }

    /// The pod-scoped policies, with their scopes.
    pub fn scoped(&self) -> Vec<(String, compile::Scope)> {
        self.policies
            .iter()
            .filter_map(|(n, l)| l.compiled.scope.clone().map(|s| (n.clone(), s)))
            .collect()
    }

    /// Makes policy `name` apply in `cgroups` (and no others).
    pub fn set_scope(&mut self, name: &str, cgroups: BTreeSet<u64>) {
        let Some(id) = self.policies.get(name).map(|l| l.id) else {
            return;
        };
        let old = self.scopes.remove(&id).unwrap_or_default();
        let key = |cgroup| ScopeKey {
            policy_id: id,
            _pad: 0,
            cgroup,
        };
        for c in old.difference(&cgroups) {
            let _ = self.scope_map.remove(&key(*c));
        }
        for c in cgroups.difference(&old) {
            if let Err(e) = self.scope_map.insert(key(*c), 1, 0) {
                tracing::warn!(
                    "policy {name}: a pod's cgroup could not be added to its scope: {e}"
                );
            }
        }
        if old != cgroups {
            tracing::info!(
                "policy {name}: applies in {} container cgroups",
                cgroups.len()
            );
        }
        self.scopes.insert(id, cgroups);
    }

    /// How many policies are loaded whole, partly, and refused at their last load.
    pub fn states(&self) -> (usize, usize, usize) {
        let partly = self
            .policies
            .values()
            .filter(|l| !l.failed.is_empty())
            .count();
        (self.policies.len() - partly, partly, self.refused.len())
    }

    /// Removes the policy `name`; returns whether it was loaded.
    pub fn remove(&mut self, ebpf: &mut Ebpf, name: &str) -> bool {
        self.refused.remove(name);
        match self.policies.remove(name) {
            Some(mut old) => {
                self.uninstall(ebpf, &mut old);
                if let Some(cgroups) = self.scopes.remove(&old.id) {
                    for c in cgroups {
                        let _ = self.scope_map.remove(&ScopeKey {
                            policy_id: old.id,
                            _pad: 0,
                            cgroup: c,
                        });
                    }
                }
                self.ids.follow_used &= !follow_bits(&old.compiled);
                true
            }
            None => false,
        }
    }

    fn free_id(&self) -> Option<u32> {
        (0..MAX_POLICIES).find(|id| self.policies.values().all(|l| l.id != *id))
    }

    fn install(
        &mut self,
        ebpf: &mut Ebpf,
        compiled: Compiled,
        source: &Path,
    ) -> Result<Loaded, StoreError> {
        let name = compiled.name.clone();
        let write = |source| StoreError::Write {
            policy: name.clone(),
            source,
        };
        let mut loaded = Loaded {
            id: compiled.hooks.first().map_or(0, |h| h.config.policy_id),
            compiled,
            slots: Vec::new(),
            links: Vec::new(),
            source: source.to_owned(),
            failed: Vec::new(),
        };
        let result = (|| {
            // Slots first, so that nothing is written for a policy that cannot fit.
            for i in 0..loaded.compiled.hooks.len() {
                let slot = (0..TP_SLOTS)
                    .find(|s| !self.slots.contains_key(s))
                    .ok_or_else(|| StoreError::NoSlot(name.clone()))?;
                self.slots.insert(slot, (name.clone(), i));
                loaded.slots.push(slot);
            }
            for s in &loaded.compiled.strings {
                self.put_string(s, true).map_err(write)?;
            }
            for (hook, slot) in loaded.compiled.hooks.iter().zip(&loaded.slots) {
                let mut config = hook.config;
                if let Some(entry) = hook.pair {
                    // A return hook finds its entry's record under the entry's slot.
                    config.kprobe.pair = loaded.slots.get(entry).copied().unwrap_or(0) as u16;
                }
                self.hooks.set(*slot, config, 0).map_err(write)?;
            }
            // Where each hook runs, said once all are attached; and the hooks that did
            // not attach (the policy is then partly loaded).
            let mut placed = Vec::new();
            let mut routed = Vec::new();
            for (i, slot) in loaded.slots.clone().into_iter().enumerate() {
                let hook = &loaded.compiled.hooks[i];
                match self.attach_hook(ebpf, hook, slot) {
                    Ok(Attached::Routed(route, line)) => {
                        if let Some(d) = &mut self.syscalls {
                            d.routes.insert(slot, RoutedHook::new(route, &hook.config));
                        }
                        routed.push(i);
                        placed.push(line);
                    }
                    Ok(Attached::Linked(link, line)) => {
                        loaded.links.push((slot, link));
                        placed.push(line);
                    }
                    Err(reason) => loaded.failed.push(FailedHook {
                        hook: hook.label(),
                        reason,
                    }),
                }
            }
            if !routed.is_empty()
                && let Some(d) = &mut self.syscalls
                && let Err(reason) = d.sync(ebpf)
            {
                // The raw syscall tracepoints run every routed hook: none of them runs.
                d.routes.retain(|slot, _| !loaded.slots.contains(slot));
                for i in routed {
                    loaded.failed.push(FailedHook {
                        hook: loaded.compiled.hooks[i].label(),
                        reason: format!("the raw syscall tracepoints: {reason}"),
                    });
                }
                let _ = d.sync(ebpf);
            }
            if loaded.failed.len() == loaded.compiled.hooks.len() && !loaded.failed.is_empty() {
                return Err(StoreError::NoHook {
                    policy: name.clone(),
                    failed: std::mem::take(&mut loaded.failed),
                });
            }
            self.install_follow(&loaded.compiled).map_err(write)?;
            for line in placed {
                tracing::info!("policy {name}: {line}");
            }
            for f in &loaded.failed {
                tracing::error!(
                    "policy {name}: {} is not running: {}; the policy's other hooks run",
                    f.hook,
                    f.reason
                );
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(loaded),
            Err(e) => {
                self.uninstall(ebpf, &mut loaded);
                Err(e)
            }
        }
    }

    /// Attaches one hook in `slot`, or says why it cannot run.
    fn attach_hook(
        &mut self,
        ebpf: &mut Ebpf,
        hook: &compile::Hook,
        slot: u32,
    ) -> Result<Attached, String> {
        let raw_dispatch = self.syscalls.is_some();
        let runs_on = hook.runs_on(raw_dispatch, self.raw_numbered);
        if let Some(route) = hook.route
            && self.syscalls.is_some()
            && route.routed(true, self.raw_numbered)
        {
            return Ok(Attached::Routed(route, runs_on));
        }
        let k = match &hook.kprobe {
            Some(k) if k.on_kprobe => k,
            // A tracepoint, or the tracepoint that stands for a kprobe's function.
            kprobe => {
                let line = match kprobe {
                    Some(_) => format!(
                        "{runs_on} ({})",
                        self.kprobes.err().unwrap_or("kprobes are off")
                    ),
                    None => runs_on,
                };
                let program = self.program(ebpf, slot).map_err(|e| e.to_string())?;
                let link = program.attach(&hook.subsystem, &hook.event).map_err(|e| {
                    format!(
                        "attaching to tracepoint {}/{}: {e}",
                        hook.subsystem, hook.event
                    )
                })?;
                return Ok(Attached::Linked(Link::Tracepoint(link), line));
            }
        };
        let call = &k.call;
        let mut line = runs_on;
        if !k.ret && k.program != compile::Probe::Kprobe {
            match self.attach_btf(ebpf, slot, k) {
                Ok(link) => return Ok(Attached::Linked(link, line)),
                // An `Override` has no other program to run on.
                Err(reason) if k.program == compile::Probe::Lsm => return Err(reason),
                Err(reason) => line = format!("kprobe {call} runs on a kprobe (fentry: {reason})"),
            }
        }
        let program = self
            .kprobe_program(ebpf, slot, k.ret)
            .map_err(|e| e.to_string())?;
        let link = program
            .attach(call, 0)
            .map_err(|e| format!("attaching a kprobe to {call}: {e}"))?;
        Ok(Attached::Linked(Link::Kprobe(link, k.ret), line))
    }

    fn uninstall(&mut self, ebpf: &mut Ebpf, loaded: &mut Loaded) {
        for (slot, link) in loaded.links.drain(..) {
            let result = match link {
                Link::Tracepoint(link) => ebpf
                    .program_mut(&program_name(slot))
                    .and_then(|p| <&mut TracePoint>::try_from(p).ok())
                    .map(|p| p.detach(link)),
                Link::Kprobe(link, ret) => ebpf
                    .program_mut(&kprobe_program_name(slot, ret))
                    .and_then(|p| <&mut KProbe>::try_from(p).ok())
                    .map(|p| p.detach(link)),
                Link::Fentry(link) => ebpf
                    .program_mut(&format!("policy_fe_{slot}"))
                    .and_then(|p| <&mut FEntry>::try_from(p).ok())
                    .map(|p| p.detach(link)),
                Link::Lsm(link) => ebpf
                    .program_mut(&format!("policy_lsm_{slot}"))
                    .and_then(|p| <&mut Lsm>::try_from(p).ok())
                    .map(|p| p.detach(link)),
            };
            if let Some(Err(e)) = result {
                tracing::warn!("policy {}: detaching a hook: {e}", loaded.compiled.name);
            }
        }
        if let Some(d) = &mut self.syscalls {
            let before = d.routes.len();
            d.routes.retain(|slot, _| !loaded.slots.contains(slot));
            if d.routes.len() != before
                && let Err(e) = d.sync(ebpf)
            {
                tracing::warn!("policy {}: {e}", loaded.compiled.name);
            }
        }
        for slot in loaded.slots.drain(..) {
            let _ = self.hooks.set(slot, HookConfig::default(), 0);
            self.slots.remove(&slot);
        }
        for s in &loaded.compiled.strings {
            let _ = self.put_string(s, false);
        }
        self.uninstall_follow(&loaded.compiled);
    }

    /// `followForks` and `followChildren`: the bits of the processes running now (the
    /// kernel keeps them for processes to come), and the exec-time binary filters.
    fn install_follow(&mut self, compiled: &Compiled) -> Result<(), aya::maps::MapError> {
        if compiled.follow.is_empty() {
            return Ok(());
        }
        let procs = crate::process::procfs::scan(Path::new("/proc"), Path::new("/sys/fs/cgroup"));
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for p in &procs {
            children.entry(p.ppid).or_default().push(p.pid);
        }
        for f in &compiled.follow {
            let (bit, roots): (u8, Vec<u32>) = match f {
                compile::Follow::Pids {
                    bit,
                    pids,
                    namespace: false,
                } => (*bit, pids.clone()),
                // Pids as each process's own namespace numbers it (`NSpid`).
                compile::Follow::Pids {
                    bit,
                    pids,
                    namespace: true,
                } => (
                    *bit,
                    procs
                        .iter()
                        .filter(|p| {
                            std::fs::read_to_string(format!("/proc/{}/status", p.pid))
                                .ok()
                                .and_then(|s| crate::process::procfs::parse_ns_pid(&s))
                                .is_some_and(|n| pids.contains(&n))
                        })
                        .map(|p| p.pid)
                        .collect(),
                ),
                compile::Follow::Binary(b) => {
                    let slot = (0..MAX_BIN_FOLLOW)
                        .find(|i| self.bin_follow.get(i, 0).is_ok_and(|e| e.op == 0))
                        .ok_or(aya::maps::MapError::OutOfBounds {
                            index: MAX_BIN_FOLLOW,
                            max_entries: MAX_BIN_FOLLOW,
                        })?;
                    self.bin_follow.set(slot, *b, 0)?;
                    let values: Vec<&StrEntry> = compiled
                        .strings
                        .iter()
                        .filter(|s| s.filter_id & !LONG_PREFIX == b.id)
                        .collect();
                    let matches = |path: &str| {
                        values.iter().any(|v| match v.map {
                            StrMap::Equal if v.filter_id & LONG_PREFIX != 0 => {
                                path.as_bytes().starts_with(&v.value)
                            }
                            StrMap::Equal => path.as_bytes() == v.value.as_slice(),
                            StrMap::Cidr(_) => false,
                            StrMap::Prefix => path.as_bytes().starts_with(&v.value),
                            StrMap::Postfix => {
                                let mut rev = v.value.clone();
                                rev.reverse();
                                path.as_bytes().ends_with(&rev)
                            }
                        })
                    };
                    (
                        b.bit,
                        procs
                            .iter()
                            .filter(|p| matches(&p.binary))
                            .map(|p| p.pid)
                            .collect(),
                    )
                }
            };
            // The roots and every descendant.
            let mut todo = roots;
            let mut seen = std::collections::HashSet::new();
            while let Some(pid) = todo.pop() {
                if !seen.insert(pid) {
                    continue;
                }
                let old = self.follow.get(&pid, 0).unwrap_or(0);
                self.follow.insert(pid, old | (1u64 << bit), 0)?;
                todo.extend(children.get(&pid).into_iter().flatten().copied());
            }
        }
        let any_binary =
            (0..MAX_BIN_FOLLOW).any(|i| self.bin_follow.get(&i, 0).is_ok_and(|e| e.op != 0));
        let _ = self.set_config(TRACK_BINARIES | if any_binary { FOLLOW_BINARIES } else { 0 });
        Ok(())
    }

    fn uninstall_follow(&mut self, compiled: &Compiled) {
        let bits = follow_bits(compiled);
        if bits == 0 {
            return;
        }
        for i in 0..MAX_BIN_FOLLOW {
            if self
                .bin_follow
                .get(&i, 0)
                .is_ok_and(|e| e.op != 0 && bits & (1u64 << e.bit) != 0)
            {
                let _ = self.bin_follow.set(i, BinFollow::default(), 0);
            }
        }
        let keys: Vec<u32> = self.follow.keys().filter_map(Result::ok).collect();
        for pid in keys {
            if let Ok(v) = self.follow.get(&pid, 0)
                && v & bits != 0
            {
                let _ = self.follow.insert(pid, v & !bits, 0);
            }
        }
        let any_binary =
            (0..MAX_BIN_FOLLOW).any(|i| self.bin_follow.get(&i, 0).is_ok_and(|e| e.op != 0));
        let _ = self.set_config(TRACK_BINARIES | if any_binary { FOLLOW_BINARIES } else { 0 });
    }

    fn put_string(&mut self, s: &StrEntry, insert: bool) -> Result<(), aya::maps::MapError> {
        let mut data = [0u8; STRING_MAX];
        let n = s.value.len().min(STRING_MAX - 1);
        data[..n].copy_from_slice(&s.value[..n]);
        match s.map {
            StrMap::Equal => {
                let key = StrKey {
                    id: s.filter_id,
                    len: n as u32,
                    data,
                };
                if insert {
                    self.str_equal.insert(key, 1, 0)
                } else {
                    self.str_equal.remove(&key)
                }
            }
            StrMap::Cidr(bits) => {
                let mut prefix = [0u8; PREFIX_MAX];
                let n = s.value.len().min(16);
                prefix[..n].copy_from_slice(&s.value[..n]);
                let key = Key::new(
                    32 + u32::from(bits),
                    StrPrefix {
                        id: s.filter_id.to_be_bytes(),
                        data: prefix,
                    },
                );
                if insert {
                    self.str_prefix.insert(&key, 1, 0)
                } else {
                    self.str_prefix.remove(&key)
                }
            }
            StrMap::Prefix | StrMap::Postfix => {
                let n = n.min(PREFIX_MAX);
                let mut prefix = [0u8; PREFIX_MAX];
                prefix[..n].copy_from_slice(&data[..n]);
                let key = Key::new(
                    32 + 8 * n as u32,
                    StrPrefix {
                        id: s.filter_id.to_be_bytes(),
                        data: prefix,
                    },
                );
                let map = if s.map == StrMap::Prefix {
                    &mut self.str_prefix
                } else {
                    &mut self.str_postfix
                };
                if insert {
                    map.insert(&key, 1, 0)
                } else {
                    map.remove(&key)
                }
            }
        }
    }

    fn reset_counters(&mut self, id: u32) {
        let cpus = aya::util::nr_cpus().unwrap_or(1);
        for c in 0..POLICY_COUNTERS_PER {
            if let Ok(values) = aya::maps::PerCpuValues::try_from(vec![0u64; cpus]) {
                let _ = self.counters.set(id * POLICY_COUNTERS_PER + c, values, 0);
            }
        }
    }

    /// The policy and hook of a slot.
    pub fn hook(&self, slot: u32) -> Option<(&Compiled, &Hook)> {
        let (name, i) = self.slots.get(&slot)?;
        let loaded = self.policies.get(name)?;
        Some((&loaded.compiled, loaded.compiled.hooks.get(*i)?))
    }

    /// Every loaded policy's counters.
    pub fn counts(&self) -> Vec<PolicyCounts> {
        self.policies
            .iter()
            .map(|(name, l)| {
                let get = |c: u32| {
                    self.counters
                        .get(&(l.id * POLICY_COUNTERS_PER + c), 0)
                        .map(|v| v.iter().sum::<u64>())
                        .unwrap_or(0)
                };
                PolicyCounts {
                    name: name.clone(),
                    seen: get(POLICY_SEEN),
                    matched: get(POLICY_MATCHED),
                    posted: get(POLICY_POSTED),
                    lost: get(POLICY_LOST),
                    rate_limited: get(POLICY_RATE_LIMITED),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::policy::{PIDS_NOT_IN, PidFilter};

    use super::*;

    fn hook(pids: &[PidFilter]) -> HookConfig {
        let mut config = HookConfig {
            nsel: pids.len() as u32,
            ..HookConfig::default()
        };
        for (sel, p) in config.selectors.iter_mut().zip(pids) {
            sel.pids = *p;
        }
        config
    }

    fn pids(op: u8, values: &[u32]) -> PidFilter {
        let mut p = PidFilter {
            op,
            n: values.len() as u8,
            ..PidFilter::default()
        };
        p.values[..values.len()].copy_from_slice(values);
        p
    }

    #[test]
    fn a_hook_is_gated_on_pids_only_when_every_selector_names_them() {
        let both = hook(&[pids(PIDS_IN, &[7, 3]), pids(PIDS_IN, &[3, 9])]);
        assert_eq!(pid_gate(&both), Some(vec![3, 7, 9]));
        // No selectors: every hit is posted.
        assert_eq!(pid_gate(&hook(&[])), None);
        // One selector without matchPIDs lets any process through.
        let open = hook(&[pids(PIDS_IN, &[7]), PidFilter::default()]);
        assert_eq!(pid_gate(&open), None);
        assert_eq!(pid_gate(&hook(&[pids(PIDS_NOT_IN, &[7])])), None);
        let mut follow = pids(PIDS_IN, &[7]);
        follow.follow = 1;
        assert_eq!(pid_gate(&hook(&[follow])), None);
        let mut ns = pids(PIDS_IN, &[1]);
        ns.namespace = 1;
        assert_eq!(pid_gate(&hook(&[ns])), None);
    }
}
