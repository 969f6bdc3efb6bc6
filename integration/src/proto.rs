//! Tetragon's protobuf definition as the judge of the JSON lines: each line is decoded
//! with protobuf's own JSON parser (Python's `google.protobuf.json_format`) into
//! Tetragon's `GetEventsResponse`, unknown fields rejected, and encoded again with proto
//! field names; the line must come back the same (zero values left out, 64-bit integers
//! as strings, enums by name, timestamps with 0, 3, 6 or 9 digits). The Python classes
//! are generated at test time from the shared `.proto` files (`grpcio-tools`'s protoc,
//! which `cargo xtask test` installs); nothing of them is kept in the project.
//!
//! Lines of the default mode may carry the tracer's additions, each listed in
//! [`ADDITIONS`]: they are taken out before the check, so any other field the proto does
//! not have still fails it. `--export-tetragon-strict` lines are checked as they are.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The tracer's additions to Tetragon's events (the README lists them), by where they
/// are: `KEY` anywhere in a process object or an event's body, `/KEY` at the top level,
/// `kind.KEY` in the body of one kind, `!kind` a whole event kind.
pub const ADDITIONS: &[&str] = &[
    "/seq",
    "!event_loss",
    "cgroup_id",
    "script",
    "host",
    "pod_unknown",
    "policy_mode",
    "process_loader.policy_name",
    "rate_limit_info.since",
    "process_tracepoint.kernel_stack_trace",
    "process_tracepoint.user_stack_trace",
    "process_uprobe.kernel_stack_trace",
    "process_uprobe.user_stack_trace",
    "process_usdt.kernel_stack_trace",
    "process_usdt.user_stack_trace",
    "process_lsm.kernel_stack_trace",
    "process_lsm.user_stack_trace",
];

const CHECK: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from google.protobuf import json_format
from tetragon import events_pb2

strict = sys.argv[2] == "strict"
additions = json.loads(sys.argv[3])
top = {a[1:] for a in additions if a.startswith("/")}
kinds = {a[1:] for a in additions if a.startswith("!")}
per_kind = {}
anywhere = set()
for a in additions:
    if a[0] in "/!":
        continue
    if "." in a:
        k, f = a.split(".", 1)
        per_kind.setdefault(k, set()).add(f)
    else:
        anywhere.add(a)

def strip_process(p):
    if isinstance(p, dict):
        for f in anywhere:
            p.pop(f, None)

def strip(line):
    for f in top:
        line.pop(f, None)
    for kind, body in line.items():
        if not isinstance(body, dict):
            continue
        for f in per_kind.get(kind, ()):
            body.pop(f, None)
        for f in anywhere:
            body.pop(f, None)
        for key in ("process", "parent"):
            strip_process(body.get(key))
        for p in body.get("ancestors", []):
            strip_process(p)
    return line

def diff(a, b, at, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{at}.{k}: written {json.dumps(b[k])[:120]}, protojson leaves it out")
            elif k not in b:
                out.append(f"{at}.{k}: protojson writes {json.dumps(a[k])[:120]}, the line has none")
            else:
                diff(a[k], b[k], f"{at}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{at}[{i}]", out)
    elif a != b:
        out.append(f"{at}: written {json.dumps(b)[:120]}, protojson writes {json.dumps(a)[:120]}")

checked = 0
for n, text in enumerate(sys.stdin, 1):
    text = text.strip()
    if not text.startswith("{"):
        continue
    line = json.loads(text)
    if not strict:
        if any(k in line for k in kinds):
            continue
        line = strip(line)
    checked += 1
    try:
        m = events_pb2.GetEventsResponse()
        json_format.Parse(json.dumps(line), m, ignore_unknown_fields=False)
        back = json_format.MessageToDict(m, preserving_proto_field_name=True)
    except Exception as e:
        print(json.dumps({"line": n, "error": str(e).splitlines()[0], "text": text[:400]}))
        continue
    out = []
    diff(back, line, "", out)
    for d in out:
        print(json.dumps({"line": n, "error": d, "text": text[:400]}))
print(json.dumps({"checked": checked}))
"#;

/// The generated Python classes of Tetragon's proto, under a temporary directory.
pub struct Proto {
    dir: tempfile::TempDir,
}

/// What the check found in a run's lines.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Lines decoded (in the default mode, `event_loss` lines are not).
    pub checked: usize,
    /// One per problem: the line's number, what is wrong, and the line's start.
    pub errors: Vec<String>,
}

/// The shared copy of Tetragon's `.proto` files.
pub fn proto_dir() -> PathBuf {
    let dir = crate::corpus::corpus().join("../proto");
    assert!(
        dir.join("events.proto").is_file(),
        "Tetragon's .proto files are not at {} (the shared corpus's `proto` directory)",
        dir.display()
    );
    dir
}

impl Proto {
    /// Generates the classes with `python3 -m grpc_tools.protoc`.
    pub fn generate() -> Proto {
        let dir = tempfile::tempdir().expect("temp dir");
        // The files import each other as `tetragon/NAME.proto`.
        let src = dir.path().join("src/tetragon");
        std::fs::create_dir_all(&src).expect("create the proto tree");
        for e in std::fs::read_dir(proto_dir()).expect("read the proto directory") {
            let path = e.expect("directory entry").path();
            if path.extension().is_some_and(|x| x == "proto") {
                std::fs::copy(&path, src.join(path.file_name().expect("a file name")))
                    .expect("copy a .proto file");
            }
        }
        let out = dir.path().join("py");
        std::fs::create_dir_all(&out).expect("create the output directory");
        let include = Command::new("python3")
            .args([
                "-c",
                "import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'))",
            ])
            .output()
            .expect("run python3");
        assert!(
            include.status.success(),
            "Python's grpcio-tools is missing (`cargo xtask test` installs it: pip install grpcio-tools): {}",
            String::from_utf8_lossy(&include.stderr)
        );
        let include = String::from_utf8_lossy(&include.stdout).trim().to_owned();
        let mut protoc = Command::new("python3");
        protoc
            .args(["-m", "grpc_tools.protoc"])
            .arg(format!("-I{}", dir.path().join("src").display()))
            .arg(format!("-I{include}"))
            .arg(format!("--python_out={}", out.display()));
        for name in [
            "tetragon.proto",
            "events.proto",
            "capabilities.proto",
            "bpf.proto",
        ] {
            protoc.arg(src.join(name));
        }
        let status = protoc.status().expect("run grpc_tools.protoc");
        assert!(status.success(), "protoc failed on Tetragon's .proto files");
        Proto { dir }
    }

    fn classes(&self) -> &Path {
        self.dir.path()
    }

    /// Checks `lines` (JSON lines of a run); `strict` for `--export-tetragon-strict`.
    pub fn check(&self, lines: &str, strict: bool) -> Verdict {
        let additions = serde_json::to_string(ADDITIONS).expect("encode the additions");
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(CHECK)
            .arg(self.classes().join("py"))
            .arg(if strict { "strict" } else { "default" })
            .arg(additions)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run python3");
        let mut stdin = child.stdin.take().expect("the checker's stdin");
        let input = lines.to_owned();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().expect("wait for the checker");
        let _ = writer.join();
        assert!(out.status.success(), "the checker failed");
        let mut verdict = Verdict::default();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(l).expect("the checker's output");
            if let Some(n) = v["checked"].as_u64() {
                verdict.checked = n as usize;
            } else {
                verdict.errors.push(format!(
                    "line {}: {}\n    {}",
                    v["line"], v["error"], v["text"]
                ));
            }
        }
        verdict
    }
}
