//! Tracepoints of tracing policies. Each traced tracepoint gets a slot: the program
//! `policy_tp_<slot>` is attached to it, names its slot and tail-calls `policy_tp_run`,
//! which finds the slot's [`HookConfig`] at that index of `HOOKS`. (The record cannot say which tracepoint it is: the kernel overwrites its
//! `common_type` with a pointer before a BPF program runs, and aya attaches tracepoints
//! without a BPF cookie.) The arguments are captured once (strings also into the lookup keys their
//! filters need), the selectors tried in order, and only a hit that a selector posts is
//! copied to the ring buffer: events nobody asked for never cross.
//!
//! String comparisons are map lookups, not byte loops: `Equal` in a hash map, `Prefix`
//! and `Postfix` (reversed) in LPM tries, each key prefixed by the filter's id.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext,
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user,
        bpf_probe_read_user_str, bpf_send_signal,
    },
    macros::tracepoint,
    maps::ProgramArray,
    programs::TracePointContext,
};
use tracer_common::{
    counters::Counter,
    event::EventKind,
    policy::{
        ACTION_NOPOST, ACTION_OVERRIDE, ACTION_POST, ACTION_SIGKILL, ACTION_SIGNAL, ARG_BYTES,
        ARG_CHAR_ARRAY, ARG_CURRENT_PID, ARG_DATA_LOC, ARG_INT, ARG_KERNEL_BYTES,
        ARG_KERNEL_STRING, ARG_NEEDS_EQUAL, ARG_NEEDS_POSTFIX, ARG_NEEDS_PREFIX, ARG_SOCK,
        ARG_UINT, ARG_USER_BYTES, ARG_USER_IOVEC, ARG_USER_STRING, ArgConfig, ArgFilter, ArgValue,
        BIN_IN, BIN_NOT_IN, BIN_NOT_POSTFIX, BIN_NOT_PREFIX, BIN_POSTFIX, BIN_PREFIX, BinaryFilter,
        EVENT_MONITOR, EVENT_SIGNAL_FAILED, HOOK_ACTIVE, HOOK_BINARY_EQUAL, HOOK_BINARY_POSTFIX,
        HOOK_BINARY_PREFIX, HOOK_CGROUP_SCOPE, HOOK_ENTRY_SOCK, HOOK_MONITOR, HOOK_RET_FD_SOCK,
        HOOK_RETURN, HOOK_SAVE_ENTRY, HOOK_SOCK_RETURN, HOOK_SOCK_TRIGGER, HookConfig, LONG_PREFIX,
        MAX_ARG_FILTERS, MAX_CAP_FILTERS, MAX_HOOK_ARGS, MAX_INT_VALUES, MAX_IOVECS,
        MAX_NS_FILTERS, MAX_NS_VALUES, MAX_PIDS, MAX_SELECTORS, NS_USER, OP_DADDR, OP_DPORT,
        OP_DPORT_PRIV, OP_EQUAL, OP_FAMILY, OP_GT, OP_LT, OP_MASK, OP_NOT_EQUAL, OP_NOT_POSTFIX,
        OP_NOT_PREFIX, OP_POSTFIX, OP_PREFIX, OP_PROTOCOL, OP_SADDR, OP_SPORT, OP_SPORT_PRIV,
        OP_STATE, PIDS_IN, PIDS_NOT_IN, POLICY_COUNTERS_PER, POLICY_LOST, POLICY_MATCHED,
        POLICY_POSTED, POLICY_RATE_LIMITED, POLICY_SEEN, PREFIX_MAX, PidFilter, RATE_GLOBAL,
        RATE_PROCESS, RETURN_AT, RateKey, SOCK_RETURN_AT, STRING_MAX, ScopeKey, SelectorConfig,
        SockLayout, SockValue, TP_SLOTS, TracepointEvent,
    },
};

use crate::{
    emit, kread,
    maps::{
        ARG_EQUAL_KEYS, ARG_POSTFIX_KEYS, ARG_PREFIX_KEYS, BIN_VALUE, BINARY_SLOT, EVENTS,
        EXEC_PATHS, FOLLOW, HOOKS, IOVEC_SCRATCH, IovecScratch, LONG_KEY, POLICY_COUNTERS,
        POLICY_SCOPE, RATE, RET_ENTRY, RET_SCRATCH, SLOT_ARG, SOCK_KEYS, STR_EQUAL, STR_POSTFIX,
        STR_PREFIX, SockRecord, TP_RUNNER, TP_SCRATCH,
    },
};

/// One program per slot, each only naming its slot to the runner.
macro_rules! slots {
    ($($name:ident = $slot:literal),* $(,)?) => {
        $(
            #[tracepoint]
            pub fn $name(ctx: TracePointContext) -> u32 {
                run_in(&ctx, &TP_RUNNER, 0, $slot);
                0
            }
        )*
    };
}

/// The runner of every tracepoint slot: the selectors of the slot in `SLOT_ARG`.
#[tracepoint]
pub fn policy_tp_run(ctx: TracePointContext) -> u32 {
    if let Some(slot) = slot_arg() {
        let _ = run(ctx.as_ptr() as u64, slot);
    }
    0
}

/// Hands `slot` to the runner at `index` of `runners` and tail-calls it: a slot
/// program's whole body. Returns only when the runner is not there (not loaded yet).
/// `runners` holds programs of the caller's own type only (the agent puts them there).
#[inline(always)]
pub(crate) fn run_in<C: EbpfContext>(ctx: &C, runners: &ProgramArray, index: u32, slot: u32) {
    let Some(cell) = SLOT_ARG.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's cell; tracepoint and kprobe programs do not nest on one CPU, and
    // the runner reads it before anything else can run here.
    unsafe { *cell = slot };
    // SAFETY: a tail call to a program of the caller's type; on failure it returns, and
    // the caller returns at once.
    unsafe { runners.tail_call(ctx, index) };
}

/// The slot the tail-calling slot program named (bounded for the verifier, as every
/// slot is below `TP_SLOTS`, a power of two).
#[inline(always)]
pub(crate) fn slot_arg() -> Option<u32> {
    SLOT_ARG.get(0).map(|slot| *slot & (TP_SLOTS - 1))
}

slots!(
    policy_tp_0 = 0,
    policy_tp_1 = 1,
    policy_tp_2 = 2,
    policy_tp_3 = 3,
    policy_tp_4 = 4,
    policy_tp_5 = 5,
    policy_tp_6 = 6,
    policy_tp_7 = 7,
    policy_tp_8 = 8,
    policy_tp_9 = 9,
    policy_tp_10 = 10,
    policy_tp_11 = 11,
    policy_tp_12 = 12,
    policy_tp_13 = 13,
    policy_tp_14 = 14,
    policy_tp_15 = 15,
    policy_tp_16 = 16,
    policy_tp_17 = 17,
    policy_tp_18 = 18,
    policy_tp_19 = 19,
    policy_tp_20 = 20,
    policy_tp_21 = 21,
    policy_tp_22 = 22,
    policy_tp_23 = 23,
    policy_tp_24 = 24,
    policy_tp_25 = 25,
    policy_tp_26 = 26,
    policy_tp_27 = 27,
    policy_tp_28 = 28,
    policy_tp_29 = 29,
    policy_tp_30 = 30,
    policy_tp_31 = 31,
);

/// Evaluates the hook of `slot` on the tracefs-shaped record at `base` (the tracepoint's
/// own, or a syscall record built by `hooks/syscall.rs`).
#[inline(always)]
pub(crate) fn run(base: u64, slot: u32) -> i32 {
    let Some(cfg) = HOOKS.get(slot) else {
        return 0;
    };
    if cfg.flags & HOOK_ACTIVE == 0 {
        // A cleared slot (being detached).
        return 0;
    }
    if cfg.flags & HOOK_CGROUP_SCOPE != 0 && !in_scope(cfg.policy_id) {
        // Not one of the pods the policy applies to.
        return 0;
    }
    if cfg.flags & HOOK_SAVE_ENTRY != 0 {
        save_entry(base, slot);
        return 0;
    }
    let base = if cfg.flags & HOOK_RETURN != 0 {
        match return_record(
            base,
            u32::from(cfg.kprobe.pair),
            cfg.flags & HOOK_SOCK_RETURN == 0,
        ) {
            Some(b) => b,
            None => return 0,
        }
    } else {
        base
    };
    if cfg.flags & (HOOK_ENTRY_SOCK | HOOK_RET_FD_SOCK) != 0 && !super::sock::at_return(cfg) {
        return 0;
    }
    if cfg.flags & HOOK_SOCK_TRIGGER != 0 && !sock_triggers(base, &cfg.sock) {
        // Not the transition this hook stands for: not a hit at all.
        return 0;
    }
    policy_count(cfg.policy_id, POLICY_SEEN);
    let Some(ev) = TP_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's scratch record; nothing else uses it while we run.
    let ev = unsafe { &mut *ev };
    for i in 0..MAX_HOOK_ARGS {
        if i as u32 >= cfg.nargs {
            break;
        }
        if cfg.args[i].kind == ARG_SOCK {
            // A returned socket sits `offset` bytes further (`SOCK_RETURN_AT`).
            capture_sock(
                base + u64::from(cfg.args[i].offset),
                &cfg.sock,
                &mut ev.args[i],
            );
        } else {
            capture(base, &cfg.args[i], &mut ev.args[i], i as u32);
        }
    }

    // SAFETY: helper without arguments.
    let pid_tgid = unsafe { bpf_get_current_pid_tgid() };
    let tgid = (pid_tgid >> 32) as u32;
    let binary_known = cfg.flags & (HOOK_BINARY_EQUAL | HOOK_BINARY_PREFIX | HOOK_BINARY_POSTFIX)
        != 0
        && binary_keys(cfg.flags, tgid);
    let Some((sel_index, actions, signal)) = select(cfg, ev, tgid, binary_known) else {
        return 0;
    };
    policy_count(cfg.policy_id, POLICY_MATCHED);

    let mut flags = 0;
    if actions & (ACTION_SIGKILL | ACTION_SIGNAL) != 0 {
        if cfg.flags & HOOK_MONITOR != 0 {
            flags |= EVENT_MONITOR;
        } else {
            let sig = if actions & ACTION_SIGKILL != 0 {
                9
            } else {
                signal
            };
            // SAFETY: sends `sig` to the current process; no memory is involved.
            if unsafe { bpf_send_signal(sig) } != 0 {
                flags |= EVENT_SIGNAL_FAILED;
            }
        }
    }
    // `Override`: what the hook's program returns (a BPF LSM program's verdict).
    let verdict = if actions & ACTION_OVERRIDE != 0 && cfg.flags & HOOK_MONITOR == 0 {
        let sel = &cfg.selectors[(sel_index as usize) & (MAX_SELECTORS - 1)];
        sel.override_error
    } else {
        if actions & ACTION_OVERRIDE != 0 {
            flags |= EVENT_MONITOR;
        }
        0
    };
    if actions & ACTION_NOPOST != 0 {
        return verdict;
    }
    let sel = &cfg.selectors[(sel_index as usize) & (MAX_SELECTORS - 1)];
    if sel.rate_limit_ns != 0 && rate_limited(sel, slot << 8 | sel_index, pid_tgid, ev, cfg.nargs) {
        policy_count(cfg.policy_id, POLICY_RATE_LIMITED);
        return verdict;
    }
    ev.header = emit::header(
        EventKind::Tracepoint,
        (pid_tgid >> 32) as u32,
        pid_tgid as u32,
    );
    ev.policy_id = cfg.policy_id;
    ev.event_id = slot;
    ev.action = u32::from(actions);
    ev.selector = sel_index;
    ev.nargs = cfg.nargs;
    ev.flags = flags;
    if EVENTS
        .output::<TracepointEvent>(&*ev, emit::wakeup(size_of::<TracepointEvent>() as u64))
        .is_ok()
    {
        policy_count(cfg.policy_id, POLICY_POSTED);
        emit::count(EventKind::Tracepoint, Counter::Emitted);
    } else {
        policy_count(cfg.policy_id, POLICY_LOST);
        emit::count(EventKind::Tracepoint, Counter::RingBufFull);
    }
    verdict
}

/// Whether the current task's cgroup is one policy `policy_id` applies to.
#[inline(never)]
fn in_scope(policy_id: u32) -> bool {
    let key = ScopeKey {
        policy_id,
        _pad: 0,
        // SAFETY: helper without arguments.
        cgroup: unsafe { bpf_get_current_cgroup_id() },
    };
    // SAFETY: a lookup whose value is only tested for presence.
    unsafe { POLICY_SCOPE.get(key) }.is_some()
}

/// The entry half of a return probe: keeps the record at `base` for this thread.
#[inline(never)]
fn save_entry(base: u64, slot: u32) {
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
    let key = u64::from(tid) << 32 | u64::from(slot);
    #[allow(
        clippy::needless_borrows_for_generic_args,
        reason = "by value, the 512-byte record would be copied to the stack"
    )]
    // SAFETY: as above; the map copies the value.
    let _ = RET_ENTRY.insert(key, unsafe { &*rec }, 0);
}

/// The return half: the record this thread's entry kept (slot `pair`), with the return
/// value (at 16 of `base`) written at `RETURN_AT` (unless `write_ret` is false: a
/// returned socket, whose fields are at `SOCK_RETURN_AT`, and where a socket entry's
/// record has its own fields); `None` without an entry (the probe
/// was attached between the two).
#[inline(never)]
fn return_record(base: u64, pair: u32, write_ret: bool) -> Option<u64> {
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

/// Whether a `sock:inet_sock_set_state` record is one of the transitions of `l`.
#[inline(always)]
fn sock_triggers(base: u64, l: &SockLayout) -> bool {
    let old = kread::read::<4>(base + u64::from(l.oldstate)) as u32;
    let new = kread::read::<4>(base + u64::from(l.newstate)) as u32;
    let proto = kread::read::<2>(base + u64::from(l.protocol)) as u16;
    (l.protocol_is == 0 || proto == l.protocol_is)
        && old < 16
        && new < 16
        && l.old_states & (1 << old) != 0
        && l.new_states & (1 << new) != 0
}

/// Reads the socket of a `sock:inet_sock_set_state` record into `v` (a [`SockValue`] at
/// the start of its string buffer, the socket's address as its integer) and builds the
/// address keys of the socket operators.
#[inline(never)]
fn capture_sock(base: u64, l: &SockLayout, v: &mut ArgValue) {
    v.kind = u32::from(ARG_SOCK);
    v.len = core::mem::size_of::<SockValue>() as u32;
    v.int = kread::read::<8>(base + u64::from(l.skaddr));
    let old = kread::read::<4>(base + u64::from(l.oldstate)) as u16;
    let new = kread::read::<4>(base + u64::from(l.newstate)) as u16;
    let mut s = SockValue {
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
    // SAFETY: `str` has STRING_MAX >= size_of::<SockValue>() bytes; unaligned write.
    unsafe { v.str.as_mut_ptr().cast::<SockValue>().write_unaligned(s) };
    for (slot, addr) in [(0, &s.saddr), (1, &s.daddr)] {
        if let Some(key) = SOCK_KEYS.get_ptr_mut(slot) {
            // SAFETY: this CPU's key slot.
            let key = unsafe { &mut *key };
            key.prefix_len = 32 + 128;
            key.data.data[..16].copy_from_slice(addr);
        }
    }
}

/// Whether a post of this selector, for these arguments, falls within its `rateLimit`
/// window; if not, the window starts now.
#[inline(never)]
/// `slot_sel` is `slot << 8 | selector` (a BPF function takes at most five arguments).
fn rate_limited(
    sel: &SelectorConfig,
    slot_sel: u32,
    pid_tgid: u64,
    ev: &TracepointEvent,
    nargs: u32,
) -> bool {
    // FNV-1a over the integers and the first 40 bytes of each string.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..MAX_HOOK_ARGS {
        if i as u32 >= nargs {
            break;
        }
        let v = &ev.args[i];
        h = (h ^ v.int).wrapping_mul(0x0100_0000_01b3);
        if matches!(v.kind as u8, ARG_INT | ARG_UINT) {
            continue;
        }
        // Strings are zero-padded past their end (see `capture`).
        let words = v.str.as_ptr().cast::<u64>();
        for w in 0..5 {
            // SAFETY: `w * 8 + 8 <= 40 <= STRING_MAX`.
            h = (h ^ unsafe { words.add(w).read_unaligned() }).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let key = RateKey {
        slot: slot_sel >> 8,
        selector: slot_sel & 0xff,
        who: match sel.rate_scope {
            RATE_PROCESS => (pid_tgid >> 32) as u32,
            RATE_GLOBAL => 0,
            _ => pid_tgid as u32,
        },
        _pad: 0,
        args: h,
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a map value, read while this program runs.
    if let Some(last) = unsafe { RATE.get(key) }
        && now.wrapping_sub(*last) < sel.rate_limit_ns
    {
        return true;
    }
    let _ = RATE.insert(key, now, 0);
    false
}

#[inline(always)]
fn policy_count(policy: u32, counter: u32) {
    let idx = policy
        .wrapping_mul(POLICY_COUNTERS_PER)
        .wrapping_add(counter);
    if let Some(slot) = POLICY_COUNTERS.get_ptr_mut(idx) {
        // SAFETY: this CPU's slot of a per-CPU array; programs on one CPU do not race.
        unsafe { *slot += 1 };
    }
}

/// Reads argument `i` into `v` and, for a string, into the lookup keys its filters use.
#[inline(never)]
fn capture(base: u64, a: &ArgConfig, v: &mut ArgValue, i: u32) {
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
        ARG_INT | ARG_UINT => {
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
    let mut e = [0u64; 2];
    // SAFETY: 16 bytes into `e`; the helper fails rather than faults.
    unsafe { bpf_probe_read_user(e.as_mut_ptr().cast::<c_void>(), 16, entry as *const c_void) };
    // SAFETY: see `capture_iovec`.
    let (at, total) = unsafe {
        (
            (&raw const (*scratch).at).read_volatile(),
            (&raw const (*scratch).total).read_volatile(),
        )
    };
    // SAFETY: as above.
    unsafe { (&raw mut (*scratch).total).write_volatile(total.saturating_add(e[1])) };
    let keep = (STRING_MAX - 1) as u64;
    let room = keep - at.min(keep);
    let n = e[1].min(room);
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
            e[0] as *const c_void,
        )
    };
    if rc == 0 {
        // SAFETY: as above.
        unsafe { (&raw mut (*scratch).at).write_volatile(at + n) };
    }
}

/// The lookup keys of the string in `v` that `flags` (`ARG_NEEDS_*`) ask for, in key slot
/// `i`: each from the one read of the string.
#[inline(always)]
pub(crate) fn build_keys(v: &ArgValue, flags: u8, i: u32) {
    let len = v.len & (STRING_MAX as u32 - 1);
    // The `Equal` key is also where a `Prefix` longer than an LPM key is checked from.
    if flags & (ARG_NEEDS_EQUAL | ARG_NEEDS_PREFIX) != 0
        && let Some(key) = ARG_EQUAL_KEYS.get_ptr_mut(i)
    {
        // SAFETY: this CPU's slot of a per-CPU array.
        let key = unsafe { &mut *key };
        key.len = len;
        copy_words(&v.str, &mut key.data);
    }
    let affix = if len as usize > PREFIX_MAX {
        PREFIX_MAX as u32
    } else {
        len
    };
    if flags & ARG_NEEDS_PREFIX != 0
        && let Some(key) = ARG_PREFIX_KEYS.get_ptr_mut(i)
    {
        // SAFETY: as above.
        let key = unsafe { &mut *key };
        key.prefix_len = 32 + 8 * affix;
        copy_words(&v.str, &mut key.data.data);
    }
    if flags & ARG_NEEDS_POSTFIX != 0
        && let Some(key) = ARG_POSTFIX_KEYS.get_ptr_mut(i)
    {
        // SAFETY: as above.
        let key = unsafe { &mut *key };
        key.prefix_len = 32 + 8 * affix;
        // Reversed: the last byte first. Bytes past `len` are outside the prefix length.
        let last = len.wrapping_sub(1) as usize;
        for j in 0..PREFIX_MAX {
            key.data.data[j] = v.str[last.wrapping_sub(j) & (STRING_MAX - 1)];
        }
    }
}

/// Builds the binary's lookup keys (key slot `BINARY_SLOT`) from `EXEC_PATHS`; false
/// when the process's binary is not known.
#[inline(never)]
fn binary_keys(hook_flags: u32, tgid: u32) -> bool {
    // SAFETY: a map value, read while this program runs.
    let (Some(path), Some(v)) = (unsafe { EXEC_PATHS.get(tgid) }, BIN_VALUE.get_ptr_mut(0)) else {
        return false;
    };
    // SAFETY: this CPU's scratch value.
    let v = unsafe { &mut *v };
    v.kind = u32::from(ARG_KERNEL_STRING);
    v.len = path.len;
    copy_words(&path.data, &mut v.str);
    let mut flags = 0;
    if hook_flags & HOOK_BINARY_EQUAL != 0 {
        flags |= ARG_NEEDS_EQUAL;
    }
    if hook_flags & HOOK_BINARY_PREFIX != 0 {
        flags |= ARG_NEEDS_PREFIX;
    }
    if hook_flags & HOOK_BINARY_POSTFIX != 0 {
        flags |= ARG_NEEDS_POSTFIX;
    }
    build_keys(v, flags, BINARY_SLOT);
    true
}

/// Whether the string of argument `arg` (longer than `PREFIX_MAX`) starts with one of
/// filter `id`'s `Prefix` values that are too long for the LPM trie: those sit in
/// `STR_EQUAL` under `id | LONG_PREFIX` with their own length, so the string is looked
/// up truncated to each length from its own down to `PREFIX_MAX + 1` (at most 7 lookups,
/// and only for strings that long).
#[inline(never)]
fn long_prefix(id: u32, arg: u32) -> bool {
    let (Some(full), Some(key)) = (ARG_EQUAL_KEYS.get_ptr_mut(arg), LONG_KEY.get_ptr_mut(0)) else {
        return false;
    };
    // SAFETY: this CPU's key slot for `arg` (built with the prefix keys) and this CPU's
    // scratch key.
    let (full, key) = unsafe { (&*full, &mut *key) };
    let len = full.len;
    if len as usize <= PREFIX_MAX {
        return false;
    }
    key.id = id | LONG_PREFIX;
    // Zero-padded past `len`, as the hash map's keys are.
    copy_words(&full.data, &mut key.data);
    for back in 0..STRING_MAX - 1 - PREFIX_MAX {
        let l = (STRING_MAX - 1 - back) as u32;
        if l <= len {
            key.len = l;
            // SAFETY: a lookup with a fully initialised key.
            #[allow(
                clippy::needless_borrows_for_generic_args,
                reason = "by value, the 264-byte key would be copied to the stack"
            )]
            if unsafe { STR_EQUAL.get(&*key) }.is_some() {
                return true;
            }
        }
        // The next length down: drop this last byte.
        key.data[(l as usize - 1) & (STRING_MAX - 1)] = 0;
    }
    false
}

/// Zeroes `buf` eight bytes at a time.
#[inline(always)]
fn zero(buf: &mut [u8; STRING_MAX]) {
    let words = buf.as_mut_ptr().cast::<u64>();
    for w in 0..STRING_MAX / 8 {
        // SAFETY: `w * 8 + 8 <= STRING_MAX`; unaligned writes are fine for the verifier's
        // map-value memory and done bytewise by the compiler if needed.
        unsafe { words.add(w).write_unaligned(0) };
    }
}

/// Copies the first `N` bytes of `src` into `dst`, eight at a time (`N` a multiple of 8).
#[inline(always)]
pub(crate) fn copy_words<const N: usize>(src: &[u8; STRING_MAX], dst: &mut [u8; N]) {
    let (s, d) = (src.as_ptr().cast::<u64>(), dst.as_mut_ptr().cast::<u64>());
    for w in 0..N / 8 {
        // SAFETY: `w * 8 + 8 <= N <= STRING_MAX`.
        unsafe { d.add(w).write_unaligned(s.add(w).read_unaligned()) };
    }
}

/// The first selector that matches: (its index, its actions, its signal).
#[inline(always)]
fn select(
    cfg: &HookConfig,
    ev: &TracepointEvent,
    pid: u32,
    binary_known: bool,
) -> Option<(u32, u8, u32)> {
    if cfg.nsel == 0 {
        // No selectors: every hit is posted, as in Tetragon.
        return Some((0, ACTION_POST, 0));
    }
    for s in 0..MAX_SELECTORS {
        if s as u32 >= cfg.nsel {
            break;
        }
        let sel = &cfg.selectors[s];
        if selector_matches(sel, ev, pid, binary_known) {
            return Some((s as u32, sel.actions, sel.signal));
        }
    }
    None
}

#[inline(never)]
fn selector_matches(
    sel: &SelectorConfig,
    ev: &TracepointEvent,
    pid: u32,
    binary_known: bool,
) -> bool {
    let follow = if sel.pids.follow != 0 || sel.binary.follow != 0 {
        // SAFETY: a map value, copied out.
        unsafe { FOLLOW.get(pid) }.copied().unwrap_or(0)
    } else {
        0
    };
    if !pids_match(&sel.pids, pid, follow)
        || !binary_matches(&sel.binary, binary_known, follow)
        || !namespaces_match(sel)
        || !caps_match(sel)
    {
        return false;
    }
    for f in 0..MAX_ARG_FILTERS {
        if f >= sel.nfilters as usize {
            break;
        }
        let filter = &sel.filters[f];
        let arg = filter.arg as usize;
        if arg >= MAX_HOOK_ARGS || !filter_matches(filter, &ev.args[arg], arg as u32) {
            return false;
        }
    }
    true
}

#[inline(always)]
fn pids_match(p: &PidFilter, pid: u32, follow: u64) -> bool {
    if p.op != PIDS_IN && p.op != PIDS_NOT_IN {
        return true;
    }
    // `isNamespacePID`: the values are pids in the process's own pid namespace.
    let pid = if p.namespace != 0 {
        // SAFETY: helper without arguments.
        kread::ns_tgid(unsafe { bpf_get_current_task() }).unwrap_or(0)
    } else {
        pid
    };
    // `followForks`: the listed processes' descendants count as listed.
    let mut found = p.follow != 0 && follow & (1u64 << ((p.follow - 1) & 63)) != 0;
    for i in 0..MAX_PIDS {
        if i < p.n as usize && p.values[i] == pid {
            found = true;
        }
    }
    found == (p.op == PIDS_IN)
}

/// `matchNamespaces`: every filter holds (a namespace that cannot be read matches only
/// `NotIn`).
#[inline(always)]
fn namespaces_match(sel: &SelectorConfig) -> bool {
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    for f in 0..MAX_NS_FILTERS {
        let nf = &sel.namespaces[f];
        if nf.ns == 0 {
            break;
        }
        let inum = kread::ns_inum(task, nf.ns);
        let mut found = false;
        for i in 0..MAX_NS_VALUES {
            if i < nf.n as usize && inum == Some(nf.values[i]) {
                found = true;
            }
        }
        if found != (nf.op == PIDS_IN) {
            return false;
        }
    }
    true
}

/// `matchCapabilities`: `In` holds when the set has any capability of the mask, `NotIn`
/// when it has none.
#[inline(always)]
fn caps_match(sel: &SelectorConfig) -> bool {
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    for f in 0..MAX_CAP_FILTERS {
        let cf = &sel.caps[f];
        if cf.set == 0 {
            break;
        }
        if cf.host_userns != 0 && kread::ns_inum(task, NS_USER) == Some(cf.host_userns) {
            return false;
        }
        let any = kread::caps(task, cf.set).is_some_and(|c| c & cf.mask != 0);
        if any != (cf.op == PIDS_IN) {
            return false;
        }
    }
    true
}

/// `matchBinaries`: a process whose binary is not known matches only the `Not*`
/// operators.
#[inline(always)]
fn binary_matches(b: &BinaryFilter, known: bool, follow: u64) -> bool {
    let (kind, negate) = match b.op {
        BIN_IN => (OP_EQUAL, false),
        BIN_NOT_IN => (OP_EQUAL, true),
        BIN_PREFIX => (OP_PREFIX, false),
        BIN_NOT_PREFIX => (OP_PREFIX, true),
        BIN_POSTFIX => (OP_POSTFIX, false),
        BIN_NOT_POSTFIX => (OP_POSTFIX, true),
        _ => return true,
    };
    // `followChildren`: a descendant of a matching binary matches too.
    let followed = b.follow != 0 && follow & (1u64 << ((b.follow - 1) & 63)) != 0;
    let hit = followed || (known && str_lookup(kind, b.id, BINARY_SLOT));
    hit != negate
}

#[inline(never)]
fn filter_matches(f: &ArgFilter, v: &ArgValue, arg: u32) -> bool {
    let is_string = !matches!(v.kind as u8, ARG_INT | ARG_UINT);
    let signed = v.kind as u8 == ARG_INT;
    match f.op {
        OP_EQUAL | OP_NOT_EQUAL => {
            let eq = if is_string {
                str_lookup(OP_EQUAL, f.id, arg)
            } else {
                any_int(f, |x| x == v.int)
            };
            eq == (f.op == OP_EQUAL)
        }
        OP_GT => any_int(f, |x| {
            if signed {
                (v.int as i64) > (x as i64)
            } else {
                v.int > x
            }
        }),
        OP_LT => any_int(f, |x| {
            if signed {
                (v.int as i64) < (x as i64)
            } else {
                v.int < x
            }
        }),
        OP_MASK => any_int(f, |x| v.int & x != 0),
        OP_PREFIX | OP_NOT_PREFIX => str_lookup(OP_PREFIX, f.id, arg) == (f.op == OP_PREFIX),
        OP_SADDR..=OP_STATE => sock_matches(f, v) != (f.negate != 0),
        OP_POSTFIX | OP_NOT_POSTFIX => str_lookup(OP_POSTFIX, f.id, arg) == (f.op == OP_POSTFIX),
        _ => false,
    }
}

/// A socket operator, before `Not`.
#[inline(always)]
fn sock_matches(f: &ArgFilter, v: &ArgValue) -> bool {
    if v.kind != u32::from(ARG_SOCK) {
        return false;
    }
    // SAFETY: `capture_sock` wrote a SockValue at the start of `str`.
    let s = unsafe { v.str.as_ptr().cast::<SockValue>().read_unaligned() };
    match f.op {
        OP_SADDR | OP_DADDR => {
            let slot = u32::from(f.op == OP_DADDR);
            match SOCK_KEYS.get_ptr_mut(slot) {
                Some(key) => {
                    // SAFETY: this CPU's key slot, built by `capture_sock`.
                    let key = unsafe { &mut *key };
                    key.data.id = f.id.to_be_bytes();
                    STR_PREFIX.get(&*key).is_some()
                }
                None => false,
            }
        }
        OP_SPORT_PRIV => s.sport < 1024,
        OP_DPORT_PRIV => s.dport < 1024,
        _ => {
            let x = u64::from(match f.op {
                OP_SPORT => s.sport,
                OP_DPORT => s.dport,
                OP_PROTOCOL => s.protocol,
                OP_FAMILY => s.family,
                _ => s.state,
            });
            any_int(f, |val| val == x)
        }
    }
}

#[inline(always)]
fn any_int(f: &ArgFilter, pred: impl Fn(u64) -> bool) -> bool {
    let mut hit = false;
    for i in 0..MAX_INT_VALUES {
        if i < f.nvals as usize && pred(f.values[i]) {
            hit = true;
        }
    }
    hit
}

/// Whether the string of argument `arg` is among filter `id`'s strings (`OP_EQUAL`), or
/// starts (`OP_PREFIX`) or ends (`OP_POSTFIX`) with one of them.
#[inline(always)]
pub(crate) fn str_lookup(kind: u8, id: u32, arg: u32) -> bool {
    match kind {
        OP_EQUAL => match ARG_EQUAL_KEYS.get_ptr_mut(arg) {
            Some(key) => {
                // SAFETY: this CPU's key slot for `arg`, filled by `capture`.
                let key = unsafe { &mut *key };
                key.id = id;
                // SAFETY: a lookup with a fully initialised key.
                #[allow(
                    clippy::needless_borrows_for_generic_args,
                    reason = "by value, the 264-byte key would be copied to the stack"
                )]
                let hit = unsafe { STR_EQUAL.get(&*key) }.is_some();
                hit
            }
            None => false,
        },
        OP_PREFIX => {
            let hit = match ARG_PREFIX_KEYS.get_ptr_mut(arg) {
                Some(key) => {
                    // SAFETY: as above.
                    let key = unsafe { &mut *key };
                    key.data.id = id.to_be_bytes();
                    STR_PREFIX.get(&*key).is_some()
                }
                None => false,
            };
            hit || long_prefix(id, arg)
        }
        _ => match ARG_POSTFIX_KEYS.get_ptr_mut(arg) {
            Some(key) => {
                // SAFETY: as above.
                let key = unsafe { &mut *key };
                key.data.id = id.to_be_bytes();
                STR_POSTFIX.get(&*key).is_some()
            }
            None => false,
        },
    }
}
