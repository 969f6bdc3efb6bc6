//! Every map of the programs, in one place.

use aya_ebpf::{
    macros::map,
    maps::{
        Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf, lpm_trie::Key,
    },
};
use tracer_common::{
    counters::COUNTERS_LEN,
    policy::{
        ArgValue, BinFollow, HookConfig, MAX_BIN_FOLLOW, MAX_HOOK_ARGS, MAX_POLICIES,
        POLICY_COUNTERS_PER, RateKey, SYSCALL_IDS, StrKey, StrPrefix, SyscallRecord, TP_SLOTS,
        TracepointEvent,
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

// --- Tracing policies (`hooks/policy.rs`), filled by the agent. ---

/// The hook of each slot (`hooks/policy.rs`).
#[map]
pub static HOOKS: Array<HookConfig> = Array::with_max_entries(TP_SLOTS, 0);

/// Syscall hooks (`hooks/syscall.rs`): the slots to run for each syscall number, at
/// `direction * SYSCALL_IDS + number` (a bit per slot).
#[map]
pub static SYSCALL_SLOTS: Array<u32> = Array::with_max_entries(2 * SYSCALL_IDS, 0);

/// Slots that run on every syscall of a direction (`raw_syscalls` hooks).
#[map]
pub static SYSCALL_ANY: Array<u32> = Array::with_max_entries(2, 0);

/// Routed slots whose every selector names its processes (`matchPIDs` `In`, without
/// `followForks` or `isNamespacePID`): they run only for a process in `SYSCALL_PID_GATE`,
/// which the dispatcher checks before it reads anything (a bit per slot, at `[0]`).
#[map]
pub static SYSCALL_GATED: Array<u32> = Array::with_max_entries(1, 0);

/// The gated slots each listed process (tgid) may reach.
#[map]
pub static SYSCALL_PID_GATE: HashMap<u32, u32> =
    HashMap::with_max_entries(tracer_common::policy::MAX_GATE_PIDS, 0);

/// The syscall record being evaluated, and the slots still to run on it.
#[map]
pub static SYSCALL_RECORD: PerCpuArray<SyscallRecord> = PerCpuArray::with_max_entries(1, 0);

/// `[0]`: the program that runs the policy slots on `SYSCALL_RECORD`, one slot per tail
/// call.
#[map]
pub static SYSCALL_PROGS: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The runners of the policy slots, one per program type: a slot program records its
/// slot in `SLOT_ARG` and tail-calls its type's runner, so the selector code is in the
/// object (and verified) once per type instead of once per slot. `[0]`: tracepoints.
#[map]
pub static TP_RUNNER: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// `[0]`: kprobes; `[1]`: kretprobes (the same program type).
#[map]
pub static KPROBE_RUNNERS: ProgramArray = ProgramArray::with_max_entries(2, 0);

/// The slot a slot program hands to its runner, on this CPU. Tracepoint and kprobe
/// programs do not nest on one CPU (the kernel's `bpf_prog_active`), so nothing runs
/// between the write and the tail call that reads it.
#[map]
pub static SLOT_ARG: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Strings of `Equal`/`NotEqual` filters: (filter id, string) present.
#[map]
pub static STR_EQUAL: HashMap<StrKey, u8> = HashMap::with_max_entries(8192, 0);

/// Prefixes of `Prefix`/`NotPrefix` filters, after the filter id.
#[map]
pub static STR_PREFIX: LpmTrie<StrPrefix, u8> = LpmTrie::with_max_entries(8192, BPF_F_NO_PREALLOC);

/// Postfixes of `Postfix`/`NotPostfix` filters, reversed, after the filter id.
#[map]
pub static STR_POSTFIX: LpmTrie<StrPrefix, u8> = LpmTrie::with_max_entries(8192, BPF_F_NO_PREALLOC);

/// Per-policy counters, indexed as `tracer_common::policy::POLICY_*` say.
#[map]
pub static POLICY_COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(MAX_POLICIES * POLICY_COUNTERS_PER, 0);

/// Scratch: the event being evaluated (too large for the stack).
#[map]
pub static TP_SCRATCH: PerCpuArray<TracepointEvent> = PerCpuArray::with_max_entries(1, 0);

/// Last post of each `rateLimit` window.
#[map]
pub static RATE: LruHashMap<RateKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// `CONFIG[0]`: `TRACK_BINARIES`, set by the agent when policies run.
#[map]
pub static CONFIG: Array<u32> = Array::with_max_entries(1, 0);

/// Binary of every process (natural-order path, zero-padded), kept from exec to exit and
/// inherited at fork, for `matchBinaries`. Entries are allocated as processes come.
#[map]
pub static EXEC_PATHS: HashMap<u32, StrKey> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

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

/// Return probes: the entry's record, per (thread id << 32 | entry slot), until the return.
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
