//! `GetUrl` and `DnsLookup` (Tetragon's actions that the agent carries out): a policy on
//! `openat` whose selectors fetch a URL of a server of the test's own on loopback and
//! look up `localhost` when a marker file is opened; asserted on the request the server
//! receives and on the events' actions.

use std::{
    io::{Read as _, Write as _},
    net::TcpListener,
    sync::mpsc,
    time::Duration,
};

use integration::{Agent, of_kind, privileged};

#[test]
fn get_url_and_dns_lookup() {
    if !privileged("get_url_and_dns_lookup") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path().to_str().expect("utf-8");
    let text = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: canary
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_openat
    args:
    - index: 6
      type: string
    selectors:
    - matchArgs:
      - index: 6
        operator: Equal
        values: ["{dir}/url"]
      matchActions:
      - action: GetUrl
        argUrl: "http://127.0.0.1:{port}/canary?file=url"
    - matchArgs:
      - index: 6
        operator: Equal
        values: ["{dir}/dns"]
      matchActions:
      - action: DnsLookup
        argFqdn: localhost
"#
    );
    let path = work.path().join("canary.yaml");
    std::fs::write(&path, text).expect("write");
    let agent = Agent::start(&["--tracing-policy", path.to_str().expect("utf-8")]);
    let _ = std::fs::File::open(work.path().join("url"));
    let _ = std::fs::File::open(work.path().join("dns"));
    let seen = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("the agent's GET reached the server");
    assert!(
        seen.starts_with("GET /canary?file=url HTTP/1.1\r\n"),
        "{seen}"
    );
    let events = agent.sync();
    let hits: Vec<_> = of_kind(&events, "process_tracepoint")
        .into_iter()
        .filter(|e| e["policy_name"] == "canary")
        .map(|e| {
            (
                e["args"][0]["string_arg"].as_str().unwrap_or("").to_owned(),
                e["action"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        hits,
        [
            (format!("{dir}/url"), "KPROBE_ACTION_GETURL".to_owned()),
            (format!("{dir}/dns"), "KPROBE_ACTION_DNSLOOKUP".to_owned()),
        ]
    );
    let (_, _, stderr) = agent.stop();
    assert!(
        stderr.contains(&format!(
            "policy canary: GetUrl http://127.0.0.1:{port}/canary?file=url: 200 OK"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("policy canary: DnsLookup localhost: "),
        "{stderr}"
    );
}
