//! The state that carries the kernel side from one agent to the next (`HANDOVER`, an
//! array of `u64` pinned with the ring buffer and the lifecycle hooks): which generation
//! of programs may post records, and what the agent that stopped had said.
//!
//! The programs read slots [`ACTIVE`] and [`OWNER`]; the other slots are the agents'. A
//! program (lifecycle or policy) runs only while `ACTIVE` holds its own generation, so
//! that a new agent can attach its hooks beside the old ones and take over in one map
//! write: no record is posted twice, none is missed.

/// The version of everything two agents share through the pinned set: the records'
/// layout (`event`, `counters`) and the pinned maps' definitions. An agent takes over a
/// pinned set of its own version and replaces any other. Raise it with any change to
/// those.
pub const LAYOUT: u64 = 1;

/// The generation whose programs post records (0: unpinned, the only one). It stays
/// slot 0 in every layout: a set of another layout whose `HANDOVER` has this one's size
/// shares it with the set that replaces it (`handover` in the agent).
pub const ACTIVE: u32 = 0;
/// [`LAYOUT`] of the programs that created the set.
pub const LAYOUT_SLOT: u32 = 1;
/// The ring buffer's size in bytes.
pub const RING_BYTES: u32 = 2;
/// The last `seq` an agent numbered: the next agent goes on from it.
pub const SEQ: u32 = 3;
/// When the agent stopped reading (CLOCK_REALTIME, ns); 0 while one reads.
pub const STOPPED_NS: u32 = 4;
/// 1 when the agent stopped cleanly (everything it read was written).
pub const CLEAN: u32 = 5;
/// The pid of the agent that holds the set (0: none), written as soon as it has the
/// lock: the policies' programs spare it (`Sigkill`, `Signal`, `NotifyEnforcer`), those
/// of the agent before while it starts.
pub const OWNER: u32 = 6;
/// Records lost in the kernel, per event kind, as the stream has reported them:
/// `LOST_REPORTED + kind`.
pub const LOST_REPORTED: u32 = 8;

/// Slots in `HANDOVER`.
pub const SLOTS: u32 = LOST_REPORTED + crate::event::EventKind::MAX as u32 + 1;
