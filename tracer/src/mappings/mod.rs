//! The executable mappings processes make (their binary, ld.so, each shared library), for
//! the `process_loader` events of `loader: true` policies, read from the kernel's perf
//! mmap records: no eBPF program, no kernel hook.
//!
//! While a loaded policy has `loader: true` ([`Mappings::want`]), the agent holds one
//! system-wide perf event per online CPU: a software `dummy` event (it counts nothing and
//! samples nothing) with `mmap` (executable mappings only: no `mmap_data`), `mmap2` and
//! `build_id` (Linux 5.12: the record carries the file's GNU build id rather than its
//! device and inode; where the kernel refuses the bit, or could not read the id, it is read
//! from the file's ELF notes here, [`build_id`]). Each event's ring buffer is mapped into
//! the agent; the kernel wakes it once an eighth of a ring waits (or for every record,
//! with `--ring-buffer-wakeup-ms 0`) and the agent's ring timer reads the rest. Records
//! the kernel could not write (`PERF_RECORD_LOST`) are counted and reported as an
//! `event_loss` of place `mappings`.
//!
//! - [`record`]: the records' bytes to typed mappings.
//! - [`build_id`]: build ids, and the ELF note reader.
//!
//! The agent reads the mappings before it drains the eBPF ring buffer, and hands them on
//! after it (`agent::read_batch`): the exec of a process that maps its libraries is then
//! in the process cache, so each mapping is the new program's.

pub mod build_id;
pub mod record;

use std::{
    collections::HashMap,
    io,
    os::fd::{FromRawFd as _, OwnedFd},
    path::PathBuf,
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
    task::Poll,
};

use perf_event_open_sys::bindings::{
    PERF_COUNT_SW_DUMMY, PERF_FLAG_FD_CLOEXEC, PERF_SAMPLE_TID, PERF_SAMPLE_TIME,
    PERF_TYPE_SOFTWARE, perf_event_attr, perf_event_mmap_page,
};
use tokio::io::unix::AsyncFd;

use self::{
    build_id::BuildId,
    record::{FileId, Mapping, Record},
};

/// Data pages of each CPU's ring (a power of two): 256 KiB with 4 KiB pages, about 2,000
/// mappings.
const RING_PAGES: usize = 64;
/// Build ids read from files (kernels without the `build_id` attribute) kept at most.
const FILE_IDS_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum MappingsError {
    #[error("cannot list the online CPUs ({path}): {source}")]
    Cpus {
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot open the perf event of executable mappings on CPU {cpu} (perf_event_open: {source}; it needs CAP_PERFMON or CAP_SYS_ADMIN)"
    )]
    Open {
        cpu: u32,
        #[source]
        source: io::Error,
    },
    #[error("cannot map the perf ring buffer of CPU {cpu}: {source}")]
    Mmap {
        cpu: u32,
        #[source]
        source: io::Error,
    },
    #[error("cannot poll the perf ring buffer of CPU {cpu}: {source}")]
    Poll {
        cpu: u32,
        #[source]
        source: io::Error,
    },
}

/// A mapping to report: its record, and the build id of the mapped file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub mapping: Mapping,
    pub build_id: BuildId,
}

/// Losses since the previous report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossReport {
    pub lost: u64,
    pub total_lost: u64,
    /// The previous report's time (or the agent's start), RFC 3339.
    pub since: String,
}

/// The per-CPU perf events of executable mappings, open while a policy wants them.
pub struct Mappings {
    rings: Vec<Ring>,
    /// The kernel wakes the agent only for a backlog (the ring timer reads the rest).
    batched: bool,
    /// The kernel puts build ids in the records (the events opened with `build_id`).
    kernel_build_ids: bool,
    /// Build ids read from files, by device, inode and generation.
    file_ids: HashMap<(u32, u32, u64, u64), Option<BuildId>>,
    /// Records read, malformed records, and records the kernel lost, since the start.
    pub records: u64,
    pub malformed: u64,
    lost: u64,
    reported_lost: u64,
    reported_at: String,
    /// The bytes of one ring, copied out.
    buf: Vec<u8>,
}

impl Mappings {
    /// Closed: nothing is read until [`Mappings::want`] opens the events.
    pub fn new(batched: bool) -> Self {
        Self {
            rings: Vec::new(),
            batched,
            kernel_build_ids: true,
            file_ids: HashMap::new(),
            records: 0,
            malformed: 0,
            lost: 0,
            reported_lost: 0,
            reported_at: crate::clock::Clock::now_rfc3339(),
            buf: Vec::new(),
        }
    }

    pub fn is_open(&self) -> bool {
        !self.rings.is_empty()
    }

    /// Opens the events when `on` and they are closed, closes them when not `on`; says
    /// so. A failure to open is logged: the policies stay loaded without their events.
    pub fn want(&mut self, on: bool) {
        match (on, self.is_open()) {
            (true, false) => match self.open() {
                Ok(()) => tracing::info!(
                    cpus = self.rings.len(),
                    kernel_build_ids = self.kernel_build_ids,
                    "loader: reading the executable mappings of every process (perf mmap records)"
                ),
                Err(e) => tracing::error!(
                    "loader: {e}; the `loader: true` policies report no process_loader events"
                ),
            },
            (false, true) => {
                self.rings.clear();
                self.file_ids.clear();
                tracing::info!(
                    "loader: no policy asks for process_loader events: stopped reading the executable mappings"
                );
            }
            _ => {}
        }
    }

    fn open(&mut self) -> Result<(), MappingsError> {
        let cpus = aya::util::online_cpus()
            .map_err(|(path, source)| MappingsError::Cpus { path, source })?;
        let page = page_size();
        let mut build_ids = true;
        let mut rings = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            let watermark = if self.batched {
                (RING_PAGES * page / 8) as u32
            } else {
                1
            };
            let fd = match open_event(cpu, build_ids, watermark) {
                // Before Linux 5.12 the kernel knows no `build_id` bit: the ids are read
                // from the files.
                Err(e) if build_ids && e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::info!(
                        "loader: the kernel cannot put build ids in mmap records ({e}): they are read from the mapped files"
                    );
                    build_ids = false;
                    open_event(cpu, false, watermark)
                }
                r => r,
            }
            .map_err(|source| MappingsError::Open { cpu, source })?;
            rings.push(Ring::new(cpu, fd, page)?);
        }
        self.rings = rings;
        self.kernel_build_ids = build_ids;
        Ok(())
    }

    /// Waits until a ring has records (never, while closed).
    pub async fn readable(&self) -> io::Result<()> {
        if self.rings.is_empty() {
            return std::future::pending().await;
        }
        std::future::poll_fn(|cx| {
            let mut ready = false;
            for ring in &self.rings {
                match ring.fd.poll_read_ready(cx) {
                    // Cleared before the rings are read: a wake-up after this is seen.
                    Poll::Ready(Ok(mut guard)) => {
                        guard.clear_ready();
                        ready = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if ready {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// The mappings now in the rings, each with its file's build id (those of no file,
    /// or of a file without a build id, are left out, as Tetragon leaves them out).
    pub fn take(&mut self) -> Vec<Mapped> {
        let mut out = Vec::new();
        for i in 0..self.rings.len() {
            self.rings[i].copy_out(&mut self.buf);
            if self.buf.is_empty() {
                continue;
            }
            let buf = std::mem::take(&mut self.buf);
            for r in record::records(&buf) {
                match r {
                    Ok(Record::Mapping(m)) => {
                        self.records += 1;
                        if let Some(build_id) = self.build_id(&m) {
                            out.push(Mapped {
                                mapping: m,
                                build_id,
                            });
                        }
                    }
                    Ok(Record::Lost(n)) => self.lost += n,
                    Ok(Record::Other(_)) => {}
                    Err(e) => {
                        self.malformed += 1;
                        tracing::warn!(
                            cpu = self.rings[i].cpu,
                            "loader: dropped a malformed perf record from the kernel: {e}"
                        );
                    }
                }
            }
            self.buf = buf;
        }
        out
    }

    /// The build id of `m`'s file: the kernel's, else read from the file (through the
    /// process's `map_files`, which opens the very file it mapped, in its own mount
    /// namespace; else at its path).
    fn build_id(&mut self, m: &Mapping) -> Option<BuildId> {
        if !m.path.starts_with('/') {
            return None;
        }
        let key = match m.file {
            FileId::BuildId(Some(id)) => return Some(id),
            FileId::BuildId(None) => None,
            FileId::Inode {
                maj,
                min,
                ino,
                generation,
            } => Some((maj, min, ino, generation)),
        };
        if let Some(id) = key.and_then(|k| self.file_ids.get(&k)) {
            return *id;
        }
        let map_file = PathBuf::from(format!(
            "/proc/{}/map_files/{:x}-{:x}",
            m.pid,
            m.addr,
            m.addr.saturating_add(m.len)
        ));
        let id = build_id::read(&map_file)
            .or_else(|_| build_id::read(std::path::Path::new(&m.path)))
            .unwrap_or_else(|e| {
                tracing::debug!("loader: no build id for {}: {e}", m.path);
                None
            });
        if let Some(k) = key {
            if self.file_ids.len() >= FILE_IDS_MAX {
                self.file_ids.clear();
            }
            self.file_ids.insert(k, id);
        }
        id
    }

    /// Records read and lost since the start.
    pub fn counts(&self) -> (u64, u64) {
        (self.records, self.lost)
    }

    /// What the kernel lost since the previous call, if anything.
    pub fn new_losses(&mut self) -> Option<LossReport> {
        if self.lost == self.reported_lost {
            return None;
        }
        let lost = self.lost - self.reported_lost;
        self.reported_lost = self.lost;
        Some(LossReport {
            lost,
            total_lost: self.lost,
            since: std::mem::replace(&mut self.reported_at, crate::clock::Clock::now_rfc3339()),
        })
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system; it has no other effect.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096)
}

/// The perf event of CPU `cpu`: every process's executable mappings, timed in the
/// agent's event clock, waking the agent once `watermark` bytes wait.
fn open_event(cpu: u32, build_ids: bool, watermark: u32) -> io::Result<OwnedFd> {
    let mut attr = perf_event_attr {
        type_: PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<perf_event_attr>() as u32,
        config: u64::from(PERF_COUNT_SW_DUMMY),
        sample_type: u64::from(PERF_SAMPLE_TID | PERF_SAMPLE_TIME),
        clockid: libc::CLOCK_MONOTONIC,
        ..Default::default()
    };
    attr.set_mmap(1);
    attr.set_mmap2(1);
    attr.set_build_id(u64::from(build_ids));
    attr.set_sample_id_all(1);
    attr.set_use_clockid(1);
    attr.set_watermark(1);
    attr.__bindgen_anon_2.wakeup_watermark = watermark;
    let cpu_arg = i32::try_from(cpu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `attr` is a whole, initialised perf_event_attr whose `size` is its own; the
    // event it asks for only records (a software event that counts nothing, pid -1 on
    // one CPU, no group).
    let fd = unsafe {
        perf_event_open_sys::perf_event_open(
            &mut attr,
            -1,
            cpu_arg,
            -1,
            libc::c_ulong::from(PERF_FLAG_FD_CLOEXEC),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: perf_event_open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One CPU's perf event and its ring buffer, mapped into the agent: the control page
/// (`perf_event_mmap_page`: `data_head`, written by the kernel, and `data_tail`, by the
/// agent), then `RING_PAGES` pages of records.
struct Ring {
    cpu: u32,
    fd: AsyncFd<OwnedFd>,
    base: NonNull<u8>,
    mmap_len: usize,
    /// Where the records start, and how many bytes they wrap at.
    data_offset: usize,
    data_size: usize,
}

impl Ring {
    fn new(cpu: u32, fd: OwnedFd, page: usize) -> Result<Self, MappingsError> {
        use std::os::fd::AsRawFd as _;
        let data_size = RING_PAGES * page;
        let mmap_len = page + data_size;
        // SAFETY: a new shared mapping of the event's ring (its length one page plus a
        // power of two of pages, as perf requires); nothing else is mapped or changed.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mmap_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(MappingsError::Mmap {
                cpu,
                source: io::Error::last_os_error(),
            });
        }
        let Some(base) = NonNull::new(ptr.cast::<u8>()) else {
            return Err(MappingsError::Mmap {
                cpu,
                source: io::Error::other("mmap returned a null pointer"),
            });
        };
        // SAFETY: the OwnedFd is open and stays open, the same descriptor, until the
        // AsyncFd that owns it is dropped.
        let fd = match unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        {
            Ok(fd) => fd,
            Err(e) => {
                // SAFETY: the mapping made above, of that length, used by nothing else.
                unsafe { libc::munmap(ptr, mmap_len) };
                return Err(MappingsError::Poll {
                    cpu,
                    source: e.into(),
                });
            }
        };
        Ok(Self {
            cpu,
            fd,
            base,
            mmap_len,
            data_offset: page,
            data_size,
        })
    }

    /// `data_head` or `data_tail` of the control page.
    fn control(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: the control page is mapped for the Ring's life, page-aligned, and the
        // field (`offset` is `data_head`'s or `data_tail`'s) is a u64 at an 8-byte
        // aligned offset inside it; the kernel reads and writes it with atomic accesses
        // (smp_load_acquire / smp_store_release), never tearing it.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast::<u64>()) }
    }

    /// Copies the records the kernel has written since the last call into `out` (replacing
    /// what it held), and hands their room back to the kernel.
    fn copy_out(&self, out: &mut Vec<u8>) {
        out.clear();
        let head_at = std::mem::offset_of!(perf_event_mmap_page, data_head);
        let tail_at = std::mem::offset_of!(perf_event_mmap_page, data_tail);
        // Acquire: the records before `data_head` are written before it was published.
        let head = self.control(head_at).load(Ordering::Acquire);
        let tail = self.control(tail_at).load(Ordering::Relaxed);
        // The kernel never writes past unread records, so no more than the ring waits; a
        // head behind the tail or too far ahead would be a kernel bug: read nothing.
        let waiting = head.wrapping_sub(tail);
        if waiting == 0 || waiting > self.data_size as u64 {
            if waiting != 0 {
                tracing::warn!(
                    cpu = self.cpu,
                    head,
                    tail,
                    "loader: the perf ring's head and tail disagree; its records are skipped"
                );
                self.control(tail_at).store(head, Ordering::Release);
            }
            return;
        }
        let waiting = waiting as usize;
        let start = (tail % self.data_size as u64) as usize;
        let first = waiting.min(self.data_size - start);
        for (at, len) in [(start, first), (0, waiting - first)] {
            if len == 0 {
                continue;
            }
            // SAFETY: `at..at + len` lies inside the data pages (`at + len <= data_size`),
            // mapped for the Ring's life; these are the bytes between the tail and the
            // head, which the kernel has finished writing and does not write again until
            // the agent moves `data_tail` past them, below.
            let bytes = unsafe {
                std::slice::from_raw_parts(self.base.as_ptr().add(self.data_offset + at), len)
            };
            out.extend_from_slice(bytes);
        }
        // Release: the bytes are copied before the kernel may write over them.
        self.control(tail_at).store(head, Ordering::Release);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Ring::new`, of that length; nothing borrows it past
        // the Ring (`copy_out` copies the bytes out). The descriptor closes after.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.mmap_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens the events on this machine where it may (root, or CAP_PERFMON), maps a file
    /// executable, and finds its mapping with its build id.
    #[tokio::test]
    async fn this_process_mapping_a_library_is_read_with_its_build_id() {
        let mut m = Mappings::new(false);
        if let Err(e) = m.open() {
            eprintln!("skipped: {e}");
            return;
        }
        let lib = ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(lib) = lib else {
            eprintln!("skipped: no libc found");
            return;
        };
        // The kernel names the file by its path with the links resolved.
        let lib = std::fs::canonicalize(lib).expect("canonical path");
        let expected = build_id::read(&lib).expect("libc reads");
        let file = std::fs::File::open(&lib).expect("open libc");
        use std::os::fd::AsRawFd as _;
        // SAFETY: a new private read-only executable mapping of a file, unmapped below;
        // nothing reads through it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let got = m.take();
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(p, 4096) };
        let me = std::process::id();
        let ours = got
            .iter()
            .find(|g| g.mapping.pid == me && g.mapping.addr == p as u64)
            .unwrap_or_else(|| panic!("our mapping of {} among {got:#?}", lib.display()));
        assert_eq!(std::path::Path::new(&ours.mapping.path), lib);
        assert_eq!(ours.mapping.len, 4096);
        assert_eq!(
            ours.mapping.prot,
            (libc::PROT_READ | libc::PROT_EXEC) as u32
        );
        assert_eq!(Some(ours.build_id), expected);
        assert!(ours.mapping.time_ns > 0);
    }
}
