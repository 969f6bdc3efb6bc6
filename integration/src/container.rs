//! The agent's image run the way a kubelet runs the DaemonSet's pod: the OCI archive that
//! `cargo xtask image` writes, unpacked into a bundle, and a runtime configuration for
//! runc derived from `manifests/daemonset.yaml` itself: the container's args and env,
//! its security context (user, capabilities, read-only root, no privilege escalation),
//! `hostPID`, every volume mount with its read-only flag, its resource limits, and the
//! service account files a kubelet mounts. So a manifest that the agent cannot run with
//! fails the tests that use this.
//!
//! What stands in for the kubelet's choices: hostPath volumes the test names (the export
//! file's directory, the policies that the ConfigMap would project) are temporary
//! directories; the pod network is the host's (the tests reach the metrics port on
//! 127.0.0.1); the API server is the tests' own, over TLS (`apiserver`).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use serde_json::{Value, json};

/// `manifests/daemonset.yaml`, as JSON.
pub fn daemonset() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/daemonset.yaml");
    let text = fs::read_to_string(&path).expect("read manifests/daemonset.yaml");
    serde_yaml::from_str(&text).expect("manifests/daemonset.yaml is one YAML document")
}

/// The pod template's container named `tracer`.
pub fn container(ds: &Value) -> &Value {
    ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "tracer"))
        .expect("the DaemonSet has a container named tracer")
}

/// The image archive under test: `TRACER_IMAGE` (set by `cargo xtask test`), else the
/// debug image `cargo xtask image --debug` writes.
pub fn image_archive() -> PathBuf {
    let path = std::env::var_os("TRACER_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
                "../target/image/tracer-{}-debug.oci.tar",
                env!("CARGO_PKG_VERSION")
            ))
        });
    assert!(
        path.is_file(),
        "the agent's image {} is missing: run the tests with `cargo xtask test`, which builds \
         it (`cargo xtask image --debug`) and installs runc",
        path.display()
    );
    path
}

/// The image's configuration (`Entrypoint`, `Cmd`, `User`, `Env`) and its layers unpacked
/// into `rootfs`, in order.
pub fn unpack(archive: &Path, rootfs: &Path) -> Value {
    let oci = rootfs.with_file_name("oci");
    fs::create_dir_all(&oci).expect("create the archive's directory");
    tar(&[
        "-xf",
        &archive.display().to_string(),
        "-C",
        &oci.display().to_string(),
    ]);
    let read = |digest: &str| -> Value {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        let text = fs::read(oci.join("blobs/sha256").join(hex)).expect("read a blob");
        serde_json::from_slice(&text).expect("a JSON blob")
    };
    let index: Value =
        serde_json::from_slice(&fs::read(oci.join("index.json")).expect("read index.json"))
            .expect("index.json is JSON");
    let manifest = read(
        index["manifests"][0]["digest"]
            .as_str()
            .expect("the index names a manifest"),
    );
    fs::create_dir_all(rootfs).expect("create the rootfs");
    for layer in manifest["layers"]
        .as_array()
        .expect("the manifest's layers")
    {
        let digest = layer["digest"].as_str().expect("a layer digest");
        let blob = oci
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        // GNU tar finds a layer's compression by itself.
        tar(&[
            "-xf",
            &blob.display().to_string(),
            "-C",
            &rootfs.display().to_string(),
        ]);
    }
    let mut config = read(
        manifest["config"]["digest"]
            .as_str()
            .expect("the manifest's config"),
    );
    config["annotations"] = manifest["annotations"].clone();
    config
}

fn tar(args: &[&str]) {
    let st = Command::new("tar").args(args).status().expect("run tar");
    assert!(st.success(), "tar {args:?}: {st}");
}

/// The cgroup v2 hierarchy's mount point (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
/// on a hybrid host).
pub fn v2_root() -> PathBuf {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"))
}

/// What the test decides for one run of the pod.
pub struct Pod<'a> {
    /// `spec.nodeName`, for `fieldRef`s.
    pub node: &'a str,
    /// A host path for each volume the test provides itself (by volume name): the
    /// export log's directory, the policies' ConfigMap.
    pub volumes: BTreeMap<&'a str, PathBuf>,
    /// The service account's files (`token`, `ca.crt`, `namespace`), mounted where a
    /// kubelet mounts them, with the API server's address in
    /// `KUBERNETES_SERVICE_HOST`/`_PORT`.
    pub service_account: Option<(PathBuf, u16)>,
    /// Capabilities to leave out of the manifest's `add` list (`"BPF"`), to show what
    /// each is for.
    pub without: &'a [&'a str],
}

/// Capability names as runc wants them: `BPF` to `CAP_BPF`.
fn cap(name: &str) -> String {
    format!("CAP_{}", name.to_ascii_uppercase())
}

/// The runtime configuration (`config.json`) of the DaemonSet's container for `pod`,
/// with `rootfs` as its root.
pub fn runtime_config(ds: &Value, image: &Value, rootfs: &Path, pod: &Pod<'_>) -> Value {
    let spec = &ds["spec"]["template"]["spec"];
    let c = container(ds);
    let sc = &c["securityContext"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    // A container's `command` replaces the image's entrypoint, its `args` the image's cmd.
    let mut args = match c.get("command") {
        Some(cmd) => strings(cmd),
        None => strings(&image["config"]["Entrypoint"]),
    };
    args.extend(match c.get("args") {
        Some(a) => strings(a),
        None => strings(&image["config"]["Cmd"]),
    });
    let mut env: Vec<String> = strings(&image["config"]["Env"]);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        // The runtime's default.
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().expect("an env entry's name");
        let value = if let Some(v) = e["value"].as_str() {
            v.to_owned()
        } else {
            match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("spec.nodeName") => pod.node.to_owned(),
                Some("metadata.namespace") => ds["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                other => panic!("env {name}: a fieldRef the test does not model: {other:?}"),
            }
        };
        env.push(format!("{name}={value}"));
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    let volumes: BTreeMap<&str, &Value> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (v["name"].as_str().expect("a volume's name"), v))
        .collect();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().expect("a volume mount's name");
        let source = match pod.volumes.get(name) {
            Some(p) => p.clone(),
            None => {
                let v = volumes
                    .get(name)
                    .unwrap_or_else(|| panic!("volume mount {name} has no volume"));
                PathBuf::from(v["hostPath"]["path"].as_str().unwrap_or_else(|| {
                    panic!("volume {name} is no hostPath: the test must provide it")
                }))
            }
        };
        let mut options = vec!["rbind", "rprivate"];
        if m["readOnly"] == true {
            options.push("ro");
        }
        mounts.push(json!({
            "destination": m["mountPath"],
            "type": "bind",
            "source": source,
            "options": options,
        }));
    }
    if let Some((dir, port)) = &pod.service_account {
        mounts.push(json!({
            "destination": "/var/run/secrets/kubernetes.io/serviceaccount",
            "type": "bind",
            "source": dir,
            "options": ["rbind", "ro"],
        }));
        env.push("KUBERNETES_SERVICE_HOST=127.0.0.1".into());
        env.push(format!("KUBERNETES_SERVICE_PORT={port}"));
    }
    // `drop: [ALL]`, then `add`.
    assert_eq!(
        strings(&sc["capabilities"]["drop"]),
        ["ALL"],
        "the model drops every capability, then adds"
    );
    let caps: Vec<String> = strings(&sc["capabilities"]["add"])
        .iter()
        .filter(|c| !pod.without.contains(&c.as_str()))
        .map(|c| cap(c))
        .collect();
    let uid = sc["runAsUser"].as_u64().unwrap_or(0);
    let gid = sc["runAsGroup"].as_u64().unwrap_or(0);
    let mut namespaces = vec![
        json!({"type": "mount"}),
        json!({"type": "uts"}),
        json!({"type": "ipc"}),
    ];
    if spec["hostPID"] != true {
        namespaces.push(json!({"type": "pid"}));
    }
    let limits = &c["resources"]["limits"];
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": env,
            "cwd": image["config"]["WorkingDir"].as_str().filter(|d| !d.is_empty()).unwrap_or("/"),
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "noNewPrivileges": sc["allowPrivilegeEscalation"] == false,
        },
        "root": {"path": rootfs, "readonly": sc["readOnlyRootFilesystem"] == true},
        "hostname": pod.node,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            // Its own cgroup, where the limits apply (as the kubelet's pod cgroup).
            "cgroupsPath": cgroup_path(pod),
            "resources": {
                "memory": {"limit": quantity(&limits["memory"])},
            },
            // The container runtime's defaults.
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ],
        },
    })
}

/// The cgroup path runc gives the pod (`linux.cgroupsPath`).
fn cgroup_path(pod: &Pod<'_>) -> String {
    format!("/tracer-test/{}", pod.node)
}

/// The peak memory of the pod's cgroup so far (cgroup v2 `memory.peak`, or v1
/// `memory.max_usage_in_bytes`), if this host shows it.
pub fn memory_peak(pod: &Pod<'_>) -> Option<u64> {
    let rel = cgroup_path(pod);
    let rel = rel.trim_start_matches('/');
    [
        v2_root().join(rel).join("memory.peak"),
        PathBuf::from("/sys/fs/cgroup/memory")
            .join(rel)
            .join("memory.max_usage_in_bytes"),
    ]
    .iter()
    .find_map(|p| fs::read_to_string(p).ok()?.trim().parse().ok())
}

/// A memory quantity (`256Mi`) in bytes.
pub fn quantity(v: &Value) -> u64 {
    let s = v.as_str().expect("a quantity");
    let (num, mult) = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)]
        .iter()
        .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|n| (n, *m)))
        .unwrap_or((s, 1));
    num.parse::<u64>().expect("a whole quantity") * mult
}

/// A container run by runc, killed and deleted on drop.
pub struct Container {
    pub id: String,
    child: Option<Child>,
    /// Its standard output and error, in files.
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Container {
    /// Writes `config` into `bundle` (beside `rootfs`) and starts it with `runc run`.
    pub fn run(bundle: &Path, config: &Value, id: &str) -> Container {
        assert!(
            Command::new("runc").arg("--version").output().is_ok(),
            "runc is not installed: `cargo xtask test` installs it (Debian's runc)"
        );
        fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(config).expect("encode config.json"),
        )
        .expect("write config.json");
        let _ = Command::new("runc")
            .args(["delete", "--force", id])
            .output();
        let stdout = bundle.join("stdout");
        let stderr = bundle.join("stderr");
        let child = Command::new("runc")
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start runc");
        Container {
            id: id.to_owned(),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// What the agent wrote on stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` (`TERM`) to the container's process, as a kubelet stopping the pod.
    pub fn kill(&self, signal: &str) {
        let _ = Command::new("runc")
            .args(["kill", &self.id, signal])
            .output();
    }

    /// Waits up to `limit` for the container to end; its exit status, or None if it did
    /// not end in time.
    pub fn wait(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let end = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            if std::time::Instant::now() >= end {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Whether the container is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.running() {
            self.kill("KILL");
            let _ = self.wait(std::time::Duration::from_secs(10));
        }
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.id])
            .output();
    }
}
