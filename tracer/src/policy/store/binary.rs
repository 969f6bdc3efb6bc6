//! Where a uprobe goes in its binary: the file, as the agent sees it, and the file offset
//! of the probed instruction (a symbol's, from the ELF symbol tables).

use std::path::{Path, PathBuf};

use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};

use crate::policy::spec::{Uprobe, UprobeAt};

/// Why a uprobe's place could not be found.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an ELF binary this tracer reads: {source}")]
    NotElf {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
    #[error(
        "{path} has no function `{symbol}` in its symbol tables (`nm -D {path}` lists the dynamic ones; a stripped binary keeps only those)"
    )]
    NoSymbol { path: PathBuf, symbol: String },
    #[error("{path}: `{symbol}` is at {address:#x}, in no loaded segment of the file")]
    NotLoaded {
        path: PathBuf,
        symbol: String,
        address: u64,
    },
}

/// The file a uprobe's `path` names, as the agent sees it: `/procRoot/...` is the host's
/// `/proc` (where Tetragon's DaemonSet mounts it; the tracer's mounts it at `/proc`).
pub fn host_path(path: &str, proc_root: &Path) -> PathBuf {
    match path.strip_prefix("/procRoot/") {
        Some(rest) => proc_root.join(rest),
        None => PathBuf::from(path),
    }
}

/// The file and the file offset uprobe `u` is attached at.
pub fn place(u: &Uprobe, proc_root: &Path) -> Result<(PathBuf, u64), BinaryError> {
    let path = host_path(&u.path, proc_root);
    let offset = match &u.at {
        UprobeAt::Offset(o) => *o,
        UprobeAt::Symbol(symbol) => symbol_offset(&path, symbol)?,
    };
    Ok((path, offset))
}

/// The file offset of function `symbol` of the ELF file at `path`: from its symbol table
/// or, for a stripped binary, its dynamic one; the address mapped back to the file
/// through the loaded segment that holds it.
pub fn symbol_offset(path: &Path, symbol: &str) -> Result<u64, BinaryError> {
    let data = std::fs::read(path).map_err(|source| BinaryError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file = object::File::parse(&*data).map_err(|source| BinaryError::NotElf {
        path: path.to_owned(),
        source,
    })?;
    let address = file
        .symbols()
        .chain(file.dynamic_symbols())
        .find(|s| s.is_definition() && s.address() != 0 && s.name() == Ok(symbol))
        .map(|s| s.address())
        .ok_or_else(|| BinaryError::NoSymbol {
            path: path.to_owned(),
            symbol: symbol.to_owned(),
        })?;
    file.segments()
        .find_map(|seg| {
            let (file_offset, file_size) = seg.file_range();
            let start = seg.address();
            (address >= start && address - start < file_size).then(|| file_offset + address - start)
        })
        .ok_or_else(|| BinaryError::NotLoaded {
            path: path.to_owned(),
            symbol: symbol.to_owned(),
            address,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary's own `main` (an exported symbol of every Rust test binary is not
    /// guaranteed; `main` is, in the symbol table of an unstripped one).
    #[test]
    fn finds_a_function_of_the_running_binary() {
        let exe = std::env::current_exe().expect("current exe");
        let offset = symbol_offset(&exe, "main").expect("main found");
        assert!(offset > 0);
        let len = std::fs::metadata(&exe).expect("metadata").len();
        assert!(offset < len, "{offset:#x} past the file ({len} bytes)");
    }

    #[test]
    fn says_which_symbol_is_missing() {
        let exe = std::env::current_exe().expect("current exe");
        let e = symbol_offset(&exe, "no_such_function_here").unwrap_err();
        assert!(
            e.to_string()
                .contains("no function `no_such_function_here`"),
            "{e}"
        );
        let e = symbol_offset(Path::new("/no/such/binary"), "main").unwrap_err();
        assert!(e.to_string().starts_with("reading /no/such/binary"), "{e}");
    }

    #[test]
    fn proc_root_is_the_hosts_proc() {
        assert_eq!(
            host_path("/procRoot/1/root/usr/bin/bash", Path::new("/proc")),
            Path::new("/proc/1/root/usr/bin/bash")
        );
        assert_eq!(
            host_path("/usr/bin/bash", Path::new("/proc")),
            Path::new("/usr/bin/bash")
        );
    }
}
