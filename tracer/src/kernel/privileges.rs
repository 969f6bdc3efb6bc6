//! Whether this process may load and attach the programs, checked before trying so that
//! a user without the privileges reads one sentence instead of a verifier error.

/// `CAP_SYS_ADMIN`, `CAP_PERFMON`, `CAP_BPF` and `CAP_CHECKPOINT_RESTORE` bit numbers
/// (`linux/capability.h`).
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
const CAP_CHECKPOINT_RESTORE: u32 = 40;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrivilegeError {
    #[error(
        "the tracer needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load its eBPF programs, \
         and this process has {missing}; run it as root (sudo tracer run) or grant them \
         (setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep)"
    )]
    Missing { missing: String },
    #[error("cannot read this process's capabilities from /proc/self/status: {0}")]
    Unreadable(String),
}

/// Checks the effective capabilities of this process.
pub fn check() -> Result<(), PrivilegeError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| PrivilegeError::Unreadable(e.to_string()))?;
    check_status(&status)
}

/// Whether this process may open other processes' mapped files through
/// `/proc/PID/map_files/` (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), as the user stack
/// traces' symbols are best read.
pub fn can_read_map_files() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| effective(&s).ok())
        .is_some_and(|eff| eff & (1 << CAP_SYS_ADMIN | 1 << CAP_CHECKPOINT_RESTORE) != 0)
}

/// The `CapEff:` line of a `/proc/<pid>/status` text.
fn effective(status: &str) -> Result<u64, PrivilegeError> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .ok_or_else(|| PrivilegeError::Unreadable("no CapEff line".into()))?
        .trim();
    u64::from_str_radix(hex, 16)
        .map_err(|e| PrivilegeError::Unreadable(format!("CapEff `{hex}`: {e}")))
}

/// Checks the `CapEff:` line of a `/proc/<pid>/status` text.
pub fn check_status(status: &str) -> Result<(), PrivilegeError> {
    let eff = effective(status)?;
    let has = |cap: u32| eff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("no CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("no CAP_PERFMON");
    }
    Err(PrivilegeError::Missing {
        missing: missing.join(" and "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_passes() {
        assert_eq!(
            check_status("Name:\tx\nCapEff:\t000001ffffffffff\n"),
            Ok(())
        );
    }

    #[test]
    fn bpf_and_perfmon_pass() {
        let eff = (1u64 << CAP_BPF) | (1u64 << CAP_PERFMON);
        assert_eq!(check_status(&format!("CapEff:\t{eff:016x}\n")), Ok(()));
    }

    #[test]
    fn unprivileged_is_told_what_is_missing() {
        let err = check_status("CapEff:\t0000000000000000\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no CAP_BPF and no CAP_PERFMON"), "{msg}");
        assert!(msg.contains("run it as root"), "{msg}");
        let only_bpf = format!("CapEff:\t{:016x}\n", 1u64 << CAP_BPF);
        assert_eq!(
            check_status(&only_bpf),
            Err(PrivilegeError::Missing {
                missing: "no CAP_PERFMON".into()
            })
        );
    }
}
