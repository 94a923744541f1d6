//! Reading input files safely: bounded reads that refuse FIFOs and devices
//! (which would block or never end) and folder walks that survive symlink
//! loops and count each file once. See docs/RELIABILITY.md.
//!
//! - [`read`]: one file into memory, with a size limit;
//! - [`walk`]: the regular files under folders, loops and specials skipped and named.

pub mod read;
pub mod walk;

pub use read::{read_limited, MAX_CASE_BYTES};
pub use walk::regular_files;
