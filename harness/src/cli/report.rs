//! `bnh report CSV... --out DIR`: REPORT.md and SVG charts from bench CSVs
//! (and from `bnh accuracy` CSVs, recognised by their header).

use crate::error::Result;
use std::path::PathBuf;
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
    let w = crate::report::from_csvs(&args.csvs, &args.out)?;
    println!("wrote {}", w.report.display());
    for c in &w.charts {
        println!("wrote {}", c.display());
    }
    Ok(ExitCode::SUCCESS)
}
