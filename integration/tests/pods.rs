//! Containers found from cgroups: real cgroup v2 hierarchies, laid out as containerd,
//! CRI-O and Docker lay them out (systemd and cgroupfs drivers), with a real process
//! exec'd inside each; its events must name the container, and a process outside them
//! none.

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use integration::{Agent, apiserver::ApiServer, exec_of, exit_of, of_kind, privileged, run};
use serde_json::Value;

/// The exec of process `pid` into `/bin/true <arguments>` (after its shell's).
fn marker<'a>(events: &'a [Value], pid: u32, arguments: &str) -> Option<&'a Value> {
    of_kind(events, "process_exec")
        .into_iter()
        .find(|e| e["process"]["pid"] == pid && e["process"]["arguments"] == arguments)
}

const UID: &str = "2a1f6d3e-7b8c-4d9e-a0f1-b2c3d4e5f607";

/// The cgroup v2 mount: `/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a hybrid host.
fn v2_root() -> PathBuf {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mount = left.split_whitespace().nth(4)?;
            right.starts_with("cgroup2 ").then(|| PathBuf::from(mount))
        })
        .expect("a cgroup2 mount: the tracer finds containers by their cgroup v2 id")
}

/// Removes the test's cgroups, deepest first, when the test ends.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut dirs: Vec<PathBuf> = walk(&self.0);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = fs::remove_dir(&d);
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

#[test]
fn containers_of_containerd_crio_and_docker_cgroups() {
    if !privileged("containers_of_containerd_crio_and_docker_cgroups") {
        return;
    }
    let root = v2_root().join(format!("tracer-test-{}", std::process::id()));
    fs::create_dir_all(&root).expect("make a cgroup");
    let _cleanup = Cleanup(root.clone());
    let uid_ = UID.replace('-', "_");
    // (layout, runtime's id: 64 hex digits, one per layout)
    let layouts: Vec<(String, String)> = [
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{id}.scope",
        "kubepods/besteffort/pod{uid}/{id}",
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{id}.scope",
        "kubepods/burstable/pod{uid}/crio-{id}",
        "system.slice/docker-{id}.scope",
        "docker/{id}",
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| {
        let id = format!("{i:x}").repeat(64);
        let path = l
            .replace("{uid_}", &uid_)
            .replace("{uid}", UID)
            .replace("{id}", &id);
        (path, id)
    })
    .collect();
    for (path, _) in &layouts {
        fs::create_dir_all(root.join(path)).expect("make the layout's cgroups");
    }
    let agent = Agent::start(&[]);
    let mut runs = Vec::new();
    for (path, id) in &layouts {
        let dir = root.join(path);
        // The shell moves itself into the container's cgroup, then becomes the marker.
        let (pid, out) = run(Command::new("/bin/sh").arg("-c").arg(format!(
            "echo $$ > '{}/cgroup.procs' && exec /bin/true in-container",
            dir.display()
        )));
        assert!(out.status.success(), "{path}: {out:?}");
        runs.push((pid, id.clone(), fs::metadata(&dir).expect("cgroup").ino()));
    }
    let (host, _) = run(Command::new("/bin/true").arg("on-the-host"));
    let events = agent.sync();
    for ((pid, id, ino), (path, _)) in runs.iter().zip(&layouts) {
        let exec =
            marker(&events, *pid, "in-container").unwrap_or_else(|| panic!("{path}: no exec"));
        let p = &exec["process"];
        assert_eq!(
            p["cgroup_id"],
            ino.to_string(),
            "{path}: the cgroup's id is its inode"
        );
        assert_eq!(p["docker"], id[..31], "{path}");
        let exit = exit_of(&events, *pid).unwrap_or_else(|| panic!("{path}: no exit"));
        assert_eq!(exit["process"]["docker"], id[..31], "{path}");
    }
    let exec = exec_of(&events, host).expect("the host process's exec");
    assert!(exec["process"].get("docker").is_none(), "{exec}");
    // Without a cluster there is no telling a host process: no `host`.
    assert!(exec["process"].get("host").is_none(), "{exec}");
    // A conmon's cgroup is CRI-O's, and no container's.
    let conmon = root.join(format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-conmon-{}.scope",
        "c".repeat(64)
    ));
    fs::create_dir_all(&conmon).expect("make a conmon cgroup");
    let (pid, out) = run(Command::new("/bin/sh").arg("-c").arg(format!(
        "echo $$ > '{}/cgroup.procs' && exec /bin/true conmon",
        conmon.display()
    )));
    assert!(out.status.success(), "{out:?}");
    let events = agent.sync();
    let exec = marker(&events, pid, "conmon").expect("conmon's exec");
    assert!(exec["process"].get("docker").is_none(), "{exec}");
}

/// A pod object of node `node`, with one running container `id` (containerd), owned by
/// `owner` (kind, name) if any.
fn pod(
    ns: &str,
    name: &str,
    uid: &str,
    node: &str,
    id: &str,
    owner: Option<(&str, &str)>,
) -> Value {
    let owners: Vec<Value> = owner
        .iter()
        .map(|(kind, name)| {
            serde_json::json!({"apiVersion": "v1", "kind": kind, "name": name, "uid": "owner", "controller": true})
        })
        .collect();
    serde_json::json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "uid": uid, "labels": {"app": name}, "ownerReferences": owners},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.test/app:1.0"}]},
        "status": {"containerStatuses": [{
            "name": "main", "containerID": format!("containerd://{id}"),
            "image": "registry.test/app:1.0", "imageID": "registry.test/app@sha256:0123",
            "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-11-25T10:00:00Z"}}
        }]}
    })
}

/// An object of `kind` owned by controller (owner kind, owner name).
fn owned(kind: &str, api_version: &str, ns: &str, name: &str, owner: (&str, &str)) -> Value {
    serde_json::json!({
        "kind": kind, "apiVersion": api_version,
        "metadata": {"name": name, "namespace": ns, "uid": format!("{name}-uid"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner.0, "name": owner.1, "uid": "o", "controller": true}]},
        "spec": {}
    })
}

/// Pods from a Kubernetes API server (in-process: real list and watch over HTTP): a
/// process in a pod's container carries the pod, its labels, its container and its
/// workload through ReplicaSet and Job owners; a pod of another node is not watched; a
/// pod added later arrives by the watch, and one the watch missed by the list that follows
/// a 410 Gone; without a cluster enrichment is off, said once.
#[test]
fn pods_from_the_api_server() {
    if !privileged("pods_from_the_api_server") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let server = ApiServer::start();
    let node = "test-node";
    let ids: Vec<String> = (0..4).map(|i| format!("{:x}", 10 + i).repeat(64)).collect();
    let uids: Vec<String> = (0..4)
        .map(|i| format!("{i}a1f6d3e-7b8c-4d9e-a0f1-b2c3d4e5f607"))
        .collect();
    server.apply(owned(
        "ReplicaSet",
        "apps/v1",
        "shop",
        "web-7d9f",
        ("Deployment", "web"),
    ));
    server.apply(owned(
        "Job",
        "batch/v1",
        "ops",
        "backup-29000",
        ("CronJob", "backup"),
    ));
    server.apply(pod(
        "shop",
        "web-7d9f-abcde",
        &uids[0],
        node,
        &ids[0],
        Some(("ReplicaSet", "web-7d9f")),
    ));
    server.apply(pod(
        "shop",
        "elsewhere",
        &uids[1],
        "other-node",
        &ids[1],
        None,
    ));
    let kubeconfig = server.kubeconfig(work.path());
    let agent = Agent::start_with_env(
        &["--pod-wait-ms", "2000"],
        &[("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))],
    );
    agent.wait_for_log("kubernetes: pods listed");
    assert!(
        agent
            .stderr()
            .contains(&format!("kubernetes: watching the pods of node {node}"))
    );

    let root = v2_root().join(format!("tracer-pods-{}", std::process::id()));
    let _cleanup = Cleanup(root.clone());
    // A process in container `i`'s cgroup (containerd, systemd driver); its exec event,
    // which waits (up to --pod-wait-ms) for the watcher to know the pod.
    let exec_in = |i: usize| -> Value {
        let dir = root.join(format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope",
            uids[i].replace('-', "_"),
            ids[i]
        ));
        fs::create_dir_all(&dir).expect("make the container's cgroup");
        let (pid, out) = run(Command::new("/bin/sh").arg("-c").arg(format!(
            "echo $$ > '{}/cgroup.procs' && exec /bin/true in-pod-{i}",
            dir.display()
        )));
        assert!(out.status.success(), "{out:?}");
        let start = Instant::now();
        loop {
            let events = agent.sync();
            if let Some(exec) = marker(&events, pid, &format!("in-pod-{i}")) {
                return exec.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no exec in pod {i}: {}",
                agent.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Listed at start: the pod, its container, its Deployment through its ReplicaSet.
    let exec = exec_in(0);
    let p = &exec["process"];
    assert_eq!(p["docker"], ids[0][..31]);
    assert_eq!(
        p["pod"],
        serde_json::json!({
            "namespace": "shop", "name": "web-7d9f-abcde", "uid": uids[0],
            "container": {
                "id": format!("containerd://{}", ids[0]), "name": "main",
                "image": {"id": "registry.test/app@sha256:0123", "name": "registry.test/app:1.0"},
                "start_time": "2026-11-25T10:00:00Z",
                // In this test the "container" shares the host's pid namespace.
                "pid": p["pid"]
            },
            "pod_labels": {"app": "web-7d9f-abcde"},
            "workload": "web", "workload_kind": "Deployment"
        }),
        "{exec}"
    );
    // In the container's own pid namespace: a shell (pid 1 there) whose subshell forks and
    // exits 3 without an exec; the exit of that fork names its pid in the container (2).
    let dir0 = root.join(format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope",
        uids[0].replace('-', "_"),
        ids[0]
    ));
    let (_, out) = run(Command::new("/bin/sh").arg("-c").arg(format!(
        "echo $$ > '{}/cgroup.procs' && exec unshare --pid --fork /bin/sh -c '(exit 3); /bin/true in-pod-nspid'",
        dir0.display()
    )));
    assert!(out.status.success(), "{out:?}");
    let start = Instant::now();
    let forked = loop {
        let events = agent.sync();
        if let Some(e) = of_kind(&events, "process_exit").into_iter().find(|e| {
            e["status"] == 3
                && e["process"]["arguments"]
                    .as_str()
                    .is_some_and(|a| a.contains("in-pod-nspid"))
        }) {
            break e.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no exit of the fork"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let p = &forked["process"];
    assert!(
        p["flags"].as_str().is_some_and(|f| f.contains("clone")),
        "{forked}"
    );
    assert_eq!(p["pod"]["name"], "web-7d9f-abcde", "{forked}");
    assert_eq!(p["pod"]["container"]["pid"], 2, "{forked}");
    assert_ne!(p["pid"], 2, "the host's pid is another");

    // Another node's pod is not this node's: its container is named, no pod.
    let exec = exec_in(1);
    assert_eq!(exec["process"]["docker"], ids[1][..31]);
    assert!(exec["process"].get("pod").is_none(), "{exec}");
    // It waited for its pod, then went out saying it is unknown.
    assert_eq!(exec["process"]["pod_unknown"], true, "{exec}");

    // Added while the agent runs, by the watch, half a second after its process started:
    // the process's event waits for it. A CronJob's pod, through its Job.
    let exec = std::thread::scope(|scope| {
        let started = scope.spawn(|| exec_in(2));
        std::thread::sleep(Duration::from_millis(500));
        server.apply(pod(
            "ops",
            "backup-29000-xyz",
            &uids[2],
            node,
            &ids[2],
            Some(("Job", "backup-29000")),
        ));
        started.join().expect("the exec in pod 2")
    });
    let p = &exec["process"]["pod"];
    assert_eq!(p["name"], "backup-29000-xyz", "{exec}");
    assert_eq!(
        (p["workload"].as_str(), p["workload_kind"].as_str()),
        (Some("backup"), Some("CronJob"))
    );

    // A pod the watch never told about, then the watch cut: the agent's client comes back
    // from a version the server no longer has, gets 410 Gone, and lists again.
    let lists_before = pod_lists(&server);
    server.apply_unseen(pod("shop", "missed", &uids[3], node, &ids[3], None));
    server.cut_watches();
    let exec = exec_in(3);
    let p = &exec["process"]["pod"];
    assert_eq!(p["name"], "missed", "{exec}");
    assert_eq!(
        (p["workload"].as_str(), p["workload_kind"].as_str()),
        (Some("missed"), Some("Pod"))
    );
    assert!(
        pod_lists(&server) > lists_before,
        "{:#?}",
        server.requests()
    );
    let log = agent.stderr();
    assert!(log.contains("kubernetes: pods listed"), "{log}");
    // A host process, with a cluster, says it is one.
    let (host, _) = run(Command::new("/bin/true").arg("on-the-host"));
    let events = agent.sync();
    let exec = marker(&events, host, "on-the-host").expect("the host process's exec");
    assert_eq!(exec["process"]["host"], true, "{exec}");
    assert!(exec["process"].get("docker").is_none(), "{exec}");
    // Only this node's pods were asked for.
    assert!(
        server
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET /api/v1/pods"))
            .all(|r| r.contains("fieldSelector=spec.nodeName%3Dtest-node")),
        "{:#?}",
        server.requests()
    );
    drop(agent);

    // No cluster: enrichment off, said once; the container is still named.
    let missing = work.path().join("no-such-kubeconfig");
    let agent = Agent::start_with_env(&[], &[("KUBECONFIG", missing.to_str().expect("utf-8"))]);
    let log = agent.stderr();
    assert_eq!(
        log.matches("kubernetes: pod enrichment is off").count(),
        1,
        "{log}"
    );
}

/// How many lists of pods the server has answered.
fn pod_lists(server: &ApiServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods") && !r.contains("watch=true"))
        .count()
}

/// Policies that apply to some pods only, filtered in the kernel by cgroup: a
/// `TracingPolicyNamespaced` (its namespace's pods), a `podSelector` (pods by label) and
/// a `containerSelector` (containers by name), each on the same `openat` of a file; only
/// the processes of the pods they select post, and a host process none.
#[test]
fn policies_scoped_to_pods() {
    if !privileged("policies_scoped_to_pods") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let watched = work.path().join("watched");
    fs::create_dir_all(&watched).expect("make the watched directory");
    let server = ApiServer::start();
    let node = "test-node";
    // (namespace, pod, label app, container name)
    let pods = [
        ("team-a", "a-x", "x", "main"),
        ("team-b", "b-x", "x", "main"),
        ("team-a", "a-y", "y", "side"),
    ];
    let ids: Vec<String> = (0..pods.len())
        .map(|i| format!("{:x}", 0xa + i).repeat(64))
        .collect();
    let uids: Vec<String> = (0..pods.len())
        .map(|i| format!("{i}b1f6d3e-7b8c-4d9e-a0f1-b2c3d4e5f607"))
        .collect();
    for (i, (ns, name, app, container)) in pods.iter().enumerate() {
        let mut p = pod(ns, name, &uids[i], node, &ids[i], None);
        p["metadata"]["labels"] = serde_json::json!({"app": app});
        p["status"]["containerStatuses"][0]["name"] = serde_json::json!(container);
        server.apply(p);
    }
    let prefix = watched.display().to_string();
    let policy = |kind: &str, name: &str, namespace: &str, extra: &str| {
        format!(
            "apiVersion: cilium.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n{namespace}spec:\n{extra}  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_openat\n    args:\n    - index: 6\n      type: string\n    selectors:\n    - matchArgs:\n      - index: 6\n        operator: Prefix\n        values: [\"{prefix}/\"]\n"
        )
    };
    let files = [
        (
            "namespaced.yaml",
            policy(
                "TracingPolicyNamespaced",
                "in-team-a",
                "  namespace: team-a\n",
                "",
            ),
        ),
        (
            "labels.yaml",
            policy(
                "TracingPolicy",
                "app-x",
                "",
                "  podSelector:\n    matchLabels:\n      app: x\n",
            ),
        ),
        (
            "containers.yaml",
            policy(
                "TracingPolicy",
                "side-containers",
                "",
                "  containerSelector:\n    matchExpressions:\n    - key: name\n      operator: In\n      values: [side]\n",
            ),
        ),
    ];
    let mut args = vec!["--pod-wait-ms".to_owned(), "2000".to_owned()];
    for (file, text) in &files {
        let path = work.path().join(file);
        fs::write(&path, text).expect("write a policy");
        args.push("--tracing-policy".into());
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let kubeconfig = server.kubeconfig(work.path());
    let root = v2_root().join(format!("tracer-scope-{}", std::process::id()));
    let _cleanup = Cleanup(root.clone());
    let dirs: Vec<PathBuf> = (0..pods.len())
        .map(|i| {
            let dir = root.join(format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope",
                uids[i].replace('-', "_"),
                ids[i]
            ));
            fs::create_dir_all(&dir).expect("make a container's cgroup");
            dir
        })
        .collect();
    let agent = Agent::start_with_env(
        &args,
        &[("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))],
    );
    for (name, n) in [("in-team-a", 2), ("app-x", 2), ("side-containers", 1)] {
        agent.wait_for_log(&format!("policy {name}: applies in {n} container cgroups"));
    }
    // Each pod's process opens a file of its own; then a host process.
    for (i, dir) in dirs.iter().enumerate() {
        let (_, out) = run(Command::new("/bin/sh").arg("-c").arg(format!(
            "echo $$ > '{}/cgroup.procs' && cat '{prefix}/pod-{i}' 2>/dev/null; true",
            dir.display()
        )));
        assert!(out.status.success(), "{out:?}");
    }
    let (_, out) = run(Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("cat '{prefix}/host' 2>/dev/null; true")));
    assert!(out.status.success());
    let start = Instant::now();
    let opened = |events: &[Value], policy: &str| -> Vec<String> {
        let mut files: Vec<String> = of_kind(events, "process_tracepoint")
            .into_iter()
            .filter(|e| e["policy_name"] == policy)
            .map(|e| {
                e["args"][0]["string_arg"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        files.sort();
        files
    };
    // The pods' events wait for nothing (their pods are known); sync covers them.
    let events = loop {
        let events = agent.sync();
        if opened(&events, "side-containers").len() == 1
            || start.elapsed() > Duration::from_secs(10)
        {
            break events;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(opened(&events, "in-team-a"), ["pod-0", "pod-2"]);
    assert_eq!(opened(&events, "app-x"), ["pod-0", "pod-1"]);
    assert_eq!(opened(&events, "side-containers"), ["pod-2"]);
    // Each event names its pod.
    for e in of_kind(&events, "process_tracepoint") {
        if e["policy_name"] == "in-team-a" {
            assert_eq!(e["process"]["pod"]["namespace"], "team-a", "{e}");
        }
    }
    drop(agent);
    // Without a cluster there are no pods to scope to: refused, saying why.
    let missing = work.path().join("no-such-kubeconfig");
    let mut args = args.clone();
    args.push("--tracing-policy-optional");
    let agent = Agent::start_with_env(&args, &[("KUBECONFIG", missing.to_str().expect("utf-8"))]);
    let log = agent.stderr();
    assert_eq!(
        // Once each as refused (and again in the warning that starts without it).
        log.lines()
            .filter(|l| l.contains("policy refused: ")
                && l.contains("no Kubernetes API server is configured to learn them from"))
            .count(),
        3,
        "{log}"
    );
}

/// A Node object of `name` with `labels`.
fn node(name: &str, labels: Value) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {}
    })
}

/// `node_labels` on every line: the labels of this node's Node object (not another
/// node's), followed as they change.
#[test]
fn node_labels_from_the_node_object() {
    if !privileged("node_labels_from_the_node_object") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let server = ApiServer::start();
    server.apply(node(
        "test-node",
        serde_json::json!({"topology.kubernetes.io/zone": "zone-a", "node-role.kubernetes.io/worker": ""}),
    ));
    server.apply(node("other-node", serde_json::json!({"zone": "elsewhere"})));
    let kubeconfig = server.kubeconfig(work.path());
    let agent = Agent::start_with_env(&[], &[("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))]);
    agent.wait_for_log("kubernetes: pods listed");
    // The line of a `/bin/true <mark>` run now, once its labels are `want`.
    let line_with = |mark: &str, want: &Value| -> Value {
        let start = Instant::now();
        loop {
            let (_, out) = run(Command::new("/bin/true").arg(mark));
            assert!(out.status.success());
            let events = agent.sync();
            let line = events
                .iter()
                .rev()
                .find(|e| e["process_exec"]["process"]["arguments"] == mark)
                .cloned();
            if let Some(line) = line
                && line["node_labels"] == *want
            {
                return line;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no line of {mark} with node_labels {want}: {}",
                agent.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let first = serde_json::json!({"topology.kubernetes.io/zone": "zone-a", "node-role.kubernetes.io/worker": ""});
    let line = line_with("labels-1", &first);
    assert_eq!(line["node_name"], "test-node");
    // Relabelled: later lines carry the new labels.
    server.apply(node(
        "test-node",
        serde_json::json!({"topology.kubernetes.io/zone": "zone-b"}),
    ));
    line_with(
        "labels-2",
        &serde_json::json!({"topology.kubernetes.io/zone": "zone-b"}),
    );
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/api/v1/nodes?") && r.contains("metadata.name%3Dtest-node")),
        "the agent asks for its own node only: {requests:?}"
    );
}
