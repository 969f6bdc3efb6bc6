//! The enforcer: a kprobe on each function of a policy's `enforcers` (syscalls, as
//! Tetragon's). Where a `NotifyEnforcer` selector matched earlier in the thread (at a
//! `raw_syscalls/sys_enter` hook, say), the thread's next call of such a function is
//! stopped: it returns the selector's `argError` (by `bpf_override_return`, which the
//! kernel allows on the functions of its error-injection list, syscalls among them, when
//! built with `CONFIG_BPF_KPROBE_OVERRIDE`), and the thread gets its `argSig`. Beside it,
//! the kprobe of hooks that `Override` such a function themselves. Both are loaded only
//! where the kernel has that helper (the agent probes it at start).

use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::{
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_override_return, bpf_send_signal,
    },
    macros::kprobe,
    programs::ProbeContext,
};

use crate::{hooks::kprobe::Entry, maps::ENFORCER, policy};

/// The kprobe of a hook point whose hooks may `Override` a function that is not a
/// `security_*` one (a syscall): the evaluation's `Override` error, if any, becomes the
/// function's return, which then does not run. Loaded only where the kernel has
/// `bpf_override_return`.
#[kprobe]
pub fn policy_kp_override(ctx: ProbeContext) -> u32 {
    // SAFETY: the program's own context, as the helper asks.
    let id = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    let error = policy::run(ctx.as_ptr(), &Entry(&ctx), id);
    if error != 0 {
        // SAFETY: the probe's own registers, as the helper asks; the kernel checked that
        // the function may be overridden when the program was attached.
        unsafe { bpf_override_return(ctx.as_ptr().cast(), i64::from(error) as u64) };
    }
    0
}

#[kprobe]
pub fn policy_enforcer(ctx: ProbeContext) -> u32 {
    // SAFETY: helper without arguments.
    let id = unsafe { bpf_get_current_pid_tgid() };
    // SAFETY: a map value, copied out.
    let Some(data) = (unsafe { ENFORCER.get(id) }).copied() else {
        return 0;
    };
    let _ = ENFORCER.remove(id);
    if data.signal != 0 {
        // SAFETY: sends a signal to the current process; no memory is involved.
        unsafe { bpf_send_signal(data.signal) };
    }
    if data.error != 0 {
        // SAFETY: the probe's own registers, as the helper asks; the kernel checks that
        // the function may be overridden when the program is attached.
        unsafe { bpf_override_return(ctx.as_ptr().cast(), i64::from(data.error) as u64) };
    }
    0
}
