//! The Markdown of REPORT.md: a summary per operation, then one table per
//! operation, dtype and thread count (shape × implementation).

use super::Source;
use crate::bench::{Op, Record};
use crate::export::table::human_ns;
use crate::output::escape::escape_md;
use bn_impls::Layout;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

/// Implementations in a stable order: registry order first, then the rest
/// (torch, torch-noalloc, …) alphabetically.
pub fn impl_order(records: &[Record]) -> Vec<String> {
    let registered = bn_impls::registry::names();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut names: Vec<String> = Vec::new();
    for r in records {
        if seen.insert(r.imp.as_str()) {
            names.push(r.imp.clone());
        }
    }
    names.sort_by_key(|n| {
        (
            registered.iter().position(|r| r == n).unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    names
}

/// Operations present, in the order train, eval, backward.
pub fn op_order(records: &[Record]) -> Vec<Op> {
    Op::ALL
        .into_iter()
        .filter(|op| records.iter().any(|r| r.op == *op))
        .collect()
}

/// Key of one benchmarked configuration apart from the implementation:
/// op, dtype, threads, elements, shape, layout.
pub type CaseKey = (Op, &'static str, usize, usize, String, &'static str);

/// What comparisons need of every record of one configuration: the
/// first `naive` median and the lowest median. Computed in one pass, so
/// looking a record's configuration up is O(log n), never a scan.
#[derive(Debug, Clone, Copy)]
struct CaseStats {
    naive: Option<f64>,
    best: f64,
}

/// Configurations and their [`CaseStats`].
type ByCase = BTreeMap<CaseKey, CaseStats>;

/// The [`CaseKey`] of a record.
pub fn case_key(r: &Record) -> CaseKey {
    (
        r.op,
        r.dtype.name(),
        r.threads,
        r.elements(),
        r.shape.clone(),
        r.layout.name(),
    )
}

/// Geometric mean, or NaN for no values.
pub fn geomean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

/// Speed-up over `naive` on the same configuration, if naive was measured.
fn speedup_vs_naive(r: &Record, by_case: &ByCase) -> Option<f64> {
    by_case.get(&case_key(r))?.naive.map(|n| n / r.median_ns)
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "–".into(),
    }
}

/// The fastest implementation per operation: `(op, impl, geomean ratio to memcpy)`,
/// by geometric mean of the ratio over every configuration it was measured on.
pub fn fastest_per_op(records: &[Record]) -> Vec<(Op, String, f64)> {
    let mut ratios: HashMap<(Op, &str), Vec<f64>> = HashMap::new();
    for r in records {
        ratios
            .entry((r.op, r.imp.as_str()))
            .or_default()
            .push(r.ratio_to_memcpy);
    }
    let impls = impl_order(records);
    let mut out = Vec::new();
    for op in op_order(records) {
        let best = impls
            .iter()
            .filter_map(|imp| Some((imp.clone(), geomean(ratios.get(&(op, imp.as_str()))?))))
            .filter(|(_, g)| g.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((imp, g)) = best {
            out.push((op, imp, g));
        }
    }
    out
}

/// Records of one (op, dtype, threads) group: one summary block and one table.
type Groups<'a> = BTreeMap<(Op, &'static str, usize), Vec<&'a Record>>;

/// The whole REPORT.md: intro, sources, summary, charts, then one table per group.
pub fn report_markdown(records: &[Record], sources: &[Source], charts: &[String]) -> String {
    let by_case = group_by_case(records);
    let groups = group_by_op_dtype_threads(records);
    let impls = impl_order(records);
    let mut md = String::new();
    write_intro(&mut md, records);
    write_sources(&mut md, sources);
    write_summary(&mut md, &groups, &impls, &by_case);
    write_chart_links(&mut md, charts);
    for ((op, dtype, threads), rs) in &groups {
        write_group_table(&mut md, (*op, dtype, *threads), rs, &impls, &by_case);
    }
    md
}

/// [`CaseStats`] of every configuration, to compare implementations on the same one.
fn group_by_case(records: &[Record]) -> ByCase {
    let mut by_case: ByCase = BTreeMap::new();
    for r in records {
        let e = by_case.entry(case_key(r)).or_insert(CaseStats {
            naive: None,
            best: f64::INFINITY,
        });
        if r.imp == "naive" && e.naive.is_none() {
            e.naive = Some(r.median_ns);
        }
        e.best = e.best.min(r.median_ns);
    }
    by_case
}

/// Records by (op, dtype, threads), in report order.
fn group_by_op_dtype_threads(records: &[Record]) -> Groups<'_> {
    let mut groups: Groups = BTreeMap::new();
    for r in records {
        groups
            .entry((r.op, r.dtype.name(), r.threads))
            .or_default()
            .push(r);
    }
    groups
}

/// Title and how to read the numbers (plus the torch note when torch rows are present).
fn write_intro(md: &mut String, records: &[Record]) {
    let _ = writeln!(md, "# Batch-norm benchmark report\n");
    let _ = writeln!(
        md,
        "Generated by `bnh report` from {} measurement(s). Times are per call (median of timed \
         samples, p10–p90 spread); `× memcpy` is the median divided by the time to copy `x` into a \
         preallocated buffer in the same run and thread pool (1.0 would be as fast as the memory \
         bus allows for a single read+write pass); GB/s counts the bytes the operation must move at \
         minimum (train 3×, eval 2×, backward 3× the size of `x`). Column definitions: \
         docs/BENCHMARKS.md.\n",
        records.len()
    );
    if records.iter().any(|r| r.imp.starts_with("torch")) {
        let _ = writeln!(
            md,
            "`torch` is PyTorch as users call it (a fresh output per call, paying page faults \
             above glibc's mmap threshold); `torch-noalloc` is the same call with those faults \
             removed (GLIBC_TUNABLES), the like-for-like comparison with our implementations, \
             which write into preallocated buffers. Method: docs/BENCHMARKS.md.\n"
        );
    }
}

/// The input CSVs with their row counts and machines.
fn write_sources(md: &mut String, sources: &[Source]) {
    let _ = writeln!(md, "## Sources\n");
    for s in sources {
        // Paths, machine text and names below come from files: escaped.
        let path = escape_md(&s.path.to_string_lossy());
        let _ = writeln!(md, "- `{path}`: {} rows", s.rows);
        if let Some(m) = &s.machine {
            let _ = writeln!(md, "  - machine: {}", escape_md(&m.summary()));
            let _ = writeln!(md, "  - command: `{}`", escape_md(&m.command));
        }
    }
    md.push('\n');
}

/// One summary line per group and implementation: geomeans and win count.
fn write_summary(md: &mut String, groups: &Groups, impls: &[String], by_case: &ByCase) {
    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(
        md,
        "Geometric means over every configuration measured for that operation, dtype and thread \
         count. `fastest` counts the configurations where the implementation had the lowest median.\n"
    );
    let _ = writeln!(
        md,
        "| op | dtype | threads | impl | configs | geomean × memcpy | geomean speed-up vs naive | fastest |"
    );
    let _ = writeln!(md, "|---|---|---:|---|---:|---:|---:|---:|");
    for ((op, dtype, threads), rs) in groups {
        let mut by_imp: HashMap<&str, Vec<&Record>> = HashMap::new();
        for r in rs {
            by_imp.entry(r.imp.as_str()).or_default().push(r);
        }
        for imp in impls {
            let Some(mine) = by_imp.get(imp.as_str()) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {op} | {dtype} | {threads} | {} | {} | {:.2} | {} | {} |",
                escape_md(imp),
                mine.len(),
                geomean(&mine.iter().map(|r| r.ratio_to_memcpy).collect::<Vec<_>>()),
                fmt_opt(Some(geomean_speedup(mine, by_case)), 2),
                fastest_count(mine, by_case),
            );
        }
    }
    md.push('\n');
}

/// Geometric mean of the speed-ups over naive where naive was measured.
fn geomean_speedup(mine: &[&Record], by_case: &ByCase) -> f64 {
    let speedups: Vec<f64> = mine
        .iter()
        .filter_map(|r| speedup_vs_naive(r, by_case))
        .collect();
    geomean(&speedups)
}

/// In how many configurations no other implementation had a lower median.
fn fastest_count(mine: &[&Record], by_case: &ByCase) -> usize {
    mine.iter()
        .filter(|r| by_case[&case_key(r)].best >= r.median_ns)
        .count()
}

/// Links to the charts, if any were drawn.
fn write_chart_links(md: &mut String, charts: &[String]) {
    if charts.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Charts\n");
    for c in charts {
        let _ = writeln!(md, "![{c}]({c})\n");
    }
}

/// The table of one (op, dtype, threads) group: shapes by size, contiguous
/// first, implementations in [`impl_order`].
fn write_group_table(
    md: &mut String,
    (op, dtype, threads): (Op, &str, usize),
    rs: &[&Record],
    impls: &[String],
    by_case: &ByCase,
) {
    let _ = writeln!(md, "## {op} — {dtype}, {threads} thread(s)\n");
    let _ = writeln!(
        md,
        "| shape | layout | impl | median | p10–p90 | GB/s | × memcpy | speed-up vs naive |"
    );
    let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|");
    let rank: HashMap<&str, usize> = impls
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut rows: Vec<&Record> = rs.to_vec();
    rows.sort_by_cached_key(|r| {
        (
            r.elements(),
            r.shape.clone(),
            r.layout != Layout::Contiguous,
            rank.get(r.imp.as_str()).copied(),
        )
    });
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {}–{} | {:.2} | {:.2} | {} |",
            escape_md(&r.shape),
            r.layout,
            escape_md(&r.imp),
            human_ns(r.median_ns),
            human_ns(r.p10_ns),
            human_ns(r.p90_ns),
            r.gb_per_s,
            r.ratio_to_memcpy,
            fmt_opt(speedup_vs_naive(r, by_case), 2),
        );
    }
    md.push('\n');
}
