//! The process tree: what the agent knows of every live process, and how a process is
//! written in an event.
//!
//! A [`Process`] is immutable once built: an exec, a fork or the start-up walk of
//! /proc creates one. Each holds an `Arc` to its parent as it was when the process
//! started, so an exited parent stays known exactly as long as a child refers to it,
//! and no longer.

pub mod cache;
pub mod procfs;
pub mod snapshot;
pub mod users;

use std::sync::Arc;

use base64::Engine as _;

/// `flags` words, as Tetragon writes them.
pub mod flags {
    /// Started by an exec the agent saw.
    pub const EXECVE: u32 = 1 << 0;
    /// Found running in /proc at start-up.
    pub const PROCFS: u32 = 1 << 1;
    /// The argument list was cut at the capture bound.
    pub const TRUNC_ARGS: u32 = 1 << 2;
    /// A fork the agent saw, not (yet) followed by an exec: binary and arguments are the
    /// parent's.
    pub const CLONE: u32 = 1 << 3;
    /// The working directory is `/`.
    pub const ROOT_CWD: u32 = 1 << 4;
    /// The working directory could not be read.
    pub const NO_CWD: u32 = 1 << 5;
    /// The process was not known (its start was not seen).
    pub const MISS: u32 = 1 << 6;
    /// The arguments could not be read.
    pub const ERROR_ARGS: u32 = 1 << 7;
    /// The binary's path could not be read.
    pub const ERROR_FILENAME: u32 = 1 << 8;
    /// The working directory's path was cut.
    pub const TRUNC_CWD: u32 = 1 << 9;
    /// The binary's path was cut.
    pub const TRUNC_BINARY: u32 = 1 << 10;
    /// In the tree of a container's init, as Tetragon defines it: its pid in its own
    /// (not the host's) pid namespace is 1, or its parent was in the tree when it forked
    /// (a process that `kubectl exec` or `nsenter` put in a container is not: its parent
    /// is the runtime, on the host).
    pub const IN_INIT_TREE: u32 = 1 << 11;
    /// `--enable-process-environment-variables`: the environment was longer than the
    /// capture bound (`ENV_MAX`); the variables past it are missing. Not in Tetragon.
    pub const TRUNC_ENV: u32 = 1 << 12;
    /// The environment could not be read. Not in Tetragon.
    pub const ERROR_ENV: u32 = 1 << 13;

    /// Words in the order they are written.
    pub const WORDS: [(u32, &str); 14] = [
        (EXECVE, "execve"),
        (PROCFS, "procFS"),
        (TRUNC_ARGS, "truncArgs"),
        (CLONE, "clone"),
        (ROOT_CWD, "rootcwd"),
        (NO_CWD, "nocwd"),
        (MISS, "miss"),
        (ERROR_ARGS, "errorArgs"),
        (ERROR_FILENAME, "errorFilename"),
        (TRUNC_CWD, "truncCwd"),
        (TRUNC_BINARY, "truncBinary"),
        (IN_INIT_TREE, "inInitTree"),
        (TRUNC_ENV, "truncEnv"),
        (ERROR_ENV, "errorEnv"),
    ];

    /// The space-separated words of `bits`.
    pub fn words(bits: u32) -> String {
        Words(bits).to_string()
    }

    /// [`words`] written out without a string of its own (the JSON encoder writes it
    /// straight into its buffer); empty when no bit is set.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Words(pub u32);

    impl Words {
        pub fn is_empty(&self) -> bool {
            self.0 == 0
        }
    }

    impl Words {
        /// Hands the words as one `str` to `f`, written into a buffer on the stack that
        /// holds all of them (122 bytes).
        fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
            let mut buf = [0u8; 128];
            let mut len = 0;
            for (bit, word) in WORDS {
                if self.0 & bit != 0 {
                    if len > 0 {
                        buf[len] = b' ';
                        len += 1;
                    }
                    buf[len..len + word.len()].copy_from_slice(word.as_bytes());
                    len += word.len();
                }
            }
            // ASCII words and spaces: never the empty fallback.
            f(std::str::from_utf8(&buf[..len]).unwrap_or_default())
        }
    }

    impl std::fmt::Display for Words {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.with_str(|w| f.write_str(w))
        }
    }

    impl serde::Serialize for Words {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.with_str(|w| s.serialize_str(w))
        }
    }
}

/// `auid` of a process whose login uid was never set.
pub const AUID_UNSET: u32 = u32::MAX;

/// Credentials of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    /// `cred.securebits` (0 for a process found in /proc, which does not show them).
    pub securebits: u32,
    /// Effective, permitted and inheritable capability sets, where known (for a process
    /// found in /proc, its sets then: what `matchCapabilityChanges` compares with for a
    /// process whose exec the kernel did not see).
    pub caps: Option<[u64; 3]>,
}

/// One process image: what ran, as who, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Unique id of this exec (or fork) on this node: base64 of `node:ktime:pid`.
    pub exec_id: String,
    pub pid: u32,
    pub tid: u32,
    pub creds: Creds,
    pub auid: u32,
    /// Absolute path of the running executable (a script's interpreter).
    pub binary: String,
    /// For a `#!` script: its absolute path.
    pub script: Option<String>,
    /// `argv[1..]`, encoded as one string (see [`encode_arguments`]).
    pub arguments: String,
    pub cwd: String,
    /// [`flags`] bits.
    pub flags: u32,
    /// When this image started (exec or fork), CLOCK_MONOTONIC ns; with `boottime`, the
    /// clock is CLOCK_BOOTTIME (processes found in /proc).
    pub ktime_ns: u64,
    pub boottime: bool,
    /// `task_struct.start_time` of the process: identifies it across pid reuse.
    pub task_start_ns: u64,
    pub cgroup_id: u64,
    /// The pid in the process's own pid namespace (a container's); 0 if not known (a
    /// forked child, until it execs).
    pub ns_pid: u32,
    /// The parent's process id, even when the parent itself is not known.
    pub ppid: u32,
    /// The name of `creds.uid` in the host's user database, for a process in the host's
    /// pid namespace ([`users`]).
    pub user: Option<Arc<str>>,
    /// Its namespaces' inodes at its exec (or in /proc at start-up), by
    /// `policy::NS_*` minus 1; 0 where unknown. A fork keeps its parent's.
    pub ns: [u32; tracer_common::event::NS_COUNT],
    /// `--enable-process-environment-variables`: its environment at its exec (a fork
    /// keeps its parent's); empty when off or not seen.
    pub env: Arc<crate::decode::EnvJson>,
    pub parent: Option<Arc<Process>>,
    /// Its JSON object, kept from the last event that wrote it.
    pub json: JsonCache,
}

impl Process {
    pub fn parent_exec_id(&self) -> Option<&str> {
        self.parent.as_deref().map(|p| p.exec_id.as_str())
    }
}

/// Tetragon's `BinaryProperties` of one exec, written in its `process_exec` event only
/// (the file's properties describe the exec, not the process).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinaryProperties {
    /// With `--enable-process-cred`: the effective uid a set-user-ID file gave.
    pub setuid: Option<u32>,
    /// The same, the effective gid of a set-group-ID file.
    pub setgid: Option<u32>,
    /// With `--enable-process-cred`: why the exec raised privileges (Tetragon's
    /// `ProcessPrivilegesChanged` names).
    pub privileges_changed: Vec<&'static str>,
    /// The exec'd file has no link on disk (a memfd, an `O_TMPFILE` file or a deleted
    /// one): its inode number.
    pub unlinked_inode: Option<u64>,
}

impl BinaryProperties {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// What an exec shows: `per_clear`, the file's inode and the ambient capabilities
    /// from its record, `creds` its new credentials, `before` the permitted set of the
    /// image it replaced (`None` when not known), `cred` whether `--enable-process-cred`
    /// is on. As Tetragon decides it: a privileged exec (`per_clear` set, by the kernel
    /// for a set-id file) whose effective id differs from its real one is set-user-ID
    /// (set-group-ID), a raise when it made a non-root user root. An exec that did not
    /// change the user id, whose effective user is its real one, and gained permitted
    /// capabilities ran a file with file capabilities: for a non-root user, whose exec keeps only its ambient
    /// capabilities (the kernel clears them when the file has its own), any permitted
    /// one beyond the ambient set; for root, any beyond those of the image it replaced
    /// (which a `capset` since may have changed).
    pub fn of_exec(
        exec: &crate::decode::Exec,
        creds: &Creds,
        before: Option<u64>,
        cred: bool,
    ) -> Self {
        let (ino, nlink) = (exec.ino, exec.nlink);
        let mut p = Self {
            unlinked_inode: (nlink == 0 && ino != 0 && ino != u64::MAX).then_some(ino),
            ..Self::default()
        };
        if !cred {
            return p;
        }
        if exec.per_clear != 0 && creds.euid != creds.uid {
            p.setuid = Some(creds.euid);
        }
        if exec.per_clear != 0 && creds.egid != creds.gid {
            p.setgid = Some(creds.egid);
        }
        let permitted = creds.caps.map_or(0, |c| c[1]);
        let gained = if creds.uid != 0 {
            permitted & !exec.ambient != 0
        } else {
            exec.per_clear != 0 && permitted & !before.unwrap_or(u64::MAX) != 0
        };
        // As Tetragon: not when the effective user differs from the real one (a
        // set-user-ID root program's child, whose root effective id gave it all).
        if p.setuid.is_none() && creds.euid == creds.uid && gained {
            p.privileges_changed.push("PRIVILEGES_RAISED_EXEC_FILE_CAP");
        }
        if p.setuid == Some(0) && creds.uid != 0 {
            p.privileges_changed
                .push("PRIVILEGES_RAISED_EXEC_FILE_SETUID");
        }
        if p.setgid == Some(0) && creds.gid != 0 {
            p.privileges_changed
                .push("PRIVILEGES_RAISED_EXEC_FILE_SETGID");
        }
        p
    }
}

/// Whether a process whose pid is `pid`, `ns_pid` in its own namespace, is the init of
/// a container's pid namespace ([`flags::IN_INIT_TREE`]).
pub fn container_init(pid: u32, ns_pid: u32) -> bool {
    ns_pid == 1 && pid != 1
}

/// The user name of a process of `uid` whose pid in its own namespace is `ns_pid`: only
/// in the host's pid namespace (where the two pids are the same).
pub fn user_name(pid: u32, ns_pid: u32, uid: u32) -> Option<Arc<str>> {
    (ns_pid == pid).then(|| users::name_of(uid)).flatten()
}

/// The process object's JSON as the last event wrote it, and the pod enrichment it was
/// written with ([`crate::event::ProcessOut::enrichment`]). A process's exec, its policy
/// events, its exit and its children's events (as `parent`) write the same object: the
/// encoder copies it rather than encoding it again. A copy of a process (a fork starts
/// as one of its parent) starts empty.
#[derive(Debug, Default)]
pub struct JsonCache(std::sync::Mutex<Option<(u64, Box<serde_json::value::RawValue>)>>);

impl JsonCache {
    /// Writes the cached object if it was written with `enrichment`. Else writes
    /// `object`, and with `keep` keeps it (an object likely written only once, such as a
    /// short process's exec, is not worth a copy of its own).
    pub fn write<S: serde::Serializer>(
        &self,
        enrichment: u64,
        keep: bool,
        object: &impl serde::Serialize,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        use serde::Serialize as _;
        let mut cached = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((e, json)) = cached.as_ref()
            && *e == enrichment
        {
            return json.serialize(s);
        }
        if !keep {
            return object.serialize(s);
        }
        let json = serde_json::value::to_raw_value(object).map_err(serde::ser::Error::custom)?;
        let r = json.serialize(s);
        *cached = Some((enrichment, json));
        r
    }

    pub fn is_empty(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none()
    }
}

impl Clone for JsonCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Derived data: equal whenever the processes are.
impl PartialEq for JsonCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for JsonCache {}

/// Tetragon's exec id: base64 (standard, padded) of `<node>:<ktime>:<pid>`.
pub fn exec_id(node: &str, ktime_ns: u64, pid: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{node}:{ktime_ns}:{pid}"))
}

/// The arguments after `argv[0]`, space-separated; an argument that is empty or holds a
/// space, a tab, a newline, a quote or a backslash is written in double quotes, with
/// `"` and `\` escaped by a backslash, so that the string splits back into the argv.
pub fn encode_arguments(args: &[String]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let needs_quotes = a.is_empty() || a.contains([' ', '\t', '\n', '"', '\'', '\\']);
        if !needs_quotes {
            out.push_str(a);
            continue;
        }
        out.push('"');
        for c in a.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_id_is_tetragon_shaped() {
        // base64("node1:1234:42")
        assert_eq!(exec_id("node1", 1234, 42), "bm9kZTE6MTIzNDo0Mg==");
    }

    #[test]
    fn arguments_quote_what_would_not_split_back() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(encode_arguments(&args(&["-la", "/tmp"])), "-la /tmp");
        assert_eq!(
            encode_arguments(&args(&["-c", "echo 'hi there'", ""])),
            r#"-c "echo 'hi there'" """#
        );
        assert_eq!(
            encode_arguments(&args(&[r#"say "x"\"#])),
            r#""say \"x\"\\""#
        );
        assert_eq!(encode_arguments(&[]), "");
    }

    #[test]
    fn binary_properties_as_tetragon_decides_them() {
        let creds = |uid, euid, gid, egid, permitted| Creds {
            uid,
            euid,
            gid,
            egid,
            caps: Some([permitted, permitted, 0]),
            ..Creds::default()
        };
        let exec = |per_clear, ino, nlink| crate::decode::Exec {
            per_clear,
            ino,
            nlink,
            ..crate::decode::Exec::default()
        };
        let ambient = |set| crate::decode::Exec {
            ambient: set,
            ..exec(0, 12, 1)
        };
        let of = BinaryProperties::of_exec;
        // An ordinary exec: nothing, with or without the flag.
        assert!(
            of(
                &exec(0, 12, 1),
                &creds(1000, 1000, 1000, 1000, 0),
                None,
                true
            )
            .is_empty()
        );
        // A set-user-ID root file run by a user (su, sudo, passwd).
        let su = of(
            &exec(1, 12, 1),
            &creds(1000, 0, 1000, 1000, !0),
            Some(0),
            true,
        );
        assert_eq!(su.setuid, Some(0));
        assert_eq!(su.setgid, None);
        assert_eq!(
            su.privileges_changed,
            ["PRIVILEGES_RAISED_EXEC_FILE_SETUID"]
        );
        // Without --enable-process-cred: not written.
        assert!(
            of(
                &exec(1, 12, 1),
                &creds(1000, 0, 1000, 1000, !0),
                Some(0),
                false
            )
            .is_empty()
        );
        // A set-group-ID file of another group: setgid, no raise.
        let sg = of(
            &exec(1, 12, 1),
            &creds(1000, 1000, 1000, 5, 0),
            Some(0),
            true,
        );
        assert_eq!((sg.setuid, sg.setgid), (None, Some(5)));
        assert!(sg.privileges_changed.is_empty());
        // File capabilities (ping's cap_net_raw) for a user, whatever the cache thought
        // it had before (a root process that dropped to the user: `before` is stale),
        // `per_clear` or not (the kernel may leave it clear for file capabilities).
        for per_clear in [0, 1] {
            let fc = of(
                &exec(per_clear, 12, 1),
                &creds(1000, 1000, 1000, 1000, 1 << 13),
                Some(!0),
                true,
            );
            assert_eq!(fc.privileges_changed, ["PRIVILEGES_RAISED_EXEC_FILE_CAP"]);
        }
        // The same capability kept as ambient: no raise.
        let kept = of(
            &ambient(1 << 13),
            &creds(1000, 1000, 1000, 1000, 1 << 13),
            None,
            true,
        );
        assert!(kept.is_empty(), "{kept:?}");
        // A user's process with a root effective id (inside a set-user-ID root program)
        // runs a plain file: all capabilities, from its effective id, not from the file.
        let euid_root = of(&exec(0, 12, 1), &creds(1000, 0, 1000, 1000, !0), None, true);
        assert!(euid_root.is_empty(), "{euid_root:?}");
        // Root running a set-user-ID root file: no id change, no capability gained.
        let root = of(&exec(1, 12, 1), &creds(0, 0, 0, 0, !0), None, true);
        assert!(root.is_empty());
        // A memfd (no link): always written, the flag or not.
        let memfd = of(&exec(0, 77, 0), &creds(0, 0, 0, 0, 0), None, false);
        assert_eq!(memfd.unlinked_inode, Some(77));
        // Unread inode: nothing.
        assert!(
            of(
                &exec(0, u64::MAX, u32::MAX),
                &creds(0, 0, 0, 0, 0),
                None,
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn flag_words_in_tetragon_order() {
        assert_eq!(flags::words(0), "");
        assert_eq!(
            flags::words(flags::EXECVE | flags::ROOT_CWD | flags::TRUNC_ARGS),
            "execve truncArgs rootcwd"
        );
        assert_eq!(flags::words(flags::PROCFS | flags::CLONE), "procFS clone");
        // Every word at once fits the buffer they are written into.
        let all: Vec<&str> = flags::WORDS.iter().map(|(_, w)| *w).collect();
        assert_eq!(flags::words(u32::MAX), all.join(" "));
    }
}
