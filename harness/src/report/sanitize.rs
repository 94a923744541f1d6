//! Rows a report can draw: every value it puts on a log axis, divides by or
//! averages must be finite, positive and of plausible size. A CSV may hold
//! anything (`gb_per_s = 1e308`, `offset_ratio = inf`, `n = 0`); such rows
//! are left out of the tables and charts and named in a warning, instead of
//! sending the axis code into an endless loop or a chart into NaN.

use crate::accuracy::export::AccuracyRow;
use crate::bench::Record;
use std::path::Path;

/// Largest value a report draws (times in ns, GB/s, ratios, offset ratios,
/// magnitudes): far beyond anything measured (1e30 ns is 3e13 years), small
/// enough that axis ranges with margins stay finite.
pub const MAX_VALUE: f64 = 1e30;

/// Smallest positive value a report draws (magnitudes reach 1e-30).
pub const MIN_VALUE: f64 = 1e-40;

/// Whether `v` can go on a log axis: finite, in `[MIN_VALUE, MAX_VALUE]`.
pub fn plausible(v: f64) -> bool {
    (MIN_VALUE..=MAX_VALUE).contains(&v)
}

/// The first unusable value of a bench record: `(column, value)`.
fn bench_problem(r: &Record) -> Option<(&'static str, String)> {
    let elements =
        r.n.checked_mul(r.c)
            .and_then(|v| v.checked_mul(r.spatial))
            .filter(|&e| e > 0 && e <= 1 << 53);
    if elements.is_none() {
        return Some(("n·c·spatial", format!("{}·{}·{}", r.n, r.c, r.spatial)));
    }
    if r.bytes == 0 || r.bytes > 1 << 62 {
        return Some(("bytes", r.bytes.to_string()));
    }
    let values = [
        ("median_ns", r.median_ns),
        ("p10_ns", r.p10_ns),
        ("p90_ns", r.p90_ns),
        ("memcpy_ns", r.memcpy_ns),
        ("ratio_to_memcpy", r.ratio_to_memcpy),
        ("gb_per_s", r.gb_per_s),
    ];
    // The charts also draw two derived values: time per element and the
    // memcpy bandwidth.
    let derived = [
        (
            "median_ns per element",
            r.median_ns / elements.unwrap_or(1) as f64,
        ),
        ("memcpy GB/s", 2.0 * r.bytes as f64 / r.memcpy_ns),
    ];
    values
        .into_iter()
        .chain(derived)
        .find(|(_, v)| !plausible(*v))
        .map(|(c, v)| (c, format!("{v:e}")))
}

/// Bench records of the CSV at `path` without the unusable ones, and one
/// warning per record left out, naming the file, row and value.
pub fn bench_rows(records: Vec<Record>, path: &Path) -> (Vec<Record>, Vec<String>) {
    let mut kept = Vec::with_capacity(records.len());
    let mut warnings = Vec::new();
    for (i, r) in records.into_iter().enumerate() {
        match bench_problem(&r) {
            None => kept.push(r),
            Some((column, value)) => warnings.push(format!(
                "{}: row {} ({} {} {} {} {} t{}): {column} = {value} is not a usable measurement; row left out",
                path.display(),
                i + 2,
                r.imp,
                r.op,
                r.dtype,
                r.shape,
                r.layout,
                r.threads
            )),
        }
    }
    (kept, warnings)
}

/// The first unusable value of an accuracy row: `(column, value)`. Errors
/// may be anything (NaN/inf mean "no correct digit" and are drawn at the
/// chart's ceiling); the axes' values may not.
fn accuracy_problem(r: &AccuracyRow) -> Option<(&'static str, String)> {
    let n = r.n_per_channel as f64;
    [
        ("n_per_channel", n),
        ("offset_ratio", r.offset_ratio),
        ("scale", r.scale),
    ]
    .into_iter()
    .find(|(_, v)| !plausible(*v))
    .map(|(c, v)| (c, format!("{v:e}")))
}

/// Accuracy rows of the CSV at `path` without the unusable ones, and one
/// warning per row left out.
pub fn accuracy_rows(rows: Vec<AccuracyRow>, path: &Path) -> (Vec<AccuracyRow>, Vec<String>) {
    let mut kept = Vec::with_capacity(rows.len());
    let mut warnings = Vec::new();
    for (i, r) in rows.into_iter().enumerate() {
        match accuracy_problem(&r) {
            None => kept.push(r),
            Some((column, value)) => warnings.push(format!(
                "{}: row {} ({} {} {}): {column} = {value} cannot be drawn on a log axis; row left out",
                path.display(),
                i + 2,
                r.imp,
                r.dtype,
                r.op
            )),
        }
    }
    (kept, warnings)
}
