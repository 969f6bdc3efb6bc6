//! Selectors: each filter's operator and values read into their types, and the actions.

use marked_yaml::Spanned;

use super::{
    Check, List,
    names::{
        ACTIONS, ACTIONS_UNSUPPORTED, CAPABILITIES, CAPABILITY_TYPES, IN_NOT_IN,
        MATCH_ARGS_OPERATORS, MATCH_ARGS_UNSUPPORTED, MATCH_BINARIES_OPERATORS, RATE_LIMIT_SCOPES,
        parse_int, parse_rate_limit,
    },
};
use crate::policy::{
    limits::{MAX_MATCH_BINARIES, MAX_POSTFIX, MAX_STRING},
    model::{
        MatchAction, MatchArgs, MatchBinaries, MatchCapabilities, MatchNamespaces, MatchPids,
        Selector,
    },
    requests::Request,
    sock, spec,
};

/// The arguments a hook declares, as its `matchArgs` find them.
pub(super) struct Args<'a> {
    pub args: &'a [spec::Arg],
    /// An index that names no declared argument is a position in `args` (tracepoints).
    pub positional: bool,
    /// Declared with a type already refused: their filters are not checked.
    pub refused: &'a [u32],
}

impl Args<'_> {
    /// The argument `index` names: the one declared with it, else (tracepoints) the one
    /// at that position, as Tetragon reads `index: 0` on `raw_syscalls/sys_enter` with
    /// only `- index: 4` declared.
    fn find(&self, index: u32) -> Option<&spec::Arg> {
        self.args.iter().find(|a| a.index == index).or_else(|| {
            self.positional
                .then(|| usize::try_from(index).ok().and_then(|i| self.args.get(i)))
                .flatten()
        })
    }
}

pub(super) fn selector(
    c: &mut Check,
    s: &Spanned<Selector>,
    path: &str,
    args: &Args<'_>,
    lists: &[List],
) -> spec::Selector {
    for (field, name) in [
        (&s.match_data, "matchData"),
        (&s.match_parent_binaries, "matchParentBinaries"),
        (&s.match_namespace_changes, "matchNamespaceChanges"),
        (&s.match_workloads, "matchWorkloads"),
        (&s.match_return_actions, "matchReturnActions"),
        (&s.macros, "macros"),
    ] {
        c.unsupported(field, &format!("{path}.{name}"), &format!("`{name}`"));
    }
    let mut out = spec::Selector {
        return_args: s
            .match_return_args
            .iter()
            .enumerate()
            .filter_map(|(i, m)| return_arg(c, m, &format!("{path}.matchReturnArgs[{i}]")))
            .collect(),
        args: s
            .match_args
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match_args(c, m, &format!("{path}.matchArgs[{i}]"), args, lists))
            .collect(),
        ..Default::default()
    };
    c.at_most(
        &s.match_binaries,
        |m| Some(*m.operator.span()),
        MAX_MATCH_BINARIES,
        &format!("{path}.matchBinaries"),
        "matchBinaries filters",
        s.span(),
    );
    out.binaries = s
        .match_binaries
        .first()
        .and_then(|m| binaries(c, m, &format!("{path}.matchBinaries[0]")));
    // Every matchPIDs filter read (each error said), folded into one; none once any
    // fails.
    for (i, m) in s.match_pids.iter().enumerate() {
        let next = pids(c, m, &format!("{path}.matchPIDs[{i}]"));
        out.pids = match (i, out.pids.take(), next) {
            (0, _, next) => next,
            (_, Some(a), Some(b)) => merge_pids(a, b)
                .map_err(|why| {
                    c.at(
                        m.operator.span(),
                        format!("{path}.matchPIDs[{i}]"),
                        why,
                        None,
                    );
                })
                .ok(),
            _ => None,
        };
    }
    out.namespaces = s
        .match_namespaces
        .iter()
        .enumerate()
        .filter_map(|(i, m)| namespaces(c, m, &format!("{path}.matchNamespaces[{i}]")))
        .collect();
    for (i, m) in s.match_capabilities.iter().enumerate() {
        let p = format!("{path}.matchCapabilities[{i}]");
        out.capabilities.extend(capabilities(c, m, &p, false));
    }
    for (i, m) in s.match_capability_changes.iter().enumerate() {
        let p = format!("{path}.matchCapabilityChanges[{i}]");
        out.capabilities.extend(capabilities(c, m, &p, true));
    }
    for (i, a) in s.match_actions.iter().enumerate() {
        action(c, a, &format!("{path}.matchActions[{i}]"), args, &mut out);
    }
    out
}

/// A value of a filter on an integer or a string, or of a `list:` (its syscalls).
fn values(c: &mut Check, m: &MatchArgs, p: &str, lists: &[List]) -> Vec<spec::Value> {
    let mut out = Vec::new();
    for (j, v) in m.values.iter().enumerate() {
        let vp = format!("{p}.values[{j}]");
        if let Some(name) = v.strip_prefix("list:") {
            match lists.iter().find(|l| l.name == name) {
                Some(l) => out.extend(l.syscalls.iter().map(|nr| spec::Value::Text {
                    text: nr.to_string(),
                    int: Some(i128::from(*nr)),
                })),
                None => c.at(
                    v.span(),
                    vp,
                    format!("`{}` names no list of `spec.lists`", v.as_str()),
                    None,
                ),
            }
            continue;
        }
        // A C string ends at its NUL: `"security.capability\0"` (as Tetragon's examples
        // write it) is `security.capability`.
        let text = v.as_str();
        out.push(spec::Value::Text {
            text: text.strip_suffix('\0').unwrap_or(text).to_owned(),
            int: parse_int(v),
        });
    }
    out
}

fn match_args(
    c: &mut Check,
    m: &MatchArgs,
    p: &str,
    args: &Args<'_>,
    lists: &[List],
) -> Option<spec::MatchArg> {
    c.unsupported(&m.args, &format!("{p}.args"), "`args`");
    let Some(arg) = args.find(*m.index) else {
        if args.refused.contains(&*m.index) {
            return None;
        }
        let (message, fix) = if args.positional {
            (
                format!(
                    "argument {} is neither a declared argument's `index` nor a position in `args` (it has {})",
                    *m.index,
                    args.args.len()
                ),
                format!(
                    "add `- index: {}` under `args:`, or write the position of the argument in `args` (from 0)",
                    *m.index
                ),
            )
        } else {
            (
                format!(
                    "argument {} is not declared in this hook's `args`",
                    *m.index
                ),
                format!("add `- index: {}` under `args:`", *m.index),
            )
        };
        c.at(m.index.span(), format!("{p}.index"), message, Some(fix));
        return None;
    };
    let name = sock::canonical(m.operator.as_str());
    if sock::OPERATORS.contains(&name) {
        return sock_filter(c, m, p, arg, name);
    }
    c.filter_values(&m.values, m.operator.span(), p);
    let op = operator(c, &m.operator, p)?;
    if arg.ty.is_socket() {
        c.at(
            m.operator.span(),
            format!("{p}.operator"),
            format!(
                "argument {} is a socket: its operators are {}",
                *m.index,
                sock::OPERATORS.join(", ")
            ),
            None,
        );
        return None;
    }
    if op.is_numeric() && arg.ty.is_string() {
        c.at(
            m.operator.span(),
            format!("{p}.operator"),
            format!(
                "`{}` compares numbers, and argument {} is a string",
                m.operator.as_str(),
                *m.index
            ),
            None,
        );
    }
    let values = values(c, m, p, lists);
    for (j, (v, spanned)) in values.iter().zip(&m.values).enumerate() {
        let vp = format!("{p}.values[{j}]");
        let spec::Value::Text { text, int } = v else {
            continue;
        };
        if spanned.starts_with("list:") {
            continue;
        }
        if op.is_numeric() && int.is_none() {
            c.at(
                spanned.span(),
                vp,
                format!("`{text}` is not a whole number (decimal or 0x hex)"),
                None,
            );
        } else if text.len() > MAX_STRING {
            c.at(
                spanned.span(),
                vp,
                format!(
                    "the value is {} bytes, more than {MAX_STRING} (the longest string the tracer captures)",
                    text.len()
                ),
                None,
            );
        } else if matches!(op, spec::ArgOp::Postfix | spec::ArgOp::NotPostfix)
            && text.len() > MAX_POSTFIX
        {
            c.at(
                spanned.span(),
                vp,
                format!(
                    "a Postfix value is at most {MAX_POSTFIX} bytes, and this one is {}",
                    text.len()
                ),
                Some(format!("keep its last {MAX_POSTFIX} bytes")),
            );
        }
    }
    Some(spec::MatchArg {
        index: arg.index,
        op,
        values,
    })
}

/// An operator of `matchArgs` on an integer or a string.
fn operator(c: &mut Check, op: &Spanned<String>, p: &str) -> Option<spec::ArgOp> {
    use spec::ArgOp as O;
    if !c.one_of(
        op,
        &format!("{p}.operator"),
        "matchArgs operator",
        MATCH_ARGS_OPERATORS,
        MATCH_ARGS_UNSUPPORTED,
    ) {
        return None;
    }
    Some(match op.as_str() {
        // A value in the set of `values` (`list:` syscalls among them): what `Equal`
        // with several values is.
        "Equal" | "InMap" => O::Equal,
        "NotEqual" | "NotInMap" => O::NotEqual,
        "Prefix" => O::Prefix,
        "NotPrefix" => O::NotPrefix,
        "Postfix" => O::Postfix,
        "NotPostfix" => O::NotPostfix,
        "GT" | "GreaterThan" => O::GreaterThan,
        "LT" | "LessThan" => O::LessThan,
        _ => O::Mask,
    })
}

/// A socket operator (`DAddr`, `NotDPort`, ...) on a `sock` argument, its values read.
fn sock_filter(
    c: &mut Check,
    m: &MatchArgs,
    p: &str,
    arg: &spec::Arg,
    name: &str,
) -> Option<spec::MatchArg> {
    use spec::SockOp as S;
    if !arg.ty.is_socket() {
        c.at(
            m.operator.span(),
            format!("{p}.operator"),
            format!(
                "`{}` compares a socket's fields, and argument {} is not of type `sock` (or `socket`)",
                m.operator.as_str(),
                *m.index
            ),
            None,
        );
        return None;
    }
    let (bare, negate) = match name.strip_prefix("Not") {
        Some(rest) => (rest, true),
        None => (name, false),
    };
    let op = match bare {
        "SAddr" => S::SAddr,
        "DAddr" => S::DAddr,
        "SPort" => S::SPort,
        "DPort" => S::DPort,
        "SPortPriv" => S::SPortPriv,
        "DPortPriv" => S::DPortPriv,
        "Protocol" => S::Protocol,
        "Family" => S::Family,
        _ => S::State,
    };
    let op = spec::ArgOp::Sock { op, negate };
    if sock::takes_no_values(name) {
        if !m.values.is_empty() {
            c.at(
                m.operator.span(),
                format!("{p}.values"),
                format!(
                    "`{}` takes no values (ports below 1024)",
                    m.operator.as_str()
                ),
                Some("remove `values`".into()),
            );
        }
        return Some(spec::MatchArg {
            index: arg.index,
            op,
            values: Vec::new(),
        });
    }
    c.filter_values(&m.values, m.operator.span(), p);
    let mut values = Vec::new();
    for (j, v) in m.values.iter().enumerate() {
        let read = match bare {
            "SAddr" | "DAddr" => sock::parse_cidr_noting(v).map(|(cidr, note)| {
                if let Some(note) = note {
                    c.warn(v.span(), format!("{p}.values[{j}]"), note.to_string(), None);
                }
                spec::Value::Cidr(cidr)
            }),
            "SPort" | "DPort" => sock::parse_port(v).map(spec::Value::Number),
            "Protocol" => sock::parse_protocol(v).map(spec::Value::Number),
            "Family" => sock::parse_family(v).map(spec::Value::Number),
            _ => sock::parse_state(v).map(spec::Value::Number),
        };
        match read {
            Ok(value) => values.push(value),
            Err(e) => c.at(v.span(), format!("{p}.values[{j}]"), e.to_string(), None),
        }
    }
    Some(spec::MatchArg {
        index: arg.index,
        op,
        values,
    })
}

/// `matchReturnArgs`: the return value (index 0) against integers.
fn return_arg(c: &mut Check, m: &MatchArgs, p: &str) -> Option<spec::MatchArg> {
    use spec::ArgOp as O;
    c.unsupported(&m.args, &format!("{p}.args"), "`args`");
    if *m.index != 0 {
        c.at(
            m.index.span(),
            format!("{p}.index"),
            "matchReturnArgs compares the return value, index 0",
            Some("write `index: 0`".into()),
        );
    }
    c.filter_values(&m.values, m.operator.span(), p);
    let op = c.choose(
        &m.operator,
        &format!("{p}.operator"),
        "matchReturnArgs operator",
        &[
            ("Equal", O::Equal),
            ("NotEqual", O::NotEqual),
            ("GT", O::GreaterThan),
            ("GreaterThan", O::GreaterThan),
            ("LT", O::LessThan),
            ("LessThan", O::LessThan),
            ("Mask", O::Mask),
        ],
    )?;
    let mut values = Vec::new();
    for (j, v) in m.values.iter().enumerate() {
        match parse_int(v) {
            Some(n) => values.push(spec::Value::Text {
                text: v.as_str().to_owned(),
                int: Some(n),
            }),
            None => c.at(
                v.span(),
                format!("{p}.values[{j}]"),
                format!("`{}` is not a whole number (decimal or 0x hex)", v.as_str()),
                None,
            ),
        }
    }
    Some(spec::MatchArg {
        index: 0,
        op,
        values,
    })
}

fn binaries(c: &mut Check, m: &MatchBinaries, p: &str) -> Option<spec::MatchBinaries> {
    use spec::BinaryOp as B;
    let names: Vec<(&str, B)> = MATCH_BINARIES_OPERATORS
        .iter()
        .copied()
        .zip([
            B::In,
            B::NotIn,
            B::Prefix,
            B::NotPrefix,
            B::Postfix,
            B::NotPostfix,
        ])
        .collect();
    let op = c.choose(
        &m.operator,
        &format!("{p}.operator"),
        "matchBinaries operator",
        &names,
    );
    c.filter_values(&m.values, m.operator.span(), p);
    for (j, v) in m.values.iter().enumerate() {
        if matches!(op, Some(B::In | B::NotIn)) && !v.starts_with('/') {
            c.at(
                v.span(),
                format!("{p}.values[{j}]"),
                format!(
                    "`{}` is not an absolute path; `In` compares whole paths",
                    v.as_str()
                ),
                Some(format!(
                    "write the full path, or use `Postfix` to match `{}`",
                    v.as_str()
                )),
            );
        }
        if v.len() > MAX_STRING {
            c.at(
                v.span(),
                format!("{p}.values[{j}]"),
                format!(
                    "the path is {} bytes, more than {MAX_STRING} (the longest path the tracer keeps)",
                    v.len()
                ),
                None,
            );
        } else if matches!(op, Some(B::Postfix | B::NotPostfix)) && v.len() > MAX_POSTFIX {
            c.at(
                v.span(),
                format!("{p}.values[{j}]"),
                format!(
                    "a Postfix value is at most {MAX_POSTFIX} bytes, and this one is {}",
                    v.len()
                ),
                Some(format!("keep its last {MAX_POSTFIX} bytes")),
            );
        }
    }
    let follow_children = m.follow_children.as_ref().is_some_and(|f| **f);
    if follow_children && matches!(op, Some(B::NotIn | B::NotPrefix | B::NotPostfix)) {
        c.at(
            m.operator.span(),
            format!("{p}.followChildren"),
            format!(
                "followChildren goes with In, Prefix or Postfix, not `{}`",
                m.operator.as_str()
            ),
            None,
        );
    }
    Some(spec::MatchBinaries {
        op: op?,
        values: m.values.iter().map(|v| v.as_str().to_owned()).collect(),
        follow_children,
    })
}

/// `In` or `NotIn`.
fn set_op(c: &mut Check, op: &Spanned<String>, path: &str, what: &str) -> Option<spec::SetOp> {
    let ops = [("In", spec::SetOp::In), ("NotIn", spec::SetOp::NotIn)];
    debug_assert_eq!(ops.map(|o| o.0), IN_NOT_IN);
    c.choose(op, path, what, &ops)
}

fn pids(c: &mut Check, m: &MatchPids, p: &str) -> Option<spec::MatchPids> {
    let op = set_op(
        c,
        &m.operator,
        &format!("{p}.operator"),
        "matchPIDs operator",
    );
    c.filter_values(&m.values, m.operator.span(), p);
    Some(spec::MatchPids {
        op: op?,
        values: m.values.iter().map(|v| **v).collect(),
        follow_forks: m.follow_forks.as_ref().is_some_and(|f| **f),
        namespace: m.is_namespace_pid.as_ref().is_some_and(|n| **n),
    })
}

/// Two `matchPIDs` filters of one selector (both must pass) as one, where one says the
/// same: `NotIn A` and `NotIn B` as `NotIn A∪B`; without `followForks`, `In A` and `In B`
/// as `In A∩B`, `In A` and `NotIn B` as `In A∖B`.
fn merge_pids(a: spec::MatchPids, b: spec::MatchPids) -> Result<spec::MatchPids, String> {
    use spec::SetOp::{In, NotIn};
    if (a.follow_forks, a.namespace) != (b.follow_forks, b.namespace) {
        return Err("the matchPIDs filters of one selector must agree on `followForks` and `isNamespacePID` (the tracer merges them into one)".into());
    }
    // The values of `xs` that are (`inside`) or are not in `ys`.
    let keep = |xs: Vec<u32>, ys: &[u32], inside: bool| -> Vec<u32> {
        xs.into_iter()
            .filter(|x| ys.contains(x) == inside)
            .collect()
    };
    let (op, values) = match (a.op, b.op) {
        (NotIn, NotIn) => {
            let extra = keep(b.values, &a.values, false);
            (NotIn, a.values.into_iter().chain(extra).collect())
        }
        _ if a.follow_forks => {
            return Err("with `followForks`, the matchPIDs filters of one selector can be merged only when all are `NotIn`".into());
        }
        (In, In) => (In, keep(a.values, &b.values, true)),
        (In, NotIn) => (In, keep(a.values, &b.values, false)),
        (NotIn, In) => (In, keep(b.values, &a.values, false)),
    };
    if values.is_empty() {
        return Err("together with the matchPIDs filters before it, no pid passes: the selector would match nothing".into());
    }
    Ok(spec::MatchPids { op, values, ..a })
}

fn namespaces(c: &mut Check, m: &MatchNamespaces, p: &str) -> Option<spec::MatchNamespace> {
    let ns = c.choose(
        &m.namespace,
        &format!("{p}.namespace"),
        "namespace",
        &spec::Namespace::ALL,
    );
    let op = set_op(
        c,
        &m.operator,
        &format!("{p}.operator"),
        "matchNamespaces operator",
    );
    c.values_present(&m.values, m.operator.span(), p);
    let mut values = Vec::new();
    for (j, v) in m.values.iter().enumerate() {
        if v.as_str() == "host_ns" {
            values.push(spec::NsValue::Host);
        } else if let Ok(n) = v.parse::<u32>() {
            values.push(spec::NsValue::Inode(n));
        } else {
            c.at(
                v.span(),
                format!("{p}.values[{j}]"),
                format!(
                    "`{}` is neither `host_ns` nor a namespace inode number",
                    v.as_str()
                ),
                None,
            );
        }
    }
    Some(spec::MatchNamespace {
        ns: ns?,
        op: op?,
        values,
    })
}

/// A `matchCapabilities` filter, or with `change` a `matchCapabilityChanges` one (the same
/// fields).
fn capabilities(
    c: &mut Check,
    m: &MatchCapabilities,
    p: &str,
    change: bool,
) -> Option<spec::MatchCapabilities> {
    use spec::CapSet as S;
    let sets: Vec<(&str, S)> = CAPABILITY_TYPES
        .iter()
        .copied()
        .zip([S::Effective, S::Inheritable, S::Permitted])
        .collect();
    let set = match &m.ty {
        Some(t) => c.choose(t, &format!("{p}.type"), "capability set", &sets),
        None => Some(S::Effective),
    };
    let op = set_op(
        c,
        &m.operator,
        &format!("{p}.operator"),
        if change {
            "matchCapabilityChanges operator"
        } else {
            "matchCapabilities operator"
        },
    );
    c.values_present(&m.values, m.operator.span(), p);
    let mut mask = 0u64;
    for (j, v) in m.values.iter().enumerate() {
        if c.one_of(
            v,
            &format!("{p}.values[{j}]"),
            "capability",
            CAPABILITIES,
            &[],
        ) && let Some(bit) = CAPABILITIES.iter().position(|n| *n == v.as_str())
        {
            mask |= 1u64 << bit;
        }
    }
    Some(spec::MatchCapabilities {
        set: set?,
        op: op?,
        mask,
        namespace_capability: m.is_namespace_capability.as_ref().is_some_and(|b| **b),
        change,
    })
}

fn action(c: &mut Check, a: &MatchAction, path: &str, args: &Args<'_>, out: &mut spec::Selector) {
    for (field, name) in [(&a.arg_fd, "argFd"), (&a.arg_name, "argName")] {
        c.unsupported(field, &format!("{path}.{name}"), &format!("`{name}`"));
    }
    if let Some(ima) = &a.ima_hash {
        c.warn(
            ima.span(),
            format!("{path}.imaHash"),
            "`imaHash` is not read yet: the events carry no `ima_hash`",
            Some("remove it, or rely on the event's `process.binary`".into()),
        );
    }
    if let Some(scope) = &a.rate_limit_scope {
        let scopes: Vec<(&str, spec::RateScope)> = RATE_LIMIT_SCOPES
            .iter()
            .copied()
            .zip([
                spec::RateScope::Thread,
                spec::RateScope::Process,
                spec::RateScope::Global,
            ])
            .collect();
        if let Some(s) = c.choose(
            scope,
            &format!("{path}.rateLimitScope"),
            "rate limit scope",
            &scopes,
        ) {
            out.rate_scope = s;
        }
    }
    if !c.one_of(
        &a.action,
        &format!("{path}.action"),
        "action",
        ACTIONS,
        ACTIONS_UNSUPPORTED,
    ) {
        return;
    }
    let name = a.action.as_str();
    stack_traces(c, a, path, out);
    if let Some(r) = &a.rate_limit {
        match parse_rate_limit(r) {
            _ if name != "Post" => c.at(
                r.span(),
                format!("{path}.rateLimit"),
                "`rateLimit` goes with `Post`",
                None,
            ),
            Some(secs) => out.rate_limit_secs = Some(secs),
            None => c.at(
                r.span(),
                format!("{path}.rateLimit"),
                format!(
                    "`{}` is not a duration; expected a number with `s`, `m` or `h`, such as `5m`",
                    r.as_str()
                ),
                None,
            ),
        }
    }
    let signal = signal(c, a, path);
    let error = override_error(c, a, path);
    let request = request(c, a, path);
    let sock = sock_arg(c, a, path, args);
    let set = set_arg(c, a, path, args);
    out.actions.push(match name {
        "Post" => spec::Action::Post,
        "NoPost" => spec::Action::NoPost,
        "Sigkill" => spec::Action::Sigkill,
        "Signal" => spec::Action::Signal(signal.unwrap_or(9)),
        "GetUrl" | "DnsLookup" => match request {
            Some(r) => spec::Action::Request(r),
            None => return,
        },
        "TrackSock" | "UntrackSock" => match sock {
            Some(arg) => spec::Action::Sock {
                track: name == "TrackSock",
                arg,
            },
            None => return,
        },
        "NotifyEnforcer" => spec::Action::NotifyEnforcer {
            error: error.unwrap_or(0),
            signal: signal.unwrap_or(0),
        },
        "Set" => match set {
            Some((arg, value)) => spec::Action::Set { arg, value },
            None => return,
        },
        _ => spec::Action::Override(error.unwrap_or(-1)),
    });
}

/// `Set`'s `argIndex` (a position in `args`) and `argValue`, both needed. Ignored,
/// saying so, on another action.
fn set_arg(c: &mut Check, a: &MatchAction, path: &str, args: &Args<'_>) -> Option<(u32, u32)> {
    let name = a.action.as_str();
    if name != "Set" {
        for (field, key) in [(&a.arg_index, "argIndex"), (&a.arg_value, "argValue")] {
            if let Some(v) = field {
                c.ignored(v.span(), path, key, "`Set`", name);
            }
        }
        return None;
    }
    let (Some(index), Some(value)) = (&a.arg_index, &a.arg_value) else {
        c.at(
            a.action.span(),
            format!("{path}.action"),
            "`Set` needs `argIndex` (the position in `args` of the argument to write) and `argValue`",
            Some("add both, e.g. `argIndex: 0` and `argValue: 32`".into()),
        );
        return None;
    };
    if usize::try_from(**index).map_or(true, |i| i >= args.args.len()) && args.refused.is_empty() {
        c.at(
            index.span(),
            format!("{path}.argIndex"),
            format!(
                "`Set` writes the argument at position {} of `args`, and the hook declares {} arguments",
                **index,
                args.args.len()
            ),
            Some("point `argIndex` at a declared argument (0 is the first)".into()),
        );
        return None;
    }
    Some((**index, **value))
}

/// `TrackSock`'s and `UntrackSock`'s `argSock` (0 unless given): the position in `args`
/// of a `sock` or `socket` argument, as Tetragon reads it. Ignored, saying so, on
/// another action.
fn sock_arg(c: &mut Check, a: &MatchAction, path: &str, args: &Args<'_>) -> Option<u32> {
    let name = a.action.as_str();
    if !matches!(name, "TrackSock" | "UntrackSock") {
        if let Some(v) = &a.arg_sock {
            c.ignored(
                v.span(),
                path,
                "argSock",
                "`TrackSock` and `UntrackSock`",
                name,
            );
        }
        return None;
    }
    let pos = a.arg_sock.as_ref().map_or(0, |v| **v);
    let span = a.arg_sock.as_ref().map_or(a.action.span(), |v| v.span());
    let found = usize::try_from(pos).ok().and_then(|i| args.args.get(i));
    match found {
        Some(arg) if matches!(arg.ty, spec::ArgType::Sock | spec::ArgType::Socket) => Some(pos),
        // An argument refused already shifts the positions: said once, there.
        _ if !args.refused.is_empty() => None,
        found => {
            let what = found.map_or_else(
                || format!("the hook declares {} arguments", args.args.len()),
                |arg| format!("it is of type `{}`", arg.ty.name()),
            );
            c.at(
                span,
                format!("{path}.argSock"),
                format!("`{name}` acts on the socket at position {pos} of `args`, and {what}"),
                Some(
                    "point `argSock` at an argument of type `sock` or `socket` (0 is the first)"
                        .into(),
                ),
            );
            None
        }
    }
}

/// `kernelStackTrace`, `userStackTrace`: the stacks `Post` takes; with another action
/// they do nothing (as in Tetragon's tracepoints and uprobes), and that is said.
fn stack_traces(c: &mut Check, a: &MatchAction, path: &str, out: &mut spec::Selector) {
    let name = a.action.as_str();
    for (field, key, wanted) in [
        (
            &a.kernel_stack_trace,
            "kernelStackTrace",
            &mut out.kernel_stack,
        ),
        (&a.user_stack_trace, "userStackTrace", &mut out.user_stack),
    ] {
        let Some(on) = field else {
            continue;
        };
        if !**on {
            continue;
        }
        if name == "Post" {
            *wanted = true;
        } else {
            c.warn(
                on.span(),
                format!("{path}.{key}"),
                format!("`{key}` goes with `Post`, not `{name}`: ignored"),
                Some("move it to a `Post` action of the selector".into()),
            );
        }
    }
}

/// `GetUrl`'s `argUrl`, `DnsLookup`'s `argFqdn`: each needed by its action, ignored
/// (saying so) with another.
fn request(c: &mut Check, a: &MatchAction, path: &str) -> Option<Request> {
    let name = a.action.as_str();
    for (field, key, owner) in [
        (&a.arg_url, "argUrl", "GetUrl"),
        (&a.arg_fqdn, "argFqdn", "DnsLookup"),
    ] {
        if let Some(v) = field
            && name != owner
        {
            c.ignored(v.span(), path, key, &format!("`{owner}`"), name);
        }
    }
    match name {
        "GetUrl" => {
            let Some(url) = &a.arg_url else {
                c.at(
                    a.action.span(),
                    format!("{path}.argUrl"),
                    "`GetUrl` needs the URL to fetch",
                    Some("add `argUrl: http://...`".into()),
                );
                return None;
            };
            if let Err(why) = crate::policy::requests::valid_url(url) {
                c.at(
                    url.span(),
                    format!("{path}.argUrl"),
                    format!("`{}` is not a URL GetUrl fetches: {why}", url.as_str()),
                    None,
                );
                return None;
            }
            Some(Request::GetUrl(url.as_str().to_owned()))
        }
        "DnsLookup" => {
            let Some(fqdn) = &a.arg_fqdn else {
                c.at(
                    a.action.span(),
                    format!("{path}.argFqdn"),
                    "`DnsLookup` needs the name to look up",
                    Some("add `argFqdn: NAME`".into()),
                );
                return None;
            };
            if fqdn.is_empty() || fqdn.contains(char::is_whitespace) {
                c.at(
                    fqdn.span(),
                    format!("{path}.argFqdn"),
                    format!("`{}` is not a domain name", fqdn.as_str()),
                    None,
                );
                return None;
            }
            Some(Request::DnsLookup(fqdn.as_str().to_owned()))
        }
        _ => None,
    }
}

/// `argSig`, which goes with `Signal` and `NotifyEnforcer` only.
fn signal(c: &mut Check, a: &MatchAction, path: &str) -> Option<u32> {
    match (a.action.as_str(), &a.arg_sig) {
        ("Signal", None) => c.at(
            a.action.span(),
            format!("{path}.argSig"),
            "`Signal` needs the signal to send",
            Some("add `argSig: 9` (or another signal number, 1 to 64)".into()),
        ),
        ("Signal", Some(sig)) if !(1..=64).contains(&**sig) => c.at(
            sig.span(),
            format!("{path}.argSig"),
            format!("{} is not a signal number (1 to 64)", **sig),
            None,
        ),
        ("Signal", Some(sig)) => return Some(**sig),
        // `NotifyEnforcer`: the signal its enforcer sends, if any.
        ("NotifyEnforcer", None) => return Some(0),
        ("NotifyEnforcer", Some(sig)) if !(0..=64).contains(&**sig) => c.at(
            sig.span(),
            format!("{path}.argSig"),
            format!("{} is not a signal number (1 to 64, or 0 for none)", **sig),
            None,
        ),
        ("NotifyEnforcer", Some(sig)) => return Some(**sig),
        (other, Some(sig)) => c.ignored(
            sig.span(),
            path,
            "argSig",
            "`Signal` and `NotifyEnforcer`",
            other,
        ),
        _ => {}
    }
    None
}

/// `argError`, which goes with `Override` and `NotifyEnforcer` only.
fn override_error(c: &mut Check, a: &MatchAction, path: &str) -> Option<i32> {
    match (a.action.as_str(), &a.arg_error) {
        // The enforced call's return value; none: it runs (the signal alone acts).
        ("NotifyEnforcer", None) => return Some(0),
        ("NotifyEnforcer", Some(e)) => return Some(**e),
        ("Override", None) => c.at(
            a.action.span(),
            format!("{path}.argError"),
            "`Override` needs the error the call returns instead",
            Some("add `argError: -1` (a negative errno: -1 is EPERM, -13 EACCES)".into()),
        ),
        // Any value: the function's callers read it (a negative errno mostly; 1 tells
        // `security_inode_copy_up_xattr`'s caller to skip the attribute).
        ("Override", Some(e)) => return Some(**e),
        (other, Some(e)) => c.ignored(
            e.span(),
            path,
            "argError",
            "`Override` and `NotifyEnforcer`",
            other,
        ),
        _ => {}
    }
    None
}
