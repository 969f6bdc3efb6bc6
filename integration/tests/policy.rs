//! Tracing policies in the kernel: for each selector kind and action, a workload that
//! matches and one that does not, asserted on the exported events and on the policy's
//! kernel-side counters (what does not match never reaches the ring buffer). And the
//! policy library in `policies/`, each policy loaded and triggered.

use std::{
    ffi::CString,
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use integration::{Agent, exit_of, of_kind, privileged, run};
use serde_json::Value;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tracer-policy-")
        .tempdir()
        .expect("temp dir")
}

/// A TracingPolicy on `syscalls/sys_enter_openat` with the filename as argument 0.
fn openat_policy(name: &str, selectors: &str, options: &str) -> String {
    format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
{options}  tracepoints:
  - subsystem: syscalls
    event: sys_enter_openat
    message: "an open"
    args:
    - index: 6
      type: string
    - index: 7
      type: int
    selectors:
{selectors}"#
    )
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    fs::write(&p, text).expect("write policy");
    p
}

/// Opens `path` (it may not exist: the syscall is what is traced).
fn open(path: &Path) {
    let _ = fs::File::open(path);
}

/// `process_tracepoint` events of policy `name`.
fn hits<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    of_kind(events, "process_tracepoint")
        .into_iter()
        .filter(|e| e["policy_name"] == name)
        .collect()
}

fn filename(e: &Value) -> &str {
    e["args"][0]["string_arg"].as_str().unwrap_or_default()
}

/// The counters line of policy `name` in the agent's log at stop: (seen, matched, posted).
fn counters(stderr: &str, name: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("policy {name} counters")))
        .unwrap_or_else(|| panic!("no counters of {name} in:\n{stderr}"));
    let get = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    (get("seen"), get("matched"), get("posted"))
}

#[test]
fn string_arguments_equal_prefix_postfix() {
    if !privileged("string_arguments_equal_prefix_postfix") {
        return;
    }
    let work = tempdir();
    let d = work.path().to_str().unwrap().to_owned();
    let selectors = format!(
        r#"    - matchArgs:
      - index: 6
        operator: Equal
        values: ["{d}/exact"]
    - matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/pre-"]
    - matchArgs:
      - index: 6
        operator: Postfix
        values: [".tracer-post"]
"#
    );
    let pol = write(
        work.path(),
        "p.yaml",
        &openat_policy("strings", &selectors, ""),
    );
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    for f in [
        "exact",
        "exactly",
        "pre-1",
        "pr",
        "x.tracer-post",
        "x.tracer-pos",
        "other",
    ] {
        open(&work.path().join(f));
    }
    let events = agent.sync();
    let mut got: Vec<&str> = hits(&events, "strings")
        .iter()
        .map(|e| filename(e))
        .collect();
    got.sort();
    let mut want = [
        format!("{d}/exact"),
        format!("{d}/pre-1"),
        format!("{d}/x.tracer-post"),
    ];
    want.sort();
    assert_eq!(got, want, "exactly the matching opens");
    let e = hits(&events, "strings")[0];
    assert_eq!(e["subsys"], "syscalls");
    assert_eq!(e["event"], "sys_enter_openat");
    assert_eq!(e["action"], "KPROBE_ACTION_POST");
    assert_eq!(e["message"], "an open");
    assert_eq!(e["process"]["pid"], std::process::id());
    assert!(e["args"][1]["int_arg"].is_i64(), "flags as int_arg: {e}");
    let (status, _, stderr) = agent.stop();
    assert!(status.success());
    let (seen, matched, posted) = counters(&stderr, "strings");
    assert_eq!((matched, posted), (3, 3), "{stderr}");
    assert!(seen >= 7, "every open was seen in the kernel: {seen}");
}

#[test]
fn integer_arguments_and_pids() {
    if !privileged("integer_arguments_and_pids") {
        return;
    }
    let work = tempdir();
    let d = work.path().to_str().unwrap().to_owned();
    // O_CREAT (0x40) opens under the directory, by this process only.
    let selectors = format!(
        r#"    - matchPIDs:
      - operator: In
        values: [{pid}]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
      - index: 7
        operator: Mask
        values: ["0x40"]
"#,
        pid = std::process::id()
    );
    let pol = write(
        work.path(),
        "p.yaml",
        &openat_policy("creates", &selectors, ""),
    );
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    let created = work.path().join("created");
    fs::write(&created, "x").unwrap(); // O_CREAT: matches
    open(&created); // read-only: no
    // Another process creating a file there: not this pid.
    let (_, out) = run(Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("echo > '{d}/by-child'")));
    assert!(out.status.success());
    let events = agent.sync();
    let got: Vec<&str> = hits(&events, "creates")
        .iter()
        .map(|e| filename(e))
        .collect();
    assert_eq!(got, [created.to_str().unwrap()]);
    let flags = hits(&events, "creates")[0]["args"][1]["int_arg"]
        .as_i64()
        .unwrap();
    assert_ne!(flags & 0x40, 0, "O_CREAT in {flags:#x}");
    let (_, _, stderr) = agent.stop();
    assert_eq!(counters(&stderr, "creates").2, 1);
}

#[test]
fn sigkill_signal_nopost_and_monitor_mode() {
    if !privileged("sigkill_signal_nopost_and_monitor_mode") {
        return;
    }
    let work = tempdir();
    let d = work.path().to_str().unwrap().to_owned();
    let enforce = format!(
        r#"    - matchArgs:
      - index: 6
        operator: Equal
        values: ["{d}/kill-me"]
      matchActions:
      - action: Sigkill
    - matchArgs:
      - index: 6
        operator: Equal
        values: ["{d}/usr1"]
      matchActions:
      - action: Signal
        argSig: 10
    - matchArgs:
      - index: 6
        operator: Equal
        values: ["{d}/silent"]
      matchActions:
      - action: NoPost
"#
    );
    let monitor = format!(
        r#"    - matchArgs:
      - index: 6
        operator: Equal
        values: ["{d}/monitored"]
      matchActions:
      - action: Sigkill
"#
    );
    let p1 = write(
        work.path(),
        "enforce.yaml",
        &openat_policy("enforce", &enforce, ""),
    );
    let p2 = write(
        work.path(),
        "monitor.yaml",
        &openat_policy(
            "monitor",
            &monitor,
            "  options:\n  - name: policy-mode\n    value: monitor\n",
        ),
    );
    let agent = Agent::start(&[
        "--tracing-policy",
        p1.to_str().unwrap(),
        "--tracing-policy",
        p2.to_str().unwrap(),
    ]);
    let cat = |f: &str| run(Command::new("/bin/cat").arg(format!("{d}/{f}")));
    let (killed, out) = cat("kill-me");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9)
    );
    let (usr1, out) = cat("usr1");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(10)
    );
    let (silent, out) = cat("silent");
    assert_eq!(
        out.status.code(),
        Some(1),
        "not killed, the file is missing"
    );
    let (monitored, out) = cat("monitored");
    assert_eq!(out.status.code(), Some(1), "monitor mode does not kill");
    let events = agent.sync();

    let of_pid = |name: &str, pid: u32| {
        hits(&events, name)
            .into_iter()
            .find(|e| e["process"]["pid"] == pid)
            .cloned()
    };
    let k = of_pid("enforce", killed).expect("event of the killed cat");
    assert_eq!(k["action"], "KPROBE_ACTION_SIGKILL");
    assert!(k.get("policy_mode").is_none());
    assert_eq!(exit_of(&events, killed).unwrap()["signal"], "SIGKILL");
    let s = of_pid("enforce", usr1).expect("event of the signalled cat");
    assert_eq!(s["action"], "KPROBE_ACTION_SIGNAL");
    assert_eq!(exit_of(&events, usr1).unwrap()["signal"], "SIGUSR1");
    assert!(of_pid("enforce", silent).is_none(), "NoPost posts nothing");
    let m = of_pid("monitor", monitored).expect("monitor mode still reports");
    assert_eq!(m["action"], "KPROBE_ACTION_SIGKILL");
    assert_eq!(m["policy_mode"], "monitor");
    assert_eq!(exit_of(&events, monitored).unwrap()["status"], 1);

    let (_, _, stderr) = agent.stop();
    let (_, matched, posted) = counters(&stderr, "enforce");
    assert_eq!(
        (matched, posted),
        (3, 2),
        "the NoPost match is counted, not posted"
    );
}

/// The selector of an openat policy on the files of `dir` whose names start with `p`.
fn prefix_selector(dir: &Path, p: &str) -> String {
    format!(
        "    - matchArgs:\n      - index: 6\n        operator: Prefix\n        values: [\"{}/{p}\"]\n",
        dir.display()
    )
}

#[test]
fn policy_directory_follows_its_files() {
    if !privileged("policy_directory_follows_its_files") {
        return;
    }
    let work = tempdir();
    let dir = work.path().join("policies");
    fs::create_dir(&dir).unwrap();
    let prefix = |p: &str| prefix_selector(work.path(), p);
    write(&dir, "a.yaml", &openat_policy("pol-a", &prefix("a"), ""));
    let agent = Agent::start(&["--tracing-policy-dir", dir.to_str().unwrap()]);
    agent.wait_for_log("policy pol-a loaded");

    // Added while running.
    write(&dir, "b.yaml", &openat_policy("pol-b", &prefix("b"), ""));
    agent.wait_for_log("policy pol-b loaded");
    open(&work.path().join("a1"));
    open(&work.path().join("b1"));
    let events = agent.sync();
    assert_eq!(hits(&events, "pol-a").len(), 1);
    assert_eq!(hits(&events, "pol-b").len(), 1);

    // A broken file is refused with its place; what runs keeps running.
    write(
        &dir,
        "broken.yaml",
        &openat_policy("pol-c", &prefix("c").replace("Prefix", "Prefx"), ""),
    );
    let log = agent.wait_for_log("policy refused");
    assert!(
        log.contains("broken.yaml:18:19: spec.tracepoints[0].selectors[0].matchArgs[0].operator: `Prefx` is not a matchArgs operator"),
        "{log}"
    );
    open(&work.path().join("a2"));
    // Changed: pol-a now watches c.
    write(&dir, "a.yaml", &openat_policy("pol-a", &prefix("c"), ""));
    agent.wait_for_log(&format!(
        "policy pol-a loaded from {}",
        dir.join("a.yaml").display()
    ));
    while agent.stderr().matches("policy pol-a loaded").count() < 2 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    open(&work.path().join("a3"));
    open(&work.path().join("c1"));
    // Removed.
    fs::remove_file(dir.join("b.yaml")).unwrap();
    agent.wait_for_log("policy pol-b removed");
    open(&work.path().join("b2"));
    let events = agent.sync();
    let names = |n: &str| -> Vec<String> {
        hits(&events, n)
            .iter()
            .map(|e| filename(e).rsplit('/').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names("pol-a"),
        ["a1", "a2", "c1"],
        "a3 opened after the change"
    );
    assert_eq!(names("pol-b"), ["b1"], "b2 opened after removal");
    assert!(hits(&events, "pol-c").is_empty());
}

/// Two files with one `metadata.name`: the second (in path order) is refused, naming
/// both, and does not replace the first; deleting it leaves the first running; once the
/// first file goes, the second loads. `tracer policy validate` refuses the pair too.
#[test]
#[allow(clippy::unwrap_used, reason = "a test body")]
fn two_files_cannot_share_a_policy_name() {
    if !privileged("two_files_cannot_share_a_policy_name") {
        return;
    }
    let work = tempdir();
    let dir = work.path().join("policies");
    fs::create_dir(&dir).unwrap();
    let prefix = |p: &str| prefix_selector(work.path(), p);
    let a = write(&dir, "a.yaml", &openat_policy("dup", &prefix("a"), ""));
    let b = write(&dir, "b.yaml", &openat_policy("dup", &prefix("b"), ""));
    let out = Command::new(integration::tracer_bin())
        .args(["policy", "validate"])
        .args([&a, &b])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!(
            "{}:1: policy dup is also defined at {}:1: two policies cannot share a metadata.name",
            b.display(),
            a.display()
        )),
        "{text}"
    );

    let agent = Agent::start(&["--tracing-policy-dir", dir.to_str().unwrap()]);
    let log = agent.wait_for_log("policy refused");
    assert!(
        log.contains(&format!(
            "policy refused: {}:1: policy dup is already loaded from {}: two policies cannot share a metadata.name",
            b.display(),
            a.display()
        )),
        "{log}"
    );
    open(&work.path().join("a1"));
    open(&work.path().join("b1"));
    // The second file's removal takes nothing with it.
    fs::remove_file(&b).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    open(&work.path().join("a2"));
    let events = agent.sync();
    let names: Vec<String> = hits(&events, "dup")
        .iter()
        .map(|e| filename(e).rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a1", "a2"], "a.yaml's policy, still running");
    assert!(!agent.stderr().contains("policy dup removed"));
    // The first file goes: the second, back, loads.
    write(&dir, "b.yaml", &openat_policy("dup", &prefix("b"), ""));
    while agent.stderr().matches("policy refused").count() < 2 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    fs::remove_file(&a).unwrap();
    agent.wait_for_log(&format!("policy dup loaded from {}", b.display()));
    open(&work.path().join("a3"));
    open(&work.path().join("b3"));
    let events = agent.sync();
    let names: Vec<String> = hits(&events, "dup")
        .iter()
        .map(|e| filename(e).rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["a1", "a2", "b3"],
        "b.yaml's policy once a.yaml is gone"
    );
}

/// Runs `f`, a syscall that may fail: the tracepoint fires on entry either way.
fn syscall(f: impl FnOnce() -> i64) {
    let _ = f();
}

#[test]
fn policy_library_loads_and_triggers() {
    if !privileged("policy_library_loads_and_triggers") {
        return;
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let agent = Agent::start(&["--tracing-policy-dir", lib.to_str().unwrap()]);
    let has_modules =
        Path::new("/sys/kernel/tracing/events/syscalls/sys_enter_finit_module").exists();
    let expected = [
        "sensitive-files",
        "etc-writes",
        "privilege-changes",
        "ptrace",
        "mounts",
        "fileless-exec",
        "network-egress",
        "shell-connects",
        "unexpected-listeners",
    ];
    for name in expected {
        agent.wait_for_log(&format!("policy {name} loaded"));
    }
    if has_modules {
        agent.wait_for_log("policy kernel-modules loaded");
    } else {
        let log = agent.wait_for_log("kernel-modules");
        assert!(
            log.contains("sys_enter_finit_module does not exist on this kernel"),
            "{log}"
        );
        println!("SKIPPED trigger of kernel-modules: this kernel has no module support");
    }

    // Trigger each, from this process.
    let _ = fs::File::open("/etc/shadow");
    let etc = PathBuf::from(format!("/etc/tracer-test-{}", std::process::id()));
    fs::write(&etc, "x").unwrap();
    fs::remove_file(&etc).unwrap();
    // SAFETY (all below): raw syscalls with arguments that are invalid or harmless; each
    // fails or changes nothing, and the tracepoint fires on entry either way.
    syscall(|| unsafe { libc::setuid(libc::getuid()) }.into());
    syscall(|| unsafe { libc::setgid(libc::getgid()) }.into());
    syscall(|| unsafe { libc::setreuid(u32::MAX, u32::MAX) }.into());
    syscall(|| unsafe { libc::setresuid(u32::MAX, u32::MAX, u32::MAX) }.into());
    syscall(|| unsafe { libc::syscall(libc::SYS_capset, 0usize, 0usize) });
    syscall(|| unsafe { libc::syscall(libc::SYS_finit_module, -1i32, c"".as_ptr(), 0) });
    syscall(|| unsafe { libc::ptrace(libc::PTRACE_PEEKDATA, 1, 0usize, 0usize) });
    let none = CString::new("none").unwrap();
    let target = CString::new("/nonexistent-tracer-mount").unwrap();
    syscall(|| {
        unsafe {
            libc::mount(
                none.as_ptr(),
                target.as_ptr(),
                none.as_ptr(),
                0,
                std::ptr::null(),
            )
        }
        .into()
    });
    let memfd = unsafe { libc::memfd_create(c"tracer-test".as_ptr(), 0) };
    if memfd >= 0 {
        unsafe { libc::close(memfd) };
    }
    syscall(|| unsafe {
        libc::syscall(
            libc::SYS_execveat,
            -1i32,
            c"".as_ptr(),
            0usize,
            0usize,
            libc::AT_EMPTY_PATH,
        )
    });
    // A listener of this test's own binary; a shell connecting to it; a connection to a
    // documentation address (TEST-NET-1), outside every private range.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (shell, _) = run(Command::new("/bin/bash")
        .arg("-c")
        .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}")));
    let outside: std::net::SocketAddr = "192.0.2.1:9".parse().unwrap();
    let egress =
        std::net::TcpStream::connect_timeout(&outside, std::time::Duration::from_millis(200));
    let routed = !matches!(
        &egress,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NetworkUnreachable | std::io::ErrorKind::HostUnreachable)
    );
    // The same outside address over UDP, and a UDP flow on loopback, which is not egress.
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let udp_routed = udp.connect(outside).is_ok();
    let udp_local = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp_local.connect(("127.0.0.1", port)).unwrap();
    let events = agent.sync();
    let me = std::process::id();
    let kprobes = |name: &str| -> Vec<&Value> {
        of_kind(&events, "process_kprobe")
            .into_iter()
            .filter(|e| e["policy_name"] == name)
            .collect()
    };
    let listens: Vec<&Value> = kprobes("unexpected-listeners")
        .into_iter()
        .filter(|e| e["process"]["pid"] == me)
        .collect();
    assert_eq!(listens.len(), 1, "{listens:#?}");
    assert_eq!(listens[0]["function_name"], "inet_csk_listen_start");
    assert_eq!(listens[0]["args"][0]["sock_arg"]["sport"], port);
    // As a kprobe at the call sees it: not listening yet.
    assert_eq!(listens[0]["args"][0]["sock_arg"]["state"], "TCP_CLOSE");
    let shells: Vec<&Value> = kprobes("shell-connects")
        .into_iter()
        .filter(|e| e["process"]["pid"] == shell)
        .collect();
    assert_eq!(shells.len(), 1, "{shells:#?}");
    assert_eq!(
        shells[0]["process"]["binary"],
        integration::real("/bin/bash")
    );
    assert_eq!(shells[0]["args"][0]["sock_arg"]["dport"], port);
    if routed {
        let out: Vec<&Value> = kprobes("network-egress")
            .into_iter()
            .filter(|e| e["process"]["pid"] == me && e["function_name"] == "tcp_connect")
            .collect();
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0]["args"][0]["sock_arg"]["daddr"], "192.0.2.1");
        assert_eq!(out[0]["args"][0]["sock_arg"]["dport"], 9);
    } else {
        println!("SKIPPED trigger of network-egress: this machine has no route to 192.0.2.1");
    }
    let udp_out: Vec<&Value> = kprobes("network-egress")
        .into_iter()
        .filter(|e| e["process"]["pid"] == me && e["function_name"] == "inet_dgram_connect")
        .collect();
    if udp_routed {
        assert_eq!(udp_out.len(), 1, "{udp_out:#?}");
        let s = &udp_out[0]["args"][0]["sock_arg"];
        assert_eq!(s["daddr"], "192.0.2.1");
        assert_eq!(s["dport"], 9);
        assert_eq!(s["protocol"], "IPPROTO_UDP");
        assert_eq!(s["sport"], udp.local_addr().unwrap().port());
        assert_eq!(udp_out[0]["message"], "UDP flow outside the private ranges");
    } else {
        assert!(
            udp_out.is_empty(),
            "a failed connect has no peer: {udp_out:#?}"
        );
        println!("SKIPPED UDP trigger of network-egress: this machine has no route to 192.0.2.1");
    }
    // The loopback connections are not egress.
    assert!(
        kprobes("network-egress")
            .iter()
            .all(|e| e["args"][0]["sock_arg"]["daddr"] != "127.0.0.1")
    );
    let mine = |name: &str| -> Vec<&Value> {
        hits(&events, name)
            .into_iter()
            .filter(|e| e["process"]["pid"] == me)
            .collect()
    };
    assert!(
        mine("sensitive-files")
            .iter()
            .any(|e| filename(e) == "/etc/shadow")
    );
    assert!(
        mine("etc-writes")
            .iter()
            .any(|e| filename(e) == etc.to_str().unwrap())
    );
    let privilege: Vec<&str> = mine("privilege-changes")
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for ev in [
        "sys_enter_setuid",
        "sys_enter_setgid",
        "sys_enter_setreuid",
        "sys_enter_setresuid",
        "sys_enter_capset",
    ] {
        assert!(privilege.contains(&ev), "{ev} in {privilege:?}");
    }
    if has_modules {
        assert!(!mine("kernel-modules").is_empty());
    }
    let p = mine("ptrace");
    assert_eq!(
        p[0]["args"][0]["long_arg"],
        libc::PTRACE_PEEKDATA.to_string()
    );
    assert_eq!(p[0]["args"][1]["long_arg"], "1");
    let m = mine("mounts");
    assert_eq!(m[0]["args"][1]["string_arg"], "/nonexistent-tracer-mount");
    assert_eq!(m[0]["args"][2]["string_arg"], "none");
    let f: Vec<&str> = mine("fileless-exec")
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        f.contains(&"sys_enter_memfd_create") && f.contains(&"sys_enter_execveat"),
        "{f:?}"
    );
    let memfd_event = mine("fileless-exec")
        .into_iter()
        .find(|e| e["event"] == "sys_enter_memfd_create")
        .unwrap();
    assert_eq!(memfd_event["args"][0]["string_arg"], "tracer-test");
}

#[test]
fn match_binaries() {
    if !privileged("match_binaries") {
        return;
    }
    let work = tempdir();
    let d = work.path().to_str().unwrap().to_owned();
    let cat = integration::real("/bin/cat");
    let head = integration::real("/usr/bin/head");
    let tail = integration::real("/usr/bin/tail");
    let selectors = format!(
        r#"    - matchBinaries:
      - operator: In
        values: ["{cat}"]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
    - matchBinaries:
      - operator: Postfix
        values: ["/head"]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
    - matchBinaries:
      - operator: NotIn
        values: ["{cat}", "{head}", "{tail}"]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/own"]
"#
    );
    let pol = write(
        work.path(),
        "p.yaml",
        &openat_policy("binaries", &selectors, ""),
    );
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    for (bin, file) in [
        (&cat, "a"),
        (&head, "b"),
        (&tail, "c"),
        (&tail, "own-by-tail"),
    ] {
        let _ = run(Command::new(bin)
            .arg(format!("{d}/{file}"))
            .stderr(std::process::Stdio::null()));
    }
    open(&work.path().join("own-by-test"));
    let events = agent.sync();
    let mut got: Vec<(String, String)> = hits(&events, "binaries")
        .iter()
        .map(|e| {
            (
                e["process"]["binary"].as_str().unwrap().to_owned(),
                filename(e).rsplit('/').next().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let me = std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut want = vec![
        (cat.clone(), "a".to_owned()),
        (head.clone(), "b".to_owned()),
        (me, "own-by-test".to_owned()),
    ];
    want.sort();
    assert_eq!(
        got, want,
        "cat by In, head by Postfix, this test by NotIn; tail by none"
    );
}

#[test]
fn match_namespaces_and_capabilities() {
    if !privileged("match_namespaces_and_capabilities") {
        return;
    }
    let work = tempdir();
    let d = work.path().to_str().unwrap().to_owned();
    let selectors = format!(
        r#"    - matchNamespaces:
      - namespace: Mnt
        operator: In
        values: ["host_ns"]
      matchCapabilities:
      - type: Effective
        operator: In
        values: ["CAP_SYS_ADMIN"]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
      matchActions:
      - action: Post
    - matchNamespaces:
      - namespace: Mnt
        operator: NotIn
        values: ["host_ns"]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
    - matchCapabilities:
      - operator: NotIn
        values: ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
"#
    );
    let pol = write(
        work.path(),
        "p.yaml",
        &openat_policy("ns-caps", &selectors, ""),
    );
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    // Host mount namespace, root: selector 0.
    open(&work.path().join("host-root"));
    // Its own mount namespace: selector 1.
    let (unshared, _) = run(Command::new("unshare")
        .args(["--mount", "/bin/cat"])
        .arg(format!("{d}/own-mntns"))
        .stderr(std::process::Stdio::null()));
    // No capabilities (nobody): selector 2. The open fails, the syscall is still made.
    let (nobody, _) = run(Command::new("/bin/cat")
        .arg(format!("{d}/nobody"))
        .uid(65534)
        .gid(65534)
        .stderr(std::process::Stdio::null()));
    let events = agent.sync();
    let got: Vec<(String, u64)> = hits(&events, "ns-caps")
        .iter()
        .map(|e| {
            (
                filename(e).rsplit('/').next().unwrap().to_owned(),
                e["process"]["pid"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        got.contains(&("host-root".into(), u64::from(std::process::id()))),
        "{got:?}"
    );
    assert!(
        got.contains(&("own-mntns".into(), u64::from(unshared))),
        "{got:?}"
    );
    assert!(
        got.contains(&("nobody".into(), u64::from(nobody))),
        "{got:?}"
    );
    assert_eq!(got.len(), 3, "{got:?}");
}

#[test]
fn rate_limit() {
    if !privileged("rate_limit") {
        return;
    }
    let work = tempdir();
    let d = work.path().to_str().unwrap().to_owned();
    let selectors = format!(
        r#"    - matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
      matchActions:
      - action: Post
        rateLimit: 1m
        rateLimitScope: process
"#
    );
    let pol = write(
        work.path(),
        "p.yaml",
        &openat_policy("limited", &selectors, ""),
    );
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    for _ in 0..5 {
        open(&work.path().join("same"));
    }
    open(&work.path().join("other"));
    let events = agent.sync();
    let mut got: Vec<&str> = hits(&events, "limited")
        .iter()
        .map(|e| filename(e))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [format!("{d}/other"), format!("{d}/same")],
        "one event per arguments per minute"
    );
    let (_, _, stderr) = agent.stop();
    assert!(stderr.contains("rate_limited=4"), "{stderr}");
}

#[test]
fn follow_forks_and_children() {
    if !privileged("follow_forks_and_children") {
        return;
    }
    use std::io::Write as _;
    let work = tempdir();
    let d = integration::real(work.path().to_str().unwrap());
    let dir = work.path().join("policies");
    fs::create_dir(&dir).unwrap();
    // A shell of its own path, for followChildren.
    fs::copy(integration::real("/bin/sh"), format!("{d}/mysh")).unwrap();
    fs::set_permissions(
        format!("{d}/mysh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let agent = Agent::start(&["--tracing-policy-dir", dir.to_str().unwrap()]);

    // A shell that was running before the policy: followForks covers what it starts.
    let mut waiting = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("read x; /bin/cat {d}/forked"))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let selectors = format!(
        r#"    - matchPIDs:
      - operator: In
        followForks: true
        values: [{pid}]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
    - matchBinaries:
      - operator: In
        followChildren: true
        values: ["{d}/mysh"]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
"#,
        pid = waiting.id()
    );
    write(
        &dir,
        "follow.yaml",
        &openat_policy("follow", &selectors, ""),
    );
    agent.wait_for_log("policy follow loaded");
    writeln!(waiting.stdin.take().unwrap(), "go").unwrap();
    waiting.wait().unwrap();
    let (_, _) = run(Command::new(format!("{d}/mysh"))
        .arg("-c")
        .arg(format!("/bin/cat {d}/child-of-mysh; true"))
        .stderr(std::process::Stdio::null()));
    // Neither a descendant of the listed pid nor of mysh.
    let (_, _) = run(Command::new("/bin/cat")
        .arg(format!("{d}/unrelated"))
        .stderr(std::process::Stdio::null()));
    let events = agent.sync();
    let mut got: Vec<(String, String)> = hits(&events, "follow")
        .iter()
        .map(|e| {
            (
                filename(e).rsplit('/').next().unwrap().to_owned(),
                e["process"]["binary"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let cat = integration::real("/bin/cat");
    assert_eq!(
        got,
        [
            ("child-of-mysh".to_owned(), cat.clone()),
            ("forked".to_owned(), cat)
        ],
        "the cat forked by the listed shell, and the cat under mysh"
    );
}

/// With `--syscall-raw-tracepoints`, syscall hooks share the raw `sys_enter`/`sys_exit`
/// tracepoints, filtered by syscall number in the program: `syscalls/sys_enter_*` and
/// `sys_exit_*` hooks and a `raw_syscalls` hook give the events their own tracepoints
/// would, two hooks on one syscall both run, and the raw tracepoint goes when the last
/// syscall hook does.
#[test]
fn syscall_hooks_share_the_raw_syscall_tracepoints() {
    if !privileged("syscall_hooks_share_the_raw_syscall_tracepoints") {
        return;
    }
    syscall_hooks(true);
}

/// By default a hook on one syscall runs on its own tracepoint and a `raw_syscalls` hook
/// on the raw one: the same events and counters as above.
#[test]
fn syscall_hooks_on_their_own_tracepoints() {
    if !privileged("syscall_hooks_on_their_own_tracepoints") {
        return;
    }
    syscall_hooks(false);
}

/// The two `syscall_hooks` tests count this process's getpgid calls, and another test
/// makes one: one at a time.
static SYSCALL_HOOKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[allow(clippy::unwrap_used, reason = "a test body, shared by two tests")]
fn syscall_hooks(raw_numbered: bool) {
    let _one_at_a_time = SYSCALL_HOOKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let work = tempdir();
    let dir = work.path().join("policies");
    fs::create_dir(&dir).unwrap();
    let me = std::process::id();
    let nr = libc::SYS_getpgid;
    let policy = |name: &str, hook: &str, args: &str, selectors: &str| {
        format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n  tracepoints:\n  - {hook}\n    args:\n{args}    selectors:\n{selectors}"
        )
    };
    // Every syscall: the number (field 4), getpgid's by this process.
    write(
        &dir,
        "raw.yaml",
        &policy(
            "raw-enter",
            "subsystem: raw_syscalls\n    event: sys_enter",
            "    - index: 4\n",
            &format!(
                "    - matchPIDs:\n      - operator: In\n        values: [{me}]\n      matchArgs:\n      - index: 4\n        operator: Equal\n        values: [{nr}]\n"
            ),
        ),
    );
    write(
        &dir,
        "enter.yaml",
        &policy(
            "getpgid-enter",
            "subsystem: syscalls\n    event: sys_enter_getpgid",
            "    - index: 5\n      type: int\n",
            "    - matchArgs:\n      - index: 5\n        operator: Equal\n        values: [424243]\n",
        ),
    );
    // The return value: -ESRCH for a pid that does not exist.
    write(
        &dir,
        "exit.yaml",
        &policy(
            "getpgid-exit",
            "subsystem: syscalls\n    event: sys_exit_getpgid",
            "    - index: 5\n",
            &format!(
                "    - matchPIDs:\n      - operator: In\n        values: [{me}]\n      matchArgs:\n      - index: 5\n        operator: Equal\n        values: [-3]\n"
            ),
        ),
    );
    // A second hook on getpgid, reading `common_pid` (field 3, the thread's id) too.
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    write(
        &dir,
        "own.yaml",
        &policy(
            "getpgid-pid",
            "subsystem: syscalls\n    event: sys_enter_getpgid",
            "    - index: 3\n    - index: 5\n      type: int\n",
            &format!(
                "    - matchArgs:\n      - index: 3\n        operator: Equal\n        values: [{tid}]\n      - index: 5\n        operator: Equal\n        values: [424244]\n"
            ),
        ),
    );
    let mut args = vec!["--tracing-policy-dir", dir.to_str().unwrap()];
    if raw_numbered {
        args.push("--syscall-raw-tracepoints");
    }
    let agent = Agent::start(&args);
    for name in ["raw-enter", "getpgid-enter", "getpgid-exit", "getpgid-pid"] {
        agent.wait_for_log(&format!("policy {name} loaded"));
    }
    let log = agent.stderr();
    let placed = if raw_numbered {
        [
            format!(
                "policy getpgid-enter: syscalls/sys_enter_getpgid runs on the raw tracepoint sys_enter, syscall {nr} filtered in the program"
            ),
            format!(
                "policy getpgid-exit: syscalls/sys_exit_getpgid runs on the raw tracepoint sys_exit, syscall {nr} filtered in the program"
            ),
            format!(
                "policy getpgid-pid: syscalls/sys_enter_getpgid runs on the raw tracepoint sys_enter, syscall {nr} filtered in the program"
            ),
        ]
    } else {
        [
            "policy getpgid-enter: syscalls/sys_enter_getpgid runs on its tracepoint".to_owned(),
            "policy getpgid-exit: syscalls/sys_exit_getpgid runs on its tracepoint".to_owned(),
            "policy getpgid-pid: syscalls/sys_enter_getpgid runs on its tracepoint".to_owned(),
        ]
    };
    for routed in placed.iter().chain(std::iter::once(
        &"policy raw-enter: raw_syscalls/sys_enter runs on the raw tracepoint sys_enter, every syscall".to_owned(),
    )) {
        assert!(log.contains(routed.as_str()), "no `{routed}` in:\n{log}");
    }
    for pid in [424242, 424243, 424244] {
        // SAFETY: getpgid of a pid that does not exist: fails with ESRCH, touches nothing.
        let r = unsafe { libc::getpgid(pid) };
        assert_eq!(r, -1);
    }
    // SAFETY: getpgid of this process.
    assert!(unsafe { libc::getpgid(0) } > 0);
    let events = agent.sync();

    let raw = hits(&events, "raw-enter");
    assert_eq!(raw.len(), 4, "{raw:?}");
    for e in &raw {
        assert_eq!(e["subsys"], "raw_syscalls");
        assert_eq!(e["event"], "sys_enter");
        assert_eq!(e["process"]["pid"], me);
        assert_eq!(e["args"][0]["long_arg"], nr.to_string());
    }

    let enter = hits(&events, "getpgid-enter");
    assert_eq!(enter.len(), 1, "{enter:?}");
    assert_eq!(enter[0]["event"], "sys_enter_getpgid");
    assert_eq!(enter[0]["args"][0]["int_arg"], 424243);

    let exit = hits(&events, "getpgid-exit");
    assert_eq!(exit.len(), 3, "three failed getpgid calls: {exit:?}");
    for e in &exit {
        assert_eq!(e["event"], "sys_exit_getpgid");
        assert_eq!(e["args"][0]["long_arg"], "-3");
    }

    let own = hits(&events, "getpgid-pid");
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0]["args"][0]["int_arg"], tid);
    assert_eq!(own[0]["args"][1]["int_arg"], 424244);

    if raw_numbered {
        // Removing the last hook of a direction detaches its raw tracepoint.
        fs::remove_file(dir.join("exit.yaml")).unwrap();
        agent.wait_for_log("raw tracepoint sys_exit detached: no syscall hook left");
    }

    // 200,000 syscalls of another process: the raw hook's selector names only this
    // process, so its process verdict rejects them before anything is read.
    let dd = std::process::Command::new("dd")
        .args(["if=/dev/zero", "of=/dev/null", "bs=1", "count=100000"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(dd.success());

    let (_, _, stderr) = agent.stop();
    // What the filters shared by a hook point's hooks reject never reaches a policy's
    // selectors (`seen`): the raw hook's process verdict passes this process only, and its
    // argument gate (the syscall number) its 4 getpgid calls among all of its syscalls
    // and dd's; the gate of `getpgid-enter` (its pid argument) the one call with 424243.
    let (raw_seen, _, raw_posted) = counters(&stderr, "raw-enter");
    assert_eq!((raw_seen, raw_posted), (4, 4), "{stderr}");
    let (enter_seen, _, enter_posted) = counters(&stderr, "getpgid-enter");
    assert_eq!((enter_seen, enter_posted), (1, 1), "{stderr}");
    let (own_seen, _, own_posted) = counters(&stderr, "getpgid-pid");
    assert_eq!(own_posted, 1);
    assert!((1..=4).contains(&own_seen), "{own_seen}");
}

/// A 32-bit syscall (`int 0x80`, as a 32-bit binary makes them) is marked as Tetragon
/// marks it: a `syscall64` argument carries bit 31, written `"abi":"i386"`, and a list
/// naming `__ia32_sys_dup` matches it. A hook on one syscall ignores a 32-bit syscall of
/// the same number (i386's `dup` is x86-64's `socket`), on its own tracepoint as the
/// kernel does and on the shared raw tracepoint (`--syscall-raw-tracepoints`).
#[cfg(target_arch = "x86_64")]
#[test]
fn thirty_two_bit_syscalls_on_their_own_tracepoints() {
    if !privileged("thirty_two_bit_syscalls_on_their_own_tracepoints") {
        return;
    }
    thirty_two_bit_syscalls(false);
}

/// As above, with syscall hooks on the shared raw tracepoints.
#[cfg(target_arch = "x86_64")]
#[test]
fn thirty_two_bit_syscalls_on_the_raw_tracepoints() {
    if !privileged("thirty_two_bit_syscalls_on_the_raw_tracepoints") {
        return;
    }
    thirty_two_bit_syscalls(true);
}

/// Syscall `nr` of the 32-bit ABI with one argument, through `int 0x80`: its return.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32, arg: u32) -> i32 {
    let mut ret = nr;
    // SAFETY: a syscall of the 32-bit ABI whose only argument is a number (`ebx`); `rbx`
    // is swapped in and out around it (LLVM reserves it), and the registers the 32-bit
    // entry may clear are declared clobbered. It touches no memory of this process.
    unsafe {
        core::arch::asm!(
            "xchg {arg:r}, rbx",
            "int 0x80",
            "xchg {arg:r}, rbx",
            arg = inout(reg) u64::from(arg) => _,
            inout("eax") ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack),
        );
    }
    ret as i32
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::unwrap_used, reason = "a test body, shared by two tests")]
fn thirty_two_bit_syscalls(raw_numbered: bool) {
    // i386's `dup` and `close` (41, 6), x86-64's `socket` (41).
    const I386_DUP: u32 = 41;
    const I386_CLOSE: u32 = 6;
    let _one_at_a_time = SYSCALL_HOOKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let work = tempdir();
    let me = std::process::id();
    let dups = write(
        work.path(),
        "dups.yaml",
        &format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: dups\nspec:\n  lists:\n  - name: dups\n    type: syscalls\n    values: [sys_dup, __ia32_sys_dup]\n  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    args:\n    - index: 4\n      type: syscall64\n    selectors:\n    - matchPIDs:\n      - operator: In\n        values: [{me}]\n      matchArgs:\n      - index: 4\n        operator: InMap\n        values: [\"list:dups\"]\n"
        ),
    );
    let socket = write(
        work.path(),
        "socket.yaml",
        &format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: sockets\nspec:\n  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_socket\n    args:\n    - index: 5\n      type: int\n    selectors:\n    - matchPIDs:\n      - operator: In\n        values: [{me}]\n"
        ),
    );
    let mut args = vec![
        "--tracing-policy",
        dups.to_str().unwrap(),
        "--tracing-policy",
        socket.to_str().unwrap(),
    ];
    if raw_numbered {
        args.push("--syscall-raw-tracepoints");
    }
    let agent = Agent::start(&args);
    let fd = int80(I386_DUP, 1);
    assert!(
        fd >= 0,
        "int 0x80 dup(1) returned {fd}: this kernel runs no 32-bit syscalls (CONFIG_IA32_EMULATION off, or ia32_emulation=0 on its command line)"
    );
    assert_eq!(int80(I386_CLOSE, fd as u32), 0);
    // SAFETY: dup of standard output and a socket, both closed again.
    unsafe {
        let fd = libc::dup(1);
        assert!(fd >= 0);
        libc::close(fd);
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
        assert!(s >= 0);
        libc::close(s);
    }
    let events = agent.sync();
    let ids: Vec<&Value> = hits(&events, "dups")
        .into_iter()
        .map(|e| {
            assert_eq!(e["process"]["pid"], me);
            assert_eq!(
                (&e["subsys"], &e["event"]),
                (&"raw_syscalls".into(), &"sys_enter".into())
            );
            &e["args"]
        })
        .collect();
    assert_eq!(
        ids,
        [
            &serde_json::json!([{ "syscall_id": { "id": I386_DUP, "abi": "i386" } }]),
            &serde_json::json!([{ "syscall_id": { "id": libc::SYS_dup, "abi": "x64" } }]),
        ],
        "the 32-bit dup marked i386, the 64-bit one x64"
    );
    let sockets: Vec<&Value> = hits(&events, "sockets")
        .into_iter()
        .map(|e| &e["args"])
        .collect();
    assert_eq!(
        sockets,
        [&serde_json::json!([{ "int_arg": libc::AF_UNIX }])],
        "the 64-bit socket only, not the 32-bit dup of the same number"
    );
}

/// A `Prefix` longer than an LPM trie key holds (248 bytes) matches as a shorter one
/// does, up to the longest string captured (255 bytes).
#[test]
fn prefix_longer_than_an_lpm_key() {
    if !privileged("prefix_longer_than_an_lpm_key") {
        return;
    }
    let work = tempdir();
    let d = work.path().to_str().unwrap().to_owned();
    // `<dir>/aaaa...a-` of 252 bytes.
    let long = format!("{d}/{}-", "a".repeat(252 - d.len() - 2));
    assert_eq!(long.len(), 252);
    let selectors = format!(
        r#"    - matchArgs:
      - index: 6
        operator: Prefix
        values: ["{long}", "{d}/short-"]
"#
    );
    let pol = write(
        work.path(),
        "p.yaml",
        &openat_policy("long", &selectors, ""),
    );
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    // Only the first two start with a value: the third has the long value's first 251
    // bytes, the fourth its first 248 then differs.
    let mut near = long.clone().into_bytes();
    near[248] = b'b';
    let near = String::from_utf8(near).unwrap();
    let names = [
        format!("{long}x"),
        format!("{d}/short-1"),
        format!("{}x", &long[..251]),
        format!("{near}x"),
    ];
    for n in &names {
        open(Path::new(n));
    }
    let events = agent.sync();
    let got: Vec<&str> = hits(&events, "long").iter().map(|e| filename(e)).collect();
    assert_eq!(got, [names[0].as_str(), names[1].as_str()]);
    let (_, _, stderr) = agent.stop();
    let (seen, matched, posted) = counters(&stderr, "long");
    assert_eq!((matched, posted), (2, 2), "seen {seen}");
}

/// `isNamespacePID`: pids as the process's own pid namespace numbers them. In a new pid
/// namespace the shell is pid 1 and its child pid 2; on the host neither is.
#[test]
fn namespace_pids() {
    if !privileged("namespace_pids") {
        return;
    }
    let work = tempdir();
    let d = work.path().to_str().unwrap().to_owned();
    let selectors = format!(
        r#"    - matchPIDs:
      - operator: In
        isNamespacePID: true
        values: [1]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
"#
    );
    let pol = write(
        work.path(),
        "p.yaml",
        &openat_policy("ns-pids", &selectors, ""),
    );
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    // `cat` (pid 2 inside) first, then the shell (pid 1 inside) opens by redirection.
    let (_, out) = run(Command::new("unshare")
        .args(["--pid", "--fork", "/bin/sh", "-c"])
        .arg(format!(
            "cat '{d}/by-pid-2' 2>/dev/null; echo > '{d}/by-pid-1'"
        )));
    assert!(out.status.success(), "{out:?}");
    open(&work.path().join("by-the-host-test"));
    let events = agent.sync();
    let got: Vec<&str> = hits(&events, "ns-pids")
        .iter()
        .map(|e| filename(e))
        .collect();
    assert_eq!(got, [format!("{d}/by-pid-1")]);
    let e = hits(&events, "ns-pids")[0];
    assert_ne!(e["process"]["pid"], 1, "the event names the host pid");
    assert_eq!(e["process"]["binary"], integration::real("/bin/sh"));
}

/// In a child forked from this process: clears `drop` (a capability number) from the
/// effective set, or from the bounding set with `bounding`, then opens `path` (or, with
/// `exec`, runs `/bin/cat path`), and ends. Returns the child's pid once it has ended.
fn child_with_caps(drop: Option<u32>, bounding: bool, path: &str, exec: bool) -> u32 {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let path = CString::new(path).expect("a path without NUL");
    let cat = c"/bin/cat";
    let argv = [cat.as_ptr(), path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    // SAFETY: the child makes raw syscalls only (no allocation, no locks), on memory
    // prepared before the fork, then ends with `_exit`; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            if let Some(cap) = drop {
                if bounding {
                    libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0);
                } else {
                    let mut h = Header {
                        version: 0x2008_0522,
                        pid: 0,
                    };
                    let mut d = [Data::default(); 2];
                    libc::syscall(libc::SYS_capget, &raw mut h, d.as_mut_ptr());
                    d[(cap / 32) as usize].effective &= !(1 << (cap % 32));
                    libc::syscall(libc::SYS_capset, &raw mut h, d.as_ptr());
                }
            }
            if exec {
                libc::execve(cat.as_ptr(), argv.as_ptr(), envp.as_ptr());
            } else {
                libc::close(libc::open(path.as_ptr(), libc::O_RDONLY));
            }
            libc::_exit(0);
        }
        let mut status = 0;
        libc::waitpid(pid, &raw mut status, 0);
        pid as u32
    }
}

/// `matchCapabilityChanges` (`fd_install_cap_changes.yaml`'s selector, on a tracepoint
/// this kernel runs): a change of the effective set since the process's exec. `In`
/// holds for a process that dropped `CAP_NET_RAW` since; `NotIn` for one that dropped
/// another capability and kept `CAP_NET_RAW`; neither for one whose capabilities are as
/// at its exec: this test (running before the agent: its capabilities are taken from
/// /proc at start), a child that changed nothing, and a `cat` whose exec came after its
/// bounding set lost `CAP_NET_RAW` (its exec is the new reference, not its parent's).
#[test]
fn match_capability_changes() {
    if !privileged("match_capability_changes") {
        return;
    }
    const CAP_SYS_TIME: u32 = 25;
    const CAP_NET_RAW: u32 = 13;
    let work = tempdir();
    let d = work.path().to_str().unwrap().to_owned();
    let selectors = |op: &str| {
        format!(
            r#"    - matchCapabilityChanges:
      - type: Effective
        operator: {op}
        values: [CAP_NET_RAW]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
"#
        )
    };
    let changed_in = write(
        work.path(),
        "in.yaml",
        &openat_policy("cap-change-in", &selectors("In"), ""),
    );
    let changed_not_in = write(
        work.path(),
        "notin.yaml",
        &openat_policy("cap-change-notin", &selectors("NotIn"), ""),
    );
    let agent = Agent::start(&[
        "--tracing-policy",
        changed_in.to_str().unwrap(),
        "--tracing-policy",
        changed_not_in.to_str().unwrap(),
    ]);
    open(&work.path().join("unchanged-test"));
    let dropped_raw = child_with_caps(Some(CAP_NET_RAW), false, &format!("{d}/dropped-raw"), false);
    let dropped_time = child_with_caps(
        Some(CAP_SYS_TIME),
        false,
        &format!("{d}/dropped-time"),
        false,
    );
    let unchanged = child_with_caps(None, false, &format!("{d}/unchanged-child"), false);
    let exec_reset = child_with_caps(Some(CAP_NET_RAW), true, &format!("{d}/exec-reset"), true);
    let events = agent.sync();
    let got = |policy: &str| -> Vec<(String, u64)> {
        hits(&events, policy)
            .iter()
            .map(|e| {
                (
                    filename(e).rsplit('/').next().unwrap().to_owned(),
                    e["process"]["pid"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        got("cap-change-in"),
        [("dropped-raw".to_owned(), u64::from(dropped_raw))],
        "unchanged: this test, {unchanged}, {exec_reset}"
    );
    assert_eq!(
        got("cap-change-notin"),
        [("dropped-time".to_owned(), u64::from(dropped_time))],
        "unchanged: this test, {unchanged}, {exec_reset}"
    );
}

/// `isNamespaceCapability`: the capability filter holds only for a process in a user
/// namespace other than the host's. Root in a new user namespace has CAP_SYS_ADMIN
/// there and matches; this test, root on the host with the same capability, does not.
#[test]
fn namespace_capabilities() {
    if !privileged("namespace_capabilities") {
        return;
    }
    let work = tempdir();
    let d = work.path().to_str().unwrap().to_owned();
    let selectors = format!(
        r#"    - matchCapabilities:
      - type: Effective
        operator: In
        isNamespaceCapability: true
        values: [CAP_SYS_ADMIN]
      matchArgs:
      - index: 6
        operator: Prefix
        values: ["{d}/"]
"#
    );
    let pol = write(
        work.path(),
        "p.yaml",
        &openat_policy("ns-caps", &selectors, ""),
    );
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    let (_, out) = run(Command::new("unshare")
        .args(["--user", "--map-root-user", "/bin/sh", "-c"])
        .arg(format!("echo > '{d}/in-a-user-namespace'")));
    assert!(out.status.success(), "{out:?}");
    open(&work.path().join("on-the-host"));
    let events = agent.sync();
    let got: Vec<&str> = hits(&events, "ns-caps")
        .iter()
        .map(|e| filename(e))
        .collect();
    assert_eq!(got, [format!("{d}/in-a-user-namespace")]);
}

/// Kprobes on syscalls in Tetragon's form (`call: sys_openat`, `syscall: true`, the
/// function's own argument numbers), as teams write them: on this kernel without kprobes
/// they run on the syscall's tracepoint, and the events are `process_kprobe` with the
/// wrapper's name, as on a kprobe (`vm.rs` runs the same on real kprobes).
#[test]
fn syscall_kprobes_in_tetragons_form() {
    if !privileged("syscall_kprobes_in_tetragons_form") {
        return;
    }
    // Its getpgid call would count in `syscall_hooks`.
    let _one_at_a_time = SYSCALL_HOOKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let work = tempdir();
    let dir = work.path().to_str().expect("utf-8 temp dir").to_owned();
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: "syscall-kprobes"
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    - index: 2
      type: "int"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "{dir}/kill"
      matchActions:
      - action: Sigkill
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "{dir}/watched"
  - call: "sys_getpgid"
    syscall: true
    args:
    - index: 0
      type: "int"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Equal"
        values:
        - "424245"
"#
    );
    let pol = write(work.path(), "kprobes.yaml", &policy);
    // Written before the policy runs: opening it kills.
    fs::write(work.path().join("kill-me"), "secret").expect("write");
    let agent = Agent::start(&["--tracing-policy", pol.to_str().expect("utf-8 path")]);
    let has_kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    for call in ["__x64_sys_openat", "__x64_sys_getpgid"] {
        let expected = if has_kprobes {
            format!("policy syscall-kprobes: kprobe {call} runs on a kprobe")
        } else {
            let event = call.replace("__x64_sys_", "sys_enter_");
            format!(
                "policy syscall-kprobes: kprobe {call} runs on the tracepoint syscalls/{event} (this kernel has no kprobes)"
            )
        };
        agent.wait_for_log(&expected);
    }
    open(&work.path().join("watched-1"));
    open(&work.path().join("other"));
    fs::write(work.path().join("watched-2"), "x").expect("write");
    // Killed at the open, before it reads anything.
    let (victim, out) = run(Command::new("/bin/cat").arg(work.path().join("kill-me")));
    // SAFETY: getpgid of a pid that does not exist: fails with ESRCH, touches nothing.
    assert_eq!(unsafe { libc::getpgid(424245) }, -1);
    let events = agent.sync();
    assert!(out.stdout.is_empty(), "cat was killed before it read");

    let kprobes: Vec<&Value> = of_kind(&events, "process_kprobe")
        .into_iter()
        .filter(|e| e["policy_name"] == "syscall-kprobes")
        .collect();
    let opens: Vec<&Value> = kprobes
        .iter()
        .copied()
        .filter(|e| e["function_name"] == "__x64_sys_openat")
        .collect();
    assert_eq!(opens.len(), 3, "{opens:#?}");
    assert_eq!(
        opens[0]["args"][0]["string_arg"],
        format!("{dir}/watched-1")
    );
    assert_eq!(
        opens[0]["args"][1]["int_arg"],
        libc::O_RDONLY | libc::O_CLOEXEC
    );
    assert_eq!(
        opens[1]["args"][0]["string_arg"],
        format!("{dir}/watched-2")
    );
    assert_eq!(
        opens[1]["args"][1]["int_arg"],
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC
    );
    assert_eq!(opens[0]["process"]["pid"], std::process::id());
    assert_eq!(opens[0]["action"], "KPROBE_ACTION_POST");
    // cat's open, killed.
    assert_eq!(opens[2]["args"][0]["string_arg"], format!("{dir}/kill-me"));
    assert_eq!(opens[2]["process"]["pid"], victim);
    assert_eq!(opens[2]["action"], "KPROBE_ACTION_SIGKILL");
    assert_eq!(
        exit_of(&events, victim).expect("the victim's exit")["signal"],
        "SIGKILL"
    );
    let pgid: Vec<&Value> = kprobes
        .iter()
        .copied()
        .filter(|e| e["function_name"] == "__x64_sys_getpgid")
        .collect();
    assert_eq!(pgid.len(), 1, "{pgid:#?}");
    assert_eq!(pgid[0]["process"]["pid"], std::process::id());
    assert_eq!(pgid[0]["args"][0]["int_arg"], 424245);
    let (_, _, stderr) = agent.stop();
    let (seen, matched, posted) = counters(&stderr, "syscall-kprobes");
    assert_eq!((matched, posted), (4, 4));
    assert!(
        seen > matched,
        "the other opens were seen and left in the kernel: {seen}"
    );
}

/// A return probe in Tetragon's form: `return: true`, `returnArg`, and `matchReturnArgs`
/// with a `matchArgs` on the entry's arguments: only the opens that fail with ENOENT
/// under one directory are posted, with the path from the entry and the return value.
/// (On this kernel the halves run on `sys_enter_openat` and `sys_exit_openat`; `vm.rs`
/// runs the same on a kprobe and a kretprobe.)
#[test]
fn return_probes_with_match_return_args() {
    if !privileged("return_probes_with_match_return_args") {
        return;
    }
    let work = tempdir();
    let dir = work.path().to_str().expect("utf-8 temp dir").to_owned();
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: "failed-opens"
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    return: true
    args:
    - index: 1
      type: "string"
    - index: 2
      type: "int"
    returnArg:
      index: 0
      type: "int"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "{dir}/"
      matchReturnArgs:
      - index: 0
        operator: "Equal"
        values:
        - "-2"
"#
    );
    let pol = write(work.path(), "ret.yaml", &policy);
    // Two policies on the same function's entry, one loaded before the return probe and
    // one after: all three share its hook point (the kernel runs a program once per
    // tracepoint), and each still gets its own events.
    let plain = |name: &str, op: &str, value: &str| {
        format!(
            r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: "{name}"
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    selectors:
    - matchArgs:
      - index: 1
        operator: "{op}"
        values:
        - "{value}"
"#
        )
    };
    // (Written outside /tmp: the gate reads a path's first 8 bytes, so that the agent's
    // own open of a file under /tmp/tracer-… could pass it.)
    let files = tempfile::Builder::new()
        .prefix("tracer-policy-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir");
    let before = write(
        files.path(),
        "before.yaml",
        &plain("opens-there", "Prefix", &format!("{dir}/there")),
    );
    let after = write(
        files.path(),
        "after.yaml",
        &plain("opens-missing-2", "Equal", &format!("{dir}/missing-2")),
    );
    fs::write(work.path().join("there"), "x").expect("write");
    let agent = Agent::start(&[
        "--tracing-policy",
        before.to_str().expect("utf-8 path"),
        "--tracing-policy",
        pol.to_str().expect("utf-8 path"),
        "--tracing-policy",
        after.to_str().expect("utf-8 path"),
    ]);
    let has_kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    agent.wait_for_log(if has_kprobes {
        "policy failed-opens: the return of kprobe __x64_sys_openat runs on a kretprobe"
    } else {
        "policy failed-opens: the return of kprobe __x64_sys_openat runs on the tracepoint syscalls/sys_exit_openat"
    });
    open(&work.path().join("there"));
    open(&work.path().join("missing-1"));
    open(Path::new("/nonexistent/elsewhere"));
    open(&work.path().join("missing-2"));
    let events = agent.sync();
    let hits: Vec<&Value> = of_kind(&events, "process_kprobe")
        .into_iter()
        .filter(|e| e["policy_name"] == "failed-opens")
        .collect();
    let got: Vec<(&str, &Value)> = hits
        .iter()
        .map(|e| {
            (
                e["args"][0]["string_arg"].as_str().unwrap_or_default(),
                &e["return"],
            )
        })
        .collect();
    let enoent = serde_json::json!({ "int_arg": -2 });
    assert_eq!(
        got,
        [
            (format!("{dir}/missing-1").as_str(), &enoent),
            (format!("{dir}/missing-2").as_str(), &enoent)
        ],
        "{hits:#?}"
    );
    for e in &hits {
        assert_eq!(e["function_name"], "__x64_sys_openat");
        assert_eq!(
            e["args"].as_array().map(Vec::len),
            Some(2),
            "the return is not an argument"
        );
        assert_eq!(e["args"][1]["int_arg"], libc::O_RDONLY | libc::O_CLOEXEC);
        assert_eq!(e["process"]["pid"], std::process::id());
    }
    for (name, file) in [("opens-there", "there"), ("opens-missing-2", "missing-2")] {
        let got: Vec<&str> = of_kind(&events, "process_kprobe")
            .into_iter()
            .filter(|e| e["policy_name"] == name)
            .map(|e| e["args"][0]["string_arg"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(got, [format!("{dir}/{file}")], "{name}");
    }
    let (_, _, stderr) = agent.stop();
    let (seen, matched, posted) = counters(&stderr, "failed-opens");
    assert_eq!((matched, posted), (2, 2));
    // The hook point's argument gate (the filename's prefix, or the return value) lets
    // through only the returns that can match: the three opens in the directory at
    // most, not the one elsewhere, nor any other process's.
    assert!((2..=3).contains(&seen), "{seen}");
}

/// `char_buf` with `sizeArgIndex` (the bytes a `write` was given, as many as its count
/// says, NULs included) and with `returnCopy` (the bytes a `read` got, read at the return,
/// as many as it returned): `bytes_arg` in base64, `truncated_bytes_arg` past 255 bytes,
/// and `Prefix` on the bytes in the kernel.
#[test]
fn char_buf_with_size_and_return_copy() {
    use base64::Engine as _;
    if !privileged("char_buf_with_size_and_return_copy") {
        return;
    }
    let work = tempdir();
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [rd, wr] = fds;
    let me = std::process::id();
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: buffers
spec:
  kprobes:
  - call: sys_write
    syscall: true
    args:
    - index: 0
      type: fd
    - index: 1
      type: char_buf
      sizeArgIndex: 3
    - index: 2
      type: size_t
    selectors:
    - matchPIDs:
      - operator: In
        values: [{me}]
      matchArgs:
      - index: 0
        operator: Equal
        values: ["{wr}"]
      - index: 1
        operator: Prefix
        values: ["a", "xx"]
  - call: sys_writev
    syscall: true
    args:
    - index: 0
      type: fd
    - index: 1
      type: char_iovec
      sizeArgIndex: 3
    selectors:
    - matchPIDs:
      - operator: In
        values: [{me}]
      matchArgs:
      - index: 0
        operator: Equal
        values: ["{wr}"]
  - call: sys_read
    syscall: true
    return: true
    args:
    - index: 0
      type: fd
    - index: 1
      type: char_buf
      returnCopy: true
    returnArg:
      index: 0
      type: int
    selectors:
    - matchPIDs:
      - operator: In
        values: [{me}]
      matchArgs:
      - index: 0
        operator: Equal
        values: ["{rd}"]
"#
    );
    let pol = write(work.path(), "buffers.yaml", &policy);
    let agent = Agent::start(&["--tracing-policy", pol.to_str().expect("utf-8 path")]);
    agent.wait_for_log("policy buffers loaded");
    let put = |bytes: &[u8]| {
        // SAFETY: writes `bytes` to the pipe, which has room for them all.
        let n = unsafe { libc::write(wr, bytes.as_ptr().cast(), bytes.len()) };
        assert_eq!(n, bytes.len() as isize);
    };
    let first = b"a\0b\xff";
    put(first);
    let mut buf = [0u8; 64];
    // SAFETY: reads at most 64 bytes into `buf`.
    let got = unsafe { libc::read(rd, buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(got, 4);
    put(b"zzz"); // not a Prefix of the policy
    let long = vec![b'x'; 300];
    put(&long);
    // Gathered writes: three buffers (one empty), then two of 200 bytes.
    let writev = |bufs: &[&[u8]]| {
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: `iov` describes buffers that live across the call.
        let n = unsafe { libc::writev(wr, iov.as_ptr(), iov.len() as i32) };
        assert_eq!(n as usize, bufs.iter().map(|b| b.len()).sum::<usize>());
    };
    writev(&[b"ab", b"", b"c\0d"]);
    let (y, z) = (vec![b'y'; 200], vec![b'z'; 200]);
    writev(&[&y, &z]);
    let events = agent.sync();
    // SAFETY: the pipe's two descriptors, closed once.
    unsafe {
        libc::close(rd);
        libc::close(wr);
    }
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    // The policy's events of one syscall.
    let calls = |function: &str| -> Vec<&Value> {
        of_kind(&events, "process_kprobe")
            .into_iter()
            .filter(|e| e["policy_name"] == "buffers" && e["function_name"] == function)
            .collect()
    };
    let writes = calls("__x64_sys_write");
    assert_eq!(writes.len(), 2, "{writes:#?}");
    assert_eq!(writes[0]["args"][0]["int_arg"], wr);
    assert_eq!(
        writes[0]["args"][1],
        serde_json::json!({ "bytes_arg": b64(first) })
    );
    assert_eq!(writes[0]["args"][2]["size_arg"], "4");
    assert_eq!(
        writes[1]["args"][1],
        serde_json::json!({ "truncated_bytes_arg": { "bytes_arg": b64(&long[..255]), "orig_size": "300" } })
    );
    assert_eq!(writes[1]["args"][2]["size_arg"], "300");
    let reads = calls("__x64_sys_read");
    assert_eq!(reads.len(), 1, "{reads:#?}");
    assert_eq!(reads[0]["args"][0]["int_arg"], rd);
    assert_eq!(
        reads[0]["args"][1],
        serde_json::json!({ "bytes_arg": b64(first) })
    );
    assert_eq!(reads[0]["return"]["int_arg"], 4);
    let writevs = calls("__x64_sys_writev");
    assert_eq!(writevs.len(), 2, "{writevs:#?}");
    assert_eq!(
        writevs[0]["args"][1],
        serde_json::json!({ "bytes_arg": b64(b"abc\0d") })
    );
    let mut kept = y.clone();
    kept.extend_from_slice(&z[..55]);
    assert_eq!(
        writevs[1]["args"][1],
        serde_json::json!({ "truncated_bytes_arg": { "bytes_arg": b64(&kept), "orig_size": "400" } })
    );
    for e in writes.iter().chain(&reads).chain(&writevs) {
        assert_eq!(e["process"]["pid"], me);
    }
}

#[test]
fn a_policy_with_a_hook_that_cannot_attach_runs_partly() {
    if !privileged("a_policy_with_a_hook_that_cannot_attach_runs_partly") {
        return;
    }
    let work = tempdir();
    let d = work.path().to_str().expect("utf-8").to_owned();
    let selectors = format!(
        r#"    - matchArgs:
      - index: 6
        operator: Equal
        values: ["{d}/partly"]
  # ftrace events take no BPF program: the kernel refuses this hook.
  - subsystem: ftrace
    event: print
  # No such tracepoint on any kernel: this hook cannot be placed.
  - subsystem: syscalls
    event: sys_enter_no_such_call
"#
    );
    let pol = write(
        work.path(),
        "p.yaml",
        &openat_policy("partly", &selectors, ""),
    );
    // A policy none of whose hooks can run here is refused, saying so for each (with
    // `--tracing-policy-optional` the agent starts without it).
    let none = write(
        work.path(),
        "none.yaml",
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: none-here\nspec:\n  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_no_such_call\n",
    );
    let agent = Agent::start(&[
        "--tracing-policy",
        pol.to_str().expect("utf-8"),
        "--tracing-policy",
        none.to_str().expect("utf-8"),
        "--tracing-policy-optional",
    ]);
    open(&work.path().join("partly"));
    let events = agent.sync();
    let got: Vec<&str> = hits(&events, "partly")
        .iter()
        .map(|e| filename(e))
        .collect();
    assert_eq!(got, [format!("{d}/partly")], "the hook that attached runs");
    let (status, _, stderr) = agent.stop();
    assert!(status.success());
    assert!(
        stderr.contains(
            "policy partly: ftrace/print is not running: attaching to tracepoint ftrace/print"
        ) && stderr.contains("policy partly: syscalls/sys_enter_no_such_call is not running: ")
            && stderr.contains("policy partly partly loaded from ")
            && stderr.contains("2 of its hooks are not running")
            && stderr.contains("policy none-here: none of its hooks can run here: syscalls/sys_enter_no_such_call: tracepoint syscalls/sys_enter_no_such_call does not exist on this kernel"),
        "{stderr}"
    );
}

/// `kernelStackTrace` and `userStackTrace` on `Post`, on `task/task_rename`, triggered
/// by a thread of this process naming itself (`prctl(PR_SET_NAME)`): the kernel stack
/// has the syscall's way in, the user stack libc's `prctl` (this process is still there
/// when the agent reads its mappings), and with `--expose-stack-addresses` every entry
/// its address.
#[test]
fn kernel_and_user_stack_traces() {
    if !privileged("kernel_and_user_stack_traces") {
        return;
    }
    let work = tempdir();
    let pol = write(
        work.path(),
        "stacks.yaml",
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: stacks
spec:
  tracepoints:
  - subsystem: task
    event: task_rename
    args:
    - index: 6
      type: string
    selectors:
    - matchArgs:
      - index: 6
        operator: Equal
        values: ["stack-marker"]
      matchActions:
      - action: Post
        kernelStackTrace: true
        userStackTrace: true
"#,
    );
    let agent = Agent::start(&[
        "--tracing-policy",
        pol.to_str().unwrap(),
        "--expose-stack-addresses",
    ]);
    std::thread::spawn(|| {
        // SAFETY: PR_SET_NAME with a NUL-terminated name of under 16 bytes.
        let rc = unsafe { libc::prctl(libc::PR_SET_NAME, c"stack-marker".as_ptr()) };
        assert_eq!(rc, 0);
    })
    .join()
    .unwrap();
    let events = agent.sync();
    let got = hits(&events, "stacks");
    assert_eq!(got.len(), 1, "{got:#?}");
    let e = got[0];
    assert_eq!(e["process"]["pid"], std::process::id());
    assert_eq!(e["args"][0]["string_arg"], "stack-marker");
    let entries = |key: &str| -> Vec<&Value> {
        e[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}: {e:#}"))
            .iter()
            .collect()
    };
    let kernel = entries("kernel_stack_trace");
    let symbols: Vec<&str> = kernel
        .iter()
        .map(|f| f["symbol"].as_str().unwrap_or_default())
        .collect();
    assert!(symbols.contains(&"do_syscall_64"), "{symbols:?}");
    assert!(
        symbols.iter().any(|s| s.starts_with("entry_SYSCALL_64")),
        "{symbols:?}"
    );
    for f in &kernel {
        let address: u64 = f["address"].as_str().unwrap().parse().unwrap();
        assert!(address >= 0xffff_8000_0000_0000, "a kernel address: {f}");
        assert!(f.get("module").is_none(), "{f}");
    }
    let user = entries("user_stack_trace");
    let prctl = user
        .iter()
        .find(|f| f["symbol"].as_str().is_some_and(|s| s.contains("prctl")))
        .unwrap_or_else(|| panic!("libc's prctl in the user stack: {user:#?}"));
    let module = prctl["module"].as_str().unwrap();
    assert!(module.ends_with("/libc.so.6"), "{prctl}");
    assert!(prctl["offset"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    let address: u64 = prctl["address"].as_str().unwrap().parse().unwrap();
    assert!(address < 0x8000_0000_0000, "a user address: {prctl}");
    let (_, _, stderr) = agent.stop();
    assert!(!stderr.contains("without its"), "no stack lost:\n{stderr}");
}
