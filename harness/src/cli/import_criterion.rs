//! `bnh import-criterion [DIR] --csv PATH`: criterion's results as a bench CSV.

use crate::bench::criterion_import::import;
use crate::bench::options::check_writable;
use crate::error::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `bnh import-criterion`.
#[derive(Debug, clap::Args)]
pub struct ImportCriterionArgs {
    /// Criterion's output folder.
    #[arg(default_value = "target/criterion")]
    pub dir: PathBuf,
    /// CSV to write (same schema as `bnh bench --csv`).
    #[arg(long, value_name = "PATH")]
    pub csv: PathBuf,
}

/// Convert and write.
pub fn run(args: ImportCriterionArgs) -> Result<ExitCode> {
    check_writable(&args.csv)?;
    let records = import(&args.dir)?;
    if records.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no bn-benches results with a memcpy baseline; run `cargo bench -p bn-benches`",
            args.dir.display()
        )));
    }
    super::bench::write_csv(&args.csv, &records)?;
    crate::outln!(
        "wrote {} rows to {}",
        records.len(),
        crate::output::escape_path(&args.csv)
    );
    Ok(ExitCode::SUCCESS)
}
