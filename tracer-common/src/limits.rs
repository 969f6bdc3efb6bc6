//! Capture bounds, one definition for both sides. Every loop and copy in the kernel is
//! bounded by one of these; user space flags a record that hit one.

/// Bytes of the argument area (`argv`, NUL-separated) copied per exec. Longer argument
/// lists are cut at this bound and flagged `truncArgs`.
pub const ARGS_MAX: usize = 4096;

/// Bytes of the environment area (`KEY=VALUE` strings, NUL-separated) copied per exec
/// with `--enable-process-environment-variables`. A longer environment is cut at this
/// bound (the last, partial, variable dropped) and the event says so.
pub const ENV_MAX: usize = 8192;

/// Bytes of `linux_binprm.filename` (the path as passed to `execve`) copied per exec.
pub const FILENAME_MAX: usize = 256;

/// Bytes of path components (leaf first, each NUL-terminated) a path walk may start
/// writing at. A walk stops once it has written this many bytes.
pub const PATH_MAX: usize = 1024;

/// Longest single path component, NUL included (`NAME_MAX` + 1 in the kernel).
pub const NAME_MAX: usize = 256;

/// Size of a path buffer: a component may start anywhere below `PATH_MAX` and still fit.
pub const PATH_BUF: usize = PATH_MAX + NAME_MAX;

/// Steps of a path walk: one per component, plus one per mount crossed.
pub const PATH_DEPTH_MAX: usize = 48;

/// Stack traces the kernel's `STACKS` map holds (`kernelStackTrace`,
/// `userStackTrace`), each of `STACK_DEPTH` addresses: about 4 MiB, allocated when the
/// programs load. The agent deletes each once no event it reads refers to it any more.
pub const STACK_TRACES: u32 = 4096;
/// Addresses of a stack trace: the kernel's default `perf_event_max_stack`, which a
/// stack trace map's values may not exceed.
pub const STACK_DEPTH: usize = 127;

// The kernel masks offsets with `X - 1`: these must stay powers of two.
const _: () = assert!(ARGS_MAX.is_power_of_two());
const _: () = assert!(ENV_MAX.is_power_of_two());
const _: () = assert!(PATH_MAX.is_power_of_two());
const _: () = assert!(FILENAME_MAX.is_power_of_two());
