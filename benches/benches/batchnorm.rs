//! Criterion benches of every registered implementation × operation over a
//! grid, with the three roofline copies (libc memcpy, a vector loop, non-temporal
//! stores) of the same tensor in every group; `bnh import-criterion` divides by the fastest.
//!
//! Ids: group `OP/DTYPE/LAYOUT/SHAPE/tTHREADS`, function = implementation
//! name or a copy id (`memcpy`, `copy-vector`, `copy-nontemporal`);
//! `Throughput::BytesDecimal` is the bytes the operation must move (train 3×,
//! eval 2×, backward 3× the size of `x`; copies 2×), so criterion prints GB/s
//! (10^9 bytes/s), the unit of `bnh bench` and REPORT.md.
//!
//! Environment: `BN_BENCH_GRID` = standard (default) | quick | batch-sweep |
//! feature-sweep; `BN_BENCH_THREADS` = rayon pool size (default 1).
//! Afterwards `bnh import-criterion target/criterion --csv PATH` writes the
//! same CSV as `bnh bench`. Buffers and timing code are the harness's own
//! (`bn_harness::bench::workload`), so both paths measure the same call.

use bn_harness::bench::criterion_import::{copy_id, group_id};
use bn_harness::bench::grid::{cases, GridName};
use bn_harness::bench::roofline::Copy;
use bn_harness::bench::workload::workload;
use bn_harness::bench::Op;
use clap::ValueEnum;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

/// Tensors above this size are sampled flat (same iteration count per
/// sample) so a 300 ms call costs 10 calls, not criterion's linear 55.
const FLAT_ABOVE_BYTES: usize = 8 << 20;

fn grid() -> GridName {
    match std::env::var("BN_BENCH_GRID") {
        Ok(g) => GridName::from_str(&g, true).unwrap_or_else(|e| {
            panic!("BN_BENCH_GRID={g}: {e}; use standard, quick, batch-sweep or feature-sweep")
        }),
        Err(_) => GridName::Standard,
    }
}

fn threads() -> usize {
    match std::env::var("BN_BENCH_THREADS") {
        Ok(t) => match t.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("BN_BENCH_THREADS={t}: give a thread count of at least 1"),
        },
        Err(_) => 1,
    }
}

fn batchnorm(c: &mut Criterion) {
    let grid = grid();
    let threads = threads();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool");
    for case in cases(&grid.shapes(), &grid.default_layouts()) {
        for dtype in grid.default_dtypes() {
            let mut work = workload(&case, dtype, false).expect("grid shapes are valid");
            let bytes = case.shape.elements() * dtype.size();
            for op in Op::DEFAULT {
                let id = group_id(op, dtype.name(), case.layout.name(), &case.shape, threads);
                let mut g = c.benchmark_group(id);
                if bytes > FLAT_ABOVE_BYTES {
                    g.sampling_mode(SamplingMode::Flat);
                }
                g.throughput(Throughput::BytesDecimal(
                    (op.tensor_passes() * bytes) as u64,
                ));
                for &imp in bn_impls::registry::all() {
                    g.bench_function(imp.info().name, |b| {
                        pool.install(|| b.iter(|| work.call(imp, op).expect("valid workload")))
                    });
                }
                g.throughput(Throughput::BytesDecimal((2 * bytes) as u64));
                for copy in Copy::ALL {
                    g.bench_function(copy_id(copy), |b| {
                        pool.install(|| b.iter(|| work.copy(copy, threads)))
                    });
                }
                g.finish();
            }
        }
    }
}

criterion_group! {
    name = benches;
    // Short settings keep the standard grid (13 cases × 2 dtypes × 3 ops × (4 implementations + 3 copies)) to minutes;
    // raise them with criterion's own flags for a careful run.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(800));
    targets = batchnorm
}
criterion_main!(benches);
