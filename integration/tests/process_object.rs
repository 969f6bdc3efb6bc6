//! The process object's fields that Tetragon fills from its process cache, on real
//! processes: `ancestors` (`--enable-ancestors`), `in_init_tree`, `user.name`, and the
//! top-level `cluster_name` (`--cluster-name`).

use std::process::Command;

use integration::{Agent, of_kind};
use serde_json::Value;

/// The exec event of the process whose arguments are `args`.
fn exec_with<'a>(events: &'a [Value], args: &str) -> &'a Value {
    of_kind(events, "process_exec")
        .into_iter()
        .find(|e| e["process"]["arguments"] == args)
        .unwrap_or_else(|| panic!("no exec with arguments {args}"))
}

/// A 4-deep chain of shells, each forking the next: the last exec's `ancestors` are the
/// shells above its parent, nearest first, then this test, and on up to pid 1.
#[test]
fn ancestors_of_a_process_chain() {
    if !integration::privileged("ancestors_of_a_process_chain") {
        return;
    }
    let agent = Agent::start(&[
        "--enable-ancestors",
        "base",
        "--cluster-name",
        "test-cluster",
    ]);
    let mark = format!("chain-{}", std::process::id());
    // Each `sh -c "...; :"` forks for its first command (it is not the last).
    let st = Command::new("/bin/sh")
        .args([
            "-c",
            &format!("/bin/sh -c '/bin/sh -c \"/bin/true {mark}; :\"; :'; :"),
        ])
        .status()
        .expect("run sh");
    assert!(st.success());
    let events = agent.sync();
    let leaf = exec_with(&events, &mark);
    let sh3 = &leaf["parent"];
    assert_eq!(sh3["binary"], "/usr/bin/dash", "{leaf}");
    let ancestors = leaf["ancestors"].as_array().expect("ancestors");
    let sh2 = &ancestors[0];
    let sh1 = &ancestors[1];
    assert_eq!(
        sh3["pid"],
        exec_with(&events, &format!("-c \"/bin/true {mark}; :\""))["process"]["pid"]
    );
    assert_eq!(sh3["parent_exec_id"], sh2["exec_id"], "nearest first");
    assert_eq!(sh2["parent_exec_id"], sh1["exec_id"]);
    assert_eq!(sh1["binary"], "/usr/bin/dash");
    assert_eq!(
        ancestors[2]["pid"],
        std::process::id(),
        "then this test: {ancestors:#?}"
    );
    for pair in ancestors.windows(2) {
        assert_eq!(pair[0]["parent_exec_id"], pair[1]["exec_id"], "a chain");
    }
    let last = ancestors.last().expect("an ancestor");
    assert!(
        last["pid"] == 1 || last.get("parent_exec_id").is_none(),
        "up to pid 1, or the first ancestor not known: {last}"
    );
    // The exit carries them too (`base`), and a process event without the flag's type
    // does not exist here: every line has the cluster's name.
    let exit = of_kind(&events, "process_exit")
        .into_iter()
        .find(|e| e["process"]["arguments"] == mark.as_str())
        .expect("the leaf's exit");
    assert_eq!(exit["ancestors"], leaf["ancestors"]);
    assert!(events.iter().all(|e| e["cluster_name"] == "test-cluster"));
    // Root's processes on the host are named from the host's user database.
    assert_eq!(leaf["process"]["user"]["name"], "root", "{leaf}");
    assert_eq!(leaf["process"]["in_init_tree"], false, "a host process");
}

/// Without the flag: no `ancestors`, no `cluster_name`.
#[test]
fn no_ancestors_unless_asked() {
    if !integration::privileged("no_ancestors_unless_asked") {
        return;
    }
    let agent = Agent::start(&[]);
    let mark = format!("plain-{}", std::process::id());
    let st = Command::new("/bin/sh")
        .args(["-c", &format!("/bin/true {mark}; :")])
        .status()
        .expect("run sh");
    assert!(st.success());
    let events = agent.sync();
    let leaf = exec_with(&events, &mark);
    assert!(leaf.get("ancestors").is_none(), "{leaf}");
    assert!(events.iter().all(|e| e.get("cluster_name").is_none()));
}

/// A new pid namespace's init (`unshare --pid --fork`: pid 1 there) and its child are in
/// the init tree; they have no user name (a container's uids are its image's).
#[test]
fn a_pid_namespaces_init_tree() {
    if !integration::privileged("a_pid_namespaces_init_tree") {
        return;
    }
    let agent = Agent::start(&[]);
    let mark = format!("ns-{}", std::process::id());
    let st = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "/bin/sh",
            "-c",
            &format!("/bin/true {mark}; :"),
        ])
        .status()
        .expect("run unshare (util-linux)");
    assert!(st.success());
    let events = agent.sync();
    let child = exec_with(&events, &mark);
    let init = &child["parent"];
    assert_eq!(init["binary"], "/usr/bin/dash", "{child}");
    assert_eq!(init["in_init_tree"], true, "pid 1 of its namespace: {init}");
    assert_eq!(child["process"]["in_init_tree"], true, "its child: {child}");
    assert!(
        child["process"]["flags"]
            .as_str()
            .is_some_and(|f| f.contains("inInitTree")),
        "{child}"
    );
    assert!(child["process"].get("user").is_none(), "{child}");
    // unshare itself, on the host, is not.
    let unshare = of_kind(&events, "process_exec")
        .into_iter()
        .find(|e| e["process"]["exec_id"] == init["parent_exec_id"])
        .expect("unshare's exec");
    assert_eq!(unshare["process"]["in_init_tree"], false);
}

/// `--enable-process-cred` and `--enable-process-ns`: root's full credentials and
/// capabilities, a process in new namespaces (`is_host` only for those it kept), and one
/// of an unprivileged user (no capabilities after its exec).
#[test]
fn credentials_and_namespaces_at_exec() {
    if !integration::privileged("credentials_and_namespaces_at_exec") {
        return;
    }
    let agent = Agent::start(&["--enable-process-cred", "--enable-process-ns"]);
    let mark = format!("creds-{}", std::process::id());
    let run = |cmd: &mut Command| {
        let st = cmd.status().expect("run");
        assert!(st.success(), "{cmd:?}");
    };
    run(Command::new("/bin/true").arg(format!("{mark}-root")));
    run(Command::new("unshare").args([
        "--pid",
        "--fork",
        "--net",
        "--uts",
        "--ipc",
        "--mount",
        "/bin/true",
        &format!("{mark}-ns"),
    ]));
    run(Command::new("setpriv").args([
        "--reuid",
        "1234",
        "--regid",
        "1234",
        "--clear-groups",
        "/bin/true",
        &format!("{mark}-user"),
    ]));
    let events = agent.sync();
    let own_ns = |name: &str| -> u64 {
        let link = std::fs::read_link(format!("/proc/self/ns/{name}")).expect("ns link");
        let link = link.to_string_lossy();
        link[link.find('[').expect("[") + 1..link.len() - 1]
            .parse()
            .expect("inode")
    };

    let root = &exec_with(&events, &format!("{mark}-root"))["process"];
    let c = &root["process_credentials"];
    for f in [
        "uid", "gid", "euid", "egid", "suid", "sgid", "fsuid", "fsgid",
    ] {
        assert_eq!(c[f], 0, "{f}: {root}");
    }
    let effective: Vec<&str> = root["cap"]["effective"]
        .as_array()
        .expect("root's effective capabilities")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for cap in ["CAP_CHOWN", "DAC_OVERRIDE", "CAP_SYS_ADMIN", "CAP_BPF"] {
        assert!(effective.contains(&cap), "{cap} in {effective:?}");
    }
    assert_eq!(root["cap"]["permitted"], root["cap"]["effective"]);
    for ns in ["uts", "ipc", "mnt", "pid", "net", "cgroup", "user"] {
        assert_eq!(root["ns"][ns]["inum"], own_ns(ns), "{ns}: {root}");
        assert_eq!(root["ns"][ns]["is_host"], true, "{ns}: {root}");
    }

    let inner = &exec_with(&events, &format!("{mark}-ns"))["process"];
    for ns in ["uts", "ipc", "mnt", "pid", "net"] {
        assert!(inner["ns"][ns]["inum"].as_u64().is_some(), "{ns}: {inner}");
        assert_ne!(inner["ns"][ns]["inum"], own_ns(ns), "{ns}: a new one");
        assert!(
            inner["ns"][ns].get("is_host").is_none(),
            "{ns}: not the host's: {inner}"
        );
    }
    for ns in ["user", "cgroup"] {
        assert_eq!(inner["ns"][ns]["is_host"], true, "{ns}: kept: {inner}");
    }

    let user = &exec_with(&events, &format!("{mark}-user"))["process"];
    let c = &user["process_credentials"];
    for f in [
        "uid", "gid", "euid", "egid", "suid", "sgid", "fsuid", "fsgid",
    ] {
        assert_eq!(c[f], 1234, "{f}: {user}");
    }
    assert!(
        user["cap"].get("effective").is_none() && user["cap"].get("permitted").is_none(),
        "an unprivileged exec has no capabilities: {user}"
    );
}
