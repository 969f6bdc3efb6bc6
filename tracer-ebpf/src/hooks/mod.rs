//! One module per family of hooks.

pub mod fentry;
pub mod kprobe;
pub mod policy;
pub mod probe;
pub mod process;
pub mod sock;
pub mod syscall;
