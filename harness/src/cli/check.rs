//! `bnh check [PATH...] [--impl NAME...] [--plugin LIB...] [--external NAME=COMMAND...] [--csv PATH]`.

mod verdicts_csv;

use crate::conformance::{check_with_externals, shipped_fixtures, CheckReport, CheckRow};
use crate::error::{Error, Result};
use crate::external::External;
use crate::output::{check_writable, escape, escape_path, refuse_overlap};
use crate::tolerance::{RunFailure, Verdict};
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `bnh check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Case files or folders of *.json cases (default: the fixtures shipped in the repo).
    paths: Vec<PathBuf>,
    /// Implementations to check (default: all registered): `--impls a,b` or
    /// `--impl a --impl b`.
    #[arg(
        long = "impls",
        alias = "impl",
        value_delimiter = ',',
        value_name = "A,B"
    )]
    imps: Vec<String>,
    /// Also write the summary (per implementation: passes, worst ratio) as JSON here.
    #[arg(long, alias = "json", value_name = "PATH")]
    export_json: Option<PathBuf>,
    /// Also list each failure of the unstable implementations.
    #[arg(long, short)]
    verbose: bool,
    /// A C kernel plugin (include/bnh_kernel.h) to load and register under its own name; repeatable.
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
    /// A program in any language to check out of process, as NAME=COMMAND;
    /// `{case}` and `{out}` in COMMAND become the case file and the output
    /// file to write (docs/EXTERNAL.md); repeatable.
    #[arg(long = "external", value_name = "NAME=COMMAND")]
    pub externals: Vec<String>,
    /// Seconds one --external run may take before it is killed (verdict `timeout`).
    #[arg(long, value_name = "SECONDS", default_value_t = crate::external::DEFAULT_TIMEOUT_SECS)]
    pub timeout: f64,
    /// Also write every verdict as CSV: case,impl,verdict,worst_ratio,output,detail.
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,
}

/// Run the check, print the table (and write the CSV), exit 1 if a stable
/// implementation or an external fails.
pub fn run(args: CheckArgs) -> Result<ExitCode> {
    crate::plugin::load_all(&args.plugins)?;
    if let Some(p) = &args.export_json {
        crate::output::check_writable("--export-json", p)?;
    }
    let timeout = crate::external::timeout(args.timeout)?;
    let externals = crate::external::parse_all(&args.externals, timeout)?;
    let (externals, impls) = select(&args.imps, externals)?;
    let paths = if args.paths.is_empty() {
        vec![shipped_fixtures()]
    } else {
        args.paths
    };
    if let Some(csv) = &args.csv {
        // Every case file found, not only the folders named: `--csv` must
        // not be one of them.
        let files = crate::case::collect_case_files(&paths)?;
        let inputs: Vec<(&str, &std::path::Path)> = paths
            .iter()
            .chain(&files)
            .map(|p| ("", p.as_path()))
            .collect();
        refuse_overlap(&inputs, &[("--csv", csv)])?;
        check_writable("--csv", csv)?;
    }
    if !externals.is_empty() {
        // Ctrl-C kills the running programs instead of orphaning them.
        crate::interrupt::install();
    }
    let report = check_with_externals(&paths, &impls, &externals)?;
    if report.rows.is_empty() {
        return Err(Error::Usage(format!(
            "no *.json case files under {}",
            paths
                .iter()
                .map(|p| escape_path(p))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(path) = &args.csv {
        verdicts_csv::write(&report, path)?;
    }
    if let Some(p) = &args.export_json {
        let json = crate::export::json::check_summary(&report);
        crate::output::write_atomic(p, &crate::export::json::to_bytes(&json)?)?;
    }
    crate::out!("{}", render(&report, args.verbose));
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The implementations and externals `--impl` names: with no `--impl`, all
/// of them; an `--impl` list that names only externals runs only those;
/// externals are always run unless `--impl` names some and not them.
fn select(
    names: &[String],
    externals: Vec<External>,
) -> Result<(Vec<External>, Vec<&'static dyn bn_impls::Implementation>)> {
    let names: Vec<String> = names
        .iter()
        .flat_map(|n| n.split(','))
        .map(|n| n.trim().to_string())
        .collect();
    let is_external = |n: &String| externals.iter().any(|e| e.info.name == n);
    let named_externals = names.iter().any(is_external);
    let others: Vec<String> = names.iter().filter(|n| !is_external(n)).cloned().collect();
    let impls = if named_externals && others.is_empty() {
        Vec::new()
    } else {
        crate::select_impls(&others)?
    };
    let externals = if named_externals {
        externals
            .into_iter()
            .filter(|e| names.iter().any(|n| n == e.info.name))
            .collect()
    } else {
        externals
    };
    Ok((externals, impls))
}

fn cell(v: &Verdict) -> String {
    if v.rejected_as_expected {
        "rejected ok".into()
    } else if v.unsupported.is_some() {
        "unsupported".into()
    } else if v.run_failure == Some(RunFailure::Timeout) {
        "TIMEOUT".into()
    } else if v.run_failure == Some(RunFailure::Crashed) {
        "CRASHED".into()
    } else if v.pass() {
        format!("{:.3}", v.worst_ratio())
    } else if v.worst_ratio().is_finite() {
        format!("FAIL {:.3e}", v.worst_ratio())
    } else {
        "FAIL".into()
    }
}

/// The table (case × implementation: worst error/tolerance ratio), failures, summary.
pub fn render(report: &CheckReport, verbose: bool) -> String {
    let widths = Widths::of(report);
    let mut out = String::new();
    let mut failures = String::new();
    write_header(&mut out, report, widths);
    for row in &report.rows {
        write_row(&mut out, &mut failures, row, report, widths, verbose);
    }
    let _ = writeln!(
        out,
        "\ncells: worst |error| / tolerance over all outputs (<= 1 passes; bn-case/1 tolerance rule)"
    );
    if !failures.is_empty() {
        let _ = write!(out, "\nfailures:\n{failures}");
    }
    out.push('\n');
    write_summary(&mut out, report, widths);
    out
}

/// Column widths of the table: case names, then one column per implementation.
#[derive(Debug, Clone, Copy)]
struct Widths {
    name: usize,
    col: usize,
}

impl Widths {
    fn of(report: &CheckReport) -> Widths {
        let name = report
            .rows
            .iter()
            .map(|r| escape(&r.name).chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let col = report
            .impls
            .iter()
            .map(|i| i.name.len())
            .max()
            .unwrap_or(0)
            .max(12);
        Widths { name, col }
    }
}

/// `case` and the implementation names.
fn write_header(out: &mut String, report: &CheckReport, w: Widths) {
    let _ = write!(out, "{:width$}", "case", width = w.name);
    for i in &report.impls {
        let _ = write!(out, "  {:>width$}", i.name, width = w.col);
    }
    out.push('\n');
}

/// One case's cells; its failures (all of stable implementations, those of
/// unstable ones when `verbose`) go to `failures`.
fn write_row(
    out: &mut String,
    failures: &mut String,
    row: &CheckRow,
    report: &CheckReport,
    w: Widths,
    verbose: bool,
) {
    let _ = write!(out, "{:width$}", escape(&row.name), width = w.name);
    match &row.result {
        Err(e) => {
            let _ = write!(out, "  INVALID CASE FILE");
            let _ = writeln!(failures, "{}", escape(e));
        }
        Ok(verdicts) => {
            for (v, info) in verdicts.iter().zip(&report.impls) {
                let _ = write!(out, "  {:>width$}", cell(v), width = w.col);
                if !v.pass() && v.unsupported.is_none() && (info.stable || verbose) {
                    let line = describe(&row.name, info.name, v);
                    let _ = writeln!(failures, "{}", escape(&line));
                }
            }
        }
    }
    out.push('\n');
}

/// Pass counts and worst ratio per implementation, then the verdict line.
fn write_summary(out: &mut String, report: &CheckReport, w: Widths) {
    for (k, (info, pass, total, worst)) in report.summary().into_iter().enumerate() {
        let kind = if info.stable {
            "stable"
        } else {
            "unstable (failures do not fail the check)"
        };
        let declined = match report.unsupported(k) {
            0 => String::new(),
            u => format!(", {u} unsupported (declined by the implementation; not failures)"),
        };
        let _ = writeln!(
            out,
            "{:width$}  {pass}/{total} cases pass{declined}, worst ratio {worst:.3e}  [{kind}]",
            info.name,
            width = w.col
        );
    }
    let verdict = if report.ok() {
        "check: PASS"
    } else {
        "check: FAIL"
    };
    let _ = writeln!(out, "{verdict}");
}

/// One failure line (escaped by the caller: it holds the case's name).
fn describe(case: &str, imp: &str, v: &Verdict) -> String {
    if let Some(p) = &v.problem {
        return format!("  {case} / {imp}: {p}");
    }
    let w = v.worst().expect("a failing verdict has a check");
    match &w.problem {
        Some(p) => format!("  {case} / {imp}: {}: {p}", w.label()),
        None => format!(
            "  {case} / {imp}: {}: max error {:.3e} > tolerance {:.3e} (ratio {:.3e})",
            w.label(),
            w.max_abs_err,
            w.tol,
            w.ratio
        ),
    }
}
