//! The process cache handed from one agent to the next (with the pinned kernel side,
//! `handover`): an agent that stops writes the processes it knows to a file of the state
//! directory; the next one starts from them rather than from /proc alone, so a process
//! keeps its `exec_id`, arguments and parents across the restart, and the exit of one
//! that ends while no agent runs is still that process's.
//!
//! The file is JSON, one process per line, parents before their children, after a first
//! line that names the pinned set's generation it belongs to: a file of another
//! generation (left by an agent that was killed before a later one stopped) is ignored.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, BufWriter, Write as _},
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use super::{Creds, JsonCache, Process};
use crate::decode::EnvVars;

/// The file in the state directory.
pub const FILE: &str = "processes.json";

/// Where the snapshot of a pinned set of generation `generation` lives.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

#[derive(Serialize, Deserialize)]
struct Header {
    generation: u64,
    processes: usize,
}

/// One process, its parent by `exec_id`.
#[derive(Serialize, Deserialize)]
struct Saved {
    exec_id: String,
    pid: u32,
    tid: u32,
    /// uid, gid, euid, egid, suid, sgid, fsuid, fsgid, securebits.
    creds: [u32; 9],
    caps: Option<[u64; 3]>,
    auid: u32,
    binary: String,
    script: Option<String>,
    arguments: String,
    cwd: String,
    flags: u32,
    ktime_ns: u64,
    boottime: bool,
    task_start_ns: u64,
    cgroup_id: u64,
    ns_pid: u32,
    ppid: u32,
    user: Option<String>,
    ns: Vec<u32>,
    env: Vec<(String, String)>,
    parent: Option<String>,
}

impl Saved {
    fn of(p: &Process) -> Self {
        let c = &p.creds;
        Self {
            exec_id: p.exec_id.clone(),
            pid: p.pid,
            tid: p.tid,
            creds: [
                c.uid,
                c.gid,
                c.euid,
                c.egid,
                c.suid,
                c.sgid,
                c.fsuid,
                c.fsgid,
                c.securebits,
            ],
            caps: c.caps,
            auid: p.auid,
            binary: p.binary.clone(),
            script: p.script.clone(),
            arguments: p.arguments.clone(),
            cwd: p.cwd.clone(),
            flags: p.flags,
            ktime_ns: p.ktime_ns,
            boottime: p.boottime,
            task_start_ns: p.task_start_ns,
            cgroup_id: p.cgroup_id,
            ns_pid: p.ns_pid,
            ppid: p.ppid,
            user: p.user.as_deref().map(str::to_owned),
            ns: p.ns.to_vec(),
            env: p
                .env
                .to_vars()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            parent: p.parent_exec_id().map(str::to_owned),
        }
    }

    fn into_process(self, parent: Option<Arc<Process>>) -> Process {
        let [uid, gid, euid, egid, suid, sgid, fsuid, fsgid, securebits] = self.creds;
        let mut ns = [0; tracer_common::event::NS_COUNT];
        for (to, from) in ns.iter_mut().zip(self.ns) {
            *to = from;
        }
        Process {
            exec_id: self.exec_id,
            pid: self.pid,
            tid: self.tid,
            creds: Creds {
                uid,
                gid,
                euid,
                egid,
                suid,
                sgid,
                fsuid,
                fsgid,
                securebits,
                caps: self.caps,
            },
            auid: self.auid,
            binary: self.binary,
            script: self.script,
            arguments: self.arguments,
            cwd: self.cwd,
            flags: self.flags,
            ktime_ns: self.ktime_ns,
            boottime: self.boottime,
            task_start_ns: self.task_start_ns,
            cgroup_id: self.cgroup_id,
            ns_pid: self.ns_pid,
            ppid: self.ppid,
            user: self.user.map(Arc::from),
            ns,
            env: Arc::new((&EnvVars::from_pairs(self.env)).into()),
            parent,
            json: JsonCache::default(),
        }
    }
}

/// Writes `processes` (with their ancestors) for the agent after this one, which takes
/// over generation `generation`; how many were written.
pub fn save<'a>(
    file: &Path,
    generation: u64,
    processes: impl Iterator<Item = &'a Arc<Process>>,
) -> std::io::Result<usize> {
    // Parents first: each process after its ancestors, each once.
    let mut order: Vec<&Process> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in processes {
        let mut chain = Vec::new();
        let mut at = Some(p.as_ref());
        while let Some(q) = at {
            if !seen.insert(q.exec_id.as_str()) {
                break;
            }
            chain.push(q);
            at = q.parent.as_deref();
        }
        order.extend(chain.into_iter().rev());
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("json.tmp");
    let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
    serde_json::to_writer(
        &mut out,
        &Header {
            generation,
            processes: order.len(),
        },
    )?;
    out.write_all(b"\n")?;
    for p in &order {
        serde_json::to_writer(&mut out, &Saved::of(p))?;
        out.write_all(b"\n")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, file)?;
    Ok(order.len())
}

/// The processes saved for generation `generation`, parents linked; empty (and said
/// why) when there is no such file, or it is of another generation or unreadable.
/// The file is removed once read: it describes one hand-over.
pub fn load(file: &Path, generation: u64) -> Vec<Arc<Process>> {
    let f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(
                "{}: the previous agent's processes cannot be read ({e}): they are taken from /proc",
                file.display()
            );
            return Vec::new();
        }
    };
    let _ = std::fs::remove_file(file);
    let mut lines = BufReader::new(f).lines();
    let header: Option<Header> = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| serde_json::from_str(&l).ok());
    match header {
        Some(h) if h.generation == generation => {}
        Some(h) => {
            tracing::info!(
                "{}: processes of generation {}, not {generation} (the agent that stopped last did not write it): taken from /proc",
                file.display(),
                h.generation
            );
            return Vec::new();
        }
        None => {
            tracing::warn!(
                "{}: no header line: the previous agent's processes are taken from /proc",
                file.display()
            );
            return Vec::new();
        }
    }
    let mut by_id: HashMap<String, Arc<Process>> = HashMap::new();
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let saved: Saved = match line
            .map_err(|e| e.to_string())
            .and_then(|l| serde_json::from_str(&l).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "{} line {}: {e}; the rest is taken from /proc",
                    file.display(),
                    n + 2
                );
                break;
            }
        };
        let parent = saved.parent.as_ref().and_then(|id| by_id.get(id)).cloned();
        let p = Arc::new(saved.into_process(parent));
        by_id.insert(p.exec_id.clone(), p.clone());
        out.push(p);
    }
    out
}

/// The processes to start the cache with: those found in /proc (`found`), each replaced
/// by the previous agent's (`saved`) where it is the same process (same pid, started at
/// the same time: within `TOLERANCE_NS`, the clocks being read differently); and the
/// saved ones not in /proc, which ended while no agent ran (their exits are in the ring
/// buffer): their pids are returned too, to be let go once the ring buffer is read.
pub fn merge(
    saved: Vec<Arc<Process>>,
    found: Vec<Arc<Process>>,
    boot_minus_mono_ns: i128,
) -> (Vec<Arc<Process>>, Vec<u32>) {
    const TOLERANCE_NS: i128 = 50_000_000;
    // Fork time on CLOCK_BOOTTIME.
    let started = |p: &Process| -> i128 {
        if p.boottime {
            i128::from(p.ktime_ns)
        } else {
            i128::from(p.task_start_ns) + boot_minus_mono_ns
        }
    };
    let mut saved_by_pid: HashMap<u32, Arc<Process>> =
        saved.iter().map(|p| (p.pid, p.clone())).collect();
    let mut out = Vec::with_capacity(found.len());
    for f in found {
        match saved_by_pid.remove(&f.pid) {
            Some(s) if (started(&s) - started(&f)).abs() <= TOLERANCE_NS => out.push(s),
            _ => out.push(f),
        }
    }
    let gone: Vec<u32> = saved_by_pid.keys().copied().collect();
    // In the snapshot's order, parents first.
    out.extend(
        saved
            .into_iter()
            .filter(|p| saved_by_pid.contains_key(&p.pid)),
    );
    (out, gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(exec_id: &str, pid: u32, parent: Option<Arc<Process>>) -> Arc<Process> {
        Arc::new(Process {
            exec_id: exec_id.into(),
            pid,
            tid: pid,
            creds: Creds {
                uid: 1000,
                euid: 1001,
                securebits: 4,
                caps: Some([1, 2, 3]),
                ..Default::default()
            },
            auid: 7,
            binary: "/usr/bin/sleep".into(),
            script: None,
            arguments: "60".into(),
            cwd: "/tmp".into(),
            flags: 1,
            ktime_ns: 42,
            boottime: false,
            task_start_ns: 41,
            cgroup_id: 9,
            ns_pid: 3,
            ppid: parent.as_ref().map_or(1, |p| p.pid),
            user: Some(Arc::from("alice")),
            ns: [5; tracer_common::event::NS_COUNT],
            env: Arc::new((&EnvVars::from_pairs([("A", "b")])).into()),
            parent,
            json: JsonCache::default(),
        })
    }

    #[test]
    fn processes_come_back_whole_with_their_parents_and_once_only() {
        let dir = std::env::temp_dir().join(format!("tracer-snapshot-{}", std::process::id()));
        let file = path(&dir);
        let init = process("a", 1, None);
        let shell = process("b", 10, Some(init.clone()));
        let child = process("c", 11, Some(shell.clone()));
        // The child first: its ancestors are written before it, and none twice.
        assert_eq!(
            save(&file, 3, [&child, &shell, &init].into_iter()).unwrap(),
            3
        );
        let back = load(&file, 3);
        assert!(!file.exists(), "read once");
        assert_eq!(back.len(), 3);
        let c = back.iter().find(|p| p.exec_id == "c").unwrap();
        assert_eq!(c.as_ref(), child.as_ref());
        assert_eq!(c.parent.as_ref().unwrap().parent_exec_id(), Some("a"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_saved_process_replaces_the_same_one_in_proc_and_the_gone_ones_are_named() {
        let mut found_same = process("proc-a", 1, None);
        let mut found_other = process("proc-b", 10, None);
        let offset = 5_000_000_000i128;
        for (p, start) in [
            (&mut found_same, 41 + 5_000_000_000),
            (&mut found_other, 999_000_000_000),
        ] {
            let p = Arc::get_mut(p).unwrap();
            p.boottime = true;
            p.ktime_ns = start;
            p.task_start_ns = 0;
        }
        let saved = vec![
            process("a", 1, None),
            process("b", 10, None),
            process("c", 11, None),
        ];
        let (start, gone) = merge(saved, vec![found_same, found_other], offset);
        let ids: Vec<&str> = start.iter().map(|p| p.exec_id.as_str()).collect();
        // pid 1 is the same process; pid 10 is another one (pid reused); 11 ended.
        assert_eq!(ids, ["a", "proc-b", "c"]);
        assert_eq!(gone, [11]);
    }

    #[test]
    fn a_snapshot_of_another_generation_is_ignored() {
        let dir = std::env::temp_dir().join(format!("tracer-snapshot-gen-{}", std::process::id()));
        let file = path(&dir);
        save(&file, 3, [&process("a", 1, None)].into_iter()).unwrap();
        assert!(load(&file, 4).is_empty());
        assert!(load(&dir.join("missing.json"), 4).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
