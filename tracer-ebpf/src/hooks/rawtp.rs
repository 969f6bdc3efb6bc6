//! Tracepoints of tracing policies with `raw: true`: the tracepoint's arguments as its
//! `TP_PROTO` has them (a `struct linux_binprm *` of `sched_process_exec`), not its
//! record's fields. A raw tracepoint program cannot tell which tracepoint it runs on
//! (no BPF cookie before Linux 6.10), so the object has a pool of `RAW_TP_PROGRAMS`,
//! each attached to one tracepoint, its hook point's id at its index of `BTF_POINTS`
//! (past the fentry and BPF LSM programs'). Each builds the record a kprobe would
//! (`hooks/kprobe.rs`): the arguments at 16 + 8 i, what struct arguments point to.

use core::ffi::c_void;

use aya_ebpf::{EbpfContext as _, macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{
    hooks::kprobe::{Args, Entry},
    kread,
    maps::{BTF_POINTS, BTF_PROGRAMS},
    policy,
};

/// The arguments of a raw tracepoint: an array of `u64` at the context, as many as the
/// tracepoint's prototype has. Read with a helper, not loaded from the context: a
/// program that loads past a tracepoint's arguments cannot be attached to it, and the
/// programs of the pool serve tracepoints of any arity (the agent checks each declared
/// index against the tracepoint's prototype).
struct RawArgs(*mut c_void);

impl Args for RawArgs {
    #[inline(always)]
    fn arg(&self, n: u32) -> u64 {
        kread::read::<8>(self.0 as u64 + 8 * u64::from(n))
    }
}

/// Runs the hook point of raw tracepoint program `index` of the pool.
#[inline(always)]
fn run_raw(ctx: *mut c_void, index: u32) -> i32 {
    let Some(id) = BTF_POINTS.get(2 * BTF_PROGRAMS + index).copied() else {
        return 0;
    };
    policy::run(ctx, &Entry(&RawArgs(ctx)), id)
}

macro_rules! raw_tp_slots {
    ($($name:ident = $index:literal),* $(,)?) => {
        $(
            // The tracepoint is named when the agent attaches the program.
            #[raw_tracepoint]
            pub fn $name(ctx: RawTracePointContext) -> i32 {
                let _ = run_raw(ctx.as_ptr(), $index);
                0
            }
        )*
    };
}

raw_tp_slots!(
    policy_rtp_0 = 0,
    policy_rtp_1 = 1,
    policy_rtp_2 = 2,
    policy_rtp_3 = 3,
    policy_rtp_4 = 4,
    policy_rtp_5 = 5,
    policy_rtp_6 = 6,
    policy_rtp_7 = 7,
);
