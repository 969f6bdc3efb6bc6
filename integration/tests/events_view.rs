//! `tracer events`, the view of the event stream for people: the built binary reading a
//! file, stdin, and following an export file while it is appended to and rotated.
//! Needs no privileges.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use integration::tracer_bin;

fn tracer() -> Command {
    let mut cmd = Command::new(tracer_bin());
    cmd.env_remove("NO_COLOR");
    cmd
}

/// Events of every kind, as the agent writes them.
const EVENTS: &[&str] = &[
    r#"{"process_exec":{"process":{"exec_id":"bm9kZTE6MTAwOjQy","pid":42,"uid":0,"cwd":"/","binary":"/usr/bin/curl","arguments":"-s https://example.com","flags":"execve rootcwd","start_time":"2026-11-24T15:45:34.483511790Z","auid":4294967295,"parent_exec_id":"bm9kZTE6OTA6NDE=","tid":42,"process_credentials":{"uid":0,"gid":0,"euid":0,"egid":0},"cgroup_id":"1234","docker":"4c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8","pod":{"namespace":"shop","name":"web-7d9f-abcde","uid":"u1","container":{"id":"containerd://4c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8a","name":"main","pid":1},"pod_labels":{"app":"web"},"workload":"web","workload_kind":"Deployment"}},"parent":{"exec_id":"bm9kZTE6OTA6NDE=","pid":41,"uid":0,"binary":"/bin/sh","start_time":"2026-11-24T15:45:34.000000000Z","auid":4294967295,"tid":41,"process_credentials":{"uid":0,"gid":0,"euid":0,"egid":0}}},"node_name":"node1","time":"2026-11-24T15:45:34.483511790Z","seq":"1"}"#,
    r#"{"process_kprobe":{"process":{"exec_id":"bm9kZTE6MTAwOjQy","pid":42,"uid":0,"binary":"/usr/bin/curl","arguments":"-s https://example.com","start_time":"2026-11-24T15:45:34.483511790Z","auid":4294967295,"tid":42,"process_credentials":{"uid":0,"gid":0,"euid":0,"egid":0},"docker":"4c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8","pod":{"namespace":"shop","name":"web-7d9f-abcde","uid":"u1","container":{"id":"containerd://4c3e","name":"main"},"workload":"web","workload_kind":"Deployment"}},"function_name":"tcp_connect","args":[{"sock_arg":{"family":"AF_INET","type":"SOCK_STREAM","protocol":"IPPROTO_TCP","saddr":"10.0.0.5","daddr":"93.184.216.34","sport":41000,"dport":443,"cookie":"18446612686475858560","state":"TCP_SYN_SENT"}}],"action":"KPROBE_ACTION_POST","policy_name":"network-egress","message":"connection outside the private ranges","tags":["observability.network"]},"node_name":"node1","time":"2026-11-24T15:45:34.500000000Z","seq":"2"}"#,
    r#"{"process_tracepoint":{"process":{"exec_id":"bm9kZTE6MjAwOjUw","pid":50,"uid":1000,"binary":"/usr/bin/cat","arguments":"/etc/shadow","start_time":"2026-11-24T15:45:35.000000000Z","auid":1000,"tid":50,"process_credentials":{"uid":1000,"gid":1000,"euid":1000,"egid":1000},"host":true},"subsys":"syscalls","event":"sys_enter_openat","args":[{"int_arg":-100},{"string_arg":"/etc/shadow"},{"int_arg":0}],"policy_name":"sensitive-files","action":"KPROBE_ACTION_POST","message":"opened a sensitive file","tags":["credentials"]},"node_name":"node1","time":"2026-11-24T15:45:35.100000000Z","seq":"3"}"#,
    r#"{"process_kprobe":{"process":{"exec_id":"bm9kZTE6MjAwOjUw","pid":50,"uid":1000,"binary":"/usr/bin/cat","arguments":"/etc/missing","start_time":"2026-11-24T15:45:35.000000000Z","auid":1000,"tid":50,"process_credentials":{"uid":1000,"gid":1000,"euid":1000,"egid":1000},"host":true},"function_name":"__x64_sys_openat","args":[{"string_arg":"/etc/missing"}],"return":{"int_arg":-2},"action":"KPROBE_ACTION_SIGKILL","policy_name":"open-missing","policy_mode":"monitor"},"node_name":"node1","time":"2026-11-24T15:45:35.200000000Z","seq":"4"}"#,
    r#"{"process_exit":{"process":{"exec_id":"bm9kZTE6MTAwOjQy","pid":42,"uid":0,"binary":"/usr/bin/curl","arguments":"-s https://example.com","start_time":"2026-11-24T15:45:34.483511790Z","auid":4294967295,"tid":42,"process_credentials":{"uid":0,"gid":0,"euid":0,"egid":0},"docker":"4c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8","pod":{"namespace":"shop","name":"web-7d9f-abcde","uid":"u1","container":{"id":"containerd://4c3e","name":"main"},"workload":"web","workload_kind":"Deployment"}},"signal":"SIGKILL","time":"2026-11-24T15:45:36.000000000Z"},"node_name":"node1","time":"2026-11-24T15:45:36.000000000Z","seq":"5"}"#,
    r#"{"event_loss":{"lost":{"exec":"3","tracepoint":"1"},"total_lost":"4"},"node_name":"node1","time":"2026-11-24T15:45:37.000000000Z","seq":"6"}"#,
    r#"{"process_exit":{"process":{"exec_id":"bm9kZTE6MjAwOjUw","pid":50,"uid":1000,"binary":"/usr/bin/cat","arguments":"/etc/missing","start_time":"2026-11-24T15:45:35.000000000Z","auid":1000,"tid":50,"process_credentials":{"uid":1000,"gid":1000,"euid":1000,"egid":1000},"host":true},"status":1,"time":"2026-11-24T15:45:38.000000000Z"},"node_name":"node1","time":"2026-11-24T15:45:38.000000000Z","seq":"7"}"#,
];

/// Their compact lines.
const COMPACT: &[&str] = &[
    "exec       shop/web-7d9f-abcde /usr/bin/curl -s https://example.com",
    "kprobe     shop/web-7d9f-abcde /usr/bin/curl -s https://example.com tcp_connect(tcp 10.0.0.5:41000 -> 93.184.216.34:443) policy=network-egress action=post",
    "tracepoint node1 /usr/bin/cat /etc/shadow syscalls/sys_enter_openat(-100, /etc/shadow, 0) policy=sensitive-files action=post",
    "kprobe     node1 /usr/bin/cat /etc/missing __x64_sys_openat(/etc/missing) = -2 policy=open-missing action=sigkill(monitor)",
    "exit       shop/web-7d9f-abcde /usr/bin/curl -s https://example.com signal=SIGKILL",
    "loss       node1 lost exec=3 tracepoint=1 total=4",
    "exit       node1 /usr/bin/cat /etc/missing status=1",
];

/// The events with the agent's own log line and a cut line between them.
fn input_with_bad_lines() -> String {
    let mut text = String::new();
    for (i, e) in EVENTS.iter().enumerate() {
        text.push_str(e);
        text.push('\n');
        if i == 1 {
            text.push_str("2026-11-24T15:45:34.483Z  INFO tracer: tracer ready\n");
        }
        if i == 4 {
            text.push_str(&e[..40]);
            text.push('\n');
        }
    }
    text
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.log");
    fs::write(&file, input_with_bad_lines()).unwrap();
    let out = tracer().arg("events").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    // Not a terminal: no colour.
    assert_eq!(stdout_of(&out), COMPACT.join("\n") + "\n");
    let name = file.display();
    let err = stderr_of(&out);
    let reports: Vec<&str> = err.lines().collect();
    assert_eq!(reports.len(), 2, "{err}");
    assert_eq!(
        reports[0],
        format!(
            "tracer events: {name}:3:5: not JSON (trailing characters), skipped: 2026-11-24T15:45:34.483Z  INFO tracer: tracer ready"
        )
    );
    assert!(
        reports[1].starts_with(&format!(
            "tracer events: {name}:7:40: not JSON (EOF while parsing"
        )),
        "{}",
        reports[1]
    );

    // Filters, ANDed; the values of one ORed.
    let out = tracer()
        .args(["events", "--namespace", "shop", "-e", "exec,kprobe"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(stdout_of(&out), format!("{}\n{}\n", COMPACT[0], COMPACT[1]));
    let out = tracer()
        .args(["events", "--host", "--binary", "cat$", "--policy-names"])
        .args(["sensitive-files", "--policy-names", "open-missing"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(stdout_of(&out), format!("{}\n{}\n", COMPACT[2], COMPACT[3]));
    let out = tracer()
        .args(["events", "--pod", "^web-", "--timestamps", "-e", "exit"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        stdout_of(&out),
        format!("2026-11-24T15:45:36.000000000Z {}\n", COMPACT[4])
    );
    // Colour when asked.
    let out = tracer()
        .args(["events", "--color", "always", "-e", "loss"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        stdout_of(&out),
        "\x1b[1;31mloss      \x1b[0m \x1b[36mnode1\x1b[0m \x1b[31mlost exec=3 tracepoint=1 total=4\x1b[0m\n"
    );
}

#[test]
fn reads_stdin_and_passes_json_through() {
    let input = input_with_bad_lines();
    let mut child = tracer()
        .args(["events", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), EVENTS.join("\n") + "\n", "byte for byte");
    assert!(
        stderr_of(&out).starts_with("tracer events: stdin:3:5: not JSON"),
        "{}",
        stderr_of(&out)
    );

    // `-` among files, in the order given; a gzipped backup as the agent compresses it.
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("events.log.1.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all((EVENTS[..2].join("\n") + "\n").as_bytes())
        .unwrap();
    fs::write(&gz, enc.finish().unwrap()).unwrap();
    let mut child = tracer()
        .args(["events", "-o", "json"])
        .arg(&gz)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all((EVENTS[2..].join("\n") + "\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), EVENTS.join("\n") + "\n");
    assert_eq!(stderr_of(&out), "");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let there = dir.path().join("events.log");
    fs::write(&there, EVENTS[0]).unwrap();
    let missing = dir.path().join("events.log.9");
    let out = tracer()
        .arg("events")
        .arg(&there)
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_of(&out), "", "nothing shown before the error");
    assert_eq!(
        stderr_of(&out),
        format!(
            "tracer events: cannot open {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    let out = tracer()
        .args(["events", "--follow"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains(&format!("cannot open {}", missing.display())),
        "{}",
        stderr_of(&out)
    );
    let out = tracer()
        .args(["events", "-e", "execs"])
        .arg(&there)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("`execs` is not an event type (did you mean exec?)"),
        "{}",
        stderr_of(&out)
    );
}

/// An exec event whose arguments name it.
fn event(name: &str) -> String {
    format!(
        r#"{{"process_exec":{{"process":{{"exec_id":"x","pid":1,"uid":0,"binary":"/bin/true","arguments":"{name}","start_time":"t"}}}},"node_name":"node1","time":"t"}}"#
    )
}

fn compact(name: &str) -> String {
    format!("exec       node1 /bin/true {name}")
}

fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the file to append to");
    f.write_all(text.as_bytes()).expect("append");
}

/// A running `tracer events --follow` and the lines it printed.
struct Following {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Following {
    /// Starts `tracer events --follow FILE ARGS` in `dir`.
    fn start(args: &[&str], file: &Path, dir: &Path) -> Self {
        let mut child = tracer()
            .args(["events", "--follow"])
            .arg(file)
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tracer events --follow");
        let out = child.stdout.take().expect("its stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Following {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to `wait` for a line; false when none came.
    fn take_one(&mut self, wait: Duration) -> bool {
        match self.lines.recv_timeout(wait) {
            Ok(l) => {
                self.seen.push(l);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits until `n` lines came, then a while longer for any line too many.
    fn wait_for(&mut self, n: usize) {
        let start = Instant::now();
        while self.seen.len() < n {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} of {n} lines after 30 s: {:#?}",
                self.seen.len(),
                self.seen
            );
            self.take_one(Duration::from_millis(100));
        }
        while self.take_one(Duration::from_millis(500)) {}
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn follows_a_file_appended_to_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.log");
    let rotate = |n: u64| {
        let backup = dir.path().join(format!("events.log.{n}"));
        fs::rename(&file, backup).unwrap();
    };
    append(&file, &format!("{}\n{}\n", event("old-1"), event("old-2")));
    // Named as `--export-filename events.log` names it, in the working directory.
    let mut f = Following::start(&["--color", "never"], Path::new("events.log"), dir.path());

    // It starts at the end: what was there is not shown. A line appended once it is
    // running is; until then, the lines appended count as being there before.
    let mut expected = Vec::new();
    for i in 0.. {
        let probe = format!("probe-{i}");
        append(&file, &(event(&probe) + "\n"));
        expected.push(compact(&probe));
        if f.take_one(Duration::from_secs(1)) {
            break;
        }
        assert!(i < 30, "the follower showed nothing of 30 lines appended");
    }
    let first = expected
        .iter()
        .position(|l| *l == f.seen[0])
        .unwrap_or_else(|| panic!("not a probe: {}", f.seen[0]));
    expected.drain(..first);

    let mut n = 0;
    let mut write = |count: usize, expected: &mut Vec<String>| {
        for _ in 0..count {
            n += 1;
            let name = format!("event-{n}");
            append(&file, &(event(&name) + "\n"));
            expected.push(compact(&name));
        }
    };
    // Appended in batches, one line in two halves.
    write(20, &mut expected);
    let half = event("split");
    append(&file, &half[..30]);
    thread::sleep(Duration::from_millis(300));
    append(&file, &(half[30..].to_owned() + "\n"));
    expected.push(compact("split"));
    write(20, &mut expected);
    f.wait_for(expected.len());
    // Rotated as the agent does it: renamed to events.log.1, a new events.log.
    write(5, &mut expected);
    rotate(1);
    write(20, &mut expected);
    f.wait_for(expected.len());
    // Twice between two looks (the follower stopped meanwhile), the last lines of each
    // written just before its rename: it goes through events.log.2 and .3, then the new
    // events.log.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(f.child.id()).expect("a pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("stop the follower");
    write(10, &mut expected);
    rotate(2);
    write(10, &mut expected);
    rotate(3);
    write(10, &mut expected);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("continue it");
    thread::sleep(Duration::from_millis(200));
    write(10, &mut expected);
    f.wait_for(expected.len());
    assert_eq!(f.seen, expected, "every event once, in order");

    // --from-start: the live file from its first line.
    let live: Vec<String> = expected[expected.len() - 20..].to_vec();
    let mut g = Following::start(&["--from-start", "--color", "never"], &file, dir.path());
    g.wait_for(live.len());
    assert_eq!(g.seen, live);
}
