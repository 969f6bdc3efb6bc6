//! The agent runs with exactly the capabilities the DaemonSet grants it
//! (`manifests/daemonset.yaml`): as root whose bounding set holds those and no others,
//! as in the pod, it traces execs and runs a policy with `Sigkill`.

use std::{path::Path, process::Command};

use integration::{Agent, exit_of, privileged, run};

/// The capabilities the DaemonSet adds (its `capabilities.add` list).
fn daemonset_capabilities() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/daemonset.yaml");
    let text = std::fs::read_to_string(&path).expect("manifests/daemonset.yaml");
    let mut caps = Vec::new();
    let mut in_add = false;
    for line in text.lines() {
        let t = line.trim();
        if t == "add:" {
            in_add = true;
        } else if in_add && let Some(cap) = t.strip_prefix("- ") {
            caps.push(cap.to_lowercase());
        } else if in_add && !t.starts_with('#') {
            in_add = false;
        }
    }
    assert!(
        caps.len() >= 3,
        "no capabilities.add list in {}",
        path.display()
    );
    caps
}

#[test]
fn runs_with_the_daemonsets_capabilities_only() {
    if !privileged("runs_with_the_daemonsets_capabilities_only") {
        return;
    }
    let caps = daemonset_capabilities();
    let bounding = format!(
        "-all,{}",
        caps.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let work = tempfile::tempdir().expect("temp dir");
    let policy = work.path().join("kill.yaml");
    std::fs::write(
        &policy,
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: kill-marker\nspec:\n  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_getpgid\n    args:\n    - index: 5\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 5\n        operator: Equal\n        values: [\"424411\"]\n      matchActions:\n      - action: Sigkill\n",
    )
    .expect("write the policy");
    let wrapper = [
        "setpriv",
        "--bounding-set",
        bounding.as_str(),
        "--inh-caps",
        "-all",
        "--",
    ];
    // The DaemonSet's probes are served on the metrics port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let metrics = format!("127.0.0.1:{port}");
    let agent = Agent::start_under(
        &wrapper,
        &[
            "--tracing-policy",
            policy.to_str().expect("utf-8"),
            "--metrics-server",
            &metrics,
        ],
        &[],
    );
    let pid = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).expect("status");
    let bnd = pid
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    agent.wait_for_log("policy kill-marker loaded");
    // A process whose getpgid the policy kills; its exit says SIGKILL.
    let (victim, _) = run(Command::new("python3")
        .arg("-c")
        .arg("import os\ntry: os.getpgid(424411)\nexcept OSError: pass"));
    let events = agent.sync();
    let exit = exit_of(&events, victim).expect("the victim's exit");
    assert_eq!(
        exit["signal"], "SIGKILL",
        "{exit}\nbounding set {bnd}: {caps:?}"
    );
    for path in ["/readyz", "/healthz"] {
        let mut conn = std::net::TcpStream::connect(&metrics).expect("the probes' port");
        std::io::Write::write_all(&mut conn, format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .expect("request");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut conn, &mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.0 200"), "{path}: {answer}");
    }
    println!("the agent ran with bounding set {bnd}: {caps:?}");
}
