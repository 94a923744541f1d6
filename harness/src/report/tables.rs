//! The Markdown of REPORT.md, top-down: a one-screen summary (winner per
//! operation and size class, margin over the runner-up, distance to the
//! roofline, PyTorch's position, and why), the breakdown by layout, dtype
//! and threads, the charts, one table per operation, dtype and thread count
//! (a row per shape and layout, the winner in bold with its margin), and
//! last the method and sources.

use super::findings;
use super::ranking::{self, Config, GroupKey, GroupSummary, Ranked, SizeClass};
use super::Source;
use crate::bench::{Op, Record, NOISY_SPREAD};
use crate::export::table::human_ns;
use crate::output::escape::escape_md;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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

/// Geometric mean, or NaN for no values.
pub fn geomean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
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

/// The whole REPORT.md (see the module docs for its order).
pub fn report_markdown(records: &[Record], sources: &[Source], charts: &[String]) -> String {
    let ranked = ranking::rank(records);
    let impls = impl_order(records);
    let has_torch = records.iter().any(ranking::is_torch);
    let mut md = String::new();
    write_intro(&mut md, records, &ranked);
    write_summary(&mut md, records, &ranked, has_torch);
    write_breakdown(&mut md, &ranked, has_torch);
    if let Some(side_by_side) = super::versus_torch::markdown(records) {
        md.push_str(&side_by_side);
        md.push('\n');
    }
    write_chart_links(&mut md, charts);
    write_shape_tables(&mut md, &ranked, &impls);
    write_method(&mut md, records, sources, has_torch);
    md
}

/// Title and what was measured, in one paragraph.
fn write_intro(md: &mut String, records: &[Record], ranked: &BTreeMap<Config, Ranked>) {
    let _ = writeln!(md, "# Batch-norm benchmark report\n");
    let runs: BTreeSet<(&str, &str)> = records
        .iter()
        .map(|r| (r.source.as_str(), r.run_id.as_str()))
        .collect();
    let _ = writeln!(
        md,
        "{} measurements of {} implementations in {} configurations (op × dtype × layout × \
         shape × threads), from {} run(s). Read the summary first; the per-shape tables and the \
         method follow.\n",
        records.len(),
        impl_order(records).len(),
        ranked.len(),
        runs.len()
    );
}

/// `1.42×`, or `–` for a value that is not finite.
fn times(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}×")
    } else {
        "–".into()
    }
}

/// PyTorch's position in words: `torch-noalloc 2.10× slower` or `… faster`.
fn torch_cell(t: &Option<(String, f64)>) -> String {
    match t {
        Some((name, g)) if *g >= 1.0 => format!("{} {:.2}× slower", escape_md(name), g),
        Some((name, g)) => format!("{} **{:.2}× faster**", escape_md(name), 1.0 / g),
        None => "–".into(),
    }
}

/// The PyTorch column's header and separator cells, empty without PyTorch rows.
fn torch_header(has_torch: bool) -> [&'static str; 2] {
    if has_torch {
        [" PyTorch |", "---|"]
    } else {
        ["", ""]
    }
}

/// The PyTorch column's cell ([`torch_cell`]) with its separator, empty
/// without PyTorch rows.
fn torch_column(has_torch: bool, t: &Option<(String, f64)>) -> String {
    if has_torch {
        format!(" {} |", torch_cell(t))
    } else {
        String::new()
    }
}

/// The margin cell: `1.42× over welford`, with `~` when measurements of
/// the group are noisy.
fn margin_cell(s: &GroupSummary) -> String {
    let noisy = if s.noisy > 0 { " ~" } else { "" };
    match &s.runner_up {
        Some((name, g)) => format!("{} over {}{noisy}", times(*g), escape_md(name)),
        None => format!("only one implementation{noisy}"),
    }
}

/// The one-screen summary: per op and size class, then the findings.
fn write_summary(
    md: &mut String,
    records: &[Record],
    ranked: &BTreeMap<Config, Ranked>,
    has_torch: bool,
) {
    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(
        md,
        "Per operation and size of x, pooling layouts, dtypes and thread counts (the breakdown \
         below separates them). **winner**: the implementation closest to the fastest of ours \
         in every configuration (lowest geometric mean of its time over the best time), with \
         the number of configurations it was fastest in; **margin**: the runner-up's time over the winner's, geometric mean over the \
         configurations both ran (1.10× = the runner-up takes 10% longer); **× copy**: the \
         winner's time over a memcpy of x in the same run (the floor is the bytes-moved \
         model's: passes over x / 2){}. `~`: some of these measurements are noisy \
         (p90/p10 > {NOISY_SPREAD}), so a small margin may not hold.\n",
        if has_torch {
            "; **PyTorch**: its best variant's time over the winner's"
        } else {
            ""
        }
    );
    let groups = ranking::summarize(ranked, ranking::by_op_and_class);
    if groups.is_empty() {
        let _ = writeln!(
            md,
            "No implementation of ours was measured (only PyTorch's rows), so nothing is \
             ranked; the per-shape tables list the times.\n"
        );
        return;
    }
    let exceptions = exceptions(ranked, &groups);
    let [torch_h, torch_sep] = torch_header(has_torch);
    let _ = writeln!(
        md,
        "| op | size of x | configs | winner (wins) | margin | × copy (floor) |{torch_h} other winners |"
    );
    let _ = writeln!(md, "|---|---|---:|---|---|---:|{torch_sep}---|");
    for (k, s) in &groups {
        let torch = torch_column(has_torch, &s.torch);
        let _ = writeln!(
            md,
            "| {} | {} | {} | **{}** ({}/{}) | {} | {} ({:.2}) |{torch} {} |",
            k.op,
            k.class.label(),
            s.configs,
            escape_md(&s.winner),
            s.wins,
            s.configs,
            margin_cell(s),
            times(s.winner_ratio),
            ranking::copy_floor(k.op),
            exceptions.get(k).map_or("–".to_string(), |e| e.join("; ")),
        );
    }
    md.push('\n');
    let _ = writeln!(md, "### Why\n");
    // The findings compare one row per implementation and configuration:
    // the latest run's, as ranked.
    let latest: Vec<Record> = ranking::latest_runs(records)
        .0
        .into_iter()
        .cloned()
        .collect();
    for op in op_order(records) {
        let f = findings::for_op(op, &latest);
        if !f.is_empty() {
            let _ = writeln!(md, "**{op}**\n\n{f}");
        }
    }
}

/// Per one-screen group, the facets (layout · dtype · threads) where
/// another implementation wins: `channels_last·f64·t2: parallel`.
fn exceptions(
    ranked: &BTreeMap<Config, Ranked>,
    groups: &BTreeMap<GroupKey, GroupSummary>,
) -> HashMap<GroupKey, Vec<String>> {
    let mut out: HashMap<GroupKey, Vec<String>> = HashMap::new();
    for (k, s) in ranking::summarize(ranked, ranking::by_every_facet) {
        let pooled = GroupKey {
            layout: None,
            dtype: None,
            threads: None,
            ..k.clone()
        };
        let Some(top) = groups.get(&pooled) else {
            continue;
        };
        if s.winner != top.winner {
            out.entry(pooled).or_default().push(format!(
                "{}·{}·t{}: {}",
                k.layout.unwrap_or("?"),
                k.dtype.unwrap_or("?"),
                k.threads.unwrap_or(0),
                escape_md(&s.winner)
            ));
        }
    }
    out
}

/// The summary broken down by layout, dtype and threads.
fn write_breakdown(md: &mut String, ranked: &BTreeMap<Config, Ranked>, has_torch: bool) {
    let groups = ranking::summarize(ranked, ranking::by_every_facet);
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Breakdown by layout, dtype and threads\n");
    let [torch_h, torch_sep] = torch_header(has_torch);
    let _ = writeln!(
        md,
        "| op | size of x | layout | dtype | threads | configs | winner (wins) | margin | × copy |{torch_h}"
    );
    let _ = writeln!(md, "|---|---|---|---|---:|---:|---|---|---:|{torch_sep}");
    for (k, s) in groups {
        let torch = torch_column(has_torch, &s.torch);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | **{}** ({}/{}) | {} | {} |{torch}",
            k.op,
            k.class.label(),
            k.layout.unwrap_or("?"),
            k.dtype.unwrap_or("?"),
            k.threads.unwrap_or(0),
            s.configs,
            escape_md(&s.winner),
            s.wins,
            s.configs,
            margin_cell(&s),
            times(s.winner_ratio),
        );
    }
    md.push('\n');
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

/// A median cell: bold for the winner, `~` when noisy.
fn time_cell(r: &Record, winner: bool) -> String {
    let t = human_ns(r.median_ns);
    let noisy = if r.is_noisy() { " ~" } else { "" };
    if winner {
        format!("**{t}**{noisy}")
    } else {
        format!("{t}{noisy}")
    }
}

/// One row of a per-shape table: a configuration and its ranking.
type Row<'a, 'b> = (&'a Config, &'a Ranked<'b>);

/// One table per (op, dtype, threads): a row per shape and layout, a
/// column per implementation (median; the winner in bold), then the winner,
/// its margin over the runner-up and its time over a copy.
fn write_shape_tables(md: &mut String, ranked: &BTreeMap<Config, Ranked>, impls: &[String]) {
    let _ = writeln!(md, "## Per-shape results\n");
    let _ = writeln!(
        md,
        "Median time per call; **bold**: the fastest of ours; `~`: noisy (p90/p10 > \
         {NOISY_SPREAD}); margin: runner-up time / winner time; × copy: winner time / memcpy time.\n"
    );
    let mut tables: BTreeMap<(Op, &str, usize), Vec<Row>> = BTreeMap::new();
    for (c, r) in ranked {
        tables
            .entry((c.op, c.dtype, c.threads))
            .or_default()
            .push((c, r));
    }
    for ((op, dtype, threads), rows) in tables {
        let present: HashSet<&str> = rows
            .iter()
            .flat_map(|(_, r)| r.ours.iter().chain(&r.torch).chain(&r.earlier))
            .map(|x| x.imp.as_str())
            .collect();
        let cols: Vec<&String> = impls
            .iter()
            .filter(|i| present.contains(i.as_str()))
            .collect();
        let _ = writeln!(md, "### {op} — {dtype}, {threads} thread(s)\n");
        let head: Vec<String> = cols.iter().map(|c| escape_md(c)).collect();
        let _ = writeln!(
            md,
            "| shape | layout | size | {} | winner | margin | × copy |",
            head.join(" | ")
        );
        let _ = writeln!(
            md,
            "|---|---|---:|{}---|---:|---:|",
            "---:|".repeat(cols.len())
        );
        for (c, r) in rows {
            let winner = r.winner();
            let by_name: HashMap<&str, &Record> = r
                .ours
                .iter()
                .chain(&r.torch)
                .map(|x| (x.imp.as_str(), *x))
                .collect();
            let cells: Vec<String> = cols
                .iter()
                .map(|n| {
                    let mut cell = match by_name.get(n.as_str()) {
                        Some(x) => time_cell(x, winner.is_some_and(|w| std::ptr::eq(*x, w))),
                        None => "–".into(),
                    };
                    for e in r.earlier.iter().filter(|e| &e.imp == *n) {
                        let _ = write!(
                            cell,
                            " (run {}: {})",
                            escape_md(&e.run_id),
                            time_cell(e, false)
                        );
                    }
                    cell
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                escape_md(&c.shape),
                c.layout,
                super::charts::human_bytes(c.bytes as f64),
                cells.join(" | "),
                winner.map_or("–".to_string(), |w| escape_md(&w.imp)),
                r.margin().map_or("–".to_string(), times),
                winner.map_or("–".to_string(), |w| times(w.ratio_to_memcpy)),
            );
        }
        md.push('\n');
    }
}

/// How the numbers were taken and where they came from.
fn write_method(md: &mut String, records: &[Record], sources: &[Source], has_torch: bool) {
    let _ = writeln!(md, "## Method\n");
    let _ = writeln!(
        md,
        "- Times are per call: the median of timed samples (each sample ≥ 100 µs of calls), \
         p10 and p90 for the spread. A measurement with p90/p10 > {NOISY_SPREAD} is marked `~` \
         (and `bnh bench` warns): a fifth of its samples are off by more than typical margins \
         between implementations, so its ranking may not repeat.\n\
         - `× copy` is the median divided by the time to copy x into a preallocated buffer in the \
         same run and thread pool: 1.0 is a single read + write pass at the speed the memory \
         system gives a copy.\n\
         - The bytes-moved model: each op must move a number of tensors the size of x (train 3: \
         x twice and y; eval 2; backward 3: x, dy, dx); a copy moves 2, so `passes / 2` is the \
         floor of `× copy` once x leaves the cache. GB/s in the CSV and charts is that minimum \
         traffic over the median time, in decimal gigabytes (10^9 bytes/s, as criterion's \
         `BytesDecimal`).\n\
         - Size classes by bytes of x: small ≤ {} (stays in L2 between passes), medium ≤ {}, \
         large beyond (every pass from memory).\n\
         - The winner of a configuration is the fastest of our implementations (built-in, \
         plugins, criterion imports); PyTorch is shown beside them, not ranked. Every row keeps \
         its source and run: an implementation measured in one configuration by two sources is \
         shown as `NAME@SOURCE`; measured by several runs of one source, the latest run is \
         ranked and charted and the others are listed beside it (`(run ID: time)`). Column \
         definitions: docs/BENCHMARKS.md.\n",
        super::charts::human_bytes(SizeClass::SMALL_MAX as f64),
        super::charts::human_bytes(SizeClass::MEDIUM_MAX as f64),
    );
    if has_torch {
        let _ = writeln!(
            md,
            "`torch` is PyTorch as users call it (a fresh output per call, paying page faults \
             above glibc's mmap threshold); `torch-noalloc` is the same call with those faults \
             removed (GLIBC_TUNABLES), the like-for-like comparison with our implementations, \
             which write into preallocated buffers. Method: docs/BENCHMARKS.md.\n"
        );
    }
    write_sources(md, records, sources);
}

/// The input CSVs with their row counts and machines, and the runs they hold.
fn write_sources(md: &mut String, records: &[Record], sources: &[Source]) {
    let _ = writeln!(md, "### Sources\n");
    for s in sources {
        // Paths, machine text and names below come from files: escaped.
        let path = escape_md(&s.path.to_string_lossy());
        let _ = writeln!(md, "- `{path}`: {} rows", s.rows);
        if let Some(m) = &s.machine {
            let _ = writeln!(md, "  - machine: {}", escape_md(&m.summary()));
            let _ = writeln!(md, "  - command: `{}`", escape_md(&m.command));
        }
    }
    let mut runs: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in records {
        *runs
            .entry((r.source.as_str(), r.run_id.as_str()))
            .or_default() += 1;
    }
    let _ = writeln!(md, "\nRuns (source, run id: rows):\n");
    for ((source, run), n) in runs {
        let _ = writeln!(md, "- {}, `{}`: {n}", escape_md(source), escape_md(run));
    }
    // The sources' rows not among the records were repeats of a cell in
    // one run, of which `provenance::dedup` kept the fastest.
    let repeats = sources.iter().map(|s| s.rows).sum::<usize>();
    let repeats = repeats.saturating_sub(records.len());
    if repeats > 0 {
        let _ = writeln!(
            md,
            "\n{repeats} row(s) repeated a cell of one run (rounds given one run id, or a CSV \
             given twice): each cell shows its fastest (lowest median)."
        );
    }
    md.push('\n');
}
