//! Pod enrichment: which container and pod each process of an event runs in. The stage
//! runs on built events, before they are exported.
//!
//! - [`cgroup`]: the cgroup id of an event to its path, and the container id and pod uid
//!   the container runtime wrote into it.
//! - [`watcher`]: the pods of this node (and the ReplicaSets and Jobs that name their
//!   workloads) from the Kubernetes API server, in local stores.
//! - [`pod`]: a pod and one of its containers, in Tetragon's shape.

pub mod cgroup;
pub mod checked;
pub mod pod;
pub mod watcher;

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use crate::event::{Event, ProcessOut};

use cgroup::{CgroupPaths, Container};
use pod::PodOut;

/// The enrichment stage: the container of each cgroup, found once, and its pod, found
/// again whenever the pod stores change.
pub struct Pods {
    paths: CgroupPaths,
    /// Per cgroup id: its container, or `None` for a host cgroup.
    containers: HashMap<u64, Option<Container>>,
    stores: Option<watcher::Stores>,
    /// Per cgroup id: its pod, as of store generation `generation`.
    pods: HashMap<u64, Option<Arc<PodOut>>>,
    generation: u64,
    /// Bumped whenever `pods` starts over: with a process's answer, the key of the
    /// enrichment it was given (`ProcessOut::enrichment`).
    epoch: u64,
}

/// At most this many cgroups are remembered; past it the memory starts over.
const MAX_CGROUPS: usize = 65_536;

impl Pods {
    /// `cgroup_root`: the cgroup v2 mount (`/sys/fs/cgroup`); `stores`: the Kubernetes
    /// watcher's, where there is a cluster.
    pub fn new(cgroup_root: impl Into<PathBuf>, stores: Option<watcher::Stores>) -> Self {
        Self {
            paths: CgroupPaths::new(cgroup_root),
            containers: HashMap::new(),
            stores,
            pods: HashMap::new(),
            generation: u64::MAX,
            epoch: 0,
        }
    }

    /// Fills the container and pod fields of every process object of `event`.
    pub fn enrich(&mut self, event: &mut Event<'_>) {
        self.refresh();
        for p in event.processes_mut() {
            self.enrich_process(p);
        }
    }

    fn enrich_process(&mut self, p: &mut ProcessOut<'_>) {
        if p.cgroup == 0 {
            return;
        }
        if self.containers.len() >= MAX_CGROUPS {
            self.containers.clear();
            self.pods.clear();
            self.epoch += 1;
        }
        if !self.containers.contains_key(&p.cgroup) {
            // A cgroup not found (yet: made since the last walk, which runs at most every
            // 200 ms) is not remembered as a host cgroup.
            let Some(path) = self.paths.path_of(p.cgroup, p.pid) else {
                return;
            };
            let container = cgroup::container_of(path);
            self.containers.insert(p.cgroup, container);
        }
        let Some(container) = &self.containers[&p.cgroup] else {
            p.host = self.stores.is_some();
            p.enrichment = (self.epoch + 1) << 2 | u64::from(p.host);
            return;
        };
        p.docker = Some(container.short_id().to_owned());
        p.pod = self.pod_of(p.cgroup).map(|pod| pod.for_process(p.ns_pid));
        // The process's cgroup decides its container and pod, fixed until `pods` starts
        // over (a new epoch).
        p.enrichment = (self.epoch + 1) << 2 | 2 | u64::from(p.pod.is_some());
    }

    /// The pod of cgroup `cgroup` (a container's), as the stores have it now.
    fn pod_of(&mut self, cgroup: u64) -> Option<Arc<PodOut>> {
        let stores = self.stores.as_ref()?;
        let container = self.containers.get(&cgroup)?.as_ref()?;
        self.pods
            .entry(cgroup)
            .or_insert_with(|| pod::find(stores, container).map(Arc::new))
            .clone()
    }

    /// For each of `scopes`, the container cgroups of this node's pods it selects (empty
    /// without a cluster): the cgroups a pod-scoped policy applies in. One walk of the
    /// cgroups serves them all.
    pub fn scope_cgroups(&mut self, scopes: &[&crate::policy::spec::Scope]) -> Vec<BTreeSet<u64>> {
        let Some(stores) = &self.stores else {
            return vec![BTreeSet::new(); scopes.len()];
        };
        if scopes.is_empty() {
            return Vec::new();
        }
        let mut by_id: HashMap<String, Vec<u64>> = HashMap::new();
        for (cgroup, c) in self.paths.containers() {
            by_id.entry(c.status_id()).or_default().push(cgroup);
        }
        let pods = stores.pods.state();
        scopes
            .iter()
            .map(|scope| selected_cgroups(scope, &pods, &by_id))
            .collect()
    }

    /// Where there is a cluster, the (cgroup, namespace pid) of `event`'s processes that
    /// run in containers, and whether the pod of one of them is not known (yet): then the
    /// event waits (see [`Waiting`]).
    pub fn containers_of(&self, event: &mut Event<'_>) -> (Vec<(u64, u32)>, bool) {
        if self.stores.is_none() {
            return (Vec::new(), false);
        }
        let mut unresolved = false;
        let cgroups = event
            .processes_mut()
            .filter(|p| p.docker.is_some())
            .map(|p| {
                unresolved |= p.pod.is_none();
                (p.cgroup, p.ns_pid)
            })
            .collect();
        (cgroups, unresolved)
    }

    /// Refreshes the answers if the stores changed since the last event.
    fn refresh(&mut self) {
        if let Some(s) = &self.stores {
            let now = s.generation.load(Ordering::Relaxed);
            if now != self.generation {
                self.pods.clear();
                self.epoch += 1;
                self.generation = now;
            }
        }
    }
}

/// The cgroups of the containers `scope` selects among `pods`, by the cgroups of each
/// container id (`by_id`).
fn selected_cgroups(
    scope: &crate::policy::spec::Scope,
    pods: &[Arc<k8s_openapi::api::core::v1::Pod>],
    by_id: &HashMap<String, Vec<u64>>,
) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for p in pods {
        let ns = p.metadata.namespace.as_deref().unwrap_or_default();
        if scope.namespace.as_deref().is_some_and(|n| n != ns) {
            continue;
        }
        let labels = p.metadata.labels.as_ref();
        let pod_label = |k: &str| {
            if k == "k8s:io.kubernetes.pod.namespace" {
                Some(ns.to_owned())
            } else {
                labels.and_then(|l| l.get(k).cloned())
            }
        };
        if scope.pods.as_ref().is_some_and(|s| !s.matches(&pod_label)) {
            continue;
        }
        for status in pod::statuses(p) {
            let container_key = |k: &str| match k {
                "name" => Some(status.name.clone()),
                "repo" => Some(image_repo(&status.image).to_owned()),
                _ => None,
            };
            if scope
                .containers
                .as_ref()
                .is_some_and(|s| !s.matches(&container_key))
            {
                continue;
            }
            if let Some(cgroups) = status.container_id.as_ref().and_then(|id| by_id.get(id)) {
                out.extend(cgroups);
            }
        }
    }
    out
}

/// An image reference without its tag or digest: `registry.test/app:1.0` is
/// `registry.test/app`.
fn image_repo(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    // A `:` after the last `/` starts the tag (one before it is a registry's port).
    match (image.rfind(':'), image.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => &image[..colon],
        (Some(colon), None) => &image[..colon],
        _ => image,
    }
}

/// Events of processes whose pod the watcher has not seen yet (a process that starts
/// before its pod's status names its container): held, in order, until the pod is known,
/// then written with it; past `wait`, written without it, saying so (`"pod_unknown":
/// true` on the process object). Later events of those cgroups wait behind them, so that
/// a process's events keep their order.
pub struct Waiting {
    queue: VecDeque<Held>,
    wait: Duration,
}

struct Held {
    event: serde_json::Value,
    /// (cgroup, namespace pid) of its processes in containers.
    processes: Vec<(u64, u32)>,
    until: Instant,
}

impl Waiting {
    pub fn new(wait: Duration) -> Self {
        Self {
            queue: VecDeque::new(),
            wait,
        }
    }

    /// Whether events of `processes`' cgroups wait behind held ones.
    pub fn holds_any(&self, processes: &[(u64, u32)]) -> bool {
        self.queue.iter().any(|h| {
            h.processes
                .iter()
                .any(|(c, _)| processes.iter().any(|(p, _)| p == c))
        })
    }

    /// Holds `event`, whose processes (cgroup, namespace pid) are in containers.
    pub fn hold(&mut self, event: serde_json::Value, processes: Vec<(u64, u32)>) {
        self.queue.push_back(Held {
            event,
            processes,
            until: Instant::now() + self.wait,
        });
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Writes (by `write`) every held event whose pods are known now, or whose wait is
    /// over, keeping the order of events of one cgroup; all of them with `all`.
    pub fn release(
        &mut self,
        pods: &mut Pods,
        all: bool,
        mut write: impl FnMut(serde_json::Value),
    ) {
        pods.refresh();
        let now = Instant::now();
        let mut blocked: Vec<u64> = Vec::new();
        let mut kept = VecDeque::new();
        while let Some(mut h) = self.queue.pop_front() {
            if h.processes.iter().any(|(c, _)| blocked.contains(c)) {
                blocked.extend(h.processes.iter().map(|(c, _)| *c));
                kept.push_back(h);
                continue;
            }
            let found: Vec<(u64, Option<Arc<PodOut>>)> = h
                .processes
                .iter()
                .map(|(c, pid)| (*c, pods.pod_of(*c).map(|p| p.for_process(*pid))))
                .collect();
            let resolved = found.iter().all(|(_, p)| p.is_some());
            if !resolved && !all && now < h.until {
                blocked.extend(h.processes.iter().map(|(c, _)| *c));
                kept.push_back(h);
                continue;
            }
            patch(&mut h.event, &found);
            write(h.event);
        }
        self.queue = kept;
    }
}

/// Writes the pods found into the process objects of a held event (`process`, then
/// `parent`, in the order `found` has them), and `pod_unknown` where none was.
fn patch(event: &mut serde_json::Value, found: &[(u64, Option<Arc<PodOut>>)]) {
    let Some(body) = event
        .as_object_mut()
        .and_then(|m| m.values_mut().find(|v| v.get("process").is_some()))
    else {
        return;
    };
    let mut found = found.iter();
    for key in ["process", "parent"] {
        let Some(p) = body.get_mut(key) else {
            continue;
        };
        if p.get("docker").is_none() {
            continue;
        }
        let Some((_, pod)) = found.next() else {
            continue;
        };
        match pod {
            Some(pod) => p["pod"] = serde_json::to_value(&**pod).unwrap_or_default(),
            // Not in Tetragon: left out in strict mode.
            None if !crate::event::tetragon_strict() => {
                p["pod_unknown"] = serde_json::Value::Bool(true)
            }
            None => {}
        }
    }
}
