//! Time each operation of each implementation against a memcpy of the same
//! tensor, in the same rayon pool, interleaved, median of many repetitions.
//!
//! A stop-gap until `bnh bench` lands; prints one tab-separated row per
//! (shape, layout, threads, implementation, op) with `median(op) / median(copy)`.
//!
//! ```text
//! cargo run --release -p bn-impls --example speed -- [REPS] [THREADS,..] [IMPL,..] [SHAPE ..]
//! e.g. speed 15 1,2 naive,welford,parallel,fused 64x64x56x56 256x1024x64
//! ```
//! Buffers are allocated and written once before timing, so page faults are
//! not timed. f32 data, both layouts for rank ≥ 3.

use bn_impls::layout::Layout;
use bn_impls::problem::{Affine, Backward, EvalForward, GradMode, TrainForward};
use bn_impls::{kernel, registry, Dims, Implementation};
use rayon::prelude::*;
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn copy(dst: &mut [f32], src: &[f32], threads: usize) {
    if threads == 1 {
        dst.copy_from_slice(src);
    } else {
        let chunk = src.len().div_ceil(threads);
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
    }
}

struct Bufs {
    dims: Dims,
    x: Vec<f32>,
    y: Vec<f32>,
    dy: Vec<f32>,
    w: Vec<f64>,
    b: Vec<f64>,
    mean: Vec<f64>,
    var: Vec<f64>,
    gw: Vec<f64>,
    gb: Vec<f64>,
}

fn run(imp: &dyn Implementation, op: &str, z: &mut Bufs) {
    let k = kernel::<f32>(imp);
    let d = z.dims;
    let affine = Affine {
        weight: Some(&z.w),
        bias: Some(&z.b),
    };
    match op {
        "train" => k.forward_train(
            TrainForward::new(
                d.view(&z.x),
                d.view_mut(&mut z.y),
                affine,
                1e-5,
                &mut z.mean,
                &mut z.var,
            )
            .unwrap(),
        ),
        "eval" => k.forward_eval(
            EvalForward::new(
                d.view(&z.x),
                d.view_mut(&mut z.y),
                &z.mean,
                &z.var,
                affine,
                1e-5,
            )
            .unwrap(),
        ),
        _ => k.backward(
            Backward::new(
                d.view(&z.x),
                d.view(&z.dy),
                d.view_mut(&mut z.y),
                &z.mean,
                &z.var,
                Some(&z.w),
                1e-5,
                GradMode::Batch,
                &mut z.gw,
                &mut z.gb,
            )
            .unwrap(),
        ),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reps: usize = args.first().map_or(15, |a| a.parse().expect("REPS"));
    let threads: Vec<usize> = args.get(1).map_or(vec![1, 2], |a| {
        a.split(',').map(|t| t.parse().expect("THREADS")).collect()
    });
    let impls: Vec<&dyn Implementation> = args.get(2).map_or(registry::all().to_vec(), |a| {
        a.split(',')
            .map(|n| registry::by_name(n).expect("IMPL"))
            .collect()
    });
    let shapes: Vec<Vec<usize>> = if args.len() > 3 {
        args[3..]
            .iter()
            .map(|s| s.split('x').map(|d| d.parse().expect("SHAPE")).collect())
            .collect()
    } else {
        vec![vec![64, 64, 56, 56], vec![256, 1024, 64]]
    };
    println!("shape\tlayout\tthreads\timpl\top\tratio\top_ms\tcopy_ms");
    for shape in &shapes {
        let layouts: &[Layout] = if shape.len() > 2 {
            &Layout::ALL
        } else {
            &[Layout::Contiguous]
        };
        for &layout in layouts {
            let dims = Dims::from_shape("x", shape, layout).unwrap();
            let n = dims.len();
            let mut z = Bufs {
                dims,
                x: (0..n)
                    .map(|i| ((i * 7919) % 1009) as f32 * 0.01 + 3.0)
                    .collect(),
                y: vec![1.0; n],
                dy: (0..n)
                    .map(|i| ((i * 104729) % 997) as f32 * 0.001 - 0.5)
                    .collect(),
                w: vec![1.5; dims.c],
                b: vec![0.25; dims.c],
                mean: vec![0.0; dims.c],
                var: vec![1.0; dims.c],
                gw: vec![0.0; dims.c],
                gb: vec![0.0; dims.c],
            };
            let mut ybuf = vec![0.0f32; n];
            for &t in &threads {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let cases: Vec<(usize, &str)> = (0..impls.len())
                        .flat_map(|i| ["train", "eval", "backward"].map(|o| (i, o)))
                        .collect();
                    let mut times = vec![Vec::new(); cases.len()];
                    let mut copies = Vec::new();
                    for _ in 0..reps {
                        for (j, &(i, op)) in cases.iter().enumerate() {
                            let t0 = Instant::now();
                            copy(&mut ybuf, &z.x, t);
                            copies.push(t0.elapsed().as_secs_f64());
                            let t0 = Instant::now();
                            run(impls[i], op, &mut z);
                            times[j].push(t0.elapsed().as_secs_f64());
                        }
                    }
                    let c = median(&mut copies);
                    for (j, &(i, op)) in cases.iter().enumerate() {
                        let m = median(&mut times[j]);
                        println!(
                            "{}\t{}\t{}\t{}\t{}\t{:.2}\t{:.3}\t{:.3}",
                            shape
                                .iter()
                                .map(|d| d.to_string())
                                .collect::<Vec<_>>()
                                .join("x"),
                            layout,
                            t,
                            impls[i].info().name,
                            op,
                            m / c,
                            m * 1e3,
                            c * 1e3
                        );
                    }
                });
            }
        }
    }
}
