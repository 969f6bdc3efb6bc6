//! The kernel's facts that placing and compiling hooks needs, gathered once per agent
//! and handed down: what program types run here (probed by `kernel::features`),
//! tracepoint record layouts (tracefs format files, each read once), and the host's
//! namespace inodes (`host_ns`).

use std::{
    cell::RefCell,
    collections::HashMap,
    path::{Path, PathBuf},
};

use tracer_common::policy::{USDT_ARGS, USDT_CONST, USDT_DEREF, USDT_REG, UsdtArg};

use super::{
    binary,
    place::{PlaceError, UserProbe},
    spec,
};
use crate::kernel::{
    btf::KernelBtf,
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
    /// Why kprobe hooks do not run on the functions, where they do not ...
    pub kprobes_off: &'static str,
    /// ... and why LSM hooks do not run, where they do not.
    pub lsm_off: &'static str,
    /// A kprobe can override a function's return (the `enforcers`' program), or why not.
    pub kprobe_override: bool,
    pub override_off: &'static str,
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
            lsm_off: p.lsm_off,
            kprobe_override: p.kprobe_override,
            override_off: p.override_off,
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
    /// The kernel's functions a kprobe can hook (`generated_ftrace` lists,
    /// `ignore.callNotFound`); `None` where neither tracefs nor kallsyms lists them.
    functions: std::cell::OnceCell<Option<std::collections::BTreeSet<String>>>,
    /// The offsets of the registers in `struct pt_regs`, from BTF (for USDT arguments).
    pt_regs: std::cell::OnceCell<Result<HashMap<&'static str, u32>, String>>,
    /// The running kernel's BTF, for the fields of struct arguments.
    btf: std::cell::OnceCell<Result<KernelBtf, String>>,
}

impl Facts {
    pub fn new(kernel: Kernel, tracefs: &Path) -> Self {
        Self {
            kernel,
            tracefs: tracefs.to_owned(),
            formats: RefCell::default(),
            host: RefCell::default(),
            pt_regs: std::cell::OnceCell::new(),
            functions: std::cell::OnceCell::new(),
            btf: std::cell::OnceCell::new(),
        }
    }

    fn btf(&self) -> Result<&KernelBtf, String> {
        self.btf
            .get_or_init(|| KernelBtf::from_sys().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The byte offset of a member path (`bpf_map.map_type`) in the running kernel.
    pub fn field_offset(&self, path: &str) -> Result<u32, String> {
        self.btf()?.offset_of(path).map_err(|e| e.to_string())
    }

    /// What `resolve: path` reaches from argument `index` of function `func` (or, with
    /// `cast`, from the argument as a pointer to that struct), in the running kernel.
    pub fn resolve_field(
        &self,
        func: &str,
        index: usize,
        cast: Option<&str>,
        path: &str,
    ) -> Result<crate::kernel::btf::FieldPath, String> {
        self.btf()?
            .resolve_field(func, index, cast, path)
            .map_err(|e| e.to_string())
    }

    /// The number of arguments of raw tracepoint `event` (its prototype's).
    pub fn tracepoint_args(&self, event: &str) -> Result<usize, String> {
        self.btf()?
            .tracepoint_arg_count(event)
            .map_err(|e| e.to_string())
    }

    /// The value of `variant` of enum `name` in the running kernel.
    pub fn enum_value(&self, name: &str, variant: &str) -> Result<u64, String> {
        self.btf()?
            .enum_value(name, variant)
            .map_err(|e| e.to_string())
    }

    /// The kernel's functions a kprobe can hook: tracefs's `available_filter_functions`
    /// (as Tetragon reads them), else the text symbols of `/proc/kallsyms`; `None` where
    /// neither can be read.
    pub fn functions(&self) -> Option<&std::collections::BTreeSet<String>> {
        self.functions
            .get_or_init(|| {
                let listed = std::fs::read_to_string(
                    self.tracefs.join("available_filter_functions"),
                )
                .map(|t| {
                    t.lines()
                        .filter_map(|l| l.split_whitespace().next())
                        .map(str::to_owned)
                        .collect()
                });
                listed
                    .or_else(|_| {
                        std::fs::read_to_string("/proc/kallsyms").map(|t| {
                            t.lines()
                                .filter_map(|l| {
                                    let mut f = l.split_whitespace();
                                    let (_, kind, name) = (f.next()?, f.next()?, f.next()?);
                                    matches!(kind, "t" | "T").then(|| name.to_owned())
                                })
                                .collect()
                        })
                    })
                    .ok()
                    .filter(|s: &std::collections::BTreeSet<String>| !s.is_empty())
            })
            .as_ref()
    }

    /// USDT probe point `u`: where it attaches (its instruction and semaphore, from the
    /// binary's notes) and how its arguments are read (registers at their `pt_regs`
    /// offsets from BTF).
    pub fn usdt(&self, u: &spec::Usdt) -> Result<UserProbe, PlaceError> {
        let path = binary::host_path(&u.path, Path::new("/proc"));
        let note = binary::usdt(&path, &u.provider, &u.name)?;
        let cannot = |why: String| PlaceError::UsdtArgs {
            path: u.path.clone(),
            provider: u.provider.clone(),
            name: u.name.clone(),
            args: note.args.clone(),
            why,
        };
        let specs = binary::usdt_args(&note.args).map_err(cannot)?;
        let regs = self
            .pt_regs
            .get_or_init(pt_regs)
            .as_ref()
            .map_err(|e| cannot(e.clone()))?;
        let mut args = [UsdtArg::default(); USDT_ARGS];
        for (a, s) in args.iter_mut().zip(&specs) {
            let reg = |r: &str| {
                regs.get(r)
                    .copied()
                    .ok_or_else(|| cannot(format!("no `pt_regs.{r}` in the kernel's BTF")))
            };
            *a = match s.operand {
                binary::UsdtOperand::Const(v) => UsdtArg {
                    kind: USDT_CONST,
                    value: v,
                    ..Default::default()
                },
                binary::UsdtOperand::Reg(r) => UsdtArg {
                    kind: USDT_REG,
                    reg: reg(r)?,
                    ..Default::default()
                },
                binary::UsdtOperand::Deref(r, off) => UsdtArg {
                    kind: USDT_DEREF,
                    reg: reg(r)?,
                    value: off,
                    ..Default::default()
                },
            };
            a.size = s.size;
            a.signed = u8::from(s.signed);
        }
        Ok(UserProbe {
            attach: spec::Uprobe {
                path: u.path.clone(),
                at: spec::UprobeAt::Offset(note.offset),
                ref_ctr_offset: note.semaphore,
                writes: false,
            },
            usdt: Some((u.clone(), args)),
        })
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

/// The offsets in `struct pt_regs` of the registers USDT arguments name, from the
/// running kernel's BTF.
fn pt_regs() -> Result<HashMap<&'static str, u32>, String> {
    let btf = KernelBtf::from_sys().map_err(|e| e.to_string())?;
    let names: &[&'static str] = if cfg!(target_arch = "x86_64") {
        &[
            "ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip", "r8", "r9", "r10", "r11", "r12",
            "r13", "r14", "r15",
        ]
    } else {
        return Err(format!(
            "USDT arguments are read on x86_64 only, not yet on {}",
            std::env::consts::ARCH
        ));
    };
    names
        .iter()
        .map(|r| {
            btf.offset_of(&format!("pt_regs.{r}"))
                .map(|o| (*r, o))
                .map_err(|e| e.to_string())
        })
        .collect()
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
