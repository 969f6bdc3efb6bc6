//! The JSON log file of `--export-filename`, rotated by size and by age as Tetragon's
//! flags name it: the file is renamed to `FILE.N`, N one more than the newest backup's
//! (backups never move again, so a compression in the background cannot race a rename;
//! past `--export-file-max-backups` the oldest are deleted), and a new `FILE` is opened,
//! so a log shipper that follows renames sees every line once. A rotation happens only at
//! a line's end: no line is ever split between two files. With `--export-file-compress`
//! the backups are gzipped (`FILE.N.gz`) in the background.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// When and how the file rotates (the default: never).
#[derive(Debug, Clone, Default)]
pub struct Rotation {
    /// Rotate once the file holds this many bytes (0: never by size).
    pub max_bytes: u64,
    /// Rotate once the file is this old (`None`: never by age).
    pub interval: Option<Duration>,
    /// How many rotated files to keep.
    pub max_backups: usize,
    /// Gzip the rotated files.
    pub compress: bool,
}

/// A log file that rotates at line ends.
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    size: u64,
    opened: Instant,
    /// Times the path was found deleted or moved and a new file opened there.
    reopened: u64,
}

impl RotatingFile {
    /// Opens `path` for appending (creating it).
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        let mut file = open_append(path)?;
        let mut size = file.metadata()?.len();
        if size > 0 && last_byte(path)? != Some(b'\n') {
            // A writer stopped in the middle of a line (a full disk, then killed): the
            // line is ended, so that the next one starts whole.
            file.write_all(b"\n")?;
            size += 1;
            tracing::warn!(
                "{}: its last line was cut short by the writer before (a full disk, a killed agent): it is ended here; that one event is lost",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_owned(),
            rotation,
            file,
            size,
            opened: Instant::now(),
            reopened: 0,
        })
    }

    fn due(&self) -> bool {
        (self.rotation.max_bytes > 0 && self.size >= self.rotation.max_bytes)
            || self
                .rotation
                .interval
                .is_some_and(|i| self.opened.elapsed() >= i)
    }

    /// Renames the file to the next backup and opens a new one.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.rotation.max_backups == 0 {
            // No backups kept: start over.
            self.file = open_append(&self.path)?;
            self.file.set_len(0)?;
        } else {
            // Without the list of backups (no file descriptor left, say) the next number is
            // not known: no rotation, rather than a backup overwritten.
            let mut backups = list_backups(&self.path)?;
            let mut next = backups.last().map_or(1, |(n, _)| n + 1);
            // Never onto a file that is there (made by someone else since the listing).
            while numbered(&self.path, next, false).exists()
                || numbered(&self.path, next, true).exists()
            {
                next += 1;
            }
            let backup = numbered(&self.path, next, false);
            fs::rename(&self.path, &backup)?;
            self.file = open_append(&self.path)?;
            backups.push((next, backup.clone()));
            // The oldest beyond the bound go.
            let excess = backups.len().saturating_sub(self.rotation.max_backups);
            for (n, _) in backups.iter().take(excess) {
                for gz in [false, true] {
                    let _ = fs::remove_file(numbered(&self.path, *n, gz));
                }
            }
            if self.rotation.compress {
                std::thread::spawn(move || {
                    if let Err(e) = gzip(&backup) {
                        tracing::warn!("compressing {}: {e}", backup.display());
                    }
                });
            }
        }
        self.size = 0;
        self.opened = Instant::now();
        Ok(())
    }

    /// When the path no longer names the open file (deleted, or moved by someone else),
    /// opens a new file there, as a log shipper expects of a writer: nothing more goes
    /// into a file no reader finds. Checked before each write.
    fn follow_path(&mut self) {
        use std::os::unix::fs::MetadataExt as _;
        let id = |m: fs::Metadata| (m.dev(), m.ino());
        let ours = self.file.metadata().ok().map(id);
        let there = fs::metadata(&self.path).ok().map(id);
        if ours.is_some() && ours == there {
            return;
        }
        match open_append(&self.path) {
            Ok(file) => {
                tracing::warn!(
                    "the export file {} was deleted or moved: writing to a new file there",
                    self.path.display()
                );
                self.size = file.metadata().map_or(0, |m| m.len());
                self.file = file;
                self.opened = Instant::now();
                self.reopened += 1;
            }
            Err(e) => tracing::warn!(
                "the export file {} was deleted or moved, and cannot be made again: {e}",
                self.path.display()
            ),
        }
    }

    /// How many times the file was opened again after being deleted or moved.
    pub fn reopened(&self) -> u64 {
        self.reopened
    }
}

/// `FILE.n` (or `FILE.n.gz`).
pub(crate) fn numbered(path: &Path, n: u64, gz: bool) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}{}", if gz { ".gz" } else { "" }));
    PathBuf::from(name)
}

/// The directory `path` is in: `.` for a bare file name (whose parent is the empty path,
/// which no directory listing takes).
fn dir_of(path: &Path) -> Option<&Path> {
    path.parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    })
}

/// The backups of `path` (`FILE.n`, or `FILE.n.gz` once compressed), oldest first; none
/// when the directory cannot be read.
pub(crate) fn backups(path: &Path) -> Vec<(u64, PathBuf)> {
    list_backups(path).unwrap_or_default()
}

/// The backups of `path`, oldest first, or why the directory could not be read.
fn list_backups(path: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let (Some(dir), Some(base)) = (dir_of(path), path.file_name()) else {
        return Ok(Vec::new());
    };
    let base = format!("{}.", base.to_string_lossy());
    let mut out: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&base)?;
            let n = rest.strip_suffix(".gz").unwrap_or(rest).parse().ok()?;
            Some((n, path.with_file_name(e.file_name())))
        })
        .collect();
    out.sort();
    // While a backup is being compressed both files are there: the plain one is whole.
    out.dedup_by(|later, earlier| {
        later.0 == earlier.0 && {
            if later.1.extension().is_none_or(|e| e != "gz") {
                earlier.1 = later.1.clone();
            }
            true
        }
    });
    Ok(out)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.follow_path();
        // Up to the first line end while a rotation is due; then rotate.
        let take = if self.due() {
            match buf.iter().position(|&b| b == b'\n') {
                Some(end) => end + 1,
                None => buf.len(),
            }
        } else {
            buf.len()
        };
        let n = self.file.write(&buf[..take])?;
        self.size += n as u64;
        if n == take
            && take > 0
            && buf[take - 1] == b'\n'
            && self.due()
            && let Err(e) = self.rotate()
        {
            // The bytes are written: say so, and rotate at a later line's end.
            tracing::warn!("rotating {}: {e}; tried again later", self.path.display());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The export file and its backups are the agent's and its readers' (0640), and a
/// symbolic link at their path is refused rather than followed (another file written in
/// its place).
fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::other(format!(
                    "{} is a symbolic link, and the export file is never opened through one (give the link's target)",
                    path.display()
                ))
            } else {
                e
            }
        })
}

/// Mode of the export file and its backups.
const MODE: u32 = 0o640;

/// The last byte of the file at `path`, if it has one.
fn last_byte(path: &Path) -> io::Result<Option<u8>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = File::open(path)?;
    if f.seek(SeekFrom::End(0))? == 0 {
        return Ok(None);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut b = [0u8];
    f.read_exact(&mut b)?;
    Ok(Some(b[0]))
}

/// How far back from its end [`last_seq`] reads a file for a whole line (a line is tens
/// of KiB at most, with every process-object flag on).
const SEQ_SCAN: u64 = 4 << 20;

/// The `seq` of the last line that has one in the export file at `path`, or in its newest
/// backup when the file has none (a backup not yet compressed): where an agent goes on
/// numbering when the kernel kept no number (after a reboot, `tracer cleanup`, or with
/// `--no-pin`), so that `seq` in one file increases across those too. `None` when neither
/// has a numbered line (a new file, strict mode) or they cannot be read.
pub fn last_seq(path: &Path) -> Option<u64> {
    let newest_backup = backups(path)
        .pop()
        .map(|(_, p)| p)
        .filter(|p| p.extension().is_none_or(|e| e != "gz"));
    std::iter::once(path.to_owned())
        .chain(newest_backup)
        .find_map(|p| last_seq_in(&p).ok().flatten())
}

/// The `seq` of the last whole line of `path` that has one, read from its last
/// [`SEQ_SCAN`] bytes.
fn last_seq_in(path: &Path) -> io::Result<Option<u64>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = File::open(path)?;
    let start = f.seek(SeekFrom::End(0))?.saturating_sub(SEQ_SCAN);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    f.take(SEQ_SCAN).read_to_end(&mut tail)?;
    // Read from the middle of a line: its end is not a line of its own.
    let whole = match start {
        0 => &tail[..],
        _ => match tail.iter().position(|&b| b == b'\n') {
            Some(end) => &tail[end + 1..],
            None => return Ok(None),
        },
    };
    // The top-level key only (a pod label may be named `seq` too); a line cut short by a
    // killed writer is not JSON, and the line before it is taken.
    Ok(whole.split(|&b| b == b'\n').rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_slice(line).ok()?;
        v.get("seq")?.as_str()?.parse().ok()
    }))
}

/// `FILE` to `FILE.gz`, then `FILE` removed.
fn gzip(path: &Path) -> io::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    let mut input = File::open(path)?;
    let out = {
        use std::os::unix::fs::OpenOptionsExt as _;
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(PathBuf::from(&name))?
    };
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    io::copy(&mut input, &mut gz)?;
    gz.finish()?.sync_all()?;
    match fs::remove_file(path) {
        // Pruned while it was being compressed: so is its copy.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let _ = fs::remove_file(PathBuf::from(name));
            Ok(())
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn lines_of(path: &Path) -> Vec<String> {
        let mut text = String::new();
        if path.extension().is_some_and(|e| e == "gz") {
            flate2::read::GzDecoder::new(File::open(path).unwrap())
                .read_to_string(&mut text)
                .unwrap();
        } else {
            text = fs::read_to_string(path).unwrap_or_default();
        }
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a split line in {}",
            path.display()
        );
        text.lines().map(str::to_owned).collect()
    }

    /// Writes `n` numbered lines through a buffered writer (which hands the file chunks
    /// that end mid-line), as the JSON writer does.
    fn write_lines(file: RotatingFile, n: usize) {
        let mut w = io::BufWriter::with_capacity(100, file);
        for i in 0..n {
            writeln!(w, "{{\"seq\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 37)).unwrap();
        }
        w.flush().unwrap();
    }

    /// The last `seq`: the top-level key of the last whole line that has one, in the
    /// file or, just after a rotation, in its newest uncompressed backup.
    #[test]
    fn the_last_seq_is_read_from_the_file_or_its_newest_backup() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.json");
        assert_eq!(last_seq(&path), None, "no file");
        // A pod label named `seq` is not the line's; a cut last line is not a line.
        fs::write(
            &path,
            concat!(
                "{\"process_exec\":{},\"seq\":\"41\"}\n",
                "{\"process_exec\":{\"pod\":{\"pod_labels\":{\"seq\":\"900\"}}},\"seq\":\"42\"}\n",
                "{\"process_exit\":{\"process\":{\"pid\":7},\"se",
            ),
        )
        .expect("write");
        assert_eq!(last_seq(&path), Some(42));
        // Strict mode: no line is numbered.
        fs::write(&path, "{\"process_exec\":{}}\n").expect("write");
        assert_eq!(last_seq(&path), None);
        // Just rotated: the file is empty, its newest backup has the last line; a
        // compressed one is not read.
        fs::write(numbered(&path, 3, false), "{\"seq\":\"7\"}\n").expect("write");
        fs::write(numbered(&path, 4, false), "{\"seq\":\"9\"}\n").expect("write");
        fs::write(&path, "").expect("write");
        assert_eq!(last_seq(&path), Some(9));
        fs::remove_file(numbered(&path, 4, false)).expect("remove");
        fs::write(numbered(&path, 4, true), "not gzip").expect("write");
        assert_eq!(last_seq(&path), None);
        // Longer than what is read: only whole lines count.
        let mut big = String::from("{\"seq\":\"5\"}\n{\"x\":\"");
        big.push_str(&"a".repeat(SEQ_SCAN as usize));
        big.push_str("\",\"seq\":\"6\"}\n{\"seq\":\"8\"}\n");
        fs::write(&path, &big).expect("write");
        assert_eq!(last_seq(&path), Some(8));
    }

    /// A file whose last line a writer before left cut short (a full disk, then a
    /// kill) is ended first: the next line starts whole.
    #[test]
    fn a_cut_last_line_is_ended_before_writing_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.json");
        fs::write(&path, "{\"seq\":1}\n{\"seq\":2,\"cut").unwrap();
        write_lines(RotatingFile::open(&path, Rotation::default()).unwrap(), 1);
        let lines = lines_of(&path);
        assert_eq!(
            lines,
            [
                "{\"seq\":1}",
                "{\"seq\":2,\"cut",
                "{\"seq\":0,\"pad\":\"\"}"
            ]
        );
        // A whole file is left as it is.
        write_lines(RotatingFile::open(&path, Rotation::default()).unwrap(), 1);
        assert_eq!(lines_of(&path).len(), 4);
    }

    /// The export file is 0640 and never opened through a symbolic link.
    #[test]
    fn the_file_is_private_and_a_link_in_its_place_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.json");
        write_lines(RotatingFile::open(&path, Rotation::default()).unwrap(), 1);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        let e = RotatingFile::open(&link, Rotation::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert!(!dir.path().join("elsewhere").exists());
    }

    /// A file deleted or moved under the writer: the next lines go to a new file at the
    /// path; a moved file keeps what it had; a backup whose number is taken by a file
    /// someone else made is not overwritten.
    #[test]
    fn deleted_or_moved_files_are_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let rotation = Rotation {
            max_bytes: 0,
            interval: None,
            max_backups: 5,
            compress: false,
        };
        let mut f = RotatingFile::open(&path, rotation).unwrap();
        f.write_all(b"one\n").unwrap();
        fs::remove_file(&path).unwrap();
        f.write_all(b"two\n").unwrap();
        assert_eq!(lines_of(&path), ["two"]);
        let moved = dir.path().join("elsewhere.log");
        fs::rename(&path, &moved).unwrap();
        f.write_all(b"three\n").unwrap();
        assert_eq!(lines_of(&moved), ["two"]);
        assert_eq!(lines_of(&path), ["three"]);
        assert_eq!(f.reopened(), 2);
        f.write_all(b"four\n").unwrap();
        assert_eq!(f.reopened(), 2, "not again while the path is the file");
        assert_eq!(lines_of(&path), ["three", "four"]);
    }

    #[test]
    fn rotated_by_size_every_line_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let rotation = Rotation {
            max_bytes: 2_000,
            interval: None,
            max_backups: 100,
            compress: false,
        };
        write_lines(RotatingFile::open(&path, rotation).unwrap(), 1_000);
        // Oldest backup first, the live file last.
        let mut files: Vec<PathBuf> = backups(&path).into_iter().map(|(_, p)| p).collect();
        assert!(files.len() > 10, "{files:?}");
        files.push(path);
        let all: Vec<String> = files.iter().flat_map(|f| lines_of(f)).collect();
        let seqs: Vec<u64> = all
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(seqs, (0..1_000).collect::<Vec<u64>>());
        // Each file ends near the bound: rotation waits only for the line's end.
        for f in &files[..files.len() - 1] {
            let size = fs::metadata(f).unwrap().len();
            assert!((2_000..2_200).contains(&size), "{}: {size}", f.display());
        }
    }

    #[test]
    fn backups_are_bounded_and_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let rotation = Rotation {
            max_bytes: 1_000,
            interval: None,
            max_backups: 3,
            compress: true,
        };
        write_lines(RotatingFile::open(&path, rotation).unwrap(), 500);
        // The compressions run in the background; the newest three are kept.
        let start = Instant::now();
        let done = || {
            let b = backups(&path);
            b.len() == 3
                && b.iter()
                    .all(|(_, p)| p.extension().is_some_and(|e| e == "gz"))
        };
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{:?}",
                backups(&path)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let kept = backups(&path);
        // The newest backup is followed by the live file, in sequence.
        let newest = lines_of(&kept[2].1);
        let live = lines_of(&path);
        let seq = |l: &str| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(seq(newest.last().unwrap()) + 1, seq(&live[0]));
        assert_eq!(seq(live.last().unwrap()), 499);
        // The three backups are consecutive.
        let (a, b) = (lines_of(&kept[0].1), lines_of(&kept[1].1));
        assert_eq!(seq(a.last().unwrap()) + 1, seq(&b[0]));
    }

    #[test]
    fn backups_of_a_bare_file_name_are_in_the_working_directory() {
        // `--export-filename events.log`: without this, every rotation would be to
        // events.log.1, each replacing the one before.
        assert_eq!(dir_of(Path::new("events.log")), Some(Path::new(".")));
        assert_eq!(
            dir_of(Path::new("logs/events.log")),
            Some(Path::new("logs"))
        );
        assert_eq!(dir_of(Path::new("/events.log")), Some(Path::new("/")));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        fs::write(numbered(&path, 2, false), "").unwrap();
        fs::write(numbered(&path, 1, true), "").unwrap();
        assert_eq!(
            backups(&path),
            [
                (1, numbered(&path, 1, true)),
                (2, numbered(&path, 2, false))
            ]
        );
    }

    #[test]
    fn rotated_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let rotation = Rotation {
            max_bytes: 0,
            interval: Some(Duration::from_millis(100)),
            max_backups: 5,
            compress: false,
        };
        let mut f = RotatingFile::open(&path, rotation).unwrap();
        f.write_all(b"{\"seq\":0}\n").unwrap();
        std::thread::sleep(Duration::from_millis(150));
        f.write_all(b"{\"seq\":1}\n").unwrap();
        f.write_all(b"{\"seq\":2}\n").unwrap();
        assert_eq!(
            lines_of(&dir.path().join("events.log.1")),
            ["{\"seq\":0}", "{\"seq\":1}"]
        );
        assert_eq!(lines_of(&path), ["{\"seq\":2}"]);
    }
}
