//! The export stage with the real agent: allow/deny filters, redaction and field filters
//! on real processes; the rate limit and its `rate_limit_info`; a full disk (a tiny
//! tmpfs) that fills and frees again, with the gap said in the stream; rotation under a
//! steady stream with every event in the files once; and the metrics endpoint, whose
//! counters add up.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use integration::{
    Agent,
    metrics::{free_port, get, scrape, sum},
    of_kind, privileged,
};
use serde_json::Value;

/// Every event the export stage took is exported, filtered, rate limited, dropped or
/// queued, for `sink`.
fn assert_adds_up(m: &BTreeMap<String, f64>, sink: &str) {
    assert!(sum(m, "tracer_events_total", None) > 0.0, "{m:#?}");
    assert_adds_up_so_far(m, sink);
}

/// As [`assert_adds_up`], at any moment (none yet included).
fn assert_adds_up_so_far(m: &BTreeMap<String, f64>, sink: &str) {
    let total = sum(m, "tracer_events_total", None);
    let sink_label = format!("sink=\"{sink}\"");
    let parts = sum(m, "tracer_events_filtered_total", None)
        + sum(m, "tracer_export_ratelimit_events_dropped_total", None)
        + sum(m, "tracer_events_exported_total", Some(&sink_label))
        + sum(m, "tracer_export_dropped_events_total", Some(&sink_label))
        + sum(m, "tracer_export_queue_events", Some(&sink_label));
    assert_eq!(
        total, parts,
        "generated = exported + filtered + dropped: {m:#?}"
    );
}

/// Runs `script` with /bin/sh, which must succeed.
fn sh(script: &str) {
    let st = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .status()
        .expect("run /bin/sh");
    assert!(st.success(), "{script}");
}

fn run_true(args: &[&str]) {
    let st = Command::new("/bin/true")
        .args(args)
        .status()
        .expect("run /bin/true");
    assert!(st.success());
}

#[test]
fn filters_redaction_and_field_filters() {
    if !privileged("filters_redaction_and_field_filters") {
        return;
    }
    let port = free_port();
    let tag = format!("export-{}", std::process::id());
    let allow = format!(
        "{{\"binary_regex\": [\"/true$\"], \"arguments_regex\": [\"^{tag}\"]}}\n{{\"arguments_regex\": [\"^tracer-sync-\"]}}"
    );
    let agent = Agent::start(&[
        "--metrics-server",
        &format!("127.0.0.1:{port}"),
        "--export-allowlist",
        &allow,
        "--export-denylist",
        r#"{"arguments_regex": ["deny-me"]}"#,
        "--redaction-filters",
        r#"{"redact": ["--password(?:\\s+|=)(\\S*)"]}"#,
        "--field-filters",
        r#"{"fields": "process.cwd,parent", "event_set": ["PROCESS_EXIT"], "action": "EXCLUDE"}"#,
    ]);
    run_true(&[&format!("{tag}-a"), "--password", "hunter2"]);
    run_true(&[&format!("{tag}-deny-me")]);
    let st = Command::new("/bin/echo")
        .arg(format!("{tag}-echo"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("echo");
    assert!(st.success());
    let events = agent.sync();
    let ours = |kind: &str| -> Vec<&Value> {
        of_kind(&events, kind)
            .into_iter()
            .filter(|e| {
                e["process"]["arguments"]
                    .as_str()
                    .is_some_and(|a| a.starts_with(&tag))
            })
            .collect()
    };
    let execs = ours("process_exec");
    let exits = ours("process_exit");
    assert_eq!(
        execs.len(),
        1,
        "only the allowed, not denied process: {execs:#?}"
    );
    assert_eq!(exits.len(), 1, "{exits:#?}");
    let want = format!("{tag}-a --password *****");
    assert_eq!(execs[0]["process"]["arguments"], want.as_str());
    assert_eq!(exits[0]["process"]["arguments"], want.as_str());
    assert!(
        !events.iter().any(|e| e.to_string().contains("hunter2")),
        "the secret left the agent"
    );
    // The exit lost its cwd and parent; the exec kept them.
    assert!(exits[0]["process"].get("cwd").is_none() && exits[0].get("parent").is_none());
    assert!(execs[0]["process"]["cwd"].is_string() && execs[0]["parent"].is_object());
    let m = scrape(port);
    assert!(
        sum(&m, "tracer_events_filtered_total", Some("denylist")) >= 2.0,
        "{m:#?}"
    );
    assert!(
        sum(&m, "tracer_events_filtered_total", Some("allowlist")) >= 2.0,
        "{m:#?}"
    );
    assert_adds_up(&m, "stdout");
    assert_eq!(get(port, "/healthz").0, 200);
    assert_eq!(get(port, "/readyz").0, 200);
    assert_eq!(get(port, "/nothing").0, 404);
    let (status, _, _) = agent.stop();
    assert!(status.success());
}

#[test]
fn bad_filters_are_refused_before_anything_runs() {
    if !privileged("bad_filters_are_refused_before_anything_runs") {
        return;
    }
    for (flag, value, says) in [
        (
            "--export-allowlist",
            "{\"binary\": [\"x\"]}",
            "--export-allowlist, filter 1 (line 1): `binary` is not a filter key",
        ),
        (
            "--redaction-filters",
            "{\"redact\": [\"(\"]}",
            "--redaction-filters, filter 1 (line 1): `redact`: `(` is not a regular expression",
        ),
        (
            "--field-filters",
            "{\"fields\": \"a\", \"action\": \"KEEP\"}",
            "--field-filters, filter 1 (line 1): `action` is \"INCLUDE\" or \"EXCLUDE\"",
        ),
    ] {
        let out = Command::new(integration::tracer_bin())
            .args(["run", flag, value])
            .output()
            .expect("run the agent");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(says), "{flag}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn the_rate_limit_says_what_it_dropped() {
    if !privileged("the_rate_limit_says_what_it_dropped") {
        return;
    }
    let port = free_port();
    let tag = format!("rate-{}", std::process::id());
    // 120 a minute: a burst of 120, then two a second.
    // Only ours reach the rate limit (filters come first): other tests' processes, seen
    // by this agent too, take no tokens.
    let allow = format!("{{\"arguments_regex\": [\"^{tag}$\"]}}");
    let agent = Agent::start(&[
        "--export-allowlist",
        &allow,
        "--export-rate-limit",
        "120",
        "--metrics-server",
        &format!("127.0.0.1:{port}"),
    ]);
    sh(&format!("for i in $(seq 150); do /bin/true {tag}; done"));
    // The report comes on the loss tick (every second).
    let start = Instant::now();
    let dropped: u64 = loop {
        let events = agent.events();
        let n: u64 = of_kind(&events, "rate_limit_info")
            .iter()
            .filter_map(|r| {
                r["number_of_dropped_process_events"]
                    .as_str()?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        if n > 0 {
            assert!(
                of_kind(&events, "rate_limit_info")
                    .iter()
                    .all(|r| r["since"].is_string()),
                "since when"
            );
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no rate_limit_info"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let m = scrape(port);
    let limited = sum(&m, "tracer_export_ratelimit_events_dropped_total", None);
    assert!(
        limited >= 300.0 - 130.0,
        "150 processes, 300 events, about 120 pass: {limited}"
    );
    assert!(limited >= dropped as f64);
    assert_adds_up(&m, "stdout");
    let events = agent.events();
    let passed = events
        .iter()
        .filter(|e| {
            ["process_exec", "process_exit"]
                .iter()
                .any(|k| e[*k]["process"]["arguments"] == tag.as_str())
        })
        .count();
    // 120 at once, then two a second while the loop runs.
    assert!(
        (110..200).contains(&passed),
        "{passed} of our 300 events passed"
    );
    assert_eq!(
        passed as f64 + limited,
        300.0,
        "each of ours passed or was counted"
    );
    let (status, _, _) = agent.stop();
    assert!(status.success());
}

/// The `seq` of each line of `text`.
fn seqs(text: &str) -> Vec<u64> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a whole JSON line");
            v["seq"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("a seq")
        })
        .collect()
}

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tracer-test"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(st.success(), "mount a tmpfs on {}", dir.display());
        Self(dir.to_owned())
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_counted_retried_and_said_in_the_stream() {
    if !privileged("a_full_disk_is_counted_retried_and_said_in_the_stream") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let disk = Tmpfs::mount(work.path(), "64k");
    let file = work.path().join("events.log");
    let port = free_port();
    let tag = format!("disk-{}", std::process::id());
    let agent = Agent::start(&[
        "--export-filename",
        file.to_str().expect("utf-8"),
        "--export-buffer-size",
        "16384",
        "--export-allowlist",
        &format!("{{\"arguments_regex\": [\"^{tag}\"]}}"),
        "--metrics-server",
        &format!("127.0.0.1:{port}"),
    ]);
    // Far more than 64 KiB of events.
    let script = format!("for i in $(seq 200); do /bin/true {tag}-$i; done");
    sh(&script);
    agent.wait_for_log("writing events to export_file failed: No space left on device");
    // Tracing goes on, and the agent counts what it cannot keep.
    let start = Instant::now();
    while sum(&scrape(port), "tracer_export_dropped_events_total", None) == 0.0 {
        assert!(start.elapsed() < Duration::from_secs(30), "nothing dropped");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Room again: what was kept is written, and an event_loss says what was not.
    disk.resize("16m");
    run_true(&[&format!("{tag}-after")]);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("\"event_loss\"") && text.contains(&format!("{tag}-after")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = scrape(port);
    assert_adds_up(&m, "export_file");
    let (status, _, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    // Every line whole and once, in order; the missing numbers are exactly the ones
    // dropped, and the event_loss lines say how many, of which types.
    let text = std::fs::read_to_string(&file).expect("the file");
    let s = seqs(&text);
    assert!(s.windows(2).all(|w| w[0] < w[1]), "in order, once: {s:?}");
    let missing = s.last().copied().unwrap_or(0) - s.len() as u64;
    let losses: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("event_loss").is_some())
        .collect();
    let said: u64 = losses
        .iter()
        .map(|l| {
            let loss = &l["event_loss"];
            assert_eq!(loss["where"], "export_file");
            assert!(loss["since"].is_string() && loss["reason"].is_string());
            let by_type: u64 = loss["lost"]
                .as_object()
                .map(|o| {
                    o.values()
                        .filter_map(|v| v.as_str()?.parse::<u64>().ok())
                        .sum()
                })
                .unwrap_or(0);
            let count: u64 = loss["count"]
                .as_str()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            assert_eq!(by_type, count, "{loss}");
            count
        })
        .sum();
    assert!(missing > 0, "some were dropped");
    assert_eq!(
        missing, said,
        "the gap in seq is what the stream says was lost"
    );
    assert_eq!(
        sum(&m, "tracer_export_dropped_events_total", None) as u64,
        said
    );
}

#[test]
fn rotation_under_a_steady_stream_keeps_every_event_once() {
    if !privileged("rotation_under_a_steady_stream_keeps_every_event_once") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let file = work.path().join("events.log");
    let tag = format!("rot-{}", std::process::id());
    let port = free_port();
    let agent = Agent::start(&[
        "--export-filename",
        file.to_str().expect("utf-8"),
        "--export-file-max-size-mb",
        "1",
        "--export-file-max-backups",
        "50",
        "--metrics-server",
        &format!("127.0.0.1:{port}"),
    ]);
    const N: usize = 1500;
    let script = format!("for i in $(seq {N}); do /bin/true {tag} $i; done; /bin/true {tag}-done");
    let mut workload = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .spawn()
        .expect("sh");
    // Scraped while the workload runs: the counters add up at every scrape.
    let mut scrapes = 0;
    while workload.try_wait().expect("wait").is_none() {
        assert_adds_up_so_far(&scrape(port), "export_file");
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(workload.wait().expect("sh").success());
    assert!(scrapes > 0);
    assert_adds_up(&scrape(port), "export_file");
    // The last line may be in a backup: a write that ends past the size bound rotates.
    let done = format!("{tag}-done");
    let written = || {
        std::fs::read_dir(work.path())
            .expect("dir")
            .flatten()
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains(&done)
            })
    };
    let start = Instant::now();
    while !written() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    // The backups, oldest first, then the file.
    let mut backups: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(work.path())
        .expect("dir")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("events.log.")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    backups.sort();
    assert!(backups.len() >= 2, "it rotated: {backups:?}");
    let mut text = String::new();
    for (_, path) in &backups {
        text.push_str(&std::fs::read_to_string(path).expect("a backup"));
    }
    text.push_str(&std::fs::read_to_string(&file).expect("the file"));
    let s = seqs(&text);
    let want: Vec<u64> = (1..=s.len() as u64).collect();
    assert_eq!(s, want, "every line once, in order, none missing");
    // Each of our processes: one exec and one exit.
    let mut per: HashMap<(String, String), usize> = HashMap::new();
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).expect("json");
        for kind in ["process_exec", "process_exit"] {
            if let Some(args) = v[kind]["process"]["arguments"].as_str()
                && let Some(i) = args.strip_prefix(&format!("{tag} "))
            {
                *per.entry((kind.to_owned(), i.to_owned())).or_default() += 1;
            }
        }
    }
    assert!(
        !text.contains("\"event_loss\""),
        "the ring buffer kept up (else the count below would not hold)"
    );
    assert_eq!(per.len(), 2 * N, "an exec and an exit of each");
    assert!(per.values().all(|&n| n == 1), "each once");
}

/// Waits until `done` holds of the receiver's records.
fn wait_records(
    receiver: &integration::otlp::Receiver,
    what: &str,
    done: impl Fn(&[integration::otlp::Received]) -> bool,
) -> Vec<integration::otlp::Received> {
    let start = Instant::now();
    loop {
        let r = receiver.records();
        if done(&r) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {} records",
            r.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The received record whose body is an event of `kind` with these process arguments.
fn record_of<'a>(
    records: &'a [integration::otlp::Received],
    kind: &str,
    args: &str,
) -> Option<&'a integration::otlp::Received> {
    records
        .iter()
        .find(|r| r.body()[kind]["process"]["arguments"] == args)
}

#[test]
fn otlp_beside_json_with_the_same_filters_and_numbers_and_an_outage() {
    if !privileged("otlp_beside_json_with_the_same_filters_and_numbers_and_an_outage") {
        return;
    }
    let mut receiver = integration::otlp::Receiver::start();
    let port = free_port();
    let tag = format!("otlp-{}", std::process::id());
    let agent = Agent::start(&[
        "--otlp-endpoint",
        &receiver.endpoint(),
        "--otlp-protocol",
        "grpc",
        "--otlp-queue-size",
        "20",
        "--export-allowlist",
        &format!("{{\"arguments_regex\": [\"^{tag}\", \"^tracer-sync-\"]}}"),
        "--redaction-filters",
        r#"{"redact": ["--token=(\\S+)"]}"#,
        "--metrics-server",
        &format!("127.0.0.1:{port}"),
    ]);
    let (pid, _) =
        integration::run(Command::new("/bin/true").args([&format!("{tag}-a"), "--token=s3cret"]));
    let events = agent.sync();
    let args = format!("{tag}-a --token=*****");
    let json_exec = of_kind(&events, "process_exec")
        .into_iter()
        .find(|e| e["process"]["pid"] == pid)
        .expect("the exec on stdout")
        .clone();
    assert_eq!(json_exec["process"]["arguments"], args.as_str());
    let records = wait_records(&receiver, "the exec and exit", |r| {
        record_of(r, "process_exec", &args).is_some()
            && record_of(r, "process_exit", &args).is_some()
    });
    let exec = record_of(&records, "process_exec", &args).expect("exec record");
    // The same event, redacted the same, with the same number, in both sinks.
    let line = events
        .iter()
        .find(|e| e["process_exec"]["process"]["pid"] == pid)
        .expect("the line");
    assert_eq!(exec.body(), *line, "the body is the JSON line");
    assert_eq!(
        exec.seq().map(|s| s.to_string()),
        line["seq"].as_str().map(str::to_owned)
    );
    assert_eq!(exec.attr("process.pid"), serde_json::json!(pid));
    assert_eq!(exec.attr("event.name"), "process_exec");
    assert_eq!(
        exec.attr("process.executable.path"),
        json_exec["process"]["binary"]
    );
    assert!(
        !records
            .iter()
            .any(|r| r.body().to_string().contains("s3cret")),
        "the secret reached the collector"
    );
    assert!(
        records
            .iter()
            .all(|r| r.body()["process_exec"]["process"]["arguments"]
                .as_str()
                .is_none_or(|a| a.starts_with(&tag) || a.starts_with("tracer-sync-"))),
        "the allowlist applies to OTLP too"
    );
    assert_eq!(
        exec.resource_attributes().get("service.name"),
        Some(&serde_json::json!("tracer"))
    );

    // The collector goes away while 60 processes run (120 events, a queue of 20).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(receiver.stop());
    let script = format!("for i in $(seq 60); do /bin/true {tag}-down $i; done");
    sh(&script);
    agent.sync();
    let start = Instant::now();
    while sum(
        &scrape(port),
        "tracer_export_dropped_events_total",
        Some("sink=\"otlp\""),
    ) == 0.0
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no OTLP drops counted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    receiver.restart();
    // Back: the queue drains, and the stream says what the collector missed, in both
    // sinks.
    let start = Instant::now();
    let loss = loop {
        let events = agent.events();
        if let Some(l) = of_kind(&events, "event_loss")
            .into_iter()
            .find(|l| l["where"] == "otlp")
        {
            break l.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no event_loss for otlp"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let said: u64 = loss["count"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .expect("count");
    let records = wait_records(&receiver, "the otlp event_loss", |r| {
        r.iter().any(|r| r.body()["event_loss"]["where"] == "otlp")
    });
    let m = scrape(port);
    assert_adds_up(&m, "otlp");
    assert_adds_up(&m, "stdout");
    let dropped = sum(
        &m,
        "tracer_export_dropped_events_total",
        Some("sink=\"otlp\""),
    ) as u64;
    assert!(
        said > 0 && said <= dropped,
        "{said} said, {dropped} dropped"
    );
    // Every event on stdout is at the collector unless it was dropped: the seqs missing
    // there are exactly the drops, which the last event_loss the collector got totals
    // (those said while it was down went into the full queue, and are among them).
    let events = agent.events();
    let json_seqs: BTreeSet<i64> = events
        .iter()
        .filter_map(|e| e["seq"].as_str()?.parse().ok())
        .collect();
    let reached = records
        .iter()
        .filter(|r| r.body()["event_loss"]["where"] == "otlp")
        .filter_map(|r| r.seq())
        .max()
        .expect("an otlp event_loss at the collector");
    let total: u64 = events
        .iter()
        .find(|e| e["seq"].as_str() == Some(&reached.to_string()))
        .and_then(|e| e["event_loss"]["total_lost"].as_str()?.parse().ok())
        .expect("the collector's event_loss on stdout");
    let otlp_seqs: BTreeSet<i64> = records.iter().filter_map(|r| r.seq()).collect();
    let last = *otlp_seqs.iter().max().expect("some");
    let missing = json_seqs
        .iter()
        .filter(|s| **s <= last && !otlp_seqs.contains(s))
        .count() as u64;
    assert_eq!(missing, total, "missing at the collector = said lost");
    let (status, _, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

/// A collector that never answers keeps the OTLP queue full: its drops are said in the
/// JSON stream all the same (`event_loss` where `otlp`), and the counters still add up.
#[test]
fn a_dead_collector_is_said_in_the_json_stream() {
    if !privileged("a_dead_collector_is_said_in_the_json_stream") {
        return;
    }
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    // Nothing listens there.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let agent = Agent::start(&[
        "--otlp-endpoint",
        &endpoint,
        "--otlp-protocol",
        "http/protobuf",
        "--otlp-queue-size",
        "1",
        "--loss-report-interval-ms",
        "100",
        "--metrics-server",
        &metrics,
    ]);
    let start = Instant::now();
    let loss = loop {
        run_true(&["dead-collector"]);
        let events = agent.sync();
        if let Some(l) = of_kind(&events, "event_loss")
            .into_iter()
            .find(|l| l["where"] == "otlp")
        {
            break l.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no event_loss for otlp while the collector is dead:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let count: u64 = loss["count"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .expect("count");
    assert!(count > 0, "{loss}");
    assert!(
        loss["reason"]
            .as_str()
            .is_some_and(|r| r.contains("--otlp-queue-size")),
        "{loss}"
    );
    let m = scrape(port);
    assert_adds_up(&m, "otlp");
    assert_adds_up(&m, "stdout");
    let (status, _, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn otlp_over_http_from_the_environment() {
    if !privileged("otlp_over_http_from_the_environment") {
        return;
    }
    let receiver = integration::otlp::Receiver::start();
    let tag = format!("otlp-http-{}", std::process::id());
    let endpoint = receiver.endpoint();
    let agent = Agent::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    );
    run_true(&[&tag]);
    let records = wait_records(&receiver, "the exec", |r| {
        record_of(r, "process_exec", &tag).is_some()
    });
    let exec = record_of(&records, "process_exec", &tag).expect("exec");
    assert_eq!(exec.via, integration::otlp::Via::Http);
    assert_eq!(
        exec.attr("process.command_args"),
        serde_json::json!(["/usr/bin/true", tag])
    );
    let (status, _, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("otlp: exporting events to {endpoint}")),
        "{stderr}"
    );
}

/// The metrics server bounds its connections: a flood of idle ones neither takes the
/// agent's file descriptors (at most 256 are kept, each closed after 5 s without a
/// request) nor keeps the probes out once they are closed.
#[test]
fn idle_metrics_connections_are_bounded() {
    if !privileged("idle_metrics_connections_are_bounded") {
        return;
    }
    let port = integration::metrics::free_port();
    let agent = Agent::start(&["--metrics-server", &format!("127.0.0.1:{port}")]);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", agent.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = fds();
    let idle: Vec<std::net::TcpStream> = (0..600)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(idle.len() >= 500, "{} connections made", idle.len());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let during = fds();
    assert!(
        during <= before + 256 + 8,
        "{before} descriptors before, {during} with {} idle connections",
        idle.len()
    );
    // Past the idle timeout they are closed, and a probe gets through.
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert!(fds() <= before + 8, "{} descriptors after", fds());
    assert_eq!(get(port, "/healthz").0, 200);
    drop(idle);
    let (status, _, _) = agent.stop();
    assert!(status.success());
}
