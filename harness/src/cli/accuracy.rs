//! `bnh accuracy [--quick] [--impls A,B] [--dtypes f32,f64] [--max-n N] [--csv PATH] [--chart PATH]`.

use crate::accuracy::{export, summary, sweep, AccuracyRow};
use crate::error::{Error, Result};
use crate::output::{check_writable, refuse_overlap, write_atomic};
use bn_impls::DType;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `bnh accuracy`.
#[derive(Debug, clap::Args)]
pub struct AccuracyArgs {
    /// A small grid (seconds) instead of the full sweep (about a minute).
    #[arg(long)]
    quick: bool,
    /// Implementations to sweep (default: all registered): `--impls a,b` or
    /// `--impl a --impl b`.
    #[arg(long, alias = "impl", value_delimiter = ',', value_name = "A,B")]
    impls: Vec<String>,
    /// Data types to sweep, comma-separated: f32, f64 (default: both).
    #[arg(long, value_name = "f32,f64", value_delimiter = ',')]
    dtypes: Vec<String>,
    /// Largest number of values per channel to sweep (drops larger sizes).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    max_n: Option<i64>,
    /// Seed of the random data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder for accuracy.csv and accuracy.svg when --csv / --chart are not
    /// given (default: a scratch folder ignored by git; `--out reports`
    /// replaces the committed reference files, on purpose only).
    #[arg(long, value_name = "DIR", default_value = crate::output::SCRATCH_DIR)]
    out: PathBuf,
    /// Where to write the CSV (default: OUT/accuracy.csv).
    #[arg(long, value_name = "PATH")]
    csv: Option<PathBuf>,
    /// Where to write the SVG chart (default: OUT/accuracy.svg; `--chart none` to skip it).
    #[arg(long, value_name = "PATH")]
    chart: Option<PathBuf>,
    /// Memory the sweep may use, e.g. 2G (default: what the OS reports available).
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<String>,
    /// Only redraw the chart from an existing CSV (no sweep).
    #[arg(long, value_name = "CSV")]
    from_csv: Option<PathBuf>,
    /// A C kernel plugin (include/bnh_kernel.h) to load and register under its own name; repeatable.
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
}

fn parse_dtypes(names: &[String]) -> Result<Vec<DType>> {
    if names.is_empty() {
        return Ok(vec![DType::F32, DType::F64]);
    }
    let mut out = Vec::new();
    for n in names.iter().map(|s| s.trim()) {
        let d: DType = n
            .parse()
            .map_err(|e: String| Error::Usage(format!("--dtypes: {e}")))?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Run the sweep (or read a CSV), write CSV and chart, print the summary.
pub fn run(mut args: AccuracyArgs) -> Result<ExitCode> {
    crate::plugin::load_all(&args.plugins)?;
    if args.csv.is_none() || args.chart.is_none() {
        make_out_dir(&args)?;
    }
    let csv = args
        .csv
        .take()
        .unwrap_or_else(|| args.out.join("accuracy.csv"));
    args.csv = Some(csv);
    let chart = args
        .chart
        .clone()
        .unwrap_or_else(|| args.out.join("accuracy.svg"));
    let chart_path = (chart.as_os_str() != "none").then_some(chart);
    refuse_clobbering(&args, chart_path.as_deref())?;
    if let Some(p) = &chart_path {
        check_writable("--chart", p)?;
    }
    let rows = if let Some(src) = &args.from_csv {
        export::read_csv(src)?
    } else {
        sweep_to_csv(&args)?
    };
    if let Some(p) = &chart_path {
        crate::report::write_accuracy_chart(&rows, p)?;
        crate::output::stdout::warn(&format!("bnh accuracy: chart -> {}", p.display()));
    }
    print_summary(&rows);
    Ok(ExitCode::SUCCESS)
}

/// Create `--out` (the default scratch folder) for the files that go there,
/// after the options are known to be good, so a typo creates nothing.
fn make_out_dir(args: &AccuracyArgs) -> Result<()> {
    crate::select_impls(&args.impls)?;
    parse_dtypes(&args.dtypes)?;
    crate::output::check_out_dir("--out", &args.out)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))
}

/// Refuse outputs that are one file (`--csv X --chart X`) or that are the
/// input (`--from-csv X --chart X`), before any work.
fn refuse_clobbering(args: &AccuracyArgs, chart: Option<&Path>) -> Result<()> {
    let mut outputs: Vec<(&str, &Path)> = Vec::new();
    if args.from_csv.is_none() {
        outputs.extend(args.csv.as_deref().map(|c| ("--csv", c)));
    }
    outputs.extend(chart.map(|c| ("--chart", c)));
    let inputs: Vec<(&str, &Path)> = args
        .from_csv
        .as_deref()
        .map(|p| ("--from-csv", p))
        .into_iter()
        .collect();
    refuse_overlap(&inputs, &outputs)
}

/// Validate the sweep's options, run it (progress on a terminal) and write the CSV.
fn sweep_to_csv(args: &AccuracyArgs) -> Result<Vec<AccuracyRow>> {
    let impls = crate::select_impls(&args.impls)?;
    let dtypes = parse_dtypes(&args.dtypes)?;
    let csv = args
        .csv
        .clone()
        .unwrap_or_else(|| args.out.join("accuracy.csv"));
    check_writable("--csv", &csv)?;
    // Also try a file in its folder, so a read-only folder fails before the sweep.
    crate::bench::options::check_writable(&csv)?;
    let mut grid = if args.quick {
        sweep::Grid::quick()
    } else {
        sweep::Grid::full()
    };
    if let Some(n) = args.max_n {
        let n = usize::try_from(n).map_err(|_| {
            Error::Usage(format!(
                "--max-n {n} is too small; batch statistics need at least 2 values per channel"
            ))
        })?;
        grid = grid.cap_n(n)?;
    }
    if let Some(budget) = crate::memory::Budget::new(args.max_memory.as_deref())? {
        let what = format!(
            "the accuracy sweep ({} values per channel at most, points run in parallel)",
            grid.n_per_channel.iter().max().unwrap_or(&0)
        );
        budget.check(grid.memory_needed(&dtypes), &what, "lower --max-n")?;
    }
    let start = std::time::Instant::now();
    let tty = std::io::stderr().is_terminal();
    let progress = |done: usize, total: usize| {
        if !tty {
            return;
        }
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\rbnh accuracy: {done}/{total} points");
        if done == total {
            let _ = writeln!(e);
        }
    };
    let rows = sweep::run(&grid, &dtypes, &impls, args.seed, &progress)?;
    write_atomic(&csv, export::to_csv(&rows)?.as_bytes())?;
    crate::output::stdout::warn(&format!(
        "bnh accuracy: {} rows in {:.2} s -> {}",
        rows.len(),
        start.elapsed().as_secs_f64(),
        csv.display()
    ));
    Ok(rows)
}

/// The worst-error tables: everything, magnitude 1 only, and without N·S = 2.
fn print_summary(rows: &[AccuracyRow]) {
    crate::outln!("Worst relative error over all sizes, magnitudes and ops (NaN/inf: a non-finite result where the oracle is finite):");
    crate::out!("{}", summary::table(rows, |_| true));
    crate::outln!("\nThe same at magnitude 1 only (no underflow/overflow):");
    crate::out!("{}", summary::table(rows, |r| r.scale == 1.0));
    crate::outln!("\nThe same without N·S = 2 (there the exact grad_input is only ≈ eps/σ² of the terms it is computed from, so rounding those terms is a large relative error for any implementation):");
    crate::out!("{}", summary::table(rows, |r| r.n_per_channel > 2));
}
