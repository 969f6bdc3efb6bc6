//! Restarts without a gap. The process lifecycle hooks, the ring buffer, its loss
//! counters, the stack traces and the hand-over state (`HANDOVER`,
//! `tracer_common::handover`) are pinned under a directory of the BPF file system
//! (`/sys/fs/bpf/tracer`), and the policies' hooks as they attach
//! (`policy::store::restart`). When the agent stops, even killed, they stay: the kernel
//! goes on recording into the ring buffer while no agent reads, and the policies go on
//! acting.
//!
//! A starting agent locks the directory (one agent per set: a second one waits for the
//! first to stop), writes itself as the holder (which the pinned policies spare), then
//! either
//! - **takes over** a set of its own layout ([`LAYOUT`]) and ring buffer size: its
//!   programs use the pinned maps, attach beside the old hooks (posting and acting on
//!   nothing: not their generation), and once its policies are loaded
//!   ([`Pins::activate`]) one write of `HANDOVER[ACTIVE]` makes them the ones that run.
//!   The old hooks are detached after. Each record is posted once, by one of them, into
//!   the same ring buffer, which the new agent reads from where the old one stopped;
//! - or **replaces** any other set: the old maps' pins are removed, the new set is made,
//!   its hooks attached before the old ones are detached. What the old hooks posted
//!   after the old agent stopped is in a ring buffer of another layout: it is counted and
//!   reported as lost, with the gap's duration.
//!
//! `seq` goes on from `HANDOVER[SEQ]`, which the export writes before each batch of
//! lines (so a number it gave is never given again, even when the agent is killed).

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::{
    Ebpf,
    maps::{Array, Map, MapData, RingBuf},
    programs::{RawTracePoint, links::FdLink, links::PinnedLink, raw_trace_point},
};
use tracer_common::{
    event::EventKind,
    handover::{
        ACTIVE, CLEAN, LAYOUT, LAYOUT_SLOT, LOST_REPORTED, OWNER, RING_BYTES, SEQ, STOPPED_NS,
    },
};

/// Where the set is pinned unless `--pin-dir` says otherwise.
pub const DEFAULT_DIR: &str = "/sys/fs/bpf/tracer";

/// The pinned maps: the hand-over state, the ring buffer and its counters, and the
/// policies' stack traces (whose ids their events carry).
const MAPS: [&str; 4] = ["HANDOVER", "EVENTS", "COUNTERS", "STACKS"];

/// The hooks' links, one file per lifecycle program (`policy-N` for a policy's).
pub const LINKS: &str = "links";

/// `statfs.f_type` of the BPF file system.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

const KINDS: usize = EventKind::ALL.len();

#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error(
        "{dir}: not on a BPF file system ({why}); mount one (`mount -t bpf bpf /sys/fs/bpf`; the DaemonSet mounts the node's), or run with --no-pin (a restart then loses what happens while no agent runs)"
    )]
    NoBpffs { dir: PathBuf, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{dir} is held by another agent (pid {owner}) after waiting {waited:?} for it to stop; stop it, or give this agent its own --pin-dir (two agents on one node record every event twice)"
    )]
    Held {
        dir: PathBuf,
        owner: String,
        waited: Duration,
    },
    #[error("pinned map {path}: {source}")]
    Map {
        path: PathBuf,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("the object has no map `{0}`")]
    NoMap(&'static str),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HandoverError + '_ {
    move |source| HandoverError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the agent that had the set before left in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Previous {
    pub generation: u64,
    /// The last `seq` it numbered.
    pub seq: u64,
    /// When it stopped reading (CLOCK_REALTIME ns); 0 if it never said (killed).
    pub stopped_ns: u64,
    pub clean: bool,
    pub owner: u64,
    /// Kernel losses it reported, per kind (`EventKind::ALL` order).
    pub lost_reported: [u64; KINDS],
    /// Why the set was replaced rather than taken over; `None`: taken over.
    pub replaced: Option<String>,
    /// Replaced for its ring buffer's size only: its records have this agent's layout,
    /// and are read before the new ring buffer's.
    pub same_layout: bool,
    /// Replaced with the same layout: what its counters say the kernel lost and no
    /// agent reported, per kind.
    pub old_unreported: Option<[u64; KINDS]>,
}

/// The pinned set, locked for this agent.
pub struct Pins {
    dir: PathBuf,
    /// The directory, `flock`ed while this agent runs.
    _lock: File,
    /// This agent's generation.
    pub generation: u64,
    pub previous: Option<Previous>,
    old_links: Vec<PinnedLink>,
    /// The replaced set's ring buffer, to count what it holds.
    old_ring: Option<RingBuf<MapData>>,
    /// This agent's lifecycle hooks, pinned when it becomes the active generation.
    pending: Vec<(&'static str, raw_trace_point::RawTracePointLinkId)>,
}

/// What a take-over found.
#[derive(Default)]
pub struct TakeOver {
    /// Old hooks detached.
    pub detached: usize,
    /// Records in a replaced set's ring buffer of another layout, which this agent
    /// cannot read.
    pub unread: u64,
    /// A replaced set's ring buffer of this agent's layout (only its size differed), its
    /// hooks detached: its records come before the new ring buffer's.
    pub old_ring: Option<RingBuf<MapData>>,
}

impl Pins {
    /// Locks `dir` (waiting up to `wait` for an agent that holds it to stop) and reads
    /// what the previous agent left; `ring_bytes`: this agent's ring buffer size.
    pub fn acquire(dir: &Path, ring_bytes: u32, wait: Duration) -> Result<Self, HandoverError> {
        ensure_bpffs(dir)?;
        std::fs::create_dir_all(dir.join(LINKS)).map_err(io(dir))?;
        let lock = File::open(dir).map_err(io(dir))?;
        lock_dir(&lock, dir, wait)?;
        let state = read_state(dir)?;
        if state.is_some() {
            spare_me(dir);
        }
        let mut pins = Self {
            dir: dir.to_owned(),
            _lock: lock,
            generation: 1,
            previous: None,
            old_links: Vec::new(),
            old_ring: None,
            pending: Vec::new(),
        };
        let Some(slots) = state else {
            // A set half made by an agent that died before its first write: its links
            // (if any) are replaced like any other.
            pins.old_links = old_links(dir)?;
            return Ok(pins);
        };
        let mut previous = previous_of(&slots);
        pins.generation = previous.generation.wrapping_add(1).max(1);
        previous.replaced = replace_reason(&slots, ring_bytes);
        previous.same_layout = slots[LAYOUT_SLOT as usize] == LAYOUT;
        pins.old_links = old_links(dir)?;
        if previous.replaced.is_some() {
            let path = dir.join("EVENTS");
            pins.old_ring = match MapData::from_pin(&path)
                .and_then(|m| RingBuf::try_from(Map::RingBuf(m)))
            {
                Ok(ring) => Some(ring),
                Err(e) => {
                    tracing::warn!(
                        "{}: the replaced ring buffer cannot be read ({e}): what it kept is lost, uncounted",
                        path.display()
                    );
                    None
                }
            };
            // The new counters start at zero: what the old ones counted and nobody
            // reported is said by this agent (where their layout is its own).
            if previous.same_layout {
                previous.old_unreported = old_unreported(dir, &previous.lost_reported);
            }
            previous.lost_reported = [0; KINDS];
            // Both sets' programs read one `HANDOVER` where its definition has not
            // changed: one write then moves the posting from the old hooks to the new.
            let keep_handover = handover_compatible(&dir.join("HANDOVER"));
            for map in MAPS {
                if map == "HANDOVER" && keep_handover {
                    continue;
                }
                unpin(&dir.join(map))?;
            }
        }
        pins.previous = Some(previous);
        Ok(pins)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Each pinned map's name and path, for the loader: a map pinned there is used, one
    /// missing is made and pinned.
    pub fn map_paths(&self) -> Vec<(&'static str, PathBuf)> {
        MAPS.iter().map(|m| (*m, self.dir.join(m))).collect()
    }

    /// Whether this agent becomes the active generation only once its policies are
    /// loaded ([`Pins::activate`]): on a set of its layout taken over, where the old
    /// hooks, the policies' with them, go on until the new ones are in. A new or
    /// replaced set is made active at once.
    pub fn deferred(&self) -> bool {
        self.previous.as_ref().is_some_and(|p| p.replaced.is_none())
    }

    /// Takes the set for this agent (`links`: its attached lifecycle hooks, by program)
    /// and, unless [`Pins::deferred`], makes its programs the ones that post, detaches
    /// the old hooks and pins the new ones. Returns the `HANDOVER` map, where the export
    /// keeps `seq`.
    pub fn take_over(
        &mut self,
        ebpf: &mut Ebpf,
        links: Vec<(&'static str, raw_trace_point::RawTracePointLinkId)>,
    ) -> Result<(Handover, TakeOver), HandoverError> {
        let map = ebpf
            .take_map("HANDOVER")
            .ok_or(HandoverError::NoMap("HANDOVER"))?;
        let path = self.dir.join("HANDOVER");
        let array = Array::<MapData, u64>::try_from(map)
            .map_err(|source| HandoverError::Map { path, source })?;
        let mut handover = Handover { array };
        let ring_bytes = ebpf
            .map("EVENTS")
            .and_then(|m| match m {
                Map::RingBuf(data) => data.info().ok().map(|i| i.max_entries()),
                _ => None,
            })
            .unwrap_or(0);
        handover.set(LAYOUT_SLOT, LAYOUT);
        handover.set(RING_BYTES, u64::from(ring_bytes));
        handover.set(OWNER, u64::from(std::process::id()));
        handover.set(STOPPED_NS, 0);
        handover.set(CLEAN, 0);
        self.pending = links;
        let mut report = TakeOver::default();
        if self.deferred() {
            return Ok((handover, report));
        }
        handover.set(ACTIVE, self.generation);
        report.detached = self.changeover(ebpf);
        let same_layout = self.previous.as_ref().is_some_and(|p| p.same_layout);
        match self.old_ring.take() {
            Some(ring) if same_layout => report.old_ring = Some(ring),
            Some(mut ring) => report.unread = drain_count(&mut ring),
            None => {}
        }
        Ok((handover, report))
    }

    /// Makes this agent's programs the ones that post, after [`Pins::take_over`] deferred
    /// it: the old hooks (lifecycle and policies) are detached, the new lifecycle hooks
    /// pinned. Returns how many old hooks were detached.
    pub fn activate(&mut self, ebpf: &mut Ebpf) -> Result<usize, HandoverError> {
        write_slot(&self.dir, ACTIVE, self.generation)?;
        Ok(self.changeover(ebpf))
    }

    /// Once this agent's generation is active: detaches the old hooks and pins this
    /// agent's lifecycle hooks. Returns how many old hooks were detached.
    fn changeover(&mut self, ebpf: &mut Ebpf) -> usize {
        let mut detached = 0;
        for old in std::mem::take(&mut self.old_links) {
            match old.unpin() {
                Ok(link) => {
                    drop(link);
                    detached += 1;
                }
                Err(e) => tracing::warn!("cannot remove an old hook's pin: {e}"),
            }
        }
        for (program, id) in std::mem::take(&mut self.pending) {
            if let Err(e) = self.pin_link(ebpf, program, id) {
                tracing::warn!(
                    "hook {program} is not pinned ({e}): a restart will miss what happens while no agent runs"
                );
            }
        }
        detached
    }

    fn pin_link(
        &self,
        ebpf: &mut Ebpf,
        program: &'static str,
        id: raw_trace_point::RawTracePointLinkId,
    ) -> Result<(), String> {
        let tp: &mut RawTracePoint = ebpf
            .program_mut(program)
            .ok_or("not in the object")?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| e.to_string())?;
        let link = tp.take_link(id).map_err(|e| e.to_string())?;
        let link = FdLink::from(link);
        let path = self.dir.join(LINKS).join(program);
        // The pin outlives this agent; the fd it leaves open is closed with it.
        let pinned = link.pin(&path).map_err(|e| e.to_string())?;
        drop(pinned);
        Ok(())
    }
}

/// The `HANDOVER` map, for this agent's `seq` and its last words.
pub struct Handover {
    array: Array<MapData, u64>,
}

impl Handover {
    fn set(&mut self, slot: u32, value: u64) {
        if let Err(e) = self.array.set(slot, value, 0) {
            tracing::warn!("cannot write the hand-over state (slot {slot}): {e}");
        }
    }

    /// `seq` has reached `seq`: numbered lines go out after this write, so a next agent
    /// never gives a number again.
    pub fn seq(&mut self, seq: u64) {
        self.set(SEQ, seq);
    }

    /// The agent stops with everything it read written: the next agent's losses and
    /// gap are counted from here.
    pub fn stopped(&mut self, seq: u64, lost_reported: &[u64; KINDS]) {
        self.set(SEQ, seq);
        for (i, lost) in lost_reported.iter().enumerate() {
            self.set(LOST_REPORTED + i as u32, *lost);
        }
        self.set(STOPPED_NS, realtime_ns());
        self.set(OWNER, 0);
        self.set(CLEAN, 1);
    }
}

/// Reads a ring buffer to its end without decoding; how many records it held.
fn drain_count(ring: &mut RingBuf<MapData>) -> u64 {
    let mut n = 0;
    while ring.next().is_some() {
        n += 1;
    }
    n
}

/// Removes the pin at `path`, if there is one.
fn unpin(path: &Path) -> Result<(), HandoverError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Wall-clock time now, in ns since the epoch.
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Why a set with `slots` is replaced rather than taken over by an agent whose ring
/// buffer is `ring_bytes`; `None`: taken over.
fn replace_reason(slots: &[u64], ring_bytes: u32) -> Option<String> {
    let layout = slots[LAYOUT_SLOT as usize];
    let ring = slots[RING_BYTES as usize];
    if layout != LAYOUT {
        Some(format!(
            "its record layout is version {layout}, this agent's {LAYOUT}"
        ))
    } else if ring != u64::from(ring_bytes) {
        Some(format!(
            "its ring buffer is {} KiB, this agent's (--ring-buffer-size) {} KiB",
            ring >> 10,
            ring_bytes >> 10
        ))
    } else {
        None
    }
}

fn previous_of(slots: &[u64]) -> Previous {
    let mut lost_reported = [0; KINDS];
    for (i, lost) in lost_reported.iter_mut().enumerate() {
        *lost = slots[LOST_REPORTED as usize + i];
    }
    Previous {
        generation: slots[ACTIVE as usize],
        seq: slots[SEQ as usize],
        stopped_ns: slots[STOPPED_NS as usize],
        clean: slots[CLEAN as usize] == 1,
        owner: slots[OWNER as usize],
        lost_reported,
        replaced: None,
        same_layout: true,
        old_unreported: None,
    }
}

/// Whether the pinned `HANDOVER` at `path` is defined as this agent's (an array of
/// `SLOTS` u64): both sets then share it.
fn handover_compatible(path: &Path) -> bool {
    aya::maps::MapInfo::from_pin(path).is_ok_and(|info| {
        matches!(info.map_type(), Ok(aya::maps::MapType::Array))
            && info.key_size() == 4
            && info.value_size() == 8
            && info.max_entries() == tracer_common::handover::SLOTS
    })
}

/// What the pinned `COUNTERS` in `dir` say the kernel lost beyond `reported`, per kind.
fn old_unreported(dir: &Path, reported: &[u64; KINDS]) -> Option<[u64; KINDS]> {
    use tracer_common::counters::{Counter, counter_index};
    let map = MapData::from_pin(dir.join("COUNTERS")).ok()?;
    let counters = aya::maps::PerCpuArray::<MapData, u64>::try_from(Map::PerCpuArray(map)).ok()?;
    let mut out = [0; KINDS];
    for (i, kind) in EventKind::ALL.into_iter().enumerate() {
        let lost: u64 = counters
            .get(&counter_index(kind, Counter::RingBufFull), 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0);
        out[i] = lost.saturating_sub(reported[i]);
    }
    Some(out)
}

/// The slots of a pinned `HANDOVER`, if there is one.
fn read_state(dir: &Path) -> Result<Option<Vec<u64>>, HandoverError> {
    if !dir.join("HANDOVER").exists() {
        return Ok(None);
    }
    let array = pinned_handover(dir)?;
    let slots = (0..tracer_common::handover::SLOTS)
        .map(|i| array.get(&i, 0).unwrap_or(0))
        .collect();
    Ok(Some(slots))
}

/// Makes this process the set's holder (`HANDOVER[OWNER]`), which its pinned policies
/// spare as their own agent: a `Sigkill` policy cannot kill the agent that starts to take
/// it over, or `tracer cleanup`. (A `HANDOVER` of another layout may have no such slot.)
fn spare_me(dir: &Path) {
    if let Err(e) = write_slot(dir, OWNER, u64::from(std::process::id())) {
        tracing::debug!("the pinned policies do not spare this process: {e}");
    }
}

/// Writes `value` to slot `slot` of the `HANDOVER` pinned in `dir`.
fn write_slot(dir: &Path, slot: u32, value: u64) -> Result<(), HandoverError> {
    pinned_handover(dir)?
        .set(slot, value, 0)
        .map_err(|source| HandoverError::Map {
            path: dir.join("HANDOVER"),
            source,
        })
}

/// The `HANDOVER` pinned in `dir`.
fn pinned_handover(dir: &Path) -> Result<Array<MapData, u64>, HandoverError> {
    let path = dir.join("HANDOVER");
    let map = MapData::from_pin(&path).map_err(|source| HandoverError::Map {
        path: path.clone(),
        source,
    })?;
    Array::try_from(Map::Array(map)).map_err(|source| HandoverError::Map { path, source })
}

/// The hooks pinned by the agent before.
fn old_links(dir: &Path) -> Result<Vec<PinnedLink>, HandoverError> {
    let links = dir.join(LINKS);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&links).map_err(io(&links))? {
        let path = entry.map_err(io(&links))?.path();
        match PinnedLink::from_pin(&path) {
            Ok(link) => out.push(link),
            Err(e) => tracing::warn!("{}: not a pinned hook ({e}); left alone", path.display()),
        }
    }
    Ok(out)
}

/// Mounts the BPF file system on `/sys/fs/bpf` where nothing is mounted there, and
/// checks that `dir`'s nearest existing ancestor is on one.
fn ensure_bpffs(dir: &Path) -> Result<(), HandoverError> {
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) && !is_bpffs(root) && root.is_dir() {
        match nix::mount::mount(
            Some("bpf"),
            root,
            Some("bpf"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            None::<&str>,
        ) {
            Ok(()) => tracing::info!("mounted the BPF file system at {}", root.display()),
            Err(e) => {
                return Err(HandoverError::NoBpffs {
                    dir: dir.to_owned(),
                    why: format!("mounting it on {} failed: {e}", root.display()),
                });
            }
        }
    }
    let existing = dir.ancestors().find(|p| p.exists()).unwrap_or(dir);
    if is_bpffs(existing) {
        Ok(())
    } else {
        Err(HandoverError::NoBpffs {
            dir: dir.to_owned(),
            why: format!("{} is on another file system", existing.display()),
        })
    }
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
}

/// Takes the directory's lock, waiting up to `wait` for another agent to let it go.
fn lock_dir(lock: &File, dir: &Path, wait: Duration) -> Result<(), HandoverError> {
    let start = Instant::now();
    let mut said = false;
    loop {
        // SAFETY: flock on a file descriptor this function borrows; no memory is passed.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io(dir)(err));
        }
        let owner = read_state(dir)
            .ok()
            .flatten()
            .map_or_else(|| "unknown".to_owned(), |s| s[OWNER as usize].to_string());
        if start.elapsed() >= wait {
            return Err(HandoverError::Held {
                dir: dir.to_owned(),
                owner,
                waited: wait,
            });
        }
        if !said {
            said = true;
            tracing::info!(
                "{} is held by another agent (pid {owner}): waiting up to {wait:?} for it to stop",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tracer cleanup`: detaches a pinned set's hooks and removes it; how many records its
/// ring buffer held, unread.
pub fn cleanup(dir: &Path) -> Result<u64, HandoverError> {
    if !dir.exists() {
        return Ok(0);
    }
    let lock = File::open(dir).map_err(io(dir))?;
    lock_dir(&lock, dir, Duration::ZERO)?;
    spare_me(dir);
    for link in old_links(dir)? {
        link.unpin().map_err(io(dir))?;
    }
    let unread = MapData::from_pin(dir.join("EVENTS"))
        .ok()
        .and_then(|m| RingBuf::try_from(Map::RingBuf(m)).ok())
        .map_or(0, |mut ring| drain_count(&mut ring));
    for map in MAPS {
        unpin(&dir.join(map))?;
    }
    let links = dir.join(LINKS);
    if links.exists() {
        std::fs::remove_dir(&links).map_err(io(&links))?;
    }
    std::fs::remove_dir(dir).map_err(io(dir))?;
    Ok(unread)
}

/// Whether a set is pinned at `dir` (for an agent run with `--no-pin`, which would run
/// beside its hooks).
pub fn exists(dir: &Path) -> bool {
    dir.join("HANDOVER").exists()
        || dir
            .join(LINKS)
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(layout: u64, ring: u64) -> Vec<u64> {
        let mut s = vec![0; tracer_common::handover::SLOTS as usize];
        s[LAYOUT_SLOT as usize] = layout;
        s[RING_BYTES as usize] = ring;
        s
    }

    #[test]
    fn a_set_of_this_layout_and_size_is_taken_over() {
        assert_eq!(replace_reason(&slots(LAYOUT, 1 << 20), 1 << 20), None);
    }

    #[test]
    fn another_layout_or_ring_size_is_replaced_and_says_why() {
        let why = replace_reason(&slots(LAYOUT + 1, 1 << 20), 1 << 20).unwrap();
        assert!(why.contains(&format!("version {}", LAYOUT + 1)), "{why}");
        let why = replace_reason(&slots(LAYOUT, 1 << 20), 2 << 20).unwrap();
        assert!(
            why.contains("1024 KiB") && why.contains("2048 KiB"),
            "{why}"
        );
    }

    #[test]
    fn what_the_previous_agent_left_is_read_from_its_slots() {
        let mut s = slots(LAYOUT, 4096);
        s[ACTIVE as usize] = 7;
        s[SEQ as usize] = 1234;
        s[STOPPED_NS as usize] = 99;
        s[CLEAN as usize] = 1;
        s[LOST_REPORTED as usize + 1] = 5;
        let p = previous_of(&s);
        assert_eq!(
            (p.generation, p.seq, p.stopped_ns, p.clean),
            (7, 1234, 99, true)
        );
        assert_eq!(p.lost_reported[1], 5);
        assert_eq!(p.lost_reported.iter().sum::<u64>(), 5);
    }

    #[test]
    fn a_directory_elsewhere_than_a_bpf_file_system_is_refused_with_the_fix() {
        let dir = std::env::temp_dir().join("tracer-not-bpffs");
        let e = ensure_bpffs(&dir).unwrap_err().to_string();
        assert!(e.contains("--no-pin") && e.contains("mount -t bpf"), "{e}");
    }
}
