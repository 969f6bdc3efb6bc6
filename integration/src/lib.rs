//! Harness of the privileged tests: starts the agent binary (`TRACER_BIN`, set by
//! `cargo xtask test`), collects its JSON lines, and ends each test on a marker event
//! rather than a sleep: the ring buffer keeps the order in which things happened, so once
//! the marker process's exit is out, every event of the workload before it is out too.
//!
//! Without root the tests fail, saying why; with `TRACER_SKIP_PRIVILEGED=1` they print
//! `SKIPPED` and the reason instead.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod apiserver;
pub mod container;
pub mod corpus;
pub mod getpgid;
pub mod metrics;
pub mod otlp;
pub mod proto;
pub mod vm;

/// How long the agent may take to load, and a workload's events to arrive.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Whether this test can run; prints why not, or panics when it must not be skipped.
pub fn privileged(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if root {
        return true;
    }
    if std::env::var_os("TRACER_SKIP_PRIVILEGED").is_some() {
        println!(
            "SKIPPED {test}: needs root to load eBPF programs (TRACER_SKIP_PRIVILEGED is set)"
        );
        return false;
    }
    panic!(
        "{test} needs root to load eBPF programs: run `sudo -E cargo xtask test`, \
         or set TRACER_SKIP_PRIVILEGED=1 to skip it"
    );
}

/// The agent binary under test (`TRACER_BIN`, set by `cargo xtask test`).
pub fn tracer_bin() -> PathBuf {
    let bin = std::env::var_os("TRACER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/tracer")
        });
    assert!(
        bin.is_file(),
        "the agent binary {} is missing: run the tests with `cargo xtask test`",
        bin.display()
    );
    bin
}

/// A running agent and everything it has written.
pub struct Agent {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

/// Marker processes run so far by this test process (`Agent::sync`).
static MARKERS: AtomicU64 = AtomicU64::new(0);

impl Agent {
    /// Starts `tracer run` with `args` and waits until it says it is ready.
    pub fn start(args: &[&str]) -> Agent {
        Self::start_with_env(args, &[])
    }

    /// `start`, with environment variables (`KUBECONFIG`) set for the agent.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Agent {
        Self::start_under(&[], args, env)
    }

    /// `start_with_env`, the agent run by `wrapper` (`setpriv ... --`) when not empty.
    pub fn start_under(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Agent {
        let agent = Self::launch(wrapper, args, env);
        agent.wait_until("the agent to be ready", || {
            agent.stderr().contains("tracer ready")
        });
        agent
    }

    fn launch(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(tracer_bin());
                c
            }
            None => Command::new(tracer_bin()),
        };
        // Agents of one test file run side by side, each on its own: a test that restarts
        // one pins it in a directory of its own (`--pin-dir`).
        let pinned = args
            .iter()
            .any(|a| a.starts_with("--pin-dir") || *a == "--no-pin");
        let mut child = cmd
            .arg("run")
            .args(["--node-name", "test-node", "--log-level", "info"])
            .args((!pinned).then_some("--no-pin"))
            .args(args)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the agent");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let ev = events.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("agent wrote a line that is not JSON ({e}): {line}")
                });
                ev.lock().expect("lock").push(v);
            }
        });
        let err = child.stderr.take().expect("stderr");
        let se = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut s = se.lock().expect("lock");
                s.push_str(&line);
                s.push('\n');
            }
        });
        Agent {
            child,
            events,
            stderr,
        }
    }

    /// `start`, returning at once: the agent may still be loading.
    pub fn spawn(args: &[&str]) -> Agent {
        Self::launch(&[], args, &[])
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Waits until the agent's log holds `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_until(&format!("`{needle}` in the agent's log"), || {
            self.stderr().contains(needle)
        });
        self.stderr()
    }

    /// Every event written so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().expect("lock").clone()
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > TIMEOUT {
                panic!(
                    "timed out waiting for {what}; agent stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a marker process and waits for its exit event: every event of what ran before
    /// it has then been written. Returns the events so far. A marker whose own records
    /// were lost (a test that overflows the ring buffer on purpose) is followed by another.
    pub fn sync(&self) -> Vec<Value> {
        let start = Instant::now();
        loop {
            // Unique in this process: every agent sees every test's markers, and the tests
            // of one file run side by side, each with an agent of its own.
            let n = MARKERS.fetch_add(1, Ordering::Relaxed);
            let marker = format!("tracer-sync-{}-{n}", std::process::id());
            let st = Command::new("/bin/true")
                .arg(&marker)
                .status()
                .expect("run marker");
            assert!(st.success());
            let attempt = Instant::now();
            while attempt.elapsed() < Duration::from_secs(5) {
                let seen = self
                    .events
                    .lock()
                    .expect("lock")
                    .iter()
                    .any(|e| e["process_exit"]["process"]["arguments"] == marker.as_str());
                if seen {
                    return self.events();
                }
                thread::sleep(Duration::from_millis(20));
            }
            if start.elapsed() > TIMEOUT {
                panic!(
                    "timed out waiting for the exit event of a marker process; agent stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }

    /// Stops the agent with SIGINT, as Ctrl-C would, and returns its exit status, every
    /// event and its stderr.
    pub fn stop(self) -> (std::process::ExitStatus, Vec<Value>, String) {
        self.stop_with(nix::sys::signal::Signal::SIGINT)
    }

    /// Stops the agent with `signal` (SIGTERM: as the kubelet does); as [`Agent::stop`].
    pub fn stop_with(
        mut self,
        signal: nix::sys::signal::Signal,
    ) -> (std::process::ExitStatus, Vec<Value>, String) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the agent");
        let status = self.child.wait().expect("wait for the agent");
        // Let the reader threads take the last lines.
        thread::sleep(Duration::from_millis(100));
        (status, self.events(), self.stderr())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to its end; returns its pid (to find its events by) and its output.
pub fn run(cmd: &mut Command) -> (u32, std::process::Output) {
    let child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for the workload");
    (pid, out)
}

/// Events of one kind (`process_exec`, `process_exit`, ...).
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter_map(|e| e.get(kind)).collect()
}

/// The `process_exec` of process `pid`.
pub fn exec_of(events: &[Value], pid: u32) -> Option<&Value> {
    of_kind(events, "process_exec")
        .into_iter()
        .find(|e| e["process"]["pid"] == pid)
}

/// The `process_exit` of process `pid`.
pub fn exit_of(events: &[Value], pid: u32) -> Option<&Value> {
    of_kind(events, "process_exit")
        .into_iter()
        .find(|e| e["process"]["pid"] == pid)
}

/// The words of a process object's `flags`.
pub fn flags(process: &Value) -> Vec<String> {
    process["flags"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `path` with every symlink resolved, as the kernel names an exec'd file.
pub fn real(path: &str) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|e| panic!("canonicalize {path}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// `/bin/true` copied into a memfd, and run from it (`/proc/self/fd/N`): a binary with
/// no link on disk. Returns the memfd's inode number.
pub fn run_from_memfd(arg: &str) -> u64 {
    use std::os::fd::AsRawFd as _;
    let fd = nix::sys::memfd::memfd_create(c"tracer-test", nix::sys::memfd::MFdFlags::empty())
        .expect("memfd_create");
    let mut file = std::fs::File::from(fd);
    std::io::copy(
        &mut std::fs::File::open("/bin/true").expect("open /bin/true"),
        &mut file,
    )
    .expect("copy into the memfd");
    let ino = std::os::unix::fs::MetadataExt::ino(&file.metadata().expect("fstat"));
    let st = std::process::Command::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .arg(arg)
        .status()
        .expect("run from the memfd");
    assert!(st.success());
    ino
}
