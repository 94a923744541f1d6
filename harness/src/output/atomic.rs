//! Whole-file writes: a reader sees the old file or the whole new one.

use super::{is_stdout, parent_dir, stdout, temp_builder};
use crate::error::{Error, Result};
use std::fs::{self, Permissions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` so that a failure never leaves a partial file.
///
/// A regular file (new or existing) is written into a temp file created
/// exclusively, with an unpredictable name, in the same folder, synced, and
/// renamed over the target; an existing target keeps its permissions. A
/// symlink is followed: its target is replaced and the link kept. A device,
/// FIFO or socket (e.g. `/dev/null`) is opened and written in place, never
/// replaced, and `-` means standard output.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if is_stdout(path) {
        stdout::write_bytes(bytes);
        return Ok(());
    }
    match Target::of(path)? {
        Target::Special => write_in_place(path, bytes),
        Target::File { real, perms } => replace(path, &real, bytes, perms),
    }
}

/// What is at an output path, after following symlinks.
pub(crate) enum Target {
    /// A device, FIFO or socket: written in place.
    Special,
    /// A regular file or nothing yet: replaced by rename at `real` (the
    /// symlink's target when `path` is a symlink), keeping `perms`.
    File {
        real: PathBuf,
        perms: Option<Permissions>,
    },
}

impl Target {
    /// Look at `path` (following symlinks); a folder or a dangling symlink is an error.
    pub(crate) fn of(path: &Path) -> Result<Target> {
        match fs::metadata(path) {
            Ok(m) if m.is_dir() => Err(Error::Usage(format!(
                "{}: is a directory; give a file path to write",
                super::escape_path(path)
            ))),
            Ok(m) if !m.is_file() => Ok(Target::Special),
            Ok(m) => Ok(Target::File {
                real: real_path(path)?,
                perms: Some(m.permissions()),
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if fs::symlink_metadata(path).is_ok() {
                    return Err(Error::Usage(format!(
                        "{}: is a symlink to a missing file; remove it or give another path",
                        super::escape_path(path)
                    )));
                }
                Ok(Target::File {
                    real: path.to_path_buf(),
                    perms: None,
                })
            }
            Err(e) => Err(Error::io(path, e)),
        }
    }
}

/// `path` itself, or the file a symlink at `path` points to (so the link survives).
fn real_path(path: &Path) -> Result<PathBuf> {
    let link = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if link.file_type().is_symlink() {
        fs::canonicalize(path).map_err(|e| Error::io(path, e))
    } else {
        Ok(path.to_path_buf())
    }
}

/// Write a device or FIFO in place: renaming over it would replace it with a
/// regular file (as root, `--out /dev/null` would break the system's).
fn write_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Error::io(path, e))
}

/// Temp file beside `real`, synced, permissions set, renamed over `real`.
fn replace(shown: &Path, real: &Path, bytes: &[u8], perms: Option<Permissions>) -> Result<()> {
    let tmp = new_temp(real, perms).map_err(|e| Error::io(shown, e))?;
    fill_and_persist(tmp, bytes, real).map_err(|e| Error::io(shown, e))
}

/// A temp file in `real`'s folder with the permissions the final file must
/// have: the old file's, or those of a new file under the umask.
pub(crate) fn new_temp(
    real: &Path,
    perms: Option<Permissions>,
) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = temp_builder();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // 0o666 is filtered by the umask at creation, like `File::create`.
        b.permissions(Permissions::from_mode(0o666));
    }
    let tmp = b.tempfile_in(parent_dir(real))?;
    if let Some(p) = perms {
        // Set explicitly (not through the umask): an existing mode-600 file stays 600.
        tmp.as_file().set_permissions(p)?;
    }
    Ok(tmp)
}

fn fill_and_persist(
    mut tmp: tempfile::NamedTempFile,
    bytes: &[u8],
    real: &Path,
) -> std::io::Result<()> {
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(real).map(drop).map_err(|e| e.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bnh-out-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_whole_file_and_reports_missing_dir() {
        let dir = scratch("basic");
        let p = dir.join("a.json");
        write_atomic(&p, b"{}").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{}");
        let err = write_atomic(&dir.join("missing/b.json"), b"{}").unwrap_err();
        assert!(err.to_string().contains("missing/b.json"));
        assert!(write_atomic(&dir, b"{}").is_err());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn keeps_mode_and_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("mode");
        let p = dir.join("a.csv");
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let link = dir.join("link.csv");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        write_atomic(&link, b"via link").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&p).unwrap(), b"via link");
        fs::remove_dir_all(&dir).unwrap();
    }
}
