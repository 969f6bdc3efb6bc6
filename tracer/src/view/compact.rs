//! One line per event, for people (as Tetragon's `tetra getevents -o compact`):
//!
//! ```text
//! [TIME] KIND       WHERE         BINARY ARGUMENTS  DETAILS
//! exec       shop/web-7d9f-abcde /usr/bin/curl -s https://example.com
//! exit       shop/web-7d9f-abcde /usr/bin/curl -s https://example.com status=6
//! kprobe     node1 /usr/bin/curl -s https://example.com tcp_connect(tcp 10.0.0.5:0 -> 93.184.216.34:443) policy=egress action=post
//! tracepoint node1 /bin/cat /etc/shadow syscalls/sys_enter_openat(-100, /etc/shadow, 0) policy=files action=post
//! loss       node1 lost exec=2 tracepoint=1 total=17
//! ```
//!
//! WHERE is `namespace/pod` for a process in a pod, `node:container` (its first 12
//! characters) for one in a container whose pod is not known, and the node otherwise.
//! Everything taken from the event is escaped: a binary, an argument or a path may hold
//! terminal control codes, and they are shown, not run.

use std::{borrow::Cow, fmt::Write as _};

use serde_json::Value;

use super::Options;

/// Width of the event kind column (`tracepoint`).
const KIND_WIDTH: usize = 10;

/// ANSI SGR codes.
mod sgr {
    pub const BOLD: &str = "1";
    pub const DIM: &str = "2";
    pub const RED: &str = "31";
    pub const GREEN: &str = "32";
    pub const YELLOW: &str = "33";
    pub const BLUE: &str = "34";
    pub const MAGENTA: &str = "35";
    pub const CYAN: &str = "36";
    pub const BOLD_RED: &str = "1;31";
}

struct Paint(bool);

impl Paint {
    fn paint<'a>(&self, code: &str, text: &'a str) -> Cow<'a, str> {
        if self.0 && !text.is_empty() {
            Cow::Owned(format!("\x1b[{code}m{text}\x1b[0m"))
        } else {
            Cow::Borrowed(text)
        }
    }
}

/// The compact line of an event (without its `\n`): `kind` and `body` as
/// [`super::event_body`] found them in `event`.
pub fn line(event: &Value, kind: &str, body: &Value, options: &Options) -> String {
    let p = Paint(options.color);
    let mut out = String::new();
    if options.timestamps {
        let time = str_at(event, "time").unwrap_or("-");
        let _ = write!(out, "{} ", p.paint(sgr::DIM, &escape(time)));
    }
    let (marker, color) = marker(kind);
    // Padded before painting, so that the codes do not count in the width.
    let marker = format!("{marker:<KIND_WIDTH$}");
    out.push_str(&p.paint(color, &marker));
    out.push(' ');
    let process = body.get("process");
    out.push_str(&p.paint(sgr::CYAN, &place(event, process)));
    if let Some(process) = process {
        out.push(' ');
        out.push_str(&process_text(process, &p));
    }
    let detail = match kind {
        "process_exit" => exit(body, &p),
        "process_kprobe" | "process_lsm" => {
            let call = str_at(body, "function_name").unwrap_or("?");
            let mut s = call_text(&escape(call), body, &p);
            if let Some(ret) = body.get("return") {
                let _ = write!(s, " = {}", arg(ret));
            }
            s + &policy(body, &p)
        }
        "process_uprobe" => {
            let at = str_at(body, "symbol")
                .map(str::to_owned)
                .or_else(|| body.get("offset").map(scalar))
                .unwrap_or_else(|| "?".to_owned());
            let name = format!(
                "{}:{}",
                escape(str_at(body, "path").unwrap_or("?")),
                escape(&at)
            );
            call_text(&name, body, &p) + &policy(body, &p)
        }
        "process_usdt" => {
            let name = format!(
                "{}:{}:{}",
                escape(str_at(body, "path").unwrap_or("?")),
                escape(str_at(body, "provider").unwrap_or("?")),
                escape(str_at(body, "name").unwrap_or("?"))
            );
            call_text(&name, body, &p) + &policy(body, &p)
        }
        "process_tracepoint" => {
            let name = format!(
                "{}/{}",
                escape(str_at(body, "subsys").unwrap_or("?")),
                escape(str_at(body, "event").unwrap_or("?"))
            );
            call_text(&name, body, &p) + &policy(body, &p)
        }
        "process_loader" => {
            // The build id in hex, as `readelf -n` writes it.
            let id = str_at(body, "buildid").map(crate::mappings::build_id::hex_of_base64);
            let mut s = escape(str_at(body, "path").unwrap_or("?")).into_owned();
            if let Some(id) = id {
                let _ = write!(s, " buildid={}", p.paint(sgr::DIM, &escape(&id)));
            }
            s + &policy(body, &p)
        }
        "event_loss" => loss(body, &p),
        "rate_limit_info" => p
            .paint(
                sgr::RED,
                &format!(
                    "dropped {} (--export-rate-limit)",
                    body.get("number_of_dropped_process_events")
                        .map_or_else(|| "?".to_owned(), scalar)
                ),
            )
            .into_owned(),
        _ => policy(body, &p).trim_start().to_owned(),
    };
    if !detail.is_empty() {
        out.push(' ');
        out.push_str(&detail);
    }
    out
}

/// The kind's marker and colour: `process_exec` is `exec`; a kind this tracer does not
/// write (another agent's) is shown by its name.
fn marker(kind: &str) -> (&str, &'static str) {
    match kind {
        "process_exec" => ("exec", sgr::GREEN),
        "process_exit" => ("exit", sgr::YELLOW),
        "process_kprobe" => ("kprobe", sgr::BLUE),
        "process_tracepoint" => ("tracepoint", sgr::MAGENTA),
        "process_uprobe" => ("uprobe", sgr::BLUE),
        "process_usdt" => ("usdt", sgr::BLUE),
        "process_lsm" => ("lsm", sgr::BLUE),
        "process_loader" => ("loader", sgr::BLUE),
        "event_loss" => ("loss", sgr::BOLD_RED),
        "rate_limit_info" => ("ratelimit", sgr::BOLD_RED),
        other => (other.strip_prefix("process_").unwrap_or(other), sgr::BOLD),
    }
}

/// Where the event's process ran.
fn place(event: &Value, process: Option<&Value>) -> String {
    let node = escape(str_at(event, "node_name").unwrap_or("-")).into_owned();
    let Some(process) = process else {
        return node;
    };
    if let Some(pod) = process.get("pod") {
        return format!(
            "{}/{}",
            escape(str_at(pod, "namespace").unwrap_or("?")),
            escape(str_at(pod, "name").unwrap_or("?"))
        );
    }
    match str_at(process, "docker") {
        Some(id) => {
            let short: String = id.chars().take(12).collect();
            format!("{node}:{}", escape(&short))
        }
        None => node,
    }
}

/// The binary and its arguments (the pid when the binary is not known).
fn process_text(process: &Value, p: &Paint) -> String {
    let binary = str_at(process, "binary").unwrap_or_default();
    let mut s = if binary.is_empty() {
        match process.get("pid") {
            Some(pid) => format!("[pid {pid}]"),
            None => "[unknown process]".to_owned(),
        }
    } else {
        p.paint(sgr::BOLD, &escape(binary)).into_owned()
    };
    if let Some(args) = str_at(process, "arguments").filter(|a| !a.is_empty()) {
        s.push(' ');
        s.push_str(&escape(args));
    }
    s
}

fn exit(body: &Value, p: &Paint) -> String {
    if let Some(signal) = str_at(body, "signal").filter(|s| !s.is_empty()) {
        return format!("signal={}", p.paint(sgr::RED, &escape(signal)));
    }
    match body.get("status").and_then(Value::as_u64) {
        Some(status) if status != 0 => {
            format!("status={}", p.paint(sgr::RED, &status.to_string()))
        }
        _ => "status=0".to_owned(),
    }
}

/// `name(arg, arg)`.
fn call_text(name: &str, body: &Value, p: &Paint) -> String {
    let args: Vec<String> = body
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(arg).collect())
        .unwrap_or_default();
    format!("{}({})", p.paint(sgr::BOLD, name), args.join(", "))
}

/// ` policy=NAME action=post`, the action without Tetragon's `KPROBE_ACTION_` and
/// `(monitor)` when the policy only said what it would have done.
fn policy(body: &Value, p: &Paint) -> String {
    let mut s = String::new();
    if let Some(name) = str_at(body, "policy_name") {
        let _ = write!(s, " policy={}", escape(name));
    }
    if let Some(action) = str_at(body, "action") {
        let action = action
            .strip_prefix("KPROBE_ACTION_")
            .unwrap_or(action)
            .to_ascii_lowercase();
        let monitor = if str_at(body, "policy_mode") == Some("monitor") {
            "(monitor)"
        } else {
            ""
        };
        let text = format!("{}{monitor}", escape(&action));
        let color = if action == "post" { sgr::DIM } else { sgr::RED };
        let _ = write!(s, " action={}", p.paint(color, &text));
    }
    s
}

/// `lost exec=2 tracepoint=1 total=17`.
fn loss(body: &Value, p: &Paint) -> String {
    let mut s = "lost".to_owned();
    if let Some(count) = body.get("count") {
        let _ = write!(s, " {}", scalar(count));
    }
    if let Some(place) = str_at(body, "where") {
        let _ = write!(s, " in {}", escape(place));
    }
    if let Some(lost) = body.get("lost").and_then(Value::as_object) {
        for (kind, n) in lost {
            let _ = write!(s, " {}={}", escape(kind), scalar(n));
        }
    }
    if let Some(total) = body.get("total_lost") {
        let _ = write!(s, " total={}", scalar(total));
    }
    if let Some(since) = str_at(body, "since") {
        let _ = write!(s, " since {}", escape(since));
    }
    p.paint(sgr::RED, &s).into_owned()
}

/// One argument of a kprobe or tracepoint (or a return value), summarised: a socket as
/// `proto saddr:sport -> daddr:dport`, a file as its path, strings and integers as
/// themselves, a label first (`label=value`).
pub fn arg(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return scalar(v);
    };
    let label = obj.get("label").and_then(Value::as_str);
    let Some((key, value)) = obj.iter().find(|(k, _)| *k != "label") else {
        return "{}".to_owned();
    };
    let text = match key.as_str() {
        "int_arg" | "uint_arg" | "long_arg" | "size_arg" | "string_arg" => scalar(value),
        "file_arg" | "path_arg" | "linux_binprm_arg" => {
            str_at(value, "path").map_or_else(|| scalar(value), |s| escape(s).into_owned())
        }
        "sock_arg" => sock(value),
        "skb_arg" => match value.get("len") {
            Some(len) => format!("{} len {}", sock(value), scalar(len)),
            None => sock(value),
        },
        // `cred_arg`: as earlier versions of the tracer wrote it.
        "process_credentials_arg" | "cred_arg" => ["uid", "gid", "euid", "egid"]
            .iter()
            .filter_map(|k| Some(format!("{k}={}", scalar(value.get(*k)?))))
            .collect::<Vec<_>>()
            .join(" "),
        "bytes_arg" => bytes(value, None),
        "truncated_bytes_arg" => bytes(
            value.get("bytes_arg").unwrap_or(&Value::Null),
            value.get("orig_size"),
        ),
        other => format!("{}={}", escape(other), scalar(value)),
    };
    match label {
        Some(l) => format!("{}={text}", escape(l)),
        None => text,
    }
}

/// `tcp 10.0.0.5:41000 -> 93.184.216.34:443`, IPv6 addresses in brackets.
fn sock(v: &Value) -> String {
    let endpoint = |addr: &str, port: &str| {
        let a = str_at(v, addr).unwrap_or("?");
        let port = v.get(port).map_or_else(|| "?".to_owned(), scalar);
        if a.contains(':') {
            format!("[{}]:{port}", escape(a))
        } else {
            format!("{}:{port}", escape(a))
        }
    };
    let mut s = String::new();
    if let Some(proto) = str_at(v, "protocol") {
        let short = proto.strip_prefix("IPPROTO_").unwrap_or(proto);
        let _ = write!(s, "{} ", escape(&short.to_ascii_lowercase()));
    }
    let _ = write!(
        s,
        "{} -> {}",
        endpoint("saddr", "sport"),
        endpoint("daddr", "dport")
    );
    s
}

/// Base64 bytes as `b"text\x00"`, and `...(N bytes)` when the event kept only the first.
fn bytes(v: &Value, orig_size: Option<&Value>) -> String {
    use base64::Engine as _;
    let Some(b64) = v.as_str() else {
        return scalar(v);
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return escape(b64).into_owned();
    };
    let mut s = String::from("b\"");
    for b in raw {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    if let Some(n) = orig_size {
        let _ = write!(s, "...({} bytes)", scalar(n));
    }
    s
}

/// A JSON value as text: a string as itself (escaped), anything else as JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => escape(s).into_owned(),
        other => escape(&other.to_string()).into_owned(),
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str()
}

/// `s` with what a terminal would act on, or would show misleadingly, written as
/// escapes: control characters (`\n`, `\u{1b}`), and the zero-width and
/// bidirectional formatting characters (which can make text read other than it runs).
pub fn escape(s: &str) -> Cow<'_, str> {
    fn hidden(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
    }
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::view::{Output, event_body, tests::options};

    fn compact(event: Value) -> String {
        compact_with(event, &options(Output::Compact))
    }

    fn compact_with(event: Value, options: &Options) -> String {
        let (kind, body) = event_body(&event).unwrap();
        line(&event, kind, body, options)
    }

    fn pod() -> Value {
        json!({"namespace": "shop", "name": "web-7d9f-abcde", "uid": "u", "container": {"id": "containerd://4c3e", "name": "main"}, "workload": "web", "workload_kind": "Deployment"})
    }

    fn process() -> Value {
        json!({"exec_id": "ZXhlYw==", "pid": 42, "uid": 0, "cwd": "/", "binary": "/usr/bin/curl", "arguments": "-s \"a b\" https://example.com", "flags": "execve", "start_time": "2026-01-01T00:00:00Z", "auid": 4294967295u32, "tid": 42, "process_credentials": {"uid": 0, "gid": 0, "euid": 0, "egid": 0}})
    }

    fn in_pod() -> Value {
        let mut p = process();
        p["docker"] = json!("4c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8");
        p["pod"] = pod();
        p
    }

    #[test]
    fn exec_in_a_pod() {
        let e = json!({"process_exec": {"process": in_pod(), "parent": process()}, "node_name": "node1", "time": "2026-01-01T00:00:01.000000001Z", "seq": "7"});
        assert_eq!(
            compact(e),
            r#"exec       shop/web-7d9f-abcde /usr/bin/curl -s "a b" https://example.com"#
        );
    }

    #[test]
    fn exec_on_the_host_and_in_a_container_without_its_pod() {
        let e = json!({"process_exec": {"process": process()}, "node_name": "node1", "time": "t"});
        assert_eq!(
            compact(e),
            r#"exec       node1 /usr/bin/curl -s "a b" https://example.com"#
        );
        let mut p = process();
        p["docker"] = json!("4c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8");
        p["pod_unknown"] = json!(true);
        p["arguments"] = json!("");
        let e = json!({"process_exec": {"process": p}, "node_name": "node1", "time": "t"});
        assert_eq!(compact(e), "exec       node1:4c3e5f6a7b8c /usr/bin/curl");
    }

    #[test]
    fn exit_status_or_signal() {
        let e = json!({"process_exit": {"process": in_pod(), "status": 6, "time": "t"}, "node_name": "node1", "time": "t"});
        assert_eq!(
            compact(e),
            r#"exit       shop/web-7d9f-abcde /usr/bin/curl -s "a b" https://example.com status=6"#
        );
        let e = json!({"process_exit": {"process": process(), "signal": "SIGKILL", "time": "t"}, "node_name": "node1", "time": "t"});
        assert!(compact(e).ends_with("https://example.com signal=SIGKILL"));
        let e = json!({"process_exit": {"process": process(), "time": "t"}, "node_name": "node1", "time": "t"});
        assert!(compact(e).ends_with("https://example.com status=0"));
    }

    #[test]
    fn exit_of_a_process_whose_start_was_missed() {
        let e = json!({"process_exit": {"process": {"exec_id": "x", "pid": 99, "uid": 0, "flags": "miss", "start_time": ""}, "status": 1}, "node_name": "node1", "time": "t"});
        assert_eq!(compact(e), "exit       node1 [pid 99] status=1");
    }

    #[test]
    fn kprobe_socket_with_policy_and_action() {
        let e = json!({"process_kprobe": {"process": in_pod(), "function_name": "tcp_connect", "args": [{"sock_arg": {"family": "AF_INET", "type": "SOCK_STREAM", "protocol": "IPPROTO_TCP", "saddr": "10.0.0.5", "daddr": "93.184.216.34", "sport": 41000, "dport": 443, "cookie": "1", "state": "TCP_SYN_SENT"}}], "action": "KPROBE_ACTION_POST", "policy_name": "egress", "message": "m", "tags": ["t"]}, "node_name": "node1", "time": "t"});
        assert_eq!(
            compact(e),
            r#"kprobe     shop/web-7d9f-abcde /usr/bin/curl -s "a b" https://example.com tcp_connect(tcp 10.0.0.5:41000 -> 93.184.216.34:443) policy=egress action=post"#
        );
    }

    #[test]
    fn kprobe_return_file_int_string_ipv6_and_monitor() {
        let e = json!({"process_kprobe": {"process": process(), "function_name": "__x64_sys_openat", "args": [{"int_arg": -100}, {"string_arg": "/etc/missing file"}, {"int_arg": 0}], "return": {"int_arg": -2}, "action": "KPROBE_ACTION_SIGKILL", "policy_name": "open", "policy_mode": "monitor"}, "node_name": "node1", "time": "t"});
        assert!(compact(e).ends_with(
            "__x64_sys_openat(-100, /etc/missing file, 0) = -2 policy=open action=sigkill(monitor)"
        ),);
        let e = json!({"process_kprobe": {"process": process(), "function_name": "security_file_open", "args": [{"file_arg": {"path": "/etc/shadow"}, "label": "file"}], "action": "KPROBE_ACTION_OVERRIDE", "policy_name": "deny"}, "node_name": "node1", "time": "t"});
        assert!(
            compact(e)
                .ends_with("security_file_open(file=/etc/shadow) policy=deny action=override")
        );
        let e = json!({"process_kprobe": {"process": process(), "function_name": "inet_csk_accept", "args": [{"sock_arg": {"protocol": "IPPROTO_TCP", "saddr": "::", "daddr": "::", "sport": 8080, "dport": 0}}], "return": {"sock_arg": {"protocol": "IPPROTO_TCP", "saddr": "::1", "daddr": "::1", "sport": 8080, "dport": 51000}}, "action": "KPROBE_ACTION_POST", "policy_name": "accepts"}, "node_name": "node1", "time": "t"});
        assert!(
            compact(e).ends_with(
                "inet_csk_accept(tcp [::]:8080 -> [::]:0) = tcp [::1]:8080 -> [::1]:51000 policy=accepts action=post"
            ),
        );
    }

    #[test]
    fn kprobe_other_argument_types() {
        let args = json!([
            {"path_arg": {"path": "/tmp/x"}},
            {"linux_binprm_arg": {"path": "/usr/bin/su"}},
            {"uint_arg": 7},
            {"size_arg": "300"},
            {"long_arg": "-5"},
            {"skb_arg": {"family": "AF_INET", "protocol": "IPPROTO_UDP", "saddr": "10.0.0.5", "daddr": "10.0.0.53", "sport": 5353, "dport": 53, "len": 57}},
            {"cred_arg": {"uid": 1000, "gid": 1000, "euid": 0, "egid": 0, "securebits": [], "caps": {}}},
            {"bytes_arg": "aGkKAP8="},
            {"truncated_bytes_arg": {"bytes_arg": "YWI=", "orig_size": "300"}},
            {"future_arg": {"x": 1}}
        ]);
        let e = json!({"process_kprobe": {"process": process(), "function_name": "f", "args": args, "action": "KPROBE_ACTION_POST", "policy_name": "p"}, "node_name": "node1", "time": "t"});
        let line = compact(e);
        let inner = line
            .split_once("f(")
            .and_then(|(_, r)| r.split_once(") policy="))
            .map(|(a, _)| a)
            .unwrap();
        assert_eq!(
            inner,
            r#"/tmp/x, /usr/bin/su, 7, 300, -5, udp 10.0.0.5:5353 -> 10.0.0.53:53 len 57, uid=1000 gid=1000 euid=0 egid=0, b"hi\n\x00\xff", b"ab"...(300 bytes), future_arg={"x":1}"#
        );
    }

    #[test]
    fn tracepoint() {
        let e = json!({"process_tracepoint": {"process": process(), "subsys": "syscalls", "event": "sys_enter_openat", "args": [{"int_arg": -100}, {"string_arg": "/etc/shadow"}, {"int_arg": 0}], "policy_name": "files", "action": "KPROBE_ACTION_POST", "tags": ["x"]}, "node_name": "node1", "time": "t"});
        assert_eq!(
            compact(e),
            r#"tracepoint node1 /usr/bin/curl -s "a b" https://example.com syscalls/sys_enter_openat(-100, /etc/shadow, 0) policy=files action=post"#
        );
    }

    #[test]
    fn event_loss() {
        let e = json!({"event_loss": {"lost": {"exec": "2", "tracepoint": "1"}, "total_lost": "17"}, "node_name": "node1", "time": "t"});
        assert_eq!(
            compact(e),
            "loss       node1 lost exec=2 tracepoint=1 total=17"
        );
        let e = json!({"event_loss": {"where": "export_file", "reason": "r", "lost": {"process_exec": "3"}, "count": "3", "total_lost": "5", "since": "T0"}, "node_name": "node1", "time": "t"});
        assert_eq!(
            compact(e),
            "loss       node1 lost 3 in export_file process_exec=3 total=5 since T0"
        );
        let e = json!({"rate_limit_info": {"number_of_dropped_process_events": "40"}, "node_name": "node1", "time": "t"});
        assert_eq!(
            compact(e),
            "ratelimit  node1 dropped 40 (--export-rate-limit)"
        );
    }

    #[test]
    fn a_loader_event_shows_the_file_and_its_build_id_in_hex() {
        let e = json!({"process_loader": {"process": process(), "path": "/usr/lib/x86_64-linux-gnu/libc.so.6", "buildid": "3q2+7wAB", "policy_name": "loader"}, "node_name": "node1", "time": "t"});
        assert_eq!(
            compact(e),
            r#"loader     node1 /usr/bin/curl -s "a b" https://example.com /usr/lib/x86_64-linux-gnu/libc.so.6 buildid=deadbeef0001 policy=loader"#
        );
    }

    #[test]
    fn another_agents_event_kind_by_its_name() {
        let e = json!({"process_throttle": {"process": process(), "type": "THROTTLE_START", "policy_name": "p"}, "node_name": "node1", "time": "t"});
        assert_eq!(
            compact(e),
            r#"throttle   node1 /usr/bin/curl -s "a b" https://example.com policy=p"#
        );
        let e = json!({"process_lsm": {"process": process(), "function_name": "file_open", "args": [{"file_arg": {"path": "/etc/shadow"}}], "policy_name": "p", "action": "KPROBE_ACTION_OVERRIDE"}, "node_name": "node1", "time": "t"});
        assert_eq!(
            compact(e),
            r#"lsm        node1 /usr/bin/curl -s "a b" https://example.com file_open(/etc/shadow) policy=p action=override"#
        );
    }

    #[test]
    fn timestamps_prefix_the_time() {
        let mut o = options(Output::Compact);
        o.timestamps = true;
        let e = json!({"process_exec": {"process": process()}, "node_name": "node1", "time": "2026-01-01T00:00:01.000000001Z"});
        assert!(
            compact_with(e, &o).starts_with("2026-01-01T00:00:01.000000001Z exec       node1 ")
        );
    }

    #[test]
    fn colour_codes_only_when_asked() {
        let e = json!({"process_exit": {"process": process(), "signal": "SIGKILL"}, "node_name": "node1", "time": "t"});
        assert!(!compact(e.clone()).contains('\x1b'));
        let mut o = options(Output::Compact);
        o.color = true;
        assert_eq!(
            compact_with(e, &o),
            "\x1b[33mexit      \x1b[0m \x1b[36mnode1\x1b[0m \x1b[1m/usr/bin/curl\x1b[0m -s \"a b\" https://example.com signal=\x1b[31mSIGKILL\x1b[0m"
        );
    }

    #[test]
    fn what_the_event_holds_is_escaped() {
        let mut p = process();
        p["binary"] = json!("/tmp/\u{1b}[2Jevil");
        p["arguments"] = json!("a\nb \u{202e}txt.exe");
        let e = json!({"process_tracepoint": {"process": p, "subsys": "syscalls", "event": "sys_enter_openat", "args": [{"string_arg": "\u{7}bell"}], "policy_name": "x\ty"}, "node_name": "n\u{1b}", "time": "t"});
        let line = compact(e);
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert_eq!(
            line,
            r"tracepoint n\u{1b} /tmp/\u{1b}[2Jevil a\nb \u{202e}txt.exe syscalls/sys_enter_openat(\u{7}bell) policy=x\ty"
        );
    }
}
