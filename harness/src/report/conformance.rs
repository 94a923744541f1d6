//! The conformance-matrix section of REPORT.md, from a `matrix.csv` that
//! `bnh matrix` wrote (recognised by its header line): implementations ×
//! capability columns, each cell `pass`/`fail`/`unsupported` with counts.
//! The report shows the matrix as computed; it never recomputes verdicts.

use crate::error::{Error, Result};
use crate::output::escape::escape_md;
use crate::output::escape_path;
use std::fmt::Write;
use std::path::Path;

/// The header `bnh matrix` writes (`matrix::render::csv`).
const HEADER: &str = "implementation,column,status,pass,fail,unsupported,cases,details";

/// One cell of the matrix as `matrix.csv` holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct MatrixRow {
    /// Implementation name.
    pub implementation: String,
    /// Capability column.
    pub column: String,
    /// `pass`, `fail`, `unsupported` or `–`.
    pub status: String,
    /// Cases that passed.
    pub pass: usize,
    /// Cases that failed.
    pub fail: usize,
    /// Cases the implementation declined.
    pub unsupported: usize,
    /// Cases the column selects.
    pub cases: usize,
    /// Failures and reasons, `; `-separated.
    pub details: String,
}

/// Whether a CSV whose first line is `header` is a matrix CSV.
pub fn is_matrix_header(header: &str) -> bool {
    header == HEADER
}

/// Every cell of a matrix CSV; a malformed row is a usage error naming the
/// file and the row.
pub fn read(path: &Path) -> Result<Vec<MatrixRow>> {
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", escape_path(path))))?;
    let mut rows = Vec::new();
    for (i, row) in r.deserialize::<MatrixRow>().enumerate() {
        rows.push(row.map_err(|e| {
            Error::Usage(format!(
                "{} row {}: not a `bnh matrix` cell ({e}); regenerate it with `bnh matrix --out DIR`",
                escape_path(path),
                i + 2
            ))
        })?);
    }
    Ok(rows)
}

/// `## Conformance matrix`: one row per implementation, one column per
/// capability, in the order of the CSV; cells as `bnh matrix` prints them.
pub fn section(rows: &[MatrixRow]) -> String {
    let mut impls: Vec<&str> = Vec::new();
    let mut cols: Vec<&str> = Vec::new();
    for r in rows {
        if !impls.contains(&r.implementation.as_str()) {
            impls.push(&r.implementation);
        }
        if !cols.contains(&r.column.as_str()) {
            cols.push(&r.column);
        }
    }
    let mut md = String::new();
    let _ = writeln!(md, "## Conformance matrix\n");
    let _ = writeln!(
        md,
        "From `bnh matrix` (computed by running the cases, never written by hand): `pass` when \
         every case of the column passes, `fail` when at least one fails (failing / cases), \
         `unsupported` when the implementation declined every case, `–` when no case selects the \
         column. Why each cell is not `pass`: `matrix.md` of the same run.\n"
    );
    let _ = write!(md, "| implementation |");
    for c in &cols {
        let _ = write!(md, " {} |", escape_md(c));
    }
    let _ = write!(md, "\n|---|");
    for _ in &cols {
        md.push_str("---|");
    }
    md.push('\n');
    for i in &impls {
        let _ = write!(md, "| {} |", escape_md(i));
        for c in &cols {
            let cell = rows
                .iter()
                .find(|r| r.implementation == *i && r.column == *c);
            let _ = write!(md, " {} |", cell.map_or("–".to_string(), cell_text));
        }
        md.push('\n');
    }
    md
}

/// `pass 12/12`, `fail 2/14 (3 unsupported)`, `unsupported 40/40`, `–`.
fn cell_text(r: &MatrixRow) -> String {
    let n = match r.status.as_str() {
        "fail" => r.fail,
        "unsupported" => r.unsupported,
        "pass" => r.pass,
        _ => return escape_md(&r.status),
    };
    let more = if r.status != "unsupported" && r.unsupported > 0 {
        format!(" ({} unsupported)", r.unsupported)
    } else {
        String::new()
    };
    format!("{} {n}/{}{more}", escape_md(&r.status), r.cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: &str, c: &str, status: &str, counts: [usize; 3]) -> MatrixRow {
        let [pass, fail, unsupported] = counts;
        MatrixRow {
            implementation: i.into(),
            column: c.into(),
            status: status.into(),
            pass,
            fail,
            unsupported,
            cases: pass + fail + unsupported,
            details: String::new(),
        }
    }

    #[test]
    fn section_lays_out_implementations_by_columns() {
        let rows = [
            row("fused", "train", "pass", [5, 0, 0]),
            row("fused", "f64", "pass", [2, 0, 0]),
            row("burn", "train", "fail", [3, 1, 2]),
            row("burn", "f64", "unsupported", [0, 0, 2]),
            row("x|y", "train", "–", [0, 0, 0]),
        ];
        let md = section(&rows);
        assert!(md.contains("| implementation | train | f64 |"), "{md}");
        assert!(md.contains("| fused | pass 5/5 | pass 2/2 |"), "{md}");
        assert!(
            md.contains("| burn | fail 1/6 (2 unsupported) | unsupported 2/2 |"),
            "{md}"
        );
        // A name from a file cannot break the table; a missing cell is `–`.
        assert!(md.contains("| x\\|y | – | – |"), "{md}");
    }
}
