//! Running every measurement of validated [`BenchOptions`].

use super::options::BenchOptions;
use super::runner::measure;
use super::workload::Workload;
use super::{round, Op, Record};
use crate::error::{Error, Result};
use bn_impls::Implementation;

/// What is about to be measured, for progress displays.
#[derive(Debug, Clone)]
pub struct SweepStep<'a> {
    pub imp: &'a str,
    pub op: Op,
    pub label: String,
}

/// Run the sweep; `on_step` is called before each measurement, `on_done` after.
///
/// Buffers are allocated once per (shape, layout, dtype) and shared by every
/// implementation, operation and thread count; each thread count has its own
/// rayon pool, in which both the kernel and the memcpy roofline run.
pub fn run(
    opts: &BenchOptions,
    mut on_step: impl FnMut(&SweepStep),
    mut on_done: impl FnMut(&Record),
) -> Result<Vec<Record>> {
    let pools = opts
        .threads
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .map(|p| (t, p))
                .map_err(|e| Error::Usage(format!("cannot start a pool of {t} threads: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(opts.count());
    for case in &opts.points {
        for &dtype in &opts.dtypes {
            let mut work = Workload::new(case, dtype)?;
            for (threads, pool) in &pools {
                for &op in &opts.ops {
                    for &imp in &opts.impls {
                        let name = imp.info().name;
                        let label = format!(
                            "{name} {op} {dtype} {} {} t{threads}",
                            case.shape, case.layout
                        );
                        on_step(&SweepStep {
                            imp: name,
                            op,
                            label,
                        });
                        let t = pool.install(|| {
                            measure(
                                &mut work,
                                imp as &dyn Implementation,
                                op,
                                *threads,
                                opts.min_time,
                            )
                        })?;
                        let bytes = (case.shape.elements() * dtype.size()) as u64;
                        let mut rec = Record {
                            imp: name.to_string(),
                            op,
                            dtype,
                            layout: case.layout,
                            shape: case.shape.to_string(),
                            n: case.shape.n(),
                            c: case.shape.c(),
                            spatial: case.shape.spatial(),
                            threads: *threads,
                            bytes,
                            median_ns: round(t.median_ns, 1),
                            p10_ns: round(t.p10_ns, 1),
                            p90_ns: round(t.p90_ns, 1),
                            memcpy_ns: round(t.memcpy_ns, 1),
                            ratio_to_memcpy: 0.0,
                            gb_per_s: 0.0,
                            samples: t.samples,
                        };
                        rec.derive();
                        on_done(&rec);
                        out.push(rec);
                    }
                }
            }
        }
    }
    Ok(out)
}
