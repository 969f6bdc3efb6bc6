//! What the running kernel offers beyond what every supported kernel has, probed once at
//! start and logged, so that each hook runs on the cheapest kind that works.

use std::path::Path;

/// The kernel attaches kprobes: it has the perf `kprobe` event source
/// (`CONFIG_KPROBE_EVENTS`), through which kprobes are attached.
pub fn kprobes() -> bool {
    kprobes_in(Path::new("/sys"))
}

fn kprobes_in(sys: &Path) -> bool {
    sys.join("bus/event_source/devices/kprobe/type").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kprobe_event_source() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!kprobes_in(dir.path()));
        let pmu = dir.path().join("bus/event_source/devices/kprobe");
        std::fs::create_dir_all(&pmu).unwrap();
        std::fs::write(pmu.join("type"), "6\n").unwrap();
        assert!(kprobes_in(dir.path()));
    }
}
