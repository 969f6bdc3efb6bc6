//! Syscall hooks of tracing policies on one raw tracepoint per direction: every
//! `raw_syscalls` hook point, and with `--syscall-raw-tracepoints` the hook points on
//! one syscall too (by default those run on their own `syscalls/*` tracepoint, which
//! measured cheaper for the syscalls it does not trace: see the README's cost
//! paragraph). The program looks up the syscall number in `SYSCALL_POINTS` and returns
//! at once for a syscall no hook traces; for one that is traced, the engine builds a
//! [`SyscallRecord`], laid out as the tracefs record of the hooks' own tracepoint, only
//! once the process verdict has left a hook that can match.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext as _, helpers::generated::bpf_probe_read_kernel, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use tracer_common::policy::{HookPoint, SYSCALL_ENTER, SYSCALL_EXIT, SYSCALL_IDS, SyscallRecord};

use crate::{
    globals::off,
    kread,
    maps::{SYSCALL_ANY, SYSCALL_POINTS, SYSCALL_RECORD},
    policy::{self, Site},
};

/// `sys_enter(struct pt_regs *regs, long id)`.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn syscall_enter(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let id: u64 = ctx.arg(1);
    dispatch(ctx.as_ptr(), SYSCALL_ENTER, regs, id, 0);
    0
}

/// `sys_exit(struct pt_regs *regs, long ret)`: the number is read from the registers.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn syscall_exit(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let ret: u64 = ctx.arg(1);
    let id = read_u64(regs + off!(regs_nr));
    dispatch(ctx.as_ptr(), SYSCALL_EXIT, regs, id, ret);
    0
}

/// Runs the hook point of syscall `id` in direction `dir`, then the one of every
/// syscall (`raw_syscalls`); `ctx` is the program's context.
#[inline(always)]
fn dispatch(ctx: *mut c_void, dir: u32, regs: u64, id: u64, ret: u64) {
    let numbered = if id < u64::from(SYSCALL_IDS) {
        SYSCALL_POINTS
            .get(dir * SYSCALL_IDS + id as u32)
            .copied()
            .unwrap_or(0)
    } else {
        0
    };
    // A 32-bit syscall's number is in another table (x86's `int 0x80`): the `syscalls/*`
    // tracepoints skip such syscalls, and so do their hook points here.
    let numbered = if numbered != 0 && kread::in_compat_syscall() {
        0
    } else {
        numbered
    };
    let any = SYSCALL_ANY.get(dir).copied().unwrap_or(0);
    if numbered == 0 && any == 0 {
        return;
    }
    let site = Syscall { dir, regs, id, ret };
    // One call of the engine, inlined once.
    for id in [numbered, any] {
        if id != 0 {
            let _ = policy::run(ctx, &site, id);
        }
    }
}

/// A syscall's record, built when a hook point asks (twice when both the syscall's and
/// every syscall's hook points have candidates: rare, and cheaper to verify than a cache).
struct Syscall {
    dir: u32,
    regs: u64,
    id: u64,
    ret: u64,
}

impl Site for Syscall {
    #[inline(always)]
    fn record(&self, _hp: &HookPoint) -> Option<u64> {
        let rec = SYSCALL_RECORD.get_ptr_mut(0)?;
        // SAFETY: this CPU's record; programs on one CPU run one at a time.
        let rec: &mut SyscallRecord = unsafe { &mut *rec };
        rec.words = [0; 8];
        rec.words[1] = self.id;
        if self.dir == SYSCALL_ENTER {
            let regs = self.regs;
            rec.words[2] = read_u64(regs + off!(regs_arg0));
            rec.words[3] = read_u64(regs + off!(regs_arg1));
            rec.words[4] = read_u64(regs + off!(regs_arg2));
            rec.words[5] = read_u64(regs + off!(regs_arg3));
            rec.words[6] = read_u64(regs + off!(regs_arg4));
            rec.words[7] = read_u64(regs + off!(regs_arg5));
        } else {
            rec.words[2] = self.ret;
        }
        Some(rec.words.as_ptr() as u64)
    }
}

/// Eight bytes of kernel memory at `at`, 0 if unreadable.
#[inline(always)]
fn read_u64(at: u64) -> u64 {
    let mut v: u64 = 0;
    // SAFETY: writes 8 bytes into `v`; the helper fails rather than faults on `at`.
    unsafe { bpf_probe_read_kernel((&raw mut v).cast::<c_void>(), 8, at as *const c_void) };
    v
}
