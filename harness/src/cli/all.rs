//! `bnh all`: the whole job on the embedded defaults — check every
//! implementation on the shipped fixtures, time the `quick` grid, write the
//! report, and print a short summary with where the files went.

use crate::bench::grid::GridName;
use crate::bench::machine::sidecar_path;
use crate::bench::options::{BenchFlags, BenchOptions, ChannelTasks};
use crate::bench::Record;
use crate::conformance::{check, shipped_fixtures, CheckReport};
use crate::error::Result;
use crate::output::escape_path;
use crate::output::staging::Staging;
use crate::report::tables::fastest_per_op;
use crate::report::ReportFiles;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `bnh all`.
#[derive(Debug, clap::Args)]
pub struct AllArgs {
    /// Folder for bench.csv, REPORT.md and the charts (default: a scratch
    /// folder ignored by git; `--out reports` only on purpose).
    #[arg(long, default_value = crate::output::SCRATCH_DIR)]
    pub out: PathBuf,
    /// Implementations (default: every registered one): `--impls a,b` or
    /// `--impl a --impl b`.
    #[arg(long, alias = "impl", value_delimiter = ',', value_name = "A,B")]
    pub impls: Vec<String>,
    /// Seconds of timed calls per measurement (default: the quick grid's).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub min_time: Option<f64>,
    /// A C kernel plugin (include/bnh_kernel.h) to load and register under its own name; repeatable.
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
}

/// Check, bench, report, summarize; exit 1 when a stable implementation fails a check.
///
/// Every option is validated before anything is created; the files are
/// built in a staging folder and moved into `--out` only when all are
/// written, so a failure or Ctrl-C leaves `--out` as it was.
pub fn run(args: AllArgs) -> Result<ExitCode> {
    crate::plugin::load_all(&args.plugins)?;
    let opts = quick_grid_options(&args)?;
    let staging = Staging::new("--out", &args.out)?;
    crate::interrupt::install();
    let unchanged = format!("{} is unchanged", escape_path(&args.out));

    crate::output::stdout::warn("[1/3] checking every implementation on the shipped fixtures ...");
    let conformance = check(&[shipped_fixtures()], &opts.impls)?;
    crate::interrupt::check(&unchanged)?;
    crate::output::stdout::warn("[2/3] timing the quick grid ...");
    let records =
        super::bench::sweep_with_progress(&opts, |_| crate::interrupt::check(&unchanged))?;
    crate::output::stdout::warn("[3/3] writing the report ...");
    let csv = args.out.join("bench.csv");
    let written = report_in(&staging, &records, &csv)?;
    crate::interrupt::check(&unchanged)?;
    staging.commit()?;

    print_conformance(&conformance);
    print_fastest(&records);
    print_files(&csv, &written);
    super::bench::warn_noisy(&records);
    let code = if conformance.ok() {
        crate::outln!("all: PASS");
        ExitCode::SUCCESS
    } else {
        crate::outln!(
            "all: FAIL (a stable implementation failed a conformance case; run `bnh check`)"
        );
        ExitCode::FAILURE
    };
    print_torch_hint(&csv, &written);
    Ok(code)
}

/// bench.csv, its sidecar, REPORT.md and the charts written into the
/// staging folder; the paths returned are where they will be after the commit.
fn report_in(staging: &Staging, records: &[Record], csv: &Path) -> Result<ReportFiles> {
    let staged_csv = staging.path().join("bench.csv");
    super::bench::write_csv(&staged_csv, records)?;
    let mut inputs = crate::report::read_inputs(std::slice::from_ref(&staged_csv))?;
    crate::report::warn_skipped(&inputs);
    for s in &mut inputs.sources {
        s.path = csv.to_path_buf();
    }
    let w = crate::report::write(&inputs, staging.path())?;
    Ok(ReportFiles {
        report: staging.final_path(&w.report),
        charts: w.charts.iter().map(|c| staging.final_path(c)).collect(),
    })
}

/// The `quick` grid's options with the chosen implementations and min-time.
fn quick_grid_options(args: &AllArgs) -> Result<BenchOptions> {
    BenchFlags {
        impls: args.impls.clone(),
        ops: vec![],
        dtypes: vec![],
        layouts: vec![],
        shapes: vec![],
        grid: GridName::Quick,
        threads: vec![],
        min_time: args.min_time,
        csv: None,
        max_memory: None,
        run_id: None,
        channel_tasks: ChannelTasks::Machine,
    }
    .validate()
}

/// Pass count, worst ratio and verdict per implementation.
fn print_conformance(conformance: &CheckReport) {
    crate::outln!("conformance ({} fixtures):", conformance.rows.len());
    for (info, pass, total, worst) in conformance.summary() {
        let verdict = if pass == total {
            "PASS"
        } else if info.stable {
            "FAIL"
        } else {
            "fails some (unstable by design; not an error)"
        };
        crate::outln!(
            "  {:12} {pass}/{total} cases, worst error/tolerance {worst:.3e}  {verdict}",
            info.name
        );
    }
}

/// The fastest implementation per operation.
fn print_fastest(records: &[Record]) {
    crate::outln!(
        "fastest per op (quick grid, geometric mean of time / memcpy time; 1.0 = copy speed):"
    );
    for (op, imp, ratio) in fastest_per_op(records) {
        let imp = crate::output::escape(&imp);
        crate::outln!("  {op:9} {imp:12} {ratio:.2}x memcpy");
    }
}

/// The one line that adds PyTorch to the report: the command when `torch`
/// imports, how to install it when not (checked with `python3 -c 'import torch'`).
fn print_torch_hint(csv: &Path, written: &ReportFiles) {
    let out = written
        .report
        .parent()
        .map_or_else(|| ".".to_string(), escape_path);
    let torch_csv = csv.with_file_name("torch.csv");
    let importable = std::process::Command::new("python3")
        .args(["-c", "import torch"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if importable {
        crate::outln!(
            "add PyTorch: python3 scripts/torch_bench.py --grid quick --csv {t} && bnh report {c} {t} --out {out}",
            t = escape_path(&torch_csv),
            c = escape_path(csv),
        );
    } else {
        crate::outln!(
            "add PyTorch: pip install torch (CPU: --index-url https://download.pytorch.org/whl/cpu), then python3 scripts/torch_bench.py --grid quick --csv {t} && bnh report {c} {t} --out {out}",
            t = escape_path(&torch_csv),
            c = escape_path(csv),
        );
    }
}

/// Where every file went.
fn print_files(csv: &Path, written: &ReportFiles) {
    crate::outln!("files:");
    crate::outln!(
        "  {}  (+ {})",
        escape_path(csv),
        escape_path(&sidecar_path(csv))
    );
    crate::outln!("  {}", escape_path(&written.report));
    for c in &written.charts {
        crate::outln!("  {}", escape_path(c));
    }
}
