//! A policy as validation leaves it ([`super::validate`]): every name, operator, type
//! and value of the document already read into its type, so that the stages after it
//! interpret no string again. What the document's text cannot settle alone (an `auto`
//! argument's type, which needs the tracepoint's format file) is settled by placement and
//! compilation, against the kernel's facts.

use super::{model::LabelSelector, sock::Cidr};

/// One validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    /// `policy-mode: monitor`: actions are reported, not carried out.
    pub monitor: bool,
    /// The pods the policy applies to, where not all.
    pub scope: Option<Scope>,
    pub hooks: Vec<Hook>,
    /// `enforcers`: the kernel functions (syscall wrappers, `__x64_sys_dup`) whose calls
    /// a `NotifyEnforcer` stops.
    pub enforcers: Vec<String>,
    /// `loader: true`: `process_loader` events, one for each executable mapping of a
    /// file (read from the kernel's perf mmap records, with no hook of its own).
    pub loader: bool,
}

/// The pods a policy applies to: those of a namespace (`TracingPolicyNamespaced`), those
/// its `podSelector` selects, and within them the containers its `containerSelector`
/// selects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub namespace: Option<String>,
    pub pods: Option<LabelSelector>,
    pub containers: Option<LabelSelector>,
}

/// One hook of a policy: a tracepoint or a kprobe, its arguments and selectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// Its place in the document, for messages: `spec.kprobes[1]`.
    pub path: String,
    pub target: Target,
    pub args: Vec<Arg>,
    pub selectors: Vec<Selector>,
    pub message: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tracepoint {
        subsystem: String,
        event: String,
    },
    Kprobe(Kprobe),
    Uprobe(Uprobe),
    Usdt(Usdt),
    /// A BPF LSM hook (`file_open`): its arguments are the hook's.
    Lsm {
        hook: String,
    },
    /// A tracepoint with `raw: true`: its arguments are its prototype's (`TP_PROTO`).
    RawTracepoint {
        subsystem: String,
        event: String,
    },
}

/// A USDT probe point: `provider:name` of a binary.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Usdt {
    /// As the policy writes it.
    pub path: String,
    pub provider: String,
    pub name: String,
}

/// One probed place of a binary: a symbol (its function's first instruction), or a file
/// offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uprobe {
    /// As the policy writes it.
    pub path: String,
    pub at: UprobeAt,
    /// The file offset of its USDT semaphore, which the kernel raises while it is
    /// probed (0: none).
    pub ref_ctr_offset: u64,
    /// Some hook on it may `Set` (a USDT probe point): it runs on the program that may
    /// write to the process's memory. Decided when the hook is compiled.
    pub writes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UprobeAt {
    Symbol(String),
    Offset(u64),
}

impl Uprobe {
    /// Its symbol, or its offset in hex: what events and messages name it by.
    pub fn name(&self) -> String {
        match &self.at {
            UprobeAt::Symbol(s) => s.clone(),
            UprobeAt::Offset(o) => format!("{o:#x}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kprobe {
    /// The function (`tcp_connect`), or with `syscall` the syscall (`sys_openat`).
    pub call: String,
    pub syscall: bool,
    /// `return: true`: a return probe, its value read as `return_arg` says.
    pub ret: bool,
    pub return_arg: Option<Arg>,
    /// `ignore.callNotFound`: skipped where the kernel has no such function.
    pub ignore_missing: bool,
    /// `list:NAME` of a `generated_ftrace` list: every function of the kernel this
    /// regular expression matches (`call` is then the list's name).
    pub ftrace_pattern: Option<String>,
    /// The enforcing twin of a return probe whose selectors `Override`: those selectors'
    /// `Override`, `Sigkill` and `Signal`, run at the call, posting nothing (the return
    /// probe posts the events, with the return value the override gave).
    pub at_call: bool,
    /// `returnArgAction`: the returned socket (`returnArg` of type `sock`) is tracked
    /// (`true`) or untracked by the process, as `Action::Sock` does.
    pub return_sock: Option<bool>,
}

/// One argument a hook reads and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The field of the tracepoint's format (counting the common fields), or the
    /// function's argument.
    pub index: u32,
    pub ty: ArgType,
    pub label: Option<String>,
    /// `char_buf`: the 1-based index of the argument that holds its size ...
    pub size_arg_index: Option<u32>,
    /// ... or read at the return, its size the return value.
    pub return_copy: bool,
    /// `resolve`: a path of members from the argument, read instead of it ...
    pub resolve: Option<String>,
    /// ... from the struct named here (`btfType`) rather than the argument's own type.
    pub btf_type: Option<String>,
}

/// The `type:` of an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// From the tracepoint's format file (a kprobe's: `uint64`).
    Auto,
    /// An integer: signed or not, read as 8 bytes (`wide`) or as its field up to 4.
    Int {
        signed: bool,
        wide: bool,
    },
    /// `string`, or `char_buf` (a buffer, with a size or up to its NUL).
    String {
        buffer: bool,
    },
    CharIovec,
    Sock,
    /// A `struct socket *` (`inet_dgram_connect`).
    Socket,
    Skb,
    File,
    Path,
    LinuxBinprm,
    Cred,
    /// A `struct sockaddr *`: its family, address and port.
    Sockaddr,
    /// A `struct kiocb *`: the path of its file.
    Kiocb,
    /// A `struct dentry *`: its path within its file system.
    Dentry,
    /// A `struct iov_iter *`: the bytes of its user buffer.
    IovIter,
    /// A capability number (`cap_capable`'s `cap`).
    Capability,
    /// A syscall number (`syscall64`), its 32-bit ABI marked by bit 31 as Tetragon
    /// marks it: written as `syscall_id` (`{id, abi}`).
    Syscall64,
    /// A struct whose fields are read one by one (`compile/structs.rs`).
    Struct(super::compile::structs::StructType),
}

impl ArgType {
    /// Its name in a policy (one of them, where several name it).
    pub fn name(self) -> &'static str {
        match self {
            ArgType::Auto => "auto",
            ArgType::Int {
                signed: true,
                wide: false,
            } => "int",
            ArgType::Int {
                signed: false,
                wide: false,
            } => "uint32",
            ArgType::Int { signed: true, .. } => "int64",
            ArgType::Int { signed: false, .. } => "uint64",
            ArgType::String { buffer: false } => "string",
            ArgType::String { buffer: true } => "char_buf",
            ArgType::CharIovec => "char_iovec",
            ArgType::Sock => "sock",
            ArgType::Socket => "socket",
            ArgType::Skb => "skb",
            ArgType::File => "file",
            ArgType::Path => "path",
            ArgType::LinuxBinprm => "linux_binprm",
            ArgType::Cred => "cred",
            ArgType::Sockaddr => "sockaddr",
            ArgType::Kiocb => "kiocb",
            ArgType::Dentry => "dentry",
            ArgType::IovIter => "iov_iter",
            ArgType::Capability => "capability",
            ArgType::Syscall64 => "syscall64",
            ArgType::Struct(t) => t.name(),
        }
    }

    /// A socket argument: `matchArgs` takes the socket operators on it.
    pub fn is_socket(self) -> bool {
        matches!(
            self,
            ArgType::Sock | ArgType::Socket | ArgType::Skb | ArgType::Sockaddr
        )
    }

    /// Read as a string (its operators are `Equal`, `Prefix`, `Postfix` and their
    /// negations).
    pub fn is_string(self) -> bool {
        matches!(
            self,
            ArgType::String { .. }
                | ArgType::Struct(super::compile::structs::StructType::NetDevice)
        )
    }
}

/// One selector: its filters, all of which must hold, and its actions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    pub pids: Option<MatchPids>,
    pub binaries: Option<MatchBinaries>,
    pub namespaces: Vec<MatchNamespace>,
    pub capabilities: Vec<MatchCapabilities>,
    pub args: Vec<MatchArg>,
    /// On the return value of a return probe.
    pub return_args: Vec<MatchArg>,
    /// None: `Post`.
    pub actions: Vec<Action>,
    /// `rateLimit`: at most one event per this many seconds for the same arguments.
    pub rate_limit_secs: Option<u64>,
    pub rate_scope: RateScope,
    /// `Post`'s `kernelStackTrace` and `userStackTrace`: the event carries the stacks.
    pub kernel_stack: bool,
    pub user_stack: bool,
}

/// `In` or `NotIn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    In,
    NotIn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchPids {
    pub op: SetOp,
    pub values: Vec<u32>,
    /// `followForks`: the listed processes' descendants count as listed.
    pub follow_forks: bool,
    /// `isNamespacePID`: the values are pids as the process's own pid namespace numbers
    /// them.
    pub namespace: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    In,
    NotIn,
    Prefix,
    NotPrefix,
    Postfix,
    NotPostfix,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchBinaries {
    pub op: BinaryOp,
    pub values: Vec<String>,
    /// `followChildren`: a descendant of a matching binary matches too.
    pub follow_children: bool,
}

/// A namespace of `matchNamespaces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Uts,
    Ipc,
    Mnt,
    Pid,
    PidForChildren,
    Net,
    Time,
    TimeForChildren,
    Cgroup,
    User,
}

impl Namespace {
    pub const ALL: [(&'static str, Namespace); 10] = [
        ("Uts", Namespace::Uts),
        ("Ipc", Namespace::Ipc),
        ("Mnt", Namespace::Mnt),
        ("Pid", Namespace::Pid),
        ("PidForChildren", Namespace::PidForChildren),
        ("Net", Namespace::Net),
        ("Time", Namespace::Time),
        ("TimeForChildren", Namespace::TimeForChildren),
        ("Cgroup", Namespace::Cgroup),
        ("User", Namespace::User),
    ];

    /// Its name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Mnt => "mnt",
            Namespace::Pid => "pid",
            Namespace::PidForChildren => "pid_for_children",
            Namespace::Net => "net",
            Namespace::Time => "time",
            Namespace::TimeForChildren => "time_for_children",
            Namespace::Cgroup => "cgroup",
            Namespace::User => "user",
        }
    }
}

/// A value of `matchNamespaces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsValue {
    /// `host_ns`: the host's namespace of that kind.
    Host,
    Inode(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchNamespace {
    pub ns: Namespace,
    pub op: SetOp,
    pub values: Vec<NsValue>,
}

/// A capability set of `matchCapabilities` and `matchCapabilityChanges`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapSet {
    Effective,
    Permitted,
    Inheritable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchCapabilities {
    pub set: CapSet,
    pub op: SetOp,
    /// One bit per capability (`CAP_CHOWN` is bit 0).
    pub mask: u64,
    /// `isNamespaceCapability`: only for a process in another user namespace than the
    /// host's.
    pub namespace_capability: bool,
    /// `matchCapabilityChanges`: on the set's difference from the one the process had at
    /// its exec.
    pub change: bool,
}

/// One `matchArgs` (or `matchReturnArgs`) filter.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchArg {
    pub index: u32,
    pub op: ArgOp,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgOp {
    Equal,
    NotEqual,
    Prefix,
    NotPrefix,
    Postfix,
    NotPostfix,
    GreaterThan,
    LessThan,
    Mask,
    /// On a socket argument, `Not*` when `negate`.
    Sock {
        op: SockOp,
        negate: bool,
    },
}

impl ArgOp {
    /// Compares numbers only.
    pub fn is_numeric(self) -> bool {
        matches!(self, ArgOp::GreaterThan | ArgOp::LessThan | ArgOp::Mask)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOp {
    SAddr,
    DAddr,
    SPort,
    DPort,
    /// A port below 1024.
    SPortPriv,
    DPortPriv,
    Protocol,
    Family,
    State,
}

/// A value of a `matchArgs` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// As written, and as a whole number where it reads as one (decimal or `0x` hex);
    /// the argument's type, known at compilation, says which is compared. A `list:NAME`
    /// value is its list's syscalls, by number.
    Text { text: String, int: Option<i128> },
    /// An address range of `SAddr`/`DAddr`.
    Cidr(Cidr),
    /// A port, protocol, family or TCP state.
    Number(u16),
}

/// One action of `matchActions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Post,
    NoPost,
    Sigkill,
    Signal(u32),
    /// `Override` with `argError`.
    Override(i32),
    /// `GetUrl` or `DnsLookup`: made by the agent when the event arrives.
    Request(super::requests::Request),
    /// `TrackSock` (`track`) or `UntrackSock`: the socket argument at position `arg` of
    /// `args` is the current process's from now on (events on it anywhere are that
    /// process's), or no longer.
    Sock {
        track: bool,
        arg: u32,
    },
    /// `Set` (USDT probe points): `value` written, 4 bytes, into the memory of the
    /// argument at position `arg` of `args`.
    Set {
        arg: u32,
        value: u32,
    },
    /// `NotifyEnforcer`: the thread's next call of a function of the policy's
    /// `enforcers` returns `error` (0: it runs) and gets `signal` (0: none).
    NotifyEnforcer {
        error: i32,
        signal: u32,
    },
}

/// `rateLimitScope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RateScope {
    #[default]
    Thread,
    Process,
    Global,
}
