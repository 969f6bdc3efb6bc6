//! The records the kernel writes into the `EVENTS` ring buffer. Each starts with an
//! [`EventHeader`] whose `kind` says which record follows.

use crate::limits::{ARGS_MAX, ENV_MAX, FILENAME_MAX, PATH_BUF};

/// Stable ids of the record kinds (never renumber: they are the wire format).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    Tracepoint = 4,
    Env = 5,
}

impl EventKind {
    /// The highest kind id.
    pub const MAX: EventKind = EventKind::Env;

    pub const ALL: [EventKind; 5] = [
        EventKind::Exec,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::Tracepoint,
        EventKind::Env,
    ];

    pub fn from_u32(v: u32) -> Option<EventKind> {
        match v {
            1 => Some(EventKind::Exec),
            2 => Some(EventKind::Fork),
            3 => Some(EventKind::Exit),
            4 => Some(EventKind::Tracepoint),
            5 => Some(EventKind::Env),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::Tracepoint => "tracepoint",
            EventKind::Env => "env",
        }
    }
}

/// Common head of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] id.
    pub kind: u32,
    /// Thread id (kernel `pid`) of the task the event is about.
    pub tid: u32,
    /// `bpf_ktime_get_ns()` when the event happened (CLOCK_MONOTONIC).
    pub ktime_ns: u64,
    /// Process id (kernel `tgid`) of the task the event is about.
    pub pid: u32,
    pub _pad: u32,
    /// cgroup v2 id of the task (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
}

/// `ExecEvent::flags`: the argument list was longer than [`ARGS_MAX`] and was cut.
pub const EXEC_TRUNC_ARGS: u32 = 1 << 0;
/// The binary's path was deeper or longer than a walk may go; the leading part is missing.
pub const EXEC_TRUNC_BINARY: u32 = 1 << 1;
/// The working directory's path was cut, as above.
pub const EXEC_TRUNC_CWD: u32 = 1 << 2;
/// The exec'd file was a script (`#!`): `binary` names its interpreter.
pub const EXEC_SCRIPT: u32 = 1 << 3;
/// The login uid could not be read (kernel without `CONFIG_AUDIT`).
pub const EXEC_NO_AUID: u32 = 1 << 4;
/// The argument area could not be read.
pub const EXEC_ERR_ARGS: u32 = 1 << 5;
/// The binary's path could not be read.
pub const EXEC_ERR_BINARY: u32 = 1 << 6;
/// The working directory could not be read.
pub const EXEC_ERR_CWD: u32 = 1 << 7;
/// `filename` (the path given to exec) could not be read.
pub const EXEC_ERR_FILENAME: u32 = 1 << 8;

/// A successful exec, recorded at `sched_process_exec` (after the point of no return:
/// failed execs never get here).
///
/// Paths (`binary`, `cwd`) are written as their components, leaf first, each
/// NUL-terminated: `/usr/bin/env` is `env\0bin\0usr\0`. The root itself has no
/// component, so a complete walk of `/` writes nothing.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Process id of the real parent.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// Login uid; `u32::MAX` when unset.
    pub auid: u32,
    /// `EXEC_*` bits.
    pub flags: u32,
    /// Valid bytes in `args`.
    pub args_len: u32,
    /// `task_struct.start_time` of the process (CLOCK_MONOTONIC ns, the fork time).
    pub start_ns: u64,
    /// Valid bytes in `filename`, NUL included.
    pub filename_len: u32,
    /// Valid bytes in `binary`.
    pub binary_len: u32,
    /// Valid bytes in `cwd`.
    pub cwd_len: u32,
    /// The process id as its own pid namespace numbers it (a container's); 0 if unread.
    pub ns_pid: u32,
    /// The rest of the new image's credentials (`task->cred` at the exec): saved and
    /// filesystem ids and `securebits` (`u32::MAX` each if unread).
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub securebits: u32,
    /// `linux_binprm.per_clear`: personality flags the exec cleared, non-zero when it
    /// was privileged (a set-user-ID or set-group-ID file, or file capabilities).
    pub per_clear: u32,
    /// Its capability sets: effective, permitted, inheritable (one bit per capability).
    pub caps: [u64; 3],
    /// Its ambient capability set: all a non-root exec keeps without file capabilities.
    pub ambient: u64,
    /// The exec'd file's inode number and link count (0 links: a memfd, an `O_TMPFILE`
    /// file or a deleted one); `u64::MAX`/`u32::MAX` if unread.
    pub ino: u64,
    pub nlink: u32,
    pub _pad: u32,
    /// Inode numbers of its namespaces, `policy::NS_*` minus 1 by index (uts, ipc, mnt,
    /// pid, pid_for_children, net, time, time_for_children, cgroup, user); 0 if unread
    /// (the time namespaces before Linux 5.6).
    pub ns: [u32; NS_COUNT],
    /// The path given to exec, as given (may be relative).
    pub filename: [u8; FILENAME_MAX],
    /// Components of the exec'd file's path (symlinks resolved), leaf first.
    pub binary: [u8; PATH_BUF],
    /// Components of the working directory's path, leaf first.
    pub cwd: [u8; PATH_BUF],
    /// The argument area: arguments, each NUL-terminated.
    pub args: [u8; ARGS_MAX],
}

/// A new process (not a thread), recorded at `sched_process_fork`. The header names the
/// child.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkEvent {
    pub header: EventHeader,
    /// Process id of the child's real parent.
    pub ppid: u32,
    /// The child's process id as its own pid namespace numbers it; 0 if unread.
    pub ns_pid: u32,
    /// `task_struct.start_time` of the child.
    pub start_ns: u64,
}

/// The end of a process: its last thread exited. Recorded at `sched_process_exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// `task_struct.exit_code`: `status << 8 | signal` (`0x80` set when core dumped).
    pub exit_code: u32,
    pub _pad: u32,
    /// `task_struct.start_time` of the process (its group leader).
    pub start_ns: u64,
}

/// `EnvEvent::flags`: the environment was longer than [`ENV_MAX`] and was cut.
pub const ENV_TRUNC: u32 = 1 << 0;
/// The environment could not be read.
pub const ENV_ERR: u32 = 1 << 1;

/// The environment of an exec (`--enable-process-environment-variables`), written just
/// before its [`ExecEvent`] by the same program run, so it reaches the agent first.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvEvent {
    pub header: EventHeader,
    /// Valid bytes in `env`.
    pub len: u32,
    /// `ENV_*` bits.
    pub flags: u32,
    /// The environment area: `KEY=VALUE` strings, each NUL-terminated.
    pub env: [u8; ENV_MAX],
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data records, `#[repr(C)]`, every field an integer or byte array,
    // explicit padding fields: any bit pattern is valid.
    unsafe impl aya::Pod for super::EventHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ExecEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ForkEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ExitEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::EnvEvent {}
}

/// Namespaces an exec records ([`ExecEvent::ns`]).
pub const NS_COUNT: usize = 10;

// No implicit padding: the sizes are the sums of the fields.
const _: () = assert!(core::mem::size_of::<EventHeader>() == 32);
const _: () = assert!(core::mem::size_of::<ForkEvent>() == 48);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 48);
const _: () = assert!(core::mem::size_of::<EnvEvent>() == 32 + 8 + ENV_MAX);
const _: () = assert!(
    core::mem::size_of::<ExecEvent>()
        == 32
            + 8 * 4
            + 8
            + 4 * 4
            + 6 * 4
            + 4 * 8
            + 16
            + NS_COUNT * 4
            + FILENAME_MAX
            + 2 * PATH_BUF
            + ARGS_MAX
);
