//! The accuracy part of a report: `bnh accuracy`'s CSV rendered as a chart
//! and a table of worst relative errors, so `bnh report` shows speed and
//! accuracy side by side from CSVs alone.

use crate::accuracy::{export::AccuracyRow, summary};
use std::fmt::Write;

/// The header that tells an accuracy CSV from a bench CSV.
pub const HEADER_PREFIX: &str = "impl,dtype,op,n_per_channel,offset_ratio";

/// Whether a CSV whose first line is `header` is an accuracy CSV.
pub fn is_accuracy_header(header: &str) -> bool {
    header.starts_with(HEADER_PREFIX)
}

/// The accuracy section of REPORT.md (it shows `accuracy.svg`, which
/// [`super::write`] draws beside it).
pub fn section(rows: &[AccuracyRow]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Accuracy vs conditioning\n");
    let _ = writeln!(
        md,
        "From `bnh accuracy`: each implementation against the double-double oracle, inputs \
         `x = s·(r + z)` per channel with offset ratio `r` = |mean|/std, spread `s` and N·S values \
         per channel. Cells: worst `max|got − oracle| / max|oracle|` over ops, sizes and \
         magnitudes (`inf`: a non-finite result where the oracle is finite). `grad_input` at \
         N·S = 2 is left out: that output is ill-conditioned for any algorithm. Method: \
         docs/ACCURACY.md.\n"
    );
    let keep = |r: &AccuracyRow| !(r.op == "grad_input" && r.n_per_channel == 2);
    let _ = writeln!(md, "All magnitudes (1e-30 to 1e30):\n\n```");
    md.push_str(&summary::table(rows, keep));
    let _ = writeln!(md, "```\n\nMagnitude 1 only:\n\n```");
    md.push_str(&summary::table(rows, |r| keep(r) && r.scale == 1.0));
    let _ = writeln!(md, "```\n\n![accuracy](accuracy.svg)\n");
    md
}
