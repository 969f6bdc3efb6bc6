//! Addresses to symbols, by blazesym: kernel addresses from `/proc/kallsyms` (sorted,
//! searched for the last symbol at or below the address), user addresses from the
//! process's mappings (`/proc/PID/maps`, read now) and the ELF symbols of the file each
//! address is mapped from. What blazesym parses it keeps: the kernel's symbols (read
//! again once they are [`KALLSYMS_MAX_AGE`] old, so that programs and modules loaded
//! since are found), and each binary's symbols (until [`MAX_PROCESSES`] processes have
//! been asked about: the cache then starts anew, so that it does not grow for ever
//! with the processes that come and go).

use std::{
    collections::HashSet,
    path::PathBuf,
    time::{Duration, Instant},
};

use blazesym::{
    MaybeDefault, Pid,
    symbolize::{
        Input, Symbolized,
        source::{Kernel, Process, Source},
    },
};

/// The kernel's symbols are read again once this old (programs and modules come and go).
pub const KALLSYMS_MAX_AGE: Duration = Duration::from_secs(60);
/// Processes whose binaries' symbols are kept before the user-space cache starts anew.
pub const MAX_PROCESSES: usize = 1024;

/// What an address is: the symbol it falls in and how far into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub symbol: String,
    /// The address minus the symbol's start.
    pub offset: u64,
    /// The file the address is mapped from (user addresses).
    pub module: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SymbolizeError {
    #[error("kernel symbols from {path}: {source}")]
    Kernel {
        path: PathBuf,
        #[source]
        source: blazesym::Error,
    },
    #[error("the mappings of process {pid}: {source}")]
    Process {
        pid: u32,
        #[source]
        source: blazesym::Error,
    },
    #[error("process 0 has no user space")]
    NoProcess,
}

/// The symbolisers, with what they have parsed.
pub struct Symbolizer {
    kallsyms: PathBuf,
    kernel: blazesym::symbolize::Symbolizer,
    kernel_read: Option<Instant>,
    user: blazesym::symbolize::Symbolizer,
    /// The processes asked about since the user-space cache started.
    processes: HashSet<u32>,
    /// Open each mapped file through `/proc/PID/map_files/` (the file the process has,
    /// whatever its mount namespace; needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), or
    /// else by the path in `/proc/PID/maps`.
    map_files: bool,
}

fn symbolizer() -> blazesym::symbolize::Symbolizer {
    blazesym::symbolize::Symbolizer::builder()
        .enable_code_info(false)
        .enable_inlined_fns(false)
        .enable_demangling(false)
        .build()
}

impl Symbolizer {
    /// Kernel symbols from `kallsyms` (`/proc/kallsyms`); user symbols through
    /// `/proc/PID/map_files/` where `map_files`.
    pub fn new(kallsyms: impl Into<PathBuf>, map_files: bool) -> Self {
        Self {
            kallsyms: kallsyms.into(),
            kernel: symbolizer(),
            kernel_read: None,
            user: symbolizer(),
            processes: HashSet::new(),
            map_files,
        }
    }

    /// The symbol of each kernel address (`None` where there is none).
    pub fn kernel(&mut self, addrs: &[u64]) -> Result<Vec<Option<Frame>>, SymbolizeError> {
        if self
            .kernel_read
            .is_none_or(|t| t.elapsed() >= KALLSYMS_MAX_AGE)
        {
            self.kernel = symbolizer();
            self.kernel_read = Some(Instant::now());
        }
        let src = Source::Kernel(Kernel {
            kallsyms: MaybeDefault::Some(self.kallsyms.clone()),
            vmlinux: MaybeDefault::None,
            kaslr_offset: Some(0),
            debug_syms: false,
            ..Kernel::default()
        });
        let syms = self
            .kernel
            .symbolize(&src, Input::AbsAddr(addrs))
            .map_err(|source| SymbolizeError::Kernel {
                path: self.kallsyms.clone(),
                source,
            })?;
        Ok(syms.into_iter().map(|s| frame(s, false)).collect())
    }

    /// The symbol of each address of process `pid`'s user space (`None` where there is
    /// none), from its mappings as they are now.
    pub fn user(&mut self, pid: u32, addrs: &[u64]) -> Result<Vec<Option<Frame>>, SymbolizeError> {
        if pid == 0 {
            // blazesym's `Pid` 0 is the agent itself.
            return Err(SymbolizeError::NoProcess);
        }
        if self.processes.insert(pid) && self.processes.len() > MAX_PROCESSES {
            self.user = symbolizer();
            self.processes.clear();
            self.processes.insert(pid);
        }
        let mut p = Process::new(Pid::from(pid));
        p.debug_syms = false;
        p.perf_map = false;
        p.map_files = self.map_files;
        let syms = self
            .user
            .symbolize(&Source::Process(p), Input::AbsAddr(addrs))
            .map_err(|source| SymbolizeError::Process { pid, source })?;
        Ok(syms.into_iter().map(|s| frame(s, true)).collect())
    }
}

fn frame(s: Symbolized<'_>, with_module: bool) -> Option<Frame> {
    let sym = s.into_sym()?;
    Some(Frame {
        symbol: sym.name.into_owned(),
        offset: sym.offset as u64,
        module: with_module
            .then(|| sym.module.map(|m| m.to_string_lossy().into_owned()))
            .flatten(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_addresses_from_a_kallsyms_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kallsyms");
        // Unsorted, with a module's symbol, as /proc/kallsyms may list them.
        std::fs::write(
            &path,
            "ffffffff81a00100 T entry_SYSCALL_64\n\
             ffffffff81000000 T _stext\n\
             ffffffff81900000 T do_syscall_64\n\
             ffffffff81200000 t __x64_sys_prctl\n\
             ffffffffc0100000 t ext4_file_open\t[ext4]\n",
        )
        .unwrap();
        let mut s = Symbolizer::new(&path, true);
        let frames = s
            .kernel(&[
                0xffff_ffff_8190_0042,
                0xffff_ffff_81a0_0100,
                0xffff_ffff_8120_0010,
                0xffff_ffff_c010_0008,
                0x1000,
            ])
            .unwrap();
        let named = |symbol: &str, offset: u64| {
            Some(Frame {
                symbol: symbol.into(),
                offset,
                module: None,
            })
        };
        assert_eq!(
            frames,
            [
                named("do_syscall_64", 0x42),
                named("entry_SYSCALL_64", 0),
                named("__x64_sys_prctl", 0x10),
                named("ext4_file_open", 8),
                // Below the first symbol.
                None,
            ]
        );
    }

    #[test]
    fn a_missing_kallsyms_file_is_an_error_that_names_it() {
        let mut s = Symbolizer::new("/nonexistent/kallsyms", true);
        let e = s.kernel(&[0xffff_ffff_8100_0000]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/kallsyms"), "{e}");
    }

    #[test]
    fn user_addresses_of_this_process() {
        // A function of this test binary, called so that it is not folded away.
        #[inline(never)]
        fn marker() -> u64 {
            std::hint::black_box(42)
        }
        assert_eq!(marker(), 42);
        let addr = marker as *const () as u64;
        let mut s = Symbolizer::new("/proc/kallsyms", false);
        let frames = s.user(std::process::id(), &[addr + 1]).unwrap();
        let f = frames[0].as_ref().expect("the function's symbol");
        assert!(f.symbol.contains("marker"), "{f:?}");
        assert_eq!(f.offset, 1);
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(f.module.as_deref(), exe.to_str(), "{f:?}");
        assert!(matches!(s.user(0, &[addr]), Err(SymbolizeError::NoProcess)));
    }
}
