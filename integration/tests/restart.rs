//! Restarts and upgrades with the kernel side pinned: an agent stopped in the middle of
//! an exec storm and a new one started at once on the same export file (as a rolling
//! update does) lose nothing and number on; a killed agent's numbers are never given
//! again and the next agent says so; a ring buffer of another size is read before the
//! new one; one agent per pinned set; `tracer cleanup`; `seq` from the export file where
//! the kernel kept none.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use integration::{Agent, privileged, tracer_bin};
use serde_json::Value;

/// A pinned set and a state directory of the test's own, removed at the end.
struct Pinned {
    dir: PathBuf,
    state: PathBuf,
    export: PathBuf,
}

impl Pinned {
    fn new(test: &str) -> Self {
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/tracer-test-{test}-{}",
            std::process::id()
        ));
        let tmp =
            std::env::temp_dir().join(format!("tracer-restart-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("temp dir");
        Self {
            dir,
            state: tmp.join("state"),
            export: tmp.join("events.json"),
        }
    }

    /// The agent's flags: pinned here, exporting to the file.
    fn args(&self) -> Vec<String> {
        vec![
            format!("--pin-dir={}", self.dir.display()),
            format!("--state-dir={}", self.state.display()),
            format!("--export-filename={}", self.export.display()),
        ]
    }

    fn start(&self, extra: &[&str]) -> Agent {
        self.start_with_env(extra, &[])
    }

    fn start_with_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut args = self.args();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Agent::start_with_env(&args, env)
    }

    /// `tracer cleanup` of the set.
    fn cleanup(&self) -> std::process::Output {
        Command::new(tracer_bin())
            .args(["cleanup", "--pin-dir"])
            .arg(&self.dir)
            .output()
            .expect("run cleanup")
    }

    /// Every line of the export file, parsed.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.export)
            .expect("read the export file")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = self.cleanup();
        if let Some(tmp) = self.export.parent() {
            let _ = std::fs::remove_dir_all(tmp);
        }
    }
}

/// Stops `agent` with SIGTERM (as the kubelet does) and returns its log.
fn terminate(agent: Agent) -> String {
    let (status, _, stderr) = agent.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "{status}: {stderr}");
    stderr
}

/// `n` short processes `/bin/true TAG-i`, one after the other, in the background.
fn exec_storm(tag: &str, n: usize) -> Child {
    Command::new("bash")
        .args([
            "-c",
            "for ((i = 1; i <= $1; i++)); do /bin/true \"$0-$i\"; done",
        ])
        .arg(tag)
        .arg(n.to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("start the exec loop")
}

fn seq(v: &Value) -> u64 {
    v["seq"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no seq: {v}"))
}

/// The `process_exec` and `process_exit` lines of processes whose arguments start with
/// `tag-`, by (kind, arguments).
fn by_arguments<'a>(lines: &'a [Value], tag: &str) -> HashMap<(String, String), Vec<&'a Value>> {
    let mut out: HashMap<(String, String), Vec<&Value>> = HashMap::new();
    for v in lines {
        for kind in ["process_exec", "process_exit"] {
            let Some(args) = v[kind]["process"]["arguments"].as_str() else {
                continue;
            };
            if args.starts_with(&format!("{tag}-")) {
                out.entry((kind.to_owned(), args.to_owned()))
                    .or_default()
                    .push(v);
            }
        }
    }
    out
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restart_in_an_exec_storm_loses_nothing_and_seq_goes_on() {
    if !privileged("a_restart_in_an_exec_storm_loses_nothing_and_seq_goes_on") {
        return;
    }
    let pinned = Pinned::new("storm");
    let tag = format!("restart-storm-{}", std::process::id());
    // Room for the records of the restart's gap (the debug agent CI runs takes seconds
    // to start): a ring buffer that fills is a loss, reported, which this test is not
    // about.
    let ring = "--ring-buffer-size=33554432";
    let first = pinned.start(&[ring]);
    // A process that runs across the restart: its exit is written by the second agent
    // with what the first knew of it.
    let mut sleeper = Command::new("sleep")
        .arg("3600")
        .spawn()
        .expect("start sleep");
    let mut storm = exec_storm(&tag, 3000);
    wait_for("some of the storm in the file", || {
        std::fs::read_to_string(&pinned.export).is_ok_and(|t| t.contains(&format!("{tag}-100\"")))
    });
    // Out within the DaemonSet's grace period, with what it read written.
    let stopping = std::time::Instant::now();
    let first_log = terminate(first);
    let grace = Duration::from_secs(30);
    println!(
        "stopped {:.2?} after SIGTERM in the storm",
        stopping.elapsed()
    );
    assert!(stopping.elapsed() < grace, "{first_log}");
    assert!(
        first_log.contains("processes saved for the next agent"),
        "{first_log}"
    );
    let second = pinned.start(&[ring]);
    let took = second.wait_for_log("took over the hooks pinned at");
    assert!(storm.wait().expect("exec loop").success());
    sleeper.kill().expect("kill sleep");
    sleeper.wait().expect("wait sleep");
    // A marker after everything: its exit written means the rest is too.
    let marker = format!("{tag}-marker");
    assert!(
        Command::new("/bin/true")
            .arg(&marker)
            .status()
            .expect("marker")
            .success()
    );
    wait_for("the marker's exit", || {
        std::fs::read_to_string(&pinned.export).is_ok_and(|t| {
            t.lines()
                .any(|l| l.contains("process_exit") && l.contains(&format!("\"{marker}\"")))
        })
    });
    let second_log = terminate(second);

    let lines = pinned.lines();
    let seqs: Vec<u64> = lines.iter().map(seq).collect();
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "seq goes on by one across the restart"
        );
    }
    assert_eq!(seqs.first(), Some(&1));
    let losses: Vec<&Value> = lines
        .iter()
        .filter(|v| v.get("event_loss").is_some())
        .collect();
    assert!(
        losses.is_empty(),
        "nothing lost: {losses:#?}\n{took}\n{second_log}"
    );
    let seen = by_arguments(&lines, &tag);
    for i in 1..=3000 {
        for kind in ["process_exec", "process_exit"] {
            let key = (kind.to_owned(), format!("{tag}-{i}"));
            let n = seen.get(&key).map_or(0, Vec::len);
            assert_eq!(n, 1, "{kind} of {tag}-{i} is written once, not {n} times");
        }
    }
    // The first agent wrote some of the storm, the second the rest.
    let switch = lines
        .iter()
        .position(|v| v["process_exec"]["process"]["arguments"] == "3600")
        .expect("the sleep's exec");
    let exec = &lines[switch]["process_exec"]["process"];
    let exit = lines
        .iter()
        .find(|v| v["process_exit"]["process"]["pid"] == exec["pid"])
        .expect("the sleep's exit");
    let exit = &exit["process_exit"]["process"];
    assert_eq!(
        exit["exec_id"], exec["exec_id"],
        "one process, one exec_id: {exit}"
    );
    assert_eq!(exit["arguments"], "3600");
    assert_eq!(exit["binary"], exec["binary"]);
    assert_eq!(exit["parent_exec_id"], exec["parent_exec_id"]);
}

#[test]
fn a_killed_agent_never_has_its_numbers_given_again_and_the_next_says_so() {
    if !privileged("a_killed_agent_never_has_its_numbers_given_again_and_the_next_says_so") {
        return;
    }
    let pinned = Pinned::new("killed");
    let tag = format!("restart-killed-{}", std::process::id());
    let first = pinned.start(&[]);
    let mut storm = exec_storm(&tag, 300);
    assert!(storm.wait().expect("exec loop").success());
    wait_for("the storm in the file", || {
        std::fs::read_to_string(&pinned.export).is_ok_and(|t| t.contains(&format!("{tag}-300\"")))
    });
    let pid = first.pid();
    drop(first); // SIGKILL
    let before = pinned.lines();
    let last = before.last().map(seq).expect("lines before the kill");
    let second = pinned.start(&[]);
    second.wait_for_log("restart:");
    let log = terminate(second);
    let lines = pinned.lines();
    let after = &lines[before.len()..];
    assert!(!after.is_empty());
    assert!(seq(&after[0]) > last, "{} after {last}", seq(&after[0]));
    for pair in lines.windows(2) {
        assert!(seq(&pair[1]) > seq(&pair[0]), "strictly increasing");
    }
    let loss = after
        .iter()
        .find(|v| v["event_loss"]["where"] == "restart")
        .unwrap_or_else(|| panic!("a restart event_loss: {after:#?}\n{log}"));
    let reason = loss["event_loss"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("(pid {pid}) did not stop cleanly")),
        "{reason}"
    );
}

#[test]
fn a_ring_buffer_of_another_size_is_replaced_and_read_first() {
    if !privileged("a_ring_buffer_of_another_size_is_replaced_and_read_first") {
        return;
    }
    let pinned = Pinned::new("resize");
    let tag = format!("restart-resize-{}", std::process::id());
    let first = pinned.start(&["--ring-buffer-size=4194304"]);
    terminate(first);
    // While no agent runs: only the pinned hooks record these.
    let mut storm = exec_storm(&tag, 200);
    assert!(storm.wait().expect("exec loop").success());
    let second = pinned.start(&["--ring-buffer-size=8388608"]);
    let log = second.wait_for_log("read the ");
    assert!(
        log.contains("its ring buffer is 4096 KiB, this agent's (--ring-buffer-size) 8192 KiB"),
        "{log}"
    );
    let log = terminate(second);
    let lines = pinned.lines();
    let seen = by_arguments(&lines, &tag);
    for i in 1..=200 {
        for kind in ["process_exec", "process_exit"] {
            let key = (kind.to_owned(), format!("{tag}-{i}"));
            let found = seen.get(&key).cloned().unwrap_or_default();
            assert_eq!(
                found.len(),
                1,
                "{kind} of {tag}-{i}: {found:#?}\nthe second agent's log:\n{log}"
            );
        }
    }
    assert!(lines.iter().all(|v| v.get("event_loss").is_none()));
}

#[test]
fn one_agent_per_pinned_set_and_cleanup_removes_it() {
    if !privileged("one_agent_per_pinned_set_and_cleanup_removes_it") {
        return;
    }
    let pinned = Pinned::new("single");
    let first = pinned.start(&[]);
    // A second agent on the same set waits for the first, then gives up naming it.
    let mut args = pinned.args();
    args.push("--pin-wait-secs=1".into());
    let out = Command::new(tracer_bin())
        .args(["run", "--node-name", "test-node"])
        .args(&args)
        .output()
        .expect("run a second agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("is held by another agent (pid {})", first.pid())),
        "{stderr}"
    );
    // Cleanup is refused while the agent runs, and removes the set once it stops.
    let refused = pinned.cleanup();
    assert!(!refused.status.success());
    terminate(first);
    assert!(pinned.dir.join("links").read_dir().expect("links").count() >= 3);
    let done = pinned.cleanup();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stderr).contains("its hooks are detached"));
    assert!(!Path::new(&pinned.dir).exists());
}

/// Where the kernel kept no number (after `tracer cleanup` or a reboot, and with
/// `--no-pin`), `seq` goes on from the export file's last line: one more than it, and
/// strictly increasing through the file.
#[test]
fn seq_goes_on_from_the_export_file_when_the_kernel_kept_none() {
    if !privileged("seq_goes_on_from_the_export_file_when_the_kernel_kept_none") {
        return;
    }
    let pinned = Pinned::new("fromfile");
    let cleanup = || {
        let out = pinned.cleanup();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // An exit written to the file: the agent has numbered lines.
    let written = |marker: &str| {
        let st = Command::new("/bin/true").arg(marker).status().expect("run");
        assert!(st.success());
        let needle = format!("\"arguments\":\"{marker}\"");
        wait_for("the marker's exit in the file", || {
            std::fs::read_to_string(&pinned.export).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.starts_with("{\"process_exit\"") && l.contains(&needle))
            })
        });
    };
    let tag = format!("restart-fromfile-{}", std::process::id());
    let first = pinned.start(&[]);
    written(&format!("{tag}-1"));
    terminate(first);
    cleanup();
    let mut last = pinned
        .lines()
        .last()
        .map(seq)
        .expect("the first agent's lines");
    // A new pinned set (as after a reboot), then an agent without one.
    let no_pin = [
        "--no-pin".to_owned(),
        format!("--state-dir={}", pinned.state.display()),
        format!("--export-filename={}", pinned.export.display()),
    ];
    for (i, args) in [pinned.args(), no_pin.to_vec()].into_iter().enumerate() {
        let before = pinned.lines().len();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let agent = Agent::start(&args);
        written(&format!("{tag}-{}", i + 2));
        let log = terminate(agent);
        assert!(
            log.contains(&format!("its last line is seq {last}; numbering goes on")),
            "{log}"
        );
        let lines = pinned.lines();
        let after = &lines[before..];
        assert_eq!(seq(&after[0]), last + 1, "{args:?}: {:#?}", after[0]);
        last = seq(lines.last().expect("lines"));
        for pair in lines.windows(2) {
            assert!(seq(&pair[1]) > seq(&pair[0]), "strictly increasing");
        }
    }
    cleanup();
}

/// getpgid(`GETPGID`) calls are posted by the policy `restart-posts`; getsid(`GETSID`)
/// calls are killed by `restart-kills`; and the tracer's binary is killed where it opens
/// a perf event (`restart-kills-tracer`, appended with the binary's path: the agent
/// attaches its policies' tracepoints through perf events).
const GETPGID: i32 = 1_999_001;
const GETSID: i32 = 1_999_002;

const POLICIES: &str = r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: restart-posts
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_getpgid
    args:
    - index: 5
      type: int
    selectors:
    - matchArgs:
      - index: 5
        operator: Equal
        values: ["1999001"]
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: restart-kills
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_getsid
    args:
    - index: 5
      type: int
    selectors:
    - matchArgs:
      - index: 5
        operator: Equal
        values: ["1999002"]
      matchActions:
      - action: Sigkill
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: restart-kills-tracer
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_perf_event_open
    selectors:
    - matchBinaries:
      - operator: In
        values: ["TRACER"]
      matchActions:
      - action: Sigkill
"#;

/// A thread that calls getpgid(`pid`) about 500 times a second until the flag is set;
/// it returns how many calls it made.
fn getpgid_caller(
    pid: i32,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<u64>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let caller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut calls = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: getpgid of a pid that does not exist: fails, touches nothing.
                unsafe { libc::getpgid(pid) };
                calls += 1;
                // What a gap of a few seconds posts fits in the ring buffer.
                std::thread::sleep(Duration::from_millis(2));
            }
            calls
        })
    };
    (stop, caller)
}

/// [`POLICIES`] in a file of the test's, as the agent's flag.
fn write_policies(pinned: &Pinned) -> String {
    let policy = pinned.export.with_file_name("policies.yaml");
    let tracer = integration::real(&tracer_bin().to_string_lossy());
    std::fs::write(&policy, POLICIES.replace("TRACER", &tracer)).expect("write the policies");
    format!("--tracing-policy={}", policy.display())
}

/// The `process_tracepoint` events of policy `name`.
fn hits_of<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    integration::of_kind(lines, "process_tracepoint")
        .into_iter()
        .filter(|e| e["policy_name"] == name)
        .collect()
}

fn assert_killed(status: nix::sys::wait::WaitStatus) {
    assert!(
        matches!(
            status,
            nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
        ),
        "killed by the policy while no agent runs: {status:?}"
    );
}

/// A child that calls getsid(`GETSID`); how it ended.
fn getsid_child() -> nix::sys::wait::WaitStatus {
    // SAFETY: the child calls only async-signal-safe functions (getsid, _exit) before it
    // ends.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            // SAFETY: plain system calls.
            unsafe {
                libc::getsid(GETSID);
                libc::_exit(0)
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            nix::sys::wait::waitpid(child, None).expect("waitpid")
        }
    }
}

#[test]
fn policies_run_on_across_a_restart_each_call_reported_once() {
    if !privileged("policies_run_on_across_a_restart_each_call_reported_once") {
        return;
    }
    let pinned = Pinned::new("policies");
    let policy_arg = write_policies(&pinned);
    let first = pinned.start(&[&policy_arg]);
    // Calls all through the restart, counted.
    let (stop, caller) = getpgid_caller(GETPGID);
    std::thread::sleep(Duration::from_millis(300));
    let first_log = terminate(first);
    assert!(first_log.contains("3 policies left running"), "{first_log}");
    // No agent runs: the pinned policies still act.
    assert_killed(getsid_child());
    std::thread::sleep(Duration::from_millis(300));
    // It opens perf events while the old policies run: they spare it, as their own agent.
    let second = pinned.start(&[&policy_arg]);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = caller.join().expect("the calling thread");
    let second_pid = second.pid();
    let second_log = terminate(second);
    assert!(
        second_log.contains("the previous agent's 3 policies (3 hooks) run on"),
        "{second_log}"
    );
    assert!(
        second_log.contains("took over the hooks pinned"),
        "{second_log}"
    );
    let lines = pinned.lines();
    let posted = integration::getpgid::hits(&lines, "restart-posts", GETPGID.into());
    assert_eq!(
        posted, calls as usize,
        "each of the {calls} calls once, across the restart\n{second_log}"
    );
    let kills = hits_of(&lines, "restart-kills");
    assert_eq!(
        kills.len(),
        1,
        "the kill in the gap is reported: {kills:#?}"
    );
    assert_eq!(kills[0]["action"], "KPROBE_ACTION_SIGKILL");
    // The old policy matched the starting agent, and spared it.
    let spared = hits_of(&lines, "restart-kills-tracer")
        .into_iter()
        .filter(|e| e["process"]["pid"] == second_pid)
        .count();
    assert!(
        spared > 0,
        "the starting agent's perf events, matched\n{second_log}"
    );
    for pair in lines.windows(2) {
        assert!(seq(&pair[1]) > seq(&pair[0]), "strictly increasing");
    }
}

#[test]
fn policy_objects_run_on_across_a_restart_each_call_reported_once() {
    if !privileged("policy_objects_run_on_across_a_restart_each_call_reported_once") {
        return;
    }
    const PID: i32 = 1_999_003;
    let pinned = Pinned::new("objects");
    let server = integration::apiserver::ApiServer::start();
    server.apply(integration::getpgid::policy("restart-object", PID.into()));
    let kubeconfig = server.kubeconfig(pinned.export.parent().expect("the test's directory"));
    let env = [("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))];
    let first = pinned.start_with_env(&[], &env);
    first.wait_for_log("policy restart-object loaded from tracingpolicy/restart-object");
    let (stop, caller) = getpgid_caller(PID);
    std::thread::sleep(Duration::from_millis(300));
    let first_log = terminate(first);
    assert!(first_log.contains("1 policies left running"), "{first_log}");
    std::thread::sleep(Duration::from_millis(300));
    let second = pinned.start_with_env(&[], &env);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = caller.join().expect("the calling thread");
    let second_log = terminate(second);
    // Loaded from the API server's first list before the take-over.
    let loaded = second_log
        .find("policy restart-object loaded from tracingpolicy/restart-object")
        .unwrap_or_else(|| panic!("loaded: {second_log}"));
    let took = second_log
        .find("took over the hooks pinned")
        .unwrap_or_else(|| panic!("took over: {second_log}"));
    assert!(loaded < took, "{second_log}");
    let lines = pinned.lines();
    let posted = integration::getpgid::hits(&lines, "restart-object", PID.into());
    assert_eq!(
        posted, calls as usize,
        "each of the {calls} calls once, across the restart\n{second_log}"
    );
}

#[test]
fn policies_outlive_a_killed_agent() {
    if !privileged("policies_outlive_a_killed_agent") {
        return;
    }
    let pinned = Pinned::new("policies-killed");
    let policy_arg = write_policies(&pinned);
    let first = pinned.start(&[&policy_arg]);
    drop(first); // SIGKILL: nothing runs at its exit.
    // The policies still act, and post, with no agent.
    assert_killed(getsid_child());
    let (stop, caller) = getpgid_caller(GETPGID);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = caller.join().expect("the calling thread");
    let second = pinned.start(&[&policy_arg]);
    let second_log = terminate(second);
    assert!(
        second_log.contains("the previous agent's 3 policies (3 hooks) run on"),
        "{second_log}"
    );
    let lines = pinned.lines();
    assert_eq!(
        integration::getpgid::hits(&lines, "restart-posts", GETPGID.into()),
        calls as usize,
        "each of the {calls} calls made with no agent, once\n{second_log}"
    );
    assert_eq!(
        hits_of(&lines, "restart-kills").len(),
        1,
        "the kill with no agent is reported"
    );
}
