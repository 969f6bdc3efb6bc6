//! Byte offsets of the kernel struct fields the programs read, resolved by the agent
//! from the running kernel's BTF (`/sys/kernel/btf/vmlinux`) and handed to the programs
//! as the frozen global `OFFSETS` before they load. Nothing here is a constant of one
//! kernel: rustc emits no CO-RE relocations, so this is how the programs stay portable.
//!
//! Field names are `<struct>_<field path>`; each doc comment gives the BTF path.

/// `present` bit: `task_struct.loginuid` exists (kernel built with `CONFIG_AUDIT`).
pub const HAS_LOGINUID: u32 = 1 << 0;

/// `present` bit: time namespaces exist (Linux 5.6 and later).
pub const HAS_TIME_NS: u32 = 1 << 1;

/// `present` bit: the `sock_*` offsets are known (IPv6 built in, `sk_protocol` a whole
/// field: Linux 5.6 and later), so kprobes on socket functions can read their socket.
pub const HAS_SOCK: u32 = 1 << 3;

/// `present` bit: the `regs_*` offsets are known (a `pt_regs` layout of this
/// architecture), so syscall hooks can run on the raw `sys_enter`/`sys_exit` tracepoints.
pub const HAS_SYSCALL_REGS: u32 = 1 << 2;

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
    /// `task_struct.nsproxy`
    pub task_nsproxy: u32,
    /// `task_struct.thread_pid`
    pub task_thread_pid: u32,
    /// `nsproxy.uts_ns`, `.ipc_ns`, `.mnt_ns`, `.pid_ns_for_children`, `.net_ns`,
    /// `.time_ns`, `.time_ns_for_children`, `.cgroup_ns`
    pub nsproxy_uts: u32,
    pub nsproxy_ipc: u32,
    pub nsproxy_mnt: u32,
    pub nsproxy_pid_for_children: u32,
    pub nsproxy_net: u32,
    pub nsproxy_time: u32,
    pub nsproxy_time_for_children: u32,
    pub nsproxy_cgroup: u32,
    /// `<namespace struct>.ns.inum` of `uts_namespace`, `ipc_namespace`, `mnt_namespace`,
    /// `net`, `time_namespace`, `cgroup_namespace`, `pid_namespace`, `user_namespace`
    pub uts_inum: u32,
    pub ipc_inum: u32,
    pub mnt_inum: u32,
    pub net_inum: u32,
    pub time_inum: u32,
    pub cgroup_inum: u32,
    pub pid_ns_inum: u32,
    pub user_ns_inum: u32,
    /// `cred.user_ns`
    pub cred_user_ns: u32,
    /// `pid.level`, `pid.numbers`, size of `struct upid`, `upid.ns`
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    pub upid_ns: u32,
    /// `upid.nr`
    pub upid_nr: u32,
    /// `cred.cap_effective`, `.cap_permitted`, `.cap_inheritable`
    pub cred_cap_effective: u32,
    pub cred_cap_permitted: u32,
    pub cred_cap_inheritable: u32,
    /// Where the syscall's arguments 0 to 5 sit in `struct pt_regs` (x86-64: `di`, `si`,
    /// `dx`, `r10`, `r8`, `r9`), and its number (`orig_ax`); valid with
    /// [`HAS_SYSCALL_REGS`].
    pub regs_arg0: u32,
    pub regs_arg1: u32,
    pub regs_arg2: u32,
    pub regs_arg3: u32,
    pub regs_arg4: u32,
    pub regs_arg5: u32,
    pub regs_nr: u32,
    /// `sock.__sk_common.skc_family`, `.skc_state`, `.skc_num` (local port, host order),
    /// `.skc_dport` (network order), `.skc_rcv_saddr`, `.skc_daddr`, `.skc_v6_rcv_saddr`,
    /// `.skc_v6_daddr`, and `sock.sk_protocol`; valid with [`HAS_SOCK`].
    pub sock_family: u32,
    pub sock_state: u32,
    pub sock_num: u32,
    pub sock_dport: u32,
    pub sock_rcv_saddr: u32,
    pub sock_daddr: u32,
    pub sock_v6_rcv_saddr: u32,
    pub sock_v6_daddr: u32,
    pub sock_protocol: u32,
    /// `sock.sk_type`; valid with [`HAS_SOCK`].
    pub sock_type: u32,
    /// From a file descriptor to its socket: `task_struct.files`, `files_struct.fdt`,
    /// `fdtable.max_fds`, `fdtable.fd`, `file.f_inode`, `inode.i_mode`,
    /// `file.private_data` (the `struct socket` of a socket's file), `socket.sk`; valid
    /// with [`HAS_SOCK`].
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_inode: u32,
    pub inode_mode: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    /// `cred.uid`, `.gid`, `.suid`, `.sgid`, `.fsuid`, `.fsgid`, `.securebits`
    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_suid: u32,
    pub cred_sgid: u32,
    pub cred_fsuid: u32,
    pub cred_fsgid: u32,
    pub cred_securebits: u32,
    /// `sk_buff.head`, `.network_header`, `.transport_header`, `.len`
    pub skb_head: u32,
    pub skb_network_header: u32,
    pub skb_transport_header: u32,
    pub skb_len: u32,
    /// `HAS_*` bits.
    pub present: u32,
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, all fields `u32`, no padding: any bit pattern is valid.
unsafe impl aya::Pod for KernelOffsets {}

const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 95 * 4);
