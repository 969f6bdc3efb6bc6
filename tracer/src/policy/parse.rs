//! YAML text to [`TracingPolicy`] documents. A file may hold several documents separated
//! by `---`. Errors carry the file, the line and column in the file, and the field path.

use std::path::Path;

use marked_yaml::{Error as SerdeError, Marker, Span};

use super::{PolicyError, model::TracingPolicy, spec, suggest::did_you_mean, validate};

/// A document that parsed and validated.
#[derive(Debug)]
pub struct Document {
    pub policy: TracingPolicy,
    /// What it says, typed.
    pub spec: spec::Policy,
    /// 1-based line of the file where the document starts.
    pub first_line: usize,
    /// What the document says that the tracer reads otherwise than written, or ignores
    /// (as Tetragon does); each to be shown to whoever loads it.
    pub warnings: Vec<PolicyError>,
}

/// The largest policy file or object read: Tetragon's largest example is 8 KiB, and a
/// bound keeps a wrong file (`/dev/zero`, a log) from filling the agent's memory.
pub const MAX_BYTES: usize = 1 << 20;

/// The deepest a document may nest mappings and sequences: Tetragon's examples nest 7
/// levels; the YAML loader recurses per level, so a bound keeps a hostile document from
/// exhausting its stack.
pub const MAX_DEPTH: usize = 64;

/// Reads, parses and validates every document of `path`.
pub fn file(path: &Path) -> Result<Vec<Document>, Vec<PolicyError>> {
    use std::io::Read as _;
    let name = path.display().to_string();
    let error = |line, message: String, fix: Option<String>| {
        vec![PolicyError {
            file: name.clone(),
            line,
            column: 0,
            path: String::new(),
            message,
            fix,
        }]
    };
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let mut bytes = Vec::new();
    // Opened without waiting: a FIFO would block the agent until someone wrote to it.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| error(0, format!("cannot read the file: {e}"), None))?;
    let kind = f
        .metadata()
        .map_err(|e| error(0, format!("cannot read the file: {e}"), None))?
        .file_type();
    if kind.is_fifo() || kind.is_socket() || kind.is_dir() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else {
            "a socket"
        };
        return Err(error(
            0,
            format!("is {what}, not a file of policies: not read"),
            Some("name a YAML file".into()),
        ));
    }
    f.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(0, format!("cannot read the file: {e}"), None))?;
    if bytes.len() > MAX_BYTES {
        return Err(error(
            0,
            format!("the file is larger than {} KiB", MAX_BYTES >> 10),
            Some("a policy is a few KiB: is this the policy file?".into()),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        error(
            0,
            format!("the file is not UTF-8 text ({e})"),
            Some("save it as UTF-8".into()),
        )
    })?;
    text_documents(&name, &text)
}

/// Where `doc` first nests deeper than [`MAX_DEPTH`] (the parser's line, from 1, and
/// column, from 0), read with
/// the YAML parser's events, which need no recursion. A document the parser refuses is
/// left to the loader, which says why.
fn too_deep(doc: &str) -> Option<(usize, usize)> {
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(doc);
    let mut depth = 0usize;
    loop {
        match parser.next_token() {
            Ok((Event::MappingStart(..) | Event::SequenceStart(..), mark)) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some((mark.line(), mark.col()));
                }
            }
            Ok((Event::MappingEnd | Event::SequenceEnd, _)) => depth = depth.saturating_sub(1),
            Ok((Event::StreamEnd, _)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Parses and validates every document of `text`, named `file` in errors.
pub fn text_documents(file: &str, text: &str) -> Result<Vec<Document>, Vec<PolicyError>> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    if text.len() > MAX_BYTES {
        return Err(vec![PolicyError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("the policy is larger than {} KiB", MAX_BYTES >> 10),
            fix: Some("a policy is a few KiB: split it into several".into()),
        }]);
    }
    for (first_line, doc) in split_documents(text) {
        let at =
            |span: Option<&Marker>, path: &str, message: String, fix: Option<String>| PolicyError {
                file: file.to_owned(),
                line: span.map_or(first_line, |m| m.line() + first_line - 1),
                column: span.map_or(0, |m| m.column()),
                path: path.to_owned(),
                message,
                fix,
            };
        if let Some((line, column)) = too_deep(doc) {
            errors.push(PolicyError {
                file: file.to_owned(),
                line: line + first_line - 1,
                column: column + 1,
                path: String::new(),
                message: format!("nested deeper than {MAX_DEPTH} levels"),
                fix: Some("a policy nests a few levels: is this the policy file?".into()),
            });
            continue;
        }
        let node = match std::panic::catch_unwind(|| {
            let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
            marked_yaml::parse_yaml_with_options(0, doc, options)
        }) {
            Ok(Ok(node)) => node,
            Ok(Err(e)) => {
                let (mark, message, fix) = load_error(&e);
                errors.push(at(mark.as_ref(), "", message, fix));
                continue;
            }
            Err(_) => {
                errors.push(at(
                    None,
                    "",
                    "the YAML parser could not read this document".into(),
                    Some(
                        "check it with a YAML linter; anchors and aliases are not supported".into(),
                    ),
                ));
                continue;
            }
        };
        // The kernel reads a string up to its first NUL: a value holding one would match
        // something else than written.
        if let Some((mark, path)) = nul_in(&node, "") {
            errors.push(at(
                mark.as_ref(),
                &path,
                "holds a NUL character (`\\0`): the kernel reads a string up to its first NUL, \
                 so the value would mean something else than written"
                    .into(),
                Some("remove the `\\0` from the value".into()),
            ));
            continue;
        }
        let policy: TracingPolicy = match marked_yaml::from_node(&node) {
            Ok(p) => p,
            Err(e) => {
                let path = e.path().unwrap_or_default().to_owned();
                let inner = e.into_inner();
                let (message, fix) = serde_message(&inner);
                // The span of an unknown field can be another node's: find its key by path.
                let mark = match &inner {
                    SerdeError::UnknownFieldError(..) => key_mark(&node, &path),
                    SerdeError::Other(m, _) if m.starts_with("missing field") => {
                        mapping_mark(&node, &path)
                    }
                    // The value of the wrong type, where it is.
                    SerdeError::Other(m, _) if m.starts_with("invalid type") => {
                        node_at(&node, &path).and_then(|n| n.span().start().copied())
                    }
                    _ => None,
                }
                .or(inner.start_mark());
                errors.push(at(mark.as_ref(), &path, message, fix));
                continue;
            }
        };
        match validate::policy(&policy) {
            Ok(v) => docs.push(Document {
                policy,
                spec: v.spec,
                first_line,
                warnings: v
                    .warnings
                    .into_iter()
                    .map(|p| at(p.span.start(), &p.path, p.message, p.fix))
                    .collect(),
            }),
            Err(problems) => errors.extend(
                problems
                    .into_iter()
                    .map(|p| at(p.span.start(), &p.path, p.message, p.fix)),
            ),
        }
    }
    if errors.is_empty() {
        if docs.is_empty() {
            return Err(vec![PolicyError {
                file: file.to_owned(),
                line: 1,
                column: 1,
                path: String::new(),
                message: "no TracingPolicy document in the file".into(),
                fix: None,
            }]);
        }
        Ok(docs)
    } else {
        Err(errors)
    }
}

/// The first string (value or key) of `node`, at field path `path`, that holds a NUL:
/// where it starts, and its field path. One NUL at the end of a filter's value is a C
/// string's end, as Tetragon's examples write it (`"security.capability\0"`), and is
/// dropped by validation.
fn nul_in(node: &marked_yaml::Node, path: &str) -> Option<(Option<Marker>, String)> {
    use marked_yaml::Node;
    match node {
        Node::Scalar(s) => {
            let text = s.as_str();
            let c_string = path.contains("Args[") && path.contains(".values[");
            let text = match text.strip_suffix('\0') {
                Some(t) if c_string => t,
                _ => text,
            };
            text.contains('\0')
                .then(|| (s.span().start().copied(), path.to_owned()))
        }
        Node::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, &format!("{path}[{i}]"))),
        Node::Mapping(m) => m.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.as_str().to_owned()
            } else {
                format!("{path}.{}", k.as_str())
            };
            if k.as_str().contains('\0') {
                return Some((k.span().start().copied(), here));
            }
            nul_in(v, &here)
        }),
    }
}

/// Where the first key of the mapping at `path` starts (a mapping's own span starts after
/// its first key).
fn mapping_mark(root: &marked_yaml::Node, path: &str) -> Option<Marker> {
    let node = if path.is_empty() {
        root
    } else {
        node_at(root, path)?
    };
    let (key, _) = node.as_mapping()?.iter().next()?;
    key.span().start().copied()
}

/// The node at `path` (`spec.tracepoints[0]`).
fn node_at<'a>(mut node: &'a marked_yaml::Node, path: &str) -> Option<&'a marked_yaml::Node> {
    for part in path.split('.') {
        let (name, indices) = part.split_at(part.find('[').unwrap_or(part.len()));
        node = node.as_mapping()?.get(name)?;
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            node = node.as_sequence()?.get(idx.parse::<usize>().ok()?)?;
        }
    }
    Some(node)
}

/// Where the key at the end of `path` (`spec.tracepoints[0].lists`) starts.
fn key_mark(node: &marked_yaml::Node, path: &str) -> Option<Marker> {
    let mut node = node;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let (name, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let map = node.as_mapping()?;
        let (key, value) = map.iter().find(|(k, _)| k.as_str() == name)?;
        if parts.peek().is_none() && indices.is_empty() {
            return key.span().start().copied();
        }
        node = value;
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            node = node.as_sequence()?.get(idx.parse::<usize>().ok()?)?;
        }
    }
    None
}

/// Splits a YAML stream on `---` and `...` lines: (first line, text) of each document
/// that holds more than comments and blank lines.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let l = line.trim_end();
        let is_marker = l == "---" || l.starts_with("--- ") || l.starts_with("---\t") || l == "...";
        if is_marker {
            docs.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start..]));
    docs.into_iter()
        .filter(|(_, d)| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// Place, message and fix of a YAML load error.
fn load_error(e: &marked_yaml::LoadError) -> (Option<Marker>, String, Option<String>) {
    use marked_yaml::LoadError as L;
    match e {
        L::TopLevelMustBeMapping(m) => (
            Some(*m),
            "a TracingPolicy document is a mapping".to_owned(),
            Some("start the document with `apiVersion: cilium.io/v1alpha1`".to_owned()),
        ),
        L::UnexpectedAnchor(m) | L::UnexpectedTag(m) => (
            Some(*m),
            "anchors, aliases and tags are not supported".to_owned(),
            Some("write the value out where it is used".to_owned()),
        ),
        L::DuplicateKey(k) => (
            k.key.span().start().copied(),
            format!("`{}` is given twice", k.key.as_str()),
            Some("keep one of them".to_owned()),
        ),
        L::ScanError(m, err) => (Some(*m), format!("not valid YAML: {err}"), None),
        L::MappingKeyMustBeScalar(m) => (
            Some(*m),
            "a mapping key must be a plain string".to_owned(),
            None,
        ),
        L::TopLevelMustBeSequence(m) => (Some(*m), "unexpected sequence".to_owned(), None),
    }
}

/// Message and fix of a deserialisation error.
fn serde_message(e: &SerdeError) -> (String, Option<String>) {
    match e {
        SerdeError::UnknownFieldError(field, expected, _) => (
            format!(
                "unknown field `{field}`; expected one of {}",
                expected.join(", ")
            ),
            did_you_mean(field, expected.iter().copied()).map(|s| format!("did you mean `{s}`?")),
        ),
        SerdeError::IntegerParseFailure(err, _) => {
            (format!("expected a whole number: {err}"), None)
        }
        SerdeError::NotBoolean(_) => ("expected `true` or `false`".into(), None),
        SerdeError::FloatParseFailure(err, _) => (format!("expected a number: {err}"), None),
        SerdeError::Other(msg, _) => {
            let fix = if msg.starts_with("invalid type: map, expected a string") {
                Some("YAML reads a value with `: ` in it, or one that starts with `:` (an IPv6 address such as `::`), as a mapping: quote it (\"::\")".into())
            } else {
                msg.strip_prefix("missing field `")
                    .and_then(|r| r.strip_suffix('`'))
                    .map(|f| format!("add `{f}:`"))
            };
            (msg.clone(), fix)
        }
    }
}

/// Where a span starts, for tests and callers without a file.
pub fn line_col(span: &Span) -> Option<(usize, usize)> {
    span.start().map(|m| (m.line(), m.column()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error of `text`, rendered as the CLI prints them.
    fn errors(text: &str) -> Vec<String> {
        match text_documents("t.yaml", text) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    const HEAD: &str =
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n";

    /// A document of HEAD and `spec`, whose body starts on line 6.
    fn doc(spec: &str) -> String {
        format!("{HEAD}{spec}")
    }

    /// A document nested deeper than the bound is refused before it is loaded, where it
    /// crosses the bound, in block and flow style, and in a later document of the file;
    /// one at the bound loads on.
    #[test]
    fn nesting_is_bounded() {
        let block = |levels: usize| {
            let mut t = String::from("  podSelector:\n");
            for i in 0..levels {
                t.push_str(&" ".repeat(4 + i));
                t.push_str("a:\n");
            }
            t.push_str(&" ".repeat(4 + levels));
            t.push_str("x: 1\n");
            doc(&t)
        };
        // A thousand levels (within the size bound): the loader would overflow a thread's
        // stack.
        let e = errors(&block(1_000));
        assert_eq!(e.len(), 1, "{e:?}");
        // The document's mapping, spec's, podSelector's (line 7) and one per `a:` below
        // it: the 65th is the one on line 7 + 62.
        assert!(
            e[0].starts_with("t.yaml:69:") && e[0].contains("nested deeper than 64 levels"),
            "{e:?}"
        );
        // Within the bound: the loader's own error (not a podSelector field).
        let e = errors(&block(60));
        assert!(e[0].contains("unknown field `a`"), "{e:?}");
        let flow = |n| {
            doc(&format!(
                "  tracepoints: {}{}\n",
                "[".repeat(n),
                "]".repeat(n)
            ))
        };
        assert!(errors(&flow(100))[0].contains("nested deeper than 64 levels"));
        // Deeper still, the parser's own bound.
        assert!(errors(&flow(5000))[0].contains("recursion limit exceeded"));
        // In the second document of a file (from line 8): its line in the file.
        let two = format!("{}---\n{}", doc("  tracepoints: []\n"), block(100));
        let e = errors(&two);
        assert!(
            e.iter()
                .any(|e| e.starts_with("t.yaml:76:") && e.contains("nested deeper")),
            "{e:?}"
        );
    }

    /// A NUL in a value (an escape in a double-quoted string) is refused, naming the
    /// field, rather than cut short by the kernel.
    #[test]
    fn a_nul_in_a_value_is_refused_with_its_place() {
        let policy = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: nul
spec:
  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values:
        - /etc/
        - \"/etc/shadow\\0.bak\"
";
        let e = match text_documents("t.yaml", policy) {
            Ok(_) => panic!("a NUL passed"),
            Err(e) => e,
        };
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            e[0].to_string(),
            "t.yaml:18:11: spec.kprobes[0].selectors[0].matchArgs[0].values[1]: holds a NUL \
             character (`\\0`): the kernel reads a string up to its first NUL, so the value \
             would mean something else than written\n  fix: remove the `\\0` from the value"
        );
        // One at the end of a filter's value is a C string's end (as Tetragon's examples).
        assert!(text_documents("t.yaml", &policy.replace("\\0.bak", "\\0")).is_ok());
        // In a binary's name, and in a second document: its line is the file's.
        let second = format!(
            "{}---\n{}",
            policy.replace("\\0.bak", ".bak"),
            policy.replace("name: nul", "name: nul2").replace(
                "- matchArgs:",
                "- matchBinaries:\n      - operator: In\n        values: [\"/bin/c\\0at\"]\n      matchArgs:"
            ).replace("\\0.bak", ".bak")
        );
        let e = text_documents("t.yaml", &second).expect_err("a NUL passed");
        assert!(
            e[0].to_string().starts_with(
                "t.yaml:34:18: spec.kprobes[0].selectors[0].matchBinaries[0].values[0]: holds a NUL"
            ),
            "{e:?}"
        );
    }

    /// A FIFO is refused without waiting for a writer, a directory without reading it.
    #[test]
    fn a_fifo_or_a_directory_is_not_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("p.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let e = file(&fifo).unwrap_err();
        assert!(
            e[0].to_string()
                .contains("is a FIFO, not a file of policies"),
            "{e:?}"
        );
        let e = file(dir.path()).unwrap_err();
        assert!(e[0].to_string().contains("is a directory"), "{e:?}");
    }

    /// A file over the size bound is refused without being read whole (`/dev/zero`).
    #[test]
    fn size_is_bounded() {
        let e = file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].to_string()
                .contains("the file is larger than 1024 KiB"),
            "{}",
            e[0]
        );
        let big = format!("{}#{}\n", doc("  tracepoints: []\n"), "x".repeat(MAX_BYTES));
        assert!(errors(&big)[0].contains("the policy is larger than 1024 KiB"));
    }

    #[test]
    fn a_tetragon_policy_parses() {
        let text = doc(r#"  tracepoints:
  - subsystem: "raw_syscalls"
    event: "sys_enter"
    message: "a read"
    args:
    - index: 4
      type: "int64"
    selectors:
    - matchPIDs:
      - operator: NotIn
        followForks: true
        values: [0, 1]
      matchArgs:
      - index: 4
        operator: "Equal"
        values:
        - "0"
        - "0x10"
      matchBinaries:
      - operator: "In"
        values: ["/usr/bin/cat"]
        followChildren: true
      matchNamespaces:
      - namespace: Pid
        operator: In
        values: [host_ns]
      matchCapabilities:
      - type: Effective
        operator: In
        values: [CAP_SYS_ADMIN]
      matchActions:
      - action: Post
        rateLimit: 5m
        rateLimitScope: process
    - matchActions:
      - action: Signal
        argSig: 10
  lists:
  - name: writes
    type: syscalls
    values: [write, sys_pwrite64]
  options:
  - name: policy-mode
    value: monitor
"#);
        let docs = text_documents("t.yaml", &text).expect("valid");
        assert_eq!(docs.len(), 1);
        let tp = &docs[0].policy.spec.tracepoints[0];
        assert_eq!(tp.event.as_str(), "sys_enter");
        assert_eq!(tp.selectors.len(), 2);
        assert_eq!(tp.selectors[0].match_args[0].values.len(), 2);
    }

    #[test]
    fn several_documents_and_their_lines() {
        let one = doc("  tracepoints:\n  - subsystem: sched\n    event: sched_process_exec\n");
        let text = format!(
            "# policies\n---\n{one}---\n{}",
            one.replace("name: p", "name: Q")
        );
        let e = errors(&text);
        // The second document starts on line 12; its name is its 4th line.
        assert_eq!(
            e,
            [
                "t.yaml:15:9: metadata.name: `Q` is not a valid name: lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters\n  fix: write `name: q`"
            ]
        );
        let ok = format!("{one}---\n{}", one.replace("name: p", "name: q"));
        let docs = text_documents("t.yaml", &ok).unwrap();
        assert_eq!(
            docs.iter().map(|d| d.first_line).collect::<Vec<_>>(),
            [1, 10]
        );
    }

    #[test]
    fn broken_documents_and_their_exact_errors() {
        let tp = "  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_openat\n";
        let cases: &[(&str, &str)] = &[
            (
                "  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    selectors:\n    - matchActions:\n      - action: NotifyEnforcer\n        argError: -1\n",
                "t.yaml:6:14: spec: `NotifyEnforcer` stops the thread's next call of a syscall of `spec.enforcers`, and the policy has none\n  fix: add `enforcers: [{calls: [sys_NAME]}]`",
            ),
            (
                "  enforcers:\n  - calls: [sys_dup, dup3]\n  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    selectors:\n    - matchActions:\n      - action: NotifyEnforcer\n",
                "t.yaml:7:22: spec.enforcers[0].calls[1]: `dup3` is not a syscall: an enforcer stops syscalls\n  fix: write `sys_NAME` (`sys_dup`), or `list:NAME` of a list of syscalls",
            ),
            (
                "  enforcers:\n  - calls: [list:none]\n  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    selectors:\n    - matchActions:\n      - action: NotifyEnforcer\n",
                "t.yaml:7:13: spec.enforcers[0].calls[0]: `list:none` names no list of `spec.lists`",
            ),
            (
                "  usdts:\n  - path: /bin/sh\n    provider: p\n    name: n\n    args:\n    - index: 0\n      type: int32\n    selectors:\n    - matchActions:\n      - action: Set\n        argIndex: 0\n",
                "t.yaml:15:17: spec.usdts[0].selectors[0].matchActions[0].action: `Set` needs `argIndex` (the position in `args` of the argument to write) and `argValue`\n  fix: add both, e.g. `argIndex: 0` and `argValue: 32`",
            ),
            (
                "  usdts:\n  - path: /bin/sh\n    provider: p\n    name: n\n    args:\n    - index: 0\n      type: int32\n    selectors:\n    - matchActions:\n      - action: Set\n        argIndex: 1\n        argValue: 32\n",
                "t.yaml:16:19: spec.usdts[0].selectors[0].matchActions[0].argIndex: `Set` writes the argument at position 1 of `args`, and the hook declares 1 arguments\n  fix: point `argIndex` at a declared argument (0 is the first)",
            ),
            (
                "  kprobes:\n  - call: __sk_free\n    args:\n    - index: 0\n      type: int\n    selectors:\n    - matchActions:\n      - action: UntrackSock\n",
                "t.yaml:13:17: spec.kprobes[0].selectors[0].matchActions[0].argSock: `UntrackSock` acts on the socket at position 0 of `args`, and it is of type `int`\n  fix: point `argSock` at an argument of type `sock` or `socket` (0 is the first)",
            ),
            (
                "  kprobes:\n  - call: __sk_free\n    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchActions:\n      - action: TrackSock\n        argSock: 1\n",
                "t.yaml:14:18: spec.kprobes[0].selectors[0].matchActions[0].argSock: `TrackSock` acts on the socket at position 1 of `args`, and the hook declares 1 arguments\n  fix: point `argSock` at an argument of type `sock` or `socket` (0 is the first)",
            ),
            (
                "  kprobes:\n  - call: sk_alloc\n    return: true\n    returnArg:\n      index: 0\n      type: int\n    returnArgAction: TrackSock\n",
                "t.yaml:12:22: spec.kprobes[0].returnArgAction: `TrackSock` acts on a returned socket: the return value is not read as one\n  fix: declare `returnArg: {index: 0, type: sock}`",
            ),
            (
                "  kprobes:\n  - call: sk_alloc\n    return: true\n    returnArg:\n      index: 0\n      type: sock\n    returnArgAction: Post\n",
                "t.yaml:12:22: spec.kprobes[0].returnArgAction: `Post` is not an action on a returned value: `TrackSock` or `UntrackSock`",
            ),
            (
                "",
                "t.yaml:6:1: spec: the policy has no hook\n  fix: add `tracepoints:`, `kprobes:`, `uprobes:`, `usdts:`, `lsmhooks:` or `loader: true`",
            ),
            (
                "  tracepoints:\n  - subsystem: syscalls\n",
                "t.yaml:7:5: spec.tracepoints[0]: missing field `event`\n  fix: add `event:`",
            ),
            (
                "  tracepoints:\n  - subsystem: syscalls\n    event: x\n    evnt: y\n",
                "t.yaml:9:5: spec.tracepoints[0].evnt: unknown field `evnt`; expected one of subsystem, event, message, args, selectors, tags, raw\n  fix: did you mean `event`?",
            ),
            (
                "  usdts:\n  - path: /bin/sh\n    provider: test\n    name: a b\n",
                "t.yaml:9:11: spec.usdts[0].name: `a b` is not a USDT probe name\n  fix: `readelf -n BINARY` lists its probe points, as `Provider: NAME` and `Name: NAME`",
            ),
            (
                "  lists:\n  - name: k\n    type: generated_ftrace\n  kprobes:\n  - call: list:k\n",
                "t.yaml:8:11: spec.lists[0]: a `generated_ftrace` list is the kernel functions its `pattern` matches: it needs one\n  fix: add `pattern: \"^ksys_\"` (a regular expression)",
            ),
            (
                "  lists:\n  - name: k\n    type: generated_ftrace\n    pattern: \"(\"\n  kprobes:\n  - call: list:k\n",
                "t.yaml:9:14: spec.lists[0].pattern: `(` is not a regular expression: regex parse error:\n    (\n    ^\nerror: unclosed group",
            ),
            (
                "  lsmhooks:\n  - hook: file open\n",
                "t.yaml:7:11: spec.lsmhooks[0].hook: `file open` is not an LSM hook name (`file_open`, `bprm_check_security`)",
            ),
            (
                "  enforcers:\n  - calls: [sys_dup]\n",
                "t.yaml:6:12: spec: the policy has no hook\n  fix: add `tracepoints:`, `kprobes:`, `uprobes:`, `usdts:`, `lsmhooks:` or `loader: true`",
            ),
            (
                "  uprobes:\n  - path: /bin/sh\n",
                "t.yaml:7:9: spec.uprobes[0]: a uprobe needs `symbols` (function names) or `offsets` (file offsets)\n  fix: add `symbols: [NAME]`",
            ),
            (
                "  uprobes:\n  - path: bash\n    symbols: [main]\n",
                "t.yaml:7:11: spec.uprobes[0].path: `bash` is not an absolute path: a probe names its binary by its path\n  fix: write the binary's full path, as `/usr/bin/bash`",
            ),
            (
                "  uprobes:\n  - path: /bin/bash\n    offsets: [4096, 8192]\n    refCtrOffsets: [16]\n",
                "t.yaml:9:21: spec.uprobes[0].refCtrOffsets: 1 refCtrOffsets for 2 offsets: one per offset",
            ),
            (
                "  kprobes:\n  - call: tcp_connect\n    syscall: false\n    args:\n    - index: 0\n      type: auto\n",
                "t.yaml:11:13: spec.kprobes[0].args[0].type: kprobe argument type `auto` is Tetragon's but not supported by the tracer yet; supported: nop, sock, socket, int, sint8, uint8, int8, sint16, uint16, int16, sint32, uint32, int32, sint64, uint64, int64, ulong, long, size_t, string, char_buf, fd, file, path, linux_binprm, cred, char_iovec, skb, sockaddr, kiocb, dentry, iov_iter, capability, bpf_attr, bpf_prog, perf_event, bpf_map, user_namespace, load_info, module, net_device, kernel_cap_t, cap_inheritable, cap_permitted, cap_effective",
            ),
            (
                "  kprobes:\n  - call: tcp_connect\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: DPort\n",
                "t.yaml:15:19: spec.kprobes[0].selectors[0].matchArgs[0].values: no values: the filter would match nothing\n  fix: add `values: [...]`",
            ),
            (
                "  kprobes:\n  - call: sys_openat\n    syscall: true\n    selectors:\n    - matchReturnArgs:\n      - index: 0\n        operator: Equal\n        values: [-2]\n",
                "t.yaml:11:16: spec.kprobes[0].selectors[0].matchReturnArgs: matchReturnArgs needs a return probe\n  fix: add `return: true` and `returnArg`",
            ),
            (
                "  kprobes:\n  - call: tcp_connect\n    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Prefix\n        values: [a]\n",
                "t.yaml:14:19: spec.kprobes[0].selectors[0].matchArgs[0].operator: argument 0 is a socket: its operators are SAddr, NotSAddr, DAddr, NotDAddr, SPort, NotSPort, DPort, NotDPort, SPortPriv, NotSPortPriv, DPortPriv, NotDPortPriv, Protocol, Family, State",
            ),
            (
                &format!(
                    "{tp}    args:\n    - index: 5\n    selectors:\n    - matchArgs:\n      - index: 5\n        operator: DPort\n        values: [\"443\"]\n"
                ),
                "t.yaml:14:19: spec.tracepoints[0].selectors[0].matchArgs[0].operator: `DPort` compares a socket's fields, and argument 5 is not of type `sock` (or `socket`)",
            ),
            (
                "  kprobes:\n  - call: inet_dgram_connect\n    args:\n    - index: 0\n      type: socket\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: NotDAddr\n        values:\n        - ::\n",
                "t.yaml:16:12: spec.kprobes[0].selectors[0].matchArgs[0].values[0]: invalid type: map, expected a string\n  fix: YAML reads a value with `: ` in it, or one that starts with `:` (an IPv6 address such as `::`), as a mapping: quote it (\"::\")",
            ),
            (
                &format!("{tp}    args:\n    - index: one\n"),
                "t.yaml:10:14: spec.tracepoints[0].args[0].index: expected a whole number: invalid digit found in string",
            ),
            (
                &format!(
                    "{tp}    args:\n    - index: 0\n    selectors:\n    - matchArgs:\n      - index: 1\n        operator: Equal\n        values: [a]\n"
                ),
                "t.yaml:13:16: spec.tracepoints[0].selectors[0].matchArgs[0].index: argument 1 is neither a declared argument's `index` nor a position in `args` (it has 1)\n  fix: add `- index: 1` under `args:`, or write the position of the argument in `args` (from 0)",
            ),
            (
                &format!(
                    "{tp}    args:\n    - index: 0\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: GT\n        values: [ten]\n"
                ),
                "t.yaml:15:18: spec.tracepoints[0].selectors[0].matchArgs[0].values[0]: `ten` is not a whole number (decimal or 0x hex)",
            ),
            (
                &format!(
                    "{tp}    args:\n    - index: 0\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: SAddr\n        values: [10.0.0.0/8]\n"
                ),
                "t.yaml:14:19: spec.tracepoints[0].selectors[0].matchArgs[0].operator: `SAddr` compares a socket's fields, and argument 0 is not of type `sock` (or `socket`)",
            ),
            (
                &format!(
                    "{tp}    selectors:\n    - matchBinaries:\n      - operator: In\n        values: [cat]\n"
                ),
                "t.yaml:12:18: spec.tracepoints[0].selectors[0].matchBinaries[0].values[0]: `cat` is not an absolute path; `In` compares whole paths\n  fix: write the full path, or use `Postfix` to match `cat`",
            ),
            (
                &format!(
                    "{tp}    selectors:\n    - matchPIDs:\n      - operator: Inn\n        values: [1]\n"
                ),
                "t.yaml:11:19: spec.tracepoints[0].selectors[0].matchPIDs[0].operator: `Inn` is not a matchPIDs operator; expected one of In, NotIn\n  fix: write `In`",
            ),
            (
                &format!(
                    "{tp}    selectors:\n    - matchCapabilities:\n      - operator: In\n        values: [CAP_SYSADMIN]\n"
                ),
                "t.yaml:12:18: spec.tracepoints[0].selectors[0].matchCapabilities[0].values[0]: `CAP_SYSADMIN` is not a capability; expected one of CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_LINUX_IMMUTABLE, CAP_NET_BIND_SERVICE, CAP_NET_BROADCAST, CAP_NET_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK, CAP_IPC_OWNER, CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_CHROOT, CAP_SYS_PTRACE, CAP_SYS_PACCT, CAP_SYS_ADMIN, CAP_SYS_BOOT, CAP_SYS_NICE, CAP_SYS_RESOURCE, CAP_SYS_TIME, CAP_SYS_TTY_CONFIG, CAP_MKNOD, CAP_LEASE, CAP_AUDIT_WRITE, CAP_AUDIT_CONTROL, CAP_SETFCAP, CAP_MAC_OVERRIDE, CAP_MAC_ADMIN, CAP_SYSLOG, CAP_WAKE_ALARM, CAP_BLOCK_SUSPEND, CAP_AUDIT_READ, CAP_PERFMON, CAP_BPF, CAP_CHECKPOINT_RESTORE\n  fix: write `CAP_SYS_ADMIN`",
            ),
            (
                &format!("{tp}    selectors:\n    - matchActions:\n      - action: Signal\n"),
                "t.yaml:11:17: spec.tracepoints[0].selectors[0].matchActions[0].argSig: `Signal` needs the signal to send\n  fix: add `argSig: 9` (or another signal number, 1 to 64)",
            ),
            (
                &format!(
                    "{tp}    selectors:\n    - matchActions:\n      - action: Post\n        rateLimit: soon\n"
                ),
                "t.yaml:12:20: spec.tracepoints[0].selectors[0].matchActions[0].rateLimit: `soon` is not a duration; expected a number with `s`, `m` or `h`, such as `5m`",
            ),
            (
                &format!(
                    "{tp}    selectors:\n    - matchActions:\n      - action: Override\n        argError: -1\n"
                ),
                "t.yaml:11:17: spec.tracepoints[0].selectors[0].matchActions[0].action: `Override` stops a kernel function from running: it goes on a kprobe (`spec.kprobes`), not on a tracepoint\n  fix: hook the function the tracepoint is in, with `call:`",
            ),
            (
                &format!(
                    "{tp}  lists:\n  - name: l\n    type: syscalls\n    values: [openat, not_a_syscall]\n"
                ),
                &format!(
                    "t.yaml:12:22: spec.lists[0].values[1]: `not_a_syscall` is not a syscall of {}",
                    std::env::consts::ARCH
                ),
            ),
            (
                &format!("{tp}  options:\n  - name: policy-mode\n    value: loud\n"),
                "t.yaml:11:12: spec.options[0].value: `policy-mode` takes `monitor` or `enforce`\n  fix: write `value: monitor`",
            ),
            (
                &format!("{tp}    event: again\n"),
                "t.yaml:9:5: `event` is given twice\n  fix: keep one of them",
            ),
            (
                &format!("{tp}    message: &m hello\n"),
                "t.yaml:9:17: anchors, aliases and tags are not supported\n  fix: write the value out where it is used",
            ),
        ];
        for (spec, expected) in cases {
            let got = errors(&doc(spec));
            assert!(
                got.first().map(String::as_str) == Some(expected),
                "for spec:\n{spec}\nexpected:\n{expected}\ngot:\n{}",
                got.join("\n")
            );
        }
    }

    /// The one document of `spec`, and its warnings as the CLI prints them.
    fn accepted(spec: &str) -> (Document, Vec<String>) {
        let mut docs = text_documents("t.yaml", &doc(spec))
            .unwrap_or_else(|e| panic!("refused: {e:?}\nfor spec:\n{spec}"));
        let d = docs.remove(0);
        let warnings = d.warnings.iter().map(ToString::to_string).collect();
        (d, warnings)
    }

    /// What Tetragon accepts is accepted: read as Tetragon reads it, with a warning where
    /// something is read otherwise than written or ignored.
    #[test]
    fn what_tetragon_accepts_is_accepted() {
        let sock = "  kprobes:\n  - call: tcp_connect\n    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: DAddr\n        values: [127.0.0.1/8]\n";
        let (d, w) = accepted(sock);
        assert_eq!(
            w,
            [
                "t.yaml:15:18: spec.kprobes[0].selectors[0].matchArgs[0].values[0]: `127.0.0.1/8` has bits set past its prefix: read as 127.0.0.0/8, the range it falls in"
            ]
        );
        assert_eq!(
            d.spec.hooks[0].selectors[0].args[0].values,
            [spec::Value::Cidr(
                crate::policy::sock::parse_cidr("127.0.0.0/8").unwrap()
            )]
        );

        // Any argError on Override (1: the caller skips the attribute).
        let (d, w) = accepted(
            "  kprobes:\n  - call: security_inode_copy_up_xattr\n    selectors:\n    - matchActions:\n      - action: Override\n        argError: 1\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            d.spec.hooks[0].selectors[0].actions,
            [spec::Action::Override(1)]
        );

        // returnArg without return, argError on Sigkill: ignored, said.
        let (d, w) = accepted(
            "  kprobes:\n  - call: security_bprm_check\n    returnArg:\n      index: 0\n      type: int\n    selectors:\n    - matchActions:\n      - action: Sigkill\n        argError: -1\n",
        );
        assert_eq!(
            w,
            [
                "t.yaml:9:14: spec.kprobes[0].returnArg: `returnArg` goes with `return: true`: ignored, the hook reports no return value\n  fix: add `return: true`, or remove `returnArg`",
                "t.yaml:14:19: spec.kprobes[0].selectors[0].matchActions[0].argError: `argError` goes with `Override` and `NotifyEnforcer`, not `Sigkill`: ignored\n  fix: remove it",
            ]
        );
        let spec::Target::Kprobe(k) = &d.spec.hooks[0].target else {
            panic!("a kprobe");
        };
        assert!(k.return_arg.is_none());
        assert_eq!(
            d.spec.hooks[0].selectors[0].actions,
            [spec::Action::Sigkill]
        );

        // A uprobe: one hook per symbol, or per offset with its semaphore.
        let (d, _) = accepted(
            "  uprobes:\n  - path: /bin/bash\n    symbols: [readline, main]\n    args:\n    - index: 0\n      type: string\n  - path: /procRoot/1/root/usr/bin/bash\n    offsets: [4096]\n    refCtrOffsets: [8192]\n",
        );
        let targets: Vec<_> = d.spec.hooks.iter().map(|h| h.target.clone()).collect();
        let up = |path: &str, at, ref_ctr_offset| {
            spec::Target::Uprobe(spec::Uprobe {
                path: path.into(),
                at,
                ref_ctr_offset,
                writes: false,
            })
        };
        assert_eq!(
            targets,
            [
                up("/bin/bash", spec::UprobeAt::Symbol("readline".into()), 0),
                up("/bin/bash", spec::UprobeAt::Symbol("main".into()), 0),
                up(
                    "/procRoot/1/root/usr/bin/bash",
                    spec::UprobeAt::Offset(4096),
                    8192
                ),
            ]
        );
        assert_eq!(d.spec.hooks[1].args, d.spec.hooks[0].args);
        assert_eq!(
            d.spec.hooks[0].args[0].ty,
            spec::ArgType::String { buffer: false }
        );

        // Two matchPIDs of one selector: both must pass, merged into one.
        let pids = |a: &str, b: &str, follow: bool| {
            format!(
                "  kprobes:\n  - call: sys_clock_settime\n    syscall: true\n    selectors:\n    - matchPIDs:\n      - operator: {a}\n        followForks: {follow}\n        values: [1, 2]\n      - operator: {b}\n        followForks: {follow}\n        values: [0, 2]\n"
            )
        };
        let (d, _) = accepted(&pids("NotIn", "NotIn", true));
        let p = d.spec.hooks[0].selectors[0].pids.clone().unwrap();
        assert_eq!(
            (p.op, p.values, p.follow_forks),
            (spec::SetOp::NotIn, vec![1, 2, 0], true)
        );
        let (d, _) = accepted(&pids("In", "In", false));
        let p = d.spec.hooks[0].selectors[0].pids.clone().unwrap();
        assert_eq!((p.op, p.values), (spec::SetOp::In, vec![2]));
        let (d, _) = accepted(&pids("In", "NotIn", false));
        let p = d.spec.hooks[0].selectors[0].pids.clone().unwrap();
        assert_eq!((p.op, p.values), (spec::SetOp::In, vec![1]));
        assert_eq!(
            errors(&doc(&pids("In", "In", true))),
            [
                "t.yaml:14:19: spec.kprobes[0].selectors[0].matchPIDs[1]: with `followForks`, the matchPIDs filters of one selector can be merged only when all are `NotIn`"
            ]
        );

        // A tracepoint's matchArgs index: a declared argument's index, else a position
        // in `args`; `InMap` on a list of syscalls, 32-bit ones among them.
        let (d, w) = accepted(
            "  lists:\n  - name: dups\n    type: syscalls\n    values: [sys_dup, __ia32_sys_dup, __x64_sys_dup2]\n  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    args:\n    - index: 4\n      type: syscall64\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: InMap\n        values: [\"list:dups\"]\n",
        );
        assert!(w.is_empty(), "{w:?}");
        let m = &d.spec.hooks[0].selectors[0].args[0];
        assert_eq!((m.index, m.op), (4, spec::ArgOp::Equal));
        let ints: Vec<Option<i128>> = m
            .values
            .iter()
            .map(|v| match v {
                spec::Value::Text { int, .. } => *int,
                _ => None,
            })
            .collect();
        // x86_64's numbers; i386's dup (41) with the 32-bit bit.
        if cfg!(target_arch = "x86_64") {
            assert_eq!(ints, [Some(32), Some(41 | 1 << 31), Some(33)]);
        }
        assert_eq!(
            errors(&doc(
                "  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    args:\n    - index: 4\n    selectors:\n    - matchArgs:\n      - index: 1\n        operator: Equal\n        values: [\"1\"]\n"
            )),
            [
                "t.yaml:13:16: spec.tracepoints[0].selectors[0].matchArgs[0].index: argument 1 is neither a declared argument's `index` nor a position in `args` (it has 1)\n  fix: add `- index: 1` under `args:`, or write the position of the argument in `args` (from 0)"
            ]
        );

        // `nop` holds an index and is neither read nor reported; a C string's NUL.
        let (d, w) = accepted(
            "  kprobes:\n  - call: security_inode_copy_up_xattr\n    args:\n    - index: 0\n      type: nop\n    - index: 1\n      type: string\n    selectors:\n    - matchArgs:\n      - index: 1\n        operator: Equal\n        values: [\"security.capability\\0\"]\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(d.spec.hooks[0].args.len(), 1);
        assert_eq!(d.spec.hooks[0].args[0].index, 1);
        assert!(matches!(
            &d.spec.hooks[0].selectors[0].args[0].values[0],
            spec::Value::Text { text, .. } if text == "security.capability"
        ));
    }

    /// `kernelStackTrace`, `userStackTrace`: taken by `Post`; on another action ignored,
    /// saying where.
    #[test]
    fn stack_traces_go_with_post() {
        let (d, w) = accepted(
            "  kprobes:\n  - call: kfree_skb_reason\n    selectors:\n    - matchActions:\n      - action: Post\n        kernelStackTrace: true\n        userStackTrace: true\n    - matchActions:\n      - action: NoPost\n        userStackTrace: true\n",
        );
        assert_eq!(
            w,
            [
                "t.yaml:15:25: spec.kprobes[0].selectors[1].matchActions[0].userStackTrace: `userStackTrace` goes with `Post`, not `NoPost`: ignored\n  fix: move it to a `Post` action of the selector"
            ]
        );
        let s = &d.spec.hooks[0].selectors;
        assert_eq!((s[0].kernel_stack, s[0].user_stack), (true, true));
        assert_eq!((s[1].kernel_stack, s[1].user_stack), (false, false));
        // Not a boolean: refused.
        assert!(
            errors(&doc(
                "  kprobes:\n  - call: kfree_skb_reason\n    selectors:\n    - matchActions:\n      - action: Post\n        kernelStackTrace: sometimes\n"
            ))
            .iter()
            .any(|e| e.contains("kernelStackTrace")),
        );
    }

    /// `loader: true` is a policy of its own (Tetragon's `loader.yaml`); `false` is none.
    #[test]
    fn loader_true_needs_no_hook() {
        let (d, w) = accepted("  loader: true\n");
        assert!(w.is_empty(), "{w:?}");
        assert!(d.spec.loader && d.spec.hooks.is_empty());
        let (d, _) = accepted(
            "  loader: true\n  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_openat\n",
        );
        assert!(d.spec.loader && d.spec.hooks.len() == 1);
        let e = errors(&doc("  loader: false\n"));
        assert!(
            e.iter().any(|e| e.contains("the policy has no hook")),
            "{e:?}"
        );
        let e = errors(&doc("  loader: yes please\n"));
        assert!(e.iter().any(|e| e.contains("loader")), "{e:?}");
    }

    /// One error per cause: no second message that only follows from the first.
    #[test]
    fn no_message_follows_from_another() {
        let e = errors(&doc(
            "  kprobes:\n  - call: security_socket_connect\n    args:\n    - index: 1\n      type: sockaddr_un\n    selectors:\n    - matchArgs:\n      - index: 1\n        operator: Family\n        values: [AF_INET]\n",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("args[0].type"), "{e:?}");
        let e = errors(&doc(
            "  lists:\n  - name: all\n    type: generated_things\n  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_openat\n",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("spec.lists[0].type"), "{e:?}");
    }

    #[test]
    fn limits_are_errors_at_validation() {
        let mut spec = String::from(
            "  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    selectors:\n",
        );
        for _ in 0..9 {
            spec.push_str("    - matchActions:\n      - action: Post\n");
        }
        let e = errors(&doc(&spec));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.yaml:26:19: spec.tracepoints[0].selectors[8]: 9 selectors, more than the 8 the tracer allows"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn string_lengths_are_checked_at_validation() {
        let spec = |op: &str, len: usize| {
            doc(&format!(
                "  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_openat\n    args:\n    - index: 6\n      type: string\n    selectors:\n    - matchArgs:\n      - index: 6\n        operator: {op}\n        values: [\"/{}\"]\n",
                "a".repeat(len - 1)
            ))
        };
        // A Prefix as long as the longest string captured is fine; a Postfix to 248.
        assert!(text_documents("t.yaml", &spec("Prefix", 255)).is_ok());
        assert!(text_documents("t.yaml", &spec("Postfix", 248)).is_ok());
        assert_eq!(
            errors(&spec("Prefix", 256)),
            [
                "t.yaml:16:18: spec.tracepoints[0].selectors[0].matchArgs[0].values[0]: the value is 256 bytes, more than 255 (the longest string the tracer captures)"
            ]
        );
        assert_eq!(
            errors(&spec("Postfix", 249)),
            [
                "t.yaml:16:18: spec.tracepoints[0].selectors[0].matchArgs[0].values[0]: a Postfix value is at most 248 bytes, and this one is 249\n  fix: keep its last 248 bytes"
            ]
        );
    }

    #[test]
    fn not_a_mapping_and_not_yaml() {
        assert_eq!(
            errors("- a\n- b\n"),
            [
                "t.yaml:1:1: a TracingPolicy document is a mapping\n  fix: start the document with `apiVersion: cilium.io/v1alpha1`"
            ]
        );
        assert!(
            errors("a: [b\n")[0].starts_with("t.yaml:"),
            "a scan error has a place"
        );
        assert_eq!(
            errors("# nothing\n"),
            ["t.yaml:1:1: no TracingPolicy document in the file"]
        );
    }
}
