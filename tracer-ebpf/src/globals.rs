//! Values the agent hands in at load time. They live in `.rodata`, which aya freezes
//! after filling, so the verifier sees every offset as a constant.

use tracer_common::offsets::KernelOffsets;

/// Field offsets resolved by the agent from the running kernel's BTF.
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: KernelOffsets = KernelOffsets::ZERO;

/// How many bytes may wait in `EVENTS` before a record wakes the agent; 0 wakes it for
/// every record (the kernel's own rule). Below the threshold records are submitted without
/// a wake-up (no interrupt, no context switch) and the agent reads them on its timer.
#[unsafe(no_mangle)]
pub(crate) static WAKEUP_BYTES: u64 = 0;

/// Non-zero: each exec also records its environment (`EnvEvent`,
/// `--enable-process-environment-variables`).
#[unsafe(no_mangle)]
pub(crate) static EXEC_ENV: u32 = 0;

/// This object's generation: its programs (lifecycle and policies) run only while
/// `HANDOVER` says it is the active one (`tracer_common::handover`). 0 when nothing is
/// pinned.
#[unsafe(no_mangle)]
pub(crate) static GENERATION: u64 = 0;

/// The agent's own process id (tgid), 0 when not set: policy actions that stop or
/// signal a process (`Sigkill`, `Signal`, `NotifyEnforcer`) never apply to it, so that a
/// policy cannot kill the tracer that enforces it.
#[unsafe(no_mangle)]
pub(crate) static AGENT_TGID: u32 = 0;

/// Whether `pid_tgid` (from `bpf_get_current_pid_tgid`) is a thread of the agent: this
/// object's, or the one that holds the pinned set (`HANDOVER[OWNER]`), which a pinned
/// set's policies spare while it starts and takes them over.
#[inline(always)]
pub(crate) fn is_agent(pid_tgid: u64) -> bool {
    // SAFETY: AGENT_TGID is a valid, aligned static; a volatile read is a plain load from
    // .rodata, and keeps the compiler from folding the zero it sees at build time.
    let agent = unsafe { core::ptr::read_volatile(&raw const AGENT_TGID) };
    let tgid = u64::from((pid_tgid >> 32) as u32);
    (agent != 0 && tgid == u64::from(agent))
        || crate::maps::HANDOVER
            .get(tracer_common::handover::OWNER)
            .is_some_and(|owner| *owner != 0 && *owner == tgid)
}

/// Reads one field of `OFFSETS`: `off!(task_tgid)` is the offset of `task_struct.tgid`.
/// The read is volatile so that the compiler cannot fold the zeros it sees at build time.
macro_rules! off {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        // SAFETY: OFFSETS is a valid, aligned static; a volatile read of one of its
        // fields is a plain load from .rodata.
        let v = unsafe { core::ptr::read_volatile(&raw const crate::globals::OFFSETS.$field) };
        v as u64
    }};
}
pub(crate) use off;
