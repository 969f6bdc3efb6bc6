//! What the policy engine builds and posts: captured argument values, the event record,
//! and the keys of its lookups.

use super::{MAX_HOOK_ARGS, PREFIX_MAX, STRING_MAX};

/// `TracepointEvent::flags`: the action was not carried out (monitor mode).
pub const EVENT_MONITOR: u32 = 1;
/// Sending the signal failed.
pub const EVENT_SIGNAL_FAILED: u32 = 2;
/// `TracepointEvent::kernel_stack` holds what `bpf_get_stackid` gave for the kernel
/// stack (`kernelStackTrace`): an id in `STACKS` (0 is one), or a negative errno ...
pub const EVENT_KERNEL_STACK: u32 = 4;
/// ... and `user_stack` for the user stack (`userStackTrace`).
pub const EVENT_USER_STACK: u32 = 8;

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

/// A hook hit that a selector posted (or acted on): the `Tracepoint` record of the ring
/// buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointEvent {
    pub header: crate::event::EventHeader,
    pub policy_id: u32,
    /// The hook's id (`HookConfig::id`).
    pub hook: u32,
    /// The `ACTION_*` bits of the selector that matched, and its `sock_action` in bits
    /// 16 to 23.
    pub action: u32,
    /// Which selector matched.
    pub selector: u32,
    pub nargs: u32,
    /// `EVENT_*` bits.
    pub flags: u32,
    /// Stack ids, where `flags` says (`EVENT_KERNEL_STACK`, `EVENT_USER_STACK`).
    pub kernel_stack: i32,
    pub user_stack: i32,
    pub args: [ArgValue; MAX_HOOK_ARGS],
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

/// The record a syscall hit on the raw `sys_enter`/`sys_exit` tracepoints is evaluated
/// on, laid out as the `syscalls/sys_enter_*`, `syscalls/sys_exit_*` and
/// `raw_syscalls/*` tracefs records are: the common fields (zero), the syscall number at
/// byte 8, then the six arguments (enter) or the return value (exit) in 8-byte words
/// from byte 16. So a hook compiled against any of those format files reads it unchanged.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallRecord {
    pub words: [u64; 8],
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

/// Key of the `RATE` map: one `rateLimit` window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateKey {
    /// The hook's id.
    pub hook: u32,
    pub selector: u32,
    /// Thread or process id, or 0 (`rateLimitScope`).
    pub who: u32,
    pub _pad: u32,
    /// Hash of the arguments (integers, and the first 40 bytes of strings, as Tetragon).
    pub args: u64,
}

/// At most this many (policy, cgroup) pairs are in scope at once.
pub const MAX_SCOPE: u32 = 65_536;

/// Key of `POLICY_SCOPE`: a policy and a cgroup (v2 id) of a container it applies to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    pub policy_id: u32,
    pub _pad: u32,
    pub cgroup: u64,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY (all): `#[repr(C)]` plain data, integers and byte arrays, padding explicit
    // and asserted below.
    unsafe impl aya::Pod for super::ScopeKey {}
    unsafe impl aya::Pod for super::StrKey {}
    unsafe impl aya::Pod for super::StrPrefix {}
    unsafe impl aya::Pod for super::TracepointEvent {}
    unsafe impl aya::Pod for super::SockValue {}
    unsafe impl aya::Pod for super::CredValue {}
}

const _: () = assert!(core::mem::size_of::<ArgValue>() == 16 + STRING_MAX);
const _: () = assert!(
    core::mem::size_of::<TracepointEvent>()
        == core::mem::size_of::<crate::event::EventHeader>()
            + 32
            + MAX_HOOK_ARGS * core::mem::size_of::<ArgValue>()
);
const _: () = assert!(core::mem::size_of::<SockValue>() == 48);
const _: () = assert!(core::mem::size_of::<CredValue>() == 64);
const _: () = assert!(core::mem::size_of::<SyscallRecord>() == 64);
const _: () = assert!(core::mem::size_of::<StrKey>() == 8 + STRING_MAX);
const _: () = assert!(core::mem::size_of::<StrPrefix>() == 4 + PREFIX_MAX);
const _: () = assert!(core::mem::size_of::<RateKey>() == 24);
const _: () = assert!(core::mem::size_of::<ScopeKey>() == 16);
