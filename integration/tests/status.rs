//! `tracer status` on this machine's kernel: each program type probed for real, and where
//! the hooks of the library's policies would run. (On Debian's kernels, `vm.rs` checks
//! the same command, where kprobes, fentry and LSM work.)

use std::process::Command;

use integration::{privileged, tracer_bin};

#[test]
fn status_reports_program_types_and_hook_placement() {
    if !privileged("status_reports_program_types_and_hook_placement") {
        return;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(tracer_bin())
        .args(["status", "--tracing-policy"])
        .arg(format!("{root}/policies/sensitive-files.yaml"))
        .arg("--tracing-policy")
        .arg(format!("{root}/policies/network-egress.yaml"))
        .output()
        .expect("run tracer status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(&format!("{name:<16} ")))
            .unwrap_or_else(|| panic!("no row {name}:\n{text}"))
            .to_owned()
    };
    // What every kernel the tracer supports runs.
    for t in ["tracepoint", "raw tracepoint", "BTF tracepoint"] {
        assert!(row(t).contains(" yes"), "{text}");
    }
    // The rest: either it works, or the row says why not.
    let has_kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    for t in [
        "kprobe",
        "kretprobe",
        "kprobe override",
        "fentry",
        "fexit",
        "BPF LSM",
    ] {
        let r = row(t);
        assert!(
            r.contains(" yes")
                || r.split(" no ")
                    .nth(1)
                    .is_some_and(|why| why.trim().len() > 10),
            "{t}: {r}"
        );
    }
    assert_eq!(row("kprobe").contains(" yes"), has_kprobes, "{text}");
    if !has_kprobes {
        assert!(row("kprobe").contains("no kprobe event source"), "{text}");
    }
    // Placement, as the agent would log it.
    assert!(
        text.contains("policy sensitive-files (")
            && text.contains("syscalls/sys_enter_openat runs on its tracepoint"),
        "{text}"
    );
    let raw = Command::new(tracer_bin())
        .args(["status", "--syscall-raw-tracepoints", "--tracing-policy"])
        .arg(format!("{root}/policies/sensitive-files.yaml"))
        .output()
        .expect("run tracer status");
    let raw = String::from_utf8_lossy(&raw.stdout);
    assert!(
        raw.contains(&format!(
            "syscalls/sys_enter_openat runs on the raw tracepoint sys_enter, syscall {} filtered in the program",
            libc::SYS_openat
        )),
        "{raw}"
    );
    let connect = if has_kprobes {
        "kprobe tcp_connect runs on a kprobe"
    } else {
        "kprobe tcp_connect runs on the tracepoint sock/inet_sock_set_state"
    };
    assert!(text.contains(connect), "{text}");

    // A broken policy: exit code 1, and the reason.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bad\nspec:\n  kprobes:\n  - call: security_file_open\n    syscall: false\n",
    )
    .unwrap();
    let out = Command::new(tracer_bin())
        .args(["status", "--tracing-policy"])
        .arg(&bad)
        .output()
        .expect("run tracer status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("policy bad (")
            && text.contains("would be refused")
            && text.contains("security_file_open"),
        "{text}"
    );
}
