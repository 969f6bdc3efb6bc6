//! pid to live process. Every exec, fork and exit of the ring buffer goes through here,
//! in the order the kernel recorded them; an exec or an exit comes out as a
//! [`Lifecycle`] event with the process and its parent attached.
//!
//! Memory stays flat: an entry is removed when its process exits, and the map has a hard
//! bound beyond which the least recently used entry is evicted (and counted), so that
//! lost exit events cannot make it grow without end.

use std::{num::NonZeroUsize, sync::Arc};

use lru::LruCache;
use tracer_common::event::{
    EXEC_ERR_ARGS, EXEC_ERR_BINARY, EXEC_ERR_CWD, EXEC_TRUNC_ARGS, EXEC_TRUNC_BINARY,
    EXEC_TRUNC_CWD, ExitEvent, ForkEvent,
};

use super::{AUID_UNSET, Creds, Process, encode_arguments, exec_id, flags};
use crate::decode::{EnvJson, Exec, RawEvent};

/// What the process lifecycle tells the exporters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    Exec {
        process: Arc<Process>,
        /// What the exec'd file was (set-user-ID, file capabilities, no link on disk).
        binary: Box<super::BinaryProperties>,
    },
    Exit {
        process: Arc<Process>,
        /// `status << 8 | signal`, as the kernel keeps it.
        exit_code: u32,
        ktime_ns: u64,
    },
}

/// Counters of the cache, for the agent's reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub size: usize,
    pub capacity: usize,
    /// Entries pushed out by the bound while their process was still known to be alive.
    pub evictions: u64,
    /// Exits and forks of processes the cache did not know.
    pub misses: u64,
}

pub struct ProcessCache {
    node: String,
    live: LruCache<u32, Arc<Process>>,
    /// Recently exited processes, by pid, with the start time their exit record gave:
    /// events the kernel records after a process's exit (the sockets and files it closes
    /// as it ends, a tracked socket freed later) are still that process's, and a second
    /// exit record of one process (two of its threads ending at once on kernels without
    /// `group_dead`) is dropped.
    exited: LruCache<u32, (u64, Arc<Process>)>,
    /// The bound of `live`, which grows to it as processes come rather than being
    /// allocated for it up front (a 65,536-entry table is 2 MiB).
    capacity: NonZeroUsize,
    evictions: u64,
    misses: u64,
    /// Environments recorded for execs not yet read (each comes just before its exec),
    /// by pid.
    pending_env: std::collections::HashMap<u32, crate::decode::Env>,
    /// The environments last decoded, newest first.
    recent_env: std::collections::VecDeque<Arc<EnvJson>>,
    /// `--enable-process-cred`: whether an exec's set-user-ID and capability changes are
    /// written.
    cred: bool,
    env_filter: Option<std::collections::HashSet<String>>,
}

/// Environments waiting for their exec, at most: more means execs were lost, and the
/// oldest are dropped.
const PENDING_ENV: usize = 1024;

/// Environments decoded last that an exec may share (`ProcessCache::env_of`).
const RECENT_ENV: usize = 8;

/// Exited processes kept for the events that follow their exit.
const EXITED: usize = 1024;

/// Default bound, as Tetragon's `--process-cache-size`.
pub const DEFAULT_CAPACITY: usize = 65536;

impl ProcessCache {
    pub fn new(node: impl Into<String>, capacity: NonZeroUsize) -> Self {
        Self {
            node: node.into(),
            live: LruCache::unbounded(),
            exited: LruCache::new(NonZeroUsize::new(EXITED).unwrap_or(NonZeroUsize::MIN)),
            capacity,
            evictions: 0,
            misses: 0,
            pending_env: Default::default(),
            recent_env: Default::default(),
            cred: false,
            env_filter: None,
        }
    }

    /// `--filter-environment-variables`: the only variables kept (all when `None`).
    pub fn with_env_filter(mut self, keep: Option<std::collections::HashSet<String>>) -> Self {
        self.env_filter = keep;
        self
    }

    /// `--enable-process-cred`: execs say whether they raised privileges.
    pub fn with_process_cred(mut self, on: bool) -> Self {
        self.cred = on;
        self
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            size: self.live.len(),
            capacity: self.capacity.get(),
            evictions: self.evictions,
            misses: self.misses,
        }
    }

    pub fn get(&self, pid: u32) -> Option<&Arc<Process>> {
        self.live.peek(&pid)
    }

    /// The process `pid` for an event of it (a live one, else one that exited
    /// recently), or one that says it was not known.
    pub fn lookup(&mut self, pid: u32, ktime_ns: u64) -> Arc<Process> {
        if let Some(p) = self.live.get(&pid) {
            return p.clone();
        }
        if let Some((_, p)) = self.exited.get(&pid) {
            return p.clone();
        }
        self.misses += 1;
        Arc::new(unknown(&self.node, pid, ktime_ns, 0, 0))
    }

    /// The processes known alive, for the next agent (`snapshot`).
    pub fn live(&self) -> impl Iterator<Item = &Arc<Process>> {
        self.live.iter().map(|(_, p)| p)
    }

    /// Lets go of processes `pids` that ended while no agent ran, unless an exit record
    /// already did (or /proc, under `proc_root`, shows them alive): their exits were lost.
    pub fn let_go(&mut self, pids: &[u32], proc_root: &std::path::Path) {
        for pid in pids {
            if proc_root.join(pid.to_string()).exists() {
                continue;
            }
            if let Some(p) = self.live.pop(pid) {
                self.exited.put(*pid, (p.task_start_ns, p));
            }
        }
    }

    /// Adds a process found at start-up (or in tests).
    pub fn insert(&mut self, process: Arc<Process>) {
        let pid = process.pid;
        if self.live.len() >= self.capacity.get()
            && !self.live.contains(&pid)
            && self.live.pop_lru().is_some()
        {
            self.evictions += 1;
        }
        self.live.put(pid, process);
    }

    /// Applies one record; an exec or an exit yields the event to export.
    pub fn handle(&mut self, event: RawEvent) -> Option<Lifecycle> {
        match event {
            RawEvent::Exec(e) => {
                let (process, binary) = self.exec(&e);
                Some(Lifecycle::Exec {
                    process,
                    binary: Box::new(binary),
                })
            }
            RawEvent::Env(env) => {
                if self.pending_env.len() >= PENDING_ENV {
                    self.pending_env.clear();
                }
                self.pending_env.insert(env.header.pid, *env);
                None
            }
            RawEvent::Fork(f) => {
                self.fork(&f);
                None
            }
            RawEvent::Exit(x) => self.exit(&x),
            // Not a lifecycle change: the pipeline looks the process up itself.
            RawEvent::Tracepoint(_) => None,
        }
    }

    fn exec(&mut self, e: &Exec) -> (Arc<Process>, super::BinaryProperties) {
        let pid = e.header.pid;
        let replaced = self.live.peek(&pid);
        // The permitted capabilities of the image this exec replaces, if known.
        let permitted_before = replaced.and_then(|p| p.creds.caps).map(|c| c[1]);
        // The parent as known at fork time when the fork was seen (and the process was not
        // re-parented since); else whatever the cache has for the parent pid now.
        let current = replaced.filter(|cur| cur.ppid == e.ppid).cloned();
        let parent = current
            .as_ref()
            .and_then(|cur| cur.parent.clone())
            .or_else(|| self.live.get(&e.ppid).cloned());
        let mut f = flags::EXECVE;
        for (kernel, word) in [
            (EXEC_TRUNC_ARGS, flags::TRUNC_ARGS),
            (EXEC_ERR_ARGS, flags::ERROR_ARGS),
            (EXEC_ERR_BINARY, flags::ERROR_FILENAME),
            (EXEC_ERR_CWD, flags::NO_CWD),
            (EXEC_TRUNC_CWD, flags::TRUNC_CWD),
            (EXEC_TRUNC_BINARY, flags::TRUNC_BINARY),
        ] {
            if e.flags & kernel != 0 {
                f |= word;
            }
        }
        if e.cwd == "/" && e.flags & EXEC_ERR_CWD == 0 {
            f |= flags::ROOT_CWD;
        }
        // Kept from the image it replaces (or the parent's, that one unseen).
        let before = current.as_ref().or(parent.as_ref()).map_or(0, |p| p.flags);
        if super::container_init(pid, e.ns_pid) || before & flags::IN_INIT_TREE != 0 {
            f |= flags::IN_INIT_TREE;
        }
        let script = e.is_script().then(|| absolute(&e.filename, &e.cwd));
        // Its environment came just before it, from the same program run.
        let env = self.pending_env.remove(&pid);
        if let Some(env) = &env {
            if env.truncated {
                f |= flags::TRUNC_ENV;
            }
            if env.error {
                f |= flags::ERROR_ENV;
            }
        }
        let env = env.map_or_else(Arc::default, |env| {
            let near = [current.as_ref(), parent.as_ref()].map(|p| p.map(|p| &p.env));
            self.env_of(env.area, near)
        });
        let creds = Creds {
            uid: e.uid,
            gid: e.gid,
            euid: e.euid,
            egid: e.egid,
            suid: e.suid,
            sgid: e.sgid,
            fsuid: e.fsuid,
            fsgid: e.fsgid,
            securebits: e.securebits,
            caps: Some(e.caps),
        };
        let binary = super::BinaryProperties::of_exec(e, &creds, permitted_before, self.cred);
        let process = Arc::new(Process {
            exec_id: exec_id(&self.node, e.header.ktime_ns, pid),
            pid,
            tid: e.header.tid,
            creds,
            auid: e.auid,
            binary: e.binary.clone(),
            script,
            arguments: encode_arguments(e.argv.get(1..).unwrap_or_default()),
            cwd: e.cwd.clone(),
            flags: f,
            ktime_ns: e.header.ktime_ns,
            boottime: false,
            task_start_ns: e.start_ns,
            cgroup_id: e.header.cgroup_id,
            ns_pid: e.ns_pid,
            ppid: e.ppid,
            user: super::user_name(pid, e.ns_pid, e.uid),
            ns: e.ns,
            env,
            parent,
            json: Default::default(),
        });
        self.insert(process.clone());
        (process, binary)
    }

    /// An exec's environment: the same as that of the image it replaces, of its parent
    /// or of a recent exec (most execs pass on the environment they were given, a shell
    /// the same one to each command) is shared, not decoded again.
    fn env_of(&mut self, area: Vec<u8>, near: [Option<&Arc<EnvJson>>; 2]) -> Arc<EnvJson> {
        if let Some(known) = near
            .into_iter()
            .flatten()
            .chain(&self.recent_env)
            .find(|e| e.is_from(&area))
        {
            return known.clone();
        }
        let env = Arc::new(EnvJson::decode(area, self.env_filter.as_ref()));
        if self.recent_env.len() == RECENT_ENV {
            self.recent_env.pop_back();
        }
        self.recent_env.push_front(env.clone());
        env
    }

    fn fork(&mut self, f: &ForkEvent) {
        let pid = f.header.pid;
        let parent = self.live.get(&f.ppid).cloned();
        let process = match &parent {
            Some(p) => Process {
                exec_id: exec_id(&self.node, f.header.ktime_ns, pid),
                pid,
                tid: f.header.tid,
                flags: flags::CLONE
                    | (p.flags & !(flags::EXECVE | flags::PROCFS | flags::MISS))
                    | if super::container_init(pid, f.ns_pid) {
                        flags::IN_INIT_TREE
                    } else {
                        0
                    },
                ktime_ns: f.header.ktime_ns,
                boottime: false,
                task_start_ns: f.start_ns,
                cgroup_id: f.header.cgroup_id,
                ns_pid: f.ns_pid,
                ppid: f.ppid,
                parent: parent.clone(),
                json: Default::default(),
                ..Process::clone(p)
            },
            None => {
                self.misses += 1;
                unknown(&self.node, pid, f.header.ktime_ns, f.start_ns, flags::CLONE)
            }
        };
        self.insert(Arc::new(process));
    }

    fn exit(&mut self, x: &ExitEvent) -> Option<Lifecycle> {
        let pid = x.header.pid;
        self.pending_env.remove(&pid);
        if self
            .exited
            .peek(&pid)
            .is_some_and(|(start, _)| *start == x.start_ns)
        {
            return None;
        }
        // Entries found in /proc have no kernel start time (0): they match any exit.
        let same = |p: &Arc<Process>| {
            p.task_start_ns == x.start_ns || p.task_start_ns == 0 || x.start_ns == 0
        };
        let process = match self.live.peek(&pid) {
            Some(p) if same(p) => self.live.pop(&pid),
            _ => None,
        }
        .unwrap_or_else(|| {
            self.misses += 1;
            Arc::new(unknown(&self.node, pid, x.start_ns, x.start_ns, 0))
        });
        self.exited.put(pid, (x.start_ns, process.clone()));
        Some(Lifecycle::Exit {
            process,
            exit_code: x.exit_code,
            ktime_ns: x.header.ktime_ns,
        })
    }
}

/// A process whose start the agent did not see: only its pid is known.
fn unknown(node: &str, pid: u32, ktime_ns: u64, start_ns: u64, extra: u32) -> Process {
    Process {
        exec_id: exec_id(node, ktime_ns, pid),
        pid,
        tid: pid,
        creds: Creds::default(),
        auid: AUID_UNSET,
        binary: String::new(),
        script: None,
        arguments: String::new(),
        cwd: String::new(),
        flags: flags::MISS | extra,
        ktime_ns,
        boottime: false,
        task_start_ns: start_ns,
        cgroup_id: 0,
        ns_pid: 0,
        ppid: 0,
        user: None,
        ns: Default::default(),
        env: Arc::default(),
        parent: None,
        json: Default::default(),
    }
}

/// `path` made absolute against `cwd`, with `.` and `..` folded (lexically: the kernel
/// already resolved the file, this only names it).
pub fn absolute(path: &str, cwd: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{cwd}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::event::{EXEC_SCRIPT, EventHeader, EventKind};

    const NODE: &str = "n1";

    fn cache(cap: usize) -> ProcessCache {
        ProcessCache::new(NODE, NonZeroUsize::new(cap).unwrap())
    }

    fn header(kind: EventKind, pid: u32, ktime: u64) -> EventHeader {
        EventHeader {
            kind: kind as u32,
            tid: pid,
            ktime_ns: ktime,
            pid,
            _pad: 0,
            cgroup_id: 77,
        }
    }

    fn exec(pid: u32, ppid: u32, ktime: u64, argv: &[&str]) -> RawEvent {
        RawEvent::Exec(Box::new(Exec {
            header: header(EventKind::Exec, pid, ktime),
            ns_pid: 0,
            suid: 1000,
            sgid: 1000,
            fsuid: 1000,
            fsgid: 1000,
            securebits: 0,
            caps: [0; 3],
            ns: [0; tracer_common::event::NS_COUNT],
            per_clear: 0,
            ino: 1,
            nlink: 1,
            ambient: 0,
            ppid,
            uid: 1000,
            gid: 1000,
            euid: 1000,
            egid: 1000,
            auid: 1000,
            flags: 0,
            start_ns: pid as u64 * 10,
            filename: argv[0].to_owned(),
            binary: format!("/usr/bin/{}", argv[0]),
            cwd: "/home/u".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
        }))
    }

    fn fork(pid: u32, ppid: u32, ktime: u64) -> RawEvent {
        RawEvent::Fork(ForkEvent {
            header: header(EventKind::Fork, pid, ktime),
            ppid,
            ns_pid: 0,
            start_ns: pid as u64 * 10,
        })
    }

    fn exit(pid: u32, code: u32, ktime: u64) -> RawEvent {
        RawEvent::Exit(ExitEvent {
            header: header(EventKind::Exit, pid, ktime),
            exit_code: code,
            _pad: 0,
            start_ns: pid as u64 * 10,
        })
    }

    fn exec_process(l: Option<Lifecycle>) -> Arc<Process> {
        match l {
            Some(Lifecycle::Exec { process, .. }) => process,
            other => panic!("expected an exec, got {other:?}"),
        }
    }

    /// A container's init (pid 1 in its own namespace) and what it starts are in the init
    /// tree, across forks and execs; a process put in the container from outside (its
    /// parent on the host: `kubectl exec`) and host processes are not.
    #[test]
    fn the_init_tree_is_a_containers_init_and_its_descendants() {
        let with_ns = |ev: RawEvent, ns: u32| match ev {
            RawEvent::Exec(mut e) => {
                e.ns_pid = ns;
                RawEvent::Exec(e)
            }
            RawEvent::Fork(mut f) => {
                f.ns_pid = ns;
                RawEvent::Fork(f)
            }
            other => other,
        };
        let in_tree = |p: &Process| p.flags & flags::IN_INIT_TREE != 0;
        let mut c = cache(16);
        let shim = exec_process(c.handle(with_ns(exec(100, 1, 1, &["shim"]), 100)));
        assert!(!in_tree(&shim), "a host process");
        c.handle(with_ns(fork(200, 100, 2), 1));
        assert!(in_tree(c.get(200).unwrap()), "the container's init, forked");
        let init = exec_process(c.handle(with_ns(exec(200, 100, 3, &["nginx"]), 1)));
        assert!(in_tree(&init));
        assert_eq!(flags::words(init.flags), "execve inInitTree");
        c.handle(with_ns(fork(201, 200, 4), 2));
        let worker = exec_process(c.handle(with_ns(exec(201, 200, 5, &["worker"]), 2)));
        assert!(in_tree(&worker), "a descendant of the init");
        c.handle(with_ns(fork(300, 100, 6), 300));
        let joined = exec_process(c.handle(with_ns(exec(300, 100, 7, &["sh"]), 3)));
        assert!(!in_tree(&joined), "kubectl exec: started from the host");
    }

    #[test]
    fn fork_then_exec_links_the_parent_and_exit_releases() {
        let mut c = cache(16);
        exec_process(c.handle(exec(100, 1, 1, &["bash"])));
        assert_eq!(c.handle(fork(101, 100, 2)), None);
        let clone = c.get(101).unwrap().clone();
        assert_eq!(clone.binary, "/usr/bin/bash");
        assert_eq!(flags::words(clone.flags), "clone");
        assert_eq!(clone.parent_exec_id(), Some(exec_id(NODE, 1, 100).as_str()));

        let ls = exec_process(c.handle(exec(101, 100, 3, &["ls", "-l", "a b"])));
        assert_eq!(ls.exec_id, exec_id(NODE, 3, 101));
        assert_eq!(ls.arguments, r#"-l "a b""#);
        assert_eq!(flags::words(ls.flags), "execve");
        let parent = ls.parent.as_deref().unwrap();
        assert_eq!((parent.pid, parent.binary.as_str()), (100, "/usr/bin/bash"));

        let Some(Lifecycle::Exit {
            process, exit_code, ..
        }) = c.handle(exit(101, 0x100, 4))
        else {
            panic!("an exit")
        };
        assert_eq!(
            process.exec_id, ls.exec_id,
            "the exit carries the exec's id"
        );
        assert_eq!(exit_code, 0x100);
        assert!(c.get(101).is_none(), "exited processes leave the cache");
        assert_eq!(c.stats().size, 1);
        // An event the kernel records after the exit (a file closed as the process
        // ends) is still the process's.
        let misses = c.stats().misses;
        assert_eq!(c.lookup(101, 5).exec_id, ls.exec_id);
        assert_eq!(c.stats().misses, misses);
        // Until the pid runs again.
        c.handle(fork(101, 100, 6));
        assert_ne!(c.lookup(101, 7).exec_id, ls.exec_id);
    }

    #[test]
    fn parent_outlives_its_exit_while_a_child_refers_to_it() {
        let mut c = cache(16);
        c.handle(exec(100, 1, 1, &["sh"]));
        c.handle(fork(101, 100, 2));
        c.handle(exec(101, 100, 3, &["sleep"]));
        c.handle(exit(100, 0, 4));
        assert!(c.get(100).is_none());
        let Some(Lifecycle::Exit { process, .. }) = c.handle(exit(101, 0, 5)) else {
            panic!()
        };
        assert_eq!(process.parent.as_deref().unwrap().binary, "/usr/bin/sh");
    }

    #[test]
    fn pid_reuse_gets_a_new_exec_id_and_a_stale_exit_is_a_miss() {
        let mut c = cache(16);
        let first = exec_process(c.handle(exec(200, 1, 10, &["a"])));
        c.handle(exit(200, 0, 11));
        let second = exec_process(c.handle(exec(200, 1, 20, &["b"])));
        assert_ne!(first.exec_id, second.exec_id);
        // An exit of a process with the same pid but another start time does not end it.
        let stale = RawEvent::Exit(ExitEvent {
            header: header(EventKind::Exit, 200, 30),
            exit_code: 0,
            _pad: 0,
            start_ns: 999,
        });
        let Some(Lifecycle::Exit { process, .. }) = c.handle(stale) else {
            panic!()
        };
        assert_eq!(flags::words(process.flags), "miss");
        assert_eq!(c.get(200).unwrap().exec_id, second.exec_id);
        assert_eq!(c.stats().misses, 1);
    }

    #[test]
    fn duplicate_exit_records_are_dropped() {
        let mut c = cache(16);
        c.handle(exec(300, 1, 1, &["x"]));
        assert!(c.handle(exit(300, 0, 2)).is_some());
        assert_eq!(c.handle(exit(300, 0, 2)), None);
    }

    #[test]
    fn the_bound_holds_and_evictions_are_counted() {
        let mut c = cache(4);
        for pid in 1..=10 {
            c.handle(fork(pid, 0, pid as u64));
        }
        let s = c.stats();
        assert_eq!((s.size, s.capacity, s.evictions), (4, 4, 6));
        // A million short processes leave nothing behind.
        let mut c = cache(8);
        for i in 0..100_000u32 {
            let pid = 1000 + i % 30_000;
            c.handle(exec(pid, 1, i as u64, &["t"]));
            c.handle(exit(pid, 0, i as u64));
        }
        assert_eq!(c.stats().size, 0);
    }

    #[test]
    fn scripts_name_interpreter_and_absolute_script() {
        let mut c = cache(4);
        let RawEvent::Exec(mut e) = exec(400, 1, 1, &["/bin/sh", "./run.sh", "x"]) else {
            unreachable!()
        };
        e.flags = EXEC_SCRIPT;
        e.filename = "./run.sh".into();
        e.binary = "/usr/bin/dash".into();
        let p = exec_process(c.handle(RawEvent::Exec(e)));
        assert_eq!(p.binary, "/usr/bin/dash");
        assert_eq!(p.script.as_deref(), Some("/home/u/run.sh"));
        assert_eq!(p.arguments, "./run.sh x");
    }

    fn env(pid: u32, vars: &[(&str, &str)], truncated: bool) -> RawEvent {
        RawEvent::Env(Box::new(crate::decode::Env {
            header: header(EventKind::Env, pid, 1),
            area: vars
                .iter()
                .flat_map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes(), b"\0"].concat())
                .collect(),
            truncated,
            error: false,
        }))
    }

    /// An environment goes to the exec of its pid that follows it, filtered; a fork
    /// keeps its parent's; one whose exec was lost is dropped at its process's exit.
    #[test]
    fn an_environment_goes_to_its_exec() {
        let mut c = cache(16).with_env_filter(Some(["A".to_owned(), "C".to_owned()].into()));
        assert!(
            c.handle(env(10, &[("A", "1"), ("B", "2"), ("C", "3")], true))
                .is_none()
        );
        let p = exec_process(c.handle(exec(10, 1, 5, &["sh"])));
        let vars = p.env.to_vars();
        let keys: Vec<&str> = vars.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["A", "C"]);
        assert!(p.flags & flags::TRUNC_ENV != 0);
        c.handle(RawEvent::Fork(ForkEvent {
            header: header(EventKind::Fork, 11, 6),
            ppid: 10,
            ns_pid: 0,
            start_ns: 110,
        }));
        assert_eq!(c.get(11).map(|p| p.env.len()), Some(2), "a fork keeps it");
        // An exec without its environment record (lost) has none, not the old image's.
        let p = exec_process(c.handle(exec(11, 10, 7, &["true"])));
        assert!(p.env.is_empty() && p.flags & flags::TRUNC_ENV == 0);
        c.handle(env(12, &[("A", "x")], false));
        c.handle(exit(12, 0, 8));
        let p = exec_process(c.handle(exec(12, 1, 9, &["true"])));
        assert!(p.env.is_empty(), "the exit dropped the stale one");
    }

    /// An exec with the environment of its parent (or of the image it replaces) shares
    /// that one's decoding; any other environment is decoded on its own.
    #[test]
    fn an_unchanged_environment_is_shared() {
        let mut c = cache(16).with_env_filter(Some(["A".to_owned()].into()));
        let vars = [("A", "1"), ("B", "2")];
        c.handle(env(10, &vars, false));
        let shell = exec_process(c.handle(exec(10, 1, 5, &["sh"])));
        for (pid, at, vars, shared) in [
            (11, 6, &vars[..], true),
            (12, 8, &[("A", "1")][..], false),
            (13, 10, &[("A", "1"), ("B", "3")][..], false),
        ] {
            c.handle(RawEvent::Fork(ForkEvent {
                header: header(EventKind::Fork, pid, at),
                ppid: 10,
                ns_pid: 0,
                start_ns: at,
            }));
            c.handle(env(pid, vars, false));
            let p = exec_process(c.handle(exec(pid, 10, at + 1, &["true"])));
            assert_eq!(Arc::ptr_eq(&p.env, &shell.env), shared, "pid {pid}");
            // Filtered alike, shared or not.
            assert_eq!(p.env.to_vars().iter().collect::<Vec<_>>(), [("A", "1")]);
        }
        // Shared with a recent exec that had it, whatever its parent.
        c.handle(env(20, &vars[..1], false));
        let p = exec_process(c.handle(exec(20, 99, 30, &["true"])));
        let twelve = c.get(12).map(|p| p.env.clone()).unwrap();
        assert!(Arc::ptr_eq(&p.env, &twelve));
        // Once more recent ones came, decoded again: the same variables.
        for pid in 21..21 + RECENT_ENV as u32 {
            c.handle(env(pid, &[("A", &pid.to_string())], false));
            c.handle(exec(pid, 99, 40 + u64::from(pid), &["true"]));
        }
        c.handle(env(30, &vars, false));
        let p = exec_process(c.handle(exec(30, 99, 90, &["true"])));
        assert!(!Arc::ptr_eq(&p.env, &shell.env));
        assert_eq!(p.env, shell.env);
    }

    /// An exec's binary properties: privilege raises with `--enable-process-cred` only.
    #[test]
    fn exec_binary_properties_follow_the_flag() {
        let suid = || {
            let RawEvent::Exec(mut e) = exec(20, 1, 1, &["su"]) else {
                unreachable!()
            };
            e.per_clear = 1;
            e.euid = 0;
            RawEvent::Exec(e)
        };
        let binary = |l: Option<Lifecycle>| match l {
            Some(Lifecycle::Exec { binary, .. }) => binary,
            other => panic!("expected an exec, got {other:?}"),
        };
        assert!(binary(cache(4).handle(suid())).is_empty());
        let b = binary(cache(4).with_process_cred(true).handle(suid()));
        assert_eq!(b.setuid, Some(0));
        assert_eq!(b.privileges_changed, ["PRIVILEGES_RAISED_EXEC_FILE_SETUID"]);
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(absolute("./a", "/w"), "/w/a");
        assert_eq!(absolute("../b/./c", "/w/x"), "/w/b/c");
        assert_eq!(absolute("/abs", "/w"), "/abs");
        assert_eq!(absolute("a", "/"), "/a");
    }
}
