//! The CSV format: header [`CSV_COLUMNS`], one row per measurement.

use super::Exporter;
use crate::bench::{provenance, Record, CSV_COLUMNS, REQUIRED_COLUMNS};
use crate::error::{Error, Result};
use std::path::Path;

/// Writes records as CSV with the stable header.
#[derive(Debug, Default)]
pub struct CsvExporter;

impl Exporter for CsvExporter {
    fn serialize(&self, records: &[Record]) -> Result<Vec<u8>> {
        let mut w = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        let fail = |e: ::csv::Error| Error::Usage(format!("cannot write CSV: {e}"));
        // The header is written explicitly so it exists even with no rows.
        w.write_record(CSV_COLUMNS).map_err(fail)?;
        for r in records {
            w.serialize(r).map_err(fail)?;
        }
        w.into_inner()
            .map_err(|e| Error::Usage(format!("cannot write CSV: {e}")))
    }
}

/// One record as a CSV line without the header, for appending to a file
/// row by row (`NAME.partial.csv`).
pub fn row_bytes(record: &Record) -> Result<Vec<u8>> {
    let mut w = ::csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.serialize(record)
        .map_err(|e| Error::Usage(format!("cannot write CSV: {e}")))?;
    w.into_inner()
        .map_err(|e| Error::Usage(format!("cannot write CSV: {e}")))
}

/// Read records from a CSV with (at least) the first [`REQUIRED_COLUMNS`]
/// columns of [`CSV_COLUMNS`]; extra columns are ignored, so the schema can
/// grow. Rows without provenance (an older CSV) get it inferred
/// ([`provenance::fill_missing`]).
pub fn read_csv(path: &Path) -> Result<Vec<Record>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = ::csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(file);
    let headers = r
        .headers()
        .map_err(|e| Error::Usage(format!("{}: not a bench CSV: {e}", path.display())))?
        .clone();
    if let Some(missing) = CSV_COLUMNS[..REQUIRED_COLUMNS]
        .iter()
        .find(|c| !headers.iter().any(|h| h == **c))
    {
        return Err(Error::Usage(format!(
            "{}: not a bench CSV: column '{missing}' is missing (expected {})",
            path.display(),
            CSV_COLUMNS[..REQUIRED_COLUMNS].join(",")
        )));
    }
    let mut records = r
        .deserialize()
        .enumerate()
        .map(|(i, rec)| rec.map_err(|e| row_error(path, &headers, i + 2, &e)))
        .collect::<Result<Vec<Record>>>()?;
    provenance::fill_missing(&mut records, path);
    Ok(records)
}

/// A bad row: the file, the row (the header is row 1), the column when the
/// CSV reader knows it (numbers), and the parse message. An unknown op, dtype
/// or layout gets its type's message, which names the accepted values
/// ("unknown op 'x'; use one of train, eval, ...", see `bench::Record`).
fn row_error(path: &Path, headers: &::csv::StringRecord, row: usize, e: &::csv::Error) -> Error {
    let detail = match e.kind() {
        ::csv::ErrorKind::Deserialize { err, .. } => {
            match err.field().and_then(|f| headers.get(f as usize)) {
                Some(column) => format!("column '{column}': {}", err.kind()),
                None => err.kind().to_string(),
            }
        }
        _ => e.to_string(),
    };
    Error::Usage(format!("{}: row {row}: {detail}", path.display()))
}
