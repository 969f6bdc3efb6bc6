//! The process object's fields that Tetragon fills from its process cache, on real
//! processes: `ancestors` (`--enable-ancestors`), `in_init_tree`, `user.name`, the
//! credentials and namespaces read at exec, `binary_properties`,
//! `environment_variables`, and the top-level `cluster_name` (`--cluster-name`).

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

/// Copies `/bin/true` to `dir/name` with `mode`, owned by root.
fn true_copy(dir: &std::path::Path, name: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::copy("/bin/true", &path).expect("copy /bin/true");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// Gives `path` the file capability `cap` (permitted and effective), as `setcap
/// cap_…+ep` does: a `security.capability` attribute of revision 2.
fn set_file_capability(path: &std::path::Path, cap: u32) {
    // struct vfs_cap_data (include/uapi/linux/capability.h): magic_etc (revision 2 |
    // effective), then {permitted, inheritable} for capabilities 0-31 and 32-63.
    let mut data = Vec::new();
    for word in [0x0200_0000u32 | 1, 1 << cap, 0, 0, 0] {
        data.extend_from_slice(&word.to_le_bytes());
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: valid NUL-terminated strings and a buffer of `data.len()` bytes.
    let r = unsafe {
        libc::setxattr(
            c_path.as_ptr(),
            c"security.capability".as_ptr(),
            data.as_ptr().cast(),
            data.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
}

/// `binary_properties`, as Tetragon fills it: with `--enable-process-cred`, a
/// set-user-ID root file run by a user (`setuid` 0, raised), a set-group-ID one
/// (`setgid` 0, raised), a file with a file capability (raised through it); a file with
/// no link on disk (a memfd) has its inode; an ordinary exec has none.
#[test]
fn binary_properties_of_privileged_and_fileless_execs() {
    use std::os::unix::fs::PermissionsExt as _;
    if !integration::privileged("binary_properties_of_privileged_and_fileless_execs") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("tracer-binprops")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let suid = true_copy(dir.path(), "suid-true", 0o4755);
    let sgid = true_copy(dir.path(), "sgid-true", 0o2755);
    let caps = true_copy(dir.path(), "cap-true", 0o755);
    const CAP_NET_RAW: u32 = 13;
    set_file_capability(&caps, CAP_NET_RAW);

    let agent = Agent::start(&["--enable-process-cred"]);
    let mark = format!("binprops-{}", std::process::id());
    let as_user = |bin: &std::path::Path, tag: &str| {
        let st = Command::new("setpriv")
            .args(["--reuid", "1234", "--regid", "1234", "--clear-groups"])
            .arg(bin)
            .arg(format!("{mark}-{tag}"))
            .status()
            .expect("setpriv");
        assert!(st.success(), "{tag}");
    };
    as_user(&suid, "suid");
    as_user(&sgid, "sgid");
    as_user(&caps, "caps");
    as_user(std::path::Path::new("/bin/true"), "plain");
    let ino = integration::run_from_memfd(&format!("{mark}-memfd"));
    let events = agent.sync();

    let suid = &exec_with(&events, &format!("{mark}-suid"))["process"];
    assert_eq!(
        suid["binary_properties"],
        serde_json::json!({"setuid": 0, "privileges_changed": ["PRIVILEGES_RAISED_EXEC_FILE_SETUID"]}),
        "{suid}"
    );
    assert_eq!(suid["process_credentials"]["uid"], 1234);
    assert_eq!(suid["process_credentials"]["euid"], 0);

    let sgid = &exec_with(&events, &format!("{mark}-sgid"))["process"];
    assert_eq!(
        sgid["binary_properties"],
        serde_json::json!({"setgid": 0, "privileges_changed": ["PRIVILEGES_RAISED_EXEC_FILE_SETGID"]}),
        "{sgid}"
    );

    let caps = &exec_with(&events, &format!("{mark}-caps"))["process"];
    assert_eq!(
        caps["binary_properties"],
        serde_json::json!({"privileges_changed": ["PRIVILEGES_RAISED_EXEC_FILE_CAP"]}),
        "{caps}"
    );
    assert_eq!(caps["cap"]["permitted"], serde_json::json!(["CAP_NET_RAW"]));

    let plain = &exec_with(&events, &format!("{mark}-plain"))["process"];
    assert!(plain.get("binary_properties").is_none(), "{plain}");

    let memfd = &exec_with(&events, &format!("{mark}-memfd"))["process"];
    assert_eq!(
        memfd["binary_properties"],
        serde_json::json!({"file": {"inode": {"number": ino.to_string(), "links": 0}}}),
        "{memfd}"
    );
    assert!(
        memfd["binary"]
            .as_str()
            .is_some_and(|b| b.contains("memfd:tracer-test")),
        "{memfd}"
    );
    // Only the exec says it: its exit's process object does not.
    let exit = of_kind(&events, "process_exit")
        .into_iter()
        .find(|e| e["process"]["arguments"] == format!("{mark}-suid").as_str())
        .expect("the set-user-ID exec's exit");
    assert!(exit["process"].get("binary_properties").is_none(), "{exit}");
}

/// `--enable-process-environment-variables` with `--filter-environment-variables` and a
/// redaction filter: the variables named, in their order, a secret redacted; an
/// environment longer than the kernel's bound is flagged `truncEnv` and its cut
/// variable dropped. Without `--enable-process-cred` a fileless exec still shows its
/// inode.
#[test]
fn environment_variables_filtered_and_redacted() {
    if !integration::privileged("environment_variables_filtered_and_redacted") {
        return;
    }
    let agent = Agent::start(&[
        "--enable-process-environment-variables",
        "--filter-environment-variables",
        "FOO,TRACER_SECRET,BIG",
        "--redaction-filters",
        r#"{"redact": ["SECRET=(.*)"]}"#,
    ]);
    let mark = format!("env-{}", std::process::id());
    let st = Command::new("/bin/true")
        .arg(format!("{mark}-small"))
        .env_clear()
        .env("FOO", "bar=baz")
        .env("OTHER", "not asked for")
        .env("TRACER_SECRET", "hunter2")
        .status()
        .expect("run");
    assert!(st.success());
    let st = Command::new("/bin/true")
        .arg(format!("{mark}-big"))
        .env_clear()
        .env("A", "1")
        .env("BIG", "x".repeat(9000))
        .env("FOO", "after the bound")
        .status()
        .expect("run");
    assert!(st.success());
    let ino = integration::run_from_memfd(&format!("{mark}-memfd"));
    let events = agent.sync();

    let small = &exec_with(&events, &format!("{mark}-small"))["process"];
    let mut vars: Vec<(String, String)> = small["environment_variables"]
        .as_array()
        .unwrap_or_else(|| panic!("environment_variables: {small}"))
        .iter()
        .map(|v| {
            (
                v["Key"].as_str().unwrap_or("").to_owned(),
                v["Value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    vars.sort();
    assert_eq!(
        vars,
        [
            ("FOO".to_owned(), "bar=baz".to_owned()),
            ("TRACER_SECRET".to_owned(), "*****".to_owned())
        ],
        "{small}"
    );
    assert!(!integration::flags(small).contains(&"truncEnv".to_owned()));

    let big = &exec_with(&events, &format!("{mark}-big"))["process"];
    assert!(
        integration::flags(big).contains(&"truncEnv".to_owned()),
        "{big}"
    );
    let keys: Vec<&str> = big["environment_variables"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["Key"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        !keys.contains(&"BIG") && !keys.contains(&"FOO"),
        "the cut variable and those after it are not written: {keys:?}"
    );

    let memfd = &exec_with(&events, &format!("{mark}-memfd"))["process"];
    assert_eq!(
        memfd["binary_properties"],
        serde_json::json!({"file": {"inode": {"number": ino.to_string(), "links": 0}}}),
        "{memfd}"
    );
}

/// A filter without the flag it filters is a mistake the agent names.
#[test]
fn an_environment_filter_needs_its_flag() {
    let out = Command::new(integration::tracer_bin())
        .args(["run", "--filter-environment-variables", "PATH"])
        .output()
        .expect("run tracer");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--enable-process-environment-variables"),
        "{err}"
    );
}
