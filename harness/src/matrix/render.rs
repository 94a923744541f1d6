//! The matrix as Markdown (a section a report can embed, or the whole
//! `matrix.md`) and as CSV (`matrix.csv`, one row per cell).

use super::{Cell, Matrix, Status};
use crate::error::Result;
use crate::output::escape::escape_md;
use std::fmt::Write;

/// At most this many failing cases are listed per cell in the notes.
const MAX_LISTED: usize = 5;

/// The matrix as a Markdown section headed `heading` (e.g. `"## Conformance
/// matrix"`): how it was made, the table, what each column selects, and the
/// reasons behind every `fail` and `unsupported`. Names from case files are
/// escaped for Markdown.
pub fn markdown_section(m: &Matrix, heading: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{heading}\n");
    let _ = writeln!(
        out,
        "Computed by `bnh matrix` from {} cases. A cell is `pass` when every case of \
         the column passes, `fail` \
         when at least one fails (count of failing cases / cases), `unsupported` when the \
         implementation declined every case; `–`: no case selects it. \
         Capability columns select the cases with expected outputs; `rejections` the inputs \
         PyTorch rejects.\n",
        m.cases
    );
    let _ = write!(out, "| implementation |");
    for c in &m.columns {
        let _ = write!(out, " {} |", c.name);
    }
    let _ = write!(out, "\n|---|");
    for _ in &m.columns {
        out.push_str("---|");
    }
    out.push('\n');
    for (info, row) in m.impls.iter().zip(&m.cells) {
        let _ = write!(out, "| {} |", escape_md(info.name));
        for cell in row {
            let _ = write!(out, " {} |", cell.text());
        }
        out.push('\n');
    }
    let _ = writeln!(out, "\nColumns:\n");
    for c in &m.columns {
        let _ = writeln!(out, "- **{}**: {}", c.name, c.selects);
    }
    let notes = notes(m);
    if !notes.is_empty() {
        let _ = writeln!(out, "\nWhy not pass:\n\n{notes}");
    }
    out
}

/// One bullet per cell that is not a plain pass: its reasons.
fn notes(m: &Matrix) -> String {
    let mut out = String::new();
    for (info, row) in m.impls.iter().zip(&m.cells) {
        for (col, cell) in m.columns.iter().zip(row) {
            if cell.failures.is_empty() && cell.reasons.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "- {} / {}: {}",
                escape_md(info.name),
                col.name,
                cell.text()
            );
            for f in cell.failures.iter().take(MAX_LISTED) {
                let _ = writeln!(out, "  - fail: {}", escape_md(f));
            }
            if cell.failures.len() > MAX_LISTED {
                let _ = writeln!(
                    out,
                    "  - … and {} more failing cases",
                    cell.failures.len() - MAX_LISTED
                );
            }
            for r in &cell.reasons {
                let _ = writeln!(out, "  - unsupported: {}", escape_md(r));
            }
        }
    }
    out
}

/// The whole `matrix.md`.
pub fn markdown(m: &Matrix) -> String {
    markdown_section(m, "# Conformance matrix")
}

/// `matrix.csv`: one row per cell with its counts and reasons.
pub fn csv(m: &Matrix) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io =
        |e: csv::Error| crate::error::Error::Usage(format!("cannot write the matrix CSV: {e}"));
    w.write_record([
        "implementation",
        "column",
        "status",
        "pass",
        "fail",
        "unsupported",
        "cases",
        "details",
    ])
    .map_err(io)?;
    for (info, row) in m.impls.iter().zip(&m.cells) {
        for (col, cell) in m.columns.iter().zip(row) {
            w.write_record([
                info.name.to_string(),
                col.name.to_string(),
                cell.status().word().to_string(),
                cell.pass.to_string(),
                cell.fail.to_string(),
                cell.unsupported.to_string(),
                cell.total().to_string(),
                details(cell),
            ])
            .map_err(io)?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| crate::error::Error::Usage(format!("cannot write the matrix CSV: {e}")))?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 fields"))
}

/// Failures then reasons, `; `-separated.
fn details(cell: &Cell) -> String {
    let mut parts: Vec<String> = cell.failures.iter().map(|f| format!("fail: {f}")).collect();
    parts.extend(cell.reasons.iter().map(|r| format!("unsupported: {r}")));
    parts.join("; ")
}

/// `pass`/`fail`/... counts over all cells, for the summary line.
pub fn summary(m: &Matrix) -> String {
    let count = |s: Status| m.cells.iter().flatten().filter(|c| c.status() == s).count();
    format!(
        "{} implementations × {} columns from {} cases: {} pass, {} fail, {} unsupported, {} without cases",
        m.impls.len(),
        m.columns.len(),
        m.cases,
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Unsupported),
        count(Status::NoCases)
    )
}
