//! Indices of the kernel's per-CPU `COUNTERS` array: for every event kind, how many
//! records were submitted, how many the ring buffer could not take, and how many were
//! sent with a field the kernel could not read. The agent sums the CPUs and reports them.

use crate::event::EventKind;

/// What a counter counts, for one event kind.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Records submitted to the ring buffer.
    Emitted = 0,
    /// Records lost because the ring buffer was full.
    RingBufFull = 1,
    /// Records submitted with at least one field the kernel failed to read.
    ReadError = 2,
}

/// Counters per event kind.
pub const COUNTERS_PER_KIND: u32 = 3;

/// Size of the `COUNTERS` array: kinds are numbered from 1, slot 0 is unused.
pub const COUNTERS_LEN: u32 = (EventKind::MAX as u32 + 1) * COUNTERS_PER_KIND;

/// Index of `counter` for `kind` in the `COUNTERS` array.
pub const fn counter_index(kind: EventKind, counter: Counter) -> u32 {
    kind as u32 * COUNTERS_PER_KIND + counter as u32
}
