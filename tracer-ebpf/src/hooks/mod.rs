//! One module per family of hooks. The lifecycle (`process`) runs always; the others are
//! the entries of policy hook points into the engine (`crate::policy`).

pub mod enforcer;
pub mod fentry;
pub mod kprobe;
pub mod probe;
pub mod process;
pub mod rawtp;
pub mod sock;
pub mod syscall;
pub mod tracepoint;
pub mod usdt_set;
