//! Policy hooks on tracepoints: one program, attached by the agent to every tracepoint a
//! policy traces, with the hook point's id as the attachment's BPF cookie (the record
//! cannot say which tracepoint it is: the kernel overwrites its `common_type` with a
//! pointer before a BPF program runs).

use aya_ebpf::{
    EbpfContext as _, helpers::generated::bpf_get_attach_cookie, macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::policy::HookPoint;

use crate::policy::{self, Site};

/// The tracepoint's own record.
struct Record(u64);

impl Site for Record {
    #[inline(always)]
    fn record(&self, _hp: &HookPoint) -> Option<u64> {
        Some(self.0)
    }
}

#[tracepoint]
pub fn policy_tp(ctx: TracePointContext) -> u32 {
    // SAFETY: the program's own context, as the helper asks.
    let id = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    let _ = policy::run(ctx.as_ptr(), &Record(ctx.as_ptr() as u64), id);
    0
}
