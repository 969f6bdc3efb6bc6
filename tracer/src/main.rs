//! `tracer`: the agent's command line.

use std::{num::NonZeroUsize, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use tracer::{agent, process::cache::DEFAULT_CAPACITY};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "tracer",
    version,
    about = "Runtime security tracer: process, syscall and network events from eBPF, as JSON lines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: load the eBPF programs and write one JSON line per event to stdout.
    /// Needs root (CAP_BPF and CAP_PERFMON). Ctrl-C or SIGTERM stops it after it has
    /// written what the kernel already recorded.
    Run(Box<RunArgs>),
    /// Work with TracingPolicy documents.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Say what this kernel runs: each program type (loaded, attached and unloaded again
    /// to find out, with the reason when it does not work), where the process hooks run,
    /// and where each hook of the given policies would run. Traces nothing. Needs root.
    /// Exits 1 when a policy would be refused.
    Status(StatusArgs),
    /// Exit 0 if the agent is ready: the file its `--ready-file` names exists and the
    /// process it names (`ready pid=N`) is alive, so that a file left by a killed agent
    /// does not pass (a readiness probe with no shell in the image; run it in the agent's
    /// pid namespace: its container).
    Ready {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Show the agent's events for people: one compact line per event, or with `-o json`
    /// the selected JSON lines unchanged. Reads files (gzipped backups too), stdin
    /// (`kubectl logs ds/tracer | tracer events`), or follows the agent's export file
    /// across its rotations (`--follow`). Filters are ANDed; the values of one filter,
    /// repeated or separated by commas, are ORed. A line that is not an event is reported
    /// on stderr with its place, and skipped.
    Events(EventsArgs),
    /// Detach and remove the kernel side an agent left pinned (`--pin-dir`): its process
    /// hooks stop recording, and what its ring buffer held for the next agent is dropped
    /// (and counted). Refused while an agent runs on it. Needs root.
    Cleanup {
        /// The directory the agent pinned its set in.
        #[arg(long, value_name = "DIR", default_value = tracer::handover::DEFAULT_DIR)]
        pin_dir: PathBuf,
    },
    /// Print the TracingPolicy and TracingPolicyNamespaced custom resource definitions
    /// (YAML), generated from the types that parse policies (`manifests/crds.yaml`).
    Crds,
    /// Benchmark aid: hold an eBPF program that returns at once on one tracepoint until
    /// SIGINT or SIGTERM (the floor of `cargo xtask bench --only scale`).
    #[command(hide = true)]
    Floor {
        /// SUBSYSTEM/EVENT, as `syscalls/sys_enter_getppid`.
        #[arg(long)]
        tracepoint: String,
        /// Created once the program is attached, removed when it stops.
        #[arg(long, value_name = "FILE")]
        ready_file: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct StatusArgs {
    /// A file of TracingPolicy documents whose hooks to place (repeatable).
    #[arg(long, value_name = "FILE")]
    tracing_policy: Vec<PathBuf>,
    /// As `tracer run --syscall-raw-tracepoints`.
    #[arg(long)]
    syscall_raw_tracepoints: bool,
    /// As `tracer run --disable-kprobes`.
    #[arg(long)]
    disable_kprobes: bool,
    /// As `tracer run --disable-fentry`.
    #[arg(long)]
    disable_fentry: bool,
}

#[derive(clap::Args)]
struct EventsArgs {
    /// Files of JSON lines, read in the order given (gzipped ones too: the agent's
    /// `FILE.N.gz` backups); `-` is stdin. Without any: stdin, unless it is a terminal.
    #[arg(value_name = "FILE", conflicts_with = "follow")]
    files: Vec<PathBuf>,

    /// Follow the agent's export file (`--export-filename`) as `tail -F` does: from its
    /// end, as it grows, and on into the new file at each rotation, no event lost or
    /// shown twice. Runs until stopped (Ctrl-C).
    #[arg(long, short = 'f', value_name = "FILE")]
    follow: Option<PathBuf>,

    /// With --follow: start at the start of the file rather than at its end.
    #[arg(long, requires = "follow")]
    from_start: bool,

    /// `compact`: one line per event, for people; `json`: each selected line unchanged.
    #[arg(short = 'o', long, value_enum, default_value_t = EventsOutput::Compact)]
    output: EventsOutput,

    /// Start each compact line with the event's time.
    #[arg(long)]
    timestamps: bool,

    /// Colour compact lines: `auto` when stdout is a terminal (and NO_COLOR is not set).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    color: ColorWhen,

    /// Only processes in pods of these namespaces.
    #[arg(long, value_name = "NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,

    /// Only processes in pods whose name matches one of these regular expressions
    /// (anywhere in the name; `^web-` anchors it).
    #[arg(long, value_name = "REGEX", value_delimiter = ',')]
    pod: Vec<String>,

    /// Only processes whose binary (`process.binary`) matches one of these regular
    /// expressions.
    #[arg(long, value_name = "REGEX", value_delimiter = ',')]
    binary: Vec<String>,

    /// Only these event types: process_exec, process_exit, process_kprobe,
    /// process_tracepoint, process_uprobe, process_usdt, process_lsm, process_loader,
    /// event_loss, or exec, exit, kprobe, tracepoint, uprobe, usdt, lsm, loader, loss.
    #[arg(short = 'e', long, value_name = "TYPE", value_delimiter = ',')]
    event_types: Vec<String>,

    /// Only events of these tracing policies.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    policy_names: Vec<String>,

    /// Only events outside pods (host processes, and the node's own event_loss).
    #[arg(long, conflicts_with_all = ["namespace", "pod"])]
    host: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum EventsOutput {
    Compact,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check TracingPolicy documents without loading anything. Every error names the file,
    /// line and column, the field and what was expected. Exits 0 only when every document
    /// of every file is valid.
    Validate {
        /// Files of YAML documents (several per file with `---`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Name of this node, written as `node_name` and part of every `exec_id`
    /// [default: the host name].
    #[arg(long, env = "NODE_NAME", value_parser = parse_node_name)]
    node_name: Option<String>,

    /// Most processes the process cache holds; beyond it the least recently used entry
    /// is evicted (and counted). Exited processes leave the cache on their own.
    #[arg(long, default_value_t = NonZeroUsize::new(DEFAULT_CAPACITY).expect("non-zero"))]
    process_cache_size: NonZeroUsize,

    /// Size in bytes of the kernel's event ring buffer (a power of two, at least one page).
    /// Default: 1 MiB per online CPU, between 4 and 64 MiB. Raise it when `event_loss`
    /// events report records lost in bursts.
    #[arg(long, value_parser = parse_ring_size)]
    ring_buffer_size: Option<u32>,

    /// The longest a record waits in the kernel's ring buffer before the agent reads it, in
    /// milliseconds. The agent reads on this timer, and the kernel wakes it early only when
    /// an eighth of the ring buffer is waiting: a burst of events costs one wake-up, not one
    /// each. 0 wakes the agent for every record (lowest latency, most CPU under load).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=1000))]
    ring_buffer_wakeup_ms: u64,

    /// Stop without leaving anything in the kernel, and start without taking over what an
    /// agent left: a restart then misses what happens while no agent runs, and `seq`
    /// starts from 1.
    #[arg(long)]
    no_pin: bool,

    /// Where the process hooks, the ring buffer and its counters stay pinned between two
    /// agents (on the BPF file system, which is mounted on /sys/fs/bpf if nothing is). The
    /// next agent takes them over: nothing that happens in between is lost, and `seq` goes
    /// on. One agent at a time: a second one waits (`--pin-wait-secs`) for the first to stop.
    #[arg(long, value_name = "DIR", default_value = tracer::handover::DEFAULT_DIR, conflicts_with = "no_pin")]
    pin_dir: PathBuf,

    /// Where the agent leaves the processes it knows for the next one when it stops
    /// pinned (so that a process keeps its `exec_id` and details across a restart).
    #[arg(long, value_name = "DIR", default_value = "/run/tracer")]
    state_dir: PathBuf,

    /// How long a starting agent waits for the agent that holds `--pin-dir` to stop, in
    /// seconds (a rolling update starts the new pod as the old one stops).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pin_wait_secs: u64,

    /// Keep the eBPF programs' source line information, so that a verifier log (at
    /// `--log-level debug`, when the kernel refuses a program) names the source line of each
    /// instruction. Off, it is left out when the programs are parsed: about 3.5 MiB less
    /// resident memory.
    #[arg(long)]
    verifier_line_info: bool,

    /// How often to check the kernel's loss counters, in milliseconds. A loss is written as an
    /// `event_loss` event and logged.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    loss_report_interval_ms: u64,

    /// Log level of the agent's own messages on stderr (error, warn, info, debug, trace), or
    /// a filter such as `tracer=debug` (comma-separated directives, each a level or
    /// TARGET=LEVEL).
    #[arg(long, default_value = "info", env = "TRACER_LOG", value_parser = parse_log_level)]
    log_level: String,

    /// A file of TracingPolicy documents to load at start (repeatable). A file that is
    /// missing, or a policy of it that is refused, fails the start (see
    /// `--tracing-policy-optional`).
    #[arg(long, value_name = "FILE")]
    tracing_policy: Vec<PathBuf>,

    /// Load policy files whoever may write them. Without it a policy file (and the
    /// directory holding it) that its group or other users may write, or that is owned
    /// by neither root nor the agent's user, is refused, as sshd's StrictModes does.
    #[arg(long)]
    tracing_policy_insecure_permissions: bool,

    /// Start even when a `--tracing-policy` file does not load (with a warning naming it
    /// and why), rather than failing.
    #[arg(long)]
    tracing_policy_optional: bool,

    /// A directory of TracingPolicy files (`*.yaml`, `*.yml`), loaded at start and kept in
    /// step while the agent runs: files added, changed or removed are applied within a
    /// second. A broken file is reported and refused; running policies keep running.
    #[arg(long, value_name = "DIR")]
    tracing_policy_dir: Option<PathBuf>,

    /// Testing aid: attach program PROGRAM to raw tracepoint EVENT instead of its own
    /// (`sched_process_fork=no_such_event` makes the kernel refuse that hook).
    #[arg(long, hide = true, value_name = "PROGRAM=EVENT", value_parser = parse_override)]
    attach_override: Vec<(String, String)>,

    /// Run the hooks of policies on one syscall (`syscalls/sys_enter_NAME`) on the shared
    /// raw `sys_enter`/`sys_exit` tracepoints, filtered by syscall number in the program,
    /// rather than on their own tracepoints. Cheaper where running a BPF program costs
    /// less than a syscall tracepoint's own check; on the machines measured it costs more.
    #[arg(long)]
    syscall_raw_tracepoints: bool,

    /// Run policies' kprobes on their tracepoint equivalents (`tcp_connect` on
    /// `sock:inet_sock_set_state`) even where the kernel has kprobes.
    #[arg(long)]
    disable_kprobes: bool,

    /// Run policies' kprobes on kprobe programs even where the kernel has fentry: one
    /// program attached to every function, where fentry loads (and the kernel verifies)
    /// a program per function, at some cost per call (see the README).
    #[arg(long)]
    disable_fentry: bool,

    /// Write each process's credentials in full: `process_credentials` with the saved and
    /// filesystem ids and `securebits`, and `cap` (its permitted, effective and
    /// inheritable capabilities by name), as at its exec (as Tetragon's).
    #[arg(long)]
    enable_process_cred: bool,

    /// Write each process's namespaces (`ns`: each one's inode and whether it is the
    /// host's), as at its exec (as Tetragon's).
    #[arg(long)]
    enable_process_ns: bool,

    /// Write each process's environment at its exec (`environment_variables`, as
    /// Tetragon's). The kernel copies at most 8 KiB of it per exec (the flags say
    /// `truncEnv` when it was longer); `--redaction-filters` apply to it. Off by
    /// default: environments hold secrets and make events larger.
    #[arg(long)]
    enable_process_environment_variables: bool,

    /// With `--enable-process-environment-variables`: only these variables
    /// (comma-separated names) are written.
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        requires = "enable_process_environment_variables"
    )]
    filter_environment_variables: Vec<String>,

    /// The cluster's name, written as every event's `cluster_name` (as Tetragon's
    /// `--cluster-name`).
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,

    /// Give events of these types the process's `ancestors` (every ancestor beyond the
    /// parent, nearest first, up to pid 1), as Tetragon's: `base` (exec and exit), and
    /// with it `kprobe`, `tracepoint`, `uprobe`, `lsm`, `usdt`, `loader`; comma-separated.
    #[arg(long, value_name = "TYPES", value_parser = tracer::event::ancestors::parse)]
    enable_ancestors: Option<u8>,

    /// Write the addresses of stack trace entries (`kernelStackTrace`, `userStackTrace`
    /// of a policy's `Post`) too; without it an entry has its symbol, offset and module,
    /// and no address, as Tetragon's.
    #[arg(long)]
    expose_stack_addresses: bool,

    /// The most policy hooks the kernel's maps hold at once, and as many policies, and
    /// filter values of each kind (the maps take memory only for what they hold, and
    /// 16 bytes a slot of their hash tables). Past it a policy is refused, saying so.
    #[arg(long, value_name = "N", default_value_t = tracer::loader::Capacity::default().hooks)]
    policy_capacity: u32,

    /// The most hook points (distinct tracepoints, syscalls and kernel functions that
    /// policies hook) at once: an array of 80 bytes each, allocated at start.
    #[arg(long, value_name = "N", default_value_t = tracer::loader::Capacity::default().hook_points)]
    policy_hook_points: u32,

    /// With a cluster: how long an event of a process in a container waits for the
    /// watcher to learn its pod, in milliseconds; past it the event goes out with
    /// `"pod_unknown": true`.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(0..=300_000))]
    pod_wait_ms: u64,

    /// A file the agent creates once it is tracing (`ready pid=PID`) and removes when it
    /// stops (for a readiness probe: `tracer ready --file FILE`, which also checks that
    /// the pid is alive). One left by an earlier run is removed at start.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,

    /// Append the JSON lines to FILE instead of writing them to stdout, rotated (renamed
    /// to FILE.1, FILE.2, ...) by size and age.
    #[arg(long, value_name = "FILE")]
    export_filename: Option<PathBuf>,

    /// Rotate the export file once it holds this many MiB (0: never by size).
    #[arg(long, value_name = "MB", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    export_file_max_size_mb: u64,

    /// Rotate the export file once it is this old (`30s`, `15m`, `1h`; `0s`: never).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    export_file_rotation_interval: Duration,

    /// How many rotated export files to keep.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=10_000))]
    export_file_max_backups: usize,

    /// Gzip the rotated export files.
    #[arg(long)]
    export_file_compress: bool,

    /// Export only the events that match one of these filters: JSON objects, one per
    /// line, in Tetragon's keys (`{"event_set":["PROCESS_EXEC"],"namespace":["prod"]}`);
    /// `@FILE` reads them from FILE.
    #[arg(long, value_name = "JSON", default_value = "")]
    export_allowlist: String,

    /// Do not export the events that match one of these filters (as the allowlist; deny
    /// wins).
    #[arg(long, value_name = "JSON", default_value = "")]
    export_denylist: String,

    /// Fields to keep or remove per event type: JSON objects, one per line
    /// (`{"fields":"process.binary,process.pod.name","action":"INCLUDE"}`); `@FILE` reads
    /// them from FILE.
    #[arg(long, value_name = "JSON", default_value = "")]
    field_filters: String,

    /// Secrets to redact from process arguments and environment variables: JSON objects, one per line
    /// (`{"redact":["--password(?:\\s+|=)(\\S*)"]}`; what the groups match becomes
    /// `*****`); `@FILE` reads them from FILE.
    #[arg(long, value_name = "JSON", default_value = "")]
    redaction_filters: String,

    /// Export at most this many events a minute (-1: no limit); what is left out is
    /// counted and said in the stream (`rate_limit_info`).
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    export_rate_limit: i64,

    /// Write only what Tetragon's protobuf definition has, so that a strict protobuf JSON
    /// decoder with Tetragon's `.proto` files accepts every line: the tracer's additions
    /// (`seq`, `cgroup_id`, `script`, `host`, `policy_mode`, stack traces on events other
    /// than `process_kprobe`, `process_loader`'s `policy_name`) are left out, and losses
    /// are said in the log and the metrics, not as `event_loss` lines.
    #[arg(long)]
    export_tetragon_strict: bool,

    /// Bytes of events a sink holds while its writes fail (a full disk): past it, events
    /// are dropped, counted, and said in the stream (`event_loss`) once writes work again.
    #[arg(long, value_name = "BYTES", default_value_t = tracer::export::json::MAX_PENDING, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1 << 30))]
    export_buffer_size: usize,

    /// Send the events to an OpenTelemetry collector as OTLP log records: its base URL
    /// (`http://collector:4318`; gRPC: `http://collector:4317` with `--otlp-protocol
    /// grpc`). The `OTEL_EXPORTER_OTLP_*` variables work too; the flags win.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,

    /// `grpc` or `http/protobuf` (the default, as the OTLP specification's).
    #[arg(long, value_name = "PROTOCOL")]
    otlp_protocol: Option<String>,

    /// Records the OTLP exporter holds while the collector is slow or down; past it new
    /// records are dropped, counted and said in the stream (`event_loss`).
    #[arg(long, value_name = "N", default_value_t = tracer::export::otlp::DEFAULT_QUEUE_SIZE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    otlp_queue_size: usize,

    /// Run every stage but encode and write nothing (the pipeline's own cost, for
    /// benchmarks); the metrics still count what would have been exported.
    #[arg(long)]
    export_null: bool,

    /// Serve Prometheus metrics (`/metrics`) and health (`/healthz`, `/readyz`) on ADDR
    /// (`:2112`, `127.0.0.1:2112`).
    #[arg(long, value_name = "ADDR", value_parser = tracer::metrics::parse_addr)]
    metrics_server: Option<std::net::SocketAddr>,
}

/// A flag's filter text: given, or read from `@FILE`.
fn flag_text(flag: &str, value: &str) -> Result<String, String> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{flag} @{path}: cannot read the file: {e}")),
        None => Ok(value.to_owned()),
    }
}

/// The export settings from the flags; every error names the flag, the filter and the
/// fix.
fn export_settings(args: &RunArgs) -> Result<tracer::export::Settings, String> {
    use tracer::export::{fields::FieldFilters, filter::Filters, redact::Redactions};
    let filters = Filters::parse(
        &flag_text("--export-allowlist", &args.export_allowlist)?,
        &flag_text("--export-denylist", &args.export_denylist)?,
    )
    .map_err(|e| e.to_string())?;
    let fields = FieldFilters::parse(&flag_text("--field-filters", &args.field_filters)?)
        .map_err(|e| e.to_string())?;
    let redact = Redactions::parse(&flag_text("--redaction-filters", &args.redaction_filters)?)
        .map_err(|e| e.to_string())?;
    let rate_limit = match args.export_rate_limit {
        -1 => None,
        n if n >= 0 => Some(n as u64),
        n => {
            return Err(format!(
                "--export-rate-limit {n}: a number of events a minute, or -1 for no limit"
            ));
        }
    };
    Ok(tracer::export::Settings {
        filters,
        fields,
        redact,
        rate_limit,
        buffer_bytes: args.export_buffer_size.max(4096),
        tetragon_strict: args.export_tetragon_strict,
        last_seq: 0,
    })
}

/// The longest duration a flag takes: a year.
const MAX_DURATION_SECS: u64 = 366 * 24 * 3600;

/// `30s`, `15m`, `2h`, up to a year.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 30s, 15m or 1h"))?;
    let per = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{s}`: the unit is s, m or h")),
    };
    n.checked_mul(per)
        .filter(|secs| *secs <= MAX_DURATION_SECS)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{s}` is longer than a year (8784h)"))
}

/// The levels `--log-level` takes alone.
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A `--log-level`: levels and TARGET=LEVEL directives, comma-separated. A bare word
/// that is not a level would be read as a target with every level and leave the agent's
/// own errors unlogged, so it is refused.
fn parse_log_level(s: &str) -> Result<String, String> {
    let valid = "a level (off, error, warn, info, debug, trace) or comma-separated \
                 directives such as `info,tracer=debug`";
    for directive in s.split(',').map(str::trim) {
        if directive.is_empty() && s.split(',').count() > 1 {
            continue;
        }
        if !directive.contains('=')
            && !LOG_LEVELS.contains(&directive.to_ascii_lowercase().as_str())
        {
            return Err(format!(
                "`{directive}` is not a log level (--log-level, TRACER_LOG): expected {valid}"
            ));
        }
    }
    EnvFilter::try_new(s).map(|_| s.to_owned()).map_err(|e| {
        format!("`{s}` is not a log filter (--log-level, TRACER_LOG): {e}; expected {valid}")
    })
}

/// A `--node-name`: it is in every event and every `exec_id`, so it must say something.
fn parse_node_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(
            "the node name (--node-name, NODE_NAME) is empty or only white space: give the \
             node's name, or leave both unset for the host name"
                .into(),
        );
    }
    Ok(s.to_owned())
}

fn parse_override(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(p, e)| (p.to_owned(), e.to_owned()))
        .ok_or_else(|| format!("`{s}` is not PROGRAM=EVENT"))
}

/// The ring buffer's default size: 1 MiB per online CPU (every CPU writes to it), as a
/// power of two between 4 and 64 MiB. With the agent reading every 10 ms and woken at an
/// eighth full, that holds bursts of tens of thousands of exec records a second per CPU;
/// the buffer is mapped into the agent twice, so it is also most of its resident memory.
fn default_ring_size() -> u32 {
    let cpus = aya::util::online_cpus().map_or(1, |c| c.len()).max(1);
    let mib = u32::try_from(cpus)
        .unwrap_or(u32::MAX)
        .next_power_of_two()
        .clamp(4, 64);
    mib << 20
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|e| format!("`{s}` is not a size in bytes: {e}"))?;
    if !n.is_power_of_two() || n < 4096 {
        return Err(format!(
            "{n} is not a power of two of at least 4096 (the page size); try {}",
            n.max(4096).next_power_of_two()
        ));
    }
    Ok(n)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Policy(PolicyCommand::Validate { files }) => validate(&files),
        Command::Status(args) => status(args),
        Command::Events(args) => events(args),
        Command::Ready { file } => match ready(&file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("tracer: not ready: {why}");
                ExitCode::FAILURE
            }
        },
        Command::Floor {
            tracepoint,
            ready_file,
        } => match tracer::floor::run(&tracepoint, ready_file.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tracer floor: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Cleanup { pin_dir } => match tracer::handover::cleanup(&pin_dir) {
            Ok(unread) => {
                eprintln!(
                    "tracer: removed {}: its hooks are detached; {unread} records it held unread were dropped",
                    pin_dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tracer cleanup: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Crds => match tracer::policy::crd::crds_yaml() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tracer: cannot write the CRDs as YAML: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Whether the agent that wrote ready file `file` (`ready pid=N`) is alive; why not.
fn ready(file: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{} cannot be read: {e}", file.display()))?;
    let pid = text
        .trim()
        .strip_prefix("ready pid=")
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            format!(
                "{} does not say `ready pid=N` (an agent of an older version, or another file)",
                file.display()
            )
        })?;
    // Signal 0 only asks whether the process exists (EPERM: it does, as another user's).
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => Ok(()),
        Err(e) => Err(format!(
            "{} names pid {pid}, which is not running ({e}): the agent stopped without removing it",
            file.display()
        )),
    }
}

fn events(args: EventsArgs) -> ExitCode {
    use std::io::IsTerminal as _;
    use tracer::view::{self, Input, Output, ViewError, filter};
    let spec = filter::Spec {
        namespaces: args.namespace,
        pods: args.pod,
        binaries: args.binary,
        event_types: args.event_types,
        policy_names: args.policy_names,
        host: args.host,
    };
    let filter = match view::Filter::new(spec) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tracer events: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let color = match args.color {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let options = view::Options {
        output: match args.output {
            EventsOutput::Compact => Output::Compact,
            EventsOutput::Json => Output::Json,
        },
        color,
        timestamps: args.timestamps,
        filter,
    };
    let input = match args.follow {
        Some(path) => Input::Follow {
            path,
            from_start: args.from_start,
        },
        None => Input::Sources(
            args.files
                .into_iter()
                .map(view::input::Source::from_arg)
                .collect(),
        ),
    };
    let mut view = view::View::new(options, stdout.lock(), std::io::stderr());
    match view::run(&mut view, input) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader is gone (`| head`): nothing more to show.
        Err(ViewError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            // What was shown before the error goes out first.
            let _ = view.flush();
            eprintln!("tracer events: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(args: StatusArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let config = tracer::status::Config {
        tracing_policies: args.tracing_policy,
        syscall_raw_tracepoints: args.syscall_raw_tracepoints,
        disable_kprobes: args.disable_kprobes,
        disable_fentry: args.disable_fentry,
    };
    match tracer::status::report(&config) {
        Ok((text, ok)) => {
            print!("{text}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("tracer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    // Where each policy name was first defined: a second definition would replace it.
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    // The kernel's maps as sized by default (`--policy-capacity`, `--policy-hook-points`):
    // the hooks of all the files, and the distinct places they hook.
    let capacity = tracer::loader::Capacity::default();
    let mut hooks_so_far = 0usize;
    let mut said_full = false;
    let mut points = std::collections::HashSet::new();
    for file in files {
        // The agent refuses such a file (unless --tracing-policy-insecure-permissions).
        if let Err(e) = tracer::policy::files::check_permissions(file) {
            eprintln!("warning: the agent would refuse it: {e}");
        }
        match tracer::policy::parse::file(file) {
            Ok(docs) => {
                let ok_before = ok;
                ok = true;
                let names: Vec<&str> = docs
                    .iter()
                    .map(|d| d.policy.metadata.name.as_str())
                    .collect();
                for d in &docs {
                    let name = d.policy.metadata.name.as_str();
                    let here = format!("{}:{}", file.display(), d.first_line);
                    // What the agent refuses without asking the kernel.
                    let twice = tracer::policy::compile::traced_twice(&d.spec);
                    if let Some((hook, e)) = &twice {
                        ok = false;
                        eprintln!("{here}: {}: {e} (the agent refuses the policy)", hook.path);
                    }
                    let hooks = if twice.is_some() {
                        0
                    } else {
                        d.spec.hooks.len()
                    };
                    if hooks_so_far + hooks > capacity.hooks as usize {
                        ok = false;
                        // Said for the first policy past it; the agent refuses the
                        // later ones alike (and what it refuses takes no room).
                        if !said_full {
                            said_full = true;
                            let full = tracer::policy::store::StoreError::Full {
                                policy: name.to_owned(),
                                hooks: hooks_so_far,
                                capacity: capacity.hooks,
                            };
                            eprintln!(
                                "{here}: {full} (with the documents and files before it, \
                                 as the agent loads them at start)"
                            );
                        }
                    } else {
                        hooks_so_far += hooks;
                    }
                    points.extend(tracer::policy::compile::hook_points(&d.spec));
                    if let Some(first) = seen.get(name) {
                        ok = false;
                        eprintln!(
                            "{here}: policy {name} is also defined at {first}: two policies \
                             cannot share a metadata.name (the agent refuses the second)\n  \
                             fix: rename one of them"
                        );
                    } else {
                        seen.insert(name.to_owned(), here);
                    }
                }
                for w in docs.iter().flat_map(|d| &d.warnings) {
                    eprintln!("warning: {w}");
                }
                // Valid documents the agent would refuse make the file not valid.
                if ok {
                    println!("{}: valid ({})", file.display(), names.join(", "));
                }
                ok &= ok_before;
            }
            Err(errors) => {
                ok = false;
                for e in errors {
                    eprintln!("{e}");
                }
            }
        }
    }
    if points.len() > capacity.hook_points as usize {
        eprintln!(
            "warning: the files hook {} distinct places, past the {} hook points the agent \
             holds by default: the hooks past them do not run; raise --policy-hook-points",
            points.len(),
            capacity.hook_points
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(args: RunArgs) -> ExitCode {
    // A ready file left by an agent that was killed says nothing of this one.
    if let Some(f) = &args.ready_file
        && let Err(e) = std::fs::remove_file(f)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!(
            "tracer: --ready-file {}: cannot remove the file left by an earlier run: {e}",
            f.display()
        );
        return ExitCode::FAILURE;
    }
    // Checked when the flags were parsed (`parse_log_level`).
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut export = match export_settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tracer: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `seq` goes on from the file's last line where the kernel kept no later number
    // (the agent's first start after a reboot or `tracer cleanup`, or `--no-pin`).
    if let Some(path) = args.export_filename.as_ref().filter(|_| !args.export_null)
        && let Some(n) = tracer::export::file::last_seq(path)
    {
        tracing::info!(
            "{}: its last line is seq {n}; numbering goes on from there (or from the number the kernel kept, if later)",
            path.display()
        );
        export.last_seq = n;
    }
    let node_name = args.node_name.unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into())
    });
    let otlp = match tracer::export::otlp::OtlpConfig::resolve(
        args.otlp_endpoint.as_deref(),
        args.otlp_protocol.as_deref(),
        &node_name,
    ) {
        Ok(c) => c.map(|mut c| {
            c.queue_size = args.otlp_queue_size;
            c
        }),
        Err(e) => {
            eprintln!("tracer: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.tracing_policy_insecure_permissions {
        tracer::policy::files::allow_insecure_permissions();
    }
    let export_filename = args.export_filename.clone();
    // What every event carries, fixed for the agent's life.
    if let Some(c) = args.cluster_name.clone() {
        tracer::event::set_cluster_name(c);
    }
    tracer::event::ancestors::set(args.enable_ancestors.unwrap_or(0));
    {
        use tracer::event::process_fields::{CRED, NS, set};
        // The host's namespaces are init's; where those cannot be read, the agent's own
        // (it runs in the host's, as the DaemonSet runs it).
        let init = tracer::process::procfs::namespaces(std::path::Path::new("/proc/1"));
        let own = tracer::process::procfs::namespaces(std::path::Path::new("/proc/self"));
        let host = std::array::from_fn(|i| if init[i] != 0 { init[i] } else { own[i] });
        let bits = if args.enable_process_cred { CRED } else { 0 }
            | if args.enable_process_ns { NS } else { 0 };
        set(bits, host);
    }

    let rotation = tracer::export::file::Rotation {
        max_bytes: args.export_file_max_size_mb.saturating_mul(1 << 20),
        interval: (!args.export_file_rotation_interval.is_zero())
            .then_some(args.export_file_rotation_interval),
        max_backups: args.export_file_max_backups,
        compress: args.export_file_compress,
    };
    let config = agent::Config {
        node_name,
        process_cache_size: args.process_cache_size,
        ring_buffer_size: args.ring_buffer_size.unwrap_or_else(default_ring_size),
        ring_buffer_wakeup: Duration::from_millis(args.ring_buffer_wakeup_ms),
        line_info: args.verifier_line_info,
        pin_dir: (!args.no_pin).then(|| args.pin_dir.clone()),
        pin_wait: Duration::from_secs(args.pin_wait_secs),
        state_dir: args.state_dir.clone(),
        loss_report_interval: Duration::from_millis(args.loss_report_interval_ms.max(10)),
        proc_root: PathBuf::from("/proc"),
        cgroup_root: tracer::pods::cgroup::v2_root(),
        attach_overrides: args.attach_override,
        tracing_policies: args.tracing_policy,
        tracing_policy_optional: args.tracing_policy_optional,
        tracing_policy_dir: args.tracing_policy_dir,
        syscall_raw_tracepoints: args.syscall_raw_tracepoints,
        disable_kprobes: args.disable_kprobes,
        disable_fentry: args.disable_fentry,
        policy_capacity: tracer::loader::Capacity {
            hooks: args.policy_capacity.max(1),
            hook_points: args.policy_hook_points.max(2),
        },
        pod_wait: Duration::from_millis(args.pod_wait_ms),
        ready_file: args.ready_file,
        export,
        sink_name: if args.export_null {
            "null"
        } else if export_filename.is_some() {
            "export_file"
        } else {
            "stdout"
        },
        metrics_server: args.metrics_server,
        otlp,
        expose_stack_addresses: args.expose_stack_addresses,
        process_env: args.enable_process_environment_variables.then(|| {
            let names: std::collections::HashSet<String> = args
                .filter_environment_variables
                .iter()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            (!names.is_empty()).then_some(names)
        }),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracer: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Events to stdout, or appended to a file (for a log shipper to tail).
    let out: Box<dyn std::io::Write> = match &export_filename {
        _ if args.export_null => Box::new(std::io::sink()),
        None => Box::new(std::io::stdout()),
        Some(path) => match tracer::export::file::RotatingFile::open(path, rotation) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!(
                    "tracer: cannot open --export-filename {}: {e}; check that its directory exists and is writable",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        },
    };
    match runtime.block_on(agent::run(config, out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tracer: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(
            parse_duration("8784h"),
            Ok(Duration::from_secs(MAX_DURATION_SECS))
        );
        for long in ["8785h", "99999999999999999h", "18446744073709551615s"] {
            let e = parse_duration(long).unwrap_err();
            assert!(e.contains("is longer than a year"), "{long}: {e}");
        }
        assert!(
            parse_duration("5d")
                .unwrap_err()
                .contains("the unit is s, m or h")
        );
    }

    /// Each duration, size and count flag refuses a value past its bound, naming the
    /// flag, instead of overflowing or holding events for ever.
    #[test]
    fn numeric_flags_are_bounded() {
        let max = u64::MAX.to_string();
        for (flag, bad) in [
            ("--ring-buffer-wakeup-ms", max.as_str()),
            ("--loss-report-interval-ms", "0"),
            ("--pod-wait-ms", max.as_str()),
            ("--export-file-max-size-mb", max.as_str()),
            ("--export-file-max-backups", "1000000"),
            ("--export-buffer-size", max.as_str()),
            ("--otlp-queue-size", "0"),
            ("--export-file-rotation-interval", "99999999999999999h"),
        ] {
            let e = match Cli::try_parse_from(["tracer", "run", flag, bad]) {
                Ok(_) => panic!("{flag} {bad} accepted"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(flag), "{flag} {bad}: {e}");
        }
        assert!(Cli::try_parse_from(["tracer", "run", "--ring-buffer-wakeup-ms", "1000"]).is_ok());
    }

    /// A log level that would log nothing of the agent's (a bare word is a target) is
    /// refused, naming the flag and the levels; levels and directives pass.
    #[test]
    fn log_levels_are_checked() {
        for bad in ["nonsense", "infoo", "tracer=loud", "warn,nonsense"] {
            let e = match Cli::try_parse_from(["tracer", "run", "--log-level", bad]) {
                Ok(_) => panic!("--log-level {bad} accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                e.contains("--log-level") && e.contains("off, error, warn, info, debug, trace"),
                "{bad}: {e}"
            );
        }
        for good in [
            "info",
            "DEBUG",
            "off",
            "tracer=debug",
            "warn,tracer::agent=trace",
        ] {
            assert_eq!(parse_log_level(good), Ok(good.to_owned()));
        }
    }

    /// `tracer ready` passes only a ready file naming a live process.
    #[test]
    fn a_ready_file_names_a_live_process() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = dir.path().join("ready");
        assert!(ready(&f).expect_err("missing").contains("cannot be read"));
        std::fs::write(&f, format!("ready pid={}\n", std::process::id())).expect("write");
        assert_eq!(ready(&f), Ok(()));
        // A child that has been reaped: its pid names no process.
        let mut child = std::process::Command::new("/bin/true")
            .spawn()
            .expect("run /bin/true");
        let gone = child.id();
        child.wait().expect("wait");
        std::fs::write(&f, format!("ready pid={gone}\n")).expect("write");
        assert!(
            ready(&f)
                .expect_err("dead")
                .contains("which is not running")
        );
        std::fs::write(&f, "ready\n").expect("write");
        assert!(
            ready(&f)
                .expect_err("old")
                .contains("does not say `ready pid=N`")
        );
    }

    /// An empty or blank node name is refused, naming the flag and the variable.
    #[test]
    fn node_names_are_not_blank() {
        for bad in ["", " ", "\t\n"] {
            let e = match Cli::try_parse_from(["tracer", "run", "--node-name", bad]) {
                Ok(_) => panic!("--node-name {bad:?} accepted"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains("--node-name") && e.contains("NODE_NAME"), "{e}");
        }
        assert_eq!(parse_node_name("node-1"), Ok("node-1".to_owned()));
    }
}
