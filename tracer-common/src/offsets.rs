//! Byte offsets of the kernel struct fields the programs read, resolved by the agent
//! from the running kernel's BTF (`/sys/kernel/btf/vmlinux`) and handed to the programs
//! as the frozen global `OFFSETS` before they load. Nothing here is a constant of one
//! kernel: rustc emits no CO-RE relocations, so this is how the programs stay portable.
//!
//! Field names are `<struct>_<field path>`; each doc comment gives the BTF path.

/// `present` bit: `task_struct.loginuid` exists (kernel built with `CONFIG_AUDIT`).
pub const HAS_LOGINUID: u32 = 1 << 0;

/// `task_struct.flags` bit of kernel threads (`include/linux/sched.h`, unchanged since
/// 2.6): they never exec and are not reported.
pub const PF_KTHREAD: u32 = 0x0020_0000;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.real_parent`
    pub task_real_parent: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `task_struct.pid`
    pub task_pid: u32,
    /// `task_struct.start_time`
    pub task_start_time: u32,
    /// `task_struct.mm`
    pub task_mm: u32,
    /// `task_struct.fs`
    pub task_fs: u32,
    /// `task_struct.loginuid` (valid with [`HAS_LOGINUID`])
    pub task_loginuid: u32,
    /// `task_struct.cred`
    pub task_cred: u32,
    /// `task_struct.signal`
    pub task_signal: u32,
    /// `task_struct.group_leader`
    pub task_group_leader: u32,
    /// `task_struct.exit_code`
    pub task_exit_code: u32,
    /// `task_struct.flags`
    pub task_flags: u32,
    /// `mm_struct.arg_start`
    pub mm_arg_start: u32,
    /// `mm_struct.arg_end`
    pub mm_arg_end: u32,
    /// `cred.euid`
    pub cred_euid: u32,
    /// `cred.egid`
    pub cred_egid: u32,
    /// `fs_struct.root`
    pub fs_root: u32,
    /// `fs_struct.pwd`
    pub fs_pwd: u32,
    /// `path.mnt`
    pub path_mnt: u32,
    /// `path.dentry`
    pub path_dentry: u32,
    /// `dentry.d_parent`
    pub dentry_parent: u32,
    /// `dentry.d_name.name`
    pub dentry_name: u32,
    /// `vfsmount.mnt_root`
    pub vfsmount_root: u32,
    /// `mount.mnt`: where the `vfsmount` sits inside its `struct mount`
    pub mount_mnt: u32,
    /// `mount.mnt_parent`
    pub mount_parent: u32,
    /// `mount.mnt_mountpoint`
    pub mount_mountpoint: u32,
    /// `linux_binprm.file`
    pub bprm_file: u32,
    /// `linux_binprm.filename`
    pub bprm_filename: u32,
    /// `linux_binprm.interp`
    pub bprm_interp: u32,
    /// `file.f_path`
    pub file_path: u32,
    /// `signal_struct.live.counter`
    pub signal_live: u32,
    /// `HAS_*` / `EXIT_HAS_*` bits.
    pub present: u32,
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, all fields `u32`, no padding: any bit pattern is valid.
unsafe impl aya::Pod for KernelOffsets {}

const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 32 * 4);
