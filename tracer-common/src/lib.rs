//! Records shared by the kernel programs (`tracer-ebpf`) and the agent (`tracer`).
//!
//! Everything here is `#[repr(C)]`, fixed-size and free of implicit padding, so that the
//! bytes the kernel writes into the ring buffer are the bytes the agent decodes. The
//! `user` feature adds `aya::Pod` impls; the kernel build never enables it.
#![no_std]

pub mod counters;
pub mod event;
pub mod handover;
pub mod limits;
pub mod offsets;
pub mod policy;
