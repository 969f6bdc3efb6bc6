//! Stack traces of policy events (`kernelStackTrace`, `userStackTrace` on a `Post`):
//! the kernel posts stack ids (`tracer-ebpf/src/policy/eval.rs`) and keeps the stacks in
//! its `STACKS` map. Here each id an event carries is read from the map ([`retain`],
//! which also deletes what no event uses any more) and its addresses symbolised
//! ([`symbolize`]), into Tetragon's `StackTraceEntry`s: `symbol`, `offset` into it,
//! `module` (the file, for user addresses), and `address` only with
//! `--expose-stack-addresses`.
//!
//! An address that has no symbol is left out, as Tetragon leaves it out, unless
//! addresses are exposed (its entry then holds the address alone). A stack the kernel
//! could not take (a negative id) or that is gone from the map is counted
//! (`tracer_stack_traces_lost_total`) and logged, and the event goes out without it.

pub mod retain;
pub mod symbolize;

use std::collections::HashSet;

use aya::{
    Ebpf,
    maps::{MapData, StackTraceMap},
};
use tracer_common::policy::{EVENT_KERNEL_STACK, EVENT_USER_STACK, TracepointEvent};

use crate::event::StackEntry;
use retain::Retained;
use symbolize::{Frame, Symbolizer};

/// How often ids no event uses are deleted from the kernel's map: an id lives from one
/// to two periods past its last use.
pub const SWEEP_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("the eBPF object has no map `STACKS`")]
    NoMap,
    #[error("map `STACKS`: {0}")]
    Map(#[from] aya::maps::MapError),
}

/// Which stack of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Which {
    Kernel,
    User,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::Kernel => "kernel",
            Which::User => "user",
        }
    }
}

/// The stacks of an event: `None` where its `Post` did not ask for one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Traces {
    pub kernel: Option<Vec<StackEntry>>,
    pub user: Option<Vec<StackEntry>>,
}

/// Why a stack an event asked for is not in it (a label of
/// `tracer_stack_traces_lost_total`).
pub fn lost_reason(id: i32) -> &'static str {
    match id.wrapping_neg() {
        // Another stack holds the slot this one hashes to (the map is `STACK_TRACES` long).
        libc::EEXIST => "collision",
        // No stack to walk: a kernel stack where the program has the user registers
        // (`syscalls/*` tracepoints), a user stack of a kernel thread.
        libc::EFAULT => "unavailable",
        libc::ENOMEM => "no_memory",
        _ => "error",
    }
}

/// The stage: the kernel's map and the symbolisers.
pub struct Stacks {
    ids: Retained<StackTraceMap<MapData>>,
    symbols: Symbolizer,
    expose_addresses: bool,
    /// (stack, reason) pairs already logged at warn level; later ones go to debug.
    warned: HashSet<(Which, &'static str)>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Stacks {
    /// Takes the `STACKS` map out of `ebpf`: the stage outlives the programs, so that
    /// what is left in the ring buffer at exit still finds its stacks.
    pub fn new(
        ebpf: &mut Ebpf,
        expose_addresses: bool,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Result<Self, StackError> {
        let map = ebpf.take_map("STACKS").ok_or(StackError::NoMap)?;
        let map = StackTraceMap::try_from(map)?;
        Ok(Self {
            ids: Retained::new(map),
            symbols: Symbolizer::new(
                "/proc/kallsyms",
                crate::kernel::privileges::can_read_map_files(),
            ),
            expose_addresses,
            warned: HashSet::new(),
            metrics,
        })
    }

    /// The stacks event `ev` asked for, symbolised (user addresses in the mappings its
    /// process has now).
    pub fn traces(&mut self, ev: &TracepointEvent) -> Traces {
        let mut t = Traces::default();
        if ev.flags & EVENT_KERNEL_STACK != 0 {
            t.kernel = Some(self.trace(Which::Kernel, ev.kernel_stack, ev.header.pid));
        }
        if ev.flags & EVENT_USER_STACK != 0 {
            t.user = Some(self.trace(Which::User, ev.user_stack, ev.header.pid));
        }
        t
    }

    fn trace(&mut self, which: Which, id: i32, pid: u32) -> Vec<StackEntry> {
        let Ok(key) = u32::try_from(id) else {
            self.lost(
                which,
                lost_reason(id),
                &format!("the kernel gave error {id}"),
            );
            return Vec::new();
        };
        let ips = match self.ids.get(key) {
            Ok(Some(ips)) => ips,
            Ok(None) => {
                self.lost(which, "gone", &format!("stack {key} is not in the map"));
                return Vec::new();
            }
            Err(e) => {
                self.lost(which, "error", &format!("reading stack {key}: {e}"));
                return Vec::new();
            }
        };
        let frames = match which {
            Which::Kernel => self.symbols.kernel(&ips),
            Which::User => self.symbols.user(pid, &ips),
        };
        let frames = match frames {
            Ok(f) => f,
            Err(e) => {
                // The process may be gone: its stack is then addresses only.
                tracing::debug!("{} stack {key}: {e}", which.name());
                vec![None; ips.len()]
            }
        };
        entries(&ips, frames, self.expose_addresses)
    }

    fn lost(&mut self, which: Which, reason: &'static str, detail: &str) {
        self.metrics.stack_trace_lost(which.name(), reason);
        if self.warned.insert((which, reason)) {
            tracing::warn!(
                "an event goes out without its {} stack ({reason}: {detail}); \
                 tracer_stack_traces_lost_total counts the others",
                which.name()
            );
        } else {
            tracing::debug!("{} stack lost ({reason}: {detail})", which.name());
        }
    }

    /// Deletes from the kernel's map the stacks no event uses any more (every
    /// [`SWEEP_PERIOD`]).
    pub fn sweep(&mut self) {
        match self.ids.sweep() {
            Ok(s) if s.deleted > 0 => tracing::trace!(
                deleted = s.deleted,
                kept = s.kept,
                "stack traces no event uses any more deleted"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot sweep the kernel's stack trace map: {e}"),
        }
    }
}

/// The entries of a stack: each address with its symbol; one without a symbol only
/// where addresses are exposed.
pub fn entries(ips: &[u64], frames: Vec<Option<Frame>>, expose: bool) -> Vec<StackEntry> {
    ips.iter()
        .zip(frames)
        .filter_map(|(&ip, f)| {
            let address = expose.then_some(ip);
            match f {
                Some(f) => Some(StackEntry {
                    address,
                    offset: f.offset,
                    symbol: f.symbol,
                    module: f.module.unwrap_or_default(),
                }),
                None if expose => Some(StackEntry {
                    address,
                    ..StackEntry::default()
                }),
                None => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_hide_addresses_unless_exposed() {
        let ips = [0xffff_ffff_8190_0042, 0xdead];
        let frames = || {
            vec![
                Some(Frame {
                    symbol: "do_syscall_64".into(),
                    offset: 0x42,
                    module: None,
                }),
                None,
            ]
        };
        assert_eq!(
            entries(&ips, frames(), false),
            [StackEntry {
                address: None,
                offset: 0x42,
                symbol: "do_syscall_64".into(),
                module: String::new(),
            }],
            "the address without a symbol left out"
        );
        assert_eq!(
            entries(&ips, frames(), true),
            [
                StackEntry {
                    address: Some(0xffff_ffff_8190_0042),
                    offset: 0x42,
                    symbol: "do_syscall_64".into(),
                    module: String::new(),
                },
                StackEntry {
                    address: Some(0xdead),
                    ..StackEntry::default()
                }
            ]
        );
    }

    #[test]
    fn negative_ids_say_why() {
        assert_eq!(lost_reason(-libc::EEXIST), "collision");
        assert_eq!(lost_reason(-libc::EFAULT), "unavailable");
        assert_eq!(lost_reason(-libc::EINVAL), "error");
    }
}
