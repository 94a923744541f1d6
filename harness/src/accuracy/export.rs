//! The sweep's CSV: one row per (implementation, dtype, op, point).
//!
//! Columns: `impl,dtype,op,n_per_channel,offset_ratio,scale,max_rel_err,max_ulp_err,nan_count`.
//! `max_rel_err` is `max|got − ref| / max|ref|` over the op's tensor;
//! `max_ulp_err` is `max |got − ref| / ulp_dtype(ref)` element by element;
//! both are `inf` when a value is non-finite where the oracle's is finite
//! (`nan_count` counts those elements).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One row of the accuracy CSV: one implementation, dtype and output at one
/// conditioning point (offset ratio, size, magnitude).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyRow {
    #[serde(rename = "impl")]
    pub imp: String,
    pub dtype: String,
    pub op: String,
    pub n_per_channel: usize,
    pub offset_ratio: f64,
    pub scale: f64,
    pub max_rel_err: f64,
    pub max_ulp_err: f64,
    pub nan_count: usize,
}

/// The rows as CSV text with a header line.
pub fn to_csv(rows: &[AccuracyRow]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)
            .map_err(|e| Error::Usage(format!("CSV encoding failed: {e}")))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Usage(format!("CSV encoding failed: {e}")))?;
    Ok(String::from_utf8(bytes).expect("CSV of ASCII fields"))
}

/// Parse CSV text written by [`to_csv`]; `path` is only used in messages.
pub fn from_csv(text: &str, path: &Path) -> Result<Vec<AccuracyRow>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    r.deserialize()
        .enumerate()
        .map(|(i, row)| {
            row.map_err(|e| {
                Error::Usage(format!(
                    "{}: row {} is not an accuracy row ({e}); regenerate it with `bnh accuracy`",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// Read an accuracy CSV file.
pub fn read_csv(path: &Path) -> Result<Vec<AccuracyRow>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let rows = from_csv(&text, path)?;
    if rows.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no accuracy rows; regenerate it with `bnh accuracy`",
            path.display()
        )));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_infinity() {
        let row = AccuracyRow {
            imp: "naive".into(),
            dtype: "f32".into(),
            op: "y".into(),
            n_per_channel: 2,
            offset_ratio: 1e8,
            scale: 1e-30,
            max_rel_err: f64::INFINITY,
            max_ulp_err: 3.5,
            nan_count: 4,
        };
        let text = to_csv(std::slice::from_ref(&row)).unwrap();
        assert!(text.starts_with(
            "impl,dtype,op,n_per_channel,offset_ratio,scale,max_rel_err,max_ulp_err,nan_count\n"
        ));
        assert_eq!(from_csv(&text, Path::new("t.csv")).unwrap(), vec![row]);
        let err = from_csv("impl,dtype\nx,y\n", Path::new("t.csv")).unwrap_err();
        assert!(err.to_string().contains("t.csv: row 1"), "{err}");
    }
}
