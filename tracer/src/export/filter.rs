//! Which events are exported: Tetragon's `--export-allowlist` and `--export-denylist`.
//! Each is a list of JSON filter objects, one per line; an event passes a list when it
//! matches any of its objects (OR), and matches an object when it matches every key of
//! it (AND); within a key's list, any value matches (OR). An event is exported when the
//! allowlist is empty or passes it, and the denylist does not: deny wins.
//!
//! The keys are Tetragon's: `event_set`, `binary_regex`, `parent_binary_regex`,
//! `arguments_regex`, `parent_arguments_regex`, `namespace`, `namespace_regex`,
//! `pod_regex`, `labels`, `policy_names`, `pid`, `container_id`, `container_name_regex`,
//! `in_init_tree`, `ancestor_binary_regex` (the event's `ancestors`: with
//! `--enable-ancestors`), `health_check`. The agent's own `event_loss` and `rate_limit_info` events are never
//! filtered: a gap must always be said.

use std::collections::BTreeMap;

use kube::core::{Expression, Selector, SelectorExt as _};
use regex::Regex;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("{flag}, filter {index} (line {line}): {message}")]
pub struct FilterError {
    pub flag: &'static str,
    /// 1-based, among the filter objects.
    pub index: usize,
    pub line: usize,
    pub message: String,
}

/// One filter object: every key set must match.
#[derive(Debug, Default)]
pub struct Filter {
    event_set: Vec<String>,
    binary: Vec<Regex>,
    parent_binary: Vec<Regex>,
    arguments: Vec<Regex>,
    parent_arguments: Vec<Regex>,
    namespace: Vec<String>,
    namespace_regex: Vec<Regex>,
    pod: Vec<Regex>,
    labels: Vec<Selector>,
    policy_names: Vec<String>,
    pid: Vec<u64>,
    container_id: Vec<Regex>,
    container_name: Vec<Regex>,
    /// The process's `in_init_tree` (a missing one is false, as Tetragon assumes).
    in_init_tree: Option<bool>,
    /// Any of the event's `ancestors` (`--enable-ancestors`) has a matching binary.
    ancestor_binary: Vec<Regex>,
}

/// An allowlist and a denylist.
#[derive(Debug, Default)]
pub struct Filters {
    allow: Vec<Filter>,
    deny: Vec<Filter>,
}

/// Why an event was not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Export,
    /// No allowlist filter matched.
    NotAllowed,
    /// A denylist filter matched.
    Denied,
}

impl Filters {
    /// Parses the flags' texts (each: JSON objects, one per line; blank lines and lines
    /// starting with `#` are skipped).
    pub fn parse(allow: &str, deny: &str) -> Result<Self, FilterError> {
        Ok(Self {
            allow: parse_list("--export-allowlist", allow)?,
            deny: parse_list("--export-denylist", deny)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    pub fn verdict(&self, event: &Value) -> Verdict {
        if !self.allow.is_empty() && !self.allow.iter().any(|f| f.matches(event)) {
            return Verdict::NotAllowed;
        }
        if self.deny.iter().any(|f| f.matches(event)) {
            return Verdict::Denied;
        }
        Verdict::Export
    }
}

fn parse_list(flag: &'static str, text: &str) -> Result<Vec<Filter>, FilterError> {
    parse_objects(
        flag,
        text,
        r#"{"event_set":["PROCESS_EXEC"]}"#,
        Filter::from_json,
    )
}

/// Parses the text of `flag`: JSON objects, one per line (blank lines and lines starting
/// with `#` skipped), each made into a `T` by `from_json`; `example` is a valid object,
/// for the error of a line that is not JSON. The form of every filter flag (Tetragon's).
pub fn parse_objects<T>(
    flag: &'static str,
    text: &str,
    example: &str,
    from_json: impl Fn(&Value) -> Result<T, String>,
) -> Result<Vec<T>, FilterError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_text = line.trim();
        if line_text.is_empty() || line_text.starts_with('#') {
            continue;
        }
        let err = |message: String| FilterError {
            flag,
            index: out.len() + 1,
            line: i + 1,
            message,
        };
        let value: Value = serde_json::from_str(line_text).map_err(|e| {
            err(format!(
                "not a JSON object ({e}); write one object per line, such as {example}"
            ))
        })?;
        out.push(from_json(&value).map_err(err)?);
    }
    Ok(out)
}

/// The event kinds by Tetragon's `EventType` name and by the JSON key.
const EVENT_TYPES: [(&str, &str); 8] = [
    ("PROCESS_EXEC", "process_exec"),
    ("PROCESS_EXIT", "process_exit"),
    ("PROCESS_KPROBE", "process_kprobe"),
    ("PROCESS_TRACEPOINT", "process_tracepoint"),
    ("PROCESS_LSM", "process_lsm"),
    ("PROCESS_UPROBE", "process_uprobe"),
    ("PROCESS_USDT", "process_usdt"),
    ("PROCESS_LOADER", "process_loader"),
];

/// `PROCESS_EXEC` or `process_exec` to the event's key.
pub fn event_type(name: &str) -> Result<&'static str, String> {
    EVENT_TYPES
        .iter()
        .find(|(upper, lower)| name == *upper || name == *lower)
        .map(|(_, lower)| *lower)
        .ok_or_else(|| {
            format!(
                "`{name}` is not an event type; the types are {}",
                EVENT_TYPES.map(|(u, _)| u).join(", ")
            )
        })
}

/// The top-level key naming an event (`process_exec`).
pub fn kind_of(event: &Value) -> &str {
    event
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(_, v)| v.is_object())
                .map(|(k, _)| k.as_str())
        })
        .unwrap_or("")
}

/// The event's body (the object under its kind's key).
fn body(event: &Value) -> &Value {
    &event[kind_of(event)]
}

impl Filter {
    fn from_json(value: &Value) -> Result<Self, String> {
        let obj = value
            .as_object()
            .ok_or("not a JSON object: write one object per line")?;
        let mut f = Filter::default();
        for (key, v) in obj {
            match key.as_str() {
                "event_set" => {
                    f.event_set = strings(key, v)?
                        .iter()
                        .map(|s| event_type(s).map(str::to_owned))
                        .collect::<Result<_, _>>()?
                }
                "binary_regex" => f.binary = regexes(key, v)?,
                "parent_binary_regex" => f.parent_binary = regexes(key, v)?,
                "arguments_regex" => f.arguments = regexes(key, v)?,
                "parent_arguments_regex" => f.parent_arguments = regexes(key, v)?,
                "namespace" => f.namespace = strings(key, v)?,
                "namespace_regex" => f.namespace_regex = regexes(key, v)?,
                "pod_regex" => f.pod = regexes(key, v)?,
                "labels" => {
                    f.labels = strings(key, v)?
                        .iter()
                        .map(|s| label_selector(s))
                        .collect::<Result<_, _>>()?
                }
                "policy_names" => f.policy_names = strings(key, v)?,
                "pid" => {
                    f.pid = v
                        .as_array()
                        .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
                        .ok_or("`pid` is a list of numbers, such as [1, 42]")?
                }
                "container_id" => f.container_id = regexes(key, v)?,
                "container_name_regex" => f.container_name = regexes(key, v)?,
                // The tracer sends no health-check events: nothing to filter.
                "health_check" => {
                    if !v.is_boolean() {
                        return Err("`health_check` is true or false".into());
                    }
                }
                "in_init_tree" => {
                    f.in_init_tree = Some(v.as_bool().ok_or("`in_init_tree` is true or false")?)
                }
                "ancestor_binary_regex" => f.ancestor_binary = regexes(key, v)?,
                "pid_set" | "capabilities" | "cel_expression" => {
                    return Err(format!(
                        "`{key}` is a Tetragon filter the tracer does not support; filter on the other keys"
                    ));
                }
                other => {
                    return Err(format!(
                        "`{other}` is not a filter key; the keys are event_set, binary_regex, parent_binary_regex, arguments_regex, parent_arguments_regex, namespace, namespace_regex, pod_regex, labels, policy_names, pid, container_id, container_name_regex, in_init_tree, ancestor_binary_regex, health_check"
                    ));
                }
            }
        }
        Ok(f)
    }

    pub fn matches(&self, event: &Value) -> bool {
        let kind = kind_of(event);
        let body = body(event);
        let process = &body["process"];
        let parent = &body["parent"];
        let pod = &process["pod"];
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        let any = |res: &[Regex], s: &Value| {
            res.is_empty() || res.iter().any(|r| r.is_match(s.as_str().unwrap_or("")))
        };
        (self.event_set.is_empty() || self.event_set.iter().any(|t| t == kind))
            && any(&self.binary, &process["binary"])
            && any(&self.parent_binary, &parent["binary"])
            && any(&self.arguments, &process["arguments"])
            && any(&self.parent_arguments, &parent["arguments"])
            // `""`: a process outside any pod.
            && (self.namespace.is_empty() || self.namespace.contains(&text(&pod["namespace"])))
            && (self.namespace_regex.is_empty()
                || (pod.is_object() && any(&self.namespace_regex, &pod["namespace"])))
            && (self.pod.is_empty() || (pod.is_object() && any(&self.pod, &pod["name"])))
            && (self.labels.is_empty() || {
                let labels: BTreeMap<String, String> = pod["pod_labels"]
                    .as_object()
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), text(v))).collect())
                    .unwrap_or_default();
                pod.is_object() && self.labels.iter().any(|s| s.matches(&labels))
            })
            && (self.policy_names.is_empty()
                || self.policy_names.contains(&text(&body["policy_name"])))
            && (self.pid.is_empty()
                || process["pid"].as_u64().is_some_and(|p| self.pid.contains(&p)))
            && (self.container_id.is_empty()
                || process["docker"].as_str().is_some_and(|id| self.container_id.iter().any(|r| r.is_match(id))))
            && (self.container_name.is_empty()
                || (pod.is_object() && any(&self.container_name, &pod["container"]["name"])))
            && self
                .in_init_tree
                .is_none_or(|want| process["in_init_tree"].as_bool().unwrap_or(false) == want)
            && (self.ancestor_binary.is_empty()
                || body["ancestors"].as_array().is_some_and(|a| {
                    a.iter().any(|p| {
                        let b = p["binary"].as_str().unwrap_or("");
                        self.ancestor_binary.iter().any(|r| r.is_match(b))
                    })
                }))
    }
}

fn strings(key: &str, v: &Value) -> Result<Vec<String>, String> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| format!("`{key}` is a list of strings, such as [\"a\", \"b\"]"))
}

fn regexes(key: &str, v: &Value) -> Result<Vec<Regex>, String> {
    strings(key, v)?
        .iter()
        .map(|s| {
            Regex::new(s).map_err(|e| format!("`{key}`: `{s}` is not a regular expression: {e}"))
        })
        .collect()
}

/// A Kubernetes label selector in its text form: `app=web,tier!=db`, `env in (a,b)`,
/// `env notin (c)`, `key`, `!key`.
pub fn label_selector(text: &str) -> Result<Selector, String> {
    let bad = |why: &str| {
        format!(
            "`labels`: `{text}` is not a label selector ({why}); such as `app=web,env in (prod,staging)`"
        )
    };
    let mut exprs = Vec::new();
    // Split on commas outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let set = |rest: &str| -> Result<std::collections::BTreeSet<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| bad("a set is written `(a,b)`"))?;
            Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
        };
        let expr = if let Some((k, v)) = part.split_once("!=") {
            Expression::NotEqual(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Expression::Equal(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = part.split_once(" notin ") {
            Expression::NotIn(k.trim().into(), set(rest)?)
        } else if let Some((k, rest)) = part.split_once(" in ") {
            Expression::In(k.trim().into(), set(rest)?)
        } else if let Some(k) = part.strip_prefix('!') {
            Expression::DoesNotExist(k.trim().into())
        } else if part.contains(char::is_whitespace) {
            return Err(bad("unknown operator"));
        } else {
            Expression::Exists(part.into())
        };
        exprs.push(expr);
    }
    if exprs.is_empty() {
        return Err(bad("empty"));
    }
    Ok(exprs.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn exec(binary: &str, args: &str, pod: Option<(&str, &str)>) -> Value {
        let mut process =
            json!({"pid": 42, "binary": binary, "arguments": args, "docker": "0123456789abcdef"});
        if let Some((ns, name)) = pod {
            process["pod"] = json!({"namespace": ns, "name": name,
                "pod_labels": {"app": "web", "tier": "front"},
                "container": {"id": "containerd://0123456789abcdef", "name": "nginx"}});
        }
        json!({"process_exec": {"process": process, "parent": {"binary": "/bin/bash", "arguments": "-c x"}},
               "node_name": "n", "time": "t"})
    }

    fn verdict(allow: &str, deny: &str, ev: &Value) -> Verdict {
        Filters::parse(allow, deny).unwrap().verdict(ev)
    }

    #[test]
    fn allow_is_any_line_and_every_key() {
        let curl = exec("/usr/bin/curl", "http://x", Some(("team-a", "web-1")));
        let host = exec("/usr/bin/ls", "-l", None);
        let allow = r#"{"binary_regex": ["curl$"], "namespace": ["team-a"]}
{"binary_regex": ["^/usr/bin/ls$"]}"#;
        assert_eq!(verdict(allow, "", &curl), Verdict::Export);
        assert_eq!(verdict(allow, "", &host), Verdict::Export);
        let other = exec("/usr/bin/curl", "", Some(("team-b", "x")));
        assert_eq!(
            verdict(allow, "", &other),
            Verdict::NotAllowed,
            "both keys of line 1"
        );
        assert_eq!(
            verdict("", "", &other),
            Verdict::Export,
            "no lists: everything"
        );
    }

    #[test]
    fn deny_wins() {
        let ev = exec("/usr/bin/curl", "", Some(("kube-system", "x")));
        let allow = r#"{"event_set": ["PROCESS_EXEC"]}"#;
        let deny = r#"{"namespace": ["", "kube-system"]}"#;
        assert_eq!(verdict(allow, deny, &ev), Verdict::Denied);
        assert_eq!(
            verdict(allow, deny, &exec("/bin/x", "", None)),
            Verdict::Denied,
            "the namespace \"\" is a host process"
        );
        assert_eq!(
            verdict(allow, deny, &exec("/bin/x", "", Some(("team-a", "p")))),
            Verdict::Export
        );
    }

    #[test]
    fn every_key() {
        let ev = exec(
            "/usr/bin/curl",
            "--password hunter2",
            Some(("team-a", "web-1")),
        );
        let yes = [
            r#"{"event_set": ["process_exec"]}"#,
            r#"{"parent_binary_regex": ["bash$"]}"#,
            r#"{"arguments_regex": ["password"]}"#,
            r#"{"parent_arguments_regex": ["^-c"]}"#,
            r#"{"namespace_regex": ["^team-"]}"#,
            r#"{"pod_regex": ["^web-"]}"#,
            r#"{"labels": ["app=web,tier in (front,back)"]}"#,
            r#"{"labels": ["app!=db", "nope"]}"#,
            r#"{"pid": [1, 42]}"#,
            r#"{"container_id": ["^0123"]}"#,
            r#"{"container_name_regex": ["^nginx$"]}"#,
            r#"{"health_check": true}"#,
        ];
        for f in yes {
            assert_eq!(verdict(f, "", &ev), Verdict::Export, "{f}");
        }
        let no = [
            r#"{"event_set": ["PROCESS_EXIT"]}"#,
            r#"{"parent_binary_regex": ["zsh$"]}"#,
            r#"{"namespace_regex": ["^prod"]}"#,
            r#"{"pod_regex": ["^db-"]}"#,
            r#"{"labels": ["app=db"]}"#,
            r#"{"labels": ["!app"]}"#,
            r#"{"labels": ["tier notin (front)"]}"#,
            r#"{"policy_names": ["p"]}"#,
            r#"{"pid": [7]}"#,
            r#"{"container_id": ["^ffff"]}"#,
        ];
        for f in no {
            assert_eq!(verdict(f, "", &ev), Verdict::NotAllowed, "{f}");
        }
        // Pod keys never match a host process.
        let host = exec("/bin/x", "", None);
        assert_eq!(
            verdict(r#"{"pod_regex": [".*"]}"#, "", &host),
            Verdict::NotAllowed
        );
        assert_eq!(
            verdict(r#"{"labels": ["!app"]}"#, "", &host),
            Verdict::NotAllowed
        );
        // The init tree and the ancestors.
        let in_tree = json!({"process_exec": {
            "process": {"binary": "/x", "in_init_tree": true},
            "ancestors": [{"binary": "/usr/bin/containerd-shim"}, {"binary": "/sbin/init"}]
        }});
        assert_eq!(
            verdict(r#"{"in_init_tree": true}"#, "", &in_tree),
            Verdict::Export
        );
        assert_eq!(
            verdict(r#"{"in_init_tree": false}"#, "", &in_tree),
            Verdict::NotAllowed
        );
        assert_eq!(
            verdict(r#"{"in_init_tree": false}"#, "", &host),
            Verdict::Export,
            "missing: false"
        );
        assert_eq!(
            verdict(r#"{"ancestor_binary_regex": ["shim$"]}"#, "", &in_tree),
            Verdict::Export
        );
        assert_eq!(
            verdict(r#"{"ancestor_binary_regex": ["shim$"]}"#, "", &host),
            Verdict::NotAllowed,
            "no ancestors"
        );
        let kprobe = json!({"process_kprobe": {"process": {"binary": "/x"}, "policy_name": "p"}});
        assert_eq!(
            verdict(r#"{"policy_names": ["p"]}"#, "", &kprobe),
            Verdict::Export
        );
    }

    #[test]
    fn errors_name_the_flag_line_and_fix() {
        let e = Filters::parse("\n{\"binary\": [\"x\"]}", "").unwrap_err();
        assert_eq!((e.flag, e.index, e.line), ("--export-allowlist", 1, 2));
        assert!(e.message.contains("`binary` is not a filter key"), "{e}");
        let e = Filters::parse("", "{\"binary_regex\": [\"(\"]}").unwrap_err();
        assert_eq!(e.flag, "--export-denylist");
        assert!(e.message.contains("not a regular expression"), "{e}");
        let e = Filters::parse("{\"event_set\": [\"EXEC\"]}", "").unwrap_err();
        assert!(e.message.contains("PROCESS_EXEC"), "{e}");
        let e = Filters::parse("not json", "").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--export-allowlist, filter 1 (line 1): not a JSON object"),
            "{e}"
        );
        let e = Filters::parse(r#"{"cel_expression": ["x"]}"#, "").unwrap_err();
        assert!(e.message.contains("does not support"), "{e}");
        assert!(label_selector("app in x").is_err());
    }
}
