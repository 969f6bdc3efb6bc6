//! Perf records to typed mappings. The bytes are the agent's own copy of what the kernel
//! wrote to a CPU's ring (see `Ring::copy_out`); every size is checked here: a malformed
//! record is an error that says what is wrong with it, never a panic.
//!
//! The layouts are `include/uapi/linux/perf_event.h`'s, for the attributes the agent
//! opens its events with (`sample_id_all` with `PERF_SAMPLE_TID | PERF_SAMPLE_TIME`: each
//! record ends with `{ u32 pid, tid; u64 time; }`):
//!
//! ```text
//! PERF_RECORD_MMAP2: header (8) | pid tid (8) | addr len pgoff (24)
//!                    | at 40: maj min ino ino_generation (24), or with
//!                      PERF_RECORD_MISC_MMAP_BUILD_ID: build_id_size (1) reserved (3) build_id[20]
//!                    | at 64: prot flags (8)
//!                    | at 72: filename, NUL-terminated, padded to 8 | sample_id (16)
//! PERF_RECORD_LOST:  header (8) | id (8) | lost (8) | sample_id (16)
//! ```

use perf_event_open_sys::bindings::{
    PERF_RECORD_LOST, PERF_RECORD_MISC_MMAP_BUILD_ID, PERF_RECORD_MMAP2,
};

use super::build_id::{BUILD_ID_MAX, BuildId};

/// `struct perf_event_header`.
const HEADER: usize = 8;
/// The sample id every record ends with: pid, tid (`PERF_SAMPLE_TID`), time
/// (`PERF_SAMPLE_TIME`).
pub const SAMPLE_ID: usize = 16;
/// Where an mmap2 record's file name starts.
const MMAP2_NAME: usize = 72;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("{left} bytes left in the ring, fewer than a record header's {HEADER}")]
    ShortHeader { left: usize },
    #[error(
        "a record of type {kind} says it has {size} bytes, with {left} left in the ring (a record has at least {HEADER})"
    )]
    BadSize { kind: u32, size: usize, left: usize },
    #[error("{what} record of {size} bytes, expected at least {need}")]
    Truncated {
        what: &'static str,
        size: usize,
        need: usize,
    },
    #[error("mmap2 record's file name has no NUL in its {0} bytes")]
    Unterminated(usize),
    #[error("mmap2 record says its build id has {0} bytes, more than {BUILD_ID_MAX}")]
    BuildIdSize(u8),
}

/// How the kernel names the mapped file besides its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileId {
    /// The build id the kernel read from the file (`build_id` attribute, Linux 5.12);
    /// `None` where it could not read one.
    BuildId(Option<BuildId>),
    /// The file's device and inode (without the `build_id` attribute).
    Inode {
        maj: u32,
        min: u32,
        ino: u64,
        generation: u64,
    },
}

/// One executable mapping (`PERF_RECORD_MMAP2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The process (thread group) and the thread that mapped it.
    pub pid: u32,
    pub tid: u32,
    pub addr: u64,
    pub len: u64,
    pub pgoff: u64,
    pub file: FileId,
    pub prot: u32,
    pub flags: u32,
    /// The file's path as the kernel wrote it (`//anon`, `[vdso]` for mappings of no
    /// file).
    pub path: String,
    /// When, in the agent's event clock (`CLOCK_MONOTONIC`, `use_clockid`).
    pub time_ns: u64,
}

/// A record the agent acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Mapping(Mapping),
    /// `PERF_RECORD_LOST`: records the kernel could not write, the ring being full.
    Lost(u64),
    /// A record of another type (none are asked for): skipped.
    Other(u32),
}

/// The records of `bytes`, in order. A record whose own fields are malformed is an error
/// and the next one is read; a header whose size cannot be right is an error that ends
/// the walk (where the next record starts is not known).
pub fn records(bytes: &[u8]) -> Records<'_> {
    Records { bytes, done: false }
}

pub struct Records<'a> {
    bytes: &'a [u8],
    done: bool,
}

impl Iterator for Records<'_> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.bytes.is_empty() {
            return None;
        }
        let left = self.bytes.len();
        let (Some(kind), Some(size)) = (u32_at(self.bytes, 0), u16_at(self.bytes, 6)) else {
            self.done = true;
            return Some(Err(RecordError::ShortHeader { left }));
        };
        let size = usize::from(size);
        // A size below the header would never advance; past the copy, it cannot be.
        let Some(record) = self.bytes.get(..size).filter(|_| size >= HEADER) else {
            self.done = true;
            return Some(Err(RecordError::BadSize { kind, size, left }));
        };
        self.bytes = &self.bytes[size..];
        Some(parse(kind, record))
    }
}

fn parse(kind: u32, r: &[u8]) -> Result<Record, RecordError> {
    match kind {
        PERF_RECORD_MMAP2 => mmap2(r).map(Record::Mapping),
        PERF_RECORD_LOST => {
            let need = HEADER + 16 + SAMPLE_ID;
            u64_at(r, 16)
                .filter(|_| r.len() >= need)
                .map(Record::Lost)
                .ok_or(RecordError::Truncated {
                    what: "lost",
                    size: r.len(),
                    need,
                })
        }
        other => Ok(Record::Other(other)),
    }
}

fn mmap2(r: &[u8]) -> Result<Mapping, RecordError> {
    // At least a one-byte name (its NUL), padded to 8.
    let need = MMAP2_NAME + 8 + SAMPLE_ID;
    let truncated = RecordError::Truncated {
        what: "mmap2",
        size: r.len(),
        need,
    };
    if r.len() < need {
        return Err(truncated);
    }
    let u16f = |at| u16_at(r, at).ok_or_else(|| truncated.clone());
    let u32f = |at| u32_at(r, at).ok_or_else(|| truncated.clone());
    let u64f = |at| u64_at(r, at).ok_or_else(|| truncated.clone());
    let misc = u16f(4)?;
    let file = if u32::from(misc) & PERF_RECORD_MISC_MMAP_BUILD_ID != 0 {
        let size = r.get(40).copied().ok_or_else(|| truncated.clone())?;
        let bytes = r
            .get(44..44 + usize::from(size))
            .filter(|_| usize::from(size) <= BUILD_ID_MAX)
            .ok_or(RecordError::BuildIdSize(size))?;
        FileId::BuildId(BuildId::new(bytes))
    } else {
        FileId::Inode {
            maj: u32f(40)?,
            min: u32f(44)?,
            ino: u64f(48)?,
            generation: u64f(56)?,
        }
    };
    let sample = r.len() - SAMPLE_ID;
    let name = r.get(MMAP2_NAME..sample).ok_or_else(|| truncated.clone())?;
    let end = name
        .iter()
        .position(|b| *b == 0)
        .ok_or(RecordError::Unterminated(name.len()))?;
    Ok(Mapping {
        pid: u32f(8)?,
        tid: u32f(12)?,
        addr: u64f(16)?,
        len: u64f(24)?,
        pgoff: u64f(32)?,
        file,
        prot: u32f(64)?,
        flags: u32f(68)?,
        path: String::from_utf8_lossy(&name[..end]).into_owned(),
        time_ns: u64f(sample + 8)?,
    })
}

// The kernel writes in the machine's byte order.
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A record as the kernel writes it: `body` after the header, then the sample id.
    fn record(kind: u32, misc: u16, body: &[u8], pid: u32, time: u64) -> Vec<u8> {
        let size = HEADER + body.len() + SAMPLE_ID;
        let mut r = Vec::new();
        r.extend(kind.to_ne_bytes());
        r.extend(misc.to_ne_bytes());
        r.extend((size as u16).to_ne_bytes());
        r.extend(body);
        r.extend(pid.to_ne_bytes());
        r.extend(pid.to_ne_bytes());
        r.extend(time.to_ne_bytes());
        r
    }

    /// An mmap2 record of `path`: with a build id when one is given, else an inode.
    pub(in crate::mappings) fn mmap2_record(
        pid: u32,
        path: &str,
        build_id: Option<&[u8]>,
        time: u64,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(pid.to_ne_bytes());
        b.extend((pid + 1).to_ne_bytes());
        b.extend(0x7f00_0000_1000u64.to_ne_bytes());
        b.extend(0x2000u64.to_ne_bytes());
        b.extend(0x28000u64.to_ne_bytes());
        let misc = match build_id {
            Some(id) => {
                let mut u = [0u8; 24];
                u[0] = id.len() as u8;
                u[4..4 + id.len()].copy_from_slice(id);
                b.extend(u);
                PERF_RECORD_MISC_MMAP_BUILD_ID as u16
            }
            None => {
                b.extend(8u32.to_ne_bytes());
                b.extend(1u32.to_ne_bytes());
                b.extend(4242u64.to_ne_bytes());
                b.extend(7u64.to_ne_bytes());
                0
            }
        };
        b.extend(5u32.to_ne_bytes()); // PROT_READ | PROT_EXEC
        b.extend(2u32.to_ne_bytes()); // MAP_PRIVATE
        b.extend(path.as_bytes());
        b.push(0);
        b.resize(b.len().next_multiple_of(8), 0);
        record(PERF_RECORD_MMAP2, misc, &b, pid, time)
    }

    #[test]
    fn mmap2_records_with_a_build_id_or_an_inode() {
        let id: Vec<u8> = (1u8..=20).collect();
        let mut bytes = mmap2_record(42, "/usr/lib/x86_64-linux-gnu/libc.so.6", Some(&id), 7);
        bytes.extend(mmap2_record(43, "/usr/bin/true", None, 8));
        let got: Vec<_> = records(&bytes).collect();
        assert_eq!(
            got,
            [
                Ok(Record::Mapping(Mapping {
                    pid: 42,
                    tid: 43,
                    addr: 0x7f00_0000_1000,
                    len: 0x2000,
                    pgoff: 0x28000,
                    file: FileId::BuildId(BuildId::new(&id)),
                    prot: 5,
                    flags: 2,
                    path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
                    time_ns: 7,
                })),
                Ok(Record::Mapping(Mapping {
                    pid: 43,
                    tid: 44,
                    addr: 0x7f00_0000_1000,
                    len: 0x2000,
                    pgoff: 0x28000,
                    file: FileId::Inode {
                        maj: 8,
                        min: 1,
                        ino: 4242,
                        generation: 7
                    },
                    prot: 5,
                    flags: 2,
                    path: "/usr/bin/true".into(),
                    time_ns: 8,
                })),
            ]
        );
        // The kernel could not read the build id: none, the mapping still there.
        let none = mmap2_record(42, "/x", Some(&[]), 1);
        assert!(matches!(
            records(&none).next(),
            Some(Ok(Record::Mapping(Mapping {
                file: FileId::BuildId(None),
                ..
            })))
        ));
    }

    #[test]
    fn lost_and_other_records() {
        let mut body = Vec::new();
        body.extend(99u64.to_ne_bytes()); // id
        body.extend(17u64.to_ne_bytes()); // lost
        let mut bytes = record(PERF_RECORD_LOST, 0, &body, 0, 0);
        bytes.extend(record(3, 0, &[0; 8], 1, 1)); // PERF_RECORD_COMM
        let got: Vec<_> = records(&bytes).collect();
        assert_eq!(got, [Ok(Record::Lost(17)), Ok(Record::Other(3))]);
    }

    #[test]
    fn malformed_records_are_errors_never_a_panic() {
        let id: Vec<u8> = (1u8..=20).collect();
        let good = mmap2_record(42, "/lib/ld.so", Some(&id), 7);
        // Cut anywhere: a short header, or a size past what is left; nothing after.
        for cut in 1..good.len() {
            let got: Vec<_> = records(&good[..cut]).collect();
            assert_eq!(got.len(), 1, "cut at {cut}");
            assert!(got[0].is_err(), "cut at {cut}: {got:?}");
        }
        assert_eq!(
            records(&good[..5]).next(),
            Some(Err(RecordError::ShortHeader { left: 5 }))
        );
        // A size of 0 would never advance: an error, and the walk ends.
        let mut zero = good.clone();
        zero[6..8].copy_from_slice(&0u16.to_ne_bytes());
        let got: Vec<_> = records(&zero).collect();
        assert_eq!(
            got,
            [Err(RecordError::BadSize {
                kind: PERF_RECORD_MMAP2,
                size: 0,
                left: good.len()
            })]
        );
        // A record too short for its type: that one is an error, the next is read.
        let mut short = record(PERF_RECORD_MMAP2, 0, &[0; 16], 1, 1);
        short.extend(&good);
        let got: Vec<_> = records(&short).collect();
        assert_eq!(
            got[0],
            Err(RecordError::Truncated {
                what: "mmap2",
                size: 40,
                need: 96
            })
        );
        assert!(matches!(got[1], Ok(Record::Mapping(_))));
        let lost = record(PERF_RECORD_LOST, 0, &[0; 8], 0, 0);
        assert!(matches!(
            records(&lost).next(),
            Some(Err(RecordError::Truncated { what: "lost", .. }))
        ));
        // A build id size past 20; a name with no NUL.
        let mut big = good.clone();
        big[40] = 21;
        assert_eq!(
            records(&big).next(),
            Some(Err(RecordError::BuildIdSize(21)))
        );
        let mut unterminated = good.clone();
        let name_end = good.len() - SAMPLE_ID;
        unterminated[MMAP2_NAME..name_end].fill(b'a');
        assert_eq!(
            records(&unterminated).next(),
            Some(Err(RecordError::Unterminated(name_end - MMAP2_NAME)))
        );
    }
}
