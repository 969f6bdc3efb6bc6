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
