//! One module per family of hooks.

pub mod process;
