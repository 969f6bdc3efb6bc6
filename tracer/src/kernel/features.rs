//! What the running kernel offers beyond what every supported kernel has, probed once at
//! start: each program type of `tracer-ebpf/src/hooks/probe.rs` is loaded, attached and
//! unloaded again, so that each hook runs on the cheapest kind that works, and the log
//! (and `tracer status`) says what this kernel runs and why not.

use std::path::Path;

use crate::loader::{chain, refusal};

use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, FExit, KProbe, Lsm, RawTracePoint, TracePoint},
};

/// A kind of BPF program the tracer can hook with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramType {
    Kprobe,
    Kretprobe,
    /// A kprobe that overrides the return value (the `Override` action).
    Override,
    Fentry,
    Fexit,
    Tracepoint,
    RawTracepoint,
    BtfTracepoint,
    Lsm,
}

impl ProgramType {
    pub const ALL: [ProgramType; 9] = [
        ProgramType::Tracepoint,
        ProgramType::RawTracepoint,
        ProgramType::BtfTracepoint,
        ProgramType::Kprobe,
        ProgramType::Kretprobe,
        ProgramType::Override,
        ProgramType::Fentry,
        ProgramType::Fexit,
        ProgramType::Lsm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProgramType::Kprobe => "kprobe",
            ProgramType::Kretprobe => "kretprobe",
            ProgramType::Override => "kprobe override",
            ProgramType::Fentry => "fentry",
            ProgramType::Fexit => "fexit",
            ProgramType::Tracepoint => "tracepoint",
            ProgramType::RawTracepoint => "raw tracepoint",
            ProgramType::BtfTracepoint => "BTF tracepoint",
            ProgramType::Lsm => "BPF LSM",
        }
    }

    fn program(self) -> &'static str {
        match self {
            ProgramType::Kprobe => "probe_kprobe",
            ProgramType::Kretprobe => "probe_kretprobe",
            ProgramType::Override => "probe_override",
            ProgramType::Fentry => "probe_fentry",
            ProgramType::Fexit => "probe_fexit",
            ProgramType::Tracepoint => "probe_tracepoint",
            ProgramType::RawTracepoint => "probe_raw_tracepoint",
            ProgramType::BtfTracepoint => "probe_btf_tracepoint",
            ProgramType::Lsm => "probe_lsm",
        }
    }
}

/// The function the kprobe, fentry and fexit probes attach to.
const PROBE_FUNCTION: &str = "tcp_connect";
/// A function on the kernel's error-injection list (every syscall is), for `Override`.
const OVERRIDE_FUNCTION: &str = if cfg!(target_arch = "aarch64") {
    "__arm64_sys_getppid"
} else {
    "__x64_sys_getppid"
};

/// Each program type with whether it works here, and why not.
#[derive(Debug, Clone)]
pub struct ProgramTypes(pub Vec<(ProgramType, Result<(), String>)>);

impl ProgramTypes {
    pub fn works(&self, t: ProgramType) -> bool {
        self.0.iter().any(|(k, r)| *k == t && r.is_ok())
    }

    /// One line for the log: `tracepoint yes, ..., fentry no, ...`.
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(t, r)| format!("{} {}", t.name(), if r.is_ok() { "yes" } else { "no" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where policies' hooks run on this kernel, decided once for the agent and for
/// `tracer status`.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// The kernel's `pt_regs` layout is known: syscall hooks can run on the raw syscall
    /// tracepoints (`raw_syscalls` hooks do) ...
    pub syscall_regs: bool,
    /// ... and with `--syscall-raw-tracepoints` the hooks on one syscall too.
    pub raw_numbered: bool,
    /// Kprobe hooks run on kprobes, or on the tracepoints that stand for them, and why.
    pub kprobes: Result<(), &'static str>,
    has_kprobes: bool,
    /// With kprobes: function hooks run on fentry (BPF trampolines) ...
    pub fentry: bool,
    /// ... and `Override`s of `security_*` functions on BPF LSM programs ...
    pub lsm: bool,
    /// ... or why not.
    pub lsm_off: &'static str,
    /// With kprobes: a kprobe can override a function's return (`bpf_override_return`,
    /// the `enforcers`' program) ...
    pub kprobe_override: bool,
    /// ... or why not.
    pub override_off: &'static str,
}

/// Why a kprobe cannot override a return value on a kernel that refuses it.
pub const NO_KPROBE_OVERRIDE: &str = "this kernel cannot override a function's return from a kprobe (bpf_override_return needs CONFIG_BPF_KPROBE_OVERRIDE, and the function on the error-injection list: CONFIG_FUNCTION_ERROR_INJECTION; see `tracer status`)";

/// Why BPF LSM programs do not run on a kernel that does not load them.
pub const NO_BPF_LSM: &str = "this kernel does not run BPF LSM programs (they need CONFIG_BPF_LSM and `bpf` in the `lsm=` list; see `tracer status`)";

impl Placement {
    /// `present`: the `HAS_*` bits of the offsets resolved from BTF.
    pub fn new(
        types: &ProgramTypes,
        present: u32,
        raw_numbered: bool,
        disable_kprobes: bool,
        disable_fentry: bool,
    ) -> Self {
        use tracer_common::offsets::{HAS_SOCK, HAS_SYSCALL_REGS};
        let syscall_regs = present & HAS_SYSCALL_REGS != 0;
        let has_kprobes = types.works(ProgramType::Kprobe);
        let kprobes = if !has_kprobes {
            Err("this kernel has no kprobes")
        } else if disable_kprobes {
            Err("kprobes are off: --disable-kprobes")
        } else if present & HAS_SOCK == 0 || !syscall_regs {
            Err("the kernel's BTF lacks fields the kprobe programs read")
        } else {
            Ok(())
        };
        let on_functions = kprobes.is_ok();
        let lsm = on_functions && types.works(ProgramType::Lsm);
        let lsm_off = match kprobes {
            _ if lsm => "",
            _ if !types.works(ProgramType::Lsm) => NO_BPF_LSM,
            // Function hooks are off (`--disable-kprobes`, BTF): so are LSM programs.
            Err(why) => why,
            Ok(()) => NO_BPF_LSM,
        };
        let kprobe_override = on_functions && types.works(ProgramType::Override);
        let override_off = match kprobes {
            _ if kprobe_override => "",
            Err(why) => why,
            Ok(()) => NO_KPROBE_OVERRIDE,
        };
        Self {
            syscall_regs,
            raw_numbered,
            kprobes,
            has_kprobes,
            kprobe_override,
            override_off,
            fentry: on_functions && !disable_fentry && types.works(ProgramType::Fentry),
            lsm,
            lsm_off,
        }
    }

    /// Where kprobe hooks run, for people.
    pub fn kprobes_text(&self) -> String {
        match self.kprobes {
            Ok(()) if self.fentry => {
                "available (policies' kprobes run on fentry, the cheaper BPF trampolines, and return probes on kretprobes)".to_owned()
            }
            Ok(()) => "available".to_owned(),
            Err(why) if self.has_kprobes => format!(
                "available, but policies' kprobes run on the tracepoints that stand for them ({why})"
            ),
            Err(_) => {
                "not available (policies' kprobes run on tracepoints where one stands for them)"
                    .to_owned()
            }
        }
    }

    /// Where syscall hooks run, for people.
    pub fn syscall_text(&self) -> &'static str {
        match (self.syscall_regs, self.raw_numbered) {
            (true, true) => "the raw sys_enter/sys_exit tracepoints (--syscall-raw-tracepoints)",
            (true, false) => {
                "their own syscalls/* tracepoints, and the raw ones for raw_syscalls hooks"
            }
            (false, _) => "their own tracepoints (pt_regs layout unknown here)",
        }
    }
}

/// Loads, attaches and unloads each probe program of `ebpf`.
pub fn probe(ebpf: &mut Ebpf) -> ProgramTypes {
    let btf = Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {e}"));
    ProgramTypes(
        ProgramType::ALL
            .iter()
            .map(|&t| {
                let r = probe_one(ebpf, t, btf.as_ref());
                if let Err(reason) = &r {
                    tracing::debug!("{} does not work here: {reason}", t.name());
                }
                (t, r)
            })
            .collect(),
    )
}

fn probe_one(ebpf: &mut Ebpf, t: ProgramType, btf: Result<&Btf, &String>) -> Result<(), String> {
    use ProgramType as T;
    if matches!(t, T::Kprobe | T::Kretprobe | T::Override) && !kprobes() {
        return Err(
            "the kernel has no kprobe event source (built without CONFIG_KPROBE_EVENTS)".into(),
        );
    }
    let btf = || btf.map_err(Clone::clone);
    let program = ebpf
        .program_mut(t.program())
        .ok_or_else(|| format!("program `{}` is not in the object", t.program()))?;
    match t {
        T::Kprobe | T::Kretprobe | T::Override => {
            let p: &mut KProbe = program.try_into().map_err(|e| chain(&e))?;
            p.load().map_err(|e| refusal(t.program(), &e))?;
            let target = if t == T::Override {
                OVERRIDE_FUNCTION
            } else {
                PROBE_FUNCTION
            };
            let r = p.attach(target, 0).map(drop).map_err(|e| {
                if t == T::Override {
                    format!(
                        "attaching to {target}: {} (the kernel needs CONFIG_BPF_KPROBE_OVERRIDE and the function on its error-injection list)",
                        chain(&e)
                    )
                } else {
                    format!("attaching to {target}: {}", chain(&e))
                }
            });
            let _ = p.unload();
            r
        }
        T::Fentry => {
            let p: &mut FEntry = program.try_into().map_err(|e| chain(&e))?;
            p.load(PROBE_FUNCTION, btf()?)
                .map_err(|e| refusal(t.program(), &e))?;
            let r = p.attach().map(drop).map_err(|e| chain(&e));
            let _ = p.unload();
            r
        }
        T::Fexit => {
            let p: &mut FExit = program.try_into().map_err(|e| chain(&e))?;
            p.load(PROBE_FUNCTION, btf()?)
                .map_err(|e| refusal(t.program(), &e))?;
            let r = p.attach().map(drop).map_err(|e| chain(&e));
            let _ = p.unload();
            r
        }
        T::Tracepoint => {
            let p: &mut TracePoint = program.try_into().map_err(|e| chain(&e))?;
            p.load().map_err(|e| refusal(t.program(), &e))?;
            let r = p
                .attach("sched", "sched_process_fork")
                .map(drop)
                .map_err(|e| chain(&e));
            let _ = p.unload();
            r
        }
        T::RawTracepoint => {
            let p: &mut RawTracePoint = program.try_into().map_err(|e| chain(&e))?;
            p.load().map_err(|e| refusal(t.program(), &e))?;
            let r = p
                .attach("sched_process_fork")
                .map(drop)
                .map_err(|e| chain(&e));
            let _ = p.unload();
            r
        }
        T::BtfTracepoint => {
            let p: &mut BtfTracePoint = program.try_into().map_err(|e| chain(&e))?;
            p.load("sched_process_fork", btf()?)
                .map_err(|e| refusal(t.program(), &e))?;
            let r = p.attach().map(drop).map_err(|e| chain(&e));
            let _ = p.unload();
            r
        }
        T::Lsm => {
            let p: &mut Lsm = program.try_into().map_err(|e| chain(&e))?;
            p.load("socket_connect", btf()?)
                .map_err(|e| refusal(t.program(), &e))?;
            let r = p.attach().map(drop).map_err(|e| chain(&e));
            let _ = p.unload();
            r?;
            // It attaches wherever the kernel has CONFIG_BPF_LSM, but runs only where `bpf`
            // is one of the active LSMs.
            let active = active_lsms().map_err(|e| {
                format!("loads and attaches, but the active LSMs cannot be read: {e}")
            })?;
            if active.split(',').any(|l| l == "bpf") {
                Ok(())
            } else {
                Err(format!(
                    "loads and attaches, but the BPF LSM is not active (active: {active}); boot with lsm={active},bpf"
                ))
            }
        }
    }
}

/// The kernel attaches kprobes: it has the perf `kprobe` event source
/// (`CONFIG_KPROBE_EVENTS`), through which kprobes are attached.
fn kprobes() -> bool {
    kprobes_in(Path::new("/sys"))
}

fn kprobes_in(sys: &Path) -> bool {
    sys.join("bus/event_source/devices/kprobe/type").exists()
}

const SECURITYFS: &str = "/sys/kernel/security";

/// The active LSMs, in order (`/sys/kernel/security/lsm`), mounting securityfs where it
/// is not mounted, as it may not be at boot.
fn active_lsms() -> Result<String, String> {
    let file = Path::new(SECURITYFS).join("lsm");
    if !file.exists() {
        nix::mount::mount(
            Some("securityfs"),
            SECURITYFS,
            Some("securityfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mounting securityfs at {SECURITYFS}: {e}"))?;
    }
    std::fs::read_to_string(&file)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kprobe_event_source() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!kprobes_in(dir.path()));
        let pmu = dir.path().join("bus/event_source/devices/kprobe");
        std::fs::create_dir_all(&pmu).unwrap();
        std::fs::write(pmu.join("type"), "6\n").unwrap();
        assert!(kprobes_in(dir.path()));
    }

    #[test]
    fn summary_and_lookup() {
        let t = ProgramTypes(vec![
            (ProgramType::Tracepoint, Ok(())),
            (ProgramType::Kprobe, Err("no".into())),
        ]);
        assert!(t.works(ProgramType::Tracepoint));
        assert!(!t.works(ProgramType::Kprobe));
        assert!(!t.works(ProgramType::Lsm));
        assert_eq!(t.summary(), "tracepoint yes, kprobe no");
    }

    /// Why LSM hooks do not run: the kernel's reason, or the flag that turned function
    /// hooks off.
    #[test]
    fn lsm_off_says_why() {
        use tracer_common::offsets::{HAS_SOCK, HAS_SYSCALL_REGS};
        let all = HAS_SOCK | HAS_SYSCALL_REGS;
        let types = |lsm: bool| {
            ProgramTypes(vec![
                (ProgramType::Kprobe, Ok(())),
                (
                    ProgramType::Lsm,
                    if lsm { Ok(()) } else { Err("no".into()) },
                ),
            ])
        };
        let p = Placement::new(&types(true), all, false, false, false);
        assert!(p.lsm);
        assert_eq!(p.lsm_off, "");
        let p = Placement::new(&types(true), all, false, true, false);
        assert!(!p.lsm);
        assert_eq!(p.lsm_off, "kprobes are off: --disable-kprobes");
        let p = Placement::new(&types(false), all, false, false, false);
        assert_eq!(p.lsm_off, NO_BPF_LSM);
        let p = Placement::new(&types(false), all, false, true, false);
        assert_eq!(p.lsm_off, NO_BPF_LSM, "the kernel's reason first");
    }
}
