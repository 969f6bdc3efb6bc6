//! The tests' `TracingPolicy` object on `getpgid`, and how to hit it: the policy
//! object tests and the adversarial API server tests share it.

use serde_json::{Value, json};

use crate::of_kind;

/// A `TracingPolicy` object: `getpgid` calls with argument `pid`.
pub fn policy(name: &str, pid: i64) -> Value {
    json!({
        "apiVersion": "tracer.dev/v1alpha1", "kind": "TracingPolicy",
        "metadata": {"name": name, "uid": format!("{name}-uid"), "generation": 1},
        "spec": {"tracepoints": [{
            "subsystem": "syscalls", "event": "sys_enter_getpgid",
            "args": [{"index": 5, "type": "int"}],
            "selectors": [{"matchArgs": [{"index": 5, "operator": "Equal", "values": [pid.to_string()]}]}]
        }]}
    })
}

pub fn getpgid(pid: i32) {
    // SAFETY: getpgid of a pid that does not exist: fails with ESRCH, touches nothing.
    assert_eq!(unsafe { libc::getpgid(pid) }, -1);
}

/// The `process_tracepoint` events of policy `name` for getpgid(`pid`).
pub fn hits(events: &[Value], name: &str, pid: i64) -> usize {
    of_kind(events, "process_tracepoint")
        .into_iter()
        .filter(|e| e["policy_name"] == name && e["args"][0]["int_arg"] == pid)
        .count()
}
