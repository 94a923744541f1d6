//! Errors of the harness: the library's errors plus case files, I/O and CLI input.

use crate::output::escape_path;
use std::path::PathBuf;
use thiserror::Error;

/// Everything the harness can reject; each message names the problem and the fix.
#[derive(Debug, Error)]
pub enum Error {
    /// A batch-norm rule or shape check of the library.
    #[error(transparent)]
    Bn(#[from] bn_impls::Error),

    /// A case file that is not valid bn-case/1.
    #[error("{}: not a valid bn-case/1 file: {detail}", escape_path(path))]
    Case { path: PathBuf, detail: String },

    /// Reading or writing a file failed.
    #[error("{}: {source}", escape_path(path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A `--plugin` library that cannot be used (see `docs/PLUGINS.md`).
    #[error("{}: cannot use as a bnh plugin: {detail}", escape_path(path))]
    Plugin { path: PathBuf, detail: String },

    /// A command-line value that makes no sense (bad shape, unknown name, ...).
    #[error("{0}")]
    Usage(String),

    /// Ctrl-C stopped the command; the text says what was kept (exit 130).
    #[error("interrupted: {0}")]
    Interrupted(String),
}

/// Shorthand for results of the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
