//! Kprobe policies on `tcp_connect` and `tcp_close`, with socket arguments and the socket
//! operators, run as root against real connections on loopback. On a kernel without
//! kprobes (this CI's) they run on the `sock:inet_sock_set_state` tracepoint; the events
//! are `process_kprobe`, field by field.

use std::{
    fs,
    net::{Ipv6Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
};

use integration::{Agent, exit_of, of_kind, privileged, run};
use serde_json::Value;

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("policy.yaml");
    fs::write(&p, text).expect("write policy");
    p
}

/// `process_kprobe` events of policy `name` and function `call`.
fn hits<'a>(events: &'a [Value], name: &str, call: &str) -> Vec<&'a Value> {
    of_kind(events, "process_kprobe")
        .into_iter()
        .filter(|e| e["policy_name"] == name && e["function_name"] == call)
        .collect()
}

fn sock(e: &Value) -> &Value {
    &e["args"][0]["sock_arg"]
}

/// The counters line of policy `name` at stop: (seen, matched, posted).
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

/// A port nothing listens on.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn connects_and_closes_on_loopback() {
    if !privileged("connects_and_closes_on_loopback") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let (p4, p6, po) = (
        v4.local_addr().unwrap().port(),
        v6.local_addr().unwrap().port(),
        other.local_addr().unwrap().port(),
    );
    let refused = free_port();
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: connect
spec:
  kprobes:
  - call: tcp_connect
    syscall: false
    message: "outgoing connection"
    tags: ["observability.network"]
    args:
    - index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: DAddr
        values: ["127.0.0.0/8", "::1"]
      - index: 0
        operator: DPort
        values: ["{p4}", "{p6}", "{refused}"]
  - call: tcp_close
    syscall: false
    args:
    - index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: DPort
        values: ["{p4}", "{p6}"]
      - index: 0
        operator: Family
        values: [AF_INET, AF_INET6]
"#
    );
    let pol = write(work.path(), &policy);
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    agent.wait_for_log(
        "policy connect: kprobe tcp_connect runs on the tracepoint sock/inet_sock_set_state",
    );

    let c4 = TcpStream::connect(("127.0.0.1", p4)).unwrap();
    let local4 = c4.local_addr().unwrap().port();
    let (a4, _) = v4.accept().unwrap();
    drop(c4); // active close of an established socket
    drop(a4);
    let c6 = TcpStream::connect((Ipv6Addr::LOCALHOST, p6)).unwrap();
    let local6 = c6.local_addr().unwrap().port();
    drop(c6);
    // Not in DPort: neither its connect nor its close.
    drop(TcpStream::connect(("127.0.0.1", po)).unwrap());
    // Refused: the connect is an event.
    assert!(TcpStream::connect(("127.0.0.1", refused)).is_err());
    let events = agent.sync();
    let me = std::process::id();

    let connects = hits(&events, "connect", "tcp_connect");
    let dports: Vec<u64> = connects
        .iter()
        .map(|e| sock(e)["dport"].as_u64().unwrap())
        .collect();
    assert_eq!(
        dports,
        [u64::from(p4), u64::from(p6), u64::from(refused)],
        "{connects:#?}"
    );
    let c = connects[0];
    assert_eq!(c["process"]["pid"], me);
    assert_eq!(c["message"], "outgoing connection");
    assert_eq!(c["tags"][0], "observability.network");
    assert_eq!(c["action"], "KPROBE_ACTION_POST");
    assert!(c["parent"]["pid"].is_u64());
    let s = sock(c);
    assert_eq!(s["family"], "AF_INET");
    assert_eq!(s["type"], "SOCK_STREAM");
    assert_eq!(s["protocol"], "IPPROTO_TCP");
    assert_eq!(s["saddr"], "127.0.0.1");
    assert_eq!(s["daddr"], "127.0.0.1");
    assert_eq!(s["state"], "TCP_SYN_SENT");
    assert!(s["cookie"].as_str().unwrap().parse::<u64>().unwrap() != 0);
    let s6 = sock(connects[1]);
    assert_eq!(s6["family"], "AF_INET6");
    assert_eq!(s6["daddr"], "::1");
    assert_eq!(s6["saddr"], "::1");

    // Closes: the client's of each connection, with its source port now, tied to its
    // connect by the cookie.
    let closes = hits(&events, "connect", "tcp_close");
    assert_eq!(closes.len(), 2, "{closes:#?}");
    let close4 = closes
        .iter()
        .find(|e| sock(e)["family"] == "AF_INET")
        .unwrap();
    assert_eq!(sock(close4)["sport"], local4);
    assert_eq!(sock(close4)["dport"], p4);
    assert_eq!(sock(close4)["state"], "TCP_ESTABLISHED");
    assert_eq!(sock(close4)["cookie"], s["cookie"]);
    assert_eq!(close4["process"]["pid"], me);
    let close6 = closes
        .iter()
        .find(|e| sock(e)["family"] == "AF_INET6")
        .unwrap();
    assert_eq!(sock(close6)["sport"], local6);
    assert_eq!(sock(close6)["cookie"], s6["cookie"]);

    let (_, _, stderr) = agent.stop();
    let (seen, matched, posted) = counters(&stderr, "connect");
    assert_eq!((matched, posted), (5, 5));
    assert!(
        seen > posted,
        "the other connection was seen and not posted: {seen}"
    );
}

/// `NotDAddr` with `Sigkill`: the process that connects outside the ranges is killed in
/// the kernel; one that connects inside them is not (Tetragon's
/// `tcp-connect-only-private-addrs` policy, turned around to fit loopback).
#[test]
fn sigkill_on_a_connect_outside_the_ranges() {
    if !privileged("sigkill_on_a_connect_outside_the_ranges") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    // On every address, so that 127.0.0.2 reaches it too.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: only-high-loopback
spec:
  kprobes:
  - call: tcp_connect
    syscall: false
    args:
    - index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: NotDAddr
        values: ["10.0.0.0/8", "127.0.0.2/32"]
      - index: 0
        operator: DPort
        values: ["{port}"]
      matchBinaries:
      - operator: In
        values: ["{bash}"]
      matchActions:
      - action: Sigkill
"#,
        bash = integration::real("/bin/bash")
    );
    let pol = write(work.path(), &policy);
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    // 127.0.0.1 is outside the ranges: killed at connect.
    let (killed, out) = run(Command::new("/bin/bash").arg("-c").arg(format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"
    )));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("connected"),
        "{out:?}"
    );
    // 127.0.0.2 is inside (loopback answers on all of 127/8): it connects.
    let (spared, out) = run(Command::new("/bin/bash").arg("-c").arg(format!(
        "exec 3<>/dev/tcp/127.0.0.2/{port} && echo connected"
    )));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("connected"),
        "{out:?}"
    );
    let events = agent.sync();
    let hit = hits(&events, "only-high-loopback", "tcp_connect");
    assert_eq!(hit.len(), 1, "{hit:#?}");
    assert_eq!(hit[0]["process"]["pid"], killed);
    assert_eq!(hit[0]["action"], "KPROBE_ACTION_SIGKILL");
    assert_eq!(sock(hit[0])["daddr"], "127.0.0.1");
    assert_eq!(exit_of(&events, killed).unwrap()["signal"], "SIGKILL");
    assert!(exit_of(&events, spared).unwrap().get("signal").is_none());
}
