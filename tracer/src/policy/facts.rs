//! The kernel's facts that placing and compiling hooks needs, gathered once per agent
//! and handed down: what program types run here (probed by `kernel::features`),
//! tracepoint record layouts (tracefs format files, each read once), and the host's
//! namespace inodes (`host_ns`).

use std::{
    cell::RefCell,
    collections::HashMap,
    path::{Path, PathBuf},
};

use crate::kernel::{
    features::Placement,
    tracefs::{self, Format, FormatError},
};

/// Why the inode of a host namespace could not be read (from `/proc/PID/ns/NAME`).
#[derive(Debug, thiserror::Error)]
pub enum HostNsError {
    #[error("cannot read /proc/{pid}/ns/{name} for `host_ns`: {source}")]
    Read {
        pid: &'static str,
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("/proc/{pid}/ns/{name} reads `{text}`, not `{name}:[inode]`")]
    Link {
        pid: &'static str,
        name: &'static str,
        text: String,
    },
}

/// What policies' hooks can run on, here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kernel {
    /// Kprobe hooks run on the functions themselves (else on the tracepoints that stand
    /// for them) ...
    pub kprobes: bool,
    /// ... on fentry programs where the kernel has BPF trampolines (cheaper than kprobes)
    pub fentry: bool,
    /// ... and hooks that `Override` a `security_*` function on BPF LSM programs.
    pub lsm: bool,
    /// Syscall hooks can share the raw `sys_enter`/`sys_exit` tracepoints (the kernel's
    /// `pt_regs` layout is known): `raw_syscalls` hooks do ...
    pub raw_syscalls: bool,
    /// ... and with `--syscall-raw-tracepoints` the hooks on one syscall too.
    pub raw_numbered: bool,
    /// Why kprobe hooks do not run on the functions, where they do not.
    pub kprobes_off: &'static str,
}

impl Kernel {
    pub fn new(p: &Placement) -> Self {
        Self {
            kprobes: p.kprobes.is_ok(),
            fentry: p.fentry,
            lsm: p.lsm,
            raw_syscalls: p.syscall_regs,
            raw_numbered: p.raw_numbered,
            kprobes_off: p.kprobes.err().unwrap_or_default(),
        }
    }
}

/// The facts, read lazily and kept.
#[derive(Debug)]
pub struct Facts {
    pub kernel: Kernel,
    tracefs: PathBuf,
    formats: RefCell<HashMap<(String, String), Format>>,
    host: RefCell<HashMap<&'static str, u32>>,
}

impl Facts {
    pub fn new(kernel: Kernel, tracefs: &Path) -> Self {
        Self {
            kernel,
            tracefs: tracefs.to_owned(),
            formats: RefCell::default(),
            host: RefCell::default(),
        }
    }

    /// The record layout of tracepoint `subsystem/event`.
    pub fn format(&self, subsystem: &str, event: &str) -> Result<Format, FormatError> {
        let key = (subsystem.to_owned(), event.to_owned());
        if let Some(f) = self.formats.borrow().get(&key) {
            return Ok(f.clone());
        }
        let f = tracefs::format(&self.tracefs, subsystem, event)?;
        self.formats.borrow_mut().insert(key, f.clone());
        Ok(f)
    }

    /// The inode number of the host's namespace `name` (as `/proc/<pid>/ns/` names it).
    pub fn host_ns(&self, name: &'static str) -> Result<u32, HostNsError> {
        if let Some(n) = self.host.borrow().get(name) {
            return Ok(*n);
        }
        let n = host_ns(name)?;
        self.host.borrow_mut().insert(name, n);
        Ok(n)
    }
}

/// The inode number of the host's namespace `name`. The kernel gives its initial
/// namespaces fixed numbers (`PROC_*_INIT_INO`, include/linux/proc_ns.h), except mount
/// and network namespaces: those are read from init (`/proc/1/ns/mnt` reads
/// `mnt:[4026531841]`), or from the agent itself where init's cannot be read (the agent
/// runs in the host's namespaces, as the DaemonSet sets it up).
fn host_ns(name: &'static str) -> Result<u32, HostNsError> {
    match name {
        "ipc" => return Ok(0xEFFF_FFFF),
        "uts" => return Ok(0xEFFF_FFFE),
        "user" => return Ok(0xEFFF_FFFD),
        "pid" | "pid_for_children" => return Ok(0xEFFF_FFFC),
        "cgroup" => return Ok(0xEFFF_FFFB),
        "time" | "time_for_children" => return Ok(0xEFFF_FFFA),
        _ => {}
    }
    let read = |pid: &'static str| -> Result<u32, HostNsError> {
        let link = std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
            .map_err(|source| HostNsError::Read { pid, name, source })?;
        let text = link.to_string_lossy();
        text.rsplit_once('[')
            .and_then(|(_, n)| n.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| HostNsError::Link {
                pid,
                name,
                text: text.into_owned(),
            })
    };
    read("1").or_else(|e| {
        tracing::warn!("{e}; taking the agent's own {name} namespace as the host's");
        read("self")
    })
}
