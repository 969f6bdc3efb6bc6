//! Kprobes of tracing policies: one kprobe program and one kretprobe program, attached
//! by the agent to every kernel function a policy hooks, with the hook point's id as the
//! attachment's BPF cookie. The program builds a record laid out as a tracepoint's, so
//! that the same engine (`crate::policy`) runs on it, and a policy gives the same events
//! on a kprobe as on the tracepoint a kernel without kprobes uses:
//! - a socket function (`tcp_connect(struct sock *)`, `tcp_close`,
//!   `inet_csk_listen_start`): its argument 0's socket (fields at offsets from BTF),
//!   laid out as `sock:inet_sock_set_state`'s record (offsets from its format file, in
//!   the hook point's `SockLayout`);
//! - a syscall (`syscall: true`): the syscall's arguments, laid out as its
//!   `syscalls/sys_enter_NAME` record;
//! - any other function: its six argument registers at 16 + 8 i, and what its one struct
//!   argument points to at `KPROBE_PATH_AT`: the path of a `file`, `path` or
//!   `linux_binprm`, a `sock`'s fields, a `cred`'s ids and capabilities;
//! - a function of a binary (the same program on a uprobe): its argument registers, as
//!   any other function's; a USDT probe point's arguments, from registers and the
//!   process's memory as its note says (`HP_USDT`), at the same places.
//!
//! The record is built only once the process verdict has left a hook that can match.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::{
        bpf_get_attach_cookie, bpf_probe_read_kernel, bpf_probe_read_kernel_str,
        bpf_probe_read_user_str,
    },
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use tracer_common::policy::{
    CredValue, FIELD_BYTES, FIELD_DEREFS, FIELD_MAX, FIELD_NONE, FIELD_STR, FIELD_USER_STR,
    HP_KPROBE_GENERIC, HP_KPROBE_SYSCALL, HP_SOCK_RETURN, HP_USDT, HookPoint, KPROBE_ARG_BPRM,
    KPROBE_ARG_CRED, KPROBE_ARG_DENTRY, KPROBE_ARG_FIELDS, KPROBE_ARG_FILE, KPROBE_ARG_IOV_ITER,
    KPROBE_ARG_KIOCB, KPROBE_ARG_PATH, KPROBE_ARG_SKB, KPROBE_ARG_SOCK, KPROBE_ARG_SOCKADDR,
    KPROBE_ARG_SOCKET, KPROBE_IOV_LEN_AT, KPROBE_PATH_AT, KPROBE_PATH_LEN, KPROBE_STRUCT2_AT,
    KprobeLayout, SOCK_RETURN_AT, USDT_ARGS, USDT_CONST, USDT_DEREF, USDT_REG,
};

use crate::{
    globals::off,
    hooks::sock::{self, put},
    kread::{self, NATURAL_END, read},
    maps::{KPROBE_NATURAL, KPROBE_PATH, SOCK_RECORD, SockRecord},
    policy::{self, Site},
};

/// The kprobe of every policy hook point on a kernel function.
#[kprobe]
pub fn policy_kp(ctx: ProbeContext) -> u32 {
    // SAFETY: the program's own context, as the helper asks.
    let id = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    let _ = policy::run(ctx.as_ptr(), &Entry(&ctx), id);
    0
}

/// The kretprobe of every return hook point on a kernel function.
#[kretprobe]
pub fn policy_krp(ctx: RetProbeContext) -> u32 {
    // SAFETY: the program's own context, as the helper asks.
    let id = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    let _ = policy::run(ctx.as_ptr(), &Return(&ctx), id);
    0
}

/// The return half of a return probe: the return value at 16 of a record, as a
/// `sys_exit_NAME` record has it (the engine joins the entry's record to it), and a
/// returned socket's fields at `SOCK_RETURN_AT`.
struct Return<'a>(&'a RetProbeContext);

impl Site for Return<'_> {
    #[inline(always)]
    fn record(&self, hp: &HookPoint) -> Option<u64> {
        let rec = SOCK_RECORD.get_ptr_mut(0)?;
        // SAFETY: this CPU's record; kprobe programs do not nest on one CPU.
        let rec = unsafe { &mut *rec };
        let ret = self.0.ret::<u64>();
        rec.bytes = [0; SockRecord::LEN];
        if hp.flags & HP_SOCK_RETURN != 0 {
            if ret == 0 {
                // No socket accepted (a non-blocking accept with none waiting).
                return None;
            }
            // The returned socket, at `SOCK_RETURN_AT` plus the hook point's layout.
            sock::fill(rec, &hp.sock, SOCK_RETURN_AT, ret);
        }
        put(rec, 16, &ret.to_ne_bytes());
        Some(rec.bytes.as_ptr() as u64)
    }
}

/// The arguments of the hooked function: from its registers (a kprobe) or through the
/// BPF trampoline (fentry, BPF LSM: `hooks/fentry.rs`).
pub(crate) trait Args {
    fn arg(&self, n: u32) -> u64;
    /// The address of the probed task's registers (`struct pt_regs`), where the
    /// program has them (a kprobe or uprobe); 0 elsewhere.
    fn regs(&self) -> u64 {
        0
    }
}

impl Args for ProbeContext {
    #[inline(always)]
    fn arg(&self, n: u32) -> u64 {
        ProbeContext::arg::<u64>(self, n as usize).unwrap_or(0)
    }

    #[inline(always)]
    fn regs(&self) -> u64 {
        self.as_ptr() as u64
    }
}

/// The entry of a kprobe hook point (on a kprobe, fentry or BPF LSM program): its
/// record, built as the hook point says.
pub(crate) struct Entry<'a, C: Args>(pub(crate) &'a C);

impl<C: Args> Site for Entry<'_, C> {
    #[inline(always)]
    fn record(&self, hp: &HookPoint) -> Option<u64> {
        let ctx = self.0;
        let arg0 = ctx.arg(0);
        let rec = SOCK_RECORD.get_ptr_mut(0)?;
        // SAFETY: this CPU's record; kprobe programs do not nest on one CPU.
        let rec = unsafe { &mut *rec };
        if hp.flags & HP_KPROBE_SYSCALL != 0 {
            fill_syscall(rec, arg0);
        } else if hp.flags & HP_USDT != 0 {
            fill_usdt(rec, ctx.regs(), hp);
        } else if hp.flags & HP_KPROBE_GENERIC != 0 {
            fill_generic(rec, ctx, hp);
        } else {
            rec.bytes = [0; SockRecord::LEN];
            sock::fill(rec, &hp.sock, 0, arg0);
        }
        Some(rec.bytes.as_ptr() as u64)
    }
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

/// The arguments of a USDT probe point at 16 + 8 i, each read as its note says
/// (`tracer_usdt_arg`).
#[inline(never)]
fn fill_usdt(rec: &mut SockRecord, regs: u64, hp: &HookPoint) {
    let mut args = [0u64; USDT_ARGS];
    for (v, a) in args.iter_mut().zip(hp.usdt.iter()) {
        // Packed: a BPF function takes five arguments at most.
        let how = u64::from(a.kind) | u64::from(a.size) << 8 | u64::from(a.signed) << 16;
        // Read for every kind (a constant's `reg` is 0): no branch here; and a scalar
        // for the global function, which cannot be given the context pointer.
        let reg = read::<8>(regs + u64::from(a.reg));
        *v = tracer_usdt_arg(reg, how, a.value as u64);
    }
    put_args(rec, &args);
}

/// One USDT argument, as `how` packs its `UsdtArg` (kind, size, signed in bytes 0 to
/// 2): a constant (`value`), the register's value `reg`, or the process's memory at the
/// register plus `value`; sign- or zero-extended from its size.
///
/// A global function (exported, so its BTF says so), on scalars only: the verifier
/// checks it once, and each call returns an unknown value, so the six calls of
/// `fill_usdt` do not multiply its branches (Linux 6.1's verifier would walk every
/// combination of the arguments' kinds and sizes).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_usdt_arg(reg: u64, how: u64, value: u64) -> u64 {
    let (kind, size, signed) = (how as u8, (how >> 8) & 0xff, (how >> 16) & 0xff);
    let raw = match kind {
        USDT_CONST => value,
        USDT_REG => reg,
        USDT_DEREF => kread::user_u64(reg.wrapping_add(value)),
        _ => 0,
    };
    let bits = (size.clamp(1, 8) * 8) as u32;
    if bits >= 64 {
        raw
    } else if signed != 0 {
        (((raw << (64 - bits)) as i64) >> (64 - bits)) as u64
    } else {
        raw & ((1u64 << bits) - 1)
    }
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

/// The six argument registers of the call at 16 + 8 i, what its struct arguments point
/// to (`hp.kprobe`: a path, a socket's fields, a `cred`'s values at `KPROBE_PATH_AT`; a
/// second one at `KPROBE_STRUCT2_AT`), and the fields `hp.fields` reads.
#[inline(never)]
fn fill_generic<C: Args>(rec: &mut SockRecord, ctx: &C, hp: &HookPoint) {
    let args: [u64; 6] = [
        ctx.arg(0),
        ctx.arg(1),
        ctx.arg(2),
        ctx.arg(3),
        ctx.arg(4),
        ctx.arg(5),
    ];
    put_args(rec, &args);
    let k = &hp.kprobe;
    if k.struct_kind == 0 {
        return;
    }
    // The arguments from the record, at a bounded offset of a map value: an index into
    // `args` would be a variable-offset stack read (refused before 6.x), and a register
    // chosen by index a load from a modified context pointer (refused always).
    let first = sock::word(rec, 16 + 8 * (usize::from(k.struct_arg) & 7));
    let second = sock::word(rec, 16 + 8 * (usize::from(k.struct2_arg) & 7));
    fill_struct(rec, hp, false, first);
    if k.struct2_kind != 0 {
        fill_struct(rec, hp, true, second);
    }
    if k.struct_kind == KPROBE_ARG_FIELDS || k.struct2_kind as u16 == KPROBE_ARG_FIELDS {
        for f in hp.fields.iter() {
            if f.kind == FIELD_NONE {
                break;
            }
            // Packed: a BPF function takes five arguments at most.
            let how = u64::from(f.kind)
                | u64::from(f.derefs) << 8
                | u64::from(f.size) << 16
                | u64::from(f.dst) << 32
                | u64::from(f.at) << 48;
            let chain = u64::from(f.chain[0])
                | u64::from(f.chain[1]) << 16
                | u64::from(f.chain[2]) << 32
                | u64::from(f.chain[3]) << 48;
            let ptr = sock::word(rec, 16 + 8 * (usize::from(f.arg) & 7));
            tracer_read_field(ptr, chain, how);
        }
    }
}

/// The first struct argument of `hp.kprobe` (at `ptr`) into the record at
/// `KPROBE_PATH_AT`, or the second at `KPROBE_STRUCT2_AT`.
#[inline(never)]
fn fill_struct(rec: &mut SockRecord, hp: &HookPoint, second: bool, ptr: u64) {
    let k = &hp.kprobe;
    let (kind, index, at) = if second {
        (
            u16::from(k.struct2_kind),
            u16::from(k.struct2_arg),
            KPROBE_STRUCT2_AT,
        )
    } else {
        (k.struct_kind, k.struct_arg, KPROBE_PATH_AT)
    };
    match kind {
        KPROBE_ARG_FILE => {
            tracer_write_path(ptr + off!(file_path), 0);
        }
        KPROBE_ARG_PATH => {
            tracer_write_path(ptr, 0);
        }
        KPROBE_ARG_BPRM => {
            tracer_write_path(read::<8>(ptr + off!(bprm_file)) + off!(file_path), 0);
        }
        KPROBE_ARG_KIOCB => {
            tracer_write_path(read::<8>(ptr + off!(kiocb_filp)) + off!(file_path), 0);
        }
        KPROBE_ARG_DENTRY => {
            tracer_write_path(0, ptr);
        }
        KPROBE_ARG_SOCK => sock::fill(rec, &hp.sock, at, ptr),
        KPROBE_ARG_SOCKET => sock::fill(rec, &hp.sock, at, read::<8>(ptr + off!(socket_sk))),
        KPROBE_ARG_SOCKADDR => sock::fill_sockaddr(rec, &hp.sock, at, ptr),
        KPROBE_ARG_CRED => write_cred(rec, ptr),
        KPROBE_ARG_SKB => sock::fill_skb(rec, &hp.sock, at, ptr),
        KPROBE_ARG_IOV_ITER => write_iov_iter(rec, &hp.kprobe, index, ptr),
        _ => {}
    }
}

/// The user buffer of the `struct iov_iter` at `iter` (`ITER_UBUF`, or the first of
/// `ITER_IOVEC`'s): its address over argument `index`'s register at 16 + 8 i, its size at
/// `KPROBE_IOV_LEN_AT`; a size of 0 for any other kind of iterator (kernel memory).
#[inline(never)]
fn write_iov_iter(rec: &mut SockRecord, k: &KprobeLayout, index: u16, iter: u64) {
    let ty = read::<1>(iter + off!(iov_iter_type)) as u8;
    let union = read::<8>(iter + off!(iov_iter_ubuf));
    let (buf, len) = if ty == k.iter_ubuf {
        (union, read::<8>(iter + off!(iov_iter_count)))
    } else if ty == k.iter_iovec {
        // `struct iovec { void __user *iov_base; size_t iov_len; }`, in kernel memory.
        (read::<8>(union), read::<8>(union + 8))
    } else {
        (0, 0)
    };
    put(rec, 16 + 8 * (index & 7), &buf.to_ne_bytes());
    put(rec, KPROBE_IOV_LEN_AT, &len.to_ne_bytes());
}

/// One field of a struct argument (`FieldRead`, packed by `fill_generic`: kind,
/// pointers to follow, size, destination and final offset in `how`; the offsets of the
/// pointers in `chain`, 16 bits each) from `ptr` into this CPU's record.
///
/// A global function (exported, so its BTF says so) on scalars: the verifier checks it
/// once, not once per field.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_read_field(ptr: u64, chain: u64, how: u64) -> i32 {
    let Some(rec) = SOCK_RECORD.get_ptr_mut(0) else {
        return 0;
    };
    let (kind, derefs, size) = (how as u8, (how >> 8) & 0xff, (how >> 16) & 0xff);
    let (dst, at) = ((how >> 32) & 0xffff, (how >> 48) & 0xffff);
    let mut p = ptr;
    for k in 0..FIELD_DEREFS as u64 {
        if k < derefs && p != 0 {
            p = read::<8>(p + ((chain >> (16 * k)) & 0xffff));
        }
    }
    if p == 0 {
        return 0;
    }
    let n = (size as u32).min(u32::from(FIELD_MAX));
    // SAFETY: this CPU's record; kprobe programs do not nest on one CPU. At most 127
    // bytes (masked) from `KPROBE_PATH_AT` plus at most 127 (masked): inside the record's
    // 512 bytes; the helpers fail rather than fault.
    unsafe {
        let out = (*rec)
            .bytes
            .as_mut_ptr()
            .add(usize::from(KPROBE_PATH_AT) + (dst as usize & 0x7f))
            .cast::<c_void>();
        let src = (p + at) as *const c_void;
        match kind {
            FIELD_BYTES => {
                bpf_probe_read_kernel(out, n & 0x7f, src);
            }
            FIELD_STR => {
                bpf_probe_read_kernel_str(out, n & 0x7f, src);
            }
            FIELD_USER_STR => {
                bpf_probe_read_user_str(out, n & 0x7f, src);
            }
            _ => {}
        }
    }
    0
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

/// The path of the `struct path` at `path`, up to the task's root (or, with `dentry`
/// not 0, of that dentry up to the root of its file system), into the record at
/// `KPROBE_PATH_AT` (its last `KPROBE_PATH_LEN` bytes when longer).
///
/// A global function (exported, so its BTF says so) on this CPU's record
/// (`SOCK_RECORD`): the verifier checks its walk of the dentries once per program, not
/// once per kind of argument and call site, which kept kprobe and fentry programs near
/// its budget of a million instructions.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_write_path(path: u64, dentry: u64) -> i32 {
    let Some(rec) = SOCK_RECORD.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's record; kprobe programs do not nest on one CPU.
    write_path(unsafe { &mut *rec }, path, dentry);
    0
}

#[inline(always)]
fn write_path(rec: &mut SockRecord, path: u64, dentry: u64) {
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
        let start = if dentry != 0 {
            kread::Start::Dentry(dentry)
        } else {
            kread::Start::Path(path)
        };
        kread::path(
            start,
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
