//! Builds the eBPF programs (`tracer-ebpf`) for the bpf target with aya-build and leaves
//! the object in OUT_DIR, where `src/loader.rs` embeds it: the agent ships as one file.
//!
//! Needs the nightly toolchain's `rust-src` and `bpf-linker`; `cargo xtask setup`
//! installs both.

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    let ebpf_dir = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow!("the agent crate has no parent directory"))?
        .join("tracer-ebpf");
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("path {} is not UTF-8", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF programs failed; run `cargo xtask setup` to install the nightly rust-src and bpf-linker")
}
