//! User names (`user.name` of a process object): the host's user database, `/etc/passwd`
//! of the host's root (init's, `/proc/1/root/etc/passwd`, where the agent runs in a
//! container with the host's pid namespace; else its own `/etc/passwd`), as Tetragon's
//! `--username-metadata unix` reads it: no name service is asked. Only processes in the
//! host's pid namespace are named (a container's uids are its own image's). The file is
//! read again when it changes, looked at once a second at most.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

/// The host's user database, as last read.
#[derive(Default)]
struct Db {
    names: HashMap<u32, Arc<str>>,
    /// The file read, and its modification time then.
    read: Option<(PathBuf, SystemTime)>,
    checked: Option<Instant>,
}

static DB: Mutex<Option<Db>> = Mutex::new(None);

/// The files tried, in order.
const FILES: [&str; 2] = ["/proc/1/root/etc/passwd", "/etc/passwd"];

/// The name of `uid` in the host's user database, if it has one.
pub fn name_of(uid: u32) -> Option<Arc<str>> {
    let mut db = DB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let db = db.get_or_insert_with(Db::default);
    if db
        .checked
        .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
    {
        db.checked = Some(Instant::now());
        refresh(db);
    }
    db.names.get(&uid).cloned()
}

fn refresh(db: &mut Db) {
    for file in FILES {
        let modified = match std::fs::metadata(file).and_then(|m| m.modified()) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("user names: cannot read {file}: {e}");
                continue;
            }
        };
        if db
            .read
            .as_ref()
            .is_some_and(|(p, t)| p.as_os_str() == file && *t == modified)
        {
            return;
        }
        match std::fs::read_to_string(file) {
            Ok(text) => {
                db.names = parse(&text);
                db.read = Some((PathBuf::from(file), modified));
                return;
            }
            Err(e) => tracing::debug!("user names: cannot read {file}: {e}"),
        }
    }
}

/// `name:password:uid:...` lines; the first name of a uid wins, as getpwuid's.
fn parse(text: &str) -> HashMap<u32, Arc<str>> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with('#') || name.starts_with('+') {
            continue;
        }
        if let Ok(uid) = uid.parse::<u32>() {
            names.entry(uid).or_insert_with(|| Arc::from(name));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_passwd_lines() {
        let names = parse(
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\n+nis::::\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000::/:/bin/sh\n",
        );
        assert_eq!(names.get(&0).map(|n| &**n), Some("root"));
        assert_eq!(names.get(&1000).map(|n| &**n), Some("alice"));
        assert_eq!(names.len(), 2);
    }
}
