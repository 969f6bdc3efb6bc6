//! Offsets of kernel struct fields, resolved from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`) at start-up and handed to the programs as `OFFSETS`.
//!
//! A path such as `dentry.d_name.name` is walked member by member; anonymous structs and
//! unions (`mm_struct` keeps its fields in one) are searched through, typedefs and
//! qualifiers are looked through. A missing field is an error that names it, except the
//! optional ones, which clear their `present` bit instead.

use std::path::{Path, PathBuf};

use btf_rs::{Btf, Type};
use tracer_common::offsets::{
    HAS_LOGINUID, HAS_SOCK, HAS_SYSCALL_REGS, HAS_TIME_NS, KernelOffsets,
};

/// The `struct pt_regs` fields that hold a syscall's arguments 0 to 5 and its number, in
/// the syscall ABI of the architecture the agent is built for. Elsewhere syscall hooks
/// keep to their own tracepoints.
#[cfg(target_arch = "x86_64")]
const SYSCALL_REGS: Option<[&str; 7]> = Some(["di", "si", "dx", "r10", "r8", "r9", "orig_ax"]);
#[cfg(not(target_arch = "x86_64"))]
const SYSCALL_REGS: Option<[&str; 7]> = None;

/// Where the kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "cannot read kernel BTF at {path}: {source}; the tracer needs a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.4)"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: btf_rs::Error,
    },
    #[error("kernel BTF has no struct `{0}`")]
    NoStruct(String),
    #[error("kernel BTF: struct `{strukt}` has no field `{field}` (resolving `{path}`)")]
    NoField {
        strukt: String,
        field: String,
        path: String,
    },
    #[error("kernel BTF: `{path}` is a bit field or not byte-aligned")]
    NotByteAligned { path: String },
    #[error("kernel BTF: `{path}`: `{field}` is not a struct or union, cannot go further")]
    NotAStruct { path: String, field: String },
    #[error("kernel BTF: offset of `{path}` does not fit 32 bits")]
    TooFar { path: String },
    #[error("kernel BTF: {0}")]
    Btf(#[from] btf_rs::Error),
}

/// The running kernel's type information.
pub struct KernelBtf {
    btf: Btf,
}

/// What was resolved: the offsets, and which hook variants this kernel needs.
#[derive(Clone, Copy, Debug)]
pub struct Resolved {
    pub offsets: KernelOffsets,
    /// `sched_process_exit` passes `group_dead` (Linux 6.16 and later).
    pub exit_has_group_dead: bool,
}

impl KernelBtf {
    pub fn from_sys() -> Result<Self, BtfError> {
        Self::from_file(Path::new(VMLINUX_BTF))
    }

    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let btf = Btf::from_file(path).map_err(|source| BtfError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { btf })
    }

    /// Resolves every field the programs read.
    pub fn resolve(&self) -> Result<Resolved, BtfError> {
        let o = |path: &str| self.offset_of(path);
        let mut offsets = KernelOffsets {
            task_real_parent: o("task_struct.real_parent")?,
            task_tgid: o("task_struct.tgid")?,
            task_pid: o("task_struct.pid")?,
            task_start_time: o("task_struct.start_time")?,
            task_mm: o("task_struct.mm")?,
            task_fs: o("task_struct.fs")?,
            task_loginuid: 0,
            task_cred: o("task_struct.cred")?,
            task_signal: o("task_struct.signal")?,
            task_group_leader: o("task_struct.group_leader")?,
            task_exit_code: o("task_struct.exit_code")?,
            task_flags: o("task_struct.flags")?,
            mm_arg_start: o("mm_struct.arg_start")?,
            mm_arg_end: o("mm_struct.arg_end")?,
            cred_euid: o("cred.euid")?,
            cred_egid: o("cred.egid")?,
            fs_root: o("fs_struct.root")?,
            fs_pwd: o("fs_struct.pwd")?,
            path_mnt: o("path.mnt")?,
            path_dentry: o("path.dentry")?,
            dentry_parent: o("dentry.d_parent")?,
            dentry_name: o("dentry.d_name.name")?,
            vfsmount_root: o("vfsmount.mnt_root")?,
            mount_mnt: o("mount.mnt")?,
            mount_parent: o("mount.mnt_parent")?,
            mount_mountpoint: o("mount.mnt_mountpoint")?,
            bprm_file: o("linux_binprm.file")?,
            bprm_filename: o("linux_binprm.filename")?,
            bprm_interp: o("linux_binprm.interp")?,
            file_path: o("file.f_path")?,
            signal_live: o("signal_struct.live.counter")?,
            task_nsproxy: o("task_struct.nsproxy")?,
            task_thread_pid: o("task_struct.thread_pid")?,
            nsproxy_uts: o("nsproxy.uts_ns")?,
            nsproxy_ipc: o("nsproxy.ipc_ns")?,
            nsproxy_mnt: o("nsproxy.mnt_ns")?,
            nsproxy_pid_for_children: o("nsproxy.pid_ns_for_children")?,
            nsproxy_net: o("nsproxy.net_ns")?,
            nsproxy_time: 0,
            nsproxy_time_for_children: 0,
            nsproxy_cgroup: o("nsproxy.cgroup_ns")?,
            uts_inum: o("uts_namespace.ns.inum")?,
            ipc_inum: o("ipc_namespace.ns.inum")?,
            mnt_inum: o("mnt_namespace.ns.inum")?,
            net_inum: o("net.ns.inum")?,
            time_inum: 0,
            cgroup_inum: o("cgroup_namespace.ns.inum")?,
            pid_ns_inum: o("pid_namespace.ns.inum")?,
            user_ns_inum: o("user_namespace.ns.inum")?,
            cred_user_ns: o("cred.user_ns")?,
            pid_level: o("pid.level")?,
            pid_numbers: o("pid.numbers")?,
            upid_size: self.size_of("upid")?,
            upid_ns: o("upid.ns")?,
            upid_nr: o("upid.nr")?,
            cred_cap_effective: o("cred.cap_effective")?,
            cred_cap_permitted: o("cred.cap_permitted")?,
            cred_cap_inheritable: o("cred.cap_inheritable")?,
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
            cred_uid: o("cred.uid")?,
            cred_gid: o("cred.gid")?,
            cred_suid: o("cred.suid")?,
            cred_sgid: o("cred.sgid")?,
            cred_fsuid: o("cred.fsuid")?,
            cred_fsgid: o("cred.fsgid")?,
            cred_securebits: o("cred.securebits")?,
            skb_head: o("sk_buff.head")?,
            skb_network_header: o("sk_buff.network_header")?,
            skb_transport_header: o("sk_buff.transport_header")?,
            skb_len: o("sk_buff.len")?,
            present: 0,
        };
        // Sockets, for kprobes on socket functions.
        let sock: Result<Vec<u32>, _> = [
            "sock.__sk_common.skc_family",
            "sock.__sk_common.skc_state",
            "sock.__sk_common.skc_num",
            "sock.__sk_common.skc_dport",
            "sock.__sk_common.skc_rcv_saddr",
            "sock.__sk_common.skc_daddr",
            "sock.__sk_common.skc_v6_rcv_saddr",
            "sock.__sk_common.skc_v6_daddr",
            "sock.sk_protocol",
            "sock.sk_type",
            "task_struct.files",
            "files_struct.fdt",
            "fdtable.max_fds",
            "fdtable.fd",
            "file.f_inode",
            "inode.i_mode",
            "file.private_data",
            "socket.sk",
        ]
        .iter()
        .map(|p| o(p))
        .collect();
        if let Ok(f) = sock {
            offsets.sock_family = f[0];
            offsets.sock_state = f[1];
            offsets.sock_num = f[2];
            offsets.sock_dport = f[3];
            offsets.sock_rcv_saddr = f[4];
            offsets.sock_daddr = f[5];
            offsets.sock_v6_rcv_saddr = f[6];
            offsets.sock_v6_daddr = f[7];
            offsets.sock_protocol = f[8];
            offsets.sock_type = f[9];
            offsets.task_files = f[10];
            offsets.files_fdt = f[11];
            offsets.fdtable_max_fds = f[12];
            offsets.fdtable_fd = f[13];
            offsets.file_inode = f[14];
            offsets.inode_mode = f[15];
            offsets.file_private_data = f[16];
            offsets.socket_sk = f[17];
            offsets.present |= HAS_SOCK;
        }
        // The syscall ABI's registers, for the raw syscall tracepoints.
        if let Some(regs) = SYSCALL_REGS {
            let found: Result<Vec<u32>, _> =
                regs.iter().map(|r| o(&format!("pt_regs.{r}"))).collect();
            if let Ok(f) = found {
                offsets.regs_arg0 = f[0];
                offsets.regs_arg1 = f[1];
                offsets.regs_arg2 = f[2];
                offsets.regs_arg3 = f[3];
                offsets.regs_arg4 = f[4];
                offsets.regs_arg5 = f[5];
                offsets.regs_nr = f[6];
                offsets.present |= HAS_SYSCALL_REGS;
            }
        }
        // Only since Linux 5.6.
        if let (Ok(t), Ok(tc), Ok(inum)) = (
            o("nsproxy.time_ns"),
            o("nsproxy.time_ns_for_children"),
            o("time_namespace.ns.inum"),
        ) {
            offsets.nsproxy_time = t;
            offsets.nsproxy_time_for_children = tc;
            offsets.time_inum = inum;
            offsets.present |= HAS_TIME_NS;
        }
        // Only with CONFIG_AUDIT.
        if let Ok(off) = o("task_struct.loginuid") {
            offsets.task_loginuid = off;
            offsets.present |= HAS_LOGINUID;
        }
        let exit_has_group_dead = self.tracepoint_arg_count("sched_process_exit")? >= 2;
        Ok(Resolved {
            offsets,
            exit_has_group_dead,
        })
    }

    /// Byte offset of a dotted field path, e.g. `dentry.d_name.name`.
    pub fn offset_of(&self, path: &str) -> Result<u32, BtfError> {
        let mut parts = path.split('.');
        let strukt = parts.next().unwrap_or_default();
        let mut ty = self.find_struct(strukt)?;
        let mut ty_name = strukt.to_owned();
        let mut bits: u64 = 0;
        let mut fields = parts.peekable();
        while let Some(field) = fields.next() {
            let (member_bits, member_ty) =
                self.find_member(&ty, field)?
                    .ok_or_else(|| BtfError::NoField {
                        strukt: ty_name.clone(),
                        field: field.to_owned(),
                        path: path.to_owned(),
                    })?;
            bits += member_bits;
            if fields.peek().is_some() {
                ty = self.strip(member_ty)?;
                if !matches!(ty, Type::Struct(_) | Type::Union(_)) {
                    return Err(BtfError::NotAStruct {
                        path: path.to_owned(),
                        field: field.to_owned(),
                    });
                }
                ty_name = field.to_owned();
            }
        }
        if !bits.is_multiple_of(8) {
            return Err(BtfError::NotByteAligned {
                path: path.to_owned(),
            });
        }
        u32::try_from(bits / 8).map_err(|_| BtfError::TooFar {
            path: path.to_owned(),
        })
    }

    /// Size in bytes of struct `name`.
    pub fn size_of(&self, name: &str) -> Result<u32, BtfError> {
        match self.find_struct(name)? {
            Type::Struct(s) => u32::try_from(s.size()).map_err(|_| BtfError::TooFar {
                path: name.to_owned(),
            }),
            _ => Err(BtfError::NoStruct(name.to_owned())),
        }
    }

    /// Number of arguments of a tracepoint's `TP_PROTO`, from its `btf_trace_<name>`
    /// typedef (a pointer to a function whose first parameter is the probe's data).
    pub fn tracepoint_arg_count(&self, name: &str) -> Result<usize, BtfError> {
        let typedef = format!("btf_trace_{name}");
        for t in self.btf.resolve_types_by_name(&typedef)? {
            if let Type::Typedef(td) = t
                && let Type::Ptr(p) = self.btf.resolve_chained_type(&td)?
                && let Type::FuncProto(proto) = self.btf.resolve_chained_type(&p)?
            {
                return Ok(proto.parameters.len().saturating_sub(1));
            }
        }
        Err(BtfError::NoStruct(typedef))
    }

    fn find_struct(&self, name: &str) -> Result<Type, BtfError> {
        self.btf
            .resolve_types_by_name(name)
            .ok()
            .and_then(|types| {
                types
                    .into_iter()
                    .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
            })
            .ok_or_else(|| BtfError::NoStruct(name.to_owned()))
    }

    /// Finds `field` in a struct or union, searching anonymous members; returns its bit
    /// offset from the start of `ty` and its type.
    fn find_member(&self, ty: &Type, field: &str) -> Result<Option<(u64, Type)>, BtfError> {
        let (Type::Struct(s) | Type::Union(s)) = ty else {
            return Ok(None);
        };
        for m in &s.members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            if name == field {
                return Ok(Some((
                    u64::from(m.bit_offset()),
                    self.btf.resolve_chained_type(m)?,
                )));
            }
            if name.is_empty() {
                let inner = self.strip(self.btf.resolve_chained_type(m)?)?;
                if let Some((bits, t)) = self.find_member(&inner, field)? {
                    return Ok(Some((u64::from(m.bit_offset()) + bits, t)));
                }
            }
        }
        Ok(None)
    }

    /// Looks through typedefs and qualifiers.
    fn strip(&self, mut ty: Type) -> Result<Type, BtfError> {
        for _ in 0..16 {
            ty = match &ty {
                Type::Typedef(t) => self.btf.resolve_chained_type(t)?,
                Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                    self.btf.resolve_chained_type(t)?
                }
                Type::TypeTag(t) => self.btf.resolve_chained_type(t)?,
                _ => return Ok(ty),
            };
        }
        Ok(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Option<KernelBtf> {
        match KernelBtf::from_sys() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("SKIPPED: no kernel BTF on this machine: {e}");
                None
            }
        }
    }

    #[test]
    fn resolves_every_field_on_the_running_kernel() {
        let Some(btf) = host() else { return };
        let r = btf
            .resolve()
            .expect("every field the programs need resolves");
        let o = r.offsets;
        // Fields of one struct are distinct and ordered as the kernel declares them.
        assert!(o.task_pid < o.task_tgid, "pid precedes tgid in task_struct");
        assert!(o.mm_arg_start < o.mm_arg_end);
        assert_ne!(o.path_mnt, o.path_dentry);
        assert!(o.fs_root != o.fs_pwd);
        // `dentry.d_name.name` is inside `d_name`, after its hash and length.
        assert!(o.dentry_name >= btf.offset_of("dentry.d_name").unwrap() + 8);
        assert!(o.mount_parent != o.mount_mountpoint);
        // Socket fields: the common part first, its ports side by side (skc_portpair).
        assert_ne!(o.present & HAS_SOCK, 0);
        assert_eq!(o.sock_num, o.sock_dport + 2);
        assert!(o.sock_family < o.sock_protocol);
        // A packet's header offsets sit side by side, transport then network.
        assert_eq!(
            o.skb_network_header,
            o.skb_transport_header + 2,
            "{} {} head {} len {}",
            o.skb_network_header,
            o.skb_transport_header,
            o.skb_head,
            o.skb_len
        );
        assert!(o.skb_len < o.skb_head);
        // x86-64's `pt_regs` is the ptrace ABI (`user_regs_struct`), so its offsets are
        // known: r15 first, 8 bytes a register.
        #[cfg(target_arch = "x86_64")]
        {
            assert_ne!(o.present & HAS_SYSCALL_REGS, 0);
            let regs = [
                o.regs_arg0,
                o.regs_arg1,
                o.regs_arg2,
                o.regs_arg3,
                o.regs_arg4,
                o.regs_arg5,
                o.regs_nr,
            ];
            assert_eq!(regs, [14 * 8, 13 * 8, 12 * 8, 7 * 8, 9 * 8, 8 * 8, 15 * 8]);
        }
    }

    #[test]
    fn offsets_lie_inside_their_structs() {
        let Some(btf) = host() else { return };
        for (path, strukt) in [
            ("task_struct.start_time", "task_struct"),
            ("mm_struct.arg_end", "mm_struct"),
            ("mount.mnt_mountpoint", "mount"),
        ] {
            let Type::Struct(s) = btf.find_struct(strukt).unwrap() else {
                panic!("{strukt} is a struct")
            };
            let off = btf.offset_of(path).unwrap();
            assert!((off as usize) < s.size(), "{path} at {off} inside {strukt}");
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let Some(btf) = host() else { return };
        let err = btf.offset_of("task_struct.no_such_field").unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel BTF: struct `task_struct` has no field `no_such_field` (resolving `task_struct.no_such_field`)"
        );
        assert!(matches!(
            btf.offset_of("no_such_struct.x"),
            Err(BtfError::NoStruct(_))
        ));
        assert!(matches!(
            btf.offset_of("task_struct.pid.x"),
            Err(BtfError::NotAStruct { .. })
        ));
    }

    #[test]
    fn tracepoint_prototypes() {
        let Some(btf) = host() else { return };
        assert_eq!(btf.tracepoint_arg_count("sched_process_exec").unwrap(), 3);
        assert_eq!(btf.tracepoint_arg_count("sched_process_fork").unwrap(), 2);
        let exit = btf.tracepoint_arg_count("sched_process_exit").unwrap();
        assert!(exit == 1 || exit == 2, "sched_process_exit has {exit} args");
    }
}
