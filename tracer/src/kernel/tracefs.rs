//! tracefs: where the kernel lists its tracepoints, and the layout of each one's record.
//! Minimal systems boot without it mounted; the agent mounts it, as
//! `mount -t tracefs nodev /sys/kernel/tracing` would.
//!
//! A tracepoint's `format` file gives its event id and its fields, common ones first:
//!
//! ```text
//! name: sys_enter_openat
//! ID: 782
//! format:
//!     field:unsigned short common_type;    offset:0;    size:2;    signed:0;
//! ...
//!     field:const char * filename;    offset:24;    size:8;    signed:0;
//! ```
//!
//! A policy's `args[].index` counts these fields from 0, common ones included, as
//! Tetragon's does: `raw_syscalls/sys_enter` has `id` at index 4 and `args` at 5.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

pub const TRACEFS: &str = "/sys/kernel/tracing";

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot mount tracefs at {path}: {source}; mount it by hand with `mount -t tracefs nodev {path}` (in a container, on the node: the DaemonSet mounts the node's {path}, and its agent has no CAP_SYS_ADMIN to mount it itself)"
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

/// How the bytes of a field are to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// An integer of `size` bytes.
    Int,
    /// `char *`: a pointer to a NUL-terminated string (user memory for syscall arguments).
    StringPointer,
    /// Any other pointer: read as an unsigned integer.
    Pointer,
    /// `char name[N]`: the string is in the record.
    CharArray,
    /// `__data_loc char[] name`: a u32 giving the string's offset (low 16 bits) and length
    /// (high 16 bits) in the record.
    DataLoc,
    /// An array of integers (`unsigned long args[6]`): `elem` bytes each.
    Array { elem: u16 },
    /// Anything else (a flexible array): can be copied as bytes only.
    Opaque,
}

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The C type as written (`const char *`, `unsigned long`).
    pub c_type: String,
    pub offset: u16,
    pub size: u16,
    pub signed: bool,
    pub kind: FieldKind,
}

/// A tracepoint's record layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub name: String,
    /// The event id, which is also the record's `common_type`.
    pub id: u16,
    pub fields: Vec<Field>,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("tracepoint {subsystem}/{event} does not exist on this kernel (no {path})")]
    NoTracepoint {
        subsystem: String,
        event: String,
        path: PathBuf,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {what}")]
    Parse {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

/// Reads the format of `subsystem/event` under the tracefs mounted at `root`.
pub fn format(root: &Path, subsystem: &str, event: &str) -> Result<Format, FormatError> {
    let path = root
        .join("events")
        .join(subsystem)
        .join(event)
        .join("format");
    let text = std::fs::read_to_string(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            FormatError::NoTracepoint {
                subsystem: subsystem.to_owned(),
                event: event.to_owned(),
                path: path.clone(),
            }
        } else {
            FormatError::Read {
                path: path.clone(),
                source,
            }
        }
    })?;
    parse_format(&text).map_err(|(line, what)| FormatError::Parse { path, line, what })
}

/// Parses the text of a `format` file; an error is (line, what).
pub fn parse_format(text: &str) -> Result<Format, (usize, String)> {
    let mut name = None;
    let mut id = None;
    let mut fields = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if let Some(v) = line.strip_prefix("name:") {
            name = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("ID:") {
            id = Some(
                v.trim()
                    .parse::<u16>()
                    .map_err(|e| (line_no, format!("ID `{}`: {e}", v.trim())))?,
            );
        } else if line.starts_with("field:") {
            fields.push(parse_field(line).map_err(|what| (line_no, what))?);
        } else if line.starts_with("print fmt:") {
            break;
        }
    }
    Ok(Format {
        name: name.ok_or((0, "no `name:` line".to_owned()))?,
        id: id.ok_or((0, "no `ID:` line".to_owned()))?,
        fields,
    })
}

/// `field:const char * filename;\toffset:24;\tsize:8;\tsigned:0;`
fn parse_field(line: &str) -> Result<Field, String> {
    let mut decl = None;
    let (mut offset, mut size, mut signed) = (None, None, false);
    for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once(':')
            .ok_or_else(|| format!("`{part}` is not `key:value`"))?;
        let num = || {
            value
                .trim()
                .parse::<u16>()
                .map_err(|e| format!("{key} `{value}`: {e}"))
        };
        match key {
            "field" => decl = Some(value.trim()),
            "offset" => offset = Some(num()?),
            "size" => size = Some(num()?),
            "signed" => signed = value.trim() == "1",
            _ => {}
        }
    }
    let decl = decl.ok_or("no field declaration")?;
    let offset = offset.ok_or("no offset")?;
    let size = size.ok_or("no size")?;
    // The name is the last word; an array suffix stays with it.
    let split = decl
        .rfind([' ', '*'])
        .ok_or_else(|| format!("`{decl}` has no type"))?;
    let (c_type, raw_name) = decl.split_at(split + 1);
    let c_type = c_type.trim().to_owned();
    let (name, array) = match raw_name.find('[') {
        Some(i) => (&raw_name[..i], Some(&raw_name[i..])),
        None => (raw_name, None),
    };
    let is_char = c_type.ends_with("char") || c_type.ends_with("char[]");
    let kind = if c_type.starts_with("__data_loc") {
        FieldKind::DataLoc
    } else if c_type.ends_with('*') {
        if c_type.trim_end_matches('*').trim().ends_with("char") {
            FieldKind::StringPointer
        } else {
            FieldKind::Pointer
        }
    } else if let Some(dims) = array {
        // `[6]`; a flexible `[]` or a symbolic size cannot be read element-wise.
        match dims.trim_matches(['[', ']']).parse::<u16>() {
            _ if is_char => FieldKind::CharArray,
            Ok(count) if count > 0 => FieldKind::Array { elem: size / count },
            _ => FieldKind::Opaque,
        }
    } else {
        FieldKind::Int
    };
    Ok(Field {
        name: name.to_owned(),
        c_type,
        offset,
        size,
        signed,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAT: &str = "name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: \"dfd: 0x%08lx\", ((unsigned long)(REC->dfd))
";

    #[test]
    fn parses_a_syscall_tracepoint() {
        let f = parse_format(OPENAT).unwrap();
        assert_eq!(
            (f.name.as_str(), f.id, f.fields.len()),
            ("sys_enter_openat", 782, 9)
        );
        assert_eq!(f.fields[0].name, "common_type");
        let filename = &f.fields[6];
        assert_eq!(
            filename,
            &Field {
                name: "filename".into(),
                c_type: "const char *".into(),
                offset: 24,
                size: 8,
                signed: false,
                kind: FieldKind::StringPointer
            }
        );
        assert_eq!(f.fields[4].kind, FieldKind::Int);
        assert!(f.fields[4].signed);
    }

    #[test]
    fn arrays_data_loc_and_char_arrays() {
        let f = parse_format(
            "name: x\nID: 1\n\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n\
             \tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
             \tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
             \tfield:struct file * file;\toffset:8;\tsize:8;\tsigned:0;\n",
        )
        .unwrap();
        let kinds: Vec<_> = f
            .fields
            .iter()
            .map(|x| (x.name.as_str(), x.kind.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("args", FieldKind::Array { elem: 8 }),
                ("filename", FieldKind::DataLoc),
                ("comm", FieldKind::CharArray),
                ("file", FieldKind::Pointer)
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse_format("name: x\nID: 1\n\tfield:int a;\toffset:x;\tsize:4;\n").unwrap_err(),
            (3, "offset `x`: invalid digit found in string".to_owned())
        );
    }

    #[test]
    fn every_tracepoint_of_this_kernel_parses() {
        let root = Path::new(TRACEFS);
        if !is_mounted(root) {
            println!(
                "SKIPPED every_tracepoint_of_this_kernel_parses: tracefs is not mounted at {TRACEFS}"
            );
            return;
        }
        let mut n = 0;
        for sub in std::fs::read_dir(root.join("events")).unwrap().flatten() {
            let Ok(events) = std::fs::read_dir(sub.path()) else {
                continue;
            };
            for ev in events.flatten() {
                let path = ev.path().join("format");
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let f = parse_format(&text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
                assert_eq!(
                    f.fields.first().map(|x| x.name.as_str()),
                    Some("common_type")
                );
                n += 1;
            }
        }
        assert!(n > 100, "{n} tracepoints");
        let exec = format(root, "sched", "sched_process_exec").unwrap();
        assert_eq!(exec.fields[4].kind, FieldKind::DataLoc);
        assert!(matches!(
            format(root, "sched", "no_such_event"),
            Err(FormatError::NoTracepoint { .. })
        ));
    }
}
