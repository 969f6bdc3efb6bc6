//! Pod enrichment: which container and pod a process runs in.
//!
//! - [`cgroup`]: the cgroup id of an event to its path, and the container id and pod uid
//!   the container runtime wrote into it.

pub mod cgroup;
