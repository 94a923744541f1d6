//! Reports from CSVs alone: `REPORT.md` (tables) and SVG charts.
//!
//! Rendering needs nothing but [`Record`]s (and optional machine sidecars)
//! and accuracy rows, so an old run or the PyTorch script's CSV renders the
//! same way. This module is the one place report files are written:
//! `bnh report` and `bnh all` go through [`from_csvs`], `bnh accuracy`'s
//! chart through [`write_accuracy_chart`].
//!
//! - [`inputs`]: reading bench and accuracy CSVs and machine sidecars;
//! - [`sanitize`]: leaving out (and naming) rows whose values cannot be drawn;
//! - [`tables`]: the Markdown tables of REPORT.md;
//! - [`versus_torch`]: the cell-by-cell table with PyTorch (absolute medians);
//! - [`charts`]: the bench charts (time per element, bandwidth, thread scaling);
//! - [`accuracy`]: the accuracy chart and section.
//! - [`conformance`]: the conformance-matrix section (from `bnh matrix`'s CSV).

pub mod accuracy;
pub mod charts;
pub mod conformance;
pub mod findings;
pub mod inputs;
pub mod plot;
pub mod ranking;
pub mod sanitize;
pub mod tables;
pub mod versus_torch;

use crate::accuracy::export::AccuracyRow;
use crate::bench::machine::Machine;
use crate::bench::Record;
use crate::error::{Error, Result};
use crate::output::write_atomic;
pub use inputs::{read_inputs, ReportInputs};
use std::path::{Path, PathBuf};

/// One input CSV with the machine it ran on (when its sidecar exists).
#[derive(Debug, Clone)]
pub struct Source {
    /// The CSV as given on the command line.
    pub path: PathBuf,
    /// The machine sidecar (`NAME.machine.json`), if there is one.
    pub machine: Option<Machine>,
    /// Number of measurements read from the CSV.
    pub rows: usize,
}

/// The files a report wrote, for printing where they went.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `REPORT.md`.
    pub report: PathBuf,
    /// Every SVG chart, bench charts first, then `accuracy.svg`.
    pub charts: Vec<PathBuf>,
}

/// Read bench and accuracy CSVs (told apart by their header) and write the
/// report into `out`: what `bnh report` and `bnh all` do.
/// Rows left out (see [`sanitize`]) are named on stderr, at most
/// [`MAX_WARNINGS`] of them.
pub fn from_csvs(csvs: &[PathBuf], out: &Path) -> Result<ReportFiles> {
    let inputs = read_inputs(csvs)?;
    warn_skipped(&inputs);
    write(&inputs, out)
}

/// Name the rows left out of `inputs` on stderr, at most [`MAX_WARNINGS`]
/// of them, then their count.
pub fn warn_skipped(inputs: &ReportInputs) {
    for w in inputs.skipped.iter().take(MAX_WARNINGS) {
        eprintln!("bnh report: warning: {w}");
    }
    for n in &inputs.notes {
        eprintln!("bnh report: warning: {n}");
    }
    if inputs.skipped.len() > MAX_WARNINGS {
        eprintln!(
            "bnh report: warning: {} more rows left out",
            inputs.skipped.len() - MAX_WARNINGS
        );
    }
}

/// Most skipped rows named one by one on stderr.
pub const MAX_WARNINGS: usize = 20;

/// Write `REPORT.md` and the charts into `out` (created if missing): the
/// bench tables and charts when there are records, then the accuracy
/// section and chart when there are accuracy rows.
pub fn write(inputs: &ReportInputs, out: &Path) -> Result<ReportFiles> {
    if inputs.records.is_empty() && inputs.accuracy.is_empty() && inputs.matrix.is_empty() {
        if let Some(first) = inputs.skipped.first() {
            return Err(Error::Usage(format!(
                "no usable rows to report: all {} were left out, e.g. {first}; fix or remove those rows",
                inputs.skipped.len()
            )));
        }
        return Err(Error::Usage(
            "no measurements to report; give a CSV written by `bnh bench --csv`".into(),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let accuracy = accuracy_part(&inputs.accuracy, out)?;
    let (bench_md, mut charts) = bench_part(&inputs.records, &inputs.sources, out)?;
    let mut md = match (bench_md, &accuracy) {
        (Some(bench), Some((_, section))) => format!("{bench}\n{section}"),
        (Some(bench), None) => bench,
        (None, Some((_, section))) => format!("# Batch-norm accuracy report\n\n{section}"),
        (None, None) => "# Batch-norm conformance report\n".to_string(),
    };
    if !inputs.matrix.is_empty() {
        md = format!("{md}\n{}", conformance::section(&inputs.matrix));
    }
    let report = out.join("REPORT.md");
    write_atomic(&report, md.as_bytes())?;
    charts.extend(accuracy.map(|(svg, _)| svg));
    Ok(ReportFiles { report, charts })
}

/// The bench charts (written into `out`) and the bench Markdown, if there are records.
fn bench_part(
    records: &[Record],
    sources: &[Source],
    out: &Path,
) -> Result<(Option<String>, Vec<PathBuf>)> {
    if records.is_empty() {
        return Ok((None, Vec::new()));
    }
    // Charts draw one point per implementation and configuration: the
    // latest run's (the tables list the others).
    let latest: Vec<Record> = ranking::latest_runs(records)
        .0
        .into_iter()
        .cloned()
        .collect();
    let charts = charts::render_all(&latest, out)?;
    let names: Vec<String> = charts
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    Ok((
        Some(tables::report_markdown(records, sources, &names)),
        charts,
    ))
}

/// `accuracy.svg` (written into `out`) and the accuracy section, if there are rows.
fn accuracy_part(rows: &[AccuracyRow], out: &Path) -> Result<Option<(PathBuf, String)>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let svg = out.join("accuracy.svg");
    write_accuracy_chart(rows, &svg)?;
    Ok(Some((svg, accuracy::section(rows))))
}

/// Write the accuracy chart to `path` atomically (also `bnh accuracy --chart`).
pub fn write_accuracy_chart(rows: &[AccuracyRow], path: &Path) -> Result<()> {
    let svg = crate::accuracy::chart::render_svg(rows)?;
    write_atomic(path, svg.as_bytes())
}
