//! `bnh bench`: time implementations over a grid of shapes; table + CSV.

use crate::bench::machine::{sidecar_path, Machine};
use crate::bench::options::{BenchFlags, BenchOptions};
use crate::bench::{sweep, Record};
use crate::error::Result;
use crate::export::{csv::CsvExporter, table::TableExporter, Exporter};
use crate::output::write_atomic;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::process::ExitCode;

/// Options of `bnh bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub bench: BenchFlags,
}

/// Validate, sweep, print the table and write the CSV.
pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let opts = args.bench.validate()?;
    let records = sweep_with_progress(&opts)?;
    print!(
        "{}",
        String::from_utf8_lossy(&TableExporter.serialize(&records)?)
    );
    if let Some(path) = &opts.csv {
        write_csv(path, &records)?;
        eprintln!(
            "wrote {} and {}",
            path.display(),
            sidecar_path(path).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Run the sweep with a progress bar on stderr (hidden when not a terminal).
pub fn sweep_with_progress(opts: &BenchOptions) -> Result<Vec<Record>> {
    let names: Vec<&str> = opts.impls.iter().map(|i| i.info().name).collect();
    eprintln!(
        "bnh bench: {} measurements ({} × {} ops × {} dtypes × {} cases × {} thread counts), \
         grid {}, min-time {:.3} s each",
        opts.count(),
        names.join(","),
        opts.ops.len(),
        opts.dtypes.len(),
        opts.points.len(),
        opts.threads.len(),
        opts.grid.name(),
        opts.min_time.as_secs_f64()
    );
    let bar = ProgressBar::new(opts.count() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .expect("static progress template is valid"),
    );
    let records = sweep::run(
        opts,
        |step| bar.set_message(step.label.clone()),
        |_| bar.inc(1),
    );
    bar.finish_and_clear();
    records
}

/// Write records as CSV plus the machine sidecar, atomically.
pub fn write_csv(path: &Path, records: &[Record]) -> Result<()> {
    write_atomic(path, &CsvExporter.serialize(records)?)?;
    let machine =
        serde_json::to_string_pretty(&Machine::detect()).expect("machine info serializes");
    write_atomic(&sidecar_path(path), machine.as_bytes())
}
