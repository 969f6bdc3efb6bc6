//! Offsets of kernel struct fields, resolved from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`) at start-up and handed to the programs as `OFFSETS`.
//!
//! A path such as `dentry.d_name.name` is walked member by member; anonymous structs and
//! unions (`mm_struct` keeps its fields in one) are searched through, typedefs and
//! qualifiers are looked through. A missing field is an error that names it, except the
//! optional ones, which clear their `present` bit instead.

use std::path::{Path, PathBuf};

use btf_rs::{Btf, Type};
use tracer_common::offsets::{FIELDS, FieldSpec, Group, KernelOffsets, Source};

/// The `struct pt_regs` fields that hold a syscall's arguments 0 to 5 and its number, in
/// the syscall ABI of the architecture the agent is built for. Elsewhere syscall hooks
/// keep to their own tracepoints.
#[cfg(target_arch = "x86_64")]
const SYSCALL_REGS: Option<[&str; 7]> = Some(["di", "si", "dx", "r10", "r8", "r9", "orig_ax"]);
#[cfg(not(target_arch = "x86_64"))]
const SYSCALL_REGS: Option<[&str; 7]> = None;

/// How a field is found, for messages: its path, `sizeof(struct upid)`, `pt_regs.di`.
fn describe(source: Source) -> String {
    match source {
        Source::Path(path) => path.to_owned(),
        Source::SizeOf(strukt) => format!("sizeof(struct {strukt})"),
        Source::SyscallReg(n) => match SYSCALL_REGS.and_then(|regs| regs.get(n).copied()) {
            Some(reg) => format!("pt_regs.{reg}"),
            None => format!("syscall register {n} of pt_regs"),
        },
    }
}

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
    #[error(
        "kernel BTF: no `pt_regs` register is known for syscall register {0} on {arch}",
        arch = std::env::consts::ARCH
    )]
    NoSyscallReg(usize),
    #[error("kernel BTF has no function `{0}` (the hook's argument types come from it)")]
    NoFunc(String),
    #[error(
        "kernel BTF: function `{func}` has {params} parameters, and argument {index} is past them"
    )]
    NoParam {
        func: String,
        index: usize,
        params: usize,
    },
    #[error("resolve `{path}`: {why}")]
    Resolve { path: String, why: String },
    /// A required field of `KernelOffsets` that did not resolve.
    #[error("{cause}; needed for offset `{field}` (`{path}`)")]
    Field {
        field: &'static str,
        path: String,
        cause: Box<BtfError>,
    },
}

/// What a `resolve` path reaches from a hook's argument: the pointers followed (each the
/// offset, in the struct reached so far, of the pointer to the next), and the last
/// member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    pub derefs: Vec<u32>,
    /// The last member's offset in the struct the last pointer reaches.
    pub at: u32,
    pub leaf: Leaf,
}

/// The type of the member a `resolve` path ends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// An integer (or enum, or bool) of `size` bytes.
    Int { size: u32, signed: bool },
    /// A `char` array, in place.
    Chars { len: u32 },
    /// A `char *`.
    CharPtr,
    /// Any other pointer (its value).
    Ptr,
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

impl std::fmt::Debug for KernelBtf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KernelBtf")
    }
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

    /// Resolves every field the programs read ([`FIELDS`]).
    pub fn resolve(&self) -> Result<Resolved, BtfError> {
        let offsets = self.resolve_fields(FIELDS)?;
        let exit_has_group_dead = self.tracepoint_arg_count("sched_process_exit")? >= 2;
        Ok(Resolved {
            offsets,
            exit_has_group_dead,
        })
    }

    /// Walks `fields`: a required field that is not found is an error that names it; an
    /// optional group is set whole, with its `present` bit, only when each of its fields
    /// is found, and otherwise left at 0.
    fn resolve_fields(&self, fields: &[FieldSpec]) -> Result<KernelOffsets, BtfError> {
        let mut offsets = KernelOffsets::ZERO;
        let mut found = 0;
        let mut missing = 0;
        for spec in fields {
            let value = match (self.find(spec.source), spec.group) {
                (Ok(value), Group::Optional(bit)) => {
                    found |= bit;
                    value
                }
                (Ok(value), Group::Required) => value,
                (Err(_), Group::Optional(bit)) => {
                    missing |= bit;
                    continue;
                }
                (Err(cause), Group::Required) => {
                    return Err(BtfError::Field {
                        field: spec.name,
                        path: describe(spec.source),
                        cause: Box::new(cause),
                    });
                }
            };
            // `FIELDS`' indices are checked when tracer-common builds.
            if let Some(slot) = offsets.field_mut(spec.index) {
                *slot = value;
            }
        }
        // A group with a field missing is not set at all.
        for spec in fields {
            if let Group::Optional(bit) = spec.group
                && missing & bit != 0
                && let Some(slot) = offsets.field_mut(spec.index)
            {
                *slot = 0;
            }
        }
        offsets.present = found & !missing;
        Ok(offsets)
    }

    /// The value of one field, found as `source` says.
    fn find(&self, source: Source) -> Result<u32, BtfError> {
        match source {
            Source::Path(path) => self.offset_of(path),
            Source::SizeOf(strukt) => self.size_of(strukt),
            Source::SyscallReg(n) => match SYSCALL_REGS.and_then(|regs| regs.get(n).copied()) {
                Some(reg) => self.offset_of(&format!("pt_regs.{reg}")),
                None => Err(BtfError::NoSyscallReg(n)),
            },
        }
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

    /// The value of `variant` of enum `name` (`iter_type`, `ITER_UBUF`).
    pub fn enum_value(&self, name: &str, variant: &str) -> Result<u64, BtfError> {
        for t in self.btf.resolve_types_by_name(name)? {
            if let Type::Enum(e) = t {
                for m in &e.members {
                    if self.btf.resolve_name(m).unwrap_or_default() == variant {
                        return Ok(u64::from(m.val()));
                    }
                }
            }
        }
        Err(BtfError::NoStruct(format!("enum {name} {variant}")))
    }

    /// The type of parameter `index` of function `func`.
    fn func_param(&self, func: &str, index: usize) -> Result<Type, BtfError> {
        let mut function = None;
        for t in self.btf.resolve_types_by_name(func).unwrap_or_default() {
            if let Type::Func(f) = t
                && let Type::FuncProto(proto) = self.btf.resolve_chained_type(&f)?
            {
                function = Some(proto);
                break;
            }
        }
        // Else a raw tracepoint: its `btf_trace_NAME` prototype, whose first parameter
        // is the probe's data.
        let (proto, skip) = match function {
            Some(proto) => (proto, 0),
            None => (
                self.tracepoint_proto(func)?
                    .ok_or_else(|| BtfError::NoFunc(func.to_owned()))?,
                1,
            ),
        };
        let param = proto
            .parameters
            .get(index + skip)
            .ok_or_else(|| BtfError::NoParam {
                func: func.to_owned(),
                index,
                params: proto.parameters.len().saturating_sub(skip),
            })?;
        Ok(self.btf.resolve_chained_type(param)?)
    }

    /// The struct (or other type) pointer `p` points to, through further pointers
    /// (`struct cred **`), each a read at offset 0 pushed onto `derefs`.
    fn pointee(&self, p: &btf_rs::Ptr, derefs: &mut Vec<u32>) -> Result<Type, BtfError> {
        let mut ty = self.strip(self.btf.resolve_chained_type(p)?)?;
        while let Type::Ptr(p) = &ty {
            derefs.push(0);
            ty = self.strip(self.btf.resolve_chained_type(p)?)?;
        }
        Ok(ty)
    }

    /// Walks `path` (`mm.owner.real_parent.comm`) from argument `index` of `func`, or,
    /// with `cast`, from the argument taken as a pointer to struct `cast` (Tetragon's
    /// `btfType`): the pointers to follow and the member it ends on.
    pub fn resolve_field(
        &self,
        func: &str,
        index: usize,
        cast: Option<&str>,
        path: &str,
    ) -> Result<FieldPath, BtfError> {
        let err = |why: String| BtfError::Resolve {
            path: path.to_owned(),
            why,
        };
        let mut derefs = Vec::new();
        // The register holds a pointer: to the struct it names, or through more
        // pointers (`struct cred **`), each followed.
        let mut ty = match cast {
            Some(name) => self.find_struct(name)?,
            None => {
                let param = self.strip(self.func_param(func, index)?)?;
                let Type::Ptr(p) = param else {
                    return Err(err(format!(
                        "argument {index} of {func} is not a pointer to a struct"
                    )));
                };
                self.pointee(&p, &mut derefs)?
            }
        };
        let parts: Vec<&str> = path.split('.').collect();
        let mut bits: u64 = 0;
        let mut name = cast.unwrap_or("the argument").to_owned();
        for (i, part) in parts.iter().enumerate() {
            if part.contains('[') {
                return Err(err(
                    "array indexes (`field[N]`) are not supported yet".to_owned()
                ));
            }
            let (member_bits, member_ty) = self
                .find_member(&ty, part)?
                .ok_or_else(|| err(format!("{name} has no member `{part}`")))?;
            bits += member_bits;
            if !bits.is_multiple_of(8) {
                return Err(err(format!("`{part}` is a bit field")));
            }
            let member = self.strip(member_ty)?;
            if i + 1 == parts.len() {
                let at = u32::try_from(bits / 8).map_err(|_| err("too far".into()))?;
                let leaf = self.leaf(&member).ok_or_else(|| {
                    err(format!(
                        "`{part}` is a struct, union or array of another kind: name one of its members"
                    ))
                })?;
                return Ok(FieldPath { derefs, at, leaf });
            }
            match member {
                Type::Ptr(p) => {
                    derefs.push(u32::try_from(bits / 8).map_err(|_| err("too far".into()))?);
                    bits = 0;
                    ty = self.pointee(&p, &mut derefs)?;
                }
                Type::Struct(_) | Type::Union(_) => ty = member,
                _ => {
                    return Err(err(format!(
                        "`{part}` is not a struct, a union or a pointer to one"
                    )));
                }
            }
            name = (*part).to_owned();
        }
        Err(err("the path is empty".into()))
    }

    /// What a member of type `ty` is read as, if it can be.
    fn leaf(&self, ty: &Type) -> Option<Leaf> {
        let is_char = |t: &Type| matches!(self.strip(t.clone()), Ok(Type::Int(i)) if i.size() == 1);
        match ty {
            Type::Int(i) => Some(Leaf::Int {
                size: i.size() as u32,
                signed: i.is_signed(),
            }),
            Type::Enum(e) => Some(Leaf::Int {
                size: e.size() as u32,
                signed: e.is_signed(),
            }),
            Type::Array(a) => {
                let elem = self.btf.resolve_chained_type(a).ok()?;
                is_char(&elem).then(|| Leaf::Chars {
                    len: a.len() as u32,
                })
            }
            Type::Ptr(p) => Some(match self.btf.resolve_chained_type(p) {
                Ok(t) if is_char(&t) => Leaf::CharPtr,
                _ => Leaf::Ptr,
            }),
            _ => None,
        }
    }

    /// Number of arguments of a tracepoint's `TP_PROTO`, from its `btf_trace_<name>`
    /// typedef (a pointer to a function whose first parameter is the probe's data).
    pub fn tracepoint_arg_count(&self, name: &str) -> Result<usize, BtfError> {
        let proto = self
            .tracepoint_proto(name)?
            .ok_or_else(|| BtfError::NoStruct(format!("btf_trace_{name}")))?;
        Ok(proto.parameters.len().saturating_sub(1))
    }

    /// The prototype of raw tracepoint `name` (`btf_trace_<name>`, a pointer to a
    /// function whose first parameter is the probe's data), if the kernel has it.
    fn tracepoint_proto(&self, name: &str) -> Result<Option<btf_rs::FuncProto>, BtfError> {
        for t in self
            .btf
            .resolve_types_by_name(&format!("btf_trace_{name}"))
            .unwrap_or_default()
        {
            if let Type::Typedef(td) = t
                && let Type::Ptr(p) = self.btf.resolve_chained_type(&td)?
                && let Type::FuncProto(proto) = self.btf.resolve_chained_type(&p)?
            {
                return Ok(Some(proto));
            }
        }
        Ok(None)
    }

    fn find_struct(&self, name: &str) -> Result<Type, BtfError> {
        self.btf
            .resolve_types_by_name(name)
            .ok()
            .and_then(|types| {
                types.into_iter().find(
                    |t| matches!(t, Type::Struct(s) | Type::Union(s) if !s.members.is_empty()),
                )
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
    use tracer_common::offsets::{
        HAS_LOGINUID, HAS_SOCK, HAS_SYSCALL_REGS, HAS_THREAD_STATUS, HAS_TIME_NS,
    };

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

    /// The entry of `FIELDS` for `name`, with another source.
    fn spec(name: &str, source: Source) -> FieldSpec {
        let spec = FIELDS.iter().find(|f| f.name == name).unwrap();
        FieldSpec { source, ..*spec }
    }

    #[test]
    fn optional_groups_are_set_whole_or_not_at_all() {
        let Some(btf) = host() else { return };
        let o = btf.resolve().unwrap().offsets;
        for bit in [
            HAS_LOGINUID,
            HAS_TIME_NS,
            HAS_SOCK,
            HAS_SYSCALL_REGS,
            HAS_THREAD_STATUS,
        ] {
            if o.present & bit == 0 {
                for f in FIELDS.iter().filter(|f| f.group == Group::Optional(bit)) {
                    assert_eq!(o.get(f.index), Some(0), "{} without its bit", f.name);
                }
            }
        }
        // Both of a group found: set, with the bit.
        let time = spec("nsproxy_time", Source::Path("nsproxy.time_ns"));
        let inum = spec("time_inum", Source::Path("time_namespace.ns.inum"));
        let tgid = spec("task_tgid", Source::Path("task_struct.tgid"));
        let o = btf.resolve_fields(&[time, inum, tgid]).unwrap();
        assert_eq!(o.present, HAS_TIME_NS);
        assert_eq!(o.nsproxy_time, btf.offset_of("nsproxy.time_ns").unwrap());
        assert_eq!(
            o.time_inum,
            btf.offset_of("time_namespace.ns.inum").unwrap()
        );
        // One of them missing, before or after the other: neither is set, nor the bit; the
        // rest is.
        let gone = spec("time_inum", Source::Path("time_namespace.no_such_field"));
        for table in [[time, gone, tgid], [gone, time, tgid]] {
            let o = btf.resolve_fields(&table).unwrap();
            assert_eq!(o.present, 0);
            assert_eq!((o.nsproxy_time, o.time_inum), (0, 0));
            assert_eq!(o.task_tgid, btf.offset_of("task_struct.tgid").unwrap());
        }
    }

    #[test]
    fn missing_required_fields_are_named() {
        let Some(btf) = host() else { return };
        let table = [spec("task_tgid", Source::Path("task_struct.no_such_field"))];
        assert_eq!(
            btf.resolve_fields(&table).unwrap_err().to_string(),
            "kernel BTF: struct `task_struct` has no field `no_such_field` (resolving \
             `task_struct.no_such_field`); needed for offset `task_tgid` \
             (`task_struct.no_such_field`)"
        );
        let table = [spec("upid_size", Source::SizeOf("no_such_struct"))];
        assert_eq!(
            btf.resolve_fields(&table).unwrap_err().to_string(),
            "kernel BTF has no struct `no_such_struct`; needed for offset `upid_size` \
             (`sizeof(struct no_such_struct)`)"
        );
        // The first required field that is missing is the one named.
        let table = [
            spec("task_loginuid", Source::Path("task_struct.no_such_field")),
            spec("task_pid", Source::Path("task_struct.pid")),
            spec("task_tgid", Source::Path("no_such_struct.tgid")),
            spec("task_mm", Source::Path("task_struct.no_such_mm")),
        ];
        assert!(matches!(
            btf.resolve_fields(&table),
            Err(BtfError::Field {
                field: "task_tgid",
                ..
            })
        ));
    }

    #[test]
    fn the_table_resolves_as_its_sources_say() {
        let Some(btf) = host() else { return };
        let o = btf.resolve().unwrap().offsets;
        for f in FIELDS {
            let bit = match f.group {
                Group::Required => 0,
                Group::Optional(bit) => bit,
            };
            if o.present & bit == bit {
                assert_eq!(o.get(f.index), btf.find(f.source).ok(), "{}", f.name);
            }
        }
        assert_eq!(o.upid_size, btf.size_of("upid").unwrap());
        assert_eq!(o.dentry_name, btf.offset_of("dentry.d_name.name").unwrap());
    }
}
