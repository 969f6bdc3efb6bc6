//! Policies as Kubernetes objects: the `TracingPolicy` objects of the tracer's group
//! (`policy::crd`), watched while the agent runs. Each object goes through the same
//! parser and checks as a policy file (its JSON is YAML), so it is refused or loaded as a
//! file would be; created, changed and deleted objects are applied without a restart,
//! and the outcome is written back to the object's status, per node.

use std::collections::BTreeSet;

use futures::StreamExt as _;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::sync::mpsc;

use super::crd::{self, NodeStatus};

/// What changed among the policy objects.
#[derive(Debug)]
pub enum Change {
    /// An object was created or changed: its name, generation, and itself as a
    /// TracingPolicy document (JSON).
    Apply {
        name: String,
        generation: i64,
        document: String,
    },
    Delete {
        name: String,
    },
    /// A full list: the objects that exist now (those missing were deleted while the
    /// watch was down).
    Listed {
        names: BTreeSet<String>,
    },
}

fn resource() -> ApiResource {
    ApiResource::erase::<crd::TracingPolicy>(&())
}

/// Watches the `TracingPolicy` objects; their changes come out of the receiver.
pub fn watch(client: Client) -> mpsc::UnboundedReceiver<Change> {
    let (tx, rx) = mpsc::unbounded_channel();
    let api: Api<DynamicObject> = Api::all_with(client, &resource());
    tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut listing = BTreeSet::new();
        let mut failing = false;
        while let Some(event) = stream.next().await {
            let change = match event {
                Ok(watcher::Event::Apply(obj)) => Some(apply(&obj)),
                Ok(watcher::Event::InitApply(obj)) => {
                    listing.insert(obj.metadata.name.clone().unwrap_or_default());
                    Some(apply(&obj))
                }
                Ok(watcher::Event::Delete(obj)) => Some(Change::Delete {
                    name: obj.metadata.name.unwrap_or_default(),
                }),
                Ok(watcher::Event::Init) => {
                    listing.clear();
                    None
                }
                Ok(watcher::Event::InitDone) => {
                    tracing::info!("kubernetes: tracingpolicies listed");
                    Some(Change::Listed {
                        names: std::mem::take(&mut listing),
                    })
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            "kubernetes: watching tracingpolicies failed, retrying: {e}"
                        );
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
    rx
}

/// An object as a TracingPolicy document.
fn apply(obj: &DynamicObject) -> Change {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let document = serde_json::json!({
        "apiVersion": super::validate::TRACER_API_VERSION,
        "kind": "TracingPolicy",
        "metadata": {"name": name},
        "spec": obj.data.get("spec").cloned().unwrap_or_default(),
    });
    Change::Apply {
        generation: obj.metadata.generation.unwrap_or(0),
        document: serde_json::to_string_pretty(&document).unwrap_or_default(),
        name,
    }
}

/// Writes `status` as this node's entry of the object's status (in the background; a
/// failure is logged).
pub fn report(client: &Client, name: &str, node: &str, status: NodeStatus) {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource());
    let (name, node) = (name.to_owned(), node.to_owned());
    tokio::spawn(async move {
        let patch = serde_json::json!({ "status": { "nodes": { node: status } } });
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!("kubernetes: writing the status of tracingpolicy {name}: {e}");
        }
    });
}

/// Applies `change` to the store, reporting each object's outcome in its status.
/// `known`: the policies that came from objects (a full list removes those gone).
pub fn apply_change(
    change: Change,
    store: &mut super::store::PolicyStore,
    ebpf: &mut aya::Ebpf,
    client: &Client,
    node: &str,
    known: &mut BTreeSet<String>,
) {
    match change {
        Change::Apply {
            name,
            generation,
            document,
        } => {
            let source = format!("tracingpolicy/{name}");
            let status = |state: &str, message: String| NodeStatus {
                state: state.to_owned(),
                message,
                observed_generation: generation,
            };
            let outcome = match super::parse::text_documents(&source, &document) {
                Err(errors) => {
                    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    for e in &text {
                        tracing::error!("policy refused: {e}");
                    }
                    status("Error", text.join("\n"))
                }
                Ok(docs) => match docs.first() {
                    None => status("Error", "no policy in the object".into()),
                    Some(doc) => {
                        match store.add(ebpf, &doc.policy, std::path::Path::new(&source)) {
                            Ok(()) => {
                                known.insert(name.clone());
                                tracing::info!("policy {name} loaded from {source}");
                                status("Loaded", String::new())
                            }
                            Err(e) => {
                                tracing::error!("policy refused: {source}: {e}");
                                let kept = if known.contains(&name) {
                                    " (its previous version keeps running)"
                                } else {
                                    ""
                                };
                                status("Error", format!("{e}{kept}"))
                            }
                        }
                    }
                },
            };
            report(client, &name, node, outcome);
        }
        Change::Delete { name } => {
            if known.remove(&name) && store.remove(ebpf, &name) {
                tracing::info!("policy {name} removed: its tracingpolicy was deleted");
            }
        }
        Change::Listed { names } => {
            let gone: Vec<String> = known.difference(&names).cloned().collect();
            for name in gone {
                known.remove(&name);
                if store.remove(ebpf, &name) {
                    tracing::info!("policy {name} removed: its tracingpolicy is gone");
                }
            }
        }
    }
}
