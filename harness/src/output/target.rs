//! Checks on output paths made before any long work, so a sweep never ends
//! by failing to write its results, and a command never writes over what it reads.

use super::{escape_path, is_stdout, parent_dir, temp_builder};
use crate::error::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Longest file name the folder `dir` accepts (`NAME_MAX`, usually 255 bytes).
fn name_max(dir: &Path) -> usize {
    rustix::fs::statvfs(dir)
        .map(|s| s.f_namemax as usize)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(255)
}

/// Refuse a file name longer than the folder accepts, before the work.
fn check_name_len(flag: &str, path: &Path, dir: &Path) -> Result<()> {
    let Some(name) = path.file_name() else {
        return Err(Error::Usage(format!(
            "{flag} {}: not a file path; give a path that ends in a file name",
            escape_path(path)
        )));
    };
    let max = name_max(dir);
    if name.len() > max {
        return Err(Error::Usage(format!(
            "{flag} {}: the file name is {} bytes, more than the {max} its folder allows; give a shorter name",
            escape_path(path),
            name.len()
        )));
    }
    Ok(())
}

/// Check that `path` can be written: not a folder, its folder exists and
/// accepts a new file (probed with a temp file, removed at once), its name
/// fits. An existing file at `path` is not touched; a device or FIFO is
/// accepted as is (it will be written in place), and so is `-` (stdout).
pub fn check_writable(flag: &str, path: &Path) -> Result<()> {
    if is_stdout(path) {
        return Ok(());
    }
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(Error::Usage(format!(
                "{flag} {}: is a directory; give a file path",
                escape_path(path)
            )))
        }
        Ok(m) if !m.is_file() => return Ok(()),
        _ => {}
    }
    let real = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(|e| Error::io(path, e))?
        }
        _ => path.to_path_buf(),
    };
    let dir = parent_dir(&real);
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "{flag} {}: folder {} does not exist; create it or give another path",
            escape_path(path),
            escape_path(dir)
        )));
    }
    check_name_len(flag, &real, dir)?;
    temp_builder().tempfile_in(dir).map(drop).map_err(|e| {
        Error::Usage(format!(
            "{flag} {}: cannot write in {}: {e}",
            escape_path(path),
            escape_path(dir)
        ))
    })
}

/// Check that `dir` can become an output folder, creating nothing: an
/// existing folder must accept files; for a new one, its nearest existing
/// ancestor must, and every missing component must have a name that fits.
/// Returns that nearest existing folder (where a staging folder can go).
pub fn check_out_dir(flag: &str, dir: &Path) -> Result<PathBuf> {
    let mut existing = dir.to_path_buf();
    let mut missing = Vec::new();
    loop {
        match fs::metadata(&existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "{flag} {}: {} is not a folder; give a folder path",
                    escape_path(dir),
                    escape_path(&existing)
                )))
            }
            Err(_) => {
                let Some(name) = existing.file_name().map(ToOwned::to_owned) else {
                    return Err(Error::Usage(format!(
                        "{flag} {}: not a folder path",
                        escape_path(dir)
                    )));
                };
                missing.push(name);
                existing = parent_dir(&existing).to_path_buf();
            }
        }
    }
    let max = name_max(&existing);
    if let Some(long) = missing.iter().find(|n| n.len() > max) {
        return Err(Error::Usage(format!(
            "{flag} {}: the name {} is {} bytes, more than the {max} allowed; give a shorter name",
            escape_path(dir),
            escape_path(Path::new(long)),
            long.len()
        )));
    }
    temp_builder()
        .tempfile_in(&existing)
        .map(drop)
        .map_err(|e| {
            Error::Usage(format!(
                "{flag} {}: cannot write in {}: {e}",
                escape_path(dir),
                escape_path(&existing)
            ))
        })?;
    Ok(existing)
}

/// How a path is told apart from another: the same (device, inode) for an
/// existing file (hard links and symlinks included), the same canonical
/// folder and name for a file that does not exist yet.
#[derive(PartialEq)]
enum Identity {
    Inode(u64, u64),
    New(PathBuf),
}

fn identity(path: &Path) -> Option<Identity> {
    if is_stdout(path) {
        return None;
    }
    match fs::metadata(path) {
        #[cfg(unix)]
        Ok(m) if m.is_file() => {
            use std::os::unix::fs::MetadataExt;
            Some(Identity::Inode(m.dev(), m.ino()))
        }
        #[cfg(not(unix))]
        Ok(m) if m.is_file() => fs::canonicalize(path).ok().map(Identity::New),
        // Devices and FIFOs are written in place; two writers to /dev/null are fine.
        Ok(_) => None,
        Err(_) => {
            let dir = fs::canonicalize(parent_dir(path)).ok()?;
            Some(Identity::New(dir.join(path.file_name()?)))
        }
    }
}

/// Refuse an output that is also an input of the same command, or two
/// outputs that are one file (`--csv X --chart X`): the second write would
/// destroy the first, or the input. `(flag, path)` pairs; exit 2 naming both.
pub fn refuse_overlap(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<()> {
    for (k, (oflag, out)) in outputs.iter().enumerate() {
        let Some(id) = identity(out) else { continue };
        for (iflag, input) in inputs {
            if identity(input).as_ref() == Some(&id) {
                return Err(Error::Usage(format!(
                    "{oflag} {}: is the same file as the input {iflag}{}; writing it would destroy the input, give another output path",
                    escape_path(out),
                    shown(iflag, input)
                )));
            }
        }
        for (pflag, prev) in &outputs[..k] {
            if identity(prev).as_ref() == Some(&id) {
                return Err(Error::Usage(format!(
                    "{oflag} {}: is the same file as {pflag} {}; one would overwrite the other, give two different paths",
                    escape_path(out),
                    escape_path(prev)
                )));
            }
        }
    }
    Ok(())
}

/// ` PATH` after a flag, or `PATH` alone for a positional argument (empty flag).
fn shown(flag: &str, path: &Path) -> String {
    if flag.is_empty() {
        escape_path(path)
    } else {
        format!(" {}", escape_path(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_by_inode_and_by_new_name() {
        let dir = std::env::temp_dir().join(format!("bnh-overlap-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.json");
        fs::write(&a, b"{}").unwrap();
        let same = dir.join(".").join("a.json");
        assert!(refuse_overlap(&[("", &a)], &[("--out", &same)]).is_err());
        let new = dir.join("new.csv");
        assert!(refuse_overlap(&[], &[("--csv", &new), ("--chart", &new)]).is_err());
        assert!(refuse_overlap(&[("", &a)], &[("--out", &new)]).is_ok());
        let null = Path::new("/dev/null");
        assert!(refuse_overlap(&[], &[("--csv", null), ("--chart", null)]).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_names_are_refused_before_work() {
        let long = "x".repeat(300);
        let err = check_writable("--csv", Path::new(&long)).unwrap_err();
        assert!(err.to_string().contains("300 bytes"), "{err}");
    }
}
