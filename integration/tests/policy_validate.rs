//! `tracer policy validate`: the command a team runs before loading a policy. Needs no
//! privileges.

use std::process::Command;

fn tracer() -> Command {
    let bin = std::env::var("TRACER_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/tracer").to_owned()
    });
    Command::new(bin)
}

const VALID: &str = r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: "reads"
spec:
  tracepoints:
  - subsystem: "syscalls"
    event: "sys_enter_read"
    args:
    - index: 0
      type: "int"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Equal"
        values: ["0"]
"#;

#[test]
fn valid_and_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, VALID).unwrap();
    let out = tracer()
        .args(["policy", "validate"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}: valid (reads)\n", good.display())
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, VALID.replace("\"Equal\"", "\"Equals\"")).unwrap();
    let out = tracer()
        .args(["policy", "validate"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one invalid file fails the run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "{}:15:19: spec.tracepoints[0].selectors[0].matchArgs[0].operator: `Equals` is not a \
             matchArgs operator; expected one of Equal, NotEqual, Prefix, NotPrefix, Postfix, \
             NotPostfix, GT, GreaterThan, LT, LessThan, Mask, InMap, NotInMap\n  fix: write `Equal`\n",
            bad.display()
        )
    );

    let missing = dir.path().join("missing.yaml");
    let out = tracer()
        .args(["policy", "validate"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the file"));
}

/// What the agent refuses without the kernel, `validate` refuses with the same words: a
/// policy that hooks one place twice, and policies past the hooks the kernel's maps hold
/// by default (5,000 documents of 4 hooks, in two files).
#[test]
fn validate_refuses_what_loading_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let twice = dir.path().join("twice.yaml");
    std::fs::write(
        &twice,
        format!("{VALID}  - subsystem: \"syscalls\"\n    event: \"sys_enter_read\"\n"),
    )
    .unwrap();
    let out = tracer()
        .args(["policy", "validate"])
        .arg(&twice)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:1: spec.tracepoints[1]: policy reads: syscalls/sys_enter_read: is traced twice \
             in this policy; merge the two into one hook with several selectors (the agent \
             refuses the policy)",
            twice.display()
        )),
        "{stderr}"
    );

    let doc = |i: usize| {
        format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p{i}\nspec:\n  tracepoints:\n  - {{subsystem: syscalls, event: sys_enter_getppid}}\n  - {{subsystem: syscalls, event: sys_enter_getpid}}\n  - {{subsystem: syscalls, event: sys_enter_gettid}}\n  - {{subsystem: syscalls, event: sys_enter_getuid}}\n"
        )
    };
    let files: Vec<_> = (0..2)
        .map(|f| {
            let path = dir.path().join(format!("many{f}.yaml"));
            let text: Vec<String> = (f * 2500..(f + 1) * 2500).map(doc).collect();
            std::fs::write(&path, text.join("---\n")).unwrap();
            path
        })
        .collect();
    let out = tracer()
        .args(["policy", "validate"])
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 4,096 policies of 4 hooks fill the default 16,384: the next one is refused.
    let first_line = 1 + 1596 * 11;
    assert_eq!(
        stderr.trim_end(),
        format!(
            "{}:{first_line}: policy p4096: 16384 hooks are loaded, as many as the kernel's maps \
             were sized for; raise --policy-capacity (now 16384) (with the documents and files \
             before it, as the agent loads them at start)",
            files[1].display()
        )
    );
}
