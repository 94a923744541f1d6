//! `bnh bench`: time implementations over a grid of shapes; table + CSV.

use crate::bench::machine::{sidecar_path, Machine};
use crate::bench::options::{BenchFlags, BenchOptions};
use crate::bench::{sweep, Record};
use crate::error::{Error, Result};
use crate::export::csv::row_bytes;
use crate::export::{csv::CsvExporter, table::TableExporter, Exporter};
use crate::output::partial::{self, PartialCsv};
use crate::output::{escape_path, stdout::warn, write_atomic};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `bnh bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub bench: BenchFlags,
    /// A C kernel plugin (include/bnh_kernel.h) to load and register under its own name; repeatable.
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
    /// Also write every measurement and the fastest per op as JSON here
    /// (hyperfine's flag), atomically.
    #[arg(long, alias = "json", value_name = "PATH")]
    pub export_json: Option<PathBuf>,
}

/// Validate, sweep (rows appended to `NAME.partial.csv` as they are
/// measured), write the CSV, then print the table: the files exist before
/// anything is printed, so a closed stdout cannot lose them.
pub fn run(args: BenchArgs) -> Result<ExitCode> {
    crate::plugin::load_all(&args.plugins)?;
    let opts = args.bench.validate()?;
    if let Some(p) = &args.export_json {
        crate::output::check_writable("--export-json", p)?;
        let mut outputs: Vec<(&str, &Path)> =
            opts.csv.iter().map(|c| ("--csv", c.as_path())).collect();
        outputs.push(("--export-json", p));
        crate::output::refuse_overlap(&[], &outputs)?;
    }
    let mut rows = match &opts.csv {
        Some(p) if partial::applies(p) => Some(PartialCsv::start(p, &CsvExporter.serialize(&[])?)?),
        _ => None,
    };
    crate::interrupt::install();
    let swept = sweep_with_progress(&opts, |rec| {
        if let Some(p) = rows.as_mut() {
            p.append(&row_bytes(rec)?)?;
        }
        crate::interrupt::check("")
    });
    let records = match swept {
        Ok(r) => r,
        Err(e) => return Err(kept(e, rows)),
    };
    if let Some(path) = &opts.csv {
        match rows {
            Some(p) => p.finish(
                &CsvExporter.serialize(&records)?,
                &sidecar_path(path),
                machine_json().as_bytes(),
            )?,
            None => write_csv(path, &records)?,
        }
        if partial::applies(path) {
            warn(&format!(
                "wrote {} and {}",
                escape_path(path),
                escape_path(&sidecar_path(path))
            ));
        }
    }
    if let Some(p) = &args.export_json {
        let json = crate::export::json::bench_summary(&records);
        write_atomic(p, &crate::export::json::to_bytes(&json)?)?;
    }
    crate::out!(
        "{}",
        String::from_utf8_lossy(&TableExporter.serialize(&records)?)
    );
    warn_noisy(&records);
    Ok(ExitCode::SUCCESS)
}

/// Warn on stderr, as hyperfine does, when measurements are too noisy to
/// rank on (see [`noisy_warning`]). Also used by `bnh all`.
pub fn warn_noisy(records: &[Record]) {
    if let Some(w) = noisy_warning(records) {
        warn(&w);
    }
}

/// The warning for measurements with p90/p10 above
/// [`crate::bench::NOISY_SPREAD`]: how many, the worst, and what to do;
/// None when every measurement is steady.
pub fn noisy_warning(records: &[Record]) -> Option<String> {
    let noisy: Vec<&Record> = records.iter().filter(|r| r.is_noisy()).collect();
    let worst = noisy
        .iter()
        .max_by(|a, b| a.spread().total_cmp(&b.spread()))?;
    Some(format!(
        "bnh bench: warning: {} of {} measurements are noisy (p90/p10 > {}; worst: {} {} {} {} {} t{} at {:.2}×): \
         other processes or frequency changes disturbed them; their medians (marked ~ in REPORT.md) \
         may not rank implementations reliably. Rerun on a quiet machine or raise --min-time.",
        noisy.len(),
        records.len(),
        crate::bench::NOISY_SPREAD,
        crate::output::escape(&worst.imp),
        worst.op,
        worst.dtype,
        worst.shape,
        worst.layout,
        worst.threads,
        worst.spread()
    ))
}

/// The error of a stopped sweep, saying where its measurements were kept.
fn kept(e: Error, rows: Option<PartialCsv>) -> Error {
    let Some(path) = rows.and_then(PartialCsv::abandon) else {
        return match e {
            Error::Interrupted(_) => Error::Interrupted("no CSV was written".into()),
            e => e,
        };
    };
    let note = format!(
        "the measurements so far are kept in {} (a bench CSV)",
        escape_path(&path)
    );
    match e {
        Error::Interrupted(_) => Error::Interrupted(note),
        Error::Usage(m) => Error::Usage(format!("{m}\n{note}")),
        e => Error::Usage(format!("{e}\n{note}")),
    }
}

/// Run the sweep with a progress bar on stderr (hidden when not a terminal);
/// `on_done` sees each record as it is measured and may stop the sweep.
pub fn sweep_with_progress(
    opts: &BenchOptions,
    mut on_done: impl FnMut(&Record) -> Result<()>,
) -> Result<Vec<Record>> {
    let names: Vec<&str> = opts.impls.iter().map(|i| i.info().name).collect();
    warn(&format!(
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
    ));
    let bar = ProgressBar::new(opts.count() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .expect("static progress template is valid"),
    );
    let records = sweep::try_run(
        opts,
        |step| bar.set_message(step.label.clone()),
        |rec| {
            bar.inc(1);
            on_done(rec)
        },
    );
    bar.finish_and_clear();
    records
}

/// The machine description of this run, as the sidecar holds it.
fn machine_json() -> String {
    serde_json::to_string_pretty(&Machine::detect()).expect("machine info serializes")
}

/// Write records as CSV plus the machine sidecar (for a regular file only:
/// not beside `/dev/null` or for `-`), atomically (for CSVs not
/// written row by row: stdout, devices, `import-criterion`, `all`'s staging folder).
pub fn write_csv(path: &Path, records: &[Record]) -> Result<()> {
    let sidecar = partial::applies(path);
    write_atomic(path, &CsvExporter.serialize(records)?)?;
    if sidecar {
        write_atomic(&sidecar_path(path), machine_json().as_bytes())?;
    }
    Ok(())
}
