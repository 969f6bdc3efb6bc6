//! Kprobes of tracing policies on socket functions (`tcp_connect(struct sock *)`,
//! `tcp_close`, `inet_csk_listen_start`): one program per slot, which tail-calls one
//! runner (`policy_kp_run`, `policy_krp_run`), as for tracepoints. The
//! program reads the socket of argument 0 (fields at offsets from BTF) into a record laid
//! out as `sock:inet_sock_set_state`'s (offsets from its format file, in the hook's
//! `SockLayout`), so the same selector code (`hooks/policy.rs`) runs on it, and a policy
//! gives the same events on a kprobe as on the tracepoint a kernel without kprobes uses.
//! A kprobe on a syscall (`syscall: true`) reads the syscall's arguments instead, into a
//! record laid out as its `syscalls/sys_enter_NAME` tracepoint's, for the same reason.
//! A kprobe on any other function writes its six argument registers at 16 + 8 i, and
//! what its one struct argument points to at `KPROBE_PATH_AT`: the path of a `file`,
//! `path` or `linux_binprm`, a `sock`'s fields, a `cred`'s ids and capabilities.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel,
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use tracer_common::policy::{
    CredValue, HOOK_ACTIVE, HOOK_KPROBE_GENERIC, HOOK_KPROBE_SYSCALL, HOOK_SOCK_RETURN, HookConfig,
    KPROBE_ARG_BPRM, KPROBE_ARG_CRED, KPROBE_ARG_FILE, KPROBE_ARG_PATH, KPROBE_ARG_SKB,
    KPROBE_ARG_SOCK, KPROBE_PATH_AT, KPROBE_PATH_LEN, KPROBE_RUNNER, KRETPROBE_RUNNER,
    SOCK_RETURN_AT,
};

use crate::{
    globals::off,
    hooks::{
        policy::{run, run_in, slot_arg},
        sock::{self, put},
    },
    kread::{self, NATURAL_END, read},
    maps::{HOOKS, KPROBE_NATURAL, KPROBE_PATH, KPROBE_RUNNERS, SOCK_RECORD, SockRecord},
};

/// One program per slot, each only naming its slot to the kprobe runner.
macro_rules! slots {
    ($($name:ident = $slot:literal),* $(,)?) => {
        $(
            #[kprobe]
            pub fn $name(ctx: ProbeContext) -> u32 {
                run_in(&ctx, &KPROBE_RUNNERS, KPROBE_RUNNER, $slot);
                0
            }
        )*
    };
}

/// The runner of every kprobe slot.
#[kprobe]
pub fn policy_kp_run(ctx: ProbeContext) -> u32 {
    if let Some(slot) = slot_arg() {
        let _ = run_sock(&ctx, slot);
    }
    0
}

/// The runner of every kretprobe slot.
#[kretprobe]
pub fn policy_krp_run(ctx: RetProbeContext) -> u32 {
    if let Some(slot) = slot_arg() {
        let _ = run_return(&ctx, slot);
    }
    0
}

slots!(
    policy_kp_0 = 0,
    policy_kp_1 = 1,
    policy_kp_2 = 2,
    policy_kp_3 = 3,
    policy_kp_4 = 4,
    policy_kp_5 = 5,
    policy_kp_6 = 6,
    policy_kp_7 = 7,
    policy_kp_8 = 8,
    policy_kp_9 = 9,
    policy_kp_10 = 10,
    policy_kp_11 = 11,
    policy_kp_12 = 12,
    policy_kp_13 = 13,
    policy_kp_14 = 14,
    policy_kp_15 = 15,
    policy_kp_16 = 16,
    policy_kp_17 = 17,
    policy_kp_18 = 18,
    policy_kp_19 = 19,
    policy_kp_20 = 20,
    policy_kp_21 = 21,
    policy_kp_22 = 22,
    policy_kp_23 = 23,
    policy_kp_24 = 24,
    policy_kp_25 = 25,
    policy_kp_26 = 26,
    policy_kp_27 = 27,
    policy_kp_28 = 28,
    policy_kp_29 = 29,
    policy_kp_30 = 30,
    policy_kp_31 = 31,
);

macro_rules! return_slots {
    ($($name:ident = $slot:literal),* $(,)?) => {
        $(
            #[kretprobe]
            pub fn $name(ctx: RetProbeContext) -> u32 {
                run_in(&ctx, &KPROBE_RUNNERS, KRETPROBE_RUNNER, $slot);
                0
            }
        )*
    };
}

return_slots!(
    policy_krp_0 = 0,
    policy_krp_1 = 1,
    policy_krp_2 = 2,
    policy_krp_3 = 3,
    policy_krp_4 = 4,
    policy_krp_5 = 5,
    policy_krp_6 = 6,
    policy_krp_7 = 7,
    policy_krp_8 = 8,
    policy_krp_9 = 9,
    policy_krp_10 = 10,
    policy_krp_11 = 11,
    policy_krp_12 = 12,
    policy_krp_13 = 13,
    policy_krp_14 = 14,
    policy_krp_15 = 15,
    policy_krp_16 = 16,
    policy_krp_17 = 17,
    policy_krp_18 = 18,
    policy_krp_19 = 19,
    policy_krp_20 = 20,
    policy_krp_21 = 21,
    policy_krp_22 = 22,
    policy_krp_23 = 23,
    policy_krp_24 = 24,
    policy_krp_25 = 25,
    policy_krp_26 = 26,
    policy_krp_27 = 27,
    policy_krp_28 = 28,
    policy_krp_29 = 29,
    policy_krp_30 = 30,
    policy_krp_31 = 31,
);

/// The return half of a return probe: the return value at 16 of a record, as a
/// `sys_exit_NAME` record has it; `run` takes the entry's record from there.
#[inline(always)]
fn run_return(ctx: &RetProbeContext, slot: u32) -> i32 {
    let Some(rec) = SOCK_RECORD.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's record; kprobe programs do not nest on one CPU.
    let rec = unsafe { &mut *rec };
    let ret = ctx.ret::<u64>();
    rec.bytes = [0; SockRecord::LEN];
    if let Some(cfg) = HOOKS.get(slot)
        && cfg.flags & HOOK_SOCK_RETURN != 0
    {
        if ret == 0 {
            // No socket accepted (a non-blocking accept with none waiting).
            return 0;
        }
        // The returned socket, at `SOCK_RETURN_AT` plus the hook's layout.
        sock::fill(rec, &sock::shifted(&cfg.sock, SOCK_RETURN_AT), ret);
    }
    put(rec, 16, &ret.to_ne_bytes());
    run(rec.bytes.as_ptr() as u64, slot)
}

/// The arguments of the hooked function: from its registers (a kprobe) or through the
/// BPF trampoline (fentry, BPF LSM: `hooks/fentry.rs`).
pub(crate) trait Args {
    fn arg(&self, n: u32) -> u64;
}

impl Args for ProbeContext {
    #[inline(always)]
    fn arg(&self, n: u32) -> u64 {
        ProbeContext::arg::<u64>(self, n as usize).unwrap_or(0)
    }
}

/// The entry of a kprobe hook (on a kprobe, fentry or BPF LSM program): its record, then
/// the selectors. Returns `run`'s verdict (an `Override` error, or 0).
#[inline(always)]
pub(crate) fn run_sock<C: Args>(ctx: &C, slot: u32) -> i32 {
    let Some(cfg) = HOOKS.get(slot) else {
        return 0;
    };
    if cfg.flags & HOOK_ACTIVE == 0 {
        return 0;
    }
    let arg0 = ctx.arg(0);
    let Some(rec) = SOCK_RECORD.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's record; kprobe programs do not nest on one CPU.
    let rec = unsafe { &mut *rec };
    if cfg.flags & HOOK_KPROBE_SYSCALL != 0 {
        fill_syscall(rec, arg0);
    } else if cfg.flags & HOOK_KPROBE_GENERIC != 0 {
        fill_generic(rec, ctx, cfg);
    } else {
        rec.bytes = [0; SockRecord::LEN];
        sock::fill(rec, &cfg.sock, arg0);
    }
    run(rec.bytes.as_ptr() as u64, slot)
}

/// The six arguments of the syscall whose registers are at `regs` (offsets from BTF),
/// where the `syscalls/sys_enter_NAME` record has them: at 16 + 8 i.
#[inline(never)]
fn fill_syscall(rec: &mut SockRecord, regs: u64) {
    put_args(
        rec,
        &[
            read::<8>(regs + off!(regs_arg0)),
            read::<8>(regs + off!(regs_arg1)),
            read::<8>(regs + off!(regs_arg2)),
            read::<8>(regs + off!(regs_arg3)),
            read::<8>(regs + off!(regs_arg4)),
            read::<8>(regs + off!(regs_arg5)),
        ],
    );
}

/// A record of six arguments at 16 + 8 i, as a `sys_enter_NAME` record has them, and
/// zeroes elsewhere.
#[inline(always)]
fn put_args(rec: &mut SockRecord, args: &[u64; 6]) {
    rec.bytes = [0; SockRecord::LEN];
    for (i, v) in args.iter().enumerate() {
        put(rec, (16 + 8 * i) as u16, &v.to_ne_bytes());
    }
}

/// The six argument registers of the call at 16 + 8 i, and what the struct argument
/// `cfg.kprobe` names points to at `KPROBE_PATH_AT`: a path, a socket's fields, a
/// `cred`'s values.
#[inline(never)]
fn fill_generic<C: Args>(rec: &mut SockRecord, ctx: &C, cfg: &HookConfig) {
    put_args(
        rec,
        &[
            ctx.arg(0),
            ctx.arg(1),
            ctx.arg(2),
            ctx.arg(3),
            ctx.arg(4),
            ctx.arg(5),
        ],
    );
    let k = &cfg.kprobe;
    if k.struct_kind == 0 {
        return;
    }
    // Read again from the registers: an index into `args` would be a variable-offset
    // stack read, which verifiers before 6.x refuse.
    let ptr = match k.struct_arg {
        0 => ctx.arg(0),
        1 => ctx.arg(1),
        2 => ctx.arg(2),
        3 => ctx.arg(3),
        4 => ctx.arg(4),
        _ => ctx.arg(5),
    };
    match k.struct_kind {
        KPROBE_ARG_FILE => write_path(rec, ptr + off!(file_path)),
        KPROBE_ARG_PATH => write_path(rec, ptr),
        KPROBE_ARG_BPRM => write_path(rec, read::<8>(ptr + off!(bprm_file)) + off!(file_path)),
        KPROBE_ARG_SOCK => sock::fill(rec, &sock::shifted(&cfg.sock, KPROBE_PATH_AT), ptr),
        KPROBE_ARG_CRED => write_cred(rec, ptr),
        KPROBE_ARG_SKB => sock::fill_skb(rec, &sock::shifted(&cfg.sock, KPROBE_PATH_AT), ptr),
        _ => {}
    }
}

/// The ids, securebits and capability sets of the `struct cred` at `cred`, as a
/// [`CredValue`] at `KPROBE_PATH_AT`.
#[inline(never)]
fn write_cred(rec: &mut SockRecord, cred: u64) {
    let id = |at: u64| read::<4>(cred + at) as u32;
    let v = CredValue {
        uid: id(off!(cred_uid)),
        gid: id(off!(cred_gid)),
        suid: id(off!(cred_suid)),
        sgid: id(off!(cred_sgid)),
        euid: id(off!(cred_euid)),
        egid: id(off!(cred_egid)),
        fsuid: id(off!(cred_fsuid)),
        fsgid: id(off!(cred_fsgid)),
        securebits: id(off!(cred_securebits)),
        _pad: 0,
        // `kernel_cap_t`: one u64 since 6.3, two u32 (low word first) before: the same
        // eight bytes on a little-endian machine.
        cap_permitted: read::<8>(cred + off!(cred_cap_permitted)),
        cap_effective: read::<8>(cred + off!(cred_cap_effective)),
        cap_inheritable: read::<8>(cred + off!(cred_cap_inheritable)),
    };
    // SAFETY: `CredValue` is plain integers, `size_of` (64) bytes read as bytes.
    let bytes: [u8; core::mem::size_of::<CredValue>()] = unsafe { core::mem::transmute(v) };
    put(rec, KPROBE_PATH_AT, &bytes);
}

/// The path of the `struct path` at `path`, up to the task's root, into the record at
/// `KPROBE_PATH_AT` (its last `KPROBE_PATH_LEN` bytes when longer).
#[inline(never)]
fn write_path(rec: &mut SockRecord, path: u64) {
    let (Some(scratch), Some(nat)) = (KPROBE_PATH.get_ptr_mut(0), KPROBE_NATURAL.get_ptr_mut(0))
    else {
        return;
    };
    // SAFETY: helper without arguments; the current task.
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() };
    let fs = kread::u64_at(task + off!(task_fs)).unwrap_or(0);
    let root = fs + off!(fs_root);
    let root = (
        kread::u64_at(root + off!(path_mnt)).unwrap_or(0),
        kread::u64_at(root + off!(path_dentry)).unwrap_or(0),
    );
    // SAFETY (this block and the next): this CPU's scratch values, which nothing else
    // uses while a kprobe program runs on it; fields passed as pointers to their bytes.
    let natural = unsafe {
        kread::Natural {
            buf: (&raw mut (*nat).buf).cast(),
            start: &raw mut (*nat).start,
        }
    };
    unsafe {
        (&raw mut (*scratch).flags).write_volatile(0);
        kread::path(
            path,
            root,
            (&raw mut (*scratch).buf).cast(),
            &raw mut (*scratch).len,
            &raw mut (*scratch).flags,
            (1, 2),
            Some(&natural),
        );
    }
    // SAFETY: as above.
    let start = unsafe { (&raw const (*nat).start).read_volatile() } as usize;
    let len = NATURAL_END.saturating_sub(start);
    let (start, len) = if len == 0 {
        (NATURAL_END - 1, 1) // the root: "/" is written below
    } else if len > usize::from(KPROBE_PATH_LEN) {
        (
            NATURAL_END - usize::from(KPROBE_PATH_LEN),
            usize::from(KPROBE_PATH_LEN),
        )
    } else {
        (start, len)
    };
    let at = usize::from(KPROBE_PATH_AT);
    if start == NATURAL_END - 1 && len == 1 {
        rec.bytes[at] = b'/';
        return;
    }
    // SAFETY: `len <= KPROBE_PATH_LEN` bytes into the record from `KPROBE_PATH_AT`
    // (256 + 255 < 512), from the natural-order buffer (`start + len <= NATURAL_END`).
    unsafe {
        bpf_probe_read_kernel(
            rec.bytes.as_mut_ptr().add(at).cast::<c_void>(),
            (len as u32) & 0xff,
            (&raw const (*nat).buf)
                .cast::<u8>()
                .add(start & (NATURAL_END - 1))
                .cast::<c_void>(),
        )
    };
}
