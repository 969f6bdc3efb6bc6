//! Values the agent hands in at load time. They live in `.rodata`, which aya freezes
//! after filling, so the verifier sees every offset as a constant.

use tracer_common::offsets::KernelOffsets;

/// Field offsets resolved by the agent from the running kernel's BTF.
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: KernelOffsets = KernelOffsets {
    task_real_parent: 0,
    task_tgid: 0,
    task_pid: 0,
    task_start_time: 0,
    task_mm: 0,
    task_fs: 0,
    task_loginuid: 0,
    task_cred: 0,
    task_signal: 0,
    task_group_leader: 0,
    task_exit_code: 0,
    task_flags: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    cred_euid: 0,
    cred_egid: 0,
    fs_root: 0,
    fs_pwd: 0,
    path_mnt: 0,
    path_dentry: 0,
    dentry_parent: 0,
    dentry_name: 0,
    vfsmount_root: 0,
    mount_mnt: 0,
    mount_parent: 0,
    mount_mountpoint: 0,
    bprm_file: 0,
    bprm_filename: 0,
    bprm_interp: 0,
    file_path: 0,
    signal_live: 0,
    task_nsproxy: 0,
    task_thread_pid: 0,
    nsproxy_uts: 0,
    nsproxy_ipc: 0,
    nsproxy_mnt: 0,
    nsproxy_pid_for_children: 0,
    nsproxy_net: 0,
    nsproxy_time: 0,
    nsproxy_time_for_children: 0,
    nsproxy_cgroup: 0,
    uts_inum: 0,
    ipc_inum: 0,
    mnt_inum: 0,
    net_inum: 0,
    time_inum: 0,
    cgroup_inum: 0,
    pid_ns_inum: 0,
    user_ns_inum: 0,
    cred_user_ns: 0,
    pid_level: 0,
    pid_numbers: 0,
    upid_size: 0,
    upid_ns: 0,
    upid_nr: 0,
    cred_cap_effective: 0,
    cred_cap_permitted: 0,
    cred_cap_inheritable: 0,
    regs_arg0: 0,
    regs_arg1: 0,
    regs_arg2: 0,
    regs_arg3: 0,
    regs_arg4: 0,
    regs_arg5: 0,
    regs_nr: 0,
    sock_family: 0,
    sock_state: 0,
    sock_num: 0,
    sock_dport: 0,
    sock_rcv_saddr: 0,
    sock_daddr: 0,
    sock_v6_rcv_saddr: 0,
    sock_v6_daddr: 0,
    sock_protocol: 0,
    sock_type: 0,
    task_files: 0,
    files_fdt: 0,
    fdtable_max_fds: 0,
    fdtable_fd: 0,
    file_inode: 0,
    inode_mode: 0,
    file_private_data: 0,
    socket_sk: 0,
    cred_uid: 0,
    cred_gid: 0,
    cred_suid: 0,
    cred_sgid: 0,
    cred_fsuid: 0,
    cred_fsgid: 0,
    cred_securebits: 0,
    skb_head: 0,
    skb_network_header: 0,
    skb_transport_header: 0,
    skb_len: 0,
    present: 0,
};

/// How many bytes may wait in `EVENTS` before a record wakes the agent; 0 wakes it for
/// every record (the kernel's own rule). Below the threshold records are submitted without
/// a wake-up (no interrupt, no context switch) and the agent reads them on its timer.
#[unsafe(no_mangle)]
pub(crate) static WAKEUP_BYTES: u64 = 0;

/// Reads one field of `OFFSETS`: `off!(task_tgid)` is the offset of `task_struct.tgid`.
/// The read is volatile so that the compiler cannot fold the zeros it sees at build time.
macro_rules! off {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        // SAFETY: OFFSETS is a valid, aligned static; a volatile read of one of its
        // fields is a plain load from .rodata.
        let v = unsafe { core::ptr::read_volatile(&raw const crate::globals::OFFSETS.$field) };
        v as u64
    }};
}
pub(crate) use off;
