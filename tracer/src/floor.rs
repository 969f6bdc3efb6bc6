//! `tracer floor --tracepoint SUBSYSTEM/EVENT [--ready-file FILE]` (hidden): attaches the
//! object's empty tracepoint program, `probe_tracepoint`, which returns at once, to one
//! tracepoint, and holds it there until SIGINT or SIGTERM. It exists for the floor of
//! `cargo xtask bench --only scale`: what the tracepoint costs a call with any eBPF
//! program on it, measured in the same run as the policies' hooks on it.

use std::path::Path;

use aya::programs::TracePoint;
use nix::sys::signal::{SigSet, Signal};

use crate::{
    kernel::btf::KernelBtf,
    loader::{self, RingSize, chain},
};

/// The object's program that returns at once (`tracer-ebpf/src/hooks/probe.rs`).
const PROGRAM: &str = "probe_tracepoint";

/// Attaches the empty program to `tracepoint` (`syscalls/sys_enter_getppid`), creates
/// `ready_file` once it is attached, and returns when told to stop (removing the file).
pub fn run(tracepoint: &str, ready_file: Option<&Path>) -> Result<(), String> {
    let (category, name) = tracepoint
        .split_once('/')
        .ok_or_else(|| format!("`{tracepoint}` is not SUBSYSTEM/EVENT"))?;
    // Blocked before anything is attached, so that a stop that comes early waits for us.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    stop.thread_block()
        .map_err(|e| format!("cannot block SIGINT and SIGTERM: {e}"))?;

    let resolved = KernelBtf::from_sys()
        .and_then(|btf| btf.resolve())
        .map_err(|e| e.to_string())?;
    // The smallest ring buffer: nothing is written to it.
    let mut ebpf = loader::object(
        &resolved,
        &loader::Settings {
            ring: RingSize::new(4096, true),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let program: &mut TracePoint = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| format!("program `{PROGRAM}` is not in the object"))?
        .try_into()
        .map_err(|e| chain(&e))?;
    program
        .load()
        .map_err(|e| format!("loading {PROGRAM}: {}", chain(&e)))?;
    program
        .attach(category, name)
        .map_err(|e| format!("attaching {PROGRAM} to {tracepoint}: {}", chain(&e)))?;
    eprintln!("tracer floor: {PROGRAM} attached to {tracepoint}");
    if let Some(f) = ready_file {
        std::fs::write(f, b"ready\n")
            .map_err(|e| format!("cannot write the ready file {}: {e}", f.display()))?;
    }

    let signal = stop
        .wait()
        .map_err(|e| format!("waiting for SIGINT or SIGTERM: {e}"))?;
    eprintln!("tracer floor: {signal}: detaching");
    if let Some(f) = ready_file {
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}
