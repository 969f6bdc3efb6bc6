//! `cargo xtask image`: the agent's container image, built without a daemon (buildah),
//! from scratch: the agent's binary (debug info stripped), exactly the shared libraries
//! it loads (as `ldd` resolves them), and the CA bundle for collectors over TLS. No shell,
//! no package manager. Written as an OCI archive under `target/image/`, named with the
//! tag the manifests use (`ghcr.io/tracer/tracer:VERSION`), with the OCI annotations of
//! its version, revision and source.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::setup::{cargo, output, status, workspace_root};

/// The image's name, without its tag; the tag is the workspace's version.
pub const REPOSITORY: &str = "ghcr.io/tracer/tracer";

/// Where the project's source lives (the OCI `source` annotation).
const SOURCE: &str = "https://github.com/tracer/tracer";

/// The port of `/metrics`, `/healthz` and `/readyz` in the manifests.
const METRICS_PORT: &str = "2112/tcp";

pub struct Options {
    /// Build the image from the debug binary (the tests: quicker to build).
    pub debug: bool,
    /// Push the archive to this reference (`registry/name:tag`) once built.
    pub push: Option<String>,
}

/// The image's full reference: `ghcr.io/tracer/tracer:VERSION`.
pub fn reference() -> String {
    format!("{REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// Builds the image; returns the archive's path.
pub fn image(o: &Options) -> anyhow::Result<PathBuf> {
    install_buildah()?;
    let profile = if o.debug { "debug" } else { "release" };
    let mut build = cargo();
    build.args(["build", "--package", "tracer", "--bin", "tracer"]);
    if !o.debug {
        build.arg("--release");
    }
    status(&mut build)?;
    let root = workspace_root();
    let bin = root.join("target").join(profile).join("tracer");
    let dir = root.join("target/image");
    let rootfs = dir.join("rootfs");
    if rootfs.exists() {
        fs::remove_dir_all(&rootfs)
            .with_context(|| format!("cannot clear {}", rootfs.display()))?;
    }
    fs::create_dir_all(&rootfs).with_context(|| format!("cannot create {}", rootfs.display()))?;
    stage(&bin, &rootfs)?;

    let version = env!("CARGO_PKG_VERSION");
    let revision = output(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&root),
    )
    .map(|s| s.trim().to_owned())
    .unwrap_or_else(|_| "unknown".into());
    let suffix = if o.debug { "-debug" } else { "" };
    let archive = dir.join(format!("tracer-{version}{suffix}.oci.tar"));
    let _ = fs::remove_file(&archive);
    let buildah = Buildah::new(&dir);
    let ctr = buildah.output(&["from", "--quiet", "scratch"])?;
    let ctr = ctr.trim();
    let built = (|| {
        buildah.run(&["copy", ctr, &rootfs.display().to_string(), "/"])?;
        let mut config = vec![
            "config".to_owned(),
            "--entrypoint".into(),
            r#"["/usr/bin/tracer"]"#.into(),
            "--cmd".into(),
            "run".into(),
            // Root: the capabilities the agent needs are granted to uid 0 only (Kubernetes
            // gives none to another user without ambient capabilities).
            "--user".into(),
            "0:0".into(),
            "--workingdir".into(),
            "/".into(),
            "--port".into(),
            METRICS_PORT.into(),
            "--os".into(),
            "linux".into(),
            "--arch".into(),
            "amd64".into(),
        ];
        for (k, v) in [
            ("org.opencontainers.image.title", "tracer"),
            (
                "org.opencontainers.image.description",
                "Runtime security tracer: eBPF events of processes, syscalls, files and connections, by pod",
            ),
            ("org.opencontainers.image.version", version),
            ("org.opencontainers.image.revision", &revision),
            ("org.opencontainers.image.source", SOURCE),
            ("org.opencontainers.image.licenses", "MIT OR Apache-2.0"),
        ] {
            for flag in ["--label", "--annotation"] {
                config.push(flag.into());
                config.push(format!("{k}={v}"));
            }
        }
        config.push(ctr.to_owned());
        let config: Vec<&str> = config.iter().map(String::as_str).collect();
        buildah.run(&config)?;
        buildah.run(&[
            "commit",
            "--quiet",
            "--format",
            "oci",
            // gzip layers (buildah leaves them uncompressed by default).
            "--disable-compression=false",
            ctr,
            &format!("oci-archive:{}:{}", archive.display(), reference()),
        ])
    })();
    let _ = buildah.run(&["rm", ctr]);
    built?;
    let size = fs::metadata(&archive)
        .with_context(|| format!("buildah wrote no {}", archive.display()))?
        .len();
    println!(
        "xtask: image {} ({:.1} MiB) written to {}",
        reference(),
        size as f64 / (1024.0 * 1024.0),
        archive.display()
    );
    if let Some(to) = &o.push {
        buildah.run(&[
            "push",
            &format!("oci-archive:{}", archive.display()),
            &format!("docker://{to}"),
        ])?;
        println!("xtask: pushed to {to}");
    }
    Ok(archive)
}

/// The image's files in `rootfs`: the binary without its debug info, each library `ldd`
/// names at the path it was found, the CA bundle.
fn stage(bin: &Path, rootfs: &Path) -> anyhow::Result<()> {
    let dest = rootfs.join("usr/bin/tracer");
    copy(bin, &dest)?;
    status(Command::new("strip").arg("--strip-debug").arg(&dest))
        .context("strip (binutils) removes the binary's debug info")?;
    for lib in libraries(bin)? {
        copy(&lib, &rootfs.join(lib.strip_prefix("/").unwrap_or(&lib)))?;
    }
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if ca.is_file() {
        copy(ca, &rootfs.join("etc/ssl/certs/ca-certificates.crt"))?;
    }
    // Mount points of the manifest's volumes, so that a read-only root needs no new
    // directory (runtimes create them, but not on every read-only root).
    for d in [
        "proc",
        "sys",
        "tmp",
        "etc/tracer/policies",
        "var/log/tracer",
        "var/run/secrets/kubernetes.io/serviceaccount",
    ] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    Ok(())
}

/// The shared libraries `bin` loads, the dynamic loader included: `ldd`'s paths.
fn libraries(bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let text = output(Command::new("ldd").arg(bin)).context("ldd lists the libraries")?;
    let mut libs = Vec::new();
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    if libs.is_empty() {
        bail!("ldd found no library for {}: is it static?", bin.display());
    }
    Ok(libs)
}

/// Copies `from` (following links: the file itself) to `to`, with its directories.
fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// buildah with the project's own storage under `target/image` (vfs: no overlay mount
/// needed), so that nothing of the host's container storage is used or left behind.
struct Buildah {
    root: PathBuf,
    runroot: PathBuf,
}

impl Buildah {
    fn new(dir: &Path) -> Self {
        Self {
            root: dir.join("storage"),
            runroot: dir.join("run"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "vfs"])
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        status(&mut self.command(args))
    }

    fn output(&self, args: &[&str]) -> anyhow::Result<String> {
        output(&mut self.command(args))
    }
}

/// buildah (and runc, which runs the image in the deployment test) from Debian's
/// packages when missing.
pub fn install_buildah() -> anyhow::Result<()> {
    crate::setup::apt_install(&[("buildah", "buildah"), ("runc", "runc")])
}
