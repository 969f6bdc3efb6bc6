//! The stacks the kernel's `STACKS` map holds, kept in step with the events that refer
//! to them. The programs only add to the map (`bpf_get_stackid` never replaces an entry:
//! a different stack in the same slot is refused with `-EEXIST`), so a stack read once
//! stays right for as long as its entry is not deleted, and only the agent deletes.
//!
//! An id is deleted once a whole sweep period has passed without an event using it; an
//! id no event has used yet (its event still on its way, or lost to a full ring buffer)
//! once it has been seen at two sweeps. Identical stacks share an id, so an id is not
//! deleted as soon as an event is read: the next event may carry it too.

use std::{collections::HashMap, sync::Arc};

/// The kernel's stack map, as the retention uses it (a trait, so that the bookkeeping
/// is tested without a kernel).
pub trait StackMap {
    /// The addresses of stack `id` (without the zeroes after the last); `None`: no
    /// such id.
    fn read(&self, id: u32) -> Result<Option<Vec<u64>>, aya::maps::MapError>;
    /// Every id in the map.
    fn ids(&self) -> Result<Vec<u32>, aya::maps::MapError>;
    fn delete(&mut self, id: u32) -> Result<(), aya::maps::MapError>;
}

impl<T> StackMap for aya::maps::StackTraceMap<T>
where
    T: std::borrow::BorrowMut<aya::maps::MapData>,
{
    fn read(&self, id: u32) -> Result<Option<Vec<u64>>, aya::maps::MapError> {
        match self.get(&id, 0) {
            Ok(trace) => Ok(Some(trace.frames().iter().map(|f| f.ip).collect())),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn ids(&self) -> Result<Vec<u32>, aya::maps::MapError> {
        self.stack_ids().collect()
    }

    fn delete(&mut self, id: u32) -> Result<(), aya::maps::MapError> {
        match self.remove(&id) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A stack read from the map, and the sweep during which an event last used it.
struct Held {
    ips: Arc<[u64]>,
    used: u64,
}

/// The stacks read so far, and what the sweeps have seen.
pub struct Retained<M> {
    map: M,
    held: HashMap<u32, Held>,
    /// Ids found in the map that no event had used yet, with the sweep that found them.
    unread: HashMap<u32, u64>,
    /// Sweeps done.
    epoch: u64,
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub deleted: usize,
    pub kept: usize,
}

impl<M: StackMap> Retained<M> {
    pub fn new(map: M) -> Self {
        Self {
            map,
            held: HashMap::new(),
            unread: HashMap::new(),
            epoch: 0,
        }
    }

    /// The addresses of stack `id`, which an event refers to; `None` when the map has
    /// no such id any more.
    pub fn get(&mut self, id: u32) -> Result<Option<Arc<[u64]>>, aya::maps::MapError> {
        if let Some(h) = self.held.get_mut(&id) {
            h.used = self.epoch;
            return Ok(Some(h.ips.clone()));
        }
        let Some(ips) = self.map.read(id)? else {
            return Ok(None);
        };
        let ips: Arc<[u64]> = ips.into();
        self.unread.remove(&id);
        self.held.insert(
            id,
            Held {
                ips: ips.clone(),
                used: self.epoch,
            },
        );
        Ok(Some(ips))
    }

    /// Deletes the ids no event has used for a whole sweep period (see the module's
    /// text); to be called once a period.
    pub fn sweep(&mut self) -> Result<Swept, aya::maps::MapError> {
        let previous = self.epoch;
        self.epoch += 1;
        let ids = self.map.ids()?;
        let mut swept = Swept::default();
        let mut present = std::collections::HashSet::with_capacity(ids.len());
        for id in ids {
            let stale = match (self.held.get(&id), self.unread.get(&id)) {
                (Some(h), _) => h.used < previous,
                (None, Some(&seen)) => seen < self.epoch,
                (None, None) => {
                    self.unread.insert(id, self.epoch);
                    false
                }
            };
            if stale {
                self.map.delete(id)?;
                self.held.remove(&id);
                self.unread.remove(&id);
                swept.deleted += 1;
            } else {
                present.insert(id);
                swept.kept += 1;
            }
        }
        self.held.retain(|id, _| present.contains(id));
        self.unread.retain(|id, _| present.contains(id));
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A map of stacks in memory.
    #[derive(Default)]
    struct Fake {
        stacks: BTreeMap<u32, Vec<u64>>,
        reads: std::cell::Cell<usize>,
    }

    impl StackMap for Fake {
        fn read(&self, id: u32) -> Result<Option<Vec<u64>>, aya::maps::MapError> {
            self.reads.set(self.reads.get() + 1);
            Ok(self.stacks.get(&id).cloned())
        }
        fn ids(&self) -> Result<Vec<u32>, aya::maps::MapError> {
            Ok(self.stacks.keys().copied().collect())
        }
        fn delete(&mut self, id: u32) -> Result<(), aya::maps::MapError> {
            self.stacks.remove(&id);
            Ok(())
        }
    }

    fn retained(ids: &[u32]) -> Retained<Fake> {
        let mut f = Fake::default();
        for &id in ids {
            f.stacks.insert(id, vec![0x1000 + u64::from(id), 0x2000]);
        }
        Retained::new(f)
    }

    #[test]
    fn a_stack_is_read_once_and_shared_by_the_events_that_use_it() {
        let mut r = retained(&[0, 7]);
        // Id 0 is an id like any other.
        assert_eq!(r.get(0).unwrap().as_deref(), Some(&[0x1000, 0x2000][..]));
        assert_eq!(r.get(0).unwrap().as_deref(), Some(&[0x1000, 0x2000][..]));
        assert_eq!(r.map.reads.get(), 1);
        assert_eq!(r.get(9).unwrap(), None, "an id the map does not hold");
    }

    #[test]
    fn a_stack_in_use_stays_and_one_unused_for_a_period_goes() {
        let mut r = retained(&[1, 2]);
        r.get(1).unwrap();
        r.get(2).unwrap();
        // Both used since the last sweep: kept.
        assert_eq!(
            r.sweep().unwrap(),
            Swept {
                deleted: 0,
                kept: 2
            }
        );
        // Only 1 is used again.
        r.get(1).unwrap();
        assert_eq!(
            r.sweep().unwrap(),
            Swept {
                deleted: 1,
                kept: 1
            }
        );
        assert!(r.map.stacks.contains_key(&1));
        assert!(!r.map.stacks.contains_key(&2));
        // A new stack in the slot of 2 is read anew, not taken from what was held.
        r.map.stacks.insert(2, vec![0x3000]);
        assert_eq!(r.get(2).unwrap().as_deref(), Some(&[0x3000][..]));
    }

    #[test]
    fn a_stack_no_event_uses_goes_at_the_second_sweep_that_sees_it() {
        let mut r = retained(&[5]);
        assert_eq!(
            r.sweep().unwrap(),
            Swept {
                deleted: 0,
                kept: 1
            }
        );
        assert_eq!(
            r.sweep().unwrap(),
            Swept {
                deleted: 1,
                kept: 0
            }
        );
        assert!(r.map.stacks.is_empty());
        // One whose event comes between the two sweeps is kept.
        let mut r = retained(&[6]);
        r.sweep().unwrap();
        r.get(6).unwrap();
        assert_eq!(
            r.sweep().unwrap(),
            Swept {
                deleted: 0,
                kept: 1
            }
        );
    }
}
