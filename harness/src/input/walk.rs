//! The regular files under a folder, for `bnh check` and
//! `bnh import-criterion`. Symlinks are followed (a link to a case file is a
//! case), but a link back to an ancestor (`ln -s . d/a`) is detected and
//! skipped instead of walked forever; anything that is not a regular file
//! (FIFO, socket, device, dangling link) is skipped; each skip is named on
//! stderr. Files reached twice (through two links) are listed once.

use crate::output::escape_path;
use crate::output::stdout::warn;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

/// Regular files under `root` for which `keep` is true, sorted by path,
/// skipping (and naming on stderr) loops, specials and unreadable entries.
/// `seen` holds canonical paths already listed (shared across roots so a
/// file given twice counts once).
pub fn regular_files(
    root: &Path,
    keep: impl Fn(&Path) -> bool,
    seen: &mut HashSet<PathBuf>,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in WalkDir::new(root).follow_links(true) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                skip_error(&e);
                continue;
            }
        };
        if entry.file_type().is_dir() || !keep(entry.path()) {
            continue;
        }
        if !entry.file_type().is_file() {
            warn(&format!(
                "bnh: skipping {}: not a regular file (a FIFO, socket or device)",
                escape_path(entry.path())
            ));
            continue;
        }
        let canonical = std::fs::canonicalize(entry.path()).unwrap_or(entry.path().to_path_buf());
        if seen.insert(canonical) {
            out.push(entry.into_path());
        }
    }
    out.sort();
    out
}

/// Name a skipped entry: a symlink loop, a dangling link, an unreadable folder.
fn skip_error(e: &walkdir::Error) {
    let path = e.path().map(escape_path).unwrap_or_default();
    let why = match (e.loop_ancestor(), e.io_error()) {
        (Some(a), _) => format!("a symlink loop back to {}", escape_path(a)),
        (None, Some(io)) => io.to_string(),
        (None, None) => e.to_string(),
    };
    warn(&format!("bnh: skipping {path}: {why}"));
}
