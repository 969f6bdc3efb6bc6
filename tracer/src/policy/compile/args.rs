//! A hook's arguments, typed against the layout of the record it reads: which field,
//! how many bytes, integer or string (in user or kernel memory, in the record), the
//! struct a kprobe's argument points to, and how events write each.

use tracer_common::policy::{
    ARG_BYTES, ARG_CHAR_ARRAY, ARG_CURRENT_PID, ARG_DATA_LOC, ARG_INT, ARG_KERNEL_BYTES,
    ARG_KERNEL_STRING, ARG_SOCK, ARG_SYSCALL64, ARG_UINT, ARG_USER_BYTES, ARG_USER_IOVEC,
    ARG_USER_STRING, ArgConfig, CredValue, FIELD_BYTES, FIELD_DEREFS, FIELD_MAX, FIELD_NONE,
    FIELD_STR, FieldRead, HOOK_RET_FD_SOCK, HookConfig, KPROBE_ARG_BPRM, KPROBE_ARG_CRED,
    KPROBE_ARG_DENTRY, KPROBE_ARG_FIELDS, KPROBE_ARG_FILE, KPROBE_ARG_IOV_ITER, KPROBE_ARG_KIOCB,
    KPROBE_ARG_PATH, KPROBE_ARG_SKB, KPROBE_ARG_SOCK, KPROBE_ARG_SOCKADDR, KPROBE_ARG_SOCKET,
    KPROBE_IOV_LEN_AT, KPROBE_PATH_AT, KPROBE_PATH_LEN, KPROBE_STRUCT_HALF, KPROBE_STRUCT2_AT,
    MAX_FIELD_READS, MAX_HOOK_ARGS, RETURN_AT, SOCK_ARG_AT, SOCK_RETURN_AT,
};

use super::{
    HookError,
    structs::{StructError, StructType},
};
use crate::{
    kernel::tracefs::{self, FieldKind, Format},
    policy::{
        facts::Facts,
        place::{Half, KprobeSite, Unit},
        spec::{self, ArgType},
    },
};

/// Why a declared argument cannot be read (`args[i]`, see [`HookError::Arg`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("index {index} is past the {fields} fields of the tracepoint (see its format file)")]
    PastFields { index: u32, fields: usize },
    /// A socket function: its socket argument only.
    #[error("{call} takes its argument 0 as `type: {}`, and no other yet", .ty.name())]
    SocketOnly { call: String, ty: ArgType },
    #[error(
        "`{}` needs the `sock:inet_sock_set_state` tracepoint's layout, which this kernel lacks",
        .ty.name()
    )]
    NoSockLayout { ty: ArgType },
    #[error(
        "`socket` arguments are read for inet_dgram_connect, not yet for {call}; a `struct sock *` is `type: sock`"
    )]
    Socket { call: String },
    #[error("{call}'s argument {index} cannot be read as `{}`", .ty.name())]
    Register {
        call: String,
        index: u32,
        ty: ArgType,
    },
    #[error(
        "two struct arguments per kprobe are read, the second only when neither is a path (`file`, `path`, `linux_binprm`, `kiocb`, `dentry`; an `iov_iter` goes with any) and it is a `sock`, `socket`, `sockaddr`, `skb`, `cred` or `iov_iter`; this is one too many"
    )]
    SecondStruct,
    #[error(transparent)]
    Struct(Box<StructError>),
    #[error(
        "struct fields take at most {reads} reads and {bytes} bytes per kprobe (`resolve` arguments and the types read field by field share them), and this argument passes them"
    )]
    FieldsFull { reads: usize, bytes: u16 },
    #[error("{why}")]
    Resolve { why: String },
    #[error("`resolve: {path}` ends on {leaf}, which is not read as `{}`", .ty.name())]
    ResolveType {
        path: String,
        leaf: &'static str,
        ty: ArgType,
    },
    #[error(
        "`resolve` reads members of a kernel function's or LSM hook's arguments (from the kernel's BTF), not yet of {what}"
    )]
    ResolveWhere { what: &'static str },
    #[error(
        "`iov_iter` is read from `iter_type` and `ubuf` of the kernel's `struct iov_iter` (Linux 6.0 and later), and this kernel's BTF lacks them: {why}"
    )]
    IovIter { why: String },
    #[error(
        "`char_iovec` reads a `struct iovec *` in user memory: an argument of a syscall (`syscall: true`), such as sys_writev's 1"
    )]
    IovecNotSyscall,
    #[error(
        "`{field}` cannot be read: the kernel overwrites a record's common fields before a BPF program sees it (common_pid can be read; the process is in every event)"
    )]
    CommonField { field: String },
    #[error("field `{field}` ({c_type} {size}) cannot be read as `{}`", .ty.name())]
    Field {
        field: String,
        c_type: String,
        size: u16,
        ty: ArgType,
    },
    #[error(
        "a `char_iovec` needs `sizeArgIndex`, the argument that counts its entries (3 for sys_writev)"
    )]
    IovecSize,
    #[error(
        "sizeArgIndex and returnCopy read a buffer through a pointer: `type: char_buf` on a pointer argument"
    )]
    NotPointer,
    #[error(
        "returnCopy reads the buffer when the call returns, its size the return value: add `return: true` (and `returnArg`)"
    )]
    ReturnCopy,
    #[error(
        "sizeArgIndex {index} names no argument (it counts from 1: 3 is argument index 2; there are {fields})"
    )]
    SizeArgIndex { index: usize, fields: usize },
    #[error("the size is past the record's first 256 bytes")]
    SizePast,
}

/// How an argument is written in events (Tetragon's `args[]` oneof names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgOut {
    /// `int_arg`: signed 32-bit.
    Int,
    /// `uint_arg`: unsigned 32-bit.
    Uint,
    /// `long_arg`: signed 64-bit.
    Long,
    /// `size_arg`: unsigned 64-bit.
    Size,
    /// `string_arg`.
    String,
    /// `sock_arg`.
    Sock,
    /// `file_arg` with its `path`.
    File,
    /// `path_arg` with its `path`.
    Path,
    /// `linux_binprm_arg` with its `path`.
    LinuxBinprm,
    /// `cred_arg`: ids and capabilities.
    Cred,
    /// `bytes_arg`, or `truncated_bytes_arg` past `STRING_MAX - 1` bytes.
    Bytes,
    /// `skb_arg`: a packet's IP header, ports and length.
    Skb,
    /// `sockaddr_arg`: family, address and port.
    Sockaddr,
    /// `capability_arg`: the number and its name.
    Capability,
    /// `syscall_id`: a syscall's number and ABI.
    SyscallId,
    /// A struct read field by field, written as its type says.
    Struct(StructType),
}

impl ArgOut {
    /// Compared as a string by `matchArgs`.
    pub fn is_string(self) -> bool {
        matches!(
            self,
            ArgOut::String
                | ArgOut::File
                | ArgOut::Path
                | ArgOut::LinuxBinprm
                | ArgOut::Bytes
                | ArgOut::Struct(StructType::NetDevice)
        )
    }
}

/// One argument of a hook, for the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgMeta {
    pub out: ArgOut,
    pub label: Option<String>,
}

/// The declared arguments of `unit`'s hook, into `config.args`; what events write, and
/// the struct fields its hook point reads.
pub(super) fn declared(
    unit: &Unit<'_>,
    config: &mut HookConfig,
    facts: &Facts,
) -> Result<(Vec<ArgMeta>, [FieldRead; MAX_FIELD_READS]), HookError> {
    let syscall = unit.subsystem == "syscalls" || unit.subsystem == "raw_syscalls";
    let mut metas = Vec::new();
    let mut fields = [FieldRead::default(); MAX_FIELD_READS];
    for (i, a) in unit.hook.args.iter().take(MAX_HOOK_ARGS).enumerate() {
        let at = |source| HookError::Arg { arg: i, source };
        let field = unit.format.fields.get(a.index as usize).ok_or_else(|| {
            at(ArgError::PastFields {
                index: a.index,
                fields: unit.format.fields.len(),
            })
        })?;
        let (arg, out) = match unit.kprobe {
            Some(k) => kprobe_arg(&k, a, field, config, &mut fields, facts),
            None if a.resolve.is_some() => Err(ArgError::ResolveWhere {
                what: "a tracepoint's",
            }),
            None => field_of(a, field, syscall),
        }
        .map_err(at)?;
        let (arg, out) = buffer_arg(a, arg, out, &unit.format, unit).map_err(at)?;
        config.args[i] = arg;
        metas.push(ArgMeta {
            out,
            label: a.label.clone(),
        });
    }
    Ok((metas, fields))
}

/// An argument of a kprobe, read as its record (the kind of function) lays it out.
fn kprobe_arg(
    k: &KprobeSite<'_>,
    a: &spec::Arg,
    field: &tracefs::Field,
    config: &mut HookConfig,
    fields: &mut [FieldRead; MAX_FIELD_READS],
    facts: &Facts,
) -> Result<(ArgConfig, ArgOut), ArgError> {
    if let Some(path) = &a.resolve {
        if k.user {
            return Err(ArgError::ResolveWhere {
                what: "a binary's (uprobes, USDT)",
            });
        }
        if !k.generic || k.at_return.is_some() {
            return Err(ArgError::ResolveWhere {
                what: "a syscall's or a socket function's",
            });
        }
        return resolved_arg(k, a, path, config, fields, facts);
    }
    let socket_only = |ty| ArgError::SocketOnly {
        call: k.call.to_owned(),
        ty,
    };
    if let Some(r) = k.at_return {
        if a.ty != r.arg_type || a.index != 0 {
            return Err(socket_only(r.arg_type));
        }
        config.sock = r.layout;
        let sock = ArgConfig {
            kind: ARG_SOCK,
            offset: SOCK_ARG_AT,
            ..Default::default()
        };
        return Ok((sock, ArgOut::Sock));
    }
    if let Some(layout) = k.sock {
        if a.ty != ArgType::Sock || a.index != 0 {
            return Err(socket_only(ArgType::Sock));
        }
        config.sock = layout;
        if !k.on_kprobe {
            config.flags |= tracer_common::policy::HOOK_SOCK_TRIGGER;
        }
        let sock = ArgConfig {
            kind: ARG_SOCK,
            ..Default::default()
        };
        return Ok((sock, ArgOut::Sock));
    }
    if !k.generic {
        // A syscall: its arguments as its tracepoint's fields.
        return field_of(a, field, true);
    }
    struct_arg(k, a, field, config, fields, facts)
}

/// Where a struct argument's value goes in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// A path: the whole struct region.
    Path,
    /// At most half of it: either half.
    Half,
    /// Fields read by `tracer_read_field`: the first half only.
    Fields,
    /// Outside the region (an `iov_iter`'s buffer and size).
    Outside,
}

/// The room of struct kind `kind` (`KPROBE_ARG_*`).
fn room(kind: u16) -> Room {
    match kind {
        KPROBE_ARG_FILE | KPROBE_ARG_PATH | KPROBE_ARG_BPRM | KPROBE_ARG_KIOCB
        | KPROBE_ARG_DENTRY => Room::Path,
        KPROBE_ARG_FIELDS => Room::Fields,
        KPROBE_ARG_IOV_ITER => Room::Outside,
        _ => Room::Half,
    }
}

/// An argument of any other function: a register, or the struct it points to.
fn struct_arg(
    k: &KprobeSite<'_>,
    a: &spec::Arg,
    field: &tracefs::Field,
    config: &mut HookConfig,
    fields: &mut [FieldRead; MAX_FIELD_READS],
    facts: &Facts,
) -> Result<(ArgConfig, ArgOut), ArgError> {
    let call = k.call;
    // A path the kprobe's program resolved, a string at `KPROBE_PATH_AT`.
    let path_arg = ArgConfig {
        offset: KPROBE_PATH_AT,
        size: KPROBE_PATH_LEN as u8,
        kind: ARG_CHAR_ARRAY,
        ..Default::default()
    };
    let sock_arg = ArgConfig {
        kind: ARG_SOCK,
        offset: KPROBE_PATH_AT,
        ..Default::default()
    };
    let mut sock_layout = || -> Result<(), ArgError> {
        config.sock = k.generic_sock.ok_or(ArgError::NoSockLayout { ty: a.ty })?;
        Ok(())
    };
    let (struct_kind, out, arg) = match a.ty {
        ArgType::File => (KPROBE_ARG_FILE, ArgOut::File, path_arg),
        ArgType::Path => (KPROBE_ARG_PATH, ArgOut::Path, path_arg),
        ArgType::LinuxBinprm => (KPROBE_ARG_BPRM, ArgOut::LinuxBinprm, path_arg),
        ArgType::Kiocb => (KPROBE_ARG_KIOCB, ArgOut::File, path_arg),
        ArgType::Dentry => (KPROBE_ARG_DENTRY, ArgOut::Path, path_arg),
        ArgType::Sock => {
            sock_layout()?;
            (KPROBE_ARG_SOCK, ArgOut::Sock, sock_arg)
        }
        ArgType::Skb => {
            sock_layout()?;
            (KPROBE_ARG_SKB, ArgOut::Skb, sock_arg)
        }
        ArgType::Socket if !k.user => {
            sock_layout()?;
            (KPROBE_ARG_SOCKET, ArgOut::Sock, sock_arg)
        }
        ArgType::Sockaddr if !k.user => {
            sock_layout()?;
            (KPROBE_ARG_SOCKADDR, ArgOut::Sockaddr, sock_arg)
        }
        ArgType::Cred => {
            let cred = ArgConfig {
                kind: ARG_BYTES,
                offset: KPROBE_PATH_AT,
                size: std::mem::size_of::<CredValue>() as u8,
                ..Default::default()
            };
            (KPROBE_ARG_CRED, ArgOut::Cred, cred)
        }
        ArgType::IovIter if !k.user => {
            let enum_value = |v: &str| {
                facts
                    .enum_value("iter_type", v)
                    .and_then(|n| u8::try_from(n).map_err(|_| format!("{v} is {n}")))
                    .map_err(|why| ArgError::IovIter { why })
            };
            facts
                .field_offset("iov_iter.ubuf")
                .map_err(|why| ArgError::IovIter { why })?;
            config.kprobe.iter_ubuf = enum_value("ITER_UBUF")?;
            config.kprobe.iter_iovec = enum_value("ITER_IOVEC")?;
            let bytes = ArgConfig {
                offset: field.offset,
                size: 8,
                kind: ARG_USER_BYTES,
                len_at: KPROBE_IOV_LEN_AT as u8,
                ..Default::default()
            };
            (KPROBE_ARG_IOV_ITER, ArgOut::Bytes, bytes)
        }
        ArgType::Struct(t) if !k.user => {
            let (reads, len) = t
                .reads(a.index as u8, &|p| facts.field_offset(p))
                .map_err(|e| ArgError::Struct(Box::new(e)))?;
            let at = fields_arg(config, fields, &reads, len)?;
            let arg = if t == StructType::NetDevice {
                ArgConfig {
                    offset: at,
                    size: 16,
                    kind: ARG_CHAR_ARRAY,
                    ..Default::default()
                }
            } else {
                ArgConfig {
                    offset: at,
                    size: len as u8,
                    kind: ARG_BYTES,
                    ..Default::default()
                }
            };
            return Ok((arg, ArgOut::Struct(t)));
        }
        ArgType::Capability => {
            return Ok((field_arg(field, ARG_INT), ArgOut::Capability));
        }
        ArgType::Socket => {
            return Err(ArgError::Socket {
                call: call.to_owned(),
            });
        }
        ty @ (ArgType::Sockaddr | ArgType::IovIter | ArgType::Struct(_)) => {
            return Err(ArgError::Register {
                call: call.to_owned(),
                index: a.index,
                ty,
            });
        }
        ty => {
            let ty = if ty == ArgType::Auto {
                ArgType::Int {
                    signed: false,
                    wide: true,
                }
            } else {
                ty
            };
            // A uprobe's (or USDT's) pointers are the process's, as a syscall's are.
            let user = k.user;
            let (kind, out) = arg_kind(ty, field, user).ok_or_else(|| ArgError::Register {
                call: call.to_owned(),
                index: a.index,
                ty,
            })?;
            return Ok((field_arg(field, kind), out));
        }
    };
    let k1 = &mut config.kprobe;
    if k1.struct_kind == 0 {
        k1.struct_arg = a.index as u16;
        k1.struct_kind = struct_kind;
        return Ok((arg, out));
    }
    // A second struct argument.
    let (first, second) = (room(k1.struct_kind), room(struct_kind));
    let fits = k1.struct2_kind == 0
        && match second {
            Room::Outside => true,
            Room::Half => first != Room::Path,
            Room::Path | Room::Fields => false,
        };
    if !fits {
        return Err(ArgError::SecondStruct);
    }
    if first == Room::Outside && second != Room::Outside {
        // The first takes no room: the second goes first.
        move_to_second(config)?;
        config.kprobe.struct_kind = struct_kind;
        config.kprobe.struct_arg = a.index as u16;
        return Ok((arg, out));
    }
    let k1 = &mut config.kprobe;
    k1.struct2_kind = struct_kind as u8;
    k1.struct2_arg = a.index as u8;
    let arg = if second == Room::Half {
        ArgConfig {
            offset: KPROBE_STRUCT2_AT,
            ..arg
        }
    } else {
        arg
    };
    Ok((arg, out))
}

/// Moves the first struct argument to the second place (a half-region value to
/// `KPROBE_STRUCT2_AT`, the arguments read there with it), for one that needs the first.
fn move_to_second(config: &mut HookConfig) -> Result<(), ArgError> {
    let k = &mut config.kprobe;
    let moved = k.struct_kind;
    if k.struct2_kind != 0 || !matches!(room(moved), Room::Half | Room::Outside) {
        return Err(ArgError::SecondStruct);
    }
    k.struct2_kind = moved as u8;
    k.struct2_arg = k.struct_arg as u8;
    if room(moved) == Room::Half {
        for c in config.args.iter_mut() {
            if c.offset == KPROBE_PATH_AT {
                c.offset = KPROBE_STRUCT2_AT;
            }
        }
    }
    Ok(())
}

/// Adds `reads` (laid out from 0, `len` bytes) to the hook point's field reads, after
/// those already there, in the first half of the struct region (a struct argument of
/// another kind there moves to the second half); where they start in the record.
fn fields_arg(
    config: &mut HookConfig,
    fields: &mut [FieldRead; MAX_FIELD_READS],
    reads: &[FieldRead],
    len: u16,
) -> Result<u16, ArgError> {
    if config.kprobe.struct_kind != 0 && config.kprobe.struct_kind != KPROBE_ARG_FIELDS {
        move_to_second(config)?;
    }
    let k = &mut config.kprobe;
    k.struct_kind = KPROBE_ARG_FIELDS;
    let used = fields
        .iter()
        .filter(|f| f.kind != FIELD_NONE)
        .map(|f| f.dst + u16::from(f.size))
        .max()
        .unwrap_or(0);
    let shift = used.div_ceil(8) * 8;
    let free = fields
        .iter()
        .position(|f| f.kind == FIELD_NONE)
        .unwrap_or(MAX_FIELD_READS);
    if free + reads.len() > MAX_FIELD_READS || shift + len > KPROBE_STRUCT_HALF {
        return Err(ArgError::FieldsFull {
            reads: MAX_FIELD_READS,
            bytes: KPROBE_STRUCT_HALF,
        });
    }
    for (slot, r) in fields[free..].iter_mut().zip(reads) {
        *slot = FieldRead {
            dst: r.dst + shift,
            ..*r
        };
    }
    Ok(KPROBE_PATH_AT + shift)
}

/// An argument read through `resolve`: the member its path ends on, an integer or a
/// string, read by the field reader.
fn resolved_arg(
    k: &KprobeSite<'_>,
    a: &spec::Arg,
    path: &str,
    config: &mut HookConfig,
    fields: &mut [FieldRead; MAX_FIELD_READS],
    facts: &Facts,
) -> Result<(ArgConfig, ArgOut), ArgError> {
    use crate::kernel::btf::Leaf;
    let func = if k.lsm {
        format!("bpf_lsm_{}", k.call)
    } else {
        k.call.to_owned()
    };
    let fp = facts
        .resolve_field(&func, a.index as usize, a.btf_type.as_deref(), path)
        .map_err(|why| ArgError::Resolve { why })?;
    let mut derefs = fp.derefs.clone();
    let mut at = fp.at;
    let (kind, size) = match (fp.leaf, a.ty) {
        (Leaf::Int { size, .. }, ArgType::Int { .. } | ArgType::Syscall64 | ArgType::Auto) => {
            (FIELD_BYTES, size.min(8))
        }
        (Leaf::Ptr, ArgType::Int { .. } | ArgType::Syscall64 | ArgType::Auto) => (FIELD_BYTES, 8),
        (Leaf::Chars { len }, ArgType::String { .. }) => (FIELD_STR, len.min(u32::from(FIELD_MAX))),
        (Leaf::CharPtr, ArgType::String { .. }) => {
            derefs.push(at);
            at = 0;
            (FIELD_STR, u32::from(FIELD_MAX))
        }
        (leaf, ty) => {
            return Err(ArgError::ResolveType {
                path: path.to_owned(),
                leaf: match leaf {
                    Leaf::Int { .. } => "an integer",
                    Leaf::Ptr => "a pointer",
                    Leaf::Chars { .. } | Leaf::CharPtr => "a string",
                },
                ty,
            });
        }
    };
    if derefs.len() > FIELD_DEREFS {
        return Err(ArgError::Resolve {
            why: format!(
                "`{path}` follows {} pointers, and at most {FIELD_DEREFS} are followed",
                derefs.len()
            ),
        });
    }
    let offset16 = |v: u32| {
        u16::try_from(v).map_err(|_| ArgError::Resolve {
            why: format!("`{path}`: an offset past 65535 ({v})"),
        })
    };
    let mut chain = [0u16; FIELD_DEREFS];
    for (c, d) in chain.iter_mut().zip(&derefs) {
        *c = offset16(*d)?;
    }
    let read = FieldRead {
        arg: a.index as u8,
        kind,
        derefs: derefs.len() as u8,
        size: size as u8,
        dst: 0,
        at: offset16(at)?,
        chain,
    };
    let offset = fields_arg(config, fields, &[read], size as u16)?;
    Ok(match a.ty {
        ArgType::String { .. } => (
            ArgConfig {
                offset,
                size: size as u8,
                kind: ARG_CHAR_ARRAY,
                ..Default::default()
            },
            ArgOut::String,
        ),
        ArgType::Int { signed, wide } => {
            let out = match (signed, wide || size == 8) {
                (true, true) => ArgOut::Long,
                (false, true) => ArgOut::Size,
                (true, false) => ArgOut::Int,
                (false, false) => ArgOut::Uint,
            };
            (
                ArgConfig {
                    offset,
                    size: size as u8,
                    kind: if signed { ARG_INT } else { ARG_UINT },
                    ..Default::default()
                },
                out,
            )
        }
        ty => {
            let (kind, out) = if ty == ArgType::Syscall64 {
                (ARG_SYSCALL64, ArgOut::SyscallId)
            } else {
                (ARG_UINT, ArgOut::Size)
            };
            (
                ArgConfig {
                    offset,
                    size: size as u8,
                    kind,
                    ..Default::default()
                },
                out,
            )
        }
    })
}

/// A field of a tracepoint's record (or a syscall's, for a kprobe on it).
fn field_of(
    a: &spec::Arg,
    field: &tracefs::Field,
    syscall: bool,
) -> Result<(ArgConfig, ArgOut), ArgError> {
    if a.ty == ArgType::CharIovec {
        if !syscall {
            return Err(ArgError::IovecNotSyscall);
        }
        let iovec = ArgConfig {
            offset: field.offset,
            size: 8,
            kind: ARG_USER_IOVEC,
            ..Default::default()
        };
        return Ok((iovec, ArgOut::Bytes));
    }
    let (kind, out) = if field.name == "common_pid" {
        (ARG_CURRENT_PID, ArgOut::Int)
    } else if field.offset < 8 {
        return Err(ArgError::CommonField {
            field: field.name.clone(),
        });
    } else {
        arg_kind(a.ty, field, syscall).ok_or_else(|| ArgError::Field {
            field: field.name.clone(),
            c_type: field.c_type.clone(),
            size: field.size,
            ty: a.ty,
        })?
    };
    Ok((field_arg(field, kind), out))
}

/// How a return half reads the return value.
pub(super) struct Ret {
    /// Its index among the hook's arguments, where the return value is reported.
    pub index: Option<usize>,
    /// It is a `struct sock *` whose fields the kretprobe program writes.
    pub sock_return: bool,
}

/// A return half reads the return value as one more argument, at `RETURN_AT` of the
/// entry's record.
pub(super) fn return_value(
    unit: &Unit<'_>,
    config: &mut HookConfig,
    metas: &mut Vec<ArgMeta>,
) -> Result<Ret, HookError> {
    let none = Ret {
        index: None,
        sock_return: false,
    };
    let Some(k) = unit.kprobe else {
        return Ok(none);
    };
    if unit.half != Half::Return || k.at_return.is_some_and(|r| !r.value) {
        return Ok(none);
    }
    let return_arg = match &unit.hook.target {
        spec::Target::Kprobe(k) => k.return_arg.as_ref(),
        spec::Target::Tracepoint { .. }
        | spec::Target::RawTracepoint { .. }
        | spec::Target::Uprobe(_)
        | spec::Target::Usdt(_)
        | spec::Target::Lsm { .. } => None,
    };
    let i = config.nargs as usize;
    if i >= MAX_HOOK_ARGS {
        return Err(HookError::ReturnArgs {
            max: MAX_HOOK_ARGS - 1,
        });
    }
    let ty = return_arg.map_or(
        ArgType::Int {
            signed: true,
            wide: false,
        },
        |a| a.ty,
    );
    let mut sock_return = false;
    let (arg, out) = if ty == ArgType::Sock {
        // A returned socket (`inet_csk_accept`, `sk_alloc`): the kretprobe program
        // writes its fields at `SOCK_RETURN_AT` plus the hook's layout.
        match (k.sock, k.at_return) {
            // The socket of the descriptor returned (`HOOK_RET_FD_SOCK`).
            (_, Some(r)) if r.flags & HOOK_RET_FD_SOCK != 0 => {}
            (Some(_), None) => sock_return = true,
            (None, None) if k.generic && k.on_kprobe => {
                config.sock = k.generic_sock.ok_or(HookError::ReturnSock)?;
                sock_return = true;
            }
            _ => return Err(HookError::ReturnSock),
        }
        let sock = ArgConfig {
            kind: ARG_SOCK,
            offset: SOCK_RETURN_AT,
            ..Default::default()
        };
        (sock, ArgOut::Sock)
    } else {
        let field = tracefs::Field {
            name: "return".into(),
            c_type: "long".into(),
            offset: RETURN_AT,
            size: 8,
            signed: true,
            kind: FieldKind::Int,
        };
        let (kind, out) = arg_kind(ty, &field, false).ok_or(HookError::ReturnType { ty })?;
        let size = if matches!(out, ArgOut::Int | ArgOut::Uint) {
            4
        } else {
            8
        };
        let value = ArgConfig {
            offset: field.offset,
            size,
            kind,
            ..Default::default()
        };
        (value, out)
    };
    config.args[i] = arg;
    config.nargs += 1;
    metas.push(ArgMeta {
        out,
        label: return_arg.and_then(|a| a.label.clone()),
    });
    Ok(Ret {
        index: Some(i),
        sock_return,
    })
}

/// A `char_buf` argument with `sizeArgIndex` or `returnCopy`: the buffer's bytes, as many
/// as the size argument (or, read at the return, the return value) says, rather than a
/// string up to its NUL.
fn buffer_arg(
    a: &spec::Arg,
    arg: ArgConfig,
    out: ArgOut,
    format: &Format,
    unit: &Unit<'_>,
) -> Result<(ArgConfig, ArgOut), ArgError> {
    let iovec = arg.kind == ARG_USER_IOVEC;
    if a.size_arg_index.is_none() && !a.return_copy && !iovec {
        return Ok((arg, out));
    }
    if iovec && a.size_arg_index.is_none() {
        return Err(ArgError::IovecSize);
    }
    let kind = match arg.kind {
        ARG_USER_STRING => ARG_USER_BYTES,
        ARG_KERNEL_STRING => ARG_KERNEL_BYTES,
        ARG_USER_IOVEC => ARG_USER_IOVEC,
        _ => return Err(ArgError::NotPointer),
    };
    let halves = unit.kprobe.is_some() && unit.half != Half::Whole;
    if a.return_copy && !halves {
        return Err(ArgError::ReturnCopy);
    }
    let len_at = if a.return_copy && !iovec {
        RETURN_AT
    } else {
        let n = a.size_arg_index.unwrap_or(0) as usize;
        let field = n.checked_sub(1).and_then(|k| format.fields.get(k));
        let field = field.ok_or(ArgError::SizeArgIndex {
            index: n,
            fields: format.fields.len(),
        })?;
        field.offset
    };
    let len_at = u8::try_from(len_at).map_err(|_| ArgError::SizePast)?;
    Ok((
        ArgConfig {
            kind,
            len_at,
            ..arg
        },
        ArgOut::Bytes,
    ))
}

/// The argument read from `field` of the record as `kind`.
fn field_arg(field: &tracefs::Field, kind: u8) -> ArgConfig {
    ArgConfig {
        offset: field.offset,
        size: field.size.min(8) as u8,
        kind,
        ..Default::default()
    }
}

/// The kernel kind and event type of a field read as `ty`.
fn arg_kind(ty: ArgType, field: &tracefs::Field, syscall: bool) -> Option<(u8, ArgOut)> {
    let int_out = |signed: bool, size: u16| match (signed, size) {
        (true, 8) => ArgOut::Long,
        (false, 8) => ArgOut::Size,
        (true, _) => ArgOut::Int,
        (false, _) => ArgOut::Uint,
    };
    let string_kind = match field.kind {
        FieldKind::StringPointer | FieldKind::Pointer if syscall => Some(ARG_USER_STRING),
        FieldKind::StringPointer => Some(ARG_KERNEL_STRING),
        FieldKind::CharArray => Some(ARG_CHAR_ARRAY),
        FieldKind::DataLoc => Some(ARG_DATA_LOC),
        _ => None,
    };
    let is_int = matches!(
        field.kind,
        FieldKind::Int | FieldKind::Pointer | FieldKind::StringPointer
    );
    let int = |signed: bool, size: u16| {
        is_int.then_some((
            if signed { ARG_INT } else { ARG_UINT },
            int_out(signed, size),
        ))
    };
    match ty {
        ArgType::Auto => match field.kind {
            FieldKind::Int => int(field.signed, field.size),
            FieldKind::Pointer => int(false, 8),
            _ => string_kind.map(|k| (k, ArgOut::String)),
        },
        ArgType::String { .. } => string_kind.map(|k| (k, ArgOut::String)),
        ArgType::Int {
            signed,
            wide: false,
        } => int(signed, field.size.min(4)),
        ArgType::Int { signed, wide: true } => int(signed, 8),
        ArgType::Syscall64 => is_int.then_some((ARG_SYSCALL64, ArgOut::SyscallId)),
        _ => None,
    }
}
