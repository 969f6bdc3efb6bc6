//! Runs the agent inside a distribution kernel under qemu (software emulation), so that
//! the same binary is proven on kernels whose struct layouts and tracepoints differ from
//! the host's. `cargo xtask test` downloads the kernels and names them in
//! `TRACER_VM_KERNELS` (`name=path/to/vmlinuz,...`).
//!
//! The guest is an initramfs: busybox, the agent and the C libraries it links, and an
//! `/init` script given by the test. The script's output comes back on the serial
//! console.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Kernels to test on, from `TRACER_VM_KERNELS`.
pub fn kernels() -> Vec<(String, PathBuf)> {
    std::env::var("TRACER_VM_KERNELS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(name, path)| (name.to_owned(), PathBuf::from(path)))
        .collect()
}

/// A newc-format cpio archive, the format of an initramfs. Each entry's directories are
/// written before it, once.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
    dirs: std::collections::BTreeSet<String>,
    /// Libraries written, each once.
    files: std::collections::BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let header = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.buf.extend_from_slice(header.as_bytes());
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// The directories above `name`, those not written yet.
    fn parents(&mut self, name: &str) {
        if let Some((parent, _)) = name.trim_start_matches('/').rsplit_once('/') {
            self.dir(parent);
        }
    }

    pub fn dir(&mut self, name: &str) {
        let name = name.trim_start_matches('/');
        if self.dirs.contains(name) {
            return;
        }
        self.parents(name);
        self.dirs.insert(name.to_owned());
        self.entry(name, 0o040755, &[]);
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.parents(name);
        self.entry(name, 0o100000 | mode, data);
    }

    pub fn symlink(&mut self, name: &str, target: &str) {
        self.parents(name);
        self.entry(name, 0o120777, target.as_bytes());
    }

    /// The host's executable `host` at `name`, with the shared libraries it loads at
    /// their host paths.
    pub fn binary(&mut self, name: &str, host: &Path) {
        let data = std::fs::read(host).unwrap_or_else(|e| panic!("read {}: {e}", host.display()));
        self.file(name, 0o755, &data);
        self.libraries_of(host);
    }

    /// The shared libraries `binary` loads (and the loader itself), at their host paths.
    fn libraries_of(&mut self, binary: &Path) {
        for lib in libraries(binary) {
            let name = lib.to_str().expect("utf-8 path");
            if self.files.insert(name.to_owned()) {
                let data =
                    std::fs::read(&lib).unwrap_or_else(|e| panic!("read {}: {e}", lib.display()));
                self.file(name, 0o755, &data);
            }
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.buf
    }
}

/// The shared libraries `binary` loads (and the loader itself), from `ldd`.
fn libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("run ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Builds the guest: busybox as `/bin/busybox`, the agent as `/tracer` with its
/// libraries, and `init` as `/init`.
pub fn initramfs(agent: &Path, init: &str) -> Vec<u8> {
    initramfs_with(agent, init, Cpio::default())
}

/// [`initramfs`] with the entries of `c` before it.
pub fn initramfs_with(agent: &Path, init: &str, mut c: Cpio) -> Vec<u8> {
    for d in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "lib",
        "lib64",
        "lib/x86_64-linux-gnu",
        "etc",
    ] {
        c.dir(d);
    }
    let busybox = std::fs::read("/bin/busybox")
        .expect("/bin/busybox (Debian's busybox-static; `cargo xtask test` installs it)");
    c.file("bin/busybox", 0o755, &busybox);
    c.binary("tracer", agent);
    c.file("init", 0o755, init.as_bytes());
    c.finish()
}

/// Boots `kernel` with `initramfs` and returns what the guest wrote on its console.
pub fn boot(kernel: &Path, initramfs: &[u8], timeout: Duration) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let initrd = dir.path().join("initrd.cpio");
    std::fs::File::create(&initrd)
        .and_then(|mut f| f.write_all(initramfs))
        .expect("write the initramfs");
    let console_path = dir.path().join("console");
    let console = std::fs::File::create(&console_path).expect("create the console file");
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "2048",
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 rdinit=/init panic=-1 quiet"])
        .stdin(Stdio::null())
        // To a file, read at the end: a pipe nobody reads while the guest runs fills up
        // and stalls the guest's console.
        .stdout(console.try_clone().expect("console file"))
        .stderr(console.try_clone().expect("console file"))
        .spawn()
        .expect(
            "start qemu-system-x86_64 (Debian's qemu-system-x86; `cargo xtask test` installs it)",
        );
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait for qemu").is_some() {
            break;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.wait();
    let out = std::fs::read(&console_path).expect("read the console file");
    String::from_utf8_lossy(&out).replace('\r', "")
}

/// The text between `===NAME` and the next `===` line of a console log.
pub fn section<'a>(console: &'a str, name: &str) -> Option<&'a str> {
    let start = console.find(&format!("==={name}\n"))? + name.len() + 4;
    let rest = &console[start..];
    Some(&rest[..rest.find("\n===").unwrap_or(rest.len())])
}

/// A section the guest wrote as `gzip | base64`, decoded; `None` when it is missing or
/// does not decode (a console cut short).
pub fn section_gz(console: &str, name: &str) -> Option<String> {
    use base64::Engine as _;
    use std::io::Read as _;
    let text: String = section(console, name)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_string(&mut out)
        .ok()?;
    Some(out)
}
