//! Uprobes (`spec.uprobes`), run by the agent on this kernel: a function of a test
//! binary hooked by symbol and by file offset, its integer and string arguments read
//! from the process's registers and memory, filtered by `matchArgs`, `matchBinaries` and
//! `matchPIDs`, and `Sigkill` sent from the hook; asserted on the `process_uprobe`
//! events field by field.

use std::{path::Path, process::Command};

use integration::{Agent, of_kind, privileged, run};
use serde_json::{Value, json};

const TARGET: &str = env!("CARGO_BIN_EXE_uprobe-target");

fn policy(dir: &Path, name: &str, place: &str, selectors: &str) -> String {
    let text = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  uprobes:
  - path: "{TARGET}"
{place}
    message: "a greeting"
    tags: ["test"]
    args:
    - index: 0
      type: int64
    - index: 1
      type: string
      label: name
    selectors:
{selectors}"#
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).expect("write policy");
    path.to_str().expect("utf-8").to_owned()
}

/// Runs the target with `names`; its pid and exit status.
fn greet(names: &[&str]) -> (u32, std::process::ExitStatus) {
    let (pid, out) = run(Command::new(TARGET).args(names));
    (pid, out.status)
}

fn hits<'a>(events: &'a [Value], policy: &str) -> Vec<&'a Value> {
    of_kind(events, "process_uprobe")
        .into_iter()
        .filter(|e| e["policy_name"] == policy)
        .collect()
}

#[test]
fn uprobes_by_symbol_and_offset_with_selectors() {
    if !privileged("uprobes_by_symbol_and_offset_with_selectors") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path();
    let offset = tracer::policy::binary::symbol_offset(Path::new(TARGET), "tracer_test_greet")
        .expect("the target's function");
    // By symbol: `alice` passes a string Prefix filter, any call with n = 3 passes an
    // integer Equal filter (two selectors: either posts).
    let by_symbol = policy(
        dir,
        "greet-symbol",
        "    symbols: [tracer_test_greet]",
        r#"    - matchArgs:
      - index: 1
        operator: Prefix
        values: ["ali"]
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["3"]
"#,
    );
    // By file offset, only for the target binary and for this test's descendants.
    let me = std::process::id();
    let by_offset = policy(
        dir,
        "greet-offset",
        &format!("    offsets: [{offset}]"),
        &format!(
            r#"    - matchBinaries:
      - operator: In
        values: ["{TARGET}"]
      matchPIDs:
      - operator: In
        followForks: true
        values: [{me}]
      matchArgs:
      - index: 1
        operator: Equal
        values: ["carol"]
"#
        ),
    );
    // Sigkill from the hook: the process dies in the call, before it prints.
    let killer = policy(
        dir,
        "greet-kill",
        "    symbols: [tracer_test_greet]",
        r#"    - matchArgs:
      - index: 1
        operator: Equal
        values: ["mallory"]
      matchActions:
      - action: Sigkill
"#,
    );
    let agent = Agent::start(&[
        "--tracing-policy",
        &by_symbol,
        "--tracing-policy",
        &by_offset,
        "--tracing-policy",
        &killer,
    ]);
    let stderr = agent.stderr();
    assert!(
        stderr.contains(&format!(
            "policy greet-symbol: uprobe {TARGET} tracer_test_greet runs on a uprobe"
        )),
        "{stderr}"
    );
    let (pid, status) = greet(&["alice", "bob", "carol", "dave"]);
    assert!(status.success(), "{status}");
    let (killed, status) = greet(&["mallory", "never"]);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "Sigkill in the hook: {status}"
    );
    let events = agent.sync();
    let symbol: Vec<_> = hits(&events, "greet-symbol")
        .into_iter()
        .filter(|e| e["process"]["pid"] == pid)
        .collect();
    assert_eq!(
        symbol.len(),
        2,
        "alice by Prefix, carol by n = 3: {symbol:?}"
    );
    for (e, (n, name)) in symbol.iter().zip([(1, "alice"), (3, "carol")]) {
        assert_eq!(e["path"], TARGET);
        assert_eq!(e["symbol"], "tracer_test_greet");
        assert!(e.get("offset").is_none(), "{e}");
        assert_eq!(e["message"], "a greeting");
        assert_eq!(e["tags"], json!(["test"]));
        assert_eq!(e["action"], "KPROBE_ACTION_POST");
        assert_eq!(e["process"]["binary"], TARGET);
        assert_eq!(e["parent"]["pid"], me);
        assert_eq!(
            e["args"],
            json!([{"long_arg": n.to_string()}, {"string_arg": name, "label": "name"}])
        );
    }
    let offset_hits = hits(&events, "greet-offset");
    assert_eq!(offset_hits.len(), 1, "carol only: {offset_hits:?}");
    let e = offset_hits[0];
    assert_eq!(e["process"]["pid"], pid);
    assert_eq!(e["path"], TARGET);
    assert!(e.get("symbol").is_none(), "{e}");
    assert_eq!(e["offset"], offset.to_string());
    assert_eq!(e["args"][1]["string_arg"], "carol");
    let kills = hits(&events, "greet-kill");
    assert_eq!(kills.len(), 1, "mallory, then dead: {kills:?}");
    assert_eq!(kills[0]["process"]["pid"], killed);
    assert_eq!(kills[0]["action"], "KPROBE_ACTION_SIGKILL");
    assert_eq!(kills[0]["args"][1]["string_arg"], "mallory");
    // `mallory` also posts by symbol (n = 1 is not 3, and it is not `ali...`): no.
    assert!(
        hits(&events, "greet-symbol")
            .iter()
            .all(|e| e["process"]["pid"] != killed),
        "{events:?}"
    );
}

#[test]
fn a_uprobe_on_a_missing_binary_or_symbol_says_which() {
    if !privileged("a_uprobe_on_a_missing_binary_or_symbol_says_which") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path();
    let text = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: partly
spec:
  uprobes:
  - path: "{TARGET}"
    symbols: [tracer_test_greet, no_such_function]
  - path: /no/such/binary
    symbols: [main]
"#
    );
    let path = dir.join("partly.yaml");
    std::fs::write(&path, text).expect("write");
    let agent = Agent::start(&["--tracing-policy", path.to_str().expect("utf-8")]);
    let (pid, status) = greet(&["zoe"]);
    assert!(status.success());
    let events = agent.sync();
    let (_, _, stderr) = agent.stop();
    assert!(stderr.contains("partly loaded from"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "uprobe {TARGET} no_such_function is not running: {TARGET} has no function `no_such_function`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("uprobe /no/such/binary main is not running: reading /no/such/binary"),
        "{stderr}"
    );
    let got = hits(&events, "partly");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["process"]["pid"], pid);
    assert_eq!(got[0]["symbol"], "tracer_test_greet");
}

/// USDT probe points (`spec.usdts`) of the target, found in its `.note.stapsdt`: their
/// arguments read as the notes say (registers here), a string filter on one, and a
/// probe point behind a semaphore, which the kernel raises while the probe is attached
/// (the target computes and passes it only then).
#[test]
fn usdt_probe_points_with_arguments_and_a_semaphore() {
    if !privileged("usdt_probe_points_with_arguments_and_a_semaphore") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let text = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: greet-usdt
spec:
  usdts:
  - path: "{TARGET}"
    provider: tracer_test
    name: greet
    message: "a greeting point"
    args:
    - index: 0
      type: int64
    - index: 1
      type: int32
    - index: 2
      type: string
    selectors:
    - matchArgs:
      - index: 2
        operator: Equal
        values: ["bob"]
  - path: "{TARGET}"
    provider: tracer_test
    name: lazy
    args:
    - index: 0
      type: int64
"#
    );
    let path = work.path().join("usdt.yaml");
    std::fs::write(&path, text).expect("write");
    let agent = Agent::start(&["--tracing-policy", path.to_str().expect("utf-8")]);
    let stderr = agent.stderr();
    assert!(
        stderr.contains(&format!(
            "policy greet-usdt: usdt {TARGET} tracer_test:greet runs on a uprobe"
        )),
        "{stderr}"
    );
    let (pid, status) = greet(&["alice", "bob", "carol"]);
    assert!(status.success());
    let events = agent.sync();
    let got: Vec<_> = of_kind(&events, "process_usdt")
        .into_iter()
        .filter(|e| e["process"]["pid"] == pid)
        .collect();
    let greet_hits: Vec<_> = got.iter().filter(|e| e["name"] == "greet").collect();
    assert_eq!(greet_hits.len(), 1, "bob only: {got:?}");
    let e = greet_hits[0];
    assert_eq!(e["path"], TARGET);
    assert_eq!(e["provider"], "tracer_test");
    assert_eq!(e["policy_name"], "greet-usdt");
    assert_eq!(e["message"], "a greeting point");
    assert_eq!(e["action"], "KPROBE_ACTION_POST");
    assert_eq!(
        e["args"],
        json!([{"long_arg": "2"}, {"int_arg": 3}, {"string_arg": "bob"}])
    );
    let lazy: Vec<_> = got
        .iter()
        .filter(|e| e["name"] == "lazy")
        .map(|e| e["args"][0]["long_arg"].clone())
        .collect();
    assert_eq!(
        lazy,
        [json!("-1"), json!("-2"), json!("-3")],
        "the semaphore raised: every call passes the lazy point"
    );
}

/// `Set` on a USDT probe point (`usdt-set.yaml`'s action): the target passes
/// `tracer_test:set` with a 32-bit value in its memory and prints it after the probe.
/// Where the selector matches (the value 7), the probe writes `argValue` (32) there and
/// the event says `KPROBE_ACTION_SET` with the value as it was; elsewhere (8) nothing
/// changes. A `Set` of an argument the note passes in a register is refused, saying so.
/// A kernel in lockdown (`integrity` or `confidentiality`) refuses the program that
/// writes: there the policy is refused, naming the lockdown, and nothing is written (the
/// write itself is then tested in the VM test, on Debian's kernels, not locked down).
#[cfg(target_arch = "x86_64")]
#[test]
fn usdt_set_writes_the_argument() {
    if !privileged("usdt_set_writes_the_argument") {
        return;
    }
    let lockdown = "/sys/kernel/security/lockdown";
    if !Path::new(lockdown).exists() {
        let _ = Command::new("mount")
            .args(["-t", "securityfs", "securityfs", "/sys/kernel/security"])
            .status();
    }
    let mode = std::fs::read_to_string(lockdown).expect("the kernel's lockdown mode");
    let locked = !mode.contains("[none]");
    let work = tempfile::tempdir().expect("temp dir");
    let text = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: usdt-set
spec:
  usdts:
  - path: "{TARGET}"
    provider: tracer_test
    name: set
    args:
    - index: 0
      type: int32
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["7"]
      matchActions:
      - action: Set
        argIndex: 0
        argValue: 32
"#
    );
    let register = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: usdt-set-register
spec:
  usdts:
  - path: "{TARGET}"
    provider: tracer_test
    name: greet
    args:
    - index: 0
      type: int64
    selectors:
    - matchActions:
      - action: Set
        argIndex: 0
        argValue: 1
"#
    );
    let path = work.path().join("set.yaml");
    std::fs::write(&path, text).expect("write");
    let in_register = work.path().join("register.yaml");
    std::fs::write(&in_register, register).expect("write");
    let agent = Agent::start(&[
        "--tracing-policy",
        path.to_str().expect("utf-8"),
        "--tracing-policy",
        in_register.to_str().expect("utf-8"),
        // Refused where the kernel cannot write (lockdown), said in the log.
        "--tracing-policy-optional",
    ]);
    let set = |n: &str| {
        let (pid, out) = run(Command::new(TARGET).args(["--set", n]));
        assert!(out.status.success(), "{out:?}");
        (pid, String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let (written, written_out) = set("7");
    let (untouched, untouched_out) = set("8");
    let stderr = agent.stderr();
    assert!(
        stderr.contains(
            "`Set` writes argument 0 of `args` (the probe point's argument 0) into the process's memory, and "
        ) && stderr.contains("tracer_test:greet's note passes it in a register, which a probe cannot change"),
        "{stderr}"
    );
    if locked {
        println!(
            "this kernel is in lockdown ({}): the write is refused",
            mode.trim()
        );
        assert!(
            stderr.contains("policy usdt-set: none of its hooks can run here: ")
                && stderr.contains("writing to a process's memory (`Set`) takes bpf_probe_write_user, which kernel lockdown (`"),
            "{stderr}"
        );
        assert_eq!(written_out, "set 7", "nothing written");
        return;
    }
    assert_eq!(written_out, "set 32", "the probe wrote argValue");
    assert_eq!(
        untouched_out, "set 8",
        "no selector matched: nothing written"
    );
    let events = agent.sync();
    let got: Vec<_> = of_kind(&events, "process_usdt")
        .into_iter()
        .filter(|e| e["policy_name"] == "usdt-set")
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    let e = got[0];
    assert_eq!(e["process"]["pid"], written);
    assert_ne!(e["process"]["pid"], untouched);
    assert_eq!(e["path"], TARGET);
    assert_eq!(e["provider"], "tracer_test");
    assert_eq!(e["name"], "set");
    assert_eq!(e["action"], "KPROBE_ACTION_SET");
    assert_eq!(e["args"], json!([{"int_arg": 7}]), "read before the write");
}

/// `userStackTrace` on a uprobe's `Post`: the target's `tracer_test_framed`, probed once
/// its frame is set up, called by `tracer_test_caller`; the event's user stack names the
/// probed function, then its caller, each in the target binary, with offsets and no
/// addresses (`--expose-stack-addresses` is not given), and has no kernel stack.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_uprobes_user_stack_names_the_caller() {
    use std::io::BufRead as _;
    if !privileged("a_uprobes_user_stack_names_the_caller") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let start = tracer::policy::binary::symbol_offset(Path::new(TARGET), "tracer_test_framed")
        .expect("the target's function");
    // After `push %rbp` (1 byte) and `mov %rsp,%rbp` (3).
    let offset = start + 4;
    let text = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: user-stack
spec:
  uprobes:
  - path: "{TARGET}"
    offsets: [{offset}]
    selectors:
    - matchActions:
      - action: Post
        userStackTrace: true
"#
    );
    let path = work.path().join("user-stack.yaml");
    std::fs::write(&path, text).expect("write");
    let agent = Agent::start(&["--tracing-policy", path.to_str().expect("utf-8")]);
    let mut child = Command::new(TARGET)
        .arg("--stack")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the target");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the target's output");
    assert_eq!(line.trim(), "called 42");
    // The target runs on (its standard input open) until its event is out.
    let events = agent.sync();
    drop(child.stdin.take());
    assert!(child.wait().expect("wait for the target").success());
    let got = hits(&events, "user-stack");
    assert_eq!(got.len(), 1, "{got:#?}");
    let e = got[0];
    assert_eq!(e["process"]["pid"], child.id());
    assert!(e.get("kernel_stack_trace").is_none(), "{e:#}");
    let stack = e["user_stack_trace"]
        .as_array()
        .unwrap_or_else(|| panic!("no user_stack_trace: {e:#}"));
    assert!(stack.len() >= 2, "{stack:#?}");
    assert_eq!(
        stack[0],
        json!({"offset": "4", "symbol": "tracer_test_framed", "module": TARGET}),
        "the probed instruction"
    );
    let caller = &stack[1];
    assert_eq!(caller["symbol"], "tracer_test_caller", "{stack:#?}");
    assert_eq!(caller["module"], TARGET);
    assert!(
        caller["offset"].as_str().unwrap().parse::<u64>().unwrap() > 0,
        "a return address inside the caller: {caller}"
    );
    assert!(
        stack.iter().all(|f| f.get("address").is_none()),
        "{stack:#?}"
    );
}
