//! Ring buffer bytes to typed records. Every length and kind is checked: a malformed
//! record is an error that says what is wrong with it, never a panic.

use std::mem::size_of;

use tracer_common::{
    event::{
        ENV_ERR, ENV_TRUNC, EXEC_SCRIPT, EnvEvent, EventHeader, EventKind, ExecEvent, ExitEvent,
        ForkEvent,
    },
    limits::{ARGS_MAX, ENV_MAX, FILENAME_MAX, PATH_BUF},
    policy::{ArgValue, CredValue, MAX_HOOK_ARGS, SockValue, TracepointEvent},
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than an event header ({need} bytes)")]
    TooShort { len: usize, need: usize },
    #[error("record has unknown kind {0}")]
    UnknownKind(u32),
    #[error("{kind} record of {len} bytes, expected at least {need}")]
    Truncated {
        kind: &'static str,
        len: usize,
        need: usize,
    },
    #[error("exec record field `{field}` says {len} bytes, more than its {max}-byte buffer")]
    BadLength {
        field: &'static str,
        len: u32,
        max: usize,
    },
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    Exec(Box<Exec>),
    Fork(ForkEvent),
    Exit(ExitEvent),
    /// A tracepoint hit a policy posted; its arguments are written with the policy's
    /// argument types (`policy::store`).
    Tracepoint(Box<TracepointEvent>),
    /// The environment of the exec that follows it (`EnvEvent`).
    Env(Box<Env>),
}

/// An environment record: its `\0`-separated `KEY=VALUE` strings, whole ones only, left
/// as bytes until its exec ([`EnvJson::decode`]): most execs keep their parent's
/// environment, and share its decoding then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub header: EventHeader,
    pub area: Vec<u8>,
    /// The area was longer than the capture bound: the last, partial, variable is
    /// dropped.
    pub truncated: bool,
    /// The area could not be read.
    pub error: bool,
}

/// Environment variables, written as Tetragon's `EnvVar`s (proto fields `Key` and
/// `Value`, capitalised). A string without `=` has the key `invalid` (as Tetragon writes
/// it). All of them live in one text, each variable a pair of ranges into it: one
/// allocation per environment, not two per variable.
#[derive(Debug, Clone, Default)]
pub struct EnvVars {
    text: String,
    vars: Vec<EnvSpan>,
}

/// One variable of [`EnvVars`]: byte ranges of its `text`; [`NO_KEY`] for a string
/// without `=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EnvSpan {
    key: (u32, u32),
    value: (u32, u32),
}

/// The key range of a string without `=`, whose key is written as [`INVALID_KEY`].
const NO_KEY: (u32, u32) = (u32::MAX, u32::MAX);

impl EnvSpan {
    fn key<'t>(&self, text: &'t str) -> &'t str {
        if self.key == NO_KEY {
            INVALID_KEY
        } else {
            slice(text, self.key)
        }
    }

    fn value<'t>(&self, text: &'t str) -> &'t str {
        slice(text, self.value)
    }
}

/// A range of an environment's text: always whole characters, as `EnvVars::parse` and
/// `EnvVars::from_pairs` cut it.
fn slice(text: &str, (a, b): (u32, u32)) -> &str {
    text.get(a as usize..b as usize).unwrap_or_default()
}

const INVALID_KEY: &str = "invalid";

impl EnvVars {
    /// The `\0`-separated `KEY=VALUE` strings of `area` (empty ones skipped), each
    /// split at its first `=`; invalid UTF-8 replaced, as `String::from_utf8_lossy`
    /// does (which never merges a byte sequence across the ASCII `\0` or `=`).
    pub fn parse(area: &[u8]) -> Self {
        // Checked at once first: valid text (the usual case) takes the word-at-a-time
        // ASCII path that `from_utf8_lossy`'s chunks do not.
        let text = match std::str::from_utf8(area) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(area).into_owned(),
        };
        let mut vars = Vec::with_capacity(text.bytes().filter(|&b| b == 0).count() + 1);
        let mut at = 0;
        for s in text.split('\0') {
            let start = at;
            at += s.len() + 1;
            if s.is_empty() {
                continue;
            }
            let span = |from: usize, to: usize| (from as u32, to as u32);
            vars.push(match s.find('=') {
                Some(eq) => EnvSpan {
                    key: span(start, start + eq),
                    value: span(start + eq + 1, start + s.len()),
                },
                None => EnvSpan {
                    key: NO_KEY,
                    value: span(start, start + s.len()),
                },
            });
        }
        Self { text, vars }
    }

    /// From `(key, value)` pairs (a saved process cache, tests).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut env = Self::default();
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            let key = if k == INVALID_KEY {
                NO_KEY
            } else {
                let start = env.text.len() as u32;
                env.text.push_str(k);
                (start, env.text.len() as u32)
            };
            let start = env.text.len() as u32;
            env.text.push_str(v);
            env.vars.push(EnvSpan {
                key,
                value: (start, env.text.len() as u32),
            });
        }
        env
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Each variable's key and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.vars
            .iter()
            .map(|v| (v.key(&self.text), v.value(&self.text)))
    }

    /// Keeps the variables whose key `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let Self { text, vars } = self;
        vars.retain(|v| keep(v.key(text)));
    }
}

/// The same variables, however their text is laid out.
impl PartialEq for EnvVars {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for EnvVars {}

impl serde::Serialize for EnvVars {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        /// One `EnvVar`: an empty key or value left out, as protobuf's JSON does.
        struct Var<'a>(&'a str, &'a str);
        impl serde::Serialize for Var<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let n = usize::from(!self.0.is_empty()) + usize::from(!self.1.is_empty());
                let mut m = s.serialize_map(Some(n))?;
                if !self.0.is_empty() {
                    m.serialize_entry("Key", self.0)?;
                }
                if !self.1.is_empty() {
                    m.serialize_entry("Value", self.1)?;
                }
                m.end()
            }
        }
        let mut seq = s.serialize_seq(Some(self.vars.len()))?;
        for (k, v) in self.iter() {
            seq.serialize_element(&Var(k, v))?;
        }
        seq.end()
    }
}

/// An environment as process objects write it: its JSON array, encoded once (at the
/// first exec that has it, after `--filter-environment-variables`) and copied into each
/// event after. The processes that have the same environment share one.
#[derive(Debug, Clone, Default)]
pub struct EnvJson {
    json: Option<Box<serde_json::value::RawValue>>,
    len: usize,
    /// The record's area it was decoded from (before the filter, which is the same for
    /// every exec), at most the kernel's 8 KiB bound, to know it again; none when built
    /// from variables.
    area: Option<Box<[u8]>>,
}

impl EnvJson {
    /// Decodes an environment record's area, keeping the variables whose key `keep`
    /// holds (all without it).
    pub fn decode(area: Vec<u8>, keep: Option<&std::collections::HashSet<String>>) -> Self {
        let mut vars = EnvVars::parse(&area);
        if let Some(keep) = keep {
            vars.retain(|key| keep.contains(key));
        }
        Self {
            area: Some(area.into_boxed_slice()),
            ..Self::from(&vars)
        }
    }

    /// Whether this was decoded from `area`: then decoding `area` gives it again.
    pub fn is_from(&self, area: &[u8]) -> bool {
        self.area.as_deref() == Some(area)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The variables back (a saved process cache, tests): parsed from the JSON.
    pub fn to_vars(&self) -> EnvVars {
        #[derive(serde::Deserialize)]
        struct Var {
            #[serde(rename = "Key", default)]
            key: String,
            #[serde(rename = "Value", default)]
            value: String,
        }
        let vars: Vec<Var> = self
            .json
            .as_deref()
            .and_then(|j| serde_json::from_str(j.get()).ok())
            .unwrap_or_default();
        EnvVars::from_pairs(vars.into_iter().map(|v| (v.key, v.value)))
    }
}

impl From<&EnvVars> for EnvJson {
    fn from(vars: &EnvVars) -> Self {
        Self {
            // Strings in a list: encoding cannot fail.
            json: (!vars.is_empty())
                .then(|| serde_json::value::to_raw_value(vars).ok())
                .flatten(),
            len: vars.len(),
            area: None,
        }
    }
}

impl PartialEq for EnvJson {
    fn eq(&self, other: &Self) -> bool {
        self.json.as_deref().map(|j| j.get()) == other.json.as_deref().map(|j| j.get())
    }
}

impl Eq for EnvJson {}

impl serde::Serialize for EnvJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.json {
            Some(json) => json.serialize(s),
            None => s.collect_seq(std::iter::empty::<()>()),
        }
    }
}

/// A decoded exec: the kernel's `ExecEvent` with its buffers turned into strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exec {
    pub header: EventHeader,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub auid: u32,
    /// `EXEC_*` bits.
    pub flags: u32,
    pub start_ns: u64,
    /// The pid in the process's own pid namespace; 0 if unread.
    pub ns_pid: u32,
    /// Saved and filesystem ids, `securebits`.
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub securebits: u32,
    /// Effective, permitted, inheritable capability sets.
    pub caps: [u64; 3],
    /// The ambient capability set.
    pub ambient: u64,
    /// Namespace inodes, by `policy::NS_*` minus 1.
    pub ns: [u32; tracer_common::event::NS_COUNT],
    /// `linux_binprm.per_clear`: non-zero for a privileged exec.
    pub per_clear: u32,
    /// The exec'd file's inode number and link count (`u64::MAX`/`u32::MAX` if unread).
    pub ino: u64,
    pub nlink: u32,
    /// The path given to exec, as given.
    pub filename: String,
    /// Absolute path of the exec'd file (for a script, its interpreter).
    pub binary: String,
    /// Absolute path of the working directory.
    pub cwd: String,
    /// The argument list, `argv[0]` included.
    pub argv: Vec<String>,
}

impl Exec {
    pub fn is_script(&self) -> bool {
        self.flags & EXEC_SCRIPT != 0
    }
}

pub fn decode(bytes: &[u8]) -> Result<RawEvent, DecodeError> {
    let header: EventHeader = read(bytes, "header")?;
    match EventKind::from_u32(header.kind) {
        Some(EventKind::Exec) => {
            let ev = view::<ExecEvent>(bytes, "exec")?;
            decode_exec(&ev).map(|e| RawEvent::Exec(Box::new(e)))
        }
        Some(EventKind::Fork) => read(bytes, "fork").map(RawEvent::Fork),
        Some(EventKind::Exit) => read(bytes, "exit").map(RawEvent::Exit),
        Some(EventKind::Tracepoint) => {
            let ev: TracepointEvent = read(bytes, "tracepoint")?;
            if ev.nargs as usize > MAX_HOOK_ARGS {
                return Err(DecodeError::BadLength {
                    field: "nargs",
                    len: ev.nargs,
                    max: MAX_HOOK_ARGS,
                });
            }
            Ok(RawEvent::Tracepoint(Box::new(ev)))
        }
        Some(EventKind::Env) => {
            let ev = view::<EnvEvent>(bytes, "env")?;
            decode_env(&ev).map(|e| RawEvent::Env(Box::new(e)))
        }
        None => Err(DecodeError::UnknownKind(header.kind)),
    }
}

/// The socket a `sock` or `skb` argument holds: the kernel writes a `SockValue` at the
/// start of the value's bytes.
pub fn sock_value(v: &ArgValue) -> SockValue {
    read(&v.str, "sock").unwrap_or_default()
}

/// The credentials a `cred` argument holds: a `CredValue` at the start of its bytes.
pub fn cred_value(v: &ArgValue) -> CredValue {
    read(&v.str, "cred").unwrap_or_default()
}

fn read<T: aya::Pod>(bytes: &[u8], kind: &'static str) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(if kind == "header" {
            DecodeError::TooShort {
                len: bytes.len(),
                need,
            }
        } else {
            DecodeError::Truncated {
                kind,
                len: bytes.len(),
                need,
            }
        });
    }
    // SAFETY: `bytes` holds at least `size_of::<T>()` bytes, `T: Pod` accepts any bit
    // pattern, and the read is unaligned-safe.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// A record read in place where `bytes` is aligned for it (the ring buffer's records
/// are, at 8 bytes), else copied: the large records (an exec's, an environment's, over 8
/// KiB each) are decoded without a copy of their unused buffers.
fn view<'a, T: aya::Pod>(
    bytes: &'a [u8],
    kind: &'static str,
) -> Result<std::borrow::Cow<'a, T>, DecodeError> {
    if bytes.len() >= size_of::<T>() && bytes.as_ptr().align_offset(align_of::<T>()) == 0 {
        // SAFETY: `bytes` holds at least `size_of::<T>()` bytes at an address aligned for
        // `T`, `T: Pod` accepts any bit pattern, and the reference borrows `bytes`.
        Ok(std::borrow::Cow::Borrowed(unsafe {
            &*bytes.as_ptr().cast::<T>()
        }))
    } else {
        read(bytes, kind).map(std::borrow::Cow::Owned)
    }
}

fn field<'a>(buf: &'a [u8], len: u32, field: &'static str) -> Result<&'a [u8], DecodeError> {
    buf.get(..len as usize).ok_or(DecodeError::BadLength {
        field,
        len,
        max: buf.len(),
    })
}

fn decode_exec(ev: &ExecEvent) -> Result<Exec, DecodeError> {
    debug_assert_eq!(ev.args.len(), ARGS_MAX);
    debug_assert_eq!(ev.binary.len(), PATH_BUF);
    debug_assert_eq!(ev.filename.len(), FILENAME_MAX);
    let filename = field(&ev.filename, ev.filename_len, "filename")?;
    Ok(Exec {
        header: ev.header,
        ppid: ev.ppid,
        uid: ev.uid,
        gid: ev.gid,
        euid: ev.euid,
        egid: ev.egid,
        auid: ev.auid,
        flags: ev.flags,
        start_ns: ev.start_ns,
        ns_pid: ev.ns_pid,
        suid: ev.suid,
        sgid: ev.sgid,
        fsuid: ev.fsuid,
        fsgid: ev.fsgid,
        securebits: ev.securebits,
        caps: ev.caps,
        ambient: ev.ambient,
        ns: ev.ns,
        per_clear: ev.per_clear,
        ino: ev.ino,
        nlink: ev.nlink,
        filename: lossy(filename.split(|&b| b == 0).next().unwrap_or_default()),
        binary: path_from_components(field(&ev.binary, ev.binary_len, "binary")?),
        cwd: path_from_components(field(&ev.cwd, ev.cwd_len, "cwd")?),
        argv: split_args(field(&ev.args, ev.args_len, "args")?),
    })
}

fn decode_env(ev: &EnvEvent) -> Result<Env, DecodeError> {
    debug_assert_eq!(ev.env.len(), ENV_MAX);
    let area = field(&ev.env, ev.len, "env")?;
    let truncated = ev.flags & ENV_TRUNC != 0;
    // A cut area ends in the middle of a variable: that one is dropped, not guessed at.
    let whole = if truncated {
        area.iter()
            .rposition(|&b| b == 0)
            .map_or(&area[..0], |end| &area[..end + 1])
    } else {
        area
    };
    Ok(Env {
        header: ev.header,
        area: whole.to_vec(),
        truncated,
        error: ev.flags & ENV_ERR != 0,
    })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `env\0bin\0usr\0` (leaf first, as the kernel walks) to `/usr/bin/env`.
pub fn path_from_components(buf: &[u8]) -> String {
    let mut parts: Vec<&[u8]> = buf.split(|&b| b == 0).filter(|c| !c.is_empty()).collect();
    parts.reverse();
    let mut path = String::with_capacity(buf.len() + 1);
    for p in parts {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(p));
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// The argument area (`a\0b\0`) to its arguments. A cut area ends without a NUL: its
/// last argument is kept as far as it goes. Empty arguments are kept.
pub fn split_args(buf: &[u8]) -> Vec<String> {
    if buf.is_empty() {
        return Vec::new();
    }
    let body = buf.strip_suffix(&[0]).unwrap_or(buf);
    body.split(|&b| b == 0).map(lossy).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::event::EXEC_TRUNC_ARGS;

    fn exec_record() -> ExecEvent {
        // SAFETY: ExecEvent is plain data; all zeroes is a valid value.
        let mut ev: ExecEvent = unsafe { std::mem::zeroed() };
        ev.header = EventHeader {
            kind: EventKind::Exec as u32,
            tid: 42,
            ktime_ns: 1000,
            pid: 42,
            _pad: 0,
            cgroup_id: 7,
        };
        ev.ppid = 1;
        ev.uid = 1000;
        ev.auid = u32::MAX;
        let put = |dst: &mut [u8], src: &[u8]| {
            dst[..src.len()].copy_from_slice(src);
            src.len() as u32
        };
        ev.filename_len = put(&mut ev.filename, b"./run\0");
        ev.binary_len = put(&mut ev.binary, b"true\0bin\0usr\0");
        ev.cwd_len = put(&mut ev.cwd, b"");
        ev.args_len = put(&mut ev.args, b"./run\0a b\0\0c\0");
        ev
    }

    fn bytes_of<T: aya::Pod>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a Pod value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn decodes_an_exec() {
        let RawEvent::Exec(e) = decode(&bytes_of(&exec_record())).unwrap() else {
            panic!("an exec")
        };
        assert_eq!(e.header.pid, 42);
        assert_eq!(e.filename, "./run");
        assert_eq!(e.binary, "/usr/bin/true");
        assert_eq!(e.cwd, "/");
        assert_eq!(e.argv, ["./run", "a b", "", "c"]);
        assert!(!e.is_script());
    }

    /// A record is decoded alike in place (aligned, as the ring buffer hands them) and
    /// copied (at any address).
    #[test]
    fn records_decode_aligned_and_unaligned() {
        let bytes = bytes_of(&exec_record());
        // u64s: an 8-byte aligned buffer; its bytes shifted by one: not aligned.
        let mut words = vec![0u64; bytes.len().div_ceil(8) + 1];
        // SAFETY: the bytes of a Vec<u64> long enough for the record and one byte more.
        let raw = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8)
        };
        raw[..bytes.len()].copy_from_slice(&bytes);
        let aligned = decode(&raw[..bytes.len()]).unwrap();
        raw.copy_within(..bytes.len(), 1);
        let unaligned = decode(&raw[1..=bytes.len()]).unwrap();
        assert_eq!(aligned, unaligned);
        let RawEvent::Exec(e) = aligned else {
            panic!("an exec")
        };
        assert_eq!(e.argv, ["./run", "a b", "", "c"]);
    }

    #[test]
    fn truncated_args_keep_the_partial_last_argument() {
        assert_eq!(split_args(b"ls\0-la\0/very/lo"), ["ls", "-la", "/very/lo"]);
        assert_eq!(split_args(b""), Vec::<String>::new());
        let mut ev = exec_record();
        ev.flags = EXEC_TRUNC_ARGS;
        let RawEvent::Exec(e) = decode(&bytes_of(&ev)).unwrap() else {
            panic!()
        };
        assert_eq!(e.flags, EXEC_TRUNC_ARGS);
    }

    #[test]
    fn an_environment_splits_at_the_first_equals_and_drops_a_cut_variable() {
        // SAFETY: EnvEvent is plain data; all zeroes is a valid value.
        let mut ev: EnvEvent = unsafe { std::mem::zeroed() };
        ev.header.kind = EventKind::Env as u32;
        let area = b"PATH=/bin\0A=b=c\0junk\0\0LONG=abc";
        ev.env[..area.len()].copy_from_slice(area);
        ev.len = area.len() as u32;
        ev.flags = ENV_TRUNC;
        let RawEvent::Env(e) = decode(&bytes_of(&ev)).unwrap() else {
            panic!("an env record")
        };
        let vars = EnvJson::decode(e.area, None).to_vars();
        let pairs: Vec<(&str, &str)> = vars.iter().collect();
        assert_eq!(pairs, [("PATH", "/bin"), ("A", "b=c"), ("invalid", "junk")]);
        assert!(e.truncated && !e.error);
        ev.len = ENV_MAX as u32 + 1;
        assert!(matches!(
            decode(&bytes_of(&ev)),
            Err(DecodeError::BadLength { field: "env", .. })
        ));
    }

    /// Invalid UTF-8 is replaced as a variable on its own would have it; an empty key
    /// or value is left out of the JSON; `invalid` survives a round trip through pairs.
    #[test]
    fn environment_variables_share_one_text() {
        let env = EnvVars::parse(b"K\xff=v\xc3\0=x\0bare\0E=\0");
        let pairs: Vec<(&str, &str)> = env.iter().collect();
        assert_eq!(
            pairs,
            [
                ("K\u{fffd}", "v\u{fffd}"),
                ("", "x"),
                ("invalid", "bare"),
                ("E", "")
            ]
        );
        assert_eq!(
            serde_json::to_value(&env).unwrap(),
            serde_json::json!([
                {"Key": "K\u{fffd}", "Value": "v\u{fffd}"},
                {"Value": "x"},
                {"Key": "invalid", "Value": "bare"},
                {"Key": "E"}
            ])
        );
        assert_eq!(EnvVars::from_pairs(pairs.iter().copied()), {
            let mut again = EnvVars::from_pairs(env.iter());
            again.retain(|_| true);
            again
        });
        let mut kept = env.clone();
        kept.retain(|k| k == "invalid" || k == "E");
        assert_eq!(
            kept.iter().collect::<Vec<_>>(),
            [("invalid", "bare"), ("E", "")]
        );
        assert!(EnvVars::parse(b"\0\0").is_empty());
    }

    /// A process's environment is its JSON, encoded once: the same text, and the same
    /// variables back.
    #[test]
    fn an_environment_is_encoded_once() {
        let vars = EnvVars::parse(b"A=1\0bare\0=x\0Q=\"\n\0");
        let json = EnvJson::from(&vars);
        assert_eq!(json.len(), 4);
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            serde_json::to_string(&vars).unwrap()
        );
        assert_eq!(json.to_vars(), vars);
        let none = EnvJson::from(&EnvVars::default());
        assert!(none.is_empty() && none == EnvJson::default());
        assert_eq!(serde_json::to_string(&none).unwrap(), "[]");
    }

    #[test]
    fn paths_are_reversed_components() {
        assert_eq!(path_from_components(b""), "/");
        assert_eq!(path_from_components(b"tmp\0"), "/tmp");
        assert_eq!(path_from_components(b"c\0b\0a\0"), "/a/b/c");
    }

    #[test]
    fn decodes_fork_and_exit() {
        let fork = ForkEvent {
            header: EventHeader {
                kind: EventKind::Fork as u32,
                pid: 5,
                tid: 5,
                ..Default::default()
            },
            ppid: 4,
            ns_pid: 9,
            start_ns: 9,
        };
        assert_eq!(decode(&bytes_of(&fork)).unwrap(), RawEvent::Fork(fork));
        let exit = ExitEvent {
            header: EventHeader {
                kind: EventKind::Exit as u32,
                ..Default::default()
            },
            exit_code: 9,
            _pad: 0,
            start_ns: 9,
        };
        assert_eq!(decode(&bytes_of(&exit)).unwrap(), RawEvent::Exit(exit));
    }

    #[test]
    fn malformed_records_are_errors() {
        assert_eq!(
            decode(&[1, 0, 0]),
            Err(DecodeError::TooShort { len: 3, need: 32 })
        );
        let mut b = bytes_of(&EventHeader {
            kind: 99,
            ..Default::default()
        });
        assert_eq!(decode(&b), Err(DecodeError::UnknownKind(99)));
        b[0] = EventKind::Exec as u8;
        assert!(matches!(
            decode(&b),
            Err(DecodeError::Truncated { kind: "exec", .. })
        ));
        let mut ev = exec_record();
        ev.args_len = ARGS_MAX as u32 + 1;
        assert_eq!(
            decode(&bytes_of(&ev)),
            Err(DecodeError::BadLength {
                field: "args",
                len: ARGS_MAX as u32 + 1,
                max: ARGS_MAX
            })
        );
    }
}
