//! A node's worth of policies on one hot syscall: 1,000 policies load, each running on
//! the same hook point with its own value of the argument (every third also naming this
//! process by pid, every third by binary: the process verdict and the argument gate
//! decide together); one fired in the middle posts alone; half of them removed while
//! events flow, and the other half goes on posting every call, each event under its own
//! policy: nothing lost, nothing misattributed.

use std::{
    collections::BTreeMap,
    fs,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use integration::{Agent, of_kind, privileged};
use serde_json::Value;

const POLICIES: u32 = 1000;
/// The argument values: `BASE + i` for policy `many-i` (no such process group).
const BASE: i32 = 7_000_000;

/// Writes policies `many-0` to `many-999` into `dir` as `many-i.yaml`, policy `many-i`
/// on value `base + i`, a third each scoped by this process's pid, by its binary, or not.
fn write_policies(dir: &Path, base: i32) {
    let me = std::process::id();
    let exe = fs::canonicalize(std::env::current_exe().expect("own binary")).expect("real path");
    let exe = exe.to_str().expect("utf-8 path");
    for i in 0..POLICIES {
        fs::write(
            dir.join(format!("many-{i}.yaml")),
            policy_on(i, base, me, exe),
        )
        .expect("write policy");
    }
}

/// Policy `many-i` on value `base + i`.
fn policy_on(i: u32, base: i32, me: u32, exe: &str) -> String {
    let process = match i % 3 {
        0 => String::new(),
        1 => format!("    - matchPIDs:\n      - operator: In\n        values: [{me}]\n"),
        _ => format!("    - matchBinaries:\n      - operator: In\n        values: [\"{exe}\"]\n"),
    };
    let value = base + i as i32;
    let args = format!(
        "      matchArgs:\n      - index: 5\n        operator: Equal\n        values: [{value}]\n"
    );
    // The matchArgs belong to the selector the process filter opened, or open their own.
    let selector = if process.is_empty() {
        args.replacen("      matchArgs", "    - matchArgs", 1)
    } else {
        format!("{process}{args}")
    };
    format!(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: many-{i}\nspec:\n  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_getpgid\n    args:\n    - index: 5\n      type: int\n    selectors:\n{selector}"
    )
}

fn getpgid(pid: i32) {
    // SAFETY: getpgid of a pid that does not exist: fails with ESRCH, touches nothing.
    let _ = unsafe { libc::getpgid(pid) };
}

/// The value each `process_tracepoint` event of a `many-*` policy carries, by policy.
fn by_policy(events: &[Value]) -> BTreeMap<u32, Vec<i64>> {
    let mut out: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for e in of_kind(events, "process_tracepoint") {
        let Some(i) = e["policy_name"]
            .as_str()
            .and_then(|n| n.strip_prefix("many-"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        out.entry(i)
            .or_default()
            .push(e["args"][0]["int_arg"].as_i64().unwrap_or(-1));
    }
    out
}

fn wait_for_count(agent: &Agent, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while agent.stderr().matches(needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} `{needle}` in the agent's log:\n{}",
            agent.stderr().matches(needle).count(),
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_thousand_policies_on_one_hook_point() {
    if !privileged("a_thousand_policies_on_one_hook_point") {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("tracer-many-")
        .tempdir()
        .expect("temp dir");
    let dir = work.path().join("policies");
    fs::create_dir(&dir).expect("policy dir");
    write_policies(&dir, BASE);
    let file = |i: u32| dir.join(format!("many-{i}.yaml"));
    let port = integration::metrics::free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let agent = Agent::start(&[
        "--tracing-policy-dir",
        dir.to_str().expect("utf-8 path"),
        "--ring-buffer-size",
        "67108864",
        "--metrics-server",
        &metrics_addr,
    ]);
    wait_for_count(&agent, " loaded from ", POLICIES as usize);
    let log = agent.stderr();
    assert!(!log.contains("policy refused"), "{log}");
    assert_eq!(
        log.matches("syscalls/sys_enter_getpgid runs on its tracepoint")
            .count(),
        POLICIES as usize
    );
    // Each counted in the metrics (updated every second): 1,000 policies loaded, 1,000
    // hooks, one hook point.
    let want = [
        (
            "tracer_tracingpolicy_loaded{state=\"loaded\"}",
            f64::from(POLICIES),
        ),
        ("tracer_policy_hooks{of=\"loaded\"}", f64::from(POLICIES)),
        ("tracer_policy_hook_points{of=\"loaded\"}", 1.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = integration::metrics::scrape(port);
        let got: Vec<Option<f64>> = want.iter().map(|(k, _)| m.get(*k).copied()).collect();
        if want.iter().zip(&got).all(|((_, w), g)| *g == Some(*w)) {
            break;
        }
        assert!(Instant::now() < deadline, "metrics {got:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // One fired in the middle: its event alone.
    getpgid(BASE + 500);
    let events = agent.sync();
    let fired = by_policy(&events);
    assert_eq!(
        fired,
        BTreeMap::from([(500, vec![i64::from(BASE + 500)])]),
        "one call, one event, of its own policy"
    );

    // Every value called over and over, while the first half is removed.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..POLICIES {
                    getpgid(BASE + i as i32);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            n
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..POLICIES / 2 {
        fs::remove_file(file(i)).expect("remove policy");
    }
    wait_for_count(&agent, " removed", (POLICIES / 2) as usize);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let rounds = rounds.join().expect("the workload thread");
    assert!(rounds >= 4, "{rounds} rounds");
    let events = agent.sync();
    let losses = of_kind(&events, "event_loss");
    assert!(losses.is_empty(), "nothing lost in the kernel: {losses:?}");
    let seen = by_policy(&events);
    for (i, values) in &seen {
        assert!(
            values.iter().all(|v| *v == i64::from(BASE) + i64::from(*i)),
            "policy many-{i} posted only its own value: {values:?}"
        );
    }
    // The half that stayed posted every call of its value since it was loaded: the one
    // call of the middle one before, and every round after.
    for i in POLICIES / 2..POLICIES {
        let n = seen.get(&i).map_or(0, Vec::len) as u32;
        let want = rounds + u32::from(i == 500);
        assert_eq!(n, want, "policy many-{i}: {n} events of {want} calls");
    }
    // The half that went posted no more than its calls.
    for i in 0..POLICIES / 2 {
        let n = seen.get(&i).map_or(0, Vec::len) as u32;
        assert!(n <= rounds, "policy many-{i}: {n} events of {rounds} calls");
    }
    let (status, _, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    // Each policy that stayed counted its own: the gate and the process verdict let
    // through the calls of its value only.
    for i in [500, 501, 502, 999] {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("policy many-{i} counters")))
            .unwrap_or_else(|| panic!("no counters of many-{i}"));
        let want = rounds + u32::from(i == 500);
        assert!(line.contains(&format!("posted={want}")), "many-{i}: {line}");
    }
}

/// The kernel takes time to load a policy (seconds each for a kprobe's programs on a
/// slow machine), and the agent reads what it records meanwhile between policies: with
/// a ring buffer of 1 MiB and 1,000 policies to load, a process that execs over and
/// over all through the load loses none of its events.
#[test]
fn events_recorded_while_policies_load_are_kept() {
    if !privileged("events_recorded_while_policies_load_are_kept") {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("tracer-loading-")
        .tempdir()
        .expect("temp dir");
    // Values no call uses: the tests of this file run side by side, in one process, and
    // the other's calls must not reach this agent's ring buffer.
    write_policies(work.path(), BASE + 1_000_000);
    let me = std::process::id();
    let agent = Agent::spawn(&[
        "--tracing-policy-dir",
        work.path().to_str().expect("utf-8 path"),
        "--ring-buffer-size",
        "1048576",
    ]);
    // Execs from the first policy loaded until the agent is ready: a few thousand
    // records, far more than the ring buffer holds at once.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !agent.stderr().contains(" loaded from ") {
        assert!(
            Instant::now() < deadline,
            "no policy loaded:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut markers = Vec::new();
    while !agent.stderr().contains("tracer ready") {
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            agent.stderr()
        );
        let marker = format!("tracer-loading-{me}-{}", markers.len());
        let st = std::process::Command::new("/bin/true")
            .arg(&marker)
            .status()
            .expect("run /bin/true");
        assert!(st.success());
        markers.push(marker);
    }
    assert!(
        markers.len() >= 50,
        "the policies loaded too fast to test this: {} execs during the load",
        markers.len()
    );
    let events = agent.sync();
    let execs: std::collections::BTreeSet<&str> = of_kind(&events, "process_exec")
        .into_iter()
        .filter_map(|e| e["process"]["arguments"].as_str())
        .collect();
    let missing: Vec<&String> = markers
        .iter()
        .filter(|m| !execs.contains(m.as_str()))
        .collect();
    if !missing.is_empty() {
        // The slowest loads, where the ring buffer had the longest to fill.
        let log = agent.stderr();
        let mut slow: Vec<(f64, &str)> = log
            .lines()
            .filter_map(|l| {
                let ms = l.split(" in ").nth(1)?.split(" ms").next()?.parse().ok()?;
                Some((ms, l))
            })
            .collect();
        slow.sort_by(|a, b| b.0.total_cmp(&a.0));
        panic!(
            "{} of {} execs during the load have no event: {:?}; the slowest loads:\n{}",
            missing.len(),
            markers.len(),
            &missing[..missing.len().min(5)],
            slow.iter()
                .take(5)
                .map(|(_, l)| *l)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let (status, _, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    let stopped = stderr
        .lines()
        .find(|l| l.contains("tracer stopped"))
        .unwrap_or_else(|| panic!("no `tracer stopped` in:\n{stderr}"));
    assert!(stopped.contains(" kernel_lost=0 "), "{stopped}");
}
