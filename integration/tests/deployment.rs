//! The DaemonSet for real: the image `cargo xtask image` builds, unpacked and run under
//! runc with a runtime configuration derived from `manifests/daemonset.yaml` (see
//! `integration::container`), against the tests' API server over TLS with the service
//! account's token, checked against the ClusterRole of `manifests/rbac.yaml`. Inside,
//! the agent must trace the host's processes, serve its probes and metrics on the
//! manifest's port, read the mounted policies, write the export file to the host path,
//! reach the API server through in-cluster configuration, and stop on SIGTERM within the
//! pod's grace period.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use integration::{
    apiserver::ApiServer,
    container::{self, Container, Pod},
    metrics, privileged,
};
use serde_json::{Value, json};

/// The metrics port the manifest names (`ports[name=metrics]`).
fn metrics_port(ds: &Value) -> u16 {
    container::container(ds)["ports"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "metrics"))
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .expect("the container names its metrics port")
}

/// The lines of the export file so far.
fn lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for `pred` to hold, up to `limit`; panics with `what` and the agent's log.
fn wait_for(c: &mut Container, limit: Duration, what: &str, mut pred: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !pred() {
        assert!(
            c.running(),
            "the container ended while waiting for {what}:\n{}",
            c.stderr()
        );
        assert!(
            Instant::now() < end,
            "no {what} within {limit:?}:\n{}",
            c.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A readiness probe: `GET /readyz` answered 200.
fn ready(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        && metrics::get(port, "/readyz").0 == 200
}

struct Deployment {
    work: tempfile::TempDir,
    ds: Value,
    image: Value,
    bundle: PathBuf,
    log: PathBuf,
    policies: PathBuf,
    /// The pod's /sys/fs/bpf: a directory of the host's BPF file system of this test's
    /// own, where the agent pins its set (removed at the end).
    bpffs: PathBuf,
    state: PathBuf,
}

impl Deployment {
    /// Removes what a pod left: its pinned set and its saved processes.
    fn reset(&self) {
        let out = std::process::Command::new(integration::tracer_bin())
            .args(["cleanup", "--pin-dir"])
            .arg(self.bpffs.join("tracer"))
            .output()
            .expect("run tracer cleanup");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = fs::remove_file(self.state.join("processes.json"));
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = std::process::Command::new(integration::tracer_bin())
            .args(["cleanup", "--pin-dir"])
            .arg(self.bpffs.join("tracer"))
            .output();
        let _ = fs::remove_dir(&self.bpffs);
    }
}

impl Deployment {
    /// The image unpacked into a bundle, and the host directories of the volumes the
    /// test provides.
    fn new() -> Deployment {
        let work = tempfile::Builder::new()
            .prefix("tracer-deploy-")
            .tempdir()
            .expect("temp dir");
        let bundle = work.path().join("bundle");
        let image = container::unpack(&container::image_archive(), &bundle.join("rootfs"));
        let log = work.path().join("log");
        let policies = work.path().join("policies");
        let state = work.path().join("state");
        for d in [&log, &policies, &state] {
            fs::create_dir_all(d).expect("create a volume's directory");
        }
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        if !mounts.lines().any(|l| l.contains(" /sys/fs/bpf bpf ")) {
            // The node's BPF file system, as the agent mounts it where nothing is.
            let st = std::process::Command::new("mount")
                .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
                .status()
                .expect("run mount");
            assert!(st.success(), "cannot mount the BPF file system");
        }
        let bpffs = PathBuf::from(format!("/sys/fs/bpf/tracer-deploy-{}", std::process::id()));
        fs::create_dir_all(&bpffs).expect("a directory on the BPF file system");
        Deployment {
            work,
            ds: container::daemonset(),
            image,
            bundle,
            log,
            policies,
            bpffs,
            state,
        }
    }

    /// The tests' API server over TLS, its service account files in the work directory.
    fn api(&self) -> ApiServer {
        ApiServer::start_tls(&self.service_account())
    }

    fn service_account(&self) -> PathBuf {
        self.work.path().join("serviceaccount")
    }

    fn pod<'a>(&'a self, api: &ApiServer, without: &'a [&'a str]) -> Pod<'a> {
        Pod {
            node: "deploy-node",
            volumes: BTreeMap::from([
                ("log", self.log.clone()),
                ("policies", self.policies.clone()),
                ("bpffs", self.bpffs.clone()),
                ("state", self.state.clone()),
            ]),
            service_account: Some((
                api.service_account_dir()
                    .expect("a TLS API server")
                    .to_path_buf(),
                api.port(),
            )),
            without,
        }
    }

    /// Runs a pod, from a clean node: no set pinned, no processes saved (the restarts
    /// have tests of their own).
    fn run(&self, pod: &Pod<'_>, id: &str) -> Container {
        self.reset();
        let config =
            container::runtime_config(&self.ds, &self.image, &self.bundle.join("rootfs"), pod);
        Container::run(&self.bundle, &config, id)
    }

    /// The export file's path on the host: the manifest's `--export-filename` under the
    /// `log` volume's mount path.
    fn export_file(&self) -> PathBuf {
        let c = container::container(&self.ds);
        let file = c["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|a| a.strip_prefix("--export-filename="))
            .expect("the manifest exports to a file");
        let mount = c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["name"] == "log")
            .and_then(|m| m["mountPath"].as_str())
            .expect("the log volume's mount");
        self.log.join(
            Path::new(file)
                .strip_prefix(mount)
                .expect("the export file is on the log volume"),
        )
    }
}

/// The image is what the manifests name, labelled with its version and source.
#[test]
fn the_image_is_the_one_the_manifests_name() {
    let d = Deployment::new();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        container::container(&d.ds)["image"],
        format!("ghcr.io/tracer/tracer:{version}"),
        "the DaemonSet names the tag `cargo xtask image` builds"
    );
    let labels = &d.image["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], version);
    assert!(
        labels["org.opencontainers.image.revision"]
            .as_str()
            .is_some_and(|r| r.len() == 40 || r == "unknown"),
        "{labels}"
    );
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://")),
        "{labels}"
    );
    assert_eq!(
        d.image["annotations"]["org.opencontainers.image.version"],
        version
    );
    assert_eq!(d.image["config"]["Entrypoint"], json!(["/usr/bin/tracer"]));
    // Minimal: the agent, its libraries and the CA bundle; no shell, no package manager.
    let root = d.bundle.join("rootfs");
    assert!(root.join("usr/bin/tracer").is_file());
    for absent in [
        "bin/sh",
        "usr/bin/sh",
        "bin/bash",
        "usr/bin/apt-get",
        "sbin/apk",
    ] {
        assert!(!root.join(absent).exists(), "{absent} is in the image");
    }
    let mut files = Vec::new();
    let out = Command::new("find")
        .arg(&root)
        .args(["-type", "f"])
        .output()
        .expect("find");
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        files.push(
            l.trim_start_matches(root.to_str().expect("utf-8"))
                .to_owned(),
        );
    }
    files.sort();
    println!("the image's files: {files:?}");
    assert!(files.len() <= 8, "{files:?}");
}

/// The pod as the manifest describes it: ready, tracing, exporting, enriching, and
/// stopping on SIGTERM within its grace period.
#[test]
fn the_daemonset_pod_runs_from_the_image() {
    if !privileged("the_daemonset_pod_runs_from_the_image") {
        return;
    }
    let d = Deployment::new();
    let api = d.api();
    api.apply(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "deploy-node", "labels": {"topology.kubernetes.io/zone": "deploy-zone"}},
    }));
    // A policy in the mounted directory, as the ConfigMap projects it.
    let marker = d.work.path().join("deploy-marker-file");
    fs::write(
        d.policies.join("marker.yaml"),
        format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: deploy-marker\nspec:\n  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_openat\n    args:\n    - index: 6\n      type: string\n    selectors:\n    - matchArgs:\n      - index: 6\n        operator: Equal\n        values: [\"{}\"]\n",
            marker.display()
        ),
    )
    .expect("write the policy");
    let port = metrics_port(&d.ds);
    let pod = d.pod(&api, &[]);
    let started = Instant::now();
    let mut c = d.run(&pod, "tracer-deploy-test");
    wait_for(&mut c, Duration::from_secs(180), "/readyz 200", || {
        ready(port)
    });
    let ready_in = started.elapsed();
    println!("start to ready inside the container: {ready_in:.1?}");
    assert_eq!(metrics::get(port, "/healthz").0, 200);
    let m = metrics::scrape(port);
    assert!(
        m.keys().any(|k| k.starts_with("tracer_events_total")),
        "{m:?}"
    );

    // The host's processes, traced from inside: an exec and the policy's open.
    let out = Command::new("/bin/sh")
        .args([
            "-c",
            "cat \"$1\" 2>/dev/null; exit 0",
            "sh",
            marker.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run sh");
    assert!(out.status.success());
    let file = d.export_file();
    let mut events = Vec::new();
    wait_for(
        &mut c,
        Duration::from_secs(60),
        "the workload's events in the export file",
        || {
            events = lines(&file);
            events
                .iter()
                .any(|e| e["process_tracepoint"]["policy_name"] == "deploy-marker")
        },
    );
    let hit = events
        .iter()
        .find(|e| e["process_tracepoint"]["policy_name"] == "deploy-marker")
        .expect("the policy's event");
    assert_eq!(hit["node_name"], "deploy-node");
    assert_eq!(
        hit["process_tracepoint"]["process"]["binary"],
        "/usr/bin/cat"
    );
    assert_eq!(
        hit["process_tracepoint"]["args"][0]["string_arg"],
        marker.to_str().expect("utf-8")
    );
    let exec = events
        .iter()
        .find(|e| {
            e["process_exec"]["process"]["binary"] == "/usr/bin/cat"
                && e["process_exec"]["process"]["arguments"] == marker.to_str().expect("utf-8")
        })
        .expect("cat's exec");
    assert_eq!(
        exec["process_exec"]["parent"]["binary"], "/usr/bin/dash",
        "{exec}"
    );
    // User names: the host's /etc/passwd, through /proc/1/root (SYS_PTRACE).
    if fs::read("/proc/1/root/etc/passwd").is_ok() {
        assert_eq!(
            exec["process_exec"]["process"]["user"]["name"], "root",
            "{exec}"
        );
    } else {
        println!(
            "user names not checked: this machine refuses /proc/1/root to every process \
             (its init is outside the processes' security domain), so the agent in the \
             container cannot read the host's user database either"
        );
    }
    // The Node object, read over TLS with the service account's token.
    wait_for(&mut c, Duration::from_secs(30), "node_labels", || {
        // Lines carry the labels once the watcher has them: an event to carry them.
        let _ = Command::new("/bin/true").status();
        lines(&file)
            .iter()
            .any(|e| e["node_labels"]["topology.kubernetes.io/zone"] == "deploy-zone")
    });
    let requests = api.requests();
    for (what, prefix) in [
        ("pods of this node", "GET /api/v1/pods?"),
        ("the node", "GET /api/v1/nodes?"),
    ] {
        assert!(
            requests.iter().any(|r| r.starts_with(prefix)),
            "no request for {what}: {requests:?}"
        );
    }
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("401") || r.starts_with("403")),
        "every request authenticated and allowed by the ClusterRole: {requests:?}"
    );

    // The pod's memory, BPF maps included (the kernel charges them to its cgroup), under
    // the manifest's limit.
    let limit = container::quantity(&container::container(&d.ds)["resources"]["limits"]["memory"]);
    if let Some(peak) = container::memory_peak(&pod) {
        println!(
            "the pod's peak memory: {:.1} MiB (limit {} MiB)",
            peak as f64 / f64::from(1 << 20),
            limit >> 20
        );
        assert!(peak < limit);
    }
    // SIGTERM, as a kubelet stops the pod: out within the grace period, exit 0, the
    // export file whole.
    let grace = d.ds["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    let stopping = Instant::now();
    c.kill("TERM");
    let status = c
        .wait(Duration::from_secs(grace))
        .unwrap_or_else(|| panic!("still running {grace} s after SIGTERM:\n{}", c.stderr()));
    println!("stopped {:.1?} after SIGTERM", stopping.elapsed());
    assert!(status.success(), "{status}:\n{}", c.stderr());
    let text = fs::read_to_string(&file).expect("read the export file");
    assert!(text.ends_with('\n'), "the last line is whole");
    assert!(c.stderr().contains("tracer stopped"), "{}", c.stderr());
    // The node keeps the process hooks and the marker policy's hook pinned, and the
    // processes and policies the agent knew; the next pod (a rolling update's) takes
    // them over and numbers on.
    let links = d.bpffs.join("tracer/links");
    let mut pinned: Vec<String> = fs::read_dir(&links)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    pinned.sort();
    let policy_links = pinned.iter().filter(|n| n.starts_with("policy-")).count();
    assert_eq!(
        (pinned.len() - policy_links, policy_links),
        (3, 1),
        "{}: {pinned:?}\n{}",
        links.display(),
        c.stderr()
    );
    assert!(d.state.join("processes.json").is_file(), "{}", c.stderr());
    assert!(d.state.join("policies.json").is_file(), "{}", c.stderr());
    let last_seq = |text: &str| -> u64 {
        let line = text.lines().last().expect("a line");
        let v: Value = serde_json::from_str(line).expect("JSON");
        v["seq"].as_str().and_then(|s| s.parse().ok()).expect("seq")
    };
    let before = last_seq(&text);
    let lines_before = text.lines().count();
    let config = container::runtime_config(&d.ds, &d.image, &d.bundle.join("rootfs"), &pod);
    let mut next = Container::run(&d.bundle, &config, "tracer-deploy-update");
    wait_for(&mut next, Duration::from_secs(180), "/readyz 200", || {
        ready(port)
    });
    assert!(
        next.stderr()
            .contains("took over the hooks pinned at /sys/fs/bpf/tracer"),
        "{}",
        next.stderr()
    );
    next.kill("TERM");
    assert!(
        next.wait(Duration::from_secs(grace))
            .is_some_and(|s| s.success()),
        "{}",
        next.stderr()
    );
    let text = fs::read_to_string(&file).expect("read the export file");
    let first_after: Value = serde_json::from_str(
        text.lines()
            .nth(lines_before)
            .expect("lines of the second pod"),
    )
    .expect("JSON");
    assert_eq!(
        first_after["seq"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok()),
        Some(before + 1),
        "seq goes on across the update"
    );
}

/// What one run of the pod, with a capability left out, did.
struct Outcome {
    ready: bool,
    status: Option<std::process::ExitStatus>,
    stderr: String,
    /// The process object of the exit of a process of another user that ran before the
    /// agent (found in /proc at start).
    other: Value,
    /// How `sleep` ended, which the test policy `Sigkill`s.
    sleep: Option<std::process::ExitStatus>,
}

/// The pod with `without` left out of its capabilities: a process of another user from
/// before the agent, a `sleep` the policy kills, a process in a cgroup made after start.
fn run_without(d: &Deployment, api: &ApiServer, without: &[&str]) -> Outcome {
    use std::os::unix::process::ExitStatusExt as _;
    let _ = fs::remove_file(d.export_file());
    let port = metrics_port(&d.ds);
    let mut other = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["/usr/bin/tail", "-f", "/dev/null"])
        .current_dir("/tmp")
        .spawn()
        .expect("start tail");
    let pod = d.pod(api, without);
    let mut c = d.run(&pod, "tracer-caps-test");
    let end = Instant::now() + Duration::from_secs(120);
    while c.running() && !ready(port) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let is_ready = ready(port);
    let mut sleep = None;
    if is_ready {
        sleep = Some(
            Command::new("/usr/bin/sleep")
                .arg("5")
                .status()
                .expect("run sleep"),
        );
        // A cgroup made after the agent's start: its id is looked up by handle.
        let cg = container::v2_root().join(format!("tracer-caps-{}", std::process::id()));
        if fs::create_dir_all(&cg).is_ok() {
            let st = Command::new("/bin/sh")
                .arg("-c")
                .arg("echo $$ > \"$1/cgroup.procs\" && exec /bin/true")
                .arg("sh")
                .arg(&cg)
                .status()
                .expect("run sh");
            assert!(st.success());
            let _ = fs::remove_dir(&cg);
        }
    }
    let _ = other.kill();
    let _ = other.wait();
    let file = d.export_file();
    let pid = other.id();
    let mut exit = Value::Null;
    if is_ready {
        wait_for(&mut c, Duration::from_secs(30), "tail's exit", || {
            exit = lines(&file)
                .into_iter()
                .find(|e| e["process_exit"]["process"]["pid"] == pid)
                .map(|e| e["process_exit"]["process"].clone())
                .unwrap_or(Value::Null);
            !exit.is_null()
        });
    }
    c.kill("TERM");
    let status = c.wait(Duration::from_secs(30));
    let sleep_killed = sleep.filter(|s| s.signal() == Some(libc::SIGKILL));
    Outcome {
        ready: is_ready,
        status,
        stderr: c.stderr(),
        other: exit,
        sleep: sleep_killed.or(sleep),
    }
}

/// Least privilege: each capability the DaemonSet adds, left out in turn, breaks what its
/// comment in the manifest says; with all of them, nothing is missing.
#[test]
fn each_capability_of_the_daemonset_is_needed() {
    use std::os::unix::process::ExitStatusExt as _;
    if !privileged("each_capability_of_the_daemonset_is_needed") {
        return;
    }
    let d = Deployment::new();
    let api = d.api();
    fs::write(
        d.policies.join("kill.yaml"),
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: kill-sleep\nspec:\n  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_clock_nanosleep\n    selectors:\n    - matchBinaries:\n      - operator: In\n        values: [\"/usr/bin/sleep\"]\n      matchActions:\n      - action: Sigkill\n",
    )
    .expect("write the policy");
    let handle_warning = "cannot open cgroups by their id";

    let all = run_without(&d, &api, &[]);
    assert!(all.ready, "{}", all.stderr);
    assert!(all.status.is_some_and(|s| s.success()), "{}", all.stderr);
    assert_eq!(all.other["binary"], "/usr/bin/tail", "{}", all.other);
    assert_eq!(all.other["cwd"], "/tmp", "{}", all.other);
    assert_eq!(
        all.sleep.and_then(|s| s.signal()),
        Some(libc::SIGKILL),
        "the policy kills sleep:\n{}",
        all.stderr
    );
    assert!(!all.stderr.contains(handle_warning), "{}", all.stderr);

    let caps: Vec<String> = container::container(&d.ds)["securityContext"]["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add")
        .iter()
        .map(|c| c.as_str().expect("a capability").to_owned())
        .collect();
    for cap in &caps {
        let o = run_without(&d, &api, &[cap.as_str()]);
        let what = match cap.as_str() {
            "BPF" | "PERFMON" => {
                assert!(!o.ready, "ready without {cap}");
                assert!(o.status.is_some_and(|s| !s.success()), "{}", o.stderr);
                assert!(
                    o.stderr.contains(&format!("this process has no CAP_{cap}")),
                    "{}",
                    o.stderr
                );
                "the agent stops at start: it cannot load its programs"
            }
            "SYS_PTRACE" => {
                assert!(o.ready, "{}", o.stderr);
                assert_eq!(o.other["binary"], Value::Null, "{}", o.other);
                assert!(
                    o.other["flags"]
                        .as_str()
                        .is_some_and(|f| f.contains("nocwd")),
                    "{}",
                    o.other
                );
                "processes of other users running at start have no binary and no cwd (/proc/<pid>/exe and cwd)"
            }
            "DAC_READ_SEARCH" => {
                assert!(o.ready, "{}", o.stderr);
                assert!(o.stderr.contains(handle_warning), "{}", o.stderr);
                "cgroups are not opened by id: a process in a new cgroup may go out without its pod"
            }
            other => {
                panic!("no test says what {other} is for: test it, or take it out of the DaemonSet")
            }
        };
        println!("without {cap}: {what}");
    }
}

/// A ClusterRole without a rule the agent needs: the API server answers 403, as a real
/// one does, and the agent says which permission is missing and goes on with the rest.
#[test]
fn a_missing_rbac_rule_is_named() {
    if !privileged("a_missing_rbac_rule_is_named") {
        return;
    }
    let d = Deployment::new();
    let rbac =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/rbac.yaml"))
            .expect("read manifests/rbac.yaml");
    let without_nodes = rbac.replace(r#"resources: ["pods", "nodes"]"#, r#"resources: ["pods"]"#);
    assert_ne!(rbac, without_nodes, "the ClusterRole's pods and nodes rule");
    let api = ApiServer::start_tls_with_rules(&d.service_account(), &without_nodes);
    let port = metrics_port(&d.ds);
    let pod = d.pod(&api, &[]);
    let mut c = d.run(&pod, "tracer-rbac-test");
    wait_for(&mut c, Duration::from_secs(120), "/readyz 200", || {
        ready(port)
    });
    wait_for(&mut c, Duration::from_secs(30), "a 403 on nodes", || {
        api.requests()
            .iter()
            .any(|r| r.starts_with("403 GET /api/v1/nodes"))
    });
    let log = c.stderr.clone();
    wait_for(
        &mut c,
        Duration::from_secs(30),
        "the agent naming the rule",
        || {
            fs::read_to_string(&log).unwrap_or_default().contains(
                "reading node deploy-node for its labels failed, retrying (events go without \
             `node_labels` until then; the ClusterRole needs get, list and watch on nodes)",
            )
        },
    );
    assert!(
        c.stderr().contains(r#"nodes is forbidden: User \"system:serviceaccount:tracer-system:tracer\" cannot list resource \"nodes\""#)
            || c.stderr().contains(r#"nodes is forbidden: User "system:serviceaccount:tracer-system:tracer" cannot list resource "nodes""#),
        "{}",
        c.stderr()
    );
    // The rest goes on: still ready, the pods watched.
    assert!(ready(port));
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/pods?")),
        "{:?}",
        api.requests()
    );
}
