//! Reading a hook's arguments out of the record into the event being built: integers,
//! strings (and their lookup keys, `strings.rs`), buffers, `iovec` arrays and sockets.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::{
    bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_kernel_str,
    bpf_probe_read_user, bpf_probe_read_user_str,
};
use tracer_common::policy::{
    ARG_BYTES, ARG_CHAR_ARRAY, ARG_CURRENT_PID, ARG_DATA_LOC, ARG_INT, ARG_KERNEL_BYTES,
    ARG_KERNEL_STRING, ARG_SOCK, ARG_SYSCALL64, ARG_UINT, ARG_USER_BYTES, ARG_USER_IOVEC,
    ARG_USER_STRING, ArgConfig, ArgValue, MAX_IOVECS, STRING_MAX, SockLayout, SockValue,
};

use super::strings::{build_keys, zero};
use crate::{
    kread,
    maps::{IOVEC_SCRATCH, IovecScratch, SOCK_KEYS},
};

/// Reads the socket of a `sock:inet_sock_set_state` record into `v` (a [`SockValue`] at
/// the start of its string buffer, the socket's address as its integer) and builds the
/// address keys of the socket operators.
#[inline(never)]
pub(super) fn capture_sock(base: u64, l: &SockLayout, v: &mut ArgValue) {
    v.kind = u32::from(ARG_SOCK);
    v.len = core::mem::size_of::<SockValue>() as u32;
    v.int = kread::read::<8>(base + u64::from(l.skaddr));
    let old = kread::read::<4>(base + u64::from(l.oldstate)) as u16;
    let new = kread::read::<4>(base + u64::from(l.newstate)) as u16;
    // Built in place (not on the stack, then copied: a capture is deep in the call chain,
    // whose stack Linux 6.1 limits to 512 bytes in all).
    const _: () = assert!(
        core::mem::size_of::<SockValue>() <= STRING_MAX
            && core::mem::offset_of!(ArgValue, str) % core::mem::align_of::<SockValue>() == 0
    );
    // SAFETY: `str` is at an offset of `ArgValue` (8-aligned) that `SockValue`'s
    // alignment divides, and holds at least its size (both checked above); every bit
    // pattern is a valid `SockValue`.
    let s = unsafe { &mut *v.str.as_mut_ptr().cast::<SockValue>() };
    *s = SockValue {
        family: kread::read::<2>(base + u64::from(l.family)) as u16,
        protocol: kread::read::<2>(base + u64::from(l.protocol)) as u16,
        sport: kread::read::<2>(base + u64::from(l.sport)) as u16,
        dport: kread::read::<2>(base + u64::from(l.dport)) as u16,
        state: if l.report_old != 0 { old } else { new },
        word: kread::read::<4>(base + u64::from(l.oldstate)) as u32,
        ..Default::default()
    };
    // SAFETY: 16 bytes each into the arrays; the helper fails rather than faults.
    unsafe {
        bpf_probe_read_kernel(
            s.saddr.as_mut_ptr().cast::<c_void>(),
            16,
            (base + u64::from(l.saddr_v6)) as *const c_void,
        );
        bpf_probe_read_kernel(
            s.daddr.as_mut_ptr().cast::<c_void>(),
            16,
            (base + u64::from(l.daddr_v6)) as *const c_void,
        );
    }
    for (slot, addr) in [(0, &s.saddr), (1, &s.daddr)] {
        if let Some(key) = SOCK_KEYS.get_ptr_mut(slot) {
            // SAFETY: this CPU's key slot.
            let key = unsafe { &mut *key };
            key.prefix_len = 32 + 128;
            key.data.data[..16].copy_from_slice(addr);
        }
    }
}

/// Reads argument `i` into `v` and, for a string, into the lookup keys its filters use.
/// (Inlined into its one caller, a global function: one frame fewer in the deepest call
/// chain.)
#[inline(always)]
pub(super) fn capture(base: u64, a: &ArgConfig, v: &mut ArgValue, i: u32) {
    v.kind = u32::from(a.kind);
    v.len = 0;
    v.int = 0;
    let at = base + u64::from(a.offset);
    match a.kind {
        ARG_CURRENT_PID => {
            v.kind = u32::from(ARG_INT);
            // SAFETY: helper without arguments.
            v.int = u64::from(unsafe { bpf_get_current_pid_tgid() } as u32);
            return;
        }
        ARG_INT | ARG_UINT | ARG_SYSCALL64 => {
            let mut raw: u64 = 0;
            let size = match a.size {
                1 => 1,
                2 => 2,
                4 => 4,
                _ => 8,
            };
            // SAFETY: copies at most 8 bytes of the record into `raw`; the helper fails
            // rather than faults.
            unsafe {
                bpf_probe_read_kernel((&raw mut raw).cast::<c_void>(), size, at as *const c_void)
            };
            v.int = if a.kind == ARG_INT {
                // Sign-extend from `size` bytes.
                let shift = 64 - 8 * u64::from(size);
                (((raw << shift) as i64) >> shift) as u64
            } else if a.kind == ARG_SYSCALL64 {
                v.kind = u32::from(ARG_UINT);
                kread::syscall64(raw)
            } else {
                raw
            };
            return;
        }
        ARG_BYTES => {
            zero(&mut v.str);
            let n = u32::from(a.size);
            // SAFETY: at most 255 bytes into `str` (STRING_MAX bytes); the helper fails
            // rather than faults.
            unsafe {
                bpf_probe_read_kernel(
                    v.str.as_mut_ptr().cast::<c_void>(),
                    n & 0xff,
                    at as *const c_void,
                )
            };
            v.len = n;
            return;
        }
        ARG_USER_BYTES | ARG_KERNEL_BYTES => {
            capture_bytes(base, a, v, i);
            return;
        }
        ARG_USER_IOVEC => {
            capture_iovec(base, a, v, i);
            return;
        }
        ARG_USER_STRING | ARG_KERNEL_STRING | ARG_CHAR_ARRAY | ARG_DATA_LOC => {}
        _ => return,
    }
    let src = match a.kind {
        ARG_USER_STRING | ARG_KERNEL_STRING => {
            let mut p: u64 = 0;
            // SAFETY: 8 bytes into `p`.
            unsafe { bpf_probe_read_kernel((&raw mut p).cast::<c_void>(), 8, at as *const c_void) };
            v.int = p;
            p
        }
        ARG_DATA_LOC => {
            let mut loc: u32 = 0;
            // SAFETY: 4 bytes into `loc`.
            unsafe {
                bpf_probe_read_kernel((&raw mut loc).cast::<c_void>(), 4, at as *const c_void)
            };
            base + u64::from(loc & 0xffff)
        }
        _ => at,
    };
    // Zeroed first: the `Equal` key is the whole buffer.
    zero(&mut v.str);
    let dst = v.str.as_mut_ptr().cast::<c_void>();
    // SAFETY: `dst` has STRING_MAX bytes; the helpers write at most that many, NUL
    // included, and fail rather than fault on `src`.
    let n = unsafe {
        if a.kind == ARG_USER_STRING {
            bpf_probe_read_user_str(dst, STRING_MAX as u32, src as *const c_void)
        } else {
            bpf_probe_read_kernel_str(dst, STRING_MAX as u32, src as *const c_void)
        }
    };
    v.len = if n > 0 {
        (n - 1) as u32 & (STRING_MAX as u32 - 1)
    } else {
        0
    };
    build_keys(v, a.flags, i);
}

/// Reads the buffer of argument `i` (`ARG_USER_BYTES`, `ARG_KERNEL_BYTES`): its first
/// `STRING_MAX - 1` bytes into `v.str`, its full size into `v.int`, and the lookup keys.
#[inline(never)]
fn capture_bytes(base: u64, a: &ArgConfig, v: &mut ArgValue, i: u32) {
    let ptr = kread::read::<8>(base + u64::from(a.offset));
    // A negative size (a failed call's return value) is no bytes.
    let size = kread::read::<8>(base + u64::from(a.len_at)) as i64;
    let size = if size < 0 { 0 } else { size as u64 };
    let n = if size > (STRING_MAX - 1) as u64 {
        (STRING_MAX - 1) as u32
    } else {
        size as u32
    };
    zero(&mut v.str);
    let dst = v.str.as_mut_ptr().cast::<c_void>();
    // SAFETY: at most 255 bytes into `str` (STRING_MAX bytes); the helpers fail rather
    // than fault on `ptr`.
    let rc = unsafe {
        if a.kind == ARG_USER_BYTES {
            bpf_probe_read_user(dst, n & 0xff, ptr as *const c_void)
        } else {
            bpf_probe_read_kernel(dst, n & 0xff, ptr as *const c_void)
        }
    };
    v.len = if rc == 0 { n & 0xff } else { 0 };
    v.int = size;
    build_keys(v, a.flags, i);
}

/// Reads the `struct iovec` array of argument `i` (`ARG_USER_IOVEC`): the bytes of its
/// first `MAX_IOVECS` buffers, one after another, up to `STRING_MAX - 1` into `v.str`,
/// the size of all of them into `v.int`, and the lookup keys. The running position and
/// total are kept in the scratch map, so that every path through an iteration leaves the
/// verifier the same state (it does not track map contents): checked once per iteration.
#[inline(never)]
fn capture_iovec(base: u64, a: &ArgConfig, v: &mut ArgValue, i: u32) {
    let Some(scratch) = IOVEC_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let iov = kread::read::<8>(base + u64::from(a.offset));
    let count = kread::read::<8>(base + u64::from(a.len_at)) as i64;
    // SAFETY (all accesses to `scratch`): this CPU's scratch value, which nothing else
    // uses while the program runs; fields through raw pointers.
    unsafe {
        (&raw mut (*scratch).at).write_volatile(0);
        (&raw mut (*scratch).total).write_volatile(0);
    }
    for k in 0..MAX_IOVECS as i64 {
        if k < count {
            iovec_part(scratch, iov + 16 * k as u64);
        }
    }
    zero(&mut v.str);
    // SAFETY: the first 255 bytes of the scratch's buffer into `str` (STRING_MAX bytes).
    unsafe {
        bpf_probe_read_kernel(
            v.str.as_mut_ptr().cast::<c_void>(),
            (STRING_MAX - 1) as u32,
            (&raw const (*scratch).buf).cast::<c_void>(),
        );
        v.len = ((&raw const (*scratch).at).read_volatile() & 0xff) as u32;
        v.int = (&raw const (*scratch).total).read_volatile();
    }
    build_keys(v, a.flags, i);
}

/// Appends the buffer of the `struct iovec` at `entry` (user memory) to the scratch's
/// bytes, as much as fits in `STRING_MAX - 1`, and adds its size to the total.
#[inline(always)]
fn iovec_part(scratch: *mut IovecScratch, entry: u64) {
    // `struct iovec { void *iov_base; size_t iov_len; }`.
    // SAFETY: see `capture_iovec`; 16 bytes into `entry`, zeroed first (the helper
    // fails rather than faults, and zeroes its destination when it fails).
    let (base, len, at, total) = unsafe {
        let e = &raw mut (*scratch).entry;
        bpf_probe_read_user(e.cast::<c_void>(), 16, entry as *const c_void);
        (
            (&raw const (*e)[0]).read_volatile(),
            (&raw const (*e)[1]).read_volatile(),
            (&raw const (*scratch).at).read_volatile(),
            (&raw const (*scratch).total).read_volatile(),
        )
    };
    // SAFETY: as above.
    unsafe { (&raw mut (*scratch).total).write_volatile(total.saturating_add(len)) };
    let keep = (STRING_MAX - 1) as u64;
    let room = keep - at.min(keep);
    let n = len.min(room);
    if n == 0 {
        return;
    }
    // Read back through a volatile load: the compiler knows `n <= 255` and would drop
    // the mask below, which the verifier needs to see the copy's bound.
    // SAFETY: a local, read once.
    let n = unsafe { core::ptr::read_volatile(&raw const n) } & 0xff;
    // SAFETY: the copy starts below STRING_MAX (masked) in a buffer of 2 * STRING_MAX
    // bytes and is at most 255 bytes long (masked); the helper fails rather than faults
    // on the user pointer.
    let rc = unsafe {
        bpf_probe_read_user(
            (&raw mut (*scratch).buf)
                .cast::<u8>()
                .add((at & 0xff) as usize)
                .cast::<c_void>(),
            n as u32,
            base as *const c_void,
        )
    };
    if rc == 0 {
        // SAFETY: as above.
        unsafe { (&raw mut (*scratch).at).write_volatile(at + n) };
    }
}
