//! TracingPolicy documents in Tetragon's schema (`cilium.io/v1alpha1`), as far as the
//! tracer supports them. Every struct denies unknown fields; the fields Tetragon has and
//! the tracer does not support yet are listed as [`Unsupported`], so that a policy using
//! one gets an error that says so, at the field, instead of having it ignored.
//!
//! Values that validation checks carry their position ([`Spanned`]).

use marked_yaml::Spanned;
use serde::{Deserialize, Serialize};

/// A field the tracer knows from Tetragon's schema but does not support yet.
pub type Unsupported = Option<Spanned<serde_json::Value>>;

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingPolicy {
    #[schemars(with = "String")]
    pub api_version: Spanned<String>,
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    #[schemars(with = "Spec")]
    pub spec: Spanned<Spec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub labels: Option<serde_json::Value>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub annotations: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub tracepoints: Vec<Tracepoint>,
    #[serde(default)]
    pub lists: Vec<List>,
    #[serde(default)]
    pub options: Vec<PolicyOption>,
    #[serde(default)]
    #[schemars(with = "Vec<Kprobe>")]
    pub kprobes: Vec<Spanned<Kprobe>>,
    // Tetragon's, not supported yet.
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub fentries: Unsupported,
    #[serde(default)]
    #[schemars(with = "Vec<Uprobe>")]
    pub uprobes: Vec<Spanned<Uprobe>>,
    #[serde(default)]
    #[schemars(with = "Vec<Usdt>")]
    pub usdts: Vec<Spanned<Usdt>>,
    #[serde(default)]
    #[schemars(with = "Vec<LsmHook>")]
    pub lsmhooks: Vec<Spanned<LsmHook>>,
    #[serde(default)]
    #[schemars(with = "Vec<Enforcer>")]
    pub enforcers: Vec<Spanned<Enforcer>>,
    /// `loader: true`: a `process_loader` event for each executable mapping of a file
    /// (a binary, ld.so, each shared library), with the file's build id.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub loader: Option<Spanned<bool>>,
    #[serde(default)]
    #[schemars(with = "Option<LabelSelector>")]
    pub pod_selector: Option<Spanned<LabelSelector>>,
    #[serde(default)]
    #[schemars(with = "Option<LabelSelector>")]
    pub container_selector: Option<Spanned<LabelSelector>>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub host_selector: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub node_selector: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub selectors_macros: Unsupported,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tracepoint {
    #[schemars(with = "String")]
    pub subsystem: Spanned<String>,
    #[schemars(with = "String")]
    pub event: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub message: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    #[schemars(with = "Vec<Selector>")]
    pub selectors: Vec<Spanned<Selector>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub tags: Vec<Spanned<String>>,
    /// `raw: true`: the tracepoint's arguments as its prototype has them (a raw
    /// tracepoint), not its record's fields.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub raw: Option<Spanned<bool>>,
}

/// `spec.kprobes[]`: a kernel function, its arguments and selectors.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kprobe {
    #[schemars(with = "String")]
    pub call: Spanned<String>,
    /// The call is a syscall (`sys_NAME`, prefixed for the architecture).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub syscall: Option<Spanned<bool>>,
    /// A return probe (`return: true`), with `returnArg`.
    #[serde(default, rename = "return")]
    #[schemars(with = "Option<bool>")]
    pub ret: Option<Spanned<bool>>,
    #[serde(default)]
    pub return_arg: Option<Arg>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub message: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    #[schemars(with = "Vec<Selector>")]
    pub selectors: Vec<Spanned<Selector>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub tags: Vec<Spanned<String>>,
    // Tetragon's, not supported yet.
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub data: Unsupported,
    /// `TrackSock` (or `UntrackSock`): the returned socket is the process's from now on.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub return_arg_action: Option<Spanned<String>>,
    /// `ignore: {callNotFound: true}`: a function this kernel lacks is skipped.
    #[serde(default)]
    pub ignore: Option<KprobeIgnore>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KprobeIgnore {
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub call_not_found: Option<Spanned<bool>>,
}

/// `spec.uprobes[]`: functions of a binary (by symbol, or by file offset), their
/// arguments and selectors.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Uprobe {
    /// The binary or library (`/procRoot/...`: the host's `/proc`, as Tetragon mounts it).
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub symbols: Vec<Spanned<String>>,
    /// File offsets of the probed instructions.
    #[serde(default)]
    #[schemars(with = "Vec<u64>")]
    pub offsets: Vec<Spanned<u64>>,
    /// Per offset, the file offset of its USDT semaphore (0: none).
    #[serde(default)]
    #[schemars(with = "Vec<u64>")]
    pub ref_ctr_offsets: Vec<Spanned<u64>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub message: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    #[schemars(with = "Vec<Selector>")]
    pub selectors: Vec<Spanned<Selector>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub tags: Vec<Spanned<String>>,
    // Tetragon's, not supported yet.
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub addrs: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub btf_path: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub data: Unsupported,
    #[serde(default, rename = "return")]
    #[schemars(schema_with = "any_value")]
    pub ret: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub return_arg: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub binary_digests: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub ignore: Unsupported,
}

/// `spec.lsmhooks[]`: a BPF LSM hook (`file_open`), its arguments and selectors.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LsmHook {
    #[schemars(with = "String")]
    pub hook: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub message: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    #[schemars(with = "Vec<Selector>")]
    pub selectors: Vec<Spanned<Selector>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub tags: Vec<Spanned<String>>,
}

/// `spec.usdts[]`: a USDT probe point of a binary (`provider:name`, from its
/// `.note.stapsdt`), its arguments and selectors.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Usdt {
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    #[schemars(with = "String")]
    pub provider: Spanned<String>,
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub message: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    #[schemars(with = "Vec<Selector>")]
    pub selectors: Vec<Spanned<Selector>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub tags: Vec<Spanned<String>>,
    // Tetragon's, not supported yet.
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub btf_path: Unsupported,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Arg {
    #[schemars(with = "u32")]
    pub index: Spanned<u32>,
    #[serde(default, rename = "type")]
    #[schemars(with = "Option<String>")]
    pub ty: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub label: Option<Spanned<String>>,
    /// A path of members from the argument (`mm.owner.real_parent.comm`), read at
    /// offsets from the kernel's BTF.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub resolve: Option<Spanned<String>>,
    /// The struct the argument points to, for `resolve` (where its own type is too
    /// generic).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub btf_type: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub btf_type_module: Unsupported,
    /// `char_buf`: the 1-based index of the argument that holds the buffer's size.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub size_arg_index: Option<Spanned<u32>>,
    /// `char_buf`: read the buffer when the call returns, its size the return value.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub return_copy: Option<Spanned<bool>>,
    /// `char_buf`, `iov_iter`: read more of the buffer than a string's worth.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub max_data: Option<Spanned<bool>>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub source: Unsupported,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
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
    #[schemars(with = "Option<String>")]
    pub label: Option<Spanned<String>>,
    // Tetragon's, not supported yet.
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub match_data: Unsupported,
    /// On return probes: filters on the return value (`index: 0`).
    #[serde(default)]
    pub match_return_args: Vec<MatchArgs>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub match_parent_binaries: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub match_namespace_changes: Unsupported,
    #[serde(default)]
    pub match_capability_changes: Vec<MatchCapabilities>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub match_workloads: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub match_return_actions: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub macros: Unsupported,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchPids {
    #[schemars(with = "String")]
    pub operator: Spanned<String>,
    #[schemars(with = "Vec<u32>")]
    pub values: Vec<Spanned<u32>>,
    #[serde(default, rename = "isNamespacePID")]
    #[schemars(with = "Option<bool>")]
    pub is_namespace_pid: Option<Spanned<bool>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub follow_forks: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchArgs {
    #[schemars(with = "u32")]
    pub index: Spanned<u32>,
    #[schemars(with = "String")]
    pub operator: Spanned<String>,
    /// Absent for the operators that take none (`DPortPriv`, ...); the others check
    /// that there are some.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub values: Vec<Spanned<String>>,
    /// `args: [...]` (several arguments in one filter): not supported yet.
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub args: Unsupported,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchBinaries {
    #[schemars(with = "String")]
    pub operator: Spanned<String>,
    #[schemars(with = "Vec<String>")]
    pub values: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub follow_children: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchNamespaces {
    #[schemars(with = "String")]
    pub namespace: Spanned<String>,
    #[schemars(with = "String")]
    pub operator: Spanned<String>,
    #[schemars(with = "Vec<String>")]
    pub values: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchCapabilities {
    #[serde(default, rename = "type")]
    #[schemars(with = "Option<String>")]
    pub ty: Option<Spanned<String>>,
    #[schemars(with = "String")]
    pub operator: Spanned<String>,
    #[schemars(with = "Vec<String>")]
    pub values: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub is_namespace_capability: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchAction {
    #[schemars(with = "String")]
    pub action: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub rate_limit: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub rate_limit_scope: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub arg_sig: Option<Spanned<u32>>,
    /// `Override`'s error, a negative errno.
    #[serde(default)]
    #[schemars(with = "Option<i32>")]
    pub arg_error: Option<Spanned<i32>>,
    // Tetragon's, for actions not supported yet.
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub arg_fd: Unsupported,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub arg_name: Unsupported,
    /// `GetUrl`'s URL.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub arg_url: Option<Spanned<String>>,
    /// `DnsLookup`'s name.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub arg_fqdn: Option<Spanned<String>>,
    /// `TrackSock`/`UntrackSock`: the position in `args` of the socket.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub arg_sock: Option<Spanned<u32>>,
    /// `Post`: the event carries the kernel stack of the call (`kernel_stack_trace`).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub kernel_stack_trace: Option<Spanned<bool>>,
    /// `Post`: the event carries the user stack of the call (`user_stack_trace`).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub user_stack_trace: Option<Spanned<bool>>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub ima_hash: Unsupported,
    /// `Set`: the position in `args` of the USDT argument to set ...
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub arg_index: Option<Spanned<u32>>,
    /// ... and its value (32 bits).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub arg_value: Option<Spanned<u32>>,
}

/// An `enforcers` entry: the syscalls a `NotifyEnforcer` stops.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Enforcer {
    #[schemars(with = "Vec<String>")]
    pub calls: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct List {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub ty: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub values: Vec<Spanned<String>>,
    /// `generated_ftrace`: a regular expression over the kernel's traceable functions.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub pattern: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub validated: Unsupported,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyOption {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub value: Option<Spanned<String>>,
}

/// A Kubernetes label selector: `podSelector` (on pod labels; the key
/// `k8s:io.kubernetes.pod.namespace` is the pod's namespace), `containerSelector` (on the
/// keys `name`, the container's name, and `repo`, its image without tag or digest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelExpression>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelExpression {
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` (key to value) pass.
    pub fn matches(&self, labels: &dyn Fn(&str) -> Option<String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels(k).as_deref() == Some(v.as_str()))
            && self.match_expressions.iter().all(|e| {
                let v = labels(&e.key);
                match e.operator.as_str() {
                    "In" => v.is_some_and(|v| e.values.contains(&v)),
                    "NotIn" => v.is_none_or(|v| !e.values.contains(&v)),
                    "Exists" => v.is_some(),
                    _ => v.is_none(),
                }
            })
    }
}

/// The schema of a field Tetragon has and the tracer does not support yet: any value,
/// kept as written, so that the API server stores it and the agent refuses the policy
/// saying which field, instead of the field silently pruned.
pub fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}
