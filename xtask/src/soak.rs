//! `cargo xtask soak [--minutes N] [--interval-secs S] [--out DIR]`: the release agent
//! with the policy library for a set time under a mixed workload, sampled every
//! interval, to show that what it holds stays flat and that every event is accounted
//! for.
//!
//! The agent runs with `--tracing-policy-dir` holding the project's `policies/*.yaml`
//! (one that cannot load on this kernel is reported by the agent and left there), a
//! JSON export file rotated at 1 MiB with three backups, and OTLP/HTTP to a stand-in
//! collector (`soak/collector.rs`). The workload, paced so as not to take the machine's
//! cores: `/bin/true` 20 times a second; a TCP connect to a loopback listener 10 times a
//! second, and one from bash (`/dev/tcp`) every 2 seconds, which `shell-connects`
//! reports; `/etc/shadow` opened 10 times a second (`sensitive-files`) and a file of its
//! own written and removed as often. Half-way between samples, one change: a policy
//! moved out of the directory or back (every interval, each policy in turn), the export
//! file deleted under the agent (every third), the collector stopped (every fifth) and
//! started again one interval later.
//!
//! Every interval it samples the agent's resident memory (`VmRSS`), its open
//! descriptors, the entries of its eBPF maps whose size can change (`soak/maps.rs`),
//! and its metrics, and prints a row: the accounting of the kernel's records (records
//! handed over or lost for exec, exit, policy and mapping records = events made from
//! them + records lost + malformed ones) and of each sink (events = filtered + rate
//! limited + exported + dropped + queued). At the end the agent is stopped with SIGTERM
//! and the same accounting is done on its final counters (`tracer final metrics` in its
//! log), which must be exact. Into `--out` (default `target/soak/`): `soak.csv`, an
//! ASCII plot of memory and descriptors `soak-plot.txt`, and `soak.md` for the README.

mod collector;
mod maps;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    io::Read as _,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    bench::run::{Running, Setup, Sink},
    setup::workspace_root,
};
use collector::Collector;

pub struct Options {
    pub minutes: u64,
    pub interval_secs: u64,
    pub out: Option<PathBuf>,
}

/// Memory is flat when, after the warm-up, it grows by at most this share of its
/// first post-warm-up value (and at least [`RSS_SLACK_KIB`]).
const RSS_GROWTH: f64 = 0.10;
const RSS_SLACK_KIB: f64 = 2048.0;
/// Descriptors are flat when they grow by at most this many after the warm-up (a
/// connection to the collector or a scrape open at the time of a sample).
const FD_SLACK: f64 = 3.0;

/// One sample of the agent.
#[derive(Clone, Debug, Default)]
struct Sample {
    secs: f64,
    rss_kib: f64,
    fds: f64,
    map_entries: f64,
    acct: Accounting,
    /// The collector's count of log records received.
    otlp_received: f64,
    collector_up: bool,
    policies_in_dir: usize,
    /// Workload operations so far.
    execs: u64,
    /// Entries of each map counted.
    maps: Vec<maps::MapCount>,
}

/// The accounting of one set of counters.
#[derive(Clone, Debug, Default)]
struct Accounting {
    /// Records the kernel handed over or lost, of the kinds that become events.
    kernel_in: f64,
    /// Events made from them.
    events_out: f64,
    kernel_lost: f64,
    decode_errors: f64,
    /// `kernel_in - events_out - kernel_lost - decode_errors`.
    unaccounted: f64,
    /// Every event the export stage took (the agent's own `event_loss` and
    /// `rate_limit_info` too).
    events_all: f64,
    filtered: f64,
    rate_limited: f64,
    /// Per sink: exported, dropped, queued, and what is left unaccounted.
    sinks: BTreeMap<String, SinkAcct>,
    policies_loaded: f64,
    policies_failed: f64,
    policy_hooks: f64,
}

#[derive(Clone, Debug, Default)]
struct SinkAcct {
    exported: f64,
    dropped: f64,
    queued: f64,
    unaccounted: f64,
}

/// The kernel record kinds that each become an event (fork and env records only
/// update the process cache).
const EVENT_KINDS: [&str; 4] = ["exec", "exit", "tracepoint", "mapping"];
/// The agent's own events, made from no record.
const AGENTS_EVENTS: [&str; 2] = ["event_loss", "rate_limit_info"];

/// The values of `metric` by the value of its one label: `metric{key="v"} x`.
fn labelled(m: &BTreeMap<String, f64>, metric: &str) -> Vec<(String, f64)> {
    let prefix = format!("{metric}{{");
    m.iter()
        .filter_map(|(series, v)| {
            let labels = series.strip_prefix(&prefix)?.strip_suffix('}')?;
            let value = labels.split_once('=')?.1.trim_matches('"');
            Some((value.to_owned(), *v))
        })
        .collect()
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// The sum of the values (0, not the -0 of an empty f64 sum).
fn total<'a>(xs: impl Iterator<Item = &'a f64>) -> f64 {
    xs.fold(0.0, |a, b| a + b)
}

fn account(m: &BTreeMap<String, f64>) -> Accounting {
    let kinds = |metric: &str| -> f64 {
        total(
            labelled(m, metric)
                .iter()
                .filter(|(k, _)| EVENT_KINDS.contains(&k.as_str()))
                .map(|(_, v)| v),
        )
    };
    let handed = kinds("tracer_kernel_events_total");
    let lost = kinds("tracer_kernel_events_lost_total");
    let events = labelled(m, "tracer_events_total");
    let events_all = total(events.iter().map(|(_, v)| v));
    let events_out = total(
        events
            .iter()
            .filter(|(t, _)| !AGENTS_EVENTS.contains(&t.as_str()))
            .map(|(_, v)| v),
    );
    let decode_errors = value(m, "tracer_decode_errors_total");
    let filtered = total(
        labelled(m, "tracer_events_filtered_total")
            .iter()
            .map(|(_, v)| v),
    );
    let rate_limited = value(m, "tracer_export_ratelimit_events_dropped_total");
    let mut sinks = BTreeMap::new();
    for (sink, exported) in labelled(m, "tracer_events_exported_total") {
        let get = |metric: &str| value(m, &format!("{metric}{{sink=\"{sink}\"}}"));
        let dropped = get("tracer_export_dropped_events_total");
        let queued = get("tracer_export_queue_events");
        sinks.insert(
            sink,
            SinkAcct {
                exported,
                dropped,
                queued,
                unaccounted: events_all - filtered - rate_limited - exported - dropped - queued,
            },
        );
    }
    let states = labelled(m, "tracer_tracingpolicy_loaded");
    let state = |s: &str| states.iter().find(|(k, _)| k == s).map_or(0.0, |(_, v)| *v);
    Accounting {
        kernel_in: handed + lost,
        events_out,
        kernel_lost: lost,
        decode_errors,
        unaccounted: handed + lost - events_out - lost - decode_errors,
        events_all,
        filtered,
        rate_limited,
        sinks,
        policies_loaded: state("loaded") + state("partly_loaded"),
        policies_failed: state("error"),
        policy_hooks: value(m, "tracer_policy_hooks{of=\"loaded\"}"),
    }
}

/// The workload's threads, stopped together.
struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    execs: Arc<AtomicU64>,
    connects: Arc<AtomicU64>,
    shell_connects: Arc<AtomicU64>,
    opens: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

/// Calls `f` every `period` until `stop`.
fn paced(
    name: &str,
    period: Duration,
    stop: &Arc<AtomicBool>,
    mut f: impl FnMut() + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let stop = stop.clone();
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                f();
                next += period;
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        })
        .with_context(|| format!("cannot start the workload's {name} thread"))
}

impl Workload {
    fn start(work: &Path) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (execs, connects, shell_connects, opens, failures) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let mut threads = Vec::new();
        let true_bin = ["/usr/bin/true", "/bin/true"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .context("no /bin/true on this machine")?;

        // Short processes.
        let (n, fail) = (execs.clone(), failures.clone());
        threads.push(paced(
            "soak-exec",
            Duration::from_millis(50),
            &stop,
            move || match Command::new(true_bin).stdin(Stdio::null()).status() {
                Ok(s) if s.success() => {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    fail.fetch_add(1, Ordering::Relaxed);
                }
            },
        )?);

        // Connects to a loopback listener, and from a shell now and then.
        let listener =
            TcpListener::bind("127.0.0.1:0").context("the soak cannot listen on the loopback")?;
        listener
            .set_nonblocking(true)
            .context("the soak's listener cannot be made non-blocking")?;
        let port = listener.local_addr()?.port();
        let s = stop.clone();
        threads.push(
            thread::Builder::new()
                .name("soak-accept".into())
                .spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((mut c, _)) => {
                                let _ = c.set_nonblocking(false);
                                let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
                                let mut sink = [0u8; 64];
                                let _ = c.read(&mut sink);
                            }
                            Err(_) => thread::sleep(Duration::from_millis(5)),
                        }
                    }
                })
                .context("cannot start the workload's accept thread")?,
        );
        let (n, sn, fail) = (connects.clone(), shell_connects.clone(), failures.clone());
        let mut i = 0u64;
        threads.push(paced(
            "soak-connect",
            Duration::from_millis(100),
            &stop,
            move || {
                i += 1;
                if i.is_multiple_of(20) {
                    let ok = Command::new("bash")
                        .args(["-c", "exec 3<>/dev/tcp/127.0.0.1/$0"])
                        .arg(port.to_string())
                        .stdin(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    if ok {
                        sn.fetch_add(1, Ordering::Relaxed);
                    } else {
                        fail.fetch_add(1, Ordering::Relaxed);
                    }
                } else if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    n.fetch_add(1, Ordering::Relaxed);
                } else {
                    fail.fetch_add(1, Ordering::Relaxed);
                }
            },
        )?);

        // File opens: a sensitive file (a policy event each), and a file of its own.
        let (n, fail) = (opens.clone(), failures.clone());
        let scratch = work.join("scratch");
        threads.push(paced(
            "soak-open",
            Duration::from_millis(100),
            &stop,
            move || {
                let mut b = [0u8; 1];
                let shadow = fs::File::open("/etc/shadow").and_then(|mut f| f.read(&mut b));
                let own = fs::write(&scratch, b"soak").and_then(|()| fs::remove_file(&scratch));
                if shadow.is_ok() && own.is_ok() {
                    n.fetch_add(1, Ordering::Relaxed);
                } else {
                    fail.fetch_add(1, Ordering::Relaxed);
                }
            },
        )?);
        Ok(Workload {
            stop,
            threads,
            execs,
            connects,
            shell_connects,
            opens,
            failures,
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The policy files, moved out of the agent's directory and back in turn.
struct Policies {
    dir: PathBuf,
    parked: PathBuf,
    names: Vec<String>,
}

impl Policies {
    fn lay(work: &Path) -> anyhow::Result<Self> {
        let src = workspace_root().join("policies");
        let dir = work.join("policies");
        let parked = work.join("policies-out");
        for d in [&dir, &parked] {
            let _ = fs::remove_dir_all(d);
            fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let mut names = Vec::new();
        for e in fs::read_dir(&src).with_context(|| format!("cannot list {}", src.display()))? {
            let e = e.with_context(|| format!("cannot list {}", src.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") {
                fs::copy(e.path(), dir.join(&name))
                    .with_context(|| format!("cannot copy {} to {}", name, dir.display()))?;
                names.push(name);
            }
        }
        if names.is_empty() {
            bail!("no policies/*.yaml in {}", src.display());
        }
        names.sort();
        Ok(Self { dir, parked, names })
    }

    /// Change `i`: an even one moves a policy out of the directory, the next one moves
    /// it back in; each policy in turn.
    fn swap(&self, i: usize) -> anyhow::Result<String> {
        let name = &self.names[(i / 2) % self.names.len()];
        let (inside, outside) = (self.dir.join(name), self.parked.join(name));
        if inside.exists() {
            fs::rename(&inside, &outside)
                .with_context(|| format!("cannot move {} out", inside.display()))?;
            Ok(format!("removed {name}"))
        } else {
            fs::rename(&outside, &inside)
                .with_context(|| format!("cannot move {} back", outside.display()))?;
            Ok(format!("added {name}"))
        }
    }

    fn in_dir(&self) -> usize {
        fs::read_dir(&self.dir).map_or(0, |d| d.count())
    }
}

fn fds(pid: i32) -> f64 {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(f64::NAN, |d| d.count() as f64)
}

fn kib_to_mib(k: f64) -> f64 {
    k / 1024.0
}

pub fn soak(opts: Options) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the soak runs the agent, which loads eBPF programs: run it as root (`sudo -E cargo xtask soak`)"
        );
    }
    if opts.minutes == 0 || opts.interval_secs == 0 {
        bail!("--minutes and --interval-secs must be at least 1");
    }
    let out = match opts.out.clone() {
        Some(d) if d.is_relative() => std::env::current_dir()
            .context("the current directory")?
            .join(d),
        Some(d) => d,
        None => workspace_root().join("target/soak"),
    };
    let work = out.join("work");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;

    let tracer = crate::bench::release_agent()?;

    let policies = Policies::lay(&work)?;
    let mut collector = Collector::start()?;
    let export = work.join("events.json");
    let args: Vec<String> = vec![
        "--tracing-policy-dir".into(),
        policies.dir.display().to_string(),
        "--export-filename".into(),
        export.display().to_string(),
        "--export-file-max-size-mb".into(),
        "1".into(),
        "--export-file-max-backups".into(),
        "3".into(),
        "--otlp-endpoint".into(),
        format!("http://127.0.0.1:{}", collector.port),
        "--otlp-protocol".into(),
        "http/protobuf".into(),
    ];
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let setup = Setup::agent("soak", &arg_refs, Sink::DevNull);
    eprintln!(
        "xtask: soak for {} min, a sample every {} s; the agent with {} policies; files in {}",
        opts.minutes,
        opts.interval_secs,
        policies.names.len(),
        out.display()
    );
    let agent = Running::start(&tracer, &work, &setup, "agent", false)?;
    let pid = agent.pid().context("the agent has no pid")?;
    let started = Instant::now();
    let mut workload = Workload::start(&work)?;

    let interval = Duration::from_secs(opts.interval_secs);
    let total = Duration::from_secs(opts.minutes * 60);
    let half = interval / 2;
    let mut samples: Vec<Sample> = Vec::new();
    let mut events_log: Vec<String> = Vec::new();
    let mut deletions = 0u64;
    let header = format!(
        "{:>6} {:>8} {:>5} {:>8} {:>10} {:>10} {:>6} {:>7} {:>10} {:>10} {:>8} {:>10} {:>7} {:>6}",
        "min",
        "rss MiB",
        "fds",
        "map ent",
        "kernel in",
        "events",
        "lost",
        "unacct",
        "file out",
        "otlp out",
        "otlp drop",
        "collector",
        "sink ±",
        "pols"
    );
    println!("{header}");
    let sample = |samples: &mut Vec<Sample>,
                  collector: &Collector,
                  workload: &Workload|
     -> anyhow::Result<()> {
        let m: BTreeMap<String, f64> = agent.metrics()?.into_iter().collect();
        let mem = agent.memory()?;
        let maps = maps::count(pid)?;
        let s = Sample {
            secs: started.elapsed().as_secs_f64(),
            rss_kib: mem.get("VmRSS").copied().unwrap_or(f64::NAN),
            fds: fds(pid),
            map_entries: maps.iter().map(|c| c.entries as f64).sum(),
            acct: account(&m),
            otlp_received: collector.received.records.load(Ordering::Relaxed) as f64,
            collector_up: collector.is_up(),
            policies_in_dir: policies.in_dir(),
            execs: workload.execs.load(Ordering::Relaxed),
            maps,
        };
        println!("{}", row(&s));
        samples.push(s);
        Ok(())
    };
    sample(&mut samples, &collector, &workload)?;
    let mut tick = 1u64;
    loop {
        let at = half * u32::try_from(tick).unwrap_or(u32::MAX);
        if at > total {
            break;
        }
        let now = started.elapsed();
        if at > now {
            thread::sleep(at - now);
        }
        if tick.is_multiple_of(2) {
            sample(&mut samples, &collector, &workload)?;
        } else {
            let a = (tick - 1) / 2;
            let mut did = vec![policies.swap(a as usize)?];
            if a % 3 == 1 {
                match fs::remove_file(&export) {
                    Ok(()) => {
                        deletions += 1;
                        did.push("deleted the export file".into());
                    }
                    Err(e) => did.push(format!("could not delete the export file: {e}")),
                }
            }
            if a % 5 == 2 {
                collector.stop();
                did.push("stopped the collector".into());
            } else if a % 5 == 3 {
                collector.restart()?;
                did.push("restarted the collector".into());
            }
            let line = format!(
                "{:>6.1} {}",
                started.elapsed().as_secs_f64() / 60.0,
                did.join(", ")
            );
            println!("{line}");
            events_log.push(line);
        }
        tick += 1;
    }

    // The end: the workload stops, the collector is back for the last records, and the
    // agent is stopped as a node stops it.
    workload.stop();
    collector.restart()?;
    thread::sleep(Duration::from_secs(5));
    let log = agent.log().to_path_buf();
    let stopped = agent.stop_with(libc::SIGTERM)?;
    collector.stop();
    let text =
        fs::read_to_string(&log).with_context(|| format!("cannot read {}", log.display()))?;
    let final_metrics: BTreeMap<String, f64> = text
        .lines()
        .find_map(|l| l.split_once("tracer final metrics: ").map(|(_, r)| r))
        .context("the agent's log has no `tracer final metrics` line")?
        .split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.rsplit_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect();
    let fin = account(&final_metrics);
    let reopened = text
        .lines()
        .filter(|l| l.contains("was deleted or moved: writing to a new file"))
        .count();
    let warnings = text.lines().filter(|l| l.contains(" WARN ")).count();
    let errors = text.lines().filter(|l| l.contains(" ERROR ")).count();
    let refused: Vec<String> = text
        .lines()
        .filter(|l| {
            (l.contains(" WARN ") || l.contains(" ERROR ")) && l.to_lowercase().contains("polic")
        })
        .map(|l| l.split_once("  ").map_or(l, |(_, r)| r).trim().to_owned())
        .collect();

    let w = Work {
        execs: workload.execs.load(Ordering::Relaxed),
        connects: workload.connects.load(Ordering::Relaxed),
        shell_connects: workload.shell_connects.load(Ordering::Relaxed),
        opens: workload.opens.load(Ordering::Relaxed),
        failures: workload.failures.load(Ordering::Relaxed),
        deletions,
        reopened: reopened as u64,
        collector_starts: collector.starts,
        otlp_requests: collector.received.requests.load(Ordering::Relaxed),
        otlp_records: collector.received.records.load(Ordering::Relaxed),
        otlp_unreadable: collector.received.unreadable.load(Ordering::Relaxed),
        warnings,
        errors,
    };
    let report = Report {
        opts: &opts,
        samples: &samples,
        fin: &fin,
        summary: &stopped.summary,
        work: &w,
        actions: &events_log,
        policy_lines: &refused,
        took: started.elapsed(),
    };
    let verdict = report.verdict();
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let write = |name: &str, body: String| -> anyhow::Result<()> {
        let p = out.join(name);
        fs::write(&p, body).with_context(|| format!("cannot write {}", p.display()))
    };
    write("soak.csv", report.csv())?;
    let plot = report.plot();
    write("soak-plot.txt", plot.clone())?;
    let md = report.markdown(&verdict);
    write("soak.md", md)?;
    println!("\n{plot}");
    println!("{}", report.final_text());
    for v in &verdict {
        println!("{}", v.line());
    }
    println!(
        "\nxtask: soak.csv, soak-plot.txt, soak.md in {}",
        out.display()
    );
    if verdict.iter().any(|v| !v.met) {
        bail!("the soak's targets were not all met (see above)");
    }
    Ok(())
}

fn row(s: &Sample) -> String {
    let a = &s.acct;
    let sink = |name: &str| a.sinks.get(name).cloned().unwrap_or_default();
    let sink_unacct = a.sinks.values().fold(0.0, |t, x| t + x.unaccounted.abs());
    format!(
        "{:>6.1} {:>8.1} {:>5.0} {:>8.0} {:>10.0} {:>10.0} {:>6.0} {:>7.0} {:>10.0} {:>10.0} {:>8.0} {:>10} {:>7.0} {:>6}",
        s.secs / 60.0,
        kib_to_mib(s.rss_kib),
        s.fds,
        s.map_entries,
        a.kernel_in,
        a.events_out,
        a.kernel_lost + a.decode_errors,
        a.unaccounted,
        sink("export_file").exported,
        sink("otlp").exported,
        sink("otlp").dropped,
        if s.collector_up { "up" } else { "down" },
        sink_unacct,
        format!("{:.0}/{}", a.policies_loaded, s.policies_in_dir),
    )
}

struct Work {
    execs: u64,
    connects: u64,
    shell_connects: u64,
    opens: u64,
    failures: u64,
    deletions: u64,
    reopened: u64,
    collector_starts: u64,
    otlp_requests: u64,
    otlp_records: u64,
    otlp_unreadable: u64,
    warnings: usize,
    errors: usize,
}

struct Report<'a> {
    opts: &'a Options,
    samples: &'a [Sample],
    fin: &'a Accounting,
    summary: &'a BTreeMap<String, f64>,
    work: &'a Work,
    actions: &'a [String],
    policy_lines: &'a [String],
    took: Duration,
}

struct Verdict {
    what: String,
    value: String,
    met: bool,
}

impl Verdict {
    fn line(&self) -> String {
        format!(
            "{}: {} — {}",
            self.what,
            self.value,
            if self.met { "met" } else { "NOT MET" }
        )
    }
}

impl Report<'_> {
    /// Seconds of warm-up: a sixth of the run, at least one interval, at most 5 minutes.
    fn warmup(&self) -> f64 {
        let total = (self.opts.minutes * 60) as f64;
        (total / 6.0).clamp(self.opts.interval_secs as f64, 300.0)
    }

    /// (first post-warm-up value, max over the last half, last value, slope per minute
    /// after the warm-up) of `f`.
    fn trend(&self, f: impl Fn(&Sample) -> f64) -> (f64, f64, f64, f64) {
        let warm = self.warmup();
        let total = (self.opts.minutes * 60) as f64;
        let after: Vec<&Sample> = self.samples.iter().filter(|s| s.secs >= warm).collect();
        let base = after.first().map_or(f64::NAN, |s| f(s));
        let max_late = self
            .samples
            .iter()
            .filter(|s| s.secs >= total / 2.0)
            .map(&f)
            .fold(f64::NEG_INFINITY, f64::max);
        let last = self.samples.last().map_or(f64::NAN, &f);
        // Least squares over the post-warm-up samples.
        let n = after.len() as f64;
        let slope = if after.len() >= 2 {
            let mx = after.iter().map(|s| s.secs / 60.0).sum::<f64>() / n;
            let my = after.iter().map(|s| f(s)).sum::<f64>() / n;
            let sxy: f64 = after
                .iter()
                .map(|s| (s.secs / 60.0 - mx) * (f(s) - my))
                .sum();
            let sxx: f64 = after.iter().map(|s| (s.secs / 60.0 - mx).powi(2)).sum();
            if sxx > 0.0 { sxy / sxx } else { 0.0 }
        } else {
            f64::NAN
        };
        (base, max_late, last, slope)
    }

    fn verdict(&self) -> Vec<Verdict> {
        let mut v = Vec::new();
        let (base, late, last, slope) = self.trend(|s| s.rss_kib);
        let limit = (base * RSS_GROWTH).max(RSS_SLACK_KIB);
        v.push(Verdict {
            what: format!(
                "resident memory flat after {:.0} min of warm-up (last-half max − first post-warm-up value ≤ max({:.0} %, {:.0} MiB))",
                self.warmup() / 60.0,
                RSS_GROWTH * 100.0,
                RSS_SLACK_KIB / 1024.0
            ),
            value: format!(
                "{:.1} MiB → max {:.1} MiB ({:+.2} MiB), end {:.1} MiB, trend {:+.0} KiB/min",
                kib_to_mib(base),
                kib_to_mib(late),
                kib_to_mib(late - base),
                kib_to_mib(last),
                slope
            ),
            met: late - base <= limit,
        });
        let (base, late, last, slope) = self.trend(|s| s.fds);
        v.push(Verdict {
            what: format!(
                "open descriptors flat (last-half max − first post-warm-up value ≤ {FD_SLACK:.0})"
            ),
            value: format!(
                "{base:.0} → max {late:.0} ({:+.0}), end {last:.0}, trend {slope:+.2}/min",
                late - base
            ),
            met: late - base <= FD_SLACK,
        });
        let (base, late, last, slope) = self.trend(|s| s.map_entries);
        v.push(Verdict {
            what: "eBPF map entries flat (last-half max − first post-warm-up value ≤ 10 % + 256)"
                .into(),
            value: format!(
                "{base:.0} → max {late:.0} ({:+.0}), end {last:.0}, trend {slope:+.1}/min",
                late - base
            ),
            met: late - base <= base * 0.10 + 256.0,
        });
        let f = self.fin;
        v.push(Verdict {
            what: "final accounting, kernel records: in − (events + lost + malformed)".into(),
            value: format!(
                "{:.0} − ({:.0} + {:.0} + {:.0}) = {:.0}",
                f.kernel_in, f.events_out, f.kernel_lost, f.decode_errors, f.unaccounted
            ),
            met: f.unaccounted == 0.0 && f.kernel_in > 0.0,
        });
        for (name, s) in &f.sinks {
            v.push(Verdict {
                what: format!(
                    "final accounting, sink {name}: events − (filtered + rate limited + exported + dropped + queued)"
                ),
                value: format!(
                    "{:.0} − ({:.0} + {:.0} + {:.0} + {:.0} + {:.0}) = {:.0}",
                    f.events_all,
                    f.filtered,
                    f.rate_limited,
                    s.exported,
                    s.dropped,
                    s.queued,
                    s.unaccounted
                ),
                met: s.unaccounted == 0.0,
            });
        }
        if let Some(o) = f.sinks.get("otlp") {
            let got = self.work.otlp_records as f64;
            v.push(Verdict {
                what: "OTLP records the collector received ≥ exported (delivery is at least once)"
                    .into(),
                value: format!(
                    "{got:.0} received, {:.0} exported ({:+.0})",
                    o.exported,
                    got - o.exported
                ),
                met: got >= o.exported && self.work.otlp_unreadable == 0,
            });
        }
        v
    }

    fn csv(&self) -> String {
        let mut s = String::from(
            "seconds,rss_kib,fds,map_entries,kernel_in,events_out,kernel_lost,decode_errors,unaccounted,events_all,filtered,rate_limited,file_exported,file_dropped,file_queued,file_unaccounted,otlp_exported,otlp_dropped,otlp_queued,otlp_unaccounted,otlp_received,collector_up,policies_loaded,policies_failed,policy_hooks,policies_in_dir,execs\n",
        );
        for x in self.samples {
            let a = &x.acct;
            let sink = |n: &str| a.sinks.get(n).cloned().unwrap_or_default();
            let (fl, ot) = (sink("export_file"), sink("otlp"));
            let _ = writeln!(
                s,
                "{:.1},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{},{:.0},{:.0},{:.0},{},{}",
                x.secs,
                x.rss_kib,
                x.fds,
                x.map_entries,
                a.kernel_in,
                a.events_out,
                a.kernel_lost,
                a.decode_errors,
                a.unaccounted,
                a.events_all,
                a.filtered,
                a.rate_limited,
                fl.exported,
                fl.dropped,
                fl.queued,
                fl.unaccounted,
                ot.exported,
                ot.dropped,
                ot.queued,
                ot.unaccounted,
                x.otlp_received,
                u8::from(x.collector_up),
                a.policies_loaded,
                a.policies_failed,
                a.policy_hooks,
                x.policies_in_dir,
                x.execs
            );
        }
        s
    }

    /// ASCII charts of resident memory and descriptors over time.
    fn plot(&self) -> String {
        let mut out = String::new();
        out.push_str(&chart(
            "agent resident memory (VmRSS, MiB)",
            self.samples,
            |s| kib_to_mib(s.rss_kib),
            self.warmup(),
        ));
        out.push('\n');
        out.push_str(&chart(
            "agent open file descriptors",
            self.samples,
            |s| s.fds,
            self.warmup(),
        ));
        out.push('\n');
        out.push_str(&chart(
            "entries in the agent's eBPF hash maps",
            self.samples,
            |s| s.map_entries,
            self.warmup(),
        ));
        out
    }

    fn final_text(&self) -> String {
        let f = self.fin;
        let w = self.work;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "workload: {} short processes, {} connects (+{} from bash), {} rounds of file opens, {} failed operations; {} export file deletions ({} re-creations logged), collector started {} times ({} requests, {} records)",
            w.execs,
            w.connects,
            w.shell_connects,
            w.opens,
            w.failures,
            w.deletions,
            w.reopened,
            w.collector_starts,
            w.otlp_requests,
            w.otlp_records
        );
        let _ = writeln!(
            s,
            "final counters (after SIGTERM): kernel records in {:.0}, events made {:.0} (+{:.0} of the agent's own), lost in the kernel {:.0}, malformed {:.0}; filtered {:.0}, rate limited {:.0}",
            f.kernel_in,
            f.events_out,
            f.events_all - f.events_out,
            f.kernel_lost,
            f.decode_errors,
            f.filtered,
            f.rate_limited
        );
        for (name, x) in &f.sinks {
            let _ = writeln!(
                s,
                "  sink {name}: exported {:.0}, dropped {:.0}, queued {:.0}",
                x.exported, x.dropped, x.queued
            );
        }
        let summary: Vec<String> = self
            .summary
            .iter()
            .map(|(k, v)| format!("{k}={v:.0}"))
            .collect();
        let _ = writeln!(s, "`tracer stopped`: {}", summary.join(" "));
        let _ = writeln!(s, "agent log: {} warnings, {} errors", w.warnings, w.errors);
        if let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) {
            let at = |x: &Sample, name: &str| {
                x.maps
                    .iter()
                    .find(|m| m.name == name)
                    .map_or("-".to_owned(), |m| m.entries.to_string())
            };
            let mut names: Vec<&str> = first.maps.iter().map(|m| m.name.as_str()).collect();
            for m in &last.maps {
                if !names.contains(&m.name.as_str()) {
                    names.push(&m.name);
                }
            }
            let per: Vec<String> = names
                .iter()
                .map(|n| {
                    let max = last
                        .maps
                        .iter()
                        .chain(&first.maps)
                        .find(|m| m.name == *n)
                        .map_or(0, |m| m.max_entries);
                    format!("{n} {}→{} (of {max})", at(first, n), at(last, n))
                })
                .collect();
            let _ = writeln!(s, "map entries, first → last sample: {}", per.join(", "));
        }
        s
    }

    fn markdown(&self, verdict: &[Verdict]) -> String {
        let mut s = String::new();
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cpus = thread::available_parallelism().map_or(1, |n| n.get());
        let _ = writeln!(
            s,
            "`cargo xtask soak --minutes {} --interval-secs {}`, {} CPUs, Linux {}, {:.0} min in all.\n",
            self.opts.minutes,
            self.opts.interval_secs,
            cpus,
            kernel.trim(),
            self.took.as_secs_f64() / 60.0
        );
        s.push_str("| min | RSS MiB | fds | map entries | kernel in | events | lost | in − events − lost | file out | OTLP out | OTLP dropped | collector | policies |\n");
        s.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n");
        for x in self.samples {
            let a = &x.acct;
            let sink = |n: &str| a.sinks.get(n).cloned().unwrap_or_default();
            let _ = writeln!(
                s,
                "| {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.0} |",
                x.secs / 60.0,
                kib_to_mib(x.rss_kib),
                x.fds,
                x.map_entries,
                a.kernel_in,
                a.events_out,
                a.kernel_lost + a.decode_errors,
                a.unaccounted,
                sink("export_file").exported,
                sink("otlp").exported,
                sink("otlp").dropped,
                if x.collector_up { "up" } else { "down" },
                a.policies_loaded
            );
        }
        s.push_str("\n```\n");
        s.push_str(&self.plot());
        s.push_str("```\n\n");
        s.push_str(&self.final_text().replace('\n', "\n\n"));
        for v in verdict {
            let _ = writeln!(s, "- {}", v.line());
        }
        if !self.policy_lines.is_empty() {
            s.push_str("\nThe agent's log about policies:\n\n```\n");
            for l in self.policy_lines.iter().take(20) {
                let _ = writeln!(s, "{l}");
            }
            s.push_str("```\n");
        }
        let _ = writeln!(s, "\nChanges made during the run: {}.", self.actions.len());
        s
    }
}

/// A line chart of `f` over the samples, `HEIGHT` rows by one column per sample
/// (squeezed to `WIDTH`), with its axis values; `|` marks the end of the warm-up.
fn chart(title: &str, samples: &[Sample], f: impl Fn(&Sample) -> f64, warmup: f64) -> String {
    const HEIGHT: usize = 12;
    const WIDTH: usize = 60;
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.secs / 60.0, f(s)))
        .filter(|(_, y)| y.is_finite())
        .collect();
    let mut out = format!("{title}\n");
    if pts.is_empty() {
        out.push_str("(no samples)\n");
        return out;
    }
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| {
            (a.min(*y), b.max(*y))
        });
    // A flat line sits mid-chart; the axis spans at least 1 % of the value.
    let span = (hi - lo).max(hi.abs() * 0.01).max(1.0);
    let (lo, hi) = ((lo + hi) / 2.0 - span * 0.6, (lo + hi) / 2.0 + span * 0.6);
    let tmax = pts.last().map_or(1.0, |p| p.0).max(1e-9);
    let cols = pts.len().clamp(1, WIDTH);
    let mut grid = vec![vec![' '; cols]; HEIGHT];
    for (t, y) in &pts {
        let c = ((t / tmax) * (cols - 1) as f64).round() as usize;
        let r = (((y - lo) / (hi - lo)) * (HEIGHT - 1) as f64).round() as usize;
        let r = HEIGHT - 1 - r.min(HEIGHT - 1);
        grid[r][c.min(cols - 1)] = '*';
    }
    let warm_col = ((warmup / 60.0 / tmax) * (cols - 1) as f64).round() as usize;
    for (i, line) in grid.iter_mut().enumerate() {
        let y = hi - (hi - lo) * i as f64 / (HEIGHT - 1) as f64;
        let body: String = line
            .iter()
            .enumerate()
            .map(|(c, ch)| {
                if *ch == ' ' && c == warm_col && warm_col > 0 {
                    '|'
                } else {
                    *ch
                }
            })
            .collect();
        let _ = writeln!(out, "{y:>9.1} ┤{body}");
    }
    let _ = writeln!(out, "{:>9} └{}", "", "─".repeat(cols));
    let _ = writeln!(
        out,
        "{:>9}  0 min{:>w$}",
        "",
        format!("{tmax:.0} min"),
        w = cols.saturating_sub(5)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accounting_adds_the_kernels_kinds_and_each_sink() {
        let m: BTreeMap<String, f64> = [
            ("tracer_kernel_events_total{kind=\"exec\"}", 10.0),
            ("tracer_kernel_events_total{kind=\"fork\"}", 50.0),
            ("tracer_kernel_events_total{kind=\"exit\"}", 9.0),
            ("tracer_kernel_events_total{kind=\"tracepoint\"}", 5.0),
            ("tracer_kernel_events_lost_total{kind=\"exit\"}", 1.0),
            ("tracer_kernel_events_lost_total{kind=\"fork\"}", 3.0),
            ("tracer_events_total{type=\"process_exec\"}", 10.0),
            ("tracer_events_total{type=\"process_exit\"}", 9.0),
            ("tracer_events_total{type=\"process_kprobe\"}", 4.0),
            ("tracer_events_total{type=\"event_loss\"}", 1.0),
            ("tracer_events_exported_total{sink=\"file\"}", 23.0),
            ("tracer_export_queue_events{sink=\"file\"}", 1.0),
            ("tracer_events_exported_total{sink=\"otlp\"}", 20.0),
            ("tracer_export_dropped_events_total{sink=\"otlp\"}", 4.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let a = account(&m);
        // Fork records become no event; the lost exit is counted as lost.
        assert_eq!(a.kernel_in, 25.0);
        assert_eq!(a.events_out, 23.0);
        assert_eq!(a.kernel_lost, 1.0);
        // One policy record with no event.
        assert_eq!(a.unaccounted, 1.0);
        assert_eq!(a.events_all, 24.0);
        assert_eq!(a.sinks["file"].unaccounted, 0.0);
        assert_eq!(a.sinks["otlp"].unaccounted, 0.0);
    }

    #[test]
    fn a_chart_has_its_rows_and_axis() {
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample {
                secs: f64::from(i) * 60.0,
                rss_kib: 20_000.0 + f64::from(i),
                ..Sample::default()
            })
            .collect();
        let c = chart("rss", &samples, |s| s.rss_kib, 60.0);
        assert_eq!(c.lines().count(), 1 + 12 + 2);
        assert_eq!(c.matches('*').count(), 5);
    }
}
