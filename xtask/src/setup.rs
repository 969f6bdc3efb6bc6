//! What building the eBPF programs needs, installed once:
//! - the nightly toolchain's `rust-src` (the bpf target's `core` is built from source);
//! - `bpf-linker`, built against the nightly's own LLVM (`libLLVM.so` of its sysroot),
//!   with an rpath to it so that it runs without `LD_LIBRARY_PATH`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

const NIGHTLY: &str = "nightly";
const BPF_LINKER_VERSION: &str = "^0.13";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `cargo` of the toolchain running xtask.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// Runs `cmd`, failing with its command line when it fails.
pub fn status(cmd: &mut Command) -> anyhow::Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

/// Runs `cmd` (stdin empty) to its end and returns its stdout; fails with its stderr
/// when it fails.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first file in `dir` whose name satisfies `pred`.
pub fn find_file(dir: &Path, pred: impl Fn(&str) -> bool) -> anyhow::Result<Option<PathBuf>> {
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&pred)))
}

/// Installs, from Debian's packages, each `(program, package)` whose program is not on
/// `PATH`.
pub fn apt_install(tools: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(bin, _)| !on_path(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask: installing {} (apt-get install -y)",
        missing.join(", ")
    );
    status(Command::new("apt-get").arg("update").arg("-qq"))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Whether `bin` is a file in a directory of `PATH`.
pub fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(bin).is_file()))
}

pub fn setup() -> anyhow::Result<()> {
    let version = output(Command::new("rustup").args(["run", NIGHTLY, "rustc", "-vV"])).context(
        "the nightly toolchain is needed to build the eBPF programs; install it with \
             `rustup toolchain install nightly`",
    )?;
    rust_src()?;
    bpf_linker(&version)
}

fn rust_src() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: installing the nightly's rust-src");
    status(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

/// `bpf-linker --version` runs: it is installed and finds its LLVM.
fn bpf_linker_works() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn bpf_linker(rustc_version: &str) -> anyhow::Result<()> {
    if bpf_linker_works() {
        return Ok(());
    }
    let llvm_major = rustc_version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("`rustc +nightly -vV` names no LLVM version")?
        .trim()
        .to_owned();
    let sysroot =
        output(Command::new("rustup").args(["run", NIGHTLY, "rustc", "--print", "sysroot"]))?;
    let sysroot_lib = Path::new(sysroot.trim()).join("lib");
    let libllvm = find_file(&sysroot_lib, |n| n.starts_with("libLLVM.so."))?
        .with_context(|| format!("no libLLVM.so.* in {}", sysroot_lib.display()))?;
    // bpf-linker's build looks for `<prefix>/lib/libLLVM.so`.
    let prefix = workspace_root().join("target").join("xtask-llvm");
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("cannot create {}", lib.display()))?;
    let link = lib.join("libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("cannot link {} to {}", link.display(), libllvm.display()))?;
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM {llvm_major} of the nightly ({})",
        libllvm.display()
    );
    status(
        Command::new("rustup")
            .args([
                "run",
                NIGHTLY,
                "cargo",
                "install",
                "bpf-linker",
                "--locked",
                "--force",
            ])
            .args(["--version", BPF_LINKER_VERSION, "--no-default-features"])
            .args(["--features", &format!("llvm-{llvm_major}")])
            .env("LLVM_PREFIX", &prefix)
            .env(
                "RUSTFLAGS",
                format!("-C link-arg=-Wl,-rpath,{}", sysroot_lib.display()),
            ),
    )?;
    if !bpf_linker_works() {
        bail!(
            "bpf-linker was installed but `bpf-linker --version` fails; is ~/.cargo/bin on PATH?"
        );
    }
    Ok(())
}
