//! The pods of this node, from the Kubernetes API server: listed, then watched (kube's
//! watcher: re-listed after a 410 Gone, reconnected with backoff after a dropped
//! connection or a restarted server), and kept in local stores, with the ReplicaSets and
//! Jobs that name a pod's workload.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    batch::v1::Job,
    core::v1::{Node, Pod},
};
use kube::{
    Api, Client, Config,
    runtime::{
        WatchStreamExt as _,
        reflector::{self, Store},
        watcher,
    },
};

use super::checked::{self, Checked};

/// How long a watch lasts before the agent asks again (`timeoutSeconds`): the API server
/// ends it then, and a watch that sends nothing for 5 s longer is dropped by the client.
pub const WATCH_SECONDS: u32 = 55;

/// How long the client waits for any read of an answer: a server that takes the
/// connection and never answers a list fails it then, and the watcher retries (kube's
/// client waits forever by default). Longer than a watch, whose server ends it first.
pub const READ_TIMEOUT: Duration = Duration::from_secs(WATCH_SECONDS as u64 + 5);

/// The client of the cluster (in-cluster, or a kubeconfig), as kube's default but with a
/// read timeout ([`READ_TIMEOUT`]).
pub async fn client() -> Result<Client, kube::Error> {
    let mut config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    config.read_timeout = Some(READ_TIMEOUT);
    // The timeout counts from the request, not from when a pooled connection went idle.
    config.reset_reader_on_write = true;
    Client::try_from(config)
}

/// The watcher's settings for every kind: watches of [`WATCH_SECONDS`].
pub fn config() -> watcher::Config {
    watcher::Config::default().timeout(WATCH_SECONDS)
}

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
    watch_node_labels(Api::all(client.clone()), node);
    let on_node = node.to_owned();
    let pods = watch(
        Api::all(client.clone()),
        config().fields(&format!("spec.nodeName={node}")),
        "pods",
        generation.clone(),
        // A server that sends pods of other nodes (the field selector ignored) does not
        // fill the store with them.
        move |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&*on_node),
    );
    let replicasets = watch(
        Api::all(client.clone()),
        config(),
        "replicasets",
        generation.clone(),
        |_: &ReplicaSet| true,
    );
    let jobs = watch(
        Api::all(client),
        config(),
        "jobs",
        generation.clone(),
        |_: &Job| true,
    );
    Stores {
        pods,
        replicasets,
        jobs,
        generation,
    }
}

/// A store of the objects of `api` that `config` selects and `keep` keeps, filled by a
/// task that lists and watches them for as long as the agent runs. An object that is not
/// a valid `K` is logged and left out ([`checked::sort`]).
fn watch<K>(
    api: Api<Checked<K>>,
    config: watcher::Config,
    what: &'static str,
    generation: Arc<AtomicU64>,
    keep: impl Fn(&K) -> bool + Send + 'static,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Default
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&()).into_owned();
    let mut unselected = 0u64;
    let checked = watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let event = match event {
                Ok(e) => checked::sort(e, &kind).and_then(|e| match e {
                    watcher::Event::Apply(k) | watcher::Event::InitApply(k) if !keep(&k) => {
                        unselected += 1;
                        if unselected == 1 {
                            tracing::warn!(
                                "kubernetes: the API server sent {kind} {} that the field \
                                 selector leaves out; left out (said once)",
                                checked::display_name(k.meta())
                            );
                        }
                        None
                    }
                    e => Some(Ok(e)),
                }),
                Err(e) => Some(Err(e)),
            };
            std::future::ready(event)
        });
    let stream = reflector::reflector(writer, checked);
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
fn watch_node_labels(api: Api<Checked<Node>>, node: &str) {
    let config = config().fields(&format!("metadata.name={node}"));
    let stream = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .filter_map(|object| {
            std::future::ready(match object {
                Ok(Checked::Good(n)) => Some(Ok(n)),
                Ok(Checked::Bad { meta, reason }) => {
                    checked::log_bad("Node", &meta, &reason);
                    None
                }
                Err(e) => Some(Err(e)),
            })
        });
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
