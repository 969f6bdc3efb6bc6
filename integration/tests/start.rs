//! A start that cannot do what was asked fails, saying why, rather than running without
//! it: flags with values that would silence or misname the agent, and named policies
//! that do not load.

use std::{path::Path, process::Command};

use integration::{
    Agent,
    metrics::{free_port, get},
    privileged,
};

const POLICY: &str = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: NAME
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_getppid
";

fn write(dir: &Path, file: &str, text: &str) -> String {
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write the policy");
    path.to_str().expect("utf-8").to_owned()
}

/// `tracer run ARGS` to its end (leaving nothing pinned): (exit code, stderr).
fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(integration::tracer_bin())
        .args(["run", "--no-pin"])
        .args(args)
        .output()
        .expect("run the agent");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `--tracing-policy` file that is missing, does not parse, or whose policy the agent
/// refuses fails the start: non-zero exit, the file and the reason named, never ready.
/// With `--tracing-policy-optional` the agent starts, with a warning.
#[test]
fn a_named_policy_that_does_not_load_fails_the_start() {
    if !privileged("a_named_policy_that_does_not_load_fails_the_start") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let good = write(dir.path(), "good.yaml", &POLICY.replace("NAME", "good"));
    let missing = dir.path().join("missing.yaml");
    let missing = missing.to_str().expect("utf-8");
    let broken = write(
        dir.path(),
        "broken.yaml",
        &POLICY
            .replace("NAME", "broken")
            .replace("tracepoints", "tracepointz"),
    );
    // The same tracepoint twice: valid alone, refused when compiled.
    let twice = write(
        dir.path(),
        "twice.yaml",
        &format!(
            "{}  - subsystem: syscalls\n    event: sys_enter_getppid\n",
            POLICY.replace("NAME", "twice")
        ),
    );
    let ready = dir.path().join("ready");
    for (file, why) in [
        (missing, "cannot read the file"),
        (broken.as_str(), "tracepointz"),
        (twice.as_str(), "is traced twice in this policy"),
    ] {
        let port = free_port().to_string();
        let metrics = format!("127.0.0.1:{port}");
        let (code, stderr) = run_to_end(&[
            "--tracing-policy",
            &good,
            "--tracing-policy",
            file,
            "--metrics-server",
            &metrics,
            "--ready-file",
            ready.to_str().expect("utf-8"),
        ]);
        assert_eq!(code, Some(1), "{file}: {stderr}");
        let said = format!("tracer: --tracing-policy {file}: not loaded: ");
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&said))
            .unwrap_or_else(|| panic!("{file}: no `{said}` in:\n{stderr}"));
        assert!(line.contains(why), "{file}: {line}");
        assert!(
            stderr.contains("fix: correct the file, or pass --tracing-policy-optional"),
            "{stderr}"
        );
        assert!(!stderr.contains("tracer ready"), "{file}: {stderr}");
        assert!(!ready.exists(), "{file}: the ready file was written");
    }

    // Optional: the agent starts with the good policy, and says what it left out.
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let agent = Agent::start(&[
        "--tracing-policy",
        &good,
        "--tracing-policy",
        missing,
        "--tracing-policy-optional",
        "--metrics-server",
        &metrics,
    ]);
    let log = agent.wait_for_log("policy good loaded from");
    assert!(
        log.contains(&format!(
            "--tracing-policy {missing}: not loaded: {missing}:0:0: cannot read the file"
        )) && log.contains("starting without it (--tracing-policy-optional)"),
        "{log}"
    );
    assert_eq!(get(port, "/readyz").0, 200);
    let (status, _, _) = agent.stop();
    assert!(status.success());
}

/// The ready file is the agent's: one left by a killed agent is removed at start, the
/// new one names the agent's pid, and `tracer ready` fails once that process is gone
/// (SIGKILL leaves the file behind).
#[test]
fn a_ready_file_left_by_a_killed_agent_is_not_ready() {
    if !privileged("a_ready_file_left_by_a_killed_agent_is_not_ready") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let ready = dir.path().join("ready");
    let file = ready.to_str().expect("utf-8");
    let check = || {
        let out = Command::new(integration::tracer_bin())
            .args(["ready", "--file", file])
            .output()
            .expect("run tracer ready");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // What an agent killed before this one left.
    std::fs::write(&ready, "ready\n").expect("write a stale ready file");
    assert!(!check().0, "a stale file without a pid passed");
    let agent = Agent::start(&["--ready-file", file]);
    assert_eq!(
        std::fs::read_to_string(&ready).expect("the ready file"),
        format!("ready pid={}\n", agent.pid())
    );
    assert_eq!(check(), (true, String::new()));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the agent");
    // Reaped: the pid names no process now.
    let (status, _, _) = agent.stop();
    assert!(!status.success());
    assert!(ready.exists(), "SIGKILL leaves the file");
    let (ok, stderr) = check();
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{file} names pid ")) && stderr.contains("which is not running"),
        "{stderr}"
    );
}

/// A `Sigkill` policy whose selectors match the agent's own binary, on a call the agent
/// makes (`accept4`, for each connection to its metrics server), does not kill it: the
/// agent is exempt, and says so at start.
#[test]
fn a_policy_cannot_kill_the_agent() {
    if !privileged("a_policy_cannot_kill_the_agent") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = std::fs::canonicalize(integration::tracer_bin()).expect("the agent's path");
    let policy = write(
        dir.path(),
        "kill-the-agent.yaml",
        &format!(
            "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: kill-the-agent
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_accept4
    selectors:
    - matchBinaries:
      - operator: In
        values: [\"{}\"]
      matchActions:
      - action: Sigkill
",
            bin.display()
        ),
    );
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let agent = Agent::start(&["--tracing-policy", &policy, "--metrics-server", &metrics]);
    let log = agent.wait_for_log("policy kill-the-agent loaded from");
    assert!(
        log.contains(&format!(
            "policies: the agent (pid {}) is exempt from their Sigkill, Signal and NotifyEnforcer actions",
            agent.pid()
        )),
        "{log}"
    );
    // Each request is an accept4 by the agent, which the policy matches.
    for _ in 0..3 {
        assert_eq!(get(port, "/healthz").0, 200);
    }
    let (status, _, stderr) = agent.stop();
    assert!(
        status.success(),
        "the agent did not stop by itself: {status:?}\n{stderr}"
    );
}
