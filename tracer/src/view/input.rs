//! Lines from files and stdin. A gzipped file (the agent's compressed backups,
//! `FILE.N.gz`) is read through gzip, known by its first bytes rather than its name.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Cursor, Read},
    path::{Path, PathBuf},
};

use super::{View, ViewError};

/// Where lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(PathBuf),
}

impl Source {
    /// `-` is stdin.
    pub fn from_arg(arg: PathBuf) -> Self {
        if arg.as_os_str() == "-" {
            Source::Stdin
        } else {
            Source::File(arg)
        }
    }

    /// The name bad lines are reported under.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "stdin".to_owned(),
            Source::File(p) => p.display().to_string(),
        }
    }
}

/// An opened source.
pub struct Opened {
    pub name: String,
    reader: Box<dyn Read>,
}

/// Opens every file first, so that a missing one is said before anything is shown.
pub fn open_all(sources: &[Source]) -> Result<Vec<Opened>, ViewError> {
    sources
        .iter()
        .map(|s| {
            let reader: Box<dyn Read> = match s {
                Source::Stdin => Box::new(io::stdin()),
                Source::File(path) => Box::new(open_file(path)?),
            };
            Ok(Opened {
                name: s.name(),
                reader,
            })
        })
        .collect()
}

fn open_file(path: &Path) -> Result<File, ViewError> {
    let file = File::open(path).map_err(|source| ViewError::Open {
        path: path.to_owned(),
        source,
    })?;
    // A directory opens, and fails at the first read: say so now.
    match file.metadata() {
        Ok(m) if m.is_dir() => Err(ViewError::Open {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::IsADirectory, "it is a directory"),
        }),
        _ => Ok(file),
    }
}

/// `reader`, through gzip if its first bytes say it is gzipped.
pub fn decompressed(mut reader: Box<dyn Read>) -> io::Result<Box<dyn Read>> {
    let mut head = Vec::with_capacity(2);
    while head.len() < 2 {
        let mut byte = [0u8; 1];
        match reader.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let gzipped = head == [0x1f, 0x8b];
    let whole = Cursor::new(head).chain(reader);
    Ok(if gzipped {
        Box::new(flate2::read::MultiGzDecoder::new(whole))
    } else {
        Box::new(whole)
    })
}

/// Shows every line of `source`, numbered from 1. What is shown is flushed whenever the
/// next read may wait (a pipe from `kubectl logs -f`), not only at the end.
pub fn read<W: io::Write, E: io::Write>(
    view: &mut View<W, E>,
    source: Opened,
) -> Result<(), ViewError> {
    let name = source.name;
    let read_err = |source| ViewError::Read {
        name: name.clone(),
        source,
    };
    let mut reader =
        BufReader::with_capacity(1 << 16, decompressed(source.reader).map_err(read_err)?);
    let mut line = Vec::new();
    let mut lineno = 0;
    loop {
        if !reader.buffer().contains(&b'\n') {
            view.flush()?;
        }
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(read_err)? == 0 {
            break;
        }
        lineno += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        view.line(&name, lineno, text)?;
    }
    view.flush()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::view::{Output, tests::options};

    const LINE: &str =
        r#"{"process_exec":{"process":{"binary":"/bin/true"}},"node_name":"n","time":"t"}"#;

    fn shown(reader: Box<dyn Read>) -> (String, String) {
        let mut err = Vec::new();
        let mut view = View::new(options(Output::Json), Vec::new(), &mut err);
        read(
            &mut view,
            Opened {
                name: "in".into(),
                reader,
            },
        )
        .unwrap();
        let out = view.into_inner().unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn plain_and_gzipped() {
        let text = format!("{LINE}\nnot json\n{LINE}\n");
        let (out, err) = shown(Box::new(Cursor::new(text.clone())));
        assert_eq!(out, format!("{LINE}\n{LINE}\n"));
        assert!(err.starts_with("tracer events: in:2:"), "{err}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let (out_gz, err_gz) = shown(Box::new(Cursor::new(gz.finish().unwrap())));
        assert_eq!((out_gz, err_gz), (out, err));
    }

    #[test]
    fn a_last_line_without_its_newline_and_short_inputs() {
        let (out, _) = shown(Box::new(Cursor::new(format!("{LINE}\n{LINE}"))));
        assert_eq!(out, format!("{LINE}\n{LINE}\n"));
        let (out, err) = shown(Box::new(Cursor::new("")));
        assert_eq!((out.as_str(), err.as_str()), ("", ""));
        let (out, err) = shown(Box::new(Cursor::new("x")));
        assert_eq!(out, "");
        assert!(err.starts_with("tracer events: in:1:1: not JSON"), "{err}");
    }

    #[test]
    fn missing_files_are_named_before_anything_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let there = dir.path().join("there.log");
        std::fs::write(&there, LINE).unwrap();
        let missing = dir.path().join("missing.log");
        let Err(e) = open_all(&[Source::File(there), Source::File(missing.clone())]) else {
            panic!("a missing file opened");
        };
        assert_eq!(
            e.to_string(),
            format!(
                "cannot open {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let Err(e) = open_all(&[Source::File(dir.path().to_owned())]) else {
            panic!("a directory opened");
        };
        assert!(e.to_string().ends_with("it is a directory"), "{e}");
    }

    #[test]
    fn dash_is_stdin() {
        assert_eq!(Source::from_arg("-".into()), Source::Stdin);
        assert_eq!(Source::from_arg("./-".into()), Source::File("./-".into()));
    }
}
