//! `tracer events`: the event stream for people. Reads the agent's JSON lines (files,
//! gzipped backups, stdin, or a followed export file across its rotations), keeps the
//! events the filters select, and writes each as one compact line or passes its JSON line
//! through unchanged.
//!
//! - [`filter`]: which events are shown.
//! - [`compact`]: one line per event.
//! - [`input`]: lines from files and stdin.
//! - [`follow`]: lines from an export file while the agent writes and rotates it.

pub mod compact;
pub mod filter;
pub mod follow;
pub mod input;

use std::{
    io::{self, Write},
    path::PathBuf,
};

use serde_json::Value;

pub use filter::Filter;

/// How each selected event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One line per event, for people.
    Compact,
    /// The event's JSON line, byte for byte.
    Json,
}

/// What `tracer events` shows, and how.
#[derive(Debug)]
pub struct Options {
    pub output: Output,
    /// ANSI colours in compact lines.
    pub color: bool,
    /// Each compact line starts with the event's time.
    pub timestamps: bool,
    pub filter: Filter,
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read {name}: {source}")]
    Read { name: String, source: io::Error },
    /// Writing the events out failed (a closed pipe is one: the reader is gone).
    #[error("cannot write the events: {0}")]
    Write(#[source] io::Error),
    #[error("--{flag} `{pattern}` is not a regular expression: {source}")]
    Regex {
        flag: &'static str,
        pattern: String,
        source: regex::Error,
    },
    #[error(
        "--event-types `{given}` is not an event type{hint}; the types are {}",
        filter::types_text()
    )]
    EventType { given: String, hint: String },
    #[error(
        "no input: stdin is a terminal; give files of JSON lines, `-` for stdin, or --follow FILE"
    )]
    NoInput,
}

/// Counts of what went by, for the end of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Events written out.
    pub shown: u64,
    /// Events the filters left out.
    pub filtered: u64,
    /// Lines that were not JSON, or not an event.
    pub bad: u64,
}

/// Writes the selected events of the lines it is given to `out`, and reports bad lines
/// on `err`.
pub struct View<W: Write, E: Write> {
    options: Options,
    out: io::BufWriter<W>,
    err: E,
    counts: Counts,
}

impl<W: Write, E: Write> View<W, E> {
    pub fn new(options: Options, out: W, err: E) -> Self {
        Self {
            options,
            out: io::BufWriter::with_capacity(1 << 16, out),
            err,
            counts: Counts::default(),
        }
    }

    /// One input line (without its `\n`): line `lineno` of `source`.
    pub fn line(&mut self, source: &str, lineno: u64, line: &[u8]) -> Result<(), ViewError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                let mut why = e.to_string();
                // serde_json's own position is within the line: the column is what counts.
                if let Some(at) = why.rfind(" at line ") {
                    why.truncate(at);
                }
                let at = format!("{source}:{lineno}:{}", e.column());
                self.bad(&at, &format!("not JSON ({why})"), line);
                return Ok(());
            }
        };
        let Some((kind, body)) = event_body(&value) else {
            self.bad(
                &format!("{source}:{lineno}"),
                "not an event (an event is a JSON object with one object member naming its type, such as \"process_exec\")",
                line,
            );
            return Ok(());
        };
        if !self.options.filter.matches(kind, body) {
            self.counts.filtered += 1;
            return Ok(());
        }
        self.counts.shown += 1;
        let written = match self.options.output {
            Output::Json => self
                .out
                .write_all(line)
                .and_then(|()| self.out.write_all(b"\n")),
            Output::Compact => {
                let mut text = compact::line(&value, kind, body, &self.options);
                text.push('\n');
                self.out.write_all(text.as_bytes())
            }
        };
        written.map_err(ViewError::Write)
    }

    /// Reports a bad line on stderr: where it is, why, and its start.
    fn bad(&mut self, at: &str, why: &str, line: &[u8]) {
        self.counts.bad += 1;
        const SHOWN: usize = 80;
        let text = String::from_utf8_lossy(&line[..line.len().min(SHOWN)]);
        let more = if line.len() > SHOWN { "..." } else { "" };
        // The events before it first, where both go to one terminal.
        let _ = self.out.flush();
        // What is shown of the line is escaped: it may hold anything, terminal codes too.
        let _ = writeln!(
            self.err,
            "tracer events: {at}: {why}, skipped: {}{more}",
            compact::escape(&text)
        );
    }

    /// Says something about the input on stderr (`tracer events: ...`).
    pub fn warn(&mut self, message: &str) {
        let _ = self.out.flush();
        let _ = writeln!(self.err, "tracer events: {message}");
    }

    /// Writes out what is buffered (before the input may block).
    pub fn flush(&mut self) -> Result<(), ViewError> {
        self.out.flush().map_err(ViewError::Write)
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The writer the events went to, flushed.
    pub fn into_inner(self) -> Result<W, ViewError> {
        self.out
            .into_inner()
            .map_err(|e| ViewError::Write(e.into_error()))
    }
}

/// What `tracer events` reads.
#[derive(Debug, Clone)]
pub enum Input {
    /// Files and stdin, one after the other; none is stdin (unless it is a terminal).
    Sources(Vec<input::Source>),
    /// An export file as the agent writes it, across its rotations.
    Follow { path: PathBuf, from_start: bool },
}

/// Shows the events of `input`: to its end, or, following, until stopped.
pub fn run<W: Write, E: Write>(view: &mut View<W, E>, input: Input) -> Result<(), ViewError> {
    match input {
        Input::Follow { path, from_start } => follow::Follower::open(&path, from_start)?.run(view),
        Input::Sources(mut sources) => {
            if sources.is_empty() {
                if io::IsTerminal::is_terminal(&io::stdin()) {
                    return Err(ViewError::NoInput);
                }
                sources.push(input::Source::Stdin);
            }
            for source in input::open_all(&sources)? {
                input::read(view, source)?;
            }
            view.flush()
        }
    }
}

/// The event type (the top-level member holding an object) and its body, if `value` is an
/// event: a JSON object with exactly one object member, beside `node_name`, `time`, `seq`.
pub fn event_body(value: &Value) -> Option<(&str, &Value)> {
    let mut bodies = value
        .as_object()?
        .iter()
        .filter(|(_, v)| v.is_object())
        .map(|(k, v)| (k.as_str(), v));
    let body = bodies.next()?;
    bodies.next().is_none().then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn options(output: Output) -> Options {
        Options {
            output,
            color: false,
            timestamps: false,
            filter: Filter::default(),
        }
    }

    fn run(options: Options, input: &str) -> (String, String, Counts) {
        let mut err = Vec::new();
        let mut view = View::new(options, Vec::new(), &mut err);
        for (i, line) in input.split_inclusive('\n').enumerate() {
            let line = line.strip_suffix('\n').unwrap_or(line);
            view.line("in.log", i as u64 + 1, line.as_bytes()).unwrap();
        }
        let counts = view.counts();
        let out = view.into_inner().unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            counts,
        )
    }

    const EXEC: &str = r#"{"process_exec":{"process":{"exec_id":"a","pid":7,"uid":0,"binary":"/bin/ls","arguments":"-l /tmp","start_time":"t"}},"node_name":"n1","time":"2026-01-01T00:00:00.000000001Z","seq":"1"}"#;

    #[test]
    fn json_lines_pass_through_byte_for_byte() {
        // Odd spacing, member order, unicode escapes and a CR are all kept as they were.
        let odd = "{ \"process_exit\" : {\"process\":{\"binary\":\"/bin/\\u00e9\"}, \"status\":3} ,\"time\":\"t\"}\r";
        let input = format!("{EXEC}\n{odd}\n");
        let (out, err, counts) = run(options(Output::Json), &input);
        assert_eq!(out, input);
        assert_eq!(err, "");
        assert_eq!(
            counts,
            Counts {
                shown: 2,
                filtered: 0,
                bad: 0
            }
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_line_number_and_skipped() {
        let input = format!(
            "{EXEC}\n2026-01-01T00:00:00Z  INFO tracer ready\n\n[1,2]\n{{\"a\":1,\"b\":2}}\n{{\"process_exec\":{{}},\"process_exit\":{{}}}}\n{{\"process_exec\":{{\"process\":\n{EXEC}\n"
        );
        let (out, err, counts) = run(options(Output::Json), &input);
        assert_eq!(out, format!("{EXEC}\n{EXEC}\n"), "good lines still shown");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 5, "{err}");
        assert!(
            lines[0].starts_with("tracer events: in.log:2:5: not JSON (trailing characters)")
                && lines[0].ends_with("skipped: 2026-01-01T00:00:00Z  INFO tracer ready"),
            "{}",
            lines[0]
        );
        assert!(lines[1].starts_with("tracer events: in.log:4: not an event"));
        assert!(lines[2].starts_with("tracer events: in.log:5: not an event"));
        assert!(lines[3].starts_with("tracer events: in.log:6: not an event"));
        assert!(
            lines[4].starts_with("tracer events: in.log:7:"),
            "a cut line: {}",
            lines[4]
        );
        assert!(
            lines[4].contains("not JSON (EOF while parsing"),
            "{}",
            lines[4]
        );
        assert_eq!(counts.bad, 5);
        assert_eq!(counts.shown, 2);
    }

    #[test]
    fn a_bad_line_is_shown_escaped_and_cut() {
        let line = format!("\x1b]0;owned\x07{}", "x".repeat(200));
        let (_, err, _) = run(options(Output::Compact), &line);
        assert!(!err.contains('\x1b'), "{err:?}");
        assert!(err.contains("\\u{1b}]0;owned\\u{7}xxx"), "{err}");
        assert!(err.trim_end().ends_with("x..."), "{err}");
    }

    #[test]
    fn compact_output_by_default_shape() {
        let (out, err, _) = run(options(Output::Compact), &format!("{EXEC}\n"));
        assert_eq!(out, "exec       n1 /bin/ls -l /tmp\n");
        assert_eq!(err, "");
    }

    #[test]
    fn filtered_events_are_counted_not_shown() {
        let mut o = options(Output::Json);
        o.filter = Filter::new(filter::Spec {
            event_types: vec!["exit".into()],
            ..Default::default()
        })
        .unwrap();
        let (out, _, counts) = run(o, &format!("{EXEC}\n"));
        assert_eq!(out, "");
        assert_eq!(counts.filtered, 1);
    }
}
