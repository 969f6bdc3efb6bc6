//! The process lifecycle end to end: real processes, the real programs, the JSON that
//! comes out, checked field by field.

use std::{
    fs,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    process::Command,
};

use integration::{Agent, exec_of, exit_of, flags, of_kind, privileged, real, run};
use serde_json::Value;

fn tempdir() -> tempfile::TempDir {
    // A space in the path: paths must come out whole.
    tempfile::Builder::new()
        .prefix("tracer it ")
        .tempdir()
        .expect("temp dir")
}

fn canonical(dir: &tempfile::TempDir) -> String {
    real(dir.path().to_str().expect("utf-8 path"))
}

/// protobuf's JSON mapping of a Timestamp: RFC 3339 in UTC, with 0, 3, 6
/// or 9 fractional digits (as few as the value needs).
fn assert_rfc3339_ns(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    let body = s
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("{s}: not UTC"));
    assert_eq!(&body[4..5], "-", "{s}");
    assert_eq!(&body[10..11], "T", "{s}");
    if let Some((_, frac)) = body.split_once('.') {
        assert!(
            [3, 6, 9].contains(&frac.len()) && frac.bytes().all(|b| b.is_ascii_digit()),
            "{s}: 3, 6 or 9 fractional digits"
        );
        assert!(!frac.ends_with("000"), "{s}: trailing zeros are dropped");
    } else {
        assert_eq!(body.len(), 19, "{s}: whole seconds");
    }
}

#[test]
fn shell_pipeline_from_a_directory() {
    if !privileged("shell_pipeline_from_a_directory") {
        return;
    }
    let agent = Agent::start(&[]);
    let dir = tempdir();
    let cwd = canonical(&dir);
    let script = r#"/bin/echo "a b" "it's" 'say "hi"' | /bin/cat | /usr/bin/wc -c"#;
    let (sh_pid, out) = run(Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path()));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "18");
    let events = agent.sync();

    let sh = exec_of(&events, sh_pid).expect("exec event of the shell");
    let p = &sh["process"];
    assert_eq!(p["binary"], real("/bin/sh"));
    assert_eq!(p["cwd"], cwd);
    assert_eq!(
        p["arguments"],
        r#"-c "/bin/echo \"a b\" \"it's\" 'say \"hi\"' | /bin/cat | /usr/bin/wc -c""#
    );
    assert_eq!(flags(p), ["execve"]);
    assert_eq!(p["pid"], sh_pid);
    assert_eq!(p["tid"], sh_pid);
    assert_eq!(p["uid"], 0);
    assert_eq!(p["process_credentials"]["euid"], 0);
    assert_eq!(p["process_credentials"]["gid"], 0);
    assert!(p["auid"].is_u64(), "auid is a number: {p}");
    assert!(
        p["cgroup_id"]
            .as_str()
            .is_some_and(|c| c.parse::<u64>().is_ok()),
        "cgroup_id is a 64-bit number as a string: {p}"
    );
    assert_rfc3339_ns(&p["start_time"]);
    assert_rfc3339_ns(
        &events
            .iter()
            .find(|e| e.get("process_exec") == Some(sh))
            .unwrap()["time"],
    );
    assert!(p["exec_id"].as_str().is_some_and(|s| !s.is_empty()));

    // Its parent is this test process, found in /proc when the agent started.
    let parent = &sh["parent"];
    assert_eq!(parent["pid"], std::process::id());
    assert_eq!(p["parent_exec_id"], parent["exec_id"]);
    assert!(flags(parent).contains(&"procFS".to_owned()), "{parent}");
    assert_eq!(
        parent["binary"],
        real(std::env::current_exe().unwrap().to_str().unwrap())
    );

    // Each stage of the pipeline: binary resolved through the /bin symlink, its cwd, its
    // argv, the shell as its parent, and an exit with the exec's id.
    for (bin, args) in [
        ("/bin/echo", r#""a b" "it's" "say \"hi\"""#),
        ("/bin/cat", ""),
        ("/usr/bin/wc", "-c"),
    ] {
        let stage = of_kind(&events, "process_exec")
            .into_iter()
            .find(|e| e["process"]["binary"] == real(bin) && e["parent"]["pid"] == sh_pid)
            .unwrap_or_else(|| panic!("exec of {bin} under the shell"));
        let sp = &stage["process"];
        assert_eq!(sp["cwd"], cwd, "{bin}");
        assert_eq!(sp["arguments"].as_str().unwrap_or(""), args, "{bin}");
        assert_eq!(sp["parent_exec_id"], p["exec_id"], "{bin}");
        assert_eq!(stage["parent"]["binary"], real("/bin/sh"));
        let pid = sp["pid"].as_u64().unwrap() as u32;
        let exit = exit_of(&events, pid).unwrap_or_else(|| panic!("exit of {bin}"));
        assert_eq!(exit["process"]["exec_id"], sp["exec_id"]);
        assert!(
            exit.get("status").is_none() && exit.get("signal").is_none(),
            "{exit}"
        );
        assert_rfc3339_ns(&exit["time"]);
    }
    let sh_exit = exit_of(&events, sh_pid).expect("exit of the shell");
    assert_eq!(sh_exit["process"]["exec_id"], p["exec_id"]);
    assert_eq!(sh_exit["parent"]["pid"], std::process::id());

    // Ctrl-C: the agent drains and exits cleanly.
    let (status, _, stderr) = agent.stop();
    assert!(status.success(), "agent exit {status}; stderr:\n{stderr}");
    assert!(stderr.contains("tracer stopped"), "{stderr}");
    assert!(stderr.contains("kernel_lost=0"), "{stderr}");
}

#[test]
fn exec_by_relative_path_and_through_a_symlink() {
    if !privileged("exec_by_relative_path_and_through_a_symlink") {
        return;
    }
    let agent = Agent::start(&[]);
    let dir = tempdir();
    let cwd = canonical(&dir);
    fs::copy("/usr/bin/true", dir.path().join("mytrue")).expect("copy true");
    std::os::unix::fs::symlink(real("/usr/bin/true"), dir.path().join("link")).expect("symlink");

    let (rel_pid, out) = run(Command::new("./mytrue")
        .arg("relative")
        .current_dir(dir.path()));
    assert!(out.status.success());
    let (link_pid, out) = run(Command::new("./link")
        .arg("via link")
        .current_dir(dir.path()));
    assert!(out.status.success());
    let events = agent.sync();

    let e = exec_of(&events, rel_pid).expect("exec of ./mytrue");
    assert_eq!(e["process"]["binary"], format!("{cwd}/mytrue"));
    assert_eq!(e["process"]["arguments"], "relative");
    assert_eq!(e["process"]["cwd"], cwd);
    let e = exec_of(&events, link_pid).expect("exec of ./link");
    assert_eq!(
        e["process"]["binary"],
        real("/usr/bin/true"),
        "the symlink's target"
    );
    assert_eq!(e["process"]["arguments"], "\"via link\"");
}

#[test]
fn script_runs_through_its_interpreter() {
    if !privileged("script_runs_through_its_interpreter") {
        return;
    }
    let agent = Agent::start(&[]);
    let dir = tempdir();
    let cwd = canonical(&dir);
    let path = dir.path().join("script.sh");
    fs::write(&path, "#!/bin/sh\nexit 3\n").expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");

    let (pid, out) = run(Command::new("./script.sh")
        .arg("arg one")
        .current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(3));
    let events = agent.sync();

    let e = exec_of(&events, pid).expect("exec of the script");
    let p = &e["process"];
    assert_eq!(p["binary"], real("/bin/sh"), "the interpreter runs");
    assert_eq!(p["script"], format!("{cwd}/script.sh"));
    assert_eq!(p["arguments"], "./script.sh \"arg one\"");
    assert_eq!(flags(p), ["execve"]);
    let x = exit_of(&events, pid).expect("exit of the script");
    assert_eq!(x["status"], 3);
    assert!(x.get("signal").is_none());
}

#[test]
fn process_killed_by_a_signal() {
    if !privileged("process_killed_by_a_signal") {
        return;
    }
    let agent = Agent::start(&[]);
    let mut child = Command::new("/bin/sleep").arg("30").spawn().expect("sleep");
    let pid = child.id();
    // Kill it only once its exec is out, so that it is a sleep that dies.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while exec_of(&agent.events(), pid).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no exec event for sleep"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let events = agent.sync();
    let x = exit_of(&events, pid).expect("exit of the killed sleep");
    assert_eq!(x["signal"], "SIGKILL");
    assert!(x.get("status").is_none(), "{x}");
    assert_eq!(x["process"]["binary"], real("/bin/sleep"));
    assert_eq!(x["process"]["arguments"], "30");
    assert_eq!(
        x["process"]["exec_id"],
        exec_of(&events, pid).unwrap()["process"]["exec_id"]
    );
}

#[test]
fn failed_exec_emits_no_exec_event() {
    if !privileged("failed_exec_emits_no_exec_event") {
        return;
    }
    let agent = Agent::start(&[]);
    let dir = tempdir();
    let marker = format!("failed-exec-{}", std::process::id());
    let noexec = dir.path().join("not-executable");
    fs::write(&noexec, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&noexec, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(
        Command::new(&noexec).arg(&marker).status().is_err(),
        "EACCES"
    );
    assert!(
        Command::new("/nonexistent/binary")
            .arg(&marker)
            .status()
            .is_err(),
        "ENOENT"
    );
    // A fork whose child then fails to exec: the child exits (127), never execs.
    let err = Command::new("/nonexistent/binary")
        .arg(&marker)
        .process_group(0)
        .spawn();
    assert!(err.is_err());
    let events = agent.sync();
    let execs = of_kind(&events, "process_exec");
    assert!(!execs.is_empty(), "the agent saw the marker's exec");
    for e in execs {
        let args = e["process"]["arguments"].as_str().unwrap_or_default();
        assert!(!args.contains(&marker), "a failed exec made an event: {e}");
    }
}

#[test]
fn argv_longer_than_the_capture_bound_is_flagged() {
    if !privileged("argv_longer_than_the_capture_bound_is_flagged") {
        return;
    }
    let agent = Agent::start(&[]);
    let args: Vec<String> = (0..80)
        .map(|i| format!("{i:03}{}", "x".repeat(97)))
        .collect();
    let (pid, _) = run(Command::new("/bin/true").args(&args));
    let events = agent.sync();
    let e = exec_of(&events, pid).expect("exec with a long argv");
    let p = &e["process"];
    assert!(flags(p).contains(&"truncArgs".to_owned()), "{p}");
    let captured = p["arguments"].as_str().unwrap();
    // 4096 bytes of argv: "/bin/true\0" then whole 101-byte arguments, then a partial one.
    let whole = (4096 - "/bin/true\0".len()) / 101;
    assert!(captured.starts_with(&args[..whole].join(" ")), "{captured}");
    assert!(
        !captured.contains(&args[whole + 1]),
        "nothing past the bound"
    );
    assert_eq!(
        captured.len(),
        4096 - "/bin/true\0".len(),
        "exactly the bound, NULs as spaces"
    );

    // An argv within the bound is not flagged.
    let (pid, _) = run(Command::new("/bin/true").arg("short"));
    let events = agent.sync();
    assert_eq!(
        flags(&exec_of(&events, pid).unwrap()["process"]),
        ["execve"]
    );
}

#[test]
fn burst_of_2000_short_processes() {
    if !privileged("burst_of_2000_short_processes") {
        return;
    }
    const N: usize = 2000;
    let agent = Agent::start(&[]);
    let marker = format!("burst-{}", std::process::id());
    let script = format!("i=0; while [ $i -lt {N} ]; do /bin/true {marker}; i=$((i+1)); done");
    let (sh_pid, out) = run(Command::new("/bin/sh").arg("-c").arg(&script));
    assert!(out.status.success());
    let events = agent.sync();

    let execs: Vec<&Value> = of_kind(&events, "process_exec")
        .into_iter()
        .filter(|e| e["process"]["arguments"] == marker.as_str())
        .collect();
    let exits: Vec<&Value> = of_kind(&events, "process_exit")
        .into_iter()
        .filter(|e| e["process"]["arguments"] == marker.as_str())
        .collect();
    let lost = |kind: &str| -> u64 {
        of_kind(&events, "event_loss")
            .iter()
            .filter_map(|l| l["lost"][kind].as_str()?.parse::<u64>().ok())
            .sum()
    };
    println!(
        "burst: {} execs, {} exits of {N}; lost in the kernel: {} execs, {} exits",
        execs.len(),
        exits.len(),
        lost("exec"),
        lost("exit")
    );
    assert!(
        (N - execs.len()) as u64 <= lost("exec"),
        "{} execs missing but only {} reported lost",
        N - execs.len(),
        lost("exec")
    );
    assert!(
        (N - exits.len()) as u64 <= lost("exit"),
        "{} exits missing but only {} reported lost",
        N - exits.len(),
        lost("exit")
    );
    for e in &execs {
        assert_eq!(e["process"]["binary"], real("/bin/true"));
        assert_eq!(e["parent"]["pid"], sh_pid);
    }
    // Every exec id is unique, and each exit carries its exec's id.
    let ids: std::collections::HashSet<&str> = execs
        .iter()
        .map(|e| e["process"]["exec_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), execs.len());
    for x in &exits {
        let id = x["process"]["exec_id"].as_str().unwrap();
        assert!(
            ids.contains(id) || lost("exec") > 0,
            "exit without its exec: {x}"
        );
    }
}

#[test]
fn unprivileged_user_is_told_which_capability_is_missing() {
    if !privileged("unprivileged_user_is_told_which_capability_is_missing") {
        return;
    }
    let bin = std::env::var("TRACER_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/tracer").to_owned()
    });
    let out = Command::new(bin)
        .arg("run")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run the agent as nobody");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs CAP_BPF and CAP_PERFMON") && stderr.contains("no CAP_BPF"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn records_the_ring_buffer_cannot_take_are_counted_and_reported() {
    if !privileged("records_the_ring_buffer_cannot_take_are_counted_and_reported") {
        return;
    }
    // A ring buffer of two exec records, and an agent that does not read while 50
    // processes start: most of them cannot be handed over.
    let port = integration::metrics::free_port();
    let agent = Agent::start(&[
        "--ring-buffer-size",
        "16384",
        "--loss-report-interval-ms",
        "50",
        "--metrics-server",
        &format!("127.0.0.1:{port}"),
    ]);
    let pid = nix::unistd::Pid::from_raw(agent.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let marker = format!("overflow-{}", std::process::id());
    let st = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("for i in $(seq 50); do /bin/true {marker}; done"))
        .status()
        .unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(st.success());
    let events = agent.sync();
    let seen = of_kind(&events, "process_exec")
        .into_iter()
        .filter(|e| e["process"]["arguments"] == marker.as_str())
        .count();
    let losses = of_kind(&events, "event_loss");
    let lost_execs: u64 = losses
        .iter()
        .filter_map(|l| l["lost"]["exec"].as_str()?.parse::<u64>().ok())
        .sum();
    println!("overflow: {seen} of 50 execs seen, {lost_execs} reported lost");
    assert!(seen < 50, "the small ring buffer dropped some");
    assert!(
        (50 - seen) as u64 <= lost_execs,
        "{} missing, {lost_execs} reported",
        50 - seen
    );
    let last = losses.last().unwrap();
    let total: u64 = last["total_lost"].as_str().unwrap().parse().unwrap();
    assert!(total >= lost_execs);
    assert_eq!(last["where"], "ring_buffer");
    // The stream and the metrics say the same loss. The tiny ring buffer goes on losing
    // other processes' records meanwhile: the metrics, read later, may count more, and
    // the report at exit says at least as much as they did.
    let m = integration::metrics::scrape(port);
    let scraped = integration::metrics::sum(&m, "tracer_kernel_events_lost_total", None) as u64;
    assert!(scraped >= total, "{scraped} < {total}: {m:#?}");
    let (status, events, stderr) = agent.stop();
    assert!(status.success());
    let at_exit: u64 = of_kind(&events, "event_loss")
        .last()
        .and_then(|l| l["total_lost"].as_str()?.parse().ok())
        .unwrap();
    assert!(at_exit >= scraped, "{at_exit} < {scraped}");
    assert!(
        stderr.contains("events were lost in the kernel"),
        "{stderr}"
    );
}

#[test]
fn a_hook_the_kernel_refuses_is_named_and_the_rest_run() {
    if !privileged("a_hook_the_kernel_refuses_is_named_and_the_rest_run") {
        return;
    }
    // The kernel has no tracepoint of that name: attaching the fork hook fails for real.
    let agent = Agent::start(&["--attach-override", "sched_process_fork=no_such_tracepoint"]);
    let stderr = agent.stderr();
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("is not running"))
        .collect();
    assert_eq!(refused.len(), 1, "one line for the one hook:\n{stderr}");
    assert!(
        refused[0].contains("hook sched/sched_process_fork is not running")
            && refused[0].contains("no_such_tracepoint"),
        "{}",
        refused[0]
    );
    assert!(stderr.contains("hooks=2"), "{stderr}");
    // Execs and exits still come out.
    let (pid, _) = run(Command::new("/bin/true").arg("still-traced"));
    let events = agent.sync();
    assert_eq!(
        exec_of(&events, pid).unwrap()["process"]["arguments"],
        "still-traced"
    );
    assert!(exit_of(&events, pid).is_some());
    let (status, _, _) = agent.stop();
    assert!(status.success());
}

/// `--export-filename`: the JSON lines go to the file, appended, and not to stdout.
#[test]
fn events_appended_to_a_file() {
    if !integration::privileged("events_appended_to_a_file") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let file = work.path().join("events.log");
    std::fs::write(&file, "{\"earlier\":true}\n").expect("an earlier line");
    let agent = integration::Agent::start(&["--export-filename", file.to_str().expect("utf-8")]);
    let marker = format!("to-the-file-{}", std::process::id());
    let (pid, _) = integration::run(std::process::Command::new("/bin/true").arg(&marker));
    let start = std::time::Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&file).expect("the file");
        if text.contains(&marker) && text.contains("process_exit") {
            break text;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let (_, stdout_events, _) = agent.stop();
    assert!(
        stdout_events.is_empty(),
        "nothing on stdout: {stdout_events:?}"
    );
    assert!(text.starts_with("{\"earlier\":true}\n"), "appended");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|e| e["process_exec"]["process"]["pid"] == pid),
        "the exec of {pid}"
    );
    // After the earlier line, every line the agent wrote is numbered 1, 2, 3, ...
    let seqs: Vec<u64> = lines[1..]
        .iter()
        .map(|e| {
            e["seq"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("a seq")
        })
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}
