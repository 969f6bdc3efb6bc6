//! `cargo xtask test`: everything, in the order that fails fastest.

use std::process::Command;

use anyhow::bail;

use crate::setup::{cargo, status, workspace_root};

/// Each fuzz target's time in `cargo xtask test`.
const FUZZ_SECONDS: u64 = 15;

pub fn test(lint: bool, filter: Option<&str>) -> anyhow::Result<()> {
    if lint {
        status(cargo().args(["fmt", "--all", "--check"]))?;
        status(cargo().args([
            "clippy",
            "--workspace",
            "--exclude",
            "tracer-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        // The kernel programs, for their own target.
        status(
            Command::new("rustup")
                .args(["run", "nightly", "cargo", "clippy", "--release"])
                .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
                .args(["--", "-D", "warnings"])
                .current_dir(workspace_root().join("tracer-ebpf")),
        )?;
    }
    // Unit tests (no privileges needed; those that read the host's BTF say when they skip).
    let mut unit = cargo();
    unit.args([
        "test",
        "--workspace",
        "--exclude",
        "tracer-ebpf",
        "--exclude",
        "integration",
    ]);
    if let Some(f) = filter {
        unit.args(["--", f]);
    }
    status(&mut unit)?;
    // The manifests and the CRD schema, offline.
    crate::manifests::validate()?;
    // A short fuzz run of every target on its seeds (`cargo xtask fuzz` for longer).
    if filter.is_none() {
        eprintln!(
            "xtask: fuzzing every target for {FUZZ_SECONDS} s (cargo xtask fuzz --seconds {FUZZ_SECONDS})"
        );
        crate::fuzz::fuzz(&crate::fuzz::Options {
            seconds: FUZZ_SECONDS,
            runs: None,
            targets: Vec::new(),
            jobs: None,
        })?;
    }

    // Integration tests: the real agent, the real programs, real processes.
    crate::manifests::python_protobuf()?;
    status(cargo().args(["build", "--package", "tracer", "--bin", "tracer"]))?;
    let bin = workspace_root().join("target/debug/tracer");
    if !nix_is_root() {
        bail!(
            "the integration tests load eBPF programs and need root; run `sudo -E cargo xtask test` \
             (or set TRACER_SKIP_PRIVILEGED=1 to skip them, which is reported as a skip)"
        );
    }
    // Debian's kernels under qemu, for the same tests on other kernel layouts.
    let kernels = if std::env::var_os("TRACER_SKIP_VM").is_some() {
        String::new()
    } else {
        crate::vm::prepare()?
    };
    // The agent's image, for the deployment test (runc runs it as the DaemonSet says).
    let image = crate::image::image(&crate::image::Options {
        debug: true,
        push: None,
    })?;
    let mut it = cargo();
    it.args(["test", "--package", "integration", "--", "--test-threads=1"])
        .env("TRACER_BIN", &bin)
        .env("TRACER_IMAGE", &image)
        .env("TRACER_VM_KERNELS", kernels);
    if let Some(f) = filter {
        it.arg(f);
    }
    status(&mut it)
}

fn nix_is_root() -> bool {
    if std::env::var_os("TRACER_SKIP_PRIVILEGED").is_some() {
        return true; // the tests themselves print the skip
    }
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `cargo xtask integration-test`: the privileged tests on each kernel of `kernels`
/// (all when empty), one line of result per kernel at the end.
pub fn integration(kernels: &[String]) -> anyhow::Result<()> {
    let known: Vec<&str> = std::iter::once("host")
        .chain(crate::vm::KERNELS.iter().map(|(name, _)| *name))
        .collect();
    for k in kernels {
        if !known.contains(&k.as_str()) {
            bail!("no kernel `{k}`: choose among {}", known.join(", "));
        }
    }
    let wanted = |k: &str| kernels.is_empty() || kernels.iter().any(|w| w == k);
    status(cargo().args(["build", "--package", "tracer", "--bin", "tracer"]))?;
    let bin = workspace_root().join("target/debug/tracer");
    if !nix_is_root() {
        bail!(
            "the integration tests load eBPF programs and need root; run `sudo -E cargo xtask integration-test`"
        );
    }
    let mut report = Vec::new();
    if wanted("host") {
        let image = crate::image::image(&crate::image::Options {
            debug: true,
            push: None,
        })?;
        let ok = cargo()
            .args(["test", "--package", "integration"])
            .args([
                "--",
                "--test-threads=1",
                "--skip",
                "on_distribution_kernels",
            ])
            .env("TRACER_BIN", &bin)
            .env("TRACER_IMAGE", &image)
            .status()?
            .success();
        report.push(("host".to_owned(), ok));
    }
    let vms: Vec<&str> = crate::vm::KERNELS
        .iter()
        .map(|(name, _)| *name)
        .filter(|n| wanted(n))
        .collect();
    if !vms.is_empty() {
        let all = crate::vm::prepare()?;
        for entry in all.split(',') {
            let Some((name, _)) = entry.split_once('=') else {
                continue;
            };
            if !vms.contains(&name) {
                continue;
            }
            let ok = cargo()
                .args(["test", "--package", "integration", "--test", "vm"])
                .args(["--", "--test-threads=1", "--nocapture"])
                .env("TRACER_BIN", &bin)
                .env("TRACER_VM_KERNELS", entry)
                .status()?
                .success();
            report.push((name.to_owned(), ok));
        }
    }
    eprintln!();
    for (kernel, ok) in &report {
        eprintln!("xtask: {kernel}: {}", if *ok { "passed" } else { "FAILED" });
    }
    if report.iter().all(|(_, ok)| *ok) {
        Ok(())
    } else {
        bail!("the integration tests failed on some kernel (see above)")
    }
}
