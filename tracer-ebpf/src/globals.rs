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

/// This object's generation: its lifecycle programs post records only while `HANDOVER`
/// says it is the active one (`tracer_common::handover`). 0 when nothing is pinned.
#[unsafe(no_mangle)]
pub(crate) static GENERATION: u64 = 0;

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
