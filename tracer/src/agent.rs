//! Builds the stages and runs them: kernel set-up, load and attach (`load_programs`), the
//! policy store (`policy_store`), the /proc walk (`scan_processes`), the data path in
//! order (ring buffer -> decode -> process cache -> pods -> export: `Pipeline`), then the
//! policies from files (`Running::load_policies`, reading events between them), and the
//! loop (`Running::serve`) until Ctrl-C or SIGTERM, when it detaches the programs, drains
//! what the kernel already recorded and exits (`Running::stop`).

use std::{
    io::Write,
    net::SocketAddr,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use aya::Ebpf;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    clock::Clock,
    decode::{self, RawEvent},
    event,
    export::{self, Export},
    handover::Pins,
    kernel::{
        btf::{KernelBtf, Resolved},
        features::{self, Placement},
        privileges, tracefs,
    },
    loader::{self, HookStatus},
    mappings::Mappings,
    metrics::{self, Metrics},
    pods::{Pods, Waiting},
    policy::{
        files::{PolicyDir, load_file},
        store::{PolicyStore, restart},
    },
    process::{cache::ProcessCache, procfs},
    ringbuf::EventSource,
    stacks::{self, Stacks},
};

/// How long the agent waits at exit for the OTLP collector to take what is queued.
const OTLP_SHUTDOWN: Duration = Duration::from_secs(5);

/// Agent settings (the flags of `tracer run`).
#[derive(Debug)]
pub struct Config {
    pub node_name: String,
    pub process_cache_size: NonZeroUsize,
    pub ring_buffer_size: u32,
    /// The longest a record waits in the ring buffer before the agent reads it; zero
    /// wakes the agent for every record.
    pub ring_buffer_wakeup: Duration,
    /// Keep the programs' source line information (`--verifier-line-info`).
    pub line_info: bool,
    /// Where the kernel side stays pinned between agents (`handover`); `None`: `--no-pin`.
    pub pin_dir: Option<PathBuf>,
    /// How long to wait for an agent that holds `pin_dir`.
    pub pin_wait: Duration,
    /// Where an agent leaves its process cache for the next (`process::snapshot`).
    pub state_dir: PathBuf,
    pub loss_report_interval: Duration,
    pub proc_root: PathBuf,
    pub cgroup_root: PathBuf,
    /// (program, tracepoint event) pairs that attach a hook elsewhere (tests only).
    pub attach_overrides: Vec<(String, String)>,
    /// Policy files loaded at start.
    pub tracing_policies: Vec<PathBuf>,
    /// `--tracing-policy-optional`: a policy file that does not load is a warning, not a
    /// failed start.
    pub tracing_policy_optional: bool,
    /// A directory of policy files kept in step while the agent runs.
    pub tracing_policy_dir: Option<PathBuf>,
    /// Hooks on one syscall on the raw syscall tracepoints too, rather than on their own.
    pub syscall_raw_tracepoints: bool,
    /// Kprobe hooks on their tracepoint equivalents even where kprobes work.
    pub disable_kprobes: bool,
    /// Function hooks on kprobes even where the kernel has fentry.
    pub disable_fentry: bool,
    /// How many hooks (and policies, and filter values) and hook points the kernel's
    /// policy maps hold.
    pub policy_capacity: loader::Capacity,
    /// How long an event of a process in a container waits for its pod.
    pub pod_wait: Duration,
    /// Created once tracing (`ready pid=PID`), removed at exit.
    pub ready_file: Option<PathBuf>,
    /// What is exported, and how.
    pub export: export::Settings,
    /// Where the JSON lines go: `stdout` or `export_file`.
    pub sink_name: &'static str,
    /// `--metrics-server`: where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_server: Option<SocketAddr>,
    /// `--otlp-endpoint` and the `OTEL_EXPORTER_OTLP_*` variables: events as OTLP logs.
    pub otlp: Option<export::otlp::OtlpConfig>,
    /// `--expose-stack-addresses`: stack trace entries keep their addresses.
    pub expose_stack_addresses: bool,
    /// `--enable-process-environment-variables`, with the names
    /// `--filter-environment-variables` keeps (all when `None`).
    pub process_env: Option<Option<std::collections::HashSet<String>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
    #[error(transparent)]
    Btf(#[from] crate::kernel::btf::BtfError),
    #[error(transparent)]
    Load(#[from] loader::LoadError),
    #[error(transparent)]
    Ring(#[from] crate::ringbuf::RingError),
    #[error("cannot poll the perf rings of executable mappings: {0}")]
    Mappings(std::io::Error),
    #[error(transparent)]
    Metrics(#[from] metrics::ServeError),
    #[error(transparent)]
    Otlp(#[from] export::otlp::OtlpError),
    #[error(transparent)]
    Handover(#[from] crate::handover::HandoverError),
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(
        "--tracing-policy {}: not loaded: {why}\n  fix: correct the file, or pass --tracing-policy-optional to start without the policies that do not load",
        path.display()
    )]
    PolicyFile { path: PathBuf, why: String },
}

/// Records read from the ring buffer at a time, between the loop's other work.
const DRAIN_BUDGET: usize = 4096;

/// Most records read at exit: with pinned hooks the kernel goes on posting, and what
/// comes after this is left for the next agent.
const STOP_DRAIN: usize = 1 << 20;

pub async fn run(mut config: Config, out: Box<dyn Write>) -> Result<(), AgentError> {
    privileges::check()?;
    // Served from the start, so that a probe can tell "loading" from "dead".
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = config.metrics_server {
        let bound = metrics::serve(addr, metrics.clone()).await?;
        tracing::info!("metrics: serving /metrics, /healthz and /readyz on {bound}");
    }
    match tracefs::ensure_mounted() {
        Ok(true) => tracing::info!("mounted tracefs at {}", tracefs::TRACEFS),
        Ok(false) => {}
        Err(e) => tracing::warn!("{e}"),
    }
    let resolved = KernelBtf::from_sys()?.resolve()?;
    let mut pins = pins(&config)?;
    let mut loaded = load_programs(&config, &resolved, pins.as_ref())?;
    // From here this agent's hooks post; those of the agent before (pinned) no longer.
    let handover = match pins.as_mut() {
        Some(p) => Some(take_over(p, &mut loaded)?),
        None => None,
    };
    let mut source = EventSource::new(&mut loaded.ebpf)?;
    let previous = pins.as_ref().and_then(|p| p.previous.clone());
    if let Some(p) = &previous {
        source.resume(p.lost_reported, stopped_at(p));
    }
    let stacks = match Stacks::new(
        &mut loaded.ebpf,
        config.expose_stack_addresses,
        metrics.clone(),
    ) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("{e}: policy events go out without stack traces");
            None
        }
    };
    let client = kube_client().await;
    let mut store = policy_store(&config, &resolved, &mut loaded.ebpf, client.is_some());
    // The policies of the agent before run on until this one takes over: their events
    // are read with what it saved (in a replaced set of this layout, those its ring
    // buffer kept).
    let deferred = pins.as_ref().is_some_and(Pins::deferred);
    if let (Some(store), Some(p)) = (store.as_mut(), pins.as_ref()) {
        // Each hook pinned as it attaches: the policies outlive this agent, even killed.
        store.pin_to(p.dir().join(crate::handover::LINKS), p.generation);
        if !deferred {
            store.save_to(restart::path(&config.state_dir), p.generation);
        }
    }
    if let (Some(store), Some(p)) = (store.as_mut(), previous.as_ref().filter(|p| p.same_layout)) {
        let saved = restart::load(&restart::path(&config.state_dir), p.generation);
        if let Some(saved) = saved.filter(|s| !s.policies.is_empty()) {
            let policies = saved.policies.len();
            let hooks = store.inherit(saved);
            if deferred {
                tracing::info!(
                    "the previous agent's {policies} policies ({hooks} hooks) run on until this agent's are loaded"
                );
            }
        }
    }
    // The programs are attached before /proc is read, so no process falls between the two.
    let saved = match (&previous, &pins) {
        (Some(p), Some(_)) => crate::process::snapshot::load(
            &crate::process::snapshot::path(&config.state_dir),
            p.generation,
        ),
        _ => Vec::new(),
    };
    let (clock, cache, found, gone) = scan_processes(&config, store.as_mut(), saved);
    // Pods, where there is a cluster: the watcher fills its stores in the background.
    let kubernetes = client.as_ref().map(|c| {
        tracing::info!("kubernetes: watching the pods of node {}", config.node_name);
        crate::pods::watcher::start(c.clone(), &config.node_name)
    });
    let policy_objects = client
        .as_ref()
        .filter(|_| store.is_some())
        .map(|c| crate::policy::objects::watch(c.clone()));
    let mut pipeline = Pipeline::start(&mut config, out, cache, clock, kubernetes, &metrics)?;
    pipeline.stacks = stacks;
    if let Some((handover, took)) = handover {
        pipeline.resume(
            &mut source,
            handover,
            took,
            previous.as_ref(),
            store.as_ref(),
        );
        // Those that ended meanwhile without an exit record can go now.
        pipeline.cache.let_go(&gone, &config.proc_root);
        if !deferred && let Some(store) = store.as_mut() {
            store.let_go_inherited();
        }
    }
    let mut running = Running {
        next_agent: pins.as_ref().map(|p| NextAgent {
            state_dir: config.state_dir.clone(),
            generation: p.generation,
        }),
        ebpf: loaded.ebpf,
        source,
        mappings: Mappings::new(!config.ring_buffer_wakeup.is_zero()),
        store,
        pipeline,
        policy_dir: config.tracing_policy_dir.clone().map(PolicyDir::new),
        policy_objects,
        object_policies: std::collections::BTreeSet::new(),
        client,
        node_name: config.node_name.clone(),
    };
    running.load_policies(&config.tracing_policies, config.tracing_policy_optional)?;
    if let Some(p) = pins.as_mut().filter(|_| deferred) {
        // The policies that come as objects too, so that they do not pause either.
        running.first_policy_objects(OBJECTS_WAIT).await;
        // On error the old hooks, still pinned, run on for the next agent.
        activate(p, &mut running, &config)?;
    }
    // Parsing the kernel's BTF (in the loader, and for the policies' kprobes) takes tens
    // of MB of heap, all freed by now: hand it back to the system instead of keeping it
    // for the agent's life.
    // SAFETY: malloc_trim only releases free heap memory; it has no other effect.
    unsafe { libc::malloc_trim(0) };
    let mut signals = Signals {
        int: signal(SignalKind::interrupt()).map_err(AgentError::Signals)?,
        term: signal(SignalKind::terminate()).map_err(AgentError::Signals)?,
    };
    let attached = loaded
        .hooks
        .iter()
        .filter(|(_, s)| matches!(s, HookStatus::Attached(_) | HookStatus::Pinned))
        .count();
    tracing::info!(
        node = %config.node_name,
        hooks = attached,
        procfs_processes = found,
        "tracer ready"
    );
    if let Some(f) = &config.ready_file
        && let Err(e) = std::fs::write(f, format!("ready pid={}\n", std::process::id()))
    {
        tracing::warn!("cannot write the ready file {}: {e}", f.display());
    }
    metrics.set_ready(true);
    metrics.cache(0, config.process_cache_size.get(), 0, 0);
    running.serve(&config, &metrics, &mut signals).await?;
    if let Some(f) = &config.ready_file {
        let _ = std::fs::remove_file(f);
    }
    running.stop(&metrics).await;
    Ok(())
}

/// The pinned set this agent takes over or makes (`handover`), locked for it; `None`
/// with `--no-pin`, or where nothing can be pinned (said why).
fn pins(config: &Config) -> Result<Option<Pins>, AgentError> {
    let Some(dir) = &config.pin_dir else {
        let default = Path::new(crate::handover::DEFAULT_DIR);
        if crate::handover::exists(default) {
            tracing::warn!(
                "--no-pin: an agent left its process hooks pinned at {} and they still record, with nobody reading; `tracer cleanup` removes them",
                default.display()
            );
        }
        return Ok(None);
    };
    match Pins::acquire(dir, config.ring_buffer_size, config.pin_wait) {
        Ok(p) => Ok(Some(p)),
        Err(e @ crate::handover::HandoverError::Held { .. }) => Err(e.into()),
        Err(e) => {
            tracing::warn!("{e}; the agent runs unpinned");
            Ok(None)
        }
    }
}

/// Makes this agent's hooks the ones that post and pins them, detaching those of the
/// agent before (`handover`).
fn take_over(
    pins: &mut Pins,
    loaded: &mut loader::Loaded,
) -> Result<(crate::handover::Handover, crate::handover::TakeOver), AgentError> {
    let links = loaded
        .hooks
        .iter_mut()
        .filter_map(|(hook, status)| {
            match std::mem::replace(status, HookStatus::Failed(String::new())) {
                HookStatus::Attached(link) => {
                    *status = HookStatus::Pinned;
                    Some((hook.program, link))
                }
                failed => {
                    *status = failed;
                    None
                }
            }
        })
        .collect();
    let (handover, took) = pins.take_over(&mut loaded.ebpf, links)?;
    if pins.deferred() {
        tracing::info!(
            "taking over the hooks pinned at {}: they record on until this agent's policies are loaded",
            pins.dir().display()
        );
        return Ok((handover, took));
    }
    match &pins.previous {
        None => tracing::info!(
            "process hooks pinned at {}: they keep recording between this agent and the next",
            pins.dir().display()
        ),
        Some(p) => match &p.replaced {
            None => tracing::info!(
                "took over the process hooks pinned at {} (generation {}, {} detached): what they recorded while no agent ran is read now",
                pins.dir().display(),
                pins.generation,
                took.detached
            ),
            Some(why) if took.old_ring.is_some() => tracing::info!(
                "replaced the process hooks pinned at {} ({why}): what they recorded while no agent ran is read from their ring buffer first",
                pins.dir().display(),
            ),
            Some(why) => tracing::warn!(
                "replaced the process hooks pinned at {} ({why}): {} records they kept could not be read and are reported lost",
                pins.dir().display(),
                took.unread
            ),
        },
    }
    Ok((handover, took))
}

/// Makes this agent's hooks the ones that run, once its policies are loaded, on a set
/// taken over (`Pins::deferred`): the old hooks, the policies' with them, are detached.
/// Its own lifecycle hooks did not record meanwhile: the policies' view of the
/// processes is given again from /proc.
fn activate(pins: &mut Pins, running: &mut Running, config: &Config) -> Result<(), AgentError> {
    let detached = pins.activate(&mut running.ebpf)?;
    tracing::info!(
        "took over the hooks pinned at {} (generation {}, {detached} detached): this agent's hooks run from here",
        pins.dir().display(),
        pins.generation,
    );
    if let Some(store) = running.store.as_mut() {
        // Its policies are the ones the next agent goes on from, from now on.
        store.save_to(restart::path(&config.state_dir), pins.generation);
        store.let_go_inherited();
        let found = procfs::build(
            &config.node_name,
            procfs::scan(&config.proc_root, &config.cgroup_root),
        );
        store.reseed(found.iter().map(|p| policy_view(p)));
    }
    Ok(())
}

/// When the agent before stopped reading (RFC 3339): the start of the gap.
fn stopped_at(previous: &crate::handover::Previous) -> String {
    if previous.stopped_ns == 0 {
        crate::clock::Clock::now_rfc3339()
    } else {
        crate::clock::rfc3339(i128::from(previous.stopped_ns))
    }
}

/// Loads the object and attaches the process lifecycle hooks, saying how each went.
fn load_programs(
    config: &Config,
    resolved: &Resolved,
    pins: Option<&Pins>,
) -> Result<loader::Loaded, AgentError> {
    let hooks = loader::lifecycle_hooks(resolved);
    // With batched wake-ups the kernel wakes the agent only for a large backlog: the rest
    // is read on a timer (`Timers::ring`).
    let batched = !config.ring_buffer_wakeup.is_zero();
    let loaded = loader::load(
        resolved,
        &hooks,
        &loader::Settings {
            ring: loader::RingSize::new(config.ring_buffer_size, batched),
            capacity: config.policy_capacity,
            capture: loader::Capture {
                env: config.process_env.is_some(),
            },
            sharing: pins.map_or_else(loader::Sharing::default, |p| loader::Sharing {
                generation: p.generation,
                pinned_maps: p.map_paths(),
            }),
            line_info: config.line_info,
        },
        &config.attach_overrides,
    )?;
    for (hook, status) in &loaded.hooks {
        match status {
            HookStatus::Attached(_) | HookStatus::Pinned => {
                tracing::info!(
                    "hook {} attached (program {})",
                    hook.tracepoint,
                    hook.program
                )
            }
            HookStatus::Failed(reason) => tracing::error!(
                "hook {} is not running: {reason}; the other hooks run without it",
                hook.tracepoint
            ),
        }
    }
    Ok(loaded)
}

/// The cluster, where there is one (in-cluster, or a kubeconfig): pods to enrich events
/// with, and policies as objects.
async fn kube_client() -> Option<kube::Client> {
    match crate::pods::watcher::client().await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::info!(
                "kubernetes: pod enrichment is off: no Kubernetes API server configured ({e})"
            );
            None
        }
    }
}

/// The policy store, when policies are asked for or may come as objects (`in_cluster`):
/// what the kernel runs decides where each hook of a policy runs.
fn policy_store(
    config: &Config,
    resolved: &Resolved,
    ebpf: &mut Ebpf,
    in_cluster: bool,
) -> Option<PolicyStore> {
    let wants_policies =
        !config.tracing_policies.is_empty() || config.tracing_policy_dir.is_some() || in_cluster;
    if !wants_policies {
        return None;
    }
    let program_types = features::probe(ebpf);
    tracing::info!(
        "kernel program types: {} (`tracer status` says why not)",
        program_types.summary()
    );
    let placement = Placement::new(
        &program_types,
        resolved.offsets.present,
        config.syscall_raw_tracepoints,
        config.disable_kprobes,
        config.disable_fentry,
    );
    tracing::info!(
        "kernel: kprobes {}; syscall hooks run on {}",
        placement.kprobes_text(),
        placement.syscall_text()
    );
    let settings = crate::policy::store::Settings {
        tracefs: tracefs::TRACEFS.into(),
        proc_root: config.proc_root.clone(),
        cgroup_root: config.cgroup_root.clone(),
        capacity: config.policy_capacity.hooks,
        hook_points: config.policy_capacity.hook_points,
    };
    let kernel = crate::policy::facts::Kernel::new(&placement);
    match PolicyStore::new(ebpf, settings, kernel) {
        Ok(mut s) => {
            tracing::info!(
                "policies: the agent (pid {}) is exempt from their Sigkill, Signal and NotifyEnforcer actions",
                std::process::id()
            );
            s.pods_known = in_cluster;
            Some(s)
        }
        Err(e) => {
            tracing::error!("{e}; the process lifecycle is still traced");
            None
        }
    }
}

/// The processes running now, from /proc, into a new process cache (and their binaries
/// into the policies' maps); the clock events are stamped by; how many were found.
///
/// `saved`: the processes the agent before knew (`snapshot`); each takes the place of the
/// same process in /proc, and those that ended since are kept until their exit records
/// are read (the pids returned last).
fn scan_processes(
    config: &Config,
    store: Option<&mut PolicyStore>,
    saved: Vec<Arc<crate::process::Process>>,
) -> (Clock, ProcessCache, usize, Vec<u32>) {
    let clock = Clock::now();
    let mut cache = ProcessCache::new(config.node_name.clone(), config.process_cache_size)
        .with_process_cred(crate::event::process_fields::enabled(
            crate::event::process_fields::CRED,
        ))
        .with_env_filter(config.process_env.clone().flatten());
    let entries = procfs::scan(&config.proc_root, &config.cgroup_root);
    let found = procfs::build(&config.node_name, entries);
    let count = found.len();
    let (found, gone) = if saved.is_empty() {
        (found, Vec::new())
    } else {
        let kept = saved.len();
        let (merged, gone) =
            crate::process::snapshot::merge(saved, found, boot_minus_monotonic_ns());
        tracing::info!(
            "process cache: {kept} processes from the agent before ({} of them ended since)",
            gone.len()
        );
        (merged, gone)
    };
    if let Some(store) = store {
        store.seed_processes(found.iter().map(|p| policy_view(p)));
    }
    for p in found {
        cache.insert(p);
    }
    (clock, cache, count, gone)
}

/// What the policies' maps keep of a process found in /proc: its pid, binary and
/// capabilities.
fn policy_view(
    p: &crate::process::Process,
) -> (u32, &str, Option<tracer_common::policy::ExecCaps>) {
    (p.pid, p.binary.as_str(), p.creds.caps)
}

/// CLOCK_BOOTTIME minus CLOCK_MONOTONIC now (the time the machine was suspended).
fn boot_minus_monotonic_ns() -> i128 {
    use nix::time::{ClockId, clock_gettime};
    let ns = |id| {
        clock_gettime(id).map_or(0, |t| {
            i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
        })
    };
    ns(ClockId::CLOCK_BOOTTIME) - ns(ClockId::CLOCK_MONOTONIC)
}

/// SIGINT and SIGTERM, which stop the agent.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

/// Where an agent on a pinned set leaves, at exit, what the next agent goes on from.
struct NextAgent {
    /// The process cache (`process::snapshot`) and the policies (`store::restart`).
    state_dir: PathBuf,
    /// This agent's generation, which the files are marked with.
    generation: u64,
}

/// What the agent works on once it runs: the kernel's side, the policies, and the
/// user-space stages.
struct Running {
    /// What is left at exit for the next agent (pinned only).
    next_agent: Option<NextAgent>,
    ebpf: Ebpf,
    source: EventSource,
    /// The executable mappings, read while a `loader: true` policy is loaded.
    mappings: Mappings,
    store: Option<PolicyStore>,
    pipeline: Pipeline,
    policy_dir: Option<PolicyDir>,
    policy_objects: Option<tokio::sync::mpsc::UnboundedReceiver<crate::policy::objects::Change>>,
    /// The policies that came as objects.
    object_policies: std::collections::BTreeSet<crate::policy::objects::ObjectKey>,
    client: Option<kube::Client>,
    node_name: String,
}

impl Running {
    /// The policies from files (`files`, and the directory's), now that events flow: the
    /// kernel may take seconds to verify each policy's programs, and what it records
    /// meanwhile is read between them (a full ring buffer would drop it). A file of
    /// `files` that does not load whole is an error, unless `optional` (then a warning).
    fn load_policies(&mut self, files: &[PathBuf], optional: bool) -> Result<(), AgentError> {
        let Running {
            ebpf,
            source,
            mappings,
            store,
            pipeline,
            policy_dir,
            ..
        } = self;
        let refused = |path: &PathBuf, why: String| {
            if optional {
                tracing::warn!(
                    "--tracing-policy {}: not loaded: {why}; starting without it (--tracing-policy-optional)",
                    path.display()
                );
                Ok(())
            } else {
                Err(AgentError::PolicyFile {
                    path: path.clone(),
                    why,
                })
            }
        };
        let Some(store) = store else {
            for path in files {
                refused(
                    path,
                    "the policy store could not be set up (the log says why)".into(),
                )?;
            }
            return Ok(());
        };
        let mut between = |store: &PolicyStore| catch_up(source, mappings, pipeline, store);
        for path in files {
            match load_file(store, ebpf, path, &mut between) {
                Ok(loaded) if loaded.refused.is_empty() => {}
                Ok(loaded) => refused(path, loaded.refused.join("; "))?,
                Err(why) => refused(path, why)?,
            }
        }
        if let Some(dir) = policy_dir {
            dir.sync(store, ebpf, &mut between);
        }
        policies_changed(store, &mut pipeline.pods, mappings);
        Ok(())
    }

    /// On a set taken over, before this agent's hooks take the old ones' place: the
    /// policy objects of the API server's first lists (both kinds), loaded as they come,
    /// for at most `wait` (the old hooks run on meanwhile, and what they post is read).
    async fn first_policy_objects(&mut self, wait: Duration) {
        let Running {
            ebpf,
            source,
            mappings,
            store,
            pipeline,
            policy_objects,
            object_policies,
            client,
            node_name,
            ..
        } = self;
        let (Some(rx), Some(store), Some(client)) =
            (policy_objects.as_mut(), store.as_mut(), client.as_ref())
        else {
            return;
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut listed = std::collections::BTreeSet::new();
        while listed.len() < 2 {
            let step = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
            match tokio::time::timeout_at(step, rx.recv()).await {
                Ok(Some(change)) => {
                    if let crate::policy::objects::Change::Listed { kind, .. } = &change {
                        listed.insert(*kind);
                    }
                    crate::policy::objects::apply_change(
                        change,
                        store,
                        ebpf,
                        client,
                        node_name,
                        object_policies,
                    );
                }
                // The watch ended (said where it ends).
                Ok(None) => break,
                Err(_) if step >= deadline => {
                    tracing::warn!(
                        "the API server's policy objects did not come within {wait:?}: they load once they come, after this agent takes over (those of the agent before pause until then)"
                    );
                    break;
                }
                Err(_) => {}
            }
            catch_up(source, mappings, pipeline, store);
        }
        policies_changed(store, &mut pipeline.pods, mappings);
    }

    /// The loop: events as they come, and the policies' and pods' changes, until SIGINT
    /// or SIGTERM.
    async fn serve(
        &mut self,
        config: &Config,
        metrics: &Metrics,
        signals: &mut Signals,
    ) -> Result<(), AgentError> {
        let Running {
            ebpf,
            source,
            mappings,
            store,
            pipeline,
            policy_dir,
            policy_objects,
            object_policies,
            client,
            node_name,
            ..
        } = self;
        let batched = !config.ring_buffer_wakeup.is_zero();
        let kubernetes_on = client.is_some();
        let every = |d: Duration| {
            let mut t = tokio::time::interval(d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        };
        let mut losses = every(config.loss_report_interval);
        // Pod-scoped policies follow their pods (the watcher's stores) every second.
        let mut scope_tick = every(Duration::from_secs(1));
        let mut waiting = every(Duration::from_millis(100));
        let mut policy_poll = every(Duration::from_secs(1));
        let mut ring_timer = every(config.ring_buffer_wakeup.max(Duration::from_millis(1)));
        let mut stack_sweep = every(stacks::SWEEP_PERIOD);
        loop {
            metrics.beat();
            tokio::select! {
                r = source.readable() => {
                    r?;
                    if read_batch(source, mappings, pipeline, store.as_ref()) {
                        // More waits: read on after the loop's other work.
                        ring_timer.reset_immediately();
                    }
                }
                r = mappings.readable(), if mappings.is_open() => {
                    r.map_err(AgentError::Mappings)?;
                    if read_batch(source, mappings, pipeline, store.as_ref()) {
                        ring_timer.reset_immediately();
                    }
                }
                _ = ring_timer.tick(), if batched => {
                    if read_batch(source, mappings, pipeline, store.as_ref()) {
                        ring_timer.reset_immediately();
                    }
                }
                _ = waiting.tick(), if !pipeline.waiting.is_empty() => {
                    pipeline.release(false);
                    pipeline.flush();
                }
                _ = losses.tick() => pipeline.report(source, mappings, store.as_ref()),
                _ = stack_sweep.tick(), if pipeline.stacks.is_some() => {
                    if let Some(s) = pipeline.stacks.as_mut() {
                        s.sweep();
                    }
                }
                _ = policy_poll.tick(), if store.is_some() => {
                    if let Some(store) = store.as_mut() {
                        if let Some(dir) = policy_dir.as_mut() {
                            dir.sync(store, ebpf, &mut |store| {
                                catch_up(source, mappings, pipeline, store)
                            });
                            policies_changed(store, &mut pipeline.pods, mappings);
                        }
                        store.tick();
                    }
                }
                change = next_change(policy_objects) => match (change, store.as_mut(), client.as_ref()) {
                    (Some(change), Some(store), Some(client)) => {
                        crate::policy::objects::apply_change(
                            change,
                            store,
                            ebpf,
                            client,
                            node_name,
                            object_policies,
                        );
                        policies_changed(store, &mut pipeline.pods, mappings);
                    }
                    _ => *policy_objects = None,
                },
                _ = scope_tick.tick(), if kubernetes_on && store.is_some() => {
                    if let Some(store) = store.as_mut() {
                        sync_scopes(store, &mut pipeline.pods);
                    }
                }
                _ = signals.int.recv() => return Ok(()),
                _ = signals.term.recv() => return Ok(()),
            }
        }
    }

    /// Stops: detaches first, so nothing new arrives, then hands over what the kernel
    /// already holds, and says what was done.
    async fn stop(self, metrics: &Metrics) {
        let Running {
            next_agent,
            ebpf,
            mut source,
            mut mappings,
            mut store,
            mut pipeline,
            ..
        } = self;
        let policy_counts = store.as_ref().map(PolicyStore::counts).unwrap_or_default();
        if let Some(store) = store.as_mut() {
            stop_policies(store, next_agent.is_some());
        }
        // Detaches every hook but the pinned ones, which record on for the next agent.
        drop(ebpf);
        let mapped = mappings.take();
        // Pinned hooks still post: what comes after this is the next agent's.
        let drained = source.drain(STOP_DRAIN, |bytes| pipeline.record(bytes, store.as_ref()));
        for m in &mapped {
            pipeline.mapping(m, store.as_ref());
        }
        pipeline.release(true);
        for c in policy_counts {
            tracing::info!(
                seen = c.seen,
                matched = c.matched,
                posted = c.posted,
                lost = c.lost,
                rate_limited = c.rate_limited,
                "policy {} counters",
                c.name
            );
        }
        metrics.set_ready(false);
        pipeline.report(&mut source, &mut mappings, store.as_ref());
        pipeline.flush();
        if let Some(next) = &next_agent {
            let file = crate::process::snapshot::path(&next.state_dir);
            match crate::process::snapshot::save(&file, next.generation, pipeline.cache.live()) {
                Ok(n) => tracing::info!(
                    "{n} processes saved for the next agent in {}",
                    file.display()
                ),
                Err(e) => tracing::warn!(
                    "cannot save the processes for the next agent in {} ({e}): it takes them from /proc (the exits of those that end meanwhile will lack their details)",
                    file.display()
                ),
            }
        }
        let seq = pipeline.export.seq();
        if let Some(mut handover) = pipeline.export.take_handover() {
            // Everything read is written: the next agent numbers on from `seq` and
            // reports the kernel's losses from here.
            handover.stopped(seq, &source.reported());
        }
        pipeline.export.shutdown(OTLP_SHUTDOWN).await;
        let counts = source.counts();
        let stats = pipeline.cache.stats();
        if pipeline.export.pending() > 0 {
            tracing::error!(
                "{} events could not be written before exit: they are lost",
                pipeline.export.pending()
            );
        }
        tracing::info!(
            drained_at_exit = drained,
            events_written = pipeline.export.written(),
            kernel_records = counts.emitted.iter().sum::<u64>(),
            kernel_lost = counts.total_lost(),
            kernel_read_errors = counts.read_errors.iter().sum::<u64>(),
            decode_errors = pipeline.decode_errors,
            mappings_read = mappings.counts().0,
            mappings_lost = mappings.counts().1,
            cache_size = stats.size,
            cache_evictions = stats.evictions,
            cache_misses = stats.misses,
            "tracer stopped"
        );
        // The counters once everything above is counted: what a last scrape would have
        // read (the metrics server goes with the process).
        pipeline.export.observe();
        tracing::info!("tracer final metrics: {}", metrics.totals());
    }
}

/// The policies' hooks as the agent stops: on a pinned set (`leave`) left running for
/// the next agent, which detaches them once its own are in, with what reads their events
/// meanwhile (`store::restart`); otherwise detached.
fn stop_policies(store: &mut PolicyStore, leave: bool) {
    let (kept, detached) = store.stop(leave);
    if leave && detached > 0 {
        tracing::warn!("{detached} policy hooks had no pin: they are detached now");
    }
    if kept > 0 {
        tracing::info!(
            "{} policies left running ({kept} hooks pinned) until the next agent's are loaded",
            store.loaded().count()
        );
    }
}

/// How long a starting agent that takes over a pinned set waits for the API server's
/// policy objects before it takes over without them.
const OBJECTS_WAIT: Duration = Duration::from_secs(20);

/// Reads and exports everything the kernel has recorded so far: between policies being
/// loaded, which keeps the loop from the ring buffer.
fn catch_up(
    source: &mut EventSource,
    mappings: &mut Mappings,
    pipeline: &mut Pipeline,
    store: &PolicyStore,
) {
    while read_batch(source, mappings, pipeline, Some(store)) {}
}

/// Reads up to `DRAIN_BUDGET` records from the ring buffer and exports them, with the
/// executable mappings waiting; whether more wait. The mappings are read first and
/// handled last: the exec of a process that maps its libraries was posted before the
/// mappings were, so it is in the process cache by then.
fn read_batch(
    source: &mut EventSource,
    mappings: &mut Mappings,
    pipeline: &mut Pipeline,
    store: Option<&PolicyStore>,
) -> bool {
    let malformed = mappings.malformed;
    let mapped = mappings.take();
    pipeline.malformed(mappings.malformed - malformed);
    let n = source.drain(DRAIN_BUDGET, |bytes| pipeline.record(bytes, store));
    for m in &mapped {
        pipeline.mapping(m, store);
    }
    if n > 0 || !mapped.is_empty() {
        pipeline.release(false);
        pipeline.flush();
    }
    n == DRAIN_BUDGET
}

/// After policies were added or removed: the pod-scoped ones pointed at their pods, and
/// the executable mappings read while a `loader: true` policy is loaded.
fn policies_changed(store: &mut PolicyStore, pods: &mut Pods, mappings: &mut Mappings) {
    sync_scopes(store, pods);
    mappings.want(store.wants_mappings());
}

/// Points each pod-scoped policy at the container cgroups of the pods it selects now.
fn sync_scopes(store: &mut PolicyStore, pods: &mut Pods) {
    let scoped = store.scoped();
    let scopes: Vec<_> = scoped.iter().map(|(_, scope)| scope).collect();
    for ((name, _), cgroups) in scoped.iter().zip(pods.scope_cgroups(&scopes)) {
        store.set_scope(name, cgroups);
    }
}

/// The next change of the policy objects; never, without a watch.
async fn next_change(
    rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<crate::policy::objects::Change>>,
) -> Option<crate::policy::objects::Change> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Exports `ev`, or holds it while the pod of one of its containers is not known (or
/// while earlier events of its containers wait).
fn export_or_wait(
    pods: &Pods,
    waiting: &mut Waiting,
    export: &mut Export,
    ev: &mut event::Event<'_>,
) {
    let (containers, unresolved) = pods.containers_of(ev);
    if unresolved || waiting.holds_any(&containers) {
        match serde_json::to_value(&*ev) {
            Ok(v) => waiting.hold(v, containers),
            Err(e) => tracing::error!("an event could not be held: {e}"),
        }
        return;
    }
    export.event(ev);
}

/// The user-space stages, in data-path order.
struct Pipeline {
    cache: ProcessCache,
    pods: Pods,
    waiting: Waiting,
    clock: Clock,
    export: Export,
    metrics: Arc<Metrics>,
    /// Stack traces of policy events (`None`: the kernel's map could not be had).
    stacks: Option<Stacks>,
    decode_errors: u64,
    /// Decode errors already said in the stream, and since when.
    decode_reported: u64,
    since: String,
    capacity: usize,
}

impl Pipeline {
    /// The stages after the ring buffer, with the OTLP exporter started if asked for.
    fn start(
        config: &mut Config,
        out: Box<dyn Write>,
        cache: ProcessCache,
        clock: Clock,
        kubernetes: Option<crate::pods::watcher::Stores>,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, AgentError> {
        let otlp = match config.otlp.take() {
            Some(c) => {
                let (endpoint, queue) = (c.endpoint.to_string(), c.queue_size);
                let exporter = export::otlp::OtlpExporter::start(c)?;
                tracing::info!("otlp: exporting events to {endpoint} (queue of {queue})");
                Some((exporter, queue))
            }
            None => None,
        };
        Ok(Self {
            cache,
            pods: Pods::new(&config.cgroup_root, kubernetes),
            waiting: Waiting::new(config.pod_wait),
            clock,
            export: Export::new(
                std::mem::take(&mut config.export),
                out,
                config.sink_name,
                otlp,
                config.node_name.clone(),
                metrics.clone(),
            ),
            metrics: metrics.clone(),
            stacks: None,
            decode_errors: 0,
            decode_reported: 0,
            since: crate::clock::Clock::now_rfc3339(),
            capacity: config.process_cache_size.get(),
        })
    }

    fn record(&mut self, bytes: &[u8], store: Option<&PolicyStore>) {
        let raw = match decode::decode(bytes) {
            Ok(raw) => raw,
            Err(e) => {
                self.decode_errors += 1;
                self.metrics.decode_error();
                tracing::warn!("dropped a malformed record from the kernel: {e}");
                return;
            }
        };
        if let RawEvent::Tracepoint(ev) = &raw {
            let Some((policy, hook)) = store.and_then(|s| s.hook(ev.hook)) else {
                // The policy was removed after the kernel posted this.
                return;
            };
            // GetUrl, DnsLookup: made here, on their own tasks (monitor mode: not made).
            if ev.flags & tracer_common::policy::EVENT_MONITOR == 0
                && let Some(requests) = hook.requests.get(ev.selector as usize)
            {
                for r in requests {
                    crate::policy::requests::start(r, &policy.name);
                }
            }
            let traces = self
                .stacks
                .as_mut()
                .map(|s| s.traces(ev))
                .unwrap_or_default();
            let process = self.cache.lookup(ev.header.pid, ev.header.ktime_ns);
            let mut out =
                event::tracepoint(ev, &process, policy, hook, self.cache.node(), &self.clock);
            if traces.kernel.is_some() || traces.user.is_some() {
                out.set_stack_traces(
                    traces.kernel.unwrap_or_default(),
                    traces.user.unwrap_or_default(),
                );
            }
            self.pods.enrich(&mut out);
            export_or_wait(&self.pods, &mut self.waiting, &mut self.export, &mut out);
            return;
        }
        let Some(lifecycle) = self.cache.handle(raw) else {
            return;
        };
        let mut ev = event::lifecycle(&lifecycle, self.cache.node(), &self.clock);
        self.pods.enrich(&mut ev);
        export_or_wait(&self.pods, &mut self.waiting, &mut self.export, &mut ev);
    }

    /// Goes on from the agent before (`previous`, `None` for the first on a pinned set):
    /// numbers on from its `seq`, reads what a replaced ring buffer of the same layout
    /// kept, says what could not be kept, then reads what the hooks recorded while no
    /// agent ran, before anything else.
    fn resume(
        &mut self,
        source: &mut EventSource,
        handover: crate::handover::Handover,
        mut took: crate::handover::TakeOver,
        previous: Option<&crate::handover::Previous>,
        store: Option<&PolicyStore>,
    ) {
        self.export.resume(previous.map_or(0, |p| p.seq), handover);
        if let Some(mut ring) = took.old_ring.take() {
            // Its records are older than any in the new ring buffer.
            let mut n = 0u64;
            while let Some(item) = ring.next() {
                self.record(&item, store);
                n += 1;
            }
            tracing::info!("read the {n} records the replaced ring buffer kept");
        }
        if let Some(p) = previous {
            self.restarted(source, p, &took);
        }
        source.drain(STOP_DRAIN, |bytes| self.record(bytes, store));
        self.release(false);
        self.flush();
    }

    /// After taking over from `previous`: says in the stream what could not be kept
    /// while no agent read (the ring buffer overflowing; a replaced set's records; the
    /// lines of an agent that did not stop cleanly), with the gap's start.
    fn restarted(
        &mut self,
        source: &mut EventSource,
        previous: &crate::handover::Previous,
        took: &crate::handover::TakeOver,
    ) {
        let since = stopped_at(previous);
        let gap = if previous.stopped_ns == 0 {
            "an unknown time".to_owned()
        } else {
            let now = crate::handover::realtime_ns();
            format!(
                "{:.3} s",
                now.saturating_sub(previous.stopped_ns) as f64 / 1e9
            )
        };
        // A replaced set's losses are in its own counters; a set taken over has them in
        // the source's.
        let unreported = match previous.old_unreported {
            Some(old) => old,
            None => source.unreported(),
        };
        let kernel: u64 = unreported.iter().sum();
        let mut reasons = Vec::new();
        let mut lost = std::collections::BTreeMap::new();
        if kernel > 0 {
            reasons.push(format!(
                "the ring buffer filled while no agent read it (for {gap}; raise --ring-buffer-size)"
            ));
            for (i, kind) in tracer_common::event::EventKind::ALL.into_iter().enumerate() {
                if unreported[i] > 0 {
                    lost.insert(kind.name().to_owned(), unreported[i].to_string());
                }
            }
            if previous.old_unreported.is_none() {
                // Said here, not again by the next periodic report.
                let _ = source.new_losses();
            }
        }
        if let Some(why) = previous.replaced.as_ref().filter(|_| took.unread > 0) {
            reasons.push(format!(
                "the kernel side was replaced ({why}): the {} records its hooks posted after the previous agent stopped ({gap} before) could not be read",
                took.unread
            ));
        }
        if !previous.clean {
            reasons.push(format!(
                "the previous agent (pid {}) did not stop cleanly: what it had read and not written is lost, and the numbers missing from seq before this line are its",
                previous.owner
            ));
        }
        let count = kernel + took.unread;
        if reasons.is_empty() {
            tracing::info!("restart: nothing was lost while no agent ran (for {gap})");
            return;
        }
        tracing::warn!(lost = count, "restart: {}", reasons.join("; "));
        let node = self.export.node().to_owned();
        self.export.event(&event::Event {
            body: event::Body::EventLoss {
                place: "restart",
                reason: reasons.join("; "),
                lost,
                count: count.to_string(),
                total_lost: count.to_string(),
                since,
            },
            node_name: &node,
            time: crate::clock::Timestamp::now(),
        });
        self.flush();
    }

    /// Counts `n` malformed records from the kernel, reported with the decode errors.
    fn malformed(&mut self, n: u64) {
        self.decode_errors += n;
        for _ in 0..n {
            self.metrics.decode_error();
        }
    }

    /// Exports the `process_loader` events of mapping `m`: one for each `loader: true`
    /// policy that applies to its process.
    fn mapping(&mut self, m: &crate::mappings::Mapped, store: Option<&PolicyStore>) {
        let Some(store) = store else {
            return;
        };
        let process = self.cache.lookup(m.mapping.pid, m.mapping.time_ns);
        let mut buildid = None;
        for policy in store.loaders_for(process.cgroup_id) {
            let buildid = buildid.get_or_insert_with(|| m.build_id.base64());
            let mut out = event::loader(
                &m.mapping,
                buildid,
                &process,
                policy,
                self.cache.node(),
                &self.clock,
            );
            self.pods.enrich(&mut out);
            export_or_wait(&self.pods, &mut self.waiting, &mut self.export, &mut out);
        }
    }

    /// Exports the held events whose pods are known now or whose wait is over (`all`:
    /// every one, at exit).
    fn release(&mut self, all: bool) {
        if self.waiting.is_empty() {
            return;
        }
        let export = &mut self.export;
        self.waiting
            .release(&mut self.pods, all, |v| export.value(v));
    }

    fn flush(&mut self) {
        self.export.flush();
    }

    /// The periodic reports: losses in the kernel and in the agent, into the stream; the
    /// counters, into the metrics.
    fn report(
        &mut self,
        source: &mut EventSource,
        mappings: &mut Mappings,
        store: Option<&PolicyStore>,
    ) {
        let node = self.export.node().to_owned();
        let now = crate::clock::Clock::now_rfc3339();
        if let Some(report) = source.new_losses() {
            tracing::warn!(
                lost = report.lost.iter().map(|(_, n)| n).sum::<u64>(),
                total_lost = report.total_lost,
                "the ring buffer was full: events were lost in the kernel (raise --ring-buffer-size)"
            );
            self.export.event(&event::loss(&report, &node));
        }
        if let Some(report) = mappings.new_losses() {
            tracing::warn!(
                lost = report.lost,
                total_lost = report.total_lost,
                "loader: the perf ring of executable mappings was full: process_loader events were lost in the kernel"
            );
            self.export.event(&event::mappings_loss(&report, &node));
        }
        if self.decode_errors > self.decode_reported {
            let count = self.decode_errors - self.decode_reported;
            self.decode_reported = self.decode_errors;
            let since = std::mem::replace(&mut self.since, now);
            self.export.event(&event::Event {
                body: event::Body::EventLoss {
                    place: "decode",
                    reason: "records from the kernel that could not be decoded (the agent's log says why)".into(),
                    lost: Default::default(),
                    count: count.to_string(),
                    total_lost: self.decode_errors.to_string(),
                    since,
                },
                node_name: &node,
                time: crate::clock::Timestamp::now(),
            });
        }
        self.export.report();
        self.flush();
        let counts = source.counts();
        for (i, kind) in tracer_common::event::EventKind::ALL.into_iter().enumerate() {
            self.metrics
                .kernel(kind.name(), counts.emitted[i], counts.lost[i]);
        }
        let (mapped, mappings_lost) = mappings.counts();
        self.metrics.kernel("mapping", mapped, mappings_lost);
        let stats = self.cache.stats();
        self.metrics
            .cache(stats.size, self.capacity, stats.evictions, stats.misses);
        if let Some(store) = store {
            for c in store.counts() {
                self.metrics.policy_kernel(
                    &c.name,
                    [
                        ("seen", c.seen),
                        ("matched", c.matched),
                        ("posted", c.posted),
                        ("lost", c.lost),
                        ("rate_limited", c.rate_limited),
                    ],
                );
            }
            let (loaded, partly, error) = store.states();
            self.metrics.policies(loaded, partly, error);
            self.metrics.policy_sizes(store.sizes());
        }
        self.export.observe();
    }
}
