//! TracingPolicy documents in Tetragon's schema (`cilium.io/v1alpha1`), as far as the
//! tracer supports them. Every struct denies unknown fields; the fields Tetragon has and
//! the tracer does not support yet are listed as [`Unsupported`], so that a policy using
//! one gets an error that says so, at the field, instead of having it ignored.
//!
//! Values that validation checks carry their position ([`Spanned`]).

use marked_yaml::Spanned;
use serde::Deserialize;

/// A field the tracer knows from Tetragon's schema but does not support yet.
pub type Unsupported = Option<Spanned<serde::de::IgnoredAny>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingPolicy {
    pub api_version: Spanned<String>,
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    pub spec: Spanned<Spec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: Spanned<String>,
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub annotations: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub tracepoints: Vec<Tracepoint>,
    #[serde(default)]
    pub lists: Vec<List>,
    #[serde(default)]
    pub options: Vec<PolicyOption>,
    #[serde(default)]
    pub kprobes: Vec<Spanned<Kprobe>>,
    // Tetragon's, not supported yet.
    #[serde(default)]
    pub fentries: Unsupported,
    #[serde(default)]
    pub uprobes: Unsupported,
    #[serde(default)]
    pub usdts: Unsupported,
    #[serde(default)]
    pub lsmhooks: Unsupported,
    #[serde(default)]
    pub enforcers: Unsupported,
    #[serde(default)]
    pub loader: Unsupported,
    #[serde(default)]
    pub pod_selector: Unsupported,
    #[serde(default)]
    pub container_selector: Unsupported,
    #[serde(default)]
    pub host_selector: Unsupported,
    #[serde(default)]
    pub node_selector: Unsupported,
    #[serde(default)]
    pub selectors_macros: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tracepoint {
    pub subsystem: Spanned<String>,
    pub event: Spanned<String>,
    #[serde(default)]
    pub message: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    pub selectors: Vec<Spanned<Selector>>,
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    /// `raw: true` (BTF-typed raw tracepoint arguments): not supported yet.
    #[serde(default)]
    pub raw: Unsupported,
}

/// `spec.kprobes[]`: a kernel function, its arguments and selectors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kprobe {
    pub call: Spanned<String>,
    /// The call is a syscall (`sys_NAME`, prefixed for the architecture).
    #[serde(default)]
    pub syscall: Option<Spanned<bool>>,
    /// A return probe (`return: true`), with `returnArg`.
    #[serde(default, rename = "return")]
    pub ret: Option<Spanned<bool>>,
    #[serde(default)]
    pub return_arg: Option<Arg>,
    #[serde(default)]
    pub message: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    pub selectors: Vec<Spanned<Selector>>,
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    // Tetragon's, not supported yet.
    #[serde(default)]
    pub data: Unsupported,
    #[serde(default)]
    pub return_arg_action: Unsupported,
    #[serde(default)]
    pub ignore: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Arg {
    pub index: Spanned<u32>,
    #[serde(default, rename = "type")]
    pub ty: Option<Spanned<String>>,
    #[serde(default)]
    pub label: Option<Spanned<String>>,
    #[serde(default)]
    pub resolve: Unsupported,
    #[serde(default)]
    pub btf_type: Unsupported,
    #[serde(default)]
    pub btf_type_module: Unsupported,
    /// `char_buf`: the 1-based index of the argument that holds the buffer's size.
    #[serde(default)]
    pub size_arg_index: Option<Spanned<u32>>,
    /// `char_buf`: read the buffer when the call returns, its size the return value.
    #[serde(default)]
    pub return_copy: Option<Spanned<bool>>,
    #[serde(default)]
    pub max_data: Unsupported,
    #[serde(default)]
    pub source: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    #[serde(default, rename = "matchPIDs")]
    pub match_pids: Vec<MatchPids>,
    #[serde(default)]
    pub match_args: Vec<MatchArgs>,
    #[serde(default)]
    pub match_binaries: Vec<MatchBinaries>,
    #[serde(default)]
    pub match_namespaces: Vec<MatchNamespaces>,
    #[serde(default)]
    pub match_capabilities: Vec<MatchCapabilities>,
    #[serde(default)]
    pub match_actions: Vec<MatchAction>,
    #[serde(default)]
    pub label: Option<Spanned<String>>,
    // Tetragon's, not supported yet.
    #[serde(default)]
    pub match_data: Unsupported,
    /// On return probes: filters on the return value (`index: 0`).
    #[serde(default)]
    pub match_return_args: Vec<MatchArgs>,
    #[serde(default)]
    pub match_parent_binaries: Unsupported,
    #[serde(default)]
    pub match_namespace_changes: Unsupported,
    #[serde(default)]
    pub match_capability_changes: Unsupported,
    #[serde(default)]
    pub match_workloads: Unsupported,
    #[serde(default)]
    pub match_return_actions: Unsupported,
    #[serde(default)]
    pub macros: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchPids {
    pub operator: Spanned<String>,
    pub values: Vec<Spanned<u32>>,
    #[serde(default, rename = "isNamespacePID")]
    pub is_namespace_pid: Option<Spanned<bool>>,
    #[serde(default)]
    pub follow_forks: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchArgs {
    pub index: Spanned<u32>,
    pub operator: Spanned<String>,
    /// Absent for the operators that take none (`DPortPriv`, ...); the others check
    /// that there are some.
    #[serde(default)]
    pub values: Vec<Spanned<String>>,
    /// `args: [...]` (several arguments in one filter): not supported yet.
    #[serde(default)]
    pub args: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchBinaries {
    pub operator: Spanned<String>,
    pub values: Vec<Spanned<String>>,
    #[serde(default)]
    pub follow_children: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchNamespaces {
    pub namespace: Spanned<String>,
    pub operator: Spanned<String>,
    pub values: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchCapabilities {
    #[serde(default, rename = "type")]
    pub ty: Option<Spanned<String>>,
    pub operator: Spanned<String>,
    pub values: Vec<Spanned<String>>,
    #[serde(default)]
    pub is_namespace_capability: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchAction {
    pub action: Spanned<String>,
    #[serde(default)]
    pub rate_limit: Option<Spanned<String>>,
    #[serde(default)]
    pub rate_limit_scope: Option<Spanned<String>>,
    #[serde(default)]
    pub arg_sig: Option<Spanned<u32>>,
    /// `Override`'s error, a negative errno.
    #[serde(default)]
    pub arg_error: Option<Spanned<i32>>,
    // Tetragon's, for actions not supported yet.
    #[serde(default)]
    pub arg_fd: Unsupported,
    #[serde(default)]
    pub arg_name: Unsupported,
    #[serde(default)]
    pub arg_url: Unsupported,
    #[serde(default)]
    pub arg_fqdn: Unsupported,
    #[serde(default)]
    pub arg_sock: Unsupported,
    #[serde(default)]
    pub kernel_stack_trace: Unsupported,
    #[serde(default)]
    pub user_stack_trace: Unsupported,
    #[serde(default)]
    pub ima_hash: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct List {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub ty: Spanned<String>,
    #[serde(default)]
    pub values: Vec<Spanned<String>>,
    #[serde(default)]
    pub pattern: Unsupported,
    #[serde(default)]
    pub validated: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyOption {
    pub name: Spanned<String>,
    #[serde(default)]
    pub value: Option<Spanned<String>>,
}
