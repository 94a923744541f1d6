//! A CSV written row by row as a sweep measures, so an interrupted sweep
//! keeps what it measured: rows go to `NAME.partial.csv` (flushed to the
//! kernel after each row), which is renamed to `NAME.csv` at the end.
//!
//! The partial file is also the lock: it is held with an exclusive `flock`
//! for the whole run (released by the kernel even on a crash), so a second
//! `bnh bench --csv NAME.csv` started meanwhile refuses at once instead of
//! mixing two runs' CSV and machine file.

use super::atomic::Target;
use super::{escape_path, write_atomic};
use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// `dir/NAME.csv` → `dir/NAME.partial.csv` (beside the real file when `csv` is a symlink).
pub fn partial_path(csv: &Path) -> PathBuf {
    let stem = csv.file_stem().unwrap_or_default().to_string_lossy();
    csv.with_file_name(format!("{stem}.partial.csv"))
}

/// Whether a CSV at `csv` is written through a partial file: regular files
/// (new or existing) are; stdout, devices and FIFOs are written at the end.
pub fn applies(csv: &Path) -> bool {
    !super::is_stdout(csv) && matches!(Target::of(csv), Ok(Target::File { .. }))
}

/// An open, locked `NAME.partial.csv` that rows are appended to.
#[derive(Debug)]
pub struct PartialCsv {
    /// The CSV as named on the command line.
    csv: PathBuf,
    /// Where the finished CSV goes (the symlink's target when `csv` is one).
    real: PathBuf,
    partial: PathBuf,
    file: File,
    rows: usize,
}

impl PartialCsv {
    /// Create and lock `NAME.partial.csv` and write `header` into it.
    /// Refuses (exit 2) when another run holds the lock, or when an
    /// interrupted run left measurements there that this run would destroy.
    pub fn start(csv: &Path, header: &[u8]) -> Result<PartialCsv> {
        let Target::File { real, .. } = Target::of(csv)? else {
            return Err(Error::Usage(format!(
                "{}: not a regular file, cannot be written row by row",
                escape_path(csv)
            )));
        };
        let partial = partial_path(&real);
        let file = fs::OpenOptions::new()
            .read(true)
            // Append: every write lands at the end, also after `set_len(0)` below.
            .append(true)
            .create(true)
            .open(&partial)
            .map_err(|e| Error::io(&partial, e))?;
        lock(&file, csv, &partial)?;
        if measured_rows(&file).map_err(|e| Error::io(&partial, e))? > 0 {
            return Err(Error::Usage(format!(
                "{}: holds the measurements of an interrupted run (a bench CSV); rename it to keep them, or delete it, then run again",
                escape_path(&partial)
            )));
        }
        // Empty, or only the header of a run killed before its first row.
        file.set_len(0).map_err(|e| Error::io(&partial, e))?;
        let mut me = PartialCsv {
            csv: csv.to_path_buf(),
            real,
            partial,
            file,
            rows: 0,
        };
        me.write(header)?;
        Ok(me)
    }

    /// Append one row (already CSV text with its newline).
    pub fn append(&mut self, row: &[u8]) -> Result<()> {
        self.write(row)?;
        self.rows += 1;
        Ok(())
    }

    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The partial file's path, to name in a message after an interruption.
    pub fn path(&self) -> &Path {
        &self.partial
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(&self.partial, e))
    }

    /// Give up after a failure or an interruption: an empty partial file is
    /// removed; one with rows is kept and its path returned, to be named.
    pub fn abandon(self) -> Option<PathBuf> {
        if self.rows == 0 {
            let _ = fs::remove_file(&self.partial);
            return None;
        }
        let _ = self.file.sync_all();
        Some(self.partial)
    }

    /// Replace the provisional rows with `csv` (the finished table: bench
    /// rows get their final roofline only when the run is over), write the
    /// machine file `sidecar` (atomically), then rename the partial CSV over
    /// the CSV, keeping an old CSV's permissions. All of it happens under the
    /// lock, so the pair always comes from one run.
    pub fn finish(mut self, csv: &[u8], sidecar: &Path, machine: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let fail = |e| Error::io(&self.partial, e);
        self.file.set_len(0).map_err(fail)?;
        self.file.seek(SeekFrom::Start(0)).map_err(fail)?;
        self.write(csv)?;
        let fail = |e| Error::io(&self.partial, e);
        self.file.sync_all().map_err(fail)?;
        if let Ok(m) = fs::metadata(&self.real) {
            self.file.set_permissions(m.permissions()).map_err(fail)?;
        }
        write_atomic(sidecar, machine)?;
        fs::rename(&self.partial, &self.real).map_err(|e| Error::io(&self.csv, e))
        // `self.file` closes here, releasing the lock on what is now the CSV.
    }
}

/// Rows after the header line in an existing partial file.
fn measured_rows(mut file: &File) -> std::io::Result<usize> {
    use std::io::Read;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    Ok(text
        .split(|&b| b == b'\n')
        .skip(1)
        .filter(|l| !l.is_empty())
        .count())
}

/// Take the exclusive lock on the partial file without waiting.
fn lock(file: &File, csv: &Path, partial: &Path) -> Result<()> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if std::io::Error::from(e).kind() == ErrorKind::WouldBlock => {
            Err(Error::Usage(format!(
                "{}: another bnh run is writing this CSV ({} is locked); wait for it to finish or give another path",
                escape_path(csv),
                escape_path(partial)
            )))
        }
        Err(e) => Err(Error::io(partial, e.into())),
    }
}
