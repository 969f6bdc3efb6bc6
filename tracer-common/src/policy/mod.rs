//! Tracing policies as the kernel runs them. The agent compiles each policy hook into a
//! [`HookConfig`] (in `HOOKS`, keyed by the hook's id) and groups the hooks by where
//! they run: a [`HookPoint`] (in `HOOK_POINTS`, indexed by the hook point's id, which is
//! the BPF cookie of the hook point's attachments) heads the list of its hooks, chained
//! through [`HookConfig::next`].
//!
//! On a hit, the kernel's engine (`tracer-ebpf/src/policy/`) looks at the hook point,
//! not at each hook: a cached per-process verdict ([`Verdict`]) says which hooks can
//! match this process at all (their `matchBinaries`, `matchPIDs`, `matchNamespaces`,
//! `matchCapabilities` and pod scope, decided once per process and hook point), and the
//! hook point's argument gate ([`ArgGate`]) which hooks this call's argument can
//! satisfy. Only those hooks are evaluated whole, in the list's order.
//!
//! - [`hook`]: one hook's configuration: arguments, selectors, actions.
//! - [`point`]: hook points, argument gates and the verdict cache.
//! - [`record`]: what the kernel builds and posts: argument values, the event record.

pub mod hook;
pub mod point;
pub mod record;

pub use hook::*;
pub use point::*;
pub use record::*;

/// Arguments captured per hook (a syscall has six).
pub const MAX_HOOK_ARGS: usize = 6;
/// Selectors per hook.
pub const MAX_SELECTORS: usize = 8;
/// `matchArgs` filters per selector.
pub const MAX_ARG_FILTERS: usize = 4;
/// Integer values per `matchArgs` filter (strings go to maps and have no such bound).
pub const MAX_INT_VALUES: usize = 4;
/// Values of a `matchPIDs` filter.
pub const MAX_PIDS: usize = 8;
/// Bytes of a string argument captured, and of a string value.
pub const STRING_MAX: usize = 256;
/// Bytes of a `Prefix`/`Postfix` value in the LPM tries: a key holds at most 256 bytes, 4
/// of them the filter id; 248 keeps the copy in whole 8-byte words. Longer `Prefix`
/// values (up to `STRING_MAX - 1`) go to `STR_EQUAL` under [`LONG_PREFIX`].
pub const PREFIX_MAX: usize = 248;
/// Filter id bit of a `Prefix` value longer than [`PREFIX_MAX`], kept whole in
/// `STR_EQUAL` with its length: a string longer than `PREFIX_MAX` that no LPM entry
/// matches is looked up there truncated to each length from its own down to 249.
pub const LONG_PREFIX: u32 = 1 << 31;

// --- Argument kinds (`ArgConfig::kind`): how to read an argument from the record. ---

pub const ARG_NONE: u8 = 0;
/// A signed integer of `size` bytes at `offset`.
pub const ARG_INT: u8 = 1;
/// An unsigned integer of `size` bytes at `offset`.
pub const ARG_UINT: u8 = 2;
/// A pointer at `offset` to a NUL-terminated string in user memory (syscall arguments).
pub const ARG_USER_STRING: u8 = 3;
/// A pointer at `offset` to a NUL-terminated string in kernel memory.
pub const ARG_KERNEL_STRING: u8 = 4;
/// A `char[size]` at `offset` in the record.
pub const ARG_CHAR_ARRAY: u8 = 5;
/// A `__data_loc char[]` at `offset`: u32, string offset in the low 16 bits.
pub const ARG_DATA_LOC: u8 = 6;
/// `common_pid`: the current thread's id. The record's first 8 bytes (the common fields)
/// hold a pointer by the time a BPF program runs, so it is not read from there.
pub const ARG_CURRENT_PID: u8 = 7;
/// A socket, read from a `sock:inet_sock_set_state` record at the offsets of
/// `HookConfig::sock` into a [`SockValue`] (in `ArgValue::str`), its address as `int`.
pub const ARG_SOCK: u8 = 8;
/// `size` raw bytes of the record at `offset` (a `cred` argument's [`CredValue`]).
pub const ARG_BYTES: u8 = 9;
/// A buffer in user (`ARG_USER_BYTES`) or kernel memory, its pointer at `offset` and its
/// size the word at `len_at` (`sizeArgIndex`'s argument, or the return value for
/// `returnCopy`): up to `STRING_MAX - 1` bytes in `str`, the full size in `int`.
pub const ARG_USER_BYTES: u8 = 10;
pub const ARG_KERNEL_BYTES: u8 = 11;
/// A `struct iovec` array in user memory (`char_iovec`), its pointer at `offset` and its
/// count the word at `len_at`: the bytes of its first `MAX_IOVECS` buffers, one after
/// another, up to `STRING_MAX - 1` in `str`; their full size in `int`.
pub const ARG_USER_IOVEC: u8 = 12;
pub const MAX_IOVECS: usize = 4;
/// A syscall number (`syscall64`): an unsigned integer of `size` bytes at `offset`, with
/// [`SYSCALL64_32BIT`] set when the current task is in a 32-bit syscall. Read as
/// `ARG_UINT` once marked.
pub const ARG_SYSCALL64: u8 = 13;
/// Tetragon's mark of a 32-bit syscall's number in a `syscall64` value.
pub const SYSCALL64_32BIT: u64 = 1 << 31;

/// `ArgConfig::flags`: a filter compares the argument whole (`Equal`, `NotEqual`).
pub const ARG_NEEDS_EQUAL: u8 = 1 << 0;
/// A filter compares its start (`Prefix`, `NotPrefix`).
pub const ARG_NEEDS_PREFIX: u8 = 1 << 1;
/// A filter compares its end (`Postfix`, `NotPostfix`).
pub const ARG_NEEDS_POSTFIX: u8 = 1 << 2;

// --- Operators (`ArgFilter::op`). ---

pub const OP_EQUAL: u8 = 1;
pub const OP_NOT_EQUAL: u8 = 2;
pub const OP_GT: u8 = 3;
pub const OP_LT: u8 = 4;
pub const OP_MASK: u8 = 5;
pub const OP_PREFIX: u8 = 6;
pub const OP_NOT_PREFIX: u8 = 7;
pub const OP_POSTFIX: u8 = 8;
pub const OP_NOT_POSTFIX: u8 = 9;
/// Socket operators (on an `ARG_SOCK` argument); `ArgFilter::negate` makes the `Not*`
/// forms. Addresses are looked up in `STR_PREFIX` (IPv4 mapped into IPv6, prefix length
/// 32 + the range's bits); the others compare the filter's integer values.
pub const OP_SADDR: u8 = 10;
pub const OP_DADDR: u8 = 11;
pub const OP_SPORT: u8 = 12;
pub const OP_DPORT: u8 = 13;
/// Port below 1024.
pub const OP_SPORT_PRIV: u8 = 14;
pub const OP_DPORT_PRIV: u8 = 15;
pub const OP_PROTOCOL: u8 = 16;
pub const OP_FAMILY: u8 = 17;
pub const OP_STATE: u8 = 18;

/// `PidFilter::op`, `NsFilter::op`, `CapFilter::op`.
pub const PIDS_NONE: u8 = 0;
pub const PIDS_IN: u8 = 1;
pub const PIDS_NOT_IN: u8 = 2;

/// `BinaryFilter::op` (`matchBinaries`); 0: none.
pub const BIN_IN: u8 = 1;
pub const BIN_NOT_IN: u8 = 2;
pub const BIN_PREFIX: u8 = 3;
pub const BIN_NOT_PREFIX: u8 = 4;
pub const BIN_POSTFIX: u8 = 5;
pub const BIN_NOT_POSTFIX: u8 = 6;

/// `NsFilter::ns`: which namespace of the process (`matchNamespaces`); 0: none.
pub const NS_UTS: u8 = 1;
pub const NS_IPC: u8 = 2;
pub const NS_MNT: u8 = 3;
pub const NS_PID: u8 = 4;
pub const NS_PID_FOR_CHILDREN: u8 = 5;
pub const NS_NET: u8 = 6;
pub const NS_TIME: u8 = 7;
pub const NS_TIME_FOR_CHILDREN: u8 = 8;
pub const NS_CGROUP: u8 = 9;
pub const NS_USER: u8 = 10;

/// `CapFilter::set`: which capability set (`matchCapabilities` `type`); 0: none.
pub const CAPS_EFFECTIVE: u8 = 1;
pub const CAPS_PERMITTED: u8 = 2;
pub const CAPS_INHERITABLE: u8 = 3;

/// The capability sets a process had at its exec (`EXEC_CAPS`, for
/// `matchCapabilityChanges`), at `CAPS_* - 1`.
pub type ExecCaps = [u64; 3];

/// `SelectorConfig::actions` bits (a selector's `matchActions` may hold several).
pub const ACTION_POST: u16 = 1 << 0;
pub const ACTION_NOPOST: u16 = 1 << 1;
pub const ACTION_SIGKILL: u16 = 1 << 2;
pub const ACTION_SIGNAL: u16 = 1 << 3;
/// `Override`: the hooked function does not run, its caller gets
/// `SelectorConfig::override_error` (a BPF LSM program returns it).
pub const ACTION_OVERRIDE: u16 = 1 << 4;
/// `GetUrl`: the agent fetches the selector's URL when the event arrives ...
pub const ACTION_GETURL: u16 = 1 << 5;
/// ... `DnsLookup`: it looks up the selector's name.
pub const ACTION_DNSLOOKUP: u16 = 1 << 6;
/// `Set` (USDT probe points): write `SelectorConfig::override_error` (its `argValue`)
/// into the memory of argument `SelectorConfig::set_arg`, by the hook point's
/// `policy_usdt_set` program after the evaluation (see `SetRequest`).
pub const ACTION_SET: u16 = 1 << 7;
/// `NotifyEnforcer`: the thread's next call of a function of the policy's `enforcers`
/// returns `SelectorConfig::override_error` (`argError`) and gets signal
/// `SelectorConfig::signal` (`argSig`, 0: none), by the enforcer program on it
/// (`ENFORCER`).
pub const ACTION_NOTIFY_ENFORCER: u16 = 1 << 8;

/// What a `NotifyEnforcer` asks of a thread's next enforced call (`ENFORCER`, by
/// `pid_tgid`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnforcerData {
    /// The call's return value (a negative errno; 0: the call runs).
    pub error: i32,
    /// The signal sent (0: none).
    pub signal: u32,
}

/// What a `Set` that matched asks the program it runs under to write (`SET_REQUEST`,
/// per CPU): 4 bytes of `value` at the memory of the USDT argument `arg` of the hook
/// point. `armed` is 0 before each evaluation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetRequest {
    pub armed: u32,
    pub arg: u32,
    pub value: u32,
    pub _pad: u32,
}

/// `SelectorConfig::stack` bits: `Post`'s `kernelStackTrace` ...
pub const STACK_KERNEL: u8 = 1 << 0;
/// ... and `userStackTrace`.
pub const STACK_USER: u8 = 1 << 1;

/// `SelectorConfig::rate_scope` (`rateLimitScope`).
pub const RATE_THREAD: u8 = 0;
pub const RATE_PROCESS: u8 = 1;
pub const RATE_GLOBAL: u8 = 2;

/// `CONFIG[0]` bit: keep `EXEC_PATHS` (binary of every process) and `FOLLOW` up to date.
pub const TRACK_BINARIES: u32 = 1;
/// `CONFIG[0]` bit: `BIN_FOLLOW` has entries: evaluate them at each exec.
pub const FOLLOW_BINARIES: u32 = 2;
/// Bits of the `FOLLOW` map (one per `followForks` / `followChildren` filter loaded).
pub const FOLLOW_BITS: u32 = 64;
/// `followChildren` filters evaluated at exec (`BIN_FOLLOW`).
pub const MAX_BIN_FOLLOW: u32 = 16;

// --- Per-policy counters (`POLICY_COUNTERS`, a per-CPU hash keyed by policy id). ---

/// Calls that reached the policy's selectors (past the hook point's shared filters).
pub const POLICY_SEEN: usize = 0;
pub const POLICY_MATCHED: usize = 1;
pub const POLICY_POSTED: usize = 2;
/// Lost: matched, but the ring buffer was full.
pub const POLICY_LOST: usize = 3;
/// Matched and to be posted, but within a `rateLimit` window.
pub const POLICY_RATE_LIMITED: usize = 4;
pub const POLICY_COUNTERS_PER: usize = 5;

/// The counters of one policy (per CPU).
pub type PolicyCounters = [u64; POLICY_COUNTERS_PER];

// --- Syscall hooks on the raw `sys_enter`/`sys_exit` tracepoints. ---

/// `sys_enter` and `sys_exit`: the direction index of the syscall maps.
pub const SYSCALL_ENTER: u32 = 0;
pub const SYSCALL_EXIT: u32 = 1;
/// Syscall numbers the per-number hook points cover (x86-64 has under 500; numbers past
/// this, such as x32's, reach only `raw_syscalls` hooks).
pub const SYSCALL_IDS: u32 = 1024;
