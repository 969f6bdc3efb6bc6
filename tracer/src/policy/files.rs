//! Policies from files: `--tracing-policy FILE` at start, and `--tracing-policy-dir DIR`
//! kept in step while the agent runs (checked every second: a file added or changed is
//! loaded, a file removed takes its policies with it). A broken file is reported and
//! refused; whatever was running from it keeps running.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::SystemTime,
};

use aya::Ebpf;

use super::{parse, store::PolicyStore};

/// `--tracing-policy-insecure-permissions`: policy files are loaded whoever may write
/// them.
static INSECURE_PERMISSIONS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Turns the permission check of policy files off (`--tracing-policy-insecure-permissions`).
pub fn allow_insecure_permissions() {
    INSECURE_PERMISSIONS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Why a policy file is not trusted: someone other than root (or the agent's own user)
/// could change what the agent traces and enforces through it.
#[derive(Debug, thiserror::Error)]
pub enum Untrusted {
    #[error("{}: cannot check who may write it: {source}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} ({what}) is writable by {} (mode {mode:04o}): whoever can write it decides what the agent traces and enforces\n  fix: chmod go-w {} (or --tracing-policy-insecure-permissions)",
        path.display(),
        match mode & 0o022 {
            0o020 => "its group",
            0o002 => "every user",
            _ => "its group and every user",
        },
        path.display()
    )]
    Writable {
        path: PathBuf,
        what: &'static str,
        mode: u32,
    },
    #[error(
        "{} ({what}) is owned by uid {uid}, neither root nor the agent's own uid {own}\n  fix: chown root {} (or --tracing-policy-insecure-permissions)",
        path.display(),
        path.display()
    )]
    Owner {
        path: PathBuf,
        what: &'static str,
        uid: u32,
        own: u32,
    },
}

/// Checks, as sshd's StrictModes does, that only root or the agent's own user can change
/// policy file `path`: the file (after symlinks) must be theirs and not writable by its
/// group or others, and so must the directory that holds it (a sticky directory, as
/// `/tmp`, lets no one else replace the file). Skipped with
/// `--tracing-policy-insecure-permissions`.
pub fn check_permissions(path: &Path) -> Result<(), Untrusted> {
    if INSECURE_PERMISSIONS.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    permissions(path, nix::unistd::geteuid().as_raw())
}

fn permissions(path: &Path, own: u32) -> Result<(), Untrusted> {
    use std::os::unix::fs::MetadataExt as _;
    let stat = |p: &Path| {
        std::fs::metadata(p).map_err(|source| Untrusted::Stat {
            path: p.to_owned(),
            source,
        })
    };
    // A file that cannot be found is left to the reader, which says why.
    let Ok(real) = std::fs::canonicalize(path) else {
        return Ok(());
    };
    let dir = real.parent().unwrap_or(Path::new("/")).to_owned();
    for (p, what) in [
        (real, "the policy file"),
        (dir, "the directory that holds it"),
    ] {
        let meta = stat(&p)?;
        let mode = meta.mode() & 0o7777;
        let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky_dir {
            return Err(Untrusted::Writable {
                path: p,
                what,
                mode,
            });
        }
        if meta.uid() != 0 && meta.uid() != own {
            return Err(Untrusted::Owner {
                path: p,
                what,
                uid: meta.uid(),
                own,
            });
        }
    }
    Ok(())
}

/// What runs between two policies being loaded: the kernel may take seconds to verify a
/// policy's programs, and the agent reads the events recorded meanwhile here.
pub type Between<'a> = &'a mut dyn FnMut(&PolicyStore);

/// The policies of a valid file.
pub struct Loaded {
    /// The names of the policies it defines (loaded or not).
    pub names: Vec<String>,
    /// Names it defines that another file's loaded policy has: refused, and tried again
    /// when that policy goes.
    pub blocked: Vec<String>,
    /// Why each of its policies that did not load was refused (blocked ones too).
    pub refused: Vec<String>,
}

/// Loads every document of `path`, calling `between` after each; when the file is not
/// valid, why (each error is logged too).
pub fn load_file(
    store: &mut PolicyStore,
    ebpf: &mut Ebpf,
    path: &Path,
    between: Between<'_>,
) -> Result<Loaded, String> {
    if let Err(e) = check_permissions(path) {
        tracing::error!("policy refused: {e}");
        return Err(e.to_string());
    }
    let docs = match parse::file(path) {
        Ok(docs) => docs,
        Err(errors) => {
            for e in &errors {
                tracing::error!("policy refused: {e}");
            }
            return Err(errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "));
        }
    };
    let mut names: Vec<String> = Vec::new();
    let mut blocked = Vec::new();
    let mut refused = Vec::new();
    for doc in docs {
        let name = doc.policy.metadata.name.as_str().to_owned();
        let source = format!("{}:{}", path.display(), doc.first_line);
        // A name is one policy: another file's (or an earlier document's) is not replaced.
        let other = store
            .loaded()
            .find(|(n, from)| *n == name && *from != path)
            .map(|(_, from)| from.display().to_string());
        if let Some(other) = other.or_else(|| names.contains(&name).then(|| "this file".into())) {
            let why = format!(
                "{source}: policy {name} is already loaded from {other}: two policies cannot \
                 share a metadata.name; rename one (the one loaded keeps running)"
            );
            tracing::error!("policy refused: {why}");
            refused.push(why);
            blocked.push(name);
            continue;
        }
        for w in &doc.warnings {
            tracing::warn!("policy {name}: {w}");
        }
        let started = std::time::Instant::now();
        let result = store.add(ebpf, &doc, path);
        super::log_load(&name, &source, &result, started.elapsed());
        if let Err(e) = &result {
            refused.push(format!("{source}: {e}"));
        }
        names.push(name);
        between(store);
    }
    Ok(Loaded {
        names,
        blocked,
        refused,
    })
}

struct FileState {
    stamp: (SystemTime, u64),
    names: Vec<String>,
    /// Names refused as another file's: the file is read again when one of them goes.
    blocked: Vec<String>,
}

/// A directory of policy files, kept in step with the store.
pub struct PolicyDir {
    dir: PathBuf,
    files: HashMap<PathBuf, FileState>,
    /// Entries not read, and why: each said once while it stays so.
    skipped: HashMap<PathBuf, String>,
}

/// Why directory entry `path` (of type `kind`, not followed) is not read as a policy
/// file; `None` for a file (or a symlink to one) to read, and for what is not meant as a
/// policy (another extension, a hidden entry such as a ConfigMap's `..data`).
fn skip_reason(path: &Path, kind: std::io::Result<std::fs::FileType>) -> Option<String> {
    use std::os::unix::fs::FileTypeExt as _;
    let name = path.file_name()?.to_string_lossy();
    let yaml = path.extension().is_some_and(|x| x == "yaml" || x == "yml");
    let kind = match kind {
        Ok(k) => k,
        Err(e) => return yaml.then(|| format!("its type cannot be read ({e})")),
    };
    let target = match std::fs::metadata(path) {
        Ok(m) => m.file_type(),
        Err(_) if !yaml => return None,
        Err(e) if kind.is_symlink() && e.raw_os_error() == Some(libc::ELOOP) => {
            return Some("a symlink loop".into());
        }
        Err(e) if kind.is_symlink() && e.kind() == std::io::ErrorKind::NotFound => {
            return Some("a dangling symlink (what it names does not exist)".into());
        }
        Err(e) => return Some(format!("it cannot be read ({e})")),
    };
    if target.is_dir() {
        // Subdirectories are not read; hidden ones are a ConfigMap's own.
        return (!name.starts_with('.'))
            .then(|| "a directory: subdirectories are not read; put its files here".into());
    }
    if !yaml {
        return None;
    }
    if target.is_file() {
        return None;
    }
    let what = if target.is_fifo() {
        "a FIFO"
    } else if target.is_socket() {
        "a socket"
    } else {
        "a device"
    };
    Some(format!("{what}, not a regular file"))
}

impl PolicyDir {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            files: HashMap::new(),
            skipped: HashMap::new(),
        }
    }

    /// Applies what changed in the directory since the last call, calling `between` after
    /// each policy loaded.
    pub fn sync(&mut self, store: &mut PolicyStore, ebpf: &mut Ebpf, between: Between<'_>) {
        // In the order of their paths: which of two files wins a name does not change
        // from one start to the next.
        let mut present = std::collections::BTreeMap::new();
        let mut skipped = HashMap::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    let path = e.path();
                    if let Some(why) = skip_reason(&path, e.file_type()) {
                        if self.skipped.get(&path) != Some(&why) {
                            tracing::warn!(
                                "policy directory: {} is skipped: {why}",
                                path.display()
                            );
                        }
                        skipped.insert(path, why);
                        continue;
                    }
                    let yaml = path.extension().is_some_and(|x| x == "yaml" || x == "yml");
                    // Symlinks followed (a ConfigMap's files are symlinks).
                    if let (true, Ok(meta)) = (yaml, std::fs::metadata(&path))
                        && meta.is_file()
                    {
                        let stamp = (
                            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                            meta.len(),
                        );
                        present.insert(path, stamp);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    "cannot read the policy directory {}: {e}",
                    self.dir.display()
                );
                return;
            }
        }
        self.skipped = skipped;
        // Removed files take their policies with them.
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !present.contains_key(*p))
            .cloned()
            .collect();
        let mut freed = Vec::new();
        for path in gone {
            if let Some(state) = self.files.remove(&path) {
                for name in state.names {
                    if store.remove(&name) {
                        tracing::info!("policy {name} removed ({} is gone)", path.display());
                    }
                    freed.push(name);
                }
            }
        }
        self.retry_blocked(&freed);
        for (path, stamp) in present {
            if self.files.get(&path).is_some_and(|s| s.stamp == stamp) {
                continue;
            }
            let before = self
                .files
                .get(&path)
                .map(|s| s.names.clone())
                .unwrap_or_default();
            match load_file(store, ebpf, &path, &mut *between) {
                Ok(Loaded { names, blocked, .. }) => {
                    for old in before.iter().filter(|n| !names.contains(n)) {
                        freed.push(old.clone());
                        if store.remove(old) {
                            tracing::info!(
                                "policy {old} removed (no longer in {})",
                                path.display()
                            );
                        }
                    }
                    self.files.insert(
                        path,
                        FileState {
                            stamp,
                            names,
                            blocked,
                        },
                    );
                }
                // Broken: keep what ran, try again when the file changes.
                Err(_) => {
                    self.files.insert(
                        path,
                        FileState {
                            stamp,
                            names: before,
                            blocked: Vec::new(),
                        },
                    );
                }
            }
        }
        // Names freed by changed files: their blocked files are read at the next sync.
        self.retry_blocked(&freed);
    }

    /// Files that were refused a name now free are read again (their stamp forgotten).
    fn retry_blocked(&mut self, freed: &[String]) {
        for state in self.files.values_mut() {
            if state.blocked.iter().any(|n| freed.contains(n)) {
                state.stamp = (SystemTime::UNIX_EPOCH, u64::MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// Each kind of entry a policy directory may hold that is not read says why; a file,
    /// a symlink to one, another extension and a ConfigMap's hidden entries say nothing.
    #[test]
    fn skipped_directory_entries_say_why() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::write(d.join("ok.yaml"), "x").expect("write");
        symlink(d.join("ok.yaml"), d.join("link.yaml")).expect("symlink");
        std::fs::write(d.join("README.md"), "x").expect("write");
        std::fs::create_dir(d.join("..data")).expect("mkdir");
        symlink(d.join("loop-b.yaml"), d.join("loop-a.yaml")).expect("symlink");
        symlink(d.join("loop-a.yaml"), d.join("loop-b.yaml")).expect("symlink");
        symlink(d.join("gone"), d.join("dangling.yaml")).expect("symlink");
        nix::unistd::mkfifo(&d.join("fifo.yaml"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        std::fs::create_dir(d.join("more")).expect("mkdir");
        let reason = |name: &str| {
            let p = d.join(name);
            skip_reason(&p, std::fs::symlink_metadata(&p).map(|m| m.file_type()))
        };
        for name in ["ok.yaml", "link.yaml", "README.md", "..data"] {
            assert_eq!(reason(name), None, "{name}");
        }
        for (name, why) in [
            ("loop-a.yaml", "a symlink loop"),
            ("dangling.yaml", "a dangling symlink"),
            ("fifo.yaml", "a FIFO, not a regular file"),
            ("more", "a directory: subdirectories are not read"),
        ] {
            let r = reason(name).unwrap_or_else(|| panic!("{name} not skipped"));
            assert!(r.starts_with(why), "{name}: {r}");
        }
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// Files and directories others may write are refused, naming the path, its mode and
    /// the fix; a sticky directory is not.
    #[test]
    fn policy_files_only_root_or_the_agent_may_write() {
        let own = nix::unistd::geteuid().as_raw();
        let dir = tempfile::tempdir().expect("temp dir");
        chmod(dir.path(), 0o755);
        let f = dir.path().join("p.yaml");
        std::fs::write(&f, "x").expect("write");
        chmod(&f, 0o644);
        assert!(permissions(&f, own).is_ok());
        for (mode, who) in [(0o664, "its group"), (0o646, "every user")] {
            chmod(&f, mode);
            let e = permissions(&f, own).expect_err("writable").to_string();
            assert!(
                e.contains(&format!(
                    "{} (the policy file) is writable by {who} (mode 0{mode:o})",
                    f.display()
                )) && e.contains(&format!("fix: chmod go-w {}", f.display())),
                "{e}"
            );
        }
        chmod(&f, 0o600);
        chmod(dir.path(), 0o777);
        let e = permissions(&f, own).expect_err("writable dir").to_string();
        assert!(
            e.contains(
                "(the directory that holds it) is writable by its group and every user (mode 0777)"
            ),
            "{e}"
        );
        chmod(dir.path(), 0o1777);
        assert!(permissions(&f, own).is_ok(), "a sticky directory");
        chmod(dir.path(), 0o755);
        // Another user's file (the test's own files are its user's).
        let e = permissions(&f, own.wrapping_add(1)).map_err(|e| e.to_string());
        if own == 0 {
            assert!(e.is_ok(), "root's file: {e:?}");
        } else {
            let e = e.expect_err("not root's");
            assert!(
                e.contains(&format!("is owned by uid {own}")) && e.contains("chown root"),
                "{e}"
            );
        }
        // Through a symlink, the file it names is checked.
        let link = dir.path().join("l.yaml");
        std::os::unix::fs::symlink(&f, &link).expect("symlink");
        chmod(&f, 0o666);
        assert!(permissions(&link, own).is_err());
    }
}
