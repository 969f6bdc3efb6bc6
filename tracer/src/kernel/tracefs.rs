//! tracefs: where the kernel lists its tracepoints. Minimal systems boot without it
//! mounted; the agent mounts it, as `mount -t tracefs nodev /sys/kernel/tracing` would.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

pub const TRACEFS: &str = "/sys/kernel/tracing";

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot mount tracefs at {path}: {source}; mount it by hand with `mount -t tracefs nodev {path}`"
)]
pub struct MountError {
    path: PathBuf,
    #[source]
    source: nix::Error,
}

/// Whether tracefs is mounted at `path`: its `events` directory is there.
pub fn is_mounted(path: &Path) -> bool {
    path.join("events").is_dir()
}

/// Mounts tracefs at [`TRACEFS`] unless it is already mounted. Returns whether it
/// mounted it.
pub fn ensure_mounted() -> Result<bool, MountError> {
    let path = Path::new(TRACEFS);
    if is_mounted(path) {
        return Ok(false);
    }
    mount(
        Some("nodev"),
        path,
        Some("tracefs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|source| MountError {
        path: path.to_owned(),
        source,
    })?;
    Ok(true)
}
