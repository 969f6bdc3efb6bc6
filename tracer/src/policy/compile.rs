//! A validated policy to what the kernel runs: per tracepoint, a [`HookConfig`] (fields
//! to capture, selectors) and the string values of its filters, plus what user space
//! needs to write its events (names, argument types, message, tags).

use std::collections::HashSet;

use tracer_common::policy::{
    ARG_BYTES, ARG_KERNEL_BYTES, ARG_USER_BYTES, BinFollow, CredValue, FOLLOW_BITS,
    KPROBE_ARG_BPRM, KPROBE_ARG_CRED, KPROBE_ARG_FILE, KPROBE_ARG_PATH, KPROBE_ARG_SOCK,
    KPROBE_PATH_AT, KPROBE_PATH_LEN, KprobeLayout,
};

use tracer_common::policy::{
    CAPS_EFFECTIVE, CAPS_INHERITABLE, CAPS_PERMITTED, CapFilter, MAX_CAP_FILTERS, MAX_NS_FILTERS,
    MAX_NS_VALUES, NS_CGROUP, NS_IPC, NS_MNT, NS_NET, NS_PID, NS_PID_FOR_CHILDREN, NS_TIME,
    NS_TIME_FOR_CHILDREN, NS_USER, NS_UTS, NsFilter, RATE_GLOBAL, RATE_PROCESS, RATE_THREAD,
};

use tracer_common::policy::{
    ACTION_NOPOST, ACTION_POST, ACTION_SIGKILL, ACTION_SIGNAL, ARG_CHAR_ARRAY, ARG_CURRENT_PID,
    ARG_DATA_LOC, ARG_INT, ARG_KERNEL_STRING, ARG_NEEDS_EQUAL, ARG_NEEDS_POSTFIX, ARG_NEEDS_PREFIX,
    ARG_UINT, ARG_USER_STRING, ArgConfig, ArgFilter, BIN_IN, BIN_NOT_IN, BIN_NOT_POSTFIX,
    BIN_NOT_PREFIX, BIN_POSTFIX, BIN_PREFIX, BinaryFilter, HOOK_ACTIVE, HOOK_BINARY_EQUAL,
    HOOK_BINARY_POSTFIX, HOOK_BINARY_PREFIX, HOOK_MONITOR, HookConfig, LONG_PREFIX,
    MAX_ARG_FILTERS, MAX_HOOK_ARGS, MAX_INT_VALUES, MAX_PIDS, MAX_SELECTORS, OP_EQUAL, OP_GT,
    OP_LT, OP_MASK, OP_NOT_EQUAL, OP_NOT_POSTFIX, OP_NOT_PREFIX, OP_POSTFIX, OP_PREFIX, PIDS_IN,
    PIDS_NOT_IN, PREFIX_MAX, PidFilter, STRING_MAX, SYSCALL_ENTER, SYSCALL_EXIT, SYSCALL_IDS,
    SelectorConfig,
};
use tracer_common::policy::{
    ARG_SOCK, HOOK_SOCK_TRIGGER, OP_DADDR, OP_DPORT, OP_DPORT_PRIV, OP_FAMILY, OP_PROTOCOL,
    OP_SADDR, OP_SPORT, OP_SPORT_PRIV, OP_STATE, SockLayout,
};

use super::{
    model::{Tracepoint, TracingPolicy},
    validate::parse_int,
};
use crate::kernel::tracefs::{self, FieldKind, Format};

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
}

/// One argument of a hook, for the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgMeta {
    pub out: ArgOut,
    pub label: Option<String>,
}

/// A compiled hook.
#[derive(Debug, Clone)]
pub struct Hook {
    pub subsystem: String,
    pub event: String,
    pub event_id: u16,
    pub config: HookConfig,
    /// Set for a syscall hook that can run on the raw syscall tracepoints.
    pub route: Option<SyscallRoute>,
    /// Set for a kprobe: its events are `process_kprobe`.
    pub kprobe: Option<KprobeHook>,
    /// A return hook: the index, among its policy's hooks, of its entry hook.
    pub pair: Option<usize>,
    pub args: Vec<ArgMeta>,
    pub message: Option<String>,
    pub tags: Vec<String>,
}

impl Hook {
    /// The hook, for people: `syscalls/sys_enter_openat`, `kprobe tcp_connect`, `return
    /// of kprobe tcp_connect`.
    pub fn label(&self) -> String {
        match &self.kprobe {
            Some(k) if k.ret => format!("return of kprobe {}", k.call),
            Some(k) => format!("kprobe {}", k.call),
            None => format!("{}/{}", self.subsystem, self.event),
        }
    }

    /// Where the hook runs, for people, as the store places it (see
    /// [`SyscallRoute::routed`]).
    pub fn runs_on(&self, raw_dispatch: bool, raw_numbered: bool) -> String {
        let tracepoint = format!("{}/{}", self.subsystem, self.event);
        match (&self.kprobe, self.route) {
            (Some(k), _) if k.ret && k.on_kprobe => {
                format!("the return of kprobe {} runs on a kretprobe", k.call)
            }
            (Some(k), _) if k.ret && k.from_fd => format!(
                "the return of kprobe {} runs on the tracepoint {tracepoint}, on the sockets of its file descriptors",
                k.call
            ),
            (Some(k), _) if k.ret => format!(
                "the return of kprobe {} runs on the tracepoint {tracepoint}",
                k.call
            ),
            (Some(k), _) if k.on_kprobe => match k.program {
                Probe::Kprobe => format!("kprobe {} runs on a kprobe", k.call),
                Probe::Fentry => format!("kprobe {} runs on fentry", k.call),
                Probe::Lsm => format!(
                    "kprobe {} runs on the BPF LSM hook {} (to Override it)",
                    k.call,
                    k.call.trim_start_matches("security_")
                ),
            },
            (Some(k), _) if k.from_fd => format!(
                "kprobe {} runs on the tracepoint {tracepoint}, which keeps the call's file descriptor for its return",
                k.call
            ),
            (Some(k), Some(route)) if route.routed(raw_dispatch, raw_numbered) => {
                format!("kprobe {} runs on the {route}", k.call)
            }
            (Some(k), _) if !k.sock => {
                format!("kprobe {} runs on the tracepoint {tracepoint}", k.call)
            }
            (Some(k), _) => format!(
                "kprobe {} runs on the tracepoint {tracepoint}, on the socket state changes a {} call makes",
                k.call, k.call
            ),
            (None, Some(route)) if route.routed(raw_dispatch, raw_numbered) => {
                format!("{tracepoint} runs on the {route}")
            }
            (None, _) => format!("{tracepoint} runs on its tracepoint"),
        }
    }
}

/// A kprobe hook: on a kprobe of `call`, or on the tracepoint of the hook's `subsystem`
/// and `event`, which stands for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KprobeHook {
    pub call: String,
    pub on_kprobe: bool,
    /// The return half of a return probe (a kretprobe, or `sys_exit_NAME`).
    pub ret: bool,
    /// Its last argument is the return value (a return probe's, and a socket function's
    /// that is read at its return).
    pub returns_value: bool,
    /// A socket function (else a syscall).
    pub sock: bool,
    /// Its sockets are those of the file descriptors of the syscall that stands for it.
    pub from_fd: bool,
    /// With `on_kprobe`: the program it runs on.
    pub program: Probe,
}

/// The program a kprobe hook on the function itself runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Probe {
    /// A kprobe, or for a return half a kretprobe.
    #[default]
    Kprobe,
    /// An fentry program on the function's BPF trampoline.
    Fentry,
    /// A BPF LSM program on the hook of a `security_*` function (`Override`).
    Lsm,
}

/// A syscall hook run by the raw `sys_enter`/`sys_exit` tracepoint (one for all syscall
/// hooks, `hooks/syscall.rs`) instead of a tracepoint of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallRoute {
    /// `SYSCALL_ENTER` or `SYSCALL_EXIT`.
    pub dir: u32,
    /// The syscall's number, or `None` for every syscall (`raw_syscalls`).
    pub nr: Option<u32>,
}

impl SyscallRoute {
    /// Whether the hook runs on the raw syscall tracepoint: `raw_dispatch` (the agent
    /// can read syscall arguments from `pt_regs` on this kernel) for a hook on every
    /// syscall (`raw_syscalls`), and with `raw_numbered` also for one on a single syscall,
    /// which otherwise has its own `syscalls/*` tracepoint: measured on this project's
    /// machines, that tracepoint costs the syscalls it does not trace less (about 29 ns)
    /// than a BPF program on the raw one that returns at once (about 76 ns).
    pub fn routed(&self, raw_dispatch: bool, raw_numbered: bool) -> bool {
        raw_dispatch && (self.nr.is_none() || raw_numbered)
    }
}

impl std::fmt::Display for SyscallRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tp = if self.dir == SYSCALL_ENTER {
            "sys_enter"
        } else {
            "sys_exit"
        };
        match self.nr {
            Some(nr) => write!(
                f,
                "raw tracepoint {tp}, syscall {nr} filtered in the program"
            ),
            None => write!(f, "raw tracepoint {tp}, every syscall"),
        }
    }
}

/// Where a hook on `subsystem/event` can run on the raw syscall tracepoints: for
/// `raw_syscalls/sys_{enter,exit}` and `syscalls/sys_{enter,exit}_NAME` (NAME a syscall
/// of this architecture), when every argument read is the syscall number (byte 8) or an
/// argument (enter) or return value (exit) word, which [`SyscallRecord`] reproduces.
///
/// [`SyscallRecord`]: tracer_common::policy::SyscallRecord
fn syscall_route(subsystem: &str, event: &str, config: &HookConfig) -> Option<SyscallRoute> {
    let (dir, nr) = match (subsystem, event) {
        ("raw_syscalls", "sys_enter") => (SYSCALL_ENTER, None),
        ("raw_syscalls", "sys_exit") => (SYSCALL_EXIT, None),
        ("syscalls", e) => {
            let (dir, name) = if let Some(n) = e.strip_prefix("sys_enter_") {
                (SYSCALL_ENTER, n)
            } else {
                (SYSCALL_EXIT, e.strip_prefix("sys_exit_")?)
            };
            let no = <syscalls::Sysno as std::str::FromStr>::from_str(name).ok()?;
            let nr = u32::try_from(no.id()).ok().filter(|n| *n < SYSCALL_IDS)?;
            (dir, Some(nr))
        }
        _ => return None,
    };
    let last = if dir == SYSCALL_ENTER { 16 + 5 * 8 } else { 16 };
    let readable = config.args[..config.nargs as usize].iter().all(|a| {
        a.kind == ARG_CURRENT_PID
            || matches!(
                a.kind,
                ARG_INT | ARG_UINT | ARG_USER_STRING | ARG_KERNEL_STRING
            ) && (a.offset == 8 || (a.offset >= 16 && a.offset <= last && a.offset % 8 == 0))
    });
    readable.then_some(SyscallRoute { dir, nr })
}

/// Compiles kprobe `k` as one hook (`input`), or as a return probe (`return: true`, or a
/// socket function read at its return) as two: the entry (`input`, which keeps its record) and the return (`exit`, which runs
/// the selectors on the entry's record and the return value).
#[allow(
    clippy::too_many_arguments,
    reason = "the compile state, passed through"
)]
fn push_halves(
    k: &super::model::Kprobe,
    input: HookInput<'_>,
    exit: HookInput<'_>,
    format: &Format,
    ctx: &PolicyCtx<'_>,
    ids: &mut Ids,
    strings: &mut Vec<StrEntry>,
    follow: &mut Vec<Follow>,
    hooks: &mut Vec<Hook>,
) -> Result<(), String> {
    let Some(kp) = input.kprobe else {
        return Err("not a kprobe".into());
    };
    if !k.ret.as_ref().is_some_and(|r| **r) && kp.at_return.is_none() {
        hooks.push(hook(&input, format, ctx, ids, strings, follow)?);
        return Ok(());
    }
    let entry = HookInput {
        selectors: &[],
        message: None,
        tags: &[],
        kprobe: Some(KprobeInput {
            half: Some(false),
            ..kp
        }),
        ..input
    };
    let ret = HookInput {
        kprobe: Some(KprobeInput {
            half: Some(true),
            return_arg: k.return_arg.as_ref(),
            ..kp
        }),
        ..exit
    };
    hooks.push(hook(&entry, format, ctx, ids, strings, follow)?);
    let mut h = hook(&ret, format, ctx, ids, strings, follow)?;
    h.pair = Some(hooks.len() - 1);
    hooks.push(h);
    Ok(())
}

/// The socket functions a tracepoint stands for (`kprobe_on_tracepoint`).
const SOCKET_CALLS: [&str; 4] = [
    "tcp_connect",
    "tcp_close",
    "inet_csk_listen_start",
    "inet_csk_accept",
];

/// The record of a generic kprobe, as a format: argument `i` (a register) at 16 + 8 i.
fn generic_format(call: &str) -> Format {
    Format {
        name: call.to_owned(),
        id: 0,
        fields: (0..6u16)
            .map(|i| tracefs::Field {
                name: format!("arg{i}"),
                c_type: "unsigned long".into(),
                offset: 16 + 8 * i,
                size: 8,
                signed: false,
                kind: FieldKind::StringPointer,
            })
            .collect(),
    }
}

/// How the kernel names the function that runs syscall NAME: its architecture's wrapper.
const SYSCALL_WRAPPER_PREFIX: &str = if cfg!(target_arch = "aarch64") {
    "__arm64_sys_"
} else {
    "__x64_sys_"
};

/// The syscall a `syscall: true` kprobe names: `sys_NAME`, or the wrapper itself.
fn syscall_of(call: &str) -> Result<String, String> {
    let name = call
        .strip_prefix(SYSCALL_WRAPPER_PREFIX)
        .or_else(|| call.strip_prefix("sys_"))
        .ok_or_else(|| {
            format!("`{call}` with `syscall: true` is not a syscall's name: write sys_NAME (sys_openat), as Tetragon does")
        })?;
    <syscalls::Sysno as std::str::FromStr>::from_str(name)
        .map(|_| name.to_owned())
        .map_err(|_| {
            format!(
                "`{call}`: `{name}` is not a syscall of {}",
                std::env::consts::ARCH
            )
        })
}

/// Kernel functions whose calls show as `sock:inet_sock_set_state` transitions, so that
/// a kprobe on them runs on that tracepoint: on every kernel, with or without kprobes.
/// (old states, new states, state reported: the one left or the one entered).
fn kprobe_on_tracepoint(call: &str) -> Result<SockLayout, String> {
    const fn bits(states: &[u16]) -> u16 {
        let mut b = 0;
        let mut i = 0;
        while i < states.len() {
            b |= 1 << states[i];
            i += 1;
        }
        b
    }
    // include/net/tcp_states.h
    const ESTABLISHED: u16 = 1;
    const SYN_SENT: u16 = 2;
    const FIN_WAIT1: u16 = 4;
    const CLOSE: u16 = 7;
    const CLOSE_WAIT: u16 = 8;
    const LAST_ACK: u16 = 9;
    const LISTEN: u16 = 10;
    const IPPROTO_TCP: u16 = 6;
    let (old, new, report_old) = match call {
        // tcp_v4_connect / tcp_v6_connect move the socket to SYN_SENT, then call
        // tcp_connect.
        "tcp_connect" => (bits(&[CLOSE]), bits(&[SYN_SENT]), 0),
        // tcp_close: an established socket starts its close (FIN_WAIT1), one the peer
        // closed finishes it (LAST_ACK), or a listening, connecting or reset one closes.
        "tcp_close" => (
            bits(&[ESTABLISHED, CLOSE_WAIT, LISTEN, SYN_SENT]),
            bits(&[FIN_WAIT1, LAST_ACK, CLOSE]),
            1,
        ),
        // listen() moves the socket from CLOSE to LISTEN in inet_csk_listen_start; a
        // kprobe there sees it still in CLOSE, and so does this.
        "inet_csk_listen_start" => (bits(&[CLOSE]), bits(&[LISTEN]), 1),
        other => {
            return Err(format!(
                "a kprobe on `{other}` needs kprobes, which are not available here (see `tracer status`); without them the tracer runs kprobes on syscalls (`syscall: true`), on tcp_connect, tcp_close, inet_csk_listen_start, inet_csk_accept and inet_dgram_connect, on the tracepoints that stand for them"
            ));
        }
    };
    Ok(SockLayout {
        old_states: old,
        new_states: new,
        protocol_is: IPPROTO_TCP,
        report_old,
        ..Default::default()
    })
}

/// `trigger` with the offsets of the `sock:inet_sock_set_state` record's fields.
fn sock_layout(format: &Format, trigger: SockLayout) -> Result<SockLayout, String> {
    let at = |name: &str| {
        format
            .fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.offset)
            .ok_or_else(|| format!("sock:inet_sock_set_state has no field `{name}` on this kernel"))
    };
    Ok(SockLayout {
        skaddr: at("skaddr")?,
        oldstate: at("oldstate")?,
        newstate: at("newstate")?,
        sport: at("sport")?,
        dport: at("dport")?,
        family: at("family")?,
        protocol: at("protocol")?,
        saddr_v6: at("saddr_v6")?,
        daddr_v6: at("daddr_v6")?,
        ..trigger
    })
}

/// A socket operator of `matchArgs` on argument position `arg`.
fn sock_filter(
    m: &super::model::MatchArgs,
    arg: usize,
    ids: &mut Ids,
    strings: &mut Vec<StrEntry>,
) -> Result<ArgFilter, String> {
    use super::sock;
    let name = sock::canonical(m.operator.as_str());
    let (op, negate) = match name.strip_prefix("Not") {
        Some(rest) => (rest, 1),
        None => (name, 0),
    };
    let op_code = match op {
        "SAddr" => OP_SADDR,
        "DAddr" => OP_DADDR,
        "SPort" => OP_SPORT,
        "DPort" => OP_DPORT,
        "SPortPriv" => OP_SPORT_PRIV,
        "DPortPriv" => OP_DPORT_PRIV,
        "Protocol" => OP_PROTOCOL,
        "Family" => OP_FAMILY,
        "State" => OP_STATE,
        other => return Err(format!("`{other}` is not a socket operator")),
    };
    let mut af = ArgFilter {
        arg: arg as u8,
        op: op_code,
        negate,
        ..Default::default()
    };
    match op_code {
        OP_SADDR | OP_DADDR => {
            af.id = ids.filter();
            for v in &m.values {
                let c = sock::parse_cidr(v)?;
                strings.push(StrEntry {
                    map: StrMap::Cidr(c.bits),
                    filter_id: af.id,
                    value: c.addr.to_vec(),
                });
            }
        }
        OP_SPORT_PRIV | OP_DPORT_PRIV => {}
        _ => {
            if m.values.len() > MAX_INT_VALUES {
                return Err(format!(
                    "at most {MAX_INT_VALUES} values per socket filter (got {})",
                    m.values.len()
                ));
            }
            af.nvals = m.values.len() as u8;
            for (k, v) in m.values.iter().enumerate() {
                af.values[k] = u64::from(match op_code {
                    OP_SPORT | OP_DPORT => sock::parse_port(v)?,
                    OP_PROTOCOL => sock::parse_protocol(v)?,
                    OP_FAMILY => sock::parse_family(v)?,
                    _ => sock::parse_state(v)?,
                });
            }
        }
    }
    Ok(af)
}

/// Which string map a value goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrMap {
    Equal,
    Prefix,
    Postfix,
    /// An address range in `STR_PREFIX`: 16 bytes (IPv6, IPv4 mapped), this many bits.
    Cidr(u8),
}

/// A string value of a filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StrEntry {
    pub map: StrMap,
    pub filter_id: u32,
    pub value: Vec<u8>,
}

/// What a `followForks` or `followChildren` filter needs from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    /// These processes (pids as their own pid namespaces number them when `namespace`),
    /// and their descendants, get `bit`.
    Pids {
        bit: u8,
        pids: Vec<u32>,
        namespace: bool,
    },
    /// Processes whose binary matches, and their descendants, get `filter.bit`.
    Binary(BinFollow),
}

#[derive(Debug, Clone)]
pub struct Compiled {
    pub name: String,
    pub monitor: bool,
    pub hooks: Vec<Hook>,
    pub strings: Vec<StrEntry>,
    pub follow: Vec<Follow>,
    /// The pods the policy applies to, where not all (`HOOK_CGROUP_SCOPE`).
    pub scope: Option<Scope>,
}

/// The pods a policy applies to: those of a namespace (`TracingPolicyNamespaced`), those
/// its `podSelector` selects, and within them the containers its `containerSelector`
/// selects. The kernel runs its hooks only in their cgroups (`POLICY_SCOPE`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub namespace: Option<String>,
    pub pods: Option<super::model::LabelSelector>,
    pub containers: Option<super::model::LabelSelector>,
}

/// Ids handed out across policies: string filter ids, and `FOLLOW` bits.
#[derive(Debug, Clone, Default)]
pub struct Ids {
    pub next_filter: u32,
    /// `FOLLOW` bits in use.
    pub follow_used: u64,
}

impl Ids {
    fn filter(&mut self) -> u32 {
        self.next_filter += 1;
        self.next_filter
    }

    fn follow_bit(&mut self) -> Result<u8, String> {
        let bit = (0..FOLLOW_BITS)
            .find(|b| self.follow_used & (1u64 << b) == 0)
            .ok_or_else(|| {
                format!("all {FOLLOW_BITS} followForks/followChildren filters are in use")
            })?;
        self.follow_used |= 1u64 << bit;
        Ok(bit as u8)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("policy {policy}: {source}")]
    Tracefs {
        policy: String,
        #[source]
        source: tracefs::FormatError,
    },
    #[error("policy {policy}: {hook}: {what}")]
    Hook {
        policy: String,
        hook: String,
        what: String,
    },
}

/// Compiles `p`; `policy_id` numbers its counters; `next_filter_id` numbers string
/// filters across policies (advanced past the ones used).
/// `kprobes`: the kernel attaches kprobes and the agent can read its sockets; kprobe
/// hooks then run on kprobes, else on their tracepoint equivalents.
/// What the kernel runs for kprobe hooks (from `kernel::features::Placement`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kernel {
    /// Kprobe hooks run on the functions themselves (else on the tracepoints that stand
    /// for them) ...
    pub kprobes: bool,
    /// ... on fentry programs where the kernel has BPF trampolines (cheaper than kprobes)
    pub fentry: bool,
    /// ... and hooks that `Override` a `security_*` function on BPF LSM programs.
    pub lsm: bool,
}

/// `compile_for` a kernel with kprobes (`kprobes`) and no BPF trampolines.
pub fn compile(
    p: &TracingPolicy,
    policy_id: u32,
    ids: &mut Ids,
    tracefs_root: &std::path::Path,
    kprobes: bool,
) -> Result<Compiled, CompileError> {
    let kernel = Kernel {
        kprobes,
        ..Kernel::default()
    };
    compile_for(p, policy_id, ids, tracefs_root, kernel)
}

pub fn compile_for(
    p: &TracingPolicy,
    policy_id: u32,
    ids: &mut Ids,
    tracefs_root: &std::path::Path,
    kernel: Kernel,
) -> Result<Compiled, CompileError> {
    let kprobes = kernel.kprobes;
    let name = p.metadata.name.as_str().to_owned();
    let monitor = p.spec.options.iter().any(|o| {
        o.name.as_str() == "policy-mode"
            && o.value.as_ref().is_some_and(|v| v.as_str() == "monitor")
    });
    let mut hooks = Vec::new();
    let mut strings = Vec::new();
    let mut follow = Vec::new();
    let mut seen = HashSet::new();
    for tp in &p.spec.tracepoints {
        let hook_name = format!("{}/{}", tp.subsystem.as_str(), tp.event.as_str());
        if !seen.insert(hook_name.clone()) {
            return Err(CompileError::Hook {
                policy: name.clone(),
                hook: hook_name,
                what: "is traced twice in this policy; merge the two into one hook with several selectors".into(),
            });
        }
        let format = tracefs::format(tracefs_root, &tp.subsystem, &tp.event).map_err(|source| {
            CompileError::Tracefs {
                policy: name.clone(),
                source,
            }
        })?;
        let err = |what: String| CompileError::Hook {
            policy: name.clone(),
            hook: hook_name.clone(),
            what,
        };
        hooks.push(
            hook(
                &HookInput::tracepoint(tp),
                &format,
                &PolicyCtx {
                    policy_id,
                    monitor,
                    lists: &p.spec.lists,
                },
                ids,
                &mut strings,
                &mut follow,
            )
            .map_err(err)?,
        );
    }
    for k in &p.spec.kprobes {
        let call = k.call.as_str();
        let err = |what: String| CompileError::Hook {
            policy: name.clone(),
            hook: format!("kprobe {call}"),
            what,
        };
        let tracefs_format = |subsystem: &str, event: &str| {
            tracefs::format(tracefs_root, subsystem, event).map_err(|source| {
                CompileError::Tracefs {
                    policy: name.clone(),
                    source,
                }
            })
        };
        let is_return = k.ret.as_ref().is_some_and(|r| **r);
        let ctx = PolicyCtx {
            policy_id,
            monitor,
            lists: &p.spec.lists,
        };
        // Where the hook runs, as one or more sites: (the record's format, subsystem,
        // event, the return half's event); and how its program reads the function.
        type Site<'f> = (Format, &'f str, String, String);
        let (sites, function, sock, generic, generic_sock, at_return): (
            Vec<Site<'_>>,
            String,
            Option<SockLayout>,
            bool,
            Option<SockLayout>,
            Option<AtReturn>,
        ) = if let Some((syscalls, mut at)) = return_sites(call, kprobes, is_return) {
            at.layout = sock_layout(&tracefs_format("sock", "inet_sock_set_state")?, at.layout)
                .map_err(err)?;
            // Its kprobe and kretprobe, or the syscalls that stand for it.
            let sites = if kprobes {
                vec![(
                    generic_format(call),
                    "kprobe",
                    call.to_owned(),
                    call.to_owned(),
                )]
            } else {
                let mut sites = Vec::new();
                for sys in syscalls {
                    let event = format!("sys_enter_{sys}");
                    let mut format = tracefs_format("syscalls", &event)?;
                    format.fields.retain(|f| f.offset >= 16);
                    sites.push((format, "syscalls", event, format!("sys_exit_{sys}")));
                }
                sites
            };
            (sites, call.to_owned(), None, kprobes, None, Some(at))
        } else {
            // Where the hook runs and the record it reads, by kind of function: (format,
            // subsystem, event, the return half's event, function, socket layout, generic).
            // A `sock` argument of any other function is written in the layout of the
            // tracepoint's record, as the socket functions' are.
            let generic_sock = if k.args.iter().any(|a| {
                a.ty.as_ref()
                    .is_some_and(|t| matches!(t.as_str(), "sock" | "skb"))
            }) {
                tracefs_format("sock", "inet_sock_set_state")
                    .ok()
                    .and_then(|f| sock_layout(&f, SockLayout::default()).ok())
            } else {
                None
            };
            let (format, subsystem, event, exit_event, function, sock, generic) = if k
                .syscall
                .as_ref()
                .is_some_and(|s| **s)
            {
                // A syscall: a kprobe on its wrapper, or its `sys_enter_NAME` tracepoint,
                // whose record the kprobe's program rebuilds (`hooks/kprobe.rs`).
                let sys = syscall_of(call).map_err(err)?;
                let event = format!("sys_enter_{sys}");
                let mut format = tracefs_format("syscalls", &event)?;
                // The syscall's arguments, numbered from 0 as the function's are: the
                // fields after the common ones and `__syscall_nr`.
                format.fields.retain(|f| f.offset >= 16);
                let symbol = format!("{SYSCALL_WRAPPER_PREFIX}{sys}");
                (
                    format,
                    "syscalls",
                    event,
                    format!("sys_exit_{sys}"),
                    symbol,
                    None,
                    false,
                )
            } else {
                if is_return && SOCKET_CALLS.contains(&call) && call != "inet_csk_accept" {
                    return Err(err(format!(
                        "return probes on {call} are not supported yet (its socket is argument 0, at the call)"
                    )));
                }
                let trigger = match kprobe_on_tracepoint(call) {
                    Ok(t) => Some(t),
                    // On a kprobe (and kretprobe): the listening socket at the call, the
                    // accepted one at the return.
                    Err(_) if kprobes && call == "inet_csk_accept" => Some(SockLayout {
                        protocol_is: 6,
                        ..Default::default()
                    }),
                    // Any other function, on a kprobe: its argument registers.
                    Err(_) if kprobes && !SOCKET_CALLS.contains(&call) => None,
                    Err(e) => return Err(err(e)),
                };
                match trigger {
                    None => (
                        generic_format(call),
                        "kprobe",
                        call.to_owned(),
                        call.to_owned(),
                        call.to_owned(),
                        None,
                        true,
                    ),
                    Some(trigger) => {
                        let format = tracefs_format("sock", "inet_sock_set_state")?;
                        let mut layout = sock_layout(&format, trigger).map_err(err)?;
                        if kprobes {
                            // The kprobe fires on the call itself: no transition to wait
                            // for, and the socket's state is the one at the call.
                            layout.report_old = 1;
                        }
                        let event = "inet_sock_set_state".to_owned();
                        (
                            format,
                            "sock",
                            event.clone(),
                            event,
                            call.to_owned(),
                            Some(layout),
                            false,
                        )
                    }
                }
            };
            (
                vec![(format, subsystem, event, exit_event)],
                function,
                sock,
                generic,
                generic_sock,
                None,
            )
        };
        if !seen.insert(format!("kprobe {function}")) {
            return Err(err(
                "is traced twice in this policy; merge the two into one hook with several selectors".into(),
            ));
        }
        for (format, subsystem, event, exit_event) in &sites {
            let input = HookInput {
                subsystem,
                event,
                args: &k.args,
                selectors: &k.selectors,
                message: k.message.as_ref(),
                tags: &k.tags,
                kprobe: Some(KprobeInput {
                    call: &function,
                    sock,
                    generic,
                    on_kprobe: kprobes,
                    half: None,
                    return_arg: None,
                    at_return,
                    generic_sock,
                    kernel,
                }),
            };
            let exit = HookInput {
                event: exit_event,
                ..input
            };
            push_halves(
                k,
                input,
                exit,
                format,
                &ctx,
                ids,
                &mut strings,
                &mut follow,
                &mut hooks,
            )
            .map_err(err)?;
        }
    }
    // `Prefix` values longer than an LPM key holds go to the hash map, each under its
    // own length (`hooks/policy.rs`, `long_prefix`).
    for entry in &mut strings {
        if entry.map == StrMap::Prefix && entry.value.len() > PREFIX_MAX {
            entry.map = StrMap::Equal;
            entry.filter_id |= LONG_PREFIX;
        }
    }
    let scope = Scope {
        namespace: (p.kind.as_str() == "TracingPolicyNamespaced")
            .then(|| p.metadata.namespace.as_ref().map(|n| n.as_str().to_owned()))
            .flatten(),
        pods: p.spec.pod_selector.as_ref().map(|s| (**s).clone()),
        containers: p.spec.container_selector.as_ref().map(|s| (**s).clone()),
    };
    let scope = (scope != Scope::default()).then_some(scope);
    if scope.is_some() {
        for h in &mut hooks {
            h.config.flags |= tracer_common::policy::HOOK_CGROUP_SCOPE;
        }
    }
    Ok(Compiled {
        name,
        monitor,
        hooks,
        strings,
        follow,
        scope,
    })
}

/// What every hook of one policy shares.
struct PolicyCtx<'a> {
    policy_id: u32,
    monitor: bool,
    lists: &'a [super::model::List],
}

/// What a hook is made of: a tracepoint's, or a kprobe's run on a tracepoint.
#[derive(Clone, Copy)]
struct HookInput<'a> {
    subsystem: &'a str,
    event: &'a str,
    args: &'a [super::model::Arg],
    selectors: &'a [marked_yaml::Spanned<super::model::Selector>],
    message: Option<&'a marked_yaml::Spanned<String>>,
    tags: &'a [marked_yaml::Spanned<String>],
    kprobe: Option<KprobeInput<'a>>,
}

/// A kprobe hook, as compiled onto a tracepoint's record layout.
#[derive(Clone, Copy)]
struct KprobeInput<'a> {
    /// The function.
    call: &'a str,
    /// A socket function: the `sock:inet_sock_set_state` record layout, and the
    /// transitions that stand for the call there. `None`: a syscall, on the layout of its
    /// `sys_enter_NAME` tracepoint.
    sock: Option<SockLayout>,
    /// Any other function: its argument registers (`hooks/kprobe.rs`).
    generic: bool,
    on_kprobe: bool,
    /// Half of a return probe: `Some(false)` the entry (keeps the record), `Some(true)`
    /// the return.
    half: Option<bool>,
    /// The return half's `returnArg` (no type: `int`).
    return_arg: Option<&'a super::model::Arg>,
    /// A socket function whose sockets are read at its return.
    at_return: Option<AtReturn>,
    /// Any other function: the `inet_sock_set_state` record layout its `sock` argument
    /// is written in (`None` where the kernel lacks the tracepoint).
    generic_sock: Option<SockLayout>,
    kernel: Kernel,
}

/// A socket function whose sockets are read when it returns (`hooks/sock.rs`): a
/// connect's socket has its addresses only then, and a syscall standing for the function
/// has file descriptors, whose sockets are known once it returns.
#[derive(Clone, Copy)]
struct AtReturn {
    /// The `inet_sock_set_state` record layout the sockets are written in.
    layout: SockLayout,
    /// The type argument 0 is declared with (`socket` for a `struct socket *`).
    arg_type: &'static str,
    /// `HOOK_ENTRY_SOCK`, `HOOK_FD`, `HOOK_RET_FD_SOCK`.
    flags: u32,
    /// `KprobeLayout::sock_types`.
    sock_types: u16,
    /// The return value is an output (else only a returned socket, if asked for).
    value: bool,
}

/// Where a socket function read at its return runs: its kprobe and kretprobe, or the
/// syscalls that stand for it (`sys_enter_NAME` and `sys_exit_NAME`, its sockets those of
/// their file descriptors). `None`: not such a function.
fn return_sites(
    call: &str,
    kprobes: bool,
    wants_return: bool,
) -> Option<(Vec<&'static str>, AtReturn)> {
    use tracer_common::policy::{HOOK_ENTRY_SOCK, HOOK_FD, HOOK_RET_FD_SOCK};
    // `include/linux/net.h`
    const SOCK_STREAM: u16 = 1 << 1;
    const SOCK_DGRAM: u16 = 1 << 2;
    const SOCK_RAW: u16 = 1 << 3;
    let fd = if kprobes { 0 } else { HOOK_FD };
    let (syscalls, at) = match call {
        // The `connect` of IPv4 and IPv6 datagram sockets (UDP, ping, raw) on every
        // kernel; its argument 0 is a `struct socket *`.
        "inet_dgram_connect" => (
            vec!["connect"],
            AtReturn {
                layout: SockLayout::default(),
                arg_type: "socket",
                flags: HOOK_ENTRY_SOCK | fd,
                sock_types: SOCK_DGRAM | SOCK_RAW,
                value: true,
            },
        ),
        // With kprobes, inet_csk_accept is a plain socket function (its socket at the
        // call); without, the accept syscalls stand for it, and its listening socket and
        // the accepted one are those of their descriptors.
        "inet_csk_accept" if !kprobes => (
            vec!["accept4", "accept"],
            AtReturn {
                layout: SockLayout::default(),
                arg_type: "sock",
                flags: HOOK_ENTRY_SOCK | HOOK_FD | HOOK_RET_FD_SOCK,
                sock_types: SOCK_STREAM,
                value: wants_return,
            },
        ),
        _ => return None,
    };
    Some((if kprobes { vec![] } else { syscalls }, at))
}

impl<'a> HookInput<'a> {
    fn tracepoint(tp: &'a Tracepoint) -> Self {
        Self {
            subsystem: tp.subsystem.as_str(),
            event: tp.event.as_str(),
            args: &tp.args,
            selectors: &tp.selectors,
            message: tp.message.as_ref(),
            tags: &tp.tags,
            kprobe: None,
        }
    }
}

fn hook(
    tp: &HookInput<'_>,
    format: &Format,
    ctx: &PolicyCtx<'_>,
    ids: &mut Ids,
    strings: &mut Vec<StrEntry>,
    follow: &mut Vec<Follow>,
) -> Result<Hook, String> {
    let PolicyCtx {
        policy_id,
        monitor,
        lists,
    } = *ctx;
    let mut config = HookConfig {
        policy_id,
        flags: HOOK_ACTIVE | if monitor { HOOK_MONITOR } else { 0 },
        nargs: tp.args.len().min(MAX_HOOK_ARGS) as u32,
        nsel: tp.selectors.len().min(MAX_SELECTORS) as u32,
        ..Default::default()
    };
    let syscall = tp.subsystem == "syscalls" || tp.subsystem == "raw_syscalls";
    let mut metas = Vec::new();
    // A path a generic kprobe's program resolved, a string at `KPROBE_PATH_AT`.
    let path_arg = || ArgConfig {
        offset: KPROBE_PATH_AT,
        size: KPROBE_PATH_LEN as u8,
        kind: ARG_CHAR_ARRAY,
        ..Default::default()
    };
    for (i, a) in tp.args.iter().take(MAX_HOOK_ARGS).enumerate() {
        let field = format.fields.get(*a.index as usize).ok_or_else(|| {
            format!(
                "args[{i}]: index {} is past the {} fields of the tracepoint (see its format file)",
                *a.index,
                format.fields.len()
            )
        })?;
        let ty = a.ty.as_ref().map(|t| t.as_str()).unwrap_or("auto");
        let (arg_config, out) = match tp.kprobe {
            Some(KprobeInput {
                call,
                at_return: Some(r),
                ..
            }) => {
                if ty != r.arg_type || *a.index != 0 {
                    return Err(format!(
                        "args[{i}]: {call} takes its argument 0 as `type: {}`, and no other yet",
                        r.arg_type
                    ));
                }
                config.sock = r.layout;
                let sock = ArgConfig {
                    kind: ARG_SOCK,
                    offset: tracer_common::policy::SOCK_ARG_AT,
                    ..Default::default()
                };
                (sock, ArgOut::Sock)
            }
            Some(KprobeInput {
                call,
                sock: Some(layout),
                on_kprobe,
                ..
            }) => {
                if ty != "sock" || *a.index != 0 {
                    return Err(format!(
                        "args[{i}]: {call} takes its argument 0 as `type: sock`, and no other yet"
                    ));
                }
                config.sock = layout;
                if !on_kprobe {
                    config.flags |= HOOK_SOCK_TRIGGER;
                }
                let sock = ArgConfig {
                    kind: ARG_SOCK,
                    ..Default::default()
                };
                (sock, ArgOut::Sock)
            }
            Some(KprobeInput {
                generic: true,
                call,
                generic_sock,
                ..
            }) => match ty {
                "file" | "path" | "linux_binprm" | "sock" | "skb" | "cred" => {
                    if config.kprobe.struct_kind != 0 {
                        return Err(format!(
                            "args[{i}]: one `file`, `path`, `linux_binprm`, `sock`, `skb` or `cred` argument per kprobe is read, and this is the second"
                        ));
                    }
                    let (struct_kind, out, arg) = match ty {
                        "file" => (KPROBE_ARG_FILE, ArgOut::File, path_arg()),
                        "path" => (KPROBE_ARG_PATH, ArgOut::Path, path_arg()),
                        "linux_binprm" => (KPROBE_ARG_BPRM, ArgOut::LinuxBinprm, path_arg()),
                        "sock" | "skb" => {
                            config.sock = generic_sock.ok_or_else(|| {
                                format!("args[{i}]: `{ty}` needs the `sock:inet_sock_set_state` tracepoint's layout, which this kernel lacks")
                            })?;
                            let sock = ArgConfig {
                                kind: ARG_SOCK,
                                offset: KPROBE_PATH_AT,
                                ..Default::default()
                            };
                            if ty == "sock" {
                                (KPROBE_ARG_SOCK, ArgOut::Sock, sock)
                            } else {
                                (tracer_common::policy::KPROBE_ARG_SKB, ArgOut::Skb, sock)
                            }
                        }
                        _ => {
                            let cred = ArgConfig {
                                kind: ARG_BYTES,
                                offset: KPROBE_PATH_AT,
                                size: std::mem::size_of::<CredValue>() as u8,
                                ..Default::default()
                            };
                            (KPROBE_ARG_CRED, ArgOut::Cred, cred)
                        }
                    };
                    config.kprobe = KprobeLayout {
                        struct_arg: *a.index as u16,
                        struct_kind,
                        ..Default::default()
                    };
                    (arg, out)
                }
                "socket" => {
                    return Err(format!(
                        "args[{i}]: `socket` arguments are read for inet_dgram_connect, not yet for {call}; a `struct sock *` is `type: sock`"
                    ));
                }
                _ => {
                    let ty = if ty == "auto" { "uint64" } else { ty };
                    let (kind, out) = arg_kind(ty, field, false).ok_or_else(|| {
                        format!(
                            "args[{i}]: {call}'s argument {} cannot be read as `{ty}`",
                            *a.index
                        )
                    })?;
                    (field_arg(field, kind), out)
                }
            },
            _ if ty == "char_iovec" => {
                if !syscall {
                    return Err(format!(
                        "args[{i}]: `char_iovec` reads a `struct iovec *` in user memory: an argument of a syscall (`syscall: true`), such as sys_writev's 1"
                    ));
                }
                let iovec = ArgConfig {
                    offset: field.offset,
                    size: 8,
                    kind: tracer_common::policy::ARG_USER_IOVEC,
                    ..Default::default()
                };
                (iovec, ArgOut::Bytes)
            }
            _ => {
                let (kind, out) = if field.name == "common_pid" {
                    (ARG_CURRENT_PID, ArgOut::Int)
                } else if field.offset < 8 {
                    return Err(format!(
                        "args[{i}]: `{}` cannot be read: the kernel overwrites a record's common fields before a BPF program sees it (common_pid can be read; the process is in every event)",
                        field.name
                    ));
                } else {
                    arg_kind(ty, field, syscall).ok_or_else(|| {
                        format!(
                            "args[{i}]: field `{}` ({} {}) cannot be read as `{ty}`",
                            field.name, field.c_type, field.size
                        )
                    })?
                };
                (field_arg(field, kind), out)
            }
        };
        let (arg_config, out) = buffer_arg(a, i, arg_config, out, format, tp.kprobe)?;
        config.args[i] = arg_config;
        metas.push(ArgMeta {
            out,
            label: a.label.as_ref().map(|l| l.as_str().to_owned()),
        });
    }
    // A return half reads the return value as one more argument, at `RETURN_AT` of the
    // entry's record.
    let ret_arg = if let Some(KprobeInput {
        half: Some(true),
        return_arg,
        at_return,
        ..
    }) = tp.kprobe
        && at_return.is_none_or(|r| r.value)
    {
        let i = config.nargs as usize;
        if i >= MAX_HOOK_ARGS {
            return Err(format!(
                "a return probe reads at most {} arguments besides the return value",
                MAX_HOOK_ARGS - 1
            ));
        }
        let ty = return_arg
            .and_then(|a| a.ty.as_ref())
            .map_or("int", |t| t.as_str());
        let (arg_config, out) = if ty == "sock" {
            // A returned socket (`inet_csk_accept`): the kretprobe program writes its
            // fields at `SOCK_RETURN_AT` plus the hook's layout.
            match tp.kprobe.map(|k| (k.sock, k.at_return)) {
                // The socket of the descriptor returned (`HOOK_RET_FD_SOCK`).
                Some((_, Some(r))) if r.flags & tracer_common::policy::HOOK_RET_FD_SOCK != 0 => {}
                Some((Some(_), None)) => config.flags |= tracer_common::policy::HOOK_SOCK_RETURN,
                _ => return Err("returnArg: `sock` is read for inet_csk_accept only".into()),
            }
            let sock = ArgConfig {
                kind: ARG_SOCK,
                offset: tracer_common::policy::SOCK_RETURN_AT,
                ..Default::default()
            };
            (sock, ArgOut::Sock)
        } else {
            let field = tracefs::Field {
                name: "return".into(),
                c_type: "long".into(),
                offset: tracer_common::policy::RETURN_AT,
                size: 8,
                signed: true,
                kind: FieldKind::Int,
            };
            let (kind, out) = arg_kind(ty, &field, false)
                .ok_or_else(|| format!("returnArg: a return value cannot be read as `{ty}`"))?;
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
        config.args[i] = arg_config;
        config.nargs += 1;
        metas.push(ArgMeta {
            out,
            label: return_arg.and_then(|a| a.label.as_ref().map(|l| l.as_str().to_owned())),
        });
        Some(i)
    } else {
        None
    };
    let mut overrides = false;
    for (s, sel) in tp.selectors.iter().take(MAX_SELECTORS).enumerate() {
        // Actions (none: Post).
        let mut sc = SelectorConfig {
            actions: if sel.match_actions.is_empty() {
                ACTION_POST
            } else {
                0
            },
            ..Default::default()
        };
        for a in &sel.match_actions {
            if let Some(r) = &a.rate_limit {
                let secs = super::validate::parse_rate_limit(r)
                    .ok_or_else(|| format!("selectors[{s}]: rateLimit `{}`", r.as_str()))?;
                sc.rate_limit_ns = secs.saturating_mul(1_000_000_000);
            }
            if let Some(scope) = &a.rate_limit_scope {
                sc.rate_scope = match scope.as_str() {
                    "process" => RATE_PROCESS,
                    "global" => RATE_GLOBAL,
                    _ => RATE_THREAD,
                };
            }
            match a.action.as_str() {
                "Post" => sc.actions |= ACTION_POST,
                "NoPost" => sc.actions |= ACTION_NOPOST,
                "Sigkill" => sc.actions |= ACTION_SIGKILL | ACTION_POST,
                "Signal" => {
                    sc.actions |= ACTION_SIGNAL | ACTION_POST;
                    sc.signal = a.arg_sig.as_ref().map_or(9, |s| **s);
                }
                "Override" => {
                    sc.actions |= tracer_common::policy::ACTION_OVERRIDE | ACTION_POST;
                    sc.override_error = a.arg_error.as_ref().map_or(-1, |e| **e);
                    overrides = true;
                }
                other => return Err(format!("selectors[{s}]: action `{other}` is not supported")),
            }
        }
        if let Some(m) = sel.match_pids.first() {
            if sel.match_pids.len() > 1 || m.values.len() > MAX_PIDS {
                return Err(format!(
                    "selectors[{s}]: at most one matchPIDs of {MAX_PIDS} values is supported"
                ));
            }
            let mut pf = PidFilter {
                op: if m.operator.as_str() == "In" {
                    PIDS_IN
                } else {
                    PIDS_NOT_IN
                },
                n: m.values.len() as u8,
                ..Default::default()
            };
            for (k, v) in m.values.iter().enumerate() {
                pf.values[k] = **v;
            }
            let namespace = m.is_namespace_pid.as_ref().is_some_and(|n| **n);
            pf.namespace = u8::from(namespace);
            if m.follow_forks.as_ref().is_some_and(|f| **f) {
                let bit = ids.follow_bit()?;
                pf.follow = bit + 1;
                follow.push(Follow::Pids {
                    bit,
                    pids: m.values.iter().map(|v| **v).collect(),
                    namespace,
                });
            }
            sc.pids = pf;
        }
        if let Some(mb) = sel.match_binaries.first() {
            let (op, map, flag) = match mb.operator.as_str() {
                "In" => (BIN_IN, StrMap::Equal, HOOK_BINARY_EQUAL),
                "NotIn" => (BIN_NOT_IN, StrMap::Equal, HOOK_BINARY_EQUAL),
                "Prefix" => (BIN_PREFIX, StrMap::Prefix, HOOK_BINARY_PREFIX),
                "NotPrefix" => (BIN_NOT_PREFIX, StrMap::Prefix, HOOK_BINARY_PREFIX),
                "Postfix" => (BIN_POSTFIX, StrMap::Postfix, HOOK_BINARY_POSTFIX),
                "NotPostfix" => (BIN_NOT_POSTFIX, StrMap::Postfix, HOOK_BINARY_POSTFIX),
                other => return Err(format!("selectors[{s}]: matchBinaries operator `{other}`")),
            };
            let id = ids.filter();
            config.flags |= flag;
            sc.binary = BinaryFilter {
                op,
                id,
                ..Default::default()
            };
            if mb.follow_children.as_ref().is_some_and(|f| **f) {
                if matches!(op, BIN_NOT_IN | BIN_NOT_PREFIX | BIN_NOT_POSTFIX) {
                    return Err(format!(
                        "selectors[{s}]: followChildren goes with In, Prefix or Postfix, not `{}`",
                        mb.operator.as_str()
                    ));
                }
                let bit = ids.follow_bit()?;
                sc.binary.follow = bit + 1;
                follow.push(Follow::Binary(BinFollow {
                    op,
                    bit,
                    id,
                    ..Default::default()
                }));
            }
            for v in &mb.values {
                let mut bytes = v.as_bytes().to_vec();
                bytes.truncate(STRING_MAX - 1);
                if map == StrMap::Postfix {
                    bytes.reverse();
                }
                strings.push(StrEntry {
                    map,
                    filter_id: id,
                    value: bytes,
                });
            }
        }
        if sel.match_namespaces.len() > MAX_NS_FILTERS {
            return Err(format!(
                "selectors[{s}]: at most {MAX_NS_FILTERS} matchNamespaces filters"
            ));
        }
        for (k, m) in sel.match_namespaces.iter().enumerate() {
            let (ns, proc_name) = namespace(m.namespace.as_str()).ok_or_else(|| {
                format!(
                    "selectors[{s}].matchNamespaces[{k}]: namespace `{}`",
                    m.namespace.as_str()
                )
            })?;
            if m.values.len() > MAX_NS_VALUES {
                return Err(format!(
                    "selectors[{s}].matchNamespaces[{k}]: at most {MAX_NS_VALUES} values"
                ));
            }
            let mut nf = NsFilter {
                ns,
                op: if m.operator.as_str() == "In" {
                    PIDS_IN
                } else {
                    PIDS_NOT_IN
                },
                n: m.values.len() as u8,
                ..Default::default()
            };
            for (j, v) in m.values.iter().enumerate() {
                nf.values[j] = if v.as_str() == "host_ns" {
                    host_ns(proc_name)?
                } else {
                    v.parse()
                        .map_err(|_| format!("`{}` is not a namespace inode number", v.as_str()))?
                };
            }
            sc.namespaces[k] = nf;
        }
        if sel.match_capabilities.len() > MAX_CAP_FILTERS {
            return Err(format!(
                "selectors[{s}]: at most {MAX_CAP_FILTERS} matchCapabilities filters"
            ));
        }
        for (k, m) in sel.match_capabilities.iter().enumerate() {
            let host_userns = if m.is_namespace_capability.as_ref().is_some_and(|b| **b) {
                host_ns("user")?
            } else {
                0
            };
            let set = match m.ty.as_ref().map_or("Effective", |t| t.as_str()) {
                "Effective" => CAPS_EFFECTIVE,
                "Permitted" => CAPS_PERMITTED,
                _ => CAPS_INHERITABLE,
            };
            let mut mask = 0u64;
            for v in &m.values {
                let bit = super::validate::CAPABILITIES
                    .iter()
                    .position(|c| *c == v.as_str())
                    .ok_or_else(|| format!("`{}` is not a capability", v.as_str()))?;
                mask |= 1u64 << bit;
            }
            sc.caps[k] = CapFilter {
                set,
                op: if m.operator.as_str() == "In" {
                    PIDS_IN
                } else {
                    PIDS_NOT_IN
                },
                mask,
                host_userns,
                ..Default::default()
            };
        }
        let nfilters = sel.match_args.len() + sel.match_return_args.len();
        if nfilters > MAX_ARG_FILTERS {
            return Err(format!(
                "selectors[{s}]: at most {MAX_ARG_FILTERS} matchArgs and matchReturnArgs filters per selector"
            ));
        }
        sc.nfilters = nfilters as u8;
        let filters = sel
            .match_args
            .iter()
            .map(|m| (m, false))
            .chain(sel.match_return_args.iter().map(|m| (m, true)));
        for (f, (m, on_return)) in filters.enumerate() {
            let arg = if on_return {
                ret_arg.ok_or_else(|| {
                    format!("selectors[{s}]: matchReturnArgs needs a return probe")
                })?
            } else {
                tp.args
                    .iter()
                    .position(|a| *a.index == *m.index)
                    .ok_or_else(|| {
                        format!(
                            "selectors[{s}].matchArgs[{f}]: argument {} is not declared",
                            *m.index
                        )
                    })?
            };
            if matches!(metas[arg].out, ArgOut::Sock | ArgOut::Skb) {
                sc.filters[f] = sock_filter(m, arg, ids, strings)
                    .map_err(|e| format!("selectors[{s}].matchArgs[{f}]: {e}"))?;
                continue;
            }
            if metas[arg].out == ArgOut::Cred {
                return Err(format!(
                    "selectors[{s}].matchArgs[{f}]: argument {} is a `cred`, which is reported, not filtered on yet (filter on the process's capabilities with matchCapabilities)",
                    *m.index
                ));
            }
            let is_string = matches!(
                metas[arg].out,
                ArgOut::String | ArgOut::File | ArgOut::Path | ArgOut::LinuxBinprm | ArgOut::Bytes
            );
            let op = match (m.operator.as_str(), is_string) {
                ("Equal", _) => OP_EQUAL,
                ("NotEqual", _) => OP_NOT_EQUAL,
                ("GT" | "GreaterThan", false) => OP_GT,
                ("LT" | "LessThan", false) => OP_LT,
                ("Mask", false) => OP_MASK,
                ("Prefix", true) => OP_PREFIX,
                ("NotPrefix", true) => OP_NOT_PREFIX,
                ("Postfix", true) => OP_POSTFIX,
                ("NotPostfix", true) => OP_NOT_POSTFIX,
                (op, string) => {
                    return Err(format!(
                        "selectors[{s}].matchArgs[{f}]: `{op}` does not apply to {} argument {}",
                        if string { "string" } else { "integer" },
                        *m.index
                    ));
                }
            };
            let mut af = ArgFilter {
                arg: arg as u8,
                op,
                ..Default::default()
            };
            if is_string {
                config.args[arg].flags |= match op {
                    OP_EQUAL | OP_NOT_EQUAL => ARG_NEEDS_EQUAL,
                    OP_PREFIX | OP_NOT_PREFIX => ARG_NEEDS_PREFIX,
                    _ => ARG_NEEDS_POSTFIX,
                };
            }
            // `list:NAME` values expand to the list's values (syscall names to numbers).
            let mut values: Vec<String> = Vec::new();
            for v in &m.values {
                match v.strip_prefix("list:") {
                    Some(list) => {
                        let l = lists
                            .iter()
                            .find(|l| l.name.as_str() == list)
                            .ok_or_else(|| format!("no list `{list}`"))?;
                        for item in &l.values {
                            let bare = item.strip_prefix("sys_").unwrap_or(item);
                            let no = <syscalls::Sysno as std::str::FromStr>::from_str(bare)
                                .map_err(|_| format!("`{}` is not a syscall", item.as_str()))?;
                            values.push(no.id().to_string());
                        }
                    }
                    None => values.push(v.as_str().to_owned()),
                }
            }
            if is_string {
                af.id = ids.filter();
                let map = match op {
                    OP_EQUAL | OP_NOT_EQUAL => StrMap::Equal,
                    OP_PREFIX | OP_NOT_PREFIX => StrMap::Prefix,
                    _ => StrMap::Postfix,
                };
                for v in values {
                    let mut bytes = v.into_bytes();
                    bytes.truncate(STRING_MAX - 1);
                    if map == StrMap::Postfix {
                        bytes.reverse();
                    }
                    strings.push(StrEntry {
                        map,
                        filter_id: af.id,
                        value: bytes,
                    });
                }
            } else {
                if values.len() > MAX_INT_VALUES {
                    return Err(format!(
                        "selectors[{s}].matchArgs[{f}]: at most {MAX_INT_VALUES} integer values per filter (got {})",
                        values.len()
                    ));
                }
                af.nvals = values.len() as u8;
                for (k, v) in values.iter().enumerate() {
                    af.values[k] =
                        parse_int(v).ok_or_else(|| format!("`{v}` is not an integer"))? as u64;
                }
            }
            sc.filters[f] = af;
        }
        config.selectors[s] = sc;
    }
    match tp.kprobe.and_then(|k| k.half) {
        Some(false) => config.flags |= tracer_common::policy::HOOK_SAVE_ENTRY,
        Some(true) => {
            config.flags |= tracer_common::policy::HOOK_RETURN;
            if let Some(r) = tp.kprobe.and_then(|k| k.at_return) {
                config.flags |= r.flags;
                config.kprobe.sock_types = r.sock_types;
            }
        }
        None => {}
    }
    if let Some(KprobeInput {
        sock: None,
        generic,
        on_kprobe: true,
        half: None | Some(false),
        ..
    }) = tp.kprobe
    {
        config.flags |= if generic {
            tracer_common::policy::HOOK_KPROBE_GENERIC
        } else {
            tracer_common::policy::HOOK_KPROBE_SYSCALL
        };
    }
    let program = probe_program(tp.kprobe, overrides)?;
    Ok(Hook {
        subsystem: tp.subsystem.to_owned(),
        event: tp.event.to_owned(),
        event_id: format.id,
        // A hook on a kprobe is attached there, never routed.
        pair: None,
        // Return probes' halves find each other by slot, on their own programs.
        route: if tp.kprobe.is_some_and(|k| k.on_kprobe || k.half.is_some()) {
            None
        } else {
            syscall_route(tp.subsystem, tp.event, &config)
        },
        kprobe: tp.kprobe.map(|k| KprobeHook {
            call: k.call.to_owned(),
            on_kprobe: k.on_kprobe,
            program,
            ret: k.half == Some(true),
            returns_value: ret_arg.is_some(),
            sock: k.sock.is_some() || k.at_return.is_some(),
            from_fd: k
                .at_return
                .is_some_and(|r| r.flags & tracer_common::policy::HOOK_FD != 0),
        }),
        config,
        args: metas,
        message: tp.message.map(|m| m.as_str().to_owned()),
        tags: tp.tags.iter().map(|t| t.as_str().to_owned()).collect(),
    })
}

/// The program a kprobe hook on the function itself runs on: a BPF LSM program to
/// `Override` a `security_*` function, else fentry where the kernel has BPF trampolines,
/// else a kprobe (a return half: a kretprobe).
fn probe_program(kprobe: Option<KprobeInput<'_>>, overrides: bool) -> Result<Probe, String> {
    let Some(k) = kprobe else {
        return if overrides {
            Err("`Override` goes on a kprobe, not on a tracepoint".into())
        } else {
            Ok(Probe::Kprobe)
        };
    };
    if overrides {
        let call = k.call;
        if k.half.is_some() {
            return Err("`Override` acts at the call, before the function runs: it cannot go with `return: true`".into());
        }
        if !k.on_kprobe {
            return Err(format!(
                "`Override` needs {call} itself hooked, and here it runs on a tracepoint that stands for it (see `tracer status`)"
            ));
        }
        if !call.starts_with("security_") {
            return Err(format!(
                "`Override` runs as a BPF LSM program, on `security_*` functions: {call} is not one (other functions would need bpf_override_return, not supported yet)"
            ));
        }
        if !k.kernel.lsm {
            return Err(format!(
                "`Override` on {call} runs as a BPF LSM program, which this kernel does not run (BPF LSM needs CONFIG_BPF_LSM and `bpf` in the `lsm=` list; see `tracer status`)"
            ));
        }
        return Ok(Probe::Lsm);
    }
    Ok(if k.on_kprobe && k.half != Some(true) && k.kernel.fentry {
        Probe::Fentry
    } else {
        Probe::Kprobe
    })
}

/// A `char_buf` argument with `sizeArgIndex` or `returnCopy`: the buffer's bytes, as many
/// as the size argument (or, read at the return, the return value) says, rather than a
/// string up to its NUL.
fn buffer_arg(
    a: &super::model::Arg,
    i: usize,
    arg: ArgConfig,
    out: ArgOut,
    format: &Format,
    kprobe: Option<KprobeInput<'_>>,
) -> Result<(ArgConfig, ArgOut), String> {
    let size_index = a.size_arg_index.as_ref().map(|n| **n);
    let return_copy = a.return_copy.as_ref().is_some_and(|r| **r);
    let iovec = arg.kind == tracer_common::policy::ARG_USER_IOVEC;
    if size_index.is_none() && !return_copy && !iovec {
        return Ok((arg, out));
    }
    if iovec && size_index.is_none() {
        return Err(format!(
            "args[{i}]: a `char_iovec` needs `sizeArgIndex`, the argument that counts its entries (3 for sys_writev)"
        ));
    }
    let kind = match arg.kind {
        ARG_USER_STRING => ARG_USER_BYTES,
        ARG_KERNEL_STRING => ARG_KERNEL_BYTES,
        k if k == tracer_common::policy::ARG_USER_IOVEC => k,
        _ => {
            return Err(format!(
                "args[{i}]: sizeArgIndex and returnCopy read a buffer through a pointer: `type: char_buf` on a pointer argument"
            ));
        }
    };
    if return_copy && kprobe.and_then(|k| k.half).is_none() {
        return Err(format!(
            "args[{i}]: returnCopy reads the buffer when the call returns: add `return: true` (and `returnArg`)"
        ));
    }
    let len_at = if return_copy && !iovec {
        match kprobe.and_then(|k| k.half) {
            Some(_) => tracer_common::policy::RETURN_AT,
            None => {
                return Err(format!(
                    "args[{i}]: returnCopy reads the buffer when the call returns, its size the return value: add `return: true` (and `returnArg`)"
                ));
            }
        }
    } else {
        let n = size_index.unwrap_or(0) as usize;
        let field = n
            .checked_sub(1)
            .and_then(|k| format.fields.get(k))
            .ok_or_else(|| {
                format!(
                    "args[{i}]: sizeArgIndex {n} names no argument (it counts from 1: 3 is argument index 2; there are {})",
                    format.fields.len()
                )
            })?;
        field.offset
    };
    let len_at = u8::try_from(len_at)
        .map_err(|_| format!("args[{i}]: the size is past the record's first 256 bytes"))?;
    Ok((
        ArgConfig {
            kind,
            len_at,
            ..arg
        },
        ArgOut::Bytes,
    ))
}

/// The kernel code and the `/proc/<pid>/ns/` name of a `matchNamespaces` namespace.
fn namespace(name: &str) -> Option<(u8, &'static str)> {
    Some(match name {
        "Uts" => (NS_UTS, "uts"),
        "Ipc" => (NS_IPC, "ipc"),
        "Mnt" => (NS_MNT, "mnt"),
        "Pid" => (NS_PID, "pid"),
        "PidForChildren" => (NS_PID_FOR_CHILDREN, "pid_for_children"),
        "Net" => (NS_NET, "net"),
        "Time" => (NS_TIME, "time"),
        "TimeForChildren" => (NS_TIME_FOR_CHILDREN, "time_for_children"),
        "Cgroup" => (NS_CGROUP, "cgroup"),
        "User" => (NS_USER, "user"),
        _ => return None,
    })
}

/// The inode number of the host's namespace `name`. The kernel gives its initial
/// namespaces fixed numbers (`PROC_*_INIT_INO`, include/linux/proc_ns.h), except mount
/// and network namespaces: those are read from init (`/proc/1/ns/mnt` reads
/// `mnt:[4026531841]`), or from the agent itself where init's cannot be read (the agent
/// runs in the host's namespaces, as the DaemonSet sets it up).
fn host_ns(name: &str) -> Result<u32, String> {
    match name {
        "ipc" => return Ok(0xEFFF_FFFF),
        "uts" => return Ok(0xEFFF_FFFE),
        "user" => return Ok(0xEFFF_FFFD),
        "pid" | "pid_for_children" => return Ok(0xEFFF_FFFC),
        "cgroup" => return Ok(0xEFFF_FFFB),
        "time" | "time_for_children" => return Ok(0xEFFF_FFFA),
        _ => {}
    }
    let read = |pid: &str| -> Result<u32, String> {
        let path = format!("/proc/{pid}/ns/{name}");
        let link = std::fs::read_link(&path)
            .map_err(|e| format!("cannot read {path} for `host_ns`: {e}"))?;
        let text = link.to_string_lossy();
        text.rsplit_once('[')
            .and_then(|(_, n)| n.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{path} reads `{text}`, not `{name}:[inode]`"))
    };
    read("1").or_else(|e| {
        tracing::warn!("{e}; taking the agent's own {name} namespace as the host's");
        read("self")
    })
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
fn arg_kind(ty: &str, field: &tracefs::Field, syscall: bool) -> Option<(u8, ArgOut)> {
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
        "auto" => match field.kind {
            FieldKind::Int => int(field.signed, field.size),
            FieldKind::Pointer => int(false, 8),
            _ => string_kind.map(|k| (k, ArgOut::String)),
        },
        "string" | "char_buf" => string_kind.map(|k| (k, ArgOut::String)),
        "int" | "int32" | "sint32" | "int16" | "sint16" | "int8" | "sint8" | "fd" => {
            int(true, field.size.min(4))
        }
        "uint32" | "uint16" | "uint8" => int(false, field.size.min(4)),
        "int64" | "sint64" | "long" => int(true, 8),
        "uint64" | "ulong" | "size_t" | "syscall64" => int(false, 8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tracefs root with the format files of `sys_enter_getpgid`, `sys_exit_getpgid`,
    /// `raw_syscalls/sys_enter` and `sched/sched_process_fork`, as Linux 6.18 writes them.
    fn tracefs() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temp dir");
        let common = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n";
        for (sub, event, id, fields) in [
            (
                "syscalls",
                "sys_enter_getpgid",
                700,
                "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:pid_t pid;\toffset:16;\tsize:8;\tsigned:0;\n",
            ),
            (
                "syscalls",
                "sys_exit_getpgid",
                701,
                "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n",
            ),
            (
                "syscalls",
                "sys_enter_nosuchcall",
                702,
                "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:long x;\toffset:16;\tsize:8;\tsigned:1;\n",
            ),
            (
                "raw_syscalls",
                "sys_enter",
                703,
                "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n",
            ),
            (
                "sock",
                "inet_sock_set_state",
                705,
                "\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;\n\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;\n\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;\n\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;\n\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;\n\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;\n",
            ),
            (
                "syscalls",
                "sys_enter_connect",
                710,
                "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:struct sockaddr * uservaddr;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int addrlen;\toffset:32;\tsize:8;\tsigned:0;\n",
            ),
            (
                "syscalls",
                "sys_enter_accept4",
                712,
                "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:struct sockaddr * upeer_sockaddr;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int * upeer_addrlen;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:int flags;\toffset:40;\tsize:8;\tsigned:0;\n",
            ),
            (
                "syscalls",
                "sys_enter_accept",
                714,
                "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:struct sockaddr * upeer_sockaddr;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int * upeer_addrlen;\toffset:32;\tsize:8;\tsigned:0;\n",
            ),
            (
                "sched",
                "sched_process_fork",
                704,
                "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n",
            ),
        ] {
            let dir = root.path().join("events").join(sub).join(event);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("format"),
                format!("name: {event}\nID: {id}\nformat:\n{common}{fields}\nprint fmt: \"\"\n"),
            )
            .unwrap();
        }
        root
    }

    /// The hooks of a policy of one kprobe (`call: {hook}`, the rest of it following).
    fn compile_kprobe(
        root: &std::path::Path,
        hook: &str,
        kernel: Kernel,
    ) -> Result<Vec<Hook>, String> {
        let text = format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  kprobes:\n  - call: {hook}"
        );
        let docs =
            super::super::parse::text_documents("t.yaml", &text).map_err(|e| format!("{e:?}"))?;
        compile_for(&docs[0].policy, 0, &mut Ids::default(), root, kernel)
            .map(|c| c.hooks)
            .map_err(|e| e.to_string())
    }

    fn compile_one(root: &std::path::Path, hook: &str, args: &str) -> Result<Hook, String> {
        let text = format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  tracepoints:\n  - {hook}\n    args:\n{args}"
        );
        let docs =
            super::super::parse::text_documents("t.yaml", &text).map_err(|e| format!("{e:?}"))?;
        let c = compile(&docs[0].policy, 0, &mut Ids::default(), root, false)
            .map_err(|e| e.to_string())?;
        Ok(c.hooks.into_iter().next().expect("one hook"))
    }

    #[test]
    fn socket_kprobes_compile_for_a_kprobe_or_for_the_tracepoint() {
        let root = tracefs();
        let text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  kprobes:\n  - call: tcp_connect\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n  - call: tcp_close\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n";
        let docs = super::super::parse::text_documents("t.yaml", text).expect("parses");
        for kprobes in [true, false] {
            let c = compile(
                &docs[0].policy,
                0,
                &mut Ids::default(),
                root.path(),
                kprobes,
            )
            .expect("compiles");
            assert_eq!(c.hooks.len(), 2);
            let (connect, close) = (&c.hooks[0], &c.hooks[1]);
            assert_eq!(
                connect.kprobe,
                Some(KprobeHook {
                    call: "tcp_connect".into(),
                    on_kprobe: kprobes,
                    ret: false,
                    returns_value: false,
                    sock: true,
                    from_fd: false,
                    program: Probe::Kprobe,
                })
            );
            assert_eq!(
                (connect.subsystem.as_str(), connect.event.as_str()),
                ("sock", "inet_sock_set_state")
            );
            assert_eq!(connect.event_id, 705);
            let l = connect.config.sock;
            // The record's layout, from the format file, for both: a kprobe writes its
            // socket's fields where the tracepoint has them.
            assert_eq!(
                (
                    l.skaddr, l.oldstate, l.newstate, l.sport, l.dport, l.family, l.protocol,
                    l.saddr_v6, l.daddr_v6
                ),
                (8, 16, 20, 24, 26, 28, 30, 40, 56)
            );
            assert_eq!(l.protocol_is, 6);
            // On the tracepoint a hook runs on some transitions only; a kprobe reports the
            // state at the call.
            assert_eq!(connect.config.flags & HOOK_SOCK_TRIGGER != 0, !kprobes);
            assert_eq!(l.old_states, 1 << 7, "tcp_connect leaves CLOSE");
            assert_eq!(l.new_states, 1 << 2, "for SYN_SENT");
            assert_eq!(l.report_old, u16::from(kprobes));
            assert_eq!(close.config.sock.report_old, 1);
            assert_eq!(
                close.kprobe.as_ref().map(|k| k.call.as_str()),
                Some("tcp_close")
            );
        }
    }

    #[test]
    fn syscall_kprobes_compile_onto_the_syscall_tracepoint_layout() {
        let root = tracefs();
        let text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  kprobes:\n  - call: sys_getpgid\n    syscall: true\n    args:\n    - index: 0\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [42]\n";
        let docs = super::super::parse::text_documents("t.yaml", text).expect("parses");
        for kprobes in [true, false] {
            let c = compile(
                &docs[0].policy,
                0,
                &mut Ids::default(),
                root.path(),
                kprobes,
            )
            .expect("compiles");
            let h = &c.hooks[0];
            assert_eq!(
                h.kprobe,
                Some(KprobeHook {
                    call: format!("{SYSCALL_WRAPPER_PREFIX}getpgid"),
                    on_kprobe: kprobes,
                    ret: false,
                    returns_value: false,
                    sock: false,
                    from_fd: false,
                    program: Probe::Kprobe,
                })
            );
            assert_eq!(
                (h.subsystem.as_str(), h.event.as_str()),
                ("syscalls", "sys_enter_getpgid")
            );
            // Argument 0 of the function is the record's first argument, at 16.
            assert_eq!(h.config.nargs, 1);
            assert_eq!(h.config.args[0].offset, 16);
            assert_eq!(h.config.args[0].kind, ARG_INT);
            assert_eq!(
                h.config.flags & tracer_common::policy::HOOK_KPROBE_SYSCALL != 0,
                kprobes
            );
            // On its tracepoint it can be routed as any syscall hook; on a kprobe never.
            assert_eq!(h.route.is_none(), kprobes);
        }
        assert_eq!(syscall_of("sys_openat"), Ok("openat".into()));
        assert_eq!(
            syscall_of(&format!("{SYSCALL_WRAPPER_PREFIX}openat")),
            Ok("openat".into())
        );
        assert!(
            syscall_of("do_sys_openat2")
                .unwrap_err()
                .contains("write sys_NAME")
        );
        assert!(
            syscall_of("sys_nosuchcall")
                .unwrap_err()
                .contains("is not a syscall")
        );
    }

    #[test]
    fn kprobes_on_other_functions_need_kprobes() {
        let root = tracefs();
        let text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  kprobes:\n  - call: security_file_open\n    syscall: false\n    args:\n    - index: 0\n      type: file\n    - index: 1\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Prefix\n        values: [/etc/]\n";
        let docs = super::super::parse::text_documents("t.yaml", text).expect("parses");
        let c = compile(&docs[0].policy, 0, &mut Ids::default(), root.path(), true)
            .expect("compiles where kprobes work");
        let h = &c.hooks[0];
        assert_eq!(
            h.kprobe,
            Some(KprobeHook {
                call: "security_file_open".into(),
                on_kprobe: true,
                ret: false,
                returns_value: false,
                sock: false,
                from_fd: false,
                program: Probe::Kprobe,
            })
        );
        assert_ne!(
            h.config.flags & tracer_common::policy::HOOK_KPROBE_GENERIC,
            0
        );
        // The file's path, where the program writes it; the int, argument 1's register.
        assert_eq!(
            (h.config.args[0].kind, h.config.args[0].offset),
            (ARG_CHAR_ARRAY, KPROBE_PATH_AT)
        );
        assert_eq!(
            (h.config.kprobe.struct_arg, h.config.kprobe.struct_kind),
            (0, KPROBE_ARG_FILE)
        );
        assert_eq!(
            (h.config.args[1].kind, h.config.args[1].offset),
            (ARG_INT, 24)
        );
        assert_eq!(h.args[0].out, ArgOut::File);
        assert_eq!(
            h.runs_on(true, false),
            "kprobe security_file_open runs on a kprobe"
        );
        let e = compile(&docs[0].policy, 0, &mut Ids::default(), root.path(), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a kprobe on `security_file_open` needs kprobes"),
            "{e}"
        );
    }

    #[test]
    fn function_hooks_prefer_fentry_and_override_on_bpf_lsm() {
        let root = tracefs();
        let full = Kernel {
            kprobes: true,
            fentry: true,
            lsm: true,
        };
        let compile_kp = |hook: &str, kernel: Kernel| compile_kprobe(root.path(), hook, kernel);
        let program = |h: &Hook| h.kprobe.as_ref().map(|k| k.program);
        // Entry hooks on fentry, return halves on kretprobes; plain kprobes without
        // trampolines.
        let open =
            "security_file_open\n    syscall: false\n    args:\n    - index: 0\n      type: file\n";
        let h = compile_kp(open, full).expect("compiles");
        assert_eq!(program(&h[0]), Some(Probe::Fentry));
        assert_eq!(
            h[0].runs_on(true, false),
            "kprobe security_file_open runs on fentry"
        );
        let no_trampolines = Kernel {
            fentry: false,
            lsm: false,
            ..full
        };
        assert_eq!(
            program(&compile_kp(open, no_trampolines).expect("compiles")[0]),
            Some(Probe::Kprobe)
        );
        let ret = "sys_getpgid\n    syscall: true\n    return: true\n    args:\n    - index: 0\n      type: int\n";
        let h = compile_kp(ret, full).expect("compiles");
        assert_eq!(
            (program(&h[0]), program(&h[1])),
            (Some(Probe::Fentry), Some(Probe::Kprobe))
        );
        // Override: a BPF LSM program on the security hook, with its error.
        let deny = format!(
            "{open}    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Prefix\n        values: [/etc/]\n      matchActions:\n      - action: Override\n        argError: -13\n"
        );
        let h = compile_kp(&deny, full).expect("compiles");
        assert_eq!(program(&h[0]), Some(Probe::Lsm));
        assert_eq!(h[0].config.selectors[0].override_error, -13);
        assert_ne!(
            h[0].config.selectors[0].actions & tracer_common::policy::ACTION_OVERRIDE,
            0
        );
        assert_eq!(
            h[0].runs_on(true, false),
            "kprobe security_file_open runs on the BPF LSM hook file_open (to Override it)"
        );
        for (kernel, hook, expected) in [
            (
                no_trampolines,
                deny.clone(),
                "which this kernel does not run",
            ),
            (
                full,
                deny.replace("security_file_open", "vfs_open"),
                "vfs_open is not one",
            ),
            (
                Kernel {
                    kprobes: false,
                    ..full
                },
                deny.clone(),
                "needs kprobes, which are not available here",
            ),
        ] {
            let e = compile_kp(&hook, kernel).unwrap_err();
            assert!(e.contains(expected), "{expected}: {e}");
        }
    }

    #[test]
    fn struct_arguments_of_any_function() {
        use tracer_common::policy::SockLayout;
        let root = tracefs();
        let kprobes = Kernel {
            kprobes: true,
            ..Kernel::default()
        };
        let compile_kp = |hook: &str| {
            compile_kprobe(root.path(), hook, kprobes)
                .map(|hooks| hooks.into_iter().next().expect("one hook"))
        };
        // A socket: its fields where the program writes them, in the tracepoint's
        // layout, with the socket operators; the size in its register.
        let h = compile_kp("udp_sendmsg\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n    - index: 2\n      type: size_t\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: DPort\n        values: [\"53\"]\n").expect("compiles");
        assert_eq!(
            (h.config.kprobe.struct_arg, h.config.kprobe.struct_kind),
            (0, KPROBE_ARG_SOCK)
        );
        assert_eq!(
            (h.config.args[0].kind, h.config.args[0].offset),
            (ARG_SOCK, KPROBE_PATH_AT)
        );
        assert_ne!(
            h.config.sock,
            SockLayout::default(),
            "the tracepoint's layout"
        );
        assert_eq!(h.config.sock.dport, 26);
        assert_eq!(
            (h.config.args[1].kind, h.config.args[1].offset),
            (ARG_UINT, 32)
        );
        assert_eq!((h.args[0].out, h.args[1].out), (ArgOut::Sock, ArgOut::Size));
        assert_eq!(h.config.selectors[0].filters[0].op, OP_DPORT);
        // A cred: its values as bytes; reported, not filtered on.
        let h = compile_kp(
            "commit_creds\n    syscall: false\n    args:\n    - index: 0\n      type: cred\n",
        )
        .expect("compiles");
        assert_eq!(h.config.kprobe.struct_kind, KPROBE_ARG_CRED);
        assert_eq!(
            (
                h.config.args[0].kind,
                h.config.args[0].offset,
                h.config.args[0].size
            ),
            (ARG_BYTES, KPROBE_PATH_AT, 64)
        );
        assert_eq!(h.args[0].out, ArgOut::Cred);
        let e = compile_kp("commit_creds\n    syscall: false\n    args:\n    - index: 0\n      type: cred\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"0\"]\n").unwrap_err();
        assert!(
            e.contains("is a `cred`, which is reported, not filtered on yet"),
            "{e}"
        );
        // A linux_binprm: the path of its file, a string for the string operators.
        let h = compile_kp("security_bprm_check\n    syscall: false\n    args:\n    - index: 0\n      type: linux_binprm\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Postfix\n        values: [\"/busybox\"]\n").expect("compiles");
        assert_eq!(h.config.kprobe.struct_kind, KPROBE_ARG_BPRM);
        assert_eq!(
            (h.config.args[0].kind, h.config.args[0].offset),
            (ARG_CHAR_ARRAY, KPROBE_PATH_AT)
        );
        assert_eq!(h.args[0].out, ArgOut::LinuxBinprm);
        assert_eq!(h.config.selectors[0].filters[0].op, OP_POSTFIX);
        // A packet: its headers in the socket layout, with the socket operators.
        let h = compile_kp("ip_output\n    syscall: false\n    args:\n    - index: 2\n      type: skb\n    selectors:\n    - matchArgs:\n      - index: 2\n        operator: DAddr\n        values: [10.0.0.0/8]\n").expect("compiles");
        assert_eq!(
            (h.config.kprobe.struct_arg, h.config.kprobe.struct_kind),
            (2, tracer_common::policy::KPROBE_ARG_SKB)
        );
        assert_eq!(
            (h.config.args[0].kind, h.config.args[0].offset),
            (ARG_SOCK, KPROBE_PATH_AT)
        );
        assert_eq!(h.args[0].out, ArgOut::Skb);
        assert_eq!(h.config.selectors[0].filters[0].op, OP_DADDR);
        // One struct argument per kprobe.
        let e = compile_kp("security_file_open\n    syscall: false\n    args:\n    - index: 0\n      type: file\n    - index: 1\n      type: cred\n").unwrap_err();
        assert!(e.contains("and this is the second"), "{e}");
    }

    #[test]
    fn return_probes_compile_to_two_halves() {
        let root = tracefs();
        let text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  kprobes:\n  - call: sys_getpgid\n    syscall: true\n    return: true\n    args:\n    - index: 0\n      type: int\n    returnArg:\n      index: 0\n      type: int\n    selectors:\n    - matchReturnArgs:\n      - index: 0\n        operator: Equal\n        values: [-3]\n";
        let docs = super::super::parse::text_documents("t.yaml", text).expect("parses");
        for kprobes in [true, false] {
            let c = compile(
                &docs[0].policy,
                0,
                &mut Ids::default(),
                root.path(),
                kprobes,
            )
            .expect("compiles");
            assert_eq!(c.hooks.len(), 2);
            let (entry, ret) = (&c.hooks[0], &c.hooks[1]);
            assert_ne!(
                entry.config.flags & tracer_common::policy::HOOK_SAVE_ENTRY,
                0
            );
            assert_eq!(entry.config.nsel, 0, "the entry only keeps its record");
            assert_ne!(ret.config.flags & tracer_common::policy::HOOK_RETURN, 0);
            assert_eq!(ret.pair, Some(0));
            assert_eq!(ret.kprobe.as_ref().map(|k| k.ret), Some(true));
            // The argument, then the return value at RETURN_AT, which the filter reads.
            assert_eq!(ret.config.nargs, 2);
            assert_eq!(
                (ret.config.args[1].offset, ret.config.args[1].kind),
                (tracer_common::policy::RETURN_AT, ARG_INT)
            );
            assert_eq!(ret.config.selectors[0].filters[0].arg, 1);
            assert_eq!(ret.config.selectors[0].filters[0].values[0] as i64, -3);
            // Without kprobes, on the syscall's enter and exit tracepoints.
            let events = (entry.event.as_str(), ret.event.as_str());
            if kprobes {
                assert_eq!(
                    ret.runs_on(true, false),
                    format!(
                        "the return of kprobe {SYSCALL_WRAPPER_PREFIX}getpgid runs on a kretprobe"
                    )
                );
            } else {
                assert_eq!(events, ("sys_enter_getpgid", "sys_exit_getpgid"));
            }
            assert!(entry.route.is_none() && ret.route.is_none());
        }
    }

    #[test]
    fn inet_csk_accept_returns_the_accepted_socket() {
        let root = tracefs();
        let text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  kprobes:\n  - call: inet_csk_accept\n    syscall: false\n    return: true\n    args:\n    - index: 0\n      type: sock\n    returnArg:\n      index: 0\n      type: sock\n";
        let docs = super::super::parse::text_documents("t.yaml", text).expect("parses");
        let c = compile(&docs[0].policy, 0, &mut Ids::default(), root.path(), true)
            .expect("compiles where kprobes work");
        let (entry, ret) = (&c.hooks[0], &c.hooks[1]);
        assert_ne!(
            entry.config.flags & tracer_common::policy::HOOK_SAVE_ENTRY,
            0
        );
        let flags = ret.config.flags;
        assert_ne!(flags & tracer_common::policy::HOOK_RETURN, 0);
        assert_ne!(flags & tracer_common::policy::HOOK_SOCK_RETURN, 0);
        assert_eq!(flags & HOOK_SOCK_TRIGGER, 0, "on a kprobe, no transitions");
        assert_eq!(
            (ret.config.args[1].kind, ret.config.args[1].offset),
            (ARG_SOCK, tracer_common::policy::SOCK_RETURN_AT)
        );
        assert_eq!(ret.args[1].out, ArgOut::Sock);
        // Without kprobes: on the accept syscalls, each an entry that keeps the listening
        // descriptor and a return that reads both sockets from their descriptors.
        let c = compile(&docs[0].policy, 0, &mut Ids::default(), root.path(), false)
            .expect("compiles on the accept syscalls");
        let events: Vec<(&str, &str)> = c
            .hooks
            .iter()
            .map(|h| (h.subsystem.as_str(), h.event.as_str()))
            .collect();
        assert_eq!(
            events,
            [
                ("syscalls", "sys_enter_accept4"),
                ("syscalls", "sys_exit_accept4"),
                ("syscalls", "sys_enter_accept"),
                ("syscalls", "sys_exit_accept"),
            ]
        );
        assert_eq!((c.hooks[1].pair, c.hooks[3].pair), (Some(0), Some(2)));
        use tracer_common::policy::{
            HOOK_ENTRY_SOCK, HOOK_FD, HOOK_RET_FD_SOCK, HOOK_SOCK_RETURN, SOCK_ARG_AT,
            SOCK_RETURN_AT,
        };
        let ret = &c.hooks[1];
        let flags = ret.config.flags;
        assert_eq!(
            flags & (HOOK_ENTRY_SOCK | HOOK_FD | HOOK_RET_FD_SOCK | HOOK_SOCK_RETURN),
            HOOK_ENTRY_SOCK | HOOK_FD | HOOK_RET_FD_SOCK
        );
        assert_eq!(ret.config.kprobe.sock_types, 1 << 1, "SOCK_STREAM only");
        assert_eq!(
            [ret.config.args[0].offset, ret.config.args[1].offset],
            [SOCK_ARG_AT, SOCK_RETURN_AT]
        );
        assert_eq!(ret.config.sock.daddr_v6, 56, "the tracepoint's layout");
        assert_eq!(
            ret.kprobe
                .as_ref()
                .map(|k| (k.ret, k.returns_value, k.from_fd)),
            Some((true, true, true))
        );
        // The return value of inet_csk_accept is a socket: on the syscalls, an fd.
        let text = text.replace("      type: sock\n", "      type: int\n");
        let docs = super::super::parse::text_documents("t.yaml", &text).expect("parses");
        let e = compile(&docs[0].policy, 0, &mut Ids::default(), root.path(), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inet_csk_accept takes its argument 0 as `type: sock`"),
            "{e}"
        );
    }

    #[test]
    fn udp_connects_are_read_at_the_return() {
        use tracer_common::policy::{
            HOOK_ENTRY_SOCK, HOOK_FD, HOOK_KPROBE_GENERIC, HOOK_RET_FD_SOCK, HOOK_SAVE_ENTRY,
            SOCK_ARG_AT,
        };
        let root = tracefs();
        let text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  kprobes:\n  - call: inet_dgram_connect\n    syscall: false\n    args:\n    - index: 0\n      type: socket\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: DPort\n        values: [\"53\"]\n";
        let docs = super::super::parse::text_documents("t.yaml", text).expect("parses");
        for kprobes in [true, false] {
            let c = compile(
                &docs[0].policy,
                0,
                &mut Ids::default(),
                root.path(),
                kprobes,
            )
            .expect("compiles");
            assert_eq!(
                c.hooks.len(),
                2,
                "an entry and a return, without `return: true`"
            );
            let (entry, ret) = (&c.hooks[0], &c.hooks[1]);
            let expected = if kprobes {
                [
                    ("kprobe", "inet_dgram_connect"),
                    ("kprobe", "inet_dgram_connect"),
                ]
            } else {
                [
                    ("syscalls", "sys_enter_connect"),
                    ("syscalls", "sys_exit_connect"),
                ]
            };
            assert_eq!(
                [
                    (entry.subsystem.as_str(), entry.event.as_str()),
                    (ret.subsystem.as_str(), ret.event.as_str())
                ],
                expected
            );
            assert_ne!(entry.config.flags & HOOK_SAVE_ENTRY, 0);
            assert_eq!(entry.config.flags & HOOK_KPROBE_GENERIC != 0, kprobes);
            let fd = if kprobes { 0 } else { HOOK_FD };
            assert_eq!(
                ret.config.flags & (HOOK_ENTRY_SOCK | HOOK_FD | HOOK_RET_FD_SOCK),
                HOOK_ENTRY_SOCK | fd
            );
            assert_eq!(ret.config.kprobe.sock_types, (1 << 2) | (1 << 3));
            assert_eq!(
                (ret.config.args[0].kind, ret.config.args[0].offset),
                (ARG_SOCK, SOCK_ARG_AT)
            );
            // The return value follows the socket; the DPort filter is on argument 0.
            assert_eq!(ret.config.nargs, 2);
            assert_eq!(ret.args[1].out, ArgOut::Int);
            assert_eq!(ret.config.selectors[0].filters[0].op, OP_DPORT);
            assert_eq!(ret.config.selectors[0].filters[0].values[0], 53);
            assert_eq!(
                ret.kprobe
                    .as_ref()
                    .map(|k| (k.ret, k.returns_value, k.from_fd)),
                Some((true, true, !kprobes))
            );
        }
        // Its argument is a `struct socket *`: `type: socket`.
        let text = text.replace("type: socket", "type: sock");
        let docs = super::super::parse::text_documents("t.yaml", &text).expect("parses");
        let e = compile(&docs[0].policy, 0, &mut Ids::default(), root.path(), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inet_dgram_connect takes its argument 0 as `type: socket`"),
            "{e}"
        );
    }

    #[test]
    fn which_syscall_hooks_run_on_the_raw_tracepoints() {
        let one = SyscallRoute {
            dir: SYSCALL_ENTER,
            nr: Some(257),
        };
        let every = SyscallRoute {
            dir: SYSCALL_ENTER,
            nr: None,
        };
        // (raw dispatch available, --syscall-raw-tracepoints) -> (one syscall, every one)
        for (dispatch, numbered, expected) in [
            (true, false, (false, true)),
            (true, true, (true, true)),
            (false, true, (false, false)),
            (false, false, (false, false)),
        ] {
            assert_eq!(
                (
                    one.routed(dispatch, numbered),
                    every.routed(dispatch, numbered)
                ),
                expected,
                "{dispatch} {numbered}"
            );
        }
    }

    #[test]
    fn syscall_hooks_route_to_the_raw_tracepoints() {
        let root = tracefs();
        let nr = syscalls::Sysno::getpgid.id() as u32;
        let route = |hook: &str, args: &str| compile_one(root.path(), hook, args).map(|h| h.route);
        assert_eq!(
            route(
                "subsystem: syscalls\n    event: sys_enter_getpgid",
                "    - index: 5\n    - index: 3\n    - index: 4\n"
            ),
            Ok(Some(SyscallRoute {
                dir: SYSCALL_ENTER,
                nr: Some(nr)
            }))
        );
        assert_eq!(
            route(
                "subsystem: syscalls\n    event: sys_exit_getpgid",
                "    - index: 5\n"
            ),
            Ok(Some(SyscallRoute {
                dir: SYSCALL_EXIT,
                nr: Some(nr)
            }))
        );
        assert_eq!(
            route(
                "subsystem: raw_syscalls\n    event: sys_enter",
                "    - index: 4\n"
            ),
            Ok(Some(SyscallRoute {
                dir: SYSCALL_ENTER,
                nr: None
            }))
        );
        // Not a syscall of this architecture: its own tracepoint.
        assert_eq!(
            route(
                "subsystem: syscalls\n    event: sys_enter_nosuchcall",
                "    - index: 5\n"
            ),
            Ok(None)
        );
        // Not a syscall tracepoint.
        assert_eq!(
            route(
                "subsystem: sched\n    event: sched_process_fork",
                "    - index: 5\n"
            ),
            Ok(None)
        );
    }

    #[test]
    fn common_fields_other_than_the_pid_are_refused() {
        let root = tracefs();
        let hook = "subsystem: syscalls\n    event: sys_enter_getpgid";
        let h = compile_one(root.path(), hook, "    - index: 3\n").unwrap();
        assert_eq!(h.config.args[0].kind, ARG_CURRENT_PID);
        let e = compile_one(root.path(), hook, "    - index: 0\n").unwrap_err();
        assert_eq!(
            e,
            "policy t: syscalls/sys_enter_getpgid: args[0]: `common_type` cannot be read: the kernel overwrites a record's common fields before a BPF program sees it (common_pid can be read; the process is in every event)"
        );
    }
}
