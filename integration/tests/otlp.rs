//! The OTLP exporter (`tracer::export::otlp`) against a real OTLP receiver
//! (`integration::otlp`), over gRPC and over HTTP/protobuf: no agent, no eBPF, no root.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use integration::otlp::{Received, Receiver, Via, WAIT};
use serde_json::{Value, json};
use tracer::export::otlp::{OtlpConfig, OtlpExporter, OtlpStats, Protocol};

const PROTOCOLS: [(Protocol, Via); 2] = [
    (Protocol::Grpc, Via::Grpc),
    (Protocol::HttpProtobuf, Via::Http),
];

fn config(receiver: &Receiver, protocol: Protocol) -> OtlpConfig {
    let mut c = OtlpConfig::new(&receiver.endpoint(), protocol, "test-node").expect("config");
    c.linger = Duration::from_millis(20);
    c.timeout = Duration::from_secs(5);
    c.backoff_initial = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c
}

/// Waits (up to `WAIT`) until the exporter's counters satisfy `done`.
async fn wait_stats(
    exporter: &OtlpExporter,
    what: &str,
    done: impl Fn(&OtlpStats) -> bool,
) -> OtlpStats {
    let start = Instant::now();
    loop {
        let s = exporter.stats();
        if done(&s) {
            return s;
        }
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The distinct `tracer.seq` of the records.
fn seqs(records: &[Received]) -> BTreeSet<i64> {
    records.iter().filter_map(Received::seq).collect()
}

const POD_UID: &str = "3f1a9c2e-7b1d-4e5f-9a0b-1c2d3e4f5a6b";

fn process(pid: u32, binary: &str, arguments: &str, pod: bool) -> Value {
    let mut p = json!({
        "exec_id": format!("dGVzdC1ub2RlOjEyMzQ1Njc4OTo{pid}"),
        "pid": pid,
        "uid": 1000,
        "cwd": "/app",
        "binary": binary,
        "arguments": arguments,
        "flags": "execve clone",
        "start_time": "2026-11-25T10:00:01.123456789Z",
        "auid": 4294967295u32,
        "parent_exec_id": "dGVzdC1ub2RlOjEwMDAwOjE=",
        "tid": pid,
        "process_credentials": {"uid": 1000, "gid": 1000, "euid": 1000, "egid": 1000},
        "cgroup_id": "5123"
    });
    if pod {
        p["docker"] = json!("4c3e5b6a7d8e9f0a1b2c3d4e5f60718");
        p["pod"] = json!({
            "namespace": "shop",
            "name": "web-7d9f-abcde",
            "uid": POD_UID,
            "container": {
                "id": "containerd://4c3e5b6a7d8e9f0a1b2c3d4e5f607182930a1b2c3d4e5f60718293a4b5c6d7e8",
                "name": "main",
                "image": {"id": "registry.test/app@sha256:0123", "name": "registry.test/app:1.0"},
                "start_time": "2026-11-25T10:00:00Z",
                "pid": 1
            },
            "pod_labels": {"app": "web"},
            "workload": "web",
            "workload_kind": "Deployment"
        });
    }
    p
}

fn exec_in_pod(seq: u64) -> Value {
    json!({
        "process_exec": {
            "process": process(4242, "/usr/bin/curl", "-s \"a b\" http://shop", true),
            "parent": process(4200, "/bin/sh", "-c run", true)
        },
        "node_name": "test-node",
        "time": "2026-11-25T10:00:01.123456789Z",
        "seq": seq.to_string()
    })
}

fn exit(seq: u64) -> Value {
    json!({
        "process_exit": {
            "process": process(4243, "/bin/false", "", false),
            "status": 1,
            "time": "2026-11-25T10:00:02.5Z"
        },
        "node_name": "test-node",
        "time": "2026-11-25T10:00:02.5Z",
        "seq": seq.to_string()
    })
}

fn kprobe_connect(seq: u64) -> Value {
    json!({
        "process_kprobe": {
            "process": process(4244, "/usr/bin/nc", "10.0.0.9 443", false),
            "function_name": "tcp_connect",
            "args": [{"sock_arg": {
                "family": "AF_INET", "type": "SOCK_STREAM", "protocol": "IPPROTO_TCP",
                "saddr": "10.0.0.2", "daddr": "10.0.0.9", "sport": 40312, "dport": 443,
                "cookie": "18446623395373416448", "state": "TCP_SYN_SENT"
            }}],
            "action": "KPROBE_ACTION_POST",
            "policy_name": "connect"
        },
        "node_name": "test-node",
        "time": "2026-11-25T10:00:03Z",
        "seq": seq.to_string()
    })
}

/// A small event, for the tests that count.
fn numbered(seq: u64) -> Value {
    json!({
        "process_exec": {"process": process(u32::try_from(seq).unwrap_or(0), "/bin/true", "", false)},
        "node_name": "test-node",
        "time": "2026-11-25T10:00:04Z",
        "seq": seq.to_string()
    })
}

fn nanos(rfc3339: &str) -> u64 {
    tracer::export::otlp::record::unix_nanos(rfc3339).expect("a time")
}

#[tokio::test]
async fn records_carry_the_event_its_attributes_and_the_resource() {
    for (protocol, via) in PROTOCOLS {
        let receiver = Receiver::start();
        let exporter = OtlpExporter::start(config(&receiver, protocol)).expect("start");
        let events = [exec_in_pod(1), exit(2), kprobe_connect(3)];
        for e in &events {
            exporter.send(e);
        }
        let records = receiver.wait_for_records(3).await;
        assert_eq!(records.len(), 3, "{protocol}: each event once");
        let by_seq = |seq: i64| {
            records
                .iter()
                .find(|r| r.seq() == Some(seq))
                .unwrap_or_else(|| panic!("{protocol}: no record with tracer.seq {seq}"))
        };

        for (r, event) in [1, 2, 3].into_iter().map(by_seq).zip(&events) {
            assert_eq!(r.via, via);
            assert_eq!(&r.body(), event, "{protocol}: the body is the event");
            assert_eq!(r.record.severity_number, 9, "INFO");
            assert_eq!(r.record.severity_text, "INFO");
            assert_eq!(
                r.record.time_unix_nano,
                nanos(event["time"].as_str().expect("time"))
            );
            assert!(r.record.observed_time_unix_nano > r.record.time_unix_nano);
            assert_eq!(
                Value::Object(r.resource_attributes()),
                json!({
                    "service.name": "tracer",
                    "service.version": env!("CARGO_PKG_VERSION"),
                    "host.name": "test-node",
                    "k8s.node.name": "test-node"
                }),
                "{protocol}"
            );
            assert_eq!(r.scope.name, "tracer");
        }

        let exec = by_seq(1);
        assert_eq!(exec.record.event_name, "process_exec");
        assert_eq!(
            Value::Object(exec.attributes()),
            json!({
                "event.name": "process_exec",
                "tracer.seq": 1,
                "process.pid": 4242,
                "thread.id": 4242,
                "process.parent_pid": 4200,
                "process.executable.path": "/usr/bin/curl",
                "process.executable.name": "curl",
                "process.command_line": "/usr/bin/curl -s \"a b\" http://shop",
                "process.command_args": ["/usr/bin/curl", "-s", "a b", "http://shop"],
                "process.working_directory": "/app",
                "process.creation.time": "2026-11-25T10:00:01.123456789Z",
                "user.id": "1000",
                "process.real_user.id": 1000,
                "process.user.id": 1000,
                "tracer.exec_id": "dGVzdC1ub2RlOjEyMzQ1Njc4OTo4242",
                "tracer.parent_exec_id": "dGVzdC1ub2RlOjEwMDAwOjE=",
                "container.id": "4c3e5b6a7d8e9f0a1b2c3d4e5f607182930a1b2c3d4e5f60718293a4b5c6d7e8",
                "k8s.namespace.name": "shop",
                "k8s.pod.name": "web-7d9f-abcde",
                "k8s.pod.uid": POD_UID,
                "k8s.container.name": "main",
                "container.image.name": "registry.test/app",
                "container.image.tags": ["1.0"],
                "container.image.repo_digests": ["registry.test/app@sha256:0123"],
                "k8s.deployment.name": "web",
                "k8s.pod.label.app": "web"
            }),
            "{protocol}: exec attributes"
        );

        let exit = by_seq(2);
        assert_eq!(exit.record.event_name, "process_exit");
        assert_eq!(
            Value::Object(exit.attributes()),
            json!({
                "event.name": "process_exit",
                "tracer.seq": 2,
                "process.pid": 4243,
                "thread.id": 4243,
                "process.executable.path": "/bin/false",
                "process.executable.name": "false",
                "process.command_line": "/bin/false",
                "process.command_args": ["/bin/false"],
                "process.working_directory": "/app",
                "process.creation.time": "2026-11-25T10:00:01.123456789Z",
                "user.id": "1000",
                "process.real_user.id": 1000,
                "process.user.id": 1000,
                "tracer.exec_id": "dGVzdC1ub2RlOjEyMzQ1Njc4OTo4243",
                "tracer.parent_exec_id": "dGVzdC1ub2RlOjEwMDAwOjE=",
                "process.exit.code": 1,
                "process.exit.time": "2026-11-25T10:00:02.5Z"
            }),
            "{protocol}: exit attributes"
        );

        let kprobe = by_seq(3);
        assert_eq!(kprobe.record.event_name, "process_kprobe");
        assert_eq!(
            Value::Object(kprobe.attributes()),
            json!({
                "event.name": "process_kprobe",
                "tracer.seq": 3,
                "process.pid": 4244,
                "thread.id": 4244,
                "process.executable.path": "/usr/bin/nc",
                "process.executable.name": "nc",
                "process.command_line": "/usr/bin/nc 10.0.0.9 443",
                "process.command_args": ["/usr/bin/nc", "10.0.0.9", "443"],
                "process.working_directory": "/app",
                "process.creation.time": "2026-11-25T10:00:01.123456789Z",
                "user.id": "1000",
                "process.real_user.id": 1000,
                "process.user.id": 1000,
                "tracer.exec_id": "dGVzdC1ub2RlOjEyMzQ1Njc4OTo4244",
                "tracer.parent_exec_id": "dGVzdC1ub2RlOjEwMDAwOjE=",
                "tracer.policy.name": "connect",
                "tracer.action": "KPROBE_ACTION_POST",
                "tracer.function_name": "tcp_connect",
                "network.transport": "tcp",
                "network.type": "ipv4",
                "network.local.address": "10.0.0.2",
                "network.local.port": 40312,
                "network.peer.address": "10.0.0.9",
                "network.peer.port": 443
            }),
            "{protocol}: kprobe attributes"
        );

        let s = exporter.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            (
                s.received,
                s.exported,
                s.dropped,
                s.queued,
                s.failed_exports
            ),
            (3, 3, 0, 0, 0),
            "{protocol}: {s:?}"
        );
    }
}

#[tokio::test]
async fn an_outage_loses_only_what_the_queue_bound_dropped() {
    for (protocol, via) in PROTOCOLS {
        let mut receiver = Receiver::start();
        let mut c = config(&receiver, protocol);
        c.queue_size = 20;
        c.max_batch = 5;
        let exporter = OtlpExporter::start(c).expect("start");

        for seq in 1..=10 {
            exporter.send(&numbered(seq));
        }
        receiver.wait_for_records(10).await;

        // The collector goes away; events keep coming.
        receiver.stop().await;
        for seq in 11..=110 {
            exporter.send(&numbered(seq));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let during = wait_stats(&exporter, "failed exports", |s| s.failed_exports > 0).await;
        assert!(
            during.dropped_queue_full > 0,
            "{protocol}: a queue of 20 drops some of 100 events: {during:?}"
        );

        // It comes back: the queue drains.
        receiver.restart();
        let s = wait_stats(&exporter, "the queue to drain", |s| s.queued == 0).await;
        let records = receiver.records();
        assert!(records.iter().all(|r| r.via == via));
        let arrived = seqs(&records);
        let missing: Vec<i64> = (1..=110).filter(|n| !arrived.contains(n)).collect();
        assert_eq!(s.received, 110, "{protocol}: {s:?}");
        assert!(s.dropped > 0, "{protocol}: {s:?}");
        assert_eq!(
            missing.len() as u64,
            s.dropped,
            "{protocol}: what is missing is what was counted as dropped: {missing:?}, {s:?}"
        );
        assert_eq!(s.dropped, s.dropped_queue_full, "{protocol}: {s:?}");
        assert_eq!(s.exported, 110 - s.dropped, "{protocol}: {s:?}");
        assert!(
            missing.iter().all(|&n| n > 10),
            "{protocol}: only events of the outage are missing: {missing:?}"
        );
        assert!(s.retries > 0, "{protocol}: {s:?}");

        // And it keeps going.
        exporter.send(&numbered(111));
        receiver
            .wait_until("the event after the outage", |r| {
                r.iter().any(|r| r.seq() == Some(111))
            })
            .await;
        exporter.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn unavailable_then_ok_loses_nothing_and_counts_the_retries() {
    for (protocol, _) in PROTOCOLS {
        let receiver = Receiver::start();
        receiver.fail_next(3);
        let exporter = OtlpExporter::start(config(&receiver, protocol)).expect("start");
        for seq in 1..=10 {
            exporter.send(&numbered(seq));
        }
        let records = receiver.wait_for_records(10).await;
        let s = wait_stats(&exporter, "the export", |s| s.queued == 0).await;
        assert_eq!(receiver.error_answers(), 3, "{protocol}");
        assert_eq!(records.len(), 10, "{protocol}: each once");
        assert_eq!(seqs(&records), (1..=10).collect(), "{protocol}");
        assert_eq!(
            (s.exported, s.dropped, s.failed_exports, s.retries),
            (10, 0, 3, 3),
            "{protocol}: {s:?}"
        );
        exporter.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn a_permanent_refusal_drops_the_batch_and_counts_it() {
    for (protocol, _) in PROTOCOLS {
        let receiver = Receiver::start();
        receiver.reject_next(1);
        let exporter = OtlpExporter::start(config(&receiver, protocol)).expect("start");
        // One batch (sent without a pause, gathered within the linger).
        for seq in 1..=4 {
            exporter.send(&numbered(seq));
        }
        let s = wait_stats(&exporter, "the refusal", |s| s.rejected > 0).await;
        assert_eq!(
            (s.rejected, s.dropped, s.failed_exports, s.retries),
            (4, 4, 1, 0),
            "{protocol}: refused, not tried again: {s:?}"
        );
        for seq in 5..=6 {
            exporter.send(&numbered(seq));
        }
        let records = receiver.wait_for_records(2).await;
        assert_eq!(seqs(&records), [5, 6].into(), "{protocol}");
        let s = exporter.shutdown(Duration::from_secs(5)).await;
        assert_eq!((s.exported, s.dropped, s.queued), (2, 4, 0), "{protocol}");
    }
}

#[tokio::test]
async fn a_slow_collector_is_given_up_on_and_tried_again() {
    for (protocol, _) in PROTOCOLS {
        let receiver = Receiver::start();
        // The first answer comes after the exporter's timeout.
        receiver.slow_next(1, Duration::from_secs(2));
        let mut c = config(&receiver, protocol);
        c.timeout = Duration::from_millis(300);
        let exporter = OtlpExporter::start(c).expect("start");
        for seq in 1..=5 {
            exporter.send(&numbered(seq));
        }
        let s = wait_stats(&exporter, "the export", |s| s.queued == 0).await;
        let records = receiver.wait_for_records(5).await;
        // The slow request may have been taken too, late: at least once.
        assert_eq!(seqs(&records), (1..=5).collect(), "{protocol}");
        assert_eq!((s.exported, s.dropped), (5, 0), "{protocol}: {s:?}");
        assert!(s.failed_exports >= 1 && s.retries >= 1, "{protocol}: {s:?}");
        assert!(receiver.requests() >= 2, "{protocol}");
        exporter.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn shutdown_flushes_what_it_can_and_says_what_it_could_not() {
    for (protocol, _) in PROTOCOLS {
        let mut receiver = Receiver::start();
        let mut c = config(&receiver, protocol);
        // Longer than the test: shutdown does not wait for it.
        c.linger = Duration::from_secs(600);
        let exporter = OtlpExporter::start(c.clone()).expect("start");
        for seq in 1..=7 {
            exporter.send(&numbered(seq));
        }
        let s = exporter.shutdown(Duration::from_secs(30)).await;
        assert_eq!((s.exported, s.queued), (7, 0), "{protocol}: {s:?}");
        assert_eq!(seqs(&receiver.records()), (1..=7).collect(), "{protocol}");

        receiver.stop().await;
        let exporter = OtlpExporter::start(c).expect("start");
        for seq in 1..=3 {
            exporter.send(&numbered(seq));
        }
        let s = exporter.shutdown(Duration::from_millis(500)).await;
        assert_eq!(
            (s.exported, s.queued),
            (0, 3),
            "{protocol}: unsent, said: {s:?}"
        );
    }
}

#[tokio::test]
async fn a_collectors_odd_answers_are_read_as_the_specification_says() {
    for (protocol, via) in PROTOCOLS {
        // A partial success: the records it says it refused are counted as dropped, the
        // others as exported, and the batch is not sent again.
        let receiver = Receiver::start();
        receiver.partial_next(1, 2);
        let exporter = OtlpExporter::start(config(&receiver, protocol)).expect("start");
        for seq in 1..=4 {
            exporter.send(&numbered(seq));
        }
        let s = wait_stats(&exporter, "the partial success", |s| s.queued == 0).await;
        assert_eq!(
            (s.exported, s.rejected, s.dropped, s.retries),
            (2, 2, 2, 0),
            "{protocol}: {s:?}"
        );
        assert_eq!(receiver.requests(), 1, "{protocol}: not sent again");
        exporter.shutdown(Duration::from_secs(5)).await;

        // Throttled: tried again, after the collector's Retry-After (1 s) where it says
        // one (HTTP), which is longer than the exporter's own backoff (at most 200 ms).
        let receiver = Receiver::start();
        receiver.throttle_next(1, Duration::from_secs(1));
        let exporter = OtlpExporter::start(config(&receiver, protocol)).expect("start");
        let started = Instant::now();
        for seq in 1..=3 {
            exporter.send(&numbered(seq));
        }
        let records = receiver.wait_for_records(3).await;
        let took = started.elapsed();
        let s = wait_stats(&exporter, "the throttled export", |s| s.queued == 0).await;
        assert_eq!(seqs(&records), (1..=3).collect(), "{protocol}: each once");
        assert_eq!(
            (s.exported, s.dropped, s.retries),
            (3, 0, 1),
            "{protocol}: {s:?}"
        );
        if via == Via::Http {
            assert!(
                took >= Duration::from_secs(1),
                "{protocol}: Retry-After kept: {took:?}"
            );
        }
        exporter.shutdown(Duration::from_secs(5)).await;

        // 200 with a body that is not protobuf (a proxy's page): accepted as sent.
        let receiver = Receiver::start();
        receiver.garbage_next(1);
        let exporter = OtlpExporter::start(config(&receiver, protocol)).expect("start");
        for seq in 1..=3 {
            exporter.send(&numbered(seq));
        }
        let records = receiver.wait_for_records(3).await;
        let s = wait_stats(&exporter, "the export", |s| s.queued == 0).await;
        assert_eq!(seqs(&records), (1..=3).collect(), "{protocol}");
        assert_eq!(
            (s.exported, s.dropped, s.retries),
            (3, 0, 0),
            "{protocol}: {s:?}"
        );
        exporter.shutdown(Duration::from_secs(5)).await;
    }
}
