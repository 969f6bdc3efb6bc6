//! Reserve, fill, submit: every record goes to `EVENTS` through here, and every record
//! the ring buffer cannot take is counted in `COUNTERS`.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::generated::{bpf_get_current_cgroup_id, bpf_ktime_get_ns},
    maps::ring_buf::RingBufEntry,
};
use tracer_common::{
    counters::{Counter, counter_index},
    event::{EventHeader, EventKind},
};

use crate::maps::{COUNTERS, EVENTS, HANDOVER};

/// Adds one to `counter` of `kind` on this CPU.
#[inline(always)]
pub fn count(kind: EventKind, counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter_index(kind, counter)) {
        // SAFETY: `slot` points into this CPU's value of the per-CPU array; programs on one
        // CPU do not preempt each other, so the increment is not raced.
        unsafe { *slot += 1 };
    }
}

/// Whether this object's generation is the one that posts: a new agent's hooks (the
/// lifecycle's and the policies') run beside the old ones until it takes over
/// (`tracer_common::handover`).
#[inline(always)]
pub fn active() -> bool {
    // SAFETY: GENERATION is a valid, aligned static; the volatile read keeps the
    // compiler from folding the zero it sees at build time.
    let mine = unsafe { core::ptr::read_volatile(&raw const crate::globals::GENERATION) };
    HANDOVER
        .get(tracer_common::handover::ACTIVE)
        .is_some_and(|active| *active == mine)
}

/// Reserves a `T` record in the ring buffer, counting a failure as a lost `kind` event.
#[inline(always)]
pub fn reserve<T: 'static>(kind: EventKind) -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count(kind, Counter::RingBufFull);
    }
    entry
}

/// Submits a filled record; `read_error` says some field could not be read.
#[inline(always)]
pub fn submit<T>(kind: EventKind, entry: RingBufEntry<T>, read_error: bool) {
    if read_error {
        count(kind, Counter::ReadError);
    }
    count(kind, Counter::Emitted);
    entry.submit(wakeup(core::mem::size_of::<T>() as u64));
}

/// The submit flags of a record of `size` bytes: wake the agent only when this record
/// takes the ring buffer's backlog across `WAKEUP_BYTES` (so a burst wakes it once, and it
/// drains the lot); below that the agent reads on its own timer. Records of other CPUs
/// racing across the threshold may both skip the wake-up: the timer still reads them.
#[inline(always)]
pub fn wakeup(size: u64) -> u64 {
    // SAFETY: WAKEUP_BYTES is a valid, aligned static; the volatile read keeps the
    // compiler from folding the zero it sees at build time.
    let threshold = unsafe { core::ptr::read_volatile(&raw const crate::globals::WAKEUP_BYTES) };
    if threshold == 0 {
        return 0;
    }
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA.into());
    if waiting < threshold && waiting + size >= threshold {
        BPF_RB_FORCE_WAKEUP.into()
    } else {
        BPF_RB_NO_WAKEUP.into()
    }
}

/// The common head of a record about process `pid`, thread `tid`, stamped now.
#[inline(always)]
pub fn header(kind: EventKind, pid: u32, tid: u32) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tid,
        // SAFETY: helpers without arguments or side effects.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        pid,
        _pad: 0,
        // SAFETY: as above.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
    }
}
