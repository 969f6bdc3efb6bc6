//! One module per family of hooks.

pub mod kprobe;
pub mod policy;
pub mod process;
pub mod syscall;
