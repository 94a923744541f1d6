//! `bnh all`: the whole job on the embedded defaults — check every
//! implementation on the shipped fixtures, time the `quick` grid, write the
//! report, and print a short summary with where the files went.

use crate::bench::grid::GridName;
use crate::bench::machine::sidecar_path;
use crate::bench::options::{BenchFlags, BenchOptions};
use crate::bench::Record;
use crate::conformance::{check, shipped_fixtures, CheckReport};
use crate::error::{Error, Result};
use crate::report::tables::fastest_per_op;
use crate::report::ReportFiles;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `bnh all`.
#[derive(Debug, clap::Args)]
pub struct AllArgs {
    /// Folder for bench.csv, REPORT.md and the charts.
    #[arg(long, default_value = "reports/quick")]
    pub out: PathBuf,
    /// Implementations (default: every registered one), e.g. naive,welford.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub impls: Vec<String>,
    /// Seconds of timed calls per measurement (default: the quick grid's).
    #[arg(long, value_name = "SECONDS")]
    pub min_time: Option<f64>,
}

/// Check, bench, report, summarize; exit 1 when a stable implementation fails a check.
pub fn run(args: AllArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let csv = args.out.join("bench.csv");
    // Validate the bench options before spending time on the check.
    let opts = quick_grid_options(&args, &csv)?;

    eprintln!("[1/3] checking every implementation on the shipped fixtures ...");
    let conformance = check(&[shipped_fixtures()], &opts.impls)?;
    eprintln!("[2/3] timing the quick grid ...");
    let records = super::bench::sweep_with_progress(&opts)?;
    super::bench::write_csv(&csv, &records)?;
    eprintln!("[3/3] writing the report ...");
    let written = crate::report::from_csvs(std::slice::from_ref(&csv), &args.out)?;

    print_conformance(&conformance);
    print_fastest(&records);
    print_files(&csv, &written);
    Ok(if conformance.ok() {
        println!("all: PASS");
        ExitCode::SUCCESS
    } else {
        println!("all: FAIL (a stable implementation failed a conformance case; run `bnh check`)");
        ExitCode::FAILURE
    })
}

/// The `quick` grid's options with the chosen implementations and min-time.
fn quick_grid_options(args: &AllArgs, csv: &Path) -> Result<BenchOptions> {
    BenchFlags {
        impls: args.impls.clone(),
        ops: vec![],
        dtypes: vec![],
        layouts: vec![],
        shapes: vec![],
        grid: GridName::Quick,
        threads: vec![],
        min_time: args.min_time,
        csv: Some(csv.to_path_buf()),
        max_memory: None,
    }
    .validate()
}

/// Pass count, worst ratio and verdict per implementation.
fn print_conformance(conformance: &CheckReport) {
    println!("conformance ({} fixtures):", conformance.rows.len());
    for (info, pass, total, worst) in conformance.summary() {
        let verdict = if pass == total {
            "PASS"
        } else if info.stable {
            "FAIL"
        } else {
            "fails some (unstable by design; not an error)"
        };
        println!(
            "  {:12} {pass}/{total} cases, worst error/tolerance {worst:.3e}  {verdict}",
            info.name
        );
    }
}

/// The fastest implementation per operation.
fn print_fastest(records: &[Record]) {
    println!(
        "fastest per op (quick grid, geometric mean of time / memcpy time; 1.0 = copy speed):"
    );
    for (op, imp, ratio) in fastest_per_op(records) {
        println!("  {op:9} {imp:12} {ratio:.2}x memcpy");
    }
}

/// Where every file went.
fn print_files(csv: &Path, written: &ReportFiles) {
    println!("files:");
    println!("  {}  (+ {})", csv.display(), sidecar_path(csv).display());
    println!("  {}", written.report.display());
    for c in &written.charts {
        println!("  {}", c.display());
    }
}
