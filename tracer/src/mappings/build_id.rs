//! GNU build ids: the kernel's (in each mmap2 record where it can give one), or read from
//! the mapped file's ELF notes where it cannot (kernels before 5.12, a page the kernel
//! could not read without faulting). Written as base64 in the JSON (protojson's `bytes`)
//! and as hex for people (`readelf -n`'s form).

use std::{fs::File, os::unix::fs::FileExt as _, path::Path};

/// The most bytes of a build id the kernel reports (`BUILD_ID_SIZE_MAX`): a SHA-1.
pub const BUILD_ID_MAX: usize = 20;

/// A build id of 1 to 20 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BuildId {
    len: u8,
    bytes: [u8; BUILD_ID_MAX],
}

impl BuildId {
    /// `bytes` as a build id; `None` when empty or longer than the kernel reports.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > BUILD_ID_MAX {
            return None;
        }
        let mut b = [0u8; BUILD_ID_MAX];
        b[..bytes.len()].copy_from_slice(bytes);
        Some(Self {
            len: bytes.len() as u8,
            bytes: b,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// As protojson writes `bytes`: standard base64, padded.
    pub fn base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.as_bytes())
    }

    /// Lower-case hex, as `readelf -n` and `file` write it.
    pub fn hex(&self) -> String {
        hex(self.as_bytes())
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[derive(Debug, thiserror::Error)]
pub enum BuildIdError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not an ELF file")]
    NotElf,
    #[error("its ELF header is malformed: {0}")]
    Malformed(&'static str),
}

/// The `NT_GNU_BUILD_ID` note of the ELF file at `path`, from its `PT_NOTE` segments (what
/// the loader maps, and the kernel reads); `None` when it has none.
pub fn read(path: &Path) -> Result<Option<BuildId>, BuildIdError> {
    let file = File::open(path)?;
    read_from(&file)
}

/// The most bytes of notes read from one `PT_NOTE` segment: a build id note is among the
/// first of a few hundred bytes; a segment this large is not an ordinary binary's.
const NOTES_MAX: u64 = 64 * 1024;
/// Program headers read at most (`e_phnum` is a 16-bit count).
const PHNUM_MAX: u64 = 512;

fn read_from(file: &File) -> Result<Option<BuildId>, BuildIdError> {
    let mut ident = [0u8; 64];
    let n = read_at_most(file, &mut ident, 0)?;
    let ident = &ident[..n];
    if ident.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(BuildIdError::NotElf);
    }
    let elf = Elf {
        class64: match ident.get(4) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err(BuildIdError::Malformed("unknown class")),
        },
        big_endian: match ident.get(5) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err(BuildIdError::Malformed("unknown byte order")),
        },
    };
    // e_phoff, e_phentsize, e_phnum.
    let (phoff, phentsize, phnum) = if elf.class64 {
        (
            elf.u64(ident, 0x20),
            elf.u16(ident, 0x36),
            elf.u16(ident, 0x38),
        )
    } else {
        (
            elf.u32(ident, 0x1c).map(u64::from),
            elf.u16(ident, 0x2a),
            elf.u16(ident, 0x2c),
        )
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return Err(BuildIdError::Malformed("truncated header"));
    };
    let min_entry = if elf.class64 { 56 } else { 32 };
    if usize::from(phentsize) < min_entry {
        return Err(BuildIdError::Malformed("program header entries too small"));
    }
    let table_len = u64::from(phentsize) * u64::from(phnum).min(PHNUM_MAX);
    let mut table = vec![0u8; table_len as usize];
    let n = read_at_most(file, &mut table, phoff)?;
    for entry in table[..n].chunks_exact(usize::from(phentsize)) {
        const PT_NOTE: u32 = 4;
        if elf.u32(entry, 0) != Some(PT_NOTE) {
            continue;
        }
        let (offset, size) = if elf.class64 {
            (elf.u64(entry, 8), elf.u64(entry, 32))
        } else {
            (
                elf.u32(entry, 4).map(u64::from),
                elf.u32(entry, 16).map(u64::from),
            )
        };
        let (Some(offset), Some(size)) = (offset, size) else {
            continue;
        };
        let mut notes = vec![0u8; size.min(NOTES_MAX) as usize];
        let n = read_at_most(file, &mut notes, offset)?;
        if let Some(id) = elf.gnu_build_id(&notes[..n]) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Reads what there is of `buf.len()` bytes at `offset` (less at the end of the file).
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// An ELF file's class and byte order: how its numbers read.
struct Elf {
    class64: bool,
    big_endian: bool,
}

impl Elf {
    fn u16(&self, b: &[u8], at: usize) -> Option<u16> {
        let a: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }

    fn u32(&self, b: &[u8], at: usize) -> Option<u32> {
        let a: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    fn u64(&self, b: &[u8], at: usize) -> Option<u64> {
        let a: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(if self.big_endian {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        })
    }

    /// The `GNU` note of type `NT_GNU_BUILD_ID` among `notes` (each: name size, descriptor
    /// size, type, then the name and the descriptor, each padded to 4 bytes).
    fn gnu_build_id(&self, notes: &[u8]) -> Option<BuildId> {
        const NT_GNU_BUILD_ID: u32 = 3;
        let pad = |n: usize| n.checked_add(3).map(|n| n & !3);
        let mut at = 0usize;
        while at + 12 <= notes.len() {
            let namesz = self.u32(notes, at)? as usize;
            let descsz = self.u32(notes, at + 4)? as usize;
            let kind = self.u32(notes, at + 8)?;
            let name_at = at + 12;
            let desc_at = name_at.checked_add(pad(namesz)?)?;
            let end = desc_at.checked_add(pad(descsz)?)?;
            let name = notes.get(name_at..name_at + namesz)?;
            if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
                return BuildId::new(notes.get(desc_at..desc_at + descsz)?);
            }
            at = end;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn build_ids_are_written_as_protojson_and_readelf_write_them() {
        let id = BuildId::new(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]).expect("6 bytes");
        assert_eq!(id.as_bytes(), [0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]);
        assert_eq!(id.base64(), "3q2+7wAB");
        assert_eq!(id.hex(), "deadbeef0001");
        let sha1: Vec<u8> = (0u8..20).collect();
        let id = BuildId::new(&sha1).expect("20 bytes");
        assert_eq!(id.base64(), "AAECAwQFBgcICQoLDA0ODxAREhM=");
        assert_eq!(id.hex(), "000102030405060708090a0b0c0d0e0f10111213");
        assert_eq!(BuildId::new(&[]), None);
        assert_eq!(
            BuildId::new(&[0; 21]),
            None,
            "longer than the kernel reports"
        );
    }

    /// A 64-bit little-endian ELF file with one `PT_NOTE` segment holding `notes`.
    fn elf64(notes: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // ELFCLASS64
        f[5] = 1; // little-endian
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        f[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
        let notes_at = 64 + 2 * 56;
        // A PT_LOAD first, then the PT_NOTE.
        let mut load = vec![0u8; 56];
        load[..4].copy_from_slice(&1u32.to_le_bytes());
        let mut note = vec![0u8; 56];
        note[..4].copy_from_slice(&4u32.to_le_bytes());
        note[8..16].copy_from_slice(&(notes_at as u64).to_le_bytes());
        note[32..40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        f.extend(load);
        f.extend(note);
        f.extend(notes);
        f
    }

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend((name.len() as u32).to_le_bytes());
        n.extend((desc.len() as u32).to_le_bytes());
        n.extend(kind.to_le_bytes());
        n.extend(name);
        n.resize(n.len().next_multiple_of(4), 0);
        n.extend(desc);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    }

    fn read_bytes(bytes: &[u8]) -> Result<Option<BuildId>, BuildIdError> {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(bytes).expect("write");
        read_from(&f)
    }

    #[test]
    fn the_gnu_build_id_note_is_found_after_other_notes() {
        let id: Vec<u8> = (1u8..=20).collect();
        let mut notes = note(b"GNU\0", 1, &[0; 16]); // NT_GNU_ABI_TAG
        notes.extend(note(b"stapsdt\0", 3, &[7; 5])); // type 3, another owner
        notes.extend(note(b"GNU\0", 3, &id));
        let got = read_bytes(&elf64(&notes)).expect("reads").expect("has one");
        assert_eq!(got.as_bytes(), id);
        // None at all.
        assert_eq!(
            read_bytes(&elf64(&note(b"GNU\0", 1, &[0; 16]))).expect("reads"),
            None
        );
    }

    #[test]
    fn malformed_files_are_errors_or_have_no_build_id_never_a_panic() {
        assert!(matches!(
            read_bytes(b"#!/bin/sh\n"),
            Err(BuildIdError::NotElf)
        ));
        assert!(matches!(read_bytes(b""), Err(BuildIdError::NotElf)));
        let mut bad_class = elf64(&[]);
        bad_class[4] = 9;
        assert!(matches!(
            read_bytes(&bad_class),
            Err(BuildIdError::Malformed(_))
        ));
        // Cut anywhere: a note's sizes running past the segment, the table past the end.
        let id: Vec<u8> = (1u8..=20).collect();
        let whole = elf64(&note(b"GNU\0", 3, &id));
        for cut in 0..whole.len() {
            let _ = read_bytes(&whole[..cut]);
        }
        let mut huge = note(b"GNU\0", 3, &id);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read_bytes(&elf64(&huge)).expect("reads"), None);
    }

    #[test]
    fn this_test_binary_reads_without_error() {
        // Whether the linker gave it a build id depends on the toolchain.
        read(Path::new("/proc/self/exe")).expect("an ELF file");
    }
}
