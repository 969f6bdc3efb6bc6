//! One module per family of hooks.

pub mod policy;
pub mod process;
pub mod syscall;
