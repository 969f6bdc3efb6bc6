//! Syscall hooks of tracing policies on one raw tracepoint per direction: every
//! `raw_syscalls` hook, and with `--syscall-raw-tracepoints` the hooks on one syscall
//! too (by default those run on their own `syscalls/*` tracepoint, which measured
//! cheaper for the syscalls it does not trace: see the README's cost paragraph). The
//! program looks up the syscall number in `SYSCALL_SLOTS` and returns at once for a
//! syscall no hook traces, and, for a hook whose selectors all name their processes
//! (`matchPIDs`), for a process they do not name. For one that is traced it builds a [`SyscallRecord`], laid
//! out as the tracefs record of the hook's own tracepoint, and tail-calls
//! `policy_syscall`, which runs the hook's slot (`hooks/policy.rs`) on it, one slot per
//! tail call.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use tracer_common::policy::{SYSCALL_ENTER, SYSCALL_EXIT, SYSCALL_IDS, TP_SLOTS};

use crate::{
    globals::off,
    hooks::policy::run,
    maps::{
        SYSCALL_ANY, SYSCALL_GATED, SYSCALL_PID_GATE, SYSCALL_PROGS, SYSCALL_RECORD, SYSCALL_SLOTS,
    },
};

/// `sys_enter(struct pt_regs *regs, long id)`.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn syscall_enter(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let id: u64 = ctx.arg(1);
    dispatch(&ctx, SYSCALL_ENTER, regs, id, 0)
}

/// `sys_exit(struct pt_regs *regs, long ret)`: the number is read from the registers.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn syscall_exit(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let ret: u64 = ctx.arg(1);
    let id = read_u64(regs + off!(regs_nr));
    dispatch(&ctx, SYSCALL_EXIT, regs, id, ret)
}

/// Runs the lowest pending slot on this CPU's record, then tail-calls itself for the next.
#[raw_tracepoint]
pub fn policy_syscall(ctx: RawTracePointContext) -> i32 {
    let Some(rec) = SYSCALL_RECORD.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's record; the dispatcher that filled it tail-called us and nothing
    // else runs on it until this chain ends.
    let rec = unsafe { &mut *rec };
    let pending = rec.pending;
    if pending == 0 {
        return 0;
    }
    // The lowest pending slot, without branches: one verifier path for every slot (a
    // loop would make the verifier walk `run` once per slot).
    let slot = ((pending & pending.wrapping_neg()) - 1).count_ones() & (TP_SLOTS - 1);
    rec.pending = pending & !(1 << slot);
    let more = rec.pending != 0;
    run(rec.words.as_ptr() as u64, slot);
    if more {
        // SAFETY: a tail call to a program of this same type; on failure (the chain's
        // limit) it returns and the rest of the slots are skipped.
        unsafe { SYSCALL_PROGS.tail_call(&ctx, 0) };
    }
    0
}

#[inline(always)]
fn dispatch(ctx: &RawTracePointContext, dir: u32, regs: u64, id: u64, ret: u64) -> i32 {
    let mut mask = SYSCALL_ANY.get(dir).copied().unwrap_or(0);
    if id < u64::from(SYSCALL_IDS) {
        mask |= SYSCALL_SLOTS
            .get(dir * SYSCALL_IDS + id as u32)
            .copied()
            .unwrap_or(0);
    }
    if mask == 0 {
        return 0;
    }
    // Slots whose selectors all name their processes: one lookup by tgid settles them
    // for every other process, before any register is read or any tail call made.
    let gated = SYSCALL_GATED.get(0).copied().unwrap_or(0);
    if mask & gated != 0 {
        // SAFETY: helper without arguments.
        let tgid = (unsafe { bpf_get_current_pid_tgid() } >> 32) as u32;
        // SAFETY: a map value, copied out.
        let allowed = unsafe { SYSCALL_PID_GATE.get(tgid) }.copied().unwrap_or(0);
        mask &= !gated | allowed;
        if mask == 0 {
            return 0;
        }
    }
    let Some(rec) = SYSCALL_RECORD.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's record; programs on one CPU run one at a time.
    let rec = unsafe { &mut *rec };
    rec.words = [0; 8];
    rec.words[1] = id;
    if dir == SYSCALL_ENTER {
        rec.words[2] = read_u64(regs + off!(regs_arg0));
        rec.words[3] = read_u64(regs + off!(regs_arg1));
        rec.words[4] = read_u64(regs + off!(regs_arg2));
        rec.words[5] = read_u64(regs + off!(regs_arg3));
        rec.words[6] = read_u64(regs + off!(regs_arg4));
        rec.words[7] = read_u64(regs + off!(regs_arg5));
    } else {
        rec.words[2] = ret;
    }
    rec.pending = mask;
    // SAFETY: a tail call to `policy_syscall`, a raw tracepoint program like this one; if
    // it is not in the map yet nothing runs.
    unsafe { SYSCALL_PROGS.tail_call(ctx, 0) };
    0
}

/// Eight bytes of kernel memory at `at`, 0 if unreadable.
#[inline(always)]
fn read_u64(at: u64) -> u64 {
    let mut v: u64 = 0;
    // SAFETY: writes 8 bytes into `v`; the helper fails rather than faults on `at`.
    unsafe { bpf_probe_read_kernel((&raw mut v).cast::<c_void>(), 8, at as *const c_void) };
    v
}
