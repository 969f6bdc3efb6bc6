//! Bad answers from the Kubernetes API server (in-process, `apiserver::Fault`): objects
//! that do not match their schema, a watch line that is not JSON, a body that is not JSON,
//! HTTP errors, a huge list, a server that never answers and a watch that never sends.
//! Each time the agent keeps tracing (a marker process's exec and exit are still
//! exported), says what was wrong in its log, uses the good objects around the bad one,
//! and recovers when the server does.

use std::time::{Duration, Instant};

use integration::{
    Agent,
    apiserver::{ApiServer, Fault},
    getpgid::{getpgid, hits, policy},
    privileged,
};
use serde_json::{Value, json};

const PODS: &str = "/api/v1/pods";

/// A pod of `node`.
fn pod(name: &str, node: &str) -> Value {
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("{name}-uid"), "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.test/app:1.0"}]}
    })
}

/// An agent of the server's cluster.
fn agent_of(server: &ApiServer, dir: &std::path::Path) -> Agent {
    let kubeconfig = server.kubeconfig(dir);
    Agent::start_with_env(&[], &[("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))])
}

/// Waits up to `limit` until the agent's log holds `needle` `n` times; the log.
fn wait_for_count(agent: &Agent, needle: &str, n: usize, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let log = agent.stderr();
        if log.matches(needle).count() >= n {
            return log;
        }
        assert!(
            start.elapsed() < limit,
            "`{needle}` {n} times in the agent's log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An API error as the API server writes it.
fn status(code: u16, reason: &str, message: &str) -> String {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
    .to_string()
}

/// Objects that do not match their schema, in the list and in the watch, and a broken
/// policy: each named in the log with the reason and left out; the good pods are listed
/// and a good policy next to the bad ones loads and runs; a watch line that is not JSON
/// is named, and the watch goes on.
#[test]
fn malformed_objects_are_named_and_left_out() {
    if !privileged("malformed_objects_are_named_and_left_out") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let server = ApiServer::start();
    server.apply(pod("web", "test-node"));
    let mut bad = pod("bad-labels", "test-node");
    bad["metadata"]["labels"] = json!(5);
    server.apply(bad);
    server.apply(pod("api", "test-node"));
    server.apply(policy("good", 424401));
    let mut bad_meta = policy("bad-meta", 424402);
    bad_meta["metadata"]["labels"] = json!(5);
    server.apply(bad_meta);
    let mut broken = policy("broken-spec", 424403);
    broken["spec"] = json!({"tracepoints": 7});
    server.apply(broken);

    let agent = agent_of(&server, work.path());
    // Before: the whole list failed to decode, and was retried forever; no pod was known.
    let log = agent.wait_for_log("kubernetes: pods listed");
    let line = log
        .lines()
        .find(|l| l.contains("Pod shop/bad-labels"))
        .unwrap_or_else(|| panic!("the bad pod named:\n{log}"));
    assert!(
        line.contains("is not a valid Pod, left out")
            && line.contains("metadata.labels: invalid type"),
        "{line}"
    );
    let log = agent
        .wait_for_log("TracingPolicy bad-meta from the API server is not a valid TracingPolicy");
    assert!(log.contains("metadata.labels: invalid type"), "{log}");
    agent.wait_for_log("policy good loaded from tracingpolicy/good");
    let log = agent.wait_for_log("policy refused: tracingpolicy/broken-spec");
    assert!(!log.contains("policy bad-meta loaded"), "{log}");
    getpgid(424401);
    getpgid(424402);
    let events = agent.sync();
    assert_eq!(hits(&events, "good", 424401), 1, "the good policy runs");
    assert_eq!(hits(&events, "bad-meta", 424402), 0);

    // In the watch: a bad pod is named; a line that is not JSON is named, and the next
    // event comes.
    let mut bad = pod("bad-later", "test-node");
    bad["spec"]["containers"] = json!("main");
    server.apply(bad);
    let log = agent.wait_for_log("Pod shop/bad-later from the API server is not a valid Pod");
    assert!(log.contains("spec.containers: invalid type"), "{log}");
    server.fault(PODS, true, Fault::BrokenLine, 1);
    server.cut_watches();
    // The next event goes to the new watch, not to the one cut.
    let start = Instant::now();
    while server.faults_left(PODS) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no new watch of pods"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.apply(pod("broken", "test-node"));
    let log = agent.wait_for_log("kubernetes: watching pods failed, retrying");
    let line = log
        .lines()
        .find(|l| l.contains("watching pods failed"))
        .unwrap_or_default();
    assert!(line.contains("Error deserializing response"), "{line}");
    server.apply(pod("after-broken", "test-node"));
    agent.wait_for_log("kubernetes: watching pods again");
    assert_eq!(server.faults_left(PODS), 0);
    agent.sync();
    let (status, _, log) = agent.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// HTTP errors and a body that is not JSON: each retried (the error in the log), the pods
/// listed once the server answers, and listed again after a 410 Gone in the watch;
/// tracing never stops.
#[test]
fn api_server_errors_then_recovery() {
    if !privileged("api_server_errors_then_recovery") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let server = ApiServer::start();
    server.apply(pod("web", "test-node"));
    server.apply(policy("good", 424411));
    let internal = Fault::Status {
        status: "500 Internal Server Error",
        headers: vec![],
        body: status(500, "InternalError", "etcdserver: request timed out"),
    };
    let throttled = Fault::Status {
        status: "429 Too Many Requests",
        headers: vec!["Retry-After: 1".to_owned()],
        body: status(429, "TooManyRequests", "storage is (re)initializing"),
    };
    server.fault(PODS, false, internal.clone(), 2);
    server.fault(PODS, false, throttled, 1);
    server.fault(PODS, false, Fault::NotJson, 1);
    let policies = "/apis/tracer.dev/v1alpha1/tracingpolicies";
    server.fault(policies, false, internal, 1);

    let agent = agent_of(&server, work.path());
    agent.sync();
    let log = agent.wait_for_log("kubernetes: watching pods failed, retrying");
    assert!(log.contains("etcdserver: request timed out"), "{log}");
    let log = agent.wait_for_log("kubernetes: watching tracingpolicies failed, retrying");
    assert!(log.contains("InternalError"), "{log}");
    agent.wait_for_log("kubernetes: pods listed");
    assert_eq!(server.faults_left(PODS), 0);
    agent.wait_for_log("policy good loaded from tracingpolicy/good");
    getpgid(424411);
    assert_eq!(hits(&agent.sync(), "good", 424411), 1);

    // A change the watch missed, and 410 Gone for the version it resumes from: listed again.
    server.apply_unseen(pod("missed", "test-node"));
    server.cut_watches();
    wait_for_count(
        &agent,
        "kubernetes: pods listed",
        2,
        Duration::from_secs(60),
    );
    agent.sync();
    let (status, _, log) = agent.stop();
    assert!(status.success(), "{log}");
}

/// A list of 20,000 pods of other nodes (the field selector ignored): the agent keeps none
/// of them, says so once, and goes on.
#[test]
fn a_huge_list_of_other_nodes_pods() {
    if !privileged("a_huge_list_of_other_nodes_pods") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let server = ApiServer::start();
    server.apply_all((0..20_000).map(|i| pod(&format!("other-{i}"), &format!("node-{}", i % 500))));
    server.apply(pod("web", "test-node"));
    server.fault(PODS, false, Fault::IgnoreSelector, 1);
    let agent = agent_of(&server, work.path());
    let log = wait_for_count(
        &agent,
        "kubernetes: pods listed",
        1,
        Duration::from_secs(120),
    );
    assert_eq!(
        log.matches("that the field selector leaves out").count(),
        1,
        "{log}"
    );
    agent.sync();
    let (status, _, log) = agent.stop();
    assert!(status.success(), "{log}");
}

/// A list that is never answered and a watch that never sends anything: each dropped after
/// the client's timeout (a minute), then retried; a watch that never ends goes on; tracing
/// goes on all the while.
#[test]
fn a_server_that_never_answers() {
    if !privileged("a_server_that_never_answers") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let server = ApiServer::start();
    server.apply(pod("web", "test-node"));
    server.fault(PODS, false, Fault::Hang, 1);
    server.fault("/api/v1/nodes", true, Fault::SilentWatch, 1);
    server.fault("/apis/apps/v1/replicasets", true, Fault::Endless, 1);
    let agent = agent_of(&server, work.path());
    agent.sync();
    // Before: the list waited forever, and no pod was ever known.
    let log = wait_for_count(
        &agent,
        "kubernetes: pods listed",
        1,
        Duration::from_secs(150),
    );
    assert!(
        log.contains("kubernetes: watching pods failed, retrying"),
        "{log}"
    );
    let start = Instant::now();
    let node_watches = || {
        server
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET /api/v1/nodes?") && r.contains("watch=true"))
            .count()
    };
    while node_watches() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "the silent watch of nodes was never dropped: {:#?}",
            server.requests()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.faults_left("/api/v1/nodes"), 0);
    let replicaset_watches = server
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /apis/apps/v1/replicasets?") && r.contains("watch=true"))
        .count();
    assert_eq!(replicaset_watches, 1, "the endless watch is kept");
    agent.sync();
    let (status, _, log) = agent.stop();
    assert!(status.success(), "{log}");
}
