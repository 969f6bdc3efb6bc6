//! GNU build ids: the kernel's (in each mmap2 record where it can give one), or read from
//! the mapped file's ELF notes where it cannot (kernels before 5.12, a page the kernel
//! could not read without faulting). Written as base64 in the JSON (protojson's `bytes`)
//! and as hex for people (`readelf -n`'s form).

use std::{fs::File, path::Path};

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

/// A build id as the JSON writes it (base64) in hex, as `readelf -n` writes it; the text
/// as it is where it is not base64.
pub fn hex_of_base64(id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(id)
        .map_or_else(|_| id.to_owned(), |bytes| hex(&bytes))
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
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
    #[error("not an ELF file the tracer reads: {0}")]
    Elf(#[from] object::read::Error),
}

/// The `NT_GNU_BUILD_ID` note of the ELF file at `path` (from its `PT_NOTE` segments, what
/// the loader maps and the kernel reads, else its sections); `None` when it has none.
/// Only the headers and notes are read, not the whole file.
pub fn read(path: &Path) -> Result<Option<BuildId>, BuildIdError> {
    let file = File::open(path)?;
    read_from(&file)
}

fn read_from(file: &File) -> Result<Option<BuildId>, BuildIdError> {
    use object::Object as _;
    let cache = object::ReadCache::new(file);
    let elf = object::File::parse(&cache)?;
    Ok(elf.build_id()?.and_then(BuildId::new))
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

    fn read_bytes(bytes: &[u8]) -> Result<Option<BuildId>, BuildIdError> {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(bytes).expect("write");
        read_from(&f)
    }

    /// libc's build id, as its `.note.gnu.build-id` section holds it (found here through
    /// the program headers, as the loader does).
    #[test]
    fn a_librarys_build_id_is_its_gnu_note() {
        let lib = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
        if !lib.exists() {
            println!("SKIPPED: no {}", lib.display());
            return;
        }
        let id = read(lib)
            .expect("reads")
            .expect("Debian's libc has a build id");
        let data = std::fs::read(lib).expect("libc");
        let elf = object::File::parse(&*data).expect("ELF");
        use object::{Object as _, ObjectSection as _};
        let section = elf
            .section_by_name(".note.gnu.build-id")
            .expect("the note's section");
        let note = section.data().expect("its bytes");
        // Name size 4 ("GNU\0"), descriptor size, type 3, the name, the id.
        assert_eq!(&note[16..], id.as_bytes());
    }

    #[test]
    fn malformed_files_are_errors_never_a_panic() {
        assert!(matches!(
            read_bytes(b"#!/bin/sh\n"),
            Err(BuildIdError::Elf(_))
        ));
        assert!(matches!(read_bytes(b""), Err(BuildIdError::Elf(_))));
        // This binary cut anywhere in its first pages: an error or no id, never a panic.
        let me = std::fs::read("/proc/self/exe").expect("this binary");
        for cut in (0..me.len().min(16 * 1024)).step_by(7) {
            let _ = read_bytes(&me[..cut]);
        }
    }

    #[test]
    fn this_test_binary_reads_without_error() {
        // Whether the linker gave it a build id depends on the toolchain.
        read(Path::new("/proc/self/exe")).expect("an ELF file");
    }
}
