//! Kernels for the VM tests: Debian's cloud kernels (bookworm's 6.1 and 6.12), booted
//! under qemu by `integration/tests/vm.rs`. Downloaded once into `target/vm/`, with
//! qemu and a static busybox from Debian's packages.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::setup::{find_file, status, workspace_root};

/// (name, Debian meta-package) of each kernel tested.
pub const KERNELS: [(&str, &str); 2] = [
    ("debian-6.1", "linux-image-cloud-amd64"),
    ("debian-6.12", "linux-image-6.12-cloud-amd64"),
];

/// Makes sure qemu, busybox and the kernels are here; returns `TRACER_VM_KERNELS`.
pub fn prepare() -> anyhow::Result<String> {
    let mut updated = false;
    let have_qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_qemu || !std::path::Path::new("/bin/busybox").exists() {
        apt_update(&mut updated)?;
        eprintln!("xtask: installing qemu-system-x86 and busybox-static");
        status(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(["qemu-system-x86", "busybox-static"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let mut list = Vec::new();
    for (name, meta) in KERNELS {
        list.push(format!(
            "{name}={}",
            kernel(name, meta, &mut updated)?.display()
        ));
    }
    Ok(list.join(","))
}

fn apt_update(updated: &mut bool) -> anyhow::Result<()> {
    if !*updated {
        status(Command::new("apt-get").args(["update", "-qq"]))?;
        *updated = true;
    }
    Ok(())
}

fn kernel(name: &str, meta: &str, updated: &mut bool) -> anyhow::Result<PathBuf> {
    let dir = workspace_root().join("target/vm").join(name);
    let vmlinuz = dir.join("vmlinuz");
    if vmlinuz.exists() {
        return Ok(vmlinuz);
    }
    // The versioned package the meta-package points at.
    let mut package = depends(meta)?;
    if package.is_none() {
        apt_update(updated)?;
        package = depends(meta)?;
    }
    let package = package.with_context(|| format!("apt-cache knows no package {meta}"))?;
    eprintln!("xtask: downloading kernel {package} for the VM tests");
    let root = dir.join("root");
    std::fs::create_dir_all(&root)?;
    status(
        Command::new("apt-get")
            .args(["download", "-qq", &package])
            .current_dir(&dir),
    )?;
    let deb = find_file(&dir, |n| n.ends_with(".deb"))?.with_context(|| {
        format!(
            "apt-get download {package} left no .deb in {}",
            dir.display()
        )
    })?;
    status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let image = find_file(&root.join("boot"), |n| n.starts_with("vmlinuz-"))?
        .with_context(|| format!("{package} has no /boot/vmlinuz-*"))?;
    std::fs::rename(&image, &vmlinuz)?;
    std::fs::remove_dir_all(&root)?;
    std::fs::remove_file(&deb)?;
    Ok(vmlinuz)
}

fn depends(meta: &str) -> anyhow::Result<Option<String>> {
    let out = Command::new("apt-cache").args(["depends", meta]).output()?;
    if !out.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let pkg = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|p| p.trim().to_owned());
    if pkg.as_deref().is_some_and(|p| p.starts_with('<')) {
        bail!("{meta} depends on a virtual package: {pkg:?}");
    }
    Ok(pkg)
}
