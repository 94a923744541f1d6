//! `bnh compare OLD.csv NEW.csv`: the change of every matched measurement,
//! judged against noise, with a CI gate (`--fail-above`).

use crate::compare::{render, Comparison, DEFAULT_NOISE};
use crate::error::{Error, Result};
use crate::export::csv::read_csv;
use crate::output::{check_writable, escape_path, refuse_overlap, write_atomic};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `bnh compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline bench CSV (`bnh bench --csv`).
    #[arg(value_name = "OLD.csv")]
    pub old: PathBuf,
    /// The bench CSV to judge against it.
    #[arg(value_name = "NEW.csv")]
    pub new: PathBuf,
    /// Exit 1 when a measurement is judged slower by more than PCT percent (a CI gate).
    #[arg(long, value_name = "PCT", allow_negative_numbers = true)]
    pub fail_above: Option<f64>,
    /// Changes under PCT percent are never called faster or slower (default 3).
    #[arg(long, value_name = "PCT", allow_negative_numbers = true)]
    pub noise: Option<f64>,
    /// Also write the comparison as markdown here.
    #[arg(long, value_name = "PATH")]
    pub md: Option<PathBuf>,
    /// Also write the comparison as CSV here.
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,
}

/// A percentage flag as a fraction: finite and in [0, 1000].
fn fraction(flag: &str, pct: f64) -> Result<f64> {
    if !(pct.is_finite() && (0.0..=1000.0).contains(&pct)) {
        return Err(Error::Usage(format!(
            "{flag} {pct}: give a percentage between 0 and 1000, e.g. {flag} 5"
        )));
    }
    Ok(pct / 100.0)
}

/// Validate, compare, write the files, print the table; exit 1 when the
/// gate finds a regression.
pub fn run(args: CompareArgs) -> Result<ExitCode> {
    let noise = fraction("--noise", args.noise.unwrap_or(DEFAULT_NOISE * 100.0))?;
    let gate = args
        .fail_above
        .map(|p| fraction("--fail-above", p))
        .transpose()?;
    let inputs = [("OLD", args.old.as_path()), ("NEW", args.new.as_path())];
    let outputs: Vec<(&str, &std::path::Path)> = [("--md", &args.md), ("--csv", &args.csv)]
        .into_iter()
        .filter_map(|(f, p)| p.as_deref().map(|p| (f, p)))
        .collect();
    refuse_overlap(&inputs, &outputs)?;
    for (flag, path) in &outputs {
        check_writable(flag, path)?;
    }
    let old = read_csv(&args.old)?;
    let new = read_csv(&args.new)?;
    let names = (escape_path(&args.old), escape_path(&args.new));
    let cmp = Comparison::new(&old, &new, (&names.0, &names.1), noise).map_err(Error::Usage)?;
    if let Some(path) = &args.md {
        write_atomic(path, render::markdown(&cmp).as_bytes())?;
    }
    if let Some(path) = &args.csv {
        write_atomic(path, &render::csv(&cmp)?)?;
    }
    crate::out!("{}", render::table(&cmp));
    let Some(limit) = gate else {
        return Ok(ExitCode::SUCCESS);
    };
    let regressions = cmp.regressions(limit);
    if regressions.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    crate::output::stdout::warn(&format!(
        "bnh compare: {} measurement(s) slower by more than {}: {}",
        regressions.len(),
        format_pct(limit),
        regressions
            .iter()
            .map(|c| format!("{} ({:+.1} %)", c.key.label(), c.change * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(ExitCode::from(1))
}

fn format_pct(f: f64) -> String {
    format!("{} %", f * 100.0)
}
