//! Hook points: where policy hooks run (a tracepoint, a kernel function, a syscall), each
//! with the list of its hooks and what lets the kernel reject a call for all of them at
//! once.
//!
//! The agent attaches one program per hook point with the hook point's id as its BPF
//! cookie (or, for the raw syscall tracepoints and BPF trampolines, in a map the
//! program reads), and keeps the [`HookPoint`] in `HOOK_POINTS` at that id. On a call
//! the engine decides, cheapest first:
//!
//! 1. **The process** ([`Verdict`]): which of the hook point's hooks can match this
//!    process at all, from their `matchPIDs`, `matchBinaries`, `matchNamespaces`,
//!    `matchCapabilities` and pod scope. Decided once per process and hook point, and
//!    cached: per CPU for the last process ([`VerdictL1`]), per process in
//!    [`ProcVerdicts`]. The exec, fork and exit hooks drop a process's verdicts; the
//!    agent bumps [`HookPoint::epoch`] when anything they depend on changes; a verdict
//!    that depends on the process's credentials, namespaces or cgroup records them and
//!    is recomputed when they change.
//! 2. **The argument** ([`ArgGate`]): the hooks whose every selector filters the same
//!    argument with `Equal` (integers, strings) or `Prefix` (strings) share one lookup
//!    of that argument ([`GateHit`]): which of them this value can satisfy.
//!
//! Only the hooks both leave standing are evaluated whole.

use super::hook::{ArgConfig, FieldRead, KprobeLayout, MAX_FIELD_READS, SockLayout};

// --- `HookPoint::flags`. ---

/// Some hook has a process-level filter: look up the process's verdict.
pub const HP_VERDICT: u32 = 1;
/// The verdicts depend on the process's credentials (`matchCapabilities`, user
/// namespaces) ...
pub const HP_DEP_CRED: u32 = 1 << 1;
/// ... on its other namespaces ...
pub const HP_DEP_NS: u32 = 1 << 2;
/// ... on its cgroup (pod-scoped policies).
pub const HP_DEP_CGROUP: u32 = 1 << 3;
/// Some hook is not covered by the argument gate (its `HookConfig::gate` is not the
/// hook point's).
pub const HP_UNCOVERED: u32 = 1 << 4;
/// The entry half of return probes: the record is kept per thread (`RET_ENTRY`, keyed
/// by thread and this hook point) for the return half, and no hook runs here.
pub const HP_SAVE_ENTRY: u32 = 1 << 5;
/// The return half: the return value is at 16 of the record the program is given (a
/// `sys_exit_NAME` record, or one the kretprobe program writes); the hooks run on the
/// entry's record (kept by hook point `pair`) with the return value at `RETURN_AT`.
pub const HP_RETURN: u32 = 1 << 6;
/// A return whose value is a `struct sock *` (`inet_csk_accept`): the kretprobe program
/// writes its fields at `SOCK_RETURN_AT` plus `sock`.
pub const HP_SOCK_RETURN: u32 = 1 << 7;
/// A kprobe on a syscall's wrapper (`syscall: true`): its argument is the syscall's
/// `struct pt_regs *`, from which the program reads the six arguments into a record laid
/// out as the `syscalls/sys_enter_NAME` tracepoint's (arguments at 16 + 8 i).
pub const HP_KPROBE_SYSCALL: u32 = 1 << 8;
/// A kprobe on any other kernel function: its six argument registers go to the record at
/// 16 + 8 i, and the struct argument `kprobe` names at `KPROBE_PATH_AT`. (Neither this
/// nor `HP_KPROBE_SYSCALL`: a socket function, its argument 0's socket written as a
/// `sock:inet_sock_set_state` record laid out as `sock` says.)
pub const HP_KPROBE_GENERIC: u32 = 1 << 9;
/// A USDT probe point: its arguments, read as `HookPoint::usdt` says (from the
/// process's registers and memory), go to the record at 16 + 8 i, as a generic kprobe's
/// registers do.
pub const HP_USDT: u32 = 1 << 10;

/// USDT arguments a hook point reads (`sdt.h` allows 12; Tetragon reads 6).
pub const USDT_ARGS: usize = 6;
/// `UsdtArg::kind`: no argument ...
pub const USDT_NONE: u8 = 0;
/// ... a constant (`$5`): `value` ...
pub const USDT_CONST: u8 = 1;
/// ... a register (`%rdi`): the `pt_regs` field at `reg` ...
pub const USDT_REG: u8 = 2;
/// ... memory at a register plus `value` (`-8(%rbp)`), in the process.
pub const USDT_DEREF: u8 = 3;

/// How to read one argument of a USDT probe point, as its note in the binary describes
/// it (`8@%rdi`, `-4@-20(%rbp)`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UsdtArg {
    /// `USDT_*`.
    pub kind: u8,
    /// Its size in bytes (1, 2, 4, 8) ...
    pub size: u8,
    /// ... and 1 when it is signed (sign-extended to 64 bits).
    pub signed: u8,
    pub _pad: u8,
    /// The register's offset in `struct pt_regs` (from BTF).
    pub reg: u32,
    pub value: i64,
}

/// `ArgGate::kind`: no gate.
pub const GATE_NONE: u32 = 0;
/// An integer argument, looked up in `GATE_INTS`.
pub const GATE_INT: u32 = 1;
/// A string argument, its first `GATE_STR_BYTES` bytes looked up in `GATE_STRS`.
pub const GATE_STR: u32 = 2;
/// Bytes of a string the gate reads: `Equal` values shorter than this are matched with
/// their NUL, longer ones and `Prefix` values by their first bytes (the hooks it lets
/// through are then evaluated whole).
pub const GATE_STR_BYTES: usize = 8;

/// Hooks a [`Verdict`] or a [`GateHit`] lists; more are [`CANDIDATES_ALL`].
pub const VERDICT_HOOKS: usize = 4;
/// Every hook of its kind on the hook point (too many to list).
pub const CANDIDATES_ALL: u32 = u32::MAX;
/// Hook points whose verdicts one process keeps ([`ProcVerdicts`]), by id modulo this.
pub const VERDICT_WAYS: usize = 8;
/// Entries of the per-CPU verdict cache ([`VerdictL1`]), by hook point id modulo this.
pub const VERDICT_L1_WAYS: u32 = 64;

/// The gate of a hook point: one argument, read once, looked up once.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgGate {
    /// `GATE_*`.
    pub kind: u32,
    /// The key prefix of its values in `GATE_INTS` / `GATE_STRS`, and the
    /// `HookConfig::gate` of the hooks it covers. A new gate gets a new id, so that a
    /// hook is covered by the gate whose entries list it, whichever the engine read.
    pub id: u32,
    /// How to read the argument.
    pub arg: ArgConfig,
}

/// A hook point.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookPoint {
    /// Its first hook (`HOOKS` key; 0: none, the hook point is idle).
    pub first: u32,
    /// Bumped by the agent whenever its list, or what its verdicts depend on (pod scopes,
    /// `followForks` bits of running processes, binaries learnt from /proc), changes.
    pub epoch: u32,
    /// `HP_*` bits.
    pub flags: u32,
    /// Hooks on its list.
    pub nhooks: u32,
    /// `HP_RETURN`: the hook point whose records it joins.
    pub pair: u32,
    pub _pad: u32,
    pub gate: ArgGate,
    /// Kprobes: the struct argument the program reads (`HP_KPROBE_GENERIC`) ...
    pub kprobe: KprobeLayout,
    /// ... and where it writes a socket's fields.
    pub sock: SockLayout,
    /// `HP_USDT`: its arguments.
    pub usdt: [UsdtArg; USDT_ARGS],
    /// `HP_KPROBE_GENERIC`: the fields of struct arguments it reads
    /// (`KPROBE_ARG_FIELDS`).
    pub fields: [FieldRead; MAX_FIELD_READS],
}

/// Key of `GATE_INTS`: a gate and a value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GateIntKey {
    pub id: u32,
    pub _pad: u32,
    pub value: u64,
}

/// Data of a `GATE_STRS` LPM key: the gate (big-endian, matched whole), then the first
/// bytes of the string.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GateStrKey {
    pub id: [u8; 4],
    pub data: [u8; GATE_STR_BYTES],
}

/// The hooks a gate's value can satisfy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateHit {
    /// Hooks listed, or `CANDIDATES_ALL`.
    pub n: u32,
    pub hooks: [u32; VERDICT_HOOKS],
}

/// Which hooks of a hook point can match a process: the hooks not covered by the gate
/// that can (listed, or all), and whether any covered one can.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Uncovered candidates listed in `hooks`, or `CANDIDATES_ALL`.
    pub n: u32,
    /// 1: some hook covered by the gate can match (the gate then decides which).
    pub covered: u32,
    pub hooks: [u32; VERDICT_HOOKS],
}

/// One hook point's verdict for a process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSlot {
    /// The hook point's id + 1 (0: empty).
    pub point: u32,
    /// Its epoch when the verdict was made.
    pub epoch: u32,
    pub verdict: Verdict,
}

/// The verdicts of one process (`VERDICTS`, keyed by tgid), and the credentials,
/// namespaces and cgroup those that depend on them were made with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcVerdicts {
    /// `task->cred`, `task->nsproxy` (pointers) and the cgroup id; 0: not recorded.
    pub cred: u64,
    pub nsproxy: u64,
    pub cgroup: u64,
    pub slots: [ProcSlot; VERDICT_WAYS],
}

/// The per-CPU cache in front of `VERDICTS`: the last verdict of a process for a hook
/// point on this CPU, valid while no process has exec'd or ended since (`GEN`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerdictL1 {
    pub tgid: u32,
    /// The hook point's id + 1 (0: empty).
    pub point: u32,
    /// The hook point's epoch and `GEN[0]` when filled.
    pub epoch: u32,
    pub _pad: u32,
    pub generation: u64,
    pub cred: u64,
    pub nsproxy: u64,
    pub cgroup: u64,
    pub verdict: Verdict,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY (all): `#[repr(C)]` plain data, integers and byte arrays, padding explicit
    // and asserted below.
    unsafe impl aya::Pod for super::HookPoint {}
    unsafe impl aya::Pod for super::GateIntKey {}
    unsafe impl aya::Pod for super::GateStrKey {}
    unsafe impl aya::Pod for super::GateHit {}
    unsafe impl aya::Pod for super::ProcVerdicts {}
}

const _: () = assert!(core::mem::size_of::<ArgGate>() == 16);
const _: () = assert!(core::mem::size_of::<UsdtArg>() == 16);
const _: () = assert!(
    core::mem::size_of::<HookPoint>()
        == 24 + 16 + 12 + 28 + 16 * USDT_ARGS + 16 * super::hook::MAX_FIELD_READS
);
const _: () = assert!(core::mem::size_of::<GateIntKey>() == 16);
const _: () = assert!(core::mem::size_of::<GateStrKey>() == 4 + GATE_STR_BYTES);
const _: () = assert!(core::mem::size_of::<GateHit>() == 4 + 4 * VERDICT_HOOKS);
const _: () = assert!(core::mem::size_of::<Verdict>() == 8 + 4 * VERDICT_HOOKS);
const _: () = assert!(core::mem::size_of::<ProcSlot>() == 8 + core::mem::size_of::<Verdict>());
const _: () = assert!(
    core::mem::size_of::<ProcVerdicts>() == 24 + VERDICT_WAYS * core::mem::size_of::<ProcSlot>()
);
const _: () = assert!(core::mem::size_of::<VerdictL1>() == 48 + core::mem::size_of::<Verdict>());
