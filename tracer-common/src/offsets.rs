//! Byte offsets of the kernel struct fields the programs read, resolved by the agent
//! from the running kernel's BTF (`/sys/kernel/btf/vmlinux`) and handed to the programs
//! as the frozen global `OFFSETS` before they load. Nothing here is a constant of one
//! kernel: rustc emits no CO-RE relocations, so this is how the programs stay portable.
//!
//! The fields are listed once, in the `kernel_offsets!` invocation below: each with how
//! the agent finds it and its group. From that list come the struct [`KernelOffsets`]
//! (what the programs read), [`KernelOffsets::ZERO`] (what they are built with) and the
//! table [`FIELDS`] (what the agent's resolver walks). Field names are
//! `<struct>_<field path>`.

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

/// `present` bit: the `iov_iter_*` offsets are known (`iter_type` and `ubuf`: Linux 6.0
/// and later), so kprobes can read `iov_iter` arguments.
pub const HAS_IOV_ITER: u32 = 1 << 4;

/// `present` bit: `task_struct.thread_info.status` exists (x86), so a program can tell a
/// 32-bit syscall (`int 0x80`, a 32-bit binary) from a 64-bit one by [`TS_COMPAT`].
pub const HAS_THREAD_STATUS: u32 = 1 << 5;

/// `thread_info.status` bit of a task inside a 32-bit syscall (x86's `TS_COMPAT`, in
/// `arch/x86/include/asm/thread_info.h`, unchanged since 2.6.33). The kernel sets it at a
/// compat syscall's entry and clears it before returning to user mode.
pub const TS_COMPAT: u32 = 0x0002;

/// `task_struct.flags` bit of kernel threads (`include/linux/sched.h`, unchanged since
/// 2.6): they never exec and are not reported.
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// `task_struct.flags` bit of a task on its way out (`include/linux/sched.h`, unchanged
/// since 2.6): set at the start of `do_exit`, before its exit is reported.
pub const PF_EXITING: u32 = 0x0000_0004;

/// How the agent finds the value of one field of [`KernelOffsets`] in the kernel's BTF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Byte offset of a dotted member path from the start of its struct, e.g.
    /// `dentry.d_name.name`.
    Path(&'static str),
    /// Size in bytes of a struct, e.g. `upid` (an array stride, not an offset).
    SizeOf(&'static str),
    /// Byte offset in `struct pt_regs` of syscall register `N` of the architecture's
    /// syscall ABI: arguments 0 to 5, then the syscall number (the agent's
    /// `SYSCALL_REGS[N]`).
    SyscallReg(usize),
}

/// Whether the programs can do without a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Every kernel the tracer supports has it: not finding it is an error.
    Required,
    /// Set, with this `present` bit, only when every field of the group is found; otherwise
    /// all of them stay 0 and the bit clear.
    Optional(u32),
}

/// One field of [`KernelOffsets`], as the resolver sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field's name in [`KernelOffsets`].
    pub name: &'static str,
    /// How its value is found.
    pub source: Source,
    /// Required, or which optional group.
    pub group: Group,
    /// Its position in [`KernelOffsets`], for [`KernelOffsets::get`] and
    /// [`KernelOffsets::field_mut`].
    pub index: usize,
}

/// The doc line of a field, from how it is found.
macro_rules! source_doc {
    (Path($path:literal)) => {
        concat!("`", $path, "`")
    };
    (SizeOf($strukt:literal)) => {
        concat!("Size of `struct ", $strukt, "`")
    };
    (SyscallReg($n:literal)) => {
        concat!("Syscall register ", $n, " in `struct pt_regs`")
    };
}

/// Defines [`KernelOffsets`], [`KernelOffsets::ZERO`], its accessors by index and
/// [`FIELDS`] from one list. Per field: its doc (optional, after the generated first
/// line), `name: Source, Group;`, with `Source` one of `Path("struct.member…")`,
/// `SizeOf("struct")`, `SyscallReg(N)` and `Group` either `Required` or
/// `Optional(HAS_…)`. `present: u32` is added last.
macro_rules! kernel_offsets {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $kind:ident($arg:literal), $group:ident $(($bit:ident))?;
    )*) => {
        /// Offsets of kernel struct fields (and one struct size), as the programs read
        /// them from `OFFSETS`: `#[repr(C)]`, all `u32`, no padding.
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct KernelOffsets {
            $(
                #[doc = source_doc!($kind($arg))]
                $(#[doc = concat!("(valid with [`", stringify!($bit), "`])")])?
                #[doc = ""]
                $(#[doc = $doc])*
                pub $name: u32,
            )*
            /// `HAS_*` bits.
            pub present: u32,
        }

        impl KernelOffsets {
            /// Nothing known: what the programs are built with, and where the resolver
            /// starts.
            pub const ZERO: Self = Self {
                $($name: 0,)*
                present: 0,
            };

            /// The field at `index` (the order of declaration; `present` is last).
            pub fn get(&self, index: usize) -> Option<u32> {
                [$(self.$name,)* self.present].get(index).copied()
            }

            /// The field at `index` (the order of declaration; `present` is last).
            pub fn field_mut(&mut self, index: usize) -> Option<&mut u32> {
                [$(&mut self.$name,)* &mut self.present]
                    .into_iter()
                    .nth(index)
            }
        }

        /// Every field of [`KernelOffsets`] but `present`, in order: how the agent finds
        /// it and its group.
        pub const FIELDS: &[FieldSpec] = &[
            $(FieldSpec {
                name: stringify!($name),
                source: Source::$kind($arg),
                group: Group::$group $(($bit))?,
                index: core::mem::offset_of!(KernelOffsets, $name) / core::mem::size_of::<u32>(),
            },)*
        ];
    };
}

kernel_offsets! {
    task_real_parent: Path("task_struct.real_parent"), Required;
    task_tgid: Path("task_struct.tgid"), Required;
    task_pid: Path("task_struct.pid"), Required;
    task_start_time: Path("task_struct.start_time"), Required;
    task_mm: Path("task_struct.mm"), Required;
    task_fs: Path("task_struct.fs"), Required;
    /// Only with `CONFIG_AUDIT`.
    task_loginuid: Path("task_struct.loginuid"), Optional(HAS_LOGINUID);
    task_cred: Path("task_struct.cred"), Required;
    task_signal: Path("task_struct.signal"), Required;
    task_group_leader: Path("task_struct.group_leader"), Required;
    task_exit_code: Path("task_struct.exit_code"), Required;
    task_flags: Path("task_struct.flags"), Required;
    /// x86 only (other architectures mark 32-bit tasks elsewhere).
    task_thread_status: Path("task_struct.thread_info.status"), Optional(HAS_THREAD_STATUS);
    mm_arg_start: Path("mm_struct.arg_start"), Required;
    mm_arg_end: Path("mm_struct.arg_end"), Required;
    mm_env_start: Path("mm_struct.env_start"), Required;
    mm_env_end: Path("mm_struct.env_end"), Required;
    cred_euid: Path("cred.euid"), Required;
    cred_egid: Path("cred.egid"), Required;
    fs_root: Path("fs_struct.root"), Required;
    fs_pwd: Path("fs_struct.pwd"), Required;
    path_mnt: Path("path.mnt"), Required;
    path_dentry: Path("path.dentry"), Required;
    dentry_parent: Path("dentry.d_parent"), Required;
    dentry_name: Path("dentry.d_name.name"), Required;
    vfsmount_root: Path("vfsmount.mnt_root"), Required;
    /// Where the `vfsmount` sits inside its `struct mount`.
    mount_mnt: Path("mount.mnt"), Required;
    mount_parent: Path("mount.mnt_parent"), Required;
    mount_mountpoint: Path("mount.mnt_mountpoint"), Required;
    bprm_file: Path("linux_binprm.file"), Required;
    bprm_filename: Path("linux_binprm.filename"), Required;
    bprm_interp: Path("linux_binprm.interp"), Required;
    bprm_per_clear: Path("linux_binprm.per_clear"), Required;
    file_path: Path("file.f_path"), Required;
    signal_live: Path("signal_struct.live.counter"), Required;
    task_nsproxy: Path("task_struct.nsproxy"), Required;
    task_thread_pid: Path("task_struct.thread_pid"), Required;
    nsproxy_uts: Path("nsproxy.uts_ns"), Required;
    nsproxy_ipc: Path("nsproxy.ipc_ns"), Required;
    nsproxy_mnt: Path("nsproxy.mnt_ns"), Required;
    nsproxy_pid_for_children: Path("nsproxy.pid_ns_for_children"), Required;
    nsproxy_net: Path("nsproxy.net_ns"), Required;
    /// Time namespaces exist since Linux 5.6.
    nsproxy_time: Path("nsproxy.time_ns"), Optional(HAS_TIME_NS);
    nsproxy_time_for_children: Path("nsproxy.time_ns_for_children"), Optional(HAS_TIME_NS);
    nsproxy_cgroup: Path("nsproxy.cgroup_ns"), Required;
    uts_inum: Path("uts_namespace.ns.inum"), Required;
    ipc_inum: Path("ipc_namespace.ns.inum"), Required;
    mnt_inum: Path("mnt_namespace.ns.inum"), Required;
    net_inum: Path("net.ns.inum"), Required;
    time_inum: Path("time_namespace.ns.inum"), Optional(HAS_TIME_NS);
    cgroup_inum: Path("cgroup_namespace.ns.inum"), Required;
    pid_ns_inum: Path("pid_namespace.ns.inum"), Required;
    user_ns_inum: Path("user_namespace.ns.inum"), Required;
    cred_user_ns: Path("cred.user_ns"), Required;
    pid_level: Path("pid.level"), Required;
    pid_numbers: Path("pid.numbers"), Required;
    /// The stride of `pid.numbers[]`.
    upid_size: SizeOf("upid"), Required;
    upid_ns: Path("upid.ns"), Required;
    upid_nr: Path("upid.nr"), Required;
    cred_cap_effective: Path("cred.cap_effective"), Required;
    cred_cap_permitted: Path("cred.cap_permitted"), Required;
    cred_cap_inheritable: Path("cred.cap_inheritable"), Required;
    cred_cap_ambient: Path("cred.cap_ambient"), Required;
    /// Syscall argument 0 (x86-64: `di`).
    regs_arg0: SyscallReg(0), Optional(HAS_SYSCALL_REGS);
    /// Syscall argument 1 (x86-64: `si`).
    regs_arg1: SyscallReg(1), Optional(HAS_SYSCALL_REGS);
    /// Syscall argument 2 (x86-64: `dx`).
    regs_arg2: SyscallReg(2), Optional(HAS_SYSCALL_REGS);
    /// Syscall argument 3 (x86-64: `r10`).
    regs_arg3: SyscallReg(3), Optional(HAS_SYSCALL_REGS);
    /// Syscall argument 4 (x86-64: `r8`).
    regs_arg4: SyscallReg(4), Optional(HAS_SYSCALL_REGS);
    /// Syscall argument 5 (x86-64: `r9`).
    regs_arg5: SyscallReg(5), Optional(HAS_SYSCALL_REGS);
    /// The syscall number (x86-64: `orig_ax`).
    regs_nr: SyscallReg(6), Optional(HAS_SYSCALL_REGS);
    sock_family: Path("sock.__sk_common.skc_family"), Optional(HAS_SOCK);
    sock_state: Path("sock.__sk_common.skc_state"), Optional(HAS_SOCK);
    /// The local port, in host order.
    sock_num: Path("sock.__sk_common.skc_num"), Optional(HAS_SOCK);
    /// The remote port, in network order.
    sock_dport: Path("sock.__sk_common.skc_dport"), Optional(HAS_SOCK);
    sock_rcv_saddr: Path("sock.__sk_common.skc_rcv_saddr"), Optional(HAS_SOCK);
    sock_daddr: Path("sock.__sk_common.skc_daddr"), Optional(HAS_SOCK);
    sock_v6_rcv_saddr: Path("sock.__sk_common.skc_v6_rcv_saddr"), Optional(HAS_SOCK);
    sock_v6_daddr: Path("sock.__sk_common.skc_v6_daddr"), Optional(HAS_SOCK);
    /// A whole field since Linux 5.6.
    sock_protocol: Path("sock.sk_protocol"), Optional(HAS_SOCK);
    sock_type: Path("sock.sk_type"), Optional(HAS_SOCK);
    /// From a file descriptor to its socket: the task's open files, …
    task_files: Path("task_struct.files"), Optional(HAS_SOCK);
    files_fdt: Path("files_struct.fdt"), Optional(HAS_SOCK);
    fdtable_max_fds: Path("fdtable.max_fds"), Optional(HAS_SOCK);
    fdtable_fd: Path("fdtable.fd"), Optional(HAS_SOCK);
    file_inode: Path("file.f_inode"), Required;
    inode_mode: Path("inode.i_mode"), Optional(HAS_SOCK);
    inode_ino: Path("inode.i_ino"), Required;
    /// In a union with the read-only `i_nlink`.
    inode_nlink: Path("inode.__i_nlink"), Required;
    /// The `struct socket` of a socket's file.
    file_private_data: Path("file.private_data"), Optional(HAS_SOCK);
    socket_sk: Path("socket.sk"), Optional(HAS_SOCK);
    cred_uid: Path("cred.uid"), Required;
    cred_gid: Path("cred.gid"), Required;
    cred_suid: Path("cred.suid"), Required;
    cred_sgid: Path("cred.sgid"), Required;
    cred_fsuid: Path("cred.fsuid"), Required;
    cred_fsgid: Path("cred.fsgid"), Required;
    cred_securebits: Path("cred.securebits"), Required;
    skb_head: Path("sk_buff.head"), Required;
    skb_network_header: Path("sk_buff.network_header"), Required;
    skb_transport_header: Path("sk_buff.transport_header"), Required;
    skb_len: Path("sk_buff.len"), Required;
    /// A `kiocb` argument's file.
    kiocb_filp: Path("kiocb.ki_filp"), Required;
    iov_iter_type: Path("iov_iter.iter_type"), Optional(HAS_IOV_ITER);
    iov_iter_count: Path("iov_iter.count"), Optional(HAS_IOV_ITER);
    /// `ubuf` of `ITER_UBUF`, in the union that holds `ITER_IOVEC`'s array.
    iov_iter_ubuf: Path("iov_iter.ubuf"), Optional(HAS_IOV_ITER);
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, all fields `u32`, no padding (asserted below): any bit pattern is
// valid.
unsafe impl aya::Pod for KernelOffsets {}

// 4 bytes a field, no padding: every entry of `FIELDS`, then `present`.
const _: () = assert!(
    core::mem::size_of::<KernelOffsets>() == (FIELDS.len() + 1) * core::mem::size_of::<u32>()
);
const _: () = assert!(core::mem::align_of::<KernelOffsets>() == core::mem::align_of::<u32>());
// `FIELDS` is in the order of declaration, so its position is the index of the field.
const _: () = {
    let mut i = 0;
    while i < FIELDS.len() {
        assert!(FIELDS[i].index == i);
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONAL_BITS: [u32; 6] = [
        HAS_LOGINUID,
        HAS_TIME_NS,
        HAS_SOCK,
        HAS_SYSCALL_REGS,
        HAS_IOV_ITER,
        HAS_THREAD_STATUS,
    ];

    #[test]
    fn every_entry_names_a_distinct_field() {
        for (i, a) in FIELDS.iter().enumerate() {
            for b in &FIELDS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.index, b.index, "{} and {}", a.name, b.name);
                assert_ne!(a.source, b.source, "{} and {}", a.name, b.name);
            }
            assert_ne!(a.name, "present");
        }
        // Each entry's index reaches its own field and only it, and every field but
        // `present` has an entry.
        let fields = core::mem::size_of::<KernelOffsets>() / 4;
        assert_eq!(FIELDS.len(), fields - 1);
        for spec in FIELDS {
            let mut o = KernelOffsets::ZERO;
            *o.field_mut(spec.index).unwrap() = 7;
            for i in 0..fields {
                let want = if i == spec.index { 7 } else { 0 };
                assert_eq!(o.get(i), Some(want), "{}: field {i}", spec.name);
            }
            assert_eq!(o.present, 0);
        }
        assert_eq!(KernelOffsets::ZERO, KernelOffsets::default());
        assert_eq!(KernelOffsets::ZERO.get(fields), None);
    }

    #[test]
    fn spot_checks() {
        let spec = |name: &str| FIELDS.iter().find(|f| f.name == name).copied().unwrap();
        assert_eq!(
            spec("dentry_name").source,
            Source::Path("dentry.d_name.name")
        );
        assert_eq!(spec("upid_size").source, Source::SizeOf("upid"));
        assert_eq!(spec("regs_nr").source, Source::SyscallReg(6));
        assert_eq!(spec("task_loginuid").group, Group::Optional(HAS_LOGINUID));
        let mut o = KernelOffsets::ZERO;
        *o.field_mut(spec("skb_len").index).unwrap() = 112;
        assert_eq!(o.skb_len, 112);
        *o.field_mut(spec("task_real_parent").index).unwrap() = 1;
        assert_eq!(o.task_real_parent, 1);
    }

    #[test]
    fn optional_groups_have_distinct_bits() {
        // Each bit is one bit, and no two groups share one.
        let mut all = 0;
        for bit in OPTIONAL_BITS {
            assert_eq!(bit.count_ones(), 1, "{bit:#x}");
            assert_eq!(all & bit, 0, "{bit:#x} twice");
            all |= bit;
        }
        // Every optional entry uses one of them, and every one of them has entries.
        let mut used = 0;
        for spec in FIELDS {
            if let Group::Optional(bit) = spec.group {
                assert!(OPTIONAL_BITS.contains(&bit), "{}: {bit:#x}", spec.name);
                used |= bit;
            }
        }
        assert_eq!(used, all);
    }

    #[test]
    fn syscall_registers_are_optional_and_complete() {
        // Not every architecture has a known `pt_regs` syscall ABI: they cannot be required.
        let mut seen = [false; 7];
        for spec in FIELDS {
            if let Source::SyscallReg(n) = spec.source {
                assert_eq!(
                    spec.group,
                    Group::Optional(HAS_SYSCALL_REGS),
                    "{}",
                    spec.name
                );
                assert!(!seen[n], "register {n} twice");
                seen[n] = true;
            }
        }
        assert_eq!(seen, [true; 7]);
    }
}
