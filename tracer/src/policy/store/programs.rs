//! The programs that run hook points, and their attachments. One program per kind of
//! hook point serves them all: `policy_tp` (tracepoints), `policy_kp` and `policy_krp`
//! (kprobes, kretprobes; `policy_kp` on uprobes too), each attached once per hook point
//! with the hook point's id as cookie; the raw `sys_enter`/`sys_exit` programs (syscalls, by number); and, for
//! functions on BPF trampolines, a pool of fentry and BPF LSM programs, each loaded for
//! one function (past the pool, fentry hook points run on kprobes). Each program is
//! loaded, and verified, the first time a hook point needs it. The store holds every
//! link itself (`links::Held`), pinned as it is made on a pinned set.

use std::{os::fd::AsFd as _, path::PathBuf};

use aya::{
    Btf, Ebpf,
    maps::MapError,
    programs::{
        FEntry, KProbe, Lsm, ProgramError, RawTracePoint, TracePoint, fentry::FEntryLinkId,
        links::FdLink, lsm::LsmLinkId, raw_trace_point::RawTracePointLinkId,
    },
};
use tracer_common::policy::{SYSCALL_ENTER, SYSCALL_IDS};

use super::{links, maps::Maps};
use crate::{
    loader::refusal,
    policy::binary,
    policy::place::{Attach, Probe},
};

/// Why a hook point's program could not be loaded or attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no program `{0}` in the object")]
    Missing(String),
    #[error("{program}: {source}")]
    Program {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    /// The kernel refused to load it ([`refusal`] words why).
    #[error("{0}")]
    Refused(String),
    #[error("attaching to tracepoint {subsystem}/{event}: {source}")]
    Tracepoint {
        subsystem: String,
        event: String,
        #[source]
        source: links::LinkError,
    },
    #[error(transparent)]
    Kprobe(#[from] links::LinkError),
    #[error(transparent)]
    Binary(#[from] binary::BinaryError),
    #[error("attaching to raw tracepoint {tracepoint}: {source}")]
    RawTracepoint {
        tracepoint: String,
        #[source]
        source: ProgramError,
    },
    #[error("{map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error("the kernel's BTF could not be read")]
    NoBtf,
    /// `kind`: `fentry` or `BPF LSM`.
    #[error("all {count} {kind} programs are in use (one per hooked function)")]
    PoolFull { count: usize, kind: &'static str },
    #[error(transparent)]
    Attach(#[from] ProgramError),
}

fn map_write(map: &'static str) -> impl FnOnce(MapError) -> AttachError {
    move |source| AttachError::Map { map, source }
}

/// fentry and BPF LSM programs in the object (`tracer-ebpf/src/hooks/fentry.rs`).
pub const BTF_PROGRAMS: usize = 32;
/// Raw tracepoint programs of `raw: true` tracepoints (`tracer-ebpf/src/hooks/rawtp.rs`).
pub const RAW_TP_PROGRAMS: usize = 8;

/// How a hook point's program is attached.
#[derive(Debug)]
pub enum Attachment {
    /// A tracepoint, kprobe or kretprobe, with the hook point's cookie.
    Perf(links::Held),
    /// A syscall's entry in `SYSCALL_POINTS` (`nr`), or `SYSCALL_ANY`.
    RawSyscall {
        dir: u32,
        nr: Option<u32>,
    },
    /// Program `index` of the fentry or BPF LSM pool.
    Fentry {
        index: usize,
        link: links::Held,
    },
    Lsm {
        index: usize,
        link: links::Held,
    },
    /// Program `index` of the raw tracepoint pool.
    RawTp {
        index: usize,
        link: links::Held,
    },
}

impl Attachment {
    /// Lets the hook point's link go with its pin left (`links::Held::keep`): whether it
    /// had one. (A syscall's entry needs none: the raw programs' links are kept apart.)
    pub fn keep(self) -> bool {
        match self {
            Self::Perf(link)
            | Self::Fentry { link, .. }
            | Self::Lsm { link, .. }
            | Self::RawTp { link, .. } => link.keep(),
            Self::RawSyscall { .. } => true,
        }
    }
}

pub struct Programs {
    tracefs: PathBuf,
    /// The host's `/proc` (`/procRoot/...` in a uprobe's path).
    proc_root: PathBuf,
    /// Programs loaded (verified) already.
    loaded: Vec<String>,
    /// The raw syscall programs' links, while some syscall hook point uses them, and how
    /// many do.
    raw_links: [Option<links::Held>; 2],
    raw_users: [usize; 2],
    /// The kernel's BTF, which trampoline programs are loaded against.
    btf: Option<Btf>,
    /// The function each pool program is loaded for, and whether it is attached.
    fentry: Vec<(Option<String>, bool)>,
    lsm: Vec<(Option<String>, bool)>,
    /// Whether each raw tracepoint program is attached.
    raw_tp: [bool; RAW_TP_PROGRAMS],
    /// Where each new link is pinned (`Programs::pin_to`), and how many were.
    pins: Option<(PathBuf, String, u64)>,
}

impl Programs {
    pub fn new(tracefs: PathBuf, proc_root: PathBuf, trampolines: bool) -> Self {
        let btf = if trampolines {
            Btf::from_sys_fs()
                .map_err(|e| tracing::warn!("no kernel BTF for fentry and BPF LSM programs: {e}"))
                .ok()
        } else {
            None
        };
        Self {
            tracefs,
            proc_root,
            loaded: Vec::new(),
            raw_links: [None, None],
            raw_users: [0, 0],
            btf,
            fentry: vec![(None, false); BTF_PROGRAMS],
            lsm: vec![(None, false); BTF_PROGRAMS],
            raw_tp: [false; RAW_TP_PROGRAMS],
            pins: None,
        }
    }

    /// From now on each link is pinned as it is made, under `dir` as
    /// `policy-GENERATION-PID-N` (an agent that died before it took over leaves its pins
    /// to the next, of the same generation): a hook outlives the agent, even one that is
    /// killed, until the next agent detaches it (`store::restart`).
    pub fn pin_to(&mut self, dir: PathBuf, generation: u64) {
        let prefix = format!("policy-{generation}-{}-", std::process::id());
        self.pins = Some((dir, prefix, 0));
    }

    /// `link`, held (and pinned where links are).
    fn hold(&mut self, link: links::Link) -> Result<links::Held, AttachError> {
        let pin = self.pins.as_mut().map(|(dir, prefix, n)| {
            *n += 1;
            dir.join(format!("{prefix}{n}"))
        });
        Ok(links::Held::new(link, pin)?)
    }

    /// The link aya made for `program` (`id`), taken from it and held.
    fn take<P, L>(
        &mut self,
        ebpf: &mut Ebpf,
        program: &str,
        id: L::Id,
    ) -> Result<links::Held, AttachError>
    where
        L: aya::programs::links::Link,
        for<'a> &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
        P: TakeLink<L>,
        FdLink: From<L>,
    {
        let p: &mut P = ebpf
            .program_mut(program)
            .ok_or_else(|| AttachError::Missing(program.to_owned()))?
            .try_into()?;
        let link = p.take(id)?;
        self.hold(links::Link::Fd(FdLink::from(link)))
    }

    /// Loads the tracepoint program (so that a kernel that refuses it says so at start).
    pub fn load_tracepoint(&mut self, ebpf: &mut Ebpf) -> Result<(), AttachError> {
        self.program::<TracePoint>(ebpf, "policy_tp", TracePoint::load)
            .map(drop)
    }

    /// Program `name` of type `P`, loaded (by `load`) the first time it is asked for.
    fn program<'e, P>(
        &mut self,
        ebpf: &'e mut Ebpf,
        name: &'static str,
        load: fn(&mut P) -> Result<(), ProgramError>,
    ) -> Result<&'e mut P, AttachError>
    where
        &'e mut P: TryFrom<&'e mut aya::programs::Program, Error = ProgramError>,
    {
        let program: &mut P = ebpf
            .program_mut(name)
            .ok_or_else(|| AttachError::Missing(name.to_owned()))?
            .try_into()
            .map_err(|source| AttachError::Program {
                program: name,
                source,
            })?;
        if !self.loaded.iter().any(|l| l == name) {
            load(program).map_err(|e| AttachError::Refused(refusal(name, &e)))?;
            self.loaded.push(name.to_owned());
        }
        Ok(program)
    }

    /// Attaches the program of hook point `id` where `attach` says.
    pub fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        maps: &mut Maps,
        attach: &Attach,
        id: u32,
    ) -> Result<Attachment, AttachError> {
        let cookie = u64::from(id);
        match attach {
            Attach::Tracepoint { subsystem, event } => {
                let program = "policy_tp";
                let p = self.program::<TracePoint>(ebpf, program, TracePoint::load)?;
                let fd = p
                    .fd()
                    .map_err(|source| AttachError::Program { program, source })?;
                let link = links::tracepoint(fd.as_fd(), &self.tracefs, subsystem, event, cookie)
                    .map_err(|source| AttachError::Tracepoint {
                    subsystem: subsystem.clone(),
                    event: event.clone(),
                    source,
                })?;
                self.hold(links::Link::Perf(link)).map(Attachment::Perf)
            }
            Attach::RawSyscall { dir, nr } => self.attach_raw(ebpf, maps, *dir, *nr, id),
            Attach::Function {
                name,
                program: Probe::Lsm,
                ..
            } => self.attach_btf(ebpf, maps, name, true, id),
            Attach::Function {
                name,
                program: Probe::Fentry,
                ..
            } => match self.attach_btf(ebpf, maps, name, false, id) {
                Ok(a) => Ok(a),
                Err(reason) => {
                    tracing::info!("kprobe {name} runs on a kprobe (fentry: {reason})");
                    self.attach_kprobe(ebpf, name, false, cookie)
                }
            },
            Attach::Function {
                name,
                program: Probe::Override,
                ..
            } => self
                .kprobe_link(ebpf, "policy_kp_override", name, false, cookie)
                .map(Attachment::Perf),
            Attach::Function { name, ret, .. } => self.attach_kprobe(ebpf, name, *ret, cookie),
            Attach::RawTracepoint { tracepoint } => self.attach_raw_tp(ebpf, maps, tracepoint, id),
            Attach::Uprobe(u) => {
                let (path, offset) = binary::place(u, &self.proc_root)?;
                // Only a hook point that may `Set` runs on the program that can write
                // to a process's memory.
                let program = if u.writes {
                    "policy_usdt_set"
                } else {
                    "policy_kp"
                };
                let p = self.program::<KProbe>(ebpf, program, KProbe::load)?;
                let fd = p
                    .fd()
                    .map_err(|source| AttachError::Program { program, source })?;
                let link =
                    links::uprobe(fd.as_fd(), &path, offset, u.ref_ctr_offset, false, cookie)?;
                self.hold(links::Link::Perf(link)).map(Attachment::Perf)
            }
        }
    }

    /// The enforcer program (`NotifyEnforcer`) on kernel function `function`.
    pub fn attach_enforcer(
        &mut self,
        ebpf: &mut Ebpf,
        function: &str,
    ) -> Result<links::Held, AttachError> {
        self.kprobe_link(ebpf, "policy_enforcer", function, false, 0)
    }

    fn attach_kprobe(
        &mut self,
        ebpf: &mut Ebpf,
        function: &str,
        ret: bool,
        cookie: u64,
    ) -> Result<Attachment, AttachError> {
        let program = if ret { "policy_krp" } else { "policy_kp" };
        self.kprobe_link(ebpf, program, function, ret, cookie)
            .map(Attachment::Perf)
    }

    /// Kprobe program `program` (loaded on first use) on `function` (its return with
    /// `ret`), with BPF cookie `cookie`.
    fn kprobe_link(
        &mut self,
        ebpf: &mut Ebpf,
        program: &'static str,
        function: &str,
        ret: bool,
        cookie: u64,
    ) -> Result<links::Held, AttachError> {
        let p = self.program::<KProbe>(ebpf, program, KProbe::load)?;
        let fd = p
            .fd()
            .map_err(|source| AttachError::Program { program, source })?;
        let link = links::kprobe(fd.as_fd(), function, ret, cookie)?;
        self.hold(links::Link::Perf(link))
    }

    /// A syscall hook point: its entry in the dispatch maps, and the raw tracepoint of
    /// its direction attached while some hook point uses it.
    fn attach_raw(
        &mut self,
        ebpf: &mut Ebpf,
        maps: &mut Maps,
        dir: u32,
        nr: Option<u32>,
        id: u32,
    ) -> Result<Attachment, AttachError> {
        let d = dir as usize & 1;
        if self.raw_links[d].is_none() {
            let (program, tracepoint) = RAW[d];
            let id = self.attach_raw_program(ebpf, program, tracepoint)?;
            let link = self.take::<RawTracePoint, _>(ebpf, program, id)?;
            tracing::info!("raw tracepoint {tracepoint} attached for syscall hooks");
            self.raw_links[d] = Some(link);
        }
        set_raw(maps, dir, nr, id)?;
        self.raw_users[d] += 1;
        Ok(Attachment::RawSyscall { dir, nr })
    }

    /// A free program of the raw tracepoint pool, attached to `tracepoint` for hook
    /// point `id`.
    fn attach_raw_tp(
        &mut self,
        ebpf: &mut Ebpf,
        maps: &mut Maps,
        tracepoint: &str,
        id: u32,
    ) -> Result<Attachment, AttachError> {
        let index = self
            .raw_tp
            .iter()
            .position(|used| !used)
            .ok_or(AttachError::PoolFull {
                count: RAW_TP_PROGRAMS,
                kind: "raw tracepoint",
            })?;
        maps.btf_points
            .set((2 * BTF_PROGRAMS + index) as u32, id, 0)
            .map_err(map_write("BTF_POINTS"))?;
        let id = self.attach_raw_program(ebpf, RAW_TP_NAMES[index], tracepoint)?;
        let link = self.take::<RawTracePoint, _>(ebpf, RAW_TP_NAMES[index], id)?;
        self.raw_tp[index] = true;
        Ok(Attachment::RawTp { index, link })
    }

    /// Raw tracepoint program `program`, loaded if it is not yet, attached to
    /// `tracepoint`.
    fn attach_raw_program(
        &mut self,
        ebpf: &mut Ebpf,
        program: &'static str,
        tracepoint: &str,
    ) -> Result<RawTracePointLinkId, AttachError> {
        let p = self.program::<RawTracePoint>(ebpf, program, RawTracePoint::load)?;
        p.attach(tracepoint)
            .map_err(|source| AttachError::RawTracepoint {
                tracepoint: tracepoint.to_owned(),
                source,
            })
    }

    /// fentry (or with `lsm` BPF LSM) program for `function`: the pool program already
    /// loaded for it if free, else a free one loaded for it.
    fn attach_btf(
        &mut self,
        ebpf: &mut Ebpf,
        maps: &mut Maps,
        function: &str,
        lsm: bool,
        id: u32,
    ) -> Result<Attachment, AttachError> {
        let btf = self.btf.as_ref().ok_or(AttachError::NoBtf)?;
        let (pool, prefix, target) = if lsm {
            (
                &mut self.lsm,
                "policy_lsm",
                function.trim_start_matches("security_"),
            )
        } else {
            (&mut self.fentry, "policy_fe", function)
        };
        let index = pool
            .iter()
            .position(|(f, used)| !used && f.as_deref() == Some(target))
            .or_else(|| pool.iter().position(|(_, used)| !used))
            .ok_or(AttachError::PoolFull {
                count: BTF_PROGRAMS,
                kind: if lsm { "BPF LSM" } else { "fentry" },
            })?;
        let name = format!("{prefix}_{index}");
        let program = ebpf
            .program_mut(&name)
            .ok_or_else(|| AttachError::Missing(name.clone()))?;
        let refused =
            |e: ProgramError| AttachError::Refused(refusal(&format!("{name} for {target}"), &e));
        let slot_index = if lsm { BTF_PROGRAMS + index } else { index };
        maps.btf_points
            .set(slot_index as u32, id, 0)
            .map_err(map_write("BTF_POINTS"))?;
        let link = if lsm {
            let p: &mut Lsm = program.try_into().map_err(refused)?;
            if pool[index].0.as_deref() != Some(target) {
                if pool[index].0.is_some() {
                    let _ = p.unload();
                }
                pool[index].0 = None;
                p.load(target, btf).map_err(refused)?;
                pool[index].0 = Some(target.to_owned());
            }
            let id = p.attach()?;
            links::Link::Fd(FdLink::from(p.take(id)?))
        } else {
            let p: &mut FEntry = program.try_into().map_err(refused)?;
            if pool[index].0.as_deref() != Some(target) {
                if pool[index].0.is_some() {
                    let _ = p.unload();
                }
                pool[index].0 = None;
                p.load(target, btf).map_err(refused)?;
                pool[index].0 = Some(target.to_owned());
            }
            let id = p.attach()?;
            links::Link::Fd(FdLink::from(p.take(id)?))
        };
        let link = self.hold(link)?;
        if lsm {
            self.lsm[index].1 = true;
            Ok(Attachment::Lsm { index, link })
        } else {
            self.fentry[index].1 = true;
            Ok(Attachment::Fentry { index, link })
        }
    }

    /// Detaches a hook point's program.
    pub fn detach(&mut self, maps: &mut Maps, attachment: Attachment) {
        // Dropping a link detaches it (and removes its pin).
        match attachment {
            Attachment::Perf(link) => drop(link),
            Attachment::RawSyscall { dir, nr } => {
                let _ = set_raw(maps, dir, nr, 0);
                let d = dir as usize & 1;
                self.raw_users[d] = self.raw_users[d].saturating_sub(1);
                if self.raw_users[d] == 0
                    && let Some(link) = self.raw_links[d].take()
                {
                    drop(link);
                    tracing::info!("raw tracepoint {} detached: no syscall hook left", RAW[d].1);
                }
            }
            Attachment::Fentry { index, link } => {
                self.fentry[index].1 = false;
                drop(link);
            }
            Attachment::RawTp { index, link } => {
                self.raw_tp[index] = false;
                drop(link);
            }
            Attachment::Lsm { index, link } => {
                self.lsm[index].1 = false;
                drop(link);
            }
        }
    }
}

/// Every link, as the agent stops: with `keep` (on a pinned set) let go with its pin
/// left, so that the hook points stay attached (their programs and maps with them) until
/// the next agent, its own hooks in, removes the pins; without, detached now, so that
/// nothing posts while the agent drains what is left. Returns how many stay attached,
/// and how many were detached.
pub fn stop(
    programs: &mut Programs,
    attachments: Vec<Attachment>,
    enforcers: Vec<links::Held>,
    keep: bool,
) -> (usize, usize) {
    let raw = programs.raw_links.iter_mut().filter_map(Option::take);
    let mut kept = (0, 0);
    let mut count = |k: bool| if k { kept.0 += 1 } else { kept.1 += 1 };
    for a in attachments {
        count(keep && a.keep());
    }
    for link in enforcers.into_iter().chain(raw) {
        count(keep && link.keep());
    }
    kept
}

/// The programs whose links [`Programs::take`] takes from aya, to hold them.
trait TakeLink<L: aya::programs::links::Link> {
    fn take(&mut self, id: L::Id) -> Result<L, ProgramError>;
}

impl TakeLink<aya::programs::fentry::FEntryLink> for FEntry {
    fn take(
        &mut self,
        id: FEntryLinkId,
    ) -> Result<aya::programs::fentry::FEntryLink, ProgramError> {
        self.take_link(id)
    }
}

impl TakeLink<aya::programs::lsm::LsmLink> for Lsm {
    fn take(&mut self, id: LsmLinkId) -> Result<aya::programs::lsm::LsmLink, ProgramError> {
        self.take_link(id)
    }
}

impl TakeLink<aya::programs::raw_trace_point::RawTracePointLink> for RawTracePoint {
    fn take(
        &mut self,
        id: RawTracePointLinkId,
    ) -> Result<aya::programs::raw_trace_point::RawTracePointLink, ProgramError> {
        self.take_link(id)
    }
}

/// The raw tracepoint pool's programs, by index.
const RAW_TP_NAMES: [&str; RAW_TP_PROGRAMS] = [
    "policy_rtp_0",
    "policy_rtp_1",
    "policy_rtp_2",
    "policy_rtp_3",
    "policy_rtp_4",
    "policy_rtp_5",
    "policy_rtp_6",
    "policy_rtp_7",
];

/// The raw syscall programs: (program, raw tracepoint) of each direction.
const RAW: [(&str, &str); 2] = [("syscall_enter", "sys_enter"), ("syscall_exit", "sys_exit")];

/// Points syscall `nr` (or every syscall) of direction `dir` at hook point `id` (0: none).
fn set_raw(maps: &mut Maps, dir: u32, nr: Option<u32>, id: u32) -> Result<(), AttachError> {
    let dir = if dir == SYSCALL_ENTER { 0 } else { 1 };
    match nr {
        Some(nr) => maps
            .syscall_points
            .set(dir * SYSCALL_IDS + nr, id, 0)
            .map_err(map_write("SYSCALL_POINTS")),
        None => maps
            .syscall_any
            .set(dir, id, 0)
            .map_err(map_write("SYSCALL_ANY")),
    }
}
