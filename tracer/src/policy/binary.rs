//! Where a uprobe goes in its binary: the file, as the agent sees it, and the file offset
//! of the probed instruction (a symbol's, from the ELF symbol tables); for a USDT probe
//! point, its note in `.note.stapsdt`: the instruction, the semaphore, and where each
//! argument is (`8@%rdi`, `-4@-20(%rbp)`).

use std::path::{Path, PathBuf};

use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _};

use crate::policy::spec::{Uprobe, UprobeAt};

/// Why a uprobe's place could not be found.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an ELF binary this tracer reads: {source}")]
    NotElf {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
    #[error(
        "{path} has no function `{symbol}` in its symbol tables (`nm -D {path}` lists the dynamic ones; a stripped binary keeps only those)"
    )]
    NoSymbol { path: PathBuf, symbol: String },
    #[error("{path}: `{symbol}` is at {address:#x}, in no loaded segment of the file")]
    NotLoaded {
        path: PathBuf,
        symbol: String,
        address: u64,
    },
    #[error(
        "{path} has no USDT probe point {provider}:{name} (`readelf -n {path}` lists its stapsdt notes{known})"
    )]
    NoUsdt {
        path: PathBuf,
        provider: String,
        name: String,
        /// `: a:b, c:d`, the probe points it has.
        known: String,
    },
    #[error("{path}: the stapsdt note of {provider}:{name} is malformed ({what})")]
    BadNote {
        path: PathBuf,
        provider: String,
        name: String,
        what: String,
    },
}

/// The bytes of the file at `path`.
fn read(path: &Path) -> Result<Vec<u8>, BinaryError> {
    std::fs::read(path).map_err(|source| BinaryError::Read {
        path: path.to_owned(),
        source,
    })
}

/// `data`, the file at `path`, read as an ELF file.
fn parse<'d>(path: &Path, data: &'d [u8]) -> Result<object::File<'d>, BinaryError> {
    object::File::parse(data).map_err(|source| BinaryError::NotElf {
        path: path.to_owned(),
        source,
    })
}

/// A USDT probe point, as its note describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsdtNote {
    /// The file offset of the probed instruction ...
    pub offset: u64,
    /// ... and of its semaphore (0: none).
    pub semaphore: u64,
    /// Its arguments' descriptions, as written (`-4@%eax 8@-16(%rbp)`).
    pub args: String,
}

/// The probe point `provider:name` of the ELF file at `path` (the first, where the
/// binary has several sites of it).
pub fn usdt(path: &Path, provider: &str, name: &str) -> Result<UsdtNote, BinaryError> {
    let data = read(path)?;
    let file = parse(path, &data)?;
    let bad = |what: &str| BinaryError::BadNote {
        path: path.to_owned(),
        provider: provider.to_owned(),
        name: name.to_owned(),
        what: what.to_owned(),
    };
    // Where `.stapsdt.base` is: notes record the address they expected it at, and a
    // prelinked binary moved it.
    let base = file.section_by_name(".stapsdt.base").map(|s| s.address());
    let mut known = Vec::new();
    for note in file
        .section_by_name(".note.stapsdt")
        .and_then(|s| s.data().ok())
        .map(stapsdt_notes)
        .unwrap_or_default()
    {
        let note = note.map_err(|what| bad(&what))?;
        if note.provider != provider || note.name != name {
            known.push(format!("{}:{}", note.provider, note.name));
            continue;
        }
        let pc = match (base, note.base) {
            (Some(actual), expected) if expected != 0 => {
                note.pc.wrapping_add(actual.wrapping_sub(expected))
            }
            _ => note.pc,
        };
        let offset = file_offset(&file, pc)
            .ok_or_else(|| bad(&format!("its address {pc:#x} is in no loaded segment")))?;
        let semaphore = if note.semaphore == 0 {
            0
        } else {
            file_offset(&file, note.semaphore).ok_or_else(|| {
                bad(&format!(
                    "its semaphore {:#x} is in no loaded segment",
                    note.semaphore
                ))
            })?
        };
        return Ok(UsdtNote {
            offset,
            semaphore,
            args: note.args,
        });
    }
    known.dedup();
    Err(BinaryError::NoUsdt {
        path: path.to_owned(),
        provider: provider.to_owned(),
        name: name.to_owned(),
        known: if known.is_empty() {
            ": it has none".to_owned()
        } else {
            format!("; it has {}", known.join(", "))
        },
    })
}

/// One stapsdt note (`sdt.h`, "version 3": type 3, name `stapsdt`).
struct StapsdtNote {
    pc: u64,
    base: u64,
    semaphore: u64,
    provider: String,
    name: String,
    args: String,
}

/// The stapsdt notes of a `.note.stapsdt` section's bytes (64-bit, little-endian: the
/// architectures the tracer runs on).
fn stapsdt_notes(data: &[u8]) -> Vec<Result<StapsdtNote, String>> {
    let mut out = Vec::new();
    let mut rest = data;
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let align4 = |n: usize| n.div_ceil(4) * 4;
    while rest.len() >= 12 {
        let (Some(namesz), Some(descsz), Some(ty)) = (word(rest, 0), word(rest, 4), word(rest, 8))
        else {
            break;
        };
        let (namesz, descsz) = (namesz as usize, descsz as usize);
        let name_end = 12 + align4(namesz);
        let desc_end = name_end + align4(descsz);
        let (Some(name), Some(desc)) = (
            rest.get(12..12 + namesz),
            rest.get(name_end..name_end + descsz),
        ) else {
            out.push(Err("a note runs past its section".to_owned()));
            break;
        };
        if ty == 3 && name == b"stapsdt\0" {
            out.push(stapsdt_note(desc));
        }
        rest = rest.get(desc_end..).unwrap_or_default();
    }
    out
}

fn stapsdt_note(desc: &[u8]) -> Result<StapsdtNote, String> {
    let addr = |at: usize| -> Result<u64, String> {
        desc.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| "shorter than its three addresses".to_owned())
    };
    let (pc, base, semaphore) = (addr(0)?, addr(8)?, addr(16)?);
    let mut strings = desc
        .get(24..)
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let (Some(provider), Some(name)) = (strings.next(), strings.next()) else {
        return Err("no provider and name".to_owned());
    };
    Ok(StapsdtNote {
        pc,
        base,
        semaphore,
        provider,
        name,
        args: strings.next().unwrap_or_default(),
    })
}

/// The file offset of virtual address `address`, through the loaded segment that holds it.
fn file_offset(file: &object::File<'_>, address: u64) -> Option<u64> {
    file.segments().find_map(|seg| {
        let (file_offset, file_size) = seg.file_range();
        let start = seg.address();
        (address >= start && address - start < file_size).then(|| file_offset + address - start)
    })
}

/// Where one USDT argument is, as its description says (x86-64 operands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsdtOperand<'a> {
    /// `$5`.
    Const(i64),
    /// `%rdi`: the `pt_regs` field this register is in (`di`).
    Reg(&'a str),
    /// `-20(%rbp)`: memory at a register plus an offset.
    Deref(&'a str, i64),
}

/// One USDT argument: its size in bytes, signedness, and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsdtArgSpec<'a> {
    pub size: u8,
    pub signed: bool,
    pub operand: UsdtOperand<'a>,
}

/// The arguments a note describes (`-4@%eax 8@-16(%rbp) 4@$5`), or why one cannot be
/// read (only x86-64's operands are known; indexed and `%rip`-relative ones are not read
/// yet).
pub fn usdt_args(text: &str) -> Result<Vec<UsdtArgSpec<'_>>, String> {
    text.split_whitespace()
        .map(|arg| {
            let (size, operand) = arg
                .split_once('@')
                .ok_or_else(|| format!("`{arg}` has no size (`8@%rdi`)"))?;
            let size: i8 = size
                .parse()
                .map_err(|_| format!("`{arg}`: `{size}` is not a size"))?;
            if ![1, 2, 4, 8].contains(&size.unsigned_abs()) {
                return Err(format!("`{arg}`: {size} bytes is not an argument size"));
            }
            let reg = |r: &str| {
                x86_reg(r).ok_or_else(|| format!("`{arg}`: `{r}` is not a register read here"))
            };
            let operand = if let Some(v) = operand.strip_prefix('$') {
                UsdtOperand::Const(
                    crate::policy::validate::names::parse_int(v)
                        .and_then(|v| i64::try_from(v).ok())
                        .ok_or_else(|| format!("`{arg}`: `{v}` is not a constant"))?,
                )
            } else if let Some(r) = operand.strip_prefix('%') {
                UsdtOperand::Reg(reg(r)?)
            } else if let Some((off, r)) = operand
                .strip_suffix(')')
                .and_then(|o| o.split_once("(%"))
            {
                let off = if off.is_empty() {
                    0
                } else {
                    crate::policy::validate::names::parse_int(off)
                        .and_then(|v| i64::try_from(v).ok())
                        .ok_or_else(|| {
                            format!("`{arg}`: `{off}` is not an offset (symbols and %rip-relative operands are not read yet)")
                        })?
                };
                if r.contains(',') {
                    return Err(format!("`{arg}`: indexed operands are not read yet"));
                }
                UsdtOperand::Deref(reg(r)?, off)
            } else {
                return Err(format!("`{arg}`: `{operand}` is not an operand read here"));
            };
            Ok(UsdtArgSpec {
                size: size.unsigned_abs(),
                signed: size < 0,
                operand,
            })
        })
        .collect()
}

/// The x86-64 `pt_regs` field that holds register `r` (any width: `rax`, `eax`, `ax`,
/// `al` are all `ax`).
fn x86_reg(r: &str) -> Option<&'static str> {
    Some(match r {
        "rax" | "eax" | "ax" | "al" | "ah" => "ax",
        "rbx" | "ebx" | "bx" | "bl" | "bh" => "bx",
        "rcx" | "ecx" | "cx" | "cl" | "ch" => "cx",
        "rdx" | "edx" | "dx" | "dl" | "dh" => "dx",
        "rsi" | "esi" | "si" | "sil" => "si",
        "rdi" | "edi" | "di" | "dil" => "di",
        "rbp" | "ebp" | "bp" | "bpl" => "bp",
        "rsp" | "esp" | "sp" | "spl" => "sp",
        "rip" => "ip",
        _ => {
            let n = r.strip_prefix('r')?;
            let n = n.trim_end_matches(['d', 'w', 'b']);
            return match n {
                "8" => Some("r8"),
                "9" => Some("r9"),
                "10" => Some("r10"),
                "11" => Some("r11"),
                "12" => Some("r12"),
                "13" => Some("r13"),
                "14" => Some("r14"),
                "15" => Some("r15"),
                _ => None,
            };
        }
    })
}

/// The file a uprobe's `path` names, as the agent sees it: `/procRoot/...` is the host's
/// `/proc` (where Tetragon's DaemonSet mounts it; the tracer's mounts it at `/proc`).
pub fn host_path(path: &str, proc_root: &Path) -> PathBuf {
    match path.strip_prefix("/procRoot/") {
        Some(rest) => proc_root.join(rest),
        None => PathBuf::from(path),
    }
}

/// The file and the file offset uprobe `u` is attached at.
pub fn place(u: &Uprobe, proc_root: &Path) -> Result<(PathBuf, u64), BinaryError> {
    let path = host_path(&u.path, proc_root);
    let offset = match &u.at {
        UprobeAt::Offset(o) => *o,
        UprobeAt::Symbol(symbol) => symbol_offset(&path, symbol)?,
    };
    Ok((path, offset))
}

/// The file offset of function `symbol` of the ELF file at `path`: from its symbol table
/// or, for a stripped binary, its dynamic one; the address mapped back to the file
/// through the loaded segment that holds it.
pub fn symbol_offset(path: &Path, symbol: &str) -> Result<u64, BinaryError> {
    let data = read(path)?;
    let file = parse(path, &data)?;
    let address = file
        .symbols()
        .chain(file.dynamic_symbols())
        .find(|s| s.is_definition() && s.address() != 0 && s.name() == Ok(symbol))
        .map(|s| s.address())
        .ok_or_else(|| BinaryError::NoSymbol {
            path: path.to_owned(),
            symbol: symbol.to_owned(),
        })?;
    file_offset(&file, address).ok_or_else(|| BinaryError::NotLoaded {
        path: path.to_owned(),
        symbol: symbol.to_owned(),
        address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary's own `main` (an exported symbol of every Rust test binary is not
    /// guaranteed; `main` is, in the symbol table of an unstripped one).
    #[test]
    fn finds_a_function_of_the_running_binary() {
        let exe = std::env::current_exe().expect("current exe");
        let offset = symbol_offset(&exe, "main").expect("main found");
        assert!(offset > 0);
        let len = std::fs::metadata(&exe).expect("metadata").len();
        assert!(offset < len, "{offset:#x} past the file ({len} bytes)");
    }

    #[test]
    fn says_which_symbol_is_missing() {
        let exe = std::env::current_exe().expect("current exe");
        let e = symbol_offset(&exe, "no_such_function_here").unwrap_err();
        assert!(
            e.to_string()
                .contains("no function `no_such_function_here`"),
            "{e}"
        );
        let e = symbol_offset(Path::new("/no/such/binary"), "main").unwrap_err();
        assert!(e.to_string().starts_with("reading /no/such/binary"), "{e}");
    }

    #[test]
    fn usdt_argument_descriptions() {
        use UsdtOperand::*;
        let got = usdt_args("-4@%eax 8@-16(%rbp) 4@$5 -1@(%r12) 8@%r9d 2@0x10(%rsp)").unwrap();
        let want = [
            (4, true, Reg("ax")),
            (8, false, Deref("bp", -16)),
            (4, false, Const(5)),
            (1, true, Deref("r12", 0)),
            (8, false, Reg("r9")),
            (2, false, Deref("sp", 16)),
        ];
        assert_eq!(got.len(), want.len());
        for (g, (size, signed, operand)) in got.iter().zip(want) {
            assert_eq!((g.size, g.signed, g.operand), (size, signed, operand));
        }
        assert_eq!(
            usdt_args("8@(%rax,%rbx,8)").unwrap_err(),
            "`8@(%rax,%rbx,8)`: indexed operands are not read yet"
        );
        assert_eq!(
            usdt_args("4@%xmm0").unwrap_err(),
            "`4@%xmm0`: `xmm0` is not a register read here"
        );
        assert_eq!(
            usdt_args("3@%rax").unwrap_err(),
            "`3@%rax`: 3 bytes is not an argument size"
        );
        assert!(usdt_args("").unwrap().is_empty());
    }

    /// A hand-made `.note.stapsdt` section: one other note, then ours.
    #[test]
    fn stapsdt_notes_are_read() {
        fn note(provider: &str, name: &str, args: &str) -> Vec<u8> {
            let mut desc = Vec::new();
            for a in [0x1000u64, 0x2000, 0x3000] {
                desc.extend(a.to_le_bytes());
            }
            for s in [provider, name, args] {
                desc.extend(s.as_bytes());
                desc.push(0);
            }
            let mut out = Vec::new();
            out.extend(8u32.to_le_bytes());
            out.extend((desc.len() as u32).to_le_bytes());
            out.extend(3u32.to_le_bytes());
            out.extend(b"stapsdt\0");
            let len = desc.len();
            out.extend(desc);
            out.resize(out.len() + (len.div_ceil(4) * 4 - len), 0);
            out
        }
        let mut data = note("other", "x", "");
        data.extend(note("test", "usdt3", "-4@%eax 8@%rdx"));
        let notes: Vec<_> = stapsdt_notes(&data)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(notes.len(), 2);
        assert_eq!(
            (
                notes[1].provider.as_str(),
                notes[1].name.as_str(),
                notes[1].args.as_str()
            ),
            ("test", "usdt3", "-4@%eax 8@%rdx")
        );
        assert_eq!(
            (notes[1].pc, notes[1].base, notes[1].semaphore),
            (0x1000, 0x2000, 0x3000)
        );
        assert!(stapsdt_notes(&data[..data.len() - 8])[1].is_err());
    }

    #[test]
    fn proc_root_is_the_hosts_proc() {
        assert_eq!(
            host_path("/procRoot/1/root/usr/bin/bash", Path::new("/proc")),
            Path::new("/proc/1/root/usr/bin/bash")
        );
        assert_eq!(
            host_path("/usr/bin/bash", Path::new("/proc")),
            Path::new("/usr/bin/bash")
        );
    }
}
