//! The entry half of a return probe keeps its record per thread; the return half joins
//! the return value to it.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::{bpf_get_current_pid_tgid, bpf_probe_read_kernel};
use tracer_common::policy::{HP_SOCK_RETURN, HookPoint, RETURN_AT, SOCK_RETURN_AT};

use crate::{
    kread,
    maps::{RET_ENTRY, RET_SCRATCH, SockRecord},
};

/// The entry half of a return probe (hook point `point`): keeps the record at `base` for
/// this thread, once for all the return hooks that will join it.
#[inline(never)]
pub(super) fn save_entry(base: u64, point: u32) {
    let Some(rec) = RET_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: helper without arguments.
    let tid = unsafe { bpf_get_current_pid_tgid() } as u32;
    // SAFETY: this CPU's scratch record (`SockRecord::LEN` bytes); the helper fails
    // rather than faults on `base`. Two reads: a syscall tracepoint's record is a
    // 64-byte struct on the kernel stack (header, number, six arguments), and a read
    // past the stack's end fails and zeroes all it was asked for; the rest matters only
    // for a kprobe's record, a map value of `SockRecord::LEN` bytes.
    unsafe {
        bpf_probe_read_kernel(rec.cast::<c_void>(), 64, base as *const c_void);
        bpf_probe_read_kernel(
            rec.cast::<u8>().add(64).cast::<c_void>(),
            SockRecord::LEN as u32 - 64,
            (base + 64) as *const c_void,
        );
    }
    let key = u64::from(tid) << 32 | u64::from(point);
    #[allow(
        clippy::needless_borrows_for_generic_args,
        reason = "by value, the 512-byte record would be copied to the stack"
    )]
    // SAFETY: as above; the map copies the value.
    let _ = RET_ENTRY.insert(key, unsafe { &*rec }, 0);
}

/// The return half (hook point `hp`): the record this thread's entry kept (hook point
/// `hp.pair`), with the return value (at 16 of `base`) written at `RETURN_AT` (unless
/// the value is a returned socket, whose fields are at `SOCK_RETURN_AT`); `None` without
/// an entry (the probe was attached between the two).
#[inline(never)]
pub(super) fn join(base: u64, hp: &HookPoint) -> Option<u64> {
    let pair = hp.pair;
    let write_ret = hp.flags & HP_SOCK_RETURN == 0;
    let ret = kread::read::<8>(base + 16);
    // SAFETY: helper without arguments.
    let tid = unsafe { bpf_get_current_pid_tgid() } as u32;
    let key = u64::from(tid) << 32 | u64::from(pair);
    let saved = RET_ENTRY.get_ptr(key)?;
    let rec = RET_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch record, `SockRecord::LEN` bytes copied from a map
    // value of the same type.
    unsafe {
        bpf_probe_read_kernel(
            rec.cast::<c_void>(),
            SockRecord::LEN as u32,
            saved.cast::<c_void>(),
        );
        if write_ret {
            rec.cast::<u8>()
                .add(usize::from(RETURN_AT))
                .cast::<u64>()
                .write_unaligned(ret);
        }
        // A returned socket's fields, which the kretprobe program wrote there.
        bpf_probe_read_kernel(
            rec.cast::<u8>()
                .add(usize::from(SOCK_RETURN_AT))
                .cast::<c_void>(),
            u32::from(SOCK_RETURN_AT),
            (base + u64::from(SOCK_RETURN_AT)) as *const c_void,
        );
    }
    let _ = RET_ENTRY.remove(key);
    Some(rec as u64)
}
