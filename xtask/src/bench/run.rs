//! What the benchmarks run: the agent, bpftrace and the workloads, each started, watched
//! and stopped here, with what /proc and the kernel say about them (CPU time, resident
//! memory, each eBPF program's run statistics).

use std::{
    collections::BTreeMap,
    fs,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// How long the agent or bpftrace may take to start tracing.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long either may take to stop once told to.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// `--keep-output`: leave each run's event stream in `work` once it has been counted.
pub static KEEP_OUTPUT: AtomicBool = AtomicBool::new(false);

/// A run's event stream (the agent's export file or bpftrace's output), removed when
/// dropped, once counted: a full run writes tens of GiB of them, which would otherwise
/// stay on disk.
#[derive(Debug)]
pub struct Output(PathBuf);

impl std::ops::Deref for Output {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !KEEP_OUTPUT.load(Ordering::Relaxed) {
            let _ = fs::remove_file(&self.0);
        }
    }
}

/// Where the agent's JSON lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// `--export-null`: every stage but encoding and writing.
    Null,
    /// JSON lines on stdout, which is /dev/null.
    DevNull,
    /// `--export-filename` (never rotated), counted once the agent stops.
    File,
}

/// One way of tracing (or not) while a workload runs.
#[derive(Clone, Debug)]
pub enum Tracer {
    None,
    /// `tracer run` with these arguments, writing to this sink.
    Agent {
        args: Vec<String>,
        sink: Sink,
    },
    /// bpftrace running this program.
    Bpftrace {
        program: String,
    },
    /// `tracer floor`: a program that returns at once on this tracepoint
    /// (`syscalls/sys_enter_getppid`), and nothing else.
    Floor {
        tracepoint: String,
    },
}

/// A benchmark's setup: its name in the tables and how it traces.
#[derive(Clone, Debug)]
pub struct Setup {
    pub name: &'static str,
    pub tracer: Tracer,
    /// Environment variables of the tracer's process (`KUBECONFIG`, bpftrace's limits).
    pub env: Vec<(String, String)>,
}

impl Setup {
    pub fn none() -> Self {
        Self {
            name: "none",
            tracer: Tracer::None,
            env: Vec::new(),
        }
    }

    pub fn agent(name: &'static str, args: &[&str], sink: Sink) -> Self {
        Self {
            name,
            tracer: Tracer::Agent {
                args: args.iter().map(|s| (*s).to_owned()).collect(),
                sink,
            },
            env: Vec::new(),
        }
    }

    pub fn bpftrace(name: &'static str, program: impl Into<String>) -> Self {
        Self {
            name,
            tracer: Tracer::Bpftrace {
                program: program.into(),
            },
            env: Vec::new(),
        }
    }

    pub fn floor(name: &'static str, tracepoint: &str) -> Self {
        Self {
            name,
            tracer: Tracer::Floor {
                tracepoint: tracepoint.to_owned(),
            },
            env: Vec::new(),
        }
    }

    /// The same, with `key=value` in the tracer's environment.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn is_traced(&self) -> bool {
        !matches!(self.tracer, Tracer::None)
    }
}

/// A tracer while it runs.
pub struct Running {
    child: Option<Child>,
    pid: i32,
    kind: Kind,
    /// The agent's log, or bpftrace's or `tracer floor`'s stderr.
    log: PathBuf,
    /// The agent's export file, or bpftrace's output: removed with the run, however it
    /// ends, once handed on to [`Stopped`] and counted.
    out: Option<Output>,
    /// The agent's metrics port.
    metrics_port: Option<u16>,
    cpu_at_mark: f64,
    switches_at_mark: f64,
    progs_at_mark: BTreeMap<u32, ProgStat>,
    stats: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    None,
    Agent,
    Bpftrace,
    Floor,
}

/// What a tracer left once stopped.
#[derive(Debug, Default)]
pub struct Stopped {
    /// CPU seconds (user and system, every thread) from the mark to its exit.
    pub cpu_s: f64,
    /// The agent's `tracer stopped` summary (`events_written`, `kernel_lost`, ...).
    pub summary: BTreeMap<String, f64>,
    /// Each policy's kernel counters (`seen`, `matched`, `posted`, `lost`,
    /// `rate_limited`), by policy name.
    pub policies: BTreeMap<String, BTreeMap<String, f64>>,
    /// Times it went to sleep waiting (voluntary context switches, all threads) from the
    /// mark to the stop: how often the kernel woke it.
    pub wakeups: f64,
    /// Events bpftrace said it lost.
    pub bpftrace_lost: f64,
    /// Per eBPF program, with run statistics on: (name, runs, ns per run) over the workload.
    pub programs: Vec<(String, u64, f64)>,
    /// The agent's export file, or bpftrace's output.
    pub out: Option<Output>,
}

/// Run-time statistics of one eBPF program (`kernel.bpf_stats_enabled`).
#[derive(Clone, Copy, Debug, Default)]
struct ProgStat {
    run_time_ns: u64,
    run_cnt: u64,
}

impl Running {
    /// Starts `setup`'s tracer and waits until it traces. `tag` names its files in
    /// `work`; `stats`: read each program's run statistics over the workload.
    pub fn start(
        tracer_bin: &Path,
        work: &Path,
        setup: &Setup,
        tag: &str,
        stats: bool,
    ) -> anyhow::Result<Running> {
        let log = work.join(format!("{tag}.log"));
        let mut running = Running {
            child: None,
            pid: 0,
            kind: Kind::None,
            log: log.clone(),
            out: None,
            metrics_port: None,
            cpu_at_mark: 0.0,
            switches_at_mark: 0.0,
            progs_at_mark: BTreeMap::new(),
            stats,
        };
        match &setup.tracer {
            Tracer::None => return Ok(running),
            Tracer::Agent { args, sink } => {
                let port = free_port()?;
                let mut cmd = Command::new(tracer_bin);
                cmd.arg("run")
                    .args(["--node-name", "bench", "--log-level", "info"])
                    // Each run starts from nothing and leaves nothing: the next one (the
                    // baseline too) runs without this one's hooks.
                    .arg("--no-pin")
                    .args(["--metrics-server", &format!("127.0.0.1:{port}")])
                    .args(args)
                    .envs(setup.env.iter().map(|(k, v)| (k, v)))
                    .env("NO_COLOR", "1")
                    .stdin(Stdio::null())
                    .stderr(file(&log)?);
                match sink {
                    Sink::Null => {
                        cmd.arg("--export-null").stdout(Stdio::null());
                    }
                    Sink::DevNull => {
                        cmd.stdout(Stdio::null());
                    }
                    Sink::File => {
                        let out = work.join(format!("{tag}.json"));
                        let _ = fs::remove_file(&out);
                        cmd.arg("--export-filename")
                            .arg(&out)
                            .args(["--export-file-max-size-mb", "1000000"])
                            .stdout(Stdio::null());
                        running.out = Some(Output(out));
                    }
                }
                let child = cmd
                    .spawn()
                    .with_context(|| format!("cannot start {}", tracer_bin.display()))?;
                running.pid = child.id() as i32;
                running.child = Some(child);
                running.kind = Kind::Agent;
                running.metrics_port = Some(port);
                running.wait_until("the agent to be ready", |r| {
                    Ok(fs::read_to_string(&r.log)?.contains("tracer ready"))
                })?;
            }
            Tracer::Bpftrace { program } => {
                // bpftrace takes strings of at most 64 bytes: a short path.
                static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let ready = std::env::temp_dir().join(format!(
                    "tracer-bench-{}-{}",
                    std::process::id(),
                    STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ));
                let _ = fs::remove_file(&ready);
                let out = work.join(format!("{tag}.bt"));
                // BEGIN runs once every probe is attached.
                let program = format!(
                    "BEGIN {{ system(\"touch {}\"); }}\n{program}",
                    ready.display()
                );
                let child = Command::new("bpftrace")
                    .arg("--unsafe")
                    .arg("-o")
                    .arg(&out)
                    .args(["-e", &program])
                    .envs(setup.env.iter().map(|(k, v)| (k, v)))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(file(&log)?)
                    .spawn()
                    .context("cannot start bpftrace")?;
                running.pid = child.id() as i32;
                running.child = Some(child);
                running.kind = Kind::Bpftrace;
                running.out = Some(Output(out));
                running.wait_until("bpftrace to attach its probes", |_| Ok(ready.exists()))?;
                let _ = fs::remove_file(&ready);
            }
            Tracer::Floor { tracepoint } => {
                let ready = work.join(format!("{tag}.ready"));
                let _ = fs::remove_file(&ready);
                let child = Command::new(tracer_bin)
                    .args(["floor", "--tracepoint", tracepoint, "--ready-file"])
                    .arg(&ready)
                    .envs(setup.env.iter().map(|(k, v)| (k, v)))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(file(&log)?)
                    .spawn()
                    .with_context(|| format!("cannot start {} floor", tracer_bin.display()))?;
                running.pid = child.id() as i32;
                running.child = Some(child);
                running.kind = Kind::Floor;
                running.wait_until("tracer floor to attach its program", |_| Ok(ready.exists()))?;
            }
        }
        Ok(running)
    }

    /// The tracer's log: the agent's, or bpftrace's or `tracer floor`'s stderr.
    pub fn log(&self) -> &Path {
        &self.log
    }

    fn wait_until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&Running) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if done(self)? {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "waiting for {what}: it exited ({status}); its log {}:\n{}",
                    self.log.display(),
                    tail(&self.log)
                );
            }
            if start.elapsed() > START_TIMEOUT {
                bail!(
                    "timed out waiting for {what}; its log {}:\n{}",
                    self.log.display(),
                    tail(&self.log)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_agent(&self) -> bool {
        self.kind == Kind::Agent
    }

    pub fn pid(&self) -> Option<i32> {
        (self.kind != Kind::None).then_some(self.pid)
    }

    /// The start of the workload: CPU time and program statistics are counted from here.
    pub fn mark(&mut self) -> anyhow::Result<()> {
        if self.kind == Kind::None {
            return Ok(());
        }
        self.cpu_at_mark = cpu_seconds(self.pid)?;
        self.switches_at_mark = switches(self.pid);
        if self.stats {
            self.progs_at_mark = prog_stats(self.pid);
        }
        Ok(())
    }

    /// The agent's metrics, as (series, value) pairs: `tracer_policy_events_total{policy="p"}`.
    pub fn metrics(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let Some(port) = self.metrics_port else {
            return Ok(Vec::new());
        };
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("cannot reach the agent's metrics on port {port}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Ok(body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect())
    }

    /// The value of one metric series (0 when absent).
    pub fn metric(&self, series: &str) -> anyhow::Result<f64> {
        Ok(self
            .metrics()?
            .into_iter()
            .find(|(s, _)| s == series)
            .map_or(0.0, |(_, v)| v))
    }

    /// Waits until the agent has handed on everything the workload made: `series` (a
    /// counter of the export stage) stops moving.
    pub fn settle(&self, series: &str) -> anyhow::Result<()> {
        if self.kind != Kind::Agent {
            return Ok(());
        }
        let start = Instant::now();
        let mut last = -1.0;
        let mut still = 0;
        while still < 4 && start.elapsed() < Duration::from_secs(120) {
            let v = self.metric(series)?;
            if v == last {
                still += 1;
            } else {
                still = 0;
                last = v;
            }
            thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    }

    /// Resident memory of the agent now: VmRSS and its parts, in KiB.
    pub fn memory(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        memory(self.pid)
    }

    /// Stops the tracer (SIGINT, as Ctrl-C) and waits for its exit.
    pub fn stop(self) -> anyhow::Result<Stopped> {
        self.stop_with(libc::SIGINT)
    }

    /// Stops the tracer with `signal` (SIGINT or SIGTERM) and waits for its exit.
    pub fn stop_with(mut self, signal: libc::c_int) -> anyhow::Result<Stopped> {
        let mut stopped = Stopped {
            out: self.out.take(),
            ..Stopped::default()
        };
        let Some(child) = self.child.take() else {
            return Ok(stopped);
        };
        if self.stats {
            let names = prog_names();
            let now = prog_stats(self.pid);
            for (id, s) in now {
                let before = self.progs_at_mark.get(&id).copied().unwrap_or_default();
                let runs = s.run_cnt.saturating_sub(before.run_cnt);
                if runs == 0 {
                    continue;
                }
                let ns = s.run_time_ns.saturating_sub(before.run_time_ns) as f64 / runs as f64;
                let name = names
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("prog {id}"));
                stopped.programs.push((name, runs, ns));
            }
        }
        stopped.wakeups = (switches(self.pid) - self.switches_at_mark).max(0.0);
        // SAFETY: kill(2) on the child's own pid, which it keeps until reaped below.
        unsafe { libc::kill(self.pid, signal) };
        let usage = reap(child, self.pid)?;
        stopped.cpu_s = (usage - self.cpu_at_mark).max(0.0);
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        match self.kind {
            Kind::Agent => {
                let Some(line) = log.lines().find(|l| l.contains("tracer stopped")) else {
                    bail!(
                        "the agent did not say `tracer stopped`; its log {}:\n{}",
                        self.log.display(),
                        tail(&self.log)
                    );
                };
                stopped.summary = key_values(line);
                for line in log.lines() {
                    let Some((_, rest)) = line.split_once(" policy ") else {
                        continue;
                    };
                    let Some((name, counters)) = rest.split_once(" counters ") else {
                        continue;
                    };
                    stopped
                        .policies
                        .insert(name.to_owned(), key_values(counters));
                }
            }
            Kind::Bpftrace => {
                let out = stopped
                    .out
                    .as_ref()
                    .and_then(|o| fs::read_to_string(&**o).ok())
                    .unwrap_or_default();
                stopped.bpftrace_lost = [log.as_str(), out.as_str()]
                    .iter()
                    .flat_map(|t| t.lines())
                    .filter_map(|l| {
                        let rest = l.trim().strip_prefix("Lost ")?;
                        rest.split(' ').next()?.parse::<f64>().ok()
                    })
                    .sum();
            }
            Kind::None | Kind::Floor => {}
        }
        Ok(stopped)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A tracer left running by an error: stopped, not left behind.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `key=value` words of a log line, the numeric ones.
fn key_values(line: &str) -> BTreeMap<String, f64> {
    line.split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Waits for `child` to exit (SIGKILL past the timeout) and returns the CPU seconds it
/// used in all, from wait4's resource usage.
fn reap(mut child: Child, pid: i32) -> anyhow::Result<f64> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child's pid, with pointers to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            // Reaped here: the Child must not be waited for again.
            std::mem::forget(child);
            return Ok(secs(usage.ru_utime) + secs(usage.ru_stime));
        }
        if r < 0 {
            bail!(
                "waiting for process {pid}: {}",
                std::io::Error::last_os_error()
            );
        }
        if start.elapsed() > STOP_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("process {pid} did not stop within {STOP_TIMEOUT:?} of being told to; killed");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn file(path: &Path) -> anyhow::Result<fs::File> {
    fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// The last lines of a log, for an error message.
pub fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A port free on the loopback now.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// User and system CPU seconds of a live process, all its threads.
pub fn cpu_seconds(pid: i32) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis, from field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // utime and stime are fields 14 and 15: 11 and 12 after the state.
    Ok((ticks(11) + ticks(12)) / hz)
}

/// Voluntary context switches of a live process, all its threads.
fn switches(pid: i32) -> f64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .sum()
}

/// VmRSS, RssAnon, RssFile and RssShmem of a process, and the part of its resident
/// memory that is mapped eBPF maps (the ring buffer, mapped twice), in KiB.
pub fn memory(pid: i32) -> anyhow::Result<BTreeMap<String, f64>> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let mut m = BTreeMap::new();
    for line in status.lines() {
        for key in ["VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"] {
            if let Some(v) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
                let kib = v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0.0);
                m.insert(key.to_owned(), kib);
            }
        }
    }
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut in_map = false;
    let mut maps = 0.0;
    for line in smaps.lines() {
        // A mapping's header line: `start-end perms offset dev inode [path]`.
        let first = line.split_whitespace().next().unwrap_or_default();
        let is_header = first
            .split_once('-')
            .is_some_and(|(a, b)| is_hex(a) && is_hex(b));
        if is_header {
            in_map = line.contains("anon_inode:bpf-map");
        } else if in_map && let Some(v) = line.strip_prefix("Rss:") {
            maps += v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0.0);
        }
    }
    m.insert("bpf_maps".to_owned(), maps);
    Ok(m)
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Run statistics of the eBPF programs a process holds, by program id (from the
/// fdinfo of its `bpf-prog` descriptors).
fn prog_stats(pid: i32) -> BTreeMap<u32, ProgStat> {
    let mut out = BTreeMap::new();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for fd in fds.filter_map(Result::ok) {
        let is_prog =
            fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().contains("bpf-prog"));
        if !is_prog {
            continue;
        }
        let Ok(info) = fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        )) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(id) = field("prog_id:") {
            out.insert(
                id as u32,
                ProgStat {
                    run_time_ns: field("run_time_ns:").unwrap_or(0),
                    run_cnt: field("run_cnt:").unwrap_or(0),
                },
            );
        }
    }
    out
}

/// Program names by id, from `bpftool prog show` (none without bpftool).
fn prog_names() -> BTreeMap<u32, String> {
    let Ok(out) = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
    else {
        return BTreeMap::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return BTreeMap::new();
    };
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                u32::try_from(p["id"].as_u64()?).ok()?,
                p["name"].as_str().unwrap_or("?").to_owned(),
            ))
        })
        .collect()
}

pub use crate::setup::output;

/// The numbers a workload printed on its last line.
pub fn numbers(text: &str) -> Vec<f64> {
    text.lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_summary_is_read_from_its_log_line() {
        let line = "2026-11-25T18:58:20.032374Z  INFO tracer::agent: tracer stopped drained_at_exit=2 events_written=16 kernel_records=23 kernel_lost=0";
        let kv = key_values(line);
        assert_eq!(kv["events_written"], 16.0);
        assert_eq!(kv["kernel_lost"], 0.0);
        assert_eq!(kv.len(), 4);
    }

    #[test]
    fn a_workload_prints_its_numbers_last() {
        assert_eq!(
            numbers("warming up\n5000000 599031922\n"),
            [5e6, 599031922.0]
        );
        assert!(numbers("").is_empty());
    }
}
