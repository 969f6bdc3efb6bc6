//! The tracer's agent. Modules in data-path order:
//!
//! - [`kernel`]: BTF offsets, tracefs, privileges: what is learnt before loading.
//! - [`loader`]: loads the embedded programs and attaches each hook.
//! - [`ringbuf`]: drains the ring buffer, reads the kernel's loss counters.
//! - [`handover`]: the kernel side pinned between agents: restarts without a gap.
//! - [`decode`]: bytes to typed records.
//! - [`mappings`]: the executable mappings of processes (perf mmap records), for
//!   `process_loader` events.
//! - [`stacks`]: the stack traces policy events ask for, read and symbolised.
//! - [`process`]: the process cache (exec ids, parents) and the /proc walk.
//! - [`pods`]: the container (and pod) of each process, from its cgroup.
//! - [`event`]: the exported events, in Tetragon's JSON shape.
//! - [`export`]: filters, redaction, field filters, rate limit, sequence numbers, then
//!   the sinks (JSON lines to stdout or a rotated file).
//! - [`metrics`]: Prometheus metrics and health over HTTP.
//! - [`agent`]: wires the stages together.
//! - [`status`]: `tracer status`, what this kernel runs.
//! - [`view`]: `tracer events`, the events for people.

pub mod agent;
pub mod clock;
pub mod decode;
pub mod event;
pub mod export;
pub mod floor;
pub mod handover;
pub mod kernel;
pub mod loader;
pub mod mappings;
pub mod metrics;
pub mod pods;
pub mod policy;
pub mod process;
pub mod ringbuf;
pub mod stacks;
pub mod status;
pub mod view;
