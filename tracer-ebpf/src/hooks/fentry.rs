//! Kprobe hooks of tracing policies on BPF trampolines, where the kernel has them: fentry
//! programs (cheaper than a kprobe: no breakpoint, no `pt_regs`), and BPF LSM programs
//! for hooks that `Override` a `security_*` function (the LSM hook's verdict is the
//! override's error). A trampoline program is loaded for one function, so the object has
//! `BTF_PROGRAMS` of each kind: the agent loads one per hooked function
//! (`tracer/src/policy/store/`) and writes its hook point's id at its index of
//! `BTF_POINTS`. Each builds the same record as the kprobe (`hooks/kprobe.rs`), reading
//! the function's arguments through the trampoline. (Past `BTF_PROGRAMS` functions, the
//! agent runs further kprobe hooks on kprobes, which have no such bound.)

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::bpf_get_func_arg,
    macros::{fentry, lsm},
    programs::{FEntryContext, LsmContext},
};

use crate::{
    hooks::kprobe::{Args, Entry},
    maps::{BTF_POINTS, BTF_PROGRAMS},
    policy,
};

/// Runs the hook point of trampoline program `index` (of `BTF_POINTS`).
#[inline(always)]
fn run_btf(ctx: *mut c_void, index: u32) -> i32 {
    let Some(id) = BTF_POINTS.get(index).copied() else {
        return 0;
    };
    policy::run(ctx, &Entry(&Trampoline(ctx)), id)
}

/// The arguments of a trampoline's function, by `bpf_get_func_arg`, which checks the
/// index against the function's argument count at run time (a direct read of the
/// context past it would be refused by the verifier, and programs are shared by slots of
/// functions of any arity).
pub(crate) struct Trampoline(*mut c_void);

impl Args for Trampoline {
    #[inline(always)]
    fn arg(&self, n: u32) -> u64 {
        let mut v: u64 = 0;
        // SAFETY: the program's own context and 8 bytes into `v`; the helper fails (and
        // leaves `v` 0) past the function's last argument.
        unsafe { bpf_get_func_arg(self.0, n, &raw mut v) };
        v
    }
}

macro_rules! fentry_slots {
    ($($name:ident = $index:literal),* $(,)?) => {
        $(
            // The function is named when the agent loads the program.
            #[fentry(function = "policy_function")]
            pub fn $name(ctx: FEntryContext) -> i32 {
                let _ = run_btf(ctx.as_ptr(), $index);
                0
            }
        )*
    };
}

fentry_slots!(
    policy_fe_0 = 0,
    policy_fe_1 = 1,
    policy_fe_2 = 2,
    policy_fe_3 = 3,
    policy_fe_4 = 4,
    policy_fe_5 = 5,
    policy_fe_6 = 6,
    policy_fe_7 = 7,
    policy_fe_8 = 8,
    policy_fe_9 = 9,
    policy_fe_10 = 10,
    policy_fe_11 = 11,
    policy_fe_12 = 12,
    policy_fe_13 = 13,
    policy_fe_14 = 14,
    policy_fe_15 = 15,
    policy_fe_16 = 16,
    policy_fe_17 = 17,
    policy_fe_18 = 18,
    policy_fe_19 = 19,
    policy_fe_20 = 20,
    policy_fe_21 = 21,
    policy_fe_22 = 22,
    policy_fe_23 = 23,
    policy_fe_24 = 24,
    policy_fe_25 = 25,
    policy_fe_26 = 26,
    policy_fe_27 = 27,
    policy_fe_28 = 28,
    policy_fe_29 = 29,
    policy_fe_30 = 30,
    policy_fe_31 = 31,
);

/// Zero, read so that the compiler cannot fold it (see `verdict`).
static ZERO: i64 = 0;

/// `v` (0 or a negative errno, as `Override`'s `argError` is validated) in a form whose
/// range the verifier sees: since 6.12 it refuses a BPF LSM program that may return
/// anything but 0 or -4095 to -1. `0 - ((0 - v) & 0xfff)`, from a zero the compiler does
/// not fold, is `v` for those values and in that range for any.
#[inline(always)]
fn verdict(v: i32) -> i32 {
    // SAFETY: a volatile read of a static.
    let zero = unsafe { core::ptr::read_volatile(&raw const ZERO) };
    let n = (zero - i64::from(v)) & 0xfff;
    (zero - n) as i32
}

macro_rules! lsm_slots {
    ($($name:ident = $index:literal),* $(,)?) => {
        $(
            // The LSM hook is named when the agent loads the program; its verdict is the
            // `Override` error of the selector that matched, or 0 (allow).
            #[lsm(hook = "policy_hook")]
            pub fn $name(ctx: LsmContext) -> i32 {
                verdict(run_btf(ctx.as_ptr(), BTF_PROGRAMS + $index))
            }
        )*
    };
}

lsm_slots!(
    policy_lsm_0 = 0,
    policy_lsm_1 = 1,
    policy_lsm_2 = 2,
    policy_lsm_3 = 3,
    policy_lsm_4 = 4,
    policy_lsm_5 = 5,
    policy_lsm_6 = 6,
    policy_lsm_7 = 7,
    policy_lsm_8 = 8,
    policy_lsm_9 = 9,
    policy_lsm_10 = 10,
    policy_lsm_11 = 11,
    policy_lsm_12 = 12,
    policy_lsm_13 = 13,
    policy_lsm_14 = 14,
    policy_lsm_15 = 15,
    policy_lsm_16 = 16,
    policy_lsm_17 = 17,
    policy_lsm_18 = 18,
    policy_lsm_19 = 19,
    policy_lsm_20 = 20,
    policy_lsm_21 = 21,
    policy_lsm_22 = 22,
    policy_lsm_23 = 23,
    policy_lsm_24 = 24,
    policy_lsm_25 = 25,
    policy_lsm_26 = 26,
    policy_lsm_27 = 27,
    policy_lsm_28 = 28,
    policy_lsm_29 = 29,
    policy_lsm_30 = 30,
    policy_lsm_31 = 31,
);
