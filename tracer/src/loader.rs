//! Loads the embedded programs with the kernel's offsets and attaches every hook. A hook
//! that cannot load or attach is reported with its reason and the agent goes on with
//! the rest: one missing tracepoint never takes the others down.

use aya::{
    Ebpf, EbpfLoader,
    programs::{ProgramError, RawTracePoint},
};

use crate::kernel::btf::Resolved;

/// The programs, built by build.rs for the bpf target and embedded: one file to ship.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

/// A hook of the default profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// The program's name in the object.
    pub program: &'static str,
    /// The tracepoint, `subsystem/event` (raw tracepoints attach by event name).
    pub tracepoint: &'static str,
}

impl Hook {
    fn event(&self) -> &'static str {
        self.tracepoint
            .split_once('/')
            .map_or(self.tracepoint, |(_, e)| e)
    }
}

/// Where a hook stands after loading.
#[derive(Debug)]
pub enum HookStatus {
    Attached,
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the eBPF object failed: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("no hook could be attached ({0}); see the lines above for each hook's reason")]
    NothingAttached(String),
}

pub struct Loaded {
    pub ebpf: Ebpf,
    pub hooks: Vec<(Hook, HookStatus)>,
}

/// The process lifecycle hooks for this kernel.
pub fn lifecycle_hooks(resolved: &Resolved) -> [Hook; 3] {
    [
        Hook {
            program: "sched_process_exec",
            tracepoint: "sched/sched_process_exec",
        },
        Hook {
            program: "sched_process_fork",
            tracepoint: "sched/sched_process_fork",
        },
        Hook {
            program: if resolved.exit_has_group_dead {
                "sched_process_exit"
            } else {
                "sched_process_exit_live"
            },
            tracepoint: "sched/sched_process_exit",
        },
    ]
}

/// The `EVENTS` ring buffer: its size, and how much of it may fill before a record wakes
/// the agent (0: every record wakes it; otherwise the agent also reads on a timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSize {
    pub bytes: u32,
    pub wakeup_bytes: u64,
}

impl RingSize {
    /// A ring buffer of `bytes` whose records wake the agent once an eighth of it is
    /// waiting, or, with `batched` false, at every record.
    pub fn new(bytes: u32, batched: bool) -> Self {
        Self {
            bytes,
            wakeup_bytes: if batched {
                u64::from(bytes / 8).max(1)
            } else {
                0
            },
        }
    }
}

/// Loads the object and attaches `hooks`; `ring` sizes the ring buffer.
/// `attach_overrides` (program, tracepoint event) attach a program elsewhere: the tests
/// use it to make the kernel refuse one hook for real.
pub fn load(
    resolved: &Resolved,
    hooks: &[Hook],
    ring: RingSize,
    attach_overrides: &[(String, String)],
) -> Result<Loaded, LoadError> {
    let mut ebpf = object(resolved, ring)?;
    let statuses: Vec<(Hook, HookStatus)> = hooks
        .iter()
        .map(|hook| {
            let event = attach_overrides
                .iter()
                .find(|(program, _)| program == hook.program)
                .map_or(hook.event(), |(_, event)| event.as_str());
            let status = match attach(&mut ebpf, hook, event) {
                Ok(()) => HookStatus::Attached,
                Err(reason) => HookStatus::Failed(reason),
            };
            (*hook, status)
        })
        .collect();
    if !statuses
        .iter()
        .any(|(_, s)| matches!(s, HookStatus::Attached))
    {
        let names: Vec<&str> = statuses.iter().map(|(h, _)| h.tracepoint).collect();
        return Err(LoadError::NothingAttached(names.join(", ")));
    }
    Ok(Loaded {
        ebpf,
        hooks: statuses,
    })
}

/// The object with its maps created and nothing loaded into the kernel yet.
pub fn object(resolved: &Resolved, ring: RingSize) -> Result<Ebpf, LoadError> {
    let ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &resolved.offsets, true)
        .override_global("WAKEUP_BYTES", &ring.wakeup_bytes, true)
        .map_max_entries("EVENTS", ring.bytes)
        .load(OBJECT)?;
    release_object_pages();
    Ok(ebpf)
}

/// Parsing read the whole embedded object (6 MiB) into memory, and aya keeps what it
/// parsed: the binary's pages of it only add to the agent's resident memory from here.
/// They are handed back; a later read (another parse) faults them in again from the file.
fn release_object_pages() {
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    let start = OBJECT.as_ptr() as usize;
    let first = start.next_multiple_of(page);
    let end = (start + OBJECT.len()) / page * page;
    if end <= first {
        return;
    }
    // SAFETY: the whole pages inside OBJECT, a static in the binary's read-only,
    // file-backed mapping: MADV_DONTNEED drops them from this process, and since nothing
    // ever writes them, the next read maps the same bytes from the file again. No
    // reference into them is invalidated.
    let rc = unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTNEED) };
    if rc != 0 {
        tracing::debug!(
            "could not release the embedded object's pages: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn attach(ebpf: &mut Ebpf, hook: &Hook, event: &str) -> Result<(), String> {
    let program = ebpf
        .program_mut(hook.program)
        .ok_or_else(|| format!("program `{}` is not in the object", hook.program))?;
    let tp: &mut RawTracePoint = program
        .try_into()
        .map_err(|e: ProgramError| e.to_string())?;
    tp.load().map_err(|e| match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            tracing::debug!(hook = hook.program, "verifier log:\n{verifier_log}");
            format!("the kernel refused the program ({io_error}); run with --log-level debug for the verifier log")
        }
        other => chain(&other),
    })?;
    tp.attach(event)
        .map_err(|e| format!("attaching to raw tracepoint {event}: {}", chain(&e)))?;
    Ok(())
}

/// An error with its causes: `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
