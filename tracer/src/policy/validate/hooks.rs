//! Tracepoints and kprobes: their names, arguments and the checks that span a hook.

use std::str::FromStr as _;

use marked_yaml::{Span, Spanned};

use super::{
    Check, List,
    names::{
        ARG_TYPES, KPROBE_ARG_TYPES, KPROBE_ARG_TYPES_UNSUPPORTED, RETURN_ARG_TYPES,
        UPROBE_ARG_TYPES, UPROBE_ARG_TYPES_UNSUPPORTED, arg_type,
    },
    selectors,
};
use crate::policy::{
    limits::{MAX_ARGS, MAX_MESSAGE, MAX_SELECTORS, MAX_TAGS},
    model::{Arg, Kprobe, LsmHook, Selector, Tracepoint, Uprobe, Usdt},
    spec,
};

pub(super) fn kprobe(c: &mut Check, k: &Spanned<Kprobe>, path: &str, lists: &[List]) -> spec::Hook {
    c.unsupported(&k.data, &format!("{path}.data"), "`data`");
    let call = k.call.as_str();
    if let Some(name) = call.strip_prefix("list:") {
        if !lists.iter().any(|l| l.name == name) {
            c.at(
                k.call.span(),
                format!("{path}.call"),
                format!("`{call}` names no list of `spec.lists`"),
                None,
            );
        }
    } else if call.is_empty()
        || !call
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.')
    {
        c.at(
            k.call.span(),
            format!("{path}.call"),
            format!("`{call}` is not a kernel function name"),
            None,
        );
    }
    let is_return = k.ret.as_ref().is_some_and(|r| **r);
    let return_arg = k.return_arg.as_ref().and_then(|a| {
        if !is_return {
            c.warn(
                a.index.span(),
                format!("{path}.returnArg"),
                "`returnArg` goes with `return: true`: ignored, the hook reports no return value",
                Some("add `return: true`, or remove `returnArg`".into()),
            );
            return None;
        }
        let ty = match &a.ty {
            None => spec::ArgType::Int {
                signed: true,
                wide: false,
            },
            Some(t) if RETURN_ARG_TYPES.contains(&t.as_str()) => arg_type(t)?,
            Some(t) => {
                c.at(
                    t.span(),
                    format!("{path}.returnArg.type"),
                    format!(
                        "return values are read as integers: one of {}",
                        RETURN_ARG_TYPES.join(", ")
                    ),
                    None,
                );
                return None;
            }
        };
        Some(spec::Arg {
            index: *a.index,
            ty,
            label: a.label.as_ref().map(|l| l.as_str().to_owned()),
            size_arg_index: None,
            return_copy: false,
            resolve: None,
            btf_type: None,
        })
    });
    let return_sock = k
        .return_arg_action
        .as_ref()
        .and_then(|a| return_arg_action(c, a, return_arg.as_ref(), is_return, path));
    if !is_return {
        for (s, sel) in k.selectors.iter().enumerate() {
            if let Some(m) = sel.match_return_args.first() {
                c.at(
                    m.index.span(),
                    format!("{path}.selectors[{s}].matchReturnArgs"),
                    "matchReturnArgs needs a return probe",
                    Some("add `return: true` and `returnArg`".into()),
                );
            }
        }
    }
    let parts = HookParts {
        args: &k.args,
        selectors: &k.selectors,
        tags: &k.tags,
        message: k.message.as_ref(),
        anchor: *k.call.span(),
        arg_types: KPROBE_ARG_TYPES,
        arg_types_unsupported: KPROBE_ARG_TYPES_UNSUPPORTED,
        arg_kind: "kprobe argument type",
        positional: false,
    };
    let target = spec::Target::Kprobe(spec::Kprobe {
        call: call.to_owned(),
        syscall: k.syscall.as_ref().is_some_and(|s| **s),
        ret: is_return,
        return_arg,
        ignore_missing: k
            .ignore
            .as_ref()
            .and_then(|i| i.call_not_found.as_ref())
            .is_some_and(|b| **b),
        ftrace_pattern: None,
        at_call: false,
        return_sock,
    });
    hook(c, parts, path, target, lists)
}

/// `returnArgAction`: `TrackSock` or `UntrackSock` on a returned `sock` (`Some(true)`
/// tracks), as Tetragon allows it.
fn return_arg_action(
    c: &mut Check,
    a: &Spanned<String>,
    return_arg: Option<&spec::Arg>,
    is_return: bool,
    path: &str,
) -> Option<bool> {
    let at = format!("{path}.returnArgAction");
    let track = match a.as_str() {
        "TrackSock" => true,
        "UntrackSock" => false,
        other => {
            c.at(
                a.span(),
                at,
                format!(
                    "`{other}` is not an action on a returned value: `TrackSock` or `UntrackSock`"
                ),
                None,
            );
            return None;
        }
    };
    if !is_return {
        c.warn(
            a.span(),
            at,
            "`returnArgAction` goes with `return: true`: ignored, the hook has no return value",
            Some("add `return: true` and `returnArg: {index: 0, type: sock}`".into()),
        );
        return None;
    }
    if return_arg.is_none_or(|r| r.ty != spec::ArgType::Sock) {
        c.at(
            a.span(),
            at,
            format!(
                "`{}` acts on a returned socket: the return value is not read as one",
                a.as_str()
            ),
            Some("declare `returnArg: {index: 0, type: sock}`".into()),
        );
        return None;
    }
    Some(track)
}

/// A kprobe on `list:NAME` as one kprobe per syscall of the list (`syscall: true`, as
/// Tetragon reads a list of syscalls); any other hook as it is.
pub(super) fn expand_list(hook: spec::Hook, lists: &[List]) -> Vec<spec::Hook> {
    let spec::Target::Kprobe(k) = &hook.target else {
        return vec![hook];
    };
    let Some(name) = k.call.strip_prefix("list:") else {
        return vec![hook];
    };
    let Some(list) = lists.iter().find(|l| l.name == name) else {
        return Vec::new();
    };
    if let Some(pattern) = &list.pattern {
        // Expanded against the kernel's functions when the policy loads.
        let mut h = hook.clone();
        if let spec::Target::Kprobe(k) = &mut h.target {
            k.ftrace_pattern = Some(pattern.clone());
        }
        return vec![h];
    }
    list.calls
        .iter()
        .map(|call| {
            let mut h = hook.clone();
            if let spec::Target::Kprobe(k) = &mut h.target {
                k.call.clone_from(call);
                k.syscall = true;
            }
            h
        })
        .collect()
}

/// A uprobe: one hook per symbol (or offset) of its binary, each with the uprobe's
/// arguments and selectors.
pub(super) fn uprobe(
    c: &mut Check,
    u: &Spanned<Uprobe>,
    path: &str,
    lists: &[List],
) -> Vec<spec::Hook> {
    for (field, name) in [
        (&u.addrs, "addrs"),
        (&u.btf_path, "btfPath"),
        (&u.data, "data"),
        (&u.ret, "return"),
        (&u.return_arg, "returnArg"),
        (&u.binary_digests, "binaryDigests"),
        (&u.ignore, "ignore"),
    ] {
        c.unsupported(field, &format!("{path}.{name}"), &format!("`{name}`"));
    }
    let file = u.path.as_str();
    absolute(c, &u.path, path);
    let mut places = Vec::new();
    match (u.symbols.is_empty(), u.offsets.is_empty()) {
        (true, true) => c.at(
            u.span(),
            path,
            "a uprobe needs `symbols` (function names) or `offsets` (file offsets)",
            Some("add `symbols: [NAME]`".into()),
        ),
        (false, false) => c.at(
            u.offsets[0].span(),
            format!("{path}.offsets"),
            "a uprobe has `symbols` or `offsets`, not both",
            Some("split it into two uprobes".into()),
        ),
        (false, true) => {
            if let Some(r) = u.ref_ctr_offsets.first() {
                c.at(
                    r.span(),
                    format!("{path}.refCtrOffsets"),
                    "refCtrOffsets go with `offsets`, one per offset",
                    None,
                );
            }
            for (i, s) in u.symbols.iter().enumerate() {
                if s.is_empty() || s.contains(char::is_whitespace) {
                    c.at(
                        s.span(),
                        format!("{path}.symbols[{i}]"),
                        format!("`{}` is not a symbol name", s.as_str()),
                        None,
                    );
                }
                places.push((spec::UprobeAt::Symbol(s.as_str().to_owned()), 0));
            }
        }
        (true, false) => {
            if !u.ref_ctr_offsets.is_empty() && u.ref_ctr_offsets.len() != u.offsets.len() {
                c.at(
                    u.ref_ctr_offsets[0].span(),
                    format!("{path}.refCtrOffsets"),
                    format!(
                        "{} refCtrOffsets for {} offsets: one per offset",
                        u.ref_ctr_offsets.len(),
                        u.offsets.len()
                    ),
                    None,
                );
            }
            for (i, o) in u.offsets.iter().enumerate() {
                let ref_ctr = u.ref_ctr_offsets.get(i).map_or(0, |r| **r);
                places.push((spec::UprobeAt::Offset(**o), ref_ctr));
            }
        }
    }
    let parts = HookParts {
        args: &u.args,
        selectors: &u.selectors,
        tags: &u.tags,
        message: u.message.as_ref(),
        anchor: *u.path.span(),
        arg_types: UPROBE_ARG_TYPES,
        arg_types_unsupported: UPROBE_ARG_TYPES_UNSUPPORTED,
        arg_kind: "uprobe argument type",
        positional: false,
    };
    let target = |(at, ref_ctr_offset): &(spec::UprobeAt, u64)| {
        spec::Target::Uprobe(spec::Uprobe {
            path: file.to_owned(),
            at: at.clone(),
            ref_ctr_offset: *ref_ctr_offset,
            writes: false,
        })
    };
    let Some(first) = places.first() else {
        return Vec::new();
    };
    let one = hook(c, parts, path, target(first), lists);
    places
        .iter()
        .map(|place| spec::Hook {
            target: target(place),
            ..one.clone()
        })
        .collect()
}

/// A USDT probe point: found in its binary's notes when the policy loads.
pub(super) fn usdt(c: &mut Check, u: &Spanned<Usdt>, path: &str, lists: &[List]) -> spec::Hook {
    c.unsupported(&u.btf_path, &format!("{path}.btfPath"), "`btfPath`");
    absolute(c, &u.path, path);
    for (v, field) in [(&u.provider, "provider"), (&u.name, "name")] {
        if v.is_empty() || v.contains(char::is_whitespace) {
            c.at(
                v.span(),
                format!("{path}.{field}"),
                format!("`{}` is not a USDT probe {field}", v.as_str()),
                Some("`readelf -n BINARY` lists its probe points, as `Provider: NAME` and `Name: NAME`".into()),
            );
        }
    }
    let parts = HookParts {
        args: &u.args,
        selectors: &u.selectors,
        tags: &u.tags,
        message: u.message.as_ref(),
        anchor: *u.path.span(),
        arg_types: UPROBE_ARG_TYPES,
        arg_types_unsupported: UPROBE_ARG_TYPES_UNSUPPORTED,
        arg_kind: "usdt argument type",
        positional: false,
    };
    let target = spec::Target::Usdt(spec::Usdt {
        path: u.path.as_str().to_owned(),
        provider: u.provider.as_str().to_owned(),
        name: u.name.as_str().to_owned(),
    });
    hook(c, parts, path, target, lists)
}

/// A BPF LSM hook: its arguments read as a kprobe's (the hook's are the function's).
pub(super) fn lsm(c: &mut Check, h: &Spanned<LsmHook>, path: &str, lists: &[List]) -> spec::Hook {
    let name = h.hook.as_str();
    if name.is_empty()
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    {
        c.at(
            h.hook.span(),
            format!("{path}.hook"),
            format!("`{name}` is not an LSM hook name (`file_open`, `bprm_check_security`)"),
            None,
        );
    }
    let parts = HookParts {
        args: &h.args,
        selectors: &h.selectors,
        tags: &h.tags,
        message: h.message.as_ref(),
        anchor: *h.hook.span(),
        arg_types: KPROBE_ARG_TYPES,
        arg_types_unsupported: KPROBE_ARG_TYPES_UNSUPPORTED,
        arg_kind: "lsm hook argument type",
        positional: false,
    };
    let target = spec::Target::Lsm {
        hook: name.trim_start_matches("security_").to_owned(),
    };
    hook(c, parts, path, target, lists)
}

/// A binary's `path`: absolute.
fn absolute(c: &mut Check, file: &Spanned<String>, path: &str) {
    if !file.starts_with('/') {
        c.at(
            file.span(),
            format!("{path}.path"),
            format!(
                "`{}` is not an absolute path: a probe names its binary by its path",
                file.as_str()
            ),
            Some("write the binary's full path, as `/usr/bin/bash`".into()),
        );
    }
}

pub(super) fn tracepoint(c: &mut Check, tp: &Tracepoint, path: &str, lists: &[List]) -> spec::Hook {
    for (s, sel) in tp.selectors.iter().enumerate() {
        for (k, a) in sel.match_actions.iter().enumerate() {
            if a.action.as_str() == "Override" {
                c.at(
                    a.action.span(),
                    format!("{path}.selectors[{s}].matchActions[{k}].action"),
                    "`Override` stops a kernel function from running: it goes on a kprobe (`spec.kprobes`), not on a tracepoint",
                    Some("hook the function the tracepoint is in, with `call:`".into()),
                );
            }
        }
    }
    for (v, field) in [(&tp.subsystem, "subsystem"), (&tp.event, "event")] {
        let ok = !v.is_empty() && v.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !ok {
            c.at(
                v.span(),
                format!("{path}.{field}"),
                format!("`{}` is not a tracepoint {field} name (letters, digits and `_`, as under /sys/kernel/tracing/events)", v.as_str()),
                None,
            );
        }
    }
    let raw = tp.raw.as_ref().is_some_and(|r| **r);
    let parts = HookParts {
        args: &tp.args,
        selectors: &tp.selectors,
        tags: &tp.tags,
        message: tp.message.as_ref(),
        anchor: *tp.event.span(),
        // A raw tracepoint's arguments are pointers and integers of its prototype, read
        // as a kernel function's.
        arg_types: if raw { KPROBE_ARG_TYPES } else { ARG_TYPES },
        arg_types_unsupported: if raw {
            KPROBE_ARG_TYPES_UNSUPPORTED
        } else {
            &[]
        },
        arg_kind: if raw {
            "raw tracepoint argument type"
        } else {
            "tracepoint argument type"
        },
        positional: !raw,
    };
    let (subsystem, event) = (
        tp.subsystem.as_str().to_owned(),
        tp.event.as_str().to_owned(),
    );
    let target = if raw {
        spec::Target::RawTracepoint { subsystem, event }
    } else {
        spec::Target::Tracepoint { subsystem, event }
    };
    hook(c, parts, path, target, lists)
}

/// What tracepoints and kprobes share.
struct HookParts<'a> {
    args: &'a [Arg],
    selectors: &'a [Spanned<Selector>],
    tags: &'a [Spanned<String>],
    message: Option<&'a Spanned<String>>,
    /// Where errors about the hook as a whole point.
    anchor: Span,
    arg_types: &'a [&'a str],
    /// Tetragon's types of this kind of hook that the tracer does not read yet.
    arg_types_unsupported: &'a [&'a str],
    arg_kind: &'a str,
    /// A `matchArgs` index that names no declared argument is a position in `args`
    /// (tracepoints, as Tetragon reads them).
    positional: bool,
}

fn hook(
    c: &mut Check,
    h: HookParts<'_>,
    path: &str,
    target: spec::Target,
    lists: &[List],
) -> spec::Hook {
    if let Some(m) = h.message
        && m.chars().count() > MAX_MESSAGE
    {
        c.at(
            m.span(),
            format!("{path}.message"),
            format!("the message is longer than {MAX_MESSAGE} characters"),
            None,
        );
    }
    c.at_most(
        h.tags,
        |t| Some(*t.span()),
        MAX_TAGS,
        &format!("{path}.tags"),
        "tags",
        &h.anchor,
    );
    c.at_most(
        h.args,
        |a| Some(*a.index.span()),
        MAX_ARGS,
        &format!("{path}.args"),
        "arguments",
        &h.anchor,
    );
    let (args, refused) = args(c, &h, path);
    c.at_most(
        h.selectors,
        |s| Some(*s.span()),
        MAX_SELECTORS,
        &format!("{path}.selectors"),
        "selectors",
        &h.anchor,
    );
    let selectors = h
        .selectors
        .iter()
        .enumerate()
        .map(|(k, sel)| {
            let at = selectors::Args {
                args: &args,
                positional: h.positional,
                refused: &refused,
            };
            selectors::selector(c, sel, &format!("{path}.selectors[{k}]"), &at, lists)
        })
        .collect();
    spec::Hook {
        path: path.to_owned(),
        target,
        args,
        selectors,
        message: h.message.map(|m| m.as_str().to_owned()),
        tags: h.tags.iter().map(|t| t.as_str().to_owned()).collect(),
    }
}

/// The hook's arguments, each with its type read; and the indices of those whose type
/// was refused.
fn args(c: &mut Check, h: &HookParts<'_>, path: &str) -> (Vec<spec::Arg>, Vec<u32>) {
    let mut out: Vec<spec::Arg> = Vec::new();
    let mut refused = Vec::new();
    for (j, a) in h.args.iter().enumerate() {
        let ap = format!("{path}.args[{j}]");
        // The same argument may be read again through `resolve` (one member each, as
        // Tetragon's examples do); `matchArgs` names the first.
        let resolves = a.resolve.as_ref().is_some_and(|r| !r.is_empty());
        if !resolves && out.iter().any(|o| o.index == *a.index) {
            c.at(
                a.index.span(),
                format!("{ap}.index"),
                format!("argument {} is declared twice", *a.index),
                Some("remove one of them".into()),
            );
        }
        // `nop`: declared so that the index counts, and neither read nor reported.
        if a.ty.as_ref().is_some_and(|t| t.as_str() == "nop") {
            continue;
        }
        let ty = match &a.ty {
            None => spec::ArgType::Auto,
            Some(ty) => {
                if c.one_of(
                    ty,
                    &format!("{ap}.type"),
                    h.arg_kind,
                    h.arg_types,
                    h.arg_types_unsupported,
                ) {
                    arg_type(ty).unwrap_or(spec::ArgType::Auto)
                } else {
                    // Said; its filters are not checked against a type it does not have.
                    refused.push(*a.index);
                    continue;
                }
            }
        };
        let buffer = matches!(
            ty,
            spec::ArgType::String { buffer: true } | spec::ArgType::CharIovec
        );
        if let Some(n) = &a.size_arg_index {
            if !buffer {
                c.at(
                    n.span(),
                    format!("{ap}.sizeArgIndex"),
                    "sizeArgIndex gives a `char_buf` argument its size (or a `char_iovec` its count)",
                    Some("add `type: char_buf`".into()),
                );
            } else if **n == 0 {
                c.at(
                    n.span(),
                    format!("{ap}.sizeArgIndex"),
                    "sizeArgIndex counts from 1 (3 is argument index 2)",
                    None,
                );
            }
        }
        let return_copy = a.return_copy.as_ref().is_some_and(|r| **r);
        if let Some(r) = &a.return_copy
            && **r
            && !buffer
        {
            c.at(
                r.span(),
                format!("{ap}.returnCopy"),
                "returnCopy reads a `char_buf` argument at the return",
                Some("add `type: char_buf`".into()),
            );
        }
        for (field, name) in [(&a.btf_type_module, "btfTypeModule"), (&a.source, "source")] {
            c.unsupported(field, &format!("{ap}.{name}"), &format!("`{name}`"));
        }
        if let Some(m) = &a.max_data
            && **m
        {
            let bytes = matches!(
                ty,
                spec::ArgType::String { buffer: true }
                    | spec::ArgType::CharIovec
                    | spec::ArgType::IovIter
            );
            if bytes {
                c.warn(
                    m.span(),
                    format!("{ap}.maxData"),
                    format!(
                        "the tracer keeps the first {} bytes of a buffer (Tetragon up to 327,360 with maxData); events give the full size as truncated_bytes_arg.orig_size",
                        tracer_common::policy::STRING_MAX - 1
                    ),
                    None,
                );
            } else {
                c.at(
                    m.span(),
                    format!("{ap}.maxData"),
                    "maxData reads more of a buffer: a `char_buf`, `char_iovec` or `iov_iter` argument",
                    Some("remove it".into()),
                );
            }
        }
        let nonempty = |v: &Option<Spanned<String>>| {
            v.as_ref()
                .map(|s| s.as_str().to_owned())
                .filter(|s| !s.is_empty())
        };
        out.push(spec::Arg {
            resolve: nonempty(&a.resolve),
            btf_type: nonempty(&a.btf_type),
            index: *a.index,
            ty,
            label: a.label.as_ref().map(|l| l.as_str().to_owned()),
            size_arg_index: a.size_arg_index.as_ref().map(|n| **n),
            return_copy,
        });
    }
    (out, refused)
}

/// The bit Tetragon sets on the number of a syscall of the 32-bit ABI (`__ia32_sys_dup`,
/// `i386/sys_dup`) in lists and `syscall64` values (the kernel programs set it on a
/// `syscall64` argument read inside a 32-bit syscall).
pub const COMPAT_SYSCALL_BIT: u32 = tracer_common::policy::SYSCALL64_32BIT as u32;

/// The number of syscall `v` (`openat`, `sys_openat`, `__x64_sys_openat`) on this
/// architecture; of the 32-bit ABI (`__ia32_sys_dup` or `i386/sys_dup`, on x86_64) with
/// [`COMPAT_SYSCALL_BIT`] set.
pub(super) fn syscall_number(c: &mut Check, v: &Spanned<String>, path: &str) -> Option<u32> {
    let name = v.as_str();
    let compat = name
        .strip_prefix("__ia32_")
        .or_else(|| name.strip_prefix("i386/"));
    let number = match compat {
        Some(rest) if cfg!(target_arch = "x86_64") => {
            let bare = rest.strip_prefix("sys_").unwrap_or(rest);
            syscalls::x86::Sysno::from_str(bare)
                .ok()
                .and_then(|no| u32::try_from(no.id()).ok())
                .map(|no| no | COMPAT_SYSCALL_BIT)
        }
        Some(_) => None,
        None => {
            let native = name.strip_prefix("__x64_").unwrap_or(name);
            let bare = native.strip_prefix("sys_").unwrap_or(native);
            syscalls::Sysno::from_str(bare)
                .ok()
                .and_then(|no| u32::try_from(no.id()).ok())
        }
    };
    if number.is_none() {
        let abi = if compat.is_some() {
            "the 32-bit ABI of this machine (i386 on x86_64)"
        } else {
            std::env::consts::ARCH
        };
        c.at(
            v.span(),
            path,
            format!("`{name}` is not a syscall of {abi}"),
            None,
        );
    }
    number
}
