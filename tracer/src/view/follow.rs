//! `tracer events --follow FILE`: the agent's export file while it is written, as
//! `tail -F` follows a log, across its rotations, with no line lost or shown twice.
//!
//! The file is read through one open descriptor, so a rename does not disturb the read.
//! At its end the path is looked at again: the same file means nothing new yet; another
//! file means the agent rotated it (renamed it to `FILE.N` and made a new `FILE`), so what
//! it wrote before the rename is read to the end (a rotation happens only at a line's
//! end), then its successor. The successor is not simply the new `FILE`: a reader that
//! fell behind (a slow terminal, a pager) can find several rotations done. The agent
//! numbers backups upwards and never renames them again, so the successor of `FILE.K`
//! is the lowest backup above K (`FILE.N`, or `FILE.N.gz` once compressed), and the live
//! `FILE` only when there is none; a backup deleted before it was read
//! (`--export-file-max-backups`) is said to be missing. A file's number K is found by its
//! inode among the backups, or, once compressed away, from the backups there were when it
//! was opened. Backups numbered the other way round (logrotate's `FILE.1` the newest) are
//! told apart by their age: older than the file just read, they are not its successor.

use std::{
    fs::{self, File},
    io::{self, Read, Seek, SeekFrom},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    thread,
    time::{Duration, SystemTime},
};

use flate2::read::MultiGzDecoder;

use super::{View, ViewError};
use crate::export::file::{backups, numbered};

/// How long to wait at the end of the file before looking again.
pub const POLL: Duration = Duration::from_millis(100);

enum Reader {
    Plain(File),
    /// A compressed backup, whole.
    Gz(Box<MultiGzDecoder<File>>),
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Reader::Plain(f) => f.read(buf),
            Reader::Gz(gz) => gz.read(buf),
        }
    }
}

/// One file of the export: the live one, or a backup.
struct Generation {
    reader: Reader,
    /// The name its lines are reported under.
    name: String,
    /// Device and inode of the file opened.
    id: (u64, u64),
    /// The backup number it has, or will take when rotated (when known).
    number: Option<u64>,
    /// A backup, whole: read it to its end, then go on to its successor.
    rotated: bool,
    /// Bytes read from it.
    offset: u64,
    /// Lines read from it.
    lineno: u64,
    /// The start of a line whose end is not written yet.
    pending: Vec<u8>,
}

impl Generation {
    fn new(file: File, path: &Path, number: Option<u64>, rotated: bool) -> io::Result<Self> {
        let meta = file.metadata()?;
        // A backup the agent compressed is whole, and read through gzip.
        let reader = if rotated && is_gz(path) {
            Reader::Gz(Box::new(MultiGzDecoder::new(file)))
        } else {
            Reader::Plain(file)
        };
        Ok(Self {
            reader,
            name: path.display().to_string(),
            id: (meta.dev(), meta.ino()),
            number,
            rotated,
            offset: 0,
            lineno: 0,
            pending: Vec::new(),
        })
    }

    /// Backup `n` at `path` (`FILE.N` or `FILE.N.gz`).
    fn backup(path: &Path, n: u64) -> io::Result<Self> {
        Self::new(File::open(path)?, path, Some(n), true)
    }

    /// When it was last written (a plain file's; a compressed one's is its compression's).
    fn modified(&self) -> Option<SystemTime> {
        match &self.reader {
            Reader::Plain(f) => f.metadata().and_then(|m| m.modified()).ok(),
            Reader::Gz(_) => None,
        }
    }

    /// Moves past every complete line there is, counting them: following starts at the
    /// end (a line still being written is shown once it is whole).
    fn skip_existing(&mut self) -> io::Result<()> {
        let Reader::Plain(file) = &mut self.reader else {
            return Ok(());
        };
        let mut buf = vec![0u8; 1 << 16];
        let (mut pos, mut after_last_newline, mut lines) = (0u64, 0u64, 0u64);
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            for (i, _) in buf[..n].iter().enumerate().filter(|(_, b)| **b == b'\n') {
                lines += 1;
                after_last_newline = pos + i as u64 + 1;
            }
            pos += n as u64;
        }
        file.seek(SeekFrom::Start(after_last_newline))?;
        self.offset = after_last_newline;
        self.lineno = lines;
        Ok(())
    }
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

fn id_of(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Follows one export file.
pub struct Follower {
    path: PathBuf,
    cur: Generation,
    buf: Vec<u8>,
}

impl Follower {
    /// Opens `path`, at its end, or at its start with `from_start`.
    pub fn open(path: &Path, from_start: bool) -> Result<Self, ViewError> {
        let open_err = |source| ViewError::Open {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        if file.metadata().map_err(open_err)?.is_dir() {
            return Err(open_err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "it is a directory",
            )));
        }
        let mut cur = Generation::new(file, path, None, false).map_err(open_err)?;
        // Its number: the one it already has (rotated since it was opened), or the one the
        // agent will give it, past the newest backup.
        let known = backups(path);
        match known
            .iter()
            .find(|(_, p)| !is_gz(p) && id_of(p) == Some(cur.id))
        {
            Some((n, _)) => (cur.number, cur.rotated) = (Some(*n), true),
            None => cur.number = Some(known.last().map_or(1, |(n, _)| n + 1)),
        }
        if !from_start {
            cur.skip_existing().map_err(open_err)?;
        }
        Ok(Self {
            path: path.to_owned(),
            cur,
            buf: vec![0u8; 1 << 16],
        })
    }

    /// Shows what has been written since the last call, moving on to the next file when
    /// the agent rotated this one. False when there was nothing new.
    pub fn poll<W: io::Write, E: io::Write>(
        &mut self,
        view: &mut View<W, E>,
    ) -> Result<bool, ViewError> {
        let mut progressed = self.drain(view)?;
        if !self.cur.rotated {
            match fs::metadata(&self.path) {
                Ok(m) if (m.dev(), m.ino()) == self.cur.id => {
                    if m.len() < self.cur.offset {
                        // Cut in place (no backups kept, or copytruncate): read it anew.
                        view.warn(&format!(
                            "{} was truncated: reading it again from its start",
                            self.cur.name
                        ));
                        if let Reader::Plain(f) = &mut self.cur.reader {
                            f.seek(SeekFrom::Start(0))
                                .map_err(|source| self.read_err(source))?;
                        }
                        self.cur.offset = 0;
                        self.cur.lineno = 0;
                        self.cur.pending.clear();
                        return Ok(true);
                    }
                    return Ok(progressed);
                }
                // Another file there: rotated. What was written before the rename is in
                // this one.
                Ok(_) => {
                    progressed |= self.drain(view)?;
                    self.cur.rotated = true;
                }
                // Renamed, and the new file not made yet; or removed, and the writer may
                // still write to it: wait for a file to appear.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(progressed),
                Err(source) => {
                    return Err(ViewError::Read {
                        name: self.path.display().to_string(),
                        source,
                    });
                }
            }
        }
        let Some(next) = self.successor(view)? else {
            return Ok(progressed);
        };
        // A last line without its end (a writer that stopped mid-line) is shown as it is.
        if !self.cur.pending.is_empty() {
            let pending = std::mem::take(&mut self.cur.pending);
            view.line(&self.cur.name, self.cur.lineno + 1, &pending)?;
        }
        self.cur = next;
        Ok(true)
    }

    /// Follows for ever, flushing what is shown whenever there is nothing new.
    pub fn run<W: io::Write, E: io::Write>(
        &mut self,
        view: &mut View<W, E>,
    ) -> Result<(), ViewError> {
        loop {
            if !self.poll(view)? {
                view.flush()?;
                thread::sleep(POLL);
            }
        }
    }

    fn read_err(&self, source: io::Error) -> ViewError {
        ViewError::Read {
            name: self.cur.name.clone(),
            source,
        }
    }

    /// Reads the current file to its end, showing each complete line.
    fn drain<W: io::Write, E: io::Write>(
        &mut self,
        view: &mut View<W, E>,
    ) -> Result<bool, ViewError> {
        let mut any = false;
        loop {
            let n = match self.cur.reader.read(&mut self.buf) {
                Ok(0) => return Ok(any),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_err(e)),
            };
            any = true;
            self.cur.offset += n as u64;
            let mut start = 0;
            while let Some(i) = self.buf[start..n].iter().position(|b| *b == b'\n') {
                let end = start + i;
                self.cur.lineno += 1;
                if self.cur.pending.is_empty() {
                    view.line(&self.cur.name, self.cur.lineno, &self.buf[start..end])?;
                } else {
                    self.cur.pending.extend_from_slice(&self.buf[start..end]);
                    view.line(&self.cur.name, self.cur.lineno, &self.cur.pending)?;
                    self.cur.pending.clear();
                }
                start = end + 1;
            }
            self.cur.pending.extend_from_slice(&self.buf[start..n]);
        }
    }

    /// The file that follows the current one, rotated and read to its end; `None` while
    /// there is none yet.
    fn successor<W: io::Write, E: io::Write>(
        &self,
        view: &mut View<W, E>,
    ) -> Result<Option<Generation>, ViewError> {
        let plain_id = |p: &Path| if is_gz(p) { None } else { id_of(p) };
        // The current file's number: by its inode while it is a plain backup.
        let k = backups(&self.path)
            .iter()
            .find(|(_, p)| {
                matches!(self.cur.reader, Reader::Plain(_)) && plain_id(p) == Some(self.cur.id)
            })
            .map(|(n, _)| *n)
            .or(self.cur.number);
        let written = self.cur.modified();
        // The lowest backup past it; not one older than it (numbered the other way round).
        let after = |backups: Vec<(u64, PathBuf)>| {
            backups.into_iter().find(|(n, p)| {
                k.is_some_and(|k| *n > k)
                    && written.is_none_or(|w| {
                        fs::metadata(p)
                            .and_then(|m| m.modified())
                            .is_ok_and(|m| m >= w)
                    })
            })
        };
        let io_err = |name: &Path, source| ViewError::Read {
            name: name.display().to_string(),
            source,
        };
        // The files may change while they are looked at: a few tries, then the next poll.
        for _ in 0..8 {
            if let Some((n, p)) = after(backups(&self.path)) {
                match Generation::backup(&p, n) {
                    Ok(g) => {
                        if let Some(k) = k.filter(|k| n > k + 1) {
                            let first = numbered(&self.path, k + 1, false);
                            let missing = if n == k + 2 {
                                format!("{} was removed before it could be read", first.display())
                            } else {
                                format!(
                                    "{} to {} were removed before they could be read",
                                    first.display(),
                                    numbered(&self.path, n - 1, false).display()
                                )
                            };
                            view.warn(&format!(
                                "{missing} (the agent keeps --export-file-max-backups): their events are missing"
                            ));
                        }
                        return Ok(Some(g));
                    }
                    // Compressed meanwhile: its `.gz` is there now.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(&p, e)),
                }
            }
            // No backup past it: the successor is the live file.
            let file = match File::open(&self.path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err(&self.path, e)),
            };
            let live = Generation::new(file, &self.path, k.map(|k| k + 1), false)
                .map_err(|e| io_err(&self.path, e))?;
            if live.id == self.cur.id {
                return Ok(None);
            }
            // Unless it was rotated in between, itself (then it is whole) or the one
            // before it (then that one comes first).
            match after(backups(&self.path)) {
                None => return Ok(Some(live)),
                Some((n, p)) => {
                    let unlinked = match &live.reader {
                        Reader::Plain(f) => f.metadata().is_ok_and(|m| m.nlink() == 0),
                        Reader::Gz(_) => false,
                    };
                    if plain_id(&p) == Some(live.id) || unlinked {
                        return Ok(Some(Generation {
                            number: Some(n),
                            rotated: true,
                            ..live
                        }));
                    }
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write as _,
        time::{Duration, Instant},
    };

    use super::*;
    use crate::{
        export::file::{RotatingFile, Rotation},
        view::{Output, tests::options},
    };

    fn line(seq: u64) -> String {
        format!(
            r#"{{"process_exec":{{"process":{{"binary":"/bin/true","arguments":"{seq}"}}}},"node_name":"n","time":"t","seq":"{seq}"}}"#
        )
    }

    /// The agent's writer rotating `path` every 2,000 bytes, with one line written; and
    /// a follower from the start that has read it.
    fn following_line_1(
        path: &Path,
        max_backups: usize,
        compress: bool,
    ) -> (
        io::BufWriter<RotatingFile>,
        View<Vec<u8>, Vec<u8>>,
        Follower,
    ) {
        let rotation = Rotation {
            max_bytes: 2_000,
            interval: None,
            max_backups,
            compress,
        };
        let mut out =
            io::BufWriter::with_capacity(500, RotatingFile::open(path, rotation).unwrap());
        writeln!(out, "{}", line(1)).unwrap();
        out.flush().unwrap();
        let mut v = view();
        let mut f = Follower::open(path, true).unwrap();
        f.poll(&mut v).unwrap();
        (out, v, f)
    }

    fn view() -> View<Vec<u8>, Vec<u8>> {
        View::new(options(Output::Json), Vec::new(), Vec::new())
    }

    /// The seqs shown so far, and what was said on stderr.
    fn seen(view: &mut View<Vec<u8>, Vec<u8>>) -> (Vec<u64>, String) {
        view.flush().unwrap();
        let out = String::from_utf8(view.out.get_ref().clone()).unwrap();
        let seqs = out
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        (seqs, String::from_utf8(view.err.clone()).unwrap())
    }

    fn append(path: &Path, text: &str) {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn lines(range: std::ops::RangeInclusive<u64>) -> String {
        range.map(|i| line(i) + "\n").collect()
    }

    /// Polls until `n` lines were shown, or fails after a while.
    fn poll_until(f: &mut Follower, v: &mut View<Vec<u8>, Vec<u8>>, n: usize) {
        let start = Instant::now();
        while seen(v).0.len() < n {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} of {n} lines: {:?}",
                seen(v).0.len(),
                seen(v)
            );
            if !f.poll(v).unwrap() {
                thread::sleep(Duration::from_millis(5));
            }
        }
        // Nothing more than that, however long one waits.
        for _ in 0..3 {
            f.poll(v).unwrap();
        }
    }

    #[test]
    fn starts_at_the_end_and_reads_what_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        // One line whole, one being written.
        append(&path, &(lines(1..=2) + &line(3)[..20]));
        let mut v = view();
        let mut f = Follower::open(&path, false).unwrap();
        f.poll(&mut v).unwrap();
        assert!(
            seen(&mut v).0.is_empty(),
            "the lines there before are not shown"
        );
        append(&path, &(line(3)[20..].to_owned() + "\n"));
        append(&path, &line(4)[..5]);
        f.poll(&mut v).unwrap();
        assert_eq!(
            seen(&mut v).0,
            [3],
            "the line being written is shown once whole"
        );
        append(&path, &(line(4)[5..].to_owned() + "\n"));
        f.poll(&mut v).unwrap();
        assert_eq!(seen(&mut v), (vec![3, 4], String::new()));
        assert!(!f.poll(&mut v).unwrap(), "nothing new");
    }

    #[test]
    fn from_start_and_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        append(&path, &(lines(1..=2) + "garbage\n"));
        let mut v = view();
        let mut f = Follower::open(&path, true).unwrap();
        f.poll(&mut v).unwrap();
        let (seqs, err) = seen(&mut v);
        assert_eq!(seqs, [1, 2]);
        assert!(
            err.starts_with(&format!("tracer events: {}:3:1: not JSON", path.display())),
            "{err}"
        );
        // At the end, the lines already there are counted.
        let mut v = view();
        let mut f = Follower::open(&path, false).unwrap();
        append(&path, "bad\n");
        f.poll(&mut v).unwrap();
        assert!(
            seen(&mut v)
                .1
                .starts_with(&format!("tracer events: {}:4:", path.display())),
            "{:?}",
            seen(&mut v).1
        );
    }

    #[test]
    fn renamed_and_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        append(&path, &lines(1..=2));
        let mut v = view();
        let mut f = Follower::open(&path, true).unwrap();
        f.poll(&mut v).unwrap();
        // Written after the last read, then renamed: still read, before the new file.
        append(&path, &lines(3..=4));
        fs::rename(&path, numbered(&path, 1, false)).unwrap();
        f.poll(&mut v).unwrap();
        assert_eq!(seen(&mut v).0, [1, 2, 3, 4], "waits for the new file");
        append(&path, &lines(5..=5));
        poll_until(&mut f, &mut v, 5);
        // Two rotations between two looks.
        append(&path, &lines(6..=7));
        fs::rename(&path, numbered(&path, 2, false)).unwrap();
        append(&path, &lines(8..=9));
        fs::rename(&path, numbered(&path, 3, false)).unwrap();
        append(&path, &lines(10..=10));
        poll_until(&mut f, &mut v, 10);
        assert_eq!(seen(&mut v), ((1..=10).collect(), String::new()));
    }

    #[test]
    fn while_the_agent_writes_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let rotation = Rotation {
            max_bytes: 3_000,
            interval: None,
            max_backups: 1_000,
            compress: true,
        };
        let mut out =
            io::BufWriter::with_capacity(700, RotatingFile::open(&path, rotation).unwrap());
        let mut v = view();
        let mut f = Follower::open(&path, false).unwrap();
        const N: u64 = 3_000;
        let writer = thread::spawn(move || {
            for i in 1..=N {
                writeln!(out, "{}", line(i)).unwrap();
                if i % 97 == 0 {
                    out.flush().unwrap();
                    thread::sleep(Duration::from_millis(1));
                }
            }
            out.flush().unwrap();
        });
        poll_until(&mut f, &mut v, N as usize);
        writer.join().unwrap();
        f.poll(&mut v).unwrap();
        assert_eq!(seen(&mut v), ((1..=N).collect(), String::new()));
    }

    #[test]
    fn a_reader_behind_catches_up_through_the_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let (mut out, mut v, mut f) = following_line_1(&path, 1_000, true);
        // Many rotations while it does not look, the older backups compressed.
        for i in 2..=1_000 {
            writeln!(out, "{}", line(i)).unwrap();
        }
        out.flush().unwrap();
        let start = Instant::now();
        while !backups(&path).iter().take(5).all(|(_, p)| is_gz(p)) {
            assert!(start.elapsed() < Duration::from_secs(10));
            thread::sleep(Duration::from_millis(10));
        }
        poll_until(&mut f, &mut v, 1_000);
        assert_eq!(seen(&mut v), ((1..=1_000).collect(), String::new()));
    }

    #[test]
    fn backups_deleted_before_they_were_read_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let (mut out, mut v, mut f) = following_line_1(&path, 2, false);
        for i in 2..=500 {
            writeln!(out, "{}", line(i)).unwrap();
        }
        out.flush().unwrap();
        // The first file (still open here, though deleted) is read whole; then the two
        // backups kept, then the live file.
        let mut rounds = 0;
        while f.poll(&mut v).unwrap() {
            rounds += 1;
            assert!(rounds < 100);
        }
        let (seqs, err) = seen(&mut v);
        assert_eq!(seqs.last(), Some(&500));
        let cut = seqs.windows(2).filter(|w| w[1] != w[0] + 1).count();
        assert_eq!(cut, 1, "one gap: {seqs:?}");
        assert!(
            err.contains("were removed before they could be read (the agent keeps --export-file-max-backups): their events are missing"),
            "{err}"
        );
        let mut sorted = seqs.clone();
        sorted.dedup();
        assert_eq!(sorted, seqs, "none twice");
    }

    #[test]
    fn truncated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        append(&path, &lines(1..=3));
        let mut v = view();
        let mut f = Follower::open(&path, true).unwrap();
        f.poll(&mut v).unwrap();
        fs::write(&path, lines(4..=4)).unwrap();
        poll_until(&mut f, &mut v, 4);
        let (seqs, err) = seen(&mut v);
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert!(
            err.contains("was truncated: reading it again from its start"),
            "{err}"
        );
    }

    #[test]
    fn older_backups_numbered_the_other_way_are_not_read_again() {
        // logrotate's scheme: FILE.1 is the newest, FILE.2 older.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        append(&numbered(&path, 2, false), &lines(100..=101));
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(numbered(&path, 2, false))
            .unwrap()
            .set_modified(old)
            .unwrap();
        append(&path, &lines(1..=2));
        let mut v = view();
        let mut f = Follower::open(&path, true).unwrap();
        f.poll(&mut v).unwrap();
        fs::rename(numbered(&path, 2, false), numbered(&path, 3, false)).unwrap();
        append(&path, &lines(3..=3));
        fs::rename(&path, numbered(&path, 1, false)).unwrap();
        append(&path, &lines(4..=4));
        poll_until(&mut f, &mut v, 4);
        assert_eq!(seen(&mut v), ((1..=4).collect(), String::new()));
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.log");
        let Err(e) = Follower::open(&path, false) else {
            panic!("opened a missing file");
        };
        assert_eq!(
            e.to_string(),
            format!(
                "cannot open {}: No such file or directory (os error 2)",
                path.display()
            )
        );
    }
}
