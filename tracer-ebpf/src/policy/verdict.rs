//! The process verdict: which hooks of a hook point can match the current process,
//! whatever the call's arguments. Made once per process and hook point by walking the
//! hook point's list ([`select::may_match`] on each hook), then cached: per CPU
//! (`VERDICT_CACHE`: one lookup of an array and a few compares while the same process
//! keeps calling), and per process (`VERDICTS`: when processes take turns on a CPU).
//!
//! A verdict stays valid until, whichever comes first:
//! - the process execs or ends (`hooks/process.rs` drops its `VERDICTS` entry and bumps
//!   `GEN`, which the per-CPU entries record);
//! - the agent bumps the hook point's epoch (its list changed, or a pod scope, or the
//!   `followForks` bits of running processes);
//! - the process's credentials, namespaces or cgroup change, where the hook point's
//!   verdicts depend on them (`HP_DEP_*`): the pointers `task->cred` and
//!   `task->nsproxy` change whenever those do, and are read through the task's BTF
//!   pointer, a plain load.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::{
    bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_loop,
};
use tracer_common::offsets::PF_EXITING;
use tracer_common::policy::{
    CANDIDATES_ALL, GATE_NONE, HOOK_BINARY_EQUAL, HOOK_BINARY_POSTFIX, HOOK_BINARY_PREFIX,
    HP_DEP_CGROUP, HP_DEP_CRED, HP_DEP_NS, HP_UNCOVERED, ProcVerdicts, VERDICT_HOOKS,
    VERDICT_L1_WAYS, VERDICT_WAYS, Verdict,
};

use super::{Snapshot, eval::MAX_WALK, select, strings::binary_keys};
use crate::{
    globals::off,
    maps::{GEN, HOOKS, PROC_SCRATCH, SCAN, VERDICT_CACHE, VERDICTS},
};

/// `BPF_NOEXIST`: insert only if absent.
const BPF_NOEXIST: u64 = 1;

/// The verdict of a hook point without process filters: every hook can match.
#[inline(always)]
pub(super) fn every(at: &Snapshot) -> Verdict {
    Verdict {
        n: if at.flags & HP_UNCOVERED != 0 {
            CANDIDATES_ALL
        } else {
            0
        },
        covered: u32::from(at.gate.kind != GATE_NONE),
        hooks: [0; VERDICT_HOOKS],
    }
}

/// The question: the verdict of process `tgid` for hook point `id` of epoch `epoch`,
/// with these dependencies.
struct Ask {
    tgid: u32,
    id: u32,
    epoch: u32,
    deps: Deps,
}

/// What the hook point's verdicts depend on, as they are now (0 where they do not).
#[derive(Clone, Copy)]
struct Deps {
    cred: u64,
    nsproxy: u64,
    cgroup: u64,
}

impl Deps {
    #[inline(always)]
    fn now(flags: u32) -> Self {
        let mut d = Deps {
            cred: 0,
            nsproxy: 0,
            cgroup: 0,
        };
        if flags & (HP_DEP_CRED | HP_DEP_NS) != 0 {
            // SAFETY: helper without arguments; a trusted pointer to the current task.
            let task = unsafe { bpf_get_current_task_btf() } as u64;
            if flags & HP_DEP_CRED != 0 {
                // SAFETY: a load from the current task at the offset of its `cred`
                // pointer (BTF, frozen in .rodata): the verifier checks it against the
                // task's BTF type.
                d.cred = unsafe { ((task + off!(task_cred)) as *const u64).read_volatile() };
            }
            if flags & HP_DEP_NS != 0 {
                // SAFETY: as above, `nsproxy`.
                d.nsproxy = unsafe { ((task + off!(task_nsproxy)) as *const u64).read_volatile() };
            }
        }
        if flags & HP_DEP_CGROUP != 0 {
            // SAFETY: helper without arguments.
            d.cgroup = unsafe { bpf_get_current_cgroup_id() };
        }
        d
    }
}

/// The current process's verdict for hook point `id` (in this CPU's cache); `None` when
/// no hook can match.
#[inline(never)]
pub(super) fn lookup(id: u32, at: &Snapshot) -> Option<&'static Verdict> {
    let (epoch, flags) = (at.epoch, at.flags);
    // SAFETY: helper without arguments.
    let tgid = (unsafe { bpf_get_current_pid_tgid() } >> 32) as u32;
    let generation = GEN.get(0).copied().unwrap_or(0);
    let deps = Deps::now(flags);
    let l1 = VERDICT_CACHE.get_ptr_mut(id & (VERDICT_L1_WAYS - 1))?;
    // SAFETY: this CPU's entry; programs on one CPU run one at a time.
    let l1 = unsafe { &mut *l1 };
    let fresh = l1.tgid == tgid
        && l1.point == id + 1
        && l1.generation == generation
        && l1.epoch == epoch
        && l1.cred == deps.cred
        && l1.nsproxy == deps.nsproxy
        && l1.cgroup == deps.cgroup;
    if !fresh {
        let ask = Ask {
            tgid,
            id,
            epoch,
            deps,
        };
        // Written field by field: a `VerdictL1` built on the stack would take its room.
        of_process(&ask, at, &mut l1.verdict);
        l1.tgid = tgid;
        l1.point = id + 1;
        l1.epoch = epoch;
        l1.generation = generation;
        l1.cred = deps.cred;
        l1.nsproxy = deps.nsproxy;
        l1.cgroup = deps.cgroup;
    }
    let v = &l1.verdict;
    (v.n != 0 || v.covered != 0).then_some(v)
}

/// The verdict kept for the process, made now if it has none for this hook point (or an
/// outdated one), into `out`.
#[inline(always)]
fn of_process(ask: &Ask, at: &Snapshot, out: &mut Verdict) {
    let (tgid, id, epoch, deps) = (ask.tgid, ask.id, ask.epoch, &ask.deps);
    let way = (id as usize) & (VERDICT_WAYS - 1);
    // SAFETY: a map value of this process, updated only by its own threads' programs
    // (a race between two of them at worst makes a verdict twice).
    if let Some(e) = VERDICTS.get_ptr_mut(tgid) {
        let e = unsafe { &mut *e };
        if !deps_hold(e, deps) {
            // Credentials, namespaces or cgroup changed: every verdict may have.
            for slot in e.slots.iter_mut() {
                slot.point = 0;
            }
        }
        let slot = &mut e.slots[way];
        if slot.point == id + 1 && slot.epoch == epoch {
            *out = slot.verdict;
            return;
        }
        // Made in place, field by field: a `Verdict` or `ProcSlot` built on the stack
        // would take room that the evaluation's call chain needs (Linux 6.1 allows it 512
        // bytes in all).
        make(tgid, at, &mut slot.verdict);
        slot.point = id + 1;
        slot.epoch = epoch;
        *out = slot.verdict;
        return;
    }
    make(tgid, at, out);
    // A process on its way out keeps no entry: its exit has dropped its verdicts already
    // (closing its files, after that, still calls hooks, as a socket's last state
    // change does), and an entry made now would stay for good.
    if exiting() {
        return;
    }
    if let Some(e) = PROC_SCRATCH.get_ptr_mut(0) {
        // SAFETY: this CPU's scratch value.
        let e = unsafe { &mut *e };
        e.cred = deps.cred;
        e.nsproxy = deps.nsproxy;
        e.cgroup = deps.cgroup;
        for slot in e.slots.iter_mut() {
            slot.point = 0;
        }
        let slot = &mut e.slots[way];
        slot.point = id + 1;
        slot.epoch = epoch;
        slot.verdict = *out;
        #[allow(
            clippy::needless_borrows_for_generic_args,
            reason = "by value, the 280-byte entry would be copied to the stack"
        )]
        let _ = VERDICTS.insert(&tgid, &*e, BPF_NOEXIST);
    }
}

/// Whether the current task is exiting (`PF_EXITING`).
#[inline(always)]
fn exiting() -> bool {
    // SAFETY: helper without arguments; a trusted pointer to the current task.
    let task = unsafe { bpf_get_current_task_btf() } as u64;
    // SAFETY: a load from the current task at the offset of its `flags` (BTF, frozen in
    // .rodata), as `Deps::now` reads its `cred`.
    let flags = unsafe { ((task + off!(task_flags)) as *const u32).read_volatile() };
    flags & PF_EXITING != 0
}

/// Whether the dependencies recorded in `e` are those of now, where both say; records
/// the ones `e` has not yet.
#[inline(always)]
fn deps_hold(e: &mut ProcVerdicts, d: &Deps) -> bool {
    let mut hold = true;
    for (recorded, now) in [
        (&mut e.cred, d.cred),
        (&mut e.nsproxy, d.nsproxy),
        (&mut e.cgroup, d.cgroup),
    ] {
        if now != 0 {
            if *recorded != 0 && *recorded != now {
                hold = false;
            }
            *recorded = now;
        }
    }
    hold
}

/// What the bpf_loop callback works on: this CPU's `SCAN`.
#[repr(C)]
pub(crate) struct Scan {
    /// The next hook of the list.
    next: u32,
    tgid: u32,
    /// 0: the binary's keys not built yet; 1: built; 2: the binary is not known.
    binary: u32,
    /// The hook point's gate, as read at the start.
    gate: u32,
    verdict: Verdict,
}

/// Makes the verdict: walks the hook point's list, asking of each hook whether it can
/// match this process.
#[inline(never)]
fn make(tgid: u32, at: &Snapshot, out: &mut Verdict) {
    let Some(scan) = SCAN.get_ptr_mut(0) else {
        *out = Verdict::default();
        return;
    };
    {
        // SAFETY: this CPU's scratch; programs on one CPU run one at a time. The
        // reference ends before the callbacks write the scan.
        let scan = unsafe { &mut *scan };
        scan.next = at.first;
        scan.tgid = tgid;
        scan.binary = 0;
        scan.gate = at.gate.id;
        scan.verdict = Verdict::default();
    }
    // bpf_loop's context must be on the stack: the callback finds the scan in `SCAN`.
    let mut unused = 0u64;
    // SAFETY: `scan_one` is a callback of bpf_loop's type; its context outlives it.
    unsafe {
        bpf_loop(
            MAX_WALK,
            scan_one as *mut c_void,
            (&raw mut unused).cast::<c_void>(),
            0,
        )
    };
    // Read again: the callbacks wrote it.
    *out = SCAN.get(0).map_or_else(Verdict::default, |s| s.verdict);
}

/// bpf_loop callback: the next hook of the list, into the verdict if it can match.
extern "C" fn scan_one(_i: u64, _ctx: *mut c_void) -> i64 {
    let Some(scan) = SCAN.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch, filled by `make`.
    let scan = unsafe { &mut *scan };
    let id = scan.next;
    // SAFETY: a map value, read while the program runs.
    let Some(cfg) = (if id == 0 {
        None
    } else {
        unsafe { HOOKS.get(id) }
    }) else {
        return 1;
    };
    scan.next = cfg.next;
    if scan.binary == 0
        && cfg.flags & (HOOK_BINARY_EQUAL | HOOK_BINARY_PREFIX | HOOK_BINARY_POSTFIX) != 0
    {
        // Every kind of key, once: the hooks to come may need any.
        let all = HOOK_BINARY_EQUAL | HOOK_BINARY_PREFIX | HOOK_BINARY_POSTFIX;
        scan.binary = if binary_keys(all, scan.tgid) { 1 } else { 2 };
    }
    if select::tracer_may_match(cfg, scan.tgid, u32::from(scan.binary == 1)) != 0 {
        let v = &mut scan.verdict;
        if cfg.gate != 0 && cfg.gate == scan.gate {
            v.covered = 1;
        } else if v.n != CANDIDATES_ALL {
            if (v.n as usize) < VERDICT_HOOKS {
                v.hooks[(v.n as usize) & (VERDICT_HOOKS - 1)] = id;
                v.n += 1;
            } else {
                v.n = CANDIDATES_ALL;
            }
        }
    }
    i64::from(scan.next == 0)
}
