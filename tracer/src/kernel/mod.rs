//! What the agent learns from, and sets up in, the running kernel before loading.

pub mod btf;
pub mod features;
pub mod privileges;
pub mod tracefs;
