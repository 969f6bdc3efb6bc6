//! Deferred deletions. A program that is running may still read what the agent just
//! unlinked: a hook it reached through the old list, the entries of a gate it read the
//! old id of, a hook point id. So the agent unlinks first and deletes a moment later,
//! once every program that could have seen the old state has long finished (they run for
//! microseconds); and events already posted by a hook that is gone keep their policy for
//! as long as the ring buffer may still hold them.

use std::time::{Duration, Instant};

/// How long after its unlinking a thing is deleted.
pub const DELAY: Duration = Duration::from_millis(200);
/// How long the metadata of a removed hook stays, for its events still in flight.
pub const EVENTS_DELAY: Duration = Duration::from_secs(10);

/// What is to be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A hook's `HOOKS` entry.
    Hook(u32),
    /// A hook's metadata (policy, events): kept for its events in flight.
    HookMeta(u32),
    /// The hooks of the agent before (`store::restart`), detached: kept, as a removed
    /// hook's metadata, for their events in flight.
    Inherited,
    /// The entries of a gate (`GATE_INTS` / `GATE_STRS`), and its id.
    Gate(super::points::GateEntries),
    /// A hook point id, free for reuse.
    Point(u32),
    /// A policy's counters entry.
    Counters(u32),
    /// String values of filters no hook uses any more.
    Strings(Vec<crate::policy::compile::StrEntry>),
}

/// The queue, oldest first.
#[derive(Debug, Default)]
pub struct Retire {
    queue: Vec<(Instant, Item)>,
}

impl Retire {
    /// Deletes `item` once `DELAY` has passed (`EVENTS_DELAY` for hook metadata, the
    /// agent before's too).
    pub fn later(&mut self, item: Item) {
        let delay = if matches!(item, Item::HookMeta(_) | Item::Inherited) {
            EVENTS_DELAY
        } else {
            DELAY
        };
        self.queue.push((Instant::now() + delay, item));
    }

    /// The items whose time has come.
    pub fn due(&mut self, now: Instant) -> Vec<Item> {
        let (due, keep) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.queue = keep;
        due.into_iter().map(|(_, item)| item).collect()
    }

    /// Everything, due or not (the agent is stopping).
    pub fn all(&mut self) -> Vec<Item> {
        std::mem::take(&mut self.queue)
            .into_iter()
            .map(|(_, item)| item)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_due_after_their_delay_in_order() {
        let mut r = Retire::default();
        r.later(Item::Hook(1));
        r.later(Item::HookMeta(1));
        r.later(Item::Point(2));
        let now = Instant::now();
        assert!(r.due(now).is_empty(), "nothing is due at once");
        let soon = now + DELAY + Duration::from_millis(1);
        assert_eq!(r.due(soon), vec![Item::Hook(1), Item::Point(2)]);
        assert!(r.due(soon).is_empty(), "each item once");
        assert_eq!(r.due(now + EVENTS_DELAY * 2), vec![Item::HookMeta(1)]);
        assert!(r.is_empty());
    }
}
