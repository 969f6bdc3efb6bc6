//! The hook points: which hooks run where, in what order, and what lets the kernel
//! reject a call for all of them at once (the process verdict's flags, the argument
//! gate). Each change to a hook point's list rewrites, in this order, so that a program
//! running meanwhile never misses a hook that stays:
//!
//! 1. the new gate's entries (a new gate id: the old entries stay until retired);
//! 2. the hooks' configurations, last first (each `next` names a hook already written;
//!    a hook being removed is unlinked here, and deleted later);
//! 3. the hook point's record, with a new epoch (cached verdicts are made again).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aya::maps::lpm_trie::Key;
use tracer_common::policy::{
    ArgConfig, CANDIDATES_ALL, GATE_INT, GATE_STR, GATE_STR_BYTES, GateHit, GateIntKey, GateStrKey,
    HP_SAVE_ENTRY, HP_UNCOVERED, HookConfig, HookPoint, VERDICT_HOOKS,
};

use super::{
    maps::{Maps, WriteError},
    retire::{Item, Retire},
};
use crate::policy::{
    compile::{GateFilter, GateValues},
    place::Point,
};

/// A hook point's identity: where, how its record is built, and for a return the hook
/// point whose records it joins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PointKey {
    pub point: Point,
    pub pair: u32,
}

/// A hook on a list.
#[derive(Debug, Clone)]
pub struct Member {
    pub config: HookConfig,
    /// `HP_VERDICT`, `HP_DEP_*` it needs.
    pub process: u32,
    /// Per selector, the filters a gate can check.
    pub gates: Vec<Vec<GateFilter>>,
    /// The entry half of a return probe: it only keeps the call's record for its return
    /// (`HP_SAVE_ENTRY` on the hook point), and is on no list. It shares the hook point
    /// of the other hooks on its function: the kernel runs a program once per
    /// tracepoint, so two hook points cannot both be there.
    pub saves: bool,
}

/// The entries of one gate, to delete when it is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateEntries {
    pub id: u32,
    pub ints: Vec<GateIntKey>,
    pub strs: Vec<(u32, GateStrKey)>,
}

/// A hook point as the store keeps it.
#[derive(Debug)]
pub struct PointState {
    pub key: PointKey,
    pub members: Vec<Member>,
    /// What the kernel holds now: each hook's `next` and `gate` as last written ...
    written: HashMap<u32, (u32, u32)>,
    /// ... and the gate, with its entries.
    gate: Option<Gate>,
}

impl PointState {
    /// The hooks on its list, in order (not the entry halves, which only save).
    pub fn listed(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !m.saves)
    }
}

/// Every hook point.
#[derive(Debug, Default)]
pub struct Points {
    by_key: HashMap<PointKey, u32>,
    points: BTreeMap<u32, PointState>,
    /// The last epoch of every id ever used: an id handed out again goes on from there,
    /// so that no verdict cached for its previous hook point can look current.
    epochs: HashMap<u32, u32>,
    /// Ids free again (retired), and the highest handed out.
    free: BTreeSet<u32>,
    top: u32,
    /// The size of `HOOK_POINTS`: ids are below it.
    capacity: u32,
    last_gate: u32,
}

/// No hook point id is left.
#[derive(Debug, thiserror::Error)]
#[error(
    "all {0} hook points are in use (each distinct tracepoint, syscall or function that policies hook is one); raise --policy-hook-points"
)]
pub struct Full(pub u32);

impl Points {
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    /// The hook point of `key`, if there is one.
    pub fn find(&self, key: &PointKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// A new, empty hook point for `key`.
    pub fn create(&mut self, key: PointKey) -> Result<u32, Full> {
        let id = match self.free.pop_first() {
            Some(id) => id,
            // Id 0 means "none" to the programs.
            None if self.top + 1 < self.capacity => {
                self.top += 1;
                self.top
            }
            None => return Err(Full(self.capacity)),
        };
        self.by_key.insert(key.clone(), id);
        self.points.insert(
            id,
            PointState {
                key,
                members: Vec::new(),
                written: HashMap::new(),
                gate: None,
            },
        );
        Ok(id)
    }

    /// Forgets hook point `id` (its attachment is gone): its id is free once retired.
    pub fn drop_point(&mut self, id: u32, retire: &mut Retire) {
        if let Some(p) = self.points.remove(&id) {
            self.by_key.remove(&p.key);
            if let Some(g) = p.gate {
                retire.later(Item::Gate(g.entries()));
            }
            retire.later(Item::Point(id));
        }
    }

    /// Id `id` can be handed out again.
    pub fn release(&mut self, id: u32) {
        if !self.points.contains_key(&id) {
            self.free.insert(id);
        }
    }

    pub fn get(&self, id: u32) -> Option<&PointState> {
        self.points.get(&id)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut PointState> {
        self.points.get_mut(&id)
    }

    /// Every hook point: (id, state).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &PointState)> {
        self.points.iter().map(|(id, p)| (*id, p))
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Writes hook point `id` as its members now are (see the module's order): only what
    /// changed, so that adding a hook to a long list costs about one write.
    pub fn write(
        &mut self,
        id: u32,
        maps: &mut Maps,
        retire: &mut Retire,
    ) -> Result<(), WriteError> {
        let epoch = {
            let e = self.epochs.entry(id).or_insert(0);
            *e = e.wrapping_add(1);
            *e
        };
        let Some(p) = self.points.get_mut(&id) else {
            return Ok(());
        };
        // The gate: the same argument as now keeps its id and has its entries updated in
        // place; another gets a new id (and the old entries are retired).
        // (An entry half has no selectors: no gate covers it, and it is on no list.)
        let read = choose_gate(&p.members);
        let same = match (&p.gate, read) {
            (Some(g), Some(r)) => g.read == r,
            _ => false,
        };
        let gate_id = if same {
            p.gate.as_ref().map_or(0, |g| g.id)
        } else {
            self.last_gate = self.last_gate.wrapping_add(1).max(1);
            self.last_gate
        };
        let gate = read.map(|r| build_gate(r, gate_id, &p.members));
        write_gate(maps, gate.as_ref(), p.gate.as_ref().filter(|_| same))?;
        let covered = |m: &Member| {
            gate.as_ref()
                .is_some_and(|g| g.covers.contains(&m.config.id))
        };
        let mut next = 0;
        for m in p.members.iter_mut().rev().filter(|m| !m.saves) {
            m.config.next = next;
            m.config.gate = if covered(m) { gate_id } else { 0 };
            let now = (m.config.next, m.config.gate);
            if p.written.get(&m.config.id) != Some(&now) {
                maps.put_hook(&m.config)?;
                p.written.insert(m.config.id, now);
            }
            next = m.config.id;
        }
        let listed: BTreeSet<u32> = p.listed().map(|m| m.config.id).collect();
        p.written.retain(|id, _| listed.contains(id));
        let mut flags = p.key.point.flags;
        if p.members.iter().any(|m| m.saves) {
            flags |= HP_SAVE_ENTRY;
        }
        for m in p.listed() {
            flags |= m.process;
            if !covered(m) {
                flags |= HP_UNCOVERED;
            }
        }
        let record = HookPoint {
            first: next,
            epoch,
            flags,
            nhooks: listed.len() as u32,
            pair: p.key.pair,
            _pad: 0,
            gate: gate
                .as_ref()
                .map_or_else(Default::default, |g| tracer_common::policy::ArgGate {
                    kind: g.kind,
                    id: gate_id,
                    arg: g.read,
                }),
            kprobe: p.key.point.kprobe,
            sock: p.key.point.sock,
            usdt: p.key.point.usdt,
            fields: p.key.point.fields,
        };
        maps.put_point(id, &record)?;
        if let Some(old) = std::mem::replace(&mut p.gate, gate)
            && !same
        {
            retire.later(Item::Gate(old.entries()));
        }
        Ok(())
    }
}

/// Writes the entries of `gate`: all of them, or, where `now` is the same gate as the
/// kernel holds, those that changed (and deletes those it no longer has: no hook that
/// stays is in them).
fn write_gate(maps: &mut Maps, gate: Option<&Gate>, now: Option<&Gate>) -> Result<(), WriteError> {
    let Some(g) = gate else {
        return Ok(());
    };
    for (key, hit) in &g.ints {
        if now.and_then(|n| n.ints.get(key)) != Some(hit) {
            maps.put_gate_int(*key, hit)?;
        }
    }
    for ((bits, key), hit) in &g.strs {
        if now.and_then(|n| n.strs.get(&(*bits, *key))) != Some(hit) {
            maps.put_gate_str(&Key::new(*bits, *key), hit)?;
        }
    }
    if let Some(n) = now {
        for key in n.ints.keys().filter(|k| !g.ints.contains_key(k)) {
            maps.remove_gate_int(key);
        }
        for (bits, key) in n.strs.keys().filter(|k| !g.strs.contains_key(k)) {
            maps.remove_gate_str(&Key::new(*bits, *key));
        }
    }
    Ok(())
}

/// A gate: its argument, the hooks it covers, and its entries.
#[derive(Debug)]
struct Gate {
    id: u32,
    read: ArgConfig,
    kind: u32,
    covers: BTreeSet<u32>,
    ints: BTreeMap<GateIntKey, GateHit>,
    strs: BTreeMap<(u32, GateStrKey), GateHit>,
}

impl Gate {
    /// Its entries' keys, to delete.
    fn entries(&self) -> GateEntries {
        GateEntries {
            id: self.id,
            ints: self.ints.keys().copied().collect(),
            strs: self.strs.keys().copied().collect(),
        }
    }
}

/// The filters of `m` on argument `read`, one per selector when every selector has one
/// (a selector with two keeps its first): the hook can match only where one of them does.
fn gate_filters<'a>(m: &'a Member, read: &ArgConfig) -> Option<Vec<&'a GateFilter>> {
    if m.gates.is_empty() {
        return None;
    }
    m.gates
        .iter()
        .map(|sel| sel.iter().find(|f| f.read == *read))
        .collect()
}

/// The argument that covers the most hooks (every selector of each filters it with
/// `Equal`, or `Prefix` for a string), if any.
fn choose_gate(members: &[Member]) -> Option<ArgConfig> {
    let mut counts: HashMap<ArgConfig, usize> = HashMap::new();
    for m in members {
        let Some(first) = m.gates.first() else {
            continue;
        };
        let mut reads: Vec<ArgConfig> = first.iter().map(|f| f.read).collect();
        reads.dedup();
        for read in reads {
            if gate_filters(m, &read).is_some_and(|fs| same_kind(&fs)) {
                *counts.entry(read).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .max_by_key(|(read, n)| (*n, std::cmp::Reverse((read.offset, read.kind))))
        .map(|(read, _)| read)
}

/// The filters are all on integers or all on strings.
fn same_kind(fs: &[&GateFilter]) -> bool {
    let ints = |f: &&GateFilter| matches!(f.values, GateValues::Ints(_));
    fs.iter().all(ints) || !fs.iter().any(ints)
}

/// The entries of a gate on `read` for `members`.
fn build_gate(read: ArgConfig, id: u32, members: &[Member]) -> Gate {
    let mut gate = Gate {
        id,
        read,
        kind: GATE_INT,
        covers: BTreeSet::new(),
        ints: BTreeMap::new(),
        strs: BTreeMap::new(),
    };
    let mut ints: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    let mut strs: BTreeMap<(u32, [u8; GATE_STR_BYTES]), BTreeSet<u32>> = BTreeMap::new();
    for m in members {
        let Some(filters) = gate_filters(m, &read).filter(|fs| same_kind(fs)) else {
            continue;
        };
        let hook = m.config.id;
        gate.covers.insert(hook);
        for f in filters {
            match &f.values {
                GateValues::Ints(values) => {
                    for v in values {
                        ints.entry(*v).or_default().insert(hook);
                    }
                }
                GateValues::Strings { values, prefix } => {
                    gate.kind = GATE_STR;
                    for v in values {
                        strs.entry(string_key(v, *prefix)).or_default().insert(hook);
                    }
                }
            }
        }
    }
    gate.ints = ints
        .into_iter()
        .map(|(value, hooks)| {
            let key = GateIntKey { id, _pad: 0, value };
            (key, hit(&hooks))
        })
        .collect();
    // A string looked up finds its longest matching key: each key lists the hooks of
    // every key that is a prefix of it too (at most one per length).
    gate.strs = strs
        .iter()
        .map(|(&(bits, data), own)| {
            let mut hooks = own.clone();
            for len in 0..bits / 8 {
                let mut shorter = [0u8; GATE_STR_BYTES];
                shorter[..len as usize].copy_from_slice(&data[..len as usize]);
                if let Some(h) = strs.get(&(8 * len, shorter)) {
                    hooks.extend(h);
                }
            }
            let key = GateStrKey {
                id: id.to_be_bytes(),
                data,
            };
            ((32 + bits, key), hit(&hooks))
        })
        .collect();
    gate
}

/// The LPM key of a string value: (bits of data it matches, its first bytes). `Equal`
/// values shorter than the gate's bytes are matched with their NUL (the gate reads the
/// string zero-padded), longer ones and `Prefix` values by as many bytes as they have,
/// up to the gate's.
fn string_key(v: &[u8], prefix: bool) -> (u32, [u8; GATE_STR_BYTES]) {
    let mut data = [0u8; GATE_STR_BYTES];
    let n = v.len().min(GATE_STR_BYTES);
    data[..n].copy_from_slice(&v[..n]);
    let len = if !prefix && v.len() < GATE_STR_BYTES {
        v.len() + 1
    } else {
        n
    };
    (8 * len as u32, data)
}

/// The hooks of a gate entry: listed, or all when too many.
fn hit(hooks: &BTreeSet<u32>) -> GateHit {
    let mut h = GateHit::default();
    if hooks.len() > VERDICT_HOOKS {
        h.n = CANDIDATES_ALL;
    } else {
        h.n = hooks.len() as u32;
        for (slot, id) in h.hooks.iter_mut().zip(hooks) {
            *slot = *id;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use tracer_common::policy::{ARG_INT, ARG_USER_STRING};

    use super::*;

    fn member(id: u32, gates: Vec<Vec<GateFilter>>) -> Member {
        Member {
            config: HookConfig {
                id,
                nsel: gates.len() as u32,
                ..Default::default()
            },
            process: 0,
            saves: false,
            gates,
        }
    }

    fn read(offset: u16, kind: u8) -> ArgConfig {
        ArgConfig {
            offset,
            kind,
            size: 8,
            ..Default::default()
        }
    }

    fn ints(offset: u16, values: &[u64]) -> GateFilter {
        GateFilter {
            read: read(offset, ARG_INT),
            values: GateValues::Ints(values.to_vec()),
        }
    }

    fn strings(values: &[&str], prefix: bool) -> GateFilter {
        GateFilter {
            read: read(24, ARG_USER_STRING),
            values: GateValues::Strings {
                values: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
                prefix,
            },
        }
    }

    #[test]
    fn the_gate_is_the_argument_every_selector_of_the_most_hooks_filters() {
        let members = [
            // Both selectors filter argument 16: covered by a gate on it.
            member(
                1,
                vec![vec![ints(16, &[1])], vec![ints(24, &[5]), ints(16, &[2])]],
            ),
            member(2, vec![vec![ints(16, &[3])]]),
            // One selector without: never covered.
            member(3, vec![vec![ints(24, &[4])], vec![]]),
            // No selectors: every call matches.
            member(4, vec![]),
        ];
        assert_eq!(choose_gate(&members), Some(read(16, ARG_INT)));
        let g = build_gate(read(16, ARG_INT), 9, &members);
        assert_eq!(g.covers, BTreeSet::from([1, 2]));
        let entries: Vec<(u64, Vec<u32>)> = g
            .ints
            .iter()
            .map(|(k, h)| (k.value, h.hooks[..h.n as usize].to_vec()))
            .collect();
        assert_eq!(entries, vec![(1, vec![1]), (2, vec![1]), (3, vec![2])]);
        assert!(g.ints.iter().all(|(k, _)| k.id == 9));
        assert_eq!(choose_gate(&members[2..]), None, "no hook can be covered");
    }

    #[test]
    fn string_keys_hold_every_hook_of_their_prefixes() {
        let members = [
            member(1, vec![vec![strings(&["/etc/"], true)]]),
            member(2, vec![vec![strings(&["/etc/passwd"], false)]]),
            member(3, vec![vec![strings(&["/tmp"], false)]]),
        ];
        let g = build_gate(read(24, ARG_USER_STRING), 1, &members);
        assert_eq!(g.kind, GATE_STR);
        let by_key: BTreeMap<(u32, Vec<u8>), Vec<u32>> = g
            .strs
            .iter()
            .map(|((bits, k), h)| {
                let n = ((bits - 32) / 8) as usize;
                (
                    (*bits, k.data[..n].to_vec()),
                    h.hooks[..h.n as usize].to_vec(),
                )
            })
            .collect();
        // `/etc/` as a prefix: 5 bytes; `/etc/passwd` by its first 8; `/tmp` with its NUL.
        assert_eq!(by_key[&(32 + 40, b"/etc/".to_vec())], vec![1]);
        assert_eq!(by_key[&(32 + 64, b"/etc/pas".to_vec())], vec![1, 2]);
        assert_eq!(by_key[&(32 + 40, b"/tmp\0".to_vec())], vec![3]);
    }

    #[test]
    fn more_hooks_than_a_list_holds_are_all() {
        let hooks: BTreeSet<u32> = (1..=5).collect();
        assert_eq!(hit(&hooks).n, CANDIDATES_ALL);
        let few: BTreeSet<u32> = (1..=2).collect();
        assert_eq!(hit(&few).n, 2);
    }

    #[test]
    fn ids_are_reused_only_once_released() {
        let mut points = Points::new(4);
        let key = |n: &str| PointKey {
            point: Point {
                attach: crate::policy::place::Attach::Tracepoint {
                    subsystem: "s".into(),
                    event: n.into(),
                },
                flags: 0,
                kprobe: Default::default(),
                sock: Default::default(),
                usdt: Default::default(),
                fields: Default::default(),
            },
            pair: 0,
        };
        assert_eq!(points.create(key("a")).unwrap(), 1);
        assert_eq!(points.create(key("b")).unwrap(), 2);
        assert_eq!(points.create(key("c")).unwrap(), 3);
        assert!(points.create(key("d")).is_err(), "id 0 is never one");
        let mut retire = Retire::default();
        points.drop_point(2, &mut retire);
        assert!(points.create(key("d")).is_err(), "not before its release");
        points.release(2);
        assert_eq!(points.create(key("d")).unwrap(), 2);
        assert_eq!(points.find(&key("d")), Some(2));
        assert_eq!(points.find(&key("b")), None);
    }
}
