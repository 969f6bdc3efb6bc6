//! Pod enrichment: which container and pod each process of an event runs in. The stage
//! runs on built events, before they are exported.
//!
//! - [`cgroup`]: the cgroup id of an event to its path, and the container id and pod uid
//!   the container runtime wrote into it.
//! - [`watcher`]: the pods of this node (and the ReplicaSets and Jobs that name their
//!   workloads) from the Kubernetes API server, in local stores.
//! - [`pod`]: a pod and one of its containers, in Tetragon's shape.

pub mod cgroup;
pub mod pod;
pub mod watcher;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
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
        }
    }

    /// Fills the container and pod fields of every process object of `event`.
    pub fn enrich(&mut self, event: &mut Event<'_>) {
        if let Some(s) = &self.stores {
            let now = s.generation.load(Ordering::Relaxed);
            if now != self.generation {
                self.pods.clear();
                self.generation = now;
            }
        }
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
        }
        if !self.containers.contains_key(&p.cgroup) {
            // A cgroup not found (yet: made since the last walk, which runs at most every
            // 200 ms) is not remembered as a host cgroup.
            let Some(path) = self.paths.path(p.cgroup) else {
                return;
            };
            let container = cgroup::container_of(path);
            self.containers.insert(p.cgroup, container);
        }
        let Some(container) = &self.containers[&p.cgroup] else {
            return;
        };
        p.docker = Some(container.short_id().to_owned());
        if let Some(stores) = &self.stores {
            p.pod = self
                .pods
                .entry(p.cgroup)
                .or_insert_with(|| pod::find(stores, container).map(Arc::new))
                .clone();
        }
    }
}
