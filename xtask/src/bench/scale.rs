//! `scale`: what N tracing policies cost a hot syscall when their hooks run on every call
//! and reject it, for each kind of selector, on this host.
//!
//! Each kind has N = 1, 8, 32, 128 and 1000 policies (1, 8 and 128 with `--quick`), one
//! file, one hook and one selector each, in a directory the agent watches
//! (`--tracing-policy-dir`), every one rejecting the workload's calls:
//!
//! | kind | hook | selector (policy i) | workload |
//! | --- | --- | --- | --- |
//! | `binary` | `sys_enter_getppid` | `matchBinaries` `In` `/usr/bin/never-runs-i` | sysloop |
//! | `pid` | `sys_enter_getppid` | `matchPIDs` `In` pid_max + 1 + i | sysloop |
//! | `namespace` | `sys_enter_getppid` | `matchNamespaces` `Mnt` `In` inode 1000000 + i | sysloop |
//! | `capability` | `sys_enter_getppid` | `matchCapabilities` `Effective` `NotIn` `CAP_SYS_ADMIN` | sysloop (root) |
//! | `pod` | `sys_enter_getppid` | `podSelector` `app: never-i` (an API server with no pods) | sysloop |
//! | `int` | `sys_enter_getpgid` | `matchArgs` `pid` `Equal` 100000 + i | getpgid(0) loop |
//! | `string` | `sys_enter_openat` | `matchArgs` filename `Prefix` `/never-i/` | openat of a missing path |
//!
//! Setups of each (kind, N), interleaved A B C D within each round: `none` (no tracer),
//! `floor` (`tracer floor`: the same tracepoint with a program that returns at once),
//! `tracer` (the agent with the N policies) and `bpftrace` (N probes on the same
//! tracepoint, each with a filter of the same nature that rejects: `comm` stands in for
//! what bpftrace cannot filter on). A setup that cannot start (bpftrace over the kernel's
//! limit of programs per tracepoint, an agent that refuses some of the policies) is
//! reported as failed with its reason, taken from its stderr, and not tried again in later
//! rounds; the others go on.
//!
//! Then, with 1, 100 and 1000 binary policies: seconds from the agent's start to ready
//! (its `--ready-file`), its resident memory and the kernel memory of its BPF maps; and,
//! with 1000 loaded, the time to add one more policy file to the directory.
//!
//! Targets (reported, never asserted): at most 30 ns per call above the floor for one
//! rejecting hook of any kind; 128 such policies at most twice what one costs; 100
//! policies ready in under 5 s; one more added in under 200 ms; memory flat per policy.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, bail};
use serde_json::json;

use super::{
    Ctx, RunRecord, Values, absent_pid, median, paired,
    report::{self, BenchResult, Panel, Row, Status},
    run::{self, Running, Setup, Sink, numbers},
    series, spread,
};
use crate::setup::{cargo, status, workspace_root};

/// Policies per kind: the full run's and `--quick`'s.
const COUNTS: [usize; 5] = [1, 8, 32, 128, 1000];
const QUICK_COUNTS: [usize; 3] = [1, 8, 128];
/// Policies of the load-time and memory runs.
const LOAD_COUNTS: [usize; 3] = [1, 100, 1000];

/// ns per call above the floor that one rejecting hook may cost.
const ABOVE_FLOOR_NS: f64 = 30.0;
/// What N policies may cost over one: at most `GROWTH_MAX` times, at N = `GROWTH_AT`.
const GROWTH_AT: usize = 128;
const GROWTH_MAX: f64 = 2.0;
/// Seconds to ready with 100 policies; ms to add one with 1000 loaded.
const READY_100_S: f64 = 5.0;
const ADD_ONE_MS: f64 = 200.0;
/// How long to wait for the agent to say what it did with the added policy (it polls the
/// directory every second).
const ADD_TIMEOUT: Duration = Duration::from_secs(30);

/// The syscalls the workloads call, each on its own tracepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Getppid,
    Getpgid,
    Openat,
}

impl Call {
    fn event(self) -> &'static str {
        match self {
            Call::Getppid => "sys_enter_getppid",
            Call::Getpgid => "sys_enter_getpgid",
            Call::Openat => "sys_enter_openat",
        }
    }

    fn tracepoint(self) -> String {
        format!("syscalls/{}", self.event())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Binary,
    Pid,
    Namespace,
    Capability,
    Pod,
    Int,
    String,
}

const KINDS: [Kind; 7] = [
    Kind::Binary,
    Kind::Pid,
    Kind::Namespace,
    Kind::Capability,
    Kind::Pod,
    Kind::Int,
    Kind::String,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Binary => "binary",
            Kind::Pid => "pid",
            Kind::Namespace => "namespace",
            Kind::Capability => "capability",
            Kind::Pod => "pod",
            Kind::Int => "int",
            Kind::String => "string",
        }
    }

    /// What its policies filter on, for the table.
    fn selector(self) -> &'static str {
        match self {
            Kind::Binary => "matchBinaries",
            Kind::Pid => "matchPIDs",
            Kind::Namespace => "matchNamespaces",
            Kind::Capability => "matchCapabilities",
            Kind::Pod => "podSelector",
            Kind::Int => "matchArgs on an int",
            Kind::String => "matchArgs Prefix on a string",
        }
    }

    fn call(self) -> Call {
        match self {
            Kind::Int => Call::Getpgid,
            Kind::String => Call::Openat,
            _ => Call::Getppid,
        }
    }
}

/// What the policies and probes are written with, read from this machine.
struct Host {
    /// `kernel.pid_max`: no pid reaches it.
    pid_max: u64,
    /// The index of `sys_enter_getpgid`'s `pid` field, as `args[].index` counts.
    getpgid_pid: usize,
}

impl Host {
    fn read() -> anyhow::Result<Host> {
        let format = tracepoint_format(Call::Getpgid.event())?;
        Ok(Host {
            pid_max: absent_pid(),
            getpgid_pid: field_index(&format, "pid")
                .context("sys_enter_getpgid's format has no `pid` field")?,
        })
    }
}

fn tracepoint_format(event: &str) -> anyhow::Result<String> {
    let paths = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .map(|t| format!("{t}/events/syscalls/{event}/format"));
    paths
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .with_context(|| format!("cannot read {} (is tracefs mounted?)", paths[0]))
}

/// The index of field `name` in a tracepoint's format, counting every field from 0, the
/// common ones included (`args[].index` counts so: openat's filename is 6).
fn field_index(format: &str, name: &str) -> Option<usize> {
    format
        .lines()
        .filter_map(|l| l.trim().strip_prefix("field:"))
        .position(|decl| {
            let decl = decl.split(';').next().unwrap_or_default();
            decl.split(|c: char| c.is_whitespace() || c == '*')
                .rfind(|w| !w.is_empty())
                .is_some_and(|w| w.split('[').next() == Some(name))
        })
}

// ---------------------------------------------------------------------------------
// Policies and probes

fn policy_name(kind: Kind, i: usize) -> String {
    format!("scale-{}-{i}", kind.name())
}

/// Policy `i` of `kind`, named `name`: one hook, one selector that rejects the workload.
fn policy(kind: Kind, name: &str, i: usize, host: &Host) -> String {
    let head = format!(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n"
    );
    let hook = |args: &str, selectors: &str| {
        format!(
            "  tracepoints:\n  - subsystem: syscalls\n    event: {}\n{args}{selectors}",
            kind.call().event()
        )
    };
    let selector = |s: &str| format!("    selectors:\n    - {s}");
    let spec = match kind {
        Kind::Binary => hook(
            "",
            &selector(&format!(
                "matchBinaries:\n      - operator: In\n        values: [\"/usr/bin/never-runs-{i}\"]\n"
            )),
        ),
        Kind::Pid => hook(
            "",
            &selector(&format!(
                "matchPIDs:\n      - operator: In\n        values: [{}]\n",
                host.pid_max + 1 + i as u64
            )),
        ),
        Kind::Namespace => hook(
            "",
            &selector(&format!(
                "matchNamespaces:\n      - namespace: Mnt\n        operator: In\n        values: [\"{}\"]\n",
                absent_ns_inode(i)
            )),
        ),
        Kind::Capability => hook(
            "",
            &selector(
                "matchCapabilities:\n      - type: Effective\n        operator: NotIn\n        values: [\"CAP_SYS_ADMIN\"]\n",
            ),
        ),
        Kind::Pod => format!(
            "  podSelector:\n    matchLabels:\n      app: never-{i}\n{}",
            hook("", "")
        ),
        Kind::Int => {
            let at = host.getpgid_pid;
            hook(
                &format!("    args:\n    - index: {at}\n      type: int\n"),
                &selector(&format!(
                    "matchArgs:\n      - index: {at}\n        operator: Equal\n        values: [\"{}\"]\n",
                    100_000 + i
                )),
            )
        }
        Kind::String => hook(
            "    args:\n    - index: 6\n      type: string\n",
            &selector(&format!(
                "matchArgs:\n      - index: 6\n        operator: Prefix\n        values: [\"/never-{i}/\"]\n"
            )),
        ),
    };
    head + &spec
}

/// A mount namespace inode no namespace has: the kernel numbers namespaces from
/// 0xF0000000 up (`PROC_DYNAMIC_FIRST`).
fn absent_ns_inode(i: usize) -> u64 {
    1_000_000 + i as u64
}

/// bpftrace's filter standing for policy `i`'s selector.
fn bpftrace_filter(kind: Kind, i: usize, host: &Host) -> String {
    match kind {
        // bpftrace cannot filter on binaries, namespaces, capabilities or pods: the
        // process name stands in.
        Kind::Binary | Kind::Namespace | Kind::Capability | Kind::Pod => {
            format!("comm == \"never-{i}\"")
        }
        Kind::Pid => format!("pid == {}", host.pid_max + 1 + i as u64),
        Kind::Int => format!("args->pid == {}", 100_000 + i),
        Kind::String => format!("str(args->filename) == \"/never-{i}/\""),
    }
}

fn bpftrace_program(kind: Kind, n: usize, host: &Host) -> String {
    (0..n)
        .map(|i| {
            format!(
                "tracepoint:syscalls:{} /{}/ {{}}\n",
                kind.call().event(),
                bpftrace_filter(kind, i, host)
            )
        })
        .collect()
}

/// `dir`, emptied, with one file per policy.
fn write_policies(
    dir: &Path,
    n: usize,
    text: impl Fn(usize) -> (String, String),
) -> anyhow::Result<()> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for i in 0..n {
        let (name, body) = text(i);
        let path = dir.join(format!("{name}.yaml"));
        fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// The test API server, for pod-scoped policies

/// `test-apiserver` (the integration tests' API server, serving no objects) while this
/// lives: the agent refuses pod-scoped policies without an API server.
struct ApiServer {
    child: Child,
    stdin: Option<ChildStdin>,
    kubeconfig: PathBuf,
}

impl ApiServer {
    fn start(work: &Path) -> anyhow::Result<ApiServer> {
        eprintln!("xtask: building the test API server (release), for pod-scoped policies");
        status(cargo().args([
            "build",
            "--release",
            "--package",
            "integration",
            "--bin",
            "test-apiserver",
        ]))?;
        let bin = workspace_root().join("target/release/test-apiserver");
        let dir = work.join("apiserver");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let log = fs::File::create(work.join("apiserver.log"))
            .context("cannot create the API server's log")?;
        let mut child = Command::new(&bin)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let mut server = ApiServer {
            child,
            stdin,
            kubeconfig: PathBuf::from(line.trim()),
        };
        if !server.kubeconfig.is_file() {
            server.stop();
            bail!(
                "test-apiserver printed `{}`, not its kubeconfig",
                line.trim()
            );
        }
        Ok(server)
    }

    /// Closes its stdin, which stops it; killed if it has not within 5 s.
    fn stop(&mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------
// What the agent did with its policies, from its log

/// What one line of the agent's log says of a policy.
#[derive(Debug, PartialEq)]
enum PolicyLine {
    /// `policy NAME loaded from SOURCE`, with `in X ms` (its install time) once the agent
    /// logs it.
    Loaded { name: String, ms: Option<f64> },
    /// `policy NAME partly loaded from SOURCE: ...`.
    Partly { name: String, line: String },
    /// `policy refused: SOURCE: REASON`; the name when the reason starts with it.
    Refused {
        name: Option<String>,
        reason: String,
    },
}

fn policy_line(line: &str) -> Option<PolicyLine> {
    let (_, rest) = line.split_once(" policy ")?;
    if let Some(refused) = rest.strip_prefix("refused: ") {
        // SOURCE is `PATH:LINE`; the error after it says `policy NAME: why`.
        let reason = refused.split_once(": ").map_or(refused, |(_, r)| r);
        let name = reason
            .strip_prefix("policy ")
            .and_then(|r| r.split_once(": "))
            .map(|(n, _)| n.to_owned());
        return Some(PolicyLine::Refused {
            name,
            reason: reason.to_owned(),
        });
    }
    let (name, source) = rest.split_once(" loaded from ")?;
    if let Some(name) = name.strip_suffix(" partly") {
        return Some(PolicyLine::Partly {
            name: name.to_owned(),
            line: format!("policy {rest}"),
        });
    }
    let ms = source
        .rsplit_once(" in ")
        .and_then(|(_, t)| t.trim().strip_suffix(" ms"))
        .and_then(|t| t.trim().parse().ok());
    Some(PolicyLine::Loaded {
        name: name.to_owned(),
        ms,
    })
}

/// The policies an agent's log says it loaded, and why the others were not.
#[derive(Debug, Default)]
struct Loads {
    loaded: BTreeSet<String>,
    /// Reasons, without the policy's name, with how many policies each stopped, and the
    /// first of them.
    not_loaded: BTreeMap<String, (usize, String)>,
}

impl Loads {
    fn read(log: &str) -> Loads {
        let mut loads = Loads::default();
        for line in log.lines() {
            let (name, reason) = match policy_line(line) {
                Some(PolicyLine::Loaded { name, .. }) => {
                    loads.loaded.insert(name);
                    continue;
                }
                Some(PolicyLine::Partly { name, line }) => (name, line),
                Some(PolicyLine::Refused { name, reason }) => {
                    let name = name.unwrap_or_default();
                    let general = reason
                        .strip_prefix(&format!("policy {name}: "))
                        .unwrap_or(&reason)
                        .to_owned();
                    (name, general)
                }
                None => continue,
            };
            let e = loads.not_loaded.entry(reason).or_insert((0, name));
            e.0 += 1;
        }
        loads
    }

    /// Why not all of `n` loaded, or `None` when they did.
    fn shortfall(&self, n: usize) -> Option<String> {
        if self.loaded.len() >= n {
            return None;
        }
        let mut why: Vec<(&String, &(usize, String))> = self.not_loaded.iter().collect();
        why.sort_by_key(|(_, (count, _))| std::cmp::Reverse(*count));
        let reasons: Vec<String> = why
            .iter()
            .take(2)
            .map(|(reason, (count, first))| format!("{count} refused ({first} first): {reason}"))
            .collect();
        Some(format!(
            "{} of {n} policies loaded; {}",
            self.loaded.len(),
            if reasons.is_empty() {
                "the log says nothing of the others".to_owned()
            } else {
                reasons.join("; ")
            }
        ))
    }
}

/// What a tracer's stderr says of why it stopped: its last line, leaving out bpftrace's
/// warnings, its echo of the program, its progress and its note on RLIMIT_MEMLOCK (which
/// it cannot raise in a container, and which a 5.11+ kernel does not need). When that
/// line is bpftrace's own `ERROR:` and the line before it is the kernel's answer
/// (`ioctl(PERF_EVENT_IOC_SET_BPF): Argument list too long`), both.
fn reason_in_log(log: &str) -> Option<String> {
    let noise = |t: &&str| {
        t.is_empty()
            || t.contains("RLIMIT_MEMLOCK")
            || t.contains("WARNING")
            || t.starts_with('~')
            || t.starts_with("tracepoint:")
            || t.starts_with("BEGIN")
            || t.starts_with("Attaching ")
    };
    let mut said = log.lines().map(str::trim).rev().filter(|l| !noise(l));
    let last = said.next()?;
    match said.next() {
        Some(before) if last.starts_with("ERROR:") && !before.starts_with("ERROR:") => {
            Some(format!("{before} ({last})"))
        }
        _ => Some(last.to_owned()),
    }
}

/// Kernel's answer to a program past its limit on one tracepoint, and what it means.
const E2BIG: &str = "Argument list too long";
const E2BIG_MEANS: &str = "`Argument list too long` (E2BIG) when attaching: the kernel runs at most 64 BPF programs on one tracepoint (BPF_TRACE_MAX_PROGS), and bpftrace loads one program per probe";

/// Other tracers running now (the agent or bpftrace, not started by this benchmark):
/// their hooks on the same syscalls add to every setup alike, and their CPU time adds
/// noise. `pid: command line` each.
fn other_tracers() -> Vec<String> {
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id().to_string();
    procs
        .filter_map(Result::ok)
        .filter_map(|p| {
            let pid = p.file_name().to_string_lossy().into_owned();
            let comm = fs::read_to_string(p.path().join("comm")).ok()?;
            if !matches!(comm.trim(), "tracer" | "bpftrace") {
                return None;
            }
            let status = fs::read_to_string(p.path().join("status")).ok()?;
            let parent = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .map(str::trim)?;
            if parent == me {
                return None;
            }
            let cmd = fs::read(p.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            Some(format!("{pid}: {}", cmd.trim()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// The cells: (kind, N)

/// One (kind, N): its runs, named by setup, and the setups that failed, with why.
struct Cell {
    kind: Kind,
    n: usize,
    runs: Vec<RunRecord>,
    failed: BTreeMap<&'static str, String>,
}

impl Cell {
    /// The median ns per call of `setup`.
    fn ns(&self, setup: &str) -> f64 {
        median(&series(&self.runs, setup, "ns_per_call"))
    }

    /// The per-round `setup − floor`, in ns per call.
    fn above_floor_rounds(&self, setup: &str) -> Vec<f64> {
        paired(&self.runs, "floor", setup, "ns_per_call", |f, x| x - f)
    }

    fn above_floor(&self, setup: &str) -> f64 {
        median(&self.above_floor_rounds(setup))
    }

    /// Why `setup` has no figure, when it has none.
    fn missing(&self, setup: &str) -> Option<String> {
        if self.ns(setup).is_finite() && self.ns("floor").is_finite() {
            return None;
        }
        Some(
            self.failed
                .get(setup)
                .or_else(|| self.failed.get("floor"))
                .cloned()
                .unwrap_or_else(|| "not measured".to_owned()),
        )
    }
}

fn setups(kind: Kind, n: usize, dir: &Path, host: &Host, api: Option<&ApiServer>) -> Vec<Setup> {
    let tracepoint = kind.call().tracepoint();
    let dir = dir.display().to_string();
    let mut tracer = Setup::agent("tracer", &["--tracing-policy-dir", &dir], Sink::DevNull);
    if let (Kind::Pod, Some(api)) = (kind, api) {
        tracer = tracer.with_env("KUBECONFIG", &api.kubeconfig.display().to_string());
    }
    // bpftrace's own limits (512 probes and programs) raised, so that what stops it, if
    // anything, is the kernel's.
    let limit = (n + 16).to_string();
    let bpftrace = Setup::bpftrace("bpftrace", bpftrace_program(kind, n, host))
        .with_env("BPFTRACE_MAX_PROBES", &limit)
        .with_env("BPFTRACE_MAX_BPF_PROGS", &limit);
    vec![
        Setup::none(),
        Setup::floor("floor", &tracepoint),
        tracer,
        bpftrace,
    ]
}

/// How long each measurement of a cell calls, and how many measurements (their median).
#[derive(Clone, Copy)]
struct Sizes {
    secs: f64,
    reps: usize,
}

/// Runs `setups` interleaved for `rounds` rounds; a setup that fails is recorded, with
/// its reason, and left out of the later rounds.
fn measure(ctx: &Ctx, kind: Kind, n: usize, setups: &[Setup], rounds: usize, sizes: Sizes) -> Cell {
    let mut cell = Cell {
        kind,
        n,
        runs: Vec::new(),
        failed: BTreeMap::new(),
    };
    for round in 1..=rounds {
        for setup in setups {
            if cell.failed.contains_key(setup.name) {
                continue;
            }
            let tag = format!("scale-{}-{n}-{round}-{}", kind.name(), setup.name);
            match one_run(ctx, kind, n, setup, &tag, sizes) {
                Ok(values) => {
                    eprintln!(
                        "xtask: scale {} N={n} round {round}/{rounds} {:<8} {}",
                        kind.name(),
                        setup.name,
                        report::brief(&values)
                    );
                    cell.runs.push(RunRecord {
                        setup: setup.name,
                        round,
                        values,
                    });
                }
                Err(reason) => {
                    eprintln!(
                        "xtask: scale {} N={n} round {round}/{rounds} {:<8} failed: {reason}",
                        kind.name(),
                        setup.name
                    );
                    cell.failed.insert(setup.name, reason);
                }
            }
        }
    }
    cell
}

/// One run of one setup: the tracer started (and, for the agent, every policy loaded),
/// the workload, the tracer stopped. The error is the reason, for the table.
fn one_run(
    ctx: &Ctx,
    kind: Kind,
    n: usize,
    setup: &Setup,
    tag: &str,
    sizes: Sizes,
) -> Result<Values, String> {
    let mut t = Running::start(&ctx.tracer, &ctx.work, setup, tag, false).map_err(|e| {
        let log = fs::read_to_string(ctx.work.join(format!("{tag}.log"))).unwrap_or_default();
        let error = format!("{e:#}");
        let first = error.lines().next().unwrap_or_default();
        match reason_in_log(&log) {
            Some(r) if first.contains("timed out") => format!("{r} ({first})"),
            Some(r) => r,
            None => first.to_owned(),
        }
    })?;
    if t.is_agent() {
        let log = fs::read_to_string(t.log()).unwrap_or_default();
        if let Some(why) = Loads::read(&log).shortfall(n) {
            let _ = t.stop();
            return Err(why);
        }
    }
    let measured = (|| -> anyhow::Result<Values> {
        t.mark()?;
        let ns = call_ns(ctx, kind.call(), sizes)?;
        Ok(Values::from([("ns_per_call".to_owned(), ns)]))
    })();
    let mut values = measured.map_err(|e| format!("{e:#}"))?;
    stop(t, &mut values).map_err(|e| format!("{e:#}"))?;
    Ok(values)
}

/// Stops the tracer and adds its CPU time, and the agent's policy counters summed over
/// its policies (a thousand policies' own would swamp report.json).
fn stop(t: Running, v: &mut Values) -> anyhow::Result<()> {
    let traced = t.pid().is_some();
    let s = t.stop()?;
    if traced {
        v.insert("cpu_s".into(), s.cpu_s);
    }
    for (k, x) in &s.summary {
        v.insert(format!("agent.{k}"), *x);
    }
    for counters in s.policies.values() {
        for (k, x) in counters {
            *v.entry(format!("policies.{k}")).or_default() += *x;
        }
    }
    Ok(())
}

/// ns per call of `call`'s loop: the median of `sizes.reps` loops of `sizes.secs`.
fn call_ns(ctx: &Ctx, call: Call, sizes: Sizes) -> anyhow::Result<f64> {
    let secs = sizes.secs.to_string();
    let mut xs = Vec::new();
    for _ in 0..sizes.reps {
        let mut cmd = match call {
            Call::Getppid => Command::new(&ctx.tools.sysloop),
            Call::Getpgid => {
                let mut c = Command::new(&ctx.tools.scaleloop);
                c.arg("getpgid");
                c
            }
            Call::Openat => {
                let mut c = Command::new(&ctx.tools.scaleloop);
                c.arg("openat");
                c
            }
        };
        if call == Call::Getppid {
            cmd.arg("-t");
        }
        let out = run::output(cmd.arg(&secs))?;
        let n = numbers(&out);
        let (Some(calls), Some(ns)) = (n.first(), n.get(1)) else {
            bail!("the {} loop printed `{}`", call.event(), out.trim());
        };
        xs.push(ns / calls);
    }
    Ok(median(&xs))
}

// ---------------------------------------------------------------------------------
// Load time and memory

/// What the agent did with one policy added to its directory.
#[derive(Debug)]
enum Added {
    /// Its install time, as the agent logged it (`loaded from SOURCE in X ms`).
    Logged(f64),
    /// Wall time from the file written to the agent's line (an agent that does not log
    /// the install time): includes up to a second of the directory's poll.
    Wall(f64),
    Refused(String),
    NotSeen,
}

/// An agent started with `n` binary policies.
struct LoadRun {
    n: usize,
    loaded: usize,
    shortfall: Option<String>,
    ready_s: f64,
    rss_kib: f64,
    maps_kib: f64,
    cpu_s: f64,
    added: Option<Added>,
}

impl LoadRun {
    fn values(&self) -> Values {
        let mut v = Values::from([
            ("policies".to_owned(), self.n as f64),
            ("loaded".to_owned(), self.loaded as f64),
            ("ready_s".to_owned(), self.ready_s),
            ("rss_kib".to_owned(), self.rss_kib),
            ("bpf_maps_kib".to_owned(), self.maps_kib),
            ("cpu_s".to_owned(), self.cpu_s),
        ]);
        match self.added {
            Some(Added::Logged(ms)) => {
                v.insert("add_one_install_ms".into(), ms);
            }
            Some(Added::Wall(ms)) => {
                v.insert("add_one_wall_ms".into(), ms);
            }
            _ => {}
        }
        v
    }
}

fn load_run(ctx: &Ctx, host: &Host, n: usize, add: bool) -> anyhow::Result<LoadRun> {
    let base = ctx.work.join("scale");
    let dir = base.join(format!("load-{n}"));
    let ready = base.join(format!("load-{n}.ready"));
    let _ = fs::remove_file(&ready);
    write_policies(&dir, n, |i| {
        let name = format!("scale-load-{i}");
        let text = policy(Kind::Binary, &name, i, host);
        (name, text)
    })?;
    let (d, r) = (dir.display().to_string(), ready.display().to_string());
    let setup = Setup::agent(
        "tracer",
        &["--tracing-policy-dir", &d, "--ready-file", &r],
        Sink::DevNull,
    );
    let started = SystemTime::now();
    let t = Running::start(
        &ctx.tracer,
        &ctx.work,
        &setup,
        &format!("scale-load-{n}"),
        false,
    )?;
    let ready_at = fs::metadata(&ready)
        .and_then(|m| m.modified())
        .with_context(|| format!("the agent is ready but {} has no time", ready.display()))?;
    let ready_s = ready_at
        .duration_since(started)
        .unwrap_or_default()
        .as_secs_f64();
    let loads = Loads::read(&fs::read_to_string(t.log()).unwrap_or_default());
    // What the start left behind settles.
    std::thread::sleep(Duration::from_secs(1));
    let pid = t.pid().context("the agent has no pid")?;
    let rss_kib = run::memory(pid)?.get("VmRSS").copied().unwrap_or(f64::NAN);
    let maps_kib = bpf_map_memlock(pid) / 1024.0;
    let added = add.then(|| add_one(&t, &dir, host));
    let s = t.stop()?;
    let _ = fs::remove_dir_all(&dir);
    let run = LoadRun {
        n,
        loaded: loads.loaded.len(),
        shortfall: loads.shortfall(n),
        ready_s,
        rss_kib,
        maps_kib,
        cpu_s: s.cpu_s,
        added,
    };
    eprintln!(
        "xtask: scale load {n} policies: {} loaded, ready in {ready_s:.2} s, {:.1} MiB resident, {:.1} MiB of BPF maps{}",
        run.loaded,
        rss_kib / 1024.0,
        maps_kib / 1024.0,
        run.added
            .as_ref()
            .map_or(String::new(), |a| format!("; one more: {a:?}"))
    );
    Ok(run)
}

/// Writes one more policy into the watched directory and waits for the agent's word on
/// it.
fn add_one(t: &Running, dir: &Path, host: &Host) -> Added {
    let name = "scale-load-extra";
    let text = policy(Kind::Binary, name, 999_999, host);
    let from = fs::metadata(t.log()).map_or(0, |m| m.len() as usize);
    // Written aside and renamed, so that the agent never reads half of it.
    let part = dir.join(format!("{name}.part"));
    if let Err(e) = fs::write(&part, text) {
        return Added::Refused(format!("cannot write {}: {e}", part.display()));
    }
    let written = Instant::now();
    if let Err(e) = fs::rename(&part, dir.join(format!("{name}.yaml"))) {
        return Added::Refused(format!("cannot rename {}: {e}", part.display()));
    }
    while written.elapsed() < ADD_TIMEOUT {
        let log = fs::read(t.log()).unwrap_or_default();
        let new = String::from_utf8_lossy(log.get(from..).unwrap_or_default());
        for line in new.lines() {
            match policy_line(line) {
                Some(PolicyLine::Loaded { name: n, ms }) if n == name => {
                    return match ms {
                        Some(ms) => Added::Logged(ms),
                        None => Added::Wall(written.elapsed().as_secs_f64() * 1e3),
                    };
                }
                Some(PolicyLine::Partly { name: n, line }) if n == name => {
                    return Added::Refused(line);
                }
                Some(PolicyLine::Refused {
                    name: Some(n),
                    reason,
                }) if n == name => {
                    return Added::Refused(reason);
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Added::NotSeen
}

/// Bytes of kernel memory of the BPF maps a process holds: the `memlock:` of each map
/// (the fdinfo files with a `map_type:` line), each map once.
fn bpf_map_memlock(pid: i32) -> f64 {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return f64::NAN;
    };
    let mut maps = BTreeMap::new();
    for fd in fds.filter_map(Result::ok) {
        if let Ok(info) = fs::read_to_string(fd.path())
            && let Some((id, bytes)) = map_memlock(&info)
        {
            maps.insert(id, bytes);
        }
    }
    maps.values().sum()
}

/// (map id, memlock bytes) of a map's fdinfo; `None` for any other descriptor.
fn map_memlock(fdinfo: &str) -> Option<(u64, f64)> {
    let field = |k: &str| {
        fdinfo
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
    };
    field("map_type:")?;
    let bytes = field("memlock:")?.parse().ok()?;
    let id = field("map_id:").and_then(|v| v.parse().ok()).unwrap_or(0);
    Some((id, bytes))
}

// ---------------------------------------------------------------------------------
// The benchmark

pub fn scale(ctx: &Ctx) -> anyhow::Result<BenchResult> {
    let host = Host::read()?;
    let counts: &[usize] = if ctx.quick { &QUICK_COUNTS } else { &COUNTS };
    let sizes = if ctx.quick {
        Sizes { secs: 0.5, reps: 1 }
    } else {
        Sizes { secs: 1.0, reps: 3 }
    };
    let rounds = ctx.scale_rounds;
    eprintln!(
        "xtask: scale: {} kinds × N = {counts:?} × 4 setups × {rounds} round(s), {} × {} s a run; then load time and memory",
        KINDS.len(),
        sizes.reps,
        sizes.secs
    );
    let mut notes = Vec::new();
    let others = other_tracers();
    if !others.is_empty() {
        note(
            &mut notes,
            format!(
                "other tracers were running when the benchmark started (their hooks add to every setup alike, their CPU time adds noise): {}",
                others.join("; ")
            ),
        );
    }
    let cells = measure_cells(ctx, &host, counts, rounds, sizes, &mut notes)?;
    let loads = load_runs(ctx, &host, &mut notes);
    let still = other_tracers();
    if !still.is_empty() && still != others {
        notes.push(format!(
            "other tracers were running when the benchmark ended: {}",
            still.join("; ")
        ));
    }
    if cells
        .iter()
        .any(|c| c.failed.values().any(|why| why.contains(E2BIG)))
    {
        notes.push(E2BIG_MEANS.to_owned());
    }
    notes.push(format!(
        "{rounds} round(s); each run the median of {} loop(s) of {} s; `tracer − floor` and `bpftrace − floor` are medians of per-round differences",
        sizes.reps, sizes.secs
    ));
    let mut r = report_of(&cells, &loads, counts);
    r.notes = notes;
    Ok(r)
}

/// Says `why` now, and keeps it for the report's notes.
fn note(notes: &mut Vec<String>, why: String) {
    eprintln!("xtask: scale: {why}");
    notes.push(why);
}

/// Every (kind, N), each in a policy directory of its own, removed once measured; the
/// pod kind with the test API server.
fn measure_cells(
    ctx: &Ctx,
    host: &Host,
    counts: &[usize],
    rounds: usize,
    sizes: Sizes,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Cell>> {
    let api = ApiServer::start(&ctx.work)
        .map_err(|e| {
            note(
                notes,
                format!(
                    "pod: the test API server could not start ({e:#}); the agent runs without one, and refuses the pod-scoped policies"
                ),
            );
        })
        .ok();
    let mut cells = Vec::new();
    for kind in KINDS {
        for &n in counts {
            let dir = ctx.work.join("scale").join(format!("{}-{n}", kind.name()));
            write_policies(&dir, n, |i| {
                let name = policy_name(kind, i);
                let text = policy(kind, &name, i, host);
                (name, text)
            })?;
            let setups = setups(kind, n, &dir, host, api.as_ref());
            cells.push(measure(ctx, kind, n, &setups, rounds, sizes));
            let _ = fs::remove_dir_all(&dir);
        }
    }
    Ok(cells)
}

/// An agent with each of `LOAD_COUNTS` policies; with the most, one more added.
fn load_runs(ctx: &Ctx, host: &Host, notes: &mut Vec<String>) -> Vec<LoadRun> {
    let most = LOAD_COUNTS[LOAD_COUNTS.len() - 1];
    let mut loads = Vec::new();
    for n in LOAD_COUNTS {
        match load_run(ctx, host, n, n == most) {
            Ok(l) => loads.push(l),
            Err(e) => note(
                notes,
                format!("load time with {n} policies: not measured: {e:#}"),
            ),
        }
    }
    loads
}

// ---------------------------------------------------------------------------------
// The report

/// ns for the tables: one decimal under 1000.
fn ns(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() < 1000.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn plus_ns(x: f64) -> String {
    if x.is_finite() && x >= 0.0 {
        format!("+{}", ns(x))
    } else {
        ns(x)
    }
}

/// `rounds MIN–MAX; ` when there is more than one.
fn rounds_spread(xs: &[f64]) -> String {
    if xs.len() > 1 {
        format!("rounds {}; ", spread(xs, 1))
    } else {
        String::new()
    }
}

fn find(cells: &[Cell], kind: Kind, n: usize) -> Option<&Cell> {
    cells.iter().find(|c| c.kind == kind && c.n == n)
}

/// `tracer − floor` at N over the same at N = 1.
fn growth(cells: &[Cell], cell: &Cell) -> f64 {
    let one = find(cells, cell.kind, 1).map_or(f64::NAN, |c| c.above_floor("tracer"));
    if one > 0.0 {
        cell.above_floor("tracer") / one
    } else {
        f64::NAN
    }
}

fn report_of(cells: &[Cell], loads: &[LoadRun], counts: &[usize]) -> BenchResult {
    let mut r = BenchResult::new(&[], Vec::new(), Vec::new());
    r.setups = ["none", "floor", "tracer", "bpftrace"]
        .map(str::to_owned)
        .to_vec();
    for kind in KINDS {
        r.rows.extend(kind_rows(cells, kind, counts));
    }
    r.rows.extend(load_rows(loads));
    r.tables.push(matrix(cells));
    r.panels = panels(cells);
    r.data = Some(json!({
        "counts": counts,
        "cells": cells.iter().map(|c| cell_json(cells, c)).collect::<Vec<_>>(),
        "load": loads.iter().map(load_json).collect::<Vec<_>>(),
    }));
    // Every run, named by its cell.
    for c in cells {
        for run in &c.runs {
            let setup: &'static str =
                Box::leak(format!("{}/{}/{}", c.kind.name(), c.n, run.setup).into_boxed_str());
            r.runs.push(RunRecord {
                setup,
                round: run.round,
                values: run.values.clone(),
            });
        }
    }
    for l in loads {
        let setup: &'static str = Box::leak(format!("load/{}", l.n).into_boxed_str());
        r.runs.push(RunRecord {
            setup,
            round: 1,
            values: l.values(),
        });
    }
    r
}

/// A kind's rows: one hook above the floor (target), 128 over 1 (target), and every N.
fn kind_rows(cells: &[Cell], kind: Kind, counts: &[usize]) -> Vec<Row> {
    let mut rows: Vec<Row> = find(cells, kind, 1)
        .map(one_policy_row)
        .into_iter()
        .collect();
    rows.extend(find(cells, kind, GROWTH_AT).map(|c| growth_row(cells, c)));
    rows.push(every_count_row(cells, kind, counts));
    rows
}

/// One policy of `cell`'s kind: `tracer − floor` against its target.
fn one_policy_row(cell: &Cell) -> Row {
    let kind = cell.kind;
    let added = cell.above_floor("tracer");
    let (value, status) = match cell.missing("tracer") {
        Some(why) => (format!("failed: {why}"), Status::Missed("failed".into())),
        None => (
            format!(
                "{} ns ({}none {}, floor {}, tracer {})",
                plus_ns(added),
                rounds_spread(&cell.above_floor_rounds("tracer")),
                ns(cell.ns("none")),
                ns(cell.ns("floor")),
                ns(cell.ns("tracer"))
            ),
            if added <= ABOVE_FLOOR_NS {
                Status::Met
            } else {
                Status::Missed(format!("by {:.1} ns", added - ABOVE_FLOOR_NS))
            },
        ),
    };
    Row {
        what: format!(
            "{} ({} on {}): ns per call above the floor, 1 policy",
            kind.name(),
            kind.selector(),
            kind.call().event()
        ),
        value,
        target: format!("≤ {ABOVE_FLOOR_NS:.0} ns"),
        status,
    }
}

/// `GROWTH_AT` policies over one, against its target.
fn growth_row(cells: &[Cell], cell: &Cell) -> Row {
    let g = growth(cells, cell);
    let (value, status) = match cell.missing("tracer") {
        Some(why) => (format!("failed: {why}"), Status::Missed("failed".into())),
        None => (
            format!("×{g:.2} ({} ns)", plus_ns(cell.above_floor("tracer"))),
            if g <= GROWTH_MAX {
                Status::Met
            } else if g.is_finite() {
                Status::Missed(format!("by ×{:.2}", g - GROWTH_MAX))
            } else {
                Status::Missed("no figure at N = 1".into())
            },
        ),
    };
    Row {
        what: format!(
            "{}: ns above the floor, {GROWTH_AT} policies over 1",
            cell.kind.name()
        ),
        value,
        target: format!("≤ {GROWTH_MAX:.0}×"),
        status,
    }
}

/// `tracer − floor` and `bpftrace − floor` at every N of `kind`.
fn every_count_row(cells: &[Cell], kind: Kind, counts: &[usize]) -> Row {
    let each = |setup: &str| -> String {
        counts
            .iter()
            .map(|&n| match find(cells, kind, n) {
                Some(c) if c.missing(setup).is_none() => plus_ns(c.above_floor(setup)),
                Some(_) => "failed".into(),
                None => "n/a".into(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ns_list: Vec<String> = counts.iter().map(usize::to_string).collect();
    Row::info(
        &format!(
            "{}: ns above the floor at N = {}",
            kind.name(),
            ns_list.join(", ")
        ),
        format!("tracer {}; bpftrace {}", each("tracer"), each("bpftrace")),
        "",
    )
}

fn load_rows(loads: &[LoadRun]) -> Vec<Row> {
    let mut rows = Vec::new();
    if loads.is_empty() {
        return rows;
    }
    let list = |f: &dyn Fn(&LoadRun) -> String| loads.iter().map(f).collect::<Vec<_>>().join(" / ");
    let counts = list(&|l| l.n.to_string());
    let loaded = list(&|l| l.loaded.to_string());
    let hundred = loads.iter().find(|l| l.n == 100);
    rows.push(Row {
        what: format!("seconds from start to ready, {counts} policies (binary)"),
        value: format!(
            "{} s ({loaded} loaded)",
            list(&|l| format!("{:.2}", l.ready_s))
        ),
        target: format!("< {READY_100_S:.0} s with 100"),
        status: match hundred {
            None => Status::Missed("not measured".into()),
            Some(l) if l.shortfall.is_some() => {
                Status::Missed(format!("{} of 100 loaded", l.loaded))
            }
            Some(l) if l.ready_s < READY_100_S => Status::Met,
            Some(l) => Status::Missed(format!("by {:.2} s", l.ready_s - READY_100_S)),
        },
    });
    for l in loads.iter().filter(|l| l.shortfall.is_some()) {
        rows.push(Row::info(
            &format!("policies not loaded, {}", l.n),
            l.shortfall.clone().unwrap_or_default(),
            "",
        ));
    }
    if let Some(last) = loads.iter().find(|l| l.added.is_some()) {
        rows.push(added_row(last));
    }
    rows.extend(memory_rows(loads));
    rows
}

fn added_row(l: &LoadRun) -> Row {
    let what = format!("adding one policy with {} loaded", l.n);
    let target = format!("< {ADD_ONE_MS:.0} ms");
    match &l.added {
        Some(Added::Logged(ms)) => Row {
            what,
            value: format!("{ms:.1} ms (install time, from the agent's log)"),
            target,
            status: if *ms < ADD_ONE_MS {
                Status::Met
            } else {
                Status::Missed(format!("by {:.1} ms", ms - ADD_ONE_MS))
            },
        },
        // The directory is polled every second: wall time says little of the install.
        Some(Added::Wall(ms)) => Row::info(
            &what,
            format!(
                "{ms:.0} ms wall time, file written to log line (the agent does not log its install time; the directory is polled every second)"
            ),
            &format!("{target} (install time)"),
        ),
        Some(Added::Refused(why)) => Row {
            what,
            value: format!("refused: {why}"),
            target,
            status: Status::Missed("refused".into()),
        },
        _ => Row {
            what,
            value: format!("not loaded within {} s", ADD_TIMEOUT.as_secs()),
            target,
            status: Status::Missed("not loaded".into()),
        },
    }
}

/// Per loaded policy, between two runs: (resident, maps) in KiB.
fn per_policy(a: &LoadRun, b: &LoadRun) -> Option<(f64, f64)> {
    let k = b.loaded.checked_sub(a.loaded).filter(|k| *k > 0)? as f64;
    Some(((b.rss_kib - a.rss_kib) / k, (b.maps_kib - a.maps_kib) / k))
}

fn memory_rows(loads: &[LoadRun]) -> Vec<Row> {
    let list = |f: &dyn Fn(&LoadRun) -> String| loads.iter().map(f).collect::<Vec<_>>().join(" / ");
    let counts = list(&|l| l.n.to_string());
    let mut rows = vec![
        Row::info(
            &format!("resident memory (VmRSS), {counts} policies"),
            format!("{} MiB", list(&|l| format!("{:.1}", l.rss_kib / 1024.0))),
            "",
        ),
        Row::info(
            &format!("kernel memory of its BPF maps (memlock), {counts} policies"),
            format!("{} MiB", list(&|l| format!("{:.1}", l.maps_kib / 1024.0))),
            "",
        ),
    ];
    let (Some(first), Some(last)) = (loads.first(), loads.last()) else {
        return rows;
    };
    let middle = loads
        .get(loads.len() / 2)
        .filter(|m| m.n != first.n && m.n != last.n);
    let shown = |x: Option<(f64, f64)>| {
        x.map_or("n/a".to_owned(), |(rss, maps)| {
            format!("resident {rss:+.1} KiB, maps {maps:+.1} KiB")
        })
    };
    let whole = per_policy(first, last);
    let (early, late) = match middle {
        Some(m) => (per_policy(first, m), per_policy(m, last)),
        None => (None, None),
    };
    let mut value = format!("{} → {}: {}", first.n, last.n, shown(whole));
    if let Some(m) = middle {
        let _ = write!(
            value,
            "; {} → {}: {}; {} → {}: {}",
            first.n,
            m.n,
            shown(early),
            m.n,
            last.n,
            shown(late)
        );
    }
    if last.loaded < last.n {
        let _ = write!(
            value,
            " (per loaded policy: {} of {} loaded)",
            last.loaded, last.n
        );
    }
    // Flat: the later policies cost no more each than the earlier ones (10 % and 1 KiB
    // of slack for the noise of resident memory).
    let flat = |e: f64, l: f64| l <= e.max(0.0) * 1.1 + 1.0;
    rows.push(Row {
        what: "memory per policy".into(),
        value,
        target: "flat once shared code is loaded (each later policy ≤ each earlier one)".into(),
        status: match (early, late) {
            (Some((er, em)), Some((lr, lm))) if flat(er, lr) && flat(em, lm) => Status::Met,
            (Some(_), Some(_)) => Status::Missed("later policies cost more each".into()),
            _ => Status::Missed(format!(
                "not measured: {} of {} policies loaded",
                last.loaded, last.n
            )),
        },
    });
    rows
}

/// Every (kind, N): each setup's ns per call, and the differences.
fn matrix(cells: &[Cell]) -> String {
    let mut t = String::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut note = |why: String| -> String {
        let i = reasons.iter().position(|r| *r == why).unwrap_or_else(|| {
            reasons.push(why);
            reasons.len() - 1
        });
        format!("failed [{}]", i + 1)
    };
    let _ = writeln!(
        t,
        "| kind | N | none | floor | tracer | bpftrace | tracer − floor | × N=1 | bpftrace − floor |"
    );
    let _ = writeln!(t, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for c in cells {
        let mut col = |setup: &str| match c.failed.get(setup) {
            Some(why) if !c.ns(setup).is_finite() => note(why.clone()),
            _ => ns(c.ns(setup)),
        };
        let (none, floor, tracer, bpftrace) =
            (col("none"), col("floor"), col("tracer"), col("bpftrace"));
        let diff = |setup: &str, shown: &str| {
            if c.missing(setup).is_some() {
                shown.to_owned()
            } else {
                plus_ns(c.above_floor(setup))
            }
        };
        let g = growth(cells, c);
        let _ = writeln!(
            t,
            "| {} | {} | {none} | {floor} | {tracer} | {bpftrace} | {} | {} | {} |",
            c.kind.name(),
            c.n,
            diff("tracer", &tracer),
            if c.n == 1 || !g.is_finite() || c.missing("tracer").is_some() {
                String::new()
            } else {
                format!("{g:.2}")
            },
            diff("bpftrace", &bpftrace),
        );
    }
    if !reasons.is_empty() {
        let _ = writeln!(t);
        for (i, r) in reasons.iter().enumerate() {
            let _ = writeln!(t, "[{}] {}  ", i + 1, r.replace('|', "/"));
        }
    }
    t
}

/// ns above the floor against N, per kind, for the agent and for bpftrace; with the
/// floor itself over no tracer (getppid's).
fn panels(cells: &[Cell]) -> Vec<Panel> {
    let line = |kind: Kind, setup: &str| -> (String, Vec<(f64, f64)>) {
        let pts = cells
            .iter()
            .filter(|c| c.kind == kind && c.missing(setup).is_none())
            .map(|c| (c.n as f64, c.above_floor(setup)))
            .collect();
        (kind.name().to_owned(), pts)
    };
    let floor = (
        "floor over none (getppid)".to_owned(),
        cells
            .iter()
            .filter(|c| c.kind == Kind::Binary)
            .map(|c| {
                (
                    c.n as f64,
                    median(&paired(&c.runs, "none", "floor", "ns_per_call", |a, b| {
                        b - a
                    })),
                )
            })
            .collect(),
    );
    ["tracer", "bpftrace"]
        .into_iter()
        .map(|setup| {
            let mut series: Vec<(String, Vec<(f64, f64)>)> =
                KINDS.iter().map(|k| line(*k, setup)).collect();
            series.push(floor.clone());
            Panel {
                title: format!("Scale: {setup}, ns per call above the floor"),
                unit: "ns".into(),
                target: (setup == "tracer")
                    .then(|| (ABOVE_FLOOR_NS, format!("target {ABOVE_FLOOR_NS:.0} ns"))),
                series,
                x_unit: "policies (N)".into(),
                ..Panel::default()
            }
        })
        .collect()
}

fn cell_json(cells: &[Cell], c: &Cell) -> serde_json::Value {
    let finite = |x: f64| x.is_finite().then_some(x);
    json!({
        "kind": c.kind.name(),
        "n": c.n,
        "tracepoint": c.kind.call().tracepoint(),
        "selector": c.kind.selector(),
        "ns_per_call": {
            "none": finite(c.ns("none")),
            "floor": finite(c.ns("floor")),
            "tracer": finite(c.ns("tracer")),
            "bpftrace": finite(c.ns("bpftrace")),
        },
        "tracer_above_floor_ns": finite(c.above_floor("tracer")),
        "growth_over_n1": finite(growth(cells, c)),
        "bpftrace_above_floor_ns": finite(c.above_floor("bpftrace")),
        "failed": c.failed,
    })
}

fn load_json(l: &LoadRun) -> serde_json::Value {
    let added = match &l.added {
        None => serde_json::Value::Null,
        Some(Added::Logged(ms)) => json!({"install_ms": ms}),
        Some(Added::Wall(ms)) => json!({"wall_ms": ms}),
        Some(Added::Refused(why)) => json!({"refused": why}),
        Some(Added::NotSeen) => json!({"not_seen_within_s": ADD_TIMEOUT.as_secs()}),
    };
    json!({
        "policies": l.n,
        "loaded": l.loaded,
        "not_loaded": l.shortfall,
        "ready_s": l.ready_s,
        "rss_kib": l.rss_kib,
        "bpf_maps_kib": l.maps_kib,
        "add_one": added,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_from_the_common_ones() {
        let format = "name: sys_enter_openat\nID: 782\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n";
        assert_eq!(field_index(format, "filename"), Some(6));
        assert_eq!(field_index(format, "dfd"), Some(5));
        assert_eq!(field_index(format, "pid"), None);
    }

    #[test]
    fn the_agents_policy_lines_are_read() {
        let p = |l: &str| policy_line(l);
        assert_eq!(
            p(
                "2026-12-05T17:29:59.403701Z  INFO tracer::policy: policy scale-pod-1 loaded from /tmp/pp/scale-pod-1.yaml:1"
            ),
            Some(PolicyLine::Loaded {
                name: "scale-pod-1".into(),
                ms: None
            })
        );
        assert_eq!(
            p(
                "2026-12-05T17:29:59.403701Z  INFO tracer::policy: policy x loaded from /d/x.yaml:1 in 3.25 ms"
            ),
            Some(PolicyLine::Loaded {
                name: "x".into(),
                ms: Some(3.25)
            })
        );
        assert_eq!(
            p("2026-12-05T17:22:59.871034Z ERROR tracer::policy: policy refused: /tmp/pt/scale-binary-19.yaml:1: policy scale-binary-19: all 32 tracepoint slots are in use; remove a policy first"),
            Some(PolicyLine::Refused {
                name: Some("scale-binary-19".into()),
                reason: "policy scale-binary-19: all 32 tracepoint slots are in use; remove a policy first".into()
            })
        );
        assert_eq!(
            p(
                "INFO tracer::policy::store: policy scale-binary-13: syscalls/sys_enter_getppid runs on its tracepoint"
            ),
            None
        );
        assert!(matches!(
            p("WARN tracer::policy: policy y partly loaded from /d/y.yaml:1: 1 of its hooks are not running"),
            Some(PolicyLine::Partly { name, .. }) if name == "y"
        ));
    }

    #[test]
    fn a_shortfall_says_how_many_and_why() {
        let log = "\
INFO tracer::policy: policy a loaded from /d/a.yaml:1
ERROR tracer::policy: policy refused: /d/b.yaml:1: policy b: all 32 tracepoint slots are in use; remove a policy first
ERROR tracer::policy: policy refused: /d/c.yaml:1: policy c: all 32 tracepoint slots are in use; remove a policy first
";
        let loads = Loads::read(log);
        assert_eq!(loads.shortfall(1), None);
        assert_eq!(
            loads.shortfall(3).as_deref(),
            Some(
                "1 of 3 policies loaded; 2 refused (b first): all 32 tracepoint slots are in use; remove a policy first"
            )
        );
    }

    #[test]
    fn a_tracers_reason_is_its_last_line_that_says_something() {
        let log = "ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace.\nAttaching 129 probes...\nioctl(PERF_EVENT_IOC_SET_BPF): Argument list too long\nERROR: Error attaching probe: tracepoint:syscalls:sys_enter_getppid\n";
        assert_eq!(
            reason_in_log(log).as_deref(),
            Some(
                "ioctl(PERF_EVENT_IOC_SET_BPF): Argument list too long (ERROR: Error attaching probe: tracepoint:syscalls:sys_enter_getppid)"
            )
        );
        assert_eq!(
            reason_in_log("INFO x\ntracer: no kernel BTF\n").as_deref(),
            Some("tracer: no kernel BTF")
        );
        assert_eq!(reason_in_log(""), None);
    }

    #[test]
    fn map_memory_is_read_from_map_descriptors_only() {
        let map = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1039\nmap_type:\t1\nkey_size:\t4\nvalue_size:\t8\nmax_entries:\t1024\nmap_flags:\t0x0\nmap_extra:\t0x0\nmemlock:\t90112\nmap_id:\t42\nfrozen:\t0\n";
        assert_eq!(map_memlock(map), Some((42, 90112.0)));
        let prog = "pos:\t0\nprog_type:\t5\nmemlock:\t4096\nprog_id:\t343\n";
        assert_eq!(map_memlock(prog), None);
    }

    #[test]
    fn each_kind_writes_a_policy_that_names_its_hook() {
        let host = Host {
            pid_max: 32768,
            getpgid_pid: 5,
        };
        for kind in KINDS {
            let text = policy(kind, &policy_name(kind, 3), 3, &host);
            assert!(text.starts_with("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\n"));
            assert!(text.contains(&format!("  name: scale-{}-3\n", kind.name())));
            assert!(text.contains(&format!("    event: {}\n", kind.call().event())));
        }
        assert!(policy(Kind::Pid, "p", 3, &host).contains("values: [32772]"));
        assert!(policy(Kind::Int, "p", 3, &host).contains("- index: 5\n      type: int"));
        assert_eq!(
            bpftrace_filter(Kind::String, 2, &host),
            "str(args->filename) == \"/never-2/\""
        );
    }
}
