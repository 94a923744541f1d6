//! `bnh report CSV... --out DIR`: REPORT.md and SVG charts from bench CSVs
//! (and from `bnh accuracy` and `bnh matrix` CSVs, recognised by their header).

use crate::error::Result;
use crate::output::escape_path;
use crate::output::staging::Staging;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `bnh report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Bench CSVs (`bnh bench --csv`, `bnh import-criterion`, scripts/torch_bench.py)
    /// accuracy CSVs (`bnh accuracy --csv`) and the conformance matrix
    /// (`matrix.csv` of `bnh matrix`), each recognised by its header.
    #[arg(required = true, value_name = "CSV")]
    pub csvs: Vec<PathBuf>,
    /// Folder for REPORT.md and the charts (created if missing). The default
    /// is a scratch folder ignored by git; `--out reports` replaces the
    /// committed reference report, on purpose only.
    #[arg(long, default_value = crate::output::SCRATCH_DIR)]
    pub out: PathBuf,
}

/// Render the report in a staging folder, move it into `--out` when every
/// file is written (a failing report leaves no half-written charts), and
/// say where it went.
pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let inputs = crate::report::read_inputs(&args.csvs)?;
    crate::report::warn_skipped(&inputs);
    let staging = Staging::new("--out", &args.out)?;
    crate::interrupt::install();
    let w = crate::report::write(&inputs, staging.path())?;
    crate::interrupt::check(&format!("{} is unchanged", escape_path(&args.out)))?;
    let files: Vec<_> = std::iter::once(&w.report)
        .chain(&w.charts)
        .map(|p| staging.final_path(p))
        .collect();
    staging.commit()?;
    for f in files {
        crate::outln!("wrote {}", escape_path(&f));
    }
    Ok(ExitCode::SUCCESS)
}
