//! Policies as Kubernetes objects (`TracingPolicy` of `tracer.dev`), from an in-process
//! API server: created, changed and deleted while the agent runs, each applied without a
//! restart, a broken one refused, and the outcome written back to each object's status
//! for this node.

use std::time::{Duration, Instant};

use integration::{
    Agent,
    apiserver::ApiServer,
    getpgid::{getpgid, hits, policy},
    privileged,
};
use serde_json::{Value, json};

/// Waits until the server has a status patch of `name` matching `pred`; returns it.
fn status(server: &ApiServer, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        if let Some((_, p)) = server
            .status_patches()
            .into_iter()
            .rev()
            .find(|(n, p)| n == name && pred(&p["status"]["nodes"]["test-node"]))
        {
            return p["status"]["nodes"]["test-node"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no such status of {name}: {:#?}",
            server.status_patches()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node status's conditions as (type, status, reason).
fn conditions(s: &Value) -> Vec<(&str, &str, &str)> {
    s["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["type"].as_str().unwrap_or_default(),
                        c["status"].as_str().unwrap_or_default(),
                        c["reason"].as_str().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn policies_from_the_api_server() {
    if !privileged("policies_from_the_api_server") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let server = ApiServer::start();
    server.apply(policy("getpgid-a", 424301));
    let kubeconfig = server.kubeconfig(work.path());
    let agent = Agent::start_with_env(&[], &[("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))]);
    agent.wait_for_log("policy getpgid-a loaded from tracingpolicy/getpgid-a");
    let s = status(&server, "getpgid-a", |s| s["state"] == "Loaded");
    assert_eq!(s["observedGeneration"], 1);
    assert_eq!(
        conditions(&s),
        [
            ("Accepted", "True", "Valid"),
            ("Loaded", "True", "AllHooksRunning")
        ]
    );

    // Created while the agent runs.
    server.apply(policy("getpgid-b", 424302));
    agent.wait_for_log("policy getpgid-b loaded from tracingpolicy/getpgid-b");
    getpgid(424301);
    getpgid(424302);
    let events = agent.sync();
    assert_eq!(hits(&events, "getpgid-a", 424301), 1);
    assert_eq!(hits(&events, "getpgid-b", 424302), 1);

    // Changed: it now watches another pid.
    let before = agent.stderr().matches("policy getpgid-a loaded").count();
    server.apply(policy("getpgid-a", 424303));
    let start = Instant::now();
    while agent.stderr().matches("policy getpgid-a loaded").count() == before {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    getpgid(424301);
    getpgid(424303);
    let events = agent.sync();
    assert_eq!(
        hits(&events, "getpgid-a", 424301),
        1,
        "only the earlier call"
    );
    assert_eq!(hits(&events, "getpgid-a", 424303), 1);

    // Broken: refused, with the error in its status; the running version stays.
    let mut broken = policy("getpgid-a", 424304);
    broken["spec"]["tracepoints"][0]["selectors"][0]["matchArgs"][0]["operator"] = json!("Bigger");
    server.apply(broken);
    let s = status(&server, "getpgid-a", |s| s["state"] == "Error");
    let message = s["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("tracingpolicy/getpgid-a") && message.contains("Bigger"),
        "{message}"
    );
    assert_eq!(
        conditions(&s),
        [
            ("Accepted", "False", "Invalid"),
            ("Loaded", "False", "NotAccepted")
        ]
    );
    getpgid(424303);
    let events = agent.sync();
    assert_eq!(
        hits(&events, "getpgid-a", 424303),
        2,
        "the last good version runs"
    );

    // Partly loaded: one hook this kernel will not attach (ftrace events take no BPF
    // program); the other runs, and the status says which did not and why.
    let mut partly = policy("partly", 424306);
    partly["spec"]["tracepoints"]
        .as_array_mut()
        .expect("tracepoints")
        .push(json!({"subsystem": "ftrace", "event": "print"}));
    server.apply(partly);
    let s = status(&server, "partly", |s| s["state"] == "PartlyLoaded");
    assert_eq!(s["failedHooks"].as_array().map(Vec::len), Some(1), "{s:#}");
    assert_eq!(s["failedHooks"][0]["hook"], "ftrace/print");
    let reason = s["failedHooks"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("attaching to tracepoint ftrace/print"),
        "{reason}"
    );
    assert_eq!(
        conditions(&s),
        [
            ("Accepted", "True", "Valid"),
            ("Loaded", "False", "SomeHooksFailed")
        ]
    );
    getpgid(424306);
    let events = agent.sync();
    assert_eq!(hits(&events, "partly", 424306), 1, "its other hook runs");

    // Deleted: removed.
    server.delete("TracingPolicy", "", "getpgid-b");
    agent.wait_for_log("policy getpgid-b removed: its TracingPolicy was deleted");
    getpgid(424302);
    let events = agent.sync();
    assert_eq!(
        hits(&events, "getpgid-b", 424302),
        1,
        "no hit after the delete"
    );

    // A namespaced object: its own policy (named after its namespace), its own status.
    let mut namespaced = policy("audit", 424305);
    namespaced["kind"] = json!("TracingPolicyNamespaced");
    namespaced["metadata"]["namespace"] = json!("team-a");
    server.apply(namespaced);
    agent.wait_for_log("policy team-a.audit loaded from tracingpolicynamespaced/team-a/audit");
    let s = status(&server, "audit", |s| s["state"] == "Loaded");
    assert_eq!(s["observedGeneration"], 1);
    assert!(
        server.requests().iter().any(|r| r.starts_with(
            "PATCH /apis/tracer.dev/v1alpha1/namespaces/team-a/tracingpoliciesnamespaced/audit/status"
        )),
        "{:#?}",
        server.requests()
    );
    // It applies to its namespace's pods, and this test process is in none.
    getpgid(424305);
    let events = agent.sync();
    assert_eq!(hits(&events, "team-a.audit", 424305), 0);
    server.delete("TracingPolicyNamespaced", "team-a", "audit");
    agent.wait_for_log("policy team-a.audit removed: its TracingPolicyNamespaced was deleted");
}
