//! Start-up walk of /proc: processes that were running before the agent get entries
//! (flagged `procFS`) so that their events and their children's have real parents.
//! Kernel threads are left out, as the programs leave them out.

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{AUID_UNSET, Creds, Process, encode_arguments, exec_id, flags};

/// What /proc says of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: u32,
    pub ppid: u32,
    /// Start time, ns since boot (CLOCK_BOOTTIME).
    pub start_ns: u64,
    pub creds: Creds,
    pub auid: u32,
    pub binary: String,
    pub cwd: Option<String>,
    pub argv: Vec<String>,
    pub cgroup_id: u64,
    /// The pid in the process's own pid namespace (`NSpid`'s last field).
    pub ns_pid: u32,
    /// Its namespaces' inodes (`/proc/<pid>/ns/*`), by `policy::NS_*` minus 1.
    pub ns: [u32; tracer_common::event::NS_COUNT],
}

/// Reads every process under `proc_root` (usually `/proc`). Processes that vanish
/// during the walk, and kernel threads, are skipped.
pub fn scan(proc_root: &Path, cgroup_root: &Path) -> Vec<ProcEntry> {
    let ticks = clock_ticks();
    let Ok(dir) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|d| d.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| read_entry(&proc_root.join(pid.to_string()), pid, ticks, cgroup_root))
        .collect()
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

fn read_entry(dir: &Path, pid: u32, ticks: u64, cgroup_root: &Path) -> Option<ProcEntry> {
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    let (ppid, start_ticks, task_flags) = parse_stat(&stat)?;
    if task_flags & tracer_common::offsets::PF_KTHREAD != 0 {
        return None;
    }
    let status = fs::read_to_string(dir.join("status")).ok()?;
    let creds = parse_creds(&status)?;
    let argv = fs::read(dir.join("cmdline"))
        .map(|b| crate::decode::split_args(&b))
        .unwrap_or_default();
    let binary = read_link(&dir.join("exe")).unwrap_or_default();
    let auid = fs::read_to_string(dir.join("loginuid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(AUID_UNSET);
    let cgroup_id = fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|s| cgroup_v2_id(&s, cgroup_root))
        .unwrap_or(0);
    Some(ProcEntry {
        pid,
        ppid,
        start_ns: start_ticks.saturating_mul(1_000_000_000 / ticks),
        creds,
        auid,
        binary,
        cwd: read_link(&dir.join("cwd")),
        argv,
        cgroup_id,
        ns_pid: ns_pid(&status).unwrap_or(0),
        ns: namespaces(dir),
    })
}

/// The files of `/proc/<pid>/ns/`, by `policy::NS_*` minus 1.
pub const NS_FILES: [&str; tracer_common::event::NS_COUNT] = [
    "uts",
    "ipc",
    "mnt",
    "pid",
    "pid_for_children",
    "net",
    "time",
    "time_for_children",
    "cgroup",
    "user",
];

/// The inodes of the namespaces of the process at `dir` (`/proc/<pid>`); 0 for those
/// that cannot be read.
pub fn namespaces(dir: &Path) -> [u32; tracer_common::event::NS_COUNT] {
    NS_FILES.map(|name| {
        fs::read_link(dir.join("ns").join(name))
            .ok()
            .and_then(|t| parse_ns_link(&t.to_string_lossy()))
            .unwrap_or(0)
    })
}

/// `net:[4026531840]` to 4026531840.
fn parse_ns_link(link: &str) -> Option<u32> {
    link.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// `CapEff`, `CapPrm` and `CapInh` (hexadecimal) of `/proc/<pid>/status`, in that order.
pub fn parse_caps(status: &str) -> Option<[u64; 3]> {
    let set = |key: &str| -> Option<u64> {
        let v = status.lines().find_map(|l| l.strip_prefix(key))?;
        u64::from_str_radix(v.trim(), 16).ok()
    };
    Some([set("CapEff:")?, set("CapPrm:")?, set("CapInh:")?])
}

/// The last field of `/proc/<pid>/status`'s `NSpid:` line: the pid as the process's own
/// pid namespace numbers it.
fn ns_pid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

fn read_link(p: &Path) -> Option<String> {
    let target: PathBuf = fs::read_link(p).ok()?;
    let s = target.to_string_lossy();
    // A deleted binary reads as "/path (deleted)": keep the path.
    Some(s.strip_suffix(" (deleted)").unwrap_or(&s).to_owned())
}

/// `ppid`, `starttime` (clock ticks since boot) and `flags` of a `/proc/<pid>/stat` line.
/// The command name may hold spaces and parentheses: fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<(u32, u64, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... flags(9) ... starttime(22), 1-based in proc(5).
    let ppid = fields.get(1)?.parse().ok()?;
    let task_flags = fields.get(6)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start, task_flags))
}

/// Real, effective, saved and filesystem uids and gids from the `Uid:` and `Gid:` lines of
/// `/proc/<pid>/status`, and the capability sets of its `Cap*:` lines.
pub fn parse_creds(status: &str) -> Option<Creds> {
    let ids = |key: &str| -> Option<[u32; 4]> {
        let line = status.lines().find_map(|l| l.strip_prefix(key))?;
        let mut it = line.split_whitespace().map(|v| v.parse::<u32>().ok());
        Some([it.next()??, it.next()??, it.next()??, it.next()??])
    };
    let [uid, euid, suid, fsuid] = ids("Uid:")?;
    let [gid, egid, sgid, fsgid] = ids("Gid:")?;
    Some(Creds {
        uid,
        gid,
        euid,
        egid,
        suid,
        sgid,
        fsuid,
        fsgid,
        securebits: 0,
        caps: parse_caps(status),
    })
}

/// The process's id in its own pid namespace: the last number of the `NSpid:` line of
/// `/proc/<pid>/status`.
pub fn parse_ns_pid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// The cgroup v2 id of a `/proc/<pid>/cgroup` text: the inode number of its directory
/// under the cgroup2 mount, as `bpf_get_current_cgroup_id` returns it.
fn cgroup_v2_id(cgroup: &str, cgroup_root: &Path) -> Option<u64> {
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = cgroup_root.join(path.trim_start_matches('/'));
    fs::metadata(dir).ok().map(|m| m.ino())
}

/// Builds the processes of a walk, parents before children, each linked to its parent.
pub fn build(node: &str, mut entries: Vec<ProcEntry>) -> Vec<Arc<Process>> {
    entries.sort_by_key(|e| (e.start_ns, e.pid));
    let mut built: HashMap<u32, Arc<Process>> = HashMap::with_capacity(entries.len());
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let cwd = e.cwd.clone().unwrap_or_default();
        let mut f = flags::PROCFS;
        match e.cwd.as_deref() {
            None => f |= flags::NO_CWD,
            Some("/") => f |= flags::ROOT_CWD,
            Some(_) => {}
        }
        let parent = built.get(&e.ppid).cloned();
        if super::container_init(e.pid, e.ns_pid)
            || parent
                .as_ref()
                .is_some_and(|p| p.flags & flags::IN_INIT_TREE != 0)
        {
            f |= flags::IN_INIT_TREE;
        }
        let p = Arc::new(Process {
            exec_id: exec_id(node, e.start_ns, e.pid),
            pid: e.pid,
            tid: e.pid,
            creds: e.creds,
            auid: e.auid,
            binary: e.binary,
            script: None,
            arguments: encode_arguments(e.argv.get(1..).unwrap_or_default()),
            cwd,
            flags: f,
            ktime_ns: e.start_ns,
            boottime: true,
            task_start_ns: 0,
            cgroup_id: e.cgroup_id,
            ns_pid: e.ns_pid,
            ppid: e.ppid,
            user: super::user_name(e.pid, e.ns_pid, e.creds.uid),
            ns: e.ns,
            // Its environment now is not the one it started with: not written.
            env: Arc::default(),
            parent,
            json: Default::default(),
        });
        built.insert(e.pid, p.clone());
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_in_the_process_namespace() {
        assert_eq!(ns_pid("Name:\tsh\nNSpid:\t4242\t17\n"), Some(17));
        assert_eq!(ns_pid("Name:\tsh\nNSpid:\t4242\n"), Some(4242));
        assert_eq!(ns_pid("Name:\tsh\n"), None);
    }

    #[test]
    fn namespace_pid_is_the_innermost() {
        assert_eq!(
            parse_ns_pid("Name:\tsh\nNSpid:\t4242\t7\t1\nNgid:\t0\n"),
            Some(1)
        );
        assert_eq!(parse_ns_pid("NSpid:\t4242\n"), Some(4242));
        assert_eq!(parse_ns_pid("Name:\tsh\n"), None);
    }

    #[test]
    fn stat_with_odd_command_names() {
        let stat =
            "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5555 1000 200";
        assert_eq!(parse_stat(stat), Some((1, 5555, 4194560)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn capabilities_from_status() {
        let s = "CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000200000\n";
        assert_eq!(parse_caps(s), Some([1 << 21, 0x1ff_ffff_ffff, 0]));
        assert_eq!(parse_caps("CapEff:\tzz\nCapPrm:\t0\nCapInh:\t0\n"), None);
        assert_eq!(parse_caps("Name:\tx\n"), None);
    }

    #[test]
    fn creds_from_status() {
        let s = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t100\t101\t101\t101\n";
        assert_eq!(
            parse_creds(s),
            Some(Creds {
                uid: 1000,
                gid: 100,
                euid: 0,
                egid: 101,
                suid: 0,
                sgid: 101,
                fsuid: 0,
                fsgid: 101,
                securebits: 0,
                caps: None,
            })
        );
    }

    #[test]
    fn walk_of_this_machine_finds_this_process_and_its_parent() {
        let entries = scan(Path::new("/proc"), Path::new("/sys/fs/cgroup"));
        let me = std::process::id();
        let mine = entries.iter().find(|e| e.pid == me).expect("own entry");
        assert_eq!(
            mine.binary,
            std::env::current_exe().unwrap().to_string_lossy()
        );
        assert_eq!(
            mine.cwd.as_deref(),
            Some(std::env::current_dir().unwrap().to_str().unwrap())
        );
        let processes = build("n", entries);
        let p = processes.iter().find(|p| p.pid == me).unwrap();
        assert_eq!(flags::words(p.flags), "procFS");
        assert_eq!(
            p.parent.as_ref().map(|p| p.pid),
            Some(nix::unistd::getppid().as_raw() as u32)
        );
        assert!(processes.iter().all(|p| p.pid != 2), "no kernel threads");
    }
}
