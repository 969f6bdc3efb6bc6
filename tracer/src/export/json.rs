//! JSON lines: one event per line, flushed after every batch drained from the kernel so
//! that a reader sees each event within one drain of its happening. Each line carries
//! `seq`, this agent's sequence number of the line (from 1, a string as 64-bit counters
//! are), so a reader can tell a gap: a line it never got.

use std::io::{self, Write};

use crate::event::Event;

pub struct JsonLines<W: Write> {
    out: io::BufWriter<W>,
    written: u64,
    seq: u64,
}

/// An event with its sequence number, as one JSON object.
#[derive(serde::Serialize)]
struct Numbered<'a, T: serde::Serialize> {
    #[serde(flatten)]
    event: &'a T,
    seq: String,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: io::BufWriter::with_capacity(1 << 16, out),
            written: 0,
            seq: 0,
        }
    }

    pub fn write(&mut self, event: &Event<'_>) -> io::Result<()> {
        self.write_any(event)
    }

    /// An event already in JSON form (one that waited for its pod).
    pub fn write_value(&mut self, event: &serde_json::Value) -> io::Result<()> {
        self.write_any(event)
    }

    fn write_any(&mut self, event: &impl serde::Serialize) -> io::Result<()> {
        // Taken even when the write fails: the gap says a line is missing.
        self.seq += 1;
        let line = Numbered {
            event,
            seq: self.seq.to_string(),
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, Event};

    #[test]
    fn one_object_per_line() {
        let mut w = JsonLines::new(Vec::new());
        for _ in 0..2 {
            w.write(&Event {
                body: Body::EventLoss {
                    lost: Default::default(),
                    total_lost: "0".into(),
                },
                node_name: "n",
                time: "t".into(),
            })
            .unwrap();
        }
        w.flush().unwrap();
        let text = String::from_utf8(w.out.into_inner().unwrap()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            r#"{"event_loss":{"lost":{},"total_lost":"0"},"node_name":"n","time":"t","seq":"1"}"#
        );
        assert!(lines[1].ends_with(r#""seq":"2"}"#), "{}", lines[1]);
    }
}
