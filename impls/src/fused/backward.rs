//! Backward: the three per-channel sums `Σdy`, `Σdy·(x − K)`, `Σ(x − K)`
//! in one read of `x` and `dy` (`K` = the given mean), then the `dx` pass —
//! back to back per channel while it is in cache when it fits.

use super::coeffs::{self, Grad};
use super::plan::{self, Rows};
use super::reduce;
use super::simd::{self, Lane, Level, RunAcc};
use crate::engine::plan::{is_parallel, rows_pass, runs_by_channel_task, runs_pass};
use crate::layout::{Dims, Layout};
use crate::problem::{Backward, GradMode};
use rayon::prelude::*;

/// The per-channel inputs of the coefficients, copied out of [`Backward`]
/// so tasks can share them while `dx` is borrowed mutably.
#[derive(Clone, Copy)]
struct Params<'a> {
    mode: GradMode,
    eps: f64,
    m: usize,
    weight: Option<&'a [f64]>,
    mean: &'a [f64],
    var: &'a [f64],
}

impl Params<'_> {
    fn grad(&self, c: usize, sums: [f64; 3]) -> Grad {
        let w = self.weight.map_or(1.0, |w| w[c]);
        coeffs::grad(self.mode, self.m, self.var[c], self.eps, w, sums)
    }
}

/// Gradients of `x`, weight and bias.
pub fn backward<T: Lane>(p: Backward<'_, T>) {
    let dims = p.dims.canonical();
    let lv = Level::detected();
    let pr = Params {
        mode: p.mode,
        eps: p.eps,
        m: dims.per_channel(),
        weight: p.weight,
        mean: p.mean,
        var: p.var,
    };
    let grads = match dims.layout {
        Layout::Contiguous => contiguous(p.x, p.dy, p.dx, dims, lv, pr),
        Layout::ChannelsLast => channels_last(p.x, p.dy, p.dx, dims, lv, pr),
    };
    for ((g, w), b) in grads.iter().zip(p.grad_weight).zip(p.grad_bias) {
        *w = g.weight;
        *b = g.bias;
    }
}

/// `dx` of one run: the full formula, or `kd·dy` with fixed statistics
/// (`x` is not read, so a NaN in `x` cannot reach `dx`; adding −0 keeps
/// the product's bits).
fn run_dx<T: Lane>(lv: Level, x: &[T], dy: &[T], out: &mut [T], k: f64, g: &Grad, mode: GradMode) {
    match mode {
        GradMode::Batch => simd::run_dx(lv, x, dy, out, k, [g.kd, g.kx, g.kc]),
        GradMode::Fixed => simd::run_affine(lv, dy, out, 0.0, g.kd, -0.0),
    }
}

fn contiguous<T: Lane>(
    x: &[T],
    dy: &[T],
    dx: &mut [T],
    dims: Dims,
    lv: Level,
    pr: Params<'_>,
) -> Vec<Grad> {
    let s = dims.s;
    let f = move |o: usize, c: usize, acc: &mut RunAcc<3>| {
        simd::run_grad(lv, &x[o..o + s], &dy[o..o + s], pr.mean[c], acc)
    };
    let bytes = 2 * dims.per_channel() * std::mem::size_of::<T>();
    if let Some(cpt) = plan::channel_tasks(dims, bytes) {
        let tasks = runs_by_channel_task(dx, dims, cpt);
        let per_task: Vec<Vec<Grad>> = tasks
            .into_par_iter()
            .enumerate()
            .map(|(t, mut runs)| {
                let (c0, cs) = (t * cpt, cpt.min(dims.c - t * cpt));
                let sums = reduce::channels(dims, (c0, cs), &f);
                let g: Vec<Grad> = (0..cs).map(|i| pr.grad(c0 + i, sums[i])).collect();
                for (i, run) in runs.iter_mut().enumerate() {
                    let (c, o) = (c0 + i % cs, dims.offset(i / cs, c0 + i % cs, 0));
                    let (xr, gr) = (&x[o..o + s], &dy[o..o + s]);
                    run_dx(lv, xr, gr, run, pr.mean[c], &g[i % cs], pr.mode);
                }
                g
            })
            .collect();
        return per_task.into_iter().flatten().collect();
    }
    let sums = reduce::all_channels(dims, is_parallel(dims), &f);
    let g: Vec<Grad> = (0..dims.c).map(|c| pr.grad(c, sums[c])).collect();
    runs_pass(dims, plan::TASK, dx, |c, r, out| {
        run_dx(lv, &x[r.clone()], &dy[r], out, pr.mean[c], &g[c], pr.mode)
    });
    g
}

fn channels_last<T: Lane>(
    x: &[T],
    dy: &[T],
    dx: &mut [T],
    dims: Dims,
    lv: Level,
    pr: Params<'_>,
) -> Vec<Grad> {
    let (g, rows) = (Rows::new(dims.c), dims.n * dims.s);
    let kr = g.sr.rep(pr.mean);
    let sums = reduce::rows::<3>(&g, rows, is_parallel(dims), |r, acc| {
        simd::rows_grad(lv, &x[r.clone()], &dy[r], &kr, acc)
    });
    let gr: Vec<Grad> = (0..dims.c).map(|c| pr.grad(c, sums[c])).collect();
    let lanes = |f: fn(&Grad) -> f64| g.sr.rep(&gr.iter().map(f).collect::<Vec<f64>>());
    let (kd, kx, kc) = (lanes(|g| g.kd), lanes(|g| g.kx), lanes(|g| g.kc));
    let negzero = vec![-0.0; g.sr.l];
    rows_pass(g.task_rows * dims.c, dx, |r, out| match pr.mode {
        GradMode::Batch => simd::rows_dx(lv, &x[r.clone()], &dy[r], out, [&kr, &kd, &kx, &kc]),
        GradMode::Fixed => simd::rows_scale(lv, &dy[r], out, [&kd, &negzero]),
    });
    gr
}
