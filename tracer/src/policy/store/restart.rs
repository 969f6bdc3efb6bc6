//! The policies across a restart on a pinned set (`crate::handover`). The agent pins
//! its policies' hooks as they attach (`links::Held`), and saves what reads their events
//! at each change ([`Saved`]: each policy's document and its hooks' ids, and where its
//! hooks were placed). When it stops, even killed, the hooks go on evaluating, acting and
//! posting with their own maps. The next agent decodes their events with what was saved
//! while it loads its own policies; once they are in, it takes over and the old hooks
//! are detached.

use std::{
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::policy::facts::Kernel;

/// The file, in `--state-dir`.
const FILE: &str = "policies.json";

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// What an agent left of its policies for the next one.
#[derive(Debug, Serialize, Deserialize)]
pub struct Saved {
    /// The generation of the agent that wrote it.
    pub generation: u64,
    /// Where its hooks ran: the next agent compiles its policies for the same places,
    /// which its own flags (`--disable-kprobes`...) may not choose.
    pub placed: Placed,
    pub policies: Vec<SavedPolicy>,
}

/// What of [`Kernel`] decides where a hook runs, and so the layout of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub kprobes: bool,
    pub fentry: bool,
    pub lsm: bool,
    pub raw_syscalls: bool,
    pub raw_numbered: bool,
    pub kprobe_override: bool,
}

impl Placed {
    pub fn of(k: &Kernel) -> Self {
        Self {
            kprobes: k.kprobes,
            fentry: k.fentry,
            lsm: k.lsm,
            raw_syscalls: k.raw_syscalls,
            raw_numbered: k.raw_numbered,
            kprobe_override: k.kprobe_override,
        }
    }

    /// `base` (this agent's kernel) placing as `self` says.
    pub fn on(self, base: Kernel) -> Kernel {
        Kernel {
            kprobes: self.kprobes,
            fentry: self.fentry,
            lsm: self.lsm,
            raw_syscalls: self.raw_syscalls,
            raw_numbered: self.raw_numbered,
            kprobe_override: self.kprobe_override,
            ..base
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPolicy {
    pub name: String,
    pub id: u32,
    /// The policy as loaded (JSON), compiled again by the next agent.
    pub document: String,
    /// Each compiled hook's id and label, in order: the next agent checks that its
    /// compilation gives the same hooks before it reads their events.
    pub hooks: Vec<(u32, String)>,
}

/// `policy` as JSON that reads back as the same policy: what it leaves out is left out
/// (the model writes it as `null`, which the parser takes for a value).
pub fn document(policy: &crate::policy::model::TracingPolicy) -> String {
    fn without_nulls(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|_, v| !v.is_null());
                m.values_mut().for_each(without_nulls);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(without_nulls),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(policy).unwrap_or_default();
    without_nulls(&mut v);
    v.to_string()
}

/// Writes `saved` to `file` (mode 0600), whole or not at all.
pub fn save(file: &Path, saved: &Saved) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("json.tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    out.write_all(&serde_json::to_vec(saved).map_err(std::io::Error::other)?)?;
    out.sync_all()?;
    std::fs::rename(&tmp, file)
}

/// The policies the agent of `generation` saved in `file`; none, said why, when another
/// agent wrote it or it cannot be read. (The file stays: an agent that fails before it
/// takes over leaves the set, and the file, to the next.)
pub fn load(file: &Path, generation: u64) -> Option<Saved> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(
                "{}: the previous agent's policies cannot be read ({e}): the events its pinned policy hooks posted are not reported",
                file.display()
            );
            return None;
        }
    };
    match serde_json::from_slice::<Saved>(&text) {
        Ok(s) if s.generation == generation => Some(s),
        Ok(s) => {
            tracing::info!(
                "{}: policies of generation {}, not {generation} (the agent that stopped last did not write it): left out",
                file.display(),
                s.generation
            );
            None
        }
        Err(e) => {
            tracing::warn!(
                "{}: not a policy state file ({e}): the events the previous agent's pinned policy hooks posted are not reported",
                file.display()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(generation: u64) -> Saved {
        Saved {
            generation,
            placed: Placed::of(&Kernel::default()),
            policies: vec![SavedPolicy {
                name: "p".into(),
                id: 3,
                document: "{}".into(),
                hooks: vec![(7, "tracepoint syscalls/sys_enter_getpgid".into())],
            }],
        }
    }

    #[test]
    fn the_policies_of_the_agent_before_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        save(&file, &saved(4)).unwrap();
        let read = load(&file, 4).unwrap().policies;
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].name, "p");
        assert_eq!(read[0].hooks[0].0, 7);
        assert_eq!(read[0].document, "{}");
    }

    #[test]
    fn another_generations_or_a_broken_file_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        save(&file, &saved(4)).unwrap();
        assert!(load(&file, 5).is_none());
        std::fs::write(&file, "{not json").unwrap();
        assert!(load(&file, 4).is_none());
    }
}

#[cfg(test)]
mod document {
    use std::path::Path;

    /// Each document of every policy file under `dir` (and its directories) that parses: saved, it reads back
    /// as the same policy. Returns how many were tried.
    fn round_trip(dir: &Path) -> usize {
        let mut tried = 0;
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            if file.is_dir() {
                tried += round_trip(&file);
                continue;
            }
            if !file.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                continue;
            }
            let Ok(docs) = crate::policy::parse::file(&file) else {
                continue;
            };
            for doc in docs {
                let json = super::document(&doc.policy);
                let again = crate::policy::parse::text_documents("saved", &json)
                    .unwrap_or_else(|e| panic!("{}: {json}: {e:?}", file.display()));
                assert_eq!(again[0].spec, doc.spec, "{}", file.display());
                tried += 1;
            }
        }
        tried
    }

    #[test]
    fn a_saved_document_reads_back_as_the_same_policy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        assert!(round_trip(&root.join("policies")) >= 10);
        let tetragon = root.join("../shared/conformance/tetragon/examples");
        if tetragon.is_dir() {
            let tried = round_trip(&tetragon);
            assert!(tried > 50, "{tried} of Tetragon's examples");
        } else {
            eprintln!(
                "{}: not here; Tetragon's examples not tried",
                tetragon.display()
            );
        }
    }
}
