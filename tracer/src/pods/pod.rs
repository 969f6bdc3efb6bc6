//! A process's pod, in Tetragon's shape (`process.pod`): found in the watcher's stores
//! by the container id its cgroup names (a pod's `containerStatuses`), or by the pod uid
//! of its cgroup while the container's status is not written yet; its workload resolved
//! through its controller (a ReplicaSet to its Deployment, a Job to its CronJob).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{ContainerStatus, Pod},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::runtime::reflector::ObjectRef;
use serde::Serialize;

use super::{cgroup::Container, watcher::Stores};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
/// Empty strings are left out, as protojson leaves out a field at its zero value.
pub struct PodOut {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    pub container: ContainerOut,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub workload: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub workload_kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerOut {
    /// `containerd://<id>`, as the pod's status names it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// The process's pid in the container's pid namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl PodOut {
    /// This pod, as process `ns_pid` (0: unknown) of its container sees it.
    pub fn for_process(self: &std::sync::Arc<Self>, ns_pid: u32) -> std::sync::Arc<Self> {
        if ns_pid == 0 {
            return self.clone();
        }
        let mut pod = (**self).clone();
        pod.container.pid = Some(ns_pid);
        std::sync::Arc::new(pod)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageOut {
    /// The image's digest reference (`imageID`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The image as the pod names it (`repo:tag`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// The pod of `container` in the stores, if it is one of this node's pods.
pub fn find(stores: &Stores, container: &Container) -> Option<PodOut> {
    let id = container.status_id();
    let by_status = stores
        .pods
        .find(|p| statuses(p).any(|s| s.container_id.as_deref() == Some(id.as_str())));
    let pod = by_status.or_else(|| {
        let uid = container.pod_uid.as_deref()?;
        stores.pods.find(|p| p.metadata.uid.as_deref() == Some(uid))
    })?;
    Some(pod_out(&pod, &id, |owner, ns| workload(stores, owner, ns)))
}

/// Every container status of a pod: its containers', init containers', ephemeral ones'.
pub fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let s = pod.status.as_ref();
    let containers = s.and_then(|s| s.container_statuses.as_ref());
    let init = s.and_then(|s| s.init_container_statuses.as_ref());
    let ephemeral = s.and_then(|s| s.ephemeral_container_statuses.as_ref());
    containers
        .into_iter()
        .flatten()
        .chain(init.into_iter().flatten())
        .chain(ephemeral.into_iter().flatten())
}

/// The pod in Tetragon's shape, for its container `id`; `resolve` names the workload of
/// a controller (kind, name) in a namespace.
fn pod_out(
    pod: &Pod,
    id: &str,
    resolve: impl Fn(&OwnerReference, &str) -> (String, String),
) -> PodOut {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = statuses(pod).find(|s| s.container_id.as_deref() == Some(id));
    let container = ContainerOut {
        id: id.to_owned(),
        name: status.map(|s| s.name.clone()).unwrap_or_default(),
        image: status.map(|s| ImageOut {
            id: s.image_id.clone(),
            name: s.image.clone(),
        }),
        start_time: status
            .and_then(|s| s.state.as_ref())
            .and_then(|st| st.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .map(|t| t.0.to_string()),
        pid: None,
    };
    let controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let (workload_kind, workload) = match controller {
        Some(owner) => resolve(owner, &namespace),
        None => ("Pod".to_owned(), name.clone()),
    };
    PodOut {
        namespace,
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        name,
        container,
        pod_labels: pod.metadata.labels.clone().unwrap_or_default(),
        workload,
        workload_kind,
    }
}

/// The workload a pod's controller belongs to: a ReplicaSet's Deployment, a Job's
/// CronJob, or the controller itself (a StatefulSet, a DaemonSet, a bare ReplicaSet or
/// Job).
fn workload(stores: &Stores, owner: &OwnerReference, namespace: &str) -> (String, String) {
    let parent = match owner.kind.as_str() {
        "ReplicaSet" => stores
            .replicasets
            .get(&ObjectRef::new(&owner.name).within(namespace))
            .and_then(|rs| controller_of(&rs.metadata.owner_references)),
        "Job" => stores
            .jobs
            .get(&ObjectRef::new(&owner.name).within(namespace))
            .and_then(|job| controller_of(&job.metadata.owner_references)),
        _ => None,
    };
    parent.unwrap_or_else(|| (owner.kind.clone(), owner.name.clone()))
}

fn controller_of(owners: &Option<Vec<OwnerReference>>) -> Option<(String, String)> {
    owners
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.clone(), o.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-7d9f-abcde", "namespace": "shop",
                "uid": "2a1f6d3e-7b8c-4d9e-a0f1-b2c3d4e5f607",
                "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f", "uid": "x", "controller": true}]
            },
            "status": {"containerStatuses": [{
                "name": "nginx", "containerID": "containerd://abc", "image": "nginx:1.27",
                "imageID": "docker.io/library/nginx@sha256:0123", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-11-25T10:00:00Z"}}
            }]}
        }))
        .expect("a pod")
    }

    #[test]
    fn a_pod_in_tetragons_shape() {
        let out = pod_out(&pod(), "containerd://abc", |o, ns| {
            assert_eq!(
                (o.kind.as_str(), o.name.as_str(), ns),
                ("ReplicaSet", "web-7d9f", "shop")
            );
            ("Deployment".into(), "web".into())
        });
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            serde_json::json!({
                "namespace": "shop", "name": "web-7d9f-abcde",
                "uid": "2a1f6d3e-7b8c-4d9e-a0f1-b2c3d4e5f607",
                "container": {
                    "id": "containerd://abc", "name": "nginx",
                    "image": {"id": "docker.io/library/nginx@sha256:0123", "name": "nginx:1.27"},
                    "start_time": "2026-11-25T10:00:00Z"
                },
                "pod_labels": {"app": "web"},
                "workload": "web", "workload_kind": "Deployment"
            })
        );
    }

    #[test]
    fn a_bare_pod_is_its_own_workload_and_a_new_container_has_no_status_yet() {
        let mut p = pod();
        p.metadata.owner_references = None;
        let out = pod_out(&p, "containerd://def", |_, _| unreachable!("no controller"));
        assert_eq!(
            (out.workload.as_str(), out.workload_kind.as_str()),
            ("web-7d9f-abcde", "Pod")
        );
        assert_eq!(out.container.name, "");
        assert_eq!(out.container.image, None);
    }
}
