//! The program of USDT hook points with a `Set` action: the uprobe program of the other
//! hook points (`hooks/kprobe.rs`), and, once the engine has evaluated the hooks, the
//! write a matching `Set` asked for (`SET_REQUEST`): its `argValue`, 4 bytes, into the
//! memory the USDT argument's note names (`-4@-20(%rbp)`). The one program that calls
//! `bpf_probe_write_user`: the kernel logs a warning when it is loaded, and refuses it
//! under lockdown, so it is loaded only for those hook points, and nothing else depends
//! on it.

use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::{bpf_get_attach_cookie, bpf_probe_write_user},
    macros::kprobe,
    programs::ProbeContext,
};
use tracer_common::policy::USDT_DEREF;

use crate::{
    hooks::kprobe::Entry,
    kread::read,
    maps::{HOOK_POINTS, SET_REQUEST},
    policy,
};

/// The uprobe of a USDT hook point some hook of which may `Set`.
#[kprobe]
pub fn policy_usdt_set(ctx: ProbeContext) -> u32 {
    // SAFETY: the program's own context, as the helper asks.
    let id = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    let Some(req) = SET_REQUEST.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's entry; programs do not nest on one CPU.
    unsafe { (*req).armed = 0 };
    let _ = policy::run(ctx.as_ptr(), &Entry(&ctx), id);
    // SAFETY: as above; copied out.
    let req = unsafe { *req };
    if req.armed == 0 {
        return 0;
    }
    let Some(hp) = HOOK_POINTS.get(id) else {
        return 0;
    };
    let Some(arg) = hp.usdt.get(req.arg as usize) else {
        return 0;
    };
    // The agent lets `Set` name only an argument in memory; checked again here.
    if arg.kind != USDT_DEREF {
        return 0;
    }
    let base = read::<8>(ctx.as_ptr() as u64 + u64::from(arg.reg));
    let value = req.value;
    // SAFETY: writes 4 bytes from `value` on this stack to the probed process's memory at
    // the argument's address; the helper checks that the address is the current task's
    // user memory, and fails (doing nothing) otherwise.
    unsafe {
        bpf_probe_write_user(
            base.wrapping_add(arg.value as u64) as *mut _,
            (&raw const value).cast(),
            4,
        )
    };
    0
}
