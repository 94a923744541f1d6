//! `bnh check --csv PATH`: every verdict as a CSV row, for scripts and CI.
//!
//! Columns: `case,impl,verdict,worst_ratio,output,detail`. `verdict` is one
//! of [`VERDICTS`]; `worst_ratio` is the worst |error|/tolerance over the
//! outputs (empty when nothing was compared; `inf` for a misplaced NaN or a
//! missing output); `output` names the output with that ratio; `detail` says
//! why a run failed, was declined or gave no result (empty on a pass).

use crate::conformance::CheckReport;
use crate::error::{Error, Result};
use crate::output::write_atomic;
use crate::tolerance::{RunFailure, Verdict};
use std::path::Path;

/// The header.
pub const COLUMNS: [&str; 6] = ["case", "impl", "verdict", "worst_ratio", "output", "detail"];

/// The `verdict` word of one verdict, one of `pass`, `fail`, `unsupported`,
/// `timeout`, `crashed`: a correctly rejected input is a pass.
pub fn word(v: &Verdict) -> &'static str {
    if v.rejected_as_expected {
        "pass"
    } else if v.unsupported.is_some() {
        "unsupported"
    } else if v.run_failure == Some(RunFailure::Timeout) {
        "timeout"
    } else if v.run_failure == Some(RunFailure::Crashed) {
        "crashed"
    } else if v.pass() {
        "pass"
    } else {
        "fail"
    }
}

/// `worst_ratio`, `output` and `detail` of one verdict.
fn columns(v: &Verdict) -> [String; 3] {
    let worst = v.worst();
    let ratio = match (word(v), worst) {
        ("pass" | "fail", Some(w)) => ratio_text(w.ratio),
        ("pass", None) if v.rejected_as_expected => "0".into(),
        _ => String::new(),
    };
    let output = match word(v) {
        "pass" | "fail" => worst.map(|w| w.name.to_string()).unwrap_or_default(),
        _ => String::new(),
    };
    let detail = if let Some(why) = &v.unsupported {
        why.clone()
    } else if let Some(p) = &v.problem {
        p.clone()
    } else if v.pass() {
        String::new()
    } else {
        match worst {
            Some(w) => match &w.problem {
                Some(p) => format!("{}: {p}", w.name),
                None => format!(
                    "{}: max error {:e} > tolerance {:e}",
                    w.name, w.max_abs_err, w.tol
                ),
            },
            None => String::new(),
        }
    };
    [ratio, output, detail]
}

/// A ratio as a number a spreadsheet reads (`inf` when infinite).
fn ratio_text(r: f64) -> String {
    if r.is_finite() {
        format!("{r:e}")
    } else {
        "inf".into()
    }
}

/// The CSV text of a report: one row per (case, implementation), cases in
/// the report's order; a case file that did not load gives a `fail` row
/// for every implementation, with the reason.
pub fn to_csv(report: &CheckReport) -> Result<Vec<u8>> {
    let mut w = ::csv::WriterBuilder::new().from_writer(Vec::new());
    let fail = |e: ::csv::Error| Error::Usage(format!("cannot write CSV: {e}"));
    w.write_record(COLUMNS).map_err(fail)?;
    for row in &report.rows {
        for (k, info) in report.impls.iter().enumerate() {
            let record = match &row.result {
                Ok(verdicts) => {
                    let v = &verdicts[k];
                    let [ratio, output, detail] = columns(v);
                    [
                        row.name.clone(),
                        info.name.into(),
                        word(v).into(),
                        ratio,
                        output,
                        detail,
                    ]
                }
                Err(e) => [
                    row.name.clone(),
                    info.name.into(),
                    "fail".into(),
                    String::new(),
                    String::new(),
                    format!("invalid case file: {e}"),
                ],
            };
            w.write_record(&record).map_err(fail)?;
        }
    }
    w.into_inner()
        .map_err(|e| Error::Usage(format!("cannot write CSV: {e}")))
}

/// Write the CSV of `report` to `path`, atomically.
pub fn write(report: &CheckReport, path: &Path) -> Result<()> {
    write_atomic(path, &to_csv(report)?)
}
