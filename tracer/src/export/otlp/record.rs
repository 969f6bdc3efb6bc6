//! One event (a Tetragon-shaped JSON object) as one OTLP LogRecord: the event itself as
//! the body, and the attributes of the OpenTelemetry semantic conventions where they
//! exist (`tracer.*` where they do not).

use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value},
    logs::v1::{LogRecord, SeverityNumber},
    resource::v1::Resource,
};
use serde_json::{Map, Value};

/// The keys of an event beside its kind.
const COMMON_KEYS: [&str; 3] = ["node_name", "time", "seq"];

/// The kind of an event: its one top-level key that is not `node_name`, `time` or `seq`
/// (`process_exec`, `process_kprobe`, ...).
pub fn event_kind(event: &Value) -> Option<&str> {
    event
        .as_object()?
        .keys()
        .map(String::as_str)
        .find(|k| !COMMON_KEYS.contains(k))
}

/// The event as a LogRecord, observed at `observed_ns` (ns since the epoch).
pub fn log_record(event: &Value, observed_ns: u64) -> LogRecord {
    let kind = event_kind(event).unwrap_or_default();
    LogRecord {
        time_unix_nano: event
            .get("time")
            .and_then(Value::as_str)
            .and_then(unix_nanos)
            .unwrap_or(0),
        observed_time_unix_nano: observed_ns,
        severity_number: SeverityNumber::Info as i32,
        severity_text: "INFO".into(),
        body: Some(any_value(event)),
        attributes: attributes(event),
        event_name: kind.to_owned(),
        ..Default::default()
    }
}

/// An RFC 3339 time as nanoseconds since the epoch.
pub fn unix_nanos(rfc3339: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    u64::try_from(t.unix_timestamp_nanos()).ok()
}

/// A JSON value as an AnyValue of the same structure: objects as key-value lists (in
/// the object's order), arrays as arrays, integers as integers (one past `i64` as its
/// decimal string), null as an empty value.
pub fn any_value(v: &Value) -> AnyValue {
    use any_value::Value as V;
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(V::BoolValue(*b)),
        Value::Number(n) => Some(if let Some(i) = n.as_i64() {
            V::IntValue(i)
        } else if let Some(u) = n.as_u64() {
            V::StringValue(u.to_string())
        } else {
            V::DoubleValue(n.as_f64().unwrap_or(f64::NAN))
        }),
        Value::String(s) => Some(V::StringValue(s.clone())),
        Value::Array(a) => Some(V::ArrayValue(ArrayValue {
            values: a.iter().map(any_value).collect(),
        })),
        Value::Object(m) => Some(V::KvlistValue(KeyValueList {
            values: m
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(any_value(v)),
                    ..Default::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// The resource every record is sent with.
pub fn resource(host_name: &str, node_name: &str) -> Resource {
    let mut a = Attrs::default();
    a.str("service.name", "tracer");
    a.str("service.version", env!("CARGO_PKG_VERSION"));
    a.str("host.name", host_name);
    a.str("k8s.node.name", node_name);
    Resource {
        attributes: a.0,
        ..Default::default()
    }
}

/// The instrumentation scope of every record.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "tracer".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// Attributes in the order they are added; empty strings are left out.
#[derive(Default)]
struct Attrs(Vec<KeyValue>);

impl Attrs {
    fn put(&mut self, key: &str, value: any_value::Value) {
        self.0.push(KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        });
    }
    fn str(&mut self, key: &str, v: &str) {
        if !v.is_empty() {
            self.put(key, any_value::Value::StringValue(v.to_owned()));
        }
    }
    fn opt_str(&mut self, key: &str, v: Option<&Value>) {
        if let Some(s) = v.and_then(Value::as_str) {
            self.str(key, s);
        }
    }
    fn int(&mut self, key: &str, v: i64) {
        self.put(key, any_value::Value::IntValue(v));
    }
    fn opt_int(&mut self, key: &str, v: Option<&Value>) {
        if let Some(i) = v.and_then(Value::as_i64) {
            self.int(key, i);
        }
    }
    fn strs(&mut self, key: &str, v: impl IntoIterator<Item = String>) {
        let values: Vec<AnyValue> = v
            .into_iter()
            .map(|s| AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            })
            .collect();
        if !values.is_empty() {
            self.put(key, any_value::Value::ArrayValue(ArrayValue { values }));
        }
    }
}

/// The attributes of an event.
pub fn attributes(event: &Value) -> Vec<KeyValue> {
    let mut a = Attrs::default();
    let Some(kind) = event_kind(event) else {
        return a.0;
    };
    a.str("event.name", kind);
    // `seq` is a string, as 64-bit counters are in the JSON; an integer here.
    match event.get("seq") {
        Some(Value::String(s)) => match s.parse::<i64>() {
            Ok(n) => a.int("tracer.seq", n),
            Err(_) => a.str("tracer.seq", s),
        },
        Some(Value::Number(n)) => {
            if let Some(n) = n.as_i64() {
                a.int("tracer.seq", n);
            }
        }
        _ => {}
    }
    let Some(inner) = event.get(kind).and_then(Value::as_object) else {
        return a.0;
    };
    if let Some(p) = inner.get("process").and_then(Value::as_object) {
        process(&mut a, p, inner.get("parent").and_then(Value::as_object));
    }
    match kind {
        "process_exit" => {
            match inner.get("signal").and_then(Value::as_str) {
                Some(sig) if !sig.is_empty() => a.str("tracer.exit.signal", sig),
                // No status in the JSON is status 0.
                _ => a.int(
                    "process.exit.code",
                    inner.get("status").and_then(Value::as_i64).unwrap_or(0),
                ),
            }
            a.opt_str("process.exit.time", inner.get("time"));
        }
        "process_loader" => {
            a.opt_str("tracer.policy.name", inner.get("policy_name"));
            a.opt_str("tracer.loader.path", inner.get("path"));
            // Hex, as `readelf -n` writes it (the JSON's base64 is protojson's `bytes`).
            if let Some(id) = inner.get("buildid").and_then(Value::as_str) {
                a.str(
                    "tracer.loader.build_id",
                    &crate::mappings::build_id::hex_of_base64(id),
                );
            }
        }
        "process_kprobe" | "process_tracepoint" | "process_uprobe" | "process_usdt"
        | "process_lsm" => {
            a.opt_str("tracer.policy.name", inner.get("policy_name"));
            a.opt_str("tracer.action", inner.get("action"));
            a.opt_str("tracer.policy.mode", inner.get("policy_mode"));
            a.opt_str("tracer.function_name", inner.get("function_name"));
            a.opt_str("tracer.uprobe.path", inner.get("path"));
            a.opt_str("tracer.uprobe.symbol", inner.get("symbol"));
            if let (Some(p), Some(n)) = (
                inner.get("provider").and_then(Value::as_str),
                inner.get("name").and_then(Value::as_str),
            ) {
                a.str("tracer.usdt", &format!("{p}:{n}"));
            }
            if let (Some(s), Some(e)) = (
                inner.get("subsys").and_then(Value::as_str),
                inner.get("event").and_then(Value::as_str),
            ) {
                a.str("tracer.tracepoint", &format!("{s}/{e}"));
            }
            if let Some(tags) = inner.get("tags").and_then(Value::as_array) {
                a.strs(
                    "tracer.tags",
                    tags.iter().filter_map(Value::as_str).map(str::to_owned),
                );
            }
            // The socket of the first `sock_arg`, or the returned one (an accept).
            let sock = inner
                .get("args")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .chain(inner.get("return"))
                .find_map(|arg| arg.get("sock_arg").and_then(Value::as_object));
            if let Some(s) = sock {
                socket(&mut a, s);
            }
        }
        _ => {}
    }
    a.0
}

/// The attributes of a process object (and its parent's pid).
fn process(a: &mut Attrs, p: &Map<String, Value>, parent: Option<&Map<String, Value>>) {
    a.opt_int("process.pid", p.get("pid"));
    a.opt_int("thread.id", p.get("tid"));
    if let Some(pid) = parent.and_then(|q| q.get("pid")) {
        a.opt_int("process.parent_pid", Some(pid));
    }
    let binary = p.get("binary").and_then(Value::as_str).unwrap_or_default();
    let arguments = p
        .get("arguments")
        .and_then(Value::as_str)
        .unwrap_or_default();
    a.str("process.executable.path", binary);
    if let Some(name) = binary.rsplit('/').next() {
        a.str("process.executable.name", name);
    }
    if !binary.is_empty() {
        let line = if arguments.is_empty() {
            binary.to_owned()
        } else {
            format!("{binary} {arguments}")
        };
        a.str("process.command_line", &line);
        a.strs(
            "process.command_args",
            std::iter::once(binary.to_owned()).chain(split_arguments(arguments)),
        );
    }
    a.opt_str("process.working_directory", p.get("cwd"));
    a.opt_str("process.creation.time", p.get("start_time"));
    if let Some(uid) = p.get("uid").and_then(Value::as_i64) {
        // `user.id` is a string in the conventions; `process.real_user.id` an integer.
        a.str("user.id", &uid.to_string());
        a.int("process.real_user.id", uid);
    }
    if let Some(creds) = p.get("process_credentials") {
        a.opt_int("process.user.id", creds.get("euid"));
    }
    a.opt_str("tracer.exec_id", p.get("exec_id"));
    a.opt_str("tracer.parent_exec_id", p.get("parent_exec_id"));

    let pod = p.get("pod").and_then(Value::as_object);
    let container = pod
        .and_then(|pod| pod.get("container"))
        .and_then(Value::as_object);
    // The full container id of the pod's status, without its runtime's prefix, or the
    // `docker` field's 31 characters where the pod is not known.
    let container_id = container
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .map(|id| id.split_once("://").map_or(id, |(_, id)| id))
        .or_else(|| p.get("docker").and_then(Value::as_str));
    if let Some(id) = container_id {
        a.str("container.id", id);
    }
    let Some(pod) = pod else {
        return;
    };
    a.opt_str("k8s.namespace.name", pod.get("namespace"));
    a.opt_str("k8s.pod.name", pod.get("name"));
    a.opt_str("k8s.pod.uid", pod.get("uid"));
    if let Some(c) = container {
        a.opt_str("k8s.container.name", c.get("name"));
        if let Some(image) = c.get("image") {
            if let Some(name) = image.get("name").and_then(Value::as_str) {
                let (repo, tag) = split_image(name);
                a.str("container.image.name", repo);
                a.strs("container.image.tags", tag.map(str::to_owned));
            }
            if let Some(id) = image.get("id").and_then(Value::as_str) {
                a.strs("container.image.repo_digests", [id.to_owned()]);
            }
        }
    }
    let workload = pod.get("workload").and_then(Value::as_str);
    let kind = pod.get("workload_kind").and_then(Value::as_str);
    if let (Some(workload), Some(kind)) = (workload, kind) {
        match workload_key(kind) {
            Some(key) => a.str(key, workload),
            // A pod of its own is named above already.
            None if kind == "Pod" => {}
            None => {
                a.str("tracer.workload.name", workload);
                a.str("tracer.workload.kind", kind);
            }
        }
    }
    if let Some(labels) = pod.get("pod_labels").and_then(Value::as_object) {
        for (k, v) in labels {
            a.opt_str(&format!("k8s.pod.label.{k}"), Some(v));
        }
    }
}

/// The attribute naming a workload of this kind.
fn workload_key(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Deployment" => "k8s.deployment.name",
        "ReplicaSet" => "k8s.replicaset.name",
        "StatefulSet" => "k8s.statefulset.name",
        "DaemonSet" => "k8s.daemonset.name",
        "Job" => "k8s.job.name",
        "CronJob" => "k8s.cronjob.name",
        _ => return None,
    })
}

/// `registry:5000/app:1.0` as (`registry:5000/app`, `1.0`); a digest (`app@sha256:..`)
/// is left off the name.
fn split_image(image: &str) -> (&str, Option<&str>) {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], Some(&image[last_slash + i + 1..])),
        None => (image, None),
    }
}

/// A socket argument's addresses: `saddr`/`sport` are this end's, `daddr`/`dport` the
/// peer's (left out while unset, as on a listening socket).
fn socket(a: &mut Attrs, s: &Map<String, Value>) {
    let transport = match s.get("protocol").and_then(Value::as_str) {
        Some("IPPROTO_TCP") => "tcp",
        Some("IPPROTO_UDP") => "udp",
        _ => match s.get("family").and_then(Value::as_str) {
            Some("AF_UNIX") => "unix",
            _ => "",
        },
    };
    a.str("network.transport", transport);
    a.str(
        "network.type",
        match s.get("family").and_then(Value::as_str) {
            Some("AF_INET") => "ipv4",
            Some("AF_INET6") => "ipv6",
            _ => "",
        },
    );
    let unset = |addr: Option<&str>, port: Option<i64>| {
        matches!(addr, None | Some("" | "0.0.0.0" | "::")) && matches!(port, None | Some(0))
    };
    for (addr_key, port_key, side) in [("saddr", "sport", "local"), ("daddr", "dport", "peer")] {
        let addr = s.get(addr_key).and_then(Value::as_str);
        let port = s.get(port_key).and_then(Value::as_i64);
        if unset(addr, port) {
            continue;
        }
        if let Some(addr) = addr {
            a.str(&format!("network.{side}.address"), addr);
        }
        if let Some(port) = port {
            a.int(&format!("network.{side}.port"), port);
        }
    }
}

/// The argv of a process object's `arguments`: words split at spaces, a double-quoted
/// one with `\"` and `\\` unescaped (the inverse of how the agent writes them).
pub fn split_arguments(arguments: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = arguments.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            break;
        };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(e) = chars.next() {
                            word.push(e);
                        }
                    }
                    '"' => break,
                    c => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The attributes as JSON (`{"key": value}`), to compare whole.
    fn attrs(event: &Value) -> Value {
        let mut m = Map::new();
        for kv in attributes(event) {
            assert!(!m.contains_key(&kv.key), "{} twice", kv.key);
            m.insert(kv.key, to_json(kv.value.as_ref().unwrap()));
        }
        Value::Object(m)
    }

    fn to_json(v: &AnyValue) -> Value {
        use any_value::Value as V;
        match &v.value {
            None => Value::Null,
            Some(V::StringValue(s)) => json!(s),
            Some(V::BoolValue(b)) => json!(b),
            Some(V::IntValue(i)) => json!(i),
            Some(V::DoubleValue(d)) => json!(d),
            Some(V::ArrayValue(a)) => Value::Array(a.values.iter().map(to_json).collect()),
            Some(V::KvlistValue(l)) => Value::Object(
                l.values
                    .iter()
                    .map(|kv| {
                        (
                            kv.key.clone(),
                            kv.value.as_ref().map_or(Value::Null, to_json),
                        )
                    })
                    .collect(),
            ),
            Some(other) => panic!("unexpected {other:?}"),
        }
    }

    fn pod() -> Value {
        json!({
            "namespace": "shop",
            "name": "web-7d9f-abcde",
            "uid": "0b5a-uid",
            "container": {
                "id": "containerd://4c3e0123456789abcdef",
                "name": "main",
                "image": {"id": "registry.test:5000/app@sha256:0123", "name": "registry.test:5000/app:1.0"},
                "start_time": "2026-11-25T10:00:00Z",
                "pid": 7
            },
            "pod_labels": {"app": "web", "tier": "front"},
            "workload": "web",
            "workload_kind": "Deployment"
        })
    }

    fn process(pid: u32, pod: Option<Value>) -> Value {
        let mut p = json!({
            "exec_id": format!("exec-{pid}"),
            "pid": pid,
            "uid": 1000,
            "cwd": "/srv",
            "binary": "/usr/bin/curl",
            "arguments": "-s \"a b\" http://x",
            "flags": "execve",
            "start_time": "2026-11-25T10:00:01.000000001Z",
            "auid": 4294967295u32,
            "parent_exec_id": "exec-1",
            "tid": pid,
            "process_credentials": {"uid": 1000, "gid": 1000, "euid": 0, "egid": 1000}
        });
        if let Some(pod) = pod {
            p["docker"] = json!("4c3e0123456789abcdef");
            p["pod"] = pod;
        }
        p
    }

    #[test]
    fn exec_in_a_pod() {
        let ev = json!({
            "process_exec": {"process": process(42, Some(pod())), "parent": process(41, None)},
            "node_name": "node1",
            "time": "2026-11-25T10:00:01.000000001Z",
            "seq": "7"
        });
        assert_eq!(
            attrs(&ev),
            json!({
                "event.name": "process_exec",
                "tracer.seq": 7,
                "process.pid": 42,
                "thread.id": 42,
                "process.parent_pid": 41,
                "process.executable.path": "/usr/bin/curl",
                "process.executable.name": "curl",
                "process.command_line": "/usr/bin/curl -s \"a b\" http://x",
                "process.command_args": ["/usr/bin/curl", "-s", "a b", "http://x"],
                "process.working_directory": "/srv",
                "process.creation.time": "2026-11-25T10:00:01.000000001Z",
                "user.id": "1000",
                "process.real_user.id": 1000,
                "process.user.id": 0,
                "tracer.exec_id": "exec-42",
                "tracer.parent_exec_id": "exec-1",
                "container.id": "4c3e0123456789abcdef",
                "k8s.namespace.name": "shop",
                "k8s.pod.name": "web-7d9f-abcde",
                "k8s.pod.uid": "0b5a-uid",
                "k8s.container.name": "main",
                "container.image.name": "registry.test:5000/app",
                "container.image.tags": ["1.0"],
                "container.image.repo_digests": ["registry.test:5000/app@sha256:0123"],
                "k8s.deployment.name": "web",
                "k8s.pod.label.app": "web",
                "k8s.pod.label.tier": "front"
            })
        );
        let r = log_record(&ev, 5);
        assert_eq!(r.event_name, "process_exec");
        assert_eq!(r.time_unix_nano, 1_795_600_801_000_000_001);
        assert_eq!(r.observed_time_unix_nano, 5);
        assert_eq!(r.severity_number, SeverityNumber::Info as i32);
        assert_eq!(to_json(r.body.as_ref().unwrap()), ev);
    }

    #[test]
    fn exit_with_status_or_signal() {
        let mut ev = json!({
            "process_exit": {"process": process(42, None), "status": 3, "time": "2026-11-25T10:00:02Z"},
            "node_name": "node1",
            "time": "2026-11-25T10:00:02Z",
            "seq": "8"
        });
        let a = attrs(&ev);
        assert_eq!(a["event.name"], "process_exit");
        assert_eq!(a["process.exit.code"], 3);
        assert_eq!(a["process.exit.time"], "2026-11-25T10:00:02Z");
        assert!(a.get("tracer.exit.signal").is_none());
        assert!(a.get("process.parent_pid").is_none(), "no parent object");
        assert!(a.get("container.id").is_none());
        assert!(a.get("k8s.pod.name").is_none());

        ev["process_exit"]["signal"] = json!("SIGKILL");
        ev["process_exit"].as_object_mut().unwrap().remove("status");
        let a = attrs(&ev);
        assert_eq!(a["tracer.exit.signal"], "SIGKILL");
        assert!(a.get("process.exit.code").is_none());

        ev["process_exit"].as_object_mut().unwrap().remove("signal");
        assert_eq!(attrs(&ev)["process.exit.code"], 0, "no status is 0");
    }

    #[test]
    fn kprobe_with_a_socket() {
        let ev = json!({
            "process_kprobe": {
                "process": process(42, None),
                "function_name": "tcp_connect",
                "args": [{"sock_arg": {
                    "family": "AF_INET", "type": "SOCK_STREAM", "protocol": "IPPROTO_TCP",
                    "saddr": "10.0.0.2", "daddr": "10.0.0.9", "sport": 40000, "dport": 443,
                    "cookie": "18446744073709551615", "state": "TCP_SYN_SENT"
                }}],
                "action": "KPROBE_ACTION_POST",
                "policy_name": "connect",
                "tags": ["net"]
            },
            "node_name": "node1",
            "time": "2026-11-25T10:00:03Z",
            "seq": "9"
        });
        let a = attrs(&ev);
        assert_eq!(a["event.name"], "process_kprobe");
        assert_eq!(a["tracer.policy.name"], "connect");
        assert_eq!(a["tracer.action"], "KPROBE_ACTION_POST");
        assert_eq!(a["tracer.function_name"], "tcp_connect");
        assert_eq!(a["tracer.tags"], json!(["net"]));
        assert_eq!(a["network.transport"], "tcp");
        assert_eq!(a["network.type"], "ipv4");
        assert_eq!(a["network.local.address"], "10.0.0.2");
        assert_eq!(a["network.local.port"], 40000);
        assert_eq!(a["network.peer.address"], "10.0.0.9");
        assert_eq!(a["network.peer.port"], 443);
        assert_eq!(a["process.pid"], 42);
        assert!(a.get("tracer.policy.mode").is_none());
    }

    #[test]
    fn loader_event_names_the_file_and_its_build_id_in_hex() {
        let ev = json!({
            "process_loader": {
                "process": process(42, None),
                "path": "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "buildid": "3q2+7wAB",
                "policy_name": "loader"
            },
            "node_name": "n", "time": "2026-11-25T10:00:03Z", "seq": "11"
        });
        let a = attrs(&ev);
        assert_eq!(a["event.name"], "process_loader");
        assert_eq!(a["tracer.policy.name"], "loader");
        assert_eq!(
            a["tracer.loader.path"],
            "/usr/lib/x86_64-linux-gnu/libc.so.6"
        );
        assert_eq!(a["tracer.loader.build_id"], "deadbeef0001");
        assert_eq!(a["process.pid"], 42);
    }

    #[test]
    fn listening_socket_has_no_peer_and_accept_uses_the_returned_socket() {
        let ev = json!({
            "process_kprobe": {
                "process": process(42, None),
                "function_name": "inet_csk_accept",
                "args": [{"int_arg": 0}],
                "return": {"sock_arg": {
                    "family": "AF_INET6", "protocol": "IPPROTO_TCP",
                    "saddr": "::", "daddr": "::", "sport": 8080, "dport": 0
                }},
                "action": "KPROBE_ACTION_POST",
                "policy_name": "accept",
                "policy_mode": "monitor"
            },
            "node_name": "n", "time": "2026-11-25T10:00:03Z", "seq": "10"
        });
        let a = attrs(&ev);
        assert_eq!(a["network.type"], "ipv6");
        assert_eq!(a["network.local.address"], "::");
        assert_eq!(a["network.local.port"], 8080);
        assert!(a.get("network.peer.address").is_none());
        assert!(a.get("network.peer.port").is_none());
        assert_eq!(a["tracer.policy.mode"], "monitor");
    }

    #[test]
    fn tracepoint_and_loss() {
        let ev = json!({
            "process_tracepoint": {
                "process": process(5, None),
                "subsys": "syscalls", "event": "sys_enter_openat",
                "args": [{"string_arg": "/etc/shadow"}],
                "policy_name": "open", "action": "KPROBE_ACTION_SIGKILL"
            },
            "node_name": "n", "time": "2026-11-25T10:00:03Z", "seq": "11"
        });
        let a = attrs(&ev);
        assert_eq!(a["tracer.tracepoint"], "syscalls/sys_enter_openat");
        assert_eq!(a["tracer.action"], "KPROBE_ACTION_SIGKILL");
        assert!(a.get("network.transport").is_none());

        let ev = json!({
            "event_loss": {"lost": {"exec": "3"}, "total_lost": "3"},
            "node_name": "n", "time": "2026-11-25T10:00:03Z", "seq": "12"
        });
        assert_eq!(
            attrs(&ev),
            json!({"event.name": "event_loss", "tracer.seq": 12})
        );
        let r = log_record(&ev, 0);
        assert_eq!(r.event_name, "event_loss");
        assert_eq!(to_json(r.body.as_ref().unwrap()), ev);
    }

    #[test]
    fn workloads_by_kind() {
        for (kind, key) in [
            ("CronJob", Some("k8s.cronjob.name")),
            ("Job", Some("k8s.job.name")),
            ("StatefulSet", Some("k8s.statefulset.name")),
            ("DaemonSet", Some("k8s.daemonset.name")),
            ("Pod", None),
            ("Rollout", None),
        ] {
            let mut pod = pod();
            pod["workload_kind"] = json!(kind);
            let ev = json!({"process_exec": {"process": process(1, Some(pod))}, "seq": "1"});
            let a = attrs(&ev);
            if let Some(key) = key {
                assert_eq!(a[key], "web", "{kind}");
            }
            assert!(a.get("k8s.deployment.name").is_none(), "{kind}");
            if kind == "Rollout" {
                assert_eq!(a["tracer.workload.name"], "web");
                assert_eq!(a["tracer.workload.kind"], "Rollout");
            } else {
                assert!(a.get("tracer.workload.kind").is_none(), "{kind}");
            }
        }
    }

    #[test]
    fn docker_only_container() {
        let mut p = process(1, None);
        p["docker"] = json!("abc");
        let a = attrs(&json!({"process_exit": {"process": p}}));
        assert_eq!(a["container.id"], "abc");
        assert!(a.get("k8s.pod.name").is_none());
    }

    #[test]
    fn body_mirrors_json_types() {
        let v = json!({"a": [1, -2, true, null, "s", 1.5, u64::MAX], "b": {}});
        let av = any_value(&v);
        let mut expected = v.clone();
        // One past i64 is its decimal string.
        expected["a"][6] = json!(u64::MAX.to_string());
        assert_eq!(to_json(&av), expected);
    }

    #[test]
    fn images_and_arguments() {
        assert_eq!(split_image("nginx"), ("nginx", None));
        assert_eq!(split_image("nginx:1.27"), ("nginx", Some("1.27")));
        assert_eq!(split_image("reg:5000/a/b"), ("reg:5000/a/b", None));
        assert_eq!(split_image("reg:5000/a/b:v2"), ("reg:5000/a/b", Some("v2")));
        assert_eq!(split_image("a/b@sha256:00"), ("a/b", None));
        assert_eq!(split_arguments(""), Vec::<String>::new());
        assert_eq!(split_arguments("-la /tmp"), ["-la", "/tmp"]);
        assert_eq!(
            split_arguments(r#"-c "echo 'hi there'" """#),
            ["-c", "echo 'hi there'", ""]
        );
        assert_eq!(split_arguments(r#""say \"x\"\\""#), [r#"say "x"\"#]);
    }

    #[test]
    fn times() {
        assert_eq!(unix_nanos("1970-01-01T00:00:00.000000001Z"), Some(1));
        assert_eq!(
            unix_nanos("2023-10-06T22:03:57Z"),
            Some(1_696_629_837_000_000_000)
        );
        assert_eq!(unix_nanos("yesterday"), None);
        let r = log_record(&json!({"event_loss": {}, "time": "bad"}), 1);
        assert_eq!(r.time_unix_nano, 0, "unknown");
    }

    #[test]
    fn resource_names_the_service_and_the_node() {
        let r = resource("host-a", "node-a");
        let m: Map<String, Value> = r
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), to_json(kv.value.as_ref().unwrap())))
            .collect();
        assert_eq!(
            Value::Object(m),
            json!({
                "service.name": "tracer",
                "service.version": env!("CARGO_PKG_VERSION"),
                "host.name": "host-a",
                "k8s.node.name": "node-a"
            })
        );
    }
}
