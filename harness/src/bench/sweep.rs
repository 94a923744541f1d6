//! Running every measurement of validated [`BenchOptions`].

use super::grid::BenchPoint;
use super::options::BenchOptions;
use super::runner::{measure, Probes, Timing};
use super::workload::workload;
use super::{round, Op, Record};
use crate::error::{Error, Result};
use bn_impls::fused::task_rule::with_task_rule;
use bn_impls::DType;
use rayon::ThreadPool;
use std::collections::BTreeMap;

/// What is about to be measured, for progress displays.
#[derive(Debug, Clone)]
pub struct SweepStep<'a> {
    /// Implementation name.
    pub imp: &'a str,
    /// Operation being timed.
    pub op: Op,
    /// `IMPL OP DTYPE SHAPE LAYOUT tTHREADS`, for a progress line.
    pub label: String,
}

/// Run the sweep; `on_step` is called before each measurement, `on_done` after.
///
/// Buffers are allocated once per (shape, layout, dtype) and shared by every
/// implementation, operation and thread count; each thread count has its own
/// rayon pool, in which both the kernel and the roofline probes run.
///
/// Rows passed to `on_done` are provisional: their roofline is the best copy
/// timed with that row. The returned rows are final: every row is divided by
/// the best copy of the whole run for its size in bytes and thread count
/// (all probes of those rows pooled), so two implementations of equal speed
/// get equal ratios whatever their own copy samples were.
pub fn run(
    opts: &BenchOptions,
    on_step: impl FnMut(&SweepStep),
    mut on_done: impl FnMut(&Record),
) -> Result<Vec<Record>> {
    try_run(opts, on_step, |r| {
        on_done(r);
        Ok(())
    })
}

/// [`run`], where `on_done` may stop the sweep with an error: `bnh bench`
/// appends each record to its partial CSV there and stops on Ctrl-C.
pub fn try_run(
    opts: &BenchOptions,
    mut on_step: impl FnMut(&SweepStep),
    mut on_done: impl FnMut(&Record) -> Result<()>,
) -> Result<Vec<Record>> {
    let pools = thread_pools(&opts.threads)?;
    let mut out = Vec::with_capacity(opts.count());
    let mut pooled: BTreeMap<(u64, usize), Probes> = BTreeMap::new();
    let with_residual = opts.ops.iter().any(|o| o.has_residual());
    for point in &opts.points {
        for &dtype in &opts.dtypes {
            let mut work = workload(point, dtype, with_residual)?;
            for (threads, pool) in &pools {
                for &op in &opts.ops {
                    for &imp in &opts.impls {
                        let name = imp.info().name;
                        let label = format!(
                            "{name} {op} {dtype} {} {} t{threads}",
                            point.shape, point.layout
                        );
                        on_step(&SweepStep {
                            imp: name,
                            op,
                            label: label.clone(),
                        });
                        // The rule is read on the thread that calls the
                        // operation: inside the pool.
                        let timing = match pool.install(|| {
                            with_task_rule(opts.task_rule, || {
                                measure(&mut work, imp, op, *threads, opts.min_time)
                            })
                        }) {
                            Ok(t) => t,
                            // An implementation that declines this cell (a
                            // plugin returning nonzero) leaves it out, noted.
                            Err(Error::Bn(e)) if e.is_unsupported() => {
                                crate::output::stdout::warn(&format!(
                                    "bnh bench: skipped {label}: unsupported ({e})"
                                ));
                                continue;
                            }
                            Err(e) => return Err(e),
                        };
                        let rec = record(name, op, dtype, point, *threads, &timing, &opts.run_id);
                        pooled
                            .entry((rec.bytes, rec.threads))
                            .or_default()
                            .extend(&timing.probes);
                        on_done(&rec)?;
                        out.push(rec);
                    }
                }
            }
        }
    }
    for rec in &mut out {
        if let Some(probes) = pooled.get(&(rec.bytes, rec.threads)) {
            set_roofline(rec, probes);
        }
    }
    Ok(out)
}

/// Divide `rec` by the best copy in `probes` and record the read pass.
fn set_roofline(rec: &mut Record, probes: &Probes) {
    if let Some((copy, ns)) = probes.best_copy() {
        rec.memcpy_ns = round(ns, 1);
        rec.roofline = copy.name().to_string();
    }
    if let Some(ns) = probes.read_median() {
        rec.read_ns = round(ns, 1);
    }
    rec.derive();
}

/// One rayon pool per thread count, started before any measurement.
fn thread_pools(threads: &[usize]) -> Result<Vec<(usize, ThreadPool)>> {
    threads
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .map(|p| (t, p))
                .map_err(|e| Error::Usage(format!("cannot start a pool of {t} threads: {e}")))
        })
        .collect()
}

/// The CSV row of one measurement (of run `run_id`), times rounded to
/// 0.1 ns and the derived columns filled in.
fn record(
    imp: &str,
    op: Op,
    dtype: DType,
    point: &BenchPoint,
    threads: usize,
    t: &Timing,
    run_id: &str,
) -> Record {
    let mut rec = Record {
        imp: imp.to_string(),
        op,
        dtype,
        layout: point.layout,
        shape: point.shape.to_string(),
        n: point.shape.n(),
        c: point.shape.c(),
        spatial: point.shape.spatial(),
        threads,
        bytes: (point.shape.elements() * dtype.size()) as u64,
        median_ns: round(t.median_ns, 1),
        p10_ns: round(t.p10_ns, 1),
        p90_ns: round(t.p90_ns, 1),
        memcpy_ns: 0.0,
        ratio_to_memcpy: 0.0,
        gb_per_s: 0.0,
        samples: t.samples,
        roofline: String::new(),
        read_ns: 0.0,
        source: super::provenance::source_of(imp),
        run_id: run_id.to_string(),
    };
    set_roofline(&mut rec, &t.probes);
    rec
}
