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

/// Each socket operator, alone in its own policy (scoped to this process by
/// `matchPIDs`), on one connection to a listener on loopback: the policies that match
/// post exactly the events expected, the others none.
#[test]
fn every_socket_operator_matches_and_misses() {
    if !privileged("every_socket_operator_matches_and_misses") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = listener.local_addr().unwrap().port();
    let me = std::process::id();
    // (name, call, operator, values, events expected)
    // The client's connect: 127.0.0.1 to 127.0.0.1:p, SYN_SENT. The closes: the client's
    // (p is its destination, from ESTABLISHED), then the accepted socket's (p is its
    // source, from CLOSE_WAIT: the client closed first).
    let cases: &[(&str, &str, &str, &str, usize)] = &[
        ("saddr", "tcp_connect", "SAddr", "127.0.0.1", 1),
        ("saddr-miss", "tcp_connect", "SAddr", "10.0.0.0/8", 0),
        ("not-saddr", "tcp_connect", "NotSAddr", "127.0.0.0/8", 0),
        ("not-daddr", "tcp_connect", "NotDAddr", "10.0.0.0/8", 1),
        ("dport-priv", "tcp_connect", "DPortPriv", "", 0),
        ("not-dport-priv", "tcp_connect", "NotDPortPriv", "", 1),
        ("not-dport", "tcp_connect", "NotDPort", &p.to_string(), 0),
        ("protocol", "tcp_connect", "Protocol", "IPPROTO_TCP", 1),
        ("family", "tcp_connect", "Family", "AF_INET", 1),
        ("family-miss", "tcp_connect", "Family", "AF_INET6", 0),
        ("state", "tcp_connect", "State", "TCP_SYN_SENT", 1),
        ("state-miss", "tcp_connect", "State", "TCP_ESTABLISHED", 0),
        ("sport", "tcp_close", "SPort", &p.to_string(), 1),
        ("not-sport", "tcp_close", "NotSPort", &p.to_string(), 1),
        ("sport-priv", "tcp_close", "SPortPriv", "", 0),
        ("not-sport-priv", "tcp_close", "NotSPortPriv", "", 2),
        ("dport", "tcp_close", "DPort", &p.to_string(), 1),
        ("close-state", "tcp_close", "State", "TCP_CLOSE_WAIT", 1),
    ];
    let mut args = Vec::new();
    for (name, call, op, value, _) in cases {
        let values = if value.is_empty() {
            String::new()
        } else {
            format!("\n        values: [\"{value}\"]")
        };
        let text = format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n  kprobes:\n  - call: {call}\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchPIDs:\n      - operator: In\n        values: [{me}]\n      matchArgs:\n      - index: 0\n        operator: {op}{values}\n"
        );
        let file = work.path().join(format!("{name}.yaml"));
        fs::write(&file, text).expect("write policy");
        args.push("--tracing-policy".to_owned());
        args.push(file.to_str().expect("utf-8 path").to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::start(&args);
    for (name, ..) in cases {
        agent.wait_for_log(&format!("policy {name} loaded"));
    }

    let client = TcpStream::connect(("127.0.0.1", p)).unwrap();
    let e = client.local_addr().unwrap().port();
    let (mut accepted, _) = listener.accept().unwrap();
    drop(client);
    // The client's FIN has arrived: the accepted socket is in CLOSE_WAIT.
    assert_eq!(
        std::io::Read::read(&mut accepted, &mut [0u8; 16]).unwrap(),
        0
    );
    drop(accepted);
    let events = agent.sync();
    drop(listener);

    // This test's connection only: the other tests of this file run in this process too.
    let ours = |ev: &&Value| sock(ev)["dport"] == p || sock(ev)["sport"] == p;
    for (name, call, op, value, expected) in cases {
        let got: Vec<&Value> = hits(&events, name, call).into_iter().filter(ours).collect();
        assert_eq!(got.len(), *expected, "{op} {value:?} on {call}: {got:#?}");
        for ev in &got {
            assert_eq!(ev["process"]["pid"], me);
            let s = sock(ev);
            assert_eq!(s["family"], "AF_INET");
            assert_eq!(s["daddr"], "127.0.0.1");
        }
    }
    let close = |name: &str| -> Vec<(u64, u64)> {
        hits(&events, name, "tcp_close")
            .into_iter()
            .filter(ours)
            .map(|ev| {
                (
                    sock(ev)["sport"].as_u64().unwrap(),
                    sock(ev)["dport"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (p, e) = (u64::from(p), u64::from(e));
    assert_eq!(close("sport"), [(p, e)], "the accepted socket");
    assert_eq!(close("not-sport"), [(e, p)], "the client's");
    assert_eq!(close("dport"), [(e, p)]);
    assert_eq!(close("close-state"), [(p, e)]);
    assert_eq!(
        sock(hits(&events, "close-state", "tcp_close")[0])["state"],
        "TCP_CLOSE_WAIT"
    );
    assert_eq!(close("not-sport-priv"), [(e, p), (p, e)]);
}

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() {
    // SAFETY: a plain datagram socket, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `ifreq` is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write `req`, which outlives the calls.
    unsafe {
        assert_eq!(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req), 0);
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req),
            0,
            "lo up: {}",
            std::io::Error::last_os_error()
        );
        libc::close(fd);
    }
}

/// Connections inside a network namespace of their own (IPv4 and IPv6 on its loopback),
/// made by a thread of this process that moved there: the hooks see every namespace.
#[test]
fn connects_in_a_network_namespace() {
    if !privileged("connects_in_a_network_namespace") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let me = std::process::id();
    let policy = format!(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: netns\nspec:\n  kprobes:\n  - call: tcp_connect\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchPIDs:\n      - operator: In\n        values: [{me}]\n      matchArgs:\n      - index: 0\n        operator: DAddr\n        values: [\"127.0.0.1\", \"::1\"]\n"
    );
    let pol = write(work.path(), &policy);
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    agent.wait_for_log("policy netns loaded");
    let host_ns = fs::read_link("/proc/thread-self/ns/net").unwrap();
    let (ports, ns) = std::thread::spawn(|| {
        // SAFETY: moves only this thread to a new network namespace.
        assert_eq!(
            unsafe { libc::unshare(libc::CLONE_NEWNET) },
            0,
            "unshare: {}",
            std::io::Error::last_os_error()
        );
        loopback_up();
        let ns = fs::read_link("/proc/thread-self/ns/net").unwrap();
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        let p4 = v4.local_addr().unwrap().port();
        let p6 = v6.local_addr().unwrap().port();
        drop(TcpStream::connect(("127.0.0.1", p4)).unwrap());
        drop(TcpStream::connect((Ipv6Addr::LOCALHOST, p6)).unwrap());
        ((p4, p6), ns)
    })
    .join()
    .expect("the namespace thread");
    assert_ne!(ns, host_ns, "the thread had a namespace of its own");
    let events = agent.sync();
    let connects = hits(&events, "netns", "tcp_connect");
    let got: Vec<(&str, &str, u64)> = connects
        .iter()
        .map(|e| {
            let s = sock(e);
            (
                s["family"].as_str().unwrap(),
                s["daddr"].as_str().unwrap(),
                s["dport"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("AF_INET", "127.0.0.1", u64::from(ports.0)),
            ("AF_INET6", "::1", u64::from(ports.1))
        ],
        "{connects:#?}"
    );
    for e in &connects {
        assert_eq!(e["process"]["pid"], me);
        assert_eq!(sock(e)["state"], "TCP_SYN_SENT");
        assert_eq!(sock(e)["protocol"], "IPPROTO_TCP");
    }
}

/// UDP connects (`inet_dgram_connect`) and accepted connections (`inet_csk_accept`),
/// which this kernel runs on the `connect` and `accept`/`accept4` syscalls, reading the
/// sockets behind their descriptors when they return: IPv4 and IPv6, the port the
/// kernel chose, the peer, and nothing for a TCP connect, a descriptor that is not a
/// socket, or an accept that found nothing.
#[test]
fn udp_connects_and_accepts() {
    use std::{net::UdpSocket, os::fd::AsRawFd};
    if !privileged("udp_connects_and_accepts") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port();
    let (u4, u6, other) = (free_port(), free_port(), free_port());
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: udp-accept
spec:
  kprobes:
  - call: inet_dgram_connect
    syscall: false
    args:
    - index: 0
      type: socket
    selectors:
    - matchArgs:
      - index: 0
        operator: DPort
        values: ["{u4}", "{u6}"]
  - call: inet_csk_accept
    syscall: false
    return: true
    args:
    - index: 0
      type: sock
    returnArg:
      index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: SPort
        values: ["{lport}"]
"#
    );
    let pol = write(work.path(), &policy);
    let agent = Agent::start(&["--tracing-policy", pol.to_str().unwrap()]);
    let log = agent.wait_for_log("policy udp-accept loaded");
    for line in [
        "policy udp-accept: the return of kprobe inet_dgram_connect runs on the tracepoint syscalls/sys_exit_connect, on the sockets of its file descriptors",
        "policy udp-accept: the return of kprobe inet_csk_accept runs on the tracepoint syscalls/sys_exit_accept4, on the sockets of its file descriptors",
        "policy udp-accept: the return of kprobe inet_csk_accept runs on the tracepoint syscalls/sys_exit_accept, on the sockets of its file descriptors",
    ] {
        assert!(log.contains(line), "{line}\n{log}");
    }

    // UDP: IPv4 and IPv6 to the ports of the policy, and one to another port.
    let s4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    s4.connect(("127.0.0.1", u4)).unwrap();
    let s6 = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
    s6.connect((Ipv6Addr::LOCALHOST, u6)).unwrap();
    let unbound = UdpSocket::bind("0.0.0.0:0").unwrap();
    unbound.connect(("127.0.0.1", other)).unwrap();
    // A TCP connect is on the same syscall, and not a datagram connect.
    let client = TcpStream::connect(("127.0.0.1", lport)).unwrap();
    // connect() on a descriptor that is no socket fails, and is nobody's socket.
    let file = fs::File::open("/proc/self/status").unwrap();
    // SAFETY: a zeroed sockaddr_in of the right length; the call fails with ENOTSOCK.
    let rc = unsafe {
        let addr: libc::sockaddr_in = std::mem::zeroed();
        libc::connect(
            file.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, -1);
    // Accepts: std's accept() is accept4(2); then plain accept(2); then one with nothing
    // waiting, which fails.
    let (a1, peer1) = listener.accept().unwrap();
    let client2 = TcpStream::connect(("127.0.0.1", lport)).unwrap();
    // SAFETY: the listener's descriptor; no address is asked for.
    let fd2 = unsafe {
        libc::accept(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert!(fd2 >= 0, "accept: {}", std::io::Error::last_os_error());
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing is waiting");
    let events = agent.sync();
    let me = std::process::id();

    let udp = hits(&events, "udp-accept", "inet_dgram_connect");
    assert_eq!(udp.len(), 2, "{udp:#?}");
    for (e, socket, family, addr, dport) in [
        (udp[0], &s4, "AF_INET", "127.0.0.1", u4),
        (udp[1], &s6, "AF_INET6", "::1", u6),
    ] {
        assert_eq!(e["process"]["pid"], me);
        assert_eq!(e["action"], "KPROBE_ACTION_POST");
        assert_eq!(e["return"]["int_arg"], 0, "{e}");
        let s = sock(e);
        assert_eq!(s["family"], family, "{e}");
        assert_eq!(s["type"], "SOCK_DGRAM", "{e}");
        assert_eq!(s["protocol"], "IPPROTO_UDP", "{e}");
        assert_eq!(s["saddr"], addr, "{e}");
        assert_eq!(s["daddr"], addr, "{e}");
        assert_eq!(s["sport"], socket.local_addr().unwrap().port(), "{e}");
        assert_eq!(s["dport"], dport, "{e}");
        assert_eq!(s["state"], "TCP_ESTABLISHED", "{e}: a connected UDP socket");
        assert!(s["cookie"].as_str().unwrap().parse::<u64>().unwrap() != 0);
    }
    assert_ne!(sock(udp[0])["cookie"], sock(udp[1])["cookie"]);

    let accepts = hits(&events, "udp-accept", "inet_csk_accept");
    assert_eq!(accepts.len(), 2, "accept4 and accept: {accepts:#?}");
    for (e, client) in [(accepts[0], &client), (accepts[1], &client2)] {
        assert_eq!(e["process"]["pid"], me);
        let (listening, accepted) = (sock(e), &e["return"]["sock_arg"]);
        assert_eq!(listening["state"], "TCP_LISTEN", "{e}");
        assert_eq!(listening["sport"], lport, "{e}");
        assert_eq!(listening["saddr"], "127.0.0.1", "{e}");
        assert_eq!(listening.get("dport"), None, "{e}: a port 0 is left out");
        assert_eq!(accepted["family"], "AF_INET", "{e}");
        assert_eq!(accepted["type"], "SOCK_STREAM", "{e}");
        assert_eq!(accepted["protocol"], "IPPROTO_TCP", "{e}");
        assert_eq!(accepted["state"], "TCP_ESTABLISHED", "{e}");
        assert_eq!(accepted["saddr"], "127.0.0.1", "{e}");
        assert_eq!(accepted["sport"], lport, "{e}");
        assert_eq!(accepted["daddr"], "127.0.0.1", "{e}");
        assert_eq!(
            accepted["dport"],
            client.local_addr().unwrap().port(),
            "{e}"
        );
        assert_ne!(accepted["cookie"], listening["cookie"], "{e}");
        assert_eq!(
            listening["cookie"],
            sock(accepts[0])["cookie"],
            "one listener"
        );
    }
    assert_eq!(
        accepts[0]["return"]["sock_arg"]["dport"],
        peer1.port(),
        "std's view of the peer"
    );
    drop((a1, client, client2, file));
    // SAFETY: the accepted descriptor, closed once.
    unsafe { libc::close(fd2) };
}
