//! A [`Comparison`] as text: an aligned terminal table, markdown, CSV.
//! Rows are sorted by change, largest slowdown first, so what a reviewer must
//! look at comes first.

use super::{Change, Comparison};
use crate::export::table::human_ns;
use crate::output::escape::escape_md;

/// The CSV columns of `bnh compare --csv`.
pub const CSV_COLUMNS: [&str; 10] = [
    "impl",
    "op",
    "dtype",
    "layout",
    "shape",
    "threads",
    "old_median_ns",
    "new_median_ns",
    "change_pct",
    "verdict",
];

fn by_change(c: &Comparison) -> Vec<&Change> {
    let mut rows: Vec<&Change> = c.changes.iter().collect();
    rows.sort_by(|a, b| b.change.total_cmp(&a.change).then(a.key.cmp(&b.key)));
    rows
}

fn pct(change: f64) -> String {
    format!("{:+.1} %", change * 100.0)
}

/// The cells of one row, in [`CSV_COLUMNS`] order but with human times.
fn cells(c: &Change) -> [String; 10] {
    [
        c.key.imp.clone(),
        c.key.op.name().to_string(),
        c.key.dtype.to_string(),
        c.key.layout.to_string(),
        c.key.shape.clone(),
        c.key.threads.to_string(),
        human_ns(c.old.median_ns),
        human_ns(c.new.median_ns),
        pct(c.change),
        c.verdict.name().to_string(),
    ]
}

const HEADINGS: [&str; 10] = [
    "impl", "op", "dtype", "layout", "shape", "threads", "old", "new", "change", "verdict",
];

/// Aligned plain text for the terminal, then the summary line.
pub fn table(c: &Comparison) -> String {
    let rows: Vec<[String; 10]> = by_change(c).into_iter().map(cells).collect();
    let mut width = HEADINGS.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(width)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADINGS.map(String::from));
    for r in &rows {
        out += &line(r);
    }
    out + &c.summary() + "\n"
}

/// A markdown section: the summary, then a table of every matched row.
pub fn markdown(c: &Comparison) -> String {
    let mut out = format!("## Comparison\n\n{}\n\n", c.summary());
    out += &format!("| {} |\n", HEADINGS.join(" | "));
    out += &format!("|{}\n", "---|".repeat(HEADINGS.len()));
    for ch in by_change(c) {
        let cells: Vec<String> = cells(ch).iter().map(|s| escape_md(s)).collect();
        let mut row = cells.join(" | ");
        if ch.verdict == super::Verdict::Slower {
            row = row.replace("| slower", "| **slower**");
        }
        out += &format!("| {row} |\n");
    }
    out
}

/// CSV with exact nanosecond medians.
pub fn csv(c: &Comparison) -> crate::Result<Vec<u8>> {
    let fail = |e: ::csv::Error| crate::Error::Usage(format!("cannot write CSV: {e}"));
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS).map_err(fail)?;
    for ch in by_change(c) {
        w.write_record([
            ch.key.imp.clone(),
            ch.key.op.name().to_string(),
            ch.key.dtype.to_string(),
            ch.key.layout.to_string(),
            ch.key.shape.clone(),
            ch.key.threads.to_string(),
            ch.old.median_ns.to_string(),
            ch.new.median_ns.to_string(),
            format!("{:.2}", ch.change * 100.0),
            ch.verdict.name().to_string(),
        ])
        .map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| crate::Error::Usage(format!("cannot write CSV: {e}")))
}
