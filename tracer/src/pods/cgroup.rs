//! From a process's cgroup to its container: the cgroup id the kernel puts in every
//! event, resolved to its path under the cgroup v2 hierarchy (a cgroup's id is the inode
//! number of its directory), and the container id and pod uid that the container
//! runtimes write into that path, in the layouts of containerd, CRI-O and Docker, with
//! the systemd and cgroupfs drivers of the kubelet.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// The container runtime that named a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
}

impl Runtime {
    /// The scheme of a container id in a pod's `containerStatuses` (`containerd://<id>`).
    pub fn scheme(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
        }
    }
}

/// A container, as its cgroup path names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub runtime: Runtime,
    /// The full container id: 64 hex digits.
    pub id: String,
    /// The pod's uid, where the kubelet made the pod's cgroup (`pod<uid>`).
    pub pod_uid: Option<String>,
}

impl Container {
    /// The id as a pod's `containerStatuses[].containerID` has it.
    pub fn status_id(&self) -> String {
        format!("{}://{}", self.runtime.scheme(), self.id)
    }

    /// Tetragon's `docker` field: the id's first 31 characters.
    pub fn short_id(&self) -> &str {
        &self.id[..31]
    }
}

/// The container a cgroup path belongs to, from its deepest segment that names one:
///
/// - containerd: `cri-containerd-<id>.scope` (systemd), or `<id>` under a pod's cgroup
///   (cgroupfs: `/kubepods/burstable/pod<uid>/<id>`);
/// - CRI-O: `crio-<id>.scope` (systemd), `crio-<id>` (cgroupfs); its `crio-conmon-<id>`
///   is the monitor beside the container, not the container;
/// - Docker: `docker-<id>.scope` (systemd), `/docker/<id>` (cgroupfs).
///
/// A path inside the container's own cgroup (a nested `init.scope`) still names it. `None`
/// for a host process.
pub fn container_of(path: &str) -> Option<Container> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let pod = segments.iter().rev().find_map(|s| pod_uid(s));
    for (i, seg) in segments.iter().enumerate().rev() {
        let parent = i.checked_sub(1).map(|p| segments[p]);
        let named = if let Some(id) = scoped(seg, "cri-containerd-") {
            Some((Runtime::Containerd, id))
        } else if let Some(id) = scoped(seg, "crio-") {
            Some((Runtime::CriO, id))
        } else if let Some(id) = scoped(seg, "docker-") {
            Some((Runtime::Docker, id))
        } else if is_id(seg) {
            // A bare id: Docker's own hierarchy, or a kubelet's cgroupfs pod directory
            // (containerd's; dockershim's kubelets were the last to use Docker there).
            match parent {
                Some("docker") => Some((Runtime::Docker, *seg)),
                Some(p) if pod_uid(p).is_some() => Some((Runtime::Containerd, *seg)),
                _ => None,
            }
        } else {
            None
        };
        if let Some((runtime, id)) = named {
            return Some(Container {
                runtime,
                id: id.to_owned(),
                pod_uid: pod.clone(),
            });
        }
    }
    None
}

/// `<prefix><id>` or `<prefix><id>.scope`, for a 64-hex-digit id.
fn scoped<'a>(seg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = seg.strip_prefix(prefix)?;
    let id = rest.strip_suffix(".scope").unwrap_or(rest);
    is_id(id).then_some(id)
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The pod uid of a kubelet's pod cgroup: `pod<uid>` (cgroupfs) or
/// `kubepods-<qos>-pod<uid with _ for ->.slice` (systemd).
fn pod_uid(seg: &str) -> Option<String> {
    let seg = seg.strip_suffix(".slice").unwrap_or(seg);
    let (_, uid) = seg.rsplit_once("pod")?;
    let uid = uid.replace('_', "-");
    let uuid_like = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| {
            matches!(i, 8 | 13 | 18 | 23) == (b == b'-') && (b == b'-' || b.is_ascii_hexdigit())
        });
    uuid_like.then_some(uid)
}

/// Where the cgroup v2 hierarchy is mounted: `/sys/fs/cgroup` on a unified host,
/// `/sys/fs/cgroup/unified` on a hybrid one (cgroup v1 controllers beside it), as
/// `/proc/self/mountinfo` says; `/sys/fs/cgroup` if it says nothing.
pub fn v2_root() -> PathBuf {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|m| v2_mount(&m))
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"))
}

/// The mount point of the first `cgroup2` file system in a mountinfo text.
fn v2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // `id parent major:minor root mount-point options [optional...] - fstype source ...`
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// cgroup ids to paths under the cgroup v2 mount, found by walking it (an id is its
/// directory's inode number). A miss walks again, at most once per `REWALK`, so that a
/// burst of events from an unknown cgroup costs one walk.
pub struct CgroupPaths {
    root: PathBuf,
    paths: HashMap<u64, String>,
    walked: Option<Instant>,
    /// `open_by_handle_at` was refused (no `CAP_DAC_READ_SEARCH`): said once, not tried
    /// again.
    handles_refused: bool,
}

/// The least time between two walks.
const REWALK: Duration = Duration::from_millis(200);
/// How deep a walk goes: kubelet hierarchies are about six levels deep.
const MAX_DEPTH: usize = 12;

impl CgroupPaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            paths: HashMap::new(),
            walked: None,
            handles_refused: false,
        }
    }

    /// The path (from the hierarchy's root, `/kubepods.slice/...`) of cgroup `id`: known,
    /// or opened by its id (a cgroup v2 id is a file handle of its directory), or found by
    /// a walk.
    pub fn path(&mut self, id: u64) -> Option<&str> {
        if !self.paths.contains_key(&id) {
            if let Some(p) = self.path_by_handle(id) {
                self.paths.insert(id, p);
            } else if self.walked.is_none_or(|t| t.elapsed() >= REWALK) {
                self.walk();
            }
        }
        self.paths.get(&id).map(String::as_str)
    }

    /// The path of cgroup `id`, by opening its directory from its id (`open_by_handle_at`
    /// with a kernfs handle, which needs CAP_DAC_READ_SEARCH) and reading the link.
    fn path_by_handle(&mut self, id: u64) -> Option<String> {
        if self.handles_refused {
            return None;
        }
        use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
        /// `struct file_handle` with kernfs's 8-byte id.
        #[repr(C)]
        struct Handle {
            bytes: u32,
            kind: i32,
            id: u64,
        }
        /// `FILEID_KERNFS` (include/linux/exportfs.h).
        const FILEID_KERNFS: i32 = 0xfe;
        let root = std::fs::File::open(&self.root).ok()?;
        let mut handle = Handle {
            bytes: 8,
            kind: FILEID_KERNFS,
            id,
        };
        // SAFETY: `handle` is a `struct file_handle` of 8 id bytes, alive for the call;
        // the returned descriptor is owned below.
        let fd = unsafe {
            libc::open_by_handle_at(
                root.as_raw_fd(),
                (&raw mut handle).cast(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EPERM) {
                self.handles_refused = true;
                tracing::warn!(
                    "kubernetes: cannot open cgroups by their id (open_by_handle_at: {e}; it needs \
                     CAP_DAC_READ_SEARCH, which the DaemonSet grants): a process in a cgroup made \
                     since the last walk is found through /proc/<pid>/cgroup or the next walk, and \
                     one that has already exited may go out without its pod"
                );
            }
            return None;
        }
        // SAFETY: a descriptor just opened, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        let rel = target.strip_prefix(&self.root).ok()?;
        Some(format!("/{}", rel.display()))
    }

    /// The path of cgroup `id`, which process `pid` is in (or was, at the event): from the
    /// walk, or else from `/proc/<pid>/cgroup` when the process is still there and its
    /// cgroup's inode is `id` (a cgroup made since the last walk).
    pub fn path_of(&mut self, id: u64, pid: u32) -> Option<&str> {
        if self.path(id).is_none() {
            let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
            let ino = std::fs::metadata(self.root.join(rel.trim_start_matches('/')))
                .ok()?
                .ino();
            if ino != id {
                return None;
            }
            self.paths.insert(id, rel.to_owned());
        }
        self.paths.get(&id).map(String::as_str)
    }

    /// Every container cgroup, walked now: (cgroup id, container). A container's nested
    /// cgroups name it too.
    pub fn containers(&mut self) -> Vec<(u64, Container)> {
        self.walk();
        self.paths
            .iter()
            .filter_map(|(id, path)| container_of(path).map(|c| (*id, c)))
            .collect()
    }

    /// The container of cgroup `id`, if a runtime named it.
    pub fn container(&mut self, id: u64) -> Option<Container> {
        self.path(id).and_then(container_of)
    }

    fn walk(&mut self) {
        self.walked = Some(Instant::now());
        self.paths.clear();
        let mut stack = vec![(self.root.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let rel = dir.strip_prefix(&self.root).unwrap_or(Path::new(""));
            self.paths.insert(meta.ino(), format!("/{}", rel.display()));
            if depth >= MAX_DEPTH {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((e.path(), depth + 1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4c3ef2d1a1b0c9d8e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff0";
    const UID: &str = "2a1f6d3e-7b8c-4d9e-a0f1-b2c3d4e5f607";

    fn container(runtime: Runtime, pod: bool) -> Option<Container> {
        Some(Container {
            runtime,
            id: ID.into(),
            pod_uid: pod.then(|| UID.into()),
        })
    }

    #[test]
    fn the_layouts_of_the_runtimes() {
        let uid_ = UID.replace('-', "_");
        for (path, expected) in [
            // containerd, systemd driver (the default of kubeadm and most clouds).
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"
                ),
                container(Runtime::Containerd, true),
            ),
            // Guaranteed pods have no QoS level of their own.
            (
                format!("/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope"),
                container(Runtime::Containerd, true),
            ),
            // containerd, cgroupfs driver.
            (
                format!("/kubepods/besteffort/pod{UID}/{ID}"),
                container(Runtime::Containerd, true),
            ),
            // CRI-O, both drivers; its conmon is not the container.
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{ID}.scope"
                ),
                container(Runtime::CriO, true),
            ),
            (
                format!("/kubepods/burstable/pod{UID}/crio-{ID}"),
                container(Runtime::CriO, true),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-conmon-{ID}.scope"
                ),
                None,
            ),
            // Docker, both drivers, no pod.
            (
                format!("/system.slice/docker-{ID}.scope"),
                container(Runtime::Docker, false),
            ),
            (format!("/docker/{ID}"), container(Runtime::Docker, false)),
            // A process in a cgroup nested in the container's.
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope/init.scope"
                ),
                container(Runtime::Containerd, true),
            ),
            // Host processes.
            ("/system.slice/sshd.service".into(), None),
            ("/user.slice/user-0.slice/session-1.scope".into(), None),
            ("/".into(), None),
            // The pod's own cgroup (its pause process sits in a container of its own).
            (format!("/kubepods/besteffort/pod{UID}"), None),
            // Not an id: too short.
            ("/docker/4c3ef2d1".into(), None),
        ] {
            assert_eq!(container_of(&path), expected, "{path}");
        }
    }

    #[test]
    fn the_cgroup2_mount_of_unified_and_hybrid_hosts() {
        let hybrid = "25 24 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n27 25 0:24 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,xattr,name=systemd\n";
        assert_eq!(
            v2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(v2_mount(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(v2_mount("31 23 0:27 / /proc rw - proc proc rw\n"), None);
    }

    #[test]
    fn ids_as_kubernetes_and_tetragon_write_them() {
        let c = container(Runtime::CriO, true).unwrap();
        assert_eq!(c.status_id(), format!("cri-o://{ID}"));
        assert_eq!(c.short_id(), &ID[..31]);
    }

    #[test]
    fn paths_by_inode_of_a_directory_tree() {
        let root = tempfile::tempdir().expect("temp dir");
        let deep = root
            .path()
            .join("kubepods/besteffort")
            .join(format!("pod{UID}"))
            .join(ID);
        std::fs::create_dir_all(&deep).unwrap();
        let ino = std::fs::metadata(&deep).unwrap().ino();
        let mut paths = CgroupPaths::new(root.path());
        assert_eq!(
            paths.path(ino),
            Some(format!("/kubepods/besteffort/pod{UID}/{ID}").as_str())
        );
        assert_eq!(paths.container(ino), container(Runtime::Containerd, true));
        // A directory made after the walk is found by the next one.
        let later = root.path().join("docker").join(ID);
        std::fs::create_dir_all(&later).unwrap();
        let ino = std::fs::metadata(&later).unwrap().ino();
        std::thread::sleep(REWALK);
        assert_eq!(paths.container(ino), container(Runtime::Docker, false));
        assert_eq!(paths.path(u64::MAX), None);
    }
}
