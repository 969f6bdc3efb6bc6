//! The kernel-to-agent hand-over: drains the `EVENTS` ring buffer as it becomes readable
//! (tokio `AsyncFd` on the map's epoll fd) and reads the per-CPU `COUNTERS`, so that
//! records the kernel could not hand over are reported, never silent.

use std::os::fd::AsRawFd as _;

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, RingBuf},
};
use tokio::io::unix::AsyncFd;
use tracer_common::{
    counters::{COUNTERS_LEN, Counter, counter_index},
    event::EventKind,
};

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("the eBPF object has no map `{0}`")]
    NoMap(&'static str),
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot poll the ring buffer: {0}")]
    Poll(#[from] std::io::Error),
}

/// Totals of the kernel's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub emitted: [u64; KINDS],
    pub lost: [u64; KINDS],
    pub read_errors: [u64; KINDS],
}

/// Number of event kinds.
const KINDS: usize = EventKind::ALL.len();

impl Counts {
    pub fn total_lost(&self) -> u64 {
        self.lost.iter().sum()
    }
}

/// What was lost since the previous report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossReport {
    pub lost: Vec<(EventKind, u64)>,
    pub total_lost: u64,
    /// The previous report's time (or the source's start), RFC 3339.
    pub since: String,
}

pub struct EventSource {
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
    reported_lost: [u64; KINDS],
    reported_at: String,
}

impl EventSource {
    /// Takes the maps out of `ebpf`: the source outlives the programs, so that what is
    /// left in the ring buffer can be drained after they are detached.
    pub fn new(ebpf: &mut Ebpf) -> Result<Self, RingError> {
        let ring = ebpf.take_map("EVENTS").ok_or(RingError::NoMap("EVENTS"))?;
        let ring = RingBuf::try_from(ring).map_err(|source| RingError::Map {
            name: "EVENTS",
            source,
        })?;
        let counters = ebpf
            .take_map("COUNTERS")
            .ok_or(RingError::NoMap("COUNTERS"))?;
        let counters = PerCpuArray::try_from(counters).map_err(|source| RingError::Map {
            name: "COUNTERS",
            source,
        })?;
        tracing::trace!(fd = ring.as_raw_fd(), "ring buffer open");
        // SAFETY: the RingBuf owns its map fd (MapData) and keeps it open, unchanged, until
        // it is dropped, which is when the AsyncFd is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| RingError::Poll(e.into()))?;
        Ok(Self {
            ring,
            counters,
            reported_lost: [0; KINDS],
            reported_at: crate::clock::Clock::now_rfc3339(),
        })
    }

    /// Goes on from what the agent before reported: `lost_reported`, per kind, since
    /// `since` (RFC 3339), so that what was lost while no agent read is reported once.
    pub fn resume(&mut self, lost_reported: [u64; KINDS], since: String) {
        self.reported_lost = lost_reported;
        self.reported_at = since;
    }

    /// What is lost and not reported yet, per kind, without reporting it.
    pub fn unreported(&self) -> [u64; KINDS] {
        let lost = self.counts().lost;
        std::array::from_fn(|i| lost[i].saturating_sub(self.reported_lost[i]))
    }

    /// The kernel's losses as reported so far, per kind.
    pub fn reported(&self) -> [u64; KINDS] {
        self.reported_lost
    }

    /// Waits until the ring buffer has records.
    pub async fn readable(&mut self) -> Result<(), RingError> {
        let mut guard = self.ring.readable_mut().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Hands the records now in the ring buffer to `f`, at most `budget` of them (the
    /// agent's other work, such as its signals and policy changes, waits meanwhile: a
    /// kernel that writes faster than the agent reads must not keep it here for ever);
    /// returns how many.
    pub fn drain(&mut self, budget: usize, mut f: impl FnMut(&[u8])) -> usize {
        let ring = self.ring.get_mut();
        let mut n = 0;
        while n < budget
            && let Some(item) = ring.next()
        {
            f(&item);
            n += 1;
        }
        n
    }

    /// Reads the kernel's counters.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            let sum = |counter| {
                let idx = counter_index(kind, counter);
                debug_assert!(idx < COUNTERS_LEN);
                self.counters
                    .get(&idx, 0)
                    .map(|per_cpu| per_cpu.iter().sum::<u64>())
                    .unwrap_or(0)
            };
            c.emitted[i] = sum(Counter::Emitted);
            c.lost[i] = sum(Counter::RingBufFull);
            c.read_errors[i] = sum(Counter::ReadError);
        }
        c
    }

    /// What was lost since the previous call, if anything.
    pub fn new_losses(&mut self) -> Option<LossReport> {
        let counts = self.counts();
        if counts.lost == self.reported_lost {
            return None;
        }
        let lost = EventKind::ALL
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, counts.lost[i].saturating_sub(self.reported_lost[i])))
            .collect();
        self.reported_lost = counts.lost;
        Some(LossReport {
            lost,
            total_lost: counts.total_lost(),
            since: std::mem::replace(&mut self.reported_at, crate::clock::Clock::now_rfc3339()),
        })
    }
}
