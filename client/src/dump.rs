//! A plain-file dump of logs, so an audit can be repeated later or elsewhere without any node
//! (`redline audit --export DIR`, then `redline audit --offline DIR`).
//!
//! Format (version 1):
//!
//! ```text
//! DIR/
//!   FORMAT                 the line "redline-log-dump 1"
//!   <origin>/              one folder per origin; the name is the origin with every byte
//!                          outside [A-Za-z0-9._-] written as %XX (informational only: the
//!                          origin that counts is the first line of the signed checkpoint)
//!     checkpoint           the exact C2SP signed-note bytes of the checkpoint, as served
//!     leaves               one line per leaf, in index order from 0, exactly tree-size lines:
//!                          standard base64 (with padding) of the exact leaf bytes
//! ```
//!
//! Nothing in a dump is trusted: verifying it needs the origins' keys, exactly as online.

use base64::prelude::{Engine, BASE64_STANDARD};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// First line of `DIR/FORMAT`.
pub const FORMAT_LINE: &str = "redline-log-dump 1";

/// A dump could not be written or read.
#[derive(Debug, Error)]
pub enum DumpError {
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("{path}: line {line}: {detail}")]
    Bad {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("{0} is not a redline log dump (no FORMAT file with {FORMAT_LINE:?}); make one with `redline audit --export DIR`")]
    NotADump(PathBuf),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DumpError + '_ {
    move |e| DumpError::Io {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// One origin's log as found in a dump.
#[derive(Debug, Clone)]
pub struct DumpedLog {
    /// Folder it was read from.
    pub dir: PathBuf,
    /// Origin named by the checkpoint's first line (unverified until checked with a key).
    pub origin: String,
    /// Exact signed-note bytes.
    pub signed_note: Vec<u8>,
    /// The `leaves` file, read one leaf at a time by [`DumpedLog::leaves`].
    pub leaves_path: PathBuf,
}

impl DumpedLog {
    /// The leaves `(index, bytes)` from 0, read lazily: a dump of any size is verified in
    /// memory that does not grow with it.
    pub fn leaves(
        &self,
    ) -> Result<impl Iterator<Item = Result<(u64, Vec<u8>), DumpError>> + '_, DumpError> {
        let lp = &self.leaves_path;
        let file = std::fs::File::open(lp).map_err(io(lp))?;
        Ok(BufReader::new(file)
            .lines()
            .enumerate()
            .map(move |(i, line)| {
                let line = line.map_err(io(lp))?;
                let data = BASE64_STANDARD
                    .decode(line.trim_end())
                    .map_err(|e| DumpError::Bad {
                        path: lp.clone(),
                        line: i + 1,
                        detail: format!("leaf {i} is not base64: {e}"),
                    })?;
                Ok((i as u64, data))
            }))
    }
}

/// Writes one origin's leaves into a dump as they arrive ([`LogWriter::push`]), so exporting
/// a log never holds it in memory.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    path: PathBuf,
    out: BufWriter<std::fs::File>,
}

impl LogWriter {
    /// Creates `dir/<origin>/` with its `checkpoint` and an empty `leaves` file.
    pub fn create(dir: &Path, origin: &str, signed_note: &[u8]) -> Result<Self, DumpError> {
        let odir = dir.join(folder_name(origin));
        std::fs::create_dir_all(&odir).map_err(io(&odir))?;
        let cp = odir.join("checkpoint");
        std::fs::write(&cp, signed_note).map_err(io(&cp))?;
        let path = odir.join("leaves");
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        Ok(Self {
            dir: odir,
            path,
            out: BufWriter::new(file),
        })
    }

    /// Appends the next leaf.
    pub fn push(&mut self, data: &[u8]) -> Result<(), DumpError> {
        self.out
            .write_all(BASE64_STANDARD.encode(data).as_bytes())
            .map_err(io(&self.path))?;
        self.out.write_all(b"\n").map_err(io(&self.path))
    }

    /// Flushes the file; returns the origin's folder.
    pub fn finish(mut self) -> Result<PathBuf, DumpError> {
        self.out.flush().map_err(io(&self.path))?;
        Ok(self.dir)
    }
}

/// Folder name of an origin inside a dump.
pub fn folder_name(origin: &str) -> String {
    let mut s = String::with_capacity(origin.len());
    for b in origin.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    if s.starts_with('.') {
        s.replace_range(0..1, "%2E");
    }
    s
}

/// Marks `dir` as a dump (creating it).
pub fn init(dir: &Path) -> Result<(), DumpError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let f = dir.join("FORMAT");
    std::fs::write(&f, format!("{FORMAT_LINE}\n")).map_err(io(&f))
}

/// Writes one origin's checkpoint and leaves into `dir/<origin>/`.
pub fn write_log<'a>(
    dir: &Path,
    origin: &str,
    signed_note: &[u8],
    leaves: impl IntoIterator<Item = &'a [u8]>,
) -> Result<PathBuf, DumpError> {
    let mut w = LogWriter::create(dir, origin, signed_note)?;
    for data in leaves {
        w.push(data)?;
    }
    w.finish()
}

/// Reads every origin of a dump, sorted by folder name.
pub fn read_dump(dir: &Path) -> Result<Vec<DumpedLog>, DumpError> {
    let fmt = dir.join("FORMAT");
    match std::fs::read_to_string(&fmt) {
        Ok(t) if t.lines().next() == Some(FORMAT_LINE) => {}
        _ => return Err(DumpError::NotADump(dir.to_owned())),
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter().map(|d| read_log(&d)).collect()
}

/// Reads one origin folder of a dump.
pub fn read_log(odir: &Path) -> Result<DumpedLog, DumpError> {
    let cp = odir.join("checkpoint");
    let signed_note = std::fs::read(&cp).map_err(io(&cp))?;
    let origin = signed_note
        .split(|b| *b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| DumpError::Bad {
            path: cp.clone(),
            line: 1,
            detail: "no origin line".into(),
        })?
        .to_owned();
    let leaves_path = odir.join("leaves");
    if !leaves_path.is_file() {
        return Err(DumpError::Io {
            path: leaves_path,
            detail: "missing".into(),
        });
    }
    Ok(DumpedLog {
        dir: odir.to_owned(),
        origin,
        signed_note,
        leaves_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_safe() {
        assert_eq!(folder_name("hotline-a.example"), "hotline-a.example");
        assert_eq!(folder_name("example.org/log"), "example.org%2Flog");
        assert_eq!(folder_name(".."), "%2E.");
    }

    #[test]
    fn dump_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let leaves = vec![(0, vec![1, 2, 3]), (1, vec![]), (2, vec![0xff; 100])];
        write_log(
            dir.path(),
            "a.example/x",
            b"a.example/x\n3\nroot\n\n- sig\n",
            leaves.iter().map(|(_, l)| l.as_slice()),
        )
        .unwrap();
        let logs = read_dump(dir.path()).unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].origin, "a.example/x");
        let read: Vec<(u64, Vec<u8>)> = logs[0].leaves().unwrap().map(Result::unwrap).collect();
        assert_eq!(read, leaves);
        assert!(matches!(
            read_dump(&dir.path().join("a.example%2Fx")),
            Err(DumpError::NotADump(_))
        ));
    }
}
