//! Selectors to the kernel's [`SelectorConfig`], one function per matcher, as
//! Tetragon's `ParseMatch*`: each lowers its filter, registers the string values and
//! `FOLLOW` bits it needs, and says what the hook point's shared filters can use (the
//! process verdict's dependencies, the argument gate's values).

use tracer_common::policy::{
    ACTION_DNSLOOKUP, ACTION_GETURL, ACTION_NOPOST, ACTION_NOTIFY_ENFORCER, ACTION_OVERRIDE,
    ACTION_POST, ACTION_SET, ACTION_SIGKILL, ACTION_SIGNAL, ARG_CHAR_ARRAY, ARG_CURRENT_PID,
    ARG_DATA_LOC, ARG_INT, ARG_KERNEL_STRING, ARG_NEEDS_EQUAL, ARG_NEEDS_POSTFIX, ARG_NEEDS_PREFIX,
    ARG_SYSCALL64, ARG_UINT, ARG_USER_STRING, ArgConfig, ArgFilter, BIN_IN, BIN_NOT_IN,
    BIN_NOT_POSTFIX, BIN_NOT_PREFIX, BIN_POSTFIX, BIN_PREFIX, BinFollow, BinaryFilter,
    CAPS_EFFECTIVE, CAPS_INHERITABLE, CAPS_PERMITTED, CapFilter, HOOK_BINARY_EQUAL,
    HOOK_BINARY_POSTFIX, HOOK_BINARY_PREFIX, HP_DEP_CRED, HP_DEP_NS, HP_VERDICT, HookConfig,
    MAX_ARG_FILTERS, MAX_CAP_FILTERS, MAX_INT_VALUES, MAX_NS_FILTERS, MAX_NS_VALUES, MAX_PIDS,
    NS_CGROUP, NS_IPC, NS_MNT, NS_NET, NS_PID, NS_PID_FOR_CHILDREN, NS_TIME, NS_TIME_FOR_CHILDREN,
    NS_USER, NS_UTS, NsFilter, OP_DADDR, OP_DPORT, OP_DPORT_PRIV, OP_EQUAL, OP_FAMILY, OP_GT,
    OP_LT, OP_MASK, OP_NOT_EQUAL, OP_NOT_POSTFIX, OP_NOT_PREFIX, OP_POSTFIX, OP_PREFIX,
    OP_PROTOCOL, OP_SADDR, OP_SPORT, OP_SPORT_PRIV, OP_STATE, PIDS_IN, PIDS_NOT_IN, PidFilter,
    RATE_GLOBAL, RATE_PROCESS, RATE_THREAD, SOCK_ARG_MASK, SOCK_TRACK, SOCK_UNTRACK, STACK_KERNEL,
    STACK_USER, STRING_MAX, SelectorConfig,
};

use super::{ArgMeta, ArgOut, Ctx, Follow, GateFilter, GateValues, HookError, StrEntry, StrMap};
use crate::policy::{
    facts::HostNsError,
    spec::{self, ArgOp, BinaryOp, SetOp, SockOp},
};

/// Why a selector, or one of its `matchArgs` filters, does not compile (see
/// [`HookError::Selector`] and [`HookError::MatchArgs`]).
#[derive(Debug, thiserror::Error)]
pub enum SelectorError {
    #[error("all {bits} followForks/followChildren filters are in use")]
    FollowBits { bits: u32 },
    #[error("at most one matchPIDs of {max} values is supported")]
    Pids { max: usize },
    #[error("at most {max} matchNamespaces filters")]
    Namespaces { max: usize },
    #[error("matchNamespaces[{filter}]: at most {max} values")]
    NamespaceValues { filter: usize, max: usize },
    #[error(transparent)]
    HostNs(#[from] HostNsError),
    #[error("at most {max} matchCapabilities and matchCapabilityChanges filters per selector")]
    Capabilities { max: usize },
    #[error("at most {max} matchArgs and matchReturnArgs filters per selector")]
    ArgFilters { max: usize },
    #[error("matchReturnArgs needs a return probe")]
    NoReturn,
    // The `matchArgs` filters'.
    #[error("argument {index} is not declared")]
    Undeclared { index: u32 },
    #[error(
        "argument {index} is a `cred`, which is reported, not filtered on yet (filter on the process's capabilities with matchCapabilities)"
    )]
    Cred { index: u32 },
    #[error(
        "argument {index} is a `{ty}`, which is reported, not filtered on yet; filter on another argument, or on the process"
    )]
    Struct { index: u32, ty: &'static str },
    #[error("argument {index} is not a socket: the socket operators do not apply")]
    NotSocket { index: u32 },
    /// `kind`: `string` or `integer`.
    #[error("this operator does not apply to {kind} argument {index}")]
    Operator { kind: &'static str, index: u32 },
    #[error("a string filter takes strings")]
    NotStrings,
    #[error("at most {max} integer values per filter (got {got})")]
    IntValues { max: usize, got: usize },
    #[error("`{text}` is not an integer")]
    NotInteger { text: String },
    #[error("an integer filter takes integers")]
    NotIntegers,
    #[error("argument {index} is a socket: its operators are those of sockets (DAddr, DPort, ...)")]
    SocketOperators { index: u32 },
    #[error("an address filter takes address ranges")]
    NotRanges,
    #[error("at most {max} values per socket filter (got {got})")]
    SockValues { max: usize, got: usize },
    #[error("a socket filter takes numbers")]
    NotNumbers,
}

/// What a selector's filters refer to: the hook's declared arguments, what each is, and
/// where the return value is (a return half).
pub(super) struct Inputs<'a> {
    pub args: &'a [spec::Arg],
    pub metas: &'a [ArgMeta],
    pub ret: Option<usize>,
}

/// A compiled selector.
pub(super) struct Compiled {
    pub config: SelectorConfig,
    /// It has an `Override` action.
    pub overrides: bool,
    /// `HP_VERDICT` and `HP_DEP_*`: its filters on the process, and what they read.
    pub process: u32,
    /// `HOOK_BINARY_*`: the binary's lookup keys it needs.
    pub hook_flags: u32,
    /// Its filters an argument gate can check.
    pub gates: Vec<GateFilter>,
}

/// Selector `s` of a hook whose arguments are `inputs`, into `config` (whose arguments
/// get the lookup keys its string filters need).
pub(super) fn selector(
    sel: &spec::Selector,
    s: usize,
    inputs: &Inputs<'_>,
    config: &mut HookConfig,
    ctx: &mut Ctx<'_>,
) -> Result<Compiled, HookError> {
    let at = |source| HookError::Selector {
        selector: s,
        source,
    };
    let mut out = Compiled {
        config: actions(sel),
        overrides: sel
            .actions
            .iter()
            .any(|a| matches!(a, spec::Action::Override(_))),
        process: 0,
        hook_flags: 0,
        gates: Vec::new(),
    };
    if let Some(m) = &sel.pids {
        out.config.pids = match_pids(m, ctx).map_err(at)?;
        out.process |= HP_VERDICT;
    }
    if let Some(m) = &sel.binaries {
        let (binary, flag) = match_binaries(m, ctx).map_err(at)?;
        out.config.binary = binary;
        out.hook_flags |= flag;
        out.process |= HP_VERDICT;
    }
    if !sel.namespaces.is_empty() {
        let (filters, deps) = match_namespaces(&sel.namespaces, ctx).map_err(at)?;
        out.config.namespaces = filters;
        out.process |= HP_VERDICT | deps;
    }
    if !sel.capabilities.is_empty() {
        out.config.caps = match_capabilities(&sel.capabilities, ctx).map_err(at)?;
        out.process |= HP_VERDICT | HP_DEP_CRED;
    }
    let nfilters = sel.args.len() + sel.return_args.len();
    if nfilters > MAX_ARG_FILTERS {
        return Err(at(SelectorError::ArgFilters {
            max: MAX_ARG_FILTERS,
        }));
    }
    out.config.nfilters = nfilters as u8;
    let filters = sel
        .args
        .iter()
        .map(|m| (m, false))
        .chain(sel.return_args.iter().map(|m| (m, true)));
    for (f, (m, on_return)) in filters.enumerate() {
        let place = |source| HookError::MatchArgs {
            selector: s,
            filter: f,
            source,
        };
        let arg = if on_return {
            inputs.ret.ok_or(at(SelectorError::NoReturn))?
        } else {
            inputs
                .args
                .iter()
                .position(|a| a.index == m.index)
                .ok_or(place(SelectorError::Undeclared { index: m.index }))?
        };
        let (filter, gate) = match_arg(m, arg, inputs.metas, config, ctx).map_err(place)?;
        out.config.filters[f] = filter;
        out.gates.extend(gate);
    }
    Ok(out)
}

/// The actions of a selector (none: `Post`), its signal, `Override` error and rate limit.
fn actions(sel: &spec::Selector) -> SelectorConfig {
    let mut sc = SelectorConfig {
        actions: if sel.actions.is_empty() {
            ACTION_POST
        } else {
            0
        },
        rate_limit_ns: sel
            .rate_limit_secs
            .map_or(0, |s| s.saturating_mul(1_000_000_000)),
        rate_scope: match sel.rate_scope {
            spec::RateScope::Thread => RATE_THREAD,
            spec::RateScope::Process => RATE_PROCESS,
            spec::RateScope::Global => RATE_GLOBAL,
        },
        stack: if sel.kernel_stack { STACK_KERNEL } else { 0 }
            | if sel.user_stack { STACK_USER } else { 0 },
        ..Default::default()
    };
    for a in &sel.actions {
        match a {
            spec::Action::Post => sc.actions |= ACTION_POST,
            spec::Action::NoPost => sc.actions |= ACTION_NOPOST,
            spec::Action::Sigkill => sc.actions |= ACTION_SIGKILL | ACTION_POST,
            spec::Action::Signal(sig) => {
                sc.actions |= ACTION_SIGNAL | ACTION_POST;
                // Validated as a signal number (1 to 64).
                sc.signal = u8::try_from(*sig).unwrap_or(u8::MAX);
            }
            spec::Action::Override(error) => {
                sc.actions |= ACTION_OVERRIDE | ACTION_POST;
                sc.override_error = *error;
            }
            // Made by the agent from the event the kernel posts.
            spec::Action::Request(crate::policy::requests::Request::GetUrl(_)) => {
                sc.actions |= ACTION_GETURL | ACTION_POST;
            }
            spec::Action::Request(crate::policy::requests::Request::DnsLookup(_)) => {
                sc.actions |= ACTION_DNSLOOKUP | ACTION_POST;
            }
            spec::Action::Sock { track, arg } => {
                sc.actions |= ACTION_POST;
                sc.sock_action = sock_action(*track, *arg as usize);
            }
            spec::Action::NotifyEnforcer { error, signal } => {
                sc.actions |= ACTION_NOTIFY_ENFORCER | ACTION_POST;
                sc.override_error = *error;
                // Validated: 0 to 64.
                sc.signal = u8::try_from(*signal).unwrap_or(0);
            }
            spec::Action::Set { arg, value } => {
                sc.actions |= ACTION_SET | ACTION_POST;
                sc.set_arg = *arg as u8;
                sc.override_error = *value as i32;
            }
        }
    }
    sc
}

/// `SelectorConfig::sock_action`: track (or untrack) the socket argument at `arg`.
pub(super) fn sock_action(track: bool, arg: usize) -> u8 {
    (if track { SOCK_TRACK } else { SOCK_UNTRACK }) | (arg as u8 & SOCK_ARG_MASK)
}

fn set_op(op: SetOp) -> u8 {
    match op {
        SetOp::In => PIDS_IN,
        SetOp::NotIn => PIDS_NOT_IN,
    }
}

fn match_pids(m: &spec::MatchPids, ctx: &mut Ctx<'_>) -> Result<PidFilter, SelectorError> {
    if m.values.len() > MAX_PIDS {
        return Err(SelectorError::Pids { max: MAX_PIDS });
    }
    let mut pf = PidFilter {
        op: set_op(m.op),
        n: m.values.len() as u8,
        namespace: u8::from(m.namespace),
        ..Default::default()
    };
    pf.values[..m.values.len()].copy_from_slice(&m.values);
    if m.follow_forks {
        let bit = ctx.ids.follow_bit()?;
        pf.follow = bit + 1;
        ctx.follow.push(Follow::Pids {
            bit,
            pids: m.values.clone(),
            namespace: m.namespace,
        });
    }
    Ok(pf)
}

/// The filter, and the `HOOK_BINARY_*` lookup keys it needs.
fn match_binaries(
    m: &spec::MatchBinaries,
    ctx: &mut Ctx<'_>,
) -> Result<(BinaryFilter, u32), SelectorError> {
    let (op, map, flag) = match m.op {
        BinaryOp::In => (BIN_IN, StrMap::Equal, HOOK_BINARY_EQUAL),
        BinaryOp::NotIn => (BIN_NOT_IN, StrMap::Equal, HOOK_BINARY_EQUAL),
        BinaryOp::Prefix => (BIN_PREFIX, StrMap::Prefix, HOOK_BINARY_PREFIX),
        BinaryOp::NotPrefix => (BIN_NOT_PREFIX, StrMap::Prefix, HOOK_BINARY_PREFIX),
        BinaryOp::Postfix => (BIN_POSTFIX, StrMap::Postfix, HOOK_BINARY_POSTFIX),
        BinaryOp::NotPostfix => (BIN_NOT_POSTFIX, StrMap::Postfix, HOOK_BINARY_POSTFIX),
    };
    let id = ctx.ids.filter();
    let mut filter = BinaryFilter {
        op,
        id,
        ..Default::default()
    };
    if m.follow_children {
        let bit = ctx.ids.follow_bit()?;
        filter.follow = bit + 1;
        ctx.follow.push(Follow::Binary(BinFollow {
            op,
            bit,
            id,
            ..Default::default()
        }));
    }
    for v in &m.values {
        push_string(ctx, map, id, v.as_bytes());
    }
    Ok((filter, flag))
}

/// The filters, and the `HP_DEP_*` their namespaces are read from.
fn match_namespaces(
    ms: &[spec::MatchNamespace],
    ctx: &Ctx<'_>,
) -> Result<([NsFilter; MAX_NS_FILTERS], u32), SelectorError> {
    if ms.len() > MAX_NS_FILTERS {
        return Err(SelectorError::Namespaces {
            max: MAX_NS_FILTERS,
        });
    }
    let mut out = [NsFilter::default(); MAX_NS_FILTERS];
    let mut deps = 0;
    for (k, m) in ms.iter().enumerate() {
        if m.values.len() > MAX_NS_VALUES {
            return Err(SelectorError::NamespaceValues {
                filter: k,
                max: MAX_NS_VALUES,
            });
        }
        use spec::Namespace as N;
        let ns = match m.ns {
            N::Uts => NS_UTS,
            N::Ipc => NS_IPC,
            N::Mnt => NS_MNT,
            N::Pid => NS_PID,
            N::PidForChildren => NS_PID_FOR_CHILDREN,
            N::Net => NS_NET,
            N::Time => NS_TIME,
            N::TimeForChildren => NS_TIME_FOR_CHILDREN,
            N::Cgroup => NS_CGROUP,
            N::User => NS_USER,
        };
        // The user namespace hangs off the credentials, the pid namespace off the pid
        // (fixed for the process's life), the others off `nsproxy`.
        deps |= match m.ns {
            N::User => HP_DEP_CRED,
            N::Pid => 0,
            _ => HP_DEP_NS,
        };
        let mut nf = NsFilter {
            ns,
            op: set_op(m.op),
            n: m.values.len() as u8,
            ..Default::default()
        };
        for (j, v) in m.values.iter().enumerate() {
            nf.values[j] = match v {
                spec::NsValue::Host => ctx.facts.host_ns(m.ns.proc_name())?,
                spec::NsValue::Inode(n) => *n,
            };
        }
        out[k] = nf;
    }
    Ok((out, deps))
}

fn match_capabilities(
    ms: &[spec::MatchCapabilities],
    ctx: &Ctx<'_>,
) -> Result<[CapFilter; MAX_CAP_FILTERS], SelectorError> {
    if ms.len() > MAX_CAP_FILTERS {
        return Err(SelectorError::Capabilities {
            max: MAX_CAP_FILTERS,
        });
    }
    let mut out = [CapFilter::default(); MAX_CAP_FILTERS];
    for (k, m) in ms.iter().enumerate() {
        out[k] = CapFilter {
            set: match m.set {
                spec::CapSet::Effective => CAPS_EFFECTIVE,
                spec::CapSet::Permitted => CAPS_PERMITTED,
                spec::CapSet::Inheritable => CAPS_INHERITABLE,
            },
            op: set_op(m.op),
            change: u8::from(m.change),
            mask: m.mask,
            host_userns: if m.namespace_capability {
                ctx.facts.host_ns("user")?
            } else {
                0
            },
            ..Default::default()
        };
    }
    Ok(out)
}

/// A `matchArgs` filter on argument position `arg`, and what a gate can check of it.
fn match_arg(
    m: &spec::MatchArg,
    arg: usize,
    metas: &[ArgMeta],
    config: &mut HookConfig,
    ctx: &mut Ctx<'_>,
) -> Result<(ArgFilter, Option<GateFilter>), SelectorError> {
    let out = metas[arg].out;
    if matches!(out, ArgOut::Sock | ArgOut::Skb | ArgOut::Sockaddr) {
        return Ok((sock_filter(m, arg, ctx)?, None));
    }
    if out == ArgOut::Cred {
        return Err(SelectorError::Cred { index: m.index });
    }
    if let ArgOut::Struct(t) = out
        && t != super::structs::StructType::NetDevice
    {
        return Err(SelectorError::Struct {
            index: m.index,
            ty: t.name(),
        });
    }
    let is_string = out.is_string();
    let op = match (m.op, is_string) {
        (ArgOp::Equal, _) => OP_EQUAL,
        (ArgOp::NotEqual, _) => OP_NOT_EQUAL,
        (ArgOp::GreaterThan, false) => OP_GT,
        (ArgOp::LessThan, false) => OP_LT,
        (ArgOp::Mask, false) => OP_MASK,
        (ArgOp::Prefix, true) => OP_PREFIX,
        (ArgOp::NotPrefix, true) => OP_NOT_PREFIX,
        (ArgOp::Postfix, true) => OP_POSTFIX,
        (ArgOp::NotPostfix, true) => OP_NOT_POSTFIX,
        (ArgOp::Sock { .. }, _) => return Err(SelectorError::NotSocket { index: m.index }),
        (_, string) => {
            return Err(SelectorError::Operator {
                kind: if string { "string" } else { "integer" },
                index: m.index,
            });
        }
    };
    let mut af = ArgFilter {
        arg: arg as u8,
        op,
        ..Default::default()
    };
    let read = ArgConfig {
        flags: 0,
        ..config.args[arg]
    };
    if !is_string {
        let values = ints(m)?;
        af.nvals = values.len() as u8;
        af.values[..values.len()].copy_from_slice(&values);
        let gateable = op == OP_EQUAL
            && matches!(
                read.kind,
                ARG_INT | ARG_UINT | ARG_SYSCALL64 | ARG_CURRENT_PID
            );
        let gate = gateable.then_some(GateFilter {
            read,
            values: GateValues::Ints(values),
        });
        return Ok((af, gate));
    }
    let (map, needs) = match op {
        OP_EQUAL | OP_NOT_EQUAL => (StrMap::Equal, ARG_NEEDS_EQUAL),
        OP_PREFIX | OP_NOT_PREFIX => (StrMap::Prefix, ARG_NEEDS_PREFIX),
        _ => (StrMap::Postfix, ARG_NEEDS_POSTFIX),
    };
    config.args[arg].flags |= needs;
    af.id = ctx.ids.filter();
    let mut strings = Vec::new();
    for v in &m.values {
        let text = match v {
            spec::Value::Text { text, .. } => text.as_bytes(),
            _ => return Err(SelectorError::NotStrings),
        };
        push_string(ctx, map, af.id, text);
        strings.push(text[..text.len().min(STRING_MAX - 1)].to_vec());
    }
    let gateable = matches!(
        read.kind,
        ARG_USER_STRING | ARG_KERNEL_STRING | ARG_CHAR_ARRAY | ARG_DATA_LOC
    );
    let gate = (gateable && matches!(op, OP_EQUAL | OP_PREFIX)).then_some(GateFilter {
        read,
        values: GateValues::Strings {
            values: strings,
            prefix: op == OP_PREFIX,
        },
    });
    Ok((af, gate))
}

/// The integer values of a filter on an integer argument.
fn ints(m: &spec::MatchArg) -> Result<Vec<u64>, SelectorError> {
    if m.values.len() > MAX_INT_VALUES {
        return Err(SelectorError::IntValues {
            max: MAX_INT_VALUES,
            got: m.values.len(),
        });
    }
    m.values
        .iter()
        .map(|v| match v {
            spec::Value::Text { int: Some(n), .. } => Ok(*n as u64),
            spec::Value::Text { text, .. } => Err(SelectorError::NotInteger { text: text.clone() }),
            _ => Err(SelectorError::NotIntegers),
        })
        .collect()
}

/// Records string value `value` of filter `id` for map `map` (reversed for `Postfix`).
fn push_string(ctx: &mut Ctx<'_>, map: StrMap, id: u32, value: &[u8]) {
    let mut bytes = value.to_vec();
    bytes.truncate(STRING_MAX - 1);
    if map == StrMap::Postfix {
        bytes.reverse();
    }
    ctx.strings.push(StrEntry {
        map,
        filter_id: id,
        value: bytes,
    });
}

/// A socket operator on argument position `arg`.
fn sock_filter(
    m: &spec::MatchArg,
    arg: usize,
    ctx: &mut Ctx<'_>,
) -> Result<ArgFilter, SelectorError> {
    let ArgOp::Sock { op, negate } = m.op else {
        return Err(SelectorError::SocketOperators { index: m.index });
    };
    let op_code = match op {
        SockOp::SAddr => OP_SADDR,
        SockOp::DAddr => OP_DADDR,
        SockOp::SPort => OP_SPORT,
        SockOp::DPort => OP_DPORT,
        SockOp::SPortPriv => OP_SPORT_PRIV,
        SockOp::DPortPriv => OP_DPORT_PRIV,
        SockOp::Protocol => OP_PROTOCOL,
        SockOp::Family => OP_FAMILY,
        SockOp::State => OP_STATE,
    };
    let mut af = ArgFilter {
        arg: arg as u8,
        op: op_code,
        negate: u8::from(negate),
        ..Default::default()
    };
    match op {
        SockOp::SAddr | SockOp::DAddr => {
            af.id = ctx.ids.filter();
            for v in &m.values {
                let spec::Value::Cidr(c) = v else {
                    return Err(SelectorError::NotRanges);
                };
                ctx.strings.push(StrEntry {
                    map: StrMap::Cidr(c.bits),
                    filter_id: af.id,
                    value: c.addr.to_vec(),
                });
            }
        }
        SockOp::SPortPriv | SockOp::DPortPriv => {}
        _ => {
            if m.values.len() > MAX_INT_VALUES {
                return Err(SelectorError::SockValues {
                    max: MAX_INT_VALUES,
                    got: m.values.len(),
                });
            }
            af.nvals = m.values.len() as u8;
            for (k, v) in m.values.iter().enumerate() {
                let spec::Value::Number(n) = v else {
                    return Err(SelectorError::NotNumbers);
                };
                af.values[k] = u64::from(*n);
            }
        }
    }
    Ok(af)
}
