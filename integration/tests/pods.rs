//! Containers found from cgroups: real cgroup v2 hierarchies, laid out as containerd,
//! CRI-O and Docker lay them out (systemd and cgroupfs drivers), with a real process
//! exec'd inside each; its events must name the container, and a process outside them
//! none.

use std::{fs, os::unix::fs::MetadataExt as _, path::PathBuf, process::Command};

use integration::{Agent, exec_of, exit_of, of_kind, privileged, run};
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
