//! Attaching a program to a tracepoint or a kprobe with a BPF cookie, which tells the
//! program which hook point fired (`bpf_get_attach_cookie`): one program serves every
//! hook point of its type. aya attaches these without a cookie, so this opens the perf
//! event and creates the BPF link itself (`BPF_LINK_CREATE`, `BPF_PERF_EVENT`, Linux
//! 5.15). Dropping a [`PerfLink`] closes both, which detaches the program.

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use aya::programs::links::FdLink;

/// `PERF_TYPE_TRACEPOINT`.
const PERF_TYPE_TRACEPOINT: u32 = 2;
/// `PERF_FLAG_FD_CLOEXEC`.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `BPF_LINK_CREATE`.
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_OBJ_PIN`.
const BPF_OBJ_PIN: libc::c_long = 6;
/// `BPF_PERF_EVENT`, the attach type of a perf event link.
const BPF_PERF_EVENT: u32 = 41;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Kernel(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LinkError {
    let what = what.into();
    move |source| LinkError::Io { what, source }
}

/// A program attached to a perf event with a cookie.
#[derive(Debug)]
pub struct PerfLink {
    _link: OwnedFd,
    _event: OwnedFd,
}

impl PerfLink {
    /// Pins the link at `path` (`BPF_OBJ_PIN`): it stays attached once this agent has
    /// closed it, until the pin is removed. (The link holds its perf event.)
    fn pin(&self, path: &Path) -> Result<(), LinkError> {
        let what = || format!("pinning a hook at {}", path.display());
        let name = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| LinkError::Kernel(format!("{}: {e}", what())))?;
        // `union bpf_attr`'s `obj_pin`: pathname (a pointer), bpf_fd, file_flags; the
        // rest zero.
        let mut attr = [0u64; 4];
        attr[0] = name.as_ptr() as u64;
        attr[1] = u64::from(self._link.as_raw_fd() as u32);
        // SAFETY: `attr` is `obj_pin`'s, zero past its fields; `name` (NUL-ended) and
        // the link's descriptor outlive the call.
        unsafe { sys_bpf(BPF_OBJ_PIN, &mut attr) }.map_err(io(what()))?;
        Ok(())
    }
}

/// `bpf(cmd, attr)`: what the kernel returns (a new descriptor, for some commands).
///
/// # Safety
/// `attr` must be `cmd`'s `union bpf_attr`, zero past its fields, with every pointer
/// and descriptor in it valid for the call.
unsafe fn sys_bpf<T>(cmd: libc::c_long, attr: &mut [T]) -> std::io::Result<libc::c_long> {
    // SAFETY: the caller's; the size passed is `attr`'s own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A hook's link as the store holds it: dropping it detaches the program, and removes
/// its pin where it has one (`--pin-dir`: pinned as soon as it is made, so that the hook
/// outlives an agent that is killed). [`Held::keep`] lets it go and leaves the pin: the
/// program stays attached for the next agent (`store::restart`).
#[derive(Debug)]
pub struct Held {
    _link: Link,
    pin: Option<PathBuf>,
}

/// The two kinds of link the store makes.
#[derive(Debug)]
pub enum Link {
    /// A perf event link with a cookie, made here.
    Perf(PerfLink),
    /// One aya made (raw tracepoint, fentry, BPF LSM), taken from it.
    Fd(FdLink),
}

impl Held {
    /// Holds `link`, pinned at `pin` where one is given. A link that cannot be pinned is
    /// an error (an aya link is dropped, detached, with it).
    pub fn new(link: Link, pin: Option<PathBuf>) -> Result<Self, LinkError> {
        let Some(path) = pin else {
            return Ok(Self {
                _link: link,
                pin: None,
            });
        };
        let link = match link {
            Link::Perf(p) => {
                p.pin(&path)?;
                Link::Perf(p)
            }
            Link::Fd(f) => Link::Fd(FdLink::from(f.pin(&path).map_err(|e| {
                LinkError::Kernel(format!("pinning a hook at {}: {e}", path.display()))
            })?)),
        };
        Ok(Self {
            _link: link,
            pin: Some(path),
        })
    }

    /// Lets the link go with its pin left: the program stays attached. Whether it had
    /// one.
    pub fn keep(mut self) -> bool {
        self.pin.take().is_some()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // The pin first: the link's descriptor, closed after, is then the last holder.
        if let Some(path) = self.pin.take()
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(
                "{}: cannot remove the hook's pin ({e}): it stays attached until the pin is removed",
                path.display()
            );
        }
    }
}

/// `struct perf_event_attr` up to `config2` (`PERF_ATTR_SIZE_VER1`); the kernel takes a
/// shorter struct as the older version it is.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    ty: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
}

/// Attaches `program` to tracepoint `subsystem/event` with `cookie`.
pub fn tracepoint(
    program: BorrowedFd<'_>,
    tracefs: &Path,
    subsystem: &str,
    event: &str,
    cookie: u64,
) -> Result<PerfLink, LinkError> {
    let id_file = tracefs
        .join("events")
        .join(subsystem)
        .join(event)
        .join("id");
    let id: u64 = std::fs::read_to_string(&id_file)
        .map_err(io(format!("reading {}", id_file.display())))?
        .trim()
        .parse()
        .map_err(|_| LinkError::Kernel(format!("{} is not a number", id_file.display())))?;
    let attr = PerfEventAttr {
        ty: PERF_TYPE_TRACEPOINT,
        config: id,
        ..PerfEventAttr::default()
    };
    link(
        program,
        attr,
        cookie,
        &format!("tracepoint {subsystem}/{event}"),
    )
}

/// Attaches `program` to kernel function `function` (at its return with `ret`) with
/// `cookie`, through the perf `kprobe` event source.
pub fn kprobe(
    program: BorrowedFd<'_>,
    function: &str,
    ret: bool,
    cookie: u64,
) -> Result<PerfLink, LinkError> {
    let pmu = Path::new("/sys/bus/event_source/devices/kprobe");
    let ty: u32 = read_number(&pmu.join("type"))?;
    let config = if ret { retprobe_bit(pmu)? } else { 0 };
    let name = CString::new(function)
        .map_err(|_| LinkError::Kernel(format!("`{function}` is not a function name")))?;
    let attr = PerfEventAttr {
        ty,
        config,
        // `kprobe_func`: the function's name; `probe_offset` 0.
        config1: name.as_ptr() as u64,
        ..PerfEventAttr::default()
    };
    let what = if ret { "kretprobe" } else { "kprobe" };
    link(program, attr, cookie, &format!("{what} {function}"))
}

/// Attaches `program` to the instruction at file offset `offset` of the binary at `path`
/// (at its function's return with `ret`), in every process that maps it, with `cookie`,
/// through the perf `uprobe` event source; `ref_ctr_offset` (not 0) is the file offset
/// of a USDT semaphore the kernel raises while the probe is attached.
pub fn uprobe(
    program: BorrowedFd<'_>,
    path: &Path,
    offset: u64,
    ref_ctr_offset: u64,
    ret: bool,
    cookie: u64,
) -> Result<PerfLink, LinkError> {
    let pmu = Path::new("/sys/bus/event_source/devices/uprobe");
    let ty: u32 = read_number(&pmu.join("type"))?;
    // `config:32-63`: the semaphore's offset (`format/ref_ctr_offset`).
    let config = if ret { retprobe_bit(pmu)? } else { 0 } | ref_ctr_offset << 32;
    let name = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| LinkError::Kernel(format!("`{}` is not a path", path.display())))?;
    let attr = PerfEventAttr {
        ty,
        config,
        // `uprobe_path` and `probe_offset`.
        config1: name.as_ptr() as u64,
        config2: offset,
        ..PerfEventAttr::default()
    };
    let what = if ret { "uretprobe" } else { "uprobe" };
    link(
        program,
        attr,
        cookie,
        &format!("{what} {}:{offset:#x}", path.display()),
    )
}

/// The `config` bit of PMU `pmu` (kprobe, uprobe) that makes a probe a return probe
/// (`format/retprobe`, `config:N`).
fn retprobe_bit(pmu: &Path) -> Result<u64, LinkError> {
    let format = pmu.join("format/retprobe");
    let text =
        std::fs::read_to_string(&format).map_err(io(format!("reading {}", format.display())))?;
    let bit: u32 = text
        .trim()
        .strip_prefix("config:")
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| {
            LinkError::Kernel(format!("{} reads `{}`", format.display(), text.trim()))
        })?;
    Ok(1u64 << bit)
}

fn read_number<T: std::str::FromStr>(path: &Path) -> Result<T, LinkError> {
    let text = std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
    text.trim()
        .parse()
        .map_err(|_| LinkError::Kernel(format!("{} is not a number", path.display())))
}

/// Opens the perf event of `attr` (every process, on CPU 0: a BPF program attached to a
/// tracepoint or kprobe runs on every CPU) and links `program` to it with `cookie`.
fn link(
    program: BorrowedFd<'_>,
    mut attr: PerfEventAttr,
    cookie: u64,
    what: &str,
) -> Result<PerfLink, LinkError> {
    attr.size = std::mem::size_of::<PerfEventAttr>() as u32;
    attr.wakeup_events = 1;
    // SAFETY: `attr` is a valid, initialised `perf_event_attr` of the size it declares,
    // alive across the call; the other arguments are plain integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &raw const attr,
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io(format!("opening the perf event of {what}"))(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a new file descriptor the kernel just returned, owned by nothing else.
    let event = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // `union bpf_attr`'s `link_create`: prog_fd, target_fd, attach_type, flags, then
    // `perf_event.bpf_cookie`; the rest zero.
    let mut attr = [0u32; 32];
    attr[0] = program.as_raw_fd() as u32;
    attr[1] = event.as_raw_fd() as u32;
    attr[2] = BPF_PERF_EVENT;
    attr[4] = cookie as u32;
    attr[5] = (cookie >> 32) as u32;
    // SAFETY: `attr` is `link_create`'s, zero past its fields; the file descriptors are
    // open.
    let fd = unsafe { sys_bpf(BPF_LINK_CREATE, &mut attr) }.map_err(io(format!(
        "linking the program to {what} with a cookie (BPF_LINK_CREATE, Linux 5.15)"
    )))?;
    // SAFETY: a new file descriptor the kernel just returned, owned by nothing else.
    let link = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    Ok(PerfLink {
        _link: link,
        _event: event,
    })
}
