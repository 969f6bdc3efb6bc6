//! The policy engine: what runs when a hook point fires (`hooks/tracepoint.rs`,
//! `hooks/kprobe.rs`, `hooks/fentry.rs`, `hooks/syscall.rs` find the hook point and
//! call [`run`]). Cheapest first, and nothing read from the call before a filter that
//! needs it:
//!
//! 1. [`verdict`]: can any hook of this hook point match the current process? (cached
//!    per process: a few compares in the common case)
//! 2. the record: built only now, for kprobes (their registers, the struct they point to)
//! 3. [`gate`]: which covered hooks can this call's gated argument satisfy? (one lookup
//!    for all of them)
//! 4. [`eval`]: each remaining candidate evaluated whole, in order: arguments captured
//!    ([`capture`], with string keys from [`strings`]), selectors tried ([`select`]),
//!    the first match acted on and posted (with its stacks, where its `Post` asks: taken
//!    from the program's context, which the engine carries down to where it posts).
//!
//! Return probes: [`returns`] keeps the entry's record and joins it to the return.

mod capture;
mod eval;
mod gate;
mod returns;
mod select;
mod strings;
mod verdict;

use core::ffi::c_void;

pub(crate) use eval::Walk;
pub(crate) use strings::{build_keys, copy_words, str_lookup};
use tracer_common::policy::{
    ArgGate, GateHit, HP_RETURN, HP_SAVE_ENTRY, HP_VERDICT, HookPoint, Verdict,
};
pub(crate) use verdict::Scan;

use crate::maps::HOOK_POINTS;

// The answers of the engine's global functions (`select`, `eval`) that loop callers
// read. A loop over selectors, filters or arguments ends on its constant bound or on the
// callee's `PAST_LAST`, never on a counter compared with a number read from a map: kernels
// before 6.8 cannot bound such a counter.

/// Does not hold.
const NO: i32 = 0;
/// Holds.
const YES: i32 = 1;
/// There is no selector, filter or argument at this index.
const PAST_LAST: i32 = 2;

/// Where a hook point's record comes from. It is built only once the process verdict
/// has left some hook that can match.
pub(crate) trait Site {
    /// The address of the record (laid out as a tracefs record, see
    /// `tracer_common::policy::SyscallRecord`), or `None` when there is nothing to run on.
    fn record(&self, hp: &HookPoint) -> Option<u64>;
}

/// What the engine reads of a hook point, once: the agent may rewrite it meanwhile.
pub(crate) struct Snapshot {
    pub first: u32,
    pub flags: u32,
    pub epoch: u32,
    pub gate: ArgGate,
}

/// Runs hook point `id` on a call (`ctx`: the program's context, for the stacks a `Post`
/// may take); returns the `Override` error of the first matching selector that has one
/// (a BPF LSM program's verdict), else 0. A function of its own:
/// the raw syscall programs call it twice (a syscall's hook point, then every
/// syscall's), and the verifier checks two calls far faster than two inlined copies.
/// (A call chain may be at most eight frames deep: this, and the evaluation's seven.)
#[inline(never)]
pub(crate) fn run<S: Site>(ctx: *mut c_void, site: &S, id: u32) -> i32 {
    // Beside a pinned set's hooks, a starting agent's run only once it takes over: one
    // set evaluates, acts and posts at a time (`tracer_common::handover`).
    if !crate::emit::active() {
        return 0;
    }
    let Some(hp) = HOOK_POINTS.get(id) else {
        return 0;
    };
    let at = Snapshot {
        first: hp.first,
        flags: hp.flags,
        epoch: hp.epoch,
        gate: hp.gate,
    };
    if at.flags & HP_SAVE_ENTRY != 0 {
        return run_saving(ctx, site, hp, &at, id);
    }
    if at.first == 0 {
        // No hook on the list (yet, or any more).
        return 0;
    }
    let mut every = None;
    let Some(verdict) = process_verdict(id, &at, &mut every) else {
        return 0;
    };
    let Some(mut base) = site.record(hp) else {
        return 0;
    };
    if at.flags & HP_RETURN != 0 {
        base = match returns::join(base, hp) {
            Some(b) => b,
            None => return 0,
        };
    }
    decide(ctx, base, &at, verdict)
}

/// A hook point where a return probe's entry half is (`HP_SAVE_ENTRY`): the record is
/// built for every call and kept for the return; then the hooks on its list, if any, run
/// on it as anywhere else. A path of its own, which builds the record once: a record
/// built on a branch that joins the others would have the verifier check everything
/// after it twice (for a kprobe's record, the fentry program's largest part).
#[inline(always)]
fn run_saving<S: Site>(ctx: *mut c_void, site: &S, hp: &HookPoint, at: &Snapshot, id: u32) -> i32 {
    let Some(base) = site.record(hp) else {
        return 0;
    };
    returns::save_entry(base, id);
    if at.first == 0 {
        return 0;
    }
    let mut every = None;
    let Some(verdict) = process_verdict(id, at, &mut every) else {
        return 0;
    };
    decide(ctx, base, at, verdict)
}

/// The process verdict for the hooks on the list: the cached one where a hook has a
/// process selector (`HP_VERDICT`), else every hook (kept in `every`, the caller's).
/// `None` when the cache cannot be reached.
#[inline(always)]
fn process_verdict<'a>(
    id: u32,
    at: &Snapshot,
    every: &'a mut Option<Verdict>,
) -> Option<&'a Verdict> {
    if at.flags & HP_VERDICT != 0 {
        verdict::lookup(id, at)
    } else {
        Some(every.insert(verdict::every(at)))
    }
}

/// The hooks the process verdict and the argument gate leave, evaluated on the record at
/// `base`.
#[inline(always)]
fn decide(ctx: *mut c_void, base: u64, at: &Snapshot, verdict: &Verdict) -> i32 {
    let gate = if verdict.covered != 0 {
        gate::check(base, &at.gate)
    } else {
        GateHit::default()
    };
    if verdict.n == 0 && gate.n == 0 {
        return 0;
    }
    eval::candidates(ctx, base, at, verdict, &gate)
}
