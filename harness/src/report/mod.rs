//! Reports from bench CSVs alone: `REPORT.md` (tables) and SVG charts.
//!
//! Rendering needs nothing but [`Record`]s (and optional machine sidecars),
//! so an old run or the PyTorch script's CSV renders the same way.

pub mod accuracy;
pub mod charts;
pub mod tables;

use crate::bench::machine::Machine;
use crate::bench::Record;
use crate::error::{Error, Result};
use crate::output::write_atomic;
use std::path::{Path, PathBuf};

/// One input CSV with the machine it ran on (when its sidecar exists).
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub machine: Option<Machine>,
    pub rows: usize,
}

/// The files a report wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub report: PathBuf,
    pub charts: Vec<PathBuf>,
}

/// Write `REPORT.md` and the charts into `out` (created if missing).
pub fn render(records: &[Record], sources: &[Source], out: &Path) -> Result<ReportFiles> {
    if records.is_empty() {
        return Err(Error::Usage(
            "no measurements to report; give a CSV written by `bnh bench --csv`".into(),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let charts = charts::render_all(records, out)?;
    let names: Vec<String> = charts
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let md = tables::report_markdown(records, sources, &names);
    let report = out.join("REPORT.md");
    write_atomic(&report, md.as_bytes())?;
    Ok(ReportFiles { report, charts })
}
