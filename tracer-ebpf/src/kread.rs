//! The only place that reads kernel or user memory. Addresses are plain integers (raw
//! tracepoint arguments and values read from kernel structs), fields are found with
//! `off!` (offsets from the running kernel's BTF), and every loop is bounded by a
//! constant of `tracer_common::limits`.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::{
    bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user,
};
use tracer_common::limits::{FILENAME_MAX, NAME_MAX, PATH_DEPTH_MAX, PATH_MAX};

use crate::globals::off;

/// `N` bytes (at most 8) of kernel memory at `at`, zero-extended; 0 if unreadable.
#[inline(always)]
pub fn read<const N: u32>(at: u64) -> u64 {
    let mut raw: u64 = 0;
    // SAFETY: copies N <= 8 bytes into `raw`; the helper fails rather than faults.
    unsafe { bpf_probe_read_kernel((&raw mut raw).cast::<c_void>(), N, at as *const c_void) };
    raw
}

/// The 8 bytes of the current process's memory at `at`; 0 if unreadable.
#[inline(always)]
pub fn user_u64(at: u64) -> u64 {
    let mut raw: u64 = 0;
    // SAFETY: copies 8 bytes into `raw`; the helper fails rather than faults.
    unsafe { bpf_probe_read_user((&raw mut raw).cast::<c_void>(), 8, at as *const c_void) };
    raw
}

/// Reads the 8-byte value (a pointer or a `u64`) at kernel address `addr`.
#[inline(always)]
pub fn u64_at(addr: u64) -> Option<u64> {
    let mut v: u64 = 0;
    // SAFETY: the helper writes at most 8 bytes into `v`, a local of 8 bytes; an unreadable
    // `addr` makes it fail (and zero `v`) rather than fault.
    let r =
        unsafe { bpf_probe_read_kernel((&raw mut v).cast::<c_void>(), 8, addr as *const c_void) };
    (r == 0).then_some(v)
}

/// Reads the 4-byte value at kernel address `addr`.
#[inline(always)]
pub fn u32_at(addr: u64) -> Option<u32> {
    let mut v: u32 = 0;
    // SAFETY: as in `u64_at`, for 4 bytes.
    let r =
        unsafe { bpf_probe_read_kernel((&raw mut v).cast::<c_void>(), 4, addr as *const c_void) };
    (r == 0).then_some(v)
}

/// Reads the NUL-terminated kernel string at `src` into `dst` (`FILENAME_MAX` bytes).
/// Returns the bytes written, NUL included.
#[inline(always)]
pub fn kernel_str(src: u64, dst: *mut u8) -> Option<u32> {
    // SAFETY: `dst` points to `FILENAME_MAX` writable bytes (the caller's record field);
    // the helper writes at most that many and never faults on `src`.
    let r = unsafe {
        bpf_probe_read_kernel_str(
            dst.cast::<c_void>(),
            FILENAME_MAX as u32,
            src as *const c_void,
        )
    };
    (r > 0).then_some(r as u32)
}

/// Copies a user memory area `[start, end)` of the process (its arguments or its
/// environment) into `dst` (`MAX` bytes). Returns the bytes copied and whether the area
/// was longer.
#[inline(always)]
pub fn user_area<const MAX: usize>(start: u64, end: u64, dst: *mut u8) -> Option<(u32, bool)> {
    if end <= start {
        return Some((0, false));
    }
    let len = end - start;
    let truncated = len > MAX as u64;
    let n = if truncated { MAX as u64 } else { len };
    // The verifier needs the size bounded right where the helper is called.
    if n == 0 || n > MAX as u64 {
        return None;
    }
    // SAFETY: `dst` points to `MAX` writable bytes and `n <= MAX`; the helper fails
    // rather than faults on unreadable user memory.
    let r = unsafe { bpf_probe_read_user(dst.cast::<c_void>(), n as u32, start as *const c_void) };
    (r == 0).then_some((n as u32, truncated))
}

/// Sets `bit` in the `u32` at `field` (a field of a reserved record).
///
/// Record fields are read and written with volatile accesses so that values derived from
/// one read stay in memory, not in registers: the verifier then sees the same state on
/// every path through a loop and prunes instead of exploring each path anew.
#[inline(always)]
pub fn set_bit(field: *mut u32, bit: u32) {
    // SAFETY: `field` points to a `u32` of a reserved ring buffer record.
    unsafe { field.write_volatile(field.read_volatile() | bit) };
}

/// Walks the `struct path` at `path` up to the task's root (`root_mnt`, `root_dentry`),
/// crossing mounts, and writes the components leaf first, each NUL-terminated, into `buf`
/// (`PATH_BUF` bytes), their length into `len_out`. Sets `trunc` in `flags` when the walk
/// hit `PATH_DEPTH_MAX` steps or `PATH_MAX` bytes, `err` when a read failed. This is the
/// kernel's `prepend_path` (`fs/d_path.c`), bounded.
/// Where a walk also writes its path in reading order (`/usr/bin/cat`): the path ends at
/// byte `NATURAL_END` of `buf` (`NATURAL_BUF` bytes) and starts at `*start`.
pub struct Natural {
    pub buf: *mut u8,
    pub start: *mut u32,
}

/// End of a natural-order path in its buffer: at most 256 bytes are kept (the leading
/// components of a longer path are dropped, as the walk goes leaf first).
pub const NATURAL_END: usize = 256;
/// Size of a natural-order buffer: a component written just below `NATURAL_END` fits.
pub const NATURAL_BUF: usize = 512;

/// Where a walk starts: a `struct path` (its dentry and mount), or a dentry alone, walked
/// up to the root of its file system (a dentry does not know where it is mounted).
#[derive(Clone, Copy)]
pub enum Start {
    Path(u64),
    Dentry(u64),
}

#[inline(always)]
pub fn path(
    start: Start,
    root: (u64, u64),
    buf: *mut u8,
    len_out: *mut u32,
    flags: *mut u32,
    (trunc, err): (u32, u32),
    natural: Option<&Natural>,
) {
    if let Some(n) = natural {
        // SAFETY: `start` points to a `u32` of a per-CPU scratch value.
        unsafe { n.start.write_volatile(NATURAL_END as u32) };
    }
    let (root_mnt, root_dentry) = root;
    // SAFETY: `len_out` points to a `u32` of the reserved record.
    unsafe { len_out.write_volatile(0) };
    let (mut dentry, mut vfsmnt) = match start {
        Start::Path(path) => match (
            u64_at(path + off!(path_dentry)),
            u64_at(path + off!(path_mnt)),
        ) {
            (Some(dentry), Some(vfsmnt)) => (dentry, vfsmnt),
            _ => return set_bit(flags, err),
        },
        Start::Dentry(dentry) => (dentry, 0),
    };
    let no_mount = vfsmnt == 0;
    if !no_mount && detached(dentry, vfsmnt) {
        return detached_name(dentry, buf, len_out, flags, err, natural);
    }
    // `struct mount` embeds the `vfsmount` at `mount.mnt`.
    let mut mnt = vfsmnt.wrapping_sub(off!(mount_mnt));
    for _ in 0..PATH_DEPTH_MAX {
        if dentry == root_dentry && vfsmnt == root_mnt {
            return;
        }
        let (Some(mnt_root), Some(parent)) = (
            if no_mount {
                Some(0)
            } else {
                u64_at(vfsmnt + off!(vfsmount_root))
            },
            u64_at(dentry + off!(dentry_parent)),
        ) else {
            return set_bit(flags, err);
        };
        if dentry == mnt_root || dentry == parent {
            if no_mount {
                return;
            }
            // At the root of a mount: continue from where it is mounted, or stop at the
            // global root.
            let Some(mnt_parent) = u64_at(mnt + off!(mount_parent)) else {
                return set_bit(flags, err);
            };
            if mnt_parent == mnt || mnt_parent == 0 {
                return;
            }
            let Some(mountpoint) = u64_at(mnt + off!(mount_mountpoint)) else {
                return set_bit(flags, err);
            };
            dentry = mountpoint;
            mnt = mnt_parent;
            vfsmnt = mnt + off!(mount_mnt);
            continue;
        }
        // SAFETY: as above.
        let len = u64::from(unsafe { len_out.read_volatile() });
        if len >= PATH_MAX as u64 {
            return set_bit(flags, trunc);
        }
        let Some(name) = u64_at(dentry + off!(dentry_name)) else {
            return set_bit(flags, err);
        };
        // The mask is a no-op after the check above; it gives the verifier the bound.
        let at = len & (PATH_MAX as u64 - 1);
        // SAFETY: `buf` has `PATH_BUF = PATH_MAX + NAME_MAX` bytes and `at < PATH_MAX`, so
        // the `NAME_MAX` bytes the helper may write stay inside it.
        let r = unsafe {
            bpf_probe_read_kernel_str(
                buf.add(at as usize).cast::<c_void>(),
                NAME_MAX as u32,
                name as *const c_void,
            )
        };
        if r <= 0 {
            return set_bit(flags, err);
        }
        if let Some(n) = natural {
            prepend(n, buf, at, r as u64);
        }
        // SAFETY: as above.
        unsafe { len_out.write_volatile((len + r as u64) as u32) };
        dentry = parent;
    }
    set_bit(flags, trunc)
}

/// Whether `dentry` (of mount `vfsmnt`) is its own parent without being its mount's
/// root: a file in no directory tree (a memfd's, a socket's), whose name is all the path
/// there is. Checked once, before the walk, so that the walk's loop stays as it is.
#[inline(always)]
fn detached(dentry: u64, vfsmnt: u64) -> bool {
    match (
        u64_at(dentry + off!(dentry_parent)),
        u64_at(vfsmnt + off!(vfsmount_root)),
    ) {
        (Some(parent), Some(root)) => parent == dentry && root != dentry,
        _ => false,
    }
}

/// Writes the name of a detached `dentry` (see [`detached`]) as the path's only
/// component.
#[inline(always)]
fn detached_name(
    dentry: u64,
    buf: *mut u8,
    len_out: *mut u32,
    flags: *mut u32,
    err: u32,
    natural: Option<&Natural>,
) {
    let Some(name) = u64_at(dentry + off!(dentry_name)) else {
        return set_bit(flags, err);
    };
    // SAFETY: `buf` has `PATH_BUF` bytes, more than the `NAME_MAX` the helper may write.
    let r = unsafe {
        bpf_probe_read_kernel_str(buf.cast::<c_void>(), NAME_MAX as u32, name as *const c_void)
    };
    if r <= 0 {
        return set_bit(flags, err);
    }
    if let Some(n) = natural {
        prepend(n, buf, 0, r as u64);
    }
    // SAFETY: `len_out` points to a `u32` of the reserved record.
    unsafe { len_out.write_volatile(r as u32) };
}

/// Writes `/` and the component at `buf + at` (`r` bytes, NUL included) just before the
/// natural-order path built so far; stops (keeping the leaf end) once it is full.
#[inline(always)]
fn prepend(n: &Natural, buf: *mut u8, at: u64, r: u64) {
    // SAFETY: `start` points to a `u32` of a per-CPU scratch value.
    let start = u64::from(unsafe { n.start.read_volatile() });
    if r == 0 || r > start || start > NATURAL_END as u64 {
        return;
    }
    let slash = (start - r) & (NATURAL_END as u64 - 1);
    let size = (r - 1) & (NAME_MAX as u64 - 1);
    // SAFETY: `slash < NATURAL_END` and `slash + 1 + size <= NATURAL_END + NAME_MAX <=
    // NATURAL_BUF`; the source is the component just written to `buf` (`PATH_BUF` bytes,
    // `at < PATH_MAX`).
    unsafe {
        n.buf.add(slash as usize).write(b'/');
        bpf_probe_read_kernel(
            n.buf.add(slash as usize + 1).cast::<c_void>(),
            size as u32,
            buf.add((at & (PATH_MAX as u64 - 1)) as usize) as *const c_void,
        );
        n.start.write_volatile((start - r) as u32);
    }
}

/// Whether the current task is inside a 32-bit syscall (x86's `TS_COMPAT` in
/// `thread_info.status`; `in_ia32_syscall()`). Always false where the field is unknown.
#[inline(always)]
pub fn in_compat_syscall() -> bool {
    use tracer_common::offsets::{HAS_THREAD_STATUS, TS_COMPAT};
    if off!(present) & HAS_THREAD_STATUS as u64 == 0 {
        return false;
    }
    // SAFETY: helper without arguments.
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() };
    u32_at(task + off!(task_thread_status)).is_some_and(|s| s & TS_COMPAT != 0)
}

/// A syscall number as Tetragon's `syscall64` holds it: bit 31 set for a 32-bit syscall.
#[inline(always)]
pub fn syscall64(nr: u64) -> u64 {
    if in_compat_syscall() {
        nr | tracer_common::policy::SYSCALL64_32BIT
    } else {
        nr
    }
}

/// Inode number of namespace `ns` (`tracer_common::policy::NS_*`) of `task`, as
/// `/proc/<pid>/ns/<name>` shows it.
#[inline(always)]
pub fn ns_inum(task: u64, ns: u8) -> Option<u32> {
    use tracer_common::{offsets::HAS_TIME_NS, policy::*};
    let nsproxy = || u64_at(task + off!(task_nsproxy));
    let via_nsproxy = |field: u64, inum: u64| {
        let p = u64_at(nsproxy()? + field)?;
        u32_at(p + inum)
    };
    let has_time = off!(present) & HAS_TIME_NS as u64 != 0;
    match ns {
        NS_UTS => via_nsproxy(off!(nsproxy_uts), off!(uts_inum)),
        NS_IPC => via_nsproxy(off!(nsproxy_ipc), off!(ipc_inum)),
        NS_MNT => via_nsproxy(off!(nsproxy_mnt), off!(mnt_inum)),
        NS_PID_FOR_CHILDREN => via_nsproxy(off!(nsproxy_pid_for_children), off!(pid_ns_inum)),
        NS_NET => via_nsproxy(off!(nsproxy_net), off!(net_inum)),
        NS_TIME if has_time => via_nsproxy(off!(nsproxy_time), off!(time_inum)),
        NS_TIME_FOR_CHILDREN if has_time => {
            via_nsproxy(off!(nsproxy_time_for_children), off!(time_inum))
        }
        NS_CGROUP => via_nsproxy(off!(nsproxy_cgroup), off!(cgroup_inum)),
        NS_PID => {
            // task_active_pid_ns(): thread_pid->numbers[thread_pid->level].ns
            let pid = u64_at(task + off!(task_thread_pid))?;
            let level = u64::from(u32_at(pid + off!(pid_level))? & 0x1f);
            let upid = pid + off!(pid_numbers) + level * off!(upid_size);
            let pidns = u64_at(upid + off!(upid_ns))?;
            u32_at(pidns + off!(pid_ns_inum))
        }
        NS_USER => {
            let cred = u64_at(task + off!(task_cred))?;
            let userns = u64_at(cred + off!(cred_user_ns))?;
            u32_at(userns + off!(user_ns_inum))
        }
        _ => None,
    }
}

/// The process id of `task` as its own pid namespace numbers it (`task_tgid_vnr`): the
/// innermost `upid` of its thread-group leader.
#[inline(always)]
pub fn ns_tgid(task: u64) -> Option<u32> {
    let leader = u64_at(task + off!(task_group_leader))?;
    let pid = u64_at(leader + off!(task_thread_pid))?;
    let level = u64::from(u32_at(pid + off!(pid_level))? & 0x1f);
    let upid = pid + off!(pid_numbers) + level * off!(upid_size);
    u32_at(upid + off!(upid_nr))
}

/// Capability set `set` (`tracer_common::policy::CAPS_*`) of `task`, one bit per
/// capability. `kernel_cap_t` is a `u64` since Linux 6.3 and two `u32`s before: read as
/// 8 bytes, both are the same bits.
#[inline(always)]
pub fn caps(task: u64, set: u8) -> Option<u64> {
    use tracer_common::policy::{CAPS_EFFECTIVE, CAPS_INHERITABLE, CAPS_PERMITTED};
    let cred = u64_at(task + off!(task_cred))?;
    let field = match set {
        CAPS_EFFECTIVE => off!(cred_cap_effective),
        CAPS_PERMITTED => off!(cred_cap_permitted),
        CAPS_INHERITABLE => off!(cred_cap_inheritable),
        _ => return None,
    };
    u64_at(cred + field)
}
