//! Which events `tracer events` shows: every option given must match (AND), and each
//! option matches when any of its values does (OR).

use regex::Regex;
use serde_json::Value;

use super::ViewError;

/// The event types (the top-level member naming the event) and their short forms.
pub const EVENT_TYPES: &[&str] = &crate::event::KINDS;

const SHORT: &[(&str, &str)] = &[
    ("exec", "process_exec"),
    ("exit", "process_exit"),
    ("kprobe", "process_kprobe"),
    ("tracepoint", "process_tracepoint"),
    ("uprobe", "process_uprobe"),
    ("usdt", "process_usdt"),
    ("lsm", "process_lsm"),
    ("loader", "process_loader"),
    ("loss", "event_loss"),
    ("ratelimit", "rate_limit_info"),
];

/// The filters as given on the command line (each list already split at commas).
#[derive(Debug, Default, Clone)]
pub struct Spec {
    /// Pod namespaces, exactly.
    pub namespaces: Vec<String>,
    /// Regular expressions on the pod's name.
    pub pods: Vec<String>,
    /// Regular expressions on `process.binary`.
    pub binaries: Vec<String>,
    /// Event types, long or short.
    pub event_types: Vec<String>,
    /// Policy names, exactly.
    pub policy_names: Vec<String>,
    /// Only events outside pods.
    pub host: bool,
}

#[derive(Debug, Default)]
pub struct Filter {
    namespaces: Vec<String>,
    pods: Vec<Regex>,
    binaries: Vec<Regex>,
    event_types: Vec<&'static str>,
    policy_names: Vec<String>,
    host: bool,
}

impl Filter {
    pub fn new(spec: Spec) -> Result<Self, ViewError> {
        let regexes = |flag: &'static str, patterns: Vec<String>| {
            patterns
                .into_iter()
                .map(|p| {
                    Regex::new(&p).map_err(|source| ViewError::Regex {
                        flag,
                        pattern: p,
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            namespaces: spec.namespaces,
            pods: regexes("pod", spec.pods)?,
            binaries: regexes("binary", spec.binaries)?,
            event_types: spec
                .event_types
                .iter()
                .map(|t| event_type(t))
                .collect::<Result<_, _>>()?,
            policy_names: spec.policy_names,
            host: spec.host,
        })
    }

    /// Whether the event of type `kind` with body `body` is shown.
    pub fn matches(&self, kind: &str, body: &Value) -> bool {
        if !self.event_types.is_empty() && !self.event_types.contains(&kind) {
            return false;
        }
        let process = body.get("process");
        let pod = process.and_then(|p| p.get("pod"));
        if self.host {
            // In a pod, or in a container whose pod the agent could not learn.
            let pod_unknown = process
                .and_then(|p| p.get("pod_unknown"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if pod.is_some() || pod_unknown {
                return false;
            }
        }
        if !self.namespaces.is_empty() {
            let Some(ns) = str_of(pod, "namespace") else {
                return false;
            };
            if !self.namespaces.iter().any(|n| n == ns) {
                return false;
            }
        }
        if !self.pods.is_empty() {
            let Some(name) = str_of(pod, "name") else {
                return false;
            };
            if !self.pods.iter().any(|r| r.is_match(name)) {
                return false;
            }
        }
        if !self.binaries.is_empty() {
            let Some(binary) = str_of(process, "binary") else {
                return false;
            };
            if !self.binaries.iter().any(|r| r.is_match(binary)) {
                return false;
            }
        }
        if !self.policy_names.is_empty() {
            let Some(policy) = str_of(Some(body), "policy_name") else {
                return false;
            };
            if !self.policy_names.iter().any(|p| p == policy) {
                return false;
            }
        }
        true
    }
}

/// `process_exec (exec), ...`.
pub fn types_text() -> String {
    EVENT_TYPES
        .iter()
        .map(|t| match SHORT.iter().find(|(_, long)| long == t) {
            Some((short, _)) => format!("{t} ({short})"),
            None => (*t).to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn str_of<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v?.get(key)?.as_str()
}

/// The event type `given` names (`process_exec` or `exec`).
pub fn event_type(given: &str) -> Result<&'static str, ViewError> {
    if let Some(t) = EVENT_TYPES.iter().find(|t| **t == given) {
        return Ok(t);
    }
    if let Some((_, t)) = SHORT.iter().find(|(s, _)| *s == given) {
        return Ok(t);
    }
    let closest = EVENT_TYPES
        .iter()
        .chain(SHORT.iter().map(|(s, _)| s))
        .map(|t| (strsim::jaro_winkler(given, t), *t))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.8);
    Err(ViewError::EventType {
        given: given.to_owned(),
        hint: closest
            .map(|(_, t)| format!(" (did you mean {t}?)"))
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::view::event_body;

    /// Events of every kind, in pods and out of them.
    fn events() -> Vec<(&'static str, Value)> {
        let pod = |ns: &str, name: &str| json!({"namespace": ns, "name": name, "container": {"id": "containerd://1", "name": "main"}, "workload": "web"});
        vec![
            (
                "web-exec",
                json!({"process_exec": {"process": {"binary": "/usr/bin/curl", "pod": pod("shop", "web-7d9f-abcde")}}}),
            ),
            (
                "db-exit",
                json!({"process_exit": {"process": {"binary": "/usr/sbin/postgres", "pod": pod("data", "db-0")}, "status": 1}}),
            ),
            (
                "host-kprobe",
                json!({"process_kprobe": {"process": {"binary": "/usr/bin/curl", "host": true}, "function_name": "tcp_connect", "args": [], "policy_name": "egress", "action": "KPROBE_ACTION_POST"}}),
            ),
            (
                "web-tracepoint",
                json!({"process_tracepoint": {"process": {"binary": "/bin/cat", "pod": pod("shop", "web-7d9f-fghij")}, "subsys": "syscalls", "event": "sys_enter_openat", "args": [], "policy_name": "files", "action": "KPROBE_ACTION_POST"}}),
            ),
            (
                "unknown-exec",
                json!({"process_exec": {"process": {"binary": "/bin/sh", "docker": "4c3e", "pod_unknown": true}}}),
            ),
            (
                "loss",
                json!({"event_loss": {"lost": {"exec": "2"}, "total_lost": "2"}}),
            ),
        ]
    }

    /// The names of the events `spec` shows.
    fn shown(spec: Spec) -> Vec<&'static str> {
        let filter = Filter::new(spec).unwrap();
        events()
            .into_iter()
            .filter(|(_, e)| {
                let (kind, body) = event_body(e).unwrap();
                filter.matches(kind, body)
            })
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn no_filter_shows_everything() {
        assert_eq!(shown(Spec::default()).len(), events().len());
    }

    #[test]
    fn namespaces() {
        let spec = Spec {
            namespaces: vec!["shop".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["web-exec", "web-tracepoint"]);
        let spec = Spec {
            namespaces: vec!["shop".into(), "data".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["web-exec", "db-exit", "web-tracepoint"]);
        let spec = Spec {
            namespaces: vec!["sho".into()],
            ..Default::default()
        };
        assert!(shown(spec).is_empty(), "a namespace is matched whole");
    }

    #[test]
    fn pods_by_regex() {
        let spec = Spec {
            pods: vec!["^web-".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["web-exec", "web-tracepoint"]);
        let spec = Spec {
            pods: vec!["abcde$".into(), "db".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["web-exec", "db-exit"]);
    }

    #[test]
    fn binaries_by_regex() {
        let spec = Spec {
            binaries: vec!["/curl$".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["web-exec", "host-kprobe"]);
        let spec = Spec {
            binaries: vec!["^/bin/".into(), "postgres".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["db-exit", "web-tracepoint", "unknown-exec"]);
    }

    #[test]
    fn event_types_long_and_short() {
        let spec = Spec {
            event_types: vec!["exec".into(), "process_kprobe".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["web-exec", "host-kprobe", "unknown-exec"]);
        let spec = Spec {
            event_types: vec!["loss".into(), "tracepoint".into(), "exit".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["db-exit", "web-tracepoint", "loss"]);
    }

    #[test]
    fn a_misspelt_event_type_is_refused_with_a_hint() {
        let e = Filter::new(Spec {
            event_types: vec!["proces_exec".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--event-types `proces_exec` is not an event type (did you mean process_exec?); the types are process_exec (exec), process_exit (exit), process_kprobe (kprobe), process_tracepoint (tracepoint), process_uprobe (uprobe), process_usdt (usdt), process_lsm (lsm), process_loader (loader), event_loss (loss), rate_limit_info (ratelimit)"
        );
        let e = Filter::new(Spec {
            event_types: vec!["zzz".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--event-types `zzz` is not an event type; the types are")
        );
    }

    #[test]
    fn policy_names() {
        let spec = Spec {
            policy_names: vec!["egress".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["host-kprobe"]);
        let spec = Spec {
            policy_names: vec!["egress".into(), "files".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["host-kprobe", "web-tracepoint"]);
    }

    #[test]
    fn host_only() {
        let spec = Spec {
            host: true,
            ..Default::default()
        };
        // A container whose pod is unknown is in a pod; a loss is the node's own.
        assert_eq!(shown(spec), ["host-kprobe", "loss"]);
    }

    #[test]
    fn filters_are_anded() {
        let spec = Spec {
            namespaces: vec!["shop".into()],
            event_types: vec!["exec".into()],
            ..Default::default()
        };
        assert_eq!(shown(spec), ["web-exec"]);
        let spec = Spec {
            binaries: vec!["curl".into()],
            policy_names: vec!["egress".into()],
            host: true,
            ..Default::default()
        };
        assert_eq!(shown(spec), ["host-kprobe"]);
        let spec = Spec {
            binaries: vec!["curl".into()],
            namespaces: vec!["data".into()],
            ..Default::default()
        };
        assert!(shown(spec).is_empty());
    }

    #[test]
    fn a_bad_regex_names_its_flag() {
        let e = Filter::new(Spec {
            pods: vec!["web-(".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--pod `web-(` is not a regular expression:"),
            "{e}"
        );
    }
}
