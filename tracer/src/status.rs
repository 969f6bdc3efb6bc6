//! `tracer status`: what this kernel runs (each program type, and why not), where the
//! hooks of the default profile and of the given policies would run, without tracing
//! anything. The agent logs the same at start.

use std::{fmt::Write as _, path::PathBuf};

use crate::{
    kernel::{
        btf::KernelBtf,
        features::{self, Placement},
        privileges, tracefs,
    },
    loader,
    policy::{self, compile::Ids, facts::Facts},
};

pub struct Config {
    pub tracing_policies: Vec<PathBuf>,
    pub syscall_raw_tracepoints: bool,
    pub disable_kprobes: bool,
    /// Function hooks on kprobes even where the kernel has fentry.
    pub disable_fentry: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
    #[error(transparent)]
    Btf(#[from] crate::kernel::btf::BtfError),
    #[error(transparent)]
    Load(#[from] loader::LoadError),
}

/// The report, as text; `Ok(false)` in the second place when a policy would not load.
pub fn report(config: &Config) -> Result<(String, bool), StatusError> {
    privileges::check()?;
    if let Err(e) = tracefs::ensure_mounted() {
        tracing::warn!("{e}");
    }
    let resolved = KernelBtf::from_sys()?.resolve()?;
    let mut ebpf = loader::object(&resolved, &loader::Settings::default())?;
    let types = features::probe(&mut ebpf);
    let mut out = String::new();
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into());
    let _ = writeln!(out, "kernel {release}\n");
    let _ = writeln!(out, "{:<16} {:<5} note", "program type", "works");
    for (t, r) in &types.0 {
        let _ = match r {
            Ok(()) => writeln!(out, "{:<16} yes", t.name()),
            Err(why) => writeln!(out, "{:<16} no    {why}", t.name()),
        };
    }
    let placement = Placement::new(
        &types,
        resolved.offsets.present,
        config.syscall_raw_tracepoints,
        config.disable_kprobes,
        config.disable_fentry,
    );
    let facts = Facts::new(
        policy::facts::Kernel::new(&placement),
        std::path::Path::new(tracefs::TRACEFS),
    );
    let _ = writeln!(out, "\nhooks");
    for hook in loader::lifecycle_hooks(&resolved) {
        let _ = writeln!(
            out,
            "  process lifecycle: {} on the raw tracepoint (program {})",
            hook.tracepoint, hook.program
        );
    }
    let _ = writeln!(
        out,
        "  policies' syscall hooks run on {}",
        placement.syscall_text()
    );
    let _ = writeln!(out, "  kprobes: {}", placement.kprobes_text());
    let mut all_ok = true;
    let mut ids = Ids::default();
    let mut hooks = 0;
    for file in &config.tracing_policies {
        let docs = match policy::parse::file(file) {
            Ok(docs) => docs,
            Err(errors) => {
                all_ok = false;
                for e in errors {
                    let _ = writeln!(out, "\n{e}");
                }
                continue;
            }
        };
        for (id, doc) in docs.iter().enumerate() {
            let name = doc.spec.name.as_str();
            match policy::compile::compile(&doc.spec, id as u32, &mut ids, &facts) {
                Ok(compiled) if compiled.hooks.is_empty() && !compiled.loader => {
                    all_ok = false;
                    let _ = writeln!(
                        out,
                        "\npolicy {name} ({}:{}) would be refused: none of its hooks can run here",
                        file.display(),
                        doc.first_line
                    );
                    for f in &compiled.unplaced {
                        let _ = writeln!(out, "  {f}");
                    }
                }
                Ok(compiled) => {
                    let _ = writeln!(out, "\npolicy {name} ({})", file.display());
                    if compiled.loader {
                        let _ = writeln!(
                            out,
                            "  loader: process_loader events from the kernel's perf mmap records (no hook)"
                        );
                    }
                    for h in &compiled.hooks {
                        let _ = writeln!(out, "  {}", h.runs_on());
                    }
                    for f in &compiled.unplaced {
                        let _ = writeln!(out, "  {}: does not run here: {}", f.hook, f.reason);
                    }
                    hooks += compiled.hooks.len();
                }
                Err(e) => {
                    all_ok = false;
                    let _ = writeln!(
                        out,
                        "\npolicy {name} ({}:{}) would be refused: {e}",
                        file.display(),
                        doc.first_line
                    );
                }
            }
        }
    }
    if !config.tracing_policies.is_empty() {
        let cap = loader::Capacity::default();
        let _ = writeln!(
            out,
            "\n{hooks} hooks in all; by default the kernel's maps hold {} hooks and {} hook points (--policy-capacity, --policy-hook-points)",
            cap.hooks, cap.hook_points
        );
    }
    Ok((out, all_ok))
}
