//! Every map of the programs, in one place.

use aya_ebpf::{
    macros::map,
    maps::{
        Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf, StackTrace,
        lpm_trie::Key,
    },
};
use tracer_common::{
    counters::COUNTERS_LEN,
    handover,
    limits::{STACK_DEPTH, STACK_TRACES},
    policy::{
        ArgValue, BinFollow, EnforcerData, ExecCaps, GateHit, GateIntKey, GateStrKey, HookConfig,
        HookPoint, MAX_BIN_FOLLOW, MAX_HOOK_ARGS, PolicyCounters, ProcVerdicts, RateKey,
        SYSCALL_IDS, SetRequest, SockOwner, StrKey, StrPrefix, SyscallRecord, TracepointEvent,
        VERDICT_L1_WAYS, VerdictL1,
    },
};

/// Size of the `EVENTS` ring buffer in bytes (a power of two, a multiple of the page size).
/// The agent may resize it at load time (`--ring-buffer-size`).
pub const EVENTS_BYTES: u32 = 16 << 20;

/// The one ring buffer every hook writes to; one buffer for all CPUs keeps the records of
/// one process (fork, exec, exit) in the order they happened.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Per-CPU counters, indexed by `tracer_common::counters::counter_index`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS_LEN, 0);

/// What one agent hands the next (`tracer_common::handover`): pinned with `EVENTS` and
/// `COUNTERS`. The lifecycle programs read the active generation from it.
#[map]
pub static HANDOVER: Array<u64> = Array::with_max_entries(handover::SLOTS, 0);

// --- Tracing policies (`policy/`), filled by the agent. The sizes of the maps that grow
// with the policies loaded are set by the agent at load time (`loader.rs`); those
// written as policies come are hash maps and tries without preallocation, which take
// memory only for what they hold. ---

/// Every hook of every policy, by hook id (`HookConfig::id`).
#[map]
pub static HOOKS: HashMap<u32, HookConfig> =
    HashMap::with_max_entries(DEFAULT_CAPACITY, BPF_F_NO_PREALLOC);

/// The hook points, by id (the BPF cookie of their attachments).
#[map]
pub static HOOK_POINTS: Array<HookPoint> = Array::with_max_entries(DEFAULT_HOOK_POINTS, 0);

/// Per-policy counters (`tracer_common::policy::POLICY_*`), by policy id; the agent
/// creates a policy's entry before its hooks can run.
#[map]
pub static POLICY_COUNTERS: PerCpuHashMap<u32, PolicyCounters> =
    PerCpuHashMap::with_max_entries(DEFAULT_CAPACITY, BPF_F_NO_PREALLOC);

/// Argument gates: the hooks an integer value can satisfy ...
#[map]
pub static GATE_INTS: HashMap<GateIntKey, GateHit> =
    HashMap::with_max_entries(DEFAULT_CAPACITY, BPF_F_NO_PREALLOC);

/// ... and those a string's first bytes can.
#[map]
pub static GATE_STRS: LpmTrie<GateStrKey, GateHit> =
    LpmTrie::with_max_entries(DEFAULT_CAPACITY, BPF_F_NO_PREALLOC);

/// The verdicts of each process (tgid) that has hit a hook point with process-level
/// filters; dropped at its exec and its end (`hooks/process.rs`).
#[map]
pub static VERDICTS: HashMap<u32, ProcVerdicts> =
    HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

/// The per-CPU cache in front of `VERDICTS`, by hook point id modulo its size.
#[map]
pub static VERDICT_CACHE: PerCpuArray<VerdictL1> =
    PerCpuArray::with_max_entries(VERDICT_L1_WAYS, 0);

/// Scratch of the verdict cache: a process's entry on its way into `VERDICTS`.
#[map]
pub static PROC_SCRATCH: PerCpuArray<ProcVerdicts> = PerCpuArray::with_max_entries(1, 0);

/// `[0]`: changed at every exec and every process's end, which invalidates
/// `VERDICT_CACHE`.
#[map]
pub static GEN: Array<u64> = Array::with_max_entries(1, 0);

/// Syscall hooks on the raw `sys_enter`/`sys_exit` tracepoints (`hooks/syscall.rs`): the
/// hook point of each syscall number, at `direction * SYSCALL_IDS + number` (0: none) ...
#[map]
pub static SYSCALL_POINTS: Array<u32> = Array::with_max_entries(2 * SYSCALL_IDS, 0);

/// ... and of every syscall of a direction (`raw_syscalls` hooks).
#[map]
pub static SYSCALL_ANY: Array<u32> = Array::with_max_entries(2, 0);

/// The syscall record being evaluated.
#[map]
pub static SYSCALL_RECORD: PerCpuArray<SyscallRecord> = PerCpuArray::with_max_entries(1, 0);

/// The hook point of each fentry program (`[i]`, `policy_fe_i`) and BPF LSM program
/// (`[BTF_PROGRAMS + i]`, `policy_lsm_i`): each is loaded for one function; and of each
/// raw tracepoint program (`[2 * BTF_PROGRAMS + i]`, `policy_rtp_i`), attached to one
/// tracepoint.
#[map]
pub static BTF_POINTS: Array<u32> = Array::with_max_entries(2 * BTF_PROGRAMS + RAW_TP_PROGRAMS, 0);

/// Strings of `Equal`/`NotEqual` filters: (filter id, string) present.
#[map]
pub static STR_EQUAL: HashMap<StrKey, u8> =
    HashMap::with_max_entries(DEFAULT_CAPACITY, BPF_F_NO_PREALLOC);

/// Prefixes of `Prefix`/`NotPrefix` filters, after the filter id.
#[map]
pub static STR_PREFIX: LpmTrie<StrPrefix, u8> =
    LpmTrie::with_max_entries(DEFAULT_CAPACITY, BPF_F_NO_PREALLOC);

/// Postfixes of `Postfix`/`NotPostfix` filters, reversed, after the filter id.
#[map]
pub static STR_POSTFIX: LpmTrie<StrPrefix, u8> =
    LpmTrie::with_max_entries(DEFAULT_CAPACITY, BPF_F_NO_PREALLOC);

/// The address of the record the hooks of a call are evaluated on, for the evaluation
/// (a global function, which takes no pointer to the program's context).
#[map]
pub static RECORD: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Scratch of the engine's walks over a hook point's list (`policy/eval.rs`,
/// `policy/verdict.rs`).
#[map]
pub static WALK: PerCpuArray<crate::policy::Walk> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static SCAN: PerCpuArray<crate::policy::Scan> = PerCpuArray::with_max_entries(1, 0);

/// Scratch: the event being evaluated (too large for the stack).
#[map]
pub static TP_SCRATCH: PerCpuArray<TracepointEvent> = PerCpuArray::with_max_entries(1, 0);

/// The stacks of posted events (`kernelStackTrace`, `userStackTrace`, see
/// `policy/eval.rs`), by the id each event carries. Read by the agent, which deletes
/// each once no event refers to it (the programs can only add).
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(STACK_TRACES, 0);
const _: () = assert!(STACK_DEPTH == aya_ebpf::bindings::PERF_MAX_STACK_DEPTH as usize);

/// Last post of each `rateLimit` window.
#[map]
pub static RATE: LruHashMap<RateKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// What `NotifyEnforcer` asks of each thread's next enforced call (`hooks/enforcer.rs`),
/// by `pid_tgid`, until that call (or the least recently used goes).
#[map]
pub static ENFORCER: LruHashMap<u64, EnforcerData> = LruHashMap::with_max_entries(8192, 0);

/// A `Set` that matched, for the `policy_usdt_set` program the evaluation runs under.
#[map]
pub static SET_REQUEST: PerCpuArray<SetRequest> = PerCpuArray::with_max_entries(1, 0);

/// The process that tracks each socket (`TrackSock`, `returnArgAction: TrackSock`),
/// by `struct sock` address, until `UntrackSock` (or the least recently used goes).
#[map]
pub static SOCK_OWNERS: LruHashMap<u64, SockOwner> = LruHashMap::with_max_entries(32768, 0);

/// `CONFIG[0]`: `TRACK_BINARIES`, set by the agent when policies run.
#[map]
pub static CONFIG: Array<u32> = Array::with_max_entries(1, 0);

/// Binary of every process (natural-order path, zero-padded), kept from exec to exit and
/// inherited at fork, for `matchBinaries`. Entries are allocated as processes come.
#[map]
pub static EXEC_PATHS: HashMap<u32, StrKey> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

/// Capability sets of every process at its exec, kept and inherited as `EXEC_PATHS`, for
/// `matchCapabilityChanges`.
#[map]
pub static EXEC_CAPS: HashMap<u32, ExecCaps> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

/// `followForks` / `followChildren` bits of each process (inherited at fork, dropped at
/// exit).
#[map]
pub static FOLLOW: HashMap<u32, u64> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

/// `followChildren` filters evaluated at each exec.
#[map]
pub static BIN_FOLLOW: Array<BinFollow> = Array::with_max_entries(MAX_BIN_FOLLOW, 0);

/// Scratch of the exec hook: the binary's path in reading order, and its map value.
#[repr(C)]
pub struct NaturalScratch {
    pub start: u32,
    pub _pad: u32,
    pub buf: [u8; crate::kread::NATURAL_BUF],
}
#[map]
pub static BIN_NATURAL: PerCpuArray<NaturalScratch> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static BIN_KEY: PerCpuArray<StrKey> = PerCpuArray::with_max_entries(1, 0);
/// Scratch of the policy program: the key of a long `Prefix` lookup.
#[map]
pub static LONG_KEY: PerCpuArray<StrKey> = PerCpuArray::with_max_entries(1, 0);
/// Scratch of the policy program: the process's binary as an argument value.
#[map]
pub static BIN_VALUE: PerCpuArray<ArgValue> = PerCpuArray::with_max_entries(1, 0);

/// Per string argument: its lookup keys (`Equal`, `Prefix`, reversed for `Postfix`),
/// built once per hit; the filter id is set before each lookup. The last slot is the
/// process's binary.
#[map]
pub static ARG_EQUAL_KEYS: PerCpuArray<StrKey> = PerCpuArray::with_max_entries(KEY_SLOTS, 0);
#[map]
pub static ARG_PREFIX_KEYS: PerCpuArray<Key<StrPrefix>> =
    PerCpuArray::with_max_entries(KEY_SLOTS, 0);
#[map]
pub static ARG_POSTFIX_KEYS: PerCpuArray<Key<StrPrefix>> =
    PerCpuArray::with_max_entries(KEY_SLOTS, 0);

/// A kprobe's socket as a `sock:inet_sock_set_state` record (`hooks/kprobe.rs`).
#[repr(C)]
pub struct SockRecord {
    pub bytes: [u8; SockRecord::LEN],
}
impl SockRecord {
    /// Larger than the tracepoint's record (about 70 bytes) and a generic kprobe's (six
    /// arguments, then a path at 256), a power of two.
    pub const LEN: usize = 512;
    pub const MASK: usize = Self::LEN - 1;
}
#[map]
pub static SOCK_RECORD: PerCpuArray<SockRecord> = PerCpuArray::with_max_entries(1, 0);

/// Return probes: the entry's record, per (thread id << 32 | entry hook point), until the
/// return.
#[map]
pub static RET_ENTRY: LruHashMap<u64, SockRecord> = LruHashMap::with_max_entries(8192, 0);
/// Scratch of return probes: a record on its way into or out of `RET_ENTRY`.
#[map]
pub static RET_SCRATCH: PerCpuArray<SockRecord> = PerCpuArray::with_max_entries(1, 0);

/// Scratch of the kprobe programs: a `file`/`path` argument's walk, leaf first ...
#[repr(C)]
pub struct KprobePath {
    pub len: u32,
    pub flags: u32,
    pub buf: [u8; tracer_common::limits::PATH_BUF],
}
#[map]
pub static KPROBE_PATH: PerCpuArray<KprobePath> = PerCpuArray::with_max_entries(1, 0);
/// ... and in reading order.
#[map]
pub static KPROBE_NATURAL: PerCpuArray<NaturalScratch> = PerCpuArray::with_max_entries(1, 0);

/// Scratch of a `char_iovec` argument: its buffers one after another (twice the kept
/// bytes, so that each copy's end is in bounds wherever it starts).
/// `at` and `total` live here rather than in registers: the verifier then sees one state
/// per iteration, not one per path through the ones before.
#[repr(C)]
pub struct IovecScratch {
    pub at: u64,
    pub total: u64,
    /// The `struct iovec` being read (here, not on the stack: the capture is deep in the
    /// call chain, whose stack Linux 6.1 limits to 512 bytes in all).
    pub entry: [u64; 2],
    pub buf: [u8; 2 * tracer_common::policy::STRING_MAX],
}
#[map]
pub static IOVEC_SCRATCH: PerCpuArray<IovecScratch> = PerCpuArray::with_max_entries(1, 0);

/// The cgroups each pod-scoped policy applies to (`HOOK_CGROUP_SCOPE`), kept by the
/// agent from the pods it watches.
#[map]
pub static POLICY_SCOPE: HashMap<tracer_common::policy::ScopeKey, u8> =
    HashMap::with_max_entries(tracer_common::policy::MAX_SCOPE, 0);

/// A socket argument's address keys: `[0]` source, `[1]` destination.
#[map]
pub static SOCK_KEYS: PerCpuArray<Key<StrPrefix>> = PerCpuArray::with_max_entries(2, 0);

/// Key slots: one per argument, and the binary's.
pub const KEY_SLOTS: u32 = MAX_HOOK_ARGS as u32 + 1;
/// The binary's key slot.
pub const BINARY_SLOT: u32 = MAX_HOOK_ARGS as u32;

/// `BPF_F_NO_PREALLOC`, which LPM tries require.
const BPF_F_NO_PREALLOC: u32 = 1;

/// The size, in the object, of the maps that grow with the policies (hooks, policies,
/// string values, gate values); the agent sets their real size at load time.
pub const DEFAULT_CAPACITY: u32 = 65536;
/// Hook points, likewise.
pub const DEFAULT_HOOK_POINTS: u32 = 4096;
/// fentry programs, and BPF LSM programs, in the object (`hooks/fentry.rs`).
pub const BTF_PROGRAMS: u32 = 32;
/// Raw tracepoint programs of policies (`hooks/rawtp.rs`).
pub const RAW_TP_PROGRAMS: u32 = 8;
