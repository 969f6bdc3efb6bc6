//! The user-space stages alone (`cargo bench -p tracer --bench pipeline`, run by
//! `cargo xtask bench`): what the agent does with a ring-buffer record, stage by stage and
//! all together, on records laid out byte for byte as the kernel writes them (an exec of
//! `/usr/bin/curl` with arguments from a directory, its exit, a `raw_syscalls/sys_enter`
//! policy hit). Nanoseconds per event from criterion; allocations per event from a
//! counting global allocator, in a pass of their own outside the timed loops, printed and
//! written as JSON to `$TRACER_BENCH_ALLOCS` when it is set.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use tracer::{
    clock::Clock,
    decode::{self, RawEvent},
    event,
    export::{self, Export},
    metrics::Metrics,
    policy::compile::{self, Compiled, Ids},
    process::cache::{Lifecycle, ProcessCache},
};
use tracer_common::{
    event::{EventHeader, EventKind, ExecEvent, ExitEvent},
    policy::TracepointEvent,
};

/// The same exec with a new copy of its process, which keeps no JSON object yet (its
/// parent does, as its earlier children's events kept it).
fn first_time(l: &Lifecycle) -> Lifecycle {
    match l {
        Lifecycle::Exec { process, binary } => Lifecycle::Exec {
            process: Arc::new(tracer::process::Process::clone(process)),
            binary: binary.clone(),
        },
        other => other.clone(),
    }
}

/// Counts every allocation (and reallocation) of the process.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const NODE: &str = "bench-node";
const PID: u32 = 4242;
const PARENT: u32 = 4200;

fn bytes_of<T: aya::Pod>(v: &T) -> Vec<u8> {
    // SAFETY: reading the bytes of a plain-old-data value.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

fn put(dst: &mut [u8], src: &[u8]) -> u32 {
    dst[..src.len()].copy_from_slice(src);
    src.len() as u32
}

/// `curl -s -o /dev/null https://example.com/a?b=c` run from `/home/user/project`.
fn exec_record(pid: u32, ppid: u32, ktime_ns: u64) -> Vec<u8> {
    // SAFETY: ExecEvent is plain data; all zeroes is a valid value.
    let mut ev: ExecEvent = unsafe { std::mem::zeroed() };
    ev.header = EventHeader {
        kind: EventKind::Exec as u32,
        tid: pid,
        ktime_ns,
        pid,
        _pad: 0,
        cgroup_id: 8512,
    };
    ev.ppid = ppid;
    ev.uid = 1000;
    ev.gid = 1000;
    ev.euid = 1000;
    ev.egid = 1000;
    ev.auid = 1000;
    ev.start_ns = ktime_ns - 1000;
    ev.filename_len = put(&mut ev.filename, b"/usr/bin/curl\0");
    ev.binary_len = put(&mut ev.binary, b"curl\0bin\0usr\0");
    ev.cwd_len = put(&mut ev.cwd, b"project\0user\0home\0");
    ev.args_len = put(
        &mut ev.args,
        b"curl\0-s\0-o\0/dev/null\0https://example.com/a?b=c\0",
    );
    bytes_of(&ev)
}

fn exit_record(pid: u32, ktime_ns: u64) -> Vec<u8> {
    bytes_of(&ExitEvent {
        header: EventHeader {
            kind: EventKind::Exit as u32,
            tid: pid,
            ktime_ns,
            pid,
            _pad: 0,
            cgroup_id: 8512,
        },
        exit_code: 0,
        _pad: 0,
        start_ns: ktime_ns - 1000,
    })
}

/// A hit of `raw_syscalls/sys_enter` with its syscall number (field 4) as argument.
fn tracepoint_record(pid: u32, ktime_ns: u64) -> Vec<u8> {
    // SAFETY: TracepointEvent is plain data; all zeroes is a valid value.
    let mut ev: TracepointEvent = unsafe { std::mem::zeroed() };
    ev.header = EventHeader {
        kind: EventKind::Tracepoint as u32,
        tid: pid,
        ktime_ns,
        pid,
        _pad: 0,
        cgroup_id: 8512,
    };
    ev.nargs = 1;
    ev.args[0].int = 110;
    bytes_of(&ev)
}

/// The policy a tracepoint record belongs to, compiled against the format file of
/// `raw_syscalls/sys_enter` (as this kernel's tracefs has it).
fn policy() -> Compiled {
    let root = tempfile::tempdir().expect("a temporary directory");
    let dir = root.path().join("events/raw_syscalls/sys_enter");
    std::fs::create_dir_all(&dir).expect("create the format's directory");
    std::fs::write(
        dir.join("format"),
        "name: sys_enter\nID: 443\nformat:\n\
         \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
         \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
         \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
         \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
         \tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\
         \tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n\n\
         print fmt: \"\"\n",
    )
    .expect("write the format file");
    let text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bench-all\nspec:\n  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    args:\n    - index: 4\n    selectors:\n    - matchArgs:\n      - index: 4\n        operator: Equal\n        values: [110]\n";
    let docs =
        tracer::policy::parse::text_documents("bench.yaml", text).expect("the policy parses");
    let facts = tracer::policy::facts::Facts::new(Default::default(), root.path());
    compile::compile(&docs[0].spec, 0, &mut Ids::default(), &facts).expect("the policy compiles")
}

fn cache_with_parent() -> ProcessCache {
    let mut cache = ProcessCache::new(NODE, NonZeroUsize::new(65536).unwrap_or(NonZeroUsize::MIN));
    let parent = decode::decode(&exec_record(PARENT, 1, 1_000_000)).expect("decodes");
    cache.handle(parent);
    cache
}

fn clock() -> Clock {
    Clock::fixed(1_700_000_000_000_000_000, 1_700_000_000_000_000_000)
}

/// An export stage whose JSON sink writes to nowhere, as the agent's with stdout on
/// /dev/null.
fn export() -> Export {
    Export::new(
        export::Settings::default(),
        Box::new(std::io::sink()),
        "stdout",
        None,
        NODE.to_owned(),
        Arc::new(Metrics::new()),
    )
}

/// Processes the exec-and-exit measurements cycle through: more than the cache keeps of
/// recent exits (1024), so that every exit is one it has not seen.
const PROCESSES: u32 = 4096;

/// The fixtures every measurement shares.
struct Fixture {
    exec: Vec<u8>,
    exit: Vec<u8>,
    tracepoint: Vec<u8>,
    /// An exec and an exit record of each of [`PROCESSES`] processes.
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    next: std::cell::Cell<usize>,
    policy: Compiled,
    clock: Clock,
}

impl Fixture {
    fn new() -> Self {
        Self {
            exec: exec_record(PID, PARENT, 2_000_000),
            exit: exit_record(PID, 3_000_000),
            tracepoint: tracepoint_record(PID, 2_500_000),
            pairs: (0..PROCESSES)
                .map(|i| {
                    let t = 10_000_000 + u64::from(i) * 10_000;
                    (
                        exec_record(100_000 + i, PARENT, t),
                        exit_record(100_000 + i, t + 5_000),
                    )
                })
                .collect(),
            next: std::cell::Cell::new(0),
            policy: policy(),
            clock: clock(),
        }
    }

    /// The exec event, for the encoding measurements.
    fn exec_lifecycle(&self) -> (ProcessCache, Lifecycle) {
        let mut cache = cache_with_parent();
        let l = cache
            .handle(decode::decode(&self.exec).expect("decodes"))
            .expect("an exec event");
        (cache, l)
    }

    fn exit_lifecycle(&self) -> Lifecycle {
        let (mut cache, _) = self.exec_lifecycle();
        cache
            .handle(decode::decode(&self.exit).expect("decodes"))
            .expect("an exit event")
    }

    /// One exec record and one exit record through every stage: decode, the process
    /// cache, the event, and the export stage's JSON line.
    fn pipeline_exec_exit(&self, cache: &mut ProcessCache, out: &mut Export) {
        let (exec, exit) = self.next_pair();
        for record in [exec, exit] {
            let Ok(raw) = decode::decode(record) else {
                continue;
            };
            if let Some(l) = cache.handle(raw) {
                out.event(&event::lifecycle(&l, NODE, &self.clock));
            }
        }
        out.flush();
    }

    /// The records of the next process of the cycle.
    fn next_pair(&self) -> (&[u8], &[u8]) {
        let i = self.next.get();
        self.next.set((i + 1) % self.pairs.len());
        let (exec, exit) = &self.pairs[i];
        (exec, exit)
    }

    /// The same, decoded.
    fn decoded_pairs(&self) -> Vec<(RawEvent, RawEvent)> {
        self.pairs
            .iter()
            .map(|(exec, exit)| {
                (
                    decode::decode(exec).expect("decodes"),
                    decode::decode(exit).expect("decodes"),
                )
            })
            .collect()
    }

    /// One policy hit through every stage.
    fn pipeline_tracepoint(&self, cache: &mut ProcessCache, out: &mut Export) {
        if let Ok(RawEvent::Tracepoint(ev)) = decode::decode(&self.tracepoint) {
            let process = cache.lookup(ev.header.pid, ev.header.ktime_ns);
            let hook = &self.policy.hooks[0];
            out.event(&event::tracepoint(
                &ev,
                &process,
                &self.policy,
                hook,
                NODE,
                &self.clock,
            ));
        }
        out.flush();
    }
}

fn stages(c: &mut Criterion) {
    let f = Fixture::new();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("exec", |b| b.iter(|| decode::decode(black_box(&f.exec))));
    g.bench_function("exit", |b| b.iter(|| decode::decode(black_box(&f.exit))));
    g.bench_function("tracepoint", |b| {
        b.iter(|| decode::decode(black_box(&f.tracepoint)))
    });
    g.finish();

    let mut g = c.benchmark_group("cache");
    g.throughput(Throughput::Elements(2));
    // An exec and the exit of the same process: an insert and a removal.
    let mut cache = cache_with_parent();
    let pairs = f.decoded_pairs();
    let mut i = 0;
    // The decoded records are the cache's to keep: each iteration gets a copy, made
    // outside the measurement.
    g.bench_function("exec_exit", |b| {
        b.iter_batched(
            || {
                let pair = pairs[i].clone();
                i = (i + 1) % pairs.len();
                pair
            },
            |(exec, exit)| {
                black_box(cache.handle(exec));
                black_box(cache.handle(exit))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let (_cache, exec_l) = f.exec_lifecycle();
    let exit_l = f.exit_lifecycle();
    let mut tp_cache = f.exec_lifecycle().0;
    let Ok(RawEvent::Tracepoint(tp)) = decode::decode(&f.tracepoint) else {
        panic!("a tracepoint record")
    };
    let tp_process = tp_cache.lookup(PID, 0);
    let hook = &f.policy.hooks[0];

    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(1));
    g.bench_function("exec", |b| {
        b.iter(|| event::lifecycle(black_box(&exec_l), NODE, &f.clock))
    });
    g.bench_function("exit", |b| {
        b.iter(|| event::lifecycle(black_box(&exit_l), NODE, &f.clock))
    });
    g.bench_function("tracepoint", |b| {
        b.iter(|| event::tracepoint(black_box(&tp), &tp_process, &f.policy, hook, NODE, &f.clock))
    });
    g.finish();

    // Encoding alone: an event already built, into a buffer that is reused.
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(1 << 16);
    let exec_ev = event::lifecycle(&exec_l, NODE, &f.clock);
    let exit_ev = event::lifecycle(&exit_l, NODE, &f.clock);
    let tp_ev = event::tracepoint(&tp, &tp_process, &f.policy, hook, NODE, &f.clock);
    for (name, ev) in [
        ("exec", &exec_ev),
        ("exit", &exit_ev),
        ("tracepoint", &tp_ev),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                serde_json::to_writer(&mut buf, black_box(ev))
            })
        });
    }
    // The exec of a new process, built and encoded: its own object encoded, its parent's
    // copied from the parent's cache.
    g.bench_function("exec_first", |b| {
        b.iter_batched(
            || first_time(&exec_l),
            |l| {
                buf.clear();
                serde_json::to_writer(&mut buf, &event::lifecycle(&l, NODE, &f.clock))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // The export stage: sequence number, JSON line, the sink (writing to nowhere).
    let mut g = c.benchmark_group("export");
    g.throughput(Throughput::Elements(1));
    let mut out = export();
    for (name, ev) in [("exec", &exec_ev), ("tracepoint", &tp_ev)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.event(black_box(ev));
                out.flush()
            })
        });
    }
    g.finish();

    // Everything a record goes through, from its bytes to its line.
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(2));
    let mut cache = cache_with_parent();
    g.bench_function("exec_exit", |b| {
        b.iter(|| f.pipeline_exec_exit(&mut cache, &mut out))
    });
    g.throughput(Throughput::Elements(1));
    let mut cache = f.exec_lifecycle().0;
    g.bench_function("tracepoint", |b| {
        b.iter(|| f.pipeline_tracepoint(&mut cache, &mut out))
    });
    g.finish();
}

/// Allocations (count, bytes) per call of `op`, over many calls after a warm-up.
fn allocations(mut op: impl FnMut()) -> (f64, f64) {
    allocations_of(|| (), |()| op())
}

/// The same for `op` on inputs that `setup` makes, whose own allocations do not count.
fn allocations_of<T>(mut setup: impl FnMut() -> T, mut op: impl FnMut(T)) -> (f64, f64) {
    for _ in 0..1000 {
        op(setup());
    }
    const N: u64 = 20_000;
    let (mut allocs, mut bytes) = (0, 0);
    for _ in 0..N {
        let input = setup();
        let (a0, b0) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        op(input);
        allocs += ALLOCS.load(Ordering::Relaxed) - a0;
        bytes += BYTES.load(Ordering::Relaxed) - b0;
    }
    (allocs as f64 / N as f64, bytes as f64 / N as f64)
}

/// Allocations per event of each stage, printed, and written as JSON to
/// `$TRACER_BENCH_ALLOCS`.
fn allocation_counts() {
    let f = Fixture::new();
    let (_c, exec_l) = f.exec_lifecycle();
    let exit_l = f.exit_lifecycle();
    let mut tp_cache = f.exec_lifecycle().0;
    let Ok(RawEvent::Tracepoint(tp)) = decode::decode(&f.tracepoint) else {
        panic!("a tracepoint record")
    };
    let tp_process = tp_cache.lookup(PID, 0);
    let hook = &f.policy.hooks[0];
    let exec_ev = event::lifecycle(&exec_l, NODE, &f.clock);
    let exit_ev = event::lifecycle(&exit_l, NODE, &f.clock);
    let tp_ev = event::tracepoint(&tp, &tp_process, &f.policy, hook, NODE, &f.clock);
    let mut buf = Vec::with_capacity(1 << 16);
    let mut out = export();
    let mut cache = cache_with_parent();
    let pairs = f.decoded_pairs();
    let mut i = 0;
    let mut rows: Vec<(&str, (f64, f64), f64)> = vec![
        (
            "decode/exec",
            allocations(|| drop(black_box(decode::decode(&f.exec)))),
            1.0,
        ),
        (
            "decode/exit",
            allocations(|| drop(black_box(decode::decode(&f.exit)))),
            1.0,
        ),
        (
            "decode/tracepoint",
            allocations(|| drop(black_box(decode::decode(&f.tracepoint)))),
            1.0,
        ),
        (
            "cache/exec_exit",
            allocations_of(
                || {
                    let pair = pairs[i].clone();
                    i = (i + 1) % pairs.len();
                    pair
                },
                |(exec, exit)| {
                    black_box(cache.handle(exec));
                    black_box(cache.handle(exit));
                },
            ),
            2.0,
        ),
        (
            "event/exec",
            allocations(|| drop(black_box(event::lifecycle(&exec_l, NODE, &f.clock)))),
            1.0,
        ),
        (
            "event/exit",
            allocations(|| drop(black_box(event::lifecycle(&exit_l, NODE, &f.clock)))),
            1.0,
        ),
        (
            "event/tracepoint",
            allocations(|| {
                drop(black_box(event::tracepoint(
                    &tp,
                    &tp_process,
                    &f.policy,
                    hook,
                    NODE,
                    &f.clock,
                )))
            }),
            1.0,
        ),
    ];
    for (name, ev) in [
        ("json/exec", &exec_ev),
        ("json/exit", &exit_ev),
        ("json/tracepoint", &tp_ev),
    ] {
        let a = allocations(|| {
            buf.clear();
            let _ = serde_json::to_writer(&mut buf, ev);
        });
        rows.push((name, a, 1.0));
    }
    let a = allocations_of(
        || first_time(&exec_l),
        |l| {
            buf.clear();
            let _ = serde_json::to_writer(&mut buf, &event::lifecycle(&l, NODE, &f.clock));
        },
    );
    rows.push(("json/exec_first", a, 1.0));
    for (name, ev) in [("export/exec", &exec_ev), ("export/tracepoint", &tp_ev)] {
        let a = allocations(|| {
            out.event(ev);
            out.flush();
        });
        rows.push((name, a, 1.0));
    }
    let mut cache = cache_with_parent();
    rows.push((
        "pipeline/exec_exit",
        allocations(|| f.pipeline_exec_exit(&mut cache, &mut out)),
        2.0,
    ));
    let mut cache = f.exec_lifecycle().0;
    rows.push((
        "pipeline/tracepoint",
        allocations(|| f.pipeline_tracepoint(&mut cache, &mut out)),
        1.0,
    ));
    let mut json = serde_json::Map::new();
    println!("allocations per event:");
    for (name, (count, bytes), events) in rows {
        let (count, bytes) = (count / events, bytes / events);
        println!("  {name:<22} {count:>6.2} allocations {bytes:>8.0} bytes");
        json.insert(
            name.to_owned(),
            serde_json::json!({ "allocations": count, "bytes": bytes }),
        );
    }
    if let Some(path) = std::env::var_os("TRACER_BENCH_ALLOCS")
        && let Err(e) = std::fs::write(&path, serde_json::Value::Object(json).to_string())
    {
        eprintln!("cannot write {}: {e}", path.to_string_lossy());
    }
}

criterion_group!(benches, stages);

fn main() {
    allocation_counts();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
