//! Programs that do nothing, one per program type: the agent loads and attaches each at
//! start (`tracer/src/kernel/features.rs`) to learn what this kernel runs, so that a
//! policy's hook runs on the cheapest kind that works, and `tracer status` can say so.
//! They are detached again at once.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_override_return},
    macros::{btf_tracepoint, fentry, fexit, kprobe, kretprobe, lsm, raw_tracepoint, tracepoint},
    programs::{
        BtfTracePointContext, FEntryContext, FExitContext, LsmContext, ProbeContext,
        RawTracePointContext, RetProbeContext, TracePointContext,
    },
};

#[kprobe]
pub fn probe_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

#[kretprobe]
pub fn probe_kretprobe(_ctx: RetProbeContext) -> u32 {
    0
}

/// A kprobe that can override a return value (`Override`): the kernel must have
/// `CONFIG_BPF_KPROBE_OVERRIDE` to load it, and the function must be on its error
/// injection list to attach it.
#[kprobe]
pub fn probe_override(ctx: ProbeContext) -> u32 {
    // The idle task (pid 0) makes no syscalls: never taken, but the verifier checks it.
    if bpf_get_current_pid_tgid() == 0 {
        // SAFETY: the probe's own registers, as the helper asks.
        unsafe { bpf_override_return(ctx.regs, 0) };
    }
    0
}

#[fentry(function = "tcp_connect")]
pub fn probe_fentry(_ctx: FEntryContext) -> u32 {
    0
}

#[fexit(function = "tcp_connect")]
pub fn probe_fexit(_ctx: FExitContext) -> u32 {
    0
}

#[tracepoint]
pub fn probe_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn probe_raw_tracepoint(_ctx: RawTracePointContext) -> i32 {
    0
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn probe_btf_tracepoint(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[lsm(hook = "socket_connect")]
pub fn probe_lsm(_ctx: LsmContext) -> i32 {
    0
}
