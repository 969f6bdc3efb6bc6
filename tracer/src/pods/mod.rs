//! Pod enrichment: which container (and pod) each process of an event runs in. The
//! stage runs on built events, before they are exported.
//!
//! - [`cgroup`]: the cgroup id of an event to its path, and the container id and pod uid
//!   the container runtime wrote into it.

pub mod cgroup;

use std::{collections::HashMap, path::PathBuf};

use crate::event::{Event, ProcessOut};

use cgroup::{CgroupPaths, Container};

/// The enrichment stage: the container of each cgroup, found once.
pub struct Pods {
    paths: CgroupPaths,
    /// Per cgroup id: its container, or `None` for a host cgroup.
    containers: HashMap<u64, Option<Container>>,
}

/// At most this many cgroups are remembered; past it the memory starts over.
const MAX_CGROUPS: usize = 65_536;

impl Pods {
    /// `cgroup_root`: the cgroup v2 mount (`/sys/fs/cgroup`).
    pub fn new(cgroup_root: impl Into<PathBuf>) -> Self {
        Self {
            paths: CgroupPaths::new(cgroup_root),
            containers: HashMap::new(),
        }
    }

    /// Fills the container fields of every process object of `event`.
    pub fn enrich(&mut self, event: &mut Event<'_>) {
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
        p.docker = self.containers[&p.cgroup]
            .as_ref()
            .map(|c| c.short_id().to_owned());
    }
}
