//! Builds the stages and runs them: kernel set-up, load and attach, the /proc walk, then
//! the data path in order (ring buffer -> decode -> process cache -> JSON), until Ctrl-C
//! or SIGTERM, when it detaches the programs, drains what the kernel already recorded and
//! exits.

use std::{io::Write, num::NonZeroUsize, path::PathBuf, time::Duration};

use tokio::signal::unix::{SignalKind, signal};

use crate::{
    clock::Clock,
    decode::{self, RawEvent},
    event,
    export::json::JsonLines,
    kernel::{
        btf::KernelBtf,
        features::{self, Placement},
        privileges, tracefs,
    },
    loader::{self, HookStatus},
    pods::{Pods, Waiting},
    policy::{
        files::{PolicyDir, load_file},
        store::PolicyStore,
    },
    process::{cache::ProcessCache, procfs},
    ringbuf::EventSource,
};

/// Agent settings (the flags of `tracer run`).
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    pub process_cache_size: NonZeroUsize,
    pub ring_buffer_size: u32,
    pub loss_report_interval: Duration,
    pub proc_root: PathBuf,
    pub cgroup_root: PathBuf,
    /// (program, tracepoint event) pairs that attach a hook elsewhere (tests only).
    pub attach_overrides: Vec<(String, String)>,
    /// Policy files loaded at start.
    pub tracing_policies: Vec<PathBuf>,
    /// A directory of policy files kept in step while the agent runs.
    pub tracing_policy_dir: Option<PathBuf>,
    /// Hooks on one syscall on the raw syscall tracepoints too, rather than on their own.
    pub syscall_raw_tracepoints: bool,
    /// Kprobe hooks on their tracepoint equivalents even where kprobes work.
    pub disable_kprobes: bool,
    /// How long an event of a process in a container waits for its pod.
    pub pod_wait: Duration,
    /// Created once tracing, removed at exit.
    pub ready_file: Option<PathBuf>,
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
    #[error("writing events to stdout failed: {0}")]
    Output(std::io::Error),
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
}

pub async fn run<W: Write>(config: Config, out: W) -> Result<(), AgentError> {
    privileges::check()?;
    match tracefs::ensure_mounted() {
        Ok(true) => tracing::info!("mounted tracefs at {}", tracefs::TRACEFS),
        Ok(false) => {}
        Err(e) => tracing::warn!("{e}"),
    }
    let resolved = KernelBtf::from_sys()?.resolve()?;
    let hooks = loader::lifecycle_hooks(&resolved);
    let mut loaded = loader::load(
        &resolved,
        &hooks,
        config.ring_buffer_size,
        &config.attach_overrides,
    )?;
    for (hook, status) in &loaded.hooks {
        match status {
            HookStatus::Attached => {
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
    let mut source = EventSource::new(&mut loaded.ebpf)?;

    // The cluster, where there is one (in-cluster, or a kubeconfig): pods to enrich events
    // with, and policies as objects.
    let client = match kube::Client::try_default().await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::info!(
                "kubernetes: pod enrichment is off: no Kubernetes API server configured ({e})"
            );
            None
        }
    };
    // Tracing policies, when any are asked for, or may come as objects.
    let wants_policies = !config.tracing_policies.is_empty()
        || config.tracing_policy_dir.is_some()
        || client.is_some();
    let mut store = None;
    if wants_policies {
        // What the kernel runs decides where each hook of a policy runs.
        let program_types = features::probe(&mut loaded.ebpf);
        tracing::info!(
            "kernel program types: {} (`tracer status` says why not)",
            program_types.summary()
        );
        let placement = Placement::new(
            &program_types,
            resolved.offsets.present,
            config.syscall_raw_tracepoints,
            config.disable_kprobes,
        );
        tracing::info!(
            "kernel: kprobes {}; syscall hooks run on {}",
            placement.kprobes_text(),
            placement.syscall_text()
        );
        match PolicyStore::new(
            &mut loaded.ebpf,
            std::path::Path::new(tracefs::TRACEFS),
            &placement,
        ) {
            Ok(mut s) => {
                s.pods_known = client.is_some();
                store = Some(s);
            }
            Err(e) => tracing::error!("{e}; the process lifecycle is still traced"),
        }
    }
    let mut policy_dir = config.tracing_policy_dir.clone().map(PolicyDir::new);
    if let Some(store) = &mut store {
        for path in &config.tracing_policies {
            load_file(store, &mut loaded.ebpf, path);
        }
        if let Some(dir) = &mut policy_dir {
            dir.sync(store, &mut loaded.ebpf);
        }
    }
    // Parsing the kernel's BTF (here and in the loader) takes tens of MB of heap, all
    // freed by now: hand it back to the system instead of keeping it for the agent's life.
    // SAFETY: malloc_trim only releases free heap memory; it has no other effect.
    unsafe { libc::malloc_trim(0) };

    // The programs are attached before /proc is read, so no process falls between the two.
    let clock = Clock::now();
    let mut cache = ProcessCache::new(config.node_name.clone(), config.process_cache_size);
    let found = procfs::build(
        &config.node_name,
        procfs::scan(&config.proc_root, &config.cgroup_root),
    );
    let found_count = found.len();
    if let Some(store) = &mut store {
        store.seed_binaries(found.iter().map(|p| (p.pid, p.binary.as_str())));
    }
    for p in found {
        cache.insert(p);
    }
    // Pods, where there is a cluster: the watcher fills its stores in the background.
    let kubernetes = client.as_ref().map(|c| {
        tracing::info!("kubernetes: watching the pods of node {}", config.node_name);
        crate::pods::watcher::start(c.clone(), &config.node_name)
    });
    let mut policy_objects = client
        .as_ref()
        .filter(|_| store.is_some())
        .map(|c| crate::policy::objects::watch(c.clone()));
    let mut sigint = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
    let attached = loaded
        .hooks
        .iter()
        .filter(|(_, s)| matches!(s, HookStatus::Attached))
        .count();
    tracing::info!(
        node = %config.node_name,
        hooks = attached,
        procfs_processes = found_count,
        "tracer ready"
    );
    if let Some(f) = &config.ready_file
        && let Err(e) = std::fs::write(f, b"ready\n")
    {
        tracing::warn!("cannot write the ready file {}: {e}", f.display());
    }

    let mut pipeline = Pipeline {
        cache,
        pods: Pods::new(&config.cgroup_root, kubernetes),
        waiting: Waiting::new(config.pod_wait),
        clock,
        out: JsonLines::new(out),
        decode_errors: 0,
    };
    let mut losses = tokio::time::interval(config.loss_report_interval);
    losses.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut object_policies = std::collections::BTreeSet::new();
    // Pod-scoped policies follow their pods (the watcher's stores) every second.
    let kubernetes_on = client.is_some();
    let mut scope_tick = tokio::time::interval(Duration::from_secs(1));
    scope_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if let Some(store) = &mut store {
        sync_scopes(store, &mut pipeline.pods);
    }
    let mut waiting = tokio::time::interval(Duration::from_millis(100));
    waiting.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut policy_poll = tokio::time::interval(Duration::from_secs(1));
    policy_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = source.readable() => {
                r?;
                source.drain(|bytes| pipeline.record(bytes, store.as_ref()));
                pipeline.release(false);
                pipeline.flush()?;
            }
            _ = waiting.tick(), if !pipeline.waiting.is_empty() => {
                pipeline.release(false);
                pipeline.flush()?;
            }
            _ = losses.tick() => pipeline.report_losses(&mut source)?,
            _ = policy_poll.tick(), if policy_dir.is_some() && store.is_some() => {
                if let (Some(dir), Some(store)) = (&mut policy_dir, &mut store) {
                    dir.sync(store, &mut loaded.ebpf);
                    sync_scopes(store, &mut pipeline.pods);
                }
            }
            change = next_change(&mut policy_objects) => match (change, &mut store, &client) {
                (Some(change), Some(store), Some(client)) => {
                    crate::policy::objects::apply_change(
                        change,
                        store,
                        &mut loaded.ebpf,
                        client,
                        &config.node_name,
                        &mut object_policies,
                    );
                    sync_scopes(store, &mut pipeline.pods);
                }
                _ => policy_objects = None,
            },
            _ = scope_tick.tick(), if kubernetes_on && store.is_some() => {
                if let Some(store) = &mut store {
                    sync_scopes(store, &mut pipeline.pods);
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }

    if let Some(f) = &config.ready_file {
        let _ = std::fs::remove_file(f);
    }
    // Detach first, so nothing new arrives, then hand over what the kernel already holds.
    let policy_counts = store.as_ref().map(PolicyStore::counts).unwrap_or_default();
    let store_meta = store;
    drop(loaded);
    let drained = source.drain(|bytes| pipeline.record(bytes, store_meta.as_ref()));
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
    pipeline.report_losses(&mut source)?;
    pipeline.flush()?;
    let counts = source.counts();
    let stats = pipeline.cache.stats();
    tracing::info!(
        drained_at_exit = drained,
        events_written = pipeline.out.written(),
        kernel_records = counts.emitted.iter().sum::<u64>(),
        kernel_lost = counts.total_lost(),
        kernel_read_errors = counts.read_errors.iter().sum::<u64>(),
        decode_errors = pipeline.decode_errors,
        cache_size = stats.size,
        cache_evictions = stats.evictions,
        cache_misses = stats.misses,
        "tracer stopped"
    );
    Ok(())
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

/// Writes `ev`, or holds it while the pod of one of its containers is not known (or while
/// earlier events of its containers wait).
fn write_or_wait<W: Write>(
    pods: &Pods,
    waiting: &mut Waiting,
    out: &mut JsonLines<W>,
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
    if let Err(e) = out.write(&*ev) {
        tracing::error!("writing an event failed: {e}");
    }
}

/// The user-space stages, in data-path order.
struct Pipeline<W: Write> {
    cache: ProcessCache,
    pods: Pods,
    waiting: Waiting,
    clock: Clock,
    out: JsonLines<W>,
    decode_errors: u64,
}

impl<W: Write> Pipeline<W> {
    fn record(&mut self, bytes: &[u8], store: Option<&PolicyStore>) {
        let raw = match decode::decode(bytes) {
            Ok(raw) => raw,
            Err(e) => {
                self.decode_errors += 1;
                tracing::warn!("dropped a malformed record from the kernel: {e}");
                return;
            }
        };
        if let RawEvent::Tracepoint(ev) = &raw {
            let Some((policy, hook)) = store.and_then(|s| s.hook(ev.event_id)) else {
                // The policy was removed after the kernel posted this.
                return;
            };
            let process = self.cache.lookup(ev.header.pid, ev.header.ktime_ns);
            let mut out =
                event::tracepoint(ev, &process, policy, hook, self.cache.node(), &self.clock);
            self.pods.enrich(&mut out);
            write_or_wait(&self.pods, &mut self.waiting, &mut self.out, &mut out);
            return;
        }
        let Some(lifecycle) = self.cache.handle(raw) else {
            return;
        };
        let mut ev = event::lifecycle(&lifecycle, self.cache.node(), &self.clock);
        self.pods.enrich(&mut ev);
        write_or_wait(&self.pods, &mut self.waiting, &mut self.out, &mut ev);
    }

    /// Writes the held events whose pods are known now or whose wait is over (`all`:
    /// every one, at exit).
    fn release(&mut self, all: bool) {
        if self.waiting.is_empty() {
            return;
        }
        let out = &mut self.out;
        self.waiting.release(&mut self.pods, all, |v| {
            if let Err(e) = out.write_value(v) {
                tracing::error!("writing an event failed: {e}");
            }
        });
    }

    fn flush(&mut self) -> Result<(), AgentError> {
        self.out.flush().map_err(AgentError::Output)
    }

    fn report_losses(&mut self, source: &mut EventSource) -> Result<(), AgentError> {
        if let Some(report) = source.new_losses() {
            tracing::warn!(
                lost = report.lost.iter().map(|(_, n)| n).sum::<u64>(),
                total_lost = report.total_lost,
                "the ring buffer was full: events were lost in the kernel (raise --ring-buffer-size)"
            );
            self.out
                .write(&event::loss(&report, self.cache.node()))
                .map_err(AgentError::Output)?;
            self.flush()?;
        }
        Ok(())
    }
}
