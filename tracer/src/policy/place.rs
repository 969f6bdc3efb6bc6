//! Where each hook of a policy runs, and the record it reads there: a tracepoint's own
//! record; for a kprobe, its function on a kprobe, fentry or BPF LSM program where the
//! kernel runs them, else the tracepoint that stands for it (`sock:inet_sock_set_state`
//! for the socket functions, a syscall's `sys_enter_NAME`/`sys_exit_NAME`). A return
//! probe runs in two halves: the entry keeps the record, the return evaluates it.
//!
//! [`units`] places a hook before its arguments are compiled (the record's layout
//! decides how they are read); [`point`] names the hook point a compiled hook runs on
//! (hooks whose points are equal share one attachment and one list).

use tracer_common::policy::{
    FieldRead, HOOK_ENTRY_SOCK, HOOK_FD, HOOK_RET_FD_SOCK, HP_KPROBE_GENERIC, HP_KPROBE_SYSCALL,
    HP_RETURN, HP_SAVE_ENTRY, HP_SOCK_RETURN, HP_USDT, HookConfig, KprobeLayout, MAX_FIELD_READS,
    SYSCALL_ENTER, SYSCALL_EXIT, SYSCALL_IDS, SockLayout, USDT_ARGS, USDT_CONST, USDT_DEREF,
    USDT_REG, UsdtArg,
};

use super::{
    facts::{Facts, Kernel},
    spec,
};
use crate::kernel::tracefs::{self, FieldKind, Format, FormatError};

/// Why a hook cannot be placed on this kernel.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(
        "raw tracepoint {event}: its prototype is read from the kernel's BTF (`btf_trace_{event}`), and {why}"
    )]
    RawTracepoint { event: String, why: String },
    #[error(
        "raw tracepoint {event} has {count} arguments (its prototype's, from 0), and index {index} is past them"
    )]
    RawTracepointArg {
        event: String,
        index: u32,
        count: usize,
    },
    #[error(
        "return probes on {call} are not supported yet (its socket is argument 0, at the call)"
    )]
    SocketReturn { call: String },
    /// A function no tracepoint stands for, and no kprobes.
    #[error(
        "a kprobe on `{call}` needs kprobes, which are not available here (see `tracer status`); without them the tracer runs kprobes on syscalls (`syscall: true`), on tcp_connect, tcp_close, inet_csk_listen_start, inet_csk_accept and inet_dgram_connect, on the tracepoints that stand for them"
    )]
    NeedsKprobes { call: String },
    #[error(
        "`{call}` with `syscall: true` is not a syscall's name: write sys_NAME (sys_openat), as Tetragon does"
    )]
    NotSyscallName { call: String },
    #[error("`{call}`: `{name}` is not a syscall of {}", std::env::consts::ARCH)]
    NoSuchSyscall { call: String, name: String },
    #[error("sock:inet_sock_set_state has no field `{field}` on this kernel")]
    NoSockField { field: &'static str },
    #[error(transparent)]
    Binary(#[from] crate::policy::binary::BinaryError),
    #[error("the LSM hook {hook} runs as a BPF LSM program, and none runs here: {why}")]
    NoLsm { hook: String, why: &'static str },
    #[error("USDT {provider}:{name} of {path}: its arguments (`{args}`) cannot be read: {why}")]
    UsdtArgs {
        path: String,
        provider: String,
        name: String,
        args: String,
        why: String,
    },
}

/// Why a hook cannot `Override` its function (see [`probe_program`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("`Override` goes on a kprobe, not on a tracepoint")]
    Tracepoint,
    #[error("`Override` goes on a kprobe, not on a uprobe")]
    Uprobe,
    #[error(
        "`Override` acts at the call, before the function runs: it cannot go with `return: true`"
    )]
    Return,
    #[error(
        "`Override` needs {call} itself hooked, and here it runs on a tracepoint that stands for it (see `tracer status`)"
    )]
    NotOnFunction { call: String },
    #[error(
        "`Override` on {call}, not a `security_*` function (those run as BPF LSM programs), takes a kprobe that overrides its return, and none can here: {why}"
    )]
    NoKprobeOverride { call: String, why: &'static str },
    #[error("`Override` on {call} runs as a BPF LSM program, and none runs here: {why}")]
    NoLsm { call: String, why: &'static str },
}

/// The program a kprobe hook on the function itself runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Probe {
    /// A kprobe, or for a return half a kretprobe.
    #[default]
    Kprobe,
    /// An fentry program on the function's BPF trampoline.
    Fentry,
    /// A BPF LSM program on the hook of a `security_*` function (`Override`).
    Lsm,
    /// A kprobe that overrides the function's return with `bpf_override_return`
    /// (`Override` on another function on the kernel's error-injection list: a syscall).
    Override,
}

/// Which part of a hook a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Whole,
    /// The entry of a return probe: keeps the record.
    Entry,
    /// The return: evaluates the entry's record with the return value.
    Return,
}

/// A kprobe hook, as placed onto a record layout.
#[derive(Debug, Clone, Copy)]
pub struct KprobeSite<'a> {
    /// The function.
    pub call: &'a str,
    /// A socket function: the `sock:inet_sock_set_state` record layout, and the
    /// transitions that stand for the call there. `None`: a syscall, on the layout of its
    /// `sys_enter_NAME` tracepoint, or any other function.
    pub sock: Option<SockLayout>,
    /// Any other function: its argument registers (`hooks/kprobe.rs`).
    pub generic: bool,
    /// On the function itself (a kprobe, fentry or BPF LSM program).
    pub on_kprobe: bool,
    /// A socket function whose sockets are read at its return.
    pub at_return: Option<AtReturn>,
    /// Any other function: the `inet_sock_set_state` record layout its `sock` argument
    /// is written in (`None` where the kernel lacks the tracepoint).
    pub generic_sock: Option<SockLayout>,
    /// A uprobe or USDT probe: code of a binary, its arguments in the process's
    /// registers and memory.
    pub user: bool,
    /// A BPF LSM hook (`spec.lsmhooks`), its arguments the hook's.
    pub lsm: bool,
    /// A raw tracepoint (`raw: true`), its arguments its prototype's.
    pub raw_tp: bool,
    pub kernel: Kernel,
}

/// A socket function whose sockets are read when it returns (`hooks/sock.rs`): a
/// connect's socket has its addresses only then, and a syscall standing for the function
/// has file descriptors, whose sockets are known once it returns.
#[derive(Debug, Clone, Copy)]
pub struct AtReturn {
    /// The `inet_sock_set_state` record layout the sockets are written in.
    pub layout: SockLayout,
    /// The type argument 0 is declared with.
    pub arg_type: spec::ArgType,
    /// `HOOK_ENTRY_SOCK`, `HOOK_FD`, `HOOK_RET_FD_SOCK`.
    pub flags: u32,
    /// `KprobeLayout::sock_types`.
    pub sock_types: u16,
    /// The return value is an output (else only a returned socket, if asked for).
    pub value: bool,
}

/// One thing to compile: a hook (or one half of it) on one record layout.
#[derive(Debug, Clone)]
pub struct Unit<'a> {
    pub hook: &'a spec::Hook,
    pub format: Format,
    /// The tracepoint (`kprobe`/function for a kprobe on the function).
    pub subsystem: String,
    pub event: String,
    pub kprobe: Option<KprobeSite<'a>>,
    /// The kernel function a kprobe hook is on (a syscall's wrapper for `syscall: true`:
    /// `__x64_sys_openat`); empty for a tracepoint.
    pub function: String,
    pub half: Half,
    /// A hook on a binary's code.
    pub user: Option<UserProbe>,
}

/// The socket functions a tracepoint stands for (`kprobe_on_tracepoint`).
const SOCKET_CALLS: [&str; 4] = [
    "tcp_connect",
    "tcp_close",
    "inet_csk_listen_start",
    "inet_csk_accept",
];

/// How the kernel names the function that runs syscall NAME: its architecture's wrapper.
pub const SYSCALL_WRAPPER_PREFIX: &str = if cfg!(target_arch = "aarch64") {
    "__arm64_sys_"
} else {
    "__x64_sys_"
};

/// Places `hook`: the units to compile, in order (a return half follows its entry).
pub fn units<'a>(hook: &'a spec::Hook, facts: &Facts) -> Result<Vec<Unit<'a>>, PlaceError> {
    let k = match &hook.target {
        spec::Target::Tracepoint { subsystem, event } => {
            return Ok(vec![Unit {
                hook,
                format: facts.format(subsystem, event)?,
                subsystem: subsystem.clone(),
                event: event.clone(),
                kprobe: None,
                function: String::new(),
                half: Half::Whole,
                user: None,
            }]);
        }
        spec::Target::RawTracepoint { subsystem, event } => {
            let count = facts
                .tracepoint_args(event)
                .map_err(|why| PlaceError::RawTracepoint {
                    event: event.clone(),
                    why,
                })?;
            if let Some(a) = hook.args.iter().find(|a| a.index as usize >= count) {
                return Err(PlaceError::RawTracepointArg {
                    event: event.clone(),
                    index: a.index,
                    count,
                });
            }
            return Ok(vec![Unit {
                hook,
                format: generic_format(event),
                subsystem: subsystem.clone(),
                event: event.clone(),
                kprobe: Some(KprobeSite {
                    generic: true,
                    on_kprobe: true,
                    raw_tp: true,
                    ..plain_site(event, facts.kernel)
                }),
                function: event.clone(),
                half: Half::Whole,
                user: None,
            }]);
        }
        spec::Target::Kprobe(k) => k,
        spec::Target::Uprobe(u) => {
            let probe = UserProbe {
                attach: u.clone(),
                usdt: None,
            };
            return Ok(vec![user_unit(hook, probe, facts)]);
        }
        spec::Target::Usdt(u) => {
            let probe = facts.usdt(u)?;
            return Ok(vec![user_unit(hook, probe, facts)]);
        }
        spec::Target::Lsm { hook: name } => {
            if !facts.kernel.lsm {
                return Err(PlaceError::NoLsm {
                    hook: name.clone(),
                    why: facts.kernel.lsm_off,
                });
            }
            return Ok(vec![Unit {
                hook,
                format: generic_format(name),
                subsystem: "lsm".into(),
                event: name.clone(),
                kprobe: Some(KprobeSite {
                    generic: true,
                    on_kprobe: true,
                    lsm: true,
                    ..plain_site(name, facts.kernel)
                }),
                function: name.clone(),
                half: Half::Whole,
                user: None,
            }]);
        }
    };
    let kernel = facts.kernel;
    let sites = kprobe_sites(hook, k, facts)?;
    let function = if k.syscall {
        format!("{SYSCALL_WRAPPER_PREFIX}{}", syscall_of(&k.call)?)
    } else {
        k.call.clone()
    };
    let mut units = Vec::new();
    for site in sites {
        let two = k.ret || site.kprobe.at_return.is_some();
        let whole = Unit {
            hook,
            format: site.format,
            subsystem: site.subsystem,
            event: site.event,
            kprobe: Some(KprobeSite {
                kernel,
                ..site.kprobe
            }),
            function: function.clone(),
            half: if two { Half::Entry } else { Half::Whole },
            user: None,
        };
        if two {
            let ret = Unit {
                event: site.exit_event,
                half: Half::Return,
                ..whole.clone()
            };
            units.push(whole);
            units.push(ret);
        } else {
            units.push(whole);
        }
    }
    Ok(units)
}

/// A hook on a binary's code: a uprobe, or a USDT probe point found in the binary's
/// notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProbe {
    /// Where it attaches (a USDT probe point: at its instruction, with its semaphore).
    pub attach: spec::Uprobe,
    /// A USDT probe point: which, and how its arguments are read.
    pub usdt: Option<(spec::Usdt, [UsdtArg; USDT_ARGS])>,
}

impl UserProbe {
    /// For people and events: `uprobe /bin/bash readline`, `usdt /usr/bin/x test:usdt3`.
    pub fn label(&self) -> String {
        match &self.usdt {
            Some((u, _)) => format!("usdt {} {}:{}", u.path, u.provider, u.name),
            None => format!("uprobe {} {}", self.attach.path, self.attach.name()),
        }
    }
}

/// The unit of a hook on a binary's code: its arguments as a generic kprobe's, from the
/// registers (a USDT probe point's as its note says), strings in the process's memory.
fn user_unit<'a>(hook: &'a spec::Hook, probe: UserProbe, facts: &Facts) -> Unit<'a> {
    let name = match &probe.usdt {
        Some((u, _)) => format!("{}:{}", u.provider, u.name),
        None => probe.attach.name(),
    };
    Unit {
        hook,
        format: generic_format(&name),
        subsystem: if probe.usdt.is_some() {
            "usdt"
        } else {
            "uprobe"
        }
        .into(),
        event: name.clone(),
        kprobe: Some(KprobeSite {
            generic: true,
            on_kprobe: true,
            user: true,
            // Named by its place in the policy in argument errors.
            ..plain_site(&hook.path, facts.kernel)
        }),
        function: name,
        half: Half::Whole,
        user: Some(probe),
    }
}

/// Where a kprobe runs: its record's format, tracepoint, and the return half's event.
struct KprobeAt<'a> {
    format: Format,
    subsystem: String,
    event: String,
    exit_event: String,
    kprobe: KprobeSite<'a>,
}

/// A kprobe site on `call` that reads nothing beyond the function's own record.
fn plain_site(call: &str, kernel: Kernel) -> KprobeSite<'_> {
    KprobeSite {
        call,
        sock: None,
        generic: false,
        on_kprobe: kernel.kprobes,
        at_return: None,
        generic_sock: None,
        user: false,
        lsm: false,
        raw_tp: false,
        kernel,
    }
}

/// A socket function whose sockets are read at its return ([`return_sites`]): on the
/// function where the kernel has kprobes, else on the `sys_enter_NAME` and
/// `sys_exit_NAME` tracepoints of each syscall that stands for it.
fn return_probe_sites<'a>(
    call: &'a str,
    syscalls: Vec<&'static str>,
    mut at: AtReturn,
    facts: &Facts,
) -> Result<Vec<KprobeAt<'a>>, PlaceError> {
    let kernel = facts.kernel;
    at.layout = sock_layout(&facts.format("sock", "inet_sock_set_state")?, at.layout)?;
    let kprobe = KprobeSite {
        generic: kernel.kprobes,
        at_return: Some(at),
        ..plain_site(call, kernel)
    };
    if kernel.kprobes {
        return Ok(vec![KprobeAt {
            format: generic_format(call),
            subsystem: "kprobe".into(),
            event: call.to_owned(),
            exit_event: call.to_owned(),
            kprobe,
        }]);
    }
    syscalls
        .into_iter()
        .map(|sys| {
            Ok(KprobeAt {
                format: syscall_format(facts, &format!("sys_enter_{sys}"))?,
                subsystem: "syscalls".into(),
                event: format!("sys_enter_{sys}"),
                exit_event: format!("sys_exit_{sys}"),
                kprobe,
            })
        })
        .collect()
}

fn kprobe_sites<'a>(
    hook: &'a spec::Hook,
    k: &'a spec::Kprobe,
    facts: &Facts,
) -> Result<Vec<KprobeAt<'a>>, PlaceError> {
    let kernel = facts.kernel;
    let kprobes = kernel.kprobes;
    let call = k.call.as_str();
    let site = |call: &'a str| plain_site(call, kernel);
    if let Some((syscalls, at)) = return_sites(call, kprobes, k.ret) {
        return return_probe_sites(call, syscalls, at, facts);
    }
    // A `sock` argument (or returned `sock`) of any other function is written in the
    // layout of the tracepoint's record, as the socket functions' are.
    let generic_sock = if hook.args.iter().chain(k.return_arg.as_ref()).any(|a| {
        matches!(
            a.ty,
            spec::ArgType::Sock
                | spec::ArgType::Skb
                | spec::ArgType::Socket
                | spec::ArgType::Sockaddr
        )
    }) {
        facts
            .format("sock", "inet_sock_set_state")
            .ok()
            .and_then(|f| sock_layout(&f, SockLayout::default()).ok())
    } else {
        None
    };
    if k.syscall {
        // A syscall: a kprobe on its wrapper, or its `sys_enter_NAME` tracepoint, whose
        // record the kprobe's program rebuilds (`hooks/kprobe.rs`).
        let sys = syscall_of(call)?;
        let event = format!("sys_enter_{sys}");
        return Ok(vec![KprobeAt {
            format: syscall_format(facts, &event)?,
            subsystem: "syscalls".into(),
            event,
            exit_event: format!("sys_exit_{sys}"),
            kprobe: KprobeSite {
                generic_sock,
                ..site(call)
            },
        }]);
    }
    if k.ret && SOCKET_CALLS.contains(&call) && call != "inet_csk_accept" {
        return Err(PlaceError::SocketReturn {
            call: call.to_owned(),
        });
    }
    let trigger = match kprobe_on_tracepoint(call) {
        Ok(t) => Some(t),
        // On a kprobe (and kretprobe): the listening socket at the call, the accepted
        // one at the return.
        Err(_) if kprobes && call == "inet_csk_accept" => Some(SockLayout {
            protocol_is: 6,
            ..Default::default()
        }),
        // Any other function, on a kprobe: its argument registers.
        Err(_) if kprobes && !SOCKET_CALLS.contains(&call) => None,
        Err(e) => return Err(e),
    };
    let Some(trigger) = trigger else {
        return Ok(vec![KprobeAt {
            format: generic_format(call),
            subsystem: "kprobe".into(),
            event: call.to_owned(),
            exit_event: call.to_owned(),
            kprobe: KprobeSite {
                generic: true,
                generic_sock,
                ..site(call)
            },
        }]);
    };
    let format = facts.format("sock", "inet_sock_set_state")?;
    let mut layout = sock_layout(&format, trigger)?;
    if kprobes {
        // The kprobe fires on the call itself: no transition to wait for, and the
        // socket's state is the one at the call.
        layout.report_old = 1;
    }
    Ok(vec![KprobeAt {
        format,
        subsystem: "sock".into(),
        event: "inet_sock_set_state".into(),
        exit_event: "inet_sock_set_state".into(),
        kprobe: KprobeSite {
            sock: Some(layout),
            ..site(call)
        },
    }])
}

/// A syscall's `sys_enter_NAME` record, its fields numbered from 0 as the function's
/// arguments are: the fields after the common ones and `__syscall_nr`.
fn syscall_format(facts: &Facts, event: &str) -> Result<Format, PlaceError> {
    let mut format = facts.format("syscalls", event)?;
    format.fields.retain(|f| f.offset >= 16);
    Ok(format)
}

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

/// The syscall a `syscall: true` kprobe names: `sys_NAME`, or the wrapper itself.
pub fn syscall_of(call: &str) -> Result<String, PlaceError> {
    let name = call
        .strip_prefix(SYSCALL_WRAPPER_PREFIX)
        .or_else(|| call.strip_prefix("sys_"))
        .ok_or_else(|| PlaceError::NotSyscallName {
            call: call.to_owned(),
        })?;
    <syscalls::Sysno as std::str::FromStr>::from_str(name)
        .map(|_| name.to_owned())
        .map_err(|_| PlaceError::NoSuchSyscall {
            call: call.to_owned(),
            name: name.to_owned(),
        })
}

/// Kernel functions whose calls show as `sock:inet_sock_set_state` transitions, so that
/// a kprobe on them runs on that tracepoint: on every kernel, with or without kprobes.
/// (old states, new states, state reported: the one left or the one entered).
fn kprobe_on_tracepoint(call: &str) -> Result<SockLayout, PlaceError> {
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
            return Err(PlaceError::NeedsKprobes {
                call: other.to_owned(),
            });
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
fn sock_layout(format: &Format, trigger: SockLayout) -> Result<SockLayout, PlaceError> {
    let at = |field: &'static str| {
        format
            .fields
            .iter()
            .find(|f| f.name == field)
            .map(|f| f.offset)
            .ok_or(PlaceError::NoSockField { field })
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

/// Where a socket function read at its return runs: its kprobe and kretprobe, or the
/// syscalls that stand for it (`sys_enter_NAME` and `sys_exit_NAME`, its sockets those of
/// their file descriptors). `None`: not such a function.
fn return_sites(
    call: &str,
    kprobes: bool,
    wants_return: bool,
) -> Option<(Vec<&'static str>, AtReturn)> {
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
                arg_type: spec::ArgType::Socket,
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
                arg_type: spec::ArgType::Sock,
                flags: HOOK_ENTRY_SOCK | HOOK_FD | HOOK_RET_FD_SOCK,
                sock_types: SOCK_STREAM,
                value: wants_return,
            },
        ),
        _ => return None,
    };
    Some((if kprobes { vec![] } else { syscalls }, at))
}

/// Why a hook cannot `Set`.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error(
        "`Set` writes a USDT probe point's argument in the process's memory: it goes on `usdts`, not on {what}"
    )]
    NotUsdt { what: String },
    #[error(
        "`Set` writes argument {position} of `args` (the probe point's argument {index}) into the process's memory, and {probe}'s note passes it {how}, which a probe cannot change"
    )]
    NotInMemory {
        position: u32,
        index: u32,
        probe: String,
        how: &'static str,
    },
}

/// The USDT argument (its number in the probe point's note) that a `Set` of the
/// argument at `position` of `args` writes: one the note has in the process's memory.
pub fn set_target(unit: &Unit<'_>, position: u32) -> Result<u8, SetError> {
    let Some((probe, Some((_, notes)))) = unit.user.as_ref().map(|u| (u, u.usdt.as_ref())) else {
        let what = match &unit.user {
            Some(u) => u.label(),
            None if unit.function.is_empty() => {
                format!("tracepoint {}/{}", unit.subsystem, unit.event)
            }
            None => format!("kprobe {}", unit.function),
        };
        return Err(SetError::NotUsdt { what });
    };
    // Validated: `position` is a declared argument.
    let index = unit
        .hook
        .args
        .get(position as usize)
        .map_or(u32::MAX, |a| a.index);
    let how = match notes.get(index as usize).map(|a| a.kind) {
        Some(USDT_DEREF) => return Ok(index as u8),
        Some(USDT_REG) => "in a register",
        Some(USDT_CONST) => "as a constant",
        _ => "not at all",
    };
    Err(SetError::NotInMemory {
        position,
        index,
        probe: probe.label(),
        how,
    })
}

/// The program a kprobe hook on the function itself runs on: a BPF LSM program to
/// `Override` a `security_*` function, a kprobe that overrides the return to `Override`
/// another (where the kernel allows it), else fentry where the kernel has BPF trampolines,
/// else a kprobe (a return half: a kretprobe).
pub fn probe_program(
    kprobe: Option<&KprobeSite<'_>>,
    half: Half,
    overrides: bool,
) -> Result<Probe, OverrideError> {
    let Some(k) = kprobe else {
        return if overrides {
            Err(OverrideError::Tracepoint)
        } else {
            Ok(Probe::Kprobe)
        };
    };
    if k.lsm {
        return Ok(Probe::Lsm);
    }
    if k.raw_tp {
        return if overrides {
            Err(OverrideError::Tracepoint)
        } else {
            Ok(Probe::Kprobe)
        };
    }
    if k.user {
        return if overrides {
            Err(OverrideError::Uprobe)
        } else {
            Ok(Probe::Kprobe)
        };
    }
    if overrides {
        let call = || k.call.to_owned();
        if half != Half::Whole {
            return Err(OverrideError::Return);
        }
        if !k.on_kprobe {
            return Err(OverrideError::NotOnFunction { call: call() });
        }
        if !k.call.starts_with("security_") {
            return if k.kernel.kprobe_override {
                Ok(Probe::Override)
            } else {
                Err(OverrideError::NoKprobeOverride {
                    call: call(),
                    why: k.kernel.override_off,
                })
            };
        }
        if !k.kernel.lsm {
            return Err(OverrideError::NoLsm {
                call: call(),
                why: k.kernel.lsm_off,
            });
        }
        return Ok(Probe::Lsm);
    }
    Ok(if k.on_kprobe && half != Half::Return && k.kernel.fentry {
        Probe::Fentry
    } else {
        Probe::Kprobe
    })
}

/// What a hook point's program is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attach {
    /// A tracepoint (`policy_tp`, the hook point's id as cookie).
    Tracepoint { subsystem: String, event: String },
    /// A syscall's entry or exit on the raw `sys_enter`/`sys_exit` tracepoints (`nr`
    /// `None`: every syscall).
    RawSyscall { dir: u32, nr: Option<u32> },
    /// A kernel function: `program` at its call, or with `ret` at its return.
    Function {
        name: String,
        program: Probe,
        ret: bool,
    },
    /// Code of a binary (`policy_kp` on a uprobe).
    Uprobe(spec::Uprobe),
    /// A raw tracepoint (`raw: true`), by one program of the raw tracepoint pool.
    RawTracepoint { tracepoint: String },
}

/// A hook point: where hooks run and the record they read there. Hooks with equal
/// points share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Point {
    pub attach: Attach,
    /// `HP_KPROBE_*`, `HP_SAVE_ENTRY`, `HP_RETURN`, `HP_SOCK_RETURN`: how the record is
    /// built.
    pub flags: u32,
    pub kprobe: KprobeLayout,
    pub sock: SockLayout,
    /// `HP_USDT`: how the arguments are read.
    pub usdt: [UsdtArg; USDT_ARGS],
    /// `HP_KPROBE_GENERIC`: the fields of struct arguments read.
    pub fields: [FieldRead; MAX_FIELD_READS],
}

/// How a compiled hook reads its record, beyond its unit.
#[derive(Debug, Clone, Copy)]
pub struct Reads {
    /// Where a kprobe on the function runs.
    pub probe: Probe,
    /// The return value is a `struct sock *` whose fields the kretprobe writes.
    pub sock_return: bool,
    /// The fields of struct arguments the kprobe program reads.
    pub fields: [FieldRead; MAX_FIELD_READS],
    /// A USDT probe point some selector of which may `Set` (its own program).
    pub writes: bool,
}

/// The hook point of a hook compiled from `unit` into `config`. Syscall hooks run on
/// the raw syscall tracepoints where `kernel` allows (see [`syscall_route`]).
pub fn point(unit: &Unit<'_>, config: &HookConfig, reads: Reads, kernel: Kernel) -> Point {
    let mut flags = match unit.half {
        Half::Whole => 0,
        Half::Entry => HP_SAVE_ENTRY,
        Half::Return => HP_RETURN,
    };
    let k = unit.kprobe.as_ref();
    let on_function = k.is_some_and(|k| k.on_kprobe);
    if let Some(k) = k
        && k.on_kprobe
        && unit.half != Half::Return
    {
        // The record the kprobe program builds.
        if k.generic {
            flags |= HP_KPROBE_GENERIC;
            if unit.user.as_ref().is_some_and(|u| u.usdt.is_some()) {
                flags |= HP_USDT;
            }
        } else if k.sock.is_none() {
            flags |= HP_KPROBE_SYSCALL;
        }
    }
    if reads.sock_return {
        flags |= HP_SOCK_RETURN;
    }
    let attach = if let Some(u) = &unit.user {
        Attach::Uprobe(spec::Uprobe {
            writes: reads.writes,
            ..u.attach.clone()
        })
    } else if k.is_some_and(|k| k.raw_tp) {
        Attach::RawTracepoint {
            tracepoint: unit.event.clone(),
        }
    } else if on_function {
        Attach::Function {
            name: unit.function.clone(),
            program: reads.probe,
            ret: unit.half == Half::Return,
        }
    } else {
        match syscall_route(unit, config, kernel) {
            Some((dir, nr)) => Attach::RawSyscall { dir, nr },
            None => Attach::Tracepoint {
                subsystem: unit.subsystem.clone(),
                event: unit.event.clone(),
            },
        }
    };
    // A return joins its entry's record: the halves of one hook share the layout.
    Point {
        attach,
        flags,
        kprobe: if flags & HP_KPROBE_GENERIC != 0 {
            KprobeLayout {
                sock_types: 0,
                ..config.kprobe
            }
        } else {
            KprobeLayout::default()
        },
        sock: if on_function {
            config.sock
        } else {
            SockLayout::default()
        },
        usdt: unit
            .user
            .as_ref()
            .and_then(|u| u.usdt.as_ref())
            .map(|(_, args)| *args)
            .unwrap_or_default(),
        fields: if flags & HP_KPROBE_GENERIC != 0 {
            reads.fields
        } else {
            Default::default()
        },
    }
}

/// Where a hook on a syscall tracepoint runs on the raw syscall tracepoints: for
/// `raw_syscalls/sys_{enter,exit}` (where the kernel's `pt_regs` layout is known), and
/// with `--syscall-raw-tracepoints` for `syscalls/sys_{enter,exit}_NAME` (NAME a syscall
/// of this architecture) too, when every argument read is the syscall number (byte 8) or
/// an argument (enter) or return value (exit) word, which `SyscallRecord` reproduces.
/// Measured on this project's machines, a `syscalls/*` tracepoint costs the syscalls it
/// does not trace less (about 29 ns) than a BPF program on the raw one that returns at
/// once (about 76 ns): hence its own tracepoint by default.
fn syscall_route(
    unit: &Unit<'_>,
    config: &HookConfig,
    kernel: Kernel,
) -> Option<(u32, Option<u32>)> {
    use tracer_common::policy::{
        ARG_CURRENT_PID, ARG_INT, ARG_KERNEL_STRING, ARG_SYSCALL64, ARG_UINT, ARG_USER_STRING,
    };
    if unit.kprobe.is_some_and(|k| k.on_kprobe) || unit.half != Half::Whole {
        // Return probes' halves find each other by hook point, on their own programs.
        return None;
    }
    let (dir, nr) = match (unit.subsystem.as_str(), unit.event.as_str()) {
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
    if !kernel.raw_syscalls || (nr.is_some() && !kernel.raw_numbered) {
        return None;
    }
    let last = if dir == SYSCALL_ENTER { 16 + 5 * 8 } else { 16 };
    let readable = config.args[..config.nargs as usize].iter().all(|a| {
        a.kind == ARG_CURRENT_PID
            || matches!(
                a.kind,
                ARG_INT | ARG_UINT | ARG_SYSCALL64 | ARG_USER_STRING | ARG_KERNEL_STRING
            ) && (a.offset == 8 || (a.offset >= 16 && a.offset <= last && a.offset % 8 == 0))
    });
    readable.then_some((dir, nr))
}
