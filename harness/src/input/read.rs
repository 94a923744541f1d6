//! One input file into memory, refusing what would block, never end or
//! exhaust memory: a FIFO named `*.json` blocks `open` until a writer comes,
//! `/dev/zero` never ends, and a 1 GB case file takes over 16 GB to parse.

use crate::error::{Error, Result};
use crate::output::escape_path;
use std::io::Read;
use std::path::Path;

/// Largest case file `bnh` reads: 256 MiB of JSON parses into about 4 GiB
/// (the values become `f64`s plus serde's intermediate tree), far above the
/// shipped fixtures (kilobytes) and below what a 24 GB machine can hold.
pub const MAX_CASE_BYTES: u64 = 256 << 20;

/// Read the regular file at `path` as UTF-8, refusing (exit 2, naming the
/// problem) a folder, a device, FIFO or socket, and a file over `limit` bytes.
/// `what` names the file in messages ("case file").
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<String> {
    let bytes = read_limited_bytes(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::Usage(format!(
            "{}: not UTF-8 text (byte {}); a {what} is JSON text",
            escape_path(path),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// [`read_limited`] for a binary file (e.g. a safetensors state dict): the
/// same refusals, the bytes as they are.
pub fn read_limited_bytes(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    // `stat` first: opening a FIFO would block until something writes to it.
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::Usage(format!(
            "{}: is a folder; give a {what}",
            escape_path(path)
        )));
    }
    if !meta.is_file() {
        return Err(not_regular(path, what));
    }
    check_size(path, meta.len(), limit, what)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // `take` guards against a file that grows while it is read.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    check_size(path, bytes.len() as u64, limit, what)?;
    Ok(bytes)
}

/// The message for a device, FIFO or socket where a file was expected.
pub fn not_regular(path: &Path, what: &str) -> Error {
    Error::Usage(format!(
        "{}: not a regular file (a device, FIFO or socket); give a {what}",
        escape_path(path)
    ))
}

fn check_size(path: &Path, size: u64, limit: u64, what: &str) -> Result<()> {
    if size > limit {
        return Err(Error::Usage(format!(
            "{}: the {what} is {size} bytes, over the limit of {limit} bytes ({} MiB); use a smaller file",
            escape_path(path),
            limit >> 20
        )));
    }
    Ok(())
}
