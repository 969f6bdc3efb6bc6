//! Evaluating hooks whole: the candidates that the verdict and the gate left, in their
//! hook point's order (the order of its list, which is the order of hook ids). For
//! each: its arguments captured, its selectors tried, the first that matches acted on
//! (signals, `Override`) and its event posted, with the policy's counters.
//!
//! A `Post` that asks for stacks (`kernelStackTrace`, `userStackTrace`) is posted by the
//! walk's callback once the evaluation returns ([`post_with_stacks`]): `bpf_get_stackid`
//! needs the program's context, which a global function cannot take. The callbacks find
//! it where [`candidates`] left it, in its stack frame.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_F_USER_STACK,
    helpers::generated::{
        bpf_get_current_pid_tgid, bpf_get_stackid, bpf_ktime_get_ns, bpf_loop, bpf_send_signal,
    },
};
use tracer_common::{
    counters::Counter,
    event::EventKind,
    policy::{
        ACTION_NOPOST, ACTION_NOTIFY_ENFORCER, ACTION_OVERRIDE, ACTION_SET, ACTION_SIGKILL,
        ACTION_SIGNAL, ARG_INT, ARG_SOCK, ARG_UINT, CANDIDATES_ALL, EVENT_KERNEL_STACK,
        EVENT_MONITOR, EVENT_SIGNAL_FAILED, EVENT_USER_STACK, EnforcerData, GateHit,
        HOOK_BINARY_EQUAL, HOOK_BINARY_POSTFIX, HOOK_BINARY_PREFIX, HOOK_CGROUP_SCOPE,
        HOOK_ENTRY_SOCK, HOOK_MONITOR, HOOK_RET_FD_SOCK, HOOK_SOCK_OWNER, HOOK_SOCK_TRIGGER,
        HookConfig, MAX_HOOK_ARGS, MAX_SELECTORS, POLICY_LOST, POLICY_MATCHED, POLICY_POSTED,
        POLICY_RATE_LIMITED, POLICY_SEEN, RATE_GLOBAL, RATE_PROCESS, RateKey, SOCK_ARG_MASK,
        SOCK_TRACK, STACK_KERNEL, STACK_USER, SelectorConfig, SetRequest, SockLayout, SockOwner,
        TracepointEvent, VERDICT_HOOKS, Verdict,
    },
};

use super::{
    PAST_LAST, Snapshot,
    capture::{capture, capture_sock},
    select::{in_scope, select},
    strings::binary_keys,
};
use crate::{
    emit,
    hooks::sock,
    kread,
    maps::{
        ENFORCER, EVENTS, HOOKS, POLICY_COUNTERS, RATE, RECORD, SET_REQUEST, SOCK_OWNERS, STACKS,
        TP_SCRATCH, WALK,
    },
};

/// Bound of a walk over a hook point's list (bpf_loop's own is 1 << 23).
pub(super) const MAX_WALK: u32 = 1 << 20;

/// Candidates listed at most: the verdict's and the gate's, merged.
const LISTED: usize = 2 * VERDICT_HOOKS;

/// What the bpf_loop callbacks work on: this CPU's `WALK` (the stack of a call chain
/// that ends in a global function's is too short to hold it too).
#[repr(C)]
pub(crate) struct Walk {
    /// A walk: the next hook of the list.
    next: u32,
    /// A list: how many candidates `list` holds.
    len: u32,
    list: [u32; LISTED],
    verdict: Verdict,
    gate: GateHit,
    /// The hook point's gate, as read at the start.
    gate_id: u32,
    /// The first `Override` error of a matching selector (0: allow).
    result: i32,
    /// `STACK_*` bits: the evaluation left this CPU's event for the callback to post
    /// with these stacks (0: nothing left).
    stacks: u32,
}

/// Evaluates the candidates of a hook point: the hooks listed by the process verdict `v`
/// or the gate `g`, and where either says all, every hook not covered by gate `gate_id`
/// (for `v`) or covered by it (for `g`). Returns the first `Override` error (0: allow).
/// `ctx` is the program's context, for the stacks a `Post` may take.
#[inline(never)]
pub(super) fn candidates(
    ctx: *mut c_void,
    base: u64,
    at: &Snapshot,
    v: &Verdict,
    g: &GateHit,
) -> i32 {
    if let Some(cell) = RECORD.get_ptr_mut(0) {
        // SAFETY: this CPU's cell; programs on one CPU run one at a time.
        unsafe { *cell = base };
    }
    let Some(w) = WALK.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's scratch; programs on one CPU run one at a time.
    let w = unsafe { &mut *w };
    *w = Walk {
        next: at.first,
        len: 0,
        list: [0; LISTED],
        verdict: *v,
        gate: *g,
        gate_id: at.gate.id,
        result: 0,
        stacks: 0,
    };
    // bpf_loop's context must be on the stack: the callbacks find the walk in `WALK`,
    // and the program's context here (the verifier follows a pointer kept in a caller's
    // frame, not one kept in a map).
    let mut program = ctx;
    let cb_ctx = (&raw mut program).cast::<c_void>();
    if v.n != CANDIDATES_ALL && g.n != CANDIDATES_ALL {
        merge(w);
        if w.len != 0 {
            // SAFETY: `eval_listed` is a callback of bpf_loop's type; `cb_ctx` outlives it.
            unsafe { bpf_loop(w.len, eval_listed as *mut c_void, cb_ctx, 0) };
        }
    } else {
        // SAFETY: as above.
        unsafe { bpf_loop(MAX_WALK, eval_walked as *mut c_void, cb_ctx, 0) };
    }
    // The callbacks may have run on: read the result back through the map.
    WALK.get(0).map_or(0, |w| w.result)
}

/// The verdict's and the gate's lists (each in list order), merged in order without
/// repeats into `w.list`.
#[inline(always)]
fn merge(w: &mut Walk) {
    let (vn, gn) = (w.verdict.n as usize, w.gate.n as usize);
    let (mut i, mut j, mut k) = (0usize, 0usize, 0usize);
    for _ in 0..LISTED {
        let a = if i < vn && i < VERDICT_HOOKS {
            w.verdict.hooks[i]
        } else {
            u32::MAX
        };
        let b = if j < gn && j < VERDICT_HOOKS {
            w.gate.hooks[j]
        } else {
            u32::MAX
        };
        if a == u32::MAX && b == u32::MAX {
            break;
        }
        let id = if a <= b { a } else { b };
        if a == id {
            i += 1;
        }
        if b == id {
            j += 1;
        }
        w.list[k & (LISTED - 1)] = id;
        k += 1;
    }
    w.len = k as u32;
}

/// bpf_loop callback: evaluates listed candidate `i`.
extern "C" fn eval_listed(i: u64, ctx: *mut c_void) -> i64 {
    let Some(wp) = WALK.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch, filled by `candidates`.
    let id = unsafe { (*wp).list[(i as usize) & (LISTED - 1)] };
    // SAFETY: a map value, read while the program runs.
    if let Some(cfg) = unsafe { HOOKS.get(id) } {
        let r = tracer_evaluate(cfg);
        // SAFETY: as above; no other reference to it is live (the evaluation wrote it).
        settle(unsafe { &mut *wp }, r, ctx);
    }
    0
}

/// bpf_loop callback: the next hook of the list, evaluated if it is a candidate; stops
/// at the list's end.
extern "C" fn eval_walked(_i: u64, ctx: *mut c_void) -> i64 {
    let Some(wp) = WALK.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch, filled by `candidates`; the reference ends before the
    // evaluation writes it.
    let w = unsafe { &mut *wp };
    let id = w.next;
    // SAFETY: a map value, read while the program runs.
    let Some(cfg) = (if id == 0 {
        None
    } else {
        unsafe { HOOKS.get(id) }
    }) else {
        return 1;
    };
    w.next = cfg.next;
    // Listed by either (the agent may be moving hooks between gates: a list names a hook
    // whatever its gate now), or all of its side.
    let covered = cfg.gate != 0 && cfg.gate == w.gate_id;
    let wanted = listed(w.gate.n, &w.gate.hooks, id)
        || listed(w.verdict.n, &w.verdict.hooks, id)
        || (covered && w.gate.n == CANDIDATES_ALL)
        || (!covered && w.verdict.n == CANDIDATES_ALL);
    let last = w.next == 0;
    if wanted {
        let r = tracer_evaluate(cfg);
        // SAFETY: as above; no other reference to it is live (the evaluation wrote it).
        settle(unsafe { &mut *wp }, r, ctx);
    }
    i64::from(last)
}

/// After a candidate's evaluation: keeps the first `Override` error `r`, and posts the
/// event the evaluation left for its stacks. `ctx` is the callback's: it points at the
/// program's context in [`candidates`]'s frame.
#[inline(always)]
fn settle(w: &mut Walk, r: i32, ctx: *mut c_void) {
    if w.result == 0 {
        w.result = r;
    }
    let stacks = w.stacks;
    if stacks != 0 {
        w.stacks = 0;
        // SAFETY: `candidates` passed bpf_loop the address of its `program`, which holds
        // the program's context and outlives the loop.
        let program = unsafe { ctx.cast::<*mut c_void>().read() };
        post_with_stacks(program, stacks);
    }
}

/// Takes the stacks `stacks` asks for (`STACK_*`) into this CPU's event, which the
/// evaluation filled and left unposted, and posts it. Stack id 0 is an id like any
/// other: the flags say which are there; a negative one is the helper's error, for the
/// agent to report.
#[inline(never)]
fn post_with_stacks(program: *mut c_void, stacks: u32) {
    let Some(ev) = TP_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's scratch record; nothing else uses it while we run.
    let ev = unsafe { &mut *ev };
    let map = (&raw const STACKS).cast_mut().cast::<c_void>();
    if stacks & u32::from(STACK_KERNEL) != 0 {
        // SAFETY: the program's own context and a stack trace map, as the helper asks.
        ev.kernel_stack = unsafe { bpf_get_stackid(program, map, 0) } as i32;
        ev.flags |= EVENT_KERNEL_STACK;
    }
    if stacks & u32::from(STACK_USER) != 0 {
        // SAFETY: as above.
        ev.user_stack = unsafe { bpf_get_stackid(program, map, BPF_F_USER_STACK.into()) } as i32;
        ev.flags |= EVENT_USER_STACK;
    }
    post(ev);
}

/// Whether `id` is among the first `n` of `hooks` (none when `n` says all).
#[inline(always)]
fn listed(n: u32, hooks: &[u32; VERDICT_HOOKS], id: u32) -> bool {
    let mut hit = false;
    for (i, h) in hooks.iter().enumerate() {
        if (i as u32) < n && *h == id {
            hit = true;
        }
    }
    hit
}

/// Evaluates hook `cfg` on the tracefs-shaped record at `base`: captures its arguments,
/// tries its selectors, acts on and posts the first that matches. Returns its `Override`
/// error (0: allow).
///
/// A global function (exported, so its BTF says so): the verifier checks it once, on its
/// own, wherever it is called from, rather than again at each call.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_evaluate(cfg: *const HookConfig) -> i32 {
    // SAFETY: a pointer to a map value of `HOOKS` (the verifier knows its size); it may
    // be null to the verifier of a global function, not in fact.
    let Some(cfg) = (unsafe { cfg.as_ref() }) else {
        return 0;
    };
    // The record's address, as a number (`candidates` put it there: a global function
    // takes numbers and pointers to memory of a known size, and the record may be the
    // program's context).
    let Some(base) = RECORD.get(0).copied() else {
        return 0;
    };
    if cfg.flags & HOOK_CGROUP_SCOPE != 0 && !in_scope(cfg.policy_id) {
        // Not one of the pods the policy applies to.
        return 0;
    }
    if cfg.flags & (HOOK_ENTRY_SOCK | HOOK_RET_FD_SOCK) != 0 && !sock::at_return(cfg) {
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
    for i in 0..MAX_HOOK_ARGS as u32 {
        if tracer_capture(cfg, ev, i) == PAST_LAST {
            break;
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
    let sel = &cfg.selectors[(sel_index as usize) & (MAX_SELECTORS - 1)];
    // The socket's process, read before an `UntrackSock` of this very call forgets it.
    let owner = if cfg.flags & HOOK_SOCK_OWNER != 0 && actions & ACTION_NOPOST == 0 {
        tracer_sock_owner(ev, cfg.nargs)
    } else {
        0
    };
    if sel.sock_action != 0 {
        track_sock(ev, sel.sock_action, pid_tgid);
    }
    let (flags, verdict) = act(cfg, sel, actions, signal);
    if actions & ACTION_NOPOST != 0 {
        return verdict;
    }
    if sel.rate_limit_ns != 0 && rate_limited(cfg, sel_index, pid_tgid, ev) {
        policy_count(cfg.policy_id, POLICY_RATE_LIMITED);
        return verdict;
    }
    ev.header = if owner != 0 {
        emit::header(EventKind::Tracepoint, (owner >> 32) as u32, owner as u32)
    } else {
        emit::header(EventKind::Tracepoint, tgid, pid_tgid as u32)
    };
    ev.policy_id = cfg.policy_id;
    ev.hook = cfg.id;
    ev.action = u32::from(actions) | u32::from(sel.sock_action) << 16;
    ev.selector = sel_index;
    ev.nargs = cfg.nargs;
    ev.flags = flags;
    if sel.stack != 0 {
        // Posted by the walk's callback, which has the program's context.
        if let Some(w) = WALK.get_ptr_mut(0) {
            // SAFETY: this CPU's scratch; the callback that called us holds no reference
            // to it meanwhile.
            unsafe { (*w).stacks = u32::from(sel.stack) };
        }
        return verdict;
    }
    post(ev);
    verdict
}

/// Posts this CPU's event `ev`, counting it for its policy.
#[inline(always)]
fn post(ev: &TracepointEvent) {
    if EVENTS
        .output::<TracepointEvent>(ev, emit::wakeup(size_of::<TracepointEvent>() as u64))
        .is_ok()
    {
        policy_count(ev.policy_id, POLICY_POSTED);
        emit::count(EventKind::Tracepoint, Counter::Emitted);
    } else {
        policy_count(ev.policy_id, POLICY_LOST);
        emit::count(EventKind::Tracepoint, Counter::RingBufFull);
    }
}

/// Captures argument `i` of hook `cfg` from the record (at `RECORD`) into event `ev`.
/// `PAST_LAST` when the hook has no argument `i`. A global function (exported, so its BTF
/// says so): the verifier checks it once, not once per argument.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_capture(cfg: *const HookConfig, ev: *mut TracepointEvent, i: u32) -> i32 {
    // SAFETY: pointers to map values (a hook, this CPU's event).
    let (Some(cfg), Some(ev)) = (unsafe { cfg.as_ref() }, unsafe { ev.as_mut() }) else {
        return 0;
    };
    let Some(base) = RECORD.get(0).copied() else {
        return 0;
    };
    if i >= cfg.nargs {
        return PAST_LAST;
    }
    let i = i as usize;
    if i >= MAX_HOOK_ARGS {
        return PAST_LAST;
    }
    let a = &cfg.args[i];
    if a.kind == ARG_SOCK {
        // A returned socket sits `offset` bytes further (`SOCK_RETURN_AT`).
        capture_sock(base + u64::from(a.offset), &cfg.sock, &mut ev.args[i]);
    } else {
        capture(base, a, &mut ev.args[i], i as u32);
    }
    0
}

/// The process (`pid << 32 | tid`) that tracks the first socket among the `nargs`
/// arguments of `ev` that one tracks (`SOCK_OWNERS`), or 0. A global function (exported,
/// so its BTF says so): its loop and lookups are checked once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_sock_owner(ev: *const TracepointEvent, nargs: u32) -> u64 {
    // SAFETY: a pointer to this CPU's event (a map value), or null to the verifier.
    let Some(ev) = (unsafe { ev.as_ref() }) else {
        return 0;
    };
    for (i, a) in ev.args.iter().enumerate() {
        if i as u32 >= nargs {
            break;
        }
        if a.kind != u32::from(ARG_SOCK) || a.int == 0 {
            continue;
        }
        // SAFETY: a map value read at once, not kept.
        if let Some(o) = unsafe { SOCK_OWNERS.get(a.int) } {
            return u64::from(o.pid) << 32 | u64::from(o.tid);
        }
    }
    0
}

/// `TrackSock`/`UntrackSock` (`action`, a `SOCK_TRACK` or `SOCK_UNTRACK` with the
/// argument's position): the socket argument is the current process's from now on, or
/// no one's. Nothing for an argument that is not a socket.
#[inline(never)]
fn track_sock(ev: &TracepointEvent, action: u8, pid_tgid: u64) {
    let Some(a) = ev.args.get(usize::from(action & SOCK_ARG_MASK)) else {
        return;
    };
    if a.kind != u32::from(ARG_SOCK) || a.int == 0 {
        return;
    }
    if action & SOCK_TRACK != 0 {
        let owner = SockOwner {
            pid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
        };
        let _ = SOCK_OWNERS.insert(a.int, owner, 0);
    } else {
        let _ = SOCK_OWNERS.remove(a.int);
    }
}

/// Carries out the signals of a matching selector's `actions` (unless the policy is in
/// monitor mode): the event's `EVENT_*` flags, and the `Override` error to return.
#[inline(always)]
fn act(cfg: &HookConfig, sel: &SelectorConfig, actions: u16, signal: u32) -> (u32, i32) {
    let monitor = cfg.flags & HOOK_MONITOR != 0;
    let mut flags = 0;
    if actions & (ACTION_SIGKILL | ACTION_SIGNAL) != 0 {
        // SAFETY: helper without arguments.
        let agent = crate::globals::is_agent(unsafe { bpf_get_current_pid_tgid() });
        if monitor {
            flags |= EVENT_MONITOR;
        } else if agent {
            // The agent itself is exempt: not signalled.
            flags |= EVENT_SIGNAL_FAILED;
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
    // `NotifyEnforcer`: carried out by the enforcer program on the thread's next call of
    // a function of the policy's `enforcers`.
    if actions & ACTION_NOTIFY_ENFORCER != 0 {
        // SAFETY: helper without arguments.
        let id = unsafe { bpf_get_current_pid_tgid() };
        if monitor {
            flags |= EVENT_MONITOR;
        } else if crate::globals::is_agent(id) {
            // The agent itself is exempt: its calls are not stopped.
            flags |= EVENT_SIGNAL_FAILED;
        } else {
            let data = EnforcerData {
                error: sel.override_error,
                signal: u32::from(sel.signal),
            };
            let _ = ENFORCER.insert(id, data, 0);
        }
    }
    // `Set`: written by the `policy_usdt_set` program once the evaluation is over (the
    // one program that may write to a process's memory).
    if actions & ACTION_SET != 0 {
        if monitor {
            flags |= EVENT_MONITOR;
        } else if let Some(req) = SET_REQUEST.get_ptr_mut(0) {
            // SAFETY: this CPU's entry; programs do not nest on one CPU.
            unsafe {
                *req = SetRequest {
                    armed: 1,
                    arg: u32::from(sel.set_arg),
                    value: sel.override_error as u32,
                    _pad: 0,
                }
            };
        }
    }
    // `Override`: what the hook's program returns (a BPF LSM program's verdict).
    let verdict = if actions & ACTION_OVERRIDE == 0 {
        0
    } else if monitor {
        flags |= EVENT_MONITOR;
        0
    } else {
        sel.override_error
    };
    (flags, verdict)
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

/// Whether a post of selector `selector` of hook `cfg`, for these arguments, falls
/// within its `rateLimit` window; if not, the window starts now.
#[inline(never)]
fn rate_limited(cfg: &HookConfig, selector: u32, pid_tgid: u64, ev: &TracepointEvent) -> bool {
    let sel = &cfg.selectors[(selector as usize) & (MAX_SELECTORS - 1)];
    let nargs = cfg.nargs;
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
        hook: cfg.id,
        selector,
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

/// Adds one to counter `counter` (`POLICY_*`) of policy `policy` on this CPU.
#[inline(always)]
fn policy_count(policy: u32, counter: usize) {
    if let Some(counters) = POLICY_COUNTERS.get_ptr_mut(policy) {
        // SAFETY: this CPU's value of a per-CPU hash map entry; programs on one CPU do
        // not race.
        unsafe { (*counters)[counter] += 1 };
    }
}
