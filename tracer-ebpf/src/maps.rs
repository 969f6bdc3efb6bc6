//! Every map of the programs, in one place.

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use tracer_common::counters::COUNTERS_LEN;

/// Size of the `EVENTS` ring buffer in bytes (a power of two, a multiple of the page size).
/// The agent may resize it at load time (`--ring-buffer-size`).
pub const EVENTS_BYTES: u32 = 16 << 20;

/// The one ring buffer every hook writes to; one buffer for all CPUs keeps the records of
/// one process (fork, exec, exit) in the order they happened.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Per-CPU counters, indexed by `tracer_common::counters::counter_index`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS_LEN, 0);
