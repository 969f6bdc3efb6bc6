//! The pods of this node, from the Kubernetes API server: listed, then watched (kube's
//! watcher: re-listed after a 410 Gone, reconnected with backoff after a dropped
//! connection or a restarted server), and kept in local stores, with the ReplicaSets and
//! Jobs that name a pod's workload.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use futures::StreamExt as _;
use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    batch::v1::Job,
    core::v1::{Node, Pod},
};
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt as _,
        reflector::{self, Store},
        watcher,
    },
};

/// Local copies of the objects enrichment reads, kept up to date by watcher tasks.
#[derive(Clone)]
pub struct Stores {
    pub pods: Store<Pod>,
    pub replicasets: Store<ReplicaSet>,
    pub jobs: Store<Job>,
    /// Counts the changes applied to the stores: the enrichment stage's cache of answers
    /// is good while it stays the same.
    pub generation: Arc<AtomicU64>,
}

/// Starts watching the pods of node `node` (and every ReplicaSet and Job), and the
/// node's own object for its labels (`node_labels`).
pub fn start(client: Client, node: &str) -> Stores {
    let generation = Arc::new(AtomicU64::new(0));
    watch_node_labels(Api::<Node>::all(client.clone()), node);
    let pods = watch(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields(&format!("spec.nodeName={node}")),
        "pods",
        generation.clone(),
    );
    let replicasets = watch(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
        "replicasets",
        generation.clone(),
    );
    let jobs = watch(
        Api::<Job>::all(client),
        watcher::Config::default(),
        "jobs",
        generation.clone(),
    );
    Stores {
        pods,
        replicasets,
        jobs,
        generation,
    }
}

/// A store of the objects of `api` that `config` selects, filled by a task that lists
/// and watches them for as long as the agent runs.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    generation: Arc<AtomicU64>,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut failing = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    if failing {
                        tracing::info!("kubernetes: watching {what} again");
                        failing = false;
                    }
                    if matches!(event, watcher::Event::InitDone) {
                        tracing::info!("kubernetes: {what} listed");
                    }
                    generation.fetch_add(1, Ordering::Relaxed);
                }
                // The watcher lists again or reconnects, with backoff: say so once per
                // outage.
                Err(e) if !failing => {
                    tracing::warn!("kubernetes: watching {what} failed, retrying: {e}");
                    failing = true;
                }
                Err(e) => tracing::debug!("kubernetes: watching {what}: {e}"),
            }
        }
    });
    reader
}

/// Keeps [`crate::event::node_labels`] equal to the labels of the Node object named
/// `node`, as it changes; a node the API server does not have (or that the agent may not
/// read) leaves them out, with a warning once.
fn watch_node_labels(api: Api<Node>, node: &str) {
    let config = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let stream = watcher(api, config).default_backoff().applied_objects();
    let node = node.to_owned();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut failing = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(object) => {
                    failing = false;
                    let labels = object.metadata.labels.unwrap_or_default();
                    tracing::debug!("kubernetes: node {node} has {} labels", labels.len());
                    crate::event::node_labels::set(labels);
                }
                Err(e) if !failing => {
                    tracing::warn!(
                        "kubernetes: reading node {node} for its labels failed, retrying \
                         (events go without `node_labels` until then; the ClusterRole needs \
                         get, list and watch on nodes): {e}"
                    );
                    failing = true;
                }
                Err(e) => tracing::debug!("kubernetes: node {node}: {e}"),
            }
        }
    });
}
