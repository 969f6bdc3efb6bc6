//! What the export filter targets share: the input's parts, and events to apply the
//! parsed filters to.

use serde_json::{Value, json};

/// `data` split at its NUL bytes into (at most) `n` texts; missing ones are empty.
pub fn parts(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n, |b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    out.resize(n, String::new());
    out
}

/// Events of the shapes the exporter sees, and `extra` (the input's last part) when it
/// is JSON.
pub fn events(extra: &str) -> Vec<Value> {
    let mut events = vec![
        json!({"process_exec": {
            "process": {"pid": 42, "binary": "/usr/bin/mysql",
                "arguments": "-u root --password hunter2 db token=abc",
                "docker": "0123456789abcdef", "in_init_tree": true,
                "environment_variables": [{"Key": "DB_PASSWORD", "Value": "hunter2"},
                    {"Key": "HOME", "Value": "/root"}],
                "pod": {"namespace": "default", "name": "web-1",
                    "pod_labels": {"app": "web", "tier": "front"},
                    "container": {"id": "containerd://0123456789abcdef", "name": "nginx"}}},
            "parent": {"binary": "/bin/bash", "arguments": "-c x"},
            "ancestors": [{"binary": "/bin/sh", "arguments": "-c \"run --key=s3cret\""}]},
            "node_name": "n", "time": "2026-01-01T00:00:00Z"}),
        json!({"process_kprobe": {"process": {"binary": "/x", "pid": 7},
            "function_name": "security_file_open", "policy_name": "p",
            "args": [{"file_arg": {"path": "/etc/shadow"}}]},
            "node_name": "n", "time": "t"}),
        json!({"process_exit": {"process": {"binary": "/bin/ls"}, "status": 0}}),
        json!({"event_loss": {"lost": 3}}),
    ];
    if let Ok(v) = serde_json::from_str::<Value>(extra) {
        events.push(v);
    }
    events
}
