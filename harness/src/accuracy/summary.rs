//! The headline numbers of a sweep: the worst relative error of each
//! implementation and dtype at each offset ratio (over sizes, magnitudes and ops).

use super::export::AccuracyRow;
use crate::output::escape;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// Worst `max_rel_err` of the rows that pass `keep`, keyed by (impl, dtype, offset ratio).
/// Implementations keep their order of first appearance.
pub fn worst_by_ratio(
    rows: &[AccuracyRow],
    keep: impl Fn(&AccuracyRow) -> bool,
) -> Vec<(String, String, f64, f64)> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    let mut worst: BTreeMap<(usize, u64), f64> = BTreeMap::new();
    for r in rows.iter().filter(|r| keep(r)) {
        let i = *index.entry((&r.imp, &r.dtype)).or_insert_with(|| {
            order.push((r.imp.clone(), r.dtype.clone()));
            order.len() - 1
        });
        let e = worst.entry((i, r.offset_ratio.to_bits())).or_insert(0.0);
        // NaN-safe max: a NaN error counts as the worst possible.
        *e = if r.max_rel_err.is_nan() {
            f64::INFINITY
        } else {
            e.max(r.max_rel_err)
        };
    }
    worst
        .into_iter()
        .map(|((i, bits), e)| {
            (
                order[i].0.clone(),
                order[i].1.clone(),
                f64::from_bits(bits),
                e,
            )
        })
        .collect()
}

/// A text table: one line per implementation and dtype, one column per
/// offset ratio; magnitudes restricted by `keep` (e.g. scale 1 only).
pub fn table(rows: &[AccuracyRow], keep: impl Fn(&AccuracyRow) -> bool) -> String {
    let cells = worst_by_ratio(rows, keep);
    let mut ratios: Vec<f64> = cells.iter().map(|c| c.2).collect();
    ratios.sort_by(f64::total_cmp);
    ratios.dedup();
    let mut out = format!("{:<12} {:<5}", "impl", "dtype");
    for r in &ratios {
        let _ = write!(out, " {:>9}", format!("r={r:.0e}"));
    }
    out.push('\n');
    // One pass to index the cells: (impl, dtype) in first-appearance order,
    // each with its errors by ratio (bits), so the table is O(n log n).
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let mut by_key: HashMap<(&str, &str), BTreeMap<u64, f64>> = HashMap::new();
    for c in &cells {
        let m = by_key.entry((&c.0, &c.1)).or_insert_with(|| {
            keys.push((&c.0, &c.1));
            BTreeMap::new()
        });
        m.entry(c.2.to_bits()).or_insert(c.3);
    }
    for (imp, dt) in keys {
        // Names come from a CSV (`--from-csv`): escaped for the terminal.
        let (shown_imp, shown_dt) = (escape(imp), escape(dt));
        let _ = write!(out, "{shown_imp:<12} {shown_dt:<5}");
        for r in &ratios {
            let e = by_key[&(imp, dt)].get(&r.to_bits()).copied();
            let _ = match e {
                Some(e) if e.is_finite() => write!(out, " {e:>9.1e}"),
                Some(_) => write!(out, " {:>9}", "NaN/inf"),
                None => write!(out, " {:>9}", "-"),
            };
        }
        out.push('\n');
    }
    out
}
