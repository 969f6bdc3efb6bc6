//! The JSON lines sink (stdout, or the export file): one JSON object per line. Lines wait
//! in a bounded buffer and are written when the agent flushes (after each batch from the
//! kernel). A write that fails (a full disk, a file gone read-only) leaves the unwritten
//! bytes in the buffer to be tried again at the next flush, so a line is never written
//! twice nor split; while the buffer is full new lines are dropped and counted (the
//! export stage says so in the stream once lines go out again). The kernel side never
//! waits for the disk.

use std::io::{self, Write};

/// Bytes of lines a sink holds while its writes fail.
pub const MAX_PENDING: usize = 8 << 20;
/// Pending bytes that make a write at once (a batch's end writes the rest). Writes of a
/// quarter MiB rather than 64 KiB cost the page cache less per byte; the buffer grows to
/// twice this at most while writes succeed.
const FLUSH_AT: usize = 256 << 10;

pub struct JsonSink<W: Write> {
    out: W,
    /// Whole lines not yet written, except that the first may be written in part.
    pending: Vec<u8>,
    max_pending: usize,
    /// Lines in `pending` (the newlines in it).
    pending_lines: u64,
    /// Lines written whole, and their bytes.
    written: u64,
    written_bytes: u64,
    /// Lines refused because `pending` was full.
    dropped: u64,
    /// Failed writes.
    errors: u64,
    /// The error of the last flush, while writes fail.
    failing: Option<io::ErrorKind>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        Self::with_bound(out, MAX_PENDING)
    }

    pub fn with_bound(out: W, max_pending: usize) -> Self {
        Self {
            out,
            pending: Vec::with_capacity(1 << 16),
            max_pending,
            pending_lines: 0,
            written: 0,
            written_bytes: 0,
            dropped: 0,
            errors: 0,
            failing: None,
        }
    }

    /// Adds one line (`line` is the JSON object, without the newline); false when the
    /// buffer is full and the line is dropped.
    pub fn push(&mut self, line: &[u8]) -> bool {
        if !self.pending.is_empty() && self.pending.len() + line.len() + 1 > self.max_pending {
            // Writes have been failing: try once more before dropping.
            if self.flush().is_err() || self.pending.len() + line.len() + 1 > self.max_pending {
                self.dropped += 1;
                return false;
            }
        }
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
        self.pending_lines += 1;
        if self.pending.len() >= FLUSH_AT && self.failing.is_none() {
            let _ = self.flush();
        }
        true
    }

    /// Serializes `value` as one line; false when it was dropped.
    pub fn push_value(&mut self, value: &impl serde::Serialize) -> Result<bool, serde_json::Error> {
        // Encoded in place; taken back out when it does not fit.
        let start = self.pending.len();
        if let Err(e) = serde_json::to_writer(&mut self.pending, value) {
            self.pending.truncate(start);
            return Err(e);
        }
        if start > 0 && self.pending.len() + 1 > self.max_pending {
            let line = self.pending.split_off(start);
            return Ok(self.push(&line));
        }
        self.pending.push(b'\n');
        self.pending_lines += 1;
        if self.pending.len() >= FLUSH_AT && self.failing.is_none() {
            let _ = self.flush();
        }
        Ok(true)
    }

    /// Writes what is pending. On error the rest stays pending (for the next flush) and
    /// the error is returned; it is counted once per flush.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut at = 0;
        let result = loop {
            if at == self.pending.len() {
                break self.out.flush();
            }
            match self.out.write(&self.pending[at..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // All written (the usual case): every pending line went out; else count the
        // ends of the lines that did.
        let lines = if at == self.pending.len() {
            self.pending_lines
        } else {
            self.pending[..at].iter().filter(|&&b| b == b'\n').count() as u64
        };
        self.written += lines;
        self.pending_lines -= lines;
        // Bytes of whole lines: a line written in part counts when its end is.
        self.written_bytes += at as u64;
        self.pending.drain(..at);
        match &result {
            Ok(()) => self.failing = None,
            Err(e) => {
                self.errors += 1;
                self.failing = Some(e.kind());
            }
        }
        result
    }

    /// Counts a line as written without writing it (the null sink).
    pub fn count_unwritten(&mut self) {
        self.written += 1;
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    pub fn pending_lines(&self) -> u64 {
        self.pending_lines
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Whether the last flush failed.
    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk that takes `room` more bytes, then fails with "no space"; a partial write
    /// at the edge, as a real one.
    struct Disk {
        data: Vec<u8>,
        room: usize,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room);
            self.data.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_keeps_lines_then_drops_and_counts_and_never_splits_or_repeats() {
        let mut sink = JsonSink::with_bound(
            Disk {
                data: Vec::new(),
                room: 25,
            },
            40,
        );
        let mut accepted = Vec::new();
        for i in 0..10 {
            let line = format!("{{\"n\":{i}}}"); // 7 bytes + newline
            if sink.push(line.as_bytes()) {
                accepted.push(line);
            }
            let _ = sink.flush();
        }
        assert!(sink.is_failing());
        assert!(sink.errors() > 0);
        assert_eq!(sink.written() + sink.pending_lines() + sink.dropped(), 10);
        assert!(sink.dropped() > 0);
        // Room again: what was kept goes out, in order, each line once and whole.
        sink.out.room = 1000;
        sink.flush().unwrap();
        assert!(!sink.is_failing());
        assert_eq!(sink.pending_lines(), 0);
        let text = String::from_utf8(sink.out.data.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, accepted);
        assert_eq!(sink.written(), accepted.len() as u64);
        assert_eq!(sink.written_bytes(), text.len() as u64);
    }

    #[test]
    fn values_are_one_object_per_line() {
        let mut sink = JsonSink::new(Vec::new());
        assert!(sink.push_value(&serde_json::json!({"a": 1})).unwrap());
        assert!(sink.push_value(&serde_json::json!({"b": "x"})).unwrap());
        sink.flush().unwrap();
        assert_eq!(
            String::from_utf8(sink.out.clone()).unwrap(),
            "{\"a\":1}\n{\"b\":\"x\"}\n"
        );
        assert_eq!(sink.written(), 2);
    }
}
