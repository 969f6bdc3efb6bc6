//! A hook point's argument gate: the one argument that every selector of its covered
//! hooks filters with `Equal` (integers, strings) or `Prefix` (strings), read once and
//! looked up once for all of them. Strings are looked up by their first
//! `GATE_STR_BYTES` bytes: what passes is evaluated whole, so the gate only needs to
//! let through every call that can match.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel_str, bpf_probe_read_user_str,
    },
    maps::lpm_trie::Key,
};
use tracer_common::policy::{
    ARG_CHAR_ARRAY, ARG_CURRENT_PID, ARG_DATA_LOC, ARG_INT, ARG_KERNEL_STRING, ARG_SYSCALL64,
    ARG_UINT, ARG_USER_STRING, ArgConfig, ArgGate, CANDIDATES_ALL, GATE_INT, GATE_STR,
    GATE_STR_BYTES, GateHit, GateIntKey, GateStrKey,
};

use crate::{
    kread,
    maps::{GATE_INTS, GATE_STRS},
};

/// Every covered hook (the gate cannot tell).
const ALL: GateHit = GateHit {
    n: CANDIDATES_ALL,
    hooks: [0; tracer_common::policy::VERDICT_HOOKS],
};

/// The covered hooks whose filters the gate's argument in the record at `base` can
/// satisfy (none: `n` 0).
#[inline(never)]
pub(super) fn check(base: u64, gate: &ArgGate) -> GateHit {
    match gate.kind {
        GATE_INT => {
            let key = GateIntKey {
                id: gate.id,
                _pad: 0,
                value: int(base, &gate.arg),
            };
            // SAFETY: a map value, copied out.
            unsafe { GATE_INTS.get(key) }.copied().unwrap_or_default()
        }
        GATE_STR => {
            let Some(data) = string_head(base, &gate.arg) else {
                return ALL;
            };
            let key = Key::new(
                (32 + 8 * GATE_STR_BYTES) as u32,
                GateStrKey {
                    id: gate.id.to_be_bytes(),
                    data,
                },
            );
            GATE_STRS.get(&key).copied().unwrap_or_default()
        }
        _ => ALL,
    }
}

/// An integer argument, as `capture` reads it (sign-extended from its size for `int`).
#[inline(always)]
fn int(base: u64, a: &ArgConfig) -> u64 {
    let at = base + u64::from(a.offset);
    let v = match (a.kind, a.size) {
        // SAFETY: helper without arguments.
        (ARG_CURRENT_PID, _) => u64::from(unsafe { bpf_get_current_pid_tgid() } as u32),
        (ARG_INT, 1) => kread::read::<1>(at) as u8 as i8 as i64 as u64,
        (ARG_INT, 2) => kread::read::<2>(at) as u16 as i16 as i64 as u64,
        (ARG_INT, 4) => kread::read::<4>(at) as u32 as i32 as i64 as u64,
        (ARG_UINT | ARG_SYSCALL64, 1) => kread::read::<1>(at),
        (ARG_UINT | ARG_SYSCALL64, 2) => kread::read::<2>(at),
        (ARG_UINT | ARG_SYSCALL64, 4) => kread::read::<4>(at),
        _ => kread::read::<8>(at),
    };
    // A syscall number is read as unsigned, then marked as `capture` marks it.
    if a.kind == ARG_SYSCALL64 {
        kread::syscall64(v)
    } else {
        v
    }
}

/// The first `GATE_STR_BYTES` bytes of a string argument, zero past its end; `None` when
/// it cannot be read (the gate then lets every covered hook through, and capture says
/// what it read).
#[inline(always)]
fn string_head(base: u64, a: &ArgConfig) -> Option<[u8; GATE_STR_BYTES]> {
    let at = base + u64::from(a.offset);
    let src = match a.kind {
        ARG_USER_STRING | ARG_KERNEL_STRING => kread::read::<8>(at),
        ARG_DATA_LOC => base + (kread::read::<4>(at) & 0xffff),
        ARG_CHAR_ARRAY => at,
        _ => return None,
    };
    // One byte more for the NUL the helpers always write.
    let mut buf = [0u8; 2 * GATE_STR_BYTES];
    let dst = buf.as_mut_ptr().cast::<c_void>();
    let size = GATE_STR_BYTES as u32 + 1;
    // SAFETY: at most `size` bytes into `buf`, which has more; the helpers fail rather
    // than fault on `src`.
    let n = unsafe {
        if a.kind == ARG_USER_STRING {
            bpf_probe_read_user_str(dst, size, src as *const c_void)
        } else {
            bpf_probe_read_kernel_str(dst, size, src as *const c_void)
        }
    };
    if n <= 0 {
        return None;
    }
    let mut head = [0u8; GATE_STR_BYTES];
    head.copy_from_slice(&buf[..GATE_STR_BYTES]);
    // The NUL the helper wrote after 8 bytes of a longer string is not the string's.
    Some(head)
}
