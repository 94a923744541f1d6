//! An aligned plain-text table of records for the terminal.

use super::Exporter;
use crate::bench::Record;
use crate::error::Result;

/// Writes the columns a reader scans first: what, how long, how fast.
#[derive(Debug, Default)]
pub struct TableExporter;

/// `1234.5` ns → `1.23 µs`, scaled to a readable unit.
pub fn human_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

impl Exporter for TableExporter {
    fn serialize(&self, records: &[Record]) -> Result<Vec<u8>> {
        let header = [
            "impl", "op", "dtype", "layout", "shape", "thr", "median", "p10-p90", "memcpy",
            "x memcpy", "GB/s",
        ];
        let rows: Vec<[String; 11]> = records
            .iter()
            .map(|r| {
                [
                    r.imp.clone(),
                    r.op.to_string(),
                    r.dtype.to_string(),
                    r.layout.to_string(),
                    r.shape.clone(),
                    r.threads.to_string(),
                    human_ns(r.median_ns),
                    format!("{}-{}", human_ns(r.p10_ns), human_ns(r.p90_ns)),
                    human_ns(r.memcpy_ns),
                    format!("{:.2}", r.ratio_to_memcpy),
                    format!("{:.2}", r.gb_per_s),
                ]
            })
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &mut dyn Iterator<Item = &str>| {
            let parts: Vec<String> = cells
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, &w))| {
                    let pad = w - c.chars().count();
                    if i < 5 {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect();
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        };
        line(&mut header.iter().copied());
        for row in &rows {
            line(&mut row.iter().map(String::as_str));
        }
        Ok(out.into_bytes())
    }
}
