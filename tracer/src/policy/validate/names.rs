//! The names a policy may use, and the small parsers of its values: one place for each,
//! which validation reads into the typed spec.

pub const API_VERSION: &str = "cilium.io/v1alpha1";
/// The tracer's own group (`policy::crd`), which its custom resources are served under.
pub const TRACER_API_VERSION: &str = "tracer.dev/v1alpha1";
pub const MATCH_ARGS_OPERATORS: &[&str] = &[
    "Equal",
    "NotEqual",
    "Prefix",
    "NotPrefix",
    "Postfix",
    "NotPostfix",
    "GT",
    "GreaterThan",
    "LT",
    "LessThan",
    "Mask",
    "InMap",
    "NotInMap",
];
/// Tetragon's `matchArgs` operators the tracer does not support yet.
pub(super) const MATCH_ARGS_UNSUPPORTED: &[&str] = &[
    "InRange",
    "NotInRange",
    "SubString",
    "SubStringIgnCase",
    "FileType",
    "NotFileType",
    "CelExpr",
    "CapabilitiesGained",
];
pub const MATCH_BINARIES_OPERATORS: &[&str] = &[
    "In",
    "NotIn",
    "Prefix",
    "NotPrefix",
    "Postfix",
    "NotPostfix",
];
pub const IN_NOT_IN: &[&str] = &["In", "NotIn"];
pub const ACTIONS: &[&str] = &[
    "Post",
    "NoPost",
    "Sigkill",
    "Signal",
    "Override",
    "GetUrl",
    "DnsLookup",
    "TrackSock",
    "UntrackSock",
    "Set",
    "NotifyEnforcer",
];
pub(super) const ACTIONS_UNSUPPORTED: &[&str] = &[
    "CleanupEnforcerNotification",
    "FollowFD",
    "UnfollowFD",
    "CopyFD",
];
pub const NAMESPACES: &[&str] = &[
    "Uts",
    "Ipc",
    "Mnt",
    "Pid",
    "PidForChildren",
    "Net",
    "Time",
    "TimeForChildren",
    "Cgroup",
    "User",
];
pub const CAPABILITY_TYPES: &[&str] = &["Effective", "Inheritable", "Permitted"];
pub const RATE_LIMIT_SCOPES: &[&str] = &["thread", "process", "global"];
/// Argument types of tracepoint arguments (`type:`); without one, the type comes from the
/// tracepoint's format file.
pub const ARG_TYPES: &[&str] = &[
    "auto",
    "int",
    "uint32",
    "int32",
    "sint32",
    "uint64",
    "int64",
    "sint64",
    "uint16",
    "int16",
    "sint16",
    "uint8",
    "int8",
    "sint8",
    "size_t",
    "long",
    "ulong",
    "string",
    "char_buf",
    "syscall64",
    "fd",
];
/// Argument types of uprobe arguments: integers and strings in the process's memory,
/// from the function's argument registers.
pub(super) const UPROBE_ARG_TYPES: &[&str] = &[
    "nop", "int", "sint32", "int32", "uint32", "uint16", "int16", "sint16", "uint8", "int8",
    "sint8", "size_t", "long", "ulong", "int64", "sint64", "uint64", "string", "char_buf", "fd",
];
/// Tetragon's uprobe argument types the tracer does not read yet.
pub(super) const UPROBE_ARG_TYPES_UNSUPPORTED: &[&str] = &["auto", "char_iovec"];
/// Types of a return probe's `returnArg`.
pub(super) const RETURN_ARG_TYPES: &[&str] = &[
    "int", "sint32", "int32", "uint32", "long", "int64", "sint64", "uint64", "ulong", "size_t",
    "fd", "sock",
];

/// Argument types of kprobe arguments the tracer reads: `sock` (and `socket`, of
/// `inet_dgram_connect`) of the socket functions, and the integer and string types of
/// syscalls (`syscall: true`).
pub const KPROBE_ARG_TYPES: &[&str] = &[
    "nop",
    "sock",
    "socket",
    "int",
    "sint8",
    "uint8",
    "int8",
    "sint16",
    "uint16",
    "int16",
    "sint32",
    "uint32",
    "int32",
    "sint64",
    "uint64",
    "int64",
    "ulong",
    "long",
    "size_t",
    "string",
    "char_buf",
    "fd",
    "file",
    "path",
    "linux_binprm",
    "cred",
    "char_iovec",
    "skb",
    "sockaddr",
    "kiocb",
    "dentry",
    "iov_iter",
    "capability",
    "bpf_attr",
    "bpf_prog",
    "perf_event",
    "bpf_map",
    "user_namespace",
    "load_info",
    "module",
    "net_device",
    "kernel_cap_t",
    "cap_inheritable",
    "cap_permitted",
    "cap_effective",
];
/// Tetragon's kprobe argument types the tracer does not read yet.
pub(super) const KPROBE_ARG_TYPES_UNSUPPORTED: &[&str] = &[
    "auto",
    "sockaddr_un",
    "filename",
    "const_buf",
    "syscall64",
    "data_loc",
    "bpf_cmd",
];

/// Linux capability names, in bit order (`include/uapi/linux/capability.h`).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A matchArgs integer: decimal (signed) or `0x` hex.
pub fn parse_int(v: &str) -> Option<i128> {
    let v = v.trim();
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => i128::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// A `rateLimit` (`30s`, `5m`, `1h`; a bare number is seconds) in seconds.
pub fn parse_rate_limit(v: &str) -> Option<u64> {
    let (num, mult) = match v.as_bytes().last()? {
        b's' => (&v[..v.len() - 1], 1),
        b'm' => (&v[..v.len() - 1], 60),
        b'h' => (&v[..v.len() - 1], 3600),
        _ => (v, 1),
    };
    num.parse::<u64>().ok().filter(|n| *n > 0).map(|n| n * mult)
}

pub(super) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

pub(super) fn suggest_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches(|c| c == '-' || c == '.').to_owned();
    if out.is_empty() {
        "my-policy".into()
    } else {
        out
    }
}

/// The type an argument's `type:` names (one of `ARG_TYPES`, `KPROBE_ARG_TYPES` or
/// `RETURN_ARG_TYPES`).
pub(super) fn arg_type(ty: &str) -> Option<crate::policy::spec::ArgType> {
    use crate::policy::spec::ArgType as T;
    Some(match ty {
        "auto" => T::Auto,
        "int" | "int32" | "sint32" | "int16" | "sint16" | "int8" | "sint8" | "fd" => T::Int {
            signed: true,
            wide: false,
        },
        "uint32" | "uint16" | "uint8" => T::Int {
            signed: false,
            wide: false,
        },
        "int64" | "sint64" | "long" => T::Int {
            signed: true,
            wide: true,
        },
        "syscall64" => T::Syscall64,
        "uint64" | "ulong" | "size_t" => T::Int {
            signed: false,
            wide: true,
        },
        "string" => T::String { buffer: false },
        "char_buf" => T::String { buffer: true },
        "char_iovec" => T::CharIovec,
        "sock" => T::Sock,
        "socket" => T::Socket,
        "skb" => T::Skb,
        "file" => T::File,
        "path" => T::Path,
        "linux_binprm" => T::LinuxBinprm,
        "cred" => T::Cred,
        "sockaddr" => T::Sockaddr,
        "kiocb" => T::Kiocb,
        "dentry" => T::Dentry,
        "iov_iter" => T::IovIter,
        "capability" => T::Capability,
        other => T::Struct(crate::policy::compile::structs::StructType::named(other)?),
    })
}
