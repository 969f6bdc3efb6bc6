//! TracingPolicies as Kubernetes objects: the `TracingPolicy` (cluster-scoped) and
//! `TracingPolicyNamespaced` custom resources of the tracer's own API group, so that they
//! can live beside Tetragon's `cilium.io` ones. Their schema is generated from the types
//! that parse policy files ([`Spec`]), so that what the API server accepts and what the
//! agent parses agree; `tracer crds` prints them (`manifests/crds/`).

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt as _};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::Spec;

/// The tracer's API group.
pub const GROUP: &str = "tracer.dev";

/// The spec of a cluster-wide `TracingPolicy`: Tetragon's.
#[derive(CustomResource, Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tracer.dev",
    version = "v1alpha1",
    kind = "TracingPolicy",
    plural = "tracingpolicies",
    shortname = "tp",
    status = "PolicyStatus",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct ClusterSpec {
    #[serde(flatten)]
    pub spec: Spec,
}

/// The spec of a `TracingPolicyNamespaced`: the same, applied to the pods of its
/// namespace only.
#[derive(CustomResource, Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tracer.dev",
    version = "v1alpha1",
    kind = "TracingPolicyNamespaced",
    plural = "tracingpoliciesnamespaced",
    shortname = "tpn",
    namespaced,
    status = "PolicyStatus",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct NamespacedSpec {
    #[serde(flatten)]
    pub spec: Spec,
}

/// What each node's agent made of a policy (`status.nodes.<node>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct PolicyStatus {
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// `Loaded`, `PartlyLoaded` or `Error`.
    pub state: String,
    /// Why not loaded, or which hooks failed and why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The `metadata.generation` this is about.
    #[serde(default)]
    pub observed_generation: i64,
    /// The hooks that are not running on this node (`PartlyLoaded`), and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_hooks: Vec<FailedHookStatus>,
    /// `Accepted` (the document is valid) and `Loaded` (every hook runs), in the
    /// Kubernetes conventions for conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct FailedHookStatus {
    pub hook: String,
    pub reason: String,
}

/// One condition (`type`, `status` `True`/`False`/`Unknown`, a CamelCase `reason`, a
/// `message` for people).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// RFC 3339; when this node last wrote the condition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_transition_time: String,
    #[serde(default)]
    pub observed_generation: i64,
}

/// How a policy fared on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a valid document (the parser's errors).
    Invalid(String),
    /// Valid, and not loaded (`kept`: its previous version keeps running).
    Failed { error: String, kept: bool },
    /// Loaded; the hooks that are not running, if any.
    Loaded(Vec<FailedHookStatus>),
}

impl NodeStatus {
    /// The status that says `outcome`, for `generation`, written at `now` (RFC 3339).
    pub fn new(outcome: Outcome, generation: i64, now: &str) -> Self {
        let condition = |type_: &str, ok: bool, reason: &str, message: String| Condition {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            reason: reason.into(),
            message,
            last_transition_time: now.into(),
            observed_generation: generation,
        };
        let (state, message, failed_hooks, conditions) = match outcome {
            Outcome::Invalid(errors) => (
                "Error",
                errors.clone(),
                Vec::new(),
                vec![
                    condition("Accepted", false, "Invalid", errors),
                    condition("Loaded", false, "NotAccepted", String::new()),
                ],
            ),
            Outcome::Failed { error, kept } => {
                let message = if kept {
                    format!("{error} (its previous version keeps running)")
                } else {
                    error
                };
                (
                    "Error",
                    message.clone(),
                    Vec::new(),
                    vec![
                        condition("Accepted", true, "Valid", String::new()),
                        condition("Loaded", false, "LoadFailed", message),
                    ],
                )
            }
            Outcome::Loaded(failed) if failed.is_empty() => (
                "Loaded",
                String::new(),
                failed,
                vec![
                    condition("Accepted", true, "Valid", String::new()),
                    condition("Loaded", true, "AllHooksRunning", String::new()),
                ],
            ),
            Outcome::Loaded(failed) => {
                let message = format!(
                    "{} hook(s) not running: {}",
                    failed.len(),
                    failed
                        .iter()
                        .map(|f| format!("{}: {}", f.hook, f.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                (
                    "PartlyLoaded",
                    message.clone(),
                    failed,
                    vec![
                        condition("Accepted", true, "Valid", String::new()),
                        condition("Loaded", false, "SomeHooksFailed", message),
                    ],
                )
            }
        };
        NodeStatus {
            state: state.into(),
            message,
            observed_generation: generation,
            failed_hooks,
            conditions,
        }
    }
}

/// The two custom resource definitions.
pub fn crds() -> [CustomResourceDefinition; 2] {
    [TracingPolicy::crd(), TracingPolicyNamespaced::crd()]
}

/// The CRDs as one YAML stream.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let docs: Result<Vec<String>, _> = crds().iter().map(serde_yaml::to_string).collect();
    Ok(docs?
        .iter()
        .map(|d| format!("---\n{d}"))
        .collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crds_name_the_group_kinds_and_scopes() {
        let [cluster, namespaced] = crds();
        assert_eq!(cluster.spec.group, GROUP);
        assert_eq!(cluster.spec.names.kind, "TracingPolicy");
        assert_eq!(cluster.spec.scope, "Cluster");
        assert_eq!(namespaced.spec.names.kind, "TracingPolicyNamespaced");
        assert_eq!(namespaced.spec.scope, "Namespaced");
        let v = &cluster.spec.versions[0];
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let schema = serde_json::to_value(&v.schema).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
        // From the parser's types: kprobes with their selectors, and Tetragon's fields the
        // tracer does not support kept (the agent says so).
        assert!(
            spec["kprobes"]["items"]["properties"]["selectors"].is_object(),
            "{spec:#}"
        );
        assert!(
            spec["uprobes"]["items"]["properties"]["symbols"].is_object(),
            "{spec:#}"
        );
        assert_eq!(
            spec["fentries"]["x-kubernetes-preserve-unknown-fields"], true,
            "{spec:#}"
        );
    }

    #[test]
    fn a_status_says_each_outcome_as_state_and_conditions() {
        let now = "2026-01-01T00:00:00Z";
        let ok = NodeStatus::new(Outcome::Loaded(Vec::new()), 3, now);
        assert_eq!(ok.state, "Loaded");
        assert_eq!(ok.observed_generation, 3);
        assert_eq!(
            ok.conditions
                .iter()
                .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
                .collect::<Vec<_>>(),
            [
                ("Accepted", "True", "Valid"),
                ("Loaded", "True", "AllHooksRunning")
            ]
        );
        let failed = FailedHookStatus {
            hook: "ftrace/print".into(),
            reason: "attaching: refused".into(),
        };
        let partly = NodeStatus::new(Outcome::Loaded(vec![failed.clone()]), 4, now);
        assert_eq!(partly.state, "PartlyLoaded");
        assert_eq!(partly.failed_hooks, [failed]);
        assert_eq!(partly.conditions[1].reason, "SomeHooksFailed");
        assert_eq!(partly.conditions[1].status, "False");
        assert!(partly.message.contains("ftrace/print: attaching: refused"));
        let invalid = NodeStatus::new(Outcome::Invalid("line 3: bad".into()), 5, now);
        assert_eq!(invalid.state, "Error");
        assert_eq!(
            (
                invalid.conditions[0].status.as_str(),
                invalid.conditions[0].reason.as_str()
            ),
            ("False", "Invalid")
        );
        let kept = NodeStatus::new(
            Outcome::Failed {
                error: "no slot".into(),
                kept: true,
            },
            6,
            now,
        );
        assert_eq!(kept.conditions[1].reason, "LoadFailed");
        assert!(
            kept.message
                .ends_with("(its previous version keeps running)")
        );
        // As the API server stores it.
        let json = serde_json::to_value(&partly).unwrap();
        assert_eq!(json["failedHooks"][0]["hook"], "ftrace/print");
        assert_eq!(json["conditions"][1]["type"], "Loaded");
        assert_eq!(json["conditions"][1]["lastTransitionTime"], now);
    }

    #[test]
    fn the_manifests_hold_the_crds_as_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/crds.yaml");
        let file = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            file == crds_yaml().unwrap(),
            "manifests/crds.yaml is not what the types generate: run `cargo run -p tracer -- crds > manifests/crds.yaml`"
        );
    }
}
