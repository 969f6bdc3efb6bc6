//! `cargo xtask bench [--quick] [--only NAME...] [--rounds N] [--out DIR]`: what the
//! tracer costs on a node, and how much it carries, against no tracer and against
//! bpftrace doing the equivalent work.
//!
//! Each benchmark runs its workload under each of its setups (no tracer, the agent, and
//! bpftrace), interleaved A B C A B C ... for N rounds, a fresh agent each time; it
//! compares setups within a round (these machines are noisy: ratios within one run,
//! never absolute times across runs) and reports medians over the rounds. Then, in a
//! pass of its own with the kernel's BPF run statistics on, each eBPF program's
//! nanoseconds per run. The results go to a table on stdout, `DIR/report.json`,
//! `DIR/report.md` and a plot of the main figures, `DIR/bench.png` (`target/bench/` by
//! default).
//!
//! The benchmarks (`--only` takes these names):
//!
//! - `exec`: exec storm (a shell loop of `/bin/true` per CPU, and stress-ng's exec
//!   stressor): exec rate with the agent over without, exec and exit events delivered.
//! - `default`: a tight `getppid` loop under the default profile: ns added per syscall.
//! - `nomatch`: the same loop under a `raw_syscalls` policy whose selector rejects it.
//! - `pipeline`: a `raw_syscalls` policy that matches every call of the loop: events per
//!   second per core to the null sink, to JSON on /dev/null, to a JSON file; the loss.
//! - `overload`: twice the pipeline's capacity into a small ring buffer: every event
//!   either delivered or counted as lost, and said in the stream.
//! - `connect`: TCP connects to a loopback listener under a `tcp_connect` policy.
//! - `enforce`: a `Sigkill` policy on one binary during an exec storm of others.
//! - `userspace`: the agent's user-space stages alone (criterion, `tracer/benches/`).
//! - `memory`: the agent's resident memory idle, with 10,000 live processes, and after
//!   100,000 short ones.
//! - `scale`: N policies (1 to 1000) whose hooks run on every call of a hot syscall and
//!   reject it, for each kind of selector: ns per call above the tracepoint's floor (an
//!   eBPF program that returns at once there, `tracer floor`), against bpftrace with N
//!   filtered probes; the time to load 1, 100 and 1000 policies and to add one more, and
//!   the memory they take (`bench/scale.rs`).
//!
//! Benchmarks report; they never fail on speed. They need root (the agent and bpftrace
//! load eBPF programs); bpftrace, stress-ng and gcc are installed with apt-get when
//! missing.

mod plot;
mod report;
pub mod run;
mod scale;

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::setup::{cargo, status, workspace_root};
use report::{BenchResult, Panel, Row, Status};
use run::{Running, Setup, Sink, numbers, output};

/// The benchmarks, in the order they run.
pub const BENCHES: [(&str, &str); 10] = [
    ("exec", "Exec storm"),
    ("default", "Default profile, per syscall"),
    ("nomatch", "Syscall policy that matches nothing"),
    ("pipeline", "Syscall policy that matches everything"),
    (
        "overload",
        "Overload: twice the capacity, small ring buffer",
    ),
    ("connect", "Connect storm"),
    ("enforce", "Enforcement: Sigkill on one binary"),
    ("userspace", "User space alone (criterion)"),
    ("memory", "Memory"),
    ("scale", "Scale: N policies that reject, per syscall"),
];

pub struct Options {
    /// Only draw `bench.png` again from the last `report.json`.
    pub plot_only: bool,
    pub quick: bool,
    pub only: Vec<String>,
    pub rounds: Option<usize>,
    pub out: Option<PathBuf>,
    /// Keep the event streams once counted.
    pub keep_output: bool,
}

/// Sizes of the workloads: the full run, or `--quick`.
#[derive(Clone, Copy, Debug)]
struct Scale {
    /// `/bin/true` runs per shell loop (one loop per CPU).
    exec_iters: u64,
    stress_secs: u64,
    /// `getppid` calls per measurement, and measurements per run.
    sys_calls: u64,
    sys_reps: usize,
    /// Seconds of the pipeline and overload workloads.
    pipe_secs: f64,
    connects: u64,
    live: u64,
    short: u64,
}

impl Scale {
    fn new(quick: bool) -> Self {
        if quick {
            Scale {
                exec_iters: 600,
                stress_secs: 2,
                sys_calls: 2_000_000,
                sys_reps: 1,
                pipe_secs: 2.0,
                connects: 4_000,
                live: 2_000,
                short: 10_000,
            }
        } else {
            Scale {
                exec_iters: 2_500,
                stress_secs: 5,
                sys_calls: 5_000_000,
                sys_reps: 3,
                pipe_secs: 5.0,
                connects: 20_000,
                live: 10_000,
                short: 100_000,
            }
        }
    }
}

/// The programs the workloads run, built in `work`.
struct Tools {
    /// A copy of `/bin/true`, so that its events are told from every other `true`.
    true_bin: PathBuf,
    victim: PathBuf,
    sleeper: PathBuf,
    sysloop: PathBuf,
    /// `scale`'s getpgid and openat loops.
    scaleloop: PathBuf,
    spawn: PathBuf,
    connect: PathBuf,
}

/// Everything a benchmark needs.
pub struct Ctx {
    tracer: PathBuf,
    work: PathBuf,
    rounds: usize,
    /// Rounds of `scale` (its cells are many): as `rounds`, but 1 with `--quick`.
    scale_rounds: usize,
    cpus: usize,
    scale: Scale,
    tools: Tools,
    /// Criterion's quick settings.
    quick: bool,
}

pub type Values = BTreeMap<String, f64>;

/// One run of one setup in one round.
pub struct RunRecord {
    pub setup: &'static str,
    pub round: usize,
    pub values: Values,
}

/// Builds the agent as users run it (release); its path.
pub fn release_agent() -> anyhow::Result<std::path::PathBuf> {
    eprintln!("xtask: building the agent (release)");
    status(cargo().args([
        "build",
        "--release",
        "--package",
        "tracer",
        "--bin",
        "tracer",
    ]))?;
    Ok(workspace_root().join("target/release/tracer"))
}

pub fn bench(opts: Options) -> anyhow::Result<()> {
    for name in &opts.only {
        if !BENCHES.iter().any(|(n, _)| n == name) {
            bail!(
                "no benchmark `{name}`: choose among {}",
                BENCHES.map(|(n, _)| n).join(", ")
            );
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the benchmarks load eBPF programs (the agent's and bpftrace's) and need root; run `sudo -E cargo xtask bench`"
        );
    }
    let wanted = |n: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == n);
    // Absolute: the workloads' binaries live under it, and the events name them by
    // their absolute paths.
    let out = match opts.out.clone() {
        Some(d) if d.is_relative() => std::env::current_dir()
            .context("the current directory")?
            .join(d),
        Some(d) => d,
        None => workspace_root().join("target/bench"),
    };
    if opts.plot_only {
        return report::replot(&out);
    }
    let work = out.join("work");
    run::KEEP_OUTPUT.store(opts.keep_output, std::sync::atomic::Ordering::Relaxed);
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;

    install_tools()?;
    let tracer = release_agent()?;
    let tools = build_tools(&work)?;
    let scale = Scale::new(opts.quick);
    let ctx = Ctx {
        tracer,
        work,
        rounds: opts.rounds.unwrap_or(if opts.quick { 2 } else { 5 }).max(1),
        scale_rounds: opts.rounds.unwrap_or(if opts.quick { 1 } else { 5 }).max(1),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        scale,
        tools,
        quick: opts.quick,
    };
    eprintln!(
        "xtask: {} round(s) per benchmark, {} CPU(s); files in {}",
        ctx.rounds,
        ctx.cpus,
        out.display()
    );

    let started = Instant::now();
    let mut results = Vec::new();
    let mut capacity = None;
    for (name, title) in BENCHES {
        if !wanted(name) {
            continue;
        }
        eprintln!("\nxtask: bench {name}: {title}");
        let r = match name {
            "exec" => exec(&ctx),
            "default" => default_profile(&ctx),
            "nomatch" => nomatch(&ctx),
            "pipeline" => pipeline(&ctx, &mut capacity),
            "overload" => overload(&ctx, &mut capacity),
            "connect" => connect(&ctx),
            "enforce" => enforce(&ctx),
            "userspace" => userspace(&ctx),
            "memory" => memory(&ctx),
            _ => scale::scale(&ctx),
        };
        match r {
            Ok(mut r) => {
                r.name = name;
                r.title = title;
                results.push(r);
            }
            // One benchmark that cannot run does not lose the others.
            Err(e) => {
                eprintln!("xtask: bench {name} failed: {e:#}");
                results.push(BenchResult::failed(name, title, &format!("{e:#}")));
            }
        }
    }
    report::write(&out, &results, &ctx_summary(&ctx, &opts, started.elapsed()))?;
    if results.iter().any(|r| r.error.is_some()) {
        bail!("some benchmarks could not run (see above)");
    }
    Ok(())
}

/// The machine and the settings, for the report.
fn ctx_summary(ctx: &Ctx, opts: &Options, took: Duration) -> serde_json::Value {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let mut command = "cargo xtask bench".to_owned();
    if opts.quick {
        command.push_str(" --quick");
    }
    if !opts.only.is_empty() {
        command.push_str(&format!(" --only {}", opts.only.join(" ")));
    }
    if let Some(r) = opts.rounds {
        command.push_str(&format!(" --rounds {r}"));
    }
    serde_json::json!({
        "command": command,
        "kernel": kernel.trim(),
        "cpu": cpu,
        "cpus": ctx.cpus,
        "rounds": ctx.rounds,
        "scale_rounds": ctx.scale_rounds,
        "only": opts.only,
        "quick": ctx.quick,
        "scale": format!("{:?}", ctx.scale),
        "seconds": took.as_secs(),
    })
}

/// bpftrace, stress-ng and gcc, from Debian's packages when missing.
fn install_tools() -> anyhow::Result<()> {
    crate::setup::apt_install(&[
        ("bpftrace", "bpftrace"),
        ("stress-ng", "stress-ng"),
        ("gcc", "gcc"),
    ])
}

/// The workloads' C programs, built with gcc into `work`.
fn build_tools(work: &Path) -> anyhow::Result<Tools> {
    const SOURCES: [(&str, &str); 6] = [
        ("sysloop", include_str!("bench/sysloop.c")),
        ("scaleloop", include_str!("bench/scaleloop.c")),
        ("bench-victim", include_str!("bench/victim.c")),
        ("bench-sleeper", include_str!("bench/sleeper.c")),
        ("spawn", include_str!("bench/spawn.c")),
        ("connect", include_str!("bench/connect.c")),
    ];
    for (name, source) in SOURCES {
        let c = work.join(format!("{name}.c"));
        fs::write(&c, source).with_context(|| format!("cannot write {}", c.display()))?;
        status(
            Command::new("gcc")
                .args(["-O2", "-Wall", "-o"])
                .arg(work.join(name))
                .arg(&c),
        )?;
    }
    let true_bin = work.join("bench-true");
    let system_true = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .context("no /bin/true on this machine")?;
    fs::copy(system_true, &true_bin)
        .with_context(|| format!("cannot copy {system_true} to {}", true_bin.display()))?;
    Ok(Tools {
        true_bin,
        victim: work.join("bench-victim"),
        sleeper: work.join("bench-sleeper"),
        sysloop: work.join("sysloop"),
        scaleloop: work.join("scaleloop"),
        spawn: work.join("spawn"),
        connect: work.join("connect"),
    })
}

/// Runs `one` for every setup, interleaved, for every round; then once more for each
/// traced setup with the kernel's BPF run statistics on (values `prog:NAME` in ns per
/// run, kept apart from the rounds).
fn rounds(
    ctx: &Ctx,
    bench: &str,
    setups: &[Setup],
    rounds: usize,
    mut one: impl FnMut(&Ctx, &Setup, Running) -> anyhow::Result<Values>,
) -> anyhow::Result<(Vec<RunRecord>, Vec<RunRecord>)> {
    let mut runs = Vec::new();
    for round in 1..=rounds {
        for setup in setups {
            let tag = format!("{bench}-{round}-{}", setup.name);
            let mut t = Running::start(&ctx.tracer, &ctx.work, setup, &tag, false)?;
            t.mark()?;
            let values = one(ctx, setup, t)?;
            eprintln!(
                "xtask: {bench} round {round}/{rounds} {:<18} {}",
                setup.name,
                report::brief(&values)
            );
            runs.push(RunRecord {
                setup: setup.name,
                round,
                values,
            });
        }
    }
    let mut stats = Vec::new();
    let traced: Vec<&Setup> = setups.iter().filter(|s| s.is_traced()).collect();
    if !traced.is_empty() {
        let _on = BpfStats::enable()?;
        for setup in traced {
            let tag = format!("{bench}-stats-{}", setup.name);
            // The statistics are extra: a pass that fails (a tracer that does not stop)
            // is said and skipped, and the rounds' results stand.
            let mut pass = || -> anyhow::Result<Values> {
                let mut t = Running::start(&ctx.tracer, &ctx.work, setup, &tag, true)?;
                t.mark()?;
                one(ctx, setup, t)
            };
            let values = match pass() {
                Ok(v) => v,
                Err(e) => {
                    eprintln!(
                        "xtask: {bench} BPF run statistics {}: not taken: {e:#}",
                        setup.name
                    );
                    continue;
                }
            };
            let progs: Vec<String> = values
                .iter()
                .filter(|(k, _)| k.starts_with("prog:"))
                .map(|(k, v)| format!("{} {v:.0} ns", &k[5..]))
                .collect();
            eprintln!(
                "xtask: {bench} BPF run statistics {:<18} {}",
                setup.name,
                progs.join(", ")
            );
            stats.push(RunRecord {
                setup: setup.name,
                round: 0,
                values,
            });
        }
    }
    Ok((runs, stats))
}

/// `kernel.bpf_stats_enabled` on while this lives; as it was before, after.
struct BpfStats(String);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> anyhow::Result<Self> {
        let before =
            fs::read_to_string(BPF_STATS).context("cannot read kernel.bpf_stats_enabled")?;
        fs::write(BPF_STATS, "1").context("cannot turn on kernel.bpf_stats_enabled")?;
        Ok(Self(before.trim().to_owned()))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = fs::write(BPF_STATS, &self.0);
    }
}

/// Stops the tracer and adds what it says: the agent's CPU time and summary, each
/// policy's counters, bpftrace's losses, the programs' run statistics.
fn finish(t: Running, v: &mut Values) -> anyhow::Result<run::Stopped> {
    let traced = t.pid().is_some();
    let s = t.stop()?;
    if traced {
        v.insert("cpu_s".into(), s.cpu_s);
        v.insert("wakeups".into(), s.wakeups);
    }
    for (k, x) in &s.summary {
        v.insert(format!("agent.{k}"), *x);
    }
    for (policy, counters) in &s.policies {
        for (k, x) in counters {
            v.insert(format!("policy.{policy}.{k}"), *x);
        }
    }
    if s.bpftrace_lost > 0.0 {
        v.insert("bpftrace_lost".into(), s.bpftrace_lost);
    }
    for (name, runs, ns) in &s.programs {
        // Programs of one name (a policy's slots) add up under it.
        *v.entry(format!("prog_runs:{name}")).or_default() += *runs as f64;
        v.insert(format!("prog:{name}"), *ns);
    }
    Ok(s)
}

/// Counts the lines of `path` for which `pred` holds.
fn count_lines(path: &Path, mut pred: impl FnMut(&str) -> bool) -> anyhow::Result<f64> {
    let f = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut n = 0u64;
    for line in BufReader::new(f).lines() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if pred(&line) {
            n += 1;
        }
    }
    Ok(n as f64)
}

fn get(v: &Values, k: &str) -> f64 {
    v.get(k).copied().unwrap_or(0.0)
}

fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `metric` of `setup` in each round.
fn series(runs: &[RunRecord], setup: &str, metric: &str) -> Vec<f64> {
    runs.iter()
        .filter(|r| r.setup == setup)
        .map(|r| get(&r.values, metric))
        .collect()
}

/// `f(a, b)` of `metric` for setups `a` and `b` of the same round, for each round.
fn paired(
    runs: &[RunRecord],
    a: &str,
    b: &str,
    metric: &str,
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    let (xa, xb) = (series(runs, a, metric), series(runs, b, metric));
    xa.iter().zip(&xb).map(|(x, y)| f(*x, *y)).collect()
}

/// The per-round ratio `b / a`, its median.
fn ratio(runs: &[RunRecord], a: &str, b: &str, metric: &str) -> f64 {
    median(&paired(runs, a, b, metric, |x, y| y / x))
}

/// The per-round difference `b - a`, its median.
fn added(runs: &[RunRecord], a: &str, b: &str, metric: &str) -> f64 {
    median(&paired(runs, a, b, metric, |x, y| y - x))
}

/// Range of the per-round values, for the table: `min–max`.
fn spread(xs: &[f64], digits: usize) -> String {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.digits$}–{hi:.digits$}")
}

// ---------------------------------------------------------------------------------
// 1. Exec storm

/// One shell loop of `true_bin` per CPU, `iters` runs each, all at once: runs, seconds.
fn exec_loops(ctx: &Ctx, iters: u64) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    let mut loops = Vec::new();
    for _ in 0..ctx.cpus {
        loops.push(
            Command::new("bash")
                .args(["-c", "for ((i = 0; i < $1; i++)); do \"$0\"; done"])
                .arg(&ctx.tools.true_bin)
                .arg(iters.to_string())
                .stdin(Stdio::null())
                .spawn()
                .context("cannot start bash")?,
        );
    }
    for mut l in loops {
        let st = l.wait()?;
        if !st.success() {
            bail!("an exec loop failed ({st})");
        }
    }
    Ok((
        (iters * ctx.cpus as u64) as f64,
        start.elapsed().as_secs_f64(),
    ))
}

/// stress-ng's exec stressor, one worker per CPU (as `nobody`: it refuses to run as
/// root): bogo ops (execs), and their rate.
fn stress_ng(ctx: &Ctx) -> anyhow::Result<(f64, f64)> {
    let yaml =
        std::env::temp_dir().join(format!("tracer-bench-stress-{}.yaml", std::process::id()));
    let _ = fs::remove_file(&yaml);
    output(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "stress-ng",
            ])
            .args(["--exec", &ctx.cpus.to_string()])
            .args(["--timeout", &format!("{}s", ctx.scale.stress_secs)])
            .args(["--temp-path", "/tmp", "--metrics-brief", "-Y"])
            .arg(&yaml)
            .current_dir("/tmp"),
    )?;
    let text = fs::read_to_string(&yaml).context("stress-ng wrote no metrics")?;
    let _ = fs::remove_file(&yaml);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(k))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Ok((field("bogo-ops:"), field("bogo-ops-per-second-real-time:")))
}

fn exec(ctx: &Ctx) -> anyhow::Result<BenchResult> {
    let true_path = ctx.tools.true_bin.display().to_string();
    let stress_bin = fs::canonicalize(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("stress-ng"))
            .find(|p| p.is_file())
            .context("stress-ng is not on PATH")?,
    )?
    .display()
    .to_string();
    let setups = [
        Setup::none(),
        Setup::agent("tracer", &[], Sink::File),
        // Every flag of the process object on: what the exec costs then.
        Setup::agent(
            "tracer-all-flags",
            &[
                "--enable-process-cred",
                "--enable-process-ns",
                "--enable-process-environment-variables",
                "--enable-ancestors",
                "base",
            ],
            Sink::File,
        ),
        Setup::bpftrace(
            "bpftrace",
            "tracepoint:sched:sched_process_exec { printf(\"%d %s\\n\", pid, str(args->filename)); }",
        ),
    ];
    let binary_is = |path: &str| format!("\"binary\":\"{path}\"");
    let (true_field, stress_field) = (binary_is(&true_path), binary_is(&stress_bin));
    let (runs, stats) = rounds(ctx, "exec", &setups, ctx.rounds, |ctx, setup, t| {
        let (n, secs) = exec_loops(ctx, ctx.scale.exec_iters)?;
        let (ops, stress_rate) = stress_ng(ctx)?;
        if t.is_agent() {
            t.settle("tracer_events_total{type=\"process_exit\"}")?;
        }
        let mut v = Values::from([
            ("execs".into(), n),
            ("exec_rate".into(), n / secs),
            ("stress_ops".into(), ops),
            ("stress_rate".into(), stress_rate),
        ]);
        let s = finish(t, &mut v)?;
        if let Some(out) = &s.out {
            if matches!(setup.tracer, run::Tracer::Agent { .. }) {
                let (mut exec, mut exit, mut stress) = (0.0, 0.0, 0.0);
                count_lines(out, |l| {
                    if l.starts_with("{\"process_exec\"") {
                        if l.contains(&true_field) {
                            exec += 1.0;
                        } else if l.contains(&stress_field) {
                            stress += 1.0;
                        }
                    } else if l.starts_with("{\"process_exit\"") && l.contains(&true_field) {
                        exit += 1.0;
                    }
                    false
                })?;
                v.insert("exec_delivered".into(), exec / n);
                v.insert("exit_delivered".into(), exit / n);
                v.insert("stress_exec_events".into(), stress);
                let events = get(&v, "agent.events_written");
                if events > 0.0 {
                    v.insert("cpu_us_per_event".into(), get(&v, "cpu_s") * 1e6 / events);
                    v.insert("wakeups_per_event".into(), get(&v, "wakeups") / events);
                }
            } else {
                let lines = count_lines(out, |l| l.ends_with(&true_path))?;
                v.insert("exec_delivered".into(), lines / n);
            }
        }
        Ok(v)
    })?;
    let mut r = BenchResult::new(&setups, runs, stats);
    let rate = ratio(&r.runs, "none", "tracer", "exec_rate");
    let bt_rate = ratio(&r.runs, "none", "bpftrace", "exec_rate");
    r.rows.push(Row::at_least(
        "exec rate, tracer / none (shell loop of /bin/true)",
        rate,
        0.95,
        2,
        "≥ 0.95 (aim 0.97)",
    ));
    r.rows.push(Row::at_least(
        "exec rate, tracer with --enable-process-cred, --enable-process-ns, --enable-process-environment-variables, --enable-ancestors base / none",
        ratio(&r.runs, "none", "tracer-all-flags", "exec_rate"),
        0.95,
        2,
        "≥ 0.95",
    ));
    r.rows.push(Row::info(
        "exec rate, bpftrace / none",
        format!("{bt_rate:.2}"),
        "0.87–0.90 in the issue",
    ));
    let stress = ratio(&r.runs, "none", "tracer", "stress_rate");
    r.rows.push(Row::at_least(
        "stress-ng exec rate, tracer / none",
        stress,
        0.95,
        2,
        "≥ 0.95",
    ));
    r.rows.push(Row::info(
        "stress-ng exec rate, bpftrace / none",
        format!("{:.2}", ratio(&r.runs, "none", "bpftrace", "stress_rate")),
        "",
    ));
    let delivered: Vec<f64> = r
        .runs
        .iter()
        .filter(|x| x.setup == "tracer")
        .map(|x| get(&x.values, "exec_delivered").min(get(&x.values, "exit_delivered")))
        .collect();
    let lost: f64 = series(&r.runs, "tracer", "agent.kernel_lost").iter().sum();
    let worst = delivered.iter().copied().fold(f64::INFINITY, f64::min);
    r.rows.push(Row {
        what: "exec and exit events delivered, tracer (worst round)".into(),
        value: format!("{:.4} (kernel lost {lost:.0})", worst),
        target: "1 (every one)".into(),
        status: if worst >= 1.0 && lost == 0.0 {
            Status::Met
        } else {
            Status::Missed(format!("{:.2} % missing", (1.0 - worst) * 100.0))
        },
    });
    r.rows.push(Row::info(
        "sched_process_exec lines delivered, bpftrace",
        format!(
            "{:.4}",
            median(&series(&r.runs, "bpftrace", "exec_delivered"))
        ),
        "",
    ));
    r.rows.push(Row::info(
        "agent CPU per event, wake-ups per event",
        format!(
            "{:.1} µs, {:.2}",
            median(&series(&r.runs, "tracer", "cpu_us_per_event")),
            median(&series(&r.runs, "tracer", "wakeups_per_event"))
        ),
        "",
    ));
    r.panels.push(Panel {
        title: "Exec storm: exec rate over no tracer".into(),
        unit: "ratio".into(),
        bars: vec![
            ("tracer, shell loop".into(), rate),
            ("bpftrace, shell loop".into(), bt_rate),
            ("tracer, stress-ng".into(), stress),
            (
                "bpftrace, stress-ng".into(),
                ratio(&r.runs, "none", "bpftrace", "stress_rate"),
            ),
        ],
        target: Some((0.95, "target 0.95".into())),
        max: Some(1.1),
        ..Panel::default()
    });
    Ok(r)
}

// ---------------------------------------------------------------------------------
// 2, 3. The getppid loop

/// ns per getppid call: the median of `reps` loops of `calls`.
fn getppid_ns(ctx: &Ctx) -> anyhow::Result<f64> {
    let mut xs = Vec::new();
    for _ in 0..ctx.scale.sys_reps {
        let out = output(Command::new(&ctx.tools.sysloop).arg(ctx.scale.sys_calls.to_string()))?;
        let n = numbers(&out);
        let (Some(calls), Some(ns)) = (n.first(), n.get(1)) else {
            bail!("sysloop printed `{}`", out.trim());
        };
        xs.push(ns / calls);
    }
    Ok(median(&xs))
}

fn syscall_loop(ctx: &Ctx, _setup: &Setup, t: Running) -> anyhow::Result<Values> {
    let ns = getppid_ns(ctx)?;
    let mut v = Values::from([("ns_per_call".into(), ns)]);
    finish(t, &mut v)?;
    Ok(v)
}

fn default_profile(ctx: &Ctx) -> anyhow::Result<BenchResult> {
    let setups = [
        Setup::none(),
        Setup::agent("tracer", &[], Sink::DevNull),
        Setup::bpftrace(
            "bpftrace",
            "tracepoint:sched:sched_process_exec { printf(\"exec %d\\n\", pid); }\n\
             tracepoint:sched:sched_process_fork { printf(\"fork %d\\n\", args->child_pid); }\n\
             tracepoint:sched:sched_process_exit { printf(\"exit %d\\n\", pid); }",
        ),
    ];
    let (runs, stats) = rounds(ctx, "default", &setups, ctx.rounds, syscall_loop)?;
    let mut r = BenchResult::new(&setups, runs, stats);
    let base = median(&series(&r.runs, "none", "ns_per_call"));
    let d = paired(&r.runs, "none", "tracer", "ns_per_call", |a, b| b - a);
    let added_ns = median(&d);
    r.rows
        .push(Row::info("getppid, no tracer", format!("{base:.1} ns"), ""));
    r.rows.push(Row {
        what: "ns added per syscall, default profile".into(),
        value: format!("{added_ns:+.1} ns (rounds {})", spread(&d, 1)),
        target: "within 2 ns".into(),
        status: if added_ns.abs() <= 2.0 {
            Status::Met
        } else {
            Status::Missed(format!("by {:.1} ns", added_ns.abs() - 2.0))
        },
    });
    let bt = added(&r.runs, "none", "bpftrace", "ns_per_call");
    r.rows.push(Row::info(
        "ns added per syscall, bpftrace on the same sched tracepoints",
        format!("{bt:+.1} ns"),
        "",
    ));
    r.panels.push(Panel {
        title: "ns added per getppid call".into(),
        unit: "ns".into(),
        bars: vec![
            ("default profile".into(), added_ns),
            ("bpftrace sched".into(), bt),
        ],
        target: None,
        max: None,
        ..Panel::default()
    });
    Ok(r)
}

/// A tracing policy file in `work`.
fn policy_file(ctx: &Ctx, name: &str, spec: &str) -> anyhow::Result<String> {
    let path = ctx.work.join(format!("{name}.yaml"));
    fs::write(
        &path,
        format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}"
        ),
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path.display().to_string())
}

/// A pid no process has: pid_max itself (pids run below it).
fn absent_pid() -> u64 {
    fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4_194_304)
}

fn nomatch(ctx: &Ctx) -> anyhow::Result<BenchResult> {
    let pid = absent_pid();
    let raw = policy_file(
        ctx,
        "bench-nomatch",
        &format!(
            "  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    args:\n    - index: 4\n    selectors:\n    - matchPIDs:\n      - operator: In\n        values: [{pid}]\n"
        ),
    )?;
    let openat = policy_file(
        ctx,
        "bench-nomatch-openat",
        &format!(
            "  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_openat\n    args:\n    - index: 6\n    selectors:\n    - matchPIDs:\n      - operator: In\n        values: [{pid}]\n"
        ),
    )?;
    let leaked = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let (raw, openat) = (leaked(raw), leaked(openat));
    let setups = [
        Setup::none(),
        Setup::agent("tracer", &["--tracing-policy", raw], Sink::DevNull),
        Setup::agent(
            "tracer-openat",
            &["--tracing-policy", openat],
            Sink::DevNull,
        ),
        Setup::agent(
            "tracer-openat-raw",
            &["--tracing-policy", openat, "--syscall-raw-tracepoints"],
            Sink::DevNull,
        ),
        Setup::bpftrace(
            "bpftrace",
            "tracepoint:raw_syscalls:sys_enter /pid == 1/ { @calls = count(); }",
        ),
    ];
    let (runs, stats) = rounds(ctx, "nomatch", &setups, ctx.rounds, syscall_loop)?;
    let mut r = BenchResult::new(&setups, runs, stats);
    let d = paired(&r.runs, "none", "tracer", "ns_per_call", |a, b| b - a);
    let tracer = median(&d);
    let bt = added(&r.runs, "none", "bpftrace", "ns_per_call");
    let floor = added(&r.runs, "none", "tracer-openat", "ns_per_call");
    let routed = added(&r.runs, "none", "tracer-openat-raw", "ns_per_call");
    let limit = 55f64.min(bt / 2.0);
    r.rows.push(Row {
        what: "ns added per syscall, raw_syscalls policy rejecting in the kernel".into(),
        value: format!("{tracer:+.1} ns (rounds {})", spread(&d, 1)),
        target: format!("≤ 55 ns and < half of bpftrace's ({:.1} ns)", bt / 2.0),
        status: if tracer <= limit {
            Status::Met
        } else {
            Status::Missed(format!("by {:.1} ns", tracer - limit))
        },
    });
    r.rows.push(Row::info(
        "ns added per syscall, bpftrace raw_syscalls:sys_enter /pid == 1/",
        format!("{bt:+.1} ns"),
        "about 145 ns in the issue",
    ));
    r.rows.push(Row::info(
        "ns added per syscall, sys_enter_openat policy on its own tracepoint (the floor)",
        format!("{floor:+.1} ns"),
        "about 40 ns: any syscall tracepoint",
    ));
    r.rows.push(Row::info(
        "the same with --syscall-raw-tracepoints",
        format!("{routed:+.1} ns"),
        "",
    ));
    r.panels.push(Panel {
        title: "ns added per syscall: policy that matches nothing".into(),
        unit: "ns".into(),
        bars: vec![
            ("raw_syscalls policy".into(), tracer),
            ("bpftrace /pid == 1/".into(), bt),
            ("openat policy (floor)".into(), floor),
            ("openat, raw tp".into(), routed),
        ],
        target: Some((55.0, "target 55 ns".into())),
        max: None,
        ..Panel::default()
    });
    Ok(r)
}

// ---------------------------------------------------------------------------------
// 4, 5. Events through the pipeline

/// The policy that matches every getppid call (the loop's), on `raw_syscalls`.
fn all_policy(ctx: &Ctx) -> anyhow::Result<&'static str> {
    let path = policy_file(
        ctx,
        "bench-all",
        &format!(
            "  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    args:\n    - index: 4\n    selectors:\n    - matchArgs:\n      - index: 4\n        operator: Equal\n        values: [{}]\n",
            libc::SYS_getppid
        ),
    )?;
    Ok(Box::leak(path.into_boxed_str()))
}

fn bpftrace_all() -> String {
    format!(
        "tracepoint:raw_syscalls:sys_enter /args->id == {}/ {{ printf(\"%d %d %s %ld\\n\", pid, tid, comm, args->id); }}",
        libc::SYS_getppid
    )
}

const ALL_EVENTS: &str = "tracer_policy_events_total{policy=\"bench-all\"}";

/// The loop for `secs` (at `rate` calls a second when given), then the agent's and
/// bpftrace's account of its events.
fn events_run(ctx: &Ctx, setup: &Setup, t: Running, rate: Option<f64>) -> anyhow::Result<Values> {
    let secs = ctx.scale.pipe_secs;
    let mut cmd = Command::new(&ctx.tools.sysloop);
    cmd.args(["-t", &secs.to_string()]);
    if let Some(rate) = rate {
        cmd.arg(format!("{rate:.0}"));
    }
    let out = output(&mut cmd)?;
    let n = numbers(&out);
    let (Some(&calls), Some(&ns)) = (n.first(), n.get(1)) else {
        bail!("sysloop printed `{}`", out.trim());
    };
    let mut v = Values::from([
        ("calls".into(), calls),
        ("call_rate".into(), calls / (ns / 1e9)),
    ]);
    let delivered_metric = if t.is_agent() {
        t.settle(ALL_EVENTS)?;
        Some(t.metric(ALL_EVENTS)?)
    } else {
        None
    };
    let s = finish(t, &mut v)?;
    let delivered = match (&setup.tracer, delivered_metric) {
        (run::Tracer::Agent { .. }, Some(d)) => {
            let matched = get(&v, "policy.bench-all.matched");
            let lost = get(&v, "policy.bench-all.lost") + get(&v, "policy.bench-all.rate_limited");
            v.insert("matched".into(), matched);
            v.insert("lost".into(), lost);
            v.insert("unaccounted".into(), matched - d - lost);
            if let Some(out) = &s.out {
                // What the stream itself says: the policy's lines, and the kernel's
                // losses of tracepoint records in `event_loss`.
                let mut in_stream = 0.0;
                let mut lost_in_stream = 0.0;
                count_lines(out, |l| {
                    if l.contains("\"policy_name\":\"bench-all\"") {
                        in_stream += 1.0;
                    } else if l.starts_with("{\"event_loss\"")
                        && let Ok(e) = serde_json::from_str::<serde_json::Value>(l)
                        && e["event_loss"]["where"] == "ring_buffer"
                    {
                        lost_in_stream += e["event_loss"]["lost"]["tracepoint"]
                            .as_str()
                            .and_then(|n| n.parse::<f64>().ok())
                            .unwrap_or(0.0);
                    }
                    false
                })?;
                v.insert("delivered_in_stream".into(), in_stream);
                v.insert("lost_in_stream".into(), lost_in_stream);
            }
            d
        }
        (run::Tracer::Bpftrace { .. }, _) => {
            let suffix = format!(" {}", libc::SYS_getppid);
            let d = match &s.out {
                Some(out) => count_lines(out, |l| l.ends_with(&suffix))?,
                None => 0.0,
            };
            let lost = get(&v, "bpftrace_lost");
            v.insert("lost".into(), lost);
            v.insert("unaccounted".into(), calls - d - lost);
            d
        }
        _ => return Ok(v),
    };
    v.insert("delivered".into(), delivered);
    v.insert("rate".into(), delivered / secs);
    let cpu = get(&v, "cpu_s");
    if cpu > 0.0 && delivered > 0.0 {
        v.insert("per_core".into(), delivered / cpu);
        v.insert("cpu_ns_per_event".into(), cpu * 1e9 / delivered);
    }
    let attempted = get(&v, "matched").max(delivered + get(&v, "lost"));
    if attempted > 0.0 {
        v.insert("loss".into(), get(&v, "lost") / attempted);
    }
    Ok(v)
}

fn pipeline(ctx: &Ctx, capacity: &mut Option<f64>) -> anyhow::Result<BenchResult> {
    let policy = all_policy(ctx)?;
    let setups = [
        Setup::none(),
        Setup::agent("null", &["--tracing-policy", policy], Sink::Null),
        Setup::agent("devnull", &["--tracing-policy", policy], Sink::DevNull),
        Setup::agent("file", &["--tracing-policy", policy], Sink::File),
        Setup::bpftrace("bpftrace", bpftrace_all()),
    ];
    let (runs, stats) = rounds(ctx, "pipeline", &setups, ctx.rounds, |ctx, setup, t| {
        events_run(ctx, setup, t, None)
    })?;
    let mut r = BenchResult::new(&setups, runs, stats);
    let per_core = |s: &str| median(&series(&r.runs, s, "per_core"));
    let (null, devnull, file, bt) = (
        per_core("null"),
        per_core("devnull"),
        per_core("file"),
        per_core("bpftrace"),
    );
    *capacity = Some(median(&series(&r.runs, "file", "rate")));
    r.rows.push(Row::at_least_count(
        "events/s per core, null sink",
        null,
        1_000_000.0,
    ));
    r.rows.push(Row::info(
        "events/s per core, JSON on /dev/null",
        report::count(devnull),
        "",
    ));
    r.rows.push(Row::at_least_count(
        "events/s per core, JSON file",
        file,
        300_000.0,
    ));
    r.rows.push(Row::info(
        "events/s per core, bpftrace printf to a file",
        report::count(bt),
        "",
    ));
    for s in ["null", "devnull", "file"] {
        r.rows.push(Row::info(
            &format!("{s}: delivered/s (wall), CPU per event, loss"),
            format!(
                "{}/s, {:.0} ns, {:.2} %",
                report::count(median(&series(&r.runs, s, "rate"))),
                median(&series(&r.runs, s, "cpu_ns_per_event")),
                median(&series(&r.runs, s, "loss")) * 100.0
            ),
            "",
        ));
    }
    r.rows.push(Row::info(
        "bpftrace: delivered/s (wall), loss",
        format!(
            "{}/s, {:.2} %",
            report::count(median(&series(&r.runs, "bpftrace", "rate"))),
            median(&series(&r.runs, "bpftrace", "loss")) * 100.0
        ),
        "",
    ));
    let unaccounted: f64 = ["null", "devnull", "file"]
        .iter()
        .flat_map(|s| series(&r.runs, s, "unaccounted"))
        .map(f64::abs)
        .sum();
    r.rows.push(Row {
        what: "events unaccounted (matched − delivered − lost), every round".into(),
        value: format!("{unaccounted:.0}"),
        target: "0".into(),
        status: if unaccounted == 0.0 {
            Status::Met
        } else {
            Status::Missed(format!("{unaccounted:.0} events"))
        },
    });
    r.rows.push(Row::info(
        "getppid calls/s of the loop: none, null sink",
        format!(
            "{}/s, {}/s",
            report::count(median(&series(&r.runs, "none", "call_rate"))),
            report::count(median(&series(&r.runs, "null", "call_rate")))
        ),
        "",
    ));
    r.panels.push(Panel {
        title: "Events/s per core of agent CPU".into(),
        unit: "events/s".into(),
        bars: vec![
            ("null sink".into(), null),
            ("JSON /dev/null".into(), devnull),
            ("JSON file".into(), file),
            ("bpftrace".into(), bt),
        ],
        target: Some((1_000_000.0, "target 1M (null)".into())),
        max: None,
        ..Panel::default()
    });
    Ok(r)
}

fn overload(ctx: &Ctx, capacity: &mut Option<f64>) -> anyhow::Result<BenchResult> {
    let policy = all_policy(ctx)?;
    let file = Setup::agent("tracer", &["--tracing-policy", policy], Sink::File);
    let cap = match *capacity {
        Some(c) if c.is_finite() && c > 0.0 => c,
        _ => {
            eprintln!("xtask: overload: measuring the capacity first (one run to a JSON file)");
            let (runs, _) = rounds(
                ctx,
                "capacity",
                std::slice::from_ref(&file),
                1,
                |ctx, s, t| events_run(ctx, s, t, None),
            )?;
            let c = median(&series(&runs, "tracer", "rate"));
            *capacity = Some(c);
            c
        }
    };
    let rate = 2.0 * cap;
    eprintln!(
        "xtask: overload: {} calls a second (twice {}/s)",
        report::count(rate),
        report::count(cap)
    );
    let small = ["--tracing-policy", policy, "--ring-buffer-size", "262144"];
    let setups = [
        Setup::agent("tracer", &small, Sink::File),
        Setup::bpftrace("bpftrace", bpftrace_all()),
    ];
    let (runs, stats) = rounds(ctx, "overload", &setups, ctx.rounds, |ctx, setup, t| {
        events_run(ctx, setup, t, Some(rate))
    })?;
    let mut r = BenchResult::new(&setups, runs, stats);
    let mut exact = true;
    let mut shown = Vec::new();
    for run in r.runs.iter().filter(|x| x.setup == "tracer") {
        let v = &run.values;
        let (matched, in_stream, lost_stream, lost) = (
            get(v, "matched"),
            get(v, "delivered_in_stream"),
            get(v, "lost_in_stream"),
            get(v, "lost"),
        );
        exact &= matched == in_stream + lost_stream && lost == lost_stream && matched > 0.0;
        shown.push(format!("{matched:.0} = {in_stream:.0} + {lost_stream:.0}"));
    }
    r.rows.push(Row {
        what: "attempted = delivered + lost in the stream (each round)".into(),
        value: shown.join("; "),
        target: "exact".into(),
        status: if exact {
            Status::Met
        } else {
            Status::Missed("counts differ".into())
        },
    });
    r.rows.push(Row::info(
        "loss, tracer (256 KiB ring buffer)",
        format!(
            "{:.1} %",
            median(&series(&r.runs, "tracer", "loss")) * 100.0
        ),
        "",
    ));
    let bt_unaccounted = median(&series(&r.runs, "bpftrace", "unaccounted"));
    r.rows.push(Row::info(
        "bpftrace: loss, calls neither printed nor counted as lost",
        format!(
            "{:.1} %, {bt_unaccounted:.0}",
            median(&series(&r.runs, "bpftrace", "loss")) * 100.0
        ),
        "",
    ));
    r.notes.push(format!(
        "offered rate {}/s: twice the JSON file's delivered rate",
        report::count(rate)
    ));
    Ok(r)
}

// ---------------------------------------------------------------------------------
// 6. Connect storm

const PORT: u16 = 47613;

fn connect(ctx: &Ctx) -> anyhow::Result<BenchResult> {
    let policy = policy_file(
        ctx,
        "bench-connect",
        &format!(
            "  kprobes:\n  - call: tcp_connect\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: DPort\n        values: [\"{PORT}\"]\n"
        ),
    )?;
    let policy: &'static str = Box::leak(policy.into_boxed_str());
    let setups = [
        Setup::none(),
        Setup::agent("tracer", &["--tracing-policy", policy], Sink::File),
        Setup::bpftrace(
            "bpftrace",
            format!(
                "tracepoint:sock:inet_sock_set_state /args->newstate == 2 && args->dport == {PORT}/ {{ printf(\"connect %d %d\\n\", pid, args->dport); }}"
            ),
        ),
    ];
    let (runs, stats) = rounds(ctx, "connect", &setups, ctx.rounds, |ctx, setup, t| {
        let out = output(
            Command::new(&ctx.tools.connect)
                .arg(PORT.to_string())
                .arg(ctx.scale.connects.to_string()),
        )?;
        let n = numbers(&out);
        let (Some(&ok), Some(&failed), Some(&ns)) = (n.first(), n.get(1), n.get(2)) else {
            bail!("connect printed `{}`", out.trim());
        };
        if t.is_agent() {
            t.settle("tracer_policy_events_total{policy=\"bench-connect\"}")?;
        }
        let mut v = Values::from([
            ("connects".into(), ok),
            ("failed".into(), failed),
            ("connect_rate".into(), ok / (ns / 1e9)),
        ]);
        let s = finish(t, &mut v)?;
        if let Some(out) = &s.out {
            let events = match setup.tracer {
                run::Tracer::Agent { .. } => count_lines(out, |l| {
                    l.contains("\"policy_name\":\"bench-connect\"")
                        && l.contains("\"function_name\":\"tcp_connect\"")
                })?,
                _ => count_lines(out, |l| l.starts_with("connect "))?,
            };
            v.insert("events".into(), events);
            v.insert("delivered".into(), events / ok);
        }
        Ok(v)
    })?;
    let mut r = BenchResult::new(&setups, runs, stats);
    let rate = ratio(&r.runs, "none", "tracer", "connect_rate");
    let bt = ratio(&r.runs, "none", "bpftrace", "connect_rate");
    r.rows.push(Row::info(
        "connect rate, tracer / none",
        format!("{rate:.2}"),
        "",
    ));
    r.rows.push(Row::info(
        "connect rate, bpftrace / none",
        format!("{bt:.2}"),
        "",
    ));
    let worst = series(&r.runs, "tracer", "delivered")
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    r.rows.push(Row {
        what: "tcp_connect events delivered, tracer (worst round)".into(),
        value: format!("{worst:.4}"),
        target: "1 (every one)".into(),
        status: if worst >= 1.0 {
            Status::Met
        } else {
            Status::Missed(format!("{:.2} % missing", (1.0 - worst) * 100.0))
        },
    });
    r.rows.push(Row::info(
        "connects/s, no tracer",
        report::count(median(&series(&r.runs, "none", "connect_rate"))),
        "",
    ));
    r.panels.push(Panel {
        title: "Connect storm: connect rate over no tracer".into(),
        unit: "ratio".into(),
        bars: vec![("tracer".into(), rate), ("bpftrace".into(), bt)],
        target: None,
        max: Some(1.1),
        ..Panel::default()
    });
    Ok(r)
}

// ---------------------------------------------------------------------------------
// 7. Enforcement

fn enforce(ctx: &Ctx) -> anyhow::Result<BenchResult> {
    let victim = ctx.tools.victim.display().to_string();
    let policy = policy_file(
        ctx,
        "bench-enforce",
        &format!(
            "  tracepoints:\n  - subsystem: sched\n    event: sched_process_exec\n    selectors:\n    - matchBinaries:\n      - operator: In\n        values: [\"{victim}\"]\n      matchActions:\n      - action: Sigkill\n"
        ),
    )?;
    let policy: &'static str = Box::leak(policy.into_boxed_str());
    let setups = [
        Setup::none(),
        Setup::agent("tracer", &["--tracing-policy", policy], Sink::DevNull),
        Setup::bpftrace(
            "bpftrace",
            "tracepoint:sched:sched_process_exec /comm == \"bench-victim\"/ { signal(\"SIGKILL\"); }",
        ),
    ];
    let side = ctx.work.join("side-effects");
    let victims = (ctx.scale.exec_iters / 5).max(20);
    let (runs, stats) = rounds(ctx, "enforce", &setups, ctx.rounds, |ctx, _setup, t| {
        let _ = fs::remove_dir_all(&side);
        fs::create_dir_all(&side)?;
        // The targeted binary, run over and over beside the others' storm; each run
        // that gets to its first instruction leaves a file.
        let killer = Command::new("bash")
            .args([
                "-c",
                "k=0; for ((i = 0; i < $2; i++)); do \"$0\" \"$1/$i\"; [ $? -eq 137 ] && k=$((k + 1)); done; echo $k",
            ])
            .arg(&ctx.tools.victim)
            .arg(&side)
            .arg(victims.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start bash")?;
        let (n, secs) = exec_loops(ctx, ctx.scale.exec_iters)?;
        let out = killer.wait_with_output()?;
        let killed = numbers(&String::from_utf8_lossy(&out.stdout))
            .first()
            .copied()
            .unwrap_or(f64::NAN);
        let effects = fs::read_dir(&side)?.count() as f64;
        let mut v = Values::from([
            ("exec_rate".into(), n / secs),
            ("victims".into(), victims as f64),
            ("killed".into(), killed),
            ("side_effects".into(), effects),
        ]);
        finish(t, &mut v)?;
        Ok(v)
    })?;
    let mut r = BenchResult::new(&setups, runs, stats);
    let rate = ratio(&r.runs, "none", "tracer", "exec_rate");
    r.rows.push(Row::at_least(
        "others' exec rate, tracer / none",
        rate,
        0.95,
        2,
        "≥ 0.95 (as the exec storm)",
    ));
    r.rows.push(Row::info(
        "others' exec rate, bpftrace / none",
        format!("{:.2}", ratio(&r.runs, "none", "bpftrace", "exec_rate")),
        "",
    ));
    for s in ["tracer", "bpftrace"] {
        let killed: f64 = series(&r.runs, s, "killed").iter().sum();
        let all: f64 = series(&r.runs, s, "victims").iter().sum();
        let effects: f64 = series(&r.runs, s, "side_effects").iter().sum();
        let row = Row {
            what: format!("{s}: targeted processes killed, side effects"),
            value: format!("{killed:.0} of {all:.0}, {effects:.0} side effects"),
            target: "all, none".into(),
            status: if killed == all && effects == 0.0 {
                Status::Met
            } else {
                Status::Missed(format!("{:.0} ran", effects.max(all - killed)))
            },
        };
        r.rows.push(if s == "tracer" {
            row
        } else {
            Row::info(&row.what, row.value, "")
        });
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------
// 8. User space alone

fn userspace(ctx: &Ctx) -> anyhow::Result<BenchResult> {
    let allocs = ctx.work.join("userspace-allocs.json");
    let _ = fs::remove_file(&allocs);
    let timing: &[&str] = if ctx.quick {
        &["--warm-up-time", "0.5", "--measurement-time", "1"]
    } else {
        &["--warm-up-time", "1", "--measurement-time", "3"]
    };
    status(
        cargo()
            .args(["bench", "--package", "tracer", "--bench", "pipeline", "--"])
            .args(timing)
            .env("TRACER_BENCH_ALLOCS", &allocs),
    )?;
    let allocs: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(&allocs)
            .context("the user-space benchmark wrote no allocation counts")?,
    )?;
    let criterion = workspace_root().join("target/criterion");
    // (id, events per iteration, what it is)
    let ids: &[(&str, f64, &str)] = &[
        ("decode/exec", 1.0, "decode an exec record"),
        ("decode/exit", 1.0, "decode an exit record"),
        ("decode/tracepoint", 1.0, "decode a policy record"),
        (
            "cache/exec_exit",
            2.0,
            "process cache, an exec and its exit",
        ),
        ("event/exec", 1.0, "build an exec event"),
        ("event/exit", 1.0, "build an exit event"),
        ("event/tracepoint", 1.0, "build a policy event"),
        ("json/exec", 1.0, "JSON-encode an exec event"),
        (
            "json/exec_first",
            1.0,
            "build and JSON-encode the exec of a new process (its parent's object kept)",
        ),
        ("json/exit", 1.0, "JSON-encode an exit event"),
        ("json/tracepoint", 1.0, "JSON-encode a policy event"),
        ("export/exec", 1.0, "export stage, exec (seq, line, sink)"),
        ("export/tracepoint", 1.0, "export stage, policy event"),
        (
            "pipeline/exec_exit",
            2.0,
            "everything, exec and exit records",
        ),
        ("pipeline/tracepoint", 1.0, "everything, a policy record"),
    ];
    let mut r = BenchResult::new(&[], Vec::new(), Vec::new());
    let mut bars = Vec::new();
    for &(id, per, what) in ids {
        let est = criterion.join(id).join("new/estimates.json");
        let ns = fs::read_to_string(&est)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["median"]["point_estimate"].as_f64())
            .map_or(f64::NAN, |ns| ns / per);
        let a = allocs[id]["allocations"].as_f64().unwrap_or(f64::NAN);
        let bytes = allocs[id]["bytes"].as_f64().unwrap_or(f64::NAN);
        let value = format!("{ns:.0} ns, {a:.1} allocations ({bytes:.0} B)");
        let row = if id.starts_with("json/") {
            let mut why = Vec::new();
            if ns > 400.0 {
                why.push(format!("by {:.0} ns", ns - 400.0));
            }
            if a > 0.0 {
                why.push(format!("{a:.0} allocations"));
            }
            Row {
                what: format!("{what} ({id})"),
                value,
                target: "≤ 400 ns, no allocation".into(),
                status: if why.is_empty() {
                    Status::Met
                } else {
                    Status::Missed(why.join(", "))
                },
            }
        } else {
            Row::info(&format!("{what} ({id})"), value, "")
        };
        r.rows.push(row);
        if id.starts_with("pipeline/") || id.starts_with("json/") {
            bars.push((id.to_owned(), ns));
        }
        r.runs.push(RunRecord {
            setup: "criterion",
            round: 1,
            values: Values::from([
                (format!("{id}.ns_per_event"), ns),
                (format!("{id}.allocations"), a),
                (format!("{id}.bytes"), bytes),
            ]),
        });
    }
    let per_event = r
        .runs
        .iter()
        .find_map(|x| x.values.get("pipeline/tracepoint.ns_per_event").copied())
        .unwrap_or(f64::NAN);
    r.rows.push(Row::info(
        "policy events/s per core, user space alone",
        report::count(1e9 / per_event),
        "",
    ));
    r.panels.push(Panel {
        title: "User space: ns per event".into(),
        unit: "ns".into(),
        bars,
        target: Some((400.0, "JSON target 400 ns".into())),
        max: None,
        ..Panel::default()
    });
    Ok(r)
}

// ---------------------------------------------------------------------------------
// 9. Memory

fn memory(ctx: &Ctx) -> anyhow::Result<BenchResult> {
    let setup = Setup::agent("tracer", &[], Sink::DevNull);
    let mut t = Running::start(&ctx.tracer, &ctx.work, &setup, "memory", false)?;
    t.mark()?;
    let mib = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(f64::NAN) / 1024.0;
    std::thread::sleep(Duration::from_secs(2));
    let idle = t.memory()?;
    eprintln!("xtask: memory idle: {:.1} MiB", mib(&idle, "VmRSS"));

    // Live processes: exec'd, each its own entry in the process cache.
    let live_n = ctx.scale.live;
    let mut live = Command::new(&ctx.tools.spawn)
        .args(["live", &live_n.to_string()])
        .arg(&ctx.tools.sleeper)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start spawn")?;
    let mut ready = String::new();
    if let Some(out) = live.stdout.as_mut() {
        BufReader::new(out).read_line(&mut ready)?;
    }
    if !ready.starts_with("ready") {
        let _ = live.kill();
        let _ = live.wait();
        bail!(
            "spawn could not start {live_n} processes: `{}`",
            ready.trim()
        );
    }
    let start = Instant::now();
    while t.metric("tracer_process_cache_size")? < live_n as f64
        && start.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(250));
    }
    let cached = t.metric("tracer_process_cache_size")?;
    let with_live = t.memory()?;
    eprintln!(
        "xtask: memory with {live_n} live processes ({cached:.0} in the cache): {:.1} MiB",
        mib(&with_live, "VmRSS")
    );
    // Closing its stdin kills them.
    drop(live.stdin.take());
    live.wait()?;
    std::thread::sleep(Duration::from_secs(2));
    let after_live = t.memory()?;

    // Short processes, in two halves: flat means the second half adds nothing.
    let half = ctx.scale.short / 2;
    let short = |label: &str| -> anyhow::Result<BTreeMap<String, f64>> {
        output(
            Command::new(&ctx.tools.spawn)
                .args(["short", &half.to_string()])
                .arg(&ctx.tools.true_bin),
        )?;
        t.settle("tracer_events_total{type=\"process_exit\"}")?;
        let m = t.memory()?;
        eprintln!("xtask: memory {label}: {:.1} MiB", mib(&m, "VmRSS"));
        Ok(m)
    };
    let first = short(&format!("after {half} short processes"))?;
    let second = short(&format!("after {} short processes", 2 * half))?;
    let mut values = Values::new();
    for (stage, m) in [
        ("idle", &idle),
        ("live", &with_live),
        ("after_live", &after_live),
        ("short_half", &first),
        ("short_all", &second),
    ] {
        for (k, v) in m {
            values.insert(format!("{stage}.{k}"), *v);
        }
    }
    finish(t, &mut values)?;
    let mut r = BenchResult::new(std::slice::from_ref(&setup), Vec::new(), Vec::new());
    r.runs.push(RunRecord {
        setup: "tracer",
        round: 1,
        values,
    });
    let under = |what: &str, m: &BTreeMap<String, f64>, limit: f64| {
        let rss = mib(m, "VmRSS");
        Row {
            what: what.to_owned(),
            value: format!(
                "{rss:.1} MiB (heap and stacks {:.1}, files {:.1}, mapped ring buffer {:.1})",
                mib(m, "RssAnon"),
                mib(m, "RssFile") - mib(m, "bpf_maps"),
                mib(m, "bpf_maps")
            ),
            target: format!("< {limit:.0} MiB"),
            status: if rss < limit {
                Status::Met
            } else {
                Status::Missed(format!("by {:.1} MiB", rss - limit))
            },
        }
    };
    r.rows.push(under("resident, idle", &idle, 24.0));
    r.rows.push(under(
        &format!("resident, {live_n} live processes"),
        &with_live,
        48.0,
    ));
    let growth = mib(&second, "VmRSS") - mib(&first, "VmRSS");
    r.rows.push(Row {
        what: format!(
            "resident after {} short processes: growth over the last {half}",
            2 * half
        ),
        value: format!(
            "{:.1} MiB → {:.1} MiB ({growth:+.2} MiB)",
            mib(&first, "VmRSS"),
            mib(&second, "VmRSS")
        ),
        target: "flat (≤ 1 MiB)".into(),
        status: if growth <= 1.0 {
            Status::Met
        } else {
            Status::Missed(format!("grew {growth:.1} MiB"))
        },
    });
    r.rows.push(Row::info(
        "resident after the live processes exited, after all short ones",
        format!(
            "{:.1} MiB, {:.1} MiB",
            mib(&after_live, "VmRSS"),
            mib(&second, "VmRSS")
        ),
        "",
    ));
    r.panels.push(Panel {
        title: "Agent resident memory".into(),
        unit: "MiB".into(),
        bars: vec![
            ("idle".into(), mib(&idle, "VmRSS")),
            (format!("{live_n} live"), mib(&with_live, "VmRSS")),
            (format!("after {} short", 2 * half), mib(&second, "VmRSS")),
            (
                "idle, less ring buf".into(),
                mib(&idle, "VmRSS") - mib(&idle, "bpf_maps"),
            ),
        ],
        target: Some((24.0, "target 24 MiB idle".into())),
        max: None,
        ..Panel::default()
    });
    r.notes.push(
        "one run (memory is not compared between setups); VmRSS counts the ring buffer's pages, \
         which the agent maps twice (its data area is mapped back to back for wrap-around reads)"
            .into(),
    );
    let _ = std::io::stderr().flush();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(setup: &'static str, round: usize, x: f64) -> RunRecord {
        RunRecord {
            setup,
            round,
            values: Values::from([("m".to_owned(), x)]),
        }
    }

    #[test]
    fn medians_skip_what_is_not_a_number() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 1.0]), 1.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ratios_and_differences_pair_setups_within_a_round() {
        let runs = [
            run("none", 1, 100.0),
            run("tracer", 1, 90.0),
            run("none", 2, 200.0),
            run("tracer", 2, 190.0),
            run("none", 3, 50.0),
            run("tracer", 3, 49.0),
        ];
        // Per round: 0.9, 0.95, 0.98; across rounds the absolute values differ widely.
        assert!((ratio(&runs, "none", "tracer", "m") - 0.95).abs() < 1e-9);
        assert_eq!(added(&runs, "none", "tracer", "m"), -10.0);
        assert_eq!(spread(&[1.0, 3.0, 2.0], 1), "1.0–3.0");
    }
}
