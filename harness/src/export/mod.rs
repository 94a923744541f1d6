//! Writing benchmark records: one exporter per format behind one trait
//! (the structure of hyperfine's `src/export`).
//!
//! - [`csv::CsvExporter`]: the stable CSV schema ([`crate::bench::CSV_COLUMNS`]);
//! - [`table::TableExporter`]: an aligned plain-text table for the terminal;
//! - [`json`]: `--export-json` summaries of `bnh check` and `bnh bench`.

pub mod csv;
pub mod json;
pub mod table;

use crate::bench::Record;
use crate::error::Result;

/// Turns a run's records into the bytes of one output format.
pub trait Exporter {
    /// Serialize `records` in this format.
    fn serialize(&self, records: &[Record]) -> Result<Vec<u8>>;
}
