//! `bnh report CSV... --out DIR`: REPORT.md and SVG charts from bench CSVs
//! (and from `bnh accuracy` CSVs, recognised by their header).

use crate::bench::machine::{sidecar_path, Machine};
use crate::error::{Error, Result};
use crate::export::csv::read_csv;
use crate::output::write_atomic;
use crate::report::{render, ReportFiles, Source};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `bnh report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Bench CSVs (`bnh bench --csv`, `bnh import-criterion`, scripts/torch_bench.py)
    /// and accuracy CSVs (`bnh accuracy --csv`).
    #[arg(required = true, value_name = "CSV")]
    pub csvs: Vec<PathBuf>,
    /// Folder for REPORT.md and the charts (created if missing).
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
}

/// Render the report and say where it went.
pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let w = report_from(&args.csvs, &args.out)?;
    println!("wrote {}", w.report.display());
    for c in &w.charts {
        println!("wrote {}", c.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Read every CSV (and its machine sidecar) and render into `out`.
pub fn report_from(csvs: &[PathBuf], out: &Path) -> Result<ReportFiles> {
    let mut records = Vec::new();
    let mut sources = Vec::new();
    let mut accuracy_rows = Vec::new();
    for path in csvs {
        if crate::report::accuracy::is_accuracy_csv(path) {
            accuracy_rows.extend(crate::accuracy::export::read_csv(path)?);
            continue;
        }
        let rows = read_csv(path)?;
        let side = sidecar_path(path);
        let machine = if side.is_file() {
            let text = std::fs::read_to_string(&side).map_err(|e| Error::io(&side, e))?;
            Some(serde_json::from_str::<Machine>(&text).map_err(|e| {
                Error::Usage(format!("{}: not a machine sidecar: {e}", side.display()))
            })?)
        } else {
            None
        };
        sources.push(Source {
            path: path.clone(),
            machine,
            rows: rows.len(),
        });
        records.extend(rows);
    }
    if accuracy_rows.is_empty() {
        return render(&records, &sources, out);
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let (svg, section) = crate::report::accuracy::render(&accuracy_rows, out)?;
    let mut written = if records.is_empty() {
        let report = out.join("REPORT.md");
        let md = format!("# Batch-norm accuracy report\n\n{section}");
        write_atomic(&report, md.as_bytes())?;
        ReportFiles {
            report,
            charts: Vec::new(),
        }
    } else {
        let w = render(&records, &sources, out)?;
        let md = std::fs::read_to_string(&w.report).map_err(|e| Error::io(&w.report, e))?;
        write_atomic(&w.report, format!("{md}\n{section}").as_bytes())?;
        w
    };
    written.charts.push(svg);
    Ok(written)
}
