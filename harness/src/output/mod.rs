//! Every file and terminal write of `bnh` goes through this module, so the
//! guarantees of docs/RELIABILITY.md hold in one place:
//!
//! - [`atomic`]: whole-file writes (a temp file with an unpredictable name,
//!   created exclusively beside the target, renamed over it with the old
//!   file's permissions); devices, FIFOs and `-` are written directly;
//! - [`target`]: checks run before any long work (writable folder, name
//!   length, an output that is also an input or another output);
//! - [`partial`]: a bench CSV appended row by row under a lock
//!   (`NAME.partial.csv`), renamed into place at the end;
//! - [`staging`]: a folder of outputs built aside and moved in whole;
//! - [`stdout`]: printing that never panics; a closed pipe ends quietly;
//! - [`escape`](mod@escape): names read from files made safe for terminals and Markdown.

pub mod atomic;
pub mod escape;
pub mod partial;
pub mod staging;
pub mod stdout;
pub mod target;

/// Where `bnh report`, `bnh accuracy` and `bnh all` write by default: a
/// scratch folder ignored by git, so the committed reference run in
/// `reports/` changes only when `--out reports` is asked for.
pub const SCRATCH_DIR: &str = "reports/local";

pub use atomic::write_atomic;
pub use escape::{escape, escape_path};
pub use target::{check_out_dir, check_writable, refuse_overlap};

use std::path::Path;

/// The folder a file path lives in (`.` for a bare name), where its temp
/// file must be created so the final rename stays on one file system.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Whether `path` is `-`, the conventional name for standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// A temp-file builder for `bnh`: fixed-length, unpredictable names
/// (`.bnh-XXXXXXXXXX.tmp`), so a name the folder accepts for the target
/// never fails only for its temp file, and a pre-planted name cannot be
/// guessed (the file is created with `O_EXCL`, so a symlink is never followed).
pub(crate) fn temp_builder() -> tempfile::Builder<'static, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(".bnh-").suffix(".tmp").rand_bytes(10);
    b
}
