//! The policies running in the kernel: adds, replaces and removes them, counts them, and
//! keeps what the exporters need to write their events. A policy that cannot be
//! installed is refused whole, and the policies already running keep running; one some
//! of whose hooks cannot attach runs with the others.
//!
//! - [`points`]: hook points, their lists of hooks and argument gates.
//! - [`programs`]: the programs that run hook points, and their attachments ([`links`]:
//!   the cookie attachments aya does not make).
//! - [`maps`]: the kernel's policy maps, one writer per kind of entry.
//! - [`follow`]: `followForks` / `followChildren` for the processes already running.
//! - [`retire`]: what is deleted a moment after it is unlinked.
//! - [`restart`]: the policies' hooks pinned at stop, and what reads their events after.
//!
//! A new version of a policy is installed before the old one is removed: no call falls
//! between the two (one may be seen by both).

mod follow;
mod links;
mod maps;
mod points;
mod programs;
pub mod restart;
mod retire;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    rc::Rc,
    time::{Duration, Instant},
};

use aya::Ebpf;
use tracer_common::policy::{
    ExecCaps, HP_SAVE_ENTRY, STRING_MAX, ScopeKey, StrKey, TRACK_BINARIES,
};

use self::{
    maps::{Maps, TakeError, WriteError},
    points::{Member, PointKey, Points},
    programs::{AttachError, Attachment, Programs},
    retire::{Item, Retire},
};
use super::{
    compile::{self, Compiled, Hook, Ids},
    facts::{Facts, Kernel},
    parse::Document,
    spec,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the policy programs cannot run here: {0}")]
    Program(String),
    #[error(transparent)]
    Map(#[from] TakeError),
    #[error(transparent)]
    Compile(#[from] compile::CompileError),
    #[error("policy {policy}: writing it to the kernel: {source}")]
    Write {
        policy: String,
        #[source]
        source: WriteError,
    },
    #[error("policy {policy}: none of its hooks can run here: {}", failed.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NoHook {
        policy: String,
        failed: Vec<FailedHook>,
    },
    #[error(
        "policy {0}: a TracingPolicyNamespaced, a podSelector or a containerSelector applies to pods, and no Kubernetes API server is configured to learn them from (run the agent in the cluster, or give it a kubeconfig)"
    )]
    NoPods(String),
    #[error(
        "policy {policy}: {hooks} hooks are loaded, as many as the kernel's maps were sized for; raise --policy-capacity (now {capacity})"
    )]
    Full {
        policy: String,
        hooks: usize,
        capacity: u32,
    },
}

pub use super::compile::FailedHook;

/// Why a hook did not attach (its [`FailedHook::reason`]).
#[derive(Debug, thiserror::Error)]
enum HookFailure {
    #[error("its entry half did not attach")]
    NoEntry,
    #[error(transparent)]
    Points(#[from] points::Full),
    #[error(transparent)]
    Attach(#[from] AttachError),
}

/// Counters of one policy, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyCounts {
    pub name: String,
    /// Calls that reached the policy's selectors (past the hook point's filters shared
    /// by all its policies: the process verdict and the argument gate).
    pub seen: u64,
    /// Calls a selector matched.
    pub matched: u64,
    /// Events posted to the ring buffer.
    pub posted: u64,
    /// Posts the ring buffer could not take.
    pub lost: u64,
    /// Posts left out by `rateLimit`.
    pub rate_limited: u64,
}

/// What the store is given at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tracefs: PathBuf,
    pub proc_root: PathBuf,
    pub cgroup_root: PathBuf,
    /// Hooks, policies and string values the kernel's maps hold (`--policy-capacity`).
    pub capacity: u32,
    /// Hook points (`--policy-hook-points`).
    pub hook_points: u32,
}

/// What the policies take of the kernel's maps: [`PolicyStore::sizes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub hooks: usize,
    pub hook_points: usize,
    pub hooks_capacity: usize,
    pub hook_points_capacity: usize,
}

/// A loaded policy.
struct Loaded {
    id: u32,
    compiled: Rc<Compiled>,
    /// Each hook's id and hook point (`None`: it did not attach).
    hooks: Vec<(u32, Option<u32>)>,
    source: PathBuf,
    /// The document, as loaded (JSON): saved for the next agent on a pinned set.
    document: String,
    /// The hooks that did not attach: the policy is partly loaded.
    failed: Vec<FailedHook>,
    /// The enforcer program on each function of `enforcers` that attached (dropping a
    /// link detaches it).
    enforcers: Vec<links::Held>,
}

pub struct PolicyStore {
    maps: Maps,
    programs: Programs,
    points: Points,
    /// The attachment of each hook point.
    attachments: HashMap<u32, Attachment>,
    retire: Retire,
    facts: Facts,
    settings: Settings,
    policies: BTreeMap<String, Loaded>,
    /// Every hook by id, with its policy: for the events (a removed hook's stays a while,
    /// for its events still in the ring buffer).
    hooks: HashMap<u32, (Rc<Compiled>, usize)>,
    /// The hooks of the agent before (pinned, [`restart`]), for their events; retired
    /// once detached.
    inherited: HashMap<u32, (Rc<Compiled>, usize)>,
    /// Where the policies are saved for the next agent, and this agent's generation.
    saves: Option<(PathBuf, u64)>,
    last_hook: u32,
    last_policy: u32,
    ids: Ids,
    /// The cgroups each pod-scoped policy applies to (`POLICY_SCOPE`), as written.
    scopes: HashMap<u32, BTreeSet<u64>>,
    /// Pods can be known (a cluster is configured): pod-scoped policies can load.
    pub pods_known: bool,
    /// Policies whose last load failed (and that do not run, or run an earlier version).
    refused: BTreeSet<String>,
}

impl PolicyStore {
    /// Takes the policy maps out of `ebpf` and loads the tracepoint program (so that a
    /// kernel that refuses it says so at start). The other programs are loaded when a
    /// hook point first needs them.
    pub fn new(ebpf: &mut Ebpf, settings: Settings, kernel: Kernel) -> Result<Self, StoreError> {
        let mut maps = Maps::take(ebpf)?;
        let mut programs = Programs::new(
            settings.tracefs.clone(),
            settings.proc_root.clone(),
            kernel.fentry || kernel.lsm,
        );
        programs
            .load_tracepoint(ebpf)
            .map_err(|e| StoreError::Program(e.to_string()))?;
        // From now on the kernel keeps every process's binary, for `matchBinaries`.
        maps.set_config(TRACK_BINARIES)
            .map_err(|e| StoreError::Program(e.to_string()))?;
        Ok(Self {
            maps,
            programs,
            points: Points::new(settings.hook_points),
            attachments: HashMap::new(),
            retire: Retire::default(),
            facts: Facts::new(kernel, &settings.tracefs),
            settings,
            policies: BTreeMap::new(),
            hooks: HashMap::new(),
            inherited: HashMap::new(),
            saves: None,
            last_hook: 0,
            last_policy: 0,
            ids: Ids::default(),
            scopes: HashMap::new(),
            pods_known: false,
            refused: BTreeSet::new(),
        })
    }

    /// Records the binaries of processes that were running before the kernel kept them
    /// (found in /proc at start), and their capabilities as they are now, which
    /// `matchCapabilityChanges` then compares with (the kernel did not see their exec);
    /// the verdicts made without them are made again.
    pub fn seed_processes<'p>(
        &mut self,
        processes: impl IntoIterator<Item = (u32, &'p str, Option<ExecCaps>)>,
    ) {
        /// `BPF_NOEXIST`: exec or fork may have recorded it already: keep that one.
        const BPF_NOEXIST: u64 = 1;
        for (pid, binary, caps) in processes {
            if let Some(caps) = caps {
                let _ = self.maps.exec_caps.insert(pid, caps, BPF_NOEXIST);
            }
            if binary.is_empty() {
                continue;
            }
            let mut data = [0u8; STRING_MAX];
            let n = binary.len().min(STRING_MAX - 1);
            data[..n].copy_from_slice(&binary.as_bytes()[..n]);
            let key = StrKey {
                id: 0,
                len: n as u32,
                data,
            };
            let _ = self.maps.exec_paths.insert(pid, key, BPF_NOEXIST);
        }
        let ids: Vec<u32> = self.points.iter().map(|(id, _)| id).collect();
        self.rewrite(&ids);
    }

    /// Installs `policy` (from `source`), replacing a loaded policy of the same name. On
    /// error nothing changes: a policy it would replace keeps running. A policy some of
    /// whose hooks cannot attach runs with the others: those are returned (and logged).
    pub fn add(
        &mut self,
        ebpf: &mut Ebpf,
        doc: &Document,
        source: &Path,
    ) -> Result<Vec<FailedHook>, StoreError> {
        self.tick();
        let name = doc.spec.name.clone();
        let result = self.add_inner(ebpf, &doc.spec, source).inspect(|_| {
            if let Some(l) = self.policies.get_mut(&name) {
                l.document = restart::document(&doc.policy);
            }
        });
        if result.is_ok() {
            self.refused.remove(&name);
            self.save();
        } else {
            self.refused.insert(name);
        }
        result
    }

    fn add_inner(
        &mut self,
        ebpf: &mut Ebpf,
        policy: &spec::Policy,
        source: &Path,
    ) -> Result<Vec<FailedHook>, StoreError> {
        let name = policy.name.clone();
        let id = match self.policies.get(&name) {
            Some(old) => old.id,
            None => self.last_policy + 1,
        };
        // Compile with fresh ids, so the old version's entries stay valid until the new
        // one is in.
        let mut ids = self.ids.clone();
        let compiled = compile::compile(policy, id, &mut ids, &self.facts)?;
        if compiled.scope.is_some() && !self.pods_known {
            return Err(StoreError::NoPods(name));
        }
        let hooks_now = self.hooks.len() + compiled.hooks.len();
        if hooks_now > self.settings.capacity as usize {
            return Err(StoreError::Full {
                policy: name,
                hooks: self.hooks.len(),
                capacity: self.settings.capacity,
            });
        }
        let loaded = self.install(ebpf, compiled, id, source)?;
        self.last_policy = self.last_policy.max(id);
        self.ids = ids;
        if let Some(old) = self.policies.remove(&name) {
            self.uninstall(old, false);
        }
        if let Err(source) = self.maps.reset_counters(id) {
            tracing::warn!("policy {name}: resetting its counters: {source}");
        }
        for (i, (_, point)) in loaded.hooks.iter().enumerate() {
            if point.is_some() {
                tracing::info!("policy {name}: {}", loaded.compiled.hooks[i].runs_on());
            }
        }
        for f in &loaded.failed {
            tracing::error!(
                "policy {name}: {} is not running: {}; the policy's other hooks run",
                f.hook,
                f.reason
            );
        }
        let failed = loaded.failed.clone();
        self.policies.insert(name, loaded);
        Ok(failed)
    }

    /// Writes `compiled` (policy `id`) to the kernel and attaches its hooks; on error
    /// takes out what it wrote.
    fn install(
        &mut self,
        ebpf: &mut Ebpf,
        compiled: Compiled,
        id: u32,
        source: &Path,
    ) -> Result<Loaded, StoreError> {
        let name = compiled.name.clone();
        let write = |source| StoreError::Write {
            policy: name.clone(),
            source,
        };
        let compiled = Rc::new(compiled);
        let mut loaded = Loaded {
            id,
            compiled: Rc::clone(&compiled),
            hooks: Vec::new(),
            source: source.to_owned(),
            document: String::new(),
            failed: compiled.unplaced.clone(),
            enforcers: Vec::new(),
        };
        let result = (|| {
            if !self.policies.contains_key(&name) {
                self.maps.reset_counters(id).map_err(write)?;
            }
            for s in &compiled.strings {
                self.maps.string(s, true).map_err(write)?;
            }
            follow::install(
                &mut self.maps,
                &compiled,
                &self.settings.proc_root,
                &self.settings.cgroup_root,
            )
            .map_err(write)?;
            let mut touched = BTreeSet::new();
            for (i, hook) in compiled.hooks.iter().enumerate() {
                self.last_hook += 1;
                let hook_id = self.last_hook;
                self.hooks.insert(hook_id, (Rc::clone(&compiled), i));
                // A return half joins its entry's hook point.
                let pair = hook
                    .pair
                    .and_then(|e| loaded.hooks.get(e))
                    .and_then(|(_, p)| *p);
                let point = if hook.pair.is_some() && pair.is_none() {
                    Err(HookFailure::NoEntry)
                } else {
                    self.link(ebpf, hook, hook_id, pair.unwrap_or(0))
                };
                match point {
                    Ok(point) => {
                        touched.insert(point);
                        loaded.hooks.push((hook_id, Some(point)));
                    }
                    Err(reason) => {
                        loaded.hooks.push((hook_id, None));
                        loaded.failed.push(FailedHook {
                            hook: hook.label(),
                            reason: reason.to_string(),
                        });
                    }
                }
            }
            for point in touched {
                self.points
                    .write(point, &mut self.maps, &mut self.retire)
                    .map_err(write)?;
            }
            for function in &compiled.enforcers {
                match self.programs.attach_enforcer(ebpf, function) {
                    Ok(link) => {
                        tracing::info!("policy {name}: enforcer on {function}");
                        loaded.enforcers.push(link);
                    }
                    Err(reason) => loaded.failed.push(FailedHook {
                        hook: format!("enforcer {function}"),
                        reason: reason.to_string(),
                    }),
                }
            }
            // No hook runs: every one failed to attach or could not be placed (a
            // `loader: true` policy runs without any).
            if !compiled.loader && loaded.hooks.iter().all(|(_, point)| point.is_none()) {
                return Err(StoreError::NoHook {
                    policy: name.clone(),
                    failed: std::mem::take(&mut loaded.failed),
                });
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(loaded),
            Err(e) => {
                let replacing = self.policies.contains_key(&name);
                self.uninstall(loaded, !replacing);
                Err(e)
            }
        }
    }

    /// Puts hook `hook_id` on the list of its hook point (made and attached if it is the
    /// first); returns the hook point. The list is written by the caller.
    fn link(
        &mut self,
        ebpf: &mut Ebpf,
        hook: &Hook,
        hook_id: u32,
        pair: u32,
    ) -> Result<u32, HookFailure> {
        // An entry half shares the hook point of the function's other hooks (see
        // `Member::saves`); the point saves the record while it has one.
        let saves = hook.point.flags & HP_SAVE_ENTRY != 0;
        let mut point = hook.point.clone();
        point.flags &= !HP_SAVE_ENTRY;
        let key = PointKey { point, pair };
        let point = match self.points.find(&key) {
            Some(p) => p,
            None => {
                let p = self.points.create(key.clone())?;
                match self
                    .programs
                    .attach(ebpf, &mut self.maps, &key.point.attach, p)
                {
                    Ok(a) => {
                        self.attachments.insert(p, a);
                    }
                    Err(reason) => {
                        self.points.drop_point(p, &mut self.retire);
                        return Err(reason.into());
                    }
                }
                p
            }
        };
        let mut config = hook.config;
        config.id = hook_id;
        let member = Member {
            config,
            process: hook.process,
            gates: hook.gates.clone(),
            saves,
        };
        if let Some(p) = self.points.get_mut(point) {
            p.members.push(member);
        }
        Ok(point)
    }

    /// Takes `old` out of the kernel: its hooks off their lists (hook points left empty
    /// detached), then, a moment later, its entries. `counters`: its counters too.
    fn uninstall(&mut self, old: Loaded, counters: bool) {
        let mut touched = BTreeSet::new();
        for (hook_id, point) in &old.hooks {
            if let Some(point) = point
                && let Some(p) = self.points.get_mut(*point)
            {
                p.members.retain(|m| m.config.id != *hook_id);
                touched.insert(*point);
                self.retire.later(Item::Hook(*hook_id));
            }
            self.retire.later(Item::HookMeta(*hook_id));
        }
        for point in touched {
            let empty = self.points.get(point).is_some_and(|p| p.members.is_empty());
            if empty {
                if let Some(a) = self.attachments.remove(&point) {
                    self.programs.detach(&mut self.maps, a);
                }
                let _ = self.maps.put_point(point, &Default::default());
                self.points.drop_point(point, &mut self.retire);
            } else if let Err(e) = self.points.write(point, &mut self.maps, &mut self.retire) {
                tracing::warn!("policy {}: {e}", old.compiled.name);
            }
        }
        self.retire
            .later(Item::Strings(old.compiled.strings.clone()));
        let bits = follow::bits(&old.compiled);
        follow::uninstall(&mut self.maps, bits);
        self.ids.follow_used &= !bits;
        if counters {
            self.retire.later(Item::Counters(old.id));
            if let Some(cgroups) = self.scopes.remove(&old.id) {
                for cgroup in cgroups {
                    let _ = self.maps.scope.remove(&ScopeKey {
                        policy_id: old.id,
                        _pad: 0,
                        cgroup,
                    });
                }
            }
        }
    }

    /// Deletes what was unlinked long enough ago. The agent calls it every second.
    pub fn tick(&mut self) {
        for item in self.retire.due(Instant::now()) {
            self.delete(item);
        }
    }

    fn delete(&mut self, item: Item) {
        match item {
            Item::Hook(id) => {
                let _ = self.maps.hooks.remove(&id);
            }
            Item::HookMeta(id) => {
                self.hooks.remove(&id);
            }
            Item::Inherited => self.inherited.clear(),
            Item::Gate(g) => {
                for key in &g.ints {
                    self.maps.remove_gate_int(key);
                }
                for (bits, key) in &g.strs {
                    self.maps
                        .remove_gate_str(&aya::maps::lpm_trie::Key::new(*bits, *key));
                }
            }
            Item::Point(id) => self.points.release(id),
            Item::Counters(id) => {
                if !self.policies.values().any(|l| l.id == id) {
                    self.maps.remove_counters(id);
                }
            }
            Item::Strings(strings) => {
                for s in &strings {
                    let _ = self.maps.string(s, false);
                }
            }
        }
    }

    /// Writes hook points `ids` again (a new epoch: their verdicts are made again).
    fn rewrite(&mut self, ids: &[u32]) {
        for id in ids {
            if let Err(e) = self.points.write(*id, &mut self.maps, &mut self.retire) {
                tracing::warn!("hook point {id}: {e}");
            }
        }
    }

    /// Names of the loaded policies, with the file each came from.
    pub fn loaded(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.policies
            .iter()
            .map(|(name, l)| (name.as_str(), l.source.as_path()))
    }

    /// The pod-scoped policies, with their scopes.
    pub fn scoped(&self) -> Vec<(String, spec::Scope)> {
        self.policies
            .iter()
            .filter_map(|(n, l)| l.compiled.scope.clone().map(|s| (n.clone(), s)))
            .collect()
    }

    /// Makes policy `name` apply in `cgroups` (and no others).
    pub fn set_scope(&mut self, name: &str, cgroups: BTreeSet<u64>) {
        let Some((id, points)) = self.policies.get(name).map(|l| {
            let points: BTreeSet<u32> = l.hooks.iter().filter_map(|(_, p)| *p).collect();
            (l.id, points)
        }) else {
            return;
        };
        let old = self.scopes.remove(&id).unwrap_or_default();
        let key = |cgroup| ScopeKey {
            policy_id: id,
            _pad: 0,
            cgroup,
        };
        for c in old.difference(&cgroups) {
            let _ = self.maps.scope.remove(&key(*c));
        }
        for c in cgroups.difference(&old) {
            if let Err(e) = self.maps.scope.insert(key(*c), 1, 0) {
                tracing::warn!(
                    "policy {name}: a pod's cgroup could not be added to its scope: {e}"
                );
            }
        }
        if old != cgroups {
            tracing::info!(
                "policy {name}: applies in {} container cgroups",
                cgroups.len()
            );
            // The processes' verdicts on its hook points are made again.
            self.rewrite(&points.into_iter().collect::<Vec<_>>());
        }
        self.scopes.insert(id, cgroups);
    }

    /// How many policies are loaded whole, partly, and refused at their last load.
    pub fn states(&self) -> (usize, usize, usize) {
        let partly = self
            .policies
            .values()
            .filter(|l| !l.failed.is_empty())
            .count();
        (self.policies.len() - partly, partly, self.refused.len())
    }

    /// Hooks loaded and the hook points they run on, each with the most the kernel's maps
    /// hold (`--policy-capacity`, `--policy-hook-points`).
    pub fn sizes(&self) -> Sizes {
        let hooks = self
            .policies
            .values()
            .map(|l| l.hooks.iter().filter(|(_, p)| p.is_some()).count())
            .sum();
        Sizes {
            hooks,
            hook_points: self.points.len(),
            hooks_capacity: self.settings.capacity as usize,
            hook_points_capacity: self.settings.hook_points as usize,
        }
    }

    /// Removes the policy `name`; returns whether it was loaded.
    pub fn remove(&mut self, name: &str) -> bool {
        self.tick();
        self.refused.remove(name);
        match self.policies.remove(name) {
            Some(old) => {
                self.uninstall(old, true);
                self.save();
                true
            }
            None => false,
        }
    }

    /// Whether a loaded policy has `loader: true`: the executable mappings are read
    /// while one does.
    pub fn wants_mappings(&self) -> bool {
        self.policies.values().any(|l| l.compiled.loader)
    }

    /// The loaded `loader: true` policies that apply to a process in cgroup `cgroup`, by
    /// name: all of them but the pod-scoped ones whose pods' cgroups do not hold it
    /// (the kernel's scope filter, done here: their events come from no hook).
    pub fn loaders_for(&self, cgroup: u64) -> impl Iterator<Item = &str> {
        self.policies.iter().filter_map(move |(name, l)| {
            let applies = l.compiled.loader
                && (l.compiled.scope.is_none()
                    || self.scopes.get(&l.id).is_some_and(|c| c.contains(&cgroup)));
            applies.then_some(name.as_str())
        })
    }

    /// The policy and hook of hook `id` (for a while after it is removed, too).
    pub fn hook(&self, id: u32) -> Option<(&Compiled, &Hook)> {
        let (compiled, i) = self.hooks.get(&id).or_else(|| self.inherited.get(&id))?;
        Some((compiled, compiled.hooks.get(*i)?))
    }

    /// Every loaded policy's counters.
    pub fn counts(&self) -> Vec<PolicyCounts> {
        use tracer_common::policy::{
            POLICY_LOST, POLICY_MATCHED, POLICY_POSTED, POLICY_RATE_LIMITED, POLICY_SEEN,
        };
        self.policies
            .iter()
            .map(|(name, l)| {
                let c = self.maps.counters(l.id);
                PolicyCounts {
                    name: name.clone(),
                    seen: c[POLICY_SEEN],
                    matched: c[POLICY_MATCHED],
                    posted: c[POLICY_POSTED],
                    lost: c[POLICY_LOST],
                    rate_limited: c[POLICY_RATE_LIMITED],
                }
            })
            .collect()
    }

    /// Where a policy's hooks would run here, for `tracer status`: one line per hook,
    /// or why the policy would be refused. Loads nothing.
    pub fn placement(&mut self, policy: &spec::Policy) -> Result<Vec<String>, StoreError> {
        let mut ids = self.ids.clone();
        let compiled = compile::compile(policy, 0, &mut ids, &self.facts)?;
        Ok(compiled
            .loader
            .then(|| {
                "loader: process_loader events from the kernel's perf mmap records (no hook)"
                    .to_owned()
            })
            .into_iter()
            .chain(compiled.hooks.iter().map(Hook::runs_on))
            .chain(
                compiled
                    .unplaced
                    .iter()
                    .map(|f| format!("{}: does not run here: {}", f.hook, f.reason)),
            )
            .collect())
    }

    /// The loaded policies, for the next agent on a pinned set ([`restart`]).
    fn saved(&self, generation: u64) -> restart::Saved {
        let policies = self
            .policies
            .iter()
            .filter(|(_, l)| !l.document.is_empty())
            .map(|(name, l)| restart::SavedPolicy {
                name: name.clone(),
                id: l.id,
                document: l.document.clone(),
                hooks: l
                    .hooks
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (id, _))| Some((*id, l.compiled.hooks.get(i)?.label())))
                    .collect(),
            })
            .collect();
        restart::Saved {
            generation,
            placed: restart::Placed::of(&self.facts.kernel),
            policies,
        }
    }

    /// On a pinned set: each hook is pinned under `dir` as it attaches, and the policies
    /// are saved in `file` (for agent generation `generation`) at each change once
    /// [`PolicyStore::save_to`] is called: the policies go on in the kernel after this
    /// agent, even one that is killed, until the next agent's are in ([`restart`]).
    pub fn pin_to(&mut self, dir: PathBuf, generation: u64) {
        self.programs.pin_to(dir, generation);
    }

    /// From now on the policies are saved in `file` at each change (and now).
    pub fn save_to(&mut self, file: PathBuf, generation: u64) {
        self.saves = Some((file, generation));
        self.save();
    }

    /// Writes the policies for the next agent, where [`PolicyStore::save_to`] says.
    fn save(&self) {
        let Some((file, generation)) = &self.saves else {
            return;
        };
        let saved = self.saved(*generation);
        let result = if saved.policies.is_empty() {
            match std::fs::remove_file(file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            restart::save(file, &saved)
        };
        if let Err(e) = result {
            tracing::warn!(
                "{}: cannot save the policies for the next agent ({e}): the events their hooks post while no agent runs will not be read",
                file.display()
            );
        }
    }

    /// As the agent stops: on a pinned set (`leave`) every hook goes with its pin left,
    /// and the policies go on in the kernel until the next agent's are in
    /// ([`restart`]); otherwise every hook is detached, so that nothing posts while the
    /// agent drains what is left. Returns how many links stay, and how many were
    /// detached.
    pub fn stop(&mut self, leave: bool) -> (usize, usize) {
        if leave {
            self.save();
        }
        let attachments = self.attachments.drain().map(|(_, a)| a).collect();
        let enforcers = self
            .policies
            .values_mut()
            .flat_map(|l| std::mem::take(&mut l.enforcers))
            .collect();
        programs::stop(&mut self.programs, attachments, enforcers, leave)
    }

    /// The policies of the agent before, whose pinned hooks run until this agent takes
    /// over: compiled again to read their events (a hook whose compilation differs is
    /// left out: its events are not reported). New hook ids start past theirs. Returns
    /// how many hooks can be read.
    pub fn inherit(&mut self, saved: restart::Saved) -> usize {
        // Compiled for where the agent before placed its hooks.
        let theirs;
        let facts = if saved.placed == restart::Placed::of(&self.facts.kernel) {
            &self.facts
        } else {
            theirs = Facts::new(saved.placed.on(self.facts.kernel), &self.settings.tracefs);
            &theirs
        };
        for p in saved.policies {
            self.last_hook = self
                .last_hook
                .max(p.hooks.iter().map(|(id, _)| *id).max().unwrap_or(0));
            self.last_policy = self.last_policy.max(p.id);
            let doc =
                super::parse::text_documents(&format!("saved policy {}", p.name), &p.document)
                    .ok()
                    .and_then(|mut d| (d.len() == 1).then(|| d.remove(0)));
            let compiled = doc
                .ok_or_else(|| "it no longer parses".to_owned())
                .and_then(|d| {
                    compile::compile(&d.spec, p.id, &mut Ids::default(), facts)
                        .map_err(|e| e.to_string())
                });
            let compiled = match compiled {
                Ok(c) => Rc::new(c),
                Err(why) => {
                    tracing::warn!(
                        "policy {}: the previous agent's version cannot be read here ({why}): the events its pinned hooks post until this agent takes over are not reported",
                        p.name
                    );
                    continue;
                }
            };
            for (i, (id, label)) in p.hooks.iter().enumerate() {
                match compiled.hooks.get(i) {
                    Some(h) if h.label() == *label => {
                        self.inherited.insert(*id, (Rc::clone(&compiled), i));
                    }
                    _ => tracing::warn!(
                        "policy {}: hook {label} of the previous agent compiles otherwise here: its events until this agent takes over are not reported",
                        p.name
                    ),
                }
            }
        }
        self.inherited.len()
    }

    /// The agent before's hooks are detached: their events still in the ring buffer are
    /// read for a while ([`retire::EVENTS_DELAY`]), then their metadata goes.
    pub fn let_go_inherited(&mut self) {
        if !self.inherited.is_empty() {
            self.retire.later(Item::Inherited);
        }
    }

    /// After this agent took over a pinned set: its own lifecycle hooks did not record
    /// while its policies loaded, so the processes' binaries, capabilities and follow
    /// bits are given again from /proc (`processes`), as at start.
    pub fn reseed<'p>(
        &mut self,
        processes: impl IntoIterator<Item = (u32, &'p str, Option<ExecCaps>)>,
    ) {
        self.seed_processes(processes);
        let compiled: Vec<Rc<Compiled>> = self
            .policies
            .values()
            .map(|l| Rc::clone(&l.compiled))
            .collect();
        for c in compiled {
            if let Err(e) = follow::mark(
                &mut self.maps,
                &c,
                &self.settings.proc_root,
                &self.settings.cgroup_root,
            ) {
                tracing::warn!("policy {}: {e}", c.name);
            }
        }
    }

    /// How long until the next deletion is due, at most `max`.
    pub fn next_tick(&self, max: Duration) -> Duration {
        if self.retire.is_empty() {
            max
        } else {
            retire::DELAY.min(max)
        }
    }
}

impl Drop for PolicyStore {
    fn drop(&mut self) {
        for item in self.retire.all() {
            self.delete(item);
        }
    }
}
