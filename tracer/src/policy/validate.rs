//! What the schema alone cannot say: operators and their values, actions, limits,
//! syscall names. Each problem names its field path and, where one is obvious, its fix.

use std::str::FromStr as _;

use marked_yaml::{Span, Spanned};

use super::{
    limits::*,
    model::{Arg, Kprobe, MatchAction, Selector, Spec, Tracepoint, TracingPolicy, Unsupported},
    parse::did_you_mean,
};

/// One problem of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Span,
    pub path: String,
    pub message: String,
    pub fix: Option<String>,
}

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
];
/// Tetragon's `matchArgs` operators the tracer does not support yet.
const MATCH_ARGS_UNSUPPORTED: &[&str] = &[
    "InRange",
    "NotInRange",
    "SubString",
    "SubStringIgnCase",
    "InMap",
    "NotInMap",
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
pub const ACTIONS: &[&str] = &["Post", "NoPost", "Sigkill", "Signal", "Override"];
const ACTIONS_UNSUPPORTED: &[&str] = &[
    "GetUrl",
    "DnsLookup",
    "TrackSock",
    "UntrackSock",
    "NotifyEnforcer",
    "CleanupEnforcerNotification",
    "Set",
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
/// Types of a return probe's `returnArg`.
const RETURN_ARG_TYPES: &[&str] = &[
    "int", "sint32", "int32", "uint32", "long", "int64", "sint64", "uint64", "ulong", "size_t",
    "fd", "sock",
];

/// Argument types of kprobe arguments the tracer reads: `sock` (and `socket`, of
/// `inet_dgram_connect`) of the socket functions, and the integer and string types of
/// syscalls (`syscall: true`).
pub const KPROBE_ARG_TYPES: &[&str] = &[
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
];
/// Tetragon's kprobe argument types the tracer does not read yet.
const KPROBE_ARG_TYPES_UNSUPPORTED: &[&str] = &[
    "auto",
    "sockaddr",
    "sockaddr_un",
    "filename",
    "nop",
    "bpf_attr",
    "perf_event",
    "bpf_map",
    "user_namespace",
    "capability",
    "kiocb",
    "iov_iter",
    "const_buf",
    "load_info",
    "module",
    "syscall64",
    "kernel_cap_t",
    "cap_inheritable",
    "cap_permitted",
    "cap_effective",
    "data_loc",
    "net_device",
    "bpf_cmd",
    "dentry",
    "bpf_prog",
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

struct Check {
    problems: Vec<Problem>,
}

impl Check {
    fn at(
        &mut self,
        span: &Span,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: Option<String>,
    ) {
        self.problems.push(Problem {
            span: *span,
            path: path.into(),
            message: message.into(),
            fix,
        });
    }

    fn unsupported(&mut self, field: &Unsupported, path: &str, what: &str) {
        if let Some(f) = field {
            self.at(
                f.span(),
                path,
                format!("{what} is part of Tetragon's schema but not supported by the tracer yet"),
                Some("remove it; the README lists what is supported".into()),
            );
        }
    }

    /// `value` must be one of `allowed`; `tetragon_only` are valid in Tetragon but not here.
    fn one_of(
        &mut self,
        value: &Spanned<String>,
        path: &str,
        what: &str,
        allowed: &[&str],
        tetragon_only: &[&str],
    ) -> bool {
        if allowed.contains(&value.as_str()) {
            return true;
        }
        if tetragon_only.contains(&value.as_str()) {
            self.at(
                value.span(),
                path,
                format!(
                    "{what} `{}` is Tetragon's but not supported by the tracer yet; supported: {}",
                    value.as_str(),
                    allowed.join(", ")
                ),
                None,
            );
        } else {
            self.at(
                value.span(),
                path,
                format!(
                    "`{}` is not a {what}; expected one of {}",
                    value.as_str(),
                    allowed.join(", ")
                ),
                did_you_mean(value, allowed.iter().copied()).map(|s| format!("write `{s}`")),
            );
        }
        false
    }

    fn at_most<T>(
        &mut self,
        items: &[T],
        span_of: impl Fn(&T) -> Option<Span>,
        max: usize,
        path: &str,
        what: &str,
        fallback: &Span,
    ) {
        if items.len() > max {
            let span = span_of(&items[max]).unwrap_or(*fallback);
            self.at(
                &span,
                format!("{path}[{max}]"),
                format!(
                    "{} {what}, more than the {max} the tracer allows",
                    items.len()
                ),
                Some(format!(
                    "split them over several hooks or policies, at most {max} each"
                )),
            );
        }
    }

    /// A filter's values: some, and at most `MAX_VALUES`; errors point at `operator`.
    fn filter_values<T>(&mut self, values: &[Spanned<T>], operator: &Span, path: &str) {
        self.values_present(values, operator, path);
        self.at_most(
            values,
            |v| Some(*v.span()),
            MAX_VALUES,
            &format!("{path}.values"),
            "values",
            operator,
        );
    }

    fn values_present<T>(&mut self, values: &[T], span: &Span, path: &str) {
        if values.is_empty() {
            self.at(
                span,
                format!("{path}.values"),
                "no values: the filter would match nothing",
                Some("add `values: [...]`".into()),
            );
        }
    }
}

/// Checks one parsed document.
pub fn policy(p: &TracingPolicy) -> Vec<Problem> {
    let mut c = Check {
        problems: Vec::new(),
    };
    if p.api_version.as_str() != API_VERSION && p.api_version.as_str() != TRACER_API_VERSION {
        c.at(
            p.api_version.span(),
            "apiVersion",
            format!(
                "`{}` is not supported; expected `{API_VERSION}` (Tetragon's) or `{TRACER_API_VERSION}`",
                p.api_version.as_str()
            ),
            Some(format!("write `apiVersion: {API_VERSION}`")),
        );
    }
    match p.kind.as_str() {
        "TracingPolicy" => {}
        "TracingPolicyNamespaced" if p.metadata.namespace.is_none() => c.at(
            p.kind.span(),
            "kind",
            "a `TracingPolicyNamespaced` applies to the pods of its namespace: it needs `metadata.namespace`",
            Some("add `namespace: NAME` under `metadata:`".into()),
        ),
        "TracingPolicyNamespaced" => {}
        other => c.at(
            p.kind.span(),
            "kind",
            format!("`{other}` is not a policy kind; expected `TracingPolicy`"),
            Some("write `kind: TracingPolicy`".into()),
        ),
    }
    let name = p.metadata.name.as_str();
    if !is_dns_subdomain(name) {
        c.at(
            p.metadata.name.span(),
            "metadata.name",
            format!("`{name}` is not a valid name: lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters"),
            Some(format!("write `name: {}`", suggest_name(name))),
        );
    }
    spec(&mut c, &p.spec);
    c.problems
}

fn spec(c: &mut Check, s: &Spanned<Spec>) {
    for (field, name) in [
        (&s.fentries, "fentries"),
        (&s.uprobes, "uprobes"),
        (&s.usdts, "usdts"),
        (&s.lsmhooks, "lsmhooks"),
        (&s.enforcers, "enforcers"),
        (&s.loader, "loader"),
        (&s.host_selector, "hostSelector"),
        (&s.node_selector, "nodeSelector"),
        (&s.selectors_macros, "selectorsMacros"),
    ] {
        c.unsupported(field, &format!("spec.{name}"), &format!("`{name}`"));
    }
    for (selector, name, keys) in [
        (&s.pod_selector, "podSelector", None),
        (
            &s.container_selector,
            "containerSelector",
            Some(["name", "repo"]),
        ),
    ] {
        let Some(sel) = selector else {
            continue;
        };
        for (i, e) in sel.match_expressions.iter().enumerate() {
            let at = format!("spec.{name}.matchExpressions[{i}]");
            if !matches!(
                e.operator.as_str(),
                "In" | "NotIn" | "Exists" | "DoesNotExist"
            ) {
                c.at(
                    sel.span(),
                    format!("{at}.operator"),
                    format!(
                        "`{}` is not a selector operator; expected In, NotIn, Exists or DoesNotExist",
                        e.operator
                    ),
                    None,
                );
            }
            if let Some(keys) = keys
                && !keys.contains(&e.key.as_str())
            {
                c.at(
                    sel.span(),
                    format!("{at}.key"),
                    format!(
                        "`{}` is not a container key; expected `name` or `repo`",
                        e.key
                    ),
                    None,
                );
            }
        }
        if let Some(keys) = keys
            && let Some(k) = sel
                .match_labels
                .keys()
                .find(|k| !keys.contains(&k.as_str()))
        {
            c.at(
                sel.span(),
                format!("spec.{name}.matchLabels"),
                format!("`{k}` is not a container key; expected `name` or `repo`"),
                None,
            );
        }
    }
    let unsupported_hooks =
        s.uprobes.is_some() || s.lsmhooks.is_some() || s.fentries.is_some() || s.usdts.is_some();
    if s.tracepoints.is_empty() && s.kprobes.is_empty() && !unsupported_hooks {
        c.at(
            s.span(),
            "spec",
            "the policy has no hook",
            Some("add `tracepoints:` or `kprobes:`".into()),
        );
    }
    for (i, l) in s.lists.iter().enumerate() {
        let path = format!("spec.lists[{i}]");
        c.unsupported(&l.pattern, &format!("{path}.pattern"), "`pattern`");
        c.unsupported(&l.validated, &format!("{path}.validated"), "`validated`");
        if c.one_of(
            &l.ty,
            &format!("{path}.type"),
            "list type",
            &["syscalls"],
            &["generated_syscalls", "generated_ftrace"],
        ) {
            for (j, v) in l.values.iter().enumerate() {
                syscall_name(c, v, &format!("{path}.values[{j}]"));
            }
        }
        c.values_present(&l.values, l.name.span(), &path);
    }
    for (i, o) in s.options.iter().enumerate() {
        let path = format!("spec.options[{i}]");
        match o.name.as_str() {
            "policy-mode" => {
                let ok = o.value.as_ref().is_some_and(|v| matches!(v.as_str(), "monitor" | "enforce"));
                if !ok {
                    c.at(
                        o.value.as_ref().map_or(o.name.span(), |v| v.span()),
                        format!("{path}.value"),
                        "`policy-mode` takes `monitor` or `enforce`",
                        Some("write `value: monitor`".into()),
                    );
                }
            }
            "disable-kprobe-multi" | "disable-uprobe-multi" => c.at(
                o.name.span(),
                format!("{path}.name"),
                format!("option `{}` is Tetragon's, for kprobes and uprobes, which the tracer does not support yet", o.name.as_str()),
                Some("remove it".into()),
            ),
            other => c.at(
                o.name.span(),
                format!("{path}.name"),
                format!("`{other}` is not an option; expected `policy-mode`"),
                did_you_mean(other, ["policy-mode"]).map(|s| format!("write `{s}`")),
            ),
        }
    }
    for (i, tp) in s.tracepoints.iter().enumerate() {
        tracepoint(c, tp, &format!("spec.tracepoints[{i}]"), s);
    }
    for (i, k) in s.kprobes.iter().enumerate() {
        kprobe(c, k, &format!("spec.kprobes[{i}]"), s);
    }
}

fn kprobe(c: &mut Check, k: &Spanned<Kprobe>, path: &str, spec: &Spec) {
    c.unsupported(&k.data, &format!("{path}.data"), "`data`");
    c.unsupported(
        &k.return_arg_action,
        &format!("{path}.returnArgAction"),
        "`returnArgAction`",
    );
    c.unsupported(&k.ignore, &format!("{path}.ignore"), "`ignore`");
    let call = k.call.as_str();
    if call.starts_with("list:") {
        c.at(
            k.call.span(),
            format!("{path}.call"),
            "`list:` calls are Tetragon's but not supported by the tracer yet",
            Some("write one kprobe per function".into()),
        );
    } else if call.is_empty()
        || !call
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.')
    {
        c.at(
            k.call.span(),
            format!("{path}.call"),
            format!("`{call}` is not a kernel function name"),
            None,
        );
    }
    let is_return = k.ret.as_ref().is_some_and(|r| **r);
    if let Some(a) = &k.return_arg {
        if !is_return {
            c.at(
                a.index.span(),
                format!("{path}.returnArg"),
                "`returnArg` goes with `return: true`",
                Some("add `return: true`".into()),
            );
        }
        let ty = a.ty.as_ref().map_or("int", |t| t.as_str());
        if !RETURN_ARG_TYPES.contains(&ty) {
            c.at(
                a.ty.as_ref().map_or(a.index.span(), |t| t.span()),
                format!("{path}.returnArg.type"),
                format!(
                    "return values are read as integers: one of {}",
                    RETURN_ARG_TYPES.join(", ")
                ),
                None,
            );
        }
    }
    if !is_return {
        for (s, sel) in k.selectors.iter().enumerate() {
            if let Some(m) = sel.match_return_args.first() {
                c.at(
                    m.index.span(),
                    format!("{path}.selectors[{s}].matchReturnArgs"),
                    "matchReturnArgs needs a return probe",
                    Some("add `return: true` and `returnArg`".into()),
                );
            }
        }
    }
    hook_common(
        c,
        HookParts {
            args: &k.args,
            selectors: &k.selectors,
            tags: &k.tags,
            message: k.message.as_ref(),
            anchor: *k.call.span(),
            arg_types: KPROBE_ARG_TYPES,
            arg_types_unsupported: KPROBE_ARG_TYPES_UNSUPPORTED,
            arg_kind: "kprobe argument type",
        },
        path,
        spec,
    );
}

fn tracepoint(c: &mut Check, tp: &Tracepoint, path: &str, spec: &Spec) {
    c.unsupported(&tp.raw, &format!("{path}.raw"), "`raw`");
    for (s, sel) in tp.selectors.iter().enumerate() {
        for (k, a) in sel.match_actions.iter().enumerate() {
            if a.action.as_str() == "Override" {
                c.at(
                    a.action.span(),
                    format!("{path}.selectors[{s}].matchActions[{k}].action"),
                    "`Override` stops a kernel function from running: it goes on a kprobe (`spec.kprobes`), not on a tracepoint",
                    Some("hook the function the tracepoint is in, with `call:`".into()),
                );
            }
        }
    }
    for (v, field) in [(&tp.subsystem, "subsystem"), (&tp.event, "event")] {
        let ok = !v.is_empty() && v.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !ok {
            c.at(
                v.span(),
                format!("{path}.{field}"),
                format!("`{}` is not a tracepoint {field} name (letters, digits and `_`, as under /sys/kernel/tracing/events)", v.as_str()),
                None,
            );
        }
    }
    hook_common(
        c,
        HookParts {
            args: &tp.args,
            selectors: &tp.selectors,
            tags: &tp.tags,
            message: tp.message.as_ref(),
            anchor: *tp.event.span(),
            arg_types: ARG_TYPES,
            arg_types_unsupported: &[],
            arg_kind: "tracepoint argument type",
        },
        path,
        spec,
    );
}

/// What tracepoints and kprobes share.
struct HookParts<'a> {
    args: &'a [Arg],
    selectors: &'a [Spanned<Selector>],
    tags: &'a [Spanned<String>],
    message: Option<&'a Spanned<String>>,
    /// Where errors about the hook as a whole point.
    anchor: Span,
    arg_types: &'a [&'a str],
    /// Tetragon's types of this kind of hook that the tracer does not read yet.
    arg_types_unsupported: &'a [&'a str],
    arg_kind: &'a str,
}

fn hook_common(c: &mut Check, h: HookParts<'_>, path: &str, spec: &Spec) {
    if let Some(m) = h.message
        && m.chars().count() > MAX_MESSAGE
    {
        c.at(
            m.span(),
            format!("{path}.message"),
            format!("the message is longer than {MAX_MESSAGE} characters"),
            None,
        );
    }
    c.at_most(
        h.tags,
        |t| Some(*t.span()),
        MAX_TAGS,
        &format!("{path}.tags"),
        "tags",
        &h.anchor,
    );
    c.at_most(
        h.args,
        |a| Some(*a.index.span()),
        MAX_ARGS,
        &format!("{path}.args"),
        "arguments",
        &h.anchor,
    );
    let mut seen = Vec::new();
    for (j, a) in h.args.iter().enumerate() {
        let ap = format!("{path}.args[{j}]");
        if seen.contains(&*a.index) {
            c.at(
                a.index.span(),
                format!("{ap}.index"),
                format!("argument {} is declared twice", *a.index),
                Some("remove one of them".into()),
            );
        }
        seen.push(*a.index);
        if let Some(ty) = &a.ty {
            c.one_of(
                ty,
                &format!("{ap}.type"),
                h.arg_kind,
                h.arg_types,
                h.arg_types_unsupported,
            );
        }
        let char_buf =
            a.ty.as_ref()
                .is_some_and(|t| matches!(t.as_str(), "char_buf" | "char_iovec"));
        if let Some(n) = &a.size_arg_index {
            if !char_buf {
                c.at(
                    n.span(),
                    format!("{ap}.sizeArgIndex"),
                    "sizeArgIndex gives a `char_buf` argument its size (or a `char_iovec` its count)",
                    Some("add `type: char_buf`".into()),
                );
            } else if **n == 0 {
                c.at(
                    n.span(),
                    format!("{ap}.sizeArgIndex"),
                    "sizeArgIndex counts from 1 (3 is argument index 2)",
                    None,
                );
            }
        }
        if let Some(r) = &a.return_copy
            && **r
            && !char_buf
        {
            c.at(
                r.span(),
                format!("{ap}.returnCopy"),
                "returnCopy reads a `char_buf` argument at the return",
                Some("add `type: char_buf`".into()),
            );
        }
        for (field, name) in [
            (&a.resolve, "resolve"),
            (&a.btf_type, "btfType"),
            (&a.btf_type_module, "btfTypeModule"),
            (&a.max_data, "maxData"),
            (&a.source, "source"),
        ] {
            c.unsupported(field, &format!("{ap}.{name}"), &format!("`{name}`"));
        }
    }
    c.at_most(
        h.selectors,
        |s| Some(*s.span()),
        MAX_SELECTORS,
        &format!("{path}.selectors"),
        "selectors",
        &h.anchor,
    );
    for (k, sel) in h.selectors.iter().enumerate() {
        selector(c, sel, &format!("{path}.selectors[{k}]"), h.args, spec);
    }
}

fn selector(c: &mut Check, s: &Spanned<Selector>, path: &str, args: &[Arg], spec: &Spec) {
    for (field, name) in [
        (&s.match_data, "matchData"),
        (&s.match_parent_binaries, "matchParentBinaries"),
        (&s.match_namespace_changes, "matchNamespaceChanges"),
        (&s.match_capability_changes, "matchCapabilityChanges"),
        (&s.match_workloads, "matchWorkloads"),
        (&s.match_return_actions, "matchReturnActions"),
        (&s.macros, "macros"),
    ] {
        c.unsupported(field, &format!("{path}.{name}"), &format!("`{name}`"));
    }
    for (i, m) in s.match_return_args.iter().enumerate() {
        let p = format!("{path}.matchReturnArgs[{i}]");
        c.unsupported(&m.args, &format!("{p}.args"), "`args`");
        if *m.index != 0 {
            c.at(
                m.index.span(),
                format!("{p}.index"),
                "matchReturnArgs compares the return value, index 0",
                Some("write `index: 0`".into()),
            );
        }
        c.filter_values(&m.values, m.operator.span(), &p);
        c.one_of(
            &m.operator,
            &format!("{p}.operator"),
            "matchReturnArgs operator",
            &[
                "Equal",
                "NotEqual",
                "GT",
                "GreaterThan",
                "LT",
                "LessThan",
                "Mask",
            ],
            &[],
        );
    }
    for (i, m) in s.match_args.iter().enumerate() {
        let p = format!("{path}.matchArgs[{i}]");
        c.unsupported(&m.args, &format!("{p}.args"), "`args`");
        let declared = args.iter().find(|a| *a.index == *m.index);
        let Some(arg) = declared else {
            c.at(
                m.index.span(),
                format!("{p}.index"),
                format!(
                    "argument {} is not declared in this hook's `args`",
                    *m.index
                ),
                Some(format!("add `- index: {}` under `args:`", *m.index)),
            );
            continue;
        };
        let is_sock_arg = arg
            .ty
            .as_ref()
            .is_some_and(|t| matches!(t.as_str(), "sock" | "socket" | "skb"));
        let op = super::sock::canonical(m.operator.as_str());
        if super::sock::OPERATORS.contains(&op) {
            if !is_sock_arg {
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
                continue;
            }
            if super::sock::takes_no_values(op) {
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
                continue;
            }
            c.filter_values(&m.values, m.operator.span(), &p);
            for (j, v) in m.values.iter().enumerate() {
                if let Err(e) = super::sock::check_value(op, v) {
                    c.at(v.span(), format!("{p}.values[{j}]"), e, None);
                }
            }
            continue;
        }
        c.filter_values(&m.values, m.operator.span(), &p);
        if !c.one_of(
            &m.operator,
            &format!("{p}.operator"),
            "matchArgs operator",
            MATCH_ARGS_OPERATORS,
            MATCH_ARGS_UNSUPPORTED,
        ) {
            continue;
        }
        if is_sock_arg {
            c.at(
                m.operator.span(),
                format!("{p}.operator"),
                format!(
                    "argument {} is a socket: its operators are {}",
                    *m.index,
                    super::sock::OPERATORS.join(", ")
                ),
                None,
            );
            continue;
        }
        let numeric = matches!(
            m.operator.as_str(),
            "GT" | "GreaterThan" | "LT" | "LessThan" | "Mask"
        );
        let string_arg = arg
            .ty
            .as_ref()
            .is_some_and(|t| matches!(t.as_str(), "string" | "char_buf"));
        if numeric && string_arg {
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
        let is_list = |v: &str| {
            v.strip_prefix("list:")
                .map(|name| spec.lists.iter().any(|l| l.name.as_str() == name))
        };
        for (j, v) in m.values.iter().enumerate() {
            let vp = format!("{p}.values[{j}]");
            if let Some(found) = is_list(v) {
                if !found {
                    c.at(
                        v.span(),
                        vp,
                        format!("`{}` names no list of `spec.lists`", v.as_str()),
                        None,
                    );
                }
                continue;
            }
            if numeric && parse_int(v).is_none() {
                c.at(
                    v.span(),
                    vp,
                    format!("`{}` is not a whole number (decimal or 0x hex)", v.as_str()),
                    None,
                );
            } else if v.len() > MAX_STRING {
                c.at(
                    v.span(),
                    vp,
                    format!(
                        "the value is {} bytes, more than {MAX_STRING} (the longest string the tracer captures)",
                        v.len()
                    ),
                    None,
                );
            } else if m.operator.as_str().ends_with("Postfix") && v.len() > MAX_POSTFIX {
                c.at(
                    v.span(),
                    vp,
                    format!(
                        "a Postfix value is at most {MAX_POSTFIX} bytes, and this one is {}",
                        v.len()
                    ),
                    Some(format!("keep its last {MAX_POSTFIX} bytes")),
                );
            }
        }
    }
    c.at_most(
        &s.match_binaries,
        |m| Some(*m.operator.span()),
        MAX_MATCH_BINARIES,
        &format!("{path}.matchBinaries"),
        "matchBinaries filters",
        s.span(),
    );
    for (i, m) in s.match_binaries.iter().enumerate() {
        let p = format!("{path}.matchBinaries[{i}]");
        c.one_of(
            &m.operator,
            &format!("{p}.operator"),
            "matchBinaries operator",
            MATCH_BINARIES_OPERATORS,
            &[],
        );
        c.filter_values(&m.values, m.operator.span(), &p);
        for (j, v) in m.values.iter().enumerate() {
            if matches!(m.operator.as_str(), "In" | "NotIn") && !v.starts_with('/') {
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
            } else if m.operator.as_str().ends_with("Postfix") && v.len() > MAX_POSTFIX {
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
    }
    for (i, m) in s.match_pids.iter().enumerate() {
        let p = format!("{path}.matchPIDs[{i}]");
        c.one_of(
            &m.operator,
            &format!("{p}.operator"),
            "matchPIDs operator",
            IN_NOT_IN,
            &[],
        );
        c.filter_values(&m.values, m.operator.span(), &p);
    }
    for (i, m) in s.match_namespaces.iter().enumerate() {
        let p = format!("{path}.matchNamespaces[{i}]");
        c.one_of(
            &m.namespace,
            &format!("{p}.namespace"),
            "namespace",
            NAMESPACES,
            &[],
        );
        c.one_of(
            &m.operator,
            &format!("{p}.operator"),
            "matchNamespaces operator",
            IN_NOT_IN,
            &[],
        );
        c.values_present(&m.values, m.operator.span(), &p);
        for (j, v) in m.values.iter().enumerate() {
            if v.as_str() != "host_ns" && v.parse::<u32>().is_err() {
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
    }
    for (i, m) in s.match_capabilities.iter().enumerate() {
        let p = format!("{path}.matchCapabilities[{i}]");
        if let Some(t) = &m.ty {
            c.one_of(
                t,
                &format!("{p}.type"),
                "capability set",
                CAPABILITY_TYPES,
                &[],
            );
        }
        c.one_of(
            &m.operator,
            &format!("{p}.operator"),
            "matchCapabilities operator",
            IN_NOT_IN,
            &[],
        );
        c.values_present(&m.values, m.operator.span(), &p);
        for (j, v) in m.values.iter().enumerate() {
            c.one_of(
                v,
                &format!("{p}.values[{j}]"),
                "capability",
                CAPABILITIES,
                &[],
            );
        }
    }
    for (i, a) in s.match_actions.iter().enumerate() {
        action(c, a, &format!("{path}.matchActions[{i}]"));
    }
}

fn action(c: &mut Check, a: &MatchAction, path: &str) {
    for (field, name) in [
        (&a.arg_fd, "argFd"),
        (&a.arg_name, "argName"),
        (&a.arg_url, "argUrl"),
        (&a.arg_fqdn, "argFqdn"),
        (&a.arg_sock, "argSock"),
        (&a.kernel_stack_trace, "kernelStackTrace"),
        (&a.user_stack_trace, "userStackTrace"),
        (&a.ima_hash, "imaHash"),
    ] {
        c.unsupported(field, &format!("{path}.{name}"), &format!("`{name}`"));
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
        (other, Some(sig)) if other != "Signal" => c.at(
            sig.span(),
            format!("{path}.argSig"),
            format!("`argSig` goes with `Signal`, not `{other}`"),
            Some("remove it".into()),
        ),
        _ => {}
    }
    match (a.action.as_str(), &a.arg_error) {
        ("Override", None) => c.at(
            a.action.span(),
            format!("{path}.argError"),
            "`Override` needs the error the call returns instead",
            Some("add `argError: -1` (a negative errno: -1 is EPERM, -13 EACCES)".into()),
        ),
        ("Override", Some(e)) if !(-4095..=-1).contains(&**e) => c.at(
            e.span(),
            format!("{path}.argError"),
            format!("{} is not a negative errno (-1 to -4095)", **e),
            None,
        ),
        (other, Some(e)) if other != "Override" => c.at(
            e.span(),
            format!("{path}.argError"),
            format!("`argError` goes with `Override`, not `{other}`"),
            Some("remove it".into()),
        ),
        _ => {}
    }
    if let Some(r) = &a.rate_limit {
        if a.action.as_str() != "Post" {
            c.at(
                r.span(),
                format!("{path}.rateLimit"),
                "`rateLimit` goes with `Post`",
                None,
            );
        } else if parse_rate_limit(r).is_none() {
            c.at(
                r.span(),
                format!("{path}.rateLimit"),
                format!(
                    "`{}` is not a duration; expected a number with `s`, `m` or `h`, such as `5m`",
                    r.as_str()
                ),
                None,
            );
        }
    }
    if let Some(scope) = &a.rate_limit_scope {
        c.one_of(
            scope,
            &format!("{path}.rateLimitScope"),
            "rate limit scope",
            RATE_LIMIT_SCOPES,
            &[],
        );
    }
}

fn syscall_name(c: &mut Check, v: &Spanned<String>, path: &str) {
    let name = v.as_str();
    // Tetragon accepts `sys_openat` and ABI-prefixed `i386/sys_dup`; the tracer traces the
    // native ABI.
    if name.contains('/') {
        c.at(v.span(), path, format!("`{name}`: syscalls of another ABI are not supported yet; the tracer traces the native ({}) syscalls", std::env::consts::ARCH), None);
        return;
    }
    let bare = name.strip_prefix("sys_").unwrap_or(name);
    if syscalls::Sysno::from_str(bare).is_err() {
        c.at(
            v.span(),
            path,
            format!("`{name}` is not a syscall of {}", std::env::consts::ARCH),
            None,
        );
    }
}

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

fn is_dns_subdomain(s: &str) -> bool {
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

fn suggest_name(s: &str) -> String {
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
