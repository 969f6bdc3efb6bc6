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

/// What runs between two policies being loaded: the kernel may take seconds to verify a
/// policy's programs, and the agent reads the events recorded meanwhile here.
pub type Between<'a> = &'a mut dyn FnMut(&PolicyStore);

/// Loads every document of `path`, calling `between` after each; returns the names of
/// the policies it defines when the file is valid (loaded or not), `None` when it is not.
pub fn load_file(
    store: &mut PolicyStore,
    ebpf: &mut Ebpf,
    path: &Path,
    between: Between<'_>,
) -> Option<Vec<String>> {
    let docs = match parse::file(path) {
        Ok(docs) => docs,
        Err(errors) => {
            for e in errors {
                tracing::error!("policy refused: {e}");
            }
            return None;
        }
    };
    let mut names = Vec::new();
    for doc in docs {
        let name = doc.policy.metadata.name.as_str().to_owned();
        let source = format!("{}:{}", path.display(), doc.first_line);
        for w in &doc.warnings {
            tracing::warn!("policy {name}: {w}");
        }
        let started = std::time::Instant::now();
        let result = store.add(ebpf, &doc.spec, path);
        super::log_load(&name, &source, &result, started.elapsed());
        names.push(name);
        between(store);
    }
    Some(names)
}

struct FileState {
    stamp: (SystemTime, u64),
    names: Vec<String>,
}

/// A directory of policy files, kept in step with the store.
pub struct PolicyDir {
    dir: PathBuf,
    files: HashMap<PathBuf, FileState>,
}

impl PolicyDir {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            files: HashMap::new(),
        }
    }

    /// Applies what changed in the directory since the last call, calling `between` after
    /// each policy loaded.
    pub fn sync(&mut self, store: &mut PolicyStore, ebpf: &mut Ebpf, between: Between<'_>) {
        let mut present = HashMap::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    let path = e.path();
                    let yaml = path.extension().is_some_and(|x| x == "yaml" || x == "yml");
                    if let (true, Ok(meta)) = (yaml, e.metadata())
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
        // Removed files take their policies with them.
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !present.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(state) = self.files.remove(&path) {
                for name in state.names {
                    if store.remove(ebpf, &name) {
                        tracing::info!("policy {name} removed ({} is gone)", path.display());
                    }
                }
            }
        }
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
                Some(names) => {
                    for old in before.iter().filter(|n| !names.contains(n)) {
                        if store.remove(ebpf, old) {
                            tracing::info!(
                                "policy {old} removed (no longer in {})",
                                path.display()
                            );
                        }
                    }
                    self.files.insert(path, FileState { stamp, names });
                }
                // Broken: keep what ran, try again when the file changes.
                None => {
                    self.files.insert(
                        path,
                        FileState {
                            stamp,
                            names: before,
                        },
                    );
                }
            }
        }
    }
}
