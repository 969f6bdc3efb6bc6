//! Sockets of policy hooks, read from the kernel's `struct sock` (fields at offsets from
//! BTF) into a record laid out as `sock:inet_sock_set_state`'s, so that the selector code
//! of the policy engine (`crate::policy`) reads a socket one way whichever hook found it: a kprobe's
//! argument, a kretprobe's return value, or the socket behind a file descriptor of a
//! syscall that stands for a socket function where there are no kprobes.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_task, generated::bpf_probe_read_kernel};
use tracer_common::policy::{
    HOOK_ENTRY_SOCK, HOOK_FD, HOOK_RET_FD_SOCK, HookConfig, RETURN_AT, SOCK_ARG_AT, SOCK_RETURN_AT,
    SockLayout,
};

use crate::{
    globals::off,
    kread::read,
    maps::{RET_SCRATCH, SockRecord},
};

/// `AF_INET`, `AF_INET6` (`include/linux/socket.h`).
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `S_IFMT`, `S_IFSOCK` (`include/uapi/linux/stat.h`).
const S_IFMT: u16 = 0o170_000;
const S_IFSOCK: u16 = 0o140_000;

/// Where field `f` of a tracepoint's layout goes when the record's region for it starts
/// at `shift` (`SOCK_RETURN_AT`, `SOCK_ARG_AT`, `KPROBE_PATH_AT`; the tracepoint's offsets
/// are below 128), or `f` itself for 0. (Shifted field by field, not as a shifted copy
/// of the layout: the copy would sit on the stack of a call chain that Linux 6.1 limits
/// to 512 bytes in all.)
#[inline(always)]
fn at(f: u16, shift: u16) -> u16 {
    if shift == 0 { f } else { (f & 0x7f) + shift }
}

/// Writes the fields of socket `sk` into `rec` where `l` (shifted to `shift`, see [`at`])
/// says the tracepoint's record has them, and nothing else. Offsets are masked into the record, which has room past the
/// mask for the widest field.
#[inline(never)]
pub(crate) fn fill(rec: &mut SockRecord, l: &SockLayout, shift: u16, sk: u64) {
    let family = read::<2>(sk + off!(sock_family)) as u16;
    let state = read::<1>(sk + off!(sock_state)) as u32;
    let dport_be = read::<2>(sk + off!(sock_dport)) as u16;
    put(rec, at(l.skaddr, shift), &sk.to_ne_bytes());
    put(rec, at(l.oldstate, shift), &state.to_ne_bytes());
    put(rec, at(l.newstate, shift), &state.to_ne_bytes());
    put(rec, at(l.family, shift), &family.to_ne_bytes());
    put(
        rec,
        at(l.protocol, shift),
        &(read::<2>(sk + off!(sock_protocol)) as u16).to_ne_bytes(),
    );
    put(
        rec,
        at(l.sport, shift),
        &(read::<2>(sk + off!(sock_num)) as u16).to_ne_bytes(),
    );
    put(
        rec,
        at(l.dport, shift),
        &u16::from_be(dport_be).to_ne_bytes(),
    );
    for (field, v4, v6) in [
        (
            at(l.saddr_v6, shift),
            off!(sock_rcv_saddr),
            off!(sock_v6_rcv_saddr),
        ),
        (at(l.daddr_v6, shift), off!(sock_daddr), off!(sock_v6_daddr)),
    ] {
        put_addr(rec, field, family == AF_INET, sk + v4, sk + v6);
    }
}

/// Writes at `field` the address at `v4` (an IPv4 one, written IPv4-mapped, as the
/// tracepoint writes an IPv4 socket's addresses) or at `v6`.
#[inline(always)]
fn put_addr(rec: &mut SockRecord, field: u16, is_v4: bool, v4: u64, v6: u64) {
    let mut addr = [0u8; 16];
    if is_v4 {
        addr[10] = 0xff;
        addr[11] = 0xff;
        // SAFETY: 4 bytes into `addr[12..]`; the helper fails rather than faults.
        unsafe {
            bpf_probe_read_kernel(
                addr.as_mut_ptr().add(12).cast::<c_void>(),
                4,
                v4 as *const c_void,
            )
        };
    } else {
        // SAFETY: 16 bytes into `addr`.
        unsafe {
            bpf_probe_read_kernel(addr.as_mut_ptr().cast::<c_void>(), 16, v6 as *const c_void)
        };
    }
    put(rec, field, &addr);
}

/// Writes the `struct sockaddr` at `addr` into `rec` where `l` says a socket's fields
/// go: its family, and for `AF_INET`/`AF_INET6` its port and address as the source's
/// (the operators `SAddr`, `SPort` read them there, as Tetragon applies them to a
/// `sockaddr`).
#[inline(never)]
pub(crate) fn fill_sockaddr(rec: &mut SockRecord, l: &SockLayout, shift: u16, addr: u64) {
    let family = read::<2>(addr) as u16;
    put(rec, at(l.family, shift), &family.to_ne_bytes());
    if family != AF_INET && family != AF_INET6 {
        return;
    }
    // `sin_port`/`sin6_port` at 2, big-endian; `sin_addr` at 4, `sin6_addr` at 8.
    put(
        rec,
        at(l.sport, shift),
        &u16::from_be(read::<2>(addr + 2) as u16).to_ne_bytes(),
    );
    put_addr(
        rec,
        at(l.saddr_v6, shift),
        family == AF_INET,
        addr + 4,
        addr + 8,
    );
}

/// Writes what the IP header of packet `skb` says into `rec` where `l` says a socket's
/// fields go: family, protocol, addresses, and the TCP or UDP ports; the packet's
/// pointer as `skaddr` and its length as `oldstate`.
#[inline(never)]
pub(crate) fn fill_skb(rec: &mut SockRecord, l: &SockLayout, shift: u16, skb: u64) {
    let head = read::<8>(skb + off!(skb_head));
    let ip = head + read::<2>(skb + off!(skb_network_header));
    let first = read::<1>(ip) as u8;
    let (family, protocol, l4) = match first >> 4 {
        4 => (
            AF_INET,
            read::<1>(ip + 9) as u16,
            ip + u64::from(first & 0xf) * 4,
        ),
        6 => (AF_INET6, read::<1>(ip + 6) as u16, ip + 40),
        _ => return,
    };
    put(rec, at(l.skaddr, shift), &skb.to_ne_bytes());
    put(
        rec,
        at(l.oldstate, shift),
        &(read::<4>(skb + off!(skb_len)) as u32).to_ne_bytes(),
    );
    put(rec, at(l.family, shift), &family.to_ne_bytes());
    put(rec, at(l.protocol, shift), &protocol.to_ne_bytes());
    // `IPPROTO_TCP`, `IPPROTO_UDP`: source and destination ports lead their headers.
    if protocol == 6 || protocol == 17 {
        put(
            rec,
            at(l.sport, shift),
            &u16::from_be(read::<2>(l4) as u16).to_ne_bytes(),
        );
        put(
            rec,
            at(l.dport, shift),
            &u16::from_be(read::<2>(l4 + 2) as u16).to_ne_bytes(),
        );
    }
    for (field, v4, v6) in [
        (at(l.saddr_v6, shift), 12, 8),
        (at(l.daddr_v6, shift), 16, 24),
    ] {
        put_addr(rec, field, family == AF_INET, ip + v4, ip + v6);
    }
}

/// The return half of a hook that reads its sockets when the call returns
/// (`HOOK_ENTRY_SOCK`, `HOOK_RET_FD_SOCK`): writes them into the return record
/// (`RET_SCRATCH`, which `return_record` has just filled). False when a socket is not an
/// IPv4 or IPv6 socket of the hook's types: the call is not the one the hook stands for
/// (a TCP connect on the `connect` syscall standing for `inet_dgram_connect`), or there
/// is no socket (a failed accept).
#[inline(never)]
pub(crate) fn at_return(cfg: &HookConfig) -> bool {
    let Some(rec) = RET_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's return record; nothing else uses it while the program runs.
    let rec = unsafe { &mut *rec };
    if cfg.flags & HOOK_ENTRY_SOCK != 0 {
        let arg0 = word(rec, 16);
        let sk = if cfg.flags & HOOK_FD != 0 {
            of_fd(arg0)
        } else {
            read::<8>(arg0 + off!(socket_sk))
        };
        if !inet_of_types(sk, cfg.kprobe.sock_types) {
            return false;
        }
        fill(rec, &cfg.sock, SOCK_ARG_AT, sk);
    }
    if cfg.flags & HOOK_RET_FD_SOCK != 0 {
        let sk = of_fd(word(rec, usize::from(RETURN_AT)));
        if !inet_of_types(sk, cfg.kprobe.sock_types) {
            return false;
        }
        fill(rec, &cfg.sock, SOCK_RETURN_AT, sk);
    }
    true
}

/// Whether `sk` is an IPv4 or IPv6 socket whose type is one of `types` (0: any).
#[inline(always)]
fn inet_of_types(sk: u64, types: u16) -> bool {
    if sk == 0 {
        return false;
    }
    let family = read::<2>(sk + off!(sock_family)) as u16;
    let ty = read::<2>(sk + off!(sock_type)) as u16;
    (family == AF_INET || family == AF_INET6) && (types == 0 || ty < 16 && types & (1 << ty) != 0)
}

/// The `struct sock *` behind file descriptor `fd` of the current task, or 0 when `fd`
/// is not an open socket: `current->files->fdt->fd[fd]`, a socket's inode, its
/// `struct socket` (`file->private_data`), and that's `sk`.
#[inline(never)]
fn of_fd(fd: u64) -> u64 {
    // A descriptor is an int: a negative one (an error returned) is no socket.
    let fd = fd as i32;
    if fd < 0 {
        return 0;
    }
    // SAFETY: helper without arguments; the current task.
    let task = unsafe { bpf_get_current_task() };
    let fdt = read::<8>(read::<8>(task + off!(task_files)) + off!(files_fdt));
    if fd as u64 >= read::<4>(fdt + off!(fdtable_max_fds)) {
        return 0;
    }
    let file = read::<8>(read::<8>(fdt + off!(fdtable_fd)) + 8 * fd as u64);
    let mode = read::<2>(read::<8>(file + off!(file_inode)) + off!(inode_mode)) as u16;
    if file == 0 || mode & S_IFMT != S_IFSOCK {
        return 0;
    }
    read::<8>(read::<8>(file + off!(file_private_data)) + off!(socket_sk))
}

/// The 8 bytes of `rec` at `at`.
#[inline(always)]
pub(crate) fn word(rec: &SockRecord, at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, v) in b.iter_mut().enumerate() {
        *v = rec.bytes[(at + i) & SockRecord::MASK];
    }
    u64::from_ne_bytes(b)
}

/// Copies `v` into `rec` at `at` (masked: the verifier sees it in bounds).
#[inline(always)]
pub(crate) fn put<const N: usize>(rec: &mut SockRecord, at: u16, v: &[u8; N]) {
    let at = usize::from(at) & SockRecord::MASK;
    for (i, b) in v.iter().enumerate() {
        rec.bytes[(at + i) & (SockRecord::LEN - 1)] = *b;
    }
}
