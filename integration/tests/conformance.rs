//! Tetragon's own example policies (the corpus in `../shared/conformance/tetragon/`,
//! read from there, never copied): each must pass `tracer policy validate` unchanged.
//!
//! The files that do not pass yet are listed below with what they need; the test fails
//! when one of them starts to pass (take it off the list, and update the README's table)
//! and when any other stops passing.

use std::collections::BTreeMap;

use integration::corpus::{corpus, policies};

/// Files of the corpus that `validate` refuses today, and what they need.
const NOT_YET: &[(&str, &str)] = &[];

#[test]
fn tetragon_examples_validate() {
    let dir = corpus();
    let mut files = Vec::new();
    policies(&dir, &dir, &mut files);
    assert_eq!(
        files.len(),
        71,
        "the corpus at {} should hold Tetragon's 71 example policies",
        dir.display()
    );
    let mut refused = BTreeMap::new();
    for (name, path) in &files {
        if let Err(errors) = tracer::policy::parse::file(path) {
            let first = errors.first().map(ToString::to_string).unwrap_or_default();
            refused.insert(name.clone(), first);
        }
    }
    println!(
        "{} of {} of Tetragon's example policies validate",
        files.len() - refused.len(),
        files.len()
    );
    for (name, why) in &refused {
        println!("  refused {name}: {why}");
    }
    let expected: BTreeMap<&str, &str> = NOT_YET.iter().copied().collect();
    let newly_refused: Vec<_> = refused
        .iter()
        .filter(|(name, _)| !expected.contains_key(name.as_str()))
        .map(|(name, why)| format!("{name}: {why}"))
        .collect();
    let now_valid: Vec<_> = expected
        .keys()
        .filter(|name| !refused.contains_key(**name))
        .collect();
    assert!(
        newly_refused.is_empty(),
        "refused, and not on the list of files that need more:\n{}",
        newly_refused.join("\n")
    );
    assert!(
        now_valid.is_empty(),
        "these pass now: take them off NOT_YET and update the README's table: {now_valid:?}"
    );
}

/// `list-syscalls-tracepoint.yaml` as Tetragon wrote it: `InMap` on a list of syscalls,
/// on `raw_syscalls/sys_enter` with `index: 0` naming the first argument of `args` (its
/// tracepoint index is 4): the agent reports this process's `dup` and `dup2`, and no
/// other syscall. (The list names x86-64's syscalls: `dup2` is not one of arm64's.)
#[cfg(target_arch = "x86_64")]
#[test]
fn a_list_of_syscalls_on_the_raw_tracepoint() {
    if !integration::privileged("a_list_of_syscalls_on_the_raw_tracepoint") {
        return;
    }
    let policy = corpus().join("list-syscalls-tracepoint.yaml");
    let agent = integration::Agent::start(&["--tracing-policy", policy.to_str().expect("utf-8")]);
    // SAFETY: plain syscalls on this process's standard output and a descriptor number
    // nothing else in the test uses; both copies are closed again.
    unsafe {
        let a = libc::dup(1);
        assert!(a >= 0);
        assert_eq!(libc::dup2(1, 613), 613);
        libc::close(a);
        libc::close(613);
    }
    let events = agent.sync();
    let me = std::process::id();
    let ids: Vec<&serde_json::Value> = integration::of_kind(&events, "process_tracepoint")
        .into_iter()
        .filter(|e| e["process"]["pid"] == me)
        .map(|e| {
            assert_eq!(e["policy_name"], "list-syscalls-tracepoint");
            assert_eq!(e["subsys"], "raw_syscalls");
            assert_eq!(e["event"], "sys_enter");
            &e["args"][0]
        })
        .collect();
    let dup = libc::SYS_dup.to_string();
    let dup2 = libc::SYS_dup2.to_string();
    // `uint64`, as the policy declares it (not `syscall64`): `size_arg`.
    assert_eq!(
        ids,
        [
            &serde_json::json!({ "size_arg": dup }),
            &serde_json::json!({ "size_arg": dup2 })
        ],
        "this process's dup and dup2, nothing else"
    );
}

/// `killer.yaml` as Tetragon wrote it: `NotifyEnforcer` on `raw_syscalls/sys_enter` for
/// bash's `dup` and `dup2` (an `InMap` on a list), and `enforcers` on the same syscalls.
/// Here the hook reports bash's `dup2` with the action; the enforcers, which need a
/// kprobe that can override a return, are each named as not running, with why, and the
/// policy runs partly (bash goes on).
#[cfg(target_arch = "x86_64")]
#[test]
fn killer_notifies_and_names_its_enforcers() {
    if !integration::privileged("killer_notifies_and_names_its_enforcers") {
        return;
    }
    let policy = corpus().join("killer.yaml");
    let agent = integration::Agent::start(&["--tracing-policy", policy.to_str().expect("utf-8")]);
    let (pid, out) = integration::run(
        std::process::Command::new("/usr/bin/bash").args(["-c", "exec 3>&1; echo done"]),
    );
    assert!(out.status.success(), "{out:?}");
    let events = agent.sync();
    let hits: Vec<&serde_json::Value> = integration::of_kind(&events, "process_tracepoint")
        .into_iter()
        .filter(|e| e["policy_name"] == "kill-syscalls" && e["process"]["pid"] == pid)
        .collect();
    assert_eq!(hits.len(), 1, "bash's dup2 only: {hits:?}");
    let e = hits[0];
    assert_eq!(e["process"]["binary"], "/usr/bin/bash");
    assert_eq!(e["subsys"], "raw_syscalls");
    assert_eq!(e["event"], "sys_enter");
    assert_eq!(
        e["args"],
        serde_json::json!([{ "syscall_id": { "id": libc::SYS_dup2, "abi": "x64" } }]),
        "`syscall64`: the number and its ABI"
    );
    assert_eq!(e["action"], "KPROBE_ACTION_NOTIFYENFORCER");
    let stderr = agent.stderr();
    for f in ["__x64_sys_dup", "__x64_sys_dup2", "__ia32_sys_dup"] {
        assert!(
            stderr.contains(&format!(
                "policy kill-syscalls: enforcer {f} is not running: this kernel has no kprobes"
            )),
            "{f}: {stderr}"
        );
    }
    assert!(
        stderr.contains("policy kill-syscalls partly loaded from "),
        "{stderr}"
    );
}

/// Each example that validates, loaded by the agent on this machine's kernel: it loads
/// fully, partly (each hook that does not run named with its reason, the others
/// running), or is refused only because none of its hooks can run here, saying so for
/// each (or, for a pod-scoped one, because no cluster tells its pods). Prints the table.
#[test]
fn tetragon_examples_load_here() {
    if !integration::privileged("tetragon_examples_load_here") {
        return;
    }
    let dir = corpus();
    let mut files = Vec::new();
    policies(&dir, &dir, &mut files);
    let mut table: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (name, path) in &files {
        if tracer::policy::parse::file(path).is_err() {
            continue;
        }
        // Optional: a policy refused by this kernel is said, and the agent starts.
        let agent = integration::Agent::start(&[
            "--tracing-policy",
            path.to_str().expect("utf-8"),
            "--tracing-policy-optional",
        ]);
        let (status, _, stderr) = agent.stop();
        assert!(status.success(), "{name}: the agent failed:\n{stderr}");
        let refused = stderr.lines().find(|l| l.contains("policy refused: "));
        let state = match refused {
            Some(l)
                if l.contains("none of its hooks can run here: ")
                    || l.contains("no Kubernetes API server is configured") =>
            {
                "refused here"
            }
            Some(l) => {
                wrong.push(format!("{name}: {l}"));
                "refused"
            }
            None if stderr.contains(" partly loaded from ") => {
                if !stderr.contains(" is not running: ") {
                    wrong.push(format!("{name}: partly loaded, no hook named:\n{stderr}"));
                }
                "partly"
            }
            None if stderr.contains(" loaded from ") => "fully",
            None => {
                wrong.push(format!("{name}: neither loaded nor refused:\n{stderr}"));
                "unknown"
            }
        };
        table.entry(state).or_default().push(name.clone());
    }
    for (state, names) in &table {
        println!("{state}: {} ({})", names.len(), names.join(", "));
    }
    assert!(
        wrong.is_empty(),
        "refused for another reason than the kernel:\n{}",
        wrong.join("\n")
    );
    // Hooks that run on every kernel with tracepoints: these never go unloaded.
    for name in ["raw_syscalls.yaml", "sys_setuid.yaml", "tcp-connect.yaml"] {
        assert!(
            ["fully", "partly"]
                .iter()
                .any(|s| table.get(s).is_some_and(|n| n.iter().any(|x| x == name))),
            "{name} should load here: {table:?}"
        );
    }
}

/// `rawtp.yaml` as Tetragon wrote it (`raw: true` on `sched_process_exec`, its
/// prototype's `struct linux_binprm *` at index 2), beside a raw tracepoint of this
/// test's own reading the task's `comm` through `resolve` and the old pid: one event per
/// exec, on this host, each field checked.
#[test]
fn raw_tracepoints_read_their_prototypes_arguments() {
    if !integration::privileged("raw_tracepoints_read_their_prototypes_arguments") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let own = dir.path().join("rawtp-resolve.yaml");
    std::fs::write(
        &own,
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: rawtp-resolve\nspec:\n  tracepoints:\n  - subsystem: sched\n    event: sched_process_exec\n    raw: true\n    args:\n    - index: 0\n      type: string\n      resolve: comm\n    - index: 1\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [rawtp-marker]\n",
    )
    .expect("write the policy");
    let corpus_policy = corpus().join("rawtp.yaml");
    let agent = integration::Agent::start(&[
        "--tracing-policy",
        corpus_policy.to_str().expect("utf-8"),
        "--tracing-policy",
        own.to_str().expect("utf-8"),
    ]);
    // A binary of its own name, so that its comm is the filter's value.
    let marker = dir.path().join("rawtp-marker");
    std::fs::copy("/bin/true", &marker).expect("copy /bin/true");
    let child = std::process::Command::new(&marker)
        .status()
        .expect("run the marker");
    assert!(child.success());
    let events = agent.sync();
    let ours: Vec<&serde_json::Value> = integration::of_kind(&events, "process_tracepoint")
        .into_iter()
        .filter(|e| e["process"]["binary"] == marker.to_str().expect("utf-8"))
        .collect();
    let of = |policy: &str| -> Vec<&serde_json::Value> {
        ours.iter()
            .copied()
            .filter(|e| e["policy_name"] == policy)
            .collect()
    };
    let corpus_events = of("rawtp");
    assert_eq!(corpus_events.len(), 1, "{ours:#?}");
    let e = corpus_events[0];
    assert_eq!(e["subsys"], "sched");
    assert_eq!(e["event"], "sched_process_exec");
    assert_eq!(e["action"], "KPROBE_ACTION_POST");
    assert_eq!(
        e["args"],
        serde_json::json!([{ "linux_binprm_arg": { "path": marker.to_str().expect("utf-8") } }])
    );
    let own_events = of("rawtp-resolve");
    assert_eq!(own_events.len(), 1, "{ours:#?}");
    let pid = own_events[0]["process"]["pid"].clone();
    assert_eq!(
        own_events[0]["args"],
        serde_json::json!([{ "string_arg": "rawtp-marker" }, { "int_arg": pid }]),
        "the new comm, and the pid before the exec (the same: not a thread's exec)"
    );
    // Only the marker's exec passes the kernel's filter.
    assert!(
        integration::of_kind(&events, "process_tracepoint")
            .iter()
            .filter(|e| e["policy_name"] == "rawtp-resolve")
            .all(|e| e["args"][0]["string_arg"] == "rawtp-marker")
    );
}
