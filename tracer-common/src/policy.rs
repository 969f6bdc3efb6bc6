//! Tracing policies as the kernel sees them: per traced tracepoint, a [`HookConfig`]
//! (which record fields are arguments, and the selectors, tried in order) in the
//! `HOOKS` map keyed by the tracepoint's event id; string values of selectors in the
//! `STR_EQUAL`, `STR_PREFIX` and `STR_POSTFIX` maps keyed by filter id. User space
//! compiles a policy into these (`tracer/src/policy/compile.rs`).

/// Tracepoints traced at once by policies: one program slot each.
pub const TP_SLOTS: u32 = 32;

/// `KPROBE_RUNNERS` index of the runner that kprobe slots tail-call.
pub const KPROBE_RUNNER: u32 = 0;
/// `KPROBE_RUNNERS` index of the runner that kretprobe slots tail-call.
pub const KRETPROBE_RUNNER: u32 = 1;

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

/// `ArgConfig::kind`: how to read an argument from the tracepoint record.
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

/// `ArgFilter::op`.
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

/// `PidFilter::op`.
pub const PIDS_NONE: u8 = 0;
pub const PIDS_IN: u8 = 1;
pub const PIDS_NOT_IN: u8 = 2;

/// `SelectorConfig::actions` bits (a selector's `matchActions` may hold several).
pub const ACTION_POST: u8 = 1 << 0;
pub const ACTION_NOPOST: u8 = 1 << 1;
pub const ACTION_SIGKILL: u8 = 1 << 2;
pub const ACTION_SIGNAL: u8 = 1 << 3;
/// `Override`: the hooked function does not run, its caller gets
/// `SelectorConfig::override_error` (a BPF LSM program returns it).
pub const ACTION_OVERRIDE: u8 = 1 << 4;

/// `HookConfig::flags`: the policy is in monitor mode: signals are not sent, the event
/// says what would have been done.
pub const HOOK_MONITOR: u32 = 1;
/// The slot holds a hook (a cleared slot does nothing).
pub const HOOK_ACTIVE: u32 = 2;
/// A selector compares the process's binary whole (`In`, `NotIn`).
pub const HOOK_BINARY_EQUAL: u32 = 1 << 2;
/// A selector compares the start of the binary's path.
pub const HOOK_BINARY_PREFIX: u32 = 1 << 3;
/// A selector compares the end of the binary's path.
pub const HOOK_BINARY_POSTFIX: u32 = 1 << 4;
/// The hook runs only on the `sock:inet_sock_set_state` transitions `HookConfig::sock`
/// names (a kprobe on `tcp_connect` or `tcp_close` run on that tracepoint).
pub const HOOK_SOCK_TRIGGER: u32 = 1 << 5;
/// A kprobe on a syscall's wrapper (`syscall: true`): its argument is the syscall's
/// `struct pt_regs *`, from which the program reads the six arguments into a record laid
/// out as the `syscalls/sys_enter_NAME` tracepoint's (arguments at 16 + 8 i).
pub const HOOK_KPROBE_SYSCALL: u32 = 1 << 6;
/// A kprobe on any other kernel function: its six argument registers go to the record at
/// 16 + 8 i, and the path of a `file` or `path` argument (`HookConfig::kprobe`) at
/// `KPROBE_PATH_AT`.
pub const HOOK_KPROBE_GENERIC: u32 = 1 << 7;
/// The entry half of a return probe (`return: true`): the record is kept per thread
/// (`RET_ENTRY`) for the return half, and nothing else is done.
pub const HOOK_SAVE_ENTRY: u32 = 1 << 8;
/// The return half: the return value is at 16 of the record the program is given (a
/// `sys_exit_NAME` record, or one the kretprobe program writes); the hook runs on the
/// entry's record (`KprobeLayout::pair` names the entry's slot) with the return value
/// written at `RETURN_AT`.
pub const HOOK_RETURN: u32 = 1 << 9;
/// Where a return hook's record holds the return value (after six arguments).
pub const RETURN_AT: u16 = 64;
/// A return hook whose return value is a `struct sock *` (`inet_csk_accept`): the
/// kretprobe program writes its fields at `SOCK_RETURN_AT` plus the hook's socket
/// layout, which the return half keeps beside the entry's record.
pub const HOOK_SOCK_RETURN: u32 = 1 << 10;
pub const SOCK_RETURN_AT: u16 = 128;
/// A return hook that reads argument 0's socket when the call returns (a connect's
/// socket has its addresses only then): from the entry record's argument 0 (at 16), a
/// `struct socket *`, or with `HOOK_FD` a file descriptor of the task; its fields go to
/// `SOCK_ARG_AT` plus the hook's socket layout.
pub const HOOK_ENTRY_SOCK: u32 = 1 << 11;
pub const SOCK_ARG_AT: u16 = 256;
/// A return hook whose return value is a file descriptor (`accept4` standing for
/// `inet_csk_accept`): its socket's fields go to `SOCK_RETURN_AT` plus the hook's
/// socket layout.
pub const HOOK_RET_FD_SOCK: u32 = 1 << 12;
/// `HOOK_ENTRY_SOCK`'s argument is a file descriptor (a syscall tracepoint standing for
/// a socket function).
pub const HOOK_FD: u32 = 1 << 13;
/// The policy applies to some pods only (a `TracingPolicyNamespaced`, a `podSelector` or
/// a `containerSelector`): the hook runs only in the cgroups `POLICY_SCOPE` lists for it.
pub const HOOK_CGROUP_SCOPE: u32 = 1 << 14;

/// Key of `POLICY_SCOPE`: a policy and a cgroup (v2 id) of a container it applies to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    pub policy_id: u32,
    pub _pad: u32,
    pub cgroup: u64,
}

/// At most this many (policy, cgroup) pairs are in scope at once.
pub const MAX_SCOPE: u32 = 65_536;

/// Where a generic kprobe's record holds what its struct argument points to (at most one
/// per kprobe): the path of a `file`, `path` or `linux_binprm` argument, as a
/// NUL-terminated string of at most `KPROBE_PATH_LEN` bytes; a `sock` argument's fields
/// (at `SOCK_ARG_AT`, the same place, plus the hook's socket layout); a `cred`
/// argument's [`CredValue`].
pub const KPROBE_PATH_AT: u16 = 256;
pub const KPROBE_PATH_LEN: u16 = 255;
/// `KprobeLayout::struct_kind`: the argument is a `struct file *` ...
pub const KPROBE_ARG_FILE: u16 = 1;
/// ... a `struct path *` ...
pub const KPROBE_ARG_PATH: u16 = 2;
/// ... a `struct linux_binprm *` (the path of its `file`) ...
pub const KPROBE_ARG_BPRM: u16 = 3;
/// ... a `struct sock *` ...
pub const KPROBE_ARG_SOCK: u16 = 4;
/// ... a `struct cred *` ...
pub const KPROBE_ARG_CRED: u16 = 5;
/// ... or a `struct sk_buff *`: its IP header's family, protocol, addresses and ports
/// (in the socket layout, as a `sock` argument's), and its length (in `oldstate`).
pub const KPROBE_ARG_SKB: u16 = 6;

/// A `cred` argument, as the kprobe program writes it at `KPROBE_PATH_AT` (`cred`'s
/// ids, `securebits`, and capability sets).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredValue {
    pub uid: u32,
    pub gid: u32,
    pub suid: u32,
    pub sgid: u32,
    pub euid: u32,
    pub egid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub securebits: u32,
    pub _pad: u32,
    pub cap_permitted: u64,
    pub cap_effective: u64,
    pub cap_inheritable: u64,
}

/// A generic kprobe's argument read as a struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KprobeLayout {
    /// The argument's index (0 to 5) ...
    pub struct_arg: u16,
    /// ... and its kind, `KPROBE_ARG_*`; 0: none.
    pub struct_kind: u16,
    /// A return hook's entry slot.
    pub pair: u16,
    /// Bit `1 << sk_type` of the socket types a `HOOK_ENTRY_SOCK`/`HOOK_RET_FD_SOCK`
    /// hook runs on (`SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_RAW` 3); 0: any. Such a hook
    /// runs on IPv4 and IPv6 sockets only.
    pub sock_types: u16,
}

/// `CONFIG[0]` bit: keep `EXEC_PATHS` (binary of every process) and `FOLLOW` up to date.
pub const TRACK_BINARIES: u32 = 1;
/// `CONFIG[0]` bit: `BIN_FOLLOW` has entries: evaluate them at each exec.
pub const FOLLOW_BINARIES: u32 = 2;

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
/// `matchNamespaces` filters per selector, and values per filter.
pub const MAX_NS_FILTERS: usize = 4;
pub const MAX_NS_VALUES: usize = 4;

/// One `matchNamespaces` filter: the namespace's inode number `In`/`NotIn` `values`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsFilter {
    pub ns: u8,
    /// `PIDS_IN` or `PIDS_NOT_IN`.
    pub op: u8,
    pub n: u8,
    pub _pad: u8,
    pub values: [u32; MAX_NS_VALUES],
}

/// `CapFilter::set`: which capability set (`matchCapabilities` `type`); 0: none.
pub const CAPS_EFFECTIVE: u8 = 1;
pub const CAPS_PERMITTED: u8 = 2;
pub const CAPS_INHERITABLE: u8 = 3;
/// `matchCapabilities` filters per selector.
pub const MAX_CAP_FILTERS: usize = 2;

/// One `matchCapabilities` filter: `In` matches when the set holds any capability of
/// `mask`, `NotIn` when it holds none.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapFilter {
    pub set: u8,
    /// `PIDS_IN` or `PIDS_NOT_IN`.
    pub op: u8,
    pub _pad: [u8; 2],
    /// `isNamespaceCapability`: the host's user namespace inode; the filter then holds
    /// only for a process in another user namespace (as Tetragon's). 0: any.
    pub host_userns: u32,
    pub mask: u64,
}

/// A selector's `matchBinaries`: the process's binary, by its filter's strings.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinaryFilter {
    pub op: u8,
    /// `followChildren`: 1 + the `FOLLOW` bit set at exec for matching binaries; 0: none.
    pub follow: u8,
    pub _pad: [u8; 2],
    pub id: u32,
}

/// `TracepointEvent::flags`: the action was not carried out (monitor mode).
pub const EVENT_MONITOR: u32 = 1;
/// Sending the signal failed.
pub const EVENT_SIGNAL_FAILED: u32 = 2;

/// `ArgConfig::flags`: a filter compares the argument whole (`Equal`, `NotEqual`).
pub const ARG_NEEDS_EQUAL: u8 = 1 << 0;
/// A filter compares its start (`Prefix`, `NotPrefix`).
pub const ARG_NEEDS_PREFIX: u8 = 1 << 1;
/// A filter compares its end (`Postfix`, `NotPostfix`).
pub const ARG_NEEDS_POSTFIX: u8 = 1 << 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgConfig {
    pub offset: u16,
    pub size: u8,
    pub kind: u8,
    /// `ARG_NEEDS_*` bits: which lookup keys to build for a string argument.
    pub flags: u8,
    /// `ARG_*_BYTES`: where the record holds the buffer's size.
    pub len_at: u8,
    pub _pad: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgFilter {
    /// Index into `HookConfig::args`.
    pub arg: u8,
    pub op: u8,
    /// Integer values used (integer operators).
    pub nvals: u8,
    /// Socket operators: 1 for the `Not*` form.
    pub negate: u8,
    /// Key of this filter's strings in the string maps (string operators).
    pub id: u32,
    pub values: [u64; MAX_INT_VALUES],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PidFilter {
    pub op: u8,
    pub n: u8,
    /// `followForks`: 1 + the `FOLLOW` bit of this filter's processes and their
    /// descendants; 0: only the listed pids.
    pub follow: u8,
    /// `isNamespacePID`: 1 when `values` are pids as the process's own pid namespace
    /// numbers them.
    pub namespace: u8,
    pub values: [u32; MAX_PIDS],
}

/// Bits of the `FOLLOW` map (one per `followForks` / `followChildren` filter loaded).
pub const FOLLOW_BITS: u32 = 64;
/// `followChildren` filters evaluated at exec (`BIN_FOLLOW`).
pub const MAX_BIN_FOLLOW: u32 = 16;

/// A `matchBinaries` filter with `followChildren`, evaluated at each exec: a process
/// whose binary matches gets `bit` in `FOLLOW`, and its descendants inherit it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinFollow {
    /// `BIN_IN`, `BIN_PREFIX` or `BIN_POSTFIX`; 0: unused slot.
    pub op: u8,
    pub bit: u8,
    pub _pad: [u8; 2],
    pub id: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectorConfig {
    pub nfilters: u8,
    /// `ACTION_*` bits.
    pub actions: u8,
    /// `RATE_*`: what one `rateLimit` window counts per.
    pub rate_scope: u8,
    pub _pad: u8,
    /// Signal of `ACTION_SIGNAL`.
    pub signal: u32,
    pub pids: PidFilter,
    pub binary: BinaryFilter,
    pub namespaces: [NsFilter; MAX_NS_FILTERS],
    /// `Override`'s `argError` (a negative errno).
    pub override_error: i32,
    pub caps: [CapFilter; MAX_CAP_FILTERS],
    /// `Post` at most once per this many ns for the same arguments (0: no limit).
    pub rate_limit_ns: u64,
    pub filters: [ArgFilter; MAX_ARG_FILTERS],
}

/// `SelectorConfig::rate_scope` (`rateLimitScope`).
pub const RATE_THREAD: u8 = 0;
pub const RATE_PROCESS: u8 = 1;
pub const RATE_GLOBAL: u8 = 2;

/// Key of the `RATE` map: one `rateLimit` window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateKey {
    pub slot: u32,
    pub selector: u32,
    /// Thread or process id, or 0 (`rateLimitScope`).
    pub who: u32,
    pub _pad: u32,
    /// Hash of the arguments (integers, and the first 40 bytes of strings, as Tetragon).
    pub args: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookConfig {
    /// Index of the policy's counters in `POLICY_COUNTERS`, and its id in events.
    pub policy_id: u32,
    /// `HOOK_*` bits.
    pub flags: u32,
    pub nargs: u32,
    pub nsel: u32,
    pub args: [ArgConfig; MAX_HOOK_ARGS],
    pub selectors: [SelectorConfig; MAX_SELECTORS],
    pub sock: SockLayout,
    pub kprobe: KprobeLayout,
}

/// A hook on `sock:inet_sock_set_state`: where the record's fields sit (from its format
/// file), and, with `HOOK_SOCK_TRIGGER`, the transitions it runs on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockLayout {
    pub skaddr: u16,
    pub oldstate: u16,
    pub newstate: u16,
    pub sport: u16,
    pub dport: u16,
    pub family: u16,
    pub protocol: u16,
    /// `saddr_v6`, `daddr_v6`: 16 bytes, IPv4 mapped for an IPv4 socket.
    pub saddr_v6: u16,
    pub daddr_v6: u16,
    /// Bit `1 << state` of the states left, and of the states entered, that trigger.
    pub old_states: u16,
    pub new_states: u16,
    /// Only this protocol (`IPPROTO_TCP`); 0: any.
    pub protocol_is: u16,
    /// 1: the event's state is the one left (`tcp_close`), 0: the one entered.
    pub report_old: u16,
    pub _pad: u16,
}

/// A socket argument's value, at the start of `ArgValue::str`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockValue {
    pub family: u16,
    pub protocol: u16,
    pub sport: u16,
    pub dport: u16,
    pub state: u16,
    pub _pad: u16,
    /// The record's `oldstate` word whole: for an `skb` argument, the packet's length.
    pub word: u32,
    /// IPv6, IPv4 mapped.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// Key of `STR_EQUAL`: a filter's id and a string, zero-padded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrKey {
    pub id: u32,
    pub len: u32,
    pub data: [u8; STRING_MAX],
}

/// Data of an `STR_PREFIX` / `STR_POSTFIX` LPM key: the filter id (big-endian, always
/// matched whole) then the string (reversed for postfixes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrPrefix {
    pub id: [u8; 4],
    pub data: [u8; PREFIX_MAX],
}

/// Per-policy counters in `POLICY_COUNTERS`: index `policy_id * POLICY_COUNTERS_PER + n`.
pub const POLICY_SEEN: u32 = 0;
pub const POLICY_MATCHED: u32 = 1;
pub const POLICY_POSTED: u32 = 2;
/// Lost: matched, but the ring buffer was full.
pub const POLICY_LOST: u32 = 3;
/// Matched and to be posted, but within a `rateLimit` window.
pub const POLICY_RATE_LIMITED: u32 = 4;
pub const POLICY_COUNTERS_PER: u32 = 5;
/// Policies loaded at once.
pub const MAX_POLICIES: u32 = 256;

/// One captured argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgValue {
    /// An `ARG_*` kind.
    pub kind: u32,
    /// String bytes (no NUL); 0 for integers.
    pub len: u32,
    pub int: u64,
    pub str: [u8; STRING_MAX],
}

/// A tracepoint hit that a selector posted (or acted on).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointEvent {
    pub header: crate::event::EventHeader,
    pub policy_id: u32,
    /// The slot of the hook (`HOOKS` index).
    pub event_id: u32,
    /// The `ACTION_*` bits of the selector that matched.
    pub action: u32,
    /// Which selector matched.
    pub selector: u32,
    pub nargs: u32,
    /// `EVENT_*` bits.
    pub flags: u32,
    pub args: [ArgValue; MAX_HOOK_ARGS],
}

// --- Syscall hooks (`hooks/syscall.rs`): one raw tracepoint per direction. ---

/// `sys_enter` and `sys_exit`: the direction index of the syscall maps.
pub const SYSCALL_ENTER: u32 = 0;
pub const SYSCALL_EXIT: u32 = 1;
/// Syscall numbers the per-number masks cover (x86-64 has under 500; numbers past this,
/// such as x32's, reach only `raw_syscalls` hooks).
pub const SYSCALL_IDS: u32 = 1024;
/// Processes the raw syscall programs can gate on (`SYSCALL_PID_GATE`): every pid that
/// the `matchPIDs` of the routed hooks name (at most 8 selectors of 8 pids per hook).
pub const MAX_GATE_PIDS: u32 = TP_SLOTS * (MAX_SELECTORS * MAX_PIDS) as u32;

/// The record a syscall hit is evaluated on, laid out as the `syscalls/sys_enter_*`,
/// `syscalls/sys_exit_*` and `raw_syscalls/*` tracefs records are: the common fields
/// (zero), the syscall number at byte 8, then the six arguments (enter) or the return
/// value (exit) in 8-byte words from byte 16. So a hook compiled against any of those
/// format files reads it unchanged.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallRecord {
    pub words: [u64; 8],
    /// Slots still to run on this record (bit per slot).
    pub pending: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY (all): `#[repr(C)]` plain data, integers and byte arrays, explicit padding.
    unsafe impl aya::Pod for super::HookConfig {}
    unsafe impl aya::Pod for super::ScopeKey {}
    unsafe impl aya::Pod for super::BinFollow {}
    unsafe impl aya::Pod for super::StrKey {}
    unsafe impl aya::Pod for super::StrPrefix {}
    unsafe impl aya::Pod for super::TracepointEvent {}
}

const _: () = assert!(core::mem::size_of::<ArgFilter>() == 8 + 8 * MAX_INT_VALUES);
const _: () = assert!(core::mem::size_of::<PidFilter>() == 4 + 4 * MAX_PIDS);
const _: () = assert!(
    core::mem::size_of::<SelectorConfig>()
        == 8 + core::mem::size_of::<PidFilter>()
            + core::mem::size_of::<BinaryFilter>()
            + MAX_NS_FILTERS * core::mem::size_of::<NsFilter>()
            + 4
            + MAX_CAP_FILTERS * core::mem::size_of::<CapFilter>()
            + 8
            + MAX_ARG_FILTERS * core::mem::size_of::<ArgFilter>()
);
const _: () = assert!(core::mem::size_of::<ArgValue>() == 16 + STRING_MAX);
const _: () = assert!(core::mem::size_of::<SockLayout>() == 28);
const _: () = assert!(core::mem::size_of::<SockValue>() == 48);
const _: () = assert!(core::mem::size_of::<StrKey>() == 8 + STRING_MAX);
const _: () = assert!(core::mem::size_of::<StrPrefix>() == 4 + PREFIX_MAX);
