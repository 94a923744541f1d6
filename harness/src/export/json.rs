//! `--export-json PATH` (after hyperfine's flag of that name): the summary of
//! `bnh check` or `bnh bench` as one JSON document, for scripts and CI.
//! Written atomically by the commands (never half a file).

use crate::bench::Record;
use crate::conformance::CheckReport;
use crate::error::{Error, Result};
use crate::report::tables::fastest_per_op;
use serde_json::{json, Value};

/// Schema tag of both documents, bumped on an incompatible change.
pub const SCHEMA: &str = "bnh-summary/1";

/// `bnh check`'s summary: per implementation its pass count, total,
/// declined cases and worst error/tolerance ratio (`null` when not finite),
/// then the verdict (`pass`: no stable implementation failed).
pub fn check_summary(report: &CheckReport) -> Value {
    let impls: Vec<Value> = report
        .summary()
        .into_iter()
        .enumerate()
        .map(|(k, (info, pass, total, worst))| {
            json!({
                "impl": info.name,
                "stable": info.stable,
                "pass": pass,
                "total": total,
                "unsupported": report.unsupported(k),
                "worst_ratio": finite(worst),
            })
        })
        .collect();
    json!({
        "schema": SCHEMA,
        "command": "check",
        "cases": report.rows.len(),
        "impls": impls,
        "pass": report.ok(),
    })
}

/// `bnh bench`'s summary: every measurement (the CSV's columns) and the
/// fastest implementation per op (geometric mean of time / memcpy time).
pub fn bench_summary(records: &[Record]) -> Value {
    let fastest: Vec<Value> = fastest_per_op(records)
        .into_iter()
        .map(|(op, imp, ratio)| {
            json!({ "op": op.name(), "impl": imp, "geomean_ratio_to_memcpy": finite(ratio) })
        })
        .collect();
    json!({
        "schema": SCHEMA,
        "command": "bench",
        "run_id": records.first().map(|r| r.run_id.as_str()),
        "results": records,
        "fastest": fastest,
    })
}

/// JSON has no NaN or infinity: those become `null`.
fn finite(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// The document's bytes, pretty-printed with a final newline.
pub fn to_bytes(v: &Value) -> Result<Vec<u8>> {
    let mut s = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Usage(format!("cannot write JSON: {e}")))?;
    s.push('\n');
    Ok(s.into_bytes())
}
