//! A folder of outputs (`bnh all`, `bnh report`) built aside and moved in
//! only when everything is written, so a failure or Ctrl-C never leaves a
//! new `bench.csv` beside an old `REPORT.md`, half the charts, or a stray temp file.

use super::{check_out_dir, escape_path, temp_builder};
use crate::error::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// A temp folder whose files become `out`'s on [`Staging::commit`]; dropped
/// without a commit, it is removed with everything in it.
#[derive(Debug)]
pub struct Staging {
    tmp: tempfile::TempDir,
    out: PathBuf,
}

impl Staging {
    /// Validate `out` (creating nothing) and make the staging folder: inside
    /// `out` when it exists, else in its nearest existing ancestor (the same
    /// file system, so the final renames are atomic).
    pub fn new(flag: &str, out: &Path) -> Result<Staging> {
        let base = check_out_dir(flag, out)?;
        let mut b = temp_builder();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A new output folder gets the usual mode under the umask, not 0700.
            b.permissions(fs::Permissions::from_mode(0o777));
        }
        let tmp = b.tempdir_in(&base).map_err(|e| Error::io(&base, e))?;
        Ok(Staging {
            tmp,
            out: out.to_path_buf(),
        })
    }

    /// The folder to write into now.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Where a file written at `staged` will be after the commit.
    pub fn final_path(&self, staged: &Path) -> PathBuf {
        match staged.strip_prefix(self.tmp.path()) {
            Ok(rel) => self.out.join(rel),
            Err(_) => staged.to_path_buf(),
        }
    }

    /// Move everything into `out`: a new `out` is the staging folder renamed
    /// (its parents created now, after every check passed); into an existing
    /// `out` each file is renamed over its old version, keeping its permissions.
    pub fn commit(self) -> Result<()> {
        let out = &self.out;
        if !out.exists() {
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            let staged = self.tmp.keep();
            return fs::rename(&staged, out).map_err(|e| {
                let _ = fs::remove_dir_all(&staged);
                Error::io(out, e)
            });
        }
        let mut moves = Vec::new();
        for entry in fs::read_dir(self.tmp.path()).map_err(|e| Error::io(out, e))? {
            let entry = entry.map_err(|e| Error::io(out, e))?;
            moves.push((entry.path(), out.join(entry.file_name())));
        }
        // Every destination is checked before the first file moves.
        if let Some((_, dest)) = moves
            .iter()
            .find(|(_, d)| fs::metadata(d).is_ok_and(|m| m.is_dir()))
        {
            return Err(Error::Usage(format!(
                "{}: is a folder where bnh writes a file; move it away, then run again",
                escape_path(dest)
            )));
        }
        for (staged, dest) in moves {
            if let Ok(m) = fs::metadata(&dest) {
                let _ = fs::set_permissions(&staged, m.permissions());
            }
            fs::rename(&staged, &dest).map_err(|e| Error::io(&dest, e))?;
        }
        Ok(())
        // `self.tmp` (now empty) is removed here.
    }
}
