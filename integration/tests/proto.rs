//! Every line a run writes, decoded with protobuf's JSON parser and Tetragon's proto
//! (`integration::proto`): in the default mode with the tracer's additions taken out,
//! and with `--export-tetragon-strict` as written, unknown fields rejected, and the
//! re-encoding the same as the line. The run exercises the event kinds this host
//! produces: exec and exit, a tracepoint policy with a `syscall64` argument
//! (`killer.yaml`, whose enforcers do not run here), a kprobe
//! policy on its tracepoint equivalent with a socket argument, a uprobe, the loader, and
//! the rate limit's `rate_limit_info`; with `ancestors` on every kind and a
//! `cluster_name`.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    process::Command,
};

use integration::{Agent, corpus::corpus, of_kind, proto::Proto};
use serde_json::Value;

/// The policies of the run: the project's library and some of Tetragon's examples.
fn policy_args() -> Vec<String> {
    let mut args = vec![
        "--tracing-policy-dir".to_owned(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../policies").to_owned(),
    ];
    for name in [
        "killer.yaml",
        "uprobe.yaml",
        "loader.yaml",
        "tcp-connect.yaml",
    ] {
        args.push("--tracing-policy".into());
        args.push(corpus().join(name).to_string_lossy().into_owned());
    }
    args
}

/// Runs the workload under an agent with `extra` flags; returns every line written.
fn run(extra: &[&str]) -> Vec<Value> {
    let mut args = policy_args();
    // Every process object the flags add: ancestors on every kind, the cluster's name.
    for flag in [
        "--enable-ancestors",
        "base,kprobe,tracepoint,uprobe,lsm,usdt,loader",
        "--cluster-name",
        "proto-test",
        "--enable-process-cred",
        "--enable-process-ns",
        "--enable-process-environment-variables",
    ] {
        args.push(flag.to_owned());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::start(&args);
    // bash: its `main` (uprobe.yaml), its dup2 (killer.yaml's `syscall64`), its
    // mappings (loader.yaml), a write under /etc that fails (sensitive files).
    let out = Command::new("/usr/bin/bash")
        .args(["-c", "exec 3>&1; cat /etc/shadow > /dev/null; exit 0"])
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{out:?}");
    // A TCP connection on loopback (tcp-connect.yaml's tcp_connect and tcp_close).
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let mut client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    client.write_all(b"ping").expect("write");
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).expect("read");
    drop((client, server));
    // A binary with no link on disk (`binary_properties.file`).
    integration::run_from_memfd("proto-memfd");
    agent.sync();
    let (status, events, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    events
}

fn lines(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(e).expect("encode") + "\n")
        .collect()
}

fn assert_kinds(events: &[Value], mode: &str) {
    for kind in [
        "process_exec",
        "process_exit",
        "process_tracepoint",
        "process_kprobe",
        "process_uprobe",
        "process_loader",
    ] {
        assert!(
            !of_kind(events, kind).is_empty(),
            "{mode}: the run wrote no {kind}"
        );
    }
}

#[test]
fn lines_decode_with_tetragons_proto() {
    if !integration::privileged("lines_decode_with_tetragons_proto") {
        return;
    }
    let proto = Proto::generate();
    let events = run(&[]);
    assert_kinds(&events, "default");
    let ids: Vec<&Value> = of_kind(&events, "process_tracepoint")
        .into_iter()
        .filter(|e| e["policy_name"] == "kill-syscalls")
        .map(|e| &e["args"][0])
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|a| a["syscall_id"]["abi"] == "x64"),
        "syscall64 as syscall_id: {ids:?}"
    );
    let verdict = proto.check(&lines(&events), false);
    assert!(
        verdict.errors.is_empty(),
        "{} of {} lines differ from protojson:\n{}",
        verdict.errors.len(),
        verdict.checked,
        verdict.errors.join("\n")
    );
    assert!(verdict.checked > 10, "{verdict:?}");
    assert!(
        of_kind(&events, "process_exec")
            .iter()
            .any(|e| e["ancestors"].as_array().is_some_and(|a| !a.is_empty())),
        "ancestors were written, and checked"
    );
    assert!(
        events.iter().all(|e| e["seq"].is_string()),
        "the default mode numbers every line"
    );
    let memfd = of_kind(&events, "process_exec")
        .into_iter()
        .find(|e| e["process"]["arguments"] == "proto-memfd")
        .expect("the memfd exec");
    assert!(
        memfd["process"]["binary_properties"]["file"]["inode"]["number"].is_string()
            && memfd["process"]["environment_variables"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
        "binary properties and environment variables were written, and checked: {memfd}"
    );
    println!("default mode: {} lines decode", verdict.checked);
}

#[test]
fn strict_lines_decode_with_unknown_fields_rejected() {
    if !integration::privileged("strict_lines_decode_with_unknown_fields_rejected") {
        return;
    }
    let proto = Proto::generate();
    let events = run(&["--export-tetragon-strict"]);
    assert_kinds(&events, "strict");
    for e in &events {
        assert!(e.get("seq").is_none(), "no seq in strict mode: {e}");
        assert!(
            e.get("event_loss").is_none(),
            "no event_loss in strict mode: {e}"
        );
    }
    let verdict = proto.check(&lines(&events), true);
    assert!(
        verdict.errors.is_empty(),
        "{} of {} lines are not Tetragon's:\n{}",
        verdict.errors.len(),
        verdict.checked,
        verdict.errors.join("\n")
    );
    assert_eq!(verdict.checked, events.len());
    println!("strict mode: {} lines decode", verdict.checked);
}

/// `rate_limit_info`, in both modes: `since` is the tracer's addition (and so is
/// `process_credentials` without `--enable-process-cred`).
#[test]
fn rate_limit_info_decodes() {
    if !integration::privileged("rate_limit_info_decodes") {
        return;
    }
    let proto = Proto::generate();
    for strict in [false, true] {
        let mut args = vec!["--export-rate-limit", "5"];
        if strict {
            args.push("--export-tetragon-strict");
        }
        let agent = Agent::start(&args);
        for _ in 0..20 {
            let st = Command::new("/bin/true").status().expect("run true");
            assert!(st.success());
        }
        // The report comes on the loss tick (every second).
        let start = std::time::Instant::now();
        let info = loop {
            let events = agent.events();
            if !of_kind(&events, "rate_limit_info").is_empty() {
                break events;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "no rate_limit_info"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let reports = of_kind(&info, "rate_limit_info");
        assert_eq!(reports[0].get("since").is_some(), !strict, "{reports:?}");
        // Without `--enable-process-cred`, `process_credentials` is an addition.
        let execs = of_kind(&info, "process_exec");
        assert!(!execs.is_empty());
        for e in execs {
            assert_eq!(
                e["process"].get("process_credentials").is_some(),
                !strict,
                "strict {strict}: {e}"
            );
        }
        let verdict = proto.check(&lines(&info), strict);
        assert!(
            verdict.errors.is_empty(),
            "strict {strict}:\n{}",
            verdict.errors.join("\n")
        );
    }
}
