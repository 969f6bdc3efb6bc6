//! Loads the embedded programs with the kernel's offsets and attaches every hook. A hook
//! that cannot load or attach is reported with its reason and the agent goes on with
//! the rest: one missing tracepoint never takes the others down.

use aya::{
    Ebpf, EbpfLoader,
    programs::{ProgramError, RawTracePoint, raw_trace_point::RawTracePointLinkId},
};

use std::path::{Path, PathBuf};

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
    /// Attached; the link stays the program's until it is taken (to pin it).
    Attached(RawTracePointLinkId),
    /// Attached, and its link pinned (`handover`): it stays when the agent stops.
    Pinned,
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the eBPF object failed: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("no hook could be attached ({0}); see the lines above for each hook's reason")]
    NothingAttached(String),
    #[error(
        "/proc/sys/kernel/perf_event_max_stack is {have}: the stack trace map (`STACKS`, stacks of {need} addresses) cannot be created below {need}; set it with `sysctl -w kernel.perf_event_max_stack={need}`"
    )]
    StackDepth { have: u64, need: usize },
}

/// The kernel refuses a stack trace map whose stacks are deeper than its
/// `perf_event_max_stack` (`max_stack`: the sysctl's text; `None` where it cannot be
/// read, and the map's creation says what is wrong).
fn check_stack_depth(max_stack: Option<&str>) -> Result<(), LoadError> {
    use tracer_common::limits::STACK_DEPTH;
    match max_stack.and_then(|s| s.trim().parse::<u64>().ok()) {
        Some(have) if have < STACK_DEPTH as u64 => Err(LoadError::StackDepth {
            have,
            need: STACK_DEPTH,
        }),
        _ => Ok(()),
    }
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

/// The smallest ring buffer, for an object that traces nothing (`tracer status`).
impl Default for RingSize {
    fn default() -> Self {
        Self::new(4096, false)
    }
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

/// The sizes of the policy maps that grow with the policies loaded (hash maps and tries
/// without preallocation take memory only for what they hold; `HOOK_POINTS`, an array,
/// for its size): the most hooks (and policies, and string or gate values of each kind)
/// and hook points the kernel can hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub hooks: u32,
    pub hook_points: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            hooks: 16_384,
            hook_points: 4_096,
        }
    }
}

/// How the programs share a pinned set with other agents (`handover`): their generation
/// and the maps pinned (a map pinned at its path is used, one missing is made and
/// pinned). The default: nothing pinned, generation 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sharing {
    pub generation: u64,
    pub pinned_maps: Vec<(&'static str, PathBuf)>,
}

/// What the lifecycle programs capture beyond the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capture {
    /// Each exec's environment (`--enable-process-environment-variables`), as a record of
    /// its own before the exec's.
    pub env: bool,
}

/// How the object is loaded: the sizes of its maps, what it captures, the pinned set it
/// shares, and whether its programs keep their line information.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub ring: RingSize,
    pub capacity: Capacity,
    pub capture: Capture,
    pub sharing: Sharing,
    pub line_info: bool,
}

/// Loads the object and attaches `hooks`.
/// `attach_overrides` (program, tracepoint event) attach a program elsewhere: the tests
/// use it to make the kernel refuse one hook for real.
pub fn load(
    resolved: &Resolved,
    hooks: &[Hook],
    settings: &Settings,
    attach_overrides: &[(String, String)],
) -> Result<Loaded, LoadError> {
    let mut ebpf = object(resolved, settings)?;
    let statuses: Vec<(Hook, HookStatus)> = hooks
        .iter()
        .map(|hook| {
            let event = attach_overrides
                .iter()
                .find(|(program, _)| program == hook.program)
                .map_or(hook.event(), |(_, event)| event.as_str());
            let status = match attach(&mut ebpf, hook, event) {
                Ok(link) => HookStatus::Attached(link),
                Err(reason) => HookStatus::Failed(reason),
            };
            (*hook, status)
        })
        .collect();
    if !statuses
        .iter()
        .any(|(_, s)| matches!(s, HookStatus::Attached(_)))
    {
        let names: Vec<&str> = statuses.iter().map(|(h, _)| h.tracepoint).collect();
        return Err(LoadError::NothingAttached(names.join(", ")));
    }
    Ok(Loaded {
        ebpf,
        hooks: statuses,
    })
}

/// The object with its maps created and nothing loaded into the kernel yet; without
/// `settings.line_info`, its programs' source line information is left out.
pub fn object(resolved: &Resolved, settings: &Settings) -> Result<Ebpf, LoadError> {
    let Settings {
        ring,
        capacity,
        capture,
        sharing,
        line_info,
    } = settings;
    let without_lines = (!*line_info).then(|| without_line_info(OBJECT));
    let data = match &without_lines {
        Some(Ok(data)) => data.as_slice(),
        Some(Err(e)) => {
            tracing::debug!("the programs keep their line information: {e}");
            OBJECT
        }
        None => OBJECT,
    };
    check_stack_depth(
        std::fs::read_to_string("/proc/sys/kernel/perf_event_max_stack")
            .ok()
            .as_deref(),
    )?;
    let exec_env = u32::from(capture.env);
    // Policies' Sigkill, Signal and NotifyEnforcer never apply to the agent itself.
    let agent_tgid = std::process::id();
    let mut loader = EbpfLoader::new();
    loader
        .override_global("OFFSETS", &resolved.offsets, true)
        .override_global("WAKEUP_BYTES", &ring.wakeup_bytes, true)
        .override_global("EXEC_ENV", &exec_env, true)
        .override_global("GENERATION", &sharing.generation, true)
        .override_global("AGENT_TGID", &agent_tgid, true)
        .map_max_entries("EVENTS", ring.bytes)
        .map_max_entries("HOOK_POINTS", capacity.hook_points);
    for map in [
        "HOOKS",
        "POLICY_COUNTERS",
        "GATE_INTS",
        "GATE_STRS",
        "STR_EQUAL",
        "STR_PREFIX",
        "STR_POSTFIX",
    ] {
        loader.map_max_entries(map, capacity.hooks);
    }
    for (map, path) in &sharing.pinned_maps {
        loader.map_pin_path(map, path.as_path());
    }
    let ebpf = loader.load(data)?;
    drop(without_lines);
    release_object_pages();
    Ok(ebpf)
}

/// A copy of the object `elf` whose `.BTF.ext` section says it has no line information
/// (its `line_info_len` is 0): aya keeps each program's line records for as long as the
/// agent runs (about 3.5 MiB), and they serve only to annotate verifier logs. Function
/// information, which the kernel needs, stays.
fn without_line_info(elf: &[u8]) -> Result<Vec<u8>, String> {
    use object::{Object as _, ObjectSection as _};
    /// `struct btf_ext_header`: magic (u16), version, flags (u8 each), hdr_len,
    /// func_info_off, func_info_len, line_info_off, line_info_len (u32 each).
    const MAGIC: u16 = 0xeb9f;
    const LINE_INFO_LEN_AT: usize = 20;
    let file = object::File::parse(elf).map_err(|e| format!("the object does not parse: {e}"))?;
    let section = file
        .section_by_name(".BTF.ext")
        .ok_or("the object has no .BTF.ext section")?;
    let (offset, size) = section
        .file_range()
        .ok_or(".BTF.ext has no bytes in the file")?;
    let start = usize::try_from(offset).map_err(|e| e.to_string())?;
    let size = usize::try_from(size).map_err(|e| e.to_string())?;
    if size < LINE_INFO_LEN_AT + 4 {
        return Err(".BTF.ext is shorter than its header".to_owned());
    }
    let header = elf
        .get(start..start + LINE_INFO_LEN_AT + 4)
        .ok_or(".BTF.ext lies past the end of the object")?;
    if u16::from_le_bytes([header[0], header[1]]) != MAGIC {
        return Err(".BTF.ext does not start with the BTF magic (little-endian)".to_owned());
    }
    let mut copy = elf.to_vec();
    // The ELF reader reads its headers in place, as the embedded object is aligned for.
    if copy.as_ptr().align_offset(8) != 0 {
        return Err("the copy is not 8-byte aligned".to_owned());
    }
    copy[start + LINE_INFO_LEN_AT..start + LINE_INFO_LEN_AT + 4].fill(0);
    Ok(copy)
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

fn attach(ebpf: &mut Ebpf, hook: &Hook, event: &str) -> Result<RawTracePointLinkId, String> {
    let program = ebpf
        .program_mut(hook.program)
        .ok_or_else(|| format!("program `{}` is not in the object", hook.program))?;
    let tp: &mut RawTracePoint = program
        .try_into()
        .map_err(|e: ProgramError| e.to_string())?;
    tp.load().map_err(|e| refusal(hook.program, &e))?;
    tp.attach(event)
        .map_err(|e| format!("attaching to raw tracepoint {event}: {}", chain(&e)))
}

/// Why the kernel did not load program `name`, for people: for a refusal, the
/// verifier's reason (the last line of its log before its statistics), the whole log
/// going to the debug log. The one place such errors are worded.
pub(crate) fn refusal(name: &str, e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            tracing::debug!("verifier log of {name}:\n{log}");
            let last = log
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| {
                    !l.is_empty()
                        && !l.starts_with("processed ")
                        && !l.starts_with("verification time")
                        && !l.starts_with("stack depth")
                })
                .unwrap_or_default();
            if last.contains("bpf_probe_write_user") {
                format!(
                    "the kernel refused {name} ({io_error}: {last}): {}",
                    write_user_refused(Path::new(LOCKDOWN))
                )
            } else if last.is_empty() {
                format!(
                    "the kernel refused {name} ({io_error}); --log-level debug shows the verifier log"
                )
            } else {
                format!(
                    "the kernel refused {name} ({io_error}: {last}); --log-level debug shows the verifier log"
                )
            }
        }
        other => format!("{name}: {}", chain(other)),
    }
}

/// The kernel's lockdown mode, as securityfs shows it.
const LOCKDOWN: &str = "/sys/kernel/security/lockdown";

/// Why a kernel refuses `bpf_probe_write_user` (the `Set` action), from the lockdown file
/// at `lockdown` (`none [integrity] confidentiality`).
fn write_user_refused(lockdown: &Path) -> String {
    let mode = std::fs::read_to_string(lockdown).ok().and_then(|s| {
        let start = s.find('[')? + 1;
        let end = start + s[start..].find(']')?;
        Some(s[start..end].to_owned())
    });
    match mode.as_deref() {
        Some(m) if m != "none" => format!(
            "writing to a process's memory (`Set`) takes bpf_probe_write_user, which kernel lockdown (`{m}`, {}) forbids; it runs only on a kernel that is not locked down",
            lockdown.display()
        ),
        _ => format!(
            "writing to a process's memory (`Set`) takes bpf_probe_write_user, which needs CAP_SYS_ADMIN and a kernel not locked down ({}: {})",
            lockdown.display(),
            mode.map_or_else(
                || "not readable (is securityfs mounted?)".to_owned(),
                |m| format!("`{m}`")
            )
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_memory_write_names_the_lockdown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lockdown");
        std::fs::write(&file, "none [integrity] confidentiality\n").unwrap();
        assert_eq!(
            write_user_refused(&file),
            format!(
                "writing to a process's memory (`Set`) takes bpf_probe_write_user, which kernel lockdown (`integrity`, {}) forbids; it runs only on a kernel that is not locked down",
                file.display()
            )
        );
        std::fs::write(&file, "[none] integrity confidentiality\n").unwrap();
        assert!(write_user_refused(&file).ends_with(": `none`)"));
        assert!(
            write_user_refused(&dir.path().join("absent"))
                .ends_with("not readable (is securityfs mounted?))")
        );
    }

    #[test]
    fn a_stack_depth_below_the_maps_is_named_with_its_fix() {
        assert!(check_stack_depth(Some("127\n")).is_ok());
        assert!(check_stack_depth(Some("512\n")).is_ok());
        assert!(check_stack_depth(None).is_ok(), "unreadable: the map says");
        let e = check_stack_depth(Some("64\n")).unwrap_err().to_string();
        assert_eq!(
            e,
            "/proc/sys/kernel/perf_event_max_stack is 64: the stack trace map (`STACKS`, stacks of 127 addresses) cannot be created below 127; set it with `sysctl -w kernel.perf_event_max_stack=127`"
        );
    }

    #[test]
    fn line_information_is_left_out_and_nothing_else() {
        let copy = without_line_info(OBJECT).unwrap();
        assert_eq!(copy.len(), OBJECT.len());
        let changed: Vec<usize> = (0..copy.len()).filter(|&i| copy[i] != OBJECT[i]).collect();
        assert!(
            !changed.is_empty(),
            "the object has line information to leave out"
        );
        assert!(
            changed.len() <= 4,
            "only line_info_len changes: {changed:?}"
        );
        // The copy is still an ELF object with its programs.
        use object::Object as _;
        let file = object::File::parse(copy.as_slice()).unwrap();
        assert!(file.section_by_name("tracepoint").is_some());
        // Something that is not an object is refused, not patched.
        assert!(without_line_info(b"not an ELF object").is_err());
    }
}
