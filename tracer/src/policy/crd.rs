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

/// The schema of a field Tetragon has and the tracer does not support yet: any value,
/// kept as written, so that the API server stores it and the agent refuses the policy
/// saying which field, instead of the field silently pruned.
pub fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
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
        assert_eq!(
            spec["uprobes"]["x-kubernetes-preserve-unknown-fields"], true,
            "{spec:#}"
        );
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
