//! Policies as Kubernetes objects: the `TracingPolicy` objects of the tracer's group
//! (`policy::crd`), watched while the agent runs. Each object goes through the same
//! parser and checks as a policy file (its JSON is YAML), so it is refused or loaded as a
//! file would be; created, changed and deleted objects are applied without a restart,
//! and the outcome is written back to the object's status, per node.

use std::collections::BTreeSet;

use futures::StreamExt as _;
use kube::{
    Api, Client, Resource as _,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::sync::mpsc;

use super::crd::{self, FailedHookStatus, NodeStatus, Outcome};
use crate::pods::checked::{self, Checked};

/// The two kinds of policy objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `TracingPolicy`: cluster-wide.
    Cluster,
    /// `TracingPolicyNamespaced`: the pods of its namespace.
    Namespaced,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Cluster => "TracingPolicy",
            Kind::Namespaced => "TracingPolicyNamespaced",
        }
    }

    fn resource(self) -> ApiResource {
        match self {
            Kind::Cluster => ApiResource::erase::<crd::TracingPolicy>(&()),
            Kind::Namespaced => ApiResource::erase::<crd::TracingPolicyNamespaced>(&()),
        }
    }
}

/// An object: its kind, namespace (a namespaced one's) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// The policy's name in the agent (and in events): its name, prefixed with its
    /// namespace for a namespaced one (`team-a.audit`), so that two namespaces' policies
    /// of one name are two policies.
    pub fn policy_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Where it came from, for the log and errors.
    fn source(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("tracingpolicynamespaced/{ns}/{}", self.name),
            None => format!("tracingpolicy/{}", self.name),
        }
    }
}

/// What changed among the policy objects.
#[derive(Debug)]
pub enum Change {
    /// An object was created or changed: its generation, and itself as a TracingPolicy
    /// document (JSON).
    Apply {
        key: ObjectKey,
        generation: i64,
        document: String,
    },
    Delete {
        key: ObjectKey,
    },
    /// A full list of one kind: the objects that exist now (those missing were deleted
    /// while the watch was down).
    Listed {
        kind: Kind,
        keys: BTreeSet<ObjectKey>,
    },
}

/// Watches the `TracingPolicy` and `TracingPolicyNamespaced` objects; their changes come
/// out of the receiver.
pub fn watch(client: Client) -> mpsc::UnboundedReceiver<Change> {
    let (tx, rx) = mpsc::unbounded_channel();
    for kind in [Kind::Cluster, Kind::Namespaced] {
        watch_kind(client.clone(), kind, tx.clone());
    }
    rx
}

fn watch_kind(client: Client, kind: Kind, tx: mpsc::UnboundedSender<Change>) {
    let api: Api<Checked<DynamicObject>> = Api::all_with(client, &kind.resource());
    let what = kind.resource().plural;
    tokio::spawn(async move {
        let stream = watcher(api, crate::pods::watcher::config()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut listing = BTreeSet::new();
        let mut failing = false;
        while let Some(event) = stream.next().await {
            let change = match event {
                // An object that is not one (its metadata does not match the schema):
                // named in the log; what was loaded of it stays, and the others load.
                Ok(
                    watcher::Event::Apply(Checked::Bad { meta, reason })
                    | watcher::Event::InitApply(Checked::Bad { meta, reason }),
                ) => {
                    checked::log_bad(kind.name(), &meta, &reason);
                    if let Some(name) = meta.name {
                        // Still there: a relist does not remove it.
                        listing.insert(ObjectKey {
                            kind,
                            namespace: meta.namespace.filter(|_| kind == Kind::Namespaced),
                            name,
                        });
                    }
                    None
                }
                Ok(watcher::Event::Apply(Checked::Good(obj))) => Some(object_change(kind, &obj)),
                Ok(watcher::Event::InitApply(Checked::Good(obj))) => {
                    listing.insert(key(kind, &obj));
                    Some(object_change(kind, &obj))
                }
                Ok(watcher::Event::Delete(obj)) => Some(Change::Delete {
                    key: key_of(kind, obj.meta()),
                }),
                Ok(watcher::Event::Init) => {
                    listing.clear();
                    None
                }
                Ok(watcher::Event::InitDone) => {
                    tracing::info!("kubernetes: {what} listed");
                    Some(Change::Listed {
                        kind,
                        keys: std::mem::take(&mut listing),
                    })
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!("kubernetes: watching {what} failed, retrying: {e}");
                    }
                    failing = true;
                    continue;
                }
            };
            failing = false;
            if let Some(c) = change
                && tx.send(c).is_err()
            {
                return;
            }
        }
    });
}

fn key(kind: Kind, obj: &DynamicObject) -> ObjectKey {
    key_of(kind, &obj.metadata)
}

fn key_of(kind: Kind, meta: &kube::api::ObjectMeta) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: match kind {
            Kind::Cluster => None,
            Kind::Namespaced => meta.namespace.clone(),
        },
        name: meta.name.clone().unwrap_or_default(),
    }
}

/// An object (as the API server sends it) as a TracingPolicy document to apply: what
/// [`apply_change`] parses and checks as it would a file's.
pub fn object_change(kind: Kind, obj: &DynamicObject) -> Change {
    let key = key(kind, obj);
    let mut metadata = serde_json::json!({ "name": key.policy_name() });
    if let Some(ns) = &key.namespace {
        metadata["namespace"] = serde_json::json!(ns);
    }
    let document = serde_json::json!({
        "apiVersion": super::validate::TRACER_API_VERSION,
        "kind": kind.name(),
        "metadata": metadata,
        "spec": obj.data.get("spec").cloned().unwrap_or_default(),
    });
    Change::Apply {
        generation: obj.metadata.generation.unwrap_or(0),
        document: serde_json::to_string_pretty(&document).unwrap_or_default(),
        key,
    }
}

/// Writes `status` as this node's entry of the object's status (in the background; a
/// failure is logged).
pub fn report(client: &Client, key: &ObjectKey, node: &str, status: NodeStatus) {
    let resource = key.kind.resource();
    let api: Api<DynamicObject> = match &key.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let (name, source, node) = (key.name.clone(), key.source(), node.to_owned());
    tokio::spawn(async move {
        let patch = serde_json::json!({ "status": { "nodes": { node: status } } });
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!("kubernetes: writing the status of {source}: {e}");
        }
    });
}

/// Applies `change` to the store, reporting each object's outcome in its status.
/// `known`: the objects whose policies are loaded (a full list removes those gone).
pub fn apply_change(
    change: Change,
    store: &mut super::store::PolicyStore,
    ebpf: &mut aya::Ebpf,
    client: &Client,
    node: &str,
    known: &mut BTreeSet<ObjectKey>,
) {
    match change {
        Change::Apply {
            key,
            generation,
            document,
        } => {
            let source = key.source();
            let name = key.policy_name();
            let outcome = match super::parse::text_documents(&source, &document) {
                Err(errors) => {
                    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    for e in &text {
                        tracing::error!("policy refused: {e}");
                    }
                    Outcome::Invalid(text.join("\n"))
                }
                Ok(docs) => match docs.first() {
                    None => Outcome::Invalid("no policy in the object".into()),
                    Some(doc) => {
                        for w in &doc.warnings {
                            tracing::warn!("policy {name}: {w}");
                        }
                        let started = std::time::Instant::now();
                        let result = store.add(ebpf, doc, std::path::Path::new(&source));
                        super::log_load(&name, &source, &result, started.elapsed());
                        match result {
                            Ok(failed) => {
                                known.insert(key.clone());
                                Outcome::Loaded(
                                    failed
                                        .into_iter()
                                        .map(|f| FailedHookStatus {
                                            hook: f.hook,
                                            reason: f.reason,
                                        })
                                        .collect(),
                                )
                            }
                            Err(e) => Outcome::Failed {
                                error: e.to_string(),
                                kept: known.contains(&key),
                            },
                        }
                    }
                },
            };
            let outcome = NodeStatus::new(outcome, generation, &crate::clock::Clock::now_rfc3339());
            report(client, &key, node, outcome);
        }
        Change::Delete { key } => {
            let name = key.policy_name();
            if known.remove(&key) && store.remove(&name) {
                tracing::info!("policy {name} removed: its {} was deleted", key.kind.name());
            }
        }
        Change::Listed { kind, keys } => {
            let gone: Vec<ObjectKey> = known
                .iter()
                .filter(|k| k.kind == kind && !keys.contains(k))
                .cloned()
                .collect();
            for key in gone {
                known.remove(&key);
                let name = key.policy_name();
                if store.remove(&name) {
                    tracing::info!("policy {name} removed: its {} is gone", kind.name());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json).expect("a DynamicObject")
    }

    #[test]
    fn an_object_becomes_a_document_the_parser_takes() {
        let obj = object(serde_json::json!({
            "apiVersion": "tracer.example/v1alpha1",
            "kind": "TracingPolicyNamespaced",
            "metadata": {"name": "audit", "namespace": "team-a", "generation": 3},
            "spec": {"tracepoints": [{"subsystem": "syscalls", "event": "sys_enter_ptrace"}]},
        }));
        let Change::Apply {
            key,
            generation,
            document,
        } = object_change(Kind::Namespaced, &obj)
        else {
            panic!("an object is applied");
        };
        assert_eq!(key.policy_name(), "team-a.audit");
        assert_eq!(generation, 3);
        let docs = super::super::parse::text_documents("object", &document)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(docs[0].policy.metadata.name, "team-a.audit");
    }

    #[test]
    fn an_object_without_name_or_spec_is_refused_by_the_parser() {
        let obj = object(serde_json::json!({"metadata": {}}));
        let Change::Apply { document, .. } = object_change(Kind::Cluster, &obj) else {
            panic!("an object is applied");
        };
        assert!(super::super::parse::text_documents("object", &document).is_err());
    }
}
