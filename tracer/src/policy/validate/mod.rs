//! A parsed document to its typed spec ([`super::spec`]), checking what the schema alone
//! cannot say: operators and their values, actions, limits, syscall names. Each problem
//! names its field path and, where one is obvious, its fix. Every string the document
//! holds is read here, once, into its type.
//!
//! - [`names`]: the names a policy may use and the parsers of its values.
//! - [`hooks`]: tracepoints and kprobes, their arguments.
//! - [`selectors`]: selectors, their filters and actions.

mod hooks;
pub mod names;
mod selectors;

use marked_yaml::{Span, Spanned};

use super::{
    limits::MAX_VALUES,
    model::{LabelSelector, Spec, TracingPolicy, Unsupported},
    spec,
    suggest::did_you_mean,
};
pub use hooks::COMPAT_SYSCALL_BIT;
pub use names::{API_VERSION, TRACER_API_VERSION};

/// One problem of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Span,
    pub path: String,
    pub message: String,
    pub fix: Option<String>,
}

impl Problem {
    fn new(
        span: &Span,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Problem {
            span: *span,
            path: path.into(),
            message: message.into(),
            fix,
        }
    }
}

/// A document that passed: its spec, and what it says that the tracer reads otherwise
/// than written or ignores, as Tetragon does (a CIDR with host bits, `argError` on
/// `Sigkill`...): said, not refused.
#[derive(Debug)]
pub struct Validated {
    pub spec: spec::Policy,
    pub warnings: Vec<Problem>,
}

/// Checks one parsed document and reads it into its spec; every problem otherwise.
pub fn policy(p: &TracingPolicy) -> Result<Validated, Vec<Problem>> {
    let mut c = Check {
        problems: Vec::new(),
        warnings: Vec::new(),
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
    let namespaced = match p.kind.as_str() {
        "TracingPolicy" => false,
        "TracingPolicyNamespaced" if p.metadata.namespace.is_none() => {
            c.at(
                p.kind.span(),
                "kind",
                "a `TracingPolicyNamespaced` applies to the pods of its namespace: it needs `metadata.namespace`",
                Some("add `namespace: NAME` under `metadata:`".into()),
            );
            true
        }
        "TracingPolicyNamespaced" => true,
        other => {
            c.at(
                p.kind.span(),
                "kind",
                format!("`{other}` is not a policy kind; expected `TracingPolicy`"),
                Some("write `kind: TracingPolicy`".into()),
            );
            false
        }
    };
    let name = p.metadata.name.as_str();
    if !names::is_dns_subdomain(name) {
        c.at(
            p.metadata.name.span(),
            "metadata.name",
            format!("`{name}` is not a valid name: lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters"),
            Some(format!("write `name: {}`", names::suggest_name(name))),
        );
    }
    let spec = &p.spec;
    unsupported_fields(&mut c, spec);
    label_selectors(&mut c, spec);
    let lists = lists(&mut c, spec);
    let monitor = options(&mut c, spec);
    let loader = spec.loader.as_ref().is_some_and(|l| **l);
    if spec.tracepoints.is_empty()
        && spec.kprobes.is_empty()
        && spec.uprobes.is_empty()
        && spec.usdts.is_empty()
        && spec.lsmhooks.is_empty()
        && !loader
        && spec.fentries.is_none()
    {
        c.at(
            spec.span(),
            "spec",
            "the policy has no hook",
            Some(
                "add `tracepoints:`, `kprobes:`, `uprobes:`, `usdts:`, `lsmhooks:` or `loader: true`"
                    .into(),
            ),
        );
    }
    let mut out = Vec::new();
    for (i, tp) in spec.tracepoints.iter().enumerate() {
        out.push(hooks::tracepoint(
            &mut c,
            tp,
            &format!("spec.tracepoints[{i}]"),
            &lists,
        ));
    }
    for (i, k) in spec.kprobes.iter().enumerate() {
        let hook = hooks::kprobe(&mut c, k, &format!("spec.kprobes[{i}]"), &lists);
        out.extend(hooks::expand_list(hook, &lists));
    }
    for (i, u) in spec.uprobes.iter().enumerate() {
        out.extend(hooks::uprobe(
            &mut c,
            u,
            &format!("spec.uprobes[{i}]"),
            &lists,
        ));
    }
    for (i, h) in spec.lsmhooks.iter().enumerate() {
        out.push(hooks::lsm(
            &mut c,
            h,
            &format!("spec.lsmhooks[{i}]"),
            &lists,
        ));
    }
    for (i, u) in spec.usdts.iter().enumerate() {
        out.push(hooks::usdt(&mut c, u, &format!("spec.usdts[{i}]"), &lists));
    }
    let enforcers = enforcers(&mut c, spec, &lists, &out);
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let scope = spec::Scope {
        namespace: namespaced
            .then(|| p.metadata.namespace.as_ref().map(|n| n.as_str().to_owned()))
            .flatten(),
        pods: spec.pod_selector.as_ref().map(|s| (**s).clone()),
        containers: spec.container_selector.as_ref().map(|s| (**s).clone()),
    };
    Ok(Validated {
        spec: spec::Policy {
            name: name.to_owned(),
            monitor,
            scope: (scope != spec::Scope::default()).then_some(scope),
            hooks: out,
            enforcers,
            loader,
        },
        warnings: c.warnings,
    })
}

/// `enforcers`: each call as the kernel function its enforcer hooks (`sys_dup`, and a
/// list's syscalls, as the architecture's wrapper `__x64_sys_dup`; a wrapper's own name
/// as it is, `__ia32_sys_dup` too). A `NotifyEnforcer` needs some; enforcers without one
/// do nothing, which is said.
fn enforcers(
    c: &mut Check,
    s: &Spanned<Spec>,
    lists: &[List],
    hooks: &[spec::Hook],
) -> Vec<String> {
    let function = |call: &str| -> Option<String> {
        use crate::policy::place::{SYSCALL_WRAPPER_PREFIX, syscall_of};
        match syscall_of(call) {
            Ok(name) => Some(format!("{SYSCALL_WRAPPER_PREFIX}{name}")),
            // Another architecture's wrapper (`__ia32_sys_dup`), as it is.
            Err(_) if call.starts_with("__") && call.contains("_sys_") => Some(call.to_owned()),
            Err(_) => None,
        }
    };
    let mut out: Vec<String> = Vec::new();
    for (i, e) in s.enforcers.iter().enumerate() {
        for (j, call) in e.calls.iter().enumerate() {
            let path = format!("spec.enforcers[{i}].calls[{j}]");
            let names: Vec<String> = match call.strip_prefix("list:") {
                Some(name) => match lists.iter().find(|l| l.name == name) {
                    Some(l) if l.pattern.is_none() => l.calls.clone(),
                    Some(_) => {
                        c.at(
                            call.span(),
                            path,
                            format!("`{}`: an enforcer stops syscalls, and a `generated_ftrace` list names other kernel functions", call.as_str()),
                            Some("use a list of type `syscalls`".into()),
                        );
                        continue;
                    }
                    None => {
                        c.at(
                            call.span(),
                            path,
                            format!("`{}` names no list of `spec.lists`", call.as_str()),
                            None,
                        );
                        continue;
                    }
                },
                None => vec![call.as_str().to_owned()],
            };
            for n in names {
                match function(&n) {
                    Some(f) if !out.contains(&f) => out.push(f),
                    Some(_) => {}
                    None => c.at(
                        call.span(),
                        path.clone(),
                        format!("`{n}` is not a syscall: an enforcer stops syscalls"),
                        Some(
                            "write `sys_NAME` (`sys_dup`), or `list:NAME` of a list of syscalls"
                                .into(),
                        ),
                    ),
                }
            }
        }
    }
    let notifies = hooks.iter().any(|h| {
        h.selectors.iter().any(|sel| {
            sel.actions
                .iter()
                .any(|a| matches!(a, spec::Action::NotifyEnforcer { .. }))
        })
    });
    if notifies && s.enforcers.is_empty() {
        c.at(
            s.span(),
            "spec",
            "`NotifyEnforcer` stops the thread's next call of a syscall of `spec.enforcers`, and the policy has none",
            Some("add `enforcers: [{calls: [sys_NAME]}]`".into()),
        );
    } else if !notifies && let Some(e) = s.enforcers.first() {
        c.warn(
            e.span(),
            "spec.enforcers",
            "`enforcers` act when a selector's `NotifyEnforcer` matched, and no selector has one: they do nothing",
            Some("add `matchActions: [{action: NotifyEnforcer, argError: -1}]` to a selector, or remove `enforcers`".into()),
        );
    }
    out
}

/// The spec's fields that are Tetragon's but not the tracer's yet.
fn unsupported_fields(c: &mut Check, s: &Spanned<Spec>) {
    for (field, name) in [
        (&s.fentries, "fentries"),
        (&s.host_selector, "hostSelector"),
        (&s.node_selector, "nodeSelector"),
        (&s.selectors_macros, "selectorsMacros"),
    ] {
        c.unsupported(field, &format!("spec.{name}"), &format!("`{name}`"));
    }
}

/// A label selector of the spec, its name, and the keys it may use (any: `None`).
type Named<'a> = (
    &'a Option<Spanned<LabelSelector>>,
    &'a str,
    Option<[&'a str; 2]>,
);

/// `podSelector` and `containerSelector`: their operators, and the container keys.
fn label_selectors(c: &mut Check, s: &Spanned<Spec>) {
    let selectors: [Named<'_>; 2] = [
        (&s.pod_selector, "podSelector", None),
        (
            &s.container_selector,
            "containerSelector",
            Some(["name", "repo"]),
        ),
    ];
    for (selector, name, keys) in selectors {
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
}

/// A `spec.lists` entry, read: its name, its syscalls' numbers, and their names as a
/// `list:NAME` kprobe calls them (`sys_dup`).
pub(super) struct List {
    pub name: String,
    pub syscalls: Vec<u32>,
    pub calls: Vec<String>,
    /// `generated_ftrace`: its regular expression.
    pub pattern: Option<String>,
}

fn lists(c: &mut Check, s: &Spanned<Spec>) -> Vec<List> {
    let mut out = Vec::new();
    for (i, l) in s.lists.iter().enumerate() {
        let path = format!("spec.lists[{i}]");
        c.unsupported(&l.validated, &format!("{path}.validated"), "`validated`");
        let mut syscalls = Vec::new();
        let mut calls = Vec::new();
        if c.one_of(
            &l.ty,
            &format!("{path}.type"),
            "list type",
            &["syscalls", "generated_syscalls", "generated_ftrace"],
            &[],
        ) {
            if l.ty.as_str() == "generated_ftrace" {
                match &l.pattern {
                    None => c.at(
                        l.ty.span(),
                        &path,
                        "a `generated_ftrace` list is the kernel functions its `pattern` matches: it needs one",
                        Some("add `pattern: \"^ksys_\"` (a regular expression)".into()),
                    ),
                    Some(p) => {
                        if let Err(e) = regex::Regex::new(p.as_str()) {
                            c.at(
                                p.span(),
                                format!("{path}.pattern"),
                                format!("`{}` is not a regular expression: {e}", p.as_str()),
                                None,
                            );
                        }
                    }
                }
            } else if l.ty.as_str() == "generated_syscalls" {
                // Every syscall of this architecture, as Tetragon generates the list.
                for no in syscalls::Sysno::iter() {
                    syscalls.extend(u32::try_from(no.id()).ok());
                    calls.push(format!("sys_{}", no.name()));
                }
            } else {
                for (j, v) in l.values.iter().enumerate() {
                    if let Some(nr) = hooks::syscall_number(c, v, &format!("{path}.values[{j}]")) {
                        syscalls.push(nr);
                        calls.push(v.as_str().to_owned());
                    }
                }
                c.values_present(&l.values, l.name.span(), &path);
            }
        }
        out.push(List {
            name: l.name.as_str().to_owned(),
            syscalls,
            calls,
            pattern: (l.ty.as_str() == "generated_ftrace")
                .then(|| l.pattern.as_ref().map(|p| p.as_str().to_owned()))
                .flatten(),
        });
    }
    out
}

/// `spec.options`; whether the policy is in monitor mode.
fn options(c: &mut Check, s: &Spanned<Spec>) -> bool {
    let mut monitor = false;
    for (i, o) in s.options.iter().enumerate() {
        let path = format!("spec.options[{i}]");
        match o.name.as_str() {
            "policy-mode" => match o.value.as_ref().map(|v| v.as_str()) {
                Some("monitor") => monitor = true,
                Some("enforce") => monitor = false,
                _ => c.at(
                    o.value.as_ref().map_or(o.name.span(), |v| v.span()),
                    format!("{path}.value"),
                    "`policy-mode` takes `monitor` or `enforce`",
                    Some("write `value: monitor`".into()),
                ),
            },
            "disable-kprobe-multi" | "disable-uprobe-multi" => c.warn(
                o.name.span(),
                format!("{path}.name"),
                format!(
                    "option `{}` has no effect: the tracer attaches each function on its own",
                    o.name.as_str()
                ),
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
    monitor
}

/// The problems found so far, and the warnings.
pub(super) struct Check {
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Check {
    pub(super) fn at(
        &mut self,
        span: &Span,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: Option<String>,
    ) {
        self.problems.push(Problem::new(span, path, message, fix));
    }

    /// What the document says that is read otherwise than written, or ignored.
    pub(super) fn warn(
        &mut self,
        span: &Span,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: Option<String>,
    ) {
        self.warnings.push(Problem::new(span, path, message, fix));
    }

    /// Warns that field `key` of action `action` at `path` goes with other actions
    /// (`owners`: "`Set`") and is ignored.
    pub(super) fn ignored(
        &mut self,
        span: &Span,
        path: &str,
        key: &str,
        owners: &str,
        action: &str,
    ) {
        self.warn(
            span,
            format!("{path}.{key}"),
            format!("`{key}` goes with {owners}, not `{action}`: ignored"),
            Some("remove it".into()),
        );
    }

    pub(super) fn unsupported(&mut self, field: &Unsupported, path: &str, what: &str) {
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
    pub(super) fn one_of(
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

    /// `value` read through `table` (name, typed value), or the problem said.
    pub(super) fn choose<T: Copy>(
        &mut self,
        value: &Spanned<String>,
        path: &str,
        what: &str,
        table: &[(&str, T)],
    ) -> Option<T> {
        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        if !self.one_of(value, path, what, &names, &[]) {
            return None;
        }
        table
            .iter()
            .find(|(n, _)| *n == value.as_str())
            .map(|(_, t)| *t)
    }

    pub(super) fn at_most<T>(
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
    pub(super) fn filter_values<T>(&mut self, values: &[Spanned<T>], operator: &Span, path: &str) {
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

    pub(super) fn values_present<T>(&mut self, values: &[T], span: &Span, path: &str) {
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
