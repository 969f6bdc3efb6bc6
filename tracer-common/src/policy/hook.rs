//! One policy hook as the kernel evaluates it: which record fields are its arguments,
//! and its selectors, tried in order. The agent writes a [`HookConfig`] per hook into
//! `HOOKS` (`tracer/src/policy/store/`), compiled from the policy
//! (`tracer/src/policy/compile/`).

use super::{MAX_ARG_FILTERS, MAX_HOOK_ARGS, MAX_INT_VALUES, MAX_PIDS, MAX_SELECTORS};

// --- `HookConfig::flags`. ---

/// The policy is in monitor mode: signals are not sent, the event says what would have
/// been done.
pub const HOOK_MONITOR: u32 = 1;
/// A selector compares the process's binary whole (`In`, `NotIn`).
pub const HOOK_BINARY_EQUAL: u32 = 1 << 2;
/// A selector compares the start of the binary's path.
pub const HOOK_BINARY_PREFIX: u32 = 1 << 3;
/// A selector compares the end of the binary's path.
pub const HOOK_BINARY_POSTFIX: u32 = 1 << 4;
/// The hook runs only on the `sock:inet_sock_set_state` transitions `HookConfig::sock`
/// names (a kprobe on `tcp_connect` or `tcp_close` run on that tracepoint).
pub const HOOK_SOCK_TRIGGER: u32 = 1 << 5;
/// A return hook that reads argument 0's socket when the call returns (a connect's
/// socket has its addresses only then): from the entry record's argument 0 (at 16), a
/// `struct socket *`, or with `HOOK_FD` a file descriptor of the task; its fields go to
/// `SOCK_ARG_AT` plus the hook's socket layout.
pub const HOOK_ENTRY_SOCK: u32 = 1 << 11;
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
/// An argument is a socket: a posted event is the process's that tracks the socket
/// (`SOCK_OWNERS`), if one does, rather than the current one's (a softirq's, a
/// kernel thread's).
pub const HOOK_SOCK_OWNER: u32 = 1 << 15;

/// `SelectorConfig::sock_action`: the socket argument at this position (`TrackSock`, a
/// `returnArgAction: TrackSock`) is the current process's from now on ...
pub const SOCK_TRACK: u8 = 0x10;
/// ... or no longer anyone's (`UntrackSock`).
pub const SOCK_UNTRACK: u8 = 0x20;
/// Set with `SOCK_TRACK` or `SOCK_UNTRACK` from a hook's `returnArgAction` (the event
/// does not name it as the action taken).
pub const SOCK_RETURN: u8 = 0x40;
pub const SOCK_ARG_MASK: u8 = 0x07;

/// A tracked socket's process (`SOCK_OWNERS`, keyed by the `struct sock` address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOwner {
    pub pid: u32,
    pub tid: u32,
}

/// Where a return hook's record holds the return value (after six arguments).
pub const RETURN_AT: u16 = 64;
/// Where the return half of `inet_csk_accept` finds the returned socket's fields.
pub const SOCK_RETURN_AT: u16 = 128;
/// Where a socket read at the return (`HOOK_ENTRY_SOCK`) is written.
pub const SOCK_ARG_AT: u16 = 256;

/// Where a generic kprobe's record holds what its struct argument points to (at most one
/// per kprobe): the path of a `file`, `path` or `linux_binprm` argument, as a
/// NUL-terminated string of at most `KPROBE_PATH_LEN` bytes; a `sock` argument's fields
/// (at `SOCK_ARG_AT`, the same place, plus the hook's socket layout); a `cred`
/// argument's [`super::CredValue`].
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
/// ... a `struct sk_buff *`: its IP header's family, protocol, addresses and ports
/// (in the socket layout, as a `sock` argument's), and its length (in `oldstate`) ...
pub const KPROBE_ARG_SKB: u16 = 6;
/// ... a `struct socket *` (its `sk`, written as a `sock` argument) ...
pub const KPROBE_ARG_SOCKET: u16 = 7;
/// ... a `struct sockaddr *`: its family, port and address, in the socket layout (the
/// address and port as the source's) ...
pub const KPROBE_ARG_SOCKADDR: u16 = 8;
/// ... a `struct kiocb *` (the path of its `ki_filp`) ...
pub const KPROBE_ARG_KIOCB: u16 = 9;
/// ... a `struct dentry *` (its path up to the root of its file system: a dentry does
/// not know where it is mounted) ...
pub const KPROBE_ARG_DENTRY: u16 = 10;
/// ... a `struct iov_iter *` of user memory (`ITER_UBUF`, or `ITER_IOVEC`'s first
/// buffer): the buffer's address replaces the argument's register at 16 + 8 i, its size
/// goes to `KPROBE_IOV_LEN_AT`, so the argument is read as a user buffer ...
pub const KPROBE_ARG_IOV_ITER: u16 = 11;
/// ... or a struct whose fields `HookPoint::fields` reads (`bpf_attr`, `module`, ...).
pub const KPROBE_ARG_FIELDS: u16 = 12;
/// Where an `iov_iter` argument's buffer size goes (past the return value at
/// `RETURN_AT`).
pub const KPROBE_IOV_LEN_AT: u16 = 72;
/// Where a second struct argument goes (`socket` and `sockaddr` of
/// `security_socket_connect`): the second half of the struct region, which a path (the
/// only value longer than 128 bytes) does not share.
pub const KPROBE_STRUCT2_AT: u16 = 384;
/// Bytes of each half of the struct region.
pub const KPROBE_STRUCT_HALF: u16 = 128;

/// Fields of struct arguments a hook point reads (`FieldRead`).
pub const MAX_FIELD_READS: usize = 8;
/// Pointers a field read follows before it reads.
pub const FIELD_DEREFS: usize = 4;
/// `FieldRead::kind`: none ...
pub const FIELD_NONE: u8 = 0;
/// ... `size` bytes of kernel memory ...
pub const FIELD_BYTES: u8 = 1;
/// ... a NUL-terminated string of kernel memory, at most `size` bytes with its NUL ...
pub const FIELD_STR: u8 = 2;
/// ... the same in the process's memory ...
pub const FIELD_USER_STR: u8 = 3;
/// ... or nothing: zeroes the kernel lacks a field for (the record starts zeroed).
pub const FIELD_ZERO: u8 = 4;
/// Largest `FieldRead::size`.
pub const FIELD_MAX: u8 = 64;

/// One field of a struct argument, read into the record: from the argument's register
/// `arg`, follow `derefs` pointers (`p = *(p + chain[k])`), then read at `p + at` into
/// the record at `KPROBE_PATH_AT + dst` (`dst + size` at most `KPROBE_STRUCT_HALF`). Offsets come from the kernel's BTF, resolved by the agent for
/// the running kernel. A null pointer on the way leaves the field zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldRead {
    pub arg: u8,
    /// `FIELD_*`.
    pub kind: u8,
    pub derefs: u8,
    /// Bytes, at most `FIELD_MAX`.
    pub size: u8,
    pub dst: u16,
    pub at: u16,
    pub chain: [u16; FIELD_DEREFS],
}

/// `matchNamespaces` filters per selector, and values per filter.
pub const MAX_NS_FILTERS: usize = 4;
pub const MAX_NS_VALUES: usize = 4;
/// `matchCapabilities` and `matchCapabilityChanges` filters per selector, together.
pub const MAX_CAP_FILTERS: usize = 2;

/// How to read one argument from the record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ArgConfig {
    pub offset: u16,
    pub size: u8,
    /// An `ARG_*` kind.
    pub kind: u8,
    /// `ARG_NEEDS_*` bits: which lookup keys to build for a string argument.
    pub flags: u8,
    /// `ARG_*_BYTES`: where the record holds the buffer's size.
    pub len_at: u8,
    pub _pad: [u8; 2],
}

/// One `matchArgs` filter.
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

/// A selector's `matchPIDs`.
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

/// One `matchCapabilities` filter: `In` matches when the set holds any capability of
/// `mask`, `NotIn` when it holds none. With `change`, a `matchCapabilityChanges` filter
/// on the set's difference from the one the process had at its exec (`EXEC_CAPS`): `In`
/// matches when a capability of `mask` was gained or lost since, `NotIn` when only
/// others were (as Tetragon's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapFilter {
    pub set: u8,
    /// `PIDS_IN` or `PIDS_NOT_IN`.
    pub op: u8,
    /// 1: `matchCapabilityChanges`.
    pub change: u8,
    pub _pad: u8,
    /// `isNamespaceCapability`: the host's user namespace inode; the filter then holds
    /// only for a process in another user namespace (as Tetragon's). 0: any.
    pub host_userns: u32,
    pub mask: u64,
}

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

/// One selector: its filters (all must hold) and its actions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectorConfig {
    pub nfilters: u8,
    /// `RATE_*`: what one `rateLimit` window counts per.
    pub rate_scope: u8,
    /// `ACTION_*` bits.
    pub actions: u16,
    /// `SOCK_TRACK` or `SOCK_UNTRACK` with the argument's position (`& SOCK_ARG_MASK`):
    /// `TrackSock`/`UntrackSock`, or the hook's `returnArgAction`; 0: none.
    pub sock_action: u8,
    /// `Set`'s `argIndex`: the USDT argument whose memory it writes.
    pub set_arg: u8,
    /// Signal of `ACTION_SIGNAL` (`NotifyEnforcer`'s `argSig`): 1 to 64.
    pub signal: u8,
    /// `STACK_*` bits: the stacks `Post` takes.
    pub stack: u8,
    pub pids: PidFilter,
    pub binary: BinaryFilter,
    pub namespaces: [NsFilter; MAX_NS_FILTERS],
    /// `Override`'s and `NotifyEnforcer`'s `argError` (a negative errno); on a USDT
    /// probe point, where those cannot go, `Set`'s `argValue`.
    pub override_error: i32,
    pub caps: [CapFilter; MAX_CAP_FILTERS],
    /// `Post` at most once per this many ns for the same arguments (0: no limit).
    pub rate_limit_ns: u64,
    pub filters: [ArgFilter; MAX_ARG_FILTERS],
}

/// A hook on `sock:inet_sock_set_state`: where the record's fields sit (from its format
/// file), and, with `HOOK_SOCK_TRIGGER`, the transitions it runs on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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

/// A kprobe's argument read as a struct, and the sockets of a socket function.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct KprobeLayout {
    /// The argument's index (0 to 5) ...
    pub struct_arg: u16,
    /// ... and its kind, `KPROBE_ARG_*`; 0: none.
    pub struct_kind: u16,
    /// Bit `1 << sk_type` of the socket types a `HOOK_ENTRY_SOCK`/`HOOK_RET_FD_SOCK`
    /// hook runs on (`SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_RAW` 3); 0: any. Such a hook
    /// runs on IPv4 and IPv6 sockets only.
    pub sock_types: u16,
    /// A second struct argument (at `KPROBE_STRUCT2_AT`): its index and its kind (a
    /// `KPROBE_ARG_*` of at most 128 bytes; 0: none).
    pub struct2_arg: u8,
    pub struct2_kind: u8,
    /// `iter_type` values of an `iov_iter` argument's user buffers (`ITER_UBUF`,
    /// `ITER_IOVEC`), from the kernel's BTF.
    pub iter_ubuf: u8,
    pub iter_iovec: u8,
    pub _pad: u16,
}

/// One hook of a policy, as the kernel evaluates it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookConfig {
    /// Its key in `HOOKS`, and its id in events.
    pub id: u32,
    /// The next hook on its hook point's list (0: the last).
    pub next: u32,
    /// Its policy: the key of the policy's counters in `POLICY_COUNTERS`.
    pub policy_id: u32,
    /// `HOOK_*` bits.
    pub flags: u32,
    pub nargs: u32,
    pub nsel: u32,
    pub args: [ArgConfig; MAX_HOOK_ARGS],
    pub selectors: [SelectorConfig; MAX_SELECTORS],
    pub sock: SockLayout,
    pub kprobe: KprobeLayout,
    /// The argument gate that covers the hook (`ArgGate::id`; 0: none): every selector of
    /// the hook filters the gate's argument, so while its hook point's gate is this one,
    /// the gate decides whether the hook is a candidate for a call.
    pub gate: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY (all): `#[repr(C)]` plain data, integers and byte arrays, padding explicit
    // and asserted below.
    unsafe impl aya::Pod for super::HookConfig {}
    unsafe impl aya::Pod for super::BinFollow {}
}

const _: () = assert!(core::mem::size_of::<ArgConfig>() == 8);
const _: () = assert!(core::mem::size_of::<ArgFilter>() == 8 + 8 * MAX_INT_VALUES);
const _: () = assert!(core::mem::size_of::<PidFilter>() == 4 + 4 * MAX_PIDS);
const _: () = assert!(core::mem::size_of::<BinaryFilter>() == 8);
const _: () = assert!(core::mem::size_of::<NsFilter>() == 4 + 4 * MAX_NS_VALUES);
const _: () = assert!(core::mem::size_of::<CapFilter>() == 16);
const _: () = assert!(core::mem::size_of::<BinFollow>() == 8);
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
const _: () = assert!(core::mem::size_of::<SockLayout>() == 28);
const _: () = assert!(core::mem::size_of::<KprobeLayout>() == 12);
const _: () = assert!(core::mem::size_of::<FieldRead>() == 16);
const _: () = assert!(
    core::mem::size_of::<HookConfig>()
        == 24
            + MAX_HOOK_ARGS * core::mem::size_of::<ArgConfig>()
            + MAX_SELECTORS * core::mem::size_of::<SelectorConfig>()
            + core::mem::size_of::<SockLayout>()
            + core::mem::size_of::<KprobeLayout>()
            + 8
);
