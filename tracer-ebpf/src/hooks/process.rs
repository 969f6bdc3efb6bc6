//! The process lifecycle: `sched_process_exec`, `sched_process_fork` and
//! `sched_process_exit`, attached as raw tracepoints. They run on exec, fork and exit
//! only, never on the syscall path. Raw tracepoint arguments are the tracepoint's
//! `TP_PROTO` (include/trace/events/sched.h), passed as plain integers.
//!
//! Each returns at once unless its generation is the active one (`emit::active`): while
//! a new agent takes over, the old agent's programs (pinned) and the new one's run side
//! by side, and exactly one of them records each exec, fork and exit.

use aya_ebpf::{
    helpers::generated::{bpf_get_current_uid_gid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use tracer_common::{
    event::{
        ENV_ERR, ENV_TRUNC, EXEC_ERR_ARGS, EXEC_ERR_BINARY, EXEC_ERR_CWD, EXEC_ERR_FILENAME,
        EXEC_NO_AUID, EXEC_SCRIPT, EXEC_TRUNC_ARGS, EXEC_TRUNC_BINARY, EXEC_TRUNC_CWD, EnvEvent,
        EventKind, ExecEvent, ExitEvent, ForkEvent,
    },
    limits::{ARGS_MAX, ENV_MAX},
    offsets::{HAS_LOGINUID, PF_KTHREAD},
    policy::{FOLLOW_BINARIES, STRING_MAX, TRACK_BINARIES},
};

use crate::{
    emit,
    globals::off,
    kread::{self, NATURAL_END, u32_at, u64_at},
    maps::{
        BIN_FOLLOW, BIN_KEY, BIN_NATURAL, BIN_VALUE, BINARY_SLOT, CONFIG, EXEC_CAPS, EXEC_PATHS,
        FOLLOW, GEN, NaturalScratch, VERDICTS,
    },
    policy,
};

/// `TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`; `p` is
/// the current task, its new image already committed.
///
/// Results go straight into the record (see `kread::set_bit` for why).
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    if !emit::active() {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let bprm: u64 = ctx.arg(2);
    // SAFETY: a valid, aligned static; volatile so the build-time zero is not folded.
    if unsafe { core::ptr::read_volatile(&raw const crate::globals::EXEC_ENV) } != 0 {
        // Reserved (and submitted) before the exec's record: the agent reads it first.
        record_env(task);
    }
    let Some(mut entry) = emit::reserve::<ExecEvent>(EventKind::Exec) else {
        return 0;
    };
    // A per-CPU array always has its entry 0; the check is for the verifier.
    let Some(nat) = BIN_NATURAL.get_ptr_mut(0) else {
        entry.discard(0);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY (every block below): `ev` points to a reserved, writable `ExecEvent` in the
    // ring buffer; its fields are written through the raw pointer (the memory is
    // uninitialised, every field is `Copy`), array fields are passed as pointers to their
    // own bytes.
    let flags = unsafe { &raw mut (*ev).flags };
    unsafe { flags.write_volatile(0) };

    let pid = u32_at(task + off!(task_tgid)).unwrap_or(0);
    let tid = u32_at(task + off!(task_pid)).unwrap_or(0);
    // SAFETY: helper without arguments.
    let uid_gid = unsafe { bpf_get_current_uid_gid() };
    let cred = u64_at(task + off!(task_cred)).unwrap_or(0);
    unsafe {
        (*ev).header = emit::header(EventKind::Exec, pid, tid);
        (*ev).ppid = u64_at(task + off!(task_real_parent))
            .and_then(|parent| u32_at(parent + off!(task_tgid)))
            .unwrap_or(0);
        (*ev).uid = uid_gid as u32;
        (*ev).gid = (uid_gid >> 32) as u32;
        (*ev).euid = u32_at(cred + off!(cred_euid)).unwrap_or(u32::MAX);
        (*ev).egid = u32_at(cred + off!(cred_egid)).unwrap_or(u32::MAX);
        (*ev).start_ns = u64_at(task + off!(task_start_time)).unwrap_or(0);
        (*ev).ns_pid = kread::ns_tgid(task).unwrap_or(0);
        (*ev).auid = u32::MAX;
        (*ev).suid = u32_at(cred + off!(cred_suid)).unwrap_or(u32::MAX);
        (*ev).sgid = u32_at(cred + off!(cred_sgid)).unwrap_or(u32::MAX);
        (*ev).fsuid = u32_at(cred + off!(cred_fsuid)).unwrap_or(u32::MAX);
        (*ev).fsgid = u32_at(cred + off!(cred_fsgid)).unwrap_or(u32::MAX);
        (*ev).securebits = u32_at(cred + off!(cred_securebits)).unwrap_or(u32::MAX);
        (*ev).per_clear = u32_at(bprm + off!(bprm_per_clear)).unwrap_or(0);
    }
    record_creds_and_namespaces(task, ev);
    record_inode(bprm, ev);
    if off!(present) & HAS_LOGINUID as u64 != 0 {
        if let Some(auid) = u32_at(task + off!(task_loginuid)) {
            unsafe { (*ev).auid = auid };
        }
    } else {
        kread::set_bit(flags, EXEC_NO_AUID);
    }

    // The path given to exec, and whether a script handler replaced the interpreter.
    let filename = u64_at(bprm + off!(bprm_filename)).unwrap_or(0);
    if filename != u64_at(bprm + off!(bprm_interp)).unwrap_or(0) {
        kread::set_bit(flags, EXEC_SCRIPT);
    }
    let n = kread::kernel_str(filename, unsafe { (&raw mut (*ev).filename).cast() });
    unsafe { (*ev).filename_len = n.unwrap_or(0) };
    if n.is_none() {
        kread::set_bit(flags, EXEC_ERR_FILENAME);
    }

    // Paths end at the task's root, so a process in a container sees its own paths.
    let fs = u64_at(task + off!(task_fs)).unwrap_or(0);
    let root = fs + off!(fs_root);
    let root = (
        u64_at(root + off!(path_mnt)).unwrap_or(0),
        u64_at(root + off!(path_dentry)).unwrap_or(0),
    );
    let file = u64_at(bprm + off!(bprm_file)).unwrap_or(0);
    // The walk also writes the path in reading order, kept for `matchBinaries`. (Always,
    // so that the verifier walks one path through the loop, not two.)
    let natural = kread::Natural {
        buf: unsafe { (&raw mut (*nat).buf).cast() },
        start: unsafe { &raw mut (*nat).start },
    };
    unsafe {
        kread::path(
            kread::Start::Path(file + off!(file_path)),
            root,
            (&raw mut (*ev).binary).cast(),
            &raw mut (*ev).binary_len,
            flags,
            (EXEC_TRUNC_BINARY, EXEC_ERR_BINARY),
            Some(&natural),
        );
        kread::path(
            kread::Start::Path(fs + off!(fs_pwd)),
            root,
            (&raw mut (*ev).cwd).cast(),
            &raw mut (*ev).cwd_len,
            flags,
            (EXEC_TRUNC_CWD, EXEC_ERR_CWD),
            None,
        );
    }
    if tracking_binaries() {
        record_binary(pid, nat);
        // SAFETY: `ev` as above; its capability sets were written just before.
        record_caps(pid, unsafe { (*ev).caps });
        if CONFIG.get(0).is_some_and(|c| c & FOLLOW_BINARIES != 0) {
            follow_binary(pid);
        }
        // A new image: the policy verdicts made for the old one no longer hold.
        forget_verdicts(pid);
    }

    let mm = u64_at(task + off!(task_mm)).unwrap_or(0);
    let arg_start = u64_at(mm + off!(mm_arg_start)).unwrap_or(0);
    let arg_end = u64_at(mm + off!(mm_arg_end)).unwrap_or(0);
    match kread::user_area::<ARGS_MAX>(arg_start, arg_end, unsafe { (&raw mut (*ev).args).cast() })
    {
        Some((n, truncated)) => {
            unsafe { (*ev).args_len = n };
            if truncated {
                kread::set_bit(flags, EXEC_TRUNC_ARGS);
            }
        }
        None => {
            unsafe { (*ev).args_len = 0 };
            kread::set_bit(flags, EXEC_ERR_ARGS);
        }
    }

    let errors = EXEC_ERR_ARGS | EXEC_ERR_BINARY | EXEC_ERR_CWD | EXEC_ERR_FILENAME;
    let read_error = unsafe { flags.read_volatile() } & errors != 0;
    emit::submit(EventKind::Exec, entry, read_error);
    0
}

/// The exec's capability sets and namespace inodes, into the record. Not inlined: one
/// copy for the verifier, called once.
#[inline(never)]
fn record_creds_and_namespaces(task: u64, ev: *mut ExecEvent) {
    use tracer_common::policy::{CAPS_EFFECTIVE, CAPS_INHERITABLE, CAPS_PERMITTED};
    let caps = [
        kread::caps(task, CAPS_EFFECTIVE).unwrap_or(0),
        kread::caps(task, CAPS_PERMITTED).unwrap_or(0),
        kread::caps(task, CAPS_INHERITABLE).unwrap_or(0),
    ];
    let ambient = u64_at(task + off!(task_cred))
        .and_then(|cred| u64_at(cred + off!(cred_cap_ambient)))
        .unwrap_or(0);
    // SAFETY: `ev` points to the reserved, writable record (see `sched_process_exec`).
    unsafe {
        (*ev).caps = caps;
        (*ev).ambient = ambient;
    }
    let mut i = 0;
    while i < tracer_common::event::NS_COUNT {
        let inum = kread::ns_inum(task, i as u8 + 1).unwrap_or(0);
        // SAFETY: as above; `i < NS_COUNT`, the array's length.
        unsafe { (*ev).ns[i] = inum };
        i += 1;
    }
}

/// The exec'd file's inode number and link count, into the record: a binary with no
/// link (a memfd, an `O_TMPFILE` or deleted file) runs from nowhere on disk.
#[inline(never)]
fn record_inode(bprm: u64, ev: *mut ExecEvent) {
    let inode = u64_at(bprm + off!(bprm_file)).and_then(|f| u64_at(f + off!(file_inode)));
    let ino = inode.and_then(|i| u64_at(i + off!(inode_ino)));
    let nlink = inode.and_then(|i| u32_at(i + off!(inode_nlink)));
    // SAFETY: `ev` points to the reserved, writable record (see `sched_process_exec`).
    unsafe {
        (*ev).ino = ino.unwrap_or(u64::MAX);
        (*ev).nlink = nlink.unwrap_or(u32::MAX);
        (*ev)._pad = 0;
    }
}

/// The new image's environment, as its own record (`EnvEvent`), bounded by `ENV_MAX`.
/// A record the ring buffer cannot take is counted; the exec is still recorded.
#[inline(never)]
fn record_env(task: u64) {
    let Some(mut entry) = emit::reserve::<EnvEvent>(EventKind::Env) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    let pid = u32_at(task + off!(task_tgid)).unwrap_or(0);
    let tid = u32_at(task + off!(task_pid)).unwrap_or(0);
    let mm = u64_at(task + off!(task_mm)).unwrap_or(0);
    let start = u64_at(mm + off!(mm_env_start)).unwrap_or(0);
    let end = u64_at(mm + off!(mm_env_end)).unwrap_or(0);
    // SAFETY: `ev` points to a reserved, writable `EnvEvent`; its fields are written
    // through the raw pointer, the array passed as a pointer to its own bytes.
    let read = kread::user_area::<ENV_MAX>(start, end, unsafe { (&raw mut (*ev).env).cast() });
    let (len, flags) = match read {
        Some((n, truncated)) => (n, if truncated { ENV_TRUNC } else { 0 }),
        None => (0, ENV_ERR),
    };
    // SAFETY: as above.
    unsafe {
        (*ev).header = emit::header(EventKind::Env, pid, tid);
        (*ev).len = len;
        (*ev).flags = flags;
    }
    emit::submit(EventKind::Env, entry, flags & ENV_ERR != 0);
}

/// `TP_PROTO(struct task_struct *parent, struct task_struct *child)`. Fires for threads
/// too; only new processes (thread-group leaders) are recorded.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    if !emit::active() {
        return 0;
    }
    let child: u64 = ctx.arg(1);
    let (Some(pid), Some(tid)) = (
        u32_at(child + off!(task_tgid)),
        u32_at(child + off!(task_pid)),
    ) else {
        emit::count(EventKind::Fork, tracer_common::counters::Counter::ReadError);
        return 0;
    };
    if pid != tid || is_kthread(child) {
        return 0;
    }
    let ppid = u64_at(child + off!(task_real_parent)).and_then(|p| u32_at(p + off!(task_tgid)));
    let start_ns = u64_at(child + off!(task_start_time));
    let Some(mut entry) = emit::reserve::<ForkEvent>(EventKind::Fork) else {
        return 0;
    };
    if tracking_binaries()
        && let Some(p) = ppid
        // SAFETY: a map value, passed straight back to the map.
        && let Some(parent) = unsafe { EXEC_PATHS.get(p) }
    {
        let _ = EXEC_PATHS.insert(pid, parent, 0);
    }
    if tracking_binaries()
        && let Some(p) = ppid
        // SAFETY: a map value, copied out.
        && let Some(bits) = unsafe { FOLLOW.get(p) }.copied()
    {
        let _ = FOLLOW.insert(pid, bits, 0);
    }
    if tracking_binaries()
        && let Some(p) = ppid
        // SAFETY: a map value, passed straight back to the map.
        && let Some(caps) = unsafe { EXEC_CAPS.get(p) }
    {
        let _ = EXEC_CAPS.insert(pid, caps, 0);
    }
    entry.write(ForkEvent {
        header: emit::header(EventKind::Fork, pid, tid),
        ppid: ppid.unwrap_or(0),
        ns_pid: kread::ns_tgid(child).unwrap_or(0),
        start_ns: start_ns.unwrap_or(0),
    });
    emit::submit(EventKind::Fork, entry, ppid.is_none() || start_ns.is_none());
    0
}

/// `TP_PROTO(struct task_struct *p, bool group_dead)` (Linux 6.16 and later): the
/// agent attaches this program where BTF shows the second argument.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    if !emit::active() {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let group_dead: u64 = ctx.arg(1);
    if group_dead & 0xff == 0 {
        return 0;
    }
    record_exit(task)
}

/// `TP_PROTO(struct task_struct *p)` (before Linux 6.16): the process has ended when
/// `signal_struct.live`, decremented before the tracepoint, has reached zero.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit_live(ctx: RawTracePointContext) -> i32 {
    if !emit::active() {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let live = u64_at(task + off!(task_signal)).and_then(|s| u32_at(s + off!(signal_live)));
    if live != Some(0) {
        return 0;
    }
    record_exit(task)
}

#[inline(always)]
fn record_exit(task: u64) -> i32 {
    if is_kthread(task) {
        return 0;
    }
    let pid = u32_at(task + off!(task_tgid));
    let tid = u32_at(task + off!(task_pid));
    let exit_code = u32_at(task + off!(task_exit_code));
    let start_ns = u64_at(task + off!(task_group_leader))
        .and_then(|leader| u64_at(leader + off!(task_start_time)));
    // The process's entries go whether or not its exit can be posted (a full ring
    // buffer): nothing else would drop them.
    if tracking_binaries()
        && let Some(p) = pid
    {
        let _ = EXEC_PATHS.remove(p);
        let _ = EXEC_CAPS.remove(p);
        let _ = FOLLOW.remove(p);
        forget_verdicts(p);
    }
    let Some(mut entry) = emit::reserve::<ExitEvent>(EventKind::Exit) else {
        return 0;
    };
    let read_error = pid.is_none() || exit_code.is_none() || start_ns.is_none();
    entry.write(ExitEvent {
        header: emit::header(EventKind::Exit, pid.unwrap_or(0), tid.unwrap_or(0)),
        exit_code: exit_code.unwrap_or(0),
        _pad: 0,
        start_ns: start_ns.unwrap_or(0),
    });
    emit::submit(EventKind::Exit, entry, read_error);
    0
}

#[inline(always)]
fn is_kthread(task: u64) -> bool {
    u32_at(task + off!(task_flags)).is_some_and(|f| f & PF_KTHREAD != 0)
}

/// Drops the policy verdicts of process `pid` (`policy/verdict.rs`): those it keeps,
/// and, through `GEN`, those each CPU cached for it.
#[inline(always)]
fn forget_verdicts(pid: u32) {
    let _ = VERDICTS.remove(pid);
    if let Some(generation) = GEN.get_ptr_mut(0) {
        // A value it never had (the clock only goes forward), whichever CPU writes last.
        // SAFETY: the map's only value, aligned: one 8-byte store.
        unsafe { generation.write_volatile(bpf_ktime_get_ns()) };
    }
}

/// Whether the agent asked for the binary of every process (`matchBinaries`).
#[inline(always)]
fn tracking_binaries() -> bool {
    CONFIG.get(0).is_some_and(|c| c & TRACK_BINARIES != 0)
}

/// `EXEC_CAPS[pid]` = `caps` (effective, permitted, inheritable), as the exec recorded them.
#[inline(always)]
fn record_caps(pid: u32, caps: [u64; 3]) {
    let _ = EXEC_CAPS.insert(pid, caps, 0);
}

/// `EXEC_PATHS[pid]` = the natural-order path the binary walk left in `n`.
#[inline(always)]
fn record_binary(pid: u32, n: *mut NaturalScratch) {
    let Some(key) = BIN_KEY.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's scratch values; nothing else uses them while we run.
    let (key, n) = unsafe { (&mut *key, &*n) };
    let start = n.start as usize;
    let len = NATURAL_END.saturating_sub(start);
    let words = key.data.as_mut_ptr().cast::<u64>();
    for w in 0..STRING_MAX / 8 {
        // SAFETY: `w * 8 + 8 <= STRING_MAX`.
        unsafe { words.add(w).write_unaligned(0) };
    }
    key.id = 0;
    if len == 0 {
        key.data[0] = b'/';
        key.len = 1;
    } else {
        let size = if len > STRING_MAX - 1 {
            STRING_MAX - 1
        } else {
            len
        };
        // SAFETY: `size < STRING_MAX` bytes into `key.data`, from `n.buf[start..]`, which
        // holds `NATURAL_BUF` bytes with `start < NATURAL_END`.
        unsafe {
            bpf_probe_read_kernel(
                key.data.as_mut_ptr().cast(),
                size as u32,
                n.buf.as_ptr().add(start & (NATURAL_END - 1)).cast(),
            )
        };
        key.len = size as u32;
    }
    #[allow(
        clippy::needless_borrows_for_generic_args,
        reason = "by value, the 264-byte key would be copied to the stack"
    )]
    let _ = EXEC_PATHS.insert(pid, &*key, 0);
}

/// The `FOLLOW` bit of `followChildren` filter `i` if the binary in `BIN_KEY` matches it,
/// else 0. A function of its own: inlined into the loop over the filters, LLVM lays the
/// loop out with its latch falling through into its head, a back-edge that verifiers
/// before 6.3 refuse.
#[inline(never)]
fn follow_filter(i: u32) -> u64 {
    use tracer_common::policy::{BIN_IN, BIN_PREFIX, OP_EQUAL, OP_POSTFIX, OP_PREFIX};
    let Some(f) = BIN_FOLLOW.get(i) else {
        return 0;
    };
    let kind = match f.op {
        BIN_IN => OP_EQUAL,
        BIN_PREFIX => OP_PREFIX,
        0 => return 0,
        _ => OP_POSTFIX,
    };
    if policy::str_lookup(kind, f.id, BINARY_SLOT) {
        1u64 << (f.bit & 63)
    } else {
        0
    }
}

/// `followChildren`: the `FOLLOW` bits of the filters whose binaries match the one just
/// recorded in `BIN_KEY`, added to the process's.
#[inline(never)]
fn follow_binary(pid: u32) {
    use tracer_common::policy::{
        ARG_KERNEL_STRING, ARG_NEEDS_EQUAL, ARG_NEEDS_POSTFIX, ARG_NEEDS_PREFIX, MAX_BIN_FOLLOW,
    };
    let (Some(key), Some(v)) = (BIN_KEY.get_ptr(0), BIN_VALUE.get_ptr_mut(0)) else {
        return;
    };
    // SAFETY: this CPU's scratch values.
    let (key, v) = unsafe { (&*key, &mut *v) };
    v.kind = u32::from(ARG_KERNEL_STRING);
    v.len = key.len;
    policy::copy_words(&key.data, &mut v.str);
    policy::build_keys(
        v,
        ARG_NEEDS_EQUAL | ARG_NEEDS_PREFIX | ARG_NEEDS_POSTFIX,
        BINARY_SLOT,
    );
    let mut bits = 0u64;
    for i in 0..MAX_BIN_FOLLOW {
        bits |= follow_filter(i);
    }
    if bits != 0 {
        // SAFETY: a map value, copied out.
        let old = unsafe { FOLLOW.get(pid) }.copied().unwrap_or(0);
        let _ = FOLLOW.insert(pid, old | bits, 0);
    }
}
