//! `cargo xtask fuzz [--seconds N] [--runs M] [--jobs J] [--target NAME]...`: the fuzz
//! targets of `fuzz/` (cargo-fuzz, libFuzzer, on the nightly), each on its seed corpus.
//!
//! - Installs `cargo-fuzz` when it is missing (the nightly's `rust-src` is `setup`'s).
//! - Builds each target with debug assertions and overflow checks (cargo-fuzz's
//!   default), and with AddressSanitizer only where the code under test has `unsafe`
//!   (the record decoder, which reads records in place): the parsers are safe Rust, where
//!   no memory error can happen, and run three to eight times faster without it
//!   ([`sanitizer`]). The two builds have target directories of their own, under
//!   `target/fuzz-build/`, so neither rebuilds the other.
//! - Builds the seed corpora in `target/fuzz-corpus/TARGET/` (not committed): the
//!   project's policies and the shared Tetragon examples (as YAML, and as the JSON
//!   objects the API server would send), the filter examples of the unit tests and the
//!   README, OTLP and metrics settings, and well-formed ring-buffer records built from
//!   `tracer-common`'s types. What libFuzzer adds stays there for the next run.
//! - Runs J targets at a time (the number of CPUs by default), each for N seconds (or M
//!   inputs, whichever comes first), and prints per target the inputs run, exec/s, the
//!   corpus's size and the crashes; fails when a target crashed, naming the input it
//!   saved (under `fuzz/artifacts/TARGET/`).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};
use serde::Deserialize as _;

use crate::setup::{on_path, status, workspace_root};

/// The targets, as `fuzz/Cargo.toml` names them.
pub const TARGETS: [&str; 8] = [
    "policy_yaml",
    "policy_object",
    "export_filter",
    "field_filter",
    "redaction",
    "otlp_config",
    "metrics_addr",
    "decode",
];

pub struct Options {
    /// Each target's time limit.
    pub seconds: u64,
    /// Each target's input limit.
    pub runs: Option<u64>,
    /// Only these targets (all when empty).
    pub targets: Vec<String>,
    /// How many targets run at once (the number of CPUs when `None`).
    pub jobs: Option<usize>,
}

/// The sanitizer a target is built with: AddressSanitizer where the code it drives reads
/// memory through `unsafe` (the decoder's in-place reads of records); none for the
/// parsers, which are safe Rust (a memory error there would be the compiler's or a
/// dependency's `unsafe`, which their own fuzzing covers).
pub fn sanitizer(target: &str) -> &'static str {
    match target {
        "decode" => "address",
        _ => "none",
    }
}

/// Where the targets built with `sanitizer` go.
fn build_dir(sanitizer: &str) -> PathBuf {
    workspace_root()
        .join("target")
        .join("fuzz-build")
        .join(sanitizer)
}

/// One target's run.
struct Report {
    target: String,
    runs: u64,
    exec_per_sec: u64,
    secs: f64,
    corpus: usize,
    /// The inputs libFuzzer saved as crashing (or hanging, or leaking).
    artifacts: Vec<String>,
    ok: bool,
}

pub fn fuzz(opts: &Options) -> anyhow::Result<()> {
    for t in &opts.targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!("no fuzz target `{t}`: choose among {}", TARGETS.join(", "));
        }
    }
    let targets: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| opts.targets.is_empty() || opts.targets.iter().any(|w| w == t))
        .collect();
    cargo_fuzz()?;
    let corpus_root = workspace_root().join("target").join("fuzz-corpus");
    corpora(&corpus_root)?;
    // One build per sanitizer; `cargo fuzz build` takes one target, or none for all.
    let mut sanitizers: Vec<&str> = targets.iter().map(|t| sanitizer(t)).collect();
    sanitizers.sort_unstable();
    sanitizers.dedup();
    for s in sanitizers {
        let group: Vec<&str> = targets
            .iter()
            .copied()
            .filter(|t| sanitizer(t) == s)
            .collect();
        eprintln!(
            "xtask: building the fuzz targets {} (cargo +nightly fuzz build --sanitizer {s})",
            group.join(", ")
        );
        let mut build = nightly_fuzz();
        build.arg("build");
        fuzz_build_args(&mut build, s);
        if let [one] = group[..] {
            build.arg(one);
        }
        status(&mut build)?;
    }
    let logs = workspace_root().join("target").join("fuzz-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let jobs = opts
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let limit = match opts.runs {
        Some(m) => format!("{} s or {m} inputs", opts.seconds),
        None => format!("{} s", opts.seconds),
    };
    // `jobs` workers take the targets in order.
    let queue = std::sync::Mutex::new(targets.iter().copied());
    let reports = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(targets.len()) {
            scope.spawn(|| {
                loop {
                    let next = queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .next();
                    let Some(target) = next else { break };
                    eprintln!("xtask: fuzzing {target} ({limit})");
                    let r = run(target, opts, &corpus_root.join(target), &logs);
                    reports
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((target, r));
                }
            });
        }
    });
    let mut done = reports
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // In the targets' order, whatever order they ended in.
    done.sort_by_key(|(t, _)| TARGETS.iter().position(|x| x == t));
    let mut reports = Vec::new();
    for (_, r) in done {
        reports.push(r?);
    }
    eprintln!();
    eprintln!(
        "{:<14} {:>12} {:>9} {:>8} {:>7}  result",
        "target", "inputs", "exec/s", "time s", "corpus"
    );
    for r in &reports {
        eprintln!(
            "{:<14} {:>12} {:>9} {:>8.0} {:>7}  {}",
            r.target,
            r.runs,
            r.exec_per_sec,
            r.secs,
            r.corpus,
            if r.ok {
                "no crash".to_owned()
            } else if r.artifacts.is_empty() {
                format!(
                    "FAILED (see {})",
                    logs.join(format!("{}.log", r.target)).display()
                )
            } else {
                format!("CRASH: {}", r.artifacts.join(", "))
            }
        );
    }
    let failed: Vec<&Report> = reports.iter().filter(|r| !r.ok).collect();
    if failed.is_empty() {
        return Ok(());
    }
    let crashed: Vec<&&Report> = failed.iter().filter(|r| !r.artifacts.is_empty()).collect();
    let Some(first) = crashed.first() else {
        // Stopped by a signal, or libFuzzer could not start: no input to replay.
        let names: Vec<&str> = failed.iter().map(|r| r.target.as_str()).collect();
        bail!(
            "fuzzing did not finish: {} (no crash saved; see its log in {})",
            names.join(", "),
            logs.display()
        );
    };
    let mut msg = String::from("fuzzing found crashes:");
    for r in &crashed {
        let _ = write!(msg, " {} ({})", r.target, r.artifacts.join(", "));
    }
    let _ = write!(
        msg,
        "; reproduce one with `cd fuzz && cargo +nightly fuzz run --sanitizer {} {} ARTIFACT`",
        sanitizer(&first.target),
        first.target
    );
    bail!(msg)
}

/// `cargo fuzz` of the nightly, in `fuzz/`.
fn nightly_fuzz() -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo", "fuzz"])
        .current_dir(workspace_root().join("fuzz"));
    c
}

/// The build options `cargo fuzz build` and `cargo fuzz run` must agree on.
fn fuzz_build_args(cmd: &mut Command, sanitizer: &str) {
    cmd.args(["--sanitizer", sanitizer])
        .arg("--target-dir")
        .arg(build_dir(sanitizer));
}

/// Installs cargo-fuzz when `cargo fuzz` is not there.
fn cargo_fuzz() -> anyhow::Result<()> {
    if on_path("cargo-fuzz") {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    status(Command::new("rustup").args([
        "run",
        "nightly",
        "cargo",
        "install",
        "cargo-fuzz",
        "--locked",
    ]))?;
    if !on_path("cargo-fuzz") {
        bail!("cargo-fuzz was installed but is not on PATH; is ~/.cargo/bin on PATH?");
    }
    Ok(())
}

fn run(target: &str, opts: &Options, corpus: &Path, logs: &Path) -> anyhow::Result<Report> {
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut cmd = nightly_fuzz();
    cmd.arg("run");
    fuzz_build_args(&mut cmd, sanitizer(target));
    cmd.arg(target)
        .arg(corpus)
        .arg("--")
        .arg(format!("-max_total_time={}", opts.seconds))
        // A hang is an input that takes more than 10 s.
        .arg("-timeout=10")
        .arg("-print_final_stats=1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(m) = opts.runs {
        cmd.arg(format!("-runs={m}"));
    }
    let started = Instant::now();
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let secs = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log_path)
        .with_context(|| format!("cannot read {}", log_path.display()))?;
    let stat = |name: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter_map(|v| v.trim().trim_start_matches(':').trim().parse::<u64>().ok())
            .next_back()
    };
    let artifacts: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once("Test unit written to "))
        .map(|(_, path)| {
            let path = path.trim();
            // cargo-fuzz runs libFuzzer in fuzz/: its paths are relative to it.
            let p = PathBuf::from(path);
            if p.is_absolute() {
                path.to_owned()
            } else {
                workspace_root().join("fuzz").join(p).display().to_string()
            }
        })
        .collect();
    if !st.success() {
        // The end of the log: the panic's message and the input.
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        for l in tail.iter().rev() {
            eprintln!("  | {l}");
        }
    }
    Ok(Report {
        target: target.to_owned(),
        runs: stat("stat::number_of_executed_units").unwrap_or(0),
        exec_per_sec: stat("stat::average_exec_per_sec").unwrap_or(0),
        secs,
        corpus: std::fs::read_dir(corpus).map_or(0, |d| d.count()),
        artifacts,
        ok: st.success(),
    })
}

/// Writes the seed corpora under `root`, one directory per target.
fn corpora(root: &Path) -> anyhow::Result<()> {
    let policies = policy_files()?;
    let mut objects = Vec::new();
    for (name, text) in &policies {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            // Some examples are not YAML this parser takes: the YAML seeds keep them.
            let Ok(value) = serde_json::Value::deserialize(doc) else {
                continue;
            };
            if value.is_object() {
                objects.push((format!("{name}-{i}.json"), serde_json::to_vec(&value)?));
            }
        }
    }
    let yaml: Vec<(String, Vec<u8>)> = policies
        .into_iter()
        .map(|(n, t)| (n, t.into_bytes()))
        .collect();
    seeds(root, "policy_yaml", &yaml)?;
    seeds(root, "policy_object", &objects)?;
    seeds(root, "export_filter", &texts(EXPORT_FILTERS))?;
    seeds(root, "field_filter", &texts(FIELD_FILTERS))?;
    seeds(root, "redaction", &texts(REDACTIONS))?;
    seeds(root, "otlp_config", &texts(OTLP))?;
    seeds(root, "metrics_addr", &texts(METRICS_ADDRS))?;
    seeds(root, "decode", &records::seeds())?;
    Ok(())
}

/// The policies: `policies/*.yaml` and the shared Tetragon examples (`*.yaml` under
/// `../shared/conformance/tetragon/`, when it is there), as (seed name, text).
fn policy_files() -> anyhow::Result<Vec<(String, String)>> {
    let root = workspace_root();
    let mut files = Vec::new();
    yaml_files(&root.join("policies"), &mut files)?;
    let shared = root.join("../shared/conformance/tetragon");
    if shared.is_dir() {
        yaml_files(&shared, &mut files)?;
    } else {
        eprintln!(
            "xtask: {} is not there: the policy corpora have the project's policies only",
            shared.display()
        );
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let name = p
                .strip_prefix(&root)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace(['/', '.'], "_");
            Ok((name, text))
        })
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn texts(list: &[&str]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .enumerate()
        .map(|(i, t)| (format!("example-{i}"), t.as_bytes().to_vec()))
        .collect()
}

/// Writes each seed as `DIR/seed-NAME` (overwriting the last run's seeds, keeping what
/// libFuzzer added).
fn seeds(root: &Path, target: &str, seeds: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, bytes) in seeds {
        let path = dir.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `--export-allowlist`, NUL, `--export-denylist`, NUL, an event (the target's input).
const EXPORT_FILTERS: &[&str] = &[
    "{\"event_set\":[\"PROCESS_EXEC\"]}\0\0",
    "{\"binary_regex\":[\"^/usr/bin/\", \"sh$\"]}\n# a comment\n{\"pid\":[42]}\0{\"namespace\":[\"kube-system\"]}\0",
    "{\"pod_regex\":[\"^web-\"],\"namespace_regex\":[\"def.*\"]}\0{\"labels\":[\"app=web,env in (prod)\"]}\0",
    "{\"labels\":[\"app=web\",\"!debug\",\"tier notin (back)\",\"app\"]}\0{\"policy_names\":[\"p\"]}\0",
    "{\"container_id\":[\"^0123\"],\"container_name_regex\":[\"nginx\"]}\0{\"in_init_tree\":true}\0",
    "{\"arguments_regex\":[\"--password\"],\"parent_arguments_regex\":[\"-c\"]}\0{\"parent_binary_regex\":[\"bash\"]}\0",
    "{\"ancestor_binary_regex\":[\"/bin/sh\"]}\0{\"health_check\":true}\0{\"process_exec\":{\"process\":{\"binary\":\"/bin/sh\"},\"ancestors\":[{\"binary\":\"/bin/sh\"}]}}",
    "\0{\"event_set\":[\"PROCESS_KPROBE\",\"process_exit\"]}\0{\"process_kprobe\":{\"process\":{\"pid\":7},\"policy_name\":\"p\"}}",
    "{\"binary\":[\"x\"]}\0\0",
    "{\"pid_set\":[1]}\0{\"cel_expression\":[\"true\"]}\0",
];

/// `--field-filters`, NUL, an event.
const FIELD_FILTERS: &[&str] = &[
    "{\"fields\":\"process.binary,process.pod.name\",\"action\":\"INCLUDE\"}\0",
    "{\"fields\": \"process.binary,process.pod.name\", \"event_set\": [\"PROCESS_EXEC\"], \"invert_event_set\": false, \"action\": \"INCLUDE\"}\0",
    "{\"fields\":\"process.arguments,parent\",\"event_set\":[\"PROCESS_EXEC\"],\"invert_event_set\":true,\"action\":\"EXCLUDE\"}\n{\"fields\":\"process\",\"action\":\"INCLUDE\"}\0{\"process_exec\":{\"process\":{\"binary\":\"/bin/ls\",\"arguments\":\"-l\",\"pid\":1}},\"node_name\":\"n\",\"time\":\"t\"}",
    "{\"fields\":\"args.file_arg.path,function_name\",\"event_set\":[\"process_kprobe\"],\"action\":\"INCLUDE\"}\0",
    "{\"fields\":\"\",\"action\":\"EXCLUDE\"}\0",
];

/// `--redaction-filters`, NUL, an event.
const REDACTIONS: &[&str] = &[
    "{\"redact\": [\"--password(?:\\\\s+|=)(\\\\S*)\"], \"binary_regex\": [\"mysql$\"]}\0",
    "{\"redact\": [\"--password(?:\\\\s+|=)(\\\\S*)\"]}\n{\"redact\": [\"token=[^ ]*\"], \"binary_regex\": [\"curl$\"]}\0{\"process_exec\":{\"process\":{\"binary\":\"/usr/bin/mysql\",\"arguments\":\"-u root --password hunter2 --password=x2 db token=abc\"},\"parent\":{\"binary\":\"/usr/bin/curl\",\"arguments\":\"-H token=abc --password=p\"}}}",
    "{\"redact\": [\"(?:PASSWORD|TOKEN)=(.*)\", \"--key=(\\\\w+)\"]}\0{\"process_kprobe\":{\"process\":{\"binary\":\"/app\",\"arguments\":\"\",\"environment_variables\":[{\"Key\":\"DB_PASSWORD\",\"Value\":\"hunter2\"},{\"Key\":\"API_TOKEN\",\"Value\":\"a=b\"}]},\"ancestors\":[{\"binary\":\"/bin/sh\",\"arguments\":\"-c \\\"run --key=s3cret\\\"\"}]}}",
    "{\"binary_regex\": [\"x\"]}\0",
    "\n{\"redact\": [\"(\"]}\0",
];

/// The lines: `--otlp-endpoint`, `--otlp-protocol`, then OTEL_EXPORTER_OTLP_ENDPOINT,
/// _LOGS_ENDPOINT, _PROTOCOL, _LOGS_PROTOCOL, _HEADERS, _LOGS_HEADERS, _TIMEOUT,
/// _LOGS_TIMEOUT (an empty line: not given).
const OTLP: &[&str] = &[
    "http://collector:4318\ngrpc\n",
    "https://collector.example:4317/\ngrpc\n\n\n\n\napi-key=secret%20value,x-tenant=a\n\n5000\n",
    "\n\nhttp://localhost:4318\n\nhttp/protobuf\n\nk=v\n\n250\n",
    "\n\n\nhttp://localhost:4318/v1/logs\n\ngrpc\n\nAuthorization=Bearer%20x\n\n1000",
    "http://[::1]:4318/custom/path\nhttp/json\n",
    "ftp://nope\n\n\n\n\n\nbad header\n\n\n-1",
];

const METRICS_ADDRS: &[&str] = &[
    ":2112",
    "127.0.0.1:2112",
    "0.0.0.0:0",
    "[::1]:9090",
    "[fe80::1%2]:80",
    "localhost:2112",
    ":99999",
];

/// Well-formed ring-buffer records, as the kernel programs write them.
mod records {
    use tracer_common::{
        event::{
            ENV_TRUNC, EXEC_SCRIPT, EXEC_TRUNC_ARGS, EnvEvent, EventHeader, EventKind, ExecEvent,
            ExitEvent, ForkEvent,
        },
        policy::{ARG_INT, ARG_USER_STRING, ArgValue, SockValue, TracepointEvent},
    };

    /// The bytes of a record.
    fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: the records are `repr(C)` plain data without padding (tracer-common
        // says so of every type it defines): every byte is initialised.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn header(kind: EventKind) -> EventHeader {
        EventHeader {
            kind: kind as u32,
            tid: 42,
            ktime_ns: 1000,
            pid: 42,
            _pad: 0,
            cgroup_id: 7,
        }
    }

    fn put(dst: &mut [u8], src: &[u8]) -> u32 {
        dst[..src.len()].copy_from_slice(src);
        src.len() as u32
    }

    fn exec(flags: u32, args: &[u8]) -> ExecEvent {
        // SAFETY: ExecEvent is plain data; all zeroes is a valid value.
        let mut ev: ExecEvent = unsafe { std::mem::zeroed() };
        ev.header = header(EventKind::Exec);
        ev.ppid = 1;
        ev.uid = 1000;
        ev.auid = u32::MAX;
        ev.flags = flags;
        ev.filename_len = put(&mut ev.filename, b"./run\0");
        ev.binary_len = put(&mut ev.binary, b"true\0bin\0usr\0");
        ev.cwd_len = put(&mut ev.cwd, b"tmp\0");
        ev.args_len = put(&mut ev.args, args);
        ev
    }

    pub fn seeds() -> Vec<(String, Vec<u8>)> {
        let mut out = vec![
            ("exec".into(), bytes_of(&exec(0, b"./run\0a b\0\0c\0"))),
            (
                "exec-script-truncated".into(),
                bytes_of(&exec(EXEC_SCRIPT | EXEC_TRUNC_ARGS, b"/bin/sh\0./x.sh\0ar")),
            ),
            (
                "fork".into(),
                bytes_of(&ForkEvent {
                    header: header(EventKind::Fork),
                    ppid: 4,
                    ns_pid: 9,
                    start_ns: 9,
                }),
            ),
            (
                "exit".into(),
                bytes_of(&ExitEvent {
                    header: header(EventKind::Exit),
                    exit_code: 9,
                    _pad: 0,
                    start_ns: 9,
                }),
            ),
        ];
        // SAFETY: EnvEvent is plain data; all zeroes is a valid value.
        let mut env: EnvEvent = unsafe { std::mem::zeroed() };
        env.header = header(EventKind::Env);
        env.len = put(&mut env.env, b"PATH=/bin\0A=b=c\0junk\0\0LONG=abc");
        env.flags = ENV_TRUNC;
        out.push(("env".into(), bytes_of(&env)));
        // SAFETY: TracepointEvent is plain data; all zeroes is a valid value.
        let mut tp: TracepointEvent = unsafe { std::mem::zeroed() };
        tp.header = header(EventKind::Tracepoint);
        tp.policy_id = 1;
        tp.hook = 2;
        tp.nargs = 3;
        tp.args[0] = ArgValue {
            kind: u32::from(ARG_INT),
            len: 0,
            int: 3,
            str: [0; tracer_common::policy::STRING_MAX],
        };
        tp.args[1].kind = u32::from(ARG_USER_STRING);
        tp.args[1].len = put(&mut tp.args[1].str, b"/etc/shadow");
        // A socket's value, at the start of the argument's bytes.
        let mut saddr = [0; 16];
        saddr[10..].copy_from_slice(&[0xff, 0xff, 127, 0, 0, 1]);
        tp.args[2].len = put(
            &mut tp.args[2].str,
            &bytes_of(&SockValue {
                family: 2,
                protocol: 6,
                sport: 8080,
                dport: 80,
                state: 1,
                saddr,
                daddr: saddr,
                ..SockValue::default()
            }),
        );
        out.push(("tracepoint".into(), bytes_of(&tp)));
        out
    }
}
