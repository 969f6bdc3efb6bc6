//! A placed hook to what the kernel runs: its [`HookConfig`] (arguments to capture,
//! selectors), the string values of its filters, what its argument gate can use, and
//! what user space needs to write its events (names, argument types, message, tags).
//! Pure: everything it reads of the kernel comes through [`Facts`] (formats, host
//! namespaces), already gathered.
//!
//! - [`args`]: each argument, typed against the record's layout.
//! - [`selectors`]: one function per matcher (`matchPIDs`, `matchBinaries`, ...).

mod args;
mod selectors;
pub mod structs;

use std::collections::HashSet;

pub use args::{ArgError, ArgMeta, ArgOut};
pub use selectors::SelectorError;
use tracer_common::policy::{
    ARG_SOCK, BinFollow, FOLLOW_BITS, HOOK_CGROUP_SCOPE, HOOK_FD, HOOK_MONITOR, HOOK_SOCK_OWNER,
    HookConfig, LONG_PREFIX, MAX_HOOK_ARGS, MAX_SELECTORS, PREFIX_MAX, SOCK_RETURN,
};

use super::{
    facts::Facts,
    place::{self, Half, OverrideError, Point, Probe, Unit},
    spec,
};

/// A compiled hook.
#[derive(Debug, Clone)]
pub struct Hook {
    /// The tracepoint the hook's record comes from (`kprobe`/the function for a kprobe
    /// on the function).
    pub subsystem: String,
    pub event: String,
    /// The hook as the kernel runs it; the store sets its id, its list link and its gate.
    pub config: HookConfig,
    /// Where it runs.
    pub point: Point,
    /// A return half: the index, among its policy's hooks, of its entry.
    pub pair: Option<usize>,
    /// Set for a kprobe: its events are `process_kprobe`.
    pub kprobe: Option<KprobeMeta>,
    /// Set for a uprobe or USDT probe: its events are `process_uprobe` or
    /// `process_usdt`.
    pub user: Option<place::UserProbe>,
    /// Set for a BPF LSM hook (`spec.lsmhooks`): its events are `process_lsm`.
    pub lsm: Option<String>,
    pub args: Vec<ArgMeta>,
    pub message: Option<String>,
    pub tags: Vec<String>,
    /// `HP_VERDICT` and `HP_DEP_*`: what the process verdicts of its hook point need for
    /// this hook.
    pub process: u32,
    /// Per selector, its filters an argument gate can check (`Equal`, `Prefix`).
    pub gates: Vec<Vec<GateFilter>>,
    /// Per selector, the requests the agent makes when it matches (`GetUrl`,
    /// `DnsLookup`).
    pub requests: Vec<Vec<crate::policy::requests::Request>>,
}

/// A kprobe hook, for its events and for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KprobeMeta {
    pub call: String,
    pub on_kprobe: bool,
    /// The return half of a return probe (a kretprobe, or `sys_exit_NAME`).
    pub ret: bool,
    /// Its last argument is the return value.
    pub returns_value: bool,
    /// A socket function (else a syscall or another function).
    pub sock: bool,
    /// Its sockets are those of the file descriptors of the syscall that stands for it.
    pub from_fd: bool,
    pub program: Probe,
    /// Why it does not run on the function, where it does not.
    pub why_not: &'static str,
}

/// A filter an argument gate can check for its hook: the argument (as it is read) and
/// the values that can match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateFilter {
    /// How the argument is read (its `ArgConfig` without lookup flags).
    pub read: tracer_common::policy::ArgConfig,
    pub values: GateValues,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateValues {
    /// `Equal` on an integer.
    Ints(Vec<u64>),
    /// `Equal` (`prefix` false) or `Prefix` on a string.
    Strings { values: Vec<Vec<u8>>, prefix: bool },
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

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub name: String,
    pub monitor: bool,
    pub hooks: Vec<Hook>,
    pub strings: Vec<StrEntry>,
    pub follow: Vec<Follow>,
    /// The pods the policy applies to, where not all (`HOOK_CGROUP_SCOPE`).
    pub scope: Option<spec::Scope>,
    /// The hooks that cannot run on this kernel (no such tracepoint or field, no
    /// kprobes, no BPF LSM...), each with why: the others run.
    pub unplaced: Vec<FailedHook>,
    /// The functions of `enforcers` the enforcer program goes on (where the kernel
    /// lets a kprobe override a return; else each is in `unplaced`).
    pub enforcers: Vec<String>,
    /// `loader: true`: the policy reports executable mappings (`process_loader`), which
    /// needs no hook of its own.
    pub loader: bool,
}

/// A hook of a policy that is not running (not placed here, or not attached), and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedHook {
    /// `syscalls/sys_enter_openat`, `kprobe tcp_connect`, `return of kprobe ...`.
    pub hook: String,
    pub reason: String,
}

impl std::fmt::Display for FailedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.hook, self.reason)
    }
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

    fn follow_bit(&mut self) -> Result<u8, SelectorError> {
        let bit = (0..FOLLOW_BITS)
            .find(|b| self.follow_used & (1u64 << b) == 0)
            .ok_or(SelectorError::FollowBits { bits: FOLLOW_BITS })?;
        self.follow_used |= 1u64 << bit;
        Ok(bit as u8)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("policy {policy}: {hook}: {source}")]
    Hook {
        policy: String,
        hook: String,
        #[source]
        source: HookError,
    },
}

/// Why a hook of a policy does not compile.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("is traced twice in this policy; merge the two into one hook with several selectors")]
    TracedTwice,
    #[error("args[{arg}]: {source}")]
    Arg {
        arg: usize,
        #[source]
        source: ArgError,
    },
    /// A return half reads the return value as one more argument.
    #[error("a return probe reads at most {max} arguments besides the return value")]
    ReturnArgs { max: usize },
    #[error("returnArg: a `sock` is read from a kernel function's return, on a kprobe")]
    ReturnSock,
    #[error("returnArg: a return value cannot be read as `{}`", .ty.name())]
    ReturnType { ty: spec::ArgType },
    #[error("selectors[{selector}]: {source}")]
    Selector {
        selector: usize,
        #[source]
        source: SelectorError,
    },
    /// A `matchArgs` (or, past them, `matchReturnArgs`) filter of a selector.
    #[error("selectors[{selector}].matchArgs[{filter}]: {source}")]
    MatchArgs {
        selector: usize,
        filter: usize,
        #[source]
        source: SelectorError,
    },
    #[error(transparent)]
    Override(#[from] OverrideError),
    #[error("selectors[{selector}]: {source}")]
    Set {
        selector: usize,
        #[source]
        source: place::SetError,
    },
}

/// What every hook of one policy shares while it is compiled.
struct Ctx<'a> {
    policy_id: u32,
    monitor: bool,
    facts: &'a Facts,
    ids: &'a mut Ids,
    strings: Vec<StrEntry>,
    follow: Vec<Follow>,
}

/// How a hook is named in messages: `syscalls/sys_enter_openat`, `kprobe tcp_connect`.
fn label(target: &spec::Target) -> String {
    match target {
        spec::Target::Tracepoint { subsystem, event } => format!("{subsystem}/{event}"),
        spec::Target::RawTracepoint { subsystem, event } => {
            format!("{subsystem}/{event} (raw)")
        }
        spec::Target::Kprobe(k) if k.at_call => {
            format!("kprobe {} (its Override, at the call)", k.call)
        }
        spec::Target::Kprobe(k) => format!("kprobe {}", k.call),
        spec::Target::Uprobe(u) => format!("uprobe {} {}", u.path, u.name()),
        spec::Target::Usdt(u) => format!("usdt {} {}:{}", u.path, u.provider, u.name),
        spec::Target::Lsm { hook } => format!("lsm {hook}"),
    }
}

/// The hook of `p` that hooks what an earlier one does (as [`compile`] refuses), with
/// the error, found without the kernel: by name as written (the kernel's aliases of a
/// syscall's function, `sys_getpgid` and `__x64_sys_getpgid`, only [`compile`] sees).
pub fn traced_twice(p: &spec::Policy) -> Option<(&spec::Hook, CompileError)> {
    let mut seen = HashSet::new();
    p.hooks.iter().find_map(|h| {
        let label = label(&h.target);
        (!seen.insert(label.clone())).then(|| {
            (
                h,
                CompileError::Hook {
                    policy: p.name.clone(),
                    hook: label,
                    source: HookError::TracedTwice,
                },
            )
        })
    })
}

/// The hook points `p` takes (each distinct tracepoint or function it hooks), by name as
/// written.
pub fn hook_points(p: &spec::Policy) -> impl Iterator<Item = String> + '_ {
    p.hooks.iter().map(|h| label(&h.target))
}

/// Compiles `p`; `policy_id` keys its counters; `ids` numbers string filters and
/// `FOLLOW` bits across policies (advanced past the ones used).
pub fn compile(
    p: &spec::Policy,
    policy_id: u32,
    ids: &mut Ids,
    facts: &Facts,
) -> Result<Compiled, CompileError> {
    let name = p.name.clone();
    let mut ctx = Ctx {
        policy_id,
        monitor: p.monitor,
        facts,
        ids,
        strings: Vec::new(),
        follow: Vec::new(),
    };
    let mut hooks: Vec<Hook> = Vec::new();
    let mut unplaced = Vec::new();
    let mut seen = HashSet::new();
    let expanded = at_call(kernel_functions(&p.hooks, facts, &name, &mut unplaced));
    for h in &expanded {
        let label = label(&h.target);
        let err = |source: HookError| CompileError::Hook {
            policy: name.clone(),
            hook: label.clone(),
            source,
        };
        let units = match place::units(h, facts) {
            Ok(units) => units,
            Err(source) => {
                unplaced.push(FailedHook {
                    hook: label,
                    reason: source.to_string(),
                });
                continue;
            }
        };
        // Traced twice: the same tracepoint, or the same function (a syscall under its
        // two names, `sys_getpgid` and `__x64_sys_getpgid`).
        let at_call = matches!(&h.target, spec::Target::Kprobe(k) if k.at_call);
        let traced = match units.first() {
            Some(u) if !u.function.is_empty() && at_call => {
                format!("kprobe {} at the call", u.function)
            }
            Some(u) if !u.function.is_empty() => format!("kprobe {}", u.function),
            _ => label.clone(),
        };
        if !seen.insert(traced) {
            return Err(err(HookError::TracedTwice));
        }
        let mut halves = Vec::new();
        for unit in &units {
            match hook(unit, &mut ctx) {
                Ok(compiled) => halves.push((unit.half, compiled)),
                // The kernel does not run the program `Override` needs: like a hook that
                // cannot attach.
                Err(HookError::Override(
                    e @ (OverrideError::NoLsm { .. }
                    | OverrideError::NotOnFunction { .. }
                    | OverrideError::NoKprobeOverride { .. }),
                )) => {
                    unplaced.push(FailedHook {
                        hook: label.clone(),
                        reason: e.to_string(),
                    });
                    halves.clear();
                    break;
                }
                Err(e) => return Err(err(e)),
            }
        }
        for (half, mut compiled) in halves {
            if half == Half::Return {
                compiled.pair = Some(hooks.len() - 1);
            }
            hooks.push(compiled);
        }
    }
    // `Prefix` values longer than an LPM key holds go to the hash map, each under its
    // own length (`tracer-ebpf/src/policy/strings.rs`, `long_prefix`).
    for entry in &mut ctx.strings {
        if entry.map == StrMap::Prefix && entry.value.len() > PREFIX_MAX {
            entry.map = StrMap::Equal;
            entry.filter_id |= LONG_PREFIX;
        }
    }
    if p.scope.is_some() {
        for h in &mut hooks {
            h.config.flags |= HOOK_CGROUP_SCOPE;
            h.process |= tracer_common::policy::HP_VERDICT | tracer_common::policy::HP_DEP_CGROUP;
        }
    }
    let enforcers = if facts.kernel.kprobe_override {
        p.enforcers.clone()
    } else {
        unplaced.extend(p.enforcers.iter().map(|f| FailedHook {
            hook: format!("enforcer {f}"),
            reason: facts.kernel.override_off.to_owned(),
        }));
        Vec::new()
    };
    Ok(Compiled {
        name,
        monitor: p.monitor,
        hooks,
        strings: ctx.strings,
        follow: ctx.follow,
        scope: p.scope.clone(),
        unplaced,
        enforcers,
        loader: p.loader,
    })
}

/// A return probe whose selectors `Override` as two hooks: the return probe, its
/// selectors without their enforcing actions, posting the events with the return value;
/// and its twin at the call (`at_call`), those selectors' `Override`, `Sigkill` and
/// `Signal` with `NoPost`. (The return probe's selectors run at the return, after the
/// call an `Override` must stop.) A selector that also filters the return value stays as
/// it is, and is refused for it.
fn at_call(hooks: Vec<spec::Hook>) -> Vec<spec::Hook> {
    use spec::Action;
    let enforcing =
        |a: &Action| matches!(a, Action::Override(_) | Action::Sigkill | Action::Signal(_));
    let mut out = Vec::with_capacity(hooks.len());
    for h in hooks {
        let spec::Target::Kprobe(k) = &h.target else {
            out.push(h);
            continue;
        };
        let splits = k.ret
            && h.selectors.iter().any(|s| {
                s.return_args.is_empty()
                    && s.actions.iter().any(|a| matches!(a, Action::Override(_)))
            });
        if !splits {
            out.push(h);
            continue;
        }
        let mut twin = h.clone();
        if let spec::Target::Kprobe(k) = &mut twin.target {
            k.ret = false;
            k.return_arg = None;
            k.at_call = true;
        }
        twin.selectors = h
            .selectors
            .iter()
            .filter(|s| s.return_args.is_empty() && s.actions.iter().any(enforcing))
            .map(|s| {
                let mut s = s.clone();
                s.actions.retain(enforcing);
                s.actions.push(Action::NoPost);
                s.rate_limit_secs = None;
                s.kernel_stack = false;
                s.user_stack = false;
                s
            })
            .collect();
        let mut observe = h;
        for s in &mut observe.selectors {
            if s.return_args.is_empty() {
                s.actions.retain(|a| !enforcing(a));
            }
        }
        out.push(observe);
        out.push(twin);
    }
    out
}

/// The hooks as they run on this kernel: a kprobe on a `generated_ftrace` list as one
/// kprobe per kernel function its pattern matches (none matching: unplaced, saying so),
/// and a kprobe with `ignore.callNotFound` on a function this kernel lacks left out.
fn kernel_functions(
    hooks: &[spec::Hook],
    facts: &Facts,
    policy: &str,
    unplaced: &mut Vec<FailedHook>,
) -> Vec<spec::Hook> {
    let mut out = Vec::with_capacity(hooks.len());
    for h in hooks {
        let spec::Target::Kprobe(k) = &h.target else {
            out.push(h.clone());
            continue;
        };
        if let Some(pattern) = &k.ftrace_pattern {
            let failed = |reason: String| FailedHook {
                hook: format!("kprobe {}", k.call),
                reason,
            };
            let re = match regex::Regex::new(pattern) {
                Ok(re) => re,
                Err(e) => {
                    unplaced.push(failed(format!("`{pattern}`: {e}")));
                    continue;
                }
            };
            let Some(functions) = facts.functions() else {
                unplaced.push(failed("the kernel's functions cannot be listed (neither tracefs's available_filter_functions nor /proc/kallsyms can be read)".into()));
                continue;
            };
            let before = out.len();
            for f in functions.iter().filter(|f| re.is_match(f)) {
                let mut one = h.clone();
                if let spec::Target::Kprobe(k) = &mut one.target {
                    k.call.clone_from(f);
                    k.ftrace_pattern = None;
                    k.syscall = false;
                }
                out.push(one);
            }
            if out.len() == before {
                unplaced.push(failed(format!("no kernel function matches `{pattern}`")));
            }
            continue;
        }
        if k.ignore_missing && !k.syscall && facts.functions().is_some_and(|f| !f.contains(&k.call))
        {
            tracing::info!(
                "policy {policy}: kprobe {} left out: this kernel has no such function (ignore.callNotFound)",
                k.call
            );
            continue;
        }
        out.push(h.clone());
    }
    out
}

/// Compiles one unit of a hook.
fn hook(unit: &Unit<'_>, ctx: &mut Ctx<'_>) -> Result<Hook, HookError> {
    let h = unit.hook;
    // The entry half of a return probe only keeps the record: no selectors, nothing
    // reported.
    let entry = unit.half == Half::Entry;
    let mut config = HookConfig {
        policy_id: ctx.policy_id,
        flags: if ctx.monitor { HOOK_MONITOR } else { 0 },
        nargs: h.args.len().min(MAX_HOOK_ARGS) as u32,
        nsel: if entry {
            0
        } else {
            h.selectors.len().min(MAX_SELECTORS) as u32
        },
        ..Default::default()
    };
    let (mut metas, fields) = args::declared(unit, &mut config, ctx.facts)?;
    let ret = args::return_value(unit, &mut config, &mut metas)?;
    let mut overrides = false;
    let mut writes = false;
    let mut process = 0;
    let mut gates = Vec::new();
    if !entry {
        for (s, sel) in h.selectors.iter().take(MAX_SELECTORS).enumerate() {
            let inputs = selectors::Inputs {
                args: &h.args,
                metas: &metas,
                ret: ret.index,
            };
            let compiled = selectors::selector(sel, s, &inputs, &mut config, ctx)?;
            overrides |= compiled.overrides;
            process |= compiled.process;
            config.flags |= compiled.hook_flags;
            config.selectors[s] = compiled.config;
            gates.push(compiled.gates);
            // `Set`: the USDT argument it writes, in the process's memory.
            for a in &sel.actions {
                if let spec::Action::Set { arg, .. } = a {
                    config.selectors[s].set_arg =
                        place::set_target(unit, *arg).map_err(|source| HookError::Set {
                            selector: s,
                            source,
                        })?;
                    writes = true;
                }
            }
        }
    }
    if let spec::Target::Kprobe(k) = &h.target
        && let (Some(track), Some(i)) = (k.return_sock, ret.index)
    {
        // `returnArgAction`: on every selector (the first stands for none).
        let action = selectors::sock_action(track, i) | SOCK_RETURN;
        for sel in config.selectors.iter_mut().take(h.selectors.len().max(1)) {
            if sel.sock_action == 0 {
                sel.sock_action = action;
            }
        }
    }
    if config.args[..config.nargs as usize]
        .iter()
        .any(|a| a.kind == ARG_SOCK)
    {
        config.flags |= HOOK_SOCK_OWNER;
    }
    let at_return = unit.kprobe.and_then(|k| k.at_return);
    if unit.half == Half::Return
        && let Some(r) = at_return
    {
        config.flags |= r.flags;
        config.kprobe.sock_types = r.sock_types;
    }
    let probe = place::probe_program(unit.kprobe.as_ref(), unit.half, overrides)?;
    let reads = place::Reads {
        probe,
        sock_return: ret.sock_return,
        fields,
        writes,
    };
    let point = place::point(unit, &config, reads, ctx.facts.kernel);
    Ok(Hook {
        subsystem: unit.subsystem.clone(),
        event: unit.event.clone(),
        config,
        point,
        pair: None,
        user: unit.user.clone(),
        lsm: unit.kprobe.filter(|k| k.lsm).map(|_| unit.function.clone()),
        kprobe: unit
            .kprobe
            .filter(|k| !k.user && !k.lsm && !k.raw_tp)
            .map(|k| KprobeMeta {
                call: unit.function.clone(),
                on_kprobe: k.on_kprobe,
                program: probe,
                ret: unit.half == Half::Return,
                returns_value: ret.index.is_some(),
                sock: k.sock.is_some() || k.at_return.is_some(),
                from_fd: k.at_return.is_some_and(|r| r.flags & HOOK_FD != 0),
                why_not: if k.on_kprobe {
                    ""
                } else {
                    k.kernel.kprobes_off
                },
            }),
        args: metas,
        message: if entry { None } else { h.message.clone() },
        tags: if entry { Vec::new() } else { h.tags.clone() },
        process,
        gates,
        requests: h
            .selectors
            .iter()
            .map(|s| {
                s.actions
                    .iter()
                    .filter_map(|a| match a {
                        spec::Action::Request(r) if !entry => Some(r.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .collect(),
    })
}

impl Hook {
    /// The hook, for people: `syscalls/sys_enter_openat`, `kprobe tcp_connect`, `return
    /// of kprobe tcp_connect`.
    pub fn label(&self) -> String {
        if let Some(u) = &self.user {
            return u.label();
        }
        if let Some(h) = &self.lsm {
            return format!("lsm {h}");
        }
        match &self.kprobe {
            Some(k) if k.ret => format!("return of kprobe {}", k.call),
            Some(k) => format!("kprobe {}", k.call),
            None => format!("{}/{}", self.subsystem, self.event),
        }
    }

    /// Where the hook runs, for people; for a kprobe on a tracepoint that stands for its
    /// function, why.
    pub fn runs_on(&self) -> String {
        let text = self.place_text();
        match &self.kprobe {
            Some(k)
                if !k.on_kprobe
                    && !k.why_not.is_empty()
                    && !matches!(self.point.attach, place::Attach::RawSyscall { .. }) =>
            {
                format!("{text} ({})", k.why_not)
            }
            _ => text,
        }
    }

    fn place_text(&self) -> String {
        use place::Attach;
        if let Some(u) = &self.user {
            return format!("{} runs on a uprobe", u.label());
        }
        if let Some(h) = &self.lsm {
            return format!("lsm {h} runs on the BPF LSM hook {h}");
        }
        let tracepoint = format!("{}/{}", self.subsystem, self.event);
        if let Attach::RawTracepoint { tracepoint: tp } = &self.point.attach {
            return format!("{tracepoint} runs on the raw tracepoint {tp} (raw: true)");
        }
        let routed = match &self.point.attach {
            Attach::RawSyscall { dir, nr } => {
                let tp = if *dir == tracer_common::policy::SYSCALL_ENTER {
                    "sys_enter"
                } else {
                    "sys_exit"
                };
                Some(match nr {
                    Some(nr) => {
                        format!("raw tracepoint {tp}, syscall {nr} filtered in the program")
                    }
                    None => format!("raw tracepoint {tp}, every syscall"),
                })
            }
            _ => None,
        };
        match (&self.kprobe, routed) {
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
                Probe::Override => format!(
                    "kprobe {} runs on a kprobe that can override its return (to Override it)",
                    k.call
                ),
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
            (Some(k), Some(route)) => format!("kprobe {} runs on the {route}", k.call),
            (Some(k), None) if !k.sock => {
                format!("kprobe {} runs on the tracepoint {tracepoint}", k.call)
            }
            (Some(k), None) => format!(
                "kprobe {} runs on the tracepoint {tracepoint}, on the socket state changes a {} call makes",
                k.call, k.call
            ),
            (None, Some(route)) => format!("{tracepoint} runs on the {route}"),
            (None, None) => format!("{tracepoint} runs on its tracepoint"),
        }
    }
}

#[cfg(test)]
mod tests;
